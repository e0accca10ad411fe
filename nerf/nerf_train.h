/* nerf_train.h: the NeRF model (hash-grid field + occupancy grid) with its training loop,
 * rendering and snapshots, on the CPU. Prefix nerf_trainer_.
 *
 *   nerf_train_params tp; nerf_train_params_init(&tp);
 *   nerf_trainer *t = NULL;
 *   nerf_trainer_create(&t, ctx, dataset, &tp, &err);         // or nerf_trainer_load(&t, ctx, path)
 *   for (...) nerf_trainer_step(t, &stats, &err);             // stats.loss, stats.psnr, rays ...
 *   nerf_trainer_save(t, "scene.snapshot", &err);             // atomic
 *   nerf_trainer_render(t, rgb, depth, c2w_model, &intr, w, h, white, &err);
 *   nerf_trainer_destroy(t);
 *
 * One training step (instant-ngp's): `rays` random pixels (Philox keyed by seed and step: the
 * run is a pure function of the seed and the step, so a resumed run is the same run), each ray
 * through a random point of its pixel; targets composited on a random background colour per ray
 * (the dataset's RGBA); ray marching through the occupancy grid; the field's densities and
 * colours; compositing on the same background; L2 loss (mean over rays and channels); the
 * backward pass; Adam (lr 1e-2, decayed x0.33 every 10,000 steps after 20,000). The ray count
 * adapts so that a step marches about `target_samples` samples. Every `occ_every` steps the
 * occupancy grid is updated from the field's densities (nerf_occgrid.h).
 * Unbounded scenes (field.contract = 1; NERF_CONTRACT_AUTO resolves to 0, the multi-cascade
 * grid, which measured better on fox, docs/benchmarks.md): the field and the occupancy grid see space through the
 * scene contraction (nerf_contract_math.h, inner cube [0.5 - r, 0.5 + r]^3 with r =
 * field.inner_radius, by default the scene box's half side aabb_scale / 2: the box keeps its
 * resolution, as without the contraction, and what lies beyond it is learned instead of cut;
 * a unit cube (r = 0.5) measured 6 dB worse on fox's held-out views, whose walls reach past it;
 * the hash grid's resolution is set for it: field.grid.aabb_scale = 4 r, nerf_field.h), one
 * 128^3 grid covers the contracted cube, and the rays march from the
 * camera out to the cube of half side `far` (nerf_render.h's contracted marching), so the
 * background is learned as geometry instead of being clipped at the scene box.
 * Held-out frames: holdout K >= 2 trains on every frame but those whose index is a multiple of K
 * (frames 0, K, 2K, ... are left for evaluation); 0 trains on all.
 * Rendering: any camera (model-space c2w, pinhole intrinsics), composited on `bg`, in tiles of
 * rays; depth is the expected distance along the ray (model-space units), 0 where nothing is hit.
 * Snapshots: one .safetensors file (parameters, Adam's state, the occupancy grid; metadata:
 * configuration (contraction and holdout included), step, ray count), written to PATH.tmp and
 * renamed.
 * Memory: the field's parameters and Adam's state (~12 M floats x 5 at the default size), the
 * occupancy grid, and per step the samples and the field's scratch (~2 KB per sample).
 * Threads: the pool of the context; one call at a time per trainer. */
#ifndef NERF_TRAIN_H
#define NERF_TRAIN_H

#include <stdint.h>

#include "eng.h"
#include "nerf_data.h"
#include "nerf_field.h"
#include "nerf_occgrid.h"
#include "nerf_render.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nerf_trainer nerf_trainer; /* opaque */

typedef struct nerf_train_params {
    nerf_field_params field; /* nerf_field_params_init; grid.aabb_scale is set from the data */
    int64_t target_samples;  /* samples marched per step: 2^16 on the CPU */
    int64_t initial_rays;    /* rays of the first step: 4096 */
    float lr;                /* 1e-2 */
    int occ_every;           /* occupancy-grid update interval in steps: 16 */
    int occ_res;             /* occupancy-grid cells per side: 128 */
    int random_bg;           /* 1: random background per ray while training; 0: white */
    uint64_t seed;           /* rays, backgrounds, grid updates: 1 */
    /* field.contract: NERF_CONTRACT_AUTO (the default here), 0 or 1; field.inner_radius: 0 here
     * (auto: aabb_scale / 2, the scene box: space beyond it is contracted instead of cut) */
    float far;              /* contraction: half side of the marched cube, model units; 0: 64 r */
    int64_t holdout;        /* 0, or K >= 2: frames 0, K, 2K, ... are not trained on */
    eng_device_kind device; /* ENG_DEVICE_CPU, or ENG_DEVICE_CUDA (nerf_trainer_set_device) */
} nerf_train_params;
void nerf_train_params_init(nerf_train_params *p);

