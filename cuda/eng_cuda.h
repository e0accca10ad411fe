/* eng_cuda.h: the CUDA backend: device discovery, the backend table the engine adopts (blocks for
 * the allocator, streams, copies, kernels), and the kernel launchers.
 *
 *   int count = 0; eng_err err;
 *   if (eng_cuda_device_count(&count, &err) != ENG_OK || count == 0) { ... run on the CPU ... }
 *   if (eng_cuda_attach(ctx, 0, 8ull << 30, &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
 *   // or, without a context:
 *   eng_backend *b = NULL;
 *   eng_cuda_backend_create(&b, 0, &err);
 *   eng_stream s; b->stream_create(b->impl, &s, 0, &err);
 *   eng_cuda_fill_normal_f32(&s, d_noise, n, seed, 0, &err);   // d_noise: device memory
 *   b->stream_destroy(b->impl, &s); eng_cuda_backend_destroy(b);
 *
 * Devices: "no device" is not an error. Without a driver or a GPU, eng_cuda_device_count gives 0
 * and ENG_OK; only a driver that is present but failing gives ENG_E_DEVICE.
 *
 * Backend (engine/eng_backend.h): blocks are plain cudaMalloc (never managed memory), taken by
 * the allocator only; streams are non-blocking, one per job, with the engine's priority (higher
 * = more urgent) mapped onto the device's range; copies are cudaMemcpyAsync on the stream, and a
 * device-to-host copy waits for the stream before it returns so the host can read the data (a
 * host-to-device copy from pinned memory may still be reading its source when it returns).
 * Every entry first makes the backend's device current on the calling thread.
 *
 * Launchers: eng_cuda_<op> has the signature of the CPU twin eng_cpu_<op> (engine/eng_ops.h) and
 * computes the same bits (tests/test_cuda_ops.c). Pointers are device memory; the work is queued
 * on `s` (NULL: the legacy default stream) and the call returns before it runs. They return
 * ENG_E_INVALID_ARG for n < 0, a NULL buffer with n > 0 or a stream of another device, and
 * ENG_E_DEVICE when the launch fails; n == 0 does nothing. The calling thread's current device
 * must be the stream's (true after any backend entry on the same thread; single-GPU today).
 * With ENG_CUDA_SYNC_CHECK=ON each launcher also waits for the device, so an asynchronous fault
 * is reported by the launcher that caused it.
 *
 * Built without CUDA (ENG_HAVE_CUDA undefined) this header still compiles: the device count is
 * 0, eng_cuda_attach returns ENG_E_UNSUPPORTED, eng_cuda_describe says so; nothing else exists.
 * Ownership: eng_cuda_backend_create's backend is the caller's until eng_cuda_attach or
 * eng_ctx_attach_backend adopts it. Threads: discovery and launchers are safe from any thread;
 * one stream is used by one job at a time. */
#ifndef ENG_CUDA_H
#define ENG_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eng_backend.h"
#include "eng_ctx.h"
#include "eng_dtype.h"
#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef ENG_HAVE_CUDA

/* ---- devices ------------------------------------------------------------------------------- */
/* *out = the number of CUDA devices; 0 with ENG_OK when there is no driver or no device.
 * Errors: ENG_E_DEVICE (the driver is there but failed, e.g. a driver/runtime mismatch). */
int eng_cuda_device_count(int *out, eng_err *err);
/* Fills *out for device `index` (0-based): name, SMs, compute capability, total and free bytes
 * (free now; this creates the device's primary context), driver and runtime versions.
 * Errors: ENG_E_INVALID_ARG (index out of range, named), ENG_E_DEVICE. */
int eng_cuda_device_info(int index, eng_device_info *out, eng_err *err);
/* One line per device into buf (NUL-terminated, truncated to n), e.g.
 * "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB), driver 13.0, runtime 13.0",
 * or "no CUDA device (reason)". Returns buf. */
char *eng_cuda_describe(char *buf, size_t n);

