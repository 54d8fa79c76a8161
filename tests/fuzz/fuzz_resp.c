/* fuzz_resp.c - libFuzzer target for the Redis reply reader of worker/core/cache.c: any bytes
 * a Redis (or whatever answers on its port) may send, read by a hiredis redisReader with the
 * cache's reply functions and classified as a round trip does (ss_cache_read_replies): the
 * replies of queued writes (HSET, EXPIRE, MULTI, EXEC, whose errors name a command and a
 * key), then HMGET rows parsed into floats, error replies counted by name, WRONGTYPE set
 * aside per key, and bytes that end mid-reply. A crash, leak or sanitizer report here is a
 * Redis reply that would take a worker down.
 *
 * Input: byte 0 holds the number of write replies (bits 0-2) and of HMGET replies (bits
 * 3-5) expected; byte 1 picks each write's command (two bits each: HSET, EXPIRE, MULTI,
 * EXEC); the rest is fed to the reader, in two pieces split where byte 2 says. */
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "config.h"
#include "log.h"
#include "metrics.h"

#define NF 4

static char *features[NF] = {"tenure_months", "monthly_charges", "contract_type", "logins_30d"};
static ss_config_t *cfg;
static ss_cache_t *cache;
static ss_metrics_t metrics;

static void die(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_resp: %s: %s\n", what, detail);
    abort();
}

/* A cache that never connects: redis.on.error = degrade on a port nothing listens on. */
static void init(void) {
    static const char text[] = "model.path = m.json\nkafka.bootstrap.servers = x:1\n"
                               "redis.port = 1\nredis.timeout.ms = 50\nredis.on.error = degrade\n";
    char err[512];
    cfg = ss_config_new();
    if (!cfg || ss_config_load_string(cfg, text, sizeof(text) - 1, "fuzz", err, sizeof(err)) < 0 ||
        ss_config_finalize(cfg, err, sizeof(err)) < 0)
        die("config", cfg ? err : "out of memory");
    ss_metrics_init(&metrics);
    cache = ss_cache_new(cfg, features, NF, NULL, err, sizeof(err));
    if (!cache)
        die("ss_cache_new", err);
    ss_cache_set_metrics(cache, &metrics);
    ss_log_set_level(SS_LOG_ERROR); /* after the config, which sets log.level: the WRONGTYPE
                                       warnings of every input are not wanted */
}

/* `n` writes queued as their replies will be read, each picked by two bits of `pick`. */
static void queue_writes(size_t n, unsigned pick) {
    static const char *hset[] = {"HSET", "streamscore:features:C1", "tenure_months", "3"};
    static const char *expire[] = {"EXPIRE", "streamscore:features:C2", "60"};
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    ss_cache_discard(cache);
    for (size_t i = 0; i < n; i++) {
        switch ((pick >> (2 * (i % 4))) & 3) {
        case 0: ss_cache_queue_command(cache, 4, hset, NULL); break;
        case 1: ss_cache_queue_command(cache, 3, expire, NULL); break;
        case 2: ss_cache_queue_command(cache, 1, multi, NULL); break;
        default: ss_cache_queue_command(cache, 1, exec, NULL); break;
        }
    }
    if (ss_cache_pending(cache) != n)
        die("ss_cache_queue_command", "the queue does not hold every command");
}

static long counted(void) {
    long n = 0;
    for (int i = 0; i < SS_REDIS_ERRORS; i++)
        n += metrics.redis_reply_errors[i];
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!cache)
        init();
    if (size < 3)
        return 0;
    size_t n_writes = data[0] & 7, n_reads = (data[0] >> 3) & 7;
    queue_writes(n_writes, data[1]);
    const char *ids[8] = {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"};
    size_t lens[8] = {2, 2, 2, 2, 2, 2, 2, 2};
    float rows[8 * NF];
    unsigned char not_hash[8];
    memset(not_hash, 0xee, sizeof(not_hash));
    /* exactly the input's bytes, so that ASan sees any read past them */
    size_t len = size - 3, split = len ? data[2] % (len + 1) : 0;
    char *bytes = malloc(len ? len : 1);
    redisReader *rd = redisReaderCreate();
    if (!bytes || !rd)
        die("malloc", "out of memory");
    memcpy(bytes, data + 3, len);
    if (redisReaderFeed(rd, bytes, split) != REDIS_OK ||
        redisReaderFeed(rd, bytes + split, len - split) != REDIS_OK)
        die("redisReaderFeed", "refused");
    long errors_before = counted(), dropped_before = metrics.redis_dropped_writes;
    char err[512];
    err[0] = '\0';
    int rc = ss_cache_read_replies(cache, rd, n_writes, n_reads, ids, lens, rows, not_hash, err,
                                   sizeof(err));
    if (rc != 0 && rc != SS_ERR_FAIL && rc != SS_ERR_CONFIG) /* CONFIG: NOPERM, NOAUTH */
        die("ss_cache_read_replies", "returned neither 0, SS_ERR_FAIL nor SS_ERR_CONFIG");
    if (rc < 0 && (!err[0] || !memchr(err, '\0', sizeof(err))))
        die("ss_cache_read_replies", "failed without a message");
    for (size_t i = 0; rc == 0 && i < n_reads; i++) {
        if (not_hash[i] > 1)
            die("ss_cache_read_replies", "a read's not-a-hash flag left unset");
        for (size_t f = 0; not_hash[i] && f < NF; f++)
            if (!isnan(rows[i * NF + f]))
                die("ss_cache_read_replies", "a value read for a key that is not a hash");
    }
    if (metrics.redis_dropped_writes - dropped_before > counted() - errors_before)
        die("ss_cache_read_replies", "a write dropped without its error reply counted");
    redisReaderFree(rd); /* holding a reply cut off mid-way: freed with the cache's functions */
    free(bytes);
    return 0;
}
