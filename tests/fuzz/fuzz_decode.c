/* fuzz_decode.c - libFuzzer target for the decode path: any Kafka value bytes go through
 * ss_decoder_decode with the real reader schema and the model's features, then through the
 * feature merge and hash, as the pipeline does. A crash, leak or sanitizer report here is a
 * record that would take a worker down instead of going to the dead-letter topic.
 *
 * Input: byte 0 picks the framing (even: raw, writer = reader schema; odd: confluent, schema
 * ids 1 = schemas/customer_event.avsc and 2 = tests/data/customer_event_v2.avsc); the rest is
 * the Kafka value. Schema files are found under $STREAMSCORE_ROOT, else the source directory
 * this target was built from. Every value is also decoded by a second decoder reading
 * bodies through Avro C's generic reader: both must agree, bit for bit. The confluent target
 * reads three features as native categories mapped by name (an enum, an int and the event id
 * string, renamed), some values of which are not among the categories (dead letters). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "features.h"

#ifndef SS_SOURCE_DIR
#define SS_SOURCE_DIR "."
#endif

static char *const features[] = {"tenure_months",        "monthly_charges",      "total_charges",
                                 "contract_type",        "support_calls_30d",    "logins_30d",
                                 "payment_failures_90d", "data_usage_gb",        "has_autopay",
                                 "num_products",         "days_since_last_login"};
#define NF (sizeof(features) / sizeof(features[0]))

typedef struct target {
    ss_config_t *cfg;
    ss_codec_t *codec;
    ss_decoder_t *dec;
    ss_decoder_t *generic; /* bodies through Avro C's reader */
} target_t;

static target_t raw, confluent;
static volatile unsigned char sink;

static void die(const char *what, const char *err) {
    fprintf(stderr, "fuzz_decode: %s: %s\n", what, err);
    abort();
}

static void set(ss_config_t *cfg, const char *key, const char *value) {
    char err[512];
    if (ss_config_set(cfg, key, value, "fuzz_decode", err, sizeof(err)) < 0)
        die(key, err);
}

static void target_init(target_t *t, const char *root, int framing) {
    char reader[4096], map[8192], err[1024];
    snprintf(reader, sizeof(reader), "%s/schemas/customer_event.avsc", root);
    snprintf(map, sizeof(map),
             "1=%s/schemas/customer_event.avsc,2=%s/tests/data/customer_event_v2.avsc", root, root);
    t->cfg = ss_config_new();
    if (!t->cfg)
        die("config", "out of memory");
    set(t->cfg, "model.path", "fuzz.json");
    set(t->cfg, "kafka.bootstrap.servers", "127.0.0.1:9");
    set(t->cfg, "input.schema", reader);
    if (framing == SS_FRAMING_CONFLUENT) {
        set(t->cfg, "input.framing", "confluent");
        set(t->cfg, "input.schema.map", map);
        set(t->cfg, "features.rename", "days_since_last_login=event_id");
    }
    if (ss_config_finalize(t->cfg, err, sizeof(err)) < 0)
        die("config", err);
    static char *contract[] = {"TWO_YEAR", "MONTH_TO_MONTH"}, *products[] = {"1", "2", "3"},
                *ids[] = {"e1", "ev-9", "e\xc3\xa9"};
    static char **names[NF] = {[3] = contract, [9] = products, [10] = ids};
    static const size_t n_names[NF] = {[3] = 2, [9] = 3, [10] = 3};
    static const unsigned char categorical[NF] = {[3] = 1, [9] = 1, [10] = 1};
    ss_codec_cats_t cats = {categorical, names, n_names, SS_UNSEEN_DEAD_LETTER};
    t->codec =
        ss_codec_new_cats(t->cfg, features, NF, framing == SS_FRAMING_CONFLUENT ? &cats : NULL,
                          NULL, NULL, err, sizeof(err));
    if (!t->codec)
        die("codec (set STREAMSCORE_ROOT to the source tree)", err);
    t->dec = ss_decoder_new(t->codec, err, sizeof(err));
    t->generic = ss_decoder_new(t->codec, err, sizeof(err));
    if (!t->dec || !t->generic)
        die("decoder", err);
    ss_decoder_set_direct(t->generic, 0);
}

static void target_destroy(target_t *t) {
    ss_decoder_destroy(t->dec);
    ss_decoder_destroy(t->generic);
    ss_codec_destroy(t->codec);
    ss_config_destroy(t->cfg);
}

static void cleanup(void) {
    target_destroy(&raw);
    target_destroy(&confluent);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *root = getenv("STREAMSCORE_ROOT");
    if (!root || !*root)
        root = SS_SOURCE_DIR;
    target_init(&raw, root, SS_FRAMING_RAW);
    target_init(&confluent, root, SS_FRAMING_CONFLUENT);
    atexit(cleanup);
    return 0;
}

