/* sd_unet.c: the UNet (diffusers UNet2DConditionModel) on the engine's ops, NHWC, any device.
 * Reference: diffusers models/unets/unet_2d_condition.py (forward: time embedding, skip
 * bookkeeping), unets/unet_2d_blocks.py (CrossAttnDownBlock2D, DownBlock2D,
 * UNetMidBlock2DCrossAttn, UpBlock2D, CrossAttnUpBlock2D), resnet.py (ResnetBlock2D,
 * Downsample2D, Upsample2D: sd_block.h, shared with the VAE), transformers/transformer_2d.py,
 * attention.py (BasicTransformerBlock, GEGLU feed-forward). */
#include "sd_unet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_block.h"
#include "wt.h"

#define RES_EPS 1e-5f /* resnets and conv_norm_out (config norm_eps) */
#define TR_EPS  1e-6f /* the transformer's GroupNorm */
#define LN_EPS  1e-5f /* the transformer block's LayerNorms */

/* One attention (self or cross): to_q/k/v without bias, to_out.0 with. */
typedef struct un_attn {
    eng_tensor *q_w, *k_w, *v_w, *o_w, *o_b;
} un_attn;

/* Transformer2DModel with one BasicTransformerBlock. proj_in/out are (C, 1, 1, C) convs or
 * (C, C) linears; both are used as (C, C) linears over the tokens. */
typedef struct un_tr {
    eng_tensor *norm_w, *norm_b, *pin_w, *pin_b, *pout_w, *pout_b;
    eng_tensor *ln_w[3], *ln_b[3];
    un_attn a1, a2;
    eng_tensor *ff1_w, *ff1_b, *ff2_w, *ff2_b; /* (2 I, C), (C, I) */
    int64_t c, heads;
} un_tr;

struct sd_unet {
    wt_unet_config cfg;
    sd_block_dest dest; /* device, dtype and the weights' allocator */
    eng_alloc *alloc;   /* dest.alloc */
    eng_tensor tensors[SD_UNET_MAX_TENSORS];
    int n_tensors;
    eng_tensor *t1_w, *t1_b, *t2_w, *t2_b; /* time_embedding.linear_1/2 */
    eng_tensor *in_w, *in_b, *out_norm_w, *out_norm_b, *out_w, *out_b;
    /* resnets and samplers hold their tensors themselves (sd_block.h), outside `tensors` */
    sd_block_resnet down_res[WT_MAX_LEVELS][SD_UNET_MAX_LAYERS];
    un_tr down_tr[WT_MAX_LEVELS][SD_UNET_MAX_LAYERS];
    sd_block_conv down[WT_MAX_LEVELS]; /* downsamplers.0.conv, 3x3 stride 2, padding 1 */
    sd_block_resnet mid_res[2];
    un_tr mid_tr;
    sd_block_resnet up_res[WT_MAX_LEVELS][SD_UNET_MAX_LAYERS + 1];
    un_tr up_tr[WT_MAX_LEVELS][SD_UNET_MAX_LAYERS + 1];
    sd_block_conv up[WT_MAX_LEVELS]; /* upsamplers.0.conv after nearest 2x */
};

/* ---- loading ---------------------------------------------------------------------------------- */
static int load(sd_unet *u,
                const wt_model *m,
                eng_tensor **t,
                unsigned flags,
                eng_err *err,
                const char *fmt,
                ...) ENG_PRINTF(6, 7);
