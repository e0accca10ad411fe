/* test_sd_clip.c: the CLIP text encoder (diffusion/sd_clip.h) against transformers'
 * CLIPTextModel on the tiny random checkpoint (goldens: tests/gen_sd_clip_goldens.py), clip skip,
 * the ldm file giving the same result, nonzero biases and LayerNorm affines, and bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "sd_clip.h"
#include "wt.h"

#define GOLDEN_SEED 7u /* the golden script's SEED */
#define MAX_B       2
#define MAX_L       77
#define MAX_C       32
/* f32 on both sides; the reference uses another summation order (GEMM, softmax, LayerNorm) */
#define ATOL 1e-4

typedef struct golden {
    int64_t b, l, c;
    int32_t ids[MAX_B * MAX_L];
    /* plain clip_skip 1, plain clip_skip 2, affine clip_skip 1, affine with GELU clip_skip 1
     * (see the golden script) */
    float set[4][MAX_B * MAX_L * MAX_C];
} golden;

static golden g_golden;

static int golden_load(golden *g) {
    char path[1024];
    int ok = 0;
    snprintf(path, sizeof path, "%s/golden/sd_clip_tiny.txt", ENG_TEST_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s (regenerate with tests/gen_sd_clip_goldens.py)\n", path);
        return 1;
    }
    unsigned seed = 0;
    long long b = 0, l = 0, c = 0;
    if (fscanf(f, " seed %u batch %lld len %lld hidden %lld", &seed, &b, &l, &c) != 4 ||
        seed != GOLDEN_SEED || b < 1 || b > MAX_B || l < 1 || l > MAX_L || c < 1 || c > MAX_C)
        goto done;
    g->b = b, g->l = l, g->c = c;
    for (int64_t i = 0; i < b; i++) {
        int bi = -1;
        if (fscanf(f, " ids %d", &bi) != 1 || bi != i) goto done;
        for (int64_t j = 0; j < l; j++)
            if (fscanf(f, " %d", &g->ids[i * l + j]) != 1) goto done;
    }
    static const char *const want_w[4] = {"plain", "plain", "affine", "affine_gelu"};
    static const int want_k[4] = {1, 2, 1, 1};
    for (int k = 0; k < 4; k++) {
        char w[16] = {0};
        int skip = 0;
        long long count = 0;
        if (fscanf(f, " weights %15s clip_skip %d count %lld", w, &skip, &count) != 3 ||
            strcmp(w, want_w[k]) != 0 || skip != want_k[k] || count != b * l * c)
            goto done;
        for (long long i = 0; i < count; i++)
            if (fscanf(f, " %f", &g->set[k][i]) != 1) goto done;
    }
    char word[8] = {0};
    ok = fscanf(f, " %7s", word) == 1 && strcmp(word, "end") == 0;
done:
    fclose(f);
    if (!ok) fprintf(stderr, "%s: malformed golden\n", path);
    return ok ? 0 : 1;
}

/* The tiny checkpoint of the golden script, written in `fmt` into the test's tmpdir;
 * quick_gelu 0 selects GELU (OpenCLIP's activation; diffusers config.json hidden_act "gelu"). */
static int make_tiny(char *path, size_t n, wt_format fmt, int quick_gelu) {
    eng_err err = {0};
    wt_make_params p = {0};
    CHECK_OK(wt_sd_config_preset(&p.config, "tiny", &err), &err);
    p.config.text.quick_gelu = quick_gelu;
    snprintf(path, n, "%s/clip_tiny_%s_%s%s", eng_test_tmpdir(), wt_format_name(fmt),
             quick_gelu ? "quick_gelu" : "gelu", fmt == WT_FORMAT_LDM ? ".safetensors" : "");
    p.format = fmt;
    p.dtype = ENG_DTYPE_F32;
    p.seed = GOLDEN_SEED;
    p.path = path;
    CHECK_OK(wt_make_checkpoint(&p, &err), &err);
    return 0;
}

/* The golden script's affine_formula: element i of the 1-D tensor `name`. */
static float affine_formula(const char *name, int64_t i) {
    unsigned h = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h += *p;
    h %= 97u;
    const size_t n = strlen(name);
    const double base = n >= 7 && strcmp(name + n - 7, ".weight") == 0 ? 1.0 : 0.0;
    return (float)(base + (double)((int)((13 * i + h) % 17) - 8) / 64.0);
}

/* Overwrites every 1-D f32 tensor of DIR/text_encoder/model.safetensors (biases, LayerNorm
 * parameters) with affine_formula, in place. */
