/* reload.c - the model's replacement while running: SIGHUP or changed model files. */
#include "reload.h"

#include <string.h>
#include <sys/stat.h>

#include "canary.h"
#include "clock.h"
#include "log.h"

static void file_sig(const ss_config_t *cfg, ss_file_sig_t *sig) {
    memset(sig, 0, sizeof(*sig));
    const char *paths[2] = {cfg->model_path, cfg->model_card};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (!paths[i] || stat(paths[i], &st) != 0)
            continue;
        sig->exists[i] = 1;
        sig->dev[i] = st.st_dev;
        sig->ino[i] = st.st_ino;
        sig->size[i] = st.st_size;
        sig->mtime[i] = st.st_mtim;
    }
}

static void reload_model(ss_runtime_t *rt, const char *why) {
    const ss_config_t *cfg = rt->cfg;
    char err[1024] = "";
    ss_model_t *cur = ss_model_slot_acquire(&rt->model), *m = NULL;
    if (ss_model_open(cfg, cur, &m, err, sizeof(err)) == 0 &&
        ss_runtime_model_fits(rt, m, cfg->model_threshold, err, sizeof(err)) < 0) {
        ss_model_unref(m);
        m = NULL;
    }
    if (m) {
        ss_model_t *old = ss_model_slot_swap(&rt->model, m);
        ss_canary_live_reloaded(rt);
        ss_log(SS_LOG_INFO,
               SS_FIELDS(SSF_STR("model", m->name), SSF_STR("version", m->version),
                         SSF_STR("previous", old->version), SSF_STR("trigger", why)),
               "model reloaded from %s", cfg->model_path);
        __atomic_add_fetch(&rt->stats->reloads_ok, 1, __ATOMIC_RELAXED);
        ss_model_unref(old);
    } else {
        ss_log(SS_LOG_ERROR, SS_FIELDS(SSF_STR("trigger", why), SSF_STR("running", cur->version)),
               "model reload failed, keeping the running model: %s", err);
        __atomic_add_fetch(&rt->stats->reloads_failed, 1, __ATOMIC_RELAXED);
    }
    ss_model_unref(cur);
}

void ss_reload_init(ss_reload_t *r, const ss_config_t *cfg) {
    memset(r, 0, sizeof(*r));
    file_sig(cfg, &r->seen);
    r->next_check = ss_mono_ms() + cfg->model_reload_interval_ms;
}

void ss_reload_tick(ss_reload_t *r, ss_runtime_t *rt) {
    const ss_config_t *cfg = rt->cfg;
    if (__atomic_exchange_n(rt->reload, 0, __ATOMIC_ACQ_REL)) {
        file_sig(cfg, &r->seen);
        r->changed = 0;
        reload_model(rt, "SIGHUP");
        return;
    }
    if (!cfg->model_reload || ss_mono_ms() < r->next_check ||
        __atomic_load_n(rt->stop, __ATOMIC_ACQUIRE))
        return;
    r->next_check = ss_mono_ms() + cfg->model_reload_interval_ms;
    ss_file_sig_t now;
    file_sig(cfg, &now);
    if (r->changed && memcmp(&now, &r->pending, sizeof(now)) == 0) {
        r->seen = now;
        r->changed = 0;
        reload_model(rt, "file changed");
    } else if (memcmp(&now, &r->seen, sizeof(now)) != 0) {
        r->pending = now;
        r->changed = 1;
    } else {
        r->changed = 0;
    }
}
