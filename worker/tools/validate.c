/* validate.c - `streamscore validate-model`: scores a labeled Avro data set with the configured
 * model exactly as the worker would (the model brought into service by ss_model_open, as at
 * start-up and reload; the same decoder; the same batched XGBoost call), measures quality by
 * the model's task and batch latency (core/stats definitions), over the whole data set and
 * over each segment of validate.segment.field, checks them against the validate.* gates and
 * records the verdict in the model card, so that a model is judged on the same path that will
 * serve it. validate_int.h maps the other parts. */
#include "validate.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "stats.h"
#include "validate_int.h"

/* Multi-class log loss clips each probability to [eps, 1 - eps], as scikit-learn's log_loss
 * did with its former default eps. */
#define LOG_LOSS_EPS 1e-15

static void usage(FILE *out) {
    fprintf(out,
            "Usage: streamscore validate-model -c FILE --data FILE.avro [--json FILE]\n"
            "                                  [--no-update-card] [-X key=value ...]\n\n"
            "Scores a labeled data set with model.path, the way the worker scores events, and\n"
            "checks the results against the gates of the model's task. The data set is an Avro\n"
            "object container file of events: any writer schema that resolves against\n"
            "input.schema by field name, each record also carrying the label field\n"
            "validate.label.field (null = unlabeled): binary, boolean or int 0/1; multi-class,\n"
            "the class index (int); regression, ranking, survival, a number.\n\n"
            "Options:\n"
            "  --data FILE.avro    the labeled events (required)\n"
            "  --json FILE         also write the result as JSON to FILE\n"
            "  --no-update-card    do not record the result in the model card\n"
            "  --help              this text\n\n"
            "Gates (configuration keys; each key's doc says which value is not checked):\n"
            "  binary, at model.threshold: validate.min.roc.auc, validate.min.precision,\n"
            "    validate.min.recall, validate.min.f1\n"
            "  regression: validate.max.rmse, validate.max.mae, validate.min.r2\n"
            "  multi-class: validate.max.log.loss, validate.min.accuracy, validate.min.macro.f1\n"
            "  ranking, survival: no quality gate\n"
            "  every task: validate.max.model.mb, validate.max.batch.p99.ms (one batch =\n"
            "  batch.max.messages rows), and every model feature (after features.rename) is a\n"
            "  field of the data file's schema. A gate of another task is not applicable.\n\n"
            "Segments: validate.segment.field (a string, enum, boolean or int field) splits the\n"
            "data; each segment's metrics are reported, and the quality gates listed in\n"
            "validate.segment.gates must also hold in the worst segment of at least\n"
            "validate.segment.min.records records.\n\n"
            "Unless --no-update-card, the result is written to the model card (model.card)\n"
            "as its \"validation\" object; the card's other keys are kept.\n"
            "Exit codes: 0 every gate passed, 3 a gate failed, 1 runtime failure,\n"
            "2 bad usage or configuration.\n");
}

/* --data, --json, --no-update-card (--help is answered before the configuration is read). */
static int parse_args(vld_run_t *r, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--no-update-card") == 0) {
            r->update_card = 0;
        } else if (strcmp(a, "--data") == 0 || strcmp(a, "--json") == 0) {
            if (i + 1 >= argc || !*argv[i + 1]) {
                fprintf(stderr, "streamscore validate-model: %s needs a file\n", a);
                return SS_ERR_CONFIG;
            }
            *(a[2] == 'd' ? &r->data : &r->json_out) = argv[++i];
        } else if (strncmp(a, "--data=", 7) == 0 && a[7]) {
            r->data = a + 7;
        } else if (strncmp(a, "--json=", 7) == 0 && a[7]) {
            r->json_out = a + 7;
        } else {
            fprintf(stderr, "streamscore validate-model: unknown option '%s' (see --help)\n", a);
            return SS_ERR_CONFIG;
        }
    }
    if (!r->data) {
        fprintf(stderr, "streamscore validate-model: --data FILE.avro is required (see --help)\n");
        return SS_ERR_CONFIG;
    }
    return 0;
}

