/* sd_vae.c: the VAE (diffusers AutoencoderKL encode and decode) on the engine's ops, NHWC.
 * Reference: diffusers models/autoencoders/vae.py (Encoder, Decoder, DiagonalGaussianDistribution),
 * autoencoder_kl.py (quant_conv, post_quant_conv), unets/unet_2d_blocks.py (DownEncoderBlock2D,
 * UNetMidBlock2D, UpDecoderBlock2D), attention_processor.py (Attention with residual_connection,
 * one head of all channels). Resnets, upsamplers and downsamplers are sd_block.h's. */
#include "sd_vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_block.h"
#include "wt.h"

#define VAE_EPS        1e-6f  /* every GroupNorm of the VAE */
#define VAE_LOGVAR_MIN -30.0f /* DiagonalGaussianDistribution clamps the log-variance */
#define VAE_LOGVAR_MAX 20.0f

/* Attention over the h*w tokens, one head of C channels, residual. */
typedef struct vae_attn {
    eng_tensor norm_w, norm_b;
    eng_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b; /* (C, C), (C) */
} vae_attn;

/* A mid block: resnet, attention, resnet (all at the top width). */
typedef struct vae_mid {
    sd_block_resnet res[2];
    vae_attn attn;
} vae_mid;

struct sd_vae {
    wt_vae_config cfg;
    unsigned parts;     /* SD_VAE_DECODER | SD_VAE_ENCODER: what was loaded */
    sd_block_dest dest; /* device, dtype and the weights' allocator */
    eng_alloc *alloc;   /* dest.alloc, retained */
    /* decoder: post_quant_conv (lat -> lat, 1x1), conv_in (lat -> C_top), mid, up_blocks.i
     * (layers_per_block + 1 resnets, then upsamplers.0 on all but the last), norm_out, conv_out */
    sd_block_conv post_quant, dec_in, dec_out;
    vae_mid dec_mid;
    sd_block_resnet up_res[WT_MAX_LEVELS][SD_VAE_MAX_RESNETS];
    sd_block_conv up[WT_MAX_LEVELS];
    eng_tensor dec_norm_w, dec_norm_b;
    /* encoder: conv_in (in -> C_0), down_blocks.i (layers_per_block resnets, then
     * downsamplers.0 on all but the last), mid, norm_out, conv_out (C_top -> 2 lat), quant_conv */
    sd_block_conv enc_in, enc_out, quant;
    sd_block_resnet down_res[WT_MAX_LEVELS][SD_VAE_MAX_RESNETS];
    sd_block_conv down[WT_MAX_LEVELS];
    vae_mid enc_mid;
    eng_tensor enc_norm_w, enc_norm_b;
};

/* ---- loading ---------------------------------------------------------------------------------- */
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
        rc = sd_block_load_tensor(rows[i].t, m, &v->dest, 0, err, "%s.%s", p, rows[i].suffix);
        if (rc != ENG_OK) break;
    }
    return rc;
}

static void free_attn(sd_vae *v, vae_attn *a) {
    eng_tensor *ts[] = {&a->norm_w, &a->norm_b, &a->q_w, &a->q_b, &a->k_w,
                        &a->k_b,    &a->v_w,    &a->v_b, &a->o_w, &a->o_b};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        sd_block_free_tensor(ts[i], v->alloc);
}

/* "<p>.mid_block": resnets.0, attentions.0, resnets.1 at width c. */
static int
load_mid(sd_vae *v, const wt_model *m, vae_mid *mid, const char *p, int64_t c, eng_err *err) {
    int rc = ENG_OK;
    char name[WT_MAX_NAME];
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s.mid_block.resnets.%d", p, i);
        rc = sd_block_resnet_load(&mid->res[i], m, &v->dest, name, c, c, 0, v->cfg.norm_groups,
                                  VAE_EPS, err);
        if (rc != ENG_OK) goto done;
    }
    snprintf(name, sizeof name, "%s.mid_block.attentions.0", p);
    rc = load_attn(v, m, &mid->attn, name, err);
