/* report.c - renders the figures of `streamscore compare`: a terminal summary, compare.json
 * (jansson) and compare.html, one self-contained page with inline SVG charts and no network
 * access, so that it can be archived with a promotion decision.
 *
 * compare.json (structure version 1; figures that cannot be computed are null):
 * { "streamscore_compare": 1, "generated_at": ISO,
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
 *              "score_diff": {"mean", "abs_p50", "abs_p99", "abs_max"},
 *              "flips": {"no_to_yes", "yes_to_no", "total", "rate"}, // recorded decisions
 *              "spearman": x, "diff_histogram": {"lo", "hi", "counts": [40]} },
 *   "distributions": { "edges": [21 over 0..1], "primary"|"shadow": {"counts": [20],
 *                      "below": n, "above": n} },   // all distinct records; out of [0, 1]
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
 *       "pairs": { "scope": "identical_features", "n": n, "score_diff": {"mean", "abs_p50",
 *                  "abs_p99", "abs_max"}, "flips": {"no_to_yes", "yes_to_no", "total",
 *                  "rate"}, "spearman": x },
 *       "latency_ms": { "primary"|"shadow": {"n", "p50", "p99"} },  // the route's matched
 *       "labels": null | { "primary"|"shadow": {as "labels"} },      // pairs, both sides
 *       "note": str|null } },  // canary: its pairs compare the candidate with itself
 *   "verdict": { "decision": "promote"|"hold"|"none", "reasons": [failed], "passed": [str],
 *                "criteria": [ {"key", "limit", "value", "passed", "reason"} ] },  // overall
 *                                                   // figures only, whatever the routes
 *   "method": { "exact": bool, "exact_limit": n, "buckets": n, "max_bucket_records": n } }
 * Quantiles, ROC-AUC and Spearman follow core/stats.h (exact), or its binned forms when
 * "method.exact" is false. */
#include "report.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"

static const char *const verdict_names[] = {"none", "promote", "hold"};

/* The note on the canary route (compare_verdict.c explains it). */
static const char canary_note[] =
    "canary predictions were scored by the candidate in the primary: when the shadow runs the "
    "same candidate, canary pairs compare the candidate with itself and should be identical (no "
    "flips, score differences 0); the live route compares the candidate with the live model. "
    "The verdict judges the overall figures.";

/* The routes reported: those with primary records. */
static int route_shown(const ss_cmp_result_t *r, int k) {
    return r->routes[k].primary > 0;
}

/* Whether canary predictions are among the primary's. */
static int canary_present(const ss_cmp_result_t *r) {
    for (int k = 0; k < r->n_routes; k++)
        if (route_shown(r, k) && strcmp(r->routes[k].name, "canary") == 0)
            return 1;
    return 0;
}

static void iso_time(int64_t ms, char *out, size_t outlen) {
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03dZ", (int)(ms - (int64_t)s * 1000));
}

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
    iso_time(ms, buf, sizeof(buf));
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
        "{s:{s:o, s:o, s:o, s:o, s:o, s:o}, s:{s:s, s:o, s:{s:o, s:o, s:o, s:o}, s:{s:o, s:o, "
        "s:o, s:o}, s:o}, s:o, s:o, s:o}",
        "counts", "primary", jint(rt->primary), "matched", jint(rt->matched), "primary_only",
        jint(rt->primary_only), "matched_share", jnum(rt->matched_share), "identical_features",
        jint(rt->identical), "identical_share", jnum(rt->identical_share), "pairs", "scope",
        "identical_features", "n", jint(rt->identical), "score_diff", "mean", jnum(rt->diff_mean),
        "abs_p50", jnum(rt->abs_p50), "abs_p99", jnum(rt->abs_p99), "abs_max", jnum(rt->abs_max),
        "flips", "no_to_yes", jint(rt->flips_no_yes), "yes_to_no", jint(rt->flips_yes_no), "total",
        jint(rt->flips_no_yes + rt->flips_yes_no), "rate", jnum(rt->flip_rate), "spearman",
        jnum(rt->spearman), "latency_ms", lat, "labels", labels, "note",
        jstr(strcmp(rt->name, "canary") == 0 ? canary_note : NULL));
}

