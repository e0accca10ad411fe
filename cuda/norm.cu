/* norm.cu: the normalisation kernels: GroupNorm (+ fused SiLU) over NHWC activations, LayerNorm
 * and softmax over rows, in f32, f16 and bf16 with f32 math (twins: eng_cpu_groupnorm,
 * eng_cpu_layernorm, eng_cpu_softmax in engine/eng_ops_norm.c).
 *
 * GroupNorm, x (n, hw, c) NHWC, groups of cpg = c / groups channels. The statistics of a group
 * cover hw x cpg values that are strided in memory (cpg adjacent channels per pixel), and SD's
 * shapes have few (sample, group) pairs (2 x 32 = 64 at 64x64x320), so one block per pair would
 * leave most of an H100 idle and read 20-byte runs. The main path therefore splits by pixels:
 *   1. groupnorm_stats: block (s, i) reads rows [s R, (s + 1) R) of sample i across all c
 *      channels (fully coalesced, 16-byte loads) and writes, per group, the partial sums of
 *      (x - K) and (x - K)^2, where the shift K is the group's first value in the sample
 *      (x[i, 0, g cpg]): sums of shifted values keep the variance accurate in f32 when the mean
 *      is large next to the spread (the "shifted data" algorithm); no atomics, so the result
 *      does not depend on scheduling.
 *   2. groupnorm_finalize: one warp per (sample, group) adds the partials in f64 and writes per
 *      channel {K, mean - K, rstd gamma, beta}.
 *   3. groupnorm_apply: y = ((x - K) - (mean - K)) rstd gamma + beta (+ SiLU), same tiling as 1,
 *      each thread keeping its channels' coefficients in registers across its rows.
 * Traffic: x read twice, y written once, plus n (S groups 8 + c 16) bytes of workspace from
 * s->arena. Without an arena (or c > GN_SPLIT_MAX_C, or n > 65535) the fallback is one block per
 * (sample, group) with Welford statistics (groupnorm_fused_kernel): correct, slower.
 *
 * LayerNorm and softmax: one warp per row (rows of SD and CLIP are 77..1280 values; a warp
 * keeps the reductions in shuffles), 8 rows per block, 16-byte loads when c allows. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "eng_act_math.h"
#include "eng_alloc.h"
#include "eng_cuda.h"
#include "eng_cuda_common.cuh"
#include "eng_cuda_impl.h"

enum {
    NORM_BLOCK = 256,             /* threads per block in every kernel here */
    NORM_WARPS = NORM_BLOCK / 32, /* rows per block of the warp-per-row kernels */
    NORM_MAX_BLOCKS = 1 << 16,    /* grid cap of the warp-per-row kernels (they loop) */
    GN_SPLIT_MAX_C = 4096,        /* stats kernel shared memory: 8 TY c bytes <= 32 KiB */
    GN_MAX_GRID_Y = 65535,        /* samples, on grid y */
    GN_BLOCKS_PER_SM = 8,         /* 8 x 256 threads: an SM's full complement */
    GN_MIN_ROWS_PER_THREAD = 4    /* rows each thread walks, so coefficient loads amortise */
};

/* ---- storage types ----------------------------------------------------------------------------- */

