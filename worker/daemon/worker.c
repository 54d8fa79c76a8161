/* worker.c - a worker thread's loop: collect a batch, then decode -> merge with the known
 * features -> score -> produce -> commit, each step a function of its own. The thread owns its
 * consumer, batch, decoder, predictor, state and output writer (allocated once, reused for
 * every batch); it shares the model slot, the codec, the producer and the metrics.
 * A batch's offsets are committed only once every record of it is acknowledged: its
 * prediction (or dead letter) delivered and its features written (delivery.h). */
#include "worker.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "canary.h"
#include "clock.h"
#include "consumer.h"
#include "delivery.h"
#include "drift.h"
#include "error.h"
#include "explainer.h"
#include "failpoint.h"
#include "features.h"
#include "labels.h"
#include "log.h"
#include "state.h"

struct ss_worker {
    int index;
    int done; /* atomic: its thread has finished */
    int rc;
    pthread_t tid;
    ss_runtime_t *rt;
    ss_consumer_ctx_t cctx;
    rd_kafka_t *consumer;
    rd_kafka_queue_t *queue; /* the consumer's queue (collect takes what is queued at once) */
    int64_t collected_at;    /* monotonic ms when the previous batch's collection ended */
    ss_batch_t *batch;
    ss_decoder_t *dec;
    ss_predictor_t *pred;
    ss_state_t *state;
    ss_ack_t acks[2]; /* a batch's deliveries, and the previous batch's (delivery.h) */
    ss_delivery_t *delivery;
    ss_output_writer_t *out;
    long predicted; /* predictions of the batch in hand (its dead letters not counted) */
    long route_predicted[SS_ROUTES], route_errors[SS_ROUTES]; /* and per route */
    /* a canary in the batch: its rows gathered, scored by the candidate; every row's live
     * score kept (for the shift gate and the live model's drift) */
    size_t n_canary;
    int *canary_row;    /* per canary row: its row in the batch */
    float *canary_rows; /* the canary rows, gathered */
    double *canary_scores, *live_scores;
    int64_t candidate_ns; /* the candidate's scoring time in the batch */
    /* per row: every output (n_out a row, multi-output models), the predicted class and the
     * decision (-1: none); the canary's, gathered */
    size_t n_out;
    double *outputs, *canary_outputs;
    int *classes, *canary_classes;
    signed char *decisions;
    ss_explainer_t *explainer; /* NULL: explain.top.k = 0 */
    ss_recent_t *recent;       /* the batch's predictions, for the labels (rollout.labels.topic) */
    ss_gate_tally_t tally[SS_ROUTES];
};

static void count(long *c, long n) {
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

static int stopping(void *arg) {
    return ss_runtime_stopping(((ss_worker_t *)arg)->rt);
}

/* ------------------------------------------------------------------ collecting a batch */

/* Add m to the batch, or count and drop it when it is an error (a partition's end is not). */
static void take(ss_worker_t *w, rd_kafka_message_t *m) {
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            count(&w->rt->stats->kafka_errors, 1);
            ss_warn("consumer: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
        return;
    }
    w->batch->msgs[w->batch->n_msgs++] = m;
}

/* Poll until the batch is full or batch.max.wait.ms after its first record arrived, then take
 * whatever else is already queued (up to the batch's size) without waiting. A record that
 * was queued while the previous batch was being processed arrived no earlier than that
 * batch's collection ended: its wait is counted from then, so that under load batches are
 * what accumulated meanwhile rather than waiting the full time again. */
static size_t collect(ss_worker_t *w) {
    ss_batch_t *b = w->batch;
    int64_t deadline = 0;
    int blocked = 0; /* polled with a timeout while the batch was empty */
    b->n_msgs = 0;
    while (b->n_msgs < b->max && !stopping(w)) {
        int timeout = blocked ? 100 : 0;
        if (b->n_msgs) {
            int64_t left = deadline - ss_mono_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, timeout);
        if (!m) {
            if ((b->n_msgs && timeout == 0) || (!b->n_msgs && blocked))
                break; /* a batch, or 100 ms without input: the loop has other work */
            blocked |= !b->n_msgs;
            continue;
        }
        size_t before = b->n_msgs;
        take(w, m);
        if (b->n_msgs == before)
            continue;
        if (before == 0)
            deadline = (blocked || !w->collected_at ? ss_mono_ms() : w->collected_at) +
                       w->rt->cfg->batch_max_wait_ms;
        /* what else is queued already, in one call rather than a poll per record */
        rd_kafka_message_t **more = b->msgs + b->n_msgs;
        ssize_t n = rd_kafka_consume_batch_queue(w->queue, 0, more, b->max - b->n_msgs);
        for (ssize_t i = 0; i < n; i++)
            take(w, more[i]);
    }
    w->collected_at = ss_mono_ms();
    return b->n_msgs;
}

/* Keep only records of partitions still assigned. A partition revoked while the batch was
 * collected belongs to another member now, which reads it from the offsets committed at the
 * hand-over: scoring those records here too would only duplicate them (and, exactly-once,
 * committing their offsets in our transaction would let both members process them). */
static void drop_revoked(ss_worker_t *w) {
    ss_batch_t *b = w->batch;
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(w->consumer, &a) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < b->n_msgs; i++) {
        rd_kafka_message_t *m = b->msgs[i];
        if (rd_kafka_topic_partition_list_find(a, rd_kafka_topic_name(m->rkt), m->partition))
            b->msgs[kept++] = m;
        else
            rd_kafka_message_destroy(m);
    }
    b->n_msgs = kept;
    rd_kafka_topic_partition_list_destroy(a);
}

