/* explainer.h - a worker thread's explanations of a batch (explain.top.k): the records chosen
 * (explain.sample, explain.when), their rows gathered per route and explained by the model of
 * their route in one call each, the top-k of each kept until the batch's predictions are
 * written. Allocated once per thread. @locality the worker thread that owns it */
#ifndef SS_EXPLAINER_H
#define SS_EXPLAINER_H

#include "batch.h"
#include "canary.h"
#include "explain.h"

typedef struct ss_explainer ss_explainer_t;

/* NULL with explain.top.k = 0 (and errstr empty), or when out of memory (errstr says so). */
ss_explainer_t *ss_explainer_new(const ss_config_t *cfg, size_t max_rows, size_t nf, char *errstr,
                                 size_t errlen);
void ss_explainer_destroy(ss_explainer_t *x);

/* Explain the batch's scored records that are chosen; `decision` and `cls` per row (-1: none).
 * Returns 0, or SS_ERR_FAIL with errstr when XGBoost fails. */
int ss_explainer_run(ss_explainer_t *x, const ss_batch_t *b, const ss_plan_t *plan,
                     const signed char *decision, const int *cls, char *errstr, size_t errlen);

/* Record i's explanation into p (contributions NULL when it was not explained). */
void ss_explainer_fill(const ss_explainer_t *x, const ss_batch_t *b, size_t i, ss_prediction_t *p);

/* Explanations of this batch (for the metrics). */
long ss_explainer_count(const ss_explainer_t *x);

#endif
