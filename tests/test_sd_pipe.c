/* test_sd_pipe.c: the whole pipeline (diffusion/sd_pipe.h) against diffusers.
 *
 * The checkpoint: `gen make-checkpoint --arch tiny --format diffusers --dtype f32 --seed 5` with
 * the CLIP tokenizer files, patched as tests/gen_sd_pipe_goldens.py patches it (UNet 1-D tensors
 * and text encoder 1-D tensors affine, conv_out.weight x 25, attn2.to_out.0.weight x 20). The golden
 * (tests/golden/sd_pipe_tiny.txt) holds diffusers' images (8-bit) for 15 sampler / schedule /
 * prediction / CFG / img2img settings, with the noise of the engine's Philox streams, and 3 of
 * the SD 2.x shaped tiny-sd2 (cases sd2_*: OpenCLIP padding with "!", linear projections,
 * v-prediction from its scheduler config).
 *
 * cond: sd_pipe_encode_prompt of the A1111-weighted prompt vs transformers + A1111's weighting
 *   (first 10 rows): max abs error <= 1e-4.
 * <case>: the generated 32x32 image vs diffusers': PSNR >= 45 dB.
 * ldm_format: the euler case from the same checkpoint written as one ldm file (vocabulary from
 *   the data folder): the same PSNR bound.
 * batch: a batch of 2 gives image 0 = the batch-1 image of the seed, image 1 = that of seed + 1.
 * cli: the gen command (see test_cli).
 * errors: bad sizes, steps, batch, clip skip, strength; a single file without a vocabulary; a
 *   .ckpt; a CUDA device that is not attached, an f16 pipeline on the CPU: each a named ENG_E_*
 *   error. (The CUDA pipeline itself: tests/test_sd_device.c.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "sd_pipe.h"
#include "sd_test_patch.h"
#include "wt.h"

#define GOLDEN_FILE   ENG_TEST_SOURCE_DIR "/golden/sd_pipe_tiny.txt"
#define CKPT_SEED     5u
#define CONV_OUT_GAIN 25.0f
#define ATTN2_GAIN    20.0f
#define N_ATTN2       4
#define MIN_PSNR      45.0

typedef struct golden_case {
    char name[32], sampler[16], schedule[16], prediction[16];
    int steps;
    double cfg, strength;
    uint8_t *rgb; /* (H, W, 3) */
} golden_case;

typedef struct golden {
    uint64_t seed;
    int w, h;
    char prompt[256], negative[256];
    int cond_rows, cond_c;
    float *cond;
    golden_case cases[32];
    int n_cases;
} golden;

static void golden_free(golden *g) {
    free(g->cond);
    for (int i = 0; i < g->n_cases; i++)
        free(g->cases[i].rgb);
    memset(g, 0, sizeof *g);
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int golden_load(golden *g) {
    FILE *f = fopen(GOLDEN_FILE, "r");
    static char line[4096];
    memset(g, 0, sizeof *g);
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#') continue;
        if (strncmp(line, "seed ", 5) == 0) g->seed = strtoull(line + 5, NULL, 10);
        if (strncmp(line, "size ", 5) == 0) sscanf(line + 5, "%d %d", &g->w, &g->h);
        if (strncmp(line, "prompt ", 7) == 0)
            snprintf(g->prompt, sizeof g->prompt, "%.255s", line + 7);
        if (strncmp(line, "negative ", 9) == 0)
            snprintf(g->negative, sizeof g->negative, "%.255s", line + 9);
        if (strncmp(line, "cond ", 5) == 0) {
            sscanf(line + 5, "%d %d", &g->cond_rows, &g->cond_c);
            const int64_t n = (int64_t)g->cond_rows * g->cond_c;
            g->cond = (float *)malloc((size_t)n * sizeof *g->cond);
            for (int64_t i = 0; g->cond != NULL && i < n; i++)
                if (fscanf(f, "%f", &g->cond[i]) != 1) break;
        }
        if (strncmp(line, "case ", 5) == 0 && g->n_cases < 32) {
            golden_case *c = &g->cases[g->n_cases++];
            sscanf(line + 5, "%31s %15s %15s %15s %d %lf %lf", c->name, c->sampler, c->schedule,
                   c->prediction, &c->steps, &c->cfg, &c->strength);
            const int64_t n = (int64_t)g->w * g->h * 3;
            int64_t got = 0;
            c->rgb = (uint8_t *)malloc((size_t)n);
            while (c->rgb != NULL && fgets(line, sizeof line, f) != NULL &&
                   strncmp(line, "end", 3) != 0)
                for (const char *p = line; p[0] != '\0' && p[1] != '\0' && got < n; p += 2) {
                    const int hi = hexval(p[0]), lo = hexval(p[1]);
                    if (hi < 0 || lo < 0) break;
                    c->rgb[got++] = (uint8_t)(hi * 16 + lo);
                }
            if (got != n) {
                fprintf(stderr, "golden case %s: %lld of %lld bytes\n", c->name, (long long)got,
                        (long long)n);
                fclose(f);
                return 1;
            }
        }
    }
    fclose(f);
    CHECK(g->w > 0 && g->h > 0 && g->cond != NULL && g->n_cases > 0);
    return 0;
}

