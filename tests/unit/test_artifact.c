/* test_artifact.c - a model file is served only when it is the one meant (core/artifact.c,
 * core/model.c): its card's model_sha256 must be its SHA-256, and with model.signature.key set
 * its bytes must carry a valid Ed25519 signature by that key. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <unistd.h>

#include "artifact.h"
#include "check.h"
#include "config.h"
#include "error.h"
#include "model.h"

#define MODEL "models/churn-1.0.0.json"
#define CARD "models/churn-1.0.0.card.json"

static char err[1024];
static char dir[] = "/tmp/test_artifact_XXXXXX";

static unsigned char *slurp(const char *path, size_t *len) {
    unsigned char *b = NULL;
    if (ss_artifact_read(path, "file", "none", &b, len, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return b;
}

static void spill(const char *path, const void *b, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* dir/name, in a static buffer of its own per call site's index. */
static const char *in_dir(int i, const char *name) {
    static char paths[8][256];
    snprintf(paths[i], sizeof(paths[i]), "%s/%s", dir, name);
    return paths[i];
}

static ss_model_t *open_with(const char *model, const char *extra) {
    ss_config_t *c = ss_config_new();
    char text[2048];
    snprintf(text, sizeof(text),
             "model.path = %s\nmodel.card = " CARD "\nkafka.bootstrap.servers = x:1\n%s", model,
             extra);
    ss_model_t *m = NULL;
    err[0] = '\0';
    if (ss_config_load_string(c, text, strlen(text), "t", err, sizeof(err)) < 0 ||
        ss_config_finalize(c, err, sizeof(err)) < 0)
        fprintf(stderr, "config: %s\n", err);
    else
        ss_model_open(c, NULL, &m, err, sizeof(err));
    ss_config_destroy(c);
    return m;
}

static void a_model_file_its_card_names_loads_and_records_its_digest(void) {
    ss_model_t *m = ss_model_load(MODEL, CARD, NULL, NULL, err, sizeof(err));
    CHECK(m != NULL);
    char hex[65];
    CHECK(ss_artifact_file_sha256(MODEL, hex) == 0);
    CHECK(m && strcmp(m->sha256, hex) == 0 && strcmp(m->sha256_card, hex) == 0);
    ss_model_unref(m);
}

static void a_model_file_its_card_does_not_name_is_refused_with_both_digests(void) {
    size_t len;
    unsigned char *b = slurp(MODEL, &len);
    unsigned char *changed = malloc(len + 1);
    memcpy(changed, b, len);
    changed[len] = '\n'; /* still the same model to XGBoost, not the same file */
    spill(in_dir(0, "changed.json"), changed, len + 1);
    ss_model_t *m = ss_model_load(in_dir(0, "changed.json"), CARD, NULL, NULL, err, sizeof(err));
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(err, "is not the one its card");
    char hex[65];
    ss_artifact_sha256(changed, len + 1, hex);
    CHECK_STR_CONTAINS(err, hex);
    CHECK_STR_CONTAINS(err, "6009c5d73511c4043d889e645b64a857a230153635a8646fe5ebce430debf81e");
    free(b);
    free(changed);
}

/* An Ed25519 key pair: the public half as PEM in dir/name. */
static EVP_PKEY *keypair(const char *pub_path) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    FILE *f = fopen(pub_path, "w");
    if (!k || !f || PEM_write_PUBKEY(f, k) != 1) {
        fprintf(stderr, "cannot make a key\n");
        exit(1);
    }
    fclose(f);
    return k;
}

static void sign(EVP_PKEY *k, const unsigned char *b, size_t len, const char *sig_path) {
    unsigned char sig[64];
    size_t n = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) != 1 ||
        EVP_DigestSign(ctx, sig, &n, b, len) != 1) {
        fprintf(stderr, "cannot sign\n");
        exit(1);
    }
    EVP_MD_CTX_free(ctx);
    spill(sig_path, sig, n);
}

static void with_a_key_only_a_model_signed_by_it_serves(void) {
    size_t len;
    unsigned char *b = slurp(MODEL, &len);
    const char *model = in_dir(1, "model.json"), *pub = in_dir(2, "key.pub.pem");
    char opt[512], other_opt[512];
    spill(model, b, len);
    EVP_PKEY *k = keypair(pub), *other = keypair(in_dir(3, "other.pub.pem"));
    snprintf(opt, sizeof(opt), "model.signature.key = %s\n", pub);
    snprintf(other_opt, sizeof(other_opt), "model.signature.key = %s\n",
             in_dir(3, "other.pub.pem"));

    ss_model_t *m = open_with(model, opt); /* no model.json.sig yet */
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(err, "cannot read model signature");
    CHECK_STR_CONTAINS(err, "model.signature");

    sign(k, b, len, in_dir(4, "model.json.sig"));
    m = open_with(model, opt);
    CHECK(m != NULL); /* model.signature defaults to model.path + .sig */
    ss_model_unref(m);
    m = open_with(model, ""); /* no key: no signature needed */
    CHECK(m != NULL);
    ss_model_unref(m);

    m = open_with(model, other_opt); /* signed, but by another key */
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(err, "does not verify");

    sign(other, b, len, in_dir(5, "by-other.sig")); /* model.signature names another file */
    char both[1024];
    snprintf(both, sizeof(both), "%smodel.signature = %s\n", other_opt, in_dir(5, "by-other.sig"));
    m = open_with(model, both);
    CHECK(m != NULL);
    ss_model_unref(m);

    b[len - 2] ^= ' ' ^ '\t'; /* one byte of the signed file changed */
    spill(model, b, len);
    m = open_with(model, opt);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(err, "does not verify");

    spill(in_dir(4, "model.json.sig"), "short", 5);
    m = open_with(model, opt);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(err, "not the 64");

    snprintf(opt, sizeof(opt), "model.signature.key = %s\n", MODEL); /* not a key at all */
    m = open_with(model, opt);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(err, "is not a PEM Ed25519 public key");
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    free(b);
}

static const check_test_t tests[] = {
    {"a_model_file_its_card_names_loads_and_records_its_digest",
     a_model_file_its_card_names_loads_and_records_its_digest},
    {"a_model_file_its_card_does_not_name_is_refused_with_both_digests",
     a_model_file_its_card_does_not_name_is_refused_with_both_digests},
    {"with_a_key_only_a_model_signed_by_it_serves", with_a_key_only_a_model_signed_by_it_serves},
    {NULL, NULL}};

int main(void) {
    if (!mkdtemp(dir))
        return 1;
    int rc = check_run_all(tests);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
