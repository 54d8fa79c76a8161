/* file_out.h - where score-file's records go: a file written under a temporary name beside
 * the final one (.NAME.partial-PID), made durable and renamed only when the job completes,
 * so that a stopped or killed job leaves nothing under the final name; or a topic. */
#ifndef SS_FILE_OUT_H
#define SS_FILE_OUT_H

#include <stddef.h>

#include "config.h"
#include "producer.h"

enum { SS_OUT_AVRO = 0, SS_OUT_JSON = 1, SS_OUT_LINES = 2 /* text lines as given */ };

typedef struct ss_file_out ss_file_out_t;

/* A file at `path` in `format` (SS_OUT_AVRO: a container file of output.schema, its blocks
 * compressed with Avro codec `codec`: "null" (NULL), "deflate", "snappy", "lzma", as Avro C
 * was built). Returns NULL with errstr (SS_ERR_CONFIG material: names the path). */
ss_file_out_t *ss_file_out_open(const ss_config_t *cfg, const char *path, int format,
                                const char *codec, char *errstr, size_t errlen);
/* A topic, through `producer` (not owned). */
ss_file_out_t *ss_file_out_topic(ss_producer_t *producer, const char *topic, char *errstr,
                                 size_t errlen);

/* One record: an encoded prediction (Avro body or JSON object), or a line; `key` (a topic's
 * record key) may be NULL. Returns 0 or SS_ERR_FAIL with errstr. */
int ss_file_out_write(ss_file_out_t *o, const void *buf, size_t len, const char *key, size_t keylen,
                      char *errstr, size_t errlen);

/* Complete: the file flushed, synced and renamed to its final name (the topic's deliveries
 * acknowledged). Returns 0 or SS_ERR_FAIL with errstr; the output is closed either way. */
int ss_file_out_finish(ss_file_out_t *o, char *errstr, size_t errlen);

/* Give up: the temporary file removed, nothing under the final name. Accepts NULL. */
void ss_file_out_abort(ss_file_out_t *o);

#endif
