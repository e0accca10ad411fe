/* test_cuda_nn_elementwise.c: the CUDA elementwise and normalisation kernels (cuda/elementwise.cu,
 * cuda/norm.cu) against their CPU twins, for f32, f16 and bf16, on odd and SD-sized shapes, with
 * canary guards after every device output and the launchers' error paths.
 *
 * Inputs: Philox uniforms in f32, rounded to the dtype under test; the twin runs in f32 on the
 * rounded values (converted back), so the only differences are the kernel's f32 arithmetic and
 * the final rounding of its output. Tolerances (conventions 2.7): f32 atol 1e-5 rtol 1e-5, f16
 * 1e-3 / 2e-3, bf16 1e-2 / 1.6e-2; copies and upsampling must be bit-exact.
 *
 * Every case exits 77 (SKIP) without a CUDA device. With ENG_TEST_FAKE_CUDA=1 the "device" is
 * host memory and each kernel is replaced by its twin wrapped in the dtype conversions (what a
 * kernel with f32 math computes): the eng.nn.harness.* tests run that way on every machine, so
 * the harness itself (buffers, strides, conversions, guards, comparisons) is tested without a
 * GPU. It says nothing about the kernels. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_cuda.h"
#include "eng_test.h"
#include "eng_test_compare.h"

enum { GUARD = 256 }; /* canary bytes after each output */

/* ---- the device, or its stand-in ----------------------------------------------------------- */

typedef struct dev {
    int fake; /* 1: host memory and wrapped twins (ENG_TEST_FAKE_CUDA=1) */
    eng_backend *b;
    eng_stream s;
    int have_stream;
    eng_alloc *alloc; /* device allocator behind the arena (split GroupNorm) */
    eng_arena *arena;
} dev;

static void dev_close(dev *d) {
#ifdef ENG_HAVE_CUDA
    eng_arena_destroy(d->arena);
    eng_alloc_destroy(d->alloc);
    if (d->have_stream) d->b->stream_destroy(d->b->impl, &d->s);
    eng_cuda_backend_destroy(d->b);
#endif
    memset(d, 0, sizeof *d);
}

/* 0 on success, ENG_TEST_SKIP without a device, 1 on failure. with_arena: the stream gets a
 * scratch arena on the device (ops that need a workspace use it). */
static int dev_open(dev *d, int with_arena) {
    const char *fake = getenv("ENG_TEST_FAKE_CUDA");
    memset(d, 0, sizeof *d);
    if (fake != NULL && strcmp(fake, "1") == 0) {
        d->fake = 1;
        d->s.device = ENG_DEVICE_CPU;
        return 0;
    }
#ifdef ENG_HAVE_CUDA
    eng_err err = {0};
    int count = 0;
    char why[512];
    const int rc = eng_cuda_device_count(&count, &err);
    if (rc != ENG_OK || count == 0) {
        fprintf(stderr, "SKIP: %s\n", rc != ENG_OK ? err.msg : eng_cuda_describe(why, sizeof why));
        return ENG_TEST_SKIP;
    }
    CHECK_OK(eng_cuda_backend_create(&d->b, 0, &err), &err);
    CHECK_OK(d->b->stream_create(d->b->impl, &d->s, 0, &err), &err);
    d->have_stream = 1;
    if (with_arena) {
        eng_alloc_params p;
        eng_alloc_params_init(&p);
        p.device = ENG_DEVICE_CUDA;
        p.source.device_name = "cuda:0";
        p.source.user = d->b->impl;
        p.source.take = d->b->block_take;
        p.source.give = d->b->block_give;
        CHECK_OK(eng_alloc_create(&d->alloc, &p, &err), &err);
        CHECK_OK(eng_arena_create(&d->arena, d->alloc, "test.arena", &err), &err);
        d->s.arena = d->arena;
    }
    return 0;
#else
    (void)with_arena;
    fprintf(stderr, "SKIP: built without CUDA\n");
    return ENG_TEST_SKIP;
#endif
}

static int dev_alloc(dev *d, void **p, size_t bytes) {
    *p = NULL;
    if (d->fake) {
        *p = malloc(bytes);
        CHECK(*p != NULL);
        return 0;
    }
#ifdef ENG_HAVE_CUDA
    eng_err err = {0};
    CHECK_OK(d->b->block_take(d->b->impl, p, bytes, &err), &err);
    CHECK(*p != NULL);
#endif
    return 0;
}

static void dev_free(dev *d, void *p) {
    if (p == NULL) return;
    if (d->fake) {
        free(p);
        return;
    }
#ifdef ENG_HAVE_CUDA
    d->b->block_give(d->b->impl, p);
#endif
}

/* host -> device (to = 1) or device -> host (to = 0); the latter waits for the stream. */
static int dev_copy(dev *d, void *dst, const void *src, size_t bytes, int to_dev) {
    if (bytes == 0) return 0;
    if (d->fake) {
        memcpy(dst, src, bytes);
        return 0;
    }
#ifdef ENG_HAVE_CUDA
    eng_err err = {0};
    CHECK_OK(
        d->b->copy(d->b->impl, &d->s, dst, src, bytes, to_dev ? ENG_COPY_H2D : ENG_COPY_D2H, &err),
        &err);
#else
    (void)to_dev;
#endif
    return 0;
}

/* ---- dtype helpers ------------------------------------------------------------------------- */

static const eng_dtype DTYPES[3] = {ENG_DTYPE_F32, ENG_DTYPE_F16, ENG_DTYPE_BF16};

static double tol_atol(eng_dtype dt) {
    return dt == ENG_DTYPE_F32 ? 1e-5 : dt == ENG_DTYPE_F16 ? 1e-3 : 1e-2;
}
static double tol_rtol(eng_dtype dt) {
    return dt == ENG_DTYPE_F32 ? 1e-5 : dt == ENG_DTYPE_F16 ? 2e-3 : 1.6e-2;
}

/* dst (dtype dt, n elements) = src (f32), rounded. */
static void store_dt(void *dst, const float *src, int64_t n, eng_dtype dt) {
    if (dt == ENG_DTYPE_F16) {
        eng_convert_f32_to_f16(dst, src, n);
    } else if (dt == ENG_DTYPE_BF16) {
        eng_convert_f32_to_bf16(dst, src, n);
    } else {
        memcpy(dst, src, (size_t)n * sizeof(float));
    }
}

static void load_dt(float *dst, const void *src, int64_t n, eng_dtype dt) {
    if (dt == ENG_DTYPE_F16) {
        eng_convert_f16_to_f32(dst, src, n);
    } else if (dt == ENG_DTYPE_BF16) {
        eng_convert_bf16_to_f32(dst, src, n);
    } else {
        memcpy(dst, src, (size_t)n * sizeof(float));
    }
}

/* n f32 values converted from dtype storage (malloc'd; NULL for n == 0 or src == NULL). */
static float *f32_of(const void *src, int64_t n, eng_dtype dt) {
    if (src == NULL || n <= 0) return NULL;
    float *p = malloc((size_t)n * sizeof(float));
    if (p != NULL) load_dt(p, src, n, dt);
    return p;
}

/* x[i] uniform in [lo, hi), then rounded to dt in place (so x holds what the device sees). */
static void random_dt(float *x, int64_t n, uint64_t stream, float lo, float hi, eng_dtype dt) {
    eng_test_fill(x, n, stream, lo, hi);
    if (dt == ENG_DTYPE_F32 || n == 0) return;
    void *tmp = malloc((size_t)n * 2);
    if (tmp == NULL) return;
    store_dt(tmp, x, n, dt);
    load_dt(x, tmp, n, dt);
    free(tmp);
}

