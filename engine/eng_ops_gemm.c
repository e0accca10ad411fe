/* eng_ops_gemm.c: GEMM-shaped ops. The tensor-level ops eng_op_linear and eng_op_matmul (checks,
 * then the CPU twin or the backend's gemm entry), the CPU twin eng_cpu_gemm (batched, bias and
 * activation epilogue) and the plain sgemm eng_cpu_gemm_f32 under eng_op_gemm.
 *
 * CPU: OpenBLAS cblas_sgemm, one thread per call, on pieces of C split over the stream's pool
 * (one piece per thread, along C's longer side: a CLIP-sized linear with 77 rows and 768 columns
 * is split by columns), each piece followed by its epilogue while it is in cache. The bias is
 * written into C before BLAS adds the product onto it (beta = 1), which is free: with beta = 0
 * OpenBLAS would make a pass zeroing C instead. The activation runs on the piece afterwards.
 * Layout: row-major, element strides; eng_kernels.h's eng_gemm_args is the full definition. */
#include "eng_act_math.h"
#include "eng_ops.h"
#include "eng_ops_impl.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "eng_sched.h"

/* Pool pieces: at least this many rows of C (OpenBLAS's packed panels stay efficient), or in
 * column mode at least this many columns. */
enum { GEMM_ROW_GRAIN = 16, GEMM_COL_GRAIN = 64 };
#define BLAS_INT_MAX ((int64_t)0x7fffffff)

/* ---- BLAS set-up ------------------------------------------------------------------------------ */
/* OpenBLAS must not start threads of its own: it is told to use one (the pool splits the work
 * instead). Calls from several threads at once are safe in its threaded builds (pthreads or
 * OpenMP, asked for one thread) but not in Debian's sequential build (0.3.21, built without
 * USE_LOCKING: two concurrent sgemm calls can be handed the same packing buffer and return wrong
 * numbers). With a sequential build the calls are serialized by blas_lock (only the im2col and
 * epilogue work then runs in parallel). These two are the only mutable file-scope state: they
 * describe the process-wide library, set once under blas_once. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int blas_reentrant;

static void blas_init(void) {
    openblas_set_num_threads(1);
    blas_reentrant = openblas_get_parallel() != 0; /* 0: sequential, 1: pthreads, 2: OpenMP */
}

const char *eng_cpu_blas_describe(void) {
    pthread_once(&blas_once, blas_init);
    return openblas_get_config();
}

/* ---- the CPU twin ----------------------------------------------------------------------------- */

/* Checks the arguments of a GEMM as eng_kernels.h defines it; `fn` names the caller. */
static int gemm_check(const char *fn, const eng_gemm_args *g, eng_err *err) {
    if (g->dtype != ENG_DTYPE_F32) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: dtype %s (the CPU computes f32 only)", fn,
                           eng_dtype_name(g->dtype));
    }
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: m=%lld n=%lld k=%lld batch=%lld", fn,
                           (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
    }
    if ((unsigned)g->act >= ENG_ACT_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: unknown activation %d", fn, (int)g->act);
    }
    /* BLAS wants ld >= max(1, columns of the stored matrix). */
    const int64_t cols_a = g->trans_a ? g->m : g->k, cols_b = g->trans_b ? g->k : g->n;
    if (g->lda < ENG_MAX(cols_a, 1) || g->ldb < ENG_MAX(cols_b, 1) || g->ldc < ENG_MAX(g->n, 1)) {
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
    /* Batches of C written at once must not overlap (A and B may: stride 0 broadcasts). */
    if (g->batch > 1 && g->m > 0 && g->n > 0 && g->batch_stride_c < (g->m - 1) * g->ldc + g->n) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: batch_stride_c=%lld: the %lld batches of C (%lldx%lld, ldc=%lld) "
                           "would overlap",
                           fn, (long long)g->batch_stride_c, (long long)g->batch, (long long)g->m,
                           (long long)g->n, (long long)g->ldc);
    }
    if (g->m > BLAS_INT_MAX || g->n > BLAS_INT_MAX || g->k > BLAS_INT_MAX ||
        g->lda > BLAS_INT_MAX || g->ldb > BLAS_INT_MAX || g->ldc > BLAS_INT_MAX ||
        (g->m > 0 && g->batch > INT64_MAX / g->m)) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: a dimension exceeds the BLAS int range",
                           fn);
    }
    if (g->m > 0 && g->n > 0 && g->batch > 0) {
        if (g->c == NULL || (g->k > 0 && (g->a == NULL || g->b == NULL))) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL matrix (a %p, b %p, c %p)", fn,
                               g->a, g->b, (void *)g->c);
        }
    }
    return ENG_OK;
}

