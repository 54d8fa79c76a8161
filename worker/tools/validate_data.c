/* validate_data.c - the labeled data set of `validate-model`: an Avro object container file
 * of events, decoded by the worker's own codec (any writer schema that resolves against
 * input.schema), each record's label read from validate.label.field, and the file's SHA-256
 * (core/artifact.c), recorded so that a result names its exact data. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact.h"
#include "error.h"
#include "strv.h"
#include "validate_int.h"

enum { LABEL_NULL = -1, LABEL_BAD = -2 };

/* The label field's non-null type: boolean, int or long, optionally in a union with null. */
static int check_label_field(vld_run_t *r) {
    const char *field = r->cfg->validate_label_field;
    r->label_index = avro_schema_record_field_get_index(r->wschema, field);
    if (r->label_index < 0) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': its schema has no label field '%s' (key validate.label.field)",
                 r->data, field);
        return SS_ERR_CONFIG;
    }
    avro_schema_t t = avro_schema_record_field_get_by_index(r->wschema, r->label_index);
    int ok = 1;
    size_t nb = is_avro_union(t) ? avro_schema_union_size(t) : 1;
    for (size_t b = 0; b < nb; b++) {
        avro_type_t bt = avro_typeof(is_avro_union(t) ? avro_schema_union_branch(t, (int)b) : t);
        ok = ok && ((bt == AVRO_NULL && is_avro_union(t)) || bt == AVRO_BOOLEAN ||
                    bt == AVRO_INT32 || bt == AVRO_INT64);
    }
    if (!ok) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': label field '%s' has type '%s', not boolean or int "
                 "(key validate.label.field)",
                 r->data, field, avro_schema_type_name(t));
        return SS_ERR_CONFIG;
    }
    return 0;
}

/* The record's label: 0 or 1, LABEL_NULL or LABEL_BAD (not 0/1). */
static int read_label(avro_value_t *rec, int index) {
    avro_value_t v, branch;
    int32_t i = -1;
    int64_t l = -1;
    int b = 0;
    if (avro_value_get_by_index(rec, (size_t)index, &v, NULL) != 0)
        return LABEL_BAD;
    if (avro_value_get_type(&v) == AVRO_UNION) {
        if (avro_value_get_current_branch(&v, &branch) != 0)
            return LABEL_BAD;
        v = branch;
    }
    switch (avro_value_get_type(&v)) {
    case AVRO_NULL: return LABEL_NULL;
    case AVRO_BOOLEAN: return avro_value_get_boolean(&v, &b) == 0 ? (b != 0) : LABEL_BAD;
    case AVRO_INT32: avro_value_get_int(&v, &i); return i == 0 || i == 1 ? (int)i : LABEL_BAD;
    case AVRO_INT64: avro_value_get_long(&v, &l); return l == 0 || l == 1 ? (int)l : LABEL_BAD;
    default: return LABEL_BAD;
    }
}

/* Features present: each model feature's event field (after features.rename) must be a field
 * of the data's schema; those that are not are listed in r->missing. */
static int check_features(vld_run_t *r) {
    size_t nf = r->model->n_features;
    int rc = ss_codec_feature_fields(r->cfg, r->model->feature_names, nf, &r->fields, r->err,
                                     sizeof(r->err));
    if (rc < 0)
        return rc;
    if (!(r->missing = ss_zalloc((nf ? nf : 1) * sizeof(*r->missing), "validate-model", r->err,
                                 sizeof(r->err))))
        return SS_ERR_NOMEM;
    for (size_t f = 0; f < nf; f++)
        if (avro_schema_record_field_get_index(r->wschema, r->fields[f]) < 0)
            r->missing[r->n_missing++] = f;
    return 0;
}

/* The decoder for the data file's schema; input.schema and features.rename are checked on
 * their own first, so that an error of the data file is reported as such. */
static int make_codec(vld_run_t *r) {
    const ss_config_t *cfg = r->cfg;
    size_t nf = r->model->n_features;
    char *const *features = r->model->feature_names;
    static const char tag[] = "against input.schema: ";
    r->codec = ss_codec_new(cfg, features, nf, r->err, sizeof(r->err));
    if (!r->codec)
        return SS_ERR_CONFIG;
    ss_codec_destroy(r->codec);
    r->codec =
        ss_codec_new_for_writer(cfg, features, nf, r->wschema, r->data, r->err, sizeof(r->err));
    if (!r->codec) {
        char why[sizeof(r->err)];
        const char *tail = strstr(r->err, tag);
        snprintf(why, sizeof(why), "%s", tail ? tail + strlen(tag) : r->err);
        size_t len = (size_t)snprintf(r->err, sizeof(r->err),
                                      "--data '%s': its schema does not resolve against "
                                      "input.schema '%s': %s",
                                      r->data, cfg->input_schema, why);
        for (size_t i = 0; i < r->n_missing && len < sizeof(r->err); i++)
            len += (size_t)snprintf(r->err + len, sizeof(r->err) - len, "%s%s",
                                    i ? ", " : "; it also lacks the model features ",
                                    r->fields[r->missing[i]]);
        return SS_ERR_CONFIG;
    }
    r->dec = ss_decoder_new(r->codec, r->err, sizeof(r->err));
    return r->dec ? 0 : SS_ERR_FAIL;
}

