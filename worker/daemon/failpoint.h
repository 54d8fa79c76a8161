/* failpoint.h - named points where a test build of the daemon (streamscore-failpoints,
 * compiled with SS_FAILPOINTS) can die on purpose: with STREAMSCORE_FAILPOINT=<name>[:<n>]
 * in the environment, the n-th time (default the first) the point is reached the process
 * writes "failpoint <name> hit" to stderr and exits 99 at once, as a crash would leave things.
 * With STREAMSCORE_FAILPOINT_ERROR=<name>[:<n>], ss_failpoint_error(name) returns 1 the n-th
 * time it is reached instead: the caller takes the path of a failure at that point. Several
 * points, joined by commas, may be given. With STREAMSCORE_FAILPOINT_DELAY=<name>:<ms>,
 * ss_failpoint_delay(name) sleeps that many milliseconds every time it is reached.
 * In streamscore itself every point compiles to nothing. */
#ifndef SS_FAILPOINT_H
#define SS_FAILPOINT_H

#ifdef SS_FAILPOINTS
void ss_failpoint(const char *name);
int ss_failpoint_error(const char *name);
void ss_failpoint_delay(const char *name);
#else
static inline void ss_failpoint(const char *name) {
    (void)name;
}
static inline int ss_failpoint_error(const char *name) {
    (void)name;
    return 0;
}
static inline void ss_failpoint_delay(const char *name) {
    (void)name;
}
#endif

#endif
