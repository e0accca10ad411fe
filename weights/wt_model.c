/* wt_model.c: opening checkpoints (ldm single files, diffusers folders; pickle refused), reading
 * the architecture off the tensors, checking every tensor against the plan, and converting
 * tensors to the compute dtype (optionally OIHW -> OHWI) at load. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "wt_impl.h"

#define WT_MAX_JSON_BYTES  (1u << 20) /* config files are a few KB */
#define WT_MAX_TEXT_LAYERS 256
#define WT_MAX_COUNT       (1 << 24) /* a head count from a config or metadata (real: <= 64) */

struct wt_model {
    wt_format format;
    wt_sd_config cfg;
    eng_safetensors *files[WT_COMPONENT_COUNT]; /* ldm: the same handle three times */
    wt_plan *plan;
    int unet_heads_override, text_heads_override; /* 0: none */
    int unet_heads_listed; /* entries of unet/config.json's per-level list (0: one count, none) */
    int text_quick_gelu_known; /* diffusers config gave hidden_act */
};

/* ---- small helpers ---------------------------------------------------------------------------- */
static int ends_with_ci(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    if (k > n) return 0;
    for (size_t i = 0; i < k; i++)
        if (tolower((unsigned char)s[n - k + i]) != tolower((unsigned char)suffix[i])) return 0;
    return 1;
}

static const eng_safetensors_info *fget(const wt_model *m, wt_component c, const char *fmt, ...)
    ENG_PRINTF(3, 4);
static const eng_safetensors_info *fget(const wt_model *m, wt_component c, const char *fmt, ...) {
    char name[WT_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return m->files[c] != NULL ? eng_safetensors_find(m->files[c], name) : NULL;
}

/* Reads a small JSON file. *out NULL (and ENG_OK) when the file does not exist and !required. */
static int read_json(cJSON **out, const char *path, int required, eng_err *err) {
    int rc = ENG_OK;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (f == NULL) {
        if (required) rc = eng_err_set(err, ENG_E_IO, "wt_model_open: cannot open %s", path);
        goto done;
    }
    buf = malloc(WT_MAX_JSON_BYTES + 1);
    if (buf == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "wt_model_open: out of memory");
        goto done;
    }
    const size_t n = fread(buf, 1, WT_MAX_JSON_BYTES + 1, f);
    if (n > WT_MAX_JSON_BYTES) {
        rc = eng_err_set(err, ENG_E_FORMAT, "wt_model_open: %s is over %u bytes", path,
                         WT_MAX_JSON_BYTES);
        goto done;
    }
    *out = cJSON_ParseWithLength(buf, n);
    if (*out == NULL || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        rc = eng_err_set(err, ENG_E_FORMAT, "wt_model_open: %s is not a JSON object (corrupt?)",
                         path);
        goto done;
    }
done:
    free(buf);
    if (f != NULL) fclose(f);
    return rc;
}

/* A positive integer in [1, WT_MAX_COUNT] (the cast is safe once the range is checked). */
static int count_ok(double v) {
    return v >= 1 && v <= WT_MAX_COUNT && v == (double)(int)v;
}

/* What a JSON value is, for messages: the number itself, or its type. */
static const char *json_what(char *buf, size_t cap, const cJSON *v) {
    if (cJSON_IsNumber(v)) {
        snprintf(buf, cap, "%.17g", v->valuedouble);
        return buf;
    }
    return cJSON_IsString(v)  ? "a string"
           : cJSON_IsBool(v)  ? "a boolean"
           : cJSON_IsArray(v) ? (cJSON_GetArraySize(v) == 0 ? "an empty list" : "a list")
                              : "an object";
}

/* An optional count field: a positive integer or, when `list`, a list of them (one per level).
 * Absent or null: *given = 0 and vals all 0. An int fills every slot of vals (*n_list = 0); a
 * list fills its first WT_MAX_LEVELS slots, the rest 0 (*n_list = its length). Any other value
 * is ENG_E_FORMAT: ignoring or truncating it would build a model the config does not describe. */
