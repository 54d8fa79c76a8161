/* report_json.c - compare.json, the figures of `streamscore compare` for machines (jansson).
 *
 * compare.json (structure version 1; figures that cannot be computed are null; keys are only
 * ever added):
 * { "streamscore_compare": 1, "generated_at": ISO,
 *   "kind": "binary" | "multiclass" | "regression",  // what the records hold: decisions,
 *                    // predicted classes, or neither (regression, ranking, survival values)
 *   "inputs": { "primary"|"shadow": { "source": "kafka"|"file", "topic": str|null,
 *                 "file": str|null, "format": "avro"|"json", "partitions": n, "read": n,
 *                 "malformed": n, "out_of_range": n, "other_models_records": n },
 *               "time_range": { "from": ISO|null, "to": ISO|null, "from_ms": n|null,
 *                 "to_ms": n|null, "by": "kafka timestamp" },   // [from, to)
 *               "labels": null | { "source": str, "rows": n, "malformed": n } },
 *   "counts": { "primary": n, "shadow": n (distinct keys), "matched": n, "primary_only": n,
 *               "shadow_only": n, "duplicates": {"primary": n, "shadow": n},
 *               "matched_share": x (matched / primary), "identical_features": n,
 *               "identical_share": x (identical / matched) },
 *   "models": { "primary"|"shadow": [ {"name", "version", "threshold", "records"} ] },
 *   "pairs": { "scope": "identical_features", "n": n,          // d = shadow - primary score
 *              "score_diff": {"mean", "abs_p50", "abs_p95", "abs_p99", "abs_max"},
 *              "flips": {"no_to_yes", "yes_to_no", "total", "rate", "n"}, // recorded decisions,
 *                        // over the n pairs with a decision on both sides; without decisions
 *                        // (multi-class, regression) counts and rate are null, never 0
 *              "class_flips": null | {"n", "changed", "rate"},  // multi-class: predicted_class
 *              "spearman": x, "diff_histogram": {"lo", "hi", "counts": [40]} },
 *   "outputs": null | {  // multi-output models (outputs: class probabilities, quantiles)
 *              "n": {"primary": k, "shadow": k} (the most of a record), "compared": k (both
 *              have them, at most 64), "pairs": n (identical pairs with outputs on both sides),
 *              "mismatched": n (of those, with different numbers of outputs),
 *              "per_output": [ {"index", "n", "abs_mean", "abs_p99", "abs_max"} ] },
 *   "classes": null | {  // multi-class; rows: primary class, columns: candidate class
 *              "n": k, "beyond": bool (the last row and column hold every class from 31 on),
 *              "pairs", "changed", "flip_rate", "matrix": [[k x k counts]] },
 *   "regression": null | {  // neither decisions nor classes: values
 *              "score_diff": {"mean", "abs_p50", "abs_p95", "abs_p99", "abs_max"},
 *              "abs_diff_histogram": {"lo": 0, "hi", "counts": [40]},
 *              "labels": null | { "primary"|"shadow": {"n" (numeric labels), "rmse", "mae"} } },
 *   "distributions": { "edges": [21 over 0..1; a regression's over its scores' range],
 *                      "primary"|"shadow": {"counts": [20], "below": n, "above": n} },
 *                                                   // all distinct records; out of range
 *                                                   // counted in the edge bins too
 *   "latency_ms": { "primary"|"shadow": {"n", "p50", "p99"} },  // scored_at - event_time
 *   "labels": null | { "primary"|"shadow": {"labeled", "positives", "roc_auc", "precision",
 *                      "recall", "f1", "tp", "fp", "fn", "tn"} },  // all distinct records,
 *                                                   // precision etc. from recorded decisions
 *   "routes": { route: {  // per route of the primary's predictions ("live", "canary"; none
 *                         // reads as "live"), each route with primary records; the figures
 *                         // above restricted to the primary predictions of that route
 *       "counts": { "primary": n (distinct), "matched": n, "primary_only": n,
 *                   "matched_share": x, "identical_features": n, "identical_share": x },
 *       "pairs": { "scope": "identical_features", "n": n, "score_diff": {as above},
 *                  "flips": {as above}, "class_flips": {as above}, "spearman": x },
 *       "latency_ms": { "primary"|"shadow": {"n", "p50", "p99"} },  // the route's matched
 *       "labels": null | { "primary"|"shadow": {as "labels"} },      // pairs, both sides
 *       "note": str|null } },  // canary: its pairs compare the candidate with itself
 *   "verdict": { "decision": "promote"|"hold"|"none", "reasons": [failed], "passed": [str],
 *                "criteria": [ {"key", "limit", "value", "passed", "reason"} ] },  // overall
 *                                                   // figures only, whatever the routes
 *   "method": { "exact": bool, "exact_limit": n, "buckets": n, "max_bucket_records": n } }
 * Quantiles, ROC-AUC and Spearman follow core/stats.h (exact), or its binned forms when
 * "method.exact" is false. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "report.h"
#include "report_int.h"

/* ---- compare.json ------------------------------------------------------------------------ */

