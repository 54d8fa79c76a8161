/* versions.c - see versions.h. hiredis has no run-time version call: its SONAME
 * (libhiredis.so.1.1.0) pins the ABI of the header's version; Avro C's comes from its
 * pkg-config file at build time. */
#include "versions.h"

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <openssl/crypto.h>
#include <stdio.h>

#include "model.h"

#ifndef SS_AVRO_VERSION
#define SS_AVRO_VERSION "?"
#endif

int ss_versions(char *buf, size_t len) {
    char rdkafka[64];
    int built = RD_KAFKA_VERSION;
    if (rd_kafka_version() == built)
        snprintf(rdkafka, sizeof(rdkafka), "%s", rd_kafka_version_str());
    else
        snprintf(rdkafka, sizeof(rdkafka), "%s, built with %d.%d.%d", rd_kafka_version_str(),
                 (built >> 24) & 0xff, (built >> 16) & 0xff, (built >> 8) & 0xff);
    return snprintf(buf, len,
                    "streamscore %s (librdkafka %s, hiredis %d.%d.%d, Avro C %s, XGBoost %s, "
                    "OpenSSL %s)",
                    SS_VERSION, rdkafka, HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
                    SS_AVRO_VERSION, ss_model_xgboost_version(),
                    OpenSSL_version(OPENSSL_VERSION_STRING));
}
