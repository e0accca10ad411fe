/* vw_nerf.c: the NeRF snapshot and live-training modes of the viewer (vw_nerf.h). */
#include "vw_nerf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_bench.h"
#include "nerf_preview.h"

#define FRAME_BUDGET_S 0.04 /* rendering time per frame at rest */

typedef struct nerf_mode {
    eng_ctx *ctx;
    nerf_trainer *t; /* owned when `owned` */
    int owned;
    nerf_live *run; /* live mode; NULL for a snapshot */
    nerf_preview *pv;
    int progressive;
    double rays_per_s; /* measured render rate, for the frame's ray budget */
    int64_t shown_step;
    int paused;
    /* one frame's work, run directly or as a frame job */
    const vw_view *view;
    int done;
} nerf_mode;

static int render_frame(void *user, eng_err *err) {
    nerf_mode *m = user;
    const vw_view *v = m->view;
    nerf_intrinsics in = {v->fx, v->fy, v->cx, v->cy, 0, 0, 0, 0};
    int rc = nerf_preview_set_view(m->pv, v->c2w, &in, v->width, v->height,
                                   v->depth ? NERF_PREVIEW_DEPTH : NERF_PREVIEW_RGB, err);
    if (rc != ENG_OK) return rc;
    const int64_t step = nerf_trainer_step_count(m->t);
    if (step != m->shown_step) {
        nerf_preview_refresh(m->pv);
        m->shown_step = step;
    }
    if (!m->progressive) { /* the whole view, full resolution */
        int64_t w = v->width;
        m->done = 0;
        while (!m->done)
            if ((rc = nerf_preview_step(m->pv, w * v->height, &m->done, err)) != ENG_OK) return rc;
        return ENG_OK;
    }
    /* The coarsest level always completes (a moving camera shows it); at rest, refine for about
     * FRAME_BUDGET_S. */
    const double t0 = eng_bench_now_s();
    const int coarse = nerf_preview_level(m->pv);
    do {
        const int level = nerf_preview_level(m->pv);
        if (level == 0) break;
        int64_t budget = (int64_t)(m->rays_per_s * FRAME_BUDGET_S);
        if (level == coarse || budget < 1024) budget = level == coarse ? 1 << 20 : 1024;
        const double s0 = eng_bench_now_s();
        if ((rc = nerf_preview_step(m->pv, budget, &m->done, err)) != ENG_OK) return rc;
        const double dt = eng_bench_now_s() - s0;
        const int64_t lw = (v->width + level - 1) / level;
        const int64_t n = budget / lw < 1 ? lw : budget / lw * lw; /* rays of the band */
        if (dt > 1e-4)
            m->rays_per_s =
                m->rays_per_s > 0 ? 0.7 * m->rays_per_s + 0.3 * (double)n / dt : (double)n / dt;
        if (v->moving) break;
    } while (!m->done && eng_bench_now_s() - t0 < FRAME_BUDGET_S);
    return ENG_OK;
}

static int mode_frame(void *user, const vw_view *view, vw_frame_out *out, eng_err *err) {
    nerf_mode *m = user;
    m->view = view;
    int rc;
    if (m->run) {
        if (view->paused != m->paused) {
            nerf_live_pause(m->run, view->paused);
            m->paused = view->paused;
        }
        rc = nerf_live_frame(m->run, render_frame, m, err);
    } else {
        rc = render_frame(m, err);
    }
    m->view = NULL;
    if (rc != ENG_OK) return rc;
    out->rgba = nerf_preview_rgba(m->pv, &out->width, &out->height);
    const int level = nerf_preview_level(m->pv);
    char lvl[32] = "";
    if (level > 0) snprintf(lvl, sizeof lvl, "  1/%d res", level);
    if (m->run) {
        nerf_live_stats st;
        nerf_live_get_stats(m->run, &st);
        snprintf(out->text, sizeof out->text, "step %lld  PSNR %.2f dB  %.0fk rays/s%s%s",
                 (long long)st.step, st.psnr, st.rays_per_s / 1e3,
                 st.done     ? "  done"
                 : st.paused ? "  paused"
                             : "",
                 lvl);
        out->again = !st.done || level > 0;
    } else {
        snprintf(out->text, sizeof out->text, "step %lld%s",
                 (long long)nerf_trainer_step_count(m->t), lvl);
        out->again = level > 0;
    }
    return ENG_OK;
}

