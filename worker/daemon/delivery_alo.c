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

/* Once every output is acknowledged, the batch is committed to the state, which stores its
 * offsets as soon as the feature writes covering them are acknowledged too (state.h). */
static int commit(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b,
                  ss_delivery_state_fn state, void *arg, int *aborted) {
    (void)consumer, (void)b, (void)aborted;
    int rc = ss_delivery_settle(d);
    if (rc < 0)
        return rc;
    rc = state ? state(arg) : 0;
    return rc < 0 ? rc : 0;
}

static void abort_batch(ss_delivery_t *d) {
    (void)d;
}

const ss_delivery_ops_t ss_delivery_at_least_once = {
    .begin = begin, .commit = commit, .abort = abort_batch};
