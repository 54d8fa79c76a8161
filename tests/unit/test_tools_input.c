/* test_tools_input.c - what the offline tools read from files and topics the user gives:
 * predictions (compare_decode.c), labels (compare_labels.c) and model cards (validate.c,
 * core/model.c). Regressions found by tests/fuzz/fuzz_tools_json.c live here. */
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "compare_int.h"
#include "config.h"
#include "error.h"
#include "model.h"

static char err[1024];

static ss_config_t *config(const char *extra) {
    ss_config_t *c = ss_config_new();
    char text[512];
    snprintf(text, sizeof(text), "model.path = m.json\nkafka.bootstrap.servers = x:1\n%s", extra);
    if (ss_config_load_string(c, text, strlen(text), "t", err, sizeof(err)) < 0 ||
        ss_config_finalize(c, err, sizeof(err)) < 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    return c;
}

/* An Avro string of fewer than 64 bytes. */
static size_t put_string(unsigned char *p, const char *s) {
    size_t n = strlen(s);
    p[0] = (unsigned char)(n * 2); /* zig-zag */
    memcpy(p + 1, s, n);
    return n + 1;
}

static size_t put_double(unsigned char *p, double d) {
    memcpy(p, &d, 8); /* little-endian hosts */
    return 8;
}

static size_t put_long(unsigned char *p, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zig-zag, then base-128 varint */
    size_t n = 0;
    do {
        p[n++] = (unsigned char)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
        z >>= 7;
    } while (z);
    return n;
}

/* The fields every version of schemas/prediction.avsc starts with, up to `decision`. */
static size_t put_head(unsigned char *p) {
    size_t n = put_string(p, "ev-1");
    n += put_string(p + n, "C1");
    n += put_double(p + n, 0.75);
    return n;
}

/* From model_name to degraded, the same in every version. */
static size_t put_middle(unsigned char *p) {
    unsigned char *q = p;
    q += put_string(q, "churn");
    q += put_string(q, "1.0.0");
    q += put_string(q, "customer-events");
    q += put_long(q, 2);             /* source_partition */
    q += put_long(q, 1000);          /* source_offset */
    q += put_long(q, 1700000000000); /* event_time */
    q += put_long(q, 1700000000500); /* scored_at */
    q += put_string(q, "00112233445566ff");
    *q++ = 0; /* contributions: null */
    *q++ = 0; /* degraded */
    return (size_t)(q - p);
}

/* A prediction of the schema before `route` in Avro, its decision byte `decision` (Avro: 0
 * or 1). Its length. */
static size_t avro_prediction(unsigned char *buf, unsigned char decision) {
    unsigned char *p = buf;
    p += put_head(p);
    *p++ = decision;
    p += put_double(p, 0.5);
    p += put_middle(p);
    return (size_t)(p - buf);
}

/* The same with `route` (the schema of the first rollouts). */
static size_t avro_prediction_routed(unsigned char *buf, const char *route) {
    size_t n = avro_prediction(buf, 1);
    return n + put_string(buf + n, route);
}

/* A prediction of the current schema: decision < 0 and threshold NaN are null, outputs
 * NULL and cls < 0 too. */
static size_t avro_prediction_current(unsigned char *buf, int decision, double threshold,
                                      const double *outputs, size_t n_outputs, int cls) {
    unsigned char *p = buf;
    p += put_head(p);
    p += put_long(p, decision >= 0); /* the union's branch: null or boolean */
    if (decision >= 0)
        *p++ = (unsigned char)decision;
    p += put_long(p, !isnan(threshold));
    if (!isnan(threshold))
        p += put_double(p, threshold);
    p += put_middle(p);
    p += put_string(p, "canary");
    p += put_long(p, outputs != NULL);
    if (outputs) {
        if (n_outputs)
            p += put_long(p, (int64_t)n_outputs);
        for (size_t i = 0; i < n_outputs; i++)
            p += put_double(p, outputs[i]);
        *p++ = 0; /* the array's end */
    }
    p += put_long(p, cls >= 0);
    if (cls >= 0)
        p += put_long(p, cls);
    *p++ = 0; /* contributions_bias: null */
    *p++ = 0; /* contributions_output: null */
    return (size_t)(p - buf);
}

static void avro_prediction_decision_byte_beyond_1_is_malformed(void) {
    ss_config_t *cfg = config("");
    cmp_decoder_t *d = NULL;
    unsigned char buf[256];
    cmp_pred_t p;
    CHECK(cmp_decoder_new(cfg, 1, &d, err, sizeof(err)) == 0);
    size_t len = avro_prediction(buf, 1);
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && p.decision == 1 && p.score == 0.75 &&
          p.offset == 1000 && p.partition == 2);
    len = avro_prediction(buf, 0);
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && p.decision == 0);
    /* the worker's check refuses such a boolean too (codec_check.c); compare read it as a
     * decision of 91 */
    len = avro_prediction(buf, 0x5b);
    memset(&p, 0, sizeof(p));
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == SS_ERR_FAIL);
    cmp_decoder_destroy(d);
    ss_config_destroy(cfg);
}

