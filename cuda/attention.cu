/* attention.cu: scaled dot-product attention, O = softmax(scale Q K^T [+ causal mask]) V (twin:
 * eng_cpu_attention in engine/eng_ops_attention.c; arguments: eng_attention_args in
 * engine/eng_kernels.h). q (B, Lq, H, D), k and v (B, Lk, H, D), o (B, Lq, H, D), indexed
 * (b, l, h, d) with d contiguous and per-tensor element strides for b, l and h.
 *
 * Two kernels:
 *  - flash_attention_fwd_kernel<T, DP, MT> (f16 and bf16): a flash-attention forward pass of our
 *    own (Dao et al. 2022/2023, rewritten from the papers' algorithm): one block of 4 warps per
 *    (tile of 16 * 4 * MT queries, b * h); Q, K and V tiles staged in shared memory with cp.async,
 *    K/V double-buffered (the load of key tile t + 1 overlaps the math on tile t); S = Q K^T and
 *    O += P V on tensor cores with mma.sync m16n8k16 (f32 accumulation); online softmax in f32
 *    registers, never forming the Lq x Lk matrix. DP is the head dim padded to a multiple of 16
 *    (the mma's k): d <= 48 runs as 48 (SD's 40 included), <= 64 as 64, <= 80 as 80 (= 5 x 16,
 *    no padding), <= 128 as 128, <= 160 as 160 (= 10 x 16); the padded columns are zero in
 *    shared memory, so they add nothing to Q K^T, and their O columns are not stored.
 *  - attention_simple_kernel<T> (f32 always; f16/bf16 when the flash kernel's assumptions do not
 *    hold): one warp per query row, f32 throughout, any d up to ATT_SIMPLE_MAX_D. Correct and
 *    plain, not fast: f32 attention is not on SD's hot path (f16/bf16 are), and converting f32
 *    inputs to f16 for the tensor cores would lose the precision f32 callers ask for.
 *
 * Why mma.sync in inline PTX rather than nvcuda::wmma: the online softmax needs each thread to
 * know which rows and columns of S it holds (to mask, to take row maxima, and to feed P back as
 * the A operand of P V without a trip through shared memory). mma.sync's fragment layouts are
 * documented in the PTX ISA; wmma's are opaque. ldmatrix loads the fragments from padded shared
 * memory (row stride DP + 8 halves: the 8 rows an ldmatrix phase reads fall in distinct banks).
 *
 * Masking: key j is hidden from query i when j >= Lk or (causal) j > i + (Lk - Lq); hidden
 * scores are set to -inf before the row maximum. A query that sees no key (causal, Lq > Lk)
 * gets O = 0, as on the CPU. Scores are kept in log2 units (scale * log2(e) folded in), so the
 * softmax is exp2; any sign of scale works because the maximum is taken after scaling.
 *
 * Launch: grid (query tiles, min(B H, 65535), ceil(B H / 65535)); query tiles in reverse order
 * so the costliest causal tiles start first. The launcher checks what the flash kernel assumes
 * (compute capability >= 8.0, d % 8 == 0 and d <= 160, every pointer 16-byte aligned and every
 * b/l/h stride of extent > 1 a multiple of 8 elements, so each row is whole 16-byte chunks) and
 * falls back to the simple kernel otherwise. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

#include "eng_cuda.h"
#include "eng_cuda_common.cuh"
#include "eng_cuda_impl.h"

/* mma.sync m16n8k16 for f16/bf16, ldmatrix and cp.async need sm_80. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define ATT_HAVE_SM80 1
#else
#define ATT_HAVE_SM80 0
#endif

enum {
    FA_WARPS = 4,
    FA_THREADS = FA_WARPS * 32,
    FA_BLOCK_N = 64, /* keys per tile */
    FA_PAD = 8,      /* halves after each shared-memory row: conflict-free ldmatrix */
    FA_MAX_D = 160,
    SA_WARPS = 4, /* simple kernel: one warp per query row */
    SA_THREADS = SA_WARPS * 32,
    ATT_SIMPLE_MAX_D = 1024, /* simple kernel: SA_WARPS (2 d + 32) floats of shared memory */
    ATT_MAX_LEN = 1 << 30,   /* Lq, Lk: row arithmetic in int stays far from overflow */
    ATT_MAX_GRID_YZ = 65535,
};

