/* codec_decode.c - decoders: one per thread, each with its own Avro values and buffers, so a
 * record is decoded without allocating. The framing (raw or Confluent wire format) is read
 * here, the body checked (codec_check.c), then read directly (codec_direct.c) or, for tests
 * and the offline tools, through Avro C's generic reader and the extraction below. */
#include "codec_int.h"

#include <stdlib.h>
#include <string.h>

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
    case SS_DECODE_UNKNOWN_CATEGORY: return "unknown_category";
    }
    return "unknown";
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
    if (ss_avro_value_new(wp->schema, &st->iface, &st->value) < 0)
        return NULL;
    d->n_states++;
    return st;
}

void ss_decoder_destroy(ss_decoder_t *d) {
    if (!d)
        return;
    for (size_t i = 0; i < d->n_states; i++)
        ss_avro_value_release(d->states[i].iface, &d->states[i].value);
    free(d->states);
    free(d->ids);
    if (d->reader)
        avro_reader_free(d->reader);
    free(d);
}

ss_decoder_t *ss_decoder_new(ss_codec_t *c, char *errstr, size_t errlen) {
    ss_decoder_t *d = calloc(1, sizeof(*d));
    if (!d || !(d->reader = avro_reader_memory("", 0))) {
        snprintf(errstr, errlen, "codec: out of memory");
        goto fail;
    }
    d->codec = c;
    d->direct = 1;
    /* the schemas known now up front: nothing to allocate for them while scoring */
    pthread_mutex_lock(&c->lock);
    size_t i = 0;
    while (i < c->n_writers && add_state(d, c->writers[i]))
        i++;
    int all = i == c->n_writers;
    pthread_mutex_unlock(&c->lock);
    if (all)
        return d;
    snprintf(errstr, errlen, "codec: cannot create Avro value: %s", avro_strerror());
fail:
    ss_decoder_destroy(d);
    return NULL;
}

void ss_decoder_set_direct(ss_decoder_t *d, int direct) {
    d->direct = direct;
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
    const writer_plan_t *wp = NULL;
    if ((*rc = ss__codec_plan(d->codec, id, &wp, errstr, errlen)) != SS_DECODE_OK)
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

/* ---- the generic reader: the event and features of a value Avro C has read */

/* The value of a writer field, stepping into the current branch of a union.
 * Returns 0 with *is_null set, or SS_ERR_FAIL. */
static int field_value(avro_value_t *rec, int index, int is_union, avro_value_t *out, int *branch,
                       int *is_null) {
    avro_value_t v;
    *is_null = 0;
    *branch = 0;
    if (avro_value_get_by_index(rec, (size_t)index, &v, NULL) != 0)
        return SS_ERR_FAIL;
    if (!is_union) {
        *out = v;
        return 0;
    }
    if (avro_value_get_discriminant(&v, branch) != 0 || avro_value_get_current_branch(&v, out) != 0)
        return SS_ERR_FAIL;
    *is_null = avro_value_get_type(out) == AVRO_NULL;
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
        return SS_ERR_FAIL;
    if (is_null)
        return 0;
    size_t size;
    if (avro_value_get_string(&v, s, &size) != 0)
        return SS_ERR_FAIL;
    *len = size ? size - 1 : 0; /* Avro C counts the NUL */
    return 0;
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
    case K_LONG: avro_value_get_long(v, &r.i); break;
    case K_FLOAT: avro_value_get_float(v, &r.f); break;
    case K_DOUBLE: avro_value_get_double(v, &r.d); break;
    case K_BOOL:
        avro_value_get_boolean(v, &b);
        r.i = b;
        break;
    case K_ENUM:
        b = -1;
        avro_value_get_enum(v, &b);
        r.i = b;
        break;
    case K_STRING: {
        size_t size = 0;
        avro_value_get_string(v, &r.s, &size);
        r.slen = size ? size - 1 : 0; /* Avro C counts the NUL */
        break;
    }
    default: break;
    }
    return raw_feature(&r, bp);
}

/* The event time, int or long, when the field is there and not null. */
static void event_time(const writer_plan_t *wp, avro_value_t *rec, ss_event_t *ev) {
    avro_value_t v;
    int branch, is_null;
    if (wp->time_index < 0 ||
        field_value(rec, wp->time_index, wp->time_union, &v, &branch, &is_null) != 0 || is_null)
        return;
    int64_t t = 0;
    int32_t t32 = 0;
    if (avro_value_get_type(&v) == AVRO_INT32 && avro_value_get_int(&v, &t32) == 0)
        t = t32;
    else
        avro_value_get_long(&v, &t);
    ev->event_time = t;
}

