/* forest.c - XGBoost trees as flat node arrays, scored in blocks of rows. XGBoost's predictor
 * spends most of a batch walking trees node by node with a branch per node; here each node
 * holds both children and a row's next node is picked by index, so sixteen rows walk a tree
 * side by side with no branch to mispredict. Sums and transforms copy XGBoost's float code. */
#include "forest.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16
#define FEAT_MASK 0x7fffffffu
#define MISSING_BELOW 0x80000000u /* feat bit: a missing value goes XGBoost's left */
#define MAX_CHECK_FLOATS ((size_t)1 << 22)
/* Every row walks each tree's full depth: deeper trees, XGBoost's own walk is faster. */
#define MAX_DEPTH 16

typedef struct {
    int32_t next[2]; /* [1]: value below the threshold (XGBoost's left); a leaf: itself twice */
    uint32_t feat;   /* the split's feature | MISSING_BELOW */
    float value;     /* the split's threshold, or the leaf's value */
} node_t;

struct ss_forest {
    node_t *nodes;
    size_t *root; /* first node of each tree */
    int *depth;   /* levels below each tree's root */
    size_t n_trees, n_nodes, nf;
    int max_depth;
    float base;  /* the base margin every sum starts from */
    int sigmoid; /* the objective's transform: XGBoost's common::Sigmoid, else none */
};

typedef struct {
    const char *name;
    int sigmoid; /* transform */
    int logit;   /* base_score to margin: common::Logit of it clamped to (kRtEps, 1 - kRtEps) */
} objective_t;

static const objective_t objectives[] = {
    {"binary:logistic", 1, 1},
    {"reg:logistic", 1, 1},
    {"binary:logitraw", 0, 0},
    {"reg:squarederror", 0, 0},
};

/* XGBoost's common::Sigmoid(float), operation for operation. */
static float sigmoid(float x) {
    x = 88.7f < -x ? 88.7f : -x; /* std::min(-x, 88.7f) */
    float denom = expf(x) + 1.0f + 1e-16f;
    return 1.0f / denom;
}

static inline void walk_block(const ss_forest_t *f, const float *x, size_t n, double *out) {
    float sum[LANES];
    const float *row[LANES];
    int32_t at[LANES];
    for (size_t k = 0; k < n; k++) {
        sum[k] = f->base;
        row[k] = x + k * f->nf;
    }
    for (size_t t = 0; t < f->n_trees; t++) {
        const node_t *nodes = f->nodes + f->root[t];
        for (size_t k = 0; k < n; k++)
            at[k] = 0;
        for (int d = 0; d < f->depth[t]; d++) {
            for (size_t k = 0; k < n; k++) {
                const node_t *nd = &nodes[at[k]];
                float v = row[k][nd->feat & FEAT_MASK];
                int below = (v < nd->value) | ((v != v) & (int)(nd->feat >> 31));
                at[k] = nd->next[below];
            }
        }
        for (size_t k = 0; k < n; k++)
            sum[k] += nodes[at[k]].value; /* tree by tree, in float, as XGBoost adds */
    }
    for (size_t k = 0; k < n; k++)
        out[k] = f->sigmoid ? sigmoid(sum[k]) : sum[k];
}

void ss_forest_predict(const ss_forest_t *f, const float *x, size_t rows, double *out) {
    size_t r = 0;
    for (; r + LANES <= rows; r += LANES)
        walk_block(f, x + r * f->nf, LANES, out + r); /* inlined with a constant width */
    if (r < rows)
        walk_block(f, x + r * f->nf, rows - r, out + r);
}

size_t ss_forest_trees(const ss_forest_t *f) {
    return f->n_trees;
}

int ss_forest_max_depth(const ss_forest_t *f) {
    return f->max_depth;
}

void ss_forest_destroy(ss_forest_t *f) {
    if (!f)
        return;
    free(f->nodes);
    free(f->root);
    free(f->depth);
    free(f);
}

/* ---- compiling */

/* The float that XGBoost parsed from the text jansson read as `d`: certain unless d lies
 * within a double's rounding of the midpoint between two floats (then the text's own rounding
 * to float could differ from d's). Returns 0 with *out, or -1. */
