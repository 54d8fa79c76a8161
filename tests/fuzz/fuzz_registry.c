/* fuzz_registry.c - libFuzzer target for the schema registry's answers: any bytes as the body
 * of an answer go through what the worker reads from one (worker/core/registry.h): a schema
 * by id (ss_registry_parse_schema), a registration (ss_registry_parse_id) and an error's
 * words (ss_registry_parse_error). A schema text the first yields goes on as a fetched writer
 * schema does: read by Avro C and resolved against the real reader schema with the model's
 * features (ss_codec_check_fetched). A crash, leak or sanitizer report here is a registry (or
 * whatever answers in its place) that could take a worker down.
 *
 * The reader schema is found under $STREAMSCORE_ROOT, else the source directory this target
 * was built from. The same bytes, NUL-terminated, are also shown as a registry URL
 * (ss_registry_redact_url): what was before the last '@' after the scheme never shows. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "error.h"
#include "registry.h"

#ifndef SS_SOURCE_DIR
#define SS_SOURCE_DIR "."
#endif

static char *const features[] = {"tenure_months",        "monthly_charges",      "total_charges",
                                 "contract_type",        "support_calls_30d",    "logins_30d",
                                 "payment_failures_90d", "data_usage_gb",        "has_autopay",
                                 "num_products",         "days_since_last_login"};
#define NF (sizeof(features) / sizeof(features[0]))

static ss_config_t *cfg;
static ss_codec_t *codec;

static void die(const char *what, const char *err) {
    fprintf(stderr, "fuzz_registry: %s: %s\n", what, err);
    abort();
}

static void set(const char *key, const char *value) {
    char err[512];
    if (ss_config_set(cfg, key, value, "fuzz_registry", err, sizeof(err)) < 0)
        die(key, err);
}

static void release(void) {
    ss_codec_destroy(codec);
    ss_config_destroy(cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char reader[4096], err[1024];
    const char *root = getenv("STREAMSCORE_ROOT");
    snprintf(reader, sizeof(reader), "%s/schemas/customer_event.avsc",
             root && *root ? root : SS_SOURCE_DIR);
    if (!(cfg = ss_config_new()))
        die("config", "out of memory");
    set("model.path", "fuzz.json");
    set("kafka.bootstrap.servers", "127.0.0.1:9");
    set("input.schema", reader);
    set("input.writer.schema", reader);
    if (ss_config_finalize(cfg, err, sizeof(err)) < 0)
        die("config", err);
    if (!(codec = ss_codec_new(cfg, features, NF, err, sizeof(err))))
        die("codec (set STREAMSCORE_ROOT to the source tree)", err);
    atexit(release);
    return 0;
}

/* A message for a log line or a dead-letter header: non-empty, printable ASCII. */
static void check_printable(const char *s, const char *what) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            die(what, "a byte that is not printable ASCII in a message");
}

static void schema_answer(const char *body, size_t len) {
    char err[1024] = "", *schema = (char *)1;
    int rc = ss_registry_parse_schema(body, len, "schema id 1", &schema, err, sizeof(err));
    if (rc != 0 && rc != SS_ERR_INVALID && rc != SS_ERR_NOMEM)
        die("parse_schema", "an unexpected code");
    if (rc != 0) {
        if (schema || !*err)
            die("parse_schema", "a failure with a schema, or without a message");
        return;
    }
    if (!schema)
        die("parse_schema", "success without a schema");
    err[0] = '\0';
    rc = ss_codec_check_fetched(codec, schema, err, sizeof(err));
    if (rc != SS_DECODE_OK && rc != SS_DECODE_UNRESOLVABLE_SCHEMA &&
        rc != SS_DECODE_REGISTRY_UNAVAILABLE)
        die("check_fetched", "an unexpected code");
    if (rc != SS_DECODE_OK && !*err)
        die("check_fetched", "a failure without a message");
    free(schema);
}

static void id_answer(const char *body, size_t len) {
    char err[1024] = "";
    int32_t id = -1;
    int rc = ss_registry_parse_id(body, len, "registering", &id, err, sizeof(err));
    if (rc == 0 && id < 0)
        die("parse_id", "a negative id");
    if (rc != 0 && (rc != SS_ERR_CONFIG || !*err))
        die("parse_id", "a failure that is not SS_ERR_CONFIG with a message");
    if (rc != 0)
        check_printable(err, "parse_id");
}

static void error_answer(const char *body, size_t len) {
    char out[400];
    memset(out, 'x', sizeof(out));
    ss_registry_parse_error(body, len, out, sizeof(out));
    if (!memchr(out, '\0', sizeof(out)) || !*out)
        die("parse_error", "words not NUL-terminated, or empty");
    check_printable(out, "parse_error");
}

static void url_shown(const char *url) {
    char out[256];
    ss_registry_redact_url(url, out, sizeof(out));
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = strrchr(host, '@');
    if (!memchr(out, '\0', sizeof(out)))
        die("redact_url", "not NUL-terminated");
    size_t pre = (size_t)(host - url), n = strlen(out);
    /* after the scheme come the stars (or as many of them as fit), never the userinfo */
    if (at && n > pre && strncmp(out + pre, "***", n - pre < 3 ? n - pre : 3) != 0)
        die("redact_url", "the userinfo shows");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    schema_answer(body, size);
    id_answer(body, size);
    error_answer(body, size);
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    url_shown(url);
    free(url);
    return 0;
}
