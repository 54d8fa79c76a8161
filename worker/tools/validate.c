/* validate.c - `streamscore validate-model`: scores a labeled Avro data set with the configured
 * model exactly as the worker would (the model brought into service by ss_model_open, as at
 * start-up and reload; the same decoder; the same batched XGBoost call), measures quality and
 * batch latency (core/stats definitions), checks them against the validate.* gates and records
 * the verdict in the model card, so that a model is judged on the same path that will serve
 * it. validate_int.h maps the other parts. */
#include "validate.h"

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

static void usage(FILE *out) {
    fprintf(out,
            "Usage: streamscore validate-model -c FILE --data FILE.avro [--json FILE]\n"
            "                                  [--no-update-card] [-X key=value ...]\n\n"
            "Scores a labeled data set with model.path at model.threshold, the way the worker\n"
            "scores events, and checks the results against the gates. The data set is an Avro\n"
            "object container file of events: any writer schema that resolves against\n"
            "input.schema by field name, each record also carrying the label field\n"
            "validate.label.field (boolean, or int 0/1; null = unlabeled).\n\n"
            "Options:\n"
            "  --data FILE.avro    the labeled events (required)\n"
            "  --json FILE         also write the result as JSON to FILE\n"
            "  --no-update-card    do not record the result in the model card\n"
            "  --help              this text\n\n"
            "Gates (configuration keys; a negative value is not checked):\n"
            "  validate.min.roc.auc, validate.min.precision, validate.min.recall,\n"
            "  validate.min.f1, validate.max.model.mb, validate.max.batch.p99.ms\n"
            "  (one batch = batch.max.messages rows), and: every model feature (after\n"
            "  features.rename) is a field of the data file's schema.\n\n"
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
    r->threshold = ss_model_threshold(r->model, cfg->model_threshold);
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

/* Precision, recall, F1 (0 when undefined, as scikit-learn's zero_division=0) and ROC-AUC. */
static int compute_metrics(vld_metrics_t *m, const double *score, const unsigned char *label,
                           size_t n, double threshold) {
    double *split = malloc((n ? n : 1) * sizeof(double)); /* positives first, negatives last */
    size_t n_neg = 0;
    if (!split)
        return SS_ERR_NOMEM;
    m->n = n;
    m->n_pos = m->tp = m->fp = m->fn = 0;
    for (size_t i = 0; i < n; i++) {
        int pred = score[i] >= threshold;
        m->tp += pred && label[i];
        m->fp += pred && !label[i];
        m->fn += !pred && label[i];
        if (label[i])
            split[m->n_pos++] = score[i];
        else
            split[n - ++n_neg] = score[i];
    }
    ss_stats_prf(m->tp, m->fp, m->fn, 0.0, &m->precision, &m->recall, &m->f1);
    m->positive_rate = n ? (double)m->n_pos / (double)n : 0.0;
    m->roc_auc = ss_stats_roc_auc(split, m->n_pos, split + m->n_pos, n_neg);
    free(split);
    return 0;
}

/* Score in batches of batch.max.messages rows, one timed XGBoost call per batch, as the
 * worker does. */
static int score(vld_run_t *r, double *total_ms) {
    vld_dataset_t *ds = &r->ds;
    size_t nf = r->model->n_features;
    ss_predictor_t *pred = NULL;
    int rc = SS_ERR_NOMEM;
    r->batch = r->cfg->batch_max_messages > 0 ? (size_t)r->cfg->batch_max_messages : 256;
    r->n_batches = (ds->n + r->batch - 1) / r->batch;
    r->scores = malloc(ds->n * sizeof(double));
    r->batch_ms = malloc(r->n_batches * sizeof(double));
    *total_ms = 0;
    if (!r->scores || !r->batch_ms) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        goto cleanup;
    }
    rc = SS_ERR_FAIL;
    if (!(pred = ss_predictor_new(r->err, sizeof(r->err))))
        goto cleanup;
    for (size_t b = 0; b < r->n_batches; b++) {
        size_t off = b * r->batch, rows = ds->n - off < r->batch ? ds->n - off : r->batch;
        int64_t t0 = ss_mono_ns();
        if (ss_model_predict(r->model, pred, ds->x + off * nf, rows, r->scores + off, r->err,
                             sizeof(r->err)) < 0)
            goto cleanup;
        r->batch_ms[b] = (double)(ss_mono_ns() - t0) / 1e6;
        *total_ms += r->batch_ms[b];
    }
    rc = 0;
cleanup:
    ss_predictor_destroy(pred);
    return rc;
}

/* The metrics, the batch latency and the gates. */
static int judge(vld_run_t *r, double total_ms) {
    const ss_config_t *cfg = r->cfg;
    vld_metrics_t *m = &r->m;
    size_t n = r->ds.n;
    if (compute_metrics(m, r->scores, r->ds.y, n, r->threshold) < 0) {
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
    const vld_gate_t gates[N_GATES] = {
        [G_AUC] = {"roc_auc", "validate.min.roc.auc", 0, cfg->validate_min_roc_auc, m->roc_auc, 0},
        [G_PRECISION] = {"precision", "validate.min.precision", 0, cfg->validate_min_precision,
                         m->precision, 0},
        [G_RECALL] = {"recall", "validate.min.recall", 0, cfg->validate_min_recall, m->recall, 0},
        [G_F1] = {"f1", "validate.min.f1", 0, cfg->validate_min_f1, m->f1, 0},
        [G_MODEL_MB] = {"model_mb", "validate.max.model.mb", 1, cfg->validate_max_model_mb,
                        (double)r->model_bytes / 1e6, 0},
        [G_BATCH_P99] = {"batch_p99_ms", "validate.max.batch.p99.ms", 1,
                         cfg->validate_max_batch_p99_ms, m->batch_p99_ms, 0},
    };
    memcpy(r->gates, gates, sizeof(gates));
    r->passed = r->n_missing == 0;
    for (int i = 0; i < N_GATES; i++) {
        vld_gate_t *g = &r->gates[i];
        g->passed =
            g->threshold < 0 ||
            (!isnan(g->value) && (g->is_max ? g->value <= g->threshold : g->value >= g->threshold));
        r->passed = r->passed && g->passed;
    }
    return 0;
}

int ss_validate_main(const ss_config_t *cfg, int argc, char **argv) {
    vld_run_t r = {.cfg = cfg, .update_card = 1};
    double total_ms = 0;
    int rc;
    if (!cfg) {
        usage(stdout);
        return 0;
    }
    if ((rc = parse_args(&r, argc, argv)) < 0)
        return rc;
    if ((rc = open_model(&r)) == 0 && (rc = vld_data_open(&r)) == 0 &&
        (rc = vld_data_read(&r)) == 0 && (rc = score(&r, &total_ms)) == 0 &&
        (rc = judge(&r, total_ms)) == 0) {
        vld_print_report(&r);
        rc = vld_record_result(&r);
    }
    if (rc == 0) {
        ss_log(r.passed ? SS_LOG_INFO : SS_LOG_WARN,
               SS_FIELDS(SSF_STR("model", r.model->name), SSF_STR("version", r.model->version),
                         SSF_INT("n", r.ds.n), SSF_REAL("roc_auc", r.m.roc_auc),
                         SSF_REAL("f1", r.m.f1), SSF_BOOL("passed", r.passed)),
               "validate-model: %s", r.passed ? "every gate passed" : "a gate failed");
        rc = r.passed ? 0 : SS_ERR_VERDICT;
    } else {
        ss_log(SS_LOG_ERROR, NULL, "validate-model: %s", r.err);
        fprintf(stderr, "streamscore validate-model: %s\n", r.err);
    }
    json_decref(r.card);
    free(r.scores);
    free(r.batch_ms);
    vld_data_close(&r);
    ss_model_unref(r.model);
    return rc;
}