static int exact_float(double d, float *out) {
    float f = (float)d;
    if (!isfinite(d) || !isfinite(f))
        return -1;
    double ulp = fabs(nextafter(d, INFINITY) - d);
    double lo = ((double)f + (double)nextafterf(f, -INFINITY)) / 2;
    double hi = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
    if (fabs(d - lo) <= ulp || fabs(d - hi) <= ulp)
        return -1;
    *out = f;
    return 0;
}

static int number(const json_t *v, double *out) {
    if (json_is_integer(v))
        *out = (double)json_integer_value(v);
    else if (json_is_real(v))
        *out = json_real_value(v);
    else if (json_is_boolean(v))
        *out = json_is_true(v);
    else
        return -1;
    return 0;
}

/* A string parameter of XGBoost's model ("0", "[2.99E-1]") as a number. */
static int param(const json_t *obj, const char *key, double *out) {
    const char *s = json_string_value(json_object_get(obj, key));
    if (!s)
        return -1;
    if (*s == '[')
        s++;
    char *end;
    *out = strtod(s, &end);
    return end == s || (*end && strcmp(end, "]") != 0) ? -1 : 0;
}

typedef struct {
    const json_t *left, *right, *feat, *cond, *dleft;
    size_t n;
} tree_json_t;

static int tree_json(const json_t *tree, tree_json_t *tj, char *why, size_t whylen) {
    const json_t *types = json_object_get(tree, "split_type");
    const json_t *cats = json_object_get(tree, "categories_nodes");
    double leaf_size = 1;
    tj->left = json_object_get(tree, "left_children");
    tj->right = json_object_get(tree, "right_children");
    tj->feat = json_object_get(tree, "split_indices");
    tj->cond = json_object_get(tree, "split_conditions");
    tj->dleft = json_object_get(tree, "default_left");
    tj->n = json_array_size(tj->left);
    if (param(json_object_get(tree, "tree_param"), "size_leaf_vector", &leaf_size) == 0 &&
        leaf_size > 1) {
        snprintf(why, whylen, "a tree has vector leaves");
        return SS_ERR_CONFIG;
    }
    if (json_array_size(cats) > 0) {
        snprintf(why, whylen, "a tree has categorical splits");
        return SS_ERR_CONFIG;
    }
    for (size_t i = 0; i < json_array_size(types); i++) {
        double ty;
        if (number(json_array_get(types, i), &ty) < 0 || ty != 0) {
            snprintf(why, whylen, "a tree has categorical splits");
            return SS_ERR_CONFIG;
        }
    }
    if (tj->n == 0 || tj->n > INT32_MAX / 2 || json_array_size(tj->right) != tj->n ||
        json_array_size(tj->feat) != tj->n || json_array_size(tj->cond) != tj->n ||
        json_array_size(tj->dleft) != tj->n) {
        snprintf(why, whylen, "a tree's node arrays are malformed");
        return SS_ERR_CONFIG;
    }
    return 0;
}

/* Tree `tj` into f->nodes from `off`, breadth first from its root (node 0): a node's new
 * index in map[], its level in level[]. Nodes that no path reaches are left out. */
