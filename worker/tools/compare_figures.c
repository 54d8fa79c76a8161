/* compare_figures.c - the figures of `compare` that need every value (quantiles, Spearman,
 * ROC-AUC), from the value files the join wrote, with the definitions of core/stats.h: exact
 * when a figure's values fit --exact-limit (held in memory, <= 48 bytes each), else from
 * 65536-bin histograms over the values' [min, max] (a quantile lands within one bin,
 * (max - min) / 65536, of the order statistics around its rank; values in one bin count as
 * ties), so that memory stays bounded. The same holds for each output of a multi-output
 * model, one value file and one figure at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare_int.h"
#include "error.h"
#include "stats.h"

/* Histograms of the k columns of a value file (bins over [lo[i], hi[i]]). */
typedef struct hists {
    uint64_t *h[2];
    double lo[2], hi[2];
    int k;
} hists_t;

/* the quantiles compare reports: median and p99 (p95 too of the score differences) */
static const double p50_p99[2] = {0.5, 0.99};
static const double p50_p95_p99[3] = {0.5, 0.95, 0.99};
static const double p99[1] = {0.99};

static void hists_fn(void *o, const double *v, size_t n) {
    hists_t *s = o;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < s->k; c++)
            s->h[c][ss_stats_bin(v[i * (size_t)s->k + (size_t)c], s->lo[c], s->hi[c],
                                 CMP_HIST_BINS)]++;
}

/* Fill s->h[] (allocated here, the caller frees them) from col, over the given bounds. */
static int col_hists(cmp_col_t *col, hists_t *s, const double *lo, const double *hi) {
    s->k = col->k;
    for (int c = 0; c < s->k; c++) {
        s->lo[c] = lo[c], s->hi[c] = hi[c];
        if (!(s->h[c] = calloc(CMP_HIST_BINS, sizeof(uint64_t))))
            return SS_ERR_NOMEM;
    }
    return cmp_col_scan(col, hists_fn, s);
}

static int exact(const cmp_t *c, uint64_t n) {
    return n <= (uint64_t)c->o.exact_limit;
}

/* Quantiles q[] of a one-column file. */
static int col_quantiles(cmp_t *c, cmp_col_t *col, const double *q, double *out, int nq) {
    hists_t s = {{NULL, NULL}, {0}, {0}, 0};
    int rc = 0;
    for (int i = 0; i < nq; i++)
        out[i] = NAN;
    if (col->n == 0)
        return 0;
    if (exact(c, col->n)) {
        double *a = cmp_col_load(col);
        if (!a)
            return SS_ERR_FAIL;
        ss_stats_sort(a, col->n);
        for (int i = 0; i < nq; i++)
            out[i] = ss_stats_quantile(a, col->n, q[i]);
        free(a);
        return 0;
    }
    c->r.exact = 0;
    if ((rc = col_hists(col, &s, col->min, col->max)) == 0)
        for (int i = 0; i < nq; i++)
            out[i] =
                ss_stats_quantile_binned(s.h[0], CMP_HIST_BINS, s.lo[0], s.hi[0], col->n, q[i]);
    free(s.h[0]);
    return rc;
}

/* ROC-AUC of the positives' and the negatives' scores. */
static int col_auc(cmp_t *c, cmp_col_t *pos, cmp_col_t *neg, double *auc) {
    *auc = NAN;
    if (!pos->n || !neg->n)
        return 0;
    if (exact(c, pos->n + neg->n)) {
        double *p = cmp_col_load(pos), *q = cmp_col_load(neg);
        if (p && q)
            *auc = ss_stats_roc_auc(p, pos->n, q, neg->n);
        free(p), free(q);
        return p && q ? 0 : SS_ERR_FAIL;
    }
    c->r.exact = 0;
    double lo = fmin(pos->min[0], neg->min[0]), hi = fmax(pos->max[0], neg->max[0]);
    hists_t sp = {{NULL, NULL}, {0}, {0}, 0}, sn = sp;
    int rc = col_hists(pos, &sp, &lo, &hi);
    if (rc == 0 && (rc = col_hists(neg, &sn, &lo, &hi)) == 0)
        *auc = ss_stats_roc_auc_binned(sp.h[0], sn.h[0], CMP_HIST_BINS);
    free(sp.h[0]), free(sn.h[0]);
    return rc;
}

