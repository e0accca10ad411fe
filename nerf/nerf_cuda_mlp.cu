/* nerf_cuda_mlp.cu: the fully fused MLP of width 64 on CUDA (tiny-cuda-nn's FullyFusedMLP idea
 * in plain f32: no tensor cores, no TF32). The twin is nerf_mlp.c; the activations are
 * nerf_mlp_math.h's.
 *
 * Forward (mlp_fwd_f32_kernel): one block of 128 threads per tile of 64 rows. The tile's
 * activations stay in shared memory through every layer; each layer's weights are staged in
 * shared memory; each thread computes 4 rows x 8 columns of the layer's output (rows rg + 16 i,
 * columns cg + 8 j, so that neither the activation nor the weight reads hit the same bank twice).
 * The hidden activations (after ReLU) and the output pre-activations go to the scratch for the
 * backward pass.
 * Backward (mlp_bwd_f32_kernel): at most NERF_CUDA_MLP_PARTS blocks loop over the tiles. For each
 * layer from the top, a tile's delta (in shared memory) and the layer's input (the stored hidden
 * activation, or x) give the tile's weight gradient, added to the block's own slot in the scratch
 * (no atomics; the first tile of a block writes it), and the delta of the layer below (ReLU'
 * from the stored activation; for layer 0, d_x). mlp_reduce_f32_kernel then adds the slots to d_w
 * in block order, so the result does not depend on scheduling.
 * Scratch (floats): hidden (H, n, 64) | pre (n, n_output) | slots (parts, n_weights). */
#include "nerf_cuda.h"

#include <cuda_runtime.h>

#include "eng_cuda_common.cuh"
#include "nerf_mlp_math.h"

enum {
    W = NERF_CUDA_MLP_WIDTH, /* hidden width, and the most input or output columns */
    R = NERF_CUDA_MLP_TILE,  /* rows per tile */
    THREADS = 128,
    S = W + 1, /* row stride of the activation tiles in shared memory (one pad word) */
    TR = 4,    /* rows per thread: rg + RSTEP i */
    TC = 8,    /* columns per thread: cg + TC j */
    RSTEP = THREADS / TC,
    REDUCE_BLOCK = 256,
    REDUCE_MAX_BLOCKS = 1024,
};
static_assert(RSTEP * TR == R, "a tile's rows must be covered by the threads");
static_assert(TC * TC == W, "a layer's columns must be covered by the threads");

/* Bytes of dynamic shared memory of the backward kernel: delta and input tiles, weights. */
static const size_t BWD_SMEM = (size_t)(2 * R * S + W * W) * sizeof(float);

/* ---- forward --------------------------------------------------------------------------------- */

/* y (n, ldy) = the network on x (n, ldx); hidden (H, n, 64) and pre (n, n_output) are written
 * when not NULL. One block per tile of R rows (see the top of the file). */
static __global__ void __launch_bounds__(THREADS) mlp_fwd_f32_kernel(const nerf_mlp m,
                                                                     float *__restrict__ y,
                                                                     int64_t ldy,
                                                                     const float *__restrict__ x,
                                                                     int64_t ldx,
                                                                     int64_t n,
                                                                     const float *__restrict__ w,
                                                                     float *__restrict__ hidden,
                                                                     float *__restrict__ pre) {
    __shared__ float act[R * S];
    __shared__ float ws[W * S]; /* layer weights, row-major (out, in), padded rows */
    const int tid = (int)threadIdx.x, cg = tid % TC, rg = tid / TC;
    const int64_t r0 = (int64_t)blockIdx.x * R;
    const int rows = (int)(n - r0 < R ? n - r0 : R);
    const int n_in = (int)m.n_input, H = m.n_hidden_layers;
    for (int e = tid; e < R * W; e += THREADS) {
        const int r = e / W, k = e % W;
        act[r * S + k] = r < rows && k < n_in ? x[(r0 + r) * ldx + k] : 0.0f;
    }
    for (int l = 0; l <= H; l++) {
        const int lr = (int)m.layer_rows[l], lc = (int)m.layer_cols[l];
        const float *wl = w + m.layer_offset[l];
        for (int e = tid; e < W * W; e += THREADS) {
            const int c = e / W, k = e % W;
            ws[c * S + k] = c < lr && k < lc ? wl[c * lc + k] : 0.0f;
        }
        __syncthreads(); /* the weights, and the previous layer's activations, are in place */
        float acc[TR][TC];
#pragma unroll
        for (int i = 0; i < TR; i++)
#pragma unroll
            for (int j = 0; j < TC; j++)
                acc[i][j] = 0.0f;
#pragma unroll 4
        for (int k = 0; k < lc; k++) {
            float a[TR], b[TC];
#pragma unroll
            for (int i = 0; i < TR; i++)
                a[i] = act[(rg + RSTEP * i) * S + k];
#pragma unroll
            for (int j = 0; j < TC; j++)
                b[j] = ws[(cg + TC * j) * S + k];
#pragma unroll
            for (int i = 0; i < TR; i++)
#pragma unroll
                for (int j = 0; j < TC; j++)
                    acc[i][j] += a[i] * b[j];
        }
        __syncthreads(); /* every read of act and ws is done */
        if (l < H) {
            float *hl = hidden != NULL ? hidden + (int64_t)l * n * W : NULL;
#pragma unroll
            for (int i = 0; i < TR; i++) {
                const int r = rg + RSTEP * i;
#pragma unroll
                for (int j = 0; j < TC; j++) {
                    const int c = cg + TC * j;
                    const float v = acc[i][j] > 0.0f ? acc[i][j] : 0.0f;
                    act[r * S + c] = v;
                    if (hl != NULL && r < rows) hl[(r0 + r) * W + c] = v;
                }
            }
        } else {
#pragma unroll
            for (int i = 0; i < TR; i++) {
                const int r = rg + RSTEP * i;
#pragma unroll
                for (int j = 0; j < TC; j++) {
                    const int c = cg + TC * j;
                    if (r >= rows || c >= lr) continue;
                    if (pre != NULL) pre[(r0 + r) * lr + c] = acc[i][j];
                    y[(r0 + r) * ldy + c] = nerf_act_fwd(m.output_act, acc[i][j]);
                }
            }
        }
    }
}

