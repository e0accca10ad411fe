/* test_sd_vae.c: the VAE (diffusion/sd_vae.h) against diffusers.
 *
 * tiny_parity: writes the tiny random checkpoint (diffusers format, f32, seed 1: the same one
 * tests/gen_sd_vae_goldens.py builds with `gen make-checkpoint`), decodes the latent
 * z[i] = (float)sin(0.37 i) over the NCHW flat index of (1, 4, 8, 8), divided by the golden's
 * scale (0.18215), and compares the (1, 16, 16, 3) NHWC image with diffusers AutoencoderKL's
 * (tests/golden/sd_vae_tiny.txt): max abs error <= 1e-4.
 * ldm_format: the same from the ldm single-file checkpoint.
 * errors: wrong latent channels, wrong image shape, bad scale (ENG_E_INVALID_ARG, named).
 * batch2: a batch of two decodes like each latent alone.
 * The golden tests/golden/sd_vae_tiny_affine.txt comes from the same checkpoint with every 1-D
 * VAE tensor (biases, norm affines) overwritten by affine_formula (the script's; this file patches
 * its checkpoints the same way, found through the canonical names, so both formats work):
 * affine_decode: the decode above (max abs error <= 1e-4).
 * encode_parity: encodes the (1, 16, 24, 3) image x[NCHW flat i] = sin(0.21 i): the mean (noise
 * NULL, scale 1) and the sample 0.18215 (mean + std e) with e[NCHW flat i] = 1.5 cos(0.29 i),
 * both against AutoencoderKL.encode's latent_dist (max abs error <= 1e-4).
 * encode_ldm: the same from the ldm single-file checkpoint.
 * encode_batch2: a batch of two images (own noises) encodes like each alone.
 * encode_clamp: quant_conv biases of +40 and -40 on the first two log-variance channels: the
 * sample's distance from the mean is exp(10) e and exp(-15) e (clamped to [-30, 20]).
 * encode_errors: image sides not multiples of 2, wrong channels, wrong latent shape, bad scale
 * (ENG_E_INVALID_ARG, named).
 * parts: decoder-only and encoder-only loads give the same results as a full load and refuse the
 * other direction; bad parts are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "sd_test_patch.h"
#include "sd_vae.h"
#include "wt.h"

#define GOLDEN_FILE ENG_TEST_SOURCE_DIR "/golden/sd_vae_tiny.txt"
#define AFFINE_FILE ENG_TEST_SOURCE_DIR "/golden/sd_vae_tiny_affine.txt"
#define GOLDEN_SEED 1u
#define LAT_C       4
#define LAT_H       8
#define LAT_W       8
#define N_AFFINE    86 /* 1-D tensors of the tiny VAE (the script asserts the same) */
#define ENC_H       16 /* the encoder golden's image (1, 16, 24, 3), latent (1, 8, 12, 4) */
#define ENC_W       24
#define ENC_LH      (ENC_H / 2)
#define ENC_LW      (ENC_W / 2)
#define TOL         1e-4

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
    return sd_test_read_golden(GOLDEN_FILE, "scale", scale, "image", shape, vals);
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

/* ---- the affine-patched checkpoint and the encoder ------------------------------------------- */
/* The script's patch: every 1-D VAE tensor by sd_test_affine; with *(int *)user (clamp),
 * quant_conv.bias elements LAT_C and LAT_C + 1 (the biases of the first two log-variance
 * channels) become +40 and -40. */
static float vae_value(const char *name, int64_t i, float old, void *user) {
    const int clamp = *(const int *)user;
    if (clamp && strcmp(name, "quant_conv.bias") == 0 && i == LAT_C) return 40.0f;
    if (clamp && strcmp(name, "quant_conv.bias") == 0 && i == LAT_C + 1) return -40.0f;
    return sd_test_affine(name, i, old, NULL);
}

static int vae_pick(const wt_plan_entry *e, const char *name, void *user) {
    (void)name, (void)user;
    return e->component == WT_VAE && e->ndim == 1;
}

static int patch_vae(const wt_sd_config *cfg, wt_format fmt, const char *path, int clamp) {
    int64_t counts[WT_COMPONENT_COUNT];
    if (sd_test_patch(cfg, fmt, path, vae_pick, vae_value, &clamp, counts) != 0) return 1;
    CHECK_EQ_I64(counts[WT_VAE], N_AFFINE);
    return 0;
}

