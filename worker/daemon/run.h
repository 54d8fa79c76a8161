/* run.h - `streamscore run`: the worker's threads, each consuming, decoding, merging with the
 * known features, scoring, producing and committing one micro-batch at a time, with the
 * model reloaded while they run and the HTTP endpoints served beside them. */
#ifndef SS_RUN_H
#define SS_RUN_H

#include "config.h"
#include "metrics.h"
#include "model.h"

/* Run until *stop becomes non-zero (set by a signal handler) or a fatal error; reload the
 * model when *reload becomes non-zero (SIGHUP; it is reset) or, with model.reload, when the
 * model files change. Takes a reference to `model` (opened with ss_model_open). Counts into
 * `metrics` (initialized by the caller) and serves it on metrics.listen. Returns 0 on a clean
 * stop, SS_ERR_CONFIG for a configuration error found while starting (e.g. a schema that does
 * not fit), another negative SS_ERR_* code on a runtime failure. */
int ss_run(const ss_config_t *cfg, ss_model_t *model, int *stop, int *reload,
           ss_metrics_t *metrics);

#endif
