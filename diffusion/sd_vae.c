/* sd_vae.c: the VAE decoder (diffusers AutoencoderKL.decode) on the engine's ops, f32 NHWC.
 * Reference: diffusers models/autoencoders/vae.py (Decoder), unets/unet_2d_blocks.py
 * (UNetMidBlock2D, UpDecoderBlock2D), resnet.py (ResnetBlock2D), attention_processor.py
 * (Attention with residual_connection, one head of all channels). */
#include "sd_vae.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wt.h"

#define VAE_EPS 1e-6f /* every GroupNorm of the VAE */

/* ResnetBlock2D: norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, + (conv_shortcut) x. */
typedef struct vae_resnet {
    eng_tensor norm1_w, norm1_b, conv1_w, conv1_b; /* conv1_w (cout, 3, 3, cin) */
    eng_tensor norm2_w, norm2_b, conv2_w, conv2_b; /* conv2_w (cout, 3, 3, cout) */
    eng_tensor sc_w, sc_b;                         /* (cout, 1, 1, cin); data NULL: identity */
    int64_t cin, cout;
} vae_resnet;

/* Attention over the h*w tokens, one head of C channels, residual. */
typedef struct vae_attn {
    eng_tensor norm_w, norm_b;
    eng_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b; /* (C, C), (C) */
} vae_attn;

struct sd_vae {
    wt_vae_config cfg;
    eng_alloc *alloc;      /* retained: the weights' allocator */
    eng_tensor pq_w, pq_b; /* post_quant_conv (lat, 1, 1, lat) */
    eng_tensor in_w, in_b; /* decoder.conv_in (C_top, 3, 3, lat) */
    vae_resnet mid_res[2];
    vae_attn mid_attn;
    vae_resnet up_res[WT_MAX_LEVELS][SD_VAE_MAX_RESNETS];
    eng_tensor up_w[WT_MAX_LEVELS], up_b[WT_MAX_LEVELS]; /* upsamplers.0.conv, all but last */
    eng_tensor out_norm_w, out_norm_b, out_w, out_b;     /* conv_norm_out, conv_out */
};

/* ---- loading ---------------------------------------------------------------------------------- */
static int load(
    sd_vae *v, const wt_model *m, eng_tensor *t, unsigned flags, eng_err *err, const char *fmt, ...)
    ENG_PRINTF(6, 7);