static __device__ __forceinline__ float nm_f32(float v) {
    return v;
}
static __device__ __forceinline__ float nm_f32(__half v) {
    return __half2float(v);
}
static __device__ __forceinline__ float nm_f32(__nv_bfloat16 v) {
    return __bfloat162float(v);
}
template <typename T> static __device__ __forceinline__ T nm_from_f32(float v);
template <> __device__ __forceinline__ float nm_from_f32<float>(float v) {
    return v;
}
template <> __device__ __forceinline__ __half nm_from_f32<__half>(float v) {
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 nm_from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

/* V elements of T in one aligned access (V = 16 / sizeof(T) when the launcher found the row
 * starts 16-byte aligned: c % V == 0 and aligned base pointers; V = 1 otherwise). */
template <typename T, int V> struct alignas(sizeof(T) * V) nm_vec { T v[V]; };
template <typename T, int V> static __device__ __forceinline__ nm_vec<T, V> nm_ld(const T *p) {
    return *reinterpret_cast<const nm_vec<T, V> *>(p);
}
template <typename T, int V> static __device__ __forceinline__ void nm_st(T *p, nm_vec<T, V> v) {
    *reinterpret_cast<nm_vec<T, V> *>(p) = v;
}

/* ---- reductions ------------------------------------------------------------------------------- */

/* Butterfly sums: every lane ends with the same bits (a + b == b + a). Full warps only. */
static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Chan et al.'s merge of Welford states: (n, mean, m2) <- (n, mean, m2) + (nb, meanb, m2b);
 * an empty side (count 0) leaves the other unchanged. */
static __device__ __forceinline__ void
wf_merge(float &n, float &mean, float &m2, float nb, float meanb, float m2b) {
    if (nb == 0.0f) return;
    const float nn = n + nb;
    const float d = meanb - mean;
    const float fb = nb / nn;
    mean += d * fb;
    m2 += m2b + d * d * n * fb;
    n = nn;
}

/* The Welford state of the whole block (blockDim.x == NORM_BLOCK, 1-D), returned to every
 * thread. sh: 3 NORM_WARPS + 3 floats of shared memory. Contains __syncthreads: call from all
 * threads. */
static __device__ void block_welford(float &n, float &mean, float &m2, float *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) { /* tree into lane 0 (lanes >= o merge junk, unused) */
        const float nb = __shfl_down_sync(0xffffffffu, n, o);
        const float mb = __shfl_down_sync(0xffffffffu, mean, o);
        const float m2b = __shfl_down_sync(0xffffffffu, m2, o);
        wf_merge(n, mean, m2, nb, mb, m2b);
    }
    if (lane == 0) {
        sh[warp] = n;
        sh[NORM_WARPS + warp] = mean;
        sh[2 * NORM_WARPS + warp] = m2;
    }
    __syncthreads();
    if (warp == 0) {
        n = lane < NORM_WARPS ? sh[lane] : 0.0f;
        mean = lane < NORM_WARPS ? sh[NORM_WARPS + lane] : 0.0f;
        m2 = lane < NORM_WARPS ? sh[2 * NORM_WARPS + lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) {
            const float nb = __shfl_down_sync(0xffffffffu, n, o);
            const float mb = __shfl_down_sync(0xffffffffu, mean, o);
            const float m2b = __shfl_down_sync(0xffffffffu, m2, o);
            wf_merge(n, mean, m2, nb, mb, m2b);
        }
        if (lane == 0) {
            sh[3 * NORM_WARPS] = n;
            sh[3 * NORM_WARPS + 1] = mean;
            sh[3 * NORM_WARPS + 2] = m2;
        }
    }
    __syncthreads();
    n = sh[3 * NORM_WARPS];
    mean = sh[3 * NORM_WARPS + 1];
    m2 = sh[3 * NORM_WARPS + 2];
}

static int nm_check_dtype(const char *fn, eng_dtype dt, eng_err *err) {
    if (dt == ENG_DTYPE_F32 || dt == ENG_DTYPE_F16 || dt == ENG_DTYPE_BF16) return ENG_OK;
    return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: dtype %s (f32, f16 or bf16)", fn,
                       eng_dtype_name(dt));
}

static int nm_check_count(const char *fn, const char *what, int64_t v, eng_err *err) {
    if (v >= 0) return ENG_OK;
    return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s = %lld < 0", fn, what, (long long)v);
}

static int nm_check_eps(const char *fn, float eps, eng_err *err) {
    if (eps >= 0.0f && eps <= 3.4e38f) return ENG_OK;
    return eng_err_set(err, ENG_E_INVALID_ARG, "%s: eps = %g (needs a finite value >= 0)", fn,
                       (double)eps);
}

/* The vector width for rows of c elements at y and x: 16 / sizeof(T) when every row start is
 * 16-byte aligned, else 1. */
static int nm_vec_width(size_t elem, int64_t c, const void *y, const void *x) {
    const int64_t v = (int64_t)(16 / elem);
    const int ok = c % v == 0 && (uintptr_t)y % 16 == 0 && (uintptr_t)x % 16 == 0;
    return ok ? (int)v : 1;
}

/* ==== GroupNorm ================================================================================= */

