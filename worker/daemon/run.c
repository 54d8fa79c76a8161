/* run.c - `streamscore run`: the shared runtime (codec, registry, producer, output), the
 * worker threads, the HTTP endpoints and the reload watch, started in that order and stopped
 * in the reverse one. What each thread does with a batch is worker.c. */
#include "run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary.h"
#include "clock.h"
#include "endpoints.h"
#include "error.h"
#include "kafka.h"
#include "log.h"
#include "reload.h"
#include "score_api.h"
#include "state_changelog.h"
#include "worker.h"

/* A start-up failure: logged; a config error also as the one plain line `streamscore: ...`
 * that main.c prints for the errors it sees itself (exit 2 names the key). */
static void startup_error(int rc, const char *err) {
    ss_error("%s", err);
    if (rc == SS_ERR_CONFIG)
        fprintf(stderr, "streamscore: %s\n", err);
}

/* Values that cannot be sent again whole with a dead letter's headers: said once. */
static void say_size_limits(ss_runtime_t *rt) {
    size_t max = rt->producer ? ss_producer_max_message(rt->producer) : 0;
    long long room = (long long)max - 1024;
    if (max && rt->cfg->input_max_bytes > room)
        ss_log(SS_LOG_INFO,
               SS_FIELDS(SSF_INT("input.max.bytes", rt->cfg->input_max_bytes),
                         SSF_INT("message.max.bytes", max)),
               "records larger than about %lld bytes are dead-lettered without their value "
               "(kafka message.max.bytes %zu, input.max.bytes %ld)",
               room, max, rt->cfg->input_max_bytes);
}

int ss_runtime_model_fits(ss_runtime_t *rt, const ss_model_t *model, double threshold, char *err,
                          size_t errlen) {
    const ss_config_t *cfg = rt->cfg;
    ss_encoder_needs_t needs = {.no_decision = isnan(ss_model_threshold(model, threshold)),
                                .contributions = cfg->explain_top_k > 0};
    char why[512];
    snprintf(why, sizeof(why), "model '%s' (objective %s) has no decision%s", model->path,
             model->objective.name,
             model->objective.task == SS_TASK_MULTICLASS ? " (its predicted_class is one)"
                                                         : "; or set model.threshold");
    int rc = ss_output_check_needs(rt->output, &needs, why, err, errlen);
    if (rc < 0 || cfg->explain_top_k == 0)
        return rc;
    float *row = malloc(model->n_features * sizeof(float));
    const float *c;
    if (!row) {
        snprintf(err, errlen, "worker: out of memory");
        return SS_ERR_NOMEM;
    }
    for (size_t f = 0; f < model->n_features; f++)
        row[f] = NAN;
    char xerr[768];
    rc = ss_model_contributions((ss_model_t *)model, row, 1, &c, xerr, sizeof(xerr));
    free(row);
    if (rc < 0) {
        snprintf(err, errlen, "config: key 'explain.top.k': the model cannot be explained: %s",
                 xerr);
        return SS_ERR_CONFIG;
    }
    return 0;
}

/* The parts every thread shares. Returns 0 or an SS_ERR_* code (logged). */
static int runtime_open(ss_runtime_t *rt, const ss_model_t *model) {
    const ss_config_t *cfg = rt->cfg;
    char err[1024];
    int rc;
    if (!(rt->output = ss_output_new(cfg, rt->stats, err, sizeof(err)))) {
        rc = strncmp(err, "config: ", 8) == 0 ? SS_ERR_CONFIG : SS_ERR_NOMEM;
        goto fail;
    }
    ss_codec_cats_t cats;
    ss_model_codec_cats(model, cfg->features_unseen_category, &cats);
    rt->codec = ss_codec_new_cats(cfg, model->feature_names, model->n_features, &cats, NULL, NULL,
                                  err, sizeof(err));
    if (!rt->codec) {
        rc = SS_ERR_CONFIG;
        goto fail;
    }
    if (*cfg->registry_url && !(rt->registry = ss_registry_new(cfg, rt->stats, err, sizeof(err)))) {
        rc = SS_ERR_FAIL;
        goto fail;
    }
    ss_codec_attach_registry(rt->codec,
                             cfg->input_framing == SS_FRAMING_CONFLUENT ? rt->registry : NULL,
                             cfg->registry_miss_ttl_ms, rt->stats);
    if ((rc = ss_output_register_schema(rt->output, rt->registry, err, sizeof(err))) < 0 ||
        (rc = ss_runtime_model_fits(rt, model, cfg->model_threshold, err, sizeof(err))) < 0)
        goto fail;
    if (cfg->delivery == SS_DELIVERY_EXACTLY_ONCE && cfg->state_mode == SS_STATE_OWNED &&
        cfg->mode == SS_MODE_PRIMARY && (rc = ss_changelog_prepare(cfg, err, sizeof(err))) < 0)
        goto fail;
    /* exactly-once: each thread has its own transactional producer instead */
    if (cfg->delivery == SS_DELIVERY_AT_LEAST_ONCE &&
        !(rt->producer = ss_producer_new(cfg, NULL, err, sizeof(err)))) {
        rc = SS_ERR_CONFIG;
        goto fail;
    }
    /* the plan the first batch scores by: a rollout recorded in rollout.topic resumes */
    if ((rc = ss_canary_open(rt, err, sizeof(err))) < 0)
        goto fail;
    say_size_limits(rt);
    return 0;
fail:
    startup_error(rc, err);
    return rc;
}

