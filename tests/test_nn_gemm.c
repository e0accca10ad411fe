/* test_nn_gemm.c: the CPU twins of the GEMM family (eng_cpu_gemm, eng_op_linear, eng_op_matmul)
 * and of the convolution (eng_cpu_conv2d, eng_op_conv2d) against naive double-precision loops:
 * odd sizes, every transpose, padded rows, batches with broadcasting, bias and each activation,
 * 1x1 and 3x3 kernels with stride 1 and 2 and padding 0 and 1, several im2col tiles and split
 * output channels; canaries after every output; and the malformed calls, each a clear error.
 * f32 against f64: |got - want| <= atol sqrt(K) + rtol |want| with conventions 2.7's f32 values. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_compare.h"
#include "eng_test_ctx.h"

enum { GUARD = 16 }; /* canary floats after each output */

/* n floats uniform in [-1, 1) from Philox stream `stream`, plus GUARD canary floats. */
static float *rand_buf(int64_t n, uint64_t stream) {
    float *p = malloc(sizeof(float) * (size_t)(n + GUARD));
    if (p == NULL) return NULL;
    eng_test_fill(p, n, stream, -1.0f, 1.0f);
    eng_test_canary_set(p + n, sizeof(float) * GUARD);
    return p;
}

static int guard_ok(const float *p, int64_t n) {
    return eng_test_canary_ok(p + n, sizeof(float) * GUARD);
}

