/* cache.c - the Redis feature cache over hiredis. One connection per worker thread,
 * one pipeline per batch for reads and one for writes; a broken connection is dropped
 * and re-established on the next call, so the caller's retry policy decides. */
#include "cache.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "features.h"
#include "log.h"

struct ss_cache {
    redisContext *ctx;
    char *host, *password, *prefix;
    int port, db;
    long ttl, timeout_ms;
    char *const *features;
    size_t n_features, prefix_len;
    /* the feature names as RESP bulk strings, "$<len>\r\n<name>\r\n", one after another */
    char *names;
    size_t names_len, *name_off;
    /* the batch's commands in RESP, grown as needed and reused */
    char *cmd;
    size_t cmd_len, cmd_cap;
    int oom;
    char ttlbuf[32];
    size_t ttl_len;
    /* reading replies: the row being filled, and the first error reply of the pipeline */
    float *row;
    int error_replies;
    char error[256];
};

static void drop(ss_cache_t *c) {
    if (c->ctx) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
}

/* 0, or SS_ERR_FAIL with errstr for no reply or an error reply; frees the reply. */
static int command_ok(redisReply *r, char *errstr, size_t errlen, const char *what) {
    if (!r) {
        snprintf(errstr, errlen, "redis %s: no reply", what);
        return SS_ERR_FAIL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errlen, "redis %s: %s", what, r->str);
        freeReplyObject(r);
        return SS_ERR_FAIL;
    }
    freeReplyObject(r);
    return 0;
}

/* A connection, made (AUTH, SELECT) unless the current one is sound: 0 or SS_ERR_FAIL. */
static int ensure(ss_cache_t *c, char *errstr, size_t errlen) {
    if (c->ctx && !c->ctx->err)
        return 0;
    drop(c);
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    c->ctx = redisConnectWithTimeout(c->host, c->port, tv);
    if (!c->ctx || c->ctx->err) {
        snprintf(errstr, errlen, "redis %s:%d (key redis.host/redis.port): %s", c->host, c->port,
                 c->ctx ? c->ctx->errstr : "cannot allocate a connection");
        drop(c);
        return SS_ERR_FAIL;
    }
    redisSetTimeout(c->ctx, tv);
    if ((*c->password &&
         command_ok(redisCommand(c->ctx, "AUTH %s", c->password), errstr, errlen, "AUTH") < 0) ||
        (c->db &&
         command_ok(redisCommand(c->ctx, "SELECT %d", c->db), errstr, errlen, "SELECT") < 0)) {
        drop(c);
        return SS_ERR_FAIL;
    }
    return 0;
}

/* ---- RESP written directly: one buffer per pipeline, one append to hiredis */

static char *reserve(ss_cache_t *c, size_t n) {
    if (c->cmd_len + n > c->cmd_cap) {
        size_t cap = c->cmd_cap ? c->cmd_cap : 4096;
        while (cap < c->cmd_len + n)
            cap *= 2;
        char *g = realloc(c->cmd, cap);
        if (!g) {
            c->oom = 1;
            return NULL;
        }
        c->cmd = g;
        c->cmd_cap = cap;
    }
    return c->cmd + c->cmd_len;
}

static void put(ss_cache_t *c, const void *p, size_t n) {
    char *d = reserve(c, n);
    if (d) {
        memcpy(d, p, n);
        c->cmd_len += n;
    }
}

/* "<tag><n>\r\n", e.g. "*3\r\n" or "$12\r\n" */
static void put_len(ss_cache_t *c, char tag, size_t n) {
    char tmp[24], *e = tmp + sizeof(tmp), *b = e;
    *--b = '\n';
    *--b = '\r';
    do
        *--b = (char)('0' + n % 10);
    while ((n /= 10) != 0);
    *--b = tag;
    put(c, b, (size_t)(e - b));
}

static void put_bulk(ss_cache_t *c, const char *s, size_t n) {
    put_len(c, '$', n);
    put(c, s, n);
    put(c, "\r\n", 2);
}

static void put_name(ss_cache_t *c, size_t f) {
    put(c, c->names + c->name_off[f], c->name_off[f + 1] - c->name_off[f]);
}

/* ---- replies read without reply objects: HMGET's values are parsed into c->row as they
 * are read; other replies are only counted. The reader's objects are markers, never used. */

static char marker;

