/* eng_ops_cpu.c: the CPU twins of the elementwise ops and the GEMM. Plain loops, split over the
 * stream's pool; these are the specification the CUDA kernels are tested against. */
#include "eng_ops.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>

#include "eng_sched.h"

/* Items per pool piece for cheap elementwise work: big enough that scheduling is noise. */
enum { ELEMENTWISE_GRAIN = 1 << 15 };

static eng_pool *stream_pool(const eng_stream *s) {
    return s != NULL ? s->pool : NULL;
}

typedef struct add_args {
    void *y;
    const void *a, *b;
} add_args;

static void add_f32_range(void *user, int64_t begin, int64_t end) {
    const add_args *p = user;
    float *y = p->y;
    const float *a = p->a, *b = p->b;
    for (int64_t i = begin; i < end; i++)
        y[i] = a[i] + b[i];
}

static void add_f16_range(void *user, int64_t begin, int64_t end) {
    const add_args *p = user;
    eng_f16 *y = p->y;
    const eng_f16 *a = p->a, *b = p->b;
    for (int64_t i = begin; i < end; i++) {
        y[i] = eng_f32_to_f16(eng_f16_to_f32(a[i]) + eng_f16_to_f32(b[i])); /* one rounding */
    }
}

static int
check_ptrs(const char *fn, const void *y, const void *a, const void *b, int64_t n, eng_err *err) {
    if (n < 0) return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n = %lld", fn, (long long)n);
    if (n > 0 && (y == NULL || a == NULL || b == NULL)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL buffer with n = %lld", fn,
                           (long long)n);
    }
    return ENG_OK;
}

int eng_cpu_add_f32(
    eng_stream *s, float *y, const float *a, const float *b, int64_t n, eng_err *err) {
    add_args args = {y, a, b};
    int rc = check_ptrs("eng_cpu_add_f32", y, a, b, n, err);
    if (rc != ENG_OK || n == 0) return rc;
    eng_pool_parallel_for(stream_pool(s), n, ELEMENTWISE_GRAIN, add_f32_range, &args);
    return ENG_OK;
}

int eng_cpu_add_f16(
    eng_stream *s, eng_f16 *y, const eng_f16 *a, const eng_f16 *b, int64_t n, eng_err *err) {
    add_args args = {y, a, b};
    int rc = check_ptrs("eng_cpu_add_f16", y, a, b, n, err);
    if (rc != ENG_OK || n == 0) return rc;
    eng_pool_parallel_for(stream_pool(s), n, ELEMENTWISE_GRAIN, add_f16_range, &args);
    return ENG_OK;
}

/* ---- GEMM ------------------------------------------------------------------------------------ */
/* OpenBLAS must not start threads of its own: the serial build has none; any other build is told
 * to use one (the pool splits the work instead). */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) {
    openblas_set_num_threads(1);
}

const char *eng_cpu_blas_describe(void) {
    pthread_once(&blas_once, blas_init);
    return openblas_get_config();
}

typedef struct gemm_args {
    int trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const float *a;
    int64_t lda;
    const float *b;
    int64_t ldb;
    float *c;
    int64_t ldc;
} gemm_args;

/* Rows [begin, end) of C: C[r0:r1] = alpha op(A)[r0:r1] op(B) + beta C[r0:r1]. */
static void gemm_rows(void *user, int64_t begin, int64_t end) {
    const gemm_args *g = user;
    const float *a = g->trans_a ? g->a + begin : g->a + begin * g->lda;
    cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                g->trans_b ? CblasTrans : CblasNoTrans, (blasint)(end - begin), (blasint)g->n,
                (blasint)g->k, g->alpha, a, (blasint)g->lda, g->b, (blasint)g->ldb, g->beta,
                g->c + begin * g->ldc, (blasint)g->ldc);
}

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
                     eng_err *err) {
    const int64_t blas_max = 0x7fffffff;
    gemm_args g = {trans_a, trans_b, m, n, k, alpha, beta, a, lda, b, ldb, c, ldc};
    if (m < 0 || n < 0 || k < 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "eng_cpu_gemm_f32: m=%lld n=%lld k=%lld",
                           (long long)m, (long long)n, (long long)k);
    }
    if (m > blas_max || n > blas_max || k > blas_max || lda > blas_max || ldb > blas_max ||
        ldc > blas_max) {
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "eng_cpu_gemm_f32: a dimension exceeds the BLAS int range");
    }
    if (lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || ldc < n) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_cpu_gemm_f32: leading dimensions lda=%lld ldb=%lld ldc=%lld too "
                           "small for m=%lld n=%lld k=%lld",
                           (long long)lda, (long long)ldb, (long long)ldc, (long long)m,
                           (long long)n, (long long)k);
    }
    if (m == 0 || n == 0) return ENG_OK;
    pthread_once(&blas_once, blas_init);
    /* Pieces of >= 16 rows keep OpenBLAS's packed panels efficient. */
    eng_pool_parallel_for(stream_pool(s), m, 16, gemm_rows, &g);
    return ENG_OK;
}
