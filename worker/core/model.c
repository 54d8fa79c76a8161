/* model.c - loading an XGBoost model through the C API and scoring dense batches: with its
 * trees compiled (forest.c) when they reproduce XGBoost's scores, else in place through
 * XGBoost (XGBoosterPredictFromDense): no DMatrix per batch, nthread 1 per caller, one booster
 * shared by all threads (XGBoost keeps prediction buffers per thread). */
#include "model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xgboost/c_api.h>

#include "artifact.h"
#include "drift.h"
#include "error.h"
#include "forest.h"
#include "log.h"
#include "strv.h"

static const char predict_config[] =
    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0,"
    " \"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}";
/* multi:softmax: the margins (XGBoost's own output would be the class index alone) */
static const char margin_config[] =
    "{\"type\": 1, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0,"
    " \"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}";

const char *ss_model_xgboost_version(void) {
    static char buf[32];
    int major = 0, minor = 0, patch = 0;
    XGBoostVersion(&major, &minor, &patch);
    snprintf(buf, sizeof(buf), "%d.%d.%d", major, minor, patch);
    return buf;
}

static void model_free(ss_model_t *m) {
    if (!m)
        return;
    if (m->booster)
        XGBoosterFree(m->booster);
    ss_drift_destroy(m->drift);
    ss_forest_destroy(m->forest);
    json_decref(m->card);
    for (size_t i = 0; m->categories && i < m->n_features; i++)
        ss_strv_free(m->categories[i], m->n_categories[i]);
    free(m->categories);
    free(m->n_categories);
    free(m->categorical);
    ss_objective_clear(&m->objective);
    ss_strv_free(m->feature_names, m->n_features);
    free(m->name);
    free(m->version);
    free(m->path);
    free(m->sha256_card);
    free(m);
}

int ss_model_enable_drift(ss_model_t *m, long window, double threshold, char *errstr,
                          size_t errlen) {
    if (!m->card)
        return 0;
    return ss_drift_new(m->card, m->feature_names, m->n_features, window, threshold, &m->drift,
                        errstr, errlen);
}

static const char *const probe_names[] = {"all missing", "all 0", "all 1"};

/* Score the first n (1..3) probe rows (all missing, all 0, all 1) into scores. Returns 0, or
 * SS_ERR_FAIL (no predictor, or scoring failed) or SS_ERR_NOMEM with errstr. */
static int probe(ss_model_t *m, int n, double *scores, char *errstr, size_t errlen) {
    size_t nf = m->n_features;
    ss_predictor_t *p = ss_predictor_new(errstr, errlen);
    float *rows = p ? malloc((size_t)n * nf * sizeof(float)) : NULL;
    int rc = p ? SS_ERR_NOMEM : SS_ERR_FAIL;
    if (!rows) {
        if (p)
            snprintf(errstr, errlen, "model: out of memory");
        goto out;
    }
    static const float values[] = {NAN, 0.0f, 1.0f};
    for (int r = 0; r < n; r++)
        for (size_t i = 0; i < nf; i++)
            rows[(size_t)r * nf + i] = values[r];
    rc = ss_model_predict(m, p, rows, (size_t)n, scores, errstr, errlen);
out:
    free(rows);
    ss_predictor_destroy(p);
    return rc;
}

int ss_model_check(ss_model_t *m, char *errstr, size_t errlen) {
    double scores[3];
    int rc = probe(m, 3, scores, errstr, errlen);
    for (int i = 0; rc == 0 && i < 3; i++) {
        if (!isfinite(scores[i])) {
            snprintf(errstr, errlen, "model '%s': a probe row (%s) scores %g, not a finite number",
                     m->path, probe_names[i], scores[i]);
            rc = SS_ERR_CONFIG;
        }
    }
    return rc;
}

double ss_model_threshold(const ss_model_t *m, double configured) {
    if (m->objective.task == SS_TASK_MULTICLASS)
        return NAN;
    return isnan(configured) ? m->threshold : configured;
}

