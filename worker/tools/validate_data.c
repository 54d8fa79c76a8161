/* validate_data.c - the labeled data set of `validate-model`: an Avro object container file
 * of events, decoded by the worker's own codec (any writer schema that resolves against
 * input.schema; the model's categories as the worker reads them), each record's label read
 * from validate.label.field and its segment from validate.segment.field, and the file's
 * SHA-256 (core/artifact.c), recorded so that a result names its exact data. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact.h"
#include "error.h"
#include "hash.h"
#include "strv.h"
#include "validate_int.h"

enum { LABEL_OK = 0, LABEL_NULL = -1, LABEL_BAD = -2 };

#define SEG_SLOTS 2048 /* a power of two, over twice VLD_MAX_SEGMENTS */

const char *vld_label_rule(int task) {
    return task == SS_TASK_BINARY       ? "0/1"
           : task == SS_TASK_MULTICLASS ? "a class index"
                                        : "a finite number";
}

/* Whether every branch of field type `t` (a type, or a union with null) is one of the
 * `n` types `ok`. */
static int field_type_in(avro_schema_t t, const avro_type_t *ok, size_t n) {
    int is_union = is_avro_union(t), all = 1;
    size_t nb = is_union ? avro_schema_union_size(t) : 1;
    for (size_t b = 0; b < nb; b++) {
        avro_type_t bt = avro_typeof(is_union ? avro_schema_union_branch(t, (int)b) : t);
        int found = bt == AVRO_NULL && is_union;
        for (size_t i = 0; i < n && !found; i++)
            found = bt == ok[i];
        all = all && found;
    }
    return all;
}

/* The label field's non-null type: boolean, int or long (binary, multi-class), or also float
 * or double (regression, ranking, survival), optionally in a union with null. */
static int check_label_field(vld_run_t *r) {
    static const avro_type_t types[] = {AVRO_BOOLEAN, AVRO_INT32, AVRO_INT64, AVRO_FLOAT,
                                        AVRO_DOUBLE};
    const char *field = r->cfg->validate_label_field;
    int classes = r->task == SS_TASK_BINARY || r->task == SS_TASK_MULTICLASS;
    r->label_index = avro_schema_record_field_get_index(r->wschema, field);
    if (r->label_index < 0) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': its schema has no label field '%s' (key validate.label.field)",
                 r->data, field);
        return SS_ERR_CONFIG;
    }
    avro_schema_t t = avro_schema_record_field_get_by_index(r->wschema, r->label_index);
    if (!field_type_in(t, types, classes ? 3 : 5)) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': label field '%s' has type '%s', not %s (key validate.label.field)",
                 r->data, field, avro_schema_type_name(t),
                 classes ? "boolean or int" : "a number (boolean, int, long, float or double)");
        return SS_ERR_CONFIG;
    }
    return 0;
}

/* The segment field, when validate.segment.field names one: string, enum, boolean, int or
 * long, optionally in a union with null. */
static int check_segment_field(vld_run_t *r) {
    static const avro_type_t types[] = {AVRO_STRING, AVRO_ENUM, AVRO_BOOLEAN, AVRO_INT32,
                                        AVRO_INT64};
    static const avro_type_t ints[] = {AVRO_INT32, AVRO_INT64};
    const char *field = r->cfg->validate_segment_field;
    r->seg_index = -1;
    if (!field || !*field)
        return 0;
    r->seg_index = avro_schema_record_field_get_index(r->wschema, field);
    if (r->seg_index < 0) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': its schema has no segment field '%s' (key validate.segment.field)",
                 r->data, field);
        return SS_ERR_CONFIG;
    }
    avro_schema_t t = avro_schema_record_field_get_by_index(r->wschema, r->seg_index);
    if (!field_type_in(t, types, sizeof(types) / sizeof(types[0]))) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': segment field '%s' has type '%s', not string, enum, boolean or "
                 "int (key validate.segment.field)",
                 r->data, field, avro_schema_type_name(t));
        return SS_ERR_CONFIG;
    }
    r->seg_numeric = field_type_in(t, ints, 2);
    if (!(r->seg_slots = ss_zalloc(SEG_SLOTS * sizeof(*r->seg_slots), "validate-model", r->err,
                                   sizeof(r->err))))
        return SS_ERR_NOMEM;
    return 0;
}

/* Field `index` of `rec`, the branch taken when it is a union. 0 or -1. */
static int field_value(avro_value_t *rec, int index, avro_value_t *out) {
    avro_value_t branch;
    if (avro_value_get_by_index(rec, (size_t)index, out, NULL) != 0)
        return -1;
    if (avro_value_get_type(out) == AVRO_UNION) {
        if (avro_value_get_current_branch(out, &branch) != 0)
            return -1;
        *out = branch;
    }
    return 0;
}

/* The record's label into *y: LABEL_OK, LABEL_NULL, or LABEL_BAD when the task cannot use it
 * (binary: not 0/1; multi-class: not a class of the model; else not finite). */