/* Same bits, NaNs included. */
static int same_vector(const float *a, const float *b) {
    return memcmp(a, b, NF * sizeof(float)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    target_t *t = (data[0] & 1) ? &confluent : &raw;
    const uint8_t *value = data + 1;
    size_t len = size - 1;
    /* a copy of exactly `len` bytes, so ASan sees any read past the value */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    memcpy(copy, value, len);

    ss_event_t ev;
    float fv[NF], again[NF];
    char err[512];
    err[0] = '\0';
    int rc = ss_decoder_decode(t->dec, copy, len, &ev, fv, err, sizeof(err));
    if (strcmp(ss_decode_reason(rc), "unknown") == 0)
        die("ss_decoder_decode returned a code with no reason", err);
    {
        ss_event_t gev;
        float gfv[NF];
        char gerr[512];
        int grc = ss_decoder_decode(t->generic, copy, len, &gev, gfv, gerr, sizeof(gerr));
        if (grc != rc)
            die("the direct and the generic reader disagree on the outcome", ss_decode_reason(rc));
        if (rc == SS_DECODE_OK &&
            (!same_vector(fv, gfv) || gev.event_time != ev.event_time ||
             gev.customer_id_len != ev.customer_id_len ||
             memcmp(gev.customer_id, ev.customer_id, ev.customer_id_len) != 0 ||
             gev.event_id_len != ev.event_id_len ||
             (gev.event_id == NULL) != (ev.event_id == NULL) ||
             (ev.event_id_len && memcmp(gev.event_id, ev.event_id, ev.event_id_len) != 0)))
            die("the direct and the generic reader disagree on the event", "");
    }
    if (rc != SS_DECODE_OK) {
        if (!err[0] || !memchr(err, '\0', sizeof(err)))
            die("a failed decode must say why", ss_decode_reason(rc));
        free(copy);
        return 0;
    }
    if (!ev.customer_id || ev.customer_id_len == 0)
        die("decoded event without a customer id", "");
    /* the ids point into decoder memory: read every byte (ASan checks the bounds) */
    for (size_t i = 0; i < ev.customer_id_len; i++)
        sink ^= (unsigned char)ev.customer_id[i];
    for (size_t i = 0; i < ev.event_id_len; i++)
        sink ^= (unsigned char)ev.event_id[i];
    if ((data[0] & 1) && ev.schema_id != 1 && ev.schema_id != 2)
        die("decoded with a schema id not in the map", "");

    /* the pipeline: the event over the cached state (here: all missing, then a full one) */
    float state[NF], full[NF];
    for (size_t f = 0; f < NF; f++) {
        state[f] = NAN;
        full[f] = (float)f;
    }
    ss_features_merge(state, fv, NF);
    ss_features_merge(full, fv, NF);
    for (size_t f = 0; f < NF; f++) {
        if (!isnan(fv[f]) &&
            (memcmp(&state[f], &fv[f], 4) != 0 || memcmp(&full[f], &fv[f], 4) != 0))
            die("merge", "an event value did not override the state");
        if (isnan(fv[f]) && (!isnan(state[f]) || full[f] != (float)f))
            die("merge", "a missing event value changed the state");
    }
    /* state differs from the event only in NaN payloads (an Avro float or double may carry
     * any): the hash treats every NaN alike */
    uint64_t h = ss_features_hash(state, NF);
    if (h != ss_features_hash(fv, NF))
        die("hash", "NaN payloads change the hash");
    char hex[17];
    ss_features_hash_hex(h, hex);
    if (strlen(hex) != 16 || strspn(hex, "0123456789abcdef") != 16)
        die("hash", "hex form is not 16 lower-case hex digits");

    /* the Redis text form of every value reads back as the same float32 */
    for (size_t f = 0; f < NF; f++) {
        char text[64];
        int n = ss_feature_format(state[f], text, sizeof(text));
        if (n <= 0 || (size_t)n >= sizeof(text))
            die("ss_feature_format", "bad length");
        float back = ss_feature_parse(text, (size_t)n);
        if (isfinite(state[f]) ? back != state[f] : !isnan(back))
            die("ss_feature_format/parse", text);
    }

    /* decoders are reused across records: the same bytes decode the same way again */
    ss_event_t ev2;
    if (ss_decoder_decode(t->dec, copy, len, &ev2, again, err, sizeof(err)) != SS_DECODE_OK ||
        !same_vector(fv, again) || ev2.customer_id_len != ev.customer_id_len ||
        ev2.event_time != ev.event_time || ss_features_hash(again, NF) != ss_features_hash(fv, NF))
        die("decode is not repeatable", err);
    free(copy);
    return 0;
}
