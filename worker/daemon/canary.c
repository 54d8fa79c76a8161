/* canary.c - the rollout in a primary worker process: the plan, the candidate's checks, the
 * gates and what they decide. Everything here but the plan's readers runs on the main thread. */
#include "canary.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact.h"
#include "clock.h"
#include "control.h"
#include "drift.h"
#include "labels.h"
#include "log.h"
#include "runtime.h"
#include "strv.h"

enum { G_ERROR, G_LATENCY, G_DRIFT, G_SHIFT, G_AUC, N_GATES };
static const char *gate_names[N_GATES] = {"error_rate", "latency_p95_seconds", "drift_psi",
                                          "shift_psi", "roc_auc"};
enum { R_DIGEST, R_SIGNATURE, R_FEATURES, R_LOAD, N_REFUSALS };
static const char *refusal_names[N_REFUSALS] = {"digest", "signature", "features", "load"};

#define EVAL_INTERVAL_MS 250

struct ss_canary {
    ss_control_t *ctl;      /* NULL: rollout.topic is empty */
    ss_labels_t *labels;    /* NULL: rollout.labels.topic is empty */
    ss_model_t *live;       /* the model a promote made live, or NULL: the configured one */
    ss_model_t *candidate;  /* verified and loaded, or NULL */
    int64_t applied;        /* offset of the state applied, -1 none */
    int64_t changed_at;     /* monotonic ms when the plan's candidate or share changed */
    int64_t acted_on;       /* the offset an automatic change was written for, -1 none */
    int64_t written;        /* the offset of the last automatic change written, -1 none */
    int64_t refused_offset; /* the offset whose candidate was refused, -1 none */
    char refused_why[512];
    double steps[SS_ROLLOUT_MAX_STEPS];
    int n_steps;
    int64_t next_eval;
    int64_t since[N_GATES]; /* monotonic ms a gate's figure went beyond its threshold, 0 not */
    char host[256];
    /* read by the HTTP thread, under lock */
    pthread_mutex_t lock;
    double values[SS_ROUTES][N_GATES];
    int triggered[N_GATES];
    long rollbacks[N_GATES + 1]; /* the last: a refused candidate */
    long refused[N_REFUSALS];
    long changes;
    long route_records[SS_ROUTES], route_errors[SS_ROUTES];
    char describe[1024];
};

/* ------------------------------------------------------------------ the plan */

ss_plan_t *ss_plan_acquire(ss_runtime_t *rt) {
    pthread_mutex_lock(&rt->plan_lock);
    ss_plan_t *p = rt->plan;
    __atomic_add_fetch(&p->refcnt, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&rt->plan_lock);
    return p;
}