static int read_label(const vld_run_t *r, avro_value_t *rec, double *y) {
    avro_value_t v;
    int32_t i = 0;
    int64_t l = 0;
    float f = 0;
    int b = 0, rc = -1;
    if (field_value(rec, r->label_index, &v) != 0)
        return LABEL_BAD;
    switch (avro_value_get_type(&v)) {
    case AVRO_NULL: return LABEL_NULL;
    case AVRO_BOOLEAN: rc = avro_value_get_boolean(&v, &b), *y = b != 0; break;
    case AVRO_INT32: rc = avro_value_get_int(&v, &i), *y = i; break;
    case AVRO_INT64: rc = avro_value_get_long(&v, &l), *y = (double)l; break;
    case AVRO_FLOAT: rc = avro_value_get_float(&v, &f), *y = f; break;
    case AVRO_DOUBLE: rc = avro_value_get_double(&v, y); break;
    default: return LABEL_BAD;
    }
    if (rc != 0 || !isfinite(*y))
        return LABEL_BAD;
    if (r->task == SS_TASK_BINARY)
        return *y == 0 || *y == 1 ? LABEL_OK : LABEL_BAD;
    if (r->task == SS_TASK_MULTICLASS)
        return *y >= 0 && *y < (double)r->n_classes && *y == floor(*y) ? LABEL_OK : LABEL_BAD;
    return LABEL_OK;
}

/* A new segment of value `text` (NULL: null) in hash slot `slot`. */
static int add_segment(vld_run_t *r, size_t slot, const char *text, size_t len, long long num,
                       uint32_t *seg) {
    if (r->n_segs >= VLD_MAX_SEGMENTS) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': segment field '%s' has more than %d distinct values; segments are "
                 "a few key groups of records (key validate.segment.field)",
                 r->data, r->cfg->validate_segment_field, VLD_MAX_SEGMENTS);
        return SS_ERR_CONFIG;
    }
    if (r->n_segs == r->segs_cap) {
        size_t cap = r->segs_cap ? r->segs_cap * 2 : 16;
        vld_segment_t *segs = realloc(r->segs, cap * sizeof(*segs));
        if (!segs)
            goto nomem;
        r->segs = segs;
        r->segs_cap = cap;
    }
    vld_segment_t *g = &r->segs[r->n_segs];
    *g = (vld_segment_t){.len = len, .num = num};
    if (text) {
        if (!(g->value = malloc(len + 1)))
            goto nomem;
        memcpy(g->value, text, len);
        g->value[len] = '\0';
    }
    *seg = (uint32_t)r->n_segs++;
    r->seg_slots[slot] = *seg + 1;
    return 0;
nomem:
    snprintf(r->err, sizeof(r->err), "out of memory");
    return SS_ERR_NOMEM;
}

/* The record's segment (an index of r->segs, added when new) into *seg. 0, SS_ERR_CONFIG
 * past VLD_MAX_SEGMENTS, SS_ERR_NOMEM, or SS_ERR_FAIL when the value cannot be read. */
static int read_segment(vld_run_t *r, avro_value_t *rec, uint32_t *seg) {
    avro_value_t v;
    char buf[32];
    const char *text = NULL;
    size_t len = 0;
    int32_t i = 0;
    int64_t l = 0;
    int b = 0, e = 0, ok = 0, is_null = 0;
    if (field_value(rec, r->seg_index, &v) == 0) {
        switch (avro_value_get_type(&v)) {
        case AVRO_NULL: ok = is_null = 1; break;
        case AVRO_STRING: ok = avro_value_get_string(&v, &text, &len) == 0; break;
        case AVRO_ENUM:
            ok = avro_value_get_enum(&v, &e) == 0 &&
                 (text = avro_schema_enum_get(avro_value_get_schema(&v), e)) != NULL;
            len = ok ? strlen(text) + 1 : 0;
            break;
        case AVRO_BOOLEAN:
            ok = avro_value_get_boolean(&v, &b) == 0;
            text = b ? "true" : "false";
            len = strlen(text) + 1;
            break;
        case AVRO_INT32:
            ok = avro_value_get_int(&v, &i) == 0;
            l = i;
            break;
        case AVRO_INT64: ok = avro_value_get_long(&v, &l) == 0; break;
        default: break;
        }
    }
    if (ok && !is_null && !text) { /* an int */
        len = (size_t)snprintf(buf, sizeof(buf), "%" PRId64, l) + 1;
        text = buf;
    }
    if (!ok) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': record %zu: cannot read segment field '%s' "
                 "(key validate.segment.field)",
                 r->data, r->ds.records, r->cfg->validate_segment_field);
        return SS_ERR_FAIL;
    }
    len = len ? len - 1 : 0; /* Avro C counts a string's terminating NUL */
    uint64_t h = ss_fmix64(ss_fnv1a(SS_FNV1A_INIT, text ? text : "", len) + (uint64_t)is_null);
    size_t slot = h & (SEG_SLOTS - 1);
    for (; r->seg_slots[slot]; slot = (slot + 1) & (SEG_SLOTS - 1)) {
        const vld_segment_t *g = &r->segs[r->seg_slots[slot] - 1];
        if (is_null ? !g->value : g->value && g->len == len && memcmp(g->value, text, len) == 0) {
            *seg = r->seg_slots[slot] - 1;
            return 0;
        }
    }
    return add_segment(r, slot, is_null ? NULL : text, len, l, seg);
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
    ss_codec_cats_t cats;
    ss_model_codec_cats(r->model, cfg->features_unseen_category, &cats);
    r->codec = ss_codec_new_cats(cfg, features, nf, &cats, NULL, NULL, r->err, sizeof(r->err));
    if (!r->codec)
        return SS_ERR_CONFIG;
    ss_codec_destroy(r->codec);
    r->codec =
        ss_codec_new_cats(cfg, features, nf, &cats, r->wschema, r->data, r->err, sizeof(r->err));
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
    if ((rc = check_label_field(r)) < 0 || (rc = check_segment_field(r)) < 0 ||
        (rc = check_features(r)) < 0)
        return rc;
    return make_codec(r);
}

