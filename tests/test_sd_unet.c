/* test_sd_unet.c: the UNet (diffusion/sd_unet.h) against diffusers.
 *
 * tiny_parity: writes the tiny random checkpoint (diffusers format, f32, seed 3: the one
 * tests/gen_sd_unet_goldens.py builds with `gen make-checkpoint`), overwrites every 1-D f32
 * tensor of unet/diffusion_pytorch_model.safetensors with affine_formula (nonzero biases and
 * norm affines, as the script does), runs one step on sample[NCHW flat i] = sin(0.37 i),
 * timestep 500, context[flat j] = cos(0.11 j) of (1, 77, 32), and compares the (1, 8, 8, 4) NHWC
 * output with diffusers UNet2DConditionModel's (tests/golden/sd_unet_tiny.txt): max abs error
 * <= 1e-4.
 * batch2: a batch of two (own timesteps and contexts) gives each sample's single run.
 * errors: wrong latent channels, wrong context width, wrong output shape (ENG_E_INVALID_ARG,
 * named). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "sd_test_patch.h"
#include "sd_unet.h"
#include "wt.h"

#define GOLDEN_FILE ENG_TEST_SOURCE_DIR "/golden/sd_unet_tiny.txt"
#define GOLDEN_SEED 3u
#define LAT_C       4
#define LAT_H       8
#define LAT_W       8
#define CTX_L       77
#define CTX_C       32
#define N_AFFINE    125 /* 1-D tensors of the tiny UNet (the script asserts the same) */

/* Writes the tiny f32 checkpoint (seed 3, diffusers), patches it and opens it. */
static int open_tiny(wt_model **m) {
    eng_err err = {0};
    wt_make_params p = {0};
    static char path[600];
    snprintf(path, sizeof path, "%s/sd_unet_tiny", eng_test_tmpdir());
    CHECK_OK(wt_sd_config_preset(&p.config, "tiny", &err), &err);
    p.format = WT_FORMAT_DIFFUSERS;
    p.dtype = ENG_DTYPE_F32;
    p.seed = GOLDEN_SEED;
    p.path = path;
    CHECK_OK(wt_make_checkpoint(&p, &err), &err);
    {
        int64_t counts[WT_COMPONENT_COUNT];
        wt_component unet = WT_UNET;
        if (sd_test_patch(&p.config, WT_FORMAT_DIFFUSERS, path, sd_test_pick_1d, sd_test_affine,
                          &unet, counts) != 0)
            return 1;
        CHECK_EQ_I64(counts[WT_UNET], N_AFFINE);
    }
    CHECK_OK(wt_model_open(m, path, &err), &err);
    return 0;
}

/* latent (1, 8, 8, 4) NHWC from z[NCHW flat i] = sin(0.37 i); context[j] = cos(0.11 j). */
static void fill_inputs(float *x, float *cx) {
    for (int64_t c = 0; c < LAT_C; c++)
        for (int64_t y = 0; y < LAT_H; y++)
            for (int64_t xx = 0; xx < LAT_W; xx++) {
                const int64_t i = (c * LAT_H + y) * LAT_W + xx;
                x[(y * LAT_W + xx) * LAT_C + c] = (float)sin(0.37 * (double)i);
            }
    for (int64_t j = 0; j < CTX_L * CTX_C; j++)
        cx[j] = (float)cos(0.11 * (double)j);
}

/* Reads the golden: timestep, output shape and values (caller frees *vals). */
static int read_golden(float *t, int64_t shape[4], float **vals) {
    return sd_test_read_golden(GOLDEN_FILE, "timestep", t, "out", shape, vals);
}

