/* conv.cu: 2-D convolution on cuDNN (twin: eng_cpu_conv2d in engine/eng_ops_conv.c).
 *
 *   x (N, H, W, C) NHWC, w (O, KH, KW, C) OHWI, bias (O) or NULL -> y (N, HO, WO, O)
 *
 * cuDNN 9 still ships the legacy convolution API (deprecated, not removed; the deprecation
 * warnings are only on with CUDNN_WARN_DEPRECATED), which is all this needs: NHWC tensor
 * descriptors (CUDNN_TENSOR_NHWC) and an NHWC filter descriptor, whose layout KRSC is our OHWI,
 * so no tensor is ever transposed. Math: f16/bf16 with CUDNN_TENSOR_OP_MATH (tensor cores, f32
 * accumulation: the convolution's compute type is CUDNN_DATA_FLOAT); f32 with CUDNN_FMA_MATH, so
 * no TF32 and the result matches the CPU twin to f32 rounding.
 *
 * Algorithm: chosen once per (dtype, shape, pointer alignments, workspace limit) and cached in
 * the per-device state impl->conv with its descriptors. The first call of a shape times the
 * algorithms on the real tensors (cudnnFindConvolutionForwardAlgorithmEx, which synchronizes)
 * with up to CONV_WORKSPACE_BYTES of workspace from the stream's arena; while the stream is
 * capturing a CUDA graph, or when that workspace cannot be had, cuDNN's heuristic
 * (cudnnGetConvolutionForwardAlgorithm_v7) picks instead, without running anything. f32 skips
 * algorithms that report tensor-op math. The algorithm's workspace is taken from the arena for
 * each call and rewound once the work is enqueued; a stream without an arena gets an algorithm
 * that needs none.
 *
 * Bias: conv_bias_*_kernel, one pass over y after cuDNN (y += bias in f32, rounded once more);
 * cudnnConvolutionBiasActivationForward would fuse it but restricts the algorithm to implicit
 * precomputed GEMM with an activation, and the pass costs one read and write of y.
 *
 * Fallback: im2col on the device into row tiles of a workspace from the arena, each tile one
 * cuBLASLt GEMM against w seen as (O, KH*KW*C) with the bias in its epilogue (a 1x1 stride-1
 * unpadded convolution is one GEMM on x as it is). It runs when cuDNN has no algorithm for a
 * shape, when a tensor exceeds cuDNN's 2^31-element limit, and for every convolution when the
 * build has no cuDNN (ENG_HAVE_CUDNN undefined: cuda/CMakeLists.txt did not find it), so the
 * conv2d entry always exists. eng_cuda_conv2d_im2col runs it directly (tests, benchmarks). */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdlib.h>
#include <string.h>

#include "eng_alloc.h"
#include "eng_cuda.h"
#include "eng_cuda_common.cuh"
#include "eng_cuda_impl.h"

/* cuDNN's workspace limit, and the im2col fallback's tile of patches. */
#define CONV_WORKSPACE_BYTES ((size_t)64 << 20)
enum {
    CONV_BLOCK = 256,       /* threads per block of the bias and im2col kernels */
    CONV_MAX_BLOCKS = 8192, /* grid cap (grid-stride loop beyond) */
    CONV_MAX_PLANS = 4096   /* the cache is emptied beyond this many shapes */
};
/* cuDNN's legacy descriptors take int dimensions and at most 2^31 - 1 elements per tensor. */
#define CONV_CUDNN_MAX ((int64_t)0x7fffffff)

static __device__ __forceinline__ float to_f32(float v) {
    return v;
}
static __device__ __forceinline__ float to_f32(__half v) {
    return __half2float(v);
}
static __device__ __forceinline__ float to_f32(__nv_bfloat16 v) {
    return __bfloat162float(v);
}
template <typename T> static __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) {
    return v;
}
template <> __device__ __forceinline__ __half from_f32<__half>(float v) {
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

/* y[p, j] = (read_y ? y[p, j] : 0) + (bias ? bias[j] : 0) for the total = pixels * o elements
 * of NHWC y (j = i % o). One thread per element, int64 grid-stride loop, no shared memory.
 * read_y = 0 is the convolution with no input channels (y is the bias alone). Assumes total > 0
 * and o > 0 (the launcher returns early otherwise). */
template <typename T>
static __global__ void conv_bias_kernel(T *y, const T *bias, int64_t o, int64_t total, int read_y) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        float v = read_y ? to_f32(y[i]) : 0.0f;
        if (bias != NULL) v += to_f32(bias[i % o]);
        y[i] = from_f32<T>(v);
    }
}