/* Writes the tiny f32 checkpoint (seed 1) in `fmt`, patches it and opens it. */
static int open_affine(wt_model **m, wt_format fmt, int clamp) {
    eng_err err = {0};
    wt_make_params p = {0};
    static char path[600];
    snprintf(path, sizeof path, "%s/sd_vae_affine%s%s", eng_test_tmpdir(), clamp ? "_clamp" : "",
             fmt == WT_FORMAT_LDM ? ".safetensors" : "");
    CHECK_OK(wt_sd_config_preset(&p.config, "tiny", &err), &err);
    p.format = fmt;
    p.dtype = ENG_DTYPE_F32;
    p.seed = GOLDEN_SEED;
    p.path = path;
    CHECK_OK(wt_make_checkpoint(&p, &err), &err);
    if (patch_vae(&p.config, fmt, path, clamp) != 0) return 1;
    CHECK_OK(wt_model_open(m, path, &err), &err);
    return 0;
}

/* tests/golden/sd_vae_tiny_affine.txt: the blocks decode, mean, sample (NHWC values). */
enum { G_DECODE, G_MEAN, G_SAMPLE, G_COUNT };
typedef struct affine_golden {
    float scale;
    int64_t n_affine;
    float *v[G_COUNT];
    int64_t shape[G_COUNT][4];
} affine_golden;

static void affine_free(affine_golden *g) {
    for (int b = 0; b < G_COUNT; b++)
        free(g->v[b]);
    memset(g, 0, sizeof *g);
}

static int read_affine(affine_golden *g) {
    static const char *const tags[G_COUNT] = {"decode ", "mean ", "sample "};
    FILE *f = fopen(AFFINE_FILE, "r");
    char line[512];
    int ok = 1;
    memset(g, 0, sizeof *g);
    CHECK(f != NULL);
    while (ok && fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#') continue;
        if (strncmp(line, "scale ", 6) == 0) g->scale = strtof(line + 6, NULL);
        if (strncmp(line, "affine ", 7) == 0) g->n_affine = strtoll(line + 7, NULL, 10);
        for (int b = 0; b < G_COUNT; b++) {
            const size_t tl = strlen(tags[b]);
            long long d[4];
            if (strncmp(line, tags[b], tl) != 0) continue;
            ok = g->v[b] == NULL &&
                 sscanf(line + tl, "%lld %lld %lld %lld", &d[0], &d[1], &d[2], &d[3]) == 4 &&
                 d[0] > 0 && d[1] > 0 && d[2] > 0 && d[3] > 0 &&
                 d[0] * d[1] * d[2] * d[3] < 1000000;
            if (!ok) break;
            const int64_t n = d[0] * d[1] * d[2] * d[3];
            int64_t got = 0;
            for (int k = 0; k < 4; k++)
                g->shape[b][k] = d[k];
            ok = (g->v[b] = malloc((size_t)n * sizeof(float))) != NULL;
            while (ok && got < n && fscanf(f, "%f", &g->v[b][got]) == 1)
                got++;
            ok = ok && got == n;
        }
    }
    fclose(f);
    for (int b = 0; b < G_COUNT; b++)
        ok = ok && g->v[b] != NULL;
    if (!ok || g->n_affine != N_AFFINE || g->scale != SD_VAE_SCALE_SD1) {
        fprintf(stderr, "%s: malformed (or another affine count / scale)\n", AFFINE_FILE);
        affine_free(g);
        return 1;
    }
    return 0;
}

/* The golden's shape of block b is (n, h, w, c). */
static int
golden_shape_is(const affine_golden *g, int b, int64_t n, int64_t h, int64_t w, int64_t c) {
    const int64_t *s = g->shape[b];
    if (s[0] == n && s[1] == h && s[2] == w && s[3] == c) return 1;
    fprintf(stderr,
            "golden block %d is %lld x %lld x %lld x %lld, expected %lld x %lld x %lld x %lld\n", b,
            (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], (long long)n,
            (long long)h, (long long)w, (long long)c);
    return 0;
}

/* image (1, 16, 24, 3) NHWC from x[NCHW flat i] = sin(0.21 i); noise (1, 8, 12, 4) NHWC from
 * e[NCHW flat i] = 1.5 cos(0.29 i) (either may be NULL). */
