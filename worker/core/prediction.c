/* prediction.c - encoding prediction records. At start-up every field of output.schema is
 * checked against what streamscore writes into it and planned (a value, behind a union
 * branch or not; a default; a null); each record is then written straight into a buffer
 * reused by the thread, so no record can fail to fit the schema. */
#include "prediction.h"

#include <avro.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "log.h"

enum {
    P_EVENT_ID,
    P_CUSTOMER_ID,
    P_SCORE,
    P_DECISION,
    P_THRESHOLD,
    P_MODEL_NAME,
    P_MODEL_VERSION,
    P_SOURCE_TOPIC,
    P_SOURCE_PARTITION,
    P_SOURCE_OFFSET,
    P_EVENT_TIME,
    P_SCORED_AT,
    P_FEATURE_HASH,
    P_CONTRIBUTIONS,
    P_DEGRADED,
    P_ROUTE,
    P_OUTPUTS,
    P_PREDICTED_CLASS,
    P_CONTRIBUTIONS_BIAS,
    P_CONTRIBUTIONS_OUTPUT,
    P_COUNT
};

static const char *field_names[P_COUNT] = {
    "event_id",   "customer_id",   "score",           "decision",           "threshold",
    "model_name", "model_version", "source_topic",    "source_partition",   "source_offset",
    "event_time", "scored_at",     "feature_hash",    "contributions",      "degraded",
    "route",      "outputs",       "predicted_class", "contributions_bias", "contributions_output"};

/* Fields written null when a prediction has no value for them: nullable in output.schema
 * (always for the last ones; decision and threshold when the model may have no decision). */
static int optional_field(int k) {
    return k == P_CONTRIBUTIONS || k >= P_OUTPUTS;
}

/* The fields of a contribution record. */
enum { C_FEATURE, C_VALUE, C_CONTRIBUTION, C_OTHER };

/* One field of the output schema, in the schema's order: a value of the prediction
 * (which >= 0), behind union branch `branch` when the field is a union (else -1); or bytes
 * fixed at start-up (which < 0): a default, a null branch. */
typedef struct {
    int which;
    int64_t branch;
    int64_t null_branch; /* the union's null branch, -1 none */
    size_t off, len;     /* the fixed bytes, in consts */
} slot_t;

/* One field of the contribution record: C_*, its value branch (-1 none) and null branch. */
typedef struct {
    int which;
    int64_t branch, null_branch;
    size_t off, len; /* C_OTHER: its fixed bytes, in consts */
} citem_t;

typedef struct {
    unsigned char *p;
    size_t len, cap;
} bytes_t;

struct ss_encoder {
    int format;
    avro_schema_t schema;
    int32_t schema_id; /* >= 0: values framed in the Confluent wire format with this id */
    slot_t *slots;     /* one per field of the output schema */
    size_t n_slots;
    bytes_t consts;  /* every slot's fixed bytes */
    citem_t *citems; /* the contribution record's fields, in its order */
    size_t n_citems;
    int has_contribution; /* the record has its field contribution (explain.top.k needs it) */
    char *buf;
    size_t cap;
};

/* The Avro type streamscore writes in each field (contributions: null, see below). */
static avro_type_t written_type(int which) {
    switch (which) {
    case P_SCORE:
    case P_CONTRIBUTIONS_BIAS:
    case P_THRESHOLD: return AVRO_DOUBLE;
    case P_PREDICTED_CLASS:
    case P_CONTRIBUTIONS_OUTPUT: return AVRO_INT32;
    case P_OUTPUTS:
    case P_CONTRIBUTIONS: return AVRO_ARRAY;
    case P_DECISION:
    case P_DEGRADED: return AVRO_BOOLEAN;
    case P_SOURCE_PARTITION: return AVRO_INT32;
    case P_SOURCE_OFFSET:
    case P_EVENT_TIME:
    case P_SCORED_AT: return AVRO_INT64;
    default: return AVRO_STRING;
    }
}

static const char *written_name(avro_type_t t) {
    switch (t) {
    case AVRO_DOUBLE: return "double";
    case AVRO_BOOLEAN: return "boolean";
    case AVRO_INT32: return "int";
    case AVRO_INT64: return "long";
    case AVRO_ARRAY: return "an array";
    default: return "string";
    }
}

void ss_encoder_destroy(ss_encoder_t *e) {
    if (!e)
        return;
    if (e->schema)
        avro_schema_decref(e->schema);
    free(e->slots);
    free(e->citems);
    free(e->consts.p);
    free(e->buf);
    free(e);
}

ss_encoder_t *ss_encoder_new(const ss_config_t *cfg, char *errstr, size_t errlen) {
    return ss_encoder_new_format(cfg, cfg->output_format, errstr, errlen);
}

