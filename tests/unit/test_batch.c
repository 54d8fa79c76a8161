/* test_batch.c - a worker's micro-batch without Kafka: the customer index, the merge order,
 * dead letters, the arena growing under long ids, and reuse across batches. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "check.h"
#include "error.h"

/* Record i of the batch is an event of `customer` with features `f` (nf of them). */
static int add(ss_batch_t *b, size_t i, const char *customer, const char *event_id, const float *f,
               int64_t event_time) {
    memcpy(ss_batch_event_row(b, i), f, b->nf * sizeof(float));
    ss_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.customer_id = customer;
    ev.customer_id_len = strlen(customer);
    ev.event_id = event_id;
    ev.event_id_len = event_id ? strlen(event_id) : 0;
    ev.event_time = event_time;
    return ss_batch_add(b, i, &ev, 999);
}

static ss_batch_t *batch_of(size_t max, size_t nf, size_t n_msgs) {
    ss_batch_t *b = ss_batch_new(max, nf);
    b->n_msgs = n_msgs; /* the messages themselves are not read by the batch */
    ss_batch_reset(b);
    return b;
}

static void customers_are_indexed_once_in_order_of_first_appearance(void) {
    ss_batch_t *b = batch_of(8, 2, 4);
    float f[2] = {1, 2};
    CHECK(add(b, 0, "c1", "e1", f, 5) == 0);
    CHECK(add(b, 1, "c2", "e2", f, 5) == 0);
    CHECK(add(b, 2, "c1", "e3", f, 5) == 0);
    CHECK(add(b, 3, "c3", "e4", f, 5) == 0);
    CHECK(b->n_u == 3);
    CHECK(b->recs[0].slot == 0 && b->recs[2].slot == 0);
    CHECK(b->recs[1].slot == 1 && b->recs[3].slot == 2);
    CHECK(strcmp(b->u_ids[0], "c1") == 0 && strcmp(b->u_ids[2], "c3") == 0);
    CHECK(b->u_lens[1] == 2);
    ss_batch_destroy(b);
}

static void event_time_falls_back_to_the_message_time(void) {
    ss_batch_t *b = batch_of(4, 1, 2);
    float f[1] = {0};
    add(b, 0, "c", NULL, f, 1234);
    add(b, 1, "c", NULL, f, -1);
    CHECK(b->recs[0].event_time == 1234);
    CHECK(b->recs[1].event_time == 999);
    CHECK(b->recs[0].evid_len == 0 && b->arena[b->recs[0].evid_off] == '\0');
    ss_batch_destroy(b);
}

static void merge_applies_events_in_partition_order_over_the_known_state(void) {
    ss_batch_t *b = batch_of(4, 3, 3);
    float e1[3] = {1, NAN, NAN}, e2[3] = {NAN, 7, NAN}, e3[3] = {NAN, NAN, NAN};
    add(b, 0, "a", "1", e1, 0);
    add(b, 1, "b", "2", e3, 0);
    add(b, 2, "a", "3", e2, 0);
    /* known: a = {10, 20, 30}, b = nothing */
    ss_batch_clear_state(b);
    b->state[0] = 10, b->state[1] = 20, b->state[2] = 30;
    ss_batch_merge(b);
    CHECK(b->n_rows == 3);
    const float *r0 = b->rows, *r1 = b->rows + 3, *r2 = b->rows + 6;
    CHECK(r0[0] == 1 && r0[1] == 20 && r0[2] == 30);     /* a's first event */
    CHECK(isnan(r1[0]) && isnan(r1[1]) && isnan(r1[2])); /* b: nothing known, nothing sent */
    CHECK(r2[0] == 1 && r2[1] == 7 && r2[2] == 30);      /* a's second sees the first */
    /* what a's events carried, and nothing for b */
    CHECK(b->changed[0] == 1 && b->changed[1] == 1 && b->changed[2] == 0);
    CHECK(b->changed[3] == 0 && b->changed[4] == 0 && b->changed[5] == 0);
    ss_batch_destroy(b);
}

static void dead_letters_get_no_row_and_keep_their_detail(void) {
    ss_batch_t *b = batch_of(4, 1, 3);
    float f[1] = {3};
    add(b, 0, "a", "1", f, 0);
    ss_batch_dead_letter(b, 1, "decode", "bad_avro", "truncated body at byte 3");
    add(b, 2, "b", "3", f, 0);
    ss_batch_clear_state(b);
    ss_batch_merge(b);
    CHECK(b->n_rows == 2);
    CHECK(b->recs[0].row == 0 && b->recs[2].row == 1);
    CHECK(b->recs[1].dlq && b->recs[1].slot == -1);
    CHECK(strcmp(b->recs[1].stage, "decode") == 0);
    CHECK(strcmp(ss_batch_detail(b, 1), "truncated body at byte 3") == 0);
    ss_batch_destroy(b);
}

