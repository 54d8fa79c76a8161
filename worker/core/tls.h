/* tls.h - client TLS with OpenSSL for the worker's own connections (Redis; Kafka and the
 * registry have librdkafka's and libcurl's). hiredis_ssl's helpers neither check the server's
 * name nor take a key's passphrase, so the context and each connection's SSL are made here. */
#ifndef SS_TLS_H
#define SS_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* What a client context is made of, and the configuration keys that name each part (for
 * messages). Empty or NULL strings: absent. */
typedef struct ss_tls_files {
    const char *ca_file;      /* CA certificates (PEM); absent: the system's */
    const char *cert_file;    /* client certificate chain (PEM); with key_file */
    const char *key_file;     /* its private key (PEM), maybe encrypted */
    const char *key_password; /* the key's passphrase: a secret, never in a message */
    const char *ca_key, *cert_key, *key_key, *password_key;
} ss_tls_files_t;

/* A client context that verifies the server's certificate (TLS 1.2 or later), with the client
 * certificate and key when given. Made once and shared by every connection: read-only after
 * this call (OpenSSL locks what it changes itself). Returns NULL with errstr naming the key
 * of the part that failed ("config: key 'redis.tls.ca.file': ..."): a configuration error. */
SSL_CTX *ss_tls_client_new(const ss_tls_files_t *f, char *errstr, size_t errlen);
void ss_tls_client_destroy(SSL_CTX *ctx);

/* A connection's SSL from `ctx`: the server's certificate must carry `name` (a DNS name, or an
 * IP address checked as one), which is also sent as SNI unless an IP address. The caller owns
 * it. NULL with errstr when out of memory. */
SSL *ss_tls_connection(SSL_CTX *ctx, const char *name, char *errstr, size_t errlen);

/* After a failed handshake on `ssl`, with `fallback` as what the connection library said:
 * 1 when retrying cannot help (the certificate was not trusted or does not carry the name, or
 * the server refused the handshake: a TLS alert or protocol error), the reason in `why`; 0
 * for an outage (the connection reset, closed or timed out mid-way). Clears the thread's
 * OpenSSL error queue. */
int ss_tls_handshake_refused(const SSL *ssl, const char *fallback, char *why, size_t whylen);

#endif