#define ATT_LOG2E 1.4426950408889634f

/* What the kernels read: eng_attention_args with int lengths and the scale in log2 units. */
typedef struct att_params {
    void *o;
    const void *q, *k, *v;
    int64_t q_stride[3], k_stride[3], v_stride[3], o_stride[3]; /* b, l, h (elements) */
    int64_t bh_total;                                           /* batch * heads */
    int heads, lq, lk, d;
    float scale_log2; /* scale * log2(e) */
    int causal;
} att_params;

/* ---- element helpers ------------------------------------------------------------------------ */

static __device__ __forceinline__ float att_to_f32(float x) {
    return x;
}
static __device__ __forceinline__ float att_to_f32(__half x) {
    return __half2float(x);
}
static __device__ __forceinline__ float att_to_f32(__nv_bfloat16 x) {
    return __bfloat162float(x);
}

template <typename T> static __device__ __forceinline__ T att_from_f32(float x);
template <> __device__ __forceinline__ float att_from_f32<float>(float x) {
    return x;
}
template <> __device__ __forceinline__ __half att_from_f32<__half>(float x) {
    return __float2half_rn(x);
}
template <> __device__ __forceinline__ __nv_bfloat16 att_from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

/* Two floats rounded to T and packed into one 32-bit register, `lo` in the low half (the element
 * with the smaller column index, as mma fragments and memory order want). */
template <typename T> static __device__ __forceinline__ uint32_t att_pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t att_pack2<__half>(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}
template <> __device__ __forceinline__ uint32_t att_pack2<__nv_bfloat16>(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* ---- PTX wrappers (sm_80+) ------------------------------------------------------------------ */

/* c (16x8 f32) += a (16x16, row) * b (16x8, col). Fragment layouts (PTX ISA, mma.m16n8k16), with
 * g = lane / 4 and t = lane % 4:
 *   a[0] = A[g][2t..2t+1]   a[1] = A[g+8][2t..2t+1]   a[2] = A[g][2t+8..]   a[3] = A[g+8][2t+8..]
 *   b0   = B[2t..2t+1][g]   b1   = B[2t+8..2t+9][g]
 *   c[0..1] = C[g][2t..2t+1]   c[2..3] = C[g+8][2t..2t+1] */
template <typename T>
static __device__ __forceinline__ void
att_mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void
att_mma<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if ATT_HAVE_SM80
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    (void)c, (void)a, (void)b0, (void)b1;
#endif
}
template <>
__device__ __forceinline__ void
att_mma<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if ATT_HAVE_SM80
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    (void)c, (void)a, (void)b0, (void)b1;
#endif
}

/* Four 8x8 matrices of 16-bit elements from shared memory: lanes 8i..8i+7 give the row addresses
 * (16-byte aligned) of matrix i; r[i] receives, in lane l, row l/4, elements 2(l%4) and 2(l%4)+1
 * of matrix i (.trans: column l/4, rows 2(l%4) and 2(l%4)+1). */
static __device__ __forceinline__ void att_ldsm_x4(uint32_t (&r)[4], const void *smem) {
#if ATT_HAVE_SM80
    const unsigned a = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#else
    (void)smem;
    r[0] = r[1] = r[2] = r[3] = 0;
#endif
}
static __device__ __forceinline__ void att_ldsm_x4_trans(uint32_t (&r)[4], const void *smem) {
#if ATT_HAVE_SM80
    const unsigned a = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#else
    (void)smem;
    r[0] = r[1] = r[2] = r[3] = 0;
#endif
}

/* 2^x with the SFU's ex2.approx (max relative error ~2^-22; -inf gives +0; results below 2^-126
 * flush to 0, which no probability that small can notice). exp2f would add range handling the
 * softmax does not need. */
static __device__ __forceinline__ float att_exp2(float x) {
#if ATT_HAVE_SM80
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
#else
    return exp2f(x);
#endif
}

/* 16 bytes global -> shared, asynchronously; pred == false writes 16 zero bytes and reads
 * nothing (src-size 0; gmem must still be a valid address). */
static __device__ __forceinline__ void att_cp_async16(void *smem, const void *gmem, bool pred) {
#if ATT_HAVE_SM80
    const unsigned a = (unsigned)__cvta_generic_to_shared(smem);
    const int n = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(gmem), "r"(n)
                 : "memory");
