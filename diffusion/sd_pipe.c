/* sd_pipe.c: the Stable Diffusion pipeline (sd_pipe.h): diffusers' StableDiffusionPipeline
 * (pipeline_stable_diffusion.py) and StableDiffusionImg2ImgPipeline, step for step, with
 * A1111's prompt weighting (modules/sd_hijack_clip.py) on the text-encoder output. */
#include "sd_pipe.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eng_bench.h"
#include "sd_block.h"
#include "sd_clip.h"
#include "sd_unet.h"
#include "sd_vae.h"
#include "tok.h"

#define CTX_LEN 77 /* CLIP's context: start + 75 tokens + end */

struct sd_pipe {
    eng_ctx *ctx;
    eng_device_kind dev; /* where the modules run */
    eng_dtype dt;        /* their weights and activations */
    wt_model *model;     /* open while loading only: the modules copy what they need */
    wt_sd_config cfg;
    char unet_file[4096]; /* the file holding the UNet weights (the model hash) */
    tok_clip *tok;
    sd_clip *clip;
    sd_unet *unet;
    sd_vae *vae;
    sd_scheduler_config sched;
    int32_t pad_id;
};

void sd_pipe_params_init(sd_pipe_params *p) {
    memset(p, 0, sizeof *p);
    p->prediction = -1;
    p->device = ENG_DEVICE_CPU;
    p->dtype = -1;
}

void sd_gen_params_init(sd_gen_params *g) {
    memset(g, 0, sizeof *g);
    g->steps = 20;
    g->cfg_scale = 7.0;
    g->sampler = SD_SAMPLER_EULER_A;
    g->schedule = SD_SCHEDULE_NORMAL;
    g->seed = 42;
    g->batch = 1;
    g->clip_skip = 1;
    g->weights = 1;
    g->strength = 0.75;
}

void sd_images_free(sd_images *im) {
    if (im == NULL) return;
    free(im->pixels);
    memset(im, 0, sizeof *im);
}

/* ---- loading ------------------------------------------------------------------------------- */

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Reads the diffusers scheduler_config.json values the samplers use; a missing file keeps the
 * defaults, a malformed one is an error naming it. */
static int read_scheduler(sd_scheduler_config *c, const char *dir, eng_err *err) {
    int rc = ENG_OK;
    char path[4096];
    char *text = NULL;
    cJSON *j = NULL;
    FILE *f = NULL;
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", dir);
    if ((f = fopen(path, "rb")) == NULL) goto done; /* optional */
    if (fseek(f, 0, SEEK_END) != 0) goto io;
    const long size = ftell(f);
    if (size < 0 || size > (1L << 20) || fseek(f, 0, SEEK_SET) != 0) goto io;
    if ((text = (char *)malloc((size_t)size + 1)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_pipe_load: out of memory reading %s", path);
        goto done;
    }
    if (fread(text, 1, (size_t)size, f) != (size_t)size) goto io;
    text[size] = '\0';
    if ((j = cJSON_Parse(text)) == NULL || !cJSON_IsObject(j)) {
        rc = eng_err_set(err, ENG_E_FORMAT, "sd_pipe_load: %s is not a JSON object", path);
        goto done;
    }
    const cJSON *v;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(j, "num_train_timesteps")))
        c->num_train_timesteps = v->valueint;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(j, "beta_start")))
        c->beta_start = v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(j, "beta_end")))
        c->beta_end = v->valuedouble;
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "beta_schedule")))
        snprintf(c->beta_schedule, sizeof c->beta_schedule, "%s", v->valuestring);
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(j, "steps_offset")))
        c->steps_offset = v->valueint;
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "timestep_spacing")))
        snprintf(c->timestep_spacing, sizeof c->timestep_spacing, "%s", v->valuestring);
    if (cJSON_IsBool(v = cJSON_GetObjectItemCaseSensitive(j, "set_alpha_to_one")))
        c->set_alpha_to_one = cJSON_IsTrue(v);
    goto done;
