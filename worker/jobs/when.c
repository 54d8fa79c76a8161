/* when.c - the points of a replay's range as users write them. */
#include "when.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "timeparse.h"

static int is_offsets(const char *s) {
    int pairs = 0;
    while (*s) {
        if (!isdigit((unsigned char)*s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
        if (*s++ != ':' || !isdigit((unsigned char)*s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
        pairs++;
        if (*s == ',' && isdigit((unsigned char)s[1]))
            s++;
        else if (*s)
            return 0; /* anything else, or a comma with no pair after it */
    }
    return pairs > 0;
}

int ss_when_parse(const char *opt, const char *s, int64_t now, ss_when_t *w, char *err,
                  size_t errlen) {
    char unit;
    long long n;
    int used = 0;
    memset(w, 0, sizeof(*w));
    w->text = s;
    if (strcmp(s, "beginning") == 0 || strcmp(s, "earliest") == 0)
        w->kind = SS_WHEN_BEGINNING;
    else if (strcmp(s, "now") == 0 || strcmp(s, "end") == 0)
        w->kind = SS_WHEN_NOW;
    else if (is_offsets(s))
        w->kind = SS_WHEN_OFFSETS;
    else if (s[0] == '-' && sscanf(s + 1, "%lld%c%n", &n, &unit, &used) == 2 &&
             s[1 + used] == '\0' && n >= 0 && strchr("smhd", unit)) {
        long long mult = unit == 's'   ? 1000
                         : unit == 'm' ? 60000
                         : unit == 'h' ? 3600000
                                       : 86400000;
        w->kind = SS_WHEN_TIME;
        w->ms = now - n * mult;
    } else if (ss_parse_time(s, strlen(s), &w->ms) == 0) {
        w->kind = SS_WHEN_TIME;
    } else {
        snprintf(err, errlen,
                 "%s '%s': not a time (ISO-8601 like 2026-12-01T10:00:00Z, epoch milliseconds, "
                 "-2h), beginning, now, or offsets P:O[,P:O...]",
                 opt, s);
        return SS_ERR_CONFIG;
    }
    return 0;
}

int64_t ss_when_offset(const char *s, int32_t p) {
    while (*s) {
        char *end;
        long part = strtol(s, &end, 10);
        long long off = strtoll(end + 1, &end, 10);
        if (part == p)
            return off;
        s = *end ? end + 1 : end;
    }
    return -1;
}
