/* nerf_field.h: instant-ngp's NeRF model on the CPU: hash encoding -> density MLP -> (with the
 * spherical-harmonics encoding of the view direction) colour MLP, with its parameters and their
 * gradients in allocator tensors. Prefix nerf_field_.
 *
 *   nerf_field_params fp; nerf_field_params_init(&fp); fp.grid.aabb_scale = aabb_scale;
 *   nerf_field *f = NULL;
 *   if (nerf_field_create(&f, alloc, stream, &fp, &err) != ENG_OK) ...
 *   float *scratch = ... nerf_field_scratch_floats(f, n) floats (an arena is a good home) ...
 *   nerf_field_fwd(f, stream, sigma, rgb, pos, dir, n, scratch, &err);   // training samples
 *   ... volume rendering gives d_sigma (n) and d_rgb (n, 3) ...
 *   nerf_field_zero_grads(f, stream);
 *   nerf_field_bwd(f, stream, d_sigma, d_rgb, n, scratch, &err);
 *   nerf_adam_step(opt, stream, nerf_field_param_tensor(f)->data,
 *                  nerf_field_grad_tensor(f)->data, lr, &err);
 *   nerf_field_fwd(f, stream, sigma, NULL, pos, NULL, n, scratch, &err); // density only
 *   nerf_field_destroy(f);
 *
 * Model (instant-ngp's NerfNetwork with its base.json config):
 *   enc   = hashgrid(unit(pos))                        (n, L F) = (n, 32)
 *   geo   = density MLP(enc)   32 -> 64 -> 16, ReLU, no output activation
 *   sigma = trunc_exp(geo[:, 0])                       (gradient clamped: nerf_mlp_math.h)
 *   rgb   = colour MLP([SH4(dir), geo])  32 -> 64 -> 64 -> 3, ReLU, sigmoid output
 * pos is in model space (nerf_common: the scene box is the cube [0.5 - a / 2, 0.5 + a / 2]^3 with
 * a = grid.aabb_scale); unit(pos) = (pos - (0.5 - a / 2)) / a maps it to the grid's [0, 1]^3
 * (outside the box the encoding is clamped). With contract = 1 (unbounded scenes) unit(pos) is
 * instead the scene contraction nerf_contract_unit(pos, inner_radius) (nerf_contract_math.h):
 * the inner cube [0.5 - r, 0.5 + r]^3 keeps its shape on the middle half of the grid and all
 * of space beyond it is squeezed into the rest; the grid's finest resolution is still
 * desired_resolution * grid.aabb_scale over the whole contracted cube, so the trainer sets
 * grid.aabb_scale to 4 r there (the contracted cube spans 4 r in the foreground's units), which
 * gives the foreground desired_resolution per model unit, as an uncontracted scene gets. dir: unit view directions (world and model space
 * agree on directions). sigma: (n) density per unit of model-space length; rgb: (n, 3) in (0, 1).
 *
 * Parameters: one flat f32 tensor (ENG_LIFE_STATE, owner "nerf.params"; gradients alike, owner
 * "nerf.grads"): [density MLP weights | colour MLP weights | hash tables] (offsets in
 * nerf_field_layout), so the first n_matrix_params are the MLP weights nerf_adam regularises.
 * Init (seed from the params): MLPs Xavier-uniform, tables uniform [-1e-4, 1e-4).
 * Default size: 3,072 + 6,336 MLP weights + 12,196,240 table floats (~49 MB; gradients alike).
 *
 * Scratch: the forward pass keeps what the backward pass needs in the caller's scratch of
 * nerf_field_scratch_floats(f, n) floats (about 490 floats = 1.9 KB per point, so batches of
 * 2^16 points take ~125 MB); the backward pass consumes it (one backward per forward, same n).
 * A density-only forward (rgb and dir NULL) needs the same scratch.
 * Parallelism and determinism: rows in fixed chunks of NERF_MLP_CHUNK, each chunk running the
 * whole network while it is in cache, chunks split over s->pool (s or s->pool NULL: the calling
 * thread); MLP weight gradients per chunk, summed in chunk order; table gradients per level, in
 * point order. Every output and gradient is bit-identical for any thread count.
 * Errors: ENG_E_INVALID_ARG (bad configuration or n < 0, named), ENG_E_UNSUPPORTED (a device
 * allocator: this is the CPU twin), ENG_E_OOM. Threads: one call at a time per field (the
 * backward pass writes its gradients). */
