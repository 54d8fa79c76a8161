/* file_in.c - score-file's readers: Avro container files block by block (ocf.c), each record
 * checked and decoded by the codec as a Kafka value is; JSON lines through jansson into a
 * value of input.schema, read by the codec's extract. */
#include "file_in.h"

#include <avro.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "ocf.h"

struct ss_file_in {
    const ss_config_t *cfg;
    const char *path;
    int format;
    FILE *fp;
    long long size;
    ss_ocf_t *ocf;
    const unsigned char *block; /* the block being read: its records from `at` on */
    size_t block_len, at;
    long long block_left; /* records of the block not read yet */
    int block_bad;        /* a record of the block did not fit: the rest cannot be split */
    avro_schema_t schema; /* the writer's (Avro) or input.schema (JSON lines) */
    avro_value_iface_t *iface;
    avro_value_t value; /* JSON lines only */
    ss_codec_t *codec;
    ss_decoder_t *dec;
    char *line;
    size_t line_cap;
    int ended; /* the end was reached: Avro C's reader must not be read again */
};

int ss_file_format_of(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot)
        return -1;
    if (strcmp(dot, ".avro") == 0)
        return SS_FILE_AVRO;
    if (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".ndjson") == 0 || strcmp(dot, ".json") == 0)
        return SS_FILE_JSON;
    return -1;
}

static int open_avro(ss_file_in_t *in, char *err, size_t errlen) {
    char what[1024];
    size_t len;
    if (!(in->ocf = ss_ocf_open(in->fp, in->size, in->path, err, errlen)))
        return SS_ERR_CONFIG;
    const char *text = ss_ocf_schema_text(in->ocf, &len);
    snprintf(what, sizeof(what), "--input '%s': its schema", in->path);
    return ss_schema_from_text(text, len, what, &in->schema, err, errlen) < 0 ? SS_ERR_CONFIG : 0;
}

static int open_json(ss_file_in_t *in, char *err, size_t errlen) {
    in->schema = ss_schema_load(in->cfg->input_schema, "input.schema", err, errlen);
    return in->schema ? 0 : SS_ERR_CONFIG;
}

ss_file_in_t *ss_file_in_open(const ss_config_t *cfg, const ss_model_t *model, const char *path,
                              int format, int *why, char *err, size_t errlen) {
    ss_file_in_t *in = ss_zalloc(sizeof(*in), "score-file", err, errlen);
    struct stat st;
    *why = SS_ERR_CONFIG;
    if (!in)
        return NULL;
    in->cfg = cfg;
    in->path = path;
    in->format = format;
    if (stat(path, &st) != 0 || S_ISDIR(st.st_mode) || !(in->fp = fopen(path, "rb"))) {
        snprintf(err, errlen, "--input '%s': %s", path, errno ? strerror(errno) : "is a directory");
        goto fail;
    }
    in->size = (long long)st.st_size;
    if ((format == SS_FILE_AVRO ? open_avro(in, err, errlen) : open_json(in, err, errlen)) < 0)
        goto fail;
    ss_codec_cats_t cats;
    ss_model_codec_cats(model, cfg->features_unseen_category, &cats);
    char cerr[1024];
    if (!(in->codec = ss_codec_new_cats(cfg, model->feature_names, model->n_features, &cats,
                                        in->schema, path, cerr, sizeof(cerr)))) {
        snprintf(err, errlen, "--input '%s': its schema does not match input.schema '%s': %s", path,
                 cfg->input_schema, cerr);
        goto fail;
    }
    /* the value a JSON line is made into; a container's records are decoded from their bytes */
    if (format == SS_FILE_JSON && ss_avro_value_new(in->schema, &in->iface, &in->value) < 0) {
        snprintf(err, errlen, "--input '%s': %s", path, avro_strerror());
        goto fail;
    }
    if (!(in->dec = ss_decoder_new(in->codec, err, errlen)))
        goto fail;
    return in;
fail:
    ss_file_in_close(in);
    return NULL;
}

void ss_file_in_close(ss_file_in_t *in) {
    if (!in)
        return;
    ss_decoder_destroy(in->dec);
    ss_avro_value_release(in->iface, &in->value);
    ss_codec_destroy(in->codec);
    ss_ocf_close(in->ocf);
    if (in->schema)
        avro_schema_decref(in->schema);
    if (in->fp)
        fclose(in->fp);
    free(in->line);
    free(in);
}

double ss_file_in_fraction(const ss_file_in_t *in) {
    long pos = in->ended ? in->size : in->fp ? ftell(in->fp) : 0;
    return in->size > 0 && pos > 0 ? (double)pos / (double)in->size : 0;
}

/* ------------------------------------------------------------------ JSON -> Avro value */

