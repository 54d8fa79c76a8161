/* benchlib.h - what the bench programs share: a librdkafka property set with a message, the
 * monotonic clock, and a topic's records read into memory (replayed by bench-loadgen, timed
 * by bench-components). */
#ifndef BENCH_BENCHLIB_H
#define BENCH_BENCHLIB_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* rd_kafka_conf_set, or -1 with "prog: key=value: why" on stderr. */
int bench_conf_set(const char *prog, rd_kafka_conf_t *conf, const char *key, const char *value);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_mono_ns(void);

typedef struct bench_record {
    int32_t partition;
    int64_t offset;
    size_t key_off, key_len, val_off, val_len; /* in the arena */
    double at;  /* bench_records_interleave: position in the cycle, 0 .. 1 */
    size_t seq; /* order read */
} bench_record_t;

typedef struct bench_records {
    bench_record_t *r;
    size_t n, cap;
    char *arena;
    size_t len, acap;
} bench_records_t;

/* Every record of `topic` up to its high watermarks when called (the first `max`, 0: all),
 * read with an assigned consumer (no group membership, nothing committed), in 120 s at
 * most. Returns 0, or -1 with the reason on stderr (prefixed by `prog`). `*stop` (may be
 * NULL) ends the read early, with -1. */
int bench_records_read(const char *prog, const char *bootstrap, const char *topic, long max,
                       const volatile int *stop, bench_records_t *s);

/* Spreads every partition evenly over the sequence, each in its own order: record i of a
 * partition of n records goes to position (i + 0.5) / n. A consumer returns a partition's
 * records in long runs; replayed as read, they would load one partition at a time. */
void bench_records_interleave(bench_records_t *s);

static inline const char *bench_record_value(const bench_records_t *s, const bench_record_t *r) {
    return s->arena + r->val_off;
}
static inline const char *bench_record_key(const bench_records_t *s, const bench_record_t *r) {
    return s->arena + r->key_off;
}

void bench_records_free(bench_records_t *s);

#endif
