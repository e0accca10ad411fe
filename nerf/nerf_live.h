/* nerf_live.h: a training run as a job on the engine's scheduler, so that other work (a viewer's
 * frames) can run between its slices at a higher priority. Prefix nerf_live_. Used by
 * `nerf train` (with and without --view).
 *
 *   nerf_live_params lp; nerf_live_params_init(&lp);
 *   lp.end_step = 2000; lp.snapshot = "scene.nerf";
 *   nerf_live *run = NULL;
 *   nerf_live_start(&run, ctx, trainer, &lp, &err);      // the training job is queued
 *   while (viewer open && !nerf_live_done(run)) {
 *       nerf_live_frame(run, draw, user, &err);          // draw(user, err) as a frame job
 *       nerf_live_get_stats(run, &st);                   // step, PSNR, rays/s for a readout
 *   }
 *   nerf_live_stop(run);                                 // optional: end early (window closed)
 *   nerf_live_finish(run, &err);                         // waits, writes the final snapshot
 *   nerf_live_destroy(run);
 *
 * The training job (priority NERF_LIVE_TRAIN_PRIORITY) runs steps in slices of about slice_ms
 * (at least one step each) until end_step or `seconds` of training time; it shows a progress bar
 * (loss, PSNR, rays/s) and writes the snapshot every snapshot_every steps. A frame job
 * (NERF_LIVE_FRAME_PRIORITY) is taken before the next training slice, so a frame waits at most
 * one slice. Slices never overlap, so a frame function may render with the trainer.
 * Pausing makes the training slices sleep 5 ms instead of stepping (the time does not count).
 * Threads: with the context's threaded scheduler (the default) slices run on its dispatcher
 * thread; in non-threaded mode on the thread waiting in nerf_live_frame (which then runs one
 * training slice after each frame) and nerf_live_finish. The
 * functions here are called from one thread (the one that started the run); stats and pause are
 * safe against the running slice. */
#ifndef NERF_LIVE_H
#define NERF_LIVE_H

#include <stdint.h>

#include "eng.h"
#include "nerf_train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_LIVE_TRAIN_PRIORITY 0
#define NERF_LIVE_FRAME_PRIORITY 10

typedef struct nerf_live nerf_live; /* opaque */

typedef struct nerf_live_params {
    int64_t end_step;       /* train until this step (counted from 0); <= 0: no step limit */
    double seconds;         /* and/or for this much training time; <= 0: no time limit */
    const char *snapshot;   /* NULL: none written; copied */
    int64_t snapshot_every; /* steps between snapshots: 500 */
    double slice_ms;        /* a training slice's length: 30 */
    int progress;           /* 1 (default): a progress bar on stderr */
} nerf_live_params;
void nerf_live_params_init(nerf_live_params *p);

typedef struct nerf_live_stats {
    int64_t step;      /* steps done (the trainer's count) */
    int64_t run_steps; /* steps of this run */
    double loss;       /* moving average of the step losses (0 before the first step) */
    double psnr;       /* -10 log10(loss) */
    double rays_per_s; /* this run's rays over its training time */
    double seconds;    /* training time of this run (pauses excluded) */
    int paused, done;
} nerf_live_stats;

/* Queues the training job. t is borrowed (it must have a dataset and outlive the run).
 * Errors: ENG_E_INVALID_ARG (neither limit set, snapshot_every < 1), ENG_E_OOM, those of
 * eng_sched_submit. */
int nerf_live_start(
    nerf_live **out, eng_ctx *ctx, nerf_trainer *t, const nerf_live_params *p, eng_err *err);
/* Runs fn(user, err) once as a frame job and waits for it; returns fn's status (or
 * ENG_E_CANCELLED/the scheduler's error). */
int nerf_live_frame(nerf_live *run, int (*fn)(void *user, eng_err *err), void *user, eng_err *err);
void nerf_live_pause(nerf_live *run, int paused);
void nerf_live_get_stats(nerf_live *run, nerf_live_stats *out);
int nerf_live_done(nerf_live *run); /* 1 once the training job has finished */
/* Ends the training early (before its next slice). */
void nerf_live_stop(nerf_live *run);
/* Waits for the training job, then writes the final snapshot (when one is set) and ends the
 * progress bar. Returns ENG_OK when training ended at a limit or by nerf_live_stop, else the
 * failing step's error. Call once. */
int nerf_live_finish(nerf_live *run, eng_err *err);
void nerf_live_destroy(nerf_live *run); /* stops and waits for a run not finished; NULL no-op */

#ifdef __cplusplus
}
#endif
#endif /* NERF_LIVE_H */
