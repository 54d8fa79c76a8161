/* pipeline.c - the consume -> decode -> merge -> score -> produce -> commit loop.
 * Each worker thread owns a consumer, a decoder, an encoder, a Redis connection and all
 * batch buffers (allocated once, reused for every batch); threads share the producer,
 * the model, the codec and the config, all immutable or internally synchronized.
 * A batch's offsets are stored only after every record of it is acknowledged: its
 * prediction (or dead letter) delivered and its features written. */
#include "pipeline.h"

#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cache.h"
#include "clock.h"
#include "codec.h"
#include "consumer.h"
#include "drift.h"
#include "features.h"
#include "hash.h"
#include "http.h"
#include "log.h"
#include "prediction.h"
#include "producer.h"
#include "registry.h"

#include <jansson.h>

typedef struct worker worker_t;

/* Shared by all workers. */
typedef struct runtime {
    const ss_config_t *cfg;
    ss_model_t *model;          /* guarded by model_lock: replaced by a reload */
    pthread_mutex_t model_lock; /* taken only to take a reference or to swap */
    ss_codec_t *codec;
    ss_producer_t *producer;
    volatile int *stop;   /* set by the signal handler */
    volatile int *reload; /* set by SIGHUP */
    int failed;           /* atomic: a worker hit a fatal error */
    ss_metrics_t *stats;
    worker_t *workers;    /* for readiness: their consumers' group state */
    size_t n_workers;
    const char *out_topic;
    ss_registry_t *registry;  /* schema.registry.url set, else NULL; internally locked */
    int32_t out_schema_id;    /* >= 0: outputs framed with it (Confluent wire format) */
    FILE *results_file;           /* shadow.output = file: JSON lines, else NULL */
    pthread_mutex_t results_lock; /* guards results_file */
} runtime_t;

typedef struct rec {
    int dlq;              /* 1: goes to the dead-letter topic */
    const char *reason;   /* dead-letter reason */
    const char *stage;    /* "decode" or "score" */
    size_t err_off;       /* error text in the arena */
    size_t cust_off, cust_len, evid_off, evid_len;
    int64_t event_time;
    int slot;             /* unique customer index */
    int row;              /* row in the scored matrix */
} rec_t;

struct worker {
    int index;
    int done; /* atomic: its thread has finished */
    ss_consumer_ctx_t cctx;
    int64_t collected_at; /* monotonic ms when the previous batch's collection ended */
    pthread_t tid;
    runtime_t *rt;
    rd_kafka_t *consumer;
    ss_decoder_t *dec;
    ss_encoder_t *enc;
    ss_cache_t *cache;
    ss_predictor_t *pred;
    ss_producer_t *txn;  /* exactly-once: this thread's transactional producer, else NULL */
    ss_producer_t *prod; /* where this thread produces: txn or the shared producer */
    ss_ack_t ack;
    size_t nf, max;
    rd_kafka_message_t **msgs;
    size_t n_msgs;
    rec_t *recs;
    float *ev_feat, *rows, *state;
    unsigned char *changed; /* per unique customer and feature: carried by an event */
    double *scores;
    const char **u_ids;
    size_t *u_lens, *u_off, n_u;
    int *table;           /* open addressing: customer -> slot, -1 empty */
    size_t table_mask;
    size_t *table_used;
    char *arena;
    size_t arena_len, arena_cap;
    long redis_backoff;     /* redis.on.error = degrade: current backoff, 0 when healthy */
    int64_t redis_retry_at; /* no Redis attempt before this time (ms) */
    char *lines; /* shadow results of the batch, when written to a file */
    size_t lines_len, lines_cap;
    int rc;
};

static void stat_add(long *c, long n) { __atomic_add_fetch(c, n, __ATOMIC_RELAXED); }

static double seconds_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The model to score a batch with: one reference, held for the whole batch, so that a
 * batch is scored, named and measured by one version. */
static ss_model_t *model_acquire(runtime_t *rt) {
    pthread_mutex_lock(&rt->model_lock);
    ss_model_t *m = ss_model_ref(rt->model);
    pthread_mutex_unlock(&rt->model_lock);
    return m;
}

static int stopping(const worker_t *w) {
    return *w->rt->stop || __atomic_load_n(&w->rt->failed, __ATOMIC_ACQUIRE);
}

/* Copy bytes into the batch arena; returns the offset or (size_t)-1. */
static size_t arena_put(worker_t *w, const char *s, size_t len) {
    if (w->arena_len + len + 1 > w->arena_cap) {
        size_t cap = (w->arena_len + len + 1) * 2;
        char *g = realloc(w->arena, cap);
        if (!g)
            return (size_t)-1;
        w->arena = g;
        w->arena_cap = cap;
    }
    size_t off = w->arena_len;
    if (len)
        memcpy(w->arena + off, s, len);
    w->arena[off + len] = '\0';
    w->arena_len += len + 1;
    return off;
}

static int slot_of(worker_t *w, size_t off, size_t len) {
    uint64_t h = ss_fnv1a(SS_FNV1A_INIT, w->arena + off, len);
    for (size_t t = h & w->table_mask;; t = (t + 1) & w->table_mask) {
        int s = w->table[t];
        if (s < 0) {
            s = (int)w->n_u++;
            w->table[t] = s;
            w->table_used[s] = t;
            w->u_off[s] = off;
            w->u_lens[s] = len;
            memset(w->changed + (size_t)s * w->nf, 0, w->nf);
            return s;
        }
        if (w->u_lens[s] == len && memcmp(w->arena + w->u_off[s], w->arena + off, len) == 0)
            return s;
    }
}

