/* compare_spill.c - what keeps `compare`'s memory bounded whatever the topics' size: every
 * record goes to one of B bucket files chosen by a hash of its join key (both sides of a pair
 * and a record's re-deliveries meet in one bucket), and the values the figures need are
 * written to value files and read back afterwards. All files live in the run's temporary
 * folder. A bucket file is a sequence of records, each followed by its spilled outputs. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compare_int.h"
#include "error.h"

#define BUCKET_TARGET 262144 /* records per bucket the bucket count aims at */
#define MAX_BUCKETS 4096
#define WRITE_BUFFER_BYTES (16u << 20)                /* all buckets' write buffers together */
#define MAX_BUCKET_BUFFER (16384 * sizeof(cmp_rec_t)) /* bytes */
/* the largest record with its outputs: every bucket buffer holds one (4096 bytes at least) */
#define MAX_ENTRY (sizeof(cmp_rec_t) + SS_CMP_MAX_OUTPUTS * sizeof(double))
_Static_assert(MAX_ENTRY <= WRITE_BUFFER_BYTES / MAX_BUCKETS, "a bucket buffer holds a record");

static void bucket_path(const cmp_spill_t *s, int b, char *out, size_t n) {
    snprintf(out, n, "%s/bucket-%04d", s->dir, b);
}

int cmp_spill_init(cmp_spill_t *s, const char *dir, uint64_t expected) {
    uint64_t nb = (expected + BUCKET_TARGET - 1) / BUCKET_TARGET;
    s->dir = dir;
    s->nb = nb < 1 ? 1 : nb > MAX_BUCKETS ? MAX_BUCKETS : (int)nb;
    s->cap = WRITE_BUFFER_BYTES / (size_t)s->nb;
    s->cap = s->cap > MAX_BUCKET_BUFFER ? MAX_BUCKET_BUFFER : s->cap;
    s->buf = malloc((size_t)s->nb * s->cap);
    s->fill = calloc((size_t)s->nb, sizeof(*s->fill));
    s->count = calloc((size_t)s->nb, sizeof(*s->count));
    s->n_outs = calloc((size_t)s->nb, sizeof(*s->n_outs));
    return s->buf && s->fill && s->count && s->n_outs ? 0 : SS_ERR_NOMEM;
}

