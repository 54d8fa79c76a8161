/* strv.c - string vectors, so that copying, freeing and comparing lists of names is written
 * once for every module that keeps them. */
#include "strv.h"

#include <stdlib.h>
#include <string.h>

char **ss_strv_dup(char *const *v, size_t n) {
    char **out = calloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; out && i < n; i++) {
        if (!(out[i] = strdup(v[i]))) {
            ss_strv_free(out, i);
            out = NULL;
        }
    }
    return out;
}

void ss_strv_free(char **v, size_t n) {
    if (!v)
        return;
    while (n > 0)
        free(v[--n]);
    free(v);
}

int ss_strv_equal(char *const *a, size_t na, char *const *b, size_t nb) {
    size_t i = 0;
    while (na == nb && i < na && strcmp(a[i], b[i]) == 0)
        i++;
    return na == nb && i == na;
}
