/* progress.h - how far an offline job is: a bar redrawn in place on a terminal, or a plain
 * line every few seconds (and one at the end) otherwise, on stderr. */
#ifndef SS_PROGRESS_H
#define SS_PROGRESS_H

#include <stdint.h>

typedef enum {
    SS_PROGRESS_AUTO,
    SS_PROGRESS_BAR,
    SS_PROGRESS_LINES,
    SS_PROGRESS_NONE
} ss_progress_mode_t;

typedef struct ss_progress {
    const char *what; /* "replay", "score-file" */
    int mode;         /* SS_PROGRESS_BAR, _LINES or _NONE (AUTO resolved) */
    long interval_ms; /* between two lines */
    int64_t start_ms, shown_ms;
    int drawn; /* a bar is on the screen */
} ss_progress_t;

/* Parse --progress: auto | bar | lines | none; -1 for anything else. */
int ss_progress_parse(const char *s);

/* Begin; AUTO is a bar when stderr is a terminal, lines otherwise. */
void ss_progress_init(ss_progress_t *p, const char *what, int mode);

/* `done` records so far, of `total` (< 0: unknown), with `fraction` of the work done (< 0:
 * done / total). Draws when due. */
void ss_progress_update(ss_progress_t *p, long done, long total, double fraction);

/* The last state, always shown (the bar completed and ended with a newline). */
void ss_progress_end(ss_progress_t *p, long done, long total);

#endif
