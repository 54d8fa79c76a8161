/* registry.h - a client of a Confluent-compatible Schema Registry (libcurl): writer schemas
 * fetched by id, and the output schema registered under its subject. Requests are rare (once
 * per schema id for the life of the process, once at start-up for the output), so one
 * connection, guarded by a mutex, serves every thread. */
#ifndef SS_REGISTRY_H
#define SS_REGISTRY_H

#include <stdint.h>

#include "config.h"
#include "error.h"
#include "metrics.h"

typedef struct ss_registry ss_registry_t;

/* What the requests below return: 0, or
 *   SS_ERR_NOT_FOUND    the registry answered: no such schema (404)
 *   SS_ERR_UNAVAILABLE  no usable answer after the retries: down, 5xx, timeout
 *   SS_ERR_CONFIG       any other answer, the registry refusing what the configuration asks:
 *                       401/403, 409 incompatible, 422 invalid
 *   SS_ERR_INVALID      an answer, but not an Avro schema streamscore can use
 *   SS_ERR_NOMEM        out of memory
 * with the detail in errstr. */

/* From the schema.registry.* keys; NULL with errstr when libcurl cannot be set up.
 * `stats` (may be NULL) counts requests and retries. Call only when schema.registry.url is
 * set. curl_global_init must have been called (main does). */
ss_registry_t *ss_registry_new(const ss_config_t *cfg, ss_metrics_t *stats, char *errstr,
                               size_t errlen);
void ss_registry_destroy(ss_registry_t *r);

/* GET /schemas/ids/{id}: the schema's JSON text in *schema (the caller frees it).
 * Retries with backoff (schema.registry.retries) while the registry cannot answer.
 * @locks the registry's mutex, for the whole exchange including retries */
int ss_registry_schema_by_id(ss_registry_t *r, int32_t id, char **schema, char *errstr,
                             size_t errlen);

/* POST /subjects/{subject}/versions: registers `schema` (Avro JSON text) under `subject`, or
 * finds it registered already; its id in *id. A registry without that endpoint (404) refuses
 * (SS_ERR_CONFIG). @locks the registry's mutex */
int ss_registry_register(ss_registry_t *r, const char *subject, const char *schema, int32_t *id,
                         char *errstr, size_t errlen);

/* The subject of the output topic's values under output.subject.name.strategy: topic ->
 * "<topic>-value", record -> the schema's full name, topic-record -> "<topic>-<full name>".
 * Returns 0, or SS_ERR_CONFIG when it does not fit in outlen. */
int ss_registry_subject(const ss_config_t *cfg, const char *topic, const char *record_fullname,
                        char *out, size_t outlen);

#endif
