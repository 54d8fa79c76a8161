/* compare_read.c - a finite read of whole Kafka topics for `compare`: manual assignment in a
 * throw-away consumer group that never commits, from the first offset at or after --from to
 * the high watermark taken at start. compare.timeout.ms bounds every wait: the metadata and
 * offset requests, and any stretch without a record or end of partition. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "compare_int.h"
#include "error.h"
#include "kafka.h"
#include "log.h"

typedef struct kpart {
    int64_t start, next, end;
    int done;
} kpart_t;

struct cmp_kreader {
    rd_kafka_t *rk;
    const char *name[2], *key[2];
    kpart_t *parts[2];
    int n_parts[2], n_topics;
    long timeout_ms;
    const char *bootstrap;
    uint64_t expected;
};

void cmp_kreader_destroy(cmp_kreader_t *kr) {
    if (!kr)
        return;
    if (kr->rk) {
        rd_kafka_consumer_close(kr->rk);
        rd_kafka_destroy(kr->rk);
    }
    free(kr->parts[0]);
    free(kr->parts[1]);
    free(kr);
}

int cmp_kreader_partitions(const cmp_kreader_t *kr, int topic_index) {
    return topic_index < kr->n_topics ? kr->n_parts[topic_index] : 0;
}

uint64_t cmp_kreader_expected(const cmp_kreader_t *kr) {
    return kr->expected;
}

/* The consumer: defaults a user may override, kafka.* applied, then what a read-only pass
 * needs (a group of its own that never commits). */
static int consumer_new(cmp_kreader_t *kr, const ss_config_t *cfg, char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512], gid[96];
    int rc = SS_ERR_FAIL;
    if (!conf) {
        snprintf(errstr, errlen, "out of memory");
        return SS_ERR_NOMEM;
    }
    /* the prefetch queue counts in compare's memory bound */
    ss_kafka_conf_default(conf, "client.id", "streamscore-compare");
    ss_kafka_conf_default(conf, "queued.max.messages.kbytes", "16384");
    if ((rc = ss_kafka_conf_apply(conf, cfg, SS_KAFKA_CONSUMER, errstr, errlen)) < 0)
        goto cleanup;
    rc = SS_ERR_FAIL;
    snprintf(gid, sizeof(gid), "streamscore-compare-%ld-%" PRId64, (long)getpid(), ss_wall_ms());
    if (rd_kafka_conf_set(conf, "group.id", gid, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err))) {
        snprintf(errstr, errlen, "kafka consumer: %s", err);
        goto cleanup;
    }
    ss_kafka_conf_logging(conf);
    if (!(kr->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)))) {
        snprintf(errstr, errlen, "kafka consumer: %s", err);
        rc = SS_ERR_CONFIG;
        goto cleanup;
    }
    conf = NULL; /* the client owns it */
    rd_kafka_poll_set_consumer(kr->rk);
    rc = 0;
cleanup:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return rc;
}

/* The cluster's metadata (all topics: asking for one by name could create it), asked again
 * every 500 ms until compare.timeout.ms. Between the asks the consumer is polled, which is
 * where librdkafka reports a broker refusing the client's credentials or certificate: that
 * ends the wait at once, as a configuration error with the refusal's one line (as for run). */
static int cluster_metadata(cmp_kreader_t *kr, const struct rd_kafka_metadata **md, char *errstr,
                            size_t errlen) {
    int64_t until = ss_mono_ms() + kr->timeout_ms;
    for (;;) {
        int64_t left = until - ss_mono_ms();
        rd_kafka_resp_err_t e = rd_kafka_metadata(kr->rk, 1, NULL, md,
                                                  left > 500 ? 500
                                                  : left > 0 ? (int)left
                                                             : 1);
        if (!e)
            return 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kr->rk, 0); /* serves error callbacks */
        if (m)
            rd_kafka_message_destroy(m);
        if (ss_kafka_refused(errstr, errlen))
            return SS_ERR_CONFIG;
        if (ss_mono_ms() >= until) {
            snprintf(errstr, errlen,
                     "cannot reach Kafka at %s within %ld ms (compare.timeout.ms): %s",
                     kr->bootstrap, kr->timeout_ms, rd_kafka_err2str(e));
            return SS_ERR_FAIL;
        }
    }
}

/* Watermarks of one partition. A partition whose leader is still being elected (a topic
 * just created, a broker restarting) answers with a retriable error: ask again until
 * timeout_ms has passed. */
