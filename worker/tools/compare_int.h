/* compare_int.h - what the parts of `streamscore compare` share, and nothing else includes:
 * the spilled record, a decoded prediction, the state of one run (cmp_t) and the functions
 * each part offers the others. Internal names start with cmp_ (public ones with ss_).
 *
 *   compare.c         the command: options, the steps of a run, the reports
 *   compare_read.c    a finite read of whole Kafka topics (manual assignment, never commits)
 *   compare_decode.c  a prediction from Avro (every version of the prediction schema) or JSON
 *   compare_labels.c  outcome labels from a CSV file or a topic, looked up per record
 *   compare_input.c   both sides read into the spill buckets
 *   compare_spill.c   bucket files of records and files of values, in a temporary folder
 *   compare_join.c    the join, one bucket at a time, and the counts it gives
 *   compare_figures.c quantiles, Spearman, ROC-AUC (core/stats.h), exact or binned; the
 *                     per-output, per-class and regression figures
 *   compare_verdict.c the promote.* criteria and the verdict */
#ifndef SS_COMPARE_INT_H
#define SS_COMPARE_INT_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "report.h"

#define CMP_NO_TIME INT64_MIN
#define CMP_UNLABELED (-1)
#define CMP_MAX_TOPICS 64
#define CMP_HIST_BINS 65536 /* bins of the histograms beyond --exact-limit */
#define CMP_NO_DECISION 2   /* cmp_rec_t.decision of a record whose decision is null */

/* ---- records ------------------------------------------------------------------------- */

/* One prediction as spilled: the join key and what the figures need. In a bucket file each
 * record is followed by its first min(n_out, SS_CMP_MAX_OUTPUTS) outputs (doubles). */
typedef struct cmp_rec {
    int64_t offset, event_time, scored_at; /* times CMP_NO_TIME when absent */
    uint64_t seq;                          /* read order on its side: the latest wins */
    uint64_t fhash;
    double score;
    double value;   /* the label as a number (compare_labels.c), NaN when there is none */
    uint32_t topic; /* interned source topic */
    int32_t partition;
    int32_t cls;     /* predicted_class, -1 when null */
    uint32_t out_at; /* once loaded: the index of its first output in the bucket's outputs */
    uint16_t model;  /* index in the side's models, 0xffff beyond them */
    uint16_t n_out;  /* outputs of the record (65535 for more), 0 when null */
    uint8_t side;
    uint8_t decision; /* 0, 1 or CMP_NO_DECISION */
    int8_t label;     /* CMP_UNLABELED, 0 or 1 */
    uint8_t route;    /* the primary's: index in the result's routes (0 "live"); 0 on the shadow */
} cmp_rec_t;
_Static_assert(sizeof(cmp_rec_t) == 80, "cmp_rec_t is 80 bytes");

/* The outputs of a record that are spilled with it. */
static inline size_t cmp_rec_spilled(const cmp_rec_t *r) {
    return r->n_out < SS_CMP_MAX_OUTPUTS ? r->n_out : SS_CMP_MAX_OUTPUTS;
}

static inline uint64_t cmp_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The hash of a record's join key (source topic, partition, offset). */
static inline uint64_t cmp_rec_hash(const cmp_rec_t *r) {
    return cmp_mix64((uint64_t)r->offset ^
                     cmp_mix64(((uint64_t)r->topic << 32) | (uint32_t)r->partition));
}

static inline int cmp_same_key(const cmp_rec_t *a, const cmp_rec_t *b) {
    return a->offset == b->offset && a->partition == b->partition && a->topic == b->topic;
}

typedef struct cmp_str {
    const char *p;
    size_t n;
} cmp_str_t;

/* A decoded prediction; its strings and outputs point into the decoder's memory (until its
 * next call). route is "live" when the record has none (written before the field existed). */
typedef struct cmp_pred {
    cmp_str_t customer_id, model_name, model_version, source_topic, route;
    double score, threshold; /* threshold NaN when null or absent */
    int has_decision;        /* 0: decision null (the objective defines none) */
    int decision;            /* 0 or 1 when has_decision */
    int predicted_class;     /* multi-class: the class, else -1 (null or absent) */
    const double *outputs;   /* every output of a multi-output model, NULL when null */
    size_t n_outputs;
    int32_t partition;
    int64_t offset, event_time, scored_at;
    uint64_t fhash;
} cmp_pred_t;

/* ---- compare_read.c: a finite read of whole topics ------------------------------------- */

