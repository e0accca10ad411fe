/* vw_nerf.h: the viewer's NeRF modes: a snapshot, or a training run live (`nerf train --view`).
 * Frames are rendered by the engine (nerf_preview over nerf_trainer_render, on the trainer's
 * device) and shown as the viewer's texture.
 *
 *   vw_mode mode;
 *   vw_nerf_snapshot_mode_create(&mode, ctx, "lego.nerf", ENG_DEVICE_CPU, 1, &err);
 *   vw_run(&vp, &mode, &stats, &err); vw_mode_destroy(&mode);
 *
 *   nerf_live *run; nerf_live_start(&run, ctx, trainer, &lp, &err);   // nerf train --view
 *   vw_nerf_live_mode_create(&mode, trainer, run, 1, &err);
 *   vw_run(...);  then nerf_live_stop / nerf_live_finish
 *
 * Progressive (the default in a window): while the camera moves a frame shows the coarsest
 * level (about 4096 pixels); at rest each frame renders about 40 ms of rays more, refining to
 * full resolution (the mode asks for more frames until it is done). Not progressive (headless
 * screenshots): every frame renders the whole view at full resolution, so a screenshot is
 * exactly the image `nerf render` makes of the same camera (8-bit rounding aside).
 * Live: each frame is a high-priority job between training slices (nerf_live_frame); the
 * preview is refreshed when the step count changed; Space (view->paused) pauses training. The
 * overlay shows the step, the training PSNR, rays/s and the refinement level.
 * Tab shows depth (grey, near = bright). The scene: model space, centre (0.5, 0.5, 0.5), up +z
 * (NeRF-synthetic worlds), framed on the box of the model's aabb_scale.
 * Threads: the viewer's thread; rendering runs as a scheduler slice (live) or directly. */
#ifndef VW_NERF_H
#define VW_NERF_H

#include "eng.h"
#include "nerf_cmd.h"
#include "nerf_live.h"
#include "nerf_train.h"
#include "vw.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loads the snapshot at `path` (owned by the mode) and renders it on `device` (ENG_DEVICE_CUDA
 * needs the CUDA backend attached to ctx). Errors: those of nerf_trainer_load (naming the file)
 * and nerf_trainer_set_device, ENG_E_OOM. */
int vw_nerf_snapshot_mode_create(vw_mode *out,
                                 eng_ctx *ctx,
                                 const char *path,
                                 eng_device_kind device,
                                 int progressive,
                                 eng_err *err);
/* A live view of a training run (both borrowed; they must outlive the mode). Errors: ENG_E_OOM. */
int vw_nerf_live_mode_create(
    vw_mode *out, nerf_trainer *t, nerf_live *run, int progressive, eng_err *err);
/* nerf_cmd_view_fn for `nerf train --view` (registered by the nerf executable): a window with
 * the live mode until it closes or the screenshot is written. */
int vw_nerf_train_view(nerf_trainer *t,
                       nerf_live *run,
                       const nerf_cmd_view_opts *opts,
                       int64_t *validation_messages,
                       eng_err *err);
/* 1 when `path` looks like a NeRF snapshot (a safetensors file whose metadata says
 * "engine-nerf-1"); 0 otherwise (unreadable files included). */
int vw_nerf_is_snapshot(const char *path);

#ifdef __cplusplus
}
#endif
#endif /* VW_NERF_H */
