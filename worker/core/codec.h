/* codec.h - from Kafka value bytes to an event: framing (raw or Confluent wire format),
 * Avro decoding with the writer schema, and resolution against the reader schema by
 * field name, down to the model's feature vector. */
#ifndef SS_CODEC_H
#define SS_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

/* Why a record could not be decoded: the dead-letter reason. */
typedef enum {
    SS_DECODE_OK = 0,
    SS_DECODE_TOO_LARGE = -1,
    SS_DECODE_BAD_MAGIC = -2,
    SS_DECODE_UNKNOWN_SCHEMA = -3,
    SS_DECODE_BAD_AVRO = -4,
    SS_DECODE_NO_CUSTOMER_ID = -5,
    SS_DECODE_BAD_TYPE = -6,
    SS_DECODE_UNRESOLVABLE_SCHEMA = -7,  /* a fetched writer schema does not resolve */
    SS_DECODE_REGISTRY_UNAVAILABLE = -8, /* the registry could not be asked */
    SS_DECODE_UNKNOWN_CATEGORY = -9,     /* a category the model was not trained with
                                            (features.unseen.category = dead_letter) */
} ss_decode_rc_t;

const char *ss_decode_reason(int rc); /* stable short name, e.g. "bad_magic" */

/* Shared, immutable after creation: the reader schema, the writer schemas by id and,
 * for each, the plan that maps its fields to the reader's and to the features. */
typedef struct ss_codec ss_codec_t;

/* Per-thread decoding state (Avro values are reused across records). */
typedef struct ss_decoder ss_decoder_t;

/* One decoded event. Strings point into decoder memory, valid until the next decode. */
typedef struct ss_event {
    const char *customer_id;
    size_t customer_id_len;
    const char *event_id;
    size_t event_id_len;
    int64_t event_time; /* -1 when the schema has no event time field */
    int32_t schema_id;  /* -1 for raw framing */
} ss_event_t;

/* Build the codec for the model's features. Feature f is read from the reader field
 * named f, or renamed by features.rename. Errors (exit 2 material) name the key. */
ss_codec_t *ss_codec_new(const ss_config_t *cfg, char *const *features, size_t n_features,
                         char *errstr, size_t errlen);
void ss_codec_destroy(ss_codec_t *c);

/* As ss_codec_new, for records written with one known `writer` schema (e.g. the schema of
 * an Avro container file, named `what` in messages), read with ss_decoder_extract. */
struct avro_obj_t;
ss_codec_t *ss_codec_new_for_writer(const ss_config_t *cfg, char *const *features,
                                    size_t n_features, struct avro_obj_t *writer, const char *what,
                                    char *errstr, size_t errlen);
size_t ss_codec_n_features(const ss_codec_t *c);

/* A model's native categorical features, for the codec: per feature, 1 when it is
 * categorical (categorical NULL: none is) and the names of the categories it was trained
 * with (names[f] NULL: none known, the values are codes as they come: an enum's index). An
 * Avro enum symbol or string of such a feature becomes the index of its name;
 * `unseen` (ss_unseen_t, features.unseen.category) says what one not among them becomes. */
typedef struct ss_codec_cats {
    const unsigned char *categorical;
    char **const *names;
    const size_t *n_names;
    int unseen;
} ss_codec_cats_t;

/* ss_codec_new_for_writer (writer NULL: ss_codec_new) with the features' categories (cats
 * NULL: none). */
ss_codec_t *ss_codec_new_cats(const ss_config_t *cfg, char *const *features, size_t n_features,
                              const ss_codec_cats_t *cats, struct avro_obj_t *writer,
                              const char *what, char *errstr, size_t errlen);

/* With a registry (not owned; it must outlive the codec), schema ids neither configured nor
 * seen before are fetched from it while decoding, as ss_registry_fetch_permit allows; a
 * failed fetch is remembered for miss_ttl_ms. Call before any decoder is used. */
struct ss_registry;
struct ss_metrics;
void ss_codec_attach_registry(ss_codec_t *c, struct ss_registry *registry, long miss_ttl_ms,
                              struct ss_metrics *stats);

/* The ids the registry could not give are remembered (schema.registry.miss.ttl.ms) in a
 * table of this many entries; beyond it the ones that expire first are forgotten. */
