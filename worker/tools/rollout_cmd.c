/* rollout_cmd.c - `streamscore rollout`: the rollout's state read from the control topic,
 * changed by one command, written back and printed. */
#include "rollout_cmd.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact.h"
#include "clock.h"
#include "control.h"
#include "error.h"
#include "model.h"
#include "rollout.h"

typedef struct {
    const char *verb;
    const char *model, *card, *name, *version, *sha256, *reason;
    double share; /* NaN: not given */
    int json;
} opts_t;

static void usage(FILE *out) {
    fprintf(out,
            "Usage: streamscore rollout COMMAND -c FILE [-X key=value ...] [options]\n"
            "\n"
            "Moves a candidate model through shadow, canary shares and promotion in every\n"
            "primary worker that follows rollout.topic (docs/rollout.md).\n"
            "\n"
            "Commands:\n"
            "  status                 print the rollout's state\n"
            "  start --model PATH     load a candidate beside the live model at the first of\n"
            "                         rollout.steps (--share S; 0: shadow, scoring nothing)\n"
            "  step [--share S]       the next of rollout.steps (or S)\n"
            "  promote                the candidate becomes the live model everywhere\n"
            "  rollback               share 0; after a promote, the previous live model\n"
            "\n"
            "Options:\n"
            "  --model PATH           the candidate model file, as the workers find it\n"
            "  --card PATH            its card (default: PATH with .json replaced by .card.json)\n"
            "  --name N, --version V  the candidate's name and version (default: the card's)\n"
            "  --sha256 HEX           its SHA-256 (default: computed from PATH, which must then\n"
            "                         be readable here; given and readable: they must agree)\n"
            "  --share S              a share of customers, 0..1\n"
            "  --reason TEXT          why, recorded with the change and who made it\n"
            "  --json                 print the resulting record as JSON (with its offset)\n"
            "\n"
            "Exit codes: 0 done, 1 runtime failure (Kafka, a candidate refused here),\n"
            "2 bad usage or configuration, or a change the rollout's state does not allow.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "streamscore rollout: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return SS_ERR_CONFIG;
}

static int parse_args(int argc, char **argv, opts_t *o) {
    static const char *const valued[] = {"--model",  "--card",  "--name",  "--version",
                                         "--sha256", "--share", "--reason"};
    const char **slots[] = {&o->model,  &o->card, &o->name,  &o->version,
                            &o->sha256, NULL,     &o->reason};
    memset(o, 0, sizeof(*o));
    o->share = -1;
    if (argc < 1)
        return usage_error("a command is needed: status, start, step, promote or rollback");
    o->verb = argv[0];
    const char *verbs[] = {"status", "start", "step", "promote", "rollback"};
    int known = 0;
    for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
        known |= !strcmp(o->verb, verbs[k]);
    if (!known)
        return usage_error("unknown command '%s' (status, start, step, promote, rollback)",
                           o->verb);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        int k = -1;
        for (size_t j = 0; j < sizeof(valued) / sizeof(valued[0]); j++)
            if (strlen(valued[j]) == nl && !strncmp(a, valued[j], nl))
                k = (int)j;
        if (k < 0)
            return usage_error("unknown option '%s' (see --help)", a);
        const char *val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!val)
            return usage_error("%s needs a value", valued[k]);
        if (slots[k]) {
            *slots[k] = val;
            continue;
        }
        char *end;
        errno = 0;
        o->share = strtod(val, &end);
        if (*end || errno || !(o->share >= 0 && o->share <= 1))
            return usage_error("--share '%s': expected a number in 0..1", val);
    }
    int starting = !strcmp(o->verb, "start");
    if (!starting && (o->model || o->card || o->name || o->version || o->sha256))
        return usage_error("--model, --card, --name, --version and --sha256 are for start");
    if (o->share >= 0 && strcmp(o->verb, "start") && strcmp(o->verb, "step"))
        return usage_error("--share is for start and step");
    if (starting && (!o->model || !*o->model))
        return usage_error("start needs --model PATH (the candidate's file as the workers see it)");
    if (o->sha256) {
        size_t n = strspn(o->sha256, "0123456789abcdef");
        if (n != 64 || o->sha256[n])
            return usage_error("--sha256: expected 64 lower-case hex digits");
    }
    return 0;
}

