/* codec_int.h - the codec's insides, shared by its files and included by nothing else:
 * codec.c (the reader schema, writer plans and the registry-backed plan list), codec_decode.c
 * (decoders: framing, per-thread state and the generic reader), codec_check.c (the structural
 * check of bodies), codec_direct.c (the direct reader) and codec_cats.c (the categories of
 * categorical features, by name). What runs per field is static inline here, so each reader
 * keeps it in its own code. */
#ifndef SS_CODEC_INT_H
#define SS_CODEC_INT_H

#include <avro.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "error.h"
#include "metrics.h"
#include "registry.h"

/* How one writer value (or union branch) becomes a float. */
typedef enum {
    K_NULL = 0,
    K_INT,
    K_LONG,
    K_FLOAT,
    K_DOUBLE,
    K_BOOL,
    K_ENUM,
    K_STRING,
    K_BAD
} kind_t;

/* A categorical feature's categories as the model names them, sorted by name for lookup. */
typedef struct cat_entry {
    const char *name;
    size_t len;
    int code; /* the model's code: the category's index in its list */
} cat_entry_t;

typedef struct cat_index {
    char **names; /* owned, the model's order */
    size_t n;
    cat_entry_t *sorted;
    float unseen; /* what a category not among them becomes: NaN, n, or SS_CAT_UNSEEN */
} cat_index_t;

/* The value of a category the model was not trained with, when it is a dead letter: a NaN
 * with a payload of its own, found after the record is read (ss__unseen_category). */
#define SS_CAT_UNSEEN_BITS 0x7fc0ca7eu

static inline float ss__cat_unseen(void) {
    union {
        uint32_t u;
        float f;
    } v = {SS_CAT_UNSEEN_BITS};
    return v.f;
}

/* The index of categories `names` (copied; code i = names[i]), with what an unseen one
 * becomes (ss_unseen_t); NULL when out of memory. */
cat_index_t *ss__cat_index_new(char *const *names, size_t n, int unseen);
void ss__cat_index_free(cat_index_t *ci);

/* The code of category `s` (len bytes), or -1. */
int ss__cat_lookup(const cat_index_t *ci, const char *s, size_t len);

/* The code of a number named as a category ("%.17g", e.g. 7 -> "7"), or -1. */
int ss__cat_lookup_number(const cat_index_t *ci, double v);

typedef struct branch_plan {
    kind_t kind;
    int *symmap; /* K_ENUM: writer symbol -> reader symbol index (with cats: the model's code),
                    -1 unknown */
    int n_symbols;
    const cat_index_t *cats; /* the feature's categories by name, or NULL */
} branch_plan_t;

typedef struct field_plan {
    int windex;   /* writer field index, -1: absent from the writer */
    float absent; /* value when absent: the reader default, or NaN */
    int is_union;
    int n_branches;
    branch_plan_t *branches; /* 1 when not a union */
} field_plan_t;

enum { ROLE_CUST = 1, ROLE_EVENT_ID = 2, ROLE_TIME = 4 };

/* One writer schema resolved against the reader: computed once, never changed or moved. */
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
    int error;             /* the writer cannot be resolved against the reader */
    char errmsg[256];
} writer_plan_t;

/* What the reader schema says of a feature field. */
typedef struct reader_field {
    const char *name; /* event field name (after rename) */
    avro_type_t type; /* non-null type */
    avro_schema_t enum_schema;
    float def;         /* reader default, NaN for null/none */
    cat_index_t *cats; /* a categorical feature with category names: values mapped by name */
} reader_field_t;

/* A schema id the registry could not give: records with it are dead-lettered without
 * asking again until `until`. The misses are a fixed table of SS_CODEC_MISS_CAP entries
 * (about 256 KiB), in sets of MISS_WAYS by a hash of the id: a new miss takes a free or
 * expired entry of its set, else the one of the set that expires first. */
typedef struct miss {
    int32_t id;
    int rc; /* SS_DECODE_UNKNOWN_SCHEMA or SS_DECODE_REGISTRY_UNAVAILABLE; 0: entry free */
    int64_t until;
    char msg[240];
} miss_t;

#define MISS_WAYS 4
#define MISS_SETS (SS_CODEC_MISS_CAP / MISS_WAYS)

/* A fetch under way (on the fetching thread's stack): other threads needing the same id
 * wait for it rather than asking again. */
typedef struct fetching {
    int32_t id;
    struct fetching *next;
} fetching_t;