/* ---- backward -------------------------------------------------------------------------------- */

/* Block b handles tiles b, b + gridDim.x, ...; its weight gradient goes to part + b n_weights.
 * d_x (n, ld_dx) is written when not NULL. Dynamic shared memory: BWD_SMEM. */
static __global__ void __launch_bounds__(THREADS)
    mlp_bwd_f32_kernel(const nerf_mlp m,
                       float *__restrict__ part,
                       float *__restrict__ d_x,
                       int64_t ld_dx,
                       const float *__restrict__ x,
                       int64_t ldx,
                       const float *__restrict__ d_y,
                       int64_t ld_dy,
                       int64_t n,
                       const float *__restrict__ w,
                       const float *__restrict__ hidden,
                       const float *__restrict__ pre) {
    extern __shared__ float smem[];
    float *delta = smem;        /* (R, S): dL/d(pre-activation) of the current layer's outputs */
    float *inb = delta + R * S; /* (R, S): the current layer's input */
    float *ws = inb + R * S;    /* (W, W): the current layer's weights, row-major (out, in) */
    const int tid = (int)threadIdx.x, cg = tid % TC, rg = tid / TC;
    const int H = m.n_hidden_layers, O = (int)m.n_output, n_in = (int)m.n_input;
    const int64_t tiles = (n + R - 1) / R;
    float *slot = part + (int64_t)blockIdx.x * m.n_weights;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int first = tile == (int64_t)blockIdx.x;
        const int64_t r0 = tile * R;
        const int rows = (int)(n - r0 < R ? n - r0 : R);
        __syncthreads(); /* the previous tile is done with delta */
        for (int e = tid; e < R * W; e += THREADS) {
            const int r = e / W, o = e % W;
            delta[r * S + o] = r < rows && o < O ? nerf_act_bwd(m.output_act, pre[(r0 + r) * O + o],
                                                                d_y[(r0 + r) * ld_dy + o])
                                                 : 0.0f;
        }
        for (int l = H; l >= 0; l--) {
            const int lr = (int)m.layer_rows[l], lc = (int)m.layer_cols[l];
            const float *wl = w + m.layer_offset[l];
            for (int e = tid; e < W * W; e += THREADS) {
                const int c = e / W, k = e % W;
                ws[c * W + k] = c < lr && k < lc ? wl[c * lc + k] : 0.0f;
            }
            if (l > 0) {
                const float *hin = hidden + (int64_t)(l - 1) * n * W;
                for (int e = tid; e < R * W; e += THREADS) {
                    const int r = e / W, k = e % W;
                    inb[r * S + k] = r < rows ? hin[(r0 + r) * W + k] : 0.0f;
                }
            } else {
                for (int e = tid; e < R * W; e += THREADS) {
                    const int r = e / W, k = e % W;
                    inb[r * S + k] = r < rows && k < n_in ? x[(r0 + r) * ldx + k] : 0.0f;
                }
            }
            __syncthreads(); /* weights, input and delta are in place */
            /* (a) dW_l[c][k] += sum over the tile's rows of delta[r][c] in[r][k];
             * this thread: c = rg + RSTEP i, k = cg + TC j */
            {
                float acc[TR][TC];
#pragma unroll
                for (int i = 0; i < TR; i++)
#pragma unroll
                    for (int j = 0; j < TC; j++)
                        acc[i][j] = 0.0f;
                for (int r = 0; r < rows; r++) {
                    float a[TR], b[TC];
#pragma unroll
                    for (int i = 0; i < TR; i++)
                        a[i] = delta[r * S + rg + RSTEP * i];
#pragma unroll
                    for (int j = 0; j < TC; j++)
                        b[j] = inb[r * S + cg + TC * j];
#pragma unroll
                    for (int i = 0; i < TR; i++)
#pragma unroll
                        for (int j = 0; j < TC; j++)
                            acc[i][j] += a[i] * b[j];
                }
                float *sl = slot + m.layer_offset[l];
#pragma unroll
                for (int i = 0; i < TR; i++) {
                    const int c = rg + RSTEP * i;
#pragma unroll
                    for (int j = 0; j < TC; j++) {
                        const int k = cg + TC * j;
                        if (c >= lr || k >= lc) continue;
                        float *q = sl + c * lc + k; /* this thread's own word of the slot */
                        *q = first ? acc[i][j] : *q + acc[i][j];
                    }
                }
            }
            /* (b) the delta below: d in[r][k] = sum_c delta[r][c] W_l[c][k], times ReLU'(in) for
             * a hidden input; for layer 0 it is d_x. this thread: r = rg + RSTEP i, k = cg + TC j.
             * The condition is the same for the whole block (the barrier inside is safe). */
            if (l > 0 || d_x != NULL) {
                float acc[TR][TC];
#pragma unroll
                for (int i = 0; i < TR; i++)
#pragma unroll
                    for (int j = 0; j < TC; j++)
                        acc[i][j] = 0.0f;
#pragma unroll 4
                for (int c = 0; c < lr; c++) {
                    float a[TR], b[TC];
#pragma unroll
                    for (int i = 0; i < TR; i++)
                        a[i] = delta[(rg + RSTEP * i) * S + c];
#pragma unroll
                    for (int j = 0; j < TC; j++)
                        b[j] = ws[c * W + cg + TC * j];
#pragma unroll
                    for (int i = 0; i < TR; i++)
#pragma unroll
                        for (int j = 0; j < TC; j++)
                            acc[i][j] += a[i] * b[j];
                }
                if (l > 0) { /* ReLU' from the stored activation, read before the barrier */
#pragma unroll
                    for (int i = 0; i < TR; i++)
#pragma unroll
                        for (int j = 0; j < TC; j++)
                            if (!(inb[(rg + RSTEP * i) * S + cg + TC * j] > 0.0f)) acc[i][j] = 0.0f;
                }
                __syncthreads(); /* every read of delta, inb and ws for this layer is done */
#pragma unroll
                for (int i = 0; i < TR; i++) {
                    const int r = rg + RSTEP * i;
#pragma unroll
                    for (int j = 0; j < TC; j++) {
                        const int k = cg + TC * j;
                        if (l > 0) {
                            delta[r * S + k] = acc[i][j];
                        } else if (r < rows && k < n_in) {
                            d_x[(r0 + r) * ld_dx + k] = acc[i][j];
                        }
                    }
                }
            }
        }
    }
}