/* Fallback: one block (NORM_BLOCK threads, 1-D) per (sample i, group g) = blockIdx.x. Element e
 * of the group (e < hw cpg) is pixel p = e / cpg, channel g cpg + e % cpg; each thread walks
 * e = tid, tid + NORM_BLOCK, ... with (p, j) stepped incrementally (no division per element),
 * keeps a Welford state, the block merges them (block_welford), then the same walk normalises.
 * Shared: 3 NORM_WARPS + 3 floats. hw cpg > 0. */
template <typename T, bool SILU>
static __global__ void __launch_bounds__(NORM_BLOCK)
    groupnorm_fused_kernel(T *y,
                           const T *x,
                           const T *__restrict__ gamma,
                           const T *__restrict__ beta,
                           int64_t hw,
                           int64_t c,
                           int64_t cpg,
                           int64_t groups,
                           float eps) {
    __shared__ float sh[3 * NORM_WARPS + 3];
    const int64_t i = blockIdx.x / groups, g = blockIdx.x % groups;
    const int64_t base = i * hw * c + g * cpg, count = hw * cpg;
    const int64_t dp = NORM_BLOCK / cpg, dj = NORM_BLOCK % cpg;
    float n = 0.0f, mean = 0.0f, m2 = 0.0f;
    int64_t p = threadIdx.x / cpg, j = threadIdx.x % cpg;
    for (int64_t e = threadIdx.x; e < count; e += NORM_BLOCK) {
        const float v = nm_f32(x[base + p * c + j]);
        n += 1.0f;
        const float d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
        p += dp;
        j += dj;
        if (j >= cpg) {
            j -= cpg;
            p++;
        }
    }
    block_welford(n, mean, m2, sh);
    const float rstd = rsqrtf(m2 / (float)count + eps);
    p = threadIdx.x / cpg;
    j = threadIdx.x % cpg;
    for (int64_t e = threadIdx.x; e < count; e += NORM_BLOCK) {
        const int64_t off = base + p * c + j, ch = g * cpg + j;
        float v = (nm_f32(x[off]) - mean) * rstd;
        if (gamma != NULL) v *= nm_f32(gamma[ch]);
        if (beta != NULL) v += nm_f32(beta[ch]);
        if (SILU) v = eng_act_silu(v);
        y[off] = nm_from_f32<T>(v);
        p += dp;
        j += dj;
        if (j >= cpg) {
            j -= cpg;
            p++;
        }
    }
}

/* Step 1 of the split path. Block (blockIdx.x = s, blockIdx.y = i), threads (tx, ty) with
 * blockDim.x = TX channel vectors, blockDim.y = TY rows: rows [s R, min(hw, (s + 1) R)) of sample
 * i; thread (tx, ty) walks channel vectors cv = tx, tx + TX, ... and, for each, rows r0 + ty, +TY,
 * ... (a warp's loads are adjacent vectors of one row or of consecutive rows: coalesced), summing
 * d = x - K and d^2 per channel, K = x[i, 0, group's first channel]. Per-(ty, channel) sums go to
 * shared memory, then thread t sums group g = t, t + TX TY, ... over ty and its channels, and
 * writes part[(i S + s) groups + g] = {sum d, sum d^2}.
 * Shared (dynamic): 2 TY c floats (<= 32 KiB: the launcher keeps c <= GN_SPLIT_MAX_C, and
 * TY c <= NORM_BLOCK V when c / V <= NORM_BLOCK). Assumes c % V == 0 and 16-byte aligned rows
 * for V > 1 (the launcher checks); hw, c > 0. */
