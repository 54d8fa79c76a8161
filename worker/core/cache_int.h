/* cache_int.h - the reply reader of cache.c, visible to its unit test and fuzz target
 * (tests/unit/test_cache.c, tests/fuzz/fuzz_resp.c), not to the rest of the worker. */
#ifndef SS_CACHE_INT_H
#define SS_CACHE_INT_H

#include <hiredis/hiredis.h>

#include "cache.h"

/* The reply object functions the cache reads every reply with (privdata: the ss_cache_t).
 * Each object they return is a shared redisReply that is never written nor freed, so that
 * hiredis (0.14 or 1.x, which reads it as a redisReply for push replies) may look at it. */
extern redisReplyObjectFunctions ss_cache_reply_functions;

#endif