io:
    rc = eng_err_set(err, ENG_E_IO, "sd_pipe_load: cannot read %s", path);
done:
    cJSON_Delete(j);
    free(text);
    if (f != NULL) fclose(f);
    return rc;
}

int sd_pipe_load(sd_pipe **out, eng_ctx *ctx, const sd_pipe_params *p, eng_err *err) {
    int rc = ENG_OK;
    sd_pipe *pipe = NULL;
    ENG_ASSERT(out != NULL && ctx != NULL && p != NULL);
    *out = NULL;
    if (p->model == NULL || p->model[0] == '\0') {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "sd_pipe_load: no model path given");
        goto done;
    }
    if (p->device != ENG_DEVICE_CPU && p->device != ENG_DEVICE_CUDA) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "sd_pipe_load: device %d is not cpu or cuda",
                         (int)p->device);
        goto done;
    }
    if (eng_ctx_alloc(ctx, p->device) == NULL) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "sd_pipe_load: no %s device is attached to the context (eng_cuda_attach "
                         "first)",
                         eng_device_name(p->device));
        goto done;
    }
    const eng_dtype dt = p->dtype >= 0                 ? (eng_dtype)p->dtype
                         : p->device == ENG_DEVICE_CPU ? ENG_DTYPE_F32
                                                       : ENG_DTYPE_F16;
    if (p->dtype < -1 || p->dtype >= ENG_DTYPE_COUNT ||
        (p->device == ENG_DEVICE_CPU && dt != ENG_DTYPE_F32) ||
        (dt != ENG_DTYPE_F32 && dt != ENG_DTYPE_F16 && dt != ENG_DTYPE_BF16)) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "sd_pipe_load: dtype %s on %s (the CPU runs f32 only; CUDA f16 (the "
                         "default), f32 or bf16)",
                         p->dtype >= 0 && p->dtype < ENG_DTYPE_COUNT ? eng_dtype_name(dt) : "?",
                         eng_device_name(p->device));
        goto done;
    }
    if (p->prediction < -1 || p->prediction >= SD_PRED_COUNT) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "sd_pipe_load: prediction %d is not -1..%d",
                         p->prediction, SD_PRED_COUNT - 1);
        goto done;
    }
    if ((pipe = (sd_pipe *)calloc(1, sizeof *pipe)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_pipe_load: out of memory");
        goto done;
    }
    pipe->ctx = ctx;
    pipe->dev = p->device;
    pipe->dt = dt;
    if ((rc = wt_model_open(&pipe->model, p->model, err)) != ENG_OK) goto done;
    pipe->cfg = *wt_model_config(pipe->model);
    snprintf(pipe->unet_file, sizeof pipe->unet_file, "%s", wt_model_file(pipe->model, WT_UNET));
    const wt_sd_config *cfg = &pipe->cfg;
    /* the tokenizer: the caller's vocabulary, else the diffusers folder's tokenizer/ */
    if (p->vocab != NULL && p->vocab[0] != '\0') {
        rc = tok_clip_load(&pipe->tok, p->vocab, err);
    } else if (is_dir(p->model)) {
        rc = tok_clip_load(&pipe->tok, p->model, err);
    } else {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_pipe_load: %s: a single-file checkpoint has no tokenizer; give the "
                         "CLIP vocabulary (--vocab bpe_simple_vocab_16e6.txt.gz or vocab.json)",
                         p->model);
    }
    if (rc != ENG_OK) goto done;
    /* SD 2.x's tokenizer pads with "!" (id 0), SD 1.x's with <|endoftext|> */
    pipe->pad_id = tok_clip_eos_id(pipe->tok);
    if (cfg->family == WT_FAMILY_SD2) {
        const int32_t bang = tok_clip_token_id(pipe->tok, "!");
        if (bang >= 0) pipe->pad_id = bang;
    }
    sd_scheduler_config_default(&pipe->sched);
    if (is_dir(p->model) && (rc = read_scheduler(&pipe->sched, p->model, err)) != ENG_OK) goto done;
    pipe->sched.prediction = p->prediction >= 0 ? (sd_prediction)p->prediction
                             : strcmp(cfg->prediction_type, "v_prediction") == 0 ? SD_PRED_V
                                                                                 : SD_PRED_EPSILON;
    if (strcmp(cfg->prediction_type, "epsilon") != 0 &&
        strcmp(cfg->prediction_type, "v_prediction") != 0 && p->prediction < 0) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "sd_pipe_load: %s: prediction_type \"%s\" is not supported (epsilon, "
                         "v_prediction)",
                         p->model, cfg->prediction_type);
        goto done;
    }
    if ((rc = sd_clip_create_on(&pipe->clip, pipe->model, ctx, pipe->dev, pipe->dt, err)) !=
            ENG_OK ||
        (rc = sd_unet_load_on(&pipe->unet, pipe->model, ctx, pipe->dev, pipe->dt, err)) != ENG_OK ||
        (rc = sd_vae_load_on(&pipe->vae, pipe->model, ctx, pipe->dev, pipe->dt,
                             SD_VAE_DECODER | SD_VAE_ENCODER, err)) != ENG_OK)
        goto done;
    if (cfg->unet.context_dim != cfg->text.hidden) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "sd_pipe_load: %s: the UNet's cross-attention width %d does not match "
                         "the text encoder's %d",
                         p->model, cfg->unet.context_dim, cfg->text.hidden);
        goto done;
    }
    /* the weights are copies now: unmapping the files gives their pages back (2 GB for an f16
     * SD1.5 file, which would otherwise stay in the resident set) */
    wt_model_close(pipe->model);
    pipe->model = NULL;
    *out = pipe;
    pipe = NULL;
