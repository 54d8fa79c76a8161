/* compare.c - `streamscore compare`: reads the primary's predictions and the shadow's results,
 * joins them on the source record (topic, partition, offset) with bounded memory and works
 * out how the candidate model differs; report.c renders the figures.
 *
 * Reading. Each topic is read once, with manual assignment in a throw-away consumer group that
 * never commits, from the first offset at or after --from (offsets_for_times) to the high
 * watermark taken at start; records whose Kafka timestamp is outside [--from, --to) are
 * skipped (and counted as out_of_range; those before the seek point are never read). The
 * shadow file is filtered on scored_at instead. compare.timeout.ms bounds every wait: the
 * metadata and offset requests, and any stretch without a record or end of partition.
 * Re-deliveries: the record read last for a key wins (a key's copies share a partition).
 *
 * Memory bound. Every decoded record becomes a fixed 64-byte rec_t spilled to one of B bucket
 * files in a temporary folder; the bucket is a hash of the join key, so both sides of a pair
 * and a record's re-deliveries meet in the same bucket. B = expected records / 262144
 * (1..4096), the expectation (an upper bound) taken before reading from the partitions'
 * offset ranges and the shadow file's size / 150 bytes. The join loads one bucket at a time
 * with its hash table (<= 96 bytes per record, ~25 MB for a full bucket). Figures that need
 * every value (quantiles, Spearman, ROC-AUC) re-read value files written during the join:
 * exact (numpy's linear percentile, average ranks for ties, AUC counting ties half) when a
 * file holds at most --exact-limit values (default 1,000,000; <= 48 bytes each in memory),
 * else from 65536-bin histograms over the values' [min, max] (a quantile lands within one
 * bin, (max - min) / 65536, of the order statistics around its rank, without numpy's
 * interpolation between them; values in one bin count as ties). Resident memory: one bucket + bucket write buffers
 * (16 MB) + labels (24 bytes per label row) + the exact arrays + ~3 MB of histograms +
 * librdkafka's prefetch (queued.max.messages.kbytes, 16 MB unless set), whatever the topics'
 * size; only inputs beyond 4096 x 262144 records make buckets outgrow the target.
 *
 * Labels are loaded first (sorted by a 64-bit hash of the customer id, then time); a record
 * takes its customer's earliest label at or after its event_time.
 *
 * compare.json (structure version 1; figures that cannot be computed are null):
 * { "streamscore_compare": 1, "generated_at": ISO,
 *   "inputs": { "primary"|"shadow": { "source": "kafka"|"file", "topic": str|null,
 *                 "file": str|null, "format": "avro"|"json", "partitions": n, "read": n,
 *                 "malformed": n, "out_of_range": n, "other_models_records": n },
 *               "time_range": { "from": ISO|null, "to": ISO|null, "from_ms": n|null,
 *                 "to_ms": n|null, "by": "kafka timestamp" },   // [from, to)
 *               "labels": null | { "source": str, "rows": n, "malformed": n } },
 *   "counts": { "primary": n, "shadow": n (distinct keys), "matched": n, "primary_only": n,
 *               "shadow_only": n, "duplicates": {"primary": n, "shadow": n},
 *               "matched_share": x (matched / primary), "identical_features": n,
 *               "identical_share": x (identical / matched) },
 *   "models": { "primary"|"shadow": [ {"name", "version", "threshold", "records"} ] },
 *   "pairs": { "scope": "identical_features", "n": n,          // d = shadow - primary score
 *              "score_diff": {"mean", "abs_p50", "abs_p99", "abs_max"},
 *              "flips": {"no_to_yes", "yes_to_no", "total", "rate"}, // recorded decisions
 *              "spearman": x, "diff_histogram": {"lo", "hi", "counts": [40]} },
 *   "distributions": { "edges": [21 over 0..1], "primary"|"shadow": {"counts": [20],
 *                      "below": n, "above": n} },   // all distinct records; out of [0, 1]
 *                                                   // counted in the edge bins too
 *   "latency_ms": { "primary"|"shadow": {"n", "p50", "p99"} },  // scored_at - event_time
 *   "labels": null | { "primary"|"shadow": {"labeled", "positives", "roc_auc", "precision",
 *                      "recall", "f1", "tp", "fp", "fn", "tn"} },  // all distinct records,
 *                                                   // precision etc. from recorded decisions
 *   "verdict": { "decision": "promote"|"hold"|"none", "reasons": [failed], "passed": [str],
 *                "criteria": [ {"key", "limit", "value", "passed", "reason"} ] },
 *   "method": { "exact": bool, "exact_limit": n, "buckets": n, "max_bucket_records": n } }
 */
#include "compare.h"

#include <avro.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "codec.h"
#include "log.h"
#include "hash.h"
#include "kafka.h"
#include "report.h"

#define BUCKET_TARGET 262144
#define MAX_BUCKETS 4096
#define WRITE_BUFFER_BYTES (16u << 20)
#define HIST_BINS 65536
#define MAX_TOPICS 64
#define NO_TIME INT64_MIN

/* ---- records ------------------------------------------------------------------------- */

/* One prediction as spilled: the join key and what the figures need. */
typedef struct rec {
    int64_t offset, event_time, scored_at; /* times NO_TIME when absent */
    uint64_t seq;                          /* read order on its side: the latest wins */
    uint64_t fhash;
    double score;
    uint32_t topic; /* interned source topic */
    int32_t partition;
    uint16_t model; /* index in the side's models, 0xffff beyond them */
    uint8_t side, decision;
    int8_t label; /* -1 unlabeled */
    uint8_t pad[3];
} rec_t;
_Static_assert(sizeof(rec_t) == 64, "rec_t is 64 bytes");

typedef struct str {
    const char *p;
    size_t n;
} str_t;

/* A decoded prediction; strings point into decoder memory. */
typedef struct pred {
    str_t customer_id, model_name, model_version, source_topic;
    double score, threshold;
    int decision;
    int32_t partition;
    int64_t offset, event_time, scored_at;
    uint64_t fhash;
} pred_t;

typedef struct label {
    uint64_t cust;
    int64_t time;
    int64_t label;
} label_t;

typedef struct opts {
    int64_t from_ms, to_ms;
    const char *labels, *out_dir;
    int quiet, json_only;
    long exact_limit;
} opts_t;

/* A file of values (k doubles per entry) written during the join, read back afterwards. */
typedef struct col {
    FILE *f;
    uint64_t n;
    int k;
    double min[2], max[2];
} col_t;

typedef struct spill {
    int nb;
    size_t cap; /* records per bucket buffer */
    rec_t *buf;
    uint32_t *fill;
    uint64_t *count;
} spill_t;

typedef struct pdec pdec_t;

typedef struct cmp {
    const ss_config_t *cfg;
    opts_t o;
    ss_cmp_result_t r;
    pdec_t *dec;
    label_t *labels;
    size_t n_labels, cap_labels;
    char topics[MAX_TOPICS][256];
    int n_topics;
    int topic_side[2]; /* Kafka reader topic index -> side */
    spill_t spill;
    col_t pairs, absdiff, lat[2], pos[2], neg[2];
    uint64_t seq[2];
    double diff_sum;
    uint64_t rng;
    char tmp[512];
    char err[1024]; /* first fatal error raised inside a callback */
} cmp_t;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rec_hash(const rec_t *r) {
    return mix64((uint64_t)r->offset ^ mix64(((uint64_t)r->topic << 32) | (uint32_t)r->partition));
}

static int same_key(const rec_t *a, const rec_t *b) {
    return a->offset == b->offset && a->partition == b->partition && a->topic == b->topic;
}

/* ---- time and label values ----------------------------------------------------------- */

/* Epoch milliseconds, or ISO-8601 "YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM]" (UTC if no zone). */
static int parse_time(const char *s, size_t n, int64_t *ms) {
    char buf[64], *end;
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end == '\0' && errno == 0) {
        *ms = v;
        return 0;
    }
    int y, mo, d, h = 0, mi = 0, sec = 0, used = 0, frac = 0, off = 0;
    if (sscanf(buf, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
        return -1;
    const char *p = buf + used;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &used) != 2 || used != 5)
            return -1;
        p += 6;
        if (*p == ':') {
            if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
                return -1;
            sec = (p[1] - '0') * 10 + (p[2] - '0');
            p += 3;
        }
        if (*p == '.') {
            int digits = 0;
            for (p++; isdigit((unsigned char)*p); p++, digits++)
                if (digits < 3)
                    frac = frac * 10 + (*p - '0');
            if (!digits)
                return -1;
            for (; digits < 3; digits++)
                frac *= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        off = ((p[1] - '0') * 10 + (p[2] - '0')) * 60 + (p[4] - '0') * 10 + (p[5] - '0');
        off = *p == '-' ? -off : off;
        p += 6;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    *ms = (int64_t)timegm(&tm) * 1000 + frac - (int64_t)off * 60000;
    return 0;
}

static int parse_label(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if ((n == 1 && *s == '1') || (n == 4 && strncasecmp(s, "true", 4) == 0))
        return 1;
    if ((n == 1 && *s == '0') || (n == 5 && strncasecmp(s, "false", 5) == 0))
        return 0;
    return -1;
}

/* ---- JSON objects without allocation --------------------------------------------------- */

enum { JV_ABSENT = 0, JV_STR, JV_NUM, JV_BOOL, JV_NULL, JV_OTHER };
typedef struct jv {
    int type;
    const char *s; /* JV_STR, NUL-terminated in the scratch buffer */
    size_t n;
    double num;
    int64_t i; /* JV_NUM with is_int, JV_BOOL */
    int is_int;
} jv_t;

static const char *j_ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hex4(const char *p, const char *e, unsigned *out) {
    unsigned v = 0;
    if (e - p < 4)
        return -1;
    for (int k = 0; k < 4; k++) {
        int c = p[k], x = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
        if (x < 0)
            return -1;
        v = v << 4 | (unsigned)x;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *o, unsigned cp) {
    unsigned char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp, k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3f)), k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | cp >> 12), b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f)), k = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | cp >> 18), b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)), b[3] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    if (o)
        memcpy(o, b, k);
    return k;
}

