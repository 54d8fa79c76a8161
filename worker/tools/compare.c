/* compare.c - `streamscore compare`: reads the primary's predictions and the shadow's results,
 * joins them on the source record (topic, partition, offset) with bounded memory and works
 * out how the candidate model differs, overall and per route of the primary's predictions
 * (`route`: "live", or "canary" for records a rollout's candidate scored in the primary; none
 * reads as "live"); report.c renders the figures (compare.json's structure is documented
 * there). This file is the command: its options and the steps of one run;
 * compare_int.h maps the other parts.
 *
 * A run: labels first (each record is labeled as it is read), then each topic read once up to
 * the high watermark taken at start (re-deliveries: the record read last for a key wins),
 * every record spilled to one of B bucket files, B = expected records / 262144 (1..4096), the
 * expectation (an upper bound) taken before reading from the partitions' offset ranges and
 * the shadow file's size / 150 bytes; then the join a bucket at a time, the figures, the
 * verdict and the reports. Resident memory: one bucket (80 bytes a record, plus 8 per output
 * of a multi-output model, at most SS_CMP_MAX_OUTPUTS) + bucket write buffers (16 MB) +
 * labels (32 bytes per label row) + the exact arrays (--exact-limit) + ~3 MB of histograms +
 * librdkafka's prefetch (queued.max.messages.kbytes, 16 MB unless set), whatever the topics'
 * size; only inputs beyond 4096 x 262144 records make buckets outgrow the target. */
#include "compare.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compare_int.h"
#include "error.h"
#include "log.h"
#include "timeparse.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "Usage: streamscore compare -c FILE [-X key=value ...] [options]\n\n"
        "Joins the primary's predictions (output.topic) with the shadow's results\n"
        "(shadow.topic, or shadow.file when shadow.output = file) on the source record\n"
        "(topic, partition, offset), read up to each partition's end at start, and reports\n"
        "how the candidate differs: a summary on stdout, DIR/compare.json, DIR/compare.html.\n"
        "The figures are given per route of the primary's predictions too (live, canary).\n\n"
        "Options:\n"
        "  --from TIME        first record, by the output records' Kafka timestamp (inclusive;\n"
        "                     scored_at for shadow.file); ISO-8601 UTC like\n"
        "                     2026-11-23T10:00:00Z, or epoch milliseconds\n"
        "  --to TIME          end of the range (exclusive); default: whole topics\n"
        "  --labels SPEC      CSV file (customer_id,label,time) or topic:NAME (JSON values);\n"
        "                     overrides compare.labels\n"
        "  --out DIR          report folder; overrides compare.output.dir\n"
        "  --exact-limit N    most values held in memory for exact percentiles, Spearman and\n"
        "                     ROC-AUC (default 1000000); beyond, 65536-bin histograms\n"
        "  --json-only        write compare.json only, no compare.html\n"
        "  --quiet            no summary on stdout\n"
        "  --help             this text\n\n"
        "Predictions of every objective compare: decisions (binary), predicted classes and\n"
        "every output (multi-class, multi-output), values (regression, ranking, survival).\n\n"
        "Promotion criteria: promote.min.matched.share, promote.max.flip.rate,\n"
        "promote.max.class.flip.rate, promote.max.score.diff.p99, promote.max.auc.drop,\n"
        "promote.max.latency.p99.ms (negative: not checked). Other keys: compare.timeout.ms,\n"
        "output.format, output.schema, kafka.*.\n"
        "Exit codes: 0 promote or no criterion set, 1 runtime failure, 2 bad usage,\n"
        "3 hold.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "streamscore compare: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return SS_ERR_CONFIG;
}

/* The value of an option that takes one: name=value or name value. */
static int option_value(const char *name, const char *val, cmp_opts_t *o) {
    if (!strcmp(name, "--from") || !strcmp(name, "--to")) {
        int64_t *t = name[2] == 'f' ? &o->from_ms : &o->to_ms;
        if (ss_parse_time(val, strlen(val), t) < 0)
            return usage_error("%s '%s': expected ISO-8601 UTC (2026-11-23T10:00:00Z) or epoch "
                               "milliseconds",
                               name, val);
    } else if (!strcmp(name, "--labels")) {
        o->labels = val;
    } else if (!strcmp(name, "--out")) {
        if (!*val)
            return usage_error("--out needs a folder");
        o->out_dir = val;
    } else {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (*end || errno || v < 0 || v > 100000000)
            return usage_error("%s '%s': expected 0..100000000", name, val);
        o->exact_limit = v;
    }
    return 0;
}

