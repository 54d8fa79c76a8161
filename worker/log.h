/* log.h - structured logging: one JSON object per line on stderr.
 * Every module logs through here so that operators can parse the stream. */
#ifndef SS_LOG_H
#define SS_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum { SS_LOG_DEBUG = 0, SS_LOG_INFO, SS_LOG_WARN, SS_LOG_ERROR } ss_log_level_t;

/* Set the minimum level printed. Call once at start-up, before threads. */
void ss_log_set_level(ss_log_level_t level);
int ss_log_level_parse(const char *name, ss_log_level_t *out);

/* Log a message. `fields` is NULL or extra JSON members, already escaped,
 * without braces (e.g. "\"topic\":\"x\",\"n\":3"). Thread-safe. */
void ss_log(ss_log_level_t level, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append `s` to `dst` (size `cap`, at offset *len) as a JSON string body,
 * escaping quotes, backslashes and control bytes. Truncates safely. */
void ss_json_escape(char *dst, size_t cap, size_t *len, const char *s, size_t slen);

#define ss_debug(...) ss_log(SS_LOG_DEBUG, NULL, __VA_ARGS__)
#define ss_info(...) ss_log(SS_LOG_INFO, NULL, __VA_ARGS__)
#define ss_warn(...) ss_log(SS_LOG_WARN, NULL, __VA_ARGS__)
#define ss_error(...) ss_log(SS_LOG_ERROR, NULL, __VA_ARGS__)

#endif