/* Elements spanned by a 4-D strided view (strides >= 0): the largest offset + 1. */
static int64_t span4(const int64_t shape[4], const int64_t stride[4]) {
    int64_t last = 0;
    for (int d = 0; d < 4; d++) {
        if (shape[d] == 0) return 0;
        last += (shape[d] - 1) * stride[d];
    }
    return last + 1;
}

/* ---- the fake device's kernels: the twin between the dtype conversions ----------------------- */

/* y (n_y elements, dtype) = twin output yf rounded. */
static int fake_finish(void *y, float *yf, int64_t n_y, eng_dtype dt, int rc) {
    if (rc == ENG_OK && n_y > 0) store_dt(y, yf, n_y, dt);
    free(yf);
    return rc;
}

static int fake_unary(const eng_unary_args *a, eng_err *err) {
    eng_unary_args f = *a;
    float *xf = f32_of(a->x, a->n, a->dtype), *yf = f32_of(a->y, a->n, a->dtype);
    f.dtype = ENG_DTYPE_F32;
    f.x = xf;
    f.y = yf;
    const int rc = eng_cpu_unary(NULL, &f, err);
    free(xf);
    return fake_finish(a->y, yf, a->n, a->dtype, rc);
}

static int fake_binary(const eng_binary_args *a, eng_err *err) {
    eng_binary_args f = *a;
    int64_t ys[4] = {0, 0, 0, 1};
    for (int d = 2; d >= 0; d--)
        ys[d] = ys[d + 1] * a->shape[d + 1];
    const int64_t ny = span4(a->shape, ys);
    float *af = f32_of(a->a, span4(a->shape, a->a_stride), a->dtype);
    float *bf = f32_of(a->b, span4(a->shape, a->b_stride), a->dtype);
    float *yf = f32_of(a->y, ny, a->dtype);
    f.dtype = ENG_DTYPE_F32;
    f.a = af;
    f.b = bf;
    f.y = yf;
    const int rc = eng_cpu_binary(NULL, &f, err);
    free(af);
    free(bf);
    return fake_finish(a->y, yf, ny, a->dtype, rc);
}

static int fake_geglu(const eng_geglu_args *a, eng_err *err) {
    eng_geglu_args f = *a;
    float *xf = f32_of(a->x, a->rows * 2 * a->d, a->dtype);
    float *yf = f32_of(a->y, a->rows * a->d, a->dtype);
    f.dtype = ENG_DTYPE_F32;
    f.x = xf;
    f.y = yf;
    const int rc = eng_cpu_geglu(NULL, &f, err);
    free(xf);
    return fake_finish(a->y, yf, a->rows * a->d, a->dtype, rc);
}

static int fake_copy(const eng_copy_args *a, eng_err *err) {
    eng_copy_args f = *a;
    const int64_t ny = span4(a->shape, a->y_stride);
    float *xf = f32_of(a->x, span4(a->shape, a->x_stride), a->dtype);
    float *yf = f32_of(a->y, ny, a->dtype); /* y keeps what the copy does not write */
    f.dtype = ENG_DTYPE_F32;
    f.x = xf;
    f.y = yf;
    const int rc = eng_cpu_copy(NULL, &f, err);
    free(xf);
    return fake_finish(a->y, yf, ny, a->dtype, rc);
}

static int fake_upsample(const eng_upsample_args *a, eng_err *err) {
    eng_upsample_args f = *a;
    const int64_t nx = a->n * a->h * a->w * a->c;
    float *xf = f32_of(a->x, nx, a->dtype), *yf = f32_of(a->y, 4 * nx, a->dtype);
    f.dtype = ENG_DTYPE_F32;
    f.x = xf;
    f.y = yf;
    const int rc = eng_cpu_upsample(NULL, &f, err);
    free(xf);
    return fake_finish(a->y, yf, 4 * nx, a->dtype, rc);
}

static int fake_temb(const eng_temb_args *a, eng_err *err) {
    eng_temb_args f = *a;
    float *yf = f32_of(a->y, a->n * a->dim, a->dtype);
    f.dtype = ENG_DTYPE_F32;
    f.y = yf;
    const int rc = eng_cpu_temb(NULL, &f, err);
    return fake_finish(a->y, yf, a->n * a->dim, a->dtype, rc);
}

static int fake_groupnorm(const eng_groupnorm_args *a, eng_err *err) {
    eng_groupnorm_args f = *a;
    const int64_t n = a->n * a->hw * a->c;
    float *xf = f32_of(a->x, n, a->dtype), *yf = f32_of(a->y, n, a->dtype);
    float *gf = f32_of(a->gamma, a->c, a->dtype), *bf = f32_of(a->beta, a->c, a->dtype);
    f.dtype = ENG_DTYPE_F32;
    f.x = xf;
    f.y = yf;
    f.gamma = gf;
    f.beta = bf;
    const int rc = eng_cpu_groupnorm(NULL, &f, err);
    free(xf);
    free(gf);
    free(bf);
    return fake_finish(a->y, yf, n, a->dtype, rc);
}

static int fake_layernorm(const eng_layernorm_args *a, eng_err *err) {
    eng_layernorm_args f = *a;
    const int64_t n = a->rows * a->c;
    float *xf = f32_of(a->x, n, a->dtype), *yf = f32_of(a->y, n, a->dtype);
    float *gf = f32_of(a->gamma, a->c, a->dtype), *bf = f32_of(a->beta, a->c, a->dtype);
    f.dtype = ENG_DTYPE_F32;
    f.x = xf;
    f.y = yf;
    f.gamma = gf;
    f.beta = bf;
    const int rc = eng_cpu_layernorm(NULL, &f, err);
    free(xf);
    free(gf);
    free(bf);
    return fake_finish(a->y, yf, n, a->dtype, rc);
}

static int fake_softmax(const eng_softmax_args *a, eng_err *err) {
    eng_softmax_args f = *a;
    const int64_t n = a->rows * a->c;
    float *xf = f32_of(a->x, n, a->dtype), *yf = f32_of(a->y, n, a->dtype);
    f.dtype = ENG_DTYPE_F32;
    f.x = xf;
    f.y = yf;
    const int rc = eng_cpu_softmax(NULL, &f, err);
    free(xf);
    return fake_finish(a->y, yf, n, a->dtype, rc);
}

#ifdef ENG_HAVE_CUDA
#define DEV_OP(name, args_t)                                                                       \
    static int run_##name(dev *d, const args_t *a, eng_err *err) {                                 \
        return d->fake ? fake_##name(a, err) : eng_cuda_##name(&d->s, a, err);                     \
    }
#else
#define DEV_OP(name, args_t)                                                                       \
    static int run_##name(dev *d, const args_t *a, eng_err *err) {                                 \
        (void)d;                                                                                   \
        return fake_##name(a, err);                                                                \
    }
#endif
DEV_OP(unary, eng_unary_args)
DEV_OP(binary, eng_binary_args)
DEV_OP(geglu, eng_geglu_args)
DEV_OP(copy, eng_copy_args)
DEV_OP(upsample, eng_upsample_args)
DEV_OP(temb, eng_temb_args)
DEV_OP(groupnorm, eng_groupnorm_args)
DEV_OP(layernorm, eng_layernorm_args)
DEV_OP(softmax, eng_softmax_args)