void ss_plan_release(ss_plan_t *p) {
    if (!p || __atomic_sub_fetch(&p->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    ss_model_unref(p->live);
    ss_model_unref(p->candidate);
    free(p);
}

int ss_plan_route(const ss_plan_t *p, const char *id, size_t len) {
    if (!p->candidate || !p->buckets)
        return SS_ROUTE_LIVE;
    return ss_rollout_bucket_of(p->salted, id, len) < p->buckets ? SS_ROUTE_CANARY : SS_ROUTE_LIVE;
}

/* Publish the plan of the state applied: the live model (a promoted one, else the configured
 * one), the candidate and its share. Returns 1 when the candidate or its share changed. */
static int publish(ss_runtime_t *rt) {
    ss_canary_t *c = rt->canary;
    const ss_rollout_state_t *st = c->ctl ? ss_control_state(c->ctl) : NULL;
    ss_plan_t *p = calloc(1, sizeof(*p));
    if (!p) {
        ss_error("rollout: out of memory for a plan; the previous one stays");
        return 0;
    }
    p->refcnt = 1;
    p->live = c->live ? ss_model_ref(c->live) : ss_model_slot_acquire(&rt->model);
    p->live_threshold = ss_model_threshold(p->live, c->live ? NAN : rt->cfg->model_threshold);
    p->candidate = c->candidate ? ss_model_ref(c->candidate) : NULL;
    p->phase = st ? st->phase : SS_ROLLOUT_NONE;
    p->offset = st ? st->offset : -1;
    if (p->candidate) {
        p->candidate_threshold = ss_model_threshold(p->candidate, NAN);
        p->salted = ss_rollout_salt(p->candidate->sha256);
        p->share = st->phase == SS_ROLLOUT_CANARY ? st->share : 0;
        p->buckets = ss_rollout_buckets(p->share);
    }
    pthread_mutex_lock(&rt->plan_lock);
    ss_plan_t *old = rt->plan;
    rt->plan = p;
    pthread_mutex_unlock(&rt->plan_lock);
    int changed = !old || old->candidate != p->candidate || old->buckets != p->buckets;
    ss_plan_release(old);
    return changed;
}

void ss_canary_live_reloaded(ss_runtime_t *rt) {
    publish(rt);
}

/* ------------------------------------------------------------------ a model of the rollout */

/* Load a model the control topic names, after checking its digest (and signature, with
 * model.signature.key) on the bytes read; its feature names must be the configured model's.
 * Returns the model, or NULL with the refusal's index in *why and the reason in errstr. */
static ss_model_t *load_named(ss_runtime_t *rt, const ss_rollout_model_t *want, int *why,
                              char *errstr, size_t errlen) {
    const ss_config_t *cfg = rt->cfg;
    char card[1100], sha[65], err[768];
    ss_model_t *m = NULL, *running = ss_model_slot_acquire(&rt->model);
    *why = R_LOAD;
    if (ss_artifact_file_sha256(want->path, sha) < 0) {
        snprintf(errstr, errlen, "cannot read %.400s", want->path);
        goto out;
    }
    if (strcmp(sha, want->sha256) != 0) {
        *why = R_DIGEST;
        snprintf(errstr, errlen, "the digest of %.300s is %s, not the rollout's %s", want->path,
                 sha, want->sha256);
        goto out;
    }
    if (want->card[0])
        snprintf(card, sizeof(card), "%s", want->card);
    else
        ss_model_card_path(want->path, card, sizeof(card));
    ss_config_t named = *cfg; /* the same checks as model.path's, on this model's files */
    named.model_path = (char *)want->path;
    named.model_card = card;
    named.model_name = want->name[0] ? (char *)want->name : NULL;
    named.model_version = want->version[0] ? (char *)want->version : NULL;
    named.model_signature = NULL; /* <path>.sig */
    if (*cfg->model_signature_key) {
        unsigned char *buf = NULL;
        size_t len = 0;
        char sig[1100];
        snprintf(sig, sizeof(sig), "%s.sig", want->path);
        int rc = ss_artifact_read(want->path, "model", "rollout", &buf, &len, err, sizeof(err));
        if (rc == 0)
            rc = ss_artifact_verify(buf, len, sig, cfg->model_signature_key, err, sizeof(err));
        free(buf);
        if (rc < 0) {
            *why = R_SIGNATURE;
            snprintf(errstr, errlen, "%.480s", err);
            goto out;
        }
    }
    if (ss_model_open(&named, NULL, &m, err, sizeof(err)) < 0) {
        snprintf(errstr, errlen, "%.480s", err);
        goto out;
    }
    if (strcmp(m->sha256, want->sha256) != 0) { /* replaced since it was checked */
        *why = R_DIGEST;
        snprintf(errstr, errlen, "the digest of %.300s is %s, not the rollout's %s", want->path,
                 m->sha256, want->sha256);
        goto fail;
    }
    char differ[256];
    if (!ss_model_same_interface(running, m, differ, sizeof(differ))) {
        *why = R_FEATURES;
        snprintf(errstr, errlen,
                 "it has %s than the running model: a new feature mapping or output needs a "
                 "restart with it as model.path",
                 differ);
        goto fail;
    }
    if (ss_runtime_model_fits(rt, m, NAN, differ, sizeof(differ)) < 0) {
        *why = R_FEATURES;
        snprintf(errstr, errlen, "%.480s", differ);
        goto fail;
    }
    goto out;
fail:
    ss_model_unref(m);
    m = NULL;
out:
    ss_model_unref(running);
    return m;
}

static void count_refusal(ss_canary_t *c, int why) {
    pthread_mutex_lock(&c->lock);
    c->refused[why]++;
    pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------------ writing a change */

static void write_change(ss_runtime_t *rt, ss_rollout_state_t *next, int gate, const char *what) {
    ss_canary_t *c = rt->canary;
    char err[512], by[300];
    int64_t offset = -1;
    snprintf(by, sizeof(by), "streamscore@%s", c->host);
    ss_rollout_stamp(next, next->reason, by, 1, ss_wall_ms());
    c->acted_on = ss_control_state(c->ctl)->offset;
    if (ss_control_write(c->ctl, next, &offset, err, sizeof(err)) < 0) {
        ss_error("rollout: the automatic %s could not be written: %s", what, err);
        c->acted_on = -1; /* tried again at the next evaluation */
        return;
    }
    c->written = offset;
    ss_log(SS_LOG_WARN,
           SS_FIELDS(SSF_STR("state", ss_rollout_phase_name(next->phase)),
                     SSF_REAL("share", next->share), SSF_INT("offset", offset)),
           "rollout: automatic %s written: %s", what, next->reason);
    if (gate >= 0) {
        pthread_mutex_lock(&c->lock);
        c->rollbacks[gate]++;
        pthread_mutex_unlock(&c->lock);
    }
}

static void auto_rollback(ss_runtime_t *rt, int gate, const char *reason) {
    ss_canary_t *c = rt->canary;
    const ss_rollout_state_t *cur = ss_control_state(c->ctl);
    ss_rollout_state_t next;
    char err[256];
    if (!rt->cfg->rollout_auto_rollback || c->acted_on == cur->offset ||
        ss_rollout_rollback(cur, &next, err, sizeof(err)) < 0)
        return;
    snprintf(next.reason, sizeof(next.reason), "automatic rollback: %s", reason);
    write_change(rt, &next, gate, "rollback");
}

/* Our automatic change was skipped: another change came first (a command, another worker's
 * rollback). Were it left the last record of the compacted topic, a worker starting after the
 * records before it are compacted away would apply it: the state every worker applies is
 * written again after it, derived from it (so accepted), to be the last. */
static void restate(ss_runtime_t *rt) {
    ss_canary_t *c = rt->canary;
    ss_rollout_state_t next = *ss_control_state(c->ctl);
    int64_t skipped = c->written;
    next.base = skipped;
    snprintf(next.reason, sizeof(next.reason),
             "restated: the automatic change at offset %lld came after another change and was "
             "skipped",
             (long long)skipped);
    c->written = -1;
    write_change(rt, &next, -1, "restatement");
    c->acted_on = -1; /* the gates may act on the state restated */
}

/* ------------------------------------------------------------------ applying a state */

static void describe(ss_runtime_t *rt) {
    ss_canary_t *c = rt->canary;
    ss_plan_t *p = ss_plan_acquire(rt);
    char text[sizeof(c->describe)];
    int n = snprintf(text, sizeof(text), "rollout: state %s, share %g, live %s %s",
                     ss_rollout_phase_name(p->phase), p->share, p->live->name, p->live->version);
    if (p->candidate && n > 0 && (size_t)n < sizeof(text))
        n += snprintf(text + n, sizeof(text) - (size_t)n, ", candidate %s %s (sha256 %.12s)",
                      p->candidate->name, p->candidate->version, p->candidate->sha256);
    if (c->refused_offset >= 0 && c->refused_offset == p->offset && n > 0 &&
        (size_t)n < sizeof(text))
        n +=
            snprintf(text + n, sizeof(text) - (size_t)n, ", candidate refused: %s", c->refused_why);
    if (n > 0 && (size_t)n < sizeof(text))
        snprintf(text + n, sizeof(text) - (size_t)n, ", offset %lld", (long long)p->offset);
    ss_plan_release(p);
    pthread_mutex_lock(&c->lock);
    memcpy(c->describe, text, sizeof(text));
    pthread_mutex_unlock(&c->lock);
}

static int same_model(const ss_model_t *m, const ss_rollout_model_t *want) {
    return m && strcmp(m->sha256, want->sha256) == 0 && strcmp(m->path, want->path) == 0;
}

/* Make the process run the control topic's state. */
static void apply(ss_runtime_t *rt) {
    ss_canary_t *c = rt->canary;
    const ss_rollout_state_t *st = ss_control_state(c->ctl);
    char why[512];
    int kind;
    if (st->offset == c->applied)
        return;
    c->applied = st->offset;
    ss_model_t *configured = ss_model_slot_acquire(&rt->model);
    int is_configured = st->live.set && strcmp(configured->sha256, st->live.sha256) == 0;
    ss_model_unref(configured);
    if (!st->live.set || is_configured) { /* the configured model is the one named */
        ss_model_unref(c->live);
        c->live = NULL;
    } else if (!same_model(c->live, &st->live)) {
        ss_model_t *m = load_named(rt, &st->live, &kind, why, sizeof(why));
        if (m) {
            ss_model_unref(c->live);
            c->live = m;
        } else {
            count_refusal(c, kind);
            ss_log(SS_LOG_ERROR,
                   SS_FIELDS(SSF_STR("reason", refusal_names[kind]),
                             SSF_STR("version", st->live.version)),
                   "rollout: the live model the rollout names is refused, the running one "
                   "stays: %s",
                   why);
        }
    }
    int wants = st->phase == SS_ROLLOUT_SHADOW || st->phase == SS_ROLLOUT_CANARY;
    if (!wants) {
        ss_model_unref(c->candidate);
        c->candidate = NULL;
    } else if (!same_model(c->candidate, &st->candidate)) {
        ss_model_unref(c->candidate);
        c->candidate = load_named(rt, &st->candidate, &kind, why, sizeof(why));
        if (!c->candidate) {
            count_refusal(c, kind);
            c->refused_offset = st->offset;
            snprintf(c->refused_why, sizeof(c->refused_why), "%s: %.480s", refusal_names[kind],
                     why);
            ss_log(SS_LOG_ERROR,
                   SS_FIELDS(SSF_STR("reason", refusal_names[kind]),
                             SSF_STR("candidate", st->candidate.name),
                             SSF_STR("version", st->candidate.version)),
                   "rollout: candidate refused, it serves nothing: %s", why);
        }
    }
    if (publish(rt)) {
        ss_gates_reset(rt->gates);
        memset(c->since, 0, sizeof(c->since));
        c->changed_at = ss_mono_ms();
    }
    pthread_mutex_lock(&c->lock);
    c->changes++;
    memset(c->triggered, 0, sizeof(c->triggered));
    pthread_mutex_unlock(&c->lock);
    describe(rt);
    ss_plan_t *p = ss_plan_acquire(rt);
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("state", ss_rollout_phase_name(st->phase)),
                     SSF_REAL("share", p->share), SSF_INT("offset", st->offset),
                     SSF_STR("live", p->live->version),
                     SSF_STR("candidate", p->candidate ? p->candidate->version : ""),
                     SSF_STR("by", st->by)),
           "rollout: applied (%s)", st->reason);
    ss_plan_release(p);
    if (wants && !c->candidate) {
        char reason[1400];
        snprintf(reason, sizeof(reason), "candidate %s %s refused on %s: %s", st->candidate.name,
                 st->candidate.version, c->host, c->refused_why);
        auto_rollback(rt, N_GATES, reason);
    }
}

/* ------------------------------------------------------------------ the gates */

static double max_drift(const ss_model_t *m) {
    double worst = NAN;
    for (size_t j = 0; m && m->drift && j <= m->n_features; j++) {
        double v = ss_drift_psi(m->drift, j);
        if (!isnan(v) && !(v <= worst))
            worst = v;
    }
    return worst;
}

static void evaluate(ss_runtime_t *rt) {
    ss_canary_t *c = rt->canary;
    const ss_config_t *cfg = rt->cfg;
    int64_t now = ss_mono_ms();
    if (now < c->next_eval)
        return;
    c->next_eval = now + EVAL_INTERVAL_MS;
    ss_plan_t *p = ss_plan_acquire(rt);
    ss_gate_figures_t f[SS_ROUTES];
    double v[SS_ROUTES][N_GATES];
    for (int r = 0; r < SS_ROUTES; r++) {
        ss_gates_figures(rt->gates, r, ss_wall_ms(), &f[r]);
        v[r][G_ERROR] = f[r].error_rate;
        v[r][G_LATENCY] = f[r].latency_p95;
        v[r][G_SHIFT] = f[r].shift_psi;
        v[r][G_AUC] = f[r].roc_auc;
        v[r][G_DRIFT] = max_drift(r == SS_ROUTE_CANARY ? p->candidate : p->live);
    }
    const double thr[N_GATES] = {
        cfg->rollout_gate_error_rate, cfg->rollout_gate_latency_p95_ms / 1000.0,
        cfg->rollout_gate_drift_psi, cfg->rollout_gate_shift_psi, cfg->rollout_gate_roc_auc};
    const ss_gate_figures_t *cf = &f[SS_ROUTE_CANARY];
    int canary = p->candidate && p->buckets > 0;
    int judged[N_GATES] = {
        canary && cf->records >= cfg->rollout_min_records,
        canary && cf->records >= cfg->rollout_min_records,
        canary && !isnan(v[SS_ROUTE_CANARY][G_DRIFT]),
        canary && cf->shift_pairs >= cfg->rollout_min_records,
        canary && cf->labelled >= cfg->rollout_min_records && !isnan(cf->roc_auc),
    };
    int fired = -1, breached = 0, all_pass = judged[G_ERROR];
    for (int g = 0; g < N_GATES; g++) {
        /* beyond the threshold on the canary's route, and not on the live route's, or worse
         * there by more than the threshold's margin (the threshold itself; for ROC-AUC its
         * distance from 1): what ails both routes alike (a backlog, bad input, labels no
         * model can know) is not the candidate's, while a candidate slow enough to delay the
         * live records of its batches too is still worse than them by its own time */
        double x = v[SS_ROUTE_CANARY][g], y = v[SS_ROUTE_LIVE][g];
        int auc = g == G_AUC;
        int live_beyond = auc ? y < thr[g] : y > thr[g];
        int worse = auc ? y - x > 1 - thr[g] : x - y > thr[g];
        int beyond = judged[g] && (auc ? x < thr[g] : x > thr[g]) && (!live_beyond || worse);
        breached |= beyond;
        if (!beyond)
            c->since[g] = 0;
        else if (!c->since[g])
            c->since[g] = now;
        if (beyond && now - c->since[g] >= cfg->rollout_gate_for_ms && fired < 0)
            fired = g;
    }
    pthread_mutex_lock(&c->lock);
    memcpy(c->values, v, sizeof(v));
    for (int g = 0; g < N_GATES; g++)
        c->triggered[g] = c->since[g] && now - c->since[g] >= cfg->rollout_gate_for_ms;
    pthread_mutex_unlock(&c->lock);
    const ss_rollout_state_t *st = ss_control_state(c->ctl);
    if (fired >= 0) {
        char reason[512];
        snprintf(reason, sizeof(reason),
                 "gate %s: the canary's %.6g is %s the threshold %.6g for %ld ms (%ld canary "
                 "records in the window) on %s",
                 gate_names[fired], v[SS_ROUTE_CANARY][fired], fired == G_AUC ? "below" : "above",
                 thr[fired], cfg->rollout_gate_for_ms, cf->records, c->host);
        auto_rollback(rt, fired, reason);
    } else if (cfg->rollout_auto_progress && canary && all_pass && !breached &&
               st->phase == SS_ROLLOUT_CANARY && c->acted_on != st->offset &&
               ss_wall_ms() - st->at >= cfg->rollout_step_hold_ms &&
               now - c->changed_at >= cfg->rollout_step_hold_ms) {
        ss_rollout_state_t next;
        char err[256];
        double share = ss_rollout_next_step(c->steps, c->n_steps, st->share);
        int rc = share > 0 ? ss_rollout_step(st, share, &next, err, sizeof(err))
                           : ss_rollout_promote(st, &next, err, sizeof(err));
        if (rc == 0) {
            snprintf(next.reason, sizeof(next.reason),
                     "automatic progression: every gate passed over %ld canary records after "
                     "%ld ms at share %g (on %s)",
                     cf->records, cfg->rollout_step_hold_ms, st->share, c->host);
            write_change(rt, &next, -1, share > 0 ? "step" : "promotion");
        }
    }
    ss_plan_release(p);
}

/* ------------------------------------------------------------------ life */

int ss_canary_open(ss_runtime_t *rt, char *errstr, size_t errlen) {
    const ss_config_t *cfg = rt->cfg;
    ss_canary_t *c = ss_zalloc(sizeof(*c), "rollout", errstr, errlen);
    if (!c)
        return SS_ERR_NOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&rt->plan_lock, NULL);
    rt->canary = c;
    c->applied = c->acted_on = c->refused_offset = c->written = -1;
    c->changed_at = ss_mono_ms();
    if (gethostname(c->host, sizeof(c->host) - 1) != 0)
        snprintf(c->host, sizeof(c->host), "unknown");
    if (!(rt->gates = ss_gates_new(cfg->rollout_window_ms))) {
        snprintf(errstr, errlen, "rollout: out of memory");
        return SS_ERR_NOMEM;
    }
    int rc =
        ss_rollout_parse_steps(cfg->rollout_steps, c->steps, SS_ROLLOUT_MAX_STEPS, errstr, errlen);
    if (rc < 0)
        return rc;
    c->n_steps = rc;
    publish(rt);
    describe(rt);
    if (!*cfg->rollout_topic)
        return 0;
    int why;
    if (!(c->ctl = ss_control_open(cfg, "rollout", &why, errstr, errlen)))
        return why;
    if ((rc = ss_control_catch_up(c->ctl, 30000, errstr, errlen)) < 0)
        return rc;
    if (*cfg->rollout_labels_topic && !(c->labels = ss_labels_open(cfg, &why, errstr, errlen)))
        return why;
    if (ss_control_state(c->ctl)->phase != SS_ROLLOUT_NONE)
        apply(rt);
    else
        ss_info("rollout: no rollout recorded for '%s' in '%s'", cfg->rollout_id,
                cfg->rollout_topic);
    return 0;
}

