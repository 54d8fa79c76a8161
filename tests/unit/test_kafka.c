/* test_kafka.c - which client errors stop a worker: the reasons are librdkafka's own, as its
 * error callback got them (2.0.2 and 2.8.0 against the local stack's SASL_SSL listener, and
 * the code paths of 2.8.0's rdkafka_ssl.c and rdkafka_transport.c for the others). */
#include <librdkafka/rdkafka.h>

#include "check.h"
#include "kafka.h"

static void a_refused_login_is_a_sasl_refusal(void) {
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__AUTHENTICATION,
                           "sasl_ssl://127.0.0.1:23094/bootstrap: SASL authentication error: "
                           "Authentication failed during authentication due to invalid "
                           "credentials with SASL mechanism SCRAM-SHA-512 (after 316ms in state "
                           "AUTH_REQ)") == SS_KAFKA_REFUSED_SASL);
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__AUTHENTICATION,
                           "sasl_ssl://b:9094/1: SASL SCRAM-SHA-512 mechanism handshake failed: "
                           "Broker: Unsupported SASL mechanism: broker's supported mechanisms: "
                           "PLAIN") == SS_KAFKA_REFUSED_SASL);
}

static void an_oauthbearer_token_not_fetched_is_retried(void) {
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__AUTHENTICATION,
                           "Failed to acquire SASL OAUTHBEARER token: Failed to retrieve OIDC "
                           "token from \"https://idp/token\": Couldn't connect to server") ==
          SS_KAFKA_RETRY);
}

static void an_unverified_broker_certificate_is_a_tls_refusal(void) {
    /* the handshake's later steps: __SSL */
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__SSL,
                           "sasl_ssl://127.0.0.1:23094/bootstrap: SSL handshake failed: "
                           "error:0A000086:SSL routines::certificate verify failed: broker "
                           "certificate could not be verified, verify that ssl.ca.location is "
                           "correctly configured or root CA certificates are installed (install "
                           "ca-certificates package) (after 6ms in state SSL_HANDSHAKE)") ==
          SS_KAFKA_REFUSED_TLS);
    /* its first SSL_connect: __TRANSPORT with OpenSSL's reason */
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__TRANSPORT,
                           "sasl_ssl://127.0.0.1:23094/bootstrap: error:0A000086:SSL "
                           "routines::certificate verify failed (after 16ms in state "
                           "SSL_HANDSHAKE)") == SS_KAFKA_REFUSED_TLS);
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__SSL, "ssl://b:9093/1: Broker did not provide a "
                                                   "certificate") == SS_KAFKA_REFUSED_TLS);
}

static void a_client_certificate_refused_by_the_broker_is_a_tls_refusal(void) {
    /* TLS 1.3: the broker's alert comes with the first read after the handshake */
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__TRANSPORT,
                           "ssl://b:9093/1: Receive failed: error:0A00045C:SSL "
                           "routines::tlsv13 alert certificate required") == SS_KAFKA_REFUSED_TLS);
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__SSL,
                           "ssl://b:9093/1: SSL handshake failed: error:0A000418:SSL "
                           "routines::tlsv1 alert unknown ca") == SS_KAFKA_REFUSED_TLS);
}

static void a_connection_cut_or_refused_is_retried(void) {
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__TRANSPORT,
                           "sasl_ssl://b:9094/1: Connect to ipv4#127.0.0.1:9094 failed: "
                           "Connection refused (after 0ms in state CONNECT)") == SS_KAFKA_RETRY);
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__TRANSPORT,
                           "ssl://b:9093/1: SSL handshake failed: Disconnected: connecting to a "
                           "PLAINTEXT broker listener?") == SS_KAFKA_RETRY);
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__SSL,
                           "ssl://b:9093/1: SSL handshake failed: error:0A000126:SSL "
                           "routines::unexpected eof while reading") == SS_KAFKA_RETRY);
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__SSL,
                           "ssl://b:9093/1: SSL handshake failed: SSL "
                           "transport error: Broken pipe") == SS_KAFKA_RETRY);
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, "1/1 brokers are down") ==
          SS_KAFKA_RETRY);
    CHECK(ss_kafka_refusal(RD_KAFKA_RESP_ERR__TRANSPORT, NULL) == SS_KAFKA_RETRY);
}

static void nothing_is_refused_until_a_client_reports_it(void) {
    char line[64] = "untouched";
    CHECK(ss_kafka_refused(line, sizeof(line)) == 0);
    CHECK(strcmp(line, "untouched") == 0);
}

int main(void) {
    static const check_test_t tests[] = {
        {"a_refused_login_is_a_sasl_refusal", a_refused_login_is_a_sasl_refusal},
        {"an_oauthbearer_token_not_fetched_is_retried",
         an_oauthbearer_token_not_fetched_is_retried},
        {"an_unverified_broker_certificate_is_a_tls_refusal",
         an_unverified_broker_certificate_is_a_tls_refusal},
        {"a_client_certificate_refused_by_the_broker_is_a_tls_refusal",
         a_client_certificate_refused_by_the_broker_is_a_tls_refusal},
        {"a_connection_cut_or_refused_is_retried", a_connection_cut_or_refused_is_retried},
        {"nothing_is_refused_until_a_client_reports_it",
         nothing_is_refused_until_a_client_reports_it},
        {NULL, NULL},
    };
    return check_run_all(tests);
}
