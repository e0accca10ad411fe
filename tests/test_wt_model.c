/* test_wt_model.c: tiny random checkpoints written and read back in both formats and dtypes,
 * architecture detection (full-size sd15/sd21 from sparse files: real headers, no data written),
 * OHWI loads, the OpenCLIP in_proj split, and bad input (each error names what went wrong). */
#include <stdlib.h>
#include <string.h>

#include "eng_test.h"
#include "wt.h"

static void tmp_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", eng_test_tmpdir(), name);
}

/* The CLIP vocabulary folder for the diffusers tokenizer/, or NULL when the data is absent. */
static const char *vocab_dir(void) {
    static char dir[2048];
    char f[4096];
    snprintf(dir, sizeof dir, "%s/clip", eng_test_data_dir());
    snprintf(f, sizeof f, "%s/vocab.json", dir);
    return access(f, R_OK) == 0 ? dir : NULL;
}

static int make(const char *name,
                const wt_sd_config *cfg,
                wt_format fmt,
                eng_dtype dt,
                char *path,
                size_t cap) {
    eng_err err = {0};
    wt_make_params p = {0};
    tmp_path(path, cap, name);
    p.config = *cfg;
    p.format = fmt;
    p.dtype = dt;
    p.seed = eng_test_seed();
    p.path = path;
    p.tokenizer_dir = fmt == WT_FORMAT_DIFFUSERS ? vocab_dir() : NULL;
    CHECK_OK(wt_make_checkpoint(&p, &err), &err);
    return 0;
}

static int same_arch(const wt_sd_config *a, const wt_sd_config *b) {
    CHECK_EQ_I64(a->family, b->family);
    CHECK(memcmp(&a->unet, &b->unet, sizeof a->unet) == 0);
    CHECK(memcmp(&a->vae, &b->vae, sizeof a->vae) == 0);
    CHECK_EQ_I64(a->text.hidden, b->text.hidden);
    CHECK_EQ_I64(a->text.layers, b->text.layers);
    CHECK_EQ_I64(a->text.heads, b->text.heads);
    CHECK_EQ_I64(a->text.intermediate, b->text.intermediate);
    CHECK_EQ_I64(a->text.vocab, b->text.vocab);
    CHECK_EQ_I64(a->text.max_positions, b->text.max_positions);
    CHECK_EQ_I64(a->text.quick_gelu, b->text.quick_gelu);
    return 0;
}

static float round_to(eng_dtype dt, float v) {
    if (dt == ENG_DTYPE_F16) return eng_f16_to_f32(eng_f32_to_f16(v));
    if (dt == ENG_DTYPE_BF16) return eng_bf16_to_f32(eng_f32_to_bf16(v));
    return v;
}

/* Every canonical tensor loads as f32 equal to what was written, rounded to the file dtype. */
static int check_values(const wt_model *m, eng_dtype file_dt, eng_alloc *a) {
    eng_err err = {0};
    const wt_plan *p = wt_model_plan(m);
    int64_t checked = 0;
    for (int64_t i = 0; i < wt_plan_count(p); i++) {
        const wt_plan_entry *e = wt_plan_at(p, i);
        if (e->name == NULL) continue;
        eng_tensor t;
        CHECK_OK(wt_model_load_tensor(m, e->name, a, ENG_DTYPE_F32, 0, &t, &err), &err);
        const float *x = t.data;
        for (int64_t j = 0; j < eng_tensor_numel(&t); j++) {
            const float want = round_to(file_dt, wt_init_value(e, eng_test_seed(), j));
            if (x[j] != want) {
                fprintf(stderr, "%s[%lld]: loaded %g, written %g\n", e->name, (long long)j,
                        (double)x[j], (double)want);
                return 1;
            }
        }
        eng_tensor_free(a, &t);
        checked++;
    }
    CHECK(checked > 300);
    return 0;
}

static int roundtrip(wt_format fmt, eng_dtype dt, const char *name) {
    wt_sd_config cfg;
    eng_err err = {0};
    char path[2048];
    wt_model *m = NULL;
    eng_alloc *a = NULL;
    eng_alloc_params ap;
    eng_alloc_params_init(&ap);
    CHECK_OK(eng_alloc_create(&a, &ap, &err), &err);
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make(name, &cfg, fmt, dt, path, sizeof path)) return 1;
    CHECK_OK(wt_model_open(&m, path, &err), &err);
    CHECK_EQ_I64(wt_model_format(m), fmt);
    if (same_arch(wt_model_config(m), &cfg)) return 1;
    if (check_values(m, dt, a)) return 1;
    eng_alloc_stats st;
    eng_alloc_get_stats(a, &st);
    CHECK_EQ_I64(st.in_use[ENG_LIFE_WEIGHTS], 0);
    wt_model_close(m);
    eng_alloc_destroy(a);
    return 0;
}