/* ---- buffers ------------------------------------------------------------------------------- */

/* A device buffer holding n f32 values (host `x`, already rounded to dt) stored as dt, at an
 * offset of `skew` elements from the allocation (skew 1 breaks 16-byte alignment). */
typedef struct dbuf {
    void *base;  /* allocation */
    void *p;     /* base + skew elements */
    int64_t n;   /* elements */
    size_t elem; /* bytes per element */
} dbuf;

static int dbuf_make(dev *d, dbuf *b, const float *x, int64_t n, eng_dtype dt, int skew) {
    b->elem = eng_dtype_size(dt);
    b->n = n;
    const size_t bytes = ((size_t)(n + skew)) * b->elem + GUARD;
    if (dev_alloc(d, &b->base, bytes) != 0) return 1;
    b->p = (char *)b->base + (size_t)skew * b->elem;
    unsigned char *host = malloc(bytes);
    CHECK(host != NULL);
    eng_test_canary_set(host, bytes); /* outputs start as canary bytes, guard included */
    if (x != NULL) store_dt(host + (size_t)skew * b->elem, x, n, dt);
    if (dev_copy(d, b->base, host, bytes, 1) != 0) return 1;
    free(host);
    return 0;
}

/* got (f32, n) = the buffer's values; 1 when the guard after them was overwritten. */
static int dbuf_fetch(dev *d, const dbuf *b, float *got, eng_dtype dt, const char *what) {
    const size_t bytes = (size_t)b->n * b->elem + GUARD;
    unsigned char *host = malloc(bytes);
    CHECK(host != NULL);
    if (dev_copy(d, host, b->p, bytes, 0) != 0) return 1;
    if (!eng_test_canary_ok(host + (size_t)b->n * b->elem, GUARD)) {
        fprintf(stderr, "%s (%s): the guard after %lld outputs was overwritten\n", what,
                eng_dtype_name(dt), (long long)b->n);
        return 1;
    }
    load_dt(got, host, b->n, dt);
    free(host);
    return 0;
}

static void dbuf_free(dev *d, dbuf *b) {
    dev_free(d, b->base);
    memset(b, 0, sizeof *b);
}

/* Compares n outputs fetched from `out` with `want` at dt's tolerance (exact when exact). */
static int
check_out(dev *d, const dbuf *out, const float *want, eng_dtype dt, int exact, const char *what) {
    float *got = malloc((size_t)(out->n > 0 ? out->n : 1) * sizeof(float));
    char label[192];
    CHECK(got != NULL);
    if (dbuf_fetch(d, out, got, dt, what) != 0) return 1;
    snprintf(label, sizeof label, "%s %s", what, eng_dtype_name(dt));
    const double atol = exact ? 0.0 : tol_atol(dt), rtol = exact ? 0.0 : tol_rtol(dt);
    if (!eng_test_allclose(label, got, want, out->n, atol, rtol)) return 1;
    free(got);
    return 0;
}

/* ---- unary --------------------------------------------------------------------------------- */

static int test_unary(void) {
    eng_err err = {0};
    dev d;
    const int64_t sizes[3] = {1, 1001, 300007};
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        const eng_dtype dt = DTYPES[di];
        for (int si = 0; si < 3; si++) {
            const int64_t n = sizes[si];
            float *x = malloc((size_t)n * sizeof(float)), *want = malloc((size_t)n * sizeof(float));
            CHECK(x != NULL && want != NULL);
            random_dt(x, n, 1, -6.0f, 6.0f, dt);
            for (int act = 0; act < ENG_ACT_COUNT; act++) {
                /* skew 1 on odd acts: the scalar path; skew 0: the 16-byte vector path */
                const int skew = act & 1;
                dbuf bx, by;
                eng_unary_args a = {dt, NULL, NULL, n, (eng_act)act, 1.25f, -0.5f};
                const eng_unary_args w = {ENG_DTYPE_F32, want, x, n, (eng_act)act, 1.25f, -0.5f};
                CHECK_OK(eng_cpu_unary(NULL, &w, &err), &err);
                if (dbuf_make(&d, &bx, x, n, dt, skew) || dbuf_make(&d, &by, NULL, n, dt, skew)) {
                    return 1;
                }
                a.x = bx.p;
                a.y = by.p;
                CHECK_OK(run_unary(&d, &a, &err), &err);
                char what[64];
                snprintf(what, sizeof what, "unary %s n=%lld skew=%d", eng_act_name((eng_act)act),
                         (long long)n, skew);
                if (check_out(&d, &by, want, dt, 0, what) != 0) return 1;
                /* in place: y is x */
                a.y = bx.p;
                CHECK_OK(run_unary(&d, &a, &err), &err);
                if (check_out(&d, &bx, want, dt, 0, what) != 0) return 1;
                dbuf_free(&d, &bx);
                dbuf_free(&d, &by);
            }
            free(x);
            free(want);
        }
    }
    dev_close(&d);
    return 0;
}

/* ---- binary -------------------------------------------------------------------------------- */

typedef struct bin_case {
    const char *name;
    int64_t shape[4];     /* y */
    int64_t as[4], bs[4]; /* element strides of a and b (0: broadcast) */
    int64_t a_len, b_len; /* elements stored for a and b */
} bin_case;

static int test_binary(void) {
    eng_err err = {0};
    dev d;
    static const bin_case cases[] = {
        {"bias (2,5,7,33)+(33)", {2, 5, 7, 33}, {1155, 231, 33, 1}, {0, 0, 0, 1}, 2310, 33},
        {"(3,4,9,17)*(3,1,1,17)", {3, 4, 9, 17}, {612, 153, 17, 1}, {17, 0, 0, 1}, 1836, 51},
        {"(3,1001)*scalar", {1, 1, 3, 1001}, {0, 0, 1001, 1}, {0, 0, 0, 0}, 3003, 1},
        {"(4,1,5)+(3,1)", {1, 4, 3, 5}, {0, 5, 0, 1}, {0, 0, 1, 0}, 20, 3},
        /* a: NHWC (2,6,5,3) memory viewed as NCHW (2,3,6,5); b: a (6,5) slice of (6,9) rows */
        {"nchw view + slice", {2, 3, 6, 5}, {90, 1, 15, 3}, {0, 0, 9, 1}, 180, 54},
        {"(2,4096,320)+(320)", {1, 2, 4096, 320}, {0, 1310720, 320, 1}, {0, 0, 0, 1}, 2621440, 320},
    };
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        const eng_dtype dt = DTYPES[di];
        for (int ci = 0; ci < ENG_TEST_N(cases); ci++) {
            const bin_case *k = &cases[ci];
            const int64_t n = k->shape[0] * k->shape[1] * k->shape[2] * k->shape[3];
            CHECK(span4(k->shape, k->as) <= k->a_len && span4(k->shape, k->bs) <= k->b_len);
            float *xa = malloc((size_t)k->a_len * sizeof(float));
            float *xb = malloc((size_t)k->b_len * sizeof(float));
            float *want = malloc((size_t)n * sizeof(float));
            CHECK(xa != NULL && xb != NULL && want != NULL);
            random_dt(xa, k->a_len, 2, -3.0f, 3.0f, dt);
            random_dt(xb, k->b_len, 3, -3.0f, 3.0f, dt);
            for (int op = 0; op < ENG_BINOP_COUNT; op++) {
                dbuf ba, bb, by;
                eng_binary_args w, a;
                memset(&w, 0, sizeof w);
                w.dtype = ENG_DTYPE_F32;
                w.op = (eng_binop)op;
                memcpy(w.shape, k->shape, sizeof w.shape);
                memcpy(w.a_stride, k->as, sizeof w.a_stride);
                memcpy(w.b_stride, k->bs, sizeof w.b_stride);
                a = w;
                w.y = want;
                w.a = xa;
                w.b = xb;
                CHECK_OK(eng_cpu_binary(NULL, &w, &err), &err);
                if (dbuf_make(&d, &ba, xa, k->a_len, dt, 0) ||
                    dbuf_make(&d, &bb, xb, k->b_len, dt, 0) || dbuf_make(&d, &by, NULL, n, dt, 0)) {
                    return 1;
                }
                a.dtype = dt;
                a.y = by.p;
                a.a = ba.p;
                a.b = bb.p;
                CHECK_OK(run_binary(&d, &a, &err), &err);
                char what[96];
                snprintf(what, sizeof what, "binary %s %s", eng_binop_name((eng_binop)op), k->name);
                if (check_out(&d, &by, want, dt, 0, what) != 0) return 1;
                dbuf_free(&d, &ba);
                dbuf_free(&d, &bb);
                dbuf_free(&d, &by);
            }
            free(xa);
            free(xb);
            free(want);
        }
    }
    dev_close(&d);
    return 0;
}

