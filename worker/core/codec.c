/* codec.c - the codec shared by every decoder: the reader schema with the model's features,
 * and a plan per writer schema, from the config or fetched from the schema registry.
 * Resolution is done here rather than with Avro C's resolved reader because that reader
 * rejects a reader field missing from the writer (it does not apply defaults), which is
 * exactly the evolution users need: a field removed upstream must read as its default.
 * Each writer schema gets a plan, computed once, from its fields to what we read. */
#include "codec_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "strv.h"

extern const char ss_builtin_customer_event[], ss_builtin_prediction[];

json_t *ss_schema_json(const char *path, json_error_t *jerr) {
    static const struct {
        const char *path, *text;
    } builtin[] = {{"schemas/customer_event.avsc", ss_builtin_customer_event},
                   {"schemas/prediction.avsc", ss_builtin_prediction}};
    for (size_t i = 0; i < sizeof(builtin) / sizeof(*builtin); i++)
        if (strcmp(path, builtin[i].path) == 0 && access(path, F_OK) != 0 && errno == ENOENT)
            return json_loads(builtin[i].text, 0, jerr);
    return json_load_file(path, 0, jerr);
}

avro_schema_t ss_schema_load(const char *path, const char *key, char *errstr, size_t errlen) {
    json_error_t jerr;
    json_t *j = ss_schema_json(path, &jerr);
    if (!j) {
        snprintf(errstr, errlen, "config: key '%s': cannot load schema '%s': %s (line %d)", key,
                 path, jerr.text, jerr.line);
        return NULL;
    }
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    avro_schema_t s = NULL;
    if (!text || avro_schema_from_json_length(text, strlen(text), &s) != 0) {
        snprintf(errstr, errlen, "config: key '%s': '%s' is not a valid Avro schema: %s", key, path,
                 avro_strerror());
        s = NULL;
    } else if (!is_avro_record(s)) {
        snprintf(errstr, errlen, "config: key '%s': schema '%s' is not a record", key, path);
        avro_schema_decref(s);
        s = NULL;
    }
    free(text);
    return s;
}

int ss_avro_value_new(avro_schema_t schema, avro_value_iface_t **iface, avro_value_t *value) {
    memset(value, 0, sizeof(*value));
    *iface = avro_generic_class_from_schema(schema);
    if (*iface && avro_generic_value_new(*iface, value) == 0)
        return 0;
    ss_avro_value_release(*iface, value);
    *iface = NULL;
    return SS_ERR_FAIL;
}

void ss_avro_value_release(avro_value_iface_t *iface, avro_value_t *value) {
    if (!iface)
        return;
    if (value->self)
        avro_value_decref(value);
    avro_value_iface_decref(iface);
}

/* ---- writer plans */

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

static void plan_error(writer_plan_t *wp, const char *fmt, const char *a, const char *b) {
    wp->error = 1;
    snprintf(wp->errmsg, sizeof(wp->errmsg), fmt, a, b);
}

/* How writer branch wb feeds reader field rf. SS_ERR_NOMEM, or 0 with wp->error set when it
 * cannot. */
static int plan_branch(writer_plan_t *wp, branch_plan_t *bp, avro_schema_t wb,
                       const reader_field_t *rf) {
    avro_type_t wt = avro_typeof(wb);
    bp->kind = kind_of(wt);
    bp->cats = rf->cats;
    if (bp->kind == K_NULL)
        return 0;
    if (!promotable(wt, rf->type)) {
        plan_error(wp, "writer field '%s' has type '%s', which does not resolve to the reader's",
                   rf->name, avro_schema_type_name(wb));
        return 0;
    }
    if (bp->kind != K_ENUM)
        return 0;
    /* symbols are matched by name; a symbol the reader lacks reads as missing */
    int n = avro_schema_enum_number_of_symbols(wb);
    if (!(bp->symmap = malloc((size_t)(n ? n : 1) * sizeof(int))))
        return SS_ERR_NOMEM;
    bp->n_symbols = n;
    for (int i = 0; i < n; i++) {
        const char *sym = avro_schema_enum_get(wb, i);
        bp->symmap[i] = rf->cats ? ss__cat_lookup(rf->cats, sym, strlen(sym))
                                 : avro_schema_enum_get_by_name(rf->enum_schema, sym);
    }
    return 0;
}

