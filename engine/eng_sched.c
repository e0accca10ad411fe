/* eng_sched.c: the scheduler: jobs with priorities run in slices, one slice at a time, on a
 * dispatcher thread (threaded mode) or on the threads that pump it (non-threaded mode).
 *
 * Locking. s->mu guards the queue, each queued job's state and tick, `running` and `stop`.
 * j->mu guards j->done for threads that wait on one job without the scheduler (threaded mode,
 * and after eng_sched_destroy). Order: s->mu before j->mu, never the reverse.
 *
 * A job's life: QUEUED -> RUNNING (one slice, lock released) -> QUEUED ... -> FINISHING (arena
 * and stream destroyed, finish callback called, no lock held) -> done (removed from the queue
 * and j->done = 1 under both locks). After that the scheduler never touches the job again, and
 * nothing of the job but its handle fields is read, so handles outlive the scheduler.
 * A job cancelled while QUEUED is finished at once by the thread that cancels it, so its memory
 * goes back without waiting for a slice; one cancelled while RUNNING finishes after that slice. */
#define _POSIX_C_SOURCE 200809L
#include "eng_sched.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_FINISHING };

struct eng_job {
    eng_sched *s; /* not to be touched once done: the scheduler may be gone */
    char name[64];
    atomic_int priority;
    atomic_int cancelled;
    atomic_int done;
    atomic_llong slices;
    eng_device_kind device;
    eng_slice_fn slice;
    eng_job_finish_fn finish;
    void *user;
    int threaded; /* a copy of the scheduler's mode, readable after it is gone */

    /* Under s->mu. */
    int state;
    uint64_t seq;      /* submission order */
    uint64_t last_run; /* tick at the end of its last slice; 0 = never ran */

    /* Owned until the job finishes. */
    eng_arena *arena;
    eng_stream stream;
    const eng_backend *backend; /* destroys the stream; NULL for CPU jobs */
    int has_stream;

    /* Written before done = 1, read after. */
    int status;
    eng_err err;

    pthread_mutex_t mu;
    pthread_cond_t cv;
};

typedef struct sched_device {
    eng_alloc *alloc;
    const eng_backend *backend;
} sched_device;

struct eng_sched {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* queue changed, a slice ended, or stop */
    eng_pool *pool;
    sched_device dev[ENG_DEVICE_COUNT];
    int threaded;
    int stop;
    pthread_t dispatcher;
    int has_dispatcher;

    eng_job **jobs; /* queued, running or finishing */
    int64_t njobs, capjobs;
    uint64_t seq, tick;
    eng_job *running; /* the job whose slice (or finish) runs now */
    pthread_t running_thread;
};

/* ---- helpers ------------------------------------------------------------------------------- */

static void lock_sched(const eng_sched *s) {
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
}

static void unlock_sched(const eng_sched *s) {
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}

/* The ready job to run next: highest priority; among equals, never-run jobs first in
 * submission order, then the one whose last slice ended longest ago. */
static eng_job *pick_locked(const eng_sched *s) {
    eng_job *best = NULL;
    int best_pri = 0;
    for (int64_t i = 0; i < s->njobs; i++) {
        eng_job *j = s->jobs[i];
        if (j->state != JOB_QUEUED) continue;
        const int pri = atomic_load(&j->priority);
        int better;
        if (best == NULL || pri > best_pri) {
            better = 1;
        } else if (pri < best_pri) {
            better = 0;
        } else if (j->last_run != best->last_run) {
            better = j->last_run < best->last_run;
        } else {
            better = j->seq < best->seq;
        }
        if (better) {
            best = j;
            best_pri = pri;
        }
    }
    return best;
}

static void remove_locked(eng_sched *s, const eng_job *j) {
    for (int64_t i = 0; i < s->njobs; i++) {
        if (s->jobs[i] == j) {
            memmove(&s->jobs[i], &s->jobs[i + 1], (size_t)(s->njobs - i - 1) * sizeof *s->jobs);
            s->njobs--;
            return;
        }
    }
    ENG_ASSERT(!"job not in its scheduler's queue");
}

