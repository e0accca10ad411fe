/* test_eng_ops.c: op dispatch and the CPU twins (add, GEMM, convert, fills) against naive loops. */
#include "eng.h"
#include "eng_philox_math.h"
#include "eng_test.h"
#include "eng_test_ctx.h"

static void fill_random(float *x, int64_t n, uint64_t offset) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = 2.0f * eng_philox_uniform_at(eng_test_seed(), offset, (uint64_t)i) - 1.0f;
    }
}

static int test_add(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_alloc *a;
    eng_err err = {0};
    eng_tensor x, y, z, xh, yh, zh;
    const int64_t shape[3] = {3, 1001, 67}; /* odd sizes, > one pool piece */
    CHECK(ctx != NULL);
    a = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    CHECK_OK(eng_tensor_alloc(&x, a, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 3, shape, &err), &err);
    CHECK_OK(eng_tensor_alloc(&y, a, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 3, shape, &err), &err);
    CHECK_OK(eng_tensor_alloc(&z, a, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 3, shape, &err), &err);
    CHECK_OK(eng_tensor_alloc(&xh, a, ENG_LIFE_STATE, "t", ENG_DTYPE_F16, 3, shape, &err), &err);
    CHECK_OK(eng_tensor_alloc(&yh, a, ENG_LIFE_STATE, "t", ENG_DTYPE_F16, 3, shape, &err), &err);
    CHECK_OK(eng_tensor_alloc(&zh, a, ENG_LIFE_STATE, "t", ENG_DTYPE_F16, 3, shape, &err), &err);
    const int64_t n = eng_tensor_numel(&x);
    fill_random(x.data, n, 1);
    fill_random(y.data, n, 2);
    CHECK_OK(eng_op_add(ctx, NULL, &z, &x, &y, &err), &err);
    for (int64_t i = 0; i < n; i++) {
        CHECK(((float *)z.data)[i] == ((float *)x.data)[i] + ((float *)y.data)[i]);
    }
    CHECK_OK(eng_op_convert(ctx, NULL, &xh, &x, &err), &err);
    CHECK_OK(eng_op_convert(ctx, NULL, &yh, &y, &err), &err);
    CHECK_OK(eng_op_add(ctx, NULL, &zh, &xh, &yh, &err), &err);
    for (int64_t i = 0; i < n; i++) {
        const float want =
            eng_f16_to_f32(((eng_f16 *)xh.data)[i]) + eng_f16_to_f32(((eng_f16 *)yh.data)[i]);
        CHECK(((eng_f16 *)zh.data)[i].bits == eng_f32_to_f16(want).bits);
    }
    /* mismatched dtypes are refused with both tensors named */
    CHECK(eng_op_add(ctx, NULL, &z, &x, &yh, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "f16[3,1001,67] cpu");
    eng_ctx_destroy(ctx);
    return 0;
}

/* C = alpha op(A) op(B) + beta C in double, the reference. */
static void gemm_ref(int ta,
                     int tb,
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
                     int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double acc = 0.0;
            for (int64_t p = 0; p < k; p++) {
                const double av = ta ? a[p * lda + i] : a[i * lda + p];
                const double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                acc += av * bv;
            }
            c[i * ldc + j] = (float)(alpha * acc + beta * c[i * ldc + j]);
        }
    }
}