/* The writer field `name` of an id (a string, or a long when !want_string); a required one
 * that is absent, or one of another type, sets wp->error. */
static void id_field(writer_plan_t *wp, const char *name, int required, int *index, int *is_union,
                     int want_string) {
    *index = -1;
    *is_union = 0;
    if (!name || !*name)
        return;
    int idx = avro_schema_record_field_get_index(wp->schema, name);
    if (idx < 0) {
        if (required)
            plan_error(wp, "writer schema has no field '%s'%s", name, "");
        return;
    }
    int ok;
    avro_schema_t t =
        nonnull(avro_schema_record_field_get_by_index(wp->schema, idx), is_union, &ok);
    avro_type_t ty = t ? avro_typeof(t) : AVRO_NULL;
    int good =
        ok && t && (want_string ? ty == AVRO_STRING : (ty == AVRO_INT64 || ty == AVRO_INT32));
    if (!good) {
        plan_error(wp, "writer field '%s' is not a %s", name, want_string ? "string" : "long");
        return;
    }
    *index = idx;
}

static void plan_destroy(writer_plan_t *wp, size_t n_features) {
    if (!wp)
        return;
    for (size_t f = 0; wp->features && f < n_features; f++) {
        for (int b = 0; b < wp->features[f].n_branches; b++)
            free(wp->features[f].branches[b].symmap);
        free(wp->features[f].branches);
    }
    free(wp->features);
    free(wp->ftypes);
    free(wp->froles);
    free(wp->ffirst);
    free(wp->fnext);
    if (wp->schema)
        avro_schema_decref(wp->schema);
    free(wp);
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
        return SS_ERR_NOMEM;
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

/* The plan of feature field rf in the writer: absent (its default), or one plan per branch. */
static int plan_feature(writer_plan_t *wp, field_plan_t *fp, const reader_field_t *rf) {
    fp->absent = rf->def;
    fp->windex = avro_schema_record_field_get_index(wp->schema, rf->name);
    if (fp->windex < 0)
        return 0; /* removed upstream: the reader's default */
    avro_schema_t ws = avro_schema_record_field_get_by_index(wp->schema, fp->windex);
    fp->is_union = is_avro_union(ws);
    fp->n_branches = fp->is_union ? (int)avro_schema_union_size(ws) : 1;
    if (!(fp->branches = calloc((size_t)fp->n_branches, sizeof(branch_plan_t))))
        return SS_ERR_NOMEM;
    for (int b = 0; b < fp->n_branches && !wp->error; b++) {
        avro_schema_t wb = fp->is_union ? avro_schema_union_branch(ws, b) : ws;
        if (plan_branch(wp, &fp->branches[b], wb, rf) < 0)
            return SS_ERR_NOMEM;
    }
    return 0;
}

/* 0 (with wp->error when the writer does not resolve), or SS_ERR_NOMEM. */
static int plan_writer(ss_codec_t *c, writer_plan_t *wp) {
    if (!(wp->features = calloc(c->n_features, sizeof(field_plan_t))))
        return SS_ERR_NOMEM;
    id_field(wp, c->cust_field, 1, &wp->cust_index, &wp->cust_union, 1);
    id_field(wp, c->event_id_field, 0, &wp->event_id_index, &wp->event_id_union, 1);
    id_field(wp, c->time_field, 0, &wp->time_index, &wp->time_union, 0);
    for (size_t f = 0; f < c->n_features && !wp->error; f++)
        if (plan_feature(wp, &wp->features[f], &c->rfields[f]) < 0)
            return SS_ERR_NOMEM;
    return wp->error ? 0 : plan_fields(c, wp);
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
        plan_destroy(wp, c->n_features);
        return NULL;
    }
    return wp;
}

