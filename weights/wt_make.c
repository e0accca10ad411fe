/* wt_make.c: random checkpoints of a real architecture in exactly the real format: one ldm
 * .safetensors file, or a diffusers folder (model_index.json, per-component config.json and
 * safetensors, scheduler config, tokenizer files). Values come from Philox: tensor i of the plan
 * draws stream (seed, FNV-1a of its canonical name): both formats hold the same values. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "eng_philox_math.h"
#include "wt_impl.h"

typedef struct file_tensor {
    const wt_plan_entry *first; /* its first plan entry (name, file shape, dtype) */
    int64_t numel;
    void *data;
} file_tensor;

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    return n;
}

float wt_init_value(const wt_plan_entry *e, uint64_t seed, int64_t i) {
    /* FNV-1a of the canonical name (the file name for file-only tensors): the same canonical
     * tensor gets the same values in either format */
    const char *s = e->name != NULL ? e->name : e->file_name;
    uint64_t offset = 1469598103934665603u;
    for (; *s; s++)
        offset = (offset ^ (unsigned char)*s) * 1099511628211u;
    switch (e->init) {
    case WT_INIT_NORMAL: return 0.02f * eng_philox_normal_at(seed, offset, (uint64_t)i);
    case WT_INIT_ONE: return 1.0f;
    case WT_INIT_ZERO: return 0.0f;
    case WT_INIT_ARANGE: return (float)i;
    case WT_INIT_LOGIT: return 2.6592600f; /* ln(1 / 0.07), OpenCLIP's init */
    case WT_INIT_COUNT: break;
    }
    ENG_ASSERT(0 && "bad init");
    return 0.0f;
}

/* Writes the tensors of component `comp` (or all when comp < 0) to `path`. */
static int write_file(const wt_plan *plan,
                      int comp,
                      const wt_make_params *p,
                      const char *path,
                      const eng_safetensors_kv *meta,
                      int64_t n_meta,
                      eng_progress *bar,
                      eng_err *err) {
    int rc = ENG_OK;
    const int64_t n = wt_plan_count(plan);
    file_tensor *ft = calloc((size_t)n + 1, sizeof *ft);
    eng_safetensors_entry *entries = calloc((size_t)n + 1, sizeof *entries);
    int64_t nf = 0;
    const size_t esize = eng_dtype_size(p->dtype);
    if (ft == NULL || entries == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "wt_make_checkpoint: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        const wt_plan_entry *e = wt_plan_at(plan, i);
        if (comp >= 0 && (int)e->component != comp) continue;
        file_tensor *f = NULL;
        for (int64_t k = nf - 1; k >= 0 && k >= nf - 4; k--) /* fused q/k/v are neighbours */
            if (strcmp(ft[k].first->file_name, e->file_name) == 0) f = &ft[k];
        if (f == NULL) {
            f = &ft[nf++];
            f->first = e;
            f->numel = numel_of(e->file_ndim, e->file_shape);
            const size_t bytes = (size_t)f->numel * (e->file_i64 ? 8 : esize);
            f->data = malloc(bytes > 0 ? bytes : 1);
            if (f->data == NULL) {
                rc = eng_err_set(err, ENG_E_OOM,
                                 "wt_make_checkpoint: out of memory for tensor \"%s\" (%zu bytes)",
                                 e->file_name, bytes);
                goto done;
            }
        }
        const int64_t cnt = numel_of(e->ndim, e->shape);
        const int64_t base = e->slice_index * cnt;
        if (e->file_i64) {
            for (int64_t j = 0; j < cnt; j++)
                ((int64_t *)f->data)[base + j] = (int64_t)wt_init_value(e, p->seed, j);
        } else {
            for (int64_t j = 0; j < cnt; j++) {
                const float v = wt_init_value(e, p->seed, j);
                if (p->dtype == ENG_DTYPE_F32)
                    ((float *)f->data)[base + j] = v;
                else if (p->dtype == ENG_DTYPE_F16)
                    ((eng_f16 *)f->data)[base + j] = eng_f32_to_f16(v);
                else
                    ((eng_bf16 *)f->data)[base + j] = eng_f32_to_bf16(v);
            }
        }
        if (bar != NULL) eng_progress_add(bar, cnt, NULL);
    }
    for (int64_t k = 0; k < nf; k++) {
        const wt_plan_entry *e = ft[k].first;
        entries[k].name = e->file_name;
        entries[k].dtype =
            e->file_i64 ? ENG_SAFETENSORS_I64 : eng_safetensors_dtype_from_eng(p->dtype);
        entries[k].ndim = e->file_ndim;
        entries[k].shape = e->file_shape;
        entries[k].data = ft[k].data;
    }
    rc = eng_safetensors_write(path, entries, nf, meta, n_meta, err);
done:
    for (int64_t k = 0; ft != NULL && k < nf; k++)
        free(ft[k].data);
    free(ft);
    free(entries);
    return rc;
}

