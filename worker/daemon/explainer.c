/* explainer.c - explaining a batch's chosen records, per route, in one call per model. */
#include "explainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gates.h"

struct ss_explainer {
    size_t k, nf, max;
    double sample;
    ss_explain_when_t when;
    float *rows;            /* the chosen rows of one route, gathered */
    size_t *row_of;         /* per gathered row: its row in the batch */
    ss_contribution_t *top; /* per batch row: k contributions */
    size_t *n_top;          /* per batch row: how many (0: not explained) */
    double *bias;           /* per batch row */
    int *output;            /* per batch row: the output explained (-1: single output) */
    unsigned char *chosen;  /* per batch row: 1 when it is explained */
    long explained;
};

ss_explainer_t *ss_explainer_new(const ss_config_t *cfg, size_t max_rows, size_t nf, char *errstr,
                                 size_t errlen) {
    errstr[0] = 0;
    if (cfg->explain_top_k <= 0)
        return NULL;
    ss_explainer_t *x = calloc(1, sizeof(*x));
    if (!x)
        goto nomem;
    x->k = (size_t)cfg->explain_top_k;
    x->nf = nf;
    x->max = max_rows;
    x->sample = cfg->explain_sample;
    if (ss_explain_parse_when(cfg->explain_when, &x->when, errstr, errlen) < 0) {
        free(x);
        return NULL;
    }
    x->rows = malloc(max_rows * nf * sizeof(float) + 1);
    x->row_of = malloc(max_rows * sizeof(size_t) + 1);
    x->top = malloc(max_rows * x->k * sizeof(ss_contribution_t) + 1);
    x->n_top = calloc(max_rows ? max_rows : 1, sizeof(size_t));
    x->bias = malloc(max_rows * sizeof(double) + 1);
    x->output = malloc(max_rows * sizeof(int) + 1);
    x->chosen = malloc(max_rows + 1);
    if (x->rows && x->row_of && x->top && x->n_top && x->bias && x->output && x->chosen)
        return x;
    ss_explainer_destroy(x);
nomem:
    snprintf(errstr, errlen, "worker: out of memory for explanations");
    return NULL;
}

void ss_explainer_destroy(ss_explainer_t *x) {
    if (!x)
        return;
    free(x->rows);
    free(x->row_of);
    free(x->top);
    free(x->n_top);
    free(x->bias);
    free(x->output);
    free(x->chosen);
    free(x);
}

/* The chosen rows of `route`, explained by `m`. */
static int explain_route(ss_explainer_t *x, const ss_batch_t *b, int route, ss_model_t *m,
                         const int *cls, char *errstr, size_t errlen) {
    const unsigned char *chosen = x->chosen;
    size_t n = 0, nf = x->nf;
    for (size_t i = 0; i < b->n_msgs; i++) {
        const ss_batch_rec_t *r = &b->recs[i];
        if (r->dlq || b->u_route[r->slot] != route || !chosen[r->row])
            continue;
        memcpy(x->rows + n * nf, b->rows + (size_t)r->row * nf, nf * sizeof(float));
        x->row_of[n++] = (size_t)r->row;
    }
    if (n == 0)
        return 0;
    const float *c = NULL;
    if (ss_model_contributions(m, x->rows, n, &c, errstr, errlen) < 0)
        return SS_ERR_FAIL;
    size_t outs = m->objective.n_outputs, stride = nf + 1;
    for (size_t j = 0; j < n; j++) {
        size_t row = x->row_of[j];
        size_t g = outs <= 1 ? 0 : cls[row] >= 0 ? (size_t)cls[row] : m->objective.score_output;
        x->n_top[row] = ss_explain_top(c + (j * outs + g) * stride, x->rows + j * nf, nf,
                                       m->feature_names, x->k, x->top + row * x->k, &x->bias[row]);
        x->output[row] = outs <= 1 ? -1 : (int)g;
        x->explained++;
    }
    return 0;
}

int ss_explainer_run(ss_explainer_t *x, const ss_batch_t *b, const ss_plan_t *plan,
                     const signed char *decision, const int *cls, char *errstr, size_t errlen) {
    int routes = 0;
    x->explained = 0;
    memset(x->n_top, 0, b->n_rows * sizeof(size_t));
    memset(x->chosen, 0, b->n_rows);
    for (size_t i = 0; i < b->n_msgs; i++) {
        const ss_batch_rec_t *r = &b->recs[i];
        const rd_kafka_message_t *m = b->msgs[i];
        if (r->dlq || !ss_explain_selected(&x->when, x->sample, m->partition, m->offset,
                                           decision[r->row], cls[r->row]))
            continue;
        x->chosen[r->row] = 1;
        routes |= 1 << b->u_route[r->slot];
    }
    int rc = 0;
    if (routes & (1 << SS_ROUTE_LIVE))
        rc = explain_route(x, b, SS_ROUTE_LIVE, plan->live, cls, errstr, errlen);
    if (rc == 0 && (routes & (1 << SS_ROUTE_CANARY)) && plan->candidate)
        rc = explain_route(x, b, SS_ROUTE_CANARY, plan->candidate, cls, errstr, errlen);
    return rc;
}

void ss_explainer_fill(const ss_explainer_t *x, const ss_batch_t *b, size_t i, ss_prediction_t *p) {
    const ss_batch_rec_t *r = &b->recs[i];
    p->contributions = NULL;
    p->n_contributions = 0;
    p->contributions_output = -1;
    if (!x || r->dlq || x->n_top[r->row] == 0)
        return;
    p->contributions = x->top + (size_t)r->row * x->k;
    p->n_contributions = x->n_top[r->row];
    p->contributions_bias = x->bias[r->row];
    p->contributions_output = x->output[r->row];
}

long ss_explainer_count(const ss_explainer_t *x) {
    return x ? x->explained : 0;
}