#ifndef NERF_FIELD_H
#define NERF_FIELD_H

#include <stdint.h>

#include "eng.h"
#include "nerf_hashgrid.h"
#include "nerf_mlp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nerf_field nerf_field; /* opaque */

#define NERF_CONTRACT_AUTO (-1) /* nerf_train's contract: its choice (off for now) */

typedef struct nerf_field_params {
    nerf_hashgrid_params grid; /* nerf_hashgrid_params_init; grid.aabb_scale also sets the box */
    int64_t width;             /* hidden width of both MLPs: 64 */
    int density_hidden_layers; /* 1 */
    int64_t geo_features;      /* density MLP outputs, column 0 the log density: 16 */
    int color_hidden_layers;   /* 2 */
    uint64_t seed;             /* parameter init (Philox): 1337 */
    int contract;              /* 1: contract space around the centre (above); 0: the box. The
                                  trainer also reads NERF_CONTRACT_AUTO (nerf_train.h) */
    float inner_radius;        /* contraction: half the side of the uncontracted cube: 0.5 */
} nerf_field_params;

/* Offsets (floats) of the parts of the flat parameter and gradient tensors. */
typedef struct nerf_field_layout {
    int64_t density;  /* density MLP weights */
    int64_t color;    /* colour MLP weights */
    int64_t grid;     /* hash tables */
    int64_t n_matrix; /* MLP weights in all (== grid) */
    int64_t n_params; /* everything */
} nerf_field_layout;

void nerf_field_params_init(nerf_field_params *p);
/* Makes the networks and their initialised parameters (zeroed gradients) from `alloc` (a CPU
 * allocator; retained until destroy). s: where the init runs (may be NULL).
 * Errors: ENG_E_INVALID_ARG (a bad configuration, named: contract other than 0 or 1,
 * inner_radius not positive), ENG_E_UNSUPPORTED, ENG_E_OOM. */
int nerf_field_create(
    nerf_field **out, eng_alloc *alloc, eng_stream *s, const nerf_field_params *p, eng_err *err);
void nerf_field_destroy(nerf_field *f); /* NULL is a no-op */

/* ---- queries ------------------------------------------------------------------------------- */
const nerf_field_params *nerf_field_get_params(const nerf_field *f);
const nerf_hashgrid *nerf_field_grid(const nerf_field *f);
const nerf_mlp *nerf_field_density_mlp(const nerf_field *f);
const nerf_mlp *nerf_field_color_mlp(const nerf_field *f);
nerf_field_layout nerf_field_get_layout(const nerf_field *f);
int64_t nerf_field_n_params(const nerf_field *f);
int64_t nerf_field_n_matrix_params(const nerf_field *f);
eng_tensor *
nerf_field_param_tensor(nerf_field *f);            /* (n_params) f32, for the optimizer/snapshots */
eng_tensor *nerf_field_grad_tensor(nerf_field *f); /* (n_params) f32 */
/* Floats of scratch for a batch of n points (0 for n <= 0). */
int64_t nerf_field_scratch_floats(const nerf_field *f, int64_t n);

/* ---- operations ---------------------------------------------------------------------------- */
/* sigma (n) and rgb (n, 3) at pos (n, 3) seen along dir (n, 3). rgb and dir both NULL: density
 * only. Errors: ENG_E_INVALID_ARG (n < 0, exactly one of rgb and dir NULL). */
int nerf_field_fwd(nerf_field *f,
                   eng_stream *s,
                   float *sigma,
                   float *rgb,
                   const float *pos,
                   const float *dir,
                   int64_t n,
                   float *scratch,
                   eng_err *err);
/* Accumulates into the gradient tensor dL/dparams from d_sigma (n) = dL/dsigma and d_rgb (n, 3)
 * = dL/drgb at the points of the last nerf_field_fwd on this scratch (same n: the positions and
 * encodings are in the scratch). Either may be NULL (zero); d_rgb needs a forward pass with
 * colour. Positions and directions get no gradient.
 * Errors: ENG_E_INVALID_ARG (n < 0). */
int nerf_field_bwd(nerf_field *f,
                   eng_stream *s,
                   const float *d_sigma,
                   const float *d_rgb,
                   int64_t n,
                   float *scratch,
                   eng_err *err);
/* Zeroes the gradient tensor. */
void nerf_field_zero_grads(nerf_field *f, eng_stream *s);

#ifdef __cplusplus
}
#endif
#endif /* NERF_FIELD_H */