static int load(sd_unet *u,
                const wt_model *m,
                eng_tensor **t,
                unsigned flags,
                eng_err *err,
                const char *fmt,
                ...) {
    char name[WT_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (u->n_tensors == SD_UNET_MAX_TENSORS)
        return eng_err_set(err, ENG_E_UNSUPPORTED, "sd_unet_load: more than %d tensors at %s",
                           SD_UNET_MAX_TENSORS, name);
    eng_tensor *dst = &u->tensors[u->n_tensors];
    const int rc = sd_block_load_tensor(dst, m, &u->dest, flags, err, "%s", name);
    if (rc == ENG_OK) {
        u->n_tensors++;
        *t = dst;
    }
    return rc;
}

/* A ResnetBlock2D with the time embedding (time_emb_proj from the embedding's width). */
static int load_resnet(sd_unet *u,
                       const wt_model *m,
                       sd_block_resnet *r,
                       const char *p,
                       int64_t cin,
                       int64_t cout,
                       eng_err *err) {
    return sd_block_resnet_load(r, m, &u->dest, p, cin, cout, u->t2_w->shape[0], u->cfg.norm_groups,
                                RES_EPS, err);
}

static int load_attn(sd_unet *u, const wt_model *m, un_attn *a, const char *p, eng_err *err) {
    int rc = ENG_OK;
    if ((rc = load(u, m, &a->q_w, 0, err, "%s.to_q.weight", p)) != ENG_OK) goto done;
    if ((rc = load(u, m, &a->k_w, 0, err, "%s.to_k.weight", p)) != ENG_OK) goto done;
    if ((rc = load(u, m, &a->v_w, 0, err, "%s.to_v.weight", p)) != ENG_OK) goto done;
    if ((rc = load(u, m, &a->o_w, 0, err, "%s.to_out.0.weight", p)) != ENG_OK) goto done;
    rc = load(u, m, &a->o_b, 0, err, "%s.to_out.0.bias", p);
done:
    return rc;
}

static int load_tr(
    sd_unet *u, const wt_model *m, un_tr *t, const char *p, int64_t c, int heads, eng_err *err) {
    int rc = ENG_OK;
    char b[WT_MAX_NAME];
    const unsigned pf = u->cfg.linear_proj ? 0u : (unsigned)WT_LOAD_OHWI;
    t->c = c;
    t->heads = heads;
    if (heads < 1 || c % heads != 0) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED, "sd_unet_load: %s: %d heads for %lld channels", p,
                         heads, (long long)c);
        goto done;
    }
    if ((rc = load(u, m, &t->norm_w, 0, err, "%s.norm.weight", p)) != ENG_OK) goto done;
    if ((rc = load(u, m, &t->norm_b, 0, err, "%s.norm.bias", p)) != ENG_OK) goto done;
    if ((rc = load(u, m, &t->pin_w, pf, err, "%s.proj_in.weight", p)) != ENG_OK) goto done;
    if ((rc = load(u, m, &t->pin_b, 0, err, "%s.proj_in.bias", p)) != ENG_OK) goto done;
    if ((rc = load(u, m, &t->pout_w, pf, err, "%s.proj_out.weight", p)) != ENG_OK) goto done;
    if ((rc = load(u, m, &t->pout_b, 0, err, "%s.proj_out.bias", p)) != ENG_OK) goto done;
    snprintf(b, sizeof b, "%s.transformer_blocks.0", p);
    for (int i = 0; i < 3; i++) {
        if ((rc = load(u, m, &t->ln_w[i], 0, err, "%s.norm%d.weight", b, i + 1)) != ENG_OK)
            goto done;
        if ((rc = load(u, m, &t->ln_b[i], 0, err, "%s.norm%d.bias", b, i + 1)) != ENG_OK) goto done;
    }
    char a[WT_MAX_NAME + 8];
    snprintf(a, sizeof a, "%s.attn1", b);
    if ((rc = load_attn(u, m, &t->a1, a, err)) != ENG_OK) goto done;
    snprintf(a, sizeof a, "%s.attn2", b);
    if ((rc = load_attn(u, m, &t->a2, a, err)) != ENG_OK) goto done;
    if ((rc = load(u, m, &t->ff1_w, 0, err, "%s.ff.net.0.proj.weight", b)) != ENG_OK) goto done;
    if ((rc = load(u, m, &t->ff1_b, 0, err, "%s.ff.net.0.proj.bias", b)) != ENG_OK) goto done;
    if ((rc = load(u, m, &t->ff2_w, 0, err, "%s.ff.net.2.weight", b)) != ENG_OK) goto done;
    rc = load(u, m, &t->ff2_b, 0, err, "%s.ff.net.2.bias", b);
done:
    return rc;
}