/* ------------------------------------------------------------------ the candidate */

/* What the card says of name, version and model_sha256 (each left as is when absent). */
static int read_card(const char *path, char *name, size_t nlen, char *version, size_t vlen,
                     char *sha, size_t slen) {
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j)
        return access(path, F_OK) == 0 ? usage_error("the card %s: %s", path, jerr.text) : 0;
    const char *keys[] = {"name", "version", "model_sha256"};
    char *outs[] = {name, version, sha};
    size_t lens[] = {nlen, vlen, slen};
    for (int i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(j, keys[i]));
        if (v && !*outs[i])
            snprintf(outs[i], lens[i], "%s", v);
    }
    json_decref(j);
    return 0;
}

/* The candidate the record names: checked here when its file is readable here (digest, card,
 * signature), else described by the options alone. */
static int candidate(const ss_config_t *cfg, const opts_t *o, ss_rollout_model_t *m) {
    char card_sha[80] = "";
    memset(m, 0, sizeof(*m));
    m->set = 1;
    snprintf(m->path, sizeof(m->path), "%s", o->model);
    if (o->card)
        snprintf(m->card, sizeof(m->card), "%s", o->card);
    snprintf(m->name, sizeof(m->name), "%s", o->name ? o->name : "");
    snprintf(m->version, sizeof(m->version), "%s", o->version ? o->version : "");
    char card[1100];
    if (o->card)
        snprintf(card, sizeof(card), "%s", o->card);
    else
        ss_model_card_path(o->model, card, sizeof(card));
    if (read_card(card, m->name, sizeof(m->name), m->version, sizeof(m->version), card_sha,
                  sizeof(card_sha)) < 0)
        return SS_ERR_CONFIG;
    if (access(o->model, R_OK) != 0) {
        if (!o->sha256)
            return usage_error("%s is not readable here: give its digest with --sha256", o->model);
        snprintf(m->sha256, sizeof(m->sha256), "%s", o->sha256);
    } else {
        unsigned char *buf = NULL;
        size_t len = 0;
        char err[1024];
        if (ss_artifact_read(o->model, "model", "--model", &buf, &len, err, sizeof(err)) < 0) {
            fprintf(stderr, "streamscore rollout: %s\n", err);
            return SS_ERR_FAIL;
        }
        ss_artifact_sha256(buf, len, m->sha256);
        int rc = 0;
        if (o->sha256 && strcmp(o->sha256, m->sha256) != 0) {
            fprintf(stderr,
                    "streamscore rollout: refused: %s has SHA-256 %s, not --sha256 %s; nothing "
                    "written\n",
                    o->model, m->sha256, o->sha256);
            rc = SS_ERR_FAIL;
        } else if (*card_sha && strcmp(card_sha, m->sha256) != 0) {
            fprintf(stderr,
                    "streamscore rollout: refused: %s has SHA-256 %s, its card %s says %s; "
                    "nothing written\n",
                    o->model, m->sha256, card, card_sha);
            rc = SS_ERR_FAIL;
        } else if (*cfg->model_signature_key) {
            char sig[1100];
            snprintf(sig, sizeof(sig), "%s.sig", o->model);
            if (ss_artifact_verify(buf, len, sig, cfg->model_signature_key, err, sizeof(err)) < 0) {
                fprintf(stderr, "streamscore rollout: refused: %s; nothing written\n", err);
                rc = SS_ERR_FAIL;
            }
        }
        free(buf);
        if (rc < 0)
            return rc;
    }
    if (!m->name[0] || !m->version[0])
        return usage_error("the candidate's name and version: give --name and --version (no "
                           "card at %s says them)",
                           card);
    return 0;
}

/* ------------------------------------------------------------------ output */

