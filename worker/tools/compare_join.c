/* compare_join.c - the join of `compare`: one bucket at a time, its records placed in an
 * open-addressing table by join key (a re-delivery: the copy read last wins), then every
 * distinct record counted on its side and every pair on both, overall and in the route of its
 * primary record; values the figures need go to the value files. A full bucket (262144
 * records) takes about 29 MB with its table, plus 8 bytes per spilled output.
 *
 * Before the join, what the records read hold decides the kind of comparison: multi-class
 * when some carry a predicted class, binary when some carry a decision (or nothing was read),
 * else regression (values only: a regression, ranking or survival model). Decision flips
 * count the pairs with a decision on both sides, class flips those with a class on both; a
 * regression's score distributions span the scores read instead of [0, 1]. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare_int.h"
#include "error.h"
#include "stats.h"

/* One key of the bucket: the index of its record on each side, -1 for none. */
typedef struct slot {
    int32_t i[2];
} slot_t;

static int decided(const cmp_rec_t *r) {
    return r->decision != CMP_NO_DECISION;
}

static void side_stats(cmp_t *c, const cmp_rec_t *r) {
    ss_cmp_side_t *sd = &c->r.side[r->side];
    sd->records++;
    if (r->model < SS_CMP_MAX_MODELS)
        sd->models[r->model].records++;
    else
        sd->other_models++;
    sd->dist_below += r->score < c->r.dist_lo;
    sd->dist_above += r->score > c->r.dist_hi;
    sd->dist[ss_stats_bin(r->score, c->r.dist_lo, c->r.dist_hi, SS_CMP_DIST_BINS)]++;
    if (r->event_time != CMP_NO_TIME && r->scored_at != CMP_NO_TIME)
        cmp_col_push(&c->col[CMP_LAT + r->side], (double)(r->scored_at - r->event_time), 0);
    if (r->label >= 0) {
        int yes = r->decision == 1, no = r->decision == 0;
        sd->labeled++;
        sd->positives += (uint64_t)r->label;
        sd->tp += r->label && yes, sd->fp += !r->label && yes;
        sd->fn += r->label && no, sd->tn += !r->label && no;
        cmp_col_push(&c->col[(r->label ? CMP_POS : CMP_NEG) + r->side], r->score, 0);
    }
    if (c->r.kind == SS_CMP_KIND_REGRESSION && !isnan(r->value)) {
        double e = r->score - r->value;
        sd->valued++;
        c->sse[r->side] += e * e, c->sae[r->side] += fabs(e);
    }
    if (r->side == SS_CMP_PRIMARY)
        c->r.routes[r->route].primary++;
}

/* A pair in the route of its primary record: the pair figures as overall, and each side's
 * latency and labels over the route's matched pairs. */
static void route_pair_stats(cmp_t *c, const cmp_rec_t *p, const cmp_rec_t *s) {
    ss_cmp_route_t *rt = &c->r.routes[p->route];
    cmp_col_t *col = c->rcol[p->route];
    const cmp_rec_t *pair[2] = {p, s};
    rt->matched++;
    for (int side = 0; side < 2; side++) {
        const cmp_rec_t *x = pair[side];
        ss_cmp_route_side_t *sd = &rt->side[side];
        if (x->event_time != CMP_NO_TIME && x->scored_at != CMP_NO_TIME)
            cmp_col_push(&col[CMP_LAT + side], (double)(x->scored_at - x->event_time), 0);
        if (x->label >= 0) {
            int yes = x->decision == 1, no = x->decision == 0;
            sd->labeled++;
            sd->positives += (uint64_t)x->label;
            sd->tp += x->label && yes, sd->fp += !x->label && yes;
            sd->fn += x->label && no, sd->tn += !x->label && no;
            cmp_col_push(&col[(x->label ? CMP_POS : CMP_NEG) + side], x->score, 0);
        }
    }
    if (p->fhash != s->fhash)
        return;
    rt->identical++;
    double d = s->score - p->score;
    c->rdiff_sum[p->route] += d;
    cmp_col_push(&col[CMP_PAIRS], p->score, s->score);
    cmp_col_push(&col[CMP_ABSDIFF], fabs(d), 0);
    if (decided(p) && decided(s)) {
        rt->decided++;
        rt->flips_no_yes += !p->decision && s->decision;
        rt->flips_yes_no += p->decision && !s->decision;
    }
    if (p->cls >= 0 && s->cls >= 0) {
        rt->class_pairs++;
        rt->class_flips += p->cls != s->cls;
    }
}