static int test_gemm(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    static const int64_t sizes[][3] = {{1, 1, 1}, {17, 33, 65}, {130, 7, 300}, {64, 64, 64}};
    CHECK(ctx != NULL);
    for (int si = 0; si < 4; si++) {
        for (int t = 0; t < 4; t++) {
            const int ta = t & 1, tb = t >> 1;
            const int64_t m = sizes[si][0], n = sizes[si][1], k = sizes[si][2];
            const int64_t pad = 3; /* rows padded: leading dimension > width */
            const int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
            float *a = malloc(sizeof(float) * (size_t)(ar * (ac + pad)));
            float *b = malloc(sizeof(float) * (size_t)(br * (bc + pad)));
            float *c = malloc(sizeof(float) * (size_t)(m * (n + pad)));
            float *r = malloc(sizeof(float) * (size_t)(m * (n + pad)));
            CHECK(a && b && c && r);
            fill_random(a, ar * (ac + pad), 10);
            fill_random(b, br * (bc + pad), 11);
            fill_random(c, m * (n + pad), 12);
            memcpy(r, c, sizeof(float) * (size_t)(m * (n + pad)));
            eng_tensor ta_t, tb_t, tc_t;
            const int64_t sa[2] = {ar, ac}, sb[2] = {br, bc}, sc[2] = {m, n};
            CHECK_OK(eng_tensor_init(&ta_t, a, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sa, &err), &err);
            CHECK_OK(eng_tensor_init(&tb_t, b, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sb, &err), &err);
            CHECK_OK(eng_tensor_init(&tc_t, c, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sc, &err), &err);
            ta_t.stride[0] = ac + pad;
            tb_t.stride[0] = bc + pad;
            tc_t.stride[0] = n + pad;
            CHECK_OK(eng_op_gemm(ctx, NULL, &tc_t, &ta_t, &tb_t, ta, tb, 0.5f, 0.25f, &err), &err);
            gemm_ref(ta, tb, m, n, k, 0.5f, a, ac + pad, b, bc + pad, 0.25f, r, n + pad);
            /* f32 accumulation over k terms: atol grows with sqrt(k) (conventions 2.7) */
            const double atol = 1e-5 * sqrt((double)k) * 4.0;
            for (int64_t i = 0; i < m; i++) {
                for (int64_t j = 0; j < n + pad; j++) {
                    const double got = c[i * (n + pad) + j], want = r[i * (n + pad) + j];
                    if (fabs(got - want) > atol + 1e-5 * fabs(want)) {
                        fprintf(stderr,
                                "gemm m=%lld n=%lld k=%lld ta=%d tb=%d [%lld,%lld]: %g vs %g\n",
                                (long long)m, (long long)n, (long long)k, ta, tb, (long long)i,
                                (long long)j, got, want);
                        return 1;
                    }
                }
            }
            free(a);
            free(b);
            free(c);
            free(r);
        }
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_gemm_errors(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    float buf[64] = {0};
    eng_tensor a, b, c;
    const int64_t sa[2] = {2, 3}, sb[2] = {4, 5}, sc[2] = {2, 5};
    CHECK(ctx != NULL);
    CHECK_OK(eng_tensor_init(&a, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sa, &err), &err);
    CHECK_OK(eng_tensor_init(&b, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sb, &err), &err);
    CHECK_OK(eng_tensor_init(&c, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, sc, &err), &err);
    CHECK(eng_op_gemm(ctx, NULL, &c, &a, &b, 0, 0, 1.0f, 0.0f, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "op(A) is 2x3, op(B) is 4x5");
    b.dtype = ENG_DTYPE_F16;
    CHECK(eng_op_gemm(ctx, NULL, &c, &a, &b, 0, 0, 1.0f, 0.0f, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "f16[4,5]");
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_fill_dispatch(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    float buf[1000];
    eng_tensor t;
    const int64_t shape[2] = {10, 100};
    CHECK(ctx != NULL);
    CHECK_OK(eng_tensor_init(&t, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, shape, &err), &err);
    CHECK_OK(eng_op_fill_normal(ctx, NULL, &t, 7, 3, &err), &err);
    for (int i = 0; i < 1000; i++)
        CHECK(buf[i] == eng_philox_normal_at(7, 3, (uint64_t)i));
    CHECK_OK(eng_op_fill_uniform(ctx, NULL, &t, 7, 3, &err), &err);
    for (int i = 0; i < 1000; i++)
        CHECK(buf[i] == eng_philox_uniform_at(7, 3, (uint64_t)i));
    t.dtype = ENG_DTYPE_F16;
    CHECK(eng_op_fill_normal(ctx, NULL, &t, 7, 3, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "needs contiguous f32");
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_no_device(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    eng_tensor t;
    const int64_t shape[1] = {16};
    CHECK(ctx != NULL);
    /* A CUDA tensor in a context without a CUDA backend is refused, not dereferenced. */
    CHECK_OK(eng_tensor_init(&t, (void *)16, ENG_DTYPE_F32, ENG_DEVICE_CUDA, 1, shape, &err), &err);
    CHECK(eng_op_fill_normal(ctx, NULL, &t, 1, 0, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "no cuda device is attached");
    eng_ctx_destroy(ctx);
    return 0;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"add", test_add},
        {"gemm", test_gemm},
        {"gemm_errors", test_gemm_errors},
        {"fill_dispatch", test_fill_dispatch},
        {"no_device", test_no_device},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
