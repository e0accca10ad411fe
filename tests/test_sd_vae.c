/* test_sd_vae.c: the VAE decoder (diffusion/sd_vae.h) against diffusers.
 *
 * tiny_parity: writes the tiny random checkpoint (diffusers format, f32, seed 1: the same one
 * tests/gen_sd_vae_goldens.py builds with `gen make-checkpoint`), decodes the latent
 * z[i] = (float)sin(0.37 i) over the NCHW flat index of (1, 4, 8, 8), divided by the golden's
 * scale (0.18215), and compares the (1, 16, 16, 3) NHWC image with diffusers AutoencoderKL's
 * (tests/golden/sd_vae_tiny.txt): max abs error <= 1e-4.
 * errors: wrong latent channels, wrong image shape, bad scale (ENG_E_INVALID_ARG, named). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "sd_vae.h"
#include "wt.h"

#define GOLDEN_FILE ENG_TEST_SOURCE_DIR "/golden/sd_vae_tiny.txt"
#define GOLDEN_SEED 1u
#define LAT_C       4
#define LAT_H       8
#define LAT_W       8

/* Writes the tiny f32 checkpoint (seed 1) in `fmt` and opens it. */
static int open_tiny_fmt(wt_model **m, wt_format fmt) {
    eng_err err = {0};
    wt_make_params p = {0};
    static char path[600];
    snprintf(path, sizeof path, "%s/sd_vae_tiny%s", eng_test_tmpdir(),
             fmt == WT_FORMAT_LDM ? ".safetensors" : "");
    CHECK_OK(wt_sd_config_preset(&p.config, "tiny", &err), &err);
    p.format = fmt;
    p.dtype = ENG_DTYPE_F32;
    p.seed = GOLDEN_SEED;
    p.path = path;
    CHECK_OK(wt_make_checkpoint(&p, &err), &err);
    CHECK_OK(wt_model_open(m, path, &err), &err);
    return 0;
}

static int open_tiny(wt_model **m) {
    return open_tiny_fmt(m, WT_FORMAT_DIFFUSERS);
}

/* latent (1, 8, 8, 4) NHWC from z[NCHW flat i] = sin(0.37 i). */
static void fill_latent(float *x) {
    for (int64_t c = 0; c < LAT_C; c++)
        for (int64_t y = 0; y < LAT_H; y++)
            for (int64_t xx = 0; xx < LAT_W; xx++) {
                const int64_t i = (c * LAT_H + y) * LAT_W + xx;
                x[(y * LAT_W + xx) * LAT_C + c] = (float)sin(0.37 * (double)i);
            }
}

/* Reads the golden: scale, image shape and values (caller frees *vals). */
static int read_golden(float *scale, int64_t shape[4], float **vals) {
    FILE *f = fopen(GOLDEN_FILE, "r");
    char line[512];
    int64_t n = 0, got = 0;
    float *v = NULL;
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#') continue;
        if (strncmp(line, "scale ", 6) == 0) *scale = strtof(line + 6, NULL);
        if (strncmp(line, "image ", 6) == 0) {
            long long a, b, c, d;
            if (sscanf(line + 6, "%lld %lld %lld %lld", &a, &b, &c, &d) != 4) break;
            shape[0] = a, shape[1] = b, shape[2] = c, shape[3] = d;
            n = a * b * c * d;
            v = malloc((size_t)n * sizeof *v);
            if (v == NULL) break;
            while (got < n && fscanf(f, "%f", &v[got]) == 1)
                got++;
            break;
        }
    }
    fclose(f);
    if (v == NULL || got != n || n == 0) {
        free(v);
        fprintf(stderr, "%s: malformed (%lld of %lld values)\n", GOLDEN_FILE, (long long)got,
                (long long)n);
        return 1;
    }
    *vals = v;
    return 0;
}

