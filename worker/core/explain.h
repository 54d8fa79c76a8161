/* explain.h - explanations of predictions: which events are explained (explain.sample,
 * explain.when) and the top-k of a row of SHAP contributions (XGBoost's exact TreeSHAP, as
 * ss_model_contributions computes them). */
#ifndef SS_EXPLAIN_H
#define SS_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "prediction.h"

#define SS_EXPLAIN_MAX_CLASS 1024

typedef enum { SS_EXPLAIN_ALWAYS, SS_EXPLAIN_DECISION, SS_EXPLAIN_CLASS } ss_explain_kind_t;

/* explain.when, parsed. */
typedef struct ss_explain_when {
    int kind;                                    /* ss_explain_kind_t */
    unsigned char classes[SS_EXPLAIN_MAX_CLASS]; /* SS_EXPLAIN_CLASS: 1 for each class named */
} ss_explain_when_t;

/* "always", "decision" or "class:N[,N...]" (0 <= N < SS_EXPLAIN_MAX_CLASS). Returns 0, or
 * SS_ERR_CONFIG with errstr naming the key explain.when. */
int ss_explain_parse_when(const char *text, ss_explain_when_t *when, char *errstr, size_t errlen);

/* Whether the prediction of the record at (partition, offset), with `decision` (-1 none) and
 * predicted class `cls` (-1 none), is explained: it passes `when`, and a hash of its
 * position falls within `sample` (0..1). The same records on every run. */
int ss_explain_selected(const ss_explain_when_t *when, double sample, int32_t partition,
                        int64_t offset, int decision, int cls);

/* The k contributions of one row with the largest absolute values, largest first (equal ones
 * in feature order), into out (at most k, and at most nf); `contrib` holds nf contributions
 * then the bias, `x` the row's nf values (NaN: missing). Returns how many; *bias the bias. */
size_t ss_explain_top(const float *contrib, const float *x, size_t nf, char *const *names, size_t k,
                      ss_contribution_t *out, double *bias);

#endif