/* ---- the checkpoint ---------------------------------------------------------------------------- */

static int pick_pipe(const wt_plan_entry *e, const char *name, void *user) {
    (void)user;
    if (e->component == WT_TEXT_ENCODER) return e->ndim == 1;
    if (e->component != WT_UNET) return 0;
    const size_t n = strlen(name);
    return e->ndim == 1 || strcmp(name, "conv_out.weight") == 0 ||
           (n > 21 && strcmp(name + n - 21, "attn2.to_out.0.weight") == 0);
}

static float value_pipe(const char *name, int64_t i, float old, void *user) {
    const size_t n = strlen(name);
    if (strcmp(name, "conv_out.weight") == 0) return old * CONV_OUT_GAIN;
    if (n > 21 && strcmp(name + n - 21, "attn2.to_out.0.weight") == 0) return old * ATTN2_GAIN;
    return sd_test_affine(name, i, old, user);
}

/* Writes the patched tiny checkpoint of `preset` ("tiny", "tiny-sd2") in `fmt` into the tmpdir;
 * path[cap] gets its path. */
static int make_preset(char *path, size_t cap, wt_format fmt, const char *preset) {
    eng_err err = {0};
    wt_make_params p = {0};
    char tokdir[1024];
    int64_t counts[WT_COMPONENT_COUNT];
    CHECK_OK(wt_sd_config_preset(&p.config, preset, &err), &err);
    snprintf(path, cap, "%s/sd_pipe_%s%s", eng_test_tmpdir(), preset,
             fmt == WT_FORMAT_LDM ? ".safetensors" : "");
    snprintf(tokdir, sizeof tokdir, "%s/clip", eng_test_data_dir());
    p.format = fmt;
    p.dtype = ENG_DTYPE_F32;
    p.seed = CKPT_SEED;
    p.path = path;
    p.tokenizer_dir = fmt == WT_FORMAT_DIFFUSERS ? tokdir : NULL;
    CHECK_OK(wt_make_checkpoint(&p, &err), &err);
    if (sd_test_patch(&p.config, fmt, path, pick_pipe, value_pipe, NULL, counts) != 0) return 1;
    CHECK_EQ_I64(counts[WT_UNET], 125 + 1 + N_ATTN2); /* the script asserts the same */
    CHECK_EQ_I64(counts[WT_TEXT_ENCODER], 22);
    return 0;
}

static int make_tiny(char *path, size_t cap, wt_format fmt) {
    return make_preset(path, cap, fmt, "tiny");
}

