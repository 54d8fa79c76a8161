/* score_api.c - the on-demand score: one customer's features read from Redis, scored by the
 * model of its route, as a JSON answer. */
#include "score_api.h"

#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "canary.h"
#include "error.h"
#include "explain.h"
#include "features.h"
#include "gates.h"
#include "http.h"
#include "log.h"

#define PREFIX "/v1/customers/"
#define SUFFIX "/score"
#define MAX_PEM (1u << 20)

/* What one request holds while it is answered: a thread of the pool has one at a time. */
typedef struct slot {
    ss_cache_t *cache;
    ss_predictor_t *pred;
    float *row;
    double *outputs;
    ss_contribution_t top[SS_SCORE_MAX_EXPLAIN];
    int busy;
} slot_t;

struct ss_score_api {
    ss_runtime_t *rt;
    ss_http_t *http;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    slot_t *slots;
    size_t n_slots;
    size_t nf;             /* the features (every model served has the same) */
    char *cert, *key, *ca; /* PEM text of the TLS files */
};

/* ------------------------------------------------------------------ answers */

static int error_answer(ss_buf_t *body, int status, const char *fmt, const char *arg) {
    char msg[512];
    snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
    json_t *j = json_pack("{s:s}", "error", msg);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    ss_buf_printf(body, "%s\n", text ? text : "{}");
    free(text);
    json_decref(j);
    return status;
}

/* The id between PREFIX and SUFFIX, or NULL when the path is another. */
static const char *customer_of(const char *path, size_t *len) {
    size_t n = strlen(path), p = strlen(PREFIX), s = strlen(SUFFIX);
    if (n < p + s || strncmp(path, PREFIX, p) != 0 || strcmp(path + n - s, SUFFIX) != 0)
        return NULL;
    *len = n - p - s;
    return path + p;
}

static int id_ok(const char *id, size_t len) {
    if (len == 0 || len > SS_SCORE_MAX_ID)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f || id[i] == '/')
            return 0;
    return 1;
}

/* Authorization: Bearer <score.token>, compared in constant time. */
static int token_ok(const ss_score_api_t *a, ss_http_req_t *req) {
    const char *want = a->rt->cfg->score_token;
    const char *got = ss_http_header(req, "Authorization");
    if (!*want)
        return 1;
    if (!got || strncmp(got, "Bearer ", 7) != 0)
        return 0;
    got += 7;
    size_t n = strlen(want);
    return strlen(got) == n && CRYPTO_memcmp(got, want, n) == 0;
}

static slot_t *take_slot(ss_score_api_t *a) {
    pthread_mutex_lock(&a->lock);
    for (;;) {
        for (size_t i = 0; i < a->n_slots; i++)
            if (!a->slots[i].busy) {
                a->slots[i].busy = 1;
                pthread_mutex_unlock(&a->lock);
                return &a->slots[i];
            }
        pthread_cond_wait(&a->freed, &a->lock); /* more threads than slots: never, in practice */
    }
}

static void give_slot(ss_score_api_t *a, slot_t *s) {
    pthread_mutex_lock(&a->lock);
    s->busy = 0;
    pthread_cond_signal(&a->freed);
    pthread_mutex_unlock(&a->lock);
}

static json_t *number_or_null(double v) {
    return isnan(v) ? json_null() : json_real(v);
}

/* The answer's JSON for a scored customer. */
static json_t *scored(const ss_model_t *m, const char *id, size_t len, const float *row,
                      double score, const double *outputs, int cls, double threshold,
                      const char *route, const ss_contribution_t *top, size_t n_top, double bias,
                      int output) {
    json_t *features = json_object(), *j;
    for (size_t f = 0; f < m->n_features; f++)
        json_object_set_new(features, m->feature_names[f], number_or_null(row[f]));
    char hash[17];
    ss_features_hash_hex(ss_features_hash(row, m->n_features), hash);
    j = json_pack("{s:s%, s:o, s:f, s:o, s:o, s:{s:s, s:s}, s:s, s:s, s:s}", "customer_id", id, len,
                  "features", features, "score", score, "decision",
                  isnan(threshold) ? json_null() : json_boolean(score >= threshold), "threshold",
                  number_or_null(threshold), "model", "name", m->name, "version", m->version,
                  "route", route, "feature_hash", hash, "features_from", "redis");
    if (m->objective.n_outputs > 1) {
        json_t *outs = json_array();
        for (size_t k = 0; k < m->objective.n_outputs; k++)
            json_array_append_new(outs, json_real(outputs[k]));
        json_object_set_new(j, "outputs", outs);
    }
    if (m->objective.task == SS_TASK_MULTICLASS)
        json_object_set_new(j, "predicted_class", json_integer(cls));
    if (top) {
        json_t *c = json_array();
        for (size_t i = 0; i < n_top; i++)
            json_array_append_new(c, json_pack("{s:s, s:o, s:f}", "feature", top[i].feature,
                                               "value", number_or_null(top[i].value),
                                               "contribution", top[i].contribution));
        json_object_set_new(j, "contributions", c);
        json_object_set_new(j, "contributions_bias", json_real(bias));
        if (output >= 0)
            json_object_set_new(j, "contributions_output", json_integer(output));
    }
    return j;
}

