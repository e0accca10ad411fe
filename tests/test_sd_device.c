/* test_sd_device.c: the SD modules and the pipeline on a device (sd_clip_create_on,
 * sd_unet_load_on, sd_vae_load_on, sd_pipe_params.device/dtype) against the same on the CPU in
 * f32, on one tiny random checkpoint (diffusers format, f32, seed 5; every 1-D tensor
 * affine-patched, UNet conv_out x 25 and attn2.to_out.0 x 20 as tests/test_sd_pipe.c does, so
 * biases, norm affines and the prompt all matter and the images are not flat).
 *
 * mock_*: a stand-in device (label cpu): an eng_backend of kind CUDA whose blocks are host memory,
 * whose copies are memmove and whose kernels are the CPU twins (f32 only), attached to the
 * context as the CUDA backend is. It takes every device code path of the modules (weights
 * uploaded through eng_op_copy, scratch from the device arena, the timestep upload, the CLIP row
 * gather, the VAE encoder's zero padding and host round trip, the pipeline's per-step
 * transfers) without a GPU, and must give the CPU's results bit for bit (the same twins in the
 * same order). It cannot see a host loop reading device memory (the memory is host memory), nor
 * stream-order or dtype bugs; the cuda_* cases are for those.
 *   mock_modules: CLIP (clip skip 1 and 2), UNet, VAE decode, encode (sample and mean), batch 2,
 *     bit for bit; each pass leaves the device arena and the host staging arena rewound.
 *   mock_pipe: txt2img (Euler a, CFG, weighted prompt, batch 2) and img2img (DDIM, strength 0.6),
 *     32x32, bit for bit; the transfers per UNet call are counted (3 copies: latents up,
 *     timesteps up, prediction down, and none else).
 *   mock_errors: f16 weights on the mock (its twins take f32 only) fail by name; a device
 *     pipeline with a CPU-only dtype is refused; an unattached device is refused by every
 *     loader.
 * cuda_*: the CUDA backend (label gpu; SKIP (77) without a device):
 *   cuda_modules_f32, _f16, _bf16: the mock_modules passes vs the CPU: relative L2 error
 *     ||gpu - cpu|| / ||cpu|| <= 1e-3 in f32 (no TF32: only summation order differs), 1e-2 in
 *     f16, 6e-2 in bf16; the worst element is printed. Calibration: diffusers/transformers on
 *     this checkpoint (torch 2.15, CPU) in f16 / bf16 vs f32 drift by at most 2.9e-3 / 2.3e-2
 *     (UNet, VAE decode; CLIP and the encoder's mean 4e-4 / 4e-3).
 *   cuda_pipe_f32, _f16: the mock_pipe images vs the CPU's: PSNR >= 45 dB (f32), >= 35 dB (f16);
 *     diffusers' f16 pipeline on this checkpoint lands 51-54 dB from its f32 one (bf16: 34-35).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_cuda.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "sd_block.h"
#include "sd_clip.h"
#include "sd_pipe.h"
#include "sd_test_patch.h"
#include "sd_unet.h"
#include "sd_vae.h"
#include "wt.h"

#define CKPT_SEED     5u
#define CONV_OUT_GAIN 25.0f
#define ATTN2_GAIN    20.0f
#define PROMPT        "a (red:1.3) fox in [the] snow"
#define NEGATIVE      "blurry"

/* ---- the mock device --------------------------------------------------------------------------- */

typedef struct mock {
    eng_pool *pool;  /* the context's: the twins split work over it, as on the CPU */
    int64_t copies;  /* copy entries so far */
    int64_t h2d_max; /* largest single copy to the "device", bytes */
} mock;

static int mock_block_take(void *impl, void **out, size_t bytes, eng_err *err) {
    (void)impl;
    const size_t rounded = (bytes + 255u) & ~(size_t)255u; /* aligned_alloc wants a multiple */
    void *p = aligned_alloc(256, rounded);
    if (p == NULL)
        return eng_err_set(err, ENG_E_OOM, "mock block_take: %zu bytes of host memory", bytes);
    *out = p;
    return ENG_OK;
}

static void mock_block_give(void *impl, void *block) {
    (void)impl;
    free(block);
}

