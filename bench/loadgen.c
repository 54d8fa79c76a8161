/* loadgen.c - offered load for streamscore's latency and soak runs: replays the records of
 * one topic into another at a fixed rate, from C, so that the load generator takes little
 * of the CPU that the worker under test and the broker share with it on a small machine.
 *
 * Reads every record of the source topic (each partition from its low to its high
 * watermark at start, or the first -M records) into memory, then produces them to the
 * output topic, each to the partition of the same number and with the same key and value,
 * at -r records/s (paced every millisecond), cycling through them until -d seconds passed
 * or -N records were produced. Each partition's records keep their order and the partitions
 * are interleaved evenly (benchlib.h): replayed in the runs a consumer returns them in, they
 * would load one partition, and one worker thread, at a time. Idempotent producer,
 * acks=all, linger.ms -l (5, librdkafka's default, as an upstream producer would have it:
 * the broker's CPU per record, shared with the worker here, grows fast with shorter
 * lingers). The records carry no timestamp of their own: Kafka stamps them.
 *
 * With -x GO_FILE it stages a backlog instead: every record read (or -N of them) produced
 * unpaced in one Kafka transaction and flushed, then GO_FILE.staged is created; the
 * transaction is committed once GO_FILE exists, so that read_committed consumers
 * (librdkafka's default) see the whole backlog at once, e.g. only after their group is
 * stable.
 *
 *   bench-loadgen -b 127.0.0.1:24092 -s bench-events -o lat-events -r 5000 -d 20
 *   bench-loadgen -b 127.0.0.1:24092 -s bench-events -o w1-events -x build/bench/w1.go
 *
 * Prints one JSON line on stdout at exit: records (produced), delivered, failed, and
 * seconds (first to last produce call) with events_per_s (offered) and cpu_s (of the paced
 * part), or with -x staged_s and
 * committed_ms (wall clock of the commit). Exit 0 when every record was delivered (and
 * committed), 1 on a delivery failure or a Kafka error, 2 on bad usage. SIGTERM/SIGINT stop
 * producing; what was produced is flushed first (a staged transaction is aborted).
 */
#include <librdkafka/rdkafka.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"

static volatile sig_atomic_t sig_stop;
static long delivered, failed; /* served by rd_kafka_poll in the main thread only */

static void on_signal(int sig) {
    (void)sig;
    sig_stop = 1;
}

/* CPU seconds (user + system) of this process so far. */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int64_t mono_ns(void) {
    return bench_mono_ns();
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        if (failed++ == 0)
            fprintf(stderr, "loadgen: delivery failed: %s\n", rd_kafka_err2str(m->err));
    } else {
        delivered++;
    }
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    return bench_conf_set("loadgen", conf, k, v);
}

/* The producer: idempotent, or transactional with `tid`. NULL on an error (reported). */
static rd_kafka_t *producer_new(const char *bootstrap, const char *linger, const char *tid) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", bootstrap) ||
        conf_set(conf, "client.id", "bench-loadgen") || conf_set(conf, "linger.ms", linger) ||
        conf_set(conf, "enable.idempotence", "true") || conf_set(conf, "acks", "all") ||
        (tid && (conf_set(conf, "transactional.id", tid) ||
                 conf_set(conf, "transaction.timeout.ms", "300000")))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "loadgen: producer: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Record `seq` of the cycle, to the partition of its number; waits out a full queue.
 * Returns 0 or -1 (reported). */
static int produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, const bench_records_t *s, long seq) {
    const bench_record_t *r = &s->r[(size_t)seq % s->n];
    while (rd_kafka_produce(rkt, r->partition, RD_KAFKA_MSG_F_COPY,
                            (void *)bench_record_value(s, r), r->val_len, bench_record_key(s, r),
                            r->key_len, NULL) != 0) {
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || sig_stop) {
            fprintf(stderr, "loadgen: produce to '%s': %s\n", rd_kafka_topic_name(rkt),
                    rd_kafka_err2str(e));
            return -1;
        }
        rd_kafka_poll(rk, 1);
    }
    return 0;
}

