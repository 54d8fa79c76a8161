/* prediction.c - encoding prediction records. The Avro value and the output buffer are
 * created once per thread and reused for every record. */
#include "prediction.h"

#include <avro.h>
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
    P_COUNT
};

static const char *field_names[P_COUNT] = {
    "event_id",   "customer_id",   "score",        "decision",         "threshold",
    "model_name", "model_version", "source_topic", "source_partition", "source_offset",
    "event_time", "scored_at",     "feature_hash", "contributions",    "degraded"};

struct ss_encoder {
    int format;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    int index[P_COUNT]; /* field index in the output schema, -1 if absent */
    int32_t schema_id;  /* >= 0: values framed in the Confluent wire format with this id */
    /* the schema's fields in order, when each has the type streamscore writes: then values
     * are written directly, else through Avro C's generic value */
    int direct;
    int order[P_COUNT];
    size_t n_order;
    char *buf;
    size_t cap;
};

/* The Avro type of each field as streamscore writes it (contributions: a union, null first). */
static avro_type_t direct_type(int which) {
    switch (which) {
    case P_SCORE:
    case P_THRESHOLD: return AVRO_DOUBLE;
    case P_DECISION:
    case P_DEGRADED: return AVRO_BOOLEAN;
    case P_SOURCE_PARTITION: return AVRO_INT32;
    case P_SOURCE_OFFSET:
    case P_EVENT_TIME:
    case P_SCORED_AT: return AVRO_INT64;
    case P_CONTRIBUTIONS: return AVRO_UNION;
    default: return AVRO_STRING;
    }
}

void ss_encoder_destroy(ss_encoder_t *e) {
    if (!e)
        return;
    ss_avro_value_release(e->iface, &e->value);
    if (e->schema)
        avro_schema_decref(e->schema);
    free(e->buf);
    free(e);
}

ss_encoder_t *ss_encoder_new(const ss_config_t *cfg, char *errstr, size_t errlen) {
    return ss_encoder_new_format(cfg, cfg->output_format, errstr, errlen);
}

/* Every field of the output schema is one streamscore fills; each field's index. */
static int known_fields(ss_encoder_t *e, char *errstr, size_t errlen) {
    for (int i = 0; i < P_COUNT; i++)
        e->index[i] = avro_schema_record_field_get_index(e->schema, field_names[i]);
    size_t nf = avro_schema_record_size(e->schema);
    for (size_t i = 0; i < nf; i++) {
        const char *name = avro_schema_record_field_name(e->schema, (int)i);
        int known = 0;
        for (int k = 0; k < P_COUNT; k++)
            known |= strcmp(name, field_names[k]) == 0;
        if (!known) {
            snprintf(errstr, errlen,
                     "config: key 'output.schema': field '%s' is not one streamscore fills", name);
            return SS_ERR_CONFIG;
        }
    }
    return 0;
}

/* Values are written directly when every field has the type streamscore writes. */
static void plan_direct(ss_encoder_t *e) {
    size_t nf = avro_schema_record_size(e->schema);
    e->direct = 1;
    for (size_t i = 0; i < nf && e->direct; i++) {
        const char *name = avro_schema_record_field_name(e->schema, (int)i);
        int k = 0;
        while (strcmp(name, field_names[k]) != 0)
            k++;
        e->order[e->n_order++] = k;
        avro_schema_t t = avro_schema_record_field_get_by_index(e->schema, (int)i);
        e->direct = avro_typeof(t) == direct_type(k) &&
                    (k != P_CONTRIBUTIONS || (avro_schema_union_size(t) > 0 &&
                                              is_avro_null(avro_schema_union_branch(t, 0))));
    }
}