/* The fields every version carries, as avro_prediction*() write them. */
static int common_fields_read(const cmp_pred_t *p) {
    return p->score == 0.75 && p->partition == 2 && p->offset == 1000 &&
           p->event_time == 1700000000000 && p->scored_at == 1700000000500 &&
           p->fhash == 0x00112233445566ffull && p->customer_id.n == 2 &&
           memcmp(p->customer_id.p, "C1", 2) == 0 && p->model_version.n == 5 &&
           memcmp(p->model_version.p, "1.0.0", 5) == 0;
}

static int route_is(const cmp_pred_t *p, const char *route) {
    return p->route.n == strlen(route) && memcmp(p->route.p, route, p->route.n) == 0;
}

static void avro_prediction_of_each_schema_version_is_read(void) {
    ss_config_t *cfg = config("");
    cmp_decoder_t *d = NULL;
    unsigned char buf[512];
    cmp_pred_t p;
    CHECK(cmp_decoder_new(cfg, 1, &d, err, sizeof(err)) == 0);
    /* before `route`: live, a decision, no outputs */
    size_t len = avro_prediction(buf, 1);
    memset(&p, 0, sizeof(p));
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && common_fields_read(&p));
    CHECK(p.has_decision == 1 && p.decision == 1 && p.threshold == 0.5 && route_is(&p, "live") &&
          p.outputs == NULL && p.n_outputs == 0 && p.predicted_class == -1);
    /* with `route` */
    len = avro_prediction_routed(buf, "canary");
    memset(&p, 0, sizeof(p));
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && common_fields_read(&p));
    CHECK(p.has_decision == 1 && p.decision == 1 && route_is(&p, "canary") && p.outputs == NULL &&
          p.predicted_class == -1);
    /* the current one, a binary model's: decision and threshold set, no outputs */
    len = avro_prediction_current(buf, 0, 0.3, NULL, 0, -1);
    memset(&p, 0, sizeof(p));
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && common_fields_read(&p));
    CHECK(p.has_decision == 1 && p.decision == 0 && p.threshold == 0.3 && route_is(&p, "canary") &&
          p.outputs == NULL && p.predicted_class == -1);
    cmp_decoder_destroy(d);
    ss_config_destroy(cfg);
}

static void avro_prediction_with_null_decision_and_threshold_has_no_decision(void) {
    ss_config_t *cfg = config("");
    cmp_decoder_t *d = NULL;
    unsigned char buf[512];
    cmp_pred_t p;
    CHECK(cmp_decoder_new(cfg, 1, &d, err, sizeof(err)) == 0);
    size_t len = avro_prediction_current(buf, -1, NAN, NULL, 0, -1); /* a regression's */
    memset(&p, 0xff, sizeof(p));
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && common_fields_read(&p));
    CHECK(p.has_decision == 0 && isnan(p.threshold) && p.outputs == NULL && p.n_outputs == 0 &&
          p.predicted_class == -1);
    cmp_decoder_destroy(d);
    ss_config_destroy(cfg);
}

