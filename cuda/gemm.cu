/* gemm.cu: the GEMM family on cuBLASLt (twin: eng_cpu_gemm in engine/eng_ops_gemm.c).
 *
 *   C[b] = act(alpha op(A[b]) op(B[b]) + beta C[b] + bias), row-major, eng_gemm_args
 *
 * Types: f32, f16, bf16 storage, always CUBLAS_COMPUTE_32F (f32 accumulation) with f32 scales.
 * f32 runs without TF32, so it matches the CPU twin to f32 rounding (conventions 2.7's f32 row);
 * the f16/bf16 paths are the fast ones (tensor cores).
 *
 * Row-major through a column-major library: a row-major (r, c) matrix with row stride ld is the
 * column-major (c, r) matrix with the same ld, so C^T = op(B)^T op(A)^T is computed with
 * cuBLASLt's A = our B (transposed when trans_b) and its B = our A, giving the column-major
 * (n, m) D that is our row-major (m, n) C. cuBLASLt's bias runs along D's rows, i.e. along our
 * columns: exactly nn.Linear's bias. Batches: strided-batch layouts; a batch stride of 0 shares
 * one matrix between all batches.
 *
 * Epilogues: cuBLASLt fuses the bias (CUBLASLT_EPILOGUE_BIAS) and its GELU, which is the tanh
 * approximation (PyTorch relies on the same: _addmm_activation's GELU is gelu(approximate='tanh')),
 * so GELU_TANH with or without bias is fused for f16/bf16. f32 keeps GELU_TANH out of the library
 * (its tanh precision is not documented, and f32 is the accuracy path), and the exact GELU (erf),
 * SILU and QUICK_GELU are not in the library: for those, gemm_epilogue_*_kernel makes one pass
 * over C after the matmul. When cuBLASLt offers no algorithm with a fused epilogue for a shape,
 * the plan falls back to a plainer epilogue plus that pass; a batched layout with no algorithm
 * at all (a broadcast batch stride of 0 that no kernel takes) becomes one call per batch.
 *
 * Plans: the descriptors, the heuristic's algorithm and its workspace size are made once per
 * (dtype, transposes, m, n, k, batch, leading dimensions, batch strides, bias and act, pointer
 * alignments, workspace limit) and kept in the per-device state impl->gemm (a small array with
 * hashed keys). The cuBLASLt handle is created there on first use. The workspace (up to
 * GEMM_WORKSPACE_BYTES, the size cuBLAS recommends for Hopper) is taken from the stream's arena
 * for the duration of the call and rewound once the work is enqueued (stream order makes the
 * reuse by the next op safe); a stream without an arena gets plans that need no workspace.
 * Errors: ENG_E_INVALID_ARG (arguments, named), ENG_E_UNSUPPORTED (no algorithm), ENG_E_DEVICE
 * with the cuBLASLt status name, ENG_E_OOM (the workspace). */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdlib.h>
#include <string.h>

#include "eng_act_math.h"
#include "eng_alloc.h"
#include "eng_cuda.h"
#include "eng_cuda_common.cuh"
#include "eng_cuda_impl.h"

#define GEMM_WORKSPACE_BYTES ((uint64_t)32 << 20)
enum {
    GEMM_EPI_BLOCK = 256,       /* threads per block of the epilogue pass */
    GEMM_EPI_MAX_BLOCKS = 8192, /* grid cap (grid-stride loop beyond) */
    GEMM_MAX_PLANS = 4096       /* the cache is emptied beyond this many shapes */
};

/* ---- element access and activations (the formulas of the CPU twin) --------------------------- */

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

/* c[b][r, j] = act((read_c ? scale * c[b][r, j] : 0) + bias[j]) for b < batch, r < m, j < n:
 * the epilogue cuBLASLt did not fuse (read_c = 1, scale = 1), or the whole GEMM when k == 0
 * (read_c = beta != 0, scale = beta). One thread per element of C, flattened (b, r, j) with j
 * fastest so a warp reads one row; int64 grid-stride loop; no shared memory. bias may be NULL.
 * Assumes total = batch * m * n > 0 (the launcher returns early otherwise). */