int vld_data_open(vld_run_t *r) {
    unsigned char magic[4] = {0};
    int rc;
    if (access(r->data, R_OK) != 0) {
        snprintf(r->err, sizeof(r->err), "--data '%s': %s", r->data, strerror(errno));
        return SS_ERR_CONFIG;
    }
    /* Avro C leaks a buffer when its reader rejects a file, so look at the magic first. */
    FILE *f = fopen(r->data, "rb");
    size_t got = f ? fread(magic, 1, sizeof(magic), f) : 0;
    if (f)
        fclose(f);
    if (got != sizeof(magic) || memcmp(magic, "Obj\x01", 4) != 0) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s' is not an Avro object container file (no 'Obj\\x01' magic)", r->data);
        return SS_ERR_CONFIG;
    }
    if (avro_file_reader(r->data, &r->reader) != 0) {
        r->reader = NULL;
        snprintf(r->err, sizeof(r->err),
                 "--data '%s' is not a readable Avro object container file: %s", r->data,
                 avro_strerror());
        return SS_ERR_CONFIG;
    }
    r->wschema = avro_file_reader_get_writer_schema(r->reader);
    if (!r->wschema || !is_avro_record(r->wschema)) {
        snprintf(r->err, sizeof(r->err), "--data '%s': the file's schema is not a record", r->data);
        return SS_ERR_CONFIG;
    }
    if ((rc = check_label_field(r)) < 0 || (rc = check_features(r)) < 0)
        return rc;
    return make_codec(r);
}

static int dataset_grow(vld_dataset_t *d) {
    if (d->n < d->cap)
        return 0;
    size_t cap = d->cap ? d->cap * 2 : 4096;
    float *x = realloc(d->x, cap * d->n_features * sizeof(float));
    if (!x)
        return SS_ERR_NOMEM;
    d->x = x;
    unsigned char *y = realloc(d->y, cap);
    if (!y)
        return SS_ERR_NOMEM;
    d->y = y;
    d->cap = cap;
    return 0;
}

/* One record: its label, then its features through the codec; unlabeled or undecodable
 * records are counted and skipped. */
static int take_record(vld_run_t *r, avro_value_t *value) {
    vld_dataset_t *ds = &r->ds;
    ss_event_t ev;
    char derr[256];
    ds->records++;
    int label = read_label(value, r->label_index);
    if (label < 0) {
        *(label == LABEL_NULL ? &ds->unlabeled : &ds->bad_label) += 1;
        return 0;
    }
    if (dataset_grow(ds) < 0) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        return SS_ERR_NOMEM;
    }
    int dr =
        ss_decoder_extract(r->dec, value, &ev, ds->x + ds->n * ds->n_features, derr, sizeof(derr));
    if (dr != SS_DECODE_OK) {
        if (ds->undecodable++ == 0)
            snprintf(ds->first_decode_error, sizeof(ds->first_decode_error), "record %zu: %s: %s",
                     ds->records, ss_decode_reason(dr), derr);
        return 0;
    }
    ds->y[ds->n++] = (unsigned char)label;
    return 0;
}

int vld_data_read(vld_run_t *r) {
    vld_dataset_t *ds = &r->ds;
    avro_value_iface_t *iface = NULL;
    avro_value_t value;
    int rc = SS_ERR_FAIL, rr;
    if (ss_avro_value_new(r->wschema, &iface, &value) < 0) {
        snprintf(r->err, sizeof(r->err), "cannot create an Avro value for '%s': %s", r->data,
                 avro_strerror());
        goto cleanup;
    }
    ds->n_features = r->model->n_features;
    for (; (rr = avro_file_reader_read_value(r->reader, &value)) != EOF; avro_value_reset(&value)) {
        if (rr != 0) {
            snprintf(r->err, sizeof(r->err), "--data '%s': cannot read record %zu: %s", r->data,
                     ds->records + 1, avro_strerror());
            goto cleanup;
        }
        if (take_record(r, &value) < 0)
            goto cleanup;
    }
    if (ds->n == 0) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': no usable record: %zu records, %zu without label '%s', %zu with a "
                 "label that is not 0/1, %zu undecodable%s%s",
                 r->data, ds->records, ds->unlabeled, r->cfg->validate_label_field, ds->bad_label,
                 ds->undecodable, ds->undecodable ? "; first: " : "", ds->first_decode_error);
        goto cleanup;
    }
    if (ss_artifact_file_sha256(r->data, r->data_sha) < 0) {
        snprintf(r->err, sizeof(r->err), "--data '%s': cannot read it for its SHA-256: %s", r->data,
                 strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    ss_avro_value_release(iface, &value);
    return rc;
}

void vld_data_close(vld_run_t *r) {
    ss_strv_free(r->fields, r->model ? r->model->n_features : 0);
    free(r->missing);
    free(r->ds.x);
    free(r->ds.y);
    ss_decoder_destroy(r->dec);
    ss_codec_destroy(r->codec);
    if (r->wschema)
        avro_schema_decref(r->wschema);
    if (r->reader)
        avro_file_reader_close(r->reader);
}
