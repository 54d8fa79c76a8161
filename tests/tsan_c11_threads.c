/* tsan_c11_threads.c - C11 <threads.h> for the ThreadSanitizer build (make test-tsan) only.
 * librdkafka starts its threads and takes its locks with C11 thrd_create / mtx_lock /
 * cnd_wait, which glibc implements on its internal pthread functions: ThreadSanitizer (gcc 12,
 * clang 14) intercepts none of them, so librdkafka's threads would run unknown to it (it
 * crashes in their first malloc) and their locks would order nothing. Linked into the
 * programs of that build, these definitions take the place of glibc's and do what glibc does,
 * through the pthread functions ThreadSanitizer intercepts. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

/* glibc's mapping of an errno value to a thrd_* result */
static int thrd_result(int err) {
    switch (err) {
    case 0: return thrd_success;
    case ENOMEM: return thrd_nomem;
    case ETIMEDOUT: return thrd_timedout;
    case EBUSY: return thrd_busy;
    default: return thrd_error;
    }
}

struct start {
    thrd_start_t func;
    void *arg;
};

static void *start_thread(void *opaque) {
    struct start s = *(struct start *)opaque;
    free(opaque);
    return (void *)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg) {
    struct start *s = malloc(sizeof(*s));
    if (!s)
        return thrd_nomem;
    s->func = func;
    s->arg = arg;
    int err = pthread_create(thr, NULL, start_thread, s);
    if (err)
        free(s);
    return thrd_result(err);
}

int thrd_join(thrd_t thr, int *res) {
    void *ret;
    int err = pthread_join(thr, &ret);
    if (!err && res)
        *res = (int)(intptr_t)ret;
    return thrd_result(err);
}

int thrd_detach(thrd_t thr) {
    return thrd_result(pthread_detach(thr));
}

int mtx_init(mtx_t *mtx, int type) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, (type & mtx_recursive) ? PTHREAD_MUTEX_RECURSIVE
                                                            : PTHREAD_MUTEX_NORMAL);
    int err = pthread_mutex_init((pthread_mutex_t *)mtx, &attr);
    pthread_mutexattr_destroy(&attr);
    return thrd_result(err);
}

void mtx_destroy(mtx_t *mtx) {
    pthread_mutex_destroy((pthread_mutex_t *)mtx);
}

int mtx_lock(mtx_t *mtx) {
    return thrd_result(pthread_mutex_lock((pthread_mutex_t *)mtx));
}

int mtx_trylock(mtx_t *mtx) {
    return thrd_result(pthread_mutex_trylock((pthread_mutex_t *)mtx));
}

int mtx_timedlock(mtx_t *restrict mtx, const struct timespec *restrict ts) {
    return thrd_result(pthread_mutex_timedlock((pthread_mutex_t *)mtx, ts));
}

int mtx_unlock(mtx_t *mtx) {
    return thrd_result(pthread_mutex_unlock((pthread_mutex_t *)mtx));
}

int cnd_init(cnd_t *cond) {
    return thrd_result(pthread_cond_init((pthread_cond_t *)cond, NULL));
}

void cnd_destroy(cnd_t *cond) {
    pthread_cond_destroy((pthread_cond_t *)cond);
}

int cnd_signal(cnd_t *cond) {
    return thrd_result(pthread_cond_signal((pthread_cond_t *)cond));
}

int cnd_broadcast(cnd_t *cond) {
    return thrd_result(pthread_cond_broadcast((pthread_cond_t *)cond));
}

int cnd_wait(cnd_t *cond, mtx_t *mtx) {
    return thrd_result(pthread_cond_wait((pthread_cond_t *)cond, (pthread_mutex_t *)mtx));
}

int cnd_timedwait(cnd_t *restrict cond, mtx_t *restrict mtx, const struct timespec *restrict ts) {
    return thrd_result(pthread_cond_timedwait((pthread_cond_t *)cond, (pthread_mutex_t *)mtx, ts));
}

void call_once(once_flag *flag, void (*func)(void)) {
    pthread_once((pthread_once_t *)&flag->__data, func);
}