template <typename T, int V>
static __global__ void __launch_bounds__(NORM_BLOCK)
    groupnorm_stats_kernel(float2 *__restrict__ part,
                           const T *__restrict__ x,
                           int64_t hw,
                           int64_t c,
                           int64_t cpg,
                           int64_t groups,
                           int64_t rows_per_block) {
    extern __shared__ float gn_smem[];
    const int tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x, TY = blockDim.y;
    const int64_t i = blockIdx.y, s = blockIdx.x;
    const int64_t r0 = s * rows_per_block, r1 = ENG_MIN(hw, r0 + rows_per_block);
    const T *xs = x + i * hw * c;
    float *sh1 = gn_smem, *sh2 = gn_smem + (int64_t)TY * c;
    for (int64_t cv = tx; cv < c / V; cv += TX) {
        float k[V], s1[V], s2[V];
#pragma unroll
        for (int q = 0; q < V; q++) {
            k[q] = nm_f32(xs[((cv * V + q) / cpg) * cpg]);
            s1[q] = 0.0f;
            s2[q] = 0.0f;
        }
        for (int64_t r = r0 + ty; r < r1; r += TY) {
            const nm_vec<T, V> v = nm_ld<T, V>(xs + r * c + cv * V);
#pragma unroll
            for (int q = 0; q < V; q++) {
                const float d = nm_f32(v.v[q]) - k[q];
                s1[q] += d;
                s2[q] += d * d;
            }
        }
#pragma unroll
        for (int q = 0; q < V; q++) {
            sh1[ty * c + cv * V + q] = s1[q];
            sh2[ty * c + cv * V + q] = s2[q];
        }
    }
    __syncthreads();
    for (int64_t g = ty * TX + tx; g < groups; g += TX * TY) {
        float a1 = 0.0f, a2 = 0.0f;
        for (int t = 0; t < TY; t++) {
            for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ch++) {
                a1 += sh1[t * c + ch];
                a2 += sh2[t * c + ch];
            }
        }
        part[(i * gridDim.x + s) * groups + g] = make_float2(a1, a2);
    }
}

/* Step 2: one warp per (sample i, group g) = blockIdx.x NORM_WARPS + warp (a whole warp leaves
 * together when past the end). Lanes add the S partials in f64 (butterfly, same bits on every
 * lane); mean' = sum d / count is the mean minus K, var = sum d^2 / count - mean'^2 (>= 0). Lanes
 * then write coef[i c + ch] = {K, mean', rstd gamma[ch], beta[ch]} for the group's channels.
 * No shared memory. */
template <typename T>
static __global__ void __launch_bounds__(NORM_BLOCK)
    groupnorm_finalize_kernel(float4 *__restrict__ coef,
                              const float2 *__restrict__ part,
                              const T *__restrict__ x,
                              const T *__restrict__ gamma,
                              const T *__restrict__ beta,
                              int64_t n,
                              int64_t hw,
                              int64_t c,
                              int64_t cpg,
                              int64_t groups,
                              int64_t splits,
                              float eps) {
    const int lane = threadIdx.x & 31;
    const int64_t unit = (int64_t)blockIdx.x * NORM_WARPS + (threadIdx.x >> 5);
    if (unit >= n * groups) return;
    const int64_t i = unit / groups, g = unit % groups;
    double a1 = 0.0, a2 = 0.0;
    for (int64_t s = lane; s < splits; s += 32) {
        const float2 p = part[(i * splits + s) * groups + g];
        a1 += p.x;
        a2 += p.y;
    }
    a1 = warp_sum_d(a1);
    a2 = warp_sum_d(a2);
    const double count = (double)hw * (double)cpg;
    const double mu = a1 / count;
    const double var = fmax(a2 / count - mu * mu, 0.0);
    const float rstd = (float)(1.0 / sqrt(var + (double)eps));
    const float k = nm_f32(x[i * hw * c + g * cpg]);
    for (int64_t j = lane; j < cpg; j += 32) {
        const int64_t ch = g * cpg + j;
        const float gm = gamma != NULL ? nm_f32(gamma[ch]) : 1.0f;
        const float bt = beta != NULL ? nm_f32(beta[ch]) : 0.0f;
        coef[i * c + ch] = make_float4(k, (float)mu, rstd * gm, bt);
    }
}

/* Step 3: the tiling of step 1 (block (s, i), threads (tx, ty)); each thread loads the V
 * coefficients of its channel vector once and applies them to its rows:
 * y = ((x - K) - mean') scale + beta, then SiLU. y may equal x (each element is read, then
 * written, by one thread). No shared memory. Same assumptions as step 1. */