done:
    sd_pipe_destroy(pipe);
    return rc;
}

void sd_pipe_destroy(sd_pipe *p) {
    if (p == NULL) return;
    sd_vae_destroy(p->vae);
    sd_unet_destroy(p->unet);
    sd_clip_destroy(p->clip);
    tok_clip_free(p->tok);
    wt_model_close(p->model);
    free(p);
}

const wt_sd_config *sd_pipe_config(const sd_pipe *p) {
    return &p->cfg;
}
const char *sd_pipe_unet_file(const sd_pipe *p) {
    return p->unet_file;
}
sd_prediction sd_pipe_prediction(const sd_pipe *p) {
    return p->sched.prediction;
}
eng_device_kind sd_pipe_device(const sd_pipe *p) {
    return p->dev;
}
eng_dtype sd_pipe_dtype(const sd_pipe *p) {
    return p->dt;
}
const sd_scheduler_config *sd_pipe_scheduler(const sd_pipe *p) {
    return &p->sched;
}

void sd_pipe_default_size(const sd_pipe *p, sd_gen_params *g) {
    const int side =
        sd_pipe_config(p)->family == WT_FAMILY_SD2 && p->sched.prediction == SD_PRED_V ? 768 : 512;
    if (g->width == 0) g->width = side;
    if (g->height == 0) g->height = side;
}

/* ---- the prompt ---------------------------------------------------------------------------- */

