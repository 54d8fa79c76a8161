/* replay.h - `streamscore replay`: re-score a range of input.topic into a topic of its own
 * (docs/replay.md). */
#ifndef SS_REPLAY_H
#define SS_REPLAY_H

#include "config.h"

/* Entry point: `cfg` the finalized worker configuration, or NULL for --help (usage on
 * stdout, returns 0); `argv` the arguments that were not -c/-X. Returns 0 once the range is
 * replayed, SS_ERR_CONFIG for bad usage, configuration, a refused topic or an empty range,
 * another negative SS_ERR_* code for a runtime failure or a stop signal (run it again to
 * resume). */
int ss_replay_main(const ss_config_t *cfg, int argc, char **argv);

#endif
