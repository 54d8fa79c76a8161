/* report.h - the figures `streamscore compare` computes and their three renderings: a
 * terminal summary, compare.json (structure documented in report.c) and a self-contained
 * compare.html with inline SVG charts. */
#ifndef SS_REPORT_H
#define SS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#define SS_CMP_DIST_BINS 20    /* score distribution bins over [0, 1] */
#define SS_CMP_DIFF_BINS 40    /* score difference bins over [-max|d|, +max|d|] */
#define SS_CMP_SAMPLE_MAX 2000 /* scatter sample of identical-feature pairs */
#define SS_CMP_MAX_MODELS 16   /* distinct (name, version) listed per side */
#define SS_CMP_MAX_CRITERIA 6
#define SS_CMP_MAX_OUTPUTS 64 /* outputs of a multi-output model compared one by one */
#define SS_CMP_MAX_CLASSES                                                                         \
    32 /* rows and columns of the class matrix (the last: every class beyond) */
#define SS_CMP_MAX_ROUTES 8 /* routes reported; more distinct values share the last */
#define SS_CMP_ROUTE_NAME 32

enum { SS_CMP_PRIMARY = 0, SS_CMP_SHADOW = 1 };
enum { SS_VERDICT_NONE = 0, SS_VERDICT_PROMOTE = 1, SS_VERDICT_HOLD = 2 };
/* What the records compared hold: decisions (binary, or any model given a threshold),
 * predicted classes (multi-class), or neither (regression, ranking, survival: values). */
enum { SS_CMP_KIND_BINARY = 0, SS_CMP_KIND_MULTICLASS = 1, SS_CMP_KIND_REGRESSION = 2 };

typedef struct ss_cmp_model {
    char name[128];
    char version[64];
    double threshold; /* the last one recorded */
    uint64_t records;
} ss_cmp_model_t;

/* One side: the primary's predictions or the shadow's results. Figures are NaN when
 * undefined (no data); the JSON writes them as null. */
typedef struct ss_cmp_side {
    const char *name;     /* "primary" | "shadow" */
    const char *source;   /* "kafka" | "file" */
    const char *location; /* topic name or file path */
    const char *format;   /* "avro" | "json" */
    int partitions;       /* of the topic; 0 for a file */
    uint64_t read;        /* records decoded within the time range */
    uint64_t malformed;   /* undecodable values or lines, skipped */
    uint64_t out_of_range;
    uint64_t duplicates; /* records with a (topic, partition, offset) seen before */
    uint64_t records;    /* distinct keys = read - duplicates */
    ss_cmp_model_t models[SS_CMP_MAX_MODELS];
    int n_models;
    uint64_t other_models;           /* records of models beyond SS_CMP_MAX_MODELS */
    int n_outputs;                   /* the most outputs of a record (0: single-output) */
    uint64_t dist[SS_CMP_DIST_BINS]; /* over the result's [dist_lo, dist_hi] */
    uint64_t dist_below, dist_above; /* scores beyond it, counted in the edge bins too */
    uint64_t latency_n;
    double latency_p50, latency_p99; /* ms, scored_at - event_time */
    /* labels (when compare.labels is set) */
    uint64_t labeled, positives, tp, fp, fn, tn;
    double auc, precision, recall, f1;
    /* regression: the records with a numeric label, and the model's errors on them */
    uint64_t valued;
    double rmse, mae;
} ss_cmp_side_t;

typedef struct ss_cmp_criterion {
    const char *key;
    double limit, value; /* value NaN when it could not be computed */
    int passed;
    char reason[384];
} ss_cmp_criterion_t;

/* Latency and labels of one side over the matched pairs of one route. */
typedef struct ss_cmp_route_side {
    uint64_t latency_n;
    double latency_p50, latency_p99;
    uint64_t labeled, positives, tp, fp, fn, tn;
    double auc, precision, recall, f1;
} ss_cmp_route_side_t;

/* The pairwise figures restricted to the primary predictions of one route (the `route` field
 * of the primary's record: "live", "canary"; absent reads as "live"). Defined as the overall
 * ones; latency and labels are over the route's matched pairs, both sides on the same
 * source records. */