int sd_pipe_encode_prompt(sd_pipe *p,
                          eng_tensor *out,
                          const char *prompt,
                          int clip_skip,
                          int weights,
                          int64_t *truncated,
                          eng_err *err) {
    int rc = ENG_OK;
    int32_t ids[CTX_LEN];
    float w[CTX_LEN];
    int64_t n_prompt = 0;
    const int64_t hidden = sd_clip_config(p->clip)->hidden;
    eng_arena *arena = eng_alloc_scratch(eng_ctx_alloc(p->ctx, p->dev));
    const eng_arena_pos mark = eng_arena_mark(arena);
    if (prompt == NULL) prompt = "";
    if (truncated != NULL) *truncated = 0;
    if (out->ndim != 3 || out->shape[0] != 1 || out->shape[1] != CTX_LEN ||
        out->shape[2] != hidden || out->dtype != ENG_DTYPE_F32 || out->device != ENG_DEVICE_CPU ||
        !eng_tensor_is_contiguous(out)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_pipe_encode_prompt: out must be (1, %d, %lld) f32 contiguous on the "
                         "CPU",
                         CTX_LEN, (long long)hidden);
        goto done;
    }
    if ((rc = tok_clip_encode_prompt(p->tok, ids, w, &n_prompt, CTX_LEN, p->pad_id,
                                     weights ? TOK_PROMPT_WEIGHTS : TOK_PROMPT_PLAIN, prompt,
                                     strlen(prompt), err)) != ENG_OK)
        goto done;
    if (truncated != NULL && n_prompt > CTX_LEN - 2) *truncated = n_prompt - (CTX_LEN - 2);
    if (p->dev == ENG_DEVICE_CPU) {
        rc = sd_clip_forward(p->clip, p->ctx, NULL, arena, out, ids, 1, clip_skip, err);
    } else { /* the states come down in f32: the weighting below runs on the host */
        eng_tensor d;
        if ((rc = eng_tensor_scratch(&d, arena, p->dt, 3, out->shape, err)) == ENG_OK &&
            (rc = sd_clip_forward(p->clip, p->ctx, NULL, arena, &d, ids, 1, clip_skip, err)) ==
                ENG_OK)
            rc = sd_block_download(p->ctx, NULL, (float *)out->data, &d, err);
    }
    if (rc != ENG_OK) goto done;
    /* A1111: z *= weight per token, then restore the original mean of the whole prompt */
    int weighted = 0;
    for (int i = 0; i < CTX_LEN; i++)
        weighted |= w[i] != 1.0f;
    if (weighted) {
        float *z = (float *)out->data;
        double before = 0, after = 0;
        const int64_t n = (int64_t)CTX_LEN * hidden;
        for (int64_t i = 0; i < n; i++)
            before += z[i];
        for (int i = 0; i < CTX_LEN; i++)
            for (int64_t c = 0; c < hidden; c++)
                z[i * hidden + c] *= w[i];
        for (int64_t i = 0; i < n; i++)
            after += z[i];
        if (after != 0.0) {
            const float k = (float)(before / after);
            for (int64_t i = 0; i < n; i++)
                z[i] *= k;
        }
    }
done:
    eng_arena_rewind(arena, mark);
    return rc;
}

/* ---- generation ---------------------------------------------------------------------------- */

/* x (h, w, c) NHWC = Philox normals (seed, offset) drawn in NCHW order (c, h, w). tmp: h*w*c. */
static int noise_nhwc(eng_stream *s,
                      float *x,
                      float *tmp,
                      int64_t h,
                      int64_t w,
                      int64_t c,
                      uint64_t seed,
                      uint64_t offset,
                      eng_err *err) {
    const int rc = eng_cpu_fill_normal_f32(s, tmp, h * w * c, seed, offset, err);
    if (rc != ENG_OK) return rc;
    for (int64_t k = 0; k < c; k++)
        for (int64_t i = 0; i < h * w; i++)
            x[i * c + k] = tmp[k * h * w + i];
    return ENG_OK;
}

/* The host buffers (f32, the CPU allocator) and their twins on the modules' device: on the CPU
 * the twins are the host tensors themselves; on a device they are the UNet's / VAE's inputs and
 * outputs in the pipeline's dtype, filled and read with sd_block_upload/download. */
typedef struct gen_bufs {
    eng_tensor x, x_in, pred, cond, noise, tmp, img; /* host */
    eng_tensor d_x_in, d_pred, d_cond, d_lat, d_img; /* device twins */
    int on_dev;                                      /* the twins are allocated */
} gen_bufs;

static int state_alloc(eng_alloc *a, eng_tensor *t, int nd, const int64_t *shape, eng_err *err) {
    return eng_tensor_alloc(t, a, ENG_LIFE_STATE, "sd_pipe", ENG_DTYPE_F32, nd, shape, err);
}

