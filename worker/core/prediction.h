/* prediction.h - the prediction record (schemas/prediction.avsc) and its encodings:
 * Avro binary of output.schema written into a reused buffer, or a JSON object with the
 * same fields. */
#ifndef SS_PREDICTION_H
#define SS_PREDICTION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

/* One feature's part in a prediction (explain.top.k). */
typedef struct ss_contribution {
    const char *feature;
    double value;        /* the feature's value scored; NaN: missing */
    double contribution; /* its SHAP value for the output explained */
} ss_contribution_t;

typedef struct ss_prediction {
    const char *event_id;
    size_t event_id_len;
    const char *customer_id;
    size_t customer_id_len;
    double score;
    int decision;     /* 0 or 1; -1: the objective defines none (written null) */
    double threshold; /* NaN: none (written null) */
    const char *model_name;
    const char *model_version;
    const char *source_topic;
    int32_t source_partition;
    int64_t source_offset;
    int64_t event_time;
    int64_t scored_at;
    char feature_hash[17];
    int degraded;          /* scored without cached features (Redis unavailable) */
    const char *route;     /* "live" or "canary" (NULL: live) */
    const double *outputs; /* every output of a multi-output model, or NULL (written null) */
    size_t n_outputs;
    int predicted_class; /* multi-class: the argmax; -1: none (written null) */
    /* explain.top.k: the largest contributions by absolute value, or NULL (written null) */
    const ss_contribution_t *contributions;
    size_t n_contributions;
    double contributions_bias; /* the bias term of the output explained */
    int contributions_output;  /* the output explained (multi-output), -1: none */
} ss_prediction_t;

/* What a model may leave out of its predictions, checked against output.schema at start-up. */
typedef struct ss_encoder_needs {
    int no_decision;   /* some predictions carry no decision and no threshold */
    int outputs;       /* outputs and predicted_class are written */
    int contributions; /* contributions are written */
} ss_encoder_needs_t;

typedef struct ss_encoder ss_encoder_t; /* per thread */

/* Checks output.schema at start-up, field by field: a field streamscore fills must have the
 * type it writes (string; double for score and threshold; boolean for decision and degraded;
 * int, or long, for source_partition; long for source_offset, event_time and scored_at;
 * string for route), or
 * be a union with a branch of that type (written in that branch); decision, threshold,
 * outputs (an array of double), predicted_class (int), contributions (an array of records
 * {feature: string, value: double, contribution: double}, value may be nullable),
 * contributions_bias (double) and contributions_output (int) are written null when the
 * prediction has none, so they must be nullable where ss_encoder_check_needs requires it;
 * any other field needs a default (written as is) or a null branch (written null).
 * Returns NULL with errstr: SS_ERR_CONFIG's text names the key and the field. */
ss_encoder_t *ss_encoder_new(const ss_config_t *cfg, char *errstr, size_t errlen);
/* The same with an explicit SS_FORMAT_* (the shadow's results file is always JSON lines). */
ss_encoder_t *ss_encoder_new_format(const ss_config_t *cfg, int format, char *errstr,
                                    size_t errlen);
void ss_encoder_destroy(ss_encoder_t *e);

/* Whether output.schema can hold what a model writes: with needs->no_decision, decision and
 * threshold must be nullable (when present); with outputs or contributions, those fields
 * must be nullable too, as the records without them are written null. Returns 0, or
 * SS_ERR_CONFIG with errstr naming the key, the field and `why` (e.g. the objective). */
int ss_encoder_check_needs(const ss_encoder_t *e, const ss_encoder_needs_t *needs, const char *why,
                           char *errstr, size_t errlen);

/* Avro values from now on in the Confluent wire format: magic byte 0, `id` (4 bytes,
 * big-endian), then the body; -1: the plain body. No effect on JSON. */
void ss_encoder_set_schema_id(ss_encoder_t *e, int32_t id);

/* The output schema's full name (namespace.name), for the record subject strategies. */
void ss_encoder_schema_fullname(const ss_encoder_t *e, char *out, size_t outlen);

/* Encode; *out points into the encoder's buffer, valid until the next call.
 * Returns 0, or SS_ERR_NOMEM with errstr (the schema was checked: no value can fail to fit). */
int ss_encoder_encode(ss_encoder_t *e, const ss_prediction_t *p, const void **out, size_t *len,
                      char *errstr, size_t errlen);

#endif