static int patch_affine(const char *dir) {
    enum { MAXT = 64 };
    eng_err err = {0};
    char file[1200];
    char names[MAXT][WT_MAX_NAME];
    uint64_t offs[MAXT];
    int64_t nums[MAXT];
    int n = 0;
    eng_safetensors *st = NULL;
    snprintf(file, sizeof file, "%s/text_encoder/model.safetensors", dir);
    CHECK_OK(eng_safetensors_open(&st, file, &err), &err);
    for (int64_t i = 0; i < eng_safetensors_count(st); i++) {
        const eng_safetensors_info *t = eng_safetensors_info_at(st, i);
        if (t->ndim != 1 || t->dtype != ENG_SAFETENSORS_F32 || n == MAXT) continue;
        snprintf(names[n], sizeof names[n], "%s", t->name);
        offs[n] = t->file_offset;
        nums[n] = t->numel;
        n++;
    }
    eng_safetensors_close(st);
    CHECK_EQ_I64(n, 2 * 10 + 2); /* 10 per layer + final_layer_norm (the script asserts it too) */
    FILE *f = fopen(file, "r+b");
    CHECK(f != NULL);
    for (int t = 0; t < n; t++) {
        for (int64_t i = 0; i < nums[t]; i++) {
            const float v = affine_formula(names[t], i); /* little-endian hosts only */
            if (fseek(f, (long)(offs[t] + 4u * (uint64_t)i), SEEK_SET) != 0 ||
                fwrite(&v, 4, 1, f) != 1) {
                fclose(f);
                CHECK(!"patch write failed");
            }
        }
    }
    CHECK(fclose(f) == 0);
    return 0;
}

/* Runs the encoder on the golden ids with `clip_skip` and compares with golden set `set`
 * (0, 1: plain weights with clip_skip 1, 2; 2: the affine-patched weights; 3: the same with
 * GELU). */
