/* compare_decode.c - one prediction record, as the primary and the shadow write them: Avro
 * (raw, or in the Confluent wire format) read with Avro C, or a JSON object (output.format =
 * json, the shadow's results file) read with jansson. Both become the same list of field
 * values, checked once.
 *
 * A topic holds records of every version of the prediction schema its workers wrote while
 * they were upgraded: the one before `route`, the one with `route` (a string after
 * `degraded`), and the current one (decision and threshold nullable; outputs,
 * predicted_class and the contributions' bias after `route`). The current one is compiled in
 * (ss_schema_json), the two before it are kept here as text. A value carries no version, so
 * it is read with each in turn: output.schema first (when it is none of them, a schema of the
 * user's), then the current, the one with `route`, the one before it. The value is the first
 * read that takes exactly its bytes and gives a valid prediction; failing that, the first
 * valid one that leaves bytes over (a later version's trailing fields, ignored). Fields a
 * version lacks read as absent: route "live", no outputs, no class. */
#include <avro.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "compare_int.h"
#include "error.h"

enum {
    F_CUSTOMER_ID,
    F_SCORE,
    F_DECISION,
    F_THRESHOLD,
    F_MODEL_NAME,
    F_MODEL_VERSION,
    F_SOURCE_TOPIC,
    F_SOURCE_PARTITION,
    F_SOURCE_OFFSET,
    F_EVENT_TIME,
    F_SCORED_AT,
    F_FEATURE_HASH,
    F_ROUTE,
    F_OUTPUTS,
    F_PREDICTED_CLASS,
    F_COUNT
};
static const char *const pred_keys[F_COUNT] = {
    "customer_id",   "score",         "decision",       "threshold",
    "model_name",    "model_version", "source_topic",   "source_partition",
    "source_offset", "event_time",    "scored_at",      "feature_hash",
    "route",         "outputs",       "predicted_class"};
static const int pred_required[] = {F_SCORE, F_DECISION, F_SOURCE_PARTITION, F_SOURCE_OFFSET,
                                    F_FEATURE_HASH};

/* The versions of schemas/prediction.avsc before the current one (docs left out): before the
 * field `route`, and with it (decision and threshold not yet nullable, no outputs). */
#define PREDICTION_V1_FIELDS                                                                       \
    "{\"type\":\"record\",\"name\":\"Prediction\",\"namespace\":\"streamscore\",\"fields\":["      \
    "{\"name\":\"event_id\",\"type\":\"string\"},"                                                 \
    "{\"name\":\"customer_id\",\"type\":\"string\"},"                                              \
    "{\"name\":\"score\",\"type\":\"double\"},"                                                    \
    "{\"name\":\"decision\",\"type\":\"boolean\"},"                                                \
    "{\"name\":\"threshold\",\"type\":\"double\"},"                                                \
    "{\"name\":\"model_name\",\"type\":\"string\"},"                                               \
    "{\"name\":\"model_version\",\"type\":\"string\"},"                                            \
    "{\"name\":\"source_topic\",\"type\":\"string\"},"                                             \
    "{\"name\":\"source_partition\",\"type\":\"int\"},"                                            \
    "{\"name\":\"source_offset\",\"type\":\"long\"},"                                              \
    "{\"name\":\"event_time\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}," \
    "{\"name\":\"scored_at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"  \
    "{\"name\":\"feature_hash\",\"type\":\"string\"},"                                             \
    "{\"name\":\"contributions\",\"type\":[\"null\",{\"type\":\"array\","                          \
    "\"items\":{\"type\":\"record\",\"name\":\"Contribution\",\"fields\":["                        \
    "{\"name\":\"feature\",\"type\":\"string\"},"                                                  \
    "{\"name\":\"value\",\"type\":\"double\"}]}}],\"default\":null},"                              \
    "{\"name\":\"degraded\",\"type\":\"boolean\",\"default\":false}"
static const char schema_before_route[] = PREDICTION_V1_FIELDS "]}";
static const char schema_with_route[] =
    PREDICTION_V1_FIELDS ",{\"name\":\"route\",\"type\":\"string\",\"default\":\"live\"}]}";

/* A field's value, whichever the encoding. */
enum { V_ABSENT = 0, V_NULL, V_STR, V_INT, V_REAL, V_BOOL, V_ARRAY, V_OTHER };
typedef struct val {
    int type;
    const char *s;      /* V_STR */
    size_t n;           /* V_STR; V_ARRAY: its items */
    int64_t i;          /* V_INT, V_BOOL */
    double num;         /* V_INT, V_REAL */
    avro_value_t arr;   /* V_ARRAY of Avro */
    const json_t *jarr; /* V_ARRAY of JSON */
} val_t;

