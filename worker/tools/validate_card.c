/* validate_card.c - where the verdict of `validate-model` goes: a table on stdout (one row
 * per metric, its gate and the result), the result as JSON (--json FILE) and as the model
 * card's "validation" object. Files are written with jansson through a temporary file and a
 * rename, so that readers never see half a card. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "validate_int.h"

#ifndef SS_VERSION
#define SS_VERSION "0.0.0"
#endif

static void fmt_value(char *buf, size_t len, double v, const char *fmt) {
    if (isnan(v))
        snprintf(buf, len, "n/a");
    else
        snprintf(buf, len, fmt, v);
}

/* How gate g's values are written: rates and losses to 4 decimals, errors in the label's
 * unit to 6 significant digits. */
static const char *gate_fmt(int g) {
    return g == G_RMSE || g == G_MAE ? "%.6g" : "%.4f";
}

/* The gate column: the rule, "not checked" or "not applicable", naming the key. */
static void fmt_gate(char *buf, size_t len, const vld_run_t *r, const vld_gate_t *g,
                     const char *thr_fmt) {
    char thr[32];
    if (!g->applies) {
        snprintf(buf, len, "not applicable to %s (%s)", ss_task_name(r->task), g->key);
    } else if (!g->set) {
        snprintf(buf, len, "not checked (%s)", g->key);
    } else {
        snprintf(thr, sizeof(thr), thr_fmt, g->threshold);
        snprintf(buf, len, "%s %s (%s)", g->is_max ? "<=" : ">=", thr, g->key);
    }
}

static void print_gate_row(const vld_run_t *r, const vld_gate_t *g, const char *value_fmt,
                           const char *gate_fmt) {
    char value[32], gate[96];
    fmt_value(value, sizeof(value), g->value, value_fmt);
    fmt_gate(gate, sizeof(gate), r, g, gate_fmt);
    printf("  %-18s %-12s %-44s %s\n", g->name, value, gate,
           !(g->set && g->applies) ? "-"
           : g->passed             ? "pass"
                                   : "FAIL");
}

/* The fields the data lacks, ", "-separated after a space; `with_feature`: each with its
 * feature's name where features.rename gave it another field. */
static void print_missing(const vld_run_t *r, int with_feature) {
    for (size_t i = 0; i < r->n_missing; i++) {
        size_t f = r->missing[i];
        printf("%s%s", i ? ", " : " ", r->fields[f]);
        if (with_feature && strcmp(r->fields[f], r->model->feature_names[f]) != 0)
            printf(" (feature %s)", r->model->feature_names[f]);
    }
}

/* A segment's value as the table shows it. */
static const char *seg_text(const vld_segment_t *s) {
    return s->value ? s->value : "(null)";
}

/* The last line: PASS, or FAIL naming every failed gate. */
static void print_verdict(const vld_run_t *r) {
    const vld_gate_t *gates = r->gates;
    size_t nf = r->model->n_features;
    char v[32];
    if (r->passed) {
        int checked = 1;
        for (int i = 0; i < N_GATES; i++)
            checked += gates[i].set && gates[i].applies;
        for (int i = 0; i < N_QUALITY; i++)
            checked += r->seg_gates[i].named && gates[i].applies;
        printf("\nPASS: all %d checked gates passed\n", checked);
        return;
    }
    const char *sep = " ";
    printf("\nFAIL:");
    for (int i = 0; i < N_GATES; i++) {
        if (gates[i].passed)
            continue;
        fmt_value(v, sizeof(v), gates[i].value, "%.4g");
        printf("%s%s %s %s %g (%s)", sep, gates[i].name, v, gates[i].is_max ? ">" : "<",
               gates[i].threshold, gates[i].key);
        sep = "; ";
    }
    for (int i = 0; i < N_QUALITY; i++) {
        const vld_seg_gate_t *sg = &r->seg_gates[i];
        if (!sg->named || sg->passed)
            continue;
        fmt_value(v, sizeof(v), sg->value, "%.4g");
        if (sg->segment < 0)
            printf("%sworst segment %s: no segment of %s has %ld records (%s, "
                   "validate.segment.min.records)",
                   sep, gates[i].name, r->cfg->validate_segment_field,
                   r->cfg->validate_segment_min_records, gates[i].key);
        else
            printf("%sworst segment %s %s %s %g in %s=%s (%s, validate.segment.gates)", sep,
                   gates[i].name, v, gates[i].is_max ? ">" : "<", gates[i].threshold,
                   r->cfg->validate_segment_field, seg_text(&r->segs[sg->segment]), gates[i].key);
        sep = "; ";
    }
    if (r->n_missing) {
        printf("%sfeatures_present %zu/%zu (the data lacks", sep, nf - r->n_missing, nf);
        print_missing(r, 0);
        printf(")");
    }
    printf("\n");
}