/* d = the device twin of the host tensor h: h itself on the CPU, else a state tensor of h's
 * shape in the pipeline's dtype on its device. */
static int twin_alloc(const sd_pipe *p, eng_tensor *d, const eng_tensor *h, eng_err *err) {
    if (p->dev == ENG_DEVICE_CPU) {
        *d = *h;
        return ENG_OK;
    }
    return eng_tensor_alloc(d, eng_ctx_alloc(p->ctx, p->dev), ENG_LIFE_STATE, "sd_pipe", p->dt,
                            h->ndim, h->shape, err);
}

/* Latent i (1, h, w, C) of the host latents x as the VAE takes it: on the CPU a view of x; on a
 * device the d_lat twin, filled from x when `fill`. */
static int latent_for_vae(const sd_pipe *p,
                          gen_bufs *b,
                          eng_tensor *lat,
                          const int64_t shape[4],
                          int64_t i,
                          int fill,
                          eng_err *err) {
    float *xi = (float *)b->x.data + i * shape[1] * shape[2] * shape[3];
    if (p->dev == ENG_DEVICE_CPU)
        return eng_tensor_init(lat, xi, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, shape, err);
    *lat = b->d_lat;
    return fill ? sd_block_upload(p->ctx, NULL, lat, xi, err) : ENG_OK;
}

static int check_params(const sd_pipe *p, const sd_gen_params *g, eng_err *err) {
    const wt_sd_config *cfg = sd_pipe_config(p);
    const int64_t quantum = sd_vae_upscale(p->vae) << (cfg->unet.n_levels - 1);
    if (g->steps < 1 || g->steps > 1000)
        return eng_err_set(err, ENG_E_INVALID_ARG, "sd_pipe_generate: steps %d is not 1..1000",
                           g->steps);
    if (!isfinite(g->cfg_scale) || g->cfg_scale < 0 || g->cfg_scale > 100)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_pipe_generate: cfg scale %g is not in [0, 100]", g->cfg_scale);
    if (g->batch < 1 || g->batch > SD_PIPE_MAX_BATCH)
        return eng_err_set(err, ENG_E_INVALID_ARG, "sd_pipe_generate: batch %d is not 1..%d",
                           g->batch, SD_PIPE_MAX_BATCH);
    if (g->width < quantum || g->height < quantum || g->width > SD_PIPE_MAX_SIDE ||
        g->height > SD_PIPE_MAX_SIDE || g->width % quantum != 0 || g->height % quantum != 0)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_pipe_generate: size %dx%d: width and height must be multiples of "
                           "%lld from %lld to %d",
                           g->width, g->height, (long long)quantum, (long long)quantum,
                           SD_PIPE_MAX_SIDE);
    if (g->clip_skip < 1 || g->clip_skip > cfg->text.layers)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_pipe_generate: clip skip %d is not 1..%d (the text encoder's "
                           "layers)",
                           g->clip_skip, cfg->text.layers);
    if (g->init_image != NULL && !(g->strength > 0 && g->strength <= 1))
        return eng_err_set(err, ENG_E_INVALID_ARG, "sd_pipe_generate: strength %g is not in (0, 1]",
                           g->strength);
    if ((unsigned)g->sampler >= SD_SAMPLER_COUNT || (unsigned)g->schedule >= SD_SCHEDULE_COUNT)
        return eng_err_set(err, ENG_E_INVALID_ARG, "sd_pipe_generate: unknown sampler %d/%d",
                           (int)g->sampler, (int)g->schedule);
    return ENG_OK;
}