static int run_parity(wt_format fmt, int set, int clip_skip) {
    eng_err err = {0};
    char path[1024];
    int rc = 1;
    eng_ctx *ctx = NULL;
    wt_model *m = NULL;
    sd_clip *clip = NULL;
    float *outp = NULL;
    eng_tensor out;
    golden *g = &g_golden;
    if (golden_load(g) != 0) return 1;
    const int quick_gelu = set != 3;
    if (make_tiny(path, sizeof path, fmt, quick_gelu) != 0) return 1;
    if (set >= 2 && patch_affine(path) != 0) return 1;
    if ((ctx = eng_test_ctx(2)) == NULL) return 1;
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    if (wt_model_open(&m, path, &err) != ENG_OK ||
        sd_clip_create(&clip, m, alloc, &err) != ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    const wt_text_config *cfg = sd_clip_config(clip);
    if (cfg->hidden != g->c || cfg->heads != 2 || cfg->layers != 2 ||
        cfg->quick_gelu != quick_gelu) {
        fprintf(stderr, "unexpected config: hidden %d heads %d layers %d quick_gelu %d\n",
                cfg->hidden, cfg->heads, cfg->layers, cfg->quick_gelu);
        goto done;
    }
    const int64_t shape[3] = {g->b, g->l, g->c};
    if ((outp = eng_test_tensor_f32(&out, 3, shape, 0, 0.0f, 0.0f)) == NULL) goto done;
    /* twice: the second run reuses the reset arena and must give the same bits */
    for (int round = 0; round < 2; round++) {
        if (sd_clip_forward(clip, ctx, NULL, eng_alloc_scratch(alloc), &out, g->ids, g->b,
                            clip_skip, &err) != ENG_OK) {
            fprintf(stderr, "%s\n", err.msg);
            goto done;
        }
        eng_alloc_scratch_reset(alloc);
    }
    if (!eng_test_guard_ok(&out)) {
        fprintf(stderr, "write past the output\n");
        goto done;
    }
    const float *ref = g->set[set];
    double worst = 0.0;
    int64_t wi = 0;
    for (int64_t i = 0; i < g->b * g->l * g->c; i++) {
        const double e = fabs((double)outp[i] - (double)ref[i]);
        if (!(e <= worst)) worst = e, wi = i; /* NaN counts as worst */
    }
    printf("sd_clip %s %s clip_skip %d: max abs error %.3g at [%lld, %lld, %lld] (got %.9g, "
           "reference %.9g), tolerance %.0e\n",
           wt_format_name(fmt),
           set == 3   ? "affine gelu"
           : set == 2 ? "affine"
                      : "plain",
           clip_skip, worst, (long long)(wi / (g->l * g->c)), (long long)(wi / g->c % g->l),
           (long long)(wi % g->c), outp[wi], ref[wi], ATOL);
    rc = worst <= ATOL ? 0 : 1;
done:
    free(outp);
    sd_clip_destroy(clip);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

static int test_tiny_parity(void) {
    return run_parity(WT_FORMAT_DIFFUSERS, 0, 1);
}
static int test_clip_skip2(void) {
    return run_parity(WT_FORMAT_DIFFUSERS, 1, 2);
}
/* The ldm single file holds the same weights under CompVis names: same answer. */
static int test_tiny_ldm(void) {
    return run_parity(WT_FORMAT_LDM, 0, 1);
}
/* Nonzero biases and LayerNorm affines (zero / one in the random checkpoint). */
static int test_affine(void) {
    return run_parity(WT_FORMAT_DIFFUSERS, 2, 1);
}
/* The same with exact GELU (OpenCLIP / SD 2.x's activation). */
static int test_gelu(void) {
    return run_parity(WT_FORMAT_DIFFUSERS, 3, 1);
}

/* One bad call: must fail with ENG_E_INVALID_ARG and a message containing `needle`. */
#define EXPECT_BAD(call, needle)                                                                   \
    do {                                                                                           \
        eng_err e_ = {0};                                                                          \
        int r_ = (call);                                                                           \
        (void)e_;                                                                                  \
        if (r_ != ENG_E_INVALID_ARG) {                                                             \
            fprintf(stderr, "%s:%d: %s returned %d, expected ENG_E_INVALID_ARG\n", __FILE__,       \
                    __LINE__, #call, r_);                                                          \
            goto done;                                                                             \
        }                                                                                          \
        if (strstr(err.msg, (needle)) == NULL) {                                                   \
            fprintf(stderr, "%s:%d: expected \"%s\" in: %s\n", __FILE__, __LINE__, (needle),       \
                    err.msg);                                                                      \
            goto done;                                                                             \
        }                                                                                          \
        printf("ok: %s\n", err.msg);                                                               \
    } while (0)

static int test_errors(void) {
    eng_err err = {0};
    char path[1024];
    int rc = 1;
    eng_ctx *ctx = NULL;
    wt_model *m = NULL;
    sd_clip *clip = NULL;
    float *outp = NULL, *smallp = NULL;
    eng_tensor out, small;
    int32_t ids[2 * 77];
    if (make_tiny(path, sizeof path, WT_FORMAT_DIFFUSERS, 1) != 0) return 1;
    if ((ctx = eng_test_ctx(1)) == NULL) return 1;
    eng_alloc *alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    eng_arena *ar = eng_alloc_scratch(alloc);
    if (wt_model_open(&m, path, &err) != ENG_OK ||
        sd_clip_create(&clip, m, alloc, &err) != ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    for (int i = 0; i < 2 * 77; i++)
        ids[i] = i % 77 == 0 ? 49406 : 49407;
    const int64_t shape[3] = {2, 77, 32}, bad_shape[3] = {2, 77, 16};
    if ((outp = eng_test_tensor_f32(&out, 3, shape, 0, 0.0f, 0.0f)) == NULL) goto done;
    if ((smallp = eng_test_tensor_f32(&small, 3, bad_shape, 0, 0.0f, 0.0f)) == NULL) goto done;

    ids[77 + 5] = 49408; /* one past the vocabulary, in the second prompt */
    EXPECT_BAD(sd_clip_forward(clip, ctx, NULL, ar, &out, ids, 2, 1, &err), "at [1, 5]");
    ids[77 + 5] = -3;
    EXPECT_BAD(sd_clip_forward(clip, ctx, NULL, ar, &out, ids, 2, 1, &err), "outside the vocab");
    ids[77 + 5] = 49407;
    EXPECT_BAD(sd_clip_forward(clip, ctx, NULL, ar, &out, ids, 0, 1, &err), "batch 0");
    EXPECT_BAD(sd_clip_forward(clip, ctx, NULL, ar, &out, ids, 1, 1, &err), "f32[2,77,32]");
    EXPECT_BAD(sd_clip_forward(clip, ctx, NULL, ar, &small, ids, 2, 1, &err),
               "expected f32[2, L, 32]");
    EXPECT_BAD(sd_clip_forward(clip, ctx, NULL, ar, &out, ids, 2, 0, &err), "clip_skip 0");
    EXPECT_BAD(sd_clip_forward(clip, ctx, NULL, ar, &out, ids, 2, 3, &err), "has 2 layers");
    EXPECT_BAD(sd_clip_forward(clip, ctx, NULL, ar, &out, NULL, 2, 1, &err), "ids is NULL");
    /* a shorter sequence is fine (L <= 77); a longer one is not */
    {
        eng_tensor part;
        CHECK_OK(eng_tensor_view_slice(&part, &out, 1, 0, 10, &err), &err);
        eng_tensor part_c = part;
        const int64_t s10[3] = {2, 10, 32};
        CHECK_OK(eng_tensor_init(&part_c, outp, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, s10, &err), &err);
        CHECK_OK(sd_clip_forward(clip, ctx, NULL, ar, &part_c, ids, 2, 1, &err), &err);
        EXPECT_BAD(sd_clip_forward(clip, ctx, NULL, ar, &part, ids, 2, 1, &err), "contiguous");
    }
    eng_alloc_scratch_reset(alloc);
    /* no output was written past its end */
    if (!eng_test_guard_ok(&out) || !eng_test_guard_ok(&small)) {
        fprintf(stderr, "write past an output\n");
        goto done;
    }
    rc = 0;
done:
    free(outp);
    free(smallp);
    sd_clip_destroy(clip);
    wt_model_close(m);
    eng_ctx_destroy(ctx);
    return rc;
}

static const eng_test_case cases[] = {
    {"tiny_parity", test_tiny_parity},
    {"clip_skip2", test_clip_skip2},
    {"tiny_ldm", test_tiny_ldm},
    {"affine", test_affine},
    {"gelu", test_gelu},
    {"errors", test_errors},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