static int test_roundtrip_ldm_f16(void) {
    return roundtrip(WT_FORMAT_LDM, ENG_DTYPE_F16, "tiny16.safetensors");
}
static int test_roundtrip_ldm_f32(void) {
    return roundtrip(WT_FORMAT_LDM, ENG_DTYPE_F32, "tiny32.safetensors");
}
static int test_roundtrip_diffusers_f16(void) {
    return roundtrip(WT_FORMAT_DIFFUSERS, ENG_DTYPE_F16, "tiny16_diffusers");
}
static int test_roundtrip_diffusers_f32(void) {
    if (roundtrip(WT_FORMAT_DIFFUSERS, ENG_DTYPE_F32, "tiny32_diffusers")) return 1;
    char f[4096];
    tmp_path(f, sizeof f, "tiny32_diffusers/scheduler/scheduler_config.json");
    CHECK(access(f, R_OK) == 0);
    tmp_path(f, sizeof f, "tiny32_diffusers/unet/config.json");
    CHECK(access(f, R_OK) == 0);
    if (vocab_dir() != NULL) {
        tmp_path(f, sizeof f, "tiny32_diffusers/tokenizer/merges.txt");
        CHECK(access(f, R_OK) == 0);
    }
    return 0;
}

/* The same seed gives the same canonical tensors in both formats. */
static int formats_agree(const wt_sd_config *cfg, const char *tag) {
    eng_err err = {0};
    char p1[2048], p2[2048], n1[64], n2[64];
    wt_model *a = NULL, *b = NULL;
    snprintf(n1, sizeof n1, "%s.safetensors", tag);
    snprintf(n2, sizeof n2, "%s_diffusers", tag);
    if (make(n1, cfg, WT_FORMAT_LDM, ENG_DTYPE_F32, p1, sizeof p1)) return 1;
    if (make(n2, cfg, WT_FORMAT_DIFFUSERS, ENG_DTYPE_F32, p2, sizeof p2)) return 1;
    CHECK_OK(wt_model_open(&a, p1, &err), &err);
    CHECK_OK(wt_model_open(&b, p2, &err), &err);
    const wt_plan *pa = wt_model_plan(a);
    int64_t n = 0;
    for (int64_t i = 0; i < wt_plan_count(pa); i++) {
        const wt_plan_entry *e = wt_plan_at(pa, i);
        if (e->name == NULL) continue;
        wt_tensor_info ia, ib;
        CHECK_OK(wt_model_tensor(a, e->name, &ia, &err), &err);
        CHECK_OK(wt_model_tensor(b, e->name, &ib, &err), &err);
        float *x = malloc((size_t)ib.file->numel * 4), *y = malloc((size_t)ib.file->numel * 4);
        eng_tensor tx, ty;
        CHECK_OK(eng_tensor_init(&tx, x, ENG_DTYPE_F32, ENG_DEVICE_CPU, e->ndim, e->shape, &err),
                 &err);
        CHECK_OK(eng_tensor_init(&ty, y, ENG_DTYPE_F32, ENG_DEVICE_CPU, e->ndim, e->shape, &err),
                 &err);
        CHECK_OK(wt_model_read_tensor(a, e->name, 0, &tx, &err), &err);
        CHECK_OK(wt_model_read_tensor(b, e->name, 0, &ty, &err), &err);
        if (memcmp(x, y, (size_t)ib.file->numel * 4) != 0) {
            fprintf(stderr, "%s differs between the formats\n", e->name);
            return 1;
        }
        free(x), free(y);
        n++;
    }
    CHECK_EQ_I64(n, wt_plan_count(wt_model_plan(b)));
    wt_model_close(a);
    wt_model_close(b);
    return 0;
}

static int test_formats_agree(void) {
    wt_sd_config cfg;
    eng_err err = {0};
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    return formats_agree(&cfg, "agree");
}

