/* model.h - an XGBoost booster with its identity (name, version, feature names).
 * One model is shared by every worker thread; it is reference-counted so that it can
 * be replaced while running. Prediction state that is per thread lives in ss_predictor_t. */
#ifndef SS_MODEL_H
#define SS_MODEL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "error.h"
#include "objective.h"

typedef struct ss_model {
    void *booster;        /* BoosterHandle; immutable after load */
    char **feature_names; /* model order */
    size_t n_features;
    char *name;
    char *version;
    char *path;
    char *sha256_card;        /* the card's model_sha256, or NULL */
    char sha256[65];          /* the model file's SHA-256 (hex), of the bytes loaded */
    double threshold;         /* the card's decision threshold, else the objective's (binary
                                 0.5, binary:logitraw 0), else NaN: no decision */
    ss_objective_t objective; /* the task, the outputs per row and which one is the score */
    /* native categorical features (XGBoost's feature type 'c'): per feature, 1 when it is one,
     * and the category names the model was trained with (code i = names[i]), NULL when the
     * model carries none (then its codes are read as they come: an enum's index) */
    unsigned char *categorical;
    char ***categories;
    size_t *n_categories;
    void *card;               /* the card (json_t *), or NULL */
    struct ss_drift *drift;   /* feature and score drift against the card, or NULL */
    struct ss_forest *forest; /* the compiled trees that score (forest.c), or NULL: XGBoost */
    int refcnt;               /* atomic */
} ss_model_t;

/* Measure drift over the last `window` scored records against the card's baseline (none
 * without a card or a baseline in it). Returns 0, or SS_ERR_CONFIG with errstr on a malformed
 * baseline, or SS_ERR_NOMEM. */
int ss_model_enable_drift(ss_model_t *m, long window, double threshold, char *errstr,
                          size_t errlen);

/* Score a probe batch (all missing, all 0, all 1): 0 if every score is finite, SS_ERR_CONFIG
 * with errstr naming the row that is not, or the error of scoring (SS_ERR_FAIL, SS_ERR_NOMEM). */
int ss_model_check(ss_model_t *m, char *errstr, size_t errlen);

/* Load a model file (JSON or UBJSON) and its card. name/version override the card's
 * (either may be NULL); a card that does not exist is fine when both are given. A card with a
 * model_sha256 must name the file's: any other file is refused.
 * Returns a model with one reference, or NULL with errstr. */
ss_model_t *ss_model_load(const char *path, const char *card_path, const char *name,
                          const char *version, char *errstr, size_t errlen);

/* ss_model_load, and with key_path (a PEM Ed25519 public key) the file's bytes must first
 * verify against the signature in sig_path (artifact.c). */
ss_model_t *ss_model_load_signed(const char *path, const char *card_path, const char *name,
                                 const char *version, const char *sig_path, const char *key_path,
                                 char *errstr, size_t errlen);

/* What ss_model_load reads of a card, from `len` bytes of its JSON text (`what` names it in
 * errors): a model without a booster, for tests and the fuzz target (drift may be enabled;
 * it cannot score). Returns a model with one reference, or NULL with errstr. */
ss_model_t *ss_model_from_card(const char *text, size_t len, const char *what, char *errstr,
                               size_t errlen);

/* The threshold to decide at: `configured` (model.threshold) unless it is NaN (not set),
 * then the model card's, else the objective's default (binary: 0.5, binary:logitraw: 0).
 * NaN: no decision (multi-class, whose decision is its predicted class; regression, ranking
 * and survival without a threshold set). */
double ss_model_threshold(const ss_model_t *m, double configured);

/* m's categorical features for the codec (ss_codec_new_cats); `unseen`: features.unseen.category.
 * Valid while m is. */
void ss_model_codec_cats(const ss_model_t *m, int unseen, ss_codec_cats_t *out);

/* Take / drop a reference. @locality any thread */
ss_model_t *ss_model_ref(ss_model_t *m);
void ss_model_unref(ss_model_t *m);

/* Per-thread prediction state: a proxy DMatrix, a reusable request buffer and a row of
 * outputs. */
typedef struct ss_predictor {
    void *proxy; /* DMatrixHandle */
    char iface[256];
    float *row; /* one row of outputs (multi-output models) */
    size_t row_cap;
} ss_predictor_t;

ss_predictor_t *ss_predictor_new(char *errstr, size_t errlen);
void ss_predictor_destroy(ss_predictor_t *p);

