/* wt_plan.c: the presets and the plan: every tensor of an SD architecture with its canonical
 * (diffusers) name and shape, its name and shape in the file of a format, and its random init.
 * The ldm <-> diffusers map lives in the tables below (one row per tensor of a block), written
 * from the structure of CompVis ldm's openaimodel.py / model.py and diffusers' UNet2DCondition /
 * AutoencoderKL / transformers' CLIPTextModel; tests/golden/weights_*_keys.txt (from
 * tests/gen_weight_keys.py, which builds the real modules) checks it. */
#include <stdlib.h>
#include <string.h>

#include "wt_impl.h"

struct wt_plan {
    wt_plan_entry *e;
    int64_t n, cap;
    int64_t *sorted; /* indices of canonical entries sorted by name */
    int64_t n_sorted;
};

const char *wt_family_name(wt_family f) {
    static const char *const names[] = {"unknown", "sd1", "sd2"};
    return (unsigned)f < WT_FAMILY_COUNT ? names[f] : "?";
}
const char *wt_format_name(wt_format f) {
    static const char *const names[] = {"ldm", "diffusers"};
    return (unsigned)f < WT_FORMAT_COUNT ? names[f] : "?";
}
const char *wt_component_name(wt_component c) {
    static const char *const names[] = {"unet", "vae", "text_encoder"};
    return (unsigned)c < WT_COMPONENT_COUNT ? names[c] : "?";
}

char *wt_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used +=
            (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

int wt_text_heads_rule(int hidden) {
    return hidden >= 64 ? hidden / 64 : 1;
}

void wt_unet_heads_rule(wt_unet_config *u, wt_family family) {
    for (int i = 0; i < u->n_levels; i++)
        u->heads[i] =
            family == WT_FAMILY_SD2 ? (u->block_out[i] >= 64 ? u->block_out[i] / 64 : 1) : 8;
}

int wt_sd_config_preset(wt_sd_config *cfg, const char *name, eng_err *err) {
    memset(cfg, 0, sizeof *cfg);
    wt_unet_config *u = &cfg->unet;
    wt_vae_config *v = &cfg->vae;
    wt_text_config *t = &cfg->text;
    if (name == NULL) name = "(null)";
    const int tiny_sd2 = strcmp(name, "tiny-sd2") == 0;
    const int tiny = tiny_sd2 || strcmp(name, "tiny") == 0;
    const int sd2 = tiny_sd2 || strcmp(name, "sd21") == 0;
    if (!tiny && !sd2 && strcmp(name, "sd15") != 0)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "wt_sd_config_preset: unknown architecture \"%s\" (known: sd15, sd21, "
                           "tiny, tiny-sd2)",
                           name);
    cfg->family = sd2 ? WT_FAMILY_SD2 : WT_FAMILY_SD1;
    snprintf(cfg->prediction_type, sizeof cfg->prediction_type, "%s",
             sd2 ? "v_prediction" : "epsilon");
    u->in_channels = u->out_channels = 4;
    u->norm_groups = v->norm_groups = 32;
    v->in_channels = v->out_channels = 3;
    v->latent_channels = 4;
    t->vocab = 49408;
    t->max_positions = 77;
    if (tiny) {
        u->n_levels = 2;
        u->block_out[0] = 32, u->block_out[1] = 64;
        u->attn[0] = 1;
        u->heads[0] = u->heads[1] = 2;
        u->layers_per_block = 1;
        u->context_dim = 32;
        v->n_levels = 2;
        v->block_out[0] = 32, v->block_out[1] = 64;
        v->layers_per_block = 1;
        t->kind = WT_TEXT_CLIP;
        t->hidden = 32, t->layers = t->file_layers = 2, t->heads = 2, t->intermediate = 64;
        t->quick_gelu = 1;
        if (tiny_sd2) {
            /* the SD 2.x family at tiny sizes: linear proj_in/out, cross dim = text hidden,
             * OpenCLIP text (GELU, one more resblock in ldm files than the pipeline runs, a
             * text_projection of hidden x hidden). The heads stay 2 (not the width / 64 rule,
             * which gives 1 here) so that the head split is exercised; ldm files carry them in
             * the wt.*_heads metadata, diffusers folders in config.json. */
            u->linear_proj = 1;
            u->context_dim = t->hidden;
            t->kind = WT_TEXT_OPENCLIP;
            t->file_layers = t->layers + 1;
            t->proj_dim = t->hidden;
            t->quick_gelu = 0;
        }
    } else {
        static const int unet_w[4] = {320, 640, 1280, 1280}, vae_w[4] = {128, 256, 512, 512};
        u->n_levels = v->n_levels = 4;
        for (int i = 0; i < 4; i++) {
            u->block_out[i] = unet_w[i];
            u->attn[i] = i < 3;
            v->block_out[i] = vae_w[i];
        }
        u->layers_per_block = v->layers_per_block = 2;
        u->context_dim = sd2 ? 1024 : 768;
        u->linear_proj = sd2;
        wt_unet_heads_rule(u, cfg->family);
        if (sd2) {
            t->kind = WT_TEXT_OPENCLIP;
            t->hidden = 1024, t->layers = 23, t->file_layers = 24, t->heads = 16;
            t->intermediate = 4096, t->proj_dim = 1024;
        } else {
            t->kind = WT_TEXT_CLIP;
            t->hidden = 768, t->layers = t->file_layers = 12, t->heads = 12;
            t->intermediate = 3072, t->quick_gelu = 1;
        }
    }
    u->time_embed_dim = 4 * u->block_out[0];
    return ENG_OK;
}

