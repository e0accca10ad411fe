/* eng_kernels.h: the kernel interface of the neural-network ops: one argument struct per op
 * family, shared by the CPU twins (eng_cpu_<op>, engine/eng_ops_*.c) and the device kernels
 * (eng_cuda_<op>, cuda/<op>.cu), which all have the signature
 *
 *     int eng_<backend>_<op>(eng_stream *s, const eng_<op>_args *a, eng_err *err);
 *
 * so a backend's table entry, the CPU twin and a test can call either with the same arguments.
 * The tensor-level ops in eng_ops.h check shapes and dtypes, fill these structs and dispatch.
 *
 * Conventions for every struct:
 *  - `dtype` is the storage type of every activation pointer (x, y, q, ...) and of the weights
 *    (w, bias, gamma, beta) unless a field says otherwise. CPU twins take ENG_DTYPE_F32 only;
 *    CUDA kernels take f32, f16 and bf16. Arithmetic accumulates in f32.
 *  - Counts and strides are in elements (int64_t); pointers are device pointers on a device.
 *  - Activations are NHWC: image tensors are (N, H, W, C) with C fastest; token tensors are
 *    (N, L, C). Convolution weights are OHWI: (O, KH, KW, C) (cuDNN's KRSC, so one layout serves
 *    the CPU GEMM and cuDNN's tensor-core NHWC kernels; loaders permute PyTorch's OIHW once).
 *  - Ops that need a workspace (im2col on the CPU, cuDNN/cuBLASLt on CUDA) take it from
 *    s->arena with eng_arena_mark/eng_arena_rewind, so it is given back when the op returns.
 * Threads: kernels on one stream are called from one thread at a time. */
#ifndef ENG_KERNELS_H
#define ENG_KERNELS_H

#include <stdint.h>

#include "eng_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pointwise activations. GELU is the exact erf form; GELU_TANH the tanh approximation;
 * QUICK_GELU is x * sigmoid(1.702 x) (CLIP). */
typedef enum eng_act {
    ENG_ACT_NONE,
    ENG_ACT_SILU,
    ENG_ACT_GELU,
    ENG_ACT_GELU_TANH,
    ENG_ACT_QUICK_GELU,
    ENG_ACT_COUNT
} eng_act;

typedef enum eng_binop { ENG_BINOP_ADD, ENG_BINOP_SUB, ENG_BINOP_MUL, ENG_BINOP_COUNT } eng_binop;

const char *eng_act_name(eng_act act);    /* "none", "silu", "gelu", "gelu_tanh", "quick_gelu" */
const char *eng_binop_name(eng_binop op); /* "add", "sub", "mul" */

/* y[i] = act(alpha * x[i] + beta), i < n; y may equal x. (scale: act = NONE) */
typedef struct eng_unary_args {
    eng_dtype dtype;
    void *y;
    const void *x;
    int64_t n;
    eng_act act;
    float alpha, beta;
} eng_unary_args;

/* y[i0,i1,i2,i3] = a[...] op b[...] over y's shape (contiguous y); a and b are read through
 * their own element strides, 0 along broadcast dimensions (numpy broadcasting). */
typedef struct eng_binary_args {
    eng_dtype dtype;
    eng_binop op;
    void *y;
    const void *a, *b;
    int64_t shape[4]; /* y's shape, padded with leading 1s */
    int64_t a_stride[4], b_stride[4];
} eng_binary_args;

/* y (rows, d) = x[:, :d] * gelu(x[:, d:]) with x (rows, 2d): diffusers' GEGLU after its
 * projection (hidden, gate = proj(x).chunk(2, -1); hidden * gelu(gate)), exact erf GELU. */
typedef struct eng_geglu_args {
    eng_dtype dtype;
    void *y;
    const void *x;
    int64_t rows, d;
} eng_geglu_args;

/* y = x elementwise over a 4-D shape with arbitrary element strides on both sides: contiguous
 * copies of permuted or sliced views, and concatenation (copy each part into a slice of y). */
typedef struct eng_copy_args {
    eng_dtype dtype;
    void *y;
    const void *x;
    int64_t shape[4];
    int64_t y_stride[4], x_stride[4];
} eng_copy_args;

/* Nearest-neighbour 2x upsampling, NHWC: y (n, 2h, 2w, c)[i, y, x, :] = x[i, y/2, x/2, :]. */
typedef struct eng_upsample_args {
    eng_dtype dtype;
    void *y;
    const void *x;
    int64_t n, h, w, c;
} eng_upsample_args;

