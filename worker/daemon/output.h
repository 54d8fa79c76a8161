/* output.h - where a batch's records go: predictions to the output topic (the shadow's to
 * shadow.topic), or for a shadow with shadow.output = file to JSON lines appended to
 * shadow.file and made durable before the batch commits; dead letters to dlq.topic with
 * __connect.errors.* headers. The output is shared by the worker threads; each thread writes
 * through a writer of its own (encoder, line buffer, producer, acknowledgements). */
#ifndef SS_OUTPUT_H
#define SS_OUTPUT_H

#include <librdkafka/rdkafka.h>

#include "prediction.h"
#include "producer.h"
#include "registry.h"

typedef struct ss_output ss_output_t;               /* shared by the threads */
typedef struct ss_output_writer ss_output_writer_t; /* one per thread */

/* Opens shadow.file for appending when the shadow writes a file. Returns NULL with errstr
 * when it cannot be opened (a "config: key 'shadow.file': ..." message) or out of memory. */
ss_output_t *ss_output_new(const ss_config_t *cfg, ss_metrics_t *metrics, char *errstr,
                           size_t errlen);
void ss_output_destroy(ss_output_t *o);

/* The output topic, or the shadow's file. */
const char *ss_output_name(const ss_output_t *o);

/* Checks output.schema field by field (ss_encoder_new), whatever the output, then sets the
 * schema id predictions are framed with (Confluent wire format): output.schema.id, or
 * output.schema registered under its subject with `registry` (may be NULL: none). JSON and
 * the shadow's file are never framed. Call before anything connects. Returns 0,
 * SS_ERR_UNAVAILABLE when the registry did not answer, SS_ERR_CONFIG when output.schema
 * cannot be read or does not fit (errstr names the field) or the registry refused it. */
int ss_output_register_schema(ss_output_t *o, ss_registry_t *registry, char *errstr, size_t errlen);

/* The registry id Avro predictions are framed with, -1 for none (ss_output_register_schema). */
int32_t ss_output_schema_id(const ss_output_t *o);

/* Whether output.schema holds what the model writes (ss_encoder_check_needs); `why` names
 * the model's part (e.g. its objective) in the message. Returns 0 or SS_ERR_CONFIG. */
int ss_output_check_needs(ss_output_t *o, const ss_encoder_needs_t *needs, const char *why,
                          char *errstr, size_t errlen);

/* Whether explanations go to explain.topic rather than into the predictions (a topic output
 * with explain.topic set; the shadow's file keeps them in its lines). */
int ss_output_splits_explanations(const ss_output_t *o);

/* Count the deliveries from now on in `ack`. */
void ss_output_writer_set_ack(ss_output_writer_t *w, ss_ack_t *ack);

/* A thread's writer, with deliveries counted in `ack` (the caller's, outliving the writer).
 * Returns NULL with errstr; SS_ERR_CONFIG in *why when output.schema does not fit, else
 * SS_ERR_NOMEM. @locality the worker thread */
ss_output_writer_t *ss_output_writer_new(ss_output_t *o, ss_ack_t *ack, int *why, char *errstr,
                                         size_t errlen);
/* The producer it sends through (the caller's, outliving the writer); set before the first
 * record. */
void ss_output_writer_use(ss_output_writer_t *w, ss_producer_t *producer);
void ss_output_writer_destroy(ss_output_writer_t *w);

/* Encode and send one prediction, keyed by its customer id. Returns 0 or SS_ERR_FAIL. */
int ss_output_prediction(ss_output_writer_t *w, const ss_prediction_t *p, char *errstr,
                         size_t errlen);

/* Encode and send an explained prediction to explain.topic, keyed by its customer id.
 * Returns 0 or SS_ERR_FAIL. */
int ss_output_explanation(ss_output_writer_t *w, const ss_prediction_t *p, char *errstr,
                          size_t errlen);

/* Send message `m` to the dead-letter topic with its headers and the error's; logged and
 * counted by reason. Returns 0 or SS_ERR_FAIL. */
int ss_output_dead_letter(ss_output_writer_t *w, const rd_kafka_message_t *m, const char *stage,
                          const char *reason, const char *detail, char *errstr, size_t errlen);

/* The batch's lines on disk (written and fsynced) when the output is a file; nothing for a
 * topic, whose deliveries the batch's acknowledgements cover. Returns 0 or SS_ERR_FAIL. */
int ss_output_flush(ss_output_writer_t *w, char *errstr, size_t errlen);

#endif
