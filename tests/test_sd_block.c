/* test_sd_block.c: the shared UNet/VAE blocks (diffusion/sd_block.h) against plain loops.
 *
 * downsample: 3x3 stride-2 conv with diffusers padding 1 (all sides) and 0 (F.pad (0, 1, 0, 1):
 * bottom and right only), on odd and even sides, against a float64 loop; canaries after y.
 * upsample: nearest 2x + 3x3 conv against a float64 loop.
 * errors: shapes, a missing or unexpected time embedding, padding 2, a side of 1 with padding 0
 * (ENG_E_INVALID_ARG, named).
 * load: loading resnets and convs from the tiny checkpoint: shortcut and time projection present
 * exactly when expected, a wrong expected shape is ENG_E_FORMAT naming the tensor, bad arguments
 * ENG_E_INVALID_ARG, and nothing stays allocated after a failed load or the frees.
 * dest: sd_block_dest_init refuses an unattached device and a dtype the device does not run
 * (ENG_E_UNSUPPORTED, named); sd_block_upload/download round-trip f32 bit for bit and f16/bf16
 * through the host conversions (bits of eng_f32_to_f16/bf16), leave the host staging arena
 * rewound, and refuse a non-contiguous tensor or an i8 one (ENG_E_INVALID_ARG).
 * (The device paths themselves: tests/test_sd_device.c.)
 * (The blocks' numerics against diffusers: sd.unet.tiny_parity, sd.vae.*.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "sd_block.h"
#include "wt.h"

/* A conv with random weights in [-0.5, 0.5) (malloc'd; free w.data and b.data). */
static int make_conv(sd_block_conv *c, int64_t cout, int64_t k, int64_t cin, uint64_t stream) {
    const int64_t ws[4] = {cout, k, k, cin}, bs[1] = {cout};
    memset(c, 0, sizeof *c);
    float *w = eng_test_tensor_f32(&c->w, 4, ws, stream, -0.5f, 0.5f);
    float *b = eng_test_tensor_f32(&c->b, 1, bs, stream + 1, -0.5f, 0.5f);
    if (w == NULL || b == NULL) {
        free(w);
        free(b);
        return 1;
    }
    return 0;
}

static void free_conv(sd_block_conv *c) {
    free(c->w.data);
    free(c->b.data);
}

/* y (N, HO, WO, O) = conv(x) in float64: input row of output row i and tap ki is
 * stride i + ki - pad_top (zero outside [0, H)), likewise for the columns. */
static void ref_conv(float *y,
                     const float *x,
                     const sd_block_conv *c,
                     int64_t n,
                     int64_t h,
                     int64_t w,
                     int64_t ho,
                     int64_t wo,
                     int64_t stride,
                     int64_t pad_top) {
    const int64_t o = c->w.shape[0], k = c->w.shape[1], ci = c->w.shape[3];
    const float *wt = c->w.data, *bias = c->b.data;
    for (int64_t b = 0; b < n; b++)
        for (int64_t i = 0; i < ho; i++)
            for (int64_t j = 0; j < wo; j++)
                for (int64_t oc = 0; oc < o; oc++) {
                    double acc = bias[oc];
                    for (int64_t ki = 0; ki < k; ki++)
                        for (int64_t kj = 0; kj < k; kj++) {
                            const int64_t r = stride * i + ki - pad_top;
                            const int64_t q = stride * j + kj - pad_top;
                            if (r < 0 || r >= h || q < 0 || q >= w) continue;
                            for (int64_t cc = 0; cc < ci; cc++)
                                acc += (double)wt[((oc * k + ki) * k + kj) * ci + cc] *
                                       x[((b * h + r) * w + q) * ci + cc];
                        }
                    y[((b * ho + i) * wo + j) * o + oc] = (float)acc;
                }
}

