/* objective.c - a model's objective from the booster's JSON configuration
 * (learner.objective, learner.learner_model_param). */
#include "objective.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "error.h"
#include "strv.h"

static const struct {
    const char *name;
    int task;
} objectives[] = {
    {"binary:logistic", SS_TASK_BINARY},
    {"binary:logitraw", SS_TASK_BINARY},
    {"binary:hinge", SS_TASK_BINARY},
    {"multi:softprob", SS_TASK_MULTICLASS},
    {"multi:softmax", SS_TASK_MULTICLASS},
    {"reg:squarederror", SS_TASK_REGRESSION},
    {"reg:squaredlogerror", SS_TASK_REGRESSION},
    {"reg:logistic", SS_TASK_REGRESSION},
    {"reg:pseudohubererror", SS_TASK_REGRESSION},
    {"reg:absoluteerror", SS_TASK_REGRESSION},
    {"reg:quantileerror", SS_TASK_REGRESSION},
    {"reg:tweedie", SS_TASK_REGRESSION},
    {"reg:gamma", SS_TASK_REGRESSION},
    {"count:poisson", SS_TASK_REGRESSION},
    {"rank:pairwise", SS_TASK_RANKING},
    {"rank:ndcg", SS_TASK_RANKING},
    {"rank:map", SS_TASK_RANKING},
    {"survival:cox", SS_TASK_SURVIVAL},
    {"survival:aft", SS_TASK_SURVIVAL},
};
#define N_OBJECTIVES (sizeof(objectives) / sizeof(objectives[0]))

const char *ss_task_name(int task) {
    static const char *const names[] = {"binary", "multiclass", "regression", "ranking",
                                        "survival"};
    return task >= 0 && task <= SS_TASK_SURVIVAL ? names[task] : "unknown";
}

const char *ss_objective_served(void) {
    static char list[1024];
    if (!list[0]) {
        size_t off = 0;
        for (size_t i = 0; i < N_OBJECTIVES; i++)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                                    objectives[i].name);
    }
    return list;
}

int ss_objective_task(const char *name) {
    for (size_t i = 0; i < N_OBJECTIVES; i++)
        if (strcmp(objectives[i].name, name) == 0)
            return objectives[i].task;
    return -1;
}

static int refuse(const char *name, const char *path, char *errstr, size_t errlen) {
    snprintf(errstr, errlen,
             "model '%s' (key model.path): objective '%s' cannot be served (streamscore serves "
             "%s)",
             path, name, ss_objective_served());
    return SS_ERR_CONFIG;
}

int ss_objective_peek(const unsigned char *bytes, size_t len, const char *path, char *errstr,
                      size_t errlen) {
    if (len == 0 || bytes[0] != '{')
        return 0;
    json_t *root = json_loadb((const char *)bytes, len, 0, NULL);
    const char *name = json_string_value(
        json_object_get(json_object_get(json_object_get(root, "learner"), "objective"), "name"));
    int rc = name && ss_objective_task(name) < 0 ? refuse(name, path, errstr, errlen) : 0;
    json_decref(root);
    return rc;
}

/* A learner_model_param or objective parameter: XGBoost writes numbers as strings. */
static long param_long(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return (long)json_integer_value(v);
    const char *s = json_string_value(v);
    return s ? strtol(s, NULL, 10) : 0;
}

/* quantile_alpha: "[1E-1,5E-1,9E-1]", "0.5" or a number; at most `max` into a; the count. */
static size_t quantiles(json_t *param, double *a, size_t max) {
    json_t *v = json_object_get(param, "quantile_alpha");
    if (json_is_number(v)) {
        a[0] = json_number_value(v);
        return 1;
    }
    const char *s = json_string_value(v);
    size_t n = 0;
    while (s && *s && n < max) {
        while (*s == '[' || *s == ',' || *s == ' ')
            s++;
        char *end;
        double x = strtod(s, &end);
        if (end == s)
            break;
        a[n++] = x;
        s = end;
    }
    return n;
}

