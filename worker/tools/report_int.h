/* report_int.h - what the parts of the compare report share, and nothing else includes:
 * report.c (the terminal summary and compare.html) and report_json.c (compare.json). */
#ifndef SS_REPORT_INT_H
#define SS_REPORT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "report.h"

extern const char *const ss__report_verdict_names[3]; /* by ss_cmp_verdict */
extern const char *const ss__report_kind_names[3];    /* binary, multiclass, regression */
extern const char ss__report_canary_note[];           /* the note on the canary route */

/* Whether route k is reported: it has primary records. */
int ss__report_route_shown(const ss_cmp_result_t *r, int k);
/* Whether canary predictions are among the primary's. */
int ss__report_canary_present(const ss_cmp_result_t *r);
/* `ms` since the epoch as ISO 8601 UTC with milliseconds. */
void ss__report_iso_time(int64_t ms, char *out, size_t outlen);

#endif