/* Releases what the job holds (arena, stream) and reports its end. The job is FINISHING and
 * no lock is held. */
static void job_release_resources(eng_job *j) {
    eng_arena_destroy(j->arena);
    j->arena = NULL;
    j->stream.arena = NULL;
    if (j->has_stream && j->backend != NULL && j->backend->stream_destroy != NULL) {
        j->backend->stream_destroy(j->backend->impl, &j->stream);
    }
    j->has_stream = 0;
}

/* Finishes a FINISHING job with `status` (the message is in j->err): frees its resources, calls
 * the finish callback, then removes it from the queue and marks it done. No lock held. */
static void job_finish(eng_sched *s, eng_job *j, int status) {
    j->status = status;
    if (status == ENG_OK) eng_err_clear(&j->err);
    j->err.code = status;
    job_release_resources(j);
    if (j->finish != NULL) j->finish(j, j->user, status, &j->err);
    lock_sched(s);
    remove_locked(s, j);
    if (s->running == j) s->running = NULL;
    pthread_mutex_lock(&j->mu);
    atomic_store(&j->done, 1);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_cond_broadcast(&s->cv);
    unlock_sched(s);
}

static void finish_cancelled(eng_sched *s, eng_job *j) {
    eng_err_set(&j->err, ENG_E_CANCELLED, "job \"%s\" was cancelled", j->name);
    job_finish(s, j, ENG_E_CANCELLED);
}

/* Runs the next slice (s->mu held on entry and on return, released while the slice runs).
 * Returns 1 if a job was advanced, 0 if none was ready or another slice is running. */
static int run_one_locked(eng_sched *s) {
    if (s->running != NULL) return 0;
    eng_job *j = pick_locked(s);
    if (j == NULL) return 0;
    s->running = j;
    s->running_thread = pthread_self();
    if (atomic_load(&j->cancelled)) {
        j->state = JOB_FINISHING;
        unlock_sched(s);
        finish_cancelled(s, j);
        lock_sched(s);
        return 1;
    }
    j->state = JOB_RUNNING;
    unlock_sched(s);

    eng_err serr;
    eng_err_clear(&serr);
    int rc = j->slice(j, j->user, &serr);
    atomic_fetch_add(&j->slices, 1);

    lock_sched(s);
    if (rc == ENG_JOB_MORE && !atomic_load(&j->cancelled)) {
        j->state = JOB_QUEUED;
        j->last_run = ++s->tick;
        s->running = NULL;
        pthread_cond_broadcast(&s->cv);
        return 1;
    }
    j->state = JOB_FINISHING;
    unlock_sched(s);
    if (rc == ENG_JOB_MORE) {
        finish_cancelled(s, j);
    } else if (rc == ENG_OK) {
        job_finish(s, j, ENG_OK);
    } else {
        if (rc > 0) {
            eng_err_set(&j->err, ENG_E_INVALID_ARG,
                        "job \"%s\": its slice returned %d (expected ENG_JOB_MORE, ENG_OK or an "
                        "ENG_E_* code)",
                        j->name, rc);
            rc = ENG_E_INVALID_ARG;
        } else if (serr.msg[0] == '\0') {
            eng_err_set(&j->err, rc, "job \"%s\": its slice failed with %s", j->name,
                        eng_err_name(rc));
        } else {
            j->err = serr;
            j->err.code = rc;
            eng_err_prefix(&j->err, "job \"%s\"", j->name);
        }
        job_finish(s, j, rc);
    }
    lock_sched(s);
    return 1;
}