/* One writer schema an Avro value may have been written with, and a value of it. */
typedef struct plan {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    int idx[F_COUNT];
} plan_t;

#define MAX_PLANS 4

struct cmp_decoder {
    plan_t plan[MAX_PLANS]; /* output.schema, then the versions it is not, newest first */
    int n_plans;
    avro_reader_t reader;
    int framed;   /* Avro values in the Confluent wire format (a registry, or output.schema.id) */
    json_t *json; /* the last JSON value decoded: its strings back the prediction */
    double *outs; /* the last prediction's outputs */
    size_t outs_cap;
};

/* avro-c allocates the length a string claims before reading it, and leaks that buffer when
 * the read then fails. While compare decodes a value, allocations are capped at what a value
 * of that size could need and tracked: after a failed read the value is rebuilt, and what is
 * still live from that read was leaked, so it is freed. Single-threaded use only. */
static struct {
    size_t cap;
    int on;
    size_t n, room;
    void **p; /* every live allocation of the read under way; grown, never shrunk */
} av = {SIZE_MAX, 0, 0, 0, NULL};

/* Stop tracking p: 1 if it was tracked. */
static int av_forget(void *p) {
    for (size_t i = av.n; i-- > 0;) /* the latest first: a realloc is of a recent one */
        if (av.p[i] == p) {
            av.p[i] = av.p[--av.n];
            return 1;
        }
    return 0;
}

/* Room to track one more allocation: 0, or SS_ERR_NOMEM (the allocation is then refused). */
static int av_room(void) {
    if (av.n < av.room)
        return 0;
    size_t room = av.room ? av.room * 2 : 256;
    void **g = realloc(av.p, room * sizeof(*g));
    if (!g)
        return SS_ERR_NOMEM;
    av.p = g, av.room = room;
    return 0;
}

/* Every allocation of a read is tracked, or refused when it cannot be (the read fails). */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud, (void)osize;
    int tracked = av.on && ptr && av_forget(ptr);
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > av.cap || (av.on && av_room() < 0)) {
        if (tracked) /* still live; there is room: it was just forgotten */
            av.p[av.n++] = ptr;
        return NULL;
    }
    void *q = realloc(ptr, nsize);
    if (av.on && (q || tracked))
        av.p[av.n++] = q ? q : ptr;
    return q;
}

void cmp_decoder_destroy(cmp_decoder_t *d) {
    if (!d)
        return;
    json_decref(d->json);
    if (d->reader)
        avro_reader_free(d->reader);
    for (int i = 0; i < d->n_plans; i++) {
        ss_avro_value_release(d->plan[i].iface, &d->plan[i].value);
        if (d->plan[i].schema)
            avro_schema_decref(d->plan[i].schema);
    }
    free(d->outs);
    free(d);
}

/* A schema from its JSON text; NULL with avro_strerror(). */
static avro_schema_t schema_of_text(const char *text) {
    avro_schema_t s = NULL;
    return avro_schema_from_json_length(text, strlen(text), &s) == 0 ? s : NULL;
}

/* Add schema s as the next plan (taking its reference) unless an earlier plan has the same
 * schema (then s is released). 0, or SS_ERR_NOMEM with avro_strerror(). */
static int plan_add(cmp_decoder_t *d, avro_schema_t s) {
    for (int i = 0; i < d->n_plans; i++)
        if (avro_schema_equal(d->plan[i].schema, s)) {
            avro_schema_decref(s);
            return 0;
        }
    plan_t *pl = &d->plan[d->n_plans++];
    pl->schema = s;
    for (int i = 0; i < F_COUNT; i++)
        pl->idx[i] = avro_schema_record_field_get_index(s, pred_keys[i]);
    return ss_avro_value_new(s, &pl->iface, &pl->value) < 0 ? SS_ERR_NOMEM : 0;
}

