/* state_changelog.c - the changelog of exactly-once feature updates: records sent inside a
 * batch's transaction, the committed offsets they reached, the checkpoint written to Redis
 * with the features, and the replay into Redis when a partition is assigned. */
#include "state_changelog.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "features.h"
#include "kafka.h"
#include "log.h"

struct ss_changelog {
    const ss_config_t *cfg;
    size_t nf;
    char **names;                      /* the feature names as JSON strings, quoted */
    char *key;                         /* the checkpoint hash */
    ss_ack_t ack;                      /* the batch's records; next_offset per partition */
    int64_t *committed, *checkpointed; /* per partition: next offset committed, checkpointed */
    int32_t n_parts;
    char *value;
    size_t value_cap;
};

/* ------------------------------------------------------------------ the topic at start-up */

/* A producer (topic metadata, creation) or a consumer reading committed records from the
 * start, outside the group. */
static rd_kafka_t *client(const ss_config_t *cfg, rd_kafka_type_t type, char *errstr,
                          size_t errlen) {
    static const char *const reader[][2] = {{"enable.auto.commit", "false"},
                                            {"isolation.level", "read_committed"},
                                            {"enable.partition.eof", "true"},
                                            {"auto.offset.reset", "earliest"}};
    int consumer = type == RD_KAFKA_CONSUMER;
    return ss_kafka_client(cfg, type, NULL, reader, consumer ? 4 : 0, "changelog", errstr, errlen);
}

/* The input's partition count. A topic just created may not be in every broker's metadata
 * yet: asked again for up to 15 s before it is called missing (or the cluster unreachable). A
 * client refused (credentials, certificate) gets no answer at all: it is told so at once. */
static int input_partitions(rd_kafka_t *rk, const ss_config_t *cfg, char *errstr, size_t errlen) {
    int n = -1;
    for (int64_t until = ss_mono_ms() + 15000;
         (n == -1 || n == SS_ERR_FAIL) && ss_mono_ms() < until;) {
        n = ss_kafka_partitions(rk, cfg->input_topic, 1000, "changelog", errstr, errlen);
        rd_kafka_poll(rk, 0); /* its errors: a refusal is noted */
        if (ss_kafka_refused(errstr, errlen))
            return SS_ERR_CONFIG;
        if (n == -1)
            ss_sleep_ms(500);
    }
    if (n == -1) {
        snprintf(errstr, errlen, "changelog: the input topic '%s' does not exist (key input.topic)",
                 cfg->input_topic);
        n = SS_ERR_CONFIG;
    }
    return n;
}

int ss_changelog_prepare(const ss_config_t *cfg, char *errstr, size_t errlen) {
    rd_kafka_t *rk = client(cfg, RD_KAFKA_PRODUCER, errstr, errlen);
    if (!rk)
        return SS_ERR_CONFIG;
    int rc, in = input_partitions(rk, cfg, errstr, errlen);
    if ((rc = in) < 0)
        goto done;
    rc = ss_kafka_partitions(rk, cfg->state_changelog_topic, 10000, "changelog", errstr, errlen);
    if (rc == -1)
        rc = ss_kafka_create_compacted(rk, cfg->state_changelog_topic, in,
                                       (int)cfg->state_changelog_replication_factor, "changelog",
                                       "state.changelog.topic", errstr, errlen);
    else if (rc >= 0 && rc < in) {
        snprintf(errstr, errlen,
                 "config: key 'state.changelog.topic': '%s' has %d partitions, fewer than the "
                 "input topic's %d",
                 cfg->state_changelog_topic, rc, in);
        rc = SS_ERR_CONFIG;
    } else if (rc >= 0) {
        rc = 0;
    }
done:
    rd_kafka_destroy(rk);
    return rc;
}

/* ------------------------------------------------------------------ records of a batch */

void ss_changelog_destroy(ss_changelog_t *cl) {
    if (!cl)
        return;
    for (size_t f = 0; cl->names && f < cl->nf; f++)
        free(cl->names[f]);
    ss_ack_destroy(&cl->ack);
    void *bufs[] = {cl->names, cl->key, cl->ack.next_offset, cl->committed, cl->checkpointed,
                    cl->value, cl};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        free(bufs[i]);
}

ss_changelog_t *ss_changelog_new(const ss_config_t *cfg, char *const *features, size_t nf,
                                 char *errstr, size_t errlen) {
    ss_changelog_t *cl = ss_zalloc(sizeof(*cl), "changelog", errstr, errlen);
    if (!cl)
        return NULL;
    ss_ack_init(&cl->ack);
    cl->cfg = cfg;
    cl->nf = nf;
    cl->names = calloc(nf ? nf : 1, sizeof(char *));
    size_t klen = strlen(cfg->state_changelog_topic) + 32;
    cl->key = malloc(klen);
    int ok = cl->names && cl->key;
    for (size_t f = 0; ok && f < nf; f++) {
        json_t *s = json_string(features[f]);
        ok = s && (cl->names[f] = json_dumps(s, JSON_ENCODE_ANY)) != NULL;
        json_decref(s);
    }
    if (!ok) {
        snprintf(errstr, errlen, "changelog: out of memory");
        ss_changelog_destroy(cl);
        return NULL;
    }
    snprintf(cl->key, klen, "streamscore:changelog:%s", cfg->state_changelog_topic);
    return cl;
}

