/* components.c - streamscore's stages timed one by one, with the worker's own modules
 * (streamscore_core), on real records: what each stage of a batch costs, so that a gap
 * between the worker and the Kafka ceiling can be put on a stage.
 *
 * Reads up to -n records of the source topic (raw Avro events, as make bench produced
 * them), then times, each for about -T seconds of repetitions:
 *   decode    ss_decoder_decode of every record (value bytes -> event and feature vector)
 *   merge     the batch's events applied in order to their customers' states
 *             (ss_features_merge, row copy), and the feature hash of every scored row
 *   predict   ss_model_predict by batch size (1, 16, 64, 256, 512, 1024 rows)
 *   explain   an explanation of every row of a batch, as the worker makes it with
 *             explain.top.k = -k (3): ss_model_contributions (XGBoost's exact TreeSHAP) and
 *             ss_explain_top of each row, by batch size (1, 16, 64, 256, 512 rows); both
 *             together and each alone, per batch and per row
 *   encode    ss_encoder_encode of one prediction per record
 *   redis     ss_cache_read + ss_cache_write of a batch's customers (one pipeline each),
 *             against the configured Redis, by batch size (every known feature written: an
 *             upper bound, the worker writes only those its events carried)
 *   produce   ss_producer_send of a batch's predictions and the wait for every
 *             acknowledgement (ss_ack_wait), against the configured Kafka, by batch size
 * and prints one JSON object on stdout. Times are wall-clock (CLOCK_MONOTONIC); per-batch
 * figures are medians over the repetitions, with the 90th percentile beside them.
 *
 *   bench-components -c config/demo.properties -X kafka.bootstrap.servers=127.0.0.1:24092 \
 *       -X redis.port=24379 -s bench-events -o components-out
 *
 * Exit 0, 1 on a failure of a stage (named on stderr), 2 on bad usage.
 */
#include <librdkafka/rdkafka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"
#include "cache.h"
#include "codec.h"
#include "config.h"
#include "explain.h"
#include "features.h"
#include "kafka.h"
#include "model.h"
#include "prediction.h"
#include "producer.h"

static double target_s = 0.5; /* seconds of repetitions per measurement */
static size_t top_k = 3;      /* explain: the contributions kept per row (explain.top.k) */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Per-repetition times: median and p90 (sorts in place). */
static void quantiles(double *t, size_t n, double *med, double *p90) {
    qsort(t, n, sizeof(*t), cmp_double);
    *med = t[n / 2];
    *p90 = t[(size_t)((double)(n - 1) * 0.9)];
}

/* Per-repetition times of one measurement. */
typedef struct series {
    double *t;
    size_t n, cap;
} series_t;

static void series_add(series_t *s, double v) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        double *g = realloc(s->t, cap * sizeof(*g));
        if (!g) {
            fprintf(stderr, "components: out of memory\n");
            exit(1);
        }
        s->t = g;
        s->cap = cap;
    }
    s->t[s->n++] = v;
}

/* Median and p90; empties the series for the next measurement. */
static void series_take(series_t *s, double *med, double *p90) {
    quantiles(s->t, s->n, med, p90);
    s->n = 0;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f) {
    fprintf(f, "usage: bench-components -c CONFIG [-X KEY=VALUE]... -s SOURCE_TOPIC -o OUT_TOPIC\n"
               "                        [-n RECORDS (20000)] [-T SECONDS_PER_MEASUREMENT (0.5)]\n"
               "                        [-k EXPLAIN_TOP_K (3)]\n");
}