template <typename T>
static __global__ void gemm_epilogue_kernel(T *c,
                                            int64_t ldc,
                                            int64_t stride_c,
                                            int64_t m,
                                            int64_t n,
                                            int64_t total,
                                            const T *bias,
                                            int act,
                                            float scale,
                                            int read_c) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        const int64_t j = i % n, rb = i / n;
        T *p = c + (rb / m) * stride_c + (rb % m) * ldc + j;
        float v = read_c ? scale * to_f32(*p) : 0.0f;
        if (bias != NULL) v += to_f32(bias[j]);
        *p = from_f32<T>(eng_act_apply((eng_act)act, v));
    }
}

/* Launches gemm_epilogue_kernel for g's C. */
static int epilogue_launch(cudaStream_t st,
                           const eng_gemm_args *g,
                           const void *bias,
                           int act,
                           float scale,
                           int read_c,
                           eng_err *err) {
    const int64_t total = g->batch * g->m * g->n;
    if (total == 0) return ENG_OK;
    const unsigned grid = eng_cuda_grid_1d(total, GEMM_EPI_BLOCK, GEMM_EPI_MAX_BLOCKS);
    switch (g->dtype) {
    case ENG_DTYPE_F32:
        gemm_epilogue_kernel<float>
            <<<grid, GEMM_EPI_BLOCK, 0, st>>>((float *)g->c, g->ldc, g->batch_stride_c, g->m, g->n,
                                              total, (const float *)bias, act, scale, read_c);
        break;
    case ENG_DTYPE_F16:
        gemm_epilogue_kernel<__half>
            <<<grid, GEMM_EPI_BLOCK, 0, st>>>((__half *)g->c, g->ldc, g->batch_stride_c, g->m, g->n,
                                              total, (const __half *)bias, act, scale, read_c);
        break;
    default: /* bf16: gemm_check admits nothing else */
        gemm_epilogue_kernel<__nv_bfloat16><<<grid, GEMM_EPI_BLOCK, 0, st>>>(
            (__nv_bfloat16 *)g->c, g->ldc, g->batch_stride_c, g->m, g->n, total,
            (const __nv_bfloat16 *)bias, act, scale, read_c);
        break;
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- cuBLASLt errors -------------------------------------------------------------------------- */

static int lt_check(cublasStatus_t s, const char *expr, int line, eng_err *err) {
    if (s == CUBLAS_STATUS_SUCCESS) return ENG_OK;
    return eng_err_set(err, ENG_E_DEVICE, "eng_cuda_gemm: %s failed at gemm.cu:%d: %s (%s)", expr,
                       line, cublasLtGetStatusName(s), cublasLtGetStatusString(s));
}
/* Evaluates to ENG_OK or ENG_E_DEVICE (message in *err), for functions with a done: label. */
#define LT_CHECK(expr) lt_check((expr), #expr, __LINE__, err)

/* ---- plans and the per-device state ----------------------------------------------------------- */

/* Everything the choice of algorithm depends on. Filled after a memset (no padding garbage), so
 * keys compare with memcmp. */
typedef struct gemm_key {
    int32_t dtype, trans_a, trans_b, act, has_bias;
    uint32_t align_a, align_b, align_c, align_bias; /* bytes, capped at 256 */
    int32_t pad_;
    int64_t m, n, k, batch, lda, ldb, ldc, stride_a, stride_b, stride_c;
    uint64_t ws_limit;
} gemm_key;

typedef struct gemm_plan {
    gemm_key key;
    uint64_t hash;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc; /* cuBLASLt's A (our B), B (our A), C = D (our C) */
    cublasLtMatmulAlgo_t algo;
    size_t workspace; /* bytes the algorithm needs */
    int epi_bias;     /* the bias pointer is set on `op` */
    int post_bias;    /* the pass after the matmul adds the bias ... */
    int post_act;     /* ... and applies this act (ENG_ACT_NONE: no pass unless post_bias) */
    int per_batch;    /* no algorithm for the batched layout: one batch-1 call per batch */
} gemm_plan;

typedef struct gemm_state {
    cublasLtHandle_t lt;
    gemm_plan *plans;
    int64_t nplans, cap;
} gemm_state;

static void plan_destroy(gemm_plan *p) {
    if (p->op != NULL) cublasLtMatmulDescDestroy(p->op);
    if (p->la != NULL) cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb != NULL) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc != NULL) cublasLtMatrixLayoutDestroy(p->lc);
    memset(p, 0, sizeof *p);
}