static void avro_prediction_outputs_and_predicted_class_are_read(void) {
    ss_config_t *cfg = config("");
    cmp_decoder_t *d = NULL;
    unsigned char buf[512];
    const double probs[3] = {0.125, 0.75, 0.125};
    cmp_pred_t p;
    CHECK(cmp_decoder_new(cfg, 1, &d, err, sizeof(err)) == 0);
    size_t len = avro_prediction_current(buf, -1, NAN, probs, 3, 1); /* a multi-class one */
    memset(&p, 0, sizeof(p));
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && common_fields_read(&p));
    CHECK(p.has_decision == 0 && p.predicted_class == 1 && p.n_outputs == 3 && p.outputs &&
          p.outputs[0] == 0.125 && p.outputs[1] == 0.75 && p.outputs[2] == 0.125);
    /* an empty array: outputs, none of them */
    len = avro_prediction_current(buf, -1, NAN, probs, 0, 0);
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && p.n_outputs == 0 && p.predicted_class == 0);
    cmp_decoder_destroy(d);
    ss_config_destroy(cfg);
}

static void malformed_avro_prediction_is_refused(void) {
    ss_config_t *cfg = config("");
    cmp_decoder_t *d = NULL;
    unsigned char buf[512];
    const double probs[2] = {0.25, 0.75};
    cmp_pred_t p;
    CHECK(cmp_decoder_new(cfg, 1, &d, err, sizeof(err)) == 0);
    size_t len = avro_prediction_current(buf, 1, 0.5, probs, 2, 1);
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0); /* whole: read */
    /* cut anywhere: no version reads it (the older ones read the decision's union branch as
     * a boolean of 2) */
    for (size_t cut = 1; d && cut < len; cut++)
        if (cmp_decode(d, 0, buf, cut, &p) != SS_ERR_FAIL) {
            fprintf(stderr, "  a value cut to %zu of %zu bytes was read\n", cut, len);
            CHECK(0);
            break;
        }
    /* a union branch no version has (decision's index 5) */
    len = avro_prediction_current(buf, 1, 0.5, NULL, 0, -1);
    buf[put_head(buf)] = 0x0a;
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == SS_ERR_FAIL);
    /* a feature hash that is not 16 hex digits: every version reads the bytes, none a prediction */
    len = avro_prediction_routed(buf, "live");
    memcpy(buf + len - 5 - 2 - 16, "zz", 2); /* before route (5 bytes), degraded and
                                                contributions: its 16 digits */
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == SS_ERR_FAIL);
    cmp_decoder_destroy(d);
    ss_config_destroy(cfg);
}

static void avro_prediction_with_fields_of_a_later_version_is_read(void) {
    ss_config_t *cfg = config("");
    cmp_decoder_t *d = NULL;
    unsigned char buf[512];
    cmp_pred_t p;
    CHECK(cmp_decoder_new(cfg, 1, &d, err, sizeof(err)) == 0);
    size_t len = avro_prediction_current(buf, 1, 0.5, NULL, 0, -1);
    len += put_string(buf + len, "a field appended later");
    memset(&p, 0, sizeof(p));
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && common_fields_read(&p) && p.has_decision &&
          p.decision == 1 && route_is(&p, "canary"));
    cmp_decoder_destroy(d);
    ss_config_destroy(cfg);
}

/* output.schema of the user's (here the version with `route`) is read first, and the
 * versions it is not are read too. */