/* C[b][r0:r1, j0:j1] = act(alpha op(A) op(B) + beta C + bias), one BLAS call and its epilogue.
 * With beta == 0 and a bias, C is first filled with the bias and BLAS adds onto it (beta = 1):
 * OpenBLAS would otherwise make a pass zeroing C, so the bias comes for free. */
static void
gemm_block(const eng_gemm_args *g, int64_t b, int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    const int64_t rows = r1 - r0, cols = j1 - j0;
    /* (a and b may be NULL when k == 0: no arithmetic on them then) */
    const float *a = g->a != NULL ? (const float *)g->a + b * g->batch_stride_a : NULL;
    const float *bm = g->b != NULL ? (const float *)g->b + b * g->batch_stride_b : NULL;
    float *c = (float *)g->c + b * g->batch_stride_c + r0 * g->ldc + j0;
    const float *bias = g->bias != NULL ? (const float *)g->bias + j0 : NULL;
    float beta = g->beta;
    int bias_left = bias != NULL;
    if (rows <= 0 || cols <= 0) return;
    if (a != NULL) a += g->trans_a ? r0 : r0 * g->lda;   /* op(A) rows r0.. */
    if (bm != NULL) bm += g->trans_b ? j0 * g->ldb : j0; /* op(B) columns j0.. */
    if (bias != NULL && beta == 0.0f) {
        for (int64_t r = 0; r < rows; r++)
            memcpy(c + r * g->ldc, bias, sizeof(float) * (size_t)cols);
        beta = 1.0f;
        bias_left = 0;
    }
    if (g->k > 0) {
        if (!blas_reentrant) pthread_mutex_lock(&blas_lock);
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                    g->trans_b ? CblasTrans : CblasNoTrans, (blasint)rows, (blasint)cols,
                    (blasint)g->k, g->alpha, a, (blasint)g->lda, bm, (blasint)g->ldb, beta, c,
                    (blasint)g->ldc);
        if (!blas_reentrant) pthread_mutex_unlock(&blas_lock);
    } else if (beta != 1.0f) { /* k == 0: op(A) op(B) is zero; C = beta C (0: not read) */
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t j = 0; j < cols; j++)
                c[r * g->ldc + j] = beta == 0.0f ? 0.0f : beta * c[r * g->ldc + j];
        }
    }
    if (!bias_left && g->act == ENG_ACT_NONE) return;
    for (int64_t r = 0; r < rows; r++) {
        float *cr = c + r * g->ldc;
        for (int64_t j = 0; j < cols; j++)
            cr[j] = eng_act_apply(g->act, bias_left ? cr[j] + bias[j] : cr[j]);
    }
}

/* Row mode: items are the batch * m rows of all batches, flattened. */
static void gemm_rows_range(void *user, int64_t begin, int64_t end) {
    const eng_gemm_args *g = user;
    while (begin < end) {
        const int64_t b = begin / g->m, r0 = begin % g->m;
        const int64_t r1 = ENG_MIN(g->m, r0 + (end - begin));
        gemm_block(g, b, r0, r1, 0, g->n);
        begin += r1 - r0;
    }
}

/* Column mode: items are the n columns; each piece does every row of every batch. */
static void gemm_cols_range(void *user, int64_t begin, int64_t end) {
    const eng_gemm_args *g = user;
    for (int64_t b = 0; b < g->batch; b++)
        gemm_block(g, b, 0, g->m, begin, end);
}

