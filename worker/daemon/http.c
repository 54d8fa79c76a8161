/* http.c - the HTTP endpoints over libmicrohttpd: one internal thread on epoll (poll where
 * epoll is missing; select would refuse descriptors above 1023), GET and HEAD only, every body
 * built by the handler per request (the pages are small). The limits keep the liveness probe
 * answered while other clients hold connections open: see http.h. */
#include "http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"

struct ss_http {
    struct MHD_Daemon *daemon;
    ss_http_handler_fn fn;
    void *ctx;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    ss_http_t *h = cls;
    ss_buf_t body = {0};
    const char *type = "text/plain; charset=utf-8";
    int status;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        ss_buf_printf(&body, "method not allowed\n");
    } else {
        status = h->fn(h->ctx, url, &body, &type);
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
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* The event loop of the daemon's thread: epoll, else poll; select (descriptors below
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

ss_http_t *ss_http_start(const char *listen, ss_http_handler_fn fn, void *ctx, char *errstr,
                         size_t errlen) {
    char host[256], port_s[16];
    int port;
    if (ss_config_parse_listen(listen, host, sizeof(host), &port) < 0) {
        snprintf(errstr, errlen, "metrics.listen: '%s' is not host:port", listen);
        return NULL;
    }
    snprintf(port_s, sizeof(port_s), "%d", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(host, port_s, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(errstr, errlen, "metrics.listen: cannot resolve '%s': %s", host,
                 gai_strerror(gai));
        return NULL;
    }
    ss_http_t *h = calloc(1, sizeof(*h));
    if (!h) {
        freeaddrinfo(ai);
        snprintf(errstr, errlen, "metrics.listen: out of memory");
        return NULL;
    }
    h->fn = fn;
    h->ctx = ctx;
    const char *mode;
    unsigned flags = poll_mode(&mode);
    errno = 0;
    h->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)SS_HTTP_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)SS_HTTP_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                 (unsigned)SS_HTTP_CONNECTIONS_PER_IP, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        snprintf(errstr, errlen, "metrics.listen: cannot listen on %s%s%s", listen,
                 errno ? ": " : "", errno ? strerror(errno) : "");
        free(h);
        return NULL;
    }
    ss_log(SS_LOG_DEBUG,
           SS_FIELDS(SSF_STR("component", "http"), SSF_STR("poll", mode),
                     SSF_INT("connections", SS_HTTP_CONNECTIONS),
                     SSF_INT("connections_per_ip", SS_HTTP_CONNECTIONS_PER_IP),
                     SSF_INT("timeout_s", SS_HTTP_TIMEOUT_S)),
           "http: listening on %s", listen);
    return h;
}

void ss_http_stop(ss_http_t *h) {
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