/* Score the customer's row with the model of its route; with k > 0 its top-k contributions. */
static int score_row(ss_score_api_t *a, slot_t *s, const char *id, size_t len, long k,
                     ss_buf_t *body) {
    char err[768];
    ss_plan_t *plan = ss_plan_acquire(a->rt);
    int canary = ss_plan_route(plan, id, len) == SS_ROUTE_CANARY;
    ss_model_t *m = canary ? plan->candidate : plan->live;
    double threshold = canary ? plan->candidate_threshold : plan->live_threshold, score;
    int cls = -1, status = 200, output = -1;
    size_t n_top = 0;
    double bias = 0;
    const float *c = NULL;
    if (ss_model_predict_outputs(m, s->pred, s->row, 1, &score,
                                 m->objective.n_outputs > 1 ? s->outputs : NULL, &cls, err,
                                 sizeof(err)) < 0) {
        status = error_answer(body, 500, "the model failed: %s", err);
        goto out;
    }
    if (k > 0) {
        if (ss_model_contributions(m, s->row, 1, &c, err, sizeof(err)) < 0) {
            status = error_answer(body, 400, "this model cannot be explained: %s", err);
            goto out;
        }
        size_t outs = m->objective.n_outputs, g = outs <= 1  ? 0
                                                  : cls >= 0 ? (size_t)cls
                                                             : m->objective.score_output;
        n_top = ss_explain_top(c + g * (m->n_features + 1), s->row, m->n_features, m->feature_names,
                               (size_t)k, s->top, &bias);
        output = outs <= 1 ? -1 : (int)g;
    }
    json_t *j = scored(m, id, len, s->row, score, s->outputs, cls, threshold,
                       canary ? "canary" : "live", k > 0 ? s->top : NULL, n_top, bias, output);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    if (!text)
        status = error_answer(body, 500, "out of memory%s", NULL);
    else
        ss_buf_printf(body, "%s\n", text);
    free(text);
    json_decref(j);
out:
    ss_plan_release(plan);
    return status;
}

/* The explain=k argument: 0 when absent, -1 when not a number in 0..SS_SCORE_MAX_EXPLAIN. */
static long explain_arg(ss_http_req_t *req) {
    const char *v = ss_http_arg(req, "explain");
    long k = 0;
    if (!v)
        return 0;
    if (!*v || strlen(v) > 2)
        return -1;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1; /* digits only: no sign, no spaces */
        k = k * 10 + (*p - '0');
    }
    return k <= SS_SCORE_MAX_EXPLAIN ? k : -1;
}

static int answer(ss_score_api_t *a, ss_http_req_t *req, ss_buf_t *body) {
    size_t len;
    const char *id = customer_of(req->path, &len);
    if (a->ca && !ss_http_client_verified(req))
        return error_answer(body, 401,
                            "a client certificate signed by score.tls.client.ca.file is "
                            "required%s",
                            NULL);
    if (!token_ok(a, req)) {
        req->www_authenticate = "Bearer realm=\"streamscore\"";
        return error_answer(body, 401,
                            "a bearer token is required (Authorization: Bearer "
                            "TOKEN)%s",
                            NULL);
    }
    if (!id)
        return error_answer(body, 404, "no such resource: GET " PREFIX "{id}" SUFFIX "%s", NULL);
    if (!id_ok(id, len))
        return error_answer(body, 400,
                            "a customer id is 1 to 256 bytes without control characters%s", NULL);
    long k = explain_arg(req);
    if (k < 0)
        return error_answer(body, 400, "explain: a number of contributions from 0 to 64%s", NULL);
    char err[512];
    unsigned char not_hash = 0;
    slot_t *s = take_slot(a);
    int status, rc = ss_cache_read(s->cache, &id, &len, 1, s->row, &not_hash, err, sizeof(err));
    size_t known = 0;
    for (size_t f = 0; f < a->nf; f++)
        known += !isnan(s->row[f]);
    if (rc < 0)
        status = error_answer(body, 503, "redis: %s", err);
    else if (not_hash)
        status = error_answer(body, 500, "the customer's Redis key is not a hash%s", NULL);
    else if (known == 0)
        status = error_answer(body, 404, "unknown customer: no features held for it%s", NULL);
    else
        status = score_row(a, s, id, len, k, body);
    give_slot(a, s);
    return status;
}