static int make_dir(const char *path, eng_err *err) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return eng_err_set(err, ENG_E_IO, "wt_make_checkpoint: cannot create folder %s: %s", path,
                           strerror(errno));
    return ENG_OK;
}

static int write_json(const char *path, cJSON *j, eng_err *err) {
    int rc = ENG_OK;
    char *text = cJSON_Print(j);
    FILE *f = NULL;
    if (text == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "wt_make_checkpoint: out of memory");
        goto done;
    }
    f = fopen(path, "wb");
    if (f == NULL || fputs(text, f) < 0 || fputc('\n', f) < 0) {
        rc = eng_err_set(err, ENG_E_IO, "wt_make_checkpoint: cannot write %s: %s", path,
                         strerror(errno));
        goto done;
    }
done:
    if (f != NULL && fclose(f) != 0 && rc == ENG_OK)
        rc = eng_err_set(err, ENG_E_IO, "wt_make_checkpoint: cannot write %s", path);
    cJSON_free(text);
    return rc;
}

static cJSON *int_array(const int *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a != NULL && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *str_array(const char *a0, const char *a1) {
    cJSON *a = cJSON_CreateArray();
    if (a == NULL) return NULL;
    cJSON_AddItemToArray(a, a0 != NULL ? cJSON_CreateString(a0) : cJSON_CreateNull());
    cJSON_AddItemToArray(a, a1 != NULL ? cJSON_CreateString(a1) : cJSON_CreateNull());
    return a;
}

/* The config.json files diffusers / transformers write for these models. */
static int write_configs(const wt_make_params *p, eng_err *err) {
    int rc = ENG_OK;
    const wt_sd_config *c = &p->config;
    const wt_unet_config *u = &c->unet;
    const wt_vae_config *v = &c->vae;
    const wt_text_config *t = &c->text;
    const int sd2 = c->family == WT_FAMILY_SD2;
    cJSON *j[5] = {cJSON_CreateObject(), cJSON_CreateObject(), cJSON_CreateObject(),
                   cJSON_CreateObject(), cJSON_CreateObject()};
    char path[4096];
    for (int i = 0; i < 5; i++)
        if (j[i] == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "wt_make_checkpoint: out of memory");
            goto done;
        }
    /* model_index.json */
    cJSON_AddStringToObject(j[0], "_class_name", "StableDiffusionPipeline");
    cJSON_AddStringToObject(j[0], "_diffusers_version", "0.27.0");
    cJSON_AddItemToObject(j[0], "feature_extractor", str_array(NULL, NULL));
    cJSON_AddBoolToObject(j[0], "requires_safety_checker", 0);
    cJSON_AddItemToObject(j[0], "safety_checker", str_array(NULL, NULL));
    cJSON_AddItemToObject(j[0], "scheduler",
                          str_array("diffusers", sd2 ? "DDIMScheduler" : "PNDMScheduler"));
    cJSON_AddItemToObject(j[0], "text_encoder", str_array("transformers", "CLIPTextModel"));
    cJSON_AddItemToObject(j[0], "tokenizer", str_array("transformers", "CLIPTokenizer"));
    cJSON_AddItemToObject(j[0], "unet", str_array("diffusers", "UNet2DConditionModel"));
    cJSON_AddItemToObject(j[0], "vae", str_array("diffusers", "AutoencoderKL"));
    /* unet/config.json */
    const char *down[WT_MAX_LEVELS], *up[WT_MAX_LEVELS];
    for (int i = 0; i < u->n_levels; i++) {
        down[i] = u->attn[i] ? "CrossAttnDownBlock2D" : "DownBlock2D";
        up[i] = u->attn[u->n_levels - 1 - i] ? "CrossAttnUpBlock2D" : "UpBlock2D";
    }
    int same_heads = 1;
    for (int i = 1; i < u->n_levels; i++)
        same_heads &= u->heads[i] == u->heads[0];
    cJSON_AddStringToObject(j[1], "_class_name", "UNet2DConditionModel");
    cJSON_AddStringToObject(j[1], "_diffusers_version", "0.27.0");
    cJSON_AddStringToObject(j[1], "act_fn", "silu");
    cJSON_AddItemToObject(j[1], "attention_head_dim",
                          same_heads && !sd2 ? cJSON_CreateNumber(u->heads[0])
                                             : int_array(u->heads, u->n_levels));
    cJSON_AddItemToObject(j[1], "block_out_channels", int_array(u->block_out, u->n_levels));
    cJSON_AddBoolToObject(j[1], "center_input_sample", 0);
    cJSON_AddNumberToObject(j[1], "cross_attention_dim", u->context_dim);
    cJSON_AddItemToObject(j[1], "down_block_types", cJSON_CreateStringArray(down, u->n_levels));
    cJSON_AddNumberToObject(j[1], "downsample_padding", 1);
    cJSON_AddBoolToObject(j[1], "flip_sin_to_cos", 1);
    cJSON_AddNumberToObject(j[1], "freq_shift", 0);
    cJSON_AddNumberToObject(j[1], "in_channels", u->in_channels);
    cJSON_AddNumberToObject(j[1], "layers_per_block", u->layers_per_block);
    cJSON_AddNumberToObject(j[1], "mid_block_scale_factor", 1);
    cJSON_AddNumberToObject(j[1], "norm_eps", 1e-5);
    cJSON_AddNumberToObject(j[1], "norm_num_groups", u->norm_groups);
    cJSON_AddNumberToObject(j[1], "out_channels", u->out_channels);
    cJSON_AddNumberToObject(j[1], "sample_size", sd2 ? 96 : (u->block_out[0] < 320 ? 8 : 64));
    cJSON_AddItemToObject(j[1], "up_block_types", cJSON_CreateStringArray(up, u->n_levels));
    cJSON_AddBoolToObject(j[1], "use_linear_projection", u->linear_proj);
    /* vae/config.json */
    const char *vdown[WT_MAX_LEVELS], *vup[WT_MAX_LEVELS];
    for (int i = 0; i < v->n_levels; i++)
        vdown[i] = "DownEncoderBlock2D", vup[i] = "UpDecoderBlock2D";
    cJSON_AddStringToObject(j[2], "_class_name", "AutoencoderKL");
    cJSON_AddStringToObject(j[2], "_diffusers_version", "0.27.0");
    cJSON_AddStringToObject(j[2], "act_fn", "silu");
    cJSON_AddItemToObject(j[2], "block_out_channels", int_array(v->block_out, v->n_levels));
    cJSON_AddItemToObject(j[2], "down_block_types", cJSON_CreateStringArray(vdown, v->n_levels));
    cJSON_AddNumberToObject(j[2], "in_channels", v->in_channels);
    cJSON_AddNumberToObject(j[2], "latent_channels", v->latent_channels);
    cJSON_AddNumberToObject(j[2], "layers_per_block", v->layers_per_block);
    cJSON_AddNumberToObject(j[2], "norm_num_groups", v->norm_groups);
    cJSON_AddNumberToObject(j[2], "out_channels", v->out_channels);
    cJSON_AddNumberToObject(j[2], "sample_size", sd2 ? 768 : 512);
    cJSON_AddNumberToObject(j[2], "scaling_factor", 0.18215);
    cJSON_AddItemToObject(j[2], "up_block_types", cJSON_CreateStringArray(vup, v->n_levels));
    /* text_encoder/config.json */
    const char *arch[1] = {"CLIPTextModel"};
    cJSON_AddItemToObject(j[3], "architectures", cJSON_CreateStringArray(arch, 1));
    cJSON_AddNumberToObject(j[3], "bos_token_id", 0);
    cJSON_AddNumberToObject(j[3], "eos_token_id", 2);
    cJSON_AddStringToObject(j[3], "hidden_act", t->quick_gelu ? "quick_gelu" : "gelu");
    cJSON_AddNumberToObject(j[3], "hidden_size", t->hidden);
    cJSON_AddNumberToObject(j[3], "initializer_range", 0.02);
    cJSON_AddNumberToObject(j[3], "intermediate_size", t->intermediate);
    cJSON_AddNumberToObject(j[3], "layer_norm_eps", 1e-5);
    cJSON_AddNumberToObject(j[3], "max_position_embeddings", t->max_positions);
    cJSON_AddStringToObject(j[3], "model_type", "clip_text_model");
    cJSON_AddNumberToObject(j[3], "num_attention_heads", t->heads);
    cJSON_AddNumberToObject(j[3], "num_hidden_layers", t->layers);
    cJSON_AddNumberToObject(j[3], "pad_token_id", 1);
    cJSON_AddNumberToObject(j[3], "projection_dim", sd2 ? 512 : 768);
    cJSON_AddStringToObject(j[3], "torch_dtype",
                            p->dtype == ENG_DTYPE_F32   ? "float32"
                            : p->dtype == ENG_DTYPE_F16 ? "float16"
                                                        : "bfloat16");
    cJSON_AddNumberToObject(j[3], "vocab_size", t->vocab);
    /* scheduler/scheduler_config.json */
    cJSON_AddStringToObject(j[4], "_class_name", sd2 ? "DDIMScheduler" : "PNDMScheduler");
    cJSON_AddStringToObject(j[4], "_diffusers_version", "0.27.0");
    cJSON_AddNumberToObject(j[4], "beta_end", 0.012);
    cJSON_AddStringToObject(j[4], "beta_schedule", "scaled_linear");
    cJSON_AddNumberToObject(j[4], "beta_start", 0.00085);
    cJSON_AddBoolToObject(j[4], "clip_sample", 0);
    cJSON_AddNumberToObject(j[4], "num_train_timesteps", 1000);
    cJSON_AddStringToObject(j[4], "prediction_type",
                            c->prediction_type[0] ? c->prediction_type : "epsilon");
    cJSON_AddBoolToObject(j[4], "set_alpha_to_one", 0);
    cJSON_AddBoolToObject(j[4], "skip_prk_steps", 1);
    cJSON_AddNumberToObject(j[4], "steps_offset", 1);
    cJSON_AddNullToObject(j[4], "trained_betas");
    static const char *const files[5] = {"model_index.json", "unet/config.json", "vae/config.json",
                                         "text_encoder/config.json",
                                         "scheduler/scheduler_config.json"};
    for (int i = 0; i < 5 && rc == ENG_OK; i++) {
        snprintf(path, sizeof path, "%s/%s", p->path, files[i]);
        rc = write_json(path, j[i], err);
    }
done:
    for (int i = 0; i < 5; i++)
        cJSON_Delete(j[i]);
    return rc;
}