static void output_schema_and_every_version_are_read(void) {
    static const char route_schema[] =
        "{\"type\":\"record\",\"name\":\"Prediction\",\"fields\":["
        "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"customer_id\",\"type\":\"string\"}"
        ","
        "{\"name\":\"score\",\"type\":\"double\"},{\"name\":\"decision\",\"type\":\"boolean\"},"
        "{\"name\":\"threshold\",\"type\":\"double\"},{\"name\":\"model_name\",\"type\":\"string\"}"
        ","
        "{\"name\":\"model_version\",\"type\":\"string\"},{\"name\":\"source_topic\",\"type\":"
        "\"string\"},"
        "{\"name\":\"source_partition\",\"type\":\"int\"},{\"name\":\"source_offset\",\"type\":"
        "\"long\"},"
        "{\"name\":\"event_time\",\"type\":\"long\"},{\"name\":\"scored_at\",\"type\":\"long\"},"
        "{\"name\":\"feature_hash\",\"type\":\"string\"},{\"name\":\"contributions\",\"type\":"
        "[\"null\",{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"C\",\"fields\":["
        "{\"name\":\"feature\",\"type\":\"string\"},{\"name\":\"value\",\"type\":\"double\"}]}}]},"
        "{\"name\":\"degraded\",\"type\":\"boolean\"},{\"name\":\"route\",\"type\":\"string\"}]}";
    char path[] = "/tmp/test_tools_input-XXXXXX", extra[128];
    int fd = mkstemp(path);
    CHECK(fd >= 0 &&
          write(fd, route_schema, strlen(route_schema)) == (ssize_t)strlen(route_schema));
    if (fd >= 0)
        close(fd);
    snprintf(extra, sizeof(extra), "output.schema = %s\n", path);
    ss_config_t *cfg = config(extra);
    cmp_decoder_t *d = NULL;
    unsigned char buf[512];
    const double probs[2] = {0.25, 0.75};
    cmp_pred_t p;
    CHECK(cmp_decoder_new(cfg, 1, &d, err, sizeof(err)) == 0);
    size_t len = avro_prediction_routed(buf, "canary");
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && route_is(&p, "canary") &&
          common_fields_read(&p));
    len = avro_prediction(buf, 0);
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && route_is(&p, "live") && p.decision == 0);
    len = avro_prediction_current(buf, -1, NAN, probs, 2, 1);
    CHECK(d && cmp_decode(d, 0, buf, len, &p) == 0 && !p.has_decision && p.n_outputs == 2 &&
          p.predicted_class == 1 && common_fields_read(&p));
    cmp_decoder_destroy(d);
    ss_config_destroy(cfg);
    unlink(path);
}

static int json_decodes(cmp_decoder_t *d, const char *text, cmp_pred_t *p) {
    return cmp_decode(d, 1, text, strlen(text), p);
}

#define JSON_COMMON                                                                                \
    "\"customer_id\": \"C1\", \"score\": 0.75, \"source_partition\": 2, \"source_offset\": 1000, " \
    "\"feature_hash\": \"00112233445566ff\", \"source_topic\": \"customer-events\""

static void json_prediction_outputs_class_and_null_decision_are_read(void) {
    ss_config_t *cfg = config("output.format = json\n");
    cmp_decoder_t *d = NULL;
    cmp_pred_t p;
    CHECK(cmp_decoder_new(cfg, 0, &d, err, sizeof(err)) == 0);
    memset(&p, 0, sizeof(p));
    CHECK(d && json_decodes(d,
                            "{" JSON_COMMON ", \"decision\": null, \"threshold\": null, "
                            "\"outputs\": [0.25, 0.5, 0.25, 0], \"predicted_class\": 1}",
                            &p) == 0);
    CHECK(!p.has_decision && isnan(p.threshold) && p.n_outputs == 4 && p.outputs &&
          p.outputs[1] == 0.5 && p.outputs[3] == 0 && p.predicted_class == 1 &&
          route_is(&p, "live"));
    /* a binary one: a decision, outputs and class null */
    CHECK(d && json_decodes(d,
                            "{" JSON_COMMON ", \"decision\": true, \"threshold\": 0.5, "
                            "\"outputs\": null, \"predicted_class\": null}",
                            &p) == 0);
    CHECK(p.has_decision && p.decision == 1 && p.threshold == 0.5 && p.outputs == NULL &&
          p.predicted_class == -1);
    /* malformed: an output that is no number, a negative class, a class that is no integer,
     * outputs that are no array, no decision key at all */
    static const char *const bad[] = {
        "{" JSON_COMMON ", \"decision\": null, \"outputs\": [0.5, \"x\"]}",
        "{" JSON_COMMON ", \"decision\": null, \"outputs\": [0.5, null]}",
        "{" JSON_COMMON ", \"decision\": null, \"predicted_class\": -1}",
        "{" JSON_COMMON ", \"decision\": null, \"predicted_class\": 1.5}",
        "{" JSON_COMMON ", \"decision\": null, \"outputs\": 0.5}",
        "{" JSON_COMMON ", \"decision\": \"yes\"}",
        "{" JSON_COMMON "}"};
    for (size_t i = 0; d && i < sizeof(bad) / sizeof(bad[0]); i++)
        if (json_decodes(d, bad[i], &p) != SS_ERR_FAIL) {
            fprintf(stderr, "  read: %s\n", bad[i]);
            CHECK(0);
        }
    cmp_decoder_destroy(d);
    ss_config_destroy(cfg);
}