void eng_cuda_gemm_state_free(void *state) {
    gemm_state *st = (gemm_state *)state;
    if (st == NULL) return;
    for (int64_t i = 0; i < st->nplans; i++)
        plan_destroy(&st->plans[i]);
    free(st->plans);
    if (st->lt != NULL) cublasLtDestroy(st->lt);
    free(st);
}

/* impl->gemm, created on first use (the device is current: see eng_cuda.h). */
static int state_get(eng_cuda_impl *impl, gemm_state **out, eng_err *err) {
    int rc = ENG_OK;
    gemm_state *st = (gemm_state *)impl->gemm;
    if (st == NULL) {
        st = (gemm_state *)calloc(1, sizeof *st);
        if (st == NULL) {
            return eng_err_set(err, ENG_E_OOM, "eng_cuda_gemm: %s: out of host memory", impl->name);
        }
        if ((rc = LT_CHECK(cublasLtCreate(&st->lt))) != ENG_OK) {
            eng_err_prefix(err, "%s", impl->name);
            free(st);
            return rc;
        }
        impl->gemm = st;
    }
    *out = st;
    return ENG_OK;
}

static uint64_t key_hash(const gemm_key *k) {
    const unsigned char *b = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* The alignment in bytes (<= 256) that every batch's start shares: the lowest set bit of the base
 * address and of the batch stride in bytes. */
static uint32_t align_of(const void *p, int64_t stride_elems, size_t elem) {
    const uintptr_t v = (uintptr_t)p | (uintptr_t)((uint64_t)stride_elems * elem);
    if (v == 0) return 256;
    const uintptr_t low = v & (~v + 1);
    return low >= 256 ? 256u : (uint32_t)low;
}

static cudaDataType_t lt_type(eng_dtype d) {
    return d == ENG_DTYPE_F32 ? CUDA_R_32F : d == ENG_DTYPE_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

/* A column-major (rows, cols) layout with leading dimension ld, strided-batched when batch > 1. */
static int layout_create(cublasLtMatrixLayout_t *out,
                         cudaDataType_t type,
                         int64_t rows,
                         int64_t cols,
                         int64_t ld,
                         int64_t batch,
                         int64_t stride,
                         eng_err *err) {
    int rc;
    if ((rc = LT_CHECK(cublasLtMatrixLayoutCreate(out, type, (uint64_t)rows, (uint64_t)cols,
                                                  ld))) != ENG_OK) {
        return rc;
    }
    if (batch > 1) {
        const int32_t count = (int32_t)batch;
        if ((rc = LT_CHECK(cublasLtMatrixLayoutSetAttribute(
                 *out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count))) != ENG_OK ||
            (rc = LT_CHECK(cublasLtMatrixLayoutSetAttribute(
                 *out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride))) !=
                ENG_OK) {
            return rc;
        }
    }
    return ENG_OK;
}

/* One way to split the work between cuBLASLt's epilogue and our pass. */
typedef struct gemm_choice {
    cublasLtEpilogue_t epi;
    int epi_bias, post_bias, post_act;
} gemm_choice;

/* Makes the plan for key (descriptors + heuristic), trying the most fused choice first.
 * p is zeroed; on failure it holds whatever was created (the caller destroys it). */
static int
plan_create(gemm_state *st, gemm_plan *p, const gemm_key *key, const void *bias, eng_err *err) {
    cublasLtMatmulPreference_t pref = NULL;
    gemm_choice ch[3];
    int nch = 0, rc = ENG_OK;
    cublasStatus_t last = CUBLAS_STATUS_SUCCESS;
    const cudaDataType_t type = lt_type((eng_dtype)key->dtype);
    const int has_bias = key->has_bias;
    /* The bias is fused only from a 16-byte aligned pointer (what vectorized epilogues read). */
    const int bias_ok = has_bias && key->align_bias >= 16;
    const int gelu_fused = key->act == ENG_ACT_GELU_TANH && key->dtype != ENG_DTYPE_F32;
    memset(p, 0, sizeof *p);
    p->key = *key;
    p->hash = key_hash(key);
    if (gelu_fused) {
        ch[nch++] = {bias_ok ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU, bias_ok,
                     has_bias && !bias_ok, ENG_ACT_NONE};
    }
    /* plainer fallbacks: the bias alone, then nothing fused (our pass does the rest) */
    if (bias_ok) ch[nch++] = {CUBLASLT_EPILOGUE_BIAS, 1, 0, key->act};
    ch[nch++] = {CUBLASLT_EPILOGUE_DEFAULT, 0, has_bias, key->act};

    /* cuBLASLt's A is our B: row-major (k, n) or (n, k) = column-major (n, k) or (k, n). */
    const int64_t rows_b = key->trans_b ? key->n : key->k, cols_b = key->trans_b ? key->k : key->n;
    const int64_t rows_a = key->trans_a ? key->k : key->m, cols_a = key->trans_a ? key->m : key->k;
    const cublasOperation_t op_a = key->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = key->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    if ((rc = layout_create(&p->la, type, cols_b, rows_b, key->ldb, key->batch, key->stride_b,
                            err)) != ENG_OK ||
        (rc = layout_create(&p->lb, type, cols_a, rows_a, key->lda, key->batch, key->stride_a,
                            err)) != ENG_OK ||
        (rc = layout_create(&p->lc, type, key->n, key->m, key->ldc, key->batch, key->stride_c,
                            err)) != ENG_OK ||
        (rc = LT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F))) !=
            ENG_OK ||
        (rc = LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a,
                                                      sizeof op_a))) != ENG_OK ||
        (rc = LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b,
                                                      sizeof op_b))) != ENG_OK ||
        (rc = LT_CHECK(cublasLtMatmulPreferenceCreate(&pref))) != ENG_OK) {
        goto done;
    }
    {
        const uint64_t ws = key->ws_limit;
        const uint32_t al_a = key->align_b, al_b = key->align_a, al_c = key->align_c;
        if ((rc = LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
                 pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws))) != ENG_OK ||
            (rc = LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
                 pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a))) !=
                ENG_OK ||
            (rc = LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
                 pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b))) !=
                ENG_OK ||
            (rc = LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
                 pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c))) !=
                ENG_OK ||
            (rc = LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
                 pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c))) !=
                ENG_OK) {
            goto done;
        }
    }
    for (int i = 0; i < nch; i++) {
        cublasLtMatmulHeuristicResult_t res;
        int found = 0;
        const uint32_t epi = (uint32_t)ch[i].epi;
        /* The heuristic reads the bias pointer's alignment; the call sets it again each time. */
        const void *bp = ch[i].epi_bias ? bias : NULL;
        if ((rc = LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                          &epi, sizeof epi))) != ENG_OK ||
            (rc = LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                          &bp, sizeof bp))) != ENG_OK) {
            goto done;
        }
        memset(&res, 0, sizeof res);
        last = cublasLtMatmulAlgoGetHeuristic(st->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 1,
                                              &res, &found);
        if (last == CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
            p->algo = res.algo;
            p->workspace = res.workspaceSize;
            p->epi_bias = ch[i].epi_bias;
            p->post_bias = ch[i].post_bias;
            p->post_act = ch[i].post_act;
            goto done;
        }
    }
    if (key->batch > 1) {
        /* e.g. a batch stride of 0 (broadcast) that no kernel takes: loop over the batches */
        p->per_batch = 1;
        goto done;
    }
    rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                     "eng_cuda_gemm: cuBLASLt has no algorithm for %s m=%lld n=%lld k=%lld "
                     "batch=%lld trans_a=%d trans_b=%d lda=%lld ldb=%lld ldc=%lld (alignments "
                     "%u/%u/%u bytes): %s",
                     eng_dtype_name((eng_dtype)key->dtype), (long long)key->m, (long long)key->n,
                     (long long)key->k, (long long)key->batch, key->trans_a, key->trans_b,
                     (long long)key->lda, (long long)key->ldb, (long long)key->ldc, key->align_a,
                     key->align_b, key->align_c, cublasLtGetStatusName(last));
