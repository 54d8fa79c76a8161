/* ocf.h - an Avro object container file read block by block without trusting it: the header
 * (magic, metadata, sync marker) and each block's record count and size are checked against
 * what the file holds before anything is allocated for them, and a block is decompressed into
 * a bounded buffer (codecs null, deflate, snappy, xz, zstandard). The records of a block are
 * the caller's to split (ss_decoder_decode_next), so that no length a record claims is
 * believed before it is checked. */
#ifndef SS_OCF_H
#define SS_OCF_H

#include <stddef.h>
#include <stdio.h>

/* The largest block, decompressed, that is read (a larger one is a corrupt file). */
#define SS_OCF_MAX_BLOCK (256u << 20)

typedef struct ss_ocf ss_ocf_t;

/* Read the header of the container at `fp` (not owned; `size` its length, `path` for
 * messages). Returns NULL with errstr when it is not a container file streamscore reads. */
ss_ocf_t *ss_ocf_open(FILE *fp, long long size, const char *path, char *errstr, size_t errlen);
void ss_ocf_close(ss_ocf_t *o);

/* The writer schema's JSON text (NUL-terminated) and the codec's name. */
const char *ss_ocf_schema_text(const ss_ocf_t *o, size_t *len);
const char *ss_ocf_codec(const ss_ocf_t *o);

/* The next block, decompressed: 1 with *data (valid until the next call), *len and *count
 * records; 0 at the end of the file; SS_ERR_FAIL with errstr when the file is corrupt from
 * there on (a block's count or size out of range, a wrong sync marker, a block that does not
 * decompress). */
int ss_ocf_next_block(ss_ocf_t *o, const unsigned char **data, size_t *len, long long *count,
                      char *errstr, size_t errlen);

#endif
