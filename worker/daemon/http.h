/* http.h - a small HTTP server (libmicrohttpd, threads of its own): /metrics, /healthz and
 * /readyz on metrics.listen, and the score API on score.listen (score_api.c), with a pool of
 * threads, HTTPS and client certificates. It knows nothing of the worker: each GET is
 * answered by a handler. */
#ifndef SS_HTTP_H
#define SS_HTTP_H

#include <stddef.h>

#include "metrics.h"

/* Answer a GET of `path`: append the body to `body`, set *content_type (a static string);
 * return the HTTP status. @locality the server's thread */
typedef int (*ss_http_handler_fn)(void *ctx, const char *path, ss_buf_t *body,
                                  const char **content_type);

typedef struct ss_http ss_http_t;

/* One request, for a handler of ss_http_serve. */
typedef struct ss_http_req {
    const char *path;             /* as sent, percent-decoded */
    struct MHD_Connection *conn;  /* for the accessors below */
    const char *www_authenticate; /* the handler's: sent with its answer when set (401) */
} ss_http_req_t;

/* The query argument or the request header `name` (case-insensitive), or NULL. */
const char *ss_http_arg(const ss_http_req_t *r, const char *name);
const char *ss_http_header(const ss_http_req_t *r, const char *name);

/* Over HTTPS with a client CA (ss_http_opts_t.tls_trust): 1 when the client presented a
 * certificate that the CA signed and that is valid now, else 0. */
int ss_http_client_verified(const ss_http_req_t *r);

/* Answer a GET: append the body to `body`, set *content_type (a static string); return the
 * HTTP status. @locality one of the server's threads */
typedef int (*ss_http_request_fn)(void *ctx, ss_http_req_t *req, ss_buf_t *body,
                                  const char **content_type);

typedef struct ss_http_opts {
    const char *key;  /* the listen key, named in messages */
    unsigned threads; /* threads answering (1: one, on epoll) */
    unsigned connections, per_ip, timeout_s;
    size_t memory; /* per connection, bounding a request's line and headers; 0: default */
    const char *tls_cert, *tls_key, *tls_trust; /* PEM text: HTTPS when tls_cert is set, client
                                                   certificates asked when tls_trust is */
    /* every answer's status and time, the handler's or the server's own (405, 413); NULL:
     * none. @locality one of the server's threads */
    void (*answered)(void *ctx, int status, double seconds);
    int json_errors; /* the server's own answers (405, 413) as {"error": "..."} */
} ss_http_opts_t;

/* Listen on `listen` ("host:port") as `o` says. Returns NULL with errstr (naming o->key) when
 * the address cannot be resolved or bound, or the TLS material is refused. */
ss_http_t *ss_http_serve(const char *listen, const ss_http_opts_t *o, ss_http_request_fn fn,
                         void *ctx, char *errstr, size_t errlen);

/* Fixed limits of the server. A client may hold SS_HTTP_CONNECTIONS_PER_IP connections (more
 * are closed at once), all clients SS_HTTP_CONNECTIONS; a connection idle for
 * SS_HTTP_TIMEOUT_S seconds (half a request, or kept alive between requests) is closed. So
 * clients idling on one address cannot take the liveness probe's slot, and none holds one
 * for long. */
#define SS_HTTP_CONNECTIONS 256
#define SS_HTTP_CONNECTIONS_PER_IP 8
#define SS_HTTP_TIMEOUT_S 2

/* Listen on `listen` ("host:port", key metrics.listen). Returns NULL with errstr when the
 * address cannot be resolved or bound. */
ss_http_t *ss_http_start(const char *listen, ss_http_handler_fn fn, void *ctx, char *errstr,
                         size_t errlen);
void ss_http_stop(ss_http_t *h);

#endif