void ss_model_codec_cats(const ss_model_t *m, int unseen, ss_codec_cats_t *out) {
    *out = (ss_codec_cats_t){m->categorical, m->categories, m->n_categories, unseen};
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

/* ---- loading */

/* What a model card says, and the feature names it gives (owned), before they are checked
 * against the model file. */
typedef struct card_info {
    json_t *card;
    char **names;
    size_t n_names;
} card_info_t;

/* Names from the card, used when the model file carries none; must agree otherwise. */
static int card_feature_names(card_info_t *ci, char *errstr, size_t errlen) {
    json_t *arr = json_object_get(ci->card, "feature_names");
    if (!arr)
        return 0;
    if (!json_is_array(arr)) {
        snprintf(errstr, errlen, "model card: 'feature_names' is not an array");
        return SS_ERR_CONFIG;
    }
    size_t n = json_array_size(arr);
    if (!(ci->names = calloc(n ? n : 1, sizeof(*ci->names)))) {
        snprintf(errstr, errlen, "model: out of memory");
        return SS_ERR_NOMEM;
    }
    ci->n_names = n;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s) {
            snprintf(errstr, errlen, "model card: feature_names[%zu] is not a string", i);
            return SS_ERR_CONFIG;
        }
        ci->names[i] = strdup(s);
    }
    return 0;
}

/* The booster of model file `path`, nthread 1, loaded from the bytes whose SHA-256 goes into
 * m->sha256 and, with a key_path, whose Ed25519 signature in sig_path verified first. */
static int load_booster(ss_model_t *m, const char *path, const char *sig_path, const char *key_path,
                        char *errstr, size_t errlen) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    int rc = ss_artifact_read(path, "model file", "model.path", &bytes, &len, errstr, errlen);
    if (rc < 0)
        return rc;
    ss_artifact_sha256(bytes, len, m->sha256);
    if (key_path && (rc = ss_artifact_verify(bytes, len, sig_path, key_path, errstr, errlen)) < 0)
        goto out;
    rc = SS_ERR_CONFIG;
    if (XGBoosterCreate(NULL, 0, &m->booster) != 0 ||
        XGBoosterLoadModelFromBuffer(m->booster, bytes, (bst_ulong)len) != 0) {
        /* an objective XGBoost does not know is named as streamscore names one it does not
         * serve; any other failure in XGBoost's words */
        if (ss_objective_peek(bytes, len, path, errstr, errlen) == 0)
            snprintf(errstr, errlen, "model: XGBoost cannot load '%s': %.*s", path,
                     (int)strcspn(XGBGetLastError(), "\n"), XGBGetLastError());
        goto out;
    }
    rc = SS_ERR_FAIL;
    if (XGBoosterSetParam(m->booster, "nthread", "1") != 0) {
        snprintf(errstr, errlen, "model: setting nthread: %s", XGBGetLastError());
        goto out;
    }
    rc = 0;
out:
    free(bytes);
    return rc;
}

/* The card parsed into ci->card (NULL: jerr says why) from card_path: its threshold and model
 * digest into m, its feature names into ci. */
static int card_fields(ss_model_t *m, const char *card_path, card_info_t *ci,
                       const json_error_t *jerr, char *errstr, size_t errlen) {
    if (!ci->card || !json_is_object(ci->card)) {
        snprintf(errstr, errlen, "model card '%s' (key model.card): line %d: %s", card_path,
                 jerr->line, ci->card ? "not a JSON object" : jerr->text);
        return SS_ERR_CONFIG;
    }
    int rc = card_feature_names(ci, errstr, errlen);
    if (rc < 0)
        return rc;
    json_t *thr = json_object_get(ci->card, "threshold");
    if (json_is_number(thr)) {
        double t = json_number_value(thr);
        if (!isfinite(t)) {
            snprintf(errstr, errlen, "model card '%s': threshold %g is not a number", card_path, t);
            return SS_ERR_CONFIG;
        }
        m->threshold = t;
    }
    const char *sha = json_string_value(json_object_get(ci->card, "model_sha256"));
    if (sha)
        m->sha256_card = strdup(sha);
    return 0;
}

/* The card at card_path: its threshold and model digest into m, its feature names into ci. */
static int read_card(ss_model_t *m, const char *card_path, card_info_t *ci, char *errstr,
                     size_t errlen) {
    json_error_t jerr;
    ci->card = json_load_file(card_path, 0, &jerr);
    return card_fields(m, card_path, ci, &jerr, errstr, errlen);
}

