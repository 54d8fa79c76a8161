/* scorer.c - a batch of an offline job scored as the live worker scores it (worker.c's
 * decode -> merge -> score -> explain), with the known vectors in a store of the job's own. */
#include "scorer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "canary.h"
#include "error.h"
#include "explainer.h"
#include "features.h"
#include "gates.h"
#include "store.h"

struct ss_scorer {
    const ss_config_t *cfg;
    ss_plan_t plan; /* the model alone: every customer on the live route */
    ss_batch_t *batch;
    ss_predictor_t *pred;
    ss_store_t *store;
    ss_cache_t *cache; /* --seed-redis, else NULL */
    size_t n_out;
    double *outputs;
    int *classes;
    signed char *decisions;
    ss_explainer_t *explainer;
    /* the batch's customers not held */
    const char **m_ids;
    size_t *m_lens, *m_slot, n_miss;
    float *m_rows;
    unsigned char *m_not_hash;
};

ss_scorer_t *ss_scorer_new(const ss_config_t *cfg, ss_model_t *model, double threshold, size_t max,
                           int seed, int *why, char *errstr, size_t errlen) {
    ss_scorer_t *s = ss_zalloc(sizeof(*s), "scorer", errstr, errlen);
    size_t nf = model->n_features;
    *why = SS_ERR_NOMEM;
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->plan.live = ss_model_ref(model);
    s->plan.live_threshold = ss_model_threshold(model, threshold);
    s->plan.candidate_threshold = NAN;
    s->plan.offset = -1;
    s->plan.refcnt = 1;
    s->n_out = model->objective.n_outputs;
    s->batch = ss_batch_new(max, nf);
    s->outputs = malloc(max * s->n_out * sizeof(double) + 1);
    s->classes = malloc(max * sizeof(int) + 1);
    s->decisions = malloc(max + 1);
    s->m_ids = malloc(max * sizeof(*s->m_ids));
    s->m_lens = malloc(max * sizeof(size_t));
    s->m_slot = malloc(max * sizeof(size_t));
    s->m_rows = malloc(max * nf * sizeof(float) + 1);
    s->m_not_hash = malloc(max + 1);
    s->store = ss_store_new(nf, (size_t)cfg->state_store_max_customers, NULL, NULL);
    if (!s->batch || !s->outputs || !s->classes || !s->decisions || !s->m_ids || !s->m_lens ||
        !s->m_slot || !s->m_rows || !s->m_not_hash || !s->store) {
        snprintf(errstr, errlen, "scorer: out of memory for batch buffers");
        goto fail;
    }
    s->explainer = ss_explainer_new(cfg, max, nf, errstr, errlen);
    if ((!s->explainer && errstr[0]) || !(s->pred = ss_predictor_new(errstr, errlen)))
        goto fail;
    if (seed && !(s->cache = ss_cache_new(cfg, model->feature_names, nf, why, errstr, errlen)))
        goto fail;
    return s;
fail:
    ss_scorer_destroy(s);
    return NULL;
}

void ss_scorer_destroy(ss_scorer_t *s) {
    if (!s)
        return;
    ss_model_unref(s->plan.live);
    ss_batch_destroy(s->batch);
    ss_predictor_destroy(s->pred);
    ss_store_destroy(s->store);
    ss_cache_destroy(s->cache);
    ss_explainer_destroy(s->explainer);
    free(s->outputs);
    free(s->classes);
    free(s->decisions);
    free(s->m_ids);
    free(s->m_lens);
    free(s->m_slot);
    free(s->m_rows);
    free(s->m_not_hash);
    free(s);
}

ss_batch_t *ss_scorer_batch(ss_scorer_t *s) {
    return s->batch;
}

