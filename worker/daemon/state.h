/* state.h - a worker thread's view of the customers' known features (docs/state.md).
 *   state.mode = owned: a local store (worker/core/store.c) holds the merged vectors of the
 *     customers of the partitions the thread owns; Redis is read only for customers it does
 *     not hold, in the batch's one pipeline. Changes are written to Redis coalesced (one HSET
 *     and EXPIRE per changed customer per flush), every state.flush.interval.ms, before
 *     partitions are handed over and at shut-down. At-least-once stores a batch's offsets
 *     only once the flush covering its changes is acknowledged; exactly-once writes each
 *     batch's changes to a changelog topic inside its transaction (state_changelog.c) and
 *     Redis after the commit, with a checkpoint of the changelog applied.
 *   state.mode = shared: every batch reads its customers from Redis and writes them back
 *     before its offsets are stored (another service may write the same hashes).
 * Redis failures follow redis.on.error (block: retry until it works or the worker stops;
 * degrade: go on without cached features and give writes up, metered, trying again after a
 * backoff). A shadow keeps its own merged state and never writes Redis.
 * @locality the worker thread that owns it */
#ifndef SS_STATE_H
#define SS_STATE_H

#include <librdkafka/rdkafka.h>

#include "batch.h"
#include "config.h"
#include "metrics.h"
#include "producer.h"

typedef struct ss_state ss_state_t;

/* Connects to Redis (cfg redis.*). `stopping` is polled while a blocked call retries.
 * Returns NULL with errstr and the code in *why: SS_ERR_FAIL when Redis cannot be reached and
 * redis.on.error = block, SS_ERR_CONFIG when it refuses (ss_cache_new), SS_ERR_NOMEM. */
ss_state_t *ss_state_new(const ss_config_t *cfg, char *const *features, size_t nf,
                         ss_metrics_t *metrics, int (*stopping)(void *), void *stop_arg, int *why,
                         char *errstr, size_t errlen);
void ss_state_destroy(ss_state_t *s);

/* The consumer whose offsets the state stores once the writes covering them are acknowledged
 * (at-least-once), and, exactly-once, the thread's transactional producer that carries the
 * changelog. Returns 0 or SS_ERR_NOMEM with errstr. */
int ss_state_attach(ss_state_t *s, rd_kafka_t *consumer, ss_producer_t *txn_producer, char *errstr,
                    size_t errlen);

/* The known vectors of the batch's customers into b->state, and b->u_unknown set for those
 * that could not be read (degraded: held nowhere but in an unavailable Redis). Returns 0 when
 * read, 1 when degraded, SS_ERR_STOPPED when a stop came while blocked, SS_ERR_CONFIG when
 * Redis refused (AUTH, TLS trust, NOPERM: no retry can fix it, under either policy; told on
 * stderr as the fatal error's plain line, the worker must stop with exit 2). */
int ss_state_read(ss_state_t *s, ss_batch_t *b);

/* Exactly-once: the batch is in the open transaction; its merged vectors are what the
 * transaction's later batches read, not yet known beyond it. Returns 0 or SS_ERR_NOMEM. */
int ss_state_stage(ss_state_t *s, const ss_batch_t *b);

/* Exactly-once: the open transaction is about to commit: one changelog record per customer it
 * changed into it. Returns 0 or a negative SS_ERR_* code (logged). */
int ss_state_committing(ss_state_t *s);

/* Committed: at-least-once, the batch `b` (outputs produced); exactly-once, the transaction
 * (every batch staged since). Its merged vectors become the known ones, and a flush runs when
 * due. Returns 0, 1 when degraded
 * (not written), SS_ERR_STOPPED, SS_ERR_CONFIG (refused, as ss_state_read). */
int ss_state_commit(ss_state_t *s, const ss_batch_t *b);

/* At-least-once: the outputs of the batches up to these next offsets are acknowledged: the
 * offsets are stored once the writes covering their batches are acknowledged too (shared:
 * at once, their writes were). Returns 0 or SS_ERR_NOMEM. */
int ss_state_acked(ss_state_t *s, const rd_kafka_topic_partition_list_t *offsets);

/* The transaction was aborted: forget its customers and what it sent to the changelog. */
void ss_state_aborted(ss_state_t *s);

/* Nothing to score for a while: a flush that is due runs (and waits for its acknowledgement),
 * so that the offsets of the last batches are stored without more input. Returns 0,
 * SS_ERR_STOPPED (a stop came while blocked) or SS_ERR_CONFIG (refused, as ss_state_read). */
int ss_state_idle(ss_state_t *s);

/* Write every change and wait for Redis to acknowledge them (then store the offsets they
 * cover): before a hand-over and at shut-down. Returns as ss_state_commit. */
int ss_state_flush(ss_state_t *s);

/* Partitions handed over (after a flush) or lost (without one): their customers are
 * forgotten, with their unflushed changes and offsets. */
void ss_state_drop(ss_state_t *s, const rd_kafka_topic_partition_list_t *parts);

/* Partitions assigned: exactly-once replays their changelog into Redis from the checkpoint,
 * so that Redis holds every committed update before they are read. Returns 0, or a negative
 * SS_ERR_* code (logged): SS_ERR_CONFIG when Redis refused (as ss_state_read). */
int ss_state_assign(ss_state_t *s, const rd_kafka_topic_partition_list_t *parts);

#endif