static int json_count(const cJSON *o,
                      const char *key,
                      int list,
                      int vals[WT_MAX_LEVELS],
                      int *given,
                      int *n_list,
                      const char *path,
                      eng_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key), *x;
    char buf[32];
    int n = 0;
    *given = *n_list = 0;
    memset(vals, 0, WT_MAX_LEVELS * sizeof *vals);
    if (v == NULL || cJSON_IsNull(v)) return ENG_OK;
    if (cJSON_IsNumber(v) && count_ok(v->valuedouble)) {
        for (int i = 0; i < WT_MAX_LEVELS; i++)
            vals[i] = (int)v->valuedouble;
        *given = 1;
        return ENG_OK;
    }
    if (list && cJSON_IsArray(v)) {
        cJSON_ArrayForEach(x, v) {
            if (!cJSON_IsNumber(x) || !count_ok(x->valuedouble)) {
                memset(vals, 0, WT_MAX_LEVELS * sizeof *vals);
                return eng_err_set(err, ENG_E_FORMAT,
                                   "wt_model_open: %s: \"%s\" entry %d is %s; expected a "
                                   "positive integer",
                                   path, key, n, json_what(buf, sizeof buf, x));
            }
            if (n < WT_MAX_LEVELS) vals[n] = (int)x->valuedouble;
            n++;
        }
        if (n > 0) {
            *given = 1, *n_list = n;
            return ENG_OK;
        }
    }
    return eng_err_set(
        err, ENG_E_FORMAT, "wt_model_open: %s: \"%s\" is %s; expected a positive integer%s", path,
        key, json_what(buf, sizeof buf, v), list ? " or a list of them (one per level)" : "");
}

/* An optional string field: *out NULL when absent or null; ENG_E_FORMAT for another type. */
static int
json_string(const cJSON *o, const char *key, const char **out, const char *path, eng_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char buf[32];
    *out = NULL;
    if (v == NULL || cJSON_IsNull(v)) return ENG_OK;
    if (!cJSON_IsString(v))
        return eng_err_set(err, ENG_E_FORMAT, "wt_model_open: %s: \"%s\" is %s; expected a string",
                           path, key, json_what(buf, sizeof buf, v));
    *out = v->valuestring;
    return ENG_OK;
}

/* An optional count in the ldm metadata (a string of decimal digits): *out 0 when absent. */
static int meta_count(int *out, const char *s, const char *key, const char *path, eng_err *err) {
    const size_t n = s != NULL ? strlen(s) : 0;
    *out = 0;
    if (s == NULL) return ENG_OK;
    if (n == 0 || n > 8 || strspn(s, "0123456789") != n || atoi(s) < 1 || atoi(s) > WT_MAX_COUNT)
        return eng_err_set(err, ENG_E_FORMAT,
                           "wt_model_open: %s: metadata \"%s\" is \"%.32s\"; expected a positive "
                           "integer",
                           path, key, s);
    *out = atoi(s);
    return ENG_OK;
}

/* ---- opening ---------------------------------------------------------------------------------- */
static int open_component(wt_model *m, const char *dir, wt_component c, eng_err *err) {
    static const char *const files[2][2] = {
        {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"},
        {"model.safetensors", "model.fp16.safetensors"}};
    const int text = c == WT_TEXT_ENCODER;
    char path[4096];
    struct stat st;
    for (int v = 0; v < 2; v++) {
        snprintf(path, sizeof path, "%s/%s/%s", dir, wt_component_name(c), files[text][v]);
        if (stat(path, &st) == 0) return eng_safetensors_open(&m->files[c], path, err);
    }
    snprintf(path, sizeof path, "%s/%s", dir, wt_component_name(c));
    if (stat(path, &st) != 0)
        return eng_err_set(err, ENG_E_IO,
                           "wt_model_open: %s: diffusers folder has no %s/ (expected %s/%s)", dir,
                           wt_component_name(c), wt_component_name(c), files[text][0]);
    return eng_err_set(err, ENG_E_IO,
                       "wt_model_open: %s: no %s or %s (pickle .bin files are not "
                       "loaded; convert to .safetensors)",
                       path, files[text][0], files[text][1]);
}

/* Reads model_index.json (it must be a JSON object), opens the three components, and takes the
 * optional configs' heads, text activation and prediction type. A config value of the wrong
 * type, an activation we do not implement or a prediction type that does not fit is an error,
 * never a silent default. vae/config.json is not read: the VAE is all in its tensors. */
static int open_diffusers(wt_model *m, const char *dir, eng_err *err) {
    int rc = ENG_OK, given = 0, n_list = 0, vals[WT_MAX_LEVELS];
    cJSON *idx = NULL, *cfg = NULL;
    const char *s = NULL;
    char path[4096];
    m->format = WT_FORMAT_DIFFUSERS;
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    if ((rc = read_json(&idx, path, 1, err)) != ENG_OK) goto done;
    for (int c = 0; c < WT_COMPONENT_COUNT; c++)
        if ((rc = open_component(m, dir, (wt_component)c, err)) != ENG_OK) goto done;
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    if ((rc = read_json(&cfg, path, 0, err)) != ENG_OK) goto done;
    if (cfg != NULL) {
        /* diffusers' SD configs call the head count "attention_head_dim" (a historical quirk);
         * num_attention_heads, when present, is the real thing */
        if ((rc = json_count(cfg, "num_attention_heads", 1, vals, &given, &n_list, path, err)) !=
            ENG_OK)
            goto done;
        if (!given && (rc = json_count(cfg, "attention_head_dim", 1, vals, &given, &n_list, path,
                                       err)) != ENG_OK)
            goto done;
        if (given) {
            m->unet_heads_override = 1;
            m->unet_heads_listed = n_list;
            memcpy(m->cfg.unet.heads, vals, sizeof vals);
        }
        cJSON_Delete(cfg);
        cfg = NULL;
    }
    snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    if ((rc = read_json(&cfg, path, 0, err)) != ENG_OK) goto done;
    if (cfg != NULL) {
        if ((rc = json_count(cfg, "num_attention_heads", 0, vals, &given, &n_list, path, err)) !=
            ENG_OK)
            goto done;
        m->text_heads_override = given ? vals[0] : 0;
        if ((rc = json_string(cfg, "hidden_act", &s, path, err)) != ENG_OK) goto done;
        if (s != NULL && strcmp(s, "quick_gelu") != 0 && strcmp(s, "gelu") != 0) {
            rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                             "wt_model_open: %s: hidden_act \"%.40s\" is not supported (quick_gelu "
                             "for CLIP, gelu for OpenCLIP)",
                             path, s);
            goto done;
        }
        if (s != NULL) {
            m->text_quick_gelu_known = 1;
            m->cfg.text.quick_gelu = strcmp(s, "quick_gelu") == 0;
        }
        cJSON_Delete(cfg);
        cfg = NULL;
    }
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", dir);
    if ((rc = read_json(&cfg, path, 0, err)) != ENG_OK) goto done;
    if (cfg != NULL) {
        if ((rc = json_string(cfg, "prediction_type", &s, path, err)) != ENG_OK) goto done;
        if (s != NULL && strlen(s) >= sizeof m->cfg.prediction_type) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "wt_model_open: %s: prediction_type \"%.40s...\" is too long (known: "
                             "epsilon, v_prediction)",
                             path, s);
            goto done;
        }
        if (s != NULL) snprintf(m->cfg.prediction_type, sizeof m->cfg.prediction_type, "%s", s);
    }