static int mock_stream_create(void *impl, eng_stream *out, int priority, eng_err *err) {
    (void)priority, (void)err;
    memset(out, 0, sizeof *out);
    out->device = ENG_DEVICE_CUDA;
    out->pool = ((mock *)impl)->pool;
    out->impl = impl;
    return ENG_OK;
}

static void mock_stream_destroy(void *impl, eng_stream *s) {
    (void)impl, (void)s;
}

static int mock_stream_sync(void *impl, eng_stream *s, eng_err *err) {
    (void)impl, (void)s, (void)err;
    return ENG_OK;
}

static int mock_copy(void *impl,
                     eng_stream *s,
                     void *dst,
                     const void *src,
                     size_t bytes,
                     eng_copy_kind kind,
                     eng_err *err) {
    mock *m = (mock *)impl;
    (void)s, (void)err;
    m->copies++;
    if (kind == ENG_COPY_H2D && (int64_t)bytes > m->h2d_max) m->h2d_max = (int64_t)bytes;
    memmove(dst, src, bytes);
    return ENG_OK;
}

static void mock_destroy(void *impl) {
    free(impl);
}

/* Attaches the mock as the context's CUDA device; *out (may be NULL) gets its counters. */
static int mock_attach(eng_ctx *ctx, mock **out) {
    eng_err err = {0};
    eng_backend *b = (eng_backend *)calloc(1, sizeof *b);
    mock *m = (mock *)calloc(1, sizeof *m);
    if (b == NULL || m == NULL) {
        free(b);
        free(m);
        CHECK(!"out of memory");
    }
    m->pool = eng_ctx_pool(ctx);
    b->device = ENG_DEVICE_CUDA;
    snprintf(b->info.name, sizeof b->info.name, "mock device (host memory, CPU twins)");
    b->impl = m;
    b->block_take = mock_block_take;
    b->block_give = mock_block_give;
    b->stream_create = mock_stream_create;
    b->stream_destroy = mock_stream_destroy;
    b->stream_sync = mock_stream_sync;
    b->copy = mock_copy;
    b->ops.add_f32 = eng_cpu_add_f32;
    b->ops.add_f16 = eng_cpu_add_f16;
    b->ops.fill_uniform_f32 = eng_cpu_fill_uniform_f32;
    b->ops.fill_normal_f32 = eng_cpu_fill_normal_f32;
    b->ops.unary = eng_cpu_unary;
    b->ops.binary = eng_cpu_binary;
    b->ops.geglu = eng_cpu_geglu;
    b->ops.copy = eng_cpu_copy;
    b->ops.upsample = eng_cpu_upsample;
    b->ops.temb = eng_cpu_temb;
    b->ops.groupnorm = eng_cpu_groupnorm;
    b->ops.layernorm = eng_cpu_layernorm;
    b->ops.softmax = eng_cpu_softmax;
    b->ops.gemm = eng_cpu_gemm;
    b->ops.conv2d = eng_cpu_conv2d;
    b->ops.attention = eng_cpu_attention;
    b->destroy = mock_destroy;
    if (out != NULL) *out = m;
    CHECK_OK(eng_ctx_attach_backend(ctx, b, 0, &err), &err); /* adopts b, also on failure */
    return 0;
}

/* 1 when a CUDA device is there (else the reason on stderr). */
static int have_cuda(void) {
    eng_err err = {0};
    int count = 0;
    char why[512];
    const int rc = eng_cuda_device_count(&count, &err);
    if (rc != ENG_OK || count == 0) {
        fprintf(stderr, "SKIP: %s\n", rc != ENG_OK ? err.msg : eng_cuda_describe(why, sizeof why));
        return 0;
    }
    return 1;
}

/* A context with `device` attached: the mock or CUDA device 0. NULL on failure. */
static eng_ctx *device_ctx(int use_mock, mock **m) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    if (ctx == NULL) return NULL;
    const int rc = use_mock ? mock_attach(ctx, m) : eng_cuda_attach(ctx, 0, 0, &err);
    if (rc != 0) {
        fprintf(stderr, "attach: %s\n", err.msg);
        eng_ctx_destroy(ctx);
        return NULL;
    }
    return ctx;
}

/* ---- the checkpoint ------------------------------------------------------------------------------ */

