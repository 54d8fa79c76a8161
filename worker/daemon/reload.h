/* reload.h - replacing the running model while the workers score: on SIGHUP, or with
 * model.reload when the model files change (after they stayed the same for one
 * model.reload.interval.ms, so that a file being written is not read). A new model comes in
 * through ss_model_open (the same checks as at start-up) and is swapped into the runtime's
 * slot; batches in flight finish with the model they hold. On any failure the running model
 * stays. */
#ifndef SS_RELOAD_H
#define SS_RELOAD_H

#include <sys/types.h>
#include <time.h>

#include "runtime.h"

/* What identifies the content of the model files: a change of any field is a new model
 * (a ConfigMap update replaces the files through a symlink: new inode and time). */
typedef struct ss_file_sig {
    dev_t dev[2];
    ino_t ino[2];
    off_t size[2];
    struct timespec mtime[2];
    int exists[2];
} ss_file_sig_t;

typedef struct ss_reload {
    ss_file_sig_t seen, pending;
    int changed; /* the files differ from `seen` as `pending` */
    int64_t next_check;
} ss_reload_t;

void ss_reload_init(ss_reload_t *r, const ss_config_t *cfg);

/* Reload now if SIGHUP came or the files changed and settled. @locality the main thread */
void ss_reload_tick(ss_reload_t *r, ss_runtime_t *rt);

#endif
