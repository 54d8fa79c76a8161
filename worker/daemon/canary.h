/* canary.h - the rollout in a primary worker process (docs/rollout.md): the plan every batch
 * scores by (the live model, the candidate and the share of customers routed to it), built
 * from the configured model and the control topic's state; the candidate's verification; the
 * gates judged over the workers' figures, and the automatic rollback and progression they
 * drive. The control topic is followed by the main thread (ss_canary_tick); a worker takes
 * the plan at the start of each batch, so that a change applies at a batch boundary. */
#ifndef SS_CANARY_H
#define SS_CANARY_H

#include <stdint.h>

#include "gates.h"
#include "labels.h"
#include "metrics.h"
#include "model.h"
#include "rollout.h"

typedef struct ss_runtime ss_runtime_t;

/* What a batch scores by: immutable once published, reference-counted. */
typedef struct ss_plan {
    ss_model_t *live;
    ss_model_t *candidate; /* NULL: every customer is scored by `live` */
    double live_threshold, candidate_threshold;
    uint32_t buckets; /* customers whose bucket is below go to the candidate */
    uint64_t salted;  /* ss_rollout_salt of the candidate's digest */
    int64_t offset;   /* the control record applied, -1 none */
    ss_rollout_phase_t phase;
    double share;
    int refcnt; /* atomic */
} ss_plan_t;

/* The plan now, with a reference. @locality any thread */
ss_plan_t *ss_plan_acquire(ss_runtime_t *rt);
void ss_plan_release(ss_plan_t *p);

/* The route of a customer under `p`: SS_ROUTE_CANARY or SS_ROUTE_LIVE. */
int ss_plan_route(const ss_plan_t *p, const char *id, size_t len);

typedef struct ss_canary ss_canary_t;

/* Set up the runtime's plan: with rollout.topic, read the control topic to its end and apply
 * the state (a restarted worker resumes it), else the configured model alone. Returns 0, or
 * an SS_ERR_* code with errstr (SS_ERR_CONFIG: a key is wrong). */
int ss_canary_open(ss_runtime_t *rt, char *errstr, size_t errlen);
void ss_canary_close(ss_runtime_t *rt);

/* Follow the control topic, judge the gates, act. @locality the main thread */
void ss_canary_tick(ss_runtime_t *rt);

/* The configured model changed (reload): publish a plan with it. @locality the main thread */
void ss_canary_live_reloaded(ss_runtime_t *rt);

/* Whether predictions are remembered for the labels (rollout.labels.topic set). */
int ss_canary_wants_recent(ss_runtime_t *rt);
/* Remember n predictions for the labels to join. @locality any thread */
void ss_canary_remember(ss_runtime_t *rt, const ss_recent_t *r, size_t n);

/* A committed batch's predictions and scoring errors (non-finite scores) per route, counted
 * whether or not a candidate is loaded. @locality any thread */
void ss_canary_count(ss_runtime_t *rt, const long predicted[SS_ROUTES],
                     const long errors[SS_ROUTES]);

/* A batch's figures per route. @locality any thread */
void ss_canary_observe(ss_runtime_t *rt, const ss_gate_tally_t tally[SS_ROUTES]);

/* The rollout's metrics, and its line of /readyz. @locality any thread */
void ss_canary_render(ss_runtime_t *rt, ss_buf_t *out);
void ss_canary_describe(ss_runtime_t *rt, ss_buf_t *out);

#endif
