/* delivery_int.h - what the two delivery implementations share (internal to worker/daemon). */
#ifndef SS_DELIVERY_INT_H
#define SS_DELIVERY_INT_H

#include "delivery.h"

typedef struct ss_delivery_ops {
    int (*begin)(ss_delivery_t *d);
    int (*commit)(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b, int *aborted);
    int (*finish)(ss_delivery_t *d, rd_kafka_t *consumer, int if_due, int *aborted);
    void (*abort)(ss_delivery_t *d);
} ss_delivery_ops_t;

struct ss_delivery {
    const ss_delivery_ops_t *ops;
    const ss_config_t *cfg;
    const int *stop;         /* atomic: the process's stop request */
    ss_producer_t *producer; /* where outputs go */
    ss_producer_t *own;      /* exactly-once: the thread's transactional producer */
    ss_ack_t *ack;           /* the batch begun last */
    ss_ack_t *acks[2];       /* at-least-once: alternate per batch */
    ss_delivery_hooks_t hooks;
    /* at-least-once: the next offsets of the previous batch, waiting for its
     * acknowledgements (in the other ack) */
    rd_kafka_topic_partition_list_t *unacked;
    /* exactly-once: the open transaction, since when (monotonic ms), and the next offsets of
     * every partition of the batches it holds, and their first */
    int open;
    int64_t opened_at;
    rd_kafka_topic_partition_list_t *txn_offsets, *txn_start;
};

extern const ss_delivery_ops_t ss_delivery_at_least_once;
extern const ss_delivery_ops_t ss_delivery_exactly_once;

/* The next offset of every partition in the batch into `l` (kept where higher); a new list
 * when `l` is NULL. */
rd_kafka_topic_partition_list_t *ss_delivery_offsets(const ss_batch_t *b,
                                                     rd_kafka_topic_partition_list_t *l);

/* Wait until every delivery counted in `ack` is acknowledged (once a stop is requested, for
 * shutdown.timeout.ms at most). Returns 0, SS_ERR_FAIL (logged) when one failed, or
 * SS_ERR_STOPPED (logged) when the stop's time ran out. Resets the failure count for the next
 * batch. */
int ss_delivery_settle(const ss_delivery_t *d, ss_ack_t *ack);

#endif