/* The string whose opening quote is at p; unescaped into o (never longer than its input)
 * when o is not NULL. Returns the byte after the closing quote, or NULL. */
static const char *j_str(const char *p, const char *e, char *o, size_t *olen) {
    size_t n = 0;
    for (p++; p < e;) {
        unsigned char ch = (unsigned char)*p++;
        unsigned cp;
        if (ch == '"') {
            if (olen)
                *olen = n;
            return p;
        }
        if (ch < 0x20)
            return NULL;
        if (ch != '\\') {
            if (o)
                o[n] = (char)ch;
            n++;
            continue;
        }
        if (p >= e)
            return NULL;
        switch ((ch = (unsigned char)*p++)) {
        case '"':
        case '\\':
        case '/': cp = ch; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (hex4(p, e, &cp))
                return NULL;
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                unsigned lo;
                if (e - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, e, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return NULL;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return NULL;
            }
            break;
        default: return NULL;
        }
        n += utf8_put(o ? o + n : NULL, cp);
    }
    return NULL;
}

/* One value; strings are stored at *sc (advanced) when sc is not NULL. */
static const char *j_value(const char *p, const char *e, jv_t *v, char **sc, int depth) {
    p = j_ws(p, e);
    if (p >= e)
        return NULL;
    v->type = JV_OTHER;
    if (*p == '"') {
        size_t n = 0;
        const char *q = j_str(p, e, sc ? *sc : NULL, &n);
        if (q && sc) {
            v->s = *sc, v->n = n, (*sc)[n] = '\0', *sc += n + 1;
            v->type = JV_STR;
        }
        return q;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        if (depth > 32)
            return NULL;
        p = j_ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            jv_t tmp;
            if (obj) {
                p = j_ws(p, e);
                if (p >= e || *p != '"' || !(p = j_str(p, e, NULL, NULL)))
                    return NULL;
                p = j_ws(p, e);
                if (p >= e || *p++ != ':')
                    return NULL;
            }
            if (!(p = j_value(p, e, &tmp, NULL, depth + 1)))
                return NULL;
            p = j_ws(p, e);
            if (p < e && *p == ',')
                p++;
            else if (p < e && *p == close)
                return p + 1;
            else
                return NULL;
        }
    }
    static const struct {
        const char *lit;
        int type, val;
    } lits[] = {{"true", JV_BOOL, 1}, {"false", JV_BOOL, 0}, {"null", JV_NULL, 0}};
    for (size_t k = 0; k < 3; k++) {
        size_t ln = strlen(lits[k].lit);
        if ((size_t)(e - p) >= ln && memcmp(p, lits[k].lit, ln) == 0) {
            v->type = lits[k].type, v->i = lits[k].val;
            return p + ln;
        }
    }
    char buf[64], *end;
    size_t k = 0;
    while (p + k < e && k < sizeof(buf) - 1 && p[k] && strchr("+-0123456789.eE", p[k]))
        k++;
    if (!k || k == sizeof(buf) - 1 || !(*p == '-' || isdigit((unsigned char)*p)))
        return NULL;
    memcpy(buf, p, k);
    buf[k] = '\0';
    errno = 0;
    v->is_int = !strpbrk(buf, ".eE");
    if (v->is_int) {
        v->i = strtoll(buf, &end, 10);
        v->num = (double)v->i;
    } else {
        v->num = strtod(buf, &end);
    }
    if (*end || errno)
        return NULL;
    v->type = JV_NUM;
    return p + k;
}

/* The members named in keys[] of the JSON object in [p, p + len); others are skipped.
 * `scratch` holds at least len + 1 bytes. Returns 0 or -1 (not one well-formed object). */
static int j_object(const char *p, size_t len, char *scratch, const char *const *keys, int nkeys,
                    jv_t *out) {
    const char *e = p + len;
    char *sc = scratch;
    for (int i = 0; i < nkeys; i++)
        out[i].type = JV_ABSENT;
    p = j_ws(p, e);
    if (p >= e || *p++ != '{')
        return -1;
    p = j_ws(p, e);
    if (p < e && *p == '}') {
        p++;
    } else {
        for (;;) {
            size_t kn = 0;
            int which = -1;
            p = j_ws(p, e);
            if (p >= e || *p != '"' || !(p = j_str(p, e, sc, &kn)))
                return -1;
            for (int i = 0; i < nkeys; i++)
                if (strlen(keys[i]) == kn && memcmp(keys[i], sc, kn) == 0)
                    which = i;
            p = j_ws(p, e);
            if (p >= e || *p++ != ':')
                return -1;
            jv_t tmp;
            if (!(p = j_value(p, e, which >= 0 ? &out[which] : &tmp, which >= 0 ? &sc : NULL, 0)))
                return -1;
            p = j_ws(p, e);
            if (p < e && *p == ',') {
                p++;
                continue;
            }
            if (p < e && *p == '}') {
                p++;
                break;
            }
            return -1;
        }
    }
    return j_ws(p, e) == e ? 0 : -1;
}

/* ---- prediction decoding (Avro of output.schema, or JSON) ----------------------------- */

enum {
    F_CUSTOMER_ID,
    F_SCORE,
    F_DECISION,
    F_THRESHOLD,
    F_MODEL_NAME,
    F_MODEL_VERSION,
    F_SOURCE_TOPIC,
    F_SOURCE_PARTITION,
    F_SOURCE_OFFSET,
    F_EVENT_TIME,
    F_SCORED_AT,
    F_FEATURE_HASH,
    F_COUNT
};
static const char *const pred_keys[F_COUNT] = {
    "customer_id",   "score",         "decision",     "threshold",
    "model_name",    "model_version", "source_topic", "source_partition",
    "source_offset", "event_time",    "scored_at",    "feature_hash"};
static const int pred_required[] = {F_SCORE, F_DECISION, F_SOURCE_PARTITION, F_SOURCE_OFFSET,
                                    F_FEATURE_HASH};

struct pdec {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    avro_reader_t reader;
    int idx[F_COUNT];
    int framed; /* Avro values in the Confluent wire format (a registry, or output.schema.id) */
    char *scratch;
    size_t scratch_cap;
};

/* avro-c allocates the length a string claims before reading it, and leaks that buffer when
 * the read then fails. While compare decodes a value, allocations are capped at what a value
 * of that size could need and tracked: after a failed read the value is rebuilt, and what is
 * still live from that read was leaked, so it is freed. Single-threaded use only. */
#define AV_TRACK 256
static struct {
    size_t cap;
    int on, n;
    void *p[AV_TRACK];
} av = {SIZE_MAX, 0, 0, {0}};

static void av_forget(void *p) {
    for (int i = 0; i < av.n; i++)
        if (av.p[i] == p) {
            av.p[i] = av.p[--av.n];
            return;
        }
}

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud, (void)osize;
    if (av.on && ptr)
        av_forget(ptr);
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    void *q = nsize > av.cap ? NULL : realloc(ptr, nsize);
    if (av.on && q && av.n < AV_TRACK)
        av.p[av.n++] = q;
    return q;
}

static void pdec_destroy(pdec_t *d) {
    if (!d)
        return;
    if (d->iface) {
        if (d->value.self)
            avro_value_decref(&d->value);
        avro_value_iface_decref(d->iface);
    }
    if (d->schema)
        avro_schema_decref(d->schema);
    if (d->reader)
        avro_reader_free(d->reader);
    free(d->scratch);
    free(d);
}

/* `avro`: also decode Avro binary of output.schema. Errors are config errors (exit 2). */
static pdec_t *pdec_new(const ss_config_t *cfg, int avro, char *errstr, size_t errlen) {
    pdec_t *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    if (!avro)
        return d;
    d->framed = *cfg->registry_url || cfg->output_schema_id >= 0;
    if (!(d->schema = ss_schema_load(cfg->output_schema, "output.schema", errstr, errlen)))
        goto fail;
    for (int i = 0; i < F_COUNT; i++)
        d->idx[i] = avro_schema_record_field_get_index(d->schema, pred_keys[i]);
    for (size_t i = 0; i < sizeof(pred_required) / sizeof(pred_required[0]); i++)
        if (d->idx[pred_required[i]] < 0) {
            snprintf(errstr, errlen, "config: key 'output.schema': '%s' has no field '%s'",
                     cfg->output_schema, pred_keys[pred_required[i]]);
            goto fail;
        }
    avro_set_allocator(capped_alloc, NULL); /* frees what the default allocator made */
    d->iface = avro_generic_class_from_schema(d->schema);
    d->reader = avro_reader_memory("", 0);
    if (!d->iface || !d->reader || avro_generic_value_new(d->iface, &d->value) != 0) {
        snprintf(errstr, errlen, "avro: %s", avro_strerror());
        goto fail;
    }
    return d;
fail:
    pdec_destroy(d);
    return NULL;
}

static void av_get(avro_value_t *f, jv_t *v, int depth) {
    const char *s;
    size_t n;
    int32_t i32;
    int b;
    float fl;
    avro_value_t branch;
    v->type = JV_OTHER, v->is_int = 0;
    switch (avro_value_get_type(f)) {
    case AVRO_STRING:
        if (avro_value_get_string(f, &s, &n) == 0)
            v->type = JV_STR, v->s = s, v->n = n ? n - 1 : 0;
        break;
    case AVRO_DOUBLE:
        if (avro_value_get_double(f, &v->num) == 0)
            v->type = JV_NUM;
        break;
    case AVRO_FLOAT:
        if (avro_value_get_float(f, &fl) == 0)
            v->type = JV_NUM, v->num = fl;
        break;
    case AVRO_INT32:
        if (avro_value_get_int(f, &i32) == 0)
            v->type = JV_NUM, v->is_int = 1, v->i = i32, v->num = i32;
        break;
    case AVRO_INT64:
        if (avro_value_get_long(f, &v->i) == 0)
            v->type = JV_NUM, v->is_int = 1, v->num = (double)v->i;
        break;
    case AVRO_BOOLEAN:
        if (avro_value_get_boolean(f, &b) == 0)
            v->type = JV_BOOL, v->i = b;
        break;
    case AVRO_NULL: v->type = JV_NULL; break;
    case AVRO_UNION:
        if (depth == 0 && avro_value_get_current_branch(f, &branch) == 0)
            av_get(&branch, v, 1);
        break;
    default: break;
    }
}