/* A tiny SD2-style model: OpenCLIP text (fused in_proj, one extra resblock), linear proj. */
static int test_openclip_fused(void) {
    wt_sd_config cfg;
    eng_err err = {0};
    char path[2048];
    wt_model *m = NULL;
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    cfg.family = WT_FAMILY_SD2;
    cfg.unet.linear_proj = 1;
    cfg.text.kind = WT_TEXT_OPENCLIP;
    cfg.text.file_layers = cfg.text.layers + 1;
    cfg.text.proj_dim = 32;
    cfg.text.quick_gelu = 0;
    if (formats_agree(&cfg, "open")) return 1;
    tmp_path(path, sizeof path, "open.safetensors");
    CHECK_OK(wt_model_open(&m, path, &err), &err);
    const wt_sd_config *got = wt_model_config(m);
    CHECK_EQ_I64(got->text.kind, WT_TEXT_OPENCLIP);
    CHECK_EQ_I64(got->text.file_layers, 3);
    CHECK_EQ_I64(got->text.proj_dim, 32);
    if (same_arch(got, &cfg)) return 1;
    wt_tensor_info info;
    CHECK_OK(wt_model_tensor(m, "text_encoder.text_model.encoder.layers.1.self_attn.k_proj.bias",
                             &info, &err),
             &err);
    CHECK(strcmp(info.file->name,
                 "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_bias") == 0);
    CHECK_EQ_I64(info.entry->slice_index, 1);
    wt_model_close(m);
    return 0;
}

static int test_load_ohwi(void) {
    wt_sd_config cfg;
    eng_err err = {0};
    char path[2048];
    wt_model *m = NULL;
    eng_alloc *a = NULL;
    eng_alloc_params ap;
    eng_alloc_params_init(&ap);
    CHECK_OK(eng_alloc_create(&a, &ap, &err), &err);
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make("ohwi.safetensors", &cfg, WT_FORMAT_LDM, ENG_DTYPE_F32, path, sizeof path)) return 1;
    CHECK_OK(wt_model_open(&m, path, &err), &err);
    eng_tensor oihw, ohwi;
    const char *name = "unet.down_blocks.0.resnets.0.conv1.weight";
    CHECK_OK(wt_model_load_tensor(m, name, a, ENG_DTYPE_F32, 0, &oihw, &err), &err);
    CHECK_OK(wt_model_load_tensor(m, name, a, ENG_DTYPE_F32, WT_LOAD_OHWI, &ohwi, &err), &err);
    CHECK_EQ_I64(ohwi.shape[0], 32);
    CHECK_EQ_I64(ohwi.shape[1], 3);
    CHECK_EQ_I64(ohwi.shape[3], 32);
    const float *x = oihw.data, *y = ohwi.data;
    for (int64_t o = 0; o < 32; o++)
        for (int64_t i = 0; i < 32; i++)
            for (int64_t h = 0; h < 3; h++)
                for (int64_t w = 0; w < 3; w++)
                    CHECK(x[((o * 32 + i) * 3 + h) * 3 + w] == y[((o * 3 + h) * 3 + w) * 32 + i]);
    /* a 2-D tensor is unchanged by the flag; the VAE attention loads as (C, C) from (C, C, 1, 1) */
    eng_tensor q;
    CHECK_OK(wt_model_load_tensor(m, "vae.decoder.mid_block.attentions.0.to_q.weight", a,
                                  ENG_DTYPE_F32, WT_LOAD_OHWI, &q, &err),
             &err);
    CHECK_EQ_I64(q.ndim, 2);
    CHECK_EQ_I64(q.shape[1], 64);
    eng_tensor_free(a, &q);
    eng_tensor_free(a, &oihw);
    eng_tensor_free(a, &ohwi);
    wt_model_close(m);
    eng_alloc_destroy(a);
    return 0;
}