static int pick(const wt_plan_entry *e, const char *name, void *user) {
    (void)user;
    const size_t n = strlen(name);
    if (e->ndim == 1) return 1;
    return e->component == WT_UNET &&
           (strcmp(name, "conv_out.weight") == 0 ||
            (n > 21 && strcmp(name + n - 21, "attn2.to_out.0.weight") == 0));
}

static float value(const char *name, int64_t i, float old, void *user) {
    const size_t n = strlen(name);
    if (strcmp(name, "conv_out.weight") == 0) return old * CONV_OUT_GAIN;
    if (n > 21 && strcmp(name + n - 21, "attn2.to_out.0.weight") == 0) return old * ATTN2_GAIN;
    return sd_test_affine(name, i, old, user);
}

/* The patched tiny checkpoint's folder (written once per process). */
static const char *tiny_path(void) {
    static char path[700];
    static int made = 0;
    if (made) return path;
    eng_err err = {0};
    wt_make_params p = {0};
    char tokdir[1024];
    snprintf(path, sizeof path, "%s/sd_device_tiny", eng_test_tmpdir());
    snprintf(tokdir, sizeof tokdir, "%s/clip", eng_test_data_dir());
    if (wt_sd_config_preset(&p.config, "tiny", &err) != ENG_OK) goto fail;
    p.format = WT_FORMAT_DIFFUSERS;
    p.dtype = ENG_DTYPE_F32;
    p.seed = CKPT_SEED;
    p.path = path;
    p.tokenizer_dir = tokdir;
    if (wt_make_checkpoint(&p, &err) != ENG_OK) goto fail;
    if (sd_test_patch(&p.config, WT_FORMAT_DIFFUSERS, path, pick, value, NULL, NULL) != 0)
        return NULL;
    made = 1;
    return path;
fail:
    fprintf(stderr, "tiny checkpoint: %s\n", err.msg);
    return NULL;
}

/* ---- comparisons --------------------------------------------------------------------------------- */

/* got vs want (n floats): tol 0 asks for the same bits (NaN == NaN); else the relative L2 error
 * must be <= tol. Prints the worst element either way. 0: ok. */
static int compare(const char *what, const float *got, const float *want, int64_t n, double tol) {
    double se = 0, sw = 0, worst = -1;
    int64_t wi = 0, differ = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)got[i] - (double)want[i];
        se += d * d;
        sw += (double)want[i] * want[i];
        if (!(fabs(d) <= worst)) worst = fabs(d), wi = i;
        differ +=
            memcmp(&got[i], &want[i], sizeof got[i]) != 0 && !(isnan(got[i]) && isnan(want[i]));
    }
    const double rel = sw > 0 ? sqrt(se / sw) : sqrt(se);
    fprintf(stderr,
            "%s: %lld values, relative L2 error %.3g (bound %.3g), max abs error %.3g at %lld "
            "(got %.8g, cpu %.8g), %lld differ in bits\n",
            what, (long long)n, rel, tol, worst, (long long)wi, (double)got[wi], (double)want[wi],
            (long long)differ);
    if (tol == 0) return differ != 0;
    return !(rel <= tol);
}

/* dst (host floats, the caller's malloc) = src downloaded. */
static int fetch(eng_ctx *ctx, float **dst, const eng_tensor *src) {
    eng_err err = {0};
    *dst = (float *)malloc((size_t)eng_tensor_numel(src) * sizeof **dst);
    CHECK(*dst != NULL);
    CHECK_OK(sd_block_download(ctx, NULL, *dst, src, &err), &err);
    return 0;
}

/* A state tensor of `dev`/`dt` holding the n host floats at src. */
static int put(eng_ctx *ctx,
               eng_device_kind dev,
               eng_dtype dt,
               eng_tensor *t,
               int nd,
               const int64_t *shape,
               const float *src) {
    eng_err err = {0};
    CHECK_OK(
        eng_tensor_alloc(t, eng_ctx_alloc(ctx, dev), ENG_LIFE_STATE, "test", dt, nd, shape, &err),
        &err);
    if (src != NULL) CHECK_OK(sd_block_upload(ctx, NULL, t, src, &err), &err);
    return 0;
}