static void long_ids_grow_the_arena_and_ids_stay_valid(void) {
    ss_batch_t *b = batch_of(4, 1, 4);
    float f[1] = {0};
    char id[4][400];
    for (int i = 0; i < 4; i++) {
        memset(id[i], 'a' + i, sizeof(id[i]) - 1);
        id[i][sizeof(id[i]) - 1] = '\0';
        CHECK(add(b, (size_t)i, id[i], id[i], f, 0) == 0); /* 4 x 2 x 400 > 4 x 96 */
    }
    CHECK(b->n_u == 4);
    for (int i = 0; i < 4; i++)
        CHECK(strcmp(b->u_ids[i], id[i]) == 0);
    ss_batch_destroy(b);
}

/* A record dead-lettered after the customers are indexed (a non-finite score) copies its
 * detail into the arena: when that grows it, the customers' ids, read later by the write-back
 * to the store and Redis, must point into the new arena. */
static void a_dead_letter_growing_the_arena_keeps_the_customer_ids_valid(void) {
    ss_batch_t *b = batch_of(4, 1, 4);
    float f[1] = {1};
    const char *ids[] = {"cust-0", "cust-1", "cust-2"};
    for (size_t i = 0; i < 3; i++)
        CHECK(add(b, i, ids[i], "e", f, 0) == 0);
    CHECK(add(b, 3, "cust-1", "e2", f, 0) == 0);
    char detail[4096];
    memset(detail, 'd', sizeof(detail) - 1);
    detail[sizeof(detail) - 1] = '\0';
    size_t cap = b->arena_cap;
    ss_batch_dead_letter(b, 1, "score", "non_finite_score", detail);
    CHECK(b->arena_cap > cap); /* the arena moved */
    CHECK(strcmp(ss_batch_detail(b, 1), detail) == 0);
    for (size_t u = 0; u < b->n_u; u++) {
        CHECK(b->u_ids[u] >= b->arena && b->u_ids[u] < b->arena + b->arena_len);
        CHECK(strcmp(b->u_ids[u], ids[u]) == 0);
    }
    ss_batch_destroy(b);
}

static void a_reset_batch_forgets_the_previous_customers(void) {
    ss_batch_t *b = batch_of(4, 1, 2);
    float f[1] = {1};
    add(b, 0, "x", "1", f, 0);
    add(b, 1, "y", "2", f, 0);
    CHECK(b->n_u == 2);
    b->n_msgs = 1;
    ss_batch_reset(b);
    CHECK(b->n_u == 0 && b->recs[0].slot == -1 && !b->recs[0].dlq);
    add(b, 0, "y", "3", f, 0);
    CHECK(b->n_u == 1 && b->recs[0].slot == 0 && strcmp(b->u_ids[0], "y") == 0);
    ss_batch_destroy(b);
}

static void a_full_batch_of_distinct_customers_fits_the_index(void) {
    size_t max = 512;
    ss_batch_t *b = batch_of(max, 1, max);
    float f[1] = {0};
    char id[32];
    for (size_t i = 0; i < max; i++) {
        snprintf(id, sizeof(id), "customer-%zu", i);
        add(b, i, id, NULL, f, 0);
    }
    CHECK(b->n_u == max);
    for (size_t i = 0; i < max; i++)
        CHECK(b->recs[i].slot == (int)i);
    ss_batch_destroy(b);
}

int main(void) {
    static const check_test_t tests[] = {
        {"customers_are_indexed_once_in_order_of_first_appearance",
         customers_are_indexed_once_in_order_of_first_appearance},
        {"event_time_falls_back_to_the_message_time", event_time_falls_back_to_the_message_time},
        {"merge_applies_events_in_partition_order_over_the_known_state",
         merge_applies_events_in_partition_order_over_the_known_state},
        {"dead_letters_get_no_row_and_keep_their_detail",
         dead_letters_get_no_row_and_keep_their_detail},
        {"a_dead_letter_growing_the_arena_keeps_the_customer_ids_valid",
         a_dead_letter_growing_the_arena_keeps_the_customer_ids_valid},
        {"long_ids_grow_the_arena_and_ids_stay_valid", long_ids_grow_the_arena_and_ids_stay_valid},
        {"a_reset_batch_forgets_the_previous_customers",
         a_reset_batch_forgets_the_previous_customers},
        {"a_full_batch_of_distinct_customers_fits_the_index",
         a_full_batch_of_distinct_customers_fits_the_index},
        {NULL, NULL}};
    return check_run_all(tests);
}
