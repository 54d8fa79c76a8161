/* stats.h - the statistics streamscore reports, each defined once: `compare` and
 * `validate-model` both use these, so that a p99 or a ROC-AUC means the same in every report.
 *
 * Quantile: linear interpolation between order statistics (Hyndman & Fan type 7, the default
 * of numpy's percentile/quantile, pandas and R). For n sorted values x[0..n-1] and q in [0, 1]:
 * h = q (n - 1), Q(q) = x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]). Chosen
 * because it is what the readers of the reports compute themselves (np.percentile), what the
 * integration tests check, and because it is continuous in q and exact at both ends (q = 0 is
 * the minimum, q = 1 the maximum) without a rule for rounding a rank.
 *
 * ROC-AUC: the Mann-Whitney statistic, the share of (positive, negative) pairs whose scores
 * are in the right order, a tied pair counting one half. It equals the trapezoidal area
 * under the ROC curve (scikit-learn's roc_auc_score). NaN without positives or negatives.
 *
 * Spearman's rank correlation: Pearson's correlation of the average ranks (ties share the
 * mean of their ranks, as scipy.stats.spearmanr). NaN for fewer than two pairs or a side
 * without variation.
 *
 * Binned forms, for data too large to hold: values fall in equal-width bins over [lo, hi];
 * a quantile interpolates between order statistics estimated within their bin, the ROC-AUC
 * and the ranks treat values of one bin as ties. */
#ifndef SS_STATS_H
#define SS_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Sort `n` doubles ascending (no NaN). */
void ss_stats_sort(double *v, size_t n);

/* The q-quantile (q in [0, 1]) of `n` values sorted ascending; NaN when n is 0. */
double ss_stats_quantile(const double *sorted, size_t n, double q);

/* ROC-AUC of the scores of positives and negatives. Sorts both arrays in place. */
double ss_stats_roc_auc(double *pos, size_t n_pos, double *neg, size_t n_neg);

/* Spearman's rank correlation of `n` pairs stored (x, y) one after the other. Stores it in
 * *rho; returns 0 or SS_ERR_NOMEM. */
int ss_stats_spearman(const double *xy, size_t n, double *rho);

/* Precision tp / (tp + fp), recall tp / (tp + fn) and F1 (their harmonic mean); each one that
 * divides by zero is `undefined` (NaN, or 0 like scikit-learn's zero_division=0). */
void ss_stats_prf(uint64_t tp, uint64_t fp, uint64_t fn, double undefined, double *precision,
                  double *recall, double *f1);

/* ---- binned forms ---------------------------------------------------------------------- */

/* The bin of v among `bins` equal-width bins over [lo, hi]; values outside go to the edge
 * bins, and every value to bin 0 when hi <= lo. */
size_t ss_stats_bin(double v, double lo, double hi, size_t bins);

/* The q-quantile of the `n` values counted in histogram h (bins over [lo, hi]): the
 * interpolation above between order statistics, each estimated within its bin. NaN when n
 * is 0. */
double ss_stats_quantile_binned(const uint64_t *h, size_t bins, double lo, double hi, uint64_t n,
                                double q);

/* ROC-AUC from the histograms of positives and negatives over the same bins. */
double ss_stats_roc_auc_binned(const uint64_t *pos, const uint64_t *neg, size_t bins);

/* The average rank (1-based) of the values of each bin of histogram h. */
void ss_stats_ranks_binned(const uint64_t *h, size_t bins, double *rank);

#endif
