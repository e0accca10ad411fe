/* nerf_cuda.h: the CUDA kernels of the NeRF trainer, as host launchers over device pointers, each
 * the twin of a CPU function (same maths, same layouts, same argument order):
 *
 *   hash grid    nerf_cuda_hashgrid_fwd / _bwd / _bwd_pos     nerf_hashgrid_fwd / _bwd / _bwd_pos
 *   SH           nerf_cuda_sh_encode                          nerf_sh_encode
 *   MLP          nerf_cuda_mlp_fwd / _bwd (fully fused)       nerf_mlp_fwd / _bwd
 *   field        nerf_cuda_field_fwd / _bwd                   nerf_field_fwd / _bwd
 *   marching     nerf_cuda_march_count + nerf_cuda_march_fill nerf_march
 *   compositing  nerf_cuda_composite_fwd / _bwd               nerf_composite_forward / _backward
 *   Adam         nerf_cuda_adam_step                          nerf_adam_step
 *   occupancy    nerf_cuda_occgrid_pick + nerf_cuda_occgrid_update   nerf_occgrid_update
 *
 *   eng_cuda_attach(ctx, 0, 0, &err);
 *   eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CUDA);          // has the allocator's arena
 *   eng_alloc *dev = eng_ctx_alloc(ctx, ENG_DEVICE_CUDA);          // every buffer comes from it
 *   nerf_cuda_field f; nerf_cuda_field_init(&f, &field_params, &err);
 *   float *scratch = ... nerf_cuda_field_scratch_floats(&f, n) floats of device memory ...
 *   nerf_cuda_field_fwd(&f, s, sigma, rgb, pos, dir, n, params, scratch, &err);
 *   nerf_cuda_field_bwd(&f, s, grads, d_sigma, d_rgb, n, params, scratch, &err);   // grads +=
 *   nerf_cuda_adam_step(&adam_params, s, params, m, v, t, grads, lr, &err);
 *
 * Pointers are device memory (the engine's CUDA allocator: eng_alloc_take / eng_tensor_alloc on
 * eng_ctx_alloc(ctx, ENG_DEVICE_CUDA); nothing here calls cudaMalloc). Launchers queue their work
 * on `s` (a CUDA stream; NULL: the legacy default stream) and return before it runs, except
 * nerf_cuda_march_count, which waits for its stream to read the sample count back. The calling
 * thread's current device must be the stream's (single GPU today). A few launchers take a small
 * workspace from s->arena (marked and rewound within the call; stream order makes the reuse safe):
 * they refuse a stream without an arena. Shapes are those of the CPU twins (row-major f32).
 *
 * Precision and determinism (tests/test_nerf_cuda.c compares every launcher with its twin):
 *  - hash grid forward and position gradient, SH, the MLPs, the field: f32 with the twins' maths
 *    (the *_math.h headers are shared); nvcc contracts a * b + c into fused multiply-adds and
 *    sums in other orders, so results differ from the CPU by rounding. A hidden pre-activation
 *    within rounding of 0 may get the other ReLU' than on the CPU: that row's gradient differs;
 *  - the MLP is an f32 SIMT kernel in shared memory (no tensor cores, no TF32); its weight
 *    gradient is summed per thread block, then over blocks in a fixed order (deterministic);
 *  - the hash-grid table gradient (hence the field's) sums with float atomicAdd: the order, and
 *    so the last bits, change from run to run;
 *  - marching, Adam and the occupancy update are compiled without contraction (-fmad=false):
 *    the same samples, moments, picks and values as the twins, bit for bit (Adam's bias
 *    correction aside: the device's pow may round c(t) one ulp apart); compositing sums in f64
 *    like its twin, with the device's expf (within 2 ulp of the host's).
 *
 * Built without CUDA (ENG_HAVE_CUDA undefined) every launcher exists and returns
 * ENG_E_UNSUPPORTED ("built without CUDA"); nerf_cuda_field_init and the *_scratch_floats queries
 * work in both builds (plain host arithmetic).
 * Errors: ENG_E_INVALID_ARG (n < 0, NULL pointers with work to do, leading dimensions too small,
 * a CPU stream: named), ENG_E_UNSUPPORTED (shapes the kernels do not cover, named), ENG_E_OOM (an
 * arena workspace), ENG_E_DEVICE (a launch or CUDA call failed: the statement and CUDA's reason).
 * n == 0 does nothing and returns ENG_OK.
 * Threads: launchers are safe from any thread; one stream is used by one job at a time.
 * Limits: MLP width NERF_CUDA_MLP_WIDTH (64), inputs and outputs 1..64 columns. */