static void fill_enc_inputs(float *img, float *noise) {
    for (int64_t c = 0; img != NULL && c < 3; c++)
        for (int64_t y = 0; y < ENC_H; y++)
            for (int64_t x = 0; x < ENC_W; x++) {
                const int64_t i = (c * ENC_H + y) * ENC_W + x;
                img[(y * ENC_W + x) * 3 + c] = (float)sin(0.21 * (double)i);
            }
    for (int64_t c = 0; noise != NULL && c < LAT_C; c++)
        for (int64_t y = 0; y < ENC_LH; y++)
            for (int64_t x = 0; x < ENC_LW; x++) {
                const int64_t i = (c * ENC_LH + y) * ENC_LW + x;
                noise[(y * ENC_LW + x) * LAT_C + c] = (float)(1.5 * cos(0.29 * (double)i));
            }
}

enum { ENC_IMG_N = ENC_H * ENC_W * 3, ENC_LAT_N = ENC_LH * ENC_LW * LAT_C };

/* Encodes n images (n, 16, 24, 3) NHWC at `img` into `lat` (n, 8, 12, 4), through a guarded
 * output; checks the arena comes back rewound. */
static int encode_n(const sd_vae *vae,
                    eng_ctx *ctx,
                    int64_t n,
                    const float *img,
                    const float *noise,
                    float scale,
                    float *lat) {
    eng_err err = {0};
    const int64_t ishape[4] = {n, ENC_H, ENC_W, 3}, lshape[4] = {n, ENC_LH, ENC_LW, LAT_C};
    eng_tensor it, lt;
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    float *lp = eng_test_tensor_f32(&lt, 4, lshape, 0, 0, 0);
    CHECK(lp != NULL);
    int rc = eng_tensor_init(&it, (void *)img, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ishape, &err);
    const uint64_t used = eng_arena_used(eng_alloc_scratch(alloc));
    if (rc == ENG_OK)
        rc = sd_vae_encode(vae, ctx, NULL, eng_alloc_scratch(alloc), &lt, &it, noise, scale, &err);
    const int rewound = eng_arena_used(eng_alloc_scratch(alloc)) == used;
    const int guard = eng_test_guard_ok(&lt);
    memcpy(lat, lp, (size_t)(n * ENC_LAT_N) * sizeof *lat);
    free(lp);
    eng_alloc_scratch_reset(alloc);
    CHECK_OK(rc, &err);
    CHECK(rewound && guard);
    return 0;
}

/* Prints the max abs error of got vs want; 1 when it is <= tol (NaN fails). */
static int close_to(const char *what, const float *got, const float *want, int64_t n, double tol) {
    double max_err = 0, max_ref = 0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= max_err)) max_err = e, worst = i; /* NaN counts as the worst */
        if (fabs(want[i]) > max_ref) max_ref = fabs(want[i]);
    }
    fprintf(stderr, "%s: max abs error %.3g at %lld (got %.9g, want %.9g), max |ref| %.3g\n", what,
            max_err, (long long)worst, (double)got[worst], (double)want[worst], max_ref);
    return max_err <= tol;
}