struct ss_codec {
    int framing;
    long max_bytes;
    avro_schema_t reader;
    reader_field_t *rfields;
    size_t n_features;
    char *cust_field, *event_id_field, *time_field;
    int any_cats; /* some feature maps categories by name, unseen ones dead letters */
    /* Writer plans: those of the config are added before any decoder exists; with a
     * registry, fetched ones are appended while decoders run. A plan never changes or moves
     * once added (the array holds pointers), so a decoder keeps its own pointers to them
     * and takes `lock` only for an id it has not seen. */
    pthread_mutex_t lock;   /* guards writers, n_writers, cap_writers, misses, n_misses, fetching;
                               never held across a registry request */
    pthread_cond_t fetched; /* with `lock`: a fetch is over (signalled to every waiter) */
    writer_plan_t **writers;
    size_t n_writers, cap_writers;
    miss_t *misses;          /* SS_CODEC_MISS_CAP entries once a registry is attached */
    size_t n_misses;         /* entries in use */
    fetching_t *fetching;    /* ids being fetched now, one node per fetching thread */
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

/* One writer value as read, before it becomes a feature. */
typedef struct raw {
    kind_t kind;   /* K_NULL for null; K_BAD for a type that holds no number */
    int64_t i;     /* K_INT, K_LONG, K_BOOL, K_ENUM */
    double d;      /* K_DOUBLE */
    float f;       /* K_FLOAT (kept as read: a NaN's bits survive) */
    const char *s; /* AVRO_STRING */
    size_t slen;
} raw_t;

static inline kind_t kind_of(avro_type_t t) {
    switch (t) {
    case AVRO_NULL: return K_NULL;
    case AVRO_INT32: return K_INT;
    case AVRO_INT64: return K_LONG;
    case AVRO_FLOAT: return K_FLOAT;
    case AVRO_DOUBLE: return K_DOUBLE;
    case AVRO_BOOLEAN: return K_BOOL;
    case AVRO_ENUM: return K_ENUM;
    case AVRO_STRING: return K_STRING;
    default: return K_BAD;
    }
}

static inline avro_schema_t follow(avro_schema_t t) {
    while (t && avro_typeof(t) == AVRO_LINK)
        t = avro_schema_link_target(t);
    return t;
}

/* A zigzag varint at *p, not past `end`: 0, or SS_ERR_FAIL when truncated or too long. */
static inline int read_varint(const unsigned char **p, const unsigned char *end, int64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return SS_ERR_FAIL;
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ -(v & 1)); /* zigzag */
            return 0;
        }
    }
    return SS_ERR_FAIL;
}

/* A writer value as a feature: ints, longs, floats, doubles and booleans as numbers, an enum
 * as its reader symbol's index (NaN for a symbol the reader lacks); +-inf, or a double beyond
 * float range, is not a usable value (NaN). */
static inline float raw_feature(const raw_t *r, const branch_plan_t *bp) {
    float v;
    if (bp->cats && bp->kind != K_ENUM) { /* a category named by a string or a number */
        int code = bp->kind == K_STRING   ? ss__cat_lookup(bp->cats, r->s, r->slen)
                   : bp->kind == K_DOUBLE ? ss__cat_lookup_number(bp->cats, r->d)
                   : bp->kind == K_FLOAT  ? ss__cat_lookup_number(bp->cats, r->f)
                   : bp->kind == K_BAD    ? -1
                                          : ss__cat_lookup_number(bp->cats, (double)r->i);
        return code >= 0 ? (float)code : bp->cats->unseen;
    }
    switch (bp->kind) {
    case K_INT: v = (float)(int32_t)r->i; break;
    case K_LONG: v = (float)r->i; break;
    case K_FLOAT: v = r->f; break;
    case K_DOUBLE: v = (float)r->d; break;
    case K_BOOL: v = r->i ? 1.0f : 0.0f; break;
    case K_ENUM:
        v = r->i < 0 || r->i >= bp->n_symbols || bp->symmap[r->i] < 0
                ? (bp->cats ? bp->cats->unseen : NAN)
                : (float)bp->symmap[r->i];
        break;
    default: v = NAN;
    }
    return isinf(v) ? NAN : v;
}

/* SS_DECODE_UNKNOWN_CATEGORY with errstr when a feature holds a category the model was not
 * trained with (features.unseen.category = dead_letter), else SS_DECODE_OK. */
int ss__unseen_category(const ss_codec_t *c, const float *features, char *errstr, size_t errlen);

/* SS_DECODE_OK when the event has a customer id, else why not. */
static inline int need_customer(const ss_codec_t *c, const ss_event_t *ev, char *errstr,
                                size_t errlen) {
    if (ev->customer_id && ev->customer_id_len > 0)
        return SS_DECODE_OK;
    snprintf(errstr, errlen, "customer id field '%s' is null or empty", c->cust_field);
    return SS_DECODE_NO_CUSTOMER_ID;
}

/* codec.c: the plan of writer schema `id`, configured or fetched from the registry (once).
 * SS_DECODE_OK with *out, or a negative ss_decode_rc_t with errstr.
 * @locks c->lock briefly, never across the fetch; waits for another thread's fetch of the
 * same id only */
int ss__codec_plan(ss_codec_t *c, int32_t id, const writer_plan_t **out, char *errstr,
                   size_t errlen);

/* codec_check.c: 0 when `len` bytes hold one value of `schema` (trailing bytes are allowed,
 * as in Java), else SS_ERR_FAIL. Allocates nothing. */
int ss__check_body(avro_schema_t schema, const unsigned char *p, size_t len);
/* The same, and in *steps (for tests) the work it took: values entered and blocks read. */
int ss__check_body_steps(avro_schema_t schema, const unsigned char *p, size_t len, int64_t *steps);

/* codec_check.c: step *p over one value of `s` at nesting `depth`: 0 or SS_ERR_FAIL. */
int ss__check_value(avro_schema_t s, const unsigned char **p, const unsigned char *end, int depth);

/* codec_direct.c: the event and features of a body that ss__check_body accepted, read
 * directly (the same as Avro C's reader followed by the generic extraction).
 * SS_DECODE_OK or a negative ss_decode_rc_t with errstr. @locality the thread that owns d */
int ss__decode_direct(ss_decoder_t *d, const writer_plan_t *wp, const unsigned char *p, size_t len,
                      ss_event_t *ev, float *features, char *errstr, size_t errlen);

#endif
