/* sd_vae.h: the Stable Diffusion VAE (diffusers AutoencoderKL): decode latents -> image, and
 * encode image -> latents (img2img).
 *
 *   sd_vae *vae = NULL; eng_err err = {0};
 *   if (sd_vae_load(&vae, model, ctx, &err) != ENG_OK) { fprintf(stderr, "%s\n", err.msg); ... }
 *   // or on a GPU: sd_vae_load_on(&vae, model, ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16,
 *   //                             SD_VAE_DECODER | SD_VAE_ENCODER, &err)
 *   // latent: (N, h, w, 4) NHWC; image: (N, f h, f w, 3), f = sd_vae_upscale(vae); both of the
 *   // VAE's dtype and device
 *   rc = sd_vae_decode(vae, ctx, NULL, eng_alloc_scratch(alloc), &image, &latent,
 *                      SD_VAE_SCALE_SD1, &err);
 *   // img2img: image in [-1, 1] -> latent = 0.18215 * (mean + std * noise), noise (N, h, w, 4)
 *   rc = sd_vae_encode(vae, ctx, NULL, eng_alloc_scratch(alloc), &latent, &image, noise,
 *                      SD_VAE_SCALE_SD1, &err);
 *   // each pass leaves the arena rewound to where it found it
 *   sd_vae_destroy(vae);
 *
 * The decoder (diffusers names under vae.): the latent is divided by `scale`, then
 * post_quant_conv (1x1), decoder.conv_in (3x3), decoder.mid_block (resnet, single-head
 * self-attention over the h*w tokens with a residual, resnet), decoder.up_blocks.0..L-1 (each
 * layers_per_block + 1 resnets, then nearest 2x upsampling + 3x3 conv on all but the last),
 * conv_norm_out (GroupNorm + SiLU), conv_out. The output is not clamped: a trained VAE gives
 * roughly [-1, 1] (map with (x + 1) / 2 to [0, 1] for an image).
 * The encoder: encoder.conv_in (3x3), encoder.down_blocks.0..L-1 (layers_per_block resnets,
 * then on all but the last a Downsample2D: one zero row below and one zero column to the right,
 * 3x3 stride-2 conv without padding), mid_block (as the decoder's), conv_norm_out + SiLU,
 * conv_out (to 2 latent_channels), quant_conv (1x1): the moments, mean = the first
 * latent_channels channels, logvar the rest. DiagonalGaussianDistribution: logvar clamped to
 * [-30, 20], std = exp(logvar / 2); the latent is scale * (mean + std * noise) (diffusers
 * img2img: latent_dist.sample(generator) * scaling_factor), or scale * mean (the mode).
 * Resnets (sd_block.h) are norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus the input
 * (through the 1x1 conv_shortcut when the width changes); every GroupNorm has the config's
 * groups (32) and eps 1e-6.
 *
 * Precision and devices: sd_vae_load and sd_vae_load_parts put the weights in f32 into the
 * context's CPU allocator; sd_vae_load_on into the allocator of any attached device in f32,
 * f16 or bf16 (ENG_LIFE_WEIGHTS, owner "vae", through host memory one tensor at a time:
 * sd_block.h). Latents and images are tensors of that dtype and device; the encoder's noise is
 * host floats. Every computation is an eng_op_* on the VAE's device except the encoder's last
 * step (clamp and exp of the log-variance, which the ops lack): it runs on the host, so on a
 * device the latent-sized moments are downloaded in f32 and the latent uploaded (synchronous;
 * staging in the CPU allocator's default arena). Activations come from the caller's scratch
 * arena, of the VAE's device (no malloc during a pass): two buffers of the largest activation
 * that block outputs alternate between, plus one block's temporaries, rewound after each block
 * (at 512x512 for SD about 1.2 GiB to decode and 0.7 GiB to encode in f32, half in f16, plus
 * the attention's score matrix on the CPU). sd_vae_load_parts loads only the decoder (about
 * 60% of the weights) or only the encoder. f16 caveat: SD's VAE decoder is known to overflow
 * f16 on some latents at large sizes (NaN images, the reason diffusers upcasts some VAEs); load
 * it in f32 or bf16 then.
 * Ownership: the sd_vae owns its weight tensors (retains the device's allocator of `ctx` until
 * sd_vae_destroy). Threads: one pass at a time per sd_vae (it only reads the weights, but
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
/* The largest latent batch, height and width sd_vae_decode and sd_vae_encode accept (the arena
 * bounds the rest). */
#define SD_VAE_MAX_SIDE 4096

/* The halves of the network sd_vae_load_parts loads (bit flags). */
#define SD_VAE_DECODER 1u
#define SD_VAE_ENCODER 2u

typedef struct sd_vae sd_vae; /* opaque */
/* From weights/wt.h, declared here so that this header stands alone with only engine/ on the
 * include path (the eng.headers.standalone test); include wt.h to use them. */
typedef struct wt_model wt_model;
struct wt_vae_config;

