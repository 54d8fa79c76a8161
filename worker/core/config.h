/* config.h - the worker's configuration: one table of keys (type, default, bounds, scope,
 * doc; config_keys.c) drives parsing, validation, environment overrides, --help per command
 * and the docs; a table of named rules (config_rules.c) derives defaults and checks keys
 * against each other, per command. Functions return 0 or a negative SS_ERR_* code
 * (error.h) with the message, naming the key, in errstr. */
#ifndef SS_CONFIG_H
#define SS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum { SS_MODE_PRIMARY = 0, SS_MODE_SHADOW = 1 } ss_mode_t;
typedef enum { SS_FRAMING_RAW = 0, SS_FRAMING_CONFLUENT = 1 } ss_framing_t;
typedef enum { SS_FORMAT_AVRO = 0, SS_FORMAT_JSON = 1 } ss_format_t;
typedef enum { SS_SHADOW_TOPIC = 0, SS_SHADOW_FILE = 1 } ss_shadow_output_t;
typedef enum { SS_REDIS_BLOCK = 0, SS_REDIS_DEGRADE = 1 } ss_redis_policy_t;
typedef enum { SS_STATE_OWNED = 0, SS_STATE_SHARED = 1 } ss_state_mode_t;
typedef enum {
    SS_SUBJECT_TOPIC = 0,
    SS_SUBJECT_RECORD = 1,
    SS_SUBJECT_TOPIC_RECORD = 2
} ss_subject_t;
typedef enum { SS_DELIVERY_AT_LEAST_ONCE = 0, SS_DELIVERY_EXACTLY_ONCE = 1 } ss_delivery_mode_t;
typedef enum { SS_PREDICTOR_AUTO = 0, SS_PREDICTOR_XGBOOST = 1 } ss_predictor_kind_t;
/* features.unseen.category: an Avro value naming a category the model was not trained with */
typedef enum { SS_UNSEEN_DEAD_LETTER = 0, SS_UNSEEN_MISSING = 1, SS_UNSEEN_OTHER = 2 } ss_unseen_t;

/* A key=value pair passed through to librdkafka. */
typedef struct ss_kv {
    char *key; /* librdkafka name, prefix stripped */
    char *value;
    int scope; /* SS_KAFKA_BOTH, SS_KAFKA_CONSUMER or SS_KAFKA_PRODUCER */
} ss_kv_t;

#define SS_KAFKA_BOTH 0
#define SS_KAFKA_CONSUMER 1
#define SS_KAFKA_PRODUCER 2