typedef struct nerf_step_stats {
    int64_t step;    /* steps done after this one */
    double loss;     /* mean squared error of the step's rays */
    double psnr;     /* -10 log10(loss) */
    int64_t rays;    /* rays of the step */
    int64_t samples; /* samples marched */
    double seconds;  /* wall time of the step */
} nerf_step_stats;

/* A new model for `ds` (its aabb_scale sizes the grids and resolves NERF_CONTRACT_AUTO); `ds` is
 * borrowed and must outlive the trainer's training steps (rendering does not need it).
 * nerf_trainer_get_params then reports the resolved field.contract (0 or 1).
 * Errors: those of nerf_field_create / nerf_occgrid_create / nerf_adam_create, ENG_E_INVALID_ARG
 * (bad params, named; a holdout that leaves no frame to train on). */
int nerf_trainer_create(nerf_trainer **out,
                        eng_ctx *ctx,
                        const nerf_dataset *ds,
                        const nerf_train_params *p,
                        eng_err *err);
/* A model from a snapshot (for rendering; attach a dataset with nerf_trainer_set_dataset to
 * resume training). Snapshots written before the contraction existed (no "contract" metadata)
 * load as contract 0 (and holdout 0). Errors: ENG_E_IO, ENG_E_FORMAT (not a snapshot, a tensor
 * of the wrong size, missing metadata: named), ENG_E_OOM. */
int nerf_trainer_load(nerf_trainer **out, eng_ctx *ctx, const char *path, eng_err *err);
void nerf_trainer_destroy(nerf_trainer *t); /* NULL is a no-op */

/* Attaches the training data (borrowed). Errors: ENG_E_INVALID_ARG when its aabb_scale differs
 * from the model's, or the holdout leaves none of its frames to train on. */
int nerf_trainer_set_dataset(nerf_trainer *t, const nerf_dataset *ds, eng_err *err);
int64_t nerf_trainer_step_count(const nerf_trainer *t);
const nerf_train_params *nerf_trainer_get_params(const nerf_trainer *t);
nerf_field *nerf_trainer_field(nerf_trainer *t);
nerf_occgrid *nerf_trainer_occgrid(nerf_trainer *t);
/* The marching parameters the trainer uses (contracted or not: a device twin must march alike). */
const nerf_march_params *nerf_trainer_march_params(const nerf_trainer *t);

/* Moves training and rendering to `device`: ENG_DEVICE_CUDA uploads the model (and the attached
 * dataset) to the context's CUDA device (nerf_train_cuda.h; the CUDA trainer then owns the
 * current state), ENG_DEVICE_CPU brings it back. The CPU model (nerf_trainer_field, _occgrid)
 * is brought up to date by nerf_trainer_sync, and by save, density and color themselves.
 * Errors: ENG_E_INVALID_ARG (no CUDA attached), ENG_E_UNSUPPORTED (built without CUDA, the
 * scene contraction), ENG_E_OOM, ENG_E_DEVICE. */
int nerf_trainer_set_device(nerf_trainer *t, eng_device_kind device, eng_err *err);
/* Copies the device's state into the CPU model when it is newer (no-op on the CPU). */
int nerf_trainer_sync(nerf_trainer *t, eng_err *err);

/* One training step. Errors: ENG_E_INVALID_ARG (no dataset), ENG_E_OOM, those of the parts. */
int nerf_trainer_step(nerf_trainer *t, nerf_step_stats *stats, eng_err *err);

/* rgb (h, w, 3) and depth (h, w) (may be NULL) of the camera c2w (3x4 row-major, model space;
 * OpenGL axes) with pinhole intrinsics, composited on bg (3 floats). Rays through pixel centres.
 * Errors: ENG_E_INVALID_ARG (sizes), ENG_E_OOM. */
int nerf_trainer_render(nerf_trainer *t,
                        float *rgb,
                        float *depth,
                        const float c2w[12],
                        const nerf_intrinsics *in,
                        int64_t w,
                        int64_t h,
                        const float bg[3],
                        eng_err *err);
/* The same for frame `frame` of a dataset (its rays, distortion included). */
int nerf_trainer_render_frame(nerf_trainer *t,
                              float *rgb,
                              float *depth,
                              const nerf_dataset *ds,
                              int64_t frame,
                              const float bg[3],
                              eng_err *err);

/* Densities at model-space points (for meshes): sigma (n) at pos (n, 3). */
int nerf_trainer_density(nerf_trainer *t, float *sigma, const float *pos, int64_t n, eng_err *err);
/* Colours at points seen along dirs (for vertex colours): rgb (n, 3). */
int nerf_trainer_color(
    nerf_trainer *t, float *rgb, const float *pos, const float *dir, int64_t n, eng_err *err);

/* Writes the snapshot atomically. Errors: ENG_E_IO naming the path, ENG_E_OOM. */
int nerf_trainer_save(nerf_trainer *t, const char *path, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* NERF_TRAIN_H */
