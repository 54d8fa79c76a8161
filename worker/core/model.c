/* model.c - loading an XGBoost model through the C API and scoring dense batches
 * in place (XGBoosterPredictFromDense): no DMatrix per batch, nthread 1 per caller,
 * one booster shared by all threads (XGBoost keeps prediction buffers per thread). */
#include "model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xgboost/c_api.h>

#include "drift.h"
#include "error.h"
#include "log.h"

static const char predict_config[] =
    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0,"
    " \"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}";

const char *ss_model_xgboost_version(void) {
    static char buf[32];
    int major = 0, minor = 0, patch = 0;
    XGBoostVersion(&major, &minor, &patch);
    snprintf(buf, sizeof(buf), "%d.%d.%d", major, minor, patch);
    return buf;
}

static void free_names(char **names, size_t n) {
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void model_free(ss_model_t *m) {
    if (!m)
        return;
    if (m->booster)
        XGBoosterFree(m->booster);
    free_names(m->feature_names, m->n_features);
    free(m->name);
    free(m->version);
    free(m->path);
    free(m->sha256_card);
    ss_drift_destroy(m->drift);
    json_decref(m->card);
    free(m);
}

int ss_model_enable_drift(ss_model_t *m, long window, double threshold, char *errstr,
                          size_t errlen) {
    if (!m->card)
        return 0;
    m->drift = ss_drift_new(m->card, m->feature_names, m->n_features, window, threshold, errstr,
                            errlen);
    return m->drift || !errstr[0] ? 0 : -1;
}

int ss_model_check(ss_model_t *m, char *errstr, size_t errlen) {
    size_t nf = m->n_features;
    ss_predictor_t *p = ss_predictor_new(errstr, errlen);
    float *rows = p ? malloc(3 * nf * sizeof(float)) : NULL;
    double scores[3];
    int rc = -1;
    if (!rows) {
        if (p)
            snprintf(errstr, errlen, "model: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nf; i++) {
        rows[i] = __builtin_nanf("");
        rows[nf + i] = 0.0f;
        rows[2 * nf + i] = 1.0f;
    }
    if (ss_model_predict(m, p, rows, 3, scores, errstr, errlen) < 0)
        goto out;
    for (int i = 0; i < 3; i++) {
        if (!isfinite(scores[i])) {
            snprintf(errstr, errlen, "model '%s': a probe row (%s) scores %g, not a finite number",
                     m->path, i == 0 ? "all missing" : i == 1 ? "all 0" : "all 1", scores[i]);
            goto out;
        }
    }
    rc = 0;
out:
    free(rows);
    ss_predictor_destroy(p);
    return rc;
}

double ss_model_threshold(const ss_model_t *m, double configured) {
    return isnan(configured) ? m->threshold : configured;
}

ss_model_t *ss_model_ref(ss_model_t *m) {
    if (m)
        __atomic_add_fetch(&m->refcnt, 1, __ATOMIC_RELAXED);
    return m;
}

void ss_model_unref(ss_model_t *m) {
    if (m && __atomic_sub_fetch(&m->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        model_free(m);
}

/* Names from the card, used when the model file carries none; must agree otherwise. */
static int card_feature_names(json_t *card, char ***out, size_t *n_out, char *errstr,
                              size_t errlen) {
    json_t *arr = json_object_get(card, "feature_names");
    if (!arr)
        return 0;
    if (!json_is_array(arr)) {
        snprintf(errstr, errlen, "model card: 'feature_names' is not an array");
        return -1;
    }
    size_t n = json_array_size(arr);
    char **names = calloc(n ? n : 1, sizeof(*names));
    if (!names)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s) {
            free_names(names, i);
            snprintf(errstr, errlen, "model card: feature_names[%zu] is not a string", i);
            return -1;
        }
        names[i] = strdup(s);
    }
    *out = names;
    *n_out = n;
    return 0;
}

ss_model_t *ss_model_load(const char *path, const char *card_path, const char *name,
                          const char *version, char *errstr, size_t errlen) {
    ss_model_t *m = calloc(1, sizeof(*m));
    json_t *card = NULL;
    char **card_names = NULL;
    size_t n_card_names = 0;
    if (!m)
        goto oom;
    m->refcnt = 1;
    m->threshold = 0.5;
    m->path = strdup(path);

    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(errstr, errlen, "model: cannot read model file '%s' (key model.path)", path);
        goto fail;
    }
    if (XGBoosterCreate(NULL, 0, &m->booster) != 0 ||
        XGBoosterLoadModel(m->booster, path) != 0) {
        snprintf(errstr, errlen, "model: XGBoost cannot load '%s': %s", path, XGBGetLastError());
        goto fail;
    }
    if (XGBoosterSetParam(m->booster, "nthread", "1") != 0) {
        snprintf(errstr, errlen, "model: setting nthread: %s", XGBGetLastError());
        goto fail;
    }

    if (card_path && access(card_path, R_OK) == 0) {
        json_error_t jerr;
        card = json_load_file(card_path, 0, &jerr);
        if (!card || !json_is_object(card)) {
            snprintf(errstr, errlen, "model card '%s' (key model.card): line %d: %s", card_path,
                     jerr.line, card ? "not a JSON object" : jerr.text);
            goto fail;
        }
        if (card_feature_names(card, &card_names, &n_card_names, errstr, errlen) < 0)
            goto fail;
        json_t *thr = json_object_get(card, "threshold");
        if (json_is_number(thr)) {
            double t = json_number_value(thr);
            if (!(t >= 0 && t <= 1)) {
                snprintf(errstr, errlen, "model card '%s': threshold %g is not in [0, 1]",
                         card_path, t);
                goto fail;
            }
            m->threshold = t;
        }
        const char *sha = json_string_value(json_object_get(card, "model_sha256"));
        if (sha)
            m->sha256_card = strdup(sha);
    } else if (!name || !version) {
        snprintf(errstr, errlen,
                 "model card '%s' (key model.card) cannot be read, and model.name / model.version "
                 "are not both set",
                 card_path ? card_path : "");
        goto fail;
    }
    const char *cname = card ? json_string_value(json_object_get(card, "name")) : NULL;
    const char *cversion = card ? json_string_value(json_object_get(card, "version")) : NULL;
    if (!(name ? name : cname) || !(version ? version : cversion)) {
        snprintf(errstr, errlen,
                 "model card '%s' (key model.card) lacks %s; set model.name / model.version",
                 card_path, (name ? name : cname) ? "'version'" : "'name'");
        goto fail;
    }
    m->name = strdup(name ? name : cname);
    m->version = strdup(version ? version : cversion);

    /* Feature names: the model's own, else the card's. */
    bst_ulong n = 0;
    const char **names = NULL;
    if (XGBoosterGetStrFeatureInfo(m->booster, "feature_name", &n, &names) != 0) {
        snprintf(errstr, errlen, "model: reading feature names: %s", XGBGetLastError());
        goto fail;
    }
    bst_ulong n_cols = 0;
    XGBoosterGetNumFeature(m->booster, &n_cols);
    if (n > 0) {
        m->feature_names = calloc(n, sizeof(char *));
        if (!m->feature_names)
            goto oom;
        for (bst_ulong i = 0; i < n; i++)
            m->feature_names[i] = strdup(names[i]);
        m->n_features = n;
        if (card_names) {
            int same = n_card_names == n;
            for (size_t i = 0; same && i < n; i++)
                same = strcmp(card_names[i], m->feature_names[i]) == 0;
            if (!same) {
                snprintf(errstr, errlen,
                         "model card '%s': feature_names differ from those in the model file '%s'",
                         card_path, path);
                goto fail;
            }
        }
    } else if (card_names) {
        if (n_card_names != n_cols) {
            snprintf(errstr, errlen, "model card '%s' names %zu features, the model has %lu",
                     card_path, n_card_names, (unsigned long)n_cols);
            goto fail;
        }
        m->feature_names = card_names;
        m->n_features = n_card_names;
        card_names = NULL;
    } else {
        snprintf(errstr, errlen,
                 "model '%s' has no feature names, and no card gives them: features are mapped by "
                 "name",
                 path);
        goto fail;
    }
    if (m->n_features == 0) {
        snprintf(errstr, errlen, "model '%s' has no features", path);
        goto fail;
    }

    /* Probe: score one all-missing row now so that the learner is configured before
     * worker threads share it, and so that a model that cannot score fails at load. */
    {
        ss_predictor_t *p = ss_predictor_new(errstr, errlen);
        float *row = p ? malloc(m->n_features * sizeof(float)) : NULL;
        double score = 0;
        int rc = -1;
        if (row) {
            for (size_t i = 0; i < m->n_features; i++)
                row[i] = __builtin_nanf("");
            rc = ss_model_predict(m, p, row, 1, &score, errstr, errlen);
        }
        free(row);
        ss_predictor_destroy(p);
        if (rc < 0)
            goto fail;
    }
    m->card = card; /* kept: ss_model_enable_drift reads its baseline */
    free_names(card_names, n_card_names);
    return m;

oom:
    snprintf(errstr, errlen, "model: out of memory");
fail:
    json_decref(card);
    free_names(card_names, n_card_names);
    model_free(m);
    return NULL;
}

ss_predictor_t *ss_predictor_new(char *errstr, size_t errlen) {
    ss_predictor_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(errstr, errlen, "model: out of memory");
        return NULL;
    }
    if (XGProxyDMatrixCreate(&p->proxy) != 0) {
        snprintf(errstr, errlen, "model: creating proxy DMatrix: %s", XGBGetLastError());
        free(p);
        return NULL;
    }
    return p;
}