static void worker_free(worker_t *w) {
    ss_consumer_destroy(w->consumer);
    ss_producer_destroy(w->txn, w->rt->cfg->shutdown_timeout_ms);
    ss_decoder_destroy(w->dec);
    ss_encoder_destroy(w->enc);
    ss_cache_destroy(w->cache);
    ss_predictor_destroy(w->pred);
    ss_ack_destroy(&w->ack);
    free(w->msgs);
    free(w->recs);
    free(w->ev_feat);
    free(w->rows);
    free(w->state);
    free(w->changed);
    free(w->scores);
    free(w->u_ids);
    free(w->u_lens);
    free(w->u_off);
    free(w->table);
    free(w->table_used);
    free(w->arena);
    free(w->lines);
}

/* Everything a thread needs, created before any thread starts so that a bad config or
 * an unreachable Redis is reported once, at start-up. Returns 0, -1 runtime, -2 config. */
static int worker_init(worker_t *w, runtime_t *rt, int index, char *errstr, size_t errlen) {
    const ss_config_t *cfg = rt->cfg;
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->rt = rt;
    w->nf = rt->model->n_features;
    w->max = (size_t)cfg->batch_max_messages;
    ss_ack_init(&w->ack);
    size_t tsize = 1;
    while (tsize < 2 * w->max)
        tsize <<= 1;
    w->table_mask = tsize - 1;
    w->msgs = calloc(w->max, sizeof(*w->msgs));
    w->recs = calloc(w->max, sizeof(*w->recs));
    w->ev_feat = malloc(w->max * w->nf * sizeof(float));
    w->rows = malloc(w->max * w->nf * sizeof(float));
    w->state = malloc(w->max * w->nf * sizeof(float));
    w->changed = malloc(w->max * (w->nf ? w->nf : 1));
    w->scores = malloc(w->max * sizeof(double));
    w->u_ids = calloc(w->max, sizeof(char *));
    w->u_lens = calloc(w->max, sizeof(size_t));
    w->u_off = calloc(w->max, sizeof(size_t));
    w->table = malloc(tsize * sizeof(int));
    w->table_used = calloc(w->max, sizeof(size_t));
    w->arena_cap = w->max * 96;
    w->arena = malloc(w->arena_cap);
    if (!w->msgs || !w->recs || !w->ev_feat || !w->rows || !w->state || !w->changed || !w->scores ||
        !w->u_ids || !w->u_lens || !w->u_off || !w->table || !w->table_used || !w->arena) {
        snprintf(errstr, errlen, "worker: out of memory for batch buffers");
        return -1;
    }
    memset(w->table, 0xff, tsize * sizeof(int));
    if (!(w->dec = ss_decoder_new(rt->codec, errstr, errlen)) ||
        !(w->pred = ss_predictor_new(errstr, errlen)))
        return -1;
    if (!(w->enc = rt->results_file ? ss_encoder_new_format(cfg, SS_FORMAT_JSON, errstr, errlen)
                                     : ss_encoder_new(cfg, errstr, errlen)))
        return -2;
    ss_encoder_set_schema_id(w->enc, rt->out_schema_id);
    if (!(w->cache = ss_cache_new(cfg, rt->model->feature_names, w->nf, errstr, errlen)))
        return -1;
    if (!(w->consumer = ss_consumer_new(cfg, index, &w->cctx, rt->stats, errstr, errlen)))
        return -2;
    w->prod = rt->producer;
    if (cfg->delivery == SS_DELIVERY_EXACTLY_ONCE) {
        char tid[512];
        snprintf(tid, sizeof(tid), "%s-%d", cfg->transactional_id, index);
        if (!(w->txn = ss_producer_new(cfg, tid, errstr, errlen)))
            return -1;
        w->prod = w->txn;
    }
    return 0;
}

/* Poll until the batch is full or batch.max.wait.ms after its first record arrived, then take
 * whatever else is already queued (up to the batch's size) without waiting. A record that
 * was queued while the previous batch was being processed arrived no earlier than that
 * batch's collection ended: its wait is counted from then, so that under load batches are
 * what accumulated meanwhile rather than waiting the full time again. */