static void *dispatcher_main(void *arg) {
    eng_sched *s = (eng_sched *)arg;
    lock_sched(s);
    while (!s->stop) {
        if (!run_one_locked(s) && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
    }
    unlock_sched(s);
    return NULL;
}

/* ---- scheduler lifecycle ------------------------------------------------------------------- */

void eng_job_params_init(eng_job_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->name = "job";
    p->device = ENG_DEVICE_CPU;
}

void eng_sched_params_init(eng_sched_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->threaded = 1;
}

int eng_sched_create(eng_sched **out, const eng_sched_params *params, eng_err *err) {
    int rc = ENG_OK;
    eng_sched *s = NULL;
    int sync_ok = 0;
    ENG_ASSERT(out != NULL && params != NULL);
    *out = NULL;
    if (params->cpu_alloc == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_sched_create: params.cpu_alloc is required (CPU jobs' arenas)");
        goto done;
    }
    s = (eng_sched *)calloc(1, sizeof *s);
    if (s == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "eng_sched_create: out of host memory");
        goto done;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        rc = eng_err_set(err, ENG_E_OOM, "eng_sched_create: out of host memory (mutex)");
        goto done;
    }
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        rc = eng_err_set(err, ENG_E_OOM, "eng_sched_create: out of host memory (condvar)");
        goto done;
    }
    sync_ok = 1;
    s->pool = params->pool;
    s->dev[ENG_DEVICE_CPU].alloc = params->cpu_alloc;
    s->threaded = params->threaded != 0;
    if (s->threaded) {
        const int e = pthread_create(&s->dispatcher, NULL, dispatcher_main, s);
        if (e != 0) {
            rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                             "eng_sched_create: could not start the dispatcher thread (error %d)",
                             e);
            goto done;
        }
        s->has_dispatcher = 1;
    }
    *out = s;
    s = NULL;
done:
    if (s != NULL) {
        if (sync_ok) {
            pthread_cond_destroy(&s->cv);
            pthread_mutex_destroy(&s->mu);
        }
        free(s);
    }
    return rc;
}