static int
open_preset(sd_pipe **pipe, eng_ctx *ctx, wt_format fmt, int prediction, const char *preset) {
    static char path[700], vocab[1024];
    eng_err err = {0};
    sd_pipe_params pp;
    if (make_preset(path, sizeof path, fmt, preset) != 0) return 1;
    sd_pipe_params_init(&pp);
    pp.model = path;
    pp.prediction = prediction;
    if (fmt == WT_FORMAT_LDM) {
        snprintf(vocab, sizeof vocab, "%s/clip/bpe_simple_vocab_16e6.txt.gz", eng_test_data_dir());
        pp.vocab = vocab;
    }
    CHECK_OK(sd_pipe_load(pipe, ctx, &pp, &err), &err);
    return 0;
}

static int open_pipe(sd_pipe **pipe, eng_ctx *ctx, wt_format fmt, int prediction) {
    return open_preset(pipe, ctx, fmt, prediction, "tiny");
}

/* The init image of the golden script: 0.5 + 0.4 sin(0.3 x + 0.2 y + 2.1 c). */
static float *init_image(int w, int h) {
    float *px = (float *)malloc((size_t)w * (size_t)h * 3 * sizeof *px);
    for (int y = 0; px != NULL && y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
                    (float)(0.5 + 0.4 * sin(0.3 * x + 0.2 * y + 2.1 * c));
    return px;
}

static double psnr_u8(const float *got, const uint8_t *want, int64_t n) {
    double se = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)got[i] - (double)want[i] / 255.0;
        se += d * d;
    }
    return se > 0 ? 10.0 * log10((double)n / se) : 99.0;
}