done:
    return rc;
}

static void free_mid(sd_vae *v, vae_mid *mid) {
    for (int i = 0; i < 2; i++)
        sd_block_resnet_free(&mid->res[i], v->alloc);
    free_attn(v, &mid->attn);
}

void sd_vae_destroy(sd_vae *v) {
    if (v == NULL) return;
    sd_block_conv *convs[] = {&v->post_quant, &v->dec_in,  &v->dec_out,
                              &v->enc_in,     &v->enc_out, &v->quant};
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        sd_block_conv_free(convs[i], v->alloc);
    free_mid(v, &v->dec_mid);
    free_mid(v, &v->enc_mid);
    for (int l = 0; l < WT_MAX_LEVELS; l++) {
        for (int j = 0; j < SD_VAE_MAX_RESNETS; j++) {
            sd_block_resnet_free(&v->up_res[l][j], v->alloc);
            sd_block_resnet_free(&v->down_res[l][j], v->alloc);
        }
        sd_block_conv_free(&v->up[l], v->alloc);
        sd_block_conv_free(&v->down[l], v->alloc);
    }
    sd_block_free_tensor(&v->dec_norm_w, v->alloc);
    sd_block_free_tensor(&v->dec_norm_b, v->alloc);
    sd_block_free_tensor(&v->enc_norm_w, v->alloc);
    sd_block_free_tensor(&v->enc_norm_b, v->alloc);
    free(v);
}

static int load_decoder(sd_vae *v, const wt_model *m, eng_err *err) {
    int rc = ENG_OK;
    char p[WT_MAX_NAME];
    const wt_vae_config *c = &v->cfg;
    const int L = c->n_levels;
    const int64_t top = c->block_out[L - 1], lat = c->latent_channels;
    if ((rc = sd_block_conv_load(&v->post_quant, m, &v->dest, "vae.post_quant_conv", lat, lat, 1,
                                 err)) != ENG_OK)
        goto done;
    rc = sd_block_conv_load(&v->dec_in, m, &v->dest, "vae.decoder.conv_in", top, lat, 3, err);
    if (rc != ENG_OK) goto done;
    if ((rc = load_mid(v, m, &v->dec_mid, "vae.decoder", top, err)) != ENG_OK) goto done;
    /* up_blocks.i runs at width block_out[L - 1 - i] (diffusers reverses the list). */
    int64_t prev = top;
    for (int i = 0; i < L; i++) {
        const int64_t w = c->block_out[L - 1 - i];
        for (int j = 0; j < c->layers_per_block + 1; j++) {
            snprintf(p, sizeof p, "vae.decoder.up_blocks.%d.resnets.%d", i, j);
            rc = sd_block_resnet_load(&v->up_res[i][j], m, &v->dest, p, j == 0 ? prev : w, w, 0,
                                      c->norm_groups, VAE_EPS, err);
            if (rc != ENG_OK) goto done;
        }
        if (i < L - 1) {
            snprintf(p, sizeof p, "vae.decoder.up_blocks.%d.upsamplers.0.conv", i);
            if ((rc = sd_block_conv_load(&v->up[i], m, &v->dest, p, w, w, 3, err)) != ENG_OK)
                goto done;
        }
        prev = w;
    }
    rc = sd_block_load_tensor(&v->dec_norm_w, m, &v->dest, 0, err,
                              "vae.decoder.conv_norm_out.weight");
    if (rc != ENG_OK) goto done;
    rc =
        sd_block_load_tensor(&v->dec_norm_b, m, &v->dest, 0, err, "vae.decoder.conv_norm_out.bias");
    if (rc != ENG_OK) goto done;
    rc = sd_block_conv_load(&v->dec_out, m, &v->dest, "vae.decoder.conv_out", c->out_channels,
                            c->block_out[0], 3, err);
done:
    return rc;
}