void ss_predictor_destroy(ss_predictor_t *p) {
    if (!p)
        return;
    if (p->proxy)
        XGDMatrixFree(p->proxy);
    free(p);
}

int ss_model_predict(ss_model_t *m, ss_predictor_t *p, const float *data, size_t rows,
                     double *out, char *errstr, size_t errlen) {
    if (rows == 0)
        return 0;
    snprintf(p->iface, sizeof(p->iface),
             "{\"data\": [%lu, true], \"shape\": [%zu, %zu], \"strides\": null, "
             "\"typestr\": \"<f4\", \"version\": 3}",
             (unsigned long)(uintptr_t)data, rows, m->n_features);
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *result = NULL;
    if (XGBoosterPredictFromDense(m->booster, p->iface, predict_config, p->proxy, &shape, &dim,
                                  &result) != 0) {
        snprintf(errstr, errlen, "model: predict failed: %s", XGBGetLastError());
        return -1;
    }
    bst_ulong total = 1;
    for (bst_ulong i = 0; i < dim; i++)
        total *= shape[i];
    if (total != rows) {
        snprintf(errstr, errlen,
                 "model: predict returned %lu values for %zu rows (only single-output models "
                 "are supported)",
                 (unsigned long)total, rows);
        return -1;
    }
    for (size_t i = 0; i < rows; i++)
        out[i] = result[i];
    return 0;
}

