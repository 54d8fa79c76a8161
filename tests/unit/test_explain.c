/* test_explain.c - the objectives' outputs (softmax, argmax, the score of several quantiles)
 * and the explanations: which events are explained and the top-k of their contributions. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "explain.h"
#include "hash.h"
#include "objective.h"

static char err[512];

static void every_listed_objective_is_served_and_others_are_not(void) {
    static const char *const served[] = {
        "binary:logistic",   "binary:logitraw",   "binary:hinge",       "multi:softprob",
        "multi:softmax",     "reg:squarederror",  "reg:logistic",       "reg:pseudohubererror",
        "reg:absoluteerror", "reg:quantileerror", "reg:tweedie",        "reg:gamma",
        "count:poisson",     "rank:pairwise",     "rank:ndcg",          "rank:map",
        "survival:cox",      "survival:aft",      "reg:squaredlogerror"};
    for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++)
        CHECK(ss_objective_task(served[i]) >= 0);
    CHECK(ss_objective_task("multi:softprob") == SS_TASK_MULTICLASS);
    CHECK(ss_objective_task("count:poisson") == SS_TASK_REGRESSION);
    CHECK(ss_objective_task("survival:aft") == SS_TASK_SURVIVAL);
    CHECK(ss_objective_task("rank:ndcg") == SS_TASK_RANKING);
    CHECK(ss_objective_task("reg:unknownloss") < 0);
    CHECK(ss_objective_task("binary") < 0);
}

static void an_unknown_objective_in_a_json_model_is_refused_by_name(void) {
    const char model[] = "{\"learner\": {\"objective\": {\"name\": \"reg:unknownloss\"}}}";
    CHECK(ss_objective_peek((const unsigned char *)model, sizeof(model) - 1, "/m/x.json", err,
                            sizeof(err)) < 0);
    CHECK_STR_CONTAINS(err, "reg:unknownloss");
    CHECK_STR_CONTAINS(err, "/m/x.json");
    CHECK(strchr(err, '\n') == NULL);
    const char good[] = "{\"learner\": {\"objective\": {\"name\": \"reg:gamma\"}}}";
    CHECK(ss_objective_peek((const unsigned char *)good, sizeof(good) - 1, "/m/x.json", err,
                            sizeof(err)) == 0);
    const unsigned char ubj[] = {'{', 'L', 0}; /* not JSON text: left to XGBoost */
    CHECK(ss_objective_peek(ubj, 2, "/m/x.ubj", err, sizeof(err)) == 0);
}

static void softmax_gives_probabilities_and_the_first_largest_class(void) {
    ss_objective_t o = {.task = SS_TASK_MULTICLASS, .n_outputs = 3, .softmax = 1};
    float row[3] = {0.05750673f, -0.17557251f, -0.04665432f}; /* XGBoost's margins */
    double score;
    int cls;
    ss_objective_finish_row(&o, row, &score, &cls);
    /* Python XGBoost, the same model as multi:softprob: 0.37130952 0.29411086 0.33457965 */
    CHECK(fabsf(row[0] - 0.37130952f) < 1e-7f && fabsf(row[1] - 0.29411086f) < 1e-7f &&
          fabsf(row[2] - 0.33457965f) < 1e-7f);
    CHECK(cls == 0 && score == row[0]);
    o.softmax = 0;
    float tie[3] = {0.2f, 0.4f, 0.4f};
    ss_objective_finish_row(&o, tie, &score, &cls);
    CHECK(cls == 1 && score == (double)0.4f);
    float bad[3] = {0.2f, NAN, 0.3f};
    ss_objective_finish_row(&o, bad, &score, &cls);
    CHECK(isnan(score));
}

static void several_quantiles_score_the_median_and_have_no_class(void) {
    ss_objective_t o = {.task = SS_TASK_REGRESSION, .n_outputs = 3, .score_output = 1};
    float row[3] = {1.0f, 2.0f, 3.0f};
    double score;
    int cls;
    ss_objective_finish_row(&o, row, &score, &cls);
    CHECK(score == 2.0 && cls == -1);
}

static void when_parses_and_refuses_naming_the_key(void) {
    ss_explain_when_t w;
    CHECK(ss_explain_parse_when("always", &w, err, sizeof(err)) == 0 &&
          w.kind == SS_EXPLAIN_ALWAYS);
    CHECK(ss_explain_parse_when("decision", &w, err, sizeof(err)) == 0 &&
          w.kind == SS_EXPLAIN_DECISION);
    CHECK(ss_explain_parse_when("class:1,3", &w, err, sizeof(err)) == 0 &&
          w.kind == SS_EXPLAIN_CLASS && w.classes[1] && w.classes[3] && !w.classes[2]);
    static const char *const bad[] = {"",        "class:",      "class:1,",  "class:-1",
                                      "class:x", "class:99999", "sometimes", "class:1;2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(ss_explain_parse_when(bad[i], &w, err, sizeof(err)) < 0);
        CHECK_STR_CONTAINS(err, "'explain.when'");
    }
}

