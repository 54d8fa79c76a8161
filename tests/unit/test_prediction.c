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
    p.predicted_class = -1;
    p.contributions_output = -1;
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
    avro_value_t br;
    int disc0 = -1;
    avro_value_get_by_name(&rec, "decision", &f, NULL);
    avro_value_get_discriminant(&f, &disc0);
    avro_value_get_current_branch(&f, &br);
    avro_value_get_boolean(&br, &b);
    CHECK(disc0 == 1 && b == 1);
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

/* A nullable field `f` (a union with null first): its null branch, or with `has` its value
 * branch in `br` (returns 1: the caller sets it). A field that is not a union: 0, unset. */
static avro_value_t br;
static int set_opt(avro_value_t *f, int has) {
    if (avro_value_get_type(f) != AVRO_UNION)
        return 0;
    if (!has) {
        avro_value_set_branch(f, 0, &br);
        avro_value_set_null(&br);
        return 0;
    }
    avro_value_set_branch(f, 1, &br);
    return 1;
}

/* The reference: the same record through Avro C's generic value and writer. */
static size_t avro_c_encode(avro_schema_t s, const ss_prediction_t *p, char *buf, size_t cap) {
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec, f;
    avro_generic_value_new(iface, &rec);
    if (!avro_value_get_by_name(&rec, "event_id", &f, NULL))
        avro_value_set_string_len(&f, p->event_id, p->event_id_len + 1);
    if (!avro_value_get_by_name(&rec, "customer_id", &f, NULL))
        avro_value_set_string_len(&f, p->customer_id, p->customer_id_len + 1);
    if (!avro_value_get_by_name(&rec, "score", &f, NULL))
        avro_value_set_double(&f, p->score);
    if (!avro_value_get_by_name(&rec, "decision", &f, NULL))
        set_opt(&f, p->decision >= 0) ? avro_value_set_boolean(&br, p->decision)
                                      : avro_value_set_boolean(&f, p->decision);
    if (!avro_value_get_by_name(&rec, "threshold", &f, NULL))
        set_opt(&f, !isnan(p->threshold)) ? avro_value_set_double(&br, p->threshold)
                                          : avro_value_set_double(&f, p->threshold);
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
        avro_value_set_branch(&f, p->contributions ? 1 : 0, &br);
        for (size_t i = 0; p->contributions && i < p->n_contributions; i++) {
            avro_value_t item, g, gb;
            avro_value_append(&br, &item, NULL);
            avro_value_get_by_name(&item, "feature", &g, NULL);
            avro_value_set_string(&g, p->contributions[i].feature);
            if (!avro_value_get_by_name(&item, "contribution", &g, NULL))
                avro_value_set_double(&g, p->contributions[i].contribution);
            avro_value_get_by_name(&item, "value", &g, NULL);
            if (avro_value_get_type(&g) != AVRO_UNION)
                avro_value_set_double(&g, p->contributions[i].value);
            else if (isnan(p->contributions[i].value))
                avro_value_set_branch(&g, 0, &gb);
            else if (avro_value_set_branch(&g, 1, &gb) == 0)
                avro_value_set_double(&gb, p->contributions[i].value);
        }
    }
    if (!avro_value_get_by_name(&rec, "outputs", &f, NULL)) {
        avro_value_set_branch(&f, p->outputs ? 1 : 0, &br);
        for (size_t i = 0; p->outputs && i < p->n_outputs; i++) {
            avro_value_t item;
            avro_value_append(&br, &item, NULL);
            avro_value_set_double(&item, p->outputs[i]);
        }
    }
    if (!avro_value_get_by_name(&rec, "predicted_class", &f, NULL) &&
        set_opt(&f, p->predicted_class >= 0))
        avro_value_set_int(&br, p->predicted_class);
    if (!avro_value_get_by_name(&rec, "contributions_bias", &f, NULL) &&
        set_opt(&f, p->contributions != NULL))
        avro_value_set_double(&br, p->contributions_bias);
    if (!avro_value_get_by_name(&rec, "contributions_output", &f, NULL) &&
        set_opt(&f, p->contributions && p->contributions_output >= 0))
        avro_value_set_int(&br, p->contributions_output);
    if (!avro_value_get_by_name(&rec, "degraded", &f, NULL))
        avro_value_set_boolean(&f, p->degraded);
    if (!avro_value_get_by_name(&rec, "route", &f, NULL))
        avro_value_set_string(&f, p->route ? p->route : "live");
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
        p.threshold = rnd() % 4 == 0 ? NAN : rnd_double();
        p.decision = isnan(p.threshold) ? -1 : (int)(rnd() & 1);
        static double outs[8];
        static ss_contribution_t contribs[4];
        static const char *const names[] = {"tenure", "", "monthly_charges", "x\"y"};
        p.n_outputs = (size_t)(rnd() % 8);
        p.outputs = rnd() % 3 == 0 ? NULL : outs;
        for (size_t k = 0; k < p.n_outputs; k++)
            outs[k] = rnd_double();
        p.predicted_class = rnd() % 3 == 0 ? -1 : (int)(rnd() % 1000);
        p.n_contributions = (size_t)(rnd() % 5);
        p.contributions = rnd() % 2 ? NULL : contribs;
        for (size_t k = 0; k < p.n_contributions; k++)
            contribs[k] =
                (ss_contribution_t){names[rnd() % 4], rnd() % 3 ? rnd_double() : NAN, rnd_double()};
        p.contributions_bias = rnd_double();
        p.contributions_output = rnd() % 2 ? -1 : (int)(rnd() % 10);
        p.degraded = (int)(rnd() & 1);
        p.route = rnd() % 3 == 0 ? NULL : rnd() & 1 ? "canary" : "live";
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
          "\"items\":{\"type\":\"record\",\"name\":\"C\",\"fields\":[{\"name\":\"feature\","
          "\"type\":\"string\"},{\"name\":\"value\",\"type\":\"double\"}]}}]},"
          "{\"name\":\"event_id\",\"type\":\"string\"}]}",
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

