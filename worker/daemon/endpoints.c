/* endpoints.c - the worker's /metrics, /healthz and /readyz, answered from the runtime. */
#include "endpoints.h"

#include <string.h>

#include "canary.h"
#include "drift.h"
#include "worker.h"

static int ready(ss_runtime_t *rt, ss_buf_t *why) {
    int ok = 1;
    if (ss_runtime_stopping(rt)) {
        ss_buf_printf(why, "stopping\n");
        ok = 0;
    }
    size_t joined = 0;
    for (size_t i = 0; i < rt->n_workers; i++)
        joined += ss_worker_joined(rt->workers[i]);
    if (joined < rt->n_workers) {
        ss_buf_printf(why, "consumers in the group: %zu of %zu\n", joined, rt->n_workers);
        ok = 0;
    }
    char err[256];
    for (size_t i = 0; i < rt->n_workers + 1; i++) {
        ss_producer_t *p = i < rt->n_workers ? ss_worker_producer(rt->workers[i]) : rt->producer;
        if (p && rd_kafka_fatal_error(ss_producer_handle(p), err, sizeof(err))) {
            ss_buf_printf(why, "producer: fatal error: %s\n", err);
            ok = 0;
        }
    }
    return ok;
}

static void render_metrics(ss_runtime_t *rt, ss_buf_t *body) {
    ss_metrics_render(rt->stats, body);
    ss_plan_t *p = ss_plan_acquire(rt);
    ss_model_t *m = p->live;
    ss_buf_printf(body,
                  "# HELP streamscore_model_info The model scoring now.\n"
                  "# TYPE streamscore_model_info gauge\n"
                  "streamscore_model_info{mode=\"%s\",name=\"",
                  ss_mode_name(rt->cfg->mode));
    ss_buf_label(body, m->name);
    ss_buf_printf(body, "\",version=\"");
    ss_buf_label(body, m->version);
    ss_buf_printf(body,
                  "\"} 1\n"
                  "# HELP streamscore_drift_threshold drift.threshold: a PSI above it "
                  "is drift.\n"
                  "# TYPE streamscore_drift_threshold gauge\n"
                  "streamscore_drift_threshold %g\n",
                  rt->cfg->drift_threshold);
    ss_drift_render(m->drift, body);
    ss_plan_release(p);
    if (*rt->cfg->rollout_topic)
        ss_canary_render(rt, body);
}

static int on_http(void *ctx, const char *path, ss_buf_t *body, const char **type) {
    ss_runtime_t *rt = ctx;
    if (strcmp(path, "/metrics") == 0) {
        *type = "text/plain; version=0.0.4; charset=utf-8";
        render_metrics(rt, body);
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        int failed = __atomic_load_n(&rt->failed, __ATOMIC_ACQUIRE);
        ss_buf_printf(body, failed ? "failed\n" : "ok\n");
        return failed ? 503 : 200;
    }
    if (strcmp(path, "/readyz") == 0) {
        ss_buf_t why = {0};
        int ok = ready(rt, &why);
        ss_buf_printf(body, "%s", ok ? "ready\n" : why.p ? why.p : "not ready\n");
        if (*rt->cfg->rollout_topic)
            ss_canary_describe(rt, body);
        ss_buf_free(&why);
        return ok ? 200 : 503;
    }
    ss_buf_printf(body, "not found: /metrics, /healthz and /readyz are served here\n");
    return 404;
}

ss_http_t *ss_endpoints_start(ss_runtime_t *rt, char *errstr, size_t errlen) {
    return ss_http_start(rt->cfg->metrics_listen, on_http, rt, errstr, errlen);
}