/* name and version: the configured ones, else the card's. */
static int identity(ss_model_t *m, const char *card_path, const json_t *card, const char *name,
                    const char *version, char *errstr, size_t errlen) {
    const char *cname = json_string_value(json_object_get(card, "name"));
    const char *cversion = json_string_value(json_object_get(card, "version"));
    name = name ? name : cname;
    version = version ? version : cversion;
    if (!name || !version) {
        snprintf(errstr, errlen,
                 "model card '%s' (key model.card) lacks %s; set model.name / model.version",
                 card_path, name ? "'version'" : "'name'");
        return SS_ERR_CONFIG;
    }
    m->name = strdup(name);
    m->version = strdup(version);
    return m->name && m->version ? 0 : SS_ERR_NOMEM;
}

/* Feature names: the model file's own (the card's, if any, must agree), else the card's. */
static int feature_names(ss_model_t *m, const char *path, const char *card_path, card_info_t *ci,
                         char *errstr, size_t errlen) {
    bst_ulong n = 0, n_cols = 0;
    const char **names = NULL;
    if (XGBoosterGetStrFeatureInfo(m->booster, "feature_name", &n, &names) != 0) {
        snprintf(errstr, errlen, "model: reading feature names: %s", XGBGetLastError());
        return SS_ERR_CONFIG;
    }
    XGBoosterGetNumFeature(m->booster, &n_cols);
    if (n > 0) {
        if (!(m->feature_names = ss_strv_dup((char *const *)names, n))) {
            snprintf(errstr, errlen, "model: out of memory");
            return SS_ERR_NOMEM;
        }
        m->n_features = n;
        if (ci->names && !ss_strv_equal(ci->names, ci->n_names, m->feature_names, m->n_features)) {
            snprintf(errstr, errlen,
                     "model card '%s': feature_names differ from those in the model file '%s'",
                     card_path, path);
            return SS_ERR_CONFIG;
        }
    } else if (ci->names) {
        if (ci->n_names != n_cols) {
            snprintf(errstr, errlen, "model card '%s' names %zu features, the model has %lu",
                     card_path, ci->n_names, (unsigned long)n_cols);
            return SS_ERR_CONFIG;
        }
        m->feature_names = ci->names;
        m->n_features = ci->n_names;
        ci->names = NULL;
    } else {
        snprintf(errstr, errlen,
                 "model '%s' has no feature names, and no card gives them: features are mapped by "
                 "name",
                 path);
        return SS_ERR_CONFIG;
    }
    if (m->n_features == 0) {
        snprintf(errstr, errlen, "model '%s' has no features", path);
        return SS_ERR_CONFIG;
    }
    return 0;
}

/* The category names of one feature from XGBoost's encoding (gbtree model "cats": "enc"):
 * strings as UTF-8 bytes between offsets, or numbers (their text, "%.17g"). */
static char **category_names(json_t *enc, size_t *n) {
    json_t *values = json_object_get(enc, "values"), *offsets = json_object_get(enc, "offsets");
    size_t nv = json_array_size(values), no = json_array_size(offsets);
    int strings = json_is_array(offsets) && json_array_size(offsets) > 0;
    *n = strings ? no - 1 : nv;
    char **names = calloc(*n ? *n : 1, sizeof(char *));
    for (size_t i = 0; names && i < *n; i++) {
        char buf[64];
        if (strings) {
            size_t a = (size_t)json_integer_value(json_array_get(offsets, i));
            size_t b = (size_t)json_integer_value(json_array_get(offsets, i + 1));
            if (b < a || b > nv)
                b = a;
            if (!(names[i] = malloc(b - a + 1)))
                break;
            for (size_t k = a; k < b; k++)
                names[i][k - a] = (char)json_integer_value(json_array_get(values, k));
            names[i][b - a] = 0;
        } else {
            snprintf(buf, sizeof(buf), "%.17g", json_number_value(json_array_get(values, i)));
            names[i] = strdup(buf);
        }
        if (!names[i]) {
            ss_strv_free(names, i);
            return NULL;
        }
    }
    return names;
}

