/* nerf_live.c: training as a scheduler job with frame jobs between its slices (nerf_live.h). */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "nerf_live.h"

#include "eng_bench.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct nerf_live {
    eng_ctx *ctx;
    nerf_trainer *t;
    nerf_live_params p;
    char *snapshot;
    eng_job *job;
    eng_progress *bar;
    atomic_int paused, stop_requested, finished;
    pthread_mutex_t mu; /* guards stats */
    nerf_live_stats stats;
    double rays;
    int64_t start_step;
};

void nerf_live_params_init(nerf_live_params *p) {
    memset(p, 0, sizeof *p);
    p->snapshot_every = 500;
    p->slice_ms = 30.0;
    p->progress = 1;
}

static void sleep_ms(double ms) {
    struct timespec ts = {0, (long)(ms * 1e6)};
    nanosleep(&ts, NULL);
}

static int limits_reached(const nerf_live *run, int64_t step, double seconds) {
    return (run->p.end_step > 0 && step >= run->p.end_step) ||
           (run->p.seconds > 0 && seconds >= run->p.seconds);
}

static int train_slice(eng_job *job, void *user, eng_err *err) {
    (void)job;
    nerf_live *run = user;
    if (atomic_load(&run->paused)) {
        sleep_ms(5.0);
        return ENG_JOB_MORE;
    }
    const double t0 = eng_bench_now_s();
    nerf_live_stats st;
    pthread_mutex_lock(&run->mu);
    st = run->stats;
    pthread_mutex_unlock(&run->mu);
    if (limits_reached(run, st.step, st.seconds)) return ENG_OK;
    do {
        nerf_step_stats s;
        const double s0 = eng_bench_now_s();
        int rc = nerf_trainer_step(run->t, &s, err);
        if (rc != ENG_OK) return rc;
        st.seconds += eng_bench_now_s() - s0;
        st.step = s.step;
        st.run_steps++;
        run->rays += (double)s.rays;
        st.loss = st.loss > 0 ? 0.95 * st.loss + 0.05 * s.loss : s.loss;
        st.psnr = st.loss > 0 ? -10.0 * log10(st.loss) : 0.0;
        st.rays_per_s = st.seconds > 0 ? run->rays / st.seconds : 0.0;
        if (run->snapshot && st.step % run->p.snapshot_every == 0) {
            rc = nerf_trainer_save(run->t, run->snapshot, err);
            if (rc != ENG_OK) return rc;
        }
    } while (!limits_reached(run, st.step, st.seconds) &&
             (eng_bench_now_s() - t0) * 1e3 < run->p.slice_ms);
    pthread_mutex_lock(&run->mu);
    st.paused = run->stats.paused;
    run->stats = st;
    pthread_mutex_unlock(&run->mu);
    if (run->bar) {
        char suffix[160];
        snprintf(suffix, sizeof suffix, "loss %.5f psnr %.2f %.0f rays/s", st.loss, st.psnr,
                 st.rays_per_s);
        eng_progress_update(run->bar, run->p.end_step > 0 ? st.step : st.run_steps, suffix);
    }
    return limits_reached(run, st.step, st.seconds) ? ENG_OK : ENG_JOB_MORE;
}

static void train_finished(eng_job *job, void *user, int status, const eng_err *err) {
    (void)job, (void)status, (void)err;
    nerf_live *run = user;
    atomic_store(&run->finished, 1);
}