/* -r: `rate` records/s until `seconds` passed or `count` were produced. */
static int paced(rd_kafka_t *rk, rd_kafka_topic_t *rkt, const bench_records_t *s, double rate,
                 double seconds, long count) {
    long sent = 0;
    int rc = 0;
    double cpu0 = cpu_s();
    int64_t t0 = mono_ns(), last = t0;
    int64_t stop_at = seconds > 0 ? t0 + (int64_t)(seconds * 1e9) : INT64_MAX;
    while (!sig_stop && (count == 0 || sent < count) && mono_ns() < stop_at) {
        long due = (long)((double)(mono_ns() - t0) / 1e9 * rate) + 1;
        if (count && due > count)
            due = count;
        for (; sent < due && !sig_stop; sent++) {
            if (produce_one(rk, rkt, s, sent) < 0) {
                rc = 1;
                goto done;
            }
            last = mono_ns();
        }
        rd_kafka_poll(rk, 0);
        /* sleep to the next millisecond tick */
        int64_t next = t0 + ((mono_ns() - t0) / 1000000 + 1) * 1000000;
        struct timespec ts = {(time_t)(next / 1000000000LL), (long)(next % 1000000000LL)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
done:
    if (rd_kafka_flush(rk, 60000))
        fprintf(stderr, "loadgen: %d record(s) undelivered at exit\n", rd_kafka_outq_len(rk));
    rd_kafka_poll(rk, 0);
    if (failed || delivered != sent)
        rc = 1;
    double secs = (double)(last - t0) / 1e9;
    printf("{\"records\": %ld, \"delivered\": %ld, \"failed\": %ld, \"seconds\": %.3f, "
           "\"events_per_s\": %.1f, \"cpu_s\": %.2f}\n",
           sent, delivered, failed, secs, secs > 0 ? (double)sent / secs : 0.0, cpu_s() - cpu0);
    return rc;
}

/* -x: every record (or the first `count`) in one transaction, committed once `go` exists. */
static int stage(rd_kafka_t *rk, rd_kafka_topic_t *rkt, const bench_records_t *s, long count,
                 const char *go) {
    rd_kafka_error_t *e = rd_kafka_init_transactions(rk, 60000);
    if (!e)
        e = rd_kafka_begin_transaction(rk);
    if (e) {
        fprintf(stderr, "loadgen: transaction: %s\n", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return 1;
    }
    int rc = 1;
    long n = count > 0 ? count : (long)s->n, sent = 0;
    int64_t t0 = mono_ns();
    for (; sent < n && !sig_stop; sent++)
        if (produce_one(rk, rkt, s, sent) < 0)
            goto out;
    rd_kafka_flush(rk, 120000);
    rd_kafka_poll(rk, 0);
    double staged_s = (double)(mono_ns() - t0) / 1e9;
    if (sig_stop || failed || delivered != sent) {
        fprintf(stderr, "loadgen: staging failed: %ld of %ld delivered\n", delivered, sent);
        goto out;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s.staged", go);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "loadgen: cannot create %s\n", path);
        goto out;
    }
    fclose(f);
    fprintf(stderr,
            "loadgen: %ld record(s) staged in an open transaction on %s in %.2f s; "
            "committing once %s exists\n",
            sent, rd_kafka_topic_name(rkt), staged_s, go);
    while (!sig_stop && access(go, F_OK) != 0) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (sig_stop)
        goto out;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    if ((e = rd_kafka_commit_transaction(rk, 60000))) {
        fprintf(stderr, "loadgen: commit: %s\n", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        goto out;
    }
    printf("{\"records\": %ld, \"delivered\": %ld, \"failed\": %ld, \"staged_s\": %.3f, "
           "\"committed_ms\": %lld}\n",
           sent, delivered, failed, staged_s,
           (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000);
    rc = 0;
out:
    if (rc && (e = rd_kafka_abort_transaction(rk, 30000)))
        rd_kafka_error_destroy(e);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench-loadgen -s SOURCE -o OUTPUT -r RATE (-d SECONDS | -N COUNT)\n"
               "                     [-b BOOTSTRAP] [-l LINGER_MS] [-M MAX_SOURCE_RECORDS]\n"
               "       bench-loadgen -s SOURCE -o OUTPUT -x GO_FILE [-N COUNT] [-b BOOTSTRAP]\n"
               "  -b  bootstrap servers (127.0.0.1:19092)\n"
               "  -s  topic whose records are replayed   -o  topic they are produced to\n"
               "  -r  records per second (> 0)           -d  seconds of load   -N  records\n"
               "  -l  the producer's linger.ms (5)       -M  read at most this many (0: all)\n"
               "  -x  stage the records (-N, default all) in one transaction, commit it once\n"
               "      GO_FILE exists\n"
               "Prints one JSON line at exit (records, delivered, failed, ...).\n");
}

int main(int argc, char **argv) {
    const char *bootstrap = "127.0.0.1:19092", *src = NULL, *dst = NULL, *linger = "5";
    const char *go = NULL;
    double rate = 0, seconds = 0;
    long count = 0, max = 0;
    int opt;
    char *end;
    while ((opt = getopt(argc, argv, "b:s:o:r:d:N:l:M:x:h")) != -1) {
        errno = 0;
        switch (opt) {
        case 'b': bootstrap = optarg; break;
        case 's': src = optarg; break;
        case 'o': dst = optarg; break;
        case 'l': linger = optarg; break;
        case 'x': go = optarg; break;
        case 'r':
            rate = strtod(optarg, &end);
            if (*end || !(rate > 0))
                goto bad;
            break;
        case 'd':
            seconds = strtod(optarg, &end);
            if (*end || !(seconds > 0))
                goto bad;
            break;
        case 'N':
            count = strtol(optarg, &end, 10);
            if (*end || errno || count <= 0)
                goto bad;
            break;
        case 'M':
            max = strtol(optarg, &end, 10);
            if (*end || errno || max < 0)
                goto bad;
            break;
        case 'h': usage(stdout); return 0;
        default: goto bad;
        }
    }
    if (optind != argc || !src || !dst || !*src || !*dst)
        goto bad;
    if (go ? (rate > 0 || seconds > 0 || !*go) : (rate <= 0 || (seconds <= 0) == (count <= 0)))
        goto bad;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    bench_records_t s = {0};
    if (bench_records_read("loadgen", bootstrap, src, max, &sig_stop, &s) < 0) {
        bench_records_free(&s);
        return 1;
    }
    bench_records_interleave(&s);
    char tid[256];
    snprintf(tid, sizeof(tid), "bench-loadgen-%s-%ld", dst, (long)getpid());
    rd_kafka_t *rk = producer_new(bootstrap, go ? "5" : linger, go ? tid : NULL);
    if (!rk) {
        bench_records_free(&s);
        return 1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, dst, NULL);
    int rc;
    if (go) {
        rc = stage(rk, rkt, &s, count, go);
    } else {
        fprintf(stderr, "loadgen: %zu record(s) of %s in memory; %s at %.0f/s\n", s.n, src, dst,
                rate);
        rc = paced(rk, rkt, &s, rate, seconds, count);
    }
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    bench_records_free(&s);
    return rc;
bad:
    usage(stderr);
    return 2;
}
