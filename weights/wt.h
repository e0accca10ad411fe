/* wt.h: Stable Diffusion checkpoints: readers for the files users have, one canonical naming
 * scheme, the architecture read off the tensors, and random checkpoints for tests (prefix wt_).
 *
 *   wt_model *m = NULL; eng_err err = {0};
 *   if (wt_model_open(&m, "v1-5-pruned-emaonly.safetensors", &err) != ENG_OK) {
 *       fprintf(stderr, "%s\n", err.msg); return 1;
 *   }
 *   const wt_sd_config *cfg = wt_model_config(m);      // channel widths, heads, context dim...
 *   eng_tensor w;                                      // conv weight as (O, H, W, I) f16
 *   wt_model_load_tensor(m, "unet.conv_in.weight", alloc, ENG_DTYPE_F16, WT_LOAD_OHWI, &w, &err);
 *   ...  eng_tensor_free(alloc, &w);
 *   wt_model_close(m);
 *
 * Formats (wt_model_open picks by content, never by trust):
 *   - ldm single file: one .safetensors with the CompVis names, `model.diffusion_model.*` (UNet),
 *     `first_stage_model.*` (VAE), and `cond_stage_model.transformer.text_model.*` (SD 1.x, CLIP
 *     ViT-L/14 in Hugging Face names) or `cond_stage_model.model.*` (SD 2.x, OpenCLIP ViT-H with
 *     fused attention in_proj weights);
 *   - diffusers folder: model_index.json, unet/, vae/, text_encoder/ each holding
 *     diffusion_pytorch_model.safetensors / model.safetensors (or the *.fp16.safetensors
 *     variant), optional config.json files and scheduler/scheduler_config.json;
 *   - pickle checkpoints (.ckpt, .pt, .pth, .bin, or any file starting with the zip or pickle
 *     magic) are refused with ENG_E_UNSUPPORTED: unpickling runs code.
 * Tensors may be F32, F16 or BF16 in the file and are converted to the requested dtype on load.
 *
 * Canonical names: "<component>.<diffusers name>", e.g. unet.down_blocks.0.resnets.0.conv1.weight,
 * vae.decoder.up_blocks.0.resnets.0.norm1.weight,
 * text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight. Shapes are the diffusers
 * shapes: the VAE attention projections are (C, C) (ldm stores them as 1x1 convs (C, C, 1, 1));
 * the OpenCLIP q/k/v projections are slices of the fused in_proj tensor (3H, H) in ldm files. The
 * ldm <-> diffusers map is generated from tables by wt_plan_create (wt_plan.c), the same list
 * that make-checkpoint writes, so reading and writing cannot disagree.
 *
 * Architecture detection (stable-diffusion.cpp style): levels and layers per block from which
 * names exist; channel widths, in/out/latent channels, context dim (attn2.to_k), linear vs conv
 * proj_in (its rank), text hidden size, layers, vocabulary, positions, MLP width from shapes.
 * What shapes cannot tell: attention heads. Rules: the UNet has 8 heads per level in SD 1.x (CLIP
 * text encoder) and heads of width 64 in SD 2.x (OpenCLIP); the text encoder has heads of width 64
 * (CLIP-L 12, OpenCLIP-H 16). A diffusers config.json (attention_head_dim, num_attention_heads)
 * overrides the rules, and so do the ldm file metadata keys
 * "wt.unet_heads" and "wt.text_heads" (written by wt_make_checkpoint for the tiny presets only).
 * The prediction type is not in ldm files (default "epsilon"); diffusers folders give it in
 * scheduler/scheduler_config.json.
 * These values must be well formed or the open fails with ENG_E_FORMAT: head counts are positive
 * integers (a UNet list has exactly one per level), hidden_act and prediction_type are strings
 * (prediction_type at most 23 characters); null counts as absent. A hidden_act other than
 * "quick_gelu" or "gelu" is ENG_E_UNSUPPORTED. vae/config.json is not read (the VAE's scaling
 * factor is taken as SD's 0.18215).
 *
 * Ownership: a wt_model owns its mapped files; wt_model_tensor's strings stay valid until
 * wt_model_close. Loaded tensors belong to the caller's allocator (ENG_LIFE_WEIGHTS, owner = the
 * component name). Threads: an open model may be queried and loaded from from any number of
 * threads at once; open/close/make touch only their own objects.
 * Limits: at most WT_MAX_LEVELS resolution levels per network; loading writes through the CPU,
 * so the allocator must be a host allocator (a CUDA pipeline uploads from there). */
#ifndef WT_H
#define WT_H

#include <stdint.h>
#include <stdio.h>

#include "eng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WT_MAX_LEVELS 8
#define WT_MAX_NAME   256

