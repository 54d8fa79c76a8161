/* consumer.c - consumers in the worker's group. Offsets are never committed automatically
 * on poll: auto-commit only commits offsets the pipeline stored after a batch's outputs
 * were acknowledged (enable.auto.offset.store=false), and the final commit is explicit. */
#include "consumer.h"

#include <stdio.h>
#include <string.h>

#include "kafka.h"
#include "log.h"

static void log_partitions(const char *what, const rd_kafka_topic_partition_list_t *parts) {
    int ids[256];
    int n = parts->cnt < 256 ? parts->cnt : 256;
    for (int i = 0; i < n; i++)
        ids[i] = parts->elems[i].partition;
    ss_log(SS_LOG_INFO, SS_FIELDS(SSF_INTS("partitions", ids, n)), "consumer: %s %d partition(s)",
           what, parts->cnt);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    ss_consumer_ctx_t *ctx = opaque;
    if (ctx->metrics)
        __atomic_add_fetch(&ctx->metrics->rebalances, 1, __ATOMIC_RELAXED);
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_partitions("assigned", parts);
        __atomic_store_n(&ctx->joined, 1, __ATOMIC_RELEASE);
        if (ctx->assigning && ctx->assigning(ctx->hook_arg, parts) != 0) {
            ss_error("consumer: the assigned partitions are not taken (their state could not "
                     "be prepared)");
            return;
        }
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
    } else {
        log_partitions("revoked", parts);
        /* At-least-once: hand over what is already safe. Every batch read before this poll
         * has stored its offsets (only after its outputs were acknowledged); commit them now,
         * synchronously, so that the partitions' next owner starts where this one stopped.
         * librdkafka's own commit of revoked partitions is asynchronous and may land after
         * the new owner fetched its starting offsets. Exactly-once commits offsets inside
         * each batch's transaction, which is closed before the next poll. Partitions lost
         * (this member was dropped from the group) may already belong to another member:
         * nothing is committed for them. */
        int lost = rd_kafka_assignment_lost(rk);
        if (lost)
            __atomic_store_n(&ctx->joined, 0, __ATOMIC_RELEASE); /* until assigned again */
        else if (ctx->handing_over)
            ctx->handing_over(ctx->hook_arg); /* every change written, its offsets stored */
        if (!lost && ctx->commits_itself) {
            rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, 0);
            if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
                ss_warn("consumer: committing before handing partitions over: %s "
                        "(their next owner re-reads from the last commit)",
                        rd_kafka_err2str(ce));
        }
        if (ctx->revoked)
            ctx->revoked(ctx->hook_arg, parts);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ret = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        ss_error("consumer: rebalance: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        ss_error("consumer: rebalance: %s", rd_kafka_err2str(ret));
    }
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    ss_consumer_ctx_t *ctx = opaque;
    ss_metrics_update_lag(ctx->metrics, ctx->index, json, len);
    return 0; /* librdkafka frees json */
}

rd_kafka_t *ss_consumer_new(const ss_config_t *cfg, int thread_index, ss_consumer_ctx_t *ctx,
                            ss_metrics_t *metrics, char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *topics = NULL;
    rd_kafka_t *rk = NULL;
    char err[256], client_id[64];
    snprintf(client_id, sizeof(client_id), "streamscore-%s-%d", ss_mode_name(cfg->mode),
             thread_index);
    /* defaults a user may override */
    rd_kafka_conf_set(conf, "client.id", client_id, err, sizeof(err));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
    rd_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err,
                      sizeof(err));
    rd_kafka_conf_set(conf, "auto.commit.interval.ms", "1000", err, sizeof(err));
    memset(ctx, 0, sizeof(*ctx));
    ctx->index = thread_index;
    ctx->commits_itself = cfg->delivery == SS_DELIVERY_AT_LEAST_ONCE;
    ctx->metrics = metrics;
    if (metrics && *cfg->metrics_listen) {
        char interval[32];
        snprintf(interval, sizeof(interval), "%ld", cfg->metrics_lag_interval_ms);
        rd_kafka_conf_set(conf, "statistics.interval.ms", interval, err, sizeof(err));
        rd_kafka_conf_set_stats_cb(conf, stats_cb);
    }
    if (ss_kafka_conf_apply(conf, cfg, SS_KAFKA_CONSUMER, errstr, errlen) < 0)
        goto fail;
    /* what makes "committed only after outputs are safe" true: not overridable */
    /* exactly-once: offsets are committed only inside the batch's transaction */
    const char *autocommit = cfg->delivery == SS_DELIVERY_EXACTLY_ONCE ? "false" : "true";
    if (rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", autocommit, err, sizeof(err))) {
        snprintf(errstr, errlen, "consumer: %s", err);
        goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, ctx);
    ss_kafka_conf_logging(conf);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        snprintf(errstr, errlen, "consumer: %s", err);
        goto fail;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(rk);
    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, cfg->input_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(errstr, errlen, "consumer: subscribe to '%s' (key input.topic): %s",
                 cfg->input_topic, rd_kafka_err2str(e));
        goto fail;
    }
    return rk;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (rk)
        rd_kafka_destroy(rk);
    return NULL;
}

void ss_consumer_destroy(rd_kafka_t *rk) {
    if (!rk)
        return;
    rd_kafka_resp_err_t err = rd_kafka_commit(rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        ss_warn("consumer: final commit: %s", rd_kafka_err2str(err));
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}
