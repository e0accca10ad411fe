/* nerf_mlp.h: the small fully connected networks of instant-ngp on the CPU (tiny-cuda-nn's
 * FullyFusedMLP: no biases, ReLU between layers, a chosen output activation). Prefix nerf_mlp_.
 *
 *   nerf_mlp_params mp; nerf_mlp_params_init(&mp);       // 32 -> 64 -> 16, output none
 *   mp.n_input = 32; mp.n_output = 3; mp.n_hidden_layers = 2; mp.output_act = NERF_ACT_SIGMOID;
 *   nerf_mlp m; nerf_mlp_init(&m, &mp, &err);
 *   nerf_mlp_init_weights(&m, stream, w, seed, offset, &err);   // w: m.n_weights floats
 *   float *scratch = ... nerf_mlp_scratch_floats(&m, n) floats ...
 *   nerf_mlp_fwd(&m, stream, y, 3, x, 32, n, w, scratch, &err);
 *   nerf_mlp_bwd(&m, stream, d_w, d_x, 32, x, 32, d_y, 3, n, w, scratch, &err);
 *
 * Network: h_0 = relu(x W_0^T), h_l = relu(h_{l-1} W_l^T) for l < H, y = act(h_{H-1} W_H^T),
 * with W_0 (width, n_input), W_l (width, width), W_H (n_output, width), stored row-major one
 * after the other in w (layer l starts at m.layer_offset[l]; nn.Linear's weight layout).
 * A nerf_mlp is plain data (shapes), owning nothing; weights, gradients and scratch are the
 * caller's (nerf_field keeps them in allocator tensors).
 *
 * Shapes (f32, host memory, row-major with leading dimensions in elements): x (n, ldx >=
 * n_input), y (n, ldy >= n_output), d_y like y, d_x like x (ld_dx >= n_input).
 * Scratch: the forward pass keeps every hidden activation and the output pre-activations there
 * for the backward pass; the backward pass works in it too and overwrites it (call it once per
 * forward, with the same n). nerf_mlp_scratch_floats(m, n) floats:
 * n (H width + n_output + width) + ceil(n / NERF_MLP_CHUNK) n_weights.
 *
 * Parallelism and determinism: rows go in fixed chunks of NERF_MLP_CHUNK, split over s->pool
 * (s or s->pool NULL: the calling thread); each chunk runs its layers back to back through the
 * engine's GEMM (OpenBLAS, one thread per call) while they are in cache. The weight gradient of
 * each chunk is written to its own slot of the scratch and the slots are summed in chunk order,
 * so every result is bit-identical for any thread count.
 * Errors: ENG_E_INVALID_ARG (a bad configuration, n < 0, a leading dimension too small: named).
 * NULL pointers where data is needed are bugs (asserted). Threads: concurrent calls are fine on
 * separate outputs and scratch. Limits: 1..NERF_MLP_MAX_HIDDEN hidden layers, sizes <= 4096. */
#ifndef NERF_MLP_H
#define NERF_MLP_H

#include <stdint.h>

#include "eng.h"
#include "nerf_mlp_math.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_MLP_MAX_HIDDEN 8
#define NERF_MLP_MAX_DIM    4096
#define NERF_MLP_CHUNK      1024 /* rows per chunk: fixed, so results ignore the thread count */

typedef struct nerf_mlp_params {
    int64_t n_input;     /* 32 */
    int64_t n_output;    /* 16 */
    int64_t width;       /* hidden width: 64 */
    int n_hidden_layers; /* H: 1 */
    nerf_act output_act; /* NERF_ACT_NONE, TRUNC_EXP, SIGMOID or RELU */
} nerf_mlp_params;

typedef struct nerf_mlp {
    int64_t n_input, n_output, width;
    int n_hidden_layers;
    nerf_act output_act;
    int64_t n_weights;                             /* floats in w */
    int64_t layer_offset[NERF_MLP_MAX_HIDDEN + 2]; /* W_l starts at w + layer_offset[l] */
    int64_t layer_rows[NERF_MLP_MAX_HIDDEN + 1];   /* W_l is (rows, cols) */
    int64_t layer_cols[NERF_MLP_MAX_HIDDEN + 1];
} nerf_mlp;

/* instant-ngp's density network: 32 -> 64 -> 16, no output activation. */
void nerf_mlp_params_init(nerf_mlp_params *p);
/* Validates p and fills the layer table. Errors: ENG_E_INVALID_ARG naming the field. */
int nerf_mlp_init(nerf_mlp *m, const nerf_mlp_params *p, eng_err *err);
/* Floats of scratch for a batch of n rows (formula above); 0 for n <= 0. */
int64_t nerf_mlp_scratch_floats(const nerf_mlp *m, int64_t n);

/* w (m->n_weights) = Xavier-uniform weights, as tiny-cuda-nn initialises them: W_l uniform in
 * [-a, a) with a = sqrt(6 / (rows + cols)), from Philox stream (seed, offset) (element i of the
 * stream goes to w[i]). */
int nerf_mlp_init_weights(
    const nerf_mlp *m, eng_stream *s, float *w, uint64_t seed, uint64_t offset, eng_err *err);

/* y = the network applied to x (n rows); keeps the activations in scratch.
 * Errors: ENG_E_INVALID_ARG (n < 0, ldx < n_input, ldy < n_output). */
int nerf_mlp_fwd(const nerf_mlp *m,
                 eng_stream *s,
                 float *y,
                 int64_t ldy,
                 const float *x,
                 int64_t ldx,
                 int64_t n,
                 const float *w,
                 float *scratch,
                 eng_err *err);

/* Backward pass of the last nerf_mlp_fwd on this scratch (same x, n and w):
 * d_w (m->n_weights) += dL/dw, d_x (n, ld_dx) = dL/dx (overwritten; d_x may be NULL to skip),
 * from d_y = dL/dy. The scratch is consumed (overwritten).
 * Errors: ENG_E_INVALID_ARG (n < 0, a leading dimension too small). */
int nerf_mlp_bwd(const nerf_mlp *m,
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

#ifdef __cplusplus
}
#endif
#endif /* NERF_MLP_H */