/* Avro binary, written directly: zig-zag varints, little-endian doubles, length-prefixed
 * strings; the same bytes as Avro C's writer. */
static unsigned char *put_long(unsigned char *d, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        *d++ = (unsigned char)(z | 0x80);
        z >>= 7;
    }
    *d++ = (unsigned char)z;
    return d;
}

static unsigned char *put_double(unsigned char *d, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    for (int i = 0; i < 8; i++)
        *d++ = (unsigned char)(u >> (8 * i));
    return d;
}

static unsigned char *put_string(unsigned char *d, const char *s, size_t n) {
    d = put_long(d, (int64_t)n);
    memcpy(d, s, n);
    return d + n;
}

/* ---- the fixed bytes: defaults and null branches, encoded once at start-up */

/* Room for `more` bytes at the end of `b`: 0, or SS_ERR_NOMEM. */
static int bytes_reserve(bytes_t *b, size_t more) {
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = (b->len + more) * 2;
    unsigned char *g = realloc(b->p, cap);
    if (!g)
        return SS_ERR_NOMEM;
    b->p = g;
    b->cap = cap;
    return 0;
}

static int bytes_long(bytes_t *b, int64_t v) {
    if (bytes_reserve(b, 10) < 0)
        return SS_ERR_NOMEM;
    b->len = (size_t)(put_long(b->p + b->len, v) - b->p);
    return 0;
}