/* The gbtree model in XGBoost's JSON dump (dart keeps it one level down). */
static json_t *gbtree_model(json_t *root) {
    json_t *gb = json_object_get(json_object_get(root, "learner"), "gradient_booster");
    json_t *model = json_object_get(gb, "model");
    return model ? model : json_object_get(json_object_get(gb, "gbtree"), "model");
}

/* Which features are categorical (feature type 'c') and, when the model was trained with
 * their names (XGBoost 3.1 and later keep them), the names of their categories. */
static int read_categories(ss_model_t *m, char *errstr, size_t errlen) {
    bst_ulong n = 0;
    const char **types = NULL;
    if (XGBoosterGetStrFeatureInfo(m->booster, "feature_type", &n, &types) != 0 || n == 0)
        return 0;
    int any = 0;
    for (bst_ulong i = 0; i < n; i++)
        any |= strcmp(types[i], "c") == 0;
    if (!any || n != m->n_features)
        return 0;
    m->categorical = calloc(n, 1);
    m->categories = calloc(n, sizeof(*m->categories));
    m->n_categories = calloc(n, sizeof(*m->n_categories));
    if (!m->categorical || !m->categories || !m->n_categories)
        goto nomem;
    for (bst_ulong i = 0; i < n; i++)
        m->categorical[i] = strcmp(types[i], "c") == 0;
    bst_ulong len = 0;
    const char *text = NULL;
    if (XGBoosterSaveModelToBuffer(m->booster, "{\"format\": \"json\"}", &len, &text) != 0) {
        snprintf(errstr, errlen, "model '%s': XGBoost cannot write it as JSON: %s", m->path,
                 XGBGetLastError());
        return SS_ERR_CONFIG;
    }
    json_t *root = json_loadb(text, (size_t)len, 0, NULL);
    json_t *enc = json_object_get(json_object_get(gbtree_model(root), "cats"), "enc");
    int rc = 0;
    if (json_array_size(enc) == n) {
        for (bst_ulong i = 0; i < n && rc == 0; i++) {
            if (!m->categorical[i])
                continue;
            m->categories[i] = category_names(json_array_get(enc, i), &m->n_categories[i]);
            if (!m->categories[i])
                rc = SS_ERR_NOMEM;
            else if (m->n_categories[i] == 0) {
                free(m->categories[i]);
                m->categories[i] = NULL;
            }
        }
    }
    json_decref(root);
    if (rc == 0)
        return 0;
nomem:
    snprintf(errstr, errlen, "model: out of memory");
    return SS_ERR_NOMEM;
}

/* The objective's threshold when the card gives none; a binary probability's must be one. */
static int decide_threshold(ss_model_t *m, const char *card_path, char *errstr, size_t errlen) {
    const ss_objective_t *o = &m->objective;
    if (isnan(m->threshold)) {
        m->threshold = o->default_threshold;
        return 0;
    }
    if (o->task == SS_TASK_BINARY && strcmp(o->name, "binary:logitraw") != 0 &&
        !(m->threshold >= 0 && m->threshold <= 1)) {
        snprintf(errstr, errlen, "model card '%s': threshold %g is not in [0, 1] (objective %s)",
                 card_path, m->threshold, o->name);
        return SS_ERR_CONFIG;
    }
    return 0;
}

/* A model of `path` with no booster nor card yet, one reference; NULL with errstr. */
static ss_model_t *model_new(const char *path, char *errstr, size_t errlen) {
    ss_model_t *m = calloc(1, sizeof(*m));
    if (!m || !(m->path = strdup(path))) {
        snprintf(errstr, errlen, "model: out of memory");
        free(m);
        return NULL;
    }
    m->refcnt = 1;
    m->threshold = NAN;
    return m;
}

/* What a load that failed holds. */
static void load_failed(ss_model_t *m, card_info_t *ci) {
    json_decref(ci->card);
    ss_strv_free(ci->names, ci->n_names);
    model_free(m);
}