void eng_sched_destroy(eng_sched *s) {
    if (s == NULL) return;
    lock_sched(s);
    s->stop = 1;
    for (int64_t i = 0; i < s->njobs; i++)
        atomic_store(&s->jobs[i]->cancelled, 1);
    pthread_cond_broadcast(&s->cv);
    unlock_sched(s);
    if (s->has_dispatcher) pthread_join(s->dispatcher, NULL); /* after its current slice */

    /* Finish what is left as cancelled; wait for a slice another thread is pumping. */
    lock_sched(s);
    while (s->njobs > 0) {
        eng_job *j = NULL;
        for (int64_t i = 0; i < s->njobs && j == NULL; i++) {
            if (s->jobs[i]->state == JOB_QUEUED) j = s->jobs[i];
        }
        if (j == NULL) {
            pthread_cond_wait(&s->cv, &s->mu); /* running or finishing elsewhere */
            continue;
        }
        atomic_store(&j->cancelled, 1);
        j->state = JOB_FINISHING;
        unlock_sched(s);
        finish_cancelled(s, j);
        lock_sched(s);
    }
    unlock_sched(s);
    free(s->jobs);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void eng_sched_set_device(eng_sched *s,
                          eng_device_kind device,
                          eng_alloc *alloc,
                          const eng_backend *backend) {
    ENG_ASSERT(s != NULL && (unsigned)device < ENG_DEVICE_COUNT);
    lock_sched(s);
    s->dev[device].alloc = alloc;
    s->dev[device].backend = backend;
    unlock_sched(s);
}

/* ---- submitting and pumping ---------------------------------------------------------------- */

static void job_free(eng_job *j) {
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

int eng_sched_submit(eng_sched *s, eng_job **out, const eng_job_params *params, eng_err *err) {
    int rc = ENG_OK;
    eng_job *j = NULL;
    int sync_ok = 0;
    ENG_ASSERT(s != NULL && out != NULL && params != NULL);
    *out = NULL;
    const char *name = params->name != NULL ? params->name : "job";
    if (params->slice == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "eng_sched_submit: job \"%s\": no slice function",
                         name);
        goto done;
    }
    if ((unsigned)params->device >= ENG_DEVICE_COUNT) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "eng_sched_submit: job \"%s\": device %d unknown",
                         name, (int)params->device);
        goto done;
    }
    lock_sched(s);
    const sched_device dev = s->dev[params->device];
    const int stopping = s->stop;
    unlock_sched(s);
    if (stopping) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_sched_submit: job \"%s\": the scheduler is being destroyed", name);
        goto done;
    }
    if (dev.alloc == NULL || (params->device != ENG_DEVICE_CPU && dev.backend == NULL)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_sched_submit: job \"%s\": device %s is not attached to the scheduler",
                         name, eng_device_name(params->device));
        goto done;
    }
    j = (eng_job *)calloc(1, sizeof *j);
    if (j == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "eng_sched_submit: job \"%s\": out of host memory", name);
        goto done;
    }
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        rc = eng_err_set(err, ENG_E_OOM, "eng_sched_submit: job \"%s\": no mutex", name);
        goto done;
    }
    if (pthread_cond_init(&j->cv, NULL) != 0) {
        pthread_mutex_destroy(&j->mu);
        rc = eng_err_set(err, ENG_E_OOM, "eng_sched_submit: job \"%s\": no condition variable",
                         name);
        goto done;
    }
    sync_ok = 1;
    snprintf(j->name, sizeof j->name, "%s", name);
    atomic_init(&j->priority, params->priority);
    atomic_init(&j->cancelled, 0);
    atomic_init(&j->done, 0);
    atomic_init(&j->slices, 0);
    j->device = params->device;
    j->slice = params->slice;
    j->finish = params->finish;
    j->user = params->user;
    j->threaded = s->threaded;
    j->s = s;
    if ((rc = eng_arena_create(&j->arena, dev.alloc, j->name, err)) != ENG_OK) {
        eng_err_prefix(err, "eng_sched_submit: job \"%s\"", j->name);
        goto done;
    }
    if (params->device == ENG_DEVICE_CPU) {
        j->stream.device = ENG_DEVICE_CPU;
        j->stream.handle = NULL;
        j->stream.pool = s->pool;
    } else {
        j->backend = dev.backend;
        if (dev.backend->stream_create == NULL) {
            rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                             "eng_sched_submit: job \"%s\": the %s backend makes no streams",
                             j->name, eng_device_name(params->device));
            goto done;
        }
        if ((rc = dev.backend->stream_create(dev.backend->impl, &j->stream, params->priority,
                                             err)) != ENG_OK) {
            eng_err_prefix(err, "eng_sched_submit: job \"%s\"", j->name);
            goto done;
        }
        j->has_stream = 1;
    }
    j->stream.arena = j->arena; /* op workspaces come from the job's scratch */
    lock_sched(s);
    if (s->njobs == s->capjobs) {
        const int64_t ncap = s->capjobs ? s->capjobs * 2 : 16;
        eng_job **nj = (eng_job **)realloc(s->jobs, (size_t)ncap * sizeof *nj);
        if (nj == NULL) {
            unlock_sched(s);
            rc = eng_err_set(err, ENG_E_OOM, "eng_sched_submit: job \"%s\": out of host memory",
                             j->name);
            goto done;
        }
        s->jobs = nj;
        s->capjobs = ncap;
    }
    j->state = JOB_QUEUED;
    j->seq = ++s->seq;
    s->jobs[s->njobs++] = j;
    pthread_cond_broadcast(&s->cv);
    unlock_sched(s);
    *out = j;
    j = NULL;
done:
    if (j != NULL) {
        job_release_resources(j);
        if (sync_ok) {
            job_free(j);
        } else {
            free(j);
        }
    }
    return rc;
}

int eng_sched_run_one(eng_sched *s) {
    int ran;
    ENG_ASSERT(s != NULL);
    if (s->threaded) return 0;
    lock_sched(s);
    ran = s->stop ? 0 : run_one_locked(s);
    unlock_sched(s);
    return ran;
}

void eng_sched_run_until_idle(eng_sched *s) {
    while (eng_sched_run_one(s)) {
    }
}

int eng_sched_pending(eng_sched *s) {
    int n;
    ENG_ASSERT(s != NULL);
    lock_sched(s);
    n = (int)s->njobs;
    unlock_sched(s);
    return n;
}

/* ---- jobs ---------------------------------------------------------------------------------- */

