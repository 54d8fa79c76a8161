/* config.c - one table defines every configuration key; parsing of properties
 * files, environment overrides, validation, defaults and the generated reference
 * all read it, so a key cannot exist in one place and not another. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

typedef enum { CT_STRING, CT_INT, CT_DOUBLE, CT_ENUM, CT_LOGLEVEL } conf_type_t;

#define F_REQUIRED 1
#define F_SECRET 2

typedef struct conf_def {
    const char *key;
    conf_type_t type;
    const char *def; /* default as text; NULL = none (derived or required) */
    double min, max; /* bounds for CT_INT / CT_DOUBLE */
    const char *enums; /* "a|b" for CT_ENUM; the index is stored */
    size_t offset;
    int flags;
    const char *doc;
} conf_def_t;

#define OFF(f) offsetof(ss_config_t, f)

static const conf_def_t defs[] = {
    {"mode", CT_ENUM, "primary", 0, 0, "primary|shadow", OFF(mode), 0,
     "primary scores, produces to output.topic and writes features to Redis; shadow scores "
     "a candidate model and only records its results."},
    {"input.topic", CT_STRING, "customer-events", 0, 0, NULL, OFF(input_topic), 0,
     "Topic of input events. Events should be keyed by customer id."},
    {"input.framing", CT_ENUM, "raw", 0, 0, "raw|confluent", OFF(input_framing), 0,
     "raw: the value is an Avro body written with input.writer.schema. confluent: magic byte 0, "
     "4-byte big-endian schema id, Avro body (the Confluent serializers' wire format); ids "
     "resolved with input.schema.map, then schema.registry.url."},
    {"input.schema", CT_STRING, "schemas/customer_event.avsc", 0, 0, NULL, OFF(input_schema), 0,
     "Reader schema of input events: writer schemas are resolved against it by field name."},
    {"input.writer.schema", CT_STRING, NULL, 0, 0, NULL, OFF(input_writer_schema), 0,
     "Writer schema of raw-framed values. Default: input.schema."},
    {"input.schema.map", CT_STRING, "", 0, 0, NULL, OFF(input_schema_map), 0,
     "Schema ids of confluent-framed values known locally: ID=PATH,ID=PATH. Other ids are "
     "fetched from schema.registry.url when it is set, else dead-lettered (unknown_schema)."},
    {"input.max.bytes", CT_INT, "1048576", 16, 67108864, NULL, OFF(input_max_bytes), 0,
     "Largest input value accepted; a larger one is a dead letter."},
    {"input.customer.id.field", CT_STRING, "customer_id", 0, 0, NULL, OFF(customer_id_field), 0,
     "Event field holding the customer id (string). Used as Redis key and output key."},
    {"input.event.id.field", CT_STRING, "event_id", 0, 0, NULL, OFF(event_id_field), 0,
     "Event field holding the event id (string); empty if the schema has none."},
    {"input.event.time.field", CT_STRING, "event_time", 0, 0, NULL, OFF(event_time_field), 0,
     "Event field holding the event time (long, ms); the Kafka timestamp if absent."},
    {"model.path", CT_STRING, NULL, 0, 0, NULL, OFF(model_path), F_REQUIRED,
     "XGBoost model file (JSON or UBJSON) saved by XGBoost 1.7 or later."},
    {"model.card", CT_STRING, NULL, 0, 0, NULL, OFF(model_card), 0,
     "Model card (JSON with name, version, feature_names). Default: model.path with its "
     ".json/.ubj extension replaced by .card.json."},
    {"model.name", CT_STRING, NULL, 0, 0, NULL, OFF(model_name), 0,
     "Model name written into predictions. Default: the card's name."},
    {"model.version", CT_STRING, NULL, 0, 0, NULL, OFF(model_version), 0,
     "Model version written into predictions. Default: the card's version."},
    {"model.threshold", CT_DOUBLE, NULL, 0, 1, NULL, OFF(model_threshold), 0,
     "decision = score >= threshold. Default: the model card's threshold, else 0.5."},
    {"model.reload", CT_ENUM, "true", 0, 0, "false|true", OFF(model_reload), 0,
     "Reload the model when model.path or model.card changes (checked every "
     "model.reload.interval.ms; a Kubernetes ConfigMap update is such a change). SIGHUP "
     "reloads in any case. A model whose feature names differ from the running one's, or that "
     "scores a probe batch non-finite, is refused and the running model kept."},
    {"model.reload.interval.ms", CT_INT, "5000", 100, 3600000, NULL, OFF(model_reload_interval_ms),
     0, "How often model.reload looks at the model files."},
    {"drift.window", CT_INT, "10000", 100, 10000000, NULL, OFF(drift_window), 0,
     "Drift: the last this many scored records are compared with the model card's training "
     "baseline (population stability index per feature and of the score)."},
    {"drift.threshold", CT_DOUBLE, "0.2", 0, 100, NULL, OFF(drift_threshold), 0,
     "Drift: a population stability index above this is drift (logged when first crossed; "
     "exported as streamscore_drift_threshold for alerts)."},
    {"features.rename", CT_STRING, "", 0, 0, NULL, OFF(features_rename), 0,
     "Model features read from differently named event fields: FEATURE=FIELD,..."},
    {"output.topic", CT_STRING, "predictions", 0, 0, NULL, OFF(output_topic), 0,
     "Topic of predictions, keyed by customer id."},
    {"output.format", CT_ENUM, "avro", 0, 0, "avro|json", OFF(output_format), 0,
     "Prediction value encoding: Avro binary of output.schema, or a JSON object."},
    {"output.schema", CT_STRING, "schemas/prediction.avsc", 0, 0, NULL, OFF(output_schema), 0,
     "Schema of prediction records."},
    {"output.schema.id", CT_INT, "-1", -1, 2147483647, NULL, OFF(output_schema_id), 0,
     "Frame every Avro output value with this registry schema id (Confluent wire format) "
     "instead of registering output.schema at start-up; -1: register it when "
     "schema.registry.url is set, else raw Avro."},
    {"output.subject.name.strategy", CT_ENUM, "topic", 0, 0, "topic|record|topic-record",
     OFF(output_subject_strategy), 0,
     "Subject the output schema is registered under: topic = <topic>-value (TopicNameStrategy), "
     "record = the record's full name, topic-record = <topic>-<full name>."},
    {"schema.registry.url", CT_STRING, "", 0, 0, NULL, OFF(registry_url), 0,
     "Base URL of a Confluent-compatible Schema Registry API (e.g. http://registry:8081, or "
     "Apicurio's http://HOST/apis/ccompat/v7). Set: writer schemas of confluent-framed input "
     "are fetched by id and cached for the life of the process, and Avro output is "
     "registered and framed with its id. Empty: no registry."},
    {"schema.registry.basic.auth.user.info", CT_STRING, "", 0, 0, NULL, OFF(registry_user_info),
     F_SECRET, "HTTP basic authentication as USER:PASSWORD; empty for none."},
    {"schema.registry.ssl.ca.location", CT_STRING, "", 0, 0, NULL, OFF(registry_ssl_ca), 0,
     "CA certificates (PEM file) to verify the registry with; empty: the system's."},
    {"schema.registry.ssl.certificate.location", CT_STRING, "", 0, 0, NULL, OFF(registry_ssl_cert),
     0, "Client certificate (PEM) for mutual TLS; empty for none."},
    {"schema.registry.ssl.key.location", CT_STRING, "", 0, 0, NULL, OFF(registry_ssl_key), 0,
     "Private key (PEM) of the client certificate."},
    {"schema.registry.ssl.key.password", CT_STRING, "", 0, 0, NULL, OFF(registry_ssl_key_password),
     F_SECRET, "Password of the private key; empty for none."},
    {"schema.registry.ssl.verify", CT_ENUM, "true", 0, 0, "false|true", OFF(registry_ssl_verify), 0,
     "Verify the registry's certificate and host name (https)."},
    {"schema.registry.request.timeout.ms", CT_INT, "5000", 100, 600000, NULL, OFF(registry_timeout_ms),
     0, "Connect and transfer timeout of one registry request."},
    {"schema.registry.retries", CT_INT, "3", 0, 100, NULL, OFF(registry_retries), 0,
     "Retries of a registry request that got no usable answer (connection refused, timeout, "
     "5xx), with backoff; then the record is dead-lettered (registry_unavailable), or, for the "
     "output schema at start-up, the worker exits 1."},
    {"schema.registry.retry.backoff.ms", CT_INT, "200", 1, 600000, NULL, OFF(registry_backoff_ms), 0,
     "First backoff between registry retries; doubled each retry."},
    {"schema.registry.retry.backoff.max.ms", CT_INT, "2000", 1, 600000, NULL,
     OFF(registry_backoff_max_ms), 0, "Longest backoff between registry retries."},
    {"schema.registry.miss.ttl.ms", CT_INT, "10000", 0, 86400000, NULL, OFF(registry_miss_ttl_ms), 0,
     "After a schema id could not be fetched (unknown to the registry, or the registry "
     "unavailable), records with that id are dead-lettered at once for this long before the "
     "registry is asked again: a burst of such records costs one request, not one each."},
    {"shadow.topic", CT_STRING, NULL, 0, 0, NULL, OFF(shadow_topic), 0,
     "Where a shadow (mode = shadow) writes its results; it never writes output.topic. "
     "Default: <output.topic>.shadow."},
    {"shadow.output", CT_ENUM, "topic", 0, 0, "topic|file", OFF(shadow_output), 0,
     "Where a shadow writes its results: shadow.topic, or JSON lines appended to shadow.file."},
    {"shadow.file", CT_STRING, "", 0, 0, NULL, OFF(shadow_file), 0,
     "Shadow results file (JSON lines) when shadow.output = file."},
    {"dlq.topic", CT_STRING, NULL, 0, 0, NULL, OFF(dlq_topic), 0,
     "Dead-letter topic for records that cannot be scored. Default: <input.topic>.dlq for a "
     "primary, <shadow.topic>.dlq for a shadow."},
    {"redis.host", CT_STRING, "127.0.0.1", 0, 0, NULL, OFF(redis_host), 0, "Redis host."},
    {"redis.port", CT_INT, "6379", 1, 65535, NULL, OFF(redis_port), 0, "Redis port."},
    {"redis.password", CT_STRING, "", 0, 0, NULL, OFF(redis_password), F_SECRET,
     "Redis password (AUTH); empty for none."},
    {"redis.db", CT_INT, "0", 0, 1024, NULL, OFF(redis_db), 0, "Redis database number."},
    {"redis.key.prefix", CT_STRING, "streamscore:features:", 0, 0, NULL, OFF(redis_key_prefix), 0,
     "Key of a customer's feature hash: prefix + customer id."},
    {"redis.ttl.seconds", CT_INT, "604800", 1, 315360000, NULL, OFF(redis_ttl_seconds), 0,
     "TTL of a feature hash, refreshed on every write."},
    {"redis.on.error", CT_ENUM, "block", 0, 0, "block|degrade", OFF(redis_on_error), 0,
     "When Redis fails: block pauses consumption and retries with backoff until it answers; "
     "degrade scores with the event's own features, marks the prediction degraded, skips the "
     "write-back, and retries Redis after a backoff."},
    {"redis.timeout.ms", CT_INT, "2000", 10, 600000, NULL, OFF(redis_timeout_ms), 0,
     "Connect and command timeout."},
    {"delivery", CT_ENUM, "at-least-once", 0, 0, "at-least-once|exactly-once", OFF(delivery), 0,
     "at-least-once: one idempotent producer; offsets stored once outputs are acknowledged "
     "(a crash may repeat outputs). exactly-once: a transactional producer per thread; each "
     "batch's outputs and offsets commit in one Kafka transaction (readers use "
     "isolation.level=read_committed); features are written to Redis after the commit."},
    {"delivery.transactional.id", CT_STRING, NULL, 0, 0, NULL, OFF(transactional_id), 0,
     "exactly-once: transactional.id prefix, suffixed -<thread>; keep it stable per instance. "
     "Default: <group id>-<host name>."},
    {"worker.threads", CT_INT, "1", 1, 256, NULL, OFF(worker_threads), 0,
     "Worker threads, each a consumer in the group with its own Redis connection."},
    {"batch.max.messages", CT_INT, "256", 1, 100000, NULL, OFF(batch_max_messages), 0,
     "Most records scored in one batch."},
    {"batch.max.wait.ms", CT_INT, "5", 0, 60000, NULL, OFF(batch_max_wait_ms), 0,
     "Longest wait to fill a batch once its first record arrived; under load a batch is what "
     "was queued meanwhile."},
    {"metrics.listen", CT_STRING, "", 0, 0, NULL, OFF(metrics_listen), 0,
     "host:port of the HTTP endpoints /metrics (Prometheus), /healthz and /readyz, e.g. "
     "0.0.0.0:9464; empty: no HTTP endpoints."},
    {"metrics.lag.interval.ms", CT_INT, "5000", 100, 3600000, NULL, OFF(metrics_lag_interval_ms),
     0, "How often consumer lag is refreshed (librdkafka statistics.interval.ms of the "
     "consumers) when metrics.listen is set."},
    {"shutdown.timeout.ms", CT_INT, "30000", 100, 600000, NULL, OFF(shutdown_timeout_ms), 0,
     "On SIGTERM, longest wait for outstanding deliveries before exiting."},
    {"compare.labels", CT_STRING, "", 0, 0, NULL, OFF(compare_labels), 0,
     "streamscore compare: labels as a CSV file (customer_id,label,time) or topic:NAME "
     "(JSON values with the same fields); empty for none."},
    {"compare.output.dir", CT_STRING, "streamscore-compare", 0, 0, NULL, OFF(compare_output_dir), 0,
     "streamscore compare: folder for compare.json and compare.html."},
    {"compare.timeout.ms", CT_INT, "30000", 100, 3600000, NULL, OFF(compare_timeout_ms), 0,
     "streamscore compare: longest wait for topic data."},
    {"promote.max.flip.rate", CT_DOUBLE, "-1", -1, 1, NULL, OFF(promote_max_flip_rate), 0,
     "Promotion: most decisions flipped (share of identical-feature pairs); negative: not checked."},
    {"promote.max.score.diff.p99", CT_DOUBLE, "-1", -1, 1, NULL, OFF(promote_max_score_diff_p99), 0,
     "Promotion: largest p99 of |candidate - primary| score; negative: not checked."},
    {"promote.max.auc.drop", CT_DOUBLE, "-1", -1, 1, NULL, OFF(promote_max_auc_drop), 0,
     "Promotion: candidate ROC-AUC no worse than primary's minus this (needs labels); "
     "negative: not checked."},
    {"promote.max.latency.p99.ms", CT_DOUBLE, "-1", -1, 3600000, NULL, OFF(promote_max_latency_p99_ms), 0,
     "Promotion: largest candidate p99 event-to-score latency; negative: not checked."},
    {"promote.min.matched.share", CT_DOUBLE, "-1", -1, 1, NULL, OFF(promote_min_matched_share), 0,
     "Promotion: least share of primary predictions with a shadow result; negative: not checked."},
    {"validate.label.field", CT_STRING, "churned", 0, 0, NULL, OFF(validate_label_field), 0,
     "streamscore validate-model: boolean or int label field of the data set's records."},
    {"validate.min.roc.auc", CT_DOUBLE, "0.85", 0, 1, NULL, OFF(validate_min_roc_auc), 0,
     "Gate: least ROC-AUC."},
    {"validate.min.precision", CT_DOUBLE, "0.75", 0, 1, NULL, OFF(validate_min_precision), 0,
     "Gate: least precision at model.threshold."},
    {"validate.min.recall", CT_DOUBLE, "0.70", 0, 1, NULL, OFF(validate_min_recall), 0,
     "Gate: least recall at model.threshold."},
    {"validate.min.f1", CT_DOUBLE, "0.72", 0, 1, NULL, OFF(validate_min_f1), 0,
     "Gate: least F1 at model.threshold."},
    {"validate.max.model.mb", CT_DOUBLE, "500", 0, 1000000, NULL, OFF(validate_max_model_mb), 0,
     "Gate: largest model file, in MB (10^6 bytes)."},
    {"validate.max.batch.p99.ms", CT_DOUBLE, "-1", -1, 600000, NULL, OFF(validate_max_batch_p99_ms), 0,
     "Gate: largest p99 time to score one batch of batch.max.messages rows; negative: not checked."},
    {"log.level", CT_LOGLEVEL, "info", 0, 0, "debug|info|warn|error", OFF(log_level), 0,
     "Least severe level logged."},
};

