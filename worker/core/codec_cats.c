/* codec_cats.c - a categorical feature's categories as the model names them: an index sorted
 * by name, the lookup of an Avro string, enum symbol or number, and the value a category the
 * model was not trained with becomes (features.unseen.category). */
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"
#include "strv.h"

static int cat_cmp(const void *a, const void *b) {
    const cat_entry_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

int ss__cat_lookup(const cat_index_t *ci, const char *s, size_t len) {
    cat_entry_t key = {s ? s : "", s ? len : 0, -1};
    const cat_entry_t *e = bsearch(&key, ci->sorted, ci->n, sizeof(*e), cat_cmp);
    return e ? e->code : -1;
}

int ss__cat_lookup_number(const cat_index_t *ci, double v) {
    char buf[64];
    if (!isfinite(v))
        return -1;
    int n = snprintf(buf, sizeof(buf), "%.17g", v);
    return ss__cat_lookup(ci, buf, (size_t)n);
}

int ss__unseen_category(const ss_codec_t *c, const float *features, char *errstr, size_t errlen) {
    for (size_t f = 0; f < c->n_features; f++) {
        uint32_t u;
        memcpy(&u, &features[f], sizeof(u));
        if (u == SS_CAT_UNSEEN_BITS && c->rfields[f].cats) {
            snprintf(errstr, errlen,
                     "field '%s' holds a category the model was not trained with (%zu known; "
                     "features.unseen.category = dead_letter)",
                     c->rfields[f].name, c->rfields[f].cats->n);
            return SS_DECODE_UNKNOWN_CATEGORY;
        }
    }
    return SS_DECODE_OK;
}

void ss__cat_index_free(cat_index_t *ci) {
    if (!ci)
        return;
    ss_strv_free(ci->names, ci->n);
    free(ci->sorted);
    free(ci);
}

/* The index of categories `names` (copied); NULL when out of memory. */
cat_index_t *ss__cat_index_new(char *const *names, size_t n, int unseen) {
    cat_index_t *ci = calloc(1, sizeof(*ci));
    if (!ci || !(ci->names = ss_strv_dup(names, n)) ||
        !(ci->sorted = malloc((n ? n : 1) * sizeof(*ci->sorted)))) {
        if (ci)
            ss_strv_free(ci->names, ci->names ? n : 0);
        free(ci);
        return NULL;
    }
    ci->n = n;
    for (size_t i = 0; i < n; i++)
        ci->sorted[i] = (cat_entry_t){ci->names[i], strlen(ci->names[i]), (int)i};
    qsort(ci->sorted, n, sizeof(*ci->sorted), cat_cmp);
    ci->unseen = unseen == SS_UNSEEN_MISSING ? NAN
                 : unseen == SS_UNSEEN_OTHER ? (float)n
                                             : ss__cat_unseen();
    return ci;
}