void eng_job_cancel(eng_job *job) {
    ENG_ASSERT(job != NULL);
    atomic_store(&job->cancelled, 1);
    if (atomic_load(&job->done)) return;
    eng_sched *s = job->s;
    lock_sched(s);
    if (!atomic_load(&job->done) && job->state == JOB_QUEUED) {
        /* Not running: finish it here and now, so its arena goes back at once. */
        job->state = JOB_FINISHING;
        unlock_sched(s);
        finish_cancelled(s, job);
        return;
    }
    unlock_sched(s); /* running: it stops after its slice */
}

static void copy_result(const eng_job *job, eng_err *err) {
    if (err == NULL) return;
    if (job->status == ENG_OK) {
        eng_err_clear(err);
    } else {
        *err = job->err;
    }
}

int eng_job_wait(eng_job *job, eng_err *err) {
    ENG_ASSERT(job != NULL);
    if (!atomic_load(&job->done)) {
        eng_sched *s = job->s;
        lock_sched(s);
        if (!atomic_load(&job->done) && s->running != NULL &&
            pthread_equal(s->running_thread, pthread_self())) {
            const char *inside = s->running->name;
            const int rc = eng_err_set(err, ENG_E_INVALID_ARG,
                                       "eng_job_wait: job \"%s\": called from inside a slice of "
                                       "job \"%s\" (a slice must not wait on a job)",
                                       job->name, inside);
            unlock_sched(s);
            return rc;
        }
        if (job->threaded) {
            unlock_sched(s);
            pthread_mutex_lock(&job->mu);
            while (!atomic_load(&job->done))
                pthread_cond_wait(&job->cv, &job->mu);
            pthread_mutex_unlock(&job->mu);
        } else {
            /* Pump: run slices (of whichever job is next) until this one is done. */
            while (!atomic_load(&job->done)) {
                if (!run_one_locked(s)) pthread_cond_wait(&s->cv, &s->mu);
            }
            unlock_sched(s);
        }
    }
    /* done was set under job->mu: taking it once orders our reads after the finisher's writes
     * and ensures it has let go of the mutex before a release frees it. */
    pthread_mutex_lock(&job->mu);
    pthread_mutex_unlock(&job->mu);
    copy_result(job, err);
    return job->status;
}

void eng_job_release(eng_job *job) {
    if (job == NULL) return;
    if (!atomic_load(&job->done)) {
        eng_err e;
        eng_job_cancel(job);
        const int rc = eng_job_wait(job, &e);
        /* Releasing the job whose slice is running, from inside that slice, cannot finish. */
        ENG_ASSERT(!(rc == ENG_E_INVALID_ARG && !atomic_load(&job->done)));
    }
    pthread_mutex_lock(&job->mu);
    pthread_mutex_unlock(&job->mu);
    job_free(job);
}

int eng_job_done(const eng_job *job) {
    ENG_ASSERT(job != NULL);
    return atomic_load(&job->done);
}

int eng_job_status(const eng_job *job) {
    ENG_ASSERT(job != NULL);
    return atomic_load(&job->done) ? job->status : ENG_OK;
}

const char *eng_job_name(const eng_job *job) {
    ENG_ASSERT(job != NULL);
    return job->name;
}

int eng_job_priority(const eng_job *job) {
    ENG_ASSERT(job != NULL);
    return atomic_load(&job->priority);
}

void eng_job_set_priority(eng_job *job, int priority) {
    ENG_ASSERT(job != NULL);
    atomic_store(&job->priority, priority);
}

int64_t eng_job_slices(const eng_job *job) {
    ENG_ASSERT(job != NULL);
    return (int64_t)atomic_load(&job->slices);
}

int eng_job_cancelled(const eng_job *job) {
    ENG_ASSERT(job != NULL);
    return atomic_load(&job->cancelled);
}

eng_arena *eng_job_arena(eng_job *job) {
    ENG_ASSERT(job != NULL);
    return job->arena;
}

eng_stream *eng_job_stream(eng_job *job) {
    ENG_ASSERT(job != NULL);
    return &job->stream;
}
