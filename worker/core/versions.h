/* versions.h - the versions of streamscore and of the libraries it runs on, for --version
 * and the start-up log. */
#ifndef SS_VERSIONS_H
#define SS_VERSIONS_H

#include <stddef.h>

/* "streamscore 0.1.0 (librdkafka 2.8.0, hiredis 1.2.0, Avro C 1.11.1, XGBoost 3.2.0,
 * OpenSSL 3.0.19)" into buf (truncated to len). librdkafka, XGBoost and OpenSSL are those
 * loaded; a librdkafka other than the one built against is named with both versions.
 * Returns what snprintf returns. */
int ss_versions(char *buf, size_t len);

#endif