/* Append bucket b's buffer to its file. */
static int spill_flush(cmp_spill_t *s, int b, char *errstr, size_t errlen) {
    char path[576];
    bucket_path(s, b, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    const unsigned char *p = &s->buf[(size_t)b * s->cap];
    size_t left = s->fill[b];
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
        snprintf(errstr, errlen, "spill file '%s': %s", path, strerror(errno ? errno : EIO));
    if (fd >= 0)
        close(fd);
    s->fill[b] = 0;
    return ok ? 0 : SS_ERR_FAIL;
}

int cmp_spill_push(cmp_spill_t *s, const cmp_rec_t *r, const double *outputs, char *errstr,
                   size_t errlen) {
    int b = (int)(cmp_rec_hash(r) % (uint64_t)s->nb);
    size_t k = cmp_rec_spilled(r), need = sizeof(*r) + k * sizeof(double);
    if (s->fill[b] + need > s->cap && spill_flush(s, b, errstr, errlen) < 0)
        return SS_ERR_FAIL;
    unsigned char *p = &s->buf[(size_t)b * s->cap + s->fill[b]];
    memcpy(p, r, sizeof(*r));
    if (k)
        memcpy(p + sizeof(*r), outputs, k * sizeof(double));
    s->fill[b] += need;
    s->count[b]++;
    s->n_outs[b] += k;
    return 0;
}

int cmp_spill_flush_all(cmp_spill_t *s, char *errstr, size_t errlen) {
    for (int b = 0; b < s->nb; b++)
        if (s->fill[b] && spill_flush(s, b, errstr, errlen) < 0)
            return SS_ERR_FAIL;
    return 0;
}

/* Grow *a to hold n items of `size` bytes (*cap items). */
static int grow(void **a, size_t *cap, size_t n, size_t size) {
    if (n <= *cap)
        return 0;
    free(*a);
    *cap = 0;
    if (!(*a = malloc(n * size)))
        return SS_ERR_NOMEM;
    *cap = n;
    return 0;
}

int cmp_spill_load(cmp_spill_t *s, int b, cmp_rec_t **recs, size_t *cap, double **outs,
                   size_t *ocap, char *errstr, size_t errlen) {
    size_t n = (size_t)s->count[b], no = (size_t)s->n_outs[b], got = 0, at = 0;
    char path[576];
    if (no > UINT32_MAX) {
        snprintf(errstr, errlen, "a bucket of %zu records holds %zu outputs, more than 2^32", n,
                 no);
        return SS_ERR_NOMEM;
    }
    if (grow((void **)recs, cap, n, sizeof(cmp_rec_t)) < 0 ||
        grow((void **)outs, ocap, no ? no : 1, sizeof(double)) < 0) {
        snprintf(errstr, errlen, "out of memory for a bucket of %zu records", n);
        return SS_ERR_NOMEM;
    }
    bucket_path(s, b, path, sizeof(path));
    FILE *f = fopen(path, "rb");
    for (; f && got < n && fread(&(*recs)[got], sizeof(cmp_rec_t), 1, f) == 1; got++) {
        cmp_rec_t *r = &(*recs)[got];
        size_t k = cmp_rec_spilled(r);
        if (at + k > no || fread(*outs + at, sizeof(double), k, f) != k)
            break;
        r->out_at = (uint32_t)at;
        at += k;
    }
    if (f)
        fclose(f);
    unlink(path);
    if (got != n || at != no) {
        snprintf(errstr, errlen, "spill file '%s': short read", path);
        return SS_ERR_FAIL;
    }
    return 0;
}

void cmp_spill_destroy(cmp_spill_t *s) {
    char path[576];
    for (int b = 0; s->dir && b < s->nb; b++) {
        bucket_path(s, b, path, sizeof(path));
        unlink(path);
    }
    free(s->buf);
    free(s->fill);
    free(s->count);
    free(s->n_outs);
    memset(s, 0, sizeof(*s));
}

/* ---- value files ----------------------------------------------------------------------- */

int cmp_col_open(cmp_col_t *col, const char *dir, const char *name, int k) {
    char path[576];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    col->k = k;
    col->min[0] = col->min[1] = INFINITY;
    col->max[0] = col->max[1] = -INFINITY;
    col->f = fopen(path, "w+");
    if (col->f)
        unlink(path); /* removed when closed, whatever happens */
    return col->f ? 0 : SS_ERR_FAIL;
}

void cmp_col_push(cmp_col_t *col, double a, double b) {
    double v[2] = {a, b};
    for (int i = 0; i < col->k; i++) {
        col->min[i] = fmin(col->min[i], v[i]);
        col->max[i] = fmax(col->max[i], v[i]);
    }
    fwrite(v, sizeof(double), (size_t)col->k, col->f);
    col->n++;
}

static int col_rewind(cmp_col_t *col) {
    return fflush(col->f) || fseek(col->f, 0, SEEK_SET) ? SS_ERR_FAIL : 0;
}

double *cmp_col_load(cmp_col_t *col) {
    double *a = malloc((col->n ? col->n : 1) * (size_t)col->k * sizeof(double));
    if (a &&
        (col_rewind(col) || fread(a, sizeof(double) * (size_t)col->k, col->n, col->f) != col->n)) {
        free(a);
        a = NULL;
    }
    return a;
}

int cmp_col_scan(cmp_col_t *col, void (*fn)(void *o, const double *v, size_t n), void *o) {
    double buf[8192];
    size_t per = sizeof(buf) / sizeof(double) / (size_t)col->k, got;
    if (col_rewind(col))
        return SS_ERR_FAIL;
    while ((got = fread(buf, sizeof(double) * (size_t)col->k, per, col->f)) > 0)
        fn(o, buf, got);
    return ferror(col->f) ? SS_ERR_FAIL : 0;
}

void cmp_col_close(cmp_col_t *col) {
    if (col->f)
        fclose(col->f);
    col->f = NULL;
}
