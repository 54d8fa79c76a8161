/* replay_int.h - the parts of `streamscore replay`: replay.c reads the options and resolves
 * the range (and the progress of an earlier run), replay_run.c reads, scores and publishes it
 * in transactions. */
#ifndef SS_REPLAY_INT_H
#define SS_REPLAY_INT_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "job.h"
#include "producer.h"
#include "progress.h"
#include "scorer.h"

/* One partition of input.topic: the range [start, end) published, the events from fstart
 * read for the features, `next` the first offset not published yet (the progress). */
typedef struct rp_part {
    int32_t id;
    int64_t start, end, fstart, next;
    int64_t resumed_at; /* -1: not resumed */
    int done;           /* read up to end */
} rp_part_t;

typedef struct rp {
    const ss_config_t *cfg;
    /* options */
    const char *from, *to, *features_from, *output_topic, *model_path, *dlq_topic;
    int seed, restart, json, progress;
    int stop; /* atomic */
    /* what it runs with */
    ss_job_t job;
    char group[512], txn_id[512], sig[17];
    rd_kafka_t *consumer;
    rd_kafka_queue_t *queue;
    ss_producer_t *producer;
    ss_output_writer_t *writer;
    ss_ack_t ack;
    ss_decoder_t *dec;
    ss_scorer_t *scorer;
    rp_part_t *parts;
    int n_parts;
    int in_txn;
    int64_t txn_started; /* monotonic ms */
    int resumed, was_complete, failed;
    /* figures */
    long read, warm, predictions, dead, total;
    json_t *reasons;
    ss_progress_t prog;
} rp_t;

/* replay_run.c: pin the range (a fresh run's first transaction), read it, publish, commit.
 * Returns 0, or a negative SS_ERR_* code with errstr. */
int rp_pin(rp_t *r, char *errstr, size_t errlen);
int rp_run(rp_t *r, char *errstr, size_t errlen);
/* The progress metadata committed with partition p's offset. */
void rp_metadata(const rp_t *r, const rp_part_t *p, char *out, size_t len);

#endif
