/* forest.h - an XGBoost tree ensemble compiled into flat node arrays and scored without the
 * library: a batch's rows walk every tree sixteen at a time, branch-free, and sum leaf values in
 * XGBoost's order and precision, so that the scores are the bits XGBoost's own predictor gives.
 * Only models whose every part is reproduced exactly compile (see ss_forest_compile); model.c
 * checks each compiled forest against XGBoost before it scores (ss_forest_check_rows) and
 * keeps XGBoost's predictor for every other model. Immutable once compiled: shared by all
 * threads. */
#ifndef SS_FOREST_H
#define SS_FOREST_H

#include <stddef.h>

#include "error.h"

typedef struct ss_forest ss_forest_t;

/* Compile the model in `json` (`len` bytes: XGBoost's JSON model format, as
 * XGBoosterSaveModelToBuffer writes it) for rows of `n_features` values. Compiles a gbtree
 * booster with one output (objective binary:logistic, reg:logistic, binary:logitraw or
 * reg:squarederror), numerical splits only, trees of at most 16 levels and thresholds whose
 * float value is certain from their text. Returns 0 with the forest in *out; SS_ERR_CONFIG with
 * `why` saying what is not supported (or is malformed); SS_ERR_NOMEM. */
int ss_forest_compile(const char *json, size_t len, size_t n_features, ss_forest_t **out, char *why,
                      size_t whylen);
void ss_forest_destroy(ss_forest_t *f);

/* Score `rows` rows of the forest's n_features float32 values (NaN = missing), row-major,
 * into out: XGBoost's float output (after the objective's transform), widened. @locality any */
void ss_forest_predict(const ss_forest_t *f, const float *x, size_t rows, double *out);

size_t ss_forest_trees(const ss_forest_t *f);
int ss_forest_max_depth(const ss_forest_t *f);

/* Rows that take every split both ways: for each split, a row at its threshold and one just
 * below it (the other features drawn from the forest's thresholds, from seed), then the all
 * missing, all 0 and all 1 rows. Beyond 4 Mi values in all (2 x splits x features), every
 * k-th of those rows only, k as small as keeps them under it. A malloc'ed row-major array
 * into *rows, its row count into *n. Returns 0 or SS_ERR_NOMEM. */
int ss_forest_check_rows(const ss_forest_t *f, unsigned seed, float **rows, size_t *n);

#endif