ss_encoder_t *ss_encoder_new_format(const ss_config_t *cfg, int format, char *errstr,
                                    size_t errlen) {
    ss_encoder_t *e = calloc(1, sizeof(*e));
    if (!e || !(e->buf = malloc(4096))) {
        snprintf(errstr, errlen, "encoder: out of memory");
        goto fail;
    }
    e->format = format;
    e->schema_id = -1;
    e->cap = 4096;
    e->schema = ss_schema_load(cfg->output_schema, "output.schema", errstr, errlen);
    if (!e->schema || known_fields(e, errstr, errlen) < 0)
        goto fail;
    plan_direct(e);
    if (ss_avro_value_new(e->schema, &e->iface, &e->value) == 0)
        return e;
    snprintf(errstr, errlen, "encoder: %s", avro_strerror());
fail:
    ss_encoder_destroy(e);
    return NULL;
}

static avro_value_t *field(ss_encoder_t *e, int which, avro_value_t *tmp) {
    if (e->index[which] < 0 ||
        avro_value_get_by_index(&e->value, (size_t)e->index[which], tmp, NULL))
        return NULL;
    return tmp;
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

static int encode_direct(ss_encoder_t *e, const ss_prediction_t *p, size_t *len) {
    const char *str[P_COUNT] = {0};
    size_t slen[P_COUNT] = {0};
    int64_t num[P_COUNT] = {0};
    str[P_EVENT_ID] = p->event_id ? p->event_id : "";
    slen[P_EVENT_ID] = p->event_id ? p->event_id_len : 0;
    str[P_CUSTOMER_ID] = p->customer_id;
    slen[P_CUSTOMER_ID] = p->customer_id_len;
    str[P_MODEL_NAME] = p->model_name;
    str[P_MODEL_VERSION] = p->model_version;
    str[P_SOURCE_TOPIC] = p->source_topic;
    str[P_FEATURE_HASH] = p->feature_hash;
    for (int k = P_MODEL_NAME; k <= P_FEATURE_HASH; k++)
        if (str[k])
            slen[k] = strlen(str[k]);
    num[P_DECISION] = p->decision != 0;
    num[P_DEGRADED] = p->degraded != 0;
    num[P_SOURCE_PARTITION] = p->source_partition;
    num[P_SOURCE_OFFSET] = p->source_offset;
    num[P_EVENT_TIME] = p->event_time;
    num[P_SCORED_AT] = p->scored_at;
    size_t need = 5 + 16 * P_COUNT;
    for (int k = 0; k < P_COUNT; k++)
        need += slen[k];
    if (reserve(e, need) < 0)
        return SS_ERR_NOMEM;
    unsigned char *d = (unsigned char *)e->buf + put_frame(e);
    for (size_t i = 0; i < e->n_order; i++) {
        int k = e->order[i];
        switch (direct_type(k)) {
        case AVRO_STRING: d = put_string(d, str[k], slen[k]); break;
        case AVRO_DOUBLE: d = put_double(d, k == P_SCORE ? p->score : p->threshold); break;
        case AVRO_BOOLEAN: *d++ = (unsigned char)num[k]; break;
        case AVRO_UNION: /* contributions: the null branch, not requested */ *d++ = 0; break;
        default: /* int and long */ d = put_long(d, num[k]); break;
        }
    }
    *len = (size_t)((char *)d - e->buf);
    return 0;
}

static int encode_avro(ss_encoder_t *e, const ss_prediction_t *p, size_t *len) {
    if (e->direct)
        return encode_direct(e, p, len);
    avro_value_t f;
    avro_value_t *v;
    if ((v = field(e, P_EVENT_ID, &f)))
        avro_value_set_string_len(v, p->event_id ? p->event_id : "", p->event_id_len + 1);
    if ((v = field(e, P_CUSTOMER_ID, &f)))
        avro_value_set_string_len(v, p->customer_id, p->customer_id_len + 1);
    if ((v = field(e, P_SCORE, &f)))
        avro_value_set_double(v, p->score);
    if ((v = field(e, P_DECISION, &f)))
        avro_value_set_boolean(v, p->decision);
    if ((v = field(e, P_THRESHOLD, &f)))
        avro_value_set_double(v, p->threshold);
    if ((v = field(e, P_MODEL_NAME, &f)))
        avro_value_set_string(v, p->model_name);
    if ((v = field(e, P_MODEL_VERSION, &f)))
        avro_value_set_string(v, p->model_version);
    if ((v = field(e, P_SOURCE_TOPIC, &f)))
        avro_value_set_string(v, p->source_topic);
    if ((v = field(e, P_SOURCE_PARTITION, &f)))
        avro_value_set_int(v, p->source_partition);
    if ((v = field(e, P_SOURCE_OFFSET, &f)))
        avro_value_set_long(v, p->source_offset);
    if ((v = field(e, P_EVENT_TIME, &f)))
        avro_value_set_long(v, p->event_time);
    if ((v = field(e, P_SCORED_AT, &f)))
        avro_value_set_long(v, p->scored_at);
    if ((v = field(e, P_FEATURE_HASH, &f)))
        avro_value_set_string(v, p->feature_hash);
    if ((v = field(e, P_DEGRADED, &f)))
        avro_value_set_boolean(v, p->degraded);
    if ((v = field(e, P_CONTRIBUTIONS, &f))) {
        avro_value_t branch;
        avro_value_set_branch(v, 0, &branch); /* null: contributions not requested */
        avro_value_set_null(&branch);
    }
    size_t hdr = put_frame(e);
    for (;;) {
        avro_writer_t w = avro_writer_memory(e->buf + hdr, (int64_t)(e->cap - hdr));
        int rc = avro_value_write(w, &e->value);
        *len = hdr + (size_t)avro_writer_tell(w);
        avro_writer_free(w);
        if (rc == 0)
            return 0;
        if (e->cap >= (1u << 24))
            return SS_ERR_FAIL;
        if (reserve(e, e->cap * 2) < 0)
            return SS_ERR_NOMEM;
    }
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

static int encode_json(ss_encoder_t *e, const ss_prediction_t *p, size_t *len) {
    size_t need = 1024 + 6 * (p->event_id_len + p->customer_id_len + strlen(p->source_topic) +
                              strlen(p->model_name) + strlen(p->model_version));
    if (reserve(e, need) < 0)
        return SS_ERR_NOMEM;
    char *b = e->buf;
    size_t n = 1;
    b[0] = '{';
    put_str(b, e->cap, &n, "event_id", p->event_id ? p->event_id : "", p->event_id_len);
    put_str(b, e->cap, &n, "customer_id", p->customer_id, p->customer_id_len);
    n += (size_t)snprintf(b + n, e->cap - n, "\"score\":%.17g,\"decision\":%s,\"threshold\":%.17g,",
                          p->score, p->decision ? "true" : "false", p->threshold);
    put_str(b, e->cap, &n, "model_name", p->model_name, strlen(p->model_name));
    put_str(b, e->cap, &n, "model_version", p->model_version, strlen(p->model_version));
    put_str(b, e->cap, &n, "source_topic", p->source_topic, strlen(p->source_topic));
    n +=
        (size_t)snprintf(b + n, e->cap - n,
                         "\"source_partition\":%d,\"source_offset\":%lld,\"event_time\":%lld,"
                         "\"scored_at\":%lld,\"feature_hash\":\"%s\",\"contributions\":null,"
                         "\"degraded\":%s}",
                         p->source_partition, (long long)p->source_offset, (long long)p->event_time,
                         (long long)p->scored_at, p->feature_hash, p->degraded ? "true" : "false");
    *len = n;
    return 0;
}

int ss_encoder_encode(ss_encoder_t *e, const ss_prediction_t *p, const void **out, size_t *len,
                      char *errstr, size_t errlen) {
    int rc = e->format == SS_FORMAT_JSON ? encode_json(e, p, len) : encode_avro(e, p, len);
    if (rc < 0) {
        snprintf(errstr, errlen, "encoding the prediction: %s",
                 rc == SS_ERR_NOMEM ? "out of memory" : avro_strerror());
        return rc;
    }
    *out = e->buf;
    return 0;
}
