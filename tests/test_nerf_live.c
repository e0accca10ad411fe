#define _POSIX_C_SOURCE 200809L /* nanosleep */
/* test_nerf_live.c: nerf.live.* — training as a scheduler job: a run reaches its step limit and
 * writes its snapshot; frame jobs run between training slices (threaded and pumped schedulers);
 * pause holds the step count; stop ends early with a snapshot of the step reached; errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "nerf.h"
#include "nerf_live.h"

typedef struct fixture {
    eng_ctx *ctx;
    nerf_dataset *ds;
    nerf_trainer *t;
    char snap[700];
} fixture;

static int setup(fixture *f, int threaded, const char *name) {
    eng_err err = {0};
    memset(f, 0, sizeof *f);
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.threads = 2;
    cp.threaded_scheduler = threaded;
    CHECK_OK(eng_ctx_create(&f->ctx, &cp, &err), &err);
    nerf_scene_params sp;
    nerf_scene_params_init(&sp);
    sp.width = sp.height = 16;
    sp.n_train = 8;
    sp.n_test = 1;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/nerf_live_scene", eng_test_tmpdir());
    CHECK_OK(nerf_scene_write(dir, &sp, f->ctx, &err), &err);
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    lp.split = "train";
    CHECK_OK(nerf_dataset_load(&f->ds, f->ctx, dir, &lp, &err), &err);
    nerf_train_params tp;
    nerf_train_params_init(&tp);
    tp.target_samples = 1 << 11;
    tp.initial_rays = 128;
    tp.occ_res = 16;
    tp.field.grid.log2_table_size = 12;
    CHECK_OK(nerf_trainer_create(&f->t, f->ctx, f->ds, &tp, &err), &err);
    snprintf(f->snap, sizeof f->snap, "%s/%s.nerf", eng_test_tmpdir(), name);
    remove(f->snap);
    return 0;
}

static void teardown(fixture *f) {
    nerf_trainer_destroy(f->t);
    nerf_dataset_destroy(f->ds);
    eng_ctx_destroy(f->ctx);
}

static int snapshot_step(const char *path, eng_ctx *ctx, int64_t *step) {
    eng_err err = {0};
    nerf_trainer *t = NULL;
    CHECK_OK(nerf_trainer_load(&t, ctx, path, &err), &err);
    *step = nerf_trainer_step_count(t);
    nerf_trainer_destroy(t);
    return 0;
}

static int test_runs_to_limit(void) {
    eng_err err = {0};
    fixture f;
    if (setup(&f, 1, "live_limit")) return 1;
    nerf_live_params lp;
    nerf_live_params_init(&lp);
    lp.end_step = 30;
    lp.snapshot = f.snap;
    lp.snapshot_every = 10;
    lp.progress = 0;
    nerf_live *run = NULL;
    CHECK_OK(nerf_live_start(&run, f.ctx, f.t, &lp, &err), &err);
    CHECK_OK(nerf_live_finish(run, &err), &err);
    nerf_live_stats st;
    nerf_live_get_stats(run, &st);
    CHECK(st.done && st.step == 30 && st.run_steps == 30);
    CHECK(st.loss > 0 && st.psnr > 0 && st.rays_per_s > 0 && st.seconds > 0);
    CHECK_EQ_I64(nerf_trainer_step_count(f.t), 30);
    int64_t step = 0;
    if (snapshot_step(f.snap, f.ctx, &step)) return 1;
    CHECK_EQ_I64(step, 30);
    CHECK(nerf_live_finish(run, &err) == ENG_E_INVALID_ARG);
    nerf_live_destroy(run);
    teardown(&f);
    return 0;
}

typedef struct frame_log {
    nerf_trainer *t;
    int64_t steps[64];
    int n;
} frame_log;

static int log_frame(void *user, eng_err *err) {
    (void)err;
    frame_log *fl = user;
    if (fl->n < 64) fl->steps[fl->n++] = nerf_trainer_step_count(fl->t);
    return ENG_OK;
}

static void sleep_ms(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Frames between slices; pause; stop. */
static int frames_pause_stop(int threaded) {
    eng_err err = {0};
    fixture f;
    if (setup(&f, threaded, threaded ? "live_frames_t" : "live_frames_p")) return 1;
    nerf_live_params lp;
    nerf_live_params_init(&lp);
    lp.end_step = 1000000;
    lp.snapshot = f.snap;
    lp.snapshot_every = 1000000;
    lp.slice_ms = 5;
    lp.progress = 0;
    nerf_live *run = NULL;
    CHECK_OK(nerf_live_start(&run, f.ctx, f.t, &lp, &err), &err);
    frame_log fl = {f.t, {0}, 0};
    for (int i = 0; i < 20; i++) {
        CHECK_OK(nerf_live_frame(run, log_frame, &fl, &err), &err);
        if (threaded) sleep_ms(10);
    }
    CHECK(fl.n == 20 && !nerf_live_done(run));
    CHECK(fl.steps[19] > fl.steps[0]); /* training went on between the frames */
    /* paused: frames still run, the step count holds */
    nerf_live_pause(run, 1);
    CHECK_OK(nerf_live_frame(run, log_frame, &fl, &err), &err); /* after any running slice */
    nerf_live_stats st;
    nerf_live_get_stats(run, &st);
    const int64_t held = nerf_trainer_step_count(f.t);
    for (int i = 0; i < 5; i++) {
        CHECK_OK(nerf_live_frame(run, log_frame, &fl, &err), &err);
        if (threaded) sleep_ms(10);
    }
    CHECK_EQ_I64(nerf_trainer_step_count(f.t), held);
    nerf_live_get_stats(run, &st);
    CHECK(st.paused);
    nerf_live_pause(run, 0);
    nerf_live_stop(run);
    CHECK_OK(nerf_live_finish(run, &err), &err);
    CHECK(nerf_live_done(run));
    const int64_t reached = nerf_trainer_step_count(f.t);
    CHECK(reached >= held && reached < 1000000);
    int64_t step = 0;
    if (snapshot_step(f.snap, f.ctx, &step)) return 1;
    CHECK_EQ_I64(step, reached);
    nerf_live_destroy(run);
    teardown(&f);
    return 0;
}

static int test_frames_threaded(void) {
    return frames_pause_stop(1);
}

static int test_frames_pumped(void) {
    return frames_pause_stop(0);
}

static int test_errors(void) {
    eng_err err = {0};
    fixture f;
    if (setup(&f, 0, "live_errors")) return 1;
    nerf_live_params lp;
    nerf_live_params_init(&lp);
    nerf_live *run = NULL;
    CHECK(nerf_live_start(&run, f.ctx, f.t, &lp, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "limit");
    CHECK(run == NULL);
    /* destroying a run that was never finished stops it */
    lp.end_step = 1000000;
    lp.progress = 0;
    CHECK_OK(nerf_live_start(&run, f.ctx, f.t, &lp, &err), &err);
    nerf_live_destroy(run);
    teardown(&f);
    return 0;
}

static const eng_test_case cases[] = {
    {"runs_to_limit", test_runs_to_limit},
    {"frames_threaded", test_frames_threaded},
    {"frames_pumped", test_frames_pumped},
    {"errors", test_errors},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