/* The outputs of an identical-feature pair, each output both have. */
static void output_stats(cmp_t *c, const cmp_rec_t *p, const cmp_rec_t *s, const double *outs) {
    ss_cmp_result_t *r = &c->r;
    if (!p->n_out || !s->n_out)
        return;
    r->output_pairs++;
    r->output_mismatch += p->n_out != s->n_out;
    size_t n = cmp_rec_spilled(p) < cmp_rec_spilled(s) ? cmp_rec_spilled(p) : cmp_rec_spilled(s);
    for (size_t i = 0; i < n && i < (size_t)r->n_outputs; i++) {
        double d = fabs(outs[s->out_at + i] - outs[p->out_at + i]);
        c->odiff_sum[i] += d;
        cmp_col_push(&c->ocol[i], d, 0);
    }
}

static void pair_stats(cmp_t *c, const cmp_rec_t *p, const cmp_rec_t *s, const double *outs) {
    ss_cmp_result_t *r = &c->r;
    r->matched++;
    if (p->fhash != s->fhash)
        return;
    uint64_t k = ++r->identical;
    double d = s->score - p->score;
    c->diff_sum += d;
    cmp_col_push(&c->col[CMP_PAIRS], p->score, s->score);
    cmp_col_push(&c->col[CMP_ABSDIFF], fabs(d), 0);
    if (decided(p) && decided(s)) {
        r->decided++;
        r->flips_no_yes += !p->decision && s->decision;
        r->flips_yes_no += p->decision && !s->decision;
    }
    if (p->cls >= 0 && s->cls >= 0) {
        int last = r->n_classes - 1;
        r->class_pairs++;
        r->class_flips += p->cls != s->cls;
        r->class_matrix[p->cls < last ? p->cls : last][s->cls < last ? s->cls : last]++;
    }
    output_stats(c, p, s, outs);
    /* reservoir sample for the scatter plot */
    c->rng ^= c->rng << 13, c->rng ^= c->rng >> 7, c->rng ^= c->rng << 17;
    uint64_t j = k <= SS_CMP_SAMPLE_MAX ? k - 1 : c->rng % k;
    if (j < SS_CMP_SAMPLE_MAX) {
        r->sample[j][0] = (float)p->score, r->sample[j][1] = (float)s->score;
        if (k <= SS_CMP_SAMPLE_MAX)
            r->n_sample = (int)k;
    }
}

/* Place the n records in the table (cap slots, a power of two at least 2n). */
static void place(cmp_t *c, const cmp_rec_t *recs, size_t n, slot_t *tab, size_t cap) {
    memset(tab, 0xff, cap * sizeof(slot_t));
    for (size_t i = 0; i < n; i++) {
        const cmp_rec_t *r = &recs[i];
        for (size_t h = cmp_rec_hash(r) & (cap - 1);; h = (h + 1) & (cap - 1)) {
            slot_t *sl = &tab[h];
            int32_t *cur = &sl->i[r->side];
            if (sl->i[0] >= 0 || sl->i[1] >= 0) {
                if (!cmp_same_key(&recs[sl->i[0] >= 0 ? sl->i[0] : sl->i[1]], r))
                    continue;
                if (*cur >= 0) { /* a re-delivery: the latest read wins */
                    c->r.side[r->side].duplicates++;
                    if (recs[*cur].seq > r->seq)
                        break;
                }
            }
            *cur = (int32_t)i;
            break;
        }
    }
}

