/* main.c - the streamscore command line: run the worker, the offline tools, the
 * configuration reference, version and help. The one place where exit codes are decided:
 * 0 success, 1 runtime failure, 2 bad usage or configuration (with a message naming the
 * key), 3 a verdict against (compare says hold, validate-model failed a gate). */
#include <avro.h>
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compare.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "model.h"
#include "replay.h"
#include "rollout_cmd.h"
#include "run.h"
#include "score_file.h"
#include "validate.h"
#include "versions.h"

#ifndef SS_VERSION
#define SS_VERSION "0.0.0"
#endif

extern char **environ;

/* The exit status of a command's SS_ERR_* result. */
static int exit_code(int rc) {
    switch (rc) {
    case SS_OK: return 0;
    case SS_ERR_CONFIG: return 2;
    case SS_ERR_VERDICT: return 3;
    default: return 1; /* any other SS_ERR_* code: a runtime failure */
    }
}

static int stop_requested = 0; /* atomic */

static void on_signal(int sig) {
    (void)sig;
    /* the flags are read by the worker threads: atomics, which are also signal-safe */
    if (__atomic_exchange_n(&stop_requested, 1, __ATOMIC_SEQ_CST)) {
        /* a second signal: stop now, uncommitted work is read again */
        static const char msg[] =
            "{\"level\":\"error\",\"msg\":\"second stop signal: exiting at once, the "
            "batch in hand is not committed\"}\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(1);
    }
}

static int reload_requested = 0; /* atomic */

static void on_hup(int sig) {
    (void)sig;
    __atomic_store_n(&reload_requested, 1, __ATOMIC_SEQ_CST);
}

static void usage(FILE *out) {
    fprintf(out,
            "streamscore %s - score Kafka events with an XGBoost model\n\n"
            "Usage:\n"
            "  streamscore run -c FILE [-X key=value ...]   run the worker until SIGTERM/SIGINT\n"
            "  streamscore compare -c FILE [options]        compare primary and shadow results\n"
            "  streamscore rollout status|start|step|promote|rollback -c FILE [options]\n"
            "                                               move a candidate model to the canary\n"
            "  streamscore replay -c FILE --from WHEN --output-topic TOPIC [options]\n"
            "                                               re-score a range of input.topic\n"
            "  streamscore score-file -c FILE --input PATH --output PATH [options]\n"
            "                                               score Avro or JSON-lines files\n"
            "  streamscore validate-model -c FILE --data FILE.avro [options]\n"
            "                                               check a model against its gates\n"
            "  streamscore check-config -c FILE [-X key=value ...]\n"
            "                                               validate a worker's configuration\n"
            "  streamscore config-reference [--markdown]    print every configuration key\n"
            "  streamscore --version | --help\n\n"
            "Configuration: a .properties file (key = value). Every key can be overridden by an\n"
            "environment variable STREAMSCORE_<KEY> (upper case, '.' -> '_'), and -X beats both.\n"
            "Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration,\n"
            "3 a verdict against: compare says hold, validate-model failed a gate.\n"
            "'streamscore compare --help', 'streamscore rollout --help' and "
            "'streamscore validate-model --help' for their options.\n\n"
            "Keys:\n",
            SS_VERSION);
    if (out == stdout)
        ss_config_print_reference(0);
    else
        fprintf(out, "  (see 'streamscore --help')\n");
}

static void warn_unknown_env(const char *name) {
    ss_log(SS_LOG_WARN, SS_FIELDS(SSF_STR("variable", name)),
           "config: environment variable %s names no key; ignored", name);
}

static void warn_config(const char *message) {
    ss_log(SS_LOG_WARN, NULL, "%s", message);
}

/* Configuration from -c FILE, the environment and -X key=value, in that order of
 * precedence (last wins). Arguments that are neither are left in rest[] for the command.
 * Returns the finalized config, or NULL after printing the error (exit 2). */
static ss_config_t *load_config(const char *cmd, int argc, char **argv, unsigned commands,
                                int *n_rest, char **rest) {
    const char *file = NULL;
    char err[1024];
    ss_config_t *cfg = ss_config_new();
    *n_rest = 0;
    if (!cfg) {
        fprintf(stderr, "streamscore: out of memory\n");
        return NULL;
    }
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0 ||
            strcmp(argv[i], "-X") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "streamscore %s: %s needs a value\n", cmd, argv[i]);
                goto fail;
            }
            if (argv[i][1] != 'X')
                file = argv[i + 1];
            i++;
        } else {
            rest[(*n_rest)++] = argv[i];
        }
    }
    if (!file) {
        fprintf(stderr, "streamscore %s: -c FILE is required\n", cmd);
        goto fail;
    }
    cfg->warn = warn_config;
    if (ss_config_load_file(cfg, file, err, sizeof(err)) < 0 ||
        ss_config_apply_env(cfg, environ, warn_unknown_env, err, sizeof(err)) < 0)
        goto bad;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-X") != 0)
            continue;
        char *kv = argv[++i], *eq = strchr(kv, '=');
        if (!eq) {
            fprintf(stderr, "streamscore %s: -X expects key=value, got '%s'\n", cmd, kv);
            goto fail;
        }
        *eq = '\0';
        int r = ss_config_set(cfg, kv, eq + 1, "-X", err, sizeof(err));
        *eq = '=';
        if (r < 0)
            goto bad;
    }
    if (ss_config_finalize_command(cfg, commands, err, sizeof(err)) < 0)
        goto bad;
    return cfg;