#else
    (void)smem, (void)gmem, (void)pred;
#endif
}
static __device__ __forceinline__ void att_cp_async_commit() {
#if ATT_HAVE_SM80
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
static __device__ __forceinline__ void att_cp_async_wait_all() {
#if ATT_HAVE_SM80
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
}

/* ROWS x DP elements into shared memory (row stride DP + FA_PAD) from global rows g + r ld,
 * r < rows, columns < d; everything else (rows >= rows, columns d..DP-1) zero. g is row 0 of the
 * tile (valid: rows >= 1). Each thread moves 16-byte chunks; d % 8 == 0 (launcher). */
template <typename T, int ROWS, int DP>
static __device__ __forceinline__ void
att_load_tile(T *s, const T *g, int64_t ld, int rows, int d, int tid) {
    constexpr int CH = DP / 8; /* chunks per row */
#pragma unroll 4
    for (int i = tid; i < ROWS * CH; i += FA_THREADS) {
        const int r = i / CH, c = i - r * CH;
        const bool ok = r < rows && c * 8 < d;
        att_cp_async16(s + r * (DP + FA_PAD) + c * 8, ok ? g + (int64_t)r * ld + c * 8 : g, ok);
    }
}

/* ---- the flash kernel ----------------------------------------------------------------------- */

/* One block: queries [m0, m0 + BLOCK_M) of one (b, h), BLOCK_M = 64 MT; warp w owns rows
 * w 16 MT + [0, 16 MT) as MT m-tiles of 16 rows. T: __half or __nv_bfloat16. DP: padded head dim
 * (multiple of 16, >= d). Shared memory (dynamic, 4 FA_BLOCK_N (DP + FA_PAD) elements):
 *   [K buf 0][V buf 0][K buf 1][V buf 1], each FA_BLOCK_N rows of DP + FA_PAD;
 *   the Q tile (BLOCK_M <= 2 FA_BLOCK_N rows) sits in buffer 1 until its fragments are in
 *   registers, then buffer 1 takes key tile 1.
 * Registers per thread: Q fragments MT DP/16 x 4, S MT 8 x 4 f32, O MT DP/8 x 4 f32, and the
 * running max m and sum l of its rows g and g + 8 of each m-tile (l is a partial sum over the
 * thread's columns, reduced over the quad at the end; m is quad-uniform).
 * Assumes (launcher): sm_80+, d % 8 == 0, d <= DP, 16-byte aligned rows, lq, lk in [1, 2^30]. */
template <typename T, int DP, int MT>
static __global__ void __launch_bounds__(FA_THREADS)
    flash_attention_fwd_kernel(const att_params p) {
#if !ATT_HAVE_SM80
    __trap(); /* the launcher never picks this kernel below sm_80 (the PTX wrappers are empty) */
#endif
    constexpr int BLOCK_M = FA_WARPS * 16 * MT;
    constexpr int LDS = DP + FA_PAD;       /* shared row stride, elements */
    constexpr int TILE = FA_BLOCK_N * LDS; /* one K or V tile, elements */
    constexpr int KSTEPS = DP / 16;        /* k-steps of Q K^T; 16-column pairs of P V */
    constexpr int NT_S = FA_BLOCK_N / 8;   /* 8-key n-tiles of S */
    constexpr int NT_O = DP / 8;           /* 8-column n-tiles of O */
    static_assert(DP % 16 == 0 && DP <= FA_MAX_D, "DP: a multiple of 16 up to 160");
    static_assert(BLOCK_M <= 2 * FA_BLOCK_N, "Q must fit in K/V buffer 1");
    static_assert((LDS * (int)sizeof(T)) % 16 == 0, "16-byte aligned shared rows");
    extern __shared__ __align__(128) unsigned char fa_smem[];
    T *const smem = reinterpret_cast<T *>(fa_smem);
    T *const sq = smem + 2 * TILE;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int64_t bh = (int64_t)blockIdx.z * gridDim.y + blockIdx.y;
    if (bh >= p.bh_total) return; /* whole block */
    const int64_t b = bh / p.heads, h = bh % p.heads;
    const int m0 = (int)(gridDim.x - 1 - blockIdx.x) * BLOCK_M;
    /* causal: key j is visible to query i iff j <= i + off */
    const int64_t off = (int64_t)p.lk - p.lq;
    const T *const qg = (const T *)p.q + b * p.q_stride[0] + h * p.q_stride[2];
    const T *const kg = (const T *)p.k + b * p.k_stride[0] + h * p.k_stride[2];
    const T *const vg = (const T *)p.v + b * p.v_stride[0] + h * p.v_stride[2];
    T *const og = (T *)p.o + b * p.o_stride[0] + h * p.o_stride[2];

    /* keys any row of the block can see: [0, n_end) */
    int n_end = p.lk;
    if (p.causal) {
        const int64_t lim = (int64_t)m0 + BLOCK_M + off;
        if (lim < n_end) n_end = lim > 0 ? (int)lim : 0;
    }
    const int ntiles = (n_end + FA_BLOCK_N - 1) / FA_BLOCK_N;

    const int g = lane >> 2, t4 = lane & 3;
    const int wrow = warp * 16 * MT; /* the warp's first row within the block */
    float o_acc[MT][NT_O][4];
    float row_m[MT][2], row_l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int nt = 0; nt < NT_O; nt++)
            o_acc[mt][nt][0] = o_acc[mt][nt][1] = o_acc[mt][nt][2] = o_acc[mt][nt][3] = 0.0f;
        row_m[mt][0] = row_m[mt][1] = -INFINITY;
        row_l[mt][0] = row_l[mt][1] = 0.0f;
    }

    if (ntiles > 0) { /* block-uniform */
        const int q_rows = p.lq - m0 < BLOCK_M ? p.lq - m0 : BLOCK_M;
        att_load_tile<T, BLOCK_M, DP>(sq, qg + (int64_t)m0 * p.q_stride[1], p.q_stride[1], q_rows,
                                      p.d, tid);
        {
            const int k_rows = p.lk < FA_BLOCK_N ? p.lk : FA_BLOCK_N;
            att_load_tile<T, FA_BLOCK_N, DP>(smem, kg, p.k_stride[1], k_rows, p.d, tid);
            att_load_tile<T, FA_BLOCK_N, DP>(smem + TILE, vg, p.v_stride[1], k_rows, p.d, tid);
        }
        att_cp_async_commit();
        att_cp_async_wait_all();
        __syncthreads();

        /* Q fragments: lanes 0-15 address rows 0-15 at column 16 ks, lanes 16-31 the same rows
         * at column 16 ks + 8 (matrices: rows 0-7 / 8-15 x columns lo / hi = a[0..3]). */
        uint32_t qf[MT][KSTEPS][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
#pragma unroll
            for (int ks = 0; ks < KSTEPS; ks++) {
                att_ldsm_x4(qf[mt][ks],
                            sq + (wrow + mt * 16 + (lane & 15)) * LDS + ks * 16 + (lane >> 4) * 8);
            }
        }
        __syncthreads(); /* buffer 1 (Q) is free for key tile 1 */

        for (int t = 0; t < ntiles; t++) {
            const int n0 = t * FA_BLOCK_N;
            const T *const sk = smem + (t & 1) * 2 * TILE;
            const T *const sv = sk + TILE;
            if (t + 1 < ntiles) { /* prefetch tile t + 1 into the other buffer */
                T *const nk = smem + ((t + 1) & 1) * 2 * TILE;
                const int n1 = n0 + FA_BLOCK_N;
                const int rows = p.lk - n1 < FA_BLOCK_N ? p.lk - n1 : FA_BLOCK_N;
                att_load_tile<T, FA_BLOCK_N, DP>(nk, kg + (int64_t)n1 * p.k_stride[1],
                                                 p.k_stride[1], rows, p.d, tid);
                att_load_tile<T, FA_BLOCK_N, DP>(nk + TILE, vg + (int64_t)n1 * p.v_stride[1],
                                                 p.v_stride[1], rows, p.d, tid);
                att_cp_async_commit();
            }

            /* S (16 MT x 64) = Q K^T. K fragments, keys n = 16 np + [0, 16): lane l addresses
             * key row 16 np + (l & 7) + 8 (l >> 4), column 16 ks + 8 ((l >> 3) & 1), so
             * kb[0], kb[1] are b0, b1 of n-tile 2 np and kb[2], kb[3] those of n-tile 2 np + 1. */
            float s[MT][NT_S][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nt = 0; nt < NT_S; nt++)
                    s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < KSTEPS; ks++) {
#pragma unroll
                for (int np = 0; np < NT_S / 2; np++) {
                    uint32_t kb[4];
                    att_ldsm_x4(kb, sk + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS +
                                        ks * 16 + (((lane >> 3) & 1) << 3));
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        att_mma<T>(s[mt][2 * np], qf[mt][ks], kb[0], kb[1]);
                        att_mma<T>(s[mt][2 * np + 1], qf[mt][ks], kb[2], kb[3]);
                    }
                }
            }

            /* scale into log2 units; hide keys >= lk and, causal, keys j > i + off */
            const bool need_mask =
                n0 + FA_BLOCK_N > p.lk || (p.causal && (int64_t)n0 + FA_BLOCK_N - 1 > m0 + off);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