static double act_ref(eng_act act, double x) {
    switch (act) {
    case ENG_ACT_SILU: return x / (1.0 + exp(-x));
    case ENG_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case ENG_ACT_GELU_TANH:
        return 0.5 * x *
               (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    case ENG_ACT_QUICK_GELU: return x / (1.0 + exp(-1.702 * x));
    default: return x;
    }
}

static const char *act_str(eng_act act) {
    static const char *const names[ENG_ACT_COUNT] = {"none", "silu", "gelu", "gelu_tanh",
                                                     "quick_gelu"};
    return (unsigned)act < ENG_ACT_COUNT ? names[act] : "?";
}

/* The reference: C[b] = act(alpha op(A[b]) op(B[b]) + beta C[b] + bias) in double, in place. */
static void gemm_ref(const eng_gemm_args *g) {
    for (int64_t bt = 0; bt < g->batch; bt++) {
        const float *a = (const float *)g->a + bt * g->batch_stride_a;
        const float *b = (const float *)g->b + bt * g->batch_stride_b;
        float *c = (float *)g->c + bt * g->batch_stride_c;
        for (int64_t i = 0; i < g->m; i++) {
            for (int64_t j = 0; j < g->n; j++) {
                double acc = 0.0;
                for (int64_t p = 0; p < g->k; p++) {
                    const double av = g->trans_a ? a[p * g->lda + i] : a[i * g->lda + p];
                    const double bv = g->trans_b ? b[j * g->ldb + p] : b[p * g->ldb + j];
                    acc += av * bv;
                }
                double v = g->alpha * acc;
                if (g->beta != 0.0f) v += (double)g->beta * c[i * g->ldc + j];
                if (g->bias != NULL) v += ((const float *)g->bias)[j];
                c[i * g->ldc + j] = (float)act_ref(g->act, v);
            }
        }
    }
}

/* Runs one GEMM through eng_cpu_gemm and the reference on copies of C; compares all of C
 * (padding included: it must be untouched) and the guard after it. */
static int run_gemm(eng_stream *s,
                    int ta,
                    int tb,
                    int64_t m,
                    int64_t n,
                    int64_t k,
                    int64_t batch,
                    int bcast, /* 1: A shared by every batch, 2: B shared */
                    int64_t pad,
                    float alpha,
                    float beta,
                    int use_bias,
                    eng_act act) {
    eng_err err = {0};
    eng_gemm_args g;
    char what[200];
    const int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    /* BLAS wants leading dimensions >= 1 even for an empty row (k = 0) */
    const int64_t lda = ENG_MAX(ac + pad, 1), ldb = ENG_MAX(bc + pad, 1), ldc = ENG_MAX(n + pad, 1);
    const int64_t sa = bcast == 1 ? 0 : ar * lda, sb = bcast == 2 ? 0 : br * ldb;
    const int64_t sc = m * ldc + pad; /* batches of C apart, with a gap */
    const int64_t na = (bcast == 1 ? 1 : batch) * ar * lda + 1;
    const int64_t nb = (bcast == 2 ? 1 : batch) * br * ldb + 1;
    const int64_t nc = batch * sc + 1;
    float *a = rand_buf(na, 1), *b = rand_buf(nb, 2), *c = rand_buf(nc, 3), *r = rand_buf(nc, 3);
    float *bias = rand_buf(n + 1, 4);
    CHECK(a && b && c && r && bias);
    memset(&g, 0, sizeof g);
    g.dtype = ENG_DTYPE_F32;
    g.trans_a = ta;
    g.trans_b = tb;
    g.m = m;
    g.n = n;
    g.k = k;
    g.batch = batch;
    g.alpha = alpha;
    g.beta = beta;
    g.a = a;
    g.lda = lda;
    g.batch_stride_a = sa;
    g.b = b;
    g.ldb = ldb;
    g.batch_stride_b = sb;
    g.c = c;
    g.ldc = ldc;
    g.batch_stride_c = sc;
    g.bias = use_bias ? bias : NULL;
    g.act = act;
    CHECK_OK(eng_cpu_gemm(s, &g, &err), &err);
    g.c = r;
    gemm_ref(&g);
    snprintf(what, sizeof what,
             "gemm m=%lld n=%lld k=%lld batch=%lld bcast=%d ta=%d tb=%d pad=%lld bias=%d act=%s",
             (long long)m, (long long)n, (long long)k, (long long)batch, bcast, ta, tb,
             (long long)pad, use_bias, act_str(act));
    const double atol = 1e-5 * sqrt((double)(k > 0 ? k : 1)) * 2.0;
    if (!eng_test_allclose(what, c, r, nc, atol, 1e-5) || !guard_ok(c, nc)) {
        fprintf(stderr, "FAILED: %s\n", what);
        return 1;
    }
    free(a);
    free(b);
    free(c);
    free(r);
    free(bias);
    return 0;
}

/* ---- GEMM cases ------------------------------------------------------------------------------ */

static int test_gemm_shapes(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_stream serial = {ENG_DEVICE_CPU, NULL, NULL, NULL, NULL};
    /* m, n, k: ones, odd sizes, k = 0, more rows than pieces, a short wide C (column split). */
    static const int64_t sizes[][3] = {{1, 1, 1},    {17, 33, 65}, {130, 7, 300}, {67, 129, 31},
                                       {5, 300, 40}, {3, 5, 0},    {200, 150, 9}};
    CHECK(ctx != NULL);
    eng_stream *pooled = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    for (int si = 0; si < ENG_TEST_N(sizes); si++) {
        for (int t = 0; t < 4; t++) {
            for (int pi = 0; pi < 2; pi++) {
                eng_stream *s = pi ? pooled : &serial;
                const int64_t pad = pi ? 3 : 0;
                if (run_gemm(s, t & 1, t >> 1, sizes[si][0], sizes[si][1], sizes[si][2], 1, 0, pad,
                             0.5f, 0.25f, 0, ENG_ACT_NONE) != 0) {
                    return 1;
                }
            }
        }
    }
    /* beta = 0 must not read C: NaN there stays out of the result. */
    {
        eng_err err = {0};
        float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, c[4];
        const eng_gemm_args g = {
            ENG_DTYPE_F32, 0,           0, 2, 2, 3, 1, 1.0f, 0.0f, a, 3, 0, b, 2, 0, c, 2, 0,
            NULL,          ENG_ACT_NONE};
        for (int i = 0; i < 4; i++)
            c[i] = NAN;
        CHECK_OK(eng_cpu_gemm(pooled, &g, &err), &err);
        CHECK(c[0] == 4.0f && c[1] == 5.0f && c[2] == 10.0f && c[3] == 11.0f);
    }
    /* k = 0 with no A and B at all: C = act(bias) */
    {
        eng_err err = {0};
        float c[6], bias[3] = {-1.0f, 0.0f, 2.0f};
        const eng_gemm_args g = {ENG_DTYPE_F32, 0, 1, 2, 3, 0, 1,    1.0f,        0.0f, NULL, 1, 0,
                                 NULL,          1, 0, c, 3, 0, bias, ENG_ACT_SILU};
        CHECK_OK(eng_cpu_gemm(pooled, &g, &err), &err);
        for (int i = 0; i < 6; i++)
            CHECK(fabs(c[i] - act_ref(ENG_ACT_SILU, bias[i % 3])) < 1e-6);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_gemm_batched(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    for (int bcast = 0; bcast < 3; bcast++) {
        for (int t = 0; t < 4; t++) {
            if (run_gemm(s, t & 1, t >> 1, 19, 23, 41, 3, bcast, 2, 1.0f, 0.0f, 0, ENG_ACT_NONE) !=
                0) {
                return 1;
            }
        }
        /* a short batch split by columns, with the epilogue */
        if (run_gemm(s, 0, 1, 4, 260, 33, 2, bcast, 1, 1.0f, 0.5f, 1, ENG_ACT_GELU) != 0) return 1;
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_gemm_epilogue(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    for (int act = 0; act < ENG_ACT_COUNT; act++) {
        for (int use_bias = 0; use_bias < 2; use_bias++) {
            for (int bi = 0; bi < 2; bi++) {
                const float beta = bi ? 0.75f : 0.0f;
                /* row split, column split, k = 0 (the epilogue alone) */
                if (run_gemm(s, 0, 1, 150, 37, 70, 1, 0, 1, 1.5f, beta, use_bias, (eng_act)act) !=
                        0 ||
                    run_gemm(s, 1, 0, 7, 200, 20, 1, 0, 0, 1.0f, beta, use_bias, (eng_act)act) !=
                        0 ||
                    run_gemm(s, 0, 0, 9, 11, 0, 1, 0, 2, 1.0f, beta, use_bias, (eng_act)act) != 0) {
                    return 1;
                }
            }
        }
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- linear and matmul (tensor level) -------------------------------------------------------- */

/* y (rows, n) with row stride ldy = act(x (rows, k; ldx) w (n, k)^T + bias), double. */
static void linear_ref(float *y,
                       int64_t ldy,
                       const float *x,
                       int64_t ldx,
                       const float *w,
                       const float *bias,
                       int64_t rows,
                       int64_t n,
                       int64_t k,
                       eng_act act) {
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < n; j++) {
            double acc = bias != NULL ? bias[j] : 0.0;
            for (int64_t p = 0; p < k; p++)
                acc += (double)x[i * ldx + p] * w[j * k + p];
            y[i * ldy + j] = (float)act_ref(act, acc);
        }
    }
}

static int test_linear(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    eng_tensor xb, x, w, bias, yb, y;
    const int64_t B = 2, L = 37, K = 96, N = 75, XP = 100, YP = 80; /* rows padded to XP, YP */
    const int64_t xs[3] = {B, L, XP}, ws[2] = {N, K}, bs[1] = {N}, ys[3] = {B, L, YP};
    float *xd = rand_buf(B * L * XP, 10), *wd = rand_buf(N * K, 11), *bd = rand_buf(N, 12);
    float *yd = rand_buf(B * L * YP, 13), *rd = rand_buf(B * L * YP, 13);
    CHECK(ctx && xd && wd && bd && yd && rd);
    CHECK_OK(eng_tensor_init(&xb, xd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, xs, &err), &err);
    CHECK_OK(eng_tensor_init(&w, wd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, ws, &err), &err);
    CHECK_OK(eng_tensor_init(&bias, bd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, bs, &err), &err);
    CHECK_OK(eng_tensor_init(&yb, yd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, ys, &err), &err);
    /* x and y are views with padded rows (a slice of the last dimension) */
    CHECK_OK(eng_tensor_view_slice(&x, &xb, 2, 0, K, &err), &err);
    CHECK_OK(eng_tensor_view_slice(&y, &yb, 2, 0, N, &err), &err);
    for (int act = 0; act < ENG_ACT_COUNT; act++) {
        for (int use_bias = 0; use_bias < 2; use_bias++) {
            char what[96];
            CHECK_OK(
                eng_op_linear(ctx, NULL, &y, &x, &w, use_bias ? &bias : NULL, (eng_act)act, &err),
                &err);
            linear_ref(rd, YP, xd, XP, wd, use_bias ? bd : NULL, B * L, N, K, (eng_act)act);
            snprintf(what, sizeof what, "linear act=%s bias=%d", act_str((eng_act)act), use_bias);
            CHECK(eng_test_allclose(what, yd, rd, B * L * YP, 2e-5 * sqrt((double)K), 1e-5));
            CHECK(guard_ok(yd, B * L * YP));
        }
    }
    /* 1-D x (one token) and an empty batch of rows */
    {
        eng_tensor x1, y1, x0, y0;
        const int64_t s1[1] = {K}, so[1] = {N}, s0x[2] = {0, K}, s0y[2] = {0, N};
        float out[75 + GUARD], ref[75];
        eng_test_canary_set(out + N, sizeof(float) * GUARD);
        CHECK_OK(eng_tensor_init(&x1, xd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, s1, &err), &err);
        CHECK_OK(eng_tensor_init(&y1, out, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, so, &err), &err);
        CHECK_OK(eng_op_linear(ctx, NULL, &y1, &x1, &w, &bias, ENG_ACT_SILU, &err), &err);
        linear_ref(ref, N, xd, K, wd, bd, 1, N, K, ENG_ACT_SILU);
        CHECK(eng_test_allclose("linear 1-D", out, ref, N, 2e-5 * sqrt((double)K), 1e-5));
        CHECK(guard_ok(out, N));
        CHECK_OK(eng_tensor_init(&x0, NULL, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s0x, &err), &err);
        CHECK_OK(eng_tensor_init(&y0, NULL, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s0y, &err), &err);
        CHECK_OK(eng_op_linear(ctx, NULL, &y0, &x0, &w, &bias, ENG_ACT_NONE, &err), &err);
    }
    free(xd);
    free(wd);
    free(bd);
    free(yd);
    free(rd);
    eng_ctx_destroy(ctx);
    return 0;
}

/* c[b] = alpha op(a[b or 0]) op(b[b or 0]) + beta c[b] in double; every matrix with its own
 * row stride and batch stride (0: broadcast). */
static void matmul_ref(float *c,
                       int64_t ldc,
                       int64_t sc,
                       const float *a,
                       int64_t lda,
                       int64_t sa,
                       const float *b,
                       int64_t ldb,
                       int64_t sb,
                       int ta,
                       int tb,
                       int64_t batch,
                       int64_t m,
                       int64_t n,
                       int64_t k,
                       float alpha,
                       float beta) {
    const eng_gemm_args g = {ENG_DTYPE_F32, ta, tb, m,   n,  k, batch, alpha, beta, a,
                             lda,           sa, b,  ldb, sb, c, ldc,   sc,    NULL, ENG_ACT_NONE};
    gemm_ref(&g);
}

static int test_matmul(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    const int64_t B = 3, M = 20, N = 25, K = 30, P = 4; /* P: row padding of every operand */
    CHECK(ctx != NULL);
    for (int t = 0; t < 4; t++) {
        for (int mode = 0; mode < 3; mode++) { /* 0: all batched, 1: b 2-D, 2: a batch of 1 */
            const int ta = t & 1, tb = t >> 1;
            const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
            const int64_t ab = mode == 2 ? 1 : B;
            eng_tensor abase, bbase, cbase, av, bv, cv;
            const int64_t sa[3] = {ab, ar, ac + P}, sb3[3] = {B, br, bc + P}, sb2[2] = {br, bc + P};
            const int64_t sc[3] = {B, M, N + P};
            float *ad = rand_buf(ab * ar * (ac + P), 20), *bd = rand_buf(B * br * (bc + P), 21);
            float *cd = rand_buf(B * M * (N + P), 22), *rd = rand_buf(B * M * (N + P), 22);
            char what[96];
            CHECK(ad && bd && cd && rd);
            CHECK_OK(eng_tensor_init(&abase, ad, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, sa, &err), &err);
            if (mode == 1) {
                CHECK_OK(eng_tensor_init(&bbase, bd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sb2, &err),
                         &err);
                CHECK_OK(eng_tensor_view_slice(&bv, &bbase, 1, 0, bc, &err), &err);
            } else {
                CHECK_OK(eng_tensor_init(&bbase, bd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, sb3, &err),
                         &err);
                CHECK_OK(eng_tensor_view_slice(&bv, &bbase, 2, 0, bc, &err), &err);
            }
            CHECK_OK(eng_tensor_init(&cbase, cd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, sc, &err), &err);
            CHECK_OK(eng_tensor_view_slice(&av, &abase, 2, 0, ac, &err), &err);
            CHECK_OK(eng_tensor_view_slice(&cv, &cbase, 2, 0, N, &err), &err);
            CHECK_OK(eng_op_matmul(ctx, NULL, &cv, &av, &bv, ta, tb, 0.5f, -0.5f, &err), &err);
            matmul_ref(rd, N + P, M * (N + P), ad, ac + P, mode == 2 ? 0 : ar * (ac + P), bd,
                       bc + P, mode == 1 ? 0 : br * (bc + P), ta, tb, B, M, N, K, 0.5f, -0.5f);
            snprintf(what, sizeof what, "matmul ta=%d tb=%d mode=%d", ta, tb, mode);
            CHECK(eng_test_allclose(what, cd, rd, B * M * (N + P), 2e-5 * sqrt((double)K), 1e-5));
            CHECK(guard_ok(cd, B * M * (N + P)));
            free(ad);
            free(bd);
            free(cd);
            free(rd);
        }
    }
    /* plain 2-D */
    {
        float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 2, 3, 4, 5, 6}, c[4] = {0};
        eng_tensor at, bt, ct;
        const int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s22[2] = {2, 2};
        CHECK_OK(eng_tensor_init(&at, a, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s23, &err), &err);
        CHECK_OK(eng_tensor_init(&bt, b, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s32, &err), &err);
        CHECK_OK(eng_tensor_init(&ct, c, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s22, &err), &err);
        CHECK_OK(eng_op_matmul(ctx, NULL, &ct, &at, &bt, 0, 0, 1.0f, 0.0f, &err), &err);
        CHECK(c[0] == 22.0f && c[1] == 28.0f && c[2] == 49.0f && c[3] == 64.0f);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_gemm_errors(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    float buf[4096] = {0};
    eng_tensor x, w, w_bad, bias, y, xh, a3, b3, c3, a4, yv, xperm;
    const int64_t sx[3] = {2, 5, 8}, sw[2] = {6, 8}, swb[2] = {6, 7}, sbias[1] = {5};
    const int64_t sy[3] = {2, 5, 6}, s3a[3] = {2, 4, 8}, s3b[3] = {3, 8, 5}, s3c[3] = {2, 4, 5};
    const int64_t s4[4] = {1, 2, 4, 8};
    const int perm[3] = {1, 0, 2};
    CHECK(ctx != NULL);
    CHECK_OK(eng_tensor_init(&x, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, sx, &err), &err);
    CHECK_OK(eng_tensor_init(&w, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sw, &err), &err);
    CHECK_OK(eng_tensor_init(&w_bad, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, swb, &err), &err);
    CHECK_OK(eng_tensor_init(&bias, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, sbias, &err), &err);
    CHECK_OK(eng_tensor_init(&y, buf + 1024, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, sy, &err), &err);
    CHECK_OK(eng_tensor_init(&xh, buf, ENG_DTYPE_F16, ENG_DEVICE_CPU, 3, sx, &err), &err);

    /* linear: K mismatch, dtype mismatch, bias of the wrong length, unknown act, permuted x */
    CHECK(eng_op_linear(ctx, NULL, &y, &x, &w_bad, NULL, ENG_ACT_NONE, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eng_op_linear: shapes do not chain");
    CHECK_CONTAINS(err.msg, "w is f32[6,7] cpu");
    CHECK(eng_op_linear(ctx, NULL, &y, &xh, &w, NULL, ENG_ACT_NONE, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "x is f16[2,5,8] cpu");
    CHECK(eng_op_linear(ctx, NULL, &y, &x, &w, &bias, ENG_ACT_NONE, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "bias is f32[5] cpu, expected (6)");
    CHECK(eng_op_linear(ctx, NULL, &y, &x, &w, NULL, ENG_ACT_COUNT, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "unknown activation");
    CHECK_OK(eng_tensor_view_permute(&xperm, &x, perm, &err), &err);
    CHECK_OK(eng_tensor_view_permute(&yv, &y, perm, &err), &err);
    CHECK(eng_op_linear(ctx, NULL, &yv, &xperm, &w, NULL, ENG_ACT_NONE, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "do not flatten into rows");
    /* f16 on the CPU: valid, but not computed there */
    {
        eng_tensor wh, yh;
        CHECK_OK(eng_tensor_init(&wh, buf, ENG_DTYPE_F16, ENG_DEVICE_CPU, 2, sw, &err), &err);
        CHECK_OK(eng_tensor_init(&yh, buf + 1024, ENG_DTYPE_F16, ENG_DEVICE_CPU, 3, sy, &err),
                 &err);
        CHECK(eng_op_linear(ctx, NULL, &yh, &xh, &wh, NULL, ENG_ACT_NONE, &err) ==
              ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "f32 only");
    }
    /* CUDA tensors without a CUDA backend */
    {
        eng_tensor xd = x, wd = w, yd = y;
        xd.device = wd.device = yd.device = ENG_DEVICE_CUDA;
        CHECK(eng_op_linear(ctx, NULL, &yd, &xd, &wd, NULL, ENG_ACT_NONE, &err) ==
              ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "no cuda device is attached");
    }

    /* matmul: batch mismatch, inner dimension mismatch, 4-D, dtype */
    CHECK_OK(eng_tensor_init(&a3, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, s3a, &err), &err);
    CHECK_OK(eng_tensor_init(&b3, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, s3b, &err), &err);
    CHECK_OK(eng_tensor_init(&c3, buf + 1024, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, s3c, &err), &err);
    CHECK(eng_op_matmul(ctx, NULL, &c3, &a3, &b3, 0, 0, 1.0f, 0.0f, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "batches do not match");
    CHECK(eng_op_matmul(ctx, NULL, &c3, &a3, &b3, 1, 0, 1.0f, 0.0f, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "op(a) is 8x4, op(b) is 8x5, c is 4x5");
    CHECK_OK(eng_tensor_init(&a4, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, s4, &err), &err);
    CHECK(eng_op_matmul(ctx, NULL, &c3, &a4, &b3, 0, 0, 1.0f, 0.0f, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "a is f32[1,2,4,8] cpu (needs 2-D or 3-D)");
    b3.dtype = ENG_DTYPE_BF16;
    CHECK(eng_op_matmul(ctx, NULL, &c3, &a3, &b3, 0, 0, 1.0f, 0.0f, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "b is bf16[3,8,5] cpu");

    /* the twin itself: small leading dimension, overlapping batches of C, f16, NULL */
    {
        eng_gemm_args g = {ENG_DTYPE_F32, 0,           0, 4,   5, 8, 1,          1.0f, 0.0f,
                           buf,           7,           0, buf, 5, 0, buf + 1024, 5,    0,
                           NULL,          ENG_ACT_NONE};
        CHECK(eng_cpu_gemm(NULL, &g, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "lda=7 ldb=5 ldc=5 too small");
        g.lda = 8;
        g.batch = 2;
        g.batch_stride_c = 10;
        CHECK(eng_cpu_gemm(NULL, &g, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "would overlap");
        g.batch = 1;
        g.dtype = ENG_DTYPE_F16;
        CHECK(eng_cpu_gemm(NULL, &g, &err) == ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "dtype f16");
        g.dtype = ENG_DTYPE_F32;
        g.b = NULL;
        CHECK(eng_cpu_gemm(NULL, &g, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "NULL matrix");
        g.b = buf;
        g.m = -1;
        CHECK(eng_cpu_gemm(NULL, &g, &err) == ENG_E_INVALID_ARG);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- convolution ----------------------------------------------------------------------------- */

/* y (n, ho, wo, o) = conv(x (n, h, w, c), w (o, kh, kw, c)) + bias, double accumulation. */
static void conv_ref(float *y, const eng_conv2d_args *a) {
    const float *x = a->x, *w = a->w, *bias = a->bias;
    for (int64_t i = 0; i < a->n; i++) {
        for (int64_t oy = 0; oy < a->ho; oy++) {
            for (int64_t ox = 0; ox < a->wo; ox++) {
                for (int64_t o = 0; o < a->o; o++) {
                    double acc = bias != NULL ? bias[o] : 0.0;
                    for (int64_t ky = 0; ky < a->kh; ky++) {
                        const int64_t iy = oy * a->stride - a->pad + ky;
                        if (iy < 0 || iy >= a->h) continue;
                        for (int64_t kx = 0; kx < a->kw; kx++) {
                            const int64_t ix = ox * a->stride - a->pad + kx;
                            if (ix < 0 || ix >= a->w_in) continue;
                            const float *xp = x + ((i * a->h + iy) * a->w_in + ix) * a->c;
                            const float *wp = w + ((o * a->kh + ky) * a->kw + kx) * a->c;
                            for (int64_t c = 0; c < a->c; c++)
                                acc += (double)xp[c] * wp[c];
                        }
                    }
                    y[((i * a->ho + oy) * a->wo + ox) * a->o + o] = (float)acc;
                }
            }
        }
    }
}

/* One convolution through eng_op_conv2d (stream s, NULL: the context's) against the reference;
 * checks the guard after y and that the arena is back where it was. */
static int run_conv(eng_ctx *ctx,
                    eng_stream *s,
                    int64_t n,
                    int64_t h,
                    int64_t w,
                    int64_t c,
                    int64_t o,
                    int64_t k,
                    int64_t stride,
                    int64_t pad,
                    int use_bias) {
    eng_err err = {0};
    eng_tensor xt, wt, bt, yt;
    eng_conv2d_args a;
    char what[160];
    const int64_t ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    const int64_t sx[4] = {n, h, w, c}, sw[4] = {o, k, k, c}, sb[1] = {o}, sy[4] = {n, ho, wo, o};
    const int64_t ny = n * ho * wo * o;
    float *xd = rand_buf(n * h * w * c, 30), *wd = rand_buf(o * k * k * c, 31);
    float *bd = rand_buf(o, 32), *yd = rand_buf(ny, 33), *rd = rand_buf(ny, 33);
    CHECK(xd && wd && bd && yd && rd);
    CHECK_OK(eng_tensor_init(&xt, xd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sx, &err), &err);
    CHECK_OK(eng_tensor_init(&wt, wd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sw, &err), &err);
    CHECK_OK(eng_tensor_init(&bt, bd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, sb, &err), &err);
    CHECK_OK(eng_tensor_init(&yt, yd, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sy, &err), &err);
    eng_arena *ar = eng_ctx_stream(ctx, ENG_DEVICE_CPU)->arena;
    const uint64_t used = eng_arena_used(ar);
    CHECK_OK(eng_op_conv2d(ctx, s, &yt, &xt, &wt, use_bias ? &bt : NULL, stride, pad, &err), &err);
    CHECK(eng_arena_used(ar) == used);
    memset(&a, 0, sizeof a);
    a.dtype = ENG_DTYPE_F32;
    a.x = xd;
    a.w = wd;
    a.bias = use_bias ? bd : NULL;
    a.n = n;
    a.h = h;
    a.w_in = w;
    a.c = c;
    a.o = o;
    a.kh = a.kw = k;
    a.stride = stride;
    a.pad = pad;
    a.ho = ho;
    a.wo = wo;
    conv_ref(rd, &a);
    snprintf(what, sizeof what,
             "conv2d x [%lld,%lld,%lld,%lld] o=%lld k=%lld stride=%lld pad=%lld bias=%d",
             (long long)n, (long long)h, (long long)w, (long long)c, (long long)o, (long long)k,
             (long long)stride, (long long)pad, use_bias);
    if (!eng_test_allclose(what, yd, rd, ny, 2e-5 * sqrt((double)(k * k * c)), 1e-5) ||
        !guard_ok(yd, ny)) {
        fprintf(stderr, "FAILED: %s\n", what);
        return 1;
    }
    free(xd);
    free(wd);
    free(bd);
    free(yd);
    free(rd);
    return 0;
}

static int test_conv_pointwise(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    /* 1x1 stride 1 pad 0 is a GEMM on x as it is: no workspace, so a stream without an arena
     * works too */
    eng_stream bare = {ENG_DEVICE_CPU, NULL, eng_ctx_pool(ctx), NULL, NULL};
    for (int use_bias = 0; use_bias < 2; use_bias++) {
        if (run_conv(ctx, NULL, 2, 5, 7, 13, 11, 1, 1, 0, use_bias) != 0) return 1;
        if (run_conv(ctx, &bare, 1, 9, 9, 40, 130, 1, 1, 0, use_bias) != 0) return 1;
    }
    /* no input channels: y is the bias (1x1 through the GEMM with k = 0, 3x3 directly) */
    if (run_conv(ctx, NULL, 2, 3, 4, 0, 5, 1, 1, 0, 1) != 0) return 1;
    if (run_conv(ctx, NULL, 1, 4, 4, 0, 3, 3, 1, 1, 1) != 0) return 1;
    {
        eng_err err = {0};
        float y[2 * 2 * 3], bias[3] = {1.0f, -2.0f, 0.5f};
        const eng_conv2d_args a = {
            ENG_DTYPE_F32, y, NULL, NULL, bias, 1, 2, 2, 0, 3, 3, 3, 1, 1, 2, 2};
        CHECK_OK(eng_cpu_conv2d(eng_ctx_stream(ctx, ENG_DEVICE_CPU), &a, &err), &err);
        for (int i = 0; i < 12; i++)
            CHECK(y[i] == bias[i % 3]);
    }
    /* 1x1 with stride 2, and with padding (the border is the bias alone): im2col paths */
    if (run_conv(ctx, NULL, 2, 9, 8, 6, 5, 1, 2, 0, 1) != 0) return 1;
    if (run_conv(ctx, NULL, 1, 4, 3, 3, 4, 1, 1, 1, 1) != 0) return 1;
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_conv_k3(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_stream serial = {ENG_DEVICE_CPU, NULL, NULL, NULL, NULL};
    CHECK(ctx != NULL);
    serial.arena = eng_ctx_stream(ctx, ENG_DEVICE_CPU)->arena;
    for (int use_bias = 0; use_bias < 2; use_bias++) {
        for (int64_t pad = 0; pad < 2; pad++) {
            if (run_conv(ctx, NULL, 2, 9, 7, 5, 6, 3, 1, pad, use_bias) != 0) return 1;
            if (run_conv(ctx, NULL, 1, 3, 3, 1, 1, 3, 1, pad, use_bias) != 0) return 1;
        }
    }
    /* one tile, many channels: output channels split between pieces */
    if (run_conv(ctx, NULL, 1, 6, 6, 40, 200, 3, 1, 1, 1) != 0) return 1;
    /* serial (no pool) */
    if (run_conv(ctx, &serial, 2, 8, 5, 3, 7, 3, 1, 1, 1) != 0) return 1;
    /* a kernel larger than the image is fine once padded: 3x3 on 1x2 with pad 1 */
    if (run_conv(ctx, NULL, 3, 1, 2, 4, 5, 3, 1, 1, 1) != 0) return 1;
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_conv_stride2(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    for (int64_t pad = 0; pad < 2; pad++) {
        if (run_conv(ctx, NULL, 2, 9, 8, 5, 7, 3, 2, pad, 1) != 0) return 1;   /* odd / even */
        if (run_conv(ctx, NULL, 1, 16, 16, 8, 9, 3, 2, pad, 0) != 0) return 1; /* SD's down */
        if (run_conv(ctx, NULL, 2, 7, 7, 3, 2, 1, 2, pad, 1) != 0) return 1;
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_conv_tiles(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    /* kh*kw*c = 2700: tiles of a few hundred pixels, so 2 x 30 x 30 output pixels make several
     * tiles, and tiles straddle the two images */
    if (run_conv(ctx, NULL, 2, 30, 30, 300, 20, 3, 1, 1, 1) != 0) return 1;
    /* many cheap pixels: more tiles than pieces */
    if (run_conv(ctx, NULL, 3, 41, 37, 7, 9, 3, 1, 1, 1) != 0) return 1;
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_conv_errors(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    static float buf[8192];
    eng_tensor x, w, y, yb, wh, bias, wbig, xs;
    const int64_t sx[4] = {1, 6, 5, 3}, sw[4] = {4, 3, 3, 3}, sy[4] = {1, 6, 5, 4};
    const int64_t syb[4] = {1, 4, 3, 4}, sbias[1] = {3}, swbig[4] = {4, 9, 9, 3};
    CHECK(ctx != NULL);
    CHECK_OK(eng_tensor_init(&x, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sx, &err), &err);
    CHECK_OK(eng_tensor_init(&w, buf + 1024, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sw, &err), &err);
    CHECK_OK(eng_tensor_init(&y, buf + 2048, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sy, &err), &err);
    CHECK_OK(eng_tensor_init(&yb, buf + 2048, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, syb, &err), &err);
    CHECK_OK(eng_tensor_init(&wh, buf + 1024, ENG_DTYPE_F16, ENG_DEVICE_CPU, 4, sw, &err), &err);
    CHECK_OK(eng_tensor_init(&bias, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, sbias, &err), &err);
    CHECK_OK(eng_tensor_init(&wbig, buf + 1024, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, swbig, &err),
             &err);
    /* the good call first */
    CHECK_OK(eng_op_conv2d(ctx, NULL, &y, &x, &w, NULL, 1, 1, &err), &err);
    /* y of the wrong shape: the expected one is named */
    CHECK(eng_op_conv2d(ctx, NULL, &yb, &x, &w, NULL, 1, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "expected [1,6,5,4]");
    /* dtype mismatch */
    CHECK(eng_op_conv2d(ctx, NULL, &y, &x, &wh, NULL, 1, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "w is f16[4,3,3,3] cpu");
    /* bias of the wrong length, bad stride, kernel bigger than the padded input */
    CHECK(eng_op_conv2d(ctx, NULL, &y, &x, &w, &bias, 1, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "expected (4)");
    CHECK(eng_op_conv2d(ctx, NULL, &y, &x, &w, NULL, 0, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "stride 0");
    CHECK(eng_op_conv2d(ctx, NULL, &y, &x, &wbig, NULL, 1, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "does not fit");
    /* channels of x and w differ */
    {
        eng_tensor w2;
        const int64_t sw2[4] = {4, 3, 3, 2};
        CHECK_OK(eng_tensor_init(&w2, buf + 1024, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sw2, &err),
                 &err);
        CHECK(eng_op_conv2d(ctx, NULL, &y, &x, &w2, NULL, 1, 1, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "w (O, KH, KW, C)");
    }
    /* a non-contiguous x */
    CHECK_OK(eng_tensor_view_slice(&xs, &x, 3, 0, 2, &err), &err);
    CHECK(eng_op_conv2d(ctx, NULL, &y, &xs, &w, NULL, 1, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "must be contiguous");
    /* a 3x3 convolution needs the im2col workspace: a stream without an arena is refused */
    {
        eng_stream bare = {ENG_DEVICE_CPU, NULL, eng_ctx_pool(ctx), NULL, NULL};
        CHECK(eng_op_conv2d(ctx, &bare, &y, &x, &w, NULL, 1, 1, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "no scratch arena");
    }
    /* the twin: f16, an inconsistent output size */
    {
        eng_conv2d_args a = {
            ENG_DTYPE_F16, buf + 2048, buf, buf + 1024, NULL, 1, 6, 5, 3, 4, 3, 3, 1, 1, 6, 5};
        CHECK(eng_cpu_conv2d(eng_ctx_stream(ctx, ENG_DEVICE_CPU), &a, &err) == ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "dtype f16");
        a.dtype = ENG_DTYPE_F32;
        a.ho = 7;
        CHECK(eng_cpu_conv2d(eng_ctx_stream(ctx, ENG_DEVICE_CPU), &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "output 7x5, expected 6x5");
    }
    eng_ctx_destroy(ctx);
    return 0;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"gemm.shapes", test_gemm_shapes},
        {"gemm.batched", test_gemm_batched},
        {"gemm.epilogue", test_gemm_epilogue},
        {"gemm.linear", test_linear},
        {"gemm.matmul", test_matmul},
        {"gemm.errors", test_gemm_errors},
        {"conv.pointwise", test_conv_pointwise},
        {"conv.k3", test_conv_k3},
        {"conv.stride2", test_conv_stride2},
        {"conv.tiles", test_conv_tiles},
        {"conv.errors", test_conv_errors},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
