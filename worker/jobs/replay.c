/* replay.c - `streamscore replay`: the options, the range per partition (times resolved with
 * offsets_for_times), the progress a killed run committed (resumed when the range is the same),
 * and the summary. */
#include "replay.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "hash.h"
#include "kafka.h"
#include "log.h"
#include "replay_int.h"
#include "when.h"

#define TIMEOUT_MS 30000

static void usage(void) {
    printf(
        "Usage: streamscore replay -c FILE --from WHEN --output-topic TOPIC [options]\n\n"
        "Re-scores a range of input.topic into TOPIC, through a consumer of its own (the live\n"
        "group's offsets are never touched) and a feature store of its own (nothing is written\n"
        "to Redis), then stops and prints a summary. docs/replay.md.\n\n"
        "Options:\n"
        "  --from WHEN           first event of the range (required)\n"
        "  --to WHEN             end of the range, exclusive (default: now)\n"
        "  --features-from WHEN  read the events from here for the features only, before the\n"
        "                        range (default: --from; beginning: the whole topic)\n"
        "  --output-topic TOPIC  where the predictions go (not a topic of the live worker)\n"
        "  --model PATH          score with this model (and its card) instead of model.path\n"
        "  --seed-redis          read a customer's known features from Redis (read-only) at its\n"
        "                        first event; default: start from none\n"
        "  --dead-letter-topic T dead letters there; default: counted in the summary only\n"
        "  --restart             forget the progress of an earlier replay into TOPIC\n"
        "  --progress MODE       auto | bar | lines | none (default auto: a bar on a terminal)\n"
        "  --json                the summary as one JSON object\n"
        "  --help                this text\n\n"
        "WHEN: beginning | now | an ISO-8601 time (2026-12-01T10:00:00Z) | epoch milliseconds |\n"
        "-30s, -15m, -2h, -7d (before the start of the replay) | offsets P:O[,P:O...]\n"
        "(partitions not listed: their beginning for --from, their end for --to).\n\n"
        "Runs in Kafka transactions (transactional.id streamscore-replay-TOPIC), its progress\n"
        "committed with them (group streamscore-replay-TOPIC): a replay stopped half-way is\n"
        "resumed by running the same command again.\n"
        "Exit codes: 0 done, 1 runtime failure or stopped (run it again to resume), 2 bad\n"
        "usage or configuration, a refused topic, a range with no records.\n");
}

/* Resolve `w` in every partition into out[] (clamped to [lo, hi]); `dflt` is the offset of a
 * partition SS_WHEN_OFFSETS does not name (lo or hi). Times: the first offset at or after. */
