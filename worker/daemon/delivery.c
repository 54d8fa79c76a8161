/* delivery.c - the delivery interface: picks the implementation for the key `delivery` and
 * holds what both share (the batch's offsets, waiting for acknowledgements). */
#include "delivery_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "error.h"
#include "log.h"

ss_delivery_t *ss_delivery_new(const ss_config_t *cfg, int index, ss_producer_t *shared,
                               ss_ack_t acks[2], const int *stop, char *errstr, size_t errlen) {
    ss_delivery_t *d = ss_zalloc(sizeof(*d), "delivery", errstr, errlen);
    if (!d)
        return NULL;
    d->cfg = cfg;
    d->stop = stop;
    d->acks[0] = &acks[0];
    d->acks[1] = &acks[1];
    d->ack = d->acks[0];
    if (cfg->delivery == SS_DELIVERY_EXACTLY_ONCE) {
        char tid[512];
        snprintf(tid, sizeof(tid), "%s-%d", cfg->transactional_id, index);
        if (!(d->own = ss_producer_new(cfg, tid, errstr, errlen))) {
            free(d);
            return NULL;
        }
        d->ops = &ss_delivery_exactly_once;
        d->producer = d->own;
    } else {
        d->ops = &ss_delivery_at_least_once;
        d->producer = shared;
    }
    return d;
}

void ss_delivery_destroy(ss_delivery_t *d) {
    if (!d)
        return;
    ss_producer_destroy(d->own, d->cfg->shutdown_timeout_ms);
    if (d->txn_offsets)
        rd_kafka_topic_partition_list_destroy(d->txn_offsets);
    if (d->txn_start)
        rd_kafka_topic_partition_list_destroy(d->txn_start);
    if (d->unacked)
        rd_kafka_topic_partition_list_destroy(d->unacked);
    free(d);
}

void ss_delivery_set_hooks(ss_delivery_t *d, const ss_delivery_hooks_t *hooks) {
    d->hooks = *hooks;
}

ss_ack_t *ss_delivery_ack(const ss_delivery_t *d) {
    return d->ack;
}

ss_producer_t *ss_delivery_producer(const ss_delivery_t *d) {
    return d->producer;
}

int ss_delivery_begin(ss_delivery_t *d) {
    return d->ops->begin(d);
}

int ss_delivery_commit(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b, int *aborted) {
    *aborted = 0;
    return d->ops->commit(d, consumer, b, aborted);
}

int ss_delivery_finish(ss_delivery_t *d, rd_kafka_t *consumer, int if_due, int *aborted) {
    *aborted = 0;
    return d->ops->finish ? d->ops->finish(d, consumer, if_due, aborted) : 0;
}

void ss_delivery_abort(ss_delivery_t *d) {
    for (int i = 0; i < 2; i++) {
        while (ss_ack_wait(d->acks[i], 1000) > 0)
            ;
        d->acks[i]->failed = 0;
        d->acks[i]->first_err = 0;
    }
    d->ops->abort(d);
}

rd_kafka_topic_partition_list_t *ss_delivery_offsets(const ss_batch_t *b,
                                                     rd_kafka_topic_partition_list_t *l) {
    if (!l)
        l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < b->n_msgs; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(l, topic, m->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(l, topic, m->partition);
        if (p->offset < m->offset + 1)
            p->offset = m->offset + 1;
    }
    return l;
}

int ss_delivery_settle(const ss_delivery_t *d, ss_ack_t *ack) {
    int64_t deadline = 0;
    long left;
    while ((left = ss_ack_wait(ack, 100)) > 0) {
        if (!d->stop || !__atomic_load_n(d->stop, __ATOMIC_ACQUIRE))
            continue;
        if (!deadline) {
            deadline = ss_mono_ms() + d->cfg->shutdown_timeout_ms;
        } else if (ss_mono_ms() >= deadline) {
            ss_warn("producer: %ld record(s) of a batch still unacknowledged %ld ms after the "
                    "stop (shutdown.timeout.ms); offsets not committed, they are read again",
                    left, d->cfg->shutdown_timeout_ms);
            return SS_ERR_STOPPED;
        }
    }
    long failed = ack->failed;
    rd_kafka_resp_err_t first = ack->first_err;
    ack->failed = 0;
    ack->first_err = 0;
    if (failed) {
        ss_error("producer: %ld record(s) of a batch not delivered: %s; offsets not committed",
                 failed, rd_kafka_err2str(first));
        return SS_ERR_FAIL;
    }
    return 0;
}