static int bias_launch(cudaStream_t st, const eng_conv2d_args *a, int read_y, eng_err *err) {
    const int64_t total = a->n * a->ho * a->wo * a->o;
    if (total == 0) return ENG_OK;
    const unsigned grid = eng_cuda_grid_1d(total, CONV_BLOCK, CONV_MAX_BLOCKS);
    switch (a->dtype) {
    case ENG_DTYPE_F32:
        conv_bias_kernel<float><<<grid, CONV_BLOCK, 0, st>>>((float *)a->y, (const float *)a->bias,
                                                             a->o, total, read_y);
        break;
    case ENG_DTYPE_F16:
        conv_bias_kernel<__half><<<grid, CONV_BLOCK, 0, st>>>(
            (__half *)a->y, (const __half *)a->bias, a->o, total, read_y);
        break;
    default: /* bf16: conv_check admits nothing else */
        conv_bias_kernel<__nv_bfloat16><<<grid, CONV_BLOCK, 0, st>>>(
            (__nv_bfloat16 *)a->y, (const __nv_bfloat16 *)a->bias, a->o, total, read_y);
        break;
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* patch[r, (ky*kw + kx)*c + ci] = x[img, oy*stride - pad + ky, ox*stride - pad + kx, ci] (0 in
 * the padding) for the output pixels p = p0 + r, r < rows, (img, oy, ox) = p in (n, ho, wo).
 * One thread per patch element (total = rows * kdim), consecutive threads along ci so reads and
 * writes coalesce; int64 grid-stride loop; no shared memory. Assumes total > 0 and c > 0. */
template <typename T>
static __global__ void im2col_kernel(T *__restrict__ patch,
                                     const T *__restrict__ x,
                                     int64_t p0,
                                     int64_t total,
                                     int64_t kdim,
                                     int64_t h,
                                     int64_t w,
                                     int64_t c,
                                     int64_t kw,
                                     int64_t stride,
                                     int64_t pad,
                                     int64_t ho,
                                     int64_t wo) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        const int64_t r = i / kdim, q = i % kdim;
        const int64_t ci = q % c, tap = q / c, kx = tap % kw, ky = tap / kw;
        const int64_t p = p0 + r, img = p / (ho * wo), rem = p % (ho * wo);
        const int64_t iy = (rem / wo) * stride - pad + ky, ix = (rem % wo) * stride - pad + kx;
        const int inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
        patch[i] = inside ? x[((img * h + iy) * w + ix) * c + ci] : from_f32<T>(0.0f);
    }
}

static int im2col_launch(cudaStream_t st,
                         const eng_conv2d_args *a,
                         void *patch,
                         int64_t p0,
                         int64_t rows,
                         int64_t kdim,
                         eng_err *err) {
    const int64_t total = rows * kdim;
    const unsigned grid = eng_cuda_grid_1d(total, CONV_BLOCK, CONV_MAX_BLOCKS);
    switch (a->dtype) {
    case ENG_DTYPE_F32:
        im2col_kernel<float><<<grid, CONV_BLOCK, 0, st>>>((float *)patch, (const float *)a->x, p0,
                                                          total, kdim, a->h, a->w_in, a->c, a->kw,
                                                          a->stride, a->pad, a->ho, a->wo);
        break;
    case ENG_DTYPE_F16:
        im2col_kernel<__half><<<grid, CONV_BLOCK, 0, st>>>((__half *)patch, (const __half *)a->x,
                                                           p0, total, kdim, a->h, a->w_in, a->c,
                                                           a->kw, a->stride, a->pad, a->ho, a->wo);
        break;
    default: /* bf16: conv_check admits nothing else */
        im2col_kernel<__nv_bfloat16><<<grid, CONV_BLOCK, 0, st>>>(
            (__nv_bfloat16 *)patch, (const __nv_bfloat16 *)a->x, p0, total, kdim, a->h, a->w_in,
            a->c, a->kw, a->stride, a->pad, a->ho, a->wo);
        break;
    }
    return eng_cuda_launch_check("eng_cuda_conv2d_im2col", __FILE__, __LINE__, err);
}

