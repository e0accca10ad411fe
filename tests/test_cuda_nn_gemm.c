/* test_cuda_nn_gemm.c: the cuBLASLt GEMM and the cuDNN convolution (cuda/gemm.cu, cuda/conv.cu)
 * against their CPU twins (eng_cpu_gemm, eng_cpu_conv2d) in f32, f16 and bf16, through the
 * public headers only: odd shapes, every transpose, padded rows, batches with broadcasting, bias
 * and each activation, 1x1 and 3x3 kernels with stride 1 and 2; canaries after every device
 * output; the tensor-level ops on CUDA tensors; the malformed calls.
 *
 * Inputs are rounded to the dtype on the host first, so the twin computes on exactly the values
 * the device sees; the twin's f32 result is then the reference. Tolerances are conventions 2.7's
 * per dtype with atol scaled by sqrt(K) (K: the reduction length): f32 runs without TF32.
 * Every case returns 77 (SKIP) when there is no CUDA device. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_cuda.h"
#include "eng_test.h"
#include "eng_test_compare.h"

enum { GUARD = 64 }; /* canary bytes after each device output */

typedef struct gpu {
    eng_ctx *ctx;
    const eng_backend *be;
    eng_stream *s;   /* the CUDA default stream: backend impl + the device scratch arena */
    eng_stream *cpu; /* the CPU stream: pool + host arena */
    eng_alloc *dev;  /* the device allocator */
} gpu;

/* A context with the CUDA backend attached: 0, ENG_TEST_SKIP without a device, 1 on failure. */
static int gpu_open(gpu *g) {
    eng_err err = {0};
    eng_ctx_params p;
    int count = 0;
    char why[512];
    memset(g, 0, sizeof *g);
    const int rc = eng_cuda_device_count(&count, &err);
    if (rc != ENG_OK || count == 0) {
        fprintf(stderr, "SKIP: %s\n", rc != ENG_OK ? err.msg : eng_cuda_describe(why, sizeof why));
        return ENG_TEST_SKIP;
    }
    eng_ctx_params_init(&p);
    p.threads = 2;
    p.threaded_scheduler = 0;
    CHECK_OK(eng_ctx_create(&g->ctx, &p, &err), &err);
    CHECK_OK(eng_cuda_attach(g->ctx, 0, 0, &err), &err);
    g->be = eng_ctx_backend(g->ctx, ENG_DEVICE_CUDA);
    g->s = eng_ctx_stream(g->ctx, ENG_DEVICE_CUDA);
    g->cpu = eng_ctx_stream(g->ctx, ENG_DEVICE_CPU);
    g->dev = eng_ctx_alloc(g->ctx, ENG_DEVICE_CUDA);
    CHECK(g->be != NULL && g->s != NULL && g->cpu != NULL && g->dev != NULL);
    CHECK(g->s->arena != NULL && g->s->impl != NULL);
    return 0;
}

static void gpu_close(gpu *g) {
    eng_ctx_destroy(g->ctx);
    memset(g, 0, sizeof *g);
}

static const char *dt_name(eng_dtype d) {
    return eng_dtype_name(d);
}

/* Per-dtype tolerances (conventions 2.7), atol scaled by sqrt(K). */
static void tolerances(eng_dtype d, int64_t k, double *atol, double *rtol) {
    const double sk = sqrt((double)(k > 0 ? k : 1));
    if (d == ENG_DTYPE_F32) {
        *atol = 2e-5 * sk;
        *rtol = 1e-5;
    } else if (d == ENG_DTYPE_F16) {
        *atol = 1e-3 * sk;
        *rtol = 2e-3;
    } else {
        *atol = 1e-2 * sk;
        *rtol = 1.6e-2;
    }
}

/* x[i] = x[i] rounded to dtype d and back (f32 stays). */
static void round_to(eng_dtype d, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (d == ENG_DTYPE_F16) x[i] = eng_f16_to_f32(eng_f32_to_f16(x[i]));
        if (d == ENG_DTYPE_BF16) x[i] = eng_bf16_to_f32(eng_f32_to_bf16(x[i]));
    }
}

/* n uniform values in [-1, 1) from Philox stream `stream`, already rounded to d. */
static float *rand_host(eng_dtype d, int64_t n, uint64_t stream) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (p == NULL) return NULL;
    eng_test_fill(p, n, stream, -1.0f, 1.0f);
    round_to(d, p, n);
    return p;
}

