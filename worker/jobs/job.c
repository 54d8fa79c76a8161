/* job.c - the pieces every offline job builds the same way. */
#include "job.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "kafka.h"
#include "log.h"

static int *stop_flag;

static void on_stop(int sig) {
    (void)sig;
    if (__atomic_exchange_n(stop_flag, 1, __ATOMIC_SEQ_CST)) {
        static const char msg[] = "streamscore: a second stop signal: exiting at once\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(1);
    }
}

void ss_job_catch_signals(int *stop) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    stop_flag = stop;
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int ss_job_check_target(const ss_config_t *cfg, const char *opt, const char *topic, char *errstr,
                        size_t errlen) {
    const char *keys[] = {"input.topic", "output.topic", "shadow.topic", "dlq.topic"};
    const char *live[] = {cfg->input_topic, cfg->output_topic, cfg->shadow_topic, cfg->dlq_topic};
    if (!*topic) {
        snprintf(errstr, errlen, "%s: the topic name is empty", opt);
        return SS_ERR_CONFIG;
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (live[i] && strcmp(live[i], topic) == 0) {
            snprintf(errstr, errlen,
                     "%s '%s' is the worker's %s: a job never writes the live topics; name "
                     "another topic",
                     opt, topic, keys[i]);
            return SS_ERR_CONFIG;
        }
    }
    return 0;
}

int ss_job_check_exists(rd_kafka_t *rk, const char *opt, const char *topic, char *errstr,
                        size_t errlen) {
    int n = ss_kafka_partitions(rk, topic, 30000, opt, errstr, errlen);
    if (n == -1) {
        snprintf(errstr, errlen,
                 "%s '%s' does not exist: create it first (a job never creates topics)", opt,
                 topic);
        return SS_ERR_CONFIG;
    }
    return n < 0 ? n : 0;
}

int ss_job_open(ss_job_t *j, const ss_config_t *cfg, const char *model_path,
                const char *output_topic, const char *dlq_topic, char *errstr, size_t errlen) {
    int rc;
    j->cfg = cfg;
    j->jc = *cfg;
    j->jc.mode = SS_MODE_PRIMARY;
    j->jc.explain_topic = (char *)"";
    j->threshold = cfg->model_threshold;
    if (model_path) {
        ss_model_card_path(model_path, j->card, sizeof(j->card));
        j->jc.model_path = (char *)model_path;
        j->jc.model_card = j->card;
        j->jc.model_name = NULL;
        j->jc.model_version = NULL;
        j->threshold = NAN;
        j->jc.model_threshold = NAN;
    }
    if (!(j->stats = calloc(1, sizeof(*j->stats)))) {
        snprintf(errstr, errlen, "out of memory");
        return SS_ERR_NOMEM;
    }
    ss_metrics_init(j->stats);
    if ((rc = ss_model_open(&j->jc, NULL, &j->model, errstr, errlen)) < 0)
        return rc;
    ss_codec_cats_t cats;
    ss_model_codec_cats(j->model, cfg->features_unseen_category, &cats);
    if (!(j->codec = ss_codec_new_cats(&j->jc, j->model->feature_names, j->model->n_features, &cats,
                                       NULL, NULL, errstr, errlen)))
        return SS_ERR_CONFIG;
    if (*cfg->registry_url && !(j->registry = ss_registry_new(&j->jc, j->stats, errstr, errlen)))
        return SS_ERR_FAIL;
    ss_codec_attach_registry(j->codec,
                             cfg->input_framing == SS_FRAMING_CONFLUENT ? j->registry : NULL,
                             cfg->registry_miss_ttl_ms, j->stats);
    if (!output_topic)
        return 0;
    j->jc.output_topic = (char *)output_topic;
    j->jc.dlq_topic = (char *)(dlq_topic ? dlq_topic : "");
    if (!(j->output = ss_output_new(&j->jc, j->stats, errstr, errlen)))
        return strncmp(errstr, "config: ", 8) == 0 ? SS_ERR_CONFIG : SS_ERR_NOMEM;
    if ((rc = ss_output_register_schema(j->output, j->registry, errstr, errlen)) < 0)
        return rc;
    ss_encoder_needs_t needs = {.no_decision = isnan(ss_model_threshold(j->model, j->threshold)),
                                .contributions = cfg->explain_top_k > 0};
    char why[512];
    snprintf(why, sizeof(why), "model '%s' (objective %s) has no decision", j->model->path,
             j->model->objective.name);
    return ss_output_check_needs(j->output, &needs, why, errstr, errlen);
}

void ss_job_close(ss_job_t *j) {
    ss_output_destroy(j->output);
    ss_codec_destroy(j->codec);
    ss_registry_destroy(j->registry);
    ss_model_unref(j->model);
    if (j->stats)
        ss_metrics_destroy(j->stats);
    free(j->stats);
    memset(j, 0, sizeof(*j));
}

static void print_value(const char *key, json_t *v, int depth) {
    if (json_is_object(v)) {
        printf("%*s%s:\n", depth * 2, "", key);
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) print_value(k, x, depth + 1);
        return;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    printf("%*s%s: %s\n", depth * 2, "", key, text ? text : "?");
    free(text);
}

void ss_job_print_summary(json_t *summary, int json) {
    if (json) {
        char *text = json_dumps(summary, JSON_COMPACT);
        if (text)
            printf("%s\n", text);
        free(text);
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(summary, k, v) print_value(k, v, 0);
    }
    fflush(stdout);
    json_decref(summary);
}

void ss_job_count_reason(json_t *reasons, const char *reason) {
    json_t *n = json_object_get(reasons, reason);
    json_object_set_new(reasons, reason, json_integer((n ? json_integer_value(n) : 0) + 1));
}

int ss_job_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}
