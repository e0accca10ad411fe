/* sd_pipe.h: the Stable Diffusion 1.x / 2.x pipeline: prompt -> text encoder -> sampler loop
 * over the UNet with classifier-free guidance -> VAE decode (txt2img), or init image -> VAE
 * encode -> noised to the strength's timestep -> the same loop (img2img).
 *
 *   sd_pipe *pipe = NULL; eng_err err = {0};
 *   sd_pipe_params pp; sd_pipe_params_init(&pp);
 *   pp.model = "v1-5-pruned-emaonly.safetensors"; pp.vocab = "bpe_simple_vocab_16e6.txt.gz";
 *   if (sd_pipe_load(&pipe, ctx, &pp, &err) != ENG_OK) { fprintf(stderr, "%s\n", err.msg); ... }
 *   sd_gen_params g; sd_gen_params_init(&g);
 *   g.prompt = "a (red:1.2) fox"; g.seed = 42; g.steps = 20;
 *   sd_images out = {0};
 *   if (sd_pipe_generate(pipe, &g, &out, &err) == ENG_OK) ... out.pixels (batch, H, W, 3) in [0, 1]
 *   sd_images_free(&out); sd_pipe_destroy(pipe);
 *
 * What a generation does (diffusers' StableDiffusionPipeline / Img2ImgPipeline with the matching
 * scheduler, diffusion/sd_sampler.h):
 *  1. The prompt and the negative prompt (default "") are tokenized with A1111 emphasis
 *     ((a), [a], (a:1.3)), 77 tokens: start, the first 75 tokens, end, padding (<|endoftext|> for
 *     SD 1.x, "!" for SD 2.x, as their tokenizers pad); each goes through the text encoder
 *     (clip_skip), then A1111's weighting: z *= the token's weight, then z *= mean(z before) /
 *     mean(z after), the means over all of that prompt's values.
 *  2. Initial latents, image b of the batch (latent (h, w) = (H, W) / 8): standard normals of the
 *     engine's Philox stream (seed + b, offset SD_PIPE_NOISE_INIT) in NCHW order (the layout of
 *     torch.randn((1, 4, h, w)) on CUDA, so a seed gives the noise popular CUDA front-ends start
 *     from), or the caller's `init_noise`; times the sampler's init sigma. img2img instead
 *     encodes the image (VAE sample with noise from offset SD_PIPE_NOISE_ENCODE, times 0.18215)
 *     and noises it to the first timestep with the initial noise.
 *  3. For each model call i: x_in = x * input_scale(i); with cfg_scale > 1 the UNet runs once on
 *     the batch [x_in (negative prompt), x_in (prompt)] (one batch of 2 per image) and
 *     pred = uncond + cfg_scale (cond - uncond); cfg_scale <= 1 runs the prompt alone. The
 *     sampler steps x; samplers that need noise at a step draw it from (seed + b, offset
 *     SD_PIPE_NOISE_STEP + i), NCHW order.
 *  4. The VAE decodes x / 0.18215 one image at a time; pixels = clamp((y + 1) / 2, 0, 1).
 *
 * Precision and devices: params.device picks where the text encoder, UNet and VAE keep their
 * weights and run (every computation an eng_op_* of that device), params.dtype their type: f32
 * on the CPU (its only type), f16 by default on CUDA (f32 and bf16 selectable; the device must
 * be attached to the context first, eng_cuda_attach). The sampler's maths stay on the host in
 * f32 whatever the device: the latents are small (4 h w floats per image), so each model call
 * uploads the scaled latents (converted to the dtype on the host), runs the UNet on the device
 * and downloads its prediction as f32; the CFG combine, the sampler step and the noise draws
 * are host loops, exactly as on the CPU, so a seed draws the same noise on every device. The
 * conditioning is encoded on the device, brought back in f32 for A1111's weighting (which needs
 * whole-prompt means, a reduction the ops lack), and uploaded once per generation; the VAE
 * decodes on the device and the image comes back in f32 for the clamp. The transfers are
 * synchronous copies on the device's default stream (sd_block.h), a few per step.
 * Memory: the weights (ENG_LIFE_WEIGHTS, on the device), the latents and conditioning
 * (ENG_LIFE_STATE on the host, and their twins in the dtype on a device, freed at the end of
 * each generation), the activations from the device allocator's scratch arena, rewound after
 * every module pass, so steps after the first allocate nothing; host staging for the
 * conversions comes from the CPU allocator's scratch arena.
 * Ownership: the sd_pipe owns its model, tokenizer and modules; results are the caller's
 * (sd_images_free). Threads: one generation at a time per sd_pipe. */
#ifndef SD_PIPE_H
#define SD_PIPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eng.h"
#include "sd_sampler.h"
#include "wt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Philox stream offsets (eng_rng.h) of the pipeline's random draws; each image of a batch uses
 * seed + its index. */
#define SD_PIPE_NOISE_INIT   0u             /* the initial latents */
#define SD_PIPE_NOISE_STEP   1u             /* + model call index: a sampler's per-step noise */
#define SD_PIPE_NOISE_ENCODE 0x100000000ull /* img2img: the VAE encoder's sample */

#define SD_PIPE_MAX_BATCH 64
#define SD_PIPE_MAX_SIDE  4096 /* image width and height, pixels */

typedef struct sd_pipe sd_pipe; /* opaque */

