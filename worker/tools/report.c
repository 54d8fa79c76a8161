/* report.c - renders the figures of `streamscore compare`: a terminal summary and
 * compare.html, one self-contained page with inline SVG charts and no network access, so that
 * it can be archived with a promotion decision. compare.json is report_json.c's. */
#include "report.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "report_int.h"

const char *const ss__report_verdict_names[3] = {"none", "promote", "hold"};
const char *const ss__report_kind_names[3] = {"binary", "multiclass", "regression"};

/* The note on the canary route (compare_verdict.c explains it). */
const char ss__report_canary_note[] =
    "canary predictions were scored by the candidate in the primary: when the shadow runs the "
    "same candidate, canary pairs compare the candidate with itself and should be identical (no "
    "flips, score differences 0); the live route compares the candidate with the live model. "
    "The verdict judges the overall figures.";

/* The routes reported: those with primary records. */
int ss__report_route_shown(const ss_cmp_result_t *r, int k) {
    return r->routes[k].primary > 0;
}

/* Whether canary predictions are among the primary's. */
int ss__report_canary_present(const ss_cmp_result_t *r) {
    for (int k = 0; k < r->n_routes; k++)
        if (ss__report_route_shown(r, k) && strcmp(r->routes[k].name, "canary") == 0)
            return 1;
    return 0;
}