static float *philox(int64_t n, uint64_t stream, float lo, float hi) {
    float *p = (float *)malloc((size_t)n * sizeof *p);
    if (p != NULL) eng_test_fill(p, n, stream, lo, hi);
    return p;
}

/* The outputs of one run of every module pass, as host floats. */
enum { OUT_CLIP1, OUT_CLIP2, OUT_UNET, OUT_DEC, OUT_ENC, OUT_MEAN, OUT_COUNT };
static const char *const out_names[OUT_COUNT] = {"clip (skip 1)", "clip (skip 2)", "unet",
                                                 "vae decode",    "vae encode",    "vae mean"};

typedef struct mod_run {
    float *out[OUT_COUNT];
    int64_t n[OUT_COUNT];
} mod_run;

static void mod_run_free(mod_run *r) {
    for (int i = 0; i < OUT_COUNT; i++)
        free(r->out[i]);
    memset(r, 0, sizeof *r);
}

/* The scratch arenas are rewound after a pass: the device's and the host staging one. */
static int rewound(eng_ctx *ctx, eng_device_kind dev, uint64_t dev_used, uint64_t host_used) {
    CHECK_EQ_I64(eng_arena_used(eng_alloc_scratch(eng_ctx_alloc(ctx, dev))), dev_used);
    CHECK_EQ_I64(eng_arena_used(eng_alloc_scratch(eng_ctx_alloc(ctx, ENG_DEVICE_CPU))), host_used);
    return 0;
}

/* Runs CLIP, the UNet and the VAE of the tiny checkpoint on `dev` in `dt`, inputs from fixed
 * Philox streams, into r (host floats). */
