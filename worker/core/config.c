/* config.c - the configuration's sources: defaults, properties files, environment
 * overrides and single keys (-X), each value parsed and bounded by the type of its row in
 * the key table (config_keys.c), kafka.* passed through to librdkafka after it judged them. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "error.h"

const char *ss_mode_name(int mode) {
    return mode == SS_MODE_SHADOW ? "shadow" : "primary";
}

int ss_config__parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        return SS_ERR_CONFIG;
    *out = v;
    return 0;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\f')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\f'))
        s[--n] = '\0';
    return s;
}

/* The setters, one per type: parse `value` for row `k` into `field`, or say why not in `why`
 * (what follows "key 'K': " in the message). */
typedef int (*setter_t)(const ss_config__key_t *k, const char *value, void *field, char *why,
                        size_t whylen);

static int set_string(const ss_config__key_t *k, const char *value, void *field, char *why,
                      size_t whylen) {
    (void)k;
    char *copy = strdup(value);
    if (!copy) {
        snprintf(why, whylen, "out of memory");
        return SS_ERR_NOMEM;
    }
    free(*(char **)field);
    *(char **)field = copy;
    return 0;
}

static int set_int(const ss_config__key_t *k, const char *value, void *field, char *why,
                   size_t whylen) {
    long v;
    if (ss_config__parse_long(value, &v) < 0) {
        snprintf(why, whylen, "expected an integer, got '%s'", value);
        return SS_ERR_CONFIG;
    }
    if (v < (long)k->min || v > (long)k->max) {
        snprintf(why, whylen, "%ld is out of range [%.0f, %.0f]", v, k->min, k->max);
        return SS_ERR_CONFIG;
    }
    *(long *)field = v;
    return 0;
}

static int set_double(const ss_config__key_t *k, const char *value, void *field, char *why,
                      size_t whylen) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v)) {
        snprintf(why, whylen, "expected a number, got '%s'", value);
        return SS_ERR_CONFIG;
    }
    if (v < k->min || v > k->max) {
        snprintf(why, whylen, "%g is out of range [%g, %g]", v, k->min, k->max);
        return SS_ERR_CONFIG;
    }
    *(double *)field = v;
    return 0;
}

/* The index of `value` in "a|b|c", stored as an int. */
static int set_enum(const ss_config__key_t *k, const char *value, void *field, char *why,
                    size_t whylen) {
    size_t vlen = strlen(value);
    const char *p = k->values;
    for (int idx = 0; p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncmp(p, value, len) == 0) {
            *(int *)field = idx;
            return 0;
        }
        p = bar ? bar + 1 : NULL;
    }
    snprintf(why, whylen, "'%s' is not one of %s", value, k->values);
    return SS_ERR_CONFIG;
}

static const setter_t setters[] = {
    [SS_CT_STRING] = set_string,
    [SS_CT_INT] = set_int,
    [SS_CT_DOUBLE] = set_double,
    [SS_CT_ENUM] = set_enum,
};

/* kafka.<property> and its one-side forms: librdkafka judges the name and value now, so a
 * typo is a config error; the pair is kept, in order, for ss_kafka_conf_apply. */
static int set_kafka(ss_config_t *cfg, const ss_config__prefix_t *p, const char *key,
                     const char *value, char *why, size_t whylen) {
    const char *name = key + strlen(p->prefix);
    if (!*name) {
        snprintf(why, whylen, "a librdkafka property name must follow the prefix");
        return SS_ERR_CONFIG;
    }
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    rd_kafka_conf_res_t res = rd_kafka_conf_set(probe, name, value, why, whylen);
    rd_kafka_conf_destroy(probe);
    if (res != RD_KAFKA_CONF_OK)
        return SS_ERR_CONFIG;
    ss_kv_t *kv = NULL;
    for (size_t j = 0; j < cfg->n_kafka && !kv; j++)
        if (cfg->kafka[j].scope == p->side && strcmp(cfg->kafka[j].key, name) == 0)
            kv = &cfg->kafka[j]; /* set again: the last value wins, in its first place */
    char *v = strdup(value), *n = NULL;
    if (!v)
        goto oom;
    if (!kv) {
        ss_kv_t *grown = realloc(cfg->kafka, (cfg->n_kafka + 1) * sizeof(*grown));
        if (!grown || !(n = strdup(name))) {
            cfg->kafka = grown ? grown : cfg->kafka;
            goto oom;
        }
        cfg->kafka = grown;
        kv = &cfg->kafka[cfg->n_kafka++];
        *kv = (ss_kv_t){.key = n, .value = NULL, .scope = p->side};
    }
    free(kv->value);
    kv->value = v;
    return 0;
oom:
    free(v);
    snprintf(why, whylen, "out of memory");
    return SS_ERR_NOMEM;
}

/* One key from `origin`; a secret only where `secret_ok` (the environment, the defaults): a
 * properties file is read by whoever reads the deployment's configuration, and -X by whoever
 * lists the processes. The message never holds the value of a secret. */