done:
    cJSON_Delete(idx);
    cJSON_Delete(cfg);
    return rc;
}

static int is_pickle(const char *path) {
    static const char *const exts[] = {".ckpt", ".pt", ".pth", ".bin", ".pkl"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (ends_with_ci(path, exts[i])) return 1;
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL) return 0;
    const size_t n = fread(magic, 1, 4, f);
    fclose(f);
    if (n >= 4 && memcmp(magic, "PK\x03\x04", 4) == 0) return 1; /* torch zip */
    if (n >= 2 && magic[0] == 0x80 && magic[1] <= 5) return 1;   /* pickle protocol 2..5 */
    return 0;
}

/* ---- detection -------------------------------------------------------------------------------- */
/* How many of fmt % 0, fmt % 1, ... exist (fmt has one %d). The formats are literals at every
 * call site, but pass through here as a parameter: silence -Wformat-nonliteral locally. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int count_names(const wt_model *m, wt_component c, const char *fmt, int max) {
    int n = 0;
    while (n < max && fget(m, c, fmt, n) != NULL)
        n++;
    return n;
}
#pragma GCC diagnostic pop

static int detect_structure(wt_model *m, const char *path, eng_err *err) {
    wt_sd_config *c = &m->cfg;
    wt_unet_config *u = &c->unet;
    wt_vae_config *v = &c->vae;
    wt_text_config *t = &c->text;
    const int ldm = m->format == WT_FORMAT_LDM;
    if (ldm) {
        const char *U = "model.diffusion_model.";
        if (fget(m, WT_UNET, "%sinput_blocks.0.0.weight", U) == NULL)
            return eng_err_set(
                err, ENG_E_FORMAT,
                "wt_model_open: %s: no UNet: tensor \"%sinput_blocks.0.0.weight\" is "
                "missing (not a Stable Diffusion 1.x/2.x checkpoint?)",
                path, U);
        int n_in = 1, first_op = 0;
        while (n_in < 64) {
            const int res =
                fget(m, WT_UNET, "%sinput_blocks.%d.0.in_layers.0.weight", U, n_in) != NULL;
            const int op = fget(m, WT_UNET, "%sinput_blocks.%d.0.op.weight", U, n_in) != NULL;
            if (!res && !op) break;
            if (op && first_op == 0) first_op = n_in;
            n_in++;
        }
        const int step = first_op > 0 ? first_op : n_in;
        if (step < 2 || n_in % step != 0 || n_in / step > WT_MAX_LEVELS)
            return eng_err_set(err, ENG_E_FORMAT,
                               "wt_model_open: %s: unexpected UNet layout: %d input blocks with a "
                               "downsampler at block %d",
                               path, n_in, first_op);
        u->layers_per_block = step - 1;
        u->n_levels = n_in / step;
        for (int i = 0; i < u->n_levels; i++)
            u->attn[i] =
                fget(m, WT_UNET, "%sinput_blocks.%d.1.proj_in.weight", U, 1 + i * step) != NULL;
        v->n_levels =
            count_names(m, WT_VAE, "first_stage_model.encoder.down.%d.block.0.conv1.weight", 9);
        v->layers_per_block =
            count_names(m, WT_VAE, "first_stage_model.encoder.down.0.block.%d.conv1.weight", 64);
        if (fget(m, WT_TEXT_ENCODER,
                 "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight")) {
            t->kind = WT_TEXT_CLIP;
            t->layers = t->file_layers = count_names(
                m, WT_TEXT_ENCODER,
                "cond_stage_model.transformer.text_model.encoder.layers.%d.layer_norm1.weight",
                WT_MAX_TEXT_LAYERS);
            t->quick_gelu = 1;
            c->family = WT_FAMILY_SD1;
        } else if (fget(m, WT_TEXT_ENCODER, "cond_stage_model.model.token_embedding.weight")) {
            t->kind = WT_TEXT_OPENCLIP;
            t->file_layers = count_names(
                m, WT_TEXT_ENCODER, "cond_stage_model.model.transformer.resblocks.%d.ln_1.weight",
                WT_MAX_TEXT_LAYERS);
            t->layers = t->file_layers - 1; /* SD 2.x uses the penultimate layer's output */
            const eng_safetensors_info *p =
                fget(m, WT_TEXT_ENCODER, "cond_stage_model.model.text_projection");
            t->proj_dim = p != NULL && p->ndim == 2 ? (int)p->shape[1] : 0;
            c->family = WT_FAMILY_SD2;
        } else {
            return eng_err_set(err, ENG_E_FORMAT,
                               "wt_model_open: %s: no text encoder: neither "
                               "\"cond_stage_model.transformer.text_model.embeddings.token_"
                               "embedding.weight\" (SD 1.x) nor "
                               "\"cond_stage_model.model.token_embedding.weight\" (SD 2.x)",
                               path);
        }
    } else {
        u->n_levels = count_names(m, WT_UNET, "down_blocks.%d.resnets.0.conv1.weight", 9);
        u->layers_per_block = count_names(m, WT_UNET, "down_blocks.0.resnets.%d.conv1.weight", 64);
        for (int i = 0; i < u->n_levels && i < WT_MAX_LEVELS; i++)
            u->attn[i] = fget(m, WT_UNET, "down_blocks.%d.attentions.0.proj_in.weight", i) != NULL;
        v->n_levels = count_names(m, WT_VAE, "encoder.down_blocks.%d.resnets.0.conv1.weight", 9);
        v->layers_per_block =
            count_names(m, WT_VAE, "encoder.down_blocks.0.resnets.%d.conv1.weight", 64);
        t->kind = WT_TEXT_CLIP;
        t->layers = t->file_layers =
            count_names(m, WT_TEXT_ENCODER, "text_model.encoder.layers.%d.layer_norm1.weight",
                        WT_MAX_TEXT_LAYERS);
    }
    if (u->n_levels < 1 || u->n_levels > WT_MAX_LEVELS || u->layers_per_block < 1)
        return eng_err_set(err, ENG_E_FORMAT,
                           "wt_model_open: %s: cannot read the UNet layout (%d levels, %d layers "
                           "per block): first tensor \"%s\" missing?",
                           path, u->n_levels, u->layers_per_block,
                           ldm ? "model.diffusion_model.input_blocks.1.0.in_layers.0.weight"
                               : "down_blocks.0.resnets.0.conv1.weight");
    if (v->n_levels < 1 || v->n_levels > WT_MAX_LEVELS || v->layers_per_block < 1)
        return eng_err_set(err, ENG_E_FORMAT, "wt_model_open: %s: no VAE: tensor \"%s\" is missing",
                           path,
                           ldm ? "first_stage_model.encoder.down.0.block.0.conv1.weight"
                               : "encoder.down_blocks.0.resnets.0.conv1.weight");
    if (t->layers < 1)
        return eng_err_set(err, ENG_E_FORMAT,
                           "wt_model_open: %s: the text encoder has no layers (\"%s\" missing)",
                           path, "text_model.encoder.layers.0.layer_norm1.weight");
    return ENG_OK;
}

