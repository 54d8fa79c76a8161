/* gates.h - the figures a canary is judged by, per route (live, canary), over a sliding
 * window: records and scoring errors, event-to-prediction latency, the shift of the canary's
 * scores from the live model's scores of the same records, and ROC-AUC against labels. Worker
 * threads add one batch's tally at a time (under a lock); the main thread reads the figures.
 * The window is a ring of SS_GATE_SLOTS time slots: a slot older than the window is cleared
 * before it is used again, so the figures cover the last window_ms to within one slot. */
#ifndef SS_GATES_H
#define SS_GATES_H

#include <stddef.h>
#include <stdint.h>

#define SS_ROUTE_LIVE 0
#define SS_ROUTE_CANARY 1
#define SS_ROUTES 2
#define SS_GATE_SLOTS 10
#define SS_GATE_LAT_BINS 49     /* 0.5 s * 1.25^k, k = -28..20, and one above */
#define SS_GATE_SCORE_BINS 1000 /* fine equal bins of 0..1 (scores outside clamped) */
#define SS_GATE_SHIFT_GROUPS 10 /* the fine bins grouped into deciles of the live scores */
#define SS_GATE_AUC_BINS 200    /* scores binned for ROC-AUC */

const char *ss_route_name(int route);

/* One batch's figures of one route, tallied by a worker thread without locks. */
typedef struct ss_gate_tally {
    long records, errors;
    long latency[SS_GATE_LAT_BINS + 1];
    /* canary only: the candidate's and the live model's scores of the same records */
    long cand_scores[SS_GATE_SCORE_BINS], live_scores[SS_GATE_SCORE_BINS];
    /* labelled predictions: per score bin, positives and negatives */
    long pos[SS_GATE_AUC_BINS], neg[SS_GATE_AUC_BINS];
} ss_gate_tally_t;

void ss_gate_tally_clear(ss_gate_tally_t *t);
void ss_gate_tally_latency(ss_gate_tally_t *t, double seconds);
void ss_gate_tally_shift(ss_gate_tally_t *t, double candidate, double live);
void ss_gate_tally_label(ss_gate_tally_t *t, double score, int label);

/* What the window holds for one route. NaN where it cannot be said (no records, no labels of
 * one class, no shift pairs). */
typedef struct ss_gate_figures {
    long records, errors, shift_pairs, labelled;
    double error_rate;  /* errors / records */
    double latency_p95; /* seconds: the upper bound of the bin holding the 95th percentile */
    double shift_psi;   /* PSI of the candidate's scores against the live model's, over
                           the deciles of the live model's scores */
    double roc_auc;     /* from the labelled predictions, ties counted half */
} ss_gate_figures_t;

typedef struct ss_gates ss_gates_t;

ss_gates_t *ss_gates_new(long window_ms);
void ss_gates_destroy(ss_gates_t *g);

/* Add a tally of `route` at now_ms. @locality any thread */
void ss_gates_add(ss_gates_t *g, int route, const ss_gate_tally_t *t, int64_t now_ms);

/* Forget everything (a new candidate or share starts a new window). @locality any thread */
void ss_gates_reset(ss_gates_t *g);

/* The window ending at now_ms. @locality any thread */
void ss_gates_figures(ss_gates_t *g, int route, int64_t now_ms, ss_gate_figures_t *out);

#endif
