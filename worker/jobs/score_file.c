/* score_file.c - `streamscore score-file`: the options, the inputs (their schemas checked
 * before anything is scored), the output under a temporary name, the scoring threads, and the
 * summary. */
#include "score_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "score_file_int.h"

static void usage(void) {
    printf(
        "Usage: streamscore score-file -c FILE --input PATH [--input PATH ...]\n"
        "                              (--output PATH | --output-topic TOPIC) [options]\n\n"
        "Scores every record of the inputs as the worker scores a stream: the same decoding,\n"
        "schema resolution, feature mapping, model and merge rule (each customer's records in\n"
        "file order, from no known features), in parallel over the machine's cores, and writes\n"
        "one prediction per record in input order. docs/replay.md.\n\n"
        "Options:\n"
        "  --input PATH          an Avro object container file (.avro) or JSON lines (.jsonl,\n"
        "                        .ndjson, .json); several are read in the order given\n"
        "  --input-format F      avro | json, for inputs of another extension\n"
        "  --output PATH         .avro: an Avro container file of output.schema; else JSON lines;\n"
        "                        written as .NAME.partial-PID beside it, renamed when complete\n"
        "  --output-format F     avro | json, whatever the extension\n"
        "  --output-codec C      an Avro output's block codec: null (default), deflate, snappy,\n"
        "                        lzma (as Avro C was built)\n"
        "  --output-topic TOPIC  produce the predictions there instead (not a topic of the live\n"
        "                        worker)\n"
        "  --model PATH          score with this model (and its card) instead of model.path\n"
        "  --threads N           scoring threads (default: the online cores)\n"
        "  --seed-redis          read a customer's known features from Redis (read-only) at its\n"
        "                        first record; default: start from none\n"
        "  --dead-letters PATH   the records that cannot be scored, as JSON lines with the "
        "reason;\n"
        "                        default: counted in the summary only\n"
        "  --progress MODE       auto | bar | lines | none (default auto: a bar on a terminal)\n"
        "  --json                the summary as one JSON object\n"
        "  --help                this text\n\n"
        "Exit codes: 0 done, 1 runtime failure or stopped (nothing under the output's name),\n"
        "2 bad usage or configuration, a missing input, an input whose schema does not match\n"
        "input.schema.\n");
}

static int format_arg(const char *s) {
    return strcmp(s, "avro") == 0 ? SS_FILE_AVRO : strcmp(s, "json") == 0 ? SS_FILE_JSON : -1;
}

static int parse_value(sf_t *s, const char *a, const char *v, char *err, size_t errlen) {
    if (strcmp(a, "--input") == 0) {
        s->inputs[s->n_inputs++] = v;
    } else if (strcmp(a, "--output") == 0) {
        s->output = v;
    } else if (strcmp(a, "--output-topic") == 0) {
        s->output_topic = v;
    } else if (strcmp(a, "--model") == 0) {
        s->model_path = v;
    } else if (strcmp(a, "--output-codec") == 0) {
        if (strcmp(v, "null") && strcmp(v, "deflate") && strcmp(v, "snappy") && strcmp(v, "lzma")) {
            snprintf(err, errlen, "score-file: --output-codec '%s': null, deflate, snappy or lzma",
                     v);
            return SS_ERR_CONFIG;
        }
        s->codec = v;
    } else if (strcmp(a, "--dead-letters") == 0) {
        s->dead_letters = v;
    } else if (strcmp(a, "--threads") == 0) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 64) {
            snprintf(err, errlen, "score-file: --threads '%s': a number from 1 to 64", v);
            return SS_ERR_CONFIG;
        }
        s->threads = (int)n;
    } else if (strcmp(a, "--input-format") == 0 || strcmp(a, "--output-format") == 0) {
        int f = format_arg(v);
        if (f < 0) {
            snprintf(err, errlen, "score-file: %s '%s': avro or json", a, v);
            return SS_ERR_CONFIG;
        }
        *(a[2] == 'i' ? &s->in_format : &s->out_format) = f;
    } else if (strcmp(a, "--progress") == 0) {
        if ((s->progress = ss_progress_parse(v)) < 0) {
            snprintf(err, errlen, "score-file: --progress '%s': auto, bar, lines or none", v);
            return SS_ERR_CONFIG;
        }
    } else {
        return 1; /* not an option with a value */
    }
    return 0;
}