/* The JSON value `j` (NULL: absent) into Avro value `v` of schema `t`. 0, or -1 with err. */
static int set_value(avro_value_t *v, avro_schema_t t, json_t *j, const char *name, char *err,
                     size_t errlen) {
    if (is_avro_union(t)) {
        size_t n = avro_schema_union_size(t);
        for (int pass = 0; pass < 2; pass++) /* the null branch first for null, then the rest */
            for (size_t b = 0; b < n; b++) {
                avro_schema_t bt = avro_schema_union_branch(t, (int)b);
                int is_null = is_avro_null(bt);
                if ((pass == 0) != (!j || json_is_null(j)) || (pass == 0 && !is_null) ||
                    (pass == 1 && is_null))
                    continue;
                avro_value_t branch;
                char berr[8];
                if (avro_value_set_branch(v, (int)b, &branch) == 0 &&
                    set_value(&branch, bt, j, name, berr, sizeof(berr)) == 0)
                    return 0;
            }
        snprintf(err, errlen, "field '%s': %s fits no branch of its union", name,
                 !j ? "absent" : "the value");
        return -1;
    }
    switch (avro_typeof(t)) {
    case AVRO_NULL:
        if (!j || json_is_null(j))
            return avro_value_set_null(v) == 0 ? 0 : -1;
        break;
    case AVRO_BOOLEAN:
        if (json_is_boolean(j))
            return avro_value_set_boolean(v, json_is_true(j)) == 0 ? 0 : -1;
        break;
    case AVRO_INT32:
        if (json_is_integer(j) && json_integer_value(j) >= INT32_MIN &&
            json_integer_value(j) <= INT32_MAX)
            return avro_value_set_int(v, (int32_t)json_integer_value(j)) == 0 ? 0 : -1;
        break;
    case AVRO_INT64:
        if (json_is_integer(j))
            return avro_value_set_long(v, json_integer_value(j)) == 0 ? 0 : -1;
        break;
    case AVRO_FLOAT:
        if (json_is_number(j))
            return avro_value_set_float(v, (float)json_number_value(j)) == 0 ? 0 : -1;
        break;
    case AVRO_DOUBLE:
        if (json_is_number(j))
            return avro_value_set_double(v, json_number_value(j)) == 0 ? 0 : -1;
        break;
    case AVRO_STRING:
        if (json_is_string(j))
            return avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1) ==
                           0
                       ? 0
                       : -1;
        break;
    case AVRO_ENUM:
        if (json_is_string(j)) {
            int sym = avro_schema_enum_get_by_name(t, json_string_value(j));
            if (sym >= 0)
                return avro_value_set_enum(v, sym) == 0 ? 0 : -1;
            snprintf(err, errlen, "field '%s': '%s' is not a symbol of its enum", name,
                     json_string_value(j));
            return -1;
        }
        break;
    default:
        if (!j || json_is_null(j))
            break;
        snprintf(err, errlen, "field '%s': its Avro type is not read from JSON lines", name);
        return -1;
    }
    snprintf(err, errlen, "field '%s': %s", name,
             !j ? "absent, and not nullable" : "a JSON value of another type than its schema's");
    return -1;
}

/* One line into in->value; the reason of a record that cannot be read. */
static const char *json_record(ss_file_in_t *in, const char *line, size_t len, char *err,
                               size_t errlen) {
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *reason = NULL;
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "not a JSON object: %s", obj ? "another JSON value" : jerr.text);
        json_decref(obj);
        return "bad_json";
    }
    avro_value_reset(&in->value);
    size_t n = avro_schema_record_size(in->schema);
    for (size_t i = 0; i < n && !reason; i++) {
        const char *name = avro_schema_record_field_name(in->schema, (int)i);
        avro_value_t field;
        json_t *j = json_object_get(obj, name);
        if (avro_value_get_by_index(&in->value, i, &field, NULL) != 0 ||
            set_value(&field, avro_schema_record_field_get_by_index(in->schema, (int)i), j, name,
                      err, errlen) < 0)
            reason = (!j || json_is_null(j)) && strcmp(name, in->cfg->customer_id_field) == 0
                         ? "no_customer_id"
                         : "bad_type";
    }
    json_decref(obj);
    return reason;
}

/* ------------------------------------------------------------------ next */

/* The next record of the container: from the block in hand, or the next block. */
static int next_avro(ss_file_in_t *in, ss_event_t *ev, float *features, int *rc,
                     const char **reason, char *err, size_t errlen) {
    while (in->block_left == 0) {
        int got =
            ss_ocf_next_block(in->ocf, &in->block, &in->block_len, &in->block_left, err, errlen);
        if (got <= 0) {
            in->ended = got == 0;
            return got;
        }
        in->at = 0;
        in->block_bad = 0;
    }
    in->block_left--;
    if (in->block_bad) {
        snprintf(err, errlen,
                 "an earlier record of its block did not match the writer schema: "
                 "the block's later records cannot be told apart");
        *rc = SS_DECODE_BAD_AVRO;
        *reason = ss_decode_reason(*rc);
        return 1;
    }
    size_t used;
    *rc = ss_decoder_decode_next(in->dec, in->block + in->at, in->block_len - in->at, &used, ev,
                                 features, err, errlen);
    in->at += used;
    in->block_bad = used == 0;
    if (*rc != SS_DECODE_OK)
        *reason = ss_decode_reason(*rc);
    return 1;
}

int ss_file_in_next(ss_file_in_t *in, ss_event_t *ev, float *features, int *rc, const char **reason,
                    char *err, size_t errlen) {
    *reason = NULL;
    if (in->ended)
        return 0;
    if (in->format == SS_FILE_AVRO)
        return next_avro(in, ev, features, rc, reason, err, errlen);
    {
        ssize_t len;
        do {
            errno = 0;
            len = getline(&in->line, &in->line_cap, in->fp);
            if (len < 0) {
                if (errno) {
                    snprintf(err, errlen, "--input '%s': %s", in->path, strerror(errno));
                    return SS_ERR_FAIL;
                }
                return 0;
            }
            while (len > 0 && (in->line[len - 1] == '\n' || in->line[len - 1] == '\r'))
                len--;
        } while (len == 0); /* blank lines are not records */
        if ((*reason = json_record(in, in->line, (size_t)len, err, errlen))) {
            *rc = SS_DECODE_BAD_TYPE;
            return 1;
        }
    }
    *rc = ss_decoder_extract(in->dec, &in->value, ev, features, err, errlen);
    if (*rc != SS_DECODE_OK)
        *reason = ss_decode_reason(*rc);
    return 1;
}