static int resolve(rp_t *r, const ss_when_t *w, const int64_t *lo, const int64_t *hi, int end_side,
                   int64_t *out, char *err, size_t errlen) {
    rd_kafka_topic_partition_list_t *l = NULL;
    for (int i = 0; i < r->n_parts; i++) {
        int32_t p = r->parts[i].id;
        int64_t o = w->kind == SS_WHEN_BEGINNING ? lo[i] : hi[i];
        if (w->kind == SS_WHEN_OFFSETS) {
            o = ss_when_offset(w->text, p);
            o = o < 0 ? (end_side ? hi[i] : lo[i]) : o;
        }
        out[i] = o < lo[i] ? lo[i] : o > hi[i] ? hi[i] : o;
    }
    if (w->kind != SS_WHEN_TIME)
        return 0;
    l = rd_kafka_topic_partition_list_new(r->n_parts);
    for (int i = 0; i < r->n_parts; i++)
        rd_kafka_topic_partition_list_add(l, r->cfg->input_topic, r->parts[i].id)->offset = w->ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(r->consumer, l, TIMEOUT_MS);
    if (e) {
        snprintf(err, errlen, "replay: cannot look up offsets by time in '%s': %s",
                 r->cfg->input_topic, rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(l);
        return SS_ERR_FAIL;
    }
    for (int i = 0; i < r->n_parts; i++) {
        int64_t o = l->elems[i].err ? -1 : l->elems[i].offset;
        out[i] = o < 0 ? hi[i] : o < lo[i] ? lo[i] : o > hi[i] ? hi[i] : o;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return 0;
}

/* ------------------------------------------------------------------ the range */

static int partitions(rp_t *r, int64_t **lo, int64_t **hi, char *err, size_t errlen) {
    int n =
        ss_kafka_partitions(r->consumer, r->cfg->input_topic, TIMEOUT_MS, "replay", err, errlen);
    if (n < 0 && n != -1)
        return n;
    if (n <= 0) {
        snprintf(err, errlen, "replay: input.topic '%s' does not exist", r->cfg->input_topic);
        return SS_ERR_CONFIG;
    }
    r->n_parts = n;
    r->parts = calloc((size_t)n, sizeof(*r->parts));
    *lo = calloc((size_t)n, sizeof(int64_t));
    *hi = calloc((size_t)n, sizeof(int64_t));
    if (!r->parts || !*lo || !*hi) {
        snprintf(err, errlen, "replay: out of memory");
        return SS_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        r->parts[i].id = i;
        r->parts[i].resumed_at = -1;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            r->consumer, r->cfg->input_topic, i, &(*lo)[i], &(*hi)[i], TIMEOUT_MS);
        if (e) {
            snprintf(err, errlen, "replay: cannot read the offsets of %s [%d]: %s",
                     r->cfg->input_topic, i, rd_kafka_err2str(e));
            return SS_ERR_FAIL;
        }
    }
    return 0;
}

/* What the range was asked as, and the model: a run resumes only a replay of the same. */
static void signature(rp_t *r) {
    uint64_t h = 0xcbf29ce484222325ULL;
    const char *parts[] = {
        r->cfg->input_topic,  r->from, r->to, r->features_from, r->job.model->name,
        r->job.model->version};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        h = ss_fnv1a(h, parts[i], strlen(parts[i]) + 1);
    snprintf(r->sig, sizeof(r->sig), "%016" PRIx64, h);
}

void rp_metadata(const rp_t *r, const rp_part_t *p, char *out, size_t len) {
    snprintf(out, len, "streamscore-replay s=%" PRId64 " e=%" PRId64 " f=%" PRId64 " sig=%s",
             p->start, p->end, p->fstart, r->sig);
}

/* The progress committed by an earlier run into the same topic: resumed when it is a replay of
 * the same range and model. Returns 1 when resumed, 0 when there is none (or --restart),
 * SS_ERR_CONFIG when it is another replay's. */
static int earlier_progress(rp_t *r, char *err, size_t errlen) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->n_parts);
    int found = 0, other = 0;
    for (int i = 0; i < r->n_parts; i++)
        rd_kafka_topic_partition_list_add(l, r->cfg->input_topic, r->parts[i].id);
    rd_kafka_resp_err_t e = rd_kafka_committed(r->consumer, l, TIMEOUT_MS);
    if (e) {
        snprintf(err, errlen, "replay: cannot read the progress of group '%s': %s", r->group,
                 rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(l);
        return SS_ERR_FAIL;
    }
    for (int i = 0; i < r->n_parts && !r->restart; i++) {
        const rd_kafka_topic_partition_t *t = &l->elems[i];
        char md[256] = "", sig[32] = "";
        long long s, en, f;
        if (t->offset < 0 || !t->metadata || t->metadata_size >= sizeof(md))
            continue;
        memcpy(md, t->metadata, t->metadata_size);
        if (sscanf(md, "streamscore-replay s=%lld e=%lld f=%lld sig=%16s", &s, &en, &f, sig) != 4 ||
            strcmp(sig, r->sig) != 0) {
            other = 1;
            continue;
        }
        rp_part_t *p = &r->parts[i];
        p->start = s, p->end = en, p->fstart = f;
        p->next = p->resumed_at = t->offset;
        found = 1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (other) {
        snprintf(err, errlen,
                 "replay: --output-topic '%s' holds a replay of another range or model (group "
                 "'%s'); run with --restart to start over, or name another topic",
                 r->output_topic, r->group);
        return SS_ERR_CONFIG;
    }
    return found;
}

static int resolve_range(rp_t *r, char *err, size_t errlen) {
    int64_t *lo = NULL, *hi = NULL, *a = NULL, *b = NULL, *f = NULL, now = ss_wall_ms();
    ss_when_t wf, wt, wff;
    int rc;
    if ((rc = ss_when_parse("--from", r->from, now, &wf, err, errlen)) < 0 ||
        (rc = ss_when_parse("--to", r->to, now, &wt, err, errlen)) < 0 ||
        (rc = ss_when_parse("--features-from", r->features_from, now, &wff, err, errlen)) < 0)
        return rc;
    if (wf.kind == SS_WHEN_NOW || wt.kind == SS_WHEN_BEGINNING) {
        snprintf(err, errlen, "replay: --from cannot be now, --to cannot be beginning");
        return SS_ERR_CONFIG;
    }
    if ((rc = partitions(r, &lo, &hi, err, errlen)) < 0)
        goto out;
    signature(r);
    if ((rc = earlier_progress(r, err, errlen)) != 0) {
        r->resumed = rc == 1;
        rc = rc == 1 ? 0 : rc;
        goto out;
    }
    a = calloc((size_t)r->n_parts, sizeof(int64_t));
    b = calloc((size_t)r->n_parts, sizeof(int64_t));
    f = calloc((size_t)r->n_parts, sizeof(int64_t));
    if (!a || !b || !f) {
        snprintf(err, errlen, "replay: out of memory");
        rc = SS_ERR_NOMEM;
        goto out;
    }
    if ((rc = resolve(r, &wf, lo, hi, 0, a, err, errlen)) < 0 ||
        (rc = resolve(r, &wt, lo, hi, 1, b, err, errlen)) < 0 ||
        (rc = resolve(r, &wff, lo, hi, 0, f, err, errlen)) < 0)
        goto out;
    long total = 0;
    for (int i = 0; i < r->n_parts; i++) {
        rp_part_t *p = &r->parts[i];
        p->start = a[i];
        p->end = b[i] > a[i] ? b[i] : a[i];
        p->fstart = f[i] < a[i] ? f[i] : a[i];
        p->next = p->start;
        total += (long)(p->end - p->start);
    }
    if (total == 0) {
        snprintf(err, errlen,
                 "replay: the range holds no records of topic '%s' (--from %s, --to %s)",
                 r->cfg->input_topic, r->from, r->to);
        rc = SS_ERR_CONFIG;
    }
out:
    free(lo), free(hi), free(a), free(b), free(f);
    return rc;
}

/* ------------------------------------------------------------------ command */

static int parse_args(rp_t *r, int argc, char **argv, char *err, size_t errlen) {
    r->to = "now";
    r->progress = SS_PROGRESS_AUTO;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **val = strcmp(a, "--from") == 0                ? &r->from
                           : strcmp(a, "--to") == 0                ? &r->to
                           : strcmp(a, "--features-from") == 0     ? &r->features_from
                           : strcmp(a, "--output-topic") == 0      ? &r->output_topic
                           : strcmp(a, "--model") == 0             ? &r->model_path
                           : strcmp(a, "--dead-letter-topic") == 0 ? &r->dlq_topic
                                                                   : NULL;
        if (val || strcmp(a, "--progress") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "replay: %s needs a value", a);
                return SS_ERR_CONFIG;
            }
            if (val) {
                *val = argv[++i];
            } else if ((r->progress = ss_progress_parse(argv[++i])) < 0) {
                snprintf(err, errlen, "replay: --progress '%s': auto, bar, lines or none", argv[i]);
                return SS_ERR_CONFIG;
            }
        } else if (strcmp(a, "--seed-redis") == 0) {
            r->seed = 1;
        } else if (strcmp(a, "--restart") == 0) {
            r->restart = 1;
        } else if (strcmp(a, "--json") == 0) {
            r->json = 1;
        } else {
            snprintf(err, errlen, "replay: unknown argument '%s'", a);
            return SS_ERR_CONFIG;
        }
    }
    if (!r->from || !r->output_topic) {
        snprintf(err, errlen, "replay: %s is required", r->from ? "--output-topic" : "--from");
        return SS_ERR_CONFIG;
    }
    if (!r->features_from)
        r->features_from = r->from;
    int rc = ss_job_check_target(r->cfg, "--output-topic", r->output_topic, err, errlen);
    if (rc == 0 && r->dlq_topic) {
        rc = ss_job_check_target(r->cfg, "--dead-letter-topic", r->dlq_topic, err, errlen);
        if (rc == 0 && strcmp(r->dlq_topic, r->output_topic) == 0) {
            snprintf(err, errlen, "replay: --dead-letter-topic is --output-topic");
            rc = SS_ERR_CONFIG;
        }
    }
    snprintf(r->group, sizeof(r->group), "streamscore-replay-%s", r->output_topic);
    snprintf(r->txn_id, sizeof(r->txn_id), "streamscore-replay-%s", r->output_topic);
    return rc;
}

