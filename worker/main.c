/* main.c - the streamscore command line: run the worker, print the configuration
 * reference, version and help. Exit codes: 0 success, 1 runtime failure, 2 bad usage
 * or configuration (with a message naming the key). */
#include <avro.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "model.h"
#include "pipeline.h"

#ifndef SS_VERSION
#define SS_VERSION "0.0.0"
#endif

extern char **environ;

static volatile int stop_requested = 0;

static void on_signal(int sig) {
    (void)sig;
    if (stop_requested) { /* a second signal: stop now, uncommitted work is read again */
        static const char msg[] =
            "{\"level\":\"error\",\"msg\":\"second stop signal: exiting at once, the "
            "batch in hand is not committed\"}\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(1);
    }
    stop_requested = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "streamscore %s - score Kafka events with an XGBoost model\n\n"
            "Usage:\n"
            "  streamscore run -c FILE [-X key=value ...]   run the worker until SIGTERM/SIGINT\n"
            "  streamscore config-reference [--markdown]    print every configuration key\n"
            "  streamscore --version | --help\n\n"
            "Configuration: a .properties file (key = value). Every key can be overridden by an\n"
            "environment variable STREAMSCORE_<KEY> (upper case, '.' -> '_'), and -X beats both.\n"
            "Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.\n\n"
            "Keys:\n",
            SS_VERSION);
    if (out == stdout)
        ss_config_print_reference(0);
    else
        fprintf(out, "  (see 'streamscore --help')\n");
}

static void warn_unknown_env(const char *name) {
    char fields[300];
    snprintf(fields, sizeof(fields), "\"variable\":\"%.200s\"", name);
    ss_log(SS_LOG_WARN, fields, "config: environment variable %s names no key; ignored", name);
}

static int cmd_run(int argc, char **argv) {
    const char *file = NULL;
    char err[1024];
    ss_config_t *cfg = ss_config_new();
    int rc = 2;
    ss_model_t *model = NULL;
    if (!cfg) {
        fprintf(stderr, "streamscore: out of memory\n");
        return 1;
    }
    /* -c first, so that -X applies on top of the file and the environment */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "streamscore run: -c needs a file\n");
                goto out;
            }
            file = argv[++i];
        } else if (strcmp(argv[i], "-X") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "streamscore run: -X needs key=value\n");
                goto out;
            }
            i++;
        } else {
            fprintf(stderr, "streamscore run: unknown argument '%s'\n", argv[i]);
            goto out;
        }
    }
    if (!file) {
        fprintf(stderr, "streamscore run: -c FILE is required\n");
        goto out;
    }
    if (ss_config_load_file(cfg, file, err, sizeof(err)) < 0 ||
        ss_config_apply_env(cfg, environ, warn_unknown_env, err, sizeof(err)) < 0)
        goto bad_config;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-X") != 0)
            continue;
        char *kv = argv[++i], *eq = strchr(kv, '=');
        if (!eq) {
            fprintf(stderr, "streamscore run: -X expects key=value, got '%s'\n", kv);
            goto out;
        }
        *eq = '\0';
        int r = ss_config_set(cfg, kv, eq + 1, "-X", err, sizeof(err));
        *eq = '=';
        if (r < 0)
            goto bad_config;
    }
    if (ss_config_finalize(cfg, err, sizeof(err)) < 0)
        goto bad_config;

    model = ss_model_load(cfg->model_path, cfg->model_card, cfg->model_name, cfg->model_version,
                          err, sizeof(err));
    if (!model)
        goto bad_config;
    char fields[512];
    snprintf(fields, sizeof(fields),
             "\"model\":\"%s\",\"version\":\"%s\",\"features\":%zu,\"xgboost\":\"%s\"",
             model->name, model->version, model->n_features, ss_model_xgboost_version());
    ss_log(SS_LOG_INFO, fields, "model loaded from %s", cfg->model_path);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ss_stats_t stats;
    memset(&stats, 0, sizeof(stats));
    rc = ss_pipeline_run(cfg, model, &stop_requested, &stats);
    snprintf(fields, sizeof(fields),
             "\"consumed\":%ld,\"scored\":%ld,\"produced\":%ld,\"dead_lettered\":%ld,"
             "\"cache_errors\":%ld,\"batches\":%ld,\"exit\":%d",
             stats.consumed, stats.scored, stats.produced, stats.dead_lettered, stats.cache_errors,
             stats.batches, rc);
    ss_log(rc ? SS_LOG_ERROR : SS_LOG_INFO, fields, "worker stopped");
    goto out;

bad_config:
    ss_log(SS_LOG_ERROR, NULL, "%s", err);
    fprintf(stderr, "streamscore: %s\n", err);
    rc = 2;
out:
    ss_model_unref(model);
    ss_config_destroy(cfg);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("streamscore %s (librdkafka %s, XGBoost %s)\n", SS_VERSION, rd_kafka_version_str(),
               ss_model_xgboost_version());
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "config-reference") == 0) {
        ss_config_print_reference(argc > 2 && strcmp(argv[2], "--markdown") == 0);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    fprintf(stderr, "streamscore: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
