/* cache.h - customers' feature vectors in Redis, read and written in one pipeline per
 * batch. Layout: hash <redis.key.prefix><customer id>, field = feature name, value =
 * the feature's text form; missing features are absent; TTL refreshed on each write. */
#ifndef SS_CACHE_H
#define SS_CACHE_H

#include <stddef.h>

#include "config.h"
#include "error.h"

typedef struct ss_cache ss_cache_t; /* one per worker thread: not thread-safe */

/* Connects (and AUTH/SELECT). Returns NULL with errstr when Redis cannot be reached,
 * unless redis.on.error = degrade: then the connection is tried again on each call. */
ss_cache_t *ss_cache_new(const ss_config_t *cfg, char *const *features, size_t n_features,
                         char *errstr, size_t errlen);
void ss_cache_destroy(ss_cache_t *c);

/* Read the vectors of `n` customers into out[n * n_features] (NaN where absent).
 * Returns 0, or SS_ERR_FAIL with errstr when Redis fails (the connection is re-established on
 * the next call), or SS_ERR_NOMEM. */
int ss_cache_read(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n, float *out,
                  char *errstr, size_t errlen);

/* Write the vectors of `n` customers: HSET of their non-missing features, then EXPIRE.
 * With `changed` (n * n_features flags), only the features flagged are set (those the
 * batch's events carried: the others are what was just read), and a customer with none
 * only has its TTL refreshed; NULL sets every non-missing feature. Returns 0, or SS_ERR_FAIL
 * or SS_ERR_NOMEM with errstr, as ss_cache_read. */
int ss_cache_write(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n,
                   const float *vecs, const unsigned char *changed, char *errstr, size_t errlen);

#endif