static int load(sd_vae *v,
                const wt_model *m,
                eng_tensor *t,
                unsigned flags,
                eng_err *err,
                const char *fmt,
                ...) {
    char name[WT_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return wt_model_load_tensor(m, name, v->alloc, ENG_DTYPE_F32, flags, t, err);
}

static int load_resnet(sd_vae *v,
                       const wt_model *m,
                       vae_resnet *r,
                       const char *p,
                       int64_t cin,
                       int64_t cout,
                       eng_err *err) {
    int rc = ENG_OK;
    r->cin = cin;
    r->cout = cout;
    if ((rc = load(v, m, &r->norm1_w, 0, err, "%s.norm1.weight", p)) != ENG_OK) goto done;
    if ((rc = load(v, m, &r->norm1_b, 0, err, "%s.norm1.bias", p)) != ENG_OK) goto done;
    if ((rc = load(v, m, &r->conv1_w, WT_LOAD_OHWI, err, "%s.conv1.weight", p)) != ENG_OK)
        goto done;
    if ((rc = load(v, m, &r->conv1_b, 0, err, "%s.conv1.bias", p)) != ENG_OK) goto done;
    if ((rc = load(v, m, &r->norm2_w, 0, err, "%s.norm2.weight", p)) != ENG_OK) goto done;
    if ((rc = load(v, m, &r->norm2_b, 0, err, "%s.norm2.bias", p)) != ENG_OK) goto done;
    if ((rc = load(v, m, &r->conv2_w, WT_LOAD_OHWI, err, "%s.conv2.weight", p)) != ENG_OK)
        goto done;
    if ((rc = load(v, m, &r->conv2_b, 0, err, "%s.conv2.bias", p)) != ENG_OK) goto done;
    if (cin != cout) {
        rc = load(v, m, &r->sc_w, WT_LOAD_OHWI, err, "%s.conv_shortcut.weight", p);
        if (rc != ENG_OK) goto done;
        if ((rc = load(v, m, &r->sc_b, 0, err, "%s.conv_shortcut.bias", p)) != ENG_OK) goto done;
    }
done:
    return rc;
}

static int load_attn(sd_vae *v, const wt_model *m, vae_attn *a, const char *p, eng_err *err) {
    int rc = ENG_OK;
    struct {
        eng_tensor *t;
        const char *suffix;
    } rows[] = {
        {&a->norm_w, "group_norm.weight"}, {&a->norm_b, "group_norm.bias"},
        {&a->q_w, "to_q.weight"},          {&a->q_b, "to_q.bias"},
        {&a->k_w, "to_k.weight"},          {&a->k_b, "to_k.bias"},
        {&a->v_w, "to_v.weight"},          {&a->v_b, "to_v.bias"},
        {&a->o_w, "to_out.0.weight"},      {&a->o_b, "to_out.0.bias"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if ((rc = load(v, m, rows[i].t, 0, err, "%s.%s", p, rows[i].suffix)) != ENG_OK) break;
    }
    return rc;
}

static void free_t(sd_vae *v, eng_tensor *t) {
    if (t->data != NULL) eng_tensor_free(v->alloc, t);
}

static void free_resnet(sd_vae *v, vae_resnet *r) {
    eng_tensor *ts[] = {&r->norm1_w, &r->norm1_b, &r->conv1_w, &r->conv1_b, &r->norm2_w,
                        &r->norm2_b, &r->conv2_w, &r->conv2_b, &r->sc_w,    &r->sc_b};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        free_t(v, ts[i]);
}

void sd_vae_destroy(sd_vae *v) {
    if (v == NULL) return;
    vae_attn *a = &v->mid_attn;
    eng_tensor *ts[] = {&v->pq_w, &v->pq_b, &v->in_w,       &v->in_b,       &a->norm_w, &a->norm_b,
                        &a->q_w,  &a->q_b,  &a->k_w,        &a->k_b,        &a->v_w,    &a->v_b,
                        &a->o_w,  &a->o_b,  &v->out_norm_w, &v->out_norm_b, &v->out_w,  &v->out_b};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        free_t(v, ts[i]);
    for (int i = 0; i < 2; i++)
        free_resnet(v, &v->mid_res[i]);
    for (int l = 0; l < WT_MAX_LEVELS; l++) {
        for (int j = 0; j < SD_VAE_MAX_RESNETS; j++)
            free_resnet(v, &v->up_res[l][j]);
        free_t(v, &v->up_w[l]);
        free_t(v, &v->up_b[l]);
    }
    free(v);
}

int sd_vae_load(sd_vae **out, const wt_model *m, eng_ctx *ctx, eng_err *err) {
    int rc = ENG_OK;
    sd_vae *v = NULL;
    char p[WT_MAX_NAME];
    ENG_ASSERT(out != NULL && m != NULL && ctx != NULL);
    *out = NULL;
    const wt_vae_config *c = &wt_model_config(m)->vae;
    if (c->n_levels < 1 || c->n_levels > WT_MAX_LEVELS || c->layers_per_block < 0 ||
        c->layers_per_block + 1 > SD_VAE_MAX_RESNETS) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "sd_vae_load: a VAE with %d levels and %d layers per block (at most %d "
                         "levels, %d layers)",
                         c->n_levels, c->layers_per_block, WT_MAX_LEVELS, SD_VAE_MAX_RESNETS - 1);
        goto done;
    }
    if ((v = calloc(1, sizeof *v)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_vae_load: out of host memory");
        goto done;
    }
    v->cfg = *c;
    v->alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    const int L = c->n_levels;
    const int64_t top = c->block_out[L - 1];
    if ((rc = load(v, m, &v->pq_w, WT_LOAD_OHWI, err, "vae.post_quant_conv.weight")) != ENG_OK)
        goto done;
    if ((rc = load(v, m, &v->pq_b, 0, err, "vae.post_quant_conv.bias")) != ENG_OK) goto done;
    if ((rc = load(v, m, &v->in_w, WT_LOAD_OHWI, err, "vae.decoder.conv_in.weight")) != ENG_OK)
        goto done;
    if ((rc = load(v, m, &v->in_b, 0, err, "vae.decoder.conv_in.bias")) != ENG_OK) goto done;
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "vae.decoder.mid_block.resnets.%d", i);
        if ((rc = load_resnet(v, m, &v->mid_res[i], p, top, top, err)) != ENG_OK) goto done;
    }
    rc = load_attn(v, m, &v->mid_attn, "vae.decoder.mid_block.attentions.0", err);
    if (rc != ENG_OK) goto done;
    /* up_blocks.i runs at width block_out[L - 1 - i] (diffusers reverses the list). */
    int64_t prev = top;
    for (int i = 0; i < L; i++) {
        const int64_t w = c->block_out[L - 1 - i];
        for (int j = 0; j < c->layers_per_block + 1; j++) {
            snprintf(p, sizeof p, "vae.decoder.up_blocks.%d.resnets.%d", i, j);
            rc = load_resnet(v, m, &v->up_res[i][j], p, j == 0 ? prev : w, w, err);
            if (rc != ENG_OK) goto done;
        }
        if (i < L - 1) {
            rc = load(v, m, &v->up_w[i], WT_LOAD_OHWI, err,
                      "vae.decoder.up_blocks.%d.upsamplers.0.conv.weight", i);
            if (rc != ENG_OK) goto done;
            rc = load(v, m, &v->up_b[i], 0, err, "vae.decoder.up_blocks.%d.upsamplers.0.conv.bias",
                      i);
            if (rc != ENG_OK) goto done;
        }
        prev = w;
    }
    if ((rc = load(v, m, &v->out_norm_w, 0, err, "vae.decoder.conv_norm_out.weight")) != ENG_OK)
        goto done;
    if ((rc = load(v, m, &v->out_norm_b, 0, err, "vae.decoder.conv_norm_out.bias")) != ENG_OK)
        goto done;
    if ((rc = load(v, m, &v->out_w, WT_LOAD_OHWI, err, "vae.decoder.conv_out.weight")) != ENG_OK)
        goto done;
    if ((rc = load(v, m, &v->out_b, 0, err, "vae.decoder.conv_out.bias")) != ENG_OK) goto done;
    *out = v;
    v = NULL;