static void *reply_string(const redisReadTask *t, char *str, size_t len) {
    ss_cache_t *c = t->privdata;
    if (t->type == REDIS_REPLY_ERROR) {
        if (c->error_replies++ == 0)
            snprintf(c->error, sizeof(c->error), "%.*s", (int)len, str);
    } else if (c->row && t->parent && !t->parent->parent && t->idx >= 0 &&
               (size_t)t->idx < c->n_features && t->type == REDIS_REPLY_STRING) {
        c->row[t->idx] = ss_feature_parse(str, len);
    }
    return &marker;
}

#if HIREDIS_MAJOR >= 1
static void *reply_array(const redisReadTask *t, size_t n) {
#else
static void *reply_array(const redisReadTask *t, int n) {
#endif
    (void)t;
    (void)n;
    return &marker;
}

static void *reply_integer(const redisReadTask *t, long long v) {
    (void)t;
    (void)v;
    return &marker;
}

static void *reply_nil(const redisReadTask *t) {
    (void)t;
    return &marker;
}

#if HIREDIS_MAJOR >= 1
static void *reply_double(const redisReadTask *t, double v, char *s, size_t n) {
    (void)t, (void)v, (void)s, (void)n;
    return &marker;
}

static void *reply_bool(const redisReadTask *t, int v) {
    (void)t, (void)v;
    return &marker;
}
#endif

static void reply_free(void *p) {
    (void)p;
}

static redisReplyObjectFunctions marker_replies = {
    .createString = reply_string,
    .createArray = reply_array,
    .createInteger = reply_integer,
    .createNil = reply_nil,
#if HIREDIS_MAJOR >= 1
    .createDouble = reply_double,
    .createBool = reply_bool,
#endif
    .freeObject = reply_free,
};

ss_cache_t *ss_cache_new(const ss_config_t *cfg, char *const *features, size_t n_features,
                         char *errstr, size_t errlen) {
    ss_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    c->host = strdup(cfg->redis_host);
    c->password = strdup(cfg->redis_password ? cfg->redis_password : "");
    c->prefix = strdup(cfg->redis_key_prefix);
    c->port = (int)cfg->redis_port;
    c->db = (int)cfg->redis_db;
    c->ttl = cfg->redis_ttl_seconds;
    c->timeout_ms = cfg->redis_timeout_ms;
    c->features = features;
    c->n_features = n_features;
    c->prefix_len = strlen(c->prefix);
    c->name_off = calloc(n_features + 1, sizeof(size_t));
    for (size_t f = 0; f < n_features; f++)
        c->names_len += strlen(features[f]) + 32;
    c->names = malloc(c->names_len + 1);
    c->ttl_len = (size_t)snprintf(c->ttlbuf, sizeof(c->ttlbuf), "%ld", c->ttl);
    if (!c->host || !c->password || !c->prefix || !c->name_off || !c->names)
        goto oom;
    size_t off = 0;
    for (size_t f = 0; f < n_features; f++) {
        c->name_off[f] = off;
        size_t len = strlen(features[f]);
        off += (size_t)sprintf(c->names + off, "$%zu\r\n", len);
        memcpy(c->names + off, features[f], len);
        memcpy(c->names + off + len, "\r\n", 2);
        off += len + 2;
    }
    c->name_off[n_features] = off;
    if (ensure(c, errstr, errlen) < 0) {
        if (cfg->redis_on_error != SS_REDIS_DEGRADE) {
            ss_cache_destroy(c);
            return NULL;
        }
        /* degrade: start without Redis; every call tries to connect again */
        ss_log(SS_LOG_WARN, SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("policy", "degrade")),
               "%s; starting degraded", errstr);
    }
    return c;
oom:
    snprintf(errstr, errlen, "cache: out of memory");
    ss_cache_destroy(c);
    return NULL;
}

void ss_cache_destroy(ss_cache_t *c) {
    if (!c)
        return;
    drop(c);
    free(c->host);
    free(c->password);
    free(c->prefix);
    free(c->names);
    free(c->name_off);
    free(c->cmd);
    free(c);
}

static void put_key(ss_cache_t *c, const char *id, size_t len) {
    put_len(c, '$', c->prefix_len + len);
    put(c, c->prefix, c->prefix_len);
    put(c, id, len);
    put(c, "\r\n", 2);
}

/* Read the pipeline's `n` replies with the marker functions: HMGET's values go to out (rows
 * of n_features, NaN where absent), error replies are counted. 0, or SS_ERR_FAIL with errstr
 * when the connection fails mid-way (the reader then still holds the marker functions).
 * @locks none; the connection's reader is switched by the caller */
