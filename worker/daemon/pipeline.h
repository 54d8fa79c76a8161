/* pipeline.h - the worker: N threads, each consuming, decoding, merging with the
 * feature cache, scoring, producing and committing one micro-batch at a time. */
#ifndef SS_PIPELINE_H
#define SS_PIPELINE_H

#include "config.h"
#include "metrics.h"
#include "model.h"

/* Run the worker until *stop becomes non-zero (set by a signal handler) or a fatal
 * error; reload the model when *reload becomes non-zero (SIGHUP; it is reset) or, with
 * model.reload, when the model files change. Takes a reference to `model`. Counts into
 * `metrics` (initialized by the caller) and serves it on metrics.listen. Returns 0 on a
 * clean stop, 1 on runtime failure, 2 on a configuration error found while starting (e.g. a
 * schema that does not fit). */
int ss_pipeline_run(const ss_config_t *cfg, ss_model_t *model, volatile int *stop,
                    volatile int *reload, ss_metrics_t *metrics);

#endif