done:
    sd_vae_destroy(v);
    return rc;
}

const struct wt_vae_config *sd_vae_config(const sd_vae *v) {
    return &v->cfg;
}

int64_t sd_vae_upscale(const sd_vae *v) {
    return (int64_t)1 << (v->cfg.n_levels - 1);
}

/* ---- forward ---------------------------------------------------------------------------------- */
/* One decode's shared arguments. */
typedef struct vae_run {
    eng_ctx *ctx;
    eng_stream *s;
    eng_arena *ar;
    int64_t groups;
} vae_run;

/* A scratch (N, H, W, C) f32 tensor. */
static int scratch4(
    const vae_run *r, eng_tensor *t, int64_t n, int64_t h, int64_t w, int64_t c, eng_err *err) {
    const int64_t shape[4] = {n, h, w, c};
    return eng_tensor_scratch(t, r->ar, ENG_DTYPE_F32, 4, shape, err);
}

/* y (N, H, W, cout) = resnet(x (N, H, W, cin)); y is the caller's, temporaries are rewound. */
static int resnet_fwd(
    const vae_run *r, const vae_resnet *b, eng_tensor *y, const eng_tensor *x, eng_err *err) {
    int rc = ENG_OK;
    const int64_t n = x->shape[0], h = x->shape[1], w = x->shape[2];
    eng_tensor t1, t2, sc;
    const eng_arena_pos pos = eng_arena_mark(r->ar);
    if ((rc = scratch4(r, &t1, n, h, w, b->cin, err)) != ENG_OK) goto done;
    if ((rc = scratch4(r, &t2, n, h, w, b->cout, err)) != ENG_OK) goto done;
    /* t1 = silu(norm1(x)); t2 = conv1(t1); t1' = silu(norm2(t2)); y = conv2(t1') + shortcut */
    rc = eng_op_groupnorm(r->ctx, r->s, &t1, x, &b->norm1_w, &b->norm1_b, r->groups, VAE_EPS,
                          ENG_ACT_SILU, err);
    if (rc != ENG_OK) goto done;
    if ((rc = eng_op_conv2d(r->ctx, r->s, &t2, &t1, &b->conv1_w, &b->conv1_b, 1, 1, err)) != 0)
        goto done;
    if ((rc = scratch4(r, &t1, n, h, w, b->cout, err)) != ENG_OK) goto done;
    rc = eng_op_groupnorm(r->ctx, r->s, &t1, &t2, &b->norm2_w, &b->norm2_b, r->groups, VAE_EPS,
                          ENG_ACT_SILU, err);
    if (rc != ENG_OK) goto done;
    if ((rc = eng_op_conv2d(r->ctx, r->s, y, &t1, &b->conv2_w, &b->conv2_b, 1, 1, err)) != 0)
        goto done;
    sc = *x;
    if (b->sc_w.data != NULL) {
        if ((rc = scratch4(r, &sc, n, h, w, b->cout, err)) != ENG_OK) goto done;
        rc = eng_op_conv2d(r->ctx, r->s, &sc, x, &b->sc_w, &b->sc_b, 1, 0, err);
        if (rc != ENG_OK) goto done;
    }
    rc = eng_op_add(r->ctx, r->s, y, y, &sc, err); /* output_scale_factor 1 */
done:
    eng_arena_rewind(r->ar, pos);
    return rc;
}

