/* fuzz_tools_json.c - libFuzzer target for what the offline tools (`compare`,
 * `validate-model`) and model loading read from files and topics the user gives: a crash,
 * leak or sanitizer report here is a tool or a worker start-up taken down by a bad file.
 *
 * Input: byte 0 picks the parser (modulo 7), the rest is what it reads:
 *   0  a JSON prediction (the shadow's results file, output.format = json): cmp_decode
 *   1  an Avro prediction of output.schema, raw: cmp_decode
 *   2  the same in the Confluent wire format (output.schema.id set): cmp_decode
 *   3  a JSON value of a labels topic (compare --labels topic:NAME): cmp_labels_json
 *   4  a CSV labels file (compare --labels FILE), line by line: cmp_labels_csv_line
 *   5  a model card (model.card) as the worker reads it: ss_model_from_card, then its drift
 *      baseline (ss_model_enable_drift) observed over a full window
 *   6  a model card as validate-model reads it and writes it back: vld_card_from_text, then
 *      written with vld_json_digits, which must read back equal
 * output.schema is the default one, compiled in. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare_int.h"
#include "config.h"
#include "drift.h"
#include "error.h"
#include "metrics.h"
#include "model.h"
#include "validate_int.h"

enum { P_PRED_JSON, P_PRED_AVRO, P_PRED_FRAMED, P_LABEL_JSON, P_LABEL_CSV, P_CARD, P_VLD_CARD, NP };

static ss_config_t *raw_cfg, *framed_cfg;
static cmp_decoder_t *json_dec, *raw_dec, *framed_dec;
static volatile unsigned char sink;

static void die(const char *what, const char *err) {
    fprintf(stderr, "fuzz_tools_json: %s: %s\n", what, err);
    abort();
}

static ss_config_t *config(const char *schema_id) {
    char err[1024];
    ss_config_t *cfg = ss_config_new();
    if (!cfg)
        die("config", "out of memory");
    if (ss_config_set(cfg, "model.path", "fuzz.json", "fuzz", err, sizeof(err)) < 0 ||
        ss_config_set(cfg, "kafka.bootstrap.servers", "127.0.0.1:9", "fuzz", err, sizeof(err)) <
            0 ||
        (schema_id &&
         ss_config_set(cfg, "output.schema.id", schema_id, "fuzz", err, sizeof(err)) < 0) ||
        ss_config_finalize(cfg, err, sizeof(err)) < 0)
        die("config", err);
    return cfg;
}

static void cleanup(void) {
    cmp_decoder_destroy(json_dec);
    cmp_decoder_destroy(raw_dec);
    cmp_decoder_destroy(framed_dec);
    ss_config_destroy(raw_cfg);
    ss_config_destroy(framed_cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char err[1024];
    (void)argc;
    (void)argv;
    raw_cfg = config(NULL);
    framed_cfg = config("7");
    if (cmp_decoder_new(raw_cfg, 0, &json_dec, err, sizeof(err)) < 0 ||
        cmp_decoder_new(raw_cfg, 1, &raw_dec, err, sizeof(err)) < 0 ||
        cmp_decoder_new(framed_cfg, 1, &framed_dec, err, sizeof(err)) < 0)
        die("cmp_decoder_new", err);
    atexit(cleanup);
    return 0;
}

static void touch(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        sink ^= (unsigned char)p[i];
}

static void prediction(cmp_decoder_t *d, int json, const uint8_t *v, size_t len) {
    cmp_pred_t p;
    memset(&p, 0, sizeof(p));
    int rc = cmp_decode(d, json, v, len, &p);
    if (rc != 0 && rc != SS_ERR_FAIL)
        die("cmp_decode", "neither decoded nor SS_ERR_FAIL");
    if (rc != 0)
        return;
    if (!isfinite(p.score) || (p.has_decision && p.decision != 0 && p.decision != 1) ||
        p.partition < 0 || p.offset < 0 || p.predicted_class < -1 || (p.n_outputs && !p.outputs))
        die("cmp_decode", "a decoded prediction out of range");
    for (size_t i = 0; i < p.n_outputs; i++)
        if (!isfinite(p.outputs[i]))
            die("cmp_decode", "a decoded output that is not a finite number");
    /* the strings point into decoder memory: read every byte (ASan checks the bounds) */
    touch(p.customer_id.p, p.customer_id.n);
    touch(p.model_name.p, p.model_name.n);
    touch(p.model_version.p, p.model_version.n);
    touch(p.source_topic.p, p.source_topic.n);
}