typedef enum wt_family {
    WT_FAMILY_UNKNOWN,
    WT_FAMILY_SD1,
    WT_FAMILY_SD2,
    WT_FAMILY_COUNT
} wt_family;
typedef enum wt_format { WT_FORMAT_LDM, WT_FORMAT_DIFFUSERS, WT_FORMAT_COUNT } wt_format;
typedef enum wt_component { WT_UNET, WT_VAE, WT_TEXT_ENCODER, WT_COMPONENT_COUNT } wt_component;
/* CLIP in Hugging Face names (SD 1.x) or OpenCLIP (SD 2.x: fused in_proj, resblocks). */
typedef enum wt_text_kind { WT_TEXT_CLIP, WT_TEXT_OPENCLIP, WT_TEXT_KIND_COUNT } wt_text_kind;

const char *wt_family_name(wt_family f);       /* "sd1", "sd2", "unknown" */
const char *wt_format_name(wt_format f);       /* "ldm", "diffusers" */
const char *wt_component_name(wt_component c); /* "unet", "vae", "text_encoder" */

typedef struct wt_unet_config {
    int in_channels, out_channels; /* 4, 4 */
    int n_levels;                  /* 4 */
    int block_out[WT_MAX_LEVELS];  /* 320, 640, 1280, 1280 */
    int attn[WT_MAX_LEVELS];       /* 1 when the level has cross-attention transformers */
    int heads[WT_MAX_LEVELS];      /* attention heads per level (SD1: 8; SD2: width / 64) */
    int layers_per_block;          /* 2 */
    int context_dim;               /* 768 (SD1), 1024 (SD2) */
    int linear_proj;               /* 1: proj_in/out are linear (SD2); 0: 1x1 convs (SD1) */
    int time_embed_dim;            /* 4 * block_out[0] */
    int norm_groups;               /* 32 (not in the tensors; the diffusers default) */
} wt_unet_config;

typedef struct wt_vae_config {
    int in_channels, out_channels; /* 3, 3 */
    int latent_channels;           /* 4 */
    int n_levels;                  /* 4 */
    int block_out[WT_MAX_LEVELS];  /* 128, 256, 512, 512 */
    int layers_per_block;          /* 2 (the decoder has one more resnet per level) */
    int norm_groups;               /* 32 */
} wt_vae_config;

typedef struct wt_text_config {
    wt_text_kind kind;
    int hidden, layers, heads, intermediate; /* 768, 12, 12, 3072 (SD1); 1024, 23, 16, 4096 */
    int vocab, max_positions;                /* 49408, 77 */
    int quick_gelu;                          /* 1: quick_gelu (CLIP), 0: gelu (OpenCLIP) */
    int file_layers; /* layers in an ldm file: OpenCLIP files carry one more (24) than the
                         pipeline uses (the penultimate output); = layers otherwise */
    int proj_dim;    /* OpenCLIP text_projection width (1024 for ViT-H), 0 for CLIP */
} wt_text_config;

typedef struct wt_sd_config {
    wt_family family;
    wt_unet_config unet;
    wt_vae_config vae;
    wt_text_config text;
    char prediction_type[24]; /* "epsilon" (default), "v_prediction" */
} wt_sd_config;

/* The presets: "sd15", "sd21" (full size), "tiny" (for tests; expressible as diffusers
 * config.json: UNet block_out (32, 64), attention on level 0, 1 layer per block, 2 heads, cross
 * dim 32, conv proj; VAE (32, 64), 1 layer per block, 4 latent channels; CLIP text hidden 32,
 * 2 layers, 2 heads, MLP 64, vocab 49408, 77 positions) and "tiny-sd2" (the same sizes in the
 * SD 2.x family: linear proj_in/out, OpenCLIP text with GELU, 3 resblocks in ldm files of which
 * the pipeline runs 2, text_projection 32 x 32, "v_prediction"; still 2 heads everywhere, which
 * ldm files record in their metadata). Errors: ENG_E_INVALID_ARG. */
int wt_sd_config_preset(wt_sd_config *cfg, const char *name, eng_err *err);

/* ---- plans: every tensor of an architecture in one format ------------------------------------ */
typedef enum wt_init {
    WT_INIT_NORMAL, /* weights: N(0, 0.02) */
    WT_INIT_ONE,    /* norm scales */
    WT_INIT_ZERO,   /* biases, norm shifts */
    WT_INIT_ARANGE, /* position_ids (I64 0..n-1) */
    WT_INIT_LOGIT,  /* OpenCLIP logit_scale: ln(1 / 0.07) */
    WT_INIT_COUNT
} wt_init;

typedef struct wt_plan_entry {
    wt_component component;
    const char *name;      /* canonical name; NULL for a file-only tensor (position_ids...) */
    const char *file_name; /* name in the file (diffusers: without the component prefix) */
    int ndim, file_ndim;
    int64_t shape[4];      /* canonical shape (unused dims 1) */
    int64_t file_shape[4]; /* shape in the file */
    int64_t slice_index;   /* fused tensors: the canonical one is rows [i * rows, (i+1) * rows) */
    int64_t slice_rows;    /* 0: the whole file tensor */
    wt_init init;
    int file_i64; /* 1: stored as I64 (position_ids) */
} wt_plan_entry;

