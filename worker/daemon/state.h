/* state.h - a worker thread's view of the customers' known features: read for a batch's
 * customers before merging, written back after scoring, through Redis (worker/core/cache.c)
 * under the redis.on.error policy (block: retry until it works or the worker stops; degrade:
 * go on without cached features, metered, trying again after a backoff).
 * @locality the worker thread that owns it */
#ifndef SS_STATE_H
#define SS_STATE_H

#include "batch.h"
#include "config.h"
#include "metrics.h"

typedef struct ss_state ss_state_t;

/* Connects to Redis (cfg redis.*). `stopping` is polled while a blocked call retries.
 * Returns NULL with errstr when Redis cannot be reached and redis.on.error = block. */
ss_state_t *ss_state_new(const ss_config_t *cfg, char *const *features, size_t nf,
                         ss_metrics_t *metrics, int (*stopping)(void *), void *stop_arg,
                         char *errstr, size_t errlen);
void ss_state_destroy(ss_state_t *s);

/* The known vectors of the batch's customers into b->state. Returns 0 when read, 1 when
 * degraded (every known value missing), SS_ERR_STOPPED when a stop came while blocked. */
int ss_state_read(ss_state_t *s, ss_batch_t *b);

/* The features the batch's events carried, back to Redis (TTL refreshed). Returns 0, 1 when
 * degraded (not written), SS_ERR_STOPPED when a stop came while blocked. */
int ss_state_write(ss_state_t *s, ss_batch_t *b);

#endif