/* Room for partitions [0, n): grows the offset tables (the ack's under its lock). */
static int reserve_partitions(ss_changelog_t *cl, int32_t n) {
    if (n <= cl->n_parts)
        return 0;
    int64_t *a = realloc(cl->committed, (size_t)n * sizeof(int64_t));
    if (a)
        cl->committed = a;
    int64_t *c = a ? realloc(cl->checkpointed, (size_t)n * sizeof(int64_t)) : NULL;
    if (c)
        cl->checkpointed = c;
    pthread_mutex_lock(&cl->ack.lock);
    int64_t *d = c ? realloc(cl->ack.next_offset, (size_t)n * sizeof(int64_t)) : NULL;
    if (d) {
        cl->ack.next_offset = d;
        for (int32_t p = cl->n_parts; p < n; p++)
            a[p] = c[p] = d[p] = -1;
        cl->ack.n_next = n;
        cl->n_parts = n;
    }
    pthread_mutex_unlock(&cl->ack.lock);
    return d ? 0 : SS_ERR_NOMEM;
}

/* The customer's merged vector as {"name":"text",...}: the features it has, in Redis' text. */
static int format_value(ss_changelog_t *cl, const float *row, size_t *len) {
    size_t need = 2;
    for (size_t f = 0; f < cl->nf; f++)
        need += strlen(cl->names[f]) + 40;
    if (need > cl->value_cap) {
        char *g = realloc(cl->value, need);
        if (!g)
            return SS_ERR_NOMEM;
        cl->value = g;
        cl->value_cap = need;
    }
    size_t off = 0;
    cl->value[off++] = '{';
    for (size_t f = 0; f < cl->nf; f++) {
        if (isnan(row[f]))
            continue;
        char text[32];
        ss_feature_format(row[f], text, sizeof(text));
        off +=
            (size_t)sprintf(cl->value + off, "%s%s:\"%s\"", off > 1 ? "," : "", cl->names[f], text);
    }
    cl->value[off++] = '}';
    *len = off;
    return 0;
}

int ss_changelog_send(ss_changelog_t *cl, ss_producer_t *p, const char *id, size_t id_len,
                      int32_t partition, const float *vec, char *errstr, size_t errlen) {
    size_t len;
    if (reserve_partitions(cl, partition + 1) < 0 || format_value(cl, vec, &len) < 0) {
        snprintf(errstr, errlen, "changelog: out of memory");
        return SS_ERR_NOMEM;
    }
    return ss_producer_send(p, cl->cfg->state_changelog_topic, partition, id, id_len, cl->value,
                            len, NULL, 0, NULL, &cl->ack, errstr, errlen);
}

/* Wait for the transaction's records' reports, then hand their offsets to `keep` (or not). */
static void settle(ss_changelog_t *cl, int keep) {
    while (ss_ack_wait(&cl->ack, 1000) > 0)
        ;
    pthread_mutex_lock(&cl->ack.lock);
    for (int32_t p = 0; p < cl->n_parts; p++) {
        if (keep && cl->ack.next_offset[p] > cl->committed[p])
            cl->committed[p] = cl->ack.next_offset[p];
        cl->ack.next_offset[p] = -1;
    }
    cl->ack.failed = 0;
    pthread_mutex_unlock(&cl->ack.lock);
}

void ss_changelog_committed(ss_changelog_t *cl) {
    settle(cl, 1);
}

void ss_changelog_aborted(ss_changelog_t *cl) {
    settle(cl, 0);
}

static void queue_checkpoint(ss_cache_t *cache, const char *key, int32_t partition,
                             int64_t offset) {
    char field[16], value[24];
    snprintf(field, sizeof(field), "%d", (int)partition);
    snprintf(value, sizeof(value), "%lld", (long long)offset);
    const char *argv[] = {"HSET", key, field, value};
    ss_cache_queue_command(cache, 4, argv, NULL);
}

void ss_changelog_queue_checkpoint(ss_changelog_t *cl, ss_cache_t *cache) {
    for (int32_t p = 0; p < cl->n_parts; p++) {
        if (cl->committed[p] > cl->checkpointed[p]) {
            queue_checkpoint(cache, cl->key, p, cl->committed[p]);
            cl->checkpointed[p] = cl->committed[p];
        }
    }
}

/* ------------------------------------------------------------------ replay on assignment */