/* ---- GEGLU --------------------------------------------------------------------------------- */

static int test_geglu(void) {
    eng_err err = {0};
    dev d;
    static const int64_t shapes[4][2] = {{1, 1}, {3, 33}, {257, 160}, {2 * 1024, 1280}};
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        const eng_dtype dt = DTYPES[di];
        for (int si = 0; si < 4; si++) {
            const int64_t rows = shapes[si][0], dd = shapes[si][1];
            float *x = malloc((size_t)(rows * 2 * dd) * sizeof(float));
            float *want = malloc((size_t)(rows * dd) * sizeof(float));
            dbuf bx, by;
            CHECK(x != NULL && want != NULL);
            random_dt(x, rows * 2 * dd, 4, -4.0f, 4.0f, dt);
            const eng_geglu_args w = {ENG_DTYPE_F32, want, x, rows, dd};
            CHECK_OK(eng_cpu_geglu(NULL, &w, &err), &err);
            if (dbuf_make(&d, &bx, x, rows * 2 * dd, dt, 0) ||
                dbuf_make(&d, &by, NULL, rows * dd, dt, 0)) {
                return 1;
            }
            const eng_geglu_args a = {dt, by.p, bx.p, rows, dd};
            CHECK_OK(run_geglu(&d, &a, &err), &err);
            if (check_out(&d, &by, want, dt, 0, "geglu") != 0) return 1;
            dbuf_free(&d, &bx);
            dbuf_free(&d, &by);
            free(x);
            free(want);
        }
    }
    dev_close(&d);
    return 0;
}

/* ---- strided copies ------------------------------------------------------------------------ */

typedef struct copy_case {
    const char *name;
    int64_t shape[4];
    int64_t ys[4], xs[4];
    int64_t y_len, x_len; /* elements of the y and x buffers */
    int64_t y_off;        /* where the copy's y starts in its buffer */
} copy_case;

static int test_copy(void) {
    eng_err err = {0};
    dev d;
    static const copy_case cases[] = {
        /* permute (2,3,5,7) -> (0,3,1,2): NHWC to NCHW-like, y contiguous */
        {"permute", {2, 7, 3, 5}, {105, 15, 5, 1}, {105, 1, 35, 7}, 210, 210, 0},
        /* concat's second half: x (2,5,4) into y (2,9,4)[:, 4:9, :] */
        {"slice of y", {1, 2, 5, 4}, {0, 36, 4, 1}, {0, 20, 4, 1}, 72, 40, 16},
        {"contiguous 1-D", {1, 1, 1, 1001}, {0, 0, 0, 1}, {0, 0, 0, 1}, 1001, 1001, 0},
        /* a (129, 257) transpose of a (257, 129) matrix */
        {"transpose", {1, 1, 129, 257}, {0, 0, 257, 1}, {0, 0, 1, 129}, 33153, 33153, 0},
        /* rows of a wider buffer (padded rows) into a contiguous y */
        {"padded rows", {1, 3, 70001, 1}, {0, 70001, 1, 0}, {0, 70010, 1, 0}, 210003, 210030, 0},
    };
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        const eng_dtype dt = DTYPES[di];
        for (int ci = 0; ci < ENG_TEST_N(cases); ci++) {
            const copy_case *k = &cases[ci];
            CHECK(k->y_off + span4(k->shape, k->ys) <= k->y_len);
            CHECK(span4(k->shape, k->xs) <= k->x_len);
            float *x = malloc((size_t)k->x_len * sizeof(float));
            float *want = malloc((size_t)k->y_len * sizeof(float));
            dbuf bx, by;
            CHECK(x != NULL && want != NULL);
            random_dt(x, k->x_len, 5, -100.0f, 100.0f, dt);
            random_dt(want, k->y_len, 6, -1.0f, 1.0f, dt); /* y's prior contents */
            if (dbuf_make(&d, &bx, x, k->x_len, dt, 0) ||
                dbuf_make(&d, &by, want, k->y_len, dt, 0)) {
                return 1;
            }
            eng_copy_args w;
            memset(&w, 0, sizeof w);
            memcpy(w.shape, k->shape, sizeof w.shape);
            memcpy(w.y_stride, k->ys, sizeof w.y_stride);
            memcpy(w.x_stride, k->xs, sizeof w.x_stride);
            eng_copy_args a = w;
            w.dtype = ENG_DTYPE_F32;
            w.y = want + k->y_off;
            w.x = x;
            CHECK_OK(eng_cpu_copy(NULL, &w, &err), &err);
            a.dtype = dt;
            a.y = (char *)by.p + (size_t)k->y_off * by.elem;
            a.x = bx.p;
            CHECK_OK(run_copy(&d, &a, &err), &err);
            if (check_out(&d, &by, want, dt, 1, k->name) != 0) return 1;
            dbuf_free(&d, &bx);
            dbuf_free(&d, &by);
            free(x);
            free(want);
        }
    }
    dev_close(&d);
    return 0;
}

/* ---- upsample ------------------------------------------------------------------------------ */

static int test_upsample(void) {
    eng_err err = {0};
    dev d;
    static const int64_t shapes[3][4] = {{1, 1, 1, 1}, {2, 3, 5, 7}, {2, 32, 32, 320}};
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        const eng_dtype dt = DTYPES[di];
        for (int si = 0; si < 3; si++) {
            const int64_t *s = shapes[si];
            const int64_t nx = s[0] * s[1] * s[2] * s[3];
            float *x = malloc((size_t)nx * sizeof(float));
            float *want = malloc((size_t)(4 * nx) * sizeof(float));
            dbuf bx, by;
            CHECK(x != NULL && want != NULL);
            random_dt(x, nx, 7, -5.0f, 5.0f, dt);
            const eng_upsample_args w = {ENG_DTYPE_F32, want, x, s[0], s[1], s[2], s[3]};
            CHECK_OK(eng_cpu_upsample(NULL, &w, &err), &err);
            if (dbuf_make(&d, &bx, x, nx, dt, 0) || dbuf_make(&d, &by, NULL, 4 * nx, dt, 0)) {
                return 1;
            }
            const eng_upsample_args a = {dt, by.p, bx.p, s[0], s[1], s[2], s[3]};
            CHECK_OK(run_upsample(&d, &a, &err), &err);
            if (check_out(&d, &by, want, dt, 1, "upsample") != 0) return 1;
            dbuf_free(&d, &bx);
            dbuf_free(&d, &by);
            free(x);
            free(want);
        }
    }
    dev_close(&d);
    return 0;
}