/* y = x + to_out(attention(to_q(gn(x)), to_k(gn(x)), to_v(gn(x)))), one head of C channels over
 * the L = H W tokens of each image. x, y (N, H, W, C). */
static int
attn_fwd(const vae_run *r, const vae_attn *a, eng_tensor *y, const eng_tensor *x, eng_err *err) {
    int rc = ENG_OK;
    const int64_t n = x->shape[0], h = x->shape[1], w = x->shape[2], c = x->shape[3];
    const int64_t l = h * w;
    const int64_t tok[3] = {n, l, c}, heads[4] = {n, l, 1, c};
    eng_tensor hn, q, k, v, o, hn3, o3, y3, q4, k4, v4, o4;
    const eng_arena_pos pos = eng_arena_mark(r->ar);
    if ((rc = scratch4(r, &hn, n, h, w, c, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_scratch(&q, r->ar, ENG_DTYPE_F32, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_scratch(&k, r->ar, ENG_DTYPE_F32, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_scratch(&v, r->ar, ENG_DTYPE_F32, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_scratch(&o, r->ar, ENG_DTYPE_F32, 3, tok, err)) != ENG_OK) goto done;
    rc = eng_op_groupnorm(r->ctx, r->s, &hn, x, &a->norm_w, &a->norm_b, r->groups, VAE_EPS,
                          ENG_ACT_NONE, err);
    if (rc != ENG_OK) goto done;
    /* hn3 (N, L, C) -> q, k, v (N, L, C), seen as (N, L, 1 head, C) */
    if ((rc = eng_tensor_view_reshape(&hn3, &hn, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &q, &hn3, &a->q_w, &a->q_b, ENG_ACT_NONE, err)) != 0)
        goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &k, &hn3, &a->k_w, &a->k_b, ENG_ACT_NONE, err)) != 0)
        goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &v, &hn3, &a->v_w, &a->v_b, ENG_ACT_NONE, err)) != 0)
        goto done;
    if ((rc = eng_tensor_view_reshape(&q4, &q, 4, heads, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&k4, &k, 4, heads, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&v4, &v, 4, heads, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&o4, &o, 4, heads, err)) != ENG_OK) goto done;
    rc = eng_op_attention(r->ctx, r->s, &o4, &q4, &k4, &v4, 1.0f / sqrtf((float)c), 0, err);
    if (rc != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&o3, &o, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&y3, y, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &y3, &o3, &a->o_w, &a->o_b, ENG_ACT_NONE, err)) != 0)
        goto done;
    rc = eng_op_add(r->ctx, r->s, y, y, x, err); /* residual; rescale_output_factor 1 */
