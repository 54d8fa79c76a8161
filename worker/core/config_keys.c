/* config_keys.c - the one table of configuration keys: type, default, bounds, scope (the
 * commands that read a key, and the Kafka client it concerns) and doc. Parsing, defaults,
 * environment overrides, --help per command and the README's reference all read it. */
#include "config_int.h"

#include <stdio.h>
#include <string.h>

/* One key a line: KIND(key, field of ss_config_t, default, [min, max | values,] scope, doc).
 * A NULL default: none; a rule derives the value, or the key is REQUIRED by the commands
 * that read it. Defaults are text, parsed by the key's setter as any other source is; a
 * BOOL's is true or false. A SECRET is two rows: the key, set only from the environment
 * (never from a properties file nor -X, which others may read), and <key>.file, a file
 * holding it (a Kubernetes Secret mounted as a volume), read by the rule secrets_from_files. */
// clang-format off
#define SECRET_DOC(key) "A secret: only from the environment variable or the file named by " key ".file; refused in a properties file and in -X."
#define SECRET_FILE_DOC(key) "File holding " key " (e.g. a Kubernetes Secret mounted as a volume): its content, one trailing newline stripped; empty for none."
#define OFF(f) offsetof(ss_config_t, f)
#define STR(key, f, def, scope, doc)          {key, SS_CT_STRING, def, 0, 0, NULL, OFF(f), scope, 0, doc}
#define SECRET(key, f, scope, doc)            {key, SS_CT_STRING, "", 0, 0, NULL, OFF(f), scope, SS_KEY_SECRET, doc " " SECRET_DOC(key)}, \
                                              {key ".file", SS_CT_STRING, "", 0, 0, NULL, OFF(f##_file), scope, SS_KEY_SECRET_FILE, SECRET_FILE_DOC(key)}
#define REQUIRED(key, f, scope, doc)          {key, SS_CT_STRING, NULL, 0, 0, NULL, OFF(f), scope, SS_KEY_REQUIRED, doc}
#define INT(key, f, def, lo, hi, scope, doc)  {key, SS_CT_INT, def, lo, hi, NULL, OFF(f), scope, 0, doc}
#define NUM(key, f, def, lo, hi, scope, doc)  {key, SS_CT_DOUBLE, def, lo, hi, NULL, OFF(f), scope, 0, doc}
#define ENUM(key, f, def, values, scope, doc) {key, SS_CT_ENUM, def, 0, 0, values, OFF(f), scope, 0, doc}
#define BOOL(key, f, def, scope, doc)         ENUM(key, f, #def, "false|true", scope, doc)
// clang-format on

/* Scope: the commands that read a key (check-config checks what run reads) | the worker's
 * Kafka client the key configures or names a topic of. */
#define RUN SS_CMD_RUN
#define COMPARE SS_CMD_COMPARE
#define VALIDATE SS_CMD_VALIDATE
#define ALL SS_CMD_ALL
#define ROLLOUT SS_CMD_ROLLOUT
#define CONSUMER SS_SCOPE_CONSUMER
#define PRODUCER SS_SCOPE_PRODUCER

const ss_config__key_t ss_config__keys[] = {
    // clang-format off
    ENUM("mode", mode, "primary", "primary|shadow", RUN, "primary scores, produces to output.topic and writes features to Redis; shadow scores a candidate model and only records its results."),
    STR("input.topic", input_topic, "customer-events", RUN | CONSUMER, "Topic of input events. Events should be keyed by customer id."),
    ENUM("input.framing", input_framing, "raw", "raw|confluent", RUN | VALIDATE, "raw: the value is an Avro body written with input.writer.schema. confluent: magic byte 0, 4-byte big-endian schema id, Avro body (the Confluent serializers' wire format); ids resolved with input.schema.map, then schema.registry.url."),
    STR("input.schema", input_schema, "schemas/customer_event.avsc", RUN | VALIDATE, "Reader schema of input events: writer schemas are resolved against it by field name. The default is compiled in too: it works from any directory."),
    STR("input.writer.schema", input_writer_schema, NULL, RUN | VALIDATE, "Writer schema of raw-framed values. Default: input.schema."),
    STR("input.schema.map", input_schema_map, "", RUN | VALIDATE, "Schema ids of confluent-framed values known locally: ID=PATH,ID=PATH. Other ids are fetched from schema.registry.url when it is set, else dead-lettered (unknown_schema)."),
    INT("input.max.bytes", input_max_bytes, "1048576", 16, 67108864, RUN, "Largest input value accepted; a larger one is a dead letter."),
    STR("input.customer.id.field", customer_id_field, "customer_id", RUN | VALIDATE, "Event field holding the customer id (string). Used as Redis key and output key."),
    STR("input.event.id.field", event_id_field, "event_id", RUN | VALIDATE, "Event field holding the event id (string); empty if the schema has none."),
    STR("input.event.time.field", event_time_field, "event_time", RUN | VALIDATE, "Event field holding the event time (long, ms); the Kafka timestamp if absent."),
    REQUIRED("model.path", model_path, RUN | VALIDATE, "XGBoost model file (JSON or UBJSON) saved by XGBoost 1.7 or later."),
    STR("model.card", model_card, NULL, RUN | VALIDATE, "Model card (JSON with name, version, feature_names). Default: model.path with its .json/.ubj extension replaced by .card.json."),
    STR("model.name", model_name, NULL, RUN | VALIDATE, "Model name written into predictions. Default: the card's name."),
    STR("model.version", model_version, NULL, RUN | VALIDATE, "Model version written into predictions. Default: the card's version."),
    NUM("model.threshold", model_threshold, NULL, -1e300, 1e300, RUN | VALIDATE, "decision = score >= threshold. Default: the model card's threshold, else the objective's: 0.5 for binary:logistic and binary:hinge, 0 for binary:logitraw (a margin), none for the others (decision is null; a multi-class model's decision is predicted_class). A binary probability's threshold must be in [0, 1]; setting one gives a regression, ranking or survival model a decision."),
    ENUM("model.predictor", model_predictor, "auto", "auto|xgboost", RUN | VALIDATE, "What scores: auto compiles the model's trees into the worker's own tree walker when every part of the model is one it reproduces exactly (one output; objective binary:logistic, reg:logistic, binary:logitraw or reg:squarederror; numerical splits; trees of at most 16 levels) and the compiled trees give XGBoost's bits on rows that take every split both ways, checked at every load; any other model, and xgboost, score through XGBoost's predictor (XGBoosterPredictFromDense). The log says which."),
    STR("model.signature.key", model_signature_key, "", RUN | VALIDATE | ROLLOUT, "PEM file of an Ed25519 public key. Set: a model file is loaded only when model.signature holds its signature by the matching private key (at start-up a model without one exits 2; a reload keeps the running model). Empty: no signature is needed."),
    STR("model.signature", model_signature, NULL, RUN | VALIDATE, "The model file's Ed25519 signature, 64 raw bytes as `openssl pkeyutl -sign -rawin -inkey KEY -in MODEL -out MODEL.sig` writes it; read when model.signature.key is set. Default: model.path with .sig appended."),
    BOOL("model.reload", model_reload, true, RUN, "Reload the model when model.path or model.card changes (checked every model.reload.interval.ms; a Kubernetes ConfigMap update is such a change). SIGHUP reloads in any case. A model whose feature names differ from the running one's, or that scores a probe batch non-finite, is refused and the running model kept."),
    INT("model.reload.interval.ms", model_reload_interval_ms, "5000", 100, 3600000, RUN, "How often model.reload looks at the model files."),
    INT("explain.top.k", explain_top_k, "0", 0, 1000, RUN, "Explanations: each explained prediction carries the this many features with the largest absolute contributions (XGBoost's exact TreeSHAP), with their values, and the bias term; for a multi-output model, of the predicted class (or of the output that is the score). 0: none."),
    NUM("explain.sample", explain_sample, "1", 0, 1, RUN, "Explanations: the share of events explained, chosen by a hash of the source partition and offset (the same events on every run)."),
    STR("explain.when", explain_when, "always", RUN, "Explanations: which predictions are explained: always; decision (a binary decision that is true); class:N[,N...] (a multi-class prediction of one of these classes). Combined with explain.sample."),
    STR("explain.topic", explain_topic, "", RUN | PRODUCER, "Explanations: when set, predictions go to the output topic without contributions and each explained one goes, with them, to this topic as well (the same prediction record, keyed by customer id); empty: in the prediction itself."),
    ENUM("features.unseen.category", features_unseen_category, "dead_letter", "dead_letter|missing|other", RUN | VALIDATE, "A categorical feature's Avro enum symbol or string that is not one of the categories the model was trained with: dead_letter (reason unknown_category; XGBoost refuses such data too), missing (scored as a missing value) or other (scored as a category in no split's set, as XGBoost scores a code it has not seen)."),
    INT("drift.window", drift_window, "10000", 100, 10000000, RUN, "Drift: the last this many scored records are compared with the model card's training baseline (population stability index per feature and of the score)."),
    NUM("drift.threshold", drift_threshold, "0.2", 0, 100, RUN, "Drift: a population stability index above this is drift (logged when first crossed; exported as streamscore_drift_threshold for alerts)."),
    STR("features.rename", features_rename, "", RUN | VALIDATE, "Model features read from differently named event fields: FEATURE=FIELD,..."),
    STR("output.topic", output_topic, "predictions", RUN | COMPARE | PRODUCER, "Topic of predictions, keyed by customer id."),
    ENUM("output.format", output_format, "avro", "avro|json", RUN | COMPARE, "Prediction value encoding: Avro binary of output.schema, or a JSON object."),
    STR("output.schema", output_schema, "schemas/prediction.avsc", RUN | COMPARE, "Schema of prediction records. The default is compiled in too: it works from any directory."),
    INT("output.schema.id", output_schema_id, "-1", -1, 2147483647, RUN | COMPARE, "Frame every Avro output value with this registry schema id (Confluent wire format) instead of registering output.schema at start-up; -1: register it when schema.registry.url is set, else raw Avro."),
    ENUM("output.subject.name.strategy", output_subject_strategy, "topic", "topic|record|topic-record", RUN, "Subject the output schema is registered under: topic = <topic>-value (TopicNameStrategy), record = the record's full name, topic-record = <topic>-<full name>."),
    STR("schema.registry.url", registry_url, "", RUN | COMPARE, "Base URL of a Confluent-compatible Schema Registry API (e.g. http://registry:8081, or Apicurio's http://HOST/apis/ccompat/v7). Set: writer schemas of confluent-framed input are fetched by id and cached for the life of the process, and Avro output is registered and framed with its id. Empty: no registry."),
    SECRET("schema.registry.basic.auth.user.info", registry_user_info, RUN, "HTTP basic authentication as USER:PASSWORD; empty for none."),
    STR("schema.registry.ssl.ca.location", registry_ssl_ca, "", RUN, "CA certificates (PEM file) to verify the registry with; empty: the system's."),
    STR("schema.registry.ssl.certificate.location", registry_ssl_cert, "", RUN, "Client certificate (PEM) for mutual TLS; empty for none."),
    STR("schema.registry.ssl.key.location", registry_ssl_key, "", RUN, "Private key (PEM) of the client certificate."),
    SECRET("schema.registry.ssl.key.password", registry_ssl_key_password, RUN, "Password of the private key; empty for none."),
    BOOL("schema.registry.ssl.verify", registry_ssl_verify, true, RUN, "Verify the registry's certificate and host name (https)."),
    INT("schema.registry.request.timeout.ms", registry_timeout_ms, "5000", 100, 600000, RUN, "Connect and transfer timeout of one registry request."),
    INT("schema.registry.retries", registry_retries, "3", 0, 100, RUN, "Retries of a registry request that got no usable answer (connection refused, timeout, 5xx), with backoff; then the record is dead-lettered (registry_unavailable), or, for the output schema at start-up, the worker exits 1."),
    INT("schema.registry.retry.backoff.ms", registry_backoff_ms, "200", 1, 600000, RUN, "First backoff between registry retries; doubled each retry."),
    INT("schema.registry.retry.backoff.max.ms", registry_backoff_max_ms, "2000", 1, 600000, RUN, "Longest backoff between registry retries."),
    INT("schema.registry.miss.ttl.ms", registry_miss_ttl_ms, "10000", 0, 86400000, RUN, "After a schema id could not be fetched (unknown to the registry, or the registry unavailable), records with that id are dead-lettered at once for this long before the registry is asked again: a burst of such records costs one request, not one each."),
    INT("schema.registry.fetch.rate", registry_fetch_rate, "10", 1, 100000, RUN, "Schema ids fetched from the registry at most per second (a token bucket holding as many). A record whose id is neither known nor remembered as missing, seen while no fetch is left, is dead-lettered at once (registry_unavailable, the message naming this key) without asking the registry; a later record with that id asks again. Bounds what a producer writing random ids costs the worker and the registry."),
    STR("shadow.topic", shadow_topic, NULL, RUN | COMPARE | PRODUCER, "Where a shadow (mode = shadow) writes its results; it never writes output.topic. Default: <output.topic>.shadow."),
    ENUM("shadow.output", shadow_output, "topic", "topic|file", RUN | COMPARE, "Where a shadow writes its results: shadow.topic, or JSON lines appended to shadow.file."),
    STR("shadow.file", shadow_file, "", RUN | COMPARE, "Shadow results file (JSON lines) when shadow.output = file."),
    STR("dlq.topic", dlq_topic, NULL, RUN | PRODUCER, "Dead-letter topic for records that cannot be scored. Default: <input.topic>.dlq for a primary, <shadow.topic>.dlq for a shadow."),
    STR("redis.host", redis_host, "127.0.0.1", RUN, "Redis host."),
    INT("redis.port", redis_port, "6379", 1, 65535, RUN, "Redis port."),
    STR("redis.username", redis_username, "", RUN, "ACL user: AUTH redis.username redis.password; empty: the default user (AUTH redis.password when a password is set)."),
    SECRET("redis.password", redis_password, RUN, "Redis password (AUTH); empty for none."),
    BOOL("redis.tls", redis_tls, false, RUN, "Connect to Redis over TLS (both connections of every worker thread); the server's certificate is verified against redis.tls.ca.file and redis.tls.server.name."),
    STR("redis.tls.ca.file", redis_tls_ca_file, "", RUN, "redis.tls: PEM file of the CA certificates that verify the server; empty: the system's CAs."),
    STR("redis.tls.cert.file", redis_tls_cert_file, "", RUN, "redis.tls: client certificate (PEM, may hold its chain) for mutual TLS, with redis.tls.key.file; empty for none."),
    STR("redis.tls.key.file", redis_tls_key_file, "", RUN, "redis.tls: private key (PEM) of redis.tls.cert.file; encrypted: its passphrase in redis.tls.key.password."),
    SECRET("redis.tls.key.password", redis_tls_key_password, RUN, "Passphrase of redis.tls.key.file; empty for none."),
    STR("redis.tls.server.name", redis_tls_server_name, "", RUN, "redis.tls: the name (DNS name or IP address) the server's certificate must carry, also sent as SNI; empty: redis.host."),
    INT("redis.db", redis_db, "0", 0, 1024, RUN, "Redis database number."),
    STR("redis.key.prefix", redis_key_prefix, "streamscore:features:", RUN, "Key of a customer's feature hash: prefix + customer id."),
    INT("redis.ttl.seconds", redis_ttl_seconds, "604800", 1, 315360000, RUN, "TTL of a feature hash, refreshed on every write."),
    ENUM("redis.on.error", redis_on_error, "block", "block|degrade", RUN, "When Redis fails: block pauses consumption and retries with backoff until it answers; degrade scores with the event's own features, marks the prediction degraded, skips the write-back, and retries Redis after a backoff."),
    INT("redis.timeout.ms", redis_timeout_ms, "2000", 10, 600000, RUN, "Connect and command timeout."),
    ENUM("state.mode", state_mode, "owned", "owned|shared", RUN, "owned: each worker thread keeps the feature vectors of the customers of the partitions it owns in a local store, reads Redis only for customers it does not hold, and writes changes to Redis coalesced, acknowledged before the offsets they cover are committed (docs/state.md). shared: every batch reads its customers from Redis and writes them back, for deployments where another service also writes the same hashes."),
    INT("state.store.max.customers", state_store_max_customers, "250000", 1, 1000000000, RUN, "state.mode = owned: customers one worker thread holds at most; the least recently used are evicted beyond it (their unflushed changes written first)."),
    INT("state.flush.interval.ms", state_flush_interval_ms, "500", 0, 600000, RUN, "state.mode = owned: how often changed features are written to Redis (one HSET and EXPIRE per changed customer); 0 writes every batch. Offsets are committed only once the writes that cover them are acknowledged, and everything is flushed before partitions are handed over and at shut-down."),
    STR("state.changelog.topic", state_changelog_topic, NULL, RUN, "delivery = exactly-once, state.mode = owned: compacted topic holding each customer's merged features, written in every batch's transaction and replayed into Redis when a partition is assigned; created if missing with the input's partition count. Default: <group id>-features-changelog."),
    INT("state.changelog.replication.factor", state_changelog_replication_factor, "-1", -1, 32767, RUN, "Replication factor of a changelog topic the worker creates; -1: the broker's default."),
    ENUM("delivery", delivery, "at-least-once", "at-least-once|exactly-once", RUN | CONSUMER | PRODUCER, "at-least-once: one idempotent producer; offsets stored once outputs are acknowledged (a crash may repeat outputs). exactly-once: a transactional producer per thread; each batch's outputs and offsets commit in one Kafka transaction (readers use isolation.level=read_committed); features are written to Redis after the commit."),
    STR("delivery.transactional.id", transactional_id, NULL, RUN | PRODUCER, "exactly-once: transactional.id prefix, suffixed -<thread>; keep it stable per instance. Default: <group id>-<host name>."),
    INT("delivery.commit.interval.ms", delivery_commit_interval_ms, "100", 0, 60000, RUN, "exactly-once: one transaction holds the batches of this many milliseconds (as Kafka Streams' commit.interval.ms): its fixed cost is paid once for them, and its outputs become visible to read_committed readers when it commits; 0 commits every batch. state.mode = shared always commits every batch."),
    INT("worker.threads", worker_threads, "1", 1, 256, RUN, "Worker threads, each a consumer in the group with its own Redis connection."),
    INT("batch.max.messages", batch_max_messages, "256", 1, 100000, RUN | VALIDATE, "Most records scored in one batch."),
    INT("batch.max.wait.ms", batch_max_wait_ms, "1", 0, 60000, RUN, "Longest wait to fill a batch once its first record arrived; under load a batch is what was queued meanwhile (so a short wait costs no throughput, and each ms of it is a ms of latency at low load)."),
    STR("rollout.topic", rollout_topic, "", RUN | ROLLOUT, "Progressive rollout (docs/rollout.md): the compacted control topic holding the rollout state (candidate model and digest, share of customers on the canary, state, reason), created if missing with one partition. Every primary worker follows it and applies a change at its next batch; `streamscore rollout` writes it. Empty: no rollout (the model of model.path serves every customer)."),
    STR("rollout.id", rollout_id, NULL, RUN | ROLLOUT, "Key of this deployment's records in rollout.topic (one topic may hold several deployments' rollouts). Default: the consumer group id."),
    INT("rollout.replication.factor", rollout_replication_factor, "-1", -1, 32767, RUN | ROLLOUT, "Replication factor of rollout.topic when it is created; -1: the broker's default."),
    STR("rollout.steps", rollout_steps, "0.05,0.25,0.5,1", RUN | ROLLOUT, "Shares of customers on the canary that `rollout step` and automatic progression go through: ascending, in (0, 1], comma-separated."),
    BOOL("rollout.auto.rollback", rollout_auto_rollback, true, RUN, "A canary gate beyond its threshold for rollout.gate.for.ms, or a candidate this worker refuses (digest, signature, features, load), writes a rollback (share 0) to rollout.topic with the reason."),
    BOOL("rollout.auto.progress", rollout_auto_progress, false, RUN, "Step the canary through rollout.steps, then promote it: each step once the share has been held rollout.step.hold.ms (counted from the change's record and from when this worker applied it), the window holds rollout.min.records canary records, and no gate is beyond its threshold."),
    INT("rollout.step.hold.ms", rollout_step_hold_ms, "600000", 0, 604800000, RUN, "Automatic progression: least time at a share before the next step."),
    INT("rollout.window.ms", rollout_window_ms, "60000", 1000, 86400000, RUN, "Sliding window of the gate figures (error rate, latency, score shift, ROC-AUC). A gate triggers when the canary's figure is beyond its threshold and the live route's is not, or is worse than the live route's by more than the threshold (for ROC-AUC, by more than 1 - threshold): what delays or fails both routes alike is not the candidate's."),
    INT("rollout.min.records", rollout_min_records, "1000", 1, 100000000, RUN, "Fewest canary predictions in the window before the gates judge it (drift waits for a full drift.window of the candidate's records). The score shift's sampling noise falls with it: about 0.05 at 1000 for two like models."),
    INT("rollout.gate.for.ms", rollout_gate_for_ms, "60000", 0, 86400000, RUN, "How long a gate's figure must stay beyond its threshold before it triggers a rollback."),
    NUM("rollout.gate.error.rate", rollout_gate_error_rate, "0.05", 0, 1, RUN, "Gate: the canary's share of records dead-lettered at scoring (non-finite score) above this triggers."),
    NUM("rollout.gate.latency.p95.ms", rollout_gate_latency_p95_ms, "500", 0, 3600000, RUN, "Gate: the canary's p95 event-to-prediction latency (ms) above this triggers."),
    NUM("rollout.gate.drift.psi", rollout_gate_drift_psi, "0.2", 0, 100, RUN, "Gate: the largest population stability index of the canary's features or score against the candidate card's baseline above this triggers (needs a baseline in the card)."),
    NUM("rollout.gate.shift.psi", rollout_gate_shift_psi, "0.2", 0, 100, RUN, "Gate: the population stability index of the canary's scores against the live model's scores of the same records (every canary record is scored by both), over the deciles of the live model's scores, above this triggers. Scores are taken as probabilities (clamped to 0..1): for other objectives set it out of reach (100) and rely on drift."),
    NUM("rollout.gate.roc.auc", rollout_gate_roc_auc, "0.8", 0, 1, RUN, "Gate: the canary's ROC-AUC against rollout.labels.topic below this triggers (judged once the window holds labels of both classes)."),
    STR("rollout.labels.topic", rollout_labels_topic, "", RUN, "Topic of outcomes for the ROC-AUC gate: JSON values {\"customer_id\", \"label\" (0 or 1, or a boolean), \"time\" (epoch ms; default the record's timestamp)}, read from the end of every partition and each joined with the latest prediction this process made for the customer at or before its time. Empty: no ROC-AUC gate."),
    STR("metrics.listen", metrics_listen, "", RUN, "host:port of the HTTP endpoints /metrics (Prometheus), /healthz and /readyz, e.g. 0.0.0.0:9464; empty: no HTTP endpoints."),
    INT("metrics.lag.interval.ms", metrics_lag_interval_ms, "5000", 100, 3600000, RUN | CONSUMER, "How often consumer lag is refreshed (librdkafka statistics.interval.ms of the consumers) when metrics.listen is set."),
    STR("score.listen", score_listen, "", RUN, "host:port of the on-demand score API (GET /v1/customers/{id}/score: the customer's features as Redis holds them, scored by the live model), a listener of its own beside metrics.listen, e.g. 0.0.0.0:9465; empty: off."),
    INT("score.threads", score_threads, "2", 1, 64, RUN, "Threads answering score requests, each with a Redis connection of its own: the requests answered at once."),
    INT("score.max.connections", score_max_connections, "64", 1, 100000, RUN, "Connections the score API holds open at once (a client at most 8); more are closed at once."),
    SECRET("score.token", score_token, RUN, "Bearer token every score request must carry (Authorization: Bearer TOKEN); empty: none asked."),
    STR("score.tls.cert.file", score_tls_cert_file, "", RUN, "PEM certificate (chain) of the score API: HTTPS when set, with score.tls.key.file."),
    STR("score.tls.key.file", score_tls_key_file, "", RUN, "PEM private key of score.tls.cert.file (unencrypted)."),
    STR("score.tls.client.ca.file", score_tls_client_ca_file, "", RUN, "PEM CA certificate(s): every score request must come with a client certificate they signed (mutual TLS); needs score.tls.cert.file. Empty: no client certificate asked."),
    INT("shutdown.timeout.ms", shutdown_timeout_ms, "30000", 100, 600000, RUN | PRODUCER, "On SIGTERM, longest wait for outstanding deliveries before exiting."),
    STR("compare.labels", compare_labels, "", COMPARE, "streamscore compare: labels as a CSV file (customer_id,label,time) or topic:NAME (JSON values with the same fields); empty for none."),
    STR("compare.output.dir", compare_output_dir, "streamscore-compare", COMPARE, "streamscore compare: folder for compare.json and compare.html."),
    INT("compare.timeout.ms", compare_timeout_ms, "30000", 100, 3600000, COMPARE, "streamscore compare: longest wait for topic data."),
    NUM("promote.max.flip.rate", promote_max_flip_rate, "-1", -1, 1, COMPARE, "Promotion: most decisions flipped (share of identical-feature pairs); negative: not checked."),
    NUM("promote.max.score.diff.p99", promote_max_score_diff_p99, "-1", -1, 1e300, COMPARE, "Promotion: largest p99 of |candidate - primary| score; negative: not checked."),
    NUM("promote.max.class.flip.rate", promote_max_class_flip_rate, "-1", -1, 1, COMPARE, "Promotion (multi-class): most predicted classes changed, as a share of identical-feature pairs; negative: not checked."),
    NUM("promote.max.auc.drop", promote_max_auc_drop, "-1", -1, 1, COMPARE, "Promotion: candidate ROC-AUC no worse than primary's minus this (needs labels); negative: not checked."),
    NUM("promote.max.latency.p99.ms", promote_max_latency_p99_ms, "-1", -1, 3600000, COMPARE, "Promotion: largest candidate p99 event-to-score latency; negative: not checked."),
    NUM("promote.min.matched.share", promote_min_matched_share, "-1", -1, 1, COMPARE, "Promotion: least share of primary predictions with a shadow result; negative: not checked."),
    STR("validate.label.field", validate_label_field, "churned", VALIDATE, "streamscore validate-model: the label field of the data set's records: boolean or int (binary: 0/1; multi-class: the class index), or a number (regression, ranking, survival)."),
    NUM("validate.min.roc.auc", validate_min_roc_auc, "0.85", 0, 1, VALIDATE, "Gate: least ROC-AUC."),
    NUM("validate.min.precision", validate_min_precision, "0.75", 0, 1, VALIDATE, "Gate: least precision at model.threshold."),
    NUM("validate.min.recall", validate_min_recall, "0.70", 0, 1, VALIDATE, "Gate: least recall at model.threshold."),
    NUM("validate.min.f1", validate_min_f1, "0.72", 0, 1, VALIDATE, "Gate: least F1 at model.threshold."),
    NUM("validate.max.rmse", validate_max_rmse, "-1", -1, 1e300, VALIDATE, "Gate (regression): largest root mean squared error; negative: not checked."),
    NUM("validate.max.mae", validate_max_mae, "-1", -1, 1e300, VALIDATE, "Gate (regression): largest mean absolute error; negative: not checked."),
    NUM("validate.min.r2", validate_min_r2, "-1e300", -1e300, 1, VALIDATE, "Gate (regression): least coefficient of determination R^2; the default checks nothing."),
    NUM("validate.max.log.loss", validate_max_log_loss, "-1", -1, 1e300, VALIDATE, "Gate (multi-class): largest log loss; negative: not checked."),
    NUM("validate.min.accuracy", validate_min_accuracy, "0", 0, 1, VALIDATE, "Gate (multi-class): least accuracy of the predicted class; 0: not checked."),
    NUM("validate.min.macro.f1", validate_min_macro_f1, "0", 0, 1, VALIDATE, "Gate (multi-class): least macro-averaged F1 of the predicted class; 0: not checked."),
    STR("validate.segment.field", validate_segment_field, "", VALIDATE, "Segments: a field of the data set's records (string, enum, boolean or int) whose values split it; each segment's metrics are reported, and the gates named in validate.segment.gates apply to the worst segment as well. Empty: no segments."),
    STR("validate.segment.gates", validate_segment_gates, "", VALIDATE, "Segments: the gates also applied to the worst segment, by key, comma-separated (e.g. validate.min.roc.auc,validate.min.recall); each metric's worst segment must pass the gate's threshold."),
    INT("validate.segment.min.records", validate_segment_min_records, "100", 1, 1000000000, VALIDATE, "Segments: fewer records than this make a segment that is reported but not gated."),
    NUM("validate.max.model.mb", validate_max_model_mb, "500", 0, 1000000, VALIDATE, "Gate: largest model file, in MB (10^6 bytes)."),
    NUM("validate.max.batch.p99.ms", validate_max_batch_p99_ms, "-1", -1, 600000, VALIDATE, "Gate: largest p99 time to score one batch of batch.max.messages rows; negative: not checked."),
    ENUM("log.level", log_level, "info", "debug|info|warn|error", ALL, "Least severe level logged."),
    // clang-format on
};

const size_t ss_config__n_keys = sizeof(ss_config__keys) / sizeof(ss_config__keys[0]);

const ss_config__prefix_t ss_config__prefixes[] = {
    {"kafka.", SS_KAFKA_BOTH, RUN | COMPARE | ROLLOUT | CONSUMER | PRODUCER,
     "kafka.<property> is passed to librdkafka for the consumer and the producer (properties "
     "only a consumer has, such as group.id, reach the consumer only). kafka.bootstrap.servers "
     "is required; kafka.group.id defaults to streamscore (primary) or streamscore-shadow "
     "(shadow)."},
    {"kafka.consumer.", SS_KAFKA_CONSUMER, RUN | COMPARE | ROLLOUT | CONSUMER,
     "kafka.consumer.<property> is passed to librdkafka for the consumer only."},
    {"kafka.producer.", SS_KAFKA_PRODUCER, RUN | ROLLOUT | PRODUCER,
     "kafka.producer.<property> is passed to librdkafka for the producer only."},
};

const size_t ss_config__n_prefixes = sizeof(ss_config__prefixes) / sizeof(ss_config__prefixes[0]);

const ss_config__key_t *ss_config__find(const char *key) {
    for (size_t i = 0; i < ss_config__n_keys; i++)
        if (strcmp(ss_config__keys[i].key, key) == 0)
            return &ss_config__keys[i];
    return NULL;
}

const ss_config__prefix_t *ss_config__find_prefix(const char *key) {
    const ss_config__prefix_t *best = NULL;
    for (size_t i = 0; i < ss_config__n_prefixes; i++) {
        const ss_config__prefix_t *p = &ss_config__prefixes[i];
        size_t n = strlen(p->prefix);
        if (strncmp(key, p->prefix, n) == 0 && (!best || n > strlen(best->prefix)))
            best = p;
    }
    return best;
}

unsigned ss_config_key_scope(const char *key) {
    const ss_config__key_t *k = ss_config__find(key);
    const ss_config__prefix_t *p = k ? NULL : ss_config__find_prefix(key);
    return k ? k->scope : p && key[strlen(p->prefix)] ? p->scope : 0;
}

/* "run, compare; producer": the commands that read a key, then its Kafka client(s). */
static void scope_text(unsigned scope, char *out, size_t outlen) {
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{SS_CMD_RUN, "run"},
                 {SS_CMD_COMPARE, "compare"},
                 {SS_CMD_VALIDATE, "validate-model"},
                 {SS_CMD_ROLLOUT, "rollout"},
                 {SS_SCOPE_CONSUMER, "consumer"},
                 {SS_SCOPE_PRODUCER, "producer"}};
    size_t n = 0;
    int first_client = 1;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < outlen; i++) {
        if (!(scope & names[i].bit))
            continue;
        int client = names[i].bit & (SS_SCOPE_CONSUMER | SS_SCOPE_PRODUCER);
        const char *sep = !n ? "" : client && first_client ? "; " : ", ";
        first_client = first_client && !client;
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", sep, names[i].name);
    }
}