/* The card parsed into r->card (NULL: jerr says why) from `path`: its threshold. */
static int take_card(vld_run_t *r, const char *path, const json_error_t *jerr) {
    r->card_threshold = NAN;
    if (!r->card || !json_is_object(r->card)) {
        snprintf(r->err, sizeof(r->err), "model card '%s' (key model.card): line %d: %s", path,
                 jerr->line, r->card ? "not a JSON object" : jerr->text);
        return SS_ERR_CONFIG;
    }
    json_t *t = json_object_get(r->card, "threshold");
    if (json_is_number(t))
        r->card_threshold = json_number_value(t);
    return 0;
}

int vld_card_from_text(vld_run_t *r, const char *text, size_t len, const char *what) {
    json_error_t jerr;
    json_decref(r->card);
    r->card = json_loadb(text, len, 0, &jerr);
    return take_card(r, what, &jerr);
}

/* The model as the worker brings it into service, its file size and its card as it is on
 * disk (kept whole, to be rewritten with the result). */
static int open_model(vld_run_t *r) {
    const ss_config_t *cfg = r->cfg;
    struct stat st;
    json_error_t jerr;
    int rc;
    if ((rc = ss_model_open(cfg, NULL, &r->model, r->err, sizeof(r->err))) < 0)
        return rc;
    r->task = r->model->objective.task;
    r->n_classes = r->task == SS_TASK_MULTICLASS ? r->model->objective.n_outputs : 0;
    r->threshold =
        r->task == SS_TASK_BINARY ? ss_model_threshold(r->model, cfg->model_threshold) : NAN;
    if (stat(cfg->model_path, &st) != 0) {
        snprintf(r->err, sizeof(r->err), "model: cannot stat '%s' (key model.path): %s",
                 cfg->model_path, strerror(errno));
        return SS_ERR_FAIL;
    }
    r->model_bytes = (long long)st.st_size;
    r->card_threshold = NAN;
    if (!cfg->model_card || access(cfg->model_card, F_OK) != 0)
        return 0;
    r->card = json_load_file(cfg->model_card, 0, &jerr);
    return take_card(r, cfg->model_card, &jerr);
}

/* ---- gates ------------------------------------------------------------------------------ */

/* Whether `threshold` is one that checks gate g: a negative one does not (a maximum, ROC-AUC
 * and the binary rates cannot be negative); nor 0 for accuracy and macro-F1, nor -1e300 for
 * R^2 (their defaults, as their keys' docs say). */
static int gate_set(int g, double threshold) {
    switch (g) {
    case G_R2: return threshold > -1e300;
    case G_ACCURACY:
    case G_MACRO_F1: return threshold > 0;
    default: return threshold >= 0;
    }
}

/* Every gate with its key and threshold; what it measures comes later (judge). */
static void init_gates(vld_run_t *r) {
    const ss_config_t *c = r->cfg;
    const vld_gate_t gates[N_GATES] = {
        [G_AUC] = {.name = "roc_auc",
                   .key = "validate.min.roc.auc",
                   .is_max = 0,
                   .task = SS_TASK_BINARY,
                   .threshold = c->validate_min_roc_auc},
        [G_PRECISION] = {.name = "precision",
                         .key = "validate.min.precision",
                         .is_max = 0,
                         .task = SS_TASK_BINARY,
                         .threshold = c->validate_min_precision},
        [G_RECALL] = {.name = "recall",
                      .key = "validate.min.recall",
                      .is_max = 0,
                      .task = SS_TASK_BINARY,
                      .threshold = c->validate_min_recall},
        [G_F1] = {.name = "f1",
                  .key = "validate.min.f1",
                  .is_max = 0,
                  .task = SS_TASK_BINARY,
                  .threshold = c->validate_min_f1},
        [G_RMSE] = {.name = "rmse",
                    .key = "validate.max.rmse",
                    .is_max = 1,
                    .task = SS_TASK_REGRESSION,
                    .threshold = c->validate_max_rmse},
        [G_MAE] = {.name = "mae",
                   .key = "validate.max.mae",
                   .is_max = 1,
                   .task = SS_TASK_REGRESSION,
                   .threshold = c->validate_max_mae},
        [G_R2] = {.name = "r2",
                  .key = "validate.min.r2",
                  .is_max = 0,
                  .task = SS_TASK_REGRESSION,
                  .threshold = c->validate_min_r2},
        [G_LOG_LOSS] = {.name = "log_loss",
                        .key = "validate.max.log.loss",
                        .is_max = 1,
                        .task = SS_TASK_MULTICLASS,
                        .threshold = c->validate_max_log_loss},
        [G_ACCURACY] = {.name = "accuracy",
                        .key = "validate.min.accuracy",
                        .is_max = 0,
                        .task = SS_TASK_MULTICLASS,
                        .threshold = c->validate_min_accuracy},
        [G_MACRO_F1] = {.name = "macro_f1",
                        .key = "validate.min.macro.f1",
                        .is_max = 0,
                        .task = SS_TASK_MULTICLASS,
                        .threshold = c->validate_min_macro_f1},
        [G_MODEL_MB] = {.name = "model_mb",
                        .key = "validate.max.model.mb",
                        .is_max = 1,
                        .task = -1,
                        .threshold = c->validate_max_model_mb},
        [G_BATCH_P99] = {.name = "batch_p99_ms",
                         .key = "validate.max.batch.p99.ms",
                         .is_max = 1,
                         .task = -1,
                         .threshold = c->validate_max_batch_p99_ms},
    };
    memcpy(r->gates, gates, sizeof(gates));
    for (int g = 0; g < N_GATES; g++) {
        r->gates[g].set = gate_set(g, r->gates[g].threshold);
        r->gates[g].value = NAN;
        r->gates[g].passed = 1;
    }
    for (int g = 0; g < N_QUALITY; g++)
        r->seg_gates[g] = (vld_seg_gate_t){.value = NAN, .segment = -1, .passed = 1};
}