/* Append a plan made by new_plan (ownership taken, also when it fails: SS_ERR_NOMEM).
 * @locks c->lock held by the caller once decoders may run */
static int append_plan(ss_codec_t *c, writer_plan_t *wp) {
    if (wp && c->n_writers == c->cap_writers) {
        size_t cap = c->cap_writers ? c->cap_writers * 2 : 4;
        writer_plan_t **g = realloc(c->writers, cap * sizeof(*g));
        if (g) {
            c->writers = g;
            c->cap_writers = cap;
        }
    }
    if (!wp || c->n_writers == c->cap_writers) {
        plan_destroy(wp, c->n_features);
        return SS_ERR_NOMEM;
    }
    c->writers[c->n_writers++] = wp;
    if (c->stats)
        __atomic_store_n(&c->stats->writer_schemas, (long)c->n_writers, __ATOMIC_RELAXED);
    return 0;
}

/* A configured writer schema (ownership taken), named `what` under `key` in messages: every
 * schema is known before scoring starts, so one that cannot be read is an error. */
static int add_writer_schema(ss_codec_t *c, int32_t id, avro_schema_t s, const char *key,
                             const char *what, char *errstr, size_t errlen) {
    writer_plan_t *wp = new_plan(c, id, s);
    if (append_plan(c, wp) < 0) {
        snprintf(errstr, errlen, "codec: out of memory");
        return SS_ERR_NOMEM;
    }
    if (!wp->error)
        return 0;
    snprintf(errstr, errlen,
             "config: key '%s': schema '%s' cannot be resolved against input.schema: %s", key, what,
             wp->errmsg);
    return SS_ERR_CONFIG;
}

static int add_writer(ss_codec_t *c, int32_t id, const char *path, const char *key, char *errstr,
                      size_t errlen) {
    avro_schema_t s = ss_schema_load(path, key, errstr, errlen);
    if (!s)
        return SS_ERR_CONFIG;
    return add_writer_schema(c, id, s, key, path, errstr, errlen);
}

static int map_cb(void *opaque, const char *k, const char *v, char *errstr, size_t errlen) {
    ss_codec_t *c = opaque;
    int32_t id = (int32_t)strtol(k, NULL, 10);
    for (size_t i = 0; i < c->n_writers; i++) {
        if (c->writers[i]->id == id) {
            snprintf(errstr, errlen, "schema id %d appears twice", id);
            return SS_ERR_CONFIG;
        }
    }
    return add_writer(c, id, v, "input.schema.map", errstr, errlen);
}

/* The writer schemas of the config: one given (a data file's), input.writer.schema for raw
 * framing, else input.schema.map. */
static int add_writers(ss_codec_t *c, const ss_config_t *cfg, avro_schema_t writer,
                       const char *what, char *errstr, size_t errlen) {
    if (writer) {
        avro_schema_incref(writer);
        return add_writer_schema(c, -1, writer, "input.schema", what ? what : "(data file)", errstr,
                                 errlen);
    }
    if (c->framing == SS_FRAMING_RAW)
        return add_writer(c, -1, cfg->input_writer_schema, "input.writer.schema", errstr, errlen);
    return ss_config_parse_pairs(cfg->input_schema_map, "input.schema.map", map_cb, c, errstr,
                                 errlen);
}

/* ---- the reader schema */

typedef struct renames {
    char *const *features;
    char **fields;
    size_t n;
} renames_t;

static int rename_cb(void *opaque, const char *k, const char *v, char *errstr, size_t errlen) {
    renames_t *r = opaque;
    size_t f = 0;
    while (f < r->n && strcmp(r->features[f], k) != 0)
        f++;
    if (f == r->n) {
        snprintf(errstr, errlen, "'%s' is not a feature of the model", k);
        return SS_ERR_CONFIG;
    }
    char *field = strdup(v);
    if (!field) {
        snprintf(errstr, errlen, "out of memory");
        return SS_ERR_NOMEM;
    }
    free(r->fields[f]);
    r->fields[f] = field;
    return 0;
}

