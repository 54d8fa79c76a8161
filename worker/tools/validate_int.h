/* validate_int.h - what the parts of `streamscore validate-model` share, and nothing else
 * includes: the state of one run (what it read, measured and decided) and each part's
 * functions. Internal names start with vld_.
 *
 *   validate.c       the command: options, the model, scoring, metrics and gates
 *   validate_data.c  the labeled data set: an Avro container file decoded as the worker would
 *   validate_card.c  the result: the table on stdout, --json FILE and the model card */
#ifndef SS_VALIDATE_INT_H
#define SS_VALIDATE_INT_H

#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "model.h"

/* The gates, in the table's order: the quality gates of each task (a metric of the same
 * index measures each), then the gates of every task. */
enum {
    G_AUC, /* binary */
    G_PRECISION,
    G_RECALL,
    G_F1,
    G_RMSE, /* regression */
    G_MAE,
    G_R2,
    G_LOG_LOSS, /* multi-class */
    G_ACCURACY,
    G_MACRO_F1,
    N_QUALITY,
    G_MODEL_MB = N_QUALITY, /* every task */
    G_BATCH_P99,
    N_GATES
};

/* What a set of rows measures. */
typedef struct vld_metrics {
    size_t n, n_pos, tp, fp, fn; /* binary: positives and the counts at the threshold */
    double q[N_QUALITY];         /* the task's quality metrics by gate; NaN: undefined (a
                                    ROC-AUC without one class) or not of the task */
    double positive_rate;        /* binary */
    double batch_p50_ms, batch_p99_ms, rows_per_s; /* the whole data set only */
    size_t n_batches;
} vld_metrics_t;

typedef struct vld_gate {
    const char *name; /* in the card and the JSON */
    const char *key;  /* configuration key */
    int is_max;       /* value must be <= threshold (else >=) */
    int task;         /* the task it judges (ss_task_t); -1: every task */
    double threshold;
    int set;      /* the threshold is one that checks (each key's doc says which are not) */
    int applies;  /* to the model's task */
    double value; /* NaN: not available (fails when checked) */
    int passed;   /* checked (set and applies) and met, or not checked */
} vld_gate_t;

/* One value of validate.segment.field and what its rows measure. */
typedef struct vld_segment {
    char *value; /* the field's value as text (bytes of a string as they are); NULL: null */
    size_t len;
    long long num; /* an int field's value, to sort by */
    vld_metrics_t m;
    int gated; /* at least validate.segment.min.records rows */
} vld_segment_t;

/* A gate of validate.segment.gates: its worst segment. */
typedef struct vld_seg_gate {
    int named;    /* in validate.segment.gates */
    double value; /* the worst gated segment's value; NaN: undefined there, or none gated */
    long segment; /* index of that segment; -1: no segment has enough records */
    int passed;
} vld_seg_gate_t;

#define VLD_MAX_SEGMENTS 1000

typedef struct vld_dataset {
    float *x;      /* n x n_features, row-major */
    double *y;     /* binary: 0/1; multi-class: the class index; else the number */
    uint32_t *seg; /* the segment of each row (validate.segment.field), or NULL */
    size_t n, cap, n_features;
    size_t records, unlabeled, bad_label, undecodable;
    char first_decode_error[400];
} vld_dataset_t;

/* One run of the command. */
typedef struct vld_run {
    const ss_config_t *cfg;
    const char *data, *json_out;
    int update_card;

    ss_model_t *model;
    int task;         /* the model's ss_task_t */
    size_t n_classes; /* multi-class: the model's outputs per row */
    long long model_bytes;
    avro_file_reader_t reader;
    avro_schema_t wschema; /* the data file's writer schema */
    int label_index;
    int seg_index;   /* validate.segment.field in the data file's schema; -1: no segments */
    int seg_numeric; /* the segment field is an int or long */
    char **fields;   /* event field of each model feature (features.rename applied) */
    size_t *missing; /* indexes of the features whose field the data file lacks */
    size_t n_missing;
    ss_codec_t *codec;
    ss_decoder_t *dec;

    vld_dataset_t ds;
    char data_sha[65];
    double *scores, *batch_ms;
    double *outputs; /* multi-class: n x n_classes class probabilities */
    int *classes;    /* multi-class: the predicted class of each row */
    size_t batch, n_batches;
    vld_metrics_t m;
    vld_gate_t gates[N_GATES];
    vld_segment_t *segs; /* sorted by value (null first) */
    size_t n_segs, segs_cap;
    uint32_t *seg_slots; /* validate_data.c's hash index of r->segs by value */
    vld_seg_gate_t seg_gates[N_QUALITY];
    int any_seg_gate;
    int passed;

    json_t *card; /* NULL when model.card does not exist */
    double card_threshold;
    double threshold; /* binary: the one scored at: model.threshold, else the card's, else the
                         objective's; NaN: the task has no decision */
    char err[1024];
} vld_run_t;

/* validate_data.c. Open --data: an Avro container file whose schema has the label field (and
 * the segment field, when there is one) and resolves against input.schema, and the decoder
 * for it. Needs r->model and r->task. 0, SS_ERR_CONFIG or SS_ERR_FAIL with r->err. */
int vld_data_open(vld_run_t *r);
/* Every labeled record decoded into r->ds, its segment into r->segs, and the file's SHA-256.
 * 0, SS_ERR_CONFIG (too many segments) or SS_ERR_FAIL. */
int vld_data_read(vld_run_t *r);
void vld_data_close(vld_run_t *r);
/* What a label the task cannot use is not: "0/1", "a class index", "a finite number". */
const char *vld_label_rule(int task);

/* validate.c. The model card from `len` bytes of its JSON text (`what` names it in errors),
 * as the command reads the file at model.card: into r->card and r->card_threshold. 0, or
 * SS_ERR_CONFIG with r->err. */
int vld_card_from_text(vld_run_t *r, const char *text, size_t len, const char *what);

/* validate_card.c. The fewest significant digits (1 to 17) that write every real of `doc`
 * so that it reads back exactly: the precision cards and --json are written with. */
int vld_json_digits(json_t *doc);
/* The readable report on stdout. */
void vld_print_report(const vld_run_t *r);
/* --json FILE and the model card's "validation". 0 or a negative SS_ERR_* with r->err. */
int vld_record_result(vld_run_t *r);

#endif
