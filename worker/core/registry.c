/* registry.c - the Schema Registry client. It exists so that events serialized by the
 * Confluent serializers (magic byte, schema id, Avro body) can be read without a local copy
 * of every writer schema, and so that the prediction topic's schema is registered where
 * stock deserializers look for it. Only the Confluent REST API is spoken (Confluent Schema
 * Registry, Apicurio's /apis/ccompat/v7, Karapace, Redpanda). */
#include "registry.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define MAX_BODY (4u << 20) /* a larger answer is not a schema */

struct ss_registry {
    pthread_mutex_t lock; /* guards curl and body: one exchange at a time */
    CURL *curl;
    struct curl_slist *headers;
    char *base; /* schema.registry.url without a trailing '/' */
    long retries, backoff_ms, backoff_max_ms;
    ss_metrics_t *stats;
    char *body;
    size_t body_len;
    int body_overflow;
};

#define COUNT(r, field)                                                                            \
    do {                                                                                           \
        if ((r)->stats)                                                                            \
            __atomic_add_fetch(&(r)->stats->field, 1, __ATOMIC_RELAXED);                           \
    } while (0)

static size_t on_body(char *data, size_t size, size_t n, void *opaque) {
    ss_registry_t *r = opaque;
    size_t len = size * n;
    if (r->body_len + len + 1 > MAX_BODY) {
        r->body_overflow = 1;
        return 0; /* aborts the transfer */
    }
    char *g = realloc(r->body, r->body_len + len + 1);
    if (!g)
        return 0;
    r->body = g;
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

static CURLcode set_opt_str(CURL *c, CURLoption o, const char *v) {
    return v && *v ? curl_easy_setopt(c, o, v) : CURLE_OK;
}

void ss_registry_destroy(ss_registry_t *r) {
    if (!r)
        return;
    if (r->curl)
        curl_easy_cleanup(r->curl);
    curl_slist_free_all(r->headers);
    pthread_mutex_destroy(&r->lock);
    free(r->base);
    free(r->body);
    free(r);
}

/* The connection's options from the config: 0, or SS_ERR_CONFIG when libcurl refuses one. */
static int set_options(ss_registry_t *r, const ss_config_t *cfg, char *errstr, size_t errlen) {
    CURL *c = r->curl;
    int bad = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg->registry_timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cfg->registry_timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "streamscore/" SS_VERSION) != CURLE_OK;
    if (*cfg->registry_user_info) {
        bad |= curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC) != CURLE_OK;
        bad |= set_opt_str(c, CURLOPT_USERPWD, cfg->registry_user_info) != CURLE_OK;
    }
    bad |= set_opt_str(c, CURLOPT_CAINFO, cfg->registry_ssl_ca) != CURLE_OK;
    bad |= set_opt_str(c, CURLOPT_SSLCERT, cfg->registry_ssl_cert) != CURLE_OK;
    bad |= set_opt_str(c, CURLOPT_SSLKEY, cfg->registry_ssl_key) != CURLE_OK;
    bad |= set_opt_str(c, CURLOPT_KEYPASSWD, cfg->registry_ssl_key_password) != CURLE_OK;
    if (!cfg->registry_ssl_verify) {
        bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK;
    }
    if (!bad)
        return 0;
    snprintf(errstr, errlen,
             "schema registry: libcurl refused an option (is TLS supported "
             "by this libcurl?)");
    return SS_ERR_CONFIG;
}

