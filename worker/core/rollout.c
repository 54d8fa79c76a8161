/* rollout.c - the rollout state: its record in the control topic, its changes, and routing. */
#include "rollout.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

static const char *phase_names[] = {"none", "shadow", "canary", "promoted", "rolled-back"};

void ss_rollout_init(ss_rollout_state_t *s) {
    memset(s, 0, sizeof(*s));
    s->base = -1;
    s->offset = -1;
}

const char *ss_rollout_phase_name(ss_rollout_phase_t p) {
    return (unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[p] : "?";
}

/* ------------------------------------------------------------------ the record */

/* A string member into buf; absent or null gives "" (when optional). */
static int get_str(const json_t *o, const char *key, char *buf, size_t cap, int required,
                   char *errstr, size_t errlen) {
    const json_t *v = json_object_get(o, key);
    buf[0] = '\0';
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        snprintf(errstr, errlen, "'%s' missing", key);
        return SS_ERR_CONFIG;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(errstr, errlen, "'%s' must be a string of fewer than %zu bytes", key, cap);
        return SS_ERR_CONFIG;
    }
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int is_sha256_hex(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 64;
}

static int get_model(const json_t *o, const char *key, ss_rollout_model_t *m, char *errstr,
                     size_t errlen) {
    const json_t *v = json_object_get(o, key);
    memset(m, 0, sizeof(*m));
    if (!v || json_is_null(v))
        return 0;
    char err[256];
    if (!json_is_object(v)) {
        snprintf(errstr, errlen, "'%s' must be an object or null", key);
        return SS_ERR_CONFIG;
    }
    if (get_str(v, "name", m->name, sizeof(m->name), 1, err, sizeof(err)) < 0 ||
        get_str(v, "version", m->version, sizeof(m->version), 1, err, sizeof(err)) < 0 ||
        get_str(v, "sha256", m->sha256, sizeof(m->sha256), 1, err, sizeof(err)) < 0 ||
        get_str(v, "path", m->path, sizeof(m->path), 1, err, sizeof(err)) < 0 ||
        get_str(v, "card", m->card, sizeof(m->card), 0, err, sizeof(err)) < 0) {
        snprintf(errstr, errlen, "%s: %s", key, err);
        return SS_ERR_CONFIG;
    }
    if (!is_sha256_hex(m->sha256)) {
        snprintf(errstr, errlen, "%s: 'sha256' must be 64 lower-case hex digits", key);
        return SS_ERR_CONFIG;
    }
    if (!m->path[0]) {
        snprintf(errstr, errlen, "%s: 'path' is empty", key);
        return SS_ERR_CONFIG;
    }
    m->set = 1;
    return 0;
}

static int get_int(const json_t *o, const char *key, int64_t *out, int64_t def) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return SS_ERR_CONFIG;
    *out = json_integer_value(v);
    return 0;
}