static int test_load_dtypes(void) {
    wt_sd_config cfg;
    eng_err err = {0};
    char path[2048];
    wt_model *m = NULL;
    eng_alloc *a = NULL;
    eng_alloc_params ap;
    eng_alloc_params_init(&ap);
    CHECK_OK(eng_alloc_create(&a, &ap, &err), &err);
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make("bf16.safetensors", &cfg, WT_FORMAT_LDM, ENG_DTYPE_BF16, path, sizeof path)) return 1;
    CHECK_OK(wt_model_open(&m, path, &err), &err);
    const char *name = "unet.conv_in.weight";
    wt_tensor_info info;
    CHECK_OK(wt_model_tensor(m, name, &info, &err), &err);
    CHECK(info.file->dtype == ENG_SAFETENSORS_BF16);
    eng_tensor h, b;
    CHECK_OK(wt_model_load_tensor(m, name, a, ENG_DTYPE_F16, 0, &h, &err), &err);
    CHECK_OK(wt_model_load_tensor(m, name, a, ENG_DTYPE_BF16, 0, &b, &err), &err);
    for (int64_t j = 0; j < eng_tensor_numel(&h); j++) {
        const float v = round_to(ENG_DTYPE_BF16, wt_init_value(info.entry, eng_test_seed(), j));
        CHECK(eng_bf16_to_f32(((eng_bf16 *)b.data)[j]) == v);
        CHECK(eng_f16_to_f32(((eng_f16 *)h.data)[j]) == round_to(ENG_DTYPE_F16, v));
    }
    eng_tensor i8;
    CHECK(wt_model_load_tensor(m, name, a, ENG_DTYPE_I8, 0, &i8, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "i8");
    CHECK(wt_model_tensor(m, "unet.no.such", &info, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "unet.no.such");
    eng_tensor_free(a, &h);
    eng_tensor_free(a, &b);
    wt_model_close(m);
    eng_alloc_destroy(a);
    return 0;
}

/* ---- detection on full-size headers: sparse files (the data buffer is a hole) ----------------- */
static int write_sparse(const char *path, const wt_plan *p, int comp) {
    size_t cap = 1 << 20, len = 0;
    char *h = malloc(cap);
    uint64_t off = 0;
    len += (size_t)snprintf(h, cap, "{");
    for (int64_t i = 0; i < wt_plan_count(p); i++) {
        const wt_plan_entry *e = wt_plan_at(p, i);
        if (comp >= 0 && (int)e->component != comp) continue;
        if (e->slice_rows > 0 && e->slice_index > 0) continue;
        int64_t n = 1;
        for (int d = 0; d < e->file_ndim; d++)
            n *= e->file_shape[d];
        const uint64_t bytes = (uint64_t)n * (e->file_i64 ? 8 : 2);
        if (cap - len < 512) h = realloc(h, cap *= 2);
        len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                len > 1 ? "," : "", e->file_name, e->file_i64 ? "I64" : "F16");
        for (int d = 0; d < e->file_ndim; d++)
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "",
                                    (long long)e->file_shape[d]);
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%llu,%llu]}",
                                (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    const uint64_t n = len;
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(n >> (8 * i));
    CHECK(fwrite(le, 1, 8, f) == 8 && fwrite(h, 1, len, f) == len);
    /* the data: a hole up to the last byte (fseek takes a long: 64 bits on the test machines) */
    if (off > 0) CHECK(fseek(f, (long)(8 + len + off - 1), SEEK_SET) == 0 && fputc(0, f) == 0);
    CHECK(fclose(f) == 0);
    free(h);
    return 0;
}

static int detect(const char *arch) {
    wt_sd_config cfg;
    eng_err err = {0};
    char path[2048], sub[4096], name[256];
    for (int fmt = 0; fmt < WT_FORMAT_COUNT; fmt++) {
        wt_plan *p = NULL;
        wt_model *m = NULL;
        CHECK_OK(wt_sd_config_preset(&cfg, arch, &err), &err);
        CHECK_OK(wt_plan_create(&p, &cfg, (wt_format)fmt, &err), &err);
        if (fmt == WT_FORMAT_LDM) {
            snprintf(name, sizeof name, "%s_sparse.safetensors", arch);
            tmp_path(path, sizeof path, name);
            if (write_sparse(path, p, -1)) return 1;
        } else {
            snprintf(name, sizeof name, "%s_sparse", arch);
            tmp_path(path, sizeof path, name);
            mkdir(path, 0755);
            snprintf(sub, sizeof sub, "%s/model_index.json", path);
            FILE *f = fopen(sub, "w");
            CHECK(f != NULL && fputs("{}\n", f) >= 0 && fclose(f) == 0);
            for (int c = 0; c < WT_COMPONENT_COUNT; c++) {
                snprintf(sub, sizeof sub, "%s/%s", path, wt_component_name((wt_component)c));
                mkdir(sub, 0755);
                snprintf(sub, sizeof sub, "%s/%s/%s", path, wt_component_name((wt_component)c),
                         c == WT_TEXT_ENCODER ? "model.fp16.safetensors"
                                              : "diffusion_pytorch_model.fp16.safetensors");
                if (write_sparse(sub, p, c)) return 1;
            }
        }
        CHECK_OK(wt_model_open(&m, path, &err), &err);
        const wt_sd_config *got = wt_model_config(m);
        if (fmt == WT_FORMAT_DIFFUSERS && cfg.text.kind == WT_TEXT_OPENCLIP) {
            /* diffusers holds OpenCLIP in CLIP names: 23 layers, no projection */
            cfg.text.kind = WT_TEXT_CLIP, cfg.text.file_layers = cfg.text.layers;
            cfg.text.proj_dim = 0;
        }
        if (same_arch(got, &cfg)) return 1;
        CHECK_EQ_I64(got->text.kind, cfg.text.kind);
        CHECK_EQ_I64(got->text.file_layers, cfg.text.file_layers);
        CHECK_EQ_I64(got->text.proj_dim, cfg.text.proj_dim);
        CHECK_EQ_I64(wt_plan_params(wt_model_plan(m), WT_UNET), wt_plan_params(p, WT_UNET));
        wt_model_close(m);
        wt_plan_destroy(p);
    }
    return 0;
}

