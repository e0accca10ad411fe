/* sd_clip.h: the CLIP text encoder of Stable Diffusion: CLIP ViT-L/14's text model (SD 1.x) and
 * the same transformer with another config (OpenCLIP ViT-H/14 in SD 2.x: GELU instead of
 * quick_gelu, 23 layers, the tiny test preset). Prefix sd_clip_.
 *
 *   sd_clip *clip = NULL; eng_err err = {0};
 *   if (sd_clip_create(&clip, model, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err) != ENG_OK) ...
 *   int64_t shape[3] = {2, 77, sd_clip_config(clip)->hidden};
 *   eng_tensor cond;                                    // (B, 77, hidden) f32, CPU
 *   eng_tensor_alloc(&cond, alloc, ENG_LIFE_STATE, "cond", ENG_DTYPE_F32, 3, shape, &err);
 *   sd_clip_forward(clip, ctx, NULL, eng_alloc_scratch(alloc), &cond, ids, 2, 1, &err);
 *   eng_alloc_scratch_reset(alloc);                     // the activations are gone, cond stays
 *   sd_clip_destroy(clip);
 *   // on a GPU: sd_clip_create_on(&clip, model, ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, &err), then
 *   // cond of that dtype and device, scratch from eng_alloc_scratch(eng_ctx_alloc(ctx, CUDA))
 *
 * The computation (transformers' CLIPTextModel, modeling_clip.py), ids (B, L), L <= 77:
 *   h = token_embedding[ids] + position_embedding[0..L)                   (B, L, C)
 *   for each layer:  h = h + out_proj(attn(q_proj(LN1(h)), k_proj(..), v_proj(..)))
 *                    h = h + fc2(act(fc1(LN2(h))))
 *   out = final_layer_norm(h after `layers - clip_skip + 1` layers)
 * attn is causal multi-head attention (heads of width C / heads, scale 1 / sqrt(width), no
 * padding mask: SD pipelines pad with <|endoftext|> and attend to the padding causally, as the
 * reference does); act is quick_gelu (x * sigmoid(1.702 x), CLIP) or exact GELU (OpenCLIP); the
 * layer norms use eps 1e-5.
 * clip_skip: 1 is transformers' last_hidden_state. k > 1 takes hidden_states[-k] (the output of
 * layer `layers - k + 1`, i.e. k - 1 layers skipped) and then applies final_layer_norm, exactly as
 * diffusers' StableDiffusionPipeline.encode_prompt(clip_skip=k - 1) does (note diffusers counts
 * skipped layers: its clip_skip=1 is our 2, A1111's "Clip skip: 2"). SD 2.x's "penultimate
 * layer" is already built into its 23-layer diffusers text encoder, so SD 2.x uses clip_skip 1.
 *
 * Memory and devices: sd_clip_create loads the weights as f32 into `alloc` (a host allocator,
 * ENG_LIFE_WEIGHTS, owner "text_encoder"); sd_clip_create_on into the allocator of any device
 * attached to the context, in f32 (the CPU's only type), f16 or bf16 (through host memory one
 * tensor at a time: sd_block.h). sd_clip_forward runs every step as an eng_op_* on that device
 * (the token-embedding gather is one row copy per token: the ids are host integers and the
 * engine has no gather op), takes its activations (about B * L * (5 C + I) elements) from
 * `arena`, an arena of that device, and allocates nothing else; the caller resets the arena
 * after it has used `out`.
 * Ownership: the sd_clip retains `alloc` (it frees its weights there on destroy); it does not keep
 * the wt_model. Threads: one forward at a time per sd_clip (the weights are only read, so two
 * sd_clip objects or sequential calls from different threads are fine). */
#ifndef SD_CLIP_H
#define SD_CLIP_H

#include <stdint.h>

#include "eng.h"
#include "wt.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SD_CLIP_LN_EPS 1e-5f

typedef struct sd_clip sd_clip; /* opaque */

/* Loads the text encoder of `model` (its detected wt_text_config: sizes, heads, activation) as
 * f32 weights from `alloc`. On ENG_OK the caller owns *out (sd_clip_destroy).
 * Errors: ENG_E_INVALID_ARG (a config out of range: heads not dividing hidden...),
 * ENG_E_UNSUPPORTED (alloc not a host allocator), ENG_E_OOM, and those of wt_model_load_tensor. */
int sd_clip_create(sd_clip **out, const wt_model *model, eng_alloc *alloc, eng_err *err);
/* The same into eng_ctx_alloc(ctx, device) as `dtype`: ENG_DEVICE_CPU takes F32 (what
 * sd_clip_create does), ENG_DEVICE_CUDA (attached with eng_cuda_attach) F32, F16 or BF16.
 * Errors: those of sd_clip_create; ENG_E_UNSUPPORTED (the device is not attached, a dtype it
 * does not run), ENG_E_DEVICE (an upload failed). */
int sd_clip_create_on(sd_clip **out,
                      const wt_model *model,
                      eng_ctx *ctx,
                      eng_device_kind device,
                      eng_dtype dtype,
                      eng_err *err);
void sd_clip_destroy(sd_clip *clip); /* NULL is a no-op; frees the weights */

/* The config the encoder was built with (hidden, layers, heads, ...). */
const wt_text_config *sd_clip_config(const sd_clip *clip);
eng_device_kind sd_clip_device(const sd_clip *clip); /* where the weights are and passes run */
eng_dtype sd_clip_dtype(const sd_clip *clip);        /* of the weights and activations */

/* out (B, L, hidden) contiguous, of the encoder's dtype and device = its hidden states for ids
 * (B x L host integers, row-major, L = out's dimension 1, 1 <= L <= max_positions), through
 * `clip_skip` (1 = last layer, 2 = penultimate, ... up to `layers`) and the final layer norm
 * (see the top). Scratch comes from `arena`, of the encoder's device (not reset here); stream
 * NULL is the device's default stream.
 * Errors: ENG_E_INVALID_ARG (batch < 1, clip_skip out of range, an id outside [0, vocab) named
 * with its position, out not (B, L, hidden) contiguous of that dtype and device), ENG_E_OOM
 * (arena). */
int sd_clip_forward(sd_clip *clip,
                    eng_ctx *ctx,
                    eng_stream *stream,
                    eng_arena *arena,
                    eng_tensor *out,
                    const int32_t *ids,
                    int64_t batch,
                    int clip_skip,
                    eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* SD_CLIP_H */