static int run_case(const char *name, wt_format fmt) {
    golden g;
    eng_err err = {0};
    sd_pipe *pipe = NULL;
    sd_images im = {0};
    float *init = NULL;
    int rc = 1;
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    if (golden_load(&g) != 0) goto done;
    const golden_case *c = NULL;
    for (int i = 0; i < g.n_cases; i++)
        if (strcmp(g.cases[i].name, name) == 0) c = &g.cases[i];
    if (c == NULL) {
        fprintf(stderr, "no golden case %s\n", name);
        goto done;
    }
    const int pred = strcmp(c->prediction, "v_prediction") == 0 ? SD_PRED_V : SD_PRED_EPSILON;
    const char *preset = strncmp(name, "sd2_", 4) == 0 ? "tiny-sd2" : "tiny";
    if (open_preset(&pipe, ctx, fmt, pred, preset) != 0) goto done;
    sd_gen_params gp;
    sd_gen_params_init(&gp);
    gp.prompt = g.prompt;
    gp.negative = g.negative;
    gp.steps = c->steps;
    gp.cfg_scale = c->cfg;
    gp.seed = g.seed;
    gp.width = g.w;
    gp.height = g.h;
    if (sd_sampler_parse(&gp.sampler, c->sampler, &err) != ENG_OK ||
        sd_schedule_parse(&gp.schedule, c->schedule, &err) != ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    if (c->strength > 0) {
        if ((init = init_image(g.w, g.h)) == NULL) goto done;
        gp.init_image = init;
        gp.strength = c->strength;
    }
    if (sd_pipe_generate(pipe, &gp, &im, &err) != ENG_OK) {
        fprintf(stderr, "sd_pipe_generate: %s\n", err.msg);
        goto done;
    }
    const double p = psnr_u8(im.pixels, c->rgb, (int64_t)g.w * g.h * 3);
    fprintf(stderr, "sd.pipe.%s (%s): PSNR %.2f dB vs diffusers (bound %.0f), %lld UNet passes\n",
            name, wt_format_name(fmt), p, MIN_PSNR, (long long)im.calls);
    if (!(p >= MIN_PSNR)) goto done;
    rc = 0;
done:
    sd_images_free(&im);
    free(init);
    sd_pipe_destroy(pipe);
    golden_free(&g);
    eng_ctx_destroy(ctx);
    return rc;
}

#define CASE(n)                                                                                    \
    static int test_##n(void) {                                                                    \
        return run_case(#n, WT_FORMAT_DIFFUSERS);                                                  \
    }
CASE(euler)
CASE(euler_karras)
CASE(euler_a)
CASE(heun)
CASE(ddim)
CASE(dpmpp_2m)
CASE(dpmpp_2m_karras)
CASE(lcm)
CASE(euler_v)
CASE(dpmpp_2m_karras_v)
CASE(ddim_v)
CASE(nocfg_euler)
CASE(img2img_euler)
CASE(img2img_ddim)
CASE(img2img_dpmpp_2m)
CASE(sd2_ddim_v)
CASE(sd2_euler_a_v)
CASE(sd2_dpmpp_2m_karras_v)
#undef CASE

static int test_ldm_format(void) {
    return run_case("euler", WT_FORMAT_LDM);
}

static int test_cond(void) {
    golden g;
    eng_err err = {0};
    sd_pipe *pipe = NULL;
    float *z = NULL;
    int rc = 1;
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    if (golden_load(&g) != 0) goto done;
    if (open_pipe(&pipe, ctx, WT_FORMAT_DIFFUSERS, -1) != 0) goto done;
    {
        eng_tensor t;
        const int64_t shape[3] = {1, 77, g.cond_c};
        int64_t cut = -1;
        if ((z = eng_test_tensor_f32(&t, 3, shape, 0, 0, 0)) == NULL) goto done;
        if (sd_pipe_encode_prompt(pipe, &t, g.prompt, 1, 1, &cut, &err) != ENG_OK) {
            fprintf(stderr, "%s\n", err.msg);
            goto done;
        }
        double max_err = 0;
        int64_t worst = 0;
        for (int64_t i = 0; i < (int64_t)g.cond_rows * g.cond_c; i++) {
            const double e = fabs((double)z[i] - (double)g.cond[i]);
            if (!(e <= max_err)) max_err = e, worst = i;
        }
        fprintf(stderr,
                "sd.pipe.cond: max abs error %.3g at %lld (got %.7g, want %.7g; bound 1e-4)\n",
                max_err, (long long)worst, (double)z[worst], (double)g.cond[worst]);
        if (!(max_err <= 1e-4) || cut != 0 || !eng_test_guard_ok(&t)) goto done;
        /* weights off: "(red:1.3)" is read as text, a different conditioning */
        if (sd_pipe_encode_prompt(pipe, &t, g.prompt, 1, 0, &cut, &err) != ENG_OK) goto done;
        double diff = 0;
        for (int64_t i = 0; i < (int64_t)g.cond_rows * g.cond_c; i++)
            diff = fmax(diff, fabs((double)z[i] - (double)g.cond[i]));
        if (!(diff > 1e-2)) goto done;
        /* a prompt of 100 words is cut to 75 tokens, and says so */
        char longp[1024] = "";
        for (int i = 0; i < 100; i++)
            strcat(longp, "fox ");
        if (sd_pipe_encode_prompt(pipe, &t, longp, 1, 1, &cut, &err) != ENG_OK || cut != 25)
            goto done;
    }
    rc = 0;
done:
    free(z);
    sd_pipe_destroy(pipe);
    golden_free(&g);
    eng_ctx_destroy(ctx);
    return rc;
}

/* A batch of two: each image is its own seed's batch-1 image. */
static int test_batch(void) {
    eng_err err = {0};
    sd_pipe *pipe = NULL;
    sd_images one = {0}, two = {0};
    int rc = 1;
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    if (open_pipe(&pipe, ctx, WT_FORMAT_DIFFUSERS, -1) != 0) goto done;
    sd_gen_params gp;
    sd_gen_params_init(&gp);
    gp.prompt = "a fox";
    gp.steps = 3;
    gp.width = gp.height = 16;
    gp.seed = 7;
    gp.batch = 2;
    if (sd_pipe_generate(pipe, &gp, &two, &err) != ENG_OK) goto fail;
    gp.batch = 1;
    gp.seed = 8;
    if (sd_pipe_generate(pipe, &gp, &one, &err) != ENG_OK) goto fail;
    const int64_t n = 16 * 16 * 3;
    double md = 0;
    for (int64_t i = 0; i < n; i++)
        md = fmax(md, fabs((double)two.pixels[n + i] - (double)one.pixels[i]));
    fprintf(stderr, "sd.pipe.batch: image 1 vs seed 8 alone: max abs difference %.3g\n", md);
    if (!(md <= 1e-5) || two.batch != 2 || one.batch != 1) goto done;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "%s\n", err.msg);
done:
    sd_images_free(&one);
    sd_images_free(&two);
    sd_pipe_destroy(pipe);
    eng_ctx_destroy(ctx);
    return rc;
}

