/* consumer.h - one Kafka consumer per worker thread, all in one group, with offsets
 * stored by the pipeline only once a record's outputs are safe. */
#ifndef SS_CONSUMER_H
#define SS_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

/* Creates a consumer subscribed to input.topic. Errors name the key. */
rd_kafka_t *ss_consumer_new(const ss_config_t *cfg, int thread_index, char *errstr,
                            size_t errlen);

/* Commit what was stored, leave the group, destroy. Accepts NULL. */
void ss_consumer_destroy(rd_kafka_t *rk);

#endif
