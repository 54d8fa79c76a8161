/* http.h - a small HTTP server for /metrics, /healthz and /readyz (libmicrohttpd, its own
 * thread). It knows nothing of the worker: each GET is answered by a handler. */
#ifndef SS_HTTP_H
#define SS_HTTP_H

#include <stddef.h>

#include "metrics.h"

/* Answer a GET of `path`: append the body to `body`, set *content_type (a static string);
 * return the HTTP status. @locality the server's thread */
typedef int (*ss_http_handler_fn)(void *ctx, const char *path, ss_buf_t *body,
                                  const char **content_type);

typedef struct ss_http ss_http_t;

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
