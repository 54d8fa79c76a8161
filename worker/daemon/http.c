/* http.c - the HTTP endpoints over libmicrohttpd: one internal polling thread, GET and HEAD
 * only, every body built by the handler per request (the pages are small). */
#include "http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"

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
    errno = 0;
    h->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, on_request, h,
                         MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                         MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        snprintf(errstr, errlen, "metrics.listen: cannot listen on %s%s%s", listen,
                 errno ? ": " : "", errno ? strerror(errno) : "");
        free(h);
        return NULL;
    }
    return h;
}

void ss_http_stop(ss_http_t *h) {
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