static rd_kafka_resp_err_t query_offsets_retrying(rd_kafka_t *rk, const char *topic, int p,
                                                  int64_t *lo, int64_t *hi, long timeout_ms) {
    int64_t t0 = ss_mono_ms();
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, p, lo, hi, (int)timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
            e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE && e != RD_KAFKA_RESP_ERR__TRANSPORT)
            return e;
        if (ss_mono_ms() - t0 >= timeout_ms)
            return e;
        ss_sleep_ms(100);
    }
}

/* Topic t's partitions (from the cluster's metadata) and their watermarks. */
static int topic_ranges(cmp_kreader_t *kr, const struct rd_kafka_metadata *md, int t, char *errstr,
                        size_t errlen) {
    const struct rd_kafka_metadata_topic *mt = NULL;
    const char *name = kr->name[t];
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0)
            mt = &md->topics[i];
    if (!mt || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || mt->partition_cnt == 0) {
        snprintf(errstr, errlen, "topic '%s' (%s) does not exist on %s", name, kr->key[t],
                 kr->bootstrap);
        return SS_ERR_FAIL;
    }
    if (mt->err) {
        snprintf(errstr, errlen, "topic '%s' (%s) on %s: %s", name, kr->key[t], kr->bootstrap,
                 rd_kafka_err2str(mt->err));
        return SS_ERR_FAIL;
    }
    kr->n_parts[t] = mt->partition_cnt;
    if (!(kr->parts[t] = calloc((size_t)mt->partition_cnt, sizeof(kpart_t)))) {
        snprintf(errstr, errlen, "out of memory");
        return SS_ERR_NOMEM;
    }
    for (int p = 0; p < mt->partition_cnt; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = query_offsets_retrying(kr->rk, name, p, &lo, &hi, kr->timeout_ms);
        if (e) {
            snprintf(errstr, errlen,
                     "topic '%s' partition %d on %s: cannot read its offsets within %ld ms: %s",
                     name, p, kr->bootstrap, kr->timeout_ms, rd_kafka_err2str(e));
            return SS_ERR_FAIL;
        }
        kr->parts[t][p] = (kpart_t){lo, lo, hi, lo >= hi};
    }
    return 0;
}

/* Move each partition's start to its first offset at or after from_ms. */
static int seek_from(cmp_kreader_t *kr, int64_t from_ms, char *errstr, size_t errlen) {
    rd_kafka_topic_partition_list_t *times = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t e;
    int rc = SS_ERR_FAIL;
    for (int t = 0; t < kr->n_topics; t++)
        for (int p = 0; p < kr->n_parts[t]; p++)
            rd_kafka_topic_partition_list_add(times, kr->name[t], p)->offset = from_ms;
    if ((e = rd_kafka_offsets_for_times(kr->rk, times, (int)kr->timeout_ms))) {
        snprintf(errstr, errlen, "--from: cannot look up offsets by time on %s: %s", kr->bootstrap,
                 rd_kafka_err2str(e));
        goto cleanup;
    }
    for (int i = 0; i < times->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &times->elems[i];
        int t = strcmp(tp->topic, kr->name[0]) == 0 ? 0 : 1;
        kpart_t *kp = &kr->parts[t][tp->partition];
        if (tp->err) {
            snprintf(errstr, errlen, "--from: topic '%s' partition %d: %s", tp->topic,
                     tp->partition, rd_kafka_err2str(tp->err));
            goto cleanup;
        }
        if (tp->offset < 0) /* no record at or after from_ms */
            kp->start = kp->end;
        else if (tp->offset > kp->start)
            kp->start = tp->offset;
        kp->next = kp->start;
        kp->done = kp->start >= kp->end;
    }
    rc = 0;
cleanup:
    rd_kafka_topic_partition_list_destroy(times);
    return rc;
}

int cmp_kreader_new(const ss_config_t *cfg, const char *const *names, const char *const *keys,
                    int n, int64_t from_ms, cmp_kreader_t **out, char *errstr, size_t errlen) {
    cmp_kreader_t *kr = ss_zalloc(sizeof(*kr), "compare", errstr, errlen);
    const struct rd_kafka_metadata *md = NULL;
    int rc = SS_ERR_NOMEM;
    *out = NULL;
    if (!kr)
        goto cleanup;
    kr->timeout_ms = cfg->compare_timeout_ms;
    kr->bootstrap = "?";
    for (size_t i = 0; i < cfg->n_kafka; i++)
        if (strcmp(cfg->kafka[i].key, "bootstrap.servers") == 0)
            kr->bootstrap = cfg->kafka[i].value;
    if ((rc = consumer_new(kr, cfg, errstr, errlen)) < 0)
        goto cleanup;
    if ((rc = cluster_metadata(kr, &md, errstr, errlen)) < 0)
        goto cleanup;
    kr->n_topics = n;
    for (int t = 0; t < n; t++) {
        kr->name[t] = names[t], kr->key[t] = keys[t];
        if ((rc = topic_ranges(kr, md, t, errstr, errlen)) < 0)
            goto cleanup;
    }
    if (from_ms != INT64_MIN && (rc = seek_from(kr, from_ms, errstr, errlen)) < 0)
        goto cleanup;
    for (int t = 0; t < n; t++)
        for (int p = 0; p < kr->n_parts[t]; p++)
            kr->expected += (uint64_t)(kr->parts[t][p].end - kr->parts[t][p].start);
    *out = kr;
    kr = NULL;
    rc = 0;
cleanup:
    if (md)
        rd_kafka_metadata_destroy(md);
    cmp_kreader_destroy(kr);
    return rc;
}

