/* compare.h - `streamscore compare`: joins the primary's predictions with the shadow's
 * results on (source partition, source offset) and reports how the candidate differs. */
#ifndef SS_COMPARE_H
#define SS_COMPARE_H

#include "config.h"

/* Entry point. `cfg` is the finalized configuration (kafka.*, output.topic, shadow.topic,
 * shadow.output/shadow.file, output.format, model.threshold, compare.*, promote.*), or NULL
 * when --help was given (print usage on stdout, return 0). `argv` holds the arguments
 * that were not -c/-X. Returns 0 (promote, or no criterion set), SS_ERR_VERDICT (hold),
 * SS_ERR_CONFIG (bad usage or configuration) or another negative SS_ERR_* code (a runtime
 * failure), with the error on stderr. */
int ss_compare_main(const ss_config_t *cfg, int argc, char **argv);

#endif