done:
    if (pref != NULL) cublasLtMatmulPreferenceDestroy(pref);
    return rc;
}

/* The cached plan for key, made on a miss. *out points into st->plans (valid until the next
 * insertion). */
static int
plan_get(gemm_state *st, const gemm_key *key, const void *bias, gemm_plan **out, eng_err *err) {
    const uint64_t h = key_hash(key);
    gemm_plan p;
    int rc;
    for (int64_t i = 0; i < st->nplans; i++) {
        if (st->plans[i].hash == h && memcmp(&st->plans[i].key, key, sizeof *key) == 0) {
            *out = &st->plans[i];
            return ENG_OK;
        }
    }
    if ((rc = plan_create(st, &p, key, bias, err)) != ENG_OK) {
        plan_destroy(&p);
        return rc;
    }
    if (st->nplans == GEMM_MAX_PLANS) { /* a pathological number of shapes: start over */
        for (int64_t i = 0; i < st->nplans; i++)
            plan_destroy(&st->plans[i]);
        st->nplans = 0;
    }
    if (st->nplans == st->cap) {
        const int64_t cap = st->cap ? st->cap * 2 : 32;
        gemm_plan *np = (gemm_plan *)realloc(st->plans, (size_t)cap * sizeof *np);
        if (np == NULL) {
            plan_destroy(&p);
            return eng_err_set(err, ENG_E_OOM, "eng_cuda_gemm: out of host memory for plans");
        }
        st->plans = np;
        st->cap = cap;
    }
    st->plans[st->nplans] = p;
    *out = &st->plans[st->nplans++];
    return ENG_OK;
}

