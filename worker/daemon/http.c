/* http.c - the HTTP endpoints over libmicrohttpd: internal threads on epoll (poll where epoll
 * is missing; select would refuse descriptors above 1023), GET and HEAD only, without a body,
 * every answer built by the handler per request (the pages are small). The limits keep the
 * liveness probe answered while other clients hold connections open: see http.h. */
#include "http.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "config.h"
#include "log.h"

struct ss_http {
    struct MHD_Daemon *daemon;
    ss_http_request_fn fn;
    void *ctx;
    ss_http_handler_fn path_fn; /* ss_http_start's handler */
    void *path_ctx;
    void (*answered)(void *ctx, int status, double seconds);
    int json_errors;
};

const char *ss_http_arg(const ss_http_req_t *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *ss_http_header(const ss_http_req_t *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int ss_http_client_verified(const ss_http_req_t *r) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    unsigned status = 1, n = 0;
    if (!ci || !ci->tls_session)
        return 0;
    gnutls_session_t tls = (gnutls_session_t)ci->tls_session;
    return gnutls_certificate_get_peers(tls, &n) != NULL && n > 0 &&
           gnutls_certificate_verify_peers2(tls, &status) == GNUTLS_E_SUCCESS && status == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    ss_http_t *h = cls;
    int64_t t0 = ss_mono_ns();
    ss_buf_t body = {0};
    ss_http_req_t req = {.path = url, .conn = conn};
    const char *type = "text/plain; charset=utf-8";
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    int status;
    const char *fmt = h->json_errors ? "{\"error\":\"%s\"}\n" : "%s\n";
    if (h->json_errors)
        type = "application/json";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        ss_buf_printf(&body, fmt, "method not allowed: GET or HEAD");
    } else if ((length && strcmp(length, "0") != 0) ||
               MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding")) {
        status = MHD_HTTP_CONTENT_TOO_LARGE; /* a GET carries no body here */
        ss_buf_printf(&body, fmt, "a request body is not accepted");
    } else {
        status = h->fn(h->ctx, &req, &body, &type);
    }
    if (body.oom) {
        ss_buf_free(&body);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(body.len, body.p ? body.p : (void *)"",
                                        body.p ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        ss_buf_free(&body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    if (req.www_authenticate)
        MHD_add_response_header(r, "WWW-Authenticate", req.www_authenticate);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    if (h->answered)
        h->answered(h->ctx, status, (double)(ss_mono_ns() - t0) / 1e9);
    return ret;
}

/* The event loop of the daemon's threads: epoll, else poll; select (descriptors below
 * FD_SETSIZE only) where the library has neither. */
static unsigned poll_mode(const char **name) {
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES) {
        *name = "epoll";
        return MHD_USE_EPOLL_INTERNAL_THREAD;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES) {
        *name = "poll";
        return MHD_USE_POLL_INTERNAL_THREAD;
    }
    *name = "select";
    return MHD_USE_INTERNAL_POLLING_THREAD;
}

/* `listen` resolved into *ai: 0, or -1 with errstr. */
static int resolve(const char *listen, const char *key, struct addrinfo **ai, int *port,
                   char *errstr, size_t errlen) {
    char host[256], port_s[16];
    if (ss_config_parse_listen(listen, host, sizeof(host), port) < 0) {
        snprintf(errstr, errlen, "%s: '%s' is not host:port", key, listen);
        return -1;
    }
    snprintf(port_s, sizeof(port_s), "%d", *port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(host, port_s, &hints, ai);
    if (gai != 0 || !*ai) {
        snprintf(errstr, errlen, "%s: cannot resolve '%s': %s", key, host, gai_strerror(gai));
        return -1;
    }
    return 0;
}

ss_http_t *ss_http_serve(const char *listen, const ss_http_opts_t *o, ss_http_request_fn fn,
                         void *ctx, char *errstr, size_t errlen) {
    struct addrinfo *ai = NULL;
    int port;
    if (resolve(listen, o->key, &ai, &port, errstr, errlen) < 0)
        return NULL;
    ss_http_t *h = calloc(1, sizeof(*h));
    if (!h) {
        freeaddrinfo(ai);
        snprintf(errstr, errlen, "%s: out of memory", o->key);
        return NULL;
    }
    h->fn = fn;
    h->ctx = ctx;
    h->answered = o->answered;
    h->json_errors = o->json_errors;
    const char *mode;
    unsigned flags = poll_mode(&mode);
    struct MHD_OptionItem opts[12];
    int n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, o->connections, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->per_ip, NULL};
    if (o->threads > 1)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, o->threads, NULL};
    if (o->memory)
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)o->memory, NULL};
    if (o->tls_cert) {
        flags |= MHD_USE_TLS;
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->tls_cert};
        if (o->tls_trust)
            opts[n++] =
                (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)o->tls_trust};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    errno = 0;
    h->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_ARRAY,
                                 opts, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        snprintf(errstr, errlen, "%s: cannot listen on %s%s%s%s", o->key, listen,
                 o->tls_cert ? " (or the TLS certificate and key were refused)" : "",
                 errno ? ": " : "", errno ? strerror(errno) : "");
        free(h);
        return NULL;
    }
    ss_log(SS_LOG_DEBUG,
           SS_FIELDS(SSF_STR("component", "http"), SSF_STR("poll", mode),
                     SSF_INT("threads", o->threads), SSF_INT("connections", o->connections),
                     SSF_INT("connections_per_ip", o->per_ip), SSF_INT("timeout_s", o->timeout_s),
                     SSF_INT("tls", o->tls_cert != NULL)),
           "http: %s listening on %s", o->key, listen);
    return h;
}

static int by_path(void *ctx, ss_http_req_t *req, ss_buf_t *body, const char **content_type) {
    ss_http_t *h = ctx;
    return h->path_fn(h->path_ctx, req->path, body, content_type);
}

ss_http_t *ss_http_start(const char *listen, ss_http_handler_fn fn, void *ctx, char *errstr,
                         size_t errlen) {
    ss_http_opts_t o = {.key = "metrics.listen",
                        .threads = 1,
                        .connections = SS_HTTP_CONNECTIONS,
                        .per_ip = SS_HTTP_CONNECTIONS_PER_IP,
                        .timeout_s = SS_HTTP_TIMEOUT_S};
    /* the handler by path needs the server itself as its context: set once it exists */
    ss_http_t *tmp = calloc(1, sizeof(*tmp));
    if (!tmp) {
        snprintf(errstr, errlen, "metrics.listen: out of memory");
        return NULL;
    }
    tmp->path_fn = fn;
    tmp->path_ctx = ctx;
    ss_http_t *h = ss_http_serve(listen, &o, by_path, tmp, errstr, errlen);
    if (!h) {
        free(tmp);
        return NULL;
    }
    return h; /* tmp is h->ctx, freed by ss_http_stop */
}

void ss_http_stop(ss_http_t *h) {
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    if (h->fn == by_path)
        free(h->ctx);
    free(h);
}