static int run_modules(eng_ctx *ctx, eng_device_kind dev, eng_dtype dt, mod_run *r) {
    eng_err err = {0};
    wt_model *m = NULL;
    sd_clip *clip = NULL;
    sd_unet *unet = NULL;
    sd_vae *vae = NULL;
    const char *path = tiny_path();
    eng_tensor t_out = {0}, t_in = {0}, t_ctx = {0}, t_img = {0};
    float *lat = NULL, *ctxv = NULL, *img = NULL, *noise = NULL;
    int rc = 1;
    memset(r, 0, sizeof *r);
    CHECK(path != NULL);
    eng_alloc *dalloc = eng_ctx_alloc(ctx, dev);
    eng_arena *ar = eng_alloc_scratch(dalloc);
    const uint64_t ar0 = eng_arena_used(ar);
    const eng_arena_pos mark = eng_arena_mark(ar);
    const uint64_t host0 = eng_arena_used(eng_alloc_scratch(eng_ctx_alloc(ctx, ENG_DEVICE_CPU)));
    if (wt_model_open(&m, path, &err) != ENG_OK ||
        sd_clip_create_on(&clip, m, ctx, dev, dt, &err) != ENG_OK ||
        sd_unet_load_on(&unet, m, ctx, dev, dt, &err) != ENG_OK ||
        sd_vae_load_on(&vae, m, ctx, dev, dt, SD_VAE_DECODER | SD_VAE_ENCODER, &err) != ENG_OK) {
        fprintf(stderr, "load on %s %s: %s\n", eng_device_name(dev), eng_dtype_name(dt), err.msg);
        goto done;
    }
    if (sd_clip_device(clip) != dev || sd_unet_dtype(unet) != dt || sd_vae_dtype(vae) != dt)
        goto done;
    const wt_sd_config *cfg = wt_model_config(m);
    const int64_t C = cfg->text.hidden, B = 2, L = 77;
    /* CLIP: pseudo-random ids over the whole vocabulary, clip skip 1 and 2 */
    {
        int32_t ids[2 * 77];
        const int64_t os[3] = {B, L, C};
        for (int64_t i = 0; i < B * L; i++)
            ids[i] = (int32_t)((i * 7919 + 13) % cfg->text.vocab);
        for (int k = 0; k < 2; k++) {
            if (put(ctx, dev, dt, &t_out, 3, os, NULL) != 0) goto done;
            if (sd_clip_forward(clip, ctx, NULL, ar, &t_out, ids, B, k + 1, &err) != ENG_OK) {
                fprintf(stderr, "sd_clip_forward: %s\n", err.msg);
                goto done;
            }
            eng_arena_rewind(ar, mark); /* CLIP leaves its activations to the caller */
            if (rewound(ctx, dev, ar0, host0) != 0) goto done;
            r->n[OUT_CLIP1 + k] = B * L * C;
            if (fetch(ctx, &r->out[OUT_CLIP1 + k], &t_out) != 0) goto done;
            eng_tensor_free(dalloc, &t_out);
        }
    }
    /* UNet: latent (2, 8, 8, 4), timesteps 999 and 421.5, a random context (2, 77, C) */
    {
        const int64_t ls[4] = {B, 8, 8, 4}, cs[3] = {B, L, cfg->unet.context_dim};
        const float ts[2] = {999.0f, 421.5f};
        if ((lat = philox(B * 8 * 8 * 4, 101, -1.5f, 1.5f)) == NULL ||
            (ctxv = philox(cs[0] * cs[1] * cs[2], 102, -1.0f, 1.0f)) == NULL)
            goto done;
        if (put(ctx, dev, dt, &t_in, 4, ls, lat) != 0 ||
            put(ctx, dev, dt, &t_ctx, 3, cs, ctxv) != 0 || put(ctx, dev, dt, &t_out, 4, ls, NULL))
            goto done;
        if (sd_unet_forward(unet, ctx, NULL, ar, &t_out, &t_in, ts, &t_ctx, &err) != ENG_OK) {
            fprintf(stderr, "sd_unet_forward: %s\n", err.msg);
            goto done;
        }
        if (rewound(ctx, dev, ar0, host0) != 0) goto done;
        r->n[OUT_UNET] = B * 8 * 8 * 4;
        if (fetch(ctx, &r->out[OUT_UNET], &t_out) != 0) goto done;
        eng_tensor_free(dalloc, &t_out);
    }
    /* VAE decode: the same latents -> (2, 16, 16, 3) */
    {
        const int64_t is[4] = {B, 16, 16, 3};
        if (put(ctx, dev, dt, &t_img, 4, is, NULL) != 0) goto done;
        if (sd_vae_decode(vae, ctx, NULL, ar, &t_img, &t_in, SD_VAE_SCALE_SD1, &err) != ENG_OK) {
            fprintf(stderr, "sd_vae_decode: %s\n", err.msg);
            goto done;
        }
        if (rewound(ctx, dev, ar0, host0) != 0) goto done;
        r->n[OUT_DEC] = B * 16 * 16 * 3;
        if (fetch(ctx, &r->out[OUT_DEC], &t_img) != 0) goto done;
        eng_tensor_free(dalloc, &t_img);
        eng_tensor_free(dalloc, &t_in);
    }
    /* VAE encode: (2, 18, 22, 3) in [-1, 1] (odd latent sides: the padded downsampler) ->
     * (2, 9, 11, 4), sampled with noise, then the mean */
    {
        const int64_t is[4] = {B, 18, 22, 3}, ls[4] = {B, 9, 11, 4};
        const int64_t nl = B * 9 * 11 * 4;
        if ((img = philox(B * 18 * 22 * 3, 103, -1.0f, 1.0f)) == NULL ||
            (noise = philox(nl, 104, -2.0f, 2.0f)) == NULL)
            goto done;
        if (put(ctx, dev, dt, &t_img, 4, is, img) != 0 || put(ctx, dev, dt, &t_out, 4, ls, NULL))
            goto done;
        for (int k = 0; k < 2; k++) {
            if (sd_vae_encode(vae, ctx, NULL, ar, &t_out, &t_img, k == 0 ? noise : NULL,
                              SD_VAE_SCALE_SD1, &err) != ENG_OK) {
                fprintf(stderr, "sd_vae_encode: %s\n", err.msg);
                goto done;
            }
            if (rewound(ctx, dev, ar0, host0) != 0) goto done;
            r->n[OUT_ENC + k] = nl;
            if (fetch(ctx, &r->out[OUT_ENC + k], &t_out) != 0) goto done;
        }
    }
    rc = 0;
done:
    eng_tensor_free(dalloc, &t_out);
    eng_tensor_free(dalloc, &t_in);
    eng_tensor_free(dalloc, &t_ctx);
    eng_tensor_free(dalloc, &t_img);
    free(lat);
    free(ctxv);
    free(img);
    free(noise);
    sd_vae_destroy(vae);
    sd_unet_destroy(unet);
    sd_clip_destroy(clip);
    wt_model_close(m);
    if (rc != 0) mod_run_free(r);
    return rc;
}