/* The file tensor behind canonical `name` in a (possibly provisional) plan. */
static int plan_file(const wt_model *m,
                     const wt_plan *plan,
                     const char *name,
                     const wt_plan_entry **pe,
                     const eng_safetensors_info **pf,
                     const char *path,
                     eng_err *err) {
    const wt_plan_entry *e = wt_plan_find(plan, name);
    ENG_ASSERT(e != NULL); /* names below are ones our plans always have */
    const eng_safetensors_info *f = eng_safetensors_find(m->files[e->component], e->file_name);
    if (f == NULL)
        return eng_err_set(err, ENG_E_FORMAT, "wt_model_open: %s: tensor \"%s\" (%s) is missing",
                           path, e->file_name, e->name);
    if (f->ndim < 1 || (e->file_ndim >= 2 && f->ndim < 2))
        return eng_err_set(err, ENG_E_FORMAT,
                           "wt_model_open: %s: tensor \"%s\" has %d dimensions; expected %d", path,
                           e->file_name, f->ndim, e->file_ndim);
    *pe = e, *pf = f;
    return ENG_OK;
}

static int fits_int(int64_t v) {
    return v > 0 && v <= (1 << 24);
}

static int detect_sizes(wt_model *m, const char *path, eng_err *err) {
    int rc = ENG_OK;
    wt_plan *plan = NULL;
    wt_sd_config *c = &m->cfg;
    wt_unet_config *u = &c->unet;
    wt_vae_config *v = &c->vae;
    wt_text_config *t = &c->text;
    const wt_plan_entry *e = NULL;
    const eng_safetensors_info *f = NULL;
    char name[WT_MAX_NAME];
    /* provisional sizes: the names of the plan do not depend on them */
    wt_sd_config prov = *c;
    for (int i = 0; i < prov.unet.n_levels; i++)
        prov.unet.block_out[i] = 64;
    for (int i = 0; i < prov.vae.n_levels; i++)
        prov.vae.block_out[i] = 64;
    prov.unet.in_channels = prov.unet.out_channels = prov.unet.context_dim = 1;
    prov.unet.time_embed_dim = 1;
    prov.vae.in_channels = prov.vae.out_channels = prov.vae.latent_channels = 1;
    prov.text.hidden = prov.text.intermediate = prov.text.vocab = prov.text.max_positions = 1;
    if ((rc = wt_plan_create(&plan, &prov, m->format, err)) != ENG_OK) goto done;
#define READ(canon_fmt, idx, field, dim)                                                           \
    do {                                                                                           \
        snprintf(name, sizeof name, canon_fmt, idx);                                               \
        if ((rc = plan_file(m, plan, name, &e, &f, path, err)) != ENG_OK) goto done;               \
        if (!fits_int(f->shape[dim])) {                                                            \
            rc = eng_err_set(err, ENG_E_FORMAT, "wt_model_open: %s: tensor \"%s\" has size %lld",  \
                             path, e->file_name, (long long)f->shape[dim]);                        \
            goto done;                                                                             \
        }                                                                                          \
        field = (int)f->shape[dim];                                                                \
    } while (0)
    READ("unet.conv_in.weight%.0d", 0, u->in_channels, 1);
    READ("unet.conv_out.weight%.0d", 0, u->out_channels, 0);
    READ("unet.time_embedding.linear_1.weight%.0d", 0, u->time_embed_dim, 0);
    for (int i = 0; i < u->n_levels; i++)
        READ("unet.down_blocks.%d.resnets.0.conv1.weight", i, u->block_out[i], 0);
    int lvl = -1;
    for (int i = 0; i < u->n_levels && lvl < 0; i++)
        if (u->attn[i]) lvl = i;
    if (lvl >= 0) {
        READ("unet.down_blocks.%d.attentions.0.transformer_blocks.0.attn2.to_k.weight", lvl,
             u->context_dim, 1);
        snprintf(name, sizeof name, "unet.down_blocks.%d.attentions.0.proj_in.weight", lvl);
    } else {
        READ("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight%.0d", 0,
             u->context_dim, 1);
        snprintf(name, sizeof name, "unet.mid_block.attentions.0.proj_in.weight");
    }
    if ((rc = plan_file(m, plan, name, &e, &f, path, err)) != ENG_OK) goto done;
    u->linear_proj = f->ndim == 2;
    u->norm_groups = v->norm_groups = 32;
    READ("vae.encoder.conv_in.weight%.0d", 0, v->in_channels, 1);
    READ("vae.decoder.conv_out.weight%.0d", 0, v->out_channels, 0);
    READ("vae.decoder.conv_in.weight%.0d", 0, v->latent_channels, 1);
    for (int i = 0; i < v->n_levels; i++)
        READ("vae.encoder.down_blocks.%d.resnets.0.conv1.weight", i, v->block_out[i], 0);
    READ("text_encoder.text_model.embeddings.token_embedding.weight%.0d", 0, t->vocab, 0);
    READ("text_encoder.text_model.embeddings.token_embedding.weight%.0d", 0, t->hidden, 1);
    READ("text_encoder.text_model.embeddings.position_embedding.weight%.0d", 0, t->max_positions,
         0);
    READ("text_encoder.text_model.encoder.layers.%d.mlp.fc1.weight", 0, t->intermediate, 0);
#undef READ
    /* family: from the text encoder in ldm files; diffusers: gelu or a 1024-wide context is SD2 */
    if (m->format == WT_FORMAT_DIFFUSERS)
        c->family = (m->text_quick_gelu_known && !t->quick_gelu) ||
                            (!m->text_quick_gelu_known && u->context_dim == 1024)
                        ? WT_FAMILY_SD2
                        : WT_FAMILY_SD1;
    if (!m->text_quick_gelu_known) t->quick_gelu = c->family == WT_FAMILY_SD1;
    if (!m->unet_heads_override) wt_unet_heads_rule(u, c->family);
    if (m->unet_heads_listed > 0 && m->unet_heads_listed != u->n_levels) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "wt_model_open: %s: unet/config.json lists %d attention head counts but "
                         "the UNet has %d levels",
                         path, m->unet_heads_listed, u->n_levels);
        goto done;
    }
    for (int i = u->n_levels; i < WT_MAX_LEVELS; i++)
        u->heads[i] = 0; /* an int in config.json or the metadata fills every slot */
    t->heads = m->text_heads_override > 0 ? m->text_heads_override : wt_text_heads_rule(t->hidden);
    for (int i = 0; i < u->n_levels; i++)
        if (u->heads[i] < 1 || u->block_out[i] % u->heads[i] != 0) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "wt_model_open: %s: %d attention heads do not divide UNet level %d's "
                             "%d channels",
                             path, u->heads[i], i, u->block_out[i]);
            goto done;
        }
    if (t->heads < 1 || t->hidden % t->heads != 0) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "wt_model_open: %s: %d text attention heads do not divide hidden size %d",
                         path, t->heads, t->hidden);
        goto done;
    }