template <typename T, int V, bool SILU>
static __global__ void __launch_bounds__(NORM_BLOCK)
    groupnorm_apply_kernel(T *y,
                           const T *x,
                           const float4 *__restrict__ coef,
                           int64_t hw,
                           int64_t c,
                           int64_t rows_per_block) {
    const int64_t i = blockIdx.y;
    const int64_t r0 = (int64_t)blockIdx.x * rows_per_block;
    const int64_t r1 = ENG_MIN(hw, r0 + rows_per_block);
    const T *xs = x + i * hw * c;
    T *ys = y + i * hw * c;
    const float4 *cs = coef + i * c;
    for (int64_t cv = threadIdx.x; cv < c / V; cv += blockDim.x) {
        float4 k[V];
#pragma unroll
        for (int q = 0; q < V; q++)
            k[q] = cs[cv * V + q];
        for (int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
            nm_vec<T, V> v = nm_ld<T, V>(xs + r * c + cv * V);
#pragma unroll
            for (int q = 0; q < V; q++) {
                float t = ((nm_f32(v.v[q]) - k[q].x) - k[q].y) * k[q].z + k[q].w;
                if (SILU) t = eng_act_silu(t);
                v.v[q] = nm_from_f32<T>(t);
            }
            nm_st<T, V>(ys + r * c + cv * V, v);
        }
    }
}

/* The split path's tiling: TX channel vectors by TY rows, R rows per block (a multiple of TY, at
 * least GN_MIN_ROWS_PER_THREAD TY, else enough blocks for GN_BLOCKS_PER_SM per SM), S blocks per
 * sample. */
struct gn_tiling {
    int tx, ty;
    int64_t rows_per_block, splits;
};
static gn_tiling gn_tile(int64_t n, int64_t hw, int64_t c, int v, int sms) {
    gn_tiling t;
    const int64_t cv = c / v;
    t.tx = (int)ENG_MIN(cv, (int64_t)NORM_BLOCK);
    t.ty = NORM_BLOCK / t.tx;
    const int64_t target_blocks = (int64_t)sms * GN_BLOCKS_PER_SM;
    int64_t r = ENG_CEIL_DIV(n * hw, target_blocks);
    r = ENG_MAX(r, (int64_t)GN_MIN_ROWS_PER_THREAD * t.ty);
    r = ENG_CEIL_DIV(r, (int64_t)t.ty) * t.ty;
    t.rows_per_block = ENG_MIN(r, hw);
    t.splits = ENG_CEIL_DIV(hw, t.rows_per_block);
    return t;
}

