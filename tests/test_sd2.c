/* test_sd2.c: the SD 2.x path (OpenCLIP text encoder with GELU and fused in_proj in ldm files,
 * UNet with linear proj_in/proj_out, v_prediction config) on the "tiny-sd2" preset, against
 * transformers / diffusers (golden: tests/gen_sd2_goldens.py, tests/golden/sd2_tiny.txt).
 *
 * The checkpoint is the one the golden script builds (`gen make-checkpoint --arch tiny-sd2
 * --dtype f32 --seed 11`), written here in both formats with wt_make_checkpoint; every 1-D tensor
 * of the UNet and the text encoder is overwritten with affine_formula of its diffusers name (in the
 * ldm file through the engine's plan: the q/k/v biases are row slices of the fused in_proj_bias).
 *   preset:              the preset is the SD 2.x family at tiny sizes.
 *   roundtrip_ldm/_diffusers: make-checkpoint -> wt_model_open gives the preset's config back
 *                        (what each format can say: see the cases).
 *   clip_diffusers/_ldm: sd_clip_forward on the golden ids (two prompts padded with id 0, "!", as
 *                        SD 2.x does), clip_skip 1, vs transformers' CLIPTextModel
 *                        last_hidden_state (= ldm's penultimate resblock + ln_final): max abs error
 *                        <= 1e-4.
 *   unet_diffusers/_ldm: one sd_unet_forward, sample[NCHW flat i] = sin(0.37 i), timestep 750,
 *                        context[flat j] = cos(0.11 j) (1, 77, 32), vs diffusers'
 *                        UNet2DConditionModel (use_linear_projection): max abs error <= 1e-4. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "sd_clip.h"
#include "sd_test_patch.h"
#include "sd_unet.h"
#include "wt.h"

#define GOLDEN_FILE ENG_TEST_SOURCE_DIR "/golden/sd2_tiny.txt"
#define GOLDEN_SEED 11u /* the golden script's SEED */
#define TEXT_B      2
#define TEXT_L      77
#define TEXT_C      32
#define LAT_C       4
#define LAT_H       8
#define LAT_W       8
#define N_UNET_1D   125  /* 1-D tensors patched (the script asserts the same counts) */
#define N_TEXT_1D   22   /* 10 per layer (q/k/v biases counted apart) + final_layer_norm */
#define ATOL        1e-4 /* f32 both sides; the references sum in other orders */

typedef struct golden {
    int32_t ids[TEXT_B * TEXT_L];
    float text[TEXT_B * TEXT_L * TEXT_C];
    float timestep;
    float unet[LAT_H * LAT_W * LAT_C]; /* (1, 8, 8, 4) NHWC */
} golden;

static golden g_golden;

/* Skips the "#" lines at the top. */
static void skip_comments(FILE *f) {
    for (;;) {
        int c = fgetc(f);
        if (c != '#') {
            if (c != EOF) ungetc(c, f);
            return;
        }
        while ((c = fgetc(f)) != EOF && c != '\n') {
        }
    }
}

static int golden_load(golden *g) {
    int ok = 0;
    unsigned seed = 0;
    long long b = 0, l = 0, c = 0, n = 0, h = 0, w = 0, ch = 0;
    FILE *f = fopen(GOLDEN_FILE, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s (regenerate with tests/gen_sd2_goldens.py)\n", GOLDEN_FILE);
        return 1;
    }
    skip_comments(f);
    if (fscanf(f, " seed %u text batch %lld len %lld hidden %lld", &seed, &b, &l, &c) != 4 ||
        seed != GOLDEN_SEED || b != TEXT_B || l != TEXT_L || c != TEXT_C)
        goto done;
    for (int i = 0; i < TEXT_B; i++) {
        int bi = -1;
        if (fscanf(f, " ids %d", &bi) != 1 || bi != i) goto done;
        for (int j = 0; j < TEXT_L; j++)
            if (fscanf(f, " %d", &g->ids[i * TEXT_L + j]) != 1) goto done;
    }
    char word[16] = {0};
    if (fscanf(f, " %15s", word) != 1 || strcmp(word, "text_out") != 0) goto done;
    for (int i = 0; i < TEXT_B * TEXT_L * TEXT_C; i++)
        if (fscanf(f, " %f", &g->text[i]) != 1) goto done;
    if (fscanf(f, " unet timestep %f out %lld %lld %lld %lld unet_out", &g->timestep, &n, &h, &w,
               &ch) != 5 ||
        n != 1 || h != LAT_H || w != LAT_W || ch != LAT_C)
        goto done;
    for (int i = 0; i < LAT_H * LAT_W * LAT_C; i++)
        if (fscanf(f, " %f", &g->unet[i]) != 1) goto done;
    ok = fscanf(f, " %15s", word) == 1 && strcmp(word, "end") == 0;
done:
    fclose(f);
    if (!ok) fprintf(stderr, "%s: malformed golden\n", GOLDEN_FILE);
    return ok ? 0 : 1;
}

