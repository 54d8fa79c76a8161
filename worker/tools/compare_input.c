/* compare_input.c - both sides of `compare` read into the spill: the primary's output topic,
 * the shadow's topic or results file. Each decoded prediction becomes a fixed 80-byte record
 * with its label (and on the primary, its route), followed by its outputs when it has some;
 * records outside the time range are counted and skipped (by Kafka timestamp on a topic, by
 * scored_at in the shadow file). What the records hold (decisions, classes, outputs, the
 * scores' range) is noted on the way: it decides the kind of comparison. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare_int.h"
#include "error.h"
#include "log.h"

static int intern_topic(cmp_t *c, const cmp_str_t *s) {
    size_t n = s->n < 255 ? s->n : 255;
    for (int i = 0; i < c->n_topics; i++)
        if (strlen(c->topics[i]) == n && memcmp(c->topics[i], s->p, n) == 0)
            return i;
    if (c->n_topics == CMP_MAX_TOPICS)
        return SS_ERR_FAIL;
    memcpy(c->topics[c->n_topics], s->p, n);
    c->topics[c->n_topics][n] = '\0';
    return c->n_topics++;
}

/* The index of the prediction's model among the side's, 0xffff beyond SS_CMP_MAX_MODELS. */
static int model_index(ss_cmp_side_t *sd, const cmp_pred_t *p) {
    size_t nn = p->model_name.n < 127 ? p->model_name.n : 127;
    size_t nv = p->model_version.n < 63 ? p->model_version.n : 63;
    int i;
    for (i = 0; i < sd->n_models; i++)
        if (strlen(sd->models[i].name) == nn &&
            memcmp(sd->models[i].name, p->model_name.p, nn) == 0 &&
            strlen(sd->models[i].version) == nv &&
            memcmp(sd->models[i].version, p->model_version.p, nv) == 0)
            break;
    if (i == sd->n_models) {
        if (i == SS_CMP_MAX_MODELS)
            return 0xffff;
        memcpy(sd->models[i].name, p->model_name.p, nn);
        memcpy(sd->models[i].version, p->model_version.p, nv);
        sd->n_models++;
    }
    sd->models[i].threshold = p->threshold;
    return i;
}

/* The index of a primary prediction's route in the result's routes: "live" 0 and "canary" 1,
 * then others as read (their first SS_CMP_ROUTE_NAME - 1 bytes, a byte beyond printable ASCII
 * read as '?'), the last slot, "(others)", taking every route beyond. */
static int route_index(ss_cmp_result_t *r, const cmp_str_t *route) {
    char name[SS_CMP_ROUTE_NAME];
    size_t n = route->n < sizeof(name) - 1 ? route->n : sizeof(name) - 1;
    int i;
    for (size_t k = 0; k < n; k++)
        name[k] = route->p[k] >= 0x20 && route->p[k] < 0x7f ? route->p[k] : '?';
    name[n] = '\0';
    if (r->n_routes == 0) {
        snprintf(r->routes[0].name, SS_CMP_ROUTE_NAME, "live");
        snprintf(r->routes[1].name, SS_CMP_ROUTE_NAME, "canary");
        r->n_routes = 2;
    }
    for (i = 0; i < r->n_routes; i++)
        if (strcmp(r->routes[i].name, name) == 0)
            return i;
    if (i == SS_CMP_MAX_ROUTES)
        return SS_CMP_MAX_ROUTES - 1;
    snprintf(r->routes[i].name, SS_CMP_ROUTE_NAME, "%s",
             i == SS_CMP_MAX_ROUTES - 1 ? "(others)" : name);
    r->n_routes++;
    return i;
}

static void malformed(cmp_t *c, int side, const char *where, int64_t at) {
    if (++c->r.side[side].malformed <= 5)
        ss_log(SS_LOG_WARN,
               SS_FIELDS(SSF_STR("side", c->r.side[side].name), SSF_STR("at", where),
                         SSF_INT("position", at)),
               "compare: malformed %s record skipped (%s %" PRId64 ")", c->r.side[side].name, where,
               at);
}

/* What the record holds, for the kind of comparison. */
static void note_kind(cmp_t *c, int side, const cmp_pred_t *p) {
    if (c->r.side[0].read + c->r.side[1].read == 0) /* the first */
        c->score_min = c->score_max = p->score;
    c->with_decision += (uint64_t)p->has_decision;
    c->with_class += p->predicted_class >= 0;
    c->max_class = p->predicted_class > c->max_class ? p->predicted_class : c->max_class;
    c->score_min = p->score < c->score_min ? p->score : c->score_min;
    c->score_max = p->score > c->score_max ? p->score : c->score_max;
    if (p->n_outputs > (size_t)c->max_out[side])
        c->max_out[side] = p->n_outputs < 65535 ? (int)p->n_outputs : 65535;
}

