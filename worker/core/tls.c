/* tls.c - client TLS contexts and connections with OpenSSL: the server's certificate verified
 * against the given CAs (or the system's) and its name checked; a client certificate with a
 * key that may be encrypted. Every failure names the configuration key to check, and never
 * the key's passphrase. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static int given(const char *s) {
    return s && *s;
}

/* The reason of the last OpenSSL error of this thread ("no start line", "bad decrypt", ...),
 * or `none`; the thread's error queue cleared. */
static const char *ssl_reason(char *buf, size_t len, const char *none) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : e ? "unknown OpenSSL error" : none);
    ERR_clear_error();
    return buf;
}

/* 0 when `path` can be opened for reading, else -1 with errstr naming `key`. */
static int readable(const char *key, const char *path, char *errstr, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errlen, "config: key '%s': cannot read '%s': %s", key, path,
                 strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* The key's passphrase, handed to OpenSSL while the key is read (never a prompt). */
typedef struct passphrase {
    const char *password;
    int asked; /* the key is encrypted */
} passphrase_t;

static int give_passphrase(char *buf, int size, int rwflag, void *userdata) {
    (void)rwflag;
    passphrase_t *p = userdata;
    if (!p)
        return 0; /* after start-up: nothing to give, and no terminal to ask */
    p->asked = 1;
    size_t n = given(p->password) ? strlen(p->password) : 0;
    if (n > (size_t)size)
        return 0;
    memcpy(buf, p->password, n);
    return (int)n;
}

static int load_ca(SSL_CTX *ctx, const ss_tls_files_t *f, char *errstr, size_t errlen) {
    char why[256];
    if (!given(f->ca_file)) {
        if (SSL_CTX_set_default_verify_paths(ctx) == 1)
            return 0;
        snprintf(errstr, errlen,
                 "config: key '%s' is empty and the system's CAs cannot be read: %s", f->ca_key,
                 ssl_reason(why, sizeof(why), "?"));
        return -1;
    }
    if (readable(f->ca_key, f->ca_file, errstr, errlen) < 0)
        return -1;
    if (SSL_CTX_load_verify_locations(ctx, f->ca_file, NULL) != 1) {
        snprintf(errstr, errlen, "config: key '%s': no CA certificate (PEM) in '%s': %s", f->ca_key,
                 f->ca_file, ssl_reason(why, sizeof(why), "?"));
        return -1;
    }
    return 0;
}

/* The client certificate and its key, checked against each other. */
static int load_client(SSL_CTX *ctx, const ss_tls_files_t *f, char *errstr, size_t errlen) {
    char why[256];
    if (!given(f->cert_file) != !given(f->key_file)) {
        snprintf(errstr, errlen, "config: keys '%s' and '%s' go together: '%s' is empty",
                 f->cert_key, f->key_key, given(f->cert_file) ? f->key_key : f->cert_key);
        return -1;
    }
    if (!given(f->cert_file))
        return 0;
    if (readable(f->cert_key, f->cert_file, errstr, errlen) < 0 ||
        readable(f->key_key, f->key_file, errstr, errlen) < 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(ctx, f->cert_file) != 1) {
        snprintf(errstr, errlen, "config: key '%s': no certificate (PEM) in '%s': %s", f->cert_key,
                 f->cert_file, ssl_reason(why, sizeof(why), "?"));
        return -1;
    }
    passphrase_t pass = {f->key_password, 0};
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &pass);
    int loaded = SSL_CTX_use_PrivateKey_file(ctx, f->key_file, SSL_FILETYPE_PEM) == 1;
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    /* a key that is not the certificate's is refused while it is read, or by the check */
    int other = !loaded && ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    if (!other && loaded && SSL_CTX_check_private_key(ctx) != 1)
        other = 1;
    if (other)
        snprintf(errstr, errlen,
                 "config: keys '%s' and '%s': the private key in '%s' is not the certificate's "
                 "in '%s': %s",
                 f->cert_key, f->key_key, f->key_file, f->cert_file,
                 ssl_reason(why, sizeof(why), "?"));
    else if (!loaded && pass.asked)
        snprintf(errstr, errlen, "config: key '%s' %s the encrypted private key in '%s' (%s): %s",
                 f->password_key, given(f->key_password) ? "does not decrypt" : "is empty for",
                 f->key_file, f->key_key, ssl_reason(why, sizeof(why), "?"));
    else if (!loaded)
        snprintf(errstr, errlen, "config: key '%s': no private key (PEM) in '%s': %s", f->key_key,
                 f->key_file, ssl_reason(why, sizeof(why), "?"));
    else
        return 0;
    return -1;
}

SSL_CTX *ss_tls_client_new(const ss_tls_files_t *f, char *errstr, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        char why[256];
        snprintf(errstr, errlen, "tls: cannot make a client context: %s",
                 ssl_reason(why, sizeof(why), "out of memory"));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, give_passphrase);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    if (load_ca(ctx, f, errstr, errlen) < 0 || load_client(ctx, f, errstr, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void ss_tls_client_destroy(SSL_CTX *ctx) {
    SSL_CTX_free(ctx);
}

SSL *ss_tls_connection(SSL_CTX *ctx, const char *name, char *errstr, size_t errlen) {
    unsigned char addr[sizeof(struct in6_addr)];
    int ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    SSL *ssl = SSL_new(ctx);
    int ok = ssl != NULL;
    if (ok && ip) /* an address is checked against the certificate's IP addresses; no SNI */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    else if (ok)
        ok = SSL_set1_host(ssl, name) == 1 && SSL_set_tlsext_host_name(ssl, name) == 1;
    if (!ok) {
        char why[256];
        snprintf(errstr, errlen, "tls: cannot prepare a connection to '%s': %s", name,
                 ssl_reason(why, sizeof(why), "out of memory"));
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

int ss_tls_handshake_refused(const SSL *ssl, const char *fallback, char *why, size_t whylen) {
    long verify = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_last_error();
    if (verify != X509_V_OK)
        snprintf(why, whylen, "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
    else if (e)
        snprintf(why, whylen, "handshake failed: %s",
                 ERR_reason_error_string(e) ? ERR_reason_error_string(e) : fallback);
    else
        snprintf(why, whylen, "%s", fallback);
    ERR_clear_error();
    return verify != X509_V_OK || e != 0;
}
