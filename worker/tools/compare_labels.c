/* compare_labels.c - the outcomes `compare` scores the models against: rows of (customer id,
 * label, time) from a CSV file or from a topic of JSON values, loaded before the predictions
 * and sorted by a 64-bit hash of the customer id, then time, so that each prediction takes
 * its customer's earliest label at or after its event time with one binary search. A label
 * is a class (1/0, true/false: ROC-AUC, precision, recall) or any number (a regression's
 * target: RMSE, MAE); 1 and 0 are both. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "compare_int.h"
#include "error.h"
#include "hash.h"
#include "log.h"
#include "timeparse.h"

/* The class of a label that is a number: 1 or 0, else CMP_UNLABELED. */
static int class_of(double v) {
    return v == 1 ? 1 : v == 0 ? 0 : CMP_UNLABELED;
}

/* true/false (any case, spaces around) or a finite number: the number in *value (true 1,
 * false 0) and its class; else CMP_UNLABELED and *value NaN. */
static int parse_label(const char *s, size_t n, double *value) {
    char buf[64], *end;
    *value = NAN;
    if (ss_trimmed_copy(s, n, buf, sizeof(buf)) < 0)
        return CMP_UNLABELED;
    if (strcasecmp(buf, "true") == 0 || strcasecmp(buf, "false") == 0) {
        *value = buf[0] == 't' || buf[0] == 'T';
        return class_of(*value);
    }
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || errno || !isfinite(v) ||
        !(isdigit((unsigned char)buf[0]) || buf[0] == '-' || buf[0] == '+' || buf[0] == '.'))
        return CMP_UNLABELED;
    *value = v;
    return class_of(v);
}

static int labels_add(cmp_t *c, const char *cid, size_t n, int label, double value, int64_t time) {
    if (c->n_labels == c->cap_labels) {
        size_t cap = c->cap_labels ? c->cap_labels * 2 : 4096;
        cmp_label_t *g = realloc(c->labels, cap * sizeof(*g));
        if (!g) {
            snprintf(c->err, sizeof(c->err), "labels: out of memory");
            return SS_ERR_NOMEM;
        }
        c->labels = g, c->cap_labels = cap;
    }
    c->labels[c->n_labels++] = (cmp_label_t){ss_fnv1a(SS_FNV1A_INIT, cid, n), time, label, value};
    c->r.labels_rows++;
    return 0;
}

static int label_cmp(const void *a, const void *b) {
    const cmp_label_t *x = a, *y = b;
    if (x->cust != y->cust)
        return x->cust < y->cust ? -1 : 1;
    return x->time < y->time ? -1 : x->time > y->time;
}