/* One row of the reference, from the table or a pass-through prefix. */
typedef struct ref_row {
    const char *key, *type, *def, *range, *doc;
    unsigned scope;
} ref_row_t;

static void write_row(FILE *out, const ref_row_t *r, int markdown) {
    char env[128], scope[96];
    ss_config_env_name(r->key, env, sizeof(env));
    scope_text(r->scope, scope, sizeof(scope));
    if (!markdown) {
        fprintf(out, "  %-26s %-6s", r->key, r->type);
        if (r->def)
            fprintf(out, " default: %s", *r->def ? r->def : "(empty)");
        if (*r->range)
            fprintf(out, "  range: %s", r->range);
        fprintf(out, "  scope: %s\n      %s\n", scope, r->doc);
        return;
    }
    char range[80], shown[160];
    size_t k = 0;
    for (const char *p = r->range; *p && k + 2 < sizeof(range); p++) {
        if (*p == '|')
            range[k++] = '\\';
        range[k++] = *p;
    }
    range[k] = '\0';
    if (!r->def)
        shown[0] = '\0'; /* a pass-through prefix */
    else if (!*r->def)
        snprintf(shown, sizeof(shown), "(empty)");
    else if (*r->def == '(')
        snprintf(shown, sizeof(shown), "%s", r->def);
    else
        snprintf(shown, sizeof(shown), "`%s`", r->def);
    fprintf(out, "| `%s` | %s | %s | %s | %s | `%s` | %s |\n", r->key, r->type, shown, range, scope,
            env, r->doc);
}

