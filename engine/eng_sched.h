/* eng_sched.h: the one scheduler and its CPU thread pool.
 *
 *   static int train_slice(eng_job *job, void *user, eng_err *err) {
 *       trainer *t = user;  ... run 16 steps, using eng_job_arena(job), eng_job_stream(job) ...
 *       eng_arena_reset(eng_job_arena(job));
 *       return t->step < t->steps ? ENG_JOB_MORE : ENG_OK;
 *   }
 *   eng_job_params jp; eng_job_params_init(&jp);
 *   jp.name = "nerf.train"; jp.priority = 0; jp.slice = train_slice; jp.user = &t;
 *   eng_job *job; eng_sched_submit(sched, &job, &jp, &err);
 *   int rc = eng_job_wait(job, &err); eng_job_release(job);
 *
 * Pool: N-1 worker threads plus the calling thread split a range (eng_pool_parallel_for); the
 * only threads CPU ops and host work (decoding, encoding) may use.
 *
 * Scheduler: work arrives as jobs, each with a priority and, on a device, its own stream and
 * scratch arena. A job runs in slices (one call of its slice function). Whenever a slice ends,
 * the next slice is taken from the ready job with the highest priority; jobs of equal priority
 * take turns (the one that ran longest ago goes first). So a high-priority job submitted while a
 * low-priority slice runs gets the next slice, before low-priority jobs that were already waiting.
 * Slices run one at a time, either on the scheduler's dispatcher thread (params.threaded = 1) or
 * on whichever thread calls eng_sched_run_one / eng_job_wait (threaded = 0: deterministic, and how
 * a GUI main loop pumps it).
 * Cancelling a job (from any thread) stops it before its next slice; it finishes with
 * ENG_E_CANCELLED and its scratch arena is destroyed at once, giving the memory back.
 * Threads: every function is safe from any thread, but a slice must not wait on another job
 * (eng_job_wait refuses), a finish callback must not release its own job, and
 * eng_sched_destroy must not race other calls on the same scheduler. */
#ifndef ENG_SCHED_H
#define ENG_SCHED_H

#include <stdint.h>

#include "eng_alloc.h"
#include "eng_backend.h"
#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- thread pool --------------------------------------------------------------------------- */
/* Creates a pool of `threads` threads in all, the caller's included (0: the number of online
 * CPUs). Errors: ENG_E_INVALID_ARG (threads < 0 or > 1024), ENG_E_OOM, ENG_E_UNSUPPORTED (thread
 * creation failed). */
int eng_pool_create(eng_pool **out, int threads, eng_err *err);
void eng_pool_destroy(eng_pool *p);      /* joins the workers; NULL is a no-op */
int eng_pool_threads(const eng_pool *p); /* 1 for NULL */

/* fn(user, begin, end) over [0, n) in pieces of at least `grain` items (grain < 1 counts as 1;
 * only the last piece may be shorter), spread over the pool and the calling thread; returns when
 * all pieces are done. n <= 0 calls nothing. p may be NULL (runs fn(user, 0, n)).
 * Calls from inside a piece, or from two threads at once, run serially on the caller (one call
 * owns the pool at a time, so it can never deadlock on itself). Idle workers sleep. */
typedef void (*eng_range_fn)(void *user, int64_t begin, int64_t end);
void eng_pool_parallel_for(eng_pool *p, int64_t n, int64_t grain, eng_range_fn fn, void *user);

/* ---- scheduler ----------------------------------------------------------------------------- */
typedef struct eng_sched eng_sched; /* opaque */
typedef struct eng_job eng_job;     /* opaque */

/* A slice returns ENG_JOB_MORE to be called again, ENG_OK when the job is done, or an ENG_E_*
 * code (with *err filled) when it failed. */
#define ENG_JOB_MORE 1
typedef int (*eng_slice_fn)(eng_job *job, void *user, eng_err *err);
/* Called once when the job finishes (done, failed or cancelled), on the thread that saw it: the
 * one that ran its last slice, or the one that cancelled it while it was queued. The job's arena
 * and stream are already gone. It must not release the job. */
typedef void (*eng_job_finish_fn)(eng_job *job, void *user, int status, const eng_err *err);