int ss_report_write_json(const ss_cmp_result_t *r, const char *path, char *errstr, size_t errlen) {
    char now[40];
    const ss_cmp_side_t *P = &r->side[0], *S = &r->side[1];
    json_t *inputs = json_object(), *models = json_object(), *dist = json_object();
    json_t *lat = json_object(), *labels = r->labels ? json_object() : json_null();
    json_t *edges = json_array();
    for (int i = 0; i <= SS_CMP_DIST_BINS; i++)
        json_array_append_new(edges, json_real((double)i / SS_CMP_DIST_BINS));
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
        if (route_shown(r, k))
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
        "{s:s, s:o, s:{s:o, s:o, s:o, s:o}, s:{s:o, s:o, s:o, s:o}, s:o, s:{s:o, s:o, s:o}}",
        "scope", "identical_features", "n", jint(r->identical), "score_diff", "mean",
        jnum(r->diff_mean), "abs_p50", jnum(r->abs_p50), "abs_p99", jnum(r->abs_p99), "abs_max",
        jnum(r->abs_max), "flips", "no_to_yes", jint(r->flips_no_yes), "yes_to_no",
        jint(r->flips_yes_no), "total", jint(r->flips_no_yes + r->flips_yes_no), "rate",
        jnum(r->flip_rate), "spearman", jnum(r->spearman), "diff_histogram", "lo",
        json_real(r->diff_lo), "hi", json_real(r->diff_hi), "counts",
        jcounts(r->diff_hist, SS_CMP_DIFF_BINS));
    json_t *reasons = json_array(), *passed = json_array(), *criteria = json_array();
    for (int i = 0; i < r->n_criteria; i++) {
        const ss_cmp_criterion_t *k = &r->criteria[i];
        json_array_append_new(k->passed ? passed : reasons, json_string(k->reason));
        json_array_append_new(criteria, json_pack("{s:s, s:o, s:o, s:b, s:s}", "key", k->key,
                                                  "limit", jnum(k->limit), "value", jnum(k->value),
                                                  "passed", k->passed, "reason", k->reason));
    }
    iso_time(ss_wall_ms(), now, sizeof(now));
    json_t *root = json_pack(
        "{s:i, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:s, s:o, s:o, s:o}, s:{s:b, s:I, "
        "s:i, s:o}}",
        "streamscore_compare", 1, "generated_at", now, "inputs", inputs, "counts", counts, "models",
        models, "pairs", pairs, "distributions", dist, "latency_ms", lat, "labels", labels,
        "routes", routes, "verdict", "decision", verdict_names[r->verdict], "reasons", reasons,
        "passed", passed, "criteria", criteria, "method", "exact", r->exact, "exact_limit",
        (json_int_t)r->exact_limit, "buckets", r->buckets, "max_bucket_records",
        jint(r->max_bucket));
    int rc = root && json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) == 0
                 ? 0
                 : SS_ERR_FAIL;
    if (rc)
        snprintf(errstr, errlen, "cannot write '%s'%s", path, root ? "" : " (out of memory)");
    json_decref(root);
    return rc;
}

/* ---- the figures as rows: the terminal summary and the HTML table -------------------- */

typedef void (*row_fn)(void *o, const char *name, const char *value);

static const char *fmt_num(char *buf, size_t n, const char *fmt, double v) {
    if (!isfinite(v))
        snprintf(buf, n, "n/a");
    else
        snprintf(buf, n, fmt, v);
    return buf;
}

