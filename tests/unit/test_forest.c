/* test_forest.c - compiled trees (core/forest.c): they score the bits of XGBoost's predictor
 * for every objective they take, they refuse every model they do not reproduce, their check
 * rows take each split both ways, and model.predictor chooses (core/model.c). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "error.h"
#include "forest.h"
#include "model.h"

#define MODEL "models/churn-1.0.0.json"
#define CARD "models/churn-1.0.0.card.json"

static char err[1024];

static json_t *churn(void) {
    json_error_t jerr;
    json_t *m = json_load_file(MODEL, 0, &jerr);
    if (!m) {
        fprintf(stderr, "%s: %s\n", MODEL, jerr.text);
        exit(1);
    }
    return m;
}

static json_t *learner(json_t *m) {
    return json_object_get(m, "learner");
}

static json_t *tree0(json_t *m) {
    json_t *gb = json_object_get(learner(m), "gradient_booster");
    return json_array_get(json_object_get(json_object_get(gb, "model"), "trees"), 0);
}

/* ss_forest_compile of model m: its return code, the reason in err. */
static int compile(json_t *m, ss_forest_t **f) {
    char *text = json_dumps(m, JSON_COMPACT);
    int rc = ss_forest_compile(text, strlen(text), 11, f, err, sizeof(err));
    free(text);
    return rc;
}

/* Model m in a temporary file, loaded through XGBoost (no card: name and version given). */
static ss_model_t *load(json_t *m, char *path) {
    strcpy(path, "/tmp/test_forest_XXXXXX.json");
    int fd = mkstemps(path, 5);
    if (fd < 0 || json_dumpfd(m, fd, JSON_COMPACT) < 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    close(fd);
    ss_model_t *model = ss_model_load(path, NULL, "t", "1", err, sizeof(err));
    if (!model)
        fprintf(stderr, "load: %s\n", err);
    return model;
}

/* Rows from the forest's own check rows, shuffled into more combinations. */
static float *rows_for(const ss_forest_t *f, unsigned seed, size_t *n) {
    float *x = NULL;
    if (ss_forest_check_rows(f, seed, &x, n) < 0)
        exit(1);
    return x;
}

static void each_objective_it_takes_scores_the_bits_of_xgboosts_predictor(void) {
    static const char *const objectives[] = {"binary:logistic", "reg:logistic", "binary:logitraw",
                                             "reg:squarederror"};
    for (size_t o = 0; o < sizeof(objectives) / sizeof(objectives[0]); o++) {
        json_t *m = churn();
        json_object_set_new(json_object_get(learner(m), "objective"), "name",
                            json_string(objectives[o]));
        char path[64], path2[64];
        ss_model_t *xgb = load(m, path), *compiled = load(m, path2);
        CHECK(xgb && compiled);
        if (!xgb || !compiled)
            continue;
        CHECK(ss_model_compile(compiled, err, sizeof(err)) == 0);
        CHECK(compiled->forest != NULL && xgb->forest == NULL);
        size_t n = 0;
        float *x = compiled->forest ? rows_for(compiled->forest, 7 + (unsigned)o, &n) : NULL;
        double *a = malloc((n ? n : 1) * sizeof(double)), *b = malloc((n ? n : 1) * sizeof(double));
        ss_predictor_t *p = ss_predictor_new(err, sizeof(err));
        CHECK(n > 1000);
        CHECK(ss_model_predict(xgb, p, x, n, a, err, sizeof(err)) == 0);
        CHECK(ss_model_predict(compiled, p, x, n, b, err, sizeof(err)) == 0);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++)
            differ += memcmp(&a[i], &b[i], sizeof(double)) != 0;
        if (differ)
            fprintf(stderr, "  %s: %zu of %zu scores differ\n", objectives[o], differ, n);
        CHECK(differ == 0);
        /* the scores really are the objective's: probabilities only where it transforms */
        int outside = 0;
        for (size_t i = 0; i < n; i++)
            outside |= b[i] < 0 || b[i] > 1;
        CHECK(outside == (o >= 2));
        ss_predictor_destroy(p);
        free(a);
        free(b);
        free(x);
        ss_model_unref(xgb);
        ss_model_unref(compiled);
        unlink(path);
        unlink(path2);
        json_decref(m);
    }
}

/* Compiling m after `change` fails with SS_ERR_CONFIG and a reason that contains `why`. */
static void refused(json_t *m, const char *why) {
    ss_forest_t *f = NULL;
    CHECK(compile(m, &f) == SS_ERR_CONFIG);
    CHECK(f == NULL);
    CHECK_STR_CONTAINS(err, why);
    json_decref(m);
}