typedef struct eng_job_params {
    const char *name;         /* shown in logs and errors; copied */
    int priority;             /* higher runs first; a viewer frame > training > batch work */
    eng_device_kind device;   /* where the job's stream and arena live */
    eng_slice_fn slice;       /* required */
    eng_job_finish_fn finish; /* optional */
    void *user;
} eng_job_params;

typedef struct eng_sched_params {
    eng_pool *pool;       /* used by CPU jobs' streams; borrowed */
    eng_alloc *cpu_alloc; /* where CPU jobs' arenas come from; borrowed, required */
    int threaded;         /* 1: a dispatcher thread runs slices; 0: callers pump */
} eng_sched_params;

void eng_job_params_init(eng_job_params *p);
void eng_sched_params_init(eng_sched_params *p);

/* Errors: ENG_E_INVALID_ARG (no cpu_alloc), ENG_E_OOM, ENG_E_UNSUPPORTED (thread creation). */
int eng_sched_create(eng_sched **out, const eng_sched_params *params, eng_err *err);
/* Cancels the jobs still queued, waits for a running slice, stops the dispatcher; every job is
 * finished (ENG_E_CANCELLED, finish callbacks called) when it returns. Job handles not yet
 * released stay valid for eng_job_status/eng_job_wait/eng_job_release. NULL is a no-op. */
void eng_sched_destroy(eng_sched *s);
/* Lets jobs run on a device: their arenas come from `alloc`, their streams from `backend`.
 * Both borrowed; called by eng_ctx_attach_backend. */
void eng_sched_set_device(eng_sched *s,
                          eng_device_kind device,
                          eng_alloc *alloc,
                          const eng_backend *backend);

/* Queues a job; *out is the caller's handle (release with eng_job_release after it finished).
 * A CPU job's stream is {ENG_DEVICE_CPU, NULL, params.pool}; a device job's comes from
 * backend->stream_create with the job's priority and is destroyed when the job finishes.
 * Errors: ENG_E_INVALID_ARG (no slice, device not set, scheduler being destroyed), ENG_E_OOM,
 * ENG_E_DEVICE (stream), ENG_E_UNSUPPORTED (the backend makes no streams). */
int eng_sched_submit(eng_sched *s, eng_job **out, const eng_job_params *params, eng_err *err);
/* Non-threaded mode: runs the next slice on this thread. Returns 1 if a slice ran, 0 if no job
 * was ready or another thread's slice is running. In threaded mode returns 0 and does nothing. */
int eng_sched_run_one(eng_sched *s);
/* Non-threaded mode: runs slices until no job is ready. */
void eng_sched_run_until_idle(eng_sched *s);
/* Number of jobs queued or running. */
int eng_sched_pending(eng_sched *s);

/* ---- jobs ---------------------------------------------------------------------------------- */
/* Requests cancellation; safe from any thread and inside the job's own slice. A job waiting for
 * its next slice is finished at once, on this thread. A running one stops after the slice; if
 * that slice returned ENG_OK or an error, that result stands. No-op on a finished job. */
void eng_job_cancel(eng_job *job);
/* Blocks until the job has finished (pumping slices itself in non-threaded mode, of whichever
 * job is next) and returns its status (ENG_OK, ENG_E_CANCELLED or the slice's error, its message
 * prefixed with `job "name": `, copied into *err). Called from inside a slice it would deadlock,
 * so it returns ENG_E_INVALID_ARG instead. */
int eng_job_wait(eng_job *job, eng_err *err);
/* Frees the handle. A job not yet finished is cancelled first and waited for. NULL: no-op. */
void eng_job_release(eng_job *job);

int eng_job_done(const eng_job *job);   /* 1 once finished */
int eng_job_status(const eng_job *job); /* meaningful once done (ENG_OK before) */
const char *eng_job_name(const eng_job *job);
int eng_job_priority(const eng_job *job);
void eng_job_set_priority(eng_job *job, int priority); /* takes effect at the next pick */
int64_t eng_job_slices(const eng_job *job);            /* slices run so far */
int eng_job_cancelled(const eng_job *job);             /* 1 once cancellation was requested */
/* Inside a slice: the job's scratch arena (reset it at the end of each step) and stream. */
eng_arena *eng_job_arena(eng_job *job);
eng_stream *eng_job_stream(eng_job *job);

#ifdef __cplusplus
}
#endif
#endif /* ENG_SCHED_H */
