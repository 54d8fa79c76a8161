/* registry.h - a client of a Confluent-compatible Schema Registry (libcurl): writer schemas
 * fetched by id, and the output schema registered under its subject. Each request runs on a
 * connection of its own (idle ones are kept for reuse), so requests of several threads run
 * side by side and none waits for another's network I/O. Fetches by id are rate-limited
 * (ss_registry_fetch_permit). Messages name the registry by its URL without userinfo. */
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
 * Retries with backoff (schema.registry.retries) while the registry cannot answer. It does
 * not take a permit: callers fetching ids seen in records ask ss_registry_fetch_permit first.
 * @locks the registry's mutex briefly, never across the request */
int ss_registry_schema_by_id(ss_registry_t *r, int32_t id, char **schema, char *errstr,
                             size_t errlen);

/* POST /subjects/{subject}/versions: registers `schema` (Avro JSON text) under `subject`, or
 * finds it registered already; its id in *id. A registry without that endpoint (404) refuses
 * (SS_ERR_CONFIG). @locks the registry's mutex briefly, never across the request */
int ss_registry_register(ss_registry_t *r, const char *subject, const char *schema, int32_t *id,
                         char *errstr, size_t errlen);

/* The subject of the output topic's values under output.subject.name.strategy: topic ->
 * "<topic>-value", record -> the schema's full name, topic-record -> "<topic>-<full name>".
 * Returns 0, or SS_ERR_CONFIG when it does not fit in outlen. */
int ss_registry_subject(const ss_config_t *cfg, const char *topic, const char *record_fullname,
                        char *out, size_t outlen);

/* May schema id `id` be fetched now? A token bucket of schema.registry.fetch.rate tokens,
 * refilled at that rate a second: 0 takes a token; SS_ERR_UNAVAILABLE, with errstr saying
 * so, when none is left (the record is dead-lettered as registry_unavailable, and the id is
 * not remembered as missing: a later record with it asks again).
 * @locks the registry's mutex briefly */
int ss_registry_fetch_permit(ss_registry_t *r, int32_t id, char *errstr, size_t errlen);

/* `url` for messages: its userinfo ("user:password@") shown as "***@", the scheme and the
 * host and path kept; everything up to the last '@' after the scheme is hidden (a password
 * may hold one), so it never shows more than it must. Always NUL-terminated. */
void ss_registry_redact_url(const char *url, char *out, size_t outlen);

/* ---- the answers, read apart from the network (the target fuzz_registry in tests/fuzz feeds them
 * any bytes): `body` holds `len` bytes, not necessarily NUL-terminated or valid JSON. */

/* A GET /schemas/ids/{id} answer, {"schema": "...", "schemaType": "AVRO", ...}: 0 with the
 * schema text in *schema (the caller frees it), SS_ERR_INVALID (no "schema" string, another
 * schemaType, schema references) or SS_ERR_NOMEM, with errstr; `what` names the request. */
int ss_registry_parse_schema(const char *body, size_t len, const char *what, char **schema,
                             char *errstr, size_t errlen);

/* A POST /subjects/{subject}/versions answer, {"id": N}: 0 with N in *id (0 .. INT32_MAX), or
 * SS_ERR_CONFIG with errstr quoting (printable, at most 200 bytes of) the answer. */
int ss_registry_parse_id(const char *body, size_t len, const char *what, int32_t *id, char *errstr,
                         size_t errlen);

/* An error answer's words for a message, as printable ASCII: "MESSAGE (error_code N)" from
 * {"error_code": N, "message": "..."}, else up to 200 bytes of the body, else "no body". */
void ss_registry_parse_error(const char *body, size_t len, char *out, size_t outlen);

#endif