static int jv_str(const jv_t *v, str_t *out) {
    out->p = "", out->n = 0;
    if (v->type == JV_ABSENT || v->type == JV_NULL)
        return 0;
    if (v->type != JV_STR)
        return -1;
    out->p = v->s, out->n = v->n;
    return 0;
}

static int jv_int(const jv_t *v, int64_t *out) {
    if (v->type == JV_ABSENT || v->type == JV_NULL) {
        *out = NO_TIME;
        return 0;
    }
    if (v->type != JV_NUM || !v->is_int)
        return -1;
    *out = v->i;
    return 0;
}

static int pred_from(const jv_t *v, pred_t *p) {
    uint64_t h = 0;
    if (v[F_SCORE].type != JV_NUM || !isfinite(v[F_SCORE].num))
        return -1;
    p->score = v[F_SCORE].num;
    if (v[F_DECISION].type == JV_BOOL || (v[F_DECISION].type == JV_NUM && v[F_DECISION].is_int &&
                                          (v[F_DECISION].i == 0 || v[F_DECISION].i == 1)))
        p->decision = (int)v[F_DECISION].i;
    else
        return -1;
    p->threshold = v[F_THRESHOLD].type == JV_NUM ? v[F_THRESHOLD].num : NAN;
    if (v[F_SOURCE_PARTITION].type != JV_NUM || !v[F_SOURCE_PARTITION].is_int ||
        v[F_SOURCE_PARTITION].i < 0 || v[F_SOURCE_PARTITION].i > INT32_MAX ||
        v[F_SOURCE_OFFSET].type != JV_NUM || !v[F_SOURCE_OFFSET].is_int || v[F_SOURCE_OFFSET].i < 0)
        return -1;
    p->partition = (int32_t)v[F_SOURCE_PARTITION].i;
    p->offset = v[F_SOURCE_OFFSET].i;
    if (v[F_FEATURE_HASH].type != JV_STR || v[F_FEATURE_HASH].n != 16)
        return -1;
    for (int k = 0; k < 16; k++) {
        unsigned x;
        char c = v[F_FEATURE_HASH].s[k];
        if (c >= '0' && c <= '9')
            x = (unsigned)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            x = (unsigned)((c | 0x20) - 'a' + 10);
        else
            return -1;
        h = h << 4 | x;
    }
    p->fhash = h;
    if (jv_str(&v[F_CUSTOMER_ID], &p->customer_id) || jv_str(&v[F_MODEL_NAME], &p->model_name) ||
        jv_str(&v[F_MODEL_VERSION], &p->model_version) ||
        jv_str(&v[F_SOURCE_TOPIC], &p->source_topic) || jv_int(&v[F_EVENT_TIME], &p->event_time) ||
        jv_int(&v[F_SCORED_AT], &p->scored_at))
        return -1;
    return 0;
}

/* The JSON scratch buffer for a value of len bytes (grown, never shrunk), or NULL. */
static char *scratch_for(pdec_t *d, size_t len) {
    if (len + 1 > d->scratch_cap) {
        char *g = realloc(d->scratch, len + 1);
        if (!g)
            return NULL;
        d->scratch = g, d->scratch_cap = len + 1;
    }
    return d->scratch;
}

static int pdec_decode(pdec_t *d, int json, const void *buf, size_t len, pred_t *p) {
    jv_t v[F_COUNT];
    if (json) {
        char *sc = scratch_for(d, len);
        return sc && j_object(buf, len, sc, pred_keys, F_COUNT, v) == 0 ? pred_from(v, p) : -1;
    }
    if (!d->iface)
        return -1;
    if (!d->value.self)
        return -1;
    if (d->framed) { /* magic byte 0 and the schema id: the body follows */
        if (len < 5 || ((const unsigned char *)buf)[0] != 0)
            return -1;
        buf = (const unsigned char *)buf + 5;
        len -= 5;
    }
    avro_value_reset(&d->value);
    avro_reader_memory_set_source(d->reader, buf, (int64_t)len);
    av.cap = 65536 + 32 * len, av.on = 1, av.n = 0;
    int rc = avro_value_read(d->reader, &d->value);
    if (rc != 0) {
        avro_value_decref(&d->value);
        d->value.self = NULL;
    }
    av.on = 0, av.cap = SIZE_MAX;
    if (rc != 0) {
        for (int i = 0; i < av.n; i++)
            free(av.p[i]);
        if (avro_generic_value_new(d->iface, &d->value) != 0)
            d->value.self = NULL;
        return -1;
    }
    for (int i = 0; i < F_COUNT; i++) {
        avro_value_t f;
        v[i].type = JV_ABSENT;
        if (d->idx[i] >= 0 && avro_value_get_by_index(&d->value, (size_t)d->idx[i], &f, NULL) == 0)
            av_get(&f, &v[i], 0);
    }
    return pred_from(v, p);
}

/* ---- labels ---------------------------------------------------------------------------- */

static int labels_add(cmp_t *c, const char *cid, size_t n, int label, int64_t time) {
    if (c->n_labels == c->cap_labels) {
        size_t cap = c->cap_labels ? c->cap_labels * 2 : 4096;
        label_t *g = realloc(c->labels, cap * sizeof(*g));
        if (!g)
            return -1;
        c->labels = g, c->cap_labels = cap;
    }
    c->labels[c->n_labels++] = (label_t){ss_fnv1a(SS_FNV1A_INIT, cid, n), time, label};
    c->r.labels_rows++;
    return 0;
}

static int label_cmp(const void *a, const void *b) {
    const label_t *x = a, *y = b;
    if (x->cust != y->cust)
        return x->cust < y->cust ? -1 : 1;
    return x->time < y->time ? -1 : x->time > y->time;
}

/* The customer's earliest label at or after the event; -1 when none. Customers are told
 * apart by a 64-bit hash of their id. */
static int label_of(const cmp_t *c, const str_t *cid, int64_t event_time) {
    if (!c->n_labels || event_time == NO_TIME)
        return -1;
    label_t key = {ss_fnv1a(SS_FNV1A_INIT, cid->p, cid->n), event_time, 0};
    size_t lo = 0, hi = c->n_labels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (label_cmp(&c->labels[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n_labels && c->labels[lo].cust == key.cust ? (int)c->labels[lo].label : -1;
}

/* Split a CSV line in place (RFC 4180 quotes). Returns the number of fields or -1. */
static int csv_split(char *s, char **f, int max) {
    int n = 0;
    for (;;) {
        char *o = s;
        if (n == max)
            return -1;
        f[n++] = s;
        if (*s == '"') {
            for (s++;;) {
                if (!*s)
                    return -1;
                if (*s == '"' && s[1] != '"') {
                    s++;
                    break;
                }
                if (*s == '"')
                    s++;
                *o++ = *s++;
            }
            if (*s && *s != ',')
                return -1;
        } else {
            while (*s && *s != ',')
                s++;
            o = s;
        }
        int more = *s == ',';
        *o = '\0';
        if (!more)
            return n;
        s++;
    }
}

static const char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Returns 0, 2 (cannot open, no usable header) or 1 (read error) with errstr. */
static int labels_load_csv(cmp_t *c, const char *path, char *errstr, size_t errlen) {
    FILE *f = fopen(path, "r");
    char *line = NULL, *fields[64];
    size_t cap = 0;
    int col[3] = {-1, -1, -1}, rc = 2, header = 1;
    static const char *const names[3] = {"customer_id", "label", "time"};
    if (!f) {
        snprintf(errstr, errlen, "labels '%s' (--labels / compare.labels): cannot open: %s", path,
                 strerror(errno));
        return 2;
    }
    while (getline(&line, &cap, f) >= 0) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        char *s = header && (unsigned char)line[0] == 0xef && (unsigned char)line[1] == 0xbb &&
                          (unsigned char)line[2] == 0xbf
                      ? line + 3
                      : line;
        if (!*trim(s))
            continue;
        int n = csv_split(s, fields, 64);
        if (header) {
            for (int i = 0; i < n; i++)
                for (int k = 0; k < 3; k++)
                    if (strcasecmp(trim(fields[i]), names[k]) == 0)
                        col[k] = i;
            for (int k = 0; k < 3; k++)
                if (col[k] < 0) {
                    snprintf(errstr, errlen,
                             "labels '%s': the header line has no '%s' column (expected "
                             "customer_id,label,time)",
                             path, names[k]);
                    goto out;
                }
            header = 0;
            continue;
        }
        int64_t t;
        int lab = -1;
        if (n > col[0] && n > col[1] && n > col[2]) {
            const char *cid = trim(fields[col[0]]);
            lab = *cid ? parse_label(fields[col[1]], strlen(fields[col[1]])) : -1;
            if (lab >= 0 && parse_time(fields[col[2]], strlen(fields[col[2]]), &t) == 0) {
                if (labels_add(c, cid, strlen(cid), lab, t) < 0) {
                    snprintf(errstr, errlen, "labels: out of memory");
                    rc = 1;
                    goto out;
                }
                continue;
            }
        }
        c->r.labels_malformed++;
    }
    if (ferror(f)) {
        snprintf(errstr, errlen, "labels '%s': read error: %s", path, strerror(errno));
        rc = 1;
    } else if (header) {
        snprintf(errstr, errlen,
                 "labels '%s': empty file, expected a customer_id,label,time header", path);
    } else {
        rc = 0;
    }
out:
    free(line);
    fclose(f);
    return rc;
}

static int on_label(void *opaque, int ti, const rd_kafka_message_t *m) {
    static const char *const keys[3] = {"customer_id", "label", "time"};
    cmp_t *c = opaque;
    jv_t v[3];
    int64_t t = 0;
    int lab = -1;
    (void)ti;
    char *sc = scratch_for(c->dec, m->len);
    if (!sc) {
        snprintf(c->err, sizeof(c->err), "labels: out of memory");
        return -1;
    }
    if (m->payload && j_object(m->payload, m->len, sc, keys, 3, v) == 0) {
        if (v[1].type == JV_BOOL || (v[1].type == JV_NUM && v[1].is_int && (v[1].i | 1) == 1))
            lab = (int)v[1].i;
        else if (v[1].type == JV_STR)
            lab = parse_label(v[1].s, v[1].n);
        if (v[2].type == JV_NUM)
            t = v[2].is_int ? v[2].i : (int64_t)v[2].num;
        else if (v[2].type != JV_STR || parse_time(v[2].s, v[2].n, &t) < 0)
            lab = -1;
        if (v[0].type != JV_STR || !v[0].n)
            lab = -1;
    }
    if (lab < 0) {
        c->r.labels_malformed++;
        return 0;
    }
    if (labels_add(c, v[0].s, v[0].n, lab, t) < 0) {
        snprintf(c->err, sizeof(c->err), "labels: out of memory");
        return -1;
    }
    return 0;
}

/* ---- Kafka: a finite read of whole topics with manual assignment ----------------------- */

typedef struct kpart {
    int64_t start, next, end;
    int done;
} kpart_t;

typedef struct kreader {
    rd_kafka_t *rk;
    const char *name[2], *key[2];
    kpart_t *parts[2];
    int n_parts[2], n_topics;
    long timeout_ms;
    const char *bootstrap;
    uint64_t expected;
} kreader_t;

typedef int (*kmsg_cb)(void *opaque, int topic_index, const rd_kafka_message_t *m);

static void kreader_destroy(kreader_t *kr) {
    if (!kr)
        return;
    if (kr->rk) {
        rd_kafka_consumer_close(kr->rk);
        rd_kafka_destroy(kr->rk);
    }
    free(kr->parts[0]);
    free(kr->parts[1]);
    free(kr);
}

/* Checks that the topics exist and takes each partition's range: [first offset at or after
 * from_ms (or the low watermark), high watermark now). *rc = 2 for a config error, else 1. */

/* Watermarks of one partition. A partition whose leader is still being elected (a topic
 * just created, a broker restarting) answers with a retriable error: ask again until
 * timeout_ms has passed. */
static rd_kafka_resp_err_t query_offsets_retrying(rd_kafka_t *rk, const char *topic, int p,
                                                  int64_t *lo, int64_t *hi, long timeout_ms) {
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, p, lo, hi, (int)timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
            e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
            e != RD_KAFKA_RESP_ERR__TRANSPORT)
            return e;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms)
            return e;
        struct timespec pause = {0, 100 * 1000000L};
        nanosleep(&pause, NULL);
    }
}