/* One decoded prediction into the spill. */
static int take(cmp_t *c, int side, const cmp_pred_t *p, const char *where, int64_t at) {
    int topic = intern_topic(c, &p->source_topic);
    double value;
    if (topic < 0) {
        malformed(c, side, where, at);
        return 0;
    }
    note_kind(c, side, p);
    int label = cmp_label_of(c, &p->customer_id, p->event_time, &value);
    cmp_rec_t r = {.offset = p->offset,
                   .event_time = p->event_time,
                   .scored_at = p->scored_at,
                   .seq = c->seq[side]++,
                   .fhash = p->fhash,
                   .score = p->score,
                   .value = value,
                   .topic = (uint32_t)topic,
                   .partition = p->partition,
                   .cls = p->predicted_class,
                   .model = (uint16_t)model_index(&c->r.side[side], p),
                   .n_out = (uint16_t)(p->n_outputs < 65535 ? p->n_outputs : 65535),
                   .side = (uint8_t)side,
                   .decision = p->has_decision ? (uint8_t)p->decision : CMP_NO_DECISION,
                   .label = (int8_t)label,
                   .route = side == SS_CMP_PRIMARY ? (uint8_t)route_index(&c->r, &p->route) : 0};
    c->r.side[side].read++;
    return cmp_spill_push(&c->spill, &r, p->outputs, c->err, sizeof(c->err));
}

static int ranged(const cmp_t *c) {
    return c->o.from_ms != INT64_MIN || c->o.to_ms != INT64_MAX;
}

static int in_range(const cmp_t *c, int64_t ts) {
    return ts != CMP_NO_TIME && ts >= c->o.from_ms && (c->o.to_ms == INT64_MAX || ts < c->o.to_ms);
}

/* Topic index 0 is the primary's output topic, 1 the shadow's. */
static int on_prediction(void *opaque, int side, const rd_kafka_message_t *m) {
    cmp_t *c = opaque;
    cmp_pred_t p;
    char where[320];
    if (ranged(c)) {
        int64_t ts = rd_kafka_message_timestamp(m, NULL);
        if (!in_range(c, ts < 0 ? CMP_NO_TIME : ts)) {
            c->r.side[side].out_of_range++;
            return 0;
        }
    }
    if (!m->payload ||
        cmp_decode(c->dec, c->cfg->output_format == SS_FORMAT_JSON, m->payload, m->len, &p) < 0) {
        snprintf(where, sizeof(where), "topic %s partition %d offset", rd_kafka_topic_name(m->rkt),
                 m->partition);
        malformed(c, side, where, m->offset);
        return 0;
    }
    snprintf(where, sizeof(where), "topic %s offset", rd_kafka_topic_name(m->rkt));
    return take(c, side, &p, where, m->offset);
}

/* The shadow's JSON lines; the time range applies to scored_at. */
static int read_shadow_file(cmp_t *c, FILE *f) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t lineno = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        cmp_pred_t p;
        lineno++;
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            n--;
        if (n == 0)
            continue;
        if (cmp_decode(c->dec, 1, line, (size_t)n, &p) < 0)
            malformed(c, SS_CMP_SHADOW, "shadow.file line", lineno);
        else if (ranged(c) && !in_range(c, p.scored_at))
            c->r.side[SS_CMP_SHADOW].out_of_range++;
        else
            rc = take(c, SS_CMP_SHADOW, &p, "shadow.file line", lineno);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(c->err, sizeof(c->err), "shadow.file '%s': read error: %s", c->cfg->shadow_file,
                 strerror(errno));
        rc = SS_ERR_FAIL;
    }
    free(line);
    return rc;
}

int cmp_read_inputs(cmp_t *c, cmp_kreader_t *kr, FILE *shadow_file, char *errstr, size_t errlen) {
    int rc = 0;
    if (shadow_file)
        rc = read_shadow_file(c, shadow_file);
    if (rc == 0)
        rc = cmp_kreader_run(kr, on_prediction, c, errstr, errlen);
    if (rc < 0 && *c->err)
        snprintf(errstr, errlen, "%s", c->err);
    return rc;
}