static void release(ss_worker_t *w) {
    ss_batch_t *b = w->batch;
    for (size_t i = 0; i < b->n_msgs; i++)
        rd_kafka_message_destroy(b->msgs[i]);
    b->n_msgs = 0;
}

/* ------------------------------------------------------------------ the steps of a batch */

/* Decode every record into the batch: a row of its own features, or a dead letter. */
static int decode(ss_worker_t *w) {
    ss_batch_t *b = w->batch;
    char err[512];
    ss_event_t ev;
    for (size_t i = 0; i < b->n_msgs; i++) {
        rd_kafka_message_t *m = b->msgs[i];
        int drc = ss_decoder_decode(w->dec, m->payload, m->len, &ev, ss_batch_event_row(b, i), err,
                                    sizeof(err));
        if (drc != SS_DECODE_OK) {
            ss_batch_dead_letter(b, i, "decode", ss_decode_reason(drc), err);
            continue;
        }
        rd_kafka_timestamp_type_t tstype;
        if (ss_batch_add(b, i, &ev, rd_kafka_message_timestamp(m, &tstype)) < 0) {
            ss_error("worker: out of memory in the batch arena");
            return SS_ERR_NOMEM;
        }
        b->u_part[b->recs[i].slot] = m->partition;
    }
    return 0;
}

/* The route of every customer of the batch under `plan`. */
static void route(ss_worker_t *w, const ss_plan_t *plan) {
    ss_batch_t *b = w->batch;
    for (size_t s = 0; s < b->n_u; s++)
        b->u_route[s] = (unsigned char)ss_plan_route(plan, b->u_ids[s], b->u_lens[s]);
}

/* The canary's rows scored by the candidate in one call, their scores put in place of the
 * live model's (kept in live_scores). */
static int score_canary(ss_worker_t *w, const ss_plan_t *plan, char *err, size_t errlen) {
    ss_batch_t *b = w->batch;
    size_t nf = b->nf, k = 0;
    memcpy(w->live_scores, b->scores, b->n_rows * sizeof(double));
    for (size_t i = 0; i < b->n_msgs; i++) {
        const ss_batch_rec_t *r = &b->recs[i];
        if (r->dlq || b->u_route[r->slot] != SS_ROUTE_CANARY)
            continue;
        w->canary_row[k] = r->row;
        memcpy(w->canary_rows + k * nf, b->rows + (size_t)r->row * nf, nf * sizeof(float));
        k++;
    }
    w->n_canary = k;
    if (k == 0)
        return 0;
    int64_t t0 = ss_mono_ns();
    ss_failpoint_delay("rollout.candidate.predict");
    if (ss_model_predict_outputs(plan->candidate, w->pred, w->canary_rows, k, w->canary_scores,
                                 w->n_out > 1 ? w->canary_outputs : NULL, w->canary_classes, err,
                                 errlen) < 0)
        return SS_ERR_FAIL;
    w->candidate_ns += ss_mono_ns() - t0;
    for (size_t j = 0; j < k; j++) {
        size_t row = (size_t)w->canary_row[j];
        b->scores[row] = w->canary_scores[j];
        w->classes[row] = w->canary_classes[j];
        if (w->n_out > 1)
            memcpy(w->outputs + row * w->n_out, w->canary_outputs + j * w->n_out,
                   w->n_out * sizeof(double));
    }
    return 0;
}

