/* file_in.h - the records of score-file's inputs, decoded by the worker's codec: an Avro
 * object container file read with its own writer schema (resolved against input.schema), or
 * JSON lines, each object made a value of input.schema and read as such. */
#ifndef SS_FILE_IN_H
#define SS_FILE_IN_H

#include <stdint.h>

#include "codec.h"
#include "model.h"

enum { SS_FILE_AVRO = 0, SS_FILE_JSON = 1 };

typedef struct ss_file_in ss_file_in_t;

/* The format a path's extension names (.avro; .jsonl, .ndjson, .json), or -1. */
int ss_file_format_of(const char *path);

/* Open `path` in `format` for `model`'s features. Returns NULL with errstr and the code in
 * *why: SS_ERR_CONFIG for a missing or unreadable file, not an Avro container file, a writer
 * schema that does not resolve against input.schema (the message names the file). */
ss_file_in_t *ss_file_in_open(const ss_config_t *cfg, const ss_model_t *model, const char *path,
                              int format, int *why, char *errstr, size_t errlen);
void ss_file_in_close(ss_file_in_t *in);

/* The next record: 1 with *rc SS_DECODE_OK (ev, features filled; strings valid until the
 * next call) or a dead letter (*rc < 0, *reason its static reason, errstr the detail);
 * 0 at the end; SS_ERR_FAIL with errstr when the file cannot be read on. */
int ss_file_in_next(ss_file_in_t *in, ss_event_t *ev, float *features, int *rc, const char **reason,
                    char *errstr, size_t errlen);

/* The share of the file read so far, in [0, 1]. */
double ss_file_in_fraction(const ss_file_in_t *in);

#endif