/* Each segment's count and metrics, then the worst segment of each segment gate. */
static void print_segments(const vld_run_t *r) {
    const ss_config_t *cfg = r->cfg;
    char v[32], g[96];
    printf("\nsegments by %s (validate.segment.field): %zu; gated: those of at least %ld "
           "records (validate.segment.min.records)\n",
           cfg->validate_segment_field, r->n_segs, cfg->validate_segment_min_records);
    printf("  %-24s %-10s", "segment", "n");
    for (int q = 0; q < N_QUALITY; q++)
        if (r->gates[q].applies)
            printf(" %-10s", r->gates[q].name);
    printf(" %s\n", "gated");
    for (size_t s = 0; s < r->n_segs; s++) {
        const vld_segment_t *seg = &r->segs[s];
        printf("  %-24.24s %-10zu", seg_text(seg), seg->m.n);
        for (int q = 0; q < N_QUALITY; q++) {
            if (!r->gates[q].applies)
                continue;
            fmt_value(v, sizeof(v), seg->m.q[q], gate_fmt(q));
            printf(" %-10s", v);
        }
        printf(" %s\n", seg->gated ? "yes" : "no");
    }
    if (!r->any_seg_gate)
        return;
    printf("\nworst gated segment (validate.segment.gates):\n");
    printf("  %-18s %-12s %-44s %-6s %s\n", "metric", "value", "gate", "result", "segment");
    for (int q = 0; q < N_QUALITY; q++) {
        const vld_seg_gate_t *sg = &r->seg_gates[q];
        if (!sg->named)
            continue;
        fmt_value(v, sizeof(v), sg->value, gate_fmt(q));
        fmt_gate(g, sizeof(g), r, &r->gates[q], gate_fmt(q));
        if (!r->gates[q].applies) {
            printf("  %-18s %-12s %-44s -\n", r->gates[q].name, v, g);
            continue;
        }
        printf(
            "  %-18s %-12s %-44s %-6s %s\n", r->gates[q].name, v, g, sg->passed ? "pass" : "FAIL",
            sg->segment >= 0 ? seg_text(&r->segs[sg->segment]) : "(no segment has enough records)");
    }
}