typedef struct sd_pipe_params {
    const char *model; /* .safetensors (ldm single file) or a diffusers folder */
    /* CLIP vocabulary (tok_clip_load's layouts). A diffusers folder's own tokenizer/ is used
     * when present and this is NULL; otherwise it is required. */
    const char *vocab;
    /* -1: from the checkpoint (a diffusers folder's scheduler config prediction_type; single
     * files: epsilon, since SD 2.x 768-v and 512-base files have the same tensors), else an
     * sd_prediction. */
    int prediction;
    eng_device_kind device; /* ENG_DEVICE_CPU (default) or ENG_DEVICE_CUDA (attached) */
    /* -1 (default): the device's default, f32 on the CPU, f16 on CUDA; else an eng_dtype:
     * ENG_DTYPE_F32 (the CPU's only one), ENG_DTYPE_F16 or ENG_DTYPE_BF16 on CUDA. */
    int dtype;
} sd_pipe_params;
void sd_pipe_params_init(sd_pipe_params *p);

typedef struct sd_gen_params {
    const char *prompt;        /* UTF-8; NULL: "" */
    const char *negative;      /* NULL: "" */
    int steps;                 /* 1..1000, default 20 */
    double cfg_scale;          /* default 7; <= 1 turns guidance off (one UNet batch) */
    sd_sampler_kind sampler;   /* default SD_SAMPLER_EULER_A */
    sd_schedule_kind schedule; /* default SD_SCHEDULE_NORMAL */
    uint64_t seed;             /* default 42 */
    int width, height;         /* pixels, multiples of 64; default 512 (SD 1.x) / 768 (SD 2.x v) */
    int batch;                 /* 1..SD_PIPE_MAX_BATCH, default 1 */
    int clip_skip;             /* 1 = last layer (default), 2 = penultimate, ... */
    int weights;               /* 1 (default): parse A1111 emphasis; 0: the prompt as written */
    /* img2img: RGB pixels (height, width, 3) in [0, 1], same size as width x height, and the
     * strength in (0, 1]; NULL for txt2img. */
    const float *init_image;
    double strength; /* default 0.75 */
    /* (batch, h, w, 4) NHWC standard normals replacing the seeded initial noise (parity tests,
     * --init-noise); NULL: from the seed. */
    const float *init_noise;
    FILE *progress; /* a progress bar per model call; NULL: none */
} sd_gen_params;
void sd_gen_params_init(sd_gen_params *g);

typedef struct sd_images {
    int64_t batch, height, width; /* pixels is (batch, height, width, 3) */
    float *pixels;                /* RGB in [0, 1]; free with sd_images_free */
    int64_t calls;                /* UNet passes made (each a batch of 2 per image with CFG) */
    double seconds_text;          /* tokenizer + text encoder */
    double seconds_sample;        /* initial latents (img2img: the VAE encode) + the loop */
    double seconds_decode;        /* VAE decode */
} sd_images;
void sd_images_free(sd_images *im); /* zeroes the struct; NULL / zeroed are no-ops */

/* Opens the checkpoint, loads the tokenizer, text encoder, UNet and VAE onto params.device in
 * params.dtype (see the top).
 * Errors: those of wt_model_open (ENG_E_IO, ENG_E_FORMAT, ENG_E_UNSUPPORTED for .ckpt, ...),
 * tok_clip_load, the module loaders; ENG_E_INVALID_ARG (no vocabulary, bad prediction, a device
 * that is neither CPU nor CUDA); ENG_E_UNSUPPORTED (the device is not attached to ctx, a dtype
 * the device does not run). */
int sd_pipe_load(sd_pipe **out, eng_ctx *ctx, const sd_pipe_params *p, eng_err *err);
void sd_pipe_destroy(sd_pipe *p); /* NULL is a no-op */

const wt_sd_config *sd_pipe_config(const sd_pipe *p);
/* The file holding the UNet's weights (the checkpoint itself for a single file); borrowed. */
const char *sd_pipe_unet_file(const sd_pipe *p);
sd_prediction sd_pipe_prediction(const sd_pipe *p);
eng_device_kind sd_pipe_device(const sd_pipe *p); /* where the modules run */
eng_dtype sd_pipe_dtype(const sd_pipe *p);        /* their weights' and activations' type */
/* The scheduler config the sampler is built from (a diffusers folder's scheduler_config.json
 * values, SD defaults otherwise). */
const sd_scheduler_config *sd_pipe_scheduler(const sd_pipe *p);
/* Fills g's width/height defaults for this model (512, or 768 for SD 2.x v-prediction) when
 * they are 0. */
void sd_pipe_default_size(const sd_pipe *p, sd_gen_params *g);

/* The conditioning of one prompt: out (1, 77, hidden) f32 CPU (the caller's) = the weighted
 * text-encoder states (step 1 above; the encoder runs on the pipeline's device).
 * Errors: ENG_E_INVALID_ARG (invalid UTF-8, bad clip_skip, out of the wrong shape), ENG_E_OOM,
 * those of the transfers (ENG_E_DEVICE). Sets *truncated (may be NULL) to the number of prompt
 * tokens cut beyond 75. */
int sd_pipe_encode_prompt(sd_pipe *p,
                          eng_tensor *out,
                          const char *prompt,
                          int clip_skip,
                          int weights,
                          int64_t *truncated,
                          eng_err *err);

/* Runs a generation. On ENG_OK *out holds the images (the caller's, sd_images_free).
 * Errors: ENG_E_INVALID_ARG (a parameter out of range, naming it: sizes not multiples of 64,
 * steps, strength, batch, an init image without a strength...), ENG_E_OOM (the message names
 * the allocator's budget), ENG_E_CANCELLED never (no cancellation yet), errors of the modules. */
int sd_pipe_generate(sd_pipe *p, const sd_gen_params *g, sd_images *out, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* SD_PIPE_H */
