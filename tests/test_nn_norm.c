/* test_nn_norm.c: GroupNorm (+ SiLU), LayerNorm and softmax on the CPU (eng_op_* and the twins
 * eng_cpu_*) against naive double references: SD-like and odd shapes, groups 32 and 1, with and
 * without SiLU and the affine parameters, inputs with a large mean (a one-pass variance would
 * lose it), canary guards after every output, and the malformed calls. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_compare.h"
#include "eng_test_ctx.h"

/* ---- GroupNorm ------------------------------------------------------------------------------- */

/* torch.nn.GroupNorm on NHWC data in double: x (n, hw, c). */
static void groupnorm_ref(float *y,
                          const float *x,
                          const float *gamma,
                          const float *beta,
                          int64_t n,
                          int64_t hw,
                          int64_t c,
                          int64_t groups,
                          double eps,
                          int silu) {
    const int64_t cpg = c / groups;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t g = 0; g < groups; g++) {
            double sum = 0, sq = 0;
            for (int64_t p = 0; p < hw; p++)
                for (int64_t j = g * cpg; j < (g + 1) * cpg; j++)
                    sum += x[(i * hw + p) * c + j];
            const double mean = sum / (double)(hw * cpg);
            for (int64_t p = 0; p < hw; p++)
                for (int64_t j = g * cpg; j < (g + 1) * cpg; j++) {
                    const double d = x[(i * hw + p) * c + j] - mean;
                    sq += d * d;
                }
            const double rstd = 1.0 / sqrt(sq / (double)(hw * cpg) + eps);
            for (int64_t p = 0; p < hw; p++)
                for (int64_t j = g * cpg; j < (g + 1) * cpg; j++) {
                    const int64_t o = (i * hw + p) * c + j;
                    double v = (x[o] - mean) * rstd;
                    v = v * (gamma ? gamma[j] : 1.0) + (beta ? beta[j] : 0.0);
                    if (silu) v = v / (1.0 + exp(-v));
                    y[o] = (float)v;
                }
        }
    }
}

typedef struct gn_case {
    int ndim;
    int64_t shape[4];
    int64_t groups;
    int silu, affine;
    float lo, hi; /* input range */
} gn_case;

static int run_groupnorm_case(eng_ctx *ctx, const gn_case *k) {
    eng_err err = {0};
    eng_tensor x, y, gamma, beta;
    const int64_t c = k->shape[k->ndim - 1];
    const int64_t hw = k->ndim == 4 ? k->shape[1] * k->shape[2] : k->shape[1];
    const int64_t sc[1] = {c};
    float *xp = eng_test_tensor_f32(&x, k->ndim, k->shape, 1, k->lo, k->hi);
    float *yp = eng_test_tensor_f32(&y, k->ndim, k->shape, 0, 0.0f, 0.0f);
    float *gp = eng_test_tensor_f32(&gamma, 1, sc, 2, 0.5f, 1.5f),
          *bp = eng_test_tensor_f32(&beta, 1, sc, 3, -0.5f, 0.5f);
    const int64_t n = eng_tensor_numel(&x);
    float *want = malloc((size_t)n * sizeof(float));
    CHECK(xp != NULL && yp != NULL && gp != NULL && bp != NULL && want != NULL);
    groupnorm_ref(want, xp, k->affine ? gp : NULL, k->affine ? bp : NULL, k->shape[0], hw, c,
                  k->groups, 1e-5, k->silu);
    CHECK_OK(eng_op_groupnorm(ctx, NULL, &y, &x, k->affine ? &gamma : NULL,
                              k->affine ? &beta : NULL, k->groups, 1e-5f,
                              k->silu ? ENG_ACT_SILU : ENG_ACT_NONE, &err),
             &err);
    char what[128];
    snprintf(what, sizeof what, "groupnorm n=%lld hw=%lld c=%lld groups=%lld silu=%d affine=%d",
             (long long)k->shape[0], (long long)hw, (long long)c, (long long)k->groups, k->silu,
             k->affine);
    CHECK(eng_test_allclose(what, yp, want, n, 1e-5, 1e-5));
    CHECK(eng_test_guard_ok(&y));
    /* without the affine part each group comes out with mean 0 and variance ~1 */
    if (!k->affine && !k->silu && hw * (c / k->groups) > 1) {
        double s = 0, s2 = 0;
        const int64_t cpg = c / k->groups;
        for (int64_t p = 0; p < hw; p++)
            for (int64_t j = 0; j < cpg; j++) {
                s += yp[p * c + j];
                s2 += (double)yp[p * c + j] * yp[p * c + j];
            }
        const double cnt = (double)(hw * cpg);
        CHECK(fabs(s / cnt) < 1e-4 && fabs(s2 / cnt - 1.0) < 1e-2);
    }
    free(xp);
    free(yp);
    free(gp);
    free(bp);
    free(want);
    return 0;
}