/* One downsample case: x (n, h, w, cin) -> y with diffusers padding `pad`. */
static int downsample_case(eng_ctx *ctx, int64_t n, int64_t h, int64_t w, int pad) {
    eng_err err = {0};
    const int64_t cin = 5, cout = 6;
    const int64_t ho = pad ? (h + 1) / 2 : h / 2, wo = pad ? (w + 1) / 2 : w / 2;
    const int64_t xs[4] = {n, h, w, cin}, ys[4] = {n, ho, wo, cout};
    eng_tensor x, y;
    sd_block_conv c;
    char what[96];
    int rc = 1;
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    float *xp = eng_test_tensor_f32(&x, 4, xs, 11, -1.0f, 1.0f);
    float *yp = eng_test_tensor_f32(&y, 4, ys, 0, 0.0f, 0.0f);
    float *want = malloc((size_t)(n * ho * wo * cout) * sizeof *want);
    if (xp == NULL || yp == NULL || want == NULL || make_conv(&c, cout, 3, cin, 20) != 0) {
        free(xp);
        free(yp);
        free(want);
        CHECK(!"out of memory");
    }
    /* padding 1: the conv pads the top and left too; padding 0: F.pad adds only bottom/right */
    ref_conv(want, xp, &c, n, h, w, ho, wo, 2, pad);
    const uint64_t used = eng_arena_used(eng_alloc_scratch(alloc));
    const int frc =
        sd_block_downsample_forward(&c, pad, ctx, NULL, eng_alloc_scratch(alloc), &y, &x, &err);
    snprintf(what, sizeof what, "downsample pad %d x [%lld,%lld,%lld,%lld]", pad, (long long)n,
             (long long)h, (long long)w, (long long)cin);
    if (frc != ENG_OK) {
        fprintf(stderr, "%s: %s\n", what, err.msg);
    } else if (eng_arena_used(eng_alloc_scratch(alloc)) != used) {
        fprintf(stderr, "%s: the arena was not rewound\n", what);
    } else if (eng_test_allclose(what, yp, want, n * ho * wo * cout, 1e-5, 1e-5) &&
               eng_test_guard_ok(&y)) {
        fprintf(stderr, "ok: %s -> [%lld,%lld,%lld,%lld]\n", what, (long long)n, (long long)ho,
                (long long)wo, (long long)cout);
        rc = 0;
    }
    eng_alloc_scratch_reset(alloc);
    free_conv(&c);
    free(xp);
    free(yp);
    free(want);
    return rc;
}

static int test_downsample(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    int rc = 1;
    CHECK(ctx != NULL);
    if (downsample_case(ctx, 2, 7, 10, 0) != 0) goto done;
    if (downsample_case(ctx, 2, 7, 10, 1) != 0) goto done;
    if (downsample_case(ctx, 1, 8, 6, 0) != 0) goto done;
    if (downsample_case(ctx, 1, 8, 6, 1) != 0) goto done;
    if (downsample_case(ctx, 1, 2, 3, 0) != 0) goto done; /* the smallest: one output row */
    rc = 0;
done:
    eng_ctx_destroy(ctx);
    return rc;
}

static int test_upsample(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    const int64_t n = 2, h = 3, w = 5, cin = 4, cout = 6;
    const int64_t xs[4] = {n, h, w, cin}, ys[4] = {n, 2 * h, 2 * w, cout};
    const int64_t us[4] = {n, 2 * h, 2 * w, cin};
    eng_tensor x, y, u;
    sd_block_conv c;
    int rc = 1;
    CHECK(ctx != NULL);
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    float *xp = eng_test_tensor_f32(&x, 4, xs, 31, -1.0f, 1.0f);
    float *yp = eng_test_tensor_f32(&y, 4, ys, 0, 0.0f, 0.0f);
    float *up = eng_test_tensor_f32(&u, 4, us, 0, 0.0f, 0.0f);
    float *want = malloc((size_t)eng_tensor_numel(&y) * sizeof *want);
    const int made = make_conv(&c, cout, 3, cin, 40) == 0;
    if (xp != NULL && yp != NULL && up != NULL && want != NULL && made) {
        /* u = nearest 2x of x, then a padding-1 conv */
        for (int64_t b = 0; b < n; b++)
            for (int64_t i = 0; i < 2 * h; i++)
                for (int64_t j = 0; j < 2 * w; j++)
                    memcpy(up + ((b * 2 * h + i) * 2 * w + j) * cin,
                           xp + ((b * h + i / 2) * w + j / 2) * cin, (size_t)cin * sizeof *up);
        ref_conv(want, up, &c, n, 2 * h, 2 * w, 2 * h, 2 * w, 1, 1);
        const int frc =
            sd_block_upsample_forward(&c, ctx, NULL, eng_alloc_scratch(alloc), &y, &x, &err);
        if (frc != ENG_OK) {
            fprintf(stderr, "upsample: %s\n", err.msg);
        } else if (eng_test_allclose("upsample", yp, want, eng_tensor_numel(&y), 1e-5, 1e-5) &&
                   eng_test_guard_ok(&y)) {
            rc = 0;
        }
    }
    if (made) free_conv(&c);
    free(xp);
    free(yp);
    free(up);
    free(want);
    eng_ctx_destroy(ctx);
    return rc;
}