static int set_key(ss_config_t *cfg, const char *key, const char *value, const char *origin,
                   int secret_ok, char *errstr, size_t errlen) {
    const ss_config__prefix_t *p = ss_config__find_prefix(key);
    const ss_config__key_t *k = p ? NULL : ss_config__find(key);
    char why[512];
    int rc;
    if (k && (k->flags & SS_KEY_SECRET) && !secret_ok) {
        char env[128];
        ss_config_env_name(key, env, sizeof(env));
        snprintf(errstr, errlen,
                 "config (%s): key '%s' is a secret, never read from a properties file nor -X: "
                 "set the environment variable %s, or %s.file to a file holding it",
                 origin, key, env, key);
        return SS_ERR_CONFIG;
    }
    if (p)
        rc = set_kafka(cfg, p, key, value, why, sizeof(why));
    else if (k)
        rc = setters[k->type](k, value, ss_config__field(cfg, k), why, sizeof(why));
    else {
        snprintf(errstr, errlen, "config (%s): unknown key '%s' (see 'streamscore --help')", origin,
                 key);
        return SS_ERR_CONFIG;
    }
    if (rc < 0)
        snprintf(errstr, errlen, "config (%s): key '%s': %s", origin, key, why);
    return rc;
}

int ss_config_set(ss_config_t *cfg, const char *key, const char *value, const char *origin,
                  char *errstr, size_t errlen) {
    return set_key(cfg, key, value, origin, 0, errstr, errlen);
}

static int set_defaults(ss_config_t *cfg) {
    char err[256];
    cfg->model_threshold = NAN; /* not set: the model card decides */
    for (size_t i = 0; i < ss_config__n_keys; i++) {
        const ss_config__key_t *k = &ss_config__keys[i];
        if (k->def && set_key(cfg, k->key, k->def, "default", 1, err, sizeof(err)) < 0)
            return SS_ERR_NOMEM; /* the table's defaults are valid: only memory can fail */
    }
    return 0;
}

void ss_config_destroy(ss_config_t *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < ss_config__n_keys; i++)
        if (ss_config__keys[i].type == SS_CT_STRING)
            free(*(char **)ss_config__field(cfg, &ss_config__keys[i]));
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    free(cfg);
}

ss_config_t *ss_config_new(void) {
    ss_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg && set_defaults(cfg) < 0) {
        ss_config_destroy(cfg);
        cfg = NULL;
    }
    return cfg;
}

/* Java properties: the key (at `line`, blanks trimmed) ends at the first '=', ':' or blank
 * not escaped by a backslash; blanks, at most one '=' or ':', and blanks again lead to the
 * value. Ends the key in place and returns the value (trimmed; "" when there is none). */
static char *split_value(char *line) {
    char *p = line;
    while (*p && *p != '=' && *p != ':' && *p != ' ' && *p != '\t' && *p != '\f')
        p += p[0] == '\\' && p[1] ? 2 : 1;
    char *end = p;
    while (*p == ' ' || *p == '\t' || *p == '\f')
        p++;
    if (*p == '=' || *p == ':')
        p++;
    *end = '\0';
    return trim(p);
}

/* The keys a properties text gave, each with its line, to tell of repeats. */
typedef struct seen_keys {
    char **keys;
    int *lines;
    size_t n, cap;
} seen_keys_t;

static int note_key(ss_config_t *cfg, seen_keys_t *seen, const char *key, const char *name,
                    int line) {
    for (size_t i = 0; i < seen->n; i++) {
        if (strcmp(seen->keys[i], key) != 0)
            continue;
        if (cfg->warn) {
            char msg[512];
            snprintf(msg, sizeof(msg),
                     "config (%s:%d): key '%s' given again (line %d gave it before); the last "
                     "value counts",
                     name, line, key, seen->lines[i]);
            cfg->warn(msg);
        }
        seen->lines[i] = line;
        return 0;
    }
    if (seen->n == seen->cap) {
        size_t cap = seen->cap ? seen->cap * 2 : 32;
        char **k = realloc(seen->keys, cap * sizeof(*k));
        if (k)
            seen->keys = k;
        int *l = realloc(seen->lines, cap * sizeof(*l));
        if (l)
            seen->lines = l;
        if (!k || !l)
            return SS_ERR_NOMEM;
        seen->cap = cap;
    }
    if (!(seen->keys[seen->n] = strdup(key)))
        return SS_ERR_NOMEM;
    seen->lines[seen->n++] = line;
    return 0;
}

