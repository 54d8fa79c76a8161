/* score_file_run.c - score-file's loop: the main thread reads and decodes a chunk of records,
 * every scoring thread takes the customers that hash to it (so that each customer's records
 * are merged in file order by one store), scores and encodes them, and the main thread writes
 * the chunk in input order. While the threads score one chunk, the main thread writes the
 * chunk before it and reads the one after it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "hash.h"
#include "log.h"
#include "score_file_int.h"

/* Copy into the chunk's arena; returns the offset, or (size_t)-1 when out of memory. */
/* Append len bytes (and a NUL when `nul`) to a growing buffer; the offset in *off. */
static int grow_put(char **buf, size_t *used, size_t *cap, const void *p, size_t len, int nul,
                    size_t *off) {
    if (*used + len + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 1 << 20;
        while (c < *used + len + 1)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return SS_ERR_NOMEM;
        *buf = b, *cap = c;
    }
    memcpy(*buf + *used, p, len);
    if (nul)
        (*buf)[*used + len] = '\0';
    *off = *used;
    *used += len + (nul ? 1 : 0);
    return 0;
}

/* Copy into the chunk's arena; returns the offset, or (size_t)-1 when out of memory. */
static size_t arena_put(sf_chunk_t *c, const char *p, size_t len) {
    size_t off;
    return grow_put(&c->arena, &c->arena_len, &c->arena_cap, p, len, 1, &off) < 0 ? (size_t)-1
                                                                                  : off;
}

/* Into thread t's buffer of the chunk. */
static int buf_put(sf_chunk_t *c, int t, const void *p, size_t len, size_t *off) {
    return grow_put(&c->out[t], &c->out_len[t], &c->out_cap[t], p, len, 0, off);
}

int sf_chunks_new(sf_t *s, size_t nf) {
    for (int k = 0; k < 2; k++) {
        sf_chunk_t *c = &s->chunks[k];
        c->recs = calloc(SF_CHUNK, sizeof(*c->recs));
        c->feats = malloc(SF_CHUNK * nf * sizeof(float) + 1);
        c->out = calloc((size_t)s->threads, sizeof(char *));
        c->out_len = calloc((size_t)s->threads, sizeof(size_t));
        c->out_cap = calloc((size_t)s->threads, sizeof(size_t));
        if (!c->recs || !c->feats || !c->out || !c->out_len || !c->out_cap)
            return SS_ERR_NOMEM;
    }
    return 0;
}

void sf_chunks_free(sf_t *s) {
    for (int k = 0; k < 2; k++) {
        sf_chunk_t *c = &s->chunks[k];
        for (int t = 0; c->out && t < s->threads; t++)
            free(c->out[t]);
        free(c->out);
        free(c->out_len);
        free(c->out_cap);
        free(c->recs);
        free(c->feats);
        free(c->arena);
    }
}

/* ------------------------------------------------------------------ a thread's share */

/* The thread's records of the chunk into its batch, as decoded. */
static void gather(sf_thread_t *t, sf_chunk_t *c, ss_batch_t *b, size_t *local) {
    size_t k = 0, nf = b->nf;
    for (size_t i = 0; i < c->n_recs; i++)
        k += !c->recs[i].reason && c->recs[i].owner == t->index;
    b->n_msgs = k;
    ss_batch_reset(b);
    k = 0;
    for (size_t i = 0; i < c->n_recs; i++) {
        const sf_rec_t *r = &c->recs[i];
        if (r->reason || r->owner != t->index)
            continue;
        ss_event_t ev = {.customer_id = c->arena + r->cust_off,
                         .customer_id_len = r->cust_len,
                         .event_id = c->arena + r->evid_off,
                         .event_id_len = r->evid_len,
                         .event_time = r->event_time,
                         .schema_id = -1};
        local[k] = i;
        t->fake[k].partition = r->input;
        t->fake[k].offset = r->index;
        b->msgs[k] = &t->fake[k];
        memcpy(ss_batch_event_row(b, k), c->feats + i * nf, nf * sizeof(float));
        if (ss_batch_add(b, k, &ev, -1) < 0)
            ss_batch_dead_letter(b, k, "decode", "too_large", "the batch's id arena is full");
        else
            b->u_part[b->recs[k].slot] = r->input;
        k++;
    }
}

/* Score the thread's records and encode each prediction (a dead letter's detail) into its
 * buffer. */
