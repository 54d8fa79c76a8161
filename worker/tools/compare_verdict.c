/* compare_verdict.c - the verdict of `compare`: each promote.* key that is set (>= 0) is a
 * criterion on one figure; promote when every criterion passes, hold when one fails (a figure
 * that cannot be computed fails its criterion), none when no key is set.
 *
 * The criteria judge the overall figures, every route together, as before routes existed; the
 * per-route figures (compare.json "routes") are reported only. During a rollout the primary's
 * "canary" predictions were scored by the candidate itself: when the shadow runs that same
 * candidate, a canary pair compares the candidate with itself, and its scores and decisions
 * should be identical (no flips, differences 0; a difference there means the two runs did
 * not score the same features or model). Such pairs pull the overall flip rate and score
 * differences towards 0 in proportion to the canary share, so the live route's figures are
 * the candidate-versus-live comparison; the reports say so when canary pairs are present.
 *
 * Decisions and classes exist for some objectives only: the decision flip rate counts the
 * pairs with a decision on both sides (binary; a multi-class or regression model has none, so
 * promote.max.flip.rate cannot be computed for it and fails, saying why), the class flip rate
 * those with a predicted class on both (multi-class only). promote.max.score.diff.p99 judges
 * the score as recorded: a probability, a class's probability, or a regression's value. */
#include <math.h>
#include <stdio.h>

#include "compare_int.h"

typedef struct rule {
    const char *key;
    int at_most; /* the figure must be <= the limit, else >= */
    const char *what, *why_none;
} rule_t;

static void criterion(ss_cmp_result_t *r, const rule_t *rule, double limit, double value) {
    if (limit < 0)
        return;
    ss_cmp_criterion_t *k = &r->criteria[r->n_criteria++];
    int at_most = rule->at_most;
    k->key = rule->key, k->limit = limit, k->value = value;
    k->passed = isfinite(value) && (at_most ? value <= limit : value >= limit);
    if (!isfinite(value))
        snprintf(k->reason, sizeof(k->reason), "%s: %s cannot be computed (%s)", rule->key,
                 rule->what, rule->why_none);
    else
        snprintf(k->reason, sizeof(k->reason), "%s: %s %.6g %s %.6g", rule->key, rule->what, value,
                 k->passed ? (at_most ? "<=" : ">=") : (at_most ? ">" : "<"), limit);
}

/* Why a flip rate has no value: no identical-feature pairs, else `without`. */
static const char *why_no_rate(const ss_cmp_result_t *r, const char *without) {
    return r->identical ? without : "no identical-feature pairs";
}

void cmp_verdict(cmp_t *c) {
    ss_cmp_result_t *r = &c->r;
    const ss_config_t *cfg = c->cfg;
    const rule_t rules[SS_CMP_MAX_CRITERIA] = {
        {"promote.min.matched.share", 0, "matched share", "no primary predictions"},
        {"promote.max.flip.rate", 1, "flip rate",
         why_no_rate(r, "no decisions: the identical-feature pairs have no decision on both "
                        "sides (the objective defines none: multi-class, regression, ranking, "
                        "survival)")},
        {"promote.max.class.flip.rate", 1, "class flip rate",
         why_no_rate(r, "no predicted classes: the identical-feature pairs have no "
                        "predicted_class on both sides (not a multi-class model)")},
        {"promote.max.score.diff.p99", 1, "p99 of |score difference|",
         "no identical-feature pairs"},
        {"promote.max.auc.drop", 1, "ROC-AUC drop",
         r->labels ? "both sides need labeled positives and negatives"
                   : "no labels: set compare.labels or --labels"},
        {"promote.max.latency.p99.ms", 1, "shadow p99 latency (ms)",
         "no shadow records with times"}};
    criterion(r, &rules[0], cfg->promote_min_matched_share, r->matched_share);
    criterion(r, &rules[1], cfg->promote_max_flip_rate, r->flip_rate);
    criterion(r, &rules[2], cfg->promote_max_class_flip_rate, r->class_flip_rate);
    criterion(r, &rules[3], cfg->promote_max_score_diff_p99, r->abs_p99);
    criterion(r, &rules[4], cfg->promote_max_auc_drop, r->side[0].auc - r->side[1].auc);
    criterion(r, &rules[5], cfg->promote_max_latency_p99_ms, r->side[1].latency_p99);
    r->verdict = r->n_criteria ? SS_VERDICT_PROMOTE : SS_VERDICT_NONE;
    for (int i = 0; i < r->n_criteria; i++)
        if (!r->criteria[i].passed)
            r->verdict = SS_VERDICT_HOLD;
}