static int open_consumer(rp_t *r, char *err, size_t errlen) {
    const char *set[][2] = {{"group.id", r->group},
                            {"enable.auto.commit", "false"},
                            {"enable.auto.offset.store", "false"},
                            {"enable.partition.eof", "true"},
                            {"auto.offset.reset", "earliest"},
                            {"isolation.level", "read_committed"}};
    r->consumer = ss_kafka_client(r->cfg, RD_KAFKA_CONSUMER, NULL, set,
                                  sizeof(set) / sizeof(set[0]), "replay", err, errlen);
    if (!r->consumer)
        return SS_ERR_CONFIG;
    r->queue = rd_kafka_queue_get_consumer(r->consumer);
    return 0;
}

static json_t *summary(rp_t *r, double secs) {
    json_t *parts = json_array();
    for (int i = 0; i < r->n_parts; i++) {
        const rp_part_t *p = &r->parts[i];
        json_array_append_new(
            parts, json_pack("{s:i, s:I, s:I, s:I, s:o}", "partition", p->id, "start",
                             (json_int_t)p->start, "end", (json_int_t)p->end, "features_start",
                             (json_int_t)p->fstart, "resumed_at",
                             p->resumed_at >= 0 ? json_integer(p->resumed_at) : json_null()));
    }
    int complete = !r->failed;
    for (int i = 0; i < r->n_parts; i++)
        complete &= r->parts[i].next >= r->parts[i].end;
    long published = r->predictions + r->dead;
    return json_pack(
        "{s:s, s:s, s:s, s:{s:s, s:s}, s:o, s:I, s:I, s:I, s:I, s:O, s:b, s:b, s:b, s:I, s:I, "
        "s:f, s:f}",
        "command", "replay", "input_topic", r->cfg->input_topic, "output_topic", r->output_topic,
        "model", "name", r->job.model->name, "version", r->job.model->version, "partitions", parts,
        "read", (json_int_t)r->read, "warm", (json_int_t)r->warm, "predictions",
        (json_int_t)r->predictions, "dead_letters", (json_int_t)r->dead, "dead_letter_reasons",
        r->reasons, "resumed", r->resumed, "complete", complete, "already_complete",
        r->was_complete, "customers", (json_int_t)(r->scorer ? ss_scorer_customers(r->scorer) : 0),
        "evicted", (json_int_t)(r->scorer ? ss_scorer_evicted(r->scorer) : 0), "seconds", secs,
        "events_per_second", secs > 0 ? (double)published / secs : 0.0);
}

