/* store.c - the local feature store: a chained hash table of entries, each on a doubly linked
 * least-recently-used list and, while it has unflushed changes, on a dirty list. One
 * allocation per customer holds its links, vector, change flags and id. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

typedef struct entry {
    struct entry *chain;               /* next in the hash bucket */
    struct entry *lru_prev, *lru_next; /* lru_next towards the least recently used */
    struct entry *dirty_prev, *dirty_next;
    uint64_t hash;
    int32_t partition;
    uint32_t id_len;
    int dirty;
    float vec[]; /* n_features floats, then n_features change flags, then the id */
} entry_t;

struct ss_store {
    size_t nf, max;
    entry_t **buckets;
    size_t mask, count, n_dirty;
    entry_t *mru, *lru; /* the list's two ends */
    entry_t *dirty;     /* head of the dirty list */
    ss_store_write_fn evicted;
    void *arg;
    long hits, misses, evictions;
    size_t bytes;
};

/* The allocator's own overhead per block and the bucket pointer, counted with each entry. */
#define ENTRY_OVERHEAD (16 + sizeof(entry_t *))

size_t ss_store_entry_bytes(size_t n_features, size_t id_len) {
    size_t raw = sizeof(entry_t) + n_features * (sizeof(float) + 1) + id_len;
    return ((raw + 15) & ~(size_t)15) + ENTRY_OVERHEAD;
}

static unsigned char *flags_of(const ss_store_t *s, entry_t *e) {
    return (unsigned char *)(e->vec + s->nf);
}

static char *id_of(const ss_store_t *s, entry_t *e) {
    return (char *)flags_of(s, e) + s->nf;
}

ss_store_t *ss_store_new(size_t n_features, size_t max_customers, ss_store_write_fn evicted,
                         void *arg) {
    ss_store_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->nf = n_features;
    s->max = max_customers ? max_customers : 1;
    s->mask = 1023;
    s->evicted = evicted;
    s->arg = arg;
    s->buckets = calloc(s->mask + 1, sizeof(*s->buckets));
    if (!s->buckets) {
        free(s);
        return NULL;
    }
    return s;
}

void ss_store_clear(ss_store_t *s) {
    for (entry_t *e = s->mru, *next; e; e = next) {
        next = e->lru_next;
        free(e);
    }
    memset(s->buckets, 0, (s->mask + 1) * sizeof(*s->buckets));
    s->mru = s->lru = s->dirty = NULL;
    s->count = s->n_dirty = s->bytes = 0;
}

void ss_store_destroy(ss_store_t *s) {
    if (!s)
        return;
    ss_store_clear(s);
    free(s->buckets);
    free(s);
}

static entry_t **find(ss_store_t *s, const char *id, size_t len, uint64_t h) {
    entry_t **p = &s->buckets[h & s->mask];
    while (*p && !((*p)->hash == h && (*p)->id_len == len && memcmp(id_of(s, *p), id, len) == 0))
        p = &(*p)->chain;
    return p;
}

