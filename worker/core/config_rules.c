/* config_rules.c - the cross-key rules: defaults derived from other keys and checks that
 * span keys, each a named function with the commands it applies to, run in table order by
 * ss_config_finalize_command once every source is applied. A key's own type and bounds are
 * its row's business (config_keys.c); what needs two keys or more is here. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_int.h"
#include "error.h"
#include "explain.h"
#include "log.h"
#include "model.h"
#include "registry.h"
#include "rollout.h"

static int out_of_memory(char *errstr, size_t errlen) {
    snprintf(errstr, errlen, "config: out of memory");
    return SS_ERR_NOMEM;
}

/* A check that failed: the message in errstr; returns SS_ERR_CONFIG. */
static int fail(char *errstr, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errlen, fmt, ap);
    va_end(ap);
    return SS_ERR_CONFIG;
}

/* The value of the last kafka.* pair named `name` (any side), or NULL. */
static const char *kafka_value(const ss_config_t *cfg, const char *name) {
    const char *v = NULL;
    for (size_t i = 0; i < cfg->n_kafka; i++)
        if (strcmp(cfg->kafka[i].key, name) == 0)
            v = cfg->kafka[i].value;
    return v;
}

/* *field = printf(fmt, ...) when it is unset or empty. */
static int derive(char **field, char *errstr, size_t errlen, const char *fmt, ...) {
    if (*field && **field)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *v = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!v)
        return out_of_memory(errstr, errlen);
    va_start(ap, fmt);
    vsnprintf(v, (size_t)n + 1, fmt, ap);
    va_end(ap);
    free(*field);
    *field = v;
    return 0;
}

/* Every key marked REQUIRED, for the commands that read it (model.path: run, validate-model). */
static int required_keys(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    for (size_t i = 0; i < ss_config__n_keys; i++) {
        const ss_config__key_t *k = &ss_config__keys[i];
        if (!(k->flags & SS_KEY_REQUIRED) || !(k->scope & commands))
            continue;
        const char *v = *(char **)ss_config__field(cfg, k);
        char env[128];
        ss_config_env_name(k->key, env, sizeof(env));
        if (!v || !*v)
            return fail(errstr, errlen, "config: key '%s' is required (set it in the file or %s)",
                        k->key, env);
    }
    return 0;
}

/* The content of the file `path` (one trailing newline stripped) into *out: 0, or
 * SS_ERR_CONFIG / SS_ERR_NOMEM with errstr naming `key` and the file, never the content. */
#define SECRET_MAX (64 * 1024)

static int read_secret(const char *key, const char *path, char **out, char *errstr, size_t errlen) {
    char *buf = NULL;
    int rc = SS_ERR_CONFIG;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(errstr, errlen, "config: key '%s': cannot read '%s': %s", key, path, strerror(errno));
        goto out;
    }
    if (!(buf = malloc(SECRET_MAX + 1))) {
        rc = out_of_memory(errstr, errlen);
        goto out;
    }
    size_t n = fread(buf, 1, SECRET_MAX + 1, f);
    if (ferror(f) || n > SECRET_MAX || memchr(buf, '\0', n)) {
        fail(errstr, errlen, "config: key '%s': '%s' %s", key, path,
             ferror(f)        ? "cannot be read"
             : n > SECRET_MAX ? "is larger than 64 KiB"
                              : "holds a NUL byte");
        goto out;
    }
    if (n && buf[n - 1] == '\n')
        n -= n > 1 && buf[n - 2] == '\r' ? 2 : 1;
    buf[n] = '\0';
    free(*out);
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    if (f)
        fclose(f);
    free(buf);
    return rc;
}

/* Every secret named by its <key>.file read from that file; a secret given both there and in
 * the environment is refused (which one counts would be a guess). */
