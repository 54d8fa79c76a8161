/* hash.h - the one non-cryptographic hash of streamscore: 64-bit FNV-1a. The feature hash of
 * a prediction, the batch's customer index and compare's join all use it. */
#ifndef SS_HASH_H
#define SS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SS_FNV1A_INIT 0xcbf29ce484222325ULL

/* Continue the FNV-1a hash `h` (SS_FNV1A_INIT to start) over `n` bytes. */
static inline uint64_t ss_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* MurmurHash3's 64-bit finalizer: every bit of `k` reaches every bit of the result. FNV-1a's
 * low bits depend on the input's low bits only, so ids that differ in their last characters
 * can share them: an index taken from the low bits of a hash goes through this first. */
static inline uint64_t ss_fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

#endif