/* ---- output.schema checked field by field at start-up */

/* schemas/prediction.avsc with field `name`'s type replaced by `type` (JSON), or, when the
 * schema has no such field, with field `name` of that type (and `def`, JSON, as its default
 * unless NULL) appended; written to a file whose path is returned. */
static const char *variant(const char *name, const char *type, const char *def) {
    static char path[64];
    json_error_t jerr;
    json_t *s = json_load_file("schemas/prediction.avsc", 0, &jerr);
    json_t *t = json_loads(type, JSON_DECODE_ANY, &jerr);
    CHECK(s != NULL && t != NULL);
    json_t *fields = json_object_get(s, "fields"), *f = NULL;
    size_t i;
    int found = 0;
    json_array_foreach(fields, i, f) {
        if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0) {
            json_object_set(f, "type", t);
            found = 1;
        }
    }
    if (!found) {
        f = json_pack("{s:s, s:O}", "name", name, "type", t);
        if (def)
            json_object_set_new(f, "default", json_loads(def, JSON_DECODE_ANY, &jerr));
        json_array_append_new(fields, f);
    }
    snprintf(path, sizeof(path), "/tmp/test_prediction_variant_%d.avsc", (int)getpid());
    CHECK(json_dump_file(s, path, JSON_COMPACT) == 0);
    json_decref(t);
    json_decref(s);
    return path;
}

/* The encoder of output.schema = `path`; NULL with err when refused. */
static ss_encoder_t *encoder_of(const char *path, ss_config_t **cfg) {
    char extra[256];
    snprintf(extra, sizeof(extra), "output.schema = %s\n", path);
    *cfg = config(extra);
    return ss_encoder_new(*cfg, err, sizeof(err));
}