static int bytes_raw(bytes_t *b, const void *s, size_t n) {
    if (bytes_reserve(b, n) < 0)
        return SS_ERR_NOMEM;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static avro_schema_t deref(avro_schema_t t) {
    while (t && is_avro_link(t))
        t = avro_schema_link_target(t);
    return t;
}

/* The bytes of a JSON default of Avro `bytes` or `fixed`: one byte per character,
 * U+0000-U+00FF, written to `out` when not NULL. Their number, or -1. */
static long latin1(const json_t *j, unsigned char *out) {
    const unsigned char *s = (const unsigned char *)json_string_value(j);
    size_t len = json_string_length(j);
    long n = 0;
    for (size_t i = 0; i < len; i++, n++) {
        unsigned c = s[i];
        if (c >= 0x80) {
            if ((c & 0xfe) != 0xc2 || i + 1 >= len || (s[i + 1] & 0xc0) != 0x80)
                return -1;
            c = ((c & 0x1f) << 6) | (s[++i] & 0x3fu);
        }
        if (out)
            out[n] = (unsigned char)c;
    }
    return n;
}

static int put_default(bytes_t *b, avro_schema_t t, const json_t *j, int depth);

/* A default of bytes or fixed `t`. */
static int put_default_bytes(bytes_t *b, avro_schema_t t, const json_t *j) {
    long n = json_is_string(j) ? latin1(j, NULL) : -1;
    if (n < 0 || (is_avro_fixed(t) && n != avro_schema_fixed_size(t)))
        return SS_ERR_CONFIG;
    if ((!is_avro_fixed(t) && bytes_long(b, n) < 0) || bytes_reserve(b, (size_t)n) < 0)
        return SS_ERR_NOMEM;
    b->len += (size_t)latin1(j, b->p + b->len);
    return 0;
}

/* A default of an array, map, record or union `t`. */
static int put_default_composite(bytes_t *b, avro_schema_t t, const json_t *j, int depth) {
    int rc = SS_ERR_CONFIG;
    size_t n;
    if (is_avro_array(t) || is_avro_map(t)) {
        if (is_avro_array(t) ? !json_is_array(j) : !json_is_object(j))
            return SS_ERR_CONFIG;
        n = is_avro_array(t) ? json_array_size(j) : json_object_size(j);
        if (n && (rc = bytes_long(b, (int64_t)n)) < 0)
            return rc;
        const char *k;
        json_t *v;
        size_t i;
        if (is_avro_array(t)) {
            json_array_foreach(j, i, v) {
                if ((rc = put_default(b, avro_schema_array_items(t), v, depth + 1)) < 0)
                    return rc;
            }
        } else {
            json_object_foreach((json_t *)j, k, v) {
                if ((rc = bytes_long(b, (int64_t)strlen(k))) < 0 ||
                    (rc = bytes_raw(b, k, strlen(k))) < 0 ||
                    (rc = put_default(b, avro_schema_map_values(t), v, depth + 1)) < 0)
                    return rc;
            }
        }
        return bytes_long(b, 0);
    }
    if (is_avro_record(t)) {
        if (!json_is_object(j))
            return SS_ERR_CONFIG;
        for (size_t i = 0; i < avro_schema_record_size(t); i++) {
            const json_t *v = json_object_get(j, avro_schema_record_field_name(t, (int)i));
            if (!v)
                return SS_ERR_CONFIG; /* a nested default must carry every field */
            avro_schema_t ft = avro_schema_record_field_get_by_index(t, (int)i);
            if ((rc = put_default(b, ft, v, depth + 1)) < 0)
                return rc;
        }
        return 0;
    }
    /* a union: the first branch the value is one of */
    size_t start = b->len;
    for (n = 0; is_avro_union(t) && n < avro_schema_union_size(t); n++) {
        b->len = start;
        if ((rc = bytes_long(b, (int64_t)n)) < 0)
            return rc;
        rc = put_default(b, avro_schema_union_branch(t, (int)n), j, depth + 1);
        if (rc != SS_ERR_CONFIG)
            return rc;
    }
    b->len = start;
    return SS_ERR_CONFIG;
}

/* The Avro binary of JSON default `j` of type `t`, appended to `b`: 0, SS_ERR_CONFIG when
 * `j` is not a value of `t`, or SS_ERR_NOMEM. */
static int put_default(bytes_t *b, avro_schema_t t, const json_t *j, int depth) {
    unsigned char tmp[8];
    t = deref(t);
    if (!t || depth > 32)
        return SS_ERR_CONFIG;
    switch (avro_typeof(t)) {
    case AVRO_NULL: return json_is_null(j) ? 0 : SS_ERR_CONFIG;
    case AVRO_BOOLEAN:
        return !json_is_boolean(j) ? SS_ERR_CONFIG : bytes_raw(b, json_is_true(j) ? "\1" : "", 1);
    case AVRO_INT32:
        if (!json_is_integer(j) || json_integer_value(j) < INT32_MIN ||
            json_integer_value(j) > INT32_MAX)
            return SS_ERR_CONFIG;
        return bytes_long(b, json_integer_value(j));
    case AVRO_INT64:
        return !json_is_integer(j) ? SS_ERR_CONFIG : bytes_long(b, json_integer_value(j));
    case AVRO_FLOAT: {
        if (!json_is_number(j))
            return SS_ERR_CONFIG;
        float f = (float)json_number_value(j);
        uint32_t u;
        memcpy(&u, &f, sizeof(u));
        for (int i = 0; i < 4; i++)
            tmp[i] = (unsigned char)(u >> (8 * i));
        return bytes_raw(b, tmp, 4);
    }
    case AVRO_DOUBLE:
        if (!json_is_number(j))
            return SS_ERR_CONFIG;
        put_double(tmp, json_number_value(j));
        return bytes_raw(b, tmp, 8);
    case AVRO_STRING:
        if (!json_is_string(j))
            return SS_ERR_CONFIG;
        if (bytes_long(b, (int64_t)json_string_length(j)) < 0)
            return SS_ERR_NOMEM;
        return bytes_raw(b, json_string_value(j), json_string_length(j));
    case AVRO_BYTES:
    case AVRO_FIXED: return put_default_bytes(b, t, j);
    case AVRO_ENUM: {
        int i = json_is_string(j) ? avro_schema_enum_get_by_name(t, json_string_value(j)) : -1;
        return i < 0 ? SS_ERR_CONFIG : bytes_long(b, i);
    }
    default: return put_default_composite(b, t, j, depth);
    }
}

/* ---- the plan: each field of the output schema checked against what streamscore writes */

/* `t` in a few words, as in a schema: "float", "record Foo", ["null", "string"]. */
static void describe(avro_schema_t t, char *out, size_t outlen) {
    t = deref(t);
    if (is_avro_record(t) || is_avro_enum(t) || is_avro_fixed(t)) {
        snprintf(out, outlen, "%s %s",
                 is_avro_record(t) ? "record"
                 : is_avro_enum(t) ? "enum"
                                   : "fixed",
                 avro_schema_name(t));
        return;
    }
    if (!is_avro_union(t)) {
        snprintf(out, outlen, "%s", avro_schema_type_name(t));
        return;
    }
    size_t n = (size_t)snprintf(out, outlen, "[");
    for (size_t i = 0; i < avro_schema_union_size(t) && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s\"%s\"", i ? ", " : "",
                              avro_schema_type_name(deref(avro_schema_union_branch(t, (int)i))));
    if (n < outlen)
        snprintf(out + n, outlen - n, "]");
}

static int mismatch(const char *name, avro_schema_t t, const char *writes, char *errstr,
                    size_t errlen) {
    char have[256];
    describe(t, have, sizeof(have));
    snprintf(errstr, errlen, "config: key 'output.schema': field '%s' is %s, streamscore writes %s",
             name, have, writes);
    return SS_ERR_CONFIG;
}

/* Where `t` holds a value of type `want` (or `alt`): 0 with *branch -1 when `t` is that type,
 * or the index of the union branch that is; SS_ERR_CONFIG when neither. */
static int find_type(avro_schema_t t, avro_type_t want, avro_type_t alt, int64_t *branch) {
    *branch = -1;
    if (avro_typeof(t) == want || avro_typeof(t) == alt)
        return 0;
    for (size_t i = 0; is_avro_union(t) && i < avro_schema_union_size(t); i++) {
        avro_type_t bt = avro_typeof(deref(avro_schema_union_branch(t, (int)i)));
        if (bt == want || bt == alt) {
            *branch = (int64_t)i;
            return 0;
        }
    }
    return SS_ERR_CONFIG;
}

/* A field of a nullable value that is not nullable. */
static int not_nullable(const char *name, const char *why, char *errstr, size_t errlen) {
    snprintf(errstr, errlen,
             "config: key 'output.schema': field '%s' must be nullable (a union with null): %s",
             name, why);
    return SS_ERR_CONFIG;
}

static int plan_other(ss_encoder_t *e, slot_t *sl, const char *name, avro_schema_t t,
                      const json_t *jfield, char *errstr, size_t errlen);

/* The item of contributions: {feature: string, value: double, contribution: double}, value
 * may be nullable (null: missing), any other field has a default or is nullable. */
static int check_contribution(ss_encoder_t *e, avro_schema_t r, const json_t *jitems, char *errstr,
                              size_t errlen) {
    static const char want_text[] =
        "an array of records {feature: string, value: double, contribution: double}";
    if (!is_avro_record(r))
        return mismatch("contributions", r, want_text, errstr, errlen);
    size_t n = avro_schema_record_size(r);
    free(e->citems);
    if (!(e->citems = calloc(n ? n : 1, sizeof(*e->citems)))) {
        snprintf(errstr, errlen, "encoder: out of memory");
        return SS_ERR_NOMEM;
    }
    e->n_citems = n;
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(r, (int)i);
        avro_schema_t t = deref(avro_schema_record_field_get_by_index(r, (int)i));
        citem_t *c = &e->citems[i];
        c->which = strcmp(name, "feature") == 0        ? C_FEATURE
                   : strcmp(name, "value") == 0        ? C_VALUE
                   : strcmp(name, "contribution") == 0 ? C_CONTRIBUTION
                                                       : C_OTHER;
        char path[300];
        snprintf(path, sizeof(path), "contributions.%s", name);
        find_type(t, AVRO_NULL, AVRO_NULL, &c->null_branch);
        if (c->which == C_OTHER) {
            const json_t *jf = NULL, *f;
            size_t k;
            json_array_foreach(json_object_get(jitems, "fields"), k, f) {
                if (strcmp(json_string_value(json_object_get(f, "name")) ?: "", name) == 0)
                    jf = f;
            }
            slot_t fixed;
            int rc = plan_other(e, &fixed, path, t, jf, errstr, errlen);
            if (rc < 0)
                return rc;
            c->off = fixed.off;
            c->len = fixed.len;
            continue;
        }
        avro_type_t want = c->which == C_FEATURE ? AVRO_STRING : AVRO_DOUBLE;
        if (find_type(t, want, want, &c->branch) < 0)
            return mismatch(path, t, written_name(want), errstr, errlen);
        seen |= 1 << c->which;
    }
    if (!(seen & (1 << C_FEATURE)) || !(seen & (1 << C_VALUE)))
        return mismatch("contributions", r, want_text, errstr, errlen);
    e->has_contribution = (seen & (1 << C_CONTRIBUTION)) != 0;
    return 0;
}

