/* test_tools_input.c - what the offline tools read from files and topics the user gives:
 * predictions (compare_decode.c), labels (compare_labels.c) and model cards (validate.c,
 * core/model.c). Regressions found by tests/fuzz/fuzz_tools_json.c live here. */
#include <malloc.h>
#include <math.h>
#include <stdlib.h>

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

static size_t put_bytes(unsigned char *p, const char *b, size_t n) {
    memcpy(p, b, n);
    return n;
}

static size_t put_double(unsigned char *p, double d) {
    memcpy(p, &d, 8); /* little-endian hosts */
    return 8;
}

/* A prediction of schemas/prediction.avsc in Avro, its decision byte `decision` (Avro: 0 or
 * 1). Its length. */
static size_t avro_prediction(unsigned char *buf, unsigned char decision) {
    unsigned char *p = buf;
    p += put_string(p, "ev-1");
    p += put_string(p, "C1");
    p += put_double(p, 0.75);
    *p++ = decision;
    p += put_double(p, 0.5);
    p += put_string(p, "churn");
    p += put_string(p, "1.0.0");
    p += put_string(p, "customer-events");
    p += put_bytes(p, "\x04", 1);                     /* source_partition 2 */
    p += put_bytes(p, "\xd0\x0f", 2);                 /* source_offset 1000 */
    p += put_bytes(p, "\x80\xa0\xab\xfe\xf9\x62", 6); /* event_time 1700000000000 */
    p += put_bytes(p, "\xe8\xa7\xab\xfe\xf9\x62", 6); /* scored_at 1700000000500 */
    p += put_string(p, "00112233445566ff");
    *p++ = 0; /* contributions: null */
    *p++ = 0; /* degraded */
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
    {"label_value_with_a_time_beyond_64_bits_is_malformed",
     label_value_with_a_time_beyond_64_bits_is_malformed},
    {"card_baseline_proportion_beyond_1_is_refused", card_baseline_proportion_beyond_1_is_refused},
    {"failed_avro_read_with_many_allocations_leaks_nothing",
     failed_avro_read_with_many_allocations_leaks_nothing},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
