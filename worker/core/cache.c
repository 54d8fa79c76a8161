/* cache.c - the Redis feature cache over hiredis. Two connections per worker thread, one
 * for pipelined reads and one for the queue of writes, in the clear or over TLS (one client
 * context for both and every reconnection); a broken connection is dropped and
 * re-established on the next call, so the caller's retry policy decides, unless a retry
 * cannot help (credentials, TLS trust, a permission): that is a configuration error. */
#include "cache_int.h"

#include <hiredis/hiredis.h>
#include <hiredis/hiredis_ssl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "features.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"

typedef struct ss_resp {
    char *p;
    size_t len, cap;
    int oom;
} ss_resp_t;

enum { READS = 0, WRITES = 1 };

struct ss_cache {
    /* two connections: reads never wait behind a flush's writes in Redis' queue; `ctx` is the
     * one in use (use()), conn[] holds both */
    redisContext *ctx, *conn[2];
    int cur;
    char *host, *username, *password, *prefix;
    int port, db;
    SSL_CTX *tls;   /* redis.tls: shared by both connections; NULL in the clear */
    char *tls_name; /* the name the server's certificate must carry */
    long ttl, timeout_ms;
    char *const *features;
    size_t n_features, prefix_len;
    /* the feature names as RESP bulk strings, "$<len>\r\n<name>\r\n", one after another */
    char *names;
    size_t names_len, *name_off;
    /* commands in RESP, grown as needed and reused: the reads of a call, and the writes
     * queued until Redis acknowledged them (sent: the first `wq_sent` bytes, whose
     * `sent_replies` replies are outstanding; the rest is not sent yet) */
    ss_resp_t rd, wq;
    size_t wq_sent, sent_replies, unsent_replies;
    /* where each queued command begins in wq: its reply's error names its command and key */
    size_t *cmd_off, n_cmd, cap_cmd;
    char ttlbuf[32];
    size_t ttl_len;
    ss_metrics_t *metrics; /* may be NULL */
    /* reading the replies of a call: the row being filled, the type of the last top-level
     * reply, the reply being read (writes' first, then reads'), the call's customers (reads)
     * and their flags of keys that are not hashes, and the first error reply that fails the
     * call (any but a WRONGTYPE that names one key of a read or of a write) */
    float *row;
    int top_type;
    size_t reply_i, n_writes;
    const char *const *rd_ids;
    const size_t *rd_lens;
    unsigned char *not_hash;
    int error_replies;
    int error_refused;   /* the first error is one no retry can fix (refused(), below) */
    char error_what[32]; /* the command the first error answered */
    char error[256];
};

/* Work on connection `which` from here on (every function below uses c->ctx). */
static void use(ss_cache_t *c, int which) {
    c->conn[c->cur] = c->ctx;
    c->cur = which;
    c->ctx = c->conn[which];
}

static void drop(ss_cache_t *c) {
    if (c->ctx) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
}

/* An error reply read as a reply object (AUTH, SELECT, HGET): counted by its name. */
static void count_error(ss_cache_t *c, const redisReply *r) {
    size_t n = 0;
    while (n < r->len && n < 31 && r->str[n] != ' ')
        n++;
    if (c->metrics)
        ss_metrics_redis_reply_error(c->metrics, r->str, n);
}

/* ---- errors no retry can fix: the worker stops (SS_ERR_CONFIG) whatever redis.on.error
 * says, for they are no outage. NOAUTH counts when no password is configured (with one, it
 * is a server restarted with a password under a live connection: the next connection
 * authenticates). */

enum { NOT_REFUSED = 0, REFUSED_AUTH = 1, REFUSED_PERMISSION = 2 };

/* Which refusal the error reply `str` (its first word `w` long) is. */
static int refused(const ss_cache_t *c, const char *str, size_t w) {
    if (w == 6 && memcmp(str, "NOPERM", 6) == 0)
        return REFUSED_PERMISSION;
    if ((w == 9 && memcmp(str, "WRONGPASS", 9) == 0) ||
        (w == 6 && memcmp(str, "NOAUTH", 6) == 0 && !*c->password))
        return REFUSED_AUTH;
    return NOT_REFUSED;
}

/* The message of a refusal (`why`: Redis' words), naming the user and the keys to check, never
 * the password: SS_ERR_CONFIG. */