/* Decodes n latents (n, 8, 8, 4) NHWC at `lat` into `img` (n, 16, 16, 3), scale 0.18215. */
static int decode_n(const sd_vae *vae, eng_ctx *ctx, int64_t n, const float *lat, float *img) {
    eng_err err = {0};
    const int64_t lshape[4] = {n, LAT_H, LAT_W, LAT_C}, ishape[4] = {n, 2 * LAT_H, 2 * LAT_W, 3};
    eng_tensor lt, it;
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    CHECK_OK(eng_tensor_init(&lt, (void *)lat, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, lshape, &err),
             &err);
    CHECK_OK(eng_tensor_init(&it, img, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ishape, &err), &err);
    const uint64_t used = eng_arena_used(eng_alloc_scratch(alloc));
    CHECK_OK(
        sd_vae_decode(vae, ctx, NULL, eng_alloc_scratch(alloc), &it, &lt, SD_VAE_SCALE_SD1, &err),
        &err);
    CHECK_EQ_I64(eng_arena_used(eng_alloc_scratch(alloc)), used); /* rewound by the decode */
    eng_alloc_scratch_reset(alloc);
    return 0;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= m)) m = e; /* NaN wins */
    }
    return m;
}

enum { LAT_N = LAT_H * LAT_W * LAT_C, IMG_N = 4 * LAT_H * LAT_W * 3 };