void vld_print_report(const vld_run_t *r) {
    const ss_config_t *cfg = r->cfg;
    const vld_dataset_t *ds = &r->ds;
    const vld_gate_t *gates = r->gates;
    size_t nf = r->model->n_features;
    char v[32], g[96];

    printf("streamscore validate-model: %s %s (%s, %lld bytes)\n", r->model->name,
           r->model->version, cfg->model_path, r->model_bytes);
    printf("data: %s (sha256 %.16s...)\n", r->data, r->data_sha);
    printf("records: %zu read, %zu scored, %zu without label, %zu with a label not %s, "
           "%zu undecodable\n",
           ds->records, ds->n, ds->unlabeled, ds->bad_label, vld_label_rule(r->task),
           ds->undecodable);
    if (ds->undecodable)
        printf("first undecodable: %s\n", ds->first_decode_error);
    if (r->task == SS_TASK_BINARY) {
        printf("threshold: %g (%s)", r->threshold,
               isnan(cfg->model_threshold) ? "the model card's, or 0.5" : "model.threshold");
        if (!isnan(r->card_threshold) && fabs(r->card_threshold - r->threshold) > 1e-12)
            printf("; note: the model card's threshold is %g", r->card_threshold);
    } else {
        printf("objective: %s (task %s", r->model->objective.name, ss_task_name(r->task));
        if (r->n_classes)
            printf(", %zu classes", r->n_classes);
        printf(")");
    }
    printf("\nbatches: %zu of up to %zu rows (batch.max.messages)\n\n", r->n_batches, r->batch);

    printf("  %-18s %-12s %-44s %s\n", "metric", "value", "gate", "result");
    for (int i = 0; i < N_QUALITY; i++)
        if (gates[i].applies)
            print_gate_row(r, &gates[i], gate_fmt(i), gate_fmt(i));
    if (r->task == SS_TASK_RANKING || r->task == SS_TASK_SURVIVAL) {
        snprintf(g, sizeof(g), "no quality gate applies to %s", ss_task_name(r->task));
        printf("  %-18s %-12s %-44s %s\n", "quality", "n/a", g, "-");
    }
    for (int i = 0; i < N_QUALITY; i++)
        if (!gates[i].applies && gates[i].set)
            print_gate_row(r, &gates[i], gate_fmt(i), gate_fmt(i));
    if (r->task == SS_TASK_BINARY)
        printf("  %-18s %-12.4f\n", "positive_rate", r->m.positive_rate);
    if (r->n_classes)
        printf("  %-18s %-12zu\n", "classes", r->n_classes);
    printf("  %-18s %-12zu\n", "n", r->m.n);
    print_gate_row(r, &gates[G_MODEL_MB], "%.3f", "%g");
    fmt_value(v, sizeof(v), r->m.batch_p50_ms, "%.3f");
    printf("  %-18s %-12s\n", "batch_p50_ms", v);
    print_gate_row(r, &gates[G_BATCH_P99], "%.3f", "%g");
    fmt_value(v, sizeof(v), r->m.rows_per_s, "%.0f");
    printf("  %-18s %-12s\n", "rows_per_s", v);
    snprintf(v, sizeof(v), "%zu/%zu", nf - r->n_missing, nf);
    snprintf(g, sizeof(g), "all %zu model features in the data", nf);
    printf("  %-18s %-12s %-44s %s\n", "features_present", v, g, r->n_missing ? "FAIL" : "pass");
    if (r->n_missing) {
        printf("\nthe data file's schema lacks the field of %zu model feature%s:", r->n_missing,
               r->n_missing == 1 ? "" : "s");
        print_missing(r, 1);
        printf("\n");
    }
    if (r->seg_index >= 0)
        print_segments(r);
    print_verdict(r);
    fflush(stdout);
}

/* ---- the result as JSON ------------------------------------------------------------------ */

static double round_to(double v, double scale) {
    return isfinite(v) ? round(v * scale) / scale : v;
}