#pragma unroll
                for (int nt = 0; nt < NT_S; nt++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float x = s[mt][nt][e] * p.scale_log2;
                        if (need_mask) {
                            const int64_t row = m0 + wrow + mt * 16 + g + ((e >> 1) << 3);
                            const int col = n0 + nt * 8 + 2 * t4 + (e & 1);
                            if (col >= p.lk || (p.causal && col > row + off)) x = -INFINITY;
                        }
                        s[mt][nt][e] = x;
                    }
                }
            }

            /* online softmax: rows g (r = 0: s[..][0..1]) and g + 8 (r = 1: s[..][2..3]) */
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    float mx = row_m[mt][r];
#pragma unroll
                    for (int nt = 0; nt < NT_S; nt++)
                        mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1)); /* the quad holds */
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2)); /* the row */
                    /* a row that has seen only hidden keys keeps mx = -inf: subtract 0 so that
                     * exp2(-inf - m) is 0 rather than NaN */
                    const float msafe = mx == -INFINITY ? 0.0f : mx;
                    const float alpha = att_exp2(row_m[mt][r] - msafe); /* 0 when m was -inf */
                    float sum = 0.0f;
#pragma unroll
                    for (int nt = 0; nt < NT_S; nt++) {
                        const float p0 = att_exp2(s[mt][nt][2 * r] - msafe);
                        const float p1 = att_exp2(s[mt][nt][2 * r + 1] - msafe);
                        s[mt][nt][2 * r] = p0;
                        s[mt][nt][2 * r + 1] = p1;
                        sum += p0 + p1;
                    }
                    row_m[mt][r] = mx;
                    row_l[mt][r] = row_l[mt][r] * alpha + sum;