static int load_encoder(sd_vae *v, const wt_model *m, eng_err *err) {
    int rc = ENG_OK;
    char p[WT_MAX_NAME];
    const wt_vae_config *c = &v->cfg;
    const int L = c->n_levels;
    const int64_t top = c->block_out[L - 1], lat2 = 2 * (int64_t)c->latent_channels;
    rc = sd_block_conv_load(&v->enc_in, m, &v->dest, "vae.encoder.conv_in", c->block_out[0],
                            c->in_channels, 3, err);
    if (rc != ENG_OK) goto done;
    /* down_blocks.i runs at width block_out[i]; its first resnet takes the previous width */
    int64_t prev = c->block_out[0];
    for (int i = 0; i < L; i++) {
        const int64_t w = c->block_out[i];
        for (int j = 0; j < c->layers_per_block; j++) {
            snprintf(p, sizeof p, "vae.encoder.down_blocks.%d.resnets.%d", i, j);
            rc = sd_block_resnet_load(&v->down_res[i][j], m, &v->dest, p, j == 0 ? prev : w, w, 0,
                                      c->norm_groups, VAE_EPS, err);
            if (rc != ENG_OK) goto done;
        }
        if (i < L - 1) {
            snprintf(p, sizeof p, "vae.encoder.down_blocks.%d.downsamplers.0.conv", i);
            if ((rc = sd_block_conv_load(&v->down[i], m, &v->dest, p, w, w, 3, err)) != ENG_OK)
                goto done;
        }
        prev = w;
    }
    if ((rc = load_mid(v, m, &v->enc_mid, "vae.encoder", top, err)) != ENG_OK) goto done;
    rc = sd_block_load_tensor(&v->enc_norm_w, m, &v->dest, 0, err,
                              "vae.encoder.conv_norm_out.weight");
    if (rc != ENG_OK) goto done;
    rc =
        sd_block_load_tensor(&v->enc_norm_b, m, &v->dest, 0, err, "vae.encoder.conv_norm_out.bias");
    if (rc != ENG_OK) goto done;
    rc = sd_block_conv_load(&v->enc_out, m, &v->dest, "vae.encoder.conv_out", lat2, top, 3, err);
    if (rc != ENG_OK) goto done;
    rc = sd_block_conv_load(&v->quant, m, &v->dest, "vae.quant_conv", lat2, lat2, 1, err);
done:
    return rc;
}

int sd_vae_load_parts(sd_vae **out, const wt_model *m, eng_ctx *ctx, unsigned parts, eng_err *err) {
    return sd_vae_load_on(out, m, ctx, ENG_DEVICE_CPU, ENG_DTYPE_F32, parts, err);
}

int sd_vae_load_on(sd_vae **out,
                   const wt_model *m,
                   eng_ctx *ctx,
                   eng_device_kind device,
                   eng_dtype dtype,
                   unsigned parts,
                   eng_err *err) {
    int rc = ENG_OK;
    sd_vae *v = NULL;
    sd_block_dest dest;
    ENG_ASSERT(out != NULL && m != NULL && ctx != NULL);
    *out = NULL;
    const wt_vae_config *c = &wt_model_config(m)->vae;
    if (parts == 0 || (parts & ~(unsigned)(SD_VAE_DECODER | SD_VAE_ENCODER)) != 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_load_parts: parts 0x%x, expected SD_VAE_DECODER (1), "
                         "SD_VAE_ENCODER (2) or both",
                         parts);
        goto done;
    }
    if ((rc = sd_block_dest_init(&dest, ctx, device, dtype, "sd_vae_load", err)) != ENG_OK)
        goto done;
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
    v->parts = parts;
    v->dest = dest;
    v->alloc = dest.alloc;
    if ((parts & SD_VAE_DECODER) && (rc = load_decoder(v, m, err)) != ENG_OK) goto done;
    if ((parts & SD_VAE_ENCODER) && (rc = load_encoder(v, m, err)) != ENG_OK) goto done;
    *out = v;
    v = NULL;