#define N_DEFS (sizeof(defs) / sizeof(defs[0]))

static const char *kafka_prefixes[] = {"kafka.consumer.", "kafka.producer.", "kafka."};
static const int kafka_scopes[] = {SS_KAFKA_CONSUMER, SS_KAFKA_PRODUCER, SS_KAFKA_BOTH};

const char *ss_mode_name(int mode) { return mode == SS_MODE_SHADOW ? "shadow" : "primary"; }

static const conf_def_t *find_def(const char *key) {
    for (size_t i = 0; i < N_DEFS; i++)
        if (strcmp(defs[i].key, key) == 0)
            return &defs[i];
    return NULL;
}

static int enum_index(const char *enums, const char *value) {
    size_t vlen = strlen(value);
    int idx = 0;
    for (const char *p = enums;; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncmp(p, value, len) == 0)
            return idx;
        if (!bar)
            return SS_ERR_CONFIG;
        p = bar + 1;
    }
}

static int set_kafka(ss_config_t *cfg, const char *key, const char *value, char *errstr,
                     size_t errlen) {
    for (size_t i = 0; i < 3; i++) {
        size_t plen = strlen(kafka_prefixes[i]);
        if (strncmp(key, kafka_prefixes[i], plen) != 0)
            continue;
        const char *name = key + plen;
        if (!*name) {
            snprintf(errstr, errlen, "key '%s': a librdkafka property name must follow the prefix",
                     key);
            return SS_ERR_CONFIG;
        }
        /* Let librdkafka judge the name and value now, so a typo is a config error. */
        rd_kafka_conf_t *probe = rd_kafka_conf_new();
        char rderr[256];
        rd_kafka_conf_res_t res = rd_kafka_conf_set(probe, name, value, rderr, sizeof(rderr));
        rd_kafka_conf_destroy(probe);
        if (res != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errlen, "key '%s': %s", key, rderr);
            return SS_ERR_CONFIG;
        }
        for (size_t j = 0; j < cfg->n_kafka; j++) {
            if (cfg->kafka[j].scope == kafka_scopes[i] && strcmp(cfg->kafka[j].key, name) == 0) {
                free(cfg->kafka[j].value);
                cfg->kafka[j].value = strdup(value);
                return 0;
            }
        }
        ss_kv_t *kv = realloc(cfg->kafka, (cfg->n_kafka + 1) * sizeof(*kv));
        if (!kv)
            return SS_ERR_NOMEM;
        cfg->kafka = kv;
        kv[cfg->n_kafka].key = strdup(name);
        kv[cfg->n_kafka].value = strdup(value);
        kv[cfg->n_kafka].scope = kafka_scopes[i];
        cfg->n_kafka++;
        return 0;
    }
    return 1; /* not a kafka key */
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        return SS_ERR_CONFIG;
    *out = v;
    return 0;
}