/* Sums of products of the pairs' binned ranks, centred on the mean rank m. */
typedef struct rscan {
    const hists_t *h;
    double *rx, *ry, m, sxy, sxx, syy;
} rscan_t;

static void rscan_fn(void *o, const double *v, size_t n) {
    rscan_t *s = o;
    const hists_t *h = s->h;
    for (size_t i = 0; i < n; i++) {
        double a = s->rx[ss_stats_bin(v[2 * i], h->lo[0], h->hi[0], CMP_HIST_BINS)] - s->m;
        double b = s->ry[ss_stats_bin(v[2 * i + 1], h->lo[1], h->hi[1], CMP_HIST_BINS)] - s->m;
        s->sxy += a * b, s->sxx += a * a, s->syy += b * b;
    }
}

/* Spearman's rank correlation of the pairs file. */
static int col_spearman(cmp_t *c, cmp_col_t *col, double *out) {
    *out = NAN;
    if (col->n < 2)
        return 0;
    if (exact(c, col->n)) {
        double *v = cmp_col_load(col);
        int rc = v ? ss_stats_spearman(v, col->n, out) : SS_ERR_FAIL;
        free(v);
        return rc;
    }
    c->r.exact = 0;
    hists_t h = {{NULL, NULL}, {0}, {0}, 0};
    rscan_t s = {.h = &h, .m = ((double)col->n + 1) / 2};
    s.rx = malloc(CMP_HIST_BINS * sizeof(double)), s.ry = malloc(CMP_HIST_BINS * sizeof(double));
    int rc = s.rx && s.ry ? col_hists(col, &h, col->min, col->max) : SS_ERR_NOMEM;
    if (rc == 0) {
        ss_stats_ranks_binned(h.h[0], CMP_HIST_BINS, s.rx);
        ss_stats_ranks_binned(h.h[1], CMP_HIST_BINS, s.ry);
        rc = cmp_col_scan(col, rscan_fn, &s);
    }
    if (rc == 0 && s.sxx > 0 && s.syy > 0)
        *out = s.sxy / sqrt(s.sxx * s.syy);
    free(h.h[0]), free(h.h[1]), free(s.rx), free(s.ry);
    return rc;
}

static void diff_hist_fn(void *o, const double *v, size_t n) {
    ss_cmp_result_t *r = o;
    for (size_t i = 0; i < n; i++)
        r->diff_hist[ss_stats_bin(v[2 * i + 1] - v[2 * i], r->diff_lo, r->diff_hi,
                                  SS_CMP_DIFF_BINS)]++;
}

static void abs_hist_fn(void *o, const double *v, size_t n) {
    ss_cmp_result_t *r = o;
    for (size_t i = 0; i < n; i++)
        r->abs_hist[ss_stats_bin(v[i], 0, r->abs_hist_hi, SS_CMP_DIFF_BINS)]++;
}

static double ratio(uint64_t a, uint64_t b) {
    return b ? (double)a / (double)b : NAN;
}

/* Latency quantiles (lat[2]) and ROC-AUC of one side from the value files col[CMP_NCOLS]. */
static int perf_figures(cmp_t *c, cmp_col_t *col, int side, double *lat, double *auc) {
    int rc = col_quantiles(c, &col[CMP_LAT + side], p50_p99, lat, 2);
    return rc < 0 ? rc : col_auc(c, &col[CMP_POS + side], &col[CMP_NEG + side], auc);
}

/* Latency quantiles, ROC-AUC, precision, recall and F1 of one side. */
static int side_figures(cmp_t *c, int side) {
    ss_cmp_side_t *sd = &c->r.side[side];
    double v[2];
    int rc;
    sd->latency_n = c->col[CMP_LAT + side].n;
    if ((rc = perf_figures(c, c->col, side, v, &sd->auc)) < 0)
        return rc;
    sd->latency_p50 = v[0], sd->latency_p99 = v[1];
    ss_stats_prf(sd->tp, sd->fp, sd->fn, NAN, &sd->precision, &sd->recall, &sd->f1);
    sd->rmse = sd->valued ? sqrt(c->sse[side] / (double)sd->valued) : NAN;
    sd->mae = sd->valued ? c->sae[side] / (double)sd->valued : NAN;
    return 0;
}

