/* failpoint.c - the failpoints of test builds (failpoint.h). */
#include "failpoint.h"

#ifdef SS_FAILPOINTS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_POINTS 8

/* 1 when the environment's `var` (<name>[:<n>], up to MAX_POINTS joined by commas) names
 * `name` and this is the n-th time it is reached; hits[] counts per point given. */
static int reached(const char *var, const char *name, long *hits) {
    size_t len = strlen(name);
    const char *spec = getenv(var);
    for (int i = 0; spec && *spec && i < MAX_POINTS; i++, spec += strcspn(spec, ",")) {
        spec += *spec == ',';
        if (strncmp(spec, name, len) != 0 ||
            (spec[len] != '\0' && spec[len] != ':' && spec[len] != ','))
            continue;
        long nth = spec[len] == ':' ? strtol(spec + len + 1, NULL, 10) : 1;
        return __atomic_add_fetch(&hits[i], 1, __ATOMIC_SEQ_CST) == (nth > 0 ? nth : 1);
    }
    return 0;
}

int ss_failpoint_error(const char *name) {
    static long hits[MAX_POINTS]; /* atomic: reached by every worker thread */
    if (!reached("STREAMSCORE_FAILPOINT_ERROR", name, hits))
        return 0;
    fprintf(stderr, "failpoint %s fails\n", name);
    fflush(stderr);
    return 1;
}

void ss_failpoint(const char *name) {
    static long hits[MAX_POINTS]; /* atomic: reached by every worker thread */
    if (!reached("STREAMSCORE_FAILPOINT", name, hits))
        return;
    fprintf(stderr, "failpoint %s hit\n", name);
    fflush(stderr);
    _exit(99);
}

void ss_failpoint_delay(const char *name) {
    size_t len = strlen(name);
    const char *spec = getenv("STREAMSCORE_FAILPOINT_DELAY");
    for (int i = 0; spec && *spec && i < MAX_POINTS; i++, spec += strcspn(spec, ",")) {
        spec += *spec == ',';
        if (strncmp(spec, name, len) == 0 && spec[len] == ':') {
            long ms = strtol(spec + len + 1, NULL, 10);
            if (ms > 0)
                usleep((useconds_t)ms * 1000);
            return;
        }
    }
}
#else
typedef int ss_failpoint_unused_t; /* an empty translation unit is not ISO C */
#endif