/* d_w[i] += sum over the slots b = 0 .. parts - 1 of part[b n_weights + i], in that order. */
static __global__ void mlp_reduce_f32_kernel(float *__restrict__ d_w,
                                             const float *__restrict__ part,
                                             int64_t parts,
                                             int64_t n_weights) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_weights;
         i += (int64_t)gridDim.x * blockDim.x) {
        float acc = 0.0f;
        for (int64_t b = 0; b < parts; b++)
            acc += part[b * n_weights + i];
        d_w[i] += acc;
    }
}

/* ---- launchers ------------------------------------------------------------------------------- */

/* The shapes the fused kernels cover, the stream, n and the leading dimensions. */
static int check_mlp(const char *fn,
                     const nerf_mlp *m,
                     eng_stream *s,
                     int64_t n,
                     const char *ld_name_a,
                     int64_t ld_a,
                     int64_t cols_a,
                     const char *ld_name_b,
                     int64_t ld_b,
                     int64_t cols_b,
                     cudaStream_t *stream,
                     eng_err *err) {
    int rc;
    ENG_ASSERT(m != NULL);
    if ((rc = eng_cuda_stream_get(stream, fn, s, err)) != ENG_OK) return rc;
    if (m->width != W || m->n_input < 1 || m->n_input > W || m->n_output < 1 || m->n_output > W) {
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "%s: MLP %lld -> %lld (width %lld), the fused kernel needs width %d and "
                           "1..%d inputs and outputs",
                           fn, (long long)m->n_input, (long long)m->n_output, (long long)m->width,
                           W, W);
    }
    if (m->n_hidden_layers < 1 || m->n_hidden_layers > NERF_MLP_MAX_HIDDEN ||
        (unsigned)m->output_act >= NERF_ACT_COUNT) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: %d hidden layers (1..%d), output activation %d (0..%d)",
            fn, m->n_hidden_layers, NERF_MLP_MAX_HIDDEN, (int)m->output_act, NERF_ACT_COUNT - 1);
    }
    if (n < 0 || n / R > 0x7fffffffLL) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n = %lld rows, expected 0..2^37", fn,
                           (long long)n);
    }
    if (ld_name_a != NULL && ld_a < cols_a) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s = %lld, expected >= %lld columns", fn,
                           ld_name_a, (long long)ld_a, (long long)cols_a);
    }
    if (ld_name_b != NULL && ld_b < cols_b) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s = %lld, expected >= %lld columns", fn,
                           ld_name_b, (long long)ld_b, (long long)cols_b);
    }
    return ENG_OK;
}

