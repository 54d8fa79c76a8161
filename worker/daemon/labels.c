/* labels.c - the ROC-AUC gate's outcomes, joined with the recent predictions. */
#include "labels.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "kafka.h"
#include "log.h"

struct ss_labels {
    const ss_config_t *cfg;
    rd_kafka_t *consumer;
    pthread_mutex_t lock;              /* guards recent */
    ss_recent_t *recent;               /* SS_LABELS_RECENT slots, by hash */
    long joined, unmatched, malformed; /* atomic */
};

static rd_kafka_t *consumer_new(const ss_config_t *cfg, char *errstr, size_t errlen) {
    static const char *const reader[][2] = {{"enable.auto.commit", "false"},
                                            {"enable.partition.eof", "false"}};
    return ss_kafka_client(cfg, RD_KAFKA_CONSUMER, NULL, reader, 2, "labels", errstr, errlen);
}

ss_labels_t *ss_labels_open(const ss_config_t *cfg, int *why, char *errstr, size_t errlen) {
    ss_labels_t *l = ss_zalloc(sizeof(*l), "labels", errstr, errlen);
    *why = SS_ERR_NOMEM;
    if (!l)
        return NULL;
    l->cfg = cfg;
    pthread_mutex_init(&l->lock, NULL);
    if (!(l->recent = calloc(SS_LABELS_RECENT, sizeof(*l->recent)))) {
        snprintf(errstr, errlen, "labels: out of memory");
        goto fail;
    }
    *why = SS_ERR_CONFIG;
    if (!(l->consumer = consumer_new(cfg, errstr, errlen)))
        goto fail;
    *why = SS_ERR_FAIL;
    int n = ss_kafka_partitions(l->consumer, cfg->rollout_labels_topic, 10000, "labels", errstr,
                                errlen);
    if (n == -1) {
        snprintf(errstr, errlen,
                 "config: key 'rollout.labels.topic': the topic '%s' does not exist",
                 cfg->rollout_labels_topic);
        *why = SS_ERR_CONFIG;
    }
    if (n <= 0)
        goto fail;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(parts, cfg->rollout_labels_topic, p)->offset =
            RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t err = rd_kafka_assign(l->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        snprintf(errstr, errlen, "labels: reading '%s': %s", cfg->rollout_labels_topic,
                 rd_kafka_err2str(err));
        goto fail;
    }
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("topic", cfg->rollout_labels_topic), SSF_INT("partitions", n)),
           "rollout: labels read from the end of their topic for the ROC-AUC gate");
    return l;
fail:
    ss_labels_close(l);
    return NULL;
}

void ss_labels_close(ss_labels_t *l) {
    if (!l)
        return;
    if (l->consumer) {
        rd_kafka_consumer_close(l->consumer);
        rd_kafka_destroy(l->consumer);
    }
    pthread_mutex_destroy(&l->lock);
    free(l->recent);
    free(l);
}

void ss_labels_remember(ss_labels_t *l, const ss_recent_t *r, size_t n) {
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < n; i++) {
        ss_recent_t *slot = &l->recent[ss_fmix64(r[i].hash) & (SS_LABELS_RECENT - 1)];
        if (slot->hash != r[i].hash || slot->time <= r[i].time)
            *slot = r[i]; /* a customer's latest, or a newer customer in its place */
    }
    pthread_mutex_unlock(&l->lock);
}

static uint64_t id_hash(const char *id, size_t len) {
    uint64_t h = ss_fnv1a(SS_FNV1A_INIT, id, len);
    return h ? h : 1; /* 0 marks an empty slot */
}

/* One label record: its customer's prediction found and counted into t, or not. */
static void join(ss_labels_t *l, const rd_kafka_message_t *m, ss_gate_tally_t t[SS_ROUTES]) {
    json_error_t jerr;
    json_t *j = m->payload ? json_loadb(m->payload, m->len, 0, &jerr) : NULL;
    const json_t *id = json_object_get(j, "customer_id"), *lab = json_object_get(j, "label");
    const json_t *tm = json_object_get(j, "time");
    int label = json_is_boolean(lab) ? json_is_true(lab)
                : json_is_integer(lab) && (unsigned long long)json_integer_value(lab) <= 1
                    ? (int)json_integer_value(lab)
                    : -1;
    rd_kafka_timestamp_type_t tstype;
    int64_t when =
        json_is_integer(tm) ? json_integer_value(tm) : rd_kafka_message_timestamp(m, &tstype);
    if (!json_is_string(id) || label < 0 || (tm && !json_is_integer(tm))) {
        __atomic_add_fetch(&l->malformed, 1, __ATOMIC_RELAXED);
        json_decref(j);
        return;
    }
    uint64_t h = id_hash(json_string_value(id), json_string_length(id));
    json_decref(j);
    pthread_mutex_lock(&l->lock);
    ss_recent_t r = l->recent[ss_fmix64(h) & (SS_LABELS_RECENT - 1)];
    pthread_mutex_unlock(&l->lock);
    if (r.hash != h || r.time > when) {
        __atomic_add_fetch(&l->unmatched, 1, __ATOMIC_RELAXED);
        return;
    }
    ss_gate_tally_label(&t[r.route], r.score, label);
    __atomic_add_fetch(&l->joined, 1, __ATOMIC_RELAXED);
}

void ss_labels_poll(ss_labels_t *l, ss_gates_t *g, int64_t now_ms) {
    static ss_gate_tally_t t[SS_ROUTES]; /* the main thread's only */
    ss_gate_tally_clear(&t[0]);
    ss_gate_tally_clear(&t[1]);
    long n = 0;
    for (rd_kafka_message_t *m; n < 10000 && (m = rd_kafka_consumer_poll(l->consumer, 0)); n++) {
        if (!m->err)
            join(l, m, t);
        else
            ss_warn("labels: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    for (int r = 0; n && r < SS_ROUTES; r++)
        ss_gates_add(g, r, &t[r], now_ms);
}

void ss_labels_counts(ss_labels_t *l, long *joined, long *unmatched, long *malformed) {
    *joined = __atomic_load_n(&l->joined, __ATOMIC_RELAXED);
    *unmatched = __atomic_load_n(&l->unmatched, __ATOMIC_RELAXED);
    *malformed = __atomic_load_n(&l->malformed, __ATOMIC_RELAXED);
}

uint64_t ss_labels_hash(const char *id, size_t len) {
    return id_hash(id, len);
}
