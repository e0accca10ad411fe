/* eng_pool.c: the CPU thread pool (declared in eng_sched.h): N-1 sleeping workers plus the
 * calling thread split a range into pieces taken from an atomic counter.
 *
 * One call at a time owns the pool (the `busy` flag); a call that finds it taken, whether nested
 * inside a piece or from another thread, runs its range serially on its own thread, so the
 * pool can never deadlock on itself.
 *
 * A call's life: the caller publishes the job under the mutex (fn, user, n, piece size, a new
 * generation, open = 1) and wakes the workers; each worker that sees the open generation joins
 * (active++), takes pieces until none is left, and leaves (active--). The caller takes pieces
 * too, then waits under the mutex until no worker is active and closes the job (open = 0), so a
 * worker waking late can never run a piece of a finished call. */
#define _POSIX_C_SOURCE 200809L
#include "eng_sched.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define POOL_MAX_THREADS  1024
#define PIECES_PER_THREAD 4 /* pieces per thread, so uneven pieces still balance */

struct eng_pool {
    int nthreads; /* caller included */
    pthread_t *workers;
    int nworkers; /* started */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers sleep here between calls */
    pthread_cond_t done_cv; /* the caller waits here for active == 0 */
    atomic_int busy;        /* 1 while a call owns the pool */
    /* The current call; written under mu while no worker is active. */
    uint64_t gen;
    int open;
    int active;
    int stop;
    eng_range_fn fn;
    void *user;
    int64_t n, piece, npieces;
    atomic_llong next; /* next piece to take */
};

/* Takes pieces until none is left. */
static void
run_pieces(eng_pool *p, eng_range_fn fn, void *user, int64_t n, int64_t piece, int64_t npieces) {
    for (;;) {
        const int64_t i = (int64_t)atomic_fetch_add(&p->next, 1);
        if (i >= npieces) break;
        const int64_t begin = i * piece;
        const int64_t end = ENG_MIN(n, begin + piece);
        fn(user, begin, end);
    }
}

static void *worker_main(void *arg) {
    eng_pool *p = (eng_pool *)arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && (!p->open || p->gen == seen))
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        p->active++;
        eng_range_fn fn = p->fn;
        void *user = p->user;
        const int64_t n = p->n, piece = p->piece, npieces = p->npieces;
        pthread_mutex_unlock(&p->mu);
        run_pieces(p, fn, user, n, piece, npieces);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_stop(eng_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i], NULL);
    p->nworkers = 0;
}

int eng_pool_create(eng_pool **out, int threads, eng_err *err) {
    int rc = ENG_OK;
    eng_pool *p = NULL;
    int sync_ok = 0;
    ENG_ASSERT(out != NULL);
    *out = NULL;
    if (threads < 0 || threads > POOL_MAX_THREADS) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_pool_create: %d threads (expected 0 for all CPUs, or 1..%d)", threads,
                         POOL_MAX_THREADS);
        goto done;
    }
    if (threads == 0) {
        const long online = sysconf(_SC_NPROCESSORS_ONLN);
        threads = online < 1 ? 1 : (online > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)online);
    }
    p = (eng_pool *)calloc(1, sizeof *p);
    if (p == NULL) goto oom;
    p->nthreads = threads;
    atomic_init(&p->busy, 0);
    atomic_init(&p->next, 0);
    if (pthread_mutex_init(&p->mu, NULL) != 0) goto oom;
    if (pthread_cond_init(&p->work_cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        goto oom;
    }
    if (pthread_cond_init(&p->done_cv, NULL) != 0) {
        pthread_cond_destroy(&p->work_cv);
        pthread_mutex_destroy(&p->mu);
        goto oom;
    }
    sync_ok = 1;
    if (threads > 1) {
        p->workers = (pthread_t *)calloc((size_t)threads - 1, sizeof *p->workers);
        if (p->workers == NULL) goto oom;
        for (int i = 0; i < threads - 1; i++) {
            const int e = pthread_create(&p->workers[i], NULL, worker_main, p);
            if (e != 0) {
                rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                                 "eng_pool_create: could not start worker thread %d of %d "
                                 "(error %d)",
                                 i + 1, threads - 1, e);
                goto done;
            }
            p->nworkers++;
        }
    }
    *out = p;
    p = NULL;
    goto done;
oom:
    rc = eng_err_set(err, ENG_E_OOM, "eng_pool_create: out of host memory for %d threads", threads);
done:
    if (p != NULL && sync_ok) {
        eng_pool_destroy(p); /* stops the workers started so far */
    } else if (p != NULL) {
        free(p->workers);
        free(p);
    }
    return rc;
}

void eng_pool_destroy(eng_pool *p) {
    if (p == NULL) return;
    pool_stop(p);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int eng_pool_threads(const eng_pool *p) {
    return p != NULL ? p->nthreads : 1;
}

void eng_pool_parallel_for(eng_pool *p, int64_t n, int64_t grain, eng_range_fn fn, void *user) {
    int expected = 0;
    ENG_ASSERT(fn != NULL);
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (p == NULL || p->nworkers == 0 || n <= grain ||
        !atomic_compare_exchange_strong(&p->busy, &expected, 1)) {
        fn(user, 0, n); /* serial: no pool, too small, nested, or another thread owns it */
        return;
    }
    /* Pieces of at least `grain`, about PIECES_PER_THREAD per thread. */
    const int64_t target = (int64_t)p->nthreads * PIECES_PER_THREAD;
    int64_t piece = ENG_CEIL_DIV(n, target);
    if (piece < grain) piece = grain;
    const int64_t npieces = ENG_CEIL_DIV(n, piece);

    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->user = user;
    p->n = n;
    p->piece = piece;
    p->npieces = npieces;
    atomic_store(&p->next, 0);
    p->gen++;
    p->open = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    run_pieces(p, fn, user, n, piece, npieces);

    /* Every piece is taken; those still running belong to active workers. */
    pthread_mutex_lock(&p->mu);
    while (p->active > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    p->open = 0;
    pthread_mutex_unlock(&p->mu);
    atomic_store(&p->busy, 0);
}