/* |difference| of each output compared: mean, p99 and max. */
static int output_figures(cmp_t *c) {
    ss_cmp_result_t *r = &c->r;
    for (int i = 0; i < r->n_outputs; i++) {
        ss_cmp_output_t *o = &r->outputs[i];
        cmp_col_t *col = &c->ocol[i];
        int rc;
        o->n = col->n;
        o->abs_mean = col->n ? c->odiff_sum[i] / (double)col->n : NAN;
        o->abs_max = col->n ? col->max[0] : NAN;
        if ((rc = col_quantiles(c, col, p99, &o->abs_p99, 1)) < 0)
            return rc;
    }
    return 0;
}

/* The figures of route k, defined as the overall ones, from the route's value files. */
static int route_figures(cmp_t *c, int k) {
    ss_cmp_route_t *rt = &c->r.routes[k];
    cmp_col_t *col = c->rcol[k];
    double v[3];
    int rc;
    rt->matched_share = ratio(rt->matched, rt->primary);
    rt->identical_share = ratio(rt->identical, rt->matched);
    rt->flip_rate = ratio(rt->flips_no_yes + rt->flips_yes_no, rt->decided);
    rt->class_flip_rate = ratio(rt->class_flips, rt->class_pairs);
    rt->diff_mean = rt->identical ? c->rdiff_sum[k] / (double)rt->identical : NAN;
    rt->abs_max = rt->identical ? col[CMP_ABSDIFF].max[0] : NAN;
    if ((rc = col_quantiles(c, &col[CMP_ABSDIFF], p50_p95_p99, v, 3)) < 0 ||
        (rc = col_spearman(c, &col[CMP_PAIRS], &rt->spearman)) < 0)
        return rc;
    rt->abs_p50 = v[0], rt->abs_p95 = v[1], rt->abs_p99 = v[2];
    for (int side = 0; side < 2; side++) {
        ss_cmp_route_side_t *sd = &rt->side[side];
        sd->latency_n = col[CMP_LAT + side].n;
        if ((rc = perf_figures(c, col, side, v, &sd->auc)) < 0)
            return rc;
        sd->latency_p50 = v[0], sd->latency_p99 = v[1];
        ss_stats_prf(sd->tp, sd->fp, sd->fn, NAN, &sd->precision, &sd->recall, &sd->f1);
    }
    return 0;
}

int cmp_figures(cmp_t *c) {
    ss_cmp_result_t *r = &c->r;
    double v[3];
    int rc;
    r->matched_share = ratio(r->matched, r->side[0].records);
    r->identical_share = ratio(r->identical, r->matched);
    r->flip_rate = ratio(r->flips_no_yes + r->flips_yes_no, r->decided);
    r->class_flip_rate = ratio(r->class_flips, r->class_pairs);
    r->diff_mean = r->identical ? c->diff_sum / (double)r->identical : NAN;
    r->abs_max = r->identical ? c->col[CMP_ABSDIFF].max[0] : NAN;
    if ((rc = col_quantiles(c, &c->col[CMP_ABSDIFF], p50_p95_p99, v, 3)) < 0 ||
        (rc = col_spearman(c, &c->col[CMP_PAIRS], &r->spearman)) < 0)
        return rc;
    r->abs_p50 = v[0], r->abs_p95 = v[1], r->abs_p99 = v[2];
    double m = r->identical && r->abs_max > 0 ? r->abs_max : 1e-3;
    r->diff_lo = -m, r->diff_hi = m, r->abs_hist_hi = m;
    if (r->identical && cmp_col_scan(&c->col[CMP_PAIRS], diff_hist_fn, r) < 0)
        return SS_ERR_FAIL;
    if (r->identical && r->kind == SS_CMP_KIND_REGRESSION &&
        cmp_col_scan(&c->col[CMP_ABSDIFF], abs_hist_fn, r) < 0)
        return SS_ERR_FAIL;
    if ((rc = output_figures(c)) < 0)
        return rc;
    for (int s = 0; s < 2; s++)
        if ((rc = side_figures(c, s)) < 0)
            return rc;
    for (int k = 0; k < r->n_routes; k++)
        if (r->routes[k].primary && (rc = route_figures(c, k)) < 0)
            return rc;
    return 0;
}
