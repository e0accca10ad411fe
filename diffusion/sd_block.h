/* sd_block.h: the convolutional blocks the UNet and the VAE share (diffusers models/resnet.py
 * ResnetBlock2D, upsampling.py Upsample2D, downsampling.py Downsample2D), NHWC, on any device the
 * context has attached; and the device plumbing the SD modules share (where weights go, host
 * <-> device transfers).
 *
 *   sd_block_dest d;                         // where the weights go: device, dtype
 *   rc = sd_block_dest_init(&d, ctx, ENG_DEVICE_CUDA, ENG_DTYPE_F16, "my_loader", &err);
 *   sd_block_resnet r = {0};                 // zeroed: nothing loaded, free is a no-op
 *   rc = sd_block_resnet_load(&r, model, &d, "vae.decoder.mid_block.resnets.0",
 *                             512, 512, 0, 32, 1e-6f, &err);      // temb_dim 0: no time input
 *   rc = sd_block_resnet_forward(&r, ctx, NULL, arena, &y, &x, NULL, &err);   // x, y f16 cuda
 *   sd_block_resnet_free(&r, d.alloc);
 *
 *   sd_block_conv up = {0};                  // Upsample2D: nearest 2x, then this 3x3 conv
 *   rc = sd_block_conv_load(&up, model, &d, "unet.up_blocks.0.upsamplers.0.conv",
 *                           1280, 1280, 3, &err);
 *   rc = sd_block_upsample_forward(&up, ctx, NULL, arena, &y, &x, &err);
 *
 *   rc = sd_block_upload(ctx, NULL, &x, host_floats, &err);    // x (any device/dtype) = f32
 *   rc = sd_block_download(ctx, NULL, host_floats, &y, &err);  // f32 = y
 *
 * ResnetBlock2D (output_scale_factor 1, time_embedding_norm "default"):
 *   h = conv1(SiLU(GroupNorm1(x)))                      3x3, cin -> cout
 *   h = h + time_emb_proj(temb) over all pixels         only when loaded with temb_dim > 0;
 *                                                       temb is SiLU(time embedding) (N, T)
 *   y = conv2(SiLU(GroupNorm2(h))) + shortcut(x)        3x3; shortcut: 1x1 conv_shortcut when
 *                                                       cin != cout, else x itself
 * (dropout is the identity at inference). Both GroupNorms use the block's groups and eps (SD's
 * UNet: 32 and 1e-5; the VAE: 32 and 1e-6).
 * Upsample2D: y (N, 2H, 2W, cout) = conv3x3(nearest2x(x)), padding 1.
 * Downsample2D: y = conv3x3 stride 2 of x; with pad 1 (diffusers padding=1, the UNet) the conv
 * pads every side by one, y (N, ceil(H/2), ceil(W/2), cout); with pad 0 (diffusers padding=0,
 * the VAE encoder) x first gets one zero row at the bottom and one zero column at the right
 * (F.pad (0, 1, 0, 1)), then an unpadded conv, y (N, floor(H/2), floor(W/2), cout), H, W >= 2.
 * The zeros are one element uploaded from the host and read through a stride-0 view by
 * eng_op_concat (the engine has no fill-with-a-constant op), so this works on every device.
 *
 * Devices and dtypes: an sd_block_dest names the context, the device's allocator and the dtype
 * the weights are stored in: f32 on the CPU (the CPU ops take f32 only), f32, f16 or bf16 on
 * CUDA. Weights are read through host memory (wt_model_load_tensor converts to the dtype into
 * the CPU allocator) and, for a device, uploaded with eng_op_copy one tensor at a time, so the
 * host holds at most one tensor beyond its own weights. The forwards take activations of the
 * weights' dtype and device; every computation is an eng_op_* call on that device.
 * Weights: loaded by canonical name (weights/wt.h); conv weights OHWI (cout, kh, kw, cin), the
 * time projection (cout, T). The structs are plain data that the model embeds; a zeroed struct
 * holds nothing, and the free functions accept one.
 * Activations: y is the caller's; temporaries come from `scratch` (an arena of the tensors'
 * device) and are rewound before each forward returns (a resnet takes about cin + 3 cout
 * elements per pixel, the padded downsampler (H+1)(W+1) cin plus H(W+1) cin).
 * Transfers (sd_block_upload/download): synchronous; they go through eng_op_copy on the
 * device's default stream, so when `s` is another stream it is synchronised first; f16/bf16
 * conversion runs on the host, staged in the CPU allocator's default scratch arena (marked and
 * rewound within the call).
 * Ownership: the caller owns the structs and frees them with the allocator it loaded them with
 * (dest.alloc). Threads: forward only reads the weights (one pass per arena and stream at a
 * time); load/free from one thread; the transfers use the CPU allocator's default arena, so one
 * thread at a time per context. */
