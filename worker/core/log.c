/* log.c - structured logs on stderr, one JSON object per line.
 * A single write(2) per line keeps lines whole when threads log at once. */
#include "log.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

static ss_log_level_t min_level = SS_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void ss_log_set_level(ss_log_level_t level) {
    min_level = level;
}

int ss_log_level_parse(const char *name, ss_log_level_t *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (ss_log_level_t)i;
            return 0;
        }
    }
    return SS_ERR_CONFIG;
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

/* The length of the valid UTF-8 sequence at s (n bytes left), 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    size_t len = s[0] < 0x80                    ? 1
                 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
                 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                                : 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/* A JSON string of s: bytes that are not UTF-8 (a field from a config file in Latin-1, a
 * model name with a stray byte) become U+FFFD, so that every line stays JSON. */
static json_t *text(const char *s) {
    size_t n = strlen(s);
    json_t *j = json_stringn(s, n);
    if (j)
        return j;
    char *clean = malloc(n * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; clean && i < n;) {
        size_t len = utf8_len((const unsigned char *)s + i, n - i);
        if (len) {
            memcpy(clean + k, s + i, len);
            k += len, i += len;
        } else {
            memcpy(clean + k, "\xEF\xBF\xBD", 3);
            k += 3, i++;
        }
    }
    j = clean ? json_stringn(clean, k) : NULL;
    free(clean);
    return j ? j : json_string("(not UTF-8)");
}

static json_t *field_value(const ss_field_t *f) {
    switch (f->type) {
    case SS_FIELD_STR: return f->u.s ? text(f->u.s) : json_null();
    case SS_FIELD_INT: return json_integer(f->u.i);
    case SS_FIELD_REAL: return isfinite(f->u.d) ? json_real(f->u.d) : json_null();
    case SS_FIELD_BOOL: return json_boolean(f->u.i);
    case SS_FIELD_INTS: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < f->u.ints.n; i++)
            json_array_append_new(a, json_integer(f->u.ints.v[i]));
        return a;
    }
    default: return json_null();
    }
}

void ss_log(ss_log_level_t level, const ss_field_t *fields, const char *fmt, ...) {
    if (level < min_level)
        return;
    char msg[1024], ts[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(tv.tv_usec / 1000));
    json_t *o = json_object();
    char *line = NULL;
    if (o) {
        json_object_set_new(o, "ts", json_string(ts));
        json_object_set_new(o, "level", json_string(level_names[level]));
        json_object_set_new(o, "msg", text(msg));
        for (const ss_field_t *f = fields; f && f->type != SS_FIELD_END; f++)
            json_object_set_new_nocheck(o, f->key, field_value(f));
        line = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    if (!line) { /* out of memory: the message alone, escaped by hand */
        char buf[1200];
        size_t n =
            (size_t)snprintf(buf, sizeof(buf), "{\"level\":\"%s\",\"msg\":\"", level_names[level]);
        ss_json_escape(buf, sizeof(buf) - 4, &n, msg, strlen(msg));
        memcpy(buf + n, "\"}\n", 3);
        ssize_t r = write(STDERR_FILENO, buf, n + 3);
        (void)r;
        return;
    }
    size_t n = strlen(line);
    line[n] = '\n'; /* json_dumps' terminator becomes the newline: one write per line */
    ssize_t r = write(STDERR_FILENO, line, n + 1);
    (void)r;
    free(line);
}
