/* compare_decode.c - one prediction record, as the primary and the shadow write them: Avro of
 * output.schema (raw, or in the Confluent wire format) read with Avro C, or a JSON object
 * (output.format = json, the shadow's results file) read with jansson. Both become the same
 * list of field values, checked once.
 *
 * The field `route` ("live" | "canary", appended to the prediction schema after `degraded`)
 * is optional: a record without it (written before the field existed) reads as "live". A
 * topic holds both kinds while workers are upgraded, and output.schema may be either, so an
 * Avro value is read with output.schema, and when that does not take exactly the value's
 * bytes, with its variant: output.schema without a last field `route` when it has one, else
 * with that field appended. The value is the first read that takes all its bytes; failing
 * that, the first that succeeds (trailing bytes are ignored, as they always were). */
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
    F_COUNT
};
static const char *const pred_keys[F_COUNT] = {
    "customer_id",   "score",         "decision",     "threshold",
    "model_name",    "model_version", "source_topic", "source_partition",
    "source_offset", "event_time",    "scored_at",    "feature_hash",
    "route"};
static const int pred_required[] = {F_SCORE, F_DECISION, F_SOURCE_PARTITION, F_SOURCE_OFFSET,
                                    F_FEATURE_HASH};

/* A field's value, whichever the encoding. */
enum { V_ABSENT = 0, V_NULL, V_STR, V_INT, V_REAL, V_BOOL, V_OTHER };
typedef struct val {
    int type;
    const char *s; /* V_STR */
    size_t n;
    int64_t i;  /* V_INT, V_BOOL */
    double num; /* V_INT, V_REAL */
} val_t;

/* One writer schema an Avro value may have been written with, and a value of it. */
typedef struct plan {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    int idx[F_COUNT];
} plan_t;

struct cmp_decoder {
    plan_t plan[2]; /* output.schema; its variant with or without `route` (schema NULL: none) */
    avro_reader_t reader;
    int framed;   /* Avro values in the Confluent wire format (a registry, or output.schema.id) */
    json_t *json; /* the last JSON value decoded: its strings back the prediction */
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
    for (int i = 0; i < 2; i++) {
        ss_avro_value_release(d->plan[i].iface, &d->plan[i].value);
        if (d->plan[i].schema)
            avro_schema_decref(d->plan[i].schema);
    }
    free(d);
}

/* output.schema's variant: the same record less its last field when that is `route`, else
 * with a string field `route` appended (NULL: out of memory, or `route` elsewhere). */
static avro_schema_t route_variant(avro_schema_t s) {
    size_t n = avro_schema_record_size(s);
    int ri = avro_schema_record_field_get_index(s, "route");
    if (ri >= 0 && (size_t)ri != n - 1)
        return NULL;
    avro_schema_t v = avro_schema_record(avro_schema_name(s), avro_schema_namespace(s));
    int rc = v ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < (ri >= 0 ? n - 1 : n); i++)
        rc = avro_schema_record_field_append(v, avro_schema_record_field_name(s, (int)i),
                                             avro_schema_record_field_get_by_index(s, (int)i));
    if (rc == 0 && ri < 0) {
        avro_schema_t str = avro_schema_string();
        rc = str ? avro_schema_record_field_append(v, "route", str) : -1;
        if (str)
            avro_schema_decref(str);
    }
    if (rc != 0 && v) {
        avro_schema_decref(v);
        v = NULL;
    }
    return v;
}

/* The field indexes and a value of pl->schema (none: nothing to do). */
static int plan_init(plan_t *pl) {
    if (!pl->schema)
        return 0;
    for (int i = 0; i < F_COUNT; i++)
        pl->idx[i] = avro_schema_record_field_get_index(pl->schema, pred_keys[i]);
    return ss_avro_value_new(pl->schema, &pl->iface, &pl->value);
}

