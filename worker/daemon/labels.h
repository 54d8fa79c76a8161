/* labels.h - the outcomes the rollout's ROC-AUC gate judges by (rollout.labels.topic): each
 * label, a JSON value {"customer_id", "label" (0/1 or a boolean), "time" (epoch ms; default
 * the record's timestamp)}, is joined with the latest prediction this process made for the
 * customer at or before the label's time, kept in a bounded table of recent customers (a
 * newer customer takes an older one's place when they share a slot), and counted for the
 * route that scored it. Every partition is read from its end: labels that arrive from now on.
 * Labels of customers another process scores find nothing here and are counted as unmatched. */
#ifndef SS_LABELS_H
#define SS_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "gates.h"

#define SS_LABELS_RECENT (1u << 18) /* customers remembered */

/* One prediction to remember. */
typedef struct ss_recent {
    uint64_t hash; /* FNV-1a 64 of the customer id; 0: an empty slot */
    float score;
    uint8_t route;
    int64_t time; /* the event's time, ms */
} ss_recent_t;

typedef struct ss_labels ss_labels_t;

/* The hash a customer's prediction is remembered by. */
uint64_t ss_labels_hash(const char *id, size_t len);

/* Open cfg's rollout.labels.topic (it must exist). Returns NULL with errstr and *why
 * (SS_ERR_CONFIG: the key; SS_ERR_FAIL: Kafka). */
ss_labels_t *ss_labels_open(const ss_config_t *cfg, int *why, char *errstr, size_t errlen);
void ss_labels_close(ss_labels_t *l);

/* Remember n predictions. @locality any thread (one lock per call) */
void ss_labels_remember(ss_labels_t *l, const ss_recent_t *r, size_t n);

/* Join the labels that arrived with what is remembered; the pairs go to the gates' window at
 * now_ms. @locality the main thread */
void ss_labels_poll(ss_labels_t *l, ss_gates_t *g, int64_t now_ms);

/* Labels read: joined with a prediction, or not (no prediction of the customer here, none at
 * or before the label's time, or a value that is not a label). @locality any thread */
void ss_labels_counts(ss_labels_t *l, long *joined, long *unmatched, long *malformed);

#endif