static int say_refused(const ss_cache_t *c, int kind, const char *why, char *errstr,
                       size_t errlen) {
    const char *user = *c->username ? c->username : "default";
    if (kind == REFUSED_PERMISSION)
        snprintf(errstr, errlen, "redis: user '%s' lacks a permission: %s", user, why);
    else
        snprintf(errstr, errlen,
                 "redis: authentication as user '%s' failed (check redis.username, "
                 "redis.password): %s",
                 user, why);
    return SS_ERR_CONFIG;
}

/* The length of the error's first word: Redis' name for it ("WRONGTYPE", "READONLY", ...). */
static size_t error_word(const char *s, size_t len) {
    size_t n = 0;
    while (n < len && n < 31 && s[n] != ' ' && s[n] != '\r' && s[n] != '\n')
        n++;
    return n;
}

/* 0, or with errstr for no reply (SS_ERR_FAIL) or an error reply: SS_ERR_CONFIG when no retry
 * can fix it (AUTH refused, NOPERM; `config_key` names what else to check, NULL: nothing),
 * else SS_ERR_FAIL. Frees the reply. */
static int command_ok(ss_cache_t *c, redisReply *r, const char *what, const char *config_key,
                      char *errstr, size_t errlen) {
    int rc = 0;
    if (!r) {
        snprintf(errstr, errlen, "redis %s: %s", what, c->ctx->err ? c->ctx->errstr : "no reply");
        return SS_ERR_FAIL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        count_error(c, r);
        int kind = refused(c, r->str, error_word(r->str, r->len));
        if (kind)
            rc = say_refused(c, kind, r->str, errstr, errlen);
        else if (config_key) {
            snprintf(errstr, errlen, "redis %s: %s (check %s)", what, r->str, config_key);
            rc = SS_ERR_CONFIG;
        } else {
            snprintf(errstr, errlen, "redis %s: %s", what, r->str);
            rc = SS_ERR_FAIL;
        }
    }
    freeReplyObject(r);
    return rc;
}

/* TLS on the connection just made: 0, SS_ERR_CONFIG when the handshake was refused (the
 * certificate not trusted or without the name, a TLS alert), SS_ERR_FAIL for an outage. */
static int start_tls(ss_cache_t *c, char *errstr, size_t errlen) {
    char why[300];
    SSL *ssl = ss_tls_connection(c->tls, c->tls_name, errstr, errlen);
    if (!ssl)
        return SS_ERR_FAIL;
    if (redisInitiateSSL(c->ctx, ssl) == REDIS_OK)
        return 0; /* the connection owns it now */
    int rc = ss_tls_handshake_refused(ssl, c->ctx->errstr, why, sizeof(why)) ? SS_ERR_CONFIG
                                                                             : SS_ERR_FAIL;
    SSL_free(ssl);
    snprintf(errstr, errlen, "redis %s:%d: TLS: %s (check %s)", c->host, c->port, why,
             rc == SS_ERR_CONFIG ? "redis.tls.ca.file, redis.tls.server.name"
                                 : "redis.host, redis.port");
    return rc;
}

/* AUTH as redis.username (when set) with redis.password: any error reply is a refusal but a
 * server that has no room for one more client (an outage). */
static int authenticate(ss_cache_t *c, char *errstr, size_t errlen) {
    redisReply *r = *c->username ? redisCommand(c->ctx, "AUTH %s %s", c->username, c->password)
                                 : redisCommand(c->ctx, "AUTH %s", c->password);
    if (!r || r->type != REDIS_REPLY_ERROR || strncmp(r->str, "ERR max number of clients", 25) == 0)
        return command_ok(c, r, "AUTH", NULL, errstr, errlen);
    count_error(c, r);
    int rc = say_refused(c, REFUSED_AUTH, r->str, errstr, errlen);
    freeReplyObject(r);
    return rc;
}

/* A connection, made (TLS, AUTH, SELECT) unless the current one is sound: 0, SS_ERR_FAIL
 * (Redis unreachable or failing: an outage) or SS_ERR_CONFIG (refused: see refused()). */
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
    redisSetTimeout(c->ctx, tv); /* before the TLS handshake, which it bounds too */
    int rc = c->tls ? start_tls(c, errstr, errlen) : 0;
    if (rc == 0 && (*c->username || *c->password))
        rc = authenticate(c, errstr, errlen);
    if (rc == 0 && c->db)
        rc = command_ok(c, redisCommand(c->ctx, "SELECT %d", c->db), "SELECT", "redis.db", errstr,
                        errlen);
    if (rc < 0)
        drop(c);
    return rc;
}

