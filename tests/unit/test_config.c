/* test_config.c - the configuration table: parsing, types, bounds, environment
 * overrides, derived defaults and the errors that name the offending key; each key's scope
 * (the commands that read it, per-command references) and the table of cross-key rules. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "error.h"

static char err[1024];

static ss_config_t *load(const char *text) {
    ss_config_t *c = ss_config_new();
    err[0] = '\0';
    if (ss_config_load_string(c, text, strlen(text), "t.properties", err, sizeof(err)) < 0) {
        ss_config_destroy(c);
        return NULL;
    }
    return c;
}

static void defaults_match_the_documented_values(void) {
    ss_config_t *c = ss_config_new();
    CHECK(c->mode == SS_MODE_PRIMARY);
    CHECK(strcmp(c->input_topic, "customer-events") == 0);
    CHECK(c->batch_max_messages == 256);
    CHECK(c->worker_threads == 1);
    CHECK(c->redis_ttl_seconds == 604800);
    CHECK(isnan(c->model_threshold)); /* not set: the model card's threshold applies */
    CHECK(c->output_format == SS_FORMAT_AVRO);
    ss_config_destroy(c);
}

static void properties_syntax_comments_colons_and_continuations(void) {
    ss_config_t *c = load("# comment\n! also a comment\n\n"
                          "input.topic = events\n"
                          "output.topic: preds\n"
                          "model.path = /m/\\\n   churn.json\n"
                          "  worker.threads=4  \r\n");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(strcmp(c->input_topic, "events") == 0);
    CHECK(strcmp(c->output_topic, "preds") == 0);
    CHECK(strcmp(c->model_path, "/m/churn.json") == 0);
    CHECK(c->worker_threads == 4);
    ss_config_destroy(c);
}

static char warned[4][512];
static int n_warned;
static void record_warning(const char *message) {
    if (n_warned < 4)
        snprintf(warned[n_warned], sizeof(warned[0]), "%s", message);
    n_warned++;
}

static void java_separators_blank_colon_and_equals_and_repeats_warned(void) {
    ss_config_t *c = ss_config_new();
    n_warned = 0;
    c->warn = record_warning;
    const char *text = "input.topic events\n"
                       "output.topic:preds\n"
                       "kafka.bootstrap.servers\th1:9092,h2:9092\n"
                       "model.path   =   /m/a=b.json\n"
                       "redis.host : redis:6379\n"
                       "worker.threads = 2\n"
                       "worker.threads 3\n"
                       "input.topic = events2\n";
    CHECK(ss_config_load_string(c, text, strlen(text), "t.properties", err, sizeof(err)) == 0);
    CHECK(strcmp(c->input_topic, "events2") == 0);
    CHECK(strcmp(c->output_topic, "preds") == 0);
    CHECK(c->n_kafka == 1 && strcmp(c->kafka[0].key, "bootstrap.servers") == 0 &&
          strcmp(c->kafka[0].value, "h1:9092,h2:9092") == 0);
    CHECK(strcmp(c->model_path, "/m/a=b.json") == 0);
    CHECK(strcmp(c->redis_host, "redis:6379") == 0);
    CHECK(c->worker_threads == 3);
    CHECK(n_warned == 2);
    CHECK_STR_CONTAINS(warned[0], "t.properties:7");
    CHECK_STR_CONTAINS(warned[0], "'worker.threads' given again (line 6 gave it before)");
    CHECK_STR_CONTAINS(warned[1], "'input.topic' given again (line 1");
    ss_config_destroy(c);
}

static void unknown_key_is_an_error_naming_it_and_its_line(void) {
    CHECK(load("input.topic = a\n\nmodel.pth = x\n") == NULL);
    CHECK_STR_CONTAINS(err, "unknown key 'model.pth'");
    CHECK_STR_CONTAINS(err, "t.properties:3");
}

static void bad_integer_names_the_key(void) {
    CHECK(load("worker.threads = lots\n") == NULL);
    CHECK_STR_CONTAINS(err, "'worker.threads'");
    CHECK_STR_CONTAINS(err, "integer");
}

static void out_of_range_names_the_key_and_bounds(void) {
    CHECK(load("batch.max.messages = 0\n") == NULL);
    CHECK_STR_CONTAINS(err, "'batch.max.messages'");
    CHECK_STR_CONTAINS(err, "out of range");
    CHECK(load("explain.sample = 1.5\n") == NULL);
    CHECK_STR_CONTAINS(err, "'explain.sample'");
}

