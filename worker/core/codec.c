/* codec.c - framing, Avro decoding and schema resolution by field name.
 * Resolution is done here rather than with Avro C's resolved reader because that reader
 * rejects a reader field missing from the writer (it does not apply defaults), which is
 * exactly the evolution users need: a field removed upstream must read as its default.
 * Each writer schema gets a plan, computed once, from its fields to what we read. */
#include "codec.h"

#include <avro.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "registry.h"

/* How one writer value (or union branch) becomes a float. */
typedef enum { K_NULL = 0, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_BOOL, K_ENUM, K_BAD } kind_t;

typedef struct branch_plan {
    kind_t kind;
    int *symmap;  /* K_ENUM: writer symbol -> reader symbol index, -1 unknown */
    int n_symbols;
} branch_plan_t;

typedef struct field_plan {
    int windex;       /* writer field index, -1: absent from the writer */
    float absent;     /* value when absent: the reader default, or NaN */
    int is_union;
    int n_branches;
    branch_plan_t *branches; /* 1 when not a union */
} field_plan_t;

typedef struct writer_plan {
    int32_t id; /* schema id, -1 for raw */
    avro_schema_t schema;
    int cust_index, event_id_index, time_index;
    int cust_union, event_id_union, time_union; /* field is a union (nullable) */
    field_plan_t *features;
    /* per writer field, what it is to the reader: the direct read of a body walks these */
    size_t n_fields;
    avro_schema_t *ftypes; /* the field's type, links followed */
    unsigned char *froles; /* ROLE_* bits */
    int *ffirst;           /* first feature read from the field, -1 none */
    int *fnext;            /* per feature: the next feature read from the same field, -1 */
    int error;      /* the writer cannot be resolved against the reader */
    char errmsg[256];
} writer_plan_t;

enum { ROLE_CUST = 1, ROLE_EVENT_ID = 2, ROLE_TIME = 4 };

/* What the reader schema says of a feature field. */
typedef struct reader_field {
    const char *name;   /* event field name (after rename) */
    avro_type_t type;   /* non-null type */
    avro_schema_t enum_schema;
    float def;          /* reader default, NaN for null/none */
} reader_field_t;

/* A schema id the registry could not give: records with it are dead-lettered without
 * asking again until `until`. */
typedef struct miss {
    int32_t id;
    int rc; /* SS_DECODE_UNKNOWN_SCHEMA or SS_DECODE_REGISTRY_UNAVAILABLE */
    int64_t until;
    char msg[240];
} miss_t;

struct ss_codec {
    int framing;
    long max_bytes;
    avro_schema_t reader;
    reader_field_t *rfields;
    size_t n_features;
    char *cust_field, *event_id_field, *time_field;
    /* Writer plans: those of the config are added before any decoder exists; with a
     * registry, fetched ones are appended while decoders run. A plan never changes or moves
     * once added (the array holds pointers), so a decoder keeps its own pointers to them
     * and takes `lock` only for an id it has not seen. */
    pthread_mutex_t lock;       /* guards writers, n_writers, cap_writers, misses */
    pthread_mutex_t fetch_lock; /* one registry fetch at a time, without holding `lock` */
    writer_plan_t **writers;
    size_t n_writers, cap_writers;
    miss_t *misses;
    size_t n_misses;
    ss_registry_t *registry; /* not owned; NULL: only the configured schemas */
    long miss_ttl_ms;
    ss_metrics_t *stats;
};

/* A decoder's view of one writer plan: its own Avro value, reused for every record. */
typedef struct writer_state {
    int32_t id;
    const writer_plan_t *wp;
    avro_value_iface_t *iface;
    avro_value_t value;
} writer_state_t;

struct ss_decoder {
    ss_codec_t *codec;
    avro_reader_t reader;
    int direct; /* bodies read directly (default), else through Avro C's generic reader */
    char *ids;  /* the last record's customer and event ids, NUL-terminated */
    size_t ids_cap;
    writer_state_t *states; /* the plans this decoder has used, in order of first use */
    size_t n_states, cap_states, last;
};

const char *ss_decode_reason(int rc) {
    switch (rc) {
    case SS_DECODE_OK: return "ok";
    case SS_DECODE_TOO_LARGE: return "too_large";
    case SS_DECODE_BAD_MAGIC: return "bad_magic";
    case SS_DECODE_UNKNOWN_SCHEMA: return "unknown_schema";
    case SS_DECODE_BAD_AVRO: return "bad_avro";
    case SS_DECODE_NO_CUSTOMER_ID: return "no_customer_id";
    case SS_DECODE_BAD_TYPE: return "bad_type";
    case SS_DECODE_UNRESOLVABLE_SCHEMA: return "unresolvable_schema";
    case SS_DECODE_REGISTRY_UNAVAILABLE: return "registry_unavailable";
    }
    return "unknown";
}

avro_schema_t ss_schema_load(const char *path, const char *key, char *errstr, size_t errlen) {
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) {
        snprintf(errstr, errlen, "config: key '%s': cannot load schema '%s': %s (line %d)", key,
                 path, jerr.text, jerr.line);
        return NULL;
    }
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    avro_schema_t s = NULL;
    if (!text || avro_schema_from_json_length(text, strlen(text), &s) != 0) {
        snprintf(errstr, errlen, "config: key '%s': '%s' is not a valid Avro schema: %s", key,
                 path, avro_strerror());
        s = NULL;
    } else if (!is_avro_record(s)) {
        snprintf(errstr, errlen, "config: key '%s': schema '%s' is not a record", key, path);
        avro_schema_decref(s);
        s = NULL;
    }
    free(text);
    return s;
}

/* The non-null type of a field: T for T, T for ["null", T]; union = 1 if nullable. */
static avro_schema_t nonnull(avro_schema_t s, int *is_union, int *ok) {
    *ok = 1;
    *is_union = 0;
    if (!is_avro_union(s))
        return s;
    *is_union = 1;
    avro_schema_t found = NULL;
    for (size_t i = 0; i < avro_schema_union_size(s); i++) {
        avro_schema_t b = avro_schema_union_branch(s, (int)i);
        if (is_avro_null(b))
            continue;
        if (found)
            *ok = 0; /* more than one non-null branch */
        found = b;
    }
    return found;
}