/* ---- timestep embedding -------------------------------------------------------------------- */

static int test_temb(void) {
    eng_err err = {0};
    dev d;
    float t[5] = {0.0f, 1.0f, 250.5f, 999.0f, 500.0f};
    static const int64_t dims[4] = {320, 7, 1280, 2};
    static const int flips[4] = {1, 0, 1, 0};
    static const float shifts[4] = {0.0f, 1.0f, 1.0f, 0.0f};
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        const eng_dtype dt = DTYPES[di];
        for (int k = 0; k < 4; k++) {
            const int64_t dim = dims[k];
            float *want = malloc((size_t)(5 * dim) * sizeof(float));
            dbuf bt, by;
            CHECK(want != NULL);
            const eng_temb_args w = {ENG_DTYPE_F32, want, t, 5, dim, flips[k], shifts[k], 10000.0f};
            CHECK_OK(eng_cpu_temb(NULL, &w, &err), &err);
            if (dbuf_make(&d, &bt, t, 5, ENG_DTYPE_F32, 0) ||
                dbuf_make(&d, &by, NULL, 5 * dim, dt, 0)) {
                return 1;
            }
            const eng_temb_args a = {dt, by.p, bt.p, 5, dim, flips[k], shifts[k], 10000.0f};
            CHECK_OK(run_temb(&d, &a, &err), &err);
            if (check_out(&d, &by, want, dt, 0, "temb") != 0) return 1;
            dbuf_free(&d, &bt);
            dbuf_free(&d, &by);
            free(want);
        }
    }
    dev_close(&d);
    return 0;
}

/* ---- GroupNorm ------------------------------------------------------------------------------ */

typedef struct gn_case {
    int64_t n, hw, c, groups;
    int silu, affine, skew;
    float lo, hi;
} gn_case;

static int run_gn_cases(dev *d, const gn_case *cases, int ncases) {
    eng_err err = {0};
    for (int di = 0; di < 3; di++) {
        const eng_dtype dt = DTYPES[di];
        for (int ci = 0; ci < ncases; ci++) {
            const gn_case *k = &cases[ci];
            const int64_t n = k->n * k->hw * k->c;
            float *x = malloc((size_t)n * sizeof(float)), *want = malloc((size_t)n * sizeof(float));
            float *g = malloc((size_t)k->c * sizeof(float)),
                  *b = malloc((size_t)k->c * sizeof(float));
            dbuf bx, by, bg, bb;
            CHECK(x != NULL && want != NULL && g != NULL && b != NULL);
            random_dt(x, n, 8, k->lo, k->hi, dt);
            random_dt(g, k->c, 9, 0.5f, 1.5f, dt);
            random_dt(b, k->c, 10, -0.5f, 0.5f, dt);
            const eng_act act = k->silu ? ENG_ACT_SILU : ENG_ACT_NONE;
            const eng_groupnorm_args w = {ENG_DTYPE_F32,
                                          want,
                                          x,
                                          k->affine ? g : NULL,
                                          k->affine ? b : NULL,
                                          k->n,
                                          k->hw,
                                          k->c,
                                          k->groups,
                                          1e-5f,
                                          act};
            CHECK_OK(eng_cpu_groupnorm(NULL, &w, &err), &err);
            if (dbuf_make(d, &bx, x, n, dt, k->skew) || dbuf_make(d, &by, NULL, n, dt, k->skew) ||
                dbuf_make(d, &bg, g, k->c, dt, 0) || dbuf_make(d, &bb, b, k->c, dt, 0)) {
                return 1;
            }
            const eng_groupnorm_args a = {dt,
                                          by.p,
                                          bx.p,
                                          k->affine ? bg.p : NULL,
                                          k->affine ? bb.p : NULL,
                                          k->n,
                                          k->hw,
                                          k->c,
                                          k->groups,
                                          1e-5f,
                                          act};
            const uint64_t used = d->arena != NULL ? eng_arena_used(d->arena) : 0;
            CHECK_OK(run_groupnorm(d, &a, &err), &err);
            if (d->arena != NULL) CHECK(eng_arena_used(d->arena) == used); /* rewound */
            char what[128];
            snprintf(what, sizeof what,
                     "groupnorm n=%lld hw=%lld c=%lld groups=%lld silu=%d affine=%d skew=%d%s",
                     (long long)k->n, (long long)k->hw, (long long)k->c, (long long)k->groups,
                     k->silu, k->affine, k->skew, d->arena != NULL ? " (split)" : "");
            if (check_out(d, &by, want, dt, 0, what) != 0) return 1;
            dbuf_free(d, &bx);
            dbuf_free(d, &by);
            dbuf_free(d, &bg);
            dbuf_free(d, &bb);
            free(x);
            free(want);
            free(g);
            free(b);
        }
    }
    return 0;
}

/* Without an arena: one block per (sample, group). */
static int test_groupnorm_fused(void) {
    dev d;
    static const gn_case cases[] = {
        {2, 64, 320, 32, 1, 1, 0, -3.0f, 1.0f},  {1, 15, 96, 32, 0, 0, 0, -1.0f, 1.0f},
        {2, 63, 13, 1, 1, 1, 1, -1.0f, 1.0f},    /* one group, odd c, unaligned */
        {3, 77, 128, 32, 1, 1, 0, -1.0f, 1.0f},  /* (N, L, C) */
        {1, 3, 600, 2, 0, 1, 0, -1.0f, 1.0f},    /* 300 channels per group > the block */
        {1, 300, 4, 4, 1, 1, 0, -1.0f, 1.0f},    /* one channel per group */
        {2, 100, 64, 32, 0, 0, 0, 10.0f, 12.0f}, /* mean 11, spread 0.6 */
    };
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    rc = run_gn_cases(&d, cases, ENG_TEST_N(cases));
    dev_close(&d);
    return rc;
}

/* With an arena: the three-kernel split path (16-byte vectors when aligned). */
static int test_groupnorm_split(void) {
    dev d;
    static const gn_case cases[] = {
        {2, 4096, 320, 32, 1, 1, 0, -2.0f, 2.0f}, /* SD's first level at 512x512 */
        {1, 4096, 320, 32, 1, 1, 1, -2.0f, 2.0f}, /* unaligned: scalar loads, 320 > 256 threads */
        {1, 63, 13, 1, 0, 1, 0, -1.0f, 1.0f},     /* odd c: scalar loads */
        {2, 1024, 640, 32, 0, 1, 0, -1.0f, 3.0f}, {1, 256, 1280, 32, 1, 1, 0, -1.0f, 1.0f},
        {1, 37, 4096, 32, 1, 0, 0, -1.0f, 1.0f}, /* channel vectors > 256: TY = 1 */
        {2, 1, 64, 32, 0, 1, 0, -1.0f, 1.0f},    /* one pixel */
        {2, 100, 64, 32, 0, 0, 0, 10.0f, 12.0f}, /* mean 11, spread 0.6 */
        {3, 77, 128, 32, 1, 1, 0, -1.0f, 1.0f},
    };
    int rc = dev_open(&d, 1);
    if (rc != 0) return rc;
    rc = run_gn_cases(&d, cases, ENG_TEST_N(cases));
    dev_close(&d);
    return rc;
}