/* ---- RESP written directly: one buffer per pipeline, handed to hiredis in slices */

static char *reserve(ss_resp_t *b, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *g = realloc(b->p, cap);
        if (!g) {
            b->oom = 1;
            return NULL;
        }
        b->p = g;
        b->cap = cap;
    }
    return b->p + b->len;
}

static void put(ss_resp_t *b, const void *p, size_t n) {
    char *d = reserve(b, n);
    if (d) {
        memcpy(d, p, n);
        b->len += n;
    }
}

/* "<tag><n>\r\n", e.g. "*3\r\n" or "$12\r\n" */
static void put_len(ss_resp_t *b, char tag, size_t n) {
    char tmp[24], *e = tmp + sizeof(tmp), *p = e;
    *--p = '\n';
    *--p = '\r';
    do
        *--p = (char)('0' + n % 10);
    while ((n /= 10) != 0);
    *--p = tag;
    put(b, p, (size_t)(e - p));
}

static void put_bulk(ss_resp_t *b, const char *s, size_t n) {
    put_len(b, '$', n);
    put(b, s, n);
    put(b, "\r\n", 2);
}

static void put_name(ss_cache_t *c, ss_resp_t *b, size_t f) {
    put(b, c->names + c->name_off[f], c->name_off[f + 1] - c->name_off[f]);
}

static void put_key(ss_cache_t *c, ss_resp_t *b, const char *id, size_t len) {
    put_len(b, '$', c->prefix_len + len);
    put(b, c->prefix, c->prefix_len);
    put(b, id, len);
    put(b, "\r\n", 2);
}

/* ---- replies read without reply objects: HMGET's values are parsed into c->row as they
 * are read; other replies are only classified. The reader's objects are one marker, a
 * redisReply that hiredis 1.x may read (redisIsPushReply) but no one writes or frees: shared
 * by every thread, read-only. */

static redisReply marker = {.type = REDIS_REPLY_NIL};

static void reply_error(ss_cache_t *c, const redisReadTask *t, const char *str, size_t len);

static void *reply_string(const redisReadTask *t, char *str, size_t len) {
    ss_cache_t *c = t->privdata;
    if (!t->parent)
        c->top_type = t->type;
    if (t->type == REDIS_REPLY_ERROR) {
        reply_error(c, t, str, len);
    } else if (c->row && t->parent && !t->parent->parent && t->idx >= 0 &&
               (size_t)t->idx < c->n_features && t->type == REDIS_REPLY_STRING) {
        c->row[t->idx] = ss_feature_parse(str, len);
    }
    return &marker;
}

static void *reply_array(const redisReadTask *t, size_t n) {
    (void)n;
    if (!t->parent)
        ((ss_cache_t *)t->privdata)->top_type = t->type;
    return &marker;
}

static void *reply_integer(const redisReadTask *t, long long v) {
    (void)v;
    if (!t->parent)
        ((ss_cache_t *)t->privdata)->top_type = t->type;
    return &marker;
}

static void *reply_nil(const redisReadTask *t) {
    if (!t->parent)
        ((ss_cache_t *)t->privdata)->top_type = t->type;
    return &marker;
}

static void *reply_double(const redisReadTask *t, double v, char *s, size_t n) {
    (void)v, (void)s, (void)n;
    if (!t->parent)
        ((ss_cache_t *)t->privdata)->top_type = t->type;
    return &marker;
}

static void *reply_bool(const redisReadTask *t, int v) {
    (void)v;
    if (!t->parent)
        ((ss_cache_t *)t->privdata)->top_type = t->type;
    return &marker;
}

static void reply_free(void *p) {
    (void)p;
}

redisReplyObjectFunctions ss_cache_reply_functions = {
    .createString = reply_string,
    .createArray = reply_array,
    .createInteger = reply_integer,
    .createNil = reply_nil,
    .createDouble = reply_double,
    .createBool = reply_bool,
    .freeObject = reply_free,
};

/* ---- error replies: WRONGTYPE names one key (a read of it fails alone, a write to it is
 * dropped); any other error (READONLY, OOM, NOAUTH, LOADING, MASTERDOWN, ...) is the
 * server's state and fails the call. */

/* The bulk string at *p ("$<len>\r\n<bytes>\r\n", written by put_bulk): its bytes in *s,
 * its length returned, *p moved past it. */
