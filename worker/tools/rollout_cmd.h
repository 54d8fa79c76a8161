/* rollout_cmd.h - `streamscore rollout status | start | step | promote | rollback`: reads the
 * rollout's state from rollout.topic, derives the next one (rollout.h) and writes it, for
 * every primary worker to apply (docs/rollout.md). */
#ifndef SS_ROLLOUT_CMD_H
#define SS_ROLLOUT_CMD_H

#include "config.h"

/* Entry point. `cfg` is the finalized configuration (rollout.*, kafka.*, model.signature.key),
 * or NULL when --help was given (print usage on stdout, return 0). `argv` holds the arguments
 * that were not -c/-X. Returns 0, SS_ERR_CONFIG (bad usage or configuration, or a change the
 * current state does not allow) or another negative SS_ERR_* code (a runtime failure: Kafka,
 * a candidate refused here), with one line on stderr. */
int ss_rollout_main(const ss_config_t *cfg, int argc, char **argv);

#endif
