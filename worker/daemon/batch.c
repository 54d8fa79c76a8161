/* batch.c - a worker thread's micro-batch: records, the customers they touch and their
 * merged rows, in buffers allocated once and reused. */
#include "batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "features.h"
#include "hash.h"

ss_batch_t *ss_batch_new(size_t max, size_t nf) {
    ss_batch_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    size_t tsize = 1;
    while (tsize < 2 * max)
        tsize <<= 1;
    b->max = max;
    b->nf = nf;
    b->table_mask = tsize - 1;
    b->msgs = calloc(max, sizeof(*b->msgs));
    b->recs = calloc(max, sizeof(*b->recs));
    b->ev_feat = malloc(max * nf * sizeof(float) + 1);
    b->rows = malloc(max * nf * sizeof(float) + 1);
    b->state = malloc(max * nf * sizeof(float) + 1);
    b->state0 = malloc(max * nf * sizeof(float) + 1);
    b->changed = malloc(max * (nf ? nf : 1));
    b->scores = malloc(max * sizeof(double));
    b->u_ids = calloc(max, sizeof(*b->u_ids));
    b->u_lens = calloc(max, sizeof(size_t));
    b->u_off = calloc(max, sizeof(size_t));
    b->u_part = calloc(max, sizeof(int32_t));
    b->u_unknown = calloc(max, 1);
    b->u_dead = calloc(max, 1);
    b->u_route = calloc(max, 1);
    b->u_flag = calloc(max, 1);
    b->table = malloc(tsize * sizeof(int));
    b->table_used = calloc(max, sizeof(size_t));
    b->arena_cap = max * 96;
    b->arena = malloc(b->arena_cap);
    if (!b->msgs || !b->recs || !b->ev_feat || !b->rows || !b->state || !b->state0 || !b->changed ||
        !b->scores || !b->u_ids || !b->u_lens || !b->u_off || !b->u_part || !b->u_unknown ||
        !b->u_flag || !b->u_dead || !b->u_route || !b->table || !b->table_used || !b->arena) {
        ss_batch_destroy(b);
        return NULL;
    }
    memset(b->table, 0xff, tsize * sizeof(int));
    return b;
}

void ss_batch_destroy(ss_batch_t *b) {
    if (!b)
        return;
    void *bufs[] = {b->msgs,    b->recs,      b->ev_feat, b->rows,       b->state,
                    b->changed, b->scores,    b->u_ids,   b->u_lens,     b->u_off,
                    b->u_part,  b->u_unknown, b->table,   b->table_used, b->arena,
                    b->state0,  b->u_flag,    b->u_dead,  b->u_route,    b};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        free(bufs[i]);
}

void ss_batch_reset(ss_batch_t *b) {
    b->arena_len = 0;
    for (size_t s = 0; s < b->n_u; s++)
        b->table[b->table_used[s]] = -1;
    b->n_u = 0;
    b->n_rows = 0;
    for (size_t i = 0; i < b->n_msgs; i++) {
        memset(&b->recs[i], 0, sizeof(b->recs[i]));
        b->recs[i].slot = -1;
    }
}

static void merge(ss_batch_t *b);

/* Copy bytes into the arena; returns the offset or (size_t)-1. */
static size_t arena_put(ss_batch_t *b, const char *s, size_t len) {
    if (b->arena_len + len + 1 > b->arena_cap) {
        size_t cap = (b->arena_len + len + 1) * 2;
        char *g = realloc(b->arena, cap);
        if (!g)
            return (size_t)-1;
        b->arena = g;
        b->arena_cap = cap;
        for (size_t u = 0; u < b->n_u; u++) /* ids point into the arena */
            b->u_ids[u] = b->arena + b->u_off[u];
    }
    size_t off = b->arena_len;
    if (len)
        memcpy(b->arena + off, s, len);
    b->arena[off + len] = '\0';
    b->arena_len += len + 1;
    return off;
}

static int slot_of(ss_batch_t *b, size_t off, size_t len) {
    uint64_t h = ss_fnv1a(SS_FNV1A_INIT, b->arena + off, len);
    for (size_t t = h & b->table_mask;; t = (t + 1) & b->table_mask) {
        int s = b->table[t];
        if (s < 0) {
            s = (int)b->n_u++;
            b->table[t] = s;
            b->table_used[s] = t;
            b->u_off[s] = off;
            b->u_lens[s] = len;
            b->u_ids[s] = b->arena + off;
            b->u_unknown[s] = 0;
            b->u_dead[s] = 0;
            b->u_route[s] = 0;
            memset(b->changed + (size_t)s * b->nf, 0, b->nf);
            return s;
        }
        if (b->u_lens[s] == len && memcmp(b->arena + b->u_off[s], b->arena + off, len) == 0)
            return s;
    }
}