int ss_codec_feature_fields(const ss_config_t *cfg, char *const *features, size_t n, char ***fields,
                            char *errstr, size_t errlen) {
    renames_t r = {.features = features, .fields = ss_strv_dup(features, n), .n = n};
    *fields = NULL;
    if (!r.fields) {
        snprintf(errstr, errlen, "codec: out of memory");
        return SS_ERR_NOMEM;
    }
    int rc = ss_config_parse_pairs(cfg->features_rename, "features.rename", rename_cb, &r, errstr,
                                   errlen);
    if (rc < 0) {
        ss_strv_free(r.fields, n);
        return SS_ERR_CONFIG;
    }
    *fields = r.fields;
    return 0;
}

/* The reader default of a feature field, from the schema JSON (Avro C does not keep it). */
static float reader_default(json_t *fields, const char *name, avro_schema_t enum_schema,
                            const cat_index_t *cats) {
    size_t i;
    json_t *fj;
    json_array_foreach(fields, i, fj) {
        if (strcmp(json_string_value(json_object_get(fj, "name")) ?: "", name) != 0)
            continue;
        json_t *d = json_object_get(fj, "default");
        if (cats && (json_is_string(d) || json_is_number(d))) {
            int code = json_is_string(d)
                           ? ss__cat_lookup(cats, json_string_value(d), json_string_length(d))
                           : ss__cat_lookup_number(cats, json_number_value(d));
            return code >= 0 ? (float)code : cats->unseen;
        }
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

/* What input.schema says of feature f, read from event field `field`. */
static int reader_field(ss_codec_t *c, const ss_config_t *cfg, json_t *rfields_json,
                        const char *feature, const char *field, reader_field_t *rf,
                        const ss_codec_cats_t *cats, size_t f, char *errstr, size_t errlen) {
    int named = cats && cats->categorical && cats->categorical[f] && cats->names && cats->names[f];
    int idx = avro_schema_record_field_get_index(c->reader, field);
    if (idx < 0) {
        snprintf(errstr, errlen,
                 "config: key 'input.schema': model feature '%s' is not a field of '%s' "
                 "(map it with features.rename)",
                 field, cfg->input_schema);
        return SS_ERR_CONFIG;
    }
    int is_union, ok;
    avro_schema_t t =
        nonnull(avro_schema_record_field_get_by_index(c->reader, idx), &is_union, &ok);
    if (!ok || !t ||
        !(is_numeric_type(avro_typeof(t)) || (named && avro_typeof(t) == AVRO_STRING))) {
        snprintf(errstr, errlen,
                 "config: key 'input.schema': field '%s' of '%s' feeds model feature '%s' "
                 "but is not int, long, float, double, boolean or enum%s (optionally nullable)",
                 field, cfg->input_schema, feature, named ? " or string (a category)" : "");
        return SS_ERR_CONFIG;
    }
    if (!(rf->name = strdup(field)) ||
        (named &&
         !(rf->cats = ss__cat_index_new(cats->names[f], cats->n_names[f], cats->unseen)))) {
        snprintf(errstr, errlen, "codec: out of memory");
        return SS_ERR_NOMEM;
    }
    c->any_cats |= named && cats->unseen == SS_UNSEEN_DEAD_LETTER;
    rf->type = avro_typeof(t);
    rf->enum_schema = rf->type == AVRO_ENUM ? t : NULL;
    rf->def = reader_default(rfields_json, rf->name, rf->enum_schema, rf->cats);
    return 0;
}

/* input.schema, and the reader field of every feature (after features.rename). */
static int load_reader(ss_codec_t *c, const ss_config_t *cfg, char *const *features,
                       const ss_codec_cats_t *cats, char *errstr, size_t errlen) {
    char **fields = NULL;
    json_t *rjson = NULL;
    int rc = SS_ERR_CONFIG;
    if (!(c->reader = ss_schema_load(cfg->input_schema, "input.schema", errstr, errlen)))
        return SS_ERR_CONFIG;
    json_error_t jerr;
    rjson = json_load_file(cfg->input_schema, 0, &jerr);
    if ((rc = ss_codec_feature_fields(cfg, features, c->n_features, &fields, errstr, errlen)) < 0)
        goto out;
    if (!(c->rfields = calloc(c->n_features ? c->n_features : 1, sizeof(reader_field_t)))) {
        snprintf(errstr, errlen, "codec: out of memory");
        rc = SS_ERR_NOMEM;
        goto out;
    }
    for (size_t f = 0; f < c->n_features && rc == 0; f++)
        rc = reader_field(c, cfg, json_object_get(rjson, "fields"), features[f], fields[f],
                          &c->rfields[f], cats, f, errstr, errlen);
    if (rc == 0 && avro_schema_record_field_get_index(c->reader, c->cust_field) < 0) {
        snprintf(errstr, errlen,
                 "config: key 'input.customer.id.field': '%s' is not a field of '%s'",
                 c->cust_field, cfg->input_schema);
        rc = SS_ERR_CONFIG;
    }
    int is_union, ok;
    avro_schema_t cid =
        rc == 0 ? nonnull(avro_schema_record_field_get(c->reader, c->cust_field), &is_union, &ok)
                : NULL;
    if (rc == 0 && (!ok || !cid || avro_typeof(cid) != AVRO_STRING)) {
        snprintf(errstr, errlen,
                 "config: key 'input.customer.id.field': field '%s' of '%s' is not a string",
                 c->cust_field, cfg->input_schema);
        rc = SS_ERR_CONFIG;
    }
out:
    ss_strv_free(fields, c->n_features);
    json_decref(rjson);
    return rc;
}

/* ---- the codec */

void ss_codec_destroy(ss_codec_t *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->n_writers; i++)
        plan_destroy(c->writers[i], c->n_features);
    free(c->writers);
    free(c->misses);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->fetched);
    for (size_t f = 0; c->rfields && f < c->n_features; f++) {
        free((char *)c->rfields[f].name);
        ss__cat_index_free(c->rfields[f].cats);
    }
    free(c->rfields);
    if (c->reader)
        avro_schema_decref(c->reader);
    free(c->cust_field);
    free(c->event_id_field);
    free(c->time_field);
    free(c);
}