done:
    eng_arena_rewind(r->ar, pos);
    return rc;
}

/* y (N, 2H, 2W, O) = conv3x3(nearest2x(x (N, H, W, C))); y is the caller's. */
static int upsample_fwd(const vae_run *r,
                        const eng_tensor *cw,
                        const eng_tensor *cb,
                        eng_tensor *y,
                        const eng_tensor *x,
                        eng_err *err) {
    int rc = ENG_OK;
    const int64_t n = x->shape[0], h = 2 * x->shape[1], w = 2 * x->shape[2], c = x->shape[3];
    eng_tensor u;
    const eng_arena_pos pos = eng_arena_mark(r->ar);
    if ((rc = scratch4(r, &u, n, h, w, c, err)) != ENG_OK) goto done;
    if ((rc = eng_op_upsample_nearest2x(r->ctx, r->s, &u, x, err)) != ENG_OK) goto done;
    rc = eng_op_conv2d(r->ctx, r->s, y, &u, cw, cb, 1, 1, err);
done:
    eng_arena_rewind(r->ar, pos);
    return rc;
}

static void shape_str(char *buf, size_t cap, const eng_tensor *t) {
    (void)eng_tensor_describe(t, buf, cap);
}

/* t = (N, H, W, C) f32 at the start of buffer `buf` (a ping-pong buffer of the decode). */
static void buf_view(eng_tensor *t, float *buf, int64_t n, int64_t h, int64_t w, int64_t c) {
    const int64_t shape[4] = {n, h, w, c};
    eng_err e = {0};
    const int rc = eng_tensor_init(t, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, shape, &e);
    ENG_ASSERT(rc == ENG_OK); /* shapes this file computed, within the buffer's size */
}

