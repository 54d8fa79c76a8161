/* passthrough.c - the Kafka ceiling of streamscore: the worker's Kafka path with no work.
 *
 * One consumer per thread in one group (cooperative-sticky, enable.auto.offset.store=false,
 * auto-commit of stored offsets every 1 s, auto.offset.reset=earliest), one shared
 * idempotent acks=all producer (linger.ms=1, the worker's default) served by a poll thread. Each
 * thread collects a batch like the worker (rd_kafka_consumer_poll, then what else is queued by
 * rd_kafka_consume_batch_queue, up to -n records or -w ms after the first), produces every record
 * unchanged (same value bytes, key = the record's key) to the output topic, waits until every
 * record of the batch is acknowledged, then stores the batch's offsets. On a revocation the stored
 * offsets are committed synchronously; records of partitions revoked while a batch was collected
 * are dropped from it.
 *
 *   cc -O2 -Wall -Wextra -o build/bench-passthrough bench/passthrough.c \
 *      $(pkg-config --cflags --libs rdkafka) -lpthread
 *   build/bench-passthrough -b 127.0.0.1:19092 -i events -o out -g pt-1 -t 2 -N 200000
 *
 * Exits 0 once N records (-N, 0: no limit) were produced and acknowledged, or on
 * SIGTERM/SIGINT after finishing the batch in hand; 1 when a delivery failed (that batch's
 * offsets are not stored) or on a Kafka error at start; 2 on bad usage. At exit prints one
 * JSON line on stdout: records (acknowledged), seconds (first record consumed to the last
 * acknowledgement), events_per_s. Diagnostics go to stderr.
 */
#include <librdkafka/rdkafka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"

static const char *bootstrap = "127.0.0.1:19092";
static const char *in_topic, *out_topic, *group;
static int n_threads = 1;
static long batch_max = 256, wait_ms = 5, stop_after = 0;

static volatile sig_atomic_t sig_stop;
static int stop_now;     /* atomic: -N reached, a signal, or a failure */
static int failed;       /* atomic */
static long acked;       /* atomic: records produced and acknowledged */
static int64_t first_ns; /* atomic: first record consumed (CLOCK_MONOTONIC), 0 = none yet */
static int64_t last_ns;  /* atomic: latest batch fully acknowledged */

static rd_kafka_t *producer;
static int producer_stop; /* atomic */

typedef struct ack {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long pending, failed;
    rd_kafka_resp_err_t first_err;
} ack_t;

typedef struct worker {
    int index;
    pthread_t tid;
    rd_kafka_t *consumer;
    rd_kafka_queue_t *queue; /* the consumer's queue: what is queued, taken in one call */
    rd_kafka_message_t **msgs;
    size_t n_msgs;
    ack_t ack;
    int rc;
} worker_t;

static int64_t mono_ns(void) {
    return bench_mono_ns();
}

static int stopping(void) {
    return sig_stop || __atomic_load_n(&stop_now, __ATOMIC_ACQUIRE);
}

static void on_signal(int sig) {
    (void)sig;
    sig_stop = 1;
}

/* ------------------------------------------------------------------ producer */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    ack_t *a = m->_private;
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    if (m->err) {
        if (!a->failed)
            a->first_err = m->err;
        a->failed++;
    }
    if (--a->pending == 0)
        pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)opaque;
    fprintf(stderr, "passthrough: %s: %s: %s\n", rd_kafka_name(rk), rd_kafka_err2name(err), reason);
}

static void *producer_poll_main(void *arg) {
    (void)arg;
    while (!__atomic_load_n(&producer_stop, __ATOMIC_ACQUIRE))
        rd_kafka_poll(producer, 50);
    return NULL;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    return bench_conf_set("passthrough", conf, k, v);
}