static int parse_args(sf_t *s, int argc, char **argv, char *err, size_t errlen) {
    s->in_format = s->out_format = -1;
    s->threads = ss_job_cores();
    s->progress = SS_PROGRESS_AUTO;
    for (int i = 0; i < argc; i++) {
        int rc = i + 1 < argc ? parse_value(s, argv[i], argv[i + 1], err, errlen) : 1;
        if (rc < 0)
            return rc;
        if (rc == 0) {
            i++;
        } else if (strcmp(argv[i], "--seed-redis") == 0) {
            s->seed = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            s->json = 1;
        } else {
            snprintf(err, errlen, "score-file: %s argument '%s'",
                     argv[i][0] == '-' && i + 1 == argc ? "a value is missing after the"
                                                        : "unknown",
                     argv[i]);
            return SS_ERR_CONFIG;
        }
    }
    if (s->n_inputs == 0 || (!s->output) == (!s->output_topic)) {
        snprintf(err, errlen, "score-file: %s",
                 s->n_inputs == 0 ? "--input PATH is required"
                                  : "one of --output PATH and --output-topic TOPIC is required");
        return SS_ERR_CONFIG;
    }
    if (s->output_topic)
        return ss_job_check_target(s->cfg, "--output-topic", s->output_topic, err, errlen);
    for (int k = 0; k < s->n_inputs; k++)
        if (strcmp(s->inputs[k], s->output) == 0) {
            snprintf(err, errlen, "score-file: --output '%s' is an input", s->output);
            return SS_ERR_CONFIG;
        }
    return 0;
}

static int open_inputs(sf_t *s, char *err, size_t errlen) {
    if (!(s->in = calloc((size_t)s->n_inputs, sizeof(*s->in))))
        return SS_ERR_NOMEM;
    for (int k = 0; k < s->n_inputs; k++) {
        int why, f = s->in_format >= 0 ? s->in_format : ss_file_format_of(s->inputs[k]);
        if (f < 0) {
            snprintf(err, errlen,
                     "score-file: --input '%s': no known extension (.avro, .jsonl, .ndjson, "
                     ".json); name its format with --input-format",
                     s->inputs[k]);
            return SS_ERR_CONFIG;
        }
        if (!(s->in[k] =
                  ss_file_in_open(&s->job.jc, s->job.model, s->inputs[k], f, &why, err, errlen)))
            return why;
    }
    return 0;
}

static int open_outputs(sf_t *s, char *err, size_t errlen) {
    if (s->output_topic) {
        if (!(s->producer = ss_producer_new(&s->job.jc, NULL, err, errlen)))
            return SS_ERR_CONFIG;
        int rc = ss_job_check_exists(ss_producer_handle(s->producer), "--output-topic",
                                     s->output_topic, err, errlen);
        if (rc < 0)
            return rc;
        s->out = ss_file_out_topic(s->producer, s->output_topic, err, errlen);
    } else {
        int f = s->out_format >= 0 ? s->out_format : ss_file_format_of(s->output);
        s->out_format = f == SS_FILE_AVRO ? SS_OUT_AVRO : SS_OUT_JSON;
        s->out = ss_file_out_open(&s->job.jc, s->output, s->out_format, s->codec, err, errlen);
    }
    if (!s->out)
        return SS_ERR_CONFIG;
    if (s->dead_letters &&
        !(s->dlq = ss_file_out_open(&s->job.jc, s->dead_letters, SS_OUT_LINES, NULL, err, errlen)))
        return SS_ERR_CONFIG;
    return 0;
}

static int open_threads(sf_t *s, char *err, size_t errlen) {
    if (!(s->th = calloc((size_t)s->threads, sizeof(*s->th))))
        return SS_ERR_NOMEM;
    int format = s->output_topic                ? s->cfg->output_format
                 : s->out_format == SS_OUT_AVRO ? SS_FORMAT_AVRO
                                                : SS_FORMAT_JSON;
    for (int t = 0; t < s->threads; t++) {
        sf_thread_t *th = &s->th[t];
        int why;
        th->sf = s;
        th->index = t;
        if (!(th->fake = calloc(SF_CHUNK, sizeof(*th->fake))))
            return SS_ERR_NOMEM;
        if (!(th->scorer = ss_scorer_new(&s->job.jc, s->job.model, s->job.threshold, SF_CHUNK,
                                         s->seed, &why, err, errlen)))
            return why;
        if (!(th->enc = ss_encoder_new_format(&s->job.jc, format, err, errlen)))
            return SS_ERR_CONFIG;
        if (s->output_topic && s->job.output)
            ss_encoder_set_schema_id(th->enc, ss_output_schema_id(s->job.output));
        ss_encoder_needs_t needs = {.no_decision =
                                        isnan(ss_model_threshold(s->job.model, s->job.threshold)),
                                    .outputs = s->job.model->objective.n_outputs > 1,
                                    .contributions = s->cfg->explain_top_k > 0};
        int rc = ss_encoder_check_needs(th->enc, &needs, s->job.model->objective.name, err, errlen);
        if (rc < 0)
            return rc;
    }
    return sf_chunks_new(s, s->job.model->n_features);
}

