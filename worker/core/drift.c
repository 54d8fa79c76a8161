/* drift.c - population stability index of features and score over a sliding window.
 * Each record in the window is kept as one bin index per feature plus the score's, so a
 * record leaving the window is subtracted exactly; PSI = sum((a - e) * ln(a / e)) over the
 * bins, with both shares floored at 1e-4 so that an empty bin stays finite. */
#include "drift.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define PSI_FLOOR 1e-4
#define MAX_BINS 250

typedef struct dist {
    double *edges;    /* interior edges, ascending */
    size_t n_edges;   /* bins: n_edges + 1 values, + 1 missing (features only) */
    double *expected; /* per bin, summing to 1 */
    long *count;      /* per bin, over the window */
    int has_missing;  /* a last bin for NaN */
    int above;        /* PSI above the threshold at the last check */
} dist_t;

struct ss_drift {
    pthread_mutex_t lock;
    size_t nf;     /* features; dists[nf] is the score */
    dist_t *dists; /* nf + 1; edges NULL when the card has no baseline for it */
    char **names;  /* nf + 1, "score" last */
    long window;
    double threshold;
    uint8_t *ring; /* window * (nf + 1) bin indices */
    long next, filled;
};

static int load_dist(dist_t *d, const json_t *b, int has_missing, const char *what, char *errstr,
                     size_t errlen) {
    const json_t *edges = json_object_get(b, "edges"), *props = json_object_get(b, "proportions");
    size_t ne = json_array_size(edges), np = json_array_size(props);
    if (!json_is_array(edges) || !json_is_array(props) || np != ne + 1 || ne + 2 > MAX_BINS) {
        snprintf(errstr, errlen,
                 "model card: baseline of %s: edges and proportions (one more) expected", what);
        return SS_ERR_CONFIG;
    }
    double missing = 0;
    if (has_missing) {
        const json_t *mr = json_object_get(b, "missing_rate");
        missing = json_is_number(mr) ? json_number_value(mr) : 0;
        if (!(missing >= 0 && missing <= 1)) {
            snprintf(errstr, errlen, "model card: baseline of %s: missing_rate not in 0..1", what);
            return SS_ERR_CONFIG;
        }
    }
    size_t bins = ne + 1 + (has_missing ? 1 : 0);
    d->edges = calloc(ne ? ne : 1, sizeof(double));
    d->expected = calloc(bins, sizeof(double));
    d->count = calloc(bins, sizeof(long));
    if (!d->edges || !d->expected || !d->count) {
        snprintf(errstr, errlen, "drift: out of memory");
        return SS_ERR_NOMEM;
    }
    for (size_t i = 0; i < ne; i++) {
        const json_t *e = json_array_get(edges, i);
        if (!json_is_number(e) || (i && json_number_value(e) < d->edges[i - 1])) {
            snprintf(errstr, errlen, "model card: baseline of %s: edges must be ascending numbers",
                     what);
            return SS_ERR_CONFIG;
        }
        d->edges[i] = json_number_value(e);
    }
    for (size_t i = 0; i < np; i++) {
        const json_t *p = json_array_get(props, i);
        if (!json_is_number(p) || !(json_number_value(p) >= 0 && json_number_value(p) <= 1)) {
            snprintf(errstr, errlen, "model card: baseline of %s: proportions must be in 0..1",
                     what);
            return SS_ERR_CONFIG;
        }
        d->expected[i] = json_number_value(p) * (1 - missing);
    }
    if (has_missing)
        d->expected[ne + 1] = missing;
    d->n_edges = ne;
    d->has_missing = has_missing;
    return 0;
}

static size_t n_bins(const dist_t *d) {
    return d->n_edges + 1 + (size_t)d->has_missing;
}

/* The bin of v: the number of edges <= v (numpy.searchsorted(edges, v, 'right')), or the
 * missing bin for NaN. */
static uint8_t bin_of(const dist_t *d, double v) {
    if (isnan(v))
        return (uint8_t)(d->has_missing ? d->n_edges + 1 : 0);
    size_t lo = 0, hi = d->n_edges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->edges[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint8_t)lo;
}

static double psi_of(const dist_t *d, long total) {
    if (!d->edges || total <= 0)
        return NAN;
    double psi = 0;
    for (size_t i = 0; i < n_bins(d); i++) {
        double a = (double)d->count[i] / (double)total, e = d->expected[i];
        if (a < PSI_FLOOR)
            a = PSI_FLOOR;
        if (e < PSI_FLOOR)
            e = PSI_FLOOR;
        psi += (a - e) * log(a / e);
    }
    return psi;
}

