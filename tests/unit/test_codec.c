/* test_codec.c - decoding input values: both framings, resolution of evolved writer
 * schemas by field name, type mapping to features, every dead-letter reason, and the ids
 * fetched from a schema registry (bounded misses, rate-limited fetches, no thread waiting
 * on another's fetch, no credentials in a reason). */
#include <arpa/inet.h>
#include <avro.h>
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "codec.h"
#include "codec_int.h" /* ss__check_body_steps */
#include "config.h"
#include "error.h"
#include "metrics.h"
#include "registry.h"
#include "strv.h"

static char *const features[] = {"tenure_months",        "monthly_charges",      "total_charges",
                                 "contract_type",        "support_calls_30d",    "logins_30d",
                                 "payment_failures_90d", "data_usage_gb",        "has_autopay",
                                 "num_products",         "days_since_last_login"};
#define NF 11
enum { TENURE, MONTHLY, TOTAL, CONTRACT, SUPPORT, LOGINS, PAYFAIL, USAGE, AUTOPAY, PRODUCTS, DAYS };

static char err[1024];
static unsigned char buf[4096];

static ss_config_t *config(const char *extra) {
    ss_config_t *c = ss_config_new();
    char text[1024];
    snprintf(text, sizeof(text), "model.path = m.json\nkafka.bootstrap.servers = x:1\n%s", extra);
    if (ss_config_load_string(c, text, strlen(text), "t", err, sizeof(err)) < 0 ||
        ss_config_finalize(c, err, sizeof(err)) < 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    return c;
}

static void set_branch(avro_value_t *rec, const char *name, int branch, avro_value_t *out) {
    avro_value_t f;
    avro_value_get_by_name(rec, name, &f, NULL);
    avro_value_set_branch(&f, branch, out);
}

/* Encode an event with the writer schema in `path`: a full event unless told otherwise.
 * `header` > 0 prepends the wire-format header with that schema id. Returns the length. */
static size_t encode(const char *path, int header, const char *customer, int full) {
    avro_schema_t s = ss_schema_load(path, "test", err, sizeof(err));
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec, f, b;
    avro_generic_value_new(iface, &rec);
    avro_value_get_by_name(&rec, "event_id", &f, NULL);
    avro_value_set_string(&f, "ev-1");
    avro_value_get_by_name(&rec, "customer_id", &f, NULL);
    avro_value_set_string(&f, customer);
    avro_value_get_by_name(&rec, "event_time", &f, NULL);
    avro_value_set_long(&f, 1700000000123LL);
    avro_value_get_by_name(&rec, "event_type", &f, NULL);
    avro_value_set_enum(&f, 1);
    if (avro_value_get_by_name(&rec, "channel", &f, NULL) == 0)
        avro_value_set_string(&f, "app");
    /* every nullable field null, then fill some */
    size_t n = 0;
    avro_value_get_size(&rec, &n);
    for (size_t i = 4; i < n; i++) {
        avro_value_get_by_index(&rec, i, &f, NULL);
        if (avro_value_get_type(&f) == AVRO_UNION) {
            avro_value_set_branch(&f, 0, &b);
            avro_value_set_null(&b);
        }
    }
    if (full) {
        set_branch(&rec, "tenure_months", 1, &b);
        avro_value_set_int(&b, 24);
        set_branch(&rec, "monthly_charges", 1, &b);
        avro_value_set_double(&b, 70.35);
        set_branch(&rec, "contract_type", 1, &b);
        /* symbol ONE_YEAR, whatever its index in this writer schema */
        avro_schema_t es = avro_value_get_schema(&b);
        avro_value_set_enum(&b, avro_schema_enum_get_by_name(es, "ONE_YEAR"));
        set_branch(&rec, "has_autopay", 1, &b);
        avro_value_set_boolean(&b, 1);
        set_branch(&rec, "data_usage_gb", 1, &b);
        avro_value_set_float(&b, 2.5f);
        set_branch(&rec, "days_since_last_login", 1, &b);
        avro_value_set_long(&b, 3);
        if (avro_value_get_by_name(&rec, "support_calls_30d", &f, NULL) == 0) {
            avro_value_set_branch(&f, 1, &b);
            avro_value_set_int(&b, 4);
        }
    }
    size_t off = 0;
    if (header > 0) {
        buf[0] = 0;
        buf[1] = (unsigned char)(header >> 24);
        buf[2] = (unsigned char)(header >> 16);
        buf[3] = (unsigned char)(header >> 8);
        buf[4] = (unsigned char)header;
        off = 5;
    }
    avro_writer_t w = avro_writer_memory((char *)buf + off, (int64_t)(sizeof(buf) - off));
    avro_value_write(w, &rec);
    size_t len = off + (size_t)avro_writer_tell(w);
    avro_writer_free(w);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    return len;
}

typedef struct fixture {
    ss_config_t *cfg;
    ss_codec_t *codec;
    ss_decoder_t *dec;
} fixture_t;

static int setup(fixture_t *fx, const char *extra) {
    fx->cfg = config(extra);
    fx->codec = ss_codec_new(fx->cfg, features, NF, err, sizeof(err));
    fx->dec = fx->codec ? ss_decoder_new(fx->codec, err, sizeof(err)) : NULL;
    return fx->dec ? 0 : -1;
}

static void teardown(fixture_t *fx) {
    ss_decoder_destroy(fx->dec);
    ss_codec_destroy(fx->codec);
    ss_config_destroy(fx->cfg);
}

static void raw_event_decodes_ids_time_and_typed_features(void) {
    fixture_t fx;
    CHECK(setup(&fx, "") == 0);
    size_t len = encode("schemas/customer_event.avsc", 0, "C42", 1);
    ss_event_t ev;
    float f[NF];
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
    CHECK(ev.customer_id_len == 3 && memcmp(ev.customer_id, "C42", 3) == 0);
    CHECK(ev.event_id_len == 4 && memcmp(ev.event_id, "ev-1", 4) == 0);
    CHECK(ev.event_time == 1700000000123LL);
    CHECK(f[TENURE] == 24.0f);         /* int */
    CHECK(f[MONTHLY] == (float)70.35); /* double -> float32 */
    CHECK(f[CONTRACT] == 1.0f);        /* enum -> reader symbol index */
    CHECK(f[AUTOPAY] == 1.0f);         /* boolean -> 1 */
    CHECK(f[USAGE] == 2.5f);           /* float */
    CHECK(f[DAYS] == 3.0f);            /* long */
    CHECK(f[SUPPORT] == 4.0f);
    CHECK(isnan(f[TOTAL]) && isnan(f[LOGINS]) && isnan(f[PAYFAIL]) &&
          isnan(f[PRODUCTS])); /* null */
    teardown(&fx);
}

static void decoder_is_reusable_across_records(void) {
    fixture_t fx;
    CHECK(setup(&fx, "") == 0);
    ss_event_t ev;
    float f[NF];
    size_t len = encode("schemas/customer_event.avsc", 0, "C1", 1);
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
    len = encode("schemas/customer_event.avsc", 0, "C2", 0);
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
    CHECK(memcmp(ev.customer_id, "C2", 2) == 0);
    CHECK(isnan(f[TENURE]) && isnan(f[CONTRACT])); /* nothing left over from the first */
    teardown(&fx);
}

static void evolved_writer_added_field_ignored_removed_field_missing_enum_by_name(void) {
    fixture_t fx;
    CHECK(setup(&fx, "input.writer.schema = tests/data/customer_event_v2.avsc\n") == 0);
    size_t len = encode("tests/data/customer_event_v2.avsc", 0, "C7", 1);
    ss_event_t ev;
    float f[NF];
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
    CHECK(memcmp(ev.customer_id, "C7", 2) == 0);
    CHECK(isnan(f[SUPPORT]));   /* removed upstream: the reader's default, null */
    CHECK(f[CONTRACT] == 1.0f); /* ONE_YEAR, index 1 in the reader though 1 in writer too */
    CHECK(f[TENURE] == 24.0f && f[DAYS] == 3.0f);
    teardown(&fx);
}

static void enum_symbols_are_matched_by_name_not_index(void) {
    /* in v2, symbols are [TWO_YEAR, ONE_YEAR, MONTH_TO_MONTH]: write index 0 = TWO_YEAR */
    fixture_t fx;
    CHECK(setup(&fx, "input.writer.schema = tests/data/customer_event_v2.avsc\n") == 0);
    avro_schema_t s = ss_schema_load("tests/data/customer_event_v2.avsc", "t", err, sizeof(err));
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec, f, b;
    avro_generic_value_new(iface, &rec);
    avro_value_get_by_name(&rec, "event_id", &f, NULL);
    avro_value_set_string(&f, "e");
    avro_value_get_by_name(&rec, "customer_id", &f, NULL);
    avro_value_set_string(&f, "C9");
    avro_value_get_by_name(&rec, "channel", &f, NULL);
    avro_value_set_string(&f, "web");
    size_t n = 0;
    avro_value_get_size(&rec, &n);
    for (size_t i = 4; i < n; i++) {
        avro_value_get_by_index(&rec, i, &f, NULL);
        if (avro_value_get_type(&f) == AVRO_UNION) {
            avro_value_set_branch(&f, 0, &b);
            avro_value_set_null(&b);
        }
    }
    set_branch(&rec, "contract_type", 1, &b);
    avro_value_set_enum(&b, 0);
    avro_writer_t w = avro_writer_memory((char *)buf, sizeof(buf));
    avro_value_write(w, &rec);
    size_t len = (size_t)avro_writer_tell(w);
    avro_writer_free(w);
    ss_event_t ev;
    float fv[NF];
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, fv, err, sizeof(err)) == SS_DECODE_OK);
    CHECK(fv[CONTRACT] == 2.0f); /* TWO_YEAR is index 2 in the reader */
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    teardown(&fx);
}