#pragma unroll
                    for (int nt = 0; nt < NT_O; nt++) {
                        o_acc[mt][nt][2 * r] *= alpha;
                        o_acc[mt][nt][2 * r + 1] *= alpha;
                    }
                }
            }

            /* O += P V. P's A fragment for keys 16 kk + [0, 16) is S's accumulators of n-tiles
             * 2 kk and 2 kk + 1 rounded to T (same rows and columns: a[0] = row g keys 2t..2t+1 =
             * s[2kk][0..1], a[1] = row g+8 = s[2kk][2..3], a[2], a[3] likewise from s[2kk+1]).
             * V fragments with .trans, columns c = 16 dp + [0, 16): lane l addresses key row
             * 16 kk + (l & 7) + 8 ((l >> 3) & 1), column 16 dp + 8 (l >> 4), so vb[0], vb[1] are
             * b0, b1 of O's n-tile 2 dp and vb[2], vb[3] those of n-tile 2 dp + 1. */
#pragma unroll
            for (int kk = 0; kk < FA_BLOCK_N / 16; kk++) {
                uint32_t pa[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    pa[mt][0] = att_pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                    pa[mt][1] = att_pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                    pa[mt][2] = att_pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                    pa[mt][3] = att_pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
                }
#pragma unroll
                for (int dp = 0; dp < KSTEPS; dp++) {
                    uint32_t vb[4];
                    att_ldsm_x4_trans(vb,
                                      sv + (kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3)) * LDS +
                                          dp * 16 + ((lane >> 4) << 3));
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        att_mma<T>(o_acc[mt][2 * dp], pa[mt], vb[0], vb[1]);
                        att_mma<T>(o_acc[mt][2 * dp + 1], pa[mt], vb[2], vb[3]);
                    }
                }
            }

            /* tile t + 1 has landed, and every warp is done with buffer t & 1 before the next
             * iteration's prefetch overwrites it */
            att_cp_async_wait_all();
            __syncthreads();
        }
    }

    /* O / l, rows < lq, columns < d (pairs: d is even, so 2 t4 < d implies 2 t4 + 1 < d) */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float l = row_l[mt][r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const float inv = l > 0.0f ? 1.0f / l : 0.0f; /* no visible key: 0 */
            const int row = m0 + wrow + mt * 16 + g + 8 * r;
            if (row < p.lq) {
                T *const orow = og + (int64_t)row * p.o_stride[1];
#pragma unroll
                for (int nt = 0; nt < NT_O; nt++) {
                    const int col = nt * 8 + 2 * t4;
                    if (col < p.d) {
                        *reinterpret_cast<uint32_t *>(orow + col) = att_pack2<T>(
                            o_acc[mt][nt][2 * r] * inv, o_acc[mt][nt][2 * r + 1] * inv);
                    }
                }
            }
        }
    }
}

