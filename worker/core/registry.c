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
#define MAX_IDLE 4          /* connections kept for reuse between requests */

/* One connection and the answer it is reading: used by one request at a time, never shared
 * while in use. */
typedef struct conn {
    CURL *curl;
    char *body;
    size_t body_len;
    int body_overflow;
    struct conn *next; /* in the idle list */
} conn_t;

struct ss_registry {
    /* guards idle, n_idle, tokens and refill_ms; never held across a request */
    pthread_mutex_t lock;
    CURL *tmpl; /* every option set, never performed: each connection is a copy of it */
    conn_t *idle;
    size_t n_idle;
    struct curl_slist *headers;
    char *base;  /* schema.registry.url without a trailing '/': what libcurl is given */
    char *shown; /* base without its userinfo: what messages say */
    long retries, backoff_ms, backoff_max_ms;
    /* fetches by id: a token bucket of schema.registry.fetch.rate tokens, in thousandths */
    long rate;
    int64_t tokens, refill_ms;
    ss_metrics_t *stats;
};

#define COUNT(r, field)                                                                            \
    do {                                                                                           \
        if ((r)->stats)                                                                            \
            __atomic_add_fetch(&(r)->stats->field, 1, __ATOMIC_RELAXED);                           \
    } while (0)

void ss_registry_redact_url(const char *url, char *out, size_t outlen) {
    if (!outlen)
        return;
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = strrchr(host, '@'); /* the last: a password may hold an '@' */
    if (!at)
        snprintf(out, outlen, "%s", url);
    else /* cut short, it still ends before or in the stars: never in what they hide */
        snprintf(out, outlen, "%.*s***%s", (int)(host - url), url, at);
}

static size_t on_body(char *data, size_t size, size_t n, void *opaque) {
    conn_t *c = opaque;
    size_t len = size * n;
    if (c->body_len + len + 1 > MAX_BODY) {
        c->body_overflow = 1;
        return 0; /* aborts the transfer */
    }
    char *g = realloc(c->body, c->body_len + len + 1);
    if (!g)
        return 0;
    c->body = g;
    memcpy(c->body + c->body_len, data, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return len;
}

static void conn_destroy(conn_t *c) {
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->body);
    free(c);
}

/* A connection for one request: an idle one, or a new copy of the template; NULL out of
 * memory. @locks r->lock briefly */
static conn_t *conn_take(ss_registry_t *r) {
    pthread_mutex_lock(&r->lock);
    conn_t *c = r->idle;
    if (c) {
        r->idle = c->next;
        r->n_idle--;
    } else if ((c = calloc(1, sizeof(*c))) != NULL) {
        c->curl = curl_easy_duphandle(r->tmpl); /* reads the template: under the lock */
    }
    pthread_mutex_unlock(&r->lock);
    if (c && (!c->curl || curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c) != CURLE_OK)) {
        conn_destroy(c);
        return NULL;
    }
    return c;
}

/* Back to the idle list once the request is over (closed when enough are idle).
 * @locks r->lock briefly */
static void conn_give(ss_registry_t *r, conn_t *c) {
    pthread_mutex_lock(&r->lock);
    if (r->n_idle < MAX_IDLE) {
        c->next = r->idle;
        r->idle = c;
        r->n_idle++;
        c = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    conn_destroy(c);
}

static CURLcode set_opt_str(CURL *c, CURLoption o, const char *v) {
    return v && *v ? curl_easy_setopt(c, o, v) : CURLE_OK;
}

void ss_registry_destroy(ss_registry_t *r) {
    if (!r)
        return;
    while (r->idle) {
        conn_t *next = r->idle->next;
        conn_destroy(r->idle);
        r->idle = next;
    }
    if (r->tmpl)
        curl_easy_cleanup(r->tmpl);
    curl_slist_free_all(r->headers);
    pthread_mutex_destroy(&r->lock);
    free(r->base);
    free(r->shown);
    free(r);
}

/* The template's options from the config: 0, or SS_ERR_CONFIG when libcurl refuses one. */
static int set_options(ss_registry_t *r, const ss_config_t *cfg, char *errstr, size_t errlen) {
    CURL *c = r->tmpl;
    int bad = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
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
    r->rate = cfg->registry_fetch_rate > 0 ? cfg->registry_fetch_rate : 1;
    r->tokens = r->rate * 1000;
    r->refill_ms = ss_mono_ms();
    size_t ul = strlen(cfg->registry_url) + 4;
    if (!(r->base = strdup(cfg->registry_url)) || !(r->shown = malloc(ul)))
        goto oom;
    size_t bl = strlen(r->base);
    while (bl && r->base[bl - 1] == '/')
        r->base[--bl] = '\0';
    ss_registry_redact_url(r->base, r->shown, ul);
    if (!(r->tmpl = curl_easy_init())) {
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

int ss_registry_fetch_permit(ss_registry_t *r, int32_t id, char *errstr, size_t errlen) {
    pthread_mutex_lock(&r->lock);
    int64_t now = ss_mono_ms(), cap = (int64_t)r->rate * 1000;
    if (now > r->refill_ms) {
        int64_t add = (now - r->refill_ms) * r->rate; /* rate per second = thousandths per ms */
        r->tokens = r->tokens + add > cap ? cap : r->tokens + add;
        r->refill_ms = now;
    }
    int ok = r->tokens >= 1000;
    if (ok)
        r->tokens -= 1000;
    pthread_mutex_unlock(&r->lock);
    if (ok)
        return 0;
    snprintf(errstr, errlen,
             "schema registry %s: schema id %d not fetched: more unknown ids than "
             "schema.registry.fetch.rate (%ld a second) allows; a later record with it asks again",
             r->shown, id, r->rate);
    return SS_ERR_UNAVAILABLE;
}

/* ---- answers: bytes from the network, read without trusting them */

/* At most `n` bytes of s into out as printable ASCII (others, NUL included, as '?'),
 * NUL-terminated. */
static void printable(const char *s, size_t n, char *out, size_t outlen) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (outlen)
        out[k] = '\0';
}

void ss_registry_parse_error(const char *body, size_t len, char *out, size_t outlen) {
    json_t *j = len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "message"));
    json_t *code = json_object_get(j, "error_code");
    char text[400];
    if (msg) {
        printable(msg, strlen(msg), text, sizeof(text));
        snprintf(out, outlen, "%s (error_code %lld)", text,
                 (long long)(json_is_integer(code) ? json_integer_value(code) : 0));
    } else {
        printable(len ? body : "no body", len ? (len < 200 ? len : 200) : 7, text, sizeof(text));
        snprintf(out, outlen, "%s", text);
    }
    json_decref(j);
}