void ss_canary_close(ss_runtime_t *rt) {
    ss_canary_t *c = rt->canary;
    if (!c)
        return;
    ss_control_close(c->ctl);
    ss_labels_close(c->labels);
    ss_plan_release(rt->plan);
    rt->plan = NULL;
    ss_model_unref(c->live);
    ss_model_unref(c->candidate);
    ss_gates_destroy(rt->gates);
    rt->gates = NULL;
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&rt->plan_lock);
    free(c);
    rt->canary = NULL;
}

void ss_canary_tick(ss_runtime_t *rt) {
    ss_canary_t *c = rt->canary;
    if (!c || !c->ctl)
        return;
    if (ss_control_poll(c->ctl, 0) > 0)
        apply(rt);
    if (c->written >= 0 && ss_control_skipped(c->ctl) == c->written)
        restate(rt);
    if (c->labels)
        ss_labels_poll(c->labels, rt->gates, ss_wall_ms());
    evaluate(rt);
}

int ss_canary_wants_recent(ss_runtime_t *rt) {
    return rt->canary->labels != NULL;
}

void ss_canary_remember(ss_runtime_t *rt, const ss_recent_t *r, size_t n) {
    if (rt->canary->labels && n)
        ss_labels_remember(rt->canary->labels, r, n);
}