/* ---- the builder ------------------------------------------------------------------------------ */
typedef struct pb {
    wt_plan *p;
    wt_format fmt;
    int rc;
    eng_err *err;
} pb;

static char *dup_str(const char *s) {
    const size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL) memcpy(d, s, n);
    return d;
}

/* Adds one tensor. `dname`: diffusers name without the component; `lname`: full ldm name (NULL:
 * the tensor has no ldm counterpart). `name_null`: a file-only tensor (no canonical name). */
static wt_plan_entry *pb_add(pb *b,
                             wt_component c,
                             const char *dname,
                             const char *lname,
                             wt_init init,
                             int ndim,
                             int64_t d0,
                             int64_t d1,
                             int64_t d2,
                             int64_t d3) {
    if (b->rc != ENG_OK) return NULL;
    wt_plan *p = b->p;
    if (p->n == p->cap) {
        const int64_t cap = p->cap ? p->cap * 2 : 1024;
        wt_plan_entry *e = realloc(p->e, (size_t)cap * sizeof *e);
        if (e == NULL) {
            b->rc = eng_err_set(b->err, ENG_E_OOM, "wt_plan_create: out of memory");
            return NULL;
        }
        p->e = e, p->cap = cap;
    }
    wt_plan_entry *e = &p->e[p->n];
    memset(e, 0, sizeof *e);
    e->component = c;
    e->init = init;
    e->ndim = e->file_ndim = ndim;
    const int64_t d[4] = {d0, d1, d2, d3};
    for (int i = 0; i < 4; i++)
        e->shape[i] = e->file_shape[i] = i < ndim ? d[i] : 1;
    char canon[WT_MAX_NAME];
    snprintf(canon, sizeof canon, "%s.%s", wt_component_name(c), dname);
    char *name = dname != NULL ? dup_str(canon) : NULL;
    char *fname = dup_str(b->fmt == WT_FORMAT_LDM ? lname : dname);
    if ((dname != NULL && name == NULL) || fname == NULL) {
        free(name), free(fname);
        b->rc = eng_err_set(b->err, ENG_E_OOM, "wt_plan_create: out of memory");
        return NULL;
    }
    e->name = name, e->file_name = fname;
    p->n++;
    return e;
}

/* A file-only tensor of ldm files (nothing in diffusers). */
static wt_plan_entry *
pb_extra(pb *b, wt_component c, const char *lname, wt_init init, int ndim, int64_t d0, int64_t d1) {
    if (b->fmt != WT_FORMAT_LDM || b->rc != ENG_OK) return NULL;
    wt_plan_entry *e = pb_add(b, c, "x", lname, init, ndim, d0, d1, 1, 1);
    if (e != NULL) {
        free((char *)e->name);
        e->name = NULL;
    }
    return e;
}

/* ---- tables ------------------------------------------------------------------------------------ */
typedef enum shape_kind {
    SH_IN,       /* (in) */
    SH_OUT,      /* (out) */
    SH_CONV_IN,  /* (out, in, 3, 3) */
    SH_CONV_OUT, /* (out, out, 3, 3) */
    SH_TEMB,     /* (out, temb) */
    SH_SKIP,     /* (out, in, 1, 1) */
    SH_C,        /* (C) */
    SH_CC,       /* (C, C) */
    SH_PROJ,     /* (C, C) linear or (C, C, 1, 1) conv */
    SH_CTX,      /* (C, ctx) */
    SH_FF1W,     /* (8C, C): GEGLU, two halves of 4C */
    SH_FF1B,     /* (8C) */
    SH_FF2W,     /* (C, 4C) */
    SH_CC_CONV1, /* (C, C), stored (C, C, 1, 1) in ldm (VAE attention) */
    SH_HH,       /* text: (H, H) */
    SH_H,        /* (H) */
    SH_IH,       /* (I, H) */
    SH_I,        /* (I) */
    SH_HI,       /* (H, I) */
} shape_kind;

enum { ROW_SHORTCUT_ONLY = 1 };