int ss_registry_parse_schema(const char *body, size_t len, const char *what, char **schema,
                             char *errstr, size_t errlen) {
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *text = json_string_value(json_object_get(j, "schema"));
    const char *type = json_string_value(json_object_get(j, "schemaType"));
    json_t *refs = json_object_get(j, "references");
    char shown[64];
    int rc = SS_ERR_INVALID;
    *schema = NULL;
    if (!text) {
        snprintf(errstr, errlen, "schema registry: %s: the answer has no \"schema\" string", what);
    } else if (type && strcmp(type, "AVRO") != 0) {
        printable(type, strlen(type), shown, sizeof(shown));
        snprintf(errstr, errlen, "schema registry: %s is a %s schema, not Avro", what, shown);
    } else if (json_array_size(refs) > 0) {
        snprintf(errstr, errlen,
                 "schema registry: %s uses schema references, which "
                 "streamscore does not resolve",
                 what);
    } else if (!(*schema = strdup(text))) {
        snprintf(errstr, errlen, "schema registry: out of memory");
        rc = SS_ERR_NOMEM;
    } else {
        rc = 0;
    }
    json_decref(j);
    return rc;
}

int ss_registry_parse_id(const char *body, size_t len, const char *what, int32_t *id, char *errstr,
                         size_t errlen) {
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *jid = json_object_get(j, "id");
    int rc = 0;
    if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
        json_integer_value(jid) > INT32_MAX) {
        char shown[210];
        printable(body, len < 200 ? len : 200, shown, sizeof(shown));
        snprintf(errstr, errlen, "schema registry: %s: the answer has no schema id: %s", what,
                 shown);
        rc = SS_ERR_CONFIG;
    } else {
        *id = (int32_t)json_integer_value(jid);
    }
    json_decref(j);
    return rc;
}

/* ---- requests */

/* One request with retries, on a connection of its own: 0 with the answer in c->body, or a
 * negative SS_ERR_* (registry.h). `what` names the request in messages. No lock is held while
 * it runs: other requests run side by side. */
static int exchange(ss_registry_t *r, conn_t *c, const char *url, const char *post,
                    const char *what, char *errstr, size_t errlen) {
    long backoff = r->backoff_ms;
    char detail[512];
    for (long attempt = 0;; attempt++) {
        c->body_len = 0;
        c->body_overflow = 0;
        if (c->body)
            c->body[0] = '\0';
        curl_easy_setopt(c->curl, CURLOPT_URL, url);
        if (post) {
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, post);
        } else {
            curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
        }
        CURLcode cc = curl_easy_perform(c->curl);
        long status = 0;
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        int retriable = 0;
        if (cc == CURLE_OK && status >= 200 && status < 300) {
            COUNT(r, registry_ok);
            return 0;
        }
        if (cc != CURLE_OK) {
            snprintf(detail, sizeof(detail), "%s",
                     c->body_overflow ? "answer larger than 4 MiB" : curl_easy_strerror(cc));
            retriable = !c->body_overflow;
        } else {
            char words[400];
            ss_registry_parse_error(c->body, c->body_len, words, sizeof(words));
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
            snprintf(errstr, errlen, "schema registry %s: %s: %s%s", r->shown, what, detail,
                     retriable ? " (retries exhausted)" : "");
            return retriable ? SS_ERR_UNAVAILABLE : SS_ERR_CONFIG;
        }
        COUNT(r, registry_retries);
        ss_log(SS_LOG_WARN,
               SS_FIELDS(SSF_STR("component", "schema-registry"), SSF_INT("attempt", attempt + 1)),
               "schema registry %s: %s: %s; retrying in %ld ms", r->shown, what, detail, backoff);
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
    conn_t *c = conn_take(r);
    if (!c) {
        snprintf(errstr, errlen, "schema registry: out of memory");
        return SS_ERR_NOMEM;
    }
    int rc = exchange(r, c, url, NULL, what, errstr, errlen);
    if (rc == 0)
        rc = ss_registry_parse_schema(c->body, c->body_len, what, schema, errstr, errlen);
    conn_give(r, c);
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
    conn_t *c = conn_take(r);
    int rc = c ? exchange(r, c, url, post, what, errstr, errlen) : SS_ERR_NOMEM;
    if (!c)
        snprintf(errstr, errlen, "schema registry: out of memory");
    if (rc == SS_ERR_NOT_FOUND)
        rc = SS_ERR_CONFIG; /* a registry with no such endpoint */
    if (rc == 0)
        rc = ss_registry_parse_id(c->body, c->body_len, what, id, errstr, errlen);
    if (c)
        conn_give(r, c);
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