static void key_row(const ss_config__key_t *k, ref_row_t *r, char *range, size_t rangelen) {
    static const char *type_names[] = {"string", "int", "number", "enum"};
    r->key = k->key;
    r->type = (k->flags & SS_KEY_SECRET) ? "secret" : type_names[k->type];
    r->def = k->def ? k->def : (k->flags & SS_KEY_REQUIRED) ? "(required)" : "(derived)";
    r->doc = k->doc;
    r->scope = k->scope;
    range[0] = '\0';
    if (k->type == SS_CT_INT)
        snprintf(range, rangelen, "%.0f .. %.0f", k->min, k->max);
    else if (k->type == SS_CT_DOUBLE)
        snprintf(range, rangelen, "%g .. %g", k->min, k->max);
    else if (k->values)
        snprintf(range, rangelen, "%s", k->values);
    r->range = range;
}

void ss_config_write_reference(FILE *out, unsigned commands, int markdown) {
    if (markdown) {
        fprintf(out, "Scope: the commands that read a key (`check-config` checks what `run` "
                     "reads) and, where it applies, the worker's Kafka client it concerns.\n\n");
        fprintf(out, "| key | type | default | range / values | scope | environment variable | "
                     "description |\n");
        fprintf(out, "| --- | --- | --- | --- | --- | --- | --- |\n");
    }
    for (size_t i = 0; i < ss_config__n_keys; i++) {
        char range[64];
        ref_row_t r;
        if (!(ss_config__keys[i].scope & commands))
            continue;
        key_row(&ss_config__keys[i], &r, range, sizeof(range));
        write_row(out, &r, markdown);
    }
    for (size_t i = 0; i < ss_config__n_prefixes; i++) {
        const ss_config__prefix_t *p = &ss_config__prefixes[i];
        char key[64];
        snprintf(key, sizeof(key), "%s*", p->prefix);
        ref_row_t r = {key, "string", NULL, "", p->doc, p->scope};
        if (p->scope & commands)
            write_row(out, &r, markdown);
    }
}

void ss_config_print_reference_for(unsigned commands, int markdown) {
    ss_config_write_reference(stdout, commands, markdown);
}

void ss_config_print_reference(int markdown) {
    ss_config_write_reference(stdout, SS_CMD_ALL, markdown);
}
