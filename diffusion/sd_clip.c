/* sd_clip.c: the CLIP text encoder forward pass (see sd_clip.h): weights loaded once onto the
 * chosen device and dtype, activations from the caller's arena, every step an eng_op_* call.
 * Port of transformers' CLIPTextTransformer (models/clip/modeling_clip.py). */
#include "sd_clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_block.h"

/* The tensors of one encoder layer, in the order of layer_names below. */
enum {
    CL_Q_W,
    CL_Q_B,
    CL_K_W,
    CL_K_B,
    CL_V_W,
    CL_V_B,
    CL_O_W,
    CL_O_B,
    CL_LN1_W,
    CL_LN1_B,
    CL_FC1_W,
    CL_FC1_B,
    CL_FC2_W,
    CL_FC2_B,
    CL_LN2_W,
    CL_LN2_B,
    CL_LAYER_COUNT
};

static const char *const layer_names[CL_LAYER_COUNT] = {
    "self_attn.q_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.weight",
    "self_attn.v_proj.bias",
    "self_attn.out_proj.weight",
    "self_attn.out_proj.bias",
    "layer_norm1.weight",
    "layer_norm1.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
    "layer_norm2.weight",
    "layer_norm2.bias",
};

typedef struct sd_clip_layer {
    eng_tensor t[CL_LAYER_COUNT];
} sd_clip_layer;

struct sd_clip {
    wt_text_config cfg;
    sd_block_dest dest;    /* device, dtype, and the weights' allocator (retained) */
    eng_alloc *alloc;      /* dest.alloc */
    eng_tensor tok_emb;    /* (vocab, C) */
    eng_tensor pos_emb;    /* (max_positions, C) */
    eng_tensor final_ln_w; /* (C) */
    eng_tensor final_ln_b; /* (C) */
    sd_clip_layer *layers; /* [cfg.layers] */
};

void sd_clip_destroy(sd_clip *clip) {
    if (clip == NULL) return;
    if (clip->layers != NULL) {
        for (int l = 0; l < clip->cfg.layers; l++)
            for (int i = 0; i < CL_LAYER_COUNT; i++)
                if (clip->layers[l].t[i].data != NULL)
                    eng_tensor_free(clip->alloc, &clip->layers[l].t[i]);
        free(clip->layers);
    }
    if (clip->tok_emb.data != NULL) eng_tensor_free(clip->alloc, &clip->tok_emb);
    if (clip->pos_emb.data != NULL) eng_tensor_free(clip->alloc, &clip->pos_emb);
    if (clip->final_ln_w.data != NULL) eng_tensor_free(clip->alloc, &clip->final_ln_w);
    if (clip->final_ln_b.data != NULL) eng_tensor_free(clip->alloc, &clip->final_ln_b);
    free(clip);
}

const wt_text_config *sd_clip_config(const sd_clip *clip) {
    ENG_ASSERT(clip != NULL);
    return &clip->cfg;
}

static int
load(const wt_model *m, const sd_block_dest *d, const char *name, eng_tensor *t, eng_err *err) {
    return sd_block_load_tensor(t, m, d, 0, err, "text_encoder.%s", name);
}

static int create(sd_clip **out, const wt_model *model, const sd_block_dest *d, eng_err *err);

int sd_clip_create(sd_clip **out, const wt_model *model, eng_alloc *alloc, eng_err *err) {
    ENG_ASSERT(out != NULL && model != NULL && alloc != NULL);
    *out = NULL;
    if (eng_alloc_device(alloc) != ENG_DEVICE_CPU) {
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "sd_clip_create: the allocator is on %s; sd_clip_create loads into "
                           "host memory (sd_clip_create_on loads onto a device)",
                           eng_alloc_device_name(alloc));
    }
    /* the CPU path of the loader never uses the context */
    const sd_block_dest d = {NULL, alloc, ENG_DEVICE_CPU, ENG_DTYPE_F32};
    return create(out, model, &d, err);
}

int sd_clip_create_on(sd_clip **out,
                      const wt_model *model,
                      eng_ctx *ctx,
                      eng_device_kind device,
                      eng_dtype dtype,
                      eng_err *err) {
    sd_block_dest d;
    ENG_ASSERT(out != NULL && model != NULL && ctx != NULL);
    *out = NULL;
    const int rc = sd_block_dest_init(&d, ctx, device, dtype, "sd_clip_create", err);
    return rc != ENG_OK ? rc : create(out, model, &d, err);
}

eng_device_kind sd_clip_device(const sd_clip *clip) {
    return clip->dest.device;
}

eng_dtype sd_clip_dtype(const sd_clip *clip) {
    return clip->dest.dtype;
}