static int is_numeric_type(avro_type_t t) {
    return t == AVRO_INT32 || t == AVRO_INT64 || t == AVRO_FLOAT || t == AVRO_DOUBLE ||
           t == AVRO_BOOLEAN || t == AVRO_ENUM;
}

static kind_t kind_of(avro_type_t t) {
    switch (t) {
    case AVRO_NULL: return K_NULL;
    case AVRO_INT32: return K_INT;
    case AVRO_INT64: return K_LONG;
    case AVRO_FLOAT: return K_FLOAT;
    case AVRO_DOUBLE: return K_DOUBLE;
    case AVRO_BOOLEAN: return K_BOOL;
    case AVRO_ENUM: return K_ENUM;
    default: return K_BAD;
    }
}

/* Avro's promotion rules, for a writer type read as a reader type. */
static int promotable(avro_type_t w, avro_type_t r) {
    if (w == r)
        return 1;
    switch (r) {
    case AVRO_INT64: return w == AVRO_INT32;
    case AVRO_FLOAT: return w == AVRO_INT32 || w == AVRO_INT64;
    case AVRO_DOUBLE: return w == AVRO_INT32 || w == AVRO_INT64 || w == AVRO_FLOAT;
    default: return 0;
    }
}

static int plan_branch(branch_plan_t *bp, avro_schema_t wb, const reader_field_t *rf) {
    avro_type_t wt = avro_typeof(wb);
    bp->kind = kind_of(wt);
    if (bp->kind == K_NULL)
        return 0;
    if (!promotable(wt, rf->type))
        return -1;
    if (bp->kind == K_ENUM) {
        /* symbols are matched by name; a symbol the reader lacks reads as missing */
        int n = avro_schema_enum_number_of_symbols(wb);
        bp->symmap = malloc((size_t)(n ? n : 1) * sizeof(int));
        if (!bp->symmap)
            return -1;
        bp->n_symbols = n;
        for (int i = 0; i < n; i++)
            bp->symmap[i] = avro_schema_enum_get_by_name(rf->enum_schema,
                                                         avro_schema_enum_get(wb, i));
    }
    return 0;
}

static void plan_error(writer_plan_t *wp, const char *fmt, const char *a, const char *b) {
    wp->error = 1;
    snprintf(wp->errmsg, sizeof(wp->errmsg), fmt, a, b);
}

static int id_field(writer_plan_t *wp, const char *name, int required, int *index, int *is_union,
                    int want_string) {
    *index = -1;
    *is_union = 0;
    if (!name || !*name)
        return 0;
    int idx = avro_schema_record_field_get_index(wp->schema, name);
    if (idx < 0) {
        if (required)
            plan_error(wp, "writer schema has no field '%s'%s", name, "");
        return required ? -1 : 0;
    }
    int ok;
    avro_schema_t t = nonnull(avro_schema_record_field_get_by_index(wp->schema, idx), is_union, &ok);
    avro_type_t ty = t ? avro_typeof(t) : AVRO_NULL;
    int good = ok && t && (want_string ? ty == AVRO_STRING : (ty == AVRO_INT64 || ty == AVRO_INT32));
    if (!good) {
        plan_error(wp, "writer field '%s' is not a %s", name, want_string ? "string" : "long");
        return -1;
    }
    *index = idx;
    return 0;
}

static void plan_free(writer_plan_t *wp, size_t n_features) {
    if (wp->features) {
        for (size_t f = 0; f < n_features; f++) {
            for (int b = 0; b < wp->features[f].n_branches; b++)
                free(wp->features[f].branches[b].symmap);
            free(wp->features[f].branches);
        }
        free(wp->features);
    }
    free(wp->ftypes);
    free(wp->froles);
    free(wp->ffirst);
    free(wp->fnext);
    if (wp->schema)
        avro_schema_decref(wp->schema);
}

static avro_schema_t follow(avro_schema_t t) {
    while (t && avro_typeof(t) == AVRO_LINK)
        t = avro_schema_link_target(t);
    return t;
}

/* Each writer field's role, for reading bodies directly (plan_writer succeeded). */
static int plan_fields(ss_codec_t *c, writer_plan_t *wp) {
    size_t n = avro_schema_record_size(wp->schema);
    wp->n_fields = n;
    wp->ftypes = calloc(n ? n : 1, sizeof(*wp->ftypes));
    wp->froles = calloc(n ? n : 1, 1);
    wp->ffirst = malloc((n ? n : 1) * sizeof(int));
    wp->fnext = malloc((c->n_features ? c->n_features : 1) * sizeof(int));
    if (!wp->ftypes || !wp->froles || !wp->ffirst || !wp->fnext)
        return -1;
    for (size_t i = 0; i < n; i++) {
        wp->ftypes[i] = follow(avro_schema_record_field_get_by_index(wp->schema, (int)i));
        wp->ffirst[i] = -1;
    }
    if (wp->cust_index >= 0)
        wp->froles[wp->cust_index] |= ROLE_CUST;
    if (wp->event_id_index >= 0)
        wp->froles[wp->event_id_index] |= ROLE_EVENT_ID;
    if (wp->time_index >= 0)
        wp->froles[wp->time_index] |= ROLE_TIME;
    for (size_t f = c->n_features; f-- > 0;) {
        int wi = wp->features[f].windex;
        wp->fnext[f] = wi >= 0 ? wp->ffirst[wi] : -1;
        if (wi >= 0)
            wp->ffirst[wi] = (int)f;
    }
    return 0;
}