/* ---- the simple kernel ---------------------------------------------------------------------- */

/* One warp per query row i (block: SA_WARPS rows of one (b, h); row = blockIdx.x SA_WARPS +
 * warp). Keys in chunks of 32, lane j scoring key j0 + j (a dot product over d, f32), then the
 * online softmax over the chunk and O[c] += p_j v_j[c] for the lane's columns c = lane + 32 u.
 * Shared memory per warp: q row (d floats), O accumulator (d floats), the chunk's p (32 floats).
 * T: float, __half or __nv_bfloat16. Any d up to ATT_SIMPLE_MAX_D; any strides. */
template <typename T>
static __global__ void __launch_bounds__(SA_THREADS) attention_simple_kernel(const att_params p) {
    extern __shared__ __align__(128) unsigned char sa_smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t bh = (int64_t)blockIdx.z * gridDim.y + blockIdx.y;
    const int64_t row = (int64_t)blockIdx.x * SA_WARPS + warp;
    if (bh >= p.bh_total || row >= p.lq) return; /* whole warps; no block-wide barrier below */
    const int64_t b = bh / p.heads, h = bh % p.heads;
    const int d = p.d;
    float *const sq = reinterpret_cast<float *>(sa_smem) + (size_t)warp * (2 * d + 32);
    float *const so = sq + d;
    float *const sp = so + d;
    const T *const qrow =
        (const T *)p.q + b * p.q_stride[0] + row * p.q_stride[1] + h * p.q_stride[2];
    const T *const kg = (const T *)p.k + b * p.k_stride[0] + h * p.k_stride[2];
    const T *const vg = (const T *)p.v + b * p.v_stride[0] + h * p.v_stride[2];
    T *const orow = (T *)p.o + b * p.o_stride[0] + row * p.o_stride[1] + h * p.o_stride[2];

    for (int c = lane; c < d; c += 32) {
        sq[c] = att_to_f32(qrow[c]);
        so[c] = 0.0f;
    }
    __syncwarp();
    int64_t kend = p.lk; /* keys [0, kend) are visible */
    if (p.causal) {
        const int64_t lim = row + ((int64_t)p.lk - p.lq) + 1;
        if (lim < kend) kend = lim > 0 ? lim : 0;
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t j0 = 0; j0 < kend; j0 += 32) {
        const int64_t j = j0 + lane;
        float s = -INFINITY;
        if (j < kend) {
            const T *const krow = kg + j * p.k_stride[1];
            float dot = 0.0f;
            for (int c = 0; c < d; c++)
                dot = fmaf(sq[c], att_to_f32(krow[c]), dot);
            s = dot * p.scale_log2;
        }
        float mx = s;
#pragma unroll
        for (int w = 16; w > 0; w >>= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, w));
        mx = fmaxf(mx, m);
        const float msafe = mx == -INFINITY ? 0.0f : mx;
        const float pj = exp2f(s - msafe);
        const float alpha = exp2f(m - msafe);
        float sum = pj;
#pragma unroll
        for (int w = 16; w > 0; w >>= 1)
            sum += __shfl_xor_sync(0xffffffffu, sum, w);
        l = l * alpha + sum;
        m = mx;
        sp[lane] = pj;
        __syncwarp();
        const int nk = kend - j0 < 32 ? (int)(kend - j0) : 32;
        for (int c = lane; c < d; c += 32) {
            float acc = so[c] * alpha;
            for (int jj = 0; jj < nk; jj++)
                acc = fmaf(sp[jj], att_to_f32(vg[(j0 + jj) * p.v_stride[1] + c]), acc);
            so[c] = acc;
        }
        __syncwarp(); /* sp is rewritten by the next chunk */
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int c = lane; c < d; c += 32)
        orow[c] = att_from_f32<T>(so[c] * inv);
}