static void enum_value_must_be_listed(void) {
    CHECK(load("mode = canary\n") == NULL);
    CHECK_STR_CONTAINS(err, "'mode'");
    CHECK_STR_CONTAINS(err, "primary|shadow");
}

static void kafka_keys_pass_through_and_are_checked_by_librdkafka(void) {
    ss_config_t *c = load("kafka.bootstrap.servers = 127.0.0.1:9092\n"
                          "kafka.consumer.session.timeout.ms = 10000\n"
                          "kafka.producer.linger.ms = 7\n");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(c->n_kafka == 3);
    CHECK(strcmp(c->kafka[0].key, "bootstrap.servers") == 0 && c->kafka[0].scope == SS_KAFKA_BOTH);
    CHECK(strcmp(c->kafka[1].key, "session.timeout.ms") == 0 &&
          c->kafka[1].scope == SS_KAFKA_CONSUMER);
    CHECK(c->kafka[2].scope == SS_KAFKA_PRODUCER);
    ss_config_destroy(c);
    CHECK(load("kafka.no.such.property = 1\n") == NULL);
    CHECK_STR_CONTAINS(err, "'kafka.no.such.property'");
}

static void environment_overrides_the_file(void) {
    ss_config_t *c = load("worker.threads = 2\n");
    char *env[] = {"STREAMSCORE_WORKER_THREADS=3", "STREAMSCORE_KAFKA_BOOTSTRAP_SERVERS=h:1",
                   "PATH=/bin", NULL};
    CHECK(ss_config_apply_env(c, env, NULL, err, sizeof(err)) == 0);
    CHECK(c->worker_threads == 3);
    CHECK(c->n_kafka == 1 && strcmp(c->kafka[0].value, "h:1") == 0);
    ss_config_destroy(c);
}

static int unknown_seen;
static void count_unknown(const char *name) {
    (void)name;
    unknown_seen++;
}

static void environment_unknown_names_are_reported_not_fatal(void) {
    ss_config_t *c = ss_config_new();
    char *env[] = {"STREAMSCORE_PORT=tcp://10.0.0.1:80", NULL};
    unknown_seen = 0;
    CHECK(ss_config_apply_env(c, env, count_unknown, err, sizeof(err)) == 0);
    CHECK(unknown_seen == 1);
    ss_config_destroy(c);
}

