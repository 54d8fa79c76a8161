/* test_tls.c - the client TLS context of Redis connections (worker/core/tls.c): made from a CA
 * file, a client certificate and a key that may be encrypted; each part that cannot be used is
 * a configuration error naming its key, never the key's passphrase. The certificates are made
 * here with OpenSSL, in a temporary directory: no key material is committed. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tls.h"

static char dir[64], err[1024];
static char ca_crt[128], client_crt[128], client_key[128], encrypted_key[128], other_key[128],
    not_pem[128];

#define PASSPHRASE "correct horse battery staple"

static EVP_PKEY *new_key(void) {
    return EVP_EC_gen("P-256");
}

/* A certificate for `cn` with `key`, signed by `issuer_key` (itself when NULL, a CA). */
static X509 *new_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key) {
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), issuer ? 2 : 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
    return x;
}

static void write_cert(const char *path, X509 *x) {
    FILE *f = fopen(path, "w");
    CHECK(f && PEM_write_X509(f, x) == 1);
    if (f)
        fclose(f);
}

static void write_key(const char *path, EVP_PKEY *k, const char *passphrase) {
    FILE *f = fopen(path, "w");
    const EVP_CIPHER *cipher = passphrase ? EVP_aes_256_cbc() : NULL;
    CHECK(f &&
          PEM_write_PKCS8PrivateKey(f, k, cipher, (char *)passphrase,
                                    passphrase ? (int)strlen(passphrase) : 0, NULL, NULL) == 1);
    if (f)
        fclose(f);
}