/* output.schema, then the versions of the prediction schema. */
static int plans_init(cmp_decoder_t *d, const ss_config_t *cfg, char *errstr, size_t errlen) {
    avro_schema_t schema = ss_schema_load(cfg->output_schema, "output.schema", errstr, errlen);
    if (!schema)
        return SS_ERR_CONFIG;
    for (size_t i = 0; i < sizeof(pred_required) / sizeof(pred_required[0]); i++)
        if (avro_schema_record_field_get_index(schema, pred_keys[pred_required[i]]) < 0) {
            snprintf(errstr, errlen, "config: key 'output.schema': '%s' has no field '%s'",
                     cfg->output_schema, pred_keys[pred_required[i]]);
            avro_schema_decref(schema);
            return SS_ERR_CONFIG;
        }
    if (plan_add(d, schema) < 0)
        goto nomem;
    /* the current version (ss_schema_json: compiled in, unless the current folder has
     * schemas/prediction.avsc) */
    if (!(schema = ss_schema_load("schemas/prediction.avsc", "output.schema", errstr, errlen)))
        return SS_ERR_CONFIG;
    if (plan_add(d, schema) < 0)
        goto nomem;
    const char *const older[] = {schema_with_route, schema_before_route};
    for (size_t i = 0; i < sizeof(older) / sizeof(older[0]); i++)
        if (!(schema = schema_of_text(older[i])) || plan_add(d, schema) < 0)
            goto nomem;
    return 0;
nomem:
    snprintf(errstr, errlen, "avro: %s", avro_strerror());
    return SS_ERR_NOMEM;
}

int cmp_decoder_new(const ss_config_t *cfg, int avro, cmp_decoder_t **out, char *errstr,
                    size_t errlen) {
    cmp_decoder_t *d = ss_zalloc(sizeof(*d), "compare", errstr, errlen);
    int rc;
    *out = NULL;
    if (!d)
        return SS_ERR_NOMEM;
    if (avro) {
        d->framed = *cfg->registry_url || cfg->output_schema_id >= 0;
        if ((rc = plans_init(d, cfg, errstr, errlen)) < 0)
            goto cleanup;
        avro_set_allocator(capped_alloc, NULL); /* frees what the default allocator made */
        if (!(d->reader = avro_reader_memory("", 0))) {
            snprintf(errstr, errlen, "avro: %s", avro_strerror());
            rc = SS_ERR_NOMEM;
            goto cleanup;
        }
    }
    *out = d;
    d = NULL;
    rc = 0;
cleanup:
    cmp_decoder_destroy(d);
    return rc;
}

/* ---- field values ------------------------------------------------------------------------ */

static void avro_val(avro_value_t *f, val_t *v, int depth) {
    const char *s;
    size_t n;
    int32_t i32;
    int b;
    float fl;
    avro_value_t branch;
    v->type = V_OTHER;
    switch (avro_value_get_type(f)) {
    case AVRO_STRING:
        if (avro_value_get_string(f, &s, &n) == 0)
            v->type = V_STR, v->s = s, v->n = n ? n - 1 : 0;
        break;
    case AVRO_DOUBLE:
        if (avro_value_get_double(f, &v->num) == 0)
            v->type = V_REAL;
        break;
    case AVRO_FLOAT:
        if (avro_value_get_float(f, &fl) == 0)
            v->type = V_REAL, v->num = fl;
        break;
    case AVRO_INT32:
        if (avro_value_get_int(f, &i32) == 0)
            v->type = V_INT, v->i = i32, v->num = i32;
        break;
    case AVRO_INT64:
        if (avro_value_get_long(f, &v->i) == 0)
            v->type = V_INT, v->num = (double)v->i;
        break;
    case AVRO_BOOLEAN: /* Avro C keeps the byte as read: one other than 0 or 1 is malformed */
        if (avro_value_get_boolean(f, &b) == 0 && (b == 0 || b == 1))
            v->type = V_BOOL, v->i = b;
        break;
    case AVRO_NULL: v->type = V_NULL; break;
    case AVRO_ARRAY:
        if (avro_value_get_size(f, &v->n) == 0)
            v->type = V_ARRAY, v->arr = *f;
        break;
    case AVRO_UNION:
        if (depth == 0 && avro_value_get_current_branch(f, &branch) == 0)
            avro_val(&branch, v, 1);
        break;
    default: break;
    }
}

static void json_val(const json_t *j, val_t *v) {
    switch (json_typeof(j)) {
    case JSON_STRING:
        v->type = V_STR, v->s = json_string_value(j), v->n = json_string_length(j);
        break;
    case JSON_INTEGER: v->type = V_INT, v->i = json_integer_value(j), v->num = (double)v->i; break;
    case JSON_REAL: v->type = V_REAL, v->num = json_real_value(j); break;
    case JSON_TRUE:
    case JSON_FALSE: v->type = V_BOOL, v->i = json_is_true(j); break;
    case JSON_NULL: v->type = V_NULL; break;
    case JSON_ARRAY: v->type = V_ARRAY, v->jarr = j, v->n = json_array_size(j); break;
    default: v->type = V_OTHER; break;
    }
}