#define SS_CODEC_MISS_CAP 1024

/* Ids remembered as missing now (at most SS_CODEC_MISS_CAP). @locks c's mutex briefly */
size_t ss_codec_miss_count(ss_codec_t *c);

/* A writer schema as the registry gives it (JSON text), read and resolved against the reader
 * as a fetched one is, then dropped: SS_DECODE_OK, SS_DECODE_UNRESOLVABLE_SCHEMA with errstr,
 * or SS_DECODE_REGISTRY_UNAVAILABLE when out of memory. For tests and the fuzz target. */
int ss_codec_check_fetched(ss_codec_t *c, const char *schema, char *errstr, size_t errlen);

/* A decoder of `c`; it may add writer plans to `c` (internally synchronized). */
ss_decoder_t *ss_decoder_new(ss_codec_t *c, char *errstr, size_t errlen);
void ss_decoder_destroy(ss_decoder_t *d);

/* Decode one value. Fills `ev` and `features` (n_features floats, NaN where the event
 * has no value). Returns SS_DECODE_OK or a negative ss_decode_rc_t with errstr.
 * @locality the thread that owns `d` */
int ss_decoder_decode(ss_decoder_t *d, const void *value, size_t len, ss_event_t *ev,
                      float *features, char *errstr, size_t errlen);

/* Bodies are read directly by default; 0 reads them through Avro C's generic reader
 * instead (the same results, slower: for tests). */
void ss_decoder_set_direct(ss_decoder_t *d, int direct);

/* The first record of `len` bytes of records of the codec's single writer schema
 * (ss_codec_new_for_writer), one after another as in an Avro container file's block: its
 * length in *used (0 when its structure does not fit: the rest cannot be split), decoded as
 * ss_decoder_decode decodes a value. SS_DECODE_OK or a negative ss_decode_rc_t with errstr. */
int ss_decoder_decode_next(ss_decoder_t *d, const void *data, size_t len, size_t *used,
                           ss_event_t *ev, float *features, char *errstr, size_t errlen);

/* Like ss_decoder_decode, for a record already read as a value of the codec's single
 * writer schema (ss_codec_new_for_writer). */
struct avro_value;
int ss_decoder_extract(ss_decoder_t *d, struct avro_value *rec, ss_event_t *ev, float *features,
                       char *errstr, size_t errlen);

/* The event field of each of the n model features: its own name, or the one features.rename
 * gives it. Returns 0 with *fields (n strings: ss_strv_free them), or SS_ERR_CONFIG with
 * errstr naming the key, or SS_ERR_NOMEM. */
int ss_codec_feature_fields(const ss_config_t *cfg, char *const *features, size_t n, char ***fields,
                            char *errstr, size_t errlen);

/* Load an Avro schema from a file; NULL with errstr naming `key`. */
struct avro_obj_t *ss_schema_load(const char *path, const char *key, char *errstr, size_t errlen);

/* Schema JSON text from outside (a registry's answer, a container file's header), read into
 * an Avro record schema in *out; `what` starts the message. Text Avro C would misread (not
 * JSON, nested too deep, a named type defined twice: it leaks what it parsed) is refused
 * before Avro C sees it. Returns 0, or SS_ERR_INVALID with errstr. */
struct avro_obj_t;
int ss_schema_from_text(const char *text, size_t len, const char *what, struct avro_obj_t **out,
                        char *errstr, size_t errlen);

/* A schema file's JSON (NULL with jerr). The defaults of input.schema and output.schema
 * ("schemas/customer_event.avsc", "schemas/prediction.avsc") are compiled in: such a path
 * that names no file from the current directory reads the compiled-in copy, so that the
 * defaults work from any directory. */
json_t *ss_schema_json(const char *path, json_error_t *jerr);

/* A generic Avro value of `schema` with its class, made and released together (a decoder's
 * per-schema value, the encoder's, a tool's). Returns 0, or SS_ERR_FAIL with *iface NULL and
 * the reason in avro_strerror(). */
struct avro_value_iface;
int ss_avro_value_new(struct avro_obj_t *schema, struct avro_value_iface **iface,
                      struct avro_value *value);
/* Release what ss_avro_value_new made; nothing when iface is NULL. */
void ss_avro_value_release(struct avro_value_iface *iface, struct avro_value *value);

#endif