#ifdef ENG_HAVE_CUDNN
#include <cudnn.h>

/* ---- cuDNN errors ----------------------------------------------------------------------------- */

static int dnn_check(cudnnStatus_t s, const char *expr, int line, eng_err *err) {
    if (s == CUDNN_STATUS_SUCCESS) return ENG_OK;
    return eng_err_set(err, ENG_E_DEVICE, "eng_cuda_conv2d: %s failed at conv.cu:%d: %s (%d)", expr,
                       line, cudnnGetErrorString(s), (int)s);
}
/* Evaluates to ENG_OK or ENG_E_DEVICE (message in *err), for functions with a done: label. */
#define DNN_CHECK(expr) dnn_check((expr), #expr, __LINE__, err)

/* ---- plans and the per-device state ----------------------------------------------------------- */

/* Everything the algorithm depends on; memset before filling, compared with memcmp. */
typedef struct conv_key {
    int32_t dtype;
    uint32_t align_x, align_w, align_y; /* bytes, capped at 256 */
    int64_t n, h, w, c, o, kh, kw, stride, pad;
    uint64_t ws_limit;
} conv_key;

typedef struct conv_plan {
    conv_key key;
    uint64_t hash;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t algo;
    size_t workspace;
    int fallback; /* cuDNN has no algorithm: the im2col + cuBLASLt path runs instead */
} conv_plan;

typedef struct conv_state {
    cudnnHandle_t h;
    conv_plan *plans;
    int64_t nplans, cap;
} conv_state;

static void plan_destroy(conv_plan *p) {
    if (p->xd != NULL) cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd != NULL) cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd != NULL) cudnnDestroyFilterDescriptor(p->wd);
    if (p->cd != NULL) cudnnDestroyConvolutionDescriptor(p->cd);
    memset(p, 0, sizeof *p);
}

void eng_cuda_conv_state_free(void *state) {
    conv_state *st = (conv_state *)state;
    if (st == NULL) return;
    for (int64_t i = 0; i < st->nplans; i++)
        plan_destroy(&st->plans[i]);
    free(st->plans);
    if (st->h != NULL) cudnnDestroy(st->h);
    free(st);
}

/* impl->conv, created on first use (the device is current: see eng_cuda.h). */
static int state_get(eng_cuda_impl *impl, conv_state **out, eng_err *err) {
    int rc = ENG_OK;
    conv_state *st = (conv_state *)impl->conv;
    if (st == NULL) {
        st = (conv_state *)calloc(1, sizeof *st);
        if (st == NULL) {
            return eng_err_set(err, ENG_E_OOM, "eng_cuda_conv2d: %s: out of host memory",
                               impl->name);
        }
        if ((rc = DNN_CHECK(cudnnCreate(&st->h))) != ENG_OK) {
            eng_err_prefix(err, "%s", impl->name);
            free(st);
            return rc;
        }
        impl->conv = st;
    }
    *out = st;
    return ENG_OK;
}

static uint64_t key_hash(const conv_key *k) {
    const unsigned char *b = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint32_t align_of(const void *p) {
    const uintptr_t v = (uintptr_t)p;
    if (v == 0) return 256;
    const uintptr_t low = v & (~v + 1);
    return low >= 256 ? 256u : (uint32_t)low;
}

/* The first usable result: succeeded, fits the workspace limit, and for f32 no tensor-op math
 * (TF32). -1 when none. */
static int perf_pick(const cudnnConvolutionFwdAlgoPerf_t *perf, int n, size_t limit, int is_f32) {
    for (int i = 0; i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > limit) continue;
        if (is_f32 && (perf[i].mathType == CUDNN_TENSOR_OP_MATH ||
                       perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)) {
            continue;
        }
        return i;
    }
    return -1;
}

/* Makes the descriptors and picks the algorithm (see the top of the file). p is zeroed first;
 * on failure it holds whatever was created (the caller destroys it). */