/* Score the batch's rows in one call (and the canary's rows in a second, by the candidate); a
 * non-finite score makes its record a dead letter, and then the batch is merged again without
 * it (its features reach neither its customer's later events nor the state) and scored again.
 * Only a customer's first non-finite record of a pass is dead-lettered: the later ones may
 * have been merged with it, and are scored again. */
static int score(ss_worker_t *w, const ss_plan_t *plan) {
    ss_batch_t *b = w->batch;
    char err[512];
    ss_hist_observe(&w->rt->stats->batch_size, (double)b->n_msgs);
    w->candidate_ns = 0;
    for (;;) {
        int64_t t0 = ss_mono_ns();
        w->n_canary = 0;
        if (ss_model_predict_outputs(plan->live, w->pred, b->rows, b->n_rows, b->scores,
                                     w->n_out > 1 ? w->outputs : NULL, w->classes, err,
                                     sizeof(err)) < 0 ||
            (plan->buckets && score_canary(w, plan, err, sizeof(err)) < 0)) {
            ss_error("%s", err);
            return SS_ERR_FAIL;
        }
        ss_hist_observe(&w->rt->stats->predict_seconds, (double)(ss_mono_ns() - t0) / 1e9);
        if (ss_batch_dead_letter_non_finite(b) == 0)
            return 0;
        ss_batch_remerge(b);
        if (b->n_rows == 0)
            return 0;
    }
}

/* Each row's decision, by the threshold of the model of its route (-1: none). */
static void decide(ss_worker_t *w, const ss_plan_t *plan) {
    ss_batch_t *b = w->batch;
    for (size_t i = 0; i < b->n_msgs; i++) {
        const ss_batch_rec_t *r = &b->recs[i];
        if (r->dlq)
            continue;
        double t = b->u_route[r->slot] == SS_ROUTE_CANARY ? plan->candidate_threshold
                                                          : plan->live_threshold;
        w->decisions[r->row] = isnan(t) ? -1 : b->scores[r->row] >= t;
    }
}

static void fill_prediction(const ss_worker_t *w, size_t i, ss_prediction_t *p) {
    const ss_batch_t *b = w->batch;
    const rd_kafka_message_t *m = b->msgs[i];
    const ss_batch_rec_t *r = &b->recs[i];
    p->event_id = b->arena + r->evid_off;
    p->event_id_len = r->evid_len;
    p->customer_id = b->arena + r->cust_off;
    p->customer_id_len = r->cust_len;
    p->score = b->scores[r->row];
    p->decision = w->decisions[r->row];
    p->predicted_class = w->classes[r->row];
    p->outputs = w->n_out > 1 ? w->outputs + (size_t)r->row * w->n_out : NULL;
    p->n_outputs = w->n_out > 1 ? w->n_out : 0;
    ss_explainer_fill(w->explainer, b, i, p);
    p->source_topic = rd_kafka_topic_name(m->rkt);
    p->source_partition = m->partition;
    p->source_offset = m->offset;
    p->event_time = r->event_time;
    ss_features_hash_hex(ss_features_hash(b->rows + (size_t)r->row * b->nf, b->nf),
                         p->feature_hash);
}

/* A prediction; its explanation with it, or to explain.topic as well. */
static int emit_one(ss_worker_t *w, ss_prediction_t *p, char *err, size_t errlen) {
    if (!p->contributions || !ss_output_splits_explanations(w->rt->output))
        return ss_output_prediction(w->out, p, err, errlen);
    if (ss_output_explanation(w->out, p, err, errlen) < 0)
        return SS_ERR_FAIL;
    p->contributions = NULL;
    return ss_output_prediction(w->out, p, err, errlen);
}

