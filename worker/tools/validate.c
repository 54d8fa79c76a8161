/* validate.c - `streamscore validate-model`: scores a labeled Avro data set with the configured
 * model exactly as the worker would (same decoder, same batched XGBoost call), measures quality
 * and batch latency, checks them against the validate.* gates and records the verdict in the
 * model card, so that a model is judged on the same path that will serve it. */
#include "validate.h"

#include <avro.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "log.h"
#include "model.h"

#ifndef SS_VERSION
#define SS_VERSION "0.0.0"
#endif

#define EXIT_PASS 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define EXIT_GATE 3

static void usage(FILE *out) {
    fprintf(out,
            "Usage: streamscore validate-model -c FILE --data FILE.avro [--json FILE]\n"
            "                                  [--no-update-card] [-X key=value ...]\n\n"
            "Scores a labeled data set with model.path at model.threshold, the way the worker\n"
            "scores events, and checks the results against the gates. The data set is an Avro\n"
            "object container file of events: any writer schema that resolves against\n"
            "input.schema by field name, each record also carrying the label field\n"
            "validate.label.field (boolean, or int 0/1; null = unlabeled).\n\n"
            "Options:\n"
            "  --data FILE.avro    the labeled events (required)\n"
            "  --json FILE         also write the result as JSON to FILE\n"
            "  --no-update-card    do not record the result in the model card\n"
            "  --help              this text\n\n"
            "Gates (configuration keys; a negative value is not checked):\n"
            "  validate.min.roc.auc, validate.min.precision, validate.min.recall,\n"
            "  validate.min.f1, validate.max.model.mb, validate.max.batch.p99.ms\n"
            "  (one batch = batch.max.messages rows), and: every model feature (after\n"
            "  features.rename) is a field of the data file's schema.\n\n"
            "Unless --no-update-card, the result is written to the model card (model.card)\n"
            "as its \"validation\" object; the card's other keys are kept.\n"
            "Exit codes: 0 every gate passed, 3 a gate failed, 1 runtime failure,\n"
            "2 bad usage or configuration.\n");
}

/* ------------------------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4) of the data file, recorded so that a result names its exact data. */

typedef struct sha256 {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t n;
} sha256_t;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_t *s, const unsigned char *p) {
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, s->h, sizeof(a));
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = a[7] + (ROR(a[4], 6) ^ ROR(a[4], 11) ^ ROR(a[4], 25)) +
                      ((a[4] & a[5]) ^ (~a[4] & a[6])) + sha_k[i] + w[i];
        uint32_t t2 = (ROR(a[0], 2) ^ ROR(a[0], 13) ^ ROR(a[0], 22)) +
                      ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
        memmove(a + 1, a, 7 * sizeof(uint32_t));
        a[4] += t1;
        a[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        s->h[i] += a[i];
}

static void sha256_init(sha256_t *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof(h0));
    s->len = 0;
    s->n = 0;
}

static void sha256_update(sha256_t *s, const unsigned char *p, size_t len) {
    s->len += len;
    while (len > 0) {
        size_t take = 64 - s->n < len ? 64 - s->n : len;
        memcpy(s->buf + s->n, p, take);
        s->n += take;
        p += take;
        len -= take;
        if (s->n == 64) {
            sha256_block(s, s->buf);
            s->n = 0;
        }
    }
}