static int plan_create(conv_state *st,
                       conv_plan *p,
                       const conv_key *key,
                       const eng_conv2d_args *a,
                       cudaStream_t cs,
                       eng_arena *arena,
                       eng_err *err) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    int returned = 0, pick = -1, on = 0, oc = 0, oh = 0, ow = 0, rc;
    const int is_f32 = a->dtype == ENG_DTYPE_F32;
    const cudnnDataType_t type = is_f32                      ? CUDNN_DATA_FLOAT
                                 : a->dtype == ENG_DTYPE_F16 ? CUDNN_DATA_HALF
                                                             : CUDNN_DATA_BFLOAT16;
    memset(p, 0, sizeof *p);
    p->key = *key;
    p->hash = key_hash(key);
    if ((rc = DNN_CHECK(cudnnCreateTensorDescriptor(&p->xd))) != ENG_OK ||
        (rc = DNN_CHECK(cudnnCreateTensorDescriptor(&p->yd))) != ENG_OK ||
        (rc = DNN_CHECK(cudnnCreateFilterDescriptor(&p->wd))) != ENG_OK ||
        (rc = DNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd))) != ENG_OK ||
        (rc = DNN_CHECK(cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NHWC, type, (int)a->n,
                                                   (int)a->c, (int)a->h, (int)a->w_in))) !=
            ENG_OK ||
        (rc = DNN_CHECK(cudnnSetFilter4dDescriptor(p->wd, type, CUDNN_TENSOR_NHWC, (int)a->o,
                                                   (int)a->c, (int)a->kh, (int)a->kw))) != ENG_OK ||
        (rc = DNN_CHECK(cudnnSetConvolution2dDescriptor(
             p->cd, (int)a->pad, (int)a->pad, (int)a->stride, (int)a->stride, 1, 1,
             CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT))) != ENG_OK ||
        (rc = DNN_CHECK(cudnnSetConvolutionMathType(
             p->cd, is_f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH))) != ENG_OK ||
        (rc = DNN_CHECK(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NHWC, type, (int)a->n,
                                                   (int)a->o, (int)a->ho, (int)a->wo))) != ENG_OK ||
        (rc = DNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd, &on, &oc, &oh,
                                                              &ow))) != ENG_OK) {
        return rc;
    }
    if (on != a->n || oc != a->o || oh != a->ho || ow != a->wo) { /* conv_check agrees: a bug */
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_cuda_conv2d: cuDNN's output is %dx%dx%dx%d, expected "
                           "%lldx%lldx%lldx%lld",
                           on, oh, ow, oc, (long long)a->n, (long long)a->ho, (long long)a->wo,
                           (long long)a->o);
    }
    if ((rc = ENG_CUDA_CHECK(cudaStreamIsCapturing(cs, &cap), err)) != ENG_OK) return rc;
    if (cap == cudaStreamCaptureStatusNone && arena != NULL && key->ws_limit > 0) {
        const eng_arena_pos mark = eng_arena_mark(arena);
        void *ws = NULL;
        eng_err werr = {0, {0}};
        /* No workspace to be had (a tight budget): fall through to the heuristic. */
        if (eng_arena_take(arena, &ws, (size_t)key->ws_limit, &werr) == ENG_OK) {
            const cudnnStatus_t fs = cudnnFindConvolutionForwardAlgorithmEx(
                st->h, p->xd, a->x, p->wd, a->w, p->cd, p->yd, a->y,
                CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, ws, (size_t)key->ws_limit);
            if (fs == CUDNN_STATUS_SUCCESS) {
                pick = perf_pick(perf, returned, (size_t)key->ws_limit, is_f32);
            }
        }
        eng_arena_rewind(arena, mark);
    }
    if (pick < 0) {
        const size_t limit = arena != NULL ? (size_t)key->ws_limit : 0;
        if ((rc = DNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
                 st->h, p->xd, p->wd, p->cd, p->yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned,
                 perf))) != ENG_OK) {
            return rc;
        }
        pick = perf_pick(perf, returned, limit, is_f32);
    }
    if (pick < 0) { /* remembered, so the heuristics are not asked again for this shape */
        p->fallback = 1;
        return ENG_OK;
    }
    p->algo = perf[pick].algo;
    if ((rc = DNN_CHECK(cudnnSetConvolutionMathType(p->cd, perf[pick].mathType))) != ENG_OK ||
        (rc = DNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(
             st->h, p->xd, p->wd, p->cd, p->yd, p->algo, &p->workspace))) != ENG_OK) {
        return rc;
    }
    return ENG_OK;
}