/* Expects ENG_E_INVALID_ARG with `needle` in the message. */
static int expect_invalid(int rc, const eng_err *err, const char *needle) {
    CHECK_EQ_I64(rc, ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err->msg, needle);
    fprintf(stderr, "ok: %s\n", err->msg);
    return 0;
}

static int test_errors(void) {
    eng_ctx *ctx = eng_test_ctx(1);
    int rc = 1;
    CHECK(ctx != NULL);
    eng_arena *ar = eng_alloc_scratch(eng_ctx_alloc(ctx, ENG_DEVICE_CPU));
    const int64_t xs[4] = {1, 4, 4, 3}, ys[4] = {1, 4, 4, 5}, ys_bad[4] = {1, 4, 4, 3};
    const int64_t ds[4] = {1, 2, 2, 3}, x1[4] = {1, 1, 4, 3}, ts[2] = {1, 8};
    eng_tensor x, y, ybad, d, xrow, temb;
    float *p[6] = {
        eng_test_tensor_f32(&x, 4, xs, 0, 0, 0),        eng_test_tensor_f32(&y, 4, ys, 0, 0, 0),
        eng_test_tensor_f32(&ybad, 4, ys_bad, 0, 0, 0), eng_test_tensor_f32(&d, 4, ds, 0, 0, 0),
        eng_test_tensor_f32(&xrow, 4, x1, 0, 0, 0),     eng_test_tensor_f32(&temb, 2, ts, 0, 0, 0)};
    sd_block_conv c = {0};
    sd_block_resnet r = {0};
    int ok = make_conv(&c, 3, 3, 3, 50) == 0;
    for (int i = 0; i < 6; i++)
        ok = ok && p[i] != NULL;
    if (ok) {
        eng_err err = {0};
        /* a resnet 3 -> 5 without weights: the checks come before any op */
        r.cin = 3;
        r.cout = 5;
        r.groups = 1;
        r.eps = 1e-6f;
        if (expect_invalid(sd_block_resnet_forward(&r, ctx, NULL, ar, &y, &x, &temb, &err), &err,
                           "temb f32[1,8] cpu") != 0)
            goto done;
        if (expect_invalid(sd_block_resnet_forward(&r, ctx, NULL, ar, &ybad, &x, NULL, &err), &err,
                           "y f32[1,4,4,3]") != 0)
            goto done;
        r.temb_dim = 8;
        if (expect_invalid(sd_block_resnet_forward(&r, ctx, NULL, ar, &y, &x, NULL, &err), &err,
                           "temb (N, T) (8 wide)") != 0)
            goto done;
        if (expect_invalid(sd_block_downsample_forward(&c, 2, ctx, NULL, ar, &d, &x, &err), &err,
                           "padding 2") != 0)
            goto done;
        if (expect_invalid(sd_block_downsample_forward(&c, 0, ctx, NULL, ar, &d, &xrow, &err), &err,
                           "x is f32[1,1,4,3]") != 0)
            goto done;
        if (expect_invalid(sd_block_downsample_forward(&c, 0, ctx, NULL, ar, &x, &x, &err), &err,
                           "y (N, floor(H/2), floor(W/2), 3)") != 0)
            goto done;
        if (expect_invalid(sd_block_upsample_forward(&c, ctx, NULL, ar, &d, &x, &err), &err,
                           "y (N, 2H, 2W, 3)") != 0)
            goto done;
        rc = 0;
    }
done:
    if (c.w.data != NULL) free_conv(&c);
    for (int i = 0; i < 6; i++)
        free(p[i]);
    eng_ctx_destroy(ctx);
    return rc;
}

static uint64_t weights_in_use(eng_alloc *a) {
    eng_alloc_stats st;
    eng_alloc_get_stats(a, &st);
    return st.in_use[ENG_LIFE_WEIGHTS];
}

