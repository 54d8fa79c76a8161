/* test_jobs.c - the offline jobs' parts (worker/jobs): the points of a replay's range, the
 * progress modes, score-file's JSON-lines reader, its outputs under a temporary name, and the
 * scorer's store carrying a customer's features from one batch to the next. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "error.h"
#include "features.h"
#include "file_in.h"
#include "file_out.h"
#include "model.h"
#include "progress.h"
#include "scorer.h"
#include "when.h"

#define MODEL "models/churn-1.0.0.json"

static char err[1024];

static void when_reads_every_form_and_names_the_option_on_errors(void) {
    ss_when_t w;
    int64_t now = 1764583200000LL;
    CHECK(ss_when_parse("--from", "beginning", now, &w, err, sizeof(err)) == 0 &&
          w.kind == SS_WHEN_BEGINNING);
    CHECK(ss_when_parse("--to", "now", now, &w, err, sizeof(err)) == 0 && w.kind == SS_WHEN_NOW);
    CHECK(ss_when_parse("--from", "2026-12-01T10:00:00Z", now, &w, err, sizeof(err)) == 0 &&
          w.kind == SS_WHEN_TIME && w.ms == 1796119200000LL);
    CHECK(ss_when_parse("--from", "2026-12-01T11:00:00.250+01:00", now, &w, err, sizeof(err)) ==
              0 &&
          w.ms == 1796119200250LL);
    CHECK(ss_when_parse("--from", "1764583200000", now, &w, err, sizeof(err)) == 0 &&
          w.kind == SS_WHEN_TIME && w.ms == 1764583200000LL);
    CHECK(ss_when_parse("--from", "-2h", now, &w, err, sizeof(err)) == 0 &&
          w.ms == now - 7200000LL);
    CHECK(ss_when_parse("--from", "-7d", now, &w, err, sizeof(err)) == 0 &&
          w.ms == now - 7LL * 86400000LL);
    CHECK(ss_when_parse("--from", "-30s", now, &w, err, sizeof(err)) == 0 && w.ms == now - 30000);
    CHECK(ss_when_parse("--to", "0:100,1:250", now, &w, err, sizeof(err)) == 0 &&
          w.kind == SS_WHEN_OFFSETS);
    CHECK(ss_when_offset(w.text, 0) == 100 && ss_when_offset(w.text, 1) == 250 &&
          ss_when_offset(w.text, 2) == -1);
    const char *bad[] = {"yesterday", "-2x", "-h", "0:", "1:2,", ":3", "2026-13-01", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CHECK(ss_when_parse("--features-from", bad[i], now, &w, err, sizeof(err)) == SS_ERR_CONFIG);
        CHECK_STR_CONTAINS(err, "--features-from");
    }
}

static void progress_modes_and_file_formats_by_name(void) {
    CHECK(ss_progress_parse("auto") == SS_PROGRESS_AUTO);
    CHECK(ss_progress_parse("bar") == SS_PROGRESS_BAR);
    CHECK(ss_progress_parse("lines") == SS_PROGRESS_LINES);
    CHECK(ss_progress_parse("none") == SS_PROGRESS_NONE);
    CHECK(ss_progress_parse("fast") == -1);
    CHECK(ss_file_format_of("a/b.avro") == SS_FILE_AVRO);
    CHECK(ss_file_format_of("b.jsonl") == SS_FILE_JSON && ss_file_format_of("b.ndjson") == 1 &&
          ss_file_format_of("b.json") == SS_FILE_JSON);
    CHECK(ss_file_format_of("b.csv") == -1 && ss_file_format_of("noext") == -1);
}

static ss_config_t *config(void) {
    ss_config_t *c = ss_config_new();
    const char *text = "model.path = " MODEL "\nkafka.bootstrap.servers = x:1\n";
    if (ss_config_load_string(c, text, strlen(text), "t", err, sizeof(err)) < 0 ||
        ss_config_finalize(c, err, sizeof(err)) < 0)
        fprintf(stderr, "config: %s\n", err);
    return c;
}

static int feature(const ss_model_t *m, const char *name) {
    for (size_t f = 0; f < m->n_features; f++)
        if (strcmp(m->feature_names[f], name) == 0)
            return (int)f;
    return -1;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

#define EV(extra)                                                                                  \
    "{\"event_id\": \"e\", \"customer_id\": \"c1\", \"event_time\": 5, \"event_type\": "           \
    "\"LOGIN\"" extra "}\n"

static void json_lines_read_as_input_schema_values_with_a_reason_for_each_bad_line(void) {
    ss_config_t *c = config();
    ss_model_t *m = NULL;
    CHECK(ss_model_open(c, NULL, &m, err, sizeof(err)) == 0);
    if (!m) {
        ss_config_destroy(c);
        return;
    }
    char path[] = "/tmp/ss-test-jobs-XXXXXX.jsonl";
    int fd = mkstemps(path, 6);
    close(fd);
    write_file(
        path,
        EV(", \"tenure_months\": 12, \"contract_type\": \"TWO_YEAR\", "
           "\"has_autopay\": true, \"data_usage_gb\": 1.5") "not json\n"
                                                            "[1, 2]\n" EV(
                                                                ", \"tenure_months\": "
                                                                "\"twelve\"") "\n"
                                                                              "{\"event_id\":"
                                                                              " \"e\", "
                                                                              "\"customer_"
                                                                              "id\": null, "
                                                                              "\"event_"
                                                                              "time\": 5, "
                                                                              "\"event_"
                                                                              "type\": "
                                                                              "\"LOGIN\"}"
                                                                              "\n" EV(
                                                                                  ", "
                                                                                  "\"contract"
                                                                                  "_type\": "
                                                                                  "\"WEEKLY"
                                                                                  "\"") "{\"e"
                                                                                        "vent"
                                                                                        "_id"
                                                                                        "\": "
                                                                                        "\"e"
                                                                                        "\", "
                                                                                        "\"cu"
                                                                                        "stom"
                                                                                        "er_"
                                                                                        "id\""
                                                                                        ": "
                                                                                        "\"c2"
                                                                                        "\", "
                                                                                        "\"ev"
                                                                                        "ent_"
                                                                                        "type"
                                                                                        "\": "
                                                                                        "\"LO"
                                                                                        "GIN"
                                                                                        "\"}"
                                                                                        "\n" EV(
                                                                                            ""));
    int why;
    ss_file_in_t *in = ss_file_in_open(c, m, path, SS_FILE_JSON, &why, err, sizeof(err));
    CHECK(in != NULL);
    const char *want[] = {NULL,       "bad_json", "bad_json", "bad_type", "no_customer_id",
                          "bad_type", "bad_type", NULL};
    float *x = malloc(m->n_features * sizeof(float));
    ss_event_t ev;
    int rc, n = 0;
    const char *reason;
    while (in && ss_file_in_next(in, &ev, x, &rc, &reason, err, sizeof(err)) == 1) {
        if (n < 8) {
            CHECK((reason == NULL) == (want[n] == NULL));
            if (reason && want[n])
                CHECK(strcmp(reason, want[n]) == 0);
        }
        if (n == 0) {
            CHECK(rc == SS_DECODE_OK && ev.customer_id_len == 2 && ev.event_time == 5);
            CHECK(x[feature(m, "tenure_months")] == 12.0f);
            CHECK(x[feature(m, "contract_type")] == 2.0f); /* the symbol's index */
            CHECK(x[feature(m, "has_autopay")] == 1.0f);
            CHECK(x[feature(m, "data_usage_gb")] == 1.5f);
            CHECK(isnan(x[feature(m, "monthly_charges")]));
        }
        if (n == 7)
            CHECK(rc == SS_DECODE_OK && isnan(x[feature(m, "tenure_months")]));
        n++;
    }
    CHECK(n == 8); /* the blank line is no record */
    CHECK(in && ss_file_in_fraction(in) == 1.0);
    ss_file_in_close(in);
    /* a file that is not an Avro container */
    CHECK(!ss_file_in_open(c, m, path, SS_FILE_AVRO, &why, err, sizeof(err)) &&
          why == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "not an Avro object container file");
    CHECK(!ss_file_in_open(c, m, "/nonexistent/x.avro", SS_FILE_AVRO, &why, err, sizeof(err)));
    CHECK_STR_CONTAINS(err, "/nonexistent/x.avro");
    free(x);
    unlink(path);
    ss_model_unref(m);
    ss_config_destroy(c);
}