static json_t *num(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

/* The gates that were checked, with the features gate; the names of those that were not, and
 * of those that do not apply to the task although their threshold is set. */
static json_t *gates_json(const vld_run_t *r, json_t **not_checked, json_t **not_applicable) {
    size_t nf = r->model->n_features;
    json_t *jg = json_object(), *jmiss = json_array();
    *not_checked = json_array();
    *not_applicable = json_array();
    for (int g = 0; g < N_GATES; g++) {
        const vld_gate_t *gt = &r->gates[g];
        if (!gt->applies || !gt->set) {
            if (gt->applies || gt->set)
                json_array_append_new(gt->applies ? *not_checked : *not_applicable,
                                      json_string(gt->name));
            continue;
        }
        double v = round_to(gt->value, g == G_BATCH_P99 ? 1e3 : 1e6);
        json_object_set_new(jg, gt->name,
                            json_pack("{s:f, s:o, s:b}", "threshold", gt->threshold, "value",
                                      num(v), "passed", gt->passed));
    }
    for (size_t i = 0; i < r->n_missing; i++)
        json_array_append_new(jmiss, json_string(r->fields[r->missing[i]]));
    json_object_set_new(jg, "features_present",
                        json_pack("{s:I, s:I, s:b, s:o}", "threshold", (json_int_t)nf, "value",
                                  (json_int_t)(nf - r->n_missing), "passed", r->n_missing == 0,
                                  "missing", jmiss));
    return jg;
}

/* The task's quality metrics of `m` (binary: with the positive rate; multi-class: with the
 * number of classes), rounded to 6 decimals. */
static json_t *quality_json(const vld_run_t *r, const vld_metrics_t *m) {
    json_t *o = json_object();
    for (int g = 0; g < N_QUALITY; g++)
        if (r->gates[g].applies)
            json_object_set_new(o, r->gates[g].name, num(round_to(m->q[g], 1e6)));
    if (r->task == SS_TASK_BINARY)
        json_object_set_new(o, "positive_rate", num(round_to(m->positive_rate, 1e6)));
    if (r->n_classes)
        json_object_set_new(o, "n_classes", json_integer((json_int_t)r->n_classes));
    return o;
}

/* A segment's value as a JSON string: its bytes when they are UTF-8, else with each byte
 * outside ASCII written as '?'; null for null. */
static json_t *seg_value_json(const vld_segment_t *s) {
    if (!s->value)
        return json_null();
    json_t *j = json_stringn(s->value, s->len);
    if (j)
        return j;
    char *copy = malloc(s->len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < s->len; i++)
        copy[i] = (unsigned char)s->value[i] < 0x80 ? s->value[i] : '?';
    j = json_stringn(copy, s->len);
    free(copy);
    return j;
}

/* validate.segment.field's segments: each one's count and metrics, and the worst of each
 * segment gate. */
static json_t *segments_json(const vld_run_t *r) {
    json_t *values = json_array(), *gates = json_object(), *not_applicable = json_array();
    size_t n_gated = 0;
    for (size_t s = 0; s < r->n_segs; s++) {
        const vld_segment_t *seg = &r->segs[s];
        n_gated += seg->gated != 0;
        json_array_append_new(values,
                              json_pack("{s:o, s:I, s:b, s:o}", "value", seg_value_json(seg), "n",
                                        (json_int_t)seg->m.n, "gated", seg->gated, "metrics",
                                        quality_json(r, &seg->m)));
    }
    for (int g = 0; g < N_QUALITY; g++) {
        const vld_seg_gate_t *sg = &r->seg_gates[g];
        const vld_gate_t *gt = &r->gates[g];
        if (!sg->named)
            continue;
        if (!gt->applies) {
            json_array_append_new(not_applicable, json_string(gt->name));
            continue;
        }
        json_object_set_new(
            gates, gt->name,
            json_pack("{s:s, s:f, s:o, s:o, s:b}", "key", gt->key, "threshold", gt->threshold,
                      "value", num(round_to(sg->value, 1e6)), "segment",
                      sg->segment >= 0 ? seg_value_json(&r->segs[sg->segment]) : json_null(),
                      "passed", sg->passed));
    }
    return json_pack("{s:s, s:I, s:I, s:o, s:o, s:o}", "field", r->cfg->validate_segment_field,
                     "min_records", (json_int_t)r->cfg->validate_segment_min_records, "gated",
                     (json_int_t)n_gated, "values", values, "gates", gates, "not_applicable",
                     not_applicable);
}

/* The result as the card's "validation" object (new reference, NULL when out of memory). */
static json_t *result_json(const vld_run_t *r) {
    const vld_metrics_t *m = &r->m;
    const vld_dataset_t *ds = &r->ds;
    char when[32];
    time_t t = time(NULL);
    struct tm tm;
    json_t *not_checked = NULL, *not_applicable = NULL;
    json_t *gates = gates_json(r, &not_checked, &not_applicable);
    json_t *metrics = quality_json(r, m);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    json_object_set_new(metrics, "batch_p50_ms", num(round_to(m->batch_p50_ms, 1e3)));
    json_object_set_new(metrics, "batch_p99_ms", num(round_to(m->batch_p99_ms, 1e3)));
    json_object_set_new(metrics, "rows_per_s", num(round_to(m->rows_per_s, 1)));
    json_object_set_new(metrics, "batch_rows", json_integer((json_int_t)r->batch));
    json_t *res = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:{s:I, s:I, s:I, s:I}, s:s, s:o, s:o, s:I, s:o, s:o, "
        "s:o, s:b, s:s, s:s}",
        "validated_at", when, "data_file", r->data, "data_sha256", r->data_sha, "task",
        ss_task_name(r->task), "objective", r->model->objective.name, "n", (json_int_t)ds->n,
        "records", "read", (json_int_t)ds->records, "unlabeled", (json_int_t)ds->unlabeled,
        "bad_label", (json_int_t)ds->bad_label, "undecodable", (json_int_t)ds->undecodable,
        "label_field", r->cfg->validate_label_field, "threshold", num(r->threshold), "metrics",
        metrics, "model_bytes", (json_int_t)r->model_bytes, "gates", gates, "not_checked",
        not_checked, "not_applicable", not_applicable, "passed", r->passed, "streamscore_version",
        SS_VERSION, "xgboost_version", ss_model_xgboost_version());
    if (res && r->seg_index >= 0) {
        json_t *segs = segments_json(r);
        if (!segs || json_object_set_new(res, "segments", segs) != 0) {
            json_decref(res);
            return NULL;
        }
    }
    return res;
}