ss_registry_t *ss_registry_new(const ss_config_t *cfg, ss_metrics_t *stats, char *errstr,
                               size_t errlen) {
    ss_registry_t *r = calloc(1, sizeof(*r));
    if (!r)
        goto oom;
    pthread_mutex_init(&r->lock, NULL);
    r->stats = stats;
    r->retries = cfg->registry_retries;
    r->backoff_ms = cfg->registry_backoff_ms;
    r->backoff_max_ms = cfg->registry_backoff_max_ms;
    if (!(r->base = strdup(cfg->registry_url)))
        goto oom;
    size_t bl = strlen(r->base);
    while (bl && r->base[bl - 1] == '/')
        r->base[--bl] = '\0';
    if (!(r->curl = curl_easy_init())) {
        snprintf(errstr, errlen, "schema registry: cannot initialise libcurl");
        goto fail;
    }
    r->headers = curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json, "
                                         "application/json");
    r->headers =
        curl_slist_append(r->headers, "Content-Type: application/vnd.schemaregistry.v1+json");
    if (!r->headers)
        goto oom;
    if (set_options(r, cfg, errstr, errlen) < 0)
        goto fail;
    return r;
oom:
    snprintf(errstr, errlen, "schema registry: out of memory");
fail:
    ss_registry_destroy(r);
    return NULL;
}

/* The registry's own words from an error body: {"error_code": N, "message": "..."}. */
static void error_detail(const ss_registry_t *r, char *out, size_t outlen) {
    json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
    json_int_t code = j ? json_integer_value(json_object_get(j, "error_code")) : 0;
    if (msg)
        snprintf(out, outlen, "%s (error_code %lld)", msg, (long long)code);
    else
        snprintf(out, outlen, "%.200s", r->body_len ? r->body : "no body");
    json_decref(j);
}

/* One request with retries. 0 with the answer in r->body, or a negative SS_ERR_* (registry.h).
 * `what` names the request in messages. @locks r->lock held by the caller */
static int exchange(ss_registry_t *r, const char *url, const char *post, const char *what,
                    char *errstr, size_t errlen) {
    long backoff = r->backoff_ms;
    char detail[512];
    for (long attempt = 0;; attempt++) {
        r->body_len = 0;
        r->body_overflow = 0;
        if (r->body)
            r->body[0] = '\0';
        curl_easy_setopt(r->curl, CURLOPT_URL, url);
        if (post) {
            curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, post);
        } else {
            curl_easy_setopt(r->curl, CURLOPT_HTTPGET, 1L);
        }
        CURLcode cc = curl_easy_perform(r->curl);
        long status = 0;
        curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
        int retriable = 0;
        if (cc == CURLE_OK && status >= 200 && status < 300) {
            COUNT(r, registry_ok);
            return 0;
        }
        if (cc != CURLE_OK) {
            snprintf(detail, sizeof(detail), "%s",
                     r->body_overflow ? "answer larger than 4 MiB" : curl_easy_strerror(cc));
            retriable = !r->body_overflow;
        } else {
            char words[400];
            error_detail(r, words, sizeof(words));
            snprintf(detail, sizeof(detail), "HTTP %ld: %s", status, words);
            retriable = status >= 500 || status == 429 || status == 408;
            if (status == 404) {
                COUNT(r, registry_not_found);
                snprintf(errstr, errlen, "schema registry: %s: %s", what, detail);
                return SS_ERR_NOT_FOUND;
            }
        }
        if (!retriable || attempt >= r->retries) {
            COUNT(r, registry_failed);
            snprintf(errstr, errlen, "schema registry %s: %s: %s%s", r->base, what, detail,
                     retriable ? " (retries exhausted)" : "");
            return retriable ? SS_ERR_UNAVAILABLE : SS_ERR_CONFIG;
        }
        COUNT(r, registry_retries);
        ss_log(SS_LOG_WARN,
               SS_FIELDS(SSF_STR("component", "schema-registry"), SSF_INT("attempt", attempt + 1)),
               "schema registry %s: %s: %s; retrying in %ld ms", r->base, what, detail, backoff);
        ss_sleep_ms(backoff);
        backoff = backoff * 2 > r->backoff_max_ms ? r->backoff_max_ms : backoff * 2;
    }
}

