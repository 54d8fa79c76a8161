/* delivery.h - how a batch's outputs and its offsets become safe together: one interface,
 * two implementations chosen by the key `delivery`.
 *   at-least-once (delivery_alo.c): outputs through the shared idempotent producer; once
 *     every one is acknowledged and the feature writes are too (state.h), the batch's offsets
 *     are stored (and committed by the consumer). A crash in between re-reads the batch:
 *     duplicates, never a loss.
 *   exactly-once (delivery_eos.c): a transactional producer per thread; the batch's outputs
 *     and offsets are one Kafka transaction (begin, produce, send offsets, commit); an abort
 *     rewinds the consumer so that the batch is read and scored again.
 * The named steps follow librdkafka's examples/transactions.c. */
#ifndef SS_DELIVERY_H
#define SS_DELIVERY_H

#include <librdkafka/rdkafka.h>

#include "batch.h"
#include "config.h"
#include "producer.h"

typedef struct ss_delivery ss_delivery_t;

/* The batch committed to the state, run by commit once the batch is safe: after its outputs
 * are acknowledged (at-least-once: the state then stores the offsets once the feature writes
 * covering them are acknowledged too), after the transaction commits (exactly-once).
 * Returns 0, 1 (degraded: not written) or a negative SS_ERR_* code. */
typedef int (*ss_delivery_state_fn)(void *arg);

/* A delivery for worker thread `index`: at-least-once sends through `shared` (the process's
 * producer, not owned); exactly-once creates the thread's transactional producer
 * (transactional.id-<index>), fencing older instances. Deliveries are counted in `ack` (the
 * caller's). Returns NULL with errstr. */
ss_delivery_t *ss_delivery_new(const ss_config_t *cfg, int index, ss_producer_t *shared,
                               ss_ack_t *ack, char *errstr, size_t errlen);
/* Flushes and destroys a producer of its own. Accepts NULL. */
void ss_delivery_destroy(ss_delivery_t *d);

/* Where this thread's outputs are produced. */
ss_producer_t *ss_delivery_producer(const ss_delivery_t *d);

/* Before the batch's first output. Returns 0 or SS_ERR_FAIL (logged). */
int ss_delivery_begin(ss_delivery_t *d);

/* After the batch's last output: make every output safe, run `state` (may be NULL) where the
 * mode allows, and commit the batch's offsets. Returns 0 (*aborted = 1 when an exactly-once
 * transaction was aborted and the consumer rewound: nothing of the batch counts), or a
 * negative SS_ERR_* code (logged): the batch's offsets are not committed. */
int ss_delivery_commit(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b,
                       ss_delivery_state_fn state, void *arg, int *aborted);

/* A batch failed: wait out its deliveries in flight (they point at the ack) and abort an open
 * transaction. */
void ss_delivery_abort(ss_delivery_t *d);

#endif