/* ResnetBlock2D (diffusers) <- ResBlock (ldm UNet) / ResnetBlock (ldm VAE). */
static const struct resnet_row {
    const char *d, *unet, *vae;
    shape_kind sh;
    wt_init init;
    int flags;
} resnet_rows[] = {
    {"norm1.weight", "in_layers.0.weight", "norm1.weight", SH_IN, WT_INIT_ONE, 0},
    {"norm1.bias", "in_layers.0.bias", "norm1.bias", SH_IN, WT_INIT_ZERO, 0},
    {"conv1.weight", "in_layers.2.weight", "conv1.weight", SH_CONV_IN, WT_INIT_NORMAL, 0},
    {"conv1.bias", "in_layers.2.bias", "conv1.bias", SH_OUT, WT_INIT_ZERO, 0},
    {"time_emb_proj.weight", "emb_layers.1.weight", NULL, SH_TEMB, WT_INIT_NORMAL, 0},
    {"time_emb_proj.bias", "emb_layers.1.bias", NULL, SH_OUT, WT_INIT_ZERO, 0},
    {"norm2.weight", "out_layers.0.weight", "norm2.weight", SH_OUT, WT_INIT_ONE, 0},
    {"norm2.bias", "out_layers.0.bias", "norm2.bias", SH_OUT, WT_INIT_ZERO, 0},
    {"conv2.weight", "out_layers.3.weight", "conv2.weight", SH_CONV_OUT, WT_INIT_NORMAL, 0},
    {"conv2.bias", "out_layers.3.bias", "conv2.bias", SH_OUT, WT_INIT_ZERO, 0},
    {"conv_shortcut.weight", "skip_connection.weight", "nin_shortcut.weight", SH_SKIP,
     WT_INIT_NORMAL, ROW_SHORTCUT_ONLY},
    {"conv_shortcut.bias", "skip_connection.bias", "nin_shortcut.bias", SH_OUT, WT_INIT_ZERO,
     ROW_SHORTCUT_ONLY},
};

/* Transformer2DModel (diffusers) <- SpatialTransformer (ldm): the same names. */
static const struct xf_row {
    const char *s;
    shape_kind sh;
    wt_init init;
} xf_rows[] = {
    {"norm.weight", SH_C, WT_INIT_ONE},
    {"norm.bias", SH_C, WT_INIT_ZERO},
    {"proj_in.weight", SH_PROJ, WT_INIT_NORMAL},
    {"proj_in.bias", SH_C, WT_INIT_ZERO},
    {"transformer_blocks.0.attn1.to_q.weight", SH_CC, WT_INIT_NORMAL},
    {"transformer_blocks.0.attn1.to_k.weight", SH_CC, WT_INIT_NORMAL},
    {"transformer_blocks.0.attn1.to_v.weight", SH_CC, WT_INIT_NORMAL},
    {"transformer_blocks.0.attn1.to_out.0.weight", SH_CC, WT_INIT_NORMAL},
    {"transformer_blocks.0.attn1.to_out.0.bias", SH_C, WT_INIT_ZERO},
    {"transformer_blocks.0.ff.net.0.proj.weight", SH_FF1W, WT_INIT_NORMAL},
    {"transformer_blocks.0.ff.net.0.proj.bias", SH_FF1B, WT_INIT_ZERO},
    {"transformer_blocks.0.ff.net.2.weight", SH_FF2W, WT_INIT_NORMAL},
    {"transformer_blocks.0.ff.net.2.bias", SH_C, WT_INIT_ZERO},
    {"transformer_blocks.0.attn2.to_q.weight", SH_CC, WT_INIT_NORMAL},
    {"transformer_blocks.0.attn2.to_k.weight", SH_CTX, WT_INIT_NORMAL},
    {"transformer_blocks.0.attn2.to_v.weight", SH_CTX, WT_INIT_NORMAL},
    {"transformer_blocks.0.attn2.to_out.0.weight", SH_CC, WT_INIT_NORMAL},
    {"transformer_blocks.0.attn2.to_out.0.bias", SH_C, WT_INIT_ZERO},
    {"transformer_blocks.0.norm1.weight", SH_C, WT_INIT_ONE},
    {"transformer_blocks.0.norm1.bias", SH_C, WT_INIT_ZERO},
    {"transformer_blocks.0.norm2.weight", SH_C, WT_INIT_ONE},
    {"transformer_blocks.0.norm2.bias", SH_C, WT_INIT_ZERO},
    {"transformer_blocks.0.norm3.weight", SH_C, WT_INIT_ONE},
    {"transformer_blocks.0.norm3.bias", SH_C, WT_INIT_ZERO},
    {"proj_out.weight", SH_PROJ, WT_INIT_NORMAL},
    {"proj_out.bias", SH_C, WT_INIT_ZERO},
};

/* VAE mid-block Attention (diffusers) <- AttnBlock (ldm, 1x1 convs). */
static const struct vattn_row {
    const char *d, *l;
    shape_kind sh;
    wt_init init;
} vattn_rows[] = {
    {"group_norm.weight", "norm.weight", SH_C, WT_INIT_ONE},
    {"group_norm.bias", "norm.bias", SH_C, WT_INIT_ZERO},
    {"to_q.weight", "q.weight", SH_CC_CONV1, WT_INIT_NORMAL},
    {"to_q.bias", "q.bias", SH_C, WT_INIT_ZERO},
    {"to_k.weight", "k.weight", SH_CC_CONV1, WT_INIT_NORMAL},
    {"to_k.bias", "k.bias", SH_C, WT_INIT_ZERO},
    {"to_v.weight", "v.weight", SH_CC_CONV1, WT_INIT_NORMAL},
    {"to_v.bias", "v.bias", SH_C, WT_INIT_ZERO},
    {"to_out.0.weight", "proj_out.weight", SH_CC_CONV1, WT_INIT_NORMAL},
    {"to_out.0.bias", "proj_out.bias", SH_C, WT_INIT_ZERO},
};