/* Overwrites every canonical 1-D tensor of the UNet and the text encoder with the script's
 * affine formula of its diffusers name, found through the plan of `fmt` (so fused ldm slices
 * get their rows). */
static int patch_affine(const wt_sd_config *cfg, wt_format fmt, const char *path) {
    int64_t counts[WT_COMPONENT_COUNT];
    if (sd_test_patch(cfg, fmt, path, sd_test_pick_1d, sd_test_affine, NULL, counts) != 0) return 1;
    CHECK_EQ_I64(counts[WT_UNET], N_UNET_1D);
    CHECK_EQ_I64(counts[WT_TEXT_ENCODER], N_TEXT_1D);
    return 0;
}

/* Writes the tiny-sd2 checkpoint (f32, seed 11) in `fmt` into the tmpdir, patched (or not). */
static int make_sd2(char *path, size_t cap, wt_format fmt, int patched) {
    eng_err err = {0};
    wt_make_params p = {0};
    CHECK_OK(wt_sd_config_preset(&p.config, "tiny-sd2", &err), &err);
    snprintf(path, cap, "%s/sd2_tiny_%s%s%s", eng_test_tmpdir(), wt_format_name(fmt),
             patched ? "_affine" : "", fmt == WT_FORMAT_LDM ? ".safetensors" : "");
    p.format = fmt;
    p.dtype = ENG_DTYPE_F32;
    p.seed = GOLDEN_SEED;
    p.path = path;
    CHECK_OK(wt_make_checkpoint(&p, &err), &err);
    if (patched && patch_affine(&p.config, fmt, path) != 0) return 1;
    return 0;
}

