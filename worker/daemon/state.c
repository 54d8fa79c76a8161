/* state.c - Redis reads and writes of a batch under redis.on.error: the policy lives here so
 * that the batch loop reads as one call per step. */
#include "state.h"

#include <stdlib.h>
#include <time.h>

#include "cache.h"
#include "clock.h"
#include "error.h"
#include "log.h"

struct ss_state {
    const ss_config_t *cfg;
    ss_cache_t *cache;
    ss_metrics_t *metrics;
    int (*stopping)(void *);
    void *stop_arg;
    long backoff;     /* degrade: the current backoff, 0 when healthy */
    int64_t retry_at; /* degrade: no attempt before this time (monotonic ms) */
};

void ss_state_destroy(ss_state_t *s) {
    if (!s)
        return;
    ss_cache_destroy(s->cache);
    free(s);
}

ss_state_t *ss_state_new(const ss_config_t *cfg, char *const *features, size_t nf,
                         ss_metrics_t *metrics, int (*stopping)(void *), void *stop_arg,
                         char *errstr, size_t errlen) {
    ss_state_t *s = ss_zalloc(sizeof(*s), "state", errstr, errlen);
    if (s)
        *s = (ss_state_t){.cfg = cfg,
                          .metrics = metrics,
                          .stopping = stopping,
                          .stop_arg = stop_arg,
                          .cache = ss_cache_new(cfg, features, nf, errstr, errlen)};
    if (s && !s->cache) {
        ss_state_destroy(s);
        s = NULL;
    }
    return s;
}

static int call(ss_state_t *s, ss_batch_t *b, int write, char *err, size_t errlen) {
    if (write)
        return ss_cache_write(s->cache, b->u_ids, b->u_lens, b->n_u, b->state, b->changed, err,
                              errlen);
    return ss_cache_read(s->cache, b->u_ids, b->u_lens, b->n_u, b->state, err, errlen);
}

/* degrade: after a failure, no attempt until a backoff (250 ms doubling to 5 s) has passed */
static int degrade(ss_state_t *s, ss_batch_t *b, int write, const char *err) {
    s->backoff = s->backoff ? s->backoff * 2 : 250;
    if (s->backoff > 5000)
        s->backoff = 5000;
    s->retry_at = ss_mono_ms() + s->backoff;
    ss_log(SS_LOG_WARN, SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("policy", "degrade")),
           "%s; scoring with the events' own features, next attempt in %ld ms", err, s->backoff);
    if (!write)
        ss_batch_clear_state(b);
    return 1;
}

static int with_policy(ss_state_t *s, ss_batch_t *b, int write) {
    int degrading = s->cfg->redis_on_error == SS_REDIS_DEGRADE;
    long backoff = 50;
    char err[512];
    if (degrading && ss_mono_ms() < s->retry_at) {
        if (!write)
            ss_batch_clear_state(b);
        return 1;
    }
    for (;;) {
        int64_t t0 = ss_mono_ns();
        int rc = call(s, b, write, err, sizeof(err));
        ss_hist_observe(&s->metrics->redis_seconds, (double)(ss_mono_ns() - t0) / 1e9);
        if (rc == 0) {
            if (s->backoff) {
                ss_log(SS_LOG_INFO, SS_FIELDS(SSF_STR("component", "redis")),
                       "redis is back: leaving degraded mode");
                s->backoff = 0;
            }
            return 0;
        }
        __atomic_add_fetch(&s->metrics->cache_errors, 1, __ATOMIC_RELAXED);
        if (degrading)
            return degrade(s, b, write, err);
        ss_log(SS_LOG_WARN, SS_FIELDS(SSF_STR("component", "redis"), SSF_STR("policy", "block")),
               "%s; retrying in %ld ms (consumption paused)", err, backoff);
        if (s->stopping(s->stop_arg))
            return SS_ERR_STOPPED;
        ss_sleep_ms(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

int ss_state_read(ss_state_t *s, ss_batch_t *b) {
    return with_policy(s, b, 0);
}

int ss_state_write(ss_state_t *s, ss_batch_t *b) {
    return with_policy(s, b, 1);
}