int ss_rollout_parse(const char *text, size_t len, ss_rollout_state_t *out, char *errstr,
                     size_t errlen) {
    json_error_t jerr;
    ss_rollout_init(out);
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = SS_ERR_CONFIG;
    char state[32], origin[32];
    if (!j) {
        snprintf(errstr, errlen, "not JSON: %s", jerr.text);
        return SS_ERR_CONFIG;
    }
    const json_t *fmt = json_object_get(j, "format"), *share = json_object_get(j, "share");
    if (!json_is_object(j) || !json_is_integer(fmt) || json_integer_value(fmt) != 1) {
        snprintf(errstr, errlen, "not a rollout record of format 1");
        goto out;
    }
    if (get_str(j, "state", state, sizeof(state), 1, errstr, errlen) < 0 ||
        get_str(j, "reason", out->reason, sizeof(out->reason), 0, errstr, errlen) < 0 ||
        get_str(j, "by", out->by, sizeof(out->by), 0, errstr, errlen) < 0 ||
        get_str(j, "origin", origin, sizeof(origin), 0, errstr, errlen) < 0 ||
        get_model(j, "candidate", &out->candidate, errstr, errlen) < 0 ||
        get_model(j, "live", &out->live, errstr, errlen) < 0 ||
        get_model(j, "previous", &out->previous, errstr, errlen) < 0)
        goto out;
    if (get_int(j, "at", &out->at, 0) < 0 || get_int(j, "base", &out->base, -1) < 0) {
        snprintf(errstr, errlen, "'at' and 'base' must be integers");
        goto out;
    }
    out->phase = SS_ROLLOUT_NONE;
    for (int p = SS_ROLLOUT_SHADOW; p <= SS_ROLLOUT_ROLLED_BACK; p++)
        if (strcmp(state, phase_names[p]) == 0)
            out->phase = (ss_rollout_phase_t)p;
    if (out->phase == SS_ROLLOUT_NONE) {
        snprintf(errstr, errlen, "'state' must be shadow, canary, promoted or rolled-back");
        goto out;
    }
    out->share = json_is_number(share) ? json_number_value(share) : -1;
    if (!(out->share >= 0 && out->share <= 1)) {
        snprintf(errstr, errlen, "'share' must be a number in 0..1");
        goto out;
    }
    if ((out->phase == SS_ROLLOUT_SHADOW || out->phase == SS_ROLLOUT_CANARY) &&
        !out->candidate.set) {
        snprintf(errstr, errlen, "state %s needs a candidate", state);
        goto out;
    }
    if (out->phase != SS_ROLLOUT_CANARY)
        out->share = 0;
    else if (out->share == 0) {
        snprintf(errstr, errlen, "state canary needs a share above 0");
        goto out;
    }
    out->automatic = strcmp(origin, "automatic") == 0;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

static json_t *model_json(const ss_rollout_model_t *m) {
    if (!m->set)
        return json_null();
    return json_pack("{s:s, s:s, s:s, s:s, s:s?}", "name", m->name, "version", m->version, "sha256",
                     m->sha256, "path", m->path, "card", m->card[0] ? m->card : NULL);
}

char *ss_rollout_dump(const ss_rollout_state_t *s, const char *rollout, int with_offset) {
    json_t *j = json_pack("{s:i, s:s, s:s, s:f, s:o, s:o, s:o, s:s, s:s, s:s, s:I, s:I}", "format",
                          1, "rollout", rollout, "state", ss_rollout_phase_name(s->phase), "share",
                          s->share, "candidate", model_json(&s->candidate), "live",
                          model_json(&s->live), "previous", model_json(&s->previous), "reason",
                          s->reason, "by", s->by, "origin", s->automatic ? "automatic" : "command",
                          "at", (json_int_t)s->at, "base", (json_int_t)s->base);
    if (!j)
        return NULL;
    if (with_offset)
        json_object_set_new(j, "offset", json_integer(s->offset));
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    json_decref(j);
    return text;
}

int ss_rollout_accepts(const ss_rollout_state_t *cur, const ss_rollout_state_t *next) {
    return !next->automatic || cur->phase == SS_ROLLOUT_NONE || next->base >= cur->offset;
}

/* ------------------------------------------------------------------ changes */

int ss_rollout_parse_steps(const char *text, double *steps, size_t max, char *errstr,
                           size_t errlen) {
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v > 0 && v <= 1) || (n && v <= steps[n - 1]) || (size_t)n >= max) {
            snprintf(errstr, errlen,
                     "config: key 'rollout.steps': expected at most %zu ascending shares in "
                     "(0, 1], comma-separated, got '%s'",
                     max, text);
            return SS_ERR_CONFIG;
        }
        steps[n++] = v;
        while (*end == ' ')
            end++;
        if (*end == ',')
            end++;
        else if (*end) {
            snprintf(errstr, errlen, "config: key 'rollout.steps': unexpected '%s'", end);
            return SS_ERR_CONFIG;
        }
        while (*end == ' ')
            end++;
        p = end;
    }
    if (n == 0) {
        snprintf(errstr, errlen, "config: key 'rollout.steps': no step");
        return SS_ERR_CONFIG;
    }
    return n;
}

double ss_rollout_next_step(const double *steps, int n, double share) {
    for (int i = 0; i < n; i++)
        if (ss_rollout_buckets(steps[i]) > ss_rollout_buckets(share))
            return steps[i];
    return -1;
}

static void derive(const ss_rollout_state_t *cur, ss_rollout_state_t *next) {
    *next = *cur;
    next->base = cur->offset;
    next->offset = -1;
    next->reason[0] = next->by[0] = '\0';
    next->automatic = 0;
}

static int refuse(const ss_rollout_state_t *cur, const char *what, char *errstr, size_t errlen) {
    snprintf(errstr, errlen, "cannot %s: the rollout is %s%s", what,
             ss_rollout_phase_name(cur->phase),
             cur->phase == SS_ROLLOUT_NONE ? " (no candidate was started)" : "");
    return SS_ERR_CONFIG;
}

