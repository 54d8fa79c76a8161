/* test_prediction.c - prediction records: the Avro encoding reads back with the schema,
 * the JSON encoding is valid JSON with the same fields, strings are escaped. */
#include <avro.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "config.h"
#include "prediction.h"

static char err[1024];

static ss_config_t *config(const char *extra) {
    ss_config_t *c = ss_config_new();
    char text[512];
    snprintf(text, sizeof(text), "model.path = m.json\nkafka.bootstrap.servers = x:1\n%s", extra);
    if (ss_config_load_string(c, text, strlen(text), "t", err, sizeof(err)) < 0 ||
        ss_config_finalize(c, err, sizeof(err)) < 0)
        exit(1);
    return c;
}

static ss_prediction_t sample(void) {
    ss_prediction_t p;
    memset(&p, 0, sizeof(p));
    p.event_id = "ev-9";
    p.event_id_len = 4;
    p.customer_id = "C\"7\\x";
    p.customer_id_len = 5;
    p.score = 0.8125;
    p.decision = 1;
    p.threshold = 0.5;
    p.model_name = "churn";
    p.model_version = "1.0.0";
    p.source_topic = "customer-events";
    p.source_partition = 3;
    p.source_offset = 123456789012LL;
    p.event_time = 1700000000000LL;
    p.scored_at = 1700000000500LL;
    strcpy(p.feature_hash, "0123456789abcdef");
    return p;
}

static void avro_encoding_reads_back_with_the_schema(void) {
    ss_config_t *cfg = config("");
    ss_encoder_t *e = ss_encoder_new(cfg, err, sizeof(err));
    CHECK(e != NULL);
    if (!e)
        return;
    ss_prediction_t p = sample();
    const void *out = NULL;
    size_t len = 0;
    CHECK(ss_encoder_encode(e, &p, &out, &len, err, sizeof(err)) == 0);
    avro_schema_t s = ss_schema_load("schemas/prediction.avsc", "t", err, sizeof(err));
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec, f;
    avro_generic_value_new(iface, &rec);
    avro_reader_t r = avro_reader_memory(out, (int64_t)len);
    CHECK(avro_value_read(r, &rec) == 0);
    const char *str = NULL;
    size_t sz = 0;
    double d = 0;
    int64_t l = 0;
    int32_t i32 = 0;
    int b = 0;
    avro_value_get_by_name(&rec, "customer_id", &f, NULL);
    avro_value_get_string(&f, &str, &sz);
    CHECK(sz == 6 && memcmp(str, "C\"7\\x", 5) == 0);
    avro_value_get_by_name(&rec, "score", &f, NULL);
    avro_value_get_double(&f, &d);
    CHECK(d == 0.8125);
    avro_value_get_by_name(&rec, "decision", &f, NULL);
    avro_value_get_boolean(&f, &b);
    CHECK(b == 1);
    avro_value_get_by_name(&rec, "source_offset", &f, NULL);
    avro_value_get_long(&f, &l);
    CHECK(l == 123456789012LL);
    avro_value_get_by_name(&rec, "source_partition", &f, NULL);
    avro_value_get_int(&f, &i32);
    CHECK(i32 == 3);
    avro_value_get_by_name(&rec, "feature_hash", &f, NULL);
    avro_value_get_string(&f, &str, &sz);
    CHECK(strcmp(str, "0123456789abcdef") == 0);
    avro_value_get_by_name(&rec, "contributions", &f, NULL);
    int disc = -1;
    avro_value_get_discriminant(&f, &disc);
    CHECK(disc == 0);
    avro_reader_free(r);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
}