/* One prediction or dead letter per record; a prediction names the model of its route. */
static int emit(ss_worker_t *w, const ss_plan_t *plan) {
    ss_batch_t *b = w->batch;
    char err[512];
    ss_prediction_t p[SS_ROUTES] = {{.threshold = plan->live_threshold,
                                     .model_name = plan->live->name,
                                     .model_version = plan->live->version,
                                     .route = "live",
                                     .scored_at = ss_wall_ms()}};
    if (plan->candidate) {
        p[SS_ROUTE_CANARY] = p[SS_ROUTE_LIVE];
        p[SS_ROUTE_CANARY].threshold = plan->candidate_threshold;
        p[SS_ROUTE_CANARY].model_name = plan->candidate->name;
        p[SS_ROUTE_CANARY].model_version = plan->candidate->version;
        p[SS_ROUTE_CANARY].route = "canary";
    }
    long degraded = 0;
    w->predicted = 0;
    memset(w->route_predicted, 0, sizeof(w->route_predicted));
    memset(w->route_errors, 0, sizeof(w->route_errors));
    for (size_t i = 0; i < b->n_msgs; i++) {
        const ss_batch_rec_t *r = &b->recs[i];
        int rc;
        w->predicted += !r->dlq;
        if (r->slot >= 0 && !b->u_dead[r->slot]) /* scored: by its route's model */
            (r->dlq ? w->route_errors : w->route_predicted)[b->u_route[r->slot]]++;
        if (r->dlq) {
            rc = ss_output_dead_letter(w->out, b->msgs[i], r->stage, r->reason,
                                       ss_batch_detail(b, i), err, sizeof(err));
        } else {
            ss_prediction_t *pr = &p[b->u_route[r->slot]];
            fill_prediction(w, i, pr);
            pr->degraded = b->u_unknown[r->slot];
            degraded += pr->degraded;
            rc = emit_one(w, pr, err, sizeof(err));
        }
        if (rc < 0) {
            ss_error("%s", err);
            return rc;
        }
    }
    count(&w->rt->stats->scored, (long)b->n_rows);
    count(&w->rt->stats->degraded, degraded);
    count(&w->rt->stats->explained, ss_explainer_count(w->explainer));
    return 0;
}

/* The decisions, then the explanations of the records chosen (explain.*). */
static int explain(ss_worker_t *w, const ss_plan_t *plan) {
    char err[768];
    decide(w, plan);
    if (!w->explainer || w->batch->n_rows == 0)
        return 0;
    int64_t t0 = ss_mono_ns();
    if (ss_explainer_run(w->explainer, w->batch, plan, w->decisions, w->classes, err, sizeof(err)) <
        0) {
        ss_error("%s", err);
        return SS_ERR_FAIL;
    }
    ss_hist_observe(&w->rt->stats->explain_seconds, (double)(ss_mono_ns() - t0) / 1e9);
    return 0;
}

/* ---- what the state learns from the delivery (delivery.h, state.h) */

static int on_staged(void *arg) {
    ss_worker_t *w = arg;
    return ss_state_stage(w->state, w->batch);
}

static int on_committing(void *arg) {
    return ss_state_committing(((ss_worker_t *)arg)->state);
}

static int on_committed(void *arg) {
    ss_worker_t *w = arg;
    return ss_state_commit(w->state, w->batch);
}

static int on_acked(void *arg, const rd_kafka_topic_partition_list_t *offsets) {
    return ss_state_acked(((ss_worker_t *)arg)->state, offsets);
}

static void on_aborted(void *arg) {
    ss_state_aborted(((ss_worker_t *)arg)->state);
}

/* The batch's predictions, remembered for the labels of the ROC-AUC gate to join
 * (rollout.labels.topic): before they are produced, so that a label cannot arrive first. */
static void remember(ss_worker_t *w, const ss_plan_t *plan) {
    ss_batch_t *b = w->batch;
    size_t n = 0;
    if (!plan->candidate || !ss_canary_wants_recent(w->rt))
        return;
    for (size_t i = 0; i < b->n_msgs; i++) {
        const ss_batch_rec_t *r = &b->recs[i];
        if (!r->dlq)
            w->recent[n++] =
                (ss_recent_t){ss_labels_hash(b->arena + r->cust_off, r->cust_len),
                              (float)b->scores[r->row], b->u_route[r->slot], r->event_time};
    }
    ss_canary_remember(w->rt, w->recent, n);
}

/* A committed batch's figures per route, for the rollout's gates: its records and scoring
 * errors, their latency, and the canary's scores beside the live model's. The live route's
 * latency leaves out the time the candidate took in the batch: a slow candidate shows on its
 * own route only. */