/* validate.segment.gates: comma-separated keys of quality gates, each one whose threshold
 * checks; they need validate.segment.field. 0, or SS_ERR_CONFIG with r->err naming the key. */
static int parse_segment_gates(vld_run_t *r) {
    const char *list = r->cfg->validate_segment_gates ? r->cfg->validate_segment_gates : "";
    const char *p = list;
    static const char key[] = "validate.segment.gates";
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return 0;
    if (!r->cfg->validate_segment_field || !*r->cfg->validate_segment_field) {
        snprintf(r->err, sizeof(r->err),
                 "%s names gates but validate.segment.field is empty: set the field whose "
                 "values are the segments",
                 key);
        return SS_ERR_CONFIG;
    }
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        int g = 0;
        while (g < N_QUALITY && (strlen(r->gates[g].key) != len || memcmp(r->gates[g].key, p, len)))
            g++;
        if (g == N_QUALITY) {
            size_t n = (size_t)snprintf(r->err, sizeof(r->err),
                                        "%s: '%.*s' is not a gate a segment can have (one of", key,
                                        (int)(len > 200 ? 200 : len), p);
            for (int i = 0; i < N_QUALITY && n < sizeof(r->err); i++)
                n += (size_t)snprintf(r->err + n, sizeof(r->err) - n, "%s%s", i ? ", " : " ",
                                      r->gates[i].key);
            if (n < sizeof(r->err))
                snprintf(r->err + n, sizeof(r->err) - n, ")");
            return SS_ERR_CONFIG;
        }
        if (!r->gates[g].set) {
            snprintf(r->err, sizeof(r->err),
                     "%s: %s is not checked (its threshold is %g); set %s to the threshold the "
                     "worst segment must meet",
                     key, r->gates[g].key, r->gates[g].threshold, r->gates[g].key);
            return SS_ERR_CONFIG;
        }
        r->seg_gates[g].named = 1;
        r->any_seg_gate = 1;
        if (!end)
            return 0;
        for (p = end + 1; isspace((unsigned char)*p);)
            p++;
    }
}

/* ---- metrics ---------------------------------------------------------------------------- */

/* Row k of the subset `idx` (NULL: every row). */
static inline size_t row_of(const size_t *idx, size_t k) {
    return idx ? idx[k] : k;
}

/* Binary: precision, recall, F1 at the threshold (0 when undefined, as scikit-learn's
 * zero_division=0) and ROC-AUC. */
