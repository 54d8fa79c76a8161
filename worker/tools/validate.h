/* validate.h - `streamscore validate-model`: scores a labeled data set with a model,
 * checks the results against the configured gates of its task, over the whole data set and its
 * segments, and records them in the model card (docs/validate.md). */
#ifndef SS_VALIDATE_H
#define SS_VALIDATE_H

#include "config.h"

/* Entry point. `cfg` is the finalized configuration (model.*, drift.*, input.schema,
 * features.rename, features.unseen.category, input.*.field, batch.max.messages, validate.*),
 * or NULL when --help was given (print usage on stdout, return 0). `argv` holds the arguments
 * that were not -c/-X.
 * Returns 0 when every gate passes, SS_ERR_VERDICT when a gate failed, SS_ERR_CONFIG for bad
 * usage or configuration, another negative SS_ERR_* code for a runtime failure (the error
 * on stderr). */
int ss_validate_main(const ss_config_t *cfg, int argc, char **argv);

#endif