done:
    sd_vae_destroy(v);
    return rc;
}

int sd_vae_load(sd_vae **out, const wt_model *m, eng_ctx *ctx, eng_err *err) {
    return sd_vae_load_parts(out, m, ctx, SD_VAE_DECODER | SD_VAE_ENCODER, err);
}

const struct wt_vae_config *sd_vae_config(const sd_vae *v) {
    return &v->cfg;
}

unsigned sd_vae_parts(const sd_vae *v) {
    return v->parts;
}

eng_device_kind sd_vae_device(const sd_vae *v) {
    return v->dest.device;
}

eng_dtype sd_vae_dtype(const sd_vae *v) {
    return v->dest.dtype;
}

int64_t sd_vae_upscale(const sd_vae *v) {
    return (int64_t)1 << (v->cfg.n_levels - 1);
}

/* ---- forward ---------------------------------------------------------------------------------- */
/* One pass's shared arguments. */
typedef struct vae_run {
    eng_ctx *ctx;
    eng_stream *s;
    eng_arena *ar;
    int64_t groups;
    eng_dtype dt; /* the weights' and activations' */
} vae_run;

/* A scratch (N, H, W, C) tensor of the pass's dtype. */
static int scratch4(
    const vae_run *r, eng_tensor *t, int64_t n, int64_t h, int64_t w, int64_t c, eng_err *err) {
    const int64_t shape[4] = {n, h, w, c};
    return eng_tensor_scratch(t, r->ar, r->dt, 4, shape, err);
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
    if ((rc = eng_tensor_scratch(&q, r->ar, r->dt, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_scratch(&k, r->ar, r->dt, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_scratch(&v, r->ar, r->dt, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_scratch(&o, r->ar, r->dt, 3, tok, err)) != ENG_OK) goto done;
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
    rc = sd_block_add(r->ctx, r->s, y, y, x, err); /* residual; rescale_output_factor 1 */
done:
    eng_arena_rewind(r->ar, pos);
    return rc;
}

static void shape_str(char *buf, size_t cap, const eng_tensor *t) {
    (void)eng_tensor_describe(t, buf, cap);
}

/* t is a 4-D contiguous tensor of the VAE's dtype and device. */
static int is_mine(const sd_vae *v, const eng_tensor *t) {
    return t->ndim == 4 && t->dtype == v->dest.dtype && t->device == v->dest.device &&
           eng_tensor_is_contiguous(t);
}

/* out (pixels, lat) = scale (mean + exp(0.5 clamp(logvar)) noise) for the moments mo
 * (pixels, 2 lat), all host floats; noise NULL: scale mean. out may be noise. */
static void sample_latent(
    float *out, const float *mo, const float *noise, int64_t pixels, int64_t lat, float scale) {
    for (int64_t p = 0; p < pixels; p++) {
        const float *mp = mo + p * 2 * lat;
        for (int64_t k = 0; k < lat; k++) {
            float z = mp[k];
            if (noise != NULL) {
                float lv = mp[lat + k];
                lv = lv < VAE_LOGVAR_MIN   ? VAE_LOGVAR_MIN
                     : lv > VAE_LOGVAR_MAX ? VAE_LOGVAR_MAX
                                           : lv; /* NaN stays */
                const float sd = expf(0.5f * lv);
                z = z + sd * noise[p * lat + k];
            }
            out[p * lat + k] = z * scale;
        }
    }
}

/* Block outputs alternate between two scratch buffers of `elems` elements each (the blocks'
 * temporaries are taken above them and rewound), so a pass holds two activations plus one
 * block's temporaries. The ping-pong state: buf[cur] holds x. */
typedef struct vae_pingpong {
    eng_tensor buf[2]; /* (1, 1, 1, elems) of the pass's dtype and device */
    int cur;
} vae_pingpong;

/* t = (N, H, W, C) at the start of buffer i (shapes this file computed, within its size). */
static void
buf_view(eng_tensor *t, const vae_pingpong *pp, int i, int64_t n, int64_t h, int64_t w, int64_t c) {
    const int64_t shape[4] = {n, h, w, c};
    const eng_tensor *b = &pp->buf[i];
    eng_err e = {0};
    ENG_ASSERT(n * h * w * c <= b->shape[3]);
    const int rc = eng_tensor_init(t, b->data, b->dtype, b->device, 4, shape, &e);
    ENG_ASSERT(rc == ENG_OK);
}

static int pingpong_init(const vae_run *r, vae_pingpong *pp, int64_t elems, eng_err *err) {
    int rc = ENG_OK;
    for (int i = 0; i < 2; i++) {
        if ((rc = scratch4(r, &pp->buf[i], 1, 1, 1, elems, err)) != ENG_OK) break;
    }
    pp->cur = 0;
    return rc;
}

/* x = the mid block of x (resnet, attention, resnet); y is the free buffer's view. */
static int
mid_fwd(const vae_run *r, const vae_mid *mid, vae_pingpong *pp, eng_tensor *x, eng_err *err) {
    int rc = ENG_OK;
    eng_tensor y;
    for (int k = 0; k < 3; k++) {
        buf_view(&y, pp, !pp->cur, x->shape[0], x->shape[1], x->shape[2], x->shape[3]);
        if (k == 1) {
            rc = attn_fwd(r, &mid->attn, &y, x, err);
        } else {
            rc = sd_block_resnet_forward(&mid->res[k / 2], r->ctx, r->s, r->ar, &y, x, NULL, err);
        }
        if (rc != ENG_OK) break;
        *x = y;
        pp->cur = !pp->cur;
    }
    return rc;
}

/* x = the resnet b of x, in the other buffer. */
static int resnet_step(
    const vae_run *r, const sd_block_resnet *b, vae_pingpong *pp, eng_tensor *x, eng_err *err) {
    eng_tensor y;
    buf_view(&y, pp, !pp->cur, x->shape[0], x->shape[1], x->shape[2], b->cout);
    const int rc = sd_block_resnet_forward(b, r->ctx, r->s, r->ar, &y, x, NULL, err);
    if (rc == ENG_OK) {
        *x = y;
        pp->cur = !pp->cur;
    }
    return rc;
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
    char lat_s[96], img_s[96], want[32];
    ENG_ASSERT(v != NULL && ctx != NULL && scratch != NULL && image != NULL && latent != NULL);
    snprintf(want, sizeof want, "%s", eng_dtype_name(v->dest.dtype));
    const char *dev = eng_device_name(v->dest.device);
    const wt_vae_config *c = &v->cfg;
    const int L = c->n_levels;
    const int64_t f = sd_vae_upscale(v);
    const eng_arena_pos start = eng_arena_mark(scratch);
    vae_run r = {ctx, s, scratch, c->norm_groups, v->dest.dtype};
    vae_pingpong pp;
    eng_tensor x, y;
    memset(&pp, 0, sizeof pp);
    shape_str(lat_s, sizeof lat_s, latent);
    shape_str(img_s, sizeof img_s, image);
    if (!(v->parts & SD_VAE_DECODER)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_decode: this sd_vae was loaded without its decoder "
                         "(sd_vae_load_parts without SD_VAE_DECODER)");
        goto done;
    }
    if (!is_mine(v, latent) || latent->shape[3] != c->latent_channels || latent->shape[0] < 1 ||
        latent->shape[1] < 1 || latent->shape[2] < 1 || latent->shape[0] > SD_VAE_MAX_SIDE ||
        latent->shape[1] > SD_VAE_MAX_SIDE || latent->shape[2] > SD_VAE_MAX_SIDE) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_decode: latent is %s, expected %s[N,h,w,%d] %s (NHWC, "
                         "contiguous, N, h, w in 1..%d)",
                         lat_s, want, c->latent_channels, dev, SD_VAE_MAX_SIDE);
        goto done;
    }
    const int64_t n = latent->shape[0], h = latent->shape[1], w = latent->shape[2];
    if (!is_mine(v, image) || image->shape[0] != n || image->shape[1] != f * h ||
        image->shape[2] != f * w || image->shape[3] != c->out_channels) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_decode: image is %s, expected %s[%lld,%lld,%lld,%d] %s for the "
                         "latent %s (contiguous NHWC, %lldx upscale)",
                         img_s, want, (long long)n, (long long)(f * h), (long long)(f * w),
                         c->out_channels, dev, lat_s, (long long)f);
        goto done;
    }
    if (!(scale > 0.0f) || !isfinite(scale)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_decode: latent scale %g must be finite and > 0 (SD: 0.18215)",
                         (double)scale);
        goto done;
    }
    /* The largest activation: level i runs at width block_out[L-1-i] and resolution 2^i; its
     * upsampler output is 4 times that. */
    int64_t most =
        c->latent_channels > c->block_out[L - 1] ? c->latent_channels : c->block_out[L - 1];
    for (int i = 0; i < L; i++) {
        const int64_t ch = c->block_out[L - 1 - i], up = i < L - 1 ? 4 : 1;
        const int64_t e = ch * ((int64_t)1 << (2 * i)) * up;
        if (e > most) most = e;
    }
    if ((rc = pingpong_init(&r, &pp, n * h * w * most, err)) != ENG_OK) goto done;
    /* y = latent / scale; x = post_quant_conv(y): (N, h, w, lat) */
    buf_view(&y, &pp, 1, n, h, w, c->latent_channels);
    rc = eng_op_unary(ctx, s, &y, latent, ENG_ACT_NONE, 1.0f / scale, 0.0f, err);
    if (rc != ENG_OK) goto done;
    buf_view(&x, &pp, 0, n, h, w, c->latent_channels);
    rc = eng_op_conv2d(ctx, s, &x, &y, &v->post_quant.w, &v->post_quant.b, 1, 0, err);
    if (rc != ENG_OK) goto done;
    /* conv_in: (N, h, w, lat) -> (N, h, w, C_top) */
    buf_view(&y, &pp, 1, n, h, w, v->dec_in.w.shape[0]);
    if ((rc = eng_op_conv2d(ctx, s, &y, &x, &v->dec_in.w, &v->dec_in.b, 1, 1, err)) != ENG_OK)
        goto done;
    x = y;
    pp.cur = 1;
    if ((rc = mid_fwd(&r, &v->dec_mid, &pp, &x, err)) != ENG_OK) goto done;
    /* up blocks: (N, H, W, C) -> (N, H, W, C_i) resnets, then (N, 2H, 2W, C_i) except the last */
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < c->layers_per_block + 1; j++) {
            if ((rc = resnet_step(&r, &v->up_res[i][j], &pp, &x, err)) != ENG_OK) goto done;
        }
        if (i < L - 1) {
            buf_view(&y, &pp, !pp.cur, n, 2 * x.shape[1], 2 * x.shape[2], v->up[i].w.shape[0]);
            if ((rc = sd_block_upsample_forward(&v->up[i], ctx, s, scratch, &y, &x, err)) != 0)
                goto done;
            x = y;
            pp.cur = !pp.cur;
        }
    }
    /* conv_norm_out + SiLU, conv_out -> image (N, f h, f w, out) */
    buf_view(&y, &pp, !pp.cur, n, x.shape[1], x.shape[2], x.shape[3]);
    rc = eng_op_groupnorm(ctx, s, &y, &x, &v->dec_norm_w, &v->dec_norm_b, r.groups, VAE_EPS,
                          ENG_ACT_SILU, err);
    if (rc != ENG_OK) goto done;
    rc = eng_op_conv2d(ctx, s, image, &y, &v->dec_out.w, &v->dec_out.b, 1, 1, err);
