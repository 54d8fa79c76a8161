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

#include "codec.h"
#include "config.h"
#include "model.h"

typedef struct vld_metrics {
    size_t n, n_pos, tp, fp, fn;
    double roc_auc; /* NaN when one class is absent */
    double precision, recall, f1, positive_rate;
    double batch_p50_ms, batch_p99_ms, rows_per_s;
    size_t n_batches;
} vld_metrics_t;

typedef struct vld_gate {
    const char *name; /* in the card and the JSON */
    const char *key;  /* configuration key */
    int is_max;       /* value must be <= threshold (else >=) */
    double threshold; /* negative: not checked */
    double value;     /* NaN: not available (fails when checked) */
    int passed;
} vld_gate_t;

enum { G_AUC, G_PRECISION, G_RECALL, G_F1, G_MODEL_MB, G_BATCH_P99, N_GATES };

typedef struct vld_dataset {
    float *x;         /* n x n_features, row-major */
    unsigned char *y; /* 0/1 */
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
    long long model_bytes;
    avro_file_reader_t reader;
    avro_schema_t wschema; /* the data file's writer schema */
    int label_index;
    char **fields;   /* event field of each model feature (features.rename applied) */
    size_t *missing; /* indexes of the features whose field the data file lacks */
    size_t n_missing;
    ss_codec_t *codec;
    ss_decoder_t *dec;

    vld_dataset_t ds;
    char data_sha[65];
    double *scores, *batch_ms;
    size_t batch, n_batches;
    vld_metrics_t m;
    vld_gate_t gates[N_GATES];
    int passed;

    json_t *card; /* NULL when model.card does not exist */
    double card_threshold;
    double threshold; /* the one scored at: model.threshold, else the card's, else 0.5 */
    char err[1024];
} vld_run_t;

/* validate_data.c. Open --data: an Avro container file whose schema has the label field and
 * resolves against input.schema, and the decoder for it. 0, SS_ERR_CONFIG or SS_ERR_FAIL with
 * r->err. */
int vld_data_open(vld_run_t *r);
/* Every labeled record decoded into r->ds, and the file's SHA-256. 0 or SS_ERR_FAIL. */
int vld_data_read(vld_run_t *r);
void vld_data_close(vld_run_t *r);

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