ss_codec_t *ss_codec_new(const ss_config_t *cfg, char *const *features, size_t n_features,
                         char *errstr, size_t errlen) {
    return ss_codec_new_for_writer(cfg, features, n_features, NULL, NULL, errstr, errlen);
}

ss_codec_t *ss_codec_new_for_writer(const ss_config_t *cfg, char *const *features,
                                    size_t n_features, avro_schema_t writer, const char *what,
                                    char *errstr, size_t errlen) {
    return ss_codec_new_cats(cfg, features, n_features, NULL, writer, what, errstr, errlen);
}

ss_codec_t *ss_codec_new_cats(const ss_config_t *cfg, char *const *features, size_t n_features,
                              const ss_codec_cats_t *cats, avro_schema_t writer, const char *what,
                              char *errstr, size_t errlen) {
    ss_codec_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errlen, "codec: out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->fetched, NULL);
    c->framing = cfg->input_framing;
    c->max_bytes = cfg->input_max_bytes;
    c->n_features = n_features;
    c->cust_field = strdup(cfg->customer_id_field);
    c->event_id_field = strdup(cfg->event_id_field);
    c->time_field = strdup(cfg->event_time_field);
    if (!c->cust_field || !c->event_id_field || !c->time_field) {
        snprintf(errstr, errlen, "codec: out of memory");
        goto fail;
    }
    if (load_reader(c, cfg, features, cats, errstr, errlen) < 0 ||
        add_writers(c, cfg, writer, what, errstr, errlen) < 0)
        goto fail;
    return c;
fail:
    ss_codec_destroy(c);
    return NULL;
}

size_t ss_codec_n_features(const ss_codec_t *c) {
    return c->n_features;
}