static size_t bulk_at(const char **p, const char **s) {
    const char *q = *p + 1;
    size_t n = 0;
    while (*q >= '0' && *q <= '9')
        n = n * 10 + (size_t)(*q++ - '0');
    *s = q + 2;
    *p = q + 2 + n + 2;
    return n;
}

/* Queued command `i`: its name, and its first argument (the key; empty when none). */
static void command_at(const ss_cache_t *c, size_t i, const char **name, size_t *nlen,
                       const char **key, size_t *klen) {
    const char *p = c->wq.p + c->cmd_off[i] + 1;
    size_t argc = 0;
    while (*p >= '0' && *p <= '9')
        argc = argc * 10 + (size_t)(*p++ - '0');
    p += 2;
    *nlen = bulk_at(&p, name);
    *key = "";
    *klen = argc >= 2 ? bulk_at(&p, key) : 0;
}

/* The command whose reply is the idx-th element of reply `i` (an EXEC's: the idx-th command
 * after the MULTI before it), or reply i's own (idx -1); (size_t)-1 when not known. */
static size_t command_of(const ss_cache_t *c, size_t i, int idx) {
    if (i >= c->n_cmd)
        return (size_t)-1;
    if (idx < 0)
        return i;
    for (size_t m = i; m-- > 0;) {
        const char *name, *key;
        size_t nlen, klen;
        command_at(c, m, &name, &nlen, &key, &klen);
        if (nlen == 5 && memcmp(name, "MULTI", 5) == 0)
            return m + 1 + (size_t)idx < i ? m + 1 + (size_t)idx : (size_t)-1;
    }
    return (size_t)-1;
}

/* WRONGTYPE answering reply `c->reply_i` (element idx, -1 for the reply itself): a read's
 * customer flagged (its key is not a hash), or a write dropped. 1 when so handled, 0 when it
 * names no key this call can set aside (it then fails the call). */
static int wrong_type(ss_cache_t *c, int idx, const char *str, size_t len) {
    if (c->reply_i >= c->n_writes) {
        size_t r = c->reply_i - c->n_writes;
        if (idx >= 0 || !c->not_hash || !c->rd_ids)
            return 0;
        c->not_hash[r] = 1;
        ss_log(SS_LOG_WARN,
               SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("redis_error", "WRONGTYPE"),
                         SSF_STR("command", "HMGET")),
               "redis HMGET %s%.*s: %.*s: the key is not a hash; this customer's events cannot "
               "be scored",
               c->prefix, (int)c->rd_lens[r], c->rd_ids[r], (int)len, str);
        return 1;
    }
    size_t cmd = command_of(c, c->reply_i, idx);
    if (cmd == (size_t)-1)
        return 0;
    const char *name, *key;
    size_t nlen, klen;
    command_at(c, cmd, &name, &nlen, &key, &klen);
    if (c->metrics)
        __atomic_add_fetch(&c->metrics->redis_dropped_writes, 1, __ATOMIC_RELAXED);
    ss_log(SS_LOG_WARN,
           SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("redis_error", "WRONGTYPE")),
           "redis %.*s %.*s: %.*s: the key is not a hash; this write is dropped, the others "
           "go on",
           (int)nlen, name, (int)klen, key, (int)len, str);
    return 1;
}

/* The name of the command whose reply is `c->reply_i` into c->error_what. */
static void name_command(ss_cache_t *c) {
    const char *name = "HMGET", *key;
    size_t nlen = 5, klen;
    if (c->reply_i < c->n_writes) {
        name = "HSET/EXPIRE";
        nlen = 11;
        if (c->reply_i < c->n_cmd)
            command_at(c, c->reply_i, &name, &nlen, &key, &klen);
    }
    snprintf(c->error_what, sizeof(c->error_what), "%.*s", (int)nlen, name);
}

static void reply_error(ss_cache_t *c, const redisReadTask *t, const char *str, size_t len) {
    size_t w = error_word(str, len);
    if (c->metrics)
        ss_metrics_redis_reply_error(c->metrics, str, w);
    int idx = !t->parent ? -1 : !t->parent->parent ? t->idx : -2;
    if (w == 9 && memcmp(str, "WRONGTYPE", 9) == 0 && idx >= -1 && wrong_type(c, idx, str, len))
        return;
    if (c->error_replies++ == 0) {
        snprintf(c->error, sizeof(c->error), "%.*s", (int)len, str);
        c->error_refused = refused(c, str, w);
        name_command(c);
    }
}