/* A batch of two ([z, -0.5 z]) decodes like each latent alone (attention stays per image). */
static int test_batch2(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_vae *vae = NULL;
    static float lat[2 * LAT_N], img[2 * IMG_N], one[IMG_N];
    int rc = 1;
    CHECK(ctx != NULL);
    if (open_tiny(&m) != 0) goto done;
    if (sd_vae_load(&vae, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_vae_load: %s\n", err.msg);
        goto done;
    }
    fill_latent(lat);
    for (int i = 0; i < LAT_N; i++)
        lat[LAT_N + i] = -0.5f * lat[i];
    if (decode_n(vae, ctx, 2, lat, img) != 0) goto done;
    for (int b = 0; b < 2; b++) {
        if (decode_n(vae, ctx, 1, lat + b * LAT_N, one) != 0) goto done;
        const double d = max_abs_diff(img + b * IMG_N, one, IMG_N);
        fprintf(stderr, "batch item %d: max abs difference %.3g from a single decode\n", b, d);
        if (!(d <= 1e-5)) goto done;
    }
    rc = 0;
done:
    sd_vae_destroy(vae);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

/* The same weights written in the ldm single-file format (the attention as 1x1 convs) decode
 * to the same image, within the golden's tolerance of diffusers. */
static int test_ldm_format(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_vae *vae = NULL;
    static float lat[LAT_N], img[IMG_N];
    float *want = NULL, scale = 0;
    int64_t shape[4] = {0};
    int rc = 1;
    CHECK(ctx != NULL);
    if (read_golden(&scale, shape, &want) != 0) goto done;
    if (shape[0] * shape[1] * shape[2] * shape[3] != IMG_N || scale != SD_VAE_SCALE_SD1) goto done;
    if (open_tiny_fmt(&m, WT_FORMAT_LDM) != 0) goto done;
    if (sd_vae_load(&vae, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_vae_load: %s\n", err.msg);
        goto done;
    }
    fill_latent(lat);
    if (decode_n(vae, ctx, 1, lat, img) != 0) goto done;
    const double d = max_abs_diff(img, want, IMG_N);
    fprintf(stderr, "ldm checkpoint: max abs error %.3g vs diffusers\n", d);
    if (!(d <= 1e-4)) goto done;
    rc = 0;
done:
    sd_vae_destroy(vae);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    free(want);
    return rc;
}

static int test_tiny_parity(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_vae *vae = NULL;
    float *want = NULL, scale = 0;
    int64_t shape[4] = {0};
    int rc = 1;
    CHECK(ctx != NULL);
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    if (read_golden(&scale, shape, &want) != 0) goto done;
    if (open_tiny(&m) != 0) goto done;
    if (sd_vae_load(&vae, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_vae_load: %s\n", err.msg);
        goto done;
    }
    if (sd_vae_upscale(vae) != 2 || shape[1] != 2 * LAT_H || shape[3] != 3) {
        fprintf(stderr, "unexpected shapes: upscale %lld, golden image %lld x %lld x %lld\n",
                (long long)sd_vae_upscale(vae), (long long)shape[1], (long long)shape[2],
                (long long)shape[3]);
        goto done;
    }
    {
        const int64_t lshape[4] = {1, LAT_H, LAT_W, LAT_C};
        eng_tensor lat, img;
        float *lp = eng_test_tensor_f32(&lat, 4, lshape, 0, 0, 0);
        float *ip = eng_test_tensor_f32(&img, 4, shape, 0, 0, 0);
        if (lp == NULL || ip == NULL) {
            free(lp);
            free(ip);
            goto done;
        }
        fill_latent(lp);
        int drc = sd_vae_decode(vae, ctx, NULL, eng_alloc_scratch(alloc), &img, &lat, scale, &err);
        if (drc != ENG_OK) fprintf(stderr, "sd_vae_decode: %s\n", err.msg);
        double max_err = 0, max_ref = 0;
        int64_t worst = 0;
        const int64_t n = eng_tensor_numel(&img);
        for (int64_t i = 0; drc == ENG_OK && i < n; i++) {
            const double e = fabs((double)ip[i] - (double)want[i]);
            if (!(e <= max_err)) max_err = e, worst = i; /* NaN counts as the worst */
            if (fabs(want[i]) > max_ref) max_ref = fabs(want[i]);
        }
        fprintf(stderr,
                "sd.vae.tiny_parity: max abs error %.3g at %lld (got %.9g, want %.9g), "
                "max |ref| %.3g\n",
                max_err, (long long)worst, (double)ip[worst], (double)want[worst], max_ref);
        const int guards = eng_test_guard_ok(&img) && eng_test_guard_ok(&lat);
        free(lp);
        free(ip);
        eng_alloc_scratch_reset(alloc);
        if (drc != ENG_OK || !(max_err <= 1e-4) || !guards) goto done;
    }
    rc = 0;
done:
    sd_vae_destroy(vae);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    free(want);
    return rc;
}

/* Expects ENG_E_INVALID_ARG with `needle` in the message. */
static int expect_invalid(const sd_vae *vae,
                          eng_ctx *ctx,
                          const int64_t *lshape,
                          const int64_t *ishape,
                          float scale,
                          const char *needle) {
    eng_err err = {0};
    eng_tensor lat, img;
    float *lp = eng_test_tensor_f32(&lat, 4, lshape, 0, 0, 0);
    float *ip = eng_test_tensor_f32(&img, 4, ishape, 0, 0, 0);
    int rc = ENG_OK;
    if (lp != NULL && ip != NULL)
        rc = sd_vae_decode(vae, ctx, NULL, eng_alloc_scratch(eng_ctx_alloc(ctx, ENG_DEVICE_CPU)),
                           &img, &lat, scale, &err);
    free(lp);
    free(ip);
    CHECK(lp != NULL && ip != NULL);
    CHECK_EQ_I64(rc, ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, needle);
    fprintf(stderr, "ok: %s\n", err.msg);
    return 0;
}

static int test_errors(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(1);
    wt_model *m = NULL;
    sd_vae *vae = NULL;
    int rc = 1;
    CHECK(ctx != NULL);
    if (open_tiny(&m) != 0) goto done;
    if (sd_vae_load(&vae, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_vae_load: %s\n", err.msg);
        goto done;
    }
    {
        const int64_t lat3[4] = {1, 8, 8, 3}, lat4[4] = {1, 8, 8, 4}, img[4] = {1, 16, 16, 3};
        const int64_t img_big[4] = {1, 64, 64, 3}, img_rgba[4] = {1, 16, 16, 4};
        if (expect_invalid(vae, ctx, lat3, img, 0.18215f, "latent is f32[1,8,8,3]") != 0) goto done;
        if (expect_invalid(vae, ctx, lat4, img_big, 0.18215f, "expected f32[1,16,16,3]") != 0)
            goto done;
        if (expect_invalid(vae, ctx, lat4, img_rgba, 0.18215f, "image is f32[1,16,16,4]") != 0)
            goto done;
        if (expect_invalid(vae, ctx, lat4, img, 0.0f, "scale") != 0) goto done;
    }
    rc = 0;
done:
    sd_vae_destroy(vae);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {{"tiny_parity", test_tiny_parity},
                                          {"errors", test_errors},
                                          {"batch2", test_batch2},
                                          {"ldm_format", test_ldm_format}};
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