static int cpu_gemm_named(const char *fn, eng_stream *s, const eng_gemm_args *g, eng_err *err) {
    eng_pool *pool = s != NULL ? s->pool : NULL;
    int rc;
    ENG_ASSERT(g != NULL);
    if ((rc = gemm_check(fn, g, err)) != ENG_OK) return rc;
    if (g->m == 0 || g->n == 0 || g->batch == 0) return ENG_OK;
    pthread_once(&blas_once, blas_init);
    const int64_t rows = g->batch * g->m;
    const int64_t threads = eng_pool_threads(pool);
    /* One piece per thread, split along the longer side of C: every piece repacks the whole of
     * the other operand (a row piece all of op(B), a column piece all of op(A)), so the split
     * that repacks the smaller one, as few times as possible, stays closest to one big call.
     * (A short, wide C, a linear over 77 tokens, is split by columns.) */
    if (threads > 1 && g->n > rows && g->n >= 2 * GEMM_COL_GRAIN) {
        const int64_t grain = ENG_MAX(GEMM_COL_GRAIN, ENG_CEIL_DIV(g->n, threads));
        eng_pool_parallel_for(pool, g->n, grain, gemm_cols_range, (void *)g);
    } else {
        const int64_t grain = ENG_MAX(GEMM_ROW_GRAIN, ENG_CEIL_DIV(rows, threads));
        eng_pool_parallel_for(pool, rows, grain, gemm_rows_range, (void *)g);
    }
    return ENG_OK;
}

int eng_cpu_gemm(eng_stream *s, const eng_gemm_args *a, eng_err *err) {
    return cpu_gemm_named("eng_cpu_gemm", s, a, err);
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
    eng_gemm_args g;
    memset(&g, 0, sizeof g);
    g.dtype = ENG_DTYPE_F32;
    g.trans_a = trans_a;
    g.trans_b = trans_b;
    g.m = m;
    g.n = n;
    g.k = k;
    g.batch = 1;
    g.alpha = alpha;
    g.beta = beta;
    g.a = a;
    g.lda = lda;
    g.b = b;
    g.ldb = ldb;
    g.c = c;
    g.ldc = ldc;
    g.act = ENG_ACT_NONE;
    return cpu_gemm_named("eng_cpu_gemm_f32", s, &g, err);
}

/* ---- tensor-level ops ------------------------------------------------------------------------- */

/* Runs the GEMM on the tensors' device: the CPU twin (f32) or the backend's gemm entry. */
static int gemm_dispatch(eng_ctx *ctx,
                         eng_stream *s,
                         const char *fn,
                         const eng_tensor *out,
                         const eng_gemm_args *g,
                         eng_err *err) {
    char d[96];
    int rc;
    if ((rc = eng_ops_stream(ctx, s, out->device, fn, &s, err)) != ENG_OK) return rc;
    if (out->device == ENG_DEVICE_CPU) {
        if (out->dtype != ENG_DTYPE_F32) {
            return eng_err_set(err, ENG_E_UNSUPPORTED,
                               "%s: %s: the CPU computes f32 only (convert the tensors first)", fn,
                               eng_tensor_describe(out, d, sizeof d));
        }
        return cpu_gemm_named(fn, s, g, err);
    }
    const eng_backend *be = eng_ctx_backend(ctx, out->device);
    if (be == NULL || be->ops.gemm == NULL) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: not available for %s in this build", fn,
                           eng_tensor_describe(out, d, sizeof d));
    }
    return be->ops.gemm(s, g, err);
}

/* A tensor seen as a stack of rows: its last dimension is the row (elements adjacent), all the
 * leading dimensions flatten into `rows` with one row stride `ld`. ENG_E_INVALID_ARG when the
 * leading dimensions cannot be flattened (e.g. a permuted view) or rows overlap. */