static int plan_writer(ss_codec_t *c, writer_plan_t *wp) {
    wp->features = calloc(c->n_features, sizeof(field_plan_t));
    if (!wp->features)
        return -1;
    id_field(wp, c->cust_field, 1, &wp->cust_index, &wp->cust_union, 1);
    id_field(wp, c->event_id_field, 0, &wp->event_id_index, &wp->event_id_union, 1);
    id_field(wp, c->time_field, 0, &wp->time_index, &wp->time_union, 0);
    for (size_t f = 0; f < c->n_features && !wp->error; f++) {
        const reader_field_t *rf = &c->rfields[f];
        field_plan_t *fp = &wp->features[f];
        fp->absent = rf->def;
        fp->windex = avro_schema_record_field_get_index(wp->schema, rf->name);
        if (fp->windex < 0)
            continue; /* removed upstream: the reader's default */
        avro_schema_t ws = avro_schema_record_field_get_by_index(wp->schema, fp->windex);
        fp->is_union = is_avro_union(ws);
        fp->n_branches = fp->is_union ? (int)avro_schema_union_size(ws) : 1;
        fp->branches = calloc((size_t)fp->n_branches, sizeof(branch_plan_t));
        if (!fp->branches)
            return -1;
        for (int b = 0; b < fp->n_branches; b++) {
            avro_schema_t wb = fp->is_union ? avro_schema_union_branch(ws, b) : ws;
            if (plan_branch(&fp->branches[b], wb, rf) < 0) {
                plan_error(wp, "writer field '%s' has type '%s', which does not resolve to the reader's",
                           rf->name, avro_schema_type_name(wb));
                break;
            }
        }
    }
    return wp->error ? 0 : plan_fields(c, wp);
}

static int add_writer_schema(ss_codec_t *c, int32_t id, avro_schema_t s, const char *key,
                             const char *what, char *errstr, size_t errlen);

static int add_writer(ss_codec_t *c, int32_t id, const char *path, const char *key, char *errstr,
                      size_t errlen) {
    avro_schema_t s = ss_schema_load(path, key, errstr, errlen);
    if (!s)
        return -1;
    return add_writer_schema(c, id, s, key, path, errstr, errlen);
}

/* A plan for writer schema `s` (ownership taken), not yet added; NULL when out of memory. */
static writer_plan_t *new_plan(ss_codec_t *c, int32_t id, avro_schema_t s) {
    writer_plan_t *wp = calloc(1, sizeof(*wp));
    if (!wp) {
        avro_schema_decref(s);
        return NULL;
    }
    wp->id = id;
    wp->schema = s;
    if (plan_writer(c, wp) < 0) {
        plan_free(wp, c->n_features);
        free(wp);
        return NULL;
    }
    return wp;
}

/* Append a plan. @locks c->lock held by the caller once decoders may run */
static int append_plan(ss_codec_t *c, writer_plan_t *wp) {
    if (c->n_writers == c->cap_writers) {
        size_t cap = c->cap_writers ? c->cap_writers * 2 : 4;
        writer_plan_t **g = realloc(c->writers, cap * sizeof(*g));
        if (!g)
            return -1;
        c->writers = g;
        c->cap_writers = cap;
    }
    c->writers[c->n_writers++] = wp;
    if (c->stats)
        __atomic_store_n(&c->stats->writer_schemas, (long)c->n_writers, __ATOMIC_RELAXED);
    return 0;
}

static int add_writer_schema(ss_codec_t *c, int32_t id, avro_schema_t s, const char *key,
                             const char *what, char *errstr, size_t errlen) {
    writer_plan_t *wp = new_plan(c, id, s);
    if (!wp || append_plan(c, wp) < 0) {
        if (wp) {
            plan_free(wp, c->n_features);
            free(wp);
        }
        snprintf(errstr, errlen, "codec: out of memory");
        return -1;
    }
    if (wp->error) {
        /* every schema is known before scoring starts: one that cannot be read is an error */
        snprintf(errstr, errlen, "config: key '%s': schema '%s' cannot be resolved against "
                 "input.schema: %s", key, what, wp->errmsg);
        return -1;
    }
    return 0;
}

static int map_cb(void *opaque, const char *k, const char *v, char *errstr, size_t errlen) {
    ss_codec_t *c = opaque;
    int32_t id = (int32_t)strtol(k, NULL, 10);
    for (size_t i = 0; i < c->n_writers; i++) {
        if (c->writers[i]->id == id) {
            snprintf(errstr, errlen, "schema id %d appears twice", id);
            return -1;
        }
    }
    return add_writer(c, id, v, "input.schema.map", errstr, errlen);
}

typedef struct rename_ctx {
    ss_codec_t *codec;
    char *const *features;
    char **names; /* event field per feature (owned) */
} rename_ctx_t;

static int rename_cb(void *opaque, const char *k, const char *v, char *errstr, size_t errlen) {
    rename_ctx_t *rc = opaque;
    for (size_t f = 0; f < rc->codec->n_features; f++) {
        if (strcmp(rc->features[f], k) == 0) {
            free(rc->names[f]);
            rc->names[f] = strdup(v);
            return rc->names[f] ? 0 : -1;
        }
    }
    snprintf(errstr, errlen, "'%s' is not a feature of the model", k);
    return -1;
}

/* The reader default of a feature field, from the schema JSON (Avro C does not keep it). */
static float reader_default(json_t *fields, const char *name, avro_schema_t enum_schema) {
    size_t i;
    json_t *fj;
    json_array_foreach(fields, i, fj) {
        if (strcmp(json_string_value(json_object_get(fj, "name")) ?: "", name) != 0)
            continue;
        json_t *d = json_object_get(fj, "default");
        if (json_is_number(d))
            return (float)json_number_value(d);
        if (json_is_boolean(d))
            return json_is_true(d) ? 1.0f : 0.0f;
        if (json_is_string(d) && enum_schema) {
            int idx = avro_schema_enum_get_by_name(enum_schema, json_string_value(d));
            return idx >= 0 ? (float)idx : NAN;
        }
        return NAN;
    }
    return NAN;
}