static int binary_metrics(const vld_run_t *r, const size_t *idx, size_t n, vld_metrics_t *m) {
    double *split = malloc((n ? n : 1) * sizeof(double)); /* positives first, negatives last */
    size_t n_neg = 0;
    if (!split)
        return SS_ERR_NOMEM;
    for (size_t k = 0; k < n; k++) {
        size_t i = row_of(idx, k);
        int label = r->ds.y[i] != 0, pred = r->scores[i] >= r->threshold;
        m->tp += pred && label;
        m->fp += pred && !label;
        m->fn += !pred && label;
        if (label)
            split[m->n_pos++] = r->scores[i];
        else
            split[n - ++n_neg] = r->scores[i];
    }
    ss_stats_prf(m->tp, m->fp, m->fn, 0.0, &m->q[G_PRECISION], &m->q[G_RECALL], &m->q[G_F1]);
    m->positive_rate = n ? (double)m->n_pos / (double)n : 0.0;
    m->q[G_AUC] = ss_stats_roc_auc(split, m->n_pos, split + m->n_pos, n_neg);
    free(split);
    return 0;
}

/* Regression, of the score against the label: RMSE, MAE and R^2 = 1 - SS_res / SS_tot, which
 * is, as scikit-learn's r2_score, 1 for constant labels predicted exactly, 0 for constant labels
 * otherwise, and undefined for fewer than two rows. */
static void regression_metrics(const vld_run_t *r, const size_t *idx, size_t n, vld_metrics_t *m) {
    double se = 0, ae = 0, mean = 0, tot = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = row_of(idx, k);
        double d = r->scores[i] - r->ds.y[i];
        se += d * d;
        ae += fabs(d);
        mean += r->ds.y[i];
    }
    mean /= (double)n;
    for (size_t k = 0; k < n; k++) {
        double d = r->ds.y[row_of(idx, k)] - mean;
        tot += d * d;
    }
    m->q[G_RMSE] = sqrt(se / (double)n);
    m->q[G_MAE] = ae / (double)n;
    m->q[G_R2] = n < 2 ? NAN : tot > 0 ? 1.0 - se / tot : se == 0 ? 1.0 : 0.0;
}

/* Multi-class: log loss of the label's probability (clipped), accuracy and macro-F1 of the
 * predicted class. Macro-F1 averages the F1 of the classes that occur among the labels or the
 * predictions of the rows (scikit-learn's f1_score(average="macro"), zero_division=0). */
static int multiclass_metrics(const vld_run_t *r, const size_t *idx, size_t n, vld_metrics_t *m) {
    size_t k = r->n_classes, correct = 0, present = 0;
    size_t *c = calloc(3 * (k ? k : 1), sizeof(size_t)); /* per class: tp, fp, fn */
    double loss = 0, f1_sum = 0;
    if (!c)
        return SS_ERR_NOMEM;
    for (size_t j = 0; j < n; j++) {
        size_t i = row_of(idx, j), y = (size_t)r->ds.y[i];
        size_t pred = r->classes[i] >= 0 ? (size_t)r->classes[i] : k;
        double p = r->outputs[i * k + y];
        p = isnan(p) ? LOG_LOSS_EPS : fmin(fmax(p, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS);
        loss -= log(p);
        if (pred == y) {
            correct++;
            c[3 * y]++;
        } else {
            if (pred < k)
                c[3 * pred + 1]++;
            c[3 * y + 2]++;
        }
    }
    for (size_t j = 0; j < k; j++) {
        double prec, rec, f1;
        if (c[3 * j] + c[3 * j + 1] + c[3 * j + 2] == 0)
            continue;
        ss_stats_prf(c[3 * j], c[3 * j + 1], c[3 * j + 2], 0.0, &prec, &rec, &f1);
        f1_sum += f1;
        present++;
    }
    m->q[G_LOG_LOSS] = loss / (double)n;
    m->q[G_ACCURACY] = (double)correct / (double)n;
    m->q[G_MACRO_F1] = present ? f1_sum / (double)present : NAN;
    free(c);
    return 0;
}

/* The task's metrics of `n` rows (idx NULL: all of them) into *m; ranking and survival have
 * none. 0 or SS_ERR_NOMEM. */
static int quality(const vld_run_t *r, const size_t *idx, size_t n, vld_metrics_t *m) {
    *m = (vld_metrics_t){.n = n};
    for (int g = 0; g < N_QUALITY; g++)
        m->q[g] = NAN;
    m->positive_rate = m->batch_p50_ms = m->batch_p99_ms = m->rows_per_s = NAN;
    if (n == 0)
        return 0;
    switch (r->task) {
    case SS_TASK_BINARY: return binary_metrics(r, idx, n, m);
    case SS_TASK_REGRESSION: regression_metrics(r, idx, n, m); return 0;
    case SS_TASK_MULTICLASS: return multiclass_metrics(r, idx, n, m);
    default: return 0;
    }
}

/* Score in batches of batch.max.messages rows, one timed XGBoost call per batch, as the
 * worker does; a multi-class model's class probabilities and predicted classes too. */
static int score(vld_run_t *r, double *total_ms) {
    vld_dataset_t *ds = &r->ds;
    size_t nf = r->model->n_features, k = r->n_classes;
    ss_predictor_t *pred = NULL;
    int rc = SS_ERR_NOMEM;
    r->batch = r->cfg->batch_max_messages > 0 ? (size_t)r->cfg->batch_max_messages : 256;
    r->n_batches = (ds->n + r->batch - 1) / r->batch;
    r->scores = malloc(ds->n * sizeof(double));
    r->batch_ms = malloc(r->n_batches * sizeof(double));
    if (k) {
        r->outputs = malloc(ds->n * k * sizeof(double));
        r->classes = malloc(ds->n * sizeof(int));
    }
    *total_ms = 0;
    if (!r->scores || !r->batch_ms || (k && (!r->outputs || !r->classes))) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        goto cleanup;
    }
    rc = SS_ERR_FAIL;
    if (!(pred = ss_predictor_new(r->err, sizeof(r->err))))
        goto cleanup;
    for (size_t b = 0; b < r->n_batches; b++) {
        size_t off = b * r->batch, rows = ds->n - off < r->batch ? ds->n - off : r->batch;
        int64_t t0 = ss_mono_ns();
        if (ss_model_predict_outputs(r->model, pred, ds->x + off * nf, rows, r->scores + off,
                                     k ? r->outputs + off * k : NULL, k ? r->classes + off : NULL,
                                     r->err, sizeof(r->err)) < 0)
            goto cleanup;
        r->batch_ms[b] = (double)(ss_mono_ns() - t0) / 1e6;
        *total_ms += r->batch_ms[b];
    }
    rc = 0;
cleanup:
    ss_predictor_destroy(pred);
    return rc;
}

