/* check.h - a minimal test harness: TEST(name) functions listed in one table,
 * CHECK(cond) records a failure with file and line, main() runs them all and
 * prints "N passed, N failed". Exit status is non-zero on any failure. */
#ifndef SS_CHECK_H
#define SS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures_;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);             \
            check_failures_++;                                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                                            \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_)) {                                                              \
            fprintf(stderr, "  %s:%d: '%s' does not contain '%s'\n", __FILE__, __LINE__,           \
                    h_ ? h_ : "(null)", n_);                                                       \
            check_failures_++;                                                                     \
        }                                                                                          \
    } while (0)

typedef struct check_test {
    const char *name;
    void (*fn)(void);
} check_test_t;

static int check_run_all(const check_test_t *tests) {
    int passed = 0, failed = 0;
    for (const check_test_t *t = tests; t->name; t++) {
        int before = check_failures_;
        t->fn();
        if (check_failures_ == before) {
            passed++;
            printf("ok   %s\n", t->name);
        } else {
            failed++;
            printf("FAIL %s\n", t->name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