static int plan_get(conv_state *st,
                    const conv_key *key,
                    const eng_conv2d_args *a,
                    cudaStream_t cs,
                    eng_arena *arena,
                    conv_plan **out,
                    eng_err *err) {
    const uint64_t h = key_hash(key);
    conv_plan p;
    int rc;
    for (int64_t i = 0; i < st->nplans; i++) {
        if (st->plans[i].hash == h && memcmp(&st->plans[i].key, key, sizeof *key) == 0) {
            *out = &st->plans[i];
            return ENG_OK;
        }
    }
    if ((rc = plan_create(st, &p, key, a, cs, arena, err)) != ENG_OK) {
        plan_destroy(&p);
        return rc;
    }
    if (st->nplans == CONV_MAX_PLANS) { /* a pathological number of shapes: start over */
        for (int64_t i = 0; i < st->nplans; i++)
            plan_destroy(&st->plans[i]);
        st->nplans = 0;
    }
    if (st->nplans == st->cap) {
        const int64_t cap = st->cap ? st->cap * 2 : 32;
        conv_plan *np = (conv_plan *)realloc(st->plans, (size_t)cap * sizeof *np);
        if (np == NULL) {
            plan_destroy(&p);
            return eng_err_set(err, ENG_E_OOM, "eng_cuda_conv2d: out of host memory for plans");
        }
        st->plans = np;
        st->cap = cap;
    }
    st->plans[st->nplans] = p;
    *out = &st->plans[st->nplans++];
    return ENG_OK;
}
#endif /* ENG_HAVE_CUDNN */

/* ---- the launchers ---------------------------------------------------------------------------- */

/* The checks of the CPU twin (engine/eng_ops_conv.c) for the device dtypes. */
static int conv_check(const char *fn, const eng_conv2d_args *a, eng_err *err) {
    if (a->dtype != ENG_DTYPE_F32 && a->dtype != ENG_DTYPE_F16 && a->dtype != ENG_DTYPE_BF16) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: dtype %s (f32, f16 or bf16)", fn,
                           eng_dtype_name(a->dtype));
    }
    const int64_t lim = (int64_t)1 << 31;
    if (a->n < 0 || a->h < 0 || a->w_in < 0 || a->c < 0 || a->o < 0 || a->kh < 1 || a->kw < 1 ||
        a->stride < 1 || a->pad < 0 || a->n >= lim || a->h >= lim || a->w_in >= lim ||
        a->c >= lim || a->o >= lim || a->kh >= lim || a->kw >= lim || a->stride >= lim ||
        a->pad >= lim) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: n=%lld h=%lld w=%lld c=%lld o=%lld kernel %lldx%lld stride %lld "
                           "pad %lld (sizes >= 0, kernel and stride >= 1, below 2^31)",
                           fn, (long long)a->n, (long long)a->h, (long long)a->w_in,
                           (long long)a->c, (long long)a->o, (long long)a->kh, (long long)a->kw,
                           (long long)a->stride, (long long)a->pad);
    }
    const int64_t hp = a->h + 2 * a->pad, wp = a->w_in + 2 * a->pad;
    if (hp < a->kh || wp < a->kw) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: a %lldx%lld kernel does not fit the padded %lldx%lld input", fn,
                           (long long)a->kh, (long long)a->kw, (long long)hp, (long long)wp);
    }
    const int64_t ho = (hp - a->kh) / a->stride + 1, wo = (wp - a->kw) / a->stride + 1;
    if (a->ho != ho || a->wo != wo) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: output %lldx%lld, expected %lldx%lld", fn,
                           (long long)a->ho, (long long)a->wo, (long long)ho, (long long)wo);
    }
    const double ex = (double)a->n * (double)a->h * (double)a->w_in * (double)a->c;
    const double ey = (double)a->n * (double)ho * (double)wo * (double)a->o;
    const double ew = (double)a->o * (double)a->kh * (double)a->kw * (double)a->c;
    const double max = (double)((int64_t)1 << 48); /* ENG_MAX_NUMEL */
    if (ex > max || ey > max || ew > max || (double)a->kh * (double)a->kw * (double)a->c > max) {
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "%s: tensors too large (x %.0f, y %.0f, w %.0f elements)", fn, ex, ey,
                           ew);
    }
    if (ey > 0 && (a->y == NULL || (ex > 0 && ew > 0 && (a->x == NULL || a->w == NULL)))) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL buffer (x %p, w %p, y %p)", fn, a->x,
                           a->w, a->y);
    }
    return ENG_OK;
}