/* Start-up refuses the schema, naming the key, the field and both types. */
static void refused(const char *path, const char *field, const char *is, const char *writes) {
    ss_config_t *cfg;
    ss_encoder_t *e = encoder_of(path, &cfg);
    CHECK(e == NULL);
    CHECK_STR_CONTAINS(err, "'output.schema'");
    CHECK_STR_CONTAINS(err, field);
    CHECK_STR_CONTAINS(err, is);
    CHECK_STR_CONTAINS(err, writes);
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
    unlink(path);
}

static void a_float_score_is_refused_naming_the_field(void) {
    refused(variant("score", "\"float\"", NULL), "field 'score'", "is float", "writes double");
    refused(variant("threshold", "\"float\"", NULL), "field 'threshold'", "is float",
            "writes double");
}

static void an_int_source_offset_is_refused_naming_the_field(void) {
    refused(variant("source_offset", "\"int\"", NULL), "field 'source_offset'", "is int",
            "writes long");
    refused(variant("event_time", "{\"type\":\"int\",\"logicalType\":\"date\"}", NULL),
            "field 'event_time'", "is int", "writes long");
    refused(variant("decision", "\"string\"", NULL), "field 'decision'", "is string",
            "writes boolean");
    refused(variant("customer_id", "\"bytes\"", NULL), "field 'customer_id'", "is bytes",
            "writes string");
}

static void a_union_without_the_written_type_is_refused(void) {
    refused(variant("event_id", "[\"null\",\"int\"]", NULL), "field 'event_id'",
            "is [\"null\", \"int\"]", "writes string");
    refused(variant("contributions", "\"string\"", NULL), "field 'contributions'", "is string",
            "writes null");
    refused(variant("contributions", "[\"null\",\"string\"]", NULL), "field 'contributions'",
            "is [\"null\", \"string\"]", "writes null");
}

static void a_wrong_type_in_the_nested_contribution_record_is_refused(void) {
    const char *c = "[\"null\",{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":"
                    "\"Contribution\",\"fields\":[{\"name\":\"feature\",\"type\":\"string\"},"
                    "{\"name\":\"value\",\"type\":\"float\"}]}}]";
    refused(variant("contributions", c, NULL), "field 'contributions.value'", "is float",
            "writes double");
    c = "[\"null\",{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"Contribution\","
        "\"fields\":[{\"name\":\"feature\",\"type\":\"string\"},{\"name\":\"rank\",\"type\":"
        "\"int\"}]}}]";
    refused(variant("contributions", c, NULL), "field 'contributions.rank'", "not one", "nullable");
    refused(variant("contributions", "[\"null\",{\"type\":\"array\",\"items\":\"double\"}]", NULL),
            "field 'contributions'", "is double",
            "records {feature: string, value: double, contribution: double}");
}

static void a_field_streamscore_does_not_fill_needs_a_default_or_null(void) {
    refused(variant("region", "\"string\"", NULL), "field 'region'", "not one streamscore fills",
            "default or make it nullable");
    refused(variant("region", "\"int\"", "\"eu\""), "field 'region'", "default", "not a valid int");
    refused(variant("region", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}", "\"abc\""),
            "field 'region'", "default", "not a valid fixed F");
}

/* Field `name` of the decoded record `rec`, through its union branch if it is one. */
static avro_value_t get(avro_value_t *rec, const char *name, int *branch) {
    avro_value_t f, b;
    *branch = -1;
    CHECK(avro_value_get_by_name(rec, name, &f, NULL) == 0);
    if (avro_value_get_type(&f) != AVRO_UNION)
        return f;
    CHECK(avro_value_get_discriminant(&f, branch) == 0);
    CHECK(avro_value_get_current_branch(&f, &b) == 0);
    return b;
}

/* A record decoded with Avro C, and the scalars read from its fields. */
typedef struct {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t rec;
    const char *str;
    const void *bytes;
    size_t sz;
    double d;
    float fl;
    int64_t l;
    int32_t i32;
    int branch;
} decoded_t;

