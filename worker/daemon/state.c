/* state.c - the known features of a worker thread's customers: the local store in front of
 * Redis (state.mode = owned) or Redis alone (shared), the flushes and the offsets they cover,
 * and the redis.on.error policy, so that the batch loop reads as one call per step. */
#include "state.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "clock.h"
#include "error.h"
#include "failpoint.h"
#include "log.h"
#include "state_changelog.h"
#include "store.h"

/* Next offsets per partition of the input topic, -1 where none. */
typedef struct offsets {
    int64_t *next;
    int32_t n;
} offsets_t;

struct ss_state {
    const ss_config_t *cfg;
    ss_cache_t *cache;
    ss_store_t *store;         /* owned; NULL when shared */
    ss_store_t *staged;        /* owned, exactly-once: the open transaction's customers */
    ss_changelog_t *changelog; /* exactly-once, owned, primary */
    ss_metrics_t *metrics;
    int (*stopping)(void *);
    void *stop_arg;
    rd_kafka_t *consumer;   /* at-least-once: where covered offsets are stored */
    ss_producer_t *txn;     /* exactly-once: the producer of the changelog */
    int writes;             /* a primary writes Redis; a shadow never does */
    int evicted_unsynced;   /* writes of evicted customers not acknowledged yet */
    long backoff;           /* degrade: the current backoff, 0 when healthy */
    int64_t retry_at;       /* degrade: no attempt before this time (monotonic ms) */
    int refused;            /* Redis refused (refused()): no call is tried again */
    int64_t next_flush;     /* monotonic ms */
    offsets_t pending;      /* committed batches waiting for a flush */
    offsets_t covered;      /* covered by the flush sent, stored once it is acknowledged */
    ss_store_stats_t shown; /* the store's figures already added to the metrics */
    /* the batch's customers not held locally */
    const char **m_ids;
    size_t *m_lens, *m_slot, n_miss;
    float *m_rows;
    unsigned char *m_not_hash; /* per miss: its key is not a hash (WRONGTYPE) */
};

/* ------------------------------------------------------------------ offsets */

static int offsets_add(offsets_t *o, int32_t partition, int64_t next) {
    if (partition >= o->n) {
        int64_t *g = realloc(o->next, (size_t)(partition + 1) * sizeof(int64_t));
        if (!g)
            return SS_ERR_NOMEM;
        for (int32_t p = o->n; p <= partition; p++)
            g[p] = -1;
        o->next = g;
        o->n = partition + 1;
    }
    if (o->next[partition] < next)
        o->next[partition] = next;
    return 0;
}

/* `from`'s offsets into `to` (kept where higher), `from` emptied. */
static int offsets_move(offsets_t *to, offsets_t *from) {
    for (int32_t p = 0; p < from->n; p++) {
        if (from->next[p] >= 0 && offsets_add(to, p, from->next[p]) < 0)
            return SS_ERR_NOMEM;
        from->next[p] = -1;
    }
    return 0;
}

/* At-least-once: what the acknowledged writes cover becomes committable (not before every
 * customer of the flush round that covers it is sent). */