/* Assign every partition that has records in its range; the number assigned, or
 * SS_ERR_FAIL. */
static int assign_ranges(cmp_kreader_t *kr, char *errstr, size_t errlen) {
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(8);
    int pending = 0;
    for (int t = 0; t < kr->n_topics; t++)
        for (int p = 0; p < kr->n_parts[t]; p++)
            if (!kr->parts[t][p].done) {
                rd_kafka_topic_partition_list_add(assign, kr->name[t], p)->offset =
                    kr->parts[t][p].start;
                pending++;
            }
    rd_kafka_resp_err_t e = pending ? rd_kafka_assign(kr->rk, assign) : 0;
    rd_kafka_topic_partition_list_destroy(assign);
    if (e) {
        snprintf(errstr, errlen, "kafka: cannot assign partitions: %s", rd_kafka_err2str(e));
        return SS_ERR_FAIL;
    }
    return pending;
}

/* The error of a read that stalled: the first partition not done. */
static void timed_out(const cmp_kreader_t *kr, char *errstr, size_t errlen) {
    for (int t = 0; t < kr->n_topics; t++)
        for (int p = 0; p < kr->n_parts[t]; p++)
            if (!kr->parts[t][p].done) {
                snprintf(errstr, errlen,
                         "timed out: no data for %ld ms (compare.timeout.ms) from topic '%s' "
                         "partition %d on %s (at offset %" PRId64 " of %" PRId64 ")",
                         kr->timeout_ms, kr->name[t], p, kr->bootstrap, kr->parts[t][p].next,
                         kr->parts[t][p].end);
                return;
            }
}

/* One polled message: a record of a range, an end of partition or an error. Counts the
 * partitions that reach their end in *pending; sets *progress when the read moved on. */
static int on_message(cmp_kreader_t *kr, rd_kafka_message_t *m, cmp_msg_cb cb, void *opaque,
                      int *pending, int *progress, char *errstr, size_t errlen) {
    int t = m->rkt && strcmp(rd_kafka_topic_name(m->rkt), kr->name[0]) == 0 ? 0 : 1;
    kpart_t *kp = m->rkt && t < kr->n_topics && m->partition >= 0 && m->partition < kr->n_parts[t]
                      ? &kr->parts[t][m->partition]
                      : NULL;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        *progress = 1;
        if (kp && !kp->done)
            kp->done = 1, (*pending)--;
        return 0;
    }
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
            m->err != RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC &&
            m->err != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION &&
            m->err != RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
            ss_warn("kafka: %s", rd_kafka_message_errstr(m));
            return 0;
        }
        snprintf(errstr, errlen, "kafka: topic '%s': %s",
                 m->rkt ? rd_kafka_topic_name(m->rkt) : "?", rd_kafka_message_errstr(m));
        return SS_ERR_FAIL;
    }
    if (!kp || kp->done)
        return 0;
    *progress = 1;
    int rc = m->offset < kp->end && cb(opaque, t, m) < 0 ? SS_ERR_FAIL : 0;
    kp->next = m->offset + 1;
    if (kp->next >= kp->end)
        kp->done = 1, (*pending)--;
    return rc;
}

int cmp_kreader_run(cmp_kreader_t *kr, cmp_msg_cb cb, void *opaque, char *errstr, size_t errlen) {
    int pending = assign_ranges(kr, errstr, errlen), rc = 0;
    if (pending < 0)
        return pending;
    int64_t last = ss_mono_ms();
    while (pending > 0 && rc == 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kr->rk, 100);
        int progress = 0;
        if (!m) {
            if (ss_mono_ms() - last <= kr->timeout_ms)
                continue;
            timed_out(kr, errstr, errlen);
            return SS_ERR_FAIL;
        }
        rc = on_message(kr, m, cb, opaque, &pending, &progress, errstr, errlen);
        if (progress)
            last = ss_mono_ms();
        rd_kafka_message_destroy(m);
    }
    return rc;
}