int main(int argc, char **argv) {
    char err[1024];
    const char *cfg_path = NULL, *src = NULL, *out_topic = NULL;
    char **overrides = calloc((size_t)argc, sizeof(char *));
    size_t n_over = 0, max = 20000;
    int opt;
    long k_arg = 3;
    while ((opt = getopt(argc, argv, "c:X:s:o:n:T:k:h")) != -1) {
        switch (opt) {
        case 'c': cfg_path = optarg; break;
        case 's': src = optarg; break;
        case 'o': out_topic = optarg; break;
        case 'n': max = (size_t)strtoul(optarg, NULL, 10); break;
        case 'T': target_s = strtod(optarg, NULL); break;
        case 'k': k_arg = strtol(optarg, NULL, 10); break;
        case 'X':
            if (!strchr(optarg, '=')) {
                usage(stderr);
                return 2;
            }
            overrides[n_over++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!cfg_path || !src || !out_topic || max == 0 || !(target_s > 0) || k_arg < 1 ||
        k_arg > 1000 || optind != argc) {
        usage(stderr);
        return 2;
    }
    top_k = (size_t)k_arg;
    ss_config_t *cfg = ss_config_new();
    if (ss_config_load_file(cfg, cfg_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "components: %s\n", err);
        return 2;
    }
    for (size_t i = 0; i < n_over; i++) {
        char *eq = strchr(overrides[i], '=');
        *eq = '\0';
        if (ss_config_set(cfg, overrides[i], eq + 1, "-X", err, sizeof(err)) < 0) {
            fprintf(stderr, "components: %s\n", err);
            return 2;
        }
    }
    free(overrides);
    if (ss_config_finalize(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "components: %s\n", err);
        return 2;
    }
    const char *bootstrap = NULL;
    for (size_t i = 0; i < cfg->n_kafka; i++)
        if (strcmp(cfg->kafka[i].key, "bootstrap.servers") == 0)
            bootstrap = cfg->kafka[i].value;
    if (!bootstrap) {
        fprintf(stderr, "components: no kafka.bootstrap.servers\n");
        return 2;
    }

    ss_model_t *model = NULL; /* as the worker brings it into service (model.predictor) */
    if (ss_model_open(cfg, NULL, &model, err, sizeof(err)) < 0) {
        fprintf(stderr, "components: %s\n", err);
        return 1;
    }
    size_t nf = model->n_features;
    ss_codec_t *codec = ss_codec_new(cfg, model->feature_names, nf, err, sizeof(err));
    ss_decoder_t *dec = codec ? ss_decoder_new(codec, err, sizeof(err)) : NULL;
    ss_encoder_t *enc = dec ? ss_encoder_new(cfg, err, sizeof(err)) : NULL;
    ss_predictor_t *pred = enc ? ss_predictor_new(err, sizeof(err)) : NULL;
    if (!pred) {
        fprintf(stderr, "components: %s\n", err);
        return 1;
    }
    bench_records_t R = {0};
    if (bench_records_read("components", bootstrap, src, (long)max, NULL, &R) < 0)
        return 1;
    bench_records_interleave(&R); /* batches of customers from every partition */
    size_t n = R.n;
    fprintf(stderr, "components: %zu records of %s, %zu features, %.2f s per measurement\n", n, src,
            nf, target_s);

    float *feat = malloc(n * nf * sizeof(float));
    float *rows = malloc(n * nf * sizeof(float));
    double *scores = malloc(n * sizeof(double));
    char **cust = calloc(n, sizeof(char *));
    size_t *cust_len = calloc(n, sizeof(size_t));
    char **evid = calloc(n, sizeof(char *));
    size_t *evid_len = calloc(n, sizeof(size_t));
    int64_t *evtime = calloc(n, sizeof(int64_t));
    char **pval = calloc(n, sizeof(char *));
    size_t *plen = calloc(n, sizeof(size_t));
    ss_event_t ev;

    printf("{\"records\": %zu, \"features\": %zu", n, nf);

    /* decode: a first pass keeps what the later stages need */
    for (size_t i = 0; i < n; i++) {
        if (ss_decoder_decode(dec, bench_record_value(&R, &R.r[i]), R.r[i].val_len, &ev,
                              feat + i * nf, err, sizeof(err))) {
            fprintf(stderr, "components: record %zu does not decode: %s\n", i, err);
            return 1;
        }
        cust[i] = strndup(ev.customer_id, ev.customer_id_len);
        cust_len[i] = ev.customer_id_len;
        evid[i] = strndup(ev.event_id ? ev.event_id : "", ev.event_id_len);
        evid_len[i] = ev.event_id_len;
        evtime[i] = ev.event_time;
    }
    {
        size_t done = 0;
        double t0 = now_s(), t;
        float *tmp = malloc(nf * sizeof(float));
        do {
            for (size_t i = 0; i < n; i++)
                ss_decoder_decode(dec, bench_record_value(&R, &R.r[i]), R.r[i].val_len, &ev, tmp,
                                  err, sizeof(err));
            done += n;
        } while ((t = now_s() - t0) < target_s);
        free(tmp);
        printf(",\n \"decode\": {\"events\": %zu, \"ns_per_event\": %.0f, \"events_per_s\": %.0f}",
               done, t / (double)done * 1e9, (double)done / t);
    }

    /* merge: the pipeline's step 3 over batches of 512 (a customer's state is its first
     * event's features, as if nothing were cached), then the hash of each scored row */
    {
        const size_t B = 512;
        float *state = malloc(B * nf * sizeof(float));
        size_t done = 0;
        double t0 = now_s(), t;
        do {
            for (size_t b0 = 0; b0 + B <= n; b0 += B) {
                for (size_t i = 0; i < B; i++) {
                    /* slot = position in the batch: the worker's hash lookup is not
                     * public; every event is its own customer here */
                    float *st = state + i * nf;
                    for (size_t f = 0; f < nf; f++)
                        st[f] = NAN;
                    ss_features_merge(st, feat + (b0 + i) * nf, nf);
                    memcpy(rows + (b0 + i) * nf, st, nf * sizeof(float));
                }
                done += B;
            }
        } while ((t = now_s() - t0) < target_s && done > 0);
        double merge_ns = done ? t / (double)done * 1e9 : 0;
        char hex[17];
        done = 0;
        t0 = now_s();
        unsigned sink = 0; /* printed, so the hashes are computed */
        do {
            for (size_t i = 0; i < n; i++) {
                ss_features_hash_hex(ss_features_hash(rows + i * nf, nf), hex);
                sink += (unsigned char)hex[0];
            }
            done += n;
        } while ((t = now_s() - t0) < target_s);
        printf(",\n \"merge\": {\"ns_per_event\": %.0f, \"hash_ns_per_event\": %.0f, "
               "\"hash_check\": %u}",
               merge_ns, t / (double)done * 1e9, sink % 1000);
        free(state);
    }
    /* the rows scored from here on: each event merged into its own (empty) state */
    memcpy(rows, feat, n * nf * sizeof(float));

    series_t total = {0}, first = {0}, second = {0}; /* per-batch times */

    /* predict by batch size */
    {
        static const size_t sizes[] = {1, 16, 64, 256, 512, 1024};
        printf(",\n \"predict\": {");
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            size_t B = sizes[s] <= n ? sizes[s] : n, reps = 0;
            double t_start = now_s();
            for (size_t b0 = 0; now_s() - t_start < target_s || reps < 5; b0 += B, reps++) {
                if (b0 + B > n)
                    b0 = 0;
                double t0 = now_s();
                if (ss_model_predict(model, pred, rows + b0 * nf, B, scores, err, sizeof(err))) {
                    fprintf(stderr, "components: predict: %s\n", err);
                    return 1;
                }
                series_add(&total, now_s() - t0);
            }
            double med, p90;
            series_take(&total, &med, &p90);
            printf("%s\n  \"%zu\": {\"us_per_batch\": %.1f, \"p90_us_per_batch\": %.1f, "
                   "\"ns_per_row\": %.0f, \"us_per_row\": %.3f, \"rows_per_s\": %.0f, "
                   "\"batches\": %zu}",
                   s ? "," : "", B, med * 1e6, p90 * 1e6, med / (double)B * 1e9,
                   med / (double)B * 1e6, (double)B / med, reps);
        }
        printf("}");
    }

    /* explain by batch size: every row of the batch explained, as the worker's explainer
     * does for the rows it chose (contributions of the gathered rows in one call, then the
     * top-k of each row, of the output that is the score for a multi-output model) */
    {
        static const size_t sizes[] = {1, 16, 64, 256, 512};
        size_t outs = model->objective.n_outputs, stride = nf + 1;
        size_t g = outs <= 1 ? 0 : model->objective.score_output;
        ss_contribution_t *top = malloc(top_k * sizeof(*top));
        double bias, sink = 0; /* printed, so the top-k is computed */
        if (!top) {
            fprintf(stderr, "components: out of memory\n");
            return 1;
        }
        printf(",\n \"explain_top_k\": %zu,\n \"explain\": {", top_k);
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            size_t B = sizes[s] <= n ? sizes[s] : n, reps = 0;
            double t_start = now_s();
            for (size_t b0 = 0; now_s() - t_start < target_s || reps < 5; b0 += B, reps++) {
                if (b0 + B > n)
                    b0 = 0;
                const float *c = NULL;
                double t0 = now_s();
                if (ss_model_contributions(model, rows + b0 * nf, B, &c, err, sizeof(err))) {
                    fprintf(stderr, "components: explain: %s\n", err);
                    return 1;
                }
                double t1 = now_s();
                for (size_t j = 0; j < B; j++) {
                    size_t got = ss_explain_top(c + (j * outs + g) * stride, rows + (b0 + j) * nf,
                                                nf, model->feature_names, top_k, top, &bias);
                    if (got)
                        sink += top[0].contribution;
                }
                double t2 = now_s();
                series_add(&first, t1 - t0);
                series_add(&second, t2 - t1);
                series_add(&total, t2 - t0);
            }
            double mc, pc, mt, pt, med, p90;
            series_take(&first, &mc, &pc);
            series_take(&second, &mt, &pt);
            series_take(&total, &med, &p90);
            printf("%s\n  \"%zu\": {\"us_per_batch\": %.1f, \"p90_us_per_batch\": %.1f, "
                   "\"us_per_row\": %.3f, \"contributions_us_per_row\": %.3f, "
                   "\"top_k_us_per_row\": %.3f, \"rows_per_s\": %.0f, \"batches\": %zu}",
                   s ? "," : "", B, med * 1e6, p90 * 1e6, med / (double)B * 1e6,
                   mc / (double)B * 1e6, mt / (double)B * 1e6, (double)B / med, reps);
        }
        printf("},\n \"explain_check\": %.6g", sink);
        free(top);
    }

    /* encode: one prediction per record, as the worker fills it */
    {
        ss_prediction_t p;
        memset(&p, 0, sizeof(p));
        p.threshold = ss_model_threshold(model, cfg->model_threshold);
        p.model_name = model->name;
        p.model_version = model->version;
        if (ss_model_predict(model, pred, rows, n, scores, err, sizeof(err))) {
            fprintf(stderr, "components: predict: %s\n", err);
            return 1;
        }
        size_t done = 0, bytes = 0;
        double t0 = now_s(), t;
        int keep = 1;
        do {
            for (size_t i = 0; i < n; i++) {
                p.event_id = evid[i];
                p.event_id_len = evid_len[i];
                p.customer_id = cust[i];
                p.customer_id_len = cust_len[i];
                p.score = scores[i];
                p.decision = p.score >= p.threshold;
                p.source_topic = src;
                p.source_partition = R.r[i].partition;
                p.source_offset = R.r[i].offset;
                p.event_time = evtime[i];
                p.scored_at = 1700000000000LL + (int64_t)i;
                ss_features_hash_hex(ss_features_hash(rows + i * nf, nf), p.feature_hash);
                const void *val;
                size_t vlen;
                if (ss_encoder_encode(enc, &p, &val, &vlen, err, sizeof(err)) < 0) {
                    fprintf(stderr, "components: encode: %s\n", err);
                    return 1;
                }
                if (keep) {
                    pval[i] = malloc(vlen);
                    memcpy(pval[i], val, vlen);
                    plen[i] = vlen;
                    bytes += vlen;
                }
            }
            keep = 0;
            done += n;
        } while ((t = now_s() - t0) < target_s);
        printf(",\n \"encode\": {\"ns_per_event\": %.0f, \"events_per_s\": %.0f, "
               "\"mean_bytes\": %.0f}",
               t / (double)done * 1e9, (double)done / t, (double)bytes / (double)n);
    }

    static const size_t io_sizes[] = {1, 16, 64, 256, 512, 1024};
    const size_t n_io = sizeof(io_sizes) / sizeof(io_sizes[0]);

    /* redis: read + write of a batch's customers, one pipeline each (distinct customers
     * per batch, as the worker sends them), written once first so that reads find them */
    {
        ss_cache_t *cache = ss_cache_new(cfg, model->feature_names, nf, NULL, err, sizeof(err));
        if (!cache) {
            fprintf(stderr, "components: %s\n", err);
            return 1;
        }
        float *got = malloc(n * nf * sizeof(float));
        if (ss_cache_write(cache, (const char *const *)cust, cust_len, n, rows, NULL, err,
                           sizeof(err))) {
            fprintf(stderr, "components: redis: %s\n", err);
            return 1;
        }
        printf(",\n \"redis\": {");
        for (size_t s = 0; s < n_io; s++) {
            size_t B = io_sizes[s] <= n ? io_sizes[s] : n;
            size_t reps = 0;
            double t_start = now_s();
            for (size_t b0 = 0; now_s() - t_start < target_s || reps < 5; b0 += B, reps++) {
                if (b0 + B > n)
                    b0 = 0;
                double t0 = now_s();
                if (ss_cache_read(cache, (const char *const *)cust + b0, cust_len + b0, B, got,
                                  NULL, err, sizeof(err))) {
                    fprintf(stderr, "components: redis read: %s\n", err);
                    return 1;
                }
                double t1 = now_s();
                if (ss_cache_write(cache, (const char *const *)cust + b0, cust_len + b0, B,
                                   rows + b0 * nf, NULL, err, sizeof(err))) {
                    fprintf(stderr, "components: redis write: %s\n", err);
                    return 1;
                }
                double t2 = now_s();
                series_add(&first, t1 - t0);
                series_add(&second, t2 - t1);
                series_add(&total, t2 - t0);
            }
            double mr, pr, mw, pw, mt, pt;
            series_take(&first, &mr, &pr);
            series_take(&second, &mw, &pw);
            series_take(&total, &mt, &pt);
            printf("%s\n  \"%zu\": {\"read_ms\": %.3f, \"write_ms\": %.3f, "
                   "\"round_trip_ms\": %.3f, \"p90_round_trip_ms\": %.3f, "
                   "\"us_per_customer\": %.2f, \"batches\": %zu}",
                   s ? "," : "", B, mr * 1e3, mw * 1e3, mt * 1e3, pt * 1e3, mt / (double)B * 1e6,
                   reps);
        }
        printf("}");
        free(got);
        ss_cache_destroy(cache);
    }

    /* produce: a batch of predictions sent, then every acknowledgement awaited */
    {
        ss_producer_t *prod = ss_producer_new(cfg, NULL, err, sizeof(err));
        if (!prod) {
            fprintf(stderr, "components: %s\n", err);
            return 1;
        }
        ss_ack_t ack;
        ss_ack_init(&ack);
        /* a first batch: metadata, idempotence PID, connections */
        for (size_t i = 0; i < 16 && i < n; i++)
            ss_producer_send(prod, out_topic, RD_KAFKA_PARTITION_UA, cust[i], cust_len[i], pval[i],
                             plen[i], NULL, 0, NULL, &ack, err, sizeof(err));
        while (ss_ack_wait(&ack, 1000) > 0)
            ;
        printf(",\n \"produce\": {");
        for (size_t s = 0; s < n_io; s++) {
            size_t B = io_sizes[s] <= n ? io_sizes[s] : n;
            size_t reps = 0;
            double t_start = now_s();
            for (size_t b0 = 0; now_s() - t_start < target_s || reps < 5; b0 += B, reps++) {
                if (b0 + B > n)
                    b0 = 0;
                double t0 = now_s();
                for (size_t i = b0; i < b0 + B; i++)
                    if (ss_producer_send(prod, out_topic, RD_KAFKA_PARTITION_UA, cust[i],
                                         cust_len[i], pval[i], plen[i], NULL, 0, NULL, &ack, err,
                                         sizeof(err)) < 0) {
                        fprintf(stderr, "components: produce: %s\n", err);
                        return 1;
                    }
                double t1 = now_s();
                while (ss_ack_wait(&ack, 1000) > 0)
                    ;
                if (ack.failed) {
                    fprintf(stderr, "components: produce: %ld not delivered: %s\n", ack.failed,
                            rd_kafka_err2str(ack.first_err));
                    return 1;
                }
                series_add(&first, t1 - t0);
                series_add(&total, now_s() - t0);
            }
            double med, p90, sm, sp;
            series_take(&total, &med, &p90);
            series_take(&first, &sm, &sp);
            printf("%s\n  \"%zu\": {\"ms_per_batch\": %.3f, \"p90_ms_per_batch\": %.3f, "
                   "\"send_us_per_record\": %.2f, \"records_per_s\": %.0f, \"batches\": %zu}",
                   s ? "," : "", B, med * 1e3, p90 * 1e3, sm / (double)B * 1e6, (double)B / med,
                   reps);
        }
        printf("}");
        ss_ack_destroy(&ack);
        ss_producer_destroy(prod, 10000);
    }
    printf("\n}\n");
    fflush(stdout);

    for (size_t i = 0; i < n; i++) {
        free(cust[i]);
        free(evid[i]);
        free(pval[i]);
    }
    bench_records_free(&R);
    free(feat);
    free(rows);
    free(scores);
    free(cust);
    free(cust_len);
    free(evid);
    free(evid_len);
    free(evtime);
    free(pval);
    free(plen);
    ss_predictor_destroy(pred);
    ss_encoder_destroy(enc);
    ss_decoder_destroy(dec);
    ss_codec_destroy(codec);
    ss_model_unref(model);
    free(total.t);
    free(first.t);
    free(second.t);
    ss_config_destroy(cfg);
    return 0;
}
