/* delivery_eos.c - exactly-once: the batches of delivery.commit.interval.ms are one Kafka
 * transaction holding their predictions, dead letters, changelog records and offsets (one
 * transaction per batch with 0, and always with state.mode = shared); the steps are those of
 * librdkafka's examples/transactions.c (begin, send offsets, commit, abort and rewind). A
 * transaction spans batches because its fixed cost (partitions added, offsets sent, the
 * commit's markers) is several round trips to the coordinators, as Kafka Streams' commit
 * interval does. */
#include "delivery_int.h"

#include "clock.h"
#include "error.h"
#include "failpoint.h"
#include "log.h"

static rd_kafka_t *handle(const ss_delivery_t *d) {
    return ss_producer_handle(d->own);
}

static void forget_offsets(ss_delivery_t *d) {
    if (d->txn_offsets)
        rd_kafka_topic_partition_list_destroy(d->txn_offsets);
    if (d->txn_start)
        rd_kafka_topic_partition_list_destroy(d->txn_start);
    d->txn_offsets = d->txn_start = NULL;
    d->open = 0;
}

/* The offset of the transaction's first record of every partition of batch `b` into
 * d->txn_start (kept where lower). */
static void note_start(ss_delivery_t *d, const ss_batch_t *b) {
    if (!d->txn_start)
        d->txn_start = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < b->n_msgs; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(d->txn_start, topic, m->partition);
        if (!p)
            rd_kafka_topic_partition_list_add(d->txn_start, topic, m->partition)->offset =
                m->offset;
        else if (p->offset > m->offset)
            p->offset = m->offset;
    }
}

static int begin_transaction(ss_delivery_t *d) {
    if (d->open)
        return 0;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(handle(d));
    if (!e) {
        d->open = 1;
        d->opened_at = ss_mono_ms();
        return 0;
    }
    ss_error("transaction: begin: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return SS_ERR_FAIL;
}

/* Back to where the transaction began in each of its partitions (the offsets committed by
 * the one before it), so that its records are consumed and scored again. No lookup of the
 * committed offsets, which can time out right after an abort with the coordinator away, and
 * no guess where nothing was committed yet. Returns 0, or SS_ERR_FAIL (logged) when a
 * partition could not be rewound: its records would be skipped, so nothing may be committed. */
static int rewind_consumer(rd_kafka_t *consumer, const rd_kafka_topic_partition_list_t *start) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_copy(start);
    rd_kafka_error_t *e = ss_failpoint_error("eos.rewind")
                              ? rd_kafka_error_new(RD_KAFKA_RESP_ERR__TIMED_OUT, "failpoint")
                              : rd_kafka_seek_partitions(consumer, l, 10000);
    int rc = 0;
    if (e) {
        ss_error("consumer: rewinding after an aborted transaction: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = SS_ERR_FAIL;
    }
    for (int i = 0; !rc && i < l->cnt; i++) {
        if (!l->elems[i].err)
            continue;
        ss_error("consumer: rewinding %s [%d] to %lld after an aborted transaction: %s",
                 l->elems[i].topic, l->elems[i].partition, (long long)l->elems[i].offset,
                 rd_kafka_err2str(l->elems[i].err));
        rc = SS_ERR_FAIL;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* Returns 0 (the batches will be read again) or SS_ERR_FAIL when the abort or the rewind
 * failed. */
static int abort_transaction_and_rewind(ss_delivery_t *d, rd_kafka_t *consumer) {
    rd_kafka_error_t *e = rd_kafka_abort_transaction(handle(d), -1);
    if (e) {
        ss_error("transaction: abort failed: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return SS_ERR_FAIL;
    }
    return d->txn_start ? rewind_consumer(consumer, d->txn_start) : 0;
}

/* The transaction's offsets into it, then commit. Returns 0 committed, 1 aborted and
 * rewound, SS_ERR_FAIL on a fatal error (e.g. fenced by a newer instance). */
static int commit_transaction(ss_delivery_t *d, rd_kafka_t *consumer) {
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(consumer);
    rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(handle(d), d->txn_offsets, cgmd, -1);
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    int abortable = 0; /* the failpoint's error: as one that requires an abort */
    if (!e && (abortable = ss_failpoint_error("eos.commit")))
        e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__TIMED_OUT, "failpoint eos.commit");
    while (!e) {
        e = rd_kafka_commit_transaction(handle(d), -1);
        if (!e)
            return 0;
        if (rd_kafka_error_is_retriable(e)) {
            rd_kafka_error_destroy(e);
            e = NULL;
        }
    }
    int rc = 1;
    if (!abortable && (rd_kafka_error_is_fatal(e) || !rd_kafka_error_txn_requires_abort(e))) {
        ss_error("transaction: %s: stopping", rd_kafka_error_string(e));
        rc = SS_ERR_FAIL;
    } else {
        ss_warn("transaction aborted: %s; its batches will be scored again",
                rd_kafka_error_string(e));
        if (abort_transaction_and_rewind(d, consumer) < 0)
            rc = SS_ERR_FAIL;
    }
    rd_kafka_error_destroy(e);
    return rc;
}

/* Commit the open transaction: its last records (`committing`), every output acknowledged,
 * commit; the state learns of it only then (`committed`) or forgets it (`aborted`). */
static int finish(ss_delivery_t *d, rd_kafka_t *consumer, int if_due, int *aborted) {
    if (!d->open || (if_due && ss_mono_ms() - d->opened_at < d->cfg->delivery_commit_interval_ms))
        return 0;
    int rc = d->hooks.committing ? d->hooks.committing(d->hooks.arg) : 0;
    if (rc >= 0)
        rc = ss_delivery_settle(d, d->ack);
    if (rc < 0)
        return rc;
    ss_failpoint("eos.before-commit");
    rc = commit_transaction(d, consumer);
    forget_offsets(d);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        *aborted = 1;
        if (d->hooks.aborted)
            d->hooks.aborted(d->hooks.arg);
        return 0;
    }
    ss_failpoint("eos.after-commit");
    rc = d->hooks.committed ? d->hooks.committed(d->hooks.arg) : 0;
    return rc < 0 ? rc : 0;
}

/* The batch joins the open transaction; the transaction commits once it is due. */
static int commit(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b, int *aborted) {
    d->txn_offsets = ss_delivery_offsets(b, d->txn_offsets);
    note_start(d, b);
    int rc = d->hooks.staged ? d->hooks.staged(d->hooks.arg) : 0;
    if (rc < 0)
        return rc;
    int every_batch = d->cfg->state_mode == SS_STATE_SHARED;
    return finish(d, consumer, !every_batch, aborted);
}

/* A failed batch: whatever the transaction holds is discarded. */
static void abort_batch(ss_delivery_t *d) {
    if (d->open) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(handle(d), 10000);
        if (e)
            rd_kafka_error_destroy(e);
    }
    forget_offsets(d);
    if (d->hooks.aborted)
        d->hooks.aborted(d->hooks.arg);
}

const ss_delivery_ops_t ss_delivery_exactly_once = {
    .begin = begin_transaction, .commit = commit, .finish = finish, .abort = abort_batch};
