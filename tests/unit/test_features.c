/* test_features.c - the merge rule, the feature hash and the Redis text form. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "features.h"

static void event_values_override_and_missing_keep_the_state(void) {
    float state[4] = {1, 2, NAN, 4};
    float ev[4] = {NAN, 20, 30, NAN};
    ss_features_merge(state, ev, 4);
    CHECK(state[0] == 1 && state[1] == 20 && state[2] == 30 && state[3] == 4);
}

static void merging_in_order_lets_a_later_event_see_an_earlier_one(void) {
    float state[3] = {NAN, NAN, NAN};
    float e1[3] = {5, NAN, NAN}, e2[3] = {NAN, 6, NAN};
    ss_features_merge(state, e1, 3);
    ss_features_merge(state, e2, 3);
    CHECK(state[0] == 5 && state[1] == 6 && isnan(state[2]));
}

static void hash_is_fnv1a_over_float_bytes(void) {
    /* empty input: the FNV-1a 64 offset basis */
    CHECK(ss_features_hash(NULL, 0) == 0xcbf29ce484222325ULL);
    /* one value 1.0f = 0x3f800000: bytes 00 00 80 3f, computed by hand */
    uint64_t h = 0xcbf29ce484222325ULL;
    const unsigned char b[4] = {0x00, 0x00, 0x80, 0x3f};
    for (int i = 0; i < 4; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    float one = 1.0f;
    CHECK(ss_features_hash(&one, 1) == h);
}

static void hash_treats_every_nan_alike_and_tells_vectors_apart(void) {
    float a[2] = {NAN, 1}, b[2] = {-NAN, 1}, c[2] = {0, 1};
    CHECK(ss_features_hash(a, 2) == ss_features_hash(b, 2));
    CHECK(ss_features_hash(a, 2) != ss_features_hash(c, 2));
    char hex[17];
    ss_features_hash_hex(0x00ab00000000ff01ULL, hex);
    CHECK(strcmp(hex, "00ab00000000ff01") == 0);
}

static void text_form_round_trips_float32(void) {
    float vals[] = {0.0f, 1.0f, -3.5f, 0.1f, 123456.78f, 1e-7f, 3.4028235e38f, 70.35f};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char buf[32];
        int n = ss_feature_format(vals[i], buf, sizeof(buf));
        CHECK(n > 0 && ss_feature_parse(buf, (size_t)n) == vals[i]);
    }
    char buf[32];
    ss_feature_format(12.0f, buf, sizeof(buf));
    CHECK(strcmp(buf, "12") == 0);
}

static void unparsable_text_reads_as_missing(void) {
    CHECK(isnan(ss_feature_parse("abc", 3)));
    CHECK(isnan(ss_feature_parse("", 0)));
    CHECK(isnan(ss_feature_parse("1.5x", 4)));
    CHECK(isnan(ss_feature_parse("inf", 3)));
    CHECK(ss_feature_parse("2.5", 3) == 2.5f);
}

static const check_test_t tests[] = {
    {"event_values_override_and_missing_keep_the_state",
     event_values_override_and_missing_keep_the_state},
    {"merging_in_order_lets_a_later_event_see_an_earlier_one",
     merging_in_order_lets_a_later_event_see_an_earlier_one},
    {"hash_is_fnv1a_over_float_bytes", hash_is_fnv1a_over_float_bytes},
    {"hash_treats_every_nan_alike_and_tells_vectors_apart",
     hash_treats_every_nan_alike_and_tells_vectors_apart},
    {"text_form_round_trips_float32", text_form_round_trips_float32},
    {"unparsable_text_reads_as_missing", unparsable_text_reads_as_missing},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