static int handle(void *ctx, ss_http_req_t *req, ss_buf_t *body, const char **type) {
    *type = "application/json";
    return answer(ctx, req, body);
}

static void answered(void *ctx, int status, double seconds) {
    ss_metrics_score_request(((ss_score_api_t *)ctx)->rt->stats, status, seconds);
}

/* ------------------------------------------------------------------ life */

/* A PEM file's text, or NULL with errstr naming `key`. */
static char *read_pem(const char *path, const char *key, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    char *text = f ? malloc(MAX_PEM + 1) : NULL;
    size_t n = text ? fread(text, 1, MAX_PEM, f) : 0;
    if (f)
        fclose(f);
    if (!text || n == 0 || n == MAX_PEM) {
        free(text);
        snprintf(err, errlen, "config: key '%s': cannot read '%s' (a PEM file of at most 1 MiB)",
                 key, path);
        return NULL;
    }
    text[n] = '\0';
    return text;
}

static int open_slots(ss_score_api_t *a, int *why, char *err, size_t errlen) {
    const ss_config_t *cfg = a->rt->cfg;
    ss_model_t *m = a->rt->model.model; /* before any request: no lock needed */
    size_t outs = m->objective.n_outputs;
    a->n_slots = (size_t)cfg->score_threads;
    a->nf = m->n_features;
    if (!(a->slots = calloc(a->n_slots, sizeof(*a->slots))))
        return *why = SS_ERR_NOMEM;
    for (size_t i = 0; i < a->n_slots; i++) {
        slot_t *s = &a->slots[i];
        s->row = malloc(m->n_features * sizeof(float));
        s->outputs = malloc((outs ? outs : 1) * sizeof(double));
        if (!s->row || !s->outputs || !(s->pred = ss_predictor_new(err, errlen)))
            return *why = SS_ERR_NOMEM;
        if (!(s->cache = ss_cache_new(cfg, m->feature_names, m->n_features, why, err, errlen)))
            return *why;
        ss_cache_set_metrics(s->cache, a->rt->stats);
    }
    return 0;
}

ss_score_api_t *ss_score_api_start(ss_runtime_t *rt, int *why, char *err, size_t errlen) {
    const ss_config_t *cfg = rt->cfg;
    ss_score_api_t *a = ss_zalloc(sizeof(*a), "score api", err, errlen);
    *why = SS_ERR_NOMEM;
    if (!a)
        return NULL;
    a->rt = rt;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->freed, NULL);
    if (open_slots(a, why, err, errlen) < 0)
        goto fail;
    *why = SS_ERR_CONFIG;
    if (*cfg->score_tls_cert_file &&
        (!(a->cert = read_pem(cfg->score_tls_cert_file, "score.tls.cert.file", err, errlen)) ||
         !(a->key = read_pem(cfg->score_tls_key_file, "score.tls.key.file", err, errlen))))
        goto fail;
    if (*cfg->score_tls_client_ca_file &&
        !(a->ca = read_pem(cfg->score_tls_client_ca_file, "score.tls.client.ca.file", err, errlen)))
        goto fail;
    ss_http_opts_t o = {.key = "score.listen",
                        .threads = (unsigned)cfg->score_threads,
                        .connections = (unsigned)cfg->score_max_connections,
                        .per_ip = SS_HTTP_CONNECTIONS_PER_IP,
                        .timeout_s = SS_HTTP_TIMEOUT_S,
                        .memory = 16384,
                        .tls_cert = a->cert,
                        .tls_key = a->key,
                        .tls_trust = a->ca,
                        .answered = answered,
                        .json_errors = 1};
    if (!(a->http = ss_http_serve(cfg->score_listen, &o, handle, a, err, errlen))) {
        *why = a->cert ? SS_ERR_CONFIG : SS_ERR_FAIL;
        goto fail;
    }
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("listen", cfg->score_listen), SSF_INT("threads", cfg->score_threads),
                     SSF_INT("tls", a->cert != NULL), SSF_INT("client_certificates", a->ca != NULL),
                     SSF_INT("token", *cfg->score_token != '\0')),
           "score api: http%s://%s/v1/customers/{id}/score", a->cert ? "s" : "", cfg->score_listen);
    *why = 0;
    return a;
fail:
    ss_score_api_stop(a);
    return NULL;
}

void ss_score_api_stop(ss_score_api_t *a) {
    if (!a)
        return;
    ss_http_stop(a->http);
    for (size_t i = 0; a->slots && i < a->n_slots; i++) {
        ss_cache_destroy(a->slots[i].cache);
        ss_predictor_destroy(a->slots[i].pred);
        free(a->slots[i].row);
        free(a->slots[i].outputs);
    }
    free(a->slots);
    free(a->cert);
    free(a->key);
    free(a->ca);
    pthread_cond_destroy(&a->freed);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