/* `p` encoded with schema `path` decodes back with Avro C, all of it. */
static void decodes_back(const char *path, const ss_prediction_t *p, decoded_t *out) {
    ss_config_t *cfg;
    ss_encoder_t *e = encoder_of(path, &cfg);
    CHECK(e != NULL);
    const void *buf = NULL;
    size_t len = 0;
    memset(out, 0, sizeof(*out));
    CHECK(e && ss_encoder_encode(e, p, &buf, &len, err, sizeof(err)) == 0);
    out->schema = ss_schema_load(path, "t", err, sizeof(err));
    out->iface = avro_generic_class_from_schema(out->schema);
    CHECK(avro_generic_value_new(out->iface, &out->rec) == 0);
    avro_reader_t r = avro_reader_memory(buf, (int64_t)len);
    CHECK(avro_value_read(r, &out->rec) == 0);
    size_t size = 0; /* nothing written beyond the record */
    CHECK(avro_value_sizeof(&out->rec, &size) == 0 && size == len);
    avro_reader_free(r);
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
}

static void decoded_free(decoded_t *x) {
    avro_value_decref(&x->rec);
    avro_value_iface_decref(x->iface);
    avro_schema_decref(x->schema);
}

static void a_nullable_event_id_is_written_in_its_string_branch(void) {
    ss_prediction_t p = sample();
    const char *path = variant("event_id", "[\"null\",\"string\"]", NULL);
    decoded_t x;
    decodes_back(path, &p, &x);
    avro_value_t f = get(&x.rec, "event_id", &x.branch);
    CHECK(x.branch == 1 && avro_value_get_string(&f, &x.str, &x.sz) == 0 &&
          strcmp(x.str, "ev-9") == 0);
    f = get(&x.rec, "score", &x.branch);
    CHECK(avro_value_get_double(&f, &x.d) == 0 && x.d == 0.8125);
    decoded_free(&x);
    unlink(path);
}