static void tally_routes(ss_worker_t *w, int64_t acked) {
    ss_batch_t *b = w->batch;
    ss_gate_tally_t *t = w->tally;
    ss_gate_tally_clear(&t[SS_ROUTE_LIVE]);
    ss_gate_tally_clear(&t[SS_ROUTE_CANARY]);
    for (size_t i = 0; i < b->n_msgs; i++) {
        const ss_batch_rec_t *r = &b->recs[i];
        if (r->slot < 0 || b->u_dead[r->slot])
            continue; /* not scored: undecodable, or its Redis key is not a hash */
        ss_gate_tally_t *rt = &t[b->u_route[r->slot]];
        rt->records++;
        if (r->dlq) {
            rt->errors++; /* a non-finite score */
            continue;
        }
        rd_kafka_timestamp_type_t tstype;
        int64_t ts = rd_kafka_message_timestamp(b->msgs[i], &tstype);
        int64_t at = acked - (b->u_route[r->slot] == SS_ROUTE_LIVE ? w->candidate_ns / 1000000 : 0);
        if (ts > 0)
            ss_gate_tally_latency(rt, (double)(at > ts ? at - ts : 0) / 1000.0);
        if (b->u_route[r->slot] == SS_ROUTE_CANARY)
            ss_gate_tally_shift(rt, b->scores[r->row], w->live_scores[r->row]);
    }
    ss_canary_observe(w->rt, t);
}

/* A committed batch: its counters, its events' end-to-end latency, and drift (of each model on
 * the rows it scored). */
static void account(ss_worker_t *w, const ss_plan_t *plan) {
    ss_batch_t *b = w->batch;
    ss_metrics_t *stats = w->rt->stats;
    count(&stats->produced, w->predicted);
    count(&stats->batches, 1);
    int64_t acked = ss_wall_ms();
    ss_hist_tally_t latency = {{0}, 0};
    for (size_t i = 0; i < b->n_msgs; i++) {
        rd_kafka_timestamp_type_t tstype;
        int64_t ts = rd_kafka_message_timestamp(b->msgs[i], &tstype);
        if (ts > 0)
            ss_hist_tally(&stats->event_latency_seconds, &latency,
                          (double)(acked > ts ? acked - ts : 0) / 1000.0);
    }
    ss_hist_add_tally(&stats->event_latency_seconds, &latency);
    ss_canary_count(w->rt, w->route_predicted, w->route_errors);
    if (plan->candidate)
        tally_routes(w, acked);
    if (b->n_rows == 0)
        return;
    if (!w->n_canary) {
        if (plan->live->drift)
            ss_drift_observe(plan->live->drift, b->rows, b->scores, b->n_rows);
        return;
    }
    if (plan->live->drift) /* every row, as the live model scored it */
        ss_drift_observe(plan->live->drift, b->rows, w->live_scores, b->n_rows);
    if (plan->candidate->drift)
        ss_drift_observe(plan->candidate->drift, w->canary_rows, w->canary_scores, w->n_canary);
}

static int process_batch(ss_worker_t *w) {
    ss_batch_t *b = w->batch;
    drop_revoked(w);
    if (b->n_msgs == 0)
        return 0;
    ss_plan_t *plan = ss_plan_acquire(w->rt); /* one plan for the whole batch */
    char err[512];
    int rc, aborted = 0;
    ss_batch_reset(b);
    count(&w->rt->stats->consumed, (long)b->n_msgs);
    if ((rc = ss_delivery_begin(w->delivery)) < 0 || (rc = decode(w)) < 0)
        goto out;
    ss_output_writer_set_ack(w->out, ss_delivery_ack(w->delivery));
    if ((rc = ss_state_read(w->state, b)) < 0)
        goto out;
    ss_batch_merge(b);
    route(w, plan);
    if ((rc = score(w, plan)) < 0 || (rc = explain(w, plan)) < 0)
        goto out;
    ss_failpoint("eos.before-produce");
    remember(w, plan);
    if ((rc = emit(w, plan)) < 0)
        goto out;
    if ((rc = ss_output_flush(w->out, err, sizeof(err))) < 0) {
        ss_error("%s", err);
        goto out;
    }
    rc = ss_delivery_commit(w->delivery, w->consumer, b, &aborted);
    if (rc == 0 && !aborted)
        account(w, plan);
out:
    if (rc < 0)
        ss_delivery_abort(w->delivery);
    release(w);
    ss_plan_release(plan);
    return rc < 0 ? rc : 0;
}

/* The thread fails with `rc` (SS_ERR_CONFIG: Redis refused, exit 2; any other: SS_ERR_FAIL);
 * with `all`, or when Redis refused (it refuses every thread), every thread stops. */