void ss_codec_attach_registry(ss_codec_t *c, ss_registry_t *registry, long miss_ttl_ms,
                              ss_metrics_t *stats) {
    c->registry = registry;
    c->miss_ttl_ms = miss_ttl_ms;
    if (registry && !c->misses) /* none: every record of an unknown id asks (rate-limited) */
        c->misses = calloc(SS_CODEC_MISS_CAP, sizeof(*c->misses));
    c->stats = stats;
    if (stats)
        __atomic_store_n(&stats->writer_schemas, (long)c->n_writers, __ATOMIC_RELAXED);
}

/* ---- the registry-backed plan list */

/* @locks c->lock held by the caller */
static writer_plan_t *find_plan(const ss_codec_t *c, int32_t id) {
    for (size_t i = 0; i < c->n_writers; i++)
        if (c->writers[i]->id == id)
            return c->writers[i];
    return NULL;
}

/* The set of the miss table that holds id (a multiplicative hash: ids are often sequential). */
static miss_t *miss_set(ss_codec_t *c, int32_t id) {
    uint32_t h = (uint32_t)id * 2654435761u;
    return &c->misses[(h >> 16) % MISS_SETS * MISS_WAYS];
}

/* The miss of id that has not expired, or NULL. @locks c->lock held by the caller */
static const miss_t *fresh_miss(ss_codec_t *c, int32_t id) {
    if (!c->misses)
        return NULL;
    miss_t *set = miss_set(c, id);
    for (int w = 0; w < MISS_WAYS; w++)
        if (set[w].rc && set[w].id == id)
            return set[w].until > ss_mono_ms() ? &set[w] : NULL;
    return NULL;
}

/* Remember that id could not be fetched: in its own entry, a free or expired one of its set,
 * else the one that expires first. @locks c->lock held by the caller */
static void remember_miss(ss_codec_t *c, int32_t id, int rc, const char *msg) {
    if (!c->misses)
        return;
    int64_t now = ss_mono_ms();
    miss_t *set = miss_set(c, id), *m = &set[0];
    for (int w = 0; w < MISS_WAYS; w++) {
        if (set[w].rc && set[w].id == id) {
            m = &set[w];
            break;
        }
        if (!set[w].rc || set[w].until <= now || (m->rc && set[w].until < m->until))
            m = &set[w];
    }
    if (!m->rc)
        c->n_misses++;
    m->id = id;
    m->rc = rc;
    m->until = now + c->miss_ttl_ms;
    snprintf(m->msg, sizeof(m->msg), "%s", msg);
}

