/* metrics.c - the worker's counters, histograms and consumer lag, and their rendering in the
 * Prometheus text format (version 0.0.4). Updates are lock-free except the lag table,
 * which changes once per librdkafka statistics interval. */
#include "metrics.h"

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ss_buf_printf(ss_buf_t *b, const char *fmt, ...) {
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *g = realloc(b->p, cap);
        if (!g) {
            b->oom = 1;
            return;
        }
        b->p = g;
        b->cap = cap;
    }
}

void ss_buf_label(ss_buf_t *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            ss_buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            ss_buf_printf(b, "\\n");
        else
            ss_buf_printf(b, "%c", *s);
    }
}

void ss_buf_free(ss_buf_t *b) {
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static const double batch_le[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
static const double predict_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                    0.01,   0.025,   0.05,   0.1,   0.25,   1};
static const double latency_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1,     2.5,  5,     10,   30,  60};
static const double redis_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                  0.01,   0.025,   0.05,   0.1,   0.25,   1};

static const char *dlq_reasons[SS_DLQ_REASONS] = {"too_large",
                                                  "bad_magic",
                                                  "unknown_schema",
                                                  "bad_avro",
                                                  "no_customer_id",
                                                  "bad_type",
                                                  "unresolvable_schema",
                                                  "registry_unavailable",
                                                  "unknown_category",
                                                  "non_finite_score",
                                                  "feature_key_wrong_type",
                                                  "unknown",
                                                  "other"};

static const int score_codes[SS_SCORE_CODES] = {200, 400, 401, 403, 404, 405, 413, 500, 503};

static const char *redis_errors[SS_REDIS_ERRORS] = {
    "ERR",     "WRONGTYPE",  "READONLY", "OOM",  "NOAUTH",    "NOPERM",
    "LOADING", "MASTERDOWN", "MISCONF",  "BUSY", "EXECABORT", "other"};

/* The histograms of ss_metrics_t: where each is, its bounds, how it renders. */
#define HIST(field, bounds, nm, hp)                                                                \
    { offsetof(ss_metrics_t, field), bounds, (int)(sizeof(bounds) / sizeof(*bounds)), nm, hp }
static const struct hist_def {
    size_t offset;
    const double *le;
    int n;
    const char *name, *help;
} hist_defs[] = {
    HIST(batch_size, batch_le, "streamscore_batch_size", "Records per batch."),
    HIST(predict_seconds, predict_le, "streamscore_predict_seconds",
         "Time of one batch's model call."),
    HIST(event_latency_seconds, latency_le, "streamscore_event_latency_seconds",
         "From an input record's Kafka timestamp to its output's acknowledgement."),
    HIST(redis_seconds, redis_le, "streamscore_redis_seconds",
         "Time of one Redis pipeline (a batch's reads or writes)."),
    HIST(explain_seconds, predict_le, "streamscore_explain_seconds",
         "Time of one batch's explanations (explain.top.k): its contributions and top-k."),
    HIST(score_seconds, predict_le, "streamscore_score_request_seconds",
         "Time of one score API request (score.listen), from its arrival to its answer."),
};
#define N_HISTS (sizeof(hist_defs) / sizeof(*hist_defs))

static ss_hist_t *hist_at(ss_metrics_t *m, const struct hist_def *def) {
    return (ss_hist_t *)((char *)m + def->offset);
}

void ss_metrics_init(ss_metrics_t *m) {
    for (size_t i = 0; i < N_HISTS; i++) {
        ss_hist_t *h = hist_at(m, &hist_defs[i]);
        h->le = hist_defs[i].le;
        h->n = hist_defs[i].n;
    }
    pthread_mutex_init(&m->lock, NULL);
}

void ss_metrics_score_request(ss_metrics_t *m, int status, double seconds) {
    int i = 7; /* 500 */
    for (int k = 0; k < SS_SCORE_CODES; k++)
        if (score_codes[k] == status)
            i = k;
    __atomic_add_fetch(&m->score_requests[i], 1, __ATOMIC_RELAXED);
    ss_hist_observe(&m->score_seconds, seconds);
}