static void fail(ss_worker_t *w, int rc, int all) {
    w->rc = rc == SS_ERR_CONFIG ? rc : SS_ERR_FAIL;
    if (all || rc == SS_ERR_CONFIG)
        __atomic_store_n(&w->rt->failed, 1, __ATOMIC_RELEASE);
}

static void *worker_main(void *arg) {
    ss_worker_t *w = arg;
    while (!stopping(w)) {
        if (collect(w) == 0) {
            int aborted, rc = ss_delivery_finish(w->delivery, w->consumer, 1, &aborted);
            if (rc >= 0)
                rc = ss_state_idle(w->state);
            if (rc == SS_ERR_STOPPED)
                break; /* a stop while Redis was retried: nothing lost, offsets not stored */
            if (rc < 0) {
                fail(w, rc, 0); /* a failed commit, or Redis refused */
                break;
            }
            continue;
        }
        int rc = process_batch(w);
        if (rc == SS_ERR_STOPPED)
            break; /* a stop while Redis or the output was waited for: nothing committed */
        if (rc < 0) {
            if (!__atomic_load_n(w->rt->stop, __ATOMIC_ACQUIRE))
                ss_error("worker %d: stopping after a failed batch; its offsets are not committed",
                         w->index);
            fail(w, rc, 1);
            break;
        }
    }
    release(w); /* a batch abandoned because of a stop request is simply not committed */
    int aborted, rc = w->rc == 0 ? ss_delivery_finish(w->delivery, w->consumer, 0, &aborted) : 0;
    if (rc < 0 && rc != SS_ERR_STOPPED)
        w->rc = SS_ERR_FAIL;
    ss_state_flush(w->state); /* the committed batches' changes, and their offsets stored */
    /* Close here, in the thread that polls this consumer, while the other threads close
     * theirs: leaving the group triggers rebalances that every member must serve. */
    rd_kafka_queue_destroy(w->queue);
    w->queue = NULL;
    ss_consumer_destroy(w->consumer);
    w->consumer = NULL;
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* ------------------------------------------------------------------ partitions moving */

static int on_assigning(void *arg, const rd_kafka_topic_partition_list_t *parts) {
    ss_worker_t *w = arg;
    int rc = ss_state_assign(w->state, parts);
    if (rc != SS_ERR_CONFIG)
        return rc < 0 ? -1 : 0;
    /* Redis refused: the worker stops before it reads them, but the partitions are taken all
     * the same, for librdkafka cannot close a consumer whose rebalance it still waits on */
    fail(w, rc, 1);
    return 0;
}

/* The open transaction committed, every change written: the next owner starts from here. */
static void on_handing_over(void *arg) {
    ss_worker_t *w = arg;
    int aborted;
    if (ss_delivery_finish(w->delivery, w->consumer, 0, &aborted) < 0)
        ss_warn("worker %d: the open transaction could not be committed before a hand-over; "
                "its batches are read again by the partitions' next owners",
                w->index);
    ss_state_flush(w->state);
}

static void on_revoked(void *arg, const rd_kafka_topic_partition_list_t *parts) {
    ss_state_drop(((ss_worker_t *)arg)->state, parts);
}

/* ------------------------------------------------------------------ life of a worker */

int ss_worker_new(ss_runtime_t *rt, int index, ss_worker_t **out, char *errstr, size_t errlen) {
    const ss_config_t *cfg = rt->cfg;
    ss_worker_t *w = ss_zalloc(sizeof(*w), "worker", errstr, errlen);
    int rc = SS_ERR_FAIL, why = 0;
    *out = NULL;
    if (!w)
        return SS_ERR_NOMEM;
    w->index = index;
    w->rt = rt;
    ss_ack_init(&w->acks[0]);
    ss_ack_init(&w->acks[1]);
    ss_model_t *model = rt->model.model; /* before any thread: no lock needed */
    if (!(w->batch = ss_batch_new((size_t)cfg->batch_max_messages, model->n_features))) {
        snprintf(errstr, errlen, "worker: out of memory for batch buffers");
        goto fail;
    }
    size_t max = (size_t)cfg->batch_max_messages, nf = model->n_features;
    w->canary_row = malloc(max * sizeof(int));
    w->canary_rows = malloc(max * nf * sizeof(float) + 1);
    w->canary_scores = malloc(max * sizeof(double));
    w->live_scores = malloc(max * sizeof(double));
    w->recent = malloc(max * sizeof(*w->recent));
    w->n_out = model->objective.n_outputs;
    w->outputs = malloc(max * w->n_out * sizeof(double) + 1);
    w->canary_outputs = malloc(max * w->n_out * sizeof(double) + 1);
    w->classes = malloc(max * sizeof(int) + 1);
    w->canary_classes = malloc(max * sizeof(int) + 1);
    w->decisions = malloc(max + 1);
    if (!w->canary_row || !w->canary_rows || !w->canary_scores || !w->live_scores || !w->recent ||
        !w->outputs || !w->canary_outputs || !w->classes || !w->canary_classes || !w->decisions) {
        snprintf(errstr, errlen, "worker: out of memory for batch buffers");
        goto fail;
    }
    w->explainer = ss_explainer_new(cfg, max, nf, errstr, errlen);
    if (!w->explainer && errstr[0]) {
        rc = SS_ERR_NOMEM;
        goto fail;
    }
    if (!(w->dec = ss_decoder_new(rt->codec, errstr, errlen)) ||
        !(w->pred = ss_predictor_new(errstr, errlen)))
        goto fail;
    if (!(w->out = ss_output_writer_new(rt->output, &w->acks[0], &why, errstr, errlen))) {
        rc = why;
        goto fail;
    }
    if (!(w->state = ss_state_new(cfg, model->feature_names, model->n_features, rt->stats, stopping,
                                  w, &why, errstr, errlen))) {
        rc = why;
        goto fail;
    }
    if (!(w->consumer = ss_consumer_new(cfg, index, &w->cctx, rt->stats, errstr, errlen))) {
        rc = SS_ERR_CONFIG;
        goto fail;
    }
    w->queue = rd_kafka_queue_get_consumer(w->consumer);
    if (!(w->delivery =
              ss_delivery_new(cfg, index, rt->producer, w->acks, rt->stop, errstr, errlen)))
        goto fail;
    ss_output_writer_use(w->out, ss_delivery_producer(w->delivery));
    ss_delivery_hooks_t hooks = {on_staged, on_committing, on_committed, on_acked, on_aborted, w};
    ss_delivery_set_hooks(w->delivery, &hooks);
    if (ss_state_attach(
            w->state, w->consumer,
            cfg->delivery == SS_DELIVERY_EXACTLY_ONCE ? ss_delivery_producer(w->delivery) : NULL,
            errstr, errlen) < 0)
        goto fail;
    w->cctx.assigning = on_assigning;
    w->cctx.handing_over = on_handing_over;
    w->cctx.revoked = on_revoked;
    w->cctx.hook_arg = w;
    *out = w;
    return 0;
fail:
    ss_worker_destroy(w);
    return rc;
}

void ss_worker_destroy(ss_worker_t *w) {
    if (!w)
        return;
    if (w->queue)
        rd_kafka_queue_destroy(w->queue);
    ss_consumer_destroy(w->consumer);
    ss_delivery_destroy(w->delivery); /* flushes: deliveries settle the ack */
    ss_output_writer_destroy(w->out);
    ss_ack_destroy(&w->acks[0]);
    ss_ack_destroy(&w->acks[1]);
    ss_decoder_destroy(w->dec);
    ss_state_destroy(w->state);
    ss_predictor_destroy(w->pred);
    ss_batch_destroy(w->batch);
    free(w->canary_row);
    free(w->canary_rows);
    free(w->canary_scores);
    free(w->live_scores);
    free(w->recent);
    free(w->outputs);
    free(w->canary_outputs);
    free(w->classes);
    free(w->canary_classes);
    free(w->decisions);
    ss_explainer_destroy(w->explainer);
    free(w);
}

int ss_worker_start(ss_worker_t *w) {
    return pthread_create(&w->tid, NULL, worker_main, w) == 0 ? 0 : SS_ERR_FAIL;
}

int ss_worker_join(ss_worker_t *w) {
    pthread_join(w->tid, NULL);
    return w->rc;
}

int ss_worker_done(ss_worker_t *w) {
    return __atomic_load_n(&w->done, __ATOMIC_ACQUIRE) != 0;
}

int ss_worker_joined(ss_worker_t *w) {
    return __atomic_load_n(&w->cctx.joined, __ATOMIC_ACQUIRE) != 0;
}

ss_producer_t *ss_worker_producer(ss_worker_t *w) {
    return ss_delivery_producer(w->delivery);
}
