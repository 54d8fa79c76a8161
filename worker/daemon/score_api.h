/* score_api.h - the on-demand score (score.listen, docs/score-api.md): GET
 * /v1/customers/{id}/score answers with the customer's features as Redis holds them (the
 * stream's latest merge, as of the last flush), a fresh score by the model of the customer's
 * route (the live model, or the canary's candidate), the decision, and with ?explain=k the
 * top-k contributions. A listener of its own beside /metrics, with a pool of threads each
 * holding a Redis connection and a predictor, optional bearer token and client certificates,
 * and metrics of its own (streamscore_score_*). */
#ifndef SS_SCORE_API_H
#define SS_SCORE_API_H

#include "runtime.h"

typedef struct ss_score_api ss_score_api_t;

/* The largest ?explain=k, and the longest customer id (bytes) a request may name. */
#define SS_SCORE_MAX_EXPLAIN 64
#define SS_SCORE_MAX_ID 256

/* Start serving on score.listen (set) for `rt`, which must outlive it. Returns NULL with
 * errstr and the code in *why: SS_ERR_CONFIG (a TLS file unreadable or refused, Redis
 * refused), SS_ERR_FAIL (the address cannot be bound, Redis unreachable). */
ss_score_api_t *ss_score_api_start(ss_runtime_t *rt, int *why, char *errstr, size_t errlen);
/* Stop answering and free. Accepts NULL. */
void ss_score_api_stop(ss_score_api_t *a);

#endif