static void runtime_close(ss_runtime_t *rt) {
    for (size_t i = 0; i < rt->n_workers; i++)
        ss_worker_destroy(rt->workers[i]); /* commits stored offsets and leaves the group */
    free(rt->workers);
    ss_producer_destroy(rt->producer, rt->cfg->shutdown_timeout_ms);
    ss_canary_close(rt);
    ss_codec_destroy(rt->codec);
    ss_registry_destroy(rt->registry); /* after the codec that uses it */
    ss_output_destroy(rt->output);
    ss_model_slot_destroy(&rt->model);
}

static int workers_create(ss_runtime_t *rt, size_t n) {
    char err[1024];
    if (!(rt->workers = calloc(n, sizeof(*rt->workers)))) {
        ss_error("worker: out of memory");
        return SS_ERR_NOMEM;
    }
    for (; rt->n_workers < n; rt->n_workers++) {
        int rc =
            ss_worker_new(rt, (int)rt->n_workers, &rt->workers[rt->n_workers], err, sizeof(err));
        if (rc < 0) {
            startup_error(rc, err);
            return rc;
        }
    }
    return 0;
}

/* While the threads work: reload the model when asked; stop them when a Kafka client was
 * refused (credentials, certificate: retrying cannot mend it); return once every thread
 * finished. */
static void watch(ss_runtime_t *rt, size_t started) {
    ss_reload_t reload;
    ss_reload_init(&reload, rt->cfg);
    for (;;) {
        if (ss_kafka_refused(NULL, 0))
            __atomic_store_n(&rt->failed, 1, __ATOMIC_RELEASE);
        size_t finished = 0;
        for (size_t i = 0; i < started; i++)
            finished += ss_worker_done(rt->workers[i]);
        if (finished == started)
            return;
        ss_reload_tick(&reload, rt);
        ss_canary_tick(rt);
        ss_sleep_ms(20);
    }
}

int ss_run(const ss_config_t *cfg, ss_model_t *model, int *stop, int *reload, ss_metrics_t *stats) {
    char err[1024];
    size_t n = (size_t)cfg->worker_threads, started = 0;
    ss_runtime_t rt = {.cfg = cfg, .stop = stop, .reload = reload, .stats = stats};
    ss_http_t *http = NULL;
    ss_score_api_t *score_api = NULL;
    ss_model_slot_init(&rt.model, model);
    int rc = runtime_open(&rt, model);
    if (rc < 0 || (rc = workers_create(&rt, n)) < 0)
        goto done;
    if (*cfg->metrics_listen) {
        if (!(http = ss_endpoints_start(&rt, err, sizeof(err)))) {
            ss_error("%s", err);
            rc = SS_ERR_FAIL;
            goto done;
        }
        ss_info("metrics: http://%s/metrics, /healthz, /readyz", cfg->metrics_listen);
    }
    if (*cfg->score_listen && !(score_api = ss_score_api_start(&rt, &rc, err, sizeof(err)))) {
        startup_error(rc, err);
        goto done;
    }
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("mode", ss_mode_name(cfg->mode)), SSF_INT("threads", n),
                     SSF_STR("input", cfg->input_topic),
                     SSF_STR("output", ss_output_name(rt.output)), SSF_STR("model", model->name),
                     SSF_STR("version", model->version), SSF_INT("features", model->n_features)),
           "worker started");
    for (; started < n; started++) {
        if (ss_worker_start(rt.workers[started]) < 0) {
            ss_error("worker: cannot start thread %zu", started);
            __atomic_store_n(&rt.failed, 1, __ATOMIC_RELEASE);
            rc = SS_ERR_FAIL;
            break;
        }
    }
    watch(&rt, started);
    for (size_t i = 0; i < started; i++) {
        int wrc = ss_worker_join(rt.workers[i]);
        if (wrc < 0 && rc != SS_ERR_CONFIG) /* Redis refused: exit 2, whatever else failed */
            rc = wrc;
    }
    if (__atomic_load_n(&rt.failed, __ATOMIC_ACQUIRE) && rc == 0)
        rc = SS_ERR_FAIL;
done:
    ss_score_api_stop(score_api); /* before the model and plan it scores with go away */
    ss_http_stop(http);           /* before the workers it reports on go away */
    runtime_close(&rt);
    /* the keys to check, and exit 2 (unless a start-up error already said so) */
    if (rc != SS_ERR_CONFIG && ss_kafka_refused(err, sizeof(err))) {
        startup_error(SS_ERR_CONFIG, err);
        rc = SS_ERR_CONFIG;
    }
    return rc;
}