#ifndef SD_BLOCK_H
#define SD_BLOCK_H

#include "eng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* From weights/wt.h, declared here so that this header stands alone with only engine/ on the
 * include path (the eng.headers.standalone test); include wt.h to open a model. */
typedef struct wt_model wt_model;

/* Where a module's weights live and its passes run. Plain data; fill with sd_block_dest_init. */
typedef struct sd_block_dest {
    eng_ctx *ctx;           /* uploads and host staging go through it */
    eng_alloc *alloc;       /* eng_ctx_alloc(ctx, device): the weights (ENG_LIFE_WEIGHTS) */
    eng_device_kind device; /* ENG_DEVICE_CPU or ENG_DEVICE_CUDA */
    eng_dtype dtype;        /* weights and activations: F32; F16 or BF16 on a device */
} sd_block_dest;

/* Fills *d for `device` and `dtype` after checking them; `fn` names the caller in messages.
 * Errors: ENG_E_UNSUPPORTED (the device is not attached to ctx: attach CUDA with
 * eng_cuda_attach first; a dtype the device's ops do not take: the CPU takes f32 only, CUDA f32,
 * f16 and bf16). */
int sd_block_dest_init(sd_block_dest *d,
                       eng_ctx *ctx,
                       eng_device_kind device,
                       eng_dtype dtype,
                       const char *fn,
                       eng_err *err);

/* A convolution: w (cout, k, k, cin) OHWI, b (cout). */
typedef struct sd_block_conv {
    eng_tensor w, b;
} sd_block_conv;

/* ResnetBlock2D. Tensors with data NULL are absent: temb_* without a time embedding, sc_*
 * when cin == cout. */
typedef struct sd_block_resnet {
    sd_block_conv conv1, conv2, shortcut; /* (cout, 3, 3, cin), (cout, 3, 3, cout), 1x1 */
    eng_tensor norm1_w, norm1_b;          /* (cin) */
    eng_tensor norm2_w, norm2_b;          /* (cout) */
    eng_tensor temb_w, temb_b;            /* (cout, temb_dim), (cout) */
    int64_t cin, cout, temb_dim, groups;  /* temb_dim 0: no time embedding */
    float eps;                            /* both GroupNorms */
} sd_block_resnet;

/* Loads the canonical tensor printf(fmt, ...) of `m` in d->dtype into d->alloc
 * (ENG_LIFE_WEIGHTS, owner = the component's name); flags as wt_model_load_tensor (WT_LOAD_OHWI
 * for conv weights). A device destination is filled through a host copy (freed before
 * returning). On error *t is untouched and nothing stays allocated.
 * Errors: those of wt_model_load_tensor (ENG_E_INVALID_ARG for an unknown name, ENG_E_OOM...),
 * ENG_E_INVALID_ARG (a name longer than WT_MAX_NAME - 1), those of eng_op_copy (ENG_E_DEVICE). */
int sd_block_load_tensor(eng_tensor *t,
                         const wt_model *m,
                         const sd_block_dest *d,
                         unsigned flags,
                         eng_err *err,
                         const char *fmt,
                         ...) ENG_PRINTF(6, 7);
/* Frees t (loaded with sd_block_load_tensor into `alloc`) and zeroes it; data NULL: a no-op. */
void sd_block_free_tensor(eng_tensor *t, eng_alloc *alloc);

/* Loads "<prefix>.weight" (OHWI) and "<prefix>.bias" and checks the weight is (cout, k, k, cin).
 * On error nothing stays loaded. Errors: ENG_E_FORMAT (another shape; names both), those of
 * sd_block_load_tensor. */
int sd_block_conv_load(sd_block_conv *c,
                       const wt_model *m,
                       const sd_block_dest *d,
                       const char *prefix,
                       int64_t cout,
                       int64_t cin,
                       int64_t k,
                       eng_err *err);
void sd_block_conv_free(sd_block_conv *c, eng_alloc *alloc); /* zeroes c; NULL-data safe */