/* The reference: the same record through Avro C's generic value and writer. */
static size_t avro_c_encode(avro_schema_t s, const ss_prediction_t *p, char *buf, size_t cap) {
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec, f, br;
    avro_generic_value_new(iface, &rec);
    if (!avro_value_get_by_name(&rec, "event_id", &f, NULL))
        avro_value_set_string_len(&f, p->event_id, p->event_id_len + 1);
    if (!avro_value_get_by_name(&rec, "customer_id", &f, NULL))
        avro_value_set_string_len(&f, p->customer_id, p->customer_id_len + 1);
    if (!avro_value_get_by_name(&rec, "score", &f, NULL))
        avro_value_set_double(&f, p->score);
    if (!avro_value_get_by_name(&rec, "decision", &f, NULL))
        avro_value_set_boolean(&f, p->decision);
    if (!avro_value_get_by_name(&rec, "threshold", &f, NULL))
        avro_value_set_double(&f, p->threshold);
    if (!avro_value_get_by_name(&rec, "model_name", &f, NULL))
        avro_value_set_string(&f, p->model_name);
    if (!avro_value_get_by_name(&rec, "model_version", &f, NULL))
        avro_value_set_string(&f, p->model_version);
    if (!avro_value_get_by_name(&rec, "source_topic", &f, NULL))
        avro_value_set_string(&f, p->source_topic);
    if (!avro_value_get_by_name(&rec, "source_partition", &f, NULL))
        avro_value_set_int(&f, p->source_partition);
    if (!avro_value_get_by_name(&rec, "source_offset", &f, NULL))
        avro_value_set_long(&f, p->source_offset);
    if (!avro_value_get_by_name(&rec, "event_time", &f, NULL))
        avro_value_set_long(&f, p->event_time);
    if (!avro_value_get_by_name(&rec, "scored_at", &f, NULL))
        avro_value_set_long(&f, p->scored_at);
    if (!avro_value_get_by_name(&rec, "feature_hash", &f, NULL))
        avro_value_set_string(&f, p->feature_hash);
    if (!avro_value_get_by_name(&rec, "contributions", &f, NULL)) {
        avro_value_set_branch(&f, 0, &br);
        avro_value_set_null(&br);
    }
    if (!avro_value_get_by_name(&rec, "degraded", &f, NULL))
        avro_value_set_boolean(&f, p->degraded);
    avro_writer_t w = avro_writer_memory(buf, (int64_t)cap);
    size_t n = avro_value_write(w, &rec) == 0 ? (size_t)avro_writer_tell(w) : 0;
    avro_writer_free(w);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    return n;
}

