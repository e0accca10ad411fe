/* sd_unet.h: the Stable Diffusion 1.x / 2.x UNet (diffusers UNet2DConditionModel), one step.
 *
 *   sd_unet *unet = NULL; eng_err err = {0};
 *   if (sd_unet_load(&unet, model, ctx, &err) != ENG_OK) { fprintf(stderr, "%s\n", err.msg); ... }
 *   // or on a GPU: sd_unet_load_on(&unet, model, ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, &err)
 *   // latent, out: (N, h, w, 4) NHWC; context: (N, Lc, context_dim) (Lc = 77 from CLIP), all of
 *   // the UNet's dtype and device; timesteps: N host floats (the scheduler's t for each sample)
 *   rc = sd_unet_forward(unet, ctx, NULL, eng_alloc_scratch(alloc), &out, &latent, timesteps,
 *                        &context, &err);
 *   // the pass leaves the arena rewound to where it found it
 *   sd_unet_destroy(unet);
 *
 * The network (diffusers names under unet.): time_proj (sinusoidal, flip_sin_to_cos, shift 0,
 * width block_out[0]) -> time_embedding.linear_1 -> SiLU -> linear_2 gives temb; conv_in (3x3);
 * down_blocks.i (layers_per_block resnets, each followed by a Transformer2DModel on levels with
 * attention; a 3x3 stride-2 conv downsampler on all but the last level); mid_block (resnet,
 * transformer, resnet); up_blocks.i (layers_per_block + 1 resnets on concat(h, skip) along the
 * channels, the skips popped in reverse, a transformer after each on levels with attention,
 * nearest 2x + 3x3 conv on all but the last); conv_norm_out (GroupNorm + SiLU), conv_out.
 * A resnet is norm1 -> SiLU -> conv1 -> + time_emb_proj(SiLU(temb)) over all pixels -> norm2 ->
 * SiLU -> conv2, + the input (1x1 conv_shortcut when the width changes); GroupNorms have the
 * config's groups and eps 1e-5. A transformer is GroupNorm (eps 1e-6) -> proj_in (1x1 conv, or
 * linear when config linear_proj) -> one BasicTransformerBlock (LayerNorm eps 1e-5 before each
 * of: self-attention, cross-attention to the context, GEGLU feed-forward of width 4 C; each
 * with a residual) -> proj_out -> + the input. Attention has heads[level] heads of C / heads.
 *
 * Precision and devices: sd_unet_load puts the weights in f32 into the context's CPU allocator;
 * sd_unet_load_on into the allocator of any attached device, in f32 (the CPU's only type), f16
 * or bf16 (ENG_LIFE_WEIGHTS, through host memory one tensor at a time: sd_block.h). A pass takes
 * latent, context and out of that dtype and device and runs every computation as an eng_op_* on
 * it (f32 accumulation in the device kernels); only the N timesteps are uploaded (a synchronous
 * copy of N floats when the UNet is on a device). Activations come from the caller's scratch
 * arena, which must be of the UNet's device (no malloc during a pass): every block output stays
 * until the end of the pass (the skips need most of them), each block's temporaries are rewound
 * after it; roughly 30 activations of the latent's size times the width (about 0.5 GiB per
 * sample at 64x64 latents for SD 1.x in f32, half in f16), plus the attention's scores on the
 * CPU. Ownership: the sd_unet owns its weights (retains the device's allocator until
 * sd_unet_destroy). Threads: one pass at a time per sd_unet; load/destroy from one thread. */
#ifndef SD_UNET_H
#define SD_UNET_H

#include "eng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most resnets per down level this module loads (layers_per_block). */
#define SD_UNET_MAX_LAYERS 3
/* The most weight tensors (SD 1.5 has 686). */
#define SD_UNET_MAX_TENSORS 1024
/* The largest latent batch, height, width and context length sd_unet_forward accepts. */
#define SD_UNET_MAX_SIDE 4096

typedef struct sd_unet sd_unet; /* opaque */
/* From weights/wt.h, declared here so that this header stands alone with only engine/ on the
 * include path; include wt.h to use them. */
typedef struct wt_model wt_model;
struct wt_unet_config;

/* Loads the UNet weights of `m` (config from wt_model_config(m)->unet) as f32 into
 * eng_ctx_alloc(ctx, ENG_DEVICE_CPU). On ENG_OK the caller owns *out (sd_unet_destroy).
 * Errors: ENG_E_UNSUPPORTED (levels, layers per block or heads beyond this module's limits),
 * ENG_E_OOM, those of wt_model_load_tensor (ENG_E_INVALID_ARG for a missing or misshapen
 * tensor, ...). */
int sd_unet_load(sd_unet **out, const wt_model *m, eng_ctx *ctx, eng_err *err);
/* The same into eng_ctx_alloc(ctx, device) as `dtype`: ENG_DEVICE_CPU with ENG_DTYPE_F32 is
 * sd_unet_load; ENG_DEVICE_CUDA (attached with eng_cuda_attach) takes F32, F16 or BF16.
 * Errors: those of sd_unet_load; ENG_E_UNSUPPORTED (the device is not attached, a dtype it does
 * not run), ENG_E_DEVICE (an upload failed). */
int sd_unet_load_on(sd_unet **out,
                    const wt_model *m,
                    eng_ctx *ctx,
                    eng_device_kind device,
                    eng_dtype dtype,
                    eng_err *err);
void sd_unet_destroy(sd_unet *u); /* NULL is a no-op */

const struct wt_unet_config *sd_unet_config(const sd_unet *u);
eng_device_kind sd_unet_device(const sd_unet *u); /* where its weights are and its passes run */
eng_dtype sd_unet_dtype(const sd_unet *u);        /* of the weights and the activations */

/* out (N, h, w, out_channels) = unet(latent (N, h, w, in_channels), timesteps[0..N),
 * context (N, Lc, context_dim)): the model's prediction (noise for "epsilon" models, v for
 * "v_prediction"). h and w must be multiples of 2^(levels - 1) (8 for SD). latent, context and
 * out contiguous, of the UNet's dtype and device (sd_unet_dtype, sd_unet_device); timesteps on
 * the host. `s` NULL: the device's default stream. Scratch comes from `scratch`, an arena of the
 * UNet's device (left rewound).
 * Errors: ENG_E_INVALID_ARG (wrong ranks, channels, context width or batch, sizes, an output of
 * the wrong shape, a non-finite timestep; each message names the shapes), ENG_E_OOM (scratch),
 * errors of the ops. */
int sd_unet_forward(const sd_unet *u,
                    eng_ctx *ctx,
                    eng_stream *s,
                    eng_arena *scratch,
                    eng_tensor *out,
                    const eng_tensor *latent,
                    const float *timesteps,
                    const eng_tensor *context,
                    eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* SD_UNET_H */