static void count(cmp_t *c, const cmp_rec_t *recs, const double *outs, const slot_t *tab,
                  size_t cap) {
    for (size_t h = 0; h < cap; h++) {
        const slot_t *sl = &tab[h];
        for (int side = 0; side < 2; side++)
            if (sl->i[side] >= 0)
                side_stats(c, &recs[sl->i[side]]);
        if (sl->i[0] >= 0 && sl->i[1] >= 0) {
            pair_stats(c, &recs[sl->i[0]], &recs[sl->i[1]], outs);
            route_pair_stats(c, &recs[sl->i[0]], &recs[sl->i[1]]);
        } else if (sl->i[0] >= 0) {
            c->r.primary_only++;
            c->r.routes[recs[sl->i[0]].route].primary_only++;
        } else if (sl->i[1] >= 0)
            c->r.shadow_only++;
    }
}

/* The kind of comparison, the distributions' range, the outputs and classes compared, and
 * the value file of each output. */
static int prepare(cmp_t *c, char *errstr, size_t errlen) {
    ss_cmp_result_t *r = &c->r;
    char name[32];
    int read = r->side[0].read + r->side[1].read > 0;
    r->kind = c->with_class               ? SS_CMP_KIND_MULTICLASS
              : c->with_decision || !read ? SS_CMP_KIND_BINARY
                                          : SS_CMP_KIND_REGRESSION;
    r->dist_lo = 0, r->dist_hi = 1;
    if (r->kind == SS_CMP_KIND_REGRESSION) {
        r->dist_lo = c->score_min;
        r->dist_hi = c->score_max > c->score_min ? c->score_max : c->score_min + 1;
    }
    if (c->with_class) {
        r->classes_beyond = c->max_class >= SS_CMP_MAX_CLASSES;
        r->n_classes = r->classes_beyond ? SS_CMP_MAX_CLASSES : c->max_class + 1;
    }
    int n = c->max_out[0] < c->max_out[1] ? c->max_out[0] : c->max_out[1];
    r->n_outputs = n < SS_CMP_MAX_OUTPUTS ? n : SS_CMP_MAX_OUTPUTS;
    r->side[0].n_outputs = c->max_out[0], r->side[1].n_outputs = c->max_out[1];
    for (int i = 0; i < r->n_outputs; i++) {
        snprintf(name, sizeof(name), "output%d-absdiff", i);
        if (cmp_col_open(&c->ocol[i], c->tmp, name, 1) < 0) {
            snprintf(errstr, errlen, "cannot set up spill files in '%s': %s", c->tmp,
                     strerror(errno));
            return SS_ERR_FAIL;
        }
    }
    return 0;
}

int cmp_join(cmp_t *c, char *errstr, size_t errlen) {
    cmp_spill_t *s = &c->spill;
    cmp_rec_t *recs = NULL;
    double *outs = NULL;
    slot_t *tab = NULL;
    size_t rcap = 0, ocap = 0, tcap = 0;
    int rc = prepare(c, errstr, errlen);
    if (rc == 0)
        rc = cmp_spill_flush_all(s, errstr, errlen);
    for (int b = 0; rc == 0 && b < s->nb; b++) {
        size_t n = (size_t)s->count[b], cap = 16;
        if (!n || (rc = cmp_spill_load(s, b, &recs, &rcap, &outs, &ocap, errstr, errlen)) < 0)
            continue;
        c->r.max_bucket = n > c->r.max_bucket ? n : c->r.max_bucket;
        while (cap < 2 * n)
            cap *= 2;
        if (cap > tcap) {
            free(tab);
            tcap = 0;
            if (!(tab = malloc(cap * sizeof(slot_t)))) {
                snprintf(errstr, errlen, "out of memory for a bucket of %zu records", n);
                rc = SS_ERR_NOMEM;
                continue;
            }
            tcap = cap;
        }
        place(c, recs, n, tab, cap);
        count(c, recs, outs, tab, cap);
    }
    free(recs);
    free(outs);
    free(tab);
    return rc;
}
