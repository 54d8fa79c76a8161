/* replay_run.c - a replay's range read by assignment from each partition's feature start,
 * decoded, merged and scored as the worker does (scorer.c); the records of the range from the
 * progress on published, with the progress committed in the same Kafka transaction, every
 * delivery.commit.interval.ms and at the end (librdkafka's examples/transactions.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "replay_int.h"

#define TXN_TIMEOUT_MS 60000

static rd_kafka_t *producer(rp_t *r) {
    return ss_producer_handle(r->producer);
}

/* librdkafka's error `e` (destroyed) as errstr; returns SS_ERR_FAIL. */
static int txn_error(rp_t *r, rd_kafka_error_t *e, const char *step, char *err, size_t errlen) {
    snprintf(err, errlen,
             "replay: %s: %s; the open transaction is aborted, run the same command "
             "again to resume",
             step, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    if (r->in_txn) {
        rd_kafka_error_t *a = rd_kafka_abort_transaction(producer(r), TXN_TIMEOUT_MS);
        if (a)
            rd_kafka_error_destroy(a);
        r->in_txn = 0;
    }
    return SS_ERR_FAIL;
}

static int begin(rp_t *r, char *err, size_t errlen) {
    if (r->in_txn)
        return 0;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(producer(r));
    if (e)
        return txn_error(r, e, "begin transaction", err, errlen);
    r->in_txn = 1;
    r->txn_started = ss_mono_ms();
    return 0;
}

/* The progress of every partition into the open transaction, then commit it. */
static int commit(rp_t *r, char *err, size_t errlen) {
    if (!r->in_txn)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->n_parts);
    for (int i = 0; i < r->n_parts; i++) {
        char md[256];
        rp_metadata(r, &r->parts[i], md, sizeof(md));
        rd_kafka_topic_partition_t *t =
            rd_kafka_topic_partition_list_add(l, r->cfg->input_topic, r->parts[i].id);
        t->offset = r->parts[i].next;
        t->metadata = strdup(md);
        t->metadata_size = strlen(md);
    }
    rd_kafka_consumer_group_metadata_t *g = rd_kafka_consumer_group_metadata(r->consumer);
    rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(producer(r), l, g, TXN_TIMEOUT_MS);
    rd_kafka_consumer_group_metadata_destroy(g);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return txn_error(r, e, "send the progress to the transaction", err, errlen);
    if ((e = rd_kafka_commit_transaction(producer(r), TXN_TIMEOUT_MS)))
        return txn_error(r, e, "commit transaction", err, errlen);
    r->in_txn = 0;
    if (r->ack.failed) {
        snprintf(err, errlen, "replay: %ld records could not be delivered: %s", r->ack.failed,
                 rd_kafka_err2str(r->ack.first_err));
        return SS_ERR_FAIL;
    }
    return 0;
}

int rp_pin(rp_t *r, char *err, size_t errlen) {
    int rc = begin(r, err, errlen);
    return rc < 0 ? rc : commit(r, err, errlen);
}

/* ------------------------------------------------------------------ reading */

static rp_part_t *part_of(rp_t *r, int32_t id) {
    return id >= 0 && id < r->n_parts ? &r->parts[id] : NULL;
}