static int secrets_from_files(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    for (size_t i = 1; i < ss_config__n_keys; i++) {
        const ss_config__key_t *file_key = &ss_config__keys[i], *key = file_key - 1;
        if (!(file_key->flags & SS_KEY_SECRET_FILE) || !(file_key->scope & commands))
            continue;
        const char *path = *(char **)ss_config__field(cfg, file_key);
        if (!*path)
            continue;
        char **secret = ss_config__field(cfg, key);
        if (**secret) {
            char env[128];
            ss_config_env_name(key->key, env, sizeof(env));
            return fail(errstr, errlen,
                        "config: key '%s' is given twice, by %s and by %s: give one of them",
                        key->key, env, file_key->key);
        }
        int rc = read_secret(file_key->key, path, secret, errstr, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int topics_not_empty(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    if (!*cfg->input_topic || !*cfg->output_topic)
        return fail(errstr, errlen, "config: key '%s' must not be empty",
                    !*cfg->input_topic ? "input.topic" : "output.topic");
    return 0;
}

static int customer_id_field_not_empty(ss_config_t *cfg, unsigned commands, char *errstr,
                                       size_t errlen) {
    if (!*cfg->customer_id_field)
        return fail(errstr, errlen, "config: key 'input.customer.id.field' must not be empty");
    return 0;
}

static int writer_schema_default(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    return derive(&cfg->input_writer_schema, errstr, errlen, "%s", cfg->input_schema);
}

/* model.card: model.path with its .json/.ubj/.ubjson extension replaced by .card.json. */
static int model_card_default(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    char card[4200];
    ss_model_card_path(cfg->model_path ? cfg->model_path : "", card, sizeof(card));
    return derive(&cfg->model_card, errstr, errlen, "%s", card);
}

static int confluent_needs_schema_source(ss_config_t *cfg, unsigned commands, char *errstr,
                                         size_t errlen) {
    if (cfg->input_framing == SS_FRAMING_CONFLUENT && !*cfg->input_schema_map &&
        !*cfg->registry_url)
        return fail(errstr, errlen,
                    "config: key 'input.schema.map' (or schema.registry.url) is required when "
                    "input.framing = confluent");
    return 0;
}

static int check_schema_id(void *opaque, const char *k, const char *v, char *errstr,
                           size_t errlen) {
    long id;
    if (ss_config__parse_long(k, &id) < 0 || id < 0 || id > 0x7fffffffL)
        return fail(errstr, errlen, "'%s' is not a schema id (0 to 2147483647)", k);
    return 0;
}

static int schema_map_ids(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    return ss_config_parse_pairs(cfg->input_schema_map, "input.schema.map", check_schema_id, NULL,
                                 errstr, errlen);
}

static int registry_url_is_http(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    char shown[512];
    if (*cfg->registry_url && strncmp(cfg->registry_url, "http://", 7) != 0 &&
        strncmp(cfg->registry_url, "https://", 8) != 0) {
        ss_registry_redact_url(cfg->registry_url, shown, sizeof(shown));
        return fail(errstr, errlen,
                    "config: key 'schema.registry.url': '%s' is not an http:// or https:// URL",
                    shown);
    }
    return 0;
}

static int registry_user_info_has_password(ss_config_t *cfg, unsigned commands, char *errstr,
                                           size_t errlen) {
    if (*cfg->registry_user_info && !strchr(cfg->registry_user_info, ':'))
        return fail(errstr, errlen,
                    "config: key 'schema.registry.basic.auth.user.info' must be USER:PASSWORD");
    return 0;
}

/* A TLS setting without redis.tls would be ignored, and the connection made in the clear. */
static int redis_tls_keys_need_tls(ss_config_t *cfg, unsigned commands, char *errstr,
                                   size_t errlen) {
    const struct {
        const char *key, *value;
    } set[] = {{"redis.tls.ca.file", cfg->redis_tls_ca_file},
               {"redis.tls.cert.file", cfg->redis_tls_cert_file},
               {"redis.tls.key.file", cfg->redis_tls_key_file},
               {"redis.tls.key.password", cfg->redis_tls_key_password},
               {"redis.tls.server.name", cfg->redis_tls_server_name}};
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]) && !cfg->redis_tls; i++)
        if (*set[i].value)
            return fail(errstr, errlen,
                        "config: key '%s' is set but redis.tls = false (Redis would be reached "
                        "in the clear): set redis.tls = true, or remove it",
                        set[i].key);
    return 0;
}

static int redis_tls_cert_with_key(ss_config_t *cfg, unsigned commands, char *errstr,
                                   size_t errlen) {
    if (!*cfg->redis_tls_cert_file != !*cfg->redis_tls_key_file)
        return fail(errstr, errlen,
                    "config: keys 'redis.tls.cert.file' and 'redis.tls.key.file' go together: "
                    "'%s' is set, '%s' is not",
                    *cfg->redis_tls_cert_file ? "redis.tls.cert.file" : "redis.tls.key.file",
                    *cfg->redis_tls_cert_file ? "redis.tls.key.file" : "redis.tls.cert.file");
    return 0;
}