done:
    wt_plan_destroy(plan);
    return rc;
}

/* Every canonical tensor of the plan must be in the file with the planned shape and a float
 * dtype. */
static int check_tensors(const wt_model *m, const char *path, eng_err *err) {
    for (int64_t i = 0; i < wt_plan_count(m->plan); i++) {
        const wt_plan_entry *e = wt_plan_at(m->plan, i);
        if (e->name == NULL) continue;
        const eng_safetensors_info *f = eng_safetensors_find(m->files[e->component], e->file_name);
        char want[96], got[96];
        wt_shape_str(want, sizeof want, e->file_ndim, e->file_shape);
        if (f == NULL)
            return eng_err_set(err, ENG_E_FORMAT,
                               "wt_model_open: %s: tensor \"%s\" (%s) is missing; expected shape "
                               "%s",
                               eng_safetensors_path(m->files[e->component]), e->file_name, e->name,
                               want);
        int same = f->ndim == e->file_ndim;
        for (int d = 0; same && d < f->ndim; d++)
            same = f->shape[d] == e->file_shape[d];
        if (!same)
            return eng_err_set(err, ENG_E_FORMAT,
                               "wt_model_open: %s: tensor \"%s\" (%s) has shape %s but the "
                               "detected architecture expects %s",
                               eng_safetensors_path(m->files[e->component]), e->file_name, e->name,
                               wt_shape_str(got, sizeof got, f->ndim, f->shape), want);
        if (f->dtype != ENG_SAFETENSORS_F32 && f->dtype != ENG_SAFETENSORS_F16 &&
            f->dtype != ENG_SAFETENSORS_BF16)
            return eng_err_set(err, ENG_E_UNSUPPORTED,
                               "wt_model_open: %s: tensor \"%s\" is %s; weights must be F32, F16 "
                               "or BF16",
                               path, e->file_name, f->dtype_name);
    }
    return ENG_OK;
}