/* Every customer's known vector: the store's, else Redis' (seeded), else nothing. */
static int known(ss_scorer_t *s, char *err, size_t errlen) {
    ss_batch_t *b = s->batch;
    size_t nf = b->nf;
    s->n_miss = 0;
    ss_batch_clear_state(b);
    memset(b->u_dead, 0, b->n_u);
    memset(b->u_unknown, 0, b->n_u);
    for (size_t u = 0; u < b->n_u; u++) {
        b->u_route[u] = SS_ROUTE_LIVE;
        const float *held = ss_store_get(s->store, b->u_ids[u], b->u_lens[u]);
        if (held) {
            memcpy(b->state + u * nf, held, nf * sizeof(float));
        } else if (s->cache) {
            s->m_ids[s->n_miss] = b->u_ids[u];
            s->m_lens[s->n_miss] = b->u_lens[u];
            s->m_slot[s->n_miss++] = u;
        }
    }
    if (s->n_miss == 0)
        return 0;
    int rc = ss_cache_read(s->cache, s->m_ids, s->m_lens, s->n_miss, s->m_rows, s->m_not_hash, err,
                           errlen);
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < s->n_miss; k++) {
        size_t u = s->m_slot[k];
        memcpy(b->state + u * nf, s->m_rows + k * nf, nf * sizeof(float));
        b->u_dead[u] = s->m_not_hash[k];
    }
    ss_batch_dead_letter_not_hash(b, s->cfg->redis_key_prefix);
    return 0;
}

/* Score every row; a non-finite score dead-letters its record (a customer's first of the
 * pass) and the batch is merged again without it, as worker.c does. */
static int score(ss_scorer_t *s, char *err, size_t errlen) {
    ss_batch_t *b = s->batch;
    for (;;) {
        if (b->n_rows == 0)
            return 0;
        if (ss_model_predict_outputs(s->plan.live, s->pred, b->rows, b->n_rows, b->scores,
                                     s->n_out > 1 ? s->outputs : NULL, s->classes, err, errlen) < 0)
            return SS_ERR_FAIL;
        if (ss_batch_dead_letter_non_finite(b) == 0)
            return 0;
        ss_batch_remerge(b);
    }
}

int ss_scorer_run(ss_scorer_t *s, char *err, size_t errlen) {
    ss_batch_t *b = s->batch;
    int rc = known(s, err, errlen);
    if (rc < 0)
        return rc;
    ss_batch_merge(b);
    if ((rc = score(s, err, errlen)) < 0)
        return rc;
    double t = s->plan.live_threshold;
    for (size_t i = 0; i < b->n_msgs; i++) {
        const ss_batch_rec_t *r = &b->recs[i];
        if (!r->dlq)
            s->decisions[r->row] = isnan(t) ? -1 : b->scores[r->row] >= t;
    }
    if (s->explainer && b->n_rows &&
        ss_explainer_run(s->explainer, b, &s->plan, s->decisions, s->classes, err, errlen) < 0)
        return SS_ERR_FAIL;
    /* the merged vectors are the customers' known ones from now on */
    for (size_t u = 0; u < b->n_u; u++) {
        if (b->u_dead[u])
            continue;
        if (ss_store_put(s->store, b->u_ids[u], b->u_lens[u], b->u_part[u], b->state + u * b->nf,
                         NULL) < 0) {
            snprintf(err, errlen, "scorer: out of memory for the feature store");
            return SS_ERR_NOMEM;
        }
    }
    return 0;
}

void ss_scorer_fill(ss_scorer_t *s, size_t i, ss_prediction_t *p) {
    const ss_batch_t *b = s->batch;
    const ss_batch_rec_t *r = &b->recs[i];
    p->event_id = b->arena + r->evid_off;
    p->event_id_len = r->evid_len;
    p->customer_id = b->arena + r->cust_off;
    p->customer_id_len = r->cust_len;
    p->score = b->scores[r->row];
    p->decision = s->decisions[r->row];
    p->threshold = s->plan.live_threshold;
    p->predicted_class = s->classes[r->row];
    p->outputs = s->n_out > 1 ? s->outputs + (size_t)r->row * s->n_out : NULL;
    p->n_outputs = s->n_out > 1 ? s->n_out : 0;
    p->model_name = s->plan.live->name;
    p->model_version = s->plan.live->version;
    p->route = "live";
    p->degraded = 0;
    p->event_time = r->event_time;
    ss_explainer_fill(s->explainer, b, i, p);
    ss_features_hash_hex(ss_features_hash(b->rows + (size_t)r->row * b->nf, b->nf),
                         p->feature_hash);
}

size_t ss_scorer_customers(const ss_scorer_t *s) {
    return ss_store_stats(s->store).customers;
}

long ss_scorer_evicted(const ss_scorer_t *s) {
    return ss_store_stats(s->store).evictions;
}