/* Immutable after ss_config_finalize(); shared read-only by all threads. */
typedef struct ss_config {
    int mode;
    char *input_topic;
    int input_framing;
    char *input_schema;
    char *input_writer_schema;
    char *input_schema_map;
    long input_max_bytes;
    char *customer_id_field;
    char *event_id_field;
    char *event_time_field;
    char *model_path;
    char *model_card;
    char *model_name;
    char *model_version;
    double model_threshold;
    int model_predictor;       /* ss_predictor_kind_t */
    char *model_signature;     /* NULL: <model.path>.sig */
    char *model_signature_key; /* "": no signature required */
    int model_reload;          /* 0 or 1 */
    long model_reload_interval_ms;
    long drift_window;
    double drift_threshold;
    long explain_top_k;           /* 0: no explanations */
    double explain_sample;        /* share of the events explained */
    char *explain_when;           /* always | decision | class:N[,N...] */
    char *explain_topic;          /* "": contributions in the prediction */
    int features_unseen_category; /* ss_unseen_t */
    char *metrics_listen;         /* "" when off */
    long metrics_lag_interval_ms;
    char *score_listen; /* the score API (score_api.c): "" when off */
    long score_threads, score_max_connections;
    char *score_token; /* "" : no bearer token asked */
    char *score_tls_cert_file, *score_tls_key_file, *score_tls_client_ca_file;
    char *features_rename;
    char *output_topic;
    int output_format;
    char *output_schema;
    long output_schema_id;       /* -1: register output.schema (with a registry) or raw */
    int output_subject_strategy; /* ss_subject_t */
    char *registry_url;          /* "" when there is no registry */
    char *registry_user_info;
    char *registry_ssl_ca, *registry_ssl_cert, *registry_ssl_key, *registry_ssl_key_password;
    int registry_ssl_verify;
    long registry_timeout_ms, registry_retries, registry_backoff_ms, registry_backoff_max_ms;
    long registry_miss_ttl_ms, registry_fetch_rate;
    char *shadow_topic;
    char *dlq_topic;
    char *redis_host;
    long redis_port;
    char *redis_username; /* "" : the default user */
    char *redis_password;
    int redis_tls;                /* 0 or 1 */
    char *redis_tls_ca_file;      /* "" : the system's CAs */
    char *redis_tls_cert_file;    /* "" : no client certificate */
    char *redis_tls_key_file;     /* with redis_tls_cert_file */
    char *redis_tls_key_password; /* of redis_tls_key_file; "" for none */
    char *redis_tls_server_name;  /* "" : redis_host */
    long redis_db;
    char *redis_key_prefix;
    long redis_ttl_seconds;
    long redis_timeout_ms;
    int redis_on_error; /* SS_REDIS_BLOCK or SS_REDIS_DEGRADE */
    int state_mode;     /* ss_state_mode_t */
    long state_store_max_customers;
    long state_flush_interval_ms;
    char *state_changelog_topic;
    long state_changelog_replication_factor;
    int delivery; /* SS_DELIVERY_AT_LEAST_ONCE or SS_DELIVERY_EXACTLY_ONCE */
    char *transactional_id;
    long delivery_commit_interval_ms;
    long worker_threads;
    char *rollout_topic; /* "": no rollout control */
    char *rollout_id;    /* the control records' key */
    long rollout_replication_factor;
    char *rollout_steps;
    int rollout_auto_rollback, rollout_auto_progress;
    long rollout_step_hold_ms, rollout_window_ms, rollout_min_records, rollout_gate_for_ms;
    double rollout_gate_error_rate, rollout_gate_latency_p95_ms, rollout_gate_drift_psi;
    double rollout_gate_shift_psi, rollout_gate_roc_auc;
    char *rollout_labels_topic; /* "": no labels, no ROC-AUC gate */
    long batch_max_messages;
    long batch_max_wait_ms;
    long shutdown_timeout_ms;
    int shadow_output; /* SS_SHADOW_TOPIC or SS_SHADOW_FILE */
    char *shadow_file;
    char *compare_labels;
    char *compare_output_dir;
    long compare_timeout_ms;
    double promote_max_flip_rate, promote_max_score_diff_p99, promote_max_auc_drop;
    double promote_max_class_flip_rate;
    double promote_max_latency_p99_ms, promote_min_matched_share;
    char *validate_label_field;
    double validate_min_roc_auc, validate_min_precision, validate_min_recall, validate_min_f1;
    double validate_max_model_mb, validate_max_batch_p99_ms;
    double validate_max_rmse, validate_max_mae, validate_min_r2;
    double validate_max_log_loss, validate_min_accuracy, validate_min_macro_f1;
    char *validate_segment_field, *validate_segment_gates;
    long validate_segment_min_records;
    int log_level;

    /* <secret key>.file: the file each secret is read from (config_rules.c), "" for none */
    char *registry_user_info_file, *registry_ssl_key_password_file;
    char *redis_password_file, *redis_tls_key_password_file;
    char *score_token_file;

    ss_kv_t *kafka; /* pass-through, in the order given */
    size_t n_kafka;

    /* Told, while a properties file loads, of a key it gives a second time (the last value
     * counts): one line naming the key and both lines. NULL: not told. */
    void (*warn)(const char *message);
} ss_config_t;

/* A key's scope (librdkafka's _RK_GLOBAL|_RK_CONSUMER bits): the commands that read it and,
 * for a key of the worker's Kafka clients, the client it configures or names a topic of. */
#define SS_CMD_RUN 0x01u      /* streamscore run; check-config checks what run reads */
#define SS_CMD_COMPARE 0x02u  /* streamscore compare */
#define SS_CMD_VALIDATE 0x04u /* streamscore validate-model */
#define SS_CMD_ROLLOUT 0x08u  /* streamscore rollout */
#define SS_CMD_ALL (SS_CMD_RUN | SS_CMD_COMPARE | SS_CMD_VALIDATE | SS_CMD_ROLLOUT)
#define SS_SCOPE_CONSUMER 0x10u
#define SS_SCOPE_PRODUCER 0x20u