static int test_affine_decode(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_vae *vae = NULL;
    affine_golden g = {0};
    static float lat[LAT_N], img[IMG_N];
    int rc = 1;
    CHECK(ctx != NULL);
    if (read_affine(&g) != 0 || !golden_shape_is(&g, G_DECODE, 1, 2 * LAT_H, 2 * LAT_W, 3))
        goto done;
    if (open_affine(&m, WT_FORMAT_DIFFUSERS, 0) != 0) goto done;
    if (sd_vae_load(&vae, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_vae_load: %s\n", err.msg);
        goto done;
    }
    fill_latent(lat);
    if (decode_n(vae, ctx, 1, lat, img) != 0) goto done;
    if (!close_to("sd.vae.affine_decode", img, g.v[G_DECODE], IMG_N, TOL)) goto done;
    rc = 0;
done:
    sd_vae_destroy(vae);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    affine_free(&g);
    return rc;
}

/* Encodes the golden's image from the patched checkpoint in `fmt`: mean and sample. */
static int encode_vs_golden(wt_format fmt, const char *label) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_vae *vae = NULL;
    affine_golden g = {0};
    static float img[ENC_IMG_N], noise[ENC_LAT_N], lat[ENC_LAT_N];
    char what[96];
    int rc = 1;
    CHECK(ctx != NULL);
    if (read_affine(&g) != 0 || !golden_shape_is(&g, G_MEAN, 1, ENC_LH, ENC_LW, LAT_C) ||
        !golden_shape_is(&g, G_SAMPLE, 1, ENC_LH, ENC_LW, LAT_C))
        goto done;
    if (open_affine(&m, fmt, 0) != 0) goto done;
    if (sd_vae_load(&vae, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_vae_load: %s\n", err.msg);
        goto done;
    }
    if (sd_vae_upscale(vae) != 2) goto done;
    fill_enc_inputs(img, noise);
    if (encode_n(vae, ctx, 1, img, NULL, 1.0f, lat) != 0) goto done;
    snprintf(what, sizeof what, "%s mean (noise NULL, scale 1)", label);
    if (!close_to(what, lat, g.v[G_MEAN], ENC_LAT_N, TOL)) goto done;
    if (encode_n(vae, ctx, 1, img, noise, g.scale, lat) != 0) goto done;
    snprintf(what, sizeof what, "%s sample (noise, scale %g)", label, (double)g.scale);
    if (!close_to(what, lat, g.v[G_SAMPLE], ENC_LAT_N, TOL)) goto done;
    rc = 0;
done:
    sd_vae_destroy(vae);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    affine_free(&g);
    return rc;
}

static int test_encode_parity(void) {
    return encode_vs_golden(WT_FORMAT_DIFFUSERS, "sd.vae.encode_parity");
}

static int test_encode_ldm(void) {
    return encode_vs_golden(WT_FORMAT_LDM, "sd.vae.encode_ldm (ldm checkpoint)");
}

/* A batch of two images [x, -0.5 x] with noises [e, -e] encodes like each image alone. */
static int test_encode_batch2(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_vae *vae = NULL;
    static float img[2 * ENC_IMG_N], noise[2 * ENC_LAT_N], lat[2 * ENC_LAT_N], one[ENC_LAT_N];
    int rc = 1;
    CHECK(ctx != NULL);
    if (open_affine(&m, WT_FORMAT_DIFFUSERS, 0) != 0) goto done;
    if (sd_vae_load(&vae, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_vae_load: %s\n", err.msg);
        goto done;
    }
    fill_enc_inputs(img, noise);
    for (int i = 0; i < ENC_IMG_N; i++)
        img[ENC_IMG_N + i] = -0.5f * img[i];
    for (int i = 0; i < ENC_LAT_N; i++)
        noise[ENC_LAT_N + i] = -noise[i];
    if (encode_n(vae, ctx, 2, img, noise, SD_VAE_SCALE_SD1, lat) != 0) goto done;
    for (int b = 0; b < 2; b++) {
        char what[64];
        if (encode_n(vae, ctx, 1, img + b * ENC_IMG_N, noise + b * ENC_LAT_N, SD_VAE_SCALE_SD1,
                     one) != 0)
            goto done;
        snprintf(what, sizeof what, "batch item %d vs a single encode", b);
        if (!close_to(what, lat + b * ENC_LAT_N, one, ENC_LAT_N, 1e-5)) goto done;
    }
    rc = 0;
done:
    sd_vae_destroy(vae);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

/* quant_conv biases +40 / -40 on log-variance channels 0 and 1: with noise 1 and 1e6 there,
 * sample - mean is exp(20 / 2) and exp(-30 / 2) 1e6 (the clamp), not exp(20) or exp(-20) 1e6. */
static int test_encode_clamp(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_vae *vae = NULL;
    static float img[ENC_IMG_N], noise[ENC_LAT_N], mean[ENC_LAT_N], smp[ENC_LAT_N];
    const double want[LAT_C] = {exp(10.0), exp(-15.0) * 1e6, 0.0, 0.0};
    double worst = 0;
    int rc = 1;
    CHECK(ctx != NULL);
    if (open_affine(&m, WT_FORMAT_DIFFUSERS, 1) != 0) goto done;
    if (sd_vae_load(&vae, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "sd_vae_load: %s\n", err.msg);
        goto done;
    }
    fill_enc_inputs(img, NULL);
    for (int64_t p = 0; p < ENC_LH * ENC_LW; p++) {
        noise[p * LAT_C + 0] = 1.0f;
        noise[p * LAT_C + 1] = 1e6f;
        noise[p * LAT_C + 2] = 0.0f;
        noise[p * LAT_C + 3] = 0.0f;
    }
    if (encode_n(vae, ctx, 1, img, NULL, 1.0f, mean) != 0) goto done;
    if (encode_n(vae, ctx, 1, img, noise, 1.0f, smp) != 0) goto done;
    for (int64_t i = 0; i < ENC_LAT_N; i++) {
        const int64_t c = i % LAT_C;
        const double d = (double)smp[i] - (double)mean[i];
        const double e = c < 2 ? fabs(d / want[c] - 1.0) : fabs(d);
        if (!(e <= worst)) worst = e;
    }
    fprintf(stderr,
            "sd.vae.encode_clamp: sample - mean at pixel 0: %.7g %.7g %.3g %.3g (want %.7g %.7g 0 "
            "0); worst relative error %.3g\n",
            (double)smp[0] - mean[0], (double)smp[1] - mean[1], (double)smp[2] - mean[2],
            (double)smp[3] - mean[3], want[0], want[1], worst);
    if (!(worst <= 1e-5)) goto done;
    rc = 0;
done:
    sd_vae_destroy(vae);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

/* Expects sd_vae_encode to return ENG_E_INVALID_ARG with `needle` in the message. */
static int expect_invalid_enc(const sd_vae *vae,
                              eng_ctx *ctx,
                              const int64_t *ishape,
                              const int64_t *lshape,
                              float scale,
                              const char *needle) {
    eng_err err = {0};
    eng_tensor img, lat;
    float *ip = eng_test_tensor_f32(&img, 4, ishape, 0, 0, 0);
    float *lp = eng_test_tensor_f32(&lat, 4, lshape, 0, 0, 0);
    int rc = ENG_OK;
    if (lp != NULL && ip != NULL)
        rc = sd_vae_encode(vae, ctx, NULL, eng_alloc_scratch(eng_ctx_alloc(ctx, ENG_DEVICE_CPU)),
                           &lat, &img, NULL, scale, &err);
    free(lp);
    free(ip);
    CHECK(lp != NULL && ip != NULL);
    CHECK_EQ_I64(rc, ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, needle);
    fprintf(stderr, "ok: %s\n", err.msg);
    return 0;
}

static int test_encode_errors(void) {
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
        const int64_t img[4] = {1, 16, 16, 3}, lat[4] = {1, 8, 8, 4};
        const int64_t odd[4] = {1, 15, 16, 3}, rgba[4] = {1, 16, 16, 4}, lat3[4] = {1, 8, 8, 3};
        const int64_t lat_big[4] = {1, 16, 16, 4}, lat_n2[4] = {2, 8, 8, 4};
        if (expect_invalid_enc(vae, ctx, odd, lat, 0.18215f, "image is f32[1,15,16,3]") != 0 ||
            expect_invalid_enc(vae, ctx, odd, lat, 0.18215f, "multiples of 2") != 0 ||
            expect_invalid_enc(vae, ctx, rgba, lat, 0.18215f, "image is f32[1,16,16,4]") != 0 ||
            expect_invalid_enc(vae, ctx, img, lat3, 0.18215f,
                               "latent is f32[1,8,8,3] cpu, expected f32[1,8,8,4]") != 0 ||
            expect_invalid_enc(vae, ctx, img, lat_big, 0.18215f, "expected f32[1,8,8,4]") != 0 ||
            expect_invalid_enc(vae, ctx, img, lat_n2, 0.18215f, "latent is f32[2,8,8,4]") != 0 ||
            expect_invalid_enc(vae, ctx, img, lat, 0.0f, "scale") != 0 ||
            expect_invalid_enc(vae, ctx, img, lat, NAN, "scale") != 0)
            goto done;
    }
    rc = 0;
done:
    sd_vae_destroy(vae);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

static uint64_t weights_in_use(eng_ctx *ctx) {
    eng_alloc_stats st;
    eng_alloc_get_stats(eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &st);
    return st.in_use[ENG_LIFE_WEIGHTS];
}

/* Decoder-only and encoder-only loads: the same results as a full load, half the weights each,
 * and each refuses the other direction. */
static int test_parts(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    wt_model *m = NULL;
    sd_vae *full = NULL, *dec = NULL, *enc = NULL, *none = NULL;
    static float lat[LAT_N], img_a[IMG_N], img_b[IMG_N];
    static float eimg[ENC_IMG_N], noise[ENC_LAT_N], elat_a[ENC_LAT_N], elat_b[ENC_LAT_N];
    int rc = 1;
    CHECK(ctx != NULL);
    if (open_affine(&m, WT_FORMAT_DIFFUSERS, 0) != 0) goto done;
    const uint64_t w0 = weights_in_use(ctx);
    if (sd_vae_load(&full, m, ctx, &err) != ENG_OK) goto fail;
    const uint64_t w1 = weights_in_use(ctx);
    if (sd_vae_load_parts(&dec, m, ctx, SD_VAE_DECODER, &err) != ENG_OK) goto fail;
    const uint64_t w2 = weights_in_use(ctx);
    if (sd_vae_load_parts(&enc, m, ctx, SD_VAE_ENCODER, &err) != ENG_OK) goto fail;
    const uint64_t w3 = weights_in_use(ctx);
    fprintf(stderr, "weights: full %llu bytes = decoder %llu + encoder %llu\n",
            (unsigned long long)(w1 - w0), (unsigned long long)(w2 - w1),
            (unsigned long long)(w3 - w2));
    if (w1 - w0 != (w2 - w1) + (w3 - w2) || w2 == w1 || w3 == w2) goto done;
    if (sd_vae_parts(full) != (SD_VAE_DECODER | SD_VAE_ENCODER) ||
        sd_vae_parts(dec) != SD_VAE_DECODER || sd_vae_parts(enc) != SD_VAE_ENCODER)
        goto done;
    fill_latent(lat);
    fill_enc_inputs(eimg, noise);
    if (decode_n(full, ctx, 1, lat, img_a) != 0 || decode_n(dec, ctx, 1, lat, img_b) != 0)
        goto done;
    if (encode_n(full, ctx, 1, eimg, noise, SD_VAE_SCALE_SD1, elat_a) != 0 ||
        encode_n(enc, ctx, 1, eimg, noise, SD_VAE_SCALE_SD1, elat_b) != 0)
        goto done;
    if (memcmp(img_a, img_b, sizeof img_a) != 0 || memcmp(elat_a, elat_b, sizeof elat_a) != 0) {
        fprintf(stderr, "a partial load computes differently from the full one\n");
        goto done;
    }
    {
        const int64_t ls[4] = {1, LAT_H, LAT_W, LAT_C}, is[4] = {1, 2 * LAT_H, 2 * LAT_W, 3};
        eng_tensor lt, it;
        eng_arena *ar = eng_alloc_scratch(eng_ctx_alloc(ctx, ENG_DEVICE_CPU));
        if (eng_tensor_init(&lt, lat, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ls, &err) != ENG_OK ||
            eng_tensor_init(&it, img_a, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, is, &err) != ENG_OK)
            goto fail;
        if (sd_vae_decode(enc, ctx, NULL, ar, &it, &lt, 1.0f, &err) != ENG_E_INVALID_ARG ||
            strstr(err.msg, "without its decoder") == NULL)
            goto fail;
        fprintf(stderr, "ok: %s\n", err.msg);
        if (sd_vae_encode(dec, ctx, NULL, ar, &lt, &it, NULL, 1.0f, &err) != ENG_E_INVALID_ARG ||
            strstr(err.msg, "without its encoder") == NULL)
            goto fail;
        fprintf(stderr, "ok: %s\n", err.msg);
    }
    if (sd_vae_load_parts(&none, m, ctx, 0, &err) != ENG_E_INVALID_ARG ||
        strstr(err.msg, "parts 0x0") == NULL || none != NULL)
        goto fail;
    fprintf(stderr, "ok: %s\n", err.msg);
    if (sd_vae_load_parts(&none, m, ctx, 4, &err) != ENG_E_INVALID_ARG ||
        strstr(err.msg, "parts 0x4") == NULL || none != NULL)
        goto fail;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "test_parts: %s\n", err.msg);
done:
    sd_vae_destroy(full);
    sd_vae_destroy(dec);
    sd_vae_destroy(enc);
    sd_vae_destroy(none);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {{"tiny_parity", test_tiny_parity},
                                          {"errors", test_errors},
                                          {"batch2", test_batch2},
                                          {"ldm_format", test_ldm_format},
                                          {"affine_decode", test_affine_decode},
                                          {"encode_parity", test_encode_parity},
                                          {"encode_ldm", test_encode_ldm},
                                          {"encode_batch2", test_encode_batch2},
                                          {"encode_clamp", test_encode_clamp},
                                          {"encode_errors", test_encode_errors},
                                          {"parts", test_parts}};
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