static void free_strings(char **v, size_t n) {
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

ss_codec_t *ss_codec_new(const ss_config_t *cfg, char *const *features, size_t n_features,
                         char *errstr, size_t errlen) {
    return ss_codec_new_for_writer(cfg, features, n_features, NULL, NULL, errstr, errlen);
}

ss_codec_t *ss_codec_new_for_writer(const ss_config_t *cfg, char *const *features,
                                    size_t n_features, avro_schema_t writer, const char *what,
                                    char *errstr, size_t errlen) {
    ss_codec_t *c = calloc(1, sizeof(*c));
    json_t *rjson = NULL;
    rename_ctx_t rctx = {0};
    if (!c)
        goto oom;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->fetch_lock, NULL);
    c->framing = cfg->input_framing;
    c->max_bytes = cfg->input_max_bytes;
    c->n_features = n_features;
    c->cust_field = strdup(cfg->customer_id_field);
    c->event_id_field = strdup(cfg->event_id_field);
    c->time_field = strdup(cfg->event_time_field);
    c->reader = ss_schema_load(cfg->input_schema, "input.schema", errstr, errlen);
    if (!c->reader)
        goto fail;
    json_error_t jerr;
    rjson = json_load_file(cfg->input_schema, 0, &jerr);
    json_t *rfields_json = json_object_get(rjson, "fields");

    rctx.codec = c;
    rctx.features = features;
    rctx.names = calloc(n_features, sizeof(char *));
    c->rfields = calloc(n_features, sizeof(reader_field_t));
    if (!rctx.names || !c->rfields)
        goto oom;
    for (size_t f = 0; f < n_features; f++)
        if (!(rctx.names[f] = strdup(features[f])))
            goto oom;
    if (ss_config_parse_pairs(cfg->features_rename, "features.rename", rename_cb, &rctx, errstr,
                              errlen) < 0)
        goto fail;
    for (size_t f = 0; f < n_features; f++) {
        reader_field_t *rf = &c->rfields[f];
        int idx = avro_schema_record_field_get_index(c->reader, rctx.names[f]);
        if (idx < 0) {
            snprintf(errstr, errlen,
                     "config: key 'input.schema': model feature '%s' is not a field of '%s' "
                     "(map it with features.rename)",
                     rctx.names[f], cfg->input_schema);
            goto fail;
        }
        int is_union, ok;
        avro_schema_t t =
            nonnull(avro_schema_record_field_get_by_index(c->reader, idx), &is_union, &ok);
        if (!ok || !t || !is_numeric_type(avro_typeof(t))) {
            snprintf(errstr, errlen,
                     "config: key 'input.schema': field '%s' of '%s' feeds model feature '%s' "
                     "but is not int, long, float, double, boolean or enum (optionally nullable)",
                     rctx.names[f], cfg->input_schema, features[f]);
            goto fail;
        }
        rf->name = strdup(rctx.names[f]);
        rf->type = avro_typeof(t);
        rf->enum_schema = rf->type == AVRO_ENUM ? t : NULL;
        rf->def = reader_default(rfields_json, rf->name, rf->enum_schema);
    }
    if (avro_schema_record_field_get_index(c->reader, c->cust_field) < 0) {
        snprintf(errstr, errlen,
                 "config: key 'input.customer.id.field': '%s' is not a field of '%s'",
                 c->cust_field, cfg->input_schema);
        goto fail;
    }
    if (writer) {
        avro_schema_incref(writer);
        if (add_writer_schema(c, -1, writer, "input.schema", what ? what : "(data file)", errstr,
                              errlen) < 0)
            goto fail;
    } else if (c->framing == SS_FRAMING_RAW) {
        if (add_writer(c, -1, cfg->input_writer_schema, "input.writer.schema", errstr, errlen) < 0)
            goto fail;
    } else if (ss_config_parse_pairs(cfg->input_schema_map, "input.schema.map", map_cb, c, errstr,
                                     errlen) < 0) {
        goto fail;
    }
    free_strings(rctx.names, n_features);
    json_decref(rjson);
    return c;
oom:
    snprintf(errstr, errlen, "codec: out of memory");
fail:
    free_strings(rctx.names, n_features);
    json_decref(rjson);
    ss_codec_destroy(c);
    return NULL;
}

void ss_codec_destroy(ss_codec_t *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->n_writers; i++) {
        plan_free(c->writers[i], c->n_features);
        free(c->writers[i]);
    }
    free(c->writers);
    free(c->misses);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->fetch_lock);
    if (c->rfields)
        for (size_t f = 0; f < c->n_features; f++)
            free((char *)c->rfields[f].name);
    free(c->rfields);
    if (c->reader)
        avro_schema_decref(c->reader);
    free(c->cust_field);
    free(c->event_id_field);
    free(c->time_field);
    free(c);
}

size_t ss_codec_n_features(const ss_codec_t *c) { return c->n_features; }

void ss_codec_attach_registry(ss_codec_t *c, ss_registry_t *registry, long miss_ttl_ms,
                              ss_metrics_t *stats) {
    c->registry = registry;
    c->miss_ttl_ms = miss_ttl_ms;
    c->stats = stats;
    if (stats)
        __atomic_store_n(&stats->writer_schemas, (long)c->n_writers, __ATOMIC_RELAXED);
}

/* Give the decoder its own Avro value for plan wp. Returns its state or NULL. */
static writer_state_t *add_state(ss_decoder_t *d, const writer_plan_t *wp) {
    if (d->n_states == d->cap_states) {
        size_t cap = d->cap_states ? d->cap_states * 2 : 4;
        writer_state_t *g = realloc(d->states, cap * sizeof(*g));
        if (!g)
            return NULL;
        d->states = g;
        d->cap_states = cap;
    }
    writer_state_t *st = &d->states[d->n_states];
    memset(st, 0, sizeof(*st));
    st->id = wp->id;
    st->wp = wp;
    st->iface = avro_generic_class_from_schema(wp->schema);
    if (!st->iface)
        return NULL;
    if (avro_generic_value_new(st->iface, &st->value) != 0) {
        avro_value_iface_decref(st->iface);
        return NULL;
    }
    d->n_states++;
    return st;
}