typedef struct cmp_kreader cmp_kreader_t;

/* Called per record read; a negative return stops the read (the error is the callback's). */
typedef int (*cmp_msg_cb)(void *opaque, int topic_index, const rd_kafka_message_t *m);

/* Check that the `n` (1 or 2) topics exist (keys[] names their configuration keys in errors)
 * and take each partition's range: [first offset at or after from_ms (INT64_MIN: the low
 * watermark), high watermark now). Returns 0 with *out, SS_ERR_CONFIG (kafka.* rejected) or
 * SS_ERR_FAIL with errstr. */
int cmp_kreader_new(const ss_config_t *cfg, const char *const *names, const char *const *keys,
                    int n, int64_t from_ms, cmp_kreader_t **out, char *errstr, size_t errlen);
/* Read every partition to the end of its range, calling cb per record. Fails (SS_ERR_FAIL)
 * when nothing arrived for compare.timeout.ms, on a fatal Kafka error or when cb fails. */
int cmp_kreader_run(cmp_kreader_t *kr, cmp_msg_cb cb, void *opaque, char *errstr, size_t errlen);
int cmp_kreader_partitions(const cmp_kreader_t *kr, int topic_index);
/* Records in the ranges: an upper bound of what a run reads. */
uint64_t cmp_kreader_expected(const cmp_kreader_t *kr);
void cmp_kreader_destroy(cmp_kreader_t *kr);

/* ---- compare_decode.c: predictions --------------------------------------------------- */

typedef struct cmp_decoder cmp_decoder_t;

/* A decoder of JSON predictions, and of Avro ones when `avro` is set: a value written with any
 * version of the prediction schema (the current one, the one with `route` before objectives
 * other than binary, the one before `route`) or with output.schema when it is another.
 * Returns 0 with *out, or SS_ERR_CONFIG with errstr (output.schema unusable). */
int cmp_decoder_new(const ss_config_t *cfg, int avro, cmp_decoder_t **out, char *errstr,
                    size_t errlen);
/* Decode one value (`json`: a JSON object, else Avro). 0, or SS_ERR_FAIL when malformed. */
int cmp_decode(cmp_decoder_t *d, int json, const void *buf, size_t len, cmp_pred_t *p);
void cmp_decoder_destroy(cmp_decoder_t *d);

/* ---- compare_spill.c: bucket files and value files ------------------------------------ */

typedef struct cmp_spill {
    const char *dir;
    int nb;
    size_t cap; /* bytes per bucket buffer */
    unsigned char *buf;
    size_t *fill;     /* bytes in each bucket's buffer */
    uint64_t *count;  /* records per bucket */
    uint64_t *n_outs; /* spilled outputs per bucket */
} cmp_spill_t;

/* Buckets for `expected` records in folder `dir`. 0 or SS_ERR_NOMEM. */
int cmp_spill_init(cmp_spill_t *s, const char *dir, uint64_t expected);
/* Add a record and its first cmp_rec_spilled(r) `outputs` (NULL when that is 0) to its bucket
 * (written out when the bucket's buffer is full). */
int cmp_spill_push(cmp_spill_t *s, const cmp_rec_t *r, const double *outputs, char *errstr,
                   size_t errlen);
/* Write out what the buffers still hold. */
int cmp_spill_flush_all(cmp_spill_t *s, char *errstr, size_t errlen);
/* Bucket b's records into *recs (grown to *cap records) and their outputs into *outs (grown
 * to *ocap doubles; each record's out_at set), its file removed. */
int cmp_spill_load(cmp_spill_t *s, int b, cmp_rec_t **recs, size_t *cap, double **outs,
                   size_t *ocap, char *errstr, size_t errlen);
/* Free the buffers and remove the bucket files left. */
void cmp_spill_destroy(cmp_spill_t *s);

/* A file of values (k doubles per entry) written during the join, read back afterwards. */
typedef struct cmp_col {
    FILE *f;
    uint64_t n;
    int k;
    double min[2], max[2];
} cmp_col_t;

int cmp_col_open(cmp_col_t *col, const char *dir, const char *name, int k);
void cmp_col_push(cmp_col_t *col, double a, double b);
/* All values (n * k doubles, the caller frees them), or NULL. */
double *cmp_col_load(cmp_col_t *col);
/* Streams the values in chunks to fn. */
int cmp_col_scan(cmp_col_t *col, void (*fn)(void *o, const double *v, size_t n), void *o);
void cmp_col_close(cmp_col_t *col);