static void make_files(void) {
    snprintf(dir, sizeof(dir), "/tmp/ss-test-tls-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", dir);
    snprintf(client_crt, sizeof(client_crt), "%s/client.crt", dir);
    snprintf(client_key, sizeof(client_key), "%s/client.key", dir);
    snprintf(encrypted_key, sizeof(encrypted_key), "%s/client-encrypted.key", dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
    snprintf(not_pem, sizeof(not_pem), "%s/not.pem", dir);
    EVP_PKEY *ca_key = new_key(), *key = new_key(), *other = new_key();
    X509 *ca = new_cert("streamscore test CA", ca_key, NULL, NULL);
    X509 *client = new_cert("streamscore", key, ca, ca_key);
    write_cert(ca_crt, ca);
    write_cert(client_crt, client);
    write_key(client_key, key, NULL);
    write_key(encrypted_key, key, PASSPHRASE);
    write_key(other_key, other, NULL);
    FILE *f = fopen(not_pem, "w");
    if (f) {
        fputs("this is not PEM\n", f);
        fclose(f);
    }
    X509_free(ca);
    X509_free(client);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

static void remove_files(void) {
    const char *files[] = {ca_crt, client_crt, client_key, encrypted_key, other_key, not_pem};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
}

/* The Redis keys' names, with the files and passphrase given. */
static ss_tls_files_t files(const char *ca, const char *cert, const char *key, const char *pw) {
    return (ss_tls_files_t){ca,
                            cert,
                            key,
                            pw,
                            "redis.tls.ca.file",
                            "redis.tls.cert.file",
                            "redis.tls.key.file",
                            "redis.tls.key.password"};
}

/* ss_tls_client_new: 1 when a context was made (and destroyed again), 0 with err. */
static int made(ss_tls_files_t f) {
    err[0] = '\0';
    SSL_CTX *ctx = ss_tls_client_new(&f, err, sizeof(err));
    ss_tls_client_destroy(ctx);
    return ctx != NULL;
}

static void a_context_is_made_from_the_ca_alone_or_with_a_client_certificate(void) {
    CHECK(made(files(ca_crt, "", "", "")));
    CHECK(made(files(NULL, NULL, NULL, NULL))); /* the system's CAs */
    CHECK(made(files(ca_crt, client_crt, client_key, "")));
    CHECK(made(files(ca_crt, client_crt, encrypted_key, PASSPHRASE)));
}

static void an_unreadable_ca_file_names_redis_tls_ca_file(void) {
    CHECK(!made(files("/nonexistent/ca.crt", "", "", "")));
    CHECK_STR_CONTAINS(err, "config: key 'redis.tls.ca.file'");
    CHECK_STR_CONTAINS(err, "/nonexistent/ca.crt");
    CHECK_STR_CONTAINS(err, "No such file or directory");
    CHECK(!made(files(not_pem, "", "", "")));
    CHECK_STR_CONTAINS(err, "config: key 'redis.tls.ca.file'");
    CHECK_STR_CONTAINS(err, "no CA certificate");
}

static void a_certificate_without_its_key_or_with_another_names_both_keys(void) {
    CHECK(!made(files(ca_crt, client_crt, "", "")));
    CHECK_STR_CONTAINS(err, "'redis.tls.cert.file'");
    CHECK_STR_CONTAINS(err, "'redis.tls.key.file'");
    CHECK(!made(files(ca_crt, "", client_key, "")));
    CHECK_STR_CONTAINS(err, "'redis.tls.cert.file'");
    CHECK(!made(files(ca_crt, client_crt, other_key, "")));
    CHECK_STR_CONTAINS(err, "'redis.tls.cert.file' and 'redis.tls.key.file'");
    CHECK_STR_CONTAINS(err, "not the certificate's");
    CHECK(!made(files(ca_crt, client_crt, not_pem, "")));
    CHECK_STR_CONTAINS(err, "config: key 'redis.tls.key.file'");
    CHECK(!made(files(ca_crt, "/nonexistent/client.crt", client_key, "")));
    CHECK_STR_CONTAINS(err, "config: key 'redis.tls.cert.file'");
}

static void a_wrong_or_missing_passphrase_names_redis_tls_key_password_not_the_passphrase(void) {
    CHECK(!made(files(ca_crt, client_crt, encrypted_key, "wrong passphrase")));
    CHECK_STR_CONTAINS(err, "config: key 'redis.tls.key.password' does not decrypt");
    CHECK_STR_CONTAINS(err, encrypted_key);
    CHECK(!strstr(err, "wrong passphrase"));
    CHECK(!made(files(ca_crt, client_crt, encrypted_key, ""))); /* never a terminal prompt */
    CHECK_STR_CONTAINS(err, "config: key 'redis.tls.key.password' is empty");
}

static void a_connection_checks_a_host_name_or_an_ip_address(void) {
    ss_tls_files_t f = files(ca_crt, "", "", "");
    SSL_CTX *ctx = ss_tls_client_new(&f, err, sizeof(err));
    CHECK(ctx != NULL);
    if (!ctx)
        return;
    const char *names[] = {"redis.example", "127.0.0.1", "::1"};
    for (size_t i = 0; i < 3; i++) {
        SSL *ssl = ss_tls_connection(ctx, names[i], err, sizeof(err));
        CHECK(ssl != NULL);
        /* SNI for a name only: an address is never sent as one */
        const char *sni = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
        CHECK(i == 0 ? sni && strcmp(sni, names[i]) == 0 : sni == NULL);
        SSL_free(ssl);
    }
    ss_tls_client_destroy(ctx);
}

static const check_test_t tests[] = {
    {"a_context_is_made_from_the_ca_alone_or_with_a_client_certificate",
     a_context_is_made_from_the_ca_alone_or_with_a_client_certificate},
    {"an_unreadable_ca_file_names_redis_tls_ca_file",
     an_unreadable_ca_file_names_redis_tls_ca_file},
    {"a_certificate_without_its_key_or_with_another_names_both_keys",
     a_certificate_without_its_key_or_with_another_names_both_keys},
    {"a_wrong_or_missing_passphrase_names_redis_tls_key_password_not_the_passphrase",
     a_wrong_or_missing_passphrase_names_redis_tls_key_password_not_the_passphrase},
    {"a_connection_checks_a_host_name_or_an_ip_address",
     a_connection_checks_a_host_name_or_an_ip_address},
    {NULL, NULL}};

int main(void) {
    make_files();
    int rc = check_run_all(tests);
    remove_files();
    return rc;
}