/* Whether value a of gate g is worse than b (an undefined value is worst). */
static int worse(const vld_gate_t *g, double a, double b) {
    if (isnan(a) || isnan(b))
        return isnan(a) && !isnan(b);
    return g->is_max ? a > b : a < b;
}

static int meets(const vld_gate_t *g, double v) {
    return !isnan(v) && (g->is_max ? v <= g->threshold : v >= g->threshold);
}

/* Each segment's metrics, then the worst gated segment of each gate of
 * validate.segment.gates. */
static int judge_segments(vld_run_t *r) {
    size_t n = r->ds.n, ns = r->n_segs;
    size_t *idx = malloc((n ? n : 1) * sizeof(size_t)), *off = calloc(ns + 1, sizeof(size_t));
    int rc = SS_ERR_NOMEM;
    if (!idx || !off)
        goto cleanup;
    for (size_t i = 0; i < n; i++) /* rows grouped by segment, in their order */
        off[r->ds.seg[i] + 1]++;
    for (size_t s = 0; s < ns; s++)
        off[s + 1] += off[s];
    for (size_t i = 0; i < n; i++)
        idx[off[r->ds.seg[i]]++] = i;
    for (size_t s = ns; s > 0; s--) /* back to each segment's start */
        off[s] = off[s - 1];
    off[0] = 0;
    for (size_t s = 0; s < ns; s++) {
        vld_segment_t *seg = &r->segs[s];
        if (quality(r, idx + off[s], off[s + 1] - off[s], &seg->m) < 0)
            goto cleanup;
        seg->gated = seg->m.n >= (size_t)r->cfg->validate_segment_min_records;
    }
    for (int g = 0; g < N_QUALITY; g++) {
        vld_seg_gate_t *sg = &r->seg_gates[g];
        const vld_gate_t *gate = &r->gates[g];
        sg->value = NAN;
        sg->segment = -1;
        sg->passed = 1;
        if (!sg->named || !gate->applies)
            continue;
        for (size_t s = 0; s < ns; s++) {
            if (r->segs[s].gated &&
                (sg->segment < 0 || worse(gate, r->segs[s].m.q[g], sg->value))) {
                sg->segment = (long)s;
                sg->value = r->segs[s].m.q[g];
            }
        }
        sg->passed = sg->segment >= 0 && meets(gate, sg->value);
        r->passed = r->passed && sg->passed;
    }
    rc = 0;
cleanup:
    if (rc < 0)
        snprintf(r->err, sizeof(r->err), "out of memory");
    free(idx);
    free(off);
    return rc;
}

