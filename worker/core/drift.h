/* drift.h - how far the records a model scores have moved from its training data: the
 * population stability index (PSI) of every feature and of the score over a sliding window
 * of the last records, against the baseline in the model card. One per loaded model;
 * observed once per batch by any worker thread (under its own lock). */
#ifndef SS_DRIFT_H
#define SS_DRIFT_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"
#include "metrics.h"

typedef struct ss_drift ss_drift_t;

/* From the card's "baseline" (per feature: edges, proportions of the non-missing values,
 * missing_rate) and "score_baseline" (edges, proportions). Returns 0 with the drift in *out,
 * or with *out NULL when the card has no baseline (no drift is measured); SS_ERR_CONFIG with
 * errstr on a malformed one; SS_ERR_NOMEM. feature_names: the model's, in order (the baseline
 * of each is looked up by name). */
int ss_drift_new(const json_t *card, char *const *feature_names, size_t nf, long window,
                 double threshold, ss_drift_t **out, char *errstr, size_t errlen);
void ss_drift_destroy(ss_drift_t *d);

/* Add n scored rows (nf float32 features each, NaN = missing) and their scores; the oldest
 * leave the window. Logs when a PSI crosses the threshold (either way). @locality any */
void ss_drift_observe(ss_drift_t *d, const float *rows, const double *scores, size_t n);

/* PSI of feature j (j == nf: the score) over the window; NaN until the window is full or
 * when the card has no baseline for it. */
double ss_drift_psi(ss_drift_t *d, size_t j);

/* streamscore_feature_psi{feature}, streamscore_score_psi and the window's fill, once the
 * window is full. */
void ss_drift_render(ss_drift_t *d, ss_buf_t *out);

#endif
