/* endpoints.h - what the worker answers over HTTP (metrics.listen): /metrics (the counters,
 * the model scoring now, drift), /healthz (no worker failed) and /readyz (every consumer in
 * the group, no producer with a fatal error). The server itself is http.c. */
#ifndef SS_ENDPOINTS_H
#define SS_ENDPOINTS_H

#include "http.h"
#include "runtime.h"

/* Serve the endpoints of `rt` on metrics.listen. Returns NULL with errstr when it cannot
 * listen. */
ss_http_t *ss_endpoints_start(ss_runtime_t *rt, char *errstr, size_t errlen);

#endif