static rd_kafka_t *producer_new(void) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", bootstrap) ||
        conf_set(conf, "client.id", "bench-passthrough") || conf_set(conf, "linger.ms", "1") ||
        conf_set(conf, "enable.idempotence", "true") || conf_set(conf, "acks", "all")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "passthrough: producer: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Waits until every record of the batch is acknowledged. */
static void ack_wait(ack_t *a) {
    pthread_mutex_lock(&a->lock);
    while (a->pending > 0)
        pthread_cond_wait(&a->cond, &a->lock);
    pthread_mutex_unlock(&a->lock);
}

static int send_record(const rd_kafka_message_t *m, ack_t *a) {
    pthread_mutex_lock(&a->lock);
    a->pending++;
    pthread_mutex_unlock(&a->lock);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(out_topic), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(a), RD_KAFKA_V_END);
        if (!err)
            return 0;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL); /* the poll thread drains the queue */
            continue;
        }
        pthread_mutex_lock(&a->lock);
        a->pending--;
        pthread_mutex_unlock(&a->lock);
        fprintf(stderr, "passthrough: produce to '%s': %s\n", out_topic, rd_kafka_err2str(err));
        return -1;
    }
}

/* ------------------------------------------------------------------ consumers */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    (void)opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
    } else {
        /* hand over what is safe: the offsets stored after acknowledgement, synchronously */
        if (!rd_kafka_assignment_lost(rk)) {
            rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, 0);
            if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
                fprintf(stderr, "passthrough: commit on revocation: %s\n", rd_kafka_err2str(ce));
        }
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ret = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        fprintf(stderr, "passthrough: rebalance: %s\n", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        fprintf(stderr, "passthrough: rebalance: %s\n", rd_kafka_err2str(ret));
    }
}

static rd_kafka_t *consumer_new(worker_t *w) {
    char err[256], client_id[64];
    snprintf(client_id, sizeof(client_id), "bench-passthrough-%d", w->index);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", bootstrap) || conf_set(conf, "group.id", group) ||
        conf_set(conf, "client.id", client_id) || conf_set(conf, "auto.offset.reset", "earliest") ||
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky") ||
        conf_set(conf, "auto.commit.interval.ms", "1000") ||
        conf_set(conf, "enable.auto.offset.store", "false") ||
        conf_set(conf, "enable.auto.commit", "true")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, w);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "passthrough: consumer: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, in_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        fprintf(stderr, "passthrough: subscribe to '%s': %s\n", in_topic, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