/* ---- LayerNorm ------------------------------------------------------------------------------ */

static int test_layernorm(void) {
    eng_err err = {0};
    dev d;
    static const int64_t shapes[5][2] = {{1, 1}, {77, 768}, {4096, 320}, {3, 1001}, {5, 1000}};
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        const eng_dtype dt = DTYPES[di];
        for (int si = 0; si < 5; si++) {
            for (int affine = 0; affine < 2; affine++) {
                const int64_t rows = shapes[si][0], c = shapes[si][1], n = rows * c;
                const float off = si == 4 ? 50.0f : 0.0f; /* a large mean: the shifted sums */
                float *x = malloc((size_t)n * sizeof(float));
                float *want = malloc((size_t)n * sizeof(float));
                float *g = malloc((size_t)c * sizeof(float)),
                      *b = malloc((size_t)c * sizeof(float));
                dbuf bx, by, bg, bb;
                CHECK(x != NULL && want != NULL && g != NULL && b != NULL);
                random_dt(x, n, 11, off - 2.0f, off + 2.0f, dt);
                random_dt(g, c, 12, 0.5f, 1.5f, dt);
                random_dt(b, c, 13, -1.0f, 1.0f, dt);
                const eng_layernorm_args w = {ENG_DTYPE_F32,     want, x, affine ? g : NULL,
                                              affine ? b : NULL, rows, c, 1e-5f};
                CHECK_OK(eng_cpu_layernorm(NULL, &w, &err), &err);
                if (dbuf_make(&d, &bx, x, n, dt, 0) || dbuf_make(&d, &by, NULL, n, dt, 0) ||
                    dbuf_make(&d, &bg, g, c, dt, 0) || dbuf_make(&d, &bb, b, c, dt, 0)) {
                    return 1;
                }
                const eng_layernorm_args a = {
                    dt, by.p, bx.p, affine ? bg.p : NULL, affine ? bb.p : NULL, rows, c, 1e-5f};
                CHECK_OK(run_layernorm(&d, &a, &err), &err);
                if (check_out(&d, &by, want, dt, 0, "layernorm") != 0) return 1;
                dbuf_free(&d, &bx);
                dbuf_free(&d, &by);
                dbuf_free(&d, &bg);
                dbuf_free(&d, &bb);
                free(x);
                free(want);
                free(g);
                free(b);
            }
        }
    }
    dev_close(&d);
    return 0;
}

/* ---- softmax ------------------------------------------------------------------------------- */

static int test_softmax(void) {
    eng_err err = {0};
    dev d;
    static const int64_t shapes[4][2] = {{1, 1}, {77, 77}, {512, 1001}, {4096, 77}};
    static const float scales[4] = {1.0f, 1.0f, 0.125f, 0.158f};
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    for (int di = 0; di < 3; di++) {
        const eng_dtype dt = DTYPES[di];
        for (int si = 0; si < 4; si++) {
            const int64_t rows = shapes[si][0], c = shapes[si][1], n = rows * c;
            float *x = malloc((size_t)n * sizeof(float)), *want = malloc((size_t)n * sizeof(float));
            dbuf bx, by;
            CHECK(x != NULL && want != NULL);
            random_dt(x, n, 14, -20.0f, 20.0f, dt);
            if (si == 1) { /* CLIP's causal mask */
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t j = r + 1; j < c; j++)
                        x[r * c + j] = -INFINITY;
            }
            const eng_softmax_args w = {ENG_DTYPE_F32, want, x, rows, c, scales[si]};
            CHECK_OK(eng_cpu_softmax(NULL, &w, &err), &err);
            if (dbuf_make(&d, &bx, x, n, dt, 0) || dbuf_make(&d, &by, NULL, n, dt, 0)) return 1;
            eng_softmax_args a = {dt, by.p, bx.p, rows, c, scales[si]};
            CHECK_OK(run_softmax(&d, &a, &err), &err);
            if (check_out(&d, &by, want, dt, 0, "softmax") != 0) return 1;
            a.y = bx.p; /* in place */
            CHECK_OK(run_softmax(&d, &a, &err), &err);
            if (check_out(&d, &bx, want, dt, 0, "softmax in place") != 0) return 1;
            dbuf_free(&d, &bx);
            dbuf_free(&d, &by);
            free(x);
            free(want);
        }
    }
    dev_close(&d);
    return 0;
}

/* ---- the tensor-level ops on CUDA tensors (context, default stream with its arena) ---------- */

#ifdef ENG_HAVE_CUDA
/* A CUDA tensor of `shape` holding x (f32 values already rounded to dt), stored as dt. */
static int cuda_tensor(
    eng_ctx *ctx, eng_tensor *t, eng_dtype dt, int ndim, const int64_t *shape, const float *x) {
    eng_err err = {0};
    eng_tensor h;
    CHECK_OK(eng_tensor_alloc(t, eng_ctx_alloc(ctx, ENG_DEVICE_CUDA), ENG_LIFE_STATE, "test", dt,
                              ndim, shape, &err),
             &err);
    if (x == NULL) return 0;
    const int64_t n = eng_tensor_numel(t);
    void *buf = malloc((size_t)n * eng_dtype_size(dt) + 1);
    CHECK(buf != NULL);
    store_dt(buf, x, n, dt);
    CHECK_OK(eng_tensor_init(&h, buf, dt, ENG_DEVICE_CPU, ndim, shape, &err), &err);
    CHECK_OK(eng_op_copy(ctx, t, &h, &err), &err);
    free(buf);
    return 0;
}

/* got (f32) = the values of CUDA tensor t. */
static int cuda_fetch(eng_ctx *ctx, float *got, const eng_tensor *t) {
    eng_err err = {0};
    eng_tensor h;
    const int64_t n = eng_tensor_numel(t);
    void *buf = malloc((size_t)n * eng_dtype_size(t->dtype) + 1);
    CHECK(buf != NULL);
    CHECK_OK(eng_tensor_init(&h, buf, t->dtype, ENG_DEVICE_CPU, t->ndim, t->shape, &err), &err);
    CHECK_OK(eng_op_copy(ctx, &h, t, &err), &err);
    load_dt(got, buf, n, t->dtype);
    free(buf);
    return 0;
}

static int close_to(
    const char *what, eng_dtype dt, const float *got, const float *want, int64_t n, int exact) {
    return eng_test_allclose(what, got, want, n, exact ? 0.0 : tol_atol(dt),
                             exact ? 0.0 : tol_rtol(dt));
}
#endif