ss_model_t *ss_model_from_card(const char *text, size_t len, const char *what, char *errstr,
                               size_t errlen) {
    ss_model_t *m = model_new(what, errstr, errlen);
    card_info_t ci = {0};
    json_error_t jerr;
    if (!m)
        return NULL;
    ci.card = json_loadb(text, len, 0, &jerr);
    if (card_fields(m, what, &ci, &jerr, errstr, errlen) < 0 ||
        identity(m, what, ci.card, NULL, NULL, errstr, errlen) < 0) {
        load_failed(m, &ci);
        return NULL;
    }
    m->feature_names = ci.names;
    m->n_features = ci.n_names;
    m->card = ci.card;
    m->objective.n_outputs = 1;
    if (isnan(m->threshold))
        m->threshold = 0.5;
    return m;
}

/* The card's model_sha256, when it has one, against the file's. */
static int check_digest(const ss_model_t *m, const char *card_path, char *errstr, size_t errlen) {
    if (!m->sha256_card || strcasecmp(m->sha256_card, m->sha256) == 0)
        return 0;
    snprintf(errstr, errlen,
             "model file '%s' is not the one its card '%s' (key model.card) names: its SHA-256 "
             "is %s, the card's model_sha256 %s",
             m->path, card_path, m->sha256, m->sha256_card);
    return SS_ERR_CONFIG;
}

ss_model_t *ss_model_load(const char *path, const char *card_path, const char *name,
                          const char *version, char *errstr, size_t errlen) {
    return ss_model_load_signed(path, card_path, name, version, NULL, NULL, errstr, errlen);
}

ss_model_t *ss_model_load_signed(const char *path, const char *card_path, const char *name,
                                 const char *version, const char *sig_path, const char *key_path,
                                 char *errstr, size_t errlen) {
    ss_model_t *m = model_new(path, errstr, errlen);
    card_info_t ci = {0};
    double score;
    if (!m)
        return NULL;
    if (load_booster(m, path, sig_path, key_path, errstr, errlen) < 0)
        goto fail;
    if (card_path && access(card_path, R_OK) == 0) {
        if (read_card(m, card_path, &ci, errstr, errlen) < 0 ||
            check_digest(m, card_path, errstr, errlen) < 0)
            goto fail;
    } else if (!name || !version) {
        snprintf(errstr, errlen,
                 "model card '%s' (key model.card) cannot be read, and model.name / model.version "
                 "are not both set",
                 card_path ? card_path : "");
        goto fail;
    }
    if (identity(m, card_path, ci.card, name, version, errstr, errlen) < 0 ||
        feature_names(m, path, card_path, &ci, errstr, errlen) < 0 ||
        ss_objective_read(m->booster, path, &m->objective, errstr, errlen) < 0 ||
        decide_threshold(m, card_path, errstr, errlen) < 0 ||
        read_categories(m, errstr, errlen) < 0)
        goto fail;
    /* Probe: score one all-missing row now so that the learner is configured before
     * worker threads share it, and so that a model that cannot score fails at load. */
    if (probe(m, 1, &score, errstr, errlen) < 0)
        goto fail;
    m->card = ci.card; /* kept: ss_model_enable_drift reads its baseline */
    ss_strv_free(ci.names, ci.n_names);
    return m;
fail:
    load_failed(m, &ci);
    return NULL;
}

/* ---- scoring */