/* Whether every real of `v` reads back exactly when written with `digits` significant
 * digits. */
static int reals_round_trip(json_t *v, int digits) {
    const char *key;
    json_t *item;
    size_t i;
    char buf[40];
    int ok = 1;
    switch (json_typeof(v)) {
    case JSON_REAL:
        snprintf(buf, sizeof(buf), "%.*g", digits, json_real_value(v));
        return strtod(buf, NULL) == json_real_value(v);
    case JSON_OBJECT: json_object_foreach(v, key, item) { ok = ok && reals_round_trip(item, digits);
        }
        return ok;
    case JSON_ARRAY: json_array_foreach(v, i, item) { ok = ok && reals_round_trip(item, digits);
        }
        return ok;
    default: return 1;
    }
}

int vld_json_digits(json_t *doc) {
    int digits = 1;
    while (digits < 17 && !reals_round_trip(doc, digits))
        digits++;
    return digits;
}

/* Write `doc` to `path` (two-space indent, like the cards) through a temporary file in the
 * same folder and a rename. jansson writes every real of a document with one precision: the
 * fewest digits that read all of them back exactly, so that a card keeps 0.1 as 0.1. */
static int write_json_file(const char *path, json_t *doc, char *errstr, size_t errlen) {
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    FILE *f = NULL;
    int fd = -1, rc = SS_ERR_FAIL, digits;
    struct stat st;
    if (!tmp) {
        snprintf(errstr, errlen, "out of memory");
        return SS_ERR_NOMEM;
    }
    digits = vld_json_digits(doc);
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    if ((fd = mkstemp(tmp)) >= 0 && (f = fdopen(fd, "w")))
        fd = -1; /* the stream owns it */
    if (f) {
        /* keep the card's permissions */
        fchmod(fileno(f), stat(path, &st) == 0 ? st.st_mode & 07777 : 0644);
        int bad = json_dumpf(doc, f, JSON_INDENT(2) | JSON_REAL_PRECISION(digits)) != 0 ||
                  fputc('\n', f) == EOF || fflush(f) != 0 || fsync(fileno(f)) != 0;
        rc = fclose(f) != 0 || bad ? SS_ERR_FAIL : 0;
    }
    if (rc < 0) {
        snprintf(errstr, errlen, "cannot write '%s': %s", path, strerror(errno));
    } else if (rename(tmp, path) != 0) {
        snprintf(errstr, errlen, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        rc = SS_ERR_FAIL;
    }
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* Append `what` to r->err. */
static void err_suffix(vld_run_t *r, const char *what) {
    size_t len = strlen(r->err);
    snprintf(r->err + len, sizeof(r->err) - len, " (%s)", what);
}

static int write_json_out(vld_run_t *r, json_t *res) {
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s?, s:O}", "model_name", r->model->name,
                            "model_version", r->model->version, "model_path", r->cfg->model_path,
                            "model_card", r->card ? r->cfg->model_card : NULL, "validation", res);
    int rc = SS_ERR_NOMEM;
    if (!doc)
        snprintf(r->err, sizeof(r->err), "out of memory");
    else if ((rc = write_json_file(r->json_out, doc, r->err, sizeof(r->err))) < 0)
        err_suffix(r, "--json");
    else
        printf("result written to %s\n", r->json_out);
    json_decref(doc);
    return rc;
}

int vld_record_result(vld_run_t *r) {
    const char *card_path = r->cfg->model_card;
    json_t *res = result_json(r);
    int rc = 0;
    if (!res) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        return SS_ERR_NOMEM;
    }
    if (r->json_out && (rc = write_json_out(r, res)) < 0)
        goto cleanup;
    if (!r->update_card) {
        printf("model card not updated (--no-update-card)\n");
    } else if (!r->card) {
        printf("note: model card '%s' does not exist; not created (the result is not recorded)\n",
               card_path ? card_path : "");
    } else {
        json_object_set(r->card, "validation", res);
        if ((rc = write_json_file(card_path, r->card, r->err, sizeof(r->err))) < 0) {
            err_suffix(r, "model card, key model.card");
            goto cleanup;
        }
        printf("model card %s updated (\"validation\")\n", card_path);
    }
cleanup:
    json_decref(res);
    return rc;
}