void sd_unet_destroy(sd_unet *u) {
    if (u == NULL) return;
    for (int i = 0; i < u->n_tensors; i++)
        eng_tensor_free(u->alloc, &u->tensors[i]);
    for (int l = 0; l < WT_MAX_LEVELS; l++) {
        for (int j = 0; j < SD_UNET_MAX_LAYERS + 1; j++) {
            if (j < SD_UNET_MAX_LAYERS) sd_block_resnet_free(&u->down_res[l][j], u->alloc);
            sd_block_resnet_free(&u->up_res[l][j], u->alloc);
        }
        sd_block_conv_free(&u->down[l], u->alloc);
        sd_block_conv_free(&u->up[l], u->alloc);
    }
    for (int i = 0; i < 2; i++)
        sd_block_resnet_free(&u->mid_res[i], u->alloc);
    free(u);
}

int sd_unet_load(sd_unet **out, const wt_model *m, eng_ctx *ctx, eng_err *err) {
    return sd_unet_load_on(out, m, ctx, ENG_DEVICE_CPU, ENG_DTYPE_F32, err);
}

int sd_unet_load_on(sd_unet **out,
                    const wt_model *m,
                    eng_ctx *ctx,
                    eng_device_kind device,
                    eng_dtype dtype,
                    eng_err *err) {
    int rc = ENG_OK;
    sd_block_dest dest;
    sd_unet *u = NULL;
    char p[WT_MAX_NAME];
    int64_t skip[WT_MAX_LEVELS * (SD_UNET_MAX_LAYERS + 1) + 1];
    int ns = 0;
    ENG_ASSERT(out != NULL && m != NULL && ctx != NULL);
    *out = NULL;
    const wt_unet_config *c = &wt_model_config(m)->unet;
    if ((rc = sd_block_dest_init(&dest, ctx, device, dtype, "sd_unet_load", err)) != ENG_OK)
        goto done;
    if (c->n_levels < 1 || c->n_levels > WT_MAX_LEVELS || c->layers_per_block < 1 ||
        c->layers_per_block > SD_UNET_MAX_LAYERS) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "sd_unet_load: a UNet with %d levels and %d layers per block (at most "
                         "%d levels, %d layers)",
                         c->n_levels, c->layers_per_block, WT_MAX_LEVELS, SD_UNET_MAX_LAYERS);
        goto done;
    }
    if ((u = calloc(1, sizeof *u)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_unet_load: out of host memory");
        goto done;
    }
    u->cfg = *c;
    u->dest = dest;
    u->alloc = dest.alloc;
    const int L = c->n_levels, nl = c->layers_per_block;
    if ((rc = load(u, m, &u->t1_w, 0, err, "unet.time_embedding.linear_1.weight")) != ENG_OK)
        goto done;
    if ((rc = load(u, m, &u->t1_b, 0, err, "unet.time_embedding.linear_1.bias")) != ENG_OK)
        goto done;
    if ((rc = load(u, m, &u->t2_w, 0, err, "unet.time_embedding.linear_2.weight")) != ENG_OK)
        goto done;
    if ((rc = load(u, m, &u->t2_b, 0, err, "unet.time_embedding.linear_2.bias")) != ENG_OK)
        goto done;
    if ((rc = load(u, m, &u->in_w, WT_LOAD_OHWI, err, "unet.conv_in.weight")) != ENG_OK) goto done;
    if ((rc = load(u, m, &u->in_b, 0, err, "unet.conv_in.bias")) != ENG_OK) goto done;
    /* down path: the skip stack records the width of every output the up path concatenates */
    int64_t prev = c->block_out[0];
    skip[ns++] = prev;
    for (int i = 0; i < L; i++) {
        const int64_t w = c->block_out[i];
        for (int j = 0; j < nl; j++) {
            snprintf(p, sizeof p, "unet.down_blocks.%d.resnets.%d", i, j);
            if ((rc = load_resnet(u, m, &u->down_res[i][j], p, j == 0 ? prev : w, w, err)) != 0)
                goto done;
            if (c->attn[i]) {
                snprintf(p, sizeof p, "unet.down_blocks.%d.attentions.%d", i, j);
                if ((rc = load_tr(u, m, &u->down_tr[i][j], p, w, c->heads[i], err)) != ENG_OK)
                    goto done;
            }
            skip[ns++] = w;
        }
        if (i < L - 1) {
            snprintf(p, sizeof p, "unet.down_blocks.%d.downsamplers.0.conv", i);
            if ((rc = sd_block_conv_load(&u->down[i], m, &u->dest, p, w, w, 3, err)) != ENG_OK)
                goto done;
            skip[ns++] = w;
        }
        prev = w;
    }
    const int64_t top = c->block_out[L - 1];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "unet.mid_block.resnets.%d", i);
        if ((rc = load_resnet(u, m, &u->mid_res[i], p, top, top, err)) != ENG_OK) goto done;
    }
    rc = load_tr(u, m, &u->mid_tr, "unet.mid_block.attentions.0", top, c->heads[L - 1], err);
    if (rc != ENG_OK) goto done;
    /* up path: up_blocks.i runs at block_out[L - 1 - i]; resnet j takes concat(h, skip) */
    prev = top;
    for (int i = 0; i < L; i++) {
        const int lv = L - 1 - i;
        const int64_t w = c->block_out[lv];
        for (int j = 0; j < nl + 1; j++) {
            const int64_t cs = skip[--ns];
            snprintf(p, sizeof p, "unet.up_blocks.%d.resnets.%d", i, j);
            rc = load_resnet(u, m, &u->up_res[i][j], p, (j == 0 ? prev : w) + cs, w, err);
            if (rc != ENG_OK) goto done;
            if (c->attn[lv]) {
                snprintf(p, sizeof p, "unet.up_blocks.%d.attentions.%d", i, j);
                if ((rc = load_tr(u, m, &u->up_tr[i][j], p, w, c->heads[lv], err)) != ENG_OK)
                    goto done;
            }
        }
        if (i < L - 1) {
            snprintf(p, sizeof p, "unet.up_blocks.%d.upsamplers.0.conv", i);
            if ((rc = sd_block_conv_load(&u->up[i], m, &u->dest, p, w, w, 3, err)) != ENG_OK)
                goto done;
        }
        prev = w;
    }
    ENG_ASSERT(ns == 0);
    if ((rc = load(u, m, &u->out_norm_w, 0, err, "unet.conv_norm_out.weight")) != ENG_OK) goto done;
    if ((rc = load(u, m, &u->out_norm_b, 0, err, "unet.conv_norm_out.bias")) != ENG_OK) goto done;
    if ((rc = load(u, m, &u->out_w, WT_LOAD_OHWI, err, "unet.conv_out.weight")) != ENG_OK)
        goto done;
    if ((rc = load(u, m, &u->out_b, 0, err, "unet.conv_out.bias")) != ENG_OK) goto done;
    *out = u;
    u = NULL;