/* ---- launchers ------------------------------------------------------------------------------ */

static dim3 att_grid(int64_t x, int64_t bh) {
    const int64_t cap = ATT_MAX_GRID_YZ, y = bh < cap ? bh : cap;
    return dim3((unsigned)x, (unsigned)y, (unsigned)((bh + y - 1) / y));
}

template <typename T, int DP, int MT>
static int att_launch_flash(const att_params &p, cudaStream_t st, eng_err *err) {
    constexpr int BLOCK_M = FA_WARPS * 16 * MT;
    const size_t smem = (size_t)4 * FA_BLOCK_N * (DP + FA_PAD) * sizeof(T);
    if (smem > 48 * 1024) {
        ENG_CUDA_TRY(cudaFuncSetAttribute(flash_attention_fwd_kernel<T, DP, MT>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                     err);
    }
    flash_attention_fwd_kernel<T, DP, MT>
        <<<att_grid((p.lq + BLOCK_M - 1) / BLOCK_M, p.bh_total), FA_THREADS, smem, st>>>(p);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* The flash kernel for d: its padded head dim and shared memory (0 when d > FA_MAX_D). */
static size_t att_flash_smem(int64_t d) {
    const int dp = d <= 48 ? 48 : d <= 64 ? 64 : d <= 80 ? 80 : d <= 128 ? 128 : 160;
    return d > FA_MAX_D ? 0 : (size_t)4 * FA_BLOCK_N * (dp + FA_PAD) * 2;
}

template <typename T>
static int att_dispatch_flash(const att_params &p, cudaStream_t st, eng_err *err) {
    if (p.d <= 48) return att_launch_flash<T, 48, 2>(p, st, err);
    if (p.d <= 64) return att_launch_flash<T, 64, 2>(p, st, err);
    if (p.d <= 80) return att_launch_flash<T, 80, 1>(p, st, err);
    if (p.d <= 128) return att_launch_flash<T, 128, 1>(p, st, err);
    return att_launch_flash<T, 160, 1>(p, st, err);
}

template <typename T>
static int att_launch_simple(const att_params &p, cudaStream_t st, eng_err *err) {
    const size_t smem = (size_t)SA_WARPS * (2 * (size_t)p.d + 32) * sizeof(float);
    attention_simple_kernel<T>
        <<<att_grid((p.lq + SA_WARPS - 1) / SA_WARPS, p.bh_total), SA_THREADS, smem, st>>>(p);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* 1 when a tensor's pointer and strides keep every row 16-byte aligned (d % 8 == 0 checked by
 * the caller): the flash kernel's cp.async and ldmatrix need it. */
static int
att_rows_aligned(const void *ptr, const int64_t *stride, int64_t b, int64_t l, int64_t h) {
    const int64_t ext[3] = {b, l, h};
    if ((uintptr_t)ptr % 16 != 0) return 0;
    for (int i = 0; i < 3; i++) {
        if (ext[i] > 1 && stride[i] % 8 != 0) return 0;
    }
    return 1;
}

/* 1 when the flash kernel's assumptions hold for a (f16 or bf16); else the simple kernel runs. */
static int att_use_flash(const eng_attention_args *a, eng_err *err, int *use) {
    int dev = 0, major = 0, optin = 0;
    *use = 0;
    if (a->dtype == ENG_DTYPE_F32 || a->d % 8 != 0 || a->d > FA_MAX_D) return ENG_OK;
    if (!att_rows_aligned(a->q, a->q_stride, a->batch, a->lq, a->heads) ||
        !att_rows_aligned(a->k, a->k_stride, a->batch, a->lk, a->heads) ||
        !att_rows_aligned(a->v, a->v_stride, a->batch, a->lk, a->heads) ||
        !att_rows_aligned(a->o, a->o_stride, a->batch, a->lq, a->heads)) {
        return ENG_OK;
    }
    ENG_CUDA_TRY(cudaGetDevice(&dev), err);
    ENG_CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), err);
    ENG_CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), err);
    *use = major >= 8 && att_flash_smem(a->d) <= (size_t)optin;
    return ENG_OK;
}