size_t ss_codec_miss_count(ss_codec_t *c) {
    pthread_mutex_lock(&c->lock);
    size_t n = c->n_misses;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* A registry answer (or why there is none) as the fate of the records that need it. */
static int decode_rc_of(int registry_rc) {
    switch (registry_rc) {
    case SS_ERR_NOT_FOUND: return SS_DECODE_UNKNOWN_SCHEMA;
    case SS_ERR_INVALID: return SS_DECODE_UNRESOLVABLE_SCHEMA;
    default: return SS_DECODE_REGISTRY_UNAVAILABLE;
    }
}

/* A named type defined twice in schema JSON `j` (its full name in `names`, the namespace
 * inherited `ns`): 1, else 0. Avro C refuses such a schema but leaks what it parsed of it, so
 * a registry's answer is checked before Avro C reads it. */
static int defines_a_name_twice(json_t *j, const char *ns, json_t *names, int depth) {
    if (depth > 64)
        return 1; /* deeper than any schema we read: refused as if broken */
    if (json_is_array(j)) {
        size_t i;
        json_t *b;
        json_array_foreach(j, i, b) {
            if (defines_a_name_twice(b, ns, names, depth + 1))
                return 1;
        }
        return 0;
    }
    if (!json_is_object(j))
        return 0;
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *own = json_string_value(json_object_get(j, "namespace"));
    const char *type = json_string_value(json_object_get(j, "type"));
    /* only a named type's namespace is inherited (Avro C ignores a field's) */
    if (name && type &&
        (!strcmp(type, "record") || !strcmp(type, "enum") || !strcmp(type, "fixed") ||
         !strcmp(type, "error"))) {
        if (own)
            ns = own;
        char full[1024];
        snprintf(full, sizeof(full), "%s%s%s", strchr(name, '.') || !ns ? "" : ns,
                 strchr(name, '.') || !ns || !*ns ? "" : ".", name);
        if (json_object_get(names, full) || json_object_set(names, full, json_true()) < 0)
            return 1;
    }
    static const char *const inner[] = {"type", "fields", "items", "values"};
    for (size_t k = 0; k < sizeof(inner) / sizeof(*inner); k++)
        if (defines_a_name_twice(json_object_get(j, inner[k]), ns, names, depth + 1))
            return 1;
    return 0;
}

int ss_schema_from_text(const char *text, size_t len, const char *what, avro_schema_t *out,
                        char *errstr, size_t errlen) {
    avro_schema_t s = NULL;
    *out = NULL;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, NULL), *names = json_object();
    int twice = !j || !names || defines_a_name_twice(j, NULL, names, 0);
    json_decref(j);
    json_decref(names);
    if (twice) {
        snprintf(errstr, errlen,
                 "%s is not a valid Avro schema: not JSON, nested too deep, or a named type "
                 "defined twice",
                 what);
        return SS_ERR_INVALID;
    }
    if (avro_schema_from_json_length(text, len, &s) != 0) {
        snprintf(errstr, errlen, "%s is not a valid Avro schema: %s", what, avro_strerror());
        return SS_ERR_INVALID;
    }
    if (!is_avro_record(s)) {
        snprintf(errstr, errlen, "%s is not an Avro record", what);
        avro_schema_decref(s);
        return SS_ERR_INVALID;
    }
    *out = s;
    return 0;
}

/* A writer schema's JSON text, as the registry gave it for `id`, as an Avro record schema
 * in *out: 0, or SS_ERR_INVALID with errstr. */
static int writer_from_text(int32_t id, const char *text, avro_schema_t *out, char *errstr,
                            size_t errlen) {
    char what[64];
    snprintf(what, sizeof(what), "schema id %d from the registry", id);
    return ss_schema_from_text(text, strlen(text), what, out, errstr, errlen);
}

int ss_codec_check_fetched(ss_codec_t *c, const char *schema, char *errstr, size_t errlen) {
    avro_schema_t s;
    if (writer_from_text(0, schema, &s, errstr, errlen) < 0)
        return SS_DECODE_UNRESOLVABLE_SCHEMA;
    writer_plan_t *wp = new_plan(c, 0, s);
    int rc = !wp         ? SS_DECODE_REGISTRY_UNAVAILABLE
             : wp->error ? SS_DECODE_UNRESOLVABLE_SCHEMA
                         : SS_DECODE_OK;
    if (!wp)
        snprintf(errstr, errlen, "codec: out of memory");
    else if (wp->error)
        snprintf(errstr, errlen, "%s", wp->errmsg);
    plan_destroy(wp, c->n_features);
    return rc;
}

/* Schema id `id` from the registry, as an Avro record schema in *out: 0, or a negative
 * SS_ERR_* of ss_registry_schema_by_id (SS_ERR_INVALID for one that is not a record).
 * Holds no lock. */
static int registry_schema(ss_codec_t *c, int32_t id, avro_schema_t *out, char *errstr,
                           size_t errlen) {
    char *text = NULL;
    *out = NULL;
    int rc = ss_registry_schema_by_id(c->registry, id, &text, errstr, errlen);
    if (rc == 0)
        rc = writer_from_text(id, text, out, errstr, errlen);
    free(text);
    return rc;
}

/* The plan of a schema fetched from the registry, appended to the list: a schema that does
 * not resolve against the reader gets a plan too, with its error: that is permanent, its
 * records are dead-lettered without asking again. NULL out of memory.
 * @locks c->lock held by the caller */