ss_decoder_t *ss_decoder_new(ss_codec_t *c, char *errstr, size_t errlen) {
    ss_decoder_t *d = calloc(1, sizeof(*d));
    if (!d)
        goto oom;
    d->codec = c;
    d->direct = 1;
    d->reader = avro_reader_memory("", 0);
    if (!d->reader)
        goto oom;
    /* the schemas known now up front: nothing to allocate for them while scoring */
    pthread_mutex_lock(&c->lock);
    int ok = 1;
    for (size_t i = 0; i < c->n_writers && ok; i++)
        ok = add_state(d, c->writers[i]) != NULL;
    pthread_mutex_unlock(&c->lock);
    if (!ok) {
        snprintf(errstr, errlen, "codec: cannot create Avro value: %s", avro_strerror());
        ss_decoder_destroy(d);
        return NULL;
    }
    return d;
oom:
    snprintf(errstr, errlen, "codec: out of memory");
    ss_decoder_destroy(d);
    return NULL;
}

void ss_decoder_set_direct(ss_decoder_t *d, int direct) { d->direct = direct; }

void ss_decoder_destroy(ss_decoder_t *d) {
    if (!d)
        return;
    for (size_t i = 0; i < d->n_states; i++) {
        if (d->states[i].value.self)
            avro_value_decref(&d->states[i].value);
        avro_value_iface_decref(d->states[i].iface);
    }
    free(d->states);
    free(d->ids);
    if (d->reader)
        avro_reader_free(d->reader);
    free(d);
}

/* The value of a writer field, stepping into the current branch of a union.
 * Returns 0 with *is_null set, or -1. */
static int field_value(avro_value_t *rec, int index, int is_union, avro_value_t *out, int *branch,
                       int *is_null) {
    avro_value_t v;
    *is_null = 0;
    *branch = 0;
    if (avro_value_get_by_index(rec, (size_t)index, &v, NULL) != 0)
        return -1;
    if (is_union) {
        int disc;
        if (avro_value_get_discriminant(&v, &disc) != 0 ||
            avro_value_get_current_branch(&v, out) != 0)
            return -1;
        *branch = disc;
        *is_null = avro_value_get_type(out) == AVRO_NULL;
        return 0;
    }
    *out = v;
    return 0;
}

static int get_string(avro_value_t *rec, int index, int is_union, const char **s, size_t *len) {
    avro_value_t v;
    int branch, is_null;
    *s = NULL;
    *len = 0;
    if (index < 0)
        return 0;
    if (field_value(rec, index, is_union, &v, &branch, &is_null) != 0)
        return -1;
    if (is_null)
        return 0;
    size_t size;
    if (avro_value_get_string(&v, s, &size) != 0)
        return -1;
    *len = size ? size - 1 : 0; /* Avro C counts the NUL */
    return 0;
}

typedef struct raw {
    kind_t kind; /* K_NULL for null; K_BAD for a type that holds no number */
    int64_t i;   /* K_INT, K_LONG, K_BOOL, K_ENUM */
    double d;    /* K_DOUBLE */
    float f;     /* K_FLOAT (kept as read: a NaN's bits survive) */
    const char *s; /* AVRO_STRING */
    size_t slen;
} raw_t;

/* A writer value as a feature: ints, longs, floats, doubles and booleans as numbers, an enum
 * as its reader symbol's index (NaN for a symbol the reader lacks); +-inf, or a double beyond
 * float range, is not a usable value (NaN). */
static float raw_feature(const raw_t *r, const branch_plan_t *bp) {
    float v;
    switch (bp->kind) {
    case K_INT:
        v = (float)(int32_t)r->i;
        break;
    case K_LONG:
        v = (float)r->i;
        break;
    case K_FLOAT:
        v = r->f;
        break;
    case K_DOUBLE:
        v = (float)r->d;
        break;
    case K_BOOL:
        v = r->i ? 1.0f : 0.0f;
        break;
    case K_ENUM:
        v = r->i < 0 || r->i >= bp->n_symbols || bp->symmap[r->i] < 0 ? NAN
                                                                      : (float)bp->symmap[r->i];
        break;
    default:
        v = NAN;
    }
    return isinf(v) ? NAN : v;
}

/* One writer value (read by Avro C) as a feature, as raw_feature. */
static float feature_value(avro_value_t *v, const branch_plan_t *bp) {
    raw_t r;
    memset(&r, 0, sizeof(r));
    r.kind = bp->kind;
    int32_t i32 = 0;
    int b = 0;
    switch (bp->kind) {
    case K_INT:
        avro_value_get_int(v, &i32);
        r.i = i32;
        break;
    case K_LONG:
        avro_value_get_long(v, &r.i);
        break;
    case K_FLOAT:
        avro_value_get_float(v, &r.f);
        break;
    case K_DOUBLE:
        avro_value_get_double(v, &r.d);
        break;
    case K_BOOL:
        avro_value_get_boolean(v, &b);
        r.i = b;
        break;
    case K_ENUM:
        b = -1;
        avro_value_get_enum(v, &b);
        r.i = b;
        break;
    default:
        break;
    }
    return raw_feature(&r, bp);
}

/* SS_DECODE_OK when the event has a customer id, else why not. */
static int need_customer(const ss_codec_t *c, const ss_event_t *ev, char *errstr, size_t errlen) {
    if (ev->customer_id && ev->customer_id_len > 0)
        return SS_DECODE_OK;
    snprintf(errstr, errlen, "customer id field '%s' is null or empty", c->cust_field);
    return SS_DECODE_NO_CUSTOMER_ID;
}

/* ---- structural check of an Avro body before avro-c reads it ---------------------------
 * avro-c allocates whatever length a string, bytes or array claims before reading it, and
 * leaks that allocation when the read then fails: a few garbled records could exhaust
 * memory. So every body is first walked against its writer schema here, without allocating:
 * lengths must fit in the bytes that remain, union branches and enum indexes must exist,
 * counts of zero-size items are bounded, nesting is bounded. */
#define CHECK_MAX_DEPTH 64

static int read_varint(const unsigned char **p, const unsigned char *end, int64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ -(v & 1)); /* zigzag */
            return 0;
        }
    }
    return -1;
}

