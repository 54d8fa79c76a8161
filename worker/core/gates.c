/* gates.c - the canary's figures over a sliding window of time slots. */
#include "gates.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PSI_FLOOR 1e-4 /* as drift.c: an empty bin stays finite */

typedef struct slot {
    int64_t epoch; /* now_ms / slot_ms when it was filled; -1 empty */
    ss_gate_tally_t t[SS_ROUTES];
} slot_t;

struct ss_gates {
    pthread_mutex_t lock;
    int64_t slot_ms;
    slot_t slots[SS_GATE_SLOTS];
};

static double lat_bounds[SS_GATE_LAT_BINS]; /* upper bound of latency bin k */
static pthread_once_t lat_once = PTHREAD_ONCE_INIT;

static void lat_init(void) {
    for (int k = 0; k < SS_GATE_LAT_BINS; k++)
        lat_bounds[k] = 0.5 * pow(1.25, k - 28);
}

const char *ss_route_name(int route) {
    return route == SS_ROUTE_CANARY ? "canary" : "live";
}

void ss_gate_tally_clear(ss_gate_tally_t *t) {
    memset(t, 0, sizeof(*t));
}

void ss_gate_tally_latency(ss_gate_tally_t *t, double s) {
    int lo = 0, hi = SS_GATE_LAT_BINS; /* the first bound at or above s; hi: above them all */
    pthread_once(&lat_once, lat_init);
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (lat_bounds[mid] >= s)
            hi = mid;
        else
            lo = mid + 1;
    }
    t->latency[lo]++;
}

static int score_bin(double v, int bins) {
    if (!(v > 0))
        return 0;
    int b = (int)(v * bins);
    return b >= bins ? bins - 1 : b;
}

void ss_gate_tally_shift(ss_gate_tally_t *t, double candidate, double live) {
    t->cand_scores[score_bin(candidate, SS_GATE_SCORE_BINS)]++;
    t->live_scores[score_bin(live, SS_GATE_SCORE_BINS)]++;
}

void ss_gate_tally_label(ss_gate_tally_t *t, double score, int label) {
    int b = score_bin(score, SS_GATE_AUC_BINS);
    if (label)
        t->pos[b]++;
    else
        t->neg[b]++;
}

ss_gates_t *ss_gates_new(long window_ms) {
    ss_gates_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    pthread_mutex_init(&g->lock, NULL);
    g->slot_ms = window_ms / SS_GATE_SLOTS > 0 ? window_ms / SS_GATE_SLOTS : 1;
    pthread_once(&lat_once, lat_init);
    ss_gates_reset(g);
    return g;
}

void ss_gates_destroy(ss_gates_t *g) {
    if (!g)
        return;
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void ss_gates_reset(ss_gates_t *g) {
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < SS_GATE_SLOTS; i++) {
        memset(&g->slots[i], 0, sizeof(g->slots[i]));
        g->slots[i].epoch = -1;
    }
    pthread_mutex_unlock(&g->lock);
}

static void add_tally(ss_gate_tally_t *to, const ss_gate_tally_t *t) {
    const long *src = (const long *)t;
    long *dst = (long *)to;
    for (size_t i = 0; i < sizeof(*t) / sizeof(long); i++)
        dst[i] += src[i];
}

void ss_gates_add(ss_gates_t *g, int route, const ss_gate_tally_t *t, int64_t now_ms) {
    int64_t epoch = now_ms / g->slot_ms;
    pthread_mutex_lock(&g->lock);
    slot_t *s = &g->slots[epoch % SS_GATE_SLOTS];
    if (s->epoch != epoch) {
        memset(s, 0, sizeof(*s));
        s->epoch = epoch;
    }
    add_tally(&s->t[route], t);
    pthread_mutex_unlock(&g->lock);
}

/* PSI of `a` against `e` (fine bins of both), over groups of consecutive fine bins that hold
 * equal shares of `e` (its deciles): every group expects a tenth, so that sparse bins in the
 * tails do not make a small sample look shifted. */
static double psi(const long *a, const long *e, int bins) {
    long na = 0, ne = 0, seen = 0;
    double ga[SS_GATE_SHIFT_GROUPS] = {0}, ge[SS_GATE_SHIFT_GROUPS] = {0};
    for (int i = 0; i < bins; i++)
        na += a[i], ne += e[i];
    if (!na || !ne)
        return NAN;
    for (int i = 0; i < bins; i++) {
        /* the group of a fine bin: where the middle of its share of e falls */
        double mid = ((double)seen + (double)e[i] / 2) / (double)ne;
        int g = (int)(mid * SS_GATE_SHIFT_GROUPS);
        g = g >= SS_GATE_SHIFT_GROUPS ? SS_GATE_SHIFT_GROUPS - 1 : g;
        ga[g] += (double)a[i];
        ge[g] += (double)e[i];
        seen += e[i];
    }
    double sum = 0;
    for (int g = 0; g < SS_GATE_SHIFT_GROUPS; g++) {
        double pa = fmax(ga[g] / (double)na, PSI_FLOOR), pe = fmax(ge[g] / (double)ne, PSI_FLOOR);
        sum += (pa - pe) * log(pa / pe);
    }
    return sum;
}

/* Mann-Whitney from binned scores: a positive above a negative counts 1, in one bin 1/2. */
static double auc(const long *pos, const long *neg, long *labelled) {
    long np = 0, nn = 0;
    double above = 0;
    for (int i = 0; i < SS_GATE_AUC_BINS; i++) {
        above += (double)pos[i] * ((double)nn + 0.5 * (double)neg[i]);
        np += pos[i];
        nn += neg[i];
    }
    *labelled = np + nn;
    return np && nn ? above / ((double)np * (double)nn) : NAN;
}

void ss_gates_figures(ss_gates_t *g, int route, int64_t now_ms, ss_gate_figures_t *out) {
    ss_gate_tally_t sum;
    ss_gate_tally_clear(&sum);
    int64_t epoch = now_ms / g->slot_ms;
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < SS_GATE_SLOTS; i++)
        if (g->slots[i].epoch >= 0 && g->slots[i].epoch > epoch - SS_GATE_SLOTS &&
            g->slots[i].epoch <= epoch)
            add_tally(&sum, &g->slots[i].t[route]);
    pthread_mutex_unlock(&g->lock);
    memset(out, 0, sizeof(*out));
    out->records = sum.records;
    out->errors = sum.errors;
    out->error_rate = sum.records ? (double)sum.errors / (double)sum.records : NAN;
    long n = 0, seen = 0;
    for (int k = 0; k <= SS_GATE_LAT_BINS; k++)
        n += sum.latency[k];
    out->latency_p95 = NAN;
    for (int k = 0; n && k <= SS_GATE_LAT_BINS; k++) {
        seen += sum.latency[k];
        if ((double)seen >= 0.95 * (double)n) {
            out->latency_p95 = k < SS_GATE_LAT_BINS ? lat_bounds[k] : INFINITY;
            break;
        }
    }
    for (int i = 0; i < SS_GATE_SCORE_BINS; i++)
        out->shift_pairs += sum.cand_scores[i];
    out->shift_psi = psi(sum.cand_scores, sum.live_scores, SS_GATE_SCORE_BINS);
    out->roc_auc = auc(sum.pos, sum.neg, &out->labelled);
}