void ss_predictor_destroy(ss_predictor_t *p) {
    if (!p)
        return;
    if (p->proxy)
        XGDMatrixFree(p->proxy);
    free(p->row);
    free(p);
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

/* Score through XGBoost: *result points at its `rows` x n_outputs float values (XGBoost's
 * buffer; margins for multi:softmax). */
static int xgb_predict(ss_model_t *m, ss_predictor_t *p, const float *data, size_t rows,
                       const float **result, char *errstr, size_t errlen) {
    snprintf(p->iface, sizeof(p->iface),
             "{\"data\": [%lu, true], \"shape\": [%zu, %zu], \"strides\": null, "
             "\"typestr\": \"<f4\", \"version\": 3}",
             (unsigned long)(uintptr_t)data, rows, m->n_features);
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    if (XGBoosterPredictFromDense(m->booster, p->iface,
                                  m->objective.softmax ? margin_config : predict_config, p->proxy,
                                  &shape, &dim, result) != 0) {
        snprintf(errstr, errlen, "model: predict failed: %s", XGBGetLastError());
        return SS_ERR_FAIL;
    }
    bst_ulong total = 1;
    for (bst_ulong i = 0; i < dim; i++)
        total *= shape[i];
    size_t outs = m->objective.n_outputs ? m->objective.n_outputs : 1;
    if (total != rows * outs) {
        snprintf(errstr, errlen,
                 "model '%s': objective %s predicted %lu values for %zu rows, not %zu a row",
                 m->path, m->objective.name, (unsigned long)total, rows, outs);
        return SS_ERR_FAIL;
    }
    return 0;
}

int ss_model_predict(ss_model_t *m, ss_predictor_t *p, const float *data, size_t rows, double *out,
                     char *errstr, size_t errlen) {
    return ss_model_predict_outputs(m, p, data, rows, out, NULL, NULL, errstr, errlen);
}

int ss_model_predict_outputs(ss_model_t *m, ss_predictor_t *p, const float *data, size_t rows,
                             double *scores, double *outputs, int *classes, char *errstr,
                             size_t errlen) {
    if (rows == 0)
        return 0;
    size_t k = m->objective.n_outputs;
    if (m->forest) {
        ss_forest_predict(m->forest, data, rows, scores);
        for (size_t i = 0; i < rows; i++) {
            if (outputs)
                outputs[i] = scores[i];
            if (classes)
                classes[i] = -1;
        }
        return 0;
    }
    const float *result = NULL;
    int rc = xgb_predict(m, p, data, rows, &result, errstr, errlen);
    if (rc < 0)
        return rc;
    if (k <= 1) {
        for (size_t i = 0; i < rows; i++) {
            scores[i] = result[i];
            if (outputs)
                outputs[i] = result[i];
            if (classes)
                classes[i] = -1;
        }
        return 0;
    }
    if (p->row_cap < k) {
        float *row = realloc(p->row, k * sizeof(float));
        if (!row) {
            snprintf(errstr, errlen, "model: out of memory");
            return SS_ERR_NOMEM;
        }
        p->row = row;
        p->row_cap = k;
    }
    for (size_t i = 0; i < rows; i++) {
        int cls;
        memcpy(p->row, result + i * k, k * sizeof(float));
        ss_objective_finish_row(&m->objective, p->row, &scores[i], &cls);
        if (classes)
            classes[i] = cls;
        for (size_t j = 0; outputs && j < k; j++)
            outputs[i * k + j] = p->row[j];
    }
    return 0;
}

static const char contribs_config[] =
    "{\"type\": 2, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0,"
    " \"strict_shape\": true}";

int ss_model_contributions(ss_model_t *m, const float *data, size_t rows, const float **out,
                           char *errstr, size_t errlen) {
    char iface[256];
    snprintf(iface, sizeof(iface),
             "{\"data\": [%lu, true], \"shape\": [%zu, %zu], \"strides\": null, "
             "\"typestr\": \"<f4\", \"version\": 3}",
             (unsigned long)(uintptr_t)data, rows, m->n_features);
    DMatrixHandle dm = NULL;
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    int rc = SS_ERR_FAIL;
    if (XGDMatrixCreateFromDense(iface, "{\"missing\": NaN, \"nthread\": 1}", &dm) != 0)
        goto xgb;
    if (XGBoosterPredictFromDMatrix(m->booster, dm, contribs_config, &shape, &dim, out) != 0)
        goto xgb;
    bst_ulong total = 1;
    for (bst_ulong i = 0; i < dim; i++)
        total *= shape[i];
    if (total != rows * m->objective.n_outputs * (m->n_features + 1)) {
        snprintf(errstr, errlen, "model '%s': %lu contributions for %zu rows of %zu outputs",
                 m->path, (unsigned long)total, rows, m->objective.n_outputs);
        goto out;
    }
    rc = 0;
    goto out;
xgb:
    snprintf(errstr, errlen, "model '%s': contributions: %.*s", m->path,
             (int)strcspn(XGBGetLastError(), "\n"), XGBGetLastError());
out:
    if (dm)
        XGDMatrixFree(dm);
    return rc;
}

static int same_categories(const ss_model_t *a, const ss_model_t *b, size_t f) {
    int ca = a->categorical && a->categorical[f], cb = b->categorical && b->categorical[f];
    if (ca != cb)
        return 0;
    if (!ca)
        return 1;
    return ss_strv_equal(a->categories[f], a->categories[f] ? a->n_categories[f] : 0,
                         b->categories[f], b->categories[f] ? b->n_categories[f] : 0);
}

int ss_model_same_interface(const ss_model_t *a, const ss_model_t *b, char *why, size_t whylen) {
    if (!ss_strv_equal(a->feature_names, a->n_features, b->feature_names, b->n_features)) {
        snprintf(why, whylen, "other feature names (%zu vs %zu features, mapped by name)",
                 a->n_features, b->n_features);
        return 0;
    }
    for (size_t f = 0; f < a->n_features; f++) {
        if (!same_categories(a, b, f)) {
            snprintf(why, whylen, "other categories for feature '%s'", a->feature_names[f]);
            return 0;
        }
    }
    int ma = a->objective.task == SS_TASK_MULTICLASS, mb = b->objective.task == SS_TASK_MULTICLASS;
    if (ma != mb || a->objective.n_outputs != b->objective.n_outputs) {
        snprintf(why, whylen, "another kind of output (%s with %zu output%s vs %s with %zu)",
                 ss_task_name(a->objective.task), a->objective.n_outputs,
                 a->objective.n_outputs == 1 ? "" : "s", ss_task_name(b->objective.task),
                 b->objective.n_outputs);
        return 0;
    }
    return 1;
}

/* Whether forest f scores what XGBoost does on rows that take each split both ways: 1 yes,
 * 0 no (why says where), or a negative error with errstr. */
static int forest_agrees(ss_model_t *m, const ss_forest_t *f, char *why, size_t whylen,
                         char *errstr, size_t errlen) {
    float *rows = NULL;
    double *ours = NULL;
    size_t n = 0;
    ss_predictor_t *p = ss_predictor_new(errstr, errlen);
    int rc = p ? SS_ERR_NOMEM : SS_ERR_FAIL;
    if (!p || ss_forest_check_rows(f, 1, &rows, &n) < 0 || !(ours = malloc(n * sizeof(*ours)))) {
        if (p)
            snprintf(errstr, errlen, "model: out of memory");
        goto out;
    }
    const float *theirs = NULL;
    if ((rc = xgb_predict(m, p, rows, n, &theirs, errstr, errlen)) < 0)
        goto out;
    ss_forest_predict(f, rows, n, ours);
    rc = 1;
    for (size_t i = 0; i < n; i++) {
        float o = (float)ours[i];
        if (memcmp(&o, &theirs[i], sizeof(o)) != 0) {
            snprintf(why, whylen, "check row %zu of %zu scores %.9g, XGBoost %.9g", i, n, o,
                     theirs[i]);
            rc = 0;
            break;
        }
    }
    if (rc == 1)
        snprintf(why, whylen, "%zu check rows", n);
out:
    free(rows);
    free(ours);
    ss_predictor_destroy(p);
    return rc;
}

int ss_model_compile(ss_model_t *m, char *errstr, size_t errlen) {
    bst_ulong len = 0;
    const char *json = NULL;
    char why[256] = "";
    ss_forest_t *f = NULL;
    int rc = 0;
    if (XGBoosterSaveModelToBuffer(m->booster, "{\"format\": \"json\"}", &len, &json) != 0) {
        snprintf(why, sizeof(why), "XGBoost cannot write it as JSON: %s", XGBGetLastError());
    } else if ((rc = ss_forest_compile(json, (size_t)len, m->n_features, &f, why, sizeof(why))) ==
               SS_ERR_NOMEM) {
        snprintf(errstr, errlen, "model: out of memory");
        return rc;
    } else if (rc == 0 && (rc = forest_agrees(m, f, why, sizeof(why), errstr, errlen)) == 1) {
        m->forest = f;
        ss_log(SS_LOG_INFO,
               SS_FIELDS(SSF_STR("model", m->path), SSF_STR("predictor", "compiled"),
                         SSF_INT("trees", ss_forest_trees(f)),
                         SSF_INT("max_depth", ss_forest_max_depth(f)), SSF_STR("checked", why)),
               "model: scoring with its compiled trees (the bits of XGBoost's predictor on %s)",
               why);
        return 0;
    }
    ss_forest_destroy(f);
    if (rc < 0 && rc != SS_ERR_CONFIG)
        return rc;
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("model", m->path), SSF_STR("predictor", "xgboost"),
                     SSF_STR("reason", why)),
           "model: scoring with XGBoost's predictor: its trees are not compiled (%s)", why);
    return 0;
}