/* ---- backend ------------------------------------------------------------------------------- */
/* Creates the backend of device `device_index`: info filled, every entry of eng_backend and its
 * op table set. The caller owns *out until a context adopts it; free with
 * eng_cuda_backend_destroy. Errors: ENG_E_INVALID_ARG (no such device), ENG_E_DEVICE, ENG_E_OOM. */
int eng_cuda_backend_create(eng_backend **out, int device_index, eng_err *err);
/* Frees a backend that no context adopted (streams must be destroyed first). NULL is a no-op. */
void eng_cuda_backend_destroy(eng_backend *b);
/* Creates the backend of device `device_index` and attaches it to ctx with a device-memory
 * budget of `budget_bytes` (0 = none); the context owns it from then on.
 * Errors: those of eng_cuda_backend_create and eng_ctx_attach_backend. */
int eng_cuda_attach(eng_ctx *ctx, int device_index, uint64_t budget_bytes, eng_err *err);

/* ---- kernels (twins in engine/eng_ops.h) ---------------------------------------------------- */
/* y = a + b, n elements (y may alias a or b). f16: each element rounded once from f32. */
int eng_cuda_add_f32(
    eng_stream *s, float *y, const float *a, const float *b, int64_t n, eng_err *err);
int eng_cuda_add_f16(
    eng_stream *s, eng_f16 *y, const eng_f16 *a, const eng_f16 *b, int64_t n, eng_err *err);
/* y[i] = eng_philox_uniform_at / eng_philox_normal_at(seed, offset, i), i in [0, n). */
int eng_cuda_fill_uniform_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err);
int eng_cuda_fill_normal_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err);

/* ---- GEMM and convolution (cuda/gemm.cu, cuda/conv.cu; twins eng_cpu_gemm, eng_cpu_conv2d) -- */
/* C[b] = act(alpha op(A[b]) op(B[b]) + beta C[b] + bias), row-major, as eng_gemm_args says
 * (engine/eng_kernels.h), on cuBLASLt: f32 (no TF32), f16, bf16, f32 accumulation. The bias, and
 * GELU_TANH for f16/bf16, are fused into cuBLASLt's epilogue; GELU (erf), SILU, QUICK_GELU (and
 * f32's GELU_TANH) take one extra pass over C. The algorithm is chosen once per shape (per
 * device, cached); the workspace (<= 32 MiB) comes from s->arena (none without one). `s` must
 * be a stream of the CUDA backend (s->impl holds the cuBLASLt handle).
 * Errors: ENG_E_INVALID_ARG (arguments, named), ENG_E_UNSUPPORTED (dtype; no algorithm for the
 * shape), ENG_E_OOM (workspace), ENG_E_DEVICE (cuBLASLt's status name). */
int eng_cuda_gemm(eng_stream *s, const eng_gemm_args *a, eng_err *err);
/* y = conv2d(x, w) + bias, NHWC activations and OHWI (cuDNN's KRSC) weights, as eng_conv2d_args
 * says, on cuDNN: f32 (FMA math, no TF32), f16 and bf16 on tensor cores, f32 accumulation. The
 * algorithm is chosen once per shape and cached (cudnnFind on the first call when the stream is
 * not capturing a graph, else cuDNN's heuristic); its workspace comes from s->arena (algorithms
 * without one when s->arena is NULL). The bias is one pass over y (f32 math, one rounding).
 * Shapes cuDNN has no algorithm for, tensors over 2^31 elements and builds without cuDNN run
 * eng_cuda_conv2d_im2col instead. `s` must be a stream of the CUDA backend.
 * Errors as eng_cuda_gemm, with cuDNN's status text. */
int eng_cuda_conv2d(eng_stream *s, const eng_conv2d_args *a, eng_err *err);
/* The same convolution as im2col tiles (<= 64 MiB of s->arena) and cuBLASLt GEMMs with the bias
 * fused (a 1x1 stride-1 unpadded one is a single GEMM on x, no workspace). Anything else without
 * an arena is ENG_E_INVALID_ARG. */
