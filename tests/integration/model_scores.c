/* model_scores - score feature vectors with a model through streamscore's model module,
 * printing a JSON array of scores. The integration suite compares them with Python
 * XGBoost's, for model files saved by several XGBoost releases.
 * Usage: model_scores MODEL_FILE VECTORS_JSON [compiled]   (VECTORS_JSON: [[1.0, null, ...],
 * ...] or {"vectors": [...]}; null is a missing value). With "compiled" the model's compiled
 * trees score (exit 3 when the model's trees are not compiled), else XGBoost's predictor. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int main(int argc, char **argv) {
    if (argc != 3 && (argc != 4 || strcmp(argv[3], "compiled") != 0)) {
        fprintf(stderr, "usage: model_scores MODEL_FILE VECTORS_JSON [compiled]\n");
        return 2;
    }
    char err[1024];
    /* the card is optional here: identity does not matter for scoring */
    ss_model_t *m = ss_model_load(argv[1], NULL, "compat", "0", err, sizeof(err));
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (argc == 4 && (ss_model_compile(m, err, sizeof(err)) < 0 || !m->forest)) {
        fprintf(stderr, "%s: the trees are not compiled\n", argv[1]);
        return 3;
    }
    json_error_t jerr;
    json_t *doc = json_load_file(argv[2], 0, &jerr);
    json_t *vecs = json_is_object(doc) ? json_object_get(doc, "vectors") : doc;
    if (!json_is_array(vecs)) {
        fprintf(stderr, "%s: expected an array of vectors (%s)\n", argv[2], jerr.text);
        return 2;
    }
    size_t rows = json_array_size(vecs), nf = m->n_features;
    float *data = malloc((rows ? rows : 1) * nf * sizeof(float));
    double *scores = malloc((rows ? rows : 1) * sizeof(double));
    for (size_t r = 0; r < rows; r++) {
        json_t *row = json_array_get(vecs, r);
        if (json_array_size(row) != nf) {
            fprintf(stderr, "vector %zu has %zu values, the model %zu features\n", r,
                    json_array_size(row), nf);
            return 2;
        }
        for (size_t f = 0; f < nf; f++) {
            json_t *v = json_array_get(row, f);
            data[r * nf + f] = json_is_number(v) ? (float)json_number_value(v) : NAN;
        }
    }
    ss_predictor_t *p = ss_predictor_new(err, sizeof(err));
    if (!p || ss_model_predict(m, p, data, rows, scores, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("[");
    for (size_t r = 0; r < rows; r++)
        printf("%s%.9g", r ? ", " : "", scores[r]);
    printf("]\n");
    ss_predictor_destroy(p);
    ss_model_unref(m);
    json_decref(doc);
    free(data);
    free(scores);
    return 0;
}
