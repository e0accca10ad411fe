/* test_nn_elementwise.c: the elementwise ops on the CPU (eng_op_unary, _binary, _geglu,
 * _contiguous, _concat, _upsample_nearest2x, _timestep_embedding and their twins eng_cpu_*)
 * against naive double references, on several shapes including 1 and odd sizes, with canary
 * guards after every output, and the malformed calls (each must return a clear error). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_act_math.h"
#include "eng_test.h"
#include "eng_test_compare.h"
#include "eng_test_ctx.h"

/* The element of t at y's multi-index idx (4 slots, right-aligned), numpy broadcasting: t's
 * dimensions of size 1 read index 0. */
static float at_bcast(const eng_tensor *t, const int64_t idx[4]) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        const int64_t i = idx[4 - t->ndim + d];
        off += (t->shape[d] == 1 ? 0 : i) * t->stride[d];
    }
    return ((const float *)t->data)[off];
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

/* ---- unary ----------------------------------------------------------------------------------- */

static int test_unary_acts(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    const int64_t sizes[3] = {1, 1001, 70001}; /* 70001: several pool pieces */
    CHECK(ctx != NULL);
    CHECK(strcmp(eng_act_name(ENG_ACT_QUICK_GELU), "quick_gelu") == 0);
    CHECK(strcmp(eng_act_name(ENG_ACT_COUNT), "?") == 0);
    for (int si = 0; si < 3; si++) {
        for (int act = 0; act < ENG_ACT_COUNT; act++) {
            eng_tensor x, y;
            const int64_t shape[2] = {1, sizes[si]};
            float *xp = eng_test_tensor_f32(&x, 2, shape, 1, -6.0f, 6.0f);
            float *yp = eng_test_tensor_f32(&y, 2, shape, 0, 0.0f, 0.0f);
            float *want = malloc((size_t)sizes[si] * sizeof(float));
            CHECK(xp != NULL && yp != NULL && want != NULL);
            const float alpha = 1.25f, beta = -0.5f;
            for (int64_t i = 0; i < sizes[si]; i++) {
                const float pre = alpha * xp[i] + beta; /* the f32 pre-activation, as the op */
                want[i] = (float)act_ref((eng_act)act, pre);
            }
            CHECK_OK(eng_op_unary(ctx, NULL, &y, &x, (eng_act)act, alpha, beta, &err), &err);
            char what[64];
            snprintf(what, sizeof what, "unary %s n=%lld", eng_act_name((eng_act)act),
                     (long long)sizes[si]);
            CHECK(eng_test_allclose(what, yp, want, sizes[si], 1e-5, 1e-5));
            CHECK(eng_test_guard_ok(&y));
            /* in place: y is x */
            CHECK_OK(eng_op_unary(ctx, NULL, &x, &x, (eng_act)act, alpha, beta, &err), &err);
            CHECK(memcmp(xp, yp, (size_t)sizes[si] * sizeof(float)) == 0);
            free(xp);
            free(yp);
            free(want);
        }
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_unary_values(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    eng_tensor x, y;
    const int64_t shape[1] = {6};
    float xv[6] = {0.0f, 1.0f, -1.0f, 3.0f, -100.0f, 100.0f};
    float yv[6];
    CHECK(ctx != NULL);
    CHECK_OK(eng_tensor_init(&x, xv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, shape, &err), &err);
    CHECK_OK(eng_tensor_init(&y, yv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, shape, &err), &err);
    /* Known values (torch): silu(1) = 0.7310586, gelu(1) = 0.8413447, gelu_tanh(1) = 0.8411920,
     * quick_gelu(1) = 0.8457958; saturation gives x or -0, never NaN. */
    CHECK_OK(eng_op_unary(ctx, NULL, &y, &x, ENG_ACT_SILU, 1.0f, 0.0f, &err), &err);
    CHECK(fabs(yv[1] - 0.7310586) < 1e-6 && fabs(yv[2] + 0.2689414) < 1e-6);
    CHECK(yv[0] == 0.0f && yv[4] == 0.0f && yv[5] == 100.0f);
    CHECK_OK(eng_op_unary(ctx, NULL, &y, &x, ENG_ACT_GELU, 1.0f, 0.0f, &err), &err);
    CHECK(fabs(yv[1] - 0.8413447) < 1e-6 && fabs(yv[3] - 2.9959502) < 1e-6);
    CHECK(yv[4] == 0.0f && yv[5] == 100.0f);
    CHECK_OK(eng_op_unary(ctx, NULL, &y, &x, ENG_ACT_GELU_TANH, 1.0f, 0.0f, &err), &err);
    CHECK(fabs(yv[1] - 0.8411920) < 1e-6 && yv[5] == 100.0f && yv[4] == 0.0f);
    CHECK_OK(eng_op_unary(ctx, NULL, &y, &x, ENG_ACT_QUICK_GELU, 1.0f, 0.0f, &err), &err);
    CHECK(fabs(yv[1] - 0.8457958) < 1e-6 && yv[5] == 100.0f && yv[4] == 0.0f);
    /* scale: act NONE is alpha x + beta, one f32 rounding */
    CHECK_OK(eng_op_unary(ctx, NULL, &y, &x, ENG_ACT_NONE, 0.18215f, 2.0f, &err), &err);
    for (int i = 0; i < 6; i++)
        CHECK(yv[i] == 0.18215f * xv[i] + 2.0f);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- binary ---------------------------------------------------------------------------------- */

/* y = a op b against the broadcast reference; a, b may be views. */
static int check_binary(
    eng_ctx *ctx, const eng_tensor *a, const eng_tensor *b, int yndim, const int64_t *yshape) {
    eng_err err = {0};
    eng_tensor y;
    float *yp = eng_test_tensor_f32(&y, yndim, yshape, 0, 0.0f, 0.0f);
    CHECK(yp != NULL);
    int64_t s4[4];
    for (int d = 0; d < 4; d++)
        s4[d] = d < 4 - yndim ? 1 : yshape[d - (4 - yndim)];
    for (int op = 0; op < ENG_BINOP_COUNT; op++) {
        CHECK_OK(eng_op_binary(ctx, NULL, &y, a, b, (eng_binop)op, &err), &err);
        int64_t i = 0, idx[4];
        for (idx[0] = 0; idx[0] < s4[0]; idx[0]++)
            for (idx[1] = 0; idx[1] < s4[1]; idx[1]++)
                for (idx[2] = 0; idx[2] < s4[2]; idx[2]++)
                    for (idx[3] = 0; idx[3] < s4[3]; idx[3]++, i++) {
                        const float u = at_bcast(a, idx), v = at_bcast(b, idx);
                        const float want = op == ENG_BINOP_ADD   ? u + v
                                           : op == ENG_BINOP_SUB ? u - v
                                                                 : u * v;
                        if (yp[i] != want) {
                            fprintf(stderr, "binary %s [%lld,%lld,%lld,%lld]: %g, want %g\n",
                                    eng_binop_name((eng_binop)op), (long long)idx[0],
                                    (long long)idx[1], (long long)idx[2], (long long)idx[3],
                                    (double)yp[i], (double)want);
                            return 1;
                        }
                    }
        CHECK(eng_test_guard_ok(&y));
    }
    free(yp);
    return 0;
}

static int test_binary_broadcast(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_tensor a, b, v;
    eng_err err = {0};
    CHECK(ctx != NULL);
    CHECK(strcmp(eng_binop_name(ENG_BINOP_MUL), "mul") == 0);
    { /* bias add: (N, H, W, C) + (C), odd sizes */
        const int64_t sa[4] = {2, 5, 7, 33}, sb[1] = {33};
        float *pa = eng_test_tensor_f32(&a, 4, sa, 1, -2.0f, 2.0f),
              *pb = eng_test_tensor_f32(&b, 1, sb, 2, -2.0f, 2.0f);
        CHECK(pa != NULL && pb != NULL);
        if (check_binary(ctx, &a, &b, 4, sa) != 0) return 1;
        if (check_binary(ctx, &b, &a, 4, sa) != 0) return 1; /* broadcast on the left */
        free(pa);
        free(pb);
    }
    { /* (N, H, W, C) * (N, 1, 1, C): the time-embedding add of a ResNet block */
        const int64_t sa[4] = {3, 4, 9, 17}, sb[4] = {3, 1, 1, 17};
        float *pa = eng_test_tensor_f32(&a, 4, sa, 3, -2.0f, 2.0f),
              *pb = eng_test_tensor_f32(&b, 4, sb, 4, -2.0f, 2.0f);
        CHECK(pa != NULL && pb != NULL);
        if (check_binary(ctx, &a, &b, 4, sa) != 0) return 1;
        free(pa);
        free(pb);
    }
    { /* a scalar (1 element, and 0-D) times a tensor */
        const int64_t sa[2] = {3, 1001}, sb[1] = {1};
        float *pa = eng_test_tensor_f32(&a, 2, sa, 5, -2.0f, 2.0f),
              *pb = eng_test_tensor_f32(&b, 1, sb, 6, -2.0f, 2.0f);
        CHECK(pa != NULL && pb != NULL);
        if (check_binary(ctx, &a, &b, 2, sa) != 0) return 1;
        CHECK_OK(eng_tensor_init(&b, pb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 0, NULL, &err), &err);
        if (check_binary(ctx, &a, &b, 2, sa) != 0) return 1;
        free(pa);
        free(pb);
    }
    { /* both sides broadcast: (4, 1, 5) + (3, 1) -> (4, 3, 5); and size-1 shapes */
        const int64_t sa[3] = {4, 1, 5}, sb[2] = {3, 1}, sy[3] = {4, 3, 5};
        float *pa = eng_test_tensor_f32(&a, 3, sa, 7, -2.0f, 2.0f),
              *pb = eng_test_tensor_f32(&b, 2, sb, 8, -2.0f, 2.0f);
        CHECK(pa != NULL && pb != NULL);
        if (check_binary(ctx, &a, &b, 3, sy) != 0) return 1;
        free(pa);
        free(pb);
        const int64_t s1[4] = {1, 1, 1, 1};
        pa = eng_test_tensor_f32(&a, 4, s1, 9, -2.0f, 2.0f);
        pb = eng_test_tensor_f32(&b, 4, s1, 10, -2.0f, 2.0f);
        CHECK(pa != NULL && pb != NULL);
        if (check_binary(ctx, &a, &b, 4, s1) != 0) return 1;
        free(pa);
        free(pb);
    }
    { /* views: a permuted (NCHW view of NHWC memory) and a sliced b */
        const int64_t sa[4] = {2, 6, 5, 3}, sb[2] = {6, 9};
        const int perm[4] = {0, 3, 1, 2}; /* (2, 3, 6, 5) */
        float *pa = eng_test_tensor_f32(&a, 4, sa, 11, -2.0f, 2.0f),
              *pb = eng_test_tensor_f32(&b, 2, sb, 12, -2.0f, 2.0f);
        CHECK(pa != NULL && pb != NULL);
        CHECK_OK(eng_tensor_view_permute(&v, &a, perm, &err), &err);
        eng_tensor bs;
        CHECK_OK(eng_tensor_view_slice(&bs, &b, 1, 2, 5, &err), &err); /* (6, 5), row stride 9 */
        const int64_t sy[4] = {2, 3, 6, 5};
        if (check_binary(ctx, &v, &bs, 4, sy) != 0) return 1;
        free(pa);
        free(pb);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_binary_errors(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    eng_tensor a, b, y, yh, bh, yv;
    const int64_t s34[2] = {3, 4}, s5[1] = {5}, s4[1] = {4}, s44[2] = {4, 4};
    CHECK(ctx != NULL);
    float *pa = eng_test_tensor_f32(&a, 2, s34, 1, -1.0f, 1.0f),
          *pb = eng_test_tensor_f32(&b, 1, s5, 2, -1.0f, 1.0f);
    float *py = eng_test_tensor_f32(&y, 2, s34, 0, 0.0f, 0.0f);
    CHECK(pa != NULL && pb != NULL && py != NULL);
    /* shapes that do not broadcast */
    CHECK(eng_op_binary(ctx, NULL, &y, &a, &b, ENG_BINOP_ADD, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eng_op_binary: a f32[3,4] cpu and b f32[5] cpu do not broadcast");
    /* y of the wrong shape: (3, 4) + (4) is (3, 4), not (4, 4) */
    CHECK_OK(eng_tensor_init(&b, pb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, s4, &err), &err);
    CHECK_OK(eng_tensor_init(&yv, py, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s44, &err), &err);
    CHECK(eng_op_binary(ctx, NULL, &yv, &a, &b, ENG_BINOP_MUL, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "y is f32[4,4] cpu but a f32[3,4] cpu and b f32[4] cpu broadcast");
    /* dtype mismatch, named */
    bh = b;
    bh.dtype = ENG_DTYPE_F16;
    CHECK(eng_op_binary(ctx, NULL, &y, &a, &bh, ENG_BINOP_ADD, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "b is f16[4] cpu");
    /* f16 on the CPU: well-formed but not available */
    yh = y;
    yh.dtype = ENG_DTYPE_F16;
    eng_tensor ah = a;
    ah.dtype = ENG_DTYPE_F16;
    CHECK(eng_op_binary(ctx, NULL, &yh, &ah, &bh, ENG_BINOP_ADD, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "f16[3,4] cpu");
    /* y must be contiguous */
    const int perm[2] = {1, 0};
    eng_tensor yt;
    CHECK_OK(eng_tensor_view_permute(&yt, &yv, perm, &err), &err);
    CHECK_OK(eng_tensor_view_slice(&yt, &yt, 1, 0, 3, &err), &err); /* (4, 3) with strides (1, 4) */
    CHECK(eng_op_binary(ctx, NULL, &yt, &b, &b, ENG_BINOP_ADD, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "y (f32[4,3] cpu) must be contiguous");
    /* an operator out of range; a device that is not attached */
    CHECK(eng_op_binary(ctx, NULL, &y, &a, &b, ENG_BINOP_COUNT, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "operator 3 out of range");
    {
        eng_tensor ya = y, aa = a, ba = b;
        ya.device = aa.device = ba.device = ENG_DEVICE_CUDA;
        CHECK(eng_op_binary(ctx, NULL, &ya, &aa, &ba, ENG_BINOP_ADD, &err) == ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "no cuda device is attached");
        CHECK(eng_op_binary(ctx, NULL, &ya, &a, &ba, ENG_BINOP_ADD, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "a is f32[3,4] cpu");
    }
    /* the twin itself: NULL buffers, negative sizes, other dtypes */
    {
        eng_binary_args args;
        memset(&args, 0, sizeof args);
        args.dtype = ENG_DTYPE_F32;
        args.shape[0] = args.shape[1] = args.shape[2] = 1;
        args.shape[3] = 4;
        args.y = py;
        args.a = pa;
        CHECK(eng_cpu_binary(NULL, &args, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_cpu_binary: b is NULL with 4 elements");
        args.shape[3] = -1;
        CHECK(eng_cpu_binary(NULL, &args, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "< 0");
        args.shape[3] = 0; /* nothing to do: NULL is fine */
        CHECK_OK(eng_cpu_binary(NULL, &args, &err), &err);
        args.dtype = ENG_DTYPE_BF16;
        CHECK(eng_cpu_binary(NULL, &args, &err) == ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "dtype bf16 (the CPU twins take f32 only)");
    }
    free(pa);
    free(pb);
    free(py);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- GEGLU ----------------------------------------------------------------------------------- */

static int test_geglu(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    static const int64_t shapes[3][3] = {{1, 1, 1}, {3, 7, 33}, {2, 257, 160}};
    CHECK(ctx != NULL);
    for (int si = 0; si < 3; si++) {
        eng_tensor x, y;
        const int64_t sx[3] = {shapes[si][0], shapes[si][1], 2 * shapes[si][2]};
        float *xp = eng_test_tensor_f32(&x, 3, sx, 1, -4.0f, 4.0f),
              *yp = eng_test_tensor_f32(&y, 3, shapes[si], 0, 0.0f, 0.0f);
        CHECK(xp != NULL && yp != NULL);
        const int64_t rows = sx[0] * sx[1], d = shapes[si][2];
        float *want = malloc((size_t)(rows * d) * sizeof(float));
        CHECK(want != NULL);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t j = 0; j < d; j++) {
                want[r * d + j] =
                    (float)(xp[r * 2 * d + j] * act_ref(ENG_ACT_GELU, xp[r * 2 * d + d + j]));
            }
        }
        CHECK_OK(eng_op_geglu(ctx, NULL, &y, &x, &err), &err);
        CHECK(eng_test_allclose("geglu", yp, want, rows * d, 1e-5, 1e-5));
        CHECK(eng_test_guard_ok(&y));
        /* malformed: y's last dimension must be half of x's */
        if (si == 1) {
            eng_tensor yb = y;
            yb.shape[2] = 32;
            CHECK(eng_op_geglu(ctx, NULL, &yb, &x, &err) == ENG_E_INVALID_ARG);
            CHECK_CONTAINS(err.msg, "x is f32[3,7,66] cpu, y is f32[3,7,32] cpu");
            yb = y;
            yb.shape[0] = 2;
            CHECK(eng_op_geglu(ctx, NULL, &yb, &x, &err) == ENG_E_INVALID_ARG);
        }
        free(xp);
        free(yp);
        free(want);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- copies: permute, slices, concat --------------------------------------------------------- */

static int test_permute(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    eng_tensor x, v, y;
    const int64_t sx[4] = {2, 3, 4, 5};
    static const int perms[4][4] = {{0, 3, 1, 2}, {0, 2, 3, 1}, {3, 2, 1, 0}, {1, 0, 2, 3}};
    CHECK(ctx != NULL);
    float *xp = eng_test_tensor_f32(&x, 4, sx, 0, 0.0f, 0.0f);
    CHECK(xp != NULL);
    for (int i = 0; i < 120; i++)
        xp[i] = (float)i; /* x[a, b, c, d] = ((a 3 + b) 4 + c) 5 + d */
    for (int pi = 0; pi < 4; pi++) {
        const int *p = perms[pi];
        CHECK_OK(eng_tensor_view_permute(&v, &x, p, &err), &err);
        CHECK(!eng_tensor_is_contiguous(&v));
        const int64_t sy[4] = {sx[p[0]], sx[p[1]], sx[p[2]], sx[p[3]]};
        float *yp = eng_test_tensor_f32(&y, 4, sy, 0, 0.0f, 0.0f);
        CHECK(yp != NULL);
        CHECK_OK(eng_op_contiguous(ctx, NULL, &y, &v, &err), &err);
        int64_t o = 0, i[4];
        for (i[0] = 0; i[0] < sy[0]; i[0]++)
            for (i[1] = 0; i[1] < sy[1]; i[1]++)
                for (i[2] = 0; i[2] < sy[2]; i[2]++)
                    for (i[3] = 0; i[3] < sy[3]; i[3]++, o++) {
                        int64_t xi[4];
                        for (int d = 0; d < 4; d++)
                            xi[p[d]] = i[d];
                        const float want = (float)(((xi[0] * 3 + xi[1]) * 4 + xi[2]) * 5 + xi[3]);
                        CHECK(yp[o] == want);
                    }
        CHECK(eng_test_guard_ok(&y));
        free(yp);
    }
    /* a slice of a 2-D transpose (odd sizes): rows [1, 4) of x^T with x (7, 13) */
    {
        eng_tensor m, mt, ms;
        const int64_t sm[2] = {7, 13}, sy[2] = {3, 7};
        const int p2[2] = {1, 0};
        float *mp = eng_test_tensor_f32(&m, 2, sm, 3, -1.0f, 1.0f),
              *yp = eng_test_tensor_f32(&y, 2, sy, 0, 0.0f, 0.0f);
        CHECK(mp != NULL && yp != NULL);
        CHECK_OK(eng_tensor_view_permute(&mt, &m, p2, &err), &err);
        CHECK_OK(eng_tensor_view_slice(&ms, &mt, 0, 1, 3, &err), &err);
        CHECK_OK(eng_op_contiguous(ctx, NULL, &y, &ms, &err), &err);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 7; c++)
                CHECK(yp[r * 7 + c] == mp[c * 13 + r + 1]);
        CHECK(eng_test_guard_ok(&y));
        /* malformed: y must be contiguous and of x's shape */
        CHECK(eng_op_contiguous(ctx, NULL, &mt, &m, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "y is f32[13,7] cpu but x is f32[7,13] cpu");
        CHECK(eng_op_contiguous(ctx, NULL, &ms, &ms, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "must be contiguous");
        free(mp);
        free(yp);
    }
    free(xp);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_concat(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    const int64_t base[4] = {2, 3, 5, 7};
    CHECK(ctx != NULL);
    for (int dim = 0; dim < 4; dim++) {
        for (int view = 0; view < 2; view++) {
            eng_tensor a, b, y, bv;
            int64_t sa[4], sb[4], sy[4];
            memcpy(sa, base, sizeof sa);
            memcpy(sb, base, sizeof sb);
            sb[dim] = dim + 2;
            memcpy(sy, base, sizeof sy);
            sy[dim] = sa[dim] + sb[dim];
            float *pa = eng_test_tensor_f32(&a, 4, sa, 1, -1.0f, 1.0f), *pb = NULL,
                  *py = eng_test_tensor_f32(&y, 4, sy, 0, 0, 0);
            const eng_tensor *bp = &b;
            if (view) {
                /* b is a view: the transpose of a (.., 7, 5)-shaped tensor's last two dims */
                int64_t st[4];
                memcpy(st, sb, sizeof st);
                st[2] = sb[3];
                st[3] = sb[2];
                const int perm[4] = {0, 1, 3, 2};
                pb = eng_test_tensor_f32(&bv, 4, st, 2, -1.0f, 1.0f);
                CHECK(pb != NULL);
                CHECK_OK(eng_tensor_view_permute(&b, &bv, perm, &err), &err);
            } else {
                pb = eng_test_tensor_f32(&b, 4, sb, 2, -1.0f, 1.0f);
            }
            CHECK(pa != NULL && pb != NULL && py != NULL);
            CHECK_OK(eng_op_concat(ctx, NULL, &y, &a, bp, dim, &err), &err);
            int64_t o = 0, i[4];
            for (i[0] = 0; i[0] < sy[0]; i[0]++)
                for (i[1] = 0; i[1] < sy[1]; i[1]++)
                    for (i[2] = 0; i[2] < sy[2]; i[2]++)
                        for (i[3] = 0; i[3] < sy[3]; i[3]++, o++) {
                            const int in_a = i[dim] < sa[dim];
                            int64_t j[4];
                            memcpy(j, i, sizeof j);
                            if (!in_a) j[dim] -= sa[dim];
                            const eng_tensor *t = in_a ? &a : &b;
                            const float want =
                                ((const float *)
                                     t->data)[eng_tensor_offset(t, j[0], j[1], j[2], j[3]) / 4];
                            CHECK(py[o] == want);
                        }
            CHECK(eng_test_guard_ok(&y));
            if (dim == 1 && view == 0) {
                /* malformed: another dimension differs; dim out of range; y not the sum */
                eng_tensor bb = b;
                bb.shape[2] = 4;
                CHECK(eng_op_concat(ctx, NULL, &y, &a, &bb, dim, &err) == ENG_E_INVALID_ARG);
                CHECK_CONTAINS(err.msg, "y f32[2,6,5,7] cpu is not a f32[2,3,5,7] cpu and b "
                                        "f32[2,3,4,7] cpu joined along dimension 1");
                CHECK(eng_op_concat(ctx, NULL, &y, &a, &b, 4, &err) == ENG_E_INVALID_ARG);
                CHECK_CONTAINS(err.msg, "dimension 4 of a 4-D tensor y");
                CHECK(eng_op_concat(ctx, NULL, &y, &a, &b, 2, &err) == ENG_E_INVALID_ARG);
            }
            free(pa);
            free(pb);
            free(py);
        }
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- upsample -------------------------------------------------------------------------------- */

static int test_upsample(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    static const int64_t shapes[3][4] = {{1, 1, 1, 1}, {2, 3, 5, 7}, {1, 16, 16, 320}};
    CHECK(ctx != NULL);
    for (int si = 0; si < 3; si++) {
        eng_tensor x, y;
        const int64_t *s = shapes[si];
        const int64_t sy[4] = {s[0], 2 * s[1], 2 * s[2], s[3]};
        float *xp = eng_test_tensor_f32(&x, 4, s, 1, -1.0f, 1.0f),
              *yp = eng_test_tensor_f32(&y, 4, sy, 0, 0.0f, 0.0f);
        CHECK(xp != NULL && yp != NULL);
        CHECK_OK(eng_op_upsample_nearest2x(ctx, NULL, &y, &x, &err), &err);
        int64_t o = 0;
        for (int64_t i = 0; i < sy[0]; i++)
            for (int64_t r = 0; r < sy[1]; r++)
                for (int64_t c = 0; c < sy[2]; c++)
                    for (int64_t ch = 0; ch < sy[3]; ch++, o++)
                        CHECK(yp[o] == xp[((i * s[1] + r / 2) * s[2] + c / 2) * s[3] + ch]);
        CHECK(eng_test_guard_ok(&y));
        if (si == 1) {
            eng_tensor yb = y;
            yb.shape[2] = 9;
            CHECK(eng_op_upsample_nearest2x(ctx, NULL, &yb, &x, &err) == ENG_E_INVALID_ARG);
            CHECK_CONTAINS(err.msg, "x is f32[2,3,5,7] cpu, y is f32[2,6,9,7] cpu");
        }
        free(xp);
        free(yp);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- timestep embedding ---------------------------------------------------------------------- */

static int test_temb(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    float tv[4] = {0.0f, 1.5f, 261.0f, 999.0f};
    static const int64_t dims[3] = {320, 7, 2};
    CHECK(ctx != NULL);
    for (int di = 0; di < 3; di++) {
        for (int flip = 0; flip < 2; flip++) {
            const float shift = dims[di] == 2 ? 0.0f : (float)flip; /* SD: flip 1, shift 0 or 1 */
            eng_tensor t, y;
            const int64_t st[1] = {4}, sy[2] = {4, dims[di]};
            const int64_t dim = dims[di], half = dim / 2;
            CHECK_OK(eng_tensor_init(&t, tv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, st, &err), &err);
            float *yp = eng_test_tensor_f32(&y, 2, sy, 0, 0.0f, 0.0f);
            CHECK(yp != NULL);
            CHECK_OK(eng_op_timestep_embedding(ctx, NULL, &y, &t, flip, shift, 10000.0f, &err),
                     &err);
            for (int i = 0; i < 4; i++) {
                for (int64_t j = 0; j < dim; j++) {
                    const float got = yp[i * dim + j];
                    if (j == 2 * half) { /* odd dim: the zero column, last */
                        CHECK(got == 0.0f);
                        continue;
                    }
                    const int64_t k = j < half ? j : j - half;
                    const int is_sin = (j < half) != (flip != 0);
                    /* the math, all in double: differs from the f32 argument t * freq by up to
                     * an ulp of ~1000 rad (6e-5) */
                    const double freq = exp(-log(10000.0) * (double)k / ((double)half - shift));
                    const double exact = is_sin ? sin(tv[i] * freq) : cos(tv[i] * freq);
                    CHECK(fabs(got - exact) < 2e-4);
                    /* the spec's f32 steps (torch computes the argument in f32), f64 sin/cos */
                    const float e32 = ((float)(-log(10000.0)) * (float)k) / ((float)half - shift);
                    const float arg = tv[i] * (float)exp((double)e32);
                    const double spec = is_sin ? sin((double)arg) : cos((double)arg);
                    if (fabs(got - spec) > 1e-6) {
                        fprintf(stderr, "temb dim %lld flip %d t %g col %lld: %.9g want %.9g\n",
                                (long long)dim, flip, (double)tv[i], (long long)j, (double)got,
                                spec);
                        return 1;
                    }
                }
            }
            /* t = 0: sin columns are 0, cos columns 1 */
            CHECK(yp[0] == (flip ? 1.0f : 0.0f) && yp[half] == (flip ? 0.0f : 1.0f));
            CHECK(eng_test_guard_ok(&y));
            free(yp);
        }
    }
    { /* malformed: t not f32 (N), y not (N, dim), dim too small for the shift */
        eng_tensor t, y;
        float yv[8];
        const int64_t st[1] = {4}, sy[2] = {4, 2}, sbad[2] = {3, 2}, s1[2] = {4, 1};
        CHECK_OK(eng_tensor_init(&t, tv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, st, &err), &err);
        CHECK_OK(eng_tensor_init(&y, yv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sbad, &err), &err);
        CHECK(eng_op_timestep_embedding(ctx, NULL, &y, &t, 1, 0.0f, 10000.0f, &err) ==
              ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "t is f32[4] cpu, y is f32[3,2] cpu");
        CHECK_OK(eng_tensor_init(&y, yv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sy, &err), &err);
        eng_tensor th = t;
        th.dtype = ENG_DTYPE_F16;
        CHECK(eng_op_timestep_embedding(ctx, NULL, &y, &th, 1, 0.0f, 10000.0f, &err) ==
              ENG_E_INVALID_ARG);
        CHECK(eng_op_timestep_embedding(ctx, NULL, &y, &t, 1, 1.0f, 10000.0f, &err) ==
              ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "dim / 2 > freq_shift");
        CHECK_OK(eng_tensor_init(&y, yv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s1, &err), &err);
        CHECK(eng_op_timestep_embedding(ctx, NULL, &y, &t, 1, 0.0f, 10000.0f, &err) ==
              ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "dim = 1");
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- malformed calls of the unary family ----------------------------------------------------- */

static int test_unary_errors(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    eng_tensor x, y;
    const int64_t s[2] = {3, 5}, s2[2] = {5, 3};
    float xv[15] = {0}, yv[15];
    CHECK(ctx != NULL);
    CHECK_OK(eng_tensor_init(&x, xv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s, &err), &err);
    CHECK_OK(eng_tensor_init(&y, yv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s2, &err), &err);
    CHECK(eng_op_unary(ctx, NULL, &y, &x, ENG_ACT_SILU, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eng_op_unary: y is f32[5,3] cpu but x is f32[3,5] cpu (same shape)");
    CHECK_OK(eng_tensor_init(&y, yv, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, s, &err), &err);
    eng_tensor xh = x;
    xh.dtype = ENG_DTYPE_BF16;
    CHECK(eng_op_unary(ctx, NULL, &y, &xh, ENG_ACT_SILU, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "x is bf16[3,5] cpu");
    CHECK(eng_op_unary(ctx, NULL, &y, &x, (eng_act)42, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "activation 42 out of range");
    {
        const eng_unary_args a = {ENG_DTYPE_F32, NULL, xv, 15, ENG_ACT_NONE, 1.0f, 0.0f};
        CHECK(eng_cpu_unary(NULL, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_cpu_unary: y is NULL with 15 elements");
        const eng_unary_args b = {ENG_DTYPE_F32, yv, xv, -2, ENG_ACT_NONE, 1.0f, 0.0f};
        CHECK(eng_cpu_unary(NULL, &b, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "n = -2 < 0");
    }
    eng_ctx_destroy(ctx);
    return 0;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"unary.acts", test_unary_acts},       {"unary.values", test_unary_values},
        {"unary.errors", test_unary_errors},   {"binary.broadcast", test_binary_broadcast},
        {"binary.errors", test_binary_errors}, {"geglu.vs_ref", test_geglu},
        {"permute.contiguous", test_permute},  {"concat.each_dim", test_concat},
        {"upsample.nearest2x", test_upsample}, {"temb.vs_formula", test_temb},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
