/* log.c - structured logs on stderr, one JSON object per line.
 * A single write(2) per line keeps lines whole when threads log at once. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static ss_log_level_t min_level = SS_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void ss_log_set_level(ss_log_level_t level) { min_level = level; }

int ss_log_level_parse(const char *name, ss_log_level_t *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (ss_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void ss_json_escape(char *dst, size_t cap, size_t *len, const char *s, size_t slen) {
    static const char hex[] = "0123456789abcdef";
    size_t n = *len;
    for (size_t i = 0; i < slen && n + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c == '\n') {
            dst[n++] = '\\';
            dst[n++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(dst + n, "\\u00", 4);
            dst[n + 4] = hex[c >> 4];
            dst[n + 5] = hex[c & 15];
            n += 6;
        } else {
            dst[n++] = (char)c;
        }
    }
    dst[n < cap ? n : cap - 1] = '\0';
    *len = n;
}

void ss_log(ss_log_level_t level, const char *fields, const char *fmt, ...) {
    if (level < min_level)
        return;
    char msg[1024], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = (size_t)snprintf(line, sizeof(line),
                                "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level]);
    ss_json_escape(line, sizeof(line) - 600, &n, msg, strlen(msg));
    int w;
    if (fields && *fields)
        w = snprintf(line + n, sizeof(line) - n, "\",%s}\n", fields);
    else
        w = snprintf(line + n, sizeof(line) - n, "\"}\n");
    if (w < 0 || (size_t)w >= sizeof(line) - n) {
        /* fields did not fit: drop them, keep the line valid JSON */
        memcpy(line + n, "\"}\n", 3);
        n += 3;
    } else {
        n += (size_t)w;
    }
    ssize_t r = write(STDERR_FILENO, line, n);
    (void)r;
}
