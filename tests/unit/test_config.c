/* test_config.c - the configuration table: parsing, types, bounds, environment
 * overrides, derived defaults and the errors that name the offending key. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "config.h"

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
    CHECK(load("model.threshold = 1.5\n") == NULL);
    CHECK_STR_CONTAINS(err, "'model.threshold'");
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
    snprintf(text, sizeof(text),
             "%sschema.registry.url = https://r\nschema.registry.basic.auth.user.info = alice\n",
             base);
    c = load(text);
    CHECK(c && ss_config_finalize(c, err, sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "'schema.registry.basic.auth.user.info'");
    ss_config_destroy(c);
    c = load("output.subject.name.strategy = topic-name\n");
    CHECK(c == NULL);
    CHECK_STR_CONTAINS(err, "'output.subject.name.strategy'");
}

static void nul_bytes_and_garbage_lines_are_errors_not_crashes(void) {
    CHECK(load("just some words\n") == NULL);
    CHECK_STR_CONTAINS(err, "expected 'key = value'");
    ss_config_t *c = ss_config_new();
    CHECK(ss_config_load_string(c, "a\0b=c", 5, "t", err, sizeof(err)) < 0);
    ss_config_destroy(c);
}

static const check_test_t tests[] = {
    {"defaults_match_the_documented_values", defaults_match_the_documented_values},
    {"properties_syntax_comments_colons_and_continuations",
     properties_syntax_comments_colons_and_continuations},
    {"unknown_key_is_an_error_naming_it_and_its_line", unknown_key_is_an_error_naming_it_and_its_line},
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
    {NULL, NULL}};

int main(void) { return check_run_all(tests); }