static void store_covered(ss_state_t *s) {
    if (!s->consumer || s->covered.n == 0 || (s->store && ss_store_flushing(s->store)))
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(s->covered.n);
    for (int32_t p = 0; p < s->covered.n; p++) {
        if (s->covered.next[p] >= 0)
            rd_kafka_topic_partition_list_add(l, s->cfg->input_topic, p)->offset =
                s->covered.next[p];
        s->covered.next[p] = -1;
    }
    rd_kafka_resp_err_t err = l->cnt ? rd_kafka_offsets_store(s->consumer, l) : 0;
    if (err) /* a partition revoked meanwhile: its new owner re-reads it (duplicates, no loss) */
        ss_warn("consumer: storing offsets: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* ------------------------------------------------------------------ life */

/* A customer's changes to Redis: owned, its whole known vector (the store holds the truth, and
 * a Redis that lost data is made whole again by the next change); the flags say which
 * features changed. */
static void write_evicted(void *arg, const char *id, size_t len, int32_t partition,
                          const float *vec, const unsigned char *changed) {
    (void)partition, (void)changed;
    ss_cache_queue_write(((ss_state_t *)arg)->cache, id, len, vec, NULL);
}

/* An evicted customer's changes: queued now, and acknowledged before the next read (a read of
 * that customer must see them). */
static void write_on_eviction(void *arg, const char *id, size_t len, int32_t partition,
                              const float *vec, const unsigned char *changed) {
    ((ss_state_t *)arg)->evicted_unsynced = 1;
    write_evicted(arg, id, len, partition, vec, changed);
}

void ss_state_destroy(ss_state_t *s) {
    if (!s)
        return;
    ss_store_destroy(s->store);
    ss_store_destroy(s->staged);
    ss_changelog_destroy(s->changelog);
    ss_cache_destroy(s->cache);
    void *bufs[] = {s->pending.next, s->covered.next, (void *)s->m_ids, s->m_lens,
                    s->m_slot,       s->m_rows,       s->m_not_hash,    s};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        free(bufs[i]);
}

ss_state_t *ss_state_new(const ss_config_t *cfg, char *const *features, size_t nf,
                         ss_metrics_t *metrics, int (*stopping)(void *), void *stop_arg, int *why,
                         char *errstr, size_t errlen) {
    ss_state_t *s = ss_zalloc(sizeof(*s), "state", errstr, errlen);
    *why = SS_ERR_NOMEM;
    if (!s)
        return NULL;
    size_t max = (size_t)cfg->batch_max_messages;
    *s = (ss_state_t){.cfg = cfg,
                      .metrics = metrics,
                      .stopping = stopping,
                      .stop_arg = stop_arg,
                      .writes = cfg->mode == SS_MODE_PRIMARY,
                      .m_ids = calloc(max, sizeof(char *)),
                      .m_lens = calloc(max, sizeof(size_t)),
                      .m_slot = calloc(max, sizeof(size_t)),
                      .m_rows = malloc(max * (nf ? nf : 1) * sizeof(float)),
                      .m_not_hash = calloc(max, 1),
                      .cache = ss_cache_new(cfg, features, nf, why, errstr, errlen)};
    int ok = s->cache != NULL;
    if (ok)
        ss_cache_set_metrics(s->cache, metrics);
    if (ok && !(s->m_ids && s->m_lens && s->m_slot && s->m_rows && s->m_not_hash)) {
        snprintf(errstr, errlen, "state: out of memory");
        ok = 0;
    }
    if (ok && cfg->state_mode == SS_STATE_OWNED &&
        !(s->store = ss_store_new(nf, (size_t)cfg->state_store_max_customers,
                                  s->writes ? write_on_eviction : NULL, s))) {
        snprintf(errstr, errlen, "state: out of memory for the local store");
        ok = 0;
    }
    if (ok && s->store && cfg->delivery == SS_DELIVERY_EXACTLY_ONCE &&
        !(s->staged = ss_store_new(nf, (size_t)-1, NULL, NULL))) {
        snprintf(errstr, errlen, "state: out of memory");
        ok = 0;
    }
    if (ok && s->store && s->writes && cfg->delivery == SS_DELIVERY_EXACTLY_ONCE &&
        !(s->changelog = ss_changelog_new(cfg, features, nf, errstr, errlen))) {
        *why = SS_ERR_FAIL;
        ok = 0;
    }
    if (!ok) {
        ss_state_destroy(s);
        return NULL;
    }
    s->next_flush = ss_mono_ms() + cfg->state_flush_interval_ms;
    return s;
}

int ss_state_attach(ss_state_t *s, rd_kafka_t *consumer, ss_producer_t *txn_producer, char *errstr,
                    size_t errlen) {
    s->consumer = s->cfg->delivery == SS_DELIVERY_AT_LEAST_ONCE ? consumer : NULL;
    s->txn = txn_producer;
    return 0;
}

/* ------------------------------------------------------------------ Redis under the policy */

typedef int (*redis_op_t)(ss_state_t *s, char *err, size_t errlen);

/* Redis' name for an error ("WRONGTYPE", "READONLY", "OOM", "NOAUTH", ...) in `err`, else "". */
static void error_kind(const char *err, char *kind, size_t len) {
    const char *p = strstr(err, ": ");
    size_t n = 0;
    if (p)
        for (p += 2; p[n] >= 'A' && p[n] <= 'Z' && n + 1 < len; n++)
            kind[n] = p[n];
    if (n < 2 || (p[n] != ' ' && p[n] != '\0'))
        n = 0;
    kind[n] = '\0';
}

/* degrade: after a failure, no attempt until a backoff (250 ms doubling to 5 s) has passed;
 * writes waiting are given up */
static int degrade(ss_state_t *s, const char *err, const char *kind) {
    s->backoff = s->backoff ? s->backoff * 2 : 250;
    if (s->backoff > 5000)
        s->backoff = 5000;
    s->retry_at = ss_mono_ms() + s->backoff;
    ss_cache_discard(s->cache);
    s->evicted_unsynced = 0;
    ss_log(SS_LOG_WARN,
           SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("policy", "degrade"),
                     SSF_STR("redis_error", kind)),
           "%s; scoring with the features held locally and the events' own, not writing, next "
           "attempt in %ld ms",
           err, s->backoff);
    return 1;
}

/* A Redis failure no retry can fix (AUTH refused, TLS trust, NOPERM): no outage, so whatever
 * redis.on.error says the worker stops, with exit 2. Logged by every thread that meets it;
 * the first also tells it as the one plain line of a fatal error. SS_ERR_CONFIG. */
static int refused(ss_state_t *s, const char *err) {
    static int told; /* atomic, shared by the worker threads */
    s->refused = 1;
    ss_log(SS_LOG_ERROR, SS_FIELDS(SSF_STR("component", "redis")),
           "%s; stopping: a retry cannot fix this", err);
    if (!__atomic_exchange_n(&told, 1, __ATOMIC_ACQ_REL))
        fprintf(stderr, "streamscore: %s\n", err);
    return SS_ERR_CONFIG;
}

/* Run `op` under redis.on.error: 0 done, 1 degraded (not done), SS_ERR_STOPPED,
 * SS_ERR_CONFIG (refused()) or SS_ERR_NOMEM. */
static int with_policy(ss_state_t *s, redis_op_t op) {
    int degrading = s->cfg->redis_on_error == SS_REDIS_DEGRADE;
    long backoff = 50;
    char err[512], kind[32];
    if (s->refused) /* the worker is stopping: a call again would be refused again */
        return SS_ERR_CONFIG;
    if (degrading && ss_mono_ms() < s->retry_at) {
        ss_cache_discard(s->cache);
        s->evicted_unsynced = 0;
        return 1;
    }
    for (;;) {
        int64_t t0 = ss_mono_ns();
        int rc = op(s, err, sizeof(err));
        ss_hist_observe(&s->metrics->redis_seconds, (double)(ss_mono_ns() - t0) / 1e9);
        if (rc == 0) {
            if (s->backoff) {
                ss_log(SS_LOG_INFO, SS_FIELDS(SSF_STR("component", "redis")),
                       "redis is back: leaving degraded mode");
                s->backoff = 0;
            }
            return 0;
        }
        if (rc == SS_ERR_NOMEM) {
            ss_error("%s", err);
            return rc;
        }
        __atomic_add_fetch(&s->metrics->cache_errors, 1, __ATOMIC_RELAXED);
        if (rc == SS_ERR_CONFIG)
            return refused(s, err);
        error_kind(err, kind, sizeof(kind));
        if (degrading)
            return degrade(s, err, kind);
        ss_log(SS_LOG_WARN,
               SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("policy", "block"),
                         SSF_STR("redis_error", kind)),
               "%s; retrying in %ld ms (consumption paused)", err, backoff);
        if (s->stopping(s->stop_arg))
            return SS_ERR_STOPPED;
        ss_sleep_ms(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

static int op_read_misses(ss_state_t *s, char *err, size_t errlen) {
    return ss_cache_read(s->cache, s->m_ids, s->m_lens, s->n_miss, s->m_rows, s->m_not_hash, err,
                         errlen);
}

static int op_sync(ss_state_t *s, char *err, size_t errlen) {
    int rc = ss_cache_sync(s->cache, err, errlen);
    if (rc == 0)
        s->evicted_unsynced = 0;
    return rc;
}

/* ------------------------------------------------------------------ metrics */

static void show_store(ss_state_t *s) {
    if (!s->store)
        return;
    ss_store_stats_t now = ss_store_stats(s->store), was = s->shown;
    if (s->staged) /* a customer of the open transaction is held too */
        now.hits += ss_store_stats(s->staged).hits;
    ss_metrics_t *m = s->metrics;
    __atomic_add_fetch(&m->store_hits, now.hits - was.hits, __ATOMIC_RELAXED);
    __atomic_add_fetch(&m->store_misses, now.misses - was.misses, __ATOMIC_RELAXED);
    __atomic_add_fetch(&m->store_evictions, now.evictions - was.evictions, __ATOMIC_RELAXED);
    __atomic_add_fetch(&m->store_customers, (long)now.customers - (long)was.customers,
                       __ATOMIC_RELAXED);
    __atomic_add_fetch(&m->store_bytes, (long)now.bytes - (long)was.bytes, __ATOMIC_RELAXED);
    s->shown = now;
}

/* ------------------------------------------------------------------ a batch */

int ss_state_read(ss_state_t *s, ss_batch_t *b) {
    size_t nf = b->nf;
    s->n_miss = 0;
    for (size_t u = 0; u < b->n_u; u++) {
        const float *held = s->staged ? ss_store_get(s->staged, b->u_ids[u], b->u_lens[u]) : NULL;
        if (!held && s->store)
            held = ss_store_get(s->store, b->u_ids[u], b->u_lens[u]);
        if (held) {
            memcpy(b->state + u * nf, held, nf * sizeof(float));
            continue;
        }
        s->m_ids[s->n_miss] = b->u_ids[u];
        s->m_lens[s->n_miss] = b->u_lens[u];
        s->m_slot[s->n_miss++] = u;
    }
    show_store(s);
    int rc = 0;
    if (s->n_miss && s->evicted_unsynced) { /* a miss may be one of them */
        if ((rc = with_policy(s, op_sync)) < 0)
            return rc;
        if (rc == 0)
            store_covered(s);
    }
    if (s->n_miss && (rc = with_policy(s, op_read_misses)) < 0)
        return rc;
    int not_hash = 0;
    for (size_t i = 0; i < s->n_miss; i++) {
        float *row = b->state + s->m_slot[i] * nf;
        b->u_unknown[s->m_slot[i]] = rc != 0;
        b->u_dead[s->m_slot[i]] = rc == 0 && s->m_not_hash[i];
        not_hash |= b->u_dead[s->m_slot[i]];
        if (rc == 0)
            memcpy(row, s->m_rows + i * nf, nf * sizeof(float));
        else
            for (size_t f = 0; f < nf; f++)
                row[f] = NAN;
    }
    if (not_hash)
        ss_batch_dead_letter_not_hash(b, s->cfg->redis_key_prefix);
    return rc;
}

void ss_state_aborted(ss_state_t *s) {
    if (s->staged)
        ss_store_clear(s->staged);
    if (s->changelog)
        ss_changelog_aborted(s->changelog);
}

int ss_state_stage(ss_state_t *s, const ss_batch_t *b) {
    if (!s->staged)
        return 0;
    for (size_t u = 0; u < b->n_u; u++) {
        if (b->u_dead[u])
            continue;
        if (ss_store_put(s->staged, b->u_ids[u], b->u_lens[u], b->u_part[u], b->state + u * b->nf,
                         b->changed + u * b->nf) < 0) {
            ss_error("state: out of memory for the open transaction's customers");
            return SS_ERR_NOMEM;
        }
    }
    return 0;
}

typedef struct sending {
    ss_state_t *s;
    int rc;
    char err[512];
} sending_t;

static void log_one(void *arg, const char *id, size_t len, int32_t partition, const float *vec,
                    const unsigned char *changed) {
    sending_t *x = arg;
    (void)changed;
    if (x->rc == 0)
        x->rc = ss_changelog_send(x->s->changelog, x->s->txn, id, len, partition, vec, x->err,
                                  sizeof(x->err));
}

int ss_state_committing(ss_state_t *s) {
    sending_t x = {.s = s};
    if (s->changelog && s->staged)
        ss_store_each(s->staged, log_one, &x);
    if (x.rc < 0)
        ss_error("%s", x.err);
    return x.rc;
}

static void keep_one(void *arg, const char *id, size_t len, int32_t partition, const float *vec,
                     const unsigned char *changed) {
    sending_t *x = arg;
    if (x->rc == 0 &&
        ss_store_put(x->s->store, id, len, partition, vec, x->s->writes ? changed : NULL) < 0)
        x->rc = SS_ERR_NOMEM;
}

/* The customers of a flush round written per batch: twice the batch's customers, at least
 * FLUSH_SLICE_MIN, so that a round keeps ahead of the changes while no batch waits for a
 * whole round to be formatted and sent. */
#define FLUSH_SLICE_MIN 256

/* Up to `max` customers of the flush round begun queued and sent. */
static void send_slice(ss_state_t *s, size_t max) {
    char err[512];
    size_t n = ss_store_take_flushing(s->store, max, write_evicted, s);
    __atomic_add_fetch(&s->metrics->flushed_customers, (long)n, __ATOMIC_RELAXED);
    if (ss_cache_send(s->cache, err, sizeof(err)) < 0) /* sent again with the next call */
        ss_debug("%s", err);
}

/* A flush round begun: the offsets committed so far are covered by it once all its customers
 * are sent and acknowledged. At-least-once sends `slice` of them now and the rest with the
 * batches that follow (send_slice); exactly-once sends all of them at once, in MULTI/EXEC with
 * the changelog checkpoint. */
static void send_changes(ss_state_t *s, size_t slice) {
    char err[512];
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    __atomic_add_fetch(&s->metrics->flushes, 1, __ATOMIC_RELAXED);
    offsets_move(&s->covered, &s->pending);
    if (!s->changelog) {
        ss_store_begin_flush(s->store);
        send_slice(s, slice);
        return;
    }
    ss_cache_queue_command(s->cache, 1, multi, NULL);
    size_t n = ss_store_take_dirty(s->store, write_evicted, s);
#ifdef SS_FAILPOINTS
    if (n > 0 && ss_cache_send(s->cache, err, sizeof(err)) == 0)
        ss_failpoint("state.during-flush"); /* sent without their EXEC (exactly-once) */
#endif
    ss_changelog_queue_checkpoint(s->changelog, s->cache);
    ss_cache_queue_command(s->cache, 1, exec, NULL);
    __atomic_add_fetch(&s->metrics->flushed_customers, (long)n, __ATOMIC_RELAXED);
    if (ss_cache_send(s->cache, err, sizeof(err)) < 0) /* sent again with the next call */
        ss_debug("%s", err);
}

/* A flush: the round before finished and acknowledged (its offsets stored), then a round
 * begun with `slice` customers sent; with `wait`, all of them, acknowledged. Returns 0, 1
 * (degraded), SS_ERR_STOPPED or SS_ERR_NOMEM. */
static int flush(ss_state_t *s, int wait, size_t slice) {
    int rc = 0;
    if (ss_store_flushing(s->store))
        send_slice(s, SIZE_MAX);
    if (ss_cache_pending(s->cache) > 0 && (rc = with_policy(s, op_sync)) < 0)
        return rc;
    store_covered(s); /* acknowledged, or given up (degraded) */
    s->next_flush = ss_mono_ms() + s->cfg->state_flush_interval_ms;
    if (s->writes)
        send_changes(s, wait ? SIZE_MAX : slice);
    else
        offsets_move(&s->covered, &s->pending);
    if (wait || (ss_cache_pending(s->cache) == 0 && !ss_store_flushing(s->store))) {
        if (ss_cache_pending(s->cache) > 0 && (rc = with_policy(s, op_sync)) < 0)
            return rc;
        store_covered(s);
    }
    return rc;
}

/* After a batch's changes are in the store: a flush when one is due, else the next slice of
 * the round begun. */
static int flush_step(ss_state_t *s, size_t batch_customers) {
    size_t slice = 2 * batch_customers > FLUSH_SLICE_MIN ? 2 * batch_customers : FLUSH_SLICE_MIN;
    if (s->cfg->state_flush_interval_ms == 0 || ss_mono_ms() >= s->next_flush)
        return flush(s, s->cfg->state_flush_interval_ms == 0, slice);
    if (ss_store_flushing(s->store))
        send_slice(s, slice);
    return 0;
}

/* shared: the batch's customers written back now, and its offsets stored once acknowledged */
static int commit_shared(ss_state_t *s, const ss_batch_t *b) {
    if (s->writes)
        for (size_t u = 0; u < b->n_u; u++)
            if (!b->u_dead[u])
                ss_cache_queue_write(s->cache, b->u_ids[u], b->u_lens[u], b->state + u * b->nf,
                                     b->changed + u * b->nf);
    return ss_cache_pending(s->cache) > 0 ? with_policy(s, op_sync) : 0;
}

/* Exactly-once: the committed transaction's customers become the known ones. */
static int commit_staged(ss_state_t *s) {
    sending_t x = {.s = s};
    if (s->changelog)
        ss_changelog_committed(s->changelog);
    ss_store_each(s->staged, keep_one, &x);
    ss_store_clear(s->staged);
    if (x.rc < 0) {
        ss_error("state: out of memory in the local store");
        return x.rc;
    }
    show_store(s);
    return flush_step(s, 0);
}

int ss_state_acked(ss_state_t *s, const rd_kafka_topic_partition_list_t *offsets) {
    for (int i = 0; i < offsets->cnt; i++)
        if (offsets_add(&s->pending, offsets->elems[i].partition, offsets->elems[i].offset) < 0)
            return SS_ERR_NOMEM;
    if (!s->store) { /* shared: the batches' writes were acknowledged when committed */
        offsets_move(&s->covered, &s->pending);
        store_covered(s);
    }
    return 0;
}

int ss_state_commit(ss_state_t *s, const ss_batch_t *b) {
    if (s->staged)
        return commit_staged(s);
    if (!s->store)
        return commit_shared(s, b);
    for (size_t u = 0; u < b->n_u; u++) {
        if (b->u_dead[u])
            continue;
        if (ss_store_put(s->store, b->u_ids[u], b->u_lens[u], b->u_part[u], b->state + u * b->nf,
                         s->writes ? b->changed + u * b->nf : NULL) < 0) {
            ss_error("state: out of memory in the local store");
            return SS_ERR_NOMEM;
        }
    }
    show_store(s);
    return flush_step(s, b->n_u);
}

int ss_state_idle(ss_state_t *s) {
    int waiting = ss_cache_pending(s->cache) > 0 || (s->store && ss_store_dirty(s->store) > 0);
    for (int32_t p = 0; !waiting && p < s->pending.n; p++)
        waiting = s->pending.next[p] >= 0;
    if (!waiting || !s->store || ss_mono_ms() < s->next_flush)
        return 0;
    int rc = flush(s, 1, SIZE_MAX);
    return rc == SS_ERR_STOPPED || rc == SS_ERR_CONFIG ? rc : 0;
}

int ss_state_flush(ss_state_t *s) {
    if (!s->store)
        return ss_cache_pending(s->cache) > 0 ? with_policy(s, op_sync) : 0;
    return flush(s, 1, SIZE_MAX);
}

void ss_state_drop(ss_state_t *s, const rd_kafka_topic_partition_list_t *parts) {
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (s->store)
            ss_store_drop_partition(s->store, p);
        if (p < s->pending.n)
            s->pending.next[p] = -1;
        if (p < s->covered.n)
            s->covered.next[p] = -1;
    }
    show_store(s);
}

int ss_state_assign(ss_state_t *s, const rd_kafka_topic_partition_list_t *parts) {
    char err[512];
    if (!s->changelog || parts->cnt == 0)
        return 0;
    int64_t t0 = ss_mono_ms();
    for (;;) {
        long n = ss_changelog_restore(s->changelog, s->cache, parts, s->stopping, s->stop_arg, err,
                                      sizeof(err));
        if (n >= 0) {
            __atomic_add_fetch(&s->metrics->restored_records, n, __ATOMIC_RELAXED);
            ss_log(SS_LOG_INFO,
                   SS_FIELDS(SSF_INT("partitions", parts->cnt), SSF_INT("records", n),
                             SSF_INT("ms", ss_mono_ms() - t0)),
                   "changelog: replayed into redis");
            return 0;
        }
        if (n == SS_ERR_STOPPED || n == SS_ERR_NOMEM)
            return (int)n;
        __atomic_add_fetch(&s->metrics->cache_errors, 1, __ATOMIC_RELAXED);
        if (n == SS_ERR_CONFIG)
            return refused(s, err);
        ss_warn("%s; replaying the changelog again in 1 s (the partitions wait)", err);
        if (s->stopping(s->stop_arg))
            return SS_ERR_STOPPED;
        ss_sleep_ms(1000);
    }
}
