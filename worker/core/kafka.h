/* kafka.h - what every Kafka client of streamscore shares, whichever program makes it:
 * the kafka.* pass-through properties, librdkafka's log and error callbacks as structured
 * logs. The worker's consumers and producers and the compare tool's range reader use it. */
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
 * as structured logs (a fatal error at level error, the rest at warn). */
void ss_kafka_conf_logging(rd_kafka_conf_t *conf);

#endif