static int load_checks(const wt_model *m, eng_ctx *ctx) {
    eng_err err = {0};
    sd_block_resnet r = {0};
    sd_block_conv c = {0};
    sd_block_dest d;
    CHECK_OK(sd_block_dest_init(&d, ctx, ENG_DEVICE_CPU, ENG_DTYPE_F32, "load_checks", &err), &err);
    eng_alloc *alloc = d.alloc;
    const uint64_t base = weights_in_use(alloc);
    /* the tiny VAE's encoder level 1 goes 32 -> 64: a 1x1 shortcut, no time projection */
    CHECK_OK(sd_block_resnet_load(&r, m, &d, "vae.encoder.down_blocks.1.resnets.0", 32, 64, 0, 32,
                                  1e-6f, &err),
             &err);
    CHECK(r.shortcut.w.data != NULL && r.shortcut.w.shape[1] == 1 && r.temb_w.data == NULL);
    CHECK(r.conv1.w.shape[0] == 64 && r.conv1.w.shape[3] == 32 && r.conv2.w.shape[3] == 64);
    sd_block_resnet_free(&r, alloc);
    CHECK_EQ_I64(weights_in_use(alloc), base);
    /* a UNet resnet with its time projection (the tiny UNet's embedding is 128 wide), no
     * shortcut at equal widths */
    CHECK_OK(
        sd_block_resnet_load(&r, m, &d, "unet.mid_block.resnets.0", 64, 64, 128, 32, 1e-5f, &err),
        &err);
    CHECK(r.shortcut.w.data == NULL && r.temb_w.shape[0] == 64 && r.temb_w.shape[1] == 128);
    sd_block_resnet_free(&r, alloc);
    CHECK_EQ_I64(weights_in_use(alloc), base);
    /* wrong expectations: the failing load leaves nothing behind */
    CHECK_EQ_I64(sd_block_resnet_load(&r, m, &d, "vae.encoder.down_blocks.1.resnets.0", 64, 64, 0,
                                      32, 1e-6f, &err),
                 ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "vae.encoder.down_blocks.1.resnets.0.norm1.weight is f32[32]");
    fprintf(stderr, "ok: %s\n", err.msg);
    CHECK_EQ_I64(sd_block_resnet_load(&r, m, &d, "vae.encoder.down_blocks.1.resnets.0", 32, 64, 16,
                                      32, 1e-6f, &err),
                 ENG_E_INVALID_ARG); /* no time_emb_proj in the VAE */
    CHECK_CONTAINS(err.msg, "time_emb_proj");
    fprintf(stderr, "ok: %s\n", err.msg);
    CHECK_EQ_I64(weights_in_use(alloc), base);
    CHECK(r.conv1.w.data == NULL && r.norm1_w.data == NULL);
    CHECK_EQ_I64(sd_block_resnet_load(&r, m, &d, "vae.encoder.down_blocks.1.resnets.0", 32, 64, 0,
                                      0, 1e-6f, &err),
                 ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "groups 0");
    CHECK_EQ_I64(sd_block_conv_load(&c, m, &d, "vae.encoder.conv_in", 32, 3, 1, &err),
                 ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "vae.encoder.conv_in.weight is f32[32,3,3,3] cpu (OHWI), expected "
                            "[32,1,1,3]");
    fprintf(stderr, "ok: %s\n", err.msg);
    CHECK_EQ_I64(weights_in_use(alloc), base);
    CHECK_OK(sd_block_conv_load(&c, m, &d, "vae.encoder.down_blocks.0.downsamplers.0.conv", 32, 32,
                                3, &err),
             &err);
    sd_block_conv_free(&c, alloc);
    sd_block_conv_free(&c, alloc); /* a freed (zeroed) conv frees again as a no-op */
    CHECK_EQ_I64(weights_in_use(alloc), base);
    return 0;
}

