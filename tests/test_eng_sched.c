/* test_eng_sched.c: the thread pool and the scheduler (eng.sched.*): coverage of parallel_for,
 * nested and concurrent calls, priority order and turn-taking, preemption between slices,
 * cancellation (memory back at once), slice errors, threaded mode, destroy and release of
 * unfinished jobs, device streams. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "eng_sched.h"
#include "eng_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static eng_alloc *make_alloc(void) {
    eng_alloc_params p;
    eng_alloc *a = NULL;
    eng_err err;
    eng_alloc_params_init(&p);
    p.block_bytes = 4u << 20;
    p.arena_chunk_bytes = 256u << 10;
    if (eng_alloc_create(&a, &p, &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
    return a;
}

static uint64_t in_use(const eng_alloc *a) {
    eng_alloc_stats st;
    eng_alloc_get_stats(a, &st);
    return st.in_use_total;
}

static eng_sched *make_sched(eng_alloc *a, eng_pool *pool, int threaded) {
    eng_sched_params sp;
    eng_sched *s = NULL;
    eng_err err;
    eng_sched_params_init(&sp);
    sp.cpu_alloc = a;
    sp.pool = pool;
    sp.threaded = threaded;
    if (eng_sched_create(&s, &sp, &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
    return s;
}

/* ---- an order recorder shared by the jobs of one case --------------------------------------- */
typedef struct recorder {
    pthread_mutex_t mu;
    char log[512];
    int len;
} recorder;

static void rec_init(recorder *r) {
    pthread_mutex_init(&r->mu, NULL);
    r->len = 0;
    r->log[0] = '\0';
}

static void rec_put(recorder *r, char c) {
    pthread_mutex_lock(&r->mu);
    if (r->len < (int)sizeof r->log - 1) {
        r->log[r->len++] = c;
        r->log[r->len] = '\0';
    }
    pthread_mutex_unlock(&r->mu);
}

static void rec_get(recorder *r, char *out, size_t n) {
    pthread_mutex_lock(&r->mu);
    snprintf(out, n, "%s", r->log);
    pthread_mutex_unlock(&r->mu);
}

/* A job that records `tag` once per slice and runs `slices` slices. Optional extras run in the
 * slice: sleeping, taking arena memory, submitting another job, cancelling itself, failing. */
typedef struct tjob {
    recorder *rec;
    char tag;
    int slices;     /* total slices before ENG_OK */
    int done;       /* slices run */
    long sleep_us;  /* per slice */
    size_t scratch; /* bytes taken from the job's arena per slice */
    int cancel_at;  /* cancel itself in this slice (1-based); 0 = never */
    int fail_at;    /* fail with fail_code in this slice; 0 = never */
    int fail_code;
    const char *fail_msg; /* NULL: fail without a message */
    /* submit `sub` from slice 1 */
    eng_sched *sched;
    eng_job_params *sub;
    eng_job **sub_out;
    eng_job *wait_on; /* eng_job_wait on it from slice 1 */
    int wait_rc;
    char wait_msg[ENG_ERR_MSG_MAX];
    /* finish callback */
    atomic_int finished;
    int fin_status;
    char fin_msg[ENG_ERR_MSG_MAX];
} tjob;

static int tjob_slice(eng_job *job, void *user, eng_err *err) {
    tjob *t = (tjob *)user;
    t->done++;
    if (t->scratch > 0) {
        void *p = NULL;
        int rc = eng_arena_take(eng_job_arena(job), &p, t->scratch, err);
        if (rc != ENG_OK) return rc;
    }
    if (t->sleep_us > 0) sleep_us(t->sleep_us);
    if (t->done == 1 && t->sub != NULL) {
        eng_err e;
        if (eng_sched_submit(t->sched, t->sub_out, t->sub, &e) != ENG_OK) {
            fprintf(stderr, "submit from a slice: %s\n", e.msg);
        }
    }
    if (t->done == 1 && t->wait_on != NULL) {
        eng_err e;
        t->wait_rc = eng_job_wait(t->wait_on, &e);
        snprintf(t->wait_msg, sizeof t->wait_msg, "%s", e.msg);
    }
    if (t->rec != NULL) rec_put(t->rec, t->tag);
    if (t->done == t->cancel_at) eng_job_cancel(job);
    if (t->done == t->fail_at) {
        if (t->fail_msg != NULL) return eng_err_set(err, t->fail_code, "%s", t->fail_msg);
        return t->fail_code;
    }
    return t->done < t->slices ? ENG_JOB_MORE : ENG_OK;
}

