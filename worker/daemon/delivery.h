/* delivery.h - how a batch's outputs and its offsets become safe together: one interface,
 * two implementations chosen by the key `delivery`.
 *   at-least-once (delivery_alo.c): outputs through the shared idempotent producer; once
 *     every one is acknowledged and the feature writes are too (state.h), the batch's offsets
 *     are stored (and committed by the consumer). The acknowledgements of a batch are waited
 *     for after the next batch, not before it: the thread does not idle for a round trip per
 *     batch. A crash in between re-reads the batch: duplicates, never a loss.
 *   exactly-once (delivery_eos.c): a transactional producer per thread; the outputs and
 *     offsets of the batches of delivery.commit.interval.ms are one Kafka transaction (begin,
 *     produce, send offsets, commit); an abort rewinds the consumer so that its batches are
 *     read and scored again.
 * The named steps follow librdkafka's examples/transactions.c. */
#ifndef SS_DELIVERY_H
#define SS_DELIVERY_H

#include <librdkafka/rdkafka.h>

#include "batch.h"
#include "config.h"
#include "producer.h"

typedef struct ss_delivery ss_delivery_t;

/* What the state learns from the delivery, in the worker thread (any may be NULL):
 *   staged     exactly-once: the batch's outputs are in the open transaction
 *   committing exactly-once: the transaction is about to commit (last records into it)
 *   committed  at-least-once: the batch's outputs are produced (the state may hold its merged
 *              vectors: a delivery that fails stops the worker); exactly-once: the
 *              transaction committed (every batch staged since the last commit)
 *   acked      at-least-once: the outputs of the batches up to these next offsets are
 *              acknowledged (the offsets may be stored once the state's writes are too)
 *   aborted    exactly-once: the transaction was aborted and the consumer rewound
 * staged, committing, committed and acked return 0, 1 (degraded) or a negative SS_ERR_*
 * code. */
typedef struct ss_delivery_hooks {
    int (*staged)(void *arg);
    int (*committing)(void *arg);
    int (*committed)(void *arg);
    int (*acked)(void *arg, const rd_kafka_topic_partition_list_t *offsets);
    void (*aborted)(void *arg);
    void *arg;
} ss_delivery_hooks_t;

/* A delivery for worker thread `index`: at-least-once sends through `shared` (the process's
 * producer, not owned); exactly-once creates the thread's transactional producer
 * (transactional.id-<index>), fencing older instances. Deliveries are counted in `acks`
 * (two, the caller's: a batch's, and the previous batch's still settling). Once `*stop` is
 * set (atomic), acknowledgements are waited for shutdown.timeout.ms at most. Returns NULL
 * with errstr. */
ss_delivery_t *ss_delivery_new(const ss_config_t *cfg, int index, ss_producer_t *shared,
                               ss_ack_t acks[2], const int *stop, char *errstr, size_t errlen);

/* Where the batch begun last counts its deliveries. */
ss_ack_t *ss_delivery_ack(const ss_delivery_t *d);
/* Flushes and destroys a producer of its own. Accepts NULL. */
void ss_delivery_destroy(ss_delivery_t *d);

void ss_delivery_set_hooks(ss_delivery_t *d, const ss_delivery_hooks_t *hooks);

/* Where this thread's outputs are produced. */
ss_producer_t *ss_delivery_producer(const ss_delivery_t *d);

/* Before the batch's first output (exactly-once: opens a transaction unless one is open).
 * Returns 0 or SS_ERR_FAIL (logged). */
int ss_delivery_begin(ss_delivery_t *d);

/* After the batch's last output. At-least-once: `committed`, then wait for the previous
 * batch's acknowledgements and `acked` its offsets. Exactly-once: `staged`, and once the
 * transaction has been open delivery.commit.interval.ms, commit it (`committing`, the offsets of
 * every batch staged, commit, `committed`). Returns 0 (*aborted = 1 when the transaction was
 * aborted and the consumer rewound: nothing of its batches counts), or a negative SS_ERR_* code
 * (logged): the batch's offsets are not committed. */
int ss_delivery_commit(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b, int *aborted);

/* Everything produced made safe now (before a hand-over, when idle, at shut-down):
 * at-least-once waits for the last batch's acknowledgements (`acked`); exactly-once commits
 * the open transaction, if any (when idle: with `if_due`, once the interval has passed).
 * Returns as ss_delivery_commit. */
int ss_delivery_finish(ss_delivery_t *d, rd_kafka_t *consumer, int if_due, int *aborted);

/* A batch failed: wait out its deliveries in flight (they point at the ack) and abort an open
 * transaction. */
void ss_delivery_abort(ss_delivery_t *d);

#endif
