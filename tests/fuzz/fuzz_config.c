/* fuzz_config.c - libFuzzer target for configuration text: properties parsing
 * (ss_config_load_string), the derived defaults and cross-key checks (ss_config_finalize)
 * and the "a=b,c=d" list parser (ss_config_parse_pairs), on arbitrary bytes. Environment
 * overrides are left out on purpose: they read the process environment, not the input.
 * A bad file must be an error that names the problem, never a crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void die(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_config: %s: %s\n", what, detail);
    abort();
}

/* A failed call must leave a message: non-empty and NUL-terminated. */
static void check_message(const char *what, const char *err, size_t errlen) {
    if (!err[0] || !memchr(err, '\0', errlen))
        die(what, "failed without a message");
}

typedef struct pairs {
    size_t n;
} pairs_t;

/* Every pair handed out is trimmed and non-empty on both sides. */
static int pair_cb(void *opaque, const char *k, const char *v, char *errstr, size_t errlen) {
    pairs_t *p = opaque;
    const char *ws = " \t";
    if (!*k || !*v || strchr(ws, k[0]) || strchr(ws, v[0]) || strchr(ws, k[strlen(k) - 1]) ||
        strchr(ws, v[strlen(v) - 1]) || strchr(k, ',') || strchr(v, ','))
        die("ss_config_parse_pairs", "handed out an untrimmed, empty or unsplit pair");
    /* reject one pair in three, as a callback finding a bad value does */
    if (++p->n % 3 == 0) {
        snprintf(errstr, errlen, "pair %zu rejected", p->n);
        return -1;
    }
    return 0;
}

static void parse_pairs(const char *list) {
    pairs_t p = {0};
    char err[512];
    err[0] = '\0';
    if (ss_config_parse_pairs(list, "fuzz", pair_cb, &p, err, sizeof(err)) < 0)
        check_message("ss_config_parse_pairs", err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    /* exactly `size` bytes, so ASan sees any read past the text */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);

    ss_config_t *cfg = ss_config_new();
    if (!cfg)
        die("ss_config_new", "NULL");
    err[0] = '\0';
    if (ss_config_load_string(cfg, text, size, "fuzz", err, sizeof(err)) < 0) {
        check_message("ss_config_load_string", err, sizeof(err));
    } else {
        err[0] = '\0';
        if (ss_config_finalize(cfg, err, sizeof(err)) < 0) {
            check_message("ss_config_finalize", err, sizeof(err));
        } else {
            /* what finalize promises the rest of the worker */
            if (!cfg->model_path || !*cfg->model_path || !cfg->model_card ||
                !cfg->input_writer_schema || !cfg->dlq_topic || !cfg->shadow_topic)
                die("ss_config_finalize", "succeeded with a required or derived key unset");
            if (strcmp(cfg->dlq_topic, cfg->input_topic) == 0 ||
                strcmp(cfg->dlq_topic, cfg->output_topic) == 0 ||
                strcmp(cfg->shadow_topic, cfg->output_topic) == 0)
                die("ss_config_finalize", "accepted colliding topics");
            parse_pairs(cfg->input_schema_map);
            parse_pairs(cfg->features_rename);
        }
    }
    ss_config_destroy(cfg);

    /* the same bytes as one "a=b,c=d" list (up to the first NUL) */
    char *list = malloc(size + 1);
    if (list) {
        memcpy(list, data, size);
        list[size] = '\0';
        parse_pairs(list);
        free(list);
    }
    free(text);
    return 0;
}