/* CLIPEncoderLayer (transformers; SD1 ldm uses the same names) <- OpenCLIP ResidualAttentionBlock
 * (SD2 ldm). `slice` >= 0: rows [slice * H, (slice + 1) * H) of the fused in_proj tensor. */
static const struct text_row {
    const char *d, *open;
    int slice;
    shape_kind sh;
    wt_init init;
} text_rows[] = {
    {"self_attn.k_proj.weight", "attn.in_proj_weight", 1, SH_HH, WT_INIT_NORMAL},
    {"self_attn.k_proj.bias", "attn.in_proj_bias", 1, SH_H, WT_INIT_ZERO},
    {"self_attn.v_proj.weight", "attn.in_proj_weight", 2, SH_HH, WT_INIT_NORMAL},
    {"self_attn.v_proj.bias", "attn.in_proj_bias", 2, SH_H, WT_INIT_ZERO},
    {"self_attn.q_proj.weight", "attn.in_proj_weight", 0, SH_HH, WT_INIT_NORMAL},
    {"self_attn.q_proj.bias", "attn.in_proj_bias", 0, SH_H, WT_INIT_ZERO},
    {"self_attn.out_proj.weight", "attn.out_proj.weight", -1, SH_HH, WT_INIT_NORMAL},
    {"self_attn.out_proj.bias", "attn.out_proj.bias", -1, SH_H, WT_INIT_ZERO},
    {"layer_norm1.weight", "ln_1.weight", -1, SH_H, WT_INIT_ONE},
    {"layer_norm1.bias", "ln_1.bias", -1, SH_H, WT_INIT_ZERO},
    {"mlp.fc1.weight", "mlp.c_fc.weight", -1, SH_IH, WT_INIT_NORMAL},
    {"mlp.fc1.bias", "mlp.c_fc.bias", -1, SH_I, WT_INIT_ZERO},
    {"mlp.fc2.weight", "mlp.c_proj.weight", -1, SH_HI, WT_INIT_NORMAL},
    {"mlp.fc2.bias", "mlp.c_proj.bias", -1, SH_H, WT_INIT_ZERO},
    {"layer_norm2.weight", "ln_2.weight", -1, SH_H, WT_INIT_ONE},
    {"layer_norm2.bias", "ln_2.bias", -1, SH_H, WT_INIT_ZERO},
};

typedef struct dims {
    int64_t in, out, temb, c, ctx, linear, h, i;
} dims;

static wt_plan_entry *add_shaped(pb *b,
                                 wt_component comp,
                                 const char *dname,
                                 const char *lname,
                                 wt_init init,
                                 shape_kind sh,
                                 const dims *d) {
    switch (sh) {
    case SH_IN: return pb_add(b, comp, dname, lname, init, 1, d->in, 1, 1, 1);
    case SH_OUT: return pb_add(b, comp, dname, lname, init, 1, d->out, 1, 1, 1);
    case SH_CONV_IN: return pb_add(b, comp, dname, lname, init, 4, d->out, d->in, 3, 3);
    case SH_CONV_OUT: return pb_add(b, comp, dname, lname, init, 4, d->out, d->out, 3, 3);
    case SH_TEMB: return pb_add(b, comp, dname, lname, init, 2, d->out, d->temb, 1, 1);
    case SH_SKIP: return pb_add(b, comp, dname, lname, init, 4, d->out, d->in, 1, 1);
    case SH_C: return pb_add(b, comp, dname, lname, init, 1, d->c, 1, 1, 1);
    case SH_CC: return pb_add(b, comp, dname, lname, init, 2, d->c, d->c, 1, 1);
    case SH_PROJ: return pb_add(b, comp, dname, lname, init, d->linear ? 2 : 4, d->c, d->c, 1, 1);
    case SH_CTX: return pb_add(b, comp, dname, lname, init, 2, d->c, d->ctx, 1, 1);
    case SH_FF1W: return pb_add(b, comp, dname, lname, init, 2, 8 * d->c, d->c, 1, 1);
    case SH_FF1B: return pb_add(b, comp, dname, lname, init, 1, 8 * d->c, 1, 1, 1);
    case SH_FF2W: return pb_add(b, comp, dname, lname, init, 2, d->c, 4 * d->c, 1, 1);
    case SH_CC_CONV1: {
        wt_plan_entry *e = pb_add(b, comp, dname, lname, init, 2, d->c, d->c, 1, 1);
        if (e != NULL && b->fmt == WT_FORMAT_LDM) e->file_ndim = 4;
        return e;
    }
    case SH_HH: return pb_add(b, comp, dname, lname, init, 2, d->h, d->h, 1, 1);
    case SH_H: return pb_add(b, comp, dname, lname, init, 1, d->h, 1, 1, 1);
    case SH_IH: return pb_add(b, comp, dname, lname, init, 2, d->i, d->h, 1, 1);
    case SH_I: return pb_add(b, comp, dname, lname, init, 1, d->i, 1, 1, 1);
    case SH_HI: return pb_add(b, comp, dname, lname, init, 2, d->h, d->i, 1, 1);
    }
    ENG_ASSERT(0 && "unknown shape kind");
    return NULL;
}