static void close_all(sf_t *s, int rc) {
    if (rc < 0) {
        ss_file_out_abort(s->out);
        ss_file_out_abort(s->dlq);
    }
    for (int k = 0; s->in && k < s->n_inputs; k++)
        ss_file_in_close(s->in[k]);
    for (int t = 0; s->th && t < s->threads; t++) {
        ss_scorer_destroy(s->th[t].scorer);
        ss_encoder_destroy(s->th[t].enc);
        free(s->th[t].fake);
    }
    sf_chunks_free(s);
    ss_producer_destroy(s->producer, s->cfg->shutdown_timeout_ms);
    ss_job_close(&s->job);
    free(s->in);
    free(s->th);
    free(s->inputs);
    json_decref(s->reasons);
}

static json_t *summary(sf_t *s, double secs) {
    json_t *inputs = json_array();
    long customers = 0, evicted = 0;
    for (int k = 0; k < s->n_inputs; k++)
        json_array_append_new(inputs, json_string(s->inputs[k]));
    for (int t = 0; s->th && t < s->threads; t++)
        if (s->th[t].scorer) {
            customers += (long)ss_scorer_customers(s->th[t].scorer);
            evicted += ss_scorer_evicted(s->th[t].scorer);
        }
    json_t *j =
        json_pack("{s:s, s:o, s:{s:s, s:s}, s:I, s:I, s:I, s:O, s:I, s:I, s:i, s:f, s:f}",
                  "command", "score-file", "inputs", inputs, "model", "name", s->job.model->name,
                  "version", s->job.model->version, "records", (json_int_t)s->records,
                  "predictions", (json_int_t)s->predictions, "dead_letters", (json_int_t)s->dead,
                  "dead_letter_reasons", s->reasons, "customers", (json_int_t)customers, "evicted",
                  (json_int_t)evicted, "threads", s->threads, "seconds", secs, "events_per_second",
                  secs > 0 ? (double)s->records / secs : 0.0);
    json_object_set_new(j, s->output ? "output" : "output_topic",
                        json_string(s->output ? s->output : s->output_topic));
    if (s->dead_letters)
        json_object_set_new(j, "dead_letters_file", json_string(s->dead_letters));
    return j;
}

int ss_score_file_main(const ss_config_t *cfg, int argc, char **argv) {
    if (!cfg) {
        usage();
        return 0;
    }
    static sf_t s;
    char err[1024] = "";
    memset(&s, 0, sizeof(s));
    s.cfg = cfg;
    s.reasons = json_object();
    s.inputs = calloc((size_t)argc + 1, sizeof(char *));
    int64_t t0 = ss_mono_ms();
    int rc = s.inputs ? parse_args(&s, argc, argv, err, sizeof(err)) : SS_ERR_NOMEM;
    if (rc == 0)
        rc = ss_job_open(&s.job, cfg, s.model_path, s.output_topic, NULL, err, sizeof(err));
    if (rc == 0)
        rc = open_inputs(&s, err, sizeof(err));
    if (rc == 0) {
        ss_job_catch_signals(&s.stop);
        rc = open_outputs(&s, err, sizeof(err));
    }
    if (rc == 0 && (rc = open_threads(&s, err, sizeof(err))) == SS_ERR_NOMEM && !err[0])
        snprintf(err, sizeof(err), "score-file: out of memory");
    if (rc == 0)
        rc = sf_run(&s, err, sizeof(err));
    if (rc == 0) { /* finish closes what it is given, completed or not */
        rc = ss_file_out_finish(s.out, err, sizeof(err));
        s.out = NULL;
        if (s.dlq && rc == 0)
            rc = ss_file_out_finish(s.dlq, err, sizeof(err));
        else
            ss_file_out_abort(s.dlq);
        s.dlq = NULL;
    }
    if (rc < 0 && err[0]) {
        ss_log(SS_LOG_ERROR, NULL, "%s", err);
        fprintf(stderr, "streamscore: %s\n", err);
    }
    if (s.job.model && rc != SS_ERR_CONFIG)
        ss_job_print_summary(summary(&s, (double)(ss_mono_ms() - t0) / 1000.0), s.json);
    close_all(&s, rc);
    return rc;
}
