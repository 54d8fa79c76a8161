/* producer.c - one idempotent producer for all worker threads. A dedicated thread serves
 * delivery reports, which settle the per-batch ss_ack_t that each record points to. */
#include "producer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "kafka.h"
#include "log.h"

struct ss_producer {
    rd_kafka_t *rk;
    pthread_t poller;
    int stop; /* atomic */
};

void ss_ack_init(ss_ack_t *a) {
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
}

void ss_ack_destroy(ss_ack_t *a) {
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
}

long ss_ack_wait(ss_ack_t *a, long timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&a->lock);
    while (a->pending > 0) {
        if (pthread_cond_timedwait(&a->cond, &a->lock, &deadline) == ETIMEDOUT)
            break;
    }
    long left = a->pending;
    pthread_mutex_unlock(&a->lock);
    return left;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    ss_ack_t *a = m->_private;
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    if (m->err) {
        if (!a->failed)
            a->first_err = m->err;
        a->failed++;
    } else if (a->next_offset && m->partition >= 0 && m->partition < a->n_next &&
               a->next_offset[m->partition] < m->offset + 1) {
        a->next_offset[m->partition] = m->offset + 1;
    }
    if (--a->pending == 0)
        pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void *poll_main(void *arg) {
    ss_producer_t *p = arg;
    while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
        rd_kafka_poll(p->rk, 50);
    return NULL;
}

/* rd_kafka_init_transactions, for up to 60 s, in steps that serve the client's errors (its poll
 * thread is not running yet): a refusal of credentials or of a certificate ends the wait. */
static rd_kafka_error_t *init_transactions(rd_kafka_t *rk) {
    int64_t until = ss_mono_ms() + 60000;
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(rk, 1000);
        rd_kafka_poll(rk, 0);
        if (!e || !rd_kafka_error_is_retriable(e) || ss_kafka_refused(NULL, 0) ||
            ss_mono_ms() >= until)
            return e;
        rd_kafka_error_destroy(e); /* timed out: called again, it resumes */
    }
}

ss_producer_t *ss_producer_new(const ss_config_t *cfg, const char *transactional_id, char *errstr,
                               size_t errlen) {
    ss_producer_t *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!p || !conf) {
        snprintf(errstr, errlen, "producer: out of memory");
        goto fail;
    }
    /* Defaults a user may override; delivery guarantees are not among them. */
    ss_kafka_conf_default(conf, "linger.ms", "1");
    ss_kafka_conf_default(conf, "client.id", "streamscore");
    if (ss_kafka_conf_apply(conf, cfg, SS_KAFKA_PRODUCER, errstr, errlen) < 0)
        goto fail;
    /* group.id and other consumer-only properties are harmless here but noisy */
    char err[256];
    if (rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "acks", "all", err, sizeof(err))) {
        snprintf(errstr, errlen, "producer: %s", err);
        goto fail;
    }
    if (transactional_id &&
        rd_kafka_conf_set(conf, "transactional.id", transactional_id, err, sizeof(err))) {
        snprintf(errstr, errlen, "producer: %s", err);
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    ss_kafka_conf_logging(conf);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!p->rk) {
        snprintf(errstr, errlen, "producer: %s", err);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    if (transactional_id) {
        rd_kafka_error_t *e = init_transactions(p->rk);
        if (e) {
            snprintf(errstr, errlen, "producer: initializing transactions for '%s': %s",
                     transactional_id, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            rd_kafka_destroy(p->rk);
            p->rk = NULL;
            goto fail;
        }
    }
    if (pthread_create(&p->poller, NULL, poll_main, p) != 0) {
        snprintf(errstr, errlen, "producer: cannot start its poll thread");
        rd_kafka_destroy(p->rk);
        p->rk = NULL;
        goto fail;
    }
    return p;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    free(p);
    return NULL;
}

void ss_producer_destroy(ss_producer_t *p, long timeout_ms) {
    if (!p)
        return;
    if (p->rk) {
        rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, (int)timeout_ms);
        if (err)
            ss_warn("producer: %d records still undelivered at shutdown: %s",
                    rd_kafka_outq_len(p->rk), rd_kafka_err2str(err));
        __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
        pthread_join(p->poller, NULL);
        rd_kafka_destroy(p->rk);
    }
    free(p);
}

rd_kafka_t *ss_producer_handle(ss_producer_t *p) {
    return p->rk;
}

size_t ss_producer_max_message(ss_producer_t *p) {
    char v[32];
    size_t n = sizeof(v);
    if (rd_kafka_conf_get(rd_kafka_conf(p->rk), "message.max.bytes", v, &n) != RD_KAFKA_CONF_OK)
        return 1000000; /* librdkafka's default */
    return (size_t)strtoull(v, NULL, 10);
}

/* librdkafka refuses a record whose v2 wire size exceeds message.max.bytes: a batch header of
 * 61 bytes, per record and per header at most 5 bytes for each varint, plus the bytes. */
#define BATCH_OVERHEAD 61
#define RECORD_OVERHEAD 40
#define HEADER_OVERHEAD 10

size_t ss_producer_record_size(size_t keylen, size_t vallen, const ss_header_t *hdrs, size_t n_hdrs,
                               const rd_kafka_headers_t *orig_hdrs) {
    size_t n = BATCH_OVERHEAD + RECORD_OVERHEAD + keylen + vallen;
    for (size_t i = 0; i < n_hdrs; i++)
        n += HEADER_OVERHEAD + strlen(hdrs[i].name) + hdrs[i].len;
    const char *name;
    const void *value;
    size_t len;
    for (size_t i = 0; orig_hdrs && rd_kafka_header_get_all(orig_hdrs, i, &name, &value, &len) == 0;
         i++)
        n += HEADER_OVERHEAD + strlen(name) + len;
    return n;
}

int ss_producer_send(ss_producer_t *p, const char *topic, int32_t partition, const void *key,
                     size_t keylen, const void *value, size_t vallen, const ss_header_t *hdrs,
                     size_t n_hdrs, const rd_kafka_headers_t *orig_hdrs, ss_ack_t *ack,
                     char *errstr, size_t errlen) {
    rd_kafka_headers_t *h = NULL;
    if (n_hdrs || orig_hdrs) {
        h = orig_hdrs ? rd_kafka_headers_copy(orig_hdrs) : rd_kafka_headers_new(n_hdrs);
        for (size_t i = 0; i < n_hdrs; i++)
            rd_kafka_header_add(h, hdrs[i].name, -1, hdrs[i].value, (ssize_t)hdrs[i].len);
    }
    pthread_mutex_lock(&ack->lock);
    ack->pending++;
    pthread_mutex_unlock(&ack->lock);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY((void *)key, keylen), RD_KAFKA_V_VALUE((void *)value, vallen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(ack), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_END);
        if (!err)
            return 0; /* headers now owned by the message */
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL); /* the poll thread drains the queue */
            continue;
        }
        pthread_mutex_lock(&ack->lock);
        ack->pending--;
        pthread_mutex_unlock(&ack->lock);
        if (h)
            rd_kafka_headers_destroy(h);
        snprintf(errstr, errlen, "produce to '%s': %s", topic, rd_kafka_err2str(err));
        return SS_ERR_FAIL;
    }
}