static int score_share(sf_thread_t *t, sf_chunk_t *c, size_t *local) {
    sf_t *s = t->sf;
    ss_batch_t *b = ss_scorer_batch(t->scorer);
    c->out_len[t->index] = 0;
    gather(t, c, b, local);
    if (b->n_msgs == 0)
        return 0;
    int rc = ss_scorer_run(t->scorer, t->err, sizeof(t->err));
    if (rc < 0)
        return rc;
    int64_t now = ss_wall_ms();
    for (size_t k = 0; k < b->n_msgs; k++) {
        sf_rec_t *r = &c->recs[local[k]];
        const void *enc;
        size_t len;
        if (b->recs[k].dlq) {
            const char *d = ss_batch_detail(b, k);
            r->reason = b->recs[k].reason;
            r->late = 1;
            if ((rc = buf_put(c, t->index, d, strlen(d) + 1, &r->out_off)) < 0)
                return rc;
            r->out_len = strlen(d);
            continue;
        }
        ss_prediction_t p;
        memset(&p, 0, sizeof(p));
        ss_scorer_fill(t->scorer, k, &p);
        p.source_topic = s->inputs[r->input];
        p.source_partition = r->input;
        p.source_offset = r->index;
        p.scored_at = now;
        if ((rc = ss_encoder_encode(t->enc, &p, &enc, &len, t->err, sizeof(t->err))) < 0 ||
            (rc = buf_put(c, t->index, enc, len, &r->out_off)) < 0)
            return rc;
        r->out_len = len;
    }
    return 0;
}

static void *thread_main(void *arg) {
    sf_thread_t *t = arg;
    size_t *local = malloc(SF_CHUNK * sizeof(size_t));
    for (;;) {
        pthread_barrier_wait(&t->sf->start);
        if (t->sf->quit)
            break;
        if (t->rc == 0 &&
            (t->rc = local ? score_share(t, t->sf->scoring, local) : SS_ERR_NOMEM) < 0 &&
            !t->err[0])
            snprintf(t->err, sizeof(t->err), "score-file: out of memory");
        pthread_barrier_wait(&t->sf->done);
    }
    free(local);
    return NULL;
}

/* ------------------------------------------------------------------ the main thread */

/* Read up to SF_CHUNK records of input `in` (index `k`) into the chunk. 1 when some were
 * read, 0 at the input's end, or SS_ERR_* with errstr. */
static int read_chunk(sf_t *s, sf_chunk_t *c, int k, long *index, char *err, size_t errlen) {
    ss_file_in_t *in = s->in[k];
    size_t nf = s->job.model->n_features;
    c->n_recs = 0;
    c->arena_len = 0;
    while (c->n_recs < SF_CHUNK) {
        sf_rec_t *r = &c->recs[c->n_recs];
        ss_event_t ev;
        char derr[512];
        int rc;
        int got = ss_file_in_next(in, &ev, c->feats + c->n_recs * nf, &rc, &r->reason, derr,
                                  sizeof(derr));
        if (got < 0) {
            snprintf(err, errlen, "%s", derr);
            return got;
        }
        if (got == 0)
            break;
        r->input = k;
        r->index = (*index)++;
        r->late = 0;
        r->owner = 0;
        r->detail_off = r->cust_off = r->evid_off = 0;
        if (r->reason) {
            r->detail_off = arena_put(c, derr, strlen(derr));
        } else {
            r->cust_off = arena_put(c, ev.customer_id, ev.customer_id_len);
            r->cust_len = ev.customer_id_len;
            r->evid_off = arena_put(c, ev.event_id, ev.event_id_len);
            r->evid_len = ev.event_id_len;
            r->event_time = ev.event_time;
            r->owner = (int)(ss_fmix64(ss_fnv1a(0xcbf29ce484222325ULL, ev.customer_id,
                                                ev.customer_id_len)) %
                             (uint64_t)s->threads);
        }
        if (r->cust_off == (size_t)-1 || r->evid_off == (size_t)-1 || r->detail_off == (size_t)-1) {
            snprintf(err, errlen, "score-file: out of memory");
            return SS_ERR_NOMEM;
        }
        c->n_recs++;
    }
    return c->n_recs > 0;
}

/* A dead letter's line for --dead-letters. */
static int dead_letter(sf_t *s, const sf_rec_t *r, const char *detail, char *err, size_t errlen) {
    s->dead++;
    ss_job_count_reason(s->reasons, r->reason);
    if (!s->dlq)
        return 0;
    json_t *j =
        json_pack("{s:s, s:i, s:I, s:s, s:s}", "input", s->inputs[r->input], "input_index",
                  r->input, "index", (json_int_t)r->index, "reason", r->reason, "detail", detail);
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc =
        line ? ss_file_out_write(s->dlq, line, strlen(line), NULL, 0, err, errlen) : SS_ERR_NOMEM;
    free(line);
    json_decref(j);
    return rc;
}

