/* fuzz_score_file.c - libFuzzer target for what `streamscore score-file` reads: any bytes as
 * an input file, read to its end as the job reads it (worker/jobs/file_in.c). A crash, leak,
 * stall or sanitizer report here is a batch job taken down by a bad file.
 *
 * Input: byte 0 picks the format (even: JSON lines, odd: an Avro object container file), the
 * rest is the file. The model is models/churn-1.0.0.json (11 features), input.schema the
 * default one. Checks beyond "no crash, no leak, no UB": a file either opens or says why with
 * SS_ERR_CONFIG; every record is decoded or has a reason; a decoded record has a customer id
 * whose bytes and features are readable; the share read stays in [0, 1]; the reader stops. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "file_in.h"
#include "model.h"

static ss_config_t *cfg;
static ss_model_t *model;
static volatile unsigned char sink;

static void die(const char *what, const char *err) {
    fprintf(stderr, "fuzz_score_file: %s: %s\n", what, err);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char err[1024], path[4096];
    (void)argc;
    (void)argv;
    const char *root = getenv("STREAMSCORE_ROOT");
    snprintf(path, sizeof(path), "%s/models/churn-1.0.0.json", root ? root : SS_SOURCE_DIR);
    cfg = ss_config_new();
    if (!cfg || ss_config_set(cfg, "model.path", path, "fuzz", err, sizeof(err)) < 0 ||
        ss_config_set(cfg, "kafka.bootstrap.servers", "127.0.0.1:9", "fuzz", err, sizeof(err)) <
            0 ||
        ss_config_set(cfg, "model.predictor", "xgboost", "fuzz", err, sizeof(err)) < 0 ||
        ss_config_finalize(cfg, err, sizeof(err)) < 0)
        die("config", err);
    if (ss_model_open(cfg, NULL, &model, err, sizeof(err)) < 0)
        die("model", err);
    /* kept to the end: freeing a booster in an atexit handler runs after XGBoost's own
     * static destructors (a double free); both stay reachable, so no leak is reported */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024], path[64];
    if (size < 1)
        return 0;
    int format = data[0] % 2 ? SS_FILE_AVRO : SS_FILE_JSON;
    int fd = memfd_create("fuzz_score_file", 0);
    if (fd < 0 || write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
        die("memfd", "cannot write the input");
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int why = 0;
    err[0] = '\0';
    ss_file_in_t *in = ss_file_in_open(cfg, model, path, format, &why, err, sizeof(err));
    if (!in) {
        if (why != SS_ERR_CONFIG || !err[0])
            die("ss_file_in_open", "refused without SS_ERR_CONFIG and a message");
        close(fd);
        return 0;
    }
    float *x = malloc(model->n_features * sizeof(float));
    ss_event_t ev;
    const char *reason;
    int rc, got;
    size_t records = 0;
    while ((got = ss_file_in_next(in, &ev, x, &rc, &reason, err, sizeof(err))) == 1) {
        if (++records > size + 1)
            die("ss_file_in_next", "more records than the input has bytes");
        if (rc != SS_DECODE_OK) {
            if (!reason || !*reason)
                die("ss_file_in_next", "a record neither decoded nor given a reason");
            continue;
        }
        if (reason || !ev.customer_id)
            die("ss_file_in_next", "a decoded record with a reason or without a customer id");
        for (size_t i = 0; i < ev.customer_id_len; i++)
            sink ^= (unsigned char)ev.customer_id[i];
        for (size_t i = 0; i < ev.event_id_len; i++)
            sink ^= (unsigned char)ev.event_id[i];
        for (size_t f = 0; f < model->n_features; f++)
            sink ^= (unsigned char)isnan(x[f]);
        double share = ss_file_in_fraction(in);
        if (!(share >= 0 && share <= 1))
            die("ss_file_in_fraction", "out of [0, 1]");
    }
    if (got < 0 && !err[0])
        die("ss_file_in_next", "failed without a message");
    free(x);
    ss_file_in_close(in);
    close(fd);
    return 0;
}