static int any_pair(void *opaque, const char *k, const char *v, char *errstr, size_t errlen) {
    return 0; /* ss_config_parse_pairs itself rejects what is not NAME=VALUE */
}

static int features_rename_pairs(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    return ss_config_parse_pairs(cfg->features_rename, "features.rename", any_pair, NULL, errstr,
                                 errlen);
}

static int metrics_listen_host_port(ss_config_t *cfg, unsigned commands, char *errstr,
                                    size_t errlen) {
    char host[256];
    int port;
    if (*cfg->metrics_listen &&
        ss_config_parse_listen(cfg->metrics_listen, host, sizeof(host), &port) < 0)
        return fail(errstr, errlen,
                    "config: key 'metrics.listen': '%s' is not host:port (e.g. 0.0.0.0:9464, port "
                    "1..65535)",
                    cfg->metrics_listen);
    return 0;
}

static int score_api_keys(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    char host[256];
    int port;
    if (!*cfg->score_listen)
        return 0;
    if (ss_config_parse_listen(cfg->score_listen, host, sizeof(host), &port) < 0)
        return fail(errstr, errlen,
                    "config: key 'score.listen': '%s' is not host:port (e.g. 0.0.0.0:9465, port "
                    "1..65535)",
                    cfg->score_listen);
    if (strcmp(cfg->score_listen, cfg->metrics_listen) == 0)
        return fail(errstr, errlen,
                    "config: key 'score.listen': '%s' is metrics.listen too; the score API needs a "
                    "listener of its own",
                    cfg->score_listen);
    if (cfg->mode == SS_MODE_SHADOW)
        return fail(errstr, errlen,
                    "config: key 'score.listen': a shadow (mode = shadow) does not answer scores; "
                    "set it on the primary");
    if (!*cfg->score_tls_cert_file != !*cfg->score_tls_key_file)
        return fail(errstr, errlen, "config: key '%s': set together with '%s'",
                    *cfg->score_tls_cert_file ? "score.tls.cert.file" : "score.tls.key.file",
                    *cfg->score_tls_cert_file ? "score.tls.key.file" : "score.tls.cert.file");
    if (*cfg->score_tls_client_ca_file && !*cfg->score_tls_cert_file)
        return fail(errstr, errlen,
                    "config: key 'score.tls.client.ca.file': client certificates need HTTPS: set "
                    "score.tls.cert.file and score.tls.key.file");
    return 0;
}

static int shadow_file_for_file_output(ss_config_t *cfg, unsigned commands, char *errstr,
                                       size_t errlen) {
    if (cfg->shadow_output == SS_SHADOW_FILE && !*cfg->shadow_file)
        return fail(errstr, errlen,
                    "config: key 'shadow.file' is required when shadow.output = file");
    return 0;
}

/* A file cannot take part in a transaction: after an abort, the batches scored again would
 * append their lines a second time. */
static int file_output_is_not_transactional(ss_config_t *cfg, unsigned commands, char *errstr,
                                            size_t errlen) {
    if (cfg->mode == SS_MODE_SHADOW && cfg->shadow_output == SS_SHADOW_FILE &&
        cfg->delivery == SS_DELIVERY_EXACTLY_ONCE)
        return fail(errstr, errlen,
                    "config: key 'shadow.output': file cannot take part in exactly-once "
                    "transactions (an aborted batch would be written twice); use "
                    "shadow.output = topic, or delivery = at-least-once");
    return 0;
}

static int bootstrap_servers_required(ss_config_t *cfg, unsigned commands, char *errstr,
                                      size_t errlen) {
    if (!kafka_value(cfg, "bootstrap.servers"))
        return fail(errstr, errlen,
                    "config: key 'kafka.bootstrap.servers' is required (or "
                    "STREAMSCORE_KAFKA_BOOTSTRAP_SERVERS)");
    return 0;
}

static int shadow_topic_default(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    return derive(&cfg->shadow_topic, errstr, errlen, "%s.shadow", cfg->output_topic);
}