static void rowf(row_fn fn, void *o, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void rowf(row_fn fn, void *o, const char *name, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fn(o, name, buf);
}

static void figure_rows(const ss_cmp_result_t *r, row_fn fn, void *o) {
    char a[32], b[32], c[32], d[32], name[64];
    for (int s = 0; s < 2; s++) {
        const ss_cmp_side_t *x = &r->side[s];
        char models[1024] = "none";
        size_t n = 0;
        for (int m = 0; m < x->n_models && n < sizeof(models); m++)
            n += (size_t)snprintf(
                models + n, sizeof(models) - n, "%s%s %s (threshold %s, %" PRIu64 " records)",
                m ? "; " : "", x->models[m].name, x->models[m].version,
                fmt_num(a, sizeof(a), "%g", x->models[m].threshold), x->models[m].records);
        snprintf(name, sizeof(name), "%s records", x->name);
        rowf(fn, o, name,
             "%" PRIu64 " distinct (%" PRIu64 " read, %" PRIu64 " duplicates, %" PRIu64
             " malformed, %" PRIu64 " out of range)",
             x->records, x->read, x->duplicates, x->malformed, x->out_of_range);
        snprintf(name, sizeof(name), "%s models", x->name);
        fn(o, name, models);
    }
    rowf(fn, o, "matched pairs", "%" PRIu64 " (primary-only %" PRIu64 ", shadow-only %" PRIu64 ")",
         r->matched, r->primary_only, r->shadow_only);
    rowf(fn, o, "matched share of primary", "%s", fmt_num(a, sizeof(a), "%.4f", r->matched_share));
    rowf(fn, o, "identical-feature pairs",
         "%" PRIu64 " (share of matched %s); the figures below use these", r->identical,
         fmt_num(a, sizeof(a), "%.4f", r->identical_share));
    rowf(fn, o, "score difference, candidate - primary", "mean %s",
         fmt_num(a, sizeof(a), "%+.6f", r->diff_mean));
    rowf(fn, o, "|difference| p50 / p99 / max", "%s / %s / %s",
         fmt_num(a, sizeof(a), "%.6f", r->abs_p50), fmt_num(b, sizeof(b), "%.6f", r->abs_p99),
         fmt_num(c, sizeof(c), "%.6f", r->abs_max));
    rowf(fn, o, "decision flips no->yes / yes->no", "%" PRIu64 " / %" PRIu64 ", flip rate %s",
         r->flips_no_yes, r->flips_yes_no, fmt_num(a, sizeof(a), "%.4f", r->flip_rate));
    rowf(fn, o, "Spearman rank correlation", "%s (%s)", fmt_num(a, sizeof(a), "%.6f", r->spearman),
         r->exact ? "exact" : "from histograms");
    for (int s = 0; s < 2; s++) {
        snprintf(name, sizeof(name), "%s latency p50 / p99 (ms)", r->side[s].name);
        rowf(fn, o, name, "%s / %s", fmt_num(a, sizeof(a), "%.1f", r->side[s].latency_p50),
             fmt_num(b, sizeof(b), "%.1f", r->side[s].latency_p99));
    }
    if (!r->labels)
        return;
    rowf(fn, o, "labels", "%s: %" PRIu64 " rows, %" PRIu64 " malformed", r->labels, r->labels_rows,
         r->labels_malformed);
    for (int s = 0; s < 2; s++) {
        const ss_cmp_side_t *x = &r->side[s];
        snprintf(name, sizeof(name), "%s ROC-AUC, precision, recall, F1", x->name);
        rowf(fn, o, name, "%s, %s, %s, %s (%" PRIu64 " labeled, %" PRIu64 " positive)",
             fmt_num(a, sizeof(a), "%.4f", x->auc), fmt_num(b, sizeof(b), "%.4f", x->precision),
             fmt_num(c, sizeof(c), "%.4f", x->recall), fmt_num(d, sizeof(d), "%.4f", x->f1),
             x->labeled, x->positives);
    }
}

/* ---- the per-route table: the terminal summary and the HTML report --------------------- */

#define ROUTE_COLS 8
typedef char cell_t[128];

static const char *const route_heads[ROUTE_COLS] = {"route",
                                                    "primary",
                                                    "matched (share)",
                                                    "identical pairs",
                                                    "flips no->yes / yes->no",
                                                    "flip rate",
                                                    "diff mean, |diff| p50 / p99",
                                                    "ROC-AUC primary / shadow"};

static const char route_caption[] =
    "The figures above, restricted to each route of the primary's predictions (one without a "
    "route field counts as live); latency and labels over the route's matched pairs.";

/* The cells of route rt's row; the columns: ROUTE_COLS, less the last without labels. */
static int route_cells(const ss_cmp_result_t *r, const ss_cmp_route_t *rt, cell_t *cell) {
    char a[32], b[32], c[32];
    snprintf(cell[0], sizeof(cell_t), "%s", rt->name);
    snprintf(cell[1], sizeof(cell_t), "%" PRIu64, rt->primary);
    snprintf(cell[2], sizeof(cell_t), "%" PRIu64 " (%s)", rt->matched,
             fmt_num(a, sizeof(a), "%.4f", rt->matched_share));
    snprintf(cell[3], sizeof(cell_t), "%" PRIu64, rt->identical);
    snprintf(cell[4], sizeof(cell_t), "%" PRIu64 " / %" PRIu64, rt->flips_no_yes, rt->flips_yes_no);
    fmt_num(cell[5], sizeof(cell_t), "%.4f", rt->flip_rate);
    snprintf(cell[6], sizeof(cell_t), "%s, %s / %s", fmt_num(a, sizeof(a), "%+.6f", rt->diff_mean),
             fmt_num(b, sizeof(b), "%.6f", rt->abs_p50),
             fmt_num(c, sizeof(c), "%.6f", rt->abs_p99));
    snprintf(cell[7], sizeof(cell_t), "%s / %s", fmt_num(a, sizeof(a), "%.4f", rt->side[0].auc),
             fmt_num(b, sizeof(b), "%.4f", rt->side[1].auc));
    return r->labels ? ROUTE_COLS : ROUTE_COLS - 1;
}

/* Print text from column `indent` on, wrapped at 100 columns. */
static void print_wrapped(FILE *out, int indent, const char *text) {
    const char *p = text;
    while (*p) {
        int room = 100 - indent, n = (int)strlen(p);
        if (n > room) {
            n = room;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = room;
        }
        fprintf(out, "%*s%.*s\n", indent, "", n, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

static void print_routes(const ss_cmp_result_t *r, FILE *out) {
    cell_t cell[SS_CMP_MAX_ROUTES][ROUTE_COLS];
    int width[ROUTE_COLS] = {0}, ncols = r->labels ? ROUTE_COLS : ROUTE_COLS - 1, rows = 0;
    for (int i = 0; i < ncols; i++)
        width[i] = (int)strlen(route_heads[i]);
    for (int k = 0; k < r->n_routes; k++) {
        if (!route_shown(r, k))
            continue;
        route_cells(r, &r->routes[k], cell[rows]);
        for (int i = 0; i < ncols; i++) {
            int w = (int)strlen(cell[rows][i]);
            width[i] = w > width[i] ? w : width[i];
        }
        rows++;
    }
    if (!rows)
        return;
    char caption[sizeof(route_caption) + 16];
    snprintf(caption, sizeof(caption), "Per route: %s", route_caption);
    print_wrapped(out, 2, caption);
    for (int row = -1; row < rows; row++) {
        fprintf(out, "   ");
        for (int i = 0; i < ncols; i++)
            fprintf(out, i ? "  %*s" : " %-*s", width[i], row < 0 ? route_heads[i] : cell[row][i]);
        fputc('\n', out);
    }
    if (canary_present(r)) {
        char note[sizeof(canary_note) + 8];
        snprintf(note, sizeof(note), "note: %s", canary_note);
        print_wrapped(out, 4, note);
    }
}

static void print_row(void *o, const char *name, const char *value) {
    fprintf(o, "  %-40s %s\n", name, value);
}

void ss_report_print_summary(const ss_cmp_result_t *r, FILE *out) {
    char from[40] = "start", to[40] = "end";
    if (r->from_ms != INT64_MIN)
        iso_time(r->from_ms, from, sizeof(from));
    if (r->to_ms != INT64_MAX)
        iso_time(r->to_ms, to, sizeof(to));
    fprintf(out, "streamscore compare: %s (primary) vs %s (shadow, %s), %s .. %s\n",
            r->side[0].location, r->side[1].location, r->side[1].source, from, to);
    figure_rows(r, print_row, out);
    print_routes(r, out);
    fprintf(out, "  %-40s %s\n", "verdict",
            r->verdict == SS_VERDICT_PROMOTE ? "PROMOTE"
            : r->verdict == SS_VERDICT_HOLD  ? "HOLD"
                                             : "none (no promote.* criterion set)");
    for (int i = 0; i < r->n_criteria; i++)
        fprintf(out, "    %s %s\n", r->criteria[i].passed ? "pass" : "FAIL", r->criteria[i].reason);
}

/* ---- compare.html ------------------------------------------------------------------------ */

#define W 640
#define H 320
#define ML 64
#define MR 16
#define MT 16
#define MB 44
#define PW (W - ML - MR)
#define PH (H - MT - MB)

static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void escf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void escf(FILE *f, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    esc(f, buf);
}

static double px(double v, double lo, double hi) {
    return ML + (hi > lo ? (v - lo) / (hi - lo) : 0.5) * PW;
}
static double py(double v, double lo, double hi) {
    return MT + PH - (hi > lo ? (v - lo) / (hi - lo) : 0) * PH;
}

/* Opens an <svg> with a frame, 5 ticks on each axis and axis titles. */
static void axes(FILE *f, const char *id, const char *title, double x0, double x1, double y0,
                 double y1, const char *xt, const char *yt) {
    fprintf(f, "<figure><figcaption>");
    esc(f, title);
    fprintf(f,
            "</figcaption>\n<svg id=\"%s\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
            id, W, H, W, H);
    fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", ML, MT, PW,
            PH);
    for (int i = 0; i <= 4; i++) {
        double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
        double X = px(xv, x0, x1), Y = py(yv, y0, y1);
        fprintf(f,
                "<line class=\"tick\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                "<text class=\"tl\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.3g</text>\n",
                X, MT + PH, X, MT + PH + 4, X, MT + PH + 16, xv);
        fprintf(f,
                "<line class=\"tick\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
                "<text class=\"tl\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n",
                ML - 4, Y, ML, Y, ML - 6, Y + 4, yv);
    }
    fprintf(f, "<text class=\"at\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">", ML + PW / 2, H - 6);
    esc(f, xt);
    fprintf(f,
            "</text><text class=\"at\" transform=\"translate(14,%d) rotate(-90)\" "
            "text-anchor=\"middle\">",
            MT + PH / 2);
    esc(f, yt);
    fprintf(f, "</text>\n");
}

static double nice_max(double v) {
    if (!(v > 0))
        return 1;
    double p = pow(10, floor(log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
}

static void chart_distributions(FILE *f, const ss_cmp_result_t *r) {
    double share[2][SS_CMP_DIST_BINS], top = 0;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < SS_CMP_DIST_BINS; i++) {
            share[s][i] =
                r->side[s].records ? (double)r->side[s].dist[i] / (double)r->side[s].records : 0;
            top = share[s][i] > top ? share[s][i] : top;
        }
    top = nice_max(top);
    axes(f, "chart-distributions", "Score distributions (all records of each side, 20 bins)", 0, 1,
         0, top, "score", "share of the side's records");
    double bw = (double)PW / SS_CMP_DIST_BINS;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < SS_CMP_DIST_BINS; i++) {
            double y = py(share[s][i], 0, top);
            fprintf(f,
                    "<rect class=\"bar %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                    "<title>%s, score %.2f-%.2f: %" PRIu64 " (%.2f%%)</title></rect>\n",
                    r->side[s].name, ML + i * bw + 1, y, bw - 2, MT + PH - y, r->side[s].name,
                    (double)i / SS_CMP_DIST_BINS, (double)(i + 1) / SS_CMP_DIST_BINS,
                    r->side[s].dist[i], 100 * share[s][i]);
        }
    for (int s = 0; s < 2; s++) {
        const ss_cmp_model_t *m = r->side[s].n_models ? &r->side[s].models[0] : NULL;
        fprintf(f,
                "<g class=\"legend\"><rect class=\"key %s\" x=\"%d\" y=\"%d\" width=\"12\" "
                "height=\"12\"/><text x=\"%d\" y=\"%d\">",
                r->side[s].name, W - MR - 220, MT + 8 + 18 * s, W - MR - 202, MT + 18 + 18 * s);
        escf(f, "%s%s%s%s%s", s ? "candidate (shadow)" : "primary", m ? " " : "", m ? m->name : "",
             m ? " " : "", m ? m->version : "");
        if (r->side[s].n_models > 1)
            fprintf(f, " (+%d more)", r->side[s].n_models - 1);
        fprintf(f, "</text></g>\n");
    }
    fprintf(f, "</svg></figure>\n");
}

static void chart_differences(FILE *f, const ss_cmp_result_t *r) {
    uint64_t top = 0;
    for (int i = 0; i < SS_CMP_DIFF_BINS; i++)
        top = r->diff_hist[i] > top ? r->diff_hist[i] : top;
    double ytop = nice_max((double)top);
    axes(f, "chart-differences", "Score differences, candidate - primary (identical-feature pairs)",
         r->diff_lo, r->diff_hi, 0, ytop, "candidate score - primary score", "pairs");
    double bw = (double)PW / SS_CMP_DIFF_BINS, step = (r->diff_hi - r->diff_lo) / SS_CMP_DIFF_BINS;
    for (int i = 0; i < SS_CMP_DIFF_BINS; i++) {
        double y = py((double)r->diff_hist[i], 0, ytop);
        fprintf(f,
                "<rect class=\"bar diff\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                "<title>%.4g to %.4g: %" PRIu64 "</title></rect>\n",
                ML + i * bw + 0.5, y, bw - 1, MT + PH - y, r->diff_lo + i * step,
                r->diff_lo + (i + 1) * step, r->diff_hist[i]);
    }
    if (!r->identical)
        fprintf(f,
                "<text class=\"empty\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">no "
                "identical-feature pairs</text>\n",
                ML + PW / 2, MT + PH / 2);
    fprintf(f, "</svg></figure>\n");
}

static void chart_scatter(FILE *f, const ss_cmp_result_t *r) {
    double lo = 0, hi = 1;
    for (int i = 0; i < r->n_sample; i++)
        for (int k = 0; k < 2; k++) {
            lo = r->sample[i][k] < lo ? r->sample[i][k] : lo;
            hi = r->sample[i][k] > hi ? r->sample[i][k] : hi;
        }
    char title[128];
    snprintf(title, sizeof(title), "Primary vs candidate score (%d identical-feature pairs%s)",
             r->n_sample, (uint64_t)r->n_sample < r->identical ? ", a uniform sample" : "");
    axes(f, "chart-scatter", title, lo, hi, lo, hi, "primary score", "candidate score");
    fprintf(f, "<line class=\"diagonal\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
            px(lo, lo, hi), py(lo, lo, hi), px(hi, lo, hi), py(hi, lo, hi));
    for (int i = 0; i < r->n_sample; i++)
        fprintf(f, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\"/>\n",
                px(r->sample[i][0], lo, hi), py(r->sample[i][1], lo, hi));
    fprintf(f, "</svg></figure>\n");
}

static void html_routes(FILE *f, const ss_cmp_result_t *r) {
    cell_t cell[ROUTE_COLS];
    int ncols = r->labels ? ROUTE_COLS : ROUTE_COLS - 1, rows = 0;
    for (int k = 0; k < r->n_routes; k++)
        rows += route_shown(r, k);
    if (!rows)
        return;
    fprintf(f, "<h2>Per route</h2>\n<p class=\"caption\">");
    esc(f, route_caption);
    fprintf(f, "</p>\n<table id=\"routes\">\n<tr>");
    for (int i = 0; i < ncols; i++) {
        fprintf(f, "<th>");
        esc(f, route_heads[i]);
        fprintf(f, "</th>");
    }
    fprintf(f, "</tr>\n");
    for (int k = 0; k < r->n_routes; k++) {
        if (!route_shown(r, k))
            continue;
        route_cells(r, &r->routes[k], cell);
        fprintf(f, "<tr class=\"route\">");
        for (int i = 0; i < ncols; i++) {
            fprintf(f, i ? "<td>" : "<th>");
            esc(f, cell[i]);
            fprintf(f, i ? "</td>" : "</th>");
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
    if (canary_present(r)) {
        fprintf(f, "<p id=\"canary-note\" class=\"note\">Note: ");
        esc(f, canary_note);
        fprintf(f, "</p>\n");
    }
}

static void html_row(void *o, const char *name, const char *value) {
    fprintf(o, "<tr><th>");
    esc(o, name);
    fprintf(o, "</th><td>");
    esc(o, value);
    fprintf(o, "</td></tr>\n");
}

int ss_report_write_html(const ss_cmp_result_t *r, const char *path, char *errstr, size_t errlen) {
    FILE *f = fopen(path, "w");
    char now[40], from[40] = "start of topics", to[40] = "end of topics";
    const ss_cmp_side_t *P = &r->side[0], *S = &r->side[1];
    if (!f) {
        snprintf(errstr, errlen, "cannot write '%s'", path);
        return SS_ERR_FAIL;
    }
    iso_time(ss_wall_ms(), now, sizeof(now));
    if (r->from_ms != INT64_MIN)
        iso_time(r->from_ms, from, sizeof(from));
    if (r->to_ms != INT64_MAX)
        iso_time(r->to_ms, to, sizeof(to));
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>");
    escf(f, "streamscore compare: %s vs %s", P->location, S->location);
    fprintf(f,
            "</title>\n<style>\n"
            "body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}\n"
            "h1{font-size:22px}h2{font-size:17px;margin-top:28px}\n"
            "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 8px;"
            "text-align:left;font-size:13px}td{font-variant-numeric:tabular-nums}\n"
            "figure{margin:16px 0}figcaption{font-weight:bold;font-size:14px;margin-bottom:4px}\n"
            "svg{background:#fff;border:1px solid #ddd}.frame{fill:none;stroke:#888}\n"
            ".tick{stroke:#888}.tl{font-size:11px;fill:#444}.at{font-size:12px;fill:#222}\n"
            ".bar.primary,.key.primary{fill:#1f77b4;fill-opacity:.55}\n"
            ".bar.shadow,.key.shadow{fill:#ff7f0e;fill-opacity:.55}\n"
            ".bar.diff{fill:#6a51a3}.point{fill:#1f77b4;fill-opacity:.45}\n"
            ".diagonal{stroke:#d62728;stroke-dasharray:4 3}.legend text{font-size:12px}\n"
            ".empty{fill:#888;font-size:13px}\n"
            ".verdict{padding:10px 14px;border-radius:4px}.verdict.promote{background:#e3f4e1}\n"
            ".verdict.hold{background:#fde2e1}.verdict.none{background:#eee}\n"
            "li.failed{color:#a50f15}li.passed{color:#256029}\n"
            ".caption{font-size:13px;color:#444}.note{font-size:13px;padding:6px 10px;"
            "background:#fff8e1;border-left:3px solid #f2b600}\n"
            "</style></head><body>\n<h1>streamscore compare</h1>\n<p class=\"inputs\">");
    escf(f,
         "Primary: %s (%s, %s). Candidate: %s (%s, %s). Time range: %s .. %s (by Kafka "
         "timestamp). Generated %s.",
         P->location, P->source, P->format, S->location, S->source, S->format, from, to, now);
    fprintf(f, "</p>\n<section id=\"verdict\" class=\"verdict %s\"><h2>Verdict: %s</h2>\n",
            verdict_names[r->verdict],
            r->verdict == SS_VERDICT_PROMOTE ? "promote"
            : r->verdict == SS_VERDICT_HOLD  ? "hold"
                                             : "no criterion set");
    if (r->n_criteria) {
        fprintf(f, "<ul>\n");
        for (int i = 0; i < r->n_criteria; i++) {
            fprintf(f, "<li class=\"%s\">%s: ", r->criteria[i].passed ? "passed" : "failed",
                    r->criteria[i].passed ? "passed" : "failed");
            esc(f, r->criteria[i].reason);
            fprintf(f, "</li>\n");
        }
        fprintf(f, "</ul>\n");
    }
    fprintf(f, "</section>\n<h2>Figures</h2>\n<table id=\"figures\">\n");
    figure_rows(r, html_row, f);
    fprintf(f, "</table>\n");
    html_routes(f, r);
    fprintf(f, "<h2>Charts</h2>\n");
    chart_distributions(f, r);
    chart_differences(f, r);
    chart_scatter(f, r);
    fprintf(f, "</body></html>\n");
    int rc = ferror(f) | fclose(f);
    if (rc)
        snprintf(errstr, errlen, "cannot write '%s'", path);
    return rc ? SS_ERR_FAIL : 0;
}
