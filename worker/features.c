/* features.c - the small, exact parts of feature handling that every other module and
 * every consumer of our outputs must agree on: merge, hash and text form. */
#include "features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ss_features_merge(float *state, const float *event, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isnan(event[i]))
            state[i] = event[i];
}

uint64_t ss_features_hash(const float *v, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        if (isnan(v[i]))
            bits = 0x7fc00000u;
        else
            memcpy(&bits, &v[i], 4);
        for (int b = 0; b < 4; b++) {
            h ^= (bits >> (8 * b)) & 0xffu;
            h *= 0x100000001b3ULL;
        }
    }
    return h;
}

void ss_features_hash_hex(uint64_t h, char out[17]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[h & 15];
        h >>= 4;
    }
    out[16] = '\0';
}

int ss_feature_format(float v, char *out, size_t outlen) {
    /* try short forms first: most values are small integers or short decimals */
    for (int prec = 6; prec <= 9; prec++) {
        int n = snprintf(out, outlen, "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v)
            return n;
    }
    return snprintf(out, outlen, "%.9g", (double)v);
}

float ss_feature_parse(const char *s, size_t len) {
    char buf[64];
    if (!s || len == 0 || len >= sizeof(buf))
        return NAN;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    float v = strtof(buf, &end);
    if (end == buf || *end || !isfinite(v))
        return NAN;
    return v;
}