static int test_detect_sd15(void) {
    return detect("sd15");
}
static int test_detect_sd21(void) {
    return detect("sd21");
}

/* ---- bad input -------------------------------------------------------------------------------- */
static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL && fwrite(data, 1, n, f) == n && fclose(f) == 0);
    return 0;
}

static int test_ckpt_refused(void) {
    char path[2048];
    eng_err err = {0};
    wt_model *m = NULL;
    tmp_path(path, sizeof path, "model.ckpt");
    if (write_bytes(path, "\x80\x02}q\x00.", 6)) return 1;
    CHECK(wt_model_open(&m, path, &err) == ENG_E_UNSUPPORTED);
    CHECK(m == NULL);
    CHECK_CONTAINS(err.msg, "pickle checkpoints are not loaded");
    CHECK_CONTAINS(err.msg, "convert to .safetensors");
    return 0;
}

static int test_zip_magic_refused(void) {
    char path[2048];
    eng_err err = {0};
    wt_model *m = NULL;
    tmp_path(path, sizeof path, "renamed.safetensors");
    if (write_bytes(path, "PK\x03\x04rest-of-a-zip", 18)) return 1;
    CHECK(wt_model_open(&m, path, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "pickle");
    return 0;
}

/* Rewrites the tiny ldm file without `drop`, with `reshape` given shape `shape`, and with the
 * metadata `meta` (n_meta pairs; meta NULL: the file's wt.unet_heads and wt.text_heads). */
static int rewrite(const char *dst,
                   const char *drop,
                   const char *reshape,
                   const int64_t *shape,
                   int ndim,
                   const eng_safetensors_kv *meta,
                   int64_t n_meta) {
    wt_sd_config cfg;
    eng_err err = {0};
    char src[2048];
    eng_safetensors *f = NULL;
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make("src.safetensors", &cfg, WT_FORMAT_LDM, ENG_DTYPE_F32, src, sizeof src)) return 1;
    CHECK_OK(eng_safetensors_open(&f, src, &err), &err);
    const int64_t n = eng_safetensors_count(f);
    eng_safetensors_entry *e = calloc((size_t)n, sizeof *e);
    float *zeros = calloc(1 << 16, sizeof *zeros);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        const eng_safetensors_info *t = eng_safetensors_info_at(f, i);
        if (drop != NULL && strcmp(t->name, drop) == 0) continue;
        e[k] = (eng_safetensors_entry){t->name, NULL, t->dtype, t->ndim, t->shape, t->data};
        if (reshape != NULL && strcmp(t->name, reshape) == 0) {
            e[k].ndim = ndim, e[k].shape = shape, e[k].data = zeros;
        }
        k++;
    }
    const eng_safetensors_kv file_meta[2] = {
        {"wt.unet_heads", eng_safetensors_metadata_get(f, "wt.unet_heads")},
        {"wt.text_heads", eng_safetensors_metadata_get(f, "wt.text_heads")}};
    CHECK_OK(eng_safetensors_write(dst, e, k, meta != NULL ? meta : file_meta,
                                   meta != NULL ? n_meta : 2, &err),
             &err);
    free(e);
    free(zeros);
    eng_safetensors_close(f);
    return 0;
}

static int test_missing_tensor(void) {
    char path[2048];
    eng_err err = {0};
    wt_model *m = NULL;
    tmp_path(path, sizeof path, "missing.safetensors");
    if (rewrite(path, "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_v.weight",
                NULL, NULL, 0, NULL, 0))
        return 1;
    CHECK(wt_model_open(&m, path, &err) == ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "\"model.diffusion_model.middle_block.1.transformer_blocks.0.attn2."
                            "to_v.weight\"");
    CHECK_CONTAINS(err.msg, "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_v.weight");
    CHECK_CONTAINS(err.msg, "missing; expected shape [64, 32]");
    return 0;
}

static int test_wrong_shape(void) {
    char path[2048];
    eng_err err = {0};
    wt_model *m = NULL;
    const int64_t shape[4] = {64, 64, 3, 1};
    tmp_path(path, sizeof path, "misshaped.safetensors");
    if (rewrite(path, NULL, "model.diffusion_model.middle_block.0.in_layers.2.weight", shape, 4,
                NULL, 0))
        return 1;
    CHECK(wt_model_open(&m, path, &err) == ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "\"model.diffusion_model.middle_block.0.in_layers.2.weight\"");
    CHECK_CONTAINS(err.msg, "has shape [64, 64, 3, 1]");
    CHECK_CONTAINS(err.msg, "expects [64, 64, 3, 3]");
    return 0;
}

