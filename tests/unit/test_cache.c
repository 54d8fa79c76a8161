/* test_cache.c - the Redis cache's own RESP reading against a scripted server on loopback:
 * values parsed into rows, error replies reported, and a reply cut off by the timeout is an
 * error on a dropped connection, never a crash; the next call connects again. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache_int.h"
#include "check.h"
#include "config.h"
#include "metrics.h"

static char err[1024];
static char *features[] = {"a", "b", "c"};

/* One scripted connection per entry: what the server answers to the first request read on
 * it, then how long it keeps the connection open without a word. */
typedef struct script {
    const char *reply[3];
    int hold_ms[3];
    int n;
    int listen_fd;
} script_t;

static void *serve(void *arg) {
    script_t *s = arg;
    for (int i = 0; i < s->n; i++) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        char buf[4096];
        if (read(fd, buf, sizeof(buf)) > 0 && write(fd, s->reply[i], strlen(s->reply[i])) < 0)
            break;
        usleep((useconds_t)s->hold_ms[i] * 1000);
        close(fd);
    }
    return NULL;
}

static int listen_loopback(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

/* A cache on loopback `port` (degrade: it starts when nothing answers), with the properties
 * `more` and the environment `env` (NULL-terminated, may be NULL); *why: ss_cache_new's code. */
static ss_cache_t *cache_with(int port, const char *more, char **env, ss_config_t **cfg, int *why) {
    char text[1024];
    snprintf(text, sizeof(text),
             "model.path = m.json\nkafka.bootstrap.servers = x:1\nredis.port = %d\n"
             "redis.timeout.ms = 200\nredis.on.error = degrade\n%s",
             port, more);
    *cfg = ss_config_new();
    *why = 0;
    if (ss_config_load_string(*cfg, text, strlen(text), "t", err, sizeof(err)) < 0 ||
        ss_config_apply_env(*cfg, env, NULL, err, sizeof(err)) < 0 ||
        ss_config_finalize(*cfg, err, sizeof(err)) < 0)
        return NULL;
    return ss_cache_new(*cfg, features, 3, why, err, sizeof(err));
}

static ss_cache_t *cache_for(int port, ss_config_t **cfg) {
    int why;
    return cache_with(port, "", NULL, cfg, &why);
}

static void replies_cut_off_error_replies_and_values(void) {
    script_t s = {
        .reply = {"*3\r\n$1\r\n1\r\n",                         /* cut off after one value */
                  "-ERR boom\r\n",                             /* an error reply */
                  "*3\r\n$-1\r\n$3\r\n2.5\r\n$4\r\n-7.0\r\n"}, /* nil, 2.5, -7 */
        .hold_ms = {300, 0, 200},
        .n = 3,
    };
    int port = 0;
    s.listen_fd = listen_loopback(&port);
    CHECK(s.listen_fd >= 0);
    if (s.listen_fd < 0)
        return;
    pthread_t th;
    pthread_create(&th, NULL, serve, &s);
    ss_config_t *cfg = NULL;
    ss_cache_t *c = cache_for(port, &cfg);
    CHECK(c != NULL);
    const char *ids[1] = {"C1"};
    size_t lens[1] = {2};
    float row[3] = {0, 0, 0};
    if (c) {
        /* the first connection: the reply stops mid-array, the read times out */
        CHECK(ss_cache_read(c, ids, lens, 1, row, NULL, err, sizeof(err)) == -1);
        CHECK_STR_CONTAINS(err, "redis HMGET");
        /* the second: connected again, an error reply */
        CHECK(ss_cache_read(c, ids, lens, 1, row, NULL, err, sizeof(err)) == -1);
        CHECK_STR_CONTAINS(err, "boom");
        /* the server closes the second connection after its error reply: the next call may
         * find it closed (an error, and a new connection the call after); the third
         * connection answers with values */
        int rc = ss_cache_read(c, ids, lens, 1, row, NULL, err, sizeof(err));
        if (rc != 0)
            rc = ss_cache_read(c, ids, lens, 1, row, NULL, err, sizeof(err));
        CHECK(rc == 0);
        CHECK(isnan(row[0]) && row[1] == 2.5f && row[2] == -7.0f);
        ss_cache_destroy(c);
    }
    pthread_join(th, NULL);
    close(s.listen_fd);
    ss_config_destroy(cfg);
}

/* hiredis 1.x reads every object the reply functions return as a redisReply (is it a push
 * reply?): each must be one, of a type that is not REDIS_REPLY_PUSH, for every kind of reply. */
static void reply_objects_read_as_redis_replies(void) {
    ss_config_t *cfg = NULL;
    ss_cache_t *c = cache_for(1, &cfg); /* degrade: starts without Redis, never connects */
    CHECK(c != NULL);
    redisReader *r = redisReaderCreateWithFunctions(&ss_cache_reply_functions);
    CHECK(r != NULL);
    if (!c || !r)
        goto out;
    r->privdata = c;
    static const char resp[] = "*3\r\n$1\r\n1\r\n$-1\r\n$3\r\n2.5\r\n"
                               "+OK\r\n:1\r\n$-1\r\n-WRONGTYPE Operation against a key\r\n"
                               "*0\r\n*2\r\n*1\r\n+QUEUED\r\n:7\r\n$2\r\nab\r\n";
    CHECK(redisReaderFeed(r, resp, sizeof(resp) - 1) == REDIS_OK);
    int n = 0;
    for (void *obj = NULL; redisReaderGetReply(r, &obj) == REDIS_OK && obj; obj = NULL, n++) {
        int type = ((const redisReply *)obj)->type;
        CHECK(type >= REDIS_REPLY_STRING && type <= REDIS_REPLY_ERROR);
        CHECK(type != REDIS_REPLY_PUSH);
    }
    CHECK(n == 8);
out:
    if (r)
        redisReaderFree(r);
    ss_cache_destroy(c);
    ss_config_destroy(cfg);
}

/* The replies of `resp` read as a round trip reads them, after `n_writes` queued writes. */
static int read_fed(ss_cache_t *c, const char *resp, size_t n_writes, size_t n_reads,
                    const char *const *ids, const size_t *lens, float *out,
                    unsigned char *not_hash) {
    redisReader *r = redisReaderCreate();
    if (!r)
        return -100;
    redisReaderFeed(r, resp, strlen(resp));
    int rc =
        ss_cache_read_replies(c, r, n_writes, n_reads, ids, lens, out, not_hash, err, sizeof(err));
    redisReaderFree(r);
    return rc;
}

/* A cache that never connects (degrade, port 1), counting into its own metrics. */
typedef struct offline {
    ss_config_t *cfg;
    ss_cache_t *c;
    ss_metrics_t m;
} offline_t;

static ss_cache_t *offline_open(offline_t *o) {
    memset(o, 0, sizeof(*o));
    ss_metrics_init(&o->m);
    o->c = cache_for(1, &o->cfg);
    CHECK(o->c != NULL);
    if (!o->c) {
        ss_metrics_destroy(&o->m);
        ss_config_destroy(o->cfg);
        return NULL;
    }
    ss_cache_set_metrics(o->c, &o->m);
    return o->c;
}

static void offline_close(offline_t *o) {
    ss_cache_destroy(o->c);
    ss_metrics_destroy(&o->m);
    ss_config_destroy(o->cfg);
}

/* WRONGTYPE answering a read concerns that customer alone: flagged, its row absent, the
 * others read; without flags to set it fails the call. */
static void wrongtype_on_a_read_flags_that_customer_only(void) {
    offline_t o;
    ss_cache_t *c = offline_open(&o);
    if (!c)
        return;
    const char *ids[3] = {"A", "B", "C"};
    size_t lens[3] = {1, 1, 1};
    float rows[9];
    unsigned char not_hash[3] = {0, 0, 0};
    const char *resp = "*3\r\n$1\r\n1\r\n$-1\r\n$-1\r\n"
                       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
                       "*3\r\n$-1\r\n$1\r\n2\r\n$-1\r\n";
    CHECK(read_fed(c, resp, 0, 3, ids, lens, rows, not_hash) == 0);
    CHECK(not_hash[0] == 0 && not_hash[1] == 1 && not_hash[2] == 0);
    CHECK(rows[0] == 1.0f && isnan(rows[3]) && isnan(rows[4]) && isnan(rows[5]) && rows[7] == 2.0f);
    CHECK(o.m.redis_reply_errors[1] == 1); /* WRONGTYPE */
    CHECK(read_fed(c, resp, 0, 3, ids, lens, rows, NULL) == SS_ERR_FAIL);
    CHECK_STR_CONTAINS(err, "redis HMGET: WRONGTYPE");
    offline_close(&o);
}

/* WRONGTYPE answering a queued write (alone or inside MULTI/EXEC) drops that write, counted;
 * the call succeeds and the queue is acknowledged. */
static void wrongtype_on_a_write_drops_that_write_only(void) {
    offline_t o;
    ss_cache_t *c = offline_open(&o);
    if (!c)
        return;
    float row[3] = {1, NAN, 3};
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    ss_cache_queue_write(c, "A", 1, row, NULL); /* HSET, EXPIRE */
    ss_cache_queue_command(c, 1, multi, NULL);
    ss_cache_queue_write(c, "B", 1, row, NULL);
    ss_cache_queue_write(c, "C", 1, row, NULL);
    ss_cache_queue_command(c, 1, exec, NULL);
    CHECK(ss_cache_pending(c) == 8);
    const char *resp = "-WRONGTYPE Operation against a key\r\n:1\r\n+OK\r\n"
                       "+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n"
                       "*4\r\n:2\r\n:1\r\n-WRONGTYPE Operation against a key\r\n:1\r\n";
    CHECK(read_fed(c, resp, 8, 0, NULL, NULL, NULL, NULL) == 0);
    CHECK(o.m.redis_dropped_writes == 2);
    CHECK(o.m.redis_reply_errors[1] == 2);
    offline_close(&o);
}

/* Any other error reply is the server's state: the call fails, naming the error and the
 * command it answered, and reading stops there. */
static void other_error_replies_fail_the_call_naming_the_command(void) {
    offline_t o;
    ss_cache_t *c = offline_open(&o);
    if (!c)
        return;
    float row[3] = {1, 2, 3};
    ss_cache_queue_write(c, "A", 1, row, NULL);
    const char *resp = "-READONLY You can't write against a read only replica.\r\n"
                       "-READONLY You can't write against a read only replica.\r\n";
    CHECK(read_fed(c, resp, 2, 0, NULL, NULL, NULL, NULL) == SS_ERR_FAIL);
    CHECK_STR_CONTAINS(err, "redis HSET: READONLY You can't write");
    CHECK(o.m.redis_reply_errors[2] == 1); /* READONLY, the first only */
    CHECK(o.m.redis_dropped_writes == 0);
    const char *ids[1] = {"A"};
    size_t lens[1] = {1};
    unsigned char not_hash[1];
    CHECK(read_fed(c, "-LOADING Redis is loading the dataset in memory\r\n", 0, 1, ids, lens, row,
                   not_hash) == SS_ERR_FAIL);
    CHECK_STR_CONTAINS(err, "redis HMGET: LOADING");
    CHECK(read_fed(c, "-SOMETHINGNEW x\r\n", 0, 1, ids, lens, row, not_hash) == SS_ERR_FAIL);
    CHECK(o.m.redis_reply_errors[6] == 1 && o.m.redis_reply_errors[SS_REDIS_ERRORS - 1] == 1);
    offline_close(&o);
}

/* NOPERM, and NOAUTH when no password is configured, are refusals no retry can fix: the call
 * fails with SS_ERR_CONFIG, naming the user. With a password, NOAUTH is a server restarted
 * with one under the connection: the next connection authenticates (SS_ERR_FAIL). */
static void noperm_and_noauth_without_a_password_are_refusals(void) {
    offline_t o;
    const char *ids[1] = {"A"};
    size_t lens[1] = {1};
    float row[3] = {1, 2, 3};
    ss_cache_t *c = offline_open(&o);
    if (!c)
        return;
    ss_cache_queue_write(c, "A", 1, row, NULL); /* HSET, EXPIRE */
    CHECK(read_fed(c, "-NOPERM this user has no permissions to run the 'hset' command\r\n", 2, 0,
                   NULL, NULL, NULL, NULL) == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "redis: user 'default' lacks a permission: NOPERM this user");
    CHECK(read_fed(c, "-NOAUTH Authentication required.\r\n", 0, 1, ids, lens, row, NULL) ==
          SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "redis: authentication as user 'default' failed (check "
                            "redis.username, redis.password): NOAUTH");
    offline_close(&o);
    char *env[] = {"STREAMSCORE_REDIS_PASSWORD=hunter2", NULL};
    ss_config_t *cfg = NULL;
    int why;
    c = cache_with(1, "redis.username = app\n", env, &cfg, &why);
    CHECK(c != NULL);
    if (c) {
        CHECK(read_fed(c, "-NOAUTH Authentication required.\r\n", 0, 1, ids, lens, row, NULL) ==
              SS_ERR_FAIL);
        CHECK(read_fed(c, "-NOPERM no permissions to access one of the keys\r\n", 0, 1, ids, lens,
                       row, NULL) == SS_ERR_CONFIG);
        CHECK_STR_CONTAINS(err, "redis: user 'app' lacks a permission: NOPERM");
        CHECK(!strstr(err, "hunter2"));
    }
    ss_cache_destroy(c);
    ss_config_destroy(cfg);
}

/* One scripted server answering AUTH: the cache's code and err (degrade: an outage starts
 * degraded, a refusal does not). */
static ss_cache_t *auth_answered(const char *reply, ss_config_t **cfg, int *why) {
    script_t s = {.reply = {reply}, .hold_ms = {0}, .n = 1};
    int port = 0;
    s.listen_fd = listen_loopback(&port);
    CHECK(s.listen_fd >= 0);
    if (s.listen_fd < 0)
        return NULL;
    pthread_t th;
    pthread_create(&th, NULL, serve, &s);
    char *env[] = {"STREAMSCORE_REDIS_PASSWORD=hunter2", NULL};
    ss_cache_t *c = cache_with(port, "redis.username = app\n", env, cfg, why);
    pthread_join(th, NULL);
    close(s.listen_fd);
    return c;
}

static void a_refused_auth_stops_start_up_under_either_policy_and_names_the_user(void) {
    ss_config_t *cfg = NULL;
    int why;
    ss_cache_t *c = auth_answered(
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n", &cfg, &why);
    CHECK(c == NULL && why == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "redis: authentication as user 'app' failed (check redis.username, "
                            "redis.password): WRONGPASS invalid");
    CHECK(!strstr(err, "hunter2"));
    ss_cache_destroy(c);
    ss_config_destroy(cfg);
    /* a server full is an outage: degrade starts without it */
    c = auth_answered("-ERR max number of clients reached\r\n", &cfg, &why);
    CHECK(c != NULL && why == 0);
    ss_cache_destroy(c);
    ss_config_destroy(cfg);
}

static void an_unusable_tls_file_is_a_configuration_error_before_connecting(void) {
    ss_config_t *cfg = NULL;
    int why;
    ss_cache_t *c = cache_with(1, "redis.tls = true\nredis.tls.ca.file = /nonexistent/ca.crt\n",
                               NULL, &cfg, &why);
    CHECK(c == NULL && why == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "config: key 'redis.tls.ca.file': cannot read '/nonexistent/ca.crt'");
    ss_config_destroy(cfg);
}

static const check_test_t tests[] = {
    {"noperm_and_noauth_without_a_password_are_refusals",
     noperm_and_noauth_without_a_password_are_refusals},
    {"a_refused_auth_stops_start_up_under_either_policy_and_names_the_user",
     a_refused_auth_stops_start_up_under_either_policy_and_names_the_user},
    {"an_unusable_tls_file_is_a_configuration_error_before_connecting",
     an_unusable_tls_file_is_a_configuration_error_before_connecting},
    {"wrongtype_on_a_read_flags_that_customer_only", wrongtype_on_a_read_flags_that_customer_only},
    {"wrongtype_on_a_write_drops_that_write_only", wrongtype_on_a_write_drops_that_write_only},
    {"other_error_replies_fail_the_call_naming_the_command",
     other_error_replies_fail_the_call_naming_the_command},
    {"reply_objects_read_as_redis_replies", reply_objects_read_as_redis_replies},
    {"replies_cut_off_error_replies_and_values", replies_cut_off_error_replies_and_values},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
