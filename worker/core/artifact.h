/* artifact.h - what proves a model file is the one meant to serve: its SHA-256 (recorded in
 * its card as model_sha256, and by a rollout) and, when a public key is configured, an Ed25519
 * signature of its bytes (libcrypto). The checks run on the bytes that are then loaded, so
 * a file replaced meanwhile cannot slip between check and load. */
#ifndef SS_ARTIFACT_H
#define SS_ARTIFACT_H

#include <stddef.h>

#include "error.h"

/* The whole of file `path` (`what` and the config key `key` that names it, in errors) into a
 * malloc'ed *buf of *len bytes. Returns 0, SS_ERR_CONFIG with errstr (cannot be read), or
 * SS_ERR_NOMEM. */
int ss_artifact_read(const char *path, const char *what, const char *key, unsigned char **buf,
                     size_t *len, char *errstr, size_t errlen);

/* The lower-case hex SHA-256 of `len` bytes into hex (65 bytes with the NUL). */
void ss_artifact_sha256(const void *buf, size_t len, char hex[65]);

/* The lower-case hex SHA-256 of file `path`'s content. Returns 0 or SS_ERR_FAIL. */
int ss_artifact_file_sha256(const char *path, char hex[65]);

/* Whether sig_path holds an Ed25519 signature of the `len` bytes by the key whose public half
 * is in PEM file key_path (as `openssl pkeyutl -sign -rawin -inkey KEY -in FILE -out SIG`
 * writes it: 64 raw bytes). Returns 0 when it verifies; SS_ERR_CONFIG with errstr naming the
 * key model.signature or model.signature.key (no signature file, not a signature, a key that is
 * not an Ed25519 public key, a signature that does not verify); SS_ERR_NOMEM. */
int ss_artifact_verify(const void *buf, size_t len, const char *sig_path, const char *key_path,
                       char *errstr, size_t errlen);

#endif