/* The first error of a call that failed, in errstr: SS_ERR_CONFIG for one no retry can fix,
 * else SS_ERR_FAIL. */
static int call_error(const ss_cache_t *c, char *errstr, size_t errlen) {
    if (c->error_refused)
        return say_refused(c, c->error_refused, c->error, errstr, errlen);
    snprintf(errstr, errlen, "redis %s: %s", c->error_what, c->error);
    return SS_ERR_FAIL;
}

/* redis.tls: the client context both connections use, and the name they check. */
static int tls_new(ss_cache_t *c, const ss_config_t *cfg, char *errstr, size_t errlen) {
    ss_tls_files_t f = {cfg->redis_tls_ca_file,  cfg->redis_tls_cert_file,
                        cfg->redis_tls_key_file, cfg->redis_tls_key_password,
                        "redis.tls.ca.file",     "redis.tls.cert.file",
                        "redis.tls.key.file",    "redis.tls.key.password"};
    if (!(c->tls = ss_tls_client_new(&f, errstr, errlen)))
        return SS_ERR_CONFIG;
    const char *name = *cfg->redis_tls_server_name ? cfg->redis_tls_server_name : cfg->redis_host;
    if (!(c->tls_name = strdup(name))) {
        snprintf(errstr, errlen, "cache: out of memory");
        return SS_ERR_NOMEM;
    }
    return 0;
}

/* The feature names as RESP bulk strings, one after another, and where each begins. */
static int names_new(ss_cache_t *c, char *const *features, size_t n_features) {
    c->name_off = calloc(n_features + 1, sizeof(size_t));
    for (size_t f = 0; f < n_features; f++)
        c->names_len += strlen(features[f]) + 32;
    c->names = malloc(c->names_len + 1);
    if (!c->name_off || !c->names)
        return SS_ERR_NOMEM;
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
    return 0;
}

ss_cache_t *ss_cache_new(const ss_config_t *cfg, char *const *features, size_t n_features, int *why,
                         char *errstr, size_t errlen) {
    int rc = SS_ERR_NOMEM;
    ss_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    c->host = strdup(cfg->redis_host);
    c->username = strdup(cfg->redis_username ? cfg->redis_username : "");
    c->password = strdup(cfg->redis_password ? cfg->redis_password : "");
    c->prefix = strdup(cfg->redis_key_prefix);
    c->port = (int)cfg->redis_port;
    c->db = (int)cfg->redis_db;
    c->ttl = cfg->redis_ttl_seconds;
    c->timeout_ms = cfg->redis_timeout_ms;
    c->features = features;
    c->n_features = n_features;
    c->prefix_len = strlen(c->prefix ? c->prefix : "");
    c->ttl_len = (size_t)snprintf(c->ttlbuf, sizeof(c->ttlbuf), "%ld", c->ttl);
    if (!c->host || !c->username || !c->password || !c->prefix ||
        names_new(c, features, n_features) < 0)
        goto oom;
    if (cfg->redis_tls && (rc = tls_new(c, cfg, errstr, errlen)) < 0)
        goto fail;
    rc = ensure(c, errstr, errlen);
    if (rc == SS_ERR_FAIL && cfg->redis_on_error == SS_REDIS_DEGRADE) {
        /* degrade: start without Redis; every call tries to connect again */
        ss_log(SS_LOG_WARN, SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("policy", "degrade")),
               "%s; starting degraded", errstr);
        rc = 0;
    }
    if (rc < 0)
        goto fail;
    return c;
oom:
    snprintf(errstr, errlen, "cache: out of memory");
fail:
    if (why)
        *why = rc;
    ss_cache_destroy(c);
    return NULL;
}

void ss_cache_set_metrics(ss_cache_t *c, ss_metrics_t *m) {
    c->metrics = m;
}

void ss_cache_destroy(ss_cache_t *c) {
    if (!c)
        return;
    use(c, WRITES);
    drop(c);
    use(c, READS);
    drop(c);
    ss_tls_client_destroy(c->tls); /* after the connections that use it */
    free(c->tls_name);
    free(c->host);
    free(c->username);
    free(c->password);
    free(c->prefix);
    free(c->names);
    free(c->name_off);
    free(c->rd.p);
    free(c->wq.p);
    free(c->cmd_off);
    free(c);
}