int nerf_cuda_mlp_fwd(const nerf_mlp *m,
                      eng_stream *s,
                      float *y,
                      int64_t ldy,
                      const float *x,
                      int64_t ldx,
                      int64_t n,
                      const float *w,
                      float *scratch,
                      eng_err *err) {
    cudaStream_t st;
    int rc;
    ENG_ASSERT(m != NULL);
    if ((rc = check_mlp(__func__, m, s, n, "ldx", ldx, m->n_input, "ldy", ldy, m->n_output, &st,
                        err)) != ENG_OK)
        return rc;
    if ((rc = eng_cuda_check_1d(__func__, n, "y", y, "x", x, "w", w, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    float *hidden = scratch, *pre = NULL;
    if (scratch != NULL) pre = scratch + n * m->n_hidden_layers * W;
    const unsigned tiles = (unsigned)ENG_CEIL_DIV(n, (int64_t)R);
    mlp_fwd_f32_kernel<<<tiles, THREADS, 0, st>>>(*m, y, ldy, x, ldx, n, w, hidden, pre);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

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
                      eng_err *err) {
    cudaStream_t st;
    int rc;
    ENG_ASSERT(m != NULL);
    if ((rc = check_mlp(__func__, m, s, n, "ldx", ldx, m->n_input, "ld_dy", ld_dy, m->n_output, &st,
                        err)) != ENG_OK)
        return rc;
    if (d_x != NULL && ld_dx < m->n_input) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: ld_dx = %lld, expected >= %lld columns",
                           __func__, (long long)ld_dx, (long long)m->n_input);
    }
    if ((rc = eng_cuda_check_1d(__func__, n, "d_w", d_w, "x", x, "d_y", d_y, err)) != ENG_OK ||
        (rc = eng_cuda_check_1d(__func__, n, "w", w, "scratch", scratch, NULL, NULL, err)) !=
            ENG_OK)
        return rc;
    if (n == 0) return ENG_OK;
    const int64_t H = m->n_hidden_layers, tiles = ENG_CEIL_DIV(n, (int64_t)R);
    const int64_t parts = ENG_MIN(tiles, (int64_t)NERF_CUDA_MLP_PARTS);
    const float *hidden = scratch, *pre = scratch + n * H * W;
    float *part = scratch + n * (H * W + m->n_output);
    /* more than the default 48 KiB of shared memory: every sm_70+ device allows it on request */
    ENG_CUDA_TRY(cudaFuncSetAttribute(mlp_bwd_f32_kernel,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, (int)BWD_SMEM),
                 err);
    mlp_bwd_f32_kernel<<<(unsigned)parts, THREADS, BWD_SMEM, st>>>(*m, part, d_x, ld_dx, x, ldx,
                                                                   d_y, ld_dy, n, w, hidden, pre);
    ENG_CUDA_LAUNCH_CHECK(err);
    mlp_reduce_f32_kernel<<<eng_cuda_grid_1d(m->n_weights, REDUCE_BLOCK, REDUCE_MAX_BLOCKS),
                            REDUCE_BLOCK, 0, st>>>(d_w, part, parts, m->n_weights);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}
