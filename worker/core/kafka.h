/* kafka.h - what every Kafka client of streamscore shares, whichever program makes it:
 * the kafka.* pass-through properties, librdkafka's log and error callbacks as structured
 * logs, and the refusals (credentials, certificates) that stop a worker instead of being
 * retried. The worker's consumers and producers and the compare tool's range reader use it. */
#ifndef SS_KAFKA_H
#define SS_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"
#include "error.h"

/* Apply pass-through kafka.* properties of `scope` (SS_KAFKA_CONSUMER or SS_KAFKA_PRODUCER)
 * and of both sides to `conf`: both sides first, then the side's own, so kafka.producer.x
 * beats kafka.x. Consumer-only properties given for both sides are not passed to a producer.
 * Returns 0 or SS_ERR_CONFIG with errstr naming the key. */
int ss_kafka_conf_apply(rd_kafka_conf_t *conf, const ss_config_t *cfg, int scope, char *errstr,
                        size_t errlen);

/* Set a default a user may override (kafka.* applied afterwards wins). Returns 0, or
 * SS_ERR_CONFIG when librdkafka does not take it. */
int ss_kafka_conf_default(rd_kafka_conf_t *conf, const char *key, const char *value);

/* Install the log and error callbacks on `conf`: librdkafka's log lines and client errors
 * as structured logs (a fatal error or a refusal at level error, the rest at warn). A refusal
 * (below) is also kept for ss_kafka_refused. */
void ss_kafka_conf_logging(rd_kafka_conf_t *conf);

/* Client errors that retrying cannot mend: the broker refused the client's credentials, or the
 * TLS handshake refused a certificate (the broker's, not signed by a CA the client trusts, or
 * the client's). librdkafka itself retries them forever. */
typedef enum {
    SS_KAFKA_RETRY = 0,    /* anything else: a broker down, a connection cut, ... */
    SS_KAFKA_REFUSED_SASL, /* RD_KAFKA_RESP_ERR__AUTHENTICATION */
    SS_KAFKA_REFUSED_TLS   /* a certificate or handshake problem (__SSL, or __TRANSPORT) */
} ss_kafka_refusal_t;

/* What a client error (`err` and `reason` as librdkafka's error callback gets them) is. */
ss_kafka_refusal_t ss_kafka_refusal(int err, const char *reason);

/* The first refusal any client of this process met since it started, as one line naming the
 * problem and the keys to check (never a secret), e.g. "kafka: SASL authentication failed
 * (check kafka.sasl.username, kafka.sasl.password): <librdkafka's reason>". Returns 1 with the
 * line in `line` (when not NULL), or 0 when there was none.
 * @locality any thread: the line is written once, by the first librdkafka thread to report */
int ss_kafka_refused(char *line, size_t len);

/* A client of `type` outside the worker's group: `conf` (a fresh one when NULL; taken in any
 * case) gets cfg's kafka.* properties of its side, then the n name/value pairs of `set` that
 * the caller's use needs (they win), and the log callbacks. `who` starts the error text.
 * Returns the client, or NULL with errstr (a key kafka.* names, or librdkafka's refusal). */
rd_kafka_t *ss_kafka_client(const ss_config_t *cfg, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                            const char *const set[][2], size_t n, const char *who, char *errstr,
                            size_t errlen);

/* Partitions of `topic`: >= 0, -1 when it does not exist, SS_ERR_FAIL with errstr (no answer
 * within timeout_ms, ...); `what` starts the error text. */
int ss_kafka_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, const char *what,
                        char *errstr, size_t errlen);

/* Create `topic` compacted (cleanup.policy=compact) with `partitions` and `replication`
 * (-1: the broker's default); one that exists already is fine. `what` starts the error text,
 * `key` names the config key that names the topic. Returns 0, SS_ERR_CONFIG (a bad name or
 * replication) or SS_ERR_FAIL with errstr. */
int ss_kafka_create_compacted(rd_kafka_t *rk, const char *topic, int partitions, int replication,
                              const char *what, const char *key, char *errstr, size_t errlen);

#endif