int wt_model_open(wt_model **out, const char *path, eng_err *err) {
    int rc = ENG_OK;
    wt_model *m = NULL;
    struct stat st;
    ENG_ASSERT(out != NULL && path != NULL);
    *out = NULL;
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "wt_model_open: out of memory");
        goto done;
    }
    snprintf(m->cfg.prediction_type, sizeof m->cfg.prediction_type, "epsilon");
    if (stat(path, &st) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "wt_model_open: %s: no such file or folder", path);
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        char idx[4096];
        snprintf(idx, sizeof idx, "%s/model_index.json", path);
        if (stat(idx, &st) != 0) {
            rc = eng_err_set(err, ENG_E_IO,
                             "wt_model_open: %s: a folder without model_index.json is not a "
                             "diffusers checkpoint",
                             path);
            goto done;
        }
        if ((rc = open_diffusers(m, path, err)) != ENG_OK) goto done;
    } else {
        if (is_pickle(path)) {
            rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                             "wt_model_open: %s: pickle checkpoints are not loaded (they can run "
                             "code); convert to .safetensors",
                             path);
            goto done;
        }
        m->format = WT_FORMAT_LDM;
        if ((rc = eng_safetensors_open(&m->files[WT_UNET], path, err)) != ENG_OK) {
            if (rc == ENG_E_FORMAT && !ends_with_ci(path, ".safetensors"))
                rc = eng_err_set(err, ENG_E_FORMAT,
                                 "wt_model_open: %s: unknown checkpoint type (expected a "
                                 ".safetensors file or a diffusers folder with model_index.json)",
                                 path);
            goto done;
        }
        m->files[WT_VAE] = m->files[WT_TEXT_ENCODER] = m->files[WT_UNET];
        const char *uh = eng_safetensors_metadata_get(m->files[WT_UNET], "wt.unet_heads");
        const char *th = eng_safetensors_metadata_get(m->files[WT_UNET], "wt.text_heads");
        int h = 0;
        if ((rc = meta_count(&h, uh, "wt.unet_heads", path, err)) != ENG_OK) goto done;
        if (h > 0) {
            m->unet_heads_override = 1;
            for (int i = 0; i < WT_MAX_LEVELS; i++)
                m->cfg.unet.heads[i] = h;
        }
        if ((rc = meta_count(&m->text_heads_override, th, "wt.text_heads", path, err)) != ENG_OK)
            goto done;
    }
    if ((rc = detect_structure(m, path, err)) != ENG_OK) goto done;
    if ((rc = detect_sizes(m, path, err)) != ENG_OK) goto done;
    if ((rc = wt_plan_create(&m->plan, &m->cfg, m->format, err)) != ENG_OK) goto done;
    if ((rc = check_tensors(m, path, err)) != ENG_OK) goto done;
    *out = m;
    m = NULL;
