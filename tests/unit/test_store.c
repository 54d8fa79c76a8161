/* test_store.c - the local feature store: hits and misses, least-recently-used eviction with
 * unflushed changes handed over, change flags coalesced per customer until taken, and the
 * customers of a partition dropped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store.h"

typedef struct seen {
    int n;
    char ids[16][16];
    float vec[16][3];
    unsigned char changed[16][3];
} seen_t;

static void record(void *arg, const char *id, size_t len, int32_t partition, const float *vec,
                   const unsigned char *changed) {
    (void)partition;
    seen_t *s = arg;
    if (s->n >= 16)
        return;
    snprintf(s->ids[s->n], sizeof(s->ids[0]), "%.*s", (int)len, id);
    memcpy(s->vec[s->n], vec, sizeof(s->vec[0]));
    memcpy(s->changed[s->n], changed, sizeof(s->changed[0]));
    s->n++;
}

static void a_customer_put_is_a_hit_and_others_are_misses(void) {
    ss_store_t *s = ss_store_new(3, 10, NULL, NULL);
    float v[3] = {1, NAN, 3};
    CHECK(ss_store_get(s, "a", 1) == NULL);
    CHECK(ss_store_put(s, "a", 1, 0, v, NULL) == 0);
    const float *got = ss_store_get(s, "a", 1);
    CHECK(got && got[0] == 1 && isnan(got[1]) && got[2] == 3);
    CHECK(ss_store_get(s, "ab", 2) == NULL);
    ss_store_stats_t st = ss_store_stats(s);
    CHECK(st.hits == 1 && st.misses == 2 && st.customers == 1 && st.evictions == 0);
    CHECK(st.bytes == ss_store_entry_bytes(3, 1));
    CHECK(ss_store_dirty(s) == 0); /* no change flags: nothing to flush */
    ss_store_destroy(s);
}

static void the_least_recently_used_is_evicted_with_its_unflushed_changes(void) {
    seen_t seen = {0};
    ss_store_t *s = ss_store_new(3, 2, record, &seen);
    float v[3] = {1, 2, 3};
    unsigned char ch[3] = {1, 0, 1};
    CHECK(ss_store_put(s, "a", 1, 0, v, ch) == 0);
    CHECK(ss_store_put(s, "b", 1, 0, v, NULL) == 0);
    CHECK(ss_store_get(s, "a", 1) != NULL); /* b is now the least recently used */
    CHECK(ss_store_put(s, "c", 1, 0, v, NULL) == 0);
    CHECK(ss_store_get(s, "b", 1) == NULL);
    CHECK(seen.n == 0);                              /* b had nothing to flush */
    CHECK(ss_store_put(s, "d", 1, 0, v, NULL) == 0); /* evicts a, which has changes */
    CHECK(seen.n == 1 && strcmp(seen.ids[0], "a") == 0);
    CHECK(seen.changed[0][0] == 1 && seen.changed[0][1] == 0 && seen.changed[0][2] == 1);
    CHECK(ss_store_dirty(s) == 0);
    ss_store_stats_t st = ss_store_stats(s);
    CHECK(st.evictions == 2 && st.customers == 2);
    ss_store_destroy(s);
}

static void changes_are_coalesced_per_customer_until_taken(void) {
    seen_t seen = {0};
    ss_store_t *s = ss_store_new(3, 10, NULL, NULL);
    float v1[3] = {1, NAN, NAN}, v2[3] = {5, 6, NAN};
    unsigned char c1[3] = {1, 0, 0}, c2[3] = {0, 1, 0};
    CHECK(ss_store_put(s, "x", 1, 1, v1, c1) == 0);
    CHECK(ss_store_put(s, "x", 1, 1, v2, c2) == 0);
    CHECK(ss_store_put(s, "y", 1, 1, v1, NULL) == 0);
    CHECK(ss_store_dirty(s) == 1);
    CHECK(ss_store_take_dirty(s, record, &seen) == 1);
    CHECK(seen.n == 1 && strcmp(seen.ids[0], "x") == 0);
    CHECK(seen.vec[0][0] == 5 && seen.vec[0][1] == 6 && isnan(seen.vec[0][2]));
    CHECK(seen.changed[0][0] == 1 && seen.changed[0][1] == 1 && seen.changed[0][2] == 0);
    CHECK(ss_store_dirty(s) == 0 && ss_store_take_dirty(s, record, &seen) == 0);
    CHECK(ss_store_put(s, "x", 1, 1, v2, c2) == 0); /* flags start again from clear */
    CHECK(ss_store_take_dirty(s, record, &seen) == 1);
    CHECK(seen.changed[1][0] == 0 && seen.changed[1][1] == 1);
    ss_store_destroy(s);
}