static int create(sd_clip **out, const wt_model *model, const sd_block_dest *d, eng_err *err) {
    int rc = ENG_OK;
    sd_clip *c = NULL;
    const wt_text_config *t = &wt_model_config(model)->text;
    if (t->hidden < 1 || t->layers < 1 || t->heads < 1 || t->hidden % t->heads != 0 ||
        t->intermediate < 1 || t->vocab < 1 || t->max_positions < 1) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_clip_create: text encoder config out of range (hidden %d, layers %d, "
                         "heads %d, intermediate %d, vocab %d, positions %d): heads must divide "
                         "hidden",
                         t->hidden, t->layers, t->heads, t->intermediate, t->vocab,
                         t->max_positions);
        goto done;
    }
    if ((c = (sd_clip *)calloc(1, sizeof *c)) == NULL ||
        (c->layers = (sd_clip_layer *)calloc((size_t)t->layers, sizeof *c->layers)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_clip_create: out of host memory for %d layers",
                         t->layers);
        goto done;
    }
    c->cfg = *t;
    c->dest = *d;
    c->alloc = d->alloc;
    if ((rc = load(model, d, "text_model.embeddings.token_embedding.weight", &c->tok_emb, err)) !=
            ENG_OK ||
        (rc = load(model, d, "text_model.embeddings.position_embedding.weight", &c->pos_emb,
                   err)) != ENG_OK ||
        (rc = load(model, d, "text_model.final_layer_norm.weight", &c->final_ln_w, err)) !=
            ENG_OK ||
        (rc = load(model, d, "text_model.final_layer_norm.bias", &c->final_ln_b, err)) != ENG_OK)
        goto done;
    for (int l = 0; l < t->layers; l++) {
        for (int i = 0; i < CL_LAYER_COUNT; i++) {
            char name[WT_MAX_NAME];
            snprintf(name, sizeof name, "text_model.encoder.layers.%d.%s", l, layer_names[i]);
            if ((rc = load(model, d, name, &c->layers[l].t[i], err)) != ENG_OK) goto done;
        }
    }
    *out = c;
    c = NULL;
done:
    sd_clip_destroy(c);
    return rc;
}

/* A contiguous scratch tensor (B, L, n) of dtype dt. */
static int scratch3(
    eng_tensor *t, eng_arena *ar, eng_dtype dt, int64_t b, int64_t l, int64_t n, eng_err *err) {
    const int64_t shape[3] = {b, l, n};
    return eng_tensor_scratch(t, ar, dt, 3, shape, err);
}

/* (B, L, H * D) contiguous viewed as (B, L, H, D), what eng_op_attention takes. */
static int heads_view(eng_tensor *v, const eng_tensor *x, int64_t heads, eng_err *err) {
    const int64_t shape[4] = {x->shape[0], x->shape[1], heads, x->shape[2] / heads};
    return eng_tensor_view_reshape(v, x, 4, shape, err);
}