static void finish_part(rp_t *r, rp_part_t *p) {
    if (p->done)
        return;
    p->done = 1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, r->cfg->input_topic, p->id);
    rd_kafka_pause_partitions(r->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Partitions whose reading position passed their end (the range's last records may be a
 * transaction's markers, which are never delivered). */
static void check_positions(rp_t *r) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->n_parts);
    for (int i = 0; i < r->n_parts; i++)
        rd_kafka_topic_partition_list_add(l, r->cfg->input_topic, r->parts[i].id);
    if (rd_kafka_position(r->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR)
        for (int i = 0; i < l->cnt; i++) {
            rp_part_t *p = part_of(r, l->elems[i].partition);
            if (p && l->elems[i].offset >= 0 && l->elems[i].offset >= p->end)
                finish_part(r, p);
        }
    rd_kafka_topic_partition_list_destroy(l);
}

static int all_done(const rp_t *r) {
    for (int i = 0; i < r->n_parts; i++)
        if (!r->parts[i].done)
            return 0;
    return 1;
}

/* Up to batch.max.messages records of the range, within batch.max.wait.ms. */
static size_t collect(rp_t *r, ss_batch_t *b) {
    rd_kafka_message_t **msgs = b->msgs;
    size_t n = 0;
    ssize_t got =
        rd_kafka_consume_batch_queue(r->queue, (int)r->cfg->batch_max_wait_ms, msgs, b->max);
    for (ssize_t i = 0; i < got; i++) {
        rd_kafka_message_t *m = msgs[i];
        rp_part_t *p = part_of(r, m->partition);
        if (m->err || !p || p->done || m->offset >= p->end) {
            if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ss_warn("replay: %s", rd_kafka_message_errstr(m));
            if (p && !m->err && m->offset >= p->end)
                finish_part(r, p);
            rd_kafka_message_destroy(m);
            continue;
        }
        msgs[n++] = m;
        if (m->offset + 1 >= p->end)
            finish_part(r, p);
    }
    return n;
}

/* ------------------------------------------------------------------ a batch */

static void decode(rp_t *r, ss_batch_t *b) {
    char derr[512];
    ss_event_t ev;
    for (size_t i = 0; i < b->n_msgs; i++) {
        rd_kafka_message_t *m = b->msgs[i];
        int drc = ss_decoder_decode(r->dec, m->payload, m->len, &ev, ss_batch_event_row(b, i), derr,
                                    sizeof(derr));
        if (drc != SS_DECODE_OK) {
            ss_batch_dead_letter(b, i, "decode", ss_decode_reason(drc), derr);
            continue;
        }
        rd_kafka_timestamp_type_t tstype;
        if (ss_batch_add(b, i, &ev, rd_kafka_message_timestamp(m, &tstype)) < 0) {
            ss_batch_dead_letter(b, i, "decode", "too_large", "the batch's id arena is full");
            continue;
        }
        b->u_part[b->recs[i].slot] = m->partition;
    }
}

/* Each record of the range from the progress on: its prediction or dead letter. */
static int publish(rp_t *r, ss_batch_t *b, char *err, size_t errlen) {
    ss_prediction_t p;
    int64_t now = ss_wall_ms();
    for (size_t i = 0; i < b->n_msgs; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        rp_part_t *part = part_of(r, m->partition);
        const ss_batch_rec_t *rec = &b->recs[i];
        int rc = 0;
        if (m->offset < part->start || m->offset < part->next) {
            r->warm++;
            continue;
        }
        if (rec->dlq) {
            r->dead++;
            ss_job_count_reason(r->reasons, rec->reason);
            if (r->dlq_topic)
                rc = ss_output_dead_letter(r->writer, m, rec->stage, rec->reason,
                                           ss_batch_detail(b, i), err, errlen);
        } else {
            memset(&p, 0, sizeof(p));
            ss_scorer_fill(r->scorer, i, &p);
            p.source_topic = r->cfg->input_topic;
            p.source_partition = m->partition;
            p.source_offset = m->offset;
            p.scored_at = now;
            rc = ss_output_prediction(r->writer, &p, err, errlen);
            r->predictions++;
        }
        if (rc < 0)
            return rc;
        part->next = m->offset + 1;
    }
    return 0;
}

static int process(rp_t *r, ss_batch_t *b, char *err, size_t errlen) {
    int rc;
    r->read += (long)b->n_msgs;
    decode(r, b);
    if ((rc = ss_scorer_run(r->scorer, err, errlen)) < 0)
        return rc;
    if ((rc = begin(r, err, errlen)) < 0 || (rc = publish(r, b, err, errlen)) < 0)
        return rc;
    if (ss_mono_ms() - r->txn_started >= r->cfg->delivery_commit_interval_ms)
        return commit(r, err, errlen);
    return 0;
}

static void release(ss_batch_t *b) {
    for (size_t i = 0; i < b->n_msgs; i++)
        rd_kafka_message_destroy(b->msgs[i]);
    b->n_msgs = 0;
}

static int assign(rp_t *r, char *err, size_t errlen) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->n_parts);
    for (int i = 0; i < r->n_parts; i++) {
        rp_part_t *p = &r->parts[i];
        r->total += (long)(p->end - p->fstart);
        if (p->next >= p->end) {
            p->done = 1;
            continue;
        }
        rd_kafka_topic_partition_list_add(l, r->cfg->input_topic, p->id)->offset = p->fstart;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(r->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "replay: cannot assign the partitions of '%s': %s",
                 r->cfg->input_topic, rd_kafka_err2str(e));
        return SS_ERR_FAIL;
    }
    return 0;
}

int rp_run(rp_t *r, char *err, size_t errlen) {
    ss_batch_t *b = ss_scorer_batch(r->scorer);
    int rc = assign(r, err, errlen);
    ss_progress_init(&r->prog, "replay", r->progress);
    while (rc == 0 && !all_done(r)) {
        if (ss_job_stopping(&r->stop)) {
            snprintf(err, errlen,
                     "replay: stopped before the end of the range; run the same "
                     "command again to resume");
            rc = SS_ERR_STOPPED;
            break;
        }
        b->n_msgs = collect(r, b);
        ss_batch_reset(b);
        if (b->n_msgs == 0) {
            check_positions(r);
            continue;
        }
        rc = process(r, b, err, errlen);
        release(b);
        ss_progress_update(&r->prog, r->read, r->total, -1);
    }
    if (rc == 0)
        rc = commit(r, err, errlen);
    else if (r->in_txn) {
        rd_kafka_error_t *a = rd_kafka_abort_transaction(producer(r), TXN_TIMEOUT_MS);
        if (a)
            rd_kafka_error_destroy(a);
        r->in_txn = 0;
    }
    ss_progress_end(&r->prog, r->read, r->total);
    if (rc == 0)
        ss_log(SS_LOG_INFO,
               SS_FIELDS(SSF_INT("read", r->read), SSF_INT("predictions", r->predictions),
                         SSF_INT("dead_letters", r->dead)),
               "replay finished");
    return rc;
}
