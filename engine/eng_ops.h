/* eng_ops.h: operations on tensors, dispatched on the tensor's device, and their CPU twins.
 *
 *   eng_op_add(ctx, stream, &y, &a, &b, &err);            // y = a + b, any device
 *   eng_op_fill_normal(ctx, stream, &noise, seed, 0, &err); // Philox normals, same on CPU and CUDA
 *
 * eng_op_* check dtypes, shapes and devices (a mismatch is ENG_E_INVALID_ARG naming both
 * tensors), then call the CPU twin or the backend's kernel; stream NULL means the context's
 * default stream for that device. The CPU twins eng_cpu_* are the specification: plain loops with
 * f32 accumulation, split over the stream's pool; the CUDA kernels (cuda/eng_cuda.h) have the same
 * signatures and are tested against them.
 * Threads: ops on one stream must come from one thread at a time. */
#ifndef ENG_OPS_H
#define ENG_OPS_H

#include <stdint.h>

#include "eng_backend.h"
#include "eng_ctx.h"
#include "eng_kernels.h"
#include "eng_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ops ----------------------------------------------------------------------------------- */
/* y = a + b elementwise; all three contiguous, same shape, same dtype (f32 or f16), same device.
 * y may alias a or b. */
int eng_op_add(eng_ctx *ctx,
               eng_stream *s,
               eng_tensor *y,
               const eng_tensor *a,
               const eng_tensor *b,
               eng_err *err);
/* y (f32, contiguous) = uniform [0, 1) / standard normal from Philox4x32-10 with `seed`; `offset`
 * selects an independent stream of numbers for the same seed (see eng_rng.h for the layout). */
int eng_op_fill_uniform(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, uint64_t seed, uint64_t offset, eng_err *err);
int eng_op_fill_normal(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, uint64_t seed, uint64_t offset, eng_err *err);
/* C = alpha * op(A) @ op(B) + beta * C, 2-D f32 row-major, op = transpose when trans_* != 0.
 * A: (M, K) or (K, M) if trans_a; B: (K, N) or (N, K) if trans_b; C: (M, N). CPU: OpenBLAS,
 * split by rows of C over the pool. CUDA: a later issue (ENG_E_UNSUPPORTED for now). */
int eng_op_gemm(eng_ctx *ctx,
                eng_stream *s,
                eng_tensor *c,
                const eng_tensor *a,
                const eng_tensor *b,
                int trans_a,
                int trans_b,
                float alpha,
                float beta,
                eng_err *err);
/* y = x converted between f32, f16 and bf16 (same shape, contiguous, same device). */
int eng_op_convert(eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, eng_err *err);
/* dst = src across devices (same dtype and shape, both contiguous). Synchronous. */
int eng_op_copy(eng_ctx *ctx, eng_tensor *dst, const eng_tensor *src, eng_err *err);

/* ---- neural-network ops (tensor level) ------------------------------------------------------
 * Layout is NHWC throughout (eng_kernels.h says why); every op checks shapes, dtypes and devices
 * and names the offending tensors. CPU: f32. CUDA: f32, f16, bf16 (f32 accumulation). Unless
 * said otherwise, tensors must be contiguous and y must not alias an input. */

/* y = act(alpha * x + beta), same shape (y may be x). act NONE gives a scale. */
int eng_op_unary(eng_ctx *ctx,
                 eng_stream *s,
                 eng_tensor *y,
                 const eng_tensor *x,
                 eng_act act,
                 float alpha,
                 float beta,
                 eng_err *err);
/* y = a op b with numpy broadcasting of a and b to y's shape (a, b may be views). */
int eng_op_binary(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *y,
                  const eng_tensor *a,
                  const eng_tensor *b,
                  eng_binop op,
                  eng_err *err);
/* x (..., 2D) -> y (..., D): y = x[..., :D] * gelu(x[..., D:]). */
int eng_op_geglu(eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, eng_err *err);
/* y (contiguous) = x (any strides, same shape): materialises permuted or sliced views. */
int eng_op_contiguous(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, eng_err *err);
/* y = concat(a, b) along `dim` (the other dimensions equal). */
int eng_op_concat(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *y,
                  const eng_tensor *a,
                  const eng_tensor *b,
                  int dim,
                  eng_err *err);
/* Nearest 2x upsampling: x (N, H, W, C) -> y (N, 2H, 2W, C). */
int eng_op_upsample_nearest2x(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, eng_err *err);
/* Sinusoidal timestep embedding: t (N) f32 -> y (N, dim) (eng_temb_args). */
int eng_op_timestep_embedding(eng_ctx *ctx,
                              eng_stream *s,
                              eng_tensor *y,
                              const eng_tensor *t,
                              int flip_sin_to_cos,
                              float freq_shift,
                              float max_period,
                              eng_err *err);
/* GroupNorm (+ fused SiLU when act == ENG_ACT_SILU) over x (N, H, W, C) or (N, L, C);
 * gamma, beta (C) or NULL. */