int ss_rollout_start(const ss_rollout_state_t *cur, const ss_rollout_model_t *candidate,
                     double share, ss_rollout_state_t *next, char *errstr, size_t errlen) {
    if (!(share >= 0 && share <= 1)) {
        snprintf(errstr, errlen, "the share must be in 0..1");
        return SS_ERR_CONFIG;
    }
    if (cur->phase == SS_ROLLOUT_SHADOW || cur->phase == SS_ROLLOUT_CANARY) {
        snprintf(errstr, errlen,
                 "cannot start: candidate %s %s is %s already (promote or roll it back first)",
                 cur->candidate.name, cur->candidate.version, ss_rollout_phase_name(cur->phase));
        return SS_ERR_CONFIG;
    }
    derive(cur, next);
    next->candidate = *candidate;
    next->candidate.set = 1;
    next->share = ss_rollout_buckets(share) ? share : 0;
    next->phase = next->share > 0 ? SS_ROLLOUT_CANARY : SS_ROLLOUT_SHADOW;
    return 0;
}

int ss_rollout_step(const ss_rollout_state_t *cur, double share, ss_rollout_state_t *next,
                    char *errstr, size_t errlen) {
    if (cur->phase != SS_ROLLOUT_SHADOW && cur->phase != SS_ROLLOUT_CANARY)
        return refuse(cur, "step", errstr, errlen);
    if (!(share >= 0 && share <= 1)) {
        snprintf(errstr, errlen, "the share must be in 0..1");
        return SS_ERR_CONFIG;
    }
    derive(cur, next);
    next->share = ss_rollout_buckets(share) ? share : 0;
    next->phase = next->share > 0 ? SS_ROLLOUT_CANARY : SS_ROLLOUT_SHADOW;
    return 0;
}

int ss_rollout_promote(const ss_rollout_state_t *cur, ss_rollout_state_t *next, char *errstr,
                       size_t errlen) {
    if (cur->phase != SS_ROLLOUT_SHADOW && cur->phase != SS_ROLLOUT_CANARY)
        return refuse(cur, "promote", errstr, errlen);
    derive(cur, next);
    next->previous = cur->live;
    next->live = cur->candidate;
    memset(&next->candidate, 0, sizeof(next->candidate));
    next->share = 0;
    next->phase = SS_ROLLOUT_PROMOTED;
    return 0;
}

int ss_rollout_rollback(const ss_rollout_state_t *cur, ss_rollout_state_t *next, char *errstr,
                        size_t errlen) {
    if (cur->phase != SS_ROLLOUT_SHADOW && cur->phase != SS_ROLLOUT_CANARY &&
        cur->phase != SS_ROLLOUT_PROMOTED)
        return refuse(cur, "roll back", errstr, errlen);
    derive(cur, next);
    if (cur->phase == SS_ROLLOUT_PROMOTED) { /* the promoted model becomes the candidate again */
        next->candidate = cur->live;
        next->live = cur->previous;
        memset(&next->previous, 0, sizeof(next->previous));
    }
    next->share = 0;
    next->phase = SS_ROLLOUT_ROLLED_BACK;
    return 0;
}

void ss_rollout_stamp(ss_rollout_state_t *s, const char *reason, const char *by, int automatic,
                      int64_t now_ms) {
    if (reason != s->reason)
        snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
    if (by != s->by)
        snprintf(s->by, sizeof(s->by), "%s", by ? by : "");
    s->automatic = automatic;
    s->at = now_ms;
}

/* ------------------------------------------------------------------ routing */

uint32_t ss_rollout_buckets(double share) {
    if (!(share > 0))
        return 0;
    if (share >= 1)
        return SS_ROUTE_BUCKETS;
    return (uint32_t)llround(share * SS_ROUTE_BUCKETS);
}

uint64_t ss_rollout_salt(const char *salt) {
    return ss_fnv1a(SS_FNV1A_INIT, salt, strlen(salt) + 1); /* with its 0 byte */
}

uint32_t ss_rollout_bucket_of(uint64_t salted, const char *id, size_t len) {
    return (uint32_t)(ss_fmix64(ss_fnv1a(salted, id, len)) % SS_ROUTE_BUCKETS);
}

uint32_t ss_rollout_bucket(const char *salt, const char *id, size_t len) {
    return ss_rollout_bucket_of(ss_rollout_salt(salt), id, len);
}