done:
    eng_arena_rewind(scratch, start);
    return rc;
}

int sd_vae_encode(const sd_vae *v,
                  eng_ctx *ctx,
                  eng_stream *s,
                  eng_arena *scratch,
                  eng_tensor *latent,
                  const eng_tensor *image,
                  const float *noise,
                  float scale,
                  eng_err *err) {
    int rc = ENG_OK;
    char lat_s[96], img_s[96], want[32];
    ENG_ASSERT(v != NULL && ctx != NULL && scratch != NULL && image != NULL && latent != NULL);
    snprintf(want, sizeof want, "%s", eng_dtype_name(v->dest.dtype));
    const char *dev = eng_device_name(v->dest.device);
    const wt_vae_config *c = &v->cfg;
    const int L = c->n_levels;
    const int64_t f = sd_vae_upscale(v), lat = c->latent_channels;
    const eng_arena_pos start = eng_arena_mark(scratch);
    vae_run r = {ctx, s, scratch, c->norm_groups, v->dest.dtype};
    vae_pingpong pp;
    eng_tensor x, y;
    memset(&pp, 0, sizeof pp);
    shape_str(lat_s, sizeof lat_s, latent);
    shape_str(img_s, sizeof img_s, image);
    if (!(v->parts & SD_VAE_ENCODER)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_encode: this sd_vae was loaded without its encoder "
                         "(sd_vae_load_parts without SD_VAE_ENCODER)");
        goto done;
    }
    if (!is_mine(v, image) || image->shape[3] != c->in_channels || image->shape[0] < 1 ||
        image->shape[1] < f || image->shape[2] < f || image->shape[1] % f != 0 ||
        image->shape[2] % f != 0 || image->shape[0] > SD_VAE_MAX_SIDE ||
        image->shape[1] / f > SD_VAE_MAX_SIDE || image->shape[2] / f > SD_VAE_MAX_SIDE) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_encode: image is %s, expected %s[N,H,W,%d] %s (NHWC, "
                         "contiguous, H and W multiples of %lld, N, H/%lld, W/%lld in 1..%d)",
                         img_s, want, c->in_channels, dev, (long long)f, (long long)f, (long long)f,
                         SD_VAE_MAX_SIDE);
        goto done;
    }
    const int64_t n = image->shape[0], hh = image->shape[1], ww = image->shape[2];
    const int64_t h = hh / f, w = ww / f;
    if (!is_mine(v, latent) || latent->shape[0] != n || latent->shape[1] != h ||
        latent->shape[2] != w || latent->shape[3] != lat) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_encode: latent is %s, expected %s[%lld,%lld,%lld,%lld] %s for "
                         "the image %s (contiguous NHWC, 1/%lld of the sides)",
                         lat_s, want, (long long)n, (long long)h, (long long)w, (long long)lat, dev,
                         img_s, (long long)f);
        goto done;
    }
    if (!(scale > 0.0f) || !isfinite(scale)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_vae_encode: latent scale %g must be finite and > 0 (SD: 0.18215)",
                         (double)scale);
        goto done;
    }
    /* The largest activation: level i runs at width block_out[i] and 1/2^i of the sides (its
     * downsampler's output is smaller); the moments are 2 lat wide at the latent's size. */
    int64_t most = 2 * lat;
    for (int i = 0; i < L; i++) {
        const int64_t e = (int64_t)c->block_out[i] * ((int64_t)1 << (2 * (L - 1 - i)));
        if (e > most) most = e;
    }
    if ((rc = pingpong_init(&r, &pp, n * h * w * most, err)) != ENG_OK) goto done;
    /* conv_in: (N, H, W, in) -> (N, H, W, C_0) */
    buf_view(&x, &pp, 0, n, hh, ww, v->enc_in.w.shape[0]);
    if ((rc = eng_op_conv2d(ctx, s, &x, image, &v->enc_in.w, &v->enc_in.b, 1, 1, err)) != ENG_OK)
        goto done;
    pp.cur = 0;
    /* down blocks: resnets to C_i, then (N, H/2, W/2, C_i) except on the last */
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < c->layers_per_block; j++) {
            if ((rc = resnet_step(&r, &v->down_res[i][j], &pp, &x, err)) != ENG_OK) goto done;
        }
        if (i < L - 1) {
            buf_view(&y, &pp, !pp.cur, n, x.shape[1] / 2, x.shape[2] / 2, v->down[i].w.shape[0]);
            rc = sd_block_downsample_forward(&v->down[i], 0, ctx, s, scratch, &y, &x, err);
            if (rc != ENG_OK) goto done;
            x = y;
            pp.cur = !pp.cur;
        }
    }
    if ((rc = mid_fwd(&r, &v->enc_mid, &pp, &x, err)) != ENG_OK) goto done;
    /* conv_norm_out + SiLU, conv_out (N, h, w, 2 lat), quant_conv: the moments (mean, logvar) */
    buf_view(&y, &pp, !pp.cur, n, h, w, x.shape[3]);
    rc = eng_op_groupnorm(ctx, s, &y, &x, &v->enc_norm_w, &v->enc_norm_b, r.groups, VAE_EPS,
                          ENG_ACT_SILU, err);
    if (rc != ENG_OK) goto done;
    buf_view(&x, &pp, pp.cur, n, h, w, 2 * lat);
    if ((rc = eng_op_conv2d(ctx, s, &x, &y, &v->enc_out.w, &v->enc_out.b, 1, 1, err)) != ENG_OK)
        goto done;
    buf_view(&y, &pp, !pp.cur, n, h, w, 2 * lat);
    if ((rc = eng_op_conv2d(ctx, s, &y, &x, &v->quant.w, &v->quant.b, 1, 0, err)) != ENG_OK)
        goto done;
    /* latent = scale (mean + exp(0.5 clamp(logvar)) noise): DiagonalGaussianDistribution.sample
     * (mean + std * noise, in f32) then the pipeline's `* scaling_factor`; mode() without noise.
     * The pixel's 2 lat moments are [mean (lat), logvar (lat)] (torch.chunk along channels). The
     * ops have no exp or clamp, so this runs on the host: in place on the CPU; for a device the
     * moments (latent-sized, small) come down in f32 and the latent goes back up. */
    if (v->dest.device == ENG_DEVICE_CPU) {
        sample_latent((float *)latent->data, (const float *)y.data, noise, n * h * w, lat, scale);
    } else {
        eng_arena *stage = eng_alloc_scratch(eng_ctx_alloc(ctx, ENG_DEVICE_CPU));
        const eng_arena_pos mark = eng_arena_mark(stage);
        const int64_t ms[1] = {n * h * w * 2 * lat}, ls[1] = {n * h * w * lat};
        eng_tensor mo, out;
        if ((rc = eng_tensor_scratch(&mo, stage, ENG_DTYPE_F32, 1, ms, err)) == ENG_OK &&
            (rc = eng_tensor_scratch(&out, stage, ENG_DTYPE_F32, 1, ls, err)) == ENG_OK &&
            (rc = sd_block_download(ctx, s, (float *)mo.data, &y, err)) == ENG_OK) {
            sample_latent((float *)out.data, (const float *)mo.data, noise, n * h * w, lat, scale);
            rc = sd_block_upload(ctx, s, latent, (const float *)out.data, err);
        }
        eng_arena_rewind(stage, mark);
    }
done:
    eng_arena_rewind(scratch, start);
    return rc;
}