int ss_config_set(ss_config_t *cfg, const char *key, const char *value, const char *origin,
                  char *errstr, size_t errlen) {
    char err[512];
    int rc = set_kafka(cfg, key, value, err, sizeof(err));
    if (rc == 0)
        return 0;
    if (rc < 0) {
        snprintf(errstr, errlen, "config (%s): %s", origin,
                 rc == SS_ERR_NOMEM ? "out of memory" : err);
        return rc;
    }
    const conf_def_t *d = find_def(key);
    if (!d) {
        snprintf(errstr, errlen, "config (%s): unknown key '%s' (see 'streamscore --help')", origin,
                 key);
        return SS_ERR_CONFIG;
    }
    char *field = (char *)cfg + d->offset;
    switch (d->type) {
    case CT_STRING: {
        char **sp = (char **)field;
        free(*sp);
        *sp = strdup(value);
        return 0;
    }
    case CT_INT: {
        long v;
        if (parse_long(value, &v) < 0) {
            snprintf(errstr, errlen, "config (%s): key '%s': expected an integer, got '%s'", origin,
                     key, value);
            return SS_ERR_CONFIG;
        }
        if (v < (long)d->min || v > (long)d->max) {
            snprintf(errstr, errlen, "config (%s): key '%s': %ld is out of range [%.0f, %.0f]",
                     origin, key, v, d->min, d->max);
            return SS_ERR_CONFIG;
        }
        *(long *)field = v;
        return 0;
    }
    case CT_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) {
            snprintf(errstr, errlen, "config (%s): key '%s': expected a number, got '%s'", origin,
                     key, value);
            return SS_ERR_CONFIG;
        }
        if (v < d->min || v > d->max) {
            snprintf(errstr, errlen, "config (%s): key '%s': %g is out of range [%g, %g]", origin,
                     key, v, d->min, d->max);
            return SS_ERR_CONFIG;
        }
        *(double *)field = v;
        return 0;
    }
    case CT_ENUM:
    case CT_LOGLEVEL: {
        int idx = enum_index(d->enums, value);
        if (idx < 0) {
            snprintf(errstr, errlen, "config (%s): key '%s': '%s' is not one of %s", origin, key,
                     value, d->enums);
            return SS_ERR_CONFIG;
        }
        *(int *)field = idx;
        return 0;
    }
    }
    return SS_ERR_CONFIG;
}