static kreader_t *kreader_new(const ss_config_t *cfg, const char *const *names,
                              const char *const *keys, int n, int64_t from_ms, int *rc,
                              char *errstr, size_t errlen) {
    kreader_t *kr = calloc(1, sizeof(*kr));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *times = NULL;
    char err[512], gid[96];
    rd_kafka_resp_err_t e;
    *rc = 1;
    if (!kr || !conf) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    }
    kr->timeout_ms = cfg->compare_timeout_ms;
    kr->bootstrap = "?";
    for (size_t i = 0; i < cfg->n_kafka; i++)
        if (strcmp(cfg->kafka[i].key, "bootstrap.servers") == 0)
            kr->bootstrap = cfg->kafka[i].value;
    /* defaults a user may override; the prefetch queue counts in the memory bound */
    rd_kafka_conf_set(conf, "client.id", "streamscore-compare", err, sizeof(err));
    rd_kafka_conf_set(conf, "queued.max.messages.kbytes", "16384", err, sizeof(err));
    if (ss_kafka_conf_apply(conf, cfg, SS_KAFKA_CONSUMER, errstr, errlen) < 0) {
        *rc = 2;
        goto fail;
    }
    /* a read-only pass: a group of its own that never commits */
    snprintf(gid, sizeof(gid), "streamscore-compare-%ld-%" PRId64, (long)getpid(), ss_wall_ms());
    if (rd_kafka_conf_set(conf, "group.id", gid, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err))) {
        snprintf(errstr, errlen, "kafka consumer: %s", err);
        goto fail;
    }
    ss_kafka_conf_logging(conf);
    if (!(kr->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)))) {
        snprintf(errstr, errlen, "kafka consumer: %s", err);
        *rc = 2;
        goto fail;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(kr->rk);
    /* all topics: asking for one by name could create it */
    if ((e = rd_kafka_metadata(kr->rk, 1, NULL, &md, (int)kr->timeout_ms))) {
        snprintf(errstr, errlen, "cannot reach Kafka at %s within %ld ms (compare.timeout.ms): %s",
                 kr->bootstrap, kr->timeout_ms, rd_kafka_err2str(e));
        goto fail;
    }
    kr->n_topics = n;
    for (int t = 0; t < n; t++) {
        const struct rd_kafka_metadata_topic *mt = NULL;
        kr->name[t] = names[t], kr->key[t] = keys[t];
        for (int i = 0; i < md->topic_cnt; i++)
            if (strcmp(md->topics[i].topic, names[t]) == 0)
                mt = &md->topics[i];
        if (!mt || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || mt->partition_cnt == 0) {
            snprintf(errstr, errlen, "topic '%s' (%s) does not exist on %s", names[t], keys[t],
                     kr->bootstrap);
            goto fail;
        }
        if (mt->err) {
            snprintf(errstr, errlen, "topic '%s' (%s) on %s: %s", names[t], keys[t], kr->bootstrap,
                     rd_kafka_err2str(mt->err));
            goto fail;
        }
        kr->n_parts[t] = mt->partition_cnt;
        if (!(kr->parts[t] = calloc((size_t)mt->partition_cnt, sizeof(kpart_t)))) {
            snprintf(errstr, errlen, "out of memory");
            goto fail;
        }
        for (int p = 0; p < mt->partition_cnt; p++) {
            int64_t lo, hi;
            if ((e = query_offsets_retrying(kr->rk, names[t], p, &lo, &hi, kr->timeout_ms))) {
                snprintf(errstr, errlen,
                         "topic '%s' partition %d on %s: cannot read its offsets within %ld ms: %s",
                         names[t], p, kr->bootstrap, kr->timeout_ms, rd_kafka_err2str(e));
                goto fail;
            }
            kr->parts[t][p] = (kpart_t){lo, lo, hi, lo >= hi};
        }
    }
    if (from_ms != INT64_MIN) {
        times = rd_kafka_topic_partition_list_new(1);
        for (int t = 0; t < n; t++)
            for (int p = 0; p < kr->n_parts[t]; p++)
                rd_kafka_topic_partition_list_add(times, names[t], p)->offset = from_ms;
        if ((e = rd_kafka_offsets_for_times(kr->rk, times, (int)kr->timeout_ms))) {
            snprintf(errstr, errlen, "--from: cannot look up offsets by time on %s: %s",
                     kr->bootstrap, rd_kafka_err2str(e));
            goto fail;
        }
        for (int i = 0; i < times->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &times->elems[i];
            int t = strcmp(tp->topic, names[0]) == 0 ? 0 : 1;
            kpart_t *kp = &kr->parts[t][tp->partition];
            if (tp->err) {
                snprintf(errstr, errlen, "--from: topic '%s' partition %d: %s", tp->topic,
                         tp->partition, rd_kafka_err2str(tp->err));
                goto fail;
            }
            if (tp->offset < 0) /* no record at or after from_ms */
                kp->start = kp->end;
            else if (tp->offset > kp->start)
                kp->start = tp->offset;
            kp->next = kp->start;
            kp->done = kp->start >= kp->end;
        }
    }
    for (int t = 0; t < n; t++)
        for (int p = 0; p < kr->n_parts[t]; p++)
            kr->expected += (uint64_t)(kr->parts[t][p].end - kr->parts[t][p].start);
    if (times)
        rd_kafka_topic_partition_list_destroy(times);
    rd_kafka_metadata_destroy(md);
    return kr;
fail:
    if (times)
        rd_kafka_topic_partition_list_destroy(times);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (conf)
        rd_kafka_conf_destroy(conf);
    kreader_destroy(kr);
    return NULL;
}

/* Reads every partition up to its end, calling cb per record. Fails when no record or
 * end-of-partition arrived for compare.timeout.ms, or when cb returns < 0. */
static int kreader_run(kreader_t *kr, kmsg_cb cb, void *opaque, char *errstr, size_t errlen) {
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(8);
    int pending = 0, rc = 0;
    for (int t = 0; t < kr->n_topics; t++)
        for (int p = 0; p < kr->n_parts[t]; p++)
            if (!kr->parts[t][p].done) {
                rd_kafka_topic_partition_list_add(assign, kr->name[t], p)->offset =
                    kr->parts[t][p].start;
                pending++;
            }
    rd_kafka_resp_err_t e = pending ? rd_kafka_assign(kr->rk, assign) : 0;
    rd_kafka_topic_partition_list_destroy(assign);
    if (e) {
        snprintf(errstr, errlen, "kafka: cannot assign partitions: %s", rd_kafka_err2str(e));
        return -1;
    }
    int64_t last = ss_mono_ms();
    while (pending > 0 && rc == 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kr->rk, 100);
        if (!m) {
            if (ss_mono_ms() - last <= kr->timeout_ms)
                continue;
            for (int t = 0; t < kr->n_topics; t++)
                for (int p = 0; p < kr->n_parts[t]; p++)
                    if (!kr->parts[t][p].done && rc == 0) {
                        snprintf(errstr, errlen,
                                 "timed out: no data for %ld ms (compare.timeout.ms) from topic "
                                 "'%s' partition %d on %s (at offset %" PRId64 " of %" PRId64 ")",
                                 kr->timeout_ms, kr->name[t], p, kr->bootstrap,
                                 kr->parts[t][p].next, kr->parts[t][p].end);
                        rc = -1;
                    }
            break;
        }
        int t = m->rkt && strcmp(rd_kafka_topic_name(m->rkt), kr->name[0]) == 0 ? 0 : 1;
        kpart_t *kp =
            m->rkt && t < kr->n_topics && m->partition >= 0 && m->partition < kr->n_parts[t]
                ? &kr->parts[t][m->partition]
                : NULL;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            last = ss_mono_ms();
            if (kp && !kp->done)
                kp->done = 1, pending--;
        } else if (m->err) {
            int fatal = m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                        m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                        m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                        m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
            if (fatal) {
                snprintf(errstr, errlen, "kafka: topic '%s': %s",
                         m->rkt ? rd_kafka_topic_name(m->rkt) : "?", rd_kafka_message_errstr(m));
                rc = -1;
            } else {
                ss_warn("kafka: %s", rd_kafka_message_errstr(m));
            }
        } else if (kp && !kp->done) {
            last = ss_mono_ms();
            if (m->offset < kp->end && cb(opaque, t, m) < 0)
                rc = -1;
            kp->next = m->offset + 1;
            if (kp->next >= kp->end)
                kp->done = 1, pending--;
        }
        rd_kafka_message_destroy(m);
    }
    return rc;
}