template <typename T, int V>
static int groupnorm_split(cudaStream_t st,
                           const eng_groupnorm_args *a,
                           const gn_tiling &t,
                           float2 *part,
                           float4 *coef,
                           eng_err *err) {
    const dim3 block((unsigned)t.tx, (unsigned)t.ty, 1);
    const dim3 grid((unsigned)t.splits, (unsigned)a->n, 1);
    const size_t smem = (size_t)2 * t.ty * a->c * sizeof(float);
    const int64_t cpg = a->c / a->groups;
    const T *x = (const T *)a->x;
    groupnorm_stats_kernel<T, V>
        <<<grid, block, smem, st>>>(part, x, a->hw, a->c, cpg, a->groups, t.rows_per_block);
    ENG_CUDA_LAUNCH_CHECK(err);
    const int64_t units = a->n * a->groups;
    groupnorm_finalize_kernel<T>
        <<<(unsigned)ENG_CEIL_DIV(units, (int64_t)NORM_WARPS), NORM_BLOCK, 0, st>>>(
            coef, part, x, (const T *)a->gamma, (const T *)a->beta, a->n, a->hw, a->c, cpg,
            a->groups, t.splits, a->eps);
    ENG_CUDA_LAUNCH_CHECK(err);
    if (a->act == ENG_ACT_SILU) {
        groupnorm_apply_kernel<T, V, true>
            <<<grid, block, 0, st>>>((T *)a->y, x, coef, a->hw, a->c, t.rows_per_block);
    } else {
        groupnorm_apply_kernel<T, V, false>
            <<<grid, block, 0, st>>>((T *)a->y, x, coef, a->hw, a->c, t.rows_per_block);
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

template <typename T>
static int groupnorm_fused(cudaStream_t st, const eng_groupnorm_args *a, eng_err *err) {
    const unsigned grid = (unsigned)(a->n * a->groups);
    const int64_t cpg = a->c / a->groups;
    if (a->act == ENG_ACT_SILU) {
        groupnorm_fused_kernel<T, true>
            <<<grid, NORM_BLOCK, 0, st>>>((T *)a->y, (const T *)a->x, (const T *)a->gamma,
                                          (const T *)a->beta, a->hw, a->c, cpg, a->groups, a->eps);
    } else {
        groupnorm_fused_kernel<T, false>
            <<<grid, NORM_BLOCK, 0, st>>>((T *)a->y, (const T *)a->x, (const T *)a->gamma,
                                          (const T *)a->beta, a->hw, a->c, cpg, a->groups, a->eps);
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

template <typename T>
static int
groupnorm_launch(eng_stream *s, cudaStream_t st, const eng_groupnorm_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_groupnorm";
    const int v = nm_vec_width(sizeof(T), a->c, a->y, a->x);
    int dev = 0, sms = 0, rc = ENG_OK;
    int split = s != NULL && s->arena != NULL && a->c <= GN_SPLIT_MAX_C && a->n <= GN_MAX_GRID_Y;
    gn_tiling t = {1, 1, 1, 1};
    if (split) {
        ENG_CUDA_TRY(cudaGetDevice(&dev), err);
        ENG_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), err);
        t = gn_tile(a->n, a->hw, a->c, v, sms);
        split = t.splits <= 0x7fffffff;
    }
    if (!split) {
        if (a->n * a->groups > 0x7fffffff) {
            return eng_err_set(err, ENG_E_UNSUPPORTED,
                               "%s: %lld (sample, group) pairs without a workspace arena", fn,
                               (long long)(a->n * a->groups));
        }
        return groupnorm_fused<T>(st, a, err);
    }
    const size_t part_bytes = (size_t)(a->n * t.splits * a->groups) * sizeof(float2);
    const size_t part_padded = (part_bytes + 255) / 256 * 256;
    const size_t bytes = part_padded + (size_t)(a->n * a->c) * sizeof(float4);
    if (eng_alloc_device(eng_arena_alloc(s->arena)) != ENG_DEVICE_CUDA) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: the stream's arena holds %s memory, not device memory", fn,
                           eng_alloc_device_name(eng_arena_alloc(s->arena)));
    }
    const eng_arena_pos mark = eng_arena_mark(s->arena);
    void *ws = NULL;
    if ((rc = eng_arena_take(s->arena, &ws, bytes, err)) != ENG_OK) {
        eng_err_prefix(err, "%s: workspace", fn);
        goto done;
    }
    if ((uintptr_t)ws % 16 != 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: the arena's memory is not 16-byte aligned",
                         fn);
        goto done;
    }
    {
        float2 *part = (float2 *)ws;
        float4 *coef = (float4 *)((char *)ws + part_padded);
        if (v == 1) {
            rc = groupnorm_split<T, 1>(st, a, t, part, coef, err);
        } else {
            rc = groupnorm_split<T, (int)(16 / sizeof(T))>(st, a, t, part, coef, err);
        }
    }
done:
    /* stream order makes the rewind safe: the next op's kernels run after these */
    eng_arena_rewind(s->arena, mark);
    return rc;
}

