/* file_out.c - score-file's outputs: Avro container files through Avro C's writer of encoded
 * records, JSON lines through stdio, a topic through the producer; files under a temporary
 * name until they are complete. */
#include "file_out.h"

#include <avro.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "error.h"

struct ss_file_out {
    int format;
    char *path, *tmp;
    FILE *fp;
    avro_file_writer_t writer;
    ss_producer_t *producer;
    char *topic;
    ss_ack_t ack;
    int has_ack;
};

/* DIR/.NAME.partial-PID for DIR/NAME */
static char *temp_name(const char *path) {
    char *a = strdup(path), *b = strdup(path);
    char *out = NULL;
    if (a && b) {
        const char *dir = dirname(a), *base = basename(b);
        size_t len = strlen(dir) + strlen(base) + 48;
        if ((out = malloc(len)))
            snprintf(out, len, "%s/.%s.partial-%ld", dir, base, (long)getpid());
    }
    free(a);
    free(b);
    return out;
}

ss_file_out_t *ss_file_out_open(const ss_config_t *cfg, const char *path, int format,
                                const char *codec, char *err, size_t errlen) {
    ss_file_out_t *o = ss_zalloc(sizeof(*o), "score-file", err, errlen);
    if (!o)
        return NULL;
    o->format = format;
    if (!(o->path = strdup(path)) || !(o->tmp = temp_name(path))) {
        snprintf(err, errlen, "score-file: out of memory");
        goto fail;
    }
    if (format != SS_OUT_AVRO) {
        if (!(o->fp = fopen(o->tmp, "w"))) {
            snprintf(err, errlen, "'%s': cannot write beside it: %s", path, strerror(errno));
            goto fail;
        }
        return o;
    }
    avro_schema_t schema = ss_schema_load(cfg->output_schema, "output.schema", err, errlen);
    if (!schema)
        goto fail;
    int rc =
        avro_file_writer_create_with_codec(o->tmp, schema, &o->writer, codec ? codec : "null", 0);
    avro_schema_decref(schema);
    if (rc != 0) {
        snprintf(err, errlen, "'%s': cannot write it with codec '%s': %s", path,
                 codec ? codec : "null", avro_strerror());
        o->writer = NULL;
        goto fail;
    }
    return o;
fail:
    ss_file_out_abort(o);
    return NULL;
}

ss_file_out_t *ss_file_out_topic(ss_producer_t *producer, const char *topic, char *err,
                                 size_t errlen) {
    ss_file_out_t *o = ss_zalloc(sizeof(*o), "score-file", err, errlen);
    if (!o)
        return NULL;
    o->producer = producer;
    if (!(o->topic = strdup(topic))) {
        free(o);
        snprintf(err, errlen, "score-file: out of memory");
        return NULL;
    }
    ss_ack_init(&o->ack);
    o->has_ack = 1;
    return o;
}

int ss_file_out_write(ss_file_out_t *o, const void *buf, size_t len, const char *key, size_t keylen,
                      char *err, size_t errlen) {
    if (o->producer)
        return ss_producer_send(o->producer, o->topic, RD_KAFKA_PARTITION_UA, key, keylen, buf, len,
                                NULL, 0, NULL, &o->ack, err, errlen);
    if (o->writer) {
        if (avro_file_writer_append_encoded(o->writer, buf, (int64_t)len) == 0)
            return 0;
        snprintf(err, errlen, "'%s': %s", o->tmp, avro_strerror());
        return SS_ERR_FAIL;
    }
    if (fwrite(buf, 1, len, o->fp) == len && fputc('\n', o->fp) != EOF)
        return 0;
    snprintf(err, errlen, "'%s': %s", o->tmp, strerror(errno));
    return SS_ERR_FAIL;
}

static void destroy(ss_file_out_t *o) {
    if (o->has_ack)
        ss_ack_destroy(&o->ack);
    free(o->path);
    free(o->tmp);
    free(o->topic);
    free(o);
}

static int sync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

int ss_file_out_finish(ss_file_out_t *o, char *err, size_t errlen) {
    int rc = 0;
    if (o->producer) {
        while (ss_ack_wait(&o->ack, 1000) > 0)
            ;
        if (o->ack.failed) {
            snprintf(err, errlen, "--output-topic '%s': %ld records not delivered: %s", o->topic,
                     o->ack.failed, rd_kafka_err2str(o->ack.first_err));
            rc = SS_ERR_FAIL;
        }
        destroy(o);
        return rc;
    }
    if (o->writer) {
        rc = avro_file_writer_close(o->writer) == 0 ? 0 : SS_ERR_FAIL;
        o->writer = NULL;
    } else {
        rc = fflush(o->fp) == 0 && fsync(fileno(o->fp)) == 0 ? 0 : SS_ERR_FAIL;
        rc = fclose(o->fp) == 0 ? rc : SS_ERR_FAIL;
        o->fp = NULL;
    }
    if (rc == 0 && (sync_path(o->tmp) < 0 || rename(o->tmp, o->path) != 0))
        rc = SS_ERR_FAIL;
    if (rc < 0) {
        snprintf(err, errlen, "'%s': cannot be completed: %s", o->path, strerror(errno));
        unlink(o->tmp);
    } else {
        char *d = strdup(o->path);
        if (d) {
            sync_path(dirname(d)); /* the rename itself made durable */
            free(d);
        }
    }
    destroy(o);
    return rc;
}

void ss_file_out_abort(ss_file_out_t *o) {
    if (!o)
        return;
    if (o->producer) {
        ss_ack_wait(&o->ack, 5000);
        destroy(o);
        return;
    }
    if (o->writer)
        avro_file_writer_close(o->writer);
    if (o->fp)
        fclose(o->fp);
    if (o->tmp)
        unlink(o->tmp);
    destroy(o);
}