bad:
    ss_log(SS_LOG_ERROR, NULL, "%s", err);
    fprintf(stderr, "streamscore: %s\n", err);
fail:
    ss_config_destroy(cfg);
    return NULL;
}

static int help_requested(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* `run --help`, `check-config --help`: the usage line, then the keys run reads. */
static int help_run(const char *cmd) {
    printf("Usage: streamscore %s -c FILE [-X key=value ...]\n\nKeys (run reads them; "
           "check-config checks them):\n",
           cmd);
    ss_config_print_reference_for(SS_CMD_RUN, 0);
    return 0;
}

static int cmd_run(int argc, char **argv) {
    if (help_requested(argc, argv))
        return help_run("run");
    char err[1024];
    int n_rest;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    ss_config_t *cfg = rest ? load_config("run", argc, argv, SS_CMD_RUN, &n_rest, rest) : NULL;
    ss_model_t *model = NULL;
    int rc = 2;
    if (!cfg)
        goto out;
    if (n_rest > 0) {
        fprintf(stderr, "streamscore run: unknown argument '%s'\n", rest[0]);
        goto out;
    }
    if (ss_model_open(cfg, NULL, &model, err, sizeof(err)) < 0) {
        ss_log(SS_LOG_ERROR, NULL, "%s", err);
        fprintf(stderr, "streamscore: %s\n", err);
        goto out;
    }
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("model", model->name), SSF_STR("version", model->version),
                     SSF_INT("features", model->n_features),
                     SSF_STR("xgboost", ss_model_xgboost_version())),
           "model loaded from %s", cfg->model_path);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static ss_metrics_t stats; /* large (histograms): not on the stack */
    memset(&stats, 0, sizeof(stats));
    ss_metrics_init(&stats);
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread: it is not thread-safe */
    rc = exit_code(ss_run(cfg, model, &stop_requested, &reload_requested, &stats));
    curl_global_cleanup();
    ss_log(rc ? SS_LOG_ERROR : SS_LOG_INFO,
           SS_FIELDS(
               SSF_INT("consumed", stats.consumed), SSF_INT("scored", stats.scored),
               SSF_INT("produced", stats.produced), SSF_INT("dead_lettered", stats.dead_lettered),
               SSF_INT("cache_errors", stats.cache_errors), SSF_INT("degraded", stats.degraded),
               SSF_INT("batches", stats.batches), SSF_INT("exit", rc)),
           "worker stopped");
    ss_metrics_destroy(&stats);
out:
    ss_model_unref(model);
    ss_config_destroy(cfg);
    free(rest);
    return rc;
}

/* Validate a run configuration without starting: keys, values, environment overrides; the
 * files it names are not opened (a deployment's model may not be on this machine). */
static int cmd_check_config(int argc, char **argv) {
    if (help_requested(argc, argv))
        return help_run("check-config");
    int n_rest;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    ss_config_t *cfg =
        rest ? load_config("check-config", argc, argv, SS_CMD_RUN, &n_rest, rest) : NULL;
    int rc = 2;
    if (cfg && n_rest > 0)
        fprintf(stderr, "streamscore check-config: unknown argument '%s'\n", rest[0]);
    else if (cfg) {
        printf("configuration ok: mode %s, input %s, output %s, model %s\n",
               ss_mode_name(cfg->mode), cfg->input_topic,
               cfg->mode == SS_MODE_SHADOW ? cfg->shadow_topic : cfg->output_topic,
               cfg->model_path);
        rc = 0;
    }
    ss_config_destroy(cfg);
    free(rest);
    return rc;
}

/* Commands that take a config and arguments of their own. */
static int cmd_with_config(const char *cmd, unsigned commands,
                           int (*fn)(const ss_config_t *, int, char **), int argc, char **argv) {
    if (help_requested(argc, argv)) {
        int rc = exit_code(fn(NULL, argc, argv)); /* usage on stdout, exit 0 */
        printf("\nKeys (%s reads them):\n", cmd);
        ss_config_print_reference_for(commands, 0);
        return rc;
    }
    int n_rest;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    ss_config_t *cfg = rest ? load_config(cmd, argc, argv, commands, &n_rest, rest) : NULL;
    int rc = cfg ? exit_code(fn(cfg, n_rest, rest)) : 2;
    ss_config_destroy(cfg);
    free(rest);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        char v[256];
        ss_versions(v, sizeof(v));
        printf("%s\n", v);
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
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config(argc - 2, argv + 2);
    if (strcmp(cmd, "compare") == 0)
        return cmd_with_config(cmd, SS_CMD_COMPARE, ss_compare_main, argc - 2, argv + 2);
    if (strcmp(cmd, "rollout") == 0)
        return cmd_with_config(cmd, SS_CMD_ROLLOUT, ss_rollout_main, argc - 2, argv + 2);
    if (strcmp(cmd, "replay") == 0)
        return cmd_with_config(cmd, SS_CMD_RUN, ss_replay_main, argc - 2, argv + 2);
    if (strcmp(cmd, "score-file") == 0)
        return cmd_with_config(cmd, SS_CMD_RUN, ss_score_file_main, argc - 2, argv + 2);
    if (strcmp(cmd, "validate-model") == 0)
        return cmd_with_config(cmd, SS_CMD_VALIDATE, ss_validate_main, argc - 2, argv + 2);
    fprintf(stderr, "streamscore: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