done:
    wt_model_close(m);
    return rc;
}

void wt_model_close(wt_model *m) {
    if (m == NULL) return;
    for (int c = 0; c < WT_COMPONENT_COUNT; c++) {
        int dup = 0;
        for (int k = 0; k < c; k++)
            dup |= m->files[k] == m->files[c];
        if (!dup) eng_safetensors_close(m->files[c]);
    }
    wt_plan_destroy(m->plan);
    free(m);
}

const wt_sd_config *wt_model_config(const wt_model *m) {
    return &m->cfg;
}
wt_format wt_model_format(const wt_model *m) {
    return m->format;
}
const wt_plan *wt_model_plan(const wt_model *m) {
    return m->plan;
}
const char *wt_model_file(const wt_model *m, wt_component c) {
    ENG_ASSERT((unsigned)c < WT_COMPONENT_COUNT);
    return eng_safetensors_path(m->files[c]);
}

int wt_model_tensor(const wt_model *m, const char *name, wt_tensor_info *info, eng_err *err) {
    const wt_plan_entry *e = wt_plan_find(m->plan, name);
    if (e == NULL)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "wt_model_tensor: no tensor \"%s\" in this model (canonical names look "
                           "like unet.conv_in.weight)",
                           name);
    info->entry = e;
    info->file = eng_safetensors_find(m->files[e->component], e->file_name);
    ENG_ASSERT(info->file != NULL); /* checked at open */
    return ENG_OK;
}