static void numeric_labels_are_values_and_0_or_1_also_classes(void) {
    cmp_t *c = calloc(1, sizeof(*c));
    char line[4][128] = {"customer_id,label,time\n", "R1,2.5,1000\n", "R2,1,1000\n",
                         "R3,-0.25e1,1000\n"};
    int header = 1, col[3] = {-1, -1, -1};
    double v;
    CHECK(c != NULL);
    for (int i = 0; c && i < 4; i++)
        CHECK(cmp_labels_csv_line(c, line[i], &header, col, "l.csv", err, sizeof(err)) == 0);
    const char *js = "{\"customer_id\": \"R4\", \"label\": 7.5, \"time\": 1000}";
    CHECK(c && cmp_labels_json(c, js, strlen(js)) == 0);
    const char *nan_label = "{\"customer_id\": \"R5\", \"label\": \"nan\", \"time\": 1000}";
    CHECK(c && cmp_labels_json(c, nan_label, strlen(nan_label)) == 0);
    CHECK(c && c->r.labels_rows == 4 && c->r.labels_malformed == 1);
    cmp_str_t r1 = {"R1", 2}, r2 = {"R2", 2}, r3 = {"R3", 2}, r4 = {"R4", 2}, r9 = {"R9", 2};
    /* sorted as cmp_labels_load sorts them: by customer hash, then time (one row each) */
    for (size_t i = 1; c && i < c->n_labels; i++)
        for (size_t k = i; k > 0 && c->labels[k - 1].cust > c->labels[k].cust; k--) {
            cmp_label_t t = c->labels[k];
            c->labels[k] = c->labels[k - 1], c->labels[k - 1] = t;
        }
    CHECK(c && cmp_label_of(c, &r1, 500, &v) == CMP_UNLABELED && v == 2.5);
    CHECK(c && cmp_label_of(c, &r2, 500, &v) == 1 && v == 1);
    CHECK(c && cmp_label_of(c, &r3, 500, &v) == CMP_UNLABELED && v == -2.5);
    CHECK(c && cmp_label_of(c, &r4, 500, &v) == CMP_UNLABELED && v == 7.5);
    CHECK(c && cmp_label_of(c, &r9, 500, &v) == CMP_UNLABELED && isnan(v));
    CHECK(c && cmp_label_of(c, &r1, 1500, &v) == CMP_UNLABELED && isnan(v)); /* before the event */
    if (c)
        free(c->labels);
    free(c);
}

static void label_value_with_a_time_beyond_64_bits_is_malformed(void) {
    static const char *const values[] = {
        "{\"customer_id\": \"C1\", \"label\": 1, \"time\": 1.71e87}",
        "{\"customer_id\": \"C1\", \"label\": 1, \"time\": -9.3e18}",
        "{\"customer_id\": \"C1\", \"label\": 1, \"time\": 9223372036854775808.0}"};
    cmp_t *c = calloc(1, sizeof(*c));
    CHECK(c != NULL);
    for (size_t i = 0; c && i < sizeof(values) / sizeof(values[0]); i++)
        CHECK(cmp_labels_json(c, values[i], strlen(values[i])) == 0);
    CHECK(c && c->r.labels_rows == 0 && c->r.labels_malformed == 3);
    /* within range: a row, its time truncated to the millisecond */
    const char *ok = "{\"customer_id\": \"C1\", \"label\": true, \"time\": 1709296200000.5}";
    CHECK(c && cmp_labels_json(c, ok, strlen(ok)) == 0);
    CHECK(c && c->r.labels_rows == 1 && c->n_labels == 1 && c->labels[0].time == 1709296200000 &&
          c->labels[0].label == 1);
    if (c)
        free(c->labels);
    free(c);
}