static void add_resnet(pb *b,
                       wt_component comp,
                       const char *dpre,
                       const char *lpre,
                       int64_t in,
                       int64_t out,
                       int64_t temb) {
    const dims d = {.in = in, .out = out, .temb = temb};
    for (size_t r = 0; r < sizeof resnet_rows / sizeof resnet_rows[0]; r++) {
        const struct resnet_row *row = &resnet_rows[r];
        const char *lsuf = comp == WT_UNET ? row->unet : row->vae;
        if (lsuf == NULL) continue;
        if ((row->flags & ROW_SHORTCUT_ONLY) && in == out) continue;
        char dn[WT_MAX_NAME], ln[WT_MAX_NAME];
        snprintf(dn, sizeof dn, "%s%s", dpre, row->d);
        snprintf(ln, sizeof ln, "%s%s", lpre, lsuf);
        add_shaped(b, comp, dn, ln, row->init, row->sh, &d);
    }
}

static void add_xf(pb *b, const char *dpre, const char *lpre, int64_t c, const wt_unet_config *u) {
    const dims d = {.c = c, .ctx = u->context_dim, .linear = u->linear_proj};
    for (size_t r = 0; r < sizeof xf_rows / sizeof xf_rows[0]; r++) {
        char dn[WT_MAX_NAME], ln[WT_MAX_NAME];
        snprintf(dn, sizeof dn, "%s%s", dpre, xf_rows[r].s);
        snprintf(ln, sizeof ln, "%s%s", lpre, xf_rows[r].s);
        add_shaped(b, WT_UNET, dn, ln, xf_rows[r].init, xf_rows[r].sh, &d);
    }
}

/* conv (out, in, k, k) + bias (out) under two names. */
static void add_conv(pb *b,
                     wt_component comp,
                     const char *dname,
                     const char *lname,
                     int64_t out,
                     int64_t in,
                     int64_t k) {
    char dn[WT_MAX_NAME], ln[WT_MAX_NAME];
    snprintf(dn, sizeof dn, "%s.weight", dname);
    snprintf(ln, sizeof ln, "%s.weight", lname);
    pb_add(b, comp, dn, ln, WT_INIT_NORMAL, k > 0 ? 4 : 2, out, in, k > 0 ? k : 1, k > 0 ? k : 1);
    snprintf(dn, sizeof dn, "%s.bias", dname);
    snprintf(ln, sizeof ln, "%s.bias", lname);
    pb_add(b, comp, dn, ln, WT_INIT_ZERO, 1, out, 1, 1, 1);
}
#define add_linear(b, comp, dname, lname, out, in) add_conv(b, comp, dname, lname, out, in, 0)

static void add_norm(pb *b, wt_component comp, const char *dname, const char *lname, int64_t c) {
    char dn[WT_MAX_NAME], ln[WT_MAX_NAME];
    snprintf(dn, sizeof dn, "%s.weight", dname);
    snprintf(ln, sizeof ln, "%s.weight", lname);
    pb_add(b, comp, dn, ln, WT_INIT_ONE, 1, c, 1, 1, 1);
    snprintf(dn, sizeof dn, "%s.bias", dname);
    snprintf(ln, sizeof ln, "%s.bias", lname);
    pb_add(b, comp, dn, ln, WT_INIT_ZERO, 1, c, 1, 1, 1);
}