/* ---- the launcher ----------------------------------------------------------------------------- */

/* The checks of the CPU twin (engine/eng_ops_gemm.c), for the device dtypes. */
static int gemm_check(const char *fn, const eng_gemm_args *g, eng_err *err) {
    if (g->dtype != ENG_DTYPE_F32 && g->dtype != ENG_DTYPE_F16 && g->dtype != ENG_DTYPE_BF16) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: dtype %s (f32, f16 or bf16)", fn,
                           eng_dtype_name(g->dtype));
    }
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0 || g->batch > INT32_MAX) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: m=%lld n=%lld k=%lld batch=%lld", fn,
                           (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
    }
    if ((unsigned)g->act >= ENG_ACT_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: unknown activation %d", fn, (int)g->act);
    }
    const int64_t cols_a = g->trans_a ? g->m : g->k, cols_b = g->trans_b ? g->k : g->n;
    if (g->lda < (cols_a > 1 ? cols_a : 1) || g->ldb < (cols_b > 1 ? cols_b : 1) ||
        g->ldc < (g->n > 1 ? g->n : 1)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: leading dimensions lda=%lld ldb=%lld ldc=%lld too small for m=%lld "
                           "n=%lld k=%lld trans_a=%d trans_b=%d",
                           fn, (long long)g->lda, (long long)g->ldb, (long long)g->ldc,
                           (long long)g->m, (long long)g->n, (long long)g->k, g->trans_a != 0,
                           g->trans_b != 0);
    }
    if (g->batch_stride_a < 0 || g->batch_stride_b < 0 || g->batch_stride_c < 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: negative batch stride", fn);
    }
    if (g->batch > 1 && g->m > 0 && g->n > 0 && g->batch_stride_c < (g->m - 1) * g->ldc + g->n) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: batch_stride_c=%lld: the %lld batches of C (%lldx%lld, ldc=%lld) "
                           "would overlap",
                           fn, (long long)g->batch_stride_c, (long long)g->batch, (long long)g->m,
                           (long long)g->n, (long long)g->ldc);
    }
    if ((double)g->batch * (double)g->m * (double)g->n > (double)((int64_t)1 << 48)) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: C has too many elements", fn);
    }
    if (g->m > 0 && g->n > 0 && g->batch > 0) {
        if (g->c == NULL || (g->k > 0 && (g->a == NULL || g->b == NULL))) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL matrix (a %p, b %p, c %p)", fn,
                               g->a, g->b, g->c);
        }
    }
    return ENG_OK;
}

