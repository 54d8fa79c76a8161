/* benchlib.c - the bench programs' shared pieces (benchlib.h). A topic's records are read
 * once with an assigned consumer, kept in one arena, optionally interleaved across
 * partitions. */
#include "benchlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_conf_set(const char *prog, rd_kafka_conf_t *conf, const char *key, const char *value) {
    char err[256];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s: %s=%s: %s\n", prog, key, value, err);
        return -1;
    }
    return 0;
}

int64_t bench_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int put(bench_records_t *s, const rd_kafka_message_t *m) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        bench_record_t *g = realloc(s->r, cap * sizeof(*g));
        if (!g)
            return -1;
        s->r = g;
        s->cap = cap;
    }
    size_t need = s->len + m->key_len + m->len;
    if (need > s->acap) {
        size_t cap = s->acap ? s->acap : 1 << 20;
        while (cap < need)
            cap *= 2;
        char *g = realloc(s->arena, cap);
        if (!g)
            return -1;
        s->arena = g;
        s->acap = cap;
    }
    bench_record_t *r = &s->r[s->n];
    memset(r, 0, sizeof(*r));
    r->seq = s->n++;
    r->partition = m->partition;
    r->offset = m->offset;
    r->key_off = s->len;
    r->key_len = m->key_len;
    if (m->key_len)
        memcpy(s->arena + s->len, m->key, m->key_len);
    s->len += m->key_len;
    r->val_off = s->len;
    r->val_len = m->len;
    if (m->len)
        memcpy(s->arena + s->len, m->payload, m->len);
    s->len += m->len;
    return 0;
}

int bench_records_read(const char *prog, const char *bootstrap, const char *topic, long max,
                       const volatile int *stop, bench_records_t *s) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (bench_conf_set(prog, conf, "bootstrap.servers", bootstrap) ||
        bench_conf_set(prog, conf, "group.id", "bench-records-reader") ||
        bench_conf_set(prog, conf, "enable.auto.commit", "false")) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "%s: consumer: %s\n", prog, err);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    int rc = -1;
    int64_t *high = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "%s: no topic '%s': %s\n", prog, topic,
                rd_kafka_err2str(e               ? e
                                 : md->topic_cnt ? md->topics[0].err
                                                 : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
        goto out;
    }
    int np = md->topics[0].partition_cnt;
    high = calloc((size_t)np, sizeof(*high));
    long left = 0;
    for (int i = 0; high && i < np; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo, hi;
        if (p < 0 || p >= np ||
            (e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000))) {
            fprintf(stderr, "%s: watermarks of %s [%d]: %s\n", prog, topic, p, rd_kafka_err2str(e));
            goto out;
        }
        high[p] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(parts, topic, p)->offset = lo;
            left += (long)(hi - lo);
        }
    }
    if (max > 0 && left > max)
        left = max;
    if (!high || left == 0) {
        fprintf(stderr, "%s: '%s' holds no record\n", prog, topic);
        goto out;
    }
    if ((e = rd_kafka_assign(rk, parts))) {
        fprintf(stderr, "%s: assign: %s\n", prog, rd_kafka_err2str(e));
        goto out;
    }
    int64_t deadline = bench_mono_ns() + 120LL * 1000000000LL;
    while (left > 0 && !(stop && *stop)) {
        if (bench_mono_ns() > deadline) {
            fprintf(stderr, "%s: reading '%s' timed out with %ld record(s) left\n", prog, topic,
                    left);
            goto out;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        int bad = 0;
        if (m->err)
            fprintf(stderr, "%s: consumer: %s\n", prog, rd_kafka_message_errstr(m));
        else if (m->partition < np && m->offset < high[m->partition]) {
            if (put(s, m) < 0) {
                fprintf(stderr, "%s: out of memory\n", prog);
                bad = 1;
            }
            left--;
        }
        rd_kafka_message_destroy(m);
        if (bad)
            goto out;
    }
    rc = stop && *stop ? -1 : 0;
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_destroy(parts);
    free(high);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

static int by_position(const void *a, const void *b) {
    const bench_record_t *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void bench_records_interleave(bench_records_t *s) {
    int32_t maxp = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->r[i].partition > maxp)
            maxp = s->r[i].partition;
    size_t *count = calloc((size_t)maxp + 1, sizeof(*count));
    size_t *rank = calloc((size_t)maxp + 1, sizeof(*rank));
    if (count && rank) {
        for (size_t i = 0; i < s->n; i++)
            count[s->r[i].partition]++;
        for (size_t i = 0; i < s->n; i++) { /* in the order read: each partition's own */
            bench_record_t *r = &s->r[i];
            r->at = ((double)rank[r->partition]++ + 0.5) / (double)count[r->partition];
        }
        qsort(s->r, s->n, sizeof(*s->r), by_position);
    } /* out of memory: the order read */
    free(count);
    free(rank);
}

void bench_records_free(bench_records_t *s) {
    free(s->r);
    free(s->arena);
    memset(s, 0, sizeof(*s));
}
