/* failpoint.c - the failpoints of test builds (failpoint.h). */
#include "failpoint.h"

#ifdef SS_FAILPOINTS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ss_failpoint(const char *name) {
    static long hits; /* atomic: reached by every worker thread */
    const char *spec = getenv("STREAMSCORE_FAILPOINT");
    size_t len = strlen(name);
    if (!spec || strncmp(spec, name, len) != 0 || (spec[len] != '\0' && spec[len] != ':'))
        return;
    long nth = spec[len] == ':' ? strtol(spec + len + 1, NULL, 10) : 1;
    if (__atomic_add_fetch(&hits, 1, __ATOMIC_SEQ_CST) != (nth > 0 ? nth : 1))
        return;
    fprintf(stderr, "failpoint %s hit\n", name);
    fflush(stderr);
    _exit(99);
}
#else
typedef int ss_failpoint_unused_t; /* an empty translation unit is not ISO C */
#endif