/* outputs and contributions: an array (of double; of contribution records) behind a union
 * with null. `jtype` is the field's JSON type (for the item record's defaults). */
static int plan_array(ss_encoder_t *e, slot_t *sl, int k, avro_schema_t t, const json_t *jtype,
                      char *errstr, size_t errlen) {
    const char *name = field_names[k];
    const char *want = k == P_OUTPUTS ? "null or an array of double"
                                      : "null or an array of records {feature: string, value: "
                                        "double, contribution: double}";
    sl->which = k;
    if (find_type(t, AVRO_ARRAY, AVRO_ARRAY, &sl->branch) < 0 ||
        find_type(t, AVRO_NULL, AVRO_NULL, &sl->null_branch) < 0 || sl->branch < 0)
        return mismatch(name, t, want, errstr, errlen);
    avro_schema_t arr = deref(avro_schema_union_branch(t, (int)sl->branch));
    avro_schema_t items = deref(avro_schema_array_items(arr));
    if (k == P_OUTPUTS)
        return avro_typeof(items) == AVRO_DOUBLE ? 0 : mismatch(name, t, want, errstr, errlen);
    const json_t *jitems = NULL, *br;
    size_t i;
    json_array_foreach(jtype, i, br) {
        if (json_is_object(br) && json_object_get(br, "items"))
            jitems = json_object_get(br, "items");
    }
    return check_contribution(e, items, jitems, errstr, errlen);
}