static int test_read_wrong_shape(void) {
    wt_sd_config cfg;
    eng_err err = {0};
    char path[2048];
    wt_model *m = NULL;
    float buf[64];
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make("readshape.safetensors", &cfg, WT_FORMAT_LDM, ENG_DTYPE_F16, path, sizeof path))
        return 1;
    CHECK_OK(wt_model_open(&m, path, &err), &err);
    eng_tensor t;
    const int64_t shape[1] = {33};
    CHECK_OK(eng_tensor_init(&t, buf, ENG_DTYPE_F32, ENG_DEVICE_CPU, 1, shape, &err), &err);
    CHECK(wt_model_read_tensor(m, "unet.conv_in.bias", 0, &t, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "unet.conv_in.bias");
    CHECK_CONTAINS(err.msg, "[33]");
    CHECK_CONTAINS(err.msg, "expected [32]");
    wt_model_close(m);
    return 0;
}

static int test_diffusers_no_unet(void) {
    wt_sd_config cfg;
    eng_err err = {0};
    char path[2048], a[4096], b[4096];
    wt_model *m = NULL;
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make("nounet", &cfg, WT_FORMAT_DIFFUSERS, ENG_DTYPE_F16, path, sizeof path)) return 1;
    snprintf(a, sizeof a, "%s/unet", path);
    snprintf(b, sizeof b, "%s/unet.moved", path);
    CHECK(rename(a, b) == 0);
    CHECK(wt_model_open(&m, path, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "no unet/");
    return 0;
}

static int test_corrupt_model_index(void) {
    wt_sd_config cfg;
    eng_err err = {0};
    char path[2048], idx[4096];
    wt_model *m = NULL;
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make("badindex", &cfg, WT_FORMAT_DIFFUSERS, ENG_DTYPE_F16, path, sizeof path)) return 1;
    snprintf(idx, sizeof idx, "%s/model_index.json", path);
    if (write_bytes(idx, "{\"unet\": [\"diffusers\",", 22)) return 1;
    CHECK(wt_model_open(&m, path, &err) == ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "model_index.json");
    CHECK_CONTAINS(err.msg, "not a JSON object");
    return 0;
}

