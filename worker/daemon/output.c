/* output.c - predictions and dead letters out of the worker: a topic through the thread's
 * producer, or the shadow's JSON-lines file behind one lock; the output schema's registry id. */
#include "output.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "error.h"
#include "log.h"

struct ss_output {
    const ss_config_t *cfg;
    ss_metrics_t *metrics;
    const char *name;     /* topic or file */
    FILE *file;           /* shadow.output = file, else NULL */
    pthread_mutex_t lock; /* guards file */
    int32_t schema_id;    /* >= 0: Avro values framed with it */
};

struct ss_output_writer {
    ss_output_t *o;
    ss_encoder_t *enc;
    ss_producer_t *producer;
    ss_ack_t *ack;
    char *lines; /* the batch's lines, when the output is a file */
    size_t lines_len, lines_cap;
};

void ss_output_destroy(ss_output_t *o) {
    if (!o)
        return;
    if (o->file)
        fclose(o->file);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

ss_output_t *ss_output_new(const ss_config_t *cfg, ss_metrics_t *metrics, char *errstr,
                           size_t errlen) {
    ss_output_t *o = ss_zalloc(sizeof(*o), "output", errstr, errlen);
    if (!o)
        return NULL;
    *o = (ss_output_t){.cfg = cfg, .metrics = metrics, .schema_id = -1};
    pthread_mutex_init(&o->lock, NULL);
    o->name = cfg->mode == SS_MODE_SHADOW ? cfg->shadow_topic : cfg->output_topic;
    if (cfg->mode != SS_MODE_SHADOW || cfg->shadow_output != SS_SHADOW_FILE)
        return o;
    o->name = cfg->shadow_file;
    o->file = fopen(cfg->shadow_file, "a");
    if (o->file)
        return o;
    snprintf(errstr, errlen, "config: key 'shadow.file': cannot open '%s': %s", cfg->shadow_file,
             strerror(errno));
    ss_output_destroy(o);
    return NULL;
}

const char *ss_output_name(const ss_output_t *o) {
    return o->name;
}

/* Registers output.schema under its subject; `enc` is an encoder of it (for its name). */
static int register_schema(ss_output_t *o, ss_registry_t *registry, const ss_encoder_t *enc,
                           char *errstr, size_t errlen) {
    const ss_config_t *cfg = o->cfg;
    json_error_t jerr;
    json_t *j = ss_schema_json(cfg->output_schema, &jerr);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    char fullname[512], subject[1024];
    int rc = SS_ERR_CONFIG;
    if (!text) {
        snprintf(errstr, errlen, "config: key 'output.schema': cannot read '%s': %s",
                 cfg->output_schema, jerr.text);
        goto out;
    }
    ss_encoder_schema_fullname(enc, fullname, sizeof(fullname));
    if (ss_registry_subject(cfg, o->name, fullname, subject, sizeof(subject)) < 0) {
        snprintf(errstr, errlen, "config: key 'output.subject.name.strategy': subject too long");
        goto out;
    }
    int32_t id = -1;
    int rrc = ss_registry_register(registry, subject, text, &id, errstr, errlen);
    if (rrc < 0) {
        rc = rrc == SS_ERR_UNAVAILABLE ? SS_ERR_UNAVAILABLE : SS_ERR_CONFIG;
        goto out;
    }
    o->schema_id = id;
    ss_log(SS_LOG_INFO, SS_FIELDS(SSF_STR("subject", subject), SSF_INT("schema_id", id)),
           "output schema %s registered under subject %s: id %d", fullname, subject, id);
    rc = 0;
out:
    free(text);
    return rc;
}

int ss_output_register_schema(ss_output_t *o, ss_registry_t *registry, char *errstr,
                              size_t errlen) {
    const ss_config_t *cfg = o->cfg;
    /* every field of output.schema checked, whatever the output, before anything connects */
    ss_encoder_t *enc = ss_encoder_new(cfg, errstr, errlen);
    int rc = 0;
    if (!enc)
        return SS_ERR_CONFIG;
    if (o->file || cfg->output_format != SS_FORMAT_AVRO)
        rc = 0; /* JSON is not registered; the shadow's file is read by streamscore itself */
    else if (cfg->output_schema_id >= 0)
        o->schema_id = (int32_t)cfg->output_schema_id;
    else if (registry)
        rc = register_schema(o, registry, enc, errstr, errlen);
    ss_encoder_destroy(enc);
    return rc;
}

int32_t ss_output_schema_id(const ss_output_t *o) {
    return o->schema_id;
}

int ss_output_check_needs(ss_output_t *o, const ss_encoder_needs_t *needs, const char *why,
                          char *errstr, size_t errlen) {
    ss_encoder_t *enc = ss_encoder_new(o->cfg, errstr, errlen);
    if (!enc)
        return SS_ERR_CONFIG;
    int rc = ss_encoder_check_needs(enc, needs, why, errstr, errlen);
    ss_encoder_destroy(enc);
    return rc;
}

int ss_output_splits_explanations(const ss_output_t *o) {
    return !o->file && *o->cfg->explain_topic;
}

void ss_output_writer_set_ack(ss_output_writer_t *w, ss_ack_t *ack) {
    w->ack = ack;
}

ss_output_writer_t *ss_output_writer_new(ss_output_t *o, ss_ack_t *ack, int *why, char *errstr,
                                         size_t errlen) {
    ss_output_writer_t *w = ss_zalloc(sizeof(*w), "output", errstr, errlen);
    *why = SS_ERR_NOMEM;
    if (!w)
        return NULL;
    *w = (ss_output_writer_t){.o = o, .ack = ack};
    w->enc = o->file ? ss_encoder_new_format(o->cfg, SS_FORMAT_JSON, errstr, errlen)
                     : ss_encoder_new(o->cfg, errstr, errlen);
    if (!w->enc) {
        *why = SS_ERR_CONFIG;
        free(w);
        return NULL;
    }
    ss_encoder_set_schema_id(w->enc, o->schema_id);
    return w;
}

void ss_output_writer_use(ss_output_writer_t *w, ss_producer_t *producer) {
    w->producer = producer;
}

void ss_output_writer_destroy(ss_output_writer_t *w) {
    if (!w)
        return;
    ss_encoder_destroy(w->enc);
    free(w->lines);
    free(w);
}

static int append_line(ss_output_writer_t *w, const void *val, size_t len, char *errstr,
                       size_t errlen) {
    if (w->lines_len + len + 1 > w->lines_cap) {
        size_t cap = (w->lines_len + len + 1) * 2;
        char *g = realloc(w->lines, cap);
        if (!g) {
            snprintf(errstr, errlen, "shadow results: out of memory");
            return SS_ERR_NOMEM;
        }
        w->lines = g;
        w->lines_cap = cap;
    }
    memcpy(w->lines + w->lines_len, val, len);
    w->lines[w->lines_len + len] = '\n';
    w->lines_len += len + 1;
    return 0;
}

/* Encode `p` and send it to `topic` (the file's lines when the output is a file). */
static int send_prediction(ss_output_writer_t *w, const char *topic, const ss_prediction_t *p,
                           char *errstr, size_t errlen) {
    const void *val;
    size_t vlen;
    if (ss_encoder_encode(w->enc, p, &val, &vlen, errstr, errlen) < 0)
        return SS_ERR_FAIL;
    if (w->o->file)
        return append_line(w, val, vlen, errstr, errlen) < 0 ? SS_ERR_FAIL : 0;
    if (ss_producer_send(w->producer, topic, RD_KAFKA_PARTITION_UA, p->customer_id,
                         p->customer_id_len, val, vlen, NULL, 0, NULL, w->ack, errstr, errlen) < 0)
        return SS_ERR_FAIL;
    return 0;
}

int ss_output_prediction(ss_output_writer_t *w, const ss_prediction_t *p, char *errstr,
                         size_t errlen) {
    return send_prediction(w, w->o->name, p, errstr, errlen);
}

int ss_output_explanation(ss_output_writer_t *w, const ss_prediction_t *p, char *errstr,
                          size_t errlen) {
    return send_prediction(w, w->o->cfg->explain_topic, p, errstr, errlen);
}

/* What a dead letter leaves out, in this order, until it fits the producer's
 * message.max.bytes: the value, the record's own headers, the key. The Kafka Connect headers
 * (where the record was and why) always stay; streamscore.dead_letter.dropped names what was
 * left out and streamscore.dead_letter.value.bytes the value's size. */
typedef struct letter {
    const void *key, *value;
    size_t keylen, vallen;
    const rd_kafka_headers_t *orig;
    char dropped[32], size[24];
} letter_t;

static size_t fit_dead_letter(ss_producer_t *p, letter_t *l, ss_header_t *h, size_t n) {
    size_t max = ss_producer_max_message(p);
    const char *what[] = {"value", "headers", "key"};
    for (size_t step = 0; step < 3; step++) {
        if (ss_producer_record_size(l->keylen, l->vallen, h, n, l->orig) <= max)
            break;
        if (step == 0) {
            snprintf(l->size, sizeof(l->size), "%zu", l->vallen);
            h[n++] = (ss_header_t){"streamscore.dead_letter.dropped", l->dropped, 0};
            h[n++] = (ss_header_t){"streamscore.dead_letter.value.bytes", l->size, strlen(l->size)};
            l->value = NULL, l->vallen = 0;
        } else if (step == 1) {
            l->orig = NULL;
        } else {
            l->key = NULL, l->keylen = 0;
        }
        size_t len = strlen(l->dropped);
        snprintf(l->dropped + len, sizeof(l->dropped) - len, "%s%s", len ? "," : "", what[step]);
        h[n - 2].len = strlen(l->dropped);
    }
    return n;
}

int ss_output_dead_letter(ss_output_writer_t *w, const rd_kafka_message_t *m, const char *stage,
                          const char *reason, const char *detail, char *errstr, size_t errlen) {
    char part[16], off[24];
    snprintf(part, sizeof(part), "%d", m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    const char *topic = rd_kafka_topic_name(m->rkt);
    ss_header_t h[9] = {
        {"__connect.errors.topic", topic, strlen(topic)},
        {"__connect.errors.partition", part, strlen(part)},
        {"__connect.errors.offset", off, strlen(off)},
        {"__connect.errors.stage", stage, strlen(stage)},
        {"__connect.errors.class.name", "streamscore", 11},
        {"__connect.errors.exception.class.name", reason, strlen(reason)},
        {"__connect.errors.exception.message", detail, strlen(detail)},
    };
    rd_kafka_headers_t *orig = NULL;
    if (rd_kafka_message_headers(m, &orig) != RD_KAFKA_RESP_ERR_NO_ERROR)
        orig = NULL;
    letter_t l = {
        .key = m->key, .value = m->payload, .keylen = m->key_len, .vallen = m->len, .orig = orig};
    size_t n = fit_dead_letter(w->producer, &l, h, 7);
    char err[512];
    if (ss_producer_send(w->producer, w->o->cfg->dlq_topic, RD_KAFKA_PARTITION_UA, l.key, l.keylen,
                         l.value, l.vallen, h, n, l.orig, w->ack, err, sizeof(err)) < 0) {
        snprintf(errstr, errlen, "dead letter: %s", err);
        return SS_ERR_FAIL;
    }
    ss_log(SS_LOG_WARN,
           SS_FIELDS(SSF_STR("reason", reason), SSF_INT("partition", m->partition),
                     SSF_INT("offset", m->offset),
                     l.dropped[0] ? SSF_STR("dropped", l.dropped) : (ss_field_t){0}),
           "record dead-lettered: %s", detail);
    ss_metrics_dead_letter(w->o->metrics, reason);
    return 0;
}

int ss_output_flush(ss_output_writer_t *w, char *errstr, size_t errlen) {
    ss_output_t *o = w->o;
    if (!o->file)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&o->lock);
    if (fwrite(w->lines, 1, w->lines_len, o->file) != w->lines_len || fflush(o->file) != 0 ||
        fsync(fileno(o->file)) != 0) {
        snprintf(errstr, errlen, "shadow results file '%s' (key shadow.file): %s",
                 o->cfg->shadow_file, strerror(errno));
        rc = SS_ERR_FAIL;
    }
    pthread_mutex_unlock(&o->lock);
    w->lines_len = 0;
    return rc;
}