static int as_rows(const char *fn,
                   const eng_tensor *t,
                   const char *name,
                   int64_t *rows,
                   int64_t *cols,
                   int64_t *ld,
                   eng_err *err) {
    char d[96];
    const int nd = t->ndim;
    int64_t r = 1, stride = 0, expect = 0;
    if (nd < 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s is a scalar (needs at least 1-D)", fn,
                           name);
    }
    const int64_t c = t->shape[nd - 1];
    if (c > 1 && t->stride[nd - 1] != 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: %s is %s with last-dimension stride %lld (must be 1)", fn, name,
                           eng_tensor_describe(t, d, sizeof d), (long long)t->stride[nd - 1]);
    }
    for (int i = nd - 2; i >= 0; i--) {
        if (t->shape[i] == 1) continue;
        if (stride == 0) {
            stride = t->stride[i];
            expect = stride * t->shape[i];
        } else if (t->stride[i] != expect) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: %s is %s with strides that do not flatten into rows (a "
                               "permuted view? make it contiguous first)",
                               fn, name, eng_tensor_describe(t, d, sizeof d));
        } else {
            expect *= t->shape[i];
        }
        r *= t->shape[i];
    }
    if (r > 1 && stride < c) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s is %s with row stride %lld < %lld", fn,
                           name, eng_tensor_describe(t, d, sizeof d), (long long)stride,
                           (long long)c);
    }
    *rows = r;
    *cols = c;
    *ld = r > 1 ? stride : ENG_MAX(c, 1);
    return ENG_OK;
}

int eng_op_linear(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *y,
                  const eng_tensor *x,
                  const eng_tensor *w,
                  const eng_tensor *bias,
                  eng_act act,
                  eng_err *err) {
    static const char fn[] = "eng_op_linear";
    char dx[96], dw[96], dy[96], db[96];
    int64_t m = 0, k = 0, ldx = 0, my = 0, n = 0, ldy = 0, wr = 0, wc = 0, ldw = 0;
    eng_gemm_args g;
    int rc;
    ENG_ASSERT(y != NULL && x != NULL && w != NULL);
    if ((rc = eng_ops_check_same_kind(fn, y, x, "y", "x", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_same_kind(fn, y, w, "y", "w", err)) != ENG_OK) return rc;
    if (bias != NULL && (rc = eng_ops_check_same_kind(fn, y, bias, "y", "bias", err)) != ENG_OK)
        return rc;
    if ((unsigned)act >= ENG_ACT_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: unknown activation %d", fn, (int)act);
    }
    if (w->ndim != 2) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: w is %s (needs 2-D (out, in))", fn,
                           eng_tensor_describe(w, dw, sizeof dw));
    }
    if ((rc = as_rows(fn, x, "x", &m, &k, &ldx, err)) != ENG_OK) return rc;
    if ((rc = as_rows(fn, y, "y", &my, &n, &ldy, err)) != ENG_OK) return rc;
    if ((rc = as_rows(fn, w, "w", &wr, &wc, &ldw, err)) != ENG_OK) return rc;
    /* y (..., N) = x (..., K) w^T, w (N, K): same leading shape, w matching both. */
    int same_lead = y->ndim == x->ndim;
    for (int i = 0; same_lead && i < x->ndim - 1; i++)
        same_lead = y->shape[i] == x->shape[i];
    if (!same_lead || wc != k || wr != n) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: shapes do not chain: x is %s, w is %s, y is %s (x (..., K), w (N, "
                           "K), y (..., N))",
                           fn, eng_tensor_describe(x, dx, sizeof dx),
                           eng_tensor_describe(w, dw, sizeof dw),
                           eng_tensor_describe(y, dy, sizeof dy));
    }
    if (bias != NULL &&
        (bias->ndim != 1 || bias->shape[0] != n || (n > 1 && bias->stride[0] != 1))) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: bias is %s, expected (%lld) contiguous", fn,
                           eng_tensor_describe(bias, db, sizeof db), (long long)n);
    }
    memset(&g, 0, sizeof g);
    g.dtype = y->dtype;
    g.trans_a = 0;
    g.trans_b = 1;
    g.m = m;
    g.n = n;
    g.k = k;
    g.batch = 1;
    g.alpha = 1.0f;
    g.beta = 0.0f;
    g.a = x->data;
    g.lda = ldx;
    g.b = w->data;
    g.ldb = ldw;
    g.c = y->data;
    g.ldc = ldy;
    g.bias = bias != NULL ? bias->data : NULL;
    g.act = act;
    return gemm_dispatch(ctx, s, fn, y, &g, err);
}

/* A 2-D or 3-D (batch first) operand of matmul: batch, rows, cols, row stride, batch stride
 * (0 when the batch is 1: broadcast). */