int ss_registry_schema_by_id(ss_registry_t *r, int32_t id, char **schema, char *errstr,
                             size_t errlen) {
    char url[2048], what[64];
    *schema = NULL;
    snprintf(url, sizeof(url), "%s/schemas/ids/%d", r->base, id);
    snprintf(what, sizeof(what), "schema id %d", id);
    pthread_mutex_lock(&r->lock);
    int rc = exchange(r, url, NULL, what, errstr, errlen);
    if (rc == 0) {
        json_error_t jerr;
        json_t *j = json_loadb(r->body, r->body_len, 0, &jerr);
        const char *text = json_string_value(json_object_get(j, "schema"));
        const char *type = json_string_value(json_object_get(j, "schemaType"));
        json_t *refs = json_object_get(j, "references");
        if (!text) {
            snprintf(errstr, errlen, "schema registry: %s: the answer has no \"schema\" string",
                     what);
            rc = SS_ERR_INVALID;
        } else if (type && strcmp(type, "AVRO") != 0) {
            snprintf(errstr, errlen, "schema registry: %s is a %s schema, not Avro", what, type);
            rc = SS_ERR_INVALID;
        } else if (json_array_size(refs) > 0) {
            snprintf(errstr, errlen,
                     "schema registry: %s uses schema references, which "
                     "streamscore does not resolve",
                     what);
            rc = SS_ERR_INVALID;
        } else if (!(*schema = strdup(text))) {
            snprintf(errstr, errlen, "schema registry: out of memory");
            rc = SS_ERR_NOMEM;
        }
        json_decref(j);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* Percent-encode a path segment (a subject may hold any character). */
static void path_escape(const char *s, char *out, size_t outlen) {
    size_t n = 0;
    for (; *s && n + 4 < outlen; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            out[n++] = (char)ch;
        else
            n += (size_t)snprintf(out + n, outlen - n, "%%%02X", ch);
    }
    out[n] = '\0';
}

int ss_registry_register(ss_registry_t *r, const char *subject, const char *schema, int32_t *id,
                         char *errstr, size_t errlen) {
    char esc[1024], url[2048], what[1100];
    path_escape(subject, esc, sizeof(esc));
    snprintf(url, sizeof(url), "%s/subjects/%s/versions", r->base, esc);
    snprintf(what, sizeof(what), "registering the output schema under subject '%s'", subject);
    json_t *req = json_pack("{s:s, s:s}", "schema", schema, "schemaType", "AVRO");
    char *post = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!post) {
        snprintf(errstr, errlen, "schema registry: out of memory");
        return SS_ERR_NOMEM;
    }
    pthread_mutex_lock(&r->lock);
    int rc = exchange(r, url, post, what, errstr, errlen);
    if (rc == SS_ERR_NOT_FOUND)
        rc = SS_ERR_CONFIG; /* a registry with no such endpoint */
    if (rc == 0) {
        json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
        json_t *jid = json_object_get(j, "id");
        if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
            json_integer_value(jid) > INT32_MAX) {
            snprintf(errstr, errlen, "schema registry: %s: the answer has no schema id: %.200s",
                     what, r->body);
            rc = SS_ERR_CONFIG;
        } else {
            *id = (int32_t)json_integer_value(jid);
        }
        json_decref(j);
    }
    pthread_mutex_unlock(&r->lock);
    free(post);
    return rc;
}

int ss_registry_subject(const ss_config_t *cfg, const char *topic, const char *record_fullname,
                        char *out, size_t outlen) {
    int n;
    switch (cfg->output_subject_strategy) {
    case SS_SUBJECT_RECORD: n = snprintf(out, outlen, "%s", record_fullname); break;
    case SS_SUBJECT_TOPIC_RECORD: n = snprintf(out, outlen, "%s-%s", topic, record_fullname); break;
    default: n = snprintf(out, outlen, "%s-value", topic); break;
    }
    return n < 0 || (size_t)n >= outlen ? SS_ERR_CONFIG : 0;
}