static void lru_unlink(ss_store_t *s, entry_t *e) {
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        s->mru = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        s->lru = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push(ss_store_t *s, entry_t *e) {
    e->lru_prev = NULL;
    e->lru_next = s->mru;
    if (s->mru)
        s->mru->lru_prev = e;
    s->mru = e;
    if (!s->lru)
        s->lru = e;
}

static void dirty_unlink(ss_store_t *s, entry_t *e) {
    if (!e->dirty)
        return;
    if (e->dirty_prev)
        e->dirty_prev->dirty_next = e->dirty_next;
    else
        s->dirty = e->dirty_next;
    if (e->dirty_next)
        e->dirty_next->dirty_prev = e->dirty_prev;
    e->dirty_prev = e->dirty_next = NULL;
    e->dirty = 0;
    s->n_dirty--;
}

static void dirty_push(ss_store_t *s, entry_t *e) {
    if (e->dirty)
        return;
    e->dirty = 1;
    e->dirty_prev = NULL;
    e->dirty_next = s->dirty;
    if (s->dirty)
        s->dirty->dirty_prev = e;
    s->dirty = e;
    s->n_dirty++;
}

/* Unlink e from everything and free it. */
static void forget(ss_store_t *s, entry_t *e) {
    entry_t **p = find(s, id_of(s, e), e->id_len, e->hash);
    *p = e->chain;
    lru_unlink(s, e);
    dirty_unlink(s, e);
    s->count--;
    s->bytes -= ss_store_entry_bytes(s->nf, e->id_len);
    free(e);
}

const float *ss_store_get(ss_store_t *s, const char *id, size_t len) {
    entry_t *e = *find(s, id, len, ss_fnv1a(SS_FNV1A_INIT, id, len));
    if (!e) {
        s->misses++;
        return NULL;
    }
    s->hits++;
    lru_unlink(s, e);
    lru_push(s, e);
    return e->vec;
}

/* Double the buckets when the table is full; a failed growth only makes chains longer. */
static void grow(ss_store_t *s) {
    size_t n = (s->mask + 1) * 2;
    entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i <= s->mask; i++) {
        for (entry_t *e = s->buckets[i], *next; e; e = next) {
            next = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->mask = n - 1;
}

static void evict_one(ss_store_t *s) {
    entry_t *e = s->lru;
    if (e->dirty && s->evicted)
        s->evicted(s->arg, id_of(s, e), e->id_len, e->partition, e->vec, flags_of(s, e));
    forget(s, e);
    s->evictions++;
}

static entry_t *insert(ss_store_t *s, const char *id, size_t len, uint64_t h) {
    entry_t *e = calloc(1, sizeof(*e) + s->nf * (sizeof(float) + 1) + len);
    if (!e)
        return NULL;
    while (s->count >= s->max && s->lru)
        evict_one(s);
    e->hash = h;
    e->id_len = (uint32_t)len;
    memcpy(id_of(s, e), id, len);
    entry_t **p = &s->buckets[h & s->mask];
    e->chain = *p;
    *p = e;
    lru_push(s, e);
    s->count++;
    s->bytes += ss_store_entry_bytes(s->nf, len);
    if (s->count > s->mask + 1)
        grow(s);
    return e;
}

int ss_store_put(ss_store_t *s, const char *id, size_t len, int32_t partition, const float *vec,
                 const unsigned char *changed) {
    uint64_t h = ss_fnv1a(SS_FNV1A_INIT, id, len);
    entry_t *e = *find(s, id, len, h);
    if (e) {
        lru_unlink(s, e);
        lru_push(s, e);
    } else if (!(e = insert(s, id, len, h))) {
        return -1;
    }
    e->partition = partition;
    memcpy(e->vec, vec, s->nf * sizeof(float));
    if (changed) {
        unsigned char *flags = flags_of(s, e);
        for (size_t f = 0; f < s->nf; f++)
            flags[f] |= changed[f];
        dirty_push(s, e);
    }
    return 0;
}

size_t ss_store_take_dirty(ss_store_t *s, ss_store_write_fn fn, void *arg) {
    size_t n = 0;
    while (s->dirty) {
        entry_t *e = s->dirty;
        fn(arg, id_of(s, e), e->id_len, e->partition, e->vec, flags_of(s, e));
        memset(flags_of(s, e), 0, s->nf);
        dirty_unlink(s, e);
        n++;
    }
    return n;
}

void ss_store_each(ss_store_t *s, ss_store_write_fn fn, void *arg) {
    for (entry_t *e = s->mru; e; e = e->lru_next)
        fn(arg, id_of(s, e), e->id_len, e->partition, e->vec, flags_of(s, e));
}

size_t ss_store_dirty(const ss_store_t *s) {
    return s->n_dirty;
}

size_t ss_store_drop_partition(ss_store_t *s, int32_t partition) {
    size_t n = 0;
    for (entry_t *e = s->mru, *next; e; e = next) {
        next = e->lru_next;
        if (e->partition == partition) {
            forget(s, e);
            n++;
        }
    }
    return n;
}

ss_store_stats_t ss_store_stats(const ss_store_t *s) {
    return (ss_store_stats_t){.hits = s->hits,
                              .misses = s->misses,
                              .evictions = s->evictions,
                              .customers = s->count,
                              .bytes = s->bytes};
}