/* A string field: absent or null reads as "". */
static int str_of(const val_t *v, cmp_str_t *out) {
    out->p = "", out->n = 0;
    if (v->type == V_ABSENT || v->type == V_NULL)
        return 0;
    if (v->type != V_STR)
        return SS_ERR_FAIL;
    out->p = v->s, out->n = v->n;
    return 0;
}

/* A time field: absent or null reads as CMP_NO_TIME. */
static int time_of(const val_t *v, int64_t *out) {
    *out = CMP_NO_TIME;
    if (v->type == V_ABSENT || v->type == V_NULL)
        return 0;
    if (v->type != V_INT)
        return SS_ERR_FAIL;
    *out = v->i;
    return 0;
}

/* The 16 hex digits of feature_hash. */
static int hash_of(const val_t *v, uint64_t *out) {
    uint64_t h = 0;
    if (v->type != V_STR || v->n != 16)
        return SS_ERR_FAIL;
    for (int k = 0; k < 16; k++) {
        char c = v->s[k], lc = (char)(c | 0x20);
        if (c >= '0' && c <= '9')
            h = h << 4 | (uint64_t)(c - '0');
        else if (lc >= 'a' && lc <= 'f')
            h = h << 4 | (uint64_t)(lc - 'a' + 10);
        else
            return SS_ERR_FAIL;
    }
    *out = h;
    return 0;
}

/* The decision: a boolean (or 0/1 in JSON), or null. */
static int decision_of(const val_t *dec, cmp_pred_t *p) {
    p->has_decision = dec->type != V_NULL;
    p->decision = 0;
    if (dec->type == V_NULL)
        return 0;
    if (dec->type != V_BOOL && !(dec->type == V_INT && (dec->i == 0 || dec->i == 1)))
        return SS_ERR_FAIL;
    p->decision = (int)dec->i;
    return 0;
}

/* outputs (an array of finite numbers, into the decoder's buffer; absent or null: none) and
 * predicted_class (an int >= 0; absent or null: -1). */
static int outputs_of(cmp_decoder_t *d, const val_t *o, const val_t *cls, cmp_pred_t *p) {
    p->outputs = NULL, p->n_outputs = 0, p->predicted_class = -1;
    if (cls->type == V_INT) {
        if (cls->i < 0 || cls->i > INT32_MAX)
            return SS_ERR_FAIL;
        p->predicted_class = (int)cls->i;
    } else if (cls->type != V_ABSENT && cls->type != V_NULL) {
        return SS_ERR_FAIL;
    }
    if (o->type == V_ABSENT || o->type == V_NULL)
        return 0;
    if (o->type != V_ARRAY)
        return SS_ERR_FAIL;
    if (o->n > d->outs_cap) {
        double *g = realloc(d->outs, o->n * sizeof(double));
        if (!g)
            return SS_ERR_FAIL;
        d->outs = g, d->outs_cap = o->n;
    }
    for (size_t k = 0; k < o->n; k++) {
        val_t item = {0};
        if (o->jarr) {
            json_val(json_array_get(o->jarr, k), &item);
        } else {
            avro_value_t e;
            avro_value_t arr = o->arr; /* the getters take a non-const value */
            if (avro_value_get_by_index(&arr, k, &e, NULL) == 0)
                avro_val(&e, &item, 1);
        }
        if ((item.type != V_INT && item.type != V_REAL) || !isfinite(item.num))
            return SS_ERR_FAIL;
        d->outs[k] = item.num;
    }
    p->outputs = d->outs, p->n_outputs = o->n;
    return 0;
}

static int pred_from(cmp_decoder_t *d, const val_t *v, cmp_pred_t *p) {
    const val_t *part = &v[F_SOURCE_PARTITION], *off = &v[F_SOURCE_OFFSET];
    if ((v[F_SCORE].type != V_INT && v[F_SCORE].type != V_REAL) || !isfinite(v[F_SCORE].num))
        return SS_ERR_FAIL;
    p->score = v[F_SCORE].num;
    if (decision_of(&v[F_DECISION], p) < 0 ||
        outputs_of(d, &v[F_OUTPUTS], &v[F_PREDICTED_CLASS], p) < 0)
        return SS_ERR_FAIL;
    p->threshold =
        v[F_THRESHOLD].type == V_INT || v[F_THRESHOLD].type == V_REAL ? v[F_THRESHOLD].num : NAN;
    if (part->type != V_INT || part->i < 0 || part->i > INT32_MAX || off->type != V_INT ||
        off->i < 0)
        return SS_ERR_FAIL;
    p->partition = (int32_t)part->i;
    p->offset = off->i;
    if (hash_of(&v[F_FEATURE_HASH], &p->fhash) || str_of(&v[F_CUSTOMER_ID], &p->customer_id) ||
        str_of(&v[F_MODEL_NAME], &p->model_name) ||
        str_of(&v[F_MODEL_VERSION], &p->model_version) ||
        str_of(&v[F_SOURCE_TOPIC], &p->source_topic) || time_of(&v[F_EVENT_TIME], &p->event_time) ||
        time_of(&v[F_SCORED_AT], &p->scored_at) || str_of(&v[F_ROUTE], &p->route))
        return SS_ERR_FAIL;
    if (p->route.n == 0) /* absent (an older record), null or empty: the default */
        p->route.p = "live", p->route.n = 4;
    return 0;
}

