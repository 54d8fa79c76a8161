/* control.c - reading and writing the rollout control topic. */
#include "control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "kafka.h"
#include "log.h"

struct ss_control {
    const ss_config_t *cfg;
    const char *who;
    rd_kafka_t *consumer, *producer;
    ss_rollout_state_t state;
    int64_t next_offset; /* of the control partition: the next record to read */
    int64_t skipped;     /* the last automatic record skipped (made from an older state) */
    /* the write waited for */
    int delivered;
    rd_kafka_resp_err_t delivery_err;
    int64_t delivery_offset;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    ss_control_t *c = opaque;
    c->delivery_err = m->err;
    c->delivery_offset = m->offset;
    c->delivered = 1;
}

static rd_kafka_t *client(const ss_config_t *cfg, rd_kafka_type_t type, ss_control_t *c,
                          char *errstr, size_t errlen) {
    /* the control consumer reads one partition it assigns itself: never in a group */
    static const char *const reader[][2] = {{"enable.auto.commit", "false"},
                                            {"enable.partition.eof", "true"},
                                            {"auto.offset.reset", "earliest"},
                                            {"fetch.wait.max.ms", "100"},
                                            {"isolation.level", "read_committed"}};
    static const char *const writer[][2] = {
        {"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "0"}};
    if (type == RD_KAFKA_CONSUMER)
        return ss_kafka_client(cfg, type, NULL, reader, 5, c->who, errstr, errlen);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, c);
    return ss_kafka_client(cfg, type, conf, writer, 3, c->who, errstr, errlen);
}

/* The topic, created when missing (a topic just created may take a moment to be known). */
static int prepare_topic(ss_control_t *c, char *errstr, size_t errlen) {
    const ss_config_t *cfg = c->cfg;
    int n = SS_ERR_FAIL;
    for (int64_t until = ss_mono_ms() + 15000; ss_mono_ms() < until;) {
        n = ss_kafka_partitions(c->producer, cfg->rollout_topic, 2000, c->who, errstr, errlen);
        rd_kafka_poll(c->producer, 0);
        if (ss_kafka_refused(errstr, errlen))
            return SS_ERR_CONFIG;
        if (n == -1) {
            int rc = ss_kafka_create_compacted(c->producer, cfg->rollout_topic, 1,
                                               (int)cfg->rollout_replication_factor, c->who,
                                               "rollout.topic", errstr, errlen);
            if (rc < 0)
                return rc;
        } else if (n > 0) {
            return 0;
        }
        ss_sleep_ms(200);
    }
    if (n >= 0)
        snprintf(errstr, errlen,
                 "%s: the topic '%s' is not known to the cluster (key rollout.topic)", c->who,
                 cfg->rollout_topic);
    return SS_ERR_FAIL;
}

ss_control_t *ss_control_open(const ss_config_t *cfg, const char *who, int *why, char *errstr,
                              size_t errlen) {
    ss_control_t *c = ss_zalloc(sizeof(*c), who, errstr, errlen);
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err;
    int rc;
    *why = SS_ERR_FAIL;
    if (!c)
        return NULL;
    c->cfg = cfg;
    c->who = who;
    c->skipped = -1;
    ss_rollout_init(&c->state);
    if (!*cfg->rollout_topic) {
        snprintf(errstr, errlen, "config: key 'rollout.topic' is empty: no control topic to use");
        *why = SS_ERR_CONFIG;
        goto fail;
    }
    if (!(c->producer = client(cfg, RD_KAFKA_PRODUCER, c, errstr, errlen)) ||
        !(c->consumer = client(cfg, RD_KAFKA_CONSUMER, c, errstr, errlen))) {
        *why = SS_ERR_CONFIG;
        goto fail;
    }
    if ((rc = prepare_topic(c, errstr, errlen)) < 0) {
        *why = rc;
        goto fail;
    }
    parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, cfg->rollout_topic, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    err = rd_kafka_assign(c->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        snprintf(errstr, errlen, "%s: reading '%s': %s", who, cfg->rollout_topic,
                 rd_kafka_err2str(err));
        goto fail;
    }
    return c;
fail:
    ss_control_close(c);
    return NULL;
}

void ss_control_close(ss_control_t *c) {
    if (!c)
        return;
    if (c->consumer) {
        rd_kafka_consumer_close(c->consumer);
        rd_kafka_destroy(c->consumer);
    }
    if (c->producer) {
        rd_kafka_flush(c->producer, 5000);
        rd_kafka_destroy(c->producer);
    }
    free(c);
}

/* One record of the partition: folded into the state when it is ours and acceptable. */
static int take(ss_control_t *c, const rd_kafka_message_t *m) {
    c->next_offset = m->offset + 1;
    const char *id = c->cfg->rollout_id;
    if (!m->key || m->key_len != strlen(id) || memcmp(m->key, id, m->key_len) != 0)
        return 0; /* another deployment's rollout */
    if (!m->payload)
        return 0; /* a tombstone: nothing to apply (the state stays as it was) */
    ss_rollout_state_t next;
    char err[256];
    if (ss_rollout_parse(m->payload, m->len, &next, err, sizeof(err)) < 0) {
        ss_log(SS_LOG_WARN, SS_FIELDS(SSF_INT("offset", m->offset)),
               "%s: a record of '%s' is skipped: %s", c->who, c->cfg->rollout_topic, err);
        return 0;
    }
    next.offset = m->offset;
    if (!ss_rollout_accepts(&c->state, &next)) {
        c->skipped = m->offset;
        ss_log(SS_LOG_INFO, SS_FIELDS(SSF_INT("offset", m->offset), SSF_INT("base", next.base)),
               "%s: an automatic change made from an older state is skipped (%s)", c->who,
               next.reason);
        return 0;
    }
    c->state = next;
    return 1;
}

int ss_control_poll(ss_control_t *c, int timeout_ms) {
    int changed = 0;
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->consumer, timeout_ms);
        if (!m)
            return changed;
        timeout_ms = 0;
        if (!m->err)
            changed += take(c, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            ss_warn("%s: %s", c->who, rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
}

int ss_control_catch_up(ss_control_t *c, int timeout_ms, char *errstr, size_t errlen) {
    int64_t lo = 0, hi = 0, until = ss_mono_ms() + timeout_ms;
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_query_watermark_offsets(c->consumer, c->cfg->rollout_topic, 0, &lo, &hi,
                                                   1000)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (ss_mono_ms() >= until || ss_kafka_refused(NULL, 0)) {
            snprintf(errstr, errlen, "%s: the end of '%s': %s", c->who, c->cfg->rollout_topic,
                     rd_kafka_err2str(err));
            return SS_ERR_FAIL;
        }
    }
    while (c->next_offset < hi) {
        if (ss_mono_ms() >= until) {
            snprintf(errstr, errlen, "%s: '%s' not read to its end (offset %lld of %lld) in %d ms",
                     c->who, c->cfg->rollout_topic, (long long)c->next_offset, (long long)hi,
                     timeout_ms);
            return SS_ERR_FAIL;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->consumer, 100);
        if (!m)
            continue;
        if (!m->err)
            take(c, m);
        else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            c->next_offset = m->offset > c->next_offset ? m->offset : c->next_offset;
        else
            ss_warn("%s: %s", c->who, rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    return 0;
}

const ss_rollout_state_t *ss_control_state(const ss_control_t *c) {
    return &c->state;
}

int64_t ss_control_skipped(const ss_control_t *c) {
    return c->skipped;
}

const char *ss_control_id(const ss_control_t *c) {
    return c->cfg->rollout_id;
}

int ss_control_write(ss_control_t *c, const ss_rollout_state_t *next, int64_t *offset, char *errstr,
                     size_t errlen) {
    const char *id = c->cfg->rollout_id;
    char *value = ss_rollout_dump(next, id, 0);
    if (!value) {
        snprintf(errstr, errlen, "%s: out of memory", c->who);
        return SS_ERR_NOMEM;
    }
    c->delivered = 0;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        c->producer, RD_KAFKA_V_TOPIC(c->cfg->rollout_topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(id, strlen(id)), RD_KAFKA_V_VALUE(value, strlen(value)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    free(value);
    if (err) {
        snprintf(errstr, errlen, "%s: writing to '%s': %s", c->who, c->cfg->rollout_topic,
                 rd_kafka_err2str(err));
        return SS_ERR_FAIL;
    }
    for (int64_t until = ss_mono_ms() + 30000; !c->delivered && ss_mono_ms() < until;)
        rd_kafka_poll(c->producer, 100);
    if (!c->delivered || c->delivery_err) {
        snprintf(errstr, errlen, "%s: writing to '%s': %s", c->who, c->cfg->rollout_topic,
                 c->delivered ? rd_kafka_err2str(c->delivery_err) : "not acknowledged in 30 s");
        return SS_ERR_FAIL;
    }
    *offset = c->delivery_offset;
    return 0;
}

void ss_control_who(char *out, size_t len) {
    char host[256] = "";
    const char *user = getenv("USER");
    if (!user || !*user)
        user = getenv("LOGNAME");
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "unknown");
    snprintf(out, len, "%s@%s", user && *user ? user : "unknown", host);
}