typedef struct ss_cmp_route {
    char name[SS_CMP_ROUTE_NAME];
    uint64_t primary; /* distinct primary records of the route */
    uint64_t matched, primary_only, identical;
    double matched_share, identical_share;
    double diff_mean, abs_p50, abs_p95, abs_p99, abs_max, spearman;
    uint64_t decided; /* identical pairs with a decision on both sides */
    uint64_t flips_no_yes, flips_yes_no;
    double flip_rate;
    uint64_t class_pairs, class_flips; /* identical pairs with a class on both sides */
    double class_flip_rate;
    ss_cmp_route_side_t side[2];
} ss_cmp_route_t;

/* One output of a multi-output model over the identical-feature pairs that both have it. */
typedef struct ss_cmp_output {
    uint64_t n;
    double abs_mean, abs_p99, abs_max; /* of |candidate output - primary output| */
} ss_cmp_output_t;

typedef struct ss_cmp_result {
    int kind; /* SS_CMP_KIND_*: binary too when nothing was read */
    ss_cmp_side_t side[2];
    int64_t from_ms, to_ms; /* INT64_MIN / INT64_MAX when open */
    const char *labels;     /* compare.labels or NULL */
    uint64_t labels_rows, labels_malformed;
    uint64_t matched, primary_only, shadow_only, identical;
    double matched_share; /* matched / distinct primary records */
    double identical_share;
    /* identical-feature pairs only; d = shadow score - primary score */
    double diff_mean, abs_p50, abs_p95, abs_p99, abs_max, spearman;
    uint64_t decided; /* identical pairs with a decision on both sides: the flip rate's base */
    uint64_t flips_no_yes, flips_yes_no;
    double flip_rate; /* NaN without decisions (n/a, never 0) */
    double diff_lo, diff_hi;
    uint64_t diff_hist[SS_CMP_DIFF_BINS];
    double abs_hist_hi; /* |d| in SS_CMP_DIFF_BINS bins over [0, abs_hist_hi] */
    uint64_t abs_hist[SS_CMP_DIFF_BINS];
    double dist_lo, dist_hi; /* the distributions' range: [0, 1], for regression the scores' */
    /* multi-output: identical pairs with outputs on both sides, those whose numbers of
     * outputs differ, and each output both sides have (the first SS_CMP_MAX_OUTPUTS) */
    uint64_t output_pairs, output_mismatch;
    int n_outputs;
    ss_cmp_output_t outputs[SS_CMP_MAX_OUTPUTS];
    /* multi-class: identical pairs with a predicted class on both sides, those whose class
     * changed, and the primary class x candidate class matrix (n_classes rows and columns;
     * with classes_beyond the last holds every class from SS_CMP_MAX_CLASSES - 1 on) */
    uint64_t class_pairs, class_flips;
    double class_flip_rate;
    int n_classes, classes_beyond;
    uint64_t class_matrix[SS_CMP_MAX_CLASSES][SS_CMP_MAX_CLASSES];
    float sample[SS_CMP_SAMPLE_MAX][2]; /* (primary, shadow) */
    int n_sample;
    int exact;           /* 1: quantiles, Spearman and AUC exact; 0: from histograms */
    long exact_limit;    /* values held in memory for the exact figures */
    int buckets;         /* spill buckets used by the join */
    uint64_t max_bucket; /* records in the largest bucket */
    /* per route of the primary's predictions: index 0 "live", 1 "canary", then others in the
     * order read; a route is reported when it has primary records */
    ss_cmp_route_t routes[SS_CMP_MAX_ROUTES];
    int n_routes;
    ss_cmp_criterion_t criteria[SS_CMP_MAX_CRITERIA];
    int n_criteria;
    int verdict;
} ss_cmp_result_t;

/* Write compare.json / compare.html. Return 0 or SS_ERR_FAIL with errstr naming the path. */
int ss_report_write_json(const ss_cmp_result_t *r, const char *path, char *errstr, size_t errlen);
int ss_report_write_html(const ss_cmp_result_t *r, const char *path, char *errstr, size_t errlen);
void ss_report_print_summary(const ss_cmp_result_t *r, FILE *out);

#endif