static int copy_file(const char *dst, const char *src, eng_err *err) {
    int rc = ENG_OK;
    char buf[65536];
    FILE *in = fopen(src, "rb"), *out = NULL;
    if (in == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "wt_make_checkpoint: cannot read %s", src);
        goto done;
    }
    out = fopen(dst, "wb");
    if (out == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "wt_make_checkpoint: cannot write %s", dst);
        goto done;
    }
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            rc = eng_err_set(err, ENG_E_IO, "wt_make_checkpoint: cannot write %s", dst);
            goto done;
        }
done:
    if (in != NULL) fclose(in);
    if (out != NULL && fclose(out) != 0 && rc == ENG_OK)
        rc = eng_err_set(err, ENG_E_IO, "wt_make_checkpoint: cannot write %s", dst);
    return rc;
}

static int write_tokenizer(const wt_make_params *p, eng_err *err) {
    int rc = ENG_OK;
    char src[4096], dst[4096];
    cJSON *tc = NULL;
    static const char *const files[2] = {"vocab.json", "merges.txt"};
    for (int i = 0; i < 2; i++) {
        snprintf(src, sizeof src, "%s/%s", p->tokenizer_dir, files[i]);
        snprintf(dst, sizeof dst, "%s/tokenizer/%s", p->path, files[i]);
        if ((rc = copy_file(dst, src, err)) != ENG_OK) goto done;
    }
    tc = cJSON_CreateObject();
    if (tc == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "wt_make_checkpoint: out of memory");
        goto done;
    }
    cJSON_AddStringToObject(tc, "bos_token", "<|startoftext|>");
    cJSON_AddBoolToObject(tc, "do_lower_case", 1);
    cJSON_AddStringToObject(tc, "eos_token", "<|endoftext|>");
    cJSON_AddNumberToObject(tc, "model_max_length", p->config.text.max_positions);
    cJSON_AddStringToObject(tc, "pad_token",
                            p->config.family == WT_FAMILY_SD2 ? "!" : "<|endoftext|>");
    cJSON_AddStringToObject(tc, "tokenizer_class", "CLIPTokenizer");
    cJSON_AddStringToObject(tc, "unk_token", "<|endoftext|>");
    snprintf(dst, sizeof dst, "%s/tokenizer/tokenizer_config.json", p->path);
    rc = write_json(dst, tc, err);