static void mode_destroy(void *user) {
    nerf_mode *m = user;
    if (!m) return;
    nerf_preview_destroy(m->pv);
    if (m->owned) nerf_trainer_destroy(m->t);
    free(m);
}

static int make_mode(vw_mode *out,
                     eng_ctx *ctx,
                     nerf_trainer *t,
                     int owned,
                     nerf_live *run,
                     int progressive,
                     const char *what,
                     eng_err *err) {
    memset(out, 0, sizeof *out);
    nerf_mode *m = calloc(1, sizeof *m);
    if (!m) {
        if (owned) nerf_trainer_destroy(t);
        return eng_err_set(err, ENG_E_OOM, "viewer: out of memory");
    }
    m->ctx = ctx;
    m->t = t;
    m->owned = owned;
    m->run = run;
    m->progressive = progressive;
    m->shown_step = nerf_trainer_step_count(t);
    int rc = nerf_preview_create(&m->pv, t, err);
    if (rc != ENG_OK) {
        mode_destroy(m);
        return rc;
    }
    const float aabb = nerf_trainer_get_params(t)->field.grid.aabb_scale;
    out->user = m;
    out->name = run ? "nerf-live" : "nerf";
    snprintf(out->title, sizeof out->title, "%.500s", what);
    out->width = 800;
    out->height = 600;
    out->has_scene = 1;
    out->center[0] = out->center[1] = out->center[2] = 0.5f;
    /* the foreground cube (contracted scenes: the inner cube) */
    out->radius = 0.5f * sqrtf(3.0f) * (nerf_trainer_get_params(t)->field.contract ? 1.0f : aabb);
    out->up = VW_UP_Z;
    out->has_depth = 1;
    out->frame = mode_frame;
    out->destroy = mode_destroy;
    return ENG_OK;
}

int vw_nerf_snapshot_mode_create(vw_mode *out,
                                 eng_ctx *ctx,
                                 const char *path,
                                 eng_device_kind device,
                                 int progressive,
                                 eng_err *err) {
    nerf_trainer *t = NULL;
    int rc = nerf_trainer_load(&t, ctx, path, err);
    if (rc == ENG_OK && device != ENG_DEVICE_CPU) rc = nerf_trainer_set_device(t, device, err);
    if (rc != ENG_OK) {
        nerf_trainer_destroy(t);
        return rc;
    }
    char what[VW_TITLE_MAX];
    snprintf(what, sizeof what, "%.400s (NeRF snapshot)", path);
    return make_mode(out, ctx, t, 1, NULL, progressive, what, err);
}

int vw_nerf_live_mode_create(
    vw_mode *out, nerf_trainer *t, nerf_live *run, int progressive, eng_err *err) {
    return make_mode(out, NULL, t, 0, run, progressive, "nerf train (live)", err);
}

int vw_nerf_train_view(nerf_trainer *t,
                       nerf_live *run,
                       const nerf_cmd_view_opts *opts,
                       int64_t *validation_messages,
                       eng_err *err) {
    *validation_messages = 0;
    vw_mode mode;
    int rc = vw_nerf_live_mode_create(&mode, t, run, opts->screenshot == NULL, err);
    if (rc != ENG_OK) return rc;
    vw_params p;
    vw_params_init(&p);
    p.screenshot = opts->screenshot;
    p.frames = opts->frames;
    p.validate = opts->validate;
    p.width = opts->width;
    p.height = opts->height;
    vw_stats st;
    memset(&st, 0, sizeof st);
    rc = vw_run(&p, &mode, &st, err);
    vw_mode_destroy(&mode);
    *validation_messages = st.validation_messages;
    return rc;
}

int vw_nerf_is_snapshot(const char *path) {
    eng_safetensors *f = NULL;
    eng_err err = {0};
    if (eng_safetensors_open(&f, path, &err) != ENG_OK) return 0;
    const char *fmt = eng_safetensors_metadata_get(f, "format");
    const int yes = fmt != NULL && strcmp(fmt, "engine-nerf-1") == 0;
    eng_safetensors_close(f);
    return yes;
}
