/* model.h - an XGBoost booster with its identity (name, version, feature names).
 * One model is shared by every worker thread; it is reference-counted so that it can
 * be replaced while running. Prediction state that is per thread lives in ss_predictor_t. */
#ifndef SS_MODEL_H
#define SS_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct ss_model {
    void *booster;         /* BoosterHandle; immutable after load */
    char **feature_names;  /* model order */
    size_t n_features;
    char *name;
    char *version;
    char *path;
    char *sha256_card;     /* the card's model_sha256, or NULL */
    double threshold;      /* the card's decision threshold, else 0.5 */
    void *card;            /* the card (json_t *), or NULL */
    struct ss_drift *drift; /* feature and score drift against the card, or NULL */
    int refcnt;            /* atomic */
} ss_model_t;

/* Measure drift over the last `window` scored records against the card's baseline (none
 * without a card or a baseline in it). Returns 0, or -1 with errstr on a malformed baseline. */
int ss_model_enable_drift(ss_model_t *m, long window, double threshold, char *errstr,
                          size_t errlen);

/* Score a probe batch (all missing, all 0, all 1): 0 if every score is finite, else -1 with
 * errstr. */
int ss_model_check(ss_model_t *m, char *errstr, size_t errlen);

/* Load a model file (JSON or UBJSON) and its card. name/version override the card's
 * (either may be NULL); a card that does not exist is fine when both are given.
 * Returns a model with one reference, or NULL with errstr. */
ss_model_t *ss_model_load(const char *path, const char *card_path, const char *name,
                          const char *version, char *errstr, size_t errlen);

/* The threshold to decide at: `configured` (model.threshold) unless it is NaN (not set),
 * then the model card's, else 0.5. */
double ss_model_threshold(const ss_model_t *m, double configured);

/* Take / drop a reference. @locality any thread */
ss_model_t *ss_model_ref(ss_model_t *m);
void ss_model_unref(ss_model_t *m);

/* Per-thread prediction state: a proxy DMatrix and a reusable request buffer. */
typedef struct ss_predictor {
    void *proxy; /* DMatrixHandle */
    char iface[256];
} ss_predictor_t;

ss_predictor_t *ss_predictor_new(char *errstr, size_t errlen);
void ss_predictor_destroy(ss_predictor_t *p);

/* Score `rows` rows of `m->n_features` float32 values (NaN = missing), row-major.
 * Writes one score per row into `out`. Returns 0 or -1 with errstr.
 * @locality the thread that owns `p` */
int ss_model_predict(ss_model_t *m, ss_predictor_t *p, const float *data, size_t rows,
                     double *out, char *errstr, size_t errlen);

/* The version string of the linked XGBoost library, e.g. "3.2.0". */
const char *ss_model_xgboost_version(void);

#endif