/* One changelog record into Redis: HSET of its features, EXPIRE. */
static void queue_record(const ss_config_t *cfg, ss_cache_t *cache, const rd_kafka_message_t *m) {
    json_t *root = json_loadb(m->payload, m->len, 0, NULL);
    size_t n = root && json_is_object(root) ? json_object_size(root) : 0;
    if (!m->key || n == 0) {
        json_decref(root);
        return; /* not a record of this changelog: nothing to apply */
    }
    size_t plen = strlen(cfg->redis_key_prefix), argc = 2;
    char *key = malloc(plen + m->key_len + 1);
    const char **argv = calloc(2 + 2 * n, sizeof(char *));
    size_t *lens = calloc(2 + 2 * n, sizeof(size_t));
    if (key && argv && lens) {
        memcpy(key, cfg->redis_key_prefix, plen);
        memcpy(key + plen, m->key, m->key_len);
        argv[0] = "HSET";
        argv[1] = key;
        lens[0] = 4;
        lens[1] = plen + m->key_len;
        const char *name;
        json_t *v;
        json_object_foreach(root, name, v) {
            if (!json_is_string(v))
                continue;
            argv[argc] = name;
            lens[argc++] = strlen(name);
            argv[argc] = json_string_value(v);
            lens[argc++] = json_string_length(v);
        }
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%ld", cfg->redis_ttl_seconds);
        const char *expire[] = {"EXPIRE", key, ttl};
        size_t elens[] = {6, lens[1], strlen(ttl)};
        if (argc > 2) {
            ss_cache_queue_command(cache, argc, argv, lens);
            ss_cache_queue_command(cache, 3, expire, elens);
        }
    }
    free(key);
    free(argv);
    free(lens);
    json_decref(root);
}

/* Where each partition's replay starts: its checkpoint, else the beginning. */
static int start_offsets(ss_changelog_t *cl, ss_cache_t *cache,
                         const rd_kafka_topic_partition_list_t *parts,
                         rd_kafka_topic_partition_list_t *from, char *errstr, size_t errlen) {
    for (int i = 0; i < parts->cnt; i++) {
        char field[16], value[32];
        snprintf(field, sizeof(field), "%d", (int)parts->elems[i].partition);
        int rc = ss_cache_hget(cache, cl->key, field, value, sizeof(value), errstr, errlen);
        if (rc < 0)
            return rc;
        rd_kafka_topic_partition_list_add(from, cl->cfg->state_changelog_topic,
                                          parts->elems[i].partition)
            ->offset = rc == 1 ? strtoll(value, NULL, 10) : RD_KAFKA_OFFSET_BEGINNING;
    }
    return 0;
}

/* Consume `from` to its end (read_committed), queueing each record and syncing every 512.
 * Returns the records applied or a negative code with errstr. */
static long replay(ss_changelog_t *cl, rd_kafka_t *rk, ss_cache_t *cache,
                   rd_kafka_topic_partition_list_t *from, int (*stopping)(void *), void *arg,
                   char *errstr, size_t errlen) {
    long applied = 0;
    int left = from->cnt;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, from);
    if (err) {
        snprintf(errstr, errlen, "changelog: assign: %s", rd_kafka_err2str(err));
        return SS_ERR_FAIL;
    }
    while (left > 0) {
        if (stopping(arg))
            return SS_ERR_STOPPED;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(
                from, cl->cfg->state_changelog_topic, m->partition);
            if (p && p->err == 0) {
                p->err = RD_KAFKA_RESP_ERR__PARTITION_EOF; /* done: remember where */
                p->offset = m->offset;
                left--;
            }
        } else if (m->err) {
            ss_warn("changelog: replay: %s", rd_kafka_message_errstr(m));
        } else {
            queue_record(cl->cfg, cache, m);
            applied++;
        }
        rd_kafka_message_destroy(m);
        int rc = applied % 512 == 0 && ss_cache_pending(cache) > 0
                     ? ss_cache_sync(cache, errstr, errlen)
                     : 0;
        if (rc < 0)
            return rc; /* SS_ERR_CONFIG: refused (NOPERM), the others a failure */
    }
    return applied;
}

long ss_changelog_restore(ss_changelog_t *cl, ss_cache_t *cache,
                          const rd_kafka_topic_partition_list_t *parts, int (*stopping)(void *),
                          void *stop_arg, char *errstr, size_t errlen) {
    if (parts->cnt == 0)
        return 0;
    rd_kafka_topic_partition_list_t *from = rd_kafka_topic_partition_list_new(parts->cnt);
    rd_kafka_t *rk = NULL;
    long rc = start_offsets(cl, cache, parts, from, errstr, errlen);
    if (rc < 0 || !(rk = client(cl->cfg, RD_KAFKA_CONSUMER, errstr, errlen))) {
        rc = rc < 0 ? rc : SS_ERR_FAIL;
        goto done;
    }
    if ((rc = replay(cl, rk, cache, from, stopping, stop_arg, errstr, errlen)) < 0)
        goto done;
    for (int i = 0; i < from->cnt; i++)
        queue_checkpoint(cache, cl->key, from->elems[i].partition, from->elems[i].offset);
    int synced = ss_cache_sync(cache, errstr, errlen);
    if (synced < 0) {
        rc = synced; /* SS_ERR_CONFIG: refused (NOPERM), the others a failure */
        goto done;
    }
    for (int i = 0; i < from->cnt; i++) { /* where this thread's checkpoints go on from */
        int32_t p = from->elems[i].partition;
        if (reserve_partitions(cl, p + 1) == 0)
            cl->committed[p] = cl->checkpointed[p] = from->elems[i].offset;
    }
done:
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    rd_kafka_topic_partition_list_destroy(from);
    return rc;
}