static void plan_unet(pb *b, const wt_unet_config *u) {
    const char *L = "model.diffusion_model.";
    const int n = u->n_levels, lpb = u->layers_per_block;
    const int64_t c0 = u->block_out[0], temb = u->time_embed_dim;
    char dn[WT_MAX_NAME], ln[WT_MAX_NAME];
    snprintf(ln, sizeof ln, "%sinput_blocks.0.0", L);
    add_conv(b, WT_UNET, "conv_in", ln, c0, u->in_channels, 3);
    snprintf(ln, sizeof ln, "%stime_embed.0", L);
    add_linear(b, WT_UNET, "time_embedding.linear_1", ln, temb, c0);
    snprintf(ln, sizeof ln, "%stime_embed.2", L);
    add_linear(b, WT_UNET, "time_embedding.linear_2", ln, temb, temb);
    for (int i = 0; i < n; i++) {
        const int64_t out = u->block_out[i];
        int64_t in = i == 0 ? c0 : u->block_out[i - 1];
        for (int j = 0; j < lpb; j++) {
            const int k = 1 + i * (lpb + 1) + j;
            snprintf(dn, sizeof dn, "down_blocks.%d.resnets.%d.", i, j);
            snprintf(ln, sizeof ln, "%sinput_blocks.%d.0.", L, k);
            add_resnet(b, WT_UNET, dn, ln, in, out, temb);
            if (u->attn[i]) {
                snprintf(dn, sizeof dn, "down_blocks.%d.attentions.%d.", i, j);
                snprintf(ln, sizeof ln, "%sinput_blocks.%d.1.", L, k);
                add_xf(b, dn, ln, out, u);
            }
            in = out;
        }
        if (i < n - 1) {
            snprintf(dn, sizeof dn, "down_blocks.%d.downsamplers.0.conv", i);
            snprintf(ln, sizeof ln, "%sinput_blocks.%d.0.op", L, (i + 1) * (lpb + 1));
            add_conv(b, WT_UNET, dn, ln, out, out, 3);
        }
    }
    const int64_t cl = u->block_out[n - 1];
    for (int i = 0; i < n; i++) {
        const int64_t out = u->block_out[n - 1 - i];
        const int64_t prev = u->block_out[n - 1 - (i > 0 ? i - 1 : 0)];
        const int64_t skip_in = u->block_out[n - 1 - (i + 1 < n ? i + 1 : n - 1)];
        const int attn = u->attn[n - 1 - i];
        for (int j = 0; j <= lpb; j++) {
            const int k = i * (lpb + 1) + j;
            const int64_t res_in = (j == 0 ? prev : out) + (j == lpb ? skip_in : out);
            snprintf(dn, sizeof dn, "up_blocks.%d.resnets.%d.", i, j);
            snprintf(ln, sizeof ln, "%soutput_blocks.%d.0.", L, k);
            add_resnet(b, WT_UNET, dn, ln, res_in, out, temb);
            if (attn) {
                snprintf(dn, sizeof dn, "up_blocks.%d.attentions.%d.", i, j);
                snprintf(ln, sizeof ln, "%soutput_blocks.%d.1.", L, k);
                add_xf(b, dn, ln, out, u);
            }
            if (j == lpb && i < n - 1) {
                snprintf(dn, sizeof dn, "up_blocks.%d.upsamplers.0.conv", i);
                snprintf(ln, sizeof ln, "%soutput_blocks.%d.%d.conv", L, k, attn ? 2 : 1);
                add_conv(b, WT_UNET, dn, ln, out, out, 3);
            }
        }
    }
    snprintf(ln, sizeof ln, "%smiddle_block.0.", L);
    add_resnet(b, WT_UNET, "mid_block.resnets.0.", ln, cl, cl, temb);
    snprintf(ln, sizeof ln, "%smiddle_block.1.", L);
    add_xf(b, "mid_block.attentions.0.", ln, cl, u);
    snprintf(ln, sizeof ln, "%smiddle_block.2.", L);
    add_resnet(b, WT_UNET, "mid_block.resnets.1.", ln, cl, cl, temb);
    snprintf(ln, sizeof ln, "%sout.0", L);
    add_norm(b, WT_UNET, "conv_norm_out", ln, c0);
    snprintf(ln, sizeof ln, "%sout.2", L);
    add_conv(b, WT_UNET, "conv_out", ln, u->out_channels, c0, 3);
}

static void plan_vae_mid(pb *b, const char *side, int64_t c) {
    const char *L = "first_stage_model.";
    char dn[WT_MAX_NAME], ln[WT_MAX_NAME];
    for (int r = 0; r < 2; r++) {
        snprintf(dn, sizeof dn, "%s.mid_block.resnets.%d.", side, r);
        snprintf(ln, sizeof ln, "%s%s.mid.block_%d.", L, side, r + 1);
        add_resnet(b, WT_VAE, dn, ln, c, c, 0);
        if (r == 1) break;
        const dims d = {.c = c};
        for (size_t a = 0; a < sizeof vattn_rows / sizeof vattn_rows[0]; a++) {
            snprintf(dn, sizeof dn, "%s.mid_block.attentions.0.%s", side, vattn_rows[a].d);
            snprintf(ln, sizeof ln, "%s%s.mid.attn_1.%s", L, side, vattn_rows[a].l);
            add_shaped(b, WT_VAE, dn, ln, vattn_rows[a].init, vattn_rows[a].sh, &d);
        }
    }
}

