/* score_file.h - `streamscore score-file`: score Avro container files or JSON lines into a
 * file or a topic, as the worker scores a stream (docs/replay.md). */
#ifndef SS_SCORE_FILE_H
#define SS_SCORE_FILE_H

#include "config.h"

/* Entry point, as ss_replay_main. Returns 0 when every record was scored or dead-lettered and
 * the output completed, SS_ERR_CONFIG for bad usage, configuration, a missing input or one
 * whose schema does not match, another negative SS_ERR_* code for a runtime failure or a stop
 * signal (nothing under the output's name then). */
int ss_score_file_main(const ss_config_t *cfg, int argc, char **argv);

#endif
