/* timeparse.c - times as users write them: epoch milliseconds, or ISO-8601. */
#include "timeparse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"

int ss_trimmed_copy(const char *s, size_t n, char *buf, size_t cap) {
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0 || n >= cap)
        return SS_ERR_FAIL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

/* "THH:MM[:SS[.fff]]" (or with a space or 't') after a date, if there; *pp moves past it. */
static int iso_clock(const char **pp, int *h, int *mi, int *sec, int *frac) {
    const char *p = *pp;
    int used = 0, digits = 0;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return 0;
    if (sscanf(p + 1, "%2d:%2d%n", h, mi, &used) != 2 || used != 5)
        return SS_ERR_FAIL;
    p += 6;
    if (*p == ':') {
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
            return SS_ERR_FAIL;
        *sec = (p[1] - '0') * 10 + (p[2] - '0');
        p += 3;
    }
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                *frac = *frac * 10 + (*p - '0');
        if (!digits)
            return SS_ERR_FAIL;
        for (; digits < 3; digits++)
            *frac *= 10;
    }
    *pp = p;
    return 0;
}

/* "Z", "+HH:MM" or "-HH:MM" (*off: minutes east of UTC), if there; returns what follows. */
static const char *iso_zone(const char *p, int *off) {
    if (*p == 'Z' || *p == 'z')
        return p + 1;
    if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
        p[3] == ':' && isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5])) {
        *off = ((p[1] - '0') * 10 + (p[2] - '0')) * 60 + (p[4] - '0') * 10 + (p[5] - '0');
        *off = *p == '-' ? -*off : *off;
        return p + 6;
    }
    return p;
}

int ss_parse_time(const char *s, size_t n, int64_t *ms) {
    char buf[64], *end;
    if (ss_trimmed_copy(s, n, buf, sizeof(buf)) < 0)
        return SS_ERR_FAIL;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end == '\0' && errno == 0) {
        *ms = v;
        return 0;
    }
    int y, mo, d, h = 0, mi = 0, sec = 0, used = 0, frac = 0, off = 0;
    if (sscanf(buf, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
        return SS_ERR_FAIL;
    const char *p = buf + used;
    if (iso_clock(&p, &h, &mi, &sec, &frac) < 0)
        return SS_ERR_FAIL;
    p = iso_zone(p, &off);
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return SS_ERR_FAIL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    *ms = (int64_t)timegm(&tm) * 1000 + frac - (int64_t)off * 60000;
    return 0;
}