static int check_value(avro_schema_t s, const unsigned char **p, const unsigned char *end,
                       int depth) {
    int64_t n;
    if (depth > CHECK_MAX_DEPTH)
        return -1;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        if (*p >= end || **p > 1)
            return -1;
        (*p)++;
        return 0;
    case AVRO_INT32:
    case AVRO_INT64:
        return read_varint(p, end, &n);
    case AVRO_FLOAT:
    case AVRO_DOUBLE: {
        size_t size = avro_typeof(s) == AVRO_FLOAT ? 4 : 8;
        if ((size_t)(end - *p) < size)
            return -1;
        *p += size;
        return 0;
    }
    case AVRO_STRING:
    case AVRO_BYTES:
        if (read_varint(p, end, &n) < 0 || n < 0 || n > end - *p)
            return -1;
        *p += n;
        return 0;
    case AVRO_FIXED: {
        int64_t size = avro_schema_fixed_size(s);
        if (size < 0 || size > end - *p)
            return -1;
        *p += size;
        return 0;
    }
    case AVRO_ENUM:
        return read_varint(p, end, &n) < 0 || n < 0 ||
                       n >= avro_schema_enum_number_of_symbols(s)
                   ? -1
                   : 0;
    case AVRO_UNION:
        if (read_varint(p, end, &n) < 0 || n < 0 || n >= (int64_t)avro_schema_union_size(s))
            return -1;
        return check_value(avro_schema_union_branch(s, (int)n), p, end, depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (check_value(avro_schema_record_field_get_by_index(s, (int)i), p, end,
                            depth + 1) < 0)
                return -1;
        return 0;
    case AVRO_ARRAY:
    case AVRO_MAP: {
        avro_schema_t item = avro_typeof(s) == AVRO_ARRAY ? avro_schema_array_items(s)
                                                          : avro_schema_map_values(s);
        for (;;) {
            if (read_varint(p, end, &n) < 0)
                return -1;
            if (n == 0)
                return 0;
            if (n < 0) { /* negative count: a block byte size follows */
                int64_t bytes;
                if (n == INT64_MIN || read_varint(p, end, &bytes) < 0)
                    return -1;
                n = -n;
            }
            /* even zero-size items may not claim more than the bytes left, times 8 */
            if (n > (end - *p) * 8 + 8)
                return -1;
            for (int64_t i = 0; i < n; i++) {
                if (avro_typeof(s) == AVRO_MAP) {
                    int64_t klen;
                    if (read_varint(p, end, &klen) < 0 || klen < 0 || klen > end - *p)
                        return -1;
                    *p += klen;
                }
                if (check_value(item, p, end, depth + 1) < 0)
                    return -1;
            }
        }
    }
    case AVRO_LINK:
        return check_value(avro_schema_link_target(s), p, end, depth + 1);
    default:
        return -1;
    }
}

/* 0 when `len` bytes hold one value of `schema` (trailing bytes are allowed, as in Java). */
static int check_body(avro_schema_t schema, const unsigned char *p, size_t len) {
    return check_value(schema, &p, p + len, 0);
}

static int extract(ss_decoder_t *d, const writer_plan_t *wp, avro_value_t *rec, ss_event_t *ev,
                   float *features, char *errstr, size_t errlen);

/* ---- a body read directly, field by field, after check_body accepted it: the same event
 * and features as Avro C's reader followed by extract(), without building a value. */

static uint64_t load_le(const unsigned char *p, int n) {
    uint64_t u = 0;
    for (int i = n - 1; i >= 0; i--)
        u = (u << 8) | p[i];
    return u;
}

/* Read one value of type t at *p (already checked); strings and numbers are kept. */
static int read_raw(avro_schema_t t, const unsigned char **p, const unsigned char *end, raw_t *r) {
    memset(r, 0, sizeof(*r));
    r->kind = kind_of(avro_typeof(t));
    switch (avro_typeof(t)) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        r->i = *(*p)++;
        return 0;
    case AVRO_INT32: /* as Avro C: a varint beyond 32 bits is not an int */
        return read_varint(p, end, &r->i) < 0 || r->i < INT32_MIN || r->i > INT32_MAX ? -1 : 0;
    case AVRO_INT64:
    case AVRO_ENUM:
        return read_varint(p, end, &r->i);
    case AVRO_FLOAT: {
        uint32_t u = (uint32_t)load_le(*p, 4);
        memcpy(&r->f, &u, 4);
        *p += 4;
        return 0;
    }
    case AVRO_DOUBLE: {
        uint64_t u = load_le(*p, 8);
        memcpy(&r->d, &u, 8);
        *p += 8;
        return 0;
    }
    case AVRO_STRING: {
        int64_t n;
        if (read_varint(p, end, &n) < 0 || n < 0 || n > end - *p)
            return -1;
        r->s = (const char *)*p;
        r->slen = (size_t)n;
        *p += n;
        return 0;
    }
    default:
        r->kind = K_BAD;
        return check_value(t, p, end, 1); /* skipped */
    }
}

static int keep_ids(ss_decoder_t *d, ss_event_t *ev, const raw_t *cust, const raw_t *evid) {
    size_t need = cust->slen + evid->slen + 2;
    if (need > d->ids_cap) {
        char *g = realloc(d->ids, need * 2);
        if (!g)
            return -1;
        d->ids = g;
        d->ids_cap = need * 2;
    }
    if (cust->s) {
        memcpy(d->ids, cust->s, cust->slen);
        d->ids[cust->slen] = '\0';
        ev->customer_id = d->ids;
        ev->customer_id_len = cust->slen;
    }
    if (evid->s) {
        char *e = d->ids + cust->slen + 1;
        memcpy(e, evid->s, evid->slen);
        e[evid->slen] = '\0';
        ev->event_id = e;
        ev->event_id_len = evid->slen;
    }
    return 0;
}

