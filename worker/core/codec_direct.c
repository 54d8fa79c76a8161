/* codec_direct.c - a body read directly, field by field, after ss__check_body accepted it:
 * the same event and features as Avro C's reader followed by the generic extraction
 * (codec_decode.c), without building a value. This is the decoder's hot path; the fuzz
 * target compares the two readers bit for bit. */
#include "codec_int.h"

#include <stdlib.h>
#include <string.h>

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
    case AVRO_NULL: return 0;
    case AVRO_BOOLEAN: r->i = *(*p)++; return 0;
    case AVRO_INT32: /* as Avro C: a varint beyond 32 bits is not an int */
        return read_varint(p, end, &r->i) < 0 || r->i < INT32_MIN || r->i > INT32_MAX ? SS_ERR_FAIL
                                                                                      : 0;
    case AVRO_INT64:
    case AVRO_ENUM: return read_varint(p, end, &r->i);
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
            return SS_ERR_FAIL;
        r->s = (const char *)*p;
        r->slen = (size_t)n;
        *p += n;
        return 0;
    }
    default: r->kind = K_BAD; return ss__check_value(t, p, end, 1); /* skipped */
    }
}

/* The ids are copied out of the record, NUL-terminated, into the decoder's own buffer. */
static int keep_ids(ss_decoder_t *d, ss_event_t *ev, const raw_t *cust, const raw_t *evid) {
    size_t need = cust->slen + evid->slen + 2;
    if (need > d->ids_cap) {
        char *g = realloc(d->ids, need * 2);
        if (!g)
            return SS_ERR_NOMEM;
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

int ss__decode_direct(ss_decoder_t *d, const writer_plan_t *wp, const unsigned char *p, size_t len,
                      ss_event_t *ev, float *features, char *errstr, size_t errlen) {
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
    int rc = need_customer(c, ev, errstr, errlen);
    if (rc == SS_DECODE_OK && c->any_cats)
        rc = ss__unseen_category(c, features, errstr, errlen);
    return rc;
bad:
    snprintf(errstr, errlen, "Avro body does not match the writer schema");
    return SS_DECODE_BAD_AVRO;
}