static void a_model_it_does_not_reproduce_is_refused_with_the_reason(void) {
    json_t *m = churn();
    json_object_set_new(json_object_get(learner(m), "objective"), "name", json_string("reg:gamma"));
    refused(m, "objective reg:gamma");

    m = churn();
    json_object_set_new(json_object_get(learner(m), "gradient_booster"), "name",
                        json_string("dart"));
    refused(m, "booster dart");

    m = churn();
    json_object_set_new(json_object_get(learner(m), "learner_model_param"), "num_class",
                        json_string("3"));
    refused(m, "more than one output");

    m = churn();
    json_array_set_new(json_object_get(tree0(m), "split_type"), 0, json_integer(1));
    refused(m, "categorical");

    /* 1 + 2^-24 lies exactly between the floats 1 and 1 + 2^-23: which one XGBoost read from
     * the text is not certain from the double */
    m = churn();
    json_array_set_new(json_object_get(tree0(m), "split_conditions"), 0,
                       json_real(1.0000000596046448));
    refused(m, "not certain as a float");

    m = churn();
    json_array_set_new(json_object_get(tree0(m), "left_children"), 0, json_integer(100000));
    refused(m, "malformed");

    m = churn(); /* a child that is its own ancestor */
    json_array_set_new(json_object_get(tree0(m), "left_children"), 0, json_integer(0));
    refused(m, "malformed");

    m = churn(); /* tree 0 as a chain of 20 splits, each with a leaf on its left */
    json_t *t0 = tree0(m), *arrays[6];
    const char *names[] = {"left_children",    "right_children", "split_indices",
                           "split_conditions", "default_left",   "split_type"};
    for (int a = 0; a < 6; a++)
        json_object_set_new(t0, names[a], arrays[a] = json_array());
    for (int i = 0; i < 41; i++) {
        int split = i % 2 == 0 && i < 40; /* even nodes split: left leaf i+1, right split i+2 */
        json_array_append_new(arrays[0], json_integer(split ? i + 1 : -1));
        json_array_append_new(arrays[1], json_integer(split ? i + 2 : -1));
        json_array_append_new(arrays[2], json_integer(0));
        json_array_append_new(arrays[3], json_real(split ? i : 0.5));
        json_array_append_new(arrays[4], json_integer(0));
        json_array_append_new(arrays[5], json_integer(0));
    }
    refused(m, "deeper than 16 levels");

    ss_forest_t *f = NULL;
    CHECK(ss_forest_compile("{\"learner\":", 11, 11, &f, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "not XGBoost JSON");
}

static void check_rows_take_every_split_at_and_just_below_its_threshold(void) {
    json_t *m = churn();
    ss_forest_t *f = NULL;
    CHECK(compile(m, &f) == 0);
    size_t n = 0, splits = 0, missed = 0;
    float *x = f ? rows_for(f, 1, &n) : NULL;
    json_t *trees = json_object_get(
        json_object_get(json_object_get(learner(m), "gradient_booster"), "model"), "trees");
    for (size_t t = 0; f && t < json_array_size(trees); t++) {
        json_t *tr = json_array_get(trees, t);
        json_t *left = json_object_get(tr, "left_children");
        for (size_t i = 0; i < json_array_size(left); i++) {
            if (json_integer_value(json_array_get(left, i)) < 0)
                continue;
            splits++;
            size_t j =
                (size_t)json_integer_value(json_array_get(json_object_get(tr, "split_indices"), i));
            float at = (float)json_number_value(
                json_array_get(json_object_get(tr, "split_conditions"), i));
            float below = nextafterf(at, -INFINITY);
            int seen_at = 0, seen_below = 0;
            for (size_t r = 0; r < n; r++) {
                seen_at |= x[r * 11 + j] == at;
                seen_below |= x[r * 11 + j] == below;
            }
            missed += !seen_at || !seen_below;
        }
    }
    CHECK(splits > 100);
    CHECK(n == 2 * splits + 3);
    CHECK(missed == 0);
    free(x);
    ss_forest_destroy(f);
    json_decref(m);
}

static ss_model_t *open_with(const char *predictor) {
    ss_config_t *c = ss_config_new();
    char text[512];
    snprintf(text, sizeof(text),
             "model.path = " MODEL "\nmodel.card = " CARD "\nkafka.bootstrap.servers = x:1\n%s",
             predictor);
    ss_model_t *m = NULL;
    if (ss_config_load_string(c, text, strlen(text), "t", err, sizeof(err)) < 0 ||
        ss_config_finalize(c, err, sizeof(err)) < 0 ||
        ss_model_open(c, NULL, &m, err, sizeof(err)) < 0)
        fprintf(stderr, "open: %s\n", err);
    ss_config_destroy(c);
    return m;
}

static void model_predictor_chooses_compiled_trees_or_xgboost(void) {
    ss_model_t *a = open_with(""), *b = open_with("model.predictor = auto"),
               *c = open_with("model.predictor = xgboost");
    CHECK(a && b && c);
    CHECK(a && a->forest && b && b->forest && c && !c->forest);
    ss_model_unref(a);
    ss_model_unref(b);
    ss_model_unref(c);
}

static const check_test_t tests[] = {
    {"each_objective_it_takes_scores_the_bits_of_xgboosts_predictor",
     each_objective_it_takes_scores_the_bits_of_xgboosts_predictor},
    {"a_model_it_does_not_reproduce_is_refused_with_the_reason",
     a_model_it_does_not_reproduce_is_refused_with_the_reason},
    {"check_rows_take_every_split_at_and_just_below_its_threshold",
     check_rows_take_every_split_at_and_just_below_its_threshold},
    {"model_predictor_chooses_compiled_trees_or_xgboost",
     model_predictor_chooses_compiled_trees_or_xgboost},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
