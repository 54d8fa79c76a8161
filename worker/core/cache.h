/* cache.h - customers' feature vectors in Redis, read and written in pipelines. Layout: hash
 * <redis.key.prefix><customer id>, field = feature name, value = the feature's text form; missing
 * features are absent; TTL refreshed on each write. */
#ifndef SS_CACHE_H
#define SS_CACHE_H

#include <stddef.h>

#include "config.h"
#include "error.h"
#include "metrics.h"

typedef struct ss_cache ss_cache_t; /* one per worker thread: not thread-safe */

/* Connects: TLS when redis.tls (the client context is made here, once, for both connections
 * and every reconnection), AUTH as redis.username with redis.password, SELECT. Returns NULL
 * with errstr, and the code in *why (may be NULL): SS_ERR_CONFIG when the configuration or
 * the server refuses (an unusable TLS file, AUTH refused, the certificate not trusted or
 * without the name, NOPERM: no retry can fix it, whatever redis.on.error says); SS_ERR_FAIL
 * when Redis cannot be reached, unless redis.on.error = degrade: then the cache is returned
 * and the connection is tried again on each call; SS_ERR_NOMEM. */
ss_cache_t *ss_cache_new(const ss_config_t *cfg, char *const *features, size_t n_features, int *why,
                         char *errstr, size_t errlen);
void ss_cache_destroy(ss_cache_t *c);

/* Where error replies are counted (streamscore_redis_reply_errors_total, by the error's name)
 * and writes dropped (streamscore_redis_dropped_writes_total); NULL: nowhere. */
void ss_cache_set_metrics(ss_cache_t *c, ss_metrics_t *m);

/* Writes are queued, sent in order on a connection of their own (so that a read never waits
 * behind a flush in Redis' queue: a read sees a write only once ss_cache_sync acknowledged
 * it) and leave the queue once Redis acknowledged them; a write
 * that failed or was not answered stays queued and is sent again with the next call (HSET of
 * values and EXPIRE are idempotent). Error replies are reported with Redis' own words, which
 * begin with its name for the error, and counted by that name. Two kinds:
 *   WRONGTYPE names one key that is not a hash: a read of it fails for that customer alone
 *     (flagged in not_hash), a write to it (HSET, also inside MULTI/EXEC) is dropped, logged
 *     with the key and counted, and the call goes on with the others;
 *   NOPERM (the user lacks a permission), and NOAUTH with no password configured, are
 *     refusals no retry can fix: the call fails with SS_ERR_CONFIG ("redis: user 'NAME' lacks
 *     a permission: NOPERM ..."), and so does any call whose connection is refused (AUTH,
 *     TLS: see ss_cache_new);
 *   any other (READONLY, OOM, NOAUTH, LOADING, MASTERDOWN, ...) is the server's state: the
 *     call fails and its connection is dropped, so that the next call connects again. */

/* Read the vectors of `n` customers into out[n * n_features] (NaN where absent), on the
 * reading connection. A customer whose key is not a hash reads as absent with not_hash[i]
 * set (not_hash NULL: the call fails instead). Returns 0, or SS_ERR_FAIL with errstr
 * when Redis fails or answers an error (the connection is re-established on the next call),
 * SS_ERR_CONFIG when it refuses (see above), or SS_ERR_NOMEM. */
int ss_cache_read(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n, float *out,
                  unsigned char *not_hash, char *errstr, size_t errlen);

/* Queue the write of one customer: HSET of its non-missing features, then EXPIRE. With
 * `changed` (n_features flags) only the features flagged are set, and a customer with none
 * only has its TTL refreshed; NULL sets every non-missing feature. */
void ss_cache_queue_write(ss_cache_t *c, const char *id, size_t len, const float *row,
                          const unsigned char *changed);

/* Queue any command (MULTI, EXEC, an HSET of a checkpoint); lens NULL: C strings. */
void ss_cache_queue_command(ss_cache_t *c, size_t argc, const char *const *argv,
                            const size_t *lens);

/* Send the queued commands without waiting for their replies. 0, SS_ERR_FAIL, SS_ERR_CONFIG
 * (the connection refused) or SS_ERR_NOMEM with errstr. */
int ss_cache_send(ss_cache_t *c, char *errstr, size_t errlen);

/* Send the queued commands and read every outstanding reply: 0 once every queued write is
 * acknowledged, else as ss_cache_read. */
int ss_cache_sync(ss_cache_t *c, char *errstr, size_t errlen);

/* Commands queued or sent and not acknowledged yet. */
size_t ss_cache_pending(const ss_cache_t *c);

/* Forget every queued command, sent or not (redis.on.error = degrade gives writes up). */
void ss_cache_discard(ss_cache_t *c);

/* Queue the writes of `n` customers (vectors and flags in rows of n_features; `changed` may
 * be NULL) and sync. Returns as ss_cache_sync. */
int ss_cache_write(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n,
                   const float *vecs, const unsigned char *changed, char *errstr, size_t errlen);

/* After a sync, one field of a hash into out: 1 when present, 0 when absent, SS_ERR_FAIL or
 * SS_ERR_CONFIG (refused) with errstr. */
int ss_cache_hget(ss_cache_t *c, const char *key, const char *field, char *out, size_t outlen,
                  char *errstr, size_t errlen);

#endif
