/* ocf.c - Avro object container files, read block by block (Avro 1.11 specification,
 * "Object Container Files"). */
#include "ocf.h"

#include <lzma.h>
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "error.h"

#define MAX_HEADER_ITEM (4u << 20) /* a metadata key or value: a schema is smaller */

enum { C_NULL, C_DEFLATE, C_SNAPPY, C_XZ, C_ZSTD };

struct ss_ocf {
    FILE *fp;
    long long size;
    const char *path;
    char *schema;
    size_t schema_len;
    int codec;
    char codec_name[32];
    unsigned char sync[16];
    unsigned char *raw, *out; /* a block as read, and decompressed */
    size_t raw_cap, out_cap;
    long long block; /* blocks read */
};

/* A zig-zag varint long from the file: 0, or -1 at its end or on a malformed one. */
static int read_long(FILE *fp, long long *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        int c = getc(fp);
        if (c == EOF)
            return -1;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = (long long)((v >> 1) ^ (~(v & 1) + 1));
            return 0;
        }
    }
    return -1;
}

static long long remaining(const ss_ocf_t *o) {
    long pos = ftell(o->fp);
    return pos < 0 ? 0 : o->size - pos;
}

/* A length-prefixed string of the header, at most `max` bytes: malloc'd, NUL-terminated. */
static char *read_item(ss_ocf_t *o, size_t max, size_t *len) {
    long long n;
    if (read_long(o->fp, &n) < 0 || n < 0 || (unsigned long long)n > max || n > remaining(o))
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, o->fp) != (size_t)n) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    *len = (size_t)n;
    return s;
}

static int set_codec(ss_ocf_t *o, const char *name, size_t len, char *err, size_t errlen) {
    static const char *names[] = {"null", "deflate", "snappy", "xz", "zstandard"};
    snprintf(o->codec_name, sizeof(o->codec_name), "%.*s", (int)(len < 31 ? len : 31), name);
    for (int i = 0; i < 5; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0) {
            o->codec = i;
            return 0;
        }
    snprintf(err, errlen,
             "'%s': its codec '%s' is not read (null, deflate, snappy, xz and zstandard are)",
             o->path, o->codec_name);
    return SS_ERR_CONFIG;
}

/* The metadata map: avro.schema and avro.codec kept, the rest skipped. */
static int read_metadata(ss_ocf_t *o, char *err, size_t errlen) {
    long long count;
    strcpy(o->codec_name, "null");
    for (;;) {
        if (read_long(o->fp, &count) < 0)
            goto bad;
        if (count == 0)
            break;
        if (count < 0) { /* a block with its byte size */
            long long bytes;
            if (count == INT64_MIN || read_long(o->fp, &bytes) < 0)
                goto bad;
            count = -count;
        }
        for (long long i = 0; i < count; i++) {
            size_t klen, vlen;
            char *k = read_item(o, MAX_HEADER_ITEM, &klen);
            char *v = k ? read_item(o, MAX_HEADER_ITEM, &vlen) : NULL;
            if (!v) {
                free(k);
                goto bad;
            }
            int rc = 0;
            if (strcmp(k, "avro.schema") == 0 && !o->schema) {
                o->schema = v, o->schema_len = vlen;
                v = NULL;
            } else if (strcmp(k, "avro.codec") == 0) {
                rc = set_codec(o, v, vlen, err, errlen);
            }
            free(k);
            free(v);
            if (rc < 0)
                return rc;
        }
    }
    if (!o->schema) {
        snprintf(err, errlen, "'%s': its header has no avro.schema", o->path);
        return SS_ERR_CONFIG;
    }
    return 0;
bad:
    snprintf(err, errlen, "'%s': its header is not an Avro container file's (truncated or corrupt)",
             o->path);
    return SS_ERR_CONFIG;
}

ss_ocf_t *ss_ocf_open(FILE *fp, long long size, const char *path, char *err, size_t errlen) {
    ss_ocf_t *o = ss_zalloc(sizeof(*o), "score-file", err, errlen);
    unsigned char magic[4];
    if (!o)
        return NULL;
    o->fp = fp, o->size = size, o->path = path;
    if (fread(magic, 1, 4, fp) != 4 || memcmp(magic, "Obj\x01", 4) != 0) {
        snprintf(err, errlen, "'%s' is not an Avro object container file (no 'Obj\\x01' magic)",
                 path);
        goto fail;
    }
    if (read_metadata(o, err, errlen) < 0)
        goto fail;
    if (fread(o->sync, 1, 16, fp) != 16) {
        snprintf(err, errlen, "'%s': its header ends before its sync marker", path);
        goto fail;
    }
    return o;
fail:
    ss_ocf_close(o);
    return NULL;
}

void ss_ocf_close(ss_ocf_t *o) {
    if (!o)
        return;
    free(o->schema);
    free(o->raw);
    free(o->out);
    free(o);
}

const char *ss_ocf_schema_text(const ss_ocf_t *o, size_t *len) {
    *len = o->schema_len;
    return o->schema;
}

const char *ss_ocf_codec(const ss_ocf_t *o) {
    return o->codec_name;
}

static int reserve(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    unsigned char *b = realloc(*buf, need);
    if (!b)
        return -1;
    *buf = b, *cap = need;
    return 0;
}

/* ------------------------------------------------------------------ codecs */

