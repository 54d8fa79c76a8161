/* features.h - feature vectors: the merge rule, the hash that identifies the vector
 * actually scored, and the text form stored in Redis. */
#ifndef SS_FEATURES_H
#define SS_FEATURES_H

#include <stddef.h>
#include <stdint.h>

/* Apply an event to a customer's state: every non-missing (non-NaN) event value
 * overrides; missing ones keep the state's value. */
void ss_features_merge(float *state, const float *event, size_t n);

/* FNV-1a 64 over the little-endian float32 bytes, every NaN as 0x7fc00000. */
uint64_t ss_features_hash(const float *v, size_t n);

/* 16 lower-case hex digits and a NUL into out[17]. */
void ss_features_hash_hex(uint64_t h, char out[17]);

/* Text form of one value (shortest that reads back as the same float32); returns length. */
int ss_feature_format(float v, char *out, size_t outlen);

/* Parse the text form; NaN when `s` is not a finite number. */
float ss_feature_parse(const char *s, size_t len);

#endif