/* A device buffer of n elements of d plus GUARD canary bytes, holding host (f32) converted. */
static int upload(gpu *g, void **dev, eng_dtype d, const float *host, int64_t n) {
    eng_err err = {0};
    const size_t es = eng_dtype_size(d), bytes = (size_t)n * es + GUARD;
    unsigned char *tmp = malloc(bytes);
    CHECK(tmp != NULL);
    if (d == ENG_DTYPE_F32) memcpy(tmp, host, (size_t)n * es);
    if (d == ENG_DTYPE_F16) eng_convert_f32_to_f16((eng_f16 *)tmp, host, n);
    if (d == ENG_DTYPE_BF16) eng_convert_f32_to_bf16((eng_bf16 *)tmp, host, n);
    eng_test_canary_set(tmp + (size_t)n * es, GUARD);
    CHECK_OK(eng_alloc_take(g->dev, dev, bytes, ENG_LIFE_STATE, "test", &err), &err);
    CHECK_OK(g->be->copy(g->be->impl, g->s, *dev, tmp, bytes, ENG_COPY_H2D, &err), &err);
    CHECK_OK(g->be->stream_sync(g->be->impl, g->s, &err), &err);
    free(tmp);
    return 0;
}

/* Waits for the stream, copies n elements of d back as f32 and checks the guard after them. */
static int
download(gpu *g, float *host, const void *dev, eng_dtype d, int64_t n, const char *what) {
    eng_err err = {0};
    const size_t es = eng_dtype_size(d), bytes = (size_t)n * es + GUARD;
    unsigned char *tmp = malloc(bytes);
    CHECK(tmp != NULL);
    CHECK_OK(g->be->stream_sync(g->be->impl, g->s, &err), &err);
    CHECK_OK(g->be->copy(g->be->impl, g->s, tmp, dev, bytes, ENG_COPY_D2H, &err), &err);
    if (d == ENG_DTYPE_F32) memcpy(host, tmp, (size_t)n * es);
    if (d == ENG_DTYPE_F16) eng_convert_f16_to_f32(host, (const eng_f16 *)tmp, n);
    if (d == ENG_DTYPE_BF16) eng_convert_bf16_to_f32(host, (const eng_bf16 *)tmp, n);
    if (!eng_test_canary_ok(tmp + (size_t)n * es, GUARD)) {
        fprintf(stderr, "%s: the guard after the output was overwritten\n", what);
        free(tmp);
        return 1;
    }
    free(tmp);
    return 0;
}

/* ---- GEMM ------------------------------------------------------------------------------------ */

typedef struct gemm_case {
    int ta, tb;
    int64_t m, n, k, batch;
    int bcast; /* 1: A shared by every batch, 2: B shared */
    int64_t pad;
    float alpha, beta;
    int bias;
    eng_act act;
} gemm_case;

/* One GEMM on the device and on the CPU twin from the same (rounded) inputs; all of C compared
 * (row padding included: untouched on both sides). */
