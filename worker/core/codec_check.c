/* codec_check.c - the structural check of an Avro body before anything reads it.
 * avro-c allocates whatever length a string, bytes or array claims before reading it, and
 * leaks that allocation when the read then fails: a few garbled records could exhaust
 * memory. So every body is first walked against its writer schema here, without allocating:
 * lengths must fit in the bytes that remain, union branches and enum indexes must exist,
 * nesting is bounded, and so are the items of arrays and maps, in total (see check_t). */
#include "codec_int.h"

#define CHECK_MAX_DEPTH 64
/* Items of arrays and maps that a value starting with r bytes left may hold, all its nested
 * ones included: ITEMS_PER_BYTE * r + ITEMS_SLACK. An item of null or of an empty record
 * takes no bytes, so the bytes alone do not bound the walk. */
#define ITEMS_PER_BYTE 8
#define ITEMS_SLACK 8

/* One walk. Every value entered tightens `limit` to what it may hold from where it starts
 * (items + its own allowance), for itself and what it contains; the items of the whole walk
 * are thus bounded by the bytes of the value, not each block by the bytes after it (a block
 * bound let every block, or every nested array, claim the bytes left again: quadratic).
 * Since each value's bound depends only on where it starts and where the body ends, a value
 * stepped over again from its own start (the direct reader skipping a field) passes it too. */
typedef struct check {
    const unsigned char *end;
    int64_t items; /* array and map items walked */
    int64_t steps; /* values entered and blocks read: the work done */
} check_t;

static int check_value(check_t *k, avro_schema_t s, const unsigned char **p, int64_t limit,
                       int depth);

/* `size` bytes at *p, if that many remain. */
static int skip(const unsigned char **p, const unsigned char *end, int64_t size) {
    if (size < 0 || size > end - *p)
        return SS_ERR_FAIL;
    *p += size;
    return 0;
}

/* A length (strings, bytes, map keys) and the bytes it claims. */
static int skip_counted(const unsigned char **p, const unsigned char *end) {
    int64_t n;
    if (read_varint(p, end, &n) < 0)
        return SS_ERR_FAIL;
    return skip(p, end, n);
}

/* A varint that indexes one of `count` (union branches, enum symbols), in *n. */
static int read_index(const unsigned char **p, const unsigned char *end, int64_t count,
                      int64_t *n) {
    if (read_varint(p, end, n) < 0 || *n < 0 || *n >= count)
        return SS_ERR_FAIL;
    return 0;
}

/* The blocks of an array or map: a count, the items (map items keyed), until a count of 0.
 * A count beyond what `limit` leaves is refused before any item is walked. */
static int check_blocks(check_t *k, avro_schema_t s, const unsigned char **p, int64_t limit,
                        int depth) {
    int is_map = avro_typeof(s) == AVRO_MAP;
    avro_schema_t item = is_map ? avro_schema_map_values(s) : avro_schema_array_items(s);
    for (;;) {
        int64_t n;
        k->steps++;
        if (read_varint(p, k->end, &n) < 0)
            return SS_ERR_FAIL;
        if (n == 0)
            return 0;
        if (n < 0) { /* negative count: a block byte size follows */
            int64_t bytes;
            if (n == INT64_MIN || read_varint(p, k->end, &bytes) < 0)
                return SS_ERR_FAIL;
            n = -n;
        }
        if (n > limit - k->items)
            return SS_ERR_FAIL;
        for (int64_t i = 0; i < n; i++) {
            k->items++;
            if (is_map && skip_counted(p, k->end) < 0)
                return SS_ERR_FAIL;
            if (check_value(k, item, p, limit, depth + 1) < 0)
                return SS_ERR_FAIL;
        }
    }
}

static int check_value(check_t *k, avro_schema_t s, const unsigned char **p, int64_t limit,
                       int depth) {
    int64_t n, own = k->items + (k->end - *p) * ITEMS_PER_BYTE + ITEMS_SLACK;
    k->steps++;
    if (own < limit)
        limit = own;
    if (depth > CHECK_MAX_DEPTH)
        return SS_ERR_FAIL;
    switch (avro_typeof(s)) {
    case AVRO_NULL: return 0;
    case AVRO_BOOLEAN:
        if (*p >= k->end || **p > 1)
            return SS_ERR_FAIL;
        (*p)++;
        return 0;
    case AVRO_INT32:
    case AVRO_INT64: return read_varint(p, k->end, &n);
    case AVRO_FLOAT: return skip(p, k->end, 4);
    case AVRO_DOUBLE: return skip(p, k->end, 8);
    case AVRO_STRING:
    case AVRO_BYTES: return skip_counted(p, k->end);
    case AVRO_FIXED: return skip(p, k->end, avro_schema_fixed_size(s));
    case AVRO_ENUM: return read_index(p, k->end, avro_schema_enum_number_of_symbols(s), &n);
    case AVRO_UNION:
        if (read_index(p, k->end, (int64_t)avro_schema_union_size(s), &n) < 0)
            return SS_ERR_FAIL;
        return check_value(k, avro_schema_union_branch(s, (int)n), p, limit, depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (check_value(k, avro_schema_record_field_get_by_index(s, (int)i), p, limit,
                            depth + 1) < 0)
                return SS_ERR_FAIL;
        return 0;
    case AVRO_ARRAY:
    case AVRO_MAP: return check_blocks(k, s, p, limit, depth);
    case AVRO_LINK: return check_value(k, avro_schema_link_target(s), p, limit, depth + 1);
    default: return SS_ERR_FAIL;
    }
}

int ss__check_value(avro_schema_t s, const unsigned char **p, const unsigned char *end, int depth) {
    check_t k = {end, 0, 0};
    return check_value(&k, s, p, INT64_MAX, depth);
}

int ss__check_body_steps(avro_schema_t schema, const unsigned char *p, size_t len, int64_t *steps) {
    check_t k = {p + len, 0, 0};
    int rc = check_value(&k, schema, &p, INT64_MAX, 0);
    if (steps)
        *steps = k.steps;
    return rc;
}

int ss__check_body(avro_schema_t schema, const unsigned char *p, size_t len) {
    return ss__check_body_steps(schema, p, len, NULL);
}
