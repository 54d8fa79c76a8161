/* runtime.h - what the worker threads of one `streamscore run` share (internal to
 * worker/daemon). Immutable after start-up unless marked: the model slot is swapped under its
 * own lock, the codec's writer plans and the registry lock themselves, the metrics are atomic,
 * the shared producer and the output are thread-safe. */
#ifndef SS_RUNTIME_H
#define SS_RUNTIME_H

#include <pthread.h>
#include <stddef.h>

#include "codec.h"
#include "config.h"
#include "metrics.h"
#include "model.h"
#include "output.h"
#include "producer.h"
#include "registry.h"

typedef struct ss_worker ss_worker_t;
struct ss_plan;
struct ss_canary;
struct ss_gates;

typedef struct ss_runtime {
    const ss_config_t *cfg;
    ss_model_slot_t model; /* the configured model (model.path): swapped by a reload */
    pthread_mutex_t plan_lock;
    struct ss_plan *plan;     /* what a batch scores by (canary.h): guarded by plan_lock */
    struct ss_canary *canary; /* the rollout (canary.h): the main thread's */
    struct ss_gates *gates;   /* the canary's figures: internally locked */
    ss_codec_t *codec;        /* writer plans: append-only, internally locked */
    ss_registry_t *registry;  /* schema.registry.url set, else NULL; internally locked */
    ss_producer_t *producer;  /* at-least-once: shared by the threads; exactly-once: NULL */
    ss_output_t *output;
    ss_metrics_t *stats;   /* atomic counters */
    int *stop;             /* atomic: set by the signal handler */
    int *reload;           /* atomic: set by SIGHUP, reset by the reload watch */
    int failed;            /* atomic: a worker hit a fatal error */
    ss_worker_t **workers; /* set once every worker exists; read by the endpoints */
    size_t n_workers;
} ss_runtime_t;

/* A stop was asked for, or a worker failed. @locality any thread */
/* Whether `model` can serve here: output.schema holds what it writes (a model without a
 * decision needs a nullable decision), and explain.top.k can explain it. Checked at start-up,
 * on reload and for a rollout candidate; `threshold` is the configured one (model.threshold,
 * NaN for a candidate: its card decides). Returns 0, or SS_ERR_CONFIG / SS_ERR_NOMEM with err. */
int ss_runtime_model_fits(ss_runtime_t *rt, const ss_model_t *model, double threshold, char *err,
                          size_t errlen);

static inline int ss_runtime_stopping(const ss_runtime_t *rt) {
    return __atomic_load_n(rt->stop, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&rt->failed, __ATOMIC_ACQUIRE);
}

#endif