static void environment_bad_value_names_the_variable(void) {
    ss_config_t *c = ss_config_new();
    char *env[] = {"STREAMSCORE_BATCH_MAX_MESSAGES=0", NULL};
    CHECK(ss_config_apply_env(c, env, NULL, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "STREAMSCORE_BATCH_MAX_MESSAGES");
    CHECK_STR_CONTAINS(err, "'batch.max.messages'");
    ss_config_destroy(c);
}

static void env_name_mapping(void) {
    char name[128];
    ss_config_env_name("redis.ttl.seconds", name, sizeof(name));
    CHECK(strcmp(name, "STREAMSCORE_REDIS_TTL_SECONDS") == 0);
}

static void finalize_requires_model_path_and_bootstrap(void) {
    ss_config_t *c = load("kafka.bootstrap.servers = x:1\n");
    CHECK(ss_config_finalize(c, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "'model.path'");
    ss_config_destroy(c);
    c = load("model.path = m.json\n");
    CHECK(ss_config_finalize(c, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "'kafka.bootstrap.servers'");
    ss_config_destroy(c);
}

static void a_message_max_bytes_too_small_for_a_dead_letter_is_refused(void) {
    ss_config_t *c = load("model.path = m.json\nkafka.bootstrap.servers = x:1\n"
                          "kafka.producer.message.max.bytes = 1500\n");
    CHECK(ss_config_finalize(c, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "'kafka.message.max.bytes' (1500)");
    ss_config_destroy(c);
    c = load("model.path = m.json\nkafka.bootstrap.servers = x:1\n"
             "kafka.producer.message.max.bytes = 4096\ninput.max.bytes = 65536\n");
    CHECK(ss_config_finalize(c, err, sizeof(err)) == 0);
    ss_config_destroy(c);
}

static void a_shadow_file_with_exactly_once_is_refused(void) {
    const char *base = "model.path = m.json\nkafka.bootstrap.servers = x:1\nmode = shadow\n"
                       "shadow.output = file\nshadow.file = s.jsonl\n";
    char text[512];
    snprintf(text, sizeof(text), "%sdelivery = exactly-once\n", base);
    ss_config_t *c = load(text);
    CHECK(ss_config_finalize(c, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "key 'shadow.output'");
    ss_config_destroy(c);
    c = load(base);
    CHECK(ss_config_finalize(c, err, sizeof(err)) == 0);
    ss_config_destroy(c);
}

static void finalize_derives_card_dlq_shadow_topic_and_group(void) {
    ss_config_t *c = load("model.path = models/churn-1.0.0.json\nkafka.bootstrap.servers = x:1\n"
                          "mode = shadow\n");
    CHECK(ss_config_finalize(c, err, sizeof(err)) == 0);
    CHECK(strcmp(c->model_card, "models/churn-1.0.0.card.json") == 0);
    CHECK(strcmp(c->dlq_topic, "predictions.shadow.dlq") == 0); /* a shadow's own */
    CHECK(strcmp(c->shadow_topic, "predictions.shadow") == 0);
    CHECK(strcmp(c->input_writer_schema, c->input_schema) == 0);
    int group = 0;
    for (size_t i = 0; i < c->n_kafka; i++)
        group |= strcmp(c->kafka[i].key, "group.id") == 0 &&
                 strcmp(c->kafka[i].value, "streamscore-shadow") == 0;
    CHECK(group);
    ss_config_destroy(c);
}

static void confluent_framing_needs_a_valid_schema_map(void) {
    ss_config_t *c = load("model.path = m.json\nkafka.bootstrap.servers = x:1\n"
                          "input.framing = confluent\n");
    CHECK(ss_config_finalize(c, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "'input.schema.map'");
    ss_config_destroy(c);
    c = load("model.path = m.json\nkafka.bootstrap.servers = x:1\n"
             "input.framing = confluent\ninput.schema.map = one=a.avsc\n");
    CHECK(ss_config_finalize(c, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "'input.schema.map'");
    ss_config_destroy(c);
}

static void a_registry_replaces_the_schema_map_and_its_url_and_credentials_are_checked(void) {
    const char *base = "model.path = m.json\nkafka.bootstrap.servers = x:1\n"
                       "input.framing = confluent\n";
    char text[512];
    snprintf(text, sizeof(text), "%sschema.registry.url = http://127.0.0.1:8081/apis/ccompat/v7\n",
             base);
    ss_config_t *c = load(text);
    CHECK(c && ss_config_finalize(c, err, sizeof(err)) == 0);
    CHECK(c && c->output_schema_id == -1 && c->registry_retries == 3 && c->registry_ssl_verify);
    ss_config_destroy(c);
    snprintf(text, sizeof(text), "%sschema.registry.url = registry:8081\n", base);
    c = load(text);
    CHECK(c && ss_config_finalize(c, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "'schema.registry.url'");
    ss_config_destroy(c);
    snprintf(text, sizeof(text), "%sschema.registry.url = https://r\n", base);
    c = load(text);
    char *env[] = {"STREAMSCORE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=alice", NULL};
    CHECK(c && ss_config_apply_env(c, env, NULL, err, sizeof(err)) == 0);
    CHECK(c && ss_config_finalize(c, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "'schema.registry.basic.auth.user.info'");
    ss_config_destroy(c);
    c = load("output.subject.name.strategy = topic-name\n");
    CHECK(c == NULL);
    CHECK_STR_CONTAINS(err, "'output.subject.name.strategy'");
}

static void nul_bytes_and_garbage_lines_are_errors_not_crashes(void) {
    CHECK(load("just some words\n") == NULL); /* the key 'just', unknown */
    CHECK_STR_CONTAINS(err, "'just'");
    CHECK(load("= value\n") == NULL);
    CHECK_STR_CONTAINS(err, "empty key");
    ss_config_t *c = ss_config_new();
    CHECK(ss_config_load_string(c, "a\0b=c", 5, "t", err, sizeof(err)) < 0);
    ss_config_destroy(c);
}

/* The reference ss_config_write_reference writes for `commands` (freed by the caller). */
static char *reference(unsigned commands, int markdown) {
    FILE *f = tmpfile();
    if (!f)
        return NULL;
    ss_config_write_reference(f, commands, markdown);
    long n = ftell(f);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    rewind(f);
    if (text && fread(text, 1, (size_t)n, f) == (size_t)n)
        text[n] = '\0';
    else {
        free(text);
        text = NULL;
    }
    fclose(f);
    return text;
}

/* Whether a plain reference has a row for `key` (a line "  KEY  type ..."). */
static int lists(const char *ref, const char *key) {
    char line[128];
    snprintf(line, sizeof(line), "\n  %s ", key);
    return ref && (strstr(ref, line) || (strncmp(ref, line + 1, strlen(line + 1)) == 0));
}

static void run_reference_lists_the_keys_run_reads_and_no_other(void) {
    char *ref = reference(SS_CMD_RUN, 0);
    CHECK(lists(ref, "input.topic"));
    CHECK(lists(ref, "mode"));
    CHECK(lists(ref, "redis.host"));
    CHECK(lists(ref, "model.path"));
    CHECK(lists(ref, "kafka.*") && lists(ref, "kafka.producer.*"));
    CHECK(!lists(ref, "compare.labels"));
    CHECK(!lists(ref, "promote.max.flip.rate"));
    CHECK(!lists(ref, "validate.min.roc.auc"));
    free(ref);
}

static void compare_reference_lists_compare_keys_and_what_compare_reads_of_the_worker(void) {
    char *ref = reference(SS_CMD_COMPARE, 0);
    CHECK(lists(ref, "compare.labels"));
    CHECK(lists(ref, "promote.max.flip.rate"));
    CHECK(lists(ref, "output.topic") && lists(ref, "shadow.file"));
    CHECK(lists(ref, "kafka.*") && lists(ref, "kafka.consumer.*"));
    CHECK(!lists(ref, "kafka.producer.*")); /* compare only reads */
    CHECK(!lists(ref, "input.topic"));
    CHECK(!lists(ref, "redis.host"));
    CHECK(!lists(ref, "validate.min.roc.auc"));
    free(ref);
}

static void validate_reference_lists_gates_model_and_input_schema_keys(void) {
    char *ref = reference(SS_CMD_VALIDATE, 0);
    CHECK(lists(ref, "validate.min.roc.auc"));
    CHECK(lists(ref, "model.path") && lists(ref, "model.threshold"));
    CHECK(lists(ref, "input.schema") && lists(ref, "features.rename"));
    CHECK(lists(ref, "batch.max.messages"));
    CHECK(!lists(ref, "compare.labels"));
    CHECK(!lists(ref, "redis.host"));
    CHECK(!lists(ref, "kafka.*"));
    free(ref);
}

static void full_reference_is_every_commands_keys_each_with_its_scope(void) {
    char *all = reference(SS_CMD_ALL, 1);
    char *run = reference(SS_CMD_RUN, 1), *cmp = reference(SS_CMD_COMPARE, 1);
    char *val = reference(SS_CMD_VALIDATE, 1);
    CHECK(all && run && cmp && val);
    if (!all || !run || !cmp || !val)
        goto out;
    CHECK_STR_CONTAINS(all, "| key | type | default | range / values | scope |");
    CHECK_STR_CONTAINS(all, "| `compare.labels` |");
    CHECK_STR_CONTAINS(all, "| `input.topic` | string | `customer-events` |  | run; consumer |");
    CHECK_STR_CONTAINS(all,
                       "| `output.topic` | string | `predictions` |  | run, compare; producer |");
    CHECK_STR_CONTAINS(all, "| run, compare, validate-model, rollout |"); /* log.level */
    /* every row of one command's reference is a row of the full one */
    const char *refs[] = {run, cmp, val};
    for (size_t r = 0; r < 3; r++)
        for (char *line = strstr(refs[r], "\n| `"); line; line = strstr(line + 1, "\n| `")) {
            char row[1024];
            size_t n = strcspn(line + 1, "\n");
            snprintf(row, sizeof(row), "%.*s", (int)(n < sizeof(row) ? n : sizeof(row) - 1),
                     line + 1);
            CHECK_STR_CONTAINS(all, row);
        }
out:
    free(all);
    free(run);
    free(cmp);
    free(val);
}

/* ---- secrets: only from the environment or from the file named by <key>.file */

static const char *const secret_keys[] = {"redis.password", "redis.tls.key.password",
                                          "schema.registry.basic.auth.user.info",
                                          "schema.registry.ssl.key.password"};
#define N_SECRETS (sizeof(secret_keys) / sizeof(secret_keys[0]))

static void a_secret_in_a_properties_file_is_refused_naming_the_key_and_both_ways(void) {
    for (size_t i = 0; i < N_SECRETS; i++) {
        char text[256], env[128], file_key[128];
        snprintf(text, sizeof(text), "input.topic = a\n%s = hunter2:hunter2\n", secret_keys[i]);
        ss_config_env_name(secret_keys[i], env, sizeof(env));
        snprintf(file_key, sizeof(file_key), "%s.file", secret_keys[i]);
        ss_config_t *c = ss_config_new();
        CHECK(ss_config_load_string(c, text, strlen(text), "t.properties", err, sizeof(err)) ==
              SS_ERR_CONFIG);
        CHECK_STR_CONTAINS(err, secret_keys[i]);
        CHECK_STR_CONTAINS(err, "t.properties:2");
        CHECK_STR_CONTAINS(err, env);
        CHECK_STR_CONTAINS(err, file_key);
        CHECK(!strstr(err, "hunter2"));
        CHECK(!strchr(err, '\n'));
        ss_config_destroy(c);
    }
}

static void a_secret_on_the_command_line_is_refused(void) {
    ss_config_t *c = ss_config_new();
    CHECK(ss_config_set(c, "redis.password", "hunter2", "-X", err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "'redis.password'");
    CHECK_STR_CONTAINS(err, "STREAMSCORE_REDIS_PASSWORD");
    CHECK(!strstr(err, "hunter2"));
    CHECK(strcmp(c->redis_password, "") == 0);
    ss_config_destroy(c);
}

static void a_secret_from_the_environment_is_read(void) {
    ss_config_t *c = load("model.path = m.json\nkafka.bootstrap.servers = x:1\n");
    char *env[] = {"STREAMSCORE_REDIS_PASSWORD=s3cret",
                   "STREAMSCORE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=alice:pw", NULL};
    CHECK(c && ss_config_apply_env(c, env, NULL, err, sizeof(err)) == 0);
    CHECK(c && ss_config_finalize(c, err, sizeof(err)) == 0);
    CHECK(c && strcmp(c->redis_password, "s3cret") == 0);
    CHECK(c && strcmp(c->registry_user_info, "alice:pw") == 0);
    ss_config_destroy(c);
}

/* A file of `n` bytes in the temporary directory; its path in `path`. */
static void temp_file(char *path, size_t len, const char *content, size_t n) {
    snprintf(path, len, "/tmp/ss-test-config-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(write(fd, content, n) == (ssize_t)n);
        close(fd);
    }
}

static void a_secret_from_its_file_is_read_with_one_trailing_newline_stripped(void) {
    char path[64], path2[64], text[512];
    temp_file(path, sizeof(path), "s3cret\n", 7);
    temp_file(path2, sizeof(path2), "alice:pw\n\n", 10);
    snprintf(text, sizeof(text),
             "model.path = m.json\nkafka.bootstrap.servers = x:1\nredis.password.file = %s\n",
             path);
    ss_config_t *c = load(text);
    char env[128];
    snprintf(env, sizeof(env), "STREAMSCORE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE=%s", path2);
    char *envp[] = {env, NULL};
    CHECK(c && ss_config_apply_env(c, envp, NULL, err, sizeof(err)) == 0);
    CHECK(c && ss_config_finalize(c, err, sizeof(err)) == 0);
    CHECK(c && strcmp(c->redis_password, "s3cret") == 0);
    CHECK(c && strcmp(c->registry_user_info, "alice:pw\n") == 0); /* one newline only */
    ss_config_destroy(c);
    unlink(path);
    unlink(path2);
}

static void a_secret_file_that_cannot_be_read_is_an_error_naming_its_key(void) {
    ss_config_t *c = load("model.path = m.json\nkafka.bootstrap.servers = x:1\n"
                          "redis.tls.key.password.file = /nonexistent/key-password\n");
    CHECK(c && ss_config_finalize(c, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "'redis.tls.key.password.file'");
    CHECK_STR_CONTAINS(err, "/nonexistent/key-password");
    ss_config_destroy(c);
}

static void a_secret_given_both_ways_is_refused(void) {
    char path[64], text[512];
    temp_file(path, sizeof(path), "from-file", 9);
    snprintf(text, sizeof(text),
             "model.path = m.json\nkafka.bootstrap.servers = x:1\nredis.password.file = %s\n",
             path);
    ss_config_t *c = load(text);
    char *env[] = {"STREAMSCORE_REDIS_PASSWORD=from-env", NULL};
    CHECK(c && ss_config_apply_env(c, env, NULL, err, sizeof(err)) == 0);
    CHECK(c && ss_config_finalize(c, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "'redis.password'");
    CHECK_STR_CONTAINS(err, "redis.password.file");
    CHECK(!strstr(err, "from-env") && !strstr(err, "from-file"));
    ss_config_destroy(c);
    unlink(path);
}

static void every_secret_has_a_file_key_in_the_reference(void) {
    char *ref = reference(SS_CMD_RUN, 0);
    for (size_t i = 0; i < N_SECRETS; i++) {
        char file_key[128];
        snprintf(file_key, sizeof(file_key), "%s.file", secret_keys[i]);
        CHECK(lists(ref, secret_keys[i]));
        CHECK(lists(ref, file_key));
        CHECK(ss_config_key_scope(file_key) == ss_config_key_scope(secret_keys[i]));
    }
    free(ref);
}

/* ---- Redis: ACL user and TLS */

static void redis_user_and_tls_keys_default_to_the_default_user_in_the_clear(void) {
    ss_config_t *c = ss_config_new();
    CHECK(c->redis_tls == 0);
    CHECK(strcmp(c->redis_username, "") == 0 && strcmp(c->redis_password, "") == 0);
    CHECK(strcmp(c->redis_tls_ca_file, "") == 0 && strcmp(c->redis_tls_server_name, "") == 0);
    CHECK(strcmp(c->redis_tls_cert_file, "") == 0 && strcmp(c->redis_tls_key_file, "") == 0);
    ss_config_destroy(c);
    c = load("redis.tls = true\nredis.username = streamscore\nredis.tls.ca.file = ca.crt\n"
             "redis.tls.server.name = redis.internal\n");
    CHECK(c && c->redis_tls == 1 && strcmp(c->redis_username, "streamscore") == 0);
    CHECK(c && strcmp(c->redis_tls_ca_file, "ca.crt") == 0);
    CHECK(c && strcmp(c->redis_tls_server_name, "redis.internal") == 0);
    ss_config_destroy(c);
}

static void a_redis_client_certificate_and_its_key_go_together(void) {
    const char *base = "model.path = m.json\nkafka.bootstrap.servers = x:1\nredis.tls = true\n";
    const char *one[] = {"redis.tls.cert.file = c.crt\n", "redis.tls.key.file = c.key\n"};
    char text[512];
    for (size_t i = 0; i < 2; i++) {
        snprintf(text, sizeof(text), "%s%s", base, one[i]);
        ss_config_t *c = load(text);
        CHECK(c && ss_config_finalize(c, err, sizeof(err)) == SS_ERR_CONFIG);
        CHECK_STR_CONTAINS(err, "'redis.tls.cert.file'");
        CHECK_STR_CONTAINS(err, "'redis.tls.key.file'");
        ss_config_destroy(c);
    }
    snprintf(text, sizeof(text), "%s%s%s", base, one[0], one[1]);
    ss_config_t *c = load(text);
    CHECK(c && ss_config_finalize(c, err, sizeof(err)) == 0);
    ss_config_destroy(c);
}

static void redis_tls_keys_without_redis_tls_are_refused(void) {
    const char *keys[] = {"redis.tls.ca.file", "redis.tls.cert.file", "redis.tls.server.name"};
    for (size_t i = 0; i < 3; i++) {
        char text[512], key[64];
        snprintf(text, sizeof(text), "model.path = m.json\nkafka.bootstrap.servers = x:1\n%s = x\n",
                 keys[i]);
        ss_config_t *c = load(text);
        CHECK(c && ss_config_finalize(c, err, sizeof(err)) == SS_ERR_CONFIG);
        snprintf(key, sizeof(key), "'%s'", keys[i]);
        CHECK_STR_CONTAINS(err, key);
        CHECK_STR_CONTAINS(err, "redis.tls = false");
        ss_config_destroy(c);
    }
}

static void key_scope_names_commands_and_kafka_client(void) {
    CHECK(ss_config_key_scope("input.topic") == (SS_CMD_RUN | SS_SCOPE_CONSUMER));
    CHECK(ss_config_key_scope("output.topic") == (SS_CMD_RUN | SS_CMD_COMPARE | SS_SCOPE_PRODUCER));
    CHECK(ss_config_key_scope("compare.labels") == SS_CMD_COMPARE);
    CHECK(ss_config_key_scope("validate.min.f1") == SS_CMD_VALIDATE);
    CHECK(ss_config_key_scope("log.level") == SS_CMD_ALL);
    CHECK(ss_config_key_scope("kafka.producer.linger.ms") ==
          (SS_CMD_RUN | SS_CMD_ROLLOUT | SS_SCOPE_PRODUCER));
    CHECK(ss_config_key_scope("kafka.consumer.session.timeout.ms") ==
          (SS_CMD_RUN | SS_CMD_COMPARE | SS_CMD_ROLLOUT | SS_SCOPE_CONSUMER));
    CHECK(ss_config_key_scope("kafka.bootstrap.servers") & SS_CMD_COMPARE);
    CHECK(ss_config_key_scope("no.such.key") == 0);
    CHECK(ss_config_key_scope("kafka.") == 0);
}

static const ss_config_rule_t *rule_named(const char *name) {
    size_t n;
    const ss_config_rule_t *rules = ss_config_rules(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(rules[i].name, name) == 0)
            return &rules[i];
    return NULL;
}

static void rules_are_named_once_each_with_commands_and_a_function(void) {
    size_t n;
    const ss_config_rule_t *rules = ss_config_rules(&n);
    CHECK(n > 10);
    for (size_t i = 0; i < n; i++) {
        CHECK(rules[i].name && *rules[i].name && rules[i].apply);
        CHECK(rules[i].commands && !(rules[i].commands & ~SS_CMD_ALL));
        CHECK(rule_named(rules[i].name) == &rules[i]); /* no name twice */
    }
    const ss_config_rule_t *bootstrap = rule_named("bootstrap_servers_required");
    CHECK(bootstrap && bootstrap->commands == (SS_CMD_RUN | SS_CMD_COMPARE | SS_CMD_ROLLOUT));
}

static void a_rule_applies_only_to_its_commands(void) {
    /* no kafka.bootstrap.servers: run and compare read Kafka, validate-model does not */
    unsigned commands[] = {SS_CMD_RUN, SS_CMD_COMPARE, SS_CMD_VALIDATE};
    for (size_t i = 0; i < 3; i++) {
        ss_config_t *c = load("model.path = m.json\n");
        int rc = ss_config_finalize_command(c, commands[i], err, sizeof(err));
        if (commands[i] == SS_CMD_VALIDATE)
            CHECK(rc == 0);
        else {
            CHECK(rc == SS_ERR_CONFIG);
            CHECK_STR_CONTAINS(err, "'kafka.bootstrap.servers'");
        }
        ss_config_destroy(c);
    }
    /* a required key is required by the commands that read it: model.path not by compare */
    for (size_t i = 0; i < 3; i++) {
        ss_config_t *c = load("kafka.bootstrap.servers = x:1\n");
        int rc = ss_config_finalize_command(c, commands[i], err, sizeof(err));
        if (commands[i] == SS_CMD_COMPARE)
            CHECK(rc == 0);
        else {
            CHECK(rc == SS_ERR_CONFIG);
            CHECK_STR_CONTAINS(err, "'model.path'");
        }
        ss_config_destroy(c);
    }
}

static void a_rule_for_every_command_applies_to_each(void) {
    unsigned commands[] = {SS_CMD_RUN, SS_CMD_COMPARE, SS_CMD_VALIDATE};
    const ss_config_rule_t *rule = rule_named("dlq_topic_differs");
    CHECK(rule && rule->commands == SS_CMD_ALL);
    for (size_t i = 0; i < 3; i++) {
        ss_config_t *c = load("model.path = m.json\nkafka.bootstrap.servers = x:1\n"
                              "dlq.topic = predictions\n");
        CHECK(ss_config_finalize_command(c, commands[i], err, sizeof(err)) == SS_ERR_CONFIG);
        CHECK_STR_CONTAINS(err, "'dlq.topic' must differ");
        ss_config_destroy(c);
    }
}

static void errors_are_ss_err_config(void) {
    ss_config_t *c = ss_config_new();
    CHECK(ss_config_set(c, "no.such.key", "1", "-X", err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK(ss_config_set(c, "worker.threads", "0", "-X", err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK(ss_config_set(c, "kafka.no.such.property", "1", "-X", err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK(ss_config_load_string(c, "nonsense\n", 9, "t", err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK(ss_config_load_file(c, "/nonexistent/streamscore.properties", err, sizeof(err)) ==
          SS_ERR_CONFIG);
    CHECK(ss_config_finalize(c, err, sizeof(err)) == SS_ERR_CONFIG);
    char host[64];
    int port;
    CHECK(ss_config_parse_listen("no-port", host, sizeof(host), &port) == SS_ERR_CONFIG);
    ss_config_destroy(c);
}

static const check_test_t tests[] = {
    {"defaults_match_the_documented_values", defaults_match_the_documented_values},
    {"properties_syntax_comments_colons_and_continuations",
     properties_syntax_comments_colons_and_continuations},
    {"a_message_max_bytes_too_small_for_a_dead_letter_is_refused",
     a_message_max_bytes_too_small_for_a_dead_letter_is_refused},
    {"a_shadow_file_with_exactly_once_is_refused", a_shadow_file_with_exactly_once_is_refused},
    {"java_separators_blank_colon_and_equals_and_repeats_warned",
     java_separators_blank_colon_and_equals_and_repeats_warned},
    {"unknown_key_is_an_error_naming_it_and_its_line",
     unknown_key_is_an_error_naming_it_and_its_line},
    {"bad_integer_names_the_key", bad_integer_names_the_key},
    {"out_of_range_names_the_key_and_bounds", out_of_range_names_the_key_and_bounds},
    {"enum_value_must_be_listed", enum_value_must_be_listed},
    {"kafka_keys_pass_through_and_are_checked_by_librdkafka",
     kafka_keys_pass_through_and_are_checked_by_librdkafka},
    {"environment_overrides_the_file", environment_overrides_the_file},
    {"environment_unknown_names_are_reported_not_fatal",
     environment_unknown_names_are_reported_not_fatal},
    {"environment_bad_value_names_the_variable", environment_bad_value_names_the_variable},
    {"env_name_mapping", env_name_mapping},
    {"finalize_requires_model_path_and_bootstrap", finalize_requires_model_path_and_bootstrap},
    {"finalize_derives_card_dlq_shadow_topic_and_group",
     finalize_derives_card_dlq_shadow_topic_and_group},
    {"confluent_framing_needs_a_valid_schema_map", confluent_framing_needs_a_valid_schema_map},
    {"a_registry_replaces_the_schema_map_and_its_url_and_credentials_are_checked",
     a_registry_replaces_the_schema_map_and_its_url_and_credentials_are_checked},
    {"nul_bytes_and_garbage_lines_are_errors_not_crashes",
     nul_bytes_and_garbage_lines_are_errors_not_crashes},
    {"run_reference_lists_the_keys_run_reads_and_no_other",
     run_reference_lists_the_keys_run_reads_and_no_other},
    {"compare_reference_lists_compare_keys_and_what_compare_reads_of_the_worker",
     compare_reference_lists_compare_keys_and_what_compare_reads_of_the_worker},
    {"validate_reference_lists_gates_model_and_input_schema_keys",
     validate_reference_lists_gates_model_and_input_schema_keys},
    {"full_reference_is_every_commands_keys_each_with_its_scope",
     full_reference_is_every_commands_keys_each_with_its_scope},
    {"key_scope_names_commands_and_kafka_client", key_scope_names_commands_and_kafka_client},
    {"a_secret_in_a_properties_file_is_refused_naming_the_key_and_both_ways",
     a_secret_in_a_properties_file_is_refused_naming_the_key_and_both_ways},
    {"a_secret_on_the_command_line_is_refused", a_secret_on_the_command_line_is_refused},
    {"a_secret_from_the_environment_is_read", a_secret_from_the_environment_is_read},
    {"a_secret_from_its_file_is_read_with_one_trailing_newline_stripped",
     a_secret_from_its_file_is_read_with_one_trailing_newline_stripped},
    {"a_secret_file_that_cannot_be_read_is_an_error_naming_its_key",
     a_secret_file_that_cannot_be_read_is_an_error_naming_its_key},
    {"a_secret_given_both_ways_is_refused", a_secret_given_both_ways_is_refused},
    {"every_secret_has_a_file_key_in_the_reference", every_secret_has_a_file_key_in_the_reference},
    {"redis_user_and_tls_keys_default_to_the_default_user_in_the_clear",
     redis_user_and_tls_keys_default_to_the_default_user_in_the_clear},
    {"a_redis_client_certificate_and_its_key_go_together",
     a_redis_client_certificate_and_its_key_go_together},
    {"redis_tls_keys_without_redis_tls_are_refused", redis_tls_keys_without_redis_tls_are_refused},
    {"rules_are_named_once_each_with_commands_and_a_function",
     rules_are_named_once_each_with_commands_and_a_function},
    {"a_rule_applies_only_to_its_commands", a_rule_applies_only_to_its_commands},
    {"a_rule_for_every_command_applies_to_each", a_rule_for_every_command_applies_to_each},
    {"errors_are_ss_err_config", errors_are_ss_err_config},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