done:
    cJSON_Delete(tc);
    return rc;
}

int wt_make_checkpoint(const wt_make_params *p, eng_err *err) {
    int rc = ENG_OK;
    wt_plan *plan = NULL;
    eng_progress *bar = NULL;
    char path[4096], heads_u[16], heads_t[16];
    ENG_ASSERT(p != NULL && p->path != NULL);
    if (p->dtype != ENG_DTYPE_F32 && p->dtype != ENG_DTYPE_F16 && p->dtype != ENG_DTYPE_BF16) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "wt_make_checkpoint: dtype %s (checkpoints are f32, f16 or bf16)",
                         eng_dtype_name(p->dtype));
        goto done;
    }
    if ((rc = wt_plan_create(&plan, &p->config, p->format, err)) != ENG_OK) goto done;
    if (p->progress != NULL) {
        eng_progress_params pp;
        eng_progress_params_init(&pp);
        pp.out = p->progress;
        pp.label = "make-checkpoint";
        pp.unit = "value";
        /* every value written, the ldm extras (position_ids, SD2's unused layer) included */
        for (int64_t i = 0; i < wt_plan_count(plan); i++) {
            const wt_plan_entry *e = wt_plan_at(plan, i);
            pp.total += numel_of(e->ndim, e->shape);
        }
        if ((rc = eng_progress_create(&bar, &pp, err)) != ENG_OK) goto done;
    }
    if (p->format == WT_FORMAT_LDM) {
        /* ldm files cannot say the head counts; write them when they differ from the rules */
        const wt_sd_config *c = &p->config;
        wt_unet_config rule = c->unet;
        wt_unet_heads_rule(&rule, c->family);
        eng_safetensors_kv meta[3] = {{"format", "pt"}, {NULL, NULL}, {NULL, NULL}};
        int64_t n_meta = 1;
        if (memcmp(rule.heads, c->unet.heads, sizeof rule.heads) != 0) {
            snprintf(heads_u, sizeof heads_u, "%d", c->unet.heads[0]);
            meta[n_meta++] = (eng_safetensors_kv){"wt.unet_heads", heads_u};
        }
        if (wt_text_heads_rule(c->text.hidden) != c->text.heads) {
            snprintf(heads_t, sizeof heads_t, "%d", c->text.heads);
            meta[n_meta++] = (eng_safetensors_kv){"wt.text_heads", heads_t};
        }
        rc = write_file(plan, -1, p, p->path, meta, n_meta, bar, err);
        goto done;
    }
    static const char *const dirs[] = {"unet", "vae", "text_encoder", "scheduler", "tokenizer"};
    if ((rc = make_dir(p->path, err)) != ENG_OK) goto done;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (i == 4 && p->tokenizer_dir == NULL) break;
        snprintf(path, sizeof path, "%s/%s", p->path, dirs[i]);
        if ((rc = make_dir(path, err)) != ENG_OK) goto done;
    }
    if ((rc = write_configs(p, err)) != ENG_OK) goto done;
    if (p->tokenizer_dir != NULL && (rc = write_tokenizer(p, err)) != ENG_OK) goto done;
    const eng_safetensors_kv meta[1] = {{"format", "pt"}};
    for (int c = 0; c < WT_COMPONENT_COUNT; c++) {
        snprintf(path, sizeof path, "%s/%s/%s", p->path, dirs[c],
                 c == WT_TEXT_ENCODER ? "model.safetensors"
                                      : "diffusion_pytorch_model.safetensors");
        if ((rc = write_file(plan, c, p, path, meta, 1, bar, err)) != ENG_OK) goto done;
    }
done:
    if (bar != NULL && rc == ENG_OK) eng_progress_finish(bar, NULL);
    eng_progress_destroy(bar);
    wt_plan_destroy(plan);
    return rc;
}