static const char *type_name(int type) {
    switch (type) {
    case REDIS_REPLY_STRING: return "string";
    case REDIS_REPLY_ARRAY: return "array";
    case REDIS_REPLY_INTEGER: return "integer";
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_STATUS: return "status";
    default: return "other";
    }
}

/* Read `n_writes` replies of queued writes, then `n_reads` HMGET replies into out (rows of
 * n_features, NaN where absent), from the connection in use or, without one, from `rd` (fed
 * by the caller), whose reply functions are the marker's. Reading stops at the first error
 * that fails the call (c->error_replies); a read answered by anything but an array is one.
 * 0, or SS_ERR_FAIL with errstr when the connection fails or the bytes end mid-way (the
 * reader then still holds the marker functions). */
static int read_replies(ss_cache_t *c, redisReader *rd, size_t n_writes, size_t n_reads, float *out,
                        char *errstr, size_t errlen) {
    c->n_writes = n_writes;
    c->error_replies = 0;
    c->error_refused = NOT_REFUSED;
    c->error_what[0] = '\0';
    for (size_t i = 0; i < n_writes + n_reads && !c->error_replies; i++) {
        int is_read = i >= n_writes;
        c->reply_i = i;
        c->row = is_read && out ? out + (i - n_writes) * c->n_features : NULL;
        for (size_t f = 0; c->row && f < c->n_features; f++)
            c->row[f] = NAN;
        c->top_type = 0;
        void *r = NULL;
        if ((rd ? redisReaderGetReply(rd, &r) : redisGetReply(c->ctx, &r)) != REDIS_OK || !r) {
            const char *why = rd ? (rd->err ? rd->errstr : "the reply is incomplete")
                                 : (c->ctx->err ? c->ctx->errstr : "connection lost");
            snprintf(errstr, errlen, "redis %s: %s", is_read ? "HMGET" : "HSET/EXPIRE", why);
            c->row = NULL;
            return SS_ERR_FAIL;
        }
        if (is_read && c->top_type != REDIS_REPLY_ARRAY && c->top_type != REDIS_REPLY_ERROR &&
            c->error_replies++ == 0) {
            snprintf(c->error, sizeof(c->error), "a reply of type %s (an array expected)",
                     type_name(c->top_type));
            name_command(c);
        }
    }
    c->row = NULL;
    return 0;
}

int ss_cache_read_replies(ss_cache_t *c, redisReader *rd, size_t n_writes, size_t n_reads,
                          const char *const *ids, const size_t *lens, float *out,
                          unsigned char *not_hash, char *errstr, size_t errlen) {
    rd->fn = &ss_cache_reply_functions;
    rd->privdata = c;
    c->rd_ids = ids;
    c->rd_lens = lens;
    c->not_hash = not_hash;
    if (not_hash)
        memset(not_hash, 0, n_reads);
    int rc = read_replies(c, rd, n_writes, n_reads, out, errstr, errlen);
    c->rd_ids = NULL;
    c->rd_lens = NULL;
    c->not_hash = NULL;
    if (rc == 0 && c->error_replies)
        rc = call_error(c, errstr, errlen);
    return rc;
}

/* The queued writes sent or not: sent again from the start on the next call. */
static void unsend(ss_cache_t *c) {
    c->unsent_replies += c->sent_replies;
    c->sent_replies = 0;
    c->wq_sent = 0;
}

/* The connection failed: dropped, every queued write to be sent again. SS_ERR_FAIL. */
static int failed(ss_cache_t *c, char *errstr, size_t errlen, const char *what) {
    snprintf(errstr, errlen, "redis %s: %s", what,
             c->ctx && c->ctx->err ? c->ctx->errstr : "cannot send");
    drop(c);
    unsend(c);
    return SS_ERR_FAIL;
}

/* hiredis copies what it is given into an output buffer that it frees once written: given a
 * whole pipeline at once (megabytes for a flush of new customers), that buffer is a fresh
 * mapping, faulted in and zeroed page by page, on every call. Given SEND_SLICE bytes at a
 * time, each written before the next, it stays small and its memory is reused. Blocks until
 * all of p is written: 0, or -1 with the context's error. */
#define SEND_SLICE (32 * 1024)

static int send_all(ss_cache_t *c, const char *p, size_t len) {
    for (size_t off = 0; off < len;) {
        size_t n = len - off < SEND_SLICE ? len - off : SEND_SLICE;
        if (redisAppendFormattedCommand(c->ctx, p + off, n) != REDIS_OK)
            return -1;
        off += n;
        int done = 0;
        while (!done)
            if (redisBufferWrite(c->ctx, &done) != REDIS_OK)
                return -1;
    }
    return 0;
}

