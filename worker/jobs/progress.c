/* progress.c - the bar or the lines of an offline job's progress. */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

#define BAR_WIDTH 30
#define BAR_INTERVAL_MS 200
#define LINE_INTERVAL_MS 5000

int ss_progress_parse(const char *s) {
    static const char *names[] = {"auto", "bar", "lines", "none"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void ss_progress_init(ss_progress_t *p, const char *what, int mode) {
    memset(p, 0, sizeof(*p));
    p->what = what;
    p->mode = mode == SS_PROGRESS_AUTO
                  ? (isatty(STDERR_FILENO) ? SS_PROGRESS_BAR : SS_PROGRESS_LINES)
                  : mode;
    p->interval_ms = p->mode == SS_PROGRESS_BAR ? BAR_INTERVAL_MS : LINE_INTERVAL_MS;
    p->start_ms = p->shown_ms = ss_mono_ms();
}

/* "1h02m", "3m05s", "42s" */
static void duration(double s, char *out, size_t len) {
    long t = s < 0 ? 0 : (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(out, len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, len, "%lds", t);
}

static void show(ss_progress_t *p, long done, long total, double fraction, int end) {
    int64_t now = ss_mono_ms();
    double secs = (double)(now - p->start_ms) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    if (fraction < 0 && total > 0)
        fraction = (double)done / (double)total;
    if (fraction > 1)
        fraction = 1;
    char of[48] = "", pct[16] = "", eta[64] = "";
    if (total >= 0)
        snprintf(of, sizeof(of), " of %ld", total);
    if (fraction >= 0) {
        snprintf(pct, sizeof(pct), " (%.0f%%)", fraction * 100);
        if (!end && fraction > 0) {
            char d[32];
            duration(secs / fraction - secs, d, sizeof(d));
            snprintf(eta, sizeof(eta), ", ETA %s", d);
        }
    }
    if (end) {
        char d[32];
        duration(secs, d, sizeof(d));
        snprintf(eta, sizeof(eta), ", done in %s", d);
    }
    if (p->mode == SS_PROGRESS_BAR) {
        char bar[BAR_WIDTH + 1];
        int full = fraction >= 0 ? (int)(fraction * BAR_WIDTH) : 0;
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < full ? '#' : (fraction >= 0 ? '.' : ' ');
        bar[BAR_WIDTH] = '\0';
        fprintf(stderr, "\r%s [%s] %ld%s records%s, %.0f/s%s\033[K%s", p->what, bar, done, of, pct,
                rate, eta, end ? "\n" : "");
        p->drawn = !end;
    } else {
        fprintf(stderr, "%s: %ld%s records%s, %.0f/s%s\n", p->what, done, of, pct, rate, eta);
    }
    fflush(stderr);
    p->shown_ms = now;
}

void ss_progress_update(ss_progress_t *p, long done, long total, double fraction) {
    if (p->mode == SS_PROGRESS_NONE || ss_mono_ms() - p->shown_ms < p->interval_ms)
        return;
    show(p, done, total, fraction, 0);
}

void ss_progress_end(ss_progress_t *p, long done, long total) {
    if (p->mode != SS_PROGRESS_NONE)
        show(p, done, total, total > 0 ? (double)done / (double)total : 1.0, 1);
}