int sd_clip_forward(sd_clip *clip,
                    eng_ctx *ctx,
                    eng_stream *stream,
                    eng_arena *arena,
                    eng_tensor *out,
                    const int32_t *ids,
                    int64_t batch,
                    int clip_skip,
                    eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(clip != NULL && ctx != NULL && arena != NULL && out != NULL);
    const wt_text_config *cfg = &clip->cfg;
    const int64_t C = cfg->hidden, I = cfg->intermediate, H = cfg->heads;
    const eng_act act = cfg->quick_gelu ? ENG_ACT_QUICK_GELU : ENG_ACT_GELU;
    char desc[96];
    if (batch < 1) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "sd_clip_forward: batch %lld, expected >= 1",
                         (long long)batch);
        goto done;
    }
    if (ids == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "sd_clip_forward: ids is NULL");
        goto done;
    }
    if (clip_skip < 1 || clip_skip > cfg->layers) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_clip_forward: clip_skip %d, expected 1 (last layer) .. %d (the "
                         "encoder has %d layers)",
                         clip_skip, cfg->layers, cfg->layers);
        goto done;
    }
    if (out->dtype != clip->dest.dtype || out->device != clip->dest.device || out->ndim != 3 ||
        out->shape[0] != batch || out->shape[1] < 1 || out->shape[1] > cfg->max_positions ||
        out->shape[2] != C || !eng_tensor_is_contiguous(out) || out->data == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_clip_forward: out is %s, expected %s[%lld, L, %lld] %s contiguous "
                         "with 1 <= L <= %d",
                         eng_tensor_describe(out, desc, sizeof desc),
                         eng_dtype_name(clip->dest.dtype), (long long)batch, (long long)C,
                         eng_device_name(clip->dest.device), cfg->max_positions);
        goto done;
    }
    const int64_t B = batch, L = out->shape[1];
    for (int64_t i = 0; i < B * L; i++) {
        if (ids[i] < 0 || ids[i] >= cfg->vocab) {
            rc = eng_err_set(err, ENG_E_INVALID_ARG,
                             "sd_clip_forward: token id %d at [%lld, %lld] is outside the "
                             "vocabulary [0, %d)",
                             (int)ids[i], (long long)(i / L), (long long)(i % L), cfg->vocab);
            goto done;
        }
    }

    /* Scratch: h (residual stream), x (norm output, then attention output), q, k, v,
     * m (MLP hidden). All (B, L, .) contiguous, of the weights' dtype and device. */
    const eng_dtype dt = clip->dest.dtype;
    eng_tensor h, x, q, k, v, m, qh, kh, vh, xh;
    if ((rc = scratch3(&h, arena, dt, B, L, C, err)) != ENG_OK ||
        (rc = scratch3(&x, arena, dt, B, L, C, err)) != ENG_OK ||
        (rc = scratch3(&q, arena, dt, B, L, C, err)) != ENG_OK ||
        (rc = scratch3(&k, arena, dt, B, L, C, err)) != ENG_OK ||
        (rc = scratch3(&v, arena, dt, B, L, C, err)) != ENG_OK ||
        (rc = scratch3(&m, arena, dt, B, L, I, err)) != ENG_OK)
        goto done;
    if ((rc = heads_view(&qh, &q, H, err)) != ENG_OK ||
        (rc = heads_view(&kh, &k, H, err)) != ENG_OK ||
        (rc = heads_view(&vh, &v, H, err)) != ENG_OK ||
        (rc = heads_view(&xh, &x, H, err)) != ENG_OK)
        goto done;

    /* Embeddings: h[b, l, :] = tok_emb[ids[b, l], :] + pos_emb[l, :]. The ids are on the host
     * and the engine has no gather op: one row copy per token into x (B L small copies on the
     * weights' device), then one broadcast add of the first L positions. */
    {
        const int64_t flat[2] = {B * L, C}, ps[3] = {1, L, C};
        eng_tensor x2, xrow, trow, pos, pos3;
        if ((rc = eng_tensor_view_reshape(&x2, &x, 2, flat, err)) != ENG_OK) goto done;
        for (int64_t i = 0; i < B * L; i++) {
            if ((rc = eng_tensor_view_rows(&xrow, &x2, i, 1, err)) != ENG_OK ||
                (rc = eng_tensor_view_rows(&trow, &clip->tok_emb, ids[i], 1, err)) != ENG_OK ||
                (rc = eng_op_contiguous(ctx, stream, &xrow, &trow, err)) != ENG_OK)
                goto done;
        }
        if ((rc = eng_tensor_view_rows(&pos, &clip->pos_emb, 0, L, err)) != ENG_OK ||
            (rc = eng_tensor_view_reshape(&pos3, &pos, 3, ps, err)) != ENG_OK ||
            (rc = eng_op_binary(ctx, stream, &h, &x, &pos3, ENG_BINOP_ADD, err)) != ENG_OK)
            goto done;
    }

    const int run_layers = cfg->layers - (clip_skip - 1);
    const float scale = 1.0f / sqrtf((float)(C / H));
    for (int li = 0; li < run_layers; li++) {
        const eng_tensor *w = clip->layers[li].t;
        /* attention block: h += out_proj(attn(LN1(h))) */
        if ((rc = eng_op_layernorm(ctx, stream, &x, &h, &w[CL_LN1_W], &w[CL_LN1_B], SD_CLIP_LN_EPS,
                                   err)) != ENG_OK ||
            (rc = eng_op_linear(ctx, stream, &q, &x, &w[CL_Q_W], &w[CL_Q_B], ENG_ACT_NONE, err)) !=
                ENG_OK ||
            (rc = eng_op_linear(ctx, stream, &k, &x, &w[CL_K_W], &w[CL_K_B], ENG_ACT_NONE, err)) !=
                ENG_OK ||
            (rc = eng_op_linear(ctx, stream, &v, &x, &w[CL_V_W], &w[CL_V_B], ENG_ACT_NONE, err)) !=
                ENG_OK ||
            (rc = eng_op_attention(ctx, stream, &xh, &qh, &kh, &vh, scale, 1, err)) != ENG_OK ||
            (rc = eng_op_linear(ctx, stream, &q, &x, &w[CL_O_W], &w[CL_O_B], ENG_ACT_NONE, err)) !=
                ENG_OK ||
            (rc = sd_block_add(ctx, stream, &h, &h, &q, err)) != ENG_OK)
            goto done;
        /* MLP block: h += fc2(act(fc1(LN2(h)))) */
        if ((rc = eng_op_layernorm(ctx, stream, &x, &h, &w[CL_LN2_W], &w[CL_LN2_B], SD_CLIP_LN_EPS,
                                   err)) != ENG_OK ||
            (rc = eng_op_linear(ctx, stream, &m, &x, &w[CL_FC1_W], &w[CL_FC1_B], act, err)) !=
                ENG_OK ||
            (rc = eng_op_linear(ctx, stream, &q, &m, &w[CL_FC2_W], &w[CL_FC2_B], ENG_ACT_NONE,
                                err)) != ENG_OK ||
            (rc = sd_block_add(ctx, stream, &h, &h, &q, err)) != ENG_OK)
            goto done;
    }
    rc = eng_op_layernorm(ctx, stream, out, &h, &clip->final_ln_w, &clip->final_ln_b,
                          SD_CLIP_LN_EPS, err);
done:
    return rc;
}
