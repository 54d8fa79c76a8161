/* registry.h - a client of a Confluent-compatible Schema Registry (libcurl): writer schemas
 * fetched by id, and the output schema registered under its subject. Requests are rare (once
 * per schema id for the life of the process, once at start-up for the output), so one
 * connection, guarded by a mutex, serves every thread. */
#ifndef SS_REGISTRY_H
#define SS_REGISTRY_H

#include <stdint.h>

#include "config.h"
#include "metrics.h"

typedef struct ss_registry ss_registry_t;

typedef enum {
    SS_REGISTRY_OK = 0,
    SS_REGISTRY_NOT_FOUND = -1,   /* the registry answered: no such schema (404) */
    SS_REGISTRY_UNAVAILABLE = -2, /* no usable answer after the retries: down, 5xx, timeout */
    SS_REGISTRY_REFUSED = -3,     /* any other answer: 401/403, 409 incompatible, 422 invalid */
    SS_REGISTRY_INVALID = -4,     /* an answer, but not an Avro schema streamscore can use */
} ss_registry_rc_t;

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
 * finds it registered already; its id in *id. @locks the registry's mutex */
int ss_registry_register(ss_registry_t *r, const char *subject, const char *schema, int32_t *id,
                         char *errstr, size_t errlen);

/* The subject of the output topic's values under output.subject.name.strategy: topic ->
 * "<topic>-value", record -> the schema's full name, topic-record -> "<topic>-<full name>". */
int ss_registry_subject(const ss_config_t *cfg, const char *topic, const char *record_fullname,
                        char *out, size_t outlen);

#endif
