/* job.h - what the offline jobs (replay, score-file) share: the stop signals, the topics they
 * must never write, their run-time pieces made from the worker's configuration (model, codec,
 * output) and their summary. */
#ifndef SS_JOB_H
#define SS_JOB_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "metrics.h"
#include "model.h"
#include "output.h"
#include "registry.h"

/* SIGINT and SIGTERM set *stop (atomic) from now on; a second one exits at once (status 1). */
void ss_job_catch_signals(int *stop);

static inline int ss_job_stopping(const int *stop) {
    return __atomic_load_n(stop, __ATOMIC_ACQUIRE) != 0;
}

/* A topic a job may not write (`opt` names the option): the worker's input, output, shadow
 * and dead-letter topics. Returns 0, or SS_ERR_CONFIG with errstr. */
int ss_job_check_target(const ss_config_t *cfg, const char *opt, const char *topic, char *errstr,
                        size_t errlen);

/* Whether `topic` exists (a job never creates topics), asked through client `rk`. Returns 0,
 * SS_ERR_CONFIG with errstr naming `opt` when it does not, SS_ERR_FAIL when Kafka did not
 * answer. */
int ss_job_check_exists(rd_kafka_t *rk, const char *opt, const char *topic, char *errstr,
                        size_t errlen);

/* What a job runs with. `jc` is a copy of the worker's configuration (the strings are
 * shared, not owned) that the job changes: where its output goes, which model it scores. */
typedef struct ss_job {
    const ss_config_t *cfg; /* the worker's, as loaded */
    ss_config_t jc;
    char card[4096];
    double threshold; /* model.threshold for the configured model, NaN for --model's card */
    ss_metrics_t *stats;
    ss_model_t *model;
    ss_codec_t *codec;
    ss_registry_t *registry;
    ss_output_t *output; /* NULL when the job writes files */
} ss_job_t;

/* The job's model (model.path, or `model_path` with its own card), codec (with the registry
 * when input.framing = confluent), and, with `output_topic`, the output writing predictions
 * there and dead letters to `dlq_topic` (NULL: none), explanations inside the predictions.
 * Returns 0, or SS_ERR_CONFIG / another SS_ERR_* code with errstr. */
int ss_job_open(ss_job_t *j, const ss_config_t *cfg, const char *model_path,
                const char *output_topic, const char *dlq_topic, char *errstr, size_t errlen);
void ss_job_close(ss_job_t *j);

/* The summary: with `json`, the object on one line on stdout; else "key: value" lines.
 * Takes the reference. */
void ss_job_print_summary(json_t *summary, int json);

/* Dead letters by reason, a JSON object of counts (json_object_set_new semantics). */
void ss_job_count_reason(json_t *reasons, const char *reason);

/* The online cores, at least 1. */
int ss_job_cores(void);

#endif