/* ---- spill buckets and value files ------------------------------------------------------ */

static void bucket_path(const cmp_t *c, int b, char *out, size_t n) {
    snprintf(out, n, "%s/bucket-%04d", c->tmp, b);
}

static int spill_init(cmp_t *c, uint64_t expected) {
    spill_t *s = &c->spill;
    uint64_t nb = (expected + BUCKET_TARGET - 1) / BUCKET_TARGET;
    s->nb = nb < 1 ? 1 : nb > MAX_BUCKETS ? MAX_BUCKETS : (int)nb;
    s->cap = WRITE_BUFFER_BYTES / sizeof(rec_t) / (size_t)s->nb;
    s->cap = s->cap > 16384 ? 16384 : s->cap;
    s->buf = malloc((size_t)s->nb * s->cap * sizeof(rec_t));
    s->fill = calloc((size_t)s->nb, sizeof(*s->fill));
    s->count = calloc((size_t)s->nb, sizeof(*s->count));
    return s->buf && s->fill && s->count ? 0 : -1;
}

static int spill_flush(cmp_t *c, int b) {
    spill_t *s = &c->spill;
    char path[576];
    bucket_path(c, b, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    const char *p = (const char *)&s->buf[(size_t)b * s->cap];
    size_t left = s->fill[b] * sizeof(rec_t);
    while (fd >= 0 && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            break;
        }
        p += w, left -= (size_t)w;
    }
    int ok = fd >= 0 && left == 0;
    if (!ok)
        snprintf(c->err, sizeof(c->err), "spill file '%s': %s", path,
                 strerror(errno ? errno : EIO));
    if (fd >= 0)
        close(fd);
    s->fill[b] = 0;
    return ok ? 0 : -1;
}

static int spill_push(cmp_t *c, const rec_t *r) {
    spill_t *s = &c->spill;
    int b = (int)(rec_hash(r) % (uint64_t)s->nb);
    s->buf[(size_t)b * s->cap + s->fill[b]++] = *r;
    s->count[b]++;
    return s->fill[b] == s->cap ? spill_flush(c, b) : 0;
}

static int col_open(cmp_t *c, col_t *col, const char *name, int k) {
    char path[576];
    snprintf(path, sizeof(path), "%s/%s", c->tmp, name);
    col->k = k;
    col->min[0] = col->min[1] = INFINITY;
    col->max[0] = col->max[1] = -INFINITY;
    col->f = fopen(path, "w+");
    if (col->f)
        unlink(path); /* removed when closed, whatever happens */
    return col->f ? 0 : -1;
}

static void col_push(col_t *col, double a, double b) {
    double v[2] = {a, b};
    for (int i = 0; i < col->k; i++) {
        col->min[i] = fmin(col->min[i], v[i]);
        col->max[i] = fmax(col->max[i], v[i]);
    }
    fwrite(v, sizeof(double), (size_t)col->k, col->f);
    col->n++;
}

static int col_rewind(col_t *col) {
    return fflush(col->f) || fseek(col->f, 0, SEEK_SET) ? -1 : 0;
}

/* All values (n * k doubles) or NULL. */
static double *col_load(col_t *col) {
    double *a = malloc((col->n ? col->n : 1) * (size_t)col->k * sizeof(double));
    if (a &&
        (col_rewind(col) || fread(a, sizeof(double) * (size_t)col->k, col->n, col->f) != col->n)) {
        free(a);
        a = NULL;
    }
    return a;
}

/* Streams the values in chunks to fn. */
static int col_scan(col_t *col, void (*fn)(void *o, const double *v, size_t n), void *o) {
    double buf[8192];
    size_t per = sizeof(buf) / sizeof(double) / (size_t)col->k, got;
    if (col_rewind(col))
        return -1;
    while ((got = fread(buf, sizeof(double) * (size_t)col->k, per, col->f)) > 0)
        fn(o, buf, got);
    return ferror(col->f) ? -1 : 0;
}

static size_t hbin(double v, double lo, double hi, size_t bins) {
    double t = hi > lo ? (v - lo) / (hi - lo) * (double)bins : 0;
    return t <= 0 ? 0 : t >= (double)bins ? bins - 1 : (size_t)t;
}

typedef struct hscan {
    uint64_t *h[2];
    double lo[2], hi[2];
    int which; /* column hashed into h[0] (and column 1 into h[1] when both) */
    int both;
} hscan_t;