/* The metrics, the batch latency and the gates, of the whole and of each segment. */
static int judge(vld_run_t *r, double total_ms) {
    vld_metrics_t *m = &r->m;
    size_t n = r->ds.n;
    if (quality(r, NULL, n, m) < 0) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        return SS_ERR_NOMEM;
    }
    /* Latency over full batches (the gate's unit); the last, partial batch counts only when
     * there is no full one. */
    size_t n_timed = n % r->batch && r->n_batches > 1 ? r->n_batches - 1 : r->n_batches;
    ss_stats_sort(r->batch_ms, n_timed);
    m->n_batches = n_timed;
    m->batch_p50_ms = ss_stats_quantile(r->batch_ms, n_timed, 0.50);
    m->batch_p99_ms = ss_stats_quantile(r->batch_ms, n_timed, 0.99);
    m->rows_per_s = total_ms > 0 ? (double)n / (total_ms / 1e3) : NAN;
    r->passed = r->n_missing == 0;
    for (int i = 0; i < N_GATES; i++) {
        vld_gate_t *g = &r->gates[i];
        g->applies = g->task < 0 || g->task == r->task;
        g->value = !g->applies       ? NAN
                   : i < N_QUALITY   ? m->q[i]
                   : i == G_MODEL_MB ? (double)r->model_bytes / 1e6
                                     : m->batch_p99_ms;
        g->passed = !(g->set && g->applies) || meets(g, g->value);
        r->passed = r->passed && g->passed;
    }
    return r->seg_index >= 0 ? judge_segments(r) : 0;
}

/* The log line of the verdict: the model, the rows, the task's metrics. */
static void log_verdict(const vld_run_t *r) {
    ss_field_t f[6 + N_QUALITY];
    size_t n = 0;
    f[n++] = SSF_STR("model", r->model->name);
    f[n++] = SSF_STR("version", r->model->version);
    f[n++] = SSF_STR("task", ss_task_name(r->task));
    f[n++] = SSF_INT("n", r->ds.n);
    for (int g = 0; g < N_QUALITY; g++)
        if (r->gates[g].applies)
            f[n++] = SSF_REAL(r->gates[g].name, r->m.q[g]);
    f[n++] = SSF_BOOL("passed", r->passed);
    f[n] = (ss_field_t){.type = SS_FIELD_END};
    ss_log(r->passed ? SS_LOG_INFO : SS_LOG_WARN, f, "validate-model: %s",
           r->passed ? "every gate passed" : "a gate failed");
}

int ss_validate_main(const ss_config_t *cfg, int argc, char **argv) {
    vld_run_t r = {.cfg = cfg, .update_card = 1, .seg_index = -1};
    double total_ms = 0;
    int rc;
    if (!cfg) {
        usage(stdout);
        return 0;
    }
    if ((rc = parse_args(&r, argc, argv)) < 0)
        return rc;
    init_gates(&r);
    if ((rc = parse_segment_gates(&r)) == 0 && (rc = open_model(&r)) == 0 &&
        (rc = vld_data_open(&r)) == 0 && (rc = vld_data_read(&r)) == 0 &&
        (rc = score(&r, &total_ms)) == 0 && (rc = judge(&r, total_ms)) == 0) {
        vld_print_report(&r);
        rc = vld_record_result(&r);
    }
    if (rc == 0) {
        log_verdict(&r);
        rc = r.passed ? 0 : SS_ERR_VERDICT;
    } else {
        ss_log(SS_LOG_ERROR, NULL, "validate-model: %s", r.err);
        fprintf(stderr, "streamscore validate-model: %s\n", r.err);
    }
    json_decref(r.card);
    free(r.scores);
    free(r.batch_ms);
    free(r.outputs);
    free(r.classes);
    vld_data_close(&r);
    ss_model_unref(r.model);
    return rc;
}