static int test_unknown_file_type(void) {
    char path[2048];
    eng_err err = {0};
    wt_model *m = NULL;
    tmp_path(path, sizeof path, "notes.txt");
    if (write_bytes(path, "hello, world\n", 13)) return 1;
    CHECK(wt_model_open(&m, path, &err) == ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "unknown checkpoint type");
    tmp_path(path, sizeof path, "no-such-model");
    CHECK(wt_model_open(&m, path, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "no-such-model");
    CHECK(wt_model_open(&m, eng_test_tmpdir(), &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "model_index.json");
    return 0;
}

/* ---- what config files and metadata say (regressions found by tests/fuzz/fuzz_wt_model.c) ---- */
/* Writes `json` as `file` in the diffusers folder `dir`, then opens the folder. */
static int reopen(const char *dir, const char *file, const char *json, wt_model **m, eng_err *err) {
    char f[4096];
    FILE *fp;
    snprintf(f, sizeof f, "%s/%s", dir, file);
    fp = fopen(f, "wb");
    if (fp == NULL || fputs(json, fp) < 0 || fclose(fp) != 0) return -1000;
    *m = NULL;
    return wt_model_open(m, dir, err);
}

/* Head counts that are not positive integers were truncated ((int)2.5 == 2), cast with undefined
 * behaviour (1e10), or silently replaced by the rules (0, "2", [2, 0]); now each is an error
 * naming the file, the key and the value. null still means absent. */
static int test_config_heads_malformed(void) {
    static const struct {
        const char *file, *json, *msg;
    } bad[] = {
        {"unet/config.json", "{\"attention_head_dim\": 2.5}", "\"attention_head_dim\" is 2.5;"},
        {"unet/config.json", "{\"attention_head_dim\": 1e10}", "is 10000000000;"},
        {"unet/config.json", "{\"attention_head_dim\": 1e999}", "is inf;"},
        {"unet/config.json", "{\"attention_head_dim\": \"2\"}", "is a string;"},
        {"unet/config.json", "{\"attention_head_dim\": [2, 0]}", "entry 1 is 0;"},
        {"unet/config.json", "{\"attention_head_dim\": [2, true]}", "entry 1 is a boolean;"},
        {"unet/config.json", "{\"attention_head_dim\": []}", "is an empty list;"},
        {"unet/config.json", "{\"attention_head_dim\": [2]}",
         "lists 1 attention head counts but the UNet has 2 levels"},
        {"unet/config.json", "{\"attention_head_dim\": [2, 2, 2]}", "lists 3 attention"},
        {"unet/config.json", "{\"num_attention_heads\": -2, \"attention_head_dim\": 2}",
         "\"num_attention_heads\" is -2;"},
        {"text_encoder/config.json", "{\"num_attention_heads\": 0}",
         "\"num_attention_heads\" is 0;"},
        {"text_encoder/config.json", "{\"num_attention_heads\": [2]}", "is a list;"},
    };
    wt_sd_config cfg;
    eng_err err = {0};
    char dir[2048];
    wt_model *m = NULL;
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make("cfgheads", &cfg, WT_FORMAT_DIFFUSERS, ENG_DTYPE_F16, dir, sizeof dir)) return 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const int rc = reopen(dir, bad[i].file, bad[i].json, &m, &err);
        if (rc != ENG_E_FORMAT)
            fprintf(stderr, "%s: %s: rc %d (%s)\n", bad[i].file, bad[i].json, rc, err.msg);
        CHECK(rc == ENG_E_FORMAT);
        CHECK(m == NULL);
        CHECK_CONTAINS(err.msg, bad[i].file);
        CHECK_CONTAINS(err.msg, bad[i].msg);
        if (strcmp(bad[i].file, "unet/config.json") != 0) continue;
        CHECK_OK(reopen(dir, bad[i].file, "{}", &m, &err), &err); /* rules: 8 heads (SD1) */
        wt_model_close(m);
    }
    CHECK_OK(reopen(dir, "text_encoder/config.json", "{\"num_attention_heads\": 4}", &m, &err),
             &err);
    CHECK_EQ_I64(wt_model_config(m)->text.heads, 4);
    wt_model_close(m);
    /* null is absent: the list after it counts, one entry per level */
    CHECK_OK(reopen(dir, "unet/config.json",
                    "{\"num_attention_heads\": null, \"attention_head_dim\": [2, 4]}", &m, &err),
             &err);
    CHECK_EQ_I64(wt_model_config(m)->unet.heads[0], 2);
    CHECK_EQ_I64(wt_model_config(m)->unet.heads[1], 4);
    CHECK_EQ_I64(wt_model_config(m)->unet.heads[2], 0);
    wt_model_close(m);
    return 0;
}

/* Any hidden_act other than quick_gelu used to mean GELU; one we do not implement is refused. */
static int test_config_hidden_act(void) {
    wt_sd_config cfg;
    eng_err err = {0};
    char dir[2048];
    wt_model *m = NULL;
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make("cfgact", &cfg, WT_FORMAT_DIFFUSERS, ENG_DTYPE_F16, dir, sizeof dir)) return 1;
    CHECK(reopen(dir, "text_encoder/config.json", "{\"hidden_act\": \"gelu_pytorch_tanh\"}", &m,
                 &err) == ENG_E_UNSUPPORTED);
    CHECK(m == NULL);
    CHECK_CONTAINS(err.msg, "text_encoder/config.json: hidden_act \"gelu_pytorch_tanh\" is not "
                            "supported");
    CHECK(reopen(dir, "text_encoder/config.json", "{\"hidden_act\": 1}", &m, &err) == ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "\"hidden_act\" is 1; expected a string");
    CHECK_OK(reopen(dir, "text_encoder/config.json", "{\"hidden_act\": \"gelu\"}", &m, &err), &err);
    CHECK_EQ_I64(wt_model_config(m)->text.quick_gelu, 0);
    CHECK_EQ_I64(wt_model_config(m)->family, WT_FAMILY_SD2);
    wt_model_close(m);
    CHECK_OK(reopen(dir, "text_encoder/config.json", "{\"hidden_act\": null}", &m, &err), &err);
    CHECK_EQ_I64(wt_model_config(m)->text.quick_gelu, 1);
    wt_model_close(m);
    return 0;
}