static int decode_direct(ss_decoder_t *d, const writer_plan_t *wp, const unsigned char *p,
                         size_t len, ss_event_t *ev, float *features, char *errstr,
                         size_t errlen) {
    const ss_codec_t *c = d->codec;
    const unsigned char *end = p + len;
    raw_t cust = {0}, evid = {0};
    for (size_t f = 0; f < c->n_features; f++)
        features[f] = wp->features[f].windex < 0 ? wp->features[f].absent : NAN;
    for (size_t i = 0; i < wp->n_fields; i++) {
        avro_schema_t t = wp->ftypes[i];
        int64_t branch = 0;
        if (avro_typeof(t) == AVRO_UNION) {
            if (read_varint(&p, end, &branch) < 0)
                goto bad;
            t = follow(avro_schema_union_branch(t, (int)branch));
        }
        raw_t r;
        if (read_raw(t, &p, end, &r) < 0)
            goto bad;
        unsigned char role = wp->froles[i];
        if (role & ROLE_CUST)
            cust = r;
        if (role & ROLE_EVENT_ID)
            evid = r;
        if ((role & ROLE_TIME) && r.kind != K_NULL)
            ev->event_time = r.i;
        for (int f = wp->ffirst[i]; f >= 0; f = wp->fnext[f]) {
            const field_plan_t *fp = &wp->features[f];
            if (branch < 0 || branch >= fp->n_branches) {
                snprintf(errstr, errlen, "cannot read feature field '%s'", c->rfields[f].name);
                return SS_DECODE_BAD_AVRO;
            }
            features[f] = r.kind == K_NULL ? NAN : raw_feature(&r, &fp->branches[branch]);
        }
    }
    if (keep_ids(d, ev, &cust, &evid) < 0) {
        snprintf(errstr, errlen, "decoder: out of memory");
        return SS_DECODE_BAD_AVRO;
    }
    return need_customer(c, ev, errstr, errlen);
bad:
    snprintf(errstr, errlen, "Avro body does not match the writer schema");
    return SS_DECODE_BAD_AVRO;
}

/* @locks c->lock held by the caller */
static writer_plan_t *find_plan(const ss_codec_t *c, int32_t id) {
    for (size_t i = 0; i < c->n_writers; i++)
        if (c->writers[i]->id == id)
            return c->writers[i];
    return NULL;
}

/* @locks c->lock held by the caller */
static miss_t *find_miss(ss_codec_t *c, int32_t id) {
    for (size_t i = 0; i < c->n_misses; i++)
        if (c->misses[i].id == id)
            return &c->misses[i];
    return NULL;
}

/* @locks c->lock held by the caller */
static void remember_miss(ss_codec_t *c, int32_t id, int rc, const char *msg) {
    miss_t *m = find_miss(c, id);
    if (!m) {
        miss_t *g = realloc(c->misses, (c->n_misses + 1) * sizeof(*g));
        if (!g)
            return; /* not remembered: the next record asks again */
        c->misses = g;
        m = &c->misses[c->n_misses++];
        m->id = id;
    }
    m->rc = rc;
    m->until = ss_mono_ms() + c->miss_ttl_ms;
    snprintf(m->msg, sizeof(m->msg), "%s", msg);
}

static int decode_rc_of(int registry_rc) {
    switch (registry_rc) {
    case SS_ERR_NOT_FOUND: return SS_DECODE_UNKNOWN_SCHEMA;
    case SS_ERR_INVALID: return SS_DECODE_UNRESOLVABLE_SCHEMA;
    default: return SS_DECODE_REGISTRY_UNAVAILABLE;
    }
}

/* The plan of schema id `id`, fetched from the registry on first sight and kept for the life
 * of the process (a schema id never changes its schema). A failed fetch is remembered for
 * schema.registry.miss.ttl.ms. Returns the plan, or NULL with *rc and errstr.
 * @locks c->fetch_lock for the fetch, c->lock briefly */
static const writer_plan_t *fetch_plan(ss_codec_t *c, int32_t id, int *rc, char *errstr,
                                       size_t errlen) {
    pthread_mutex_lock(&c->fetch_lock);
    pthread_mutex_lock(&c->lock);
    const writer_plan_t *wp = find_plan(c, id); /* fetched meanwhile by another thread? */
    miss_t *m = wp ? NULL : find_miss(c, id);
    if (m && m->until > ss_mono_ms()) {
        *rc = m->rc;
        snprintf(errstr, errlen, "%s", m->msg);
        pthread_mutex_unlock(&c->lock);
        pthread_mutex_unlock(&c->fetch_lock);
        return NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (wp) {
        pthread_mutex_unlock(&c->fetch_lock);
        return wp;
    }
    char *text = NULL;
    avro_schema_t s = NULL;
    int rrc = ss_registry_schema_by_id(c->registry, id, &text, errstr, errlen);
    if (rrc == 0) {
        if (avro_schema_from_json_length(text, strlen(text), &s) != 0) {
            snprintf(errstr, errlen, "schema id %d from the registry is not a valid Avro schema: "
                     "%s", id, avro_strerror());
            rrc = SS_ERR_INVALID;
            s = NULL;
        } else if (!is_avro_record(s)) {
            snprintf(errstr, errlen, "schema id %d from the registry is not an Avro record", id);
            rrc = SS_ERR_INVALID;
            avro_schema_decref(s);
            s = NULL;
        }
    }
    free(text);
    pthread_mutex_lock(&c->lock);
    writer_plan_t *plan = NULL;
    if (s) {
        /* a schema that does not resolve against the reader gets a plan too, with its error:
         * that is permanent, its records are dead-lettered without asking again */
        plan = new_plan(c, id, s);
        if (plan && append_plan(c, plan) < 0) {
            plan_free(plan, c->n_features);
            free(plan);
            plan = NULL;
        }
        if (!plan) {
            snprintf(errstr, errlen, "schema id %d: out of memory", id);
            rrc = SS_ERR_NOMEM;
        } else {
            ss_log(plan->error ? SS_LOG_WARN : SS_LOG_INFO,
                   SS_FIELDS(SSF_INT("schema_id", id), SSF_BOOL("resolves", !plan->error)),
                   "writer schema %d fetched from the schema registry%s%s", id,
                   plan->error ? ": it does not resolve against input.schema: " : "",
                   plan->error ? plan->errmsg : "");
        }
    }
    if (!plan) {
        *rc = decode_rc_of(rrc);
        remember_miss(c, id, *rc, errstr);
    }
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->fetch_lock);
    return plan;
}

