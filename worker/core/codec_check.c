/* codec_check.c - the structural check of an Avro body before anything reads it.
 * avro-c allocates whatever length a string, bytes or array claims before reading it, and
 * leaks that allocation when the read then fails: a few garbled records could exhaust
 * memory. So every body is first walked against its writer schema here, without allocating:
 * lengths must fit in the bytes that remain, union branches and enum indexes must exist,
 * counts of zero-size items are bounded, nesting is bounded. */
#include "codec_int.h"

#define CHECK_MAX_DEPTH 64

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

/* The blocks of an array or map: a count, the items (map items keyed), until a count of 0. */
static int check_blocks(avro_schema_t s, const unsigned char **p, const unsigned char *end,
                        int depth) {
    int is_map = avro_typeof(s) == AVRO_MAP;
    avro_schema_t item = is_map ? avro_schema_map_values(s) : avro_schema_array_items(s);
    for (;;) {
        int64_t n;
        if (read_varint(p, end, &n) < 0)
            return SS_ERR_FAIL;
        if (n == 0)
            return 0;
        if (n < 0) { /* negative count: a block byte size follows */
            int64_t bytes;
            if (n == INT64_MIN || read_varint(p, end, &bytes) < 0)
                return SS_ERR_FAIL;
            n = -n;
        }
        /* even zero-size items may not claim more than the bytes left, times 8 */
        if (n > (end - *p) * 8 + 8)
            return SS_ERR_FAIL;
        for (int64_t i = 0; i < n; i++) {
            if (is_map && skip_counted(p, end) < 0)
                return SS_ERR_FAIL;
            if (ss__check_value(item, p, end, depth + 1) < 0)
                return SS_ERR_FAIL;
        }
    }
}

int ss__check_value(avro_schema_t s, const unsigned char **p, const unsigned char *end, int depth) {
    int64_t n;
    if (depth > CHECK_MAX_DEPTH)
        return SS_ERR_FAIL;
    switch (avro_typeof(s)) {
    case AVRO_NULL: return 0;
    case AVRO_BOOLEAN:
        if (*p >= end || **p > 1)
            return SS_ERR_FAIL;
        (*p)++;
        return 0;
    case AVRO_INT32:
    case AVRO_INT64: return read_varint(p, end, &n);
    case AVRO_FLOAT: return skip(p, end, 4);
    case AVRO_DOUBLE: return skip(p, end, 8);
    case AVRO_STRING:
    case AVRO_BYTES: return skip_counted(p, end);
    case AVRO_FIXED: return skip(p, end, avro_schema_fixed_size(s));
    case AVRO_ENUM: return read_index(p, end, avro_schema_enum_number_of_symbols(s), &n);
    case AVRO_UNION:
        if (read_index(p, end, (int64_t)avro_schema_union_size(s), &n) < 0)
            return SS_ERR_FAIL;
        return ss__check_value(avro_schema_union_branch(s, (int)n), p, end, depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (ss__check_value(avro_schema_record_field_get_by_index(s, (int)i), p, end,
                                depth + 1) < 0)
                return SS_ERR_FAIL;
        return 0;
    case AVRO_ARRAY:
    case AVRO_MAP: return check_blocks(s, p, end, depth);
    case AVRO_LINK: return ss__check_value(avro_schema_link_target(s), p, end, depth + 1);
    default: return SS_ERR_FAIL;
    }
}

int ss__check_body(avro_schema_t schema, const unsigned char *p, size_t len) {
    return ss__check_value(schema, &p, p + len, 0);
}