done:
    sd_unet_destroy(u);
    return rc;
}

const struct wt_unet_config *sd_unet_config(const sd_unet *u) {
    return &u->cfg;
}

eng_device_kind sd_unet_device(const sd_unet *u) {
    return u->dest.device;
}

eng_dtype sd_unet_dtype(const sd_unet *u) {
    return u->dest.dtype;
}

/* ---- forward ---------------------------------------------------------------------------------- */
typedef struct un_run {
    eng_ctx *ctx;
    eng_stream *s;
    eng_arena *ar;
    eng_dtype dt; /* the weights' and activations' */
    int64_t groups;
    const eng_tensor *temb;    /* SiLU(temb) (N, T) */
    const eng_tensor *context; /* (N, Lc, context_dim) */
} un_run;

static int scratch_n(const un_run *r, eng_tensor *t, int nd, const int64_t *shape, eng_err *err) {
    return eng_tensor_scratch(t, r->ar, r->dt, nd, shape, err);
}

static int
scratch4(const un_run *r, eng_tensor *t, int64_t n, int64_t h, int64_t w, int64_t c, eng_err *err) {
    const int64_t shape[4] = {n, h, w, c};
    return scratch_n(r, t, 4, shape, err);
}

/* y (N, H, W, cout) = resnet(x (N, H, W, cin), SiLU(temb)); y is the caller's. */
static int resnet_fwd(
    const un_run *r, const sd_block_resnet *b, eng_tensor *y, const eng_tensor *x, eng_err *err) {
    return sd_block_resnet_forward(b, r->ctx, r->s, r->ar, y, x, r->temb, err);
}

