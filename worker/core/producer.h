/* producer.h - the one Kafka producer shared by all worker threads (idempotent,
 * acks=all), and the acknowledgement tracker a batch waits on before its offsets
 * may be stored. */
#ifndef SS_PRODUCER_H
#define SS_PRODUCER_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stddef.h>

#include "config.h"
#include "error.h"

/* Counts a batch's outstanding deliveries. One per worker thread, reused per batch.
 * @locks lock guards every field; delivery reports arrive on the producer's poll thread. */
typedef struct ss_ack {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long pending;
    long failed;
    rd_kafka_resp_err_t first_err;
    /* optional, the owner's: per partition, the offset after the last record delivered */
    int64_t *next_offset;
    int32_t n_next;
} ss_ack_t;

void ss_ack_init(ss_ack_t *a);
void ss_ack_destroy(ss_ack_t *a);
/* Wait until nothing is pending or timeout_ms passes. Returns the number still pending. */
long ss_ack_wait(ss_ack_t *a, long timeout_ms);

typedef struct ss_producer ss_producer_t;

/* Creates the producer and its poll thread. Errors in librdkafka properties are
 * config errors (the caller exits 2). With `transactional_id` (exactly-once), the producer
 * is transactional and its transactions are initialized (fencing older instances). */
ss_producer_t *ss_producer_new(const ss_config_t *cfg, const char *transactional_id, char *errstr,
                               size_t errlen);
/* Flushes (up to timeout_ms), stops the poll thread, destroys. Accepts NULL. */
void ss_producer_destroy(ss_producer_t *p, long timeout_ms);

typedef struct ss_header {
    const char *name;
    const void *value;
    size_t len;
} ss_header_t;

/* Produce one record to `partition` (RD_KAFKA_PARTITION_UA: by its key); `ack` is counted now
 * and settled by the delivery report.
 * Copies key, value and headers. Waits while the local queue is full.
 * Returns 0 or SS_ERR_FAIL with errstr (the ack is then not counted).
 * @locality any worker thread */
int ss_producer_send(ss_producer_t *p, const char *topic, int32_t partition, const void *key,
                     size_t keylen, const void *value, size_t vallen, const ss_header_t *hdrs,
                     size_t n_hdrs, const rd_kafka_headers_t *orig_hdrs, ss_ack_t *ack,
                     char *errstr, size_t errlen);

rd_kafka_t *ss_producer_handle(ss_producer_t *p);

/* The largest record the producer accepts (its message.max.bytes). */
size_t ss_producer_max_message(ss_producer_t *p);

/* An upper bound of the bytes a record takes against message.max.bytes: key, value, the
 * headers given and `orig_hdrs` (NULL for none), and the record batch's overhead. */
size_t ss_producer_record_size(size_t keylen, size_t vallen, const ss_header_t *hdrs, size_t n_hdrs,
                               const rd_kafka_headers_t *orig_hdrs);

#endif
