/* rollout.h - the rollout of a candidate model in the primary worker: its state as one record
 * of the control topic (JSON), the changes the `rollout` command and the workers' gates make
 * to it, and the routing of a customer to the live model or the canary by a stable hash of
 * its id. Pure functions: the Kafka side is control.h, the workers' side daemon/canary.h. */
#ifndef SS_ROLLOUT_H
#define SS_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SS_ROUTE_BUCKETS 10000 /* a share is applied in steps of 0.01 % */
#define SS_ROLLOUT_MAX_STEPS 16

typedef enum {
    SS_ROLLOUT_NONE = 0, /* no record: the configured model serves everyone */
    SS_ROLLOUT_SHADOW,
    SS_ROLLOUT_CANARY,
    SS_ROLLOUT_PROMOTED,
    SS_ROLLOUT_ROLLED_BACK
} ss_rollout_phase_t;

/* A model as the control topic names it: where the workers find it and what it must be. */
typedef struct ss_rollout_model {
    int set; /* 0: none (for `live`: the configured model.path) */
    char name[128], version[128];
    char sha256[65];
    char path[1024], card[1024]; /* card "": the path's default card */
} ss_rollout_model_t;

typedef struct ss_rollout_state {
    ss_rollout_phase_t phase;
    double share; /* of customers on the candidate, 0..1 (canary only) */
    ss_rollout_model_t candidate, live, previous;
    char reason[512], by[256];
    int automatic;  /* origin: a worker's gate or progression (else a command) */
    int64_t at;     /* wall ms when written */
    int64_t base;   /* offset of the record it was derived from, -1 none */
    int64_t offset; /* its own offset in the control topic (set by the reader), -1 none */
} ss_rollout_state_t;

/* The empty state (phase NONE, offsets -1). */
void ss_rollout_init(ss_rollout_state_t *s);

const char *ss_rollout_phase_name(ss_rollout_phase_t p);

/* Parse a control record's value (`len` bytes of JSON). Returns 0, or SS_ERR_CONFIG with
 * errstr saying what is wrong (a record that cannot be understood is skipped by readers). */
int ss_rollout_parse(const char *text, size_t len, ss_rollout_state_t *out, char *errstr,
                     size_t errlen);

/* The record's value as JSON text (malloc'd), with `rollout` the record key; `offset`
 * included when with_offset (for `status --json`). NULL when out of memory. */
char *ss_rollout_dump(const ss_rollout_state_t *s, const char *rollout, int with_offset);

/* Whether a reader that applied `cur` last takes `next`: commands always; an automatic record
 * only when it was derived from `cur` or from a later record (its base is at or after cur's
 * offset: a writer whose change was skipped restates the state so, see canary.c), or when
 * there is no `cur`. An automatic change made from an older state is skipped. */
int ss_rollout_accepts(const ss_rollout_state_t *cur, const ss_rollout_state_t *next);

/* Parse rollout.steps: ascending shares in (0, 1], comma-separated. Returns the count, or
 * SS_ERR_CONFIG with errstr. */
int ss_rollout_parse_steps(const char *text, double *steps, size_t max, char *errstr,
                           size_t errlen);

/* The first step above `share`, or -1 when there is none (the last step is reached). */
double ss_rollout_next_step(const double *steps, int n, double share);

/* The changes. Each derives `next` from `cur` (base = cur's offset, at = now_ms, reason and by
 * copied); returns 0, or SS_ERR_CONFIG with errstr when the change is not allowed from cur's
 * phase (e.g. a step with no candidate). start: share 0 gives phase shadow. */
int ss_rollout_start(const ss_rollout_state_t *cur, const ss_rollout_model_t *candidate,
                     double share, ss_rollout_state_t *next, char *errstr, size_t errlen);
int ss_rollout_step(const ss_rollout_state_t *cur, double share, ss_rollout_state_t *next,
                    char *errstr, size_t errlen);
int ss_rollout_promote(const ss_rollout_state_t *cur, ss_rollout_state_t *next, char *errstr,
                       size_t errlen);
int ss_rollout_rollback(const ss_rollout_state_t *cur, ss_rollout_state_t *next, char *errstr,
                        size_t errlen);

/* Stamp a derived state: its reason, author and time. */
void ss_rollout_stamp(ss_rollout_state_t *s, const char *reason, const char *by, int automatic,
                      int64_t now_ms);

/* The customers routed to the candidate at `share`: buckets below this go there. */
uint32_t ss_rollout_buckets(double share);

/* A customer's bucket, 0..SS_ROUTE_BUCKETS-1: fmix64(FNV-1a 64 of salt, a 0 byte, the id)
 * mod 10000. The same id and salt give the same bucket on every worker whatever the
 * partitioning; a customer under one share is under every larger one. */
uint32_t ss_rollout_bucket(const char *salt, const char *id, size_t len);

/* The same in two parts: the hash of the salt and its 0 byte, once per rollout; then a bucket
 * per customer from it. */
uint64_t ss_rollout_salt(const char *salt);
uint32_t ss_rollout_bucket_of(uint64_t salted, const char *id, size_t len);

#endif