#ifndef NERF_CUDA_H
#define NERF_CUDA_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "eng.h"
#include "nerf_adam.h"
#include "nerf_field.h"
#include "nerf_hashgrid.h"
#include "nerf_mlp.h"
#include "nerf_occgrid.h"
#include "nerf_render.h"
#include "nerf_sh_math.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_CUDA_MLP_WIDTH 64  /* the fused MLP's only hidden width */
#define NERF_CUDA_MLP_TILE  64  /* rows per thread block */
#define NERF_CUDA_MLP_PARTS 512 /* at most this many blocks in the backward pass (gradient slots) */

/* ---- plain data ------------------------------------------------------------------------------ */

/* The shapes of nerf_field (nerf_field.h) without its host tensors: what the device field needs.
 * Parameters and gradients are one flat device buffer each, laid out as `layout` says (the same
 * offsets as nerf_field_get_layout, so the CPU field's tensors copy over as they are). */
typedef struct nerf_cuda_field {
    nerf_hashgrid grid;
    nerf_mlp density, color;
    nerf_field_layout layout;
    int64_t n_color_in; /* 16 SH values + geo_features */
    float box_lo;       /* unit(pos) = (pos - box_lo) * box_inv: the scene box onto [0, 1]^3 */
    float box_inv;
    int contract;       /* 1: unit(pos) = nerf_contract_unit(pos, inner_radius) instead */
    float inner_radius; /* the contraction's (nerf_field_params.inner_radius) */
} nerf_cuda_field;

/* The samples of a batch of rays, packed ray after ray, in device memory (the caller's). */
typedef struct nerf_cuda_samples {
    int64_t n_rays;   /* rays (those kept by nerf_cuda_march_count) */
    int64_t n;        /* samples: start[n_rays] */
    int64_t *start;   /* (n_rays + 1): samples of ray r are [start[r], start[r + 1]) */
    float *pos, *dir; /* (n, 3) model space */
    float *t, *dt;    /* (n) */
} nerf_cuda_samples;

/* The occupancy grid as marching reads it: cascades * res^3 bytes (cascade-major, x fastest; the
 * layout of nerf_occgrid_bits) in device memory, non-zero = occupied. bits NULL: every cell is
 * occupied (nerf_march with grid NULL). */
typedef struct nerf_cuda_occ {
    const uint8_t *bits;
    int cascades, res;
} nerf_cuda_occ;

/* ---- sizes (both builds) --------------------------------------------------------------------- */

/* Fills f from the field parameters exactly as nerf_field_create lays out its networks and
 * tensors. Errors: those of nerf_field_create's checks (ENG_E_INVALID_ARG, named). */
