/* metrics.h - what the worker counts and measures, rendered for /metrics in the Prometheus
 * text format. One per process. Counters and histograms are updated by the worker threads
 * with atomics; consumer lag (from librdkafka statistics) is kept under a mutex. */
#ifndef SS_METRICS_H
#define SS_METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* A growable text buffer. */
typedef struct ss_buf {
    char *p;
    size_t len, cap;
    int oom; /* an append failed: the text is incomplete */
} ss_buf_t;

void ss_buf_printf(ss_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ss_buf_free(ss_buf_t *b);
/* Append s escaped as a Prometheus label value (backslash, double quote, newline). */
void ss_buf_label(ss_buf_t *b, const char *s);

#define SS_HIST_MAX 16

/* A histogram with fixed upper bounds. */
typedef struct ss_hist {
    const double *le;
    int n;
    long counts[SS_HIST_MAX + 1]; /* the last one: above every bound */
    double sum;                   /* of the observations, each clamped to [0, SS_HIST_CLAMP] */
} ss_hist_t;

/* An observation below 0 or not a number counts as 0, one above SS_HIST_CLAMP (seconds or
 * records: 31 years) as SS_HIST_CLAMP: a record timestamped in 1970 or in the far future
 * cannot make the sum meaningless. */
#define SS_HIST_CLAMP 1e9

void ss_hist_observe(ss_hist_t *h, double v); /* @locality any thread */

/* A thread's private tally of many observations into a histogram, added to it in one go:
 * per-record measures cost no shared-memory traffic per record. */
typedef struct ss_hist_tally {
    long counts[SS_HIST_MAX + 1];
    double sum;
} ss_hist_tally_t;

void ss_hist_tally(const ss_hist_t *h, ss_hist_tally_t *t, double v); /* no atomics */
void ss_hist_add_tally(ss_hist_t *h, const ss_hist_tally_t *t);       /* @locality any */

/* Dead-letter reasons with a counter of their own (others count as "other"). */
#define SS_DLQ_REASONS 13

/* Redis error replies counted by name (others count as "other"). */
#define SS_REDIS_ERRORS 12

/* The statuses the score API answers with (score_api.c), counted apart. */
#define SS_SCORE_CODES 9

typedef struct ss_metrics {
    /* counters, updated with __atomic builtins */
    long consumed, scored, produced, dead_lettered, cache_errors, batches, kafka_errors;
    long degraded;  /* scored without cached features (redis.on.error = degrade) */
    long explained; /* predictions explained (explain.top.k) */
    long rebalances, reloads_ok, reloads_failed;
    /* schema registry: requests by result, retries, writer schemas known */
    long registry_ok, registry_not_found, registry_failed, registry_retries, writer_schemas;
    long dlq_by_reason[SS_DLQ_REASONS];
    /* the local feature stores of every worker thread (state.mode = owned) */
    long store_hits, store_misses, store_evictions, flushes, flushed_customers, restored_records;
    long store_customers, store_bytes;        /* gauges: sums of every thread's */
    long redis_reply_errors[SS_REDIS_ERRORS]; /* error replies, by the error's name */
    long redis_dropped_writes;                /* writes to a key that is not a hash */
    ss_hist_t batch_size, predict_seconds, event_latency_seconds, redis_seconds, explain_seconds;
    long score_requests[SS_SCORE_CODES]; /* the score API's answers, by HTTP status */
    ss_hist_t score_seconds;

    pthread_mutex_t lock; /* guards the lag table */
    struct ss_lag {
        char topic[128];
        int32_t partition;
        int64_t lag;
        int owner; /* the worker thread whose consumer reported it */
    } * lag;
    size_t n_lag, cap_lag;
} ss_metrics_t;

/* Set up a zeroed ss_metrics_t (bounds of the histograms, the lock). */
void ss_metrics_init(ss_metrics_t *m);

/* A score API answer with HTTP `status` (one of SS_SCORE_CODES kinds; any other counts as
 * 500) that took `seconds`. @locality any thread */
void ss_metrics_score_request(ss_metrics_t *m, int status, double seconds);
void ss_metrics_destroy(ss_metrics_t *m);

/* Count one dead letter for `reason` (a ss_decode_reason() name, "non_finite_score" or
 * "feature_key_wrong_type"). */
void ss_metrics_dead_letter(ss_metrics_t *m, const char *reason);

/* Count one Redis error reply whose name (its first word) is name[0..len). @locality any */
void ss_metrics_redis_reply_error(ss_metrics_t *m, const char *name, size_t len);

/* Replace the lag of the partitions that consumer `owner` holds, from one librdkafka
 * statistics JSON document. @locality the consumer's polling thread */
void ss_metrics_update_lag(ss_metrics_t *m, int owner, const char *json, size_t len);

/* Append every counter, histogram and the lag gauges in the Prometheus text format. */
void ss_metrics_render(ss_metrics_t *m, ss_buf_t *out);

#endif
