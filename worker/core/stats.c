/* stats.c - one definition of each statistic the reports give (quantile, ROC-AUC, Spearman,
 * precision / recall / F1), exact and binned; stats.h says which definition and why. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>

#include "error.h"

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void ss_stats_sort(double *v, size_t n) {
    if (n > 1)
        qsort(v, n, sizeof(double), dbl_cmp);
}

double ss_stats_quantile(const double *sorted, size_t n, double q) {
    if (n == 0)
        return NAN;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    double h = q * (double)(n - 1);
    size_t j = (size_t)h;
    if (j + 1 >= n)
        return sorted[n - 1];
    return sorted[j] + (h - (double)j) * (sorted[j + 1] - sorted[j]);
}

double ss_stats_roc_auc(double *pos, size_t n_pos, double *neg, size_t n_neg) {
    if (!n_pos || !n_neg)
        return NAN;
    ss_stats_sort(pos, n_pos);
    ss_stats_sort(neg, n_neg);
    double sum = 0; /* pairs in order, ties one half: integers and halves, exact in a double */
    for (size_t i = 0, lt = 0, le = 0; i < n_pos; i++) {
        while (lt < n_neg && neg[lt] < pos[i])
            lt++;
        while (le < n_neg && neg[le] <= pos[i])
            le++;
        sum += (double)lt + 0.5 * (double)(le - lt);
    }
    return sum / ((double)n_pos * (double)n_neg);
}

typedef struct vi {
    double v;
    size_t i;
} vi_t;

static int vi_cmp(const void *a, const void *b) {
    return dbl_cmp(&((const vi_t *)a)->v, &((const vi_t *)b)->v);
}

/* Average ranks (1-based) of xy[i * 2 + which]; tmp holds n entries. */
static void midranks(const double *xy, int which, size_t n, vi_t *tmp, double *rank) {
    for (size_t i = 0; i < n; i++)
        tmp[i] = (vi_t){xy[i * 2 + (size_t)which], i};
    qsort(tmp, n, sizeof(vi_t), vi_cmp);
    for (size_t i = 0, j; i < n; i = j + 1) {
        for (j = i; j + 1 < n && tmp[j + 1].v == tmp[i].v; j++)
            ;
        for (size_t k = i; k <= j; k++)
            rank[tmp[k].i] = (double)(i + j) / 2.0 + 1.0;
    }
}

int ss_stats_spearman(const double *xy, size_t n, double *rho) {
    *rho = NAN;
    if (n < 2)
        return 0;
    vi_t *tmp = malloc(n * sizeof(vi_t));
    double *rx = malloc(n * sizeof(double)), *ry = malloc(n * sizeof(double));
    int rc = SS_ERR_NOMEM;
    if (tmp && rx && ry) {
        double m = ((double)n + 1) / 2, sxy = 0, sxx = 0, syy = 0;
        midranks(xy, 0, n, tmp, rx);
        midranks(xy, 1, n, tmp, ry);
        for (size_t i = 0; i < n; i++) {
            double a = rx[i] - m, b = ry[i] - m;
            sxy += a * b, sxx += a * a, syy += b * b;
        }
        if (sxx > 0 && syy > 0)
            *rho = sxy / sqrt(sxx * syy);
        rc = 0;
    }
    free(tmp);
    free(rx);
    free(ry);
    return rc;
}

void ss_stats_prf(uint64_t tp, uint64_t fp, uint64_t fn, double undefined, double *precision,
                  double *recall, double *f1) {
    double p = tp + fp ? (double)tp / (double)(tp + fp) : undefined;
    double r = tp + fn ? (double)tp / (double)(tp + fn) : undefined;
    *precision = p, *recall = r;
    *f1 = p + r > 0 ? 2 * p * r / (p + r) : undefined;
}

size_t ss_stats_bin(double v, double lo, double hi, size_t bins) {
    double t = hi > lo ? (v - lo) / (hi - lo) * (double)bins : 0;
    return t <= 0 ? 0 : t >= (double)bins ? bins - 1 : (size_t)t;
}

/* The k-th smallest value (0-based) estimated from a histogram: within one bin of it, spread
 * evenly over its bin. */
static double order_stat(const uint64_t *h, size_t bins, double lo, double hi, uint64_t k) {
    uint64_t cum = 0;
    for (size_t b = 0; b < bins; b++) {
        if (h[b] && cum + h[b] > k)
            return lo + ((double)b + ((double)(k - cum) + 0.5) / (double)h[b]) * (hi - lo) /
                            (double)bins;
        cum += h[b];
    }
    return hi;
}

double ss_stats_quantile_binned(const uint64_t *h, size_t bins, double lo, double hi, uint64_t n,
                                double q) {
    if (n == 0)
        return NAN;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    double r = q * (double)(n - 1), j = floor(r);
    double a = order_stat(h, bins, lo, hi, (uint64_t)j);
    return a + (r - j) * (order_stat(h, bins, lo, hi, (uint64_t)j + 1) - a);
}

double ss_stats_roc_auc_binned(const uint64_t *pos, const uint64_t *neg, size_t bins) {
    double sum = 0, n_pos = 0, n_neg = 0;
    for (size_t b = 0; b < bins; b++) {
        sum += (double)pos[b] * (n_neg + 0.5 * (double)neg[b]);
        n_neg += (double)neg[b];
        n_pos += (double)pos[b];
    }
    return n_pos > 0 && n_neg > 0 ? sum / (n_pos * n_neg) : NAN;
}

void ss_stats_ranks_binned(const uint64_t *h, size_t bins, double *rank) {
    double cum = 0;
    for (size_t b = 0; b < bins; b++) {
        rank[b] = cum + ((double)h[b] + 1) / 2;
        cum += (double)h[b];
    }
}