/* After shadow_topic_default. A shadow's dead letters are its own: the primary already
 * dead-letters the same records to <input.topic>.dlq. */
static int dlq_topic_default(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    const char *base = cfg->mode == SS_MODE_SHADOW ? cfg->shadow_topic : cfg->input_topic;
    return derive(&cfg->dlq_topic, errstr, errlen, "%s.dlq", base);
}

static int dlq_topic_differs(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    if (strcmp(cfg->dlq_topic, cfg->output_topic) == 0 ||
        strcmp(cfg->dlq_topic, cfg->input_topic) == 0)
        return fail(errstr, errlen,
                    "config: key 'dlq.topic' must differ from input.topic and output.topic");
    return 0;
}

/* A shadow must never write to the primary's topic. */
static int shadow_topic_differs(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    if (strcmp(cfg->shadow_topic, cfg->output_topic) == 0)
        return fail(errstr, errlen,
                    "config: key 'shadow.topic' must differ from output.topic ('%s')",
                    cfg->output_topic);
    return 0;
}

static int group_id_default(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    if (kafka_value(cfg, "group.id"))
        return 0;
    return ss_config_set(cfg, "kafka.consumer.group.id",
                         cfg->mode == SS_MODE_SHADOW ? "streamscore-shadow" : "streamscore",
                         "default", errstr, errlen);
}

/* <group id>-<host name>: stable per instance, as transactions need. */
static int transactional_id_default(ss_config_t *cfg, unsigned commands, char *errstr,
                                    size_t errlen) {
    char host[256] = "localhost", tid[600];
    gethostname(host, sizeof(host) - 1);
    const char *group = kafka_value(cfg, "group.id");
    snprintf(tid, sizeof(tid), "%s-%s", group ? group : "streamscore", host);
    return derive(&cfg->transactional_id, errstr, errlen, "%s", tid);
}

static int changelog_topic_default(ss_config_t *cfg, unsigned commands, char *errstr,
                                   size_t errlen) {
    if (cfg->state_changelog_topic && *cfg->state_changelog_topic)
        return 0;
    const char *group = kafka_value(cfg, "group.id");
    return derive(&cfg->state_changelog_topic, errstr, errlen, "%s-features-changelog",
                  group ? group : "streamscore");
}

static int rollout_id_default(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    if (cfg->rollout_id && *cfg->rollout_id)
        return 0;
    const char *group = kafka_value(cfg, "group.id");
    return derive(&cfg->rollout_id, errstr, errlen, "%s", group ? group : "streamscore");
}

/* A shadow records a candidate's results; it never serves a canary. */
static int rollout_is_primary(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    if (*cfg->rollout_topic && cfg->mode == SS_MODE_SHADOW && (commands & SS_CMD_RUN))
        return fail(errstr, errlen,
                    "config: key 'rollout.topic' is for a primary: a shadow (mode = shadow) "
                    "takes no part in a rollout");
    if (*cfg->rollout_topic && strcmp(cfg->rollout_topic, cfg->input_topic) == 0)
        return fail(errstr, errlen, "config: key 'rollout.topic' must differ from input.topic");
    double steps[SS_ROLLOUT_MAX_STEPS];
    return ss_rollout_parse_steps(cfg->rollout_steps, steps, SS_ROLLOUT_MAX_STEPS, errstr, errlen) <
                   0
               ? SS_ERR_CONFIG
               : 0;
}

/* explain.when parses; explain.topic is a topic of its own. */
static int explain_keys(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    ss_explain_when_t when;
    if (ss_explain_parse_when(cfg->explain_when, &when, errstr, errlen) < 0)
        return SS_ERR_CONFIG;
    const char *t = cfg->explain_topic;
    if (!*t)
        return 0;
    if (strcmp(t, cfg->input_topic) == 0 || strcmp(t, cfg->output_topic) == 0 ||
        strcmp(t, cfg->dlq_topic) == 0)
        return fail(errstr, errlen,
                    "config: key 'explain.topic' must differ from input.topic, output.topic and "
                    "dlq.topic");
    return 0;
}

/* A dead letter leaves out the record's value, headers and key when they do not fit the
 * producer's message.max.bytes (output.c); what it always carries, the Kafka Connect headers
 * naming the source and the reason, must fit. (Values larger than the producer's limit can
 * only be dead-lettered without their value: run.c says so once at start-up.) */