static void hscan_fn(void *o, const double *v, size_t n) {
    hscan_t *s = o;
    int k = s->both || s->which ? 2 : 1;
    for (size_t i = 0; i < n; i++) {
        s->h[0][hbin(v[i * k + s->which], s->lo[0], s->hi[0], HIST_BINS)]++;
        if (s->both)
            s->h[1][hbin(v[i * k + 1], s->lo[1], s->hi[1], HIST_BINS)]++;
    }
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The k-th smallest value (0-based) estimated from a histogram: within one bin of it. */
static double order_stat(const uint64_t *h, double lo, double hi, uint64_t k) {
    uint64_t cum = 0;
    for (size_t b = 0; b < HIST_BINS; b++) {
        if (h[b] && cum + h[b] > k)
            return lo +
                   ((double)b + ((double)(k - cum) + 0.5) / (double)h[b]) * (hi - lo) / HIST_BINS;
        cum += h[b];
    }
    return hi;
}

/* Quantiles q[] of a one-column file: exact when it fits the limit, else from a histogram. */
static int col_quantiles(cmp_t *c, col_t *col, const double *q, double *out, int nq) {
    for (int i = 0; i < nq; i++)
        out[i] = NAN;
    if (col->n == 0)
        return 0;
    if (col->n <= (uint64_t)c->o.exact_limit) {
        double *a = col_load(col);
        if (!a)
            return -1;
        qsort(a, col->n, sizeof(double), dbl_cmp);
        for (int i = 0; i < nq; i++) {
            double h = q[i] * (double)(col->n - 1);
            size_t j = (size_t)h;
            out[i] = j + 1 >= col->n ? a[col->n - 1] : a[j] + (h - (double)j) * (a[j + 1] - a[j]);
        }
        free(a);
        return 0;
    }
    c->r.exact = 0;
    hscan_t s = {
        .h = {calloc(HIST_BINS, sizeof(uint64_t))}, .lo = {col->min[0]}, .hi = {col->max[0]}};
    if (!s.h[0] || col_scan(col, hscan_fn, &s) < 0) {
        free(s.h[0]);
        return -1;
    }
    for (int i = 0; i < nq; i++) {
        double h = q[i] * (double)(col->n - 1), j = floor(h);
        double a = order_stat(s.h[0], s.lo[0], s.hi[0], (uint64_t)j);
        out[i] = a + (h - j) * (order_stat(s.h[0], s.lo[0], s.hi[0], (uint64_t)j + 1) - a);
    }
    free(s.h[0]);
    return 0;
}

/* ROC-AUC of positives' vs negatives' scores, ties counted half. */
static int col_auc(cmp_t *c, col_t *pos, col_t *neg, double *auc) {
    *auc = NAN;
    if (!pos->n || !neg->n)
        return 0;
    double sum = 0;
    if (pos->n + neg->n <= (uint64_t)c->o.exact_limit) {
        double *p = col_load(pos), *q = col_load(neg);
        if (!p || !q) {
            free(p), free(q);
            return -1;
        }
        qsort(p, pos->n, sizeof(double), dbl_cmp);
        qsort(q, neg->n, sizeof(double), dbl_cmp);
        for (size_t i = 0, lt = 0, le = 0; i < pos->n; i++) {
            while (lt < neg->n && q[lt] < p[i])
                lt++;
            while (le < neg->n && q[le] <= p[i])
                le++;
            sum += (double)lt + 0.5 * (double)(le - lt);
        }
        free(p), free(q);
    } else {
        c->r.exact = 0;
        double lo = fmin(pos->min[0], neg->min[0]), hi = fmax(pos->max[0], neg->max[0]);
        hscan_t sp = {.h = {calloc(HIST_BINS, sizeof(uint64_t))}, .lo = {lo}, .hi = {hi}};
        hscan_t sn = {.h = {calloc(HIST_BINS, sizeof(uint64_t))}, .lo = {lo}, .hi = {hi}};
        int rc = sp.h[0] && sn.h[0] && col_scan(pos, hscan_fn, &sp) == 0 &&
                         col_scan(neg, hscan_fn, &sn) == 0
                     ? 0
                     : -1;
        for (size_t b = 0, cum = 0; rc == 0 && b < HIST_BINS; b++) {
            sum += (double)sp.h[0][b] * ((double)cum + 0.5 * (double)sn.h[0][b]);
            cum += sn.h[0][b];
        }
        free(sp.h[0]), free(sn.h[0]);
        if (rc)
            return -1;
    }
    *auc = sum / ((double)pos->n * (double)neg->n);
    return 0;
}

typedef struct vi {
    double v;
    size_t i;
} vi_t;

static int vi_cmp(const void *a, const void *b) {
    return dbl_cmp(&((const vi_t *)a)->v, &((const vi_t *)b)->v);
}

/* Average ranks (1-based) of v[i * 2 + which]. */
static void midranks(const double *v, int which, size_t n, vi_t *tmp, double *rank) {
    for (size_t i = 0; i < n; i++)
        tmp[i] = (vi_t){v[i * 2 + (size_t)which], i};
    qsort(tmp, n, sizeof(vi_t), vi_cmp);
    for (size_t i = 0, j; i < n; i = j + 1) {
        for (j = i; j + 1 < n && tmp[j + 1].v == tmp[i].v; j++)
            ;
        for (size_t k = i; k <= j; k++)
            rank[tmp[k].i] = (double)(i + j) / 2.0 + 1.0;
    }
}

typedef struct rscan {
    double *rx, *ry, lo[2], hi[2], m, sxy, sxx, syy;
} rscan_t;

static void rscan_fn(void *o, const double *v, size_t n) {
    rscan_t *s = o;
    for (size_t i = 0; i < n; i++) {
        double a = s->rx[hbin(v[2 * i], s->lo[0], s->hi[0], HIST_BINS)] - s->m;
        double b = s->ry[hbin(v[2 * i + 1], s->lo[1], s->hi[1], HIST_BINS)] - s->m;
        s->sxy += a * b, s->sxx += a * a, s->syy += b * b;
    }
}

/* Spearman's rank correlation of the pairs file (Pearson of average ranks). */
static int col_spearman(cmp_t *c, col_t *col, double *out) {
    size_t n = col->n;
    rscan_t s = {.m = ((double)n + 1) / 2};
    int rc = -1;
    *out = NAN;
    if (n < 2)
        return 0;
    if (n <= (uint64_t)c->o.exact_limit) {
        double *v = col_load(col);
        vi_t *tmp = malloc(n * sizeof(vi_t));
        s.rx = malloc(n * sizeof(double)), s.ry = malloc(n * sizeof(double));
        if (v && tmp && s.rx && s.ry) {
            midranks(v, 0, n, tmp, s.rx);
            midranks(v, 1, n, tmp, s.ry);
            for (size_t i = 0; i < n; i++) {
                double a = s.rx[i] - s.m, b = s.ry[i] - s.m;
                s.sxy += a * b, s.sxx += a * a, s.syy += b * b;
            }
            rc = 0;
        }
        free(v), free(tmp);
    } else {
        c->r.exact = 0;
        hscan_t h = {
            .h = {calloc(HIST_BINS, sizeof(uint64_t)), calloc(HIST_BINS, sizeof(uint64_t))},
            .lo = {col->min[0], col->min[1]},
            .hi = {col->max[0], col->max[1]},
            .both = 1};
        s.rx = malloc(HIST_BINS * sizeof(double)), s.ry = malloc(HIST_BINS * sizeof(double));
        memcpy(s.lo, h.lo, sizeof(s.lo)), memcpy(s.hi, h.hi, sizeof(s.hi));
        if (h.h[0] && h.h[1] && s.rx && s.ry && col_scan(col, hscan_fn, &h) == 0) {
            for (int k = 0; k < 2; k++) {
                double cum = 0, *r = k ? s.ry : s.rx;
                for (size_t b = 0; b < HIST_BINS; b++) {
                    r[b] = cum + ((double)h.h[k][b] + 1) / 2;
                    cum += (double)h.h[k][b];
                }
            }
            rc = col_scan(col, rscan_fn, &s);
        }
        free(h.h[0]), free(h.h[1]);
    }
    free(s.rx), free(s.ry);
    if (rc == 0 && s.sxx > 0 && s.syy > 0)
        *out = s.sxy / sqrt(s.sxx * s.syy);
    return rc;
}

static void dscan_fn(void *o, const double *v, size_t n) {
    ss_cmp_result_t *r = o;
    for (size_t i = 0; i < n; i++)
        r->diff_hist[hbin(v[2 * i + 1] - v[2 * i], r->diff_lo, r->diff_hi, SS_CMP_DIFF_BINS)]++;
}

/* ---- reading both sides ------------------------------------------------------------------ */

static int intern_topic(cmp_t *c, const str_t *s) {
    size_t n = s->n < 255 ? s->n : 255;
    for (int i = 0; i < c->n_topics; i++)
        if (strlen(c->topics[i]) == n && memcmp(c->topics[i], s->p, n) == 0)
            return i;
    if (c->n_topics == MAX_TOPICS)
        return -1;
    memcpy(c->topics[c->n_topics], s->p, n);
    c->topics[c->n_topics][n] = '\0';
    return c->n_topics++;
}

static int model_index(ss_cmp_side_t *sd, const pred_t *p) {
    size_t nn = p->model_name.n < 127 ? p->model_name.n : 127;
    size_t nv = p->model_version.n < 63 ? p->model_version.n : 63;
    int i;
    for (i = 0; i < sd->n_models; i++)
        if (strlen(sd->models[i].name) == nn &&
            memcmp(sd->models[i].name, p->model_name.p, nn) == 0 &&
            strlen(sd->models[i].version) == nv &&
            memcmp(sd->models[i].version, p->model_version.p, nv) == 0)
            break;
    if (i == sd->n_models) {
        if (i == SS_CMP_MAX_MODELS)
            return 0xffff;
        memcpy(sd->models[i].name, p->model_name.p, nn);
        memcpy(sd->models[i].version, p->model_version.p, nv);
        sd->n_models++;
    }
    sd->models[i].threshold = p->threshold;
    return i;
}

static void malformed(cmp_t *c, int side, const char *where, int64_t at) {
    if (++c->r.side[side].malformed <= 5)
        ss_warn("compare: malformed %s record skipped (%s %" PRId64 ")", c->r.side[side].name,
                where, at);
}

static int take(cmp_t *c, int side, const pred_t *p, const char *where, int64_t at) {
    int topic = intern_topic(c, &p->source_topic);
    if (topic < 0) {
        malformed(c, side, where, at);
        return 0;
    }
    rec_t r = {.offset = p->offset,
               .event_time = p->event_time,
               .scored_at = p->scored_at,
               .seq = c->seq[side]++,
               .fhash = p->fhash,
               .score = p->score,
               .topic = (uint32_t)topic,
               .partition = p->partition,
               .model = (uint16_t)model_index(&c->r.side[side], p),
               .side = (uint8_t)side,
               .decision = (uint8_t)p->decision,
               .label = (int8_t)label_of(c, &p->customer_id, p->event_time)};
    c->r.side[side].read++;
    return spill_push(c, &r);
}

static int in_range(const cmp_t *c, int64_t ts) {
    return ts != NO_TIME && ts >= c->o.from_ms && (c->o.to_ms == INT64_MAX || ts < c->o.to_ms);
}

static int on_prediction(void *opaque, int ti, const rd_kafka_message_t *m) {
    cmp_t *c = opaque;
    int side = c->topic_side[ti];
    pred_t p;
    char where[320];
    if (c->o.from_ms != INT64_MIN || c->o.to_ms != INT64_MAX) {
        int64_t ts = rd_kafka_message_timestamp(m, NULL);
        if (!in_range(c, ts < 0 ? NO_TIME : ts)) {
            c->r.side[side].out_of_range++;
            return 0;
        }
    }
    if (!m->payload ||
        pdec_decode(c->dec, c->cfg->output_format == SS_FORMAT_JSON, m->payload, m->len, &p) < 0) {
        snprintf(where, sizeof(where), "topic %s partition %d offset", rd_kafka_topic_name(m->rkt),
                 m->partition);
        malformed(c, side, where, m->offset);
        return 0;
    }
    snprintf(where, sizeof(where), "topic %s offset", rd_kafka_topic_name(m->rkt));
    return take(c, side, &p, where, m->offset);
}

/* The shadow's JSON lines; the time range applies to scored_at. */
static int read_shadow_file(cmp_t *c, FILE *f, char *errstr, size_t errlen) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t lineno = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        pred_t p;
        lineno++;
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            n--;
        if (n == 0)
            continue;
        if (pdec_decode(c->dec, 1, line, (size_t)n, &p) < 0)
            malformed(c, SS_CMP_SHADOW, "shadow.file line", lineno);
        else if ((c->o.from_ms != INT64_MIN || c->o.to_ms != INT64_MAX) &&
                 !in_range(c, p.scored_at))
            c->r.side[SS_CMP_SHADOW].out_of_range++;
        else
            rc = take(c, SS_CMP_SHADOW, &p, "shadow.file line", lineno);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(c->err, sizeof(c->err), "shadow.file '%s': read error: %s", c->cfg->shadow_file,
                 strerror(errno));
        rc = -1;
    }
    if (rc)
        snprintf(errstr, errlen, "%s", c->err);
    free(line);
    return rc;
}

/* ---- the join ---------------------------------------------------------------------------- */

static void side_stats(cmp_t *c, const rec_t *r) {
    ss_cmp_side_t *sd = &c->r.side[r->side];
    sd->records++;
    if (r->model < SS_CMP_MAX_MODELS)
        sd->models[r->model].records++;
    else
        sd->other_models++;
    sd->dist_below += r->score < 0;
    sd->dist_above += r->score > 1;
    sd->dist[hbin(r->score, 0, 1, SS_CMP_DIST_BINS)]++;
    if (r->event_time != NO_TIME && r->scored_at != NO_TIME)
        col_push(&c->lat[r->side], (double)(r->scored_at - r->event_time), 0);
    if (r->label >= 0) {
        sd->labeled++;
        sd->positives += (uint64_t)r->label;
        sd->tp += r->label && r->decision, sd->fp += !r->label && r->decision;
        sd->fn += r->label && !r->decision, sd->tn += !r->label && !r->decision;
        col_push(r->label ? &c->pos[r->side] : &c->neg[r->side], r->score, 0);
    }
}

