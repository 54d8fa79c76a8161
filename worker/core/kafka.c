/* kafka.c - the kafka.* pass-through and librdkafka's logs and errors as structured logs,
 * shared by every Kafka client streamscore makes (worker consumers and producers, the
 * compare tool's range reader, the bench's producer); the first refusal of credentials or a
 * certificate is kept, for the worker to stop on it (librdkafka would retry it forever). */
#include "kafka.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "log.h"

/* Consumer-only properties commonly given as kafka.*: not passed to a producer, which would
 * warn that it ignores them. */
static const char *consumer_only[] = {"group.id",
                                      "group.instance.id",
                                      "group.protocol.type",
                                      "auto.offset.reset",
                                      "enable.auto.commit",
                                      "auto.commit.interval.ms",
                                      "enable.auto.offset.store",
                                      "session.timeout.ms",
                                      "heartbeat.interval.ms",
                                      "max.poll.interval.ms",
                                      "partition.assignment.strategy",
                                      "isolation.level",
                                      "fetch.wait.max.ms",
                                      "fetch.min.bytes",
                                      "fetch.max.bytes",
                                      "fetch.message.max.bytes",
                                      "queued.min.messages",
                                      "queued.max.messages.kbytes",
                                      "check.crcs",
                                      "enable.partition.eof",
                                      NULL};

static int is_consumer_only(const char *key) {
    for (const char **k = consumer_only; *k; k++)
        if (strcmp(*k, key) == 0)
            return 1;
    return 0;
}

static const char *scope_prefix(int scope) {
    return scope == SS_KAFKA_CONSUMER ? "consumer." : scope == SS_KAFKA_PRODUCER ? "producer." : "";
}

int ss_kafka_conf_apply(rd_kafka_conf_t *conf, const ss_config_t *cfg, int scope, char *errstr,
                        size_t errlen) {
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < cfg->n_kafka; i++) {
            const ss_kv_t *kv = &cfg->kafka[i];
            if (kv->scope != (pass == 0 ? SS_KAFKA_BOTH : scope))
                continue;
            if (kv->scope == SS_KAFKA_BOTH && scope == SS_KAFKA_PRODUCER &&
                is_consumer_only(kv->key))
                continue;
            char err[256];
            if (rd_kafka_conf_set(conf, kv->key, kv->value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
                snprintf(errstr, errlen, "config: key 'kafka.%s%s': %s", scope_prefix(kv->scope),
                         kv->key, err);
                return SS_ERR_CONFIG;
            }
        }
    }
    return 0;
}

int ss_kafka_conf_default(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char err[256];
    return rd_kafka_conf_set(conf, key, value, err, sizeof(err)) == RD_KAFKA_CONF_OK
               ? 0
               : SS_ERR_CONFIG;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    ss_log_level_t l = level <= 3   ? SS_LOG_ERROR
                       : level == 4 ? SS_LOG_WARN
                       : level <= 6 ? SS_LOG_INFO
                                    : SS_LOG_DEBUG;
    ss_log(l,
           SS_FIELDS(SSF_STR("component", "librdkafka"), SSF_STR("client", rd_kafka_name(rk)),
                     SSF_STR("facility", fac)),
           "%s", buf);
}

/* ---- refusals: credentials or certificates that retrying cannot mend */

/* OpenSSL's words, which librdkafka (2.0.2 as 2.8.0) passes on in the reason, for a
 * certificate the handshake refused or a handshake the peer refused with an alert: "certificate
 * verify failed", "Failed to verify broker certificate", "Broker did not provide a
 * certificate", "alert bad certificate", "alert certificate required", "alert unknown ca", ...
 * A connection cut during the handshake ("Disconnected", "unexpected eof while reading", "SSL
 * transport error: ...") is none of them: a broker restarting, retried. */
static const char *tls_refusals[] = {"certificate", "unknown ca", "alert handshake failure",
                                     "alert protocol version", NULL};

static int says_tls_refusal(const char *reason) {
    for (const char **w = tls_refusals; *w; w++)
        if (strstr(reason, *w))
            return 1;
    return 0;
}

ss_kafka_refusal_t ss_kafka_refusal(int err, const char *reason) {
    reason = reason ? reason : "";
    switch (err) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        /* An OAUTHBEARER token that could not be fetched is fetched again by librdkafka (its
         * endpoint may be back): no broker refused anything. */
        return strstr(reason, "OAUTHBEARER token") ? SS_KAFKA_RETRY : SS_KAFKA_REFUSED_SASL;
    case RD_KAFKA_RESP_ERR__SSL:
        return says_tls_refusal(reason) ? SS_KAFKA_REFUSED_TLS : SS_KAFKA_RETRY;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
        /* TLS 1.3: a broker's alert refusing the client's certificate comes after the handshake,
         * with the next read ("Receive failed: ...:SSL routines::tlsv13 alert certificate
         * required") */
        return strstr(reason, "SSL routines") && says_tls_refusal(reason) ? SS_KAFKA_REFUSED_TLS
                                                                          : SS_KAFKA_RETRY;
    default: return SS_KAFKA_RETRY;
    }
}