static void confluent_framing_resolves_each_schema_id(void) {
    fixture_t fx;
    CHECK(setup(&fx, "input.framing = confluent\n"
                     "input.schema.map = 1=schemas/customer_event.avsc,"
                     "7=tests/data/customer_event_v2.avsc\n") == 0);
    ss_event_t ev;
    float f[NF];
    size_t len = encode("schemas/customer_event.avsc", 1, "A", 1);
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
    CHECK(ev.schema_id == 1 && f[SUPPORT] == 4.0f);
    len = encode("tests/data/customer_event_v2.avsc", 7, "B", 1);
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
    CHECK(ev.schema_id == 7 && isnan(f[SUPPORT]) && f[TENURE] == 24.0f);
    teardown(&fx);
}

static void bad_magic_short_header_and_unknown_id_are_dead_letters(void) {
    fixture_t fx;
    CHECK(setup(&fx,
                "input.framing = confluent\ninput.schema.map = 1=schemas/customer_event.avsc\n") ==
          0);
    ss_event_t ev;
    float f[NF];
    size_t len = encode("schemas/customer_event.avsc", 1, "A", 1);
    buf[0] = 1;
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_BAD_MAGIC);
    CHECK(ss_decoder_decode(fx.dec, "\0\0", 2, &ev, f, err, sizeof(err)) == SS_DECODE_BAD_MAGIC);
    len = encode("schemas/customer_event.avsc", 9, "A", 1);
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) ==
          SS_DECODE_UNKNOWN_SCHEMA);
    CHECK_STR_CONTAINS(err, "schema id 9");
    CHECK(strcmp(ss_decode_reason(SS_DECODE_UNKNOWN_SCHEMA), "unknown_schema") == 0);
    teardown(&fx);
}