typedef struct wt_plan wt_plan; /* opaque */

/* The tensors of `cfg` in `format`, in file order (canonical ones and file-only extras). The
 * caller owns *out (wt_plan_destroy). Errors: ENG_E_INVALID_ARG (a config out of range),
 * ENG_E_OOM. */
int wt_plan_create(wt_plan **out, const wt_sd_config *cfg, wt_format format, eng_err *err);
void wt_plan_destroy(wt_plan *p);
int64_t wt_plan_count(const wt_plan *p);
const wt_plan_entry *wt_plan_at(const wt_plan *p, int64_t i); /* 0 <= i < count (asserted) */
/* The entry with canonical name `name`, or NULL. */
const wt_plan_entry *wt_plan_find(const wt_plan *p, const char *name);
/* Parameters of a component (canonical tensors only). */
int64_t wt_plan_params(const wt_plan *p, wt_component c);

/* ---- reading ---------------------------------------------------------------------------------- */
typedef struct wt_model wt_model; /* opaque */

/* Opens an ldm .safetensors file or a diffusers folder, detects the architecture and checks
 * that every tensor it implies is present with the right shape. On ENG_OK the caller owns *out.
 * Errors: ENG_E_UNSUPPORTED (pickle checkpoints, an unsupported text hidden_act), ENG_E_IO
 * (missing files, e.g. a diffusers
 * folder without unet/), ENG_E_FORMAT (malformed files, unknown layouts, a missing tensor named
 * with its expected shape, a mis-shaped tensor named with both shapes), ENG_E_OOM. */
int wt_model_open(wt_model **out, const char *path, eng_err *err);
void wt_model_close(wt_model *m); /* NULL is a no-op */

const wt_sd_config *wt_model_config(const wt_model *m);
wt_format wt_model_format(const wt_model *m);
/* The file holding component c (ldm: the same file for all). Owned by m. */
const char *wt_model_file(const wt_model *m, wt_component c);
/* The model's tensors: canonical ones only, in file order. */
const wt_plan *wt_model_plan(const wt_model *m);

typedef struct wt_tensor_info {
    const wt_plan_entry *entry;       /* canonical name, shapes, slice */
    const eng_safetensors_info *file; /* the file tensor (dtype, bytes) */
} wt_tensor_info;

/* Looks up a canonical tensor. Errors: ENG_E_INVALID_ARG naming an unknown name. */
int wt_model_tensor(const wt_model *m, const char *name, wt_tensor_info *info, eng_err *err);

#define WT_LOAD_OHWI 1u /* 4-D conv weights (O, I, H, W) in the file -> (O, H, W, I) in memory */

/* Converts the canonical tensor `name` into `dst`: contiguous CPU memory of dtype F32, F16 or
 * BF16 whose shape equals the canonical shape (permuted to (O, H, W, I) with WT_LOAD_OHWI).
 * Errors: ENG_E_INVALID_ARG (unknown name, or dst's shape: the message names the tensor and
 * both shapes; a dtype other than F32/F16/BF16; a non-CPU or non-contiguous dst). */
int wt_model_read_tensor(
    const wt_model *m, const char *name, unsigned flags, eng_tensor *dst, eng_err *err);
/* Allocates `out` from `a` (ENG_LIFE_WEIGHTS, owner = the component's name) and reads the tensor
 * into it. Errors: those of wt_model_read_tensor, ENG_E_OOM, ENG_E_UNSUPPORTED when `a` is not a
 * host allocator. */
int wt_model_load_tensor(const wt_model *m,
                         const char *name,
                         eng_alloc *a,
                         eng_dtype dtype,
                         unsigned flags,
                         eng_tensor *out,
                         eng_err *err);

/* ---- writing random checkpoints -------------------------------------------------------------- */
typedef struct wt_make_params {
    wt_sd_config config;
    wt_format format;
    eng_dtype dtype;           /* F32, F16 or BF16 */
    uint64_t seed;             /* Philox seed (see wt_init_value) */
    const char *path;          /* ldm: the .safetensors file; diffusers: the folder */
    const char *tokenizer_dir; /* diffusers: folder with vocab.json + merges.txt; NULL: none */
    FILE *progress;            /* progress bar stream; NULL: none */
} wt_make_params;

/* Element i (row-major, canonical shape; file shape for file-only tensors) of what
 * wt_make_checkpoint writes for entry e, before rounding to the file dtype. */
float wt_init_value(const wt_plan_entry *e, uint64_t seed, int64_t i);

/* Writes a checkpoint of the config's architecture with random weights in exactly the real
 * format (names, shapes; ldm files leave out the scheduler buffers such as alphas_cumprod).
 * Errors: ENG_E_INVALID_ARG, ENG_E_IO, ENG_E_OOM. */
int wt_make_checkpoint(const wt_make_params *p, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* WT_H */