/* The queued writes not sent yet written to the connection: 0 or -1. */
static int append_queued(ss_cache_t *c) {
    if (c->wq.len > c->wq_sent && send_all(c, c->wq.p + c->wq_sent, c->wq.len - c->wq_sent) < 0)
        return -1;
    c->wq_sent = c->wq.len;
    c->sent_replies += c->unsent_replies;
    c->unsent_replies = 0;
    return 0;
}

/* On the connection in use: send the queued writes (`writes`) or the call's reads in c->rd,
 * and read the replies of every write sent or of the `n_reads` reads. Acknowledged writes
 * leave the queue; on any failure they stay, to be sent again. 0, SS_ERR_NOMEM, or
 * SS_ERR_FAIL / SS_ERR_CONFIG (refused) with errstr. */
static int roundtrip(ss_cache_t *c, int writes, size_t n_reads, float *out, char *errstr,
                     size_t errlen) {
    if (c->rd.oom || c->wq.oom) {
        c->rd.oom = 0;
        snprintf(errstr, errlen, "cache: out of memory");
        return SS_ERR_NOMEM;
    }
    int rc = ensure(c, errstr, errlen);
    if (rc < 0) {
        if (writes)
            unsend(c);
        return rc;
    }
    if (writes ? append_queued(c) < 0 : send_all(c, c->rd.p, c->rd.len) < 0) {
        if (writes)
            return failed(c, errstr, errlen, "HSET/EXPIRE");
        snprintf(errstr, errlen, "redis HMGET: %s", c->ctx->errstr);
        drop(c);
        return SS_ERR_FAIL;
    }
    redisReplyObjectFunctions *fn = c->ctx->reader->fn;
    void *priv = c->ctx->reader->privdata;
    c->ctx->reader->fn = &ss_cache_reply_functions;
    c->ctx->reader->privdata = c;
    if (read_replies(c, NULL, writes ? c->sent_replies : 0, n_reads, out, errstr, errlen) < 0) {
        /* freed with the marker functions still in place: a reply cut off mid-way is held by
         * the reader, and must not reach hiredis' own freeReplyObject */
        drop(c);
        if (writes)
            unsend(c);
        return SS_ERR_FAIL;
    }
    c->ctx->reader->fn = fn;
    c->ctx->reader->privdata = priv;
    if (c->error_replies) {
        /* the server's state (READONLY: a master demoted under a live connection; NOAUTH: a
         * restart with a password; OOM, LOADING, MASTERDOWN, ...): the connection is dropped
         * with the replies not read yet, so that the next call connects again (to whatever
         * the address leads to now, with AUTH); or a refusal (NOPERM), which stops the
         * worker */
        rc = call_error(c, errstr, errlen);
        drop(c);
        if (writes)
            unsend(c);
        return rc;
    }
    if (writes)
        c->wq.len = c->wq_sent = c->sent_replies = c->n_cmd = 0;
    return 0;
}

int ss_cache_read(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n, float *out,
                  unsigned char *not_hash, char *errstr, size_t errlen) {
    if (n == 0)
        return 0;
    if (not_hash)
        memset(not_hash, 0, n);
    use(c, READS);
    c->rd.len = 0;
    for (size_t i = 0; i < n; i++) {
        put_len(&c->rd, '*', 2 + c->n_features);
        put(&c->rd, "$5\r\nHMGET\r\n", 11);
        put_key(c, &c->rd, ids[i], lens[i]);
        put(&c->rd, c->names, c->name_off[c->n_features]);
    }
    c->rd_ids = ids;
    c->rd_lens = lens;
    c->not_hash = not_hash;
    int rc = roundtrip(c, 0, n, out, errstr, errlen);
    c->rd_ids = NULL;
    c->rd_lens = NULL;
    c->not_hash = NULL;
    return rc;
}

/* A command about to be queued: where it begins in the queue. */
static void note_command(ss_cache_t *c) {
    if (c->n_cmd == c->cap_cmd) {
        size_t cap = c->cap_cmd ? c->cap_cmd * 2 : 256;
        size_t *g = realloc(c->cmd_off, cap * sizeof(*g));
        if (!g) {
            c->wq.oom = 1;
            return;
        }
        c->cmd_off = g;
        c->cap_cmd = cap;
    }
    c->cmd_off[c->n_cmd++] = c->wq.len;
}