extern "C" int eng_cuda_attention(eng_stream *s, const eng_attention_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_attention";
    cudaStream_t st = 0;
    att_params p;
    int rc, flash = 0;
    if (a == NULL) return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL arguments", fn);
    if (a->dtype != ENG_DTYPE_F32 && a->dtype != ENG_DTYPE_F16 && a->dtype != ENG_DTYPE_BF16) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: dtype %s (f32, f16 or bf16)", fn,
                           eng_dtype_name(a->dtype));
    }
    if (a->batch < 0 || a->heads < 0 || a->lq < 0 || a->lk < 0 || a->d < 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: batch %lld, heads %lld, lq %lld, lk %lld, d %lld (need d >= 1, "
                           "the others >= 0)",
                           fn, (long long)a->batch, (long long)a->heads, (long long)a->lq,
                           (long long)a->lk, (long long)a->d);
    }
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (a->batch == 0 || a->heads == 0 || a->lq == 0) return ENG_OK;
    if (a->lk == 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: lk = 0: %lld queries have no key to attend to", fn,
                           (long long)a->lq);
    }
    if (a->q == NULL || a->k == NULL || a->v == NULL || a->o == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL %s", fn,
                           a->q == NULL   ? "q"
                           : a->k == NULL ? "k"
                           : a->v == NULL ? "v"
                                          : "o");
    }
    if (a->lq > ATT_MAX_LEN || a->lk > ATT_MAX_LEN || a->heads > INT32_MAX ||
        a->batch > (int64_t)ATT_MAX_GRID_YZ * ATT_MAX_GRID_YZ ||
        a->batch * a->heads > (int64_t)ATT_MAX_GRID_YZ * ATT_MAX_GRID_YZ) {
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "%s: lq %lld, lk %lld, batch x heads %lld x %lld exceed the kernels' "
                           "limits (2^30 rows, 65535^2 heads in all)",
                           fn, (long long)a->lq, (long long)a->lk, (long long)a->batch,
                           (long long)a->heads);
    }
    if ((rc = att_use_flash(a, err, &flash)) != ENG_OK) return rc;
    if (!flash && a->d > ATT_SIMPLE_MAX_D) {
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "%s: head dim %lld: the tensor-core kernel takes f16/bf16 with d <= %d "
                           "and d %% 8 == 0, the simple kernel d <= %d",
                           fn, (long long)a->d, (int)FA_MAX_D, (int)ATT_SIMPLE_MAX_D);
    }

    memset(&p, 0, sizeof p);
    p.o = a->o;
    p.q = a->q;
    p.k = a->k;
    p.v = a->v;
    for (int i = 0; i < 3; i++) {
        p.q_stride[i] = a->q_stride[i];
        p.k_stride[i] = a->k_stride[i];
        p.v_stride[i] = a->v_stride[i];
        p.o_stride[i] = a->o_stride[i];
    }
    p.bh_total = a->batch * a->heads;
    p.heads = (int)a->heads;
    p.lq = (int)a->lq;
    p.lk = (int)a->lk;
    p.d = (int)a->d;
    p.scale_log2 = a->scale * ATT_LOG2E;
    p.causal = a->causal != 0;

    switch (a->dtype) {
    case ENG_DTYPE_F16:
        return flash ? att_dispatch_flash<__half>(p, st, err)
                     : att_launch_simple<__half>(p, st, err);
    case ENG_DTYPE_BF16:
        return flash ? att_dispatch_flash<__nv_bfloat16>(p, st, err)
                     : att_launch_simple<__nv_bfloat16>(p, st, err);
    default: return att_launch_simple<float>(p, st, err);
    }
}

void eng_cuda_register_attention(eng_op_table *ops) {
    ops->attention = eng_cuda_attention;
}