/* Score `rows` rows of `m->n_features` float32 values (NaN = missing), row-major, with the
 * compiled trees when the model has them, else XGBoost's predictor (the same bits either way).
 * Writes one score per row into `out`. Returns 0 or SS_ERR_FAIL with errstr.
 * @locality the thread that owns `p` */
int ss_model_predict(ss_model_t *m, ss_predictor_t *p, const float *data, size_t rows, double *out,
                     char *errstr, size_t errlen);

/* ss_model_predict with every output: `scores` (rows), and when not NULL `outputs`
 * (rows x m->objective.n_outputs, row-major: class probabilities, quantiles or targets; for a
 * single-output model the score again) and `classes` (rows: the predicted class of a
 * multi-class model, else -1). A row with a non-finite output scores NaN.
 * @locality the thread that owns `p` */
int ss_model_predict_outputs(ss_model_t *m, ss_predictor_t *p, const float *data, size_t rows,
                             double *scores, double *outputs, int *classes, char *errstr,
                             size_t errlen);

/* SHAP contributions of `rows` rows (XGBoost's exact TreeSHAP: XGBoosterPredictFromDMatrix
 * with pred_contribs): *out points at rows x n_outputs x (n_features + 1) floats, each
 * output's feature contributions then its bias (XGBoost's buffer, valid until the thread's
 * next prediction with m). Returns 0, or SS_ERR_FAIL / SS_ERR_NOMEM with errstr.
 * @locality any thread; the result is the calling thread's */
int ss_model_contributions(ss_model_t *m, const float *data, size_t rows, const float **out,
                           char *errstr, size_t errlen);

/* Whether two models read the same inputs and write the same kind of outputs: feature names,
 * categories and types, the number of outputs, and both multi-class or neither (a binary
 * model may give way to a regression of the same features, e.g. reg:logistic). 1 yes; 0 no,
 * with why (for a message). */
int ss_model_same_interface(const ss_model_t *a, const ss_model_t *b, char *why, size_t whylen);

/* Compile m's trees (forest.c) and score with them from now on when they give XGBoost's bits
 * on rows that take every split both ways (ss_forest_check_rows); else keep XGBoost's
 * predictor. Logs which predictor scores and why. Returns 0 either way, or a negative error
 * with errstr (out of memory, XGBoost failing). Call before the model is shared. */
int ss_model_compile(ss_model_t *m, char *errstr, size_t errlen);

/* The one way a model comes into service, at start-up, on reload and in validate-model:
 * load model.path with model.card (model.name / model.version override the card's), score a
 * probe batch (every score finite), compile its trees unless model.predictor = xgboost (kept
 * only when they score XGBoost's bits on check rows; the log says which predictor scores),
 * require the feature names of `running` when one is given
 * (a reload cannot change the feature mapping), and enable drift (drift.window,
 * drift.threshold). Stores a model with one reference in *out. Returns 0, or SS_ERR_CONFIG
 * with errstr saying which check failed. */
int ss_model_open(const ss_config_t *cfg, const ss_model_t *running, ss_model_t **out, char *errstr,
                  size_t errlen);

/* Where the running model lives: swapped whole on reload, while batches in flight keep the
 * reference they took. @locks lock guards model; taken only to take a reference or to swap. */
typedef struct ss_model_slot {
    pthread_mutex_t lock;
    ss_model_t *model;
} ss_model_slot_t;

/* Takes a reference to `m`. */
void ss_model_slot_init(ss_model_slot_t *s, ss_model_t *m);
/* Drops the slot's reference. */
void ss_model_slot_destroy(ss_model_slot_t *s);
/* A reference to the model in the slot now; the caller unrefs it. @locality any thread */
ss_model_t *ss_model_slot_acquire(ss_model_slot_t *s);
/* Put `m` in the slot (takes the caller's reference); returns the previous model with the
 * slot's reference, for the caller to unref. @locality any thread */
ss_model_t *ss_model_slot_swap(ss_model_slot_t *s, ss_model_t *m);

/* The card that goes with model file `path` by default: its .json, .ubj or .ubjson extension
 * replaced by .card.json (appended when it has none). */
void ss_model_card_path(const char *path, char *out, size_t len);

/* The version string of the linked XGBoost library, e.g. "3.2.0". */
const char *ss_model_xgboost_version(void);

#endif