int sd_pipe_generate(sd_pipe *p, const sd_gen_params *g, sd_images *out, eng_err *err) {
    int rc = ENG_OK;
    eng_alloc *alloc = eng_ctx_alloc(p->ctx, ENG_DEVICE_CPU);
    eng_alloc *dalloc = eng_ctx_alloc(p->ctx, p->dev);
    eng_arena *arena = eng_alloc_scratch(dalloc); /* the modules' activations */
    eng_stream *s = eng_ctx_stream(p->ctx, ENG_DEVICE_CPU);
    sd_sampler *smp = NULL;
    eng_progress *bar = NULL;
    gen_bufs b;
    sd_images res = {0};
    float *ts = NULL;
    memset(&b, 0, sizeof b);
    ENG_ASSERT(p != NULL && g != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    if ((rc = check_params(p, g, err)) != ENG_OK) goto done;
    const wt_sd_config *cfg = sd_pipe_config(p);
    const int64_t f = sd_vae_upscale(p->vae), B = g->batch, H = g->height, W = g->width;
    const int64_t h = H / f, w = W / f, C = cfg->unet.in_channels, hidden = cfg->text.hidden;
    const int64_t per = h * w * C, n = B * per;
    const int cfg_on = g->cfg_scale > 1.0;
    const int64_t nb = cfg_on ? 2 * B : B; /* UNet batch: [uncond x B, cond x B] */
    const int64_t ls[4] = {1, h, w, C};
    const double t0 = eng_bench_now_s();

    /* buffers: host f32 state, and their twins on the device */
    {
        const int64_t xs[4] = {B, h, w, C}, xb[4] = {nb, h, w, C}, cs[3] = {nb, CTX_LEN, hidden};
        const int64_t ns[1] = {n}, tmp[1] = {H * W * 3 > per ? H * W * 3 : per};
        const int64_t is[4] = {1, H, W, 3};
        if ((rc = state_alloc(alloc, &b.x, 4, xs, err)) != ENG_OK ||
            (rc = state_alloc(alloc, &b.x_in, 4, xb, err)) != ENG_OK ||
            (rc = state_alloc(alloc, &b.pred, 4, xb, err)) != ENG_OK ||
            (rc = state_alloc(alloc, &b.cond, 3, cs, err)) != ENG_OK ||
            (rc = state_alloc(alloc, &b.noise, 1, ns, err)) != ENG_OK ||
            (rc = state_alloc(alloc, &b.tmp, 1, tmp, err)) != ENG_OK ||
            (rc = state_alloc(alloc, &b.img, 4, is, err)) != ENG_OK)
            goto done;
        b.on_dev = p->dev != ENG_DEVICE_CPU;
        if ((rc = twin_alloc(p, &b.d_x_in, &b.x_in, err)) != ENG_OK ||
            (rc = twin_alloc(p, &b.d_pred, &b.pred, err)) != ENG_OK ||
            (rc = twin_alloc(p, &b.d_cond, &b.cond, err)) != ENG_OK ||
            (rc = twin_alloc(p, &b.d_img, &b.img, err)) != ENG_OK)
            goto done;
        if (b.on_dev && (rc = eng_tensor_alloc(&b.d_lat, dalloc, ENG_LIFE_STATE, "sd_pipe", p->dt,
                                               4, ls, err)) != ENG_OK)
            goto done;
        if ((ts = (float *)malloc((size_t)nb * sizeof *ts)) == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "sd_pipe_generate: out of memory");
            goto done;
        }
    }
    float *x = (float *)b.x.data, *x_in = (float *)b.x_in.data, *pred = (float *)b.pred.data;
    float *noise = (float *)b.noise.data, *tmp = (float *)b.tmp.data;

    /* 1. conditioning: rows [0, B) the negative prompt (when guided), then B rows of the prompt;
     * weighted on the host, then uploaded once */
    {
        const int64_t row = CTX_LEN * hidden;
        eng_tensor one;
        const int64_t os[3] = {1, CTX_LEN, hidden};
        float *c = (float *)b.cond.data;
        int64_t cut = 0;
        if ((rc = eng_tensor_init(&one, c + (nb - 1) * row, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, os,
                                  err)) != ENG_OK ||
            (rc = sd_pipe_encode_prompt(p, &one, g->prompt, g->clip_skip, g->weights, &cut, err)) !=
                ENG_OK)
            goto done;
        if (cut > 0 && g->progress != NULL)
            fprintf(g->progress,
                    "warning: the prompt is %lld tokens too long; only the first 75 are used\n",
                    (long long)cut);
        for (int64_t i = nb - B; i < nb - 1; i++)
            memcpy(c + i * row, c + (nb - 1) * row, (size_t)row * sizeof *c);
        if (cfg_on) {
            if ((rc = eng_tensor_init(&one, c, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, os, err)) !=
                    ENG_OK ||
                (rc = sd_pipe_encode_prompt(p, &one, g->negative, g->clip_skip, g->weights, &cut,
                                            err)) != ENG_OK)
                goto done;
            for (int64_t i = 1; i < B; i++)
                memcpy(c + i * row, c, (size_t)row * sizeof *c);
        }
        if (b.on_dev && (rc = sd_block_upload(p->ctx, NULL, &b.d_cond, c, err)) != ENG_OK)
            goto done;
    }
    const double t1 = eng_bench_now_s();

    /* 2. the sampler and the initial latents (the sampler's maths stay on the host: the latents
     * are small, and each model call moves them to and from the device) */
    if ((rc = sd_sampler_create(&smp, g->sampler, g->schedule, &p->sched, g->steps,
                                g->init_image != NULL ? g->strength : 1.0, n, err)) != ENG_OK)
        goto done;
    for (int64_t i = 0; i < B; i++) {
        if (g->init_noise != NULL) {
            memcpy(noise + i * per, g->init_noise + i * per, (size_t)per * sizeof *noise);
        } else if ((rc = noise_nhwc(s, noise + i * per, tmp, h, w, C, g->seed + (uint64_t)i,
                                    SD_PIPE_NOISE_INIT, err)) != ENG_OK) {
            goto done;
        }
    }
    if (g->init_image == NULL) {
        const float sigma = (float)sd_sampler_init_sigma(smp);
        for (int64_t i = 0; i < n; i++)
            x[i] = noise[i] * sigma;
    } else {
        /* encode the image ([0, 1] -> [-1, 1]) once per batch image: each has its own sample */
        float *im = (float *)b.img.data;
        for (int64_t i = 0; i < H * W * 3; i++)
            im[i] = 2.0f * g->init_image[i] - 1.0f;
        if (b.on_dev && (rc = sd_block_upload(p->ctx, NULL, &b.d_img, im, err)) != ENG_OK)
            goto done;
        for (int64_t i = 0; i < B; i++) {
            eng_tensor lat;
            float *enc_noise = pred; /* free until the loop starts */
            if ((rc = noise_nhwc(s, enc_noise, tmp, h, w, C, g->seed + (uint64_t)i,
                                 SD_PIPE_NOISE_ENCODE, err)) != ENG_OK ||
                (rc = latent_for_vae(p, &b, &lat, ls, i, 0, err)) != ENG_OK ||
                (rc = sd_vae_encode(p->vae, p->ctx, NULL, arena, &lat, &b.d_img, enc_noise,
                                    SD_VAE_SCALE_SD1, err)) != ENG_OK)
                goto done;
            if (b.on_dev && (rc = sd_block_download(p->ctx, NULL, x + i * per, &lat, err)) != 0)
                goto done;
        }
        sd_sampler_add_noise(smp, x, noise);
    }

    /* 3. the denoising loop */
    const int64_t calls = sd_sampler_count(smp);
    if (g->progress != NULL) {
        eng_progress_params pp;
        eng_progress_params_init(&pp);
        pp.out = g->progress;
        pp.label = "sample";
        pp.total = calls;
        if ((rc = eng_progress_create(&bar, &pp, err)) != ENG_OK) goto done;
    }
    for (int64_t i = 0; i < calls; i++) {
        const float scale = (float)sd_sampler_input_scale(smp, i);
        const float t = (float)sd_sampler_timestep(smp, i);
        for (int64_t k = 0; k < n; k++)
            x_in[k] = x[k] * scale;
        if (cfg_on) memcpy(x_in + n, x_in, (size_t)n * sizeof *x_in);
        for (int64_t k = 0; k < nb; k++)
            ts[k] = t;
        {
            eng_tensor cond = b.d_cond;
            if (!cfg_on) cond.shape[0] = B; /* no negative rows were written */
            if (b.on_dev && (rc = sd_block_upload(p->ctx, NULL, &b.d_x_in, x_in, err)) != ENG_OK)
                goto done;
            if ((rc = sd_unet_forward(p->unet, p->ctx, NULL, arena, &b.d_pred, &b.d_x_in, ts, &cond,
                                      err)) != ENG_OK)
                goto done;
            if (b.on_dev && (rc = sd_block_download(p->ctx, NULL, pred, &b.d_pred, err)) != ENG_OK)
                goto done;
        }
        if (cfg_on) {
            const float gs = (float)g->cfg_scale;
            for (int64_t k = 0; k < n; k++)
                pred[k] = pred[k] + gs * (pred[n + k] - pred[k]);
        }
        if (sd_sampler_needs_noise(smp, i)) {
            for (int64_t j = 0; j < B; j++)
                if ((rc = noise_nhwc(s, noise + j * per, tmp, h, w, C, g->seed + (uint64_t)j,
                                     SD_PIPE_NOISE_STEP + (uint64_t)i, err)) != ENG_OK)
                    goto done;
        }
        if ((rc = sd_sampler_step(smp, i, x, pred, noise, err)) != ENG_OK) goto done;
        if (bar != NULL) eng_progress_add(bar, 1, NULL);
    }
    if (bar != NULL) eng_progress_finish(bar, NULL);
    const double t2 = eng_bench_now_s();

    /* 4. decode, one image at a time */
    if ((res.pixels = (float *)malloc((size_t)(B * H * W * 3) * sizeof(float))) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_pipe_generate: out of memory for %lld images",
                         (long long)B);
        goto done;
    }
    res.batch = B, res.height = H, res.width = W;
    for (int64_t i = 0; i < B; i++) {
        eng_tensor lat;
        const float *y = (const float *)b.img.data;
        float *dst = res.pixels + i * H * W * 3;
        if ((rc = latent_for_vae(p, &b, &lat, ls, i, 1, err)) != ENG_OK ||
            (rc = sd_vae_decode(p->vae, p->ctx, NULL, arena, &b.d_img, &lat, SD_VAE_SCALE_SD1,
                                err)) != ENG_OK)
            goto done;
        if (b.on_dev &&
            (rc = sd_block_download(p->ctx, NULL, (float *)b.img.data, &b.d_img, err)) != ENG_OK)
            goto done;
        for (int64_t k = 0; k < H * W * 3; k++) {
            const float v = y[k] * 0.5f + 0.5f; /* diffusers: (image / 2 + 0.5).clamp(0, 1) */
            dst[k] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    }
    res.calls = calls;
    res.seconds_text = t1 - t0;
    res.seconds_sample = t2 - t1;
    res.seconds_decode = eng_bench_now_s() - t2;
    *out = res;
    memset(&res, 0, sizeof res);
done:
    sd_images_free(&res);
    eng_progress_destroy(bar);
    sd_sampler_destroy(smp);
    free(ts);
    if (b.on_dev) {
        eng_tensor_free(dalloc, &b.d_lat);
        eng_tensor_free(dalloc, &b.d_img);
        eng_tensor_free(dalloc, &b.d_cond);
        eng_tensor_free(dalloc, &b.d_pred);
        eng_tensor_free(dalloc, &b.d_x_in);
    }
    eng_tensor_free(alloc, &b.img);
    eng_tensor_free(alloc, &b.tmp);
    eng_tensor_free(alloc, &b.noise);
    eng_tensor_free(alloc, &b.cond);
    eng_tensor_free(alloc, &b.pred);
    eng_tensor_free(alloc, &b.x_in);
    eng_tensor_free(alloc, &b.x);
    return rc;
}
