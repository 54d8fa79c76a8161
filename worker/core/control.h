/* control.h - the rollout control topic (rollout.topic): a compacted topic of one partition
 * whose records, keyed by rollout.id, each hold a whole rollout state (rollout.h). A reader
 * folds them in order: the last one it accepts is the state. The workers follow it; the
 * `rollout` command reads it to its end, then writes the next state. */
#ifndef SS_CONTROL_H
#define SS_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "rollout.h"

typedef struct ss_control ss_control_t;

/* A reader and writer of cfg's rollout.topic for rollout.id; the topic is created when
 * missing (compacted, one partition, rollout.replication.factor). `who` names the client in
 * errors ("rollout", "control"). Returns NULL with errstr: SS_ERR_CONFIG in *why for a bad
 * key (named), SS_ERR_FAIL for Kafka not answering. */
ss_control_t *ss_control_open(const ss_config_t *cfg, const char *who, int *why, char *errstr,
                              size_t errlen);
void ss_control_close(ss_control_t *c);

/* Read to the end the topic had when called (at most timeout_ms). Returns 0, or SS_ERR_FAIL
 * with errstr (the end not reached in time). */
int ss_control_catch_up(ss_control_t *c, int timeout_ms, char *errstr, size_t errlen);

/* Take the records that arrived, waiting at most timeout_ms for the first. Returns how many
 * changed the state (0 when none). */
int ss_control_poll(ss_control_t *c, int timeout_ms);

/* The state now (phase NONE when no record was accepted yet). */
const ss_rollout_state_t *ss_control_state(const ss_control_t *c);

/* Write `next` (its base the current state's offset) and wait until Kafka acknowledged it;
 * its offset into *offset. Returns 0, or SS_ERR_FAIL with errstr. */
int ss_control_write(ss_control_t *c, const ss_rollout_state_t *next, int64_t *offset, char *errstr,
                     size_t errlen);

/* The offset of the last automatic record skipped as made from an older state, -1 none. */
int64_t ss_control_skipped(const ss_control_t *c);

/* The record key (rollout.id). */
const char *ss_control_id(const ss_control_t *c);

/* "$USER@host" (or "unknown@host"), for a change's `by`. */
void ss_control_who(char *out, size_t len);

#endif