ss_config_t *ss_config_new(void) {
    ss_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->model_threshold = NAN; /* not set: the model card decides */
    char err[256];
    for (size_t i = 0; i < N_DEFS; i++) {
        if (defs[i].def && ss_config_set(cfg, defs[i].key, defs[i].def, "default", err,
                                         sizeof(err)) < 0) {
            ss_config_destroy(cfg);
            return NULL;
        }
    }
    return cfg;
}

void ss_config_destroy(ss_config_t *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < N_DEFS; i++)
        if (defs[i].type == CT_STRING)
            free(*(char **)((char *)cfg + defs[i].offset));
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    free(cfg);
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\f')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\f'))
        s[--n] = '\0';
    return s;
}

int ss_config_load_string(ss_config_t *cfg, const char *text, size_t len, const char *name,
                          char *errstr, size_t errlen) {
    char *buf = malloc(len + 1);
    if (!buf) {
        snprintf(errstr, errlen, "config: out of memory");
        return SS_ERR_NOMEM;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        snprintf(errstr, errlen, "config (%s): contains a NUL byte", name);
        free(buf);
        return SS_ERR_CONFIG;
    }
    int rc = 0, lineno = 0;
    char *logical = NULL, *next = buf;
    size_t loglen = 0;
    int start_line = 0;
    while (next) {
        char *line = next;
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        next = nl ? nl + 1 : NULL;
        lineno++;
        char *t = trim(line);
        if (!logical && (*t == '#' || *t == '!' || *t == '\0'))
            continue;
        size_t tl = strlen(t);
        int cont = tl > 0 && t[tl - 1] == '\\';
        if (cont)
            t[--tl] = '\0';
        char *grown = realloc(logical, loglen + tl + 1);
        if (!grown) {
            rc = SS_ERR_NOMEM;
            snprintf(errstr, errlen, "config: out of memory");
            break;
        }
        if (!logical)
            start_line = lineno;
        logical = grown;
        memcpy(logical + loglen, t, tl + 1);
        loglen += tl;
        if (cont)
            continue;

        char *sep = logical + strcspn(logical, "=:");
        char origin[300];
        snprintf(origin, sizeof(origin), "%s:%d", name, start_line);
        if (*sep == '\0') {
            snprintf(errstr, errlen, "config (%s): expected 'key = value', got '%.80s'", origin,
                     logical);
            rc = SS_ERR_CONFIG;
            break;
        }
        *sep = '\0';
        char *key = trim(logical), *value = trim(sep + 1);
        if (!*key) {
            snprintf(errstr, errlen, "config (%s): empty key", origin);
            rc = SS_ERR_CONFIG;
            break;
        }
        if ((rc = ss_config_set(cfg, key, value, origin, errstr, errlen)) < 0)
            break;
        free(logical);
        logical = NULL;
        loglen = 0;
    }
    free(logical);
    free(buf);
    return rc;
}