/* h (N, L, C) += to_out(attention(to_q(xn), to_k(kv), to_v(kv))), kv (N, Lk, Ck). */
static int attn_fwd(const un_run *r,
                    const un_attn *a,
                    int64_t heads,
                    eng_tensor *h,
                    const eng_tensor *xn,
                    const eng_tensor *kv,
                    eng_err *err) {
    int rc = ENG_OK;
    const int64_t n = h->shape[0], l = h->shape[1], c = h->shape[2], lk = kv->shape[1];
    const int64_t d = c / heads;
    const int64_t qs[3] = {n, l, c}, ks[3] = {n, lk, c};
    const int64_t q4s[4] = {n, l, heads, d}, k4s[4] = {n, lk, heads, d};
    eng_tensor q, k, v, o, p, q4, k4, v4, o4;
    const eng_arena_pos pos = eng_arena_mark(r->ar);
    if ((rc = scratch_n(r, &q, 3, qs, err)) != ENG_OK) goto done;
    if ((rc = scratch_n(r, &o, 3, qs, err)) != ENG_OK) goto done;
    if ((rc = scratch_n(r, &p, 3, qs, err)) != ENG_OK) goto done;
    if ((rc = scratch_n(r, &k, 3, ks, err)) != ENG_OK) goto done;
    if ((rc = scratch_n(r, &v, 3, ks, err)) != ENG_OK) goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &q, xn, a->q_w, NULL, ENG_ACT_NONE, err)) != ENG_OK)
        goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &k, kv, a->k_w, NULL, ENG_ACT_NONE, err)) != ENG_OK)
        goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &v, kv, a->v_w, NULL, ENG_ACT_NONE, err)) != ENG_OK)
        goto done;
    if ((rc = eng_tensor_view_reshape(&q4, &q, 4, q4s, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&o4, &o, 4, q4s, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&k4, &k, 4, k4s, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&v4, &v, 4, k4s, err)) != ENG_OK) goto done;
    rc = eng_op_attention(r->ctx, r->s, &o4, &q4, &k4, &v4, 1.0f / sqrtf((float)d), 0, err);
    if (rc != ENG_OK) goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &p, &o, a->o_w, a->o_b, ENG_ACT_NONE, err)) != ENG_OK)
        goto done;
    rc = sd_block_add(r->ctx, r->s, h, h, &p, err);
done:
    eng_arena_rewind(r->ar, pos);
    return rc;
}

