/* nerf_render.h: ray marching through the occupancy grid and volume rendering (compositing),
 * forward and backward, on the CPU (the CUDA kernels mirror nerf_render_math.h). Prefix
 * nerf_march_, nerf_composite_.
 *
 *   nerf_samples s = {0};
 *   nerf_march(&s, grid, &mp, n_rays, origins, dirs, pool, &err);     // s.pos, s.dir, s.dt ...
 *   field(sigma, rgb <- s.pos, s.dir)                                  // the caller's network
 *   nerf_composite_forward(&s, sigma, rgb, bg, color, opacity, depth, pool);
 *   loss'(color) -> d_color;  nerf_composite_backward(&s, sigma, rgb, bg, color, d_color,
 *                                                     d_sigma, d_rgb, pool);
 *   nerf_samples_free(&s);
 *
 * Marching (instant-ngp's): each ray (model space, unit direction) enters the scene box, then
 * steps with dt = clamp(t * cone_angle, dt_min, dt_max); a sample is kept at the middle of each
 * step whose point lies in an occupied cell; empty cells are skipped to their far side. At most
 * max_samples per ray.
 * Contracted marching (contract = 1, nerf_march_params_init_contract; unbounded scenes, see
 * nerf_contract_math.h): the box is the far cube [c - far, c + far]^3 (c = (0.5, 0.5, 0.5)), the
 * rays march in model space from the camera (or the cube's entry) to its exit, the step at the
 * start point q is nerf_step_contract (exponential in t, and at least contract_step contracted
 * units outside the inner cube, so the far field gets few samples), and the occupancy grid must
 * be a contracted one (nerf_occgrid_params.contract, same inner_radius): a sample is kept when
 * its contracted cell is occupied; empty cells inside the inner cube are skipped to their far
 * side, empty cells outside it one step at a time. Compositing: alpha_i = 1 - exp(-sigma_i dt_i), T_i = prod_{j<i}
 * (1 - alpha_j), color = sum T_i alpha_i rgb_i + T_end bg, stopping once T < 1e-4 (the samples
 * after it get zero gradients); opacity = 1 - T_end; depth = sum T_i alpha_i t_i.
 * The backward pass is exact for that sum: d color / d rgb_i = T_i alpha_i, d color / d sigma_i
 * = dt_i (T_{i+1} rgb_i - (color - sum_{j<=i} T_j alpha_j rgb_j)).
 * Threads: rays are split over `pool` (NULL: the calling thread). */
#ifndef NERF_RENDER_H
#define NERF_RENDER_H

#include <stdint.h>

#include "eng.h"
#include "nerf_occgrid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_T_STOP 1e-4f /* transmittance below which a ray stops */

typedef struct nerf_march_params {
    float box_lo[3], box_hi[3]; /* the scene box in model space */
    float dt_min;               /* sqrt(3) / 1024 */
    float dt_max;               /* the largest step (cone stepping far away) */
    float cone_angle;           /* 0 (uniform steps; NeRF-synthetic), 1/256 for large scenes */
    int max_samples;            /* per ray: 1024 */
    int contract;               /* 1: contracted marching (above); 0: the box as it is */
    float inner_radius;         /* contraction: half the side of the inner cube (0.5) */
    float contract_step;        /* contraction: smallest step in contracted units (1/256) */
    int coarse_skip; /* 1: skip whole empty 8^3 blocks of the grid (nerf_occgrid_coarse_res):
                        faster through empty space, the same samples up to float rounding of
                        the skipped-to t; 0 (default): cell by cell, as the CUDA kernels */
} nerf_march_params;
/* Defaults for a scene of aabb_scale `aabb` (box [0.5 - aabb/2, 0.5 + aabb/2]^3), no
 * contraction. */
void nerf_march_params_init(nerf_march_params *p, float aabb);
/* Defaults for contracted marching: inner radius r, the far cube's half side `far` (model units;
 * the trainer's default is 64 r), dt_min sqrt(3) / 1024, dt_max = far (no cap: the contracted
 * floor takes over far away), cone_angle 1/256, contract_step 1/256, max_samples 1024. */
void nerf_march_params_init_contract(nerf_march_params *p, float inner_radius, float far);

/* The samples of a batch of rays, packed ray after ray. Owned arrays (nerf_samples_free). */
typedef struct nerf_samples {
    int64_t n_rays, n; /* rays, samples */
    int64_t cap_rays, cap;
    int64_t *start;   /* (n_rays + 1): samples of ray r are [start[r], start[r + 1]) */
    float *pos, *dir; /* (n, 3) model space */
    float *t, *dt;    /* (n): distance along the ray of the sample, its step */
} nerf_samples;
void nerf_samples_free(nerf_samples *s);

/* Marches n_rays rays o[3r..], d[3r..] (d unit length) through `grid` (NULL: every cell
 * occupied). Grows s's arrays as needed (they are reused across calls).
 * Errors: ENG_E_OOM, ENG_E_INVALID_ARG (bad params: dt_min <= 0, max_samples < 1, a contracted
 * march without a positive inner_radius and contract_step, or a grid whose contraction (flag,
 * inner radius) differs from the march's). */
int nerf_march(nerf_samples *s,
               const nerf_occgrid *grid,
               const nerf_march_params *p,
               int64_t n_rays,
               const float *o,
               const float *d,
               eng_pool *pool,
               eng_err *err);

/* color (n_rays, 3), opacity (n_rays), depth (n_rays) (each may be NULL but color) from the
 * samples' sigma (n) and rgb (n, 3); bg (n_rays, 3) the background behind each ray (NULL:
 * black). */
void nerf_composite_forward(const nerf_samples *s,
                            const float *sigma,
                            const float *rgb,
                            const float *bg,
                            float *color,
                            float *opacity,
                            float *depth,
                            eng_pool *pool);
/* d_sigma (n), d_rgb (n, 3) (overwritten) from d_color (n_rays, 3), given the forward's
 * inputs and its color output. */
void nerf_composite_backward(const nerf_samples *s,
                             const float *sigma,
                             const float *rgb,
                             const float *bg,
                             const float *color,
                             const float *d_color,
                             float *d_sigma,
                             float *d_rgb,
                             eng_pool *pool);

#ifdef __cplusplus
}
#endif
#endif /* NERF_RENDER_H */
