/* test_http.c - the HTTP server under /metrics, /healthz and /readyz and the score API (http.c),
 * started on its own with a stub handler: it answers when the process holds descriptors above
 * 1023 (select cannot watch them), clients idling on one address do not take the slots of
 * another, and a server of ss_http_serve gives its handler the request's arguments and headers,
 * answers what is not a GET without a body itself (as JSON when asked), and reports every
 * answer. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "http.h"

#define HIGH_FD 1100
#define SLOW_CLIENTS 80

static int stub(void *ctx, const char *path, ss_buf_t *body, const char **type) {
    (void)ctx;
    (void)type;
    if (strcmp(path, "/healthz") == 0) {
        ss_buf_printf(body, "ok\n");
        return 200;
    }
    ss_buf_printf(body, "not found\n");
    return 404;
}

/* The server on a free port of 127.0.0.1 in 20000-32767 (below the ephemeral range). */
static ss_http_t *start(int *port) {
    char listen[64], err[256];
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int i = 0; i < 50; i++) {
        *port = 20000 + rand() % 12768;
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", *port);
        ss_http_t *h = ss_http_start(listen, stub, NULL, err, sizeof(err));
        if (h)
            return h;
    }
    fprintf(stderr, "  cannot start the server: %s\n", err);
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A TCP socket connected to 127.0.0.1:port from address `from` (NULL: any); -1 on failure. */
static int connect_from(const char *from, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {3, 0}; /* a bounded wait: a liveness check, not a speed target */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (from) {
        inet_pton(AF_INET, from, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
            goto fail;
    }
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
fail:
    close(fd);
    return -1;
}

/* GET /healthz over HTTP/1.0 from 127.0.0.1: the response's status, 0 if none came in 3 s. */
static int get_healthz(int port, char *resp, size_t resplen) {
    resp[0] = '\0';
    int fd = connect_from(NULL, port);
    if (fd < 0)
        return 0;
    const char req[] = "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    size_t len = 0;
    if (write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
        ssize_t n;
        while (len + 1 < resplen && (n = read(fd, resp + len, resplen - 1 - len)) > 0)
            len += (size_t)n;
    }
    resp[len] = '\0';
    close(fd);
    int status = 0;
    return sscanf(resp, "HTTP/1.%*d %d", &status) == 1 ? status : 0;
}

/* A raw request to 127.0.0.1:port: the response's status, 0 if none came in 3 s. */
static int request(int port, const char *req, char *resp, size_t resplen) {
    resp[0] = '\0';
    int fd = connect_from(NULL, port);
    if (fd < 0)
        return 0;
    size_t len = 0, n = strlen(req);
    if (write(fd, req, n) == (ssize_t)n) {
        ssize_t got;
        while (len + 1 < resplen && (got = read(fd, resp + len, resplen - 1 - len)) > 0)
            len += (size_t)got;
    }
    resp[len] = '\0';
    close(fd);
    int status = 0;
    return sscanf(resp, "HTTP/1.%*d %d", &status) == 1 ? status : 0;
}

static int answered_n, answered_last;

static void answered(void *ctx, int status, double seconds) {
    (void)ctx;
    (void)seconds;
    __atomic_add_fetch(&answered_n, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&answered_last, status, __ATOMIC_SEQ_CST);
}

/* Echo the path, the argument k and the header X-A. */
static int echo(void *ctx, ss_http_req_t *req, ss_buf_t *body, const char **type) {
    (void)ctx;
    const char *k = ss_http_arg(req, "k"), *xa = ss_http_header(req, "x-a");
    *type = "application/json";
    ss_buf_printf(body, "%s|%s|%s", req->path, k ? k : "-", xa ? xa : "-");
    if (strcmp(req->path, "/auth") == 0) {
        req->www_authenticate = "Bearer realm=\"t\"";
        return 401;
    }
    return 200;
}

static void a_server_gives_its_handler_the_request_and_answers_the_rest_itself(void) {
    char listen[64], err[256], resp[2048];
    ss_http_opts_t o = {.key = "score.listen",
                        .threads = 2,
                        .connections = 16,
                        .per_ip = 8,
                        .timeout_s = 2,
                        .memory = 16384,
                        .answered = answered,
                        .json_errors = 1};
    ss_http_t *h = NULL;
    int port = 0;
    for (int i = 0; i < 50 && !h; i++) {
        port = 20000 + rand() % 12768;
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
        h = ss_http_serve(listen, &o, echo, NULL, err, sizeof(err));
    }
    CHECK(h != NULL);
    if (!h)
        return;
    CHECK(request(port, "GET /v1/a%20b?k=7 HTTP/1.0\r\nX-A: hello\r\n\r\n", resp, sizeof(resp)) ==
          200);
    CHECK_STR_CONTAINS(resp, "/v1/a b|7|hello");
    CHECK(request(port, "GET /auth HTTP/1.0\r\n\r\n", resp, sizeof(resp)) == 401);
    CHECK_STR_CONTAINS(resp, "WWW-Authenticate: Bearer realm=\"t\"");
    CHECK(request(port, "POST /v1 HTTP/1.0\r\nContent-Length: 0\r\n\r\n", resp, sizeof(resp)) ==
          405);
    CHECK_STR_CONTAINS(resp, "{\"error\":\"method not allowed: GET or HEAD\"}");
    CHECK_STR_CONTAINS(resp, "Allow: GET, HEAD");
    CHECK(request(port, "GET /v1 HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", resp, sizeof(resp)) ==
          413);
    CHECK_STR_CONTAINS(resp, "application/json");
    ss_http_stop(h);
    CHECK(__atomic_load_n(&answered_n, __ATOMIC_SEQ_CST) == 4);
    CHECK(__atomic_load_n(&answered_last, __ATOMIC_SEQ_CST) == 413);
    /* a port already taken is refused, naming the key */
    ss_http_t *h1 = ss_http_serve(listen, &o, echo, NULL, err, sizeof(err));
    ss_http_t *h2 = h1 ? ss_http_serve(listen, &o, echo, NULL, err, sizeof(err)) : NULL;
    CHECK(h1 && !h2);
    CHECK_STR_CONTAINS(err, "score.listen: cannot listen on");
    ss_http_stop(h1);
    ss_http_stop(h2);
}

static void answers_while_the_process_holds_descriptors_above_1023(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < HIGH_FD + 100 && rl.rlim_max >= HIGH_FD + 100) {
        rl.rlim_cur = HIGH_FD + 100;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    CHECK(rl.rlim_cur >= HIGH_FD + 100);
    int fds[HIGH_FD + 1], n = 0;
    int base = open("/dev/null", O_RDONLY), fd = base;
    CHECK(base >= 0);
    while (fd >= 0 && fd < HIGH_FD && n <= HIGH_FD) {
        fd = dup(base);
        if (fd >= 0)
            fds[n++] = fd;
    }
    CHECK(fd >= HIGH_FD);
    int port;
    ss_http_t *h = start(&port); /* its listening socket and connections are all above 1023 */
    CHECK(h != NULL);
    if (h) {
        char resp[512];
        CHECK(get_healthz(port, resp, sizeof(resp)) == 200);
        CHECK_STR_CONTAINS(resp, "\r\n\r\nok\n");
    }
    ss_http_stop(h);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    if (base >= 0)
        close(base);
}

static void clients_idling_from_one_address_leave_the_probe_its_slot(void) {
    int port;
    ss_http_t *h = start(&port);
    CHECK(h != NULL);
    if (!h)
        return;
    /* more than the old 64 slots, each sends half a request and then nothing */
    int slow[SLOW_CLIENTS], n = 0;
    const char partial[] = "GET /healthz HTTP/1.1\r\nHost: local";
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        slow[n] = connect_from("127.0.0.2", port);
        if (slow[n] >= 0) {
            ssize_t w = write(slow[n], partial, sizeof(partial) - 1);
            (void)w; /* a client the server has already refused may fail here */
            n++;
        }
    }
    CHECK(n > 0);
    usleep(200 * 1000);
    char resp[512];
    double t0 = now();
    CHECK(get_healthz(port, resp, sizeof(resp)) == 200);
    CHECK(now() - t0 < 3.0);
    for (int i = 0; i < n; i++)
        close(slow[i]);
    ss_http_stop(h);
}

int main(void) {
    static const check_test_t tests[] = {
        {"answers_while_the_process_holds_descriptors_above_1023",
         answers_while_the_process_holds_descriptors_above_1023},
        {"clients_idling_from_one_address_leave_the_probe_its_slot",
         clients_idling_from_one_address_leave_the_probe_its_slot},
        {"a_server_gives_its_handler_the_request_and_answers_the_rest_itself",
         a_server_gives_its_handler_the_request_and_answers_the_rest_itself},
        {NULL, NULL},
    };
    return check_run_all(tests);
}
