/* config_int.h - internal to the configuration module (config.c, config_keys.c,
 * config_rules.c): the row type of the one key table, its lookups and a shared helper.
 * Every other module reads ss_config_t and config.h only (libuv's uv-common.h: x__ names
 * stay inside). */
#ifndef SS_CONFIG_INT_H
#define SS_CONFIG_INT_H

#include <stddef.h>

#include "config.h"

typedef enum {
    SS_CT_STRING,
    SS_CT_INT,    /* long, within [min, max] */
    SS_CT_DOUBLE, /* double, finite, within [min, max] */
    SS_CT_ENUM    /* int: the index of the value in `values` ("a|b"); log.level's is its level */
} ss_config__type_t;

#define SS_KEY_REQUIRED 1    /* for the commands of the rule "required keys" */
#define SS_KEY_SECRET 2      /* only from the environment, or from the row after it: */
#define SS_KEY_SECRET_FILE 4 /* <secret key>.file, the file holding the secret */

/* One key (librdkafka's rd_kafka_property, Fluent Bit's flb_config_map). */
typedef struct ss_config__key {
    const char *key;
    ss_config__type_t type;
    const char *def;    /* default as text; NULL = none (derived by a rule, or required) */
    double min, max;    /* SS_CT_INT, SS_CT_DOUBLE */
    const char *values; /* "a|b": SS_CT_ENUM */
    size_t offset;      /* of the field in ss_config_t */
    unsigned scope;     /* SS_CMD_* that read it | SS_SCOPE_CONSUMER / SS_SCOPE_PRODUCER */
    int flags;          /* SS_KEY_* */
    const char *doc;
} ss_config__key_t;

/* A prefix of keys passed through to librdkafka (kafka.*, kafka.consumer.*, ...). */
typedef struct ss_config__prefix {
    const char *prefix; /* "kafka.consumer." */
    int side;           /* ss_kv_t.scope: SS_KAFKA_BOTH, SS_KAFKA_CONSUMER, SS_KAFKA_PRODUCER */
    unsigned scope;     /* as ss_config__key_t.scope */
    const char *doc;
} ss_config__prefix_t;

extern const ss_config__key_t ss_config__keys[];
extern const size_t ss_config__n_keys;
extern const ss_config__prefix_t ss_config__prefixes[];
extern const size_t ss_config__n_prefixes;

/* The row of `key`, or NULL. */
const ss_config__key_t *ss_config__find(const char *key);

/* The pass-through prefix `key` starts with (the longest), or NULL. */
const ss_config__prefix_t *ss_config__find_prefix(const char *key);

/* strtol of all of `s`: 0, or SS_ERR_CONFIG if it is not a whole decimal long. */
int ss_config__parse_long(const char *s, long *out);

/* The field of `k` in `cfg`. */
static inline void *ss_config__field(ss_config_t *cfg, const ss_config__key_t *k) {
    return (char *)cfg + k->offset;
}

#endif
