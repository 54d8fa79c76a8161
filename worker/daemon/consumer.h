/* consumer.h - one Kafka consumer per worker thread, all in one group, with offsets
 * stored by the pipeline only once a record's outputs are safe. */
#ifndef SS_CONSUMER_H
#define SS_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"
#include "metrics.h"

/* What a consumer's callbacks need; owned by the worker thread, outlives the consumer. */
typedef struct ss_consumer_ctx {
    int index;             /* the worker thread */
    int commits_itself;    /* at-least-once: commit stored offsets before a hand-over */
    int joined;            /* atomic: 1 once the group gave it an assignment (maybe empty) */
    ss_metrics_t *metrics; /* rebalances and lag; NULL for none */
    /* the owner's hooks, run inside the poll that serves a rebalance (NULL: none):
     * assigning before partitions are fetched (non-zero: they are not taken), handing_over
     * before the revoked partitions' offsets are committed (not for partitions lost), and
     * revoked once they are gone */
    int (*assigning)(void *arg, const rd_kafka_topic_partition_list_t *parts);
    void (*handing_over)(void *arg);
    void (*revoked)(void *arg, const rd_kafka_topic_partition_list_t *parts);
    void *hook_arg;
} ss_consumer_ctx_t;

/* Creates a consumer subscribed to input.topic; ctx (filled in here) must outlive it.
 * With metrics and metrics.listen set, librdkafka statistics feed the lag gauges.
 * Errors name the key. */
rd_kafka_t *ss_consumer_new(const ss_config_t *cfg, int thread_index, ss_consumer_ctx_t *ctx,
                            ss_metrics_t *metrics, char *errstr, size_t errlen);

/* Commit what was stored, leave the group, destroy. Accepts NULL. */
void ss_consumer_destroy(rd_kafka_t *rk);

#endif