int cmp_decoder_new(const ss_config_t *cfg, int avro, cmp_decoder_t **out, char *errstr,
                    size_t errlen) {
    cmp_decoder_t *d = ss_zalloc(sizeof(*d), "compare", errstr, errlen);
    int rc = SS_ERR_CONFIG;
    *out = NULL;
    if (!d)
        return SS_ERR_NOMEM;
    if (!avro)
        goto done;
    d->framed = *cfg->registry_url || cfg->output_schema_id >= 0;
    avro_schema_t schema = ss_schema_load(cfg->output_schema, "output.schema", errstr, errlen);
    if (!(d->plan[0].schema = schema))
        goto cleanup;
    for (size_t i = 0; i < sizeof(pred_required) / sizeof(pred_required[0]); i++)
        if (avro_schema_record_field_get_index(schema, pred_keys[pred_required[i]]) < 0) {
            snprintf(errstr, errlen, "config: key 'output.schema': '%s' has no field '%s'",
                     cfg->output_schema, pred_keys[pred_required[i]]);
            goto cleanup;
        }
    avro_set_allocator(capped_alloc, NULL); /* frees what the default allocator made */
    /* no variant (`route` not last): the records have output.schema only */
    d->plan[1].schema = route_variant(schema);
    d->reader = avro_reader_memory("", 0);
    if (!d->reader || plan_init(&d->plan[0]) < 0 || plan_init(&d->plan[1]) < 0) {
        snprintf(errstr, errlen, "avro: %s", avro_strerror());
        rc = SS_ERR_NOMEM;
        goto cleanup;
    }
done:
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

static int pred_from(const val_t *v, cmp_pred_t *p) {
    const val_t *dec = &v[F_DECISION], *part = &v[F_SOURCE_PARTITION], *off = &v[F_SOURCE_OFFSET];
    if ((v[F_SCORE].type != V_INT && v[F_SCORE].type != V_REAL) || !isfinite(v[F_SCORE].num))
        return SS_ERR_FAIL;
    p->score = v[F_SCORE].num;
    if (dec->type != V_BOOL && !(dec->type == V_INT && (dec->i == 0 || dec->i == 1)))
        return SS_ERR_FAIL;
    p->decision = (int)dec->i;
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

static int decode_json(cmp_decoder_t *d, const void *buf, size_t len, val_t *v) {
    json_error_t jerr;
    json_decref(d->json);
    d->json = json_loadb(buf, len, 0, &jerr);
    if (!json_is_object(d->json))
        return SS_ERR_FAIL;
    for (int i = 0; i < F_COUNT; i++) {
        const json_t *j = json_object_get(d->json, pred_keys[i]);
        v[i].type = V_ABSENT;
        if (j)
            json_val(j, &v[i]);
    }
    return 0;
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

static int decode_avro(cmp_decoder_t *d, const void *buf, size_t len, val_t *v) {
    if (d->framed) { /* magic byte 0 and the schema id: the body follows */
        if (len < 5 || ((const unsigned char *)buf)[0] != 0)
            return SS_ERR_FAIL;
        buf = (const unsigned char *)buf + 5;
        len -= 5;
    }
    plan_t *pl = &d->plan[0];
    int rc = read_plan(d, pl, buf, len), rc1;
    if (rc != 0 && d->plan[1].schema && (rc1 = read_plan(d, &d->plan[1], buf, len)) >= 0 &&
        (rc1 == 0 || rc < 0))
        pl = &d->plan[1], rc = rc1;
    if (rc < 0)
        return SS_ERR_FAIL;
    for (int i = 0; i < F_COUNT; i++) {
        avro_value_t f;
        v[i].type = V_ABSENT;
        if (pl->idx[i] >= 0 &&
            avro_value_get_by_index(&pl->value, (size_t)pl->idx[i], &f, NULL) == 0)
            avro_val(&f, &v[i], 0);
    }
    return 0;
}

int cmp_decode(cmp_decoder_t *d, int json, const void *buf, size_t len, cmp_pred_t *p) {
    val_t v[F_COUNT];
    int rc = json ? decode_json(d, buf, len, v) : decode_avro(d, buf, len, v);
    return rc < 0 ? rc : pred_from(v, p);
}