/* ---- the two encodings ------------------------------------------------------------------- */

static int decode_json(cmp_decoder_t *d, const void *buf, size_t len, cmp_pred_t *p) {
    json_error_t jerr;
    val_t v[F_COUNT];
    json_decref(d->json);
    d->json = json_loadb(buf, len, 0, &jerr);
    if (!json_is_object(d->json))
        return SS_ERR_FAIL;
    for (int i = 0; i < F_COUNT; i++) {
        const json_t *j = json_object_get(d->json, pred_keys[i]);
        v[i] = (val_t){.type = V_ABSENT};
        if (j)
            json_val(j, &v[i]);
    }
    /* a JSON decision is never absent: a record without the key is not a prediction */
    return v[F_DECISION].type == V_ABSENT ? SS_ERR_FAIL : pred_from(d, v, p);
}

/* Read the value with plan pl: 0 when it took every byte, 1 when bytes are left over, or
 * SS_ERR_FAIL. */
static int read_plan(cmp_decoder_t *d, plan_t *pl, const void *buf, size_t len) {
    char extra;
    if (!pl->iface || !pl->value.self)
        return SS_ERR_FAIL;
    avro_value_reset(&pl->value);
    avro_reader_memory_set_source(d->reader, buf, (int64_t)len);
    av.cap = 65536 + 32 * len, av.on = 1, av.n = 0;
    int rc = avro_value_read(d->reader, &pl->value);
    if (rc != 0) {
        avro_value_decref(&pl->value);
        pl->value.self = NULL;
    }
    av.on = 0, av.cap = SIZE_MAX;
    if (rc != 0) {
        for (size_t i = 0; i < av.n; i++)
            free(av.p[i]);
        if (avro_generic_value_new(pl->iface, &pl->value) != 0)
            pl->value.self = NULL;
        return SS_ERR_FAIL;
    }
    return avro_read(d->reader, &extra, 1) == 0; /* a byte left: not all taken */
}

/* The prediction in plan pl's value (read last). */
static int pred_of_plan(cmp_decoder_t *d, plan_t *pl, cmp_pred_t *p) {
    val_t v[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        avro_value_t f;
        v[i] = (val_t){.type = V_ABSENT};
        if (pl->idx[i] >= 0 &&
            avro_value_get_by_index(&pl->value, (size_t)pl->idx[i], &f, NULL) == 0)
            avro_val(&f, &v[i], 0);
    }
    return pred_from(d, v, p);
}

static int decode_avro(cmp_decoder_t *d, const void *buf, size_t len, cmp_pred_t *p) {
    int leftover = -1; /* the first plan that read a valid prediction with bytes left over */
    if (d->framed) {   /* magic byte 0 and the schema id: the body follows */
        if (len < 5 || ((const unsigned char *)buf)[0] != 0)
            return SS_ERR_FAIL;
        buf = (const unsigned char *)buf + 5;
        len -= 5;
    }
    for (int i = 0; i < d->n_plans; i++) {
        int rc = read_plan(d, &d->plan[i], buf, len);
        if (rc < 0 || (rc == 1 && leftover >= 0) || pred_of_plan(d, &d->plan[i], p) < 0)
            continue;
        if (rc == 0)
            return 0;
        leftover = i;
    }
    /* its value is as read: the plans after it read into values of their own */
    return leftover >= 0 ? pred_of_plan(d, &d->plan[leftover], p) : SS_ERR_FAIL;
}

int cmp_decode(cmp_decoder_t *d, int json, const void *buf, size_t len, cmp_pred_t *p) {
    return json ? decode_json(d, buf, len, p) : decode_avro(d, buf, len, p);
}