static int test_groupnorm_g32(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    static const gn_case cases[] = {
        {4, {2, 8, 8, 64}, 32, 0, 1, -2.0f, 2.0f},    /* SD-like, 2 channels per group */
        {4, {2, 16, 16, 320}, 32, 1, 1, -3.0f, 1.0f}, /* SD's first level, 10 per group */
        {4, {1, 5, 3, 96}, 32, 0, 0, -1.0f, 1.0f},    /* odd spatial size, no affine */
        {3, {3, 77, 128}, 32, 1, 0, -1.0f, 1.0f},     /* (N, L, C) */
    };
    CHECK(ctx != NULL);
    for (int i = 0; i < ENG_TEST_N(cases); i++) {
        if (run_groupnorm_case(ctx, &cases[i]) != 0) return 1;
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_groupnorm_g1_odd(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    static const gn_case cases[] = {
        {4, {2, 7, 9, 13}, 1, 0, 1, -1.0f, 1.0f},     /* one group: LayerNorm over H, W, C */
        {4, {2, 7, 9, 13}, 1, 1, 1, -1.0f, 1.0f},     /* + SiLU */
        {4, {1, 1, 1, 1}, 1, 0, 0, -1.0f, 1.0f},      /* one element: (x - x) = 0 */
        {3, {1, 1, 6}, 3, 1, 1, -1.0f, 1.0f},         /* hw = 1 */
        {4, {2, 3, 5, 6}, 6, 0, 0, 1000.0f, 1001.0f}, /* mean 1000, spread 1: f64 statistics */
    };
    CHECK(ctx != NULL);
    for (int i = 0; i < ENG_TEST_N(cases); i++) {
        if (run_groupnorm_case(ctx, &cases[i]) != 0) return 1;
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_groupnorm_errors(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    eng_tensor x, y, g, xs;
    const int64_t sx[4] = {1, 4, 4, 30}, sg[1] = {20}, sbad[3] = {1, 16, 30};
    float *xp = NULL, *yp = NULL, *gp = NULL;
    CHECK(ctx != NULL);
    xp = eng_test_tensor_f32(&x, 4, sx, 1, -1.0f, 1.0f);
    yp = eng_test_tensor_f32(&y, 4, sx, 0, 0.0f, 0.0f);
    gp = eng_test_tensor_f32(&g, 1, sg, 2, -1.0f, 1.0f);
    CHECK(xp != NULL && yp != NULL && gp != NULL);
    /* C not divisible by the groups */
    CHECK(eng_op_groupnorm(ctx, NULL, &y, &x, NULL, NULL, 32, 1e-5f, ENG_ACT_NONE, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "30 channels do not split into 32 groups");
    CHECK(eng_op_groupnorm(ctx, NULL, &y, &x, NULL, NULL, 0, 1e-5f, ENG_ACT_NONE, &err) ==
          ENG_E_INVALID_ARG);
    /* gamma of the wrong size */
    CHECK(eng_op_groupnorm(ctx, NULL, &y, &x, &g, NULL, 10, 1e-5f, ENG_ACT_NONE, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "gamma is f32[20] cpu but x is f32[1,4,4,30] cpu (needs (30)");
    /* y of another shape; another dtype */
    eng_tensor yb;
    CHECK_OK(eng_tensor_init(&yb, yp, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, sbad, &err), &err);
    CHECK(eng_op_groupnorm(ctx, NULL, &yb, &x, NULL, NULL, 10, 1e-5f, ENG_ACT_NONE, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "y is f32[1,16,30] cpu but x is f32[1,4,4,30] cpu");
    yb = y;
    yb.dtype = ENG_DTYPE_F16;
    CHECK(eng_op_groupnorm(ctx, NULL, &yb, &x, NULL, NULL, 10, 1e-5f, ENG_ACT_NONE, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "y is f16[1,4,4,30] cpu");
    /* a non-contiguous x (a slice of the channels) */
    CHECK_OK(eng_tensor_view_slice(&xs, &x, 3, 0, 20, &err), &err);
    yb = y;
    yb.shape[3] = 20;
    yb.stride[0] = 320;
    yb.stride[1] = 80;
    yb.stride[2] = 20;
    CHECK(eng_op_groupnorm(ctx, NULL, &yb, &xs, NULL, NULL, 10, 1e-5f, ENG_ACT_NONE, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "must be contiguous");
    /* 2-D x; an activation that does not fuse; a negative eps */
    eng_tensor x2;
    const int64_t s2[2] = {16, 30};
    CHECK_OK(eng_tensor_init(&x2, xp, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s2, &err), &err);
    CHECK(eng_op_groupnorm(ctx, NULL, &x2, &x2, NULL, NULL, 10, 1e-5f, ENG_ACT_NONE, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "needs (N, H, W, C) or (N, L, C)");
    CHECK(eng_op_groupnorm(ctx, NULL, &y, &x, NULL, NULL, 10, 1e-5f, ENG_ACT_GELU, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "activation gelu");
    CHECK(eng_op_groupnorm(ctx, NULL, &y, &x, NULL, NULL, 10, -1.0f, ENG_ACT_NONE, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eps = -1");
    /* f16 on the CPU is refused as unsupported, naming the tensor */
    {
        eng_tensor xh = x, yh = y;
        xh.dtype = yh.dtype = ENG_DTYPE_F16;
        CHECK(eng_op_groupnorm(ctx, NULL, &yh, &xh, NULL, NULL, 10, 1e-5f, ENG_ACT_NONE, &err) ==
              ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "f16[1,4,4,30] cpu");
    }
    /* the twin's own checks */
    {
        eng_groupnorm_args a;
        memset(&a, 0, sizeof a);
        a.dtype = ENG_DTYPE_F32;
        a.y = yp;
        a.n = 1;
        a.hw = 16;
        a.c = 30;
        a.groups = 7;
        CHECK(eng_cpu_groupnorm(NULL, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_cpu_groupnorm: 30 channels do not split into 7 groups");
        a.groups = 3;
        CHECK(eng_cpu_groupnorm(NULL, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "x is NULL");
    }
    free(xp);
    free(yp);
    free(gp);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- LayerNorm ------------------------------------------------------------------------------- */

static int test_layernorm(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    static const int64_t shapes[4][3] = {{1, 1, 1}, {1, 7, 33}, {2, 77, 768}, {3, 5, 1000}};
    CHECK(ctx != NULL);
    for (int si = 0; si < 4; si++) {
        for (int affine = 0; affine < 2; affine++) {
            eng_tensor x, y, g, b;
            const int64_t c = shapes[si][2], rows = shapes[si][0] * shapes[si][1];
            const int64_t sc[1] = {c};
            const float off = si == 3 ? 500.0f : 0.0f; /* a large mean in the last shape */
            float *xp = eng_test_tensor_f32(&x, 3, shapes[si], 1, off - 2.0f, off + 2.0f);
            float *yp = eng_test_tensor_f32(&y, 3, shapes[si], 0, 0.0f, 0.0f);
            float *gp = eng_test_tensor_f32(&g, 1, sc, 2, 0.5f, 1.5f),
                  *bp = eng_test_tensor_f32(&b, 1, sc, 3, -1.0f, 1.0f);
            float *want = malloc((size_t)(rows * c) * sizeof(float));
            CHECK(xp && yp && gp && bp && want);
            for (int64_t r = 0; r < rows; r++) {
                double s = 0, sq = 0;
                for (int64_t j = 0; j < c; j++)
                    s += xp[r * c + j];
                const double mean = s / (double)c;
                for (int64_t j = 0; j < c; j++)
                    sq += (xp[r * c + j] - mean) * (xp[r * c + j] - mean);
                const double rstd = 1.0 / sqrt(sq / (double)c + 1e-5);
                for (int64_t j = 0; j < c; j++) {
                    double v = (xp[r * c + j] - mean) * rstd;
                    if (affine) v = v * gp[j] + bp[j];
                    want[r * c + j] = (float)v;
                }
            }
            CHECK_OK(eng_op_layernorm(ctx, NULL, &y, &x, affine ? &g : NULL, affine ? &b : NULL,
                                      1e-5f, &err),
                     &err);
            CHECK(eng_test_allclose("layernorm", yp, want, rows * c, 1e-5, 1e-5));
            CHECK(eng_test_guard_ok(&y));
            free(xp);
            free(yp);
            free(gp);
            free(bp);
            free(want);
        }
    }
    { /* malformed: beta of the wrong dtype; y of another shape; x not contiguous */
        eng_tensor x, y, b, xt;
        const int64_t sx[2] = {4, 6}, sb[1] = {6}, sy[2] = {6, 4};
        float *xp = eng_test_tensor_f32(&x, 2, sx, 1, -1.0f, 1.0f),
              *yp = eng_test_tensor_f32(&y, 2, sx, 0, 0.0f, 0.0f);
        float *bp = eng_test_tensor_f32(&b, 1, sb, 2, -1.0f, 1.0f);
        CHECK(xp && yp && bp);
        b.dtype = ENG_DTYPE_BF16;
        CHECK(eng_op_layernorm(ctx, NULL, &y, &x, NULL, &b, 1e-5f, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "beta is bf16[6] cpu but x is f32[4,6] cpu");
        const int perm[2] = {1, 0};
        CHECK_OK(eng_tensor_view_permute(&xt, &x, perm, &err), &err);
        CHECK(eng_op_layernorm(ctx, NULL, &y, &xt, NULL, NULL, 1e-5f, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "y is f32[4,6] cpu but x is f32[6,4] cpu");
        CHECK_OK(eng_tensor_init(&y, yp, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sy, &err), &err);
        CHECK(eng_op_layernorm(ctx, NULL, &y, &xt, NULL, NULL, 1e-5f, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "must be contiguous");
        free(xp);
        free(yp);
        free(bp);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- softmax --------------------------------------------------------------------------------- */

static int test_softmax(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    static const int64_t shapes[4][2] = {{1, 1}, {5, 77}, {3, 1001}, {4096, 40}};
    CHECK(ctx != NULL);
    for (int si = 0; si < 4; si++) {
        eng_tensor x, y;
        const int64_t rows = shapes[si][0], c = shapes[si][1];
        const float scale = si == 1 ? 1.0f : 0.125f;
        float *xp = eng_test_tensor_f32(&x, 2, shapes[si], 1, -40.0f, 40.0f);
        float *yp = eng_test_tensor_f32(&y, 2, shapes[si], 0, 0.0f, 0.0f);
        float *want = malloc((size_t)(rows * c) * sizeof(float));
        CHECK(xp && yp && want);
        if (si == 1) { /* a causal-style mask: -inf above the diagonal */
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = r + 1; j < c; j++)
                    xp[r * c + j] = -INFINITY;
        }
        for (int64_t r = 0; r < rows; r++) {
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < c; j++)
                m = fmax(m, (double)(scale * xp[r * c + j]));
            for (int64_t j = 0; j < c; j++)
                s += exp((double)(scale * xp[r * c + j]) - m);
            for (int64_t j = 0; j < c; j++)
                want[r * c + j] = (float)(exp((double)(scale * xp[r * c + j]) - m) / s);
        }
        CHECK_OK(eng_op_softmax(ctx, NULL, &y, &x, scale, &err), &err);
        CHECK(eng_test_allclose("softmax", yp, want, rows * c, 1e-6, 1e-5));
        CHECK(eng_test_guard_ok(&y));
        for (int64_t r = 0; r < rows; r++) { /* each row sums to 1; masked entries are 0 */
            double s = 0;
            for (int64_t j = 0; j < c; j++)
                s += yp[r * c + j];
            CHECK(fabs(s - 1.0) < 1e-5);
            if (si == 1 && r + 1 < c) CHECK(yp[r * c + c - 1] == 0.0f);
        }
        /* in place */
        CHECK_OK(eng_op_softmax(ctx, NULL, &x, &x, scale, &err), &err);
        CHECK(memcmp(xp, yp, (size_t)(rows * c) * sizeof(float)) == 0);
        free(xp);
        free(yp);
        free(want);
    }
    { /* malformed: shapes, dtype; the twin's NULL and negative checks */
        eng_tensor x, y;
        const int64_t sx[2] = {2, 3}, sy[2] = {3, 2};
        float xv[6] = {0}, yv[6];
        CHECK_OK(eng_tensor_init(&x, xv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sx, &err), &err);
        CHECK_OK(eng_tensor_init(&y, yv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sy, &err), &err);
        CHECK(eng_op_softmax(ctx, NULL, &y, &x, 1.0f, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_op_softmax: y is f32[3,2] cpu but x is f32[2,3] cpu");
        eng_tensor xh = x, yh = x;
        xh.dtype = yh.dtype = ENG_DTYPE_F16;
        yh.data = yv;
        CHECK(eng_op_softmax(ctx, NULL, &yh, &xh, 1.0f, &err) == ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "not available for f16[2,3] cpu");
        const eng_softmax_args a = {ENG_DTYPE_F32, yv, NULL, 2, 3, 1.0f};
        CHECK(eng_cpu_softmax(NULL, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_cpu_softmax: x is NULL");
        const eng_layernorm_args l = {ENG_DTYPE_F32, yv, xv, NULL, NULL, -1, 3, 1e-5f};
        CHECK(eng_cpu_layernorm(NULL, &l, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "rows = -1 < 0");
    }
    eng_ctx_destroy(ctx);
    return 0;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"groupnorm.g32", test_groupnorm_g32},
        {"groupnorm.g1_odd", test_groupnorm_g1_odd},
        {"groupnorm.errors", test_groupnorm_errors},
        {"layernorm.vs_ref", test_layernorm},
        {"softmax.vs_ref", test_softmax},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
