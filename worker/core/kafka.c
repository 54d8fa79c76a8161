/* kafka.c - the kafka.* pass-through and librdkafka's logs and errors as structured logs,
 * shared by every Kafka client streamscore makes (worker consumers and producers, the
 * compare tool's range reader, the bench's producer). */
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

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)opaque;
    const char *side = rd_kafka_type(rk) == RD_KAFKA_PRODUCER ? "producer" : "consumer";
    ss_log(err == RD_KAFKA_RESP_ERR__FATAL ? SS_LOG_ERROR : SS_LOG_WARN,
           SS_FIELDS(SSF_STR("side", side), SSF_STR("error", rd_kafka_err2name(err))),
           "kafka: %s: %s", rd_kafka_err2name(err), reason);
}

void ss_kafka_conf_logging(rd_kafka_conf_t *conf) {
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
}