int ss_config_load_file(ss_config_t *cfg, const char *path, char *errstr, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errlen, "config: cannot open '%s': %s", path, strerror(errno));
        return SS_ERR_CONFIG;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            char *g = realloc(text, cap);
            if (!g) {
                rc = SS_ERR_NOMEM;
                break;
            }
            text = g;
        }
        memcpy(text + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (rc == 0)
        rc = ss_config_load_string(cfg, text ? text : "", len, path, errstr, errlen);
    else
        snprintf(errstr, errlen, "config: out of memory reading '%s'", path);
    free(text);
    return rc;
}

void ss_config_env_name(const char *key, char *out, size_t outlen) {
    size_t n = (size_t)snprintf(out, outlen, "STREAMSCORE_");
    for (const char *p = key; *p && n + 1 < outlen; p++)
        out[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    out[n < outlen ? n : outlen - 1] = '\0';
}

int ss_config_apply_env(ss_config_t *cfg, char **envp, void (*unknown_cb)(const char *name),
                        char *errstr, size_t errlen) {
    static const char prefix[] = "STREAMSCORE_";
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - *e);
        char name[256], key[256], origin[300];
        if (nlen >= sizeof(name))
            continue;
        memcpy(name, *e, nlen);
        name[nlen] = '\0';
        size_t k = 0;
        for (const char *p = name + sizeof(prefix) - 1; *p && k + 1 < sizeof(key); p++)
            key[k++] = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        key[k] = '\0';
        snprintf(origin, sizeof(origin), "env %s", name);
        int is_kafka = strncmp(key, "kafka.", 6) == 0;
        if (!is_kafka && !find_def(key)) {
            if (unknown_cb)
                unknown_cb(name);
            continue;
        }
        int rc = ss_config_set(cfg, key, eq + 1, origin, errstr, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ss_config_parse_pairs(const char *list, const char *key,
                          int (*cb)(void *opaque, const char *k, const char *v, char *errstr,
                                    size_t errlen),
                          void *opaque, char *errstr, size_t errlen) {
    char *copy = strdup(list ? list : "");
    if (!copy) {
        snprintf(errstr, errlen, "config: key '%s': out of memory", key);
        return SS_ERR_NOMEM;
    }
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *t = trim(item);
        if (!*t)
            continue;
        char *eq = strchr(t, '=');
        if (!eq) {
            snprintf(errstr, errlen, "config: key '%s': expected NAME=VALUE, got '%s'", key, t);
            rc = SS_ERR_CONFIG;
            break;
        }
        *eq = '\0';
        char *k = trim(t), *v = trim(eq + 1);
        if (!*k || !*v) {
            snprintf(errstr, errlen, "config: key '%s': empty name or value in '%s=%s'", key, k, v);
            rc = SS_ERR_CONFIG;
            break;
        }
        char err[400];
        if (cb(opaque, k, v, err, sizeof(err)) < 0) {
            snprintf(errstr, errlen, "config: key '%s': %s", key, err);
            rc = SS_ERR_CONFIG;
            break;
        }
    }
    free(copy);
    return rc;
}

static int check_pair_nonempty(void *opaque, const char *k, const char *v, char *errstr,
                               size_t errlen) {
    (void)opaque;
    (void)k;
    (void)v;
    (void)errstr;
    (void)errlen;
    return 0;
}

static int check_schema_id(void *opaque, const char *k, const char *v, char *errstr,
                           size_t errlen) {
    (void)opaque;
    (void)v;
    long id;
    if (parse_long(k, &id) < 0 || id < 0 || id > 0x7fffffffL) {
        snprintf(errstr, errlen, "'%s' is not a schema id (0 to 2147483647)", k);
        return SS_ERR_CONFIG;
    }
    return 0;
}

static char *dup_replace_ext(const char *path, const char *ext) {
    size_t n = strlen(path);
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash) &&
        (strcmp(dot, ".json") == 0 || strcmp(dot, ".ubj") == 0 || strcmp(dot, ".ubjson") == 0))
        n = (size_t)(dot - path);
    char *out = malloc(n + strlen(ext) + 1);
    if (!out)
        return NULL;
    memcpy(out, path, n);
    strcpy(out + n, ext);
    return out;
}