static void truncated_body_is_a_dead_letter_at_every_length(void) {
    fixture_t fx;
    CHECK(setup(&fx, "") == 0);
    size_t len = encode("schemas/customer_event.avsc", 0, "C42", 1);
    ss_event_t ev;
    float f[NF];
    int all_rejected = 1;
    for (size_t cut = 0; cut < len; cut++) {
        int rc = ss_decoder_decode(fx.dec, buf, cut, &ev, f, err, sizeof(err));
        /* a prefix may still parse only if every remaining field were empty: never here,
         * since the last field is set */
        if (rc == SS_DECODE_OK)
            all_rejected = 0;
    }
    CHECK(all_rejected);
    teardown(&fx);
}

static void empty_customer_id_and_oversized_value_are_dead_letters(void) {
    fixture_t fx;
    CHECK(setup(&fx, "input.max.bytes = 64\n") == 0);
    ss_event_t ev;
    float f[NF];
    size_t len = encode("schemas/customer_event.avsc", 0, "", 0);
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) ==
          SS_DECODE_NO_CUSTOMER_ID);
    len = encode("schemas/customer_event.avsc", 0, "C1", 1);
    unsigned char big[100] = {0};
    CHECK(ss_decoder_decode(fx.dec, big, sizeof(big), &ev, f, err, sizeof(err)) ==
          SS_DECODE_TOO_LARGE);
    teardown(&fx);
}

static void incompatible_writer_schema_is_a_config_error_naming_the_key(void) {
    ss_config_t *cfg = config("input.writer.schema = tests/data/customer_event_bad.avsc\n");
    ss_codec_t *c = ss_codec_new(cfg, features, NF, err, sizeof(err));
    CHECK(c == NULL);
    CHECK_STR_CONTAINS(err, "'input.writer.schema'");
    CHECK_STR_CONTAINS(err, "tenure_months");
    ss_config_destroy(cfg);
}

static void feature_missing_from_reader_schema_names_rename_key(void) {
    ss_config_t *cfg = config("");
    char *const feats[] = {"tenure_months", "no_such_field"};
    ss_codec_t *c = ss_codec_new(cfg, feats, 2, err, sizeof(err));
    CHECK(c == NULL);
    CHECK_STR_CONTAINS(err, "no_such_field");
    CHECK_STR_CONTAINS(err, "features.rename");
    ss_config_destroy(cfg);
}

