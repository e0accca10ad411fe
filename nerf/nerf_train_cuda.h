/* nerf_train_cuda.h: the NeRF trainer's device path (internal to nerf/): a training step,
 * rendering and the occupancy updates of nerf_train.c on CUDA, with the model's state resident on
 * the device. nerf_trainer owns the CPU model (field, Adam, occupancy grid) and, for
 * `--device cuda`, one nerf_cuda_trainer that holds the device copy; the CPU copy is brought up
 * to date by nerf_cuda_trainer_download (snapshots, meshes, CPU rendering).
 *
 *   nerf_cuda_trainer *g = NULL;
 *   nerf_cuda_trainer_create(&g, ctx, field, adam, grid, ds, &tp, &mp, &err); // uploads it
 *   for (...) { nerf_cuda_trainer_step(g, step, &rays, &stats, &err); step++; }
 *   nerf_cuda_trainer_render(g, rgb, depth, c2w, &intr, w, h, bg, &err);  // host images
 *   nerf_cuda_trainer_download(g, field, adam, grid, &err);               // e.g. before saving
 *   nerf_cuda_trainer_destroy(g);
 *
 * A step is nerf_trainer_step's (nerf_train.h) with every stage a kernel: rays from the frames'
 * RGBA (resident on the device) with the same Philox picks (nerf_train_math.h), marching
 * (count, scan, fill), the field, compositing, L2 loss (mean over rays and channels; the sum in
 * f64, reduced in a fixed order), the backward pass, Adam with nerf_train.c's schedule, the
 * occupancy update every occ_every steps (pick, densities in chunks, update). The ray count
 * adapts toward p->target_samples exactly as on the CPU (instant-ngp uses 2^18 samples per step
 * on a GPU: NERF_CUDA_TARGET_SAMPLES; nerf_train_params_init's 2^16 suits the CPU); a step
 * marching more than twice that drops its last rays. The host waits for the device twice per
 * step: for the sample count (marching) and for the loss at the end.
 * Rendering: rays of a camera (pinhole, f32, as nerf_trainer_render) or of a dataset frame
 * (distortion undone, as nerf_trainer_render_frame), in tiles of up to NERF_CUDA_RENDER_TILE rays
 * cut so that a tile marches at most NERF_CUDA_RENDER_SAMPLES samples; the image stays on the
 * device until the end, then one copy to the host.
 * Memory: every device buffer comes from eng_ctx_alloc(ctx, ENG_DEVICE_CUDA): the parameters,
 * gradients, Adam's moments and step counts, the occupancy grid and the dataset's pixels as
 * state; per-step buffers from the trainer's own arena (reset at each step and render). The
 * stream is the context's CUDA stream (with that arena).
 * Without CUDA (ENG_HAVE_CUDA undefined) every function here returns ENG_E_UNSUPPORTED ("built
 * without CUDA") and destroy is a no-op.
 * Errors: ENG_E_INVALID_ARG (bad arguments, a context without CUDA, a model whose layout differs
 * from the device field's: named), ENG_E_OOM (device memory, with the allocator's message),
 * ENG_E_DEVICE (a CUDA failure: statement and reason), ENG_E_UNSUPPORTED.
 * Threads: one call at a time per trainer (it owns a stream's worth of state). */
#ifndef NERF_TRAIN_CUDA_H
#define NERF_TRAIN_CUDA_H

#include <stdint.h>

#include "eng.h"
#include "nerf_adam.h"
#include "nerf_data.h"
#include "nerf_field.h"
#include "nerf_occgrid.h"
#include "nerf_train.h"
#include "nerf_train_math.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_CUDA_TARGET_SAMPLES (1 << 18) /* instant-ngp's samples per step on a GPU */
#define NERF_CUDA_RENDER_TILE    (1 << 18) /* rays per rendering tile, at most */
#define NERF_CUDA_RENDER_SAMPLES (1 << 20) /* samples per rendering tile, at most */
#define NERF_CUDA_DENSITY_CHUNK  (1 << 18) /* points per field call of an occupancy update */

typedef struct nerf_cuda_trainer nerf_cuda_trainer; /* opaque */

/* ---- the trainer ----------------------------------------------------------------------------- */

