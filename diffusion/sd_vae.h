/* sd_vae.h: the Stable Diffusion VAE decoder (diffusers AutoencoderKL.decode): latents -> image.
 *
 *   sd_vae *vae = NULL; eng_err err = {0};
 *   if (sd_vae_load(&vae, model, ctx, &err) != ENG_OK) { fprintf(stderr, "%s\n", err.msg); ... }
 *   // latent: (N, h, w, 4) f32 NHWC on the CPU; image: (N, f h, f w, 3), f = sd_vae_upscale(vae)
 *   rc = sd_vae_decode(vae, ctx, NULL, eng_alloc_scratch(alloc), &image, &latent,
 *                      SD_VAE_SCALE_SD1, &err);
 *   // the decode leaves the arena rewound to where it found it
 *   sd_vae_destroy(vae);
 *
 * The network (diffusers names under vae.): the latent is divided by `scale`, then
 * post_quant_conv (1x1), decoder.conv_in (3x3), decoder.mid_block (resnet, single-head
 * self-attention over the h*w tokens with a residual, resnet), decoder.up_blocks.0..L-1 (each
 * layers_per_block + 1 resnets, then nearest 2x upsampling + 3x3 conv on all but the last),
 * conv_norm_out (GroupNorm + SiLU), conv_out. A resnet is norm1 -> SiLU -> conv1 -> norm2 ->
 * SiLU -> conv2, plus the input (through the 1x1 conv_shortcut when the width changes); every
 * GroupNorm has the config's groups (32) and eps 1e-6. The output is not clamped: a trained VAE
 * gives roughly [-1, 1] (map with (x + 1) / 2 to [0, 1] for an image). The encoder is not here.
 *
 * Precision and devices: weights are loaded as f32 into the context's CPU allocator
 * (ENG_LIFE_WEIGHTS, owner "vae"); latent and image must be f32 CPU tensors. Activations come
 * from the caller's scratch arena (no malloc during a decode): two buffers of the largest
 * activation that block outputs alternate between, plus one block's temporaries, rewound after
 * each block (about 1.2 GiB at 512x512 for SD, plus the attention's score matrix).
 * Ownership: the sd_vae owns its weight tensors (retains the CPU allocator of `ctx` until
 * sd_vae_destroy). Threads: one decode at a time per sd_vae (it only reads the weights, but
 * the arena and stream are the caller's); load/destroy from one thread. */
#ifndef SD_VAE_H
#define SD_VAE_H

#include "eng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The latent scaling factor of the SD 1.x / 2.x VAE (diffusers config scaling_factor): the UNet
 * works on vae latents times this, so a decode divides by it. */
#define SD_VAE_SCALE_SD1 0.18215f
/* The most resnets per decoder level this module loads (layers_per_block + 1). */
#define SD_VAE_MAX_RESNETS 4
/* The largest latent batch, height and width sd_vae_decode accepts (the arena bounds the rest). */
#define SD_VAE_MAX_SIDE 4096

typedef struct sd_vae sd_vae; /* opaque */
/* From weights/wt.h, declared here so that this header stands alone with only engine/ on the
 * include path (the eng.headers.standalone test); include wt.h to use them. */
typedef struct wt_model wt_model;
struct wt_vae_config;

/* Loads the decoder weights of `m` (config from wt_model_config(m)->vae) as f32 into
 * eng_ctx_alloc(ctx, ENG_DEVICE_CPU). On ENG_OK the caller owns *out (sd_vae_destroy).
 * Errors: ENG_E_UNSUPPORTED (a config beyond this module's limits: levels, resnets per level),
 * those of wt_model_load_tensor (ENG_E_INVALID_ARG, ENG_E_OOM, ...). */
int sd_vae_load(sd_vae **out, const wt_model *m, eng_ctx *ctx, eng_err *err);
void sd_vae_destroy(sd_vae *v); /* NULL is a no-op */

const struct wt_vae_config *sd_vae_config(const sd_vae *v);
/* Image pixels per latent pixel along each side: 2^(levels - 1) (8 for SD, 2 for the tiny
 * preset). */
int64_t sd_vae_upscale(const sd_vae *v);

/* image (N, f h, f w, out_channels) = decoder(latent / scale), latent (N, h, w,
 * latent_channels); both f32, contiguous, on the CPU; f = sd_vae_upscale(v). `scale` is the
 * latent scaling factor (SD_VAE_SCALE_SD1 for SD latents; 1 to decode raw VAE latents).
 * `s` NULL: the CPU default stream. Scratch comes from `scratch` (left rewound to where it was).
 * Errors: ENG_E_INVALID_ARG (wrong latent channels, rank, dtype, device, sizes beyond
 * SD_VAE_MAX_SIDE, an image of the wrong shape, scale not finite and > 0; each message names
 * both shapes), ENG_E_OOM (scratch), errors of the ops. */
int sd_vae_decode(const sd_vae *v,
                  eng_ctx *ctx,
                  eng_stream *s,
                  eng_arena *scratch,
                  eng_tensor *image,
                  const eng_tensor *latent,
                  float scale,
                  eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* SD_VAE_H */