int nerf_live_start(
    nerf_live **out, eng_ctx *ctx, nerf_trainer *t, const nerf_live_params *p, eng_err *err) {
    *out = NULL;
    if ((p->end_step <= 0 && p->seconds <= 0) || p->snapshot_every < 1)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_live_start: end_step %lld, seconds %g, snapshot_every %lld: a "
                           "step or time limit and an interval >= 1 are needed",
                           (long long)p->end_step, p->seconds, (long long)p->snapshot_every);
    nerf_live *run = calloc(1, sizeof *run);
    if (!run) return eng_err_set(err, ENG_E_OOM, "nerf_live_start: out of memory");
    run->ctx = ctx;
    run->t = t;
    run->p = *p;
    pthread_mutex_init(&run->mu, NULL);
    run->start_step = nerf_trainer_step_count(t);
    run->stats.step = run->start_step;
    int rc = ENG_OK;
    if (p->snapshot && !(run->snapshot = strdup(p->snapshot))) {
        rc = eng_err_set(err, ENG_E_OOM, "nerf_live_start: out of memory");
        goto done;
    }
    run->p.snapshot = run->snapshot;
    if (p->progress) {
        eng_progress_params pp;
        eng_progress_params_init(&pp);
        pp.label = "train";
        pp.total = p->end_step > 0 ? p->end_step : 0;
        pp.unit = "step";
        if ((rc = eng_progress_create(&run->bar, &pp, err)) != ENG_OK) goto done;
        if (p->end_step > 0) eng_progress_update(run->bar, run->start_step, NULL);
    }
    eng_job_params jp;
    eng_job_params_init(&jp);
    jp.name = "nerf.train";
    jp.priority = NERF_LIVE_TRAIN_PRIORITY;
    jp.slice = train_slice;
    jp.finish = train_finished;
    jp.user = run;
    rc = eng_sched_submit(eng_ctx_sched(ctx), &run->job, &jp, err);
done:
    if (rc != ENG_OK) {
        nerf_live_destroy(run);
        return rc;
    }
    *out = run;
    return ENG_OK;
}

typedef struct frame_call {
    int (*fn)(void *user, eng_err *err);
    void *user;
} frame_call;

static int frame_slice(eng_job *job, void *user, eng_err *err) {
    (void)job;
    frame_call *fc = user;
    return fc->fn(fc->user, err);
}

int nerf_live_frame(nerf_live *run, int (*fn)(void *user, eng_err *err), void *user, eng_err *err) {
    frame_call fc = {fn, user};
    eng_job_params jp;
    eng_job_params_init(&jp);
    jp.name = "nerf.frame";
    jp.priority = NERF_LIVE_FRAME_PRIORITY;
    jp.slice = frame_slice;
    jp.user = &fc;
    eng_job *job = NULL;
    int rc = eng_sched_submit(eng_ctx_sched(run->ctx), &job, &jp, err);
    if (rc == ENG_OK) rc = eng_job_wait(job, err);
    eng_job_release(job);
    /* A non-threaded scheduler runs slices only when pumped: one training slice per frame. In
     * threaded mode this does nothing (the dispatcher runs them). */
    if (rc == ENG_OK) eng_sched_run_one(eng_ctx_sched(run->ctx));
    return rc;
}

void nerf_live_pause(nerf_live *run, int paused) {
    atomic_store(&run->paused, paused != 0);
    pthread_mutex_lock(&run->mu);
    run->stats.paused = paused != 0;
    pthread_mutex_unlock(&run->mu);
}

void nerf_live_get_stats(nerf_live *run, nerf_live_stats *out) {
    pthread_mutex_lock(&run->mu);
    *out = run->stats;
    pthread_mutex_unlock(&run->mu);
    out->done = nerf_live_done(run);
}

int nerf_live_done(nerf_live *run) {
    return atomic_load(&run->finished);
}

void nerf_live_stop(nerf_live *run) {
    atomic_store(&run->stop_requested, 1);
    if (run->job) eng_job_cancel(run->job);
}

int nerf_live_finish(nerf_live *run, eng_err *err) {
    if (!run->job) return eng_err_set(err, ENG_E_INVALID_ARG, "nerf_live_finish: called twice");
    atomic_store(&run->paused, 0);
    int rc = eng_job_wait(run->job, err);
    eng_job_release(run->job);
    run->job = NULL;
    if (rc == ENG_E_CANCELLED && atomic_load(&run->stop_requested)) {
        rc = ENG_OK;
        err->code = ENG_OK;
        err->msg[0] = '\0';
    }
    if (rc == ENG_OK && run->snapshot) rc = nerf_trainer_save(run->t, run->snapshot, err);
    if (run->bar) {
        eng_progress_finish(run->bar, NULL);
        eng_progress_destroy(run->bar);
        run->bar = NULL;
    }
    return rc;
}

void nerf_live_destroy(nerf_live *run) {
    if (!run) return;
    if (run->job) {
        nerf_live_stop(run);
        eng_job_release(run->job); /* waits */
    }
    eng_progress_destroy(run->bar);
    pthread_mutex_destroy(&run->mu);
    free(run->snapshot);
    free(run);
}