int sd_vae_decode(const sd_vae *v,
                  eng_ctx *ctx,
                  eng_stream *s,
                  eng_arena *scratch,
                  eng_tensor *image,
                  const eng_tensor *latent,
                  float scale,
                  eng_err *err) {
    int rc = ENG_OK;
    char lat_s[96], img_s[96];
    ENG_ASSERT(v != NULL && ctx != NULL && scratch != NULL && image != NULL && latent != NULL);
    const wt_vae_config *c = &v->cfg;
    const int L = c->n_levels;
    const int64_t f = sd_vae_upscale(v);
    const eng_arena_pos start = eng_arena_mark(scratch);
    vae_run r = {ctx, s, scratch, c->norm_groups};
    eng_tensor x, y;
    shape_str(lat_s, sizeof lat_s, latent);
    shape_str(img_s, sizeof img_s, image);
    if (latent->ndim != 4 || latent->dtype != ENG_DTYPE_F32 || latent->device != ENG_DEVICE_CPU ||
        !eng_tensor_is_contiguous(latent) || latent->shape[3] != c->latent_channels ||
        latent->shape[0] < 1 || latent->shape[1] < 1 || latent->shape[2] < 1 ||
        latent->shape[0] > SD_VAE_MAX_SIDE || latent->shape[1] > SD_VAE_MAX_SIDE ||
        latent->shape[2] > SD_VAE_MAX_SIDE) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_decode: latent is %s, expected f32[N,h,w,%d] cpu (NHWC, "
                         "contiguous, N, h, w in 1..%d)",
                         lat_s, c->latent_channels, SD_VAE_MAX_SIDE);
        goto done;
    }
    const int64_t n = latent->shape[0], h = latent->shape[1], w = latent->shape[2];
    if (image->ndim != 4 || image->dtype != ENG_DTYPE_F32 || image->device != ENG_DEVICE_CPU ||
        !eng_tensor_is_contiguous(image) || image->shape[0] != n || image->shape[1] != f * h ||
        image->shape[2] != f * w || image->shape[3] != c->out_channels) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_decode: image is %s, expected f32[%lld,%lld,%lld,%d] cpu for the "
                         "latent %s (contiguous NHWC, %lldx upscale)",
                         img_s, (long long)n, (long long)(f * h), (long long)(f * w),
                         c->out_channels, lat_s, (long long)f);
        goto done;
    }
    if (!(scale > 0.0f) || !isfinite(scale)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_decode: latent scale %g must be finite and > 0 (SD: 0.18215)",
                         (double)scale);
        goto done;
    }
    /* Block outputs alternate between two buffers of the largest activation (the block's
     * temporaries are taken above them and rewound), so a pass holds two activations plus one
     * block's temporaries. Level i runs at width block_out[L-1-i] and resolution 2^i. */
    int64_t most =
        c->latent_channels > c->block_out[L - 1] ? c->latent_channels : c->block_out[L - 1];
    for (int i = 0; i < L; i++) {
        const int64_t ch = c->block_out[L - 1 - i], up = i < L - 1 ? 4 : 1;
        const int64_t e = ch * ((int64_t)1 << (2 * i)) * up;
        if (e > most) most = e;
    }
    const int64_t buf_elems = n * h * w * most;
    float *buf[2] = {NULL, NULL};
    int cur = 0; /* buf[cur] holds x */
    for (int i = 0; i < 2; i++) {
        eng_tensor t;
        if ((rc = scratch4(&r, &t, 1, 1, 1, buf_elems, err)) != ENG_OK) goto done;
        buf[i] = t.data;
    }
    /* y = latent / scale; x = post_quant_conv(y): (N, h, w, lat) */
    buf_view(&y, buf[1], n, h, w, c->latent_channels);
    rc = eng_op_unary(ctx, s, &y, latent, ENG_ACT_NONE, 1.0f / scale, 0.0f, err);
    if (rc != ENG_OK) goto done;
    buf_view(&x, buf[0], n, h, w, c->latent_channels);
    if ((rc = eng_op_conv2d(ctx, s, &x, &y, &v->pq_w, &v->pq_b, 1, 0, err)) != ENG_OK) goto done;
    /* conv_in: (N, h, w, lat) -> (N, h, w, C_top) */
    buf_view(&y, buf[1], n, h, w, v->in_w.shape[0]);
    if ((rc = eng_op_conv2d(ctx, s, &y, &x, &v->in_w, &v->in_b, 1, 1, err)) != ENG_OK) goto done;
    x = y;
    cur = 1;
    /* mid block: resnet, attention, resnet (all at C_top) */
    for (int k = 0; k < 3; k++) {
        buf_view(&y, buf[!cur], n, h, w, x.shape[3]);
        if (k == 1) {
            rc = attn_fwd(&r, &v->mid_attn, &y, &x, err);
        } else {
            rc = resnet_fwd(&r, &v->mid_res[k / 2], &y, &x, err);
        }
        if (rc != ENG_OK) goto done;
        x = y;
        cur = !cur;
    }
    /* up blocks: (N, H, W, C) -> (N, H, W, C_i) resnets, then (N, 2H, 2W, C_i) except the last */
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < c->layers_per_block + 1; j++) {
            const vae_resnet *b = &v->up_res[i][j];
            buf_view(&y, buf[!cur], n, x.shape[1], x.shape[2], b->cout);
            if ((rc = resnet_fwd(&r, b, &y, &x, err)) != ENG_OK) goto done;
            x = y;
            cur = !cur;
        }
        if (i < L - 1) {
            buf_view(&y, buf[!cur], n, 2 * x.shape[1], 2 * x.shape[2], v->up_w[i].shape[0]);
            if ((rc = upsample_fwd(&r, &v->up_w[i], &v->up_b[i], &y, &x, err)) != ENG_OK) goto done;
            x = y;
            cur = !cur;
        }
    }
    /* conv_norm_out + SiLU, conv_out -> image (N, f h, f w, out) */
    buf_view(&y, buf[!cur], n, x.shape[1], x.shape[2], x.shape[3]);
    rc = eng_op_groupnorm(ctx, s, &y, &x, &v->out_norm_w, &v->out_norm_b, r.groups, VAE_EPS,
                          ENG_ACT_SILU, err);
    if (rc != ENG_OK) goto done;
    rc = eng_op_conv2d(ctx, s, image, &y, &v->out_w, &v->out_b, 1, 1, err);
done:
    eng_arena_rewind(scratch, start);
    return rc;
}