/* A prediction type longer than the config field was cut to fit; other types were ignored. */
static int test_config_prediction_type(void) {
    wt_sd_config cfg;
    eng_err err = {0};
    char dir[2048];
    wt_model *m = NULL;
    const char *sched = "scheduler/scheduler_config.json";
    CHECK_OK(wt_sd_config_preset(&cfg, "tiny", &err), &err);
    if (make("cfgpred", &cfg, WT_FORMAT_DIFFUSERS, ENG_DTYPE_F16, dir, sizeof dir)) return 1;
    CHECK(reopen(dir, sched, "{\"prediction_type\": \"v_prediction_with_a_long_suffix\"}", &m,
                 &err) == ENG_E_FORMAT);
    CHECK(m == NULL);
    CHECK_CONTAINS(err.msg,
                   "scheduler_config.json: prediction_type \"v_prediction_with_a_long_suffix");
    CHECK_CONTAINS(err.msg, "too long");
    CHECK(reopen(dir, sched, "{\"prediction_type\": [\"epsilon\"]}", &m, &err) == ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "\"prediction_type\" is a list; expected a string");
    CHECK_OK(reopen(dir, sched, "{\"prediction_type\": \"v_prediction\"}", &m, &err), &err);
    CHECK(strcmp(wt_model_config(m)->prediction_type, "v_prediction") == 0);
    wt_model_close(m);
    return 0;
}

/* The ldm metadata head counts went through atoi: "2_heads" read as 2, "4294967298" as 2 (glibc
 * truncates the long), "" and "0" as "no override". Now only decimal positive integers pass. */
static int test_ldm_metadata_heads(void) {
    static const struct {
        const char *unet, *text, *msg;
    } bad[] = {
        {"2", "2_heads", "metadata \"wt.text_heads\" is \"2_heads\""},
        {"4294967298", "2", "metadata \"wt.unet_heads\" is \"4294967298\""},
        {"", "2", "metadata \"wt.unet_heads\" is \"\""},
        {"2", "0", "metadata \"wt.text_heads\" is \"0\""},
        {" 2", "2", "metadata \"wt.unet_heads\" is \" 2\""},
    };
    eng_err err = {0};
    char path[2048];
    wt_model *m = NULL;
    tmp_path(path, sizeof path, "meta.safetensors");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const eng_safetensors_kv meta[2] = {{"wt.unet_heads", bad[i].unet},
                                            {"wt.text_heads", bad[i].text}};
        if (rewrite(path, NULL, NULL, NULL, 0, meta, 2)) return 1;
        CHECK(wt_model_open(&m, path, &err) == ENG_E_FORMAT);
        CHECK(m == NULL);
        CHECK_CONTAINS(err.msg, bad[i].msg);
        CHECK_CONTAINS(err.msg, "expected a positive integer");
    }
    const eng_safetensors_kv meta[2] = {{"wt.unet_heads", "4"}, {"wt.text_heads", "1"}};
    if (rewrite(path, NULL, NULL, NULL, 0, meta, 2)) return 1;
    CHECK_OK(wt_model_open(&m, path, &err), &err);
    CHECK_EQ_I64(wt_model_config(m)->unet.heads[0], 4);
    CHECK_EQ_I64(wt_model_config(m)->unet.heads[1], 4);
    CHECK_EQ_I64(wt_model_config(m)->text.heads, 1);
    wt_model_close(m);
    /* no metadata: the SD1 rules (8 UNet heads, hidden / 64 text heads, at least 1) */
    if (rewrite(path, NULL, NULL, NULL, 0, meta, 0)) return 1;
    CHECK_OK(wt_model_open(&m, path, &err), &err);
    CHECK_EQ_I64(wt_model_config(m)->unet.heads[0], 8);
    CHECK_EQ_I64(wt_model_config(m)->text.heads, 1);
    wt_model_close(m);
    return 0;
}

static const eng_test_case cases[] = {
    {"roundtrip_ldm_f16", test_roundtrip_ldm_f16},
    {"roundtrip_ldm_f32", test_roundtrip_ldm_f32},
    {"roundtrip_diffusers_f16", test_roundtrip_diffusers_f16},
    {"roundtrip_diffusers_f32", test_roundtrip_diffusers_f32},
    {"formats_agree", test_formats_agree},
    {"openclip_fused", test_openclip_fused},
    {"load_ohwi", test_load_ohwi},
    {"load_dtypes", test_load_dtypes},
    {"detect_sd15", test_detect_sd15},
    {"detect_sd21", test_detect_sd21},
    {"ckpt_refused", test_ckpt_refused},
    {"zip_magic_refused", test_zip_magic_refused},
    {"missing_tensor", test_missing_tensor},
    {"wrong_shape", test_wrong_shape},
    {"read_wrong_shape", test_read_wrong_shape},
    {"diffusers_no_unet", test_diffusers_no_unet},
    {"corrupt_model_index", test_corrupt_model_index},
    {"unknown_file_type", test_unknown_file_type},
    {"config_heads_malformed", test_config_heads_malformed},
    {"config_hidden_act", test_config_hidden_act},
    {"config_prediction_type", test_config_prediction_type},
    {"ldm_metadata_heads", test_ldm_metadata_heads},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