/* The im2col + cuBLASLt path (see the top of the file); arguments already checked. */
static int conv_im2col(
    const char *fn, eng_stream *s, cudaStream_t cs, const eng_conv2d_args *a, eng_err *err) {
    const int64_t pixels = a->n * a->ho * a->wo, kdim = a->kh * a->kw * a->c;
    const size_t elem = eng_dtype_size(a->dtype);
    eng_arena *arena = s != NULL ? s->arena : NULL;
    eng_arena_pos mark;
    eng_gemm_args g;
    void *patch = NULL;
    int rc = ENG_OK;
    /* y (pixels, o) = patches (pixels, kdim) w (o, kdim)^T + bias */
    memset(&g, 0, sizeof g);
    g.dtype = a->dtype;
    g.trans_b = 1;
    g.n = a->o;
    g.k = kdim;
    g.batch = 1;
    g.alpha = 1.0f;
    g.b = a->w;
    g.ldb = kdim;
    g.ldc = a->o;
    g.bias = a->bias;
    g.act = ENG_ACT_NONE;
    if (a->kh == 1 && a->kw == 1 && a->stride == 1 && a->pad == 0) {
        g.m = pixels; /* NHWC pixels are the rows of a (pixels, c) matrix: no copy */
        g.a = a->x;
        g.lda = a->c;
        g.c = a->y;
        if ((rc = eng_cuda_gemm(s, &g, err)) != ENG_OK) eng_err_prefix(err, "%s", fn);
        return rc;
    }
    if (arena == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: a %lldx%lld stride-%lld convolution needs an im2col workspace but "
                           "the stream has no scratch arena (s->arena is NULL)",
                           fn, (long long)a->kh, (long long)a->kw, (long long)a->stride);
    }
    /* Tiles of whole patch rows within CONV_WORKSPACE_BYTES (at least one row). */
    int64_t tile = (int64_t)(CONV_WORKSPACE_BYTES / ((size_t)kdim * elem));
    tile = tile < 1 ? 1 : (tile > pixels ? pixels : tile);
    mark = eng_arena_mark(arena);
    if ((rc = eng_arena_take(arena, &patch, (size_t)tile * (size_t)kdim * elem, err)) != ENG_OK) {
        eng_err_prefix(err, "%s: im2col workspace", fn);
        goto done;
    }
    for (int64_t p0 = 0; p0 < pixels; p0 += tile) {
        const int64_t rows = pixels - p0 < tile ? pixels - p0 : tile;
        if ((rc = im2col_launch(cs, a, patch, p0, rows, kdim, err)) != ENG_OK) goto done;
        g.m = rows;
        g.a = patch;
        g.lda = kdim;
        g.c = (char *)a->y + (size_t)(p0 * a->o) * elem;
        /* its cuBLASLt workspace goes above the patches in the arena, and comes back */
        if ((rc = eng_cuda_gemm(s, &g, err)) != ENG_OK) {
            eng_err_prefix(err, "%s", fn);
            goto done;
        }
    }
done:
    eng_arena_rewind(arena, mark); /* the work is enqueued: stream order protects the reuse */
    return rc;
}

extern "C" int eng_cuda_conv2d_im2col(eng_stream *s, const eng_conv2d_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_conv2d_im2col";
    cudaStream_t cs = 0;
    int rc;
    if (a == NULL) return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL arguments", fn);
    if ((rc = conv_check(fn, a, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&cs, fn, s, err)) != ENG_OK) return rc;
    if (a->n * a->ho * a->wo * a->o == 0) return ENG_OK;
    if (a->c == 0) return bias_launch(cs, a, 0, err); /* no input channels: y is the bias */
    return conv_im2col(fn, s, cs, a, err);
}