/* y (N, H, W, C) = x + proj_out(block(proj_in(gn(x)))); y is the caller's. */
static int
tr_fwd(const un_run *r, const un_tr *t, eng_tensor *y, const eng_tensor *x, eng_err *err) {
    int rc = ENG_OK;
    const int64_t n = x->shape[0], hh = x->shape[1], ww = x->shape[2], c = x->shape[3];
    const int64_t l = hh * ww, inner = t->ff2_w->shape[1];
    const int64_t tok[3] = {n, l, c}, wsh[2] = {c, c}, f2[3] = {n, l, 2 * inner},
                  f1[3] = {n, l, inner};
    eng_tensor gn, gn3, h, xn, f, g, p, y3, pin, pout;
    const eng_arena_pos pos = eng_arena_mark(r->ar);
    if ((rc = scratch4(r, &gn, n, hh, ww, c, err)) != ENG_OK) goto done;
    if ((rc = scratch_n(r, &h, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = scratch_n(r, &xn, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = scratch_n(r, &p, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = scratch_n(r, &f, 3, f2, err)) != ENG_OK) goto done;
    if ((rc = scratch_n(r, &g, 3, f1, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&pin, t->pin_w, 2, wsh, err)) != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&pout, t->pout_w, 2, wsh, err)) != ENG_OK) goto done;
    rc = eng_op_groupnorm(r->ctx, r->s, &gn, x, t->norm_w, t->norm_b, r->groups, TR_EPS,
                          ENG_ACT_NONE, err);
    if (rc != ENG_OK) goto done;
    if ((rc = eng_tensor_view_reshape(&gn3, &gn, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &h, &gn3, &pin, t->pin_b, ENG_ACT_NONE, err)) != ENG_OK)
        goto done;
    /* self-attention, cross-attention, GEGLU feed-forward; each pre-LayerNorm + residual */
    if ((rc = eng_op_layernorm(r->ctx, r->s, &xn, &h, t->ln_w[0], t->ln_b[0], LN_EPS, err)) != 0)
        goto done;
    if ((rc = attn_fwd(r, &t->a1, t->heads, &h, &xn, &xn, err)) != ENG_OK) goto done;
    if ((rc = eng_op_layernorm(r->ctx, r->s, &xn, &h, t->ln_w[1], t->ln_b[1], LN_EPS, err)) != 0)
        goto done;
    if ((rc = attn_fwd(r, &t->a2, t->heads, &h, &xn, r->context, err)) != ENG_OK) goto done;
    if ((rc = eng_op_layernorm(r->ctx, r->s, &xn, &h, t->ln_w[2], t->ln_b[2], LN_EPS, err)) != 0)
        goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &f, &xn, t->ff1_w, t->ff1_b, ENG_ACT_NONE, err)) != 0)
        goto done;
    if ((rc = eng_op_geglu(r->ctx, r->s, &g, &f, err)) != ENG_OK) goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &p, &g, t->ff2_w, t->ff2_b, ENG_ACT_NONE, err)) != 0)
        goto done;
    if ((rc = sd_block_add(r->ctx, r->s, &h, &h, &p, err)) != ENG_OK) goto done;
    /* y = proj_out(h) + x */
    if ((rc = eng_tensor_view_reshape(&y3, y, 3, tok, err)) != ENG_OK) goto done;
    if ((rc = eng_op_linear(r->ctx, r->s, &y3, &h, &pout, t->pout_b, ENG_ACT_NONE, err)) != 0)
        goto done;
    rc = sd_block_add(r->ctx, r->s, y, y, x, err);
done:
    eng_arena_rewind(r->ar, pos);
    return rc;
}

/* t is an ndim-D contiguous tensor of the UNet's dtype and device. */
static int is_mine(const sd_unet *u, const eng_tensor *t, int ndim) {
    return t->ndim == ndim && t->dtype == u->dest.dtype && t->device == u->dest.device &&
           eng_tensor_is_contiguous(t);
}