/* ---- conversion ------------------------------------------------------------------------------- */
static float load_f32(const unsigned char *p, eng_safetensors_dtype dt, int64_t i) {
    if (dt == ENG_SAFETENSORS_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    if (dt == ENG_SAFETENSORS_F16) return eng_f16_to_f32((eng_f16){h});
    return eng_bf16_to_f32((eng_bf16){h});
}

static void store(void *dst, eng_dtype dt, int64_t i, float v) {
    if (dt == ENG_DTYPE_F32)
        ((float *)dst)[i] = v;
    else if (dt == ENG_DTYPE_F16)
        ((eng_f16 *)dst)[i] = eng_f32_to_f16(v);
    else
        ((eng_bf16 *)dst)[i] = eng_f32_to_bf16(v);
}

static void expected_shape(const wt_plan_entry *e, unsigned flags, int64_t shape[4]) {
    memcpy(shape, e->shape, 4 * sizeof *shape);
    if ((flags & WT_LOAD_OHWI) && e->ndim == 4) {
        shape[1] = e->shape[2], shape[2] = e->shape[3], shape[3] = e->shape[1];
    }
}

int wt_model_read_tensor(
    const wt_model *m, const char *name, unsigned flags, eng_tensor *dst, eng_err *err) {
    wt_tensor_info info = {0};
    int rc = wt_model_tensor(m, name, &info, err);
    if (rc != ENG_OK) return rc;
    const wt_plan_entry *e = info.entry;
    int64_t want[4];
    expected_shape(e, flags, want);
    int same = dst->ndim == e->ndim;
    for (int d = 0; same && d < e->ndim; d++)
        same = dst->shape[d] == want[d];
    if (!same) {
        char a[96], b[96];
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "wt_model_read_tensor: tensor \"%s\": destination shape %s, expected %s",
                           name, wt_shape_str(a, sizeof a, dst->ndim, dst->shape),
                           wt_shape_str(b, sizeof b, e->ndim, want));
    }
    if (dst->dtype != ENG_DTYPE_F32 && dst->dtype != ENG_DTYPE_F16 && dst->dtype != ENG_DTYPE_BF16)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "wt_model_read_tensor: tensor \"%s\": destination dtype %s (weights "
                           "load as f32, f16 or bf16)",
                           name, eng_dtype_name(dst->dtype));
    if (dst->device != ENG_DEVICE_CPU || !eng_tensor_is_contiguous(dst))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "wt_model_read_tensor: tensor \"%s\": the destination must be "
                           "contiguous CPU memory",
                           name);
    int64_t numel = 1;
    for (int d = 0; d < e->ndim; d++)
        numel *= e->shape[d];
    const size_t esize = eng_safetensors_dtype_size(info.file->dtype);
    const unsigned char *src = (const unsigned char *)info.file->data +
                               (size_t)(e->slice_index * numel) * esize; /* slices: whole rows */
    ENG_ASSERT(e->slice_rows == 0 || (e->slice_index + 1) * numel <= info.file->numel);
    if (numel == 0) return ENG_OK;
    if ((flags & WT_LOAD_OHWI) && e->ndim == 4) {
        const int64_t O = e->shape[0], I = e->shape[1], H = e->shape[2], W = e->shape[3];
        int64_t k = 0;
        for (int64_t o = 0; o < O; o++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    for (int64_t i = 0; i < I; i++)
                        store(dst->data, dst->dtype, k++,
                              load_f32(src, info.file->dtype, ((o * I + i) * H + h) * W + w));
    } else if (info.file->dtype == ENG_SAFETENSORS_F32 && dst->dtype == ENG_DTYPE_F32) {
        memcpy(dst->data, src, (size_t)numel * 4);
    } else if (info.file->dtype == ENG_SAFETENSORS_F16 && dst->dtype == ENG_DTYPE_F16) {
        memcpy(dst->data, src, (size_t)numel * 2);
    } else if (info.file->dtype == ENG_SAFETENSORS_BF16 && dst->dtype == ENG_DTYPE_BF16) {
        memcpy(dst->data, src, (size_t)numel * 2);
    } else {
        for (int64_t i = 0; i < numel; i++)
            store(dst->data, dst->dtype, i, load_f32(src, info.file->dtype, i));
    }
    return ENG_OK;
}

int wt_model_load_tensor(const wt_model *m,
                         const char *name,
                         eng_alloc *a,
                         eng_dtype dtype,
                         unsigned flags,
                         eng_tensor *out,
                         eng_err *err) {
    int rc = ENG_OK;
    wt_tensor_info info = {0};
    eng_tensor t = {0};
    if ((rc = wt_model_tensor(m, name, &info, err)) != ENG_OK) goto done;
    if (eng_alloc_device(a) != ENG_DEVICE_CPU) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "wt_model_load_tensor: tensor \"%s\": the allocator is on %s; weights "
                         "load into host memory (upload from there)",
                         name, eng_alloc_device_name(a));
        goto done;
    }
    int64_t shape[4];
    expected_shape(info.entry, flags, shape);
    if ((rc = eng_tensor_alloc(&t, a, ENG_LIFE_WEIGHTS, wt_component_name(info.entry->component),
                               dtype, info.entry->ndim, shape, err)) != ENG_OK)
        goto done;
    if ((rc = wt_model_read_tensor(m, name, flags, &t, err)) != ENG_OK) goto done;
    *out = t;
    t.data = NULL;
done:
    if (t.data != NULL) eng_tensor_free(a, &t);
    return rc;
}