static json_t *jnum(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}
static json_t *jint(uint64_t v) {
    return json_integer((json_int_t)v);
}
static json_t *jstr(const char *s) {
    return s ? json_string(s) : json_null();
}

static json_t *jtime(int64_t ms, int iso) {
    char buf[40];
    if (ms == INT64_MIN || ms == INT64_MAX)
        return json_null();
    if (!iso)
        return json_integer((json_int_t)ms);
    ss__report_iso_time(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *jcounts(const uint64_t *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, jint(v[i]));
    return a;
}

static json_t *jlatency(uint64_t n, double p50, double p99) {
    return json_pack("{s:o, s:o, s:o}", "n", jint(n), "p50", jnum(p50), "p99", jnum(p99));
}

/* A side's labels figures; the fields are those of ss_cmp_side_t and ss_cmp_route_side_t. */
#define JLABELS(d)                                                                                 \
    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "labeled", jint((d)->labeled), \
              "positives", jint((d)->positives), "roc_auc", jnum((d)->auc), "precision",           \
              jnum((d)->precision), "recall", jnum((d)->recall), "f1", jnum((d)->f1), "tp",        \
              jint((d)->tp), "fp", jint((d)->fp), "fn", jint((d)->fn), "tn", jint((d)->tn))

/* Decision flips; the counts are null when the identical-feature pairs have no decisions
 * (the objective defines none), never a false 0. */
static json_t *jflips(uint64_t identical, uint64_t decided, uint64_t no_yes, uint64_t yes_no,
                      double rate) {
    int none = identical && !decided;
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "no_to_yes", none ? json_null() : jint(no_yes),
                     "yes_to_no", none ? json_null() : jint(yes_no), "total",
                     none ? json_null() : jint(no_yes + yes_no), "rate", jnum(rate), "n",
                     jint(decided));
}

/* Predicted-class flips (multi-class), or null. */
static json_t *jclass_flips(const ss_cmp_result_t *r, uint64_t pairs, uint64_t flips, double rate) {
    if (r->kind != SS_CMP_KIND_MULTICLASS)
        return json_null();
    return json_pack("{s:o, s:o, s:o}", "n", jint(pairs), "changed", jint(flips), "rate",
                     jnum(rate));
}

static json_t *jroute(const ss_cmp_result_t *r, const ss_cmp_route_t *rt) {
    json_t *lat = json_object(), *labels = r->labels ? json_object() : json_null();
    for (int s = 0; s < 2; s++) {
        const ss_cmp_route_side_t *d = &rt->side[s];
        json_object_set_new(lat, r->side[s].name,
                            jlatency(d->latency_n, d->latency_p50, d->latency_p99));
        if (r->labels)
            json_object_set_new(labels, r->side[s].name, JLABELS(d));
    }
    return json_pack(
        "{s:{s:o, s:o, s:o, s:o, s:o, s:o}, s:{s:s, s:o, s:{s:o, s:o, s:o, s:o, s:o}, s:o, s:o, "
        "s:o}, s:o, s:o, s:o}",
        "counts", "primary", jint(rt->primary), "matched", jint(rt->matched), "primary_only",
        jint(rt->primary_only), "matched_share", jnum(rt->matched_share), "identical_features",
        jint(rt->identical), "identical_share", jnum(rt->identical_share), "pairs", "scope",
        "identical_features", "n", jint(rt->identical), "score_diff", "mean", jnum(rt->diff_mean),
        "abs_p50", jnum(rt->abs_p50), "abs_p95", jnum(rt->abs_p95), "abs_p99", jnum(rt->abs_p99),
        "abs_max", jnum(rt->abs_max), "flips",
        jflips(rt->identical, rt->decided, rt->flips_no_yes, rt->flips_yes_no, rt->flip_rate),
        "class_flips", jclass_flips(r, rt->class_pairs, rt->class_flips, rt->class_flip_rate),
        "spearman", jnum(rt->spearman), "latency_ms", lat, "labels", labels, "note",
        jstr(strcmp(rt->name, "canary") == 0 ? ss__report_canary_note : NULL));
}