typedef struct mat_desc {
    int64_t batch, rows, cols, ld, batch_stride;
} mat_desc;

static int
as_matrix(const char *fn, const eng_tensor *t, const char *name, mat_desc *m, eng_err *err) {
    char d[96];
    const int nd = t->ndim;
    if (nd != 2 && nd != 3) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s is %s (needs 2-D or 3-D)", fn, name,
                           eng_tensor_describe(t, d, sizeof d));
    }
    m->batch = nd == 3 ? t->shape[0] : 1;
    m->rows = t->shape[nd - 2];
    m->cols = t->shape[nd - 1];
    m->ld = m->rows > 1 ? t->stride[nd - 2] : ENG_MAX(m->cols, 1);
    m->batch_stride = m->batch > 1 ? t->stride[0] : 0;
    if ((m->cols > 1 && t->stride[nd - 1] != 1) || m->ld < m->cols || m->batch_stride < 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: %s is %s with strides [%lld,%lld,%lld]: rows must be contiguous "
                           "with row stride >= width",
                           fn, name, eng_tensor_describe(t, d, sizeof d), (long long)t->stride[0],
                           (long long)t->stride[1], (long long)t->stride[2]);
    }
    return ENG_OK;
}

int eng_op_matmul(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *c,
                  const eng_tensor *a,
                  const eng_tensor *b,
                  int trans_a,
                  int trans_b,
                  float alpha,
                  float beta,
                  eng_err *err) {
    static const char fn[] = "eng_op_matmul";
    char da[96], db[96], dc[96];
    mat_desc ma, mb, mc;
    eng_gemm_args g;
    int rc;
    ENG_ASSERT(c != NULL && a != NULL && b != NULL);
    if ((rc = eng_ops_check_same_kind(fn, c, a, "c", "a", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_same_kind(fn, c, b, "c", "b", err)) != ENG_OK) return rc;
    if ((rc = as_matrix(fn, a, "a", &ma, err)) != ENG_OK) return rc;
    if ((rc = as_matrix(fn, b, "b", &mb, err)) != ENG_OK) return rc;
    if ((rc = as_matrix(fn, c, "c", &mc, err)) != ENG_OK) return rc;
    const int64_t m = trans_a ? ma.cols : ma.rows, k = trans_a ? ma.rows : ma.cols;
    const int64_t kb = trans_b ? mb.cols : mb.rows, n = trans_b ? mb.rows : mb.cols;
    if (k != kb || mc.rows != m || mc.cols != n) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: shapes do not chain: op(a) is %lldx%lld, op(b) is %lldx%lld, c is "
                           "%lldx%lld (a %s, b %s, trans_a=%d trans_b=%d)",
                           fn, (long long)m, (long long)k, (long long)kb, (long long)n,
                           (long long)mc.rows, (long long)mc.cols,
                           eng_tensor_describe(a, da, sizeof da),
                           eng_tensor_describe(b, db, sizeof db), trans_a != 0, trans_b != 0);
    }
    if ((ma.batch != 1 && ma.batch != mc.batch) || (mb.batch != 1 && mb.batch != mc.batch)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: batches do not match: a is %s, b is %s, c is %s (a and b need "
                           "c's batch or 1)",
                           fn, eng_tensor_describe(a, da, sizeof da),
                           eng_tensor_describe(b, db, sizeof db),
                           eng_tensor_describe(c, dc, sizeof dc));
    }
    memset(&g, 0, sizeof g);
    g.dtype = c->dtype;
    g.trans_a = trans_a != 0;
    g.trans_b = trans_b != 0;
    g.m = m;
    g.n = n;
    g.k = k;
    g.batch = mc.batch;
    g.alpha = alpha;
    g.beta = beta;
    g.a = a->data;
    g.lda = ma.ld;
    g.batch_stride_a = ma.batch_stride;
    g.b = b->data;
    g.ldb = mb.ld;
    g.batch_stride_b = mb.batch_stride;
    g.c = c->data;
    g.ldc = mc.ld;
    g.batch_stride_c = mc.batch_stride;
    g.bias = NULL;
    g.act = ENG_ACT_NONE;
    return gemm_dispatch(ctx, s, fn, c, &g, err);
}