static void close_all(rp_t *r) {
    ss_output_writer_destroy(r->writer);
    ss_producer_destroy(r->producer, r->cfg->shutdown_timeout_ms);
    ss_ack_destroy(&r->ack);
    if (r->queue)
        rd_kafka_queue_destroy(r->queue);
    if (r->consumer) {
        rd_kafka_consumer_close(r->consumer);
        rd_kafka_destroy(r->consumer);
    }
    ss_decoder_destroy(r->dec);
    ss_scorer_destroy(r->scorer);
    ss_job_close(&r->job);
    json_decref(r->reasons);
    free(r->parts);
}

/* The writer, the decoder, the scorer and the transactional producer (fencing a killed run's
 * and aborting its open transaction). */
static int open_pipeline(rp_t *r, char *err, size_t errlen) {
    int why = SS_ERR_FAIL;
    if (!(r->writer = ss_output_writer_new(r->job.output, &r->ack, &why, err, errlen)))
        return why;
    if (!(r->dec = ss_decoder_new(r->job.codec, err, errlen)))
        return SS_ERR_NOMEM;
    if (!(r->scorer =
              ss_scorer_new(&r->job.jc, r->job.model, r->job.threshold,
                            (size_t)r->cfg->batch_max_messages, r->seed, &why, err, errlen)))
        return why;
    if (!(r->producer = ss_producer_new(&r->job.jc, r->txn_id, err, errlen)))
        return SS_ERR_FAIL;
    ss_output_writer_use(r->writer, r->producer);
    return 0;
}