int sd_unet_forward(const sd_unet *u,
                    eng_ctx *ctx,
                    eng_stream *s,
                    eng_arena *scratch,
                    eng_tensor *out,
                    const eng_tensor *latent,
                    const float *timesteps,
                    const eng_tensor *context,
                    eng_err *err) {
    int rc = ENG_OK;
    char lat_s[96], out_s[96], ctx_s[96], want[32];
    ENG_ASSERT(u != NULL && ctx != NULL && scratch != NULL && out != NULL && latent != NULL &&
               timesteps != NULL && context != NULL);
    const wt_unet_config *c = &u->cfg;
    const int L = c->n_levels, nl = c->layers_per_block;
    const int64_t f = (int64_t)1 << (L - 1);
    const eng_arena_pos start = eng_arena_mark(scratch);
    (void)eng_tensor_describe(latent, lat_s, sizeof lat_s);
    (void)eng_tensor_describe(out, out_s, sizeof out_s);
    (void)eng_tensor_describe(context, ctx_s, sizeof ctx_s);
    snprintf(want, sizeof want, "%s", eng_dtype_name(u->dest.dtype));
    const char *dev = eng_device_name(u->dest.device);
    if (!is_mine(u, latent, 4) || latent->shape[3] != c->in_channels || latent->shape[0] < 1 ||
        latent->shape[1] < 1 || latent->shape[2] < 1 || latent->shape[0] > SD_UNET_MAX_SIDE ||
        latent->shape[1] > SD_UNET_MAX_SIDE || latent->shape[2] > SD_UNET_MAX_SIDE ||
        latent->shape[1] % f != 0 || latent->shape[2] % f != 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_unet_forward: latent is %s, expected %s[N,h,w,%d] %s (NHWC, "
                         "contiguous, h and w multiples of %lld, at most %d)",
                         lat_s, want, c->in_channels, dev, (long long)f, SD_UNET_MAX_SIDE);
        goto done;
    }
    const int64_t n = latent->shape[0], h = latent->shape[1], w = latent->shape[2];
    if (!is_mine(u, context, 3) || context->shape[0] != n || context->shape[1] < 1 ||
        context->shape[1] > SD_UNET_MAX_SIDE || context->shape[2] != c->context_dim) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_unet_forward: context is %s, expected %s[%lld,Lc,%d] %s for the "
                         "latent %s (contiguous)",
                         ctx_s, want, (long long)n, c->context_dim, dev, lat_s);
        goto done;
    }
    if (!is_mine(u, out, 4) || out->shape[0] != n || out->shape[1] != h || out->shape[2] != w ||
        out->shape[3] != c->out_channels) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_unet_forward: out is %s, expected %s[%lld,%lld,%lld,%d] %s for the "
                         "latent %s (contiguous NHWC)",
                         out_s, want, (long long)n, (long long)h, (long long)w, c->out_channels,
                         dev, lat_s);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(timesteps[i])) {
            rc = eng_err_set(err, ENG_E_INVALID_ARG, "sd_unet_forward: timestep %lld is %g",
                             (long long)i, (double)timesteps[i]);
            goto done;
        }
    }
    un_run r = {ctx, s, scratch, u->dest.dtype, c->norm_groups, NULL, context};
    eng_tensor tt, tsin, t1, temb, x, y, cat;
    eng_tensor skips[WT_MAX_LEVELS * (SD_UNET_MAX_LAYERS + 1) + 1];
    int ns = 0;
    /* temb = linear_2(SiLU(linear_1(sinusoid(t)))); resnets take SiLU(temb): (N, T) */
    {
        const int64_t tn[1] = {n}, s0[2] = {n, u->t1_w->shape[1]}, s1[2] = {n, u->t1_w->shape[0]};
        const int64_t s2[2] = {n, u->t2_w->shape[0]};
        if (u->dest.device == ENG_DEVICE_CPU) {
            if ((rc = eng_tensor_init(&tt, (void *)timesteps, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, tn,
                                      err)) != ENG_OK)
                goto done;
        } else { /* the embedding op reads t (f32) on the device: N floats uploaded */
            if ((rc = eng_tensor_scratch(&tt, scratch, ENG_DTYPE_F32, 1, tn, err)) != ENG_OK ||
                (rc = sd_block_upload(ctx, s, &tt, timesteps, err)) != ENG_OK)
                goto done;
        }
        if ((rc = scratch_n(&r, &tsin, 2, s0, err)) != ENG_OK) goto done;
        if ((rc = scratch_n(&r, &t1, 2, s1, err)) != ENG_OK) goto done;
        if ((rc = scratch_n(&r, &temb, 2, s2, err)) != ENG_OK) goto done;
        if ((rc = eng_op_timestep_embedding(ctx, s, &tsin, &tt, 1, 0.0f, 10000.0f, err)) != ENG_OK)
            goto done;
        if ((rc = eng_op_linear(ctx, s, &t1, &tsin, u->t1_w, u->t1_b, ENG_ACT_SILU, err)) != 0)
            goto done;
        if ((rc = eng_op_linear(ctx, s, &temb, &t1, u->t2_w, u->t2_b, ENG_ACT_NONE, err)) != 0)
            goto done;
        if ((rc = eng_op_unary(ctx, s, &temb, &temb, ENG_ACT_SILU, 1.0f, 0.0f, err)) != ENG_OK)
            goto done;
        r.temb = &temb;
    }
    /* conv_in: (N, h, w, in) -> (N, h, w, C0) */
    if ((rc = scratch4(&r, &x, n, h, w, u->in_w->shape[0], err)) != ENG_OK) goto done;
    if ((rc = eng_op_conv2d(ctx, s, &x, latent, u->in_w, u->in_b, 1, 1, err)) != ENG_OK) goto done;
    skips[ns++] = x;
    /* down path; every block output stays in the arena (the skips) until the end */
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < nl; j++) {
            const sd_block_resnet *b = &u->down_res[i][j];
            if ((rc = scratch4(&r, &y, n, x.shape[1], x.shape[2], b->cout, err)) != ENG_OK)
                goto done;
            if ((rc = resnet_fwd(&r, b, &y, &x, err)) != ENG_OK) goto done;
            x = y;
            if (c->attn[i]) {
                if ((rc = scratch4(&r, &y, n, x.shape[1], x.shape[2], x.shape[3], err)) != ENG_OK)
                    goto done;
                if ((rc = tr_fwd(&r, &u->down_tr[i][j], &y, &x, err)) != ENG_OK) goto done;
                x = y;
            }
            skips[ns++] = x;
        }
        if (i < L - 1) {
            const int64_t oc = u->down[i].w.shape[0];
            if ((rc = scratch4(&r, &y, n, x.shape[1] / 2, x.shape[2] / 2, oc, err)) != ENG_OK)
                goto done;
            if ((rc = sd_block_downsample_forward(&u->down[i], 1, ctx, s, scratch, &y, &x, err)) !=
                ENG_OK)
                goto done;
            x = y;
            skips[ns++] = x;
        }
    }
    /* mid block: resnet, transformer, resnet */
    for (int k = 0; k < 3; k++) {
        if ((rc = scratch4(&r, &y, n, x.shape[1], x.shape[2], x.shape[3], err)) != ENG_OK)
            goto done;
        rc = k == 1 ? tr_fwd(&r, &u->mid_tr, &y, &x, err)
                    : resnet_fwd(&r, &u->mid_res[k / 2], &y, &x, err);
        if (rc != ENG_OK) goto done;
        x = y;
    }
    /* up path: resnet(concat(x, skip)) (+ transformer), then 2x upsampling but on the last */
    for (int i = 0; i < L; i++) {
        const int lv = L - 1 - i;
        for (int j = 0; j < nl + 1; j++) {
            const sd_block_resnet *b = &u->up_res[i][j];
            const eng_tensor *sk = &skips[--ns];
            if ((rc = scratch4(&r, &cat, n, x.shape[1], x.shape[2], x.shape[3] + sk->shape[3],
                               err)) != ENG_OK)
                goto done;
            if ((rc = eng_op_concat(ctx, s, &cat, &x, sk, 3, err)) != ENG_OK) goto done;
            if ((rc = scratch4(&r, &y, n, x.shape[1], x.shape[2], b->cout, err)) != ENG_OK)
                goto done;
            if ((rc = resnet_fwd(&r, b, &y, &cat, err)) != ENG_OK) goto done;
            x = y;
            if (c->attn[lv]) {
                if ((rc = scratch4(&r, &y, n, x.shape[1], x.shape[2], x.shape[3], err)) != ENG_OK)
                    goto done;
                if ((rc = tr_fwd(&r, &u->up_tr[i][j], &y, &x, err)) != ENG_OK) goto done;
                x = y;
            }
        }
        if (i < L - 1) {
            const int64_t oc = u->up[i].w.shape[0];
            if ((rc = scratch4(&r, &y, n, 2 * x.shape[1], 2 * x.shape[2], oc, err)) != ENG_OK)
                goto done;
            if ((rc = sd_block_upsample_forward(&u->up[i], ctx, s, scratch, &y, &x, err)) != ENG_OK)
                goto done;
            x = y;
        }
    }
    ENG_ASSERT(ns == 0);
    /* conv_norm_out + SiLU, conv_out -> out (N, h, w, out_channels) */
    if ((rc = scratch4(&r, &y, n, h, w, x.shape[3], err)) != ENG_OK) goto done;
    rc = eng_op_groupnorm(ctx, s, &y, &x, u->out_norm_w, u->out_norm_b, r.groups, RES_EPS,
                          ENG_ACT_SILU, err);
    if (rc != ENG_OK) goto done;
    rc = eng_op_conv2d(ctx, s, out, &y, u->out_w, u->out_b, 1, 1, err);
done:
    eng_arena_rewind(scratch, start);
    return rc;
}
