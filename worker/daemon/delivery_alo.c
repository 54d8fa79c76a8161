/* delivery_alo.c - at-least-once: a batch's offsets are stored only once every output of it is
 * acknowledged, and every feature write it caused (by the state, state.h); the consumer commits
 * stored offsets (periodically and at every hand-over). */
#include "delivery_int.h"

#include "error.h"
#include "log.h"

static int begin(ss_delivery_t *d) {
    (void)d;
    return 0;
}

/* The previous batch's acknowledgements (in the other ack), then its offsets to the state. */
static int settle_previous(ss_delivery_t *d) {
    if (!d->unacked)
        return 0;
    int rc = ss_delivery_settle(d, d->ack == d->acks[0] ? d->acks[1] : d->acks[0]);
    if (rc == 0 && d->hooks.acked)
        rc = d->hooks.acked(d->hooks.arg, d->unacked);
    rd_kafka_topic_partition_list_destroy(d->unacked);
    d->unacked = NULL;
    return rc < 0 ? rc : 0;
}

/* The batch is produced: the state holds its vectors now (a failed delivery stops the
 * worker); its offsets wait for its acknowledgements, which are waited for after the next
 * batch, while the producer's linger and round trip overlap with that batch's work. */
static int commit(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b, int *aborted) {
    (void)consumer, (void)aborted;
    int rc = d->hooks.committed ? d->hooks.committed(d->hooks.arg) : 0;
    if (rc < 0 || (rc = settle_previous(d)) < 0)
        return rc;
    d->unacked = ss_delivery_offsets(b, NULL);
    d->ack = d->ack == d->acks[0] ? d->acks[1] : d->acks[0];
    return 0;
}

static int finish(ss_delivery_t *d, rd_kafka_t *consumer, int if_due, int *aborted) {
    (void)consumer, (void)if_due, (void)aborted;
    return settle_previous(d);
}

static void abort_batch(ss_delivery_t *d) {
    if (d->unacked) /* never stored: read again by whoever owns the partitions next */
        rd_kafka_topic_partition_list_destroy(d->unacked);
    d->unacked = NULL;
}

const ss_delivery_ops_t ss_delivery_at_least_once = {
    .begin = begin, .commit = commit, .finish = finish, .abort = abort_batch};