static int test_ops_dispatch(void) {
#ifdef ENG_HAVE_CUDA
    eng_err err = {0};
    eng_ctx_params p;
    eng_ctx *ctx = NULL;
    int count = 0;
    const eng_dtype dt = ENG_DTYPE_F16;
    if (eng_cuda_device_count(&count, &err) != ENG_OK || count == 0) {
        fprintf(stderr, "SKIP: no CUDA device\n");
        return ENG_TEST_SKIP;
    }
    eng_ctx_params_init(&p);
    p.threads = 2;
    p.threaded_scheduler = 0;
    CHECK_OK(eng_ctx_create(&ctx, &p, &err), &err);
    CHECK_OK(eng_cuda_attach(ctx, 0, (uint64_t)1 << 30, &err), &err);
    const eng_backend *be = eng_ctx_backend(ctx, ENG_DEVICE_CUDA);
    CHECK(be != NULL && be->ops.unary == eng_cuda_unary && be->ops.binary == eng_cuda_binary &&
          be->ops.geglu == eng_cuda_geglu && be->ops.copy == eng_cuda_copy &&
          be->ops.upsample == eng_cuda_upsample && be->ops.temb == eng_cuda_temb &&
          be->ops.groupnorm == eng_cuda_groupnorm && be->ops.layernorm == eng_cuda_layernorm &&
          be->ops.softmax == eng_cuda_softmax);

    const int64_t sx[4] = {2, 16, 16, 64}, sc[1] = {64}, sb[4] = {2, 16, 16, 32};
    const int64_t sy[4] = {2, 16, 16, 96}, sp[4] = {2, 64, 16, 16};
    const int64_t n = 2 * 16 * 16 * 64, nb = n / 2;
    float *x = malloc((size_t)n * 4), *g = malloc(64 * 4), *bt = malloc(64 * 4);
    float *xb = malloc((size_t)nb * 4), *want = malloc((size_t)(n + nb) * 4);
    float *got = malloc((size_t)(n + nb) * 4);
    CHECK(x && g && bt && xb && want && got);
    random_dt(x, n, 20, -2.0f, 2.0f, dt);
    random_dt(g, 64, 21, 0.5f, 1.5f, dt);
    random_dt(bt, 64, 22, -0.5f, 0.5f, dt);
    random_dt(xb, nb, 23, -2.0f, 2.0f, dt);
    eng_tensor cx, cg, cb, cy, cxb, ccat, cperm, cv;
    eng_tensor hx, hg, hb, hy, hxb, hcat, hperm, hv;
    if (cuda_tensor(ctx, &cx, dt, 4, sx, x) || cuda_tensor(ctx, &cg, dt, 1, sc, g) ||
        cuda_tensor(ctx, &cb, dt, 1, sc, bt) || cuda_tensor(ctx, &cy, dt, 4, sx, NULL) ||
        cuda_tensor(ctx, &cxb, dt, 4, sb, xb) || cuda_tensor(ctx, &ccat, dt, 4, sy, NULL) ||
        cuda_tensor(ctx, &cperm, dt, 4, sp, NULL)) {
        return 1;
    }
    CHECK_OK(eng_tensor_init(&hx, x, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sx, &err), &err);
    CHECK_OK(eng_tensor_init(&hg, g, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, sc, &err), &err);
    CHECK_OK(eng_tensor_init(&hb, bt, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, sc, &err), &err);
    CHECK_OK(eng_tensor_init(&hy, want, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sx, &err), &err);
    CHECK_OK(eng_tensor_init(&hxb, xb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sb, &err), &err);

    /* GroupNorm + SiLU through the context's default stream (it has an arena: split path) */
    CHECK_OK(eng_op_groupnorm(ctx, NULL, &cy, &cx, &cg, &cb, 32, 1e-5f, ENG_ACT_SILU, &err), &err);
    CHECK_OK(eng_op_groupnorm(ctx, NULL, &hy, &hx, &hg, &hb, 32, 1e-5f, ENG_ACT_SILU, &err), &err);
    if (cuda_fetch(ctx, got, &cy) != 0) return 1;
    CHECK(close_to("op groupnorm+silu", dt, got, want, n, 0));
    /* bias add with broadcasting, then LayerNorm, softmax, GELU */
    CHECK_OK(eng_op_binary(ctx, NULL, &cy, &cx, &cb, ENG_BINOP_ADD, &err), &err);
    CHECK_OK(eng_op_binary(ctx, NULL, &hy, &hx, &hb, ENG_BINOP_ADD, &err), &err);
    if (cuda_fetch(ctx, got, &cy) != 0) return 1;
    CHECK(close_to("op binary", dt, got, want, n, 0));
    CHECK_OK(eng_op_layernorm(ctx, NULL, &cy, &cx, &cg, NULL, 1e-5f, &err), &err);
    CHECK_OK(eng_op_layernorm(ctx, NULL, &hy, &hx, &hg, NULL, 1e-5f, &err), &err);
    if (cuda_fetch(ctx, got, &cy) != 0) return 1;
    CHECK(close_to("op layernorm", dt, got, want, n, 0));
    CHECK_OK(eng_op_softmax(ctx, NULL, &cy, &cx, 0.5f, &err), &err);
    CHECK_OK(eng_op_softmax(ctx, NULL, &hy, &hx, 0.5f, &err), &err);
    if (cuda_fetch(ctx, got, &cy) != 0) return 1;
    CHECK(close_to("op softmax", dt, got, want, n, 0));
    CHECK_OK(eng_op_unary(ctx, NULL, &cy, &cx, ENG_ACT_GELU, 1.0f, 0.0f, &err), &err);
    CHECK_OK(eng_op_unary(ctx, NULL, &hy, &hx, ENG_ACT_GELU, 1.0f, 0.0f, &err), &err);
    if (cuda_fetch(ctx, got, &cy) != 0) return 1;
    CHECK(close_to("op gelu", dt, got, want, n, 0));
    /* concat along channels and a permuted copy: bit-exact */
    CHECK_OK(eng_tensor_init(&hcat, want, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sy, &err), &err);
    CHECK_OK(eng_op_concat(ctx, NULL, &ccat, &cx, &cxb, 3, &err), &err);
    CHECK_OK(eng_op_concat(ctx, NULL, &hcat, &hx, &hxb, 3, &err), &err);
    if (cuda_fetch(ctx, got, &ccat) != 0) return 1;
    CHECK(close_to("op concat", dt, got, want, n + nb, 1));
    {
        const int perm[4] = {0, 3, 1, 2};
        CHECK_OK(eng_tensor_view_permute(&cv, &cx, perm, &err), &err);
        CHECK_OK(eng_tensor_view_permute(&hv, &hx, perm, &err), &err);
        CHECK_OK(eng_tensor_init(&hperm, want, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sp, &err), &err);
        CHECK_OK(eng_op_contiguous(ctx, NULL, &cperm, &cv, &err), &err);
        CHECK_OK(eng_op_contiguous(ctx, NULL, &hperm, &hv, &err), &err);
        if (cuda_fetch(ctx, got, &cperm) != 0) return 1;
        CHECK(close_to("op permute", dt, got, want, n, 1));
    }
    /* malformed: CUDA tensors of two dtypes; a CUDA x with a CPU y */
    cxb.dtype = ENG_DTYPE_BF16;
    CHECK(eng_op_concat(ctx, NULL, &ccat, &cx, &cxb, 3, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "b is bf16[2,16,16,32] cuda");
    cxb.dtype = dt;
    CHECK(eng_op_unary(ctx, NULL, &hy, &cx, ENG_ACT_NONE, 1.0f, 0.0f, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "x is f16[2,16,16,64] cuda");

    eng_alloc *ca = eng_ctx_alloc(ctx, ENG_DEVICE_CUDA);
    eng_tensor_free(ca, &cx);
    eng_tensor_free(ca, &cg);
    eng_tensor_free(ca, &cb);
    eng_tensor_free(ca, &cy);
    eng_tensor_free(ca, &cxb);
    eng_tensor_free(ca, &ccat);
    eng_tensor_free(ca, &cperm);
    free(x);
    free(g);
    free(bt);
    free(xb);
    free(want);
    free(got);
    eng_ctx_destroy(ctx);
    return 0;
#else
    fprintf(stderr, "SKIP: built without CUDA\n");
    return ENG_TEST_SKIP;
#endif
}

/* ---- the launchers' error paths ------------------------------------------------------------- */

static int test_errors(void) {
#ifdef ENG_HAVE_CUDA
    eng_err err = {0};
    dev d;
    void *buf = NULL;
    eng_stream cpu = {ENG_DEVICE_CPU, NULL, NULL, NULL, NULL};
    int rc = dev_open(&d, 0);
    if (rc != 0) return rc;
    if (d.fake) {
        dev_close(&d);
        return ENG_TEST_SKIP; /* only the real launchers have these paths */
    }
    if (dev_alloc(&d, &buf, 1 << 16) != 0) return 1;
    {
        eng_unary_args a = {ENG_DTYPE_I8, buf, buf, 16, ENG_ACT_NONE, 1.0f, 0.0f};
        CHECK(eng_cuda_unary(&d.s, &a, &err) == ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "eng_cuda_unary: dtype i8 (f32, f16 or bf16)");
        a.dtype = ENG_DTYPE_F16;
        a.y = NULL;
        CHECK(eng_cuda_unary(&d.s, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_cuda_unary: y is NULL with n = 16");
        a.y = buf;
        a.n = -1;
        CHECK(eng_cuda_unary(&d.s, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "n = -1");
        a.n = 16;
        a.act = ENG_ACT_COUNT;
        CHECK(eng_cuda_unary(&d.s, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "activation 5 out of range");
        a.act = ENG_ACT_SILU;
        CHECK(eng_cuda_unary(&cpu, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "cpu stream");
        a.n = 0;
        a.x = NULL;
        a.y = NULL; /* nothing to do */
        CHECK_OK(eng_cuda_unary(&d.s, &a, &err), &err);
    }
    {
        eng_binary_args a;
        memset(&a, 0, sizeof a);
        a.dtype = ENG_DTYPE_F32;
        a.shape[0] = a.shape[1] = a.shape[2] = 1;
        a.shape[3] = 4;
        a.y = buf;
        a.a = buf;
        CHECK(eng_cuda_binary(&d.s, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_cuda_binary: b is NULL");
        a.b = buf;
        a.op = ENG_BINOP_COUNT;
        CHECK(eng_cuda_binary(&d.s, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "operator 3 out of range");
    }
    {
        eng_groupnorm_args a;
        memset(&a, 0, sizeof a);
        a.dtype = ENG_DTYPE_BF16;
        a.y = buf;
        a.x = buf;
        a.n = 1;
        a.hw = 4;
        a.c = 30;
        a.groups = 7;
        a.eps = 1e-5f;
        CHECK(eng_cuda_groupnorm(&d.s, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_cuda_groupnorm: 30 channels do not split into 7 groups");
        a.groups = 3;
        a.act = ENG_ACT_GELU;
        CHECK(eng_cuda_groupnorm(&d.s, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "activation gelu");
        a.act = ENG_ACT_NONE;
        a.eps = -1.0f;
        CHECK(eng_cuda_groupnorm(&d.s, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eps = -1");
    }
    {
        const eng_temb_args a = {ENG_DTYPE_F16, buf, (const float *)buf, 2, 1, 1, 0.0f, 10000.0f};
        CHECK(eng_cuda_temb(&d.s, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "dim = 1");
        const eng_layernorm_args l = {ENG_DTYPE_F32, buf, NULL, NULL, NULL, 2, 3, 1e-5f};
        CHECK(eng_cuda_layernorm(&d.s, &l, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_cuda_layernorm: x is NULL");
        const eng_softmax_args s = {ENG_DTYPE_F32, buf, buf, 2, -3, 1.0f};
        CHECK(eng_cuda_softmax(&d.s, &s, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "c = -3 < 0");
        const eng_copy_args c = {ENG_DTYPE_FP8_E4M3, buf, buf, {1, 1, 1, 1}, {0}, {0}};
        CHECK(eng_cuda_copy(&d.s, &c, &err) == ENG_E_UNSUPPORTED);
        const eng_upsample_args u = {ENG_DTYPE_F16, buf, buf, 1, -2, 1, 1};
        CHECK(eng_cuda_upsample(&d.s, &u, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "h = -2 < 0");
        const eng_geglu_args g = {ENG_DTYPE_F16, NULL, buf, 2, 3};
        CHECK(eng_cuda_geglu(&d.s, &g, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "y is NULL");
    }
    { /* GroupNorm's workspace does not fit the arena's budget: ENG_E_OOM, named */
        eng_alloc *small = NULL;
        eng_arena *ar = NULL;
        eng_alloc_params p;
        eng_alloc_params_init(&p);
        p.device = ENG_DEVICE_CUDA;
        p.source.device_name = "cuda:0";
        p.source.user = d.b->impl;
        p.source.take = d.b->block_take;
        p.source.give = d.b->block_give;
        p.budget_bytes = 4096;
        p.block_bytes = 4096;
        p.arena_chunk_bytes = 4096;
        CHECK_OK(eng_alloc_create(&small, &p, &err), &err);
        CHECK_OK(eng_arena_create(&ar, small, "test.small", &err), &err);
        d.s.arena = ar;
        eng_groupnorm_args a;
        memset(&a, 0, sizeof a);
        a.dtype = ENG_DTYPE_F32;
        a.y = buf;
        a.x = buf;
        a.n = 2;
        a.hw = 8;
        a.c = 1024; /* coefficients alone: 2 x 1024 x 16 bytes > 4096 */
        a.groups = 32;
        a.eps = 1e-5f;
        CHECK(eng_cuda_groupnorm(&d.s, &a, &err) == ENG_E_OOM);
        CHECK_CONTAINS(err.msg, "eng_cuda_groupnorm: workspace");
        d.s.arena = NULL;
        eng_arena_destroy(ar);
        eng_alloc_destroy(small);
    }
    /* none of that hurt the stream: a launch still works */
    {
        float one[4] = {1.0f, 2.0f, 3.0f, 4.0f}, back[4];
        if (dev_copy(&d, buf, one, sizeof one, 1) != 0) return 1;
        const eng_unary_args a = {ENG_DTYPE_F32, buf, buf, 4, ENG_ACT_NONE, 2.0f, 1.0f};
        CHECK_OK(eng_cuda_unary(&d.s, &a, &err), &err);
        if (dev_copy(&d, back, buf, sizeof back, 0) != 0) return 1;
        for (int i = 0; i < 4; i++)
            CHECK(back[i] == 2.0f * one[i] + 1.0f);
    }
    dev_free(&d, buf);
    dev_close(&d);
    return 0;
#else
    fprintf(stderr, "SKIP: built without CUDA\n");
    return ENG_TEST_SKIP;
#endif
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"unary.vs_cpu", test_unary},
        {"binary.vs_cpu", test_binary},
        {"geglu.vs_cpu", test_geglu},
        {"copy.vs_cpu", test_copy},
        {"upsample.vs_cpu", test_upsample},
        {"temb.vs_cpu", test_temb},
        {"groupnorm.vs_cpu", test_groupnorm_fused},
        {"groupnorm.split_vs_cpu", test_groupnorm_split},
        {"layernorm.vs_cpu", test_layernorm},
        {"softmax.vs_cpu", test_softmax},
        {"ops.dispatch", test_ops_dispatch},
        {"elementwise.errors", test_errors},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
