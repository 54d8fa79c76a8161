/* explain.c - choosing the events explained and the top-k of their contributions. */
#include "explain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"

int ss_explain_parse_when(const char *text, ss_explain_when_t *when, char *errstr, size_t errlen) {
    memset(when, 0, sizeof(*when));
    if (strcmp(text, "always") == 0)
        return 0;
    if (strcmp(text, "decision") == 0) {
        when->kind = SS_EXPLAIN_DECISION;
        return 0;
    }
    if (strncmp(text, "class:", 6) != 0)
        goto bad;
    when->kind = SS_EXPLAIN_CLASS;
    const char *s = text + 6;
    for (;;) {
        char *end;
        long c = strtol(s, &end, 10);
        if (end == s || c < 0 || c >= SS_EXPLAIN_MAX_CLASS || (*end && *end != ','))
            goto bad;
        when->classes[c] = 1;
        if (!*end)
            return 0;
        s = end + 1;
    }
bad:
    snprintf(errstr, errlen,
             "config: key 'explain.when': '%s' is not always, decision, or class:N[,N...] "
             "(0 <= N < %d)",
             text, SS_EXPLAIN_MAX_CLASS);
    return SS_ERR_CONFIG;
}

int ss_explain_selected(const ss_explain_when_t *when, double sample, int32_t partition,
                        int64_t offset, int decision, int cls) {
    if (when->kind == SS_EXPLAIN_DECISION && decision != 1)
        return 0;
    if (when->kind == SS_EXPLAIN_CLASS &&
        (cls < 0 || cls >= SS_EXPLAIN_MAX_CLASS || !when->classes[cls]))
        return 0;
    if (sample >= 1)
        return 1;
    uint64_t h =
        ss_fmix64(((uint64_t)(uint32_t)partition << 40) ^ (uint64_t)offset ^ 0x9e3779b97f4a7c15ull);
    return (double)(h >> 11) * 0x1.0p-53 < sample;
}

size_t ss_explain_top(const float *contrib, const float *x, size_t nf, char *const *names, size_t k,
                      ss_contribution_t *out, double *bias) {
    size_t n = 0;
    if (k > nf)
        k = nf;
    *bias = contrib[nf];
    /* insertion into the k kept so far, largest |contribution| first */
    for (size_t f = 0; f < nf && k > 0; f++) {
        double a = fabs((double)contrib[f]);
        if (n == k && !(a > fabs(out[n - 1].contribution)))
            continue;
        size_t i = n < k ? n++ : n - 1;
        while (i > 0 && a > fabs(out[i - 1].contribution)) {
            out[i] = out[i - 1];
            i--;
        }
        out[i] = (ss_contribution_t){names[f], x[f], contrib[f]};
    }
    return n;
}