static void tjob_finish(eng_job *job, void *user, int status, const eng_err *err) {
    tjob *t = (tjob *)user;
    (void)job;
    t->fin_status = status;
    snprintf(t->fin_msg, sizeof t->fin_msg, "%s", err != NULL ? err->msg : "");
    atomic_fetch_add(&t->finished, 1);
}

static eng_job_params tjob_params(tjob *t, const char *name, int priority) {
    eng_job_params jp;
    eng_job_params_init(&jp);
    jp.name = name;
    jp.priority = priority;
    jp.slice = tjob_slice;
    jp.finish = tjob_finish;
    jp.user = t;
    return jp;
}

static int submit(eng_sched *s, eng_job **out, tjob *t, const char *name, int priority) {
    eng_err err;
    eng_job_params jp = tjob_params(t, name, priority);
    CHECK_OK(eng_sched_submit(s, out, &jp, &err), &err);
    return 0;
}

/* ---- pool ---------------------------------------------------------------------------------- */

typedef struct cover {
    atomic_int *hits;
    int64_t grain;
    atomic_int short_pieces; /* pieces below the grain that were not the last one */
    int64_t n;
} cover;

static void cover_fn(void *user, int64_t begin, int64_t end) {
    cover *c = (cover *)user;
    if (end - begin < c->grain && end != c->n) atomic_fetch_add(&c->short_pieces, 1);
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&c->hits[i], 1);
}

static int check_cover(eng_pool *p, int64_t n, int64_t grain) {
    cover c;
    c.hits = (atomic_int *)calloc((size_t)(n > 0 ? n : 1), sizeof *c.hits);
    CHECK(c.hits != NULL);
    c.grain = grain < 1 ? 1 : grain;
    c.n = n;
    atomic_init(&c.short_pieces, 0);
    for (int64_t i = 0; i < n; i++)
        atomic_init(&c.hits[i], 0);
    eng_pool_parallel_for(p, n, grain, cover_fn, &c);
    for (int64_t i = 0; i < n; i++) {
        if (atomic_load(&c.hits[i]) != 1) {
            fprintf(stderr, "threads %d n %lld grain %lld: index %lld hit %d times\n",
                    eng_pool_threads(p), (long long)n, (long long)grain, (long long)i,
                    atomic_load(&c.hits[i]));
            free(c.hits);
            return 1;
        }
    }
    CHECK_EQ_I64(atomic_load(&c.short_pieces), 0);
    free(c.hits);
    return 0;
}