/* The first refusal of the process. refused_state: 0 none, 1 being written, 2 written (atomic);
 * refused_line is written once, before the state becomes 2, and only read after. */
static int refused_state;
static char refused_line[1024];

static void note_refusal(ss_kafka_refusal_t kind, const char *reason) {
    int none = 0;
    if (!__atomic_compare_exchange_n(&refused_state, &none, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return; /* the first one is the answer */
    if (kind == SS_KAFKA_REFUSED_SASL)
        snprintf(refused_line, sizeof(refused_line),
                 "kafka: SASL authentication failed (check kafka.sasl.username, "
                 "kafka.sasl.password): %s",
                 reason);
    else /* with an alert, the broker refused the client's certificate: its keys too */
        snprintf(refused_line, sizeof(refused_line),
                 "kafka: TLS handshake failed (check kafka.ssl.ca.location%s): %s",
                 strstr(reason, "alert")
                     ? ", kafka.ssl.certificate.location, kafka.ssl.key.location"
                     : "",
                 reason);
    __atomic_store_n(&refused_state, 2, __ATOMIC_RELEASE);
}

int ss_kafka_refused(char *line, size_t len) {
    if (__atomic_load_n(&refused_state, __ATOMIC_ACQUIRE) != 2)
        return 0;
    if (line && len)
        snprintf(line, len, "%s", refused_line);
    return 1;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)opaque;
    const char *side = rd_kafka_type(rk) == RD_KAFKA_PRODUCER ? "producer" : "consumer";
    ss_kafka_refusal_t refusal = ss_kafka_refusal(err, reason);
    if (refusal != SS_KAFKA_RETRY)
        note_refusal(refusal, reason ? reason : "");
    ss_log(err == RD_KAFKA_RESP_ERR__FATAL || refusal != SS_KAFKA_RETRY ? SS_LOG_ERROR
                                                                        : SS_LOG_WARN,
           SS_FIELDS(SSF_STR("side", side), SSF_STR("error", rd_kafka_err2name(err)),
                     SSF_BOOL("refused", refusal != SS_KAFKA_RETRY)),
           "kafka: %s: %s", rd_kafka_err2name(err), reason);
}

void ss_kafka_conf_logging(rd_kafka_conf_t *conf) {
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
}

/* ------------------------------------------------------------------ clients and topics */

rd_kafka_t *ss_kafka_client(const ss_config_t *cfg, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                            const char *const set[][2], size_t n, const char *who, char *errstr,
                            size_t errlen) {
    char err[256];
    if (!conf)
        conf = rd_kafka_conf_new();
    int scope = type == RD_KAFKA_CONSUMER ? SS_KAFKA_CONSUMER : SS_KAFKA_PRODUCER;
    if (ss_kafka_conf_apply(conf, cfg, scope, errstr, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (rd_kafka_conf_set(conf, set[i][0], set[i][1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errlen, "%s: %s", who, err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    ss_kafka_conf_logging(conf);
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (!rk)
        snprintf(errstr, errlen, "%s: %s", who, err);
    return rk;
}

int ss_kafka_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, const char *what,
                        char *errstr, size_t errlen) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
    rd_kafka_topic_destroy(t);
    if (err) {
        snprintf(errstr, errlen, "%s: metadata of '%s': %s", what, topic, rd_kafka_err2str(err));
        return SS_ERR_FAIL;
    }
    int n = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : -1;
    rd_kafka_metadata_destroy(md);
    return n;
}

int ss_kafka_create_compacted(rd_kafka_t *rk, const char *topic, int partitions, int replication,
                              const char *what, const char *key, char *errstr, size_t errlen) {
    char err[256];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, replication, err, sizeof(err));
    if (!nt) {
        snprintf(errstr, errlen, "%s: %s (key %s)", what, err, key);
        return SS_ERR_CONFIG;
    }
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = SS_ERR_FAIL;
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    if (!ev) {
        snprintf(errstr, errlen, "%s: creating '%s': no answer in 30 s", what, topic);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errlen, "%s: creating '%s': %s", what, topic,
                 rd_kafka_event_error_string(ev));
    } else if (n == 1 && rd_kafka_topic_result_error(tr[0]) &&
               rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        snprintf(errstr, errlen, "%s: creating '%s': %s", what, topic,
                 rd_kafka_topic_result_error_string(tr[0]));
    } else {
        rc = 0;
        ss_log(SS_LOG_INFO, SS_FIELDS(SSF_STR("topic", topic), SSF_INT("partitions", partitions)),
               "%s: created (cleanup.policy=compact)", what);
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}