/* A field written from the prediction. A partition (int) also fits a long: same bytes. */
static int plan_value(slot_t *sl, int k, avro_schema_t t, char *errstr, size_t errlen) {
    avro_type_t want = written_type(k);
    sl->which = k;
    find_type(t, AVRO_NULL, AVRO_NULL, &sl->null_branch);
    if (!is_avro_union(t))
        sl->null_branch = -1;
    if (optional_field(k) && sl->null_branch < 0)
        return not_nullable(field_names[k], "predictions without it write null", errstr, errlen);
    if (find_type(t, want, k == P_SOURCE_PARTITION ? AVRO_INT64 : want, &sl->branch) == 0)
        return 0;
    return mismatch(field_names[k], t, written_name(want), errstr, errlen);
}

/* A slot of fixed bytes: the varint of `branch` (nothing when -1), or a default. */
static int put_const(ss_encoder_t *e, slot_t *sl, int64_t branch, const json_t *def,
                     avro_schema_t t) {
    sl->which = -1;
    sl->off = e->consts.len;
    int rc = def           ? put_default(&e->consts, t, def, 0)
             : branch >= 0 ? bytes_long(&e->consts, branch)
                           : 0;
    sl->len = e->consts.len - sl->off;
    return rc;
}

/* A field streamscore does not fill: written as its default, else as null. */
static int plan_other(ss_encoder_t *e, slot_t *sl, const char *name, avro_schema_t t,
                      const json_t *jfield, char *errstr, size_t errlen) {
    const json_t *def = json_object_get(jfield, "default");
    int64_t null_branch = -1;
    if (!def && !is_avro_null(t) && find_type(t, AVRO_NULL, AVRO_NULL, &null_branch) < 0) {
        snprintf(errstr, errlen,
                 "config: key 'output.schema': field '%s' is not one streamscore fills: give it "
                 "a default or make it nullable",
                 name);
        return SS_ERR_CONFIG;
    }
    int rc = put_const(e, sl, null_branch, def, t);
    if (rc == SS_ERR_NOMEM) {
        snprintf(errstr, errlen, "encoder: out of memory");
    } else if (rc < 0) {
        char type[256];
        describe(t, type, sizeof(type));
        snprintf(errstr, errlen,
                 "config: key 'output.schema': field '%s' is not one streamscore fills and its "
                 "default is not a valid %s",
                 name, type);
    }
    return rc;
}

/* Every field of the output schema, in order, with what is written into it; `fields` is the
 * schema's JSON "fields" (for the defaults, which Avro C does not keep). */
