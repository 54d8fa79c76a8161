/* worker.h - one worker thread: its consumer in the group, its batch, its decoder, its state
 * (Redis under redis.on.error), its output writer and its delivery. Consumes, decodes, merges,
 * scores, produces and commits one micro-batch at a time (worker.c). */
#ifndef SS_WORKER_H
#define SS_WORKER_H

#include "producer.h"
#include "runtime.h"

/* Everything a thread needs, created before any thread starts so that a bad configuration or
 * an unreachable Redis is reported once, at start-up. Returns 0 with *out, or SS_ERR_CONFIG /
 * SS_ERR_FAIL with errstr (what was created is destroyed). */
int ss_worker_new(ss_runtime_t *rt, int index, ss_worker_t **out, char *errstr, size_t errlen);
/* Commits stored offsets, leaves the group, destroys. Accepts NULL. */
void ss_worker_destroy(ss_worker_t *w);

/* Start the thread; ss_worker_join waits for it and returns 0, SS_ERR_FAIL (a failed batch)
 * or SS_ERR_CONFIG (Redis refused: AUTH, TLS trust, NOPERM; told on stderr already). */
int ss_worker_start(ss_worker_t *w);
int ss_worker_join(ss_worker_t *w);
/* Its thread has finished. @locality any thread */
int ss_worker_done(ss_worker_t *w);
/* Its consumer has an assignment (maybe empty) from the group. @locality any thread */
int ss_worker_joined(ss_worker_t *w);
/* Where its outputs are produced. */
ss_producer_t *ss_worker_producer(ss_worker_t *w);

#endif