static inline int
nerf_cuda_field_init(nerf_cuda_field *f, const nerf_field_params *p, eng_err *err) {
    int rc = ENG_OK;
    nerf_mlp_params mp;
    ENG_ASSERT(f != NULL && p != NULL);
    memset(f, 0, sizeof *f);
    if (p->geo_features < 1 || p->geo_features > NERF_MLP_MAX_DIM) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_cuda_field_init: geo_features = %lld, expected 1..%d",
                         (long long)p->geo_features, NERF_MLP_MAX_DIM);
        goto done;
    }
    if ((rc = nerf_hashgrid_init(&f->grid, &p->grid, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_cuda_field_init: grid");
        goto done;
    }
    nerf_mlp_params_init(&mp);
    mp.n_input = f->grid.n_outputs;
    mp.n_output = p->geo_features;
    mp.width = p->width;
    mp.n_hidden_layers = p->density_hidden_layers;
    mp.output_act = NERF_ACT_NONE;
    if ((rc = nerf_mlp_init(&f->density, &mp, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_cuda_field_init: density network");
        goto done;
    }
    f->n_color_in = NERF_SH_COEFFS + p->geo_features;
    mp.n_input = f->n_color_in;
    mp.n_output = 3;
    mp.n_hidden_layers = p->color_hidden_layers;
    mp.output_act = NERF_ACT_SIGMOID;
    if ((rc = nerf_mlp_init(&f->color, &mp, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_cuda_field_init: colour network");
        goto done;
    }
    f->box_lo = 0.5f - 0.5f * p->grid.aabb_scale;
    f->box_inv = 1.0f / p->grid.aabb_scale;
    if ((p->contract != 0 && p->contract != 1) ||
        (p->contract && !(p->inner_radius > 0 && isfinite(p->inner_radius)))) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_cuda_field_init: contract = %d (expected 0 or 1), inner_radius = %g "
                         "(expected > 0 when contracting)",
                         p->contract, (double)p->inner_radius);
        goto done;
    }
    f->contract = p->contract;
    f->inner_radius = p->inner_radius;
    f->layout.density = 0;
    f->layout.color = f->density.n_weights;
    f->layout.grid = f->layout.color + f->color.n_weights;
    f->layout.n_matrix = f->layout.grid;
    f->layout.n_params = f->layout.grid + f->grid.n_params;
done:
    return rc;
}

/* Floats of device scratch nerf_cuda_mlp_fwd / _bwd need for n rows (0 for n <= 0):
 * n (H width + n_output) activations + min(ceil(n / TILE), PARTS) n_weights gradient slots. */
static inline int64_t nerf_cuda_mlp_scratch_floats(const nerf_mlp *m, int64_t n) {
    ENG_ASSERT(m != NULL);
    if (n <= 0) return 0;
    const int64_t tiles = ENG_CEIL_DIV(n, (int64_t)NERF_CUDA_MLP_TILE);
    const int64_t parts = ENG_MIN(tiles, (int64_t)NERF_CUDA_MLP_PARTS);
    return n * (m->n_hidden_layers * m->width + m->n_output) + parts * m->n_weights;
}

/* Floats of device scratch nerf_cuda_field_fwd / _bwd need for n points (0 for n <= 0):
 * upos (n, 3), enc and d_enc (n, L F), col_in and d_col_in (n, 16 + geo), and both MLPs'. */
static inline int64_t nerf_cuda_field_scratch_floats(const nerf_cuda_field *f, int64_t n) {
    ENG_ASSERT(f != NULL);
    if (n <= 0) return 0;
    return n * (3 + 2 * f->grid.n_outputs + 2 * f->n_color_in) +
           nerf_cuda_mlp_scratch_floats(&f->density, n) +
           nerf_cuda_mlp_scratch_floats(&f->color, n);
}

/* Cells one occupancy update at `step` evaluates (nerf_occgrid_update's picks): every cell during
 * warm-up (step < warmup_steps), else a quarter of them at random plus a quarter from the
 * occupied ones (2 (total / 4), some marked -1 when no cell is occupied). */
static inline int64_t nerf_cuda_occgrid_pick_count(const nerf_occgrid_params *p, int64_t step) {
    ENG_ASSERT(p != NULL);
    const int64_t total = (int64_t)p->res * p->res * p->res * p->cascades;
    return step < p->warmup_steps ? total : 2 * (total / 4);
}

#ifdef ENG_HAVE_CUDA

/* ---- hash grid (nerf/nerf_cuda_grid.cu; twins in nerf_hashgrid.h) -------------------------- */
/* feat (n, L F) = the encoding of pos (n, 3) in [0, 1]^3 (clamped); table: g->n_params floats.
 * One thread per (point, level), the level in blockIdx.y. */
int nerf_cuda_hashgrid_fwd(const nerf_hashgrid *g,
                           eng_stream *s,
                           float *feat,
                           const float *pos,
                           int64_t n,
                           const float *table,
                           eng_err *err);
/* d_table (g->n_params) += (d feat / d table)^T d_feat (n, L F), with float atomicAdd (the order
 * of the sums varies). Points whose d_feat on a level is all zero skip that level. */
int nerf_cuda_hashgrid_bwd(const nerf_hashgrid *g,
                           eng_stream *s,
                           float *d_table,
                           const float *pos,
                           int64_t n,
                           const float *d_feat,
                           eng_err *err);
/* d_pos (n, 3) = (d feat / d pos)^T d_feat (overwritten; 0 along axes where pos was clamped). */
int nerf_cuda_hashgrid_bwd_pos(const nerf_hashgrid *g,
                               eng_stream *s,
                               float *d_pos,
                               const float *pos,
                               int64_t n,
                               const float *d_feat,
                               const float *table,
                               eng_err *err);

/* ---- SH (nerf/nerf_cuda_grid.cu; twin nerf_sh_encode) --------------------------------------- */
/* The first 16 columns of out (n, ld_out >= 16) = SH degree 4 of dirs (n, 3), unit vectors. */
int nerf_cuda_sh_encode(
    eng_stream *s, float *out, int64_t ld_out, const float *dirs, int64_t n, eng_err *err);

/* ---- fully fused MLP (nerf/nerf_cuda_mlp.cu; twins in nerf_mlp.h) --------------------------- */
/* The network of nerf_mlp.h (no biases, ReLU hidden layers, output activation m->output_act):
 * one thread block per NERF_CUDA_MLP_TILE rows keeps the rows' activations in shared memory
 * through every layer, each layer's weights staged in shared memory; f32 throughout.
 * y (n, ldy) = the network applied to x (n, ldx). scratch (nerf_cuda_mlp_scratch_floats) gets
 * the hidden activations and output pre-activations for the backward pass; scratch NULL: an
 * inference pass that keeps nothing.
 * Errors: ENG_E_UNSUPPORTED (width != 64, n_input or n_output > 64), ENG_E_INVALID_ARG (n < 0,
 * ldx < n_input, ldy < n_output, NULL buffers). */
int nerf_cuda_mlp_fwd(const nerf_mlp *m,
                      eng_stream *s,
                      float *y,
                      int64_t ldy,
                      const float *x,
                      int64_t ldx,
                      int64_t n,
                      const float *w,
                      float *scratch,
                      eng_err *err);
/* Backward pass of the last nerf_cuda_mlp_fwd on this scratch (same x, n and w): d_w
 * (m->n_weights) += dL/dw; d_x (n, ld_dx) = dL/dx (overwritten; NULL skips it) from d_y (n,
 * ld_dy). At most NERF_CUDA_MLP_PARTS blocks loop over the row tiles, each summing its rows' weight
 * gradient into its own slot of the scratch; a second kernel adds the slots to d_w in block order.
 * Errors as nerf_cuda_mlp_fwd (scratch is required). */
int nerf_cuda_mlp_bwd(const nerf_mlp *m,
                      eng_stream *s,
                      float *d_w,
                      float *d_x,
                      int64_t ld_dx,
                      const float *x,
                      int64_t ldx,
                      const float *d_y,
                      int64_t ld_dy,
                      int64_t n,
                      const float *w,
                      float *scratch,
                      eng_err *err);

/* ---- field (nerf/nerf_cuda_field.cu; twins nerf_field_fwd / _bwd) ---------------------------- */
/* sigma (n) and rgb (n, 3) at pos (n, 3) seen along dir (n, 3), params laid out as f->layout
 * (device). rgb and dir both NULL: density only. scratch: nerf_cuda_field_scratch_floats(f, n).
 * Unlike the twin, the scratch carries no header: the caller pairs each backward pass with the
 * forward pass of the same n (with colour when d_rgb is given).
 * Errors: ENG_E_INVALID_ARG (n < 0, exactly one of rgb and dir NULL, NULL buffers), those of the
 * MLP kernels (ENG_E_UNSUPPORTED for widths other than 64). */
int nerf_cuda_field_fwd(const nerf_cuda_field *f,
                        eng_stream *s,
                        float *sigma,
                        float *rgb,
                        const float *pos,
                        const float *dir,
                        int64_t n,
                        const float *params,
                        float *scratch,
                        eng_err *err);
/* grads (f->layout.n_params, device) += dL/dparams from d_sigma (n) and d_rgb (n, 3) (either may
 * be NULL: zero) at the points of the last nerf_cuda_field_fwd on this scratch. The table part
 * sums with atomics (see the top). */
int nerf_cuda_field_bwd(const nerf_cuda_field *f,
                        eng_stream *s,
                        float *grads,
                        const float *d_sigma,
                        const float *d_rgb,
                        int64_t n,
                        const float *params,
                        float *scratch,
                        eng_err *err);

/* ---- marching and compositing (nerf/nerf_cuda_render.cu; twins in nerf_render.h) ------------- */
/* Pass 1 of nerf_march: counts the samples of each ray o, d (n_rays, 3; d unit) and writes
 * start (n_rays + 1, device int64) = their exclusive prefix sum (cub's scan). Then waits for the
 * stream and sets *n_samples = start[n_rays] and *n_rays_kept = the rays whose samples fit in
 * cap_samples (nerf_train's rule: the largest k >= 1 with start[k] <= cap_samples, or 1; n_rays
 * when cap_samples < 0 means no cap). p->contract: the contracted march (march_one_contract of
 * nerf_render.c; grid: one cascade over the contracted cube, with p's inner_radius); p->coarse_skip
 * is ignored (the device never skips 8^3 blocks at once). Workspace: s->arena (the scan's
 * temporary storage).
 * Errors: ENG_E_INVALID_ARG (bad params as nerf_march, no arena, NULL buffers), ENG_E_OOM. */
int nerf_cuda_march_count(const nerf_cuda_occ *grid,
                          const nerf_march_params *p,
                          eng_stream *s,
                          int64_t *start,
                          int64_t n_rays,
                          const float *o,
                          const float *d,
                          int64_t cap_samples,
                          int64_t *n_samples,
                          int64_t *n_rays_kept,
                          eng_err *err);
/* Pass 2: writes the samples of rays [0, out->n_rays) at out->start (from pass 1, the same grid,
 * params and rays) into out->pos, dir, t, dt (room for out->n samples). One thread per ray. */
int nerf_cuda_march_fill(const nerf_cuda_occ *grid,
                         const nerf_march_params *p,
                         eng_stream *s,
                         const nerf_cuda_samples *out,
                         const float *o,
                         const float *d,
                         eng_err *err);
/* color (n_rays, 3), opacity (n_rays), depth (n_rays) (opacity and depth may be NULL) from sigma
 * (n) and rgb (n, 3); bg (n_rays, 3) behind each ray (NULL: black). One thread per ray, f64 sums
 * as the twin. */
int nerf_cuda_composite_fwd(const nerf_cuda_samples *smp,
                            eng_stream *s,
                            const float *sigma,
                            const float *rgb,
                            const float *bg,
                            float *color,
                            float *opacity,
                            float *depth,
                            eng_err *err);
/* d_sigma (n), d_rgb (n, 3) (overwritten) from d_color (n_rays, 3), given the forward's inputs
 * and its color output. bg is unused (the color carries it), kept to mirror the twin. */
int nerf_cuda_composite_bwd(const nerf_cuda_samples *smp,
                            eng_stream *s,
                            const float *sigma,
                            const float *rgb,
                            const float *bg,
                            const float *color,
                            const float *d_color,
                            float *d_sigma,
                            float *d_rgb,
                            eng_err *err);

/* ---- Adam and the occupancy grid (nerf/nerf_cuda_optim.cu) ---------------------------------- */
/* One nerf_adam_step over p->n_params parameters: params, first and second moments m, v and
 * per-parameter step counts t (all device, n_params each) from grads, learning rate lr (finite,
 * >= 0). The first p->n_matrix are MLP weights (L2, always updated), the rest are updated only
 * where the gradient is non-zero (nerf_adam_math.h). c(t) is computed per element in f64.
 * Errors: ENG_E_INVALID_ARG (the checks of nerf_adam_create, a bad lr, NULL buffers). */
int nerf_cuda_adam_step(const nerf_adam_params *p,
                        eng_stream *s,
                        float *params,
                        float *m,
                        float *v,
                        uint32_t *t,
                        const float *grads,
                        float lr,
                        eng_err *err);
/* The cells and points of one nerf_occgrid_update at `step`, as the twin picks them (same Philox
 * streams, same order): idx (nerf_cuda_occgrid_pick_count(p, step), int64) = cell (cascade
 * res^3 + cell), or -1 where the twin picks nothing (no cell occupied); pos (same count, 3) a
 * random model-space point in each cell (the caller evaluates the density there). bits: the grid's
 * occupancy bytes (device), read after warm-up. Workspace: s->arena (the occupied cells' list).
 * Errors: ENG_E_INVALID_ARG (params as nerf_occgrid_create, no arena), ENG_E_OOM. */
int nerf_cuda_occgrid_pick(const nerf_occgrid_params *p,
                           eng_stream *s,
                           int64_t step,
                           int64_t *idx,
                           float *pos,
                           const uint8_t *bits,
                           eng_err *err);
/* The rest of the update: values (cascades res^3, device) = max(values * decay, densest new
 * optical thickness sigma * dt_min of the cell's picks), bits = values >= min(threshold, mean of
 * cascade 0). Contracted grids (p->contract, one cascade): the picks' points are uniform in the
 * contracted cells mapped back (nerf_uncontract_unit), the mean is over the inner cube's cells
 * and bits = values * max(1, m) >= it (m = nerf_contract_norm of the cell's centre), as
 * nerf_occgrid_refresh. sigma: (n_pick) densities at the picked points (non-finite and negative count as
 * 0); fresh: (cascades res^3) device floats of workspace. Workspace: s->arena (the mean's
 * partial sums, summed in a fixed order: deterministic).
 * Errors: ENG_E_INVALID_ARG (params, n_pick < 0, NULL buffers, no arena), ENG_E_OOM. */
int nerf_cuda_occgrid_update(const nerf_occgrid_params *p,
                             eng_stream *s,
                             float *values,
                             uint8_t *bits,
                             float *fresh,
                             const int64_t *idx,
                             const float *sigma,
                             int64_t n_pick,
                             eng_err *err);

#else /* built without CUDA: every launcher says so */

static inline int nerf_cuda_unsupported(const char *fn, eng_err *err) {
    return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: built without CUDA", fn);
}

static inline int nerf_cuda_hashgrid_fwd(const nerf_hashgrid *g,
                                         eng_stream *s,
                                         float *feat,
                                         const float *pos,
                                         int64_t n,
                                         const float *table,
                                         eng_err *err) {
    (void)g, (void)s, (void)feat, (void)pos, (void)n, (void)table;
    return nerf_cuda_unsupported("nerf_cuda_hashgrid_fwd", err);
}
static inline int nerf_cuda_hashgrid_bwd(const nerf_hashgrid *g,
                                         eng_stream *s,
                                         float *d_table,
                                         const float *pos,
                                         int64_t n,
                                         const float *d_feat,
                                         eng_err *err) {
    (void)g, (void)s, (void)d_table, (void)pos, (void)n, (void)d_feat;
    return nerf_cuda_unsupported("nerf_cuda_hashgrid_bwd", err);
}
static inline int nerf_cuda_hashgrid_bwd_pos(const nerf_hashgrid *g,
                                             eng_stream *s,
                                             float *d_pos,
                                             const float *pos,
                                             int64_t n,
                                             const float *d_feat,
                                             const float *table,
                                             eng_err *err) {
    (void)g, (void)s, (void)d_pos, (void)pos, (void)n, (void)d_feat, (void)table;
    return nerf_cuda_unsupported("nerf_cuda_hashgrid_bwd_pos", err);
}
static inline int nerf_cuda_sh_encode(
    eng_stream *s, float *out, int64_t ld_out, const float *dirs, int64_t n, eng_err *err) {
    (void)s, (void)out, (void)ld_out, (void)dirs, (void)n;
    return nerf_cuda_unsupported("nerf_cuda_sh_encode", err);
}
static inline int nerf_cuda_mlp_fwd(const nerf_mlp *m,
                                    eng_stream *s,
                                    float *y,
                                    int64_t ldy,
                                    const float *x,
                                    int64_t ldx,
                                    int64_t n,
                                    const float *w,
                                    float *scratch,
                                    eng_err *err) {
    (void)m, (void)s, (void)y, (void)ldy, (void)x, (void)ldx, (void)n, (void)w, (void)scratch;
    return nerf_cuda_unsupported("nerf_cuda_mlp_fwd", err);
}
static inline int nerf_cuda_mlp_bwd(const nerf_mlp *m,
                                    eng_stream *s,
                                    float *d_w,
                                    float *d_x,
                                    int64_t ld_dx,
                                    const float *x,
                                    int64_t ldx,
                                    const float *d_y,
                                    int64_t ld_dy,
                                    int64_t n,
                                    const float *w,
                                    float *scratch,
                                    eng_err *err) {
    (void)m, (void)s, (void)d_w, (void)d_x, (void)ld_dx, (void)x, (void)ldx, (void)d_y;
    (void)ld_dy, (void)n, (void)w, (void)scratch;
    return nerf_cuda_unsupported("nerf_cuda_mlp_bwd", err);
}
static inline int nerf_cuda_field_fwd(const nerf_cuda_field *f,
                                      eng_stream *s,
                                      float *sigma,
                                      float *rgb,
                                      const float *pos,
                                      const float *dir,
                                      int64_t n,
                                      const float *params,
                                      float *scratch,
                                      eng_err *err) {
    (void)f, (void)s, (void)sigma, (void)rgb, (void)pos, (void)dir, (void)n, (void)params;
    (void)scratch;
    return nerf_cuda_unsupported("nerf_cuda_field_fwd", err);
}
static inline int nerf_cuda_field_bwd(const nerf_cuda_field *f,
                                      eng_stream *s,
                                      float *grads,
                                      const float *d_sigma,
                                      const float *d_rgb,
                                      int64_t n,
                                      const float *params,
                                      float *scratch,
                                      eng_err *err) {
    (void)f, (void)s, (void)grads, (void)d_sigma, (void)d_rgb, (void)n, (void)params;
    (void)scratch;
    return nerf_cuda_unsupported("nerf_cuda_field_bwd", err);
}
static inline int nerf_cuda_march_count(const nerf_cuda_occ *grid,
                                        const nerf_march_params *p,
                                        eng_stream *s,
                                        int64_t *start,
                                        int64_t n_rays,
                                        const float *o,
                                        const float *d,
                                        int64_t cap_samples,
                                        int64_t *n_samples,
                                        int64_t *n_rays_kept,
                                        eng_err *err) {
    (void)grid, (void)p, (void)s, (void)start, (void)n_rays, (void)o, (void)d;
    (void)cap_samples, (void)n_samples, (void)n_rays_kept;
    return nerf_cuda_unsupported("nerf_cuda_march_count", err);
}
static inline int nerf_cuda_march_fill(const nerf_cuda_occ *grid,
                                       const nerf_march_params *p,
                                       eng_stream *s,
                                       const nerf_cuda_samples *out,
                                       const float *o,
                                       const float *d,
                                       eng_err *err) {
    (void)grid, (void)p, (void)s, (void)out, (void)o, (void)d;
    return nerf_cuda_unsupported("nerf_cuda_march_fill", err);
}
static inline int nerf_cuda_composite_fwd(const nerf_cuda_samples *smp,
                                          eng_stream *s,
                                          const float *sigma,
                                          const float *rgb,
                                          const float *bg,
                                          float *color,
                                          float *opacity,
                                          float *depth,
                                          eng_err *err) {
    (void)smp, (void)s, (void)sigma, (void)rgb, (void)bg, (void)color, (void)opacity, (void)depth;
    return nerf_cuda_unsupported("nerf_cuda_composite_fwd", err);
}
static inline int nerf_cuda_composite_bwd(const nerf_cuda_samples *smp,
                                          eng_stream *s,
                                          const float *sigma,
                                          const float *rgb,
                                          const float *bg,
                                          const float *color,
                                          const float *d_color,
                                          float *d_sigma,
                                          float *d_rgb,
                                          eng_err *err) {
    (void)smp, (void)s, (void)sigma, (void)rgb, (void)bg, (void)color, (void)d_color;
    (void)d_sigma, (void)d_rgb;
    return nerf_cuda_unsupported("nerf_cuda_composite_bwd", err);
}
static inline int nerf_cuda_adam_step(const nerf_adam_params *p,
                                      eng_stream *s,
                                      float *params,
                                      float *m,
                                      float *v,
                                      uint32_t *t,
                                      const float *grads,
                                      float lr,
                                      eng_err *err) {
    (void)p, (void)s, (void)params, (void)m, (void)v, (void)t, (void)grads, (void)lr;
    return nerf_cuda_unsupported("nerf_cuda_adam_step", err);
}
static inline int nerf_cuda_occgrid_pick(const nerf_occgrid_params *p,
                                         eng_stream *s,
                                         int64_t step,
                                         int64_t *idx,
                                         float *pos,
                                         const uint8_t *bits,
                                         eng_err *err) {
    (void)p, (void)s, (void)step, (void)idx, (void)pos, (void)bits;
    return nerf_cuda_unsupported("nerf_cuda_occgrid_pick", err);
}
static inline int nerf_cuda_occgrid_update(const nerf_occgrid_params *p,
                                           eng_stream *s,
                                           float *values,
                                           uint8_t *bits,
                                           float *fresh,
                                           const int64_t *idx,
                                           const float *sigma,
                                           int64_t n_pick,
                                           eng_err *err) {
    (void)p, (void)s, (void)values, (void)bits, (void)fresh, (void)idx, (void)sigma, (void)n_pick;
    return nerf_cuda_unsupported("nerf_cuda_occgrid_update", err);
}

#endif /* ENG_HAVE_CUDA */

#ifdef __cplusplus
}
#endif
#endif /* NERF_CUDA_H */