void ss_drift_destroy(ss_drift_t *d) {
    if (!d)
        return;
    for (size_t j = 0; j <= d->nf; j++) {
        if (d->dists) {
            free(d->dists[j].edges);
            free(d->dists[j].expected);
            free(d->dists[j].count);
        }
        if (d->names)
            free(d->names[j]);
    }
    free(d->dists);
    free(d->names);
    free(d->ring);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

int ss_drift_new(const json_t *card, char *const *feature_names, size_t nf, long window,
                 double threshold, ss_drift_t **out, char *errstr, size_t errlen) {
    const json_t *base = json_object_get(card, "baseline");
    const json_t *score = json_object_get(card, "score_baseline");
    *out = NULL;
    if (!json_is_object(base) && !json_is_object(score))
        return 0;
    int rc = SS_ERR_NOMEM;
    ss_drift_t *d = calloc(1, sizeof(*d));
    if (!d)
        goto oom;
    pthread_mutex_init(&d->lock, NULL);
    d->nf = nf;
    d->window = window;
    d->threshold = threshold;
    d->dists = calloc(nf + 1, sizeof(dist_t));
    d->names = calloc(nf + 1, sizeof(char *));
    d->ring = malloc((size_t)window * (nf + 1));
    if (!d->dists || !d->names || !d->ring)
        goto oom;
    for (size_t j = 0; j <= nf; j++) {
        const char *name = j < nf ? feature_names[j] : "score";
        const json_t *b = j < nf ? json_object_get(base, name) : score;
        if (!(d->names[j] = strdup(name)))
            goto oom;
        /* no baseline for it: nothing measured */
        if (json_is_object(b) &&
            (rc = load_dist(&d->dists[j], b, j < nf, name, errstr, errlen)) < 0)
            goto fail;
    }
    *out = d;
    return 0;
oom:
    snprintf(errstr, errlen, "drift: out of memory (drift.window %ld)", window);
    rc = SS_ERR_NOMEM;
fail:
    ss_drift_destroy(d);
    return rc;
}

void ss_drift_observe(ss_drift_t *d, const float *rows, const double *scores, size_t n) {
    if (!d)
        return;
    size_t w = d->nf + 1;
    pthread_mutex_lock(&d->lock);
    for (size_t r = 0; r < n; r++) {
        uint8_t *slot = d->ring + (size_t)d->next * w;
        int full = d->filled == d->window;
        for (size_t j = 0; j < w; j++) {
            dist_t *dist = &d->dists[j];
            if (!dist->edges)
                continue;
            if (full)
                dist->count[slot[j]]--;
            slot[j] = bin_of(dist, j < d->nf ? (double)rows[r * d->nf + j] : scores[r]);
            dist->count[slot[j]]++;
        }
        d->next = (d->next + 1) % d->window;
        if (!full)
            d->filled++;
    }
    if (d->filled == d->window) {
        for (size_t j = 0; j < w; j++) {
            double psi = psi_of(&d->dists[j], d->filled);
            int above = psi > d->threshold;
            if (isnan(psi) || above == d->dists[j].above)
                continue;
            d->dists[j].above = above;
            ss_log(above ? SS_LOG_WARN : SS_LOG_INFO,
                   SS_FIELDS(SSF_STR("feature", d->names[j]), SSF_REAL("psi", psi)),
                   "drift: %s %s the threshold %.3g over the last %ld records", d->names[j],
                   above ? "above" : "back below", d->threshold, d->window);
        }
    }
    pthread_mutex_unlock(&d->lock);
}

double ss_drift_psi(ss_drift_t *d, size_t j) {
    if (!d || j > d->nf)
        return NAN;
    pthread_mutex_lock(&d->lock);
    double psi = d->filled == d->window ? psi_of(&d->dists[j], d->filled) : NAN;
    pthread_mutex_unlock(&d->lock);
    return psi;
}

void ss_drift_render(ss_drift_t *d, ss_buf_t *b) {
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    ss_buf_printf(b,
                  "# HELP streamscore_drift_window_records Records in the drift window "
                  "(PSI is exported once it is full).\n"
                  "# TYPE streamscore_drift_window_records gauge\n"
                  "streamscore_drift_window_records %ld\n",
                  d->filled);
    if (d->filled == d->window) {
        ss_buf_printf(b, "# HELP streamscore_feature_psi Population stability index of a "
                         "feature over the drift window, against the training baseline.\n"
                         "# TYPE streamscore_feature_psi gauge\n");
        for (size_t j = 0; j < d->nf; j++) {
            double psi = psi_of(&d->dists[j], d->filled);
            if (isnan(psi))
                continue;
            ss_buf_printf(b, "streamscore_feature_psi{feature=\"");
            ss_buf_label(b, d->names[j]);
            ss_buf_printf(b, "\"} %.6f\n", psi);
        }
        const dist_t *sd = &d->dists[d->nf];
        if (sd->edges) {
            ss_buf_printf(b, "# HELP streamscore_score_window_share Share of the drift window's "
                             "scores in each bin (upper bound le), beside the training share.\n"
                             "# TYPE streamscore_score_window_share gauge\n");
            for (size_t i = 0; i <= sd->n_edges; i++) {
                char le[32];
                if (i < sd->n_edges)
                    snprintf(le, sizeof(le), "%g", sd->edges[i]);
                else
                    snprintf(le, sizeof(le), "+Inf");
                ss_buf_printf(b,
                              "streamscore_score_window_share{le=\"%s\",set=\"window\"} %.6f\n"
                              "streamscore_score_window_share{le=\"%s\",set=\"training\"} %.6f\n",
                              le, (double)sd->count[i] / (double)d->filled, le, sd->expected[i]);
            }
        }
        double psi = psi_of(sd, d->filled);
        if (!isnan(psi))
            ss_buf_printf(b,
                          "# HELP streamscore_score_psi Population stability index of the "
                          "score over the drift window, against the training scores.\n"
                          "# TYPE streamscore_score_psi gauge\n"
                          "streamscore_score_psi %.6f\n",
                          psi);
    }
    pthread_mutex_unlock(&d->lock);
}