int eng_cuda_groupnorm(eng_stream *s, const eng_groupnorm_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_groupnorm";
    cudaStream_t st = 0;
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = nm_check_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = nm_check_count(fn, "n", a->n, err)) != ENG_OK) return rc;
    if ((rc = nm_check_count(fn, "hw", a->hw, err)) != ENG_OK) return rc;
    if ((rc = nm_check_count(fn, "c", a->c, err)) != ENG_OK) return rc;
    if (a->groups < 1 || a->c % a->groups != 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: %lld channels do not split into %lld groups", fn, (long long)a->c,
                           (long long)a->groups);
    }
    if (a->act != ENG_ACT_NONE && a->act != ENG_ACT_SILU) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: activation %s (none or silu)", fn,
                           eng_act_name(a->act));
    }
    if ((rc = nm_check_eps(fn, a->eps, err)) != ENG_OK) return rc;
    const int64_t n = a->n * a->hw * a->c;
    if ((rc = eng_cuda_check_1d(fn, n, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    switch (a->dtype) {
    case ENG_DTYPE_F16: return groupnorm_launch<__half>(s, st, a, err);
    case ENG_DTYPE_BF16: return groupnorm_launch<__nv_bfloat16>(s, st, a, err);
    default: return groupnorm_launch<float>(s, st, a, err);
    }
}

/* ==== LayerNorm ================================================================================ */

/* One warp per row (row = blockIdx.x NORM_WARPS + warp, grid-stride; the loop is warp-uniform so
 * the shuffles see full warps). Three passes over the row (the later ones hit L1/L2): sum of
 * x - K with K = the row's first value (a shift that keeps f32 accurate for large means), then
 * the sum of squared deviations, then y = (x - mean) rstd gamma + beta. Lane l takes vectors
 * l, l + 32, ... No shared memory. c % V == 0 and 16-byte aligned rows for V > 1 (launcher). */
template <typename T, int V>
static __global__ void __launch_bounds__(NORM_BLOCK) layernorm_kernel(T *y,
                                                                      const T *x,
                                                                      const T *__restrict__ gamma,
                                                                      const T *__restrict__ beta,
                                                                      int64_t rows,
                                                                      int64_t c,
                                                                      float eps) {
    const int lane = threadIdx.x & 31;
    const int64_t nv = c / V;
    for (int64_t r = (int64_t)blockIdx.x * NORM_WARPS + (threadIdx.x >> 5); r < rows;
         r += (int64_t)gridDim.x * NORM_WARPS) {
        const T *xr = x + r * c;
        T *yr = y + r * c;
        const float k = nm_f32(xr[0]);
        float s1 = 0.0f;
        for (int64_t cv = lane; cv < nv; cv += 32) {
            const nm_vec<T, V> v = nm_ld<T, V>(xr + cv * V);
#pragma unroll
            for (int q = 0; q < V; q++)
                s1 += nm_f32(v.v[q]) - k;
        }
        const float mu = warp_sum(s1) / (float)c; /* mean - K */
        float s2 = 0.0f;
        for (int64_t cv = lane; cv < nv; cv += 32) {
            const nm_vec<T, V> v = nm_ld<T, V>(xr + cv * V);
#pragma unroll
            for (int q = 0; q < V; q++) {
                const float d = (nm_f32(v.v[q]) - k) - mu;
                s2 += d * d;
            }
        }
        const float rstd = rsqrtf(warp_sum(s2) / (float)c + eps);
        for (int64_t cv = lane; cv < nv; cv += 32) {
            nm_vec<T, V> v = nm_ld<T, V>(xr + cv * V);
#pragma unroll
            for (int q = 0; q < V; q++) {
                const int64_t ch = cv * V + q;
                float t = ((nm_f32(v.v[q]) - k) - mu) * rstd;
                if (gamma != NULL) t *= nm_f32(gamma[ch]);
                if (beta != NULL) t += nm_f32(beta[ch]);
                v.v[q] = nm_from_f32<T>(t);
            }
            nm_st<T, V>(yr + cv * V, v);
        }
    }
}

template <typename T> static void layernorm_launch(cudaStream_t st, const eng_layernorm_args *a) {
    const unsigned grid = eng_cuda_grid_1d(a->rows, NORM_WARPS, NORM_MAX_BLOCKS);
    T *y = (T *)a->y;
    const T *x = (const T *)a->x, *g = (const T *)a->gamma, *b = (const T *)a->beta;
    if (nm_vec_width(sizeof(T), a->c, a->y, a->x) > 1) {
        layernorm_kernel<T, (int)(16 / sizeof(T))>
            <<<grid, NORM_BLOCK, 0, st>>>(y, x, g, b, a->rows, a->c, a->eps);
    } else {
        layernorm_kernel<T, 1><<<grid, NORM_BLOCK, 0, st>>>(y, x, g, b, a->rows, a->c, a->eps);
    }
}

int eng_cuda_layernorm(eng_stream *s, const eng_layernorm_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_layernorm";
    cudaStream_t st = 0;
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = nm_check_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = nm_check_count(fn, "rows", a->rows, err)) != ENG_OK) return rc;
    if ((rc = nm_check_count(fn, "c", a->c, err)) != ENG_OK) return rc;
    if ((rc = nm_check_eps(fn, a->eps, err)) != ENG_OK) return rc;
    const int64_t n = a->rows * a->c;
    if ((rc = eng_cuda_check_1d(fn, n, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    switch (a->dtype) {
    case ENG_DTYPE_F16: layernorm_launch<__half>(st, a); break;
    case ENG_DTYPE_BF16: layernorm_launch<__nv_bfloat16>(st, a); break;
    default: layernorm_launch<float>(st, a); break;
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ==== softmax ================================================================================== */

/* Online softmax state (running max m, sum s of exp(v - m)) and its merge. A side with s == 0 has
 * seen no finite value and contributes nothing (so -inf - -inf never becomes NaN there). */
static __device__ __forceinline__ void sm_merge(float &m, float &s, float mb, float sb) {
    const float mm = fmaxf(m, mb);
    const float ea = s == 0.0f ? 0.0f : s * expf(m - mm);
    const float eb = sb == 0.0f ? 0.0f : sb * expf(mb - mm);
    m = mm;
    s = ea + eb;
}

/* One warp per row, as layernorm_kernel. Pass 1: each lane keeps an online (max, sum) of
 * v = scale x over its values (-inf values add nothing; a NaN poisons the sum, as in the twin),
 * a butterfly merges the lanes (every lane gets the same bits). Pass 2: y = exp(v - m) / s.
 * A row of -inf gives 0 / 0 = NaN, as the twin. y may equal x. No shared memory. */
template <typename T, int V>
static __global__ void __launch_bounds__(NORM_BLOCK)
    softmax_kernel(T *y, const T *x, int64_t rows, int64_t c, float scale) {
    const int lane = threadIdx.x & 31;
    const int64_t nv = c / V;
    for (int64_t r = (int64_t)blockIdx.x * NORM_WARPS + (threadIdx.x >> 5); r < rows;
         r += (int64_t)gridDim.x * NORM_WARPS) {
        const T *xr = x + r * c;
        T *yr = y + r * c;
        float m = -INFINITY, s = 0.0f;
        for (int64_t cv = lane; cv < nv; cv += 32) {
            const nm_vec<T, V> v = nm_ld<T, V>(xr + cv * V);
#pragma unroll
            for (int q = 0; q < V; q++) {
                const float u = scale * nm_f32(v.v[q]);
                if (u > m) {
                    s = s * expf(m - u) + 1.0f;
                    m = u;
                } else if (u != -INFINITY) {
                    s += expf(u - m);
                }
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const float mb = __shfl_xor_sync(0xffffffffu, m, o);
            const float sb = __shfl_xor_sync(0xffffffffu, s, o);
            sm_merge(m, s, mb, sb);
        }
        for (int64_t cv = lane; cv < nv; cv += 32) {
            nm_vec<T, V> v = nm_ld<T, V>(xr + cv * V);
#pragma unroll
            for (int q = 0; q < V; q++)
                v.v[q] = nm_from_f32<T>(expf(scale * nm_f32(v.v[q]) - m) / s);
            nm_st<T, V>(yr + cv * V, v);
        }
    }
}

template <typename T> static void softmax_launch(cudaStream_t st, const eng_softmax_args *a) {
    const unsigned grid = eng_cuda_grid_1d(a->rows, NORM_WARPS, NORM_MAX_BLOCKS);
    T *y = (T *)a->y;
    const T *x = (const T *)a->x;
    if (nm_vec_width(sizeof(T), a->c, a->y, a->x) > 1) {
        softmax_kernel<T, (int)(16 / sizeof(T))>
            <<<grid, NORM_BLOCK, 0, st>>>(y, x, a->rows, a->c, a->scale);
    } else {
        softmax_kernel<T, 1><<<grid, NORM_BLOCK, 0, st>>>(y, x, a->rows, a->c, a->scale);
    }
}

int eng_cuda_softmax(eng_stream *s, const eng_softmax_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_softmax";
    cudaStream_t st = 0;
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = nm_check_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = nm_check_count(fn, "rows", a->rows, err)) != ENG_OK) return rc;
    if ((rc = nm_check_count(fn, "c", a->c, err)) != ENG_OK) return rc;
    const int64_t n = a->rows * a->c;
    if ((rc = eng_cuda_check_1d(fn, n, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    switch (a->dtype) {
    case ENG_DTYPE_F16: softmax_launch<__half>(st, a); break;
    case ENG_DTYPE_BF16: softmax_launch<__nv_bfloat16>(st, a); break;
    default: softmax_launch<float>(st, a); break;
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

void eng_cuda_register_norm(eng_op_table *ops) {
    ops->groupnorm = eng_cuda_groupnorm;
    ops->layernorm = eng_cuda_layernorm;
    ops->softmax = eng_cuda_softmax;
}