static int run_gemm(gpu *g, eng_dtype d, const gemm_case *t) {
    eng_err err = {0};
    eng_gemm_args ga;
    char what[220];
    double atol, rtol;
    void *da = NULL, *db = NULL, *dc = NULL, *dbias = NULL;
    const int64_t ar = t->ta ? t->k : t->m, ac = t->ta ? t->m : t->k;
    const int64_t br = t->tb ? t->n : t->k, bc = t->tb ? t->k : t->n;
    const int64_t lda = ac + t->pad > 1 ? ac + t->pad : 1, ldb = bc + t->pad > 1 ? bc + t->pad : 1;
    const int64_t ldc = t->n + t->pad;
    const int64_t sa = t->bcast == 1 ? 0 : ar * lda, sb = t->bcast == 2 ? 0 : br * ldb;
    const int64_t sc = t->m * ldc + t->pad;
    const int64_t na = (t->bcast == 1 ? 1 : t->batch) * ar * lda,
                  nb = (t->bcast == 2 ? 1 : t->batch) * br * ldb;
    const int64_t nc = t->batch * sc;
    float *a = rand_host(d, na, 1), *b = rand_host(d, nb, 2), *c = rand_host(d, nc, 3);
    float *bias = rand_host(d, t->n, 4), *got = malloc(sizeof(float) * (size_t)(nc > 0 ? nc : 1));
    CHECK(a && b && c && bias && got);
    if (upload(g, &da, d, a, na) || upload(g, &db, d, b, nb) || upload(g, &dc, d, c, nc) ||
        upload(g, &dbias, d, bias, t->n)) {
        return 1;
    }
    memset(&ga, 0, sizeof ga);
    ga.dtype = d;
    ga.trans_a = t->ta;
    ga.trans_b = t->tb;
    ga.m = t->m;
    ga.n = t->n;
    ga.k = t->k;
    ga.batch = t->batch;
    ga.alpha = t->alpha;
    ga.beta = t->beta;
    ga.a = da;
    ga.lda = lda;
    ga.batch_stride_a = sa;
    ga.b = db;
    ga.ldb = ldb;
    ga.batch_stride_b = sb;
    ga.c = dc;
    ga.ldc = ldc;
    ga.batch_stride_c = sc;
    ga.bias = t->bias ? dbias : NULL;
    ga.act = t->act;
    snprintf(what, sizeof what,
             "cuda gemm %s m=%lld n=%lld k=%lld batch=%lld bcast=%d ta=%d tb=%d pad=%lld "
             "alpha=%g beta=%g bias=%d act=%d",
             dt_name(d), (long long)t->m, (long long)t->n, (long long)t->k, (long long)t->batch,
             t->bcast, t->ta, t->tb, (long long)t->pad, (double)t->alpha, (double)t->beta, t->bias,
             (int)t->act);
    const uint64_t used = eng_arena_used(g->s->arena);
    CHECK_OK(eng_cuda_gemm(g->s, &ga, &err), &err);
    CHECK(eng_arena_used(g->s->arena) == used); /* the workspace was given back */
    if (download(g, got, dc, d, nc, what) != 0) return 1;
    /* the twin, in f32 on the host copies */
    ga.dtype = ENG_DTYPE_F32;
    ga.a = a;
    ga.b = b;
    ga.c = c;
    ga.bias = t->bias ? bias : NULL;
    CHECK_OK(eng_cpu_gemm(g->cpu, &ga, &err), &err);
    tolerances(d, t->k, &atol, &rtol);
    if (!eng_test_allclose(what, got, c, nc, atol, rtol)) {
        fprintf(stderr, "FAILED: %s\n", what);
        return 1;
    }
    eng_alloc_give(g->dev, da);
    eng_alloc_give(g->dev, db);
    eng_alloc_give(g->dev, dc);
    eng_alloc_give(g->dev, dbias);
    free(a);
    free(b);
    free(c);
    free(bias);
    free(got);
    return 0;
}

static int gemm_shapes(eng_dtype d) {
    gpu g;
    /* m, n, k: ones, odd sizes, k = 0, tile multiples, a short wide C */
    static const int64_t sizes[][3] = {{1, 1, 1},    {17, 33, 65}, {130, 7, 300},  {67, 129, 31},
                                       {5, 300, 40}, {3, 5, 0},    {256, 128, 64}, {77, 768, 768}};
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    for (int si = 0; si < ENG_TEST_N(sizes); si++) {
        for (int t = 0; t < 4; t++) {
            for (int pad = 0; pad < 2; pad++) {
                const gemm_case c = {t & 1, t >> 1,      sizes[si][0], sizes[si][1], sizes[si][2],
                                     1,     0,           pad ? 3 : 0,  0.5f,         0.25f,
                                     0,     ENG_ACT_NONE};
                if (run_gemm(&g, d, &c) != 0) return 1;
            }
        }
    }
    gpu_close(&g);
    return 0;
}

static int test_gemm_f32(void) {
    return gemm_shapes(ENG_DTYPE_F32);
}
static int test_gemm_f16(void) {
    return gemm_shapes(ENG_DTYPE_F16);
}
static int test_gemm_bf16(void) {
    return gemm_shapes(ENG_DTYPE_BF16);
}