/* The chunk's records in input order. */
static int write_chunk(sf_t *s, const sf_chunk_t *c, char *err, size_t errlen) {
    for (size_t i = 0; i < c->n_recs; i++) {
        const sf_rec_t *r = &c->recs[i];
        const char *out = c->out[r->owner];
        int rc;
        s->records++;
        if (r->reason) { /* a dead letter: found decoding (its detail in the arena) or scoring */
            rc = dead_letter(s, r, r->late ? out + r->out_off : c->arena + r->detail_off, err,
                             errlen);
        } else {
            s->predictions++;
            rc = ss_file_out_write(s->out, out + r->out_off, r->out_len, c->arena + r->cust_off,
                                   r->cust_len, err, errlen);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The threads start on chunk c. */
static void kick(sf_t *s, sf_chunk_t *c) {
    s->scoring = c;
    pthread_barrier_wait(&s->start);
}

/* Wait until the threads finished the chunk they score: 0, or the first thread's error. */
static int scored(sf_t *s, char *err, size_t errlen) {
    pthread_barrier_wait(&s->done);
    for (int t = 0; t < s->threads; t++)
        if (s->th[t].rc < 0) {
            snprintf(err, errlen, "%s", s->th[t].err);
            return s->th[t].rc;
        }
    return 0;
}

static int start_threads(sf_t *s, char *err, size_t errlen) {
    pthread_barrier_init(&s->start, NULL, (unsigned)s->threads + 1);
    pthread_barrier_init(&s->done, NULL, (unsigned)s->threads + 1);
    for (int t = 0; t < s->threads; t++) {
        if (pthread_create(&s->th[t].tid, NULL, thread_main, &s->th[t]) != 0) {
            snprintf(err, errlen, "score-file: cannot start a thread");
            return SS_ERR_FAIL; /* the threads started are not joined: the process exits */
        }
    }
    return 0;
}

static void stop_threads(sf_t *s) {
    s->quit = 1;
    pthread_barrier_wait(&s->start);
    for (int t = 0; t < s->threads; t++)
        pthread_join(s->th[t].tid, NULL);
    pthread_barrier_destroy(&s->start);
    pthread_barrier_destroy(&s->done);
}

/* The next chunk of the inputs into c (empty at the end of the last one): 0 or SS_ERR_*. */
static int read_next(sf_t *s, sf_chunk_t *c, int *k, long *index, char *err, size_t errlen) {
    c->n_recs = 0;
    while (*k < s->n_inputs) {
        if (ss_job_stopping(&s->stop)) {
            snprintf(err, errlen,
                     "score-file: stopped; nothing was written under the output's "
                     "name");
            return SS_ERR_STOPPED;
        }
        int rc = read_chunk(s, c, *k, index, err, errlen);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        ++*k, *index = 0;
    }
    return 0;
}

int sf_run(sf_t *s, char *err, size_t errlen) {
    int rc = start_threads(s, err, errlen), k = 0, busy = 0;
    long index = 0;
    sf_chunk_t *cur = &s->chunks[0], *next = &s->chunks[1];
    if (rc < 0)
        return rc;
    ss_progress_init(&s->prog, "score-file", s->progress);
    if ((rc = read_next(s, cur, &k, &index, err, errlen)) == 0 && cur->n_recs) {
        kick(s, cur);
        busy = 1;
    }
    while (rc == 0 && busy) {
        rc = read_next(s, next, &k, &index, err, errlen); /* while cur is scored */
        int src = scored(s, err, errlen);
        busy = 0;
        if (rc < 0 || (rc = src) < 0)
            break;
        if (next->n_recs) {
            kick(s, next); /* next is scored while cur is written */
            busy = 1;
        }
        rc = write_chunk(s, cur, err, errlen);
        double frac =
            k >= s->n_inputs ? 1.0 : ((double)k + ss_file_in_fraction(s->in[k])) / s->n_inputs;
        ss_progress_update(&s->prog, s->records, -1, frac);
        sf_chunk_t *t = cur;
        cur = next, next = t;
    }
    if (busy) /* a failure while a chunk was scored: its end waited for */
        pthread_barrier_wait(&s->done);
    stop_threads(s);
    if (rc == 0)
        ss_progress_end(&s->prog, s->records, s->records);
    return rc;
}