static writer_plan_t *add_fetched(ss_codec_t *c, int32_t id, avro_schema_t s) {
    writer_plan_t *plan = new_plan(c, id, s);
    if (append_plan(c, plan) < 0)
        return NULL;
    ss_log(plan->error ? SS_LOG_WARN : SS_LOG_INFO,
           SS_FIELDS(SSF_INT("schema_id", id), SSF_BOOL("resolves", !plan->error)),
           "writer schema %d fetched from the schema registry%s%s", id,
           plan->error ? ": it does not resolve against input.schema: " : "",
           plan->error ? plan->errmsg : "");
    return plan;
}

/* Is another thread fetching id now? @locks c->lock held by the caller */
static int being_fetched(const ss_codec_t *c, int32_t id) {
    for (const fetching_t *f = c->fetching; f; f = f->next)
        if (f->id == id)
            return 1;
    return 0;
}

/* Fetch id with c->lock released (`self` marks it as being fetched meanwhile), then add its
 * plan or remember the miss, and wake the threads waiting for it. Returns the plan, or NULL
 * with *rc and errstr. @locks c->lock held by the caller on entry and on return */
static writer_plan_t *fetch_unlocked(ss_codec_t *c, fetching_t *self, int *rc, char *errstr,
                                     size_t errlen) {
    int32_t id = self->id;
    self->next = c->fetching;
    c->fetching = self;
    pthread_mutex_unlock(&c->lock);
    avro_schema_t s = NULL;
    int rrc = registry_schema(c, id, &s, errstr, errlen);
    pthread_mutex_lock(&c->lock);
    fetching_t **pp = &c->fetching;
    while (*pp != self)
        pp = &(*pp)->next;
    *pp = self->next;
    writer_plan_t *plan = NULL;
    if (s && !(plan = add_fetched(c, id, s))) {
        snprintf(errstr, errlen, "schema id %d: out of memory", id);
        rrc = SS_ERR_NOMEM;
    }
    if (!plan) {
        *rc = decode_rc_of(rrc);
        remember_miss(c, id, *rc, errstr);
    }
    pthread_cond_broadcast(&c->fetched);
    return plan;
}

/* The plan of schema id `id`, fetched from the registry on first sight and kept for the life
 * of the process (a schema id never changes its schema). A failed fetch is remembered for
 * schema.registry.miss.ttl.ms; a fetch the rate limit refuses is not. Only threads needing
 * the id being fetched wait for that fetch. Returns the plan, or NULL with *rc and errstr.
 * @locks c->lock, released across the fetch */
static const writer_plan_t *fetch_plan(ss_codec_t *c, int32_t id, int *rc, char *errstr,
                                       size_t errlen) {
    fetching_t self = {.id = id};
    writer_plan_t *plan = NULL;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        const miss_t *m;
        if ((plan = find_plan(c, id)) != NULL)
            break;
        if ((m = fresh_miss(c, id)) != NULL) {
            *rc = m->rc;
            snprintf(errstr, errlen, "%s", m->msg);
            break;
        }
        if (being_fetched(c, id)) {
            pthread_cond_wait(&c->fetched, &c->lock);
            continue;
        }
        if (ss_registry_fetch_permit(c->registry, id, errstr, errlen) < 0) {
            *rc = SS_DECODE_REGISTRY_UNAVAILABLE;
            break;
        }
        plan = fetch_unlocked(c, &self, rc, errstr, errlen);
        break;
    }
    pthread_mutex_unlock(&c->lock);
    return plan;
}

int ss__codec_plan(ss_codec_t *c, int32_t id, const writer_plan_t **out, char *errstr,
                   size_t errlen) {
    int rc = SS_DECODE_OK;
    pthread_mutex_lock(&c->lock);
    *out = find_plan(c, id);
    pthread_mutex_unlock(&c->lock);
    if (*out)
        return SS_DECODE_OK;
    if (!c->registry) {
        snprintf(errstr, errlen,
                 "schema id %d is not in input.schema.map (and no schema.registry.url is set)", id);
        return SS_DECODE_UNKNOWN_SCHEMA;
    }
    if (!(*out = fetch_plan(c, id, &rc, errstr, errlen)))
        return rc;
    return SS_DECODE_OK;
}