int ss_config_load_string(ss_config_t *cfg, const char *text, size_t len, const char *name,
                          char *errstr, size_t errlen) {
    char *buf = malloc(len + 1);
    if (!buf) {
        snprintf(errstr, errlen, "config: out of memory");
        return SS_ERR_NOMEM;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        snprintf(errstr, errlen, "config (%s): contains a NUL byte", name);
        free(buf);
        return SS_ERR_CONFIG;
    }
    int rc = 0, lineno = 0;
    seen_keys_t seen = {0};
    char *logical = NULL, *next = buf;
    size_t loglen = 0;
    int start_line = 0;
    while (next) {
        char *line = next;
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        next = nl ? nl + 1 : NULL;
        lineno++;
        char *t = trim(line);
        if (!logical && (*t == '#' || *t == '!' || *t == '\0'))
            continue;
        size_t tl = strlen(t);
        int cont = tl > 0 && t[tl - 1] == '\\';
        if (cont)
            t[--tl] = '\0';
        char *grown = realloc(logical, loglen + tl + 1);
        if (!grown) {
            rc = SS_ERR_NOMEM;
            snprintf(errstr, errlen, "config: out of memory");
            break;
        }
        if (!logical)
            start_line = lineno;
        logical = grown;
        memcpy(logical + loglen, t, tl + 1);
        loglen += tl;
        if (cont)
            continue;

        char origin[300];
        snprintf(origin, sizeof(origin), "%s:%d", name, start_line);
        char *key = trim(logical), *value = split_value(key);
        if (!*key) {
            snprintf(errstr, errlen, "config (%s): empty key", origin);
            rc = SS_ERR_CONFIG;
            break;
        }
        if ((rc = ss_config_set(cfg, key, value, origin, errstr, errlen)) < 0)
            break;
        if ((rc = note_key(cfg, &seen, key, name, start_line)) < 0) {
            snprintf(errstr, errlen, "config: out of memory");
            break;
        }
        free(logical);
        logical = NULL;
        loglen = 0;
    }
    free(logical);
    free(buf);
    for (size_t i = 0; i < seen.n; i++)
        free(seen.keys[i]);
    free(seen.keys);
    free(seen.lines);
    return rc;
}

int ss_config_load_file(ss_config_t *cfg, const char *path, char *errstr, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errlen, "config: cannot open '%s': %s", path, strerror(errno));
        return SS_ERR_CONFIG;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            char *g = realloc(text, cap);
            if (!g) {
                rc = SS_ERR_NOMEM;
                break;
            }
            text = g;
        }
        memcpy(text + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (rc == 0)
        rc = ss_config_load_string(cfg, text ? text : "", len, path, errstr, errlen);
    else
        snprintf(errstr, errlen, "config: out of memory reading '%s'", path);
    free(text);
    return rc;
}

void ss_config_env_name(const char *key, char *out, size_t outlen) {
    size_t n = (size_t)snprintf(out, outlen, "STREAMSCORE_");
    for (const char *p = key; *p && n + 1 < outlen; p++)
        out[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    out[n < outlen ? n : outlen - 1] = '\0';
}

int ss_config_apply_env(ss_config_t *cfg, char **envp, void (*unknown_cb)(const char *name),
                        char *errstr, size_t errlen) {
    static const char prefix[] = "STREAMSCORE_";
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - *e);
        char name[256], key[256], origin[300];
        if (nlen >= sizeof(name))
            continue;
        memcpy(name, *e, nlen);
        name[nlen] = '\0';
        size_t k = 0;
        for (const char *p = name + sizeof(prefix) - 1; *p && k + 1 < sizeof(key); p++)
            key[k++] = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        key[k] = '\0';
        snprintf(origin, sizeof(origin), "env %s", name);
        if (!ss_config__find_prefix(key) && !ss_config__find(key)) {
            if (unknown_cb)
                unknown_cb(name);
            continue;
        }
        int rc = set_key(cfg, key, eq + 1, origin, 1, errstr, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ss_config_parse_pairs(const char *list, const char *key,
                          int (*cb)(void *opaque, const char *k, const char *v, char *errstr,
                                    size_t errlen),
                          void *opaque, char *errstr, size_t errlen) {
    char *copy = strdup(list ? list : "");
    if (!copy) {
        snprintf(errstr, errlen, "config: key '%s': out of memory", key);
        return SS_ERR_NOMEM;
    }
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *t = trim(item);
        if (!*t)
            continue;
        char *eq = strchr(t, '=');
        if (!eq) {
            snprintf(errstr, errlen, "config: key '%s': expected NAME=VALUE, got '%s'", key, t);
            rc = SS_ERR_CONFIG;
            break;
        }
        *eq = '\0';
        char *k = trim(t), *v = trim(eq + 1);
        if (!*k || !*v) {
            snprintf(errstr, errlen, "config: key '%s': empty name or value in '%s=%s'", key, k, v);
            rc = SS_ERR_CONFIG;
            break;
        }
        char err[400];
        if (cb(opaque, k, v, err, sizeof(err)) < 0) {
            /* a message that names its key already is passed on as it is */
            if (strncmp(err, "config: ", 8) == 0)
                snprintf(errstr, errlen, "%s", err);
            else
                snprintf(errstr, errlen, "config: key '%s': %s", key, err);
            rc = SS_ERR_CONFIG;
            break;
        }
    }
    free(copy);
    return rc;
}

int ss_config_parse_listen(const char *s, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
        return SS_ERR_CONFIG;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 1 || p > 65535)
        return SS_ERR_CONFIG;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)p;
    return 0;
}