static int dataset_grow(vld_run_t *r) {
    vld_dataset_t *d = &r->ds;
    if (d->n < d->cap)
        return 0;
    size_t cap = d->cap ? d->cap * 2 : 4096;
    float *x = realloc(d->x, cap * d->n_features * sizeof(float));
    if (!x)
        return SS_ERR_NOMEM;
    d->x = x;
    double *y = realloc(d->y, cap * sizeof(double));
    if (!y)
        return SS_ERR_NOMEM;
    d->y = y;
    if (r->seg_index >= 0) {
        uint32_t *seg = realloc(d->seg, cap * sizeof(uint32_t));
        if (!seg)
            return SS_ERR_NOMEM;
        d->seg = seg;
    }
    d->cap = cap;
    return 0;
}

/* One record: its label, then its features through the codec, then its segment; unlabeled
 * or undecodable records are counted and skipped. */
static int take_record(vld_run_t *r, avro_value_t *value) {
    vld_dataset_t *ds = &r->ds;
    ss_event_t ev;
    char derr[256];
    double y = 0;
    ds->records++;
    int label = read_label(r, value, &y);
    if (label != LABEL_OK) {
        *(label == LABEL_NULL ? &ds->unlabeled : &ds->bad_label) += 1;
        return 0;
    }
    if (dataset_grow(r) < 0) {
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
    if (r->seg_index >= 0) {
        int rc = read_segment(r, value, &ds->seg[ds->n]);
        if (rc < 0)
            return rc;
    }
    ds->y[ds->n++] = y;
    return 0;
}

/* Segments in the order of their values: null first, then an int field's by number, any
 * other's by its bytes. */
static int segment_cmp(const void *a, const void *b) {
    const vld_segment_t *x = *(const vld_segment_t *const *)a,
                        *y = *(const vld_segment_t *const *)b;
    if (!x->value || !y->value)
        return !!x->value - !!y->value;
    if (x->num != y->num)
        return x->num < y->num ? -1 : 1;
    int c = memcmp(x->value, y->value, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* r->segs sorted, each row's segment renumbered. */
static int sort_segments(vld_run_t *r) {
    size_t n = r->n_segs;
    vld_segment_t **order = malloc((n ? n : 1) * sizeof(*order));
    vld_segment_t *sorted = malloc((n ? n : 1) * sizeof(*sorted));
    uint32_t *renum = malloc((n ? n : 1) * sizeof(*renum));
    int rc = SS_ERR_NOMEM;
    if (!order || !sorted || !renum) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        goto cleanup;
    }
    for (size_t s = 0; s < n; s++)
        order[s] = &r->segs[s];
    qsort(order, n, sizeof(*order), segment_cmp);
    for (size_t s = 0; s < n; s++) {
        sorted[s] = *order[s];
        renum[order[s] - r->segs] = (uint32_t)s;
    }
    memcpy(r->segs, sorted, n * sizeof(*sorted));
    for (size_t i = 0; i < r->ds.n; i++)
        r->ds.seg[i] = renum[r->ds.seg[i]];
    rc = 0;
cleanup:
    free(order);
    free(sorted);
    free(renum);
    return rc;
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
            rc = SS_ERR_FAIL;
            goto cleanup;
        }
        if ((rc = take_record(r, &value)) < 0)
            goto cleanup;
    }
    rc = SS_ERR_FAIL;
    if (ds->n == 0) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': no usable record: %zu records, %zu without label '%s', %zu with a "
                 "label that is not %s, %zu undecodable%s%s",
                 r->data, ds->records, ds->unlabeled, r->cfg->validate_label_field, ds->bad_label,
                 vld_label_rule(r->task), ds->undecodable, ds->undecodable ? "; first: " : "",
                 ds->first_decode_error);
        goto cleanup;
    }
    if (r->seg_index >= 0 && (rc = sort_segments(r)) < 0)
        goto cleanup;
    rc = SS_ERR_FAIL;
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
    free(r->ds.seg);
    for (size_t s = 0; s < r->n_segs; s++)
        free(r->segs[s].value);
    free(r->segs);
    free(r->seg_slots);
    ss_decoder_destroy(r->dec);
    ss_codec_destroy(r->codec);
    if (r->wschema)
        avro_schema_decref(r->wschema);
    if (r->reader)
        avro_file_reader_close(r->reader);
}