/* ---- the preset and the round trip --------------------------------------------------------- */
static int test_preset(void) {
    eng_err err = {0};
    wt_sd_config tiny, sd2;
    CHECK_OK(wt_sd_config_preset(&tiny, "tiny", &err), &err);
    CHECK_OK(wt_sd_config_preset(&sd2, "tiny-sd2", &err), &err);
    CHECK_EQ_I64(sd2.family, WT_FAMILY_SD2);
    CHECK(strcmp(sd2.prediction_type, "v_prediction") == 0);
    CHECK_EQ_I64(sd2.unet.linear_proj, 1);
    CHECK_EQ_I64(sd2.unet.context_dim, sd2.text.hidden);
    CHECK_EQ_I64(sd2.text.kind, WT_TEXT_OPENCLIP);
    CHECK_EQ_I64(sd2.text.quick_gelu, 0);
    CHECK_EQ_I64(sd2.text.file_layers, sd2.text.layers + 1);
    CHECK_EQ_I64(sd2.text.proj_dim, sd2.text.hidden);
    /* the sizes are tiny's */
    wt_sd_config t = sd2;
    t.family = tiny.family;
    memcpy(t.prediction_type, tiny.prediction_type, sizeof t.prediction_type);
    t.unet.linear_proj = tiny.unet.linear_proj;
    t.text = tiny.text;
    CHECK(memcmp(&t, &tiny, sizeof t) == 0);
    CHECK_EQ_I64(wt_sd_config_preset(&t, "tiny-sd3", &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "tiny-sd2");
    return 0;
}

static int same_text_compute(const wt_text_config *a, const wt_text_config *b) {
    CHECK_EQ_I64(a->hidden, b->hidden);
    CHECK_EQ_I64(a->layers, b->layers);
    CHECK_EQ_I64(a->heads, b->heads);
    CHECK_EQ_I64(a->intermediate, b->intermediate);
    CHECK_EQ_I64(a->vocab, b->vocab);
    CHECK_EQ_I64(a->max_positions, b->max_positions);
    CHECK_EQ_I64(a->quick_gelu, b->quick_gelu);
    return 0;
}

static int roundtrip(wt_format fmt) {
    eng_err err = {0};
    char path[1024];
    wt_sd_config want;
    wt_model *m = NULL;
    CHECK_OK(wt_sd_config_preset(&want, "tiny-sd2", &err), &err);
    if (make_sd2(path, sizeof path, fmt, 0) != 0) return 1;
    CHECK_OK(wt_model_open(&m, path, &err), &err);
    const wt_sd_config *got = wt_model_config(m);
    printf("%s: family %s, prediction %s, text %s (%d layers, %d in the file, proj %d), unet "
           "heads %d,%d, proj %s\n",
           wt_format_name(fmt), wt_family_name(got->family), got->prediction_type,
           got->text.kind == WT_TEXT_OPENCLIP ? "openclip" : "clip", got->text.layers,
           got->text.file_layers, got->text.proj_dim, got->unet.heads[0], got->unet.heads[1],
           got->unet.linear_proj ? "linear" : "conv");
    const int ok = got->family == want.family &&
                   memcmp(&got->unet, &want.unet, sizeof want.unet) == 0 &&
                   memcmp(&got->vae, &want.vae, sizeof want.vae) == 0 &&
                   same_text_compute(&got->text, &want.text) == 0;
    /* ldm files keep the OpenCLIP layout but cannot say the prediction type (the default);
     * diffusers folders say it (scheduler_config.json) and hold the text encoder in Hugging Face
     * CLIP names with the pipeline's layers only */
    const int fmt_ok = fmt == WT_FORMAT_LDM
                           ? memcmp(&got->text, &want.text, sizeof want.text) == 0 &&
                                 strcmp(got->prediction_type, "epsilon") == 0
                           : strcmp(got->prediction_type, want.prediction_type) == 0;
    wt_model_close(m);
    CHECK(ok);
    CHECK(fmt_ok);
    return 0;
}

static int test_roundtrip_ldm(void) {
    return roundtrip(WT_FORMAT_LDM);
}
static int test_roundtrip_diffusers(void) {
    return roundtrip(WT_FORMAT_DIFFUSERS);
}

/* ---- parity -------------------------------------------------------------------------------- */
static double max_abs_diff(const float *got, const float *want, int64_t n, int64_t *worst) {
    double m = 0.0;
    *worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= m)) m = e, *worst = i; /* NaN counts as the worst */
    }
    return m;
}