/* The modules on the mock or CUDA in `dt` vs the CPU in f32 (tol 0: bit for bit). */
static int modules_case(int use_mock, eng_dtype dt, double tol) {
    mock *mk = NULL;
    mod_run cpu, dev;
    int rc = 1;
    char what[96];
    if (!use_mock && !have_cuda()) return ENG_TEST_SKIP;
    eng_ctx *ctx = device_ctx(use_mock, &mk);
    CHECK(ctx != NULL);
    memset(&cpu, 0, sizeof cpu);
    memset(&dev, 0, sizeof dev);
    if (run_modules(ctx, ENG_DEVICE_CPU, ENG_DTYPE_F32, &cpu) != 0 ||
        run_modules(ctx, ENG_DEVICE_CUDA, dt, &dev) != 0)
        goto done;
    int bad = 0;
    for (int i = 0; i < OUT_COUNT; i++) {
        snprintf(what, sizeof what, "%s %s %s", use_mock ? "mock" : "cuda", eng_dtype_name(dt),
                 out_names[i]);
        bad |= compare(what, dev.out[i], cpu.out[i], cpu.n[i], tol);
    }
    if (mk != NULL) fprintf(stderr, "mock: %lld copies\n", (long long)mk->copies);
    rc = bad;
done:
    mod_run_free(&cpu);
    mod_run_free(&dev);
    eng_ctx_destroy(ctx);
    return rc;
}

/* ---- the pipeline -------------------------------------------------------------------------------- */

/* The init image 0.5 + 0.4 sin(0.3 x + 0.2 y + 2.1 c) (tests/test_sd_pipe.c's). */
static float *init_image(int w, int h) {
    float *px = (float *)malloc((size_t)w * (size_t)h * 3 * sizeof *px);
    for (int y = 0; px != NULL && y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
                    (float)(0.5 + 0.4 * sin(0.3 * x + 0.2 * y + 2.1 * c));
    return px;
}

/* Generates txt2img (Euler a, CFG 7, batch 2) and img2img (DDIM, strength 0.6) 32x32 images on
 * `dev`/`dt` (-1: its default): im[0], im[1]. With the mock's counters (mk not NULL), checks the
 * txt2img run's copies. */
static int run_pipe(eng_ctx *ctx, eng_device_kind dev, int dt, sd_images im[2], mock *mk) {
    eng_err err = {0};
    sd_pipe *pipe = NULL;
    sd_pipe_params pp;
    float *init = NULL;
    int rc = 1;
    const char *path = tiny_path();
    CHECK(path != NULL);
    sd_pipe_params_init(&pp);
    pp.model = path;
    pp.device = dev;
    pp.dtype = dt;
    if (sd_pipe_load(&pipe, ctx, &pp, &err) != ENG_OK) {
        fprintf(stderr, "sd_pipe_load on %s: %s\n", eng_device_name(dev), err.msg);
        goto done;
    }
    fprintf(stderr, "pipeline on %s in %s\n", eng_device_name(sd_pipe_device(pipe)),
            eng_dtype_name(sd_pipe_dtype(pipe)));
    sd_gen_params g;
    sd_gen_params_init(&g);
    g.prompt = PROMPT;
    g.negative = NEGATIVE;
    g.steps = 4;
    g.seed = 11;
    g.width = g.height = 32;
    g.batch = 2;
    const int64_t copies0 = mk != NULL ? mk->copies : 0;
    if (sd_pipe_generate(pipe, &g, &im[0], &err) != ENG_OK) {
        fprintf(stderr, "txt2img: %s\n", err.msg);
        goto done;
    }
    if (mk != NULL) {
        /* per UNet call: latents up, timesteps up, prediction down; outside the loop: 2
         * prompts (1 down each), the conditioning up, per image a latent up and an image down */
        const int64_t loop = mk->copies - copies0 - 2 - 1 - 2 * g.batch;
        fprintf(stderr, "mock: %lld copies in %lld UNet calls\n", (long long)(mk->copies - copies0),
                (long long)im[0].calls);
        CHECK_EQ_I64(loop, 3 * im[0].calls);
    }
    if ((init = init_image(32, 32)) == NULL) goto done;
    g.batch = 1;
    g.sampler = SD_SAMPLER_DDIM;
    g.init_image = init;
    g.strength = 0.6;
    if (sd_pipe_generate(pipe, &g, &im[1], &err) != ENG_OK) {
        fprintf(stderr, "img2img: %s\n", err.msg);
        goto done;
    }
    rc = 0;
done:
    free(init);
    sd_pipe_destroy(pipe);
    return rc;
}

static double psnr(const float *a, const float *b, int64_t n) {
    double se = 0;
    for (int64_t i = 0; i < n; i++)
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se > 0 ? 10.0 * log10((double)n / se) : 99.0;
}

static double stddev(const float *a, int64_t n) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i], s2 += (double)a[i] * a[i];
    return sqrt(fmax(0.0, s2 / (double)n - (s / (double)n) * (s / (double)n)));
}