/* ---- the run ---------------------------------------------------------------------------- */

typedef struct cmp_opts {
    int64_t from_ms, to_ms;
    const char *labels, *out_dir;
    int quiet, json_only;
    long exact_limit;
} cmp_opts_t;

typedef struct cmp_label {
    uint64_t cust; /* FNV-1a of the customer id */
    int64_t time;
    int64_t label; /* 0 or 1, CMP_UNLABELED for a number other than those */
    double value;  /* the label as a number (true 1, false 0) */
} cmp_label_t;

enum {
    CMP_PAIRS,
    CMP_ABSDIFF,
    CMP_LAT,
    CMP_POS = CMP_LAT + 2,
    CMP_NEG = CMP_POS + 2,
    CMP_NCOLS = CMP_NEG + 2
};

typedef struct cmp {
    const ss_config_t *cfg;
    cmp_opts_t o;
    ss_cmp_result_t r;
    cmp_decoder_t *dec;
    cmp_label_t *labels; /* sorted by customer, then time */
    size_t n_labels, cap_labels;
    char topics[CMP_MAX_TOPICS][256];
    int n_topics;
    cmp_spill_t spill;
    /* value files: the identical-feature pairs (primary, shadow score), |difference|, and per
     * side the latencies and the scores of labeled positives and negatives */
    cmp_col_t col[CMP_NCOLS];
    /* the same per route of the primary's predictions, over the route's matched pairs (labels
     * and latency too); opened for the routes seen when the join starts */
    cmp_col_t rcol[SS_CMP_MAX_ROUTES][CMP_NCOLS];
    double rdiff_sum[SS_CMP_MAX_ROUTES];
    /* per output of the identical-feature pairs: |difference| (opened when the join starts,
     * for the outputs both sides have) and its sum */
    cmp_col_t ocol[SS_CMP_MAX_OUTPUTS];
    double odiff_sum[SS_CMP_MAX_OUTPUTS];
    /* what the records read hold, to tell the kind of comparison before the join */
    uint64_t with_decision, with_class;
    int max_class;               /* the largest predicted class */
    int max_out[2];              /* the most outputs of a record on each side */
    double score_min, score_max; /* over every record read */
    /* regression labels per side: records with a numeric label, squared and absolute errors */
    double sse[2], sae[2];
    uint64_t seq[2];
    double diff_sum;
    uint64_t rng;
    char tmp[512];
    char err[1024]; /* the first fatal error raised inside a callback */
} cmp_t;

/* Load the labels of c->o.labels (a CSV file or topic:NAME). 0, SS_ERR_CONFIG or SS_ERR_FAIL
 * with errstr. */
int cmp_labels_load(cmp_t *c, char *errstr, size_t errlen);
/* One line of a CSV labels file at `path` (NUL-terminated, changed in place): the header
 * while *header (its columns into col[], then *header = 0), else a row added or counted as
 * malformed. 0, or SS_ERR_CONFIG (no such column) or SS_ERR_NOMEM with errstr. */
int cmp_labels_csv_line(cmp_t *c, char *line, int *header, int col[3], const char *path,
                        char *errstr, size_t errlen);
/* One JSON value of a labels topic (`len` bytes; NULL: none): a row added or counted as
 * malformed. 0, or SS_ERR_NOMEM with c->err. */
int cmp_labels_json(cmp_t *c, const void *buf, size_t len);
/* The customer's earliest label at or after the event: CMP_UNLABELED when none, or when that
 * label is a number other than 0 and 1; *value: the label as a number, NaN when none. */
int cmp_label_of(const cmp_t *c, const cmp_str_t *cid, int64_t event_time, double *value);

/* compare_input.c: the shadow file (when given) and the topics of kr into the spill. */
int cmp_read_inputs(cmp_t *c, cmp_kreader_t *kr, FILE *shadow_file, char *errstr, size_t errlen);

/* compare_join.c: the kind of comparison (from what the records read hold) and the value files
 * it needs, then join the spilled records, counting as it goes. */
int cmp_join(cmp_t *c, char *errstr, size_t errlen);

/* compare_figures.c: the figures from the counts and the value files. 0 or SS_ERR_FAIL. */
int cmp_figures(cmp_t *c);

/* compare_verdict.c: the promote.* criteria and the verdict. */
void cmp_verdict(cmp_t *c);

#endif
