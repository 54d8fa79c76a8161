/* delivery_alo.c - at-least-once: a batch's offsets are stored only once every output of it is
 * acknowledged; the consumer commits stored offsets (periodically and at every hand-over). */
#include "delivery_int.h"

#include "error.h"
#include "log.h"

static int begin(ss_delivery_t *d) {
    (void)d;
    return 0;
}

static void store_offsets(rd_kafka_t *consumer, const ss_batch_t *b) {
    rd_kafka_topic_partition_list_t *l = ss_delivery_offsets(b);
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(consumer, l);
    if (err) /* a partition revoked meanwhile: its new owner re-reads it (duplicates, no loss) */
        ss_warn("consumer: storing offsets: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Features are written while the deliveries are in flight, and both are safe before the
 * offsets that cover them are stored. */
static int commit(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b,
                  ss_delivery_state_fn state, void *arg, int *aborted) {
    (void)aborted;
    int rc = state ? state(arg) : 0;
    if (rc < 0)
        return rc;
    rc = ss_delivery_settle(d);
    if (rc < 0)
        return rc;
    store_offsets(consumer, b);
    return 0;
}

static void abort_batch(ss_delivery_t *d) {
    (void)d;
}

const ss_delivery_ops_t ss_delivery_at_least_once = {
    .begin = begin, .commit = commit, .abort = abort_batch};