/* Uploads the CPU model (field parameters, Adam's moments, step counts and step count, the
 * occupancy grid's values and bits; all borrowed for the call and only read) and, when ds is not NULL, the
 * dataset's frames (cameras and RGBA pixels). p: the trainer's parameters (target_samples, lr,
 * occ_every, random_bg, seed, holdout are used; copied). mp: the trainer's marching
 * (nerf_trainer_march_params; copied), contracted models included; the field, the grid and mp
 * must agree on the contraction (ENG_E_INVALID_ARG). ctx must have CUDA attached (eng_cuda_attach).
 * On ENG_OK the caller owns *out (nerf_cuda_trainer_destroy). */
int nerf_cuda_trainer_create(nerf_cuda_trainer **out,
                             eng_ctx *ctx,
                             nerf_field *field,
                             nerf_adam *adam,
                             nerf_occgrid *grid,
                             const nerf_dataset *ds,
                             const nerf_train_params *p,
                             const nerf_march_params *mp,
                             eng_err *err);
void nerf_cuda_trainer_destroy(nerf_cuda_trainer *t); /* NULL is a no-op */

/* Replaces the training data (NULL: none; uploads its cameras and pixels). Errors:
 * ENG_E_INVALID_ARG (an empty dataset, one without pixels, another aabb_scale than the model's,
 * no frame left by the holdout), ENG_E_OOM. */
int nerf_cuda_trainer_set_dataset(nerf_cuda_trainer *t, const nerf_dataset *ds, eng_err *err);

/* One training step number `step` (0-based: the steps done before it) with *rays rays; *rays
 * becomes the next step's count. stats (may be NULL) as nerf_trainer_step fills them (step =
 * step + 1). Errors: ENG_E_INVALID_ARG (no dataset, *rays < 1), ENG_E_OOM, ENG_E_DEVICE. */
int nerf_cuda_trainer_step(
    nerf_cuda_trainer *t, int64_t step, int64_t *rays, nerf_step_stats *stats, eng_err *err);

/* Copies the device state into the CPU model (the objects given at create, or any of the same
 * shapes): parameters, Adam's moments, step counts and step count, the occupancy grid. The CPU
 * gradient tensor is not touched. Errors: ENG_E_INVALID_ARG (shapes), ENG_E_DEVICE. */
int nerf_cuda_trainer_download(
    nerf_cuda_trainer *t, nerf_field *field, nerf_adam *adam, nerf_occgrid *grid, eng_err *err);
/* The reverse (after loading a snapshot into the CPU model). Errors as download. */
int nerf_cuda_trainer_upload(
    nerf_cuda_trainer *t, nerf_field *field, nerf_adam *adam, nerf_occgrid *grid, eng_err *err);

/* nerf_trainer_render on the device: rgb (h, w, 3) and depth (h, w) (may be NULL), host memory,
 * of the model-space camera c2w (3x4) with pinhole intrinsics, composited on bg (3). */
int nerf_cuda_trainer_render(nerf_cuda_trainer *t,
                             float *rgb,
                             float *depth,
                             const float c2w[12],
                             const nerf_intrinsics *in,
                             int64_t w,
                             int64_t h,
                             const float bg[3],
                             eng_err *err);
/* nerf_trainer_render_frame on the device: frame `frame` of ds (its size, distortion undone). */
int nerf_cuda_trainer_render_frame(nerf_cuda_trainer *t,
                                   float *rgb,
                                   float *depth,
                                   const nerf_dataset *ds,
                                   int64_t frame,
                                   const float bg[3],
                                   eng_err *err);

/* The camera of a dataset frame as the kernels take it (host arithmetic, both builds). */
void nerf_train_cam_of_frame(nerf_train_cam *cam, const nerf_dataset *ds, int64_t frame);

/* ---- the step's kernels (nerf/nerf_cuda_train.cu; twins in nerf_train_math.h) ---------------- */
/* Device pointers; the work is queued on `s` (a CUDA stream). n == 0 does nothing.
 * Errors: ENG_E_INVALID_ARG (n < 0, NULL buffers with work to do, a CPU stream, sizes),
 * ENG_E_OOM (a workspace from s->arena), ENG_E_DEVICE. */
#ifdef ENG_HAVE_CUDA

/* Training rays 0..n_rays-1 of step `step` (nerf_train_ray): o, d, target, bg (n_rays, 3) from
 * cams (n_frames) and rgba (n_frames, h, w, 4), every holdout-th frame left out (0: none).
 * One thread per ray. */