static int parse_args(const ss_config_t *cfg, int argc, char **argv, cmp_opts_t *o) {
    static const char *const valued[] = {"--from", "--to", "--labels", "--out", "--exact-limit"};
    *o = (cmp_opts_t){INT64_MIN, INT64_MAX, cfg->compare_labels, cfg->compare_output_dir, 0,
                      0,         1000000};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL, *eq = strchr(a, '=');
        char name[32];
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        int takes = 0, rc;
        snprintf(name, sizeof(name), "%.*s", (int)(nl < 31 ? nl : 31), a);
        for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
            takes |= !strcmp(name, valued[k]);
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o->quiet = 1;
            continue;
        }
        if (!strcmp(a, "--json-only")) {
            o->json_only = 1;
            continue;
        }
        if (!takes)
            return usage_error("unknown option '%s' (see --help)", a);
        val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!val)
            return usage_error("%s needs a value", name);
        if ((rc = option_value(name, val, o)) < 0)
            return rc;
    }
    if (o->from_ms != INT64_MIN && o->to_ms != INT64_MAX && o->to_ms <= o->from_ms)
        return usage_error("--to must be later than --from");
    return 0;
}

static int mkdirs(const char *dir) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
        return SS_ERR_FAIL;
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0777) < 0 && errno != EEXIST)
                return SS_ERR_FAIL;
            *s = '/';
        }
    return mkdir(p, 0777) < 0 && errno != EEXIST ? SS_ERR_FAIL : 0;
}

/* The result's inputs, the temporary folder, the output folder and the decoder. */
static int setup(cmp_t *c, char *errstr, size_t errlen) {
    const ss_config_t *cfg = c->cfg;
    int file = cfg->shadow_output == SS_SHADOW_FILE;
    const char *fmt = cfg->output_format == SS_FORMAT_JSON ? "json" : "avro";
    const char *tmpdir = getenv("TMPDIR");
    c->rng = 0x9e3779b97f4a7c15ull;
    c->r.from_ms = c->o.from_ms, c->r.to_ms = c->o.to_ms;
    c->r.exact = 1, c->r.exact_limit = c->o.exact_limit;
    c->r.side[0] = (ss_cmp_side_t){
        .name = "primary", .source = "kafka", .location = cfg->output_topic, .format = fmt};
    c->r.side[1] = (ss_cmp_side_t){.name = "shadow",
                                   .source = file ? "file" : "kafka",
                                   .location = file ? cfg->shadow_file : cfg->shadow_topic,
                                   .format = file ? "json" : fmt};
    snprintf(c->tmp, sizeof(c->tmp), "%s/streamscore-compare-XXXXXX",
             tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(c->tmp)) {
        snprintf(errstr, errlen, "cannot create a temporary folder '%s': %s", c->tmp,
                 strerror(errno));
        c->tmp[0] = '\0';
        return SS_ERR_FAIL;
    }
    if (mkdirs(c->o.out_dir) < 0) {
        snprintf(errstr, errlen, "cannot create the output folder '%s': %s", c->o.out_dir,
                 strerror(errno));
        return SS_ERR_FAIL;
    }
    return cmp_decoder_new(cfg, cfg->output_format == SS_FORMAT_AVRO, &c->dec, errstr, errlen);
}

/* The topics' ranges, the shadow file, the spill buckets and the value files. */
/* The names of the value files (compare_int.h's CMP_PAIRS ...). */
static const char *const col_names[CMP_NCOLS] = {"pairs", "absdiff", "lat0", "lat1",
                                                 "pos0",  "pos1",    "neg0", "neg1"};

/* The value files of each route read (after the inputs: the routes are known). */
static int open_route_cols(cmp_t *c, char *errstr, size_t errlen) {
    char name[32];
    for (int k = 0; k < c->r.n_routes; k++)
        for (int i = 0; i < CMP_NCOLS; i++) {
            snprintf(name, sizeof(name), "route%d-%s", k, col_names[i]);
            if (cmp_col_open(&c->rcol[k][i], c->tmp, name, i == CMP_PAIRS ? 2 : 1) < 0) {
                snprintf(errstr, errlen, "cannot set up spill files in '%s': %s", c->tmp,
                         strerror(errno));
                return SS_ERR_FAIL;
            }
        }
    return 0;
}

static int open_inputs(cmp_t *c, cmp_kreader_t **kr, FILE **shadow_file, char *errstr,
                       size_t errlen) {
    const ss_config_t *cfg = c->cfg;
    const char *names[2] = {cfg->output_topic, cfg->shadow_topic};
    const char *keys[2] = {"output.topic", "shadow.topic"};
    int file = cfg->shadow_output == SS_SHADOW_FILE, rc;
    struct stat st;
    if ((rc = cmp_kreader_new(cfg, names, keys, file ? 1 : 2, c->o.from_ms, kr, errstr, errlen)))
        return rc;
    c->r.side[0].partitions = cmp_kreader_partitions(*kr, 0);
    c->r.side[1].partitions = cmp_kreader_partitions(*kr, 1);
    uint64_t expected = cmp_kreader_expected(*kr);
    if (file) {
        if (!(*shadow_file = fopen(cfg->shadow_file, "r")) || fstat(fileno(*shadow_file), &st)) {
            snprintf(errstr, errlen, "shadow.file '%s': cannot open: %s", cfg->shadow_file,
                     strerror(errno));
            return SS_ERR_FAIL;
        }
        expected += (uint64_t)st.st_size / 150;
    }
    rc = cmp_spill_init(&c->spill, c->tmp, expected);
    for (int i = 0; rc == 0 && i < CMP_NCOLS; i++)
        rc = cmp_col_open(&c->col[i], c->tmp, col_names[i], i == CMP_PAIRS ? 2 : 1);
    if (rc < 0) {
        snprintf(errstr, errlen, "cannot set up spill files in '%s': %s", c->tmp, strerror(errno));
        return SS_ERR_FAIL;
    }
    c->r.buckets = c->spill.nb;
    return 0;
}