static void the_sample_is_the_documented_hash_and_close_to_its_share(void) {
    ss_explain_when_t w;
    ss_explain_parse_when("always", &w, err, sizeof(err));
    long chosen = 0, n = 200000;
    int agree = 1;
    for (long off = 0; off < n; off++) {
        int32_t part = (int32_t)(off % 7);
        int s = ss_explain_selected(&w, 0.3, part, off, -1, -1);
        uint64_t h =
            ss_fmix64(((uint64_t)(uint32_t)part << 40) ^ (uint64_t)off ^ 0x9e3779b97f4a7c15ull);
        agree &= s == ((double)(h >> 11) * 0x1.0p-53 < 0.3);
        chosen += s;
    }
    CHECK(agree);
    CHECK(fabs((double)chosen / (double)n - 0.3) < 0.01);
    CHECK(ss_explain_selected(&w, 1, 0, 5, -1, -1) == 1);
    long none = 0;
    for (long off = 0; off < 1000; off++)
        none += ss_explain_selected(&w, 0, 0, off, -1, -1);
    CHECK(none == 0);
}

static void when_filters_by_decision_and_class(void) {
    ss_explain_when_t w;
    ss_explain_parse_when("decision", &w, err, sizeof(err));
    CHECK(ss_explain_selected(&w, 1, 0, 1, 1, -1) == 1);
    CHECK(ss_explain_selected(&w, 1, 0, 1, 0, -1) == 0);
    CHECK(ss_explain_selected(&w, 1, 0, 1, -1, -1) == 0);
    ss_explain_parse_when("class:2", &w, err, sizeof(err));
    CHECK(ss_explain_selected(&w, 1, 0, 1, -1, 2) == 1);
    CHECK(ss_explain_selected(&w, 1, 0, 1, -1, 1) == 0);
    CHECK(ss_explain_selected(&w, 1, 0, 1, -1, -1) == 0);
}

static void top_k_is_the_largest_by_absolute_value_in_feature_order_on_ties(void) {
    char *names[] = {"a", "b", "c", "d", "e"};
    const float x[5] = {1, NAN, 3, 4, 5};
    const float contrib[6] = {0.1f, -0.7f, 0.3f, -0.3f, 0.7f, 0.25f}; /* the last: bias */
    ss_contribution_t out[5];
    double bias = 0;
    size_t n = ss_explain_top(contrib, x, 5, names, 3, out, &bias);
    CHECK(n == 3 && bias == (double)0.25f);
    CHECK(strcmp(out[0].feature, "b") == 0 && out[0].contribution == (double)-0.7f &&
          isnan(out[0].value));
    CHECK(strcmp(out[1].feature, "e") == 0 && out[1].value == 5);
    CHECK(strcmp(out[2].feature, "c") == 0 && out[2].value == 3);
    n = ss_explain_top(contrib, x, 5, names, 9, out, &bias); /* k beyond the features */
    CHECK(n == 5 && strcmp(out[4].feature, "a") == 0);
    n = ss_explain_top(contrib, x, 5, names, 1, out, &bias);
    CHECK(n == 1 && strcmp(out[0].feature, "b") == 0);
}

static const check_test_t tests[] = {
    {"every_listed_objective_is_served_and_others_are_not",
     every_listed_objective_is_served_and_others_are_not},
    {"an_unknown_objective_in_a_json_model_is_refused_by_name",
     an_unknown_objective_in_a_json_model_is_refused_by_name},
    {"softmax_gives_probabilities_and_the_first_largest_class",
     softmax_gives_probabilities_and_the_first_largest_class},
    {"several_quantiles_score_the_median_and_have_no_class",
     several_quantiles_score_the_median_and_have_no_class},
    {"when_parses_and_refuses_naming_the_key", when_parses_and_refuses_naming_the_key},
    {"the_sample_is_the_documented_hash_and_close_to_its_share",
     the_sample_is_the_documented_hash_and_close_to_its_share},
    {"when_filters_by_decision_and_class", when_filters_by_decision_and_class},
    {"top_k_is_the_largest_by_absolute_value_in_feature_order_on_ties",
     top_k_is_the_largest_by_absolute_value_in_feature_order_on_ties},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