int ss_replay_main(const ss_config_t *cfg, int argc, char **argv) {
    if (!cfg) {
        usage();
        return 0;
    }
    static rp_t r; /* the signal handler's flag lives in it */
    char err[1024] = "";
    int rc;
    memset(&r, 0, sizeof(r));
    r.cfg = cfg;
    r.reasons = json_object();
    ss_ack_init(&r.ack);
    int64_t t0 = ss_mono_ms();
    if ((rc = parse_args(&r, argc, argv, err, sizeof(err))) < 0 ||
        (rc = ss_job_open(&r.job, cfg, r.model_path, r.output_topic, r.dlq_topic, err,
                          sizeof(err))) < 0 ||
        (rc = open_consumer(&r, err, sizeof(err))) < 0 ||
        (rc = ss_job_check_exists(r.consumer, "--output-topic", r.output_topic, err, sizeof(err))) <
            0 ||
        (r.dlq_topic && (rc = ss_job_check_exists(r.consumer, "--dead-letter-topic", r.dlq_topic,
                                                  err, sizeof(err))) < 0) ||
        /* the producer first: its transactions' start fences a killed run and aborts its open
         * transaction, whose offsets would leave the progress unreadable (unstable) until
         * the transaction timed out */
        (rc = open_pipeline(&r, err, sizeof(err))) < 0 ||
        (rc = resolve_range(&r, err, sizeof(err))) < 0)
        goto out;
    ss_job_catch_signals(&r.stop);
    r.was_complete = 1;
    for (int i = 0; i < r.n_parts; i++)
        r.was_complete &= r.parts[i].next >= r.parts[i].end;
    r.was_complete &= r.resumed;
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("input", cfg->input_topic), SSF_STR("output", r.output_topic),
                     SSF_STR("model", r.job.model->name), SSF_STR("version", r.job.model->version),
                     SSF_INT("resumed", r.resumed)),
           "replay started");
    if (r.was_complete)
        goto out;
    if ((!r.resumed && (rc = rp_pin(&r, err, sizeof(err))) < 0) ||
        (rc = rp_run(&r, err, sizeof(err))) < 0)
        goto out;
out:
    if (rc < 0 && err[0]) {
        ss_log(SS_LOG_ERROR, NULL, "%s", err);
        fprintf(stderr, "streamscore: %s\n", err);
    }
    r.failed = rc < 0;
    if (rc == 0 || (r.job.model && rc != SS_ERR_CONFIG))
        ss_job_print_summary(summary(&r, (double)(ss_mono_ms() - t0) / 1000.0), r.json);
    close_all(&r);
    return rc;
}
