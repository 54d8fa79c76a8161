/* error.c - names of the SS_ERR_* codes, for logs and messages. */
#include "error.h"

#include <stdio.h>
#include <stdlib.h>

const char *ss_strerror(int err) {
    switch (err) {
    case SS_OK: return "ok";
    case SS_ERR_FAIL: return "failure";
    case SS_ERR_CONFIG: return "configuration";
    case SS_ERR_NOMEM: return "out of memory";
    case SS_ERR_UNAVAILABLE: return "unavailable";
    case SS_ERR_VERDICT: return "verdict against";
    case SS_ERR_STOPPED: return "stopped";
    case SS_ERR_NOT_FOUND: return "not found";
    case SS_ERR_INVALID: return "invalid";
    default: return "unknown error";
    }
}

void *ss_zalloc(size_t size, const char *who, char *errstr, size_t errlen) {
    void *p = calloc(1, size);
    if (!p)
        snprintf(errstr, errlen, "%s: out of memory", who);
    return p;
}
