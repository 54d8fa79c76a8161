/* cache_int.h - the reply reader of cache.c, visible to its unit test and fuzz target
 * (tests/unit/test_cache.c, tests/fuzz/fuzz_resp.c), not to the rest of the worker. */
#ifndef SS_CACHE_INT_H
#define SS_CACHE_INT_H

#include <hiredis/hiredis.h>

#include "cache.h"

/* The reply object functions the cache reads every reply with (privdata: the ss_cache_t).
 * Each object they return is a shared redisReply that is never written nor freed, so that
 * hiredis (which reads it as a redisReply for push replies) may look at it. */
extern redisReplyObjectFunctions ss_cache_reply_functions;

/* Read the replies of `n_writes` queued writes, then of `n_reads` HMGETs of ids/lens (rows into
 * out, keys that are not hashes flagged in not_hash), from `rd`, fed by the caller, exactly
 * as a round trip reads them from Redis (rd gets the cache's functions and privdata). 0 when
 * every reply was read and none failed the call; SS_ERR_FAIL with errstr when one did, when
 * the bytes are not RESP or when they end before the last reply; SS_ERR_CONFIG for a refusal
 * (NOPERM; NOAUTH with no password configured). */
int ss_cache_read_replies(ss_cache_t *c, redisReader *rd, size_t n_writes, size_t n_reads,
                          const char *const *ids, const size_t *lens, float *out,
                          unsigned char *not_hash, char *errstr, size_t errlen);

#endif
