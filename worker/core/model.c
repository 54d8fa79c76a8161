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
        snprintf(errstr, errlen, "model: XGBoost cannot load '%s': %s", path, XGBGetLastError());
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
        if (!(t >= 0 && t <= 1)) {
            snprintf(errstr, errlen, "model card '%s': threshold %g is not in [0, 1]", card_path,
                     t);
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

/* A model of `path` with no booster nor card yet, one reference; NULL with errstr. */
static ss_model_t *model_new(const char *path, char *errstr, size_t errlen) {
    ss_model_t *m = calloc(1, sizeof(*m));
    if (!m || !(m->path = strdup(path))) {
        snprintf(errstr, errlen, "model: out of memory");
        free(m);
        return NULL;
    }
    m->refcnt = 1;
    m->threshold = 0.5;
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
        feature_names(m, path, card_path, &ci, errstr, errlen) < 0)
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

/* Score through XGBoost: *result points at its `rows` float scores (XGBoost's buffer). */
static int xgb_predict(ss_model_t *m, ss_predictor_t *p, const float *data, size_t rows,
                       const float **result, char *errstr, size_t errlen) {
    snprintf(p->iface, sizeof(p->iface),
             "{\"data\": [%lu, true], \"shape\": [%zu, %zu], \"strides\": null, "
             "\"typestr\": \"<f4\", \"version\": 3}",
             (unsigned long)(uintptr_t)data, rows, m->n_features);
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    if (XGBoosterPredictFromDense(m->booster, p->iface, predict_config, p->proxy, &shape, &dim,
                                  result) != 0) {
        snprintf(errstr, errlen, "model: predict failed: %s", XGBGetLastError());
        return SS_ERR_FAIL;
    }
    bst_ulong total = 1;
    for (bst_ulong i = 0; i < dim; i++)
        total *= shape[i];
    if (total != rows) {
        snprintf(errstr, errlen,
                 "model: predict returned %lu values for %zu rows (only single-output models "
                 "are supported)",
                 (unsigned long)total, rows);
        return SS_ERR_FAIL;
    }
    return 0;
}

int ss_model_predict(ss_model_t *m, ss_predictor_t *p, const float *data, size_t rows, double *out,
                     char *errstr, size_t errlen) {
    if (rows == 0)
        return 0;
    if (m->forest) {
        ss_forest_predict(m->forest, data, rows, out);
        return 0;
    }
    const float *result = NULL;
    int rc = xgb_predict(m, p, data, rows, &result, errstr, errlen);
    for (size_t i = 0; rc == 0 && i < rows; i++)
        out[i] = result[i];
    return rc;
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
    if (running && !ss_strv_equal(running->feature_names, running->n_features, m->feature_names,
                                  m->n_features)) {
        snprintf(errstr, errlen,
                 "model '%s' (version %s) has other feature names than the running model "
                 "(%zu vs %zu features, mapped by name): a new feature mapping needs a restart",
                 cfg->model_path, m->version, m->n_features, running->n_features);
        goto fail;
    }
    if (cfg->model_predictor == SS_PREDICTOR_AUTO && ss_model_compile(m, errstr, errlen) < 0)
        goto fail;
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

void ss_model_card_path(const char *path, char *out, size_t len) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    size_t n = strlen(path);
    if (dot && (!slash || dot > slash) &&
        (strcmp(dot, ".json") == 0 || strcmp(dot, ".ubj") == 0 || strcmp(dot, ".ubjson") == 0))
        n = (size_t)(dot - path);
    snprintf(out, len, "%.*s.card.json", (int)n, path);
}
