/* state_changelog.h - exactly-once feature updates: each batch's transaction carries one
 * record per customer it changed (key = customer id, value = a JSON object of the customer's
 * merged features in their Redis text form, partition = the input partition) on a compacted
 * topic, state.changelog.topic. Redis is written only after the commit, together with a
 * checkpoint (hash `streamscore:changelog:<topic>`, field = partition, value = the next
 * changelog offset applied); a partition's new owner replays the changelog from the
 * checkpoint into Redis before it reads the partition's customers. docs/state.md.
 * @locality the worker thread that owns it (ss_changelog_prepare: start-up) */
#ifndef SS_STATE_CHANGELOG_H
#define SS_STATE_CHANGELOG_H

#include <librdkafka/rdkafka.h>

#include "batch.h"
#include "cache.h"
#include "config.h"
#include "producer.h"

typedef struct ss_changelog ss_changelog_t;

/* At start-up: the changelog topic exists (created, compacted, with the input's partition
 * count, when missing) and has at least as many partitions as the input. Returns 0,
 * SS_ERR_CONFIG (too few partitions) or SS_ERR_FAIL with errstr. */
int ss_changelog_prepare(const ss_config_t *cfg, char *errstr, size_t errlen);

ss_changelog_t *ss_changelog_new(const ss_config_t *cfg, char *const *features, size_t nf,
                                 char *errstr, size_t errlen);
void ss_changelog_destroy(ss_changelog_t *cl);

/* A customer's merged vector to the changelog through `p` (inside the open transaction), to
 * `partition`. Returns 0, SS_ERR_NOMEM or SS_ERR_FAIL with errstr. */
int ss_changelog_send(ss_changelog_t *cl, ss_producer_t *p, const char *id, size_t id_len,
                      int32_t partition, const float *vec, char *errstr, size_t errlen);

/* The transaction holding the sends since the last call committed (their offsets count) or
 * aborted. */
void ss_changelog_committed(ss_changelog_t *cl);
void ss_changelog_aborted(ss_changelog_t *cl);

/* Queue, on `cache`, the checkpoint of every partition whose committed changelog moved. */
void ss_changelog_queue_checkpoint(ss_changelog_t *cl, ss_cache_t *cache);

/* Replay the changelog of the input partitions `parts` into Redis from their checkpoints, up
 * to the last committed record, then advance the checkpoints. `stopping` is polled. Returns
 * the records replayed, or a negative SS_ERR_* code with errstr. */
long ss_changelog_restore(ss_changelog_t *cl, ss_cache_t *cache,
                          const rd_kafka_topic_partition_list_t *parts, int (*stopping)(void *),
                          void *stop_arg, char *errstr, size_t errlen);

#endif
