/* log.h - structured logging: one JSON object per line on stderr.
 * Every module logs through here so that operators can parse the stream. A line carries
 * "ts", "level", "msg" and typed fields; every key and value is escaped here, so no caller
 * ever builds a JSON fragment by hand. */
#ifndef SS_LOG_H
#define SS_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "error.h"

typedef enum { SS_LOG_DEBUG = 0, SS_LOG_INFO, SS_LOG_WARN, SS_LOG_ERROR } ss_log_level_t;

/* Set the minimum level printed. Call once at start-up, before threads. */
void ss_log_set_level(ss_log_level_t level);
/* "debug", "info", "warn" or "error" into *out: 0, or SS_ERR_CONFIG for any other name. */
int ss_log_level_parse(const char *name, ss_log_level_t *out);

/* One typed field of a log line. Build them with the SS_F* macros, a list with SS_FIELDS. */
typedef enum {
    SS_FIELD_END = 0,
    SS_FIELD_STR,  /* u.s: a C string, NULL logs null */
    SS_FIELD_INT,  /* u.i */
    SS_FIELD_REAL, /* u.d: NaN and infinities log null */
    SS_FIELD_BOOL, /* u.i: 0 false, else true */
    SS_FIELD_INTS  /* u.ints: an array of int */
} ss_field_type_t;

typedef struct ss_field {
    const char *key;
    ss_field_type_t type;
    union {
        const char *s;
        long long i;
        double d;
        struct {
            const int *v;
            size_t n;
        } ints;
    } u;
} ss_field_t;

#define SSF_STR(k, v) ((ss_field_t){.key = (k), .type = SS_FIELD_STR, .u.s = (v)})
#define SSF_INT(k, v) ((ss_field_t){.key = (k), .type = SS_FIELD_INT, .u.i = (long long)(v)})
#define SSF_REAL(k, v) ((ss_field_t){.key = (k), .type = SS_FIELD_REAL, .u.d = (double)(v)})
#define SSF_BOOL(k, v) ((ss_field_t){.key = (k), .type = SS_FIELD_BOOL, .u.i = !!(v)})
#define SSF_INTS(k, arr, cnt)                                                                      \
    ((ss_field_t){.key = (k), .type = SS_FIELD_INTS, .u.ints = {(arr), (size_t)(cnt)}})
/* A field list for ss_log: SS_FIELDS(SSF_STR("component", "redis"), SSF_INT("n", 3)). */
#define SS_FIELDS(...) ((const ss_field_t[]){__VA_ARGS__, {.type = SS_FIELD_END}})

/* Log a message with `fields` (NULL, or a list ending with SS_FIELD_END). Thread-safe: one
 * write(2) per line. */
void ss_log(ss_log_level_t level, const ss_field_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append `s` to `dst` (size `cap`, at offset *len) as a JSON string body, escaping quotes,
 * backslashes and control bytes. Truncates safely. For hot-path encoders (JSON predictions);
 * everything else writes JSON with jansson. */
void ss_json_escape(char *dst, size_t cap, size_t *len, const char *s, size_t slen);

#define ss_debug(...) ss_log(SS_LOG_DEBUG, NULL, __VA_ARGS__)
#define ss_info(...) ss_log(SS_LOG_INFO, NULL, __VA_ARGS__)
#define ss_warn(...) ss_log(SS_LOG_WARN, NULL, __VA_ARGS__)
#define ss_error(...) ss_log(SS_LOG_ERROR, NULL, __VA_ARGS__)

#endif