void ss_cache_queue_write(ss_cache_t *c, const char *id, size_t len, const float *row,
                          const unsigned char *changed) {
    ss_resp_t *b = &c->wq;
    size_t known = 0, set = 0;
    for (size_t f = 0; f < c->n_features; f++) {
        known += !isnan(row[f]);
        set += !isnan(row[f]) && (!changed || changed[f]);
    }
    if (known == 0)
        return; /* nothing known about this customer yet */
    if (set > 0) {
        note_command(c);
        put_len(b, '*', 2 + 2 * set);
        put(b, "$4\r\nHSET\r\n", 10);
        put_key(c, b, id, len);
        c->unsent_replies++;
    }
    for (size_t f = 0; f < c->n_features && set > 0; f++) {
        if (isnan(row[f]) || (changed && !changed[f]))
            continue;
        char val[32];
        int vlen = ss_feature_format(row[f], val, sizeof(val));
        put_name(c, b, f);
        put_bulk(b, val, (size_t)vlen);
    }
    note_command(c);
    put(b, "*3\r\n$6\r\nEXPIRE\r\n", 16);
    put_key(c, b, id, len);
    put_bulk(b, c->ttlbuf, c->ttl_len);
    c->unsent_replies++;
}

void ss_cache_queue_command(ss_cache_t *c, size_t argc, const char *const *argv,
                            const size_t *lens) {
    note_command(c);
    put_len(&c->wq, '*', argc);
    for (size_t i = 0; i < argc; i++)
        put_bulk(&c->wq, argv[i], lens ? lens[i] : strlen(argv[i]));
    c->unsent_replies++;
}

int ss_cache_send(ss_cache_t *c, char *errstr, size_t errlen) {
    if (c->wq.len == c->wq_sent)
        return 0;
    use(c, WRITES);
    if (c->wq.oom) {
        snprintf(errstr, errlen, "cache: out of memory");
        return SS_ERR_NOMEM;
    }
    int rc = ensure(c, errstr, errlen);
    if (rc < 0) {
        unsend(c);
        return rc;
    }
    return append_queued(c) < 0 ? failed(c, errstr, errlen, "HSET/EXPIRE") : 0;
}

int ss_cache_sync(ss_cache_t *c, char *errstr, size_t errlen) {
    if (c->wq.len == 0)
        return 0;
    use(c, WRITES);
    return roundtrip(c, 1, 0, NULL, errstr, errlen);
}

size_t ss_cache_pending(const ss_cache_t *c) {
    return c->sent_replies + c->unsent_replies;
}

void ss_cache_discard(ss_cache_t *c) {
    use(c, WRITES);
    if (c->sent_replies && c->ctx) /* replies still due on this connection: start afresh */
        drop(c);
    c->wq.len = c->wq_sent = c->sent_replies = c->unsent_replies = c->n_cmd = 0;
    c->wq.oom = 0;
}

int ss_cache_write(ss_cache_t *c, const char *const *ids, const size_t *lens, size_t n,
                   const float *vecs, const unsigned char *changed, char *errstr, size_t errlen) {
    for (size_t i = 0; i < n; i++)
        ss_cache_queue_write(c, ids[i], lens[i], vecs + i * c->n_features,
                             changed ? changed + i * c->n_features : NULL);
    return ss_cache_sync(c, errstr, errlen);
}

int ss_cache_hget(ss_cache_t *c, const char *key, const char *field, char *out, size_t outlen,
                  char *errstr, size_t errlen) {
    int rc = ss_cache_sync(c, errstr, errlen);
    use(c, READS);
    if (rc < 0 || (rc = ensure(c, errstr, errlen)) < 0)
        return rc;
    redisReply *r = redisCommand(c->ctx, "HGET %s %s", key, field);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        char what[256];
        int wrong_type = r && strncmp(r->str, "WRONGTYPE ", 10) == 0;
        snprintf(what, sizeof(what), "HGET %s", key);
        rc = command_ok(c, r, what, NULL, errstr, errlen);
        if (!wrong_type) /* the server's state: connect again */
            drop(c);
        return rc;
    }
    rc = r->type == REDIS_REPLY_STRING ? 1 : 0;
    if (rc)
        snprintf(out, outlen, "%.*s", (int)r->len, r->str);
    freeReplyObject(r);
    return rc;
}
