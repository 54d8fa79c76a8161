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
    /* per-batch scratch, grown as needed and reused */
    const char **argv;
    size_t *argvlen;
    char *keybuf;
    size_t keycap;
    char *valbuf; /* n_features * 32 */
    char ttlbuf[32];
};

static void drop(ss_cache_t *c) {
    if (c->ctx) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
}

static int command_ok(redisReply *r, char *errstr, size_t errlen, const char *what) {
    if (!r) {
        snprintf(errstr, errlen, "redis %s: no reply", what);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errlen, "redis %s: %s", what, r->str);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

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
        return -1;
    }
    redisSetTimeout(c->ctx, tv);
    if (*c->password &&
        command_ok(redisCommand(c->ctx, "AUTH %s", c->password), errstr, errlen, "AUTH") < 0) {
        drop(c);
        return -1;
    }
    if (c->db && command_ok(redisCommand(c->ctx, "SELECT %d", c->db), errstr, errlen, "SELECT") < 0) {
        drop(c);
        return -1;
    }
    return 0;
}

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
    c->argv = calloc(2 + 2 * n_features, sizeof(char *));
    c->argvlen = calloc(2 + 2 * n_features, sizeof(size_t));
    c->valbuf = malloc(n_features * 32);
    snprintf(c->ttlbuf, sizeof(c->ttlbuf), "%ld", c->ttl);
    if (!c->host || !c->password || !c->prefix || !c->argv || !c->argvlen || !c->valbuf)
        goto oom;
    if (ensure(c, errstr, errlen) < 0) {
        if (cfg->redis_on_error != SS_REDIS_DEGRADE) {
            ss_cache_destroy(c);
            return NULL;
        }
        /* degrade: start without Redis; every call tries to connect again */
        ss_log(SS_LOG_WARN, "\"component\":\"redis\",\"policy\":\"degrade\"",
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
    free(c->argv);
    free(c->argvlen);
    free(c->keybuf);
    free(c->valbuf);
    free(c);
}

/* Keys of the batch, laid out in one buffer: key i at offs[i]. */
static int build_keys(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n) {
    size_t need = 0;
    for (size_t i = 0; i < n; i++)
        need += c->prefix_len + lens[i];
    if (need > c->keycap) {
        char *g = realloc(c->keybuf, need * 2);
        if (!g)
            return -1;
        c->keybuf = g;
        c->keycap = need * 2;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(c->keybuf + off, c->prefix, c->prefix_len);
        memcpy(c->keybuf + off + c->prefix_len, ids[i], lens[i]);
        off += c->prefix_len + lens[i];
    }
    return 0;
}

/* A live connection and the batch's keys, before either pipeline. */
static int prepare(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n,
                   char *errstr, size_t errlen) {
    if (ensure(c, errstr, errlen) < 0)
        return -1;
    if (build_keys(c, ids, lens, n) < 0) {
        snprintf(errstr, errlen, "cache: out of memory");
        return -1;
    }
    return 0;
}

/* Read `n` replies; the first error is reported, all replies are consumed. */
static int drain(ss_cache_t *c, size_t n, const char *what, float *out, char *errstr,
                 size_t errlen) {
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c->ctx, (void **)&r) != REDIS_OK || !r) {
            snprintf(errstr, errlen, "redis %s: %s", what,
                     c->ctx->err ? c->ctx->errstr : "connection lost");
            drop(c);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            if (rc == 0)
                snprintf(errstr, errlen, "redis %s: %s", what, r->str);
            rc = -1;
        } else if (out) {
            float *row = out + i * c->n_features;
            for (size_t f = 0; f < c->n_features; f++) {
                redisReply *e = (r->type == REDIS_REPLY_ARRAY && f < r->elements) ? r->element[f]
                                                                                   : NULL;
                row[f] = (e && e->type == REDIS_REPLY_STRING) ? ss_feature_parse(e->str, (size_t)e->len)
                                                              : NAN;
            }
        }
        freeReplyObject(r);
    }
    return rc;
}

int ss_cache_read(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n, float *out,
                  char *errstr, size_t errlen) {
    if (n == 0)
        return 0;
    if (prepare(c, ids, lens, n, errstr, errlen) < 0)
        return -1;
    c->argv[0] = "HMGET";
    c->argvlen[0] = 5;
    for (size_t f = 0; f < c->n_features; f++) {
        c->argv[2 + f] = c->features[f];
        c->argvlen[2 + f] = strlen(c->features[f]);
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        c->argv[1] = c->keybuf + off;
        c->argvlen[1] = c->prefix_len + lens[i];
        off += c->argvlen[1];
        if (redisAppendCommandArgv(c->ctx, (int)(2 + c->n_features), c->argv, c->argvlen) !=
            REDIS_OK) {
            snprintf(errstr, errlen, "redis HMGET: %s", c->ctx->errstr);
            drop(c);
            return -1;
        }
    }
    return drain(c, n, "HMGET", out, errstr, errlen);
}

int ss_cache_write(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n,
                   const float *vecs, char *errstr, size_t errlen) {
    if (n == 0)
        return 0;
    if (prepare(c, ids, lens, n, errstr, errlen) < 0)
        return -1;
    size_t off = 0, sent = 0;
    for (size_t i = 0; i < n; i++) {
        const float *row = vecs + i * c->n_features;
        const char *key = c->keybuf + off;
        size_t keylen = c->prefix_len + lens[i];
        off += keylen;
        int argc = 2;
        c->argv[0] = "HSET";
        c->argvlen[0] = 4;
        c->argv[1] = key;
        c->argvlen[1] = keylen;
        for (size_t f = 0; f < c->n_features; f++) {
            if (isnan(row[f]))
                continue;
            char *val = c->valbuf + f * 32;
            int len = ss_feature_format(row[f], val, 32);
            c->argv[argc] = c->features[f];
            c->argvlen[argc++] = strlen(c->features[f]);
            c->argv[argc] = val;
            c->argvlen[argc++] = (size_t)len;
        }
        if (argc == 2)
            continue; /* nothing known about this customer yet */
        const char *exp[3] = {"EXPIRE", key, c->ttlbuf};
        size_t explen[3] = {6, keylen, strlen(c->ttlbuf)};
        if (redisAppendCommandArgv(c->ctx, argc, c->argv, c->argvlen) != REDIS_OK ||
            redisAppendCommandArgv(c->ctx, 3, exp, explen) != REDIS_OK) {
            snprintf(errstr, errlen, "redis HSET: %s", c->ctx->errstr);
            drop(c);
            return -1;
        }
        sent += 2;
    }
    return drain(c, sent, "HSET/EXPIRE", NULL, errstr, errlen);
}