/* Bias and every activation (fused by cuBLASLt or applied by our pass), beta 0 and not. */
static int test_gemm_epilogue(void) {
    gpu g;
    static const eng_dtype dts[3] = {ENG_DTYPE_F32, ENG_DTYPE_F16, ENG_DTYPE_BF16};
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        for (int act = 0; act < ENG_ACT_COUNT; act++) {
            for (int bias = 0; bias < 2; bias++) {
                for (int bi = 0; bi < 2; bi++) {
                    const float beta = bi ? 0.5f : 0.0f;
                    const gemm_case lin = {0, 1, 150,  72,   64,   1,
                                           0, 0, 1.0f, beta, bias, (eng_act)act};
                    const gemm_case odd = {1, 0, 33,   45,   19,   1,
                                           0, 1, 1.0f, beta, bias, (eng_act)act};
                    const gemm_case k0 = {0, 0, 9, 11, 0, 1, 0, 2, 1.0f, beta, bias, (eng_act)act};
                    if (run_gemm(&g, dts[di], &lin) != 0 || run_gemm(&g, dts[di], &odd) != 0 ||
                        run_gemm(&g, dts[di], &k0) != 0) {
                        return 1;
                    }
                }
            }
        }
    }
    gpu_close(&g);
    return 0;
}

static int test_gemm_batched(void) {
    gpu g;
    static const eng_dtype dts[3] = {ENG_DTYPE_F32, ENG_DTYPE_F16, ENG_DTYPE_BF16};
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        for (int bcast = 0; bcast < 3; bcast++) {
            for (int t = 0; t < 4; t++) {
                const gemm_case c = {t & 1, t >> 1, 19,   23,   41, 3,
                                     bcast, 2,      1.0f, 0.0f, 0,  ENG_ACT_NONE};
                if (run_gemm(&g, dts[di], &c) != 0) return 1;
            }
            /* attention-like: (8 heads) x 64 x 77 scores, bias and act on a batch */
            const gemm_case s = {0, 1, 64, 77, 40, 8, bcast, 0, 0.125f, 0.0f, 1, ENG_ACT_GELU};
            if (run_gemm(&g, dts[di], &s) != 0) return 1;
        }
    }
    gpu_close(&g);
    return 0;
}

/* A device tensor of shape from rounded host data. */
static int dev_tensor(gpu *g,
                      eng_tensor *t,
                      eng_dtype d,
                      int ndim,
                      const int64_t *shape,
                      const float *host,
                      void **mem) {
    eng_err err = {0};
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    if (upload(g, mem, d, host, n) != 0) return 1;
    CHECK_OK(eng_tensor_init(t, *mem, d, ENG_DEVICE_CUDA, ndim, shape, &err), &err);
    return 0;
}