extern "C" int eng_cuda_conv2d(eng_stream *s, const eng_conv2d_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_conv2d";
    cudaStream_t cs = 0;
    int rc;
    if (a == NULL) return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL arguments", fn);
    if ((rc = conv_check(fn, a, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&cs, fn, s, err)) != ENG_OK) return rc;
    if (a->n * a->ho * a->wo * a->o == 0) return ENG_OK;
    if (a->c == 0) return bias_launch(cs, a, 0, err); /* no input channels: y is the bias */
    if (s == NULL || s->impl == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: needs a stream made by the CUDA backend (it holds the cuDNN and "
                           "cuBLASLt handles)",
                           fn);
    }
#ifndef ENG_HAVE_CUDNN
    return conv_im2col(fn, s, cs, a, err);
#else
    conv_state *st = NULL;
    conv_plan *p = NULL;
    conv_key key;
    eng_arena *arena = s->arena;
    eng_arena_pos mark = {0, 0, 0};
    void *ws = NULL;
    int marked = 0;
    const float one = 1.0f, zero = 0.0f;
    const double big = (double)CONV_CUDNN_MAX;
    if ((double)a->n * (double)a->h * (double)a->w_in * (double)a->c > big ||
        (double)a->n * (double)a->ho * (double)a->wo * (double)a->o > big ||
        (double)a->o * (double)a->kh * (double)a->kw * (double)a->c > big) {
        return conv_im2col(fn, s, cs, a, err); /* beyond cuDNN's int descriptors */
    }
    eng_cuda_impl *impl = (eng_cuda_impl *)s->impl;
    if ((rc = state_get(impl, &st, err)) != ENG_OK) return rc;
    if ((rc = DNN_CHECK(cudnnSetStream(st->h, cs))) != ENG_OK) return rc;
    memset(&key, 0, sizeof key);
    key.dtype = (int32_t)a->dtype;
    key.align_x = align_of(a->x);
    key.align_w = align_of(a->w);
    key.align_y = align_of(a->y);
    key.n = a->n;
    key.h = a->h;
    key.w = a->w_in;
    key.c = a->c;
    key.o = a->o;
    key.kh = a->kh;
    key.kw = a->kw;
    key.stride = a->stride;
    key.pad = a->pad;
    key.ws_limit = arena != NULL ? CONV_WORKSPACE_BYTES : 0;
    if ((rc = plan_get(st, &key, a, cs, arena, &p, err)) != ENG_OK) return rc;
    if (p->fallback) return conv_im2col(fn, s, cs, a, err);
    if (p->workspace > 0) {
        if (arena == NULL) { /* cannot happen: the limit was 0 */
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: the algorithm needs a workspace", fn);
        }
        mark = eng_arena_mark(arena);
        marked = 1;
        if ((rc = eng_arena_take(arena, &ws, p->workspace, err)) != ENG_OK) {
            eng_err_prefix(err, "%s: cuDNN workspace", fn);
            goto done;
        }
    }
    {
        const cudnnStatus_t ds =
            cudnnConvolutionForward(st->h, &one, p->xd, a->x, p->wd, a->w, p->cd, p->algo, ws,
                                    p->workspace, &zero, p->yd, a->y);
        if (ds != CUDNN_STATUS_SUCCESS) {
            rc = eng_err_set(err, ENG_E_DEVICE,
                             "%s: cudnnConvolutionForward failed for %s x [%lld,%lld,%lld,%lld] "
                             "o=%lld kernel %lldx%lld stride %lld pad %lld (algorithm %d): %s",
                             fn, eng_dtype_name(a->dtype), (long long)a->n, (long long)a->h,
                             (long long)a->w_in, (long long)a->c, (long long)a->o, (long long)a->kh,
                             (long long)a->kw, (long long)a->stride, (long long)a->pad,
                             (int)p->algo, cudnnGetErrorString(ds));
            goto done;
        }
    }
    if (a->bias != NULL) rc = bias_launch(cs, a, 1, err);
done:
    if (marked) eng_arena_rewind(arena, mark); /* the work is enqueued: stream order protects it */
    return rc;
#endif
}

void eng_cuda_register_conv(eng_op_table *ops) {
    ops->conv2d = eng_cuda_conv2d;
}

#ifndef ENG_HAVE_CUDNN
void eng_cuda_conv_state_free(void *state) {
    (void)state; /* nothing is ever made without cuDNN */
}
#endif