static void rename_maps_a_feature_to_another_field(void) {
    ss_config_t *cfg = config("features.rename = tenure=tenure_months\n");
    char *const feats[] = {"tenure", "logins_30d"};
    ss_codec_t *c = ss_codec_new(cfg, feats, 2, err, sizeof(err));
    CHECK(c != NULL);
    if (!c)
        fprintf(stderr, "  %s\n", err);
    ss_decoder_t *d = c ? ss_decoder_new(c, err, sizeof(err)) : NULL;
    if (d) {
        size_t len = encode("schemas/customer_event.avsc", 0, "C1", 1);
        ss_event_t ev;
        float f[2];
        CHECK(ss_decoder_decode(d, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
        CHECK(f[0] == 24.0f && isnan(f[1]));
    }
    ss_decoder_destroy(d);
    ss_codec_destroy(c);
    ss_config_destroy(cfg);
    cfg = config("features.rename = nope=tenure_months\n");
    CHECK(ss_codec_new(cfg, feats, 2, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "'features.rename'");
    ss_config_destroy(cfg);
}

static void huge_claimed_lengths_and_bad_branches_are_rejected_before_decoding(void) {
    fixture_t fx;
    CHECK(setup(&fx, "") == 0);
    ss_event_t ev;
    float f[NF];
    /* event_id claims 2^40 bytes: zigzag varint of 2^40 */
    unsigned char huge[16];
    size_t n = 0;
    uint64_t z = (uint64_t)1 << 41;
    while (z >= 0x80) {
        huge[n++] = (unsigned char)(z | 0x80);
        z >>= 7;
    }
    huge[n++] = (unsigned char)z;
    CHECK(ss_decoder_decode(fx.dec, huge, n, &ev, f, err, sizeof(err)) == SS_DECODE_BAD_AVRO);
    /* a valid event whose first union (tenure_months) names branch 5 of 2 */
    size_t len = encode("schemas/customer_event.avsc", 0, "C1", 0);
    size_t at = len - 11; /* the 11 nullable fields are all null: one branch byte each */
    buf[at] = 10;         /* zigzag 5 */
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_BAD_AVRO);
    buf[at] = 0;
    CHECK(ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
    teardown(&fx);
}

static void random_bytes_never_crash(void) {
    fixture_t fx;
    CHECK(setup(&fx, "") == 0);
    ss_event_t ev;
    float f[NF];
    unsigned int seed = 12345;
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(rand_r(&seed) % 200);
        for (size_t j = 0; j < len; j++)
            buf[j] = (unsigned char)rand_r(&seed);
        int rc = ss_decoder_decode(fx.dec, buf, len, &ev, f, err, sizeof(err));
        CHECK(rc <= 0 && rc >= SS_DECODE_BAD_TYPE);
    }
    teardown(&fx);
}

static void feature_fields_apply_renames_and_name_unknown_features(void) {
    ss_config_t *cfg = config("features.rename = tenure_months=months_active\n");
    char **fields = NULL;
    CHECK(ss_codec_feature_fields(cfg, features, NF, &fields, err, sizeof(err)) == 0);
    CHECK(fields && strcmp(fields[TENURE], "months_active") == 0);
    CHECK(fields && strcmp(fields[MONTHLY], "monthly_charges") == 0);
    ss_strv_free(fields, NF);
    ss_config_destroy(cfg);
    cfg = config("features.rename = no_such_feature=x\n");
    CHECK(ss_codec_feature_fields(cfg, features, NF, &fields, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK(fields == NULL);
    CHECK_STR_CONTAINS(err, "features.rename");
    CHECK_STR_CONTAINS(err, "no_such_feature");
    ss_config_destroy(cfg);
}

/* ---- schema ids from a registry */

/* A port on which nothing listens (connection refused at once). */
#define REFUSED_URL "http://127.0.0.1:1/apis/ccompat/v7"

typedef struct reg_fixture {
    fixture_t fx;
    ss_registry_t *reg;
    ss_metrics_t stats;
} reg_fixture_t;

/* A codec of confluent-framed input with schema id 1 configured and `url` as its registry. */
static int reg_setup(reg_fixture_t *rf, const char *url, const char *extra) {
    char text[1024];
    memset(rf, 0, sizeof(*rf));
    snprintf(text, sizeof(text),
             "input.framing = confluent\ninput.schema.map = 1=schemas/customer_event.avsc\n"
             "schema.registry.url = %s\nschema.registry.retries = 0\n%s",
             url, extra);
    if (setup(&rf->fx, text) < 0)
        return -1;
    if (!(rf->reg = ss_registry_new(rf->fx.cfg, &rf->stats, err, sizeof(err))))
        return -1;
    ss_codec_attach_registry(rf->fx.codec, rf->reg, rf->fx.cfg->registry_miss_ttl_ms, &rf->stats);
    return 0;
}

static void reg_teardown(reg_fixture_t *rf) {
    teardown(&rf->fx);
    ss_registry_destroy(rf->reg);
}

static long registry_requests(const reg_fixture_t *rf) {
    return rf->stats.registry_ok + rf->stats.registry_not_found + rf->stats.registry_failed;
}

/* Decode a valid event framed with schema id `id`: the decode's return, the reason in err. */
static int decode_id(reg_fixture_t *rf, int32_t id) {
    ss_event_t ev;
    float f[NF];
    size_t len = encode("schemas/customer_event.avsc", id, "A", 1);
    return ss_decoder_decode(rf->fx.dec, buf, len, &ev, f, err, sizeof(err));
}

static void many_distinct_unknown_ids_leave_the_miss_cache_bounded(void) {
    reg_fixture_t rf;
    CHECK(reg_setup(&rf, REFUSED_URL,
                    "schema.registry.miss.ttl.ms = 3600000\n"
                    "schema.registry.fetch.rate = 100000\n") == 0);
    int n = 4 * SS_CODEC_MISS_CAP, dead = 0;
    for (int i = 0; i < n; i++)
        dead += decode_id(&rf, 1000 + i) == SS_DECODE_REGISTRY_UNAVAILABLE;
    CHECK(dead == n);
    CHECK(ss_codec_miss_count(rf.fx.codec) <= SS_CODEC_MISS_CAP);
    CHECK(ss_codec_miss_count(rf.fx.codec) > 0);
    /* a recent miss is still remembered: its record costs no request */
    long before = registry_requests(&rf);
    CHECK(decode_id(&rf, 1000 + n - 1) == SS_DECODE_REGISTRY_UNAVAILABLE);
    CHECK(registry_requests(&rf) == before);
    /* the configured id decodes as ever */
    CHECK(decode_id(&rf, 1) == SS_DECODE_OK);
    reg_teardown(&rf);
}

static void fetches_of_unknown_ids_are_rate_limited_and_the_rest_dead_lettered(void) {
    reg_fixture_t rf;
    CHECK(reg_setup(&rf, REFUSED_URL, "") == 0); /* the default rate: 10 a second */
    int n = 300, limited = 0;
    int64_t t0 = ss_mono_ms();
    for (int i = 0; i < n; i++) {
        int rc = decode_id(&rf, 5000 + i);
        CHECK(rc == SS_DECODE_REGISTRY_UNAVAILABLE);
        if (strstr(err, "schema.registry.fetch.rate")) {
            limited++;
            CHECK_STR_CONTAINS(err, "not fetched");
        }
    }
    long elapsed_s = (long)((ss_mono_ms() - t0) / 1000);
    long allowed = 10 + 10 * (elapsed_s + 1);
    CHECK(registry_requests(&rf) <= allowed);
    CHECK(limited >= n - allowed);
    /* a limited id is not remembered as missing: asked again once the limit allows */
    ss_sleep_ms(300);
    long before = registry_requests(&rf);
    CHECK(decode_id(&rf, 5000 + n - 1) == SS_DECODE_REGISTRY_UNAVAILABLE);
    CHECK(registry_requests(&rf) == before + 1);
    reg_teardown(&rf);
}

/* A registry that accepts connections and never answers: every request takes the whole
 * schema.registry.request.timeout.ms. Returns the listening socket, its port in *port. */
static int black_hole(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 64) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return s;
}

/* reg_setup with a black hole as the registry; returns its socket (close it after). */
static int reg_setup_hole(reg_fixture_t *rf, const char *extra) {
    int port = 0, hole = black_hole(&port);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    CHECK(hole >= 0 && reg_setup(rf, url, extra) == 0);
    return hole;
}

/* One thread decoding one value of schema id `id` with a decoder of its own. */
typedef struct fetcher {
    ss_codec_t *codec;
    unsigned char value[512];
    size_t len;
    int rc;
    int64_t done_ms;
} fetcher_t;

static void fetcher_init(fetcher_t *ft, ss_codec_t *codec, int32_t id) {
    ft->codec = codec;
    ft->len = encode("schemas/customer_event.avsc", id, "T", 1);
    memcpy(ft->value, buf, ft->len);
}

static void *fetch_thread(void *opaque) {
    fetcher_t *ft = opaque;
    char e[512];
    ss_event_t ev;
    float f[NF];
    ss_decoder_t *d = ss_decoder_new(ft->codec, e, sizeof(e));
    ft->rc = d ? ss_decoder_decode(d, ft->value, ft->len, &ev, f, e, sizeof(e)) : -100;
    ft->done_ms = ss_mono_ms();
    ss_decoder_destroy(d);
    return NULL;
}

static void a_fetch_in_progress_holds_up_no_other_thread(void) {
    reg_fixture_t rf;
    int hole = reg_setup_hole(&rf, "schema.registry.request.timeout.ms = 3000\n"
                                   "schema.registry.miss.ttl.ms = 600000\n");
    /* id 200 is remembered as missing (its fetch timed out) */
    CHECK(decode_id(&rf, 200) == SS_DECODE_REGISTRY_UNAVAILABLE);
    /* another thread fetches id 100 (3 s): waiting behind it would take that long */
    fetcher_t a, b;
    fetcher_init(&a, rf.fx.codec, 100);
    fetcher_init(&b, rf.fx.codec, 300);
    pthread_t ta;
    int64_t t0 = ss_mono_ms();
    pthread_create(&ta, NULL, fetch_thread, &a);
    ss_sleep_ms(200);
    /* meanwhile: the remembered miss, the configured id, and a fetch of its own, at once */
    CHECK(decode_id(&rf, 200) == SS_DECODE_REGISTRY_UNAVAILABLE);
    CHECK(decode_id(&rf, 1) == SS_DECODE_OK);
    int64_t quick = ss_mono_ms() - t0;
    CHECK(quick < 1500);
    fetch_thread(&b);
    pthread_join(ta, NULL);
    CHECK(a.rc == SS_DECODE_REGISTRY_UNAVAILABLE && b.rc == SS_DECODE_REGISTRY_UNAVAILABLE);
    /* both fetches ran side by side: about 3.2 s, not 6.2 */
    CHECK(b.done_ms - t0 < 4700);
    if (quick >= 1500 || b.done_ms - t0 >= 4700)
        fprintf(stderr, "  miss and known id after %lld ms, own fetch done after %lld ms\n",
                (long long)quick, (long long)(b.done_ms - t0));
    reg_teardown(&rf);
    close(hole);
}

static void threads_racing_for_the_same_id_ask_the_registry_once(void) {
    reg_fixture_t rf;
    int hole = reg_setup_hole(&rf, "schema.registry.request.timeout.ms = 800\n");
    fetcher_t ft[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        fetcher_init(&ft[i], rf.fx.codec, 77);
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, fetch_thread, &ft[i]);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(ft[i].rc == SS_DECODE_REGISTRY_UNAVAILABLE);
    }
    CHECK(registry_requests(&rf) == 1);
    reg_teardown(&rf);
    close(hole);
}

static void registry_credentials_never_appear_in_a_dead_letter_reason(void) {
    reg_fixture_t rf;
    CHECK(reg_setup(&rf, "http://scorer:pa55-w0rd@127.0.0.1:1/apis/ccompat/v7",
                    "schema.registry.retries = 1\nschema.registry.retry.backoff.ms = 1\n") == 0);
    CHECK(decode_id(&rf, 4242) == SS_DECODE_REGISTRY_UNAVAILABLE);
    CHECK(strstr(err, "pa55-w0rd") == NULL && strstr(err, "scorer") == NULL);
    CHECK_STR_CONTAINS(err, "http://***@127.0.0.1:1/apis/ccompat/v7");
    reg_teardown(&rf);
}

static void registry_urls_are_shown_without_userinfo(void) {
    static const char *cases[][2] = {
        {"https://user:pass@reg:8081/api", "https://***@reg:8081/api"},
        {"http://reg:8081", "http://reg:8081"},
        {"http://u@reg/a@b", "http://***@b"}, /* an '@' in the path: more hidden, never less */
        {"https://us%40er:p@ss:w@reg", "https://***@reg"},
        {"user:pass@reg", "***@reg"},
        {"", ""}};
    char out[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ss_registry_redact_url(cases[i][0], out, sizeof(out));
        CHECK(strcmp(out, cases[i][1]) == 0);
    }
    ss_registry_redact_url("https://user:pass@reg", out, 12); /* truncated, still redacted */
    CHECK(strstr(out, "pass") == NULL && strstr(out, "user") == NULL);
}

/* ---- The structural check is linear in the bytes of a value, whatever its items claim.
 * An item of null or of an empty record takes no bytes: the check bounds the items of a whole
 * value by its bytes (8 per byte, plus 8) and refuses a value claiming more. Before, each block
 * (and each nested array) could claim 8 items per byte left again: quadratic. The work is
 * counted in steps (values entered, blocks read), never timed. */

#define ARRAYS_SCHEMA "tests/data/customer_event_arrays.avsc"
#define STEPS_PER_BYTE 10 /* items (at most 8 per byte), blocks (1 byte at least), values */

/* Zig-zag varint of v at p: its length. */
static size_t put_long(unsigned char *p, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (z >= 0x80) {
        p[n++] = (unsigned char)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (unsigned char)z;
    return n;
}

/* A block of count n at p, n the most that the per-block bound allowed: 8 items per byte
 * left after its header, plus 8. Its length. */
static size_t put_greedy_block(unsigned char *p, const unsigned char *end) {
    unsigned char t[10];
    size_t h = 1;
    int64_t n = 0;
    for (int i = 0; i < 4; i++) { /* the header's length depends on n */
        n = (int64_t)(end - p - (ptrdiff_t)h) * 8 + 8;
        h = put_long(t, n);
    }
    return put_long(p, n);
}

typedef enum {
    GREEDY,        /* blocks, each claiming what the per-block bound allowed */
    GREEDY_NESTED, /* arrays of one array each, each inner one claiming the same */
    MOST,          /* one block claiming as many as the value's bytes allow */
    ONE_MORE,      /* one more than that */
    ONE_BY_ONE,    /* one item per block */
    SEVENS,        /* arrays of one array of 7 nulls each */
} pattern_t;

typedef struct crafted {
    const char *name;
    int field; /* 0: nulls (array of null), 1: empties (of an empty record), 2: nested */
    pattern_t pattern;
    int valid; /* within the bound: accepted */
} crafted_t;

static const crafted_t crafted[] = {
    {"blocks of nulls claiming the bytes left", 0, GREEDY, 0},
    {"blocks of empty records claiming the bytes left", 1, GREEDY, 0},
    {"nested arrays of nulls claiming the bytes left", 2, GREEDY_NESTED, 0},
    {"one block of nulls, as many as the bytes allow", 0, MOST, 1},
    {"one block of empty records, one more than the bytes allow", 1, ONE_MORE, 0},
    {"nulls one per block", 0, ONE_BY_ONE, 1},
    {"empty records one per block", 1, ONE_BY_ONE, 1},
    {"nested arrays of 7 nulls", 2, SEVENS, 1},
    {NULL, 0, 0, 0}};

/* The crafted bytes of one array field from p, leaving `reserve` bytes before end. */
static unsigned char *put_field(const crafted_t *c, unsigned char *p, const unsigned char *end,
                                size_t reserve) {
    const unsigned char *stop = end - reserve;
    switch (c->pattern) {
    case GREEDY:
        while (p + 8 < stop)
            p += put_greedy_block(p, end);
        break;
    case GREEDY_NESTED:
        while (p + 8 < stop) {
            *p++ = 2; /* an outer block of 1 item: an array */
            p += put_greedy_block(p, end);
            *p++ = 0;
        }
        break;
    case MOST:
    case ONE_MORE: {
        /* the field's items may be 8 per byte from where it starts to the end, plus 8 */
        int64_t n = (int64_t)(end - p) * 8 + 8 + (c->pattern == ONE_MORE);
        p += put_long(p, n);
        break;
    }
    case ONE_BY_ONE:
        while (p < stop)
            *p++ = 2;
        break;
    case SEVENS:
        while (p + 3 <= stop) {
            *p++ = 2;
            *p++ = 14;
            *p++ = 0;
        }
        break;
    }
    *p++ = 0; /* the array's end */
    return p;
}

/* An event of the arrays schema (customer C1, tenure 24) whose array field c->field is
 * crafted, `size` bytes long in all (zeros after the record: trailing bytes are allowed).
 * Free it. */
static unsigned char *craft(const crafted_t *c, size_t size) {
    size_t len = encode(ARRAYS_SCHEMA, 0, "C1", 1) - 3; /* without its three empty arrays */
    unsigned char *v = calloc(1, size), *p = v + len, *end = v + size;
    if (!v)
        return NULL;
    memcpy(v, buf, len);
    for (int f = 0; f < 3; f++)
        p = f == c->field ? put_field(c, p, end, (size_t)(2 - f) + 1) : p + 1; /* 0: empty */
    return v;
}

static const size_t sizes[] = {8192, 32768, 1048576};

/* The steps of checking each crafted value of `size` bytes, and the verdicts; 0 when the
 * steps of any exceeded STEPS_PER_BYTE per byte (larger sizes would take hours then). */
static int check_crafted(avro_schema_t s, size_t size) {
    int linear = 1;
    for (const crafted_t *c = crafted; c->name; c++) {
        unsigned char *v = craft(c, size);
        int64_t steps = -1;
        int rc = v ? ss__check_body_steps(s, v, size, &steps) : -1;
        if (steps < 0 || steps > (int64_t)(STEPS_PER_BYTE * size)) {
            fprintf(stderr, "  %s, %zu bytes: %lld steps (at most %zu wanted)\n", c->name, size,
                    (long long)steps, STEPS_PER_BYTE * size);
            linear = 0;
        }
        if ((rc == 0) != c->valid)
            fprintf(stderr, "  %s, %zu bytes: %s\n", c->name, size,
                    rc == 0 ? "accepted" : "refused");
        CHECK((rc == 0) == c->valid);
        free(v);
    }
    CHECK(linear);
    return linear;
}

static void structural_check_steps_are_linear_in_the_bytes_of_zero_size_items(void) {
    avro_schema_t s = ss_schema_load(ARRAYS_SCHEMA, "test", err, sizeof(err));
    CHECK(s != NULL);
    for (size_t i = 0; s && i < sizeof(sizes) / sizeof(sizes[0]); i++)
        if (!check_crafted(s, sizes[i]))
            break;
    avro_schema_decref(s);
}

static void zero_size_items_within_the_bound_decode_and_beyond_it_are_dead_letters(void) {
    fixture_t fx;
    CHECK(setup(&fx, "input.writer.schema = " ARRAYS_SCHEMA "\n") == 0);
    avro_schema_t s = ss_schema_load(ARRAYS_SCHEMA, "test", err, sizeof(err));
    /* 1 MiB (input.max.bytes) only when 8 KB was checked in linear steps */
    for (size_t i = 0; i < 3 && s; i += 2) {
        if (i == 2 && !check_crafted(s, sizes[0]))
            break;
        for (const crafted_t *c = crafted; c->name; c++) {
            unsigned char *v = craft(c, sizes[i]);
            ss_event_t ev;
            float f[NF];
            int rc = v ? ss_decoder_decode(fx.dec, v, sizes[i], &ev, f, err, sizeof(err)) : -1;
            if (c->valid) {
                CHECK(rc == SS_DECODE_OK);
                CHECK(rc == SS_DECODE_OK && ev.customer_id_len == 2 && f[TENURE] == 24.0f);
            } else {
                CHECK(rc == SS_DECODE_BAD_AVRO);
                CHECK_STR_CONTAINS(err, "does not match the writer schema");
            }
            free(v);
        }
    }
    avro_schema_decref(s);
    teardown(&fx);
}

/* A field's "namespace" is no namespace of the types inside it (Avro C ignores it): an enum
 * defined twice there is still one name defined twice, refused before Avro C, which leaks
 * what it parsed of such a schema (found by fuzz_registry). */
static void a_field_namespace_does_not_hide_a_name_defined_twice(void) {
    ss_config_t *cfg = config("");
    ss_codec_t *c = ss_codec_new(cfg, features, NF, err, sizeof(err));
    CHECK(c != NULL);
    const char *schema =
        "{\"type\":\"record\",\"name\":\"C\",\"fields\":["
        "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"T\",\"symbols\":[\"A\"]}},"
        "{\"name\":\"f\",\"namespace\":\"s\",\"type\":{\"type\":\"enum\",\"name\":\"T\","
        "\"symbols\":[\"A\"]}}]}";
    err[0] = '\0';
    CHECK(ss_codec_check_fetched(c, schema, err, sizeof(err)) == SS_DECODE_UNRESOLVABLE_SCHEMA);
    CHECK_STR_CONTAINS(err, "a named type defined twice");
    ss_codec_destroy(c);
    ss_config_destroy(cfg);
}

/* ---- native categorical features: values mapped to the model's codes by name */

static const char cat_schema[] =
    "{\"type\":\"record\",\"name\":\"E\",\"fields\":["
    "{\"name\":\"customer_id\",\"type\":\"string\"},"
    "{\"name\":\"color\",\"type\":[\"null\",{\"type\":\"enum\",\"name\":\"Color\","
    "\"symbols\":[\"red\",\"green\",\"blue\",\"purple\"]}],\"default\":null},"
    "{\"name\":\"shade\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"x\",\"type\":\"double\"}]}";

/* An event of cat_schema, by hand: color symbol index (-1 null), shade (NULL: null), x. */
static size_t cat_event(int color, const char *shade, double x) {
    unsigned char *p = buf;
    *p++ = 2 * 2; /* customer id: "C1" */
    *p++ = 'C', *p++ = '1';
    if (color < 0) {
        *p++ = 0;
    } else {
        *p++ = 2;                          /* branch 1 */
        *p++ = (unsigned char)(2 * color); /* zigzag */
    }
    if (!shade) {
        *p++ = 0;
    } else {
        size_t n = strlen(shade);
        *p++ = 2;
        *p++ = (unsigned char)(2 * n);
        memcpy(p, shade, n);
        p += n;
    }
    memcpy(p, &x, 8); /* little-endian */
    return (size_t)(p + 8 - buf);
}

static ss_codec_t *cat_codec(int unseen) {
    const char *path = "/tmp/test_codec_categorical.avsc";
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fputs(cat_schema, f);
    fclose(f);
    ss_config_t *cfg = config("input.schema = /tmp/test_codec_categorical.avsc\n"
                              "input.event.id.field =\ninput.event.time.field =\n");
    char *const feats[] = {"color", "shade", "x"};
    static char *color_names[] = {"blue", "green", "red"}; /* the model's order */
    static char *shade_names[] = {"dark", "light"};
    static char **names[] = {color_names, shade_names, NULL};
    static const size_t n_names[] = {3, 2, 0};
    static const unsigned char categorical[] = {1, 1, 0};
    ss_codec_cats_t cats = {categorical, names, n_names, unseen};
    ss_codec_t *c = ss_codec_new_cats(cfg, feats, 3, &cats, NULL, NULL, err, sizeof(err));
    if (!c)
        fprintf(stderr, "  %s\n", err);
    ss_config_destroy(cfg); /* the codec keeps what it needs */
    return c;
}

static void categories_are_read_by_name_as_the_models_codes(void) {
    for (int direct = 0; direct < 2; direct++) {
        ss_codec_t *c = cat_codec(SS_UNSEEN_DEAD_LETTER);
        ss_decoder_t *d = c ? ss_decoder_new(c, err, sizeof(err)) : NULL;
        CHECK(d != NULL);
        if (!d) {
            ss_codec_destroy(c);
            return;
        }
        ss_decoder_set_direct(d, direct);
        ss_event_t ev;
        float f[3];
        size_t len = cat_event(0, "light", 2.5); /* red, light */
        CHECK(ss_decoder_decode(d, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
        CHECK(f[0] == 2.0f && f[1] == 1.0f && f[2] == 2.5f);
        len = cat_event(2, "dark", 0); /* blue, dark */
        CHECK(ss_decoder_decode(d, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
        CHECK(f[0] == 0.0f && f[1] == 0.0f);
        len = cat_event(-1, NULL, 0); /* nulls: missing */
        CHECK(ss_decoder_decode(d, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
        CHECK(isnan(f[0]) && isnan(f[1]));
        len = cat_event(3, "dark", 0); /* purple: not a category of the model */
        CHECK(ss_decoder_decode(d, buf, len, &ev, f, err, sizeof(err)) ==
              SS_DECODE_UNKNOWN_CATEGORY);
        CHECK_STR_CONTAINS(err, "'color'");
        len = cat_event(1, "lightish", 0);
        CHECK(ss_decoder_decode(d, buf, len, &ev, f, err, sizeof(err)) ==
              SS_DECODE_UNKNOWN_CATEGORY);
        CHECK_STR_CONTAINS(err, "'shade'");
        CHECK(strcmp(ss_decode_reason(SS_DECODE_UNKNOWN_CATEGORY), "unknown_category") == 0);
        ss_decoder_destroy(d);
        ss_codec_destroy(c);
    }
}

static void an_unseen_category_is_missing_or_other_when_configured(void) {
    for (int unseen = SS_UNSEEN_MISSING; unseen <= SS_UNSEEN_OTHER; unseen++) {
        ss_codec_t *c = cat_codec(unseen);
        ss_decoder_t *d = c ? ss_decoder_new(c, err, sizeof(err)) : NULL;
        CHECK(d != NULL);
        if (d) {
            ss_event_t ev;
            float f[3];
            size_t len = cat_event(3, "lightish", 1);
            CHECK(ss_decoder_decode(d, buf, len, &ev, f, err, sizeof(err)) == SS_DECODE_OK);
            if (unseen == SS_UNSEEN_MISSING)
                CHECK(isnan(f[0]) && isnan(f[1]));
            else
                CHECK(f[0] == 3.0f && f[1] == 2.0f); /* a code past the model's categories */
        }
        ss_decoder_destroy(d);
        ss_codec_destroy(c);
    }
}

static void a_string_field_feeds_only_a_categorical_feature(void) {
    const char *path = "/tmp/test_codec_categorical.avsc";
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(cat_schema, f);
    fclose(f);
    ss_config_t *cfg = config("input.schema = /tmp/test_codec_categorical.avsc\n"
                              "input.event.id.field =\ninput.event.time.field =\n");
    char *const feats[] = {"shade", "x"};
    CHECK(ss_codec_new(cfg, feats, 2, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "'input.schema'");
    CHECK_STR_CONTAINS(err, "shade");
    ss_config_destroy(cfg);
}

static const check_test_t tests[] = {
    {"categories_are_read_by_name_as_the_models_codes",
     categories_are_read_by_name_as_the_models_codes},
    {"an_unseen_category_is_missing_or_other_when_configured",
     an_unseen_category_is_missing_or_other_when_configured},
    {"a_string_field_feeds_only_a_categorical_feature",
     a_string_field_feeds_only_a_categorical_feature},
    {"raw_event_decodes_ids_time_and_typed_features",
     raw_event_decodes_ids_time_and_typed_features},
    {"decoder_is_reusable_across_records", decoder_is_reusable_across_records},
    {"evolved_writer_added_field_ignored_removed_field_missing_enum_by_name",
     evolved_writer_added_field_ignored_removed_field_missing_enum_by_name},
    {"enum_symbols_are_matched_by_name_not_index", enum_symbols_are_matched_by_name_not_index},
    {"confluent_framing_resolves_each_schema_id", confluent_framing_resolves_each_schema_id},
    {"bad_magic_short_header_and_unknown_id_are_dead_letters",
     bad_magic_short_header_and_unknown_id_are_dead_letters},
    {"truncated_body_is_a_dead_letter_at_every_length",
     truncated_body_is_a_dead_letter_at_every_length},
    {"empty_customer_id_and_oversized_value_are_dead_letters",
     empty_customer_id_and_oversized_value_are_dead_letters},
    {"incompatible_writer_schema_is_a_config_error_naming_the_key",
     incompatible_writer_schema_is_a_config_error_naming_the_key},
    {"feature_missing_from_reader_schema_names_rename_key",
     feature_missing_from_reader_schema_names_rename_key},
    {"rename_maps_a_feature_to_another_field", rename_maps_a_feature_to_another_field},
    {"huge_claimed_lengths_and_bad_branches_are_rejected_before_decoding",
     huge_claimed_lengths_and_bad_branches_are_rejected_before_decoding},
    {"random_bytes_never_crash", random_bytes_never_crash},
    {"feature_fields_apply_renames_and_name_unknown_features",
     feature_fields_apply_renames_and_name_unknown_features},
    {"many_distinct_unknown_ids_leave_the_miss_cache_bounded",
     many_distinct_unknown_ids_leave_the_miss_cache_bounded},
    {"fetches_of_unknown_ids_are_rate_limited_and_the_rest_dead_lettered",
     fetches_of_unknown_ids_are_rate_limited_and_the_rest_dead_lettered},
    {"a_fetch_in_progress_holds_up_no_other_thread", a_fetch_in_progress_holds_up_no_other_thread},
    {"threads_racing_for_the_same_id_ask_the_registry_once",
     threads_racing_for_the_same_id_ask_the_registry_once},
    {"registry_credentials_never_appear_in_a_dead_letter_reason",
     registry_credentials_never_appear_in_a_dead_letter_reason},
    {"registry_urls_are_shown_without_userinfo", registry_urls_are_shown_without_userinfo},
    {"structural_check_steps_are_linear_in_the_bytes_of_zero_size_items",
     structural_check_steps_are_linear_in_the_bytes_of_zero_size_items},
    {"zero_size_items_within_the_bound_decode_and_beyond_it_are_dead_letters",
     zero_size_items_within_the_bound_decode_and_beyond_it_are_dead_letters},
    {"a_field_namespace_does_not_hide_a_name_defined_twice",
     a_field_namespace_does_not_hide_a_name_defined_twice},
    {NULL, NULL}};

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = check_run_all(tests);
    curl_global_cleanup();
    return rc;
}