/* Leaves the group after committing the stored offsets. */
static void consumer_close(worker_t *w) {
    rd_kafka_t *rk = w->consumer;
    rd_kafka_queue_destroy(w->queue);
    w->queue = NULL;
    rd_kafka_resp_err_t err = rd_kafka_commit(rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        fprintf(stderr, "passthrough: final commit: %s\n", rd_kafka_err2str(err));
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* ------------------------------------------------------------------ the loop */

/* Poll until the batch is full or wait_ms after its first record, then take whatever else is
 * already queued (up to the batch's size) without waiting (as the worker). */
static void take(worker_t *w, rd_kafka_message_t *m) {
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            fprintf(stderr, "passthrough: consumer: %s\n", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    w->msgs[w->n_msgs++] = m;
}

static size_t collect(worker_t *w) {
    w->n_msgs = 0;
    int64_t deadline = 0;
    while (w->n_msgs < (size_t)batch_max && !stopping()) {
        int timeout = 100;
        if (w->n_msgs) {
            int64_t left = (deadline - mono_ns()) / 1000000;
            timeout = left > 0 ? (int)left : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, timeout);
        if (!m) {
            if (w->n_msgs)
                break;
            continue;
        }
        size_t before = w->n_msgs;
        take(w, m);
        if (w->n_msgs == before)
            continue;
        if (before == 0) {
            int64_t now = mono_ns();
            deadline = now + (int64_t)wait_ms * 1000000;
            int64_t zero = 0;
            __atomic_compare_exchange_n(&first_ns, &zero, now, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE);
        }
        rd_kafka_message_t **more = w->msgs + w->n_msgs;
        ssize_t n = rd_kafka_consume_batch_queue(w->queue, 0, more, (size_t)batch_max - w->n_msgs);
        for (ssize_t i = 0; i < n; i++)
            take(w, more[i]);
    }
    return w->n_msgs;
}

/* Records of partitions revoked while the batch was collected belong to another member. */
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

static void store_offsets(worker_t *w) {
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
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->consumer, l);
    if (err) /* a partition revoked meanwhile: its next owner reads it again */
        fprintf(stderr, "passthrough: storing offsets: %s\n", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static int process_batch(worker_t *w) {
    drop_revoked(w);
    if (w->n_msgs == 0)
        return 0;
    int rc = 0;
    size_t sent = 0;
    for (size_t i = 0; i < w->n_msgs; i++) {
        if (send_record(w->msgs[i], &w->ack) < 0) {
            rc = -1;
            break;
        }
        sent++;
    }
    ack_wait(&w->ack); /* deliveries in flight point at w->ack */
    int64_t now = mono_ns();
    if (rc == 0 && w->ack.failed) {
        fprintf(stderr,
                "passthrough: %ld record(s) of a batch not delivered: %s; offsets not "
                "stored\n",
                w->ack.failed, rd_kafka_err2str(w->ack.first_err));
        rc = -1;
    }
    w->ack.failed = 0;
    w->ack.first_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (rc == 0) {
        store_offsets(w);
        int64_t prev = __atomic_load_n(&last_ns, __ATOMIC_ACQUIRE);
        while (prev < now && !__atomic_compare_exchange_n(&last_ns, &prev, now, 0, __ATOMIC_ACQ_REL,
                                                          __ATOMIC_ACQUIRE))
            ;
        long total = __atomic_add_fetch(&acked, (long)sent, __ATOMIC_ACQ_REL);
        if (stop_after > 0 && total >= stop_after)
            __atomic_store_n(&stop_now, 1, __ATOMIC_RELEASE);
    }
    for (size_t i = 0; i < w->n_msgs; i++)
        rd_kafka_message_destroy(w->msgs[i]);
    w->n_msgs = 0;
    return rc;
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    while (!stopping()) {
        if (collect(w) == 0)
            continue;
        if (process_batch(w) < 0) { /* that batch stays uncommitted */
            w->rc = 1;
            __atomic_store_n(&failed, 1, __ATOMIC_RELEASE);
            __atomic_store_n(&stop_now, 1, __ATOMIC_RELEASE);
            break;
        }
    }
    consumer_close(w); /* in its own thread, while the others close theirs */
    w->consumer = NULL;
    return NULL;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f) {
    fprintf(f, "usage: bench-passthrough -i INPUT -o OUTPUT -g GROUP [-b BOOTSTRAP] [-t THREADS]\n"
               "                         [-n BATCH] [-w WAIT_MS] [-N STOP_AFTER]\n"
               "  -b  bootstrap servers (127.0.0.1:19092)\n"
               "  -i  input topic           -o  output topic        -g  consumer group\n"
               "  -t  consumer threads (1)  -n  most records per batch (256)\n"
               "  -w  longest wait to fill a batch after its first record, ms (5)\n"
               "  -N  exit 0 once this many records were produced and acknowledged (0: never)\n"
               "Prints {\"records\",\"seconds\",\"events_per_s\"} as one JSON line at exit.\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    int opt;
    long v;
    while ((opt = getopt(argc, argv, "b:i:o:g:t:n:w:N:h")) != -1) {
        switch (opt) {
        case 'b': bootstrap = optarg; break;
        case 'i': in_topic = optarg; break;
        case 'o': out_topic = optarg; break;
        case 'g': group = optarg; break;
        case 't':
            if (parse_long(optarg, 1, 256, &v) < 0)
                goto bad;
            n_threads = (int)v;
            break;
        case 'n':
            if (parse_long(optarg, 1, 100000, &batch_max) < 0)
                goto bad;
            break;
        case 'w':
            if (parse_long(optarg, 0, 60000, &wait_ms) < 0)
                goto bad;
            break;
        case 'N':
            if (parse_long(optarg, 0, 1L << 62, &stop_after) < 0)
                goto bad;
            break;
        case 'h': usage(stdout); return 0;
        default: goto bad;
        }
    }
    if (optind != argc || !in_topic || !out_topic || !group || !*in_topic || !*out_topic || !*group)
        goto bad;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    producer = producer_new();
    if (!producer)
        return 1;
    pthread_t poller;
    if (pthread_create(&poller, NULL, producer_poll_main, NULL) != 0) {
        fprintf(stderr, "passthrough: cannot start the producer's poll thread\n");
        rd_kafka_destroy(producer);
        return 1;
    }
    worker_t *workers = calloc((size_t)n_threads, sizeof(*workers));
    int rc = 0, inited = 0, started = 0;
    if (!workers) {
        fprintf(stderr, "passthrough: out of memory\n");
        rc = 1;
        goto done;
    }
    for (; inited < n_threads; inited++) {
        worker_t *w = &workers[inited];
        w->index = inited;
        pthread_mutex_init(&w->ack.lock, NULL);
        pthread_cond_init(&w->ack.cond, NULL);
        w->msgs = calloc((size_t)batch_max, sizeof(*w->msgs));
        w->consumer = consumer_new(w);
        w->queue = w->consumer ? rd_kafka_queue_get_consumer(w->consumer) : NULL;
        if (!w->msgs || !w->consumer) {
            rc = 1;
            inited++;
            goto done;
        }
    }
    for (; started < n_threads; started++) {
        if (pthread_create(&workers[started].tid, NULL, worker_main, &workers[started]) != 0) {
            fprintf(stderr, "passthrough: cannot start thread %d\n", started);
            __atomic_store_n(&stop_now, 1, __ATOMIC_RELEASE);
            rc = 1;
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].tid, NULL);
        if (workers[i].rc)
            rc = 1;
    }
done:
    for (int i = 0; i < inited; i++) {
        worker_t *w = &workers[i];
        if (w->queue)
            rd_kafka_queue_destroy(w->queue);
        if (w->consumer) /* never started */
            rd_kafka_destroy_flags(w->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        free(w->msgs);
        pthread_mutex_destroy(&w->ack.lock);
        pthread_cond_destroy(&w->ack.cond);
    }
    free(workers);
    if (rd_kafka_flush(producer, 30000))
        fprintf(stderr, "passthrough: %d record(s) undelivered at exit\n",
                rd_kafka_outq_len(producer));
    __atomic_store_n(&producer_stop, 1, __ATOMIC_RELEASE);
    pthread_join(poller, NULL);
    rd_kafka_destroy(producer);
    if (__atomic_load_n(&failed, __ATOMIC_ACQUIRE))
        rc = 1;

    long records = __atomic_load_n(&acked, __ATOMIC_ACQUIRE);
    int64_t t0 = __atomic_load_n(&first_ns, __ATOMIC_ACQUIRE);
    int64_t t1 = __atomic_load_n(&last_ns, __ATOMIC_ACQUIRE);
    double seconds = records > 0 && t1 > t0 ? (double)(t1 - t0) / 1e9 : 0.0;
    if (seconds > 0)
        printf("{\"records\": %ld, \"seconds\": %.3f, \"events_per_s\": %.1f}\n", records, seconds,
               (double)records / seconds);
    else
        printf("{\"records\": %ld, \"seconds\": %.3f, \"events_per_s\": null}\n", records, seconds);
    fflush(stdout);
    return rc;
bad:
    usage(stderr);
    return 2;
}
