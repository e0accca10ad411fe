/* test_wt_plan.c: the plans (what make-checkpoint writes and what loading expects) against the
 * key lists of the real modules (tests/golden/weights_<arch>_<format>.txt, written by
 * tests/gen_weight_keys.py from diffusers / transformers), full size, without writing data. */
#include <stdlib.h>
#include <string.h>

#include "eng_test.h"
#include "wt.h"

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "name d0,d1,..." for each file tensor (fused tensors once), sorted; diffusers names carry the
 * component prefix (the canonical name). Returns the count, lines in *out (free each + array). */
static int64_t plan_lines(char ***out, const wt_plan *p, wt_format fmt) {
    const int64_t n = wt_plan_count(p);
    char **lines = calloc((size_t)n, sizeof *lines);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        const wt_plan_entry *e = wt_plan_at(p, i);
        if (e->slice_rows > 0 && e->slice_index > 0) continue; /* fused: listed once */
        char buf[512];
        int used = snprintf(buf, sizeof buf, "%s ", fmt == WT_FORMAT_LDM ? e->file_name : e->name);
        for (int d = 0; d < e->file_ndim; d++)
            used += snprintf(buf + used, sizeof buf - (size_t)used, "%s%lld", d ? "," : "",
                             (long long)e->file_shape[d]);
        lines[k] = malloc(strlen(buf) + 1);
        memcpy(lines[k++], buf, strlen(buf) + 1);
    }
    qsort(lines, (size_t)k, sizeof *lines, cmp_str);
    *out = lines;
    return k;
}

static int check_golden(const char *arch, wt_format fmt) {
    wt_sd_config cfg;
    wt_plan *p = NULL;
    eng_err err = {0};
    char **lines = NULL, path[1024], line[1024];
    CHECK_OK(wt_sd_config_preset(&cfg, arch, &err), &err);
    CHECK_OK(wt_plan_create(&p, &cfg, fmt, &err), &err);
    const int64_t n = plan_lines(&lines, p, fmt);
    snprintf(path, sizeof path, "%s/golden/weights_%s_%s.txt", ENG_TEST_SOURCE_DIR, arch,
             wt_format_name(fmt));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    int64_t k = 0, bad = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (k >= n || strcmp(line, lines[k]) != 0) {
            if (bad++ < 5)
                fprintf(stderr, "%s %s line %lld: golden \"%s\", plan \"%s\"\n", arch,
                        wt_format_name(fmt), (long long)k, line, k < n ? lines[k] : "(end)");
        }
        k++;
    }
    fclose(f);
    if (k != n)
        fprintf(stderr, "%s: golden has %lld tensors, plan %lld\n", path, (long long)k,
                (long long)n);
    for (int64_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    wt_plan_destroy(p);
    CHECK(bad == 0 && k == n);
    return 0;
}

static int test_sd15_ldm(void) {
    return check_golden("sd15", WT_FORMAT_LDM);
}
static int test_sd15_diffusers(void) {
    return check_golden("sd15", WT_FORMAT_DIFFUSERS);
}
static int test_sd21_ldm(void) {
    return check_golden("sd21", WT_FORMAT_LDM);
}
static int test_sd21_diffusers(void) {
    return check_golden("sd21", WT_FORMAT_DIFFUSERS);
}
static int test_tiny_ldm(void) {
    return check_golden("tiny", WT_FORMAT_LDM);
}
static int test_tiny_diffusers(void) {
    return check_golden("tiny", WT_FORMAT_DIFFUSERS);
}

/* Parameter counts of the published models (UNet 859.52 M, VAE 83.65 M, CLIP-L text 123.06 M;
 * SD2.1 UNet 865.91 M, OpenCLIP-H text in diffusers (23 layers) 340.39 M). */
static int test_param_counts(void) {
    wt_sd_config cfg;
    wt_plan *p = NULL;
    eng_err err = {0};
    CHECK_OK(wt_sd_config_preset(&cfg, "sd15", &err), &err);
    CHECK_OK(wt_plan_create(&p, &cfg, WT_FORMAT_DIFFUSERS, &err), &err);
    CHECK_EQ_I64(wt_plan_params(p, WT_UNET), 859520964);
    CHECK_EQ_I64(wt_plan_params(p, WT_VAE), 83653863);
    CHECK_EQ_I64(wt_plan_params(p, WT_TEXT_ENCODER), 123060480);
    CHECK(wt_plan_find(p, "unet.conv_in.weight") != NULL);
    CHECK(wt_plan_find(p, "unet.nope") == NULL);
    wt_plan_destroy(p);
    CHECK_OK(wt_sd_config_preset(&cfg, "sd21", &err), &err);
    CHECK_OK(wt_plan_create(&p, &cfg, WT_FORMAT_LDM, &err), &err);
    CHECK_EQ_I64(wt_plan_params(p, WT_UNET), 865910724);
    CHECK_EQ_I64(wt_plan_params(p, WT_TEXT_ENCODER), 340387840);
    const wt_plan_entry *q =
        wt_plan_find(p, "text_encoder.text_model.encoder.layers.3.self_attn.v_proj.weight");
    CHECK(q != NULL);
    CHECK(strcmp(q->file_name,
                 "cond_stage_model.model.transformer.resblocks.3.attn.in_proj_weight") == 0);
    CHECK_EQ_I64(q->slice_index, 2);
    CHECK_EQ_I64(q->file_shape[0], 3072);
    wt_plan_destroy(p);
    CHECK(wt_sd_config_preset(&cfg, "sd3", &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "sd3");
    return 0;
}

static const eng_test_case cases[] = {
    {"sd15_ldm", test_sd15_ldm},         {"sd15_diffusers", test_sd15_diffusers},
    {"sd21_ldm", test_sd21_ldm},         {"sd21_diffusers", test_sd21_diffusers},
    {"tiny_ldm", test_tiny_ldm},         {"tiny_diffusers", test_tiny_diffusers},
    {"param_counts", test_param_counts},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
