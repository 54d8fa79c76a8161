/* strv.h - string vectors: arrays of owned C strings with their count, the way feature names
 * are kept (the model's, the model card's, the event fields the codec reads them from). */
#ifndef SS_STRV_H
#define SS_STRV_H

#include <stddef.h>

/* A copy of n strings; NULL when out of memory. */
char **ss_strv_dup(char *const *v, size_t n);

/* Free n strings (NULL ones are skipped) and the array. Accepts NULL. */
void ss_strv_free(char **v, size_t n);

/* 1 when a and b hold the same strings in the same order, else 0. */
int ss_strv_equal(char *const *a, size_t na, char *const *b, size_t nb);

#endif