static size_t collect(worker_t *w) {
    const ss_config_t *cfg = w->rt->cfg;
    w->n_msgs = 0;
    int64_t deadline = 0;
    int blocked = 0; /* polled with a timeout while the batch was empty */
    while (w->n_msgs < w->max && !stopping(w)) {
        int timeout = blocked ? 100 : 0;
        if (w->n_msgs) {
            int64_t left = deadline - ss_mono_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, timeout);
        if (!m) {
            if (w->n_msgs && timeout == 0)
                break;
            if (!w->n_msgs)
                blocked = 1;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                stat_add(&w->rt->stats->kafka_errors, 1);
                ss_warn("consumer: %s", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        if (w->n_msgs == 0)
            deadline = (blocked || !w->collected_at ? ss_mono_ms() : w->collected_at) +
                       cfg->batch_max_wait_ms;
        w->msgs[w->n_msgs++] = m;
    }
    w->collected_at = ss_mono_ms();
    return w->n_msgs;
}

static void mark_dlq(worker_t *w, rec_t *r, const char *stage, const char *reason,
                     const char *detail) {
    r->dlq = 1;
    r->stage = stage;
    r->reason = reason;
    r->err_off = arena_put(w, detail, strlen(detail));
}

static void fill_missing(worker_t *w) {
    for (size_t i = 0; i < w->n_u * w->nf; i++)
        w->state[i] = NAN;
}

/* One Redis call of the batch under redis.on.error. block: retry with backoff until it
 * succeeds or the worker stops (consumption is paused meanwhile). degrade: one attempt, and
 * after a failure none until a backoff has passed; a read that is skipped or fails leaves
 * the batch with no cached features. Returns 0 done, 1 degraded, -1 stopping. */
static int cache_call(worker_t *w, int write) {
    const ss_config_t *cfg = w->rt->cfg;
    long backoff = 50;
    char err[512];
    if (cfg->redis_on_error == SS_REDIS_DEGRADE && ss_mono_ms() < w->redis_retry_at) {
        if (!write)
            fill_missing(w);
        return 1;
    }
    for (;;) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = write ? ss_cache_write(w->cache, w->u_ids, w->u_lens, w->n_u, w->state,
                                        w->changed, err, sizeof(err))
                       : ss_cache_read(w->cache, w->u_ids, w->u_lens, w->n_u, w->state, err,
                                       sizeof(err));
        ss_hist_observe(&w->rt->stats->redis_seconds, seconds_since(&t0));
        if (rc == 0) {
            if (w->redis_backoff) {
                ss_log(SS_LOG_INFO, SS_FIELDS(SSF_STR("component", "redis")), "redis is back: leaving degraded mode");
                w->redis_backoff = 0;
            }
            return 0;
        }
        stat_add(&w->rt->stats->cache_errors, 1);
        if (cfg->redis_on_error == SS_REDIS_DEGRADE) {
            w->redis_backoff = w->redis_backoff ? w->redis_backoff * 2 : 250;
            if (w->redis_backoff > 5000)
                w->redis_backoff = 5000;
            w->redis_retry_at = ss_mono_ms() + w->redis_backoff;
            ss_log(SS_LOG_WARN, SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("policy", "degrade")),
                   "%s; scoring with the events' own features, next attempt in %ld ms", err,
                   w->redis_backoff);
            if (!write)
                fill_missing(w);
            return 1;
        }
        ss_log(SS_LOG_WARN, SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("policy", "block")),
               "%s; retrying in %ld ms (consumption paused)", err, backoff);
        if (stopping(w))
            return -1;
        ss_sleep_ms(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

static int send_dlq(worker_t *w, const rd_kafka_message_t *m, const rec_t *r) {
    const runtime_t *rt = w->rt;
    char part[16], off[24];
    snprintf(part, sizeof(part), "%d", m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    const char *topic = rd_kafka_topic_name(m->rkt);
    const char *detail = r->err_off == (size_t)-1 ? r->reason : w->arena + r->err_off;
    ss_header_t h[] = {
        {"__connect.errors.topic", topic, strlen(topic)},
        {"__connect.errors.partition", part, strlen(part)},
        {"__connect.errors.offset", off, strlen(off)},
        {"__connect.errors.stage", r->stage, strlen(r->stage)},
        {"__connect.errors.class.name", "streamscore", 11},
        {"__connect.errors.exception.class.name", r->reason, strlen(r->reason)},
        {"__connect.errors.exception.message", detail, strlen(detail)},
    };
    rd_kafka_headers_t *orig = NULL;
    if (rd_kafka_message_headers(m, &orig) != RD_KAFKA_RESP_ERR_NO_ERROR)
        orig = NULL;
    char err[512];
    if (ss_producer_send(w->prod, rt->cfg->dlq_topic, m->key, m->key_len, m->payload, m->len,
                         h, sizeof(h) / sizeof(h[0]), orig, &w->ack, err, sizeof(err)) < 0) {
        ss_error("dead letter: %s", err);
        return -1;
    }
    ss_log(SS_LOG_WARN,
           SS_FIELDS(SSF_STR("reason", r->reason), SSF_INT("partition", m->partition),
                     SSF_INT("offset", m->offset)), "record dead-lettered: %s", detail);
    ss_metrics_dead_letter(w->rt->stats, r->reason);
    return 0;
}

static int append_line(worker_t *w, const void *val, size_t len, char *errstr, size_t errlen) {
    if (w->lines_len + len + 1 > w->lines_cap) {
        size_t cap = (w->lines_len + len + 1) * 2;
        char *g = realloc(w->lines, cap);
        if (!g) {
            snprintf(errstr, errlen, "shadow results: out of memory");
            return -1;
        }
        w->lines = g;
        w->lines_cap = cap;
    }
    memcpy(w->lines + w->lines_len, val, len);
    w->lines[w->lines_len + len] = '\n';
    w->lines_len += len + 1;
    return 0;
}

/* Append the batch's lines and make them durable before the batch's offsets are stored. */
static int flush_lines(worker_t *w) {
    runtime_t *rt = w->rt;
    int rc = 0;
    pthread_mutex_lock(&rt->results_lock);
    if (fwrite(w->lines, 1, w->lines_len, rt->results_file) != w->lines_len ||
        fflush(rt->results_file) != 0 || fsync(fileno(rt->results_file)) != 0) {
        ss_error("shadow results file '%s' (key shadow.file): %s", rt->cfg->shadow_file,
                 strerror(errno));
        rc = -1;
    }
    pthread_mutex_unlock(&rt->results_lock);
    w->lines_len = 0;
    return rc;
}

/* The next offset of every partition in the batch. */
static rd_kafka_topic_partition_list_t *batch_offsets(const worker_t *w) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < w->n_msgs; i++) {
        const rd_kafka_message_t *m = w->msgs[i];
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(l, topic, m->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(l, topic, m->partition);
        if (p->offset < m->offset + 1)
            p->offset = m->offset + 1;
    }
    return l;
}

static void store_offsets(worker_t *w) {
    rd_kafka_topic_partition_list_t *l = batch_offsets(w);
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->consumer, l);
    if (err) /* a partition revoked meanwhile: its new owner re-reads it (duplicates, no loss) */
        ss_warn("consumer: storing offsets: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Keep only records of partitions still assigned. A partition revoked while the batch was
 * collected belongs to another member now, which reads it from the offsets committed at the
 * hand-over: scoring those records here too would only duplicate them (and, exactly-once,
 * committing their offsets in our transaction would let both members process them). */
static void drop_revoked(worker_t *w) {
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(w->consumer, &a) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < w->n_msgs; i++) {
        rd_kafka_message_t *m = w->msgs[i];
        if (rd_kafka_topic_partition_list_find(a, rd_kafka_topic_name(m->rkt), m->partition))
            w->msgs[kept++] = m;
        else
            rd_kafka_message_destroy(m);
    }
    w->n_msgs = kept;
    rd_kafka_topic_partition_list_destroy(a);
}

/* exactly-once: after an aborted transaction, go back to the committed offsets of the
 * batch's partitions so that its records are consumed and scored again. */
static void rewind_batch(worker_t *w) {
    rd_kafka_topic_partition_list_t *l = batch_offsets(w);
    rd_kafka_resp_err_t err = rd_kafka_committed(w->consumer, l, 10000);
    if (!err) {
        for (int i = 0; i < l->cnt; i++)
            if (l->elems[i].offset < 0) /* nothing committed yet: from the batch's start */
                l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(w->consumer, l, 10000);
        if (e) {
            err = rd_kafka_error_code(e);
            rd_kafka_error_destroy(e);
        }
    }
    if (err)
        ss_error("consumer: rewinding after an aborted transaction: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* exactly-once: the batch's offsets into its transaction, then commit. Returns 0 committed,
 * 1 aborted (the batch will be read again), -1 fatal (e.g. fenced by a newer instance). */
static int commit_transaction(worker_t *w) {
    rd_kafka_t *rk = ss_producer_handle(w->txn);
    rd_kafka_topic_partition_list_t *l = batch_offsets(w);
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(w->consumer);
    rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(rk, l, cgmd, -1);
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    rd_kafka_topic_partition_list_destroy(l);
    while (!e) {
        e = rd_kafka_commit_transaction(rk, -1);
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
        rc = -1;
    } else {
        ss_warn("transaction aborted: %s; the batch will be scored again",
                rd_kafka_error_string(e));
        rd_kafka_error_t *ae = rd_kafka_abort_transaction(rk, -1);
        if (ae) {
            ss_error("transaction: abort failed: %s", rd_kafka_error_string(ae));
            rd_kafka_error_destroy(ae);
            rc = -1;
        } else {
            rewind_batch(w);
        }
    }
    rd_kafka_error_destroy(e);
    return rc;
}

static int process_batch(worker_t *w) {
    runtime_t *rt = w->rt;
    const ss_config_t *cfg = rt->cfg;
    ss_model_t *model = model_acquire(rt);
    size_t nf = w->nf;
    char err[512];
    int rc = -1;
    ss_event_t ev;

    drop_revoked(w);
    if (w->n_msgs == 0) {
        ss_model_unref(model);
        return 0;
    }
    if (w->txn) {
        rd_kafka_error_t *e = rd_kafka_begin_transaction(ss_producer_handle(w->txn));
        if (e) {
            ss_error("transaction: begin: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            goto out;
        }
    }
    w->arena_len = 0;
    for (size_t s = 0; s < w->n_u; s++)
        w->table[w->table_used[s]] = -1;
    w->n_u = 0;
    stat_add(&rt->stats->consumed, (long)w->n_msgs);

    /* 1. decode; keep ids in the arena (decoder memory is reused per record) */
    for (size_t i = 0; i < w->n_msgs; i++) {
        rd_kafka_message_t *m = w->msgs[i];
        rec_t *r = &w->recs[i];
        memset(r, 0, sizeof(*r));
        r->slot = -1;
        int drc = ss_decoder_decode(w->dec, m->payload, m->len, &ev, w->ev_feat + i * nf, err,
                                    sizeof(err));
        if (drc != SS_DECODE_OK) {
            mark_dlq(w, r, "decode", ss_decode_reason(drc), err);
            continue;
        }
        r->cust_off = arena_put(w, ev.customer_id, ev.customer_id_len);
        r->cust_len = ev.customer_id_len;
        r->evid_off = arena_put(w, ev.event_id ? ev.event_id : "", ev.event_id_len);
        r->evid_len = ev.event_id_len;
        if (r->cust_off == (size_t)-1 || r->evid_off == (size_t)-1) {
            ss_error("worker: out of memory in the batch arena");
            goto out;
        }
        rd_kafka_timestamp_type_t tstype;
        r->event_time = ev.event_time >= 0 ? ev.event_time : rd_kafka_message_timestamp(m, &tstype);
        r->slot = slot_of(w, r->cust_off, r->cust_len);
    }
    for (size_t s = 0; s < w->n_u; s++)
        w->u_ids[s] = w->arena + w->u_off[s];

    /* 2. cached features of the batch's customers, one pipeline */
    int degraded = cache_call(w, 0);
    if (degraded < 0)
        goto out;

    /* 3. merge in partition order: a customer's later event sees the earlier one */
    size_t k = 0;
    for (size_t i = 0; i < w->n_msgs; i++) {
        rec_t *r = &w->recs[i];
        if (r->dlq)
            continue;
        float *st = w->state + (size_t)r->slot * nf;
        const float *ef = w->ev_feat + i * nf;
        unsigned char *ch = w->changed + (size_t)r->slot * nf;
        for (size_t f = 0; f < nf; f++)
            ch[f] |= !isnan(ef[f]);
        ss_features_merge(st, ef, nf);
        memcpy(w->rows + k * nf, st, nf * sizeof(float));
        r->row = (int)k++;
    }

    /* 4. score the batch in one call */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ss_model_predict(model, w->pred, w->rows, k, w->scores, err, sizeof(err)) < 0) {
        ss_error("%s", err);
        goto out;
    }
    ss_hist_observe(&rt->stats->predict_seconds, seconds_since(&t0));
    ss_hist_observe(&rt->stats->batch_size, (double)w->n_msgs);

    /* 5. one prediction (or dead letter) per record */
    int64_t scored_at = ss_wall_ms();
    ss_prediction_t p;
    memset(&p, 0, sizeof(p));
    p.threshold = ss_model_threshold(model, cfg->model_threshold);
    p.model_name = model->name;
    p.model_version = model->version;
    p.scored_at = scored_at;
    p.degraded = degraded;
    long produced = 0;
    for (size_t i = 0; i < w->n_msgs; i++) {
        rd_kafka_message_t *m = w->msgs[i];
        rec_t *r = &w->recs[i];
        if (!r->dlq && !isfinite(w->scores[r->row]))
            mark_dlq(w, r, "score", "non_finite_score", "the model returned a non-finite score");
        if (r->dlq) {
            if (send_dlq(w, m, r) < 0)
                goto out;
            continue;
        }
        const float *row = w->rows + (size_t)r->row * nf;
        p.event_id = w->arena + r->evid_off;
        p.event_id_len = r->evid_len;
        p.customer_id = w->arena + r->cust_off;
        p.customer_id_len = r->cust_len;
        p.score = w->scores[r->row];
        p.decision = p.score >= p.threshold;
        p.source_topic = rd_kafka_topic_name(m->rkt);
        p.source_partition = m->partition;
        p.source_offset = m->offset;
        p.event_time = r->event_time;
        ss_features_hash_hex(ss_features_hash(row, nf), p.feature_hash);
        const void *val;
        size_t vlen;
        if (ss_encoder_encode(w->enc, &p, &val, &vlen, err, sizeof(err)) < 0 ||
            (rt->results_file ? append_line(w, val, vlen, err, sizeof(err))
                              : ss_producer_send(w->prod, rt->out_topic, p.customer_id,
                                                 p.customer_id_len, val, vlen, NULL, 0, NULL,
                                                 &w->ack, err, sizeof(err))) < 0) {
            ss_error("%s", err);
            goto out;
        }
        produced++;
    }
    stat_add(&rt->stats->scored, (long)k);
    if (degraded)
        stat_add(&rt->stats->degraded, (long)k);

    /* 6. features back to Redis while deliveries are in flight (never in shadow mode; in
     * exactly-once mode only once the transaction is committed) */
    if (cfg->mode == SS_MODE_PRIMARY && !w->txn && cache_call(w, 1) < 0)
        goto out;

    /* 7. every record acknowledged (or on disk) before its offset is stored */
    if (rt->results_file && flush_lines(w) < 0)
        goto out;
    while (ss_ack_wait(&w->ack, 1000) > 0)
        ;
    if (w->ack.failed) {
        ss_error("producer: %ld record(s) of a batch not delivered: %s; offsets not committed",
                 w->ack.failed, rd_kafka_err2str(w->ack.first_err));
        goto out;
    }
    if (w->txn) {
        int trc = commit_transaction(w);
        if (trc < 0)
            goto out;
        if (trc > 0) { /* aborted and rewound: nothing of it counts */
            rc = 0;
            goto out;
        }
        if (cfg->mode == SS_MODE_PRIMARY && cache_call(w, 1) < 0)
            goto out;
    } else {
        store_offsets(w);
    }
    stat_add(&rt->stats->produced, produced);
    stat_add(&rt->stats->batches, 1);
    {
        int64_t acked = ss_wall_ms();
        ss_hist_tally_t latency = {{0}, 0};
        for (size_t i = 0; i < w->n_msgs; i++) {
            rd_kafka_timestamp_type_t tstype;
            int64_t ts = rd_kafka_message_timestamp(w->msgs[i], &tstype);
            if (ts > 0)
                ss_hist_tally(&rt->stats->event_latency_seconds, &latency,
                              (double)(acked > ts ? acked - ts : 0) / 1000.0);
        }
        ss_hist_add_tally(&rt->stats->event_latency_seconds, &latency);
    }
    if (model->drift && k > 0)
        ss_drift_observe(model->drift, w->rows, w->scores, k);
    rc = 0;
out:
    if (rc < 0) {
        /* deliveries still in flight point at w->ack: wait them out before reuse */
        while (ss_ack_wait(&w->ack, 1000) > 0)
            ;
        if (w->txn) {
            rd_kafka_error_t *ae = rd_kafka_abort_transaction(ss_producer_handle(w->txn), 10000);
            if (ae)
                rd_kafka_error_destroy(ae);
        }
    }
    w->ack.failed = 0;
    w->ack.first_err = 0;
    for (size_t i = 0; i < w->n_msgs; i++)
        rd_kafka_message_destroy(w->msgs[i]);
    w->n_msgs = 0;
    ss_model_unref(model);
    return rc;
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    while (!stopping(w)) {
        if (collect(w) == 0)
            continue;
        if (process_batch(w) < 0) {
            w->rc = 1;
            if (!*w->rt->stop)
                ss_error("worker %d: stopping after a failed batch; its offsets are not committed",
                         w->index);
            __atomic_store_n(&w->rt->failed, 1, __ATOMIC_RELEASE);
            break;
        }
    }
    /* a batch abandoned because of a stop request is simply not committed */
    for (size_t i = 0; i < w->n_msgs; i++)
        rd_kafka_message_destroy(w->msgs[i]);
    w->n_msgs = 0;
    /* Close here, in the thread that polls this consumer, while the other threads close
     * theirs: leaving the group triggers rebalances that every member must serve. */
    ss_consumer_destroy(w->consumer);
    w->consumer = NULL;
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* ------------------------------------------------------------------ model reload */

/* What identifies the content of the model files: a change of any field is a new model
 * (a ConfigMap update replaces the files through a symlink: new inode and time). */
typedef struct file_sig {
    dev_t dev[2];
    ino_t ino[2];
    off_t size[2];
    struct timespec mtime[2];
    int exists[2];
} file_sig_t;

static void file_sig(const ss_config_t *cfg, file_sig_t *sig) {
    memset(sig, 0, sizeof(*sig));
    const char *paths[2] = {cfg->model_path, cfg->model_card};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (!paths[i] || stat(paths[i], &st) != 0)
            continue;
        sig->exists[i] = 1;
        sig->dev[i] = st.st_dev;
        sig->ino[i] = st.st_ino;
        sig->size[i] = st.st_size;
        sig->mtime[i] = st.st_mtim;
    }
}

static int same_features(const ss_model_t *a, const ss_model_t *b) {
    if (a->n_features != b->n_features)
        return 0;
    for (size_t i = 0; i < a->n_features; i++)
        if (strcmp(a->feature_names[i], b->feature_names[i]) != 0)
            return 0;
    return 1;
}

/* Load the model files again, check them, and swap the new model in: batches in flight
 * finish with the model they hold, the next ones take the new one. On any failure the
 * running model stays. */
static void reload_model(runtime_t *rt, const char *why) {
    const ss_config_t *cfg = rt->cfg;
    char err[1024] = "";
    ss_model_t *cur = model_acquire(rt);
    ss_model_t *m = ss_model_load(cfg->model_path, cfg->model_card, cfg->model_name,
                                  cfg->model_version, err, sizeof(err));
    if (m && !same_features(cur, m)) {
        snprintf(err, sizeof(err),
                 "model '%s' (version %s) has other feature names than the running model "
                 "(%zu vs %zu features, mapped by name): a new feature mapping needs a restart",
                 cfg->model_path, m->version, m->n_features, cur->n_features);
    } else if (m && ss_model_check(m, err, sizeof(err)) == 0 &&
               ss_model_enable_drift(m, cfg->drift_window, cfg->drift_threshold, err,
                                     sizeof(err)) == 0) {
        pthread_mutex_lock(&rt->model_lock);
        ss_model_t *old = rt->model;
        rt->model = m;
        pthread_mutex_unlock(&rt->model_lock);
        ss_log(SS_LOG_INFO,
               SS_FIELDS(SSF_STR("model", m->name), SSF_STR("version", m->version),
                         SSF_STR("previous", old->version), SSF_STR("trigger", why)), "model reloaded from %s", cfg->model_path);
        stat_add(&rt->stats->reloads_ok, 1);
        ss_model_unref(old);
        ss_model_unref(cur);
        return;
    }
    ss_log(SS_LOG_ERROR, SS_FIELDS(SSF_STR("trigger", why), SSF_STR("running", cur->version)), "model reload failed, keeping the running model: %s", err);
    stat_add(&rt->stats->reloads_failed, 1);
    ss_model_unref(m);
    ss_model_unref(cur);
}

/* ------------------------------------------------------------------ schema registry */

/* The schema id output values are framed with: output.schema.id, or output.schema registered
 * under its subject (output.subject.name.strategy). Returns 0, 1 runtime failure (the
 * registry did not answer), 2 configuration (it refused the schema). */
static int output_schema_id(runtime_t *rt, char *errstr, size_t errlen) {
    const ss_config_t *cfg = rt->cfg;
    rt->out_schema_id = -1;
    if (rt->results_file || cfg->output_format != SS_FORMAT_AVRO)
        return 0; /* JSON is not registered; a results file is read by streamscore itself */
    if (cfg->output_schema_id >= 0) {
        rt->out_schema_id = (int32_t)cfg->output_schema_id;
        return 0;
    }
    if (!rt->registry)
        return 0;
    json_error_t jerr;
    json_t *j = json_load_file(cfg->output_schema, 0, &jerr);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    ss_encoder_t *enc = ss_encoder_new(cfg, errstr, errlen);
    if (!text || !enc) {
        if (!text)
            snprintf(errstr, errlen, "config: key 'output.schema': cannot read '%s': %s",
                     cfg->output_schema, jerr.text);
        free(text);
        ss_encoder_destroy(enc);
        return 2;
    }
    char fullname[512], subject[1024];
    ss_encoder_schema_fullname(enc, fullname, sizeof(fullname));
    ss_encoder_destroy(enc);
    if (ss_registry_subject(cfg, rt->out_topic, fullname, subject, sizeof(subject)) < 0) {
        snprintf(errstr, errlen, "config: key 'output.subject.name.strategy': subject too long");
        free(text);
        return 2;
    }
    int32_t id = -1;
    int rrc = ss_registry_register(rt->registry, subject, text, &id, errstr, errlen);
    free(text);
    if (rrc != 0)
        return rrc == SS_ERR_UNAVAILABLE ? 1 : 2;
    rt->out_schema_id = id;
    ss_log(SS_LOG_INFO, SS_FIELDS(SSF_STR("subject", subject), SSF_INT("schema_id", id)), "output schema %s registered under subject %s: id %d", fullname,
           subject, id);
    return 0;
}

/* ------------------------------------------------------------------ HTTP endpoints */

static int ready(runtime_t *rt, ss_buf_t *why) {
    int ok = 1;
    if (*rt->stop || __atomic_load_n(&rt->failed, __ATOMIC_ACQUIRE)) {
        ss_buf_printf(why, "stopping\n");
        ok = 0;
    }
    size_t joined = 0;
    for (size_t i = 0; i < rt->n_workers; i++)
        joined += __atomic_load_n(&rt->workers[i].cctx.joined, __ATOMIC_ACQUIRE) != 0;
    if (joined < rt->n_workers) {
        ss_buf_printf(why, "consumers in the group: %zu of %zu\n", joined, rt->n_workers);
        ok = 0;
    }
    char err[256];
    for (size_t i = 0; i < rt->n_workers + 1; i++) {
        ss_producer_t *p = i < rt->n_workers ? rt->workers[i].txn : rt->producer;
        if (p && rd_kafka_fatal_error(ss_producer_handle(p), err, sizeof(err))) {
            ss_buf_printf(why, "producer: fatal error: %s\n", err);
            ok = 0;
        }
    }
    return ok;
}

static int on_http(void *ctx, const char *path, ss_buf_t *body, const char **type) {
    runtime_t *rt = ctx;
    if (strcmp(path, "/metrics") == 0) {
        *type = "text/plain; version=0.0.4; charset=utf-8";
        ss_metrics_render(rt->stats, body);
        ss_model_t *m = model_acquire(rt);
        ss_buf_printf(body, "# HELP streamscore_model_info The model scoring now.\n"
                            "# TYPE streamscore_model_info gauge\n"
                            "streamscore_model_info{mode=\"%s\",name=\"",
                      ss_mode_name(rt->cfg->mode));
        ss_buf_label(body, m->name);
        ss_buf_printf(body, "\",version=\"");
        ss_buf_label(body, m->version);
        ss_buf_printf(body, "\"} 1\n"
                            "# HELP streamscore_drift_threshold drift.threshold: a PSI above it "
                            "is drift.\n"
                            "# TYPE streamscore_drift_threshold gauge\n"
                            "streamscore_drift_threshold %g\n",
                      rt->cfg->drift_threshold);
        ss_drift_render(m->drift, body);
        ss_model_unref(m);
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        int failed = __atomic_load_n(&rt->failed, __ATOMIC_ACQUIRE);
        ss_buf_printf(body, failed ? "failed\n" : "ok\n");
        return failed ? 503 : 200;
    }
    if (strcmp(path, "/readyz") == 0) {
        ss_buf_t why = {0};
        int ok = ready(rt, &why);
        ss_buf_printf(body, "%s", ok ? "ready\n" : why.p ? why.p : "not ready\n");
        ss_buf_free(&why);
        return ok ? 200 : 503;
    }
    ss_buf_printf(body, "not found: /metrics, /healthz and /readyz are served here\n");
    return 404;
}

int ss_pipeline_run(const ss_config_t *cfg, ss_model_t *model, volatile int *stop,
                    volatile int *reload, ss_metrics_t *stats) {
    char err[1024];
    int rc = 0;
    size_t n = (size_t)cfg->worker_threads, started = 0, inited = 0;
    runtime_t rt = {.cfg = cfg,
                    .model = ss_model_ref(model),
                    .stop = stop,
                    .reload = reload,
                    .stats = stats,
                    .out_topic = cfg->mode == SS_MODE_SHADOW ? cfg->shadow_topic
                                                             : cfg->output_topic};
    pthread_mutex_init(&rt.results_lock, NULL);
    pthread_mutex_init(&rt.model_lock, NULL);
    ss_http_t *http = NULL;
    if (cfg->mode == SS_MODE_SHADOW && cfg->shadow_output == SS_SHADOW_FILE) {
        rt.results_file = fopen(cfg->shadow_file, "a");
        if (!rt.results_file) {
            ss_error("cannot open shadow.file '%s': %s", cfg->shadow_file, strerror(errno));
            pthread_mutex_destroy(&rt.results_lock);
            pthread_mutex_destroy(&rt.model_lock);
            ss_model_unref(rt.model);
            return 1;
        }
        rt.out_topic = cfg->shadow_file;
    }
    worker_t *workers = calloc(n, sizeof(*workers));
    if (!workers) {
        ss_error("worker: out of memory");
        rc = 1;
        goto done;
    }
    rt.codec = ss_codec_new(cfg, model->feature_names, model->n_features, err, sizeof(err));
    if (!rt.codec) {
        ss_error("%s", err);
        rc = 2;
        goto done;
    }
    if (*cfg->registry_url && !(rt.registry = ss_registry_new(cfg, stats, err, sizeof(err)))) {
        ss_error("%s", err);
        rc = 1;
        goto done;
    }
    ss_codec_attach_registry(rt.codec, cfg->input_framing == SS_FRAMING_CONFLUENT ? rt.registry
                                                                                 : NULL,
                             cfg->registry_miss_ttl_ms, stats);
    if ((rc = output_schema_id(&rt, err, sizeof(err))) != 0) {
        ss_error("%s", err);
        goto done;
    }
    /* exactly-once: each thread has its own transactional producer instead */
    rt.producer = cfg->delivery == SS_DELIVERY_AT_LEAST_ONCE
                      ? ss_producer_new(cfg, NULL, err, sizeof(err))
                      : NULL;
    if (!rt.producer && cfg->delivery == SS_DELIVERY_AT_LEAST_ONCE) {
        ss_error("%s", err);
        rc = 2;
        goto done;
    }
    for (; inited < n; inited++) {
        int irc = worker_init(&workers[inited], &rt, (int)inited, err, sizeof(err));
        if (irc < 0) {
            ss_error("%s", err);
            rc = irc == -2 ? 2 : 1;
            inited++; /* free what it did create */
            goto done;
        }
    }
    rt.workers = workers;
    rt.n_workers = n;
    if (*cfg->metrics_listen) {
        if (!(http = ss_http_start(cfg->metrics_listen, on_http, &rt, err, sizeof(err)))) {
            ss_error("%s", err);
            rc = 1;
            goto done;
        }
        ss_info("metrics: http://%s/metrics, /healthz, /readyz", cfg->metrics_listen);
    }
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("mode", ss_mode_name(cfg->mode)), SSF_INT("threads", n),
                     SSF_STR("input", cfg->input_topic), SSF_STR("output", rt.out_topic),
                     SSF_STR("model", model->name), SSF_STR("version", model->version),
                     SSF_INT("features", model->n_features)),
           "worker started");
    for (; started < n; started++) {
        if (pthread_create(&workers[started].tid, NULL, worker_main, &workers[started]) != 0) {
            ss_error("worker: cannot start thread %zu", started);
            __atomic_store_n(&rt.failed, 1, __ATOMIC_RELEASE);
            rc = 1;
            break;
        }
    }
    /* While the threads work: reload the model on SIGHUP or when its files change (after
     * they stayed the same for one interval, so that a file being written is not read). */
    file_sig_t seen, pending;
    file_sig(cfg, &seen);
    int changed = 0;
    int64_t next_check = ss_mono_ms() + cfg->model_reload_interval_ms;
    for (;;) {
        size_t finished = 0;
        for (size_t i = 0; i < started; i++)
            finished += __atomic_load_n(&workers[i].done, __ATOMIC_ACQUIRE) != 0;
        if (finished == started)
            break;
        if (*reload) {
            *reload = 0;
            file_sig(cfg, &seen);
            changed = 0;
            reload_model(&rt, "SIGHUP");
        } else if (cfg->model_reload && ss_mono_ms() >= next_check && !*stop) {
            next_check = ss_mono_ms() + cfg->model_reload_interval_ms;
            file_sig_t now;
            file_sig(cfg, &now);
            if (changed && memcmp(&now, &pending, sizeof(now)) == 0) {
                seen = now;
                changed = 0;
                reload_model(&rt, "file changed");
            } else if (memcmp(&now, &seen, sizeof(now)) != 0) {
                pending = now;
                changed = 1;
            } else {
                changed = 0;
            }
        }
        ss_sleep_ms(50);
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(workers[i].tid, NULL);
        if (workers[i].rc)
            rc = 1;
    }
    if (__atomic_load_n(&rt.failed, __ATOMIC_ACQUIRE))
        rc = 1;
done:
    ss_http_stop(http); /* before the workers it reports on go away */
    for (size_t i = 0; i < inited; i++)
        worker_free(&workers[i]); /* commits stored offsets and leaves the group */
    ss_producer_destroy(rt.producer, cfg->shutdown_timeout_ms);
    ss_codec_destroy(rt.codec);
    ss_registry_destroy(rt.registry); /* after the codec that uses it */
    ss_model_unref(rt.model);
    free(workers);
    if (rt.results_file)
        fclose(rt.results_file);
    pthread_mutex_destroy(&rt.results_lock);
    pthread_mutex_destroy(&rt.model_lock);
    return rc;
}