/* Loads the decoder and the encoder weights of `m` (config from wt_model_config(m)->vae) as
 * f32 into eng_ctx_alloc(ctx, ENG_DEVICE_CPU): sd_vae_load_parts(out, m, ctx, SD_VAE_DECODER |
 * SD_VAE_ENCODER, err). On ENG_OK the caller owns *out (sd_vae_destroy).
 * Errors: ENG_E_UNSUPPORTED (a config beyond this module's limits: levels, resnets per level),
 * ENG_E_FORMAT (a tensor of another shape than the config implies), those of
 * wt_model_load_tensor (ENG_E_INVALID_ARG, ENG_E_OOM, ...). */
int sd_vae_load(sd_vae **out, const wt_model *m, eng_ctx *ctx, eng_err *err);
/* The same for the halves in `parts` (SD_VAE_DECODER, SD_VAE_ENCODER or both): a VAE without
 * its encoder refuses sd_vae_encode, one without its decoder sd_vae_decode.
 * Errors: those of sd_vae_load, ENG_E_INVALID_ARG (parts 0 or with unknown bits). */
int sd_vae_load_parts(sd_vae **out, const wt_model *m, eng_ctx *ctx, unsigned parts, eng_err *err);
/* The same into eng_ctx_alloc(ctx, device) as `dtype`: ENG_DEVICE_CPU with ENG_DTYPE_F32 is
 * sd_vae_load_parts; ENG_DEVICE_CUDA (attached with eng_cuda_attach) takes F32, F16 or BF16.
 * Errors: those of sd_vae_load_parts; ENG_E_UNSUPPORTED (the device is not attached, a dtype it
 * does not run), ENG_E_DEVICE (an upload failed). */
int sd_vae_load_on(sd_vae **out,
                   const wt_model *m,
                   eng_ctx *ctx,
                   eng_device_kind device,
                   eng_dtype dtype,
                   unsigned parts,
                   eng_err *err);
void sd_vae_destroy(sd_vae *v); /* NULL is a no-op */

const struct wt_vae_config *sd_vae_config(const sd_vae *v);
/* The halves loaded: SD_VAE_DECODER | SD_VAE_ENCODER for sd_vae_load. */
unsigned sd_vae_parts(const sd_vae *v);
eng_device_kind sd_vae_device(const sd_vae *v); /* where its weights are and its passes run */
eng_dtype sd_vae_dtype(const sd_vae *v);        /* of the weights, latents and images */
/* Image pixels per latent pixel along each side: 2^(levels - 1) (8 for SD, 2 for the tiny
 * preset). */
int64_t sd_vae_upscale(const sd_vae *v);

/* image (N, f h, f w, out_channels) = decoder(latent / scale), latent (N, h, w,
 * latent_channels); both contiguous, of the VAE's dtype and device (sd_vae_dtype,
 * sd_vae_device); f = sd_vae_upscale(v). `scale` is the latent scaling factor
 * (SD_VAE_SCALE_SD1 for SD latents; 1 to decode raw VAE latents). `s` NULL: the device's
 * default stream. Scratch comes from `scratch`, an arena of the VAE's device (left rewound).
 * Errors: ENG_E_INVALID_ARG (wrong latent channels, rank, dtype, device, sizes beyond
 * SD_VAE_MAX_SIDE, an image of the wrong shape, scale not finite and > 0, no decoder loaded;
 * each message names both shapes), ENG_E_OOM (scratch), errors of the ops. */
int sd_vae_decode(const sd_vae *v,
                  eng_ctx *ctx,
                  eng_stream *s,
                  eng_arena *scratch,
                  eng_tensor *image,
                  const eng_tensor *latent,
                  float scale,
                  eng_err *err);

/* latent (N, h, w, latent_channels) = scale * (mean + exp(0.5 clamp(logvar, -30, 20)) * noise)
 * where (mean, logvar) = quant_conv(encoder(image)), image (N, f h, f w, in_channels) with
 * values in [-1, 1] (map [0, 1] pixels with 2 x - 1); f = sd_vae_upscale(v). noise: N h w
 * latent_channels floats in the latent's NHWC order (standard normals; it may be the latent's
 * own memory on the CPU), or NULL for the mean (the distribution's mode), on the host.
 * `scale`: SD_VAE_SCALE_SD1 gives the UNet's latents (diffusers img2img), 1 the raw VAE
 * latents. Image and latent contiguous, of the VAE's dtype and device; `s` NULL: the device's
 * default stream; scratch from `scratch`, of the VAE's device (left rewound). The noise is not
 * checked (NaN propagates). On a device the last step is a host round trip (see the top).
 * Errors: ENG_E_INVALID_ARG (image rank, dtype, device, channels, sides not multiples of f or
 * beyond f SD_VAE_MAX_SIDE; a latent of the wrong shape; scale not finite and > 0; no encoder
 * loaded; each message names the shapes), ENG_E_OOM (scratch, host staging), errors of the ops
 * and transfers. */
int sd_vae_encode(const sd_vae *v,
                  eng_ctx *ctx,
                  eng_stream *s,
                  eng_arena *scratch,
                  eng_tensor *latent,
                  const eng_tensor *image,
                  const float *noise,
                  float scale,
                  eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* SD_VAE_H */