/* One log line: the objective, its outputs, the decision, the categorical features. */
static void describe_outputs(const ss_model_t *m, double configured) {
    const ss_objective_t *o = &m->objective;
    char outs[256] = "", decision[96];
    size_t n = 0, cats = 0;
    for (size_t i = 0; o->n_outputs > 1 && i < o->n_outputs && n < sizeof(outs) - 8; i++)
        n += (size_t)snprintf(outs + n, sizeof(outs) - n, "%s%s", i ? ", " : " (",
                              o->output_names[i]);
    if (n)
        snprintf(outs + n, sizeof(outs) - n, ")");
    double t = ss_model_threshold(m, configured);
    if (o->task == SS_TASK_MULTICLASS)
        snprintf(decision, sizeof(decision), "the predicted class");
    else if (isnan(t))
        snprintf(decision, sizeof(decision), "none");
    else
        snprintf(decision, sizeof(decision), "score >= %g", t);
    for (size_t f = 0; m->categorical && f < m->n_features; f++)
        cats += m->categorical[f];
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("model", m->path), SSF_STR("objective", o->name),
                     SSF_STR("task", ss_task_name(o->task)), SSF_INT("outputs", o->n_outputs),
                     SSF_INT("categorical_features", cats)),
           "model: objective %s (%s), %zu output%s%s, decision: %s, %zu categorical feature%s",
           o->name, ss_task_name(o->task), o->n_outputs, o->n_outputs == 1 ? "" : "s", outs,
           decision, cats, cats == 1 ? "" : "s");
}

