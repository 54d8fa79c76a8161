/* store.c - the local feature store: a chained hash table of entries, each on a doubly linked
 * least-recently-used list and, while it has unflushed changes, on the dirty list or (in a
 * flush round begun) the flushing list. One allocation per customer holds its links, vector,
 * change flags and id. */
#include "store.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

/* A link of a circular doubly linked list whose head is a sentinel link: unlinked without
 * knowing the list, and a whole list moved onto another at once. */
typedef struct link {
    struct link *prev, *next;
} link_t;

static void list_init(link_t *head) {
    head->prev = head->next = head;
}

static int list_empty(const link_t *head) {
    return head->next == head;
}

static void list_unlink(link_t *l) {
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

/* l first of the list */
static void list_push(link_t *head, link_t *l) {
    l->prev = head;
    l->next = head->next;
    head->next->prev = l;
    head->next = l;
}

/* every link of `from` appended to `to`; `from` left empty */
static void list_splice(link_t *to, link_t *from) {
    if (list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    list_init(from);
}

typedef struct entry {
    struct entry *chain; /* next in the hash bucket */
    link_t lru;          /* from the most to the least recently used */
    link_t dirty;        /* on the store's dirty or flushing list while it has changes */
    uint64_t hash;
    int32_t partition;
    uint32_t id_len;
    float vec[]; /* n_features floats, then n_features change flags, then the id */
} entry_t;

#define ENTRY_OF(link, member) ((entry_t *)(void *)((char *)(link)-offsetof(entry_t, member)))

struct ss_store {
    size_t nf, max;
    entry_t **buckets;
    size_t mask, count, n_dirty;
    link_t lru;      /* next: the most recently used; prev: the least */
    link_t dirty;    /* customers with changes, waiting for the next flush round */
    link_t flushing; /* customers with changes, in the flush round begun */
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

static void lists_init(ss_store_t *s) {
    list_init(&s->lru);
    list_init(&s->dirty);
    list_init(&s->flushing);
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
    lists_init(s);
    s->buckets = calloc(s->mask + 1, sizeof(*s->buckets));
    if (!s->buckets) {
        free(s);
        return NULL;
    }
    return s;
}

void ss_store_clear(ss_store_t *s) {
    for (link_t *l = s->lru.next, *next; l != &s->lru; l = next) {
        next = l->next;
        free(ENTRY_OF(l, lru));
    }
    memset(s->buckets, 0, (s->mask + 1) * sizeof(*s->buckets));
    lists_init(s);
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

static int is_dirty(const entry_t *e) {
    return e->dirty.next != &e->dirty;
}

static void dirty_unlink(ss_store_t *s, entry_t *e) {
    if (is_dirty(e)) {
        list_unlink(&e->dirty);
        s->n_dirty--;
    }
}

/* e marked for the next flush round, unless it waits in one already (dirty or flushing) */
static void dirty_push(ss_store_t *s, entry_t *e) {
    if (!is_dirty(e)) {
        list_push(&s->dirty, &e->dirty);
        s->n_dirty++;
    }
}

/* e the most recently used */
static void touch(ss_store_t *s, entry_t *e) {
    list_unlink(&e->lru);
    list_push(&s->lru, &e->lru);
}

/* Unlink e from everything and free it. */
static void forget(ss_store_t *s, entry_t *e) {
    entry_t **p = find(s, id_of(s, e), e->id_len, e->hash);
    *p = e->chain;
    list_unlink(&e->lru);
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
    touch(s, e);
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
    entry_t *e = ENTRY_OF(s->lru.prev, lru);
    if (is_dirty(e) && s->evicted)
        s->evicted(s->arg, id_of(s, e), e->id_len, e->partition, e->vec, flags_of(s, e));
    forget(s, e);
    s->evictions++;
}

static entry_t *insert(ss_store_t *s, const char *id, size_t len, uint64_t h) {
    entry_t *e = calloc(1, sizeof(*e) + s->nf * (sizeof(float) + 1) + len);
    if (!e)
        return NULL;
    while (s->count >= s->max && !list_empty(&s->lru))
        evict_one(s);
    list_init(&e->lru);
    list_init(&e->dirty);
    e->hash = h;
    e->id_len = (uint32_t)len;
    memcpy(id_of(s, e), id, len);
    entry_t **p = &s->buckets[h & s->mask];
    e->chain = *p;
    *p = e;
    list_push(&s->lru, &e->lru);
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
        touch(s, e);
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

/* Up to `max` customers of list `head` handed to fn, their marks cleared; how many. */
static size_t take(ss_store_t *s, link_t *head, size_t max, ss_store_write_fn fn, void *arg) {
    size_t n = 0;
    while (n < max && !list_empty(head)) {
        entry_t *e = ENTRY_OF(head->next, dirty);
        fn(arg, id_of(s, e), e->id_len, e->partition, e->vec, flags_of(s, e));
        memset(flags_of(s, e), 0, s->nf);
        dirty_unlink(s, e);
        n++;
    }
    return n;
}

size_t ss_store_take_dirty(ss_store_t *s, ss_store_write_fn fn, void *arg) {
    size_t n = take(s, &s->flushing, SIZE_MAX, fn, arg);
    return n + take(s, &s->dirty, SIZE_MAX, fn, arg);
}

void ss_store_begin_flush(ss_store_t *s) {
    list_splice(&s->flushing, &s->dirty);
}

size_t ss_store_take_flushing(ss_store_t *s, size_t max, ss_store_write_fn fn, void *arg) {
    return take(s, &s->flushing, max, fn, arg);
}

int ss_store_flushing(const ss_store_t *s) {
    return !list_empty(&s->flushing);
}

void ss_store_each(ss_store_t *s, ss_store_write_fn fn, void *arg) {
    for (link_t *l = s->lru.next; l != &s->lru; l = l->next) {
        entry_t *e = ENTRY_OF(l, lru);
        fn(arg, id_of(s, e), e->id_len, e->partition, e->vec, flags_of(s, e));
    }
}

size_t ss_store_dirty(const ss_store_t *s) {
    return s->n_dirty;
}

size_t ss_store_drop_partition(ss_store_t *s, int32_t partition) {
    size_t n = 0;
    for (link_t *l = s->lru.next, *next; l != &s->lru; l = next) {
        next = l->next;
        entry_t *e = ENTRY_OF(l, lru);
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