static void pair_stats(cmp_t *c, const rec_t *p, const rec_t *s) {
    ss_cmp_result_t *r = &c->r;
    r->matched++;
    if (p->fhash != s->fhash)
        return;
    uint64_t k = ++r->identical;
    double d = s->score - p->score;
    c->diff_sum += d;
    col_push(&c->pairs, p->score, s->score);
    col_push(&c->absdiff, fabs(d), 0);
    r->flips_no_yes += !p->decision && s->decision;
    r->flips_yes_no += p->decision && !s->decision;
    /* reservoir sample for the scatter plot */
    c->rng ^= c->rng << 13, c->rng ^= c->rng >> 7, c->rng ^= c->rng << 17;
    uint64_t j = k <= SS_CMP_SAMPLE_MAX ? k - 1 : c->rng % k;
    if (j < SS_CMP_SAMPLE_MAX) {
        r->sample[j][0] = (float)p->score, r->sample[j][1] = (float)s->score;
        if (k <= SS_CMP_SAMPLE_MAX)
            r->n_sample = (int)k;
    }
}

typedef struct slot {
    int32_t i[2];
} slot_t;

static int join(cmp_t *c, char *errstr, size_t errlen) {
    spill_t *s = &c->spill;
    rec_t *recs = NULL;
    slot_t *tab = NULL;
    size_t rcap = 0, tcap = 0;
    int rc = -1;
    for (int b = 0; b < s->nb; b++)
        if (s->fill[b] && spill_flush(c, b) < 0)
            goto out;
    for (int b = 0; b < s->nb; b++) {
        size_t n = (size_t)s->count[b], cap = 16;
        char path[576];
        if (!n)
            continue;
        if (n > rcap) {
            free(recs);
            if (!(recs = malloc(n * sizeof(rec_t)))) {
                snprintf(c->err, sizeof(c->err), "out of memory for a bucket of %zu records", n);
                goto out;
            }
            rcap = n;
        }
        bucket_path(c, b, path, sizeof(path));
        FILE *f = fopen(path, "rb");
        size_t got = f ? fread(recs, sizeof(rec_t), n, f) : 0;
        if (f)
            fclose(f);
        unlink(path);
        if (got != n) {
            snprintf(c->err, sizeof(c->err), "spill file '%s': short read", path);
            goto out;
        }
        c->r.max_bucket = n > c->r.max_bucket ? n : c->r.max_bucket;
        while (cap < 2 * n)
            cap *= 2;
        if (cap > tcap) {
            free(tab);
            if (!(tab = malloc(cap * sizeof(slot_t)))) {
                snprintf(c->err, sizeof(c->err), "out of memory for a bucket of %zu records", n);
                goto out;
            }
            tcap = cap;
        }
        memset(tab, 0xff, cap * sizeof(slot_t));
        for (size_t i = 0; i < n; i++) {
            const rec_t *r = &recs[i];
            for (size_t h = rec_hash(r) & (cap - 1);; h = (h + 1) & (cap - 1)) {
                slot_t *sl = &tab[h];
                int32_t *cur = &sl->i[r->side];
                if (sl->i[0] >= 0 || sl->i[1] >= 0) {
                    if (!same_key(&recs[sl->i[0] >= 0 ? sl->i[0] : sl->i[1]], r))
                        continue;
                    if (*cur >= 0) { /* a re-delivery: the latest read wins */
                        c->r.side[r->side].duplicates++;
                        if (recs[*cur].seq > r->seq)
                            break;
                    }
                }
                *cur = (int32_t)i;
                break;
            }
        }
        for (size_t h = 0; h < cap; h++) {
            const slot_t *sl = &tab[h];
            for (int side = 0; side < 2; side++)
                if (sl->i[side] >= 0)
                    side_stats(c, &recs[sl->i[side]]);
            if (sl->i[0] >= 0 && sl->i[1] >= 0)
                pair_stats(c, &recs[sl->i[0]], &recs[sl->i[1]]);
            else if (sl->i[0] >= 0)
                c->r.primary_only++;
            else if (sl->i[1] >= 0)
                c->r.shadow_only++;
        }
    }
    rc = 0;
out:
    if (rc)
        snprintf(errstr, errlen, "%s", c->err);
    free(recs);
    free(tab);
    return rc;
}

/* ---- figures and verdict ----------------------------------------------------------------- */

static double ratio(uint64_t a, uint64_t b) {
    return b ? (double)a / (double)b : NAN;
}

static int figures(cmp_t *c) {
    ss_cmp_result_t *r = &c->r;
    static const double q2[2] = {0.5, 0.99};
    double v[2];
    r->matched_share = ratio(r->matched, r->side[0].records);
    r->identical_share = ratio(r->identical, r->matched);
    r->flip_rate = ratio(r->flips_no_yes + r->flips_yes_no, r->identical);
    r->diff_mean = r->identical ? c->diff_sum / (double)r->identical : NAN;
    r->abs_max = r->identical ? c->absdiff.max[0] : NAN;
    if (col_quantiles(c, &c->absdiff, q2, v, 2) < 0 || col_spearman(c, &c->pairs, &r->spearman) < 0)
        return -1;
    r->abs_p50 = v[0], r->abs_p99 = v[1];
    double m = r->identical && r->abs_max > 0 ? r->abs_max : 1e-3;
    r->diff_lo = -m, r->diff_hi = m;
    if (r->identical && col_scan(&c->pairs, dscan_fn, r) < 0)
        return -1;
    for (int s = 0; s < 2; s++) {
        ss_cmp_side_t *sd = &r->side[s];
        sd->latency_n = c->lat[s].n;
        if (col_quantiles(c, &c->lat[s], q2, v, 2) < 0 ||
            col_auc(c, &c->pos[s], &c->neg[s], &sd->auc) < 0)
            return -1;
        sd->latency_p50 = v[0], sd->latency_p99 = v[1];
        sd->precision = ratio(sd->tp, sd->tp + sd->fp);
        sd->recall = ratio(sd->tp, sd->tp + sd->fn);
        sd->f1 = sd->precision + sd->recall > 0
                     ? 2 * sd->precision * sd->recall / (sd->precision + sd->recall)
                     : NAN;
    }
    return 0;
}

static void criterion(ss_cmp_result_t *r, const char *key, double limit, double value, int at_most,
                      const char *what, const char *why_none) {
    if (limit < 0)
        return;
    ss_cmp_criterion_t *k = &r->criteria[r->n_criteria++];
    k->key = key, k->limit = limit, k->value = value;
    k->passed = isfinite(value) && (at_most ? value <= limit : value >= limit);
    if (!isfinite(value))
        snprintf(k->reason, sizeof(k->reason), "%s: %s cannot be computed (%s)", key, what,
                 why_none);
    else
        snprintf(k->reason, sizeof(k->reason), "%s: %s %.6g %s %.6g", key, what, value,
                 k->passed ? (at_most ? "<=" : ">=") : (at_most ? ">" : "<"), limit);
}

static void verdict(cmp_t *c) {
    ss_cmp_result_t *r = &c->r;
    const ss_config_t *cfg = c->cfg;
    criterion(r, "promote.min.matched.share", cfg->promote_min_matched_share, r->matched_share, 0,
              "matched share", "no primary predictions");
    criterion(r, "promote.max.flip.rate", cfg->promote_max_flip_rate, r->flip_rate, 1, "flip rate",
              "no identical-feature pairs");
    criterion(r, "promote.max.score.diff.p99", cfg->promote_max_score_diff_p99, r->abs_p99, 1,
              "p99 of |score difference|", "no identical-feature pairs");
    criterion(r, "promote.max.auc.drop", cfg->promote_max_auc_drop, r->side[0].auc - r->side[1].auc,
              1, "ROC-AUC drop",
              r->labels ? "both sides need labeled positives and negatives"
                        : "no labels: set compare.labels or --labels");
    criterion(r, "promote.max.latency.p99.ms", cfg->promote_max_latency_p99_ms,
              r->side[1].latency_p99, 1, "shadow p99 latency (ms)", "no shadow records with times");
    r->verdict = r->n_criteria ? SS_VERDICT_PROMOTE : SS_VERDICT_NONE;
    for (int i = 0; i < r->n_criteria; i++)
        if (!r->criteria[i].passed)
            r->verdict = SS_VERDICT_HOLD;
}

/* ---- the command ------------------------------------------------------------------------- */

static void usage(FILE *out) {
    fprintf(
        out,
        "Usage: streamscore compare -c FILE [-X key=value ...] [options]\n\n"
        "Joins the primary's predictions (output.topic) with the shadow's results\n"
        "(shadow.topic, or shadow.file when shadow.output = file) on the source record\n"
        "(topic, partition, offset), read up to each partition's end at start, and reports\n"
        "how the candidate differs: a summary on stdout, DIR/compare.json, DIR/compare.html.\n\n"
        "Options:\n"
        "  --from TIME        first record, by the output records' Kafka timestamp (inclusive;\n"
        "                     scored_at for shadow.file); ISO-8601 UTC like\n"
        "                     2026-11-23T10:00:00Z, or epoch milliseconds\n"
        "  --to TIME          end of the range (exclusive); default: whole topics\n"
        "  --labels SPEC      CSV file (customer_id,label,time) or topic:NAME (JSON values);\n"
        "                     overrides compare.labels\n"
        "  --out DIR          report folder; overrides compare.output.dir\n"
        "  --exact-limit N    most values held in memory for exact percentiles, Spearman and\n"
        "                     ROC-AUC (default 1000000); beyond, 65536-bin histograms\n"
        "  --json-only        write compare.json only, no compare.html\n"
        "  --quiet            no summary on stdout\n"
        "  --help             this text\n\n"
        "Promotion criteria: promote.min.matched.share, promote.max.flip.rate,\n"
        "promote.max.score.diff.p99, promote.max.auc.drop, promote.max.latency.p99.ms\n"
        "(negative: not checked). Other keys: compare.timeout.ms, output.format,\n"
        "output.schema, kafka.*.\n"
        "Exit codes: 0 promote or no criterion set, 1 runtime failure, 2 bad usage,\n"
        "3 hold.\n");
}