static int test_errors(void) {
    eng_err err = {0};
    sd_pipe *pipe = NULL;
    sd_images im = {0};
    eng_ctx *ctx = eng_test_ctx(1);
    char path[700];
    CHECK(ctx != NULL);
    CHECK(open_pipe(&pipe, ctx, WT_FORMAT_DIFFUSERS, -1) == 0);
    sd_gen_params gp;
    sd_gen_params_init(&gp);
    gp.steps = 1;
    gp.width = 30, gp.height = 16; /* the tiny model's quantum is 4 */
    CHECK_EQ_I64(sd_pipe_generate(pipe, &gp, &im, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "30x16");
    gp.width = 16;
    gp.steps = 0;
    CHECK_EQ_I64(sd_pipe_generate(pipe, &gp, &im, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "steps 0");
    gp.steps = 1;
    gp.batch = 0;
    CHECK_EQ_I64(sd_pipe_generate(pipe, &gp, &im, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "batch 0");
    gp.batch = 1;
    gp.clip_skip = 9;
    CHECK_EQ_I64(sd_pipe_generate(pipe, &gp, &im, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "clip skip 9");
    gp.clip_skip = 1;
    float px[16 * 16 * 3] = {0};
    gp.init_image = px;
    gp.strength = 0;
    CHECK_EQ_I64(sd_pipe_generate(pipe, &gp, &im, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "strength");
    gp.init_image = NULL;
    gp.prompt = "bad \xff utf-8";
    CHECK(sd_pipe_generate(pipe, &gp, &im, &err) == ENG_E_INVALID_ARG);
    CHECK(im.pixels == NULL);
    sd_pipe_destroy(pipe);

    sd_pipe_params pp;
    sd_pipe_params_init(&pp);
    CHECK(make_tiny(path, sizeof path, WT_FORMAT_LDM) == 0);
    pp.model = path; /* a single file and no vocabulary */
    CHECK_EQ_I64(sd_pipe_load(&pipe, ctx, &pp, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "--vocab");
    CHECK(pipe == NULL);
    pp.device = ENG_DEVICE_CUDA; /* not attached to this context */
    CHECK_EQ_I64(sd_pipe_load(&pipe, ctx, &pp, &err), ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "no cuda device is attached");
    CHECK(pipe == NULL);
    pp.device = ENG_DEVICE_CPU;
    pp.dtype = ENG_DTYPE_F16;
    CHECK_EQ_I64(sd_pipe_load(&pipe, ctx, &pp, &err), ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "dtype f16 on cpu");
    CHECK(pipe == NULL);
    pp.dtype = -1;
    snprintf(path, sizeof path, "%s/model.ckpt", eng_test_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    fputs("PK\x03\x04 not a pickle we would ever open", f);
    fclose(f);
    pp.device = ENG_DEVICE_CPU;
    pp.model = path;
    pp.vocab = "unused";
    CHECK(sd_pipe_load(&pipe, ctx, &pp, &err) != ENG_OK);
    CHECK_CONTAINS(err.msg, "model.ckpt");
    CHECK(pipe == NULL);
    eng_ctx_destroy(ctx);
    return 0;
}

/* Runs a shell command; returns its exit status (-1 when it did not exit). */
static int run_cmd(const char *cmd) {
    const int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The gen CLI (its path in $ENG_TEST_GEN): a batch of 2 with a weighted prompt, a negative
 * prompt, DPM++ 2M Karras: image 2 (seed + 1) has the library's pixels for that seed and A1111's
 * parameters text; --init-noise gives the library's image for those latents; img2img records its
 * strength; bad flags exit 2; --dtype f16 on the CPU exits 1. */
static int test_cli(void) {
    eng_err err = {0};
    sd_pipe *pipe = NULL;
    sd_images im = {0};
    eng_image png = {0};
    char *text = NULL;
    float *noise = NULL;
    static char model[700], cmd[4096], out[800], path[800];
    int rc = 1;
    const char *gen = getenv("ENG_TEST_GEN");
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(gen != NULL && ctx != NULL);
    if (make_tiny(model, sizeof model, WT_FORMAT_DIFFUSERS) != 0) goto done;
    snprintf(out, sizeof out, "%s/cli.png", eng_test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "'%s' -m '%s' -p 'a (red:1.2) fox' -n blurry --steps 3 -W 32 -H 32 -s 7 "
             "--sampling-method dpm++2m --schedule karras -b 2 -o '%s'",
             gen, model, out);
    if (run_cmd(cmd) != 0) goto done;
    snprintf(path, sizeof path, "%s/cli_2.png", eng_test_tmpdir());
    if (eng_image_png_text_get(&text, path, ENG_IMAGE_TEXT_PARAMETERS, &err) != ENG_OK ||
        text == NULL)
        goto fail;
    fprintf(stderr, "parameters: %s\n", text);
    static const char want[] = "a (red:1.2) fox\nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ "
                               "2M Karras, CFG scale: 7, Seed: 8, Size: 32x32, Model hash: ";
    if (strncmp(text, want, strlen(want)) != 0 || strstr(text, ", Model: sd_pipe_tiny,") == NULL)
        goto done;
    /* the same image from the library */
    {
        sd_pipe_params pp;
        sd_pipe_params_init(&pp);
        pp.model = model;
        if (sd_pipe_load(&pipe, ctx, &pp, &err) != ENG_OK) goto fail;
        sd_gen_params gp;
        sd_gen_params_init(&gp);
        gp.prompt = "a (red:1.2) fox";
        gp.negative = "blurry";
        gp.steps = 3;
        gp.width = gp.height = 32;
        gp.seed = 8;
        gp.sampler = SD_SAMPLER_DPMPP_2M;
        gp.schedule = SD_SCHEDULE_KARRAS;
        if (sd_pipe_generate(pipe, &gp, &im, &err) != ENG_OK ||
            eng_image_read(&png, path, 3, &err) != ENG_OK)
            goto fail;
        /* a batch of 2 sums in other orders than a batch of 1 (~1e-5): a byte may round the
         * other way */
        int64_t off = 0;
        for (int64_t i = 0; i < 32 * 32 * 3; i++)
            off += abs((int)png.data[i] - (int)lrintf(im.pixels[i] * 255.0f)) > 1
                       ? 100
                       : png.data[i] != (uint8_t)lrintf(im.pixels[i] * 255.0f);
        if (off > 8) {
            fprintf(stderr, "cli image: %lld bytes differ from the library's\n", (long long)off);
            goto done;
        }
        sd_images_free(&im);
        eng_image_free(&png);
        /* --init-noise: (1, 4, 16, 16) NCHW */
        const int64_t shape[4] = {1, 4, 16, 16};
        if ((noise = (float *)malloc(4 * 16 * 16 * sizeof *noise)) == NULL) goto done;
        for (int64_t i = 0; i < 4 * 16 * 16; i++)
            noise[i] = (float)sin(0.37 * (double)i) * 1.3f;
        const eng_safetensors_entry e = {"latents", NULL, ENG_SAFETENSORS_F32, 4, shape, noise};
        snprintf(path, sizeof path, "%s/noise.safetensors", eng_test_tmpdir());
        if (eng_safetensors_write(path, &e, 1, NULL, 0, &err) != ENG_OK) goto fail;
        snprintf(cmd, sizeof cmd,
                 "'%s' -m '%s' -p 'a fox' --steps 2 -W 32 -H 32 --sampling-method euler "
                 "--init-noise '%s' -o '%s' --no-hash",
                 gen, model, path, out);
        if (run_cmd(cmd) != 0 || eng_image_read(&png, out, 3, &err) != ENG_OK) goto fail;
        float nhwc[4 * 16 * 16];
        for (int64_t c = 0; c < 4; c++)
            for (int64_t k = 0; k < 256; k++)
                nhwc[k * 4 + c] = noise[c * 256 + k];
        gp.prompt = "a fox";
        gp.negative = NULL;
        gp.steps = 2;
        gp.sampler = SD_SAMPLER_EULER;
        gp.schedule = SD_SCHEDULE_NORMAL;
        gp.init_noise = nhwc;
        if (sd_pipe_generate(pipe, &gp, &im, &err) != ENG_OK) goto fail;
        off = 0;
        for (int64_t i = 0; i < 32 * 32 * 3; i++)
            off += png.data[i] != (uint8_t)lrintf(im.pixels[i] * 255.0f);
        if (off != 0) {
            fprintf(stderr, "--init-noise image: %lld bytes differ\n", (long long)off);
            goto done;
        }
    }
    /* img2img from the first image */
    snprintf(path, sizeof path, "%s/i2i.png", eng_test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p 'a fox' --steps 4 -i '%s' --strength 0.5 -o '%s'",
             gen, model, out, path);
    if (run_cmd(cmd) != 0) goto done;
    eng_image_buf_free(text);
    text = NULL;
    if (eng_image_png_text_get(&text, path, ENG_IMAGE_TEXT_PARAMETERS, &err) != ENG_OK ||
        text == NULL || strstr(text, "Denoising strength: 0.5") == NULL)
        goto done;
    /* bad input: exit 2 with the flag named */
    static const char *const bad[] = {"--steps 0",      "--cfg-scale x",   "--sampling-method nope",
                                      "-W 33 -H 32",    "--schedule nope", "--bogus 1",
                                      "--dtype float64"};
    for (int i = 0; i < ENG_TEST_N(bad); i++) {
        snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x %s -o '%s' 2>/dev/null", gen, model, bad[i],
                 path);
        const int st = run_cmd(cmd);
        if (st != 2) {
            fprintf(stderr, "gen %s: exit %d, expected 2\n", bad[i], st);
            goto done;
        }
    }
    snprintf(cmd, sizeof cmd, "'%s' -m '%s/nope' -p x -o '%s' 2>/dev/null", gen, model, path);
    if (run_cmd(cmd) != 1) goto done;
    /* a dtype the CPU does not run: the pipeline refuses it (exit 1) */
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x --dtype f16 -o '%s' 2>/dev/null", gen, model,
             path);
    if (run_cmd(cmd) != 1) goto done;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "%s\n", err.msg);
done:
    eng_image_buf_free(text);
    eng_image_free(&png);
    sd_images_free(&im);
    free(noise);
    sd_pipe_destroy(pipe);
    eng_ctx_destroy(ctx);
    return rc;
}

static const eng_test_case cases[] = {
    {"cond", test_cond},
    {"euler", test_euler},
    {"euler_karras", test_euler_karras},
    {"euler_a", test_euler_a},
    {"heun", test_heun},
    {"ddim", test_ddim},
    {"dpmpp_2m", test_dpmpp_2m},
    {"dpmpp_2m_karras", test_dpmpp_2m_karras},
    {"lcm", test_lcm},
    {"euler_v", test_euler_v},
    {"dpmpp_2m_karras_v", test_dpmpp_2m_karras_v},
    {"ddim_v", test_ddim_v},
    {"nocfg_euler", test_nocfg_euler},
    {"img2img_euler", test_img2img_euler},
    {"img2img_ddim", test_img2img_ddim},
    {"img2img_dpmpp_2m", test_img2img_dpmpp_2m},
    {"sd2_ddim_v", test_sd2_ddim_v},
    {"sd2_euler_a_v", test_sd2_euler_a_v},
    {"sd2_dpmpp_2m_karras_v", test_sd2_dpmpp_2m_karras_v},
    {"ldm_format", test_ldm_format},
    {"batch", test_batch},
    {"errors", test_errors},
    {"cli", test_cli},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