int cmp_label_of(const cmp_t *c, const cmp_str_t *cid, int64_t event_time, double *value) {
    *value = NAN;
    if (!c->n_labels || event_time == CMP_NO_TIME)
        return CMP_UNLABELED;
    cmp_label_t key = {ss_fnv1a(SS_FNV1A_INIT, cid->p, cid->n), event_time, 0, 0};
    size_t lo = 0, hi = c->n_labels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (label_cmp(&c->labels[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->n_labels || c->labels[lo].cust != key.cust)
        return CMP_UNLABELED;
    *value = c->labels[lo].value;
    return (int)c->labels[lo].label;
}

/* ---- CSV ------------------------------------------------------------------------------- */

/* Split a CSV line in place (RFC 4180 quotes). The number of fields, or SS_ERR_FAIL. */
static int csv_split(char *s, char **f, int max) {
    int n = 0;
    for (;;) {
        char *o = s;
        if (n == max)
            return SS_ERR_FAIL;
        f[n++] = s;
        if (*s == '"') {
            for (s++;;) {
                if (!*s)
                    return SS_ERR_FAIL;
                if (*s == '"' && s[1] != '"') {
                    s++;
                    break;
                }
                if (*s == '"')
                    s++;
                *o++ = *s++;
            }
            if (*s && *s != ',')
                return SS_ERR_FAIL;
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

static const char *const csv_columns[3] = {"customer_id", "label", "time"};

/* The header's columns for customer_id, label and time. */
static int csv_header(char **fields, int n, int col[3], const char *path, char *errstr,
                      size_t errlen) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            if (strcasecmp(trim(fields[i]), csv_columns[k]) == 0)
                col[k] = i;
    for (int k = 0; k < 3; k++)
        if (col[k] < 0) {
            snprintf(errstr, errlen,
                     "labels '%s': the header line has no '%s' column (expected "
                     "customer_id,label,time)",
                     path, csv_columns[k]);
            return SS_ERR_CONFIG;
        }
    return 0;
}

/* One data row: a label added, or counted as malformed. */
static int csv_row(cmp_t *c, char **fields, int n, const int col[3]) {
    int64_t t;
    double v;
    if (n > col[0] && n > col[1] && n > col[2]) {
        const char *cid = trim(fields[col[0]]);
        int lab = parse_label(fields[col[1]], strlen(fields[col[1]]), &v);
        if (*cid && !isnan(v) && ss_parse_time(fields[col[2]], strlen(fields[col[2]]), &t) == 0)
            return labels_add(c, cid, strlen(cid), lab, v, t);
    }
    c->r.labels_malformed++;
    return 0;
}

int cmp_labels_csv_line(cmp_t *c, char *line, int *header, int col[3], const char *path,
                        char *errstr, size_t errlen) {
    char *fields[64];
    int rc = 0;
    line[strcspn(line, "\r\n")] = '\0';
    int bom = *header && strncmp(line, "\xef\xbb\xbf", 3) == 0;
    char *s = line + (bom ? 3 : 0);
    if (!*trim(s))
        return 0;
    int n = csv_split(s, fields, 64);
    if (!*header) {
        if ((rc = csv_row(c, fields, n, col)) < 0)
            snprintf(errstr, errlen, "%s", c->err);
    } else if ((rc = csv_header(fields, n, col, path, errstr, errlen)) == 0) {
        *header = 0;
    }
    return rc;
}

static int labels_load_csv(cmp_t *c, const char *path, char *errstr, size_t errlen) {
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int col[3] = {-1, -1, -1}, rc = 0, header = 1;
    if (!f) {
        snprintf(errstr, errlen, "labels '%s' (--labels / compare.labels): cannot open: %s", path,
                 strerror(errno));
        return SS_ERR_CONFIG;
    }
    while (rc == 0 && getline(&line, &cap, f) >= 0)
        rc = cmp_labels_csv_line(c, line, &header, col, path, errstr, errlen);
    if (rc == 0 && ferror(f)) {
        snprintf(errstr, errlen, "labels '%s': read error: %s", path, strerror(errno));
        rc = SS_ERR_FAIL;
    } else if (rc == 0 && header) {
        snprintf(errstr, errlen,
                 "labels '%s': empty file, expected a customer_id,label,time header", path);
        rc = SS_ERR_CONFIG;
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---- a topic of JSON values ----------------------------------------------------------- */

/* Whether x converts to an int64_t (beyond, the conversion is undefined). */
static int in_int64(double x) {
    return x >= -9223372036854775808.0 && x < 9223372036854775808.0;
}

/* label: true/false, a number or a string of those (*value; NaN: none); time: epoch ms (an
 * integer, or a real within 64 bits) or an ISO-8601 string. The class, or CMP_UNLABELED. */
static int json_label(const json_t *v, const char **cid, int64_t *t, double *value) {
    const json_t *jc = json_object_get(v, "customer_id"), *jl = json_object_get(v, "label");
    const json_t *jt = json_object_get(v, "time");
    *value = NAN;
    if (json_is_boolean(jl))
        *value = json_is_true(jl);
    else if (json_is_number(jl) && isfinite(json_number_value(jl)))
        *value = json_number_value(jl);
    else if (json_is_string(jl))
        parse_label(json_string_value(jl), json_string_length(jl), value);
    if (json_is_integer(jt))
        *t = json_integer_value(jt);
    else if (json_is_real(jt) && in_int64(json_real_value(jt)))
        *t = (int64_t)json_real_value(jt);
    else if (json_is_real(jt) || !json_is_string(jt) ||
             ss_parse_time(json_string_value(jt), json_string_length(jt), t) < 0)
        *value = NAN;
    if (!json_is_string(jc) || !json_string_length(jc))
        *value = NAN;
    *cid = json_string_value(jc);
    return isnan(*value) ? CMP_UNLABELED : class_of(*value);
}

int cmp_labels_json(cmp_t *c, const void *buf, size_t len) {
    json_error_t jerr;
    json_t *v = buf ? json_loadb(buf, len, 0, &jerr) : NULL;
    const char *cid = NULL;
    int64_t t = 0;
    double value = NAN;
    int lab = json_is_object(v) ? json_label(v, &cid, &t, &value) : CMP_UNLABELED, rc = 0;
    if (isnan(value))
        c->r.labels_malformed++;
    else
        rc = labels_add(c, cid, strlen(cid), lab, value, t);
    json_decref(v);
    return rc;
}

static int on_label(void *opaque, int topic_index, const rd_kafka_message_t *m) {
    (void)topic_index;
    return cmp_labels_json(opaque, m->payload, m->len);
}

static int labels_load_topic(cmp_t *c, const char *name, char *errstr, size_t errlen) {
    const char *key = "compare.labels";
    cmp_kreader_t *kr = NULL;
    int rc;
    if (!*name) {
        snprintf(errstr, errlen, "labels 'topic:' names no topic (--labels / compare.labels)");
        return SS_ERR_CONFIG;
    }
    if ((rc = cmp_kreader_new(c->cfg, &name, &key, 1, INT64_MIN, &kr, errstr, errlen)) < 0)
        return rc;
    if ((rc = cmp_kreader_run(kr, on_label, c, errstr, errlen)) < 0 && *c->err)
        snprintf(errstr, errlen, "%s", c->err);
    cmp_kreader_destroy(kr);
    return rc;
}

int cmp_labels_load(cmp_t *c, char *errstr, size_t errlen) {
    const char *spec = c->o.labels;
    int rc = strncmp(spec, "topic:", 6) == 0 ? labels_load_topic(c, spec + 6, errstr, errlen)
                                             : labels_load_csv(c, spec, errstr, errlen);
    if (rc < 0)
        return rc;
    qsort(c->labels, c->n_labels, sizeof(cmp_label_t), label_cmp);
    ss_log(SS_LOG_INFO,
           SS_FIELDS(SSF_STR("labels", spec), SSF_INT("rows", c->r.labels_rows),
                     SSF_INT("malformed", c->r.labels_malformed)),
           "compare: %" PRIu64 " labels read from %s (%" PRIu64 " malformed)", c->r.labels_rows,
           spec, c->r.labels_malformed);
    return 0;
}