int eng_op_groupnorm(eng_ctx *ctx,
                     eng_stream *s,
                     eng_tensor *y,
                     const eng_tensor *x,
                     const eng_tensor *gamma,
                     const eng_tensor *beta,
                     int64_t groups,
                     float eps,
                     eng_act act,
                     eng_err *err);
/* LayerNorm over the last dimension; gamma, beta (C) or NULL. */
int eng_op_layernorm(eng_ctx *ctx,
                     eng_stream *s,
                     eng_tensor *y,
                     const eng_tensor *x,
                     const eng_tensor *gamma,
                     const eng_tensor *beta,
                     float eps,
                     eng_err *err);
/* Softmax over the last dimension of scale * x (y may be x). */
int eng_op_softmax(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, float scale, eng_err *err);
/* nn.Linear: x (..., K), w (N, K), bias (N) or NULL -> y (..., N) = act(x w^T + bias); act: any
 * eng_act (fused into the GEMM epilogue where the backend can). */
int eng_op_linear(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *y,
                  const eng_tensor *x,
                  const eng_tensor *w,
                  const eng_tensor *bias,
                  eng_act act,
                  eng_err *err);
/* c = alpha op(a) op(b) + beta c, 2-D or batched 3-D (batch first; a batch of 1 broadcasts);
 * rows may be padded (row stride >= width). */
int eng_op_matmul(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *c,
                  const eng_tensor *a,
                  const eng_tensor *b,
                  int trans_a,
                  int trans_b,
                  float alpha,
                  float beta,
                  eng_err *err);
/* 2-D convolution: x (N, H, W, C), w (O, KH, KW, C), bias (O) or NULL -> y (N, HO, WO, O). */
int eng_op_conv2d(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *y,
                  const eng_tensor *x,
                  const eng_tensor *w,
                  const eng_tensor *bias,
                  int64_t stride,
                  int64_t pad,
                  eng_err *err);
/* Scaled dot-product attention: q (B, Lq, H, D), k and v (B, Lk, H, D) -> o (B, Lq, H, D);
 * the last dimension contiguous, other strides free (views of fused projections work). */
int eng_op_attention(eng_ctx *ctx,
                     eng_stream *s,
                     eng_tensor *o,
                     const eng_tensor *q,
                     const eng_tensor *k,
                     const eng_tensor *v,
                     float scale,
                     int causal,
                     eng_err *err);

/* ---- CPU twins (the spec) ------------------------------------------------------------------- */
int eng_cpu_add_f32(
    eng_stream *s, float *y, const float *a, const float *b, int64_t n, eng_err *err);
int eng_cpu_add_f16(
    eng_stream *s, eng_f16 *y, const eng_f16 *a, const eng_f16 *b, int64_t n, eng_err *err);
int eng_cpu_fill_uniform_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err);
int eng_cpu_fill_normal_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err);
/* The neural-network twins (eng_kernels.h): f32 only, split over s->pool. */
int eng_cpu_unary(eng_stream *s, const eng_unary_args *a, eng_err *err);
int eng_cpu_binary(eng_stream *s, const eng_binary_args *a, eng_err *err);
int eng_cpu_geglu(eng_stream *s, const eng_geglu_args *a, eng_err *err);
int eng_cpu_copy(eng_stream *s, const eng_copy_args *a, eng_err *err);
int eng_cpu_upsample(eng_stream *s, const eng_upsample_args *a, eng_err *err);
int eng_cpu_temb(eng_stream *s, const eng_temb_args *a, eng_err *err);
int eng_cpu_groupnorm(eng_stream *s, const eng_groupnorm_args *a, eng_err *err);
int eng_cpu_layernorm(eng_stream *s, const eng_layernorm_args *a, eng_err *err);
int eng_cpu_softmax(eng_stream *s, const eng_softmax_args *a, eng_err *err);
int eng_cpu_gemm(eng_stream *s, const eng_gemm_args *a, eng_err *err);
int eng_cpu_conv2d(eng_stream *s, const eng_conv2d_args *a, eng_err *err);
int eng_cpu_attention(eng_stream *s, const eng_attention_args *a, eng_err *err);
/* Row-major sgemm with leading dimensions (elements); shapes as eng_op_gemm. */
int eng_cpu_gemm_f32(eng_stream *s,
                     int trans_a,
                     int trans_b,
                     int64_t m,
                     int64_t n,
                     int64_t k,
                     float alpha,
                     const float *a,
                     int64_t lda,
                     const float *b,
                     int64_t ldb,
                     float beta,
                     float *c,
                     int64_t ldc,
                     eng_err *err);
/* "OpenBLAS 0.3.21 (sequential, Haswell)": what the CPU GEMM runs on. */
const char *eng_cpu_blas_describe(void);

#ifdef __cplusplus
}
#endif
#endif /* ENG_OPS_H */
