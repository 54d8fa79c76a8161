/* batch.h - one micro-batch of a worker thread: its Kafka messages, what each record became
 * (a row to score or a dead letter), the customers it touches with their merged feature
 * vectors, and an arena for the ids it keeps. Allocated once per thread, reset per batch: the
 * hot path allocates nothing per record. It knows nothing of Kafka beyond the message type,
 * of Redis or of the model, so it is tested on its own (tests/unit/test_batch.c).
 * @locality the worker thread that owns it */
#ifndef SS_BATCH_H
#define SS_BATCH_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* What one record of the batch became. */
typedef struct ss_batch_rec {
    int dlq;            /* 1: goes to the dead-letter topic */
    const char *reason; /* dead-letter reason (static) */
    const char *stage;  /* "decode" or "score" (static) */
    size_t err_off;     /* the error text in the arena, (size_t)-1 when it did not fit */
    size_t cust_off, cust_len, evid_off, evid_len;
    int64_t event_time;
    int slot; /* the customer's index in the batch, -1 for a dead letter found at decode */
    int row;  /* the record's row in the scored matrix */
} ss_batch_rec_t;

typedef struct ss_batch {
    size_t max;                /* batch.max.messages */
    size_t nf;                 /* features per row */
    rd_kafka_message_t **msgs; /* owned by the worker, which destroys them */
    size_t n_msgs;
    ss_batch_rec_t *recs;
    float *ev_feat; /* per record: the event's own features (NaN = absent) */
    float *rows;    /* per scored record: the merged vector scored */
    size_t n_rows;
    double *scores; /* per scored record */
    /* the customers of the batch, in order of first appearance */
    size_t n_u;
    const char **u_ids; /* into the arena */
    size_t *u_lens, *u_off;
    int32_t *u_part;          /* per customer: the partition its events came from */
    unsigned char *u_unknown; /* per customer: 1 when its known vector could not be read */
    unsigned char *u_dead;    /* per customer: 1 when its Redis key is not a hash: its records
                                 are dead letters, and it is neither scored nor kept */
    unsigned char *u_route;   /* per customer: the model that scores it (gates.h SS_ROUTE_*) */
    float *state;             /* per customer: the known vector, merged with its events */
    float *state0;            /* per customer: the known vector before the batch's events */
    unsigned char *u_flag;    /* per customer: scratch for one pass over the records */
    unsigned char *changed;   /* per customer and feature: carried by one of its events */
    int *table;               /* open addressing: customer -> slot, -1 empty */
    size_t table_mask;
    size_t *table_used;
    char *arena;
    size_t arena_len, arena_cap;
} ss_batch_t;

/* A batch of at most `max` records of `nf` features. Returns NULL when out of memory. */
ss_batch_t *ss_batch_new(size_t max, size_t nf);
void ss_batch_destroy(ss_batch_t *b);

/* Forget the previous batch's records and customers (the messages are the caller's). */
void ss_batch_reset(ss_batch_t *b);

/* The feature row the decoder fills for record i. */
static inline float *ss_batch_event_row(ss_batch_t *b, size_t i) {
    return b->ev_feat + i * b->nf;
}

/* Record i decoded into `ev` (its features already in ss_batch_event_row(b, i)); its time is
 * the event's, else `fallback_time`. Keeps the ids and finds the customer's slot. Returns 0
 * or SS_ERR_NOMEM. */
int ss_batch_add(ss_batch_t *b, size_t i, const ss_event_t *ev, int64_t fallback_time);

/* Record i goes to the dead-letter topic: `stage` and `reason` are static strings, `detail`
 * is copied. */
void ss_batch_dead_letter(ss_batch_t *b, size_t i, const char *stage, const char *reason,
                          const char *detail);

/* A non-finite score dead-letters its record: the first such record of each customer (the
 * later ones may have been merged with it, and are scored again once the batch is merged
 * again without it). Returns how many were dead-lettered. */
size_t ss_batch_dead_letter_non_finite(ss_batch_t *b);

/* The records of the customers whose Redis key (`prefix` + id) is not a hash (u_dead): dead
 * letters "feature_key_wrong_type". */
void ss_batch_dead_letter_not_hash(ss_batch_t *b, const char *prefix);

/* The dead-letter detail of record i (its reason when the detail did not fit). */
const char *ss_batch_detail(const ss_batch_t *b, size_t i);

/* Every known vector missing: the state a customer has when nothing is cached. */
void ss_batch_clear_state(ss_batch_t *b);

/* Merge in partition order: each scored record's event overrides its customer's known vector
 * where it has a value (a customer's later event sees the earlier one), marks what it
 * carried, and the result becomes the record's row. Sets n_rows. */
void ss_batch_merge(ss_batch_t *b);

/* The merge again from the known vectors, without the records dead-lettered since (a record
 * that cannot be scored changes no customer's vector): rows, n_rows and the change marks
 * anew. */
void ss_batch_remerge(ss_batch_t *b);

#endif
