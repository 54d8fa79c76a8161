/* delivery_eos.c - exactly-once: each batch is one Kafka transaction holding its predictions,
 * its dead letters and its offsets; the steps are those of librdkafka's
 * examples/transactions.c (begin, send offsets, commit, abort and rewind). */
#include "delivery_int.h"

#include "error.h"
#include "failpoint.h"
#include "log.h"

static rd_kafka_t *handle(const ss_delivery_t *d) {
    return ss_producer_handle(d->own);
}

static int begin_transaction(ss_delivery_t *d) {
    rd_kafka_error_t *e = rd_kafka_begin_transaction(handle(d));
    if (!e)
        return 0;
    ss_error("transaction: begin: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return SS_ERR_FAIL;
}

/* Back to the committed offsets of the batch's partitions, so that its records are consumed
 * and scored again. */
static void rewind_consumer(rd_kafka_t *consumer, const ss_batch_t *b) {
    rd_kafka_topic_partition_list_t *l = ss_delivery_offsets(b);
    rd_kafka_resp_err_t err = rd_kafka_committed(consumer, l, 10000);
    if (!err) {
        for (int i = 0; i < l->cnt; i++)
            if (l->elems[i].offset < 0) /* nothing committed yet: from the batch's start */
                l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(consumer, l, 10000);
        if (e) {
            err = rd_kafka_error_code(e);
            rd_kafka_error_destroy(e);
        }
    }
    if (err)
        ss_error("consumer: rewinding after an aborted transaction: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Returns 0 (the batch will be read again) or SS_ERR_FAIL when even the abort failed. */
static int abort_transaction_and_rewind(ss_delivery_t *d, rd_kafka_t *consumer,
                                        const ss_batch_t *b) {
    rd_kafka_error_t *e = rd_kafka_abort_transaction(handle(d), -1);
    if (e) {
        ss_error("transaction: abort failed: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return SS_ERR_FAIL;
    }
    rewind_consumer(consumer, b);
    return 0;
}

/* The batch's offsets into its transaction, then commit. Returns 0 committed, 1 aborted and
 * rewound, SS_ERR_FAIL on a fatal error (e.g. fenced by a newer instance). */
static int commit_transaction(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b) {
    rd_kafka_topic_partition_list_t *l = ss_delivery_offsets(b);
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(consumer);
    rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(handle(d), l, cgmd, -1);
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    rd_kafka_topic_partition_list_destroy(l);
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
    if (rd_kafka_error_is_fatal(e) || !rd_kafka_error_txn_requires_abort(e)) {
        ss_error("transaction: %s: stopping", rd_kafka_error_string(e));
        rc = SS_ERR_FAIL;
    } else {
        ss_warn("transaction aborted: %s; the batch will be scored again",
                rd_kafka_error_string(e));
        if (abort_transaction_and_rewind(d, consumer, b) < 0)
            rc = SS_ERR_FAIL;
    }
    rd_kafka_error_destroy(e);
    return rc;
}

/* The state learns of the batch (and writes Redis) only once the transaction holding the
 * batch's outputs, changelog records and offsets is committed. */
static int commit(ss_delivery_t *d, rd_kafka_t *consumer, const ss_batch_t *b,
                  ss_delivery_state_fn state, void *arg, int *aborted) {
    int rc = ss_delivery_settle(d);
    if (rc < 0)
        return rc;
    ss_failpoint("eos.before-commit");
    rc = commit_transaction(d, consumer, b);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        *aborted = 1;
        return 0;
    }
    rc = state ? state(arg) : 0;
    return rc < 0 ? rc : 0;
}

/* A failed batch: whatever its transaction holds is discarded. */
static void abort_batch(ss_delivery_t *d) {
    rd_kafka_error_t *e = rd_kafka_abort_transaction(handle(d), 10000);
    if (e)
        rd_kafka_error_destroy(e);
}

const ss_delivery_ops_t ss_delivery_exactly_once = {
    .begin = begin_transaction, .commit = commit, .abort = abort_batch};