static void print_state(const ss_rollout_state_t *s, const char *id, int json) {
    if (json) {
        char *text = ss_rollout_dump(s, id, 1);
        printf("%s\n", text ? text : "{}");
        free(text);
        return;
    }
    if (s->phase == SS_ROLLOUT_NONE) {
        printf("rollout %s: none recorded (the configured model serves everyone)\n", id);
        return;
    }
    printf("rollout %s: %s", id, ss_rollout_phase_name(s->phase));
    if (s->phase == SS_ROLLOUT_CANARY)
        printf(" at %g %% of customers", s->share * 100);
    printf("\n");
    if (s->candidate.set)
        printf("  candidate  %s %s  sha256 %s\n             %s\n", s->candidate.name,
               s->candidate.version, s->candidate.sha256, s->candidate.path);
    if (s->live.set)
        printf("  live       %s %s  sha256 %s\n", s->live.name, s->live.version, s->live.sha256);
    else
        printf("  live       the configured model (model.path)\n");
    printf("  changed    by %s (%s), offset %lld: %s\n", s->by[0] ? s->by : "?",
           s->automatic ? "automatic" : "command", (long long)s->offset,
           s->reason[0] ? s->reason : "(no reason given)");
}

/* ------------------------------------------------------------------ the command */

static int change(const ss_config_t *cfg, const opts_t *o, const ss_rollout_state_t *cur,
                  ss_rollout_state_t *next) {
    char err[512];
    int rc;
    double steps[SS_ROLLOUT_MAX_STEPS];
    int n =
        ss_rollout_parse_steps(cfg->rollout_steps, steps, SS_ROLLOUT_MAX_STEPS, err, sizeof(err));
    if (n < 0)
        return usage_error("%s", err);
    if (!strcmp(o->verb, "start")) {
        ss_rollout_model_t m;
        if ((rc = candidate(cfg, o, &m)) < 0)
            return rc;
        rc = ss_rollout_start(cur, &m, o->share >= 0 ? o->share : steps[0], next, err, sizeof(err));
    } else if (!strcmp(o->verb, "step")) {
        double share = o->share;
        if (share < 0 && (cur->phase == SS_ROLLOUT_SHADOW || cur->phase == SS_ROLLOUT_CANARY)) {
            share = ss_rollout_next_step(steps, n, cur->share);
            if (share < 0)
                return usage_error("the canary is at the last of rollout.steps (%g): promote it, "
                                   "or give --share",
                                   cur->share);
        }
        rc = ss_rollout_step(cur, share, next, err, sizeof(err));
    } else if (!strcmp(o->verb, "promote")) {
        rc = ss_rollout_promote(cur, next, err, sizeof(err));
    } else {
        rc = ss_rollout_rollback(cur, next, err, sizeof(err));
    }
    if (rc < 0)
        return usage_error("%s", err);
    return 0;
}

int ss_rollout_main(const ss_config_t *cfg, int argc, char **argv) {
    if (!cfg) {
        usage(stdout);
        return 0;
    }
    opts_t o;
    int rc = parse_args(argc, argv, &o), why;
    if (rc < 0)
        return rc;
    char err[1024];
    if (!*cfg->rollout_topic)
        return usage_error("config: key 'rollout.topic' is empty: name the control topic the "
                           "workers follow");
    ss_control_t *c = ss_control_open(cfg, "rollout", &why, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "streamscore rollout: %s\n", err);
        return why;
    }
    if ((rc = ss_control_catch_up(c, 30000, err, sizeof(err))) < 0) {
        fprintf(stderr, "streamscore rollout: %s\n", err);
        goto out;
    }
    ss_rollout_state_t next;
    const ss_rollout_state_t *cur = ss_control_state(c);
    if (!strcmp(o.verb, "status")) {
        print_state(cur, cfg->rollout_id, o.json);
        goto out;
    }
    if ((rc = change(cfg, &o, cur, &next)) < 0)
        goto out;
    char by[300];
    ss_control_who(by, sizeof(by));
    ss_rollout_stamp(&next, o.reason, by, 0, ss_wall_ms());
    if ((rc = ss_control_write(c, &next, &next.offset, err, sizeof(err))) < 0) {
        fprintf(stderr, "streamscore rollout: %s\n", err);
        goto out;
    }
    print_state(&next, cfg->rollout_id, o.json);
out:
    ss_control_close(c);
    return rc;
}
