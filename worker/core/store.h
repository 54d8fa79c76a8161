/* store.h - a worker thread's local feature store: the merged feature vectors of the customers
 * of the partitions the thread owns, bounded in count (least recently used evicted beyond
 * it), with the features changed since the last flush to Redis marked per customer.
 * It knows nothing of Kafka or Redis: the caller decides when an entry is trusted (while its
 * partition is owned), when the changes are written (ss_store_take_dirty) and what happens to
 * the changes of an evicted customer (the eviction callback). docs/state.md.
 * @locality the worker thread that owns it: not thread-safe */
#ifndef SS_STORE_H
#define SS_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ss_store ss_store_t;

/* A customer handed out: its id, its partition, its merged vector (n_features floats,
 * NaN = unknown) and the features changed since the last flush (n_features flags). */
typedef void (*ss_store_write_fn)(void *arg, const char *id, size_t id_len, int32_t partition,
                                  const float *vec, const unsigned char *changed);

typedef struct ss_store_stats {
    long hits, misses, evictions;
    size_t customers, bytes; /* now held */
} ss_store_stats_t;

/* A store of at most `max_customers` vectors of `n_features`; `evicted` receives the changes
 * of a customer evicted before they were flushed (NULL: none are ever marked). NULL when out
 * of memory. */
ss_store_t *ss_store_new(size_t n_features, size_t max_customers, ss_store_write_fn evicted,
                         void *arg);
void ss_store_destroy(ss_store_t *s);

/* The customer's vector (n_features floats), now the most recently used; NULL when not held.
 * Counts a hit or a miss. */
const float *ss_store_get(ss_store_t *s, const char *id, size_t len);

/* Hold `vec` as the customer's vector (of partition `partition`), most recently used. With
 * `changed` (n_features flags) the customer is marked for the next flush (which refreshes its
 * TTL) with the features flagged; NULL marks nothing (a reader that never writes).
 * May evict the least recently used customer. Returns 0 or -1 when out of memory (the store
 * is then unchanged). */
int ss_store_put(ss_store_t *s, const char *id, size_t len, int32_t partition, const float *vec,
                 const unsigned char *changed);

/* Hand every customer with marked changes to `fn` and clear the marks; returns how many. */
size_t ss_store_take_dirty(ss_store_t *s, ss_store_write_fn fn, void *arg);

/* A flush round in steps: ss_store_begin_flush puts every customer marked so far into the
 * round (with those of a round not finished); ss_store_take_flushing hands up to `max` of the
 * round's customers to `fn` and clears their marks (returns how many); ss_store_flushing says
 * whether any are left. A customer of the round changed again before it is taken stays in it
 * (taken with its latest vector and every flag); one changed after it was taken waits for the
 * next round. */
void ss_store_begin_flush(ss_store_t *s);
size_t ss_store_take_flushing(ss_store_t *s, size_t max, ss_store_write_fn fn, void *arg);
int ss_store_flushing(const ss_store_t *s);

/* Hand every customer held to `fn`, most recently used first; the store is unchanged. */
void ss_store_each(ss_store_t *s, ss_store_write_fn fn, void *arg);

/* Customers with marked changes (in a flush round or waiting for one). */
size_t ss_store_dirty(const ss_store_t *s);

/* Forget every customer of `partition`, with their marked changes (the caller flushed what
 * had to be flushed); returns how many. */
size_t ss_store_drop_partition(ss_store_t *s, int32_t partition);

/* Forget everything. */
void ss_store_clear(ss_store_t *s);

ss_store_stats_t ss_store_stats(const ss_store_t *s);

/* Bytes one customer of `n_features` with an id of `id_len` bytes takes in the store. */
size_t ss_store_entry_bytes(size_t n_features, size_t id_len);

#endif
