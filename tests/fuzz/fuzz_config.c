/* fuzz_config.c - libFuzzer target for configuration text: properties parsing
 * (ss_config_load_string), the derived defaults and cross-key rules of each command
 * (ss_config_finalize_command) and the "a=b,c=d" list parser (ss_config_parse_pairs), on
 * arbitrary bytes. Environment overrides are left out on purpose: they read the process
 * environment, not the input. A bad file must be an error that names the problem, never a
 * crash or a leak. */
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

/* Load `text` and finalize it for `commands`: an error names the problem; a success keeps
 * what finalize promises the rest of the program. */
static void finalize_as(const char *text, size_t size, unsigned commands) {
    char err[1024];
    ss_config_t *cfg = ss_config_new();
    if (!cfg)
        die("ss_config_new", "NULL");
    err[0] = '\0';
    if (ss_config_load_string(cfg, text, size, "fuzz", err, sizeof(err)) < 0) {
        check_message("ss_config_load_string", err, sizeof(err));
        goto out;
    }
    err[0] = '\0';
    if (ss_config_finalize_command(cfg, commands, err, sizeof(err)) < 0) {
        check_message("ss_config_finalize_command", err, sizeof(err));
        goto out;
    }
    if ((commands & (SS_CMD_RUN | SS_CMD_VALIDATE)) && (!cfg->model_path || !*cfg->model_path))
        die("ss_config_finalize_command", "succeeded without model.path");
    if (!cfg->model_card || !cfg->input_writer_schema || !cfg->dlq_topic || !cfg->shadow_topic)
        die("ss_config_finalize_command", "succeeded with a derived key unset");
    if (strcmp(cfg->dlq_topic, cfg->input_topic) == 0 ||
        strcmp(cfg->dlq_topic, cfg->output_topic) == 0 ||
        strcmp(cfg->shadow_topic, cfg->output_topic) == 0)
        die("ss_config_finalize_command", "accepted colliding topics");
    parse_pairs(cfg->input_schema_map);
    parse_pairs(cfg->features_rename);
out:
    ss_config_destroy(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* exactly `size` bytes, so ASan sees any read past the text */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    /* each command's rules: run (the worker, check-config), compare, validate-model */
    finalize_as(text, size, SS_CMD_RUN);
    finalize_as(text, size, SS_CMD_COMPARE);
    finalize_as(text, size, SS_CMD_VALIDATE);

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