/* eng_op_linear and eng_op_matmul dispatched on CUDA tensors (f16), against the CPU twin. */
static int test_gemm_ops(void) {
    gpu g;
    eng_err err = {0};
    const eng_dtype d = ENG_DTYPE_F16;
    const int64_t B = 2, L = 77, K = 96, N = 120;
    const int64_t sx[3] = {B, L, K}, sw[2] = {N, K}, sb[1] = {N}, sy[3] = {B, L, N};
    eng_tensor x, w, bias, y, xc, wc, bc, yc;
    void *mx = NULL, *mw = NULL, *mb = NULL, *my = NULL;
    double atol, rtol;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    float *hx = rand_host(d, B * L * K, 40), *hw = rand_host(d, N * K, 41);
    float *hb = rand_host(d, N, 42), *hy = rand_host(d, B * L * N, 43);
    float *want = malloc(sizeof(float) * (size_t)(B * L * N)),
          *got = malloc(sizeof(float) * (size_t)(B * L * N));
    CHECK(hx && hw && hb && hy && want && got);
    if (dev_tensor(&g, &x, d, 3, sx, hx, &mx) || dev_tensor(&g, &w, d, 2, sw, hw, &mw) ||
        dev_tensor(&g, &bias, d, 1, sb, hb, &mb) || dev_tensor(&g, &y, d, 3, sy, hy, &my)) {
        return 1;
    }
    CHECK_OK(eng_tensor_init(&xc, hx, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, sx, &err), &err);
    CHECK_OK(eng_tensor_init(&wc, hw, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sw, &err), &err);
    CHECK_OK(eng_tensor_init(&bc, hb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, sb, &err), &err);
    CHECK_OK(eng_tensor_init(&yc, want, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, sy, &err), &err);
    tolerances(d, K, &atol, &rtol);
    for (int act = 0; act < ENG_ACT_COUNT; act++) {
        char what[64];
        CHECK_OK(eng_op_linear(g.ctx, NULL, &y, &x, &w, &bias, (eng_act)act, &err), &err);
        CHECK_OK(eng_op_linear(g.ctx, NULL, &yc, &xc, &wc, &bc, (eng_act)act, &err), &err);
        snprintf(what, sizeof what, "eng_op_linear cuda f16 act=%d", act);
        if (download(&g, got, my, d, B * L * N, what) != 0) return 1;
        CHECK(eng_test_allclose(what, got, want, B * L * N, atol, rtol));
    }
    /* matmul: y (B, L, N) = x (B, L, K) w^T with w broadcast over the batch (as 3-D of 1) */
    {
        eng_tensor w3, w3c;
        const int64_t sw3[3] = {1, N, K};
        CHECK_OK(eng_tensor_view_reshape(&w3, &w, 3, sw3, &err), &err);
        CHECK_OK(eng_tensor_view_reshape(&w3c, &wc, 3, sw3, &err), &err);
        CHECK_OK(eng_op_matmul(g.ctx, NULL, &y, &x, &w3, 0, 1, 0.5f, 0.0f, &err), &err);
        CHECK_OK(eng_op_matmul(g.ctx, NULL, &yc, &xc, &w3c, 0, 1, 0.5f, 0.0f, &err), &err);
        if (download(&g, got, my, d, B * L * N, "eng_op_matmul cuda f16") != 0) return 1;
        CHECK(eng_test_allclose("eng_op_matmul cuda f16", got, want, B * L * N, atol, rtol));
    }
    eng_alloc_give(g.dev, mx);
    eng_alloc_give(g.dev, mw);
    eng_alloc_give(g.dev, mb);
    eng_alloc_give(g.dev, my);
    free(hx);
    free(hw);
    free(hb);
    free(hy);
    free(want);
    free(got);
    gpu_close(&g);
    return 0;
}