void ss_canary_observe(ss_runtime_t *rt, const ss_gate_tally_t tally[SS_ROUTES]) {
    int64_t now = ss_wall_ms();
    for (int r = 0; r < SS_ROUTES; r++)
        if (tally[r].records)
            ss_gates_add(rt->gates, r, &tally[r], now);
}

void ss_canary_count(ss_runtime_t *rt, const long predicted[SS_ROUTES],
                     const long errors[SS_ROUTES]) {
    ss_canary_t *c = rt->canary;
    for (int r = 0; r < SS_ROUTES; r++) {
        __atomic_add_fetch(&c->route_records[r], predicted[r], __ATOMIC_RELAXED);
        __atomic_add_fetch(&c->route_errors[r], errors[r], __ATOMIC_RELAXED);
    }
}

/* ------------------------------------------------------------------ what it shows */

static void label_pair(ss_buf_t *out, const char *k, const char *v) {
    ss_buf_printf(out, "%s=\"", k);
    ss_buf_label(out, v);
    ss_buf_printf(out, "\"");
}

void ss_canary_render(ss_runtime_t *rt, ss_buf_t *out) {
    ss_canary_t *c = rt->canary;
    const ss_config_t *cfg = rt->cfg;
    ss_plan_t *p = ss_plan_acquire(rt);
    ss_buf_printf(out, "# HELP streamscore_rollout_info The rollout this process applies.\n"
                       "# TYPE streamscore_rollout_info gauge\nstreamscore_rollout_info{");
    label_pair(out, "rollout", cfg->rollout_id ? cfg->rollout_id : "");
    ss_buf_printf(out, ",");
    label_pair(out, "state", ss_rollout_phase_name(p->phase));
    ss_buf_printf(out, ",");
    label_pair(out, "live_version", p->live->version);
    ss_buf_printf(out, ",");
    label_pair(out, "candidate_version", p->candidate ? p->candidate->version : "");
    ss_buf_printf(out, ",");
    label_pair(out, "candidate_sha256", p->candidate ? p->candidate->sha256 : "");
    ss_buf_printf(out,
                  "} 1\n"
                  "# HELP streamscore_rollout_share Share of customers routed to the canary.\n"
                  "# TYPE streamscore_rollout_share gauge\nstreamscore_rollout_share %g\n"
                  "# HELP streamscore_rollout_offset Offset of the control record applied "
                  "(-1: none).\n"
                  "# TYPE streamscore_rollout_offset gauge\nstreamscore_rollout_offset %lld\n",
                  p->candidate ? p->share : 0.0, (long long)p->offset);
    ss_plan_release(p);
    pthread_mutex_lock(&c->lock);
    ss_buf_printf(out,
                  "# HELP streamscore_rollout_changes_applied_total Rollout states applied.\n"
                  "# TYPE streamscore_rollout_changes_applied_total counter\n"
                  "streamscore_rollout_changes_applied_total %ld\n"
                  "# HELP streamscore_rollout_candidate_refused_total Models of the rollout "
                  "refused, by reason.\n"
                  "# TYPE streamscore_rollout_candidate_refused_total counter\n",
                  c->changes);
    for (int i = 0; i < N_REFUSALS; i++)
        ss_buf_printf(out, "streamscore_rollout_candidate_refused_total{reason=\"%s\"} %ld\n",
                      refusal_names[i], c->refused[i]);
    ss_buf_printf(out, "# HELP streamscore_route_records_total Predictions produced, by route.\n"
                       "# TYPE streamscore_route_records_total counter\n");
    for (int r = 0; r < SS_ROUTES; r++)
        ss_buf_printf(out, "streamscore_route_records_total{route=\"%s\"} %ld\n", ss_route_name(r),
                      __atomic_load_n(&c->route_records[r], __ATOMIC_RELAXED));
    ss_buf_printf(out, "# HELP streamscore_route_errors_total Records dead-lettered at scoring "
                       "(non-finite score), by route.\n"
                       "# TYPE streamscore_route_errors_total counter\n");
    for (int r = 0; r < SS_ROUTES; r++)
        ss_buf_printf(out, "streamscore_route_errors_total{route=\"%s\"} %ld\n", ss_route_name(r),
                      __atomic_load_n(&c->route_errors[r], __ATOMIC_RELAXED));
    const double thr[N_GATES] = {
        cfg->rollout_gate_error_rate, cfg->rollout_gate_latency_p95_ms / 1000.0,
        cfg->rollout_gate_drift_psi, cfg->rollout_gate_shift_psi, cfg->rollout_gate_roc_auc};
    ss_buf_printf(out, "# HELP streamscore_rollout_gate_value A gate's figure over the window, by "
                       "route (NaN: not measured).\n"
                       "# TYPE streamscore_rollout_gate_value gauge\n");
    for (int r = 0; r < SS_ROUTES; r++)
        for (int g = 0; g < N_GATES; g++)
            if (g != G_SHIFT || r == SS_ROUTE_CANARY)
                ss_buf_printf(out, "streamscore_rollout_gate_value{route=\"%s\",gate=\"%s\"} %g\n",
                              ss_route_name(r), gate_names[g], c->values[r][g]);
    ss_buf_printf(out, "# HELP streamscore_rollout_gate_threshold A gate's threshold.\n"
                       "# TYPE streamscore_rollout_gate_threshold gauge\n");
    for (int g = 0; g < N_GATES; g++)
        ss_buf_printf(out, "streamscore_rollout_gate_threshold{gate=\"%s\"} %g\n", gate_names[g],
                      thr[g]);
    ss_buf_printf(out, "# HELP streamscore_rollout_triggered 1 while the canary's figure has been "
                       "beyond the gate's threshold for rollout.gate.for.ms.\n"
                       "# TYPE streamscore_rollout_triggered gauge\n");
    for (int g = 0; g < N_GATES; g++)
        ss_buf_printf(out, "streamscore_rollout_triggered{gate=\"%s\"} %d\n", gate_names[g],
                      c->triggered[g]);
    ss_buf_printf(out, "# HELP streamscore_rollout_rollbacks_total Automatic rollbacks this "
                       "process wrote, by the gate that triggered (refused: a refused "
                       "candidate).\n"
                       "# TYPE streamscore_rollout_rollbacks_total counter\n");
    for (int g = 0; g <= N_GATES; g++)
        ss_buf_printf(out, "streamscore_rollout_rollbacks_total{gate=\"%s\"} %ld\n",
                      g < N_GATES ? gate_names[g] : "refused", c->rollbacks[g]);
    pthread_mutex_unlock(&c->lock);
    if (c->labels) {
        long n[3];
        ss_labels_counts(c->labels, &n[0], &n[1], &n[2]);
        ss_buf_printf(out,
                      "# HELP streamscore_rollout_labels_total Labels read from "
                      "rollout.labels.topic: joined with a prediction of this process, "
                      "unmatched, or malformed.\n"
                      "# TYPE streamscore_rollout_labels_total counter\n"
                      "streamscore_rollout_labels_total{outcome=\"joined\"} %ld\n"
                      "streamscore_rollout_labels_total{outcome=\"unmatched\"} %ld\n"
                      "streamscore_rollout_labels_total{outcome=\"malformed\"} %ld\n",
                      n[0], n[1], n[2]);
    }
}

void ss_canary_describe(ss_runtime_t *rt, ss_buf_t *out) {
    ss_canary_t *c = rt->canary;
    pthread_mutex_lock(&c->lock);
    ss_buf_printf(out, "%s\n", c->describe);
    pthread_mutex_unlock(&c->lock);
}