/* Each output both sides have: |difference| per output index; null for single-output models. */
static json_t *joutputs(const ss_cmp_result_t *r) {
    if (!r->side[0].n_outputs && !r->side[1].n_outputs)
        return json_null();
    json_t *per = json_array();
    for (int i = 0; i < r->n_outputs; i++) {
        const ss_cmp_output_t *o = &r->outputs[i];
        json_array_append_new(per, json_pack("{s:i, s:o, s:o, s:o, s:o}", "index", i, "n",
                                             jint(o->n), "abs_mean", jnum(o->abs_mean), "abs_p99",
                                             jnum(o->abs_p99), "abs_max", jnum(o->abs_max)));
    }
    return json_pack("{s:{s:i, s:i}, s:i, s:o, s:o, s:o}", "n", "primary", r->side[0].n_outputs,
                     "shadow", r->side[1].n_outputs, "compared", r->n_outputs, "pairs",
                     jint(r->output_pairs), "mismatched", jint(r->output_mismatch), "per_output",
                     per);
}

/* Multi-class: the predicted-class flips and the primary x candidate class matrix; or null. */
static json_t *jclasses(const ss_cmp_result_t *r) {
    if (r->kind != SS_CMP_KIND_MULTICLASS)
        return json_null();
    json_t *m = json_array();
    for (int a = 0; a < r->n_classes; a++)
        json_array_append_new(m, jcounts(r->class_matrix[a], (size_t)r->n_classes));
    return json_pack("{s:i, s:b, s:o, s:o, s:o, s:o}", "n", r->n_classes, "beyond",
                     r->classes_beyond, "pairs", jint(r->class_pairs), "changed",
                     jint(r->class_flips), "flip_rate", jnum(r->class_flip_rate), "matrix", m);
}

/* Regression (values, no decision): the score difference and, with numeric labels, each
 * model's RMSE and MAE; or null. */
static json_t *jregression(const ss_cmp_result_t *r) {
    if (r->kind != SS_CMP_KIND_REGRESSION)
        return json_null();
    json_t *labels = r->labels ? json_object() : json_null();
    for (int s = 0; r->labels && s < 2; s++)
        json_object_set_new(labels, r->side[s].name,
                            json_pack("{s:o, s:o, s:o}", "n", jint(r->side[s].valued), "rmse",
                                      jnum(r->side[s].rmse), "mae", jnum(r->side[s].mae)));
    return json_pack("{s:{s:o, s:o, s:o, s:o, s:o}, s:{s:f, s:o, s:o}, s:o}", "score_diff", "mean",
                     jnum(r->diff_mean), "abs_p50", jnum(r->abs_p50), "abs_p95", jnum(r->abs_p95),
                     "abs_p99", jnum(r->abs_p99), "abs_max", jnum(r->abs_max), "abs_diff_histogram",
                     "lo", 0.0, "hi", json_real(r->abs_hist_hi), "counts",
                     jcounts(r->abs_hist, SS_CMP_DIFF_BINS), "labels", labels);
}