static int same_features(const ss_model_t *a, const ss_model_t *b) {
    if (a->n_features != b->n_features)
        return 0;
    for (size_t i = 0; i < a->n_features; i++)
        if (strcmp(a->feature_names[i], b->feature_names[i]) != 0)
            return 0;
    return 1;
}

int ss_model_open(const ss_config_t *cfg, const ss_model_t *running, ss_model_t **out,
                  char *errstr, size_t errlen) {
    *out = NULL;
    ss_model_t *m = ss_model_load(cfg->model_path, cfg->model_card, cfg->model_name,
                                  cfg->model_version, errstr, errlen);
    if (!m)
        return SS_ERR_CONFIG;
    if (running && !same_features(running, m)) {
        snprintf(errstr, errlen,
                 "model '%s' (version %s) has other feature names than the running model "
                 "(%zu vs %zu features, mapped by name): a new feature mapping needs a restart",
                 cfg->model_path, m->version, m->n_features, running->n_features);
        goto fail;
    }
    if (ss_model_check(m, errstr, errlen) < 0)
        goto fail;
    if (ss_model_enable_drift(m, cfg->drift_window, cfg->drift_threshold, errstr, errlen) < 0) {
        size_t n = strlen(errstr);
        snprintf(errstr + n, errlen > n ? errlen - n : 0, " (key model.card)");
        goto fail;
    }
    *out = m;
    return 0;
fail:
    ss_model_unref(m);
    return SS_ERR_CONFIG;
}

void ss_model_slot_init(ss_model_slot_t *s, ss_model_t *m) {
    pthread_mutex_init(&s->lock, NULL);
    s->model = ss_model_ref(m);
}

void ss_model_slot_destroy(ss_model_slot_t *s) {
    ss_model_unref(s->model);
    s->model = NULL;
    pthread_mutex_destroy(&s->lock);
}

ss_model_t *ss_model_slot_acquire(ss_model_slot_t *s) {
    pthread_mutex_lock(&s->lock);
    ss_model_t *m = ss_model_ref(s->model);
    pthread_mutex_unlock(&s->lock);
    return m;
}

ss_model_t *ss_model_slot_swap(ss_model_slot_t *s, ss_model_t *m) {
    pthread_mutex_lock(&s->lock);
    ss_model_t *old = s->model;
    s->model = m;
    pthread_mutex_unlock(&s->lock);
    return old;
}