/* Output names: "0".."n-1", or "q<alpha>" for quantiles. */
static int name_outputs(ss_objective_t *o, const double *alpha, size_t n_alpha) {
    if (!(o->output_names = calloc(o->n_outputs, sizeof(char *))))
        return SS_ERR_NOMEM;
    for (size_t i = 0; i < o->n_outputs; i++) {
        char buf[48];
        if (n_alpha == o->n_outputs)
            snprintf(buf, sizeof(buf), "q%g", alpha[i]);
        else
            snprintf(buf, sizeof(buf), "%zu", i);
        if (!(o->output_names[i] = strdup(buf)))
            return SS_ERR_NOMEM;
        if (n_alpha == o->n_outputs && alpha[i] == 0.5)
            o->score_output = i;
    }
    return 0;
}

static int describe(json_t *learner, const char *path, ss_objective_t *o, char *errstr,
                    size_t errlen) {
    json_t *obj = json_object_get(learner, "objective");
    const char *name = json_string_value(json_object_get(obj, "name"));
    if (!name) {
        snprintf(errstr, errlen,
                 "model '%s' (key model.path): its configuration names no objective", path);
        return SS_ERR_CONFIG;
    }
    snprintf(o->name, sizeof(o->name), "%s", name);
    if ((o->task = ss_objective_task(name)) < 0)
        return refuse(name, path, errstr, errlen);
    json_t *mp = json_object_get(learner, "learner_model_param");
    long classes = param_long(mp, "num_class"), targets = param_long(mp, "num_target");
    double alpha[64];
    size_t n_alpha = quantiles(json_object_get(obj, "quantile_loss_param"), alpha, 64);
    o->n_outputs = 1;
    if (o->task == SS_TASK_MULTICLASS) {
        if (classes < 2) {
            snprintf(errstr, errlen,
                     "model '%s' (key model.path): objective '%s' with num_class %ld", path, name,
                     classes);
            return SS_ERR_CONFIG;
        }
        o->n_outputs = (size_t)classes;
        o->softmax = strcmp(name, "multi:softmax") == 0;
    } else if (targets > 1) {
        o->n_outputs = (size_t)targets;
    }
    if (n_alpha != o->n_outputs)
        n_alpha = 0;
    o->default_threshold = NAN;
    if (o->task == SS_TASK_BINARY)
        o->default_threshold = strcmp(name, "binary:logitraw") == 0 ? 0.0 : 0.5;
    if (name_outputs(o, alpha, n_alpha) < 0) {
        snprintf(errstr, errlen, "model: out of memory");
        return SS_ERR_NOMEM;
    }
    return 0;
}

int ss_objective_read(void *booster, const char *path, ss_objective_t *o, char *errstr,
                      size_t errlen) {
    memset(o, 0, sizeof(*o));
    bst_ulong len = 0;
    const char *text = NULL;
    if (XGBoosterSaveJsonConfig(booster, &len, &text) != 0) {
        snprintf(errstr, errlen, "model '%s': reading its configuration: %s", path,
                 XGBGetLastError());
        return SS_ERR_CONFIG;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, (size_t)len, 0, &jerr);
    int rc = describe(json_object_get(root, "learner"), path, o, errstr, errlen);
    json_decref(root);
    if (rc < 0)
        ss_objective_clear(o);
    return rc;
}

void ss_objective_clear(ss_objective_t *o) {
    ss_strv_free(o->output_names, o->n_outputs);
    o->output_names = NULL;
}

/* XGBoost's softmax (common::Softmax): in float, shifted by the largest value. */
static void softmax(float *x, size_t n) {
    float wmax = x[0];
    for (size_t i = 1; i < n; i++)
        wmax = x[i] > wmax ? x[i] : wmax;
    double wsum = 0;
    for (size_t i = 0; i < n; i++)
        wsum += expf(x[i] - wmax);
    for (size_t i = 0; i < n; i++)
        x[i] = expf(x[i] - wmax) / (float)wsum;
}

void ss_objective_finish_row(const ss_objective_t *o, float *row, double *score, int *cls) {
    *cls = -1;
    if (o->softmax)
        softmax(row, o->n_outputs);
    size_t best = o->score_output;
    if (o->task == SS_TASK_MULTICLASS) {
        best = 0;
        for (size_t i = 1; i < o->n_outputs; i++)
            if (row[i] > row[best])
                best = i;
        *cls = (int)best;
    }
    *score = row[best];
    for (size_t i = 0; i < o->n_outputs; i++)
        if (!isfinite(row[i]))
            *score = NAN;
}