int eng_cuda_conv2d_im2col(eng_stream *s, const eng_conv2d_args *a, eng_err *err);

/* ---- attention (cuda/attention.cu; twin eng_cpu_attention) ---------------------------------- */
/* Scaled dot-product attention as eng_attention_args says (engine/eng_kernels.h), f32, f16 or
 * bf16 with f32 accumulation. f16/bf16 with d % 8 == 0, d <= 160, 16-byte aligned pointers and
 * b/l/h strides that are multiples of 8 run our flash-attention kernel on tensor cores (sm_80+;
 * d padded to 48, 64, 80, 128 or 160); everything else (f32 always) runs a simple f32 kernel,
 * one warp per query, d <= 1024. A query with no visible key (causal, lq > lk) gets 0.
 * Errors: ENG_E_UNSUPPORTED (dtype; d > 1024 off the flash path; lq or lk > 2^30),
 * ENG_E_INVALID_ARG (negative sizes, d < 1, lk = 0 with queries, NULL pointers, a CPU stream),
 * ENG_E_DEVICE. batch, heads or lq = 0 does nothing. */
int eng_cuda_attention(eng_stream *s, const eng_attention_args *a, eng_err *err);

/* ---- elementwise and normalisation (cuda/elementwise.cu, cuda/norm.cu) ---------------------- */
/* The twins eng_cpu_unary ... eng_cpu_softmax (engine/eng_ops.h), arguments as eng_kernels.h
 * says, in f32, f16 and bf16: loads convert to f32, the math is the twins' (eng_act_math.h) in
 * f32, each output is rounded once. Copies and upsampling move bits unchanged. GroupNorm runs
 * three kernels (partial sums over row blocks of all channels, per-group statistics, normalise)
 * with a workspace from s->arena; without an arena (or C > 4096) one block per (sample, group).
 * Errors: ENG_E_UNSUPPORTED (dtype), ENG_E_INVALID_ARG (negative sizes, NULL pointers with work
 * to do, a CPU stream, groups not dividing c, an activation out of range), ENG_E_OOM (GroupNorm's
 * workspace), ENG_E_DEVICE. */
int eng_cuda_unary(eng_stream *s, const eng_unary_args *a, eng_err *err);
int eng_cuda_binary(eng_stream *s, const eng_binary_args *a, eng_err *err);
int eng_cuda_geglu(eng_stream *s, const eng_geglu_args *a, eng_err *err);
int eng_cuda_copy(eng_stream *s, const eng_copy_args *a, eng_err *err);
int eng_cuda_upsample(eng_stream *s, const eng_upsample_args *a, eng_err *err);
int eng_cuda_temb(eng_stream *s, const eng_temb_args *a, eng_err *err);
int eng_cuda_groupnorm(eng_stream *s, const eng_groupnorm_args *a, eng_err *err);
int eng_cuda_layernorm(eng_stream *s, const eng_layernorm_args *a, eng_err *err);
int eng_cuda_softmax(eng_stream *s, const eng_softmax_args *a, eng_err *err);

#else /* built without CUDA: the few entries a caller probes, as fallbacks */

static inline int eng_cuda_device_count(int *out, eng_err *err) {
    (void)err;
    if (out != NULL) *out = 0;
    return ENG_OK;
}

static inline int
eng_cuda_attach(eng_ctx *ctx, int device_index, uint64_t budget_bytes, eng_err *err) {
    (void)ctx;
    (void)budget_bytes;
    return eng_err_set(err, ENG_E_UNSUPPORTED, "eng_cuda_attach: cuda:%d: built without CUDA",
                       device_index);
}

static inline char *eng_cuda_describe(char *buf, size_t n) {
    if (buf != NULL && n > 0) snprintf(buf, n, "no CUDA device (built without CUDA)");
    return buf;
}

#endif /* ENG_HAVE_CUDA */

#ifdef __cplusplus
}
#endif
#endif /* ENG_CUDA_H */