/* The decoder's state for schema id `id`: its own, else the codec's plan (from the config or
 * the registry) with a new Avro value. NULL with *rc and errstr. */
static writer_state_t *state_for(ss_decoder_t *d, int32_t id, int *rc, char *errstr,
                                 size_t errlen) {
    if (d->last < d->n_states && d->states[d->last].id == id)
        return &d->states[d->last];
    for (size_t i = 0; i < d->n_states; i++) {
        if (d->states[i].id == id) {
            d->last = i;
            return &d->states[i];
        }
    }
    ss_codec_t *c = d->codec;
    pthread_mutex_lock(&c->lock);
    const writer_plan_t *wp = find_plan(c, id);
    pthread_mutex_unlock(&c->lock);
    if (!wp && !c->registry) {
        *rc = SS_DECODE_UNKNOWN_SCHEMA;
        snprintf(errstr, errlen, "schema id %d is not in input.schema.map (and no "
                 "schema.registry.url is set)", id);
        return NULL;
    }
    if (!wp && !(wp = fetch_plan(c, id, rc, errstr, errlen)))
        return NULL;
    writer_state_t *st = add_state(d, wp);
    if (!st) {
        *rc = SS_DECODE_BAD_AVRO;
        snprintf(errstr, errlen, "codec: cannot create Avro value: %s", avro_strerror());
        return NULL;
    }
    d->last = d->n_states - 1;
    return st;
}

int ss_decoder_decode(ss_decoder_t *d, const void *value, size_t len, ss_event_t *ev,
                      float *features, char *errstr, size_t errlen) {
    const ss_codec_t *c = d->codec;
    const unsigned char *p = value;
    memset(ev, 0, sizeof(*ev));
    ev->event_time = -1;
    ev->schema_id = -1;
    if (!value && len) {
        snprintf(errstr, errlen, "null value");
        return SS_DECODE_BAD_AVRO;
    }
    if ((long)len > c->max_bytes) {
        snprintf(errstr, errlen, "value of %zu bytes exceeds input.max.bytes (%ld)", len,
                 c->max_bytes);
        return SS_DECODE_TOO_LARGE;
    }
    int32_t id = -1;
    if (c->framing == SS_FRAMING_CONFLUENT) {
        if (len < 5 || p[0] != 0) {
            snprintf(errstr, errlen, len < 5 ? "value shorter than the 5-byte wire-format header"
                                             : "first byte is not the wire-format magic byte 0");
            return SS_DECODE_BAD_MAGIC;
        }
        id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) |
                       p[4]);
        ev->schema_id = id;
        p += 5;
        len -= 5;
    }
    int rc = SS_DECODE_OK;
    writer_state_t *st = state_for(d, id, &rc, errstr, errlen);
    if (!st)
        return rc;
    const writer_plan_t *wp = st->wp;
    if (wp->error) {
        snprintf(errstr, errlen, "writer schema id %d does not resolve against input.schema: %s",
                 id, wp->errmsg);
        return SS_DECODE_UNRESOLVABLE_SCHEMA;
    }
    avro_value_t *rec = &st->value;
    if (check_body(wp->schema, p, len) < 0) {
        snprintf(errstr, errlen, "Avro body does not match the writer schema (truncated, or a "
                 "length, union branch or enum index out of range)");
        return SS_DECODE_BAD_AVRO;
    }
    if (d->direct)
        return decode_direct(d, wp, p, len, ev, features, errstr, errlen);
    avro_value_reset(rec);
    avro_reader_memory_set_source(d->reader, (const char *)p, (int64_t)len);
    if (avro_value_read(d->reader, rec) != 0) {
        snprintf(errstr, errlen, "Avro body does not decode with the writer schema: %s",
                 avro_strerror());
        return SS_DECODE_BAD_AVRO;
    }
    return extract(d, wp, rec, ev, features, errstr, errlen);
}

int ss_decoder_extract(ss_decoder_t *d, avro_value_t *rec, ss_event_t *ev, float *features,
                       char *errstr, size_t errlen) {
    memset(ev, 0, sizeof(*ev));
    ev->event_time = -1;
    ev->schema_id = -1;
    return extract(d, d->codec->writers[0], rec, ev, features, errstr, errlen);
}

static int extract(ss_decoder_t *d, const writer_plan_t *wp, avro_value_t *rec, ss_event_t *ev,
                   float *features, char *errstr, size_t errlen) {
    const ss_codec_t *c = d->codec;
    if (get_string(rec, wp->cust_index, wp->cust_union, &ev->customer_id, &ev->customer_id_len) <
            0 ||
        get_string(rec, wp->event_id_index, wp->event_id_union, &ev->event_id,
                   &ev->event_id_len) < 0) {
        snprintf(errstr, errlen, "cannot read the id fields");
        return SS_DECODE_BAD_AVRO;
    }
    int rc = need_customer(c, ev, errstr, errlen);
    if (rc != SS_DECODE_OK)
        return rc;
    if (wp->time_index >= 0) {
        avro_value_t v;
        int branch, is_null;
        if (field_value(rec, wp->time_index, wp->time_union, &v, &branch, &is_null) == 0 &&
            !is_null) {
            int64_t t = 0;
            int32_t t32 = 0;
            if (avro_value_get_type(&v) == AVRO_INT32 && avro_value_get_int(&v, &t32) == 0)
                t = t32;
            else
                avro_value_get_long(&v, &t);
            ev->event_time = t;
        }
    }
    for (size_t f = 0; f < c->n_features; f++) {
        const field_plan_t *fp = &wp->features[f];
        if (fp->windex < 0) {
            features[f] = fp->absent;
            continue;
        }
        avro_value_t v;
        int branch, is_null;
        if (field_value(rec, fp->windex, fp->is_union, &v, &branch, &is_null) != 0 ||
            branch < 0 || branch >= fp->n_branches) {
            snprintf(errstr, errlen, "cannot read feature field '%s'", c->rfields[f].name);
            return SS_DECODE_BAD_AVRO;
        }
        features[f] = is_null ? NAN : feature_value(&v, &fp->branches[branch]);
    }
    return SS_DECODE_OK;
}