static int test_pool_cover(void) {
    eng_err err;
    const int threads[4] = {1, 2, 4, 7};
    const int64_t ns[6] = {0, 1, 7, 1000, 4099, 100003};
    const int64_t grains[5] = {0, 1, 3, 64, 1000000};
    for (int t = 0; t < 4; t++) {
        eng_pool *p = NULL;
        CHECK_OK(eng_pool_create(&p, threads[t], &err), &err);
        CHECK_EQ_I64(eng_pool_threads(p), threads[t]);
        for (int ni = 0; ni < 6; ni++) {
            for (int gi = 0; gi < 5; gi++) {
                if (check_cover(p, ns[ni], grains[gi]) != 0) return 1;
            }
        }
        eng_pool_destroy(p);
    }
    CHECK(check_cover(NULL, 1001, 7) == 0); /* no pool: serial */
    CHECK_EQ_I64(eng_pool_threads(NULL), 1);
    eng_pool *p = NULL;
    CHECK_OK(eng_pool_create(&p, 0, &err), &err); /* all CPUs */
    CHECK(eng_pool_threads(p) >= 1);
    CHECK(check_cover(p, 5000, 10) == 0);
    eng_pool_destroy(p);
    eng_pool_destroy(NULL);
    CHECK_EQ_I64(eng_pool_create(&p, -1, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "-1 threads");
    CHECK_EQ_I64(eng_pool_create(&p, 5000, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "5000 threads");
    return 0;
}

/* Nested: each piece of an outer loop runs an inner loop on the same pool (serially). */
typedef struct nested {
    eng_pool *pool;
    atomic_int *hits; /* OUTER x INNER */
} nested;
enum { OUTER = 37, INNER = 53 };

typedef struct inner_ctx {
    nested *n;
    int64_t row;
} inner_ctx;

static void inner_fn(void *user, int64_t begin, int64_t end) {
    inner_ctx *c = (inner_ctx *)user;
    for (int64_t j = begin; j < end; j++)
        atomic_fetch_add(&c->n->hits[c->row * INNER + j], 1);
}

static void outer_fn(void *user, int64_t begin, int64_t end) {
    nested *n = (nested *)user;
    for (int64_t i = begin; i < end; i++) {
        inner_ctx c = {n, i};
        eng_pool_parallel_for(n->pool, INNER, 4, inner_fn, &c);
    }
}

typedef struct concurrent {
    eng_pool *pool;
    int failures;
} concurrent;

static void *concurrent_main(void *arg) {
    concurrent *c = (concurrent *)arg;
    for (int k = 0; k < 200; k++) {
        if (check_cover(c->pool, 997 + k, 5) != 0) c->failures++;
    }
    return NULL;
}

static int test_pool_nested(void) {
    eng_err err;
    eng_pool *p = NULL;
    nested n;
    CHECK_OK(eng_pool_create(&p, 4, &err), &err);
    n.pool = p;
    n.hits = (atomic_int *)calloc(OUTER * INNER, sizeof *n.hits);
    CHECK(n.hits != NULL);
    for (int i = 0; i < OUTER * INNER; i++)
        atomic_init(&n.hits[i], 0);
    eng_pool_parallel_for(p, OUTER, 1, outer_fn, &n);
    for (int i = 0; i < OUTER * INNER; i++)
        CHECK_EQ_I64(atomic_load(&n.hits[i]), 1);
    free(n.hits);
    /* Two threads calling at once: one owns the pool, the other runs serially. */
    concurrent c1 = {p, 0}, c2 = {p, 0};
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, concurrent_main, &c1) == 0);
    CHECK(pthread_create(&t2, NULL, concurrent_main, &c2) == 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK_EQ_I64(c1.failures + c2.failures, 0);
    eng_pool_destroy(p);
    return 0;
}

/* ---- scheduler order ----------------------------------------------------------------------- */

static int test_priority_interleave(void) {
    eng_job *ja, *jb, *jc, *jd;
    recorder rec;
    char log[512];
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    eng_sched *s = make_sched(a, NULL, 0);
    CHECK(s != NULL);
    rec_init(&rec);
    tjob A = {0}, B = {0}, C = {0}, D = {0};
    A.rec = B.rec = C.rec = D.rec = &rec;
    A.tag = 'A', B.tag = 'B', C.tag = 'C', D.tag = 'D';
    A.slices = B.slices = 3;
    C.slices = D.slices = 3;
    /* Equal priority: turns. */
    CHECK(submit(s, &ja, &A, "a", 0) == 0);
    CHECK(submit(s, &jb, &B, "b", 0) == 0);
    CHECK_EQ_I64(eng_sched_pending(s), 2);
    eng_sched_run_until_idle(s);
    rec_get(&rec, log, sizeof log);
    CHECK(strcmp(log, "ABABAB") == 0);
    CHECK(eng_job_done(ja) && eng_job_done(jb));
    CHECK_EQ_I64(eng_job_status(ja), ENG_OK);
    CHECK_EQ_I64(eng_job_slices(ja), 3);
    CHECK_EQ_I64(atomic_load(&A.finished), 1);
    CHECK_EQ_I64(eng_sched_pending(s), 0);
    CHECK_EQ_I64(eng_sched_run_one(s), 0);
    /* Higher priority first, whatever the submission order. */
    rec_init(&rec);
    CHECK(submit(s, &jd, &D, "d", 0) == 0);
    CHECK(submit(s, &jc, &C, "c", 5) == 0);
    CHECK_EQ_I64(eng_job_priority(jc), 5);
    CHECK(strcmp(eng_job_name(jc), "c") == 0);
    eng_sched_run_until_idle(s);
    rec_get(&rec, log, sizeof log);
    CHECK(strcmp(log, "CCCDDD") == 0);
    eng_job_release(ja);
    eng_job_release(jb);
    eng_job_release(jc);
    eng_job_release(jd);
    /* A priority change takes effect at the next pick. */
    rec_init(&rec);
    tjob E = {0}, F = {0};
    E.rec = F.rec = &rec;
    E.tag = 'E', F.tag = 'F';
    E.slices = F.slices = 3;
    eng_job *je, *jf;
    CHECK(submit(s, &je, &E, "e", 0) == 0);
    CHECK(submit(s, &jf, &F, "f", 0) == 0);
    CHECK_EQ_I64(eng_sched_run_one(s), 1); /* E */
    eng_job_set_priority(jf, 3);
    eng_sched_run_until_idle(s);
    rec_get(&rec, log, sizeof log);
    CHECK(strcmp(log, "EFFFEE") == 0);
    eng_job_release(je);
    eng_job_release(jf);
    eng_sched_destroy(s);
    CHECK_EQ_I64(in_use(a), 0);
    eng_alloc_destroy(a);
    return 0;
}

static int test_preempt_queued(void) {
    eng_job *j1, *j2, *jh = NULL;
    recorder rec;
    char log[512];
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    eng_sched *s = make_sched(a, NULL, 0);
    CHECK(s != NULL);
    rec_init(&rec);
    tjob L1 = {0}, L2 = {0}, H = {0};
    L1.rec = L2.rec = H.rec = &rec;
    L1.tag = '1', L2.tag = '2', H.tag = 'H';
    L1.slices = 4, L2.slices = 3, H.slices = 3;
    eng_job_params hp = tjob_params(&H, "frame", 10);
    L1.sched = s;
    L1.sub = &hp; /* L1's first slice submits the high-priority job */
    L1.sub_out = &jh;
    CHECK(submit(s, &j1, &L1, "train1", 0) == 0);
    CHECK(submit(s, &j2, &L2, "train2", 0) == 0);
    eng_sched_run_until_idle(s);
    rec_get(&rec, log, sizeof log);
    fprintf(stderr, "order: %s\n", log);
    /* L1's slice, then H before L2 (which was waiting first), then the two take turns. */
    CHECK(strcmp(log, "1HHH212121") == 0);
    CHECK(jh != NULL);
    CHECK_EQ_I64(eng_job_status(jh), ENG_OK);
    eng_job_release(jh);
    eng_job_release(j1);
    eng_job_release(j2);
    eng_sched_destroy(s);
    eng_alloc_destroy(a);
    return 0;
}

/* ---- cancellation and errors --------------------------------------------------------------- */

static int test_cancel_frees_scratch(void) {
    eng_err err;
    eng_job *j;
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    eng_sched *s = make_sched(a, NULL, 0);
    CHECK(s != NULL);
    const uint64_t base = in_use(a);
    tjob T = {0};
    T.slices = 100;
    T.scratch = 100 << 10;
    CHECK(submit(s, &j, &T, "trainer", 0) == 0);
    CHECK_EQ_I64(eng_sched_run_one(s), 1);
    CHECK_EQ_I64(eng_arena_used(eng_job_arena(j)), 100 << 10);
    CHECK_EQ_I64(in_use(a), base + (256 << 10)); /* one arena chunk */
    CHECK_EQ_I64(eng_job_cancelled(j), 0);
    eng_job_cancel(j);
    /* Not running, so it finished right away: memory back, callback called. */
    CHECK(eng_job_done(j));
    CHECK_EQ_I64(eng_job_cancelled(j), 1);
    CHECK_EQ_I64(in_use(a), base);
    CHECK_EQ_I64(eng_job_status(j), ENG_E_CANCELLED);
    CHECK_EQ_I64(atomic_load(&T.finished), 1);
    CHECK_EQ_I64(T.fin_status, ENG_E_CANCELLED);
    CHECK_CONTAINS(T.fin_msg, "job \"trainer\" was cancelled");
    CHECK_EQ_I64(eng_sched_run_one(s), 0); /* no further slices */
    CHECK_EQ_I64(eng_job_slices(j), 1);
    CHECK_EQ_I64(T.done, 1);
    CHECK_EQ_I64(eng_sched_pending(s), 0);
    CHECK_EQ_I64(eng_job_wait(j, &err), ENG_E_CANCELLED);
    CHECK_EQ_I64(err.code, ENG_E_CANCELLED);
    CHECK_CONTAINS(err.msg, "job \"trainer\" was cancelled");
    eng_job_cancel(j); /* again: nothing happens */
    CHECK_EQ_I64(atomic_load(&T.finished), 1);
    eng_job_release(j);
    eng_sched_destroy(s);
    eng_alloc_destroy(a);
    return 0;
}

static int test_cancel_in_slice(void) {
    eng_err err;
    eng_job *j, *k;
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    eng_sched *s = make_sched(a, NULL, 0);
    CHECK(s != NULL);
    tjob T = {0}, U = {0};
    T.slices = 10;
    T.cancel_at = 2;
    T.scratch = 1000;
    CHECK(submit(s, &j, &T, "render", 0) == 0);
    eng_sched_run_until_idle(s);
    CHECK_EQ_I64(eng_job_slices(j), 2);
    CHECK_EQ_I64(eng_job_wait(j, &err), ENG_E_CANCELLED);
    CHECK_CONTAINS(err.msg, "job \"render\" was cancelled");
    CHECK_EQ_I64(atomic_load(&T.finished), 1);
    CHECK_EQ_I64(in_use(a), 0);
    /* Cancelled in the slice that completes the job: the slice's result stands. */
    U.slices = 2;
    U.cancel_at = 2;
    CHECK(submit(s, &k, &U, "last", 0) == 0);
    eng_sched_run_until_idle(s);
    CHECK_EQ_I64(eng_job_wait(k, &err), ENG_OK);
    CHECK_EQ_I64(err.code, ENG_OK);
    CHECK_EQ_I64(atomic_load(&U.finished), 1);
    eng_job_release(j);
    eng_job_release(k);
    eng_sched_destroy(s);
    eng_alloc_destroy(a);
    return 0;
}

static int test_slice_error(void) {
    eng_err err;
    eng_job *j, *k, *w, *x;
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    eng_sched *s = make_sched(a, NULL, 0);
    CHECK(s != NULL);
    tjob T = {0}, U = {0}, W = {0}, X = {0};
    T.slices = 5;
    T.fail_at = 2;
    T.fail_code = ENG_E_IO;
    T.fail_msg = "frame_0007.png: no such file";
    T.scratch = 5000;
    CHECK(submit(s, &j, &T, "loader", 0) == 0);
    CHECK_EQ_I64(eng_job_wait(j, &err), ENG_E_IO); /* pumps slices in non-threaded mode */
    CHECK_EQ_I64(err.code, ENG_E_IO);
    CHECK(strcmp(err.msg, "job \"loader\": frame_0007.png: no such file") == 0);
    CHECK_EQ_I64(T.fin_status, ENG_E_IO);
    CHECK(strcmp(T.fin_msg, err.msg) == 0);
    CHECK_EQ_I64(eng_job_slices(j), 2);
    CHECK_EQ_I64(in_use(a), 0); /* its arena went back */
    /* A code without a message still names the job. */
    U.slices = 5;
    U.fail_at = 1;
    U.fail_code = ENG_E_FORMAT;
    CHECK(submit(s, &k, &U, "decoder", 0) == 0);
    CHECK_EQ_I64(eng_job_wait(k, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "job \"decoder\"");
    CHECK_CONTAINS(err.msg, "FORMAT");
    /* A slice returning nonsense is an error naming the job. */
    X.slices = 5;
    X.fail_at = 1;
    X.fail_code = 42;
    CHECK(submit(s, &x, &X, "odd", 0) == 0);
    CHECK_EQ_I64(eng_job_wait(x, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "job \"odd\": its slice returned 42");
    /* Waiting on a job from inside a slice is refused, not a deadlock. */
    eng_job *target;
    tjob Y = {0};
    Y.slices = 1;
    CHECK(submit(s, &target, &Y, "target", 0) == 0);
    W.slices = 1;
    W.wait_on = target;
    CHECK(submit(s, &w, &W, "waiter", 9) == 0);
    CHECK_EQ_I64(eng_job_wait(w, &err), ENG_OK);
    CHECK_EQ_I64(W.wait_rc, ENG_E_INVALID_ARG);
    CHECK_CONTAINS(W.wait_msg, "job \"target\": called from inside a slice of job \"waiter\"");
    CHECK_EQ_I64(eng_job_wait(target, &err), ENG_OK);
    eng_job_release(j);
    eng_job_release(k);
    eng_job_release(x);
    eng_job_release(w);
    eng_job_release(target);
    eng_sched_destroy(s);
    eng_alloc_destroy(a);
    return 0;
}

/* ---- threaded mode ------------------------------------------------------------------------- */

typedef struct sum_job {
    int64_t n;
    int slices, done;
    atomic_llong total;
    int stream_ok;
} sum_job;

static void sum_fn(void *user, int64_t begin, int64_t end) {
    sum_job *sj = (sum_job *)user;
    long long acc = 0;
    for (int64_t i = begin; i < end; i++)
        acc += i;
    atomic_fetch_add(&sj->total, acc);
}

static int sum_slice(eng_job *job, void *user, eng_err *err) {
    sum_job *sj = (sum_job *)user;
    eng_stream *st = eng_job_stream(job);
    void *p;
    int rc = eng_arena_take(eng_job_arena(job), &p, 4096, err);
    if (rc != ENG_OK) return rc;
    if (st->device == ENG_DEVICE_CPU && st->pool != NULL && st->handle == NULL) sj->stream_ok++;
    eng_pool_parallel_for(st->pool, sj->n, 100, sum_fn, sj);
    eng_arena_reset(eng_job_arena(job));
    return ++sj->done < sj->slices ? ENG_JOB_MORE : ENG_OK;
}

static int test_threaded_wait(void) {
    enum { NJOBS = 4 };
    eng_err err;
    eng_pool *pool = NULL;
    eng_job *jobs[NJOBS];
    sum_job sj[NJOBS];
    char name[NJOBS][16];
    CHECK_OK(eng_pool_create(&pool, 3, &err), &err);
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    eng_sched *s = make_sched(a, pool, 1);
    CHECK(s != NULL);
    CHECK_EQ_I64(eng_sched_run_one(s), 0); /* threaded: the dispatcher runs slices */
    for (int i = 0; i < NJOBS; i++) {
        eng_job_params jp;
        memset(&sj[i], 0, sizeof sj[i]);
        sj[i].n = 10000 + i;
        sj[i].slices = 5;
        atomic_init(&sj[i].total, 0);
        snprintf(name[i], sizeof name[i], "sum%d", i);
        eng_job_params_init(&jp);
        jp.name = name[i];
        jp.priority = i % 2;
        jp.slice = sum_slice;
        jp.user = &sj[i];
        CHECK_OK(eng_sched_submit(s, &jobs[i], &jp, &err), &err);
    }
    for (int i = NJOBS - 1; i >= 0; i--) {
        CHECK_OK(eng_job_wait(jobs[i], &err), &err);
        CHECK(eng_job_done(jobs[i]));
        CHECK_EQ_I64(eng_job_slices(jobs[i]), 5);
        const long long n = sj[i].n;
        CHECK_EQ_I64(atomic_load(&sj[i].total), 5 * (n * (n - 1) / 2));
        CHECK_EQ_I64(sj[i].stream_ok, 5);
        eng_job_release(jobs[i]);
    }
    CHECK_EQ_I64(eng_sched_pending(s), 0);
    CHECK_EQ_I64(in_use(a), 0);
    eng_sched_destroy(s);
    eng_alloc_destroy(a);
    eng_pool_destroy(pool);
    return 0;
}

static int test_threaded_preempt(void) {
    eng_err err;
    eng_job *jl, *jh;
    recorder rec;
    char log[512];
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    eng_sched *s = make_sched(a, NULL, 1);
    CHECK(s != NULL);
    rec_init(&rec);
    tjob L = {0}, H = {0};
    L.rec = H.rec = &rec;
    L.tag = 'L', H.tag = 'H';
    L.slices = 40;
    L.sleep_us = 2000;
    H.slices = 5;
    CHECK(submit(s, &jl, &L, "train", 0) == 0);
    while (eng_job_slices(jl) < 3)
        sleep_us(200);
    rec_put(&rec, 'S'); /* H is submitted after this mark */
    CHECK(submit(s, &jh, &H, "frame", 10) == 0);
    CHECK_OK(eng_job_wait(jh, &err), &err);
    const int64_t l_at_h_done = eng_job_slices(jl);
    CHECK_OK(eng_job_wait(jl, &err), &err);
    rec_get(&rec, log, sizeof log);
    fprintf(stderr, "order: %s\n", log);
    const char *mark = strchr(log, 'S'), *h = strchr(log, 'H');
    CHECK(mark != NULL && h != NULL && h > mark);
    /* At most the slice running at the mark (and one started before H was queued) ... */
    int l_between = 0;
    for (const char *c = mark; c < h; c++)
        l_between += *c == 'L';
    CHECK(l_between <= 2);
    /* ... then H's slices back to back, long before L is done. */
    CHECK(strncmp(h, "HHHHH", 5) == 0);
    CHECK(l_at_h_done < 40);
    CHECK_EQ_I64(eng_job_slices(jl), 40);
    CHECK_EQ_I64(atomic_load(&H.finished), 1);
    CHECK_EQ_I64(atomic_load(&L.finished), 1);
    eng_job_release(jl);
    eng_job_release(jh);
    eng_sched_destroy(s);
    eng_alloc_destroy(a);
    return 0;
}

/* ---- teardown ------------------------------------------------------------------------------ */

static int destroy_queued_mode(int threaded) {
    enum { NJOBS = 5 };
    eng_job *jobs[NJOBS];
    tjob T[NJOBS];
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    eng_sched *s = make_sched(a, NULL, threaded);
    CHECK(s != NULL);
    memset(T, 0, sizeof T);
    for (int i = 0; i < NJOBS; i++) {
        T[i].slices = 1000000; /* never finishes by itself */
        T[i].sleep_us = 500;
        T[i].scratch = 10000;
        CHECK(submit(s, &jobs[i], &T[i], "forever", i) == 0);
    }
    if (threaded) {
        while (eng_job_slices(jobs[NJOBS - 1]) < 2)
            sleep_us(200);
    } else {
        for (int k = 0; k < 7; k++)
            CHECK_EQ_I64(eng_sched_run_one(s), 1);
    }
    CHECK(in_use(a) > 0);
    eng_sched_destroy(s); /* cancels and finishes everything, stops the dispatcher */
    CHECK_EQ_I64(in_use(a), 0);
    for (int i = 0; i < NJOBS; i++) {
        eng_err err;
        CHECK(eng_job_done(jobs[i]));
        CHECK_EQ_I64(eng_job_status(jobs[i]), ENG_E_CANCELLED);
        CHECK_EQ_I64(eng_job_wait(jobs[i], &err), ENG_E_CANCELLED); /* handles outlive it */
        CHECK_CONTAINS(err.msg, "\"forever\" was cancelled");
        CHECK_EQ_I64(atomic_load(&T[i].finished), 1);
        eng_job_release(jobs[i]);
    }
    eng_alloc_destroy(a);
    return 0;
}

static int test_destroy_queued(void) {
    CHECK(destroy_queued_mode(0) == 0);
    CHECK(destroy_queued_mode(1) == 0);
    eng_sched_destroy(NULL);
    /* An idle threaded scheduler stops at once. */
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    eng_sched *s = make_sched(a, NULL, 1);
    CHECK(s != NULL);
    sleep_us(1000);
    eng_sched_destroy(s);
    eng_alloc_destroy(a);
    return 0;
}

static int test_release_unfinished(void) {
    for (int threaded = 0; threaded <= 1; threaded++) {
        eng_job *j;
        tjob T = {0};
        eng_alloc *a = make_alloc();
        CHECK(a != NULL);
        eng_sched *s = make_sched(a, NULL, threaded);
        CHECK(s != NULL);
        T.slices = 1000000;
        T.sleep_us = 300;
        T.scratch = 1000;
        CHECK(submit(s, &j, &T, "orphan", 0) == 0);
        if (threaded) {
            while (eng_job_slices(j) < 2)
                sleep_us(200);
        } else {
            CHECK_EQ_I64(eng_sched_run_one(s), 1);
        }
        eng_job_release(j); /* cancels, waits, frees */
        CHECK_EQ_I64(atomic_load(&T.finished), 1);
        CHECK_EQ_I64(T.fin_status, ENG_E_CANCELLED);
        CHECK_EQ_I64(in_use(a), 0);
        CHECK_EQ_I64(eng_sched_pending(s), 0);
        eng_job_release(NULL);
        eng_sched_destroy(s);
        eng_alloc_destroy(a);
    }
    return 0;
}

/* ---- devices ------------------------------------------------------------------------------- */

typedef struct fake_dev {
    int created, destroyed, fail;
    int last_priority;
    int handle_storage;
} fake_dev;

static int fake_stream_create(void *impl, eng_stream *out, int priority, eng_err *err) {
    fake_dev *d = (fake_dev *)impl;
    if (d->fail) return eng_err_set(err, ENG_E_DEVICE, "fake stream: out of streams");
    d->created++;
    d->last_priority = priority;
    out->device = ENG_DEVICE_CUDA;
    out->handle = &d->handle_storage;
    out->pool = NULL;
    return ENG_OK;
}

static void fake_stream_destroy(void *impl, eng_stream *st) {
    fake_dev *d = (fake_dev *)impl;
    if (st->handle == &d->handle_storage) d->destroyed++;
}

typedef struct dev_job {
    fake_dev *dev;
    int saw_handle;
    void *arena_ptr;
} dev_job;

static int dev_slice(eng_job *job, void *user, eng_err *err) {
    dev_job *dj = (dev_job *)user;
    eng_stream *st = eng_job_stream(job);
    dj->saw_handle = st->device == ENG_DEVICE_CUDA && st->handle == &dj->dev->handle_storage;
    return eng_arena_take(eng_job_arena(job), &dj->arena_ptr, 1000, err);
}

static int test_device_not_attached(void) {
    eng_err err;
    eng_sched_params sp;
    eng_sched *s = NULL;
    eng_job *j = NULL;
    eng_job_params jp;
    eng_sched_params_init(&sp);
    CHECK_EQ_I64(sp.threaded, 1);
    CHECK_EQ_I64(eng_sched_create(&s, &sp, &err), ENG_E_INVALID_ARG);
    CHECK(s == NULL);
    CHECK_CONTAINS(err.msg, "cpu_alloc");
    eng_alloc *a = make_alloc();
    CHECK(a != NULL);
    s = make_sched(a, NULL, 0);
    CHECK(s != NULL);
    eng_job_params_init(&jp);
    jp.name = "nerf.train";
    CHECK_EQ_I64(eng_sched_submit(s, &j, &jp, &err), ENG_E_INVALID_ARG);
    CHECK(j == NULL);
    CHECK_CONTAINS(err.msg, "\"nerf.train\": no slice function");
    dev_job dj = {0};
    fake_dev dev = {0};
    dj.dev = &dev;
    jp.slice = dev_slice;
    jp.user = &dj;
    jp.device = ENG_DEVICE_CUDA;
    jp.priority = 7;
    CHECK_EQ_I64(eng_sched_submit(s, &j, &jp, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "\"nerf.train\": device cuda is not attached");
    /* Attach a fake device: its own allocator and a backend that makes streams. */
    eng_alloc *dev_alloc = make_alloc();
    CHECK(dev_alloc != NULL);
    eng_backend be;
    memset(&be, 0, sizeof be);
    be.device = ENG_DEVICE_CUDA;
    be.impl = &dev;
    be.stream_create = fake_stream_create;
    be.stream_destroy = fake_stream_destroy;
    eng_sched_set_device(s, ENG_DEVICE_CUDA, dev_alloc, &be);
    dev.fail = 1;
    CHECK_EQ_I64(eng_sched_submit(s, &j, &jp, &err), ENG_E_DEVICE);
    CHECK_CONTAINS(err.msg, "job \"nerf.train\": fake stream: out of streams");
    CHECK_EQ_I64(eng_sched_pending(s), 0);
    dev.fail = 0;
    CHECK_OK(eng_sched_submit(s, &j, &jp, &err), &err);
    CHECK_EQ_I64(dev.created, 1);
    CHECK_EQ_I64(dev.last_priority, 7);
    CHECK(eng_arena_alloc(eng_job_arena(j)) == dev_alloc);
    CHECK_EQ_I64(eng_sched_run_one(s), 1);
    CHECK(eng_job_done(j));
    CHECK_OK(eng_job_wait(j, &err), &err);
    CHECK(dj.saw_handle);
    CHECK_EQ_I64(dev.destroyed, 1); /* the stream went with the job */
    CHECK_EQ_I64(in_use(dev_alloc), 0);
    eng_job_release(j);
    eng_sched_destroy(s);
    eng_alloc_destroy(dev_alloc);
    eng_alloc_destroy(a);
    return 0;
}

static const eng_test_case cases[] = {
    {"pool_cover", test_pool_cover},
    {"pool_nested", test_pool_nested},
    {"priority_interleave", test_priority_interleave},
    {"preempt_queued", test_preempt_queued},
    {"cancel_frees_scratch", test_cancel_frees_scratch},
    {"cancel_in_slice", test_cancel_in_slice},
    {"slice_error", test_slice_error},
    {"threaded_wait", test_threaded_wait},
    {"threaded_preempt", test_threaded_preempt},
    {"destroy_queued", test_destroy_queued},
    {"release_unfinished", test_release_unfinished},
    {"device_not_attached", test_device_not_attached},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