/* Files in `dir` whose name starts with `prefix`. */
static int count_files(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

static void outputs_appear_under_their_name_only_when_finished(void) {
    ss_config_t *c = config();
    char dir[] = "/tmp/ss-test-out-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], text[64] = "";
    snprintf(path, sizeof(path), "%s/out.jsonl", dir);
    ss_file_out_t *o = ss_file_out_open(c, path, SS_OUT_JSON, NULL, err, sizeof(err));
    CHECK(o && ss_file_out_write(o, "{\"a\":1}", 7, NULL, 0, err, sizeof(err)) == 0);
    CHECK(access(path, F_OK) != 0 && count_files(dir, ".out.jsonl.partial-") == 1);
    CHECK(ss_file_out_finish(o, err, sizeof(err)) == 0);
    FILE *f = fopen(path, "r");
    CHECK(f && fgets(text, sizeof(text), f) && strcmp(text, "{\"a\":1}\n") == 0);
    if (f)
        fclose(f);
    CHECK(count_files(dir, ".out.jsonl.partial-") == 0);
    /* given up: the temporary file goes, the file under the name stays as it was */
    o = ss_file_out_open(c, path, SS_OUT_AVRO, "deflate", err, sizeof(err));
    CHECK(o && count_files(dir, ".out.jsonl.partial-") == 1);
    ss_file_out_abort(o);
    CHECK(count_files(dir, ".out.jsonl.partial-") == 0);
    f = fopen(path, "r");
    CHECK(f && fgets(text, sizeof(text), f) && strcmp(text, "{\"a\":1}\n") == 0);
    if (f)
        fclose(f);
    snprintf(path, sizeof(path), "%s/missing/out.jsonl", dir);
    CHECK(!ss_file_out_open(c, path, SS_OUT_JSON, NULL, err, sizeof(err)));
    CHECK_STR_CONTAINS(err, "missing/out.jsonl");
    snprintf(path, sizeof(path), "%s/out.jsonl", dir);
    unlink(path);
    rmdir(dir);
    ss_config_destroy(c);
}

/* Record i of the batch: customer `id` with feature f = v. */
static void add(ss_batch_t *b, size_t i, const char *id, int f, float v) {
    float *row = ss_batch_event_row(b, i);
    for (size_t k = 0; k < b->nf; k++)
        row[k] = NAN;
    row[f] = v;
    ss_event_t ev = {.customer_id = id,
                     .customer_id_len = strlen(id),
                     .event_id = "e",
                     .event_id_len = 1,
                     .event_time = 1,
                     .schema_id = -1};
    ss_batch_add(b, i, &ev, -1);
    b->u_part[b->recs[i].slot] = 0;
}

static void the_scorer_carries_a_customers_features_to_its_next_batch(void) {
    ss_config_t *c = config();
    ss_model_t *m = NULL;
    CHECK(ss_model_open(c, NULL, &m, err, sizeof(err)) == 0);
    int why;
    ss_scorer_t *s = m ? ss_scorer_new(c, m, NAN, 8, 0, &why, err, sizeof(err)) : NULL;
    CHECK(s != NULL);
    if (!s) {
        ss_model_unref(m);
        ss_config_destroy(c);
        return;
    }
    int tenure = feature(m, "tenure_months"), charges = feature(m, "monthly_charges");
    ss_batch_t *b = ss_scorer_batch(s);
    b->n_msgs = 2;
    ss_batch_reset(b);
    add(b, 0, "a", tenure, 5);
    add(b, 1, "b", tenure, 7);
    CHECK(ss_scorer_run(s, err, sizeof(err)) == 0);
    b->n_msgs = 1;
    ss_batch_reset(b);
    add(b, 0, "a", charges, 10);
    CHECK(ss_scorer_run(s, err, sizeof(err)) == 0);
    ss_prediction_t p;
    memset(&p, 0, sizeof(p));
    ss_scorer_fill(s, 0, &p);
    float *want = malloc(m->n_features * sizeof(float));
    for (size_t f = 0; f < m->n_features; f++)
        want[f] = NAN;
    want[tenure] = 5, want[charges] = 10;
    char hex[17];
    ss_features_hash_hex(ss_features_hash(want, m->n_features), hex);
    CHECK(strcmp(p.feature_hash, hex) == 0);
    double score;
    ss_predictor_t *pred = ss_predictor_new(err, sizeof(err));
    CHECK(ss_model_predict(m, pred, want, 1, &score, err, sizeof(err)) == 0 && score == p.score);
    CHECK(p.decision == (score >= ss_model_threshold(m, NAN)));
    CHECK(ss_scorer_customers(s) == 2 && ss_scorer_evicted(s) == 0);
    ss_predictor_destroy(pred);
    free(want);
    ss_scorer_destroy(s);
    ss_model_unref(m);
    ss_config_destroy(c);
}

static const check_test_t tests[] = {
    {"when_reads_every_form_and_names_the_option_on_errors",
     when_reads_every_form_and_names_the_option_on_errors},
    {"progress_modes_and_file_formats_by_name", progress_modes_and_file_formats_by_name},
    {"json_lines_read_as_input_schema_values_with_a_reason_for_each_bad_line",
     json_lines_read_as_input_schema_values_with_a_reason_for_each_bad_line},
    {"outputs_appear_under_their_name_only_when_finished",
     outputs_appear_under_their_name_only_when_finished},
    {"the_scorer_carries_a_customers_features_to_its_next_batch",
     the_scorer_carries_a_customers_features_to_its_next_batch},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