static int compile_tree(ss_forest_t *f, size_t t, const tree_json_t *tj, size_t off, size_t *used,
                        char *why, size_t whylen) {
    int32_t *map = malloc(tj->n * sizeof(*map)), *queue = malloc(tj->n * sizeof(*queue));
    int *level = malloc(tj->n * sizeof(*level));
    int rc = SS_ERR_NOMEM;
    if (!map || !queue || !level) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < tj->n; i++)
        map[i] = -1;
    size_t head = 0, tail = 0, next = 1;
    queue[tail++] = 0;
    map[0] = 0;
    level[0] = 0;
    f->root[t] = off;
    f->depth[t] = 0;
    rc = SS_ERR_CONFIG;
    while (head < tail) {
        int32_t old = queue[head++];
        node_t *nd = &f->nodes[off + (size_t)map[old]];
        double l, r, feat, cond, dleft;
        if (number(json_array_get(tj->left, (size_t)old), &l) < 0 ||
            number(json_array_get(tj->right, (size_t)old), &r) < 0 ||
            number(json_array_get(tj->feat, (size_t)old), &feat) < 0 ||
            number(json_array_get(tj->cond, (size_t)old), &cond) < 0 ||
            number(json_array_get(tj->dleft, (size_t)old), &dleft) < 0) {
            snprintf(why, whylen, "a tree's node arrays are malformed");
            goto out;
        }
        if (exact_float(cond, &nd->value) < 0) {
            snprintf(why, whylen, "a threshold or leaf value (%.17g) is not certain as a float",
                     cond);
            goto out;
        }
        if (l < 0) { /* a leaf */
            nd->next[0] = nd->next[1] = map[old];
            nd->feat = 0;
            continue;
        }
        if (l >= (double)tj->n || r < 0 || r >= (double)tj->n || map[(size_t)l] != -1 ||
            map[(size_t)r] != -1 || l == r || feat < 0 || feat >= (double)f->nf) {
            snprintf(why, whylen, "a tree's node arrays are malformed");
            goto out;
        }
        map[(size_t)l] = (int32_t)next;
        map[(size_t)r] = (int32_t)next + 1;
        level[(size_t)l] = level[(size_t)r] = level[old] + 1;
        if (level[old] + 1 > f->depth[t])
            f->depth[t] = level[old] + 1;
        if (f->depth[t] > MAX_DEPTH) {
            snprintf(why, whylen,
                     "a tree is deeper than %d levels (each row would walk every tree's full "
                     "depth)",
                     MAX_DEPTH);
            goto out;
        }
        nd->next[1] = (int32_t)next;
        nd->next[0] = (int32_t)next + 1;
        nd->feat = (uint32_t)feat | (dleft != 0 ? MISSING_BELOW : 0);
        next += 2;
        queue[tail++] = (int32_t)l;
        queue[tail++] = (int32_t)r;
    }
    if (f->depth[t] > f->max_depth)
        f->max_depth = f->depth[t];
    *used = next;
    rc = 0;
out:
    free(map);
    free(queue);
    free(level);
    return rc;
}

/* The objective, the base margin and the trees of learner `l`. */
static int compile_learner(ss_forest_t *f, const json_t *l, char *why, size_t whylen) {
    const char *obj = json_string_value(json_object_get(json_object_get(l, "objective"), "name"));
    const json_t *mp = json_object_get(l, "learner_model_param");
    const json_t *gb = json_object_get(l, "gradient_booster");
    const json_t *trees = json_object_get(json_object_get(gb, "model"), "trees");
    const json_t *info = json_object_get(json_object_get(gb, "model"), "tree_info");
    const objective_t *o = NULL;
    double base, classes = 0, targets = 1;
    for (size_t i = 0; obj && i < sizeof(objectives) / sizeof(objectives[0]); i++)
        if (strcmp(obj, objectives[i].name) == 0)
            o = &objectives[i];
    if (!o) {
        snprintf(why, whylen, "objective %s", obj ? obj : "(none)");
        return SS_ERR_CONFIG;
    }
    const char *booster = json_string_value(json_object_get(gb, "name"));
    if (!booster || strcmp(booster, "gbtree") != 0) {
        snprintf(why, whylen, "booster %s", booster ? booster : "(none)");
        return SS_ERR_CONFIG;
    }
    if (param(mp, "base_score", &base) < 0 ||
        (param(mp, "num_class", &classes) == 0 && classes > 1) ||
        (param(mp, "num_target", &targets) == 0 && targets > 1)) {
        snprintf(why, whylen, "more than one output, or no base_score");
        return SS_ERR_CONFIG;
    }
    float b = (float)base; /* XGBoost keeps base_score as a float */
    if (o->logit) {
        b = b < 1e-6f ? 1e-6f : b;
        b = b > 1.0f - 1e-6f ? 1.0f - 1e-6f : b;
        b = -logf(1.0f / b - 1.0f);
    }
    f->base = b;
    f->sigmoid = o->sigmoid;
    f->n_trees = json_array_size(trees);
    if (f->n_trees == 0 || json_array_size(info) != f->n_trees) {
        snprintf(why, whylen, "no trees");
        return SS_ERR_CONFIG;
    }
    tree_json_t *tj = calloc(f->n_trees, sizeof(*tj));
    f->root = calloc(f->n_trees, sizeof(*f->root));
    f->depth = calloc(f->n_trees, sizeof(*f->depth));
    int rc = SS_ERR_NOMEM;
    if (!tj || !f->root || !f->depth) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    size_t total = 0;
    for (size_t t = 0; t < f->n_trees; t++) {
        double group;
        if (number(json_array_get(info, t), &group) < 0 || group != 0) {
            snprintf(why, whylen, "more than one output group");
            rc = SS_ERR_CONFIG;
            goto out;
        }
        if ((rc = tree_json(json_array_get(trees, t), &tj[t], why, whylen)) < 0)
            goto out;
        total += tj[t].n;
    }
    f->nodes = calloc(total, sizeof(*f->nodes));
    if (!f->nodes) {
        snprintf(why, whylen, "out of memory");
        rc = SS_ERR_NOMEM;
        goto out;
    }
    for (size_t t = 0, used; t < f->n_trees; t++, f->n_nodes += used)
        if ((rc = compile_tree(f, t, &tj[t], f->n_nodes, &used, why, whylen)) < 0)
            goto out;
    rc = 0;
out:
    free(tj);
    return rc;
}