static void unions_defaults_and_nulls_decode_back(void) {
    /* score after null in a union, a long partition, contributions with null second, and
     * fields streamscore does not fill: a default of each kind, a nullable one */
    const char *schema =
        "{\"type\":\"record\",\"name\":\"P\",\"fields\":["
        "{\"name\":\"score\",\"type\":[\"null\",\"string\",\"double\"]},"
        "{\"name\":\"region\",\"type\":\"string\",\"default\":\"eu-\\u00e9\"},"
        "{\"name\":\"source_partition\",\"type\":\"long\"},"
        "{\"name\":\"note\",\"type\":[\"null\",\"string\"]},"
        "{\"name\":\"contributions\",\"type\":[{\"type\":\"array\",\"items\":{\"type\":\"record\","
        "\"name\":\"C\",\"fields\":[{\"name\":\"feature\",\"type\":\"string\"},{\"name\":\"value\","
        "\"type\":[\"null\",\"double\"]}]}},\"null\"]},"
        "{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":\"int\"},\"default\":{\"a\":7}},"
        "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"K\",\"symbols\":[\"A\",\"B\"]},"
        "\"default\":\"B\"},"
        "{\"name\":\"raw\",\"type\":\"bytes\",\"default\":\"\\u00ff\\u0001\"},"
        "{\"name\":\"pair\",\"type\":{\"type\":\"record\",\"name\":\"Q\",\"fields\":[{\"name\":"
        "\"x\",\"type\":\"float\"},{\"name\":\"y\",\"type\":[\"null\",\"long\"]}]},"
        "\"default\":{\"x\":1.5,\"y\":null}},"
        "{\"name\":\"scored_at\",\"type\":[\"null\",{\"type\":\"long\",\"logicalType\":"
        "\"timestamp-millis\"}],\"default\":null}]}";
    const char *path = "/tmp/test_prediction_unions.avsc";
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (!fp)
        return;
    fputs(schema, fp);
    fclose(fp);
    ss_prediction_t p = sample();
    decoded_t x;
    decodes_back(path, &p, &x);
    avro_value_t f = get(&x.rec, "score", &x.branch), g;
    CHECK(x.branch == 2 && avro_value_get_double(&f, &x.d) == 0 && x.d == 0.8125);
    f = get(&x.rec, "region", &x.branch);
    CHECK(avro_value_get_string(&f, &x.str, &x.sz) == 0 && strcmp(x.str, "eu-\xc3\xa9") == 0);
    f = get(&x.rec, "source_partition", &x.branch);
    CHECK(avro_value_get_long(&f, &x.l) == 0 && x.l == 3);
    f = get(&x.rec, "note", &x.branch);
    CHECK(x.branch == 0);
    f = get(&x.rec, "contributions", &x.branch);
    CHECK(x.branch == 1);
    f = get(&x.rec, "tags", &x.branch);
    CHECK(avro_value_get_by_name(&f, "a", &g, NULL) == 0 && avro_value_get_int(&g, &x.i32) == 0 &&
          x.i32 == 7);
    f = get(&x.rec, "kind", &x.branch);
    CHECK(avro_value_get_enum(&f, &x.i32) == 0 && x.i32 == 1);
    f = get(&x.rec, "raw", &x.branch);
    CHECK(avro_value_get_bytes(&f, &x.bytes, &x.sz) == 0 && x.sz == 2 &&
          memcmp(x.bytes, "\xff\x01", 2) == 0);
    f = get(&x.rec, "pair", &x.branch);
    CHECK(avro_value_get_by_name(&f, "x", &g, NULL) == 0 && avro_value_get_float(&g, &x.fl) == 0 &&
          x.fl == 1.5f);
    f = get(&x.rec, "scored_at", &x.branch);
    CHECK(x.branch == 1 && avro_value_get_long(&f, &x.l) == 0 && x.l == 1700000000500LL);
    decoded_free(&x);
    unlink(path);
}

/* What a model writes must fit: no decision needs a nullable decision and threshold, and
 * explanations need the contribution field of the item record. */
