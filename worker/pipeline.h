/* pipeline.h - the worker: N threads, each consuming, decoding, merging with the
 * feature cache, scoring, producing and committing one micro-batch at a time. */
#ifndef SS_PIPELINE_H
#define SS_PIPELINE_H

#include "config.h"
#include "model.h"

/* Counters shared by all threads; updated atomically. */
typedef struct ss_stats {
    long consumed, scored, produced, dead_lettered, cache_errors, batches, kafka_errors;
    long degraded; /* scored without cached features (redis.on.error = degrade) */
} ss_stats_t;

/* Run the worker until *stop becomes non-zero (set by a signal handler) or a fatal
 * error. Takes a reference to `model`. Returns 0 on a clean stop, 1 on runtime failure,
 * 2 on a configuration error found while starting (e.g. a schema that does not fit). */
int ss_pipeline_run(const ss_config_t *cfg, ss_model_t *model, volatile int *stop,
                    ss_stats_t *stats);

#endif