void ss__report_iso_time(int64_t ms, char *out, size_t outlen) {
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03dZ", (int)(ms - (int64_t)s * 1000));
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

/* Multi-output models: what was compared, and each output's |difference| (the first `most`,
 * the others in one row). */
static void output_rows(const ss_cmp_result_t *r, row_fn fn, void *o, int most) {
    char a[32], b[32], c[32], name[64];
    if (!r->side[0].n_outputs && !r->side[1].n_outputs)
        return;
    rowf(fn, o, "outputs compared",
         "%d (primary %d, shadow %d; %" PRIu64 " pairs with outputs, %" PRIu64
         " of them with different numbers)",
         r->n_outputs, r->side[0].n_outputs, r->side[1].n_outputs, r->output_pairs,
         r->output_mismatch);
    for (int i = 0; i < r->n_outputs; i++) {
        const ss_cmp_output_t *x = &r->outputs[i];
        if (i == most) {
            snprintf(name, sizeof(name), "outputs %d to %d", i, r->n_outputs - 1);
            fn(o, name, "see compare.json or compare.html");
            break;
        }
        snprintf(name, sizeof(name), "output %d |difference| mean / p99 / max", i);
        rowf(fn, o, name, "%s / %s / %s (%" PRIu64 " pairs)",
             fmt_num(a, sizeof(a), "%.6g", x->abs_mean), fmt_num(b, sizeof(b), "%.6g", x->abs_p99),
             fmt_num(c, sizeof(c), "%.6g", x->abs_max), x->n);
    }
}

/* The figures, one row each (at most `most_outputs` rows of outputs). */
static void figure_rows(const ss_cmp_result_t *r, row_fn fn, void *o, int most_outputs) {
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
    if (r->kind == SS_CMP_KIND_REGRESSION)
        rowf(fn, o, "|difference| p50 / p95 / p99 / max", "%s / %s / %s / %s",
             fmt_num(a, sizeof(a), "%.6g", r->abs_p50), fmt_num(b, sizeof(b), "%.6g", r->abs_p95),
             fmt_num(c, sizeof(c), "%.6g", r->abs_p99), fmt_num(d, sizeof(d), "%.6g", r->abs_max));
    else
        rowf(fn, o, "|difference| p50 / p99 / max", "%s / %s / %s",
             fmt_num(a, sizeof(a), "%.6f", r->abs_p50), fmt_num(b, sizeof(b), "%.6f", r->abs_p99),
             fmt_num(c, sizeof(c), "%.6f", r->abs_max));
    if (r->identical && !r->decided)
        rowf(fn, o, "decision flips no->yes / yes->no", "n/a: no decisions (%s), flip rate n/a",
             r->kind == SS_CMP_KIND_MULTICLASS ? "multi-class: see class flips"
                                               : "the objective defines none");
    else
        rowf(fn, o, "decision flips no->yes / yes->no", "%" PRIu64 " / %" PRIu64 ", flip rate %s",
             r->flips_no_yes, r->flips_yes_no, fmt_num(a, sizeof(a), "%.4f", r->flip_rate));
    if (r->kind == SS_CMP_KIND_MULTICLASS)
        rowf(fn, o, "class flips (predicted class changed)",
             "%" PRIu64 " of %" PRIu64 " pairs, class flip rate %s", r->class_flips, r->class_pairs,
             fmt_num(a, sizeof(a), "%.4f", r->class_flip_rate));
    output_rows(r, fn, o, most_outputs);
    rowf(fn, o, "Spearman rank correlation", "%s (%s)", fmt_num(a, sizeof(a), "%.6f", r->spearman),
         r->exact ? "exact" : "from histograms");
    for (int s = 0; s < 2; s++) {
        snprintf(name, sizeof(name), "%s latency p50 / p99 (ms)", r->side[s].name);
        rowf(fn, o, name, "%s / %s", fmt_num(a, sizeof(a), "%.1f", r->side[s].latency_p50),
             fmt_num(b, sizeof(b), "%.1f", r->side[s].latency_p99));
    }
    if (!r->labels)
        return;
    if (r->kind == SS_CMP_KIND_REGRESSION) {
        rowf(fn, o, "labels", "%s: %" PRIu64 " rows, %" PRIu64 " malformed", r->labels,
             r->labels_rows, r->labels_malformed);
        for (int s = 0; s < 2; s++) {
            const ss_cmp_side_t *x = &r->side[s];
            snprintf(name, sizeof(name), "%s RMSE, MAE", x->name);
            rowf(fn, o, name, "%s, %s (%" PRIu64 " with a numeric label)",
                 fmt_num(a, sizeof(a), "%.6g", x->rmse), fmt_num(b, sizeof(b), "%.6g", x->mae),
                 x->valued);
        }
        return;
    }
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
    if (rt->identical && !rt->decided) /* no decisions: n/a, never a false 0 */
        snprintf(cell[4], sizeof(cell_t), "n/a");
    else
        snprintf(cell[4], sizeof(cell_t), "%" PRIu64 " / %" PRIu64, rt->flips_no_yes,
                 rt->flips_yes_no);
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
        if (!ss__report_route_shown(r, k))
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
    if (ss__report_canary_present(r)) {
        char note[sizeof(ss__report_canary_note) + 8];
        snprintf(note, sizeof(note), "note: %s", ss__report_canary_note);
        print_wrapped(out, 4, note);
    }
}

/* Multi-class: the primary class x candidate class counts, when they fit a terminal. */
static void print_class_matrix(const ss_cmp_result_t *r, FILE *out) {
    if (r->kind != SS_CMP_KIND_MULTICLASS || !r->n_classes)
        return;
    if (r->n_classes > 12) {
        fprintf(out, "  class matrix: %d classes, see compare.html or compare.json\n",
                r->n_classes);
        return;
    }
    fprintf(out,
            "  class matrix (rows: primary class, columns: candidate class; identical-feature "
            "pairs)\n    %-8s",
            "");
    for (int b = 0; b < r->n_classes; b++)
        fprintf(out, " %8d%s", b, r->classes_beyond && b == r->n_classes - 1 ? "+" : "");
    fputc('\n', out);
    for (int a = 0; a < r->n_classes; a++) {
        fprintf(out, "    %-8d", a);
        for (int b = 0; b < r->n_classes; b++)
            fprintf(out, " %8" PRIu64, r->class_matrix[a][b]);
        fputc('\n', out);
    }
}

static void print_row(void *o, const char *name, const char *value) {
    fprintf(o, "  %-40s %s\n", name, value);
}

void ss_report_print_summary(const ss_cmp_result_t *r, FILE *out) {
    char from[40] = "start", to[40] = "end";
    if (r->from_ms != INT64_MIN)
        ss__report_iso_time(r->from_ms, from, sizeof(from));
    if (r->to_ms != INT64_MAX)
        ss__report_iso_time(r->to_ms, to, sizeof(to));
    fprintf(out, "streamscore compare: %s (primary) vs %s (shadow, %s), %s .. %s\n",
            r->side[0].location, r->side[1].location, r->side[1].source, from, to);
    figure_rows(r, print_row, out, 16);
    print_class_matrix(r, out);
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

/* Opens an <svg> with a frame, 5 ticks on each axis (none on x without xticks: the chart
 * labels its own categories) and axis titles. */
static void axes_ticks(FILE *f, const char *id, const char *title, double x0, double x1, double y0,
                       double y1, const char *xt, const char *yt, int xticks) {
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
        if (xticks)
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

static void axes(FILE *f, const char *id, const char *title, double x0, double x1, double y0,
                 double y1, const char *xt, const char *yt) {
    axes_ticks(f, id, title, x0, x1, y0, y1, xt, yt, 1);
}

/* A chart's note that it has nothing to draw, in its middle. */
static void empty_note(FILE *f, const char *text) {
    fprintf(f, "<text class=\"empty\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
            ML + PW / 2, MT + PH / 2, text);
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
    /* a regression's values over the range read, a probability's over [0, 1] */
    double lo = r->dist_lo, hi = r->dist_hi, step = (hi - lo) / SS_CMP_DIST_BINS;
    int values = r->kind == SS_CMP_KIND_REGRESSION;
    axes(f, "chart-distributions", "Score distributions (all records of each side, 20 bins)", lo,
         hi, 0, top, "score", "share of the side's records");
    double bw = (double)PW / SS_CMP_DIST_BINS;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < SS_CMP_DIST_BINS; i++) {
            double y = py(share[s][i], 0, top);
            fprintf(f,
                    "<rect class=\"bar %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">",
                    r->side[s].name, ML + i * bw + 1, y, bw - 2, MT + PH - y);
            fprintf(f,
                    values ? "<title>%s, score %.4g-%.4g: %" PRIu64 " (%.2f%%)</title></rect>\n"
                           : "<title>%s, score %.2f-%.2f: %" PRIu64 " (%.2f%%)</title></rect>\n",
                    r->side[s].name, lo + i * step, lo + (i + 1) * step, r->side[s].dist[i],
                    100 * share[s][i]);
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
        empty_note(f, "no identical-feature pairs");
    fprintf(f, "</svg></figure>\n");
}

static void chart_scatter(FILE *f, const ss_cmp_result_t *r) {
    int values = r->kind == SS_CMP_KIND_REGRESSION && r->n_sample > 0;
    double lo = values ? INFINITY : 0, hi = values ? -INFINITY : 1; /* values: their range */
    for (int i = 0; i < r->n_sample; i++)
        for (int k = 0; k < 2; k++) {
            lo = r->sample[i][k] < lo ? r->sample[i][k] : lo;
            hi = r->sample[i][k] > hi ? r->sample[i][k] : hi;
        }
    char title[128];
    snprintf(title, sizeof(title), "Primary vs candidate score (%d identical-feature pairs%s)",
             r->n_sample, (uint64_t)r->n_sample < r->identical ? ", a uniform sample" : "");
    if (values && !(hi > lo))
        hi = lo + 1;
    axes(f, "chart-scatter", title, lo, hi, lo, hi, "primary score", "candidate score");
    fprintf(f, "<line class=\"diagonal\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
            px(lo, lo, hi), py(lo, lo, hi), px(hi, lo, hi), py(hi, lo, hi));
    for (int i = 0; i < r->n_sample; i++)
        fprintf(f, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\"/>\n",
                px(r->sample[i][0], lo, hi), py(r->sample[i][1], lo, hi));
    fprintf(f, "</svg></figure>\n");
}

/* Multi-output models: mean and p99 of |difference| per output, two bars per output. */
static void chart_outputs(FILE *f, const ss_cmp_result_t *r) {
    double top = 0;
    int n = r->n_outputs;
    for (int i = 0; i < n; i++) {
        const ss_cmp_output_t *o = &r->outputs[i];
        top = isfinite(o->abs_p99) && o->abs_p99 > top ? o->abs_p99 : top;
        top = isfinite(o->abs_mean) && o->abs_mean > top ? o->abs_mean : top;
    }
    top = nice_max(top);
    axes_ticks(f, "chart-outputs",
               "Per-output |candidate - primary| (identical-feature pairs): mean and p99", 0, n, 0,
               top, "output (class probability, quantile or target)", "|difference|", 0);
    double gw = n ? (double)PW / n : PW;
    int every = n > 32 ? (n + 31) / 32 : 1;
    for (int i = 0; i < n; i++) {
        const ss_cmp_output_t *o = &r->outputs[i];
        const double v[2] = {o->abs_mean, o->abs_p99};
        const char *const cls[2] = {"output-mean", "output-p99"}, *const what[2] = {"mean", "p99"};
        for (int k = 0; k < 2; k++) {
            double y = py(isfinite(v[k]) ? v[k] : 0, 0, top);
            fprintf(f,
                    "<rect class=\"bar %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.1f\"><title>output %d, %s |difference| %.6g (%" PRIu64
                    " pairs)</title></rect>\n",
                    cls[k], ML + i * gw + gw * (0.1 + 0.4 * k), y, gw * 0.4, MT + PH - y, i,
                    what[k], v[k], o->n);
        }
        if (i % every == 0)
            fprintf(f, "<text class=\"tl\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n",
                    ML + (i + 0.5) * gw, MT + PH + 16, i);
    }
    for (int k = 0; k < 2; k++)
        fprintf(f,
                "<g class=\"legend\"><rect class=\"key %s\" x=\"%d\" y=\"%d\" width=\"12\" "
                "height=\"12\"/><text x=\"%d\" y=\"%d\">%s |difference|</text></g>\n",
                k ? "output-p99" : "output-mean", W - MR - 160, MT + 8 + 18 * k, W - MR - 142,
                MT + 18 + 18 * k, k ? "p99 of" : "mean");
    if (!r->output_pairs)
        empty_note(f, "no identical-feature pairs with outputs on both sides");
    fprintf(f, "</svg></figure>\n");
}

/* Multi-class: the primary class x candidate class matrix, each cell shaded by its share of
 * the primary class's pairs (the diagonal: the class kept; elsewhere: a class flip). */
static void chart_class_matrix(FILE *f, const ss_cmp_result_t *r) {
    int n = r->n_classes, side = PH;
    double cs = n ? (double)side / n : side;
    char title[160];
    snprintf(title, sizeof(title),
             "Predicted class, primary (rows) x candidate (columns): %" PRIu64 " of %" PRIu64
             " identical-feature pairs changed class",
             r->class_flips, r->class_pairs);
    fprintf(f, "<figure><figcaption>");
    esc(f, title);
    fprintf(f,
            "</figcaption>\n<svg id=\"chart-class-matrix\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\">\n",
            W, H, W, H);
    for (int a = 0; a < n; a++) {
        uint64_t row = 0;
        for (int b = 0; b < n; b++)
            row += r->class_matrix[a][b];
        for (int b = 0; b < n; b++) {
            uint64_t k = r->class_matrix[a][b];
            double share = row ? (double)k / (double)row : 0;
            fprintf(f,
                    "<rect class=\"cell%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill-opacity=\"%.3f\"><title>primary class %d%s, candidate class %d%s: "
                    "%" PRIu64 " (%.2f%% of the primary class)</title></rect>\n",
                    a == b ? " diag" : "", ML + b * cs, MT + a * cs, cs, cs,
                    k ? 0.12 + 0.88 * share : 0.0, a, r->classes_beyond && a == n - 1 ? "+" : "", b,
                    r->classes_beyond && b == n - 1 ? "+" : "", k, 100 * share);
            if (n <= 10)
                fprintf(f,
                        "<text class=\"count\" x=\"%.1f\" y=\"%.1f\" "
                        "text-anchor=\"middle\">%" PRIu64 "</text>\n",
                        ML + (b + 0.5) * cs, MT + (a + 0.5) * cs + 4, k);
        }
    }
    int every = n > 16 ? (n + 15) / 16 : 1;
    for (int i = 0; i < n; i += every)
        fprintf(f,
                "<text class=\"tl\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d%s</text>"
                "<text class=\"tl\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d%s</text>\n",
                ML + (i + 0.5) * cs, MT + side + 16, i, r->classes_beyond && i == n - 1 ? "+" : "",
                ML - 6, MT + (i + 0.5) * cs + 4, i, r->classes_beyond && i == n - 1 ? "+" : "");
    fprintf(f,
            "<text class=\"at\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">candidate class</text>"
            "<text class=\"at\" transform=\"translate(14,%d) rotate(-90)\" "
            "text-anchor=\"middle\">primary class</text>\n",
            ML + side / 2, H - 6, MT + side / 2);
    char a[32];
    fprintf(f,
            "<g class=\"legend\"><rect class=\"key cell diag\" x=\"%d\" y=\"%d\" width=\"12\" "
            "height=\"12\"/><text x=\"%d\" y=\"%d\">same class</text><rect class=\"key cell\" "
            "x=\"%d\" y=\"%d\" width=\"12\" height=\"12\"/><text x=\"%d\" y=\"%d\">class "
            "changed</text><text x=\"%d\" y=\"%d\">class flip rate %s</text></g>\n",
            ML + side + 24, MT + 8, ML + side + 42, MT + 18, ML + side + 24, MT + 26,
            ML + side + 42, MT + 36, ML + side + 24, MT + 60,
            fmt_num(a, sizeof(a), "%.4f", r->class_flip_rate));
    fprintf(f, "</svg></figure>\n");
}

/* Regression: the distribution of |candidate - primary| with its p50, p95 and p99. */
static void chart_abs_diff(FILE *f, const ss_cmp_result_t *r) {
    uint64_t top = 0;
    for (int i = 0; i < SS_CMP_DIFF_BINS; i++)
        top = r->abs_hist[i] > top ? r->abs_hist[i] : top;
    double ytop = nice_max((double)top), hi = r->abs_hist_hi;
    axes(f, "chart-abs-diff",
         "|candidate - primary| of the values (identical-feature pairs), with p50, p95 and p99", 0,
         hi, 0, ytop, "|candidate score - primary score|", "pairs");
    double bw = (double)PW / SS_CMP_DIFF_BINS, step = hi / SS_CMP_DIFF_BINS;
    for (int i = 0; i < SS_CMP_DIFF_BINS; i++) {
        double y = py((double)r->abs_hist[i], 0, ytop);
        fprintf(f,
                "<rect class=\"bar absdiff\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                "height=\"%.1f\"><title>%.4g to %.4g: %" PRIu64 "</title></rect>\n",
                ML + i * bw + 0.5, y, bw - 1, MT + PH - y, i * step, (i + 1) * step,
                r->abs_hist[i]);
    }
    const double q[3] = {r->abs_p50, r->abs_p95, r->abs_p99};
    const char *const qn[3] = {"p50", "p95", "p99"};
    for (int k = 0; k < 3 && r->identical; k++) {
        double X = px(fmin(q[k], hi), 0, hi);
        fprintf(f,
                "<line class=\"marker\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\">"
                "<title>%s %.6g</title></line><text class=\"tl\" x=\"%.1f\" y=\"%d\" "
                "text-anchor=\"middle\">%s</text>\n",
                X, MT, X, MT + PH, qn[k], q[k], X, MT + 12 + 12 * k, qn[k]);
    }
    if (!r->identical)
        empty_note(f, "no identical-feature pairs");
    fprintf(f, "</svg></figure>\n");
}

static void html_routes(FILE *f, const ss_cmp_result_t *r) {
    cell_t cell[ROUTE_COLS];
    int ncols = r->labels ? ROUTE_COLS : ROUTE_COLS - 1, rows = 0;
    for (int k = 0; k < r->n_routes; k++)
        rows += ss__report_route_shown(r, k);
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
        if (!ss__report_route_shown(r, k))
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
    if (ss__report_canary_present(r)) {
        fprintf(f, "<p id=\"canary-note\" class=\"note\">Note: ");
        esc(f, ss__report_canary_note);
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
    ss__report_iso_time(ss_wall_ms(), now, sizeof(now));
    if (r->from_ms != INT64_MIN)
        ss__report_iso_time(r->from_ms, from, sizeof(from));
    if (r->to_ms != INT64_MAX)
        ss__report_iso_time(r->to_ms, to, sizeof(to));
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
            ".bar.output-mean,.key.output-mean{fill:#2ca02c}.bar.output-p99,.key.output-p99"
            "{fill:#9467bd}\n.cell{fill:#d62728;stroke:#bbb}.cell.diag{fill:#2ca02c}"
            ".count{font-size:11px;fill:#111}\n"
            ".bar.absdiff{fill:#8c564b}.marker{stroke:#d62728;stroke-width:1.5;"
            "stroke-dasharray:5 3}\n"
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
            ss__report_verdict_names[r->verdict],
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
    figure_rows(r, html_row, f, SS_CMP_MAX_OUTPUTS);
    fprintf(f, "</table>\n");
    html_routes(f, r);
    fprintf(f, "<h2>Charts</h2>\n");
    chart_distributions(f, r);
    chart_differences(f, r);
    if (r->kind == SS_CMP_KIND_REGRESSION)
        chart_abs_diff(f, r);
    chart_scatter(f, r);
    if (r->n_outputs)
        chart_outputs(f, r);
    if (r->kind == SS_CMP_KIND_MULTICLASS && r->n_classes)
        chart_class_matrix(f, r);
    fprintf(f, "</body></html>\n");
    int rc = ferror(f) | fclose(f);
    if (rc)
        snprintf(errstr, errlen, "cannot write '%s'", path);
    return rc ? SS_ERR_FAIL : 0;
}