static int read_replies(ss_cache_t *c, size_t n, const char *what, float *out, char *errstr,
                        size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        c->row = out ? out + i * c->n_features : NULL;
        for (size_t f = 0; c->row && f < c->n_features; f++)
            c->row[f] = NAN;
        void *r = NULL;
        if (redisGetReply(c->ctx, &r) != REDIS_OK || !r) {
            snprintf(errstr, errlen, "redis %s: %s", what,
                     c->ctx->err ? c->ctx->errstr : "connection lost");
            c->row = NULL;
            return SS_ERR_FAIL;
        }
    }
    c->row = NULL;
    return 0;
}

/* Send the pipeline in c->cmd and read its `n` replies; HMGET's values go to out (rows of
 * n_features, NaN where absent). The first error reply is reported, all are consumed.
 * 0, SS_ERR_NOMEM when the pipeline could not be built, or SS_ERR_FAIL with errstr. */
static int roundtrip(ss_cache_t *c, size_t n, const char *what, float *out, char *errstr,
                     size_t errlen) {
    if (c->oom) {
        c->oom = 0;
        snprintf(errstr, errlen, "cache: out of memory");
        return SS_ERR_NOMEM;
    }
    if (ensure(c, errstr, errlen) < 0)
        return SS_ERR_FAIL;
    if (redisAppendFormattedCommand(c->ctx, c->cmd, c->cmd_len) != REDIS_OK) {
        snprintf(errstr, errlen, "redis %s: %s", what, c->ctx->errstr);
        drop(c);
        return SS_ERR_FAIL;
    }
    redisReplyObjectFunctions *fn = c->ctx->reader->fn;
    void *priv = c->ctx->reader->privdata;
    c->ctx->reader->fn = &marker_replies;
    c->ctx->reader->privdata = c;
    c->error_replies = 0;
    if (read_replies(c, n, what, out, errstr, errlen) < 0) {
        /* freed with the marker functions still in place: a reply cut off mid-way is held by
         * the reader, and must not reach hiredis' own freeReplyObject */
        drop(c);
        return SS_ERR_FAIL;
    }
    c->ctx->reader->fn = fn;
    c->ctx->reader->privdata = priv;
    if (c->error_replies) {
        snprintf(errstr, errlen, "redis %s: %s", what, c->error);
        return SS_ERR_FAIL;
    }
    return 0;
}

int ss_cache_read(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n, float *out,
                  char *errstr, size_t errlen) {
    if (n == 0)
        return 0;
    c->cmd_len = 0;
    for (size_t i = 0; i < n; i++) {
        put_len(c, '*', 2 + c->n_features);
        put(c, "$5\r\nHMGET\r\n", 11);
        put_key(c, ids[i], lens[i]);
        put(c, c->names, c->name_off[c->n_features]);
    }
    return roundtrip(c, n, "HMGET", out, errstr, errlen);
}

int ss_cache_write(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n,
                   const float *vecs, const unsigned char *changed, char *errstr, size_t errlen) {
    c->cmd_len = 0;
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        const float *row = vecs + i * c->n_features;
        const unsigned char *ch = changed ? changed + i * c->n_features : NULL;
        size_t known = 0, set = 0;
        for (size_t f = 0; f < c->n_features; f++) {
            known += !isnan(row[f]);
            set += !isnan(row[f]) && (!ch || ch[f]);
        }
        if (known == 0)
            continue; /* nothing known about this customer yet */
        if (set > 0) {
            put_len(c, '*', 2 + 2 * set);
            put(c, "$4\r\nHSET\r\n", 10);
            put_key(c, ids[i], lens[i]);
            sent++;
        }
        for (size_t f = 0; f < c->n_features && set > 0; f++) {
            if (isnan(row[f]) || (ch && !ch[f]))
                continue;
            char val[32];
            int len = ss_feature_format(row[f], val, sizeof(val));
            put_name(c, f);
            put_bulk(c, val, (size_t)len);
        }
        put(c, "*3\r\n$6\r\nEXPIRE\r\n", 16);
        put_key(c, ids[i], lens[i]);
        put_bulk(c, c->ttlbuf, c->ttl_len);
        sent++;
    }
    if (sent == 0)
        return 0;
    return roundtrip(c, sent, "HSET/EXPIRE", NULL, errstr, errlen);
}