static int has_kafka(const ss_config_t *cfg, const char *name) {
    for (size_t i = 0; i < cfg->n_kafka; i++)
        if (strcmp(cfg->kafka[i].key, name) == 0)
            return 1;
    return 0;
}

int ss_config_finalize(ss_config_t *cfg, char *errstr, size_t errlen) {
    return ss_config_finalize_for(cfg, SS_NEED_MODEL | SS_NEED_KAFKA, errstr, errlen);
}

int ss_config_finalize_for(ss_config_t *cfg, int needs, char *errstr, size_t errlen) {
    for (size_t i = 0; i < N_DEFS; i++) {
        if (!(defs[i].flags & F_REQUIRED) || !(needs & SS_NEED_MODEL))
            continue;
        char *v = *(char **)((char *)cfg + defs[i].offset);
        if (!v || !*v) {
            char env[128];
            ss_config_env_name(defs[i].key, env, sizeof(env));
            snprintf(errstr, errlen, "config: key '%s' is required (set it in the file or %s)",
                     defs[i].key, env);
            return SS_ERR_CONFIG;
        }
    }
    if (!*cfg->input_topic || !*cfg->output_topic) {
        snprintf(errstr, errlen, "config: key '%s' must not be empty",
                 !*cfg->input_topic ? "input.topic" : "output.topic");
        return SS_ERR_CONFIG;
    }
    if (!*cfg->customer_id_field) {
        snprintf(errstr, errlen, "config: key 'input.customer.id.field' must not be empty");
        return SS_ERR_CONFIG;
    }
    if (!cfg->input_writer_schema || !*cfg->input_writer_schema) {
        free(cfg->input_writer_schema);
        cfg->input_writer_schema = strdup(cfg->input_schema);
    }
    if (!cfg->model_card || !*cfg->model_card) {
        free(cfg->model_card);
        cfg->model_card = dup_replace_ext(cfg->model_path ? cfg->model_path : "", ".card.json");
    }
    if (cfg->input_framing == SS_FRAMING_CONFLUENT && !*cfg->input_schema_map &&
        !*cfg->registry_url) {
        snprintf(errstr, errlen, "config: key 'input.schema.map' (or schema.registry.url) is "
                                 "required when input.framing = confluent");
        return SS_ERR_CONFIG;
    }
    if (ss_config_parse_pairs(cfg->input_schema_map, "input.schema.map", check_schema_id, NULL,
                              errstr, errlen) < 0)
        return SS_ERR_CONFIG;
    if (*cfg->registry_url && strncmp(cfg->registry_url, "http://", 7) != 0 &&
        strncmp(cfg->registry_url, "https://", 8) != 0) {
        snprintf(errstr, errlen, "config: key 'schema.registry.url': '%s' is not an http:// or "
                 "https:// URL", cfg->registry_url);
        return SS_ERR_CONFIG;
    }
    if (*cfg->registry_user_info && !strchr(cfg->registry_user_info, ':')) {
        snprintf(errstr, errlen, "config: key 'schema.registry.basic.auth.user.info' must be "
                                 "USER:PASSWORD");
        return SS_ERR_CONFIG;
    }
    if (ss_config_parse_pairs(cfg->features_rename, "features.rename", check_pair_nonempty, NULL,
                              errstr, errlen) < 0)
        return SS_ERR_CONFIG;
    if (*cfg->metrics_listen) {
        char host[256];
        int port;
        if (ss_config_parse_listen(cfg->metrics_listen, host, sizeof(host), &port) < 0) {
            snprintf(errstr, errlen,
                     "config: key 'metrics.listen': '%s' is not host:port (e.g. 0.0.0.0:9464, "
                     "port 1..65535)", cfg->metrics_listen);
            return SS_ERR_CONFIG;
        }
    }
    if (cfg->shadow_output == SS_SHADOW_FILE && !*cfg->shadow_file) {
        snprintf(errstr, errlen, "config: key 'shadow.file' is required when shadow.output = file");
        return SS_ERR_CONFIG;
    }
    if ((needs & SS_NEED_KAFKA) && !has_kafka(cfg, "bootstrap.servers")) {
        snprintf(errstr, errlen,
                 "config: key 'kafka.bootstrap.servers' is required (or STREAMSCORE_KAFKA_BOOTSTRAP_SERVERS)");
        return SS_ERR_CONFIG;
    }
    if (!cfg->shadow_topic || !*cfg->shadow_topic) {
        free(cfg->shadow_topic);
        size_t n = strlen(cfg->output_topic) + 8;
        cfg->shadow_topic = malloc(n);
        if (cfg->shadow_topic)
            snprintf(cfg->shadow_topic, n, "%s.shadow", cfg->output_topic);
    }
    if (cfg->shadow_topic && (!cfg->dlq_topic || !*cfg->dlq_topic)) {
        /* a shadow's dead letters are its own: the primary already dead-letters the same
         * records to <input.topic>.dlq */
        const char *base = cfg->mode == SS_MODE_SHADOW ? cfg->shadow_topic : cfg->input_topic;
        free(cfg->dlq_topic);
        size_t n = strlen(base) + 5;
        cfg->dlq_topic = malloc(n);
        if (cfg->dlq_topic)
            snprintf(cfg->dlq_topic, n, "%s.dlq", base);
    }
    if (!cfg->dlq_topic || !cfg->shadow_topic || !cfg->model_card || !cfg->input_writer_schema) {
        snprintf(errstr, errlen, "config: out of memory");
        return SS_ERR_NOMEM;
    }
    if (strcmp(cfg->dlq_topic, cfg->output_topic) == 0 || strcmp(cfg->dlq_topic, cfg->input_topic) == 0) {
        snprintf(errstr, errlen, "config: key 'dlq.topic' must differ from input.topic and output.topic");
        return SS_ERR_CONFIG;
    }
    if (strcmp(cfg->shadow_topic, cfg->output_topic) == 0) {
        /* a shadow must never write to the primary's topic */
        snprintf(errstr, errlen, "config: key 'shadow.topic' must differ from output.topic ('%s')",
                 cfg->output_topic);
        return SS_ERR_CONFIG;
    }
    if (!has_kafka(cfg, "group.id")) {
        char err[256];
        if (ss_config_set(cfg, "kafka.consumer.group.id",
                          cfg->mode == SS_MODE_SHADOW ? "streamscore-shadow" : "streamscore",
                          "default", err, sizeof(err)) < 0) {
            snprintf(errstr, errlen, "%s", err);
            return SS_ERR_CONFIG;
        }
    }
    if (!cfg->transactional_id || !*cfg->transactional_id) {
        char host[256] = "localhost", tid[600];
        gethostname(host, sizeof(host) - 1);
        const char *group = "streamscore";
        for (size_t i = 0; i < cfg->n_kafka; i++)
            if (strcmp(cfg->kafka[i].key, "group.id") == 0)
                group = cfg->kafka[i].value;
        snprintf(tid, sizeof(tid), "%s-%s", group, host);
        free(cfg->transactional_id);
        cfg->transactional_id = strdup(tid);
    }
    ss_log_set_level((ss_log_level_t)cfg->log_level);
    return 0;
}