/* The scope bits of `key` (a key of the table, or one passed through to librdkafka such as
 * kafka.producer.linger.ms); 0 for a key that does not exist. */
unsigned ss_config_key_scope(const char *key);

/* Split "host:port" (metrics.listen). Returns 0, or SS_ERR_CONFIG if it is not host:port
 * with a port in 1..65535. */
int ss_config_parse_listen(const char *s, char *host, size_t hostlen, int *port);

ss_config_t *ss_config_new(void);
void ss_config_destroy(ss_config_t *cfg);

/* Set one key from `origin` (used in messages: "file x:3", "-X"). A secret (redis.password,
 * ...) is refused: it comes only from the environment (ss_config_apply_env) or from the file
 * named by <key>.file. Returns 0, or SS_ERR_CONFIG (SS_ERR_NOMEM) with a message naming the
 * key, never a secret's value, in errstr. */
int ss_config_set(ss_config_t *cfg, const char *key, const char *value, const char *origin,
                  char *errstr, size_t errlen);

/* Parse a Java-style .properties file: "key = value", "key: value" or "key value" (the key
 * ends at the first '=', ':' or blank), # and ! comments, backslash line continuation; a key
 * given twice: the last value counts, and cfg->warn is told. Returns 0 or SS_ERR_CONFIG
 * (SS_ERR_NOMEM) with errstr. */
int ss_config_load_file(ss_config_t *cfg, const char *path, char *errstr, size_t errlen);

/* Parse properties text from memory; `name` names it in messages. */
int ss_config_load_string(ss_config_t *cfg, const char *text, size_t len, const char *name,
                          char *errstr, size_t errlen);

/* Apply STREAMSCORE_* environment variables from `envp` (NULL-terminated).
 * A name that maps to no key is reported through `unknown_cb` (may be NULL)
 * and otherwise ignored: orchestrators inject variables of their own. */
int ss_config_apply_env(ss_config_t *cfg, char **envp, void (*unknown_cb)(const char *name),
                        char *errstr, size_t errlen);

/* Map a key to its environment variable name (STREAMSCORE_ + upper, '.' -> '_'). */
void ss_config_env_name(const char *key, char *out, size_t outlen);

/* A cross-key rule (config_rules.c): a derived default, or a check that spans keys.
 * `commands` (SS_CMD_*) are those it applies to; `apply` gets the commands being finalized
 * and returns 0 or a negative SS_ERR_* code with errstr. */
typedef struct ss_config_rule {
    const char *name;
    unsigned commands;
    int (*apply)(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen);
} ss_config_rule_t;

/* The rules, in the order finalize runs them; their number in *n. */
const ss_config_rule_t *ss_config_rules(size_t *n);

/* Derived defaults and cross-key checks for `commands` (SS_CMD_* bits): every rule that
 * applies to one of them, in table order; the first that fails stops. Call once after all
 * sources are applied. Returns 0 or SS_ERR_CONFIG (SS_ERR_NOMEM) with errstr. */
int ss_config_finalize_command(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen);

/* The worker's: ss_config_finalize_command(cfg, SS_CMD_RUN, ...). */
int ss_config_finalize(ss_config_t *cfg, char *errstr, size_t errlen);

/* Parse "a=b,c=d" lists (features.rename, input.schema.map). Calls `cb` for each pair (a
 * negative return is an error with cb's errstr); returns 0, or SS_ERR_CONFIG (SS_ERR_NOMEM)
 * with errstr naming `key`. */
int ss_config_parse_pairs(const char *list, const char *key,
                          int (*cb)(void *opaque, const char *k, const char *v, char *errstr,
                                    size_t errlen),
                          void *opaque, char *errstr, size_t errlen);

/* Write the reference of the keys `commands` (SS_CMD_* bits) read, as a Markdown table (for
 * the README) or as plain --help text, to `out`. */
void ss_config_write_reference(FILE *out, unsigned commands, int markdown);

/* The same on stdout: the keys one command reads (`streamscore run --help`: SS_CMD_RUN). */
void ss_config_print_reference_for(unsigned commands, int markdown);

/* Every key on stdout (`streamscore config-reference`, the README's reference). */
void ss_config_print_reference(int markdown);

const char *ss_mode_name(int mode);

#endif