static void a_flush_round_is_taken_in_steps_and_later_changes_wait_for_the_next(void) {
    seen_t seen = {0}, evicted = {0};
    ss_store_t *s = ss_store_new(3, 4, record, &evicted);
    float v1[3] = {1, NAN, NAN}, v2[3] = {1, 2, NAN}, v3[3] = {1, 2, 3};
    unsigned char c1[3] = {1, 0, 0}, c2[3] = {0, 1, 0}, c3[3] = {0, 0, 1};
    CHECK(ss_store_put(s, "a", 1, 0, v1, c1) == 0);
    CHECK(ss_store_put(s, "b", 1, 0, v1, c1) == 0);
    CHECK(ss_store_put(s, "c", 1, 0, v1, c1) == 0);
    CHECK(!ss_store_flushing(s));
    ss_store_begin_flush(s);
    CHECK(ss_store_flushing(s) && ss_store_dirty(s) == 3);
    CHECK(ss_store_put(s, "d", 1, 0, v1, c1) == 0); /* marked after the round began */
    CHECK(ss_store_take_flushing(s, 1, record, &seen) == 1);
    const char *first = seen.ids[0];
    const char *other = strcmp(first, "a") == 0 ? "b" : "a"; /* one still in the round */
    /* changed again while in the round: taken with its latest vector and both flags */
    CHECK(ss_store_put(s, other, 1, 0, v2, c2) == 0);
    /* the one taken, changed again: waits for the next round */
    CHECK(ss_store_put(s, first, 1, 0, v3, c3) == 0);
    CHECK(ss_store_take_flushing(s, 10, record, &seen) == 2);
    CHECK(!ss_store_flushing(s) && seen.n == 3);
    int found = 0;
    for (int i = 1; i < seen.n; i++) {
        CHECK(strcmp(seen.ids[i], first) != 0 && strcmp(seen.ids[i], "d") != 0);
        if (strcmp(seen.ids[i], other) == 0) {
            found = 1;
            CHECK(seen.vec[i][1] == 2 && seen.changed[i][0] == 1 && seen.changed[i][1] == 1);
        }
    }
    CHECK(found);
    CHECK(ss_store_dirty(s) == 2); /* d, and the first again */
    ss_store_begin_flush(s);
    CHECK(ss_store_take_flushing(s, 10, record, &seen) == 2);
    CHECK(seen.n == 5 && ss_store_dirty(s) == 0 && !ss_store_flushing(s));
    /* a customer of a round evicted: its changes handed over, the round goes on without it */
    CHECK(ss_store_put(s, "a", 1, 0, v1, c1) == 0);
    CHECK(ss_store_put(s, "b", 1, 0, v1, c1) == 0);
    ss_store_begin_flush(s);
    CHECK(ss_store_get(s, "b", 1) && ss_store_get(s, "c", 1) && ss_store_get(s, "d", 1));
    CHECK(ss_store_put(s, "e", 1, 0, v1, NULL) == 0); /* evicts a, the least recently used */
    CHECK(evicted.n == 1 && strcmp(evicted.ids[0], "a") == 0);
    CHECK(ss_store_dirty(s) == 1 && ss_store_drop_partition(s, 0) == 4);
    CHECK(!ss_store_flushing(s) && ss_store_dirty(s) == 0); /* b dropped with its partition */
    ss_store_destroy(s);
}

static void a_partition_is_dropped_with_its_changes(void) {
    ss_store_t *s = ss_store_new(1, 100, NULL, NULL);
    float v[1] = {1};
    unsigned char ch[1] = {1};
    char id[16];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        CHECK(ss_store_put(s, id, strlen(id), i % 4, v, ch) == 0);
    }
    CHECK(ss_store_drop_partition(s, 2) == 10);
    CHECK(ss_store_dirty(s) == 30 && ss_store_stats(s).customers == 30);
    CHECK(ss_store_get(s, "c2", 2) == NULL && ss_store_get(s, "c3", 2) != NULL);
    ss_store_clear(s);
    CHECK(ss_store_stats(s).customers == 0 && ss_store_stats(s).bytes == 0);
    ss_store_destroy(s);
}

static void many_customers_grow_the_table_and_stay_bounded(void) {
    ss_store_t *s = ss_store_new(2, 5000, NULL, NULL);
    float v[2] = {0, 0};
    char id[32];
    for (int i = 0; i < 20000; i++) {
        v[0] = (float)i;
        snprintf(id, sizeof(id), "customer-%d", i);
        CHECK(ss_store_put(s, id, strlen(id), 0, v, NULL) == 0);
    }
    ss_store_stats_t st = ss_store_stats(s);
    CHECK(st.customers == 5000 && st.evictions == 15000);
    const float *got = ss_store_get(s, "customer-19999", 14);
    CHECK(got && got[0] == 19999.0f);
    CHECK(ss_store_get(s, "customer-14999", 14) == NULL);
    ss_store_destroy(s);
}

int main(void) {
    static const check_test_t tests[] = {
        {"a_customer_put_is_a_hit_and_others_are_misses",
         a_customer_put_is_a_hit_and_others_are_misses},
        {"the_least_recently_used_is_evicted_with_its_unflushed_changes",
         the_least_recently_used_is_evicted_with_its_unflushed_changes},
        {"changes_are_coalesced_per_customer_until_taken",
         changes_are_coalesced_per_customer_until_taken},
        {"a_flush_round_is_taken_in_steps_and_later_changes_wait_for_the_next",
         a_flush_round_is_taken_in_steps_and_later_changes_wait_for_the_next},
        {"a_partition_is_dropped_with_its_changes", a_partition_is_dropped_with_its_changes},
        {"many_customers_grow_the_table_and_stay_bounded",
         many_customers_grow_the_table_and_stay_bounded},
        {NULL, NULL}};
    return check_run_all(tests);
}