int ss_report_write_json(const ss_cmp_result_t *r, const char *path, char *errstr, size_t errlen) {
    char now[40];
    const ss_cmp_side_t *P = &r->side[0], *S = &r->side[1];
    json_t *inputs = json_object(), *models = json_object(), *dist = json_object();
    json_t *lat = json_object(), *labels = r->labels ? json_object() : json_null();
    json_t *edges = json_array();
    for (int i = 0; i <= SS_CMP_DIST_BINS; i++)
        json_array_append_new(
            edges, json_real(r->dist_lo + (r->dist_hi - r->dist_lo) * i / SS_CMP_DIST_BINS));
    json_object_set_new(dist, "edges", edges);
    for (int s = 0; s < 2; s++) {
        const ss_cmp_side_t *d = &r->side[s];
        int file = strcmp(d->source, "file") == 0;
        json_object_set_new(
            inputs, d->name,
            json_pack("{s:s, s:o, s:o, s:s, s:i, s:o, s:o, s:o, s:o}", "source", d->source, "topic",
                      jstr(file ? NULL : d->location), "file", jstr(file ? d->location : NULL),
                      "format", d->format, "partitions", d->partitions, "read", jint(d->read),
                      "malformed", jint(d->malformed), "out_of_range", jint(d->out_of_range),
                      "other_models_records", jint(d->other_models)));
        json_t *ml = json_array();
        for (int m = 0; m < d->n_models; m++)
            json_array_append_new(ml, json_pack("{s:s, s:s, s:o, s:o}", "name", d->models[m].name,
                                                "version", d->models[m].version, "threshold",
                                                jnum(d->models[m].threshold), "records",
                                                jint(d->models[m].records)));
        json_object_set_new(models, d->name, ml);
        json_object_set_new(dist, d->name,
                            json_pack("{s:o, s:o, s:o}", "counts",
                                      jcounts(d->dist, SS_CMP_DIST_BINS), "below",
                                      jint(d->dist_below), "above", jint(d->dist_above)));
        json_object_set_new(lat, d->name, jlatency(d->latency_n, d->latency_p50, d->latency_p99));
        if (r->labels)
            json_object_set_new(labels, d->name, JLABELS(d));
    }
    json_t *routes = json_object();
    for (int k = 0; k < r->n_routes; k++)
        if (ss__report_route_shown(r, k))
            json_object_set_new(routes, r->routes[k].name, jroute(r, &r->routes[k]));
    json_object_set_new(inputs, "time_range",
                        json_pack("{s:o, s:o, s:o, s:o, s:s}", "from", jtime(r->from_ms, 1), "to",
                                  jtime(r->to_ms, 1), "from_ms", jtime(r->from_ms, 0), "to_ms",
                                  jtime(r->to_ms, 0), "by", "kafka timestamp"));
    json_object_set_new(inputs, "labels",
                        r->labels ? json_pack("{s:s, s:o, s:o}", "source", r->labels, "rows",
                                              jint(r->labels_rows), "malformed",
                                              jint(r->labels_malformed))
                                  : json_null());
    json_t *counts = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:{s:o, s:o}, s:o, s:o, s:o}", "primary", jint(P->records),
        "shadow", jint(S->records), "matched", jint(r->matched), "primary_only",
        jint(r->primary_only), "shadow_only", jint(r->shadow_only), "duplicates", "primary",
        jint(P->duplicates), "shadow", jint(S->duplicates), "matched_share", jnum(r->matched_share),
        "identical_features", jint(r->identical), "identical_share", jnum(r->identical_share));
    json_t *pairs = json_pack(
        "{s:s, s:o, s:{s:o, s:o, s:o, s:o, s:o}, s:o, s:o, s:o, s:{s:o, s:o, s:o}}", "scope",
        "identical_features", "n", jint(r->identical), "score_diff", "mean", jnum(r->diff_mean),
        "abs_p50", jnum(r->abs_p50), "abs_p95", jnum(r->abs_p95), "abs_p99", jnum(r->abs_p99),
        "abs_max", jnum(r->abs_max), "flips",
        jflips(r->identical, r->decided, r->flips_no_yes, r->flips_yes_no, r->flip_rate),
        "class_flips", jclass_flips(r, r->class_pairs, r->class_flips, r->class_flip_rate),
        "spearman", jnum(r->spearman), "diff_histogram", "lo", json_real(r->diff_lo), "hi",
        json_real(r->diff_hi), "counts", jcounts(r->diff_hist, SS_CMP_DIFF_BINS));
    json_t *reasons = json_array(), *passed = json_array(), *criteria = json_array();
    for (int i = 0; i < r->n_criteria; i++) {
        const ss_cmp_criterion_t *k = &r->criteria[i];
        json_array_append_new(k->passed ? passed : reasons, json_string(k->reason));
        json_array_append_new(criteria, json_pack("{s:s, s:o, s:o, s:b, s:s}", "key", k->key,
                                                  "limit", jnum(k->limit), "value", jnum(k->value),
                                                  "passed", k->passed, "reason", k->reason));
    }
    ss__report_iso_time(ss_wall_ms(), now, sizeof(now));
    json_t *root = json_pack(
        "{s:i, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:s, s:o, s:o, "
        "s:o}, s:{s:b, s:I, s:i, s:o}}",
        "streamscore_compare", 1, "generated_at", now, "kind", ss__report_kind_names[r->kind],
        "inputs", inputs, "counts", counts, "models", models, "pairs", pairs, "outputs",
        joutputs(r), "classes", jclasses(r), "regression", jregression(r), "distributions", dist,
        "latency_ms", lat, "labels", labels, "routes", routes, "verdict", "decision",
        ss__report_verdict_names[r->verdict], "reasons", reasons, "passed", passed, "criteria",
        criteria, "method", "exact", r->exact, "exact_limit", (json_int_t)r->exact_limit, "buckets",
        r->buckets, "max_bucket_records", jint(r->max_bucket));
    int rc = root && json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) == 0
                 ? 0
                 : SS_ERR_FAIL;
    if (rc)
        snprintf(errstr, errlen, "cannot write '%s'%s", path, root ? "" : " (out of memory)");
    json_decref(root);
    return rc;
}