static int test_gemm_errors(void) {
    gpu g;
    eng_err err = {0};
    void *buf = NULL;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    CHECK_OK(eng_alloc_take(g.dev, &buf, 1 << 16, ENG_LIFE_STATE, "test", &err), &err);
    eng_gemm_args ga = {ENG_DTYPE_F16, 0, 0, 4,   5, 8, 1,    1.0f,        0.0f, buf, 7, 0,
                        buf,           5, 0, buf, 5, 0, NULL, ENG_ACT_NONE};
    CHECK(eng_cuda_gemm(g.s, &ga, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "lda=7 ldb=5 ldc=5 too small");
    ga.lda = 8;
    ga.dtype = ENG_DTYPE_I32;
    CHECK(eng_cuda_gemm(g.s, &ga, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "dtype i32");
    ga.dtype = ENG_DTYPE_F16;
    ga.act = ENG_ACT_COUNT;
    CHECK(eng_cuda_gemm(g.s, &ga, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "unknown activation");
    ga.act = ENG_ACT_NONE;
    ga.batch = 2;
    ga.batch_stride_c = 5;
    CHECK(eng_cuda_gemm(g.s, &ga, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "would overlap");
    ga.batch = 1;
    CHECK(eng_cuda_gemm(NULL, &ga, &err) == ENG_E_INVALID_ARG); /* no backend stream */
    CHECK_CONTAINS(err.msg, "needs a stream made by the CUDA backend");
    CHECK(eng_cuda_gemm(g.cpu, &ga, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "expected cuda");
    /* the op: a CUDA tensor with a CPU one */
    {
        eng_tensor x, w, y;
        const int64_t sx[2] = {4, 8}, sw[2] = {5, 8}, sy[2] = {4, 5};
        float hw[40] = {0};
        CHECK_OK(eng_tensor_init(&x, buf, ENG_DTYPE_F16, ENG_DEVICE_CUDA, 2, sx, &err), &err);
        CHECK_OK(eng_tensor_init(&w, hw, ENG_DTYPE_F16, ENG_DEVICE_CPU, 2, sw, &err), &err);
        CHECK_OK(eng_tensor_init(&y, buf, ENG_DTYPE_F16, ENG_DEVICE_CUDA, 2, sy, &err), &err);
        CHECK(eng_op_linear(g.ctx, NULL, &y, &x, &w, NULL, ENG_ACT_NONE, &err) ==
              ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "w is f16[5,8] cpu");
    }
    eng_alloc_give(g.dev, buf);
    gpu_close(&g);
    return 0;
}

/* ---- convolution ----------------------------------------------------------------------------- */

typedef struct conv_case {
    int64_t n, h, w, c, o, k, stride, pad;
    int bias;
} conv_case;

typedef int (*conv_fn)(eng_stream *s, const eng_conv2d_args *a, eng_err *err);

/* One convolution through `fn` (eng_cuda_conv2d or eng_cuda_conv2d_im2col) on stream s against
 * the CPU twin on the same (rounded) inputs. */
static int run_conv(gpu *g, eng_dtype d, const conv_case *t, eng_stream *s, conv_fn fn) {
    eng_err err = {0};
    eng_conv2d_args a;
    char what[200];
    double atol, rtol;
    void *dx = NULL, *dw = NULL, *db = NULL, *dy = NULL;
    const int64_t ho = (t->h + 2 * t->pad - t->k) / t->stride + 1;
    const int64_t wo = (t->w + 2 * t->pad - t->k) / t->stride + 1;
    const int64_t nx = t->n * t->h * t->w * t->c, nw = t->o * t->k * t->k * t->c;
    const int64_t ny = t->n * ho * wo * t->o;
    float *x = rand_host(d, nx, 30), *w = rand_host(d, nw, 31), *b = rand_host(d, t->o, 32);
    float *y = rand_host(d, ny, 33), *got = malloc(sizeof(float) * (size_t)ny);
    CHECK(x && w && b && y && got);
    if (upload(g, &dx, d, x, nx) || upload(g, &dw, d, w, nw) || upload(g, &db, d, b, t->o) ||
        upload(g, &dy, d, y, ny)) {
        return 1;
    }
    memset(&a, 0, sizeof a);
    a.dtype = d;
    a.y = dy;
    a.x = dx;
    a.w = dw;
    a.bias = t->bias ? db : NULL;
    a.n = t->n;
    a.h = t->h;
    a.w_in = t->w;
    a.c = t->c;
    a.o = t->o;
    a.kh = a.kw = t->k;
    a.stride = t->stride;
    a.pad = t->pad;
    a.ho = ho;
    a.wo = wo;
    snprintf(what, sizeof what,
             "cuda conv2d%s %s x [%lld,%lld,%lld,%lld] o=%lld k=%lld stride=%lld pad=%lld "
             "bias=%d%s",
             fn == eng_cuda_conv2d_im2col ? " (im2col)" : "", dt_name(d), (long long)t->n,
             (long long)t->h, (long long)t->w, (long long)t->c, (long long)t->o, (long long)t->k,
             (long long)t->stride, (long long)t->pad, t->bias,
             s->arena == NULL ? " (no arena)" : "");
    const uint64_t used = s->arena != NULL ? eng_arena_used(s->arena) : 0;
    CHECK_OK(fn(s, &a, &err), &err);
    if (s->arena != NULL) CHECK(eng_arena_used(s->arena) == used); /* workspaces given back */
    if (download(g, got, dy, d, ny, what) != 0) return 1;
    a.dtype = ENG_DTYPE_F32;
    a.x = x;
    a.w = w;
    a.bias = t->bias ? b : NULL;
    a.y = y;
    CHECK_OK(eng_cpu_conv2d(g->cpu, &a, &err), &err);
    tolerances(d, t->k * t->k * t->c, &atol, &rtol);
    if (!eng_test_allclose(what, got, y, ny, atol, rtol)) {
        fprintf(stderr, "FAILED: %s\n", what);
        return 1;
    }
    eng_alloc_give(g->dev, dx);
    eng_alloc_give(g->dev, dw);
    eng_alloc_give(g->dev, db);
    eng_alloc_give(g->dev, dy);
    free(x);
    free(w);
    free(b);
    free(y);
    free(got);
    return 0;
}

static int conv_shapes(eng_dtype d) {
    gpu g;
    /* n, h, w, c, o, k, stride, pad, bias: SD's kinds (3x3 pad 1, 3x3 stride 2 down, 1x1 skip),
     * the VAE's 3-channel input, channels that are no multiple of 8, odd images */
    static const conv_case cases[] = {
        {2, 9, 7, 5, 6, 3, 1, 1, 1},     {1, 16, 16, 32, 64, 3, 1, 1, 1},
        {2, 8, 8, 64, 32, 1, 1, 0, 1},   {1, 17, 15, 16, 24, 3, 2, 1, 0},
        {1, 16, 16, 32, 32, 3, 2, 0, 1}, {1, 12, 10, 3, 16, 3, 1, 1, 1},
        {1, 7, 9, 13, 11, 1, 2, 0, 1},   {2, 5, 6, 8, 8, 3, 1, 0, 0},
        {1, 32, 32, 40, 40, 3, 1, 1, 1},
    };
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    for (int i = 0; i < ENG_TEST_N(cases); i++) {
        if (run_conv(&g, d, &cases[i], g.s, eng_cuda_conv2d) != 0) return 1;
        /* the fallback (no cuDNN, or no algorithm), on the same shapes */
        if (run_conv(&g, d, &cases[i], g.s, eng_cuda_conv2d_im2col) != 0) return 1;
    }
    gpu_close(&g);
    return 0;
}

static int test_conv_f32(void) {
    return conv_shapes(ENG_DTYPE_F32);
}
static int test_conv_f16(void) {
    return conv_shapes(ENG_DTYPE_F16);
}
static int test_conv_bf16(void) {
    return conv_shapes(ENG_DTYPE_BF16);
}

/* eng_op_conv2d on CUDA tensors; a stream without an arena (algorithms without workspace); the
 * arena back where it was after each call. */
static int test_conv_ops(void) {
    gpu g;
    eng_err err = {0};
    const eng_dtype d = ENG_DTYPE_F16;
    const int64_t sx[4] = {1, 12, 12, 32}, sw[4] = {48, 3, 3, 32}, sb[1] = {48},
                  sy[4] = {1, 12, 12, 48};
    eng_tensor x, w, bias, y, xc, wc, bc, yc;
    void *mx = NULL, *mw = NULL, *mb = NULL, *my = NULL;
    double atol, rtol;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    const int64_t nx = 12 * 12 * 32, nw = 48 * 9 * 32, ny = 12 * 12 * 48;
    float *hx = rand_host(d, nx, 50), *hw = rand_host(d, nw, 51), *hb = rand_host(d, 48, 52);
    float *hy = rand_host(d, ny, 53), *want = malloc(sizeof(float) * ny),
          *got = malloc(sizeof(float) * ny);
    CHECK(hx && hw && hb && hy && want && got);
    if (dev_tensor(&g, &x, d, 4, sx, hx, &mx) || dev_tensor(&g, &w, d, 4, sw, hw, &mw) ||
        dev_tensor(&g, &bias, d, 1, sb, hb, &mb) || dev_tensor(&g, &y, d, 4, sy, hy, &my)) {
        return 1;
    }
    CHECK_OK(eng_tensor_init(&xc, hx, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sx, &err), &err);
    CHECK_OK(eng_tensor_init(&wc, hw, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sw, &err), &err);
    CHECK_OK(eng_tensor_init(&bc, hb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, sb, &err), &err);
    CHECK_OK(eng_tensor_init(&yc, want, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sy, &err), &err);
    tolerances(d, 9 * 32, &atol, &rtol);
    const uint64_t used = eng_arena_used(g.s->arena);
    CHECK_OK(eng_op_conv2d(g.ctx, NULL, &y, &x, &w, &bias, 1, 1, &err), &err);
    CHECK(eng_arena_used(g.s->arena) == used);
    CHECK_OK(eng_op_conv2d(g.ctx, NULL, &yc, &xc, &wc, &bc, 1, 1, &err), &err);
    if (download(&g, got, my, d, ny, "eng_op_conv2d cuda f16") != 0) return 1;
    CHECK(eng_test_allclose("eng_op_conv2d cuda f16", got, want, ny, atol, rtol));
    /* the same on a stream without an arena */
    {
        eng_stream bare = *g.s;
        bare.arena = NULL;
        CHECK_OK(eng_op_conv2d(g.ctx, &bare, &y, &x, &w, &bias, 1, 1, &err), &err);
        if (download(&g, got, my, d, ny, "eng_op_conv2d cuda f16 (no arena)") != 0) return 1;
        CHECK(eng_test_allclose("eng_op_conv2d cuda f16 (no arena)", got, want, ny, atol, rtol));
        const conv_case c = {1, 9, 11, 8, 16, 3, 2, 1, 1};
        if (run_conv(&g, ENG_DTYPE_F32, &c, &bare, eng_cuda_conv2d) != 0) return 1;
        /* the fallback needs the arena for its patches (a 1x1 stride-1 one does not) */
        eng_conv2d_args a = {ENG_DTYPE_F16, my, mx, mw, mb, 1, 12, 12, 32, 48, 3, 3, 1, 1, 12, 12};
        CHECK(eng_cuda_conv2d_im2col(&bare, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "no scratch arena");
        const conv_case pw = {2, 5, 7, 16, 8, 1, 1, 0, 1};
        if (run_conv(&g, ENG_DTYPE_F16, &pw, &bare, eng_cuda_conv2d_im2col) != 0) return 1;
    }
    eng_alloc_give(g.dev, mx);
    eng_alloc_give(g.dev, mw);
    eng_alloc_give(g.dev, mb);
    eng_alloc_give(g.dev, my);
    free(hx);
    free(hw);
    free(hb);
    free(hy);
    free(want);
    free(got);
    gpu_close(&g);
    return 0;
}

static int test_conv_errors(void) {
    gpu g;
    eng_err err = {0};
    void *buf = NULL;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    CHECK_OK(eng_alloc_take(g.dev, &buf, 1 << 16, ENG_LIFE_STATE, "test", &err), &err);
    eng_conv2d_args a = {ENG_DTYPE_F16, buf, buf, buf, NULL, 1, 6, 5, 3, 4, 3, 3, 1, 1, 6, 5};
    a.ho = 7;
    CHECK(eng_cuda_conv2d(g.s, &a, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "output 7x5, expected 6x5");
    a.ho = 6;
    a.dtype = ENG_DTYPE_I8;
    CHECK(eng_cuda_conv2d(g.s, &a, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "dtype i8");
    a.dtype = ENG_DTYPE_F16;
    a.stride = 0;
    CHECK(eng_cuda_conv2d(g.s, &a, &err) == ENG_E_INVALID_ARG);
    a.stride = 1;
    a.x = NULL;
    CHECK(eng_cuda_conv2d(g.s, &a, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "NULL buffer");
    a.x = buf;
    CHECK(eng_cuda_conv2d(NULL, &a, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "needs a stream made by the CUDA backend");
    /* the op: y of the wrong shape names the expected one */
    {
        eng_tensor x, w, y;
        const int64_t sx[4] = {1, 6, 5, 3}, sw[4] = {4, 3, 3, 3}, sy[4] = {1, 6, 6, 4};
        CHECK_OK(eng_tensor_init(&x, buf, ENG_DTYPE_F16, ENG_DEVICE_CUDA, 4, sx, &err), &err);
        CHECK_OK(eng_tensor_init(&w, buf, ENG_DTYPE_F16, ENG_DEVICE_CUDA, 4, sw, &err), &err);
        CHECK_OK(eng_tensor_init(&y, buf, ENG_DTYPE_F16, ENG_DEVICE_CUDA, 4, sy, &err), &err);
        CHECK(eng_op_conv2d(g.ctx, NULL, &y, &x, &w, NULL, 1, 1, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "expected [1,6,5,4]");
    }
    eng_alloc_give(g.dev, buf);
    gpu_close(&g);
    return 0;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"gemm.f32", test_gemm_f32},         {"gemm.f16", test_gemm_f16},
        {"gemm.bf16", test_gemm_bf16},       {"gemm.epilogue", test_gemm_epilogue},
        {"gemm.batched", test_gemm_batched}, {"gemm.ops", test_gemm_ops},
        {"gemm.errors", test_gemm_errors},   {"conv.f32", test_conv_f32},
        {"conv.f16", test_conv_f16},         {"conv.bf16", test_conv_bf16},
        {"conv.ops", test_conv_ops},         {"conv.errors", test_conv_errors},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