static void labels(int csv, const uint8_t *v, size_t len) {
    cmp_t *c = calloc(1, sizeof(*c));
    char err[1024] = "";
    int rc = 0, header = 1, col[3] = {-1, -1, -1};
    if (!c)
        return;
    if (!csv) {
        /* a copy of exactly `len` bytes, so ASan sees any read past the value */
        char *copy = malloc(len ? len : 1);
        if (copy) {
            memcpy(copy, v, len);
            rc = cmp_labels_json(c, copy, len);
            if (rc == 0 && c->r.labels_rows + c->r.labels_malformed != 1)
                die("cmp_labels_json", "a value neither a label nor malformed");
        }
        free(copy);
    }
    for (size_t at = 0; csv && rc == 0 && at < len;) { /* the lines, as getline gives them */
        const uint8_t *nl = memchr(v + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (v + at)) + 1 : len - at;
        char *line = malloc(n + 1);
        if (!line)
            break;
        memcpy(line, v + at, n);
        line[n] = '\0';
        rc = cmp_labels_csv_line(c, line, &header, col, "fuzz.csv", err, sizeof(err));
        if (rc < 0 && (rc != SS_ERR_CONFIG || !err[0]))
            die("cmp_labels_csv_line", "an error without a message");
        free(line);
        at += n;
    }
    for (size_t i = 0; i < c->n_labels; i++)
        if ((c->labels[i].label != 0 && c->labels[i].label != 1 &&
             c->labels[i].label != CMP_UNLABELED) ||
            !isfinite(c->labels[i].value))
            die("labels", "a label neither 0, 1 nor a number");
    free(c->labels);
    free(c);
}

/* The drift of the card's baseline over one full window of rows: NaN, 0, 1, huge. */
static void drift(ss_model_t *m) {
    char err[1024] = "";
    int rc = ss_model_enable_drift(m, 4, 0.2, err, sizeof(err));
    if (rc < 0 && !err[0])
        die("ss_model_enable_drift", "an error without a message");
    if (rc < 0 || !m->drift)
        return;
    size_t nf = m->n_features;
    float *rows = malloc((nf ? nf : 1) * 4 * sizeof(float));
    static const float values[] = {NAN, 0.0f, 1.0f, 3e38f};
    static const double scores[] = {0.0, 0.5, 1.0, 0.25};
    if (!rows)
        return;
    for (size_t r = 0; r < 4; r++)
        for (size_t j = 0; j < nf; j++)
            rows[r * nf + j] = values[(r + j) % 4];
    ss_drift_observe(m->drift, rows, scores, 4);
    for (size_t j = 0; j <= nf; j++) {
        double psi = ss_drift_psi(m->drift, j);
        if (!isnan(psi) && !(psi >= 0 && isfinite(psi)))
            die("ss_drift_psi", "neither NaN nor a finite PSI >= 0");
    }
    ss_buf_t out = {0};
    ss_drift_render(m->drift, &out);
    ss_buf_free(&out);
    free(rows);
}

static void card(const uint8_t *v, size_t len) {
    char err[1024] = "";
    ss_model_t *m = ss_model_from_card((const char *)v, len, "fuzz.card.json", err, sizeof(err));
    if (!m) {
        if (!err[0])
            die("ss_model_from_card", "no model and no message");
        return;
    }
    if (!isfinite(m->threshold) || !m->name || !m->version)
        die("ss_model_from_card", "a card read with a bad threshold or no name/version");
    for (size_t j = 0; j < m->n_features; j++)
        if (!m->feature_names[j])
            die("ss_model_from_card", "a feature without a name");
    drift(m);
    ss_model_unref(m);
}

static void validate_card(const uint8_t *v, size_t len) {
    vld_run_t *r = calloc(1, sizeof(*r));
    if (!r)
        return;
    if (vld_card_from_text(r, (const char *)v, len, "fuzz.card.json") == 0) {
        /* written back as validate-model writes the card: it must read back the same */
        int digits = vld_json_digits(r->card);
        char *text = json_dumps(r->card, JSON_INDENT(2) | JSON_REAL_PRECISION(digits));
        json_error_t jerr;
        json_t *back = text ? json_loads(text, 0, &jerr) : NULL;
        if (text && !json_equal(back, r->card))
            die("vld_json_digits", "a card written back does not read back the same");
        json_decref(back);
        free(text);
    } else if (!r->err[0]) {
        die("vld_card_from_text", "an error without a message");
    }
    json_decref(r->card);
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    const uint8_t *v = data + 1;
    size_t len = size - 1;
    switch (data[0] % NP) {
    case P_PRED_JSON: prediction(json_dec, 1, v, len); break;
    case P_PRED_AVRO: prediction(raw_dec, 0, v, len); break;
    case P_PRED_FRAMED: prediction(framed_dec, 0, v, len); break;
    case P_LABEL_JSON: labels(0, v, len); break;
    case P_LABEL_CSV: labels(1, v, len); break;
    case P_CARD: card(v, len); break;
    case P_VLD_CARD: validate_card(v, len); break;
    }
    return 0;
}