#define DEAD_LETTER_MIN 2048

static int size_limits_agree(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    const char *v = kafka_value(cfg, "message.max.bytes");
    long long max = v ? strtoll(v, NULL, 10) : 1000000; /* librdkafka's default */
    if (max < DEAD_LETTER_MIN)
        return fail(errstr, errlen,
                    "config: key 'kafka.message.max.bytes' (%lld) leaves no room for a dead "
                    "letter's headers (at least %d bytes)",
                    max, DEAD_LETTER_MIN);
    return 0;
}

static int log_level_applies(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    ss_log_set_level((ss_log_level_t)cfg->log_level);
    return 0;
}

/* In the order they run: a derived default comes before the checks that read it; the first
 * rule that fails stops finalize, so the order also decides which of two errors is told. */
// clang-format off
static const ss_config_rule_t rules[] = {
    {"required_keys",                   SS_CMD_ALL, required_keys},
    {"secrets_from_files",              SS_CMD_ALL, secrets_from_files},
    {"topics_not_empty",                SS_CMD_ALL, topics_not_empty},
    {"customer_id_field_not_empty",     SS_CMD_ALL, customer_id_field_not_empty},
    {"writer_schema_default",           SS_CMD_ALL, writer_schema_default},
    {"model_card_default",              SS_CMD_ALL, model_card_default},
    {"confluent_needs_schema_source",   SS_CMD_ALL, confluent_needs_schema_source},
    {"schema_map_ids",                  SS_CMD_ALL, schema_map_ids},
    {"registry_url_is_http",            SS_CMD_ALL, registry_url_is_http},
    {"registry_user_info_has_password", SS_CMD_ALL, registry_user_info_has_password},
    {"redis_tls_keys_need_tls",         SS_CMD_RUN, redis_tls_keys_need_tls},
    {"redis_tls_cert_with_key",         SS_CMD_RUN, redis_tls_cert_with_key},
    {"features_rename_pairs",           SS_CMD_ALL, features_rename_pairs},
    {"metrics_listen_host_port",        SS_CMD_ALL, metrics_listen_host_port},
    {"score_api_keys",                  SS_CMD_RUN, score_api_keys},
    {"shadow_file_for_file_output",     SS_CMD_ALL, shadow_file_for_file_output},
    {"file_output_is_not_transactional", SS_CMD_RUN, file_output_is_not_transactional},
    {"bootstrap_servers_required",      SS_CMD_RUN | SS_CMD_COMPARE | SS_CMD_ROLLOUT, bootstrap_servers_required},
    {"shadow_topic_default",            SS_CMD_ALL, shadow_topic_default},
    {"dlq_topic_default",               SS_CMD_ALL, dlq_topic_default},
    {"dlq_topic_differs",               SS_CMD_ALL, dlq_topic_differs},
    {"shadow_topic_differs",            SS_CMD_ALL, shadow_topic_differs},
    {"group_id_default",                SS_CMD_ALL, group_id_default},
    {"transactional_id_default",        SS_CMD_ALL, transactional_id_default},
    {"changelog_topic_default",         SS_CMD_ALL, changelog_topic_default},
    {"rollout_id_default",              SS_CMD_RUN | SS_CMD_ROLLOUT, rollout_id_default},
    {"rollout_is_primary",              SS_CMD_RUN | SS_CMD_ROLLOUT, rollout_is_primary},
    {"explain_keys",                    SS_CMD_RUN, explain_keys},
    {"log_level_applies",               SS_CMD_ALL, log_level_applies},
    {"size_limits_agree",               SS_CMD_RUN, size_limits_agree},
};
// clang-format on

const ss_config_rule_t *ss_config_rules(size_t *n) {
    *n = sizeof(rules) / sizeof(rules[0]);
    return rules;
}

int ss_config_finalize_command(ss_config_t *cfg, unsigned commands, char *errstr, size_t errlen) {
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (!(rules[i].commands & commands))
            continue;
        int rc = rules[i].apply(cfg, commands, errstr, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ss_config_finalize(ss_config_t *cfg, char *errstr, size_t errlen) {
    return ss_config_finalize_command(cfg, SS_CMD_RUN, errstr, errlen);
}