int nerf_cuda_train_rays(eng_stream *s,
                         float *o,
                         float *d,
                         float *target,
                         float *bg,
                         int64_t n_rays,
                         const nerf_train_cam *cams,
                         const uint8_t *rgba,
                         int64_t n_frames,
                         int64_t w,
                         int64_t h,
                         uint64_t seed,
                         uint64_t step,
                         int random_bg,
                         int64_t holdout,
                         eng_err *err);
/* Rays of pixels first .. first + n - 1 (row-major in an image w pixels wide) of camera cam
 * (by value): pinhole != 0: nerf_train_pinhole_ray, else nerf_train_cam_ray at pixel centres. */
int nerf_cuda_cam_rays(eng_stream *s,
                       float *o,
                       float *d,
                       int64_t n,
                       const nerf_train_cam *cam,
                       int pinhole,
                       int64_t w,
                       int64_t first,
                       eng_err *err);
/* L2 loss of n values: d_color = (2 / n) (color - target) (n) and *se = sum (color - target)^2
 * (one device double; f64 terms summed per block, then over blocks in a fixed order:
 * deterministic). Workspace: s->arena (NERF_CUDA_L2_BLOCKS doubles). */
#define NERF_CUDA_L2_BLOCKS 256
int nerf_cuda_l2_loss(eng_stream *s,
                      float *d_color,
                      double *se,
                      const float *color,
                      const float *target,
                      int64_t n,
                      eng_err *err);
/* y[i] = value, i < n. */
int nerf_cuda_fill_f32(eng_stream *s, float *y, int64_t n, float value, eng_err *err);
/* Rows 0..n-1 of y (n, 3) = v (3, host). */
int nerf_cuda_fill3_f32(eng_stream *s, float *y, int64_t n, const float v[3], eng_err *err);

#else /* built without CUDA */

static inline int nerf_cuda_train_unsupported(const char *fn, eng_err *err) {
    return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: built without CUDA", fn);
}
static inline int nerf_cuda_train_rays(eng_stream *s,
                                       float *o,
                                       float *d,
                                       float *target,
                                       float *bg,
                                       int64_t n_rays,
                                       const nerf_train_cam *cams,
                                       const uint8_t *rgba,
                                       int64_t n_frames,
                                       int64_t w,
                                       int64_t h,
                                       uint64_t seed,
                                       uint64_t step,
                                       int random_bg,
                                       int64_t holdout,
                                       eng_err *err) {
    (void)s, (void)o, (void)d, (void)target, (void)bg, (void)n_rays, (void)cams, (void)rgba;
    (void)n_frames, (void)w, (void)h, (void)seed, (void)step, (void)random_bg, (void)holdout;
    return nerf_cuda_train_unsupported("nerf_cuda_train_rays", err);
}
static inline int nerf_cuda_cam_rays(eng_stream *s,
                                     float *o,
                                     float *d,
                                     int64_t n,
                                     const nerf_train_cam *cam,
                                     int pinhole,
                                     int64_t w,
                                     int64_t first,
                                     eng_err *err) {
    (void)s, (void)o, (void)d, (void)n, (void)cam, (void)pinhole, (void)w, (void)first;
    return nerf_cuda_train_unsupported("nerf_cuda_cam_rays", err);
}
#define NERF_CUDA_L2_BLOCKS 256
static inline int nerf_cuda_l2_loss(eng_stream *s,
                                    float *d_color,
                                    double *se,
                                    const float *color,
                                    const float *target,
                                    int64_t n,
                                    eng_err *err) {
    (void)s, (void)d_color, (void)se, (void)color, (void)target, (void)n;
    return nerf_cuda_train_unsupported("nerf_cuda_l2_loss", err);
}
static inline int
nerf_cuda_fill_f32(eng_stream *s, float *y, int64_t n, float value, eng_err *err) {
    (void)s, (void)y, (void)n, (void)value;
    return nerf_cuda_train_unsupported("nerf_cuda_fill_f32", err);
}
static inline int
nerf_cuda_fill3_f32(eng_stream *s, float *y, int64_t n, const float v[3], eng_err *err) {
    (void)s, (void)y, (void)n, (void)v;
    return nerf_cuda_train_unsupported("nerf_cuda_fill3_f32", err);
}

#endif /* ENG_HAVE_CUDA */

#ifdef __cplusplus
}
#endif
#endif /* NERF_TRAIN_CUDA_H */