static int test_load(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(1);
    wt_model *m = NULL;
    wt_make_params p = {0};
    char path[600];
    int rc = 1;
    CHECK(ctx != NULL);
    snprintf(path, sizeof path, "%s/sd_block_tiny", eng_test_tmpdir());
    if (wt_sd_config_preset(&p.config, "tiny", &err) != ENG_OK) goto done;
    p.format = WT_FORMAT_DIFFUSERS;
    p.dtype = ENG_DTYPE_F32;
    p.seed = 1;
    p.path = path;
    if (wt_make_checkpoint(&p, &err) != ENG_OK || wt_model_open(&m, path, &err) != ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    rc = load_checks(m, ctx);
done:
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

static int test_dest(void) {
    eng_err err = {0};
    sd_block_dest d;
    eng_ctx *ctx = eng_test_ctx(1);
    CHECK(ctx != NULL);
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    eng_arena *stage = eng_alloc_scratch(alloc);
    CHECK_EQ_I64(sd_block_dest_init(&d, ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, "loader", &err),
                 ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "loader: no cuda device is attached to the context");
    fprintf(stderr, "ok: %s\n", err.msg);
    CHECK_EQ_I64(sd_block_dest_init(&d, ctx, ENG_DEVICE_CPU, ENG_DTYPE_F16, "loader", &err),
                 ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "loader: dtype f16 on cpu");
    fprintf(stderr, "ok: %s\n", err.msg);
    CHECK_OK(sd_block_dest_init(&d, ctx, ENG_DEVICE_CPU, ENG_DTYPE_F32, "loader", &err), &err);
    CHECK(d.alloc == alloc && d.ctx == ctx && d.dtype == ENG_DTYPE_F32);
    /* round trips through tensors of each transfer dtype (CPU memory: the conversions and the
     * staging are what is tested here) */
    enum { N = 1000 };
    float src[N], back[N];
    const int64_t shape[2] = {10, 100};
    eng_test_fill(src, N, 77, -70000.0f, 70000.0f); /* beyond f16's range: inf, as numpy */
    src[3] = 0.0f, src[4] = -0.0f, src[5] = 1e-8f;  /* zeros and an f16 subnormal */
    const eng_dtype dts[3] = {ENG_DTYPE_F32, ENG_DTYPE_F16, ENG_DTYPE_BF16};
    for (int k = 0; k < 3; k++) {
        eng_tensor t;
        CHECK_OK(eng_tensor_alloc(&t, alloc, ENG_LIFE_STATE, "test", dts[k], 2, shape, &err), &err);
        const uint64_t used = eng_arena_used(stage);
        int rc = sd_block_upload(ctx, NULL, &t, src, &err);
        if (rc == ENG_OK) rc = sd_block_download(ctx, NULL, back, &t, &err);
        for (int64_t i = 0; rc == ENG_OK && i < N; i++) {
            float want = src[i];
            if (dts[k] == ENG_DTYPE_F16) want = eng_f16_to_f32(eng_f32_to_f16(src[i]));
            if (dts[k] == ENG_DTYPE_BF16) want = eng_bf16_to_f32(eng_f32_to_bf16(src[i]));
            if (memcmp(&want, &back[i], sizeof want) != 0) {
                fprintf(stderr, "%s round trip [%lld]: %g -> %g, expected %g\n",
                        eng_dtype_name(dts[k]), (long long)i, (double)src[i], (double)back[i],
                        (double)want);
                rc = 1;
            }
        }
        eng_tensor_free(alloc, &t);
        CHECK_OK(rc, &err);
        CHECK_EQ_I64(eng_arena_used(stage), used);
    }
    {
        eng_tensor t, col;
        CHECK_OK(eng_tensor_alloc(&t, alloc, ENG_LIFE_STATE, "test", ENG_DTYPE_F32, 2, shape, &err),
                 &err);
        CHECK_OK(eng_tensor_view_slice(&col, &t, 1, 0, 1, &err), &err);
        CHECK_EQ_I64(sd_block_upload(ctx, NULL, &col, src, &err), ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "sd_block_upload: f32[10,1] cpu (needs a contiguous");
        fprintf(stderr, "ok: %s\n", err.msg);
        t.dtype = ENG_DTYPE_I8; /* the same memory seen as int8: no conversion for that */
        CHECK_EQ_I64(sd_block_download(ctx, NULL, back, &t, &err), ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "sd_block_download: i8[10,100]");
        t.dtype = ENG_DTYPE_F32;
        eng_tensor_free(alloc, &t);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {{"downsample", test_downsample},
                                          {"upsample", test_upsample},
                                          {"errors", test_errors},
                                          {"load", test_load},
                                          {"dest", test_dest}};
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