extern "C" int eng_cuda_gemm(eng_stream *s, const eng_gemm_args *g, eng_err *err) {
    static const char fn[] = "eng_cuda_gemm";
    cudaStream_t cs = 0;
    gemm_state *st = NULL;
    gemm_plan *p = NULL;
    gemm_key key;
    eng_arena *arena = s != NULL ? s->arena : NULL;
    eng_arena_pos mark = {0, 0, 0};
    void *ws = NULL;
    int rc, marked = 0;
    if (g == NULL) return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL arguments", fn);
    if ((rc = gemm_check(fn, g, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&cs, fn, s, err)) != ENG_OK) return rc;
    if (g->m == 0 || g->n == 0 || g->batch == 0) return ENG_OK;
    if (g->k == 0) { /* op(A) op(B) is empty: C = act(beta C + bias), C not read when beta = 0 */
        return epilogue_launch(cs, g, g->bias, g->act, g->beta, g->beta != 0.0f, err);
    }
    if (s == NULL || s->impl == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: needs a stream made by the CUDA backend (it holds the cuBLASLt "
                           "handle)",
                           fn);
    }
    eng_cuda_impl *impl = (eng_cuda_impl *)s->impl;
    if ((rc = state_get(impl, &st, err)) != ENG_OK) return rc;

    const size_t elem = eng_dtype_size(g->dtype);
    memset(&key, 0, sizeof key);
    key.dtype = (int32_t)g->dtype;
    key.trans_a = g->trans_a != 0;
    key.trans_b = g->trans_b != 0;
    key.act = (int32_t)g->act;
    key.has_bias = g->bias != NULL;
    key.align_a = align_of(g->a, g->batch > 1 ? g->batch_stride_a : 0, elem);
    key.align_b = align_of(g->b, g->batch > 1 ? g->batch_stride_b : 0, elem);
    key.align_c = align_of(g->c, g->batch > 1 ? g->batch_stride_c : 0, elem);
    key.align_bias = g->bias != NULL ? align_of(g->bias, 0, elem) : 0;
    key.m = g->m;
    key.n = g->n;
    key.k = g->k;
    key.batch = g->batch;
    key.lda = g->lda;
    key.ldb = g->ldb;
    key.ldc = g->ldc;
    key.stride_a = g->batch > 1 ? g->batch_stride_a : 0;
    key.stride_b = g->batch > 1 ? g->batch_stride_b : 0;
    key.stride_c = g->batch > 1 ? g->batch_stride_c : 0;
    key.ws_limit = arena != NULL ? GEMM_WORKSPACE_BYTES : 0;
    if ((rc = plan_get(st, &key, g->bias, &p, err)) != ENG_OK) return rc;
    if (p->per_batch) {
        eng_gemm_args one = *g;
        one.batch = 1;
        for (int64_t b = 0; b < g->batch && rc == ENG_OK; b++) {
            one.a = (const char *)g->a + (size_t)(b * g->batch_stride_a) * elem;
            one.b = (const char *)g->b + (size_t)(b * g->batch_stride_b) * elem;
            one.c = (char *)g->c + (size_t)(b * g->batch_stride_c) * elem;
            rc = eng_cuda_gemm(s, &one, err);
        }
        return rc;
    }

    if (p->workspace > 0) {
        if (arena == NULL) { /* cannot happen: ws_limit was 0 */
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: the plan needs a workspace", fn);
        }
        mark = eng_arena_mark(arena);
        marked = 1;
        if ((rc = eng_arena_take(arena, &ws, p->workspace, err)) != ENG_OK) {
            eng_err_prefix(err, "%s: cuBLASLt workspace", fn);
            goto done;
        }
    }
    if (p->epi_bias) {
        const void *bp = g->bias;
        if ((rc = LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                          &bp, sizeof bp))) != ENG_OK) {
            goto done;
        }
    }
    {
        const float alpha = g->alpha, beta = g->beta;
        /* C^T = op(B)^T op(A)^T: cuBLASLt's A is our B and its B our A; C and D are our C. */
        const cublasStatus_t ls =
            cublasLtMatmul(st->lt, p->op, &alpha, g->b, p->la, g->a, p->lb, &beta, g->c, p->lc,
                           g->c, p->lc, &p->algo, ws, p->workspace, cs);
        if (ls != CUBLAS_STATUS_SUCCESS) {
            rc = eng_err_set(err, ENG_E_DEVICE,
                             "%s: cublasLtMatmul failed for %s m=%lld n=%lld k=%lld batch=%lld: "
                             "%s (%s)",
                             fn, eng_dtype_name(g->dtype), (long long)g->m, (long long)g->n,
                             (long long)g->k, (long long)g->batch, cublasLtGetStatusName(ls),
                             cublasLtGetStatusString(ls));
            goto done;
        }
    }
    if (p->post_bias || p->post_act != ENG_ACT_NONE) {
        rc = epilogue_launch(cs, g, p->post_bias ? g->bias : NULL, p->post_act, 1.0f, 1, err);
    }
done:
    if (marked) eng_arena_rewind(arena, mark); /* the work is enqueued: stream order protects it */
    return rc;
}

void eng_cuda_register_gemm(eng_op_table *ops) {
    ops->gemm = eng_cuda_gemm;
}
