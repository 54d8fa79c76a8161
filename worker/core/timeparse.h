/* timeparse.h - times as users write them (compare's --from/--to and label times, replay's
 * range). */
#ifndef SS_TIMEPARSE_H
#define SS_TIMEPARSE_H

#include <stddef.h>
#include <stdint.h>

/* Epoch milliseconds, or ISO-8601 "YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM]" (UTC without a
 * zone), spaces around it ignored, into *ms. 0 or SS_ERR_FAIL. */
int ss_parse_time(const char *s, size_t n, int64_t *ms);

/* [s, s + n) without the spaces around it, copied into buf (NUL-terminated). 0, or
 * SS_ERR_FAIL when nothing is left or it does not fit. */
int ss_trimmed_copy(const char *s, size_t n, char *buf, size_t cap);

#endif
