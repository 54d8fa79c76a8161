/* artifact.c - a model file's digest and signature, checked on the bytes that are loaded:
 * SHA-256 and Ed25519 through OpenSSL's libcrypto (EVP_Digest, EVP_DigestVerify). */
#include "artifact.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ED25519_SIG_LEN 64

int ss_artifact_read(const char *path, const char *what, const char *key, unsigned char **buf,
                     size_t *len, char *errstr, size_t errlen) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errlen, "cannot read %s '%s' (key %s): %s", what, path, key,
                 strerror(errno));
        return SS_ERR_CONFIG;
    }
    size_t cap = 1 << 16, n = 0, got;
    unsigned char *b = malloc(cap);
    int rc = SS_ERR_NOMEM;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    if (!b) {
        snprintf(errstr, errlen, "%s '%s' (key %s): out of memory", what, path, key);
    } else if (ferror(f)) {
        snprintf(errstr, errlen, "cannot read %s '%s' (key %s): %s", what, path, key,
                 strerror(errno));
        rc = SS_ERR_CONFIG;
    } else {
        *buf = b;
        *len = n;
        b = NULL;
        rc = 0;
    }
    free(b);
    fclose(f);
    return rc;
}

static void hex_of(const unsigned char *md, unsigned int n, char hex[65]) {
    hex[0] = '\0';
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

void ss_artifact_sha256(const void *buf, size_t len, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL))
        n = 0;
    hex_of(md, n, hex);
}

int ss_artifact_file_sha256(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t got;
    int ok = f && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    while (ok && (got = fread(buf, 1, sizeof(buf), f)) > 0)
        ok = EVP_DigestUpdate(ctx, buf, got);
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(ctx, md, &n);
    hex_of(md, ok ? n : 0, hex);
    EVP_MD_CTX_free(ctx);
    if (f)
        fclose(f);
    return ok ? 0 : SS_ERR_FAIL;
}

int ss_artifact_verify(const void *buf, size_t len, const char *sig_path, const char *key_path,
                       char *errstr, size_t errlen) {
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *ctx = NULL;
    int rc = SS_ERR_CONFIG;
    FILE *f = fopen(key_path, "r");
    if (f) {
        key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (!key || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
        snprintf(errstr, errlen, "model.signature.key '%s' is not %s", key_path,
                 f ? "a PEM Ed25519 public key" : "readable");
        goto out;
    }
    if ((rc = ss_artifact_read(sig_path, "model signature", "model.signature", &sig, &sig_len,
                               errstr, errlen)) < 0)
        goto out;
    rc = SS_ERR_CONFIG;
    if (sig_len != ED25519_SIG_LEN) {
        snprintf(errstr, errlen,
                 "model signature '%s' (key model.signature) has %zu bytes, not the 64 of an "
                 "Ed25519 signature",
                 sig_path, sig_len);
        goto out;
    }
    if (!(ctx = EVP_MD_CTX_new())) {
        snprintf(errstr, errlen, "model signature: out of memory");
        rc = SS_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1 ||
        EVP_DigestVerify(ctx, sig, sig_len, buf, len) != 1) {
        snprintf(errstr, errlen,
                 "model signature '%s' (key model.signature) does not verify with "
                 "model.signature.key '%s': the model file is not the one that was signed",
                 sig_path, key_path);
        goto out;
    }
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    free(sig);
    return rc;
}
