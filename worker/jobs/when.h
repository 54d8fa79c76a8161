/* when.h - a point of a replay's range (--from, --to, --features-from): beginning, now, a
 * time (ISO-8601, epoch milliseconds, or before now: -30s, -15m, -2h, -7d), or offsets per
 * partition "P:O[,P:O...]". */
#ifndef SS_WHEN_H
#define SS_WHEN_H

#include <stddef.h>
#include <stdint.h>

enum { SS_WHEN_BEGINNING, SS_WHEN_NOW, SS_WHEN_TIME, SS_WHEN_OFFSETS };

typedef struct ss_when {
    int kind;
    int64_t ms;       /* SS_WHEN_TIME: epoch milliseconds */
    const char *text; /* as given (SS_WHEN_OFFSETS: "P:O,...") */
} ss_when_t;

/* Parse `s` given as option `opt`, relative times counted back from `now` (epoch ms).
 * Returns 0, or SS_ERR_CONFIG with errstr naming the option and what it accepts. */
int ss_when_parse(const char *opt, const char *s, int64_t now, ss_when_t *w, char *errstr,
                  size_t errlen);

/* The offset offsets text `s` ("P:O,...") names for partition p, or -1 when it names none. */
int64_t ss_when_offset(const char *s, int32_t p);

#endif
