/* scorer.h - what an offline job (replay, score-file) does with a batch of decoded records,
 * as the live worker does it: each customer's known vector from a store of the job's own
 * (seeded, read-only, from Redis when asked), merged with the batch's events in order, scored
 * by the model in one call (a non-finite score dead-letters its record and the batch is merged
 * again without it), decided by the threshold, explained when explain.top.k asks, and kept as
 * the customer's vector for its next events. Nothing is ever written to Redis.
 * @locality the thread that owns it */
#ifndef SS_SCORER_H
#define SS_SCORER_H

#include "batch.h"
#include "config.h"
#include "model.h"
#include "prediction.h"

typedef struct ss_scorer ss_scorer_t;

/* A scorer of batches of at most `max` records, scored by `model` (a reference is taken) with
 * `threshold` (model.threshold, NaN: the card's or the objective's), holding at most
 * state.store.max.customers customers; with `seed`, customers it does not hold are read from
 * Redis (redis.*). Returns NULL with errstr and the code in *why (SS_ERR_CONFIG: Redis
 * refused; SS_ERR_FAIL: unreachable; SS_ERR_NOMEM). */
ss_scorer_t *ss_scorer_new(const ss_config_t *cfg, ss_model_t *model, double threshold, size_t max,
                           int seed, int *why, char *errstr, size_t errlen);
void ss_scorer_destroy(ss_scorer_t *s);

/* The batch the caller decodes into (ss_batch_reset, then ss_batch_add / ss_batch_dead_letter
 * per record, b->n_msgs records; b->u_part set per customer as the store's partition). */
ss_batch_t *ss_scorer_batch(ss_scorer_t *s);

/* Known vectors, merge, score, decide, explain, keep. Returns 0, or a negative SS_ERR_* code
 * with errstr (Redis failed or refused, XGBoost failed). */
int ss_scorer_run(ss_scorer_t *s, char *errstr, size_t errlen);

/* Record i's prediction as scored (not a dead letter): ids, score, decision, outputs, class,
 * explanation, event time, feature hash, model; the source fields are the caller's. */
void ss_scorer_fill(ss_scorer_t *s, size_t i, ss_prediction_t *p);

/* Customers held now, and evicted so far (their later events did not see their earlier
 * ones). */
size_t ss_scorer_customers(const ss_scorer_t *s);
long ss_scorer_evicted(const ss_scorer_t *s);

#endif