static int parse_args(const ss_config_t *cfg, int argc, char **argv, opts_t *o) {
    *o =
        (opts_t){INT64_MIN, INT64_MAX, cfg->compare_labels, cfg->compare_output_dir, 0, 0, 1000000};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL, *eq = strchr(a, '=');
        char name[32];
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        snprintf(name, sizeof(name), "%.*s", (int)(nl < 31 ? nl : 31), a);
        int takes = !strcmp(name, "--from") || !strcmp(name, "--to") || !strcmp(name, "--labels") ||
                    !strcmp(name, "--out") || !strcmp(name, "--exact-limit");
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o->quiet = 1;
            continue;
        }
        if (!strcmp(a, "--json-only")) {
            o->json_only = 1;
            continue;
        }
        if (!takes) {
            fprintf(stderr, "streamscore compare: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        if (!val) {
            fprintf(stderr, "streamscore compare: %s needs a value\n", name);
            return 2;
        }
        if (!strcmp(name, "--from") || !strcmp(name, "--to")) {
            int64_t *t = name[2] == 'f' ? &o->from_ms : &o->to_ms;
            if (parse_time(val, strlen(val), t) < 0) {
                fprintf(stderr,
                        "streamscore compare: %s '%s': expected ISO-8601 UTC "
                        "(2026-11-23T10:00:00Z) or epoch milliseconds\n",
                        name, val);
                return 2;
            }
        } else if (!strcmp(name, "--labels")) {
            o->labels = val;
        } else if (!strcmp(name, "--out")) {
            if (!*val) {
                fprintf(stderr, "streamscore compare: --out needs a folder\n");
                return 2;
            }
            o->out_dir = val;
        } else {
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            if (*end || errno || v < 0 || v > 100000000) {
                fprintf(stderr, "streamscore compare: --exact-limit '%s': expected 0..100000000\n",
                        val);
                return 2;
            }
            o->exact_limit = v;
        }
    }
    if (o->from_ms != INT64_MIN && o->to_ms != INT64_MAX && o->to_ms <= o->from_ms) {
        fprintf(stderr, "streamscore compare: --to must be later than --from\n");
        return 2;
    }
    return 0;
}

static int mkdirs(const char *dir) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
        return -1;
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0777) < 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    return mkdir(p, 0777) < 0 && errno != EEXIST ? -1 : 0;
}

static void remove_tmp(cmp_t *c) {
    char path[576];
    if (!*c->tmp)
        return;
    for (int b = 0; b < c->spill.nb; b++) {
        bucket_path(c, b, path, sizeof(path));
        unlink(path);
    }
    rmdir(c->tmp);
}

#define N_COLS 8

static int fail(int rc, const char *msg) {
    ss_error("compare: %s", msg);
    fprintf(stderr, "streamscore compare: %s\n", msg);
    return rc;
}

int ss_compare_main(const ss_config_t *cfg, int argc, char **argv) {
    if (!cfg) {
        usage(stdout);
        return 0;
    }
    cmp_t *c = calloc(1, sizeof(*c));
    if (!c)
        return fail(1, "out of memory");
    col_t *cols[] = {&c->pairs,  &c->absdiff, &c->lat[0], &c->lat[1],
                     &c->pos[0], &c->pos[1],  &c->neg[0], &c->neg[1]};
    static const char *const col_names[] = {"pairs", "absdiff", "lat0", "lat1",
                                            "pos0",  "pos1",    "neg0", "neg1"};
    kreader_t *kr = NULL;
    FILE *shadow_file = NULL;
    char err[1024], path[PATH_MAX];
    int rc = 1, krc;
    if ((rc = parse_args(cfg, argc, argv, &c->o)) != 0)
        goto out;
    rc = 1;
    c->cfg = cfg;
    c->rng = 0x9e3779b97f4a7c15ull;
    c->r.from_ms = c->o.from_ms, c->r.to_ms = c->o.to_ms;
    c->r.exact = 1, c->r.exact_limit = c->o.exact_limit;
    int file = cfg->shadow_output == SS_SHADOW_FILE;
    const char *fmt = cfg->output_format == SS_FORMAT_JSON ? "json" : "avro";
    c->r.side[0] = (ss_cmp_side_t){
        .name = "primary", .source = "kafka", .location = cfg->output_topic, .format = fmt};
    c->r.side[1] = (ss_cmp_side_t){.name = "shadow",
                                   .source = file ? "file" : "kafka",
                                   .location = file ? cfg->shadow_file : cfg->shadow_topic,
                                   .format = file ? "json" : fmt};
    const char *tmpdir = getenv("TMPDIR");
    snprintf(c->tmp, sizeof(c->tmp), "%s/streamscore-compare-XXXXXX",
             tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(c->tmp)) {
        snprintf(err, sizeof(err), "cannot create a temporary folder '%s': %s", c->tmp,
                 strerror(errno));
        c->tmp[0] = '\0';
        rc = fail(1, err);
        goto out;
    }
    if (mkdirs(c->o.out_dir) < 0) {
        snprintf(err, sizeof(err), "cannot create the output folder '%s': %s", c->o.out_dir,
                 strerror(errno));
        rc = fail(1, err);
        goto out;
    }
    if (!(c->dec = pdec_new(cfg, cfg->output_format == SS_FORMAT_AVRO, err, sizeof(err)))) {
        rc = fail(2, err);
        goto out;
    }

    /* labels first: each record is labeled as it is read */
    if (c->o.labels && *c->o.labels) {
        c->r.labels = c->o.labels;
        if (strncmp(c->o.labels, "topic:", 6) == 0) {
            const char *name = c->o.labels + 6, *key = "compare.labels";
            if (!*name) {
                rc = fail(2, "labels 'topic:' names no topic (--labels / compare.labels)");
                goto out;
            }
            if (!(kr = kreader_new(cfg, &name, &key, 1, INT64_MIN, &krc, err, sizeof(err))) ||
                kreader_run(kr, on_label, c, err, sizeof(err)) < 0) {
                rc = fail(kr ? 1 : krc, *c->err ? c->err : err);
                goto out;
            }
            kreader_destroy(kr);
            kr = NULL;
        } else if ((krc = labels_load_csv(c, c->o.labels, err, sizeof(err))) != 0) {
            rc = fail(krc, err);
            goto out;
        }
        qsort(c->labels, c->n_labels, sizeof(label_t), label_cmp);
        ss_info("compare: %" PRIu64 " labels read from %s (%" PRIu64 " malformed)",
                c->r.labels_rows, c->o.labels, c->r.labels_malformed);
    }

    const char *names[2] = {cfg->output_topic, cfg->shadow_topic};
    const char *keys[2] = {"output.topic", "shadow.topic"};
    c->topic_side[0] = SS_CMP_PRIMARY, c->topic_side[1] = SS_CMP_SHADOW;
    if (!(kr = kreader_new(cfg, names, keys, file ? 1 : 2, c->o.from_ms, &krc, err, sizeof(err)))) {
        rc = fail(krc, err);
        goto out;
    }
    c->r.side[0].partitions = kr->n_parts[0];
    c->r.side[1].partitions = file ? 0 : kr->n_parts[1];
    uint64_t expected = kr->expected;
    if (file) {
        struct stat st;
        if (!(shadow_file = fopen(cfg->shadow_file, "r")) || fstat(fileno(shadow_file), &st) < 0) {
            snprintf(err, sizeof(err), "shadow.file '%s': cannot open: %s", cfg->shadow_file,
                     strerror(errno));
            rc = fail(1, err);
            goto out;
        }
        expected += (uint64_t)st.st_size / 150;
    }
    int cols_ok = spill_init(c, expected) == 0;
    for (size_t i = 0; cols_ok && i < N_COLS; i++)
        cols_ok = col_open(c, cols[i], col_names[i], i == 0 ? 2 : 1) == 0;
    if (!cols_ok) {
        snprintf(err, sizeof(err), "cannot set up spill files in '%s': %s", c->tmp,
                 strerror(errno));
        rc = fail(1, err);
        goto out;
    }
    c->r.buckets = c->spill.nb;
    if ((file && read_shadow_file(c, shadow_file, err, sizeof(err)) < 0) ||
        kreader_run(kr, on_prediction, c, err, sizeof(err)) < 0) {
        rc = fail(1, *c->err ? c->err : err);
        goto out;
    }
    kreader_destroy(kr);
    kr = NULL;
    if (join(c, err, sizeof(err)) < 0) {
        rc = fail(1, err);
        goto out;
    }
    for (int s = 0; s < 2; s++)
        ss_info("compare: %s: %" PRIu64 " read, %" PRIu64 " distinct, %" PRIu64
                " duplicates, %" PRIu64 " malformed, %" PRIu64 " out of range",
                c->r.side[s].name, c->r.side[s].read, c->r.side[s].records, c->r.side[s].duplicates,
                c->r.side[s].malformed, c->r.side[s].out_of_range);
    if (figures(c) < 0) {
        snprintf(err, sizeof(err),
                 "temporary value files in '%s': write or read failed (disk full?)", c->tmp);
        rc = fail(1, err);
        goto out;
    }
    verdict(c);

    snprintf(path, sizeof(path), "%s/compare.json", c->o.out_dir);
    if (ss_report_write_json(&c->r, path, err, sizeof(err)) < 0) {
        rc = fail(1, err);
        goto out;
    }
    snprintf(path, sizeof(path), "%s/compare.html", c->o.out_dir);
    if (!c->o.json_only && ss_report_write_html(&c->r, path, err, sizeof(err)) < 0) {
        rc = fail(1, err);
        goto out;
    }
    if (!c->o.quiet) {
        ss_report_print_summary(&c->r, stdout);
        printf("  %-40s %s/compare.json%s%s%s\n", "reports", c->o.out_dir,
               c->o.json_only ? "" : ", ", c->o.json_only ? "" : c->o.out_dir,
               c->o.json_only ? "" : "/compare.html");
        fflush(stdout);
    }
    rc = c->r.verdict == SS_VERDICT_HOLD ? 3 : 0;
out:
    kreader_destroy(kr);
    if (shadow_file)
        fclose(shadow_file);
    for (size_t i = 0; i < N_COLS; i++)
        if (cols[i]->f)
            fclose(cols[i]->f);
    remove_tmp(c);
    pdec_destroy(c->dec);
    free(c->spill.buf);
    free(c->spill.fill);
    free(c->spill.count);
    free(c->labels);
    free(c);
    return rc;
}