/* Sinusoidal timestep embedding (diffusers get_timestep_embedding): t (n) f32 always,
 * y (n, dim) in dtype. half = dim / 2, freq_j = exp(-ln(max_period) j / (half - shift)),
 * y = [sin(t freq), cos(t freq)] or [cos, sin] when flip_sin_to_cos; odd dim: a zero column. */
typedef struct eng_temb_args {
    eng_dtype dtype;
    void *y;
    const float *t;
    int64_t n, dim;
    int flip_sin_to_cos;
    float freq_shift; /* downscale_freq_shift: 0 for SD 1.x/2.x UNets (diffusers default 1) */
    float max_period; /* 10000 */
} eng_temb_args;

/* GroupNorm over NHWC x (n, hw, c): per sample and group of c / groups channels, normalise over
 * hw x (c / groups) values, then y = act(xhat * gamma[c] + beta[c]) with act NONE or SILU. */
typedef struct eng_groupnorm_args {
    eng_dtype dtype;
    void *y;
    const void *x;
    const void *gamma, *beta; /* (c), may be NULL (1 and 0) */
    int64_t n, hw, c, groups;
    float eps;
    eng_act act;
} eng_groupnorm_args;

/* LayerNorm over the last dimension: x (rows, c), y = xhat * gamma + beta. */
typedef struct eng_layernorm_args {
    eng_dtype dtype;
    void *y;
    const void *x;
    const void *gamma, *beta; /* (c), may be NULL */
    int64_t rows, c;
    float eps;
} eng_layernorm_args;

/* Softmax over the last dimension of (rows, c): y = softmax(scale * x). y may equal x. */
typedef struct eng_softmax_args {
    eng_dtype dtype;
    void *y;
    const void *x;
    int64_t rows, c;
    float scale;
} eng_softmax_args;

/* Batched GEMM with a fused epilogue, row-major:
 *   C[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * C[b] + bias)
 * op(A) is (m, k): A is (m, k) with row stride lda, or (k, m) when trans_a. op(B) is (k, n):
 * B is (k, n) or (n, k) when trans_b (nn.Linear: y = x W^T + b is trans_b = 1). Batch b of a
 * matrix starts at base + b * batch_stride (0: shared by every batch). bias (n) may be NULL.
 * act: any eng_act; cuBLASLt fuses the bias and GELU_TANH, the others take one pass over C. */
typedef struct eng_gemm_args {
    eng_dtype dtype;
    int trans_a, trans_b;
    int64_t m, n, k, batch;
    float alpha, beta;
    const void *a;
    int64_t lda, batch_stride_a;
    const void *b;
    int64_t ldb, batch_stride_b;
    void *c;
    int64_t ldc, batch_stride_c;
    const void *bias;
    eng_act act;
} eng_gemm_args;

/* 2-D convolution, NHWC x (n, h, w, c), OHWI weights w (o, kh, kw, c), bias (o) or NULL,
 * y (n, ho, wo, o) with ho = (h + 2 pad - kh) / stride + 1 (likewise wo). Cross-correlation as
 * in PyTorch; zero padding. */
typedef struct eng_conv2d_args {
    eng_dtype dtype;
    void *y;
    const void *x, *w, *bias;
    int64_t n, h, w_in, c, o, kh, kw, stride, pad, ho, wo;
} eng_conv2d_args;

/* Scaled dot-product attention, per batch b and head h:
 *   O = softmax(scale * Q K^T [+ causal mask]) V,  Q (lq, d), K and V (lk, d), O (lq, d)
 * Tensors are indexed (b, l, h, d) with d contiguous and element strides for b, l and h given
 * per tensor (so (B, L, H*D) projections and fused-QKV slices need no copy). causal: key j is
 * masked for query i when j > i + (lk - lq) (CLIP's mask when lq == lk). A query that sees no key
 * (causal with lq > lk: queries i < lq - lk) gets O = 0 (PyTorch gives NaN). */
typedef struct eng_attention_args {
    eng_dtype dtype;
    void *o;
    const void *q, *k, *v;
    int64_t batch, heads, lq, lk, d;
    int64_t q_stride[3], k_stride[3], v_stride[3], o_stride[3]; /* b, l, h */
    float scale;
    int causal;
} eng_attention_args;

#ifdef __cplusplus
}
#endif
#endif /* ENG_KERNELS_H */