static uint64_t rnd_state = 88172645463325252ULL;
static uint64_t rnd(void) { /* xorshift64 */
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static int64_t rnd_long(void) {
    static const int64_t edges[] = {
        0,    1,    -1,        63,        64,        -64,       -65,
        8191, 8192, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, 1700000000000LL};
    return rnd() % 3 == 0 ? edges[rnd() % (sizeof(edges) / sizeof(edges[0]))]
                          : (int64_t)(rnd() >> (rnd() % 64));
}

static double rnd_double(void) {
    static const double edges[] = {0.0, -0.0, 1.0, 0.5, INFINITY, -INFINITY, NAN, 1e-310};
    if (rnd() % 4 == 0)
        return edges[rnd() % (sizeof(edges) / sizeof(edges[0]))];
    uint64_t u = rnd();
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* Each record of `schema_path` encoded by the encoder and by Avro C: the same bytes. */
static void same_bytes_as_avro_c(const char *schema_path, const char *extra) {
    ss_config_t *cfg = config(extra);
    ss_encoder_t *e = ss_encoder_new(cfg, err, sizeof(err));
    avro_schema_t s = ss_schema_load(schema_path, "t", err, sizeof(err));
    CHECK(e != NULL && s != NULL);
    if (!e || !s)
        return;
    static char strs[4][400];
    static char ref[4096];
    int mismatches = 0;
    for (int n = 0; n < 3000; n++) {
        size_t lens[4];
        for (int k = 0; k < 4; k++) {
            lens[k] = (size_t)(rnd() % (n % 10 == 0 ? 400 : 20));
            for (size_t c = 0; c < lens[k]; c++)
                strs[k][c] = (char)(1 + rnd() % 255); /* any byte but NUL */
            strs[k][lens[k]] = '\0';
        }
        ss_prediction_t p = sample();
        p.event_id = strs[0];
        p.event_id_len = lens[0];
        p.customer_id = strs[1];
        p.customer_id_len = lens[1];
        p.model_version = strs[2];
        p.source_topic = strs[3];
        p.score = rnd_double();
        p.threshold = rnd_double();
        p.decision = (int)(rnd() & 1);
        p.degraded = (int)(rnd() & 1);
        p.source_partition = (int32_t)rnd_long();
        p.source_offset = rnd_long();
        p.event_time = rnd_long();
        p.scored_at = rnd_long();
        const void *out = NULL;
        size_t len = 0;
        CHECK(ss_encoder_encode(e, &p, &out, &len, err, sizeof(err)) == 0);
        size_t rlen = avro_c_encode(s, &p, ref, sizeof(ref));
        mismatches += rlen == 0 || rlen != len || memcmp(out, ref, len) != 0;
    }
    CHECK(mismatches == 0);
    avro_schema_decref(s);
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
}

static void avro_encoding_is_byte_for_byte_avro_c(void) {
    same_bytes_as_avro_c("schemas/prediction.avsc", "");
    /* a schema of its own: some fields, in another order */
    const char *path = "/tmp/test_prediction_subset.avsc";
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"scored_at\",\"type\":"
          "\"long\"},"
          "{\"name\":\"customer_id\",\"type\":\"string\"},{\"name\":\"degraded\",\"type\":"
          "\"boolean\"},{\"name\":\"score\",\"type\":\"double\"},{\"name\":\"source_partition\","
          "\"type\":\"int\"},{\"name\":\"contributions\",\"type\":[\"null\",{\"type\":\"array\","
          "\"items\":\"double\"}]},{\"name\":\"event_id\",\"type\":\"string\"}]}",
          f);
    fclose(f);
    char extra[256];
    snprintf(extra, sizeof(extra), "output.schema = %s\n", path);
    same_bytes_as_avro_c(path, extra);
    unlink(path);
}

static void json_encoding_is_valid_json_with_the_same_fields(void) {
    ss_config_t *cfg = config("output.format = json\n");
    ss_encoder_t *e = ss_encoder_new(cfg, err, sizeof(err));
    ss_prediction_t p = sample();
    const void *out = NULL;
    size_t len = 0;
    CHECK(e != NULL);
    if (!e)
        return;
    CHECK(ss_encoder_encode(e, &p, &out, &len, err, sizeof(err)) == 0);
    json_error_t jerr;
    json_t *j = json_loadb(out, len, 0, &jerr);
    CHECK(j != NULL);
    if (j) {
        CHECK(strcmp(json_string_value(json_object_get(j, "customer_id")), "C\"7\\x") == 0);
        CHECK(json_real_value(json_object_get(j, "score")) == 0.8125);
        CHECK(json_is_true(json_object_get(j, "decision")));
        CHECK(json_integer_value(json_object_get(j, "source_offset")) == 123456789012LL);
        CHECK(strcmp(json_string_value(json_object_get(j, "model_version")), "1.0.0") == 0);
        CHECK(json_is_null(json_object_get(j, "contributions")));
        json_decref(j);
    }
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
}

static void framed_avro_starts_with_magic_byte_and_schema_id_then_the_same_body(void) {
    ss_config_t *cfg = config("");
    ss_encoder_t *plain = ss_encoder_new(cfg, err, sizeof(err));
    ss_encoder_t *framed = ss_encoder_new(cfg, err, sizeof(err));
    CHECK(plain != NULL && framed != NULL);
    if (!plain || !framed)
        return;
    ss_encoder_set_schema_id(framed, 0x01020304);
    ss_prediction_t p = sample();
    const void *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    CHECK(ss_encoder_encode(plain, &p, &a, &alen, err, sizeof(err)) == 0);
    CHECK(ss_encoder_encode(framed, &p, &b, &blen, err, sizeof(err)) == 0);
    const unsigned char *h = b;
    CHECK(blen == alen + 5);
    CHECK(h[0] == 0 && h[1] == 1 && h[2] == 2 && h[3] == 3 && h[4] == 4);
    CHECK(memcmp(h + 5, a, alen) == 0);
    char name[256];
    ss_encoder_schema_fullname(framed, name, sizeof(name));
    CHECK_STR_CONTAINS(name, "Prediction");
    ss_encoder_destroy(plain);
    ss_encoder_destroy(framed);
    ss_config_destroy(cfg);
}

static void json_output_ignores_a_schema_id(void) {
    ss_config_t *cfg = config("output.format = json\n");
    ss_encoder_t *e = ss_encoder_new(cfg, err, sizeof(err));
    CHECK(e != NULL);
    if (!e)
        return;
    ss_encoder_set_schema_id(e, 7);
    ss_prediction_t p = sample();
    const void *out = NULL;
    size_t len = 0;
    CHECK(ss_encoder_encode(e, &p, &out, &len, err, sizeof(err)) == 0);
    CHECK(len > 0 && ((const char *)out)[0] == '{');
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
}

static void the_default_schemas_load_from_any_directory(void) {
    char cwd[4096], dir[] = "/tmp/ss-test-cwd-XXXXXX";
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL && mkdtemp(dir) != NULL && chdir(dir) == 0);
    ss_config_t *cfg = config(""); /* input.schema and output.schema at their defaults */
    ss_encoder_t *e = ss_encoder_new(cfg, err, sizeof(err));
    CHECK(e != NULL);
    avro_schema_t in = ss_schema_load(cfg->input_schema, "input.schema", err, sizeof(err));
    CHECK(in != NULL && strcmp(avro_schema_name(in), "CustomerEvent") == 0);
    /* a path set by the user that names no file is still an error */
    CHECK(ss_schema_load("schemas/nope.avsc", "output.schema", err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "schemas/nope.avsc");
    if (in)
        avro_schema_decref(in);
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
    CHECK(chdir(cwd) == 0 && rmdir(dir) == 0);
}

static void output_schema_with_unknown_field_is_a_config_error(void) {
    FILE *f = fopen("build/test_bad_prediction.avsc", "w");
    if (!f)
        f = fopen("/tmp/test_bad_prediction.avsc", "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(
        "{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"score\",\"type\":\"double\"},"
        "{\"name\":\"mystery\",\"type\":\"int\"}]}",
        f);
    fclose(f);
    const char *path = access("build/test_bad_prediction.avsc", R_OK) == 0
                           ? "build/test_bad_prediction.avsc"
                           : "/tmp/test_bad_prediction.avsc";
    char extra[256];
    snprintf(extra, sizeof(extra), "output.schema = %s\n", path);
    ss_config_t *cfg = config(extra);
    CHECK(ss_encoder_new(cfg, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "'output.schema'");
    CHECK_STR_CONTAINS(err, "mystery");
    ss_config_destroy(cfg);
}

static const check_test_t tests[] = {
    {"avro_encoding_reads_back_with_the_schema", avro_encoding_reads_back_with_the_schema},
    {"avro_encoding_is_byte_for_byte_avro_c", avro_encoding_is_byte_for_byte_avro_c},
    {"json_encoding_is_valid_json_with_the_same_fields",
     json_encoding_is_valid_json_with_the_same_fields},
    {"framed_avro_starts_with_magic_byte_and_schema_id_then_the_same_body",
     framed_avro_starts_with_magic_byte_and_schema_id_then_the_same_body},
    {"json_output_ignores_a_schema_id", json_output_ignores_a_schema_id},
    {"output_schema_with_unknown_field_is_a_config_error",
     output_schema_with_unknown_field_is_a_config_error},
    {"the_default_schemas_load_from_any_directory", the_default_schemas_load_from_any_directory},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