static int inflate_block(ss_ocf_t *o, const unsigned char *in, size_t n, size_t *len) {
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -15) != Z_OK)
        return -1;
    z.next_in = (unsigned char *)in, z.avail_in = (uInt)n;
    int rc = Z_OK;
    size_t used = 0;
    while (rc != Z_STREAM_END) {
        size_t want = o->out_cap ? o->out_cap * 2 : 1 << 16;
        if (used == o->out_cap &&
            (want > SS_OCF_MAX_BLOCK || reserve(&o->out, &o->out_cap, want) < 0))
            break;
        z.next_out = o->out + used, z.avail_out = (uInt)(o->out_cap - used);
        rc = inflate(&z, Z_NO_FLUSH);
        used = o->out_cap - z.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END)
            break;
        if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0)
            break; /* the input ended before the stream did */
    }
    inflateEnd(&z);
    *len = used;
    return rc == Z_STREAM_END ? 0 : -1;
}

static int snappy_block(ss_ocf_t *o, const unsigned char *in, size_t n, size_t *len) {
    size_t out = 0;
    if (n < 4 || snappy_uncompressed_length((const char *)in, n - 4, &out) != SNAPPY_OK ||
        out > SS_OCF_MAX_BLOCK || reserve(&o->out, &o->out_cap, out + 1) < 0 ||
        snappy_uncompress((const char *)in, n - 4, (char *)o->out, &out) != SNAPPY_OK)
        return -1;
    const unsigned char *c = in + n - 4; /* the CRC-32 of the uncompressed data, big-endian */
    uint32_t want = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
    *len = out;
    return (uint32_t)crc32(0, o->out, (uInt)out) == want ? 0 : -1;
}

static int xz_block(ss_ocf_t *o, const unsigned char *in, size_t n, size_t *len) {
    lzma_stream z = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&z, 256u << 20, 0) != LZMA_OK)
        return -1;
    z.next_in = in, z.avail_in = n;
    lzma_ret rc = LZMA_OK;
    size_t used = 0;
    while (rc == LZMA_OK) {
        size_t want = o->out_cap ? o->out_cap * 2 : 1 << 16;
        if (used == o->out_cap &&
            (want > SS_OCF_MAX_BLOCK || reserve(&o->out, &o->out_cap, want) < 0))
            break;
        z.next_out = o->out + used, z.avail_out = o->out_cap - used;
        rc = lzma_code(&z, LZMA_FINISH);
        used = o->out_cap - z.avail_out;
    }
    lzma_end(&z);
    *len = used;
    return rc == LZMA_STREAM_END ? 0 : -1;
}

static int zstd_block(ss_ocf_t *o, const unsigned char *in, size_t n, size_t *len) {
    ZSTD_DStream *z = ZSTD_createDStream();
    ZSTD_inBuffer ib = {in, n, 0};
    size_t rc = z ? ZSTD_initDStream(z) : 1, used = 0;
    int ok = z && !ZSTD_isError(rc);
    while (ok) {
        size_t want = o->out_cap ? o->out_cap * 2 : 1 << 16;
        if (used == o->out_cap &&
            (want > SS_OCF_MAX_BLOCK || reserve(&o->out, &o->out_cap, want) < 0)) {
            ok = 0;
            break;
        }
        ZSTD_outBuffer ob = {o->out, o->out_cap, used};
        rc = ZSTD_decompressStream(z, &ob, &ib);
        used = ob.pos;
        if (ZSTD_isError(rc))
            ok = 0;
        else if (rc == 0)
            break; /* a frame ended */
        else if (ib.pos == ib.size && ob.pos < ob.size)
            ok = 0; /* the input ended inside a frame */
    }
    ZSTD_freeDStream(z);
    *len = used;
    return ok && ib.pos == ib.size ? 0 : -1;
}

/* ------------------------------------------------------------------ blocks */

static int corrupt(ss_ocf_t *o, const char *what, char *err, size_t errlen) {
    snprintf(err, errlen, "'%s': block %lld: %s; the file cannot be read on", o->path, o->block + 1,
             what);
    return SS_ERR_FAIL;
}

int ss_ocf_next_block(ss_ocf_t *o, const unsigned char **data, size_t *len, long long *count,
                      char *err, size_t errlen) {
    long long n, size;
    int c = getc(o->fp);
    if (c == EOF)
        return 0;
    ungetc(c, o->fp);
    if (read_long(o->fp, &n) < 0 || read_long(o->fp, &size) < 0)
        return corrupt(o, "its header is truncated", err, errlen);
    if (n < 0 || size < 0 || size > remaining(o) - 16 ||
        (unsigned long long)size > SS_OCF_MAX_BLOCK)
        return corrupt(o, "its record count or size is out of range", err, errlen);
    if (reserve(&o->raw, &o->raw_cap, (size_t)size + 1) < 0)
        return corrupt(o, "out of memory", err, errlen);
    unsigned char sync[16];
    if (fread(o->raw, 1, (size_t)size, o->fp) != (size_t)size || fread(sync, 1, 16, o->fp) != 16)
        return corrupt(o, "truncated", err, errlen);
    if (memcmp(sync, o->sync, 16) != 0)
        return corrupt(o, "its sync marker is not the header's", err, errlen);
    size_t out = (size_t)size;
    int rc = 0;
    switch (o->codec) {
    case C_NULL: *data = o->raw; break;
    case C_DEFLATE: rc = inflate_block(o, o->raw, (size_t)size, &out); break;
    case C_SNAPPY: rc = snappy_block(o, o->raw, (size_t)size, &out); break;
    case C_XZ: rc = xz_block(o, o->raw, (size_t)size, &out); break;
    default: rc = zstd_block(o, o->raw, (size_t)size, &out); break;
    }
    if (rc < 0)
        return corrupt(o, "it does not decompress", err, errlen);
    if (o->codec != C_NULL)
        *data = o->out;
    /* every record takes a byte at least (its customer id's length) */
    if ((unsigned long long)n > out)
        return corrupt(o, "it claims more records than it has bytes", err, errlen);
    o->block++;
    *len = out;
    *count = n;
    return 1;
}