static int clip_parity(wt_format fmt) {
    eng_err err = {0};
    char path[1024];
    int rc = 1;
    eng_ctx *ctx = NULL;
    wt_model *m = NULL;
    sd_clip *clip = NULL;
    float *outp = NULL;
    eng_tensor out;
    golden *g = &g_golden;
    if (golden_load(g) != 0) return 1;
    if (make_sd2(path, sizeof path, fmt, 1) != 0) return 1;
    if ((ctx = eng_test_ctx(2)) == NULL) return 1;
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    if (wt_model_open(&m, path, &err) != ENG_OK ||
        sd_clip_create(&clip, m, alloc, &err) != ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    const wt_text_config *cfg = sd_clip_config(clip);
    if (cfg->hidden != TEXT_C || cfg->heads != 2 || cfg->layers != 2 || cfg->quick_gelu != 0) {
        fprintf(stderr, "unexpected config: hidden %d heads %d layers %d quick_gelu %d\n",
                cfg->hidden, cfg->heads, cfg->layers, cfg->quick_gelu);
        goto done;
    }
    const int64_t shape[3] = {TEXT_B, TEXT_L, TEXT_C};
    if ((outp = eng_test_tensor_f32(&out, 3, shape, 0, 0.0f, 0.0f)) == NULL) goto done;
    if (sd_clip_forward(clip, ctx, NULL, eng_alloc_scratch(alloc), &out, g->ids, TEXT_B, 1, &err) !=
        ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    eng_alloc_scratch_reset(alloc);
    if (!eng_test_guard_ok(&out)) {
        fprintf(stderr, "write past the output\n");
        goto done;
    }
    int64_t wi = 0;
    const double worst = max_abs_diff(outp, g->text, TEXT_B * TEXT_L * TEXT_C, &wi);
    printf("sd2 clip %s: max abs error %.3g at [%lld, %lld, %lld] (got %.9g, reference %.9g), "
           "tolerance %.0e\n",
           wt_format_name(fmt), worst, (long long)(wi / (TEXT_L * TEXT_C)),
           (long long)(wi / TEXT_C % TEXT_L), (long long)(wi % TEXT_C), (double)outp[wi],
           (double)g->text[wi], ATOL);
    rc = worst <= ATOL ? 0 : 1;
done:
    free(outp);
    sd_clip_destroy(clip);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

static int test_clip_diffusers(void) {
    return clip_parity(WT_FORMAT_DIFFUSERS);
}
/* The ldm file: q/k/v from the fused in_proj, 3 resblocks of which the first 2 run. */
static int test_clip_ldm(void) {
    return clip_parity(WT_FORMAT_LDM);
}

static int unet_parity(wt_format fmt) {
    eng_err err = {0};
    char path[1024];
    int rc = 1;
    eng_ctx *ctx = NULL;
    wt_model *m = NULL;
    sd_unet *unet = NULL;
    float *lp = NULL, *op = NULL, *cp = NULL;
    eng_tensor lat, out, cx;
    golden *g = &g_golden;
    if (golden_load(g) != 0) return 1;
    if (make_sd2(path, sizeof path, fmt, 1) != 0) return 1;
    if ((ctx = eng_test_ctx(2)) == NULL) return 1;
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    if (wt_model_open(&m, path, &err) != ENG_OK || sd_unet_load(&unet, m, ctx, &err) != ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    if (!sd_unet_config(unet)->linear_proj) {
        fprintf(stderr, "expected a linear proj_in/proj_out UNet\n");
        goto done;
    }
    const int64_t lshape[4] = {1, LAT_H, LAT_W, LAT_C}, cshape[3] = {1, TEXT_L, TEXT_C};
    lp = eng_test_tensor_f32(&lat, 4, lshape, 0, 0, 0);
    op = eng_test_tensor_f32(&out, 4, lshape, 0, 0, 0);
    cp = eng_test_tensor_f32(&cx, 3, cshape, 0, 0, 0);
    if (lp == NULL || op == NULL || cp == NULL) goto done;
    /* latent (1, 8, 8, 4) NHWC from z[NCHW flat i] = sin(0.37 i); context[j] = cos(0.11 j) */
    for (int64_t c = 0; c < LAT_C; c++)
        for (int64_t y = 0; y < LAT_H; y++)
            for (int64_t x = 0; x < LAT_W; x++)
                lp[(y * LAT_W + x) * LAT_C + c] =
                    (float)sin(0.37 * (double)((c * LAT_H + y) * LAT_W + x));
    for (int64_t j = 0; j < TEXT_L * TEXT_C; j++)
        cp[j] = (float)cos(0.11 * (double)j);
    if (sd_unet_forward(unet, ctx, NULL, eng_alloc_scratch(alloc), &out, &lat, &g->timestep, &cx,
                        &err) != ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    eng_alloc_scratch_reset(alloc);
    if (!eng_test_guard_ok(&out) || !eng_test_guard_ok(&lat) || !eng_test_guard_ok(&cx)) {
        fprintf(stderr, "write past a tensor\n");
        goto done;
    }
    int64_t wi = 0;
    const double worst = max_abs_diff(op, g->unet, LAT_H * LAT_W * LAT_C, &wi);
    printf("sd2 unet %s: max abs error %.3g at NHWC %lld (got %.9g, reference %.9g), tolerance "
           "%.0e\n",
           wt_format_name(fmt), worst, (long long)wi, (double)op[wi], (double)g->unet[wi], ATOL);
    rc = worst <= ATOL ? 0 : 1;
done:
    free(lp);
    free(op);
    free(cp);
    sd_unet_destroy(unet);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

static int test_unet_diffusers(void) {
    return unet_parity(WT_FORMAT_DIFFUSERS);
}
static int test_unet_ldm(void) {
    return unet_parity(WT_FORMAT_LDM);
}

static const eng_test_case cases[] = {
    {"preset", test_preset},
    {"roundtrip_ldm", test_roundtrip_ldm},
    {"roundtrip_diffusers", test_roundtrip_diffusers},
    {"clip_diffusers", test_clip_diffusers},
    {"clip_ldm", test_clip_ldm},
    {"unet_diffusers", test_unet_diffusers},
    {"unet_ldm", test_unet_ldm},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