void ss_metrics_destroy(ss_metrics_t *m) {
    free(m->lag);
    m->lag = NULL;
    m->n_lag = m->cap_lag = 0;
    pthread_mutex_destroy(&m->lock);
}

static int bucket_of(const ss_hist_t *h, double v) {
    int i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    return i;
}

static double clamped(double v) {
    return v > 0 ? (v < SS_HIST_CLAMP ? v : SS_HIST_CLAMP) : 0; /* NaN: 0 */
}

static void add_sum(ss_hist_t *h, double v) {
    double old, sum;
    __atomic_load(&h->sum, &old, __ATOMIC_RELAXED);
    do
        sum = old + v;
    while (!__atomic_compare_exchange(&h->sum, &old, &sum, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

void ss_hist_observe(ss_hist_t *h, double v) {
    v = clamped(v);
    __atomic_add_fetch(&h->counts[bucket_of(h, v)], 1, __ATOMIC_RELAXED);
    add_sum(h, v);
}

void ss_hist_tally(const ss_hist_t *h, ss_hist_tally_t *t, double v) {
    v = clamped(v);
    t->counts[bucket_of(h, v)]++;
    t->sum += v;
}

void ss_hist_add_tally(ss_hist_t *h, const ss_hist_tally_t *t) {
    for (int i = 0; i <= h->n; i++)
        if (t->counts[i])
            __atomic_add_fetch(&h->counts[i], t->counts[i], __ATOMIC_RELAXED);
    add_sum(h, t->sum);
}

void ss_metrics_dead_letter(ss_metrics_t *m, const char *reason) {
    int i = 0;
    while (i < SS_DLQ_REASONS - 1 && strcmp(dlq_reasons[i], reason) != 0)
        i++;
    __atomic_add_fetch(&m->dlq_by_reason[i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&m->dead_lettered, 1, __ATOMIC_RELAXED);
}

void ss_metrics_redis_reply_error(ss_metrics_t *m, const char *name, size_t len) {
    int i = 0;
    while (i < SS_REDIS_ERRORS - 1 &&
           (strlen(redis_errors[i]) != len || memcmp(redis_errors[i], name, len) != 0))
        i++;
    __atomic_add_fetch(&m->redis_reply_errors[i], 1, __ATOMIC_RELAXED);
}

/* Drop owner's entries, then add what its statistics say it holds now. */
void ss_metrics_update_lag(ss_metrics_t *m, int owner, const char *json, size_t len) {
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, 0, &jerr);
    json_t *topics = doc ? json_object_get(doc, "topics") : NULL;
    pthread_mutex_lock(&m->lock);
    size_t kept = 0;
    for (size_t i = 0; i < m->n_lag; i++)
        if (m->lag[i].owner != owner)
            m->lag[kept++] = m->lag[i];
    m->n_lag = kept;
    const char *tname;
    json_t *t;
    json_object_foreach(topics, tname, t) {
        const char *pname;
        json_t *p;
        json_object_foreach(json_object_get(t, "partitions"), pname, p) {
            long part = strtol(pname, NULL, 10);
            json_t *lag = json_object_get(p, "consumer_lag");
            if (part < 0 || !json_is_true(json_object_get(p, "desired")) || !json_is_integer(lag) ||
                json_integer_value(lag) < 0)
                continue;
            if (m->n_lag == m->cap_lag) {
                size_t cap = m->cap_lag ? m->cap_lag * 2 : 64;
                struct ss_lag *g = realloc(m->lag, cap * sizeof(*g));
                if (!g)
                    break;
                m->lag = g;
                m->cap_lag = cap;
            }
            struct ss_lag *e = &m->lag[m->n_lag++];
            snprintf(e->topic, sizeof(e->topic), "%s", tname);
            e->partition = (int32_t)part;
            e->lag = json_integer_value(lag);
            e->owner = owner;
        }
    }
    pthread_mutex_unlock(&m->lock);
    json_decref(doc);
}

static void counter(ss_buf_t *b, const char *name, const char *help, long *v) {
    ss_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %ld\n", name, help, name, name,
                  __atomic_load_n(v, __ATOMIC_RELAXED));
}

static void gauge(ss_buf_t *b, const char *name, const char *help, long *v) {
    ss_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %ld\n", name, help, name, name,
                  __atomic_load_n(v, __ATOMIC_RELAXED));
}

/* The local feature stores (docs/state.md). */
static void render_state(ss_metrics_t *m, ss_buf_t *b) {
    counter(b, "streamscore_state_store_hits_total",
            "Batch customers found in the worker threads' local stores.", &m->store_hits);
    counter(b, "streamscore_state_store_misses_total",
            "Batch customers not in the local stores, read from Redis.", &m->store_misses);
    counter(b, "streamscore_state_store_evictions_total",
            "Customers evicted from the local stores (state.store.max.customers).",
            &m->store_evictions);
    gauge(b, "streamscore_state_store_customers", "Customers held in the local stores.",
          &m->store_customers);
    gauge(b, "streamscore_state_store_bytes", "Memory held by the local stores.", &m->store_bytes);
    counter(b, "streamscore_state_flushes_total", "Flushes of changed features to Redis.",
            &m->flushes);
    counter(b, "streamscore_state_flushed_customers_total",
            "Customers written to Redis by the flushes (one HSET and EXPIRE each).",
            &m->flushed_customers);
    counter(b, "streamscore_state_restored_records_total",
            "Changelog records replayed into Redis when partitions were assigned "
            "(exactly-once).",
            &m->restored_records);
}

static void histogram(ss_buf_t *b, const char *name, const char *help, ss_hist_t *h) {
    ss_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    long cum = 0;
    for (int i = 0; i <= h->n; i++) {
        cum += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
        if (i < h->n)
            ss_buf_printf(b, "%s_bucket{le=\"%g\"} %ld\n", name, h->le[i], cum);
        else
            ss_buf_printf(b, "%s_bucket{le=\"+Inf\"} %ld\n", name, cum);
    }
    double sum;
    __atomic_load(&h->sum, &sum, __ATOMIC_RELAXED);
    ss_buf_printf(b, "%s_sum %.9g\n%s_count %ld\n", name, sum, name, cum);
}

void ss_metrics_render(ss_metrics_t *m, ss_buf_t *b) {
    counter(b, "streamscore_records_consumed_total", "Records read from the input topic.",
            &m->consumed);
    counter(b, "streamscore_records_scored_total", "Records scored by the model.", &m->scored);
    counter(b, "streamscore_records_produced_total",
            "Predictions (or shadow results) acknowledged by Kafka or written to the file.",
            &m->produced);
    counter(b, "streamscore_records_degraded_total",
            "Records scored without cached features (redis.on.error = degrade).", &m->degraded);
    counter(b, "streamscore_predictions_explained_total",
            "Predictions explained with their top contributions (explain.top.k).", &m->explained);
    ss_buf_printf(b, "# HELP streamscore_records_dead_lettered_total Records sent to the "
                     "dead-letter topic, by reason.\n"
                     "# TYPE streamscore_records_dead_lettered_total counter\n");
    for (int i = 0; i < SS_DLQ_REASONS; i++)
        ss_buf_printf(b, "streamscore_records_dead_lettered_total{reason=\"%s\"} %ld\n",
                      dlq_reasons[i], __atomic_load_n(&m->dlq_by_reason[i], __ATOMIC_RELAXED));
    counter(b, "streamscore_batches_total", "Batches completed (outputs acknowledged).",
            &m->batches);
    counter(b, "streamscore_redis_errors_total", "Failed Redis round trips.", &m->cache_errors);
    ss_buf_printf(b, "# HELP streamscore_redis_reply_errors_total Error replies from Redis, by "
                     "the error's name.\n"
                     "# TYPE streamscore_redis_reply_errors_total counter\n");
    for (int i = 0; i < SS_REDIS_ERRORS; i++)
        ss_buf_printf(b, "streamscore_redis_reply_errors_total{error=\"%s\"} %ld\n",
                      redis_errors[i],
                      __atomic_load_n(&m->redis_reply_errors[i], __ATOMIC_RELAXED));
    counter(b, "streamscore_redis_dropped_writes_total",
            "Writes to Redis dropped because their key is not a hash (WRONGTYPE).",
            &m->redis_dropped_writes);
    render_state(m, b);
    counter(b, "streamscore_kafka_errors_total", "Errors reported by the consumers.",
            &m->kafka_errors);
    counter(b, "streamscore_rebalances_total",
            "Partition assignments and revocations seen by the worker's consumers.",
            &m->rebalances);
    ss_buf_printf(b,
                  "# HELP streamscore_model_reloads_total Model reloads, by result.\n"
                  "# TYPE streamscore_model_reloads_total counter\n"
                  "streamscore_model_reloads_total{result=\"ok\"} %ld\n"
                  "streamscore_model_reloads_total{result=\"failed\"} %ld\n",
                  __atomic_load_n(&m->reloads_ok, __ATOMIC_RELAXED),
                  __atomic_load_n(&m->reloads_failed, __ATOMIC_RELAXED));
    ss_buf_printf(b,
                  "# HELP streamscore_schema_registry_requests_total Schema registry requests, by "
                  "result (error: no usable answer after the retries, or refused).\n"
                  "# TYPE streamscore_schema_registry_requests_total counter\n"
                  "streamscore_schema_registry_requests_total{result=\"ok\"} %ld\n"
                  "streamscore_schema_registry_requests_total{result=\"not_found\"} %ld\n"
                  "streamscore_schema_registry_requests_total{result=\"error\"} %ld\n",
                  __atomic_load_n(&m->registry_ok, __ATOMIC_RELAXED),
                  __atomic_load_n(&m->registry_not_found, __ATOMIC_RELAXED),
                  __atomic_load_n(&m->registry_failed, __ATOMIC_RELAXED));
    counter(b, "streamscore_schema_registry_retries_total",
            "Schema registry requests retried after a failed attempt.", &m->registry_retries);
    ss_buf_printf(b,
                  "# HELP streamscore_writer_schemas Writer schemas known to the decoder "
                  "(input.schema.map and fetched from the registry).\n"
                  "# TYPE streamscore_writer_schemas gauge\nstreamscore_writer_schemas %ld\n",
                  __atomic_load_n(&m->writer_schemas, __ATOMIC_RELAXED));
    ss_buf_printf(b, "# HELP streamscore_score_requests_total Score API requests "
                     "(score.listen), by the HTTP status answered.\n"
                     "# TYPE streamscore_score_requests_total counter\n");
    for (int i = 0; i < SS_SCORE_CODES; i++)
        ss_buf_printf(b, "streamscore_score_requests_total{code=\"%d\"} %ld\n", score_codes[i],
                      __atomic_load_n(&m->score_requests[i], __ATOMIC_RELAXED));
    for (size_t i = 0; i < N_HISTS; i++)
        histogram(b, hist_defs[i].name, hist_defs[i].help, hist_at(m, &hist_defs[i]));
    ss_buf_printf(b, "# HELP streamscore_consumer_lag Records behind the end of the partition "
                     "(librdkafka statistics), per assigned partition.\n"
                     "# TYPE streamscore_consumer_lag gauge\n");
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_lag; i++)
        ss_buf_printf(b, "streamscore_consumer_lag{topic=\"%s\",partition=\"%d\"} %lld\n",
                      m->lag[i].topic, (int)m->lag[i].partition, (long long)m->lag[i].lag);
    pthread_mutex_unlock(&m->lock);
}