static void sha256_hex(sha256_t *s, char out[65]) {
    uint64_t bits = s->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    sha256_update(s, &pad, 1);
    while (s->n != 56)
        sha256_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(s, lenb, 8);
    for (int i = 0; i < 8; i++)
        snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

static int file_sha256(const char *path, char out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    sha256_t s;
    unsigned char buf[1 << 16];
    size_t n;
    sha256_init(&s);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return -1;
    sha256_hex(&s, out);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* JSON output in the layout of the cards (two-space indent, reals in their shortest form
 * that reads back to the same double), so that rewriting a card changes only what changed. */

static void emit_string(FILE *f, const char *s, size_t len) {
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

static void emit_real(FILE *f, double v) {
    char buf[40];
    if (!isfinite(v)) {
        fputs("null", f); /* JSON has no NaN or infinity */
        return;
    }
    /* the fewest significant digits that read back exactly, then Python's layout: fixed
     * notation for decimal exponents -4..15, else d.ddde+XX */
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
    int exp10 = atoi(strchr(buf, 'e') + 1);
    if (exp10 >= -4 && exp10 < 16) {
        int decimals = prec - 1 - exp10;
        snprintf(buf, sizeof(buf), "%.*f", decimals > 0 ? decimals : 0, v);
        if (!strchr(buf, '.'))
            strcat(buf, ".0"); /* stays a real when read back: 100 -> 100.0 */
    } else if (prec == 1) {
        snprintf(buf, sizeof(buf), "%.0e", v); /* 1e+16, not 1.e+16 */
    }
    fputs(buf, f);
}

static void emit(FILE *f, json_t *v, int depth) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (json_object_size(v) == 0) {
            fputs("{}", f);
            break;
        }
        const char *key;
        json_t *item;
        size_t i = 0, n = json_object_size(v);
        fputs("{\n", f);
        json_object_foreach(v, key, item) {
            fprintf(f, "%*s", 2 * (depth + 1), "");
            emit_string(f, key, strlen(key));
            fputs(": ", f);
            emit(f, item, depth + 1);
            fputs(++i < n ? ",\n" : "\n", f);
        }
        fprintf(f, "%*s}", 2 * depth, "");
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (n == 0) {
            fputs("[]", f);
            break;
        }
        fputs("[\n", f);
        for (size_t i = 0; i < n; i++) {
            fprintf(f, "%*s", 2 * (depth + 1), "");
            emit(f, json_array_get(v, i), depth + 1);
            fputs(i + 1 < n ? ",\n" : "\n", f);
        }
        fprintf(f, "%*s]", 2 * depth, "");
        break;
    }
    case JSON_STRING: emit_string(f, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: emit_real(f, json_real_value(v)); break;
    case JSON_TRUE: fputs("true", f); break;
    case JSON_FALSE: fputs("false", f); break;
    default: fputs("null", f); break;
    }
}

/* Write `doc` to `path` through a temporary file in the same folder and a rename, so that
 * readers never see half a file. Returns 0 or -1 with errstr. */
static int write_json_file(const char *path, json_t *doc, char *errstr, size_t errlen) {
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    FILE *f = NULL;
    int fd = -1, rc = -1;
    struct stat st;
    if (!tmp) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        snprintf(errstr, errlen, "cannot write '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    fd = -1;
    if (stat(path, &st) == 0)
        fchmod(fileno(f), st.st_mode & 07777); /* keep the card's permissions */
    else
        fchmod(fileno(f), 0644);
    emit(f, doc, 0);
    fputc('\n', f);
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
        snprintf(errstr, errlen, "cannot write '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    if (fclose(f) != 0) {
        f = NULL;
        snprintf(errstr, errlen, "cannot write '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        snprintf(errstr, errlen, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Metrics */

typedef struct metrics {
    size_t n, n_pos, tp, fp, fn;
    double roc_auc; /* NaN when one class is absent */
    double precision, recall, f1, positive_rate;
    double batch_p50_ms, batch_p99_ms, rows_per_s;
    size_t n_batches;
} metrics_t;

static const double *g_sort_scores; /* qsort has no context argument */

static int cmp_by_score(const void *a, const void *b) {
    double x = g_sort_scores[*(const size_t *)a], y = g_sort_scores[*(const size_t *)b];
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Exact ROC-AUC: the Mann-Whitney statistic from ranks, tied scores sharing their mean rank.
 * Returns NaN when there are no positives or no negatives, -2 when out of memory. */
static double roc_auc(const double *score, const unsigned char *label, size_t n) {
    size_t n_pos = 0;
    for (size_t i = 0; i < n; i++)
        n_pos += label[i];
    if (n_pos == 0 || n_pos == n)
        return NAN;
    size_t *order = malloc(n * sizeof(*order));
    if (!order)
        return -2;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    g_sort_scores = score;
    qsort(order, n, sizeof(*order), cmp_by_score);
    double rank_sum = 0; /* sum of the positives' ranks (1-based) */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && score[order[j + 1]] == score[order[i]])
            j++;
        double mean_rank = (double)(i + j + 2) / 2.0; /* ranks i+1 .. j+1 */
        for (size_t k = i; k <= j; k++)
            if (label[order[k]])
                rank_sum += mean_rank;
        i = j + 1;
    }
    free(order);
    double p = (double)n_pos, q = (double)(n - n_pos);
    return (rank_sum - p * (p + 1) / 2.0) / (p * q);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, size_t n, double p) {
    if (n == 0)
        return NAN;
    size_t k = (size_t)ceil(p * (double)n);
    return sorted[k > 0 ? (k <= n ? k - 1 : n - 1) : 0];
}

static int compute_metrics(metrics_t *m, const double *score, const unsigned char *label, size_t n,
                           double threshold) {
    m->n = n;
    m->n_pos = m->tp = m->fp = m->fn = 0;
    for (size_t i = 0; i < n; i++) {
        int pred = score[i] >= threshold;
        m->n_pos += label[i];
        m->tp += pred && label[i];
        m->fp += pred && !label[i];
        m->fn += !pred && label[i];
    }
    m->precision = m->tp + m->fp ? (double)m->tp / (double)(m->tp + m->fp) : 0.0;
    m->recall = m->tp + m->fn ? (double)m->tp / (double)(m->tp + m->fn) : 0.0;
    m->f1 = m->precision + m->recall > 0 ? 2 * m->precision * m->recall / (m->precision + m->recall)
                                         : 0.0;
    m->positive_rate = n ? (double)m->n_pos / (double)n : 0.0;
    m->roc_auc = roc_auc(score, label, n);
    return m->roc_auc == -2 ? -1 : 0;
}

/* ------------------------------------------------------------------------------------ */
/* Gates */

typedef struct gate {
    const char *name; /* in the card and the JSON */
    const char *key;  /* configuration key */
    int is_max;       /* value must be <= threshold (else >=) */
    double threshold; /* negative: not checked */
    double value;     /* NaN: not available (fails when checked) */
    int passed;
} gate_t;

enum { G_AUC, G_PRECISION, G_RECALL, G_F1, G_MODEL_MB, G_BATCH_P99, N_GATES };

static void gate_check(gate_t *g) {
    if (g->threshold < 0) {
        g->passed = 1;
        return;
    }
    g->passed =
        !isnan(g->value) && (g->is_max ? g->value <= g->threshold : g->value >= g->threshold);
}

/* ------------------------------------------------------------------------------------ */
/* Reading the data set */

typedef struct dataset {
    float *x;         /* n x n_features, row-major */
    unsigned char *y; /* 0/1 */
    size_t n, cap, n_features;
    size_t records, unlabeled, bad_label, undecodable;
    char first_decode_error[400];
} dataset_t;

static void dataset_free(dataset_t *d) {
    free(d->x);
    free(d->y);
}

static int dataset_grow(dataset_t *d) {
    if (d->n < d->cap)
        return 0;
    size_t cap = d->cap ? d->cap * 2 : 4096;
    float *x = realloc(d->x, cap * d->n_features * sizeof(float));
    if (!x)
        return -1;
    d->x = x;
    unsigned char *y = realloc(d->y, cap);
    if (!y)
        return -1;
    d->y = y;
    d->cap = cap;
    return 0;
}

/* The label field's non-null type: boolean, int or long, optionally in a union with null.
 * Returns 0, or -1 with errstr. */
static int check_label_field(avro_schema_t wschema, const char *field, const char *data, int *index,
                             char *errstr, size_t errlen) {
    *index = avro_schema_record_field_get_index(wschema, field);
    if (*index < 0) {
        snprintf(errstr, errlen,
                 "--data '%s': its schema has no label field '%s' (key validate.label.field)", data,
                 field);
        return -1;
    }
    avro_schema_t t = avro_schema_record_field_get_by_index(wschema, *index);
    int ok = 1;
    if (is_avro_union(t)) {
        size_t nb = avro_schema_union_size(t);
        for (size_t b = 0; b < nb; b++) {
            avro_type_t bt = avro_typeof(avro_schema_union_branch(t, (int)b));
            ok = ok &&
                 (bt == AVRO_NULL || bt == AVRO_BOOLEAN || bt == AVRO_INT32 || bt == AVRO_INT64);
        }
    } else {
        avro_type_t tt = avro_typeof(t);
        ok = tt == AVRO_BOOLEAN || tt == AVRO_INT32 || tt == AVRO_INT64;
    }
    if (!ok) {
        snprintf(errstr, errlen,
                 "--data '%s': label field '%s' has type '%s', not boolean or int "
                 "(key validate.label.field)",
                 data, field, avro_schema_type_name(t));
        return -1;
    }
    return 0;
}

/* The record's label: 0 or 1, -1 null, -2 not 0/1. */
static int read_label(avro_value_t *rec, int index) {
    avro_value_t v, branch;
    if (avro_value_get_by_index(rec, (size_t)index, &v, NULL) != 0)
        return -2;
    if (avro_value_get_type(&v) == AVRO_UNION) {
        if (avro_value_get_current_branch(&v, &branch) != 0)
            return -2;
        v = branch;
    }
    switch (avro_value_get_type(&v)) {
    case AVRO_NULL: return -1;
    case AVRO_BOOLEAN: {
        int b = 0;
        return avro_value_get_boolean(&v, &b) == 0 ? (b != 0) : -2;
    }
    case AVRO_INT32: {
        int32_t i = -1;
        avro_value_get_int(&v, &i);
        return i == 0 || i == 1 ? (int)i : -2;
    }
    case AVRO_INT64: {
        int64_t l = -1;
        avro_value_get_long(&v, &l);
        return l == 0 || l == 1 ? (int)l : -2;
    }
    default: return -2;
    }
}

typedef struct rename_list {
    char *const *features;
    char **fields; /* event field of each feature */
    size_t n;
} rename_list_t;

static int rename_cb(void *opaque, const char *k, const char *v, char *errstr, size_t errlen) {
    rename_list_t *r = opaque;
    for (size_t f = 0; f < r->n; f++) {
        if (strcmp(r->features[f], k) == 0) {
            free(r->fields[f]);
            r->fields[f] = strdup(v);
            return r->fields[f] ? 0 : -1;
        }
    }
    snprintf(errstr, errlen, "'%s' is not a feature of the model", k);
    return -1;
}

/* ------------------------------------------------------------------------------------ */

static void iso_utc_now(char *out, size_t len) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static double round_to(double v, double scale) {
    return isfinite(v) ? round(v * scale) / scale : v;
}

static json_t *json_number_or_null(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void fmt_value(char *buf, size_t len, double v, const char *fmt) {
    if (isnan(v))
        snprintf(buf, len, "n/a");
    else
        snprintf(buf, len, fmt, v);
}

static void print_gate_row(const gate_t *g, const char *value_fmt, const char *gate_fmt) {
    char value[32], gate[96], thr[32];
    fmt_value(value, sizeof(value), g->value, value_fmt);
    if (g->threshold < 0) {
        snprintf(gate, sizeof(gate), "not checked (%s)", g->key);
    } else {
        snprintf(thr, sizeof(thr), gate_fmt, g->threshold);
        snprintf(gate, sizeof(gate), "%s %s (%s)", g->is_max ? "<=" : ">=", thr, g->key);
    }
    printf("  %-18s %-12s %-44s %s\n", g->name, value, gate,
           g->threshold < 0 ? "-"
           : g->passed      ? "pass"
                            : "FAIL");
}

/* ------------------------------------------------------------------------------------ */
/* One run of the command: what it read, measured and decided. */

typedef struct run {
    const ss_config_t *cfg;
    const char *data, *json_out;
    int update_card;

    ss_model_t *model;
    long long model_bytes;
    avro_file_reader_t reader;
    avro_schema_t wschema; /* the data file's writer schema */
    int label_index;
    char **fields;   /* event field of each model feature (features.rename applied) */
    size_t *missing; /* indexes of the features whose field the data file lacks */
    size_t n_missing;
    ss_codec_t *codec;
    ss_decoder_t *dec;

    dataset_t ds;
    char data_sha[65];
    double *scores, *batch_ms;
    size_t batch, n_batches;
    metrics_t m;
    gate_t gates[N_GATES];
    int passed;

    json_t *card; /* NULL when model.card does not exist */
    double card_threshold;
    double threshold; /* the one scored at: model.threshold, else the card's, else 0.5 */
    char err[1024];
} run_t;

static void run_clear(run_t *r) {
    json_decref(r->card);
    if (r->fields)
        for (size_t f = 0; f < r->model->n_features; f++)
            free(r->fields[f]);
    free(r->fields);
    free(r->missing);
    free(r->scores);
    free(r->batch_ms);
    dataset_free(&r->ds);
    ss_decoder_destroy(r->dec);
    ss_codec_destroy(r->codec);
    if (r->wschema)
        avro_schema_decref(r->wschema);
    if (r->reader)
        avro_file_reader_close(r->reader);
    ss_model_unref(r->model);
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(run_t *r, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return EXIT_PASS;
        } else if (strcmp(a, "--no-update-card") == 0) {
            r->update_card = 0;
        } else if (strcmp(a, "--data") == 0 || strcmp(a, "--json") == 0) {
            if (i + 1 >= argc || !*argv[i + 1]) {
                fprintf(stderr, "streamscore validate-model: %s needs a file\n", a);
                return EXIT_USAGE;
            }
            *(a[2] == 'd' ? &r->data : &r->json_out) = argv[++i];
        } else if (strncmp(a, "--data=", 7) == 0 && a[7]) {
            r->data = a + 7;
        } else if (strncmp(a, "--json=", 7) == 0 && a[7]) {
            r->json_out = a + 7;
        } else {
            fprintf(stderr, "streamscore validate-model: unknown option '%s' (see --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (!r->data) {
        fprintf(stderr, "streamscore validate-model: --data FILE.avro is required (see --help)\n");
        return EXIT_USAGE;
    }
    return -1;
}

/* Features present: each model feature's event field (after features.rename) must be a field
 * of the data's schema. Returns 0 or an exit code. */
static int check_features(run_t *r) {
    size_t nf = r->model->n_features;
    rename_list_t ren = {.features = r->model->feature_names, .n = nf};
    r->fields = ren.fields = calloc(nf, sizeof(char *));
    r->missing = calloc(nf, sizeof(*r->missing));
    if (!r->fields || !r->missing)
        goto oom;
    for (size_t f = 0; f < nf; f++)
        if (!(r->fields[f] = strdup(r->model->feature_names[f])))
            goto oom;
    if (ss_config_parse_pairs(r->cfg->features_rename, "features.rename", rename_cb, &ren, r->err,
                              sizeof(r->err)) < 0)
        return EXIT_USAGE;
    for (size_t f = 0; f < nf; f++)
        if (avro_schema_record_field_get_index(r->wschema, r->fields[f]) < 0)
            r->missing[r->n_missing++] = f;
    return 0;
oom:
    snprintf(r->err, sizeof(r->err), "out of memory");
    return EXIT_RUNTIME;
}

/* The decoder for the data file's schema; input.schema and features.rename are checked on
 * their own first, so that an error of the data file is reported as such. */
static int make_codec(run_t *r) {
    const ss_config_t *cfg = r->cfg;
    size_t nf = r->model->n_features;
    char *const *features = r->model->feature_names;
    r->codec = ss_codec_new(cfg, features, nf, r->err, sizeof(r->err));
    if (!r->codec)
        return EXIT_USAGE;
    ss_codec_destroy(r->codec);
    r->codec =
        ss_codec_new_for_writer(cfg, features, nf, r->wschema, r->data, r->err, sizeof(r->err));
    if (!r->codec) {
        char why[sizeof(r->err)];
        const char *tail = strstr(r->err, "against input.schema: ");
        snprintf(why, sizeof(why), "%s", tail ? tail + strlen("against input.schema: ") : r->err);
        size_t len = (size_t)snprintf(r->err, sizeof(r->err),
                                      "--data '%s': its schema does not resolve against "
                                      "input.schema '%s': %s",
                                      r->data, cfg->input_schema, why);
        for (size_t i = 0; i < r->n_missing && len < sizeof(r->err); i++)
            len += (size_t)snprintf(r->err + len, sizeof(r->err) - len, "%s%s",
                                    i ? ", " : "; it also lacks the model features ",
                                    r->fields[r->missing[i]]);
        return EXIT_USAGE;
    }
    r->dec = ss_decoder_new(r->codec, r->err, sizeof(r->err));
    return r->dec ? 0 : EXIT_RUNTIME;
}

/* The model (as the worker loads it), the data file, its label field and the decoder. */
static int open_inputs(run_t *r) {
    const ss_config_t *cfg = r->cfg;
    int rc;
    r->model = ss_model_load(cfg->model_path, cfg->model_card, cfg->model_name, cfg->model_version,
                             r->err, sizeof(r->err));
    if (!r->model)
        return EXIT_USAGE;
    r->threshold = ss_model_threshold(r->model, cfg->model_threshold);
    struct stat st;
    if (stat(cfg->model_path, &st) != 0) {
        snprintf(r->err, sizeof(r->err), "model: cannot stat '%s' (key model.path): %s",
                 cfg->model_path, strerror(errno));
        return EXIT_RUNTIME;
    }
    r->model_bytes = (long long)st.st_size;

    if (access(r->data, R_OK) != 0) {
        snprintf(r->err, sizeof(r->err), "--data '%s': %s", r->data, strerror(errno));
        return EXIT_USAGE;
    }
    /* Avro C leaks a buffer when its reader rejects a file, so look at the magic first. */
    unsigned char magic[4] = {0};
    FILE *f = fopen(r->data, "rb");
    size_t got = f ? fread(magic, 1, sizeof(magic), f) : 0;
    if (f)
        fclose(f);
    if (got != sizeof(magic) || memcmp(magic, "Obj\x01", 4) != 0) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s' is not an Avro object container file (no 'Obj\\x01' magic)", r->data);
        return EXIT_USAGE;
    }
    if (avro_file_reader(r->data, &r->reader) != 0) {
        r->reader = NULL;
        snprintf(r->err, sizeof(r->err),
                 "--data '%s' is not a readable Avro object container file: %s", r->data,
                 avro_strerror());
        return EXIT_USAGE;
    }
    r->wschema = avro_file_reader_get_writer_schema(r->reader);
    if (!r->wschema || !is_avro_record(r->wschema)) {
        snprintf(r->err, sizeof(r->err), "--data '%s': the file's schema is not a record", r->data);
        return EXIT_USAGE;
    }
    if (check_label_field(r->wschema, cfg->validate_label_field, r->data, &r->label_index, r->err,
                          sizeof(r->err)) < 0)
        return EXIT_USAGE;
    if ((rc = check_features(r)) != 0 || (rc = make_codec(r)) != 0)
        return rc;

    r->card_threshold = NAN;
    if (cfg->model_card && access(cfg->model_card, F_OK) == 0) {
        json_error_t jerr;
        r->card = json_load_file(cfg->model_card, 0, &jerr);
        if (!r->card || !json_is_object(r->card)) {
            snprintf(r->err, sizeof(r->err), "model card '%s' (key model.card): line %d: %s",
                     cfg->model_card, jerr.line, r->card ? "not a JSON object" : jerr.text);
            return EXIT_USAGE;
        }
        json_t *t = json_object_get(r->card, "threshold");
        if (json_is_number(t))
            r->card_threshold = json_number_value(t);
    }
    return 0;
}

/* Every record: the features through the codec, the label read here. Records without a label
 * or that do not decode are counted and skipped. */
static int read_records(run_t *r) {
    dataset_t *ds = &r->ds;
    size_t nf = r->model->n_features;
    avro_value_iface_t *iface = avro_generic_class_from_schema(r->wschema);
    avro_value_t value = {0};
    int rc = EXIT_RUNTIME;
    if (!iface || avro_generic_value_new(iface, &value) != 0) {
        snprintf(r->err, sizeof(r->err), "cannot create an Avro value for '%s': %s", r->data,
                 avro_strerror());
        goto cleanup;
    }
    ds->n_features = nf;
    for (;; avro_value_reset(&value)) {
        int rr = avro_file_reader_read_value(r->reader, &value);
        if (rr == EOF)
            break;
        if (rr != 0) {
            snprintf(r->err, sizeof(r->err), "--data '%s': cannot read record %zu: %s", r->data,
                     ds->records + 1, avro_strerror());
            goto cleanup;
        }
        ds->records++;
        int label = read_label(&value, r->label_index);
        if (label < 0) {
            *(label == -1 ? &ds->unlabeled : &ds->bad_label) += 1;
            continue;
        }
        if (dataset_grow(ds) < 0) {
            snprintf(r->err, sizeof(r->err), "out of memory");
            goto cleanup;
        }
        ss_event_t ev;
        char derr[256];
        int dr = ss_decoder_extract(r->dec, &value, &ev, ds->x + ds->n * nf, derr, sizeof(derr));
        if (dr != SS_DECODE_OK) {
            if (ds->undecodable++ == 0)
                snprintf(ds->first_decode_error, sizeof(ds->first_decode_error),
                         "record %zu: %s: %s", ds->records, ss_decode_reason(dr), derr);
            continue;
        }
        ds->y[ds->n++] = (unsigned char)label;
    }
    if (ds->n == 0) {
        snprintf(r->err, sizeof(r->err),
                 "--data '%s': no usable record: %zu records, %zu without label '%s', %zu with a "
                 "label that is not 0/1, %zu undecodable%s%s",
                 r->data, ds->records, ds->unlabeled, r->cfg->validate_label_field, ds->bad_label,
                 ds->undecodable, ds->undecodable ? "; first: " : "", ds->first_decode_error);
        goto cleanup;
    }
    if (file_sha256(r->data, r->data_sha) < 0) {
        snprintf(r->err, sizeof(r->err), "--data '%s': cannot read it for its SHA-256: %s", r->data,
                 strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (value.self)
        avro_value_decref(&value);
    if (iface)
        avro_value_iface_decref(iface);
    return rc;
}

/* Score in batches of batch.max.messages rows, one timed XGBoost call per batch, as the
 * worker does; then the metrics and the gates. */
static int score_and_judge(run_t *r) {
    const ss_config_t *cfg = r->cfg;
    dataset_t *ds = &r->ds;
    size_t nf = r->model->n_features;
    ss_predictor_t *pred = NULL;
    int rc = EXIT_RUNTIME;
    r->batch = cfg->batch_max_messages > 0 ? (size_t)cfg->batch_max_messages : 256;
    r->n_batches = (ds->n + r->batch - 1) / r->batch;
    r->scores = malloc(ds->n * sizeof(double));
    r->batch_ms = malloc(r->n_batches * sizeof(double));
    if (!r->scores || !r->batch_ms) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        goto cleanup;
    }
    if (!(pred = ss_predictor_new(r->err, sizeof(r->err))))
        goto cleanup;
    double total_ms = 0;
    for (size_t b = 0; b < r->n_batches; b++) {
        size_t off = b * r->batch, rows = ds->n - off < r->batch ? ds->n - off : r->batch;
        double t0 = now_ms();
        if (ss_model_predict(r->model, pred, ds->x + off * nf, rows, r->scores + off, r->err,
                             sizeof(r->err)) < 0)
            goto cleanup;
        r->batch_ms[b] = now_ms() - t0;
        total_ms += r->batch_ms[b];
    }

    metrics_t *m = &r->m;
    if (compute_metrics(m, r->scores, ds->y, ds->n, r->threshold) < 0) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        goto cleanup;
    }
    /* Latency over full batches (the gate's unit); the last, partial batch counts only when
     * there is no full one. */
    size_t n_timed = ds->n % r->batch && r->n_batches > 1 ? r->n_batches - 1 : r->n_batches;
    qsort(r->batch_ms, n_timed, sizeof(double), cmp_double);
    m->n_batches = n_timed;
    m->batch_p50_ms = percentile(r->batch_ms, n_timed, 0.50);
    m->batch_p99_ms = percentile(r->batch_ms, n_timed, 0.99);
    m->rows_per_s = total_ms > 0 ? (double)ds->n / (total_ms / 1e3) : NAN;

    gate_t gates[N_GATES] = {
        [G_AUC] = {"roc_auc", "validate.min.roc.auc", 0, cfg->validate_min_roc_auc, m->roc_auc, 0},
        [G_PRECISION] = {"precision", "validate.min.precision", 0, cfg->validate_min_precision,
                         m->precision, 0},
        [G_RECALL] = {"recall", "validate.min.recall", 0, cfg->validate_min_recall, m->recall, 0},
        [G_F1] = {"f1", "validate.min.f1", 0, cfg->validate_min_f1, m->f1, 0},
        [G_MODEL_MB] = {"model_mb", "validate.max.model.mb", 1, cfg->validate_max_model_mb,
                        (double)r->model_bytes / 1e6, 0},
        [G_BATCH_P99] = {"batch_p99_ms", "validate.max.batch.p99.ms", 1,
                         cfg->validate_max_batch_p99_ms, m->batch_p99_ms, 0},
    };
    r->passed = r->n_missing == 0;
    for (int g = 0; g < N_GATES; g++) {
        gate_check(&gates[g]);
        r->passed = r->passed && gates[g].passed;
    }
    memcpy(r->gates, gates, sizeof(gates));
    rc = 0;
cleanup:
    ss_predictor_destroy(pred);
    return rc;
}

/* The readable report on stdout: one row per metric, its gate and the verdict. */
static void print_report(const run_t *r) {
    const ss_config_t *cfg = r->cfg;
    const dataset_t *ds = &r->ds;
    const gate_t *gates = r->gates;
    size_t nf = r->model->n_features;
    char v[32], g[96];

    printf("streamscore validate-model: %s %s (%s, %lld bytes)\n", r->model->name,
           r->model->version, cfg->model_path, r->model_bytes);
    printf("data: %s (sha256 %.16s...)\n", r->data, r->data_sha);
    printf("records: %zu read, %zu scored, %zu without label, %zu with a label not 0/1, "
           "%zu undecodable\n",
           ds->records, ds->n, ds->unlabeled, ds->bad_label, ds->undecodable);
    if (ds->undecodable)
        printf("first undecodable: %s\n", ds->first_decode_error);
    printf("threshold: %g (%s)", r->threshold,
           isnan(cfg->model_threshold) ? "the model card's, or 0.5" : "model.threshold");
    if (!isnan(r->card_threshold) && fabs(r->card_threshold - r->threshold) > 1e-12)
        printf("; note: the model card's threshold is %g", r->card_threshold);
    printf("\nbatches: %zu of up to %zu rows (batch.max.messages)\n\n", r->n_batches, r->batch);

    printf("  %-18s %-12s %-44s %s\n", "metric", "value", "gate", "result");
    print_gate_row(&gates[G_AUC], "%.4f", "%.4f");
    print_gate_row(&gates[G_PRECISION], "%.4f", "%.4f");
    print_gate_row(&gates[G_RECALL], "%.4f", "%.4f");
    print_gate_row(&gates[G_F1], "%.4f", "%.4f");
    printf("  %-18s %-12.4f\n", "positive_rate", r->m.positive_rate);
    printf("  %-18s %-12zu\n", "n", r->m.n);
    print_gate_row(&gates[G_MODEL_MB], "%.3f", "%g");
    fmt_value(v, sizeof(v), r->m.batch_p50_ms, "%.3f");
    printf("  %-18s %-12s\n", "batch_p50_ms", v);
    print_gate_row(&gates[G_BATCH_P99], "%.3f", "%g");
    fmt_value(v, sizeof(v), r->m.rows_per_s, "%.0f");
    printf("  %-18s %-12s\n", "rows_per_s", v);
    snprintf(v, sizeof(v), "%zu/%zu", nf - r->n_missing, nf);
    snprintf(g, sizeof(g), "all %zu model features in the data", nf);
    printf("  %-18s %-12s %-44s %s\n", "features_present", v, g, r->n_missing ? "FAIL" : "pass");

    if (r->n_missing) {
        printf("\nthe data file's schema lacks the field of %zu model feature%s:", r->n_missing,
               r->n_missing == 1 ? "" : "s");
        for (size_t i = 0; i < r->n_missing; i++) {
            size_t f = r->missing[i];
            if (strcmp(r->fields[f], r->model->feature_names[f]) != 0)
                printf("%s%s (feature %s)", i ? ", " : " ", r->fields[f],
                       r->model->feature_names[f]);
            else
                printf("%s%s", i ? ", " : " ", r->fields[f]);
        }
        printf("\n");
    }
    if (r->passed) {
        int checked = 1;
        for (int i = 0; i < N_GATES; i++)
            checked += gates[i].threshold >= 0;
        printf("\nPASS: all %d checked gates passed\n", checked);
    } else {
        const char *sep = " ";
        printf("\nFAIL:");
        for (int i = 0; i < N_GATES; i++) {
            if (gates[i].passed)
                continue;
            fmt_value(v, sizeof(v), gates[i].value, "%.4g");
            printf("%s%s %s %s %g (%s)", sep, gates[i].name, v, gates[i].is_max ? ">" : "<",
                   gates[i].threshold, gates[i].key);
            sep = "; ";
        }
        if (r->n_missing) {
            printf("%sfeatures_present %zu/%zu (the data lacks", sep, nf - r->n_missing, nf);
            for (size_t i = 0; i < r->n_missing; i++)
                printf("%s%s", i ? ", " : " ", r->fields[r->missing[i]]);
            printf(")");
        }
        printf("\n");
    }
    fflush(stdout);
}

/* The result as the card's "validation" object (new reference, NULL when out of memory). */
static json_t *result_json(const run_t *r) {
    const metrics_t *m = &r->m;
    const dataset_t *ds = &r->ds;
    size_t nf = r->model->n_features;
    char when[32];
    iso_utc_now(when, sizeof(when));
    json_t *res = json_object(), *jm = json_object(), *jg = json_object(), *jmiss = json_array(),
           *jnot = json_array();
    if (!res || !jm || !jg || !jmiss || !jnot) {
        json_decref(res);
        json_decref(jm);
        json_decref(jg);
        json_decref(jmiss);
        json_decref(jnot);
        return NULL;
    }
    json_object_set_new(res, "validated_at", json_string(when));
    json_object_set_new(res, "data_file", json_string(r->data));
    json_object_set_new(res, "data_sha256", json_string(r->data_sha));
    json_object_set_new(res, "n", json_integer((json_int_t)ds->n));
    json_object_set_new(res, "records",
                        json_pack("{sIsIsIsI}", "read", (json_int_t)ds->records, "unlabeled",
                                  (json_int_t)ds->unlabeled, "bad_label", (json_int_t)ds->bad_label,
                                  "undecodable", (json_int_t)ds->undecodable));
    json_object_set_new(res, "label_field", json_string(r->cfg->validate_label_field));
    json_object_set_new(res, "threshold", json_real(r->threshold));

    json_object_set_new(jm, "roc_auc", json_number_or_null(round_to(m->roc_auc, 1e6)));
    json_object_set_new(jm, "precision", json_real(round_to(m->precision, 1e6)));
    json_object_set_new(jm, "recall", json_real(round_to(m->recall, 1e6)));
    json_object_set_new(jm, "f1", json_real(round_to(m->f1, 1e6)));
    json_object_set_new(jm, "positive_rate", json_real(round_to(m->positive_rate, 1e6)));
    json_object_set_new(jm, "batch_p50_ms", json_number_or_null(round_to(m->batch_p50_ms, 1e3)));
    json_object_set_new(jm, "batch_p99_ms", json_number_or_null(round_to(m->batch_p99_ms, 1e3)));
    json_object_set_new(jm, "rows_per_s", json_number_or_null(round_to(m->rows_per_s, 1)));
    json_object_set_new(jm, "batch_rows", json_integer((json_int_t)r->batch));
    json_object_set_new(res, "metrics", jm);
    json_object_set_new(res, "model_bytes", json_integer((json_int_t)r->model_bytes));

    for (int g = 0; g < N_GATES; g++) {
        const gate_t *gt = &r->gates[g];
        if (gt->threshold < 0) {
            json_array_append_new(jnot, json_string(gt->name));
            continue;
        }
        double v = round_to(gt->value, g == G_BATCH_P99 ? 1e3 : 1e6);
        json_object_set_new(jg, gt->name,
                            json_pack("{s:f,s:o,s:b}", "threshold", gt->threshold, "value",
                                      json_number_or_null(v), "passed", gt->passed));
    }
    for (size_t i = 0; i < r->n_missing; i++)
        json_array_append_new(jmiss, json_string(r->fields[r->missing[i]]));
    json_object_set_new(jg, "features_present",
                        json_pack("{s:I,s:I,s:b,s:o}", "threshold", (json_int_t)nf, "value",
                                  (json_int_t)(nf - r->n_missing), "passed", r->n_missing == 0,
                                  "missing", jmiss));
    json_object_set_new(res, "gates", jg);
    json_object_set_new(res, "not_checked", jnot);
    json_object_set_new(res, "passed", json_boolean(r->passed));
    json_object_set_new(res, "streamscore_version", json_string(SS_VERSION));
    json_object_set_new(res, "xgboost_version", json_string(ss_model_xgboost_version()));
    return res;
}

/* --json FILE and the model card. Returns 0 or an exit code. */
static int record_result(run_t *r) {
    const char *card_path = r->cfg->model_card;
    json_t *res = result_json(r);
    int rc = EXIT_RUNTIME;
    if (!res) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        return EXIT_RUNTIME;
    }
    if (r->json_out) {
        json_t *doc =
            json_pack("{s:s,s:s,s:s,s:s?,s:O}", "model_name", r->model->name, "model_version",
                      r->model->version, "model_path", r->cfg->model_path, "model_card",
                      r->card ? card_path : NULL, "validation", res);
        if (!doc) {
            snprintf(r->err, sizeof(r->err), "out of memory");
            goto cleanup;
        }
        int w = write_json_file(r->json_out, doc, r->err, sizeof(r->err));
        json_decref(doc);
        if (w < 0) {
            size_t len = strlen(r->err);
            snprintf(r->err + len, sizeof(r->err) - len, " (--json)");
            goto cleanup;
        }
        printf("result written to %s\n", r->json_out);
    }
    if (!r->update_card) {
        printf("model card not updated (--no-update-card)\n");
    } else if (!r->card) {
        printf("note: model card '%s' does not exist; not created (the result is not recorded)\n",
               card_path ? card_path : "");
    } else {
        json_object_set(r->card, "validation", res);
        if (write_json_file(card_path, r->card, r->err, sizeof(r->err)) < 0) {
            size_t len = strlen(r->err);
            snprintf(r->err + len, sizeof(r->err) - len, " (model card, key model.card)");
            goto cleanup;
        }
        printf("model card %s updated (\"validation\")\n", card_path);
    }
    rc = 0;
cleanup:
    json_decref(res);
    return rc;
}

int ss_validate_main(const ss_config_t *cfg, int argc, char **argv) {
    if (!cfg) {
        usage(stdout);
        return EXIT_PASS;
    }
    run_t r = {.cfg = cfg, .update_card = 1};
    int rc = parse_args(&r, argc, argv);
    if (rc >= 0)
        return rc;
    if ((rc = open_inputs(&r)) == 0 && (rc = read_records(&r)) == 0 &&
        (rc = score_and_judge(&r)) == 0) {
        print_report(&r);
        rc = record_result(&r);
    }
    if (rc == 0) {
        ss_log(r.passed ? SS_LOG_INFO : SS_LOG_WARN,
               SS_FIELDS(SSF_STR("model", r.model->name), SSF_STR("version", r.model->version),
                         SSF_INT("n", r.ds.n), SSF_REAL("roc_auc", isnan(r.m.roc_auc) ? -1.0 : r.m.roc_auc),
                         SSF_REAL("f1", r.m.f1), SSF_BOOL("passed", r.passed)), "validate-model: %s",
               r.passed ? "every gate passed" : "a gate failed");
        rc = r.passed ? EXIT_PASS : EXIT_GATE;
    } else {
        ss_log(SS_LOG_ERROR, NULL, "validate-model: %s", r.err);
        fprintf(stderr, "streamscore validate-model: %s\n", r.err);
    }
    run_clear(&r);
    return rc;
}