/* The pipeline on the mock or CUDA vs the CPU: min_psnr 0 asks for the same bits. */
static int pipe_case(int use_mock, eng_dtype dt, double min_psnr) {
    mock *mk = NULL;
    sd_images cpu[2], dev[2];
    int rc = 1;
    if (!use_mock && !have_cuda()) return ENG_TEST_SKIP;
    eng_ctx *ctx = device_ctx(use_mock, &mk);
    CHECK(ctx != NULL);
    memset(cpu, 0, sizeof cpu);
    memset(dev, 0, sizeof dev);
    if (run_pipe(ctx, ENG_DEVICE_CPU, -1, cpu, NULL) != 0 ||
        run_pipe(ctx, ENG_DEVICE_CUDA, (int)dt, dev, mk) != 0)
        goto done;
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        const int64_t n = cpu[k].batch * cpu[k].height * cpu[k].width * 3;
        const double p = psnr(dev[k].pixels, cpu[k].pixels, n);
        const int same = memcmp(dev[k].pixels, cpu[k].pixels, (size_t)n * sizeof(float)) == 0;
        fprintf(stderr,
                "%s %s %s: PSNR %.2f dB vs the CPU (bound %s %.0f), %s; the CPU image's std "
                "%.3f\n",
                use_mock ? "mock" : "cuda", eng_dtype_name(dt), k == 0 ? "txt2img" : "img2img", p,
                min_psnr > 0 ? ">=" : "bit-exact, PSNR", min_psnr > 0 ? min_psnr : 99.0,
                same ? "same bits" : "bits differ", stddev(cpu[k].pixels, n));
        bad |= min_psnr > 0 ? !(p >= min_psnr) : !same;
        bad |= !(stddev(cpu[k].pixels, n) > 0.02); /* a flat image would prove nothing */
    }
    rc = bad;
done:
    for (int k = 0; k < 2; k++) {
        sd_images_free(&cpu[k]);
        sd_images_free(&dev[k]);
    }
    eng_ctx_destroy(ctx);
    return rc;
}

/* ---- cases --------------------------------------------------------------------------------------- */

static int test_mock_modules(void) {
    return modules_case(1, ENG_DTYPE_F32, 0.0);
}

static int test_mock_pipe(void) {
    return pipe_case(1, ENG_DTYPE_F32, 0.0);
}