int ss_config_parse_listen(const char *s, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
        return SS_ERR_CONFIG;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 1 || p > 65535)
        return SS_ERR_CONFIG;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)p;
    return 0;
}

void ss_config_print_reference(int markdown) {
    if (markdown) {
        printf("| key | type | default | range / values | environment variable | description |\n");
        printf("| --- | --- | --- | --- | --- | --- |\n");
    }
    for (size_t i = 0; i < N_DEFS; i++) {
        const conf_def_t *d = &defs[i];
        const char *type = d->type == CT_INT      ? "int"
                           : d->type == CT_DOUBLE ? "number"
                           : d->type == CT_STRING ? "string"
                                                  : "enum";
        char range[64] = "";
        if (d->type == CT_INT)
            snprintf(range, sizeof(range), "%.0f .. %.0f", d->min, d->max);
        else if (d->type == CT_DOUBLE)
            snprintf(range, sizeof(range), "%g .. %g", d->min, d->max);
        else if (d->enums)
            snprintf(range, sizeof(range), "%s", d->enums);
        char env[128];
        ss_config_env_name(d->key, env, sizeof(env));
        const char *def = d->def ? d->def : (d->flags & F_REQUIRED) ? "(required)" : "(derived)";
        if (markdown) {
            char r2[80];
            size_t k = 0;
            for (const char *p = range; *p && k + 2 < sizeof(r2); p++) {
                if (*p == '|')
                    r2[k++] = '\\';
                r2[k++] = *p;
            }
            r2[k] = '\0';
            char shown[160];
            if (!*def)
                snprintf(shown, sizeof(shown), "(empty)");
            else if (*def == '(')
                snprintf(shown, sizeof(shown), "%s", def);
            else
                snprintf(shown, sizeof(shown), "`%s`", def);
            printf("| `%s` | %s | %s | %s | `%s` | %s |\n", d->key, type, shown, r2, env, d->doc);
        } else {
            printf("  %-26s %-6s default: %s%s%s\n      %s\n", d->key, type, *def ? def : "(empty)",
                   *range ? "  range: " : "", range, d->doc);
        }
    }
    const char *kdoc =
        "kafka.<property> is passed to librdkafka for the consumer and the producer; "
        "kafka.consumer.<property> and kafka.producer.<property> for one side only. "
        "kafka.bootstrap.servers is required; kafka.group.id defaults to streamscore "
        "(primary) or streamscore-shadow (shadow).";
    if (markdown)
        printf("| `kafka.*` | string | | | `STREAMSCORE_KAFKA_*` | %s |\n", kdoc);
    else
        printf("  kafka.*\n      %s\n", kdoc);
}