static void a_schema_that_cannot_hold_what_the_model_writes_is_refused(void) {
    ss_encoder_needs_t none = {0}, no_decision = {.no_decision = 1}, explain = {.contributions = 1};
    ss_config_t *cfg;
    ss_encoder_t *e = encoder_of("schemas/prediction.avsc", &cfg);
    CHECK(e &&
          ss_encoder_check_needs(e, &no_decision, "objective reg:gamma", err, sizeof(err)) == 0);
    CHECK(e && ss_encoder_check_needs(e, &explain, "x", err, sizeof(err)) == 0);
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
    const char *path = variant("decision", "\"boolean\"", NULL);
    e = encoder_of(path, &cfg);
    CHECK(e && ss_encoder_check_needs(e, &none, "x", err, sizeof(err)) == 0);
    CHECK(e &&
          ss_encoder_check_needs(e, &no_decision, "objective reg:gamma", err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "'output.schema'");
    CHECK_STR_CONTAINS(err, "field 'decision'");
    CHECK_STR_CONTAINS(err, "reg:gamma");
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
    unlink(path);
    path = variant("contributions",
                   "[\"null\",{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":"
                   "\"C\",\"fields\":[{\"name\":\"feature\",\"type\":\"string\"},{\"name\":"
                   "\"value\",\"type\":\"double\"}]}}]",
                   NULL);
    e = encoder_of(path, &cfg);
    CHECK(e && ss_encoder_check_needs(e, &none, "x", err, sizeof(err)) == 0);
    CHECK(e && ss_encoder_check_needs(e, &explain, "x", err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "'contribution'");
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
    unlink(path);
}

/* Every output, the class and an explanation, as JSON: null where there is none. */
static void json_carries_outputs_class_and_explanation(void) {
    ss_config_t *cfg = config("output.format = json\n");
    ss_encoder_t *e = ss_encoder_new(cfg, err, sizeof(err));
    ss_prediction_t p = sample();
    double outs[3] = {0.25, 0.5, 0.25};
    ss_contribution_t c[2] = {{"tenure", NAN, -0.75}, {"x\"y", 3.5, 0.125}};
    p.decision = -1;
    p.threshold = NAN;
    p.outputs = outs;
    p.n_outputs = 3;
    p.predicted_class = 1;
    p.contributions = c;
    p.n_contributions = 2;
    p.contributions_bias = -1.5;
    p.contributions_output = 1;
    const void *out = NULL;
    size_t len = 0;
    CHECK(e && ss_encoder_encode(e, &p, &out, &len, err, sizeof(err)) == 0);
    json_error_t jerr;
    json_t *j = e ? json_loadb(out, len, 0, &jerr) : NULL;
    CHECK(j != NULL);
    CHECK(json_is_null(json_object_get(j, "decision")) &&
          json_is_null(json_object_get(j, "threshold")));
    CHECK(json_array_size(json_object_get(j, "outputs")) == 3 &&
          json_real_value(json_array_get(json_object_get(j, "outputs"), 1)) == 0.5);
    CHECK(json_integer_value(json_object_get(j, "predicted_class")) == 1);
    json_t *c0 = json_array_get(json_object_get(j, "contributions"), 0);
    json_t *c1 = json_array_get(json_object_get(j, "contributions"), 1);
    CHECK(strcmp(json_string_value(json_object_get(c0, "feature")), "tenure") == 0 &&
          json_is_null(json_object_get(c0, "value")) &&
          json_real_value(json_object_get(c0, "contribution")) == -0.75);
    CHECK(strcmp(json_string_value(json_object_get(c1, "feature")), "x\"y") == 0 &&
          json_real_value(json_object_get(c1, "value")) == 3.5);
    CHECK(json_real_value(json_object_get(j, "contributions_bias")) == -1.5 &&
          json_integer_value(json_object_get(j, "contributions_output")) == 1);
    json_decref(j);
    p = sample();
    p.predicted_class = -1;
    p.contributions_output = -1;
    CHECK(e && ss_encoder_encode(e, &p, &out, &len, err, sizeof(err)) == 0);
    j = e ? json_loadb(out, len, 0, &jerr) : NULL;
    CHECK(j && json_is_true(json_object_get(j, "decision")) &&
          json_is_null(json_object_get(j, "outputs")) &&
          json_is_null(json_object_get(j, "predicted_class")) &&
          json_is_null(json_object_get(j, "contributions")) &&
          json_is_null(json_object_get(j, "contributions_bias")));
    json_decref(j);
    ss_encoder_destroy(e);
    ss_config_destroy(cfg);
}

static const check_test_t tests[] = {
    {"a_schema_that_cannot_hold_what_the_model_writes_is_refused",
     a_schema_that_cannot_hold_what_the_model_writes_is_refused},
    {"json_carries_outputs_class_and_explanation", json_carries_outputs_class_and_explanation},
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
    {"a_float_score_is_refused_naming_the_field", a_float_score_is_refused_naming_the_field},
    {"an_int_source_offset_is_refused_naming_the_field",
     an_int_source_offset_is_refused_naming_the_field},
    {"a_union_without_the_written_type_is_refused", a_union_without_the_written_type_is_refused},
    {"a_wrong_type_in_the_nested_contribution_record_is_refused",
     a_wrong_type_in_the_nested_contribution_record_is_refused},
    {"a_field_streamscore_does_not_fill_needs_a_default_or_null",
     a_field_streamscore_does_not_fill_needs_a_default_or_null},
    {"a_nullable_event_id_is_written_in_its_string_branch",
     a_nullable_event_id_is_written_in_its_string_branch},
    {"unions_defaults_and_nulls_decode_back", unions_defaults_and_nulls_decode_back},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
