/* error.h - one error vocabulary for every streamscore function: 0 for success or a negative
 * SS_ERR_* code, with the detail in the caller's errstr buffer (or the object's own error
 * field). Which exit status a code becomes is decided in main.c alone. */
#ifndef SS_ERROR_H
#define SS_ERROR_H

#include <stddef.h>

enum {
    SS_OK = 0,
    SS_ERR_FAIL = -1,        /* a runtime failure: a service, a file, a record that fails */
    SS_ERR_CONFIG = -2,      /* bad configuration or usage: the message names the key */
    SS_ERR_NOMEM = -3,       /* out of memory */
    SS_ERR_UNAVAILABLE = -4, /* a service did not answer (retrying may help) */
    SS_ERR_VERDICT = -5,     /* a check ran and said no: compare holds, a gate failed */
    SS_ERR_STOPPED = -6,     /* a stop was requested while waiting */
    SS_ERR_NOT_FOUND = -7,   /* a service answered: no such thing (a schema id unknown) */
    SS_ERR_INVALID = -8      /* an answer or input that is not what it must be */
};

/* A short name of the code: "ok", "failure", "configuration", ... */
const char *ss_strerror(int err);

/* calloc(1, size), or NULL with "<who>: out of memory" in errstr. */
void *ss_zalloc(size_t size, const char *who, char *errstr, size_t errlen);

#endif
