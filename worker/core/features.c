/* features.c - the small, exact parts of feature handling that every other module and
 * every consumer of our outputs must agree on: merge, hash and text form. */
#include "features.h"

#include "hash.h"

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
    uint64_t h = SS_FNV1A_INIT;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        if (isnan(v[i]))
            bits = 0x7fc00000u;
        else
            memcpy(&bits, &v[i], 4);
        /* little-endian bytes of the float32, whatever the machine's order */
        unsigned char le[4] = {(unsigned char)bits, (unsigned char)(bits >> 8),
                               (unsigned char)(bits >> 16), (unsigned char)(bits >> 24)};
        h = ss_fnv1a(h, le, 4);
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

/* The text "%.6g" gives for v when it reads back as v and is in fixed notation, built without
 * printf or strtof (which cost more than the rest of a Redis write). Returns its length, or
 * 0 when v needs the general path: |v| outside [1e-4, 1e6), or six significant digits that
 * do not read back as v. Exact arithmetic only: a float times 10^k (k <= 9) is exact in a
 * double (24 + 21 significand bits), so t = |v| * 10^d is the exact scaled value; rounding it
 * half to even is what glibc's printf does with the exact binary value; and the check that
 * the six digits read back is done against half an ulp of v, exactly, conservatively at a
 * power of two (the general path decides the cases it leaves). */
static int format_fixed6(float v, char *out, size_t outlen) {
    static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double a = fabs((double)v);
    double s = a * 1e9; /* exact */
    if (!(s >= 1e5 && s < 1e15) || outlen < 16)
        return 0;
    int e = 5; /* s in [10^e, 10^(e+1)): |v| in [10^(e-9), 10^(e-8)) */
    while (s >= p10[e + 1])
        e++;
    int E = e - 9;           /* decimal exponent of |v|, -4 .. 5 */
    int d = 5 - E;           /* decimals of the six significant digits, 0 .. 9 */
    double t = a * p10[d];   /* exact */
    double x = nearbyint(t); /* half to even, as glibc's printf */
    if (x >= 1e6) {          /* rounded up to the next power of ten */
        x /= 10;
        d--;
        E++;
        if (E > 5)
            return 0; /* "%.6g" switches to exponential notation */
    }
    /* reads back as v: |x - t| / 10^d under half an ulp of v (a quarter at a power of two,
     * where the ulp below is half the one above) */
    int bexp;
    double m = frexp(a, &bexp); /* a = m * 2^bexp, m in [0.5, 1) */
    double ulp = ldexp(1.0, bexp - 24);
    if (m == 0.5)
        ulp /= 2;
    if (!(2 * fabs(x - t) < ulp * p10[d]))
        return 0;
    /* digits, the point d places from the right, trailing fractional zeros dropped */
    char dig[8];
    long xi = (long)x;
    for (int i = 5; i >= 0; i--) {
        dig[i] = (char)('0' + xi % 10);
        xi /= 10;
    }
    int nd = 6;   /* significant digits kept */
    int frac = d; /* fractional digits */
    while (frac > 0 && dig[nd - 1] == '0') {
        nd--;
        frac--;
    }
    size_t n = 0;
    if (signbit(v))
        out[n++] = '-';
    if (E >= 0) {
        for (int i = 0; i <= E; i++)
            out[n++] = dig[i];
        if (frac > 0) {
            out[n++] = '.';
            for (int i = E + 1; i < nd; i++)
                out[n++] = dig[i];
        }
    } else {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -E - 1; i++)
            out[n++] = '0';
        for (int i = 0; i < nd; i++)
            out[n++] = dig[i];
    }
    out[n] = '\0';
    return (int)n;
}

int ss_feature_format(float v, char *out, size_t outlen) {
    if (v == 0 && outlen >= 3) /* "%.6g" of a zero */
        return snprintf(out, outlen, signbit(v) ? "-0" : "0");
    int n = format_fixed6(v, out, outlen);
    if (n > 0)
        return n;
    /* try short forms first: most values are small integers or short decimals */
    for (int prec = 6; prec <= 9; prec++) {
        n = snprintf(out, outlen, "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v)
            return n;
    }
    return snprintf(out, outlen, "%.9g", (double)v);
}

/* strtof's result for "[-]digits[.digits]" with at most 15 digits, without strtof: the
 * digits as an integer x (exact in a double), x / 10^d correctly rounded to a double D, then
 * D to a float. Rounding twice gives strtof's float unless D lies exactly halfway between two
 * floats (then the decimal may lie on either side): such D, and a value outside the normal
 * float range, go to strtof. Returns 1 when it set *v, 0 when the general path decides. */
static int parse_decimal(const char *s, size_t len, float *v) {
    static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    size_t i = 0;
    int neg = 0;
    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    uint64_t x = 0;
    int digits = 0, frac = 0, point = 0, int_digits = 0;
    for (; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (++digits > 15)
                return 0;
            x = x * 10 + (uint64_t)(c - '0');
            if (point)
                frac++;
            else
                int_digits++;
        } else if (c == '.' && !point) {
            point = 1;
        } else {
            return 0;
        }
    }
    if (int_digits == 0 || (point && frac == 0)) /* ".5", "5.", "-": the general path */
        return 0;
    double D = (double)x / p10[frac];
    if (D != 0 && !(D >= 1.1754943508222875e-38 && D <= 3.4028234663852886e38))
        return 0;
    uint64_t bits;
    memcpy(&bits, &D, sizeof(bits));
    if ((bits & ((1ULL << 29) - 1)) == (1ULL << 28)) /* halfway between two floats */
        return 0;
    float f = (float)D;
    *v = neg ? -f : f;
    return 1;
}

float ss_feature_parse(const char *s, size_t len) {
    char buf[64];
    if (!s || len == 0 || len >= sizeof(buf))
        return NAN;
    float v;
    if (parse_decimal(s, len, &v))
        return v;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    v = strtof(buf, &end);
    if (end == buf || *end || !isfinite(v))
        return NAN;
    return v;
}