static int plan_fields(ss_encoder_t *e, const json_t *fields, char *errstr, size_t errlen) {
    size_t nf = avro_schema_record_size(e->schema);
    if (!(e->slots = calloc(nf ? nf : 1, sizeof(*e->slots)))) {
        snprintf(errstr, errlen, "encoder: out of memory");
        return SS_ERR_NOMEM;
    }
    for (size_t i = 0; i < nf; i++) {
        const char *name = avro_schema_record_field_name(e->schema, (int)i);
        avro_schema_t t = deref(avro_schema_record_field_get_by_index(e->schema, (int)i));
        const json_t *jf = json_array_get(fields, i);
        const char *jname = json_string_value(json_object_get(jf, "name"));
        if (!jname || strcmp(jname, name) != 0)
            jf = NULL; /* not expected: Avro C keeps the fields in order */
        int k = 0;
        while (k < P_COUNT && strcmp(name, field_names[k]) != 0)
            k++;
        slot_t *sl = &e->slots[e->n_slots++];
        int rc = k == P_CONTRIBUTIONS || k == P_OUTPUTS
                     ? plan_array(e, sl, k, t, json_object_get(jf, "type"), errstr, errlen)
                 : k < P_COUNT ? plan_value(sl, k, t, errstr, errlen)
                               : plan_other(e, sl, name, t, jf, errstr, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

ss_encoder_t *ss_encoder_new_format(const ss_config_t *cfg, int format, char *errstr,
                                    size_t errlen) {
    json_error_t jerr;
    json_t *j = NULL;
    ss_encoder_t *e = calloc(1, sizeof(*e));
    if (!e || !(e->buf = malloc(4096))) {
        snprintf(errstr, errlen, "encoder: out of memory");
        goto fail;
    }
    e->format = format;
    e->schema_id = -1;
    e->cap = 4096;
    if (!(e->schema = ss_schema_load(cfg->output_schema, "output.schema", errstr, errlen)))
        goto fail;
    if (!(j = ss_schema_json(cfg->output_schema, &jerr))) {
        snprintf(errstr, errlen, "config: key 'output.schema': cannot read '%s': %s",
                 cfg->output_schema, jerr.text);
        goto fail;
    }
    if (plan_fields(e, json_object_get(j, "fields"), errstr, errlen) < 0)
        goto fail;
    json_decref(j);
    return e;
fail:
    json_decref(j);
    ss_encoder_destroy(e);
    return NULL;
}

/* e->buf of at least `need` bytes: 0, or SS_ERR_NOMEM. */
static int reserve(ss_encoder_t *e, size_t need) {
    if (need > e->cap) {
        char *g = realloc(e->buf, need);
        if (!g)
            return SS_ERR_NOMEM;
        e->buf = g;
        e->cap = need;
    }
    return 0;
}

/* The wire-format header at the start of e->buf, when framed; returns its size. */
static size_t put_frame(ss_encoder_t *e) {
    if (e->schema_id < 0)
        return 0;
    uint32_t id = (uint32_t)e->schema_id; /* magic byte 0, the schema id big-endian */
    unsigned char h[5] = {0, (unsigned char)(id >> 24), (unsigned char)(id >> 16),
                          (unsigned char)(id >> 8), (unsigned char)id};
    memcpy(e->buf, h, 5);
    return 5;
}

/* Whether prediction p has a value for field k (else it is written null). */
static int has_value(const ss_prediction_t *p, int k) {
    switch (k) {
    case P_DECISION: return p->decision >= 0;
    case P_THRESHOLD: return !isnan(p->threshold);
    case P_OUTPUTS: return p->outputs != NULL;
    case P_PREDICTED_CLASS: return p->predicted_class >= 0;
    case P_CONTRIBUTIONS:
    case P_CONTRIBUTIONS_BIAS: return p->contributions != NULL;
    case P_CONTRIBUTIONS_OUTPUT: return p->contributions && p->contributions_output >= 0;
    default: return 1;
    }
}

/* The contributions array: its items as planned (e->citems). */
static unsigned char *put_contributions(const ss_encoder_t *e, unsigned char *d,
                                        const ss_prediction_t *p) {
    if (p->n_contributions)
        d = put_long(d, (int64_t)p->n_contributions);
    for (size_t j = 0; j < p->n_contributions; j++) {
        const ss_contribution_t *c = &p->contributions[j];
        for (size_t i = 0; i < e->n_citems; i++) {
            const citem_t *ci = &e->citems[i];
            if (ci->which == C_OTHER) {
                if (ci->len)
                    memcpy(d, e->consts.p + ci->off, ci->len);
                d += ci->len;
                continue;
            }
            if (ci->which == C_VALUE && isnan(c->value) && ci->null_branch >= 0) {
                d = put_long(d, ci->null_branch);
                continue;
            }
            if (ci->branch >= 0)
                d = put_long(d, ci->branch);
            d = ci->which == C_FEATURE ? put_string(d, c->feature, strlen(c->feature))
                : ci->which == C_VALUE ? put_double(d, c->value)
                                       : put_double(d, c->contribution);
        }
    }
    return put_long(d, 0);
}

/* Every field in the schema's order, as planned: no value can fail to fit its field. */
static int encode_avro(ss_encoder_t *e, const ss_prediction_t *p, size_t *len) {
    const char *str[P_COUNT] = {0};
    size_t slen[P_COUNT] = {0};
    int64_t num[P_COUNT] = {0};
    double dbl[P_COUNT] = {0};
    str[P_EVENT_ID] = p->event_id ? p->event_id : "";
    slen[P_EVENT_ID] = p->event_id ? p->event_id_len : 0;
    str[P_CUSTOMER_ID] = p->customer_id;
    slen[P_CUSTOMER_ID] = p->customer_id_len;
    str[P_MODEL_NAME] = p->model_name;
    str[P_MODEL_VERSION] = p->model_version;
    str[P_SOURCE_TOPIC] = p->source_topic;
    str[P_FEATURE_HASH] = p->feature_hash;
    str[P_ROUTE] = p->route ? p->route : "live";
    for (int k = P_MODEL_NAME; k <= P_ROUTE; k++)
        if (str[k])
            slen[k] = strlen(str[k]);
    num[P_DECISION] = p->decision > 0;
    num[P_DEGRADED] = p->degraded != 0;
    num[P_SOURCE_PARTITION] = p->source_partition;
    num[P_SOURCE_OFFSET] = p->source_offset;
    num[P_EVENT_TIME] = p->event_time;
    num[P_SCORED_AT] = p->scored_at;
    num[P_PREDICTED_CLASS] = p->predicted_class;
    num[P_CONTRIBUTIONS_OUTPUT] = p->contributions_output;
    dbl[P_SCORE] = p->score;
    dbl[P_THRESHOLD] = p->threshold;
    dbl[P_CONTRIBUTIONS_BIAS] = p->contributions_bias;
    /* per field at most a branch and a length or number (10 bytes each), then the string;
     * per output 8 bytes; per contribution its fixed bytes, its name and 3 x 10 + 16 */
    size_t need = 5 + e->consts.len + 20 * e->n_slots;
    for (int k = 0; k < P_COUNT; k++)
        need += slen[k];
    if (p->outputs)
        need += 8 * p->n_outputs;
    for (size_t j = 0; p->contributions && j < p->n_contributions; j++)
        need += e->consts.len + 10 * e->n_citems + 16 + strlen(p->contributions[j].feature);
    if (reserve(e, need) < 0)
        return SS_ERR_NOMEM;
    unsigned char *d = (unsigned char *)e->buf + put_frame(e);
    for (size_t i = 0; i < e->n_slots; i++) {
        const slot_t *sl = &e->slots[i];
        int k = sl->which;
        if (k < 0) {
            if (sl->len)
                memcpy(d, e->consts.p + sl->off, sl->len);
            d += sl->len;
            continue;
        }
        if (!has_value(p, k) && sl->null_branch >= 0) {
            d = put_long(d, sl->null_branch);
            continue;
        }
        if (sl->branch >= 0)
            d = put_long(d, sl->branch);
        switch (written_type(k)) {
        case AVRO_STRING: d = put_string(d, str[k], slen[k]); break;
        case AVRO_DOUBLE: d = put_double(d, dbl[k]); break;
        case AVRO_BOOLEAN: *d++ = (unsigned char)num[k]; break;
        case AVRO_ARRAY:
            if (k == P_CONTRIBUTIONS) {
                d = put_contributions(e, d, p);
                break;
            }
            if (p->n_outputs)
                d = put_long(d, (int64_t)p->n_outputs);
            for (size_t j = 0; j < p->n_outputs; j++)
                d = put_double(d, p->outputs[j]);
            d = put_long(d, 0);
            break;
        default: /* int and long */ d = put_long(d, num[k]); break;
        }
    }
    *len = (size_t)((char *)d - e->buf);
    return 0;
}

int ss_encoder_check_needs(const ss_encoder_t *e, const ss_encoder_needs_t *needs, const char *why,
                           char *errstr, size_t errlen) {
    if (needs->contributions && e->n_citems && !e->has_contribution) {
        snprintf(errstr, errlen,
                 "config: key 'output.schema': the records of field 'contributions' have no field "
                 "'contribution' (double), which explain.top.k writes");
        return SS_ERR_CONFIG;
    }
    for (size_t i = 0; needs->no_decision && i < e->n_slots; i++) {
        int k = e->slots[i].which;
        if ((k == P_DECISION || k == P_THRESHOLD) && e->slots[i].null_branch < 0)
            return not_nullable(field_names[k], why, errstr, errlen);
    }
    return 0;
}

void ss_encoder_set_schema_id(ss_encoder_t *e, int32_t id) {
    if (e->format == SS_FORMAT_AVRO)
        e->schema_id = id;
}

void ss_encoder_schema_fullname(const ss_encoder_t *e, char *out, size_t outlen) {
    const char *ns = avro_schema_namespace(e->schema);
    snprintf(out, outlen, "%s%s%s", ns && *ns ? ns : "", ns && *ns ? "." : "",
             avro_schema_name(e->schema));
}

static void put_str(char *dst, size_t cap, size_t *n, const char *k, const char *s, size_t slen) {
    *n += (size_t)snprintf(dst + *n, cap - *n, "\"%s\":\"", k);
    ss_json_escape(dst, cap - 4, n, s, slen);
    *n += (size_t)snprintf(dst + *n, cap - *n, "\",");
}

/* A double as JSON: shortest round trip, null when not finite. */
static void put_num(char *b, size_t cap, size_t *n, double v) {
    *n += (size_t)(isfinite(v) ? snprintf(b + *n, cap - *n, "%.17g", v)
                               : snprintf(b + *n, cap - *n, "null"));
}

static void put_json_extra(const ss_prediction_t *p, char *b, size_t cap, size_t *n) {
    *n += (size_t)snprintf(b + *n, cap - *n, ",\"outputs\":%s", p->outputs ? "[" : "null");
    for (size_t j = 0; p->outputs && j < p->n_outputs; j++) {
        if (j)
            b[(*n)++] = ',';
        put_num(b, cap, n, p->outputs[j]);
    }
    if (p->outputs)
        b[(*n)++] = ']';
    *n += (size_t)(p->predicted_class >= 0
                       ? snprintf(b + *n, cap - *n, ",\"predicted_class\":%d", p->predicted_class)
                       : snprintf(b + *n, cap - *n, ",\"predicted_class\":null"));
    *n += (size_t)snprintf(b + *n, cap - *n, ",\"contributions\":%s",
                           p->contributions ? "[" : "null");
    for (size_t j = 0; p->contributions && j < p->n_contributions; j++) {
        const ss_contribution_t *c = &p->contributions[j];
        *n += (size_t)snprintf(b + *n, cap - *n, "%s{", j ? "," : "");
        put_str(b, cap, n, "feature", c->feature, strlen(c->feature));
        *n += (size_t)snprintf(b + *n, cap - *n, "\"value\":");
        put_num(b, cap, n, c->value);
        *n += (size_t)snprintf(b + *n, cap - *n, ",\"contribution\":");
        put_num(b, cap, n, c->contribution);
        b[(*n)++] = '}';
    }
    if (p->contributions)
        b[(*n)++] = ']';
    *n += (size_t)snprintf(b + *n, cap - *n, ",\"contributions_bias\":");
    if (p->contributions)
        put_num(b, cap, n, p->contributions_bias);
    else
        *n += (size_t)snprintf(b + *n, cap - *n, "null");
    *n += (size_t)(p->contributions && p->contributions_output >= 0
                       ? snprintf(b + *n, cap - *n, ",\"contributions_output\":%d",
                                  p->contributions_output)
                       : snprintf(b + *n, cap - *n, ",\"contributions_output\":null"));
}

static int encode_json(ss_encoder_t *e, const ss_prediction_t *p, size_t *len) {
    size_t need = 1024 + 6 * (p->event_id_len + p->customer_id_len + strlen(p->source_topic) +
                              strlen(p->model_name) + strlen(p->model_version));
    if (p->outputs)
        need += 26 * p->n_outputs;
    for (size_t j = 0; p->contributions && j < p->n_contributions; j++)
        need += 96 + 6 * strlen(p->contributions[j].feature);
    if (reserve(e, need) < 0)
        return SS_ERR_NOMEM;
    char *b = e->buf;
    size_t n = 1;
    b[0] = '{';
    put_str(b, e->cap, &n, "event_id", p->event_id ? p->event_id : "", p->event_id_len);
    put_str(b, e->cap, &n, "customer_id", p->customer_id, p->customer_id_len);
    n += (size_t)snprintf(b + n, e->cap - n,
                          "\"score\":%.17g,\"decision\":%s,\"threshold\":", p->score,
                          p->decision < 0 ? "null"
                          : p->decision   ? "true"
                                          : "false");
    put_num(b, e->cap, &n, p->threshold);
    b[n++] = ',';
    put_str(b, e->cap, &n, "model_name", p->model_name, strlen(p->model_name));
    put_str(b, e->cap, &n, "model_version", p->model_version, strlen(p->model_version));
    put_str(b, e->cap, &n, "source_topic", p->source_topic, strlen(p->source_topic));
    n += (size_t)snprintf(b + n, e->cap - n,
                          "\"source_partition\":%d,\"source_offset\":%lld,\"event_time\":%lld,"
                          "\"scored_at\":%lld,\"feature_hash\":\"%s\","
                          "\"degraded\":%s,\"route\":\"%s\"",
                          p->source_partition, (long long)p->source_offset,
                          (long long)p->event_time, (long long)p->scored_at, p->feature_hash,
                          p->degraded ? "true" : "false", p->route ? p->route : "live");
    put_json_extra(p, b, e->cap, &n);
    b[n++] = '}';
    *len = n;
    return 0;
}

int ss_encoder_encode(ss_encoder_t *e, const ss_prediction_t *p, const void **out, size_t *len,
                      char *errstr, size_t errlen) {
    int rc = e->format == SS_FORMAT_JSON ? encode_json(e, p, len) : encode_avro(e, p, len);
    if (rc < 0) {
        snprintf(errstr, errlen, "encoding the prediction: %s",
                 rc == SS_ERR_NOMEM ? "out of memory" : "cannot write the value");
        return rc;
    }
    *out = e->buf;
    return 0;
}