static void plan_vae(pb *b, const wt_vae_config *v) {
    const char *L = "first_stage_model.";
    const int n = v->n_levels, lpb = v->layers_per_block;
    const int64_t c0 = v->block_out[0], cl = v->block_out[n - 1], lat = v->latent_channels;
    char dn[WT_MAX_NAME], ln[WT_MAX_NAME];
    snprintf(ln, sizeof ln, "%sencoder.conv_in", L);
    add_conv(b, WT_VAE, "encoder.conv_in", ln, c0, v->in_channels, 3);
    for (int i = 0; i < n; i++) {
        int64_t in = i == 0 ? c0 : v->block_out[i - 1];
        for (int j = 0; j < lpb; j++) {
            snprintf(dn, sizeof dn, "encoder.down_blocks.%d.resnets.%d.", i, j);
            snprintf(ln, sizeof ln, "%sencoder.down.%d.block.%d.", L, i, j);
            add_resnet(b, WT_VAE, dn, ln, in, v->block_out[i], 0);
            in = v->block_out[i];
        }
        if (i < n - 1) {
            snprintf(dn, sizeof dn, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            snprintf(ln, sizeof ln, "%sencoder.down.%d.downsample.conv", L, i);
            add_conv(b, WT_VAE, dn, ln, in, in, 3);
        }
    }
    plan_vae_mid(b, "encoder", cl);
    snprintf(ln, sizeof ln, "%sencoder.norm_out", L);
    add_norm(b, WT_VAE, "encoder.conv_norm_out", ln, cl);
    snprintf(ln, sizeof ln, "%sencoder.conv_out", L);
    add_conv(b, WT_VAE, "encoder.conv_out", ln, 2 * lat, cl, 3);

    snprintf(ln, sizeof ln, "%sdecoder.conv_in", L);
    add_conv(b, WT_VAE, "decoder.conv_in", ln, cl, lat, 3);
    plan_vae_mid(b, "decoder", cl);
    for (int i = 0; i < n; i++) {
        const int64_t out = v->block_out[n - 1 - i];
        int64_t in = v->block_out[n - 1 - (i > 0 ? i - 1 : 0)];
        for (int j = 0; j <= lpb; j++) {
            snprintf(dn, sizeof dn, "decoder.up_blocks.%d.resnets.%d.", i, j);
            snprintf(ln, sizeof ln, "%sdecoder.up.%d.block.%d.", L, n - 1 - i, j);
            add_resnet(b, WT_VAE, dn, ln, in, out, 0);
            in = out;
        }
        if (i < n - 1) {
            snprintf(dn, sizeof dn, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            snprintf(ln, sizeof ln, "%sdecoder.up.%d.upsample.conv", L, n - 1 - i);
            add_conv(b, WT_VAE, dn, ln, out, out, 3);
        }
    }
    snprintf(ln, sizeof ln, "%sdecoder.norm_out", L);
    add_norm(b, WT_VAE, "decoder.conv_norm_out", ln, c0);
    snprintf(ln, sizeof ln, "%sdecoder.conv_out", L);
    add_conv(b, WT_VAE, "decoder.conv_out", ln, v->out_channels, c0, 3);
    snprintf(ln, sizeof ln, "%squant_conv", L);
    add_conv(b, WT_VAE, "quant_conv", ln, 2 * lat, 2 * lat, 1);
    snprintf(ln, sizeof ln, "%spost_quant_conv", L);
    add_conv(b, WT_VAE, "post_quant_conv", ln, lat, lat, 1);
}

static void plan_text(pb *b, const wt_text_config *t) {
    const int open = t->kind == WT_TEXT_OPENCLIP;
    const char *L = open ? "cond_stage_model.model." : "cond_stage_model.transformer.";
    const dims d = {.h = t->hidden, .i = t->intermediate};
    char dn[WT_MAX_NAME], ln[2 * WT_MAX_NAME];
    snprintf(ln, sizeof ln, "%s%s", L,
             open ? "token_embedding.weight" : "text_model.embeddings.token_embedding.weight");
    pb_add(b, WT_TEXT_ENCODER, "text_model.embeddings.token_embedding.weight", ln, WT_INIT_NORMAL,
           2, t->vocab, t->hidden, 1, 1);
    snprintf(ln, sizeof ln, "%s%s", L,
             open ? "positional_embedding" : "text_model.embeddings.position_embedding.weight");
    pb_add(b, WT_TEXT_ENCODER, "text_model.embeddings.position_embedding.weight", ln,
           WT_INIT_NORMAL, 2, t->max_positions, t->hidden, 1, 1);
    if (!open) {
        snprintf(ln, sizeof ln, "%stext_model.embeddings.position_ids", L);
        wt_plan_entry *e = pb_extra(b, WT_TEXT_ENCODER, ln, WT_INIT_ARANGE, 2, 1, t->max_positions);
        if (e != NULL) e->file_i64 = 1;
    }
    const int n_layers = b->fmt == WT_FORMAT_LDM ? t->file_layers : t->layers;
    for (int l = 0; l < n_layers; l++) {
        for (size_t r = 0; r < sizeof text_rows / sizeof text_rows[0]; r++) {
            const struct text_row *row = &text_rows[r];
            snprintf(dn, sizeof dn, "text_model.encoder.layers.%d.%s", l, row->d);
            if (open)
                snprintf(ln, sizeof ln, "%stransformer.resblocks.%d.%s", L, l, row->open);
            else
                snprintf(ln, sizeof ln, "%s%s", L, dn);
            if (l >= t->layers) {
                /* the OpenCLIP layer the pipeline does not use: in ldm files only, unsplit */
                if (row->slice > 0) continue;
                const int64_t rows = row->slice == 0 ? 3 : 1;
                const int is_w = row->sh == SH_HH || row->sh == SH_IH || row->sh == SH_HI;
                const int64_t d0 =
                    row->sh == SH_IH || row->sh == SH_I ? t->intermediate : t->hidden;
                const int64_t d1 = row->sh == SH_HI ? t->intermediate : t->hidden;
                pb_extra(b, WT_TEXT_ENCODER, ln, row->init, is_w ? 2 : 1, rows * d0, d1);
                continue;
            }
            wt_plan_entry *e = add_shaped(b, WT_TEXT_ENCODER, dn, ln, row->init, row->sh, &d);
            if (e != NULL && open && row->slice >= 0 && b->fmt == WT_FORMAT_LDM) {
                e->slice_index = row->slice;
                e->slice_rows = t->hidden;
                e->file_shape[0] = 3 * t->hidden;
            }
        }
    }
    snprintf(ln, sizeof ln, "%s%s", L, open ? "ln_final" : "text_model.final_layer_norm");
    add_norm(b, WT_TEXT_ENCODER, "text_model.final_layer_norm", ln, t->hidden);
    if (open) {
        snprintf(ln, sizeof ln, "%stext_projection", L);
        pb_extra(b, WT_TEXT_ENCODER, ln, WT_INIT_NORMAL, 2, t->hidden, t->proj_dim);
        snprintf(ln, sizeof ln, "%slogit_scale", L);
        pb_extra(b, WT_TEXT_ENCODER, ln, WT_INIT_LOGIT, 0, 1, 1);
    }
}

static int check_config(const wt_sd_config *c, eng_err *err) {
    const wt_unet_config *u = &c->unet;
    const wt_vae_config *v = &c->vae;
    const wt_text_config *t = &c->text;
    int ok = u->n_levels >= 1 && u->n_levels <= WT_MAX_LEVELS && u->layers_per_block >= 1 &&
             u->in_channels > 0 && u->out_channels > 0 && u->context_dim > 0 &&
             u->time_embed_dim > 0 && v->n_levels >= 1 && v->n_levels <= WT_MAX_LEVELS &&
             v->layers_per_block >= 1 && v->in_channels > 0 && v->out_channels > 0 &&
             v->latent_channels > 0 && t->hidden > 0 && t->layers >= 1 &&
             t->file_layers >= t->layers && t->intermediate > 0 && t->vocab > 0 &&
             t->max_positions > 0 && (unsigned)t->kind < WT_TEXT_KIND_COUNT;
    for (int i = 0; ok && i < u->n_levels; i++)
        ok = u->block_out[i] > 0;
    for (int i = 0; ok && i < v->n_levels; i++)
        ok = v->block_out[i] > 0;
    if (!ok)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "wt_plan_create: the configuration has a size out of range");
    return ENG_OK;
}

static int cmp_names(const void *a, const void *b, const wt_plan *p) {
    return strcmp(p->e[*(const int64_t *)a].name, p->e[*(const int64_t *)b].name);
}

/* Merge sort on entry indices by name (qsort has no context argument). */
static void sort_indices(int64_t *idx, int64_t *tmp, int64_t n, const wt_plan *p) {
    if (n < 2) return;
    const int64_t h = n / 2;
    sort_indices(idx, tmp, h, p);
    sort_indices(idx + h, tmp, n - h, p);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp_names(&idx[j], &idx[i], p) < 0 ? idx[j++] : idx[i++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, (size_t)n * sizeof *idx);
}

int wt_plan_create(wt_plan **out, const wt_sd_config *cfg, wt_format format, eng_err *err) {
    int rc = ENG_OK;
    int64_t *tmp = NULL;
    wt_plan *p = NULL;
    ENG_ASSERT(out != NULL && cfg != NULL);
    *out = NULL;
    if ((unsigned)format >= WT_FORMAT_COUNT) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "wt_plan_create: unknown format %d", format);
        goto done;
    }
    if ((rc = check_config(cfg, err)) != ENG_OK) goto done;
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "wt_plan_create: out of memory");
        goto done;
    }
    pb b = {p, format, ENG_OK, err};
    plan_unet(&b, &cfg->unet);
    plan_vae(&b, &cfg->vae);
    plan_text(&b, &cfg->text);
    if ((rc = b.rc) != ENG_OK) goto done;
    p->sorted = malloc((size_t)(p->n + 1) * sizeof *p->sorted);
    tmp = malloc((size_t)(p->n + 1) * sizeof *tmp);
    if (p->sorted == NULL || tmp == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "wt_plan_create: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < p->n; i++)
        if (p->e[i].name != NULL) p->sorted[p->n_sorted++] = i;
    sort_indices(p->sorted, tmp, p->n_sorted, p);
    *out = p;
    p = NULL;
done:
    free(tmp);
    wt_plan_destroy(p);
    return rc;
}

void wt_plan_destroy(wt_plan *p) {
    if (p == NULL) return;
    for (int64_t i = 0; i < p->n; i++) {
        free((char *)p->e[i].name);
        free((char *)p->e[i].file_name);
    }
    free(p->e);
    free(p->sorted);
    free(p);
}

int64_t wt_plan_count(const wt_plan *p) {
    return p->n;
}

const wt_plan_entry *wt_plan_at(const wt_plan *p, int64_t i) {
    ENG_ASSERT(i >= 0 && i < p->n);
    return &p->e[i];
}

const wt_plan_entry *wt_plan_find(const wt_plan *p, const char *name) {
    int64_t lo = 0, hi = p->n_sorted;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        const int c = strcmp(p->e[p->sorted[mid]].name, name);
        if (c == 0) return &p->e[p->sorted[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int64_t wt_plan_params(const wt_plan *p, wt_component c) {
    int64_t total = 0;
    for (int64_t i = 0; i < p->n; i++) {
        const wt_plan_entry *e = &p->e[i];
        if (e->name == NULL || e->component != c) continue;
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++)
            n *= e->shape[d];
        total += n;
    }
    return total;
}