int ss_batch_add(ss_batch_t *b, size_t i, const ss_event_t *ev, int64_t fallback_time) {
    ss_batch_rec_t *r = &b->recs[i];
    r->cust_off = arena_put(b, ev->customer_id, ev->customer_id_len);
    r->cust_len = ev->customer_id_len;
    r->evid_off = arena_put(b, ev->event_id ? ev->event_id : "", ev->event_id_len);
    r->evid_len = ev->event_id_len;
    if (r->cust_off == (size_t)-1 || r->evid_off == (size_t)-1)
        return SS_ERR_NOMEM;
    r->event_time = ev->event_time >= 0 ? ev->event_time : fallback_time;
    r->slot = slot_of(b, r->cust_off, r->cust_len);
    return 0;
}

void ss_batch_dead_letter(ss_batch_t *b, size_t i, const char *stage, const char *reason,
                          const char *detail) {
    ss_batch_rec_t *r = &b->recs[i];
    r->dlq = 1;
    r->stage = stage;
    r->reason = reason;
    r->err_off = arena_put(b, detail, strlen(detail));
}

const char *ss_batch_detail(const ss_batch_t *b, size_t i) {
    const ss_batch_rec_t *r = &b->recs[i];
    return r->err_off == (size_t)-1 ? r->reason : b->arena + r->err_off;
}

void ss_batch_clear_state(ss_batch_t *b) {
    for (size_t i = 0; i < b->n_u * b->nf; i++)
        b->state[i] = NAN;
}

void ss_batch_merge(ss_batch_t *b) {
    memcpy(b->state0, b->state, b->n_u * b->nf * sizeof(float));
    merge(b);
}

void ss_batch_remerge(ss_batch_t *b) {
    memcpy(b->state, b->state0, b->n_u * b->nf * sizeof(float));
    memset(b->changed, 0, b->n_u * b->nf);
    merge(b);
}

static void merge(ss_batch_t *b) {
    size_t nf = b->nf, k = 0;
    for (size_t i = 0; i < b->n_msgs; i++) {
        ss_batch_rec_t *r = &b->recs[i];
        if (r->dlq)
            continue;
        float *st = b->state + (size_t)r->slot * nf;
        const float *ef = b->ev_feat + i * nf;
        unsigned char *ch = b->changed + (size_t)r->slot * nf;
        for (size_t f = 0; f < nf; f++)
            ch[f] |= !isnan(ef[f]);
        ss_features_merge(st, ef, nf);
        memcpy(b->rows + k * nf, st, nf * sizeof(float));
        r->row = (int)k++;
    }
    b->n_rows = k;
}

size_t ss_batch_dead_letter_non_finite(ss_batch_t *b) {
    size_t failed = 0;
    memset(b->u_flag, 0, b->n_u);
    for (size_t i = 0; i < b->n_msgs; i++) {
        ss_batch_rec_t *r = &b->recs[i];
        if (!r->dlq && !isfinite(b->scores[r->row]) && !b->u_flag[r->slot]) {
            b->u_flag[r->slot] = 1;
            ss_batch_dead_letter(b, i, "score", "non_finite_score",
                                 "the model returned a non-finite score");
            failed++;
        }
    }
    return failed;
}

void ss_batch_dead_letter_not_hash(ss_batch_t *b, const char *prefix) {
    char detail[512];
    for (size_t i = 0; i < b->n_msgs; i++) {
        const ss_batch_rec_t *r = &b->recs[i];
        if (r->dlq || r->slot < 0 || !b->u_dead[r->slot])
            continue;
        size_t u = (size_t)r->slot; /* the id read again: a dead letter may move the arena */
        snprintf(detail, sizeof(detail),
                 "redis key %s%.*s is not a hash (WRONGTYPE): the customer's features can be "
                 "neither read nor written",
                 prefix, (int)b->u_lens[u], b->u_ids[u]);
        ss_batch_dead_letter(b, i, "score", "feature_key_wrong_type", detail);
    }
}
