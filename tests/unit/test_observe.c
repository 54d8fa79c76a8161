/* test_observe.c - what the worker reports about itself stays well-formed whatever the data:
 * histogram sums with observations from records timestamped long ago or in the future, and
 * log lines whose fields carry quotes, control bytes or bytes that are not UTF-8. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "metrics.h"

/* The value of the sample line starting with `name ` in the exposition text. */
static double sample(const char *text, const char *name) {
    size_t len = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, len) == 0 && p[len] == ' ')
            return strtod(p + len + 1, NULL);
    return NAN;
}

static void histogram_sums_clamp_ancient_future_and_nan_observations(void) {
    ss_metrics_t *m = calloc(1, sizeof(*m));
    ss_metrics_init(m);
    ss_hist_observe(&m->event_latency_seconds, 1e30); /* a record from the year -1e22 */
    ss_hist_observe(&m->event_latency_seconds, -5.0); /* from the future */
    ss_hist_observe(&m->event_latency_seconds, NAN);
    ss_hist_observe(&m->event_latency_seconds, 0.5);
    ss_hist_tally_t t = {0};
    for (int i = 0; i < 100000; i++) /* would overflow a sum of microseconds */
        ss_hist_tally(&m->event_latency_seconds, &t, 1.7e9);
    ss_hist_add_tally(&m->event_latency_seconds, &t);
    ss_buf_t b = {0};
    ss_metrics_render(m, &b);
    CHECK(!b.oom && b.p);
    double sum = sample(b.p, "streamscore_event_latency_seconds_sum");
    double count = sample(b.p, "streamscore_event_latency_seconds_count");
    CHECK(count == 100004);
    CHECK(isfinite(sum) && sum > 0);
    CHECK(fabs(sum - (SS_HIST_CLAMP * 100001 + 0.5)) <= 1e-9 * sum);
    ss_buf_free(&b);
    ss_metrics_destroy(m);
    free(m);
}

/* Runs ss_log with stderr sent to a file; returns the line written (caller frees). */
static char *logged(const char *model, const char *feature) {
    char path[] = "/tmp/test_observe_XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    ss_log(SS_LOG_WARN, SS_FIELDS(SSF_STR("model", model), SSF_STR("feature", feature)),
           "model %s: feature %s", model, feature);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char *line = calloc(1, 4096);
    ssize_t n = pread(fd, line, 4095, 0);
    CHECK(n > 0);
    close(fd);
    unlink(path);
    return line;
}

static void log_lines_are_json_whatever_bytes_the_fields_hold(void) {
    const char *models[] = {"churn \"v2\"", "line\nbreak\ttab", "latin1 caf\xe9", "\xff\xfe\x01",
                            "ok"};
    for (size_t i = 0; i < sizeof(models) / sizeof(*models); i++) {
        char *line = logged(models[i], "tenure\"}\n{\"injected\":1");
        json_error_t err;
        json_t *j = json_loads(line, JSON_DISABLE_EOF_CHECK, &err);
        if (!j)
            fprintf(stderr, "  not JSON (%s): %s", err.text, line);
        CHECK(j != NULL);
        CHECK(strchr(line, '\n') == line + strlen(line) - 1); /* one line */
        CHECK(j && json_object_get(j, "injected") == NULL);
        const char *model = j ? json_string_value(json_object_get(j, "model")) : NULL;
        CHECK(model != NULL);
        if (model && i < 2)
            CHECK(strcmp(model, models[i]) == 0); /* valid text is kept as it is */
        json_decref(j);
        free(line);
    }
}

static const check_test_t tests[] = {{"histogram_sums_clamp_ancient_future_and_nan_observations",
                                      histogram_sums_clamp_ancient_future_and_nan_observations},
                                     {"log_lines_are_json_whatever_bytes_the_fields_hold",
                                      log_lines_are_json_whatever_bytes_the_fields_hold},
                                     {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