static int extract(ss_decoder_t *d, const writer_plan_t *wp, avro_value_t *rec, ss_event_t *ev,
                   float *features, char *errstr, size_t errlen) {
    const ss_codec_t *c = d->codec;
    if (get_string(rec, wp->cust_index, wp->cust_union, &ev->customer_id, &ev->customer_id_len) <
            0 ||
        get_string(rec, wp->event_id_index, wp->event_id_union, &ev->event_id, &ev->event_id_len) <
            0) {
        snprintf(errstr, errlen, "cannot read the id fields");
        return SS_DECODE_BAD_AVRO;
    }
    int rc = need_customer(c, ev, errstr, errlen);
    if (rc != SS_DECODE_OK)
        return rc;
    event_time(wp, rec, ev);
    for (size_t f = 0; f < c->n_features; f++) {
        const field_plan_t *fp = &wp->features[f];
        if (fp->windex < 0) {
            features[f] = fp->absent;
            continue;
        }
        avro_value_t v;
        int branch, is_null;
        if (field_value(rec, fp->windex, fp->is_union, &v, &branch, &is_null) != 0 || branch < 0 ||
            branch >= fp->n_branches) {
            snprintf(errstr, errlen, "cannot read feature field '%s'", c->rfields[f].name);
            return SS_DECODE_BAD_AVRO;
        }
        features[f] = is_null ? NAN : feature_value(&v, &fp->branches[branch]);
    }
    return c->any_cats ? ss__unseen_category(c, features, errstr, errlen) : SS_DECODE_OK;
}

static void event_init(ss_event_t *ev) {
    memset(ev, 0, sizeof(*ev));
    ev->event_time = -1;
    ev->schema_id = -1;
}

/* The framing: the schema id of a Confluent value (*p and *len then past the header). */
static int read_frame(const ss_codec_t *c, const unsigned char **p, size_t *len, int32_t *id,
                      char *errstr, size_t errlen) {
    const unsigned char *b = *p;
    *id = -1;
    if (c->framing != SS_FRAMING_CONFLUENT)
        return SS_DECODE_OK;
    if (*len < 5 || b[0] != 0) {
        snprintf(errstr, errlen,
                 *len < 5 ? "value shorter than the 5-byte wire-format header"
                          : "first byte is not the wire-format magic byte 0");
        return SS_DECODE_BAD_MAGIC;
    }
    *id = (int32_t)(((uint32_t)b[1] << 24) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 8) | b[4]);
    *p += 5;
    *len -= 5;
    return SS_DECODE_OK;
}

int ss_decoder_decode(ss_decoder_t *d, const void *value, size_t len, ss_event_t *ev,
                      float *features, char *errstr, size_t errlen) {
    const ss_codec_t *c = d->codec;
    const unsigned char *p = value;
    event_init(ev);
    if (!value && len) {
        snprintf(errstr, errlen, "null value");
        return SS_DECODE_BAD_AVRO;
    }
    if ((long)len > c->max_bytes) {
        snprintf(errstr, errlen, "value of %zu bytes exceeds input.max.bytes (%ld)", len,
                 c->max_bytes);
        return SS_DECODE_TOO_LARGE;
    }
    int32_t id;
    int rc = read_frame(c, &p, &len, &id, errstr, errlen);
    if (rc != SS_DECODE_OK)
        return rc;
    ev->schema_id = id;
    writer_state_t *st = state_for(d, id, &rc, errstr, errlen);
    if (!st)
        return rc;
    const writer_plan_t *wp = st->wp;
    if (wp->error) {
        snprintf(errstr, errlen, "writer schema id %d does not resolve against input.schema: %s",
                 id, wp->errmsg);
        return SS_DECODE_UNRESOLVABLE_SCHEMA;
    }
    if (ss__check_body(wp->schema, p, len) < 0) {
        snprintf(errstr, errlen,
                 "Avro body does not match the writer schema (truncated, or a "
                 "length, union branch or enum index out of range)");
        return SS_DECODE_BAD_AVRO;
    }
    if (d->direct)
        return ss__decode_direct(d, wp, p, len, ev, features, errstr, errlen);
    avro_value_reset(&st->value);
    avro_reader_memory_set_source(d->reader, (const char *)p, (int64_t)len);
    if (avro_value_read(d->reader, &st->value) != 0) {
        snprintf(errstr, errlen, "Avro body does not decode with the writer schema: %s",
                 avro_strerror());
        return SS_DECODE_BAD_AVRO;
    }
    return extract(d, wp, &st->value, ev, features, errstr, errlen);
}

int ss_decoder_decode_next(ss_decoder_t *d, const void *data, size_t len, size_t *used,
                           ss_event_t *ev, float *features, char *errstr, size_t errlen) {
    const writer_plan_t *wp = d->codec->writers[0];
    const unsigned char *p = data, *q = p;
    event_init(ev);
    *used = 0;
    if (ss__check_value(wp->schema, &q, p + len, 0) < 0) {
        snprintf(errstr, errlen,
                 "Avro record does not match the writer schema (truncated, or a length, union "
                 "branch or enum index out of range)");
        return SS_DECODE_BAD_AVRO;
    }
    *used = (size_t)(q - p);
    if ((long)*used > d->codec->max_bytes) {
        snprintf(errstr, errlen, "record of %zu bytes exceeds input.max.bytes (%ld)", *used,
                 d->codec->max_bytes);
        return SS_DECODE_TOO_LARGE;
    }
    return ss__decode_direct(d, wp, p, *used, ev, features, errstr, errlen);
}

int ss_decoder_extract(ss_decoder_t *d, avro_value_t *rec, ss_event_t *ev, float *features,
                       char *errstr, size_t errlen) {
    event_init(ev);
    return extract(d, d->codec->writers[0], rec, ev, features, errstr, errlen);
}