static int test_tiny_parity(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_unet *unet = NULL;
    float *want = NULL, t = 0;
    int64_t shape[4] = {0};
    int rc = 1;
    CHECK(ctx != NULL);
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    if (read_golden(&t, shape, &want) != 0) goto done;
    if (shape[0] != 1 || shape[1] != LAT_H || shape[2] != LAT_W || shape[3] != LAT_C) goto done;
    if (open_tiny(&m) != 0) goto done;
    if (sd_unet_load(&unet, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_unet_load: %s\n", err.msg);
        goto done;
    }
    {
        const int64_t lshape[4] = {1, LAT_H, LAT_W, LAT_C}, cshape[3] = {1, CTX_L, CTX_C};
        eng_tensor lat, out, cx;
        float *lp = eng_test_tensor_f32(&lat, 4, lshape, 0, 0, 0);
        float *op = eng_test_tensor_f32(&out, 4, shape, 0, 0, 0);
        float *cp = eng_test_tensor_f32(&cx, 3, cshape, 0, 0, 0);
        int drc = ENG_E_OOM;
        double max_err = 0, max_ref = 0;
        int64_t worst = 0;
        if (lp != NULL && op != NULL && cp != NULL) {
            fill_inputs(lp, cp);
            const uint64_t used = eng_arena_used(eng_alloc_scratch(alloc));
            drc = sd_unet_forward(unet, ctx, NULL, eng_alloc_scratch(alloc), &out, &lat, &t, &cx,
                                  &err);
            if (drc != ENG_OK) fprintf(stderr, "sd_unet_forward: %s\n", err.msg);
            if (eng_arena_used(eng_alloc_scratch(alloc)) != used) {
                fprintf(stderr, "arena not rewound\n");
                drc = ENG_E_INVALID_ARG;
            }
            for (int64_t i = 0; drc == ENG_OK && i < eng_tensor_numel(&out); i++) {
                const double e = fabs((double)op[i] - (double)want[i]);
                if (!(e <= max_err)) max_err = e, worst = i; /* NaN counts as the worst */
                if (fabs(want[i]) > max_ref) max_ref = fabs(want[i]);
            }
            fprintf(stderr,
                    "sd.unet.tiny_parity: max abs error %.3g at %lld (got %.9g, want %.9g), "
                    "max |ref| %.3g\n",
                    max_err, (long long)worst, (double)op[worst], (double)want[worst], max_ref);
        }
        const int guards = lp != NULL && op != NULL && cp != NULL && eng_test_guard_ok(&out) &&
                           eng_test_guard_ok(&lat) && eng_test_guard_ok(&cx);
        free(lp);
        free(op);
        free(cp);
        eng_alloc_scratch_reset(alloc);
        if (drc != ENG_OK || !(max_err <= 1e-4) || !guards) goto done;
    }
    rc = 0;
done:
    sd_unet_destroy(unet);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    free(want);
    return rc;
}

/* Runs n samples (n, 8, 8, 4) with timesteps ts and contexts (n, 77, 32) into out. */
static int run_n(const sd_unet *unet,
                 eng_ctx *ctx,
                 int64_t n,
                 const float *lat,
                 const float *ts,
                 const float *cx,
                 float *out) {
    eng_err err = {0};
    const int64_t ls[4] = {n, LAT_H, LAT_W, LAT_C}, cs[3] = {n, CTX_L, CTX_C};
    eng_tensor lt, ct, ot;
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    CHECK_OK(eng_tensor_init(&lt, (void *)lat, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ls, &err), &err);
    CHECK_OK(eng_tensor_init(&ct, (void *)cx, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, cs, &err), &err);
    CHECK_OK(eng_tensor_init(&ot, out, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ls, &err), &err);
    CHECK_OK(sd_unet_forward(unet, ctx, NULL, eng_alloc_scratch(alloc), &ot, &lt, ts, &ct, &err),
             &err);
    eng_alloc_scratch_reset(alloc);
    return 0;
}

enum { LAT_N = LAT_H * LAT_W * LAT_C, CTX_N = CTX_L * CTX_C };

/* A batch of two (different latents, timesteps and contexts) gives each sample's single run. */
static int test_batch2(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_unet *unet = NULL;
    static float lat[2 * LAT_N], cx[2 * CTX_N], out[2 * LAT_N], one[LAT_N];
    const float ts[2] = {500.0f, 37.0f};
    int rc = 1;
    CHECK(ctx != NULL);
    if (open_tiny(&m) != 0) goto done;
    if (sd_unet_load(&unet, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_unet_load: %s\n", err.msg);
        goto done;
    }
    fill_inputs(lat, cx);
    for (int i = 0; i < LAT_N; i++)
        lat[LAT_N + i] = -0.5f * lat[i];
    for (int i = 0; i < CTX_N; i++)
        cx[CTX_N + i] = 0.25f - cx[i];
    if (run_n(unet, ctx, 2, lat, ts, cx, out) != 0) goto done;
    for (int b = 0; b < 2; b++) {
        if (run_n(unet, ctx, 1, lat + b * LAT_N, ts + b, cx + b * CTX_N, one) != 0) goto done;
        double d = 0;
        for (int i = 0; i < LAT_N; i++) {
            const double e = fabs((double)out[b * LAT_N + i] - (double)one[i]);
            if (!(e <= d)) d = e;
        }
        fprintf(stderr, "batch item %d: max abs difference %.3g from a single run\n", b, d);
        if (!(d <= 1e-5)) goto done;
    }
    {
        double d = 0; /* the two samples differ (the batch is not one sample repeated) */
        for (int i = 0; i < LAT_N; i++)
            d = fmax(d, fabs((double)out[i] - (double)out[LAT_N + i]));
        if (!(d > 1e-3)) goto done;
    }
    rc = 0;
done:
    sd_unet_destroy(unet);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

/* Expects ENG_E_INVALID_ARG with `needle` in the message. */
static int expect_invalid(const sd_unet *unet,
                          eng_ctx *ctx,
                          const int64_t *lshape,
                          const int64_t *cshape,
                          const int64_t *oshape,
                          const char *needle) {
    eng_err err = {0};
    eng_tensor lat, cx, out;
    const float t = 500.0f;
    float *lp = eng_test_tensor_f32(&lat, 4, lshape, 0, 0, 0);
    float *cp = eng_test_tensor_f32(&cx, 3, cshape, 0, 0, 0);
    float *op = eng_test_tensor_f32(&out, 4, oshape, 0, 0, 0);
    int rc = ENG_OK;
    if (lp != NULL && cp != NULL && op != NULL)
        rc = sd_unet_forward(unet, ctx, NULL, eng_alloc_scratch(eng_ctx_alloc(ctx, ENG_DEVICE_CPU)),
                             &out, &lat, &t, &cx, &err);
    const int ok = lp != NULL && cp != NULL && op != NULL;
    free(lp);
    free(cp);
    free(op);
    CHECK(ok);
    CHECK_EQ_I64(rc, ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, needle);
    fprintf(stderr, "ok: %s\n", err.msg);
    return 0;
}

static int test_errors(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(1);
    wt_model *m = NULL;
    sd_unet *unet = NULL;
    int rc = 1;
    CHECK(ctx != NULL);
    if (open_tiny(&m) != 0) goto done;
    if (sd_unet_load(&unet, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_unet_load: %s\n", err.msg);
        goto done;
    }
    {
        const int64_t lat3[4] = {1, 8, 8, 3}, lat4[4] = {1, 8, 8, 4}, out4[4] = {1, 8, 8, 4};
        const int64_t ctx32[3] = {1, 77, 32}, ctx48[3] = {1, 77, 48}, out_big[4] = {1, 16, 16, 4};
        const int64_t lat_odd[4] = {1, 7, 8, 4};
        if (expect_invalid(unet, ctx, lat3, ctx32, out4, "latent is f32[1,8,8,3]") != 0) goto done;
        if (expect_invalid(unet, ctx, lat_odd, ctx32, out4, "multiples of 2") != 0) goto done;
        if (expect_invalid(unet, ctx, lat4, ctx48, out4, "context is f32[1,77,48]") != 0) goto done;
        if (expect_invalid(unet, ctx, lat4, ctx32, out_big, "out is f32[1,16,16,4]") != 0)
            goto done;
        if (expect_invalid(unet, ctx, lat4, ctx32, out_big, "expected f32[1,8,8,4]") != 0)
            goto done;
    }
    rc = 0;
done:
    sd_unet_destroy(unet);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"tiny_parity", test_tiny_parity}, {"errors", test_errors}, {"batch2", test_batch2}};
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