static int test_mock_errors(void) {
    eng_err err = {0};
    wt_model *m = NULL;
    sd_unet *unet = NULL;
    sd_vae *vae = NULL;
    sd_clip *clip = NULL;
    sd_pipe *pipe = NULL;
    sd_pipe_params pp;
    const char *path = tiny_path();
    CHECK(path != NULL);
    /* no device attached: every loader names it */
    eng_ctx *ctx = eng_test_ctx(1);
    CHECK(ctx != NULL);
    CHECK_OK(wt_model_open(&m, path, &err), &err);
    CHECK_EQ_I64(sd_unet_load_on(&unet, m, ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, &err),
                 ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "sd_unet_load: no cuda device is attached");
    CHECK_EQ_I64(sd_vae_load_on(&vae, m, ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, SD_VAE_DECODER, &err),
                 ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "sd_vae_load: no cuda device is attached");
    CHECK_EQ_I64(sd_clip_create_on(&clip, m, ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, &err),
                 ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "sd_clip_create: no cuda device is attached");
    /* the CPU runs f32 only */
    CHECK_EQ_I64(sd_unet_load_on(&unet, m, ctx, ENG_DEVICE_CPU, ENG_DTYPE_BF16, &err),
                 ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "dtype bf16 on cpu");
    CHECK(unet == NULL && vae == NULL && clip == NULL);
    eng_ctx_destroy(ctx);
    /* on the mock: f16 weights load (the upload is bytes), but its f32-only twins refuse the
     * first op by name, and nothing leaks */
    ctx = device_ctx(1, NULL);
    CHECK(ctx != NULL);
    CHECK_OK(sd_unet_load_on(&unet, m, ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, &err), &err);
    {
        const int64_t ls[4] = {1, 8, 8, 4}, cs[3] = {1, 77, 32};
        const float ts[1] = {500.0f};
        eng_tensor lat, out, cond;
        eng_alloc *da = eng_ctx_alloc(ctx, ENG_DEVICE_CUDA);
        CHECK(put(ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, &lat, 4, ls, NULL) == 0);
        CHECK(put(ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, &out, 4, ls, NULL) == 0);
        CHECK(put(ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, &cond, 3, cs, NULL) == 0);
        const int frc =
            sd_unet_forward(unet, ctx, NULL, eng_alloc_scratch(da), &out, &lat, ts, &cond, &err);
        fprintf(stderr, "ok: %s\n", err.msg);
        CHECK(frc == ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "f16");
        /* an f32 latent for an f16 UNet is named */
        eng_tensor lat32;
        CHECK(put(ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F32, &lat32, 4, ls, NULL) == 0);
        CHECK_EQ_I64(
            sd_unet_forward(unet, ctx, NULL, eng_alloc_scratch(da), &out, &lat32, ts, &cond, &err),
            ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "expected f16[N,h,w,4] cuda");
        fprintf(stderr, "ok: %s\n", err.msg);
        eng_tensor_free(da, &lat32);
        eng_tensor_free(da, &cond);
        eng_tensor_free(da, &out);
        eng_tensor_free(da, &lat);
    }
    sd_unet_destroy(unet);
    {
        eng_alloc_stats st;
        eng_alloc_get_stats(eng_ctx_alloc(ctx, ENG_DEVICE_CUDA), &st);
        CHECK_EQ_I64(st.in_use[ENG_LIFE_WEIGHTS], 0);
        CHECK_EQ_I64(st.in_use[ENG_LIFE_STATE], 0);
    }
    /* a pipeline on the device with a dtype no device runs */
    sd_pipe_params_init(&pp);
    pp.model = path;
    pp.device = ENG_DEVICE_CUDA;
    pp.dtype = ENG_DTYPE_I8;
    CHECK_EQ_I64(sd_pipe_load(&pipe, ctx, &pp, &err), ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "dtype i8 on cuda");
    CHECK(pipe == NULL);
    fprintf(stderr, "ok: %s\n", err.msg);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_cuda_modules_f32(void) {
    return modules_case(0, ENG_DTYPE_F32, 1e-3);
}
static int test_cuda_modules_f16(void) {
    return modules_case(0, ENG_DTYPE_F16, 1e-2);
}
static int test_cuda_modules_bf16(void) {
    return modules_case(0, ENG_DTYPE_BF16, 6e-2);
}
static int test_cuda_pipe_f32(void) {
    return pipe_case(0, ENG_DTYPE_F32, 45.0);
}
static int test_cuda_pipe_f16(void) {
    return pipe_case(0, ENG_DTYPE_F16, 35.0);
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"mock_modules", test_mock_modules},         {"mock_pipe", test_mock_pipe},
        {"mock_errors", test_mock_errors},           {"cuda_modules_f32", test_cuda_modules_f32},
        {"cuda_modules_f16", test_cuda_modules_f16}, {"cuda_modules_bf16", test_cuda_modules_bf16},
        {"cuda_pipe_f32", test_cuda_pipe_f32},       {"cuda_pipe_f16", test_cuda_pipe_f16},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
