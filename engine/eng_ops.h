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

/* ---- CPU twins (the spec) ------------------------------------------------------------------- */
int eng_cpu_add_f32(
    eng_stream *s, float *y, const float *a, const float *b, int64_t n, eng_err *err);
int eng_cpu_add_f16(
    eng_stream *s, eng_f16 *y, const eng_f16 *a, const eng_f16 *b, int64_t n, eng_err *err);
int eng_cpu_fill_uniform_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err);
int eng_cpu_fill_normal_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err);
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