int ss_model_open(const ss_config_t *cfg, const ss_model_t *running, ss_model_t **out, char *errstr,
                  size_t errlen) {
    *out = NULL;
    char sig[4096];
    const char *key =
        cfg->model_signature_key && *cfg->model_signature_key ? cfg->model_signature_key : NULL;
    snprintf(sig, sizeof(sig), "%s%s",
             cfg->model_signature ? cfg->model_signature : cfg->model_path,
             cfg->model_signature ? "" : ".sig");
    ss_model_t *m = ss_model_load_signed(cfg->model_path, cfg->model_card, cfg->model_name,
                                         cfg->model_version, sig, key, errstr, errlen);
    if (!m)
        return SS_ERR_CONFIG;
    char why[256];
    if (running && !ss_model_same_interface(running, m, why, sizeof(why))) {
        snprintf(errstr, errlen,
                 "model '%s' (version %s) has %s than the running model: a new feature mapping "
                 "or output needs a restart",
                 cfg->model_path, m->version, why);
        goto fail;
    }
    double t = cfg->model_threshold;
    if (!isnan(t) && m->objective.task == SS_TASK_BINARY &&
        strcmp(m->objective.name, "binary:logitraw") != 0 && !(t >= 0 && t <= 1)) {
        snprintf(errstr, errlen,
                 "config: key 'model.threshold': %g is not in [0, 1], and model '%s' (objective "
                 "%s) scores probabilities",
                 t, cfg->model_path, m->objective.name);
        goto fail;
    }
    if (cfg->model_predictor == SS_PREDICTOR_AUTO && ss_model_compile(m, errstr, errlen) < 0)
        goto fail;
    if (ss_model_check(m, errstr, errlen) < 0)
        goto fail;
    describe_outputs(m, cfg->model_threshold);
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

void ss_model_card_path(const char *path, char *out, size_t len) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    size_t n = strlen(path);
    if (dot && (!slash || dot > slash) &&
        (strcmp(dot, ".json") == 0 || strcmp(dot, ".ubj") == 0 || strcmp(dot, ".ubjson") == 0))
        n = (size_t)(dot - path);
    snprintf(out, len, "%.*s.card.json", (int)n, path);
}