static void card_baseline_proportion_beyond_1_is_refused(void) {
    /* a share of 2.1e307 made the score's PSI infinite */
    static const char card[] =
        "{\"name\": \"m\", \"version\": \"1\", \"feature_names\": [\"a\"], "
        "\"score_baseline\": {\"edges\": [0.1, 0.9], \"proportions\": [0.21e308, 0.6, 0.2]}}";
    ss_model_t *m = ss_model_from_card(card, strlen(card), "c.json", err, sizeof(err));
    CHECK(m != NULL);
    err[0] = '\0';
    CHECK(m && ss_model_enable_drift(m, 4, 0.2, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "proportions must be in 0..1");
    ss_model_unref(m);
    /* shares within 0..1: drift is measured */
    static const char ok[] =
        "{\"name\": \"m\", \"version\": \"1\", \"feature_names\": [\"a\"], "
        "\"score_baseline\": {\"edges\": [0.1, 0.9], \"proportions\": [0.2, 0.6, 0.2]}}";
    m = ss_model_from_card(ok, strlen(ok), "c.json", err, sizeof(err));
    CHECK(m && ss_model_enable_drift(m, 4, 0.2, err, sizeof(err)) == 0 && m->drift);
    ss_model_unref(m);
}

/* A framed prediction found by fuzz_tools_json (tests/data/compare_prediction_leak.bin, after
 * its parser byte): a read making more allocations than compare tracked (256), then failing,
 * leaked one of 7870 bytes. */
static void failed_avro_read_with_many_allocations_leaks_nothing(void) {
    ss_config_t *cfg = config("output.schema.id = 7\n");
    cmp_decoder_t *d = NULL;
    static unsigned char buf[8192];
    cmp_pred_t p;
    FILE *f = fopen("tests/data/compare_prediction_leak.bin", "rb");
    size_t len = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f)
        fclose(f);
    CHECK(len > 1000);
    CHECK(cmp_decoder_new(cfg, 1, &d, err, sizeof(err)) == 0);
    CHECK(d && cmp_decode(d, 0, buf + 1, len - 1, &p) == SS_ERR_FAIL); /* warm up */
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; d && i < 50; i++)
        CHECK(cmp_decode(d, 0, buf + 1, len - 1, &p) == SS_ERR_FAIL);
    struct mallinfo2 after = mallinfo2();
    CHECK(after.uordblks < before.uordblks + 65536);
    if (after.uordblks >= before.uordblks + 65536)
        fprintf(stderr, "  %zu bytes more in use after 50 failed reads\n",
                after.uordblks - before.uordblks);
    cmp_decoder_destroy(d);
    ss_config_destroy(cfg);
}

static const check_test_t tests[] = {
    {"avro_prediction_decision_byte_beyond_1_is_malformed",
     avro_prediction_decision_byte_beyond_1_is_malformed},
    {"avro_prediction_of_each_schema_version_is_read",
     avro_prediction_of_each_schema_version_is_read},
    {"avro_prediction_with_null_decision_and_threshold_has_no_decision",
     avro_prediction_with_null_decision_and_threshold_has_no_decision},
    {"avro_prediction_outputs_and_predicted_class_are_read",
     avro_prediction_outputs_and_predicted_class_are_read},
    {"malformed_avro_prediction_is_refused", malformed_avro_prediction_is_refused},
    {"avro_prediction_with_fields_of_a_later_version_is_read",
     avro_prediction_with_fields_of_a_later_version_is_read},
    {"output_schema_and_every_version_are_read", output_schema_and_every_version_are_read},
    {"json_prediction_outputs_class_and_null_decision_are_read",
     json_prediction_outputs_class_and_null_decision_are_read},
    {"numeric_labels_are_values_and_0_or_1_also_classes",
     numeric_labels_are_values_and_0_or_1_also_classes},
    {"label_value_with_a_time_beyond_64_bits_is_malformed",
     label_value_with_a_time_beyond_64_bits_is_malformed},
    {"card_baseline_proportion_beyond_1_is_refused", card_baseline_proportion_beyond_1_is_refused},
    {"failed_avro_read_with_many_allocations_leaks_nothing",
     failed_avro_read_with_many_allocations_leaks_nothing},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