static int write_reports(cmp_t *c, char *errstr, size_t errlen) {
    char path[PATH_MAX];
    const char *dir = c->o.out_dir;
    int rc;
    snprintf(path, sizeof(path), "%s/compare.json", dir);
    if ((rc = ss_report_write_json(&c->r, path, errstr, errlen)) < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/compare.html", dir);
    if (!c->o.json_only && (rc = ss_report_write_html(&c->r, path, errstr, errlen)) < 0)
        return rc;
    if (!c->o.quiet) {
        ss_report_print_summary(&c->r, stdout);
        printf("  %-40s %s/compare.json%s%s%s\n", "reports", dir, c->o.json_only ? "" : ", ",
               c->o.json_only ? "" : dir, c->o.json_only ? "" : "/compare.html");
        fflush(stdout);
    }
    return 0;
}

static void log_sides(const cmp_t *c) {
    for (int s = 0; s < 2; s++) {
        const ss_cmp_side_t *sd = &c->r.side[s];
        ss_log(SS_LOG_INFO,
               SS_FIELDS(SSF_STR("side", sd->name), SSF_INT("read", sd->read),
                         SSF_INT("distinct", sd->records), SSF_INT("duplicates", sd->duplicates),
                         SSF_INT("malformed", sd->malformed),
                         SSF_INT("out_of_range", sd->out_of_range)),
               "compare: %s: %" PRIu64 " read, %" PRIu64 " distinct, %" PRIu64
               " duplicates, %" PRIu64 " malformed, %" PRIu64 " out of range",
               sd->name, sd->read, sd->records, sd->duplicates, sd->malformed, sd->out_of_range);
    }
}

/* The steps of a run; SS_ERR_VERDICT when the verdict is hold. */
static int run(cmp_t *c, char *errstr, size_t errlen) {
    cmp_kreader_t *kr = NULL;
    FILE *shadow_file = NULL;
    int rc;
    if ((rc = setup(c, errstr, errlen)) < 0)
        goto cleanup;
    if (c->o.labels && *c->o.labels) {
        c->r.labels = c->o.labels;
        if ((rc = cmp_labels_load(c, errstr, errlen)) < 0)
            goto cleanup;
    }
    if ((rc = open_inputs(c, &kr, &shadow_file, errstr, errlen)) < 0 ||
        (rc = cmp_read_inputs(c, kr, shadow_file, errstr, errlen)) < 0)
        goto cleanup;
    cmp_kreader_destroy(kr);
    kr = NULL;
    if ((rc = open_route_cols(c, errstr, errlen)) < 0 || (rc = cmp_join(c, errstr, errlen)) < 0)
        goto cleanup;
    log_sides(c);
    if ((rc = cmp_figures(c)) < 0) {
        snprintf(errstr, errlen, "temporary value files in '%s': write or read failed (disk full?)",
                 c->tmp);
        goto cleanup;
    }
    cmp_verdict(c);
    if ((rc = write_reports(c, errstr, errlen)) == 0 && c->r.verdict == SS_VERDICT_HOLD)
        rc = SS_ERR_VERDICT;
cleanup:
    cmp_kreader_destroy(kr);
    if (shadow_file)
        fclose(shadow_file);
    return rc;
}

/* Everything a run holds, its temporary folder removed. Accepts NULL. */
static void cmp_destroy(cmp_t *c) {
    if (!c)
        return;
    for (int i = 0; i < CMP_NCOLS; i++) {
        cmp_col_close(&c->col[i]);
        for (int k = 0; k < SS_CMP_MAX_ROUTES; k++)
            cmp_col_close(&c->rcol[k][i]);
    }
    for (int i = 0; i < SS_CMP_MAX_OUTPUTS; i++)
        cmp_col_close(&c->ocol[i]);
    cmp_spill_destroy(&c->spill);
    if (*c->tmp)
        rmdir(c->tmp);
    cmp_decoder_destroy(c->dec);
    free(c->labels);
    free(c);
}

int ss_compare_main(const ss_config_t *cfg, int argc, char **argv) {
    char err[1024] = "";
    int rc;
    if (!cfg) {
        usage(stdout);
        return 0;
    }
    cmp_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, sizeof(err), "out of memory");
        rc = SS_ERR_NOMEM;
    } else if ((rc = parse_args(cfg, argc, argv, &c->o)) == 0) {
        c->cfg = cfg;
        rc = run(c, err, sizeof(err));
    }
    if (rc < 0 && rc != SS_ERR_VERDICT && *err) {
        ss_log(SS_LOG_ERROR, NULL, "compare: %s", err);
        fprintf(stderr, "streamscore compare: %s\n", err);
    }
    cmp_destroy(c);
    return rc;
}