int ss_forest_compile(const char *json, size_t len, size_t n_features, ss_forest_t **out, char *why,
                      size_t whylen) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    ss_forest_t *f = calloc(1, sizeof(*f));
    int rc = SS_ERR_NOMEM;
    if (!f) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    f->nf = n_features;
    if (!root || n_features == 0) {
        snprintf(why, whylen, "the model is not XGBoost JSON: %s",
                 root ? "no features" : jerr.text);
        rc = SS_ERR_CONFIG;
        goto out;
    }
    if ((rc = compile_learner(f, json_object_get(root, "learner"), why, whylen)) < 0)
        goto out;
    *out = f;
    f = NULL;
out:
    json_decref(root);
    ss_forest_destroy(f);
    return rc;
}

/* ---- rows to check a forest against XGBoost */

static uint32_t xorshift(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* A value for feature j: missing one time in eight, else one of the forest's thresholds of a
 * split on j (or just below it), else 0 when no split uses j. */
static float draw(const ss_forest_t *f, size_t j, uint32_t *s) {
    if (xorshift(s) % 8 == 0)
        return NAN;
    for (int tries = 0; tries < 64; tries++) {
        const node_t *nd = &f->nodes[xorshift(s) % f->n_nodes];
        if (nd->next[0] != nd->next[1] && (nd->feat & FEAT_MASK) == j)
            return xorshift(s) % 2 ? nd->value : nextafterf(nd->value, -INFINITY);
    }
    return 0.0f;
}

int ss_forest_check_rows(const ss_forest_t *f, unsigned seed, float **rows, size_t *n) {
    size_t splits = 0, nf = f->nf;
    for (size_t i = 0; i < f->n_nodes; i++)
        splits += f->nodes[i].next[0] != f->nodes[i].next[1];
    size_t cap = MAX_CHECK_FLOATS / nf > 64 ? MAX_CHECK_FLOATS / nf : 64;
    size_t stride = 2 * splits + 3 > cap ? (2 * splits + 3) / cap + 1 : 1;
    size_t count = (2 * splits) / stride + 3;
    float *x = malloc(count * nf * sizeof(*x));
    if (!x)
        return SS_ERR_NOMEM;
    uint32_t s = seed ? seed : 1;
    size_t r = 0;
    for (size_t i = 0, split = 0; i < f->n_nodes; i++) {
        const node_t *nd = &f->nodes[i];
        if (nd->next[0] == nd->next[1])
            continue;
        for (int below = 0; below < 2; below++, split++) {
            if (split % stride != 0 || r >= count - 3)
                continue;
            float *row = x + r++ * nf;
            for (size_t j = 0; j < nf; j++)
                row[j] = draw(f, j, &s);
            row[nd->feat & FEAT_MASK] = below ? nextafterf(nd->value, -INFINITY) : nd->value;
        }
    }
    static const float probes[] = {NAN, 0.0f, 1.0f};
    for (int p = 0; p < 3; p++, r++)
        for (size_t j = 0; j < nf; j++)
            x[r * nf + j] = probes[p];
    *rows = x;
    *n = r;
    return 0;
}