/* Loads the ResnetBlock2D "<prefix>.{norm1,conv1,time_emb_proj,norm2,conv2,conv_shortcut}.*":
 * time_emb_proj only when temb_dim > 0, conv_shortcut only when cin != cout. groups and eps are
 * the GroupNorms'. On error nothing stays loaded. Errors: ENG_E_INVALID_ARG (cin, cout or groups
 * < 1, temb_dim < 0), ENG_E_FORMAT (a mis-shaped tensor), those of sd_block_load_tensor. */
int sd_block_resnet_load(sd_block_resnet *r,
                         const wt_model *m,
                         const sd_block_dest *d,
                         const char *prefix,
                         int64_t cin,
                         int64_t cout,
                         int64_t temb_dim,
                         int64_t groups,
                         float eps,
                         eng_err *err);
void sd_block_resnet_free(sd_block_resnet *r, eng_alloc *alloc); /* zeroes r; NULL-data safe */

/* ---- transfers and small shared ops ------------------------------------------------------- */
/* dst (contiguous, any attached device, dtype F32, F16 or BF16) = the numel(dst) host floats at
 * src, rounded to dst's dtype on the host. `s`: the stream that works on dst (NULL: the
 * device's default); it is synchronised first when it is not the default stream. Returns after
 * the data has arrived. Errors: ENG_E_INVALID_ARG (dst not contiguous, another dtype),
 * ENG_E_OOM (host staging), those of eng_op_copy (ENG_E_DEVICE). */
int sd_block_upload(eng_ctx *ctx, eng_stream *s, eng_tensor *dst, const float *src, eng_err *err);
/* dst (numel(src) host floats) = src (contiguous, any device, F32, F16 or BF16), widened on the
 * host; waits for the work queued on `s` (as above). Errors as sd_block_upload. */
int sd_block_download(eng_ctx *ctx, eng_stream *s, float *dst, const eng_tensor *src, eng_err *err);
/* y = a + b (same shape, dtype and device, contiguous; y may be a or b): eng_op_add, or for
 * dtypes it lacks (bf16) eng_op_binary, whose kernels read and write each element in one thread.
 * Errors: those of the ops. */
int sd_block_add(eng_ctx *ctx,
                 eng_stream *s,
                 eng_tensor *y,
                 const eng_tensor *a,
                 const eng_tensor *b,
                 eng_err *err);

/* y (N, H, W, cout) = resnet(x (N, H, W, cin), temb (N, temb_dim) = SiLU(time embedding));
 * temb must be NULL exactly when the block has no time embedding. x, y, temb contiguous, of the
 * weights' dtype and device; y must not alias x. Scratch from `scratch`, rewound before
 * returning; `s` NULL: the default stream of the tensors' device. Errors: ENG_E_INVALID_ARG
 * (shapes, a missing or unexpected temb; the message names them), ENG_E_OOM (scratch), those of
 * the ops. */
int sd_block_resnet_forward(const sd_block_resnet *r,
                            eng_ctx *ctx,
                            eng_stream *s,
                            eng_arena *scratch,
                            eng_tensor *y,
                            const eng_tensor *x,
                            const eng_tensor *temb,
                            eng_err *err);

/* Upsample2D: y (N, 2H, 2W, cout) = conv(nearest2x(x (N, H, W, cin))) with c a 3x3 conv, padding
 * 1. Scratch: the upsampled x, rewound. Errors: ENG_E_INVALID_ARG (shapes), ENG_E_OOM, those of
 * the ops. */
int sd_block_upsample_forward(const sd_block_conv *c,
                              eng_ctx *ctx,
                              eng_stream *s,
                              eng_arena *scratch,
                              eng_tensor *y,
                              const eng_tensor *x,
                              eng_err *err);

/* Downsample2D: y = conv(x) with c a 3x3 conv, stride 2, and `pad` diffusers' padding: 1 pads
 * all sides (y (N, ceil(H/2), ceil(W/2), cout)); 0 pads only the bottom and right by one zero
 * (y (N, floor(H/2), floor(W/2), cout); H, W >= 2; the padded copy of x is scratch, and the
 * zero element is uploaded from the host: a synchronous transfer, see the top).
 * Errors: ENG_E_INVALID_ARG (pad not 0 or 1, shapes), ENG_E_OOM, those of the ops and of
 * sd_block_upload. */
int sd_block_downsample_forward(const sd_block_conv *c,
                                int pad,
                                eng_ctx *ctx,
                                eng_stream *s,
                                eng_arena *scratch,
                                eng_tensor *y,
                                const eng_tensor *x,
                                eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* SD_BLOCK_H */
