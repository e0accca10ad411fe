/* sd_test_patch.h: rewriting tensors of a checkpoint the tests wrote (header only), so that the
 * random checkpoints of `gen make-checkpoint` (zero biases, unit norms) exercise every term the
 * way their golden scripts patch them (tests/gen_sd_*_goldens.py):
 *
 *   int64_t counts[WT_COMPONENT_COUNT];
 *   sd_test_patch(&cfg, WT_FORMAT_LDM, path, sd_test_pick_1d, sd_test_affine, NULL, counts);
 *
 * Tensors are found through the plan of the format, by canonical (diffusers) name, so a fused
 * ldm tensor (OpenCLIP in_proj) gets the rows of its slice. Only f32 files (little-endian
 * hosts). The callbacks see the name without its component ("conv_out.weight"). */
#ifndef SD_TEST_PATCH_H
#define SD_TEST_PATCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "wt.h"

/* 1 when the canonical tensor `e` is to be rewritten. */
typedef int (*sd_test_pick_fn)(const wt_plan_entry *e, const char *name, void *user);
/* The new value of element i (old: its current value). */
typedef float (*sd_test_value_fn)(const char *name, int64_t i, float old, void *user);

/* The golden scripts' affine_formula: 1 + or 0 + ((13 i + h) % 17 - 8) / 64 for weights or
 * biases, h = the byte sum of the name mod 97. */
static inline float sd_test_affine(const char *name, int64_t i, float old, void *user) {
    unsigned h = 0;
    (void)old, (void)user;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h += *p;
    h %= 97u;
    const size_t n = strlen(name);
    const double base = n >= 7 && strcmp(name + n - 7, ".weight") == 0 ? 1.0 : 0.0;
    return (float)(base + (double)((int)((13 * i + h) % 17) - 8) / 64.0);
}

/* Every 1-D tensor of the component in *(wt_component *)user, or of the UNet and the text
 * encoder when user is NULL. */
static inline int sd_test_pick_1d(const wt_plan_entry *e, const char *name, void *user) {
    (void)name;
    if (e->ndim != 1) return 0;
    if (user != NULL) return e->component == *(const wt_component *)user;
    return e->component == WT_UNET || e->component == WT_TEXT_ENCODER;
}

/* The file holding component c: the ldm file itself, or the diffusers folder's file. */
static inline void
sd_test_component_file(char *out, size_t cap, const char *path, wt_format fmt, wt_component c) {
    if (fmt == WT_FORMAT_LDM)
        snprintf(out, cap, "%s", path);
    else
        snprintf(out, cap, "%s/%s/%s", path, wt_component_name(c),
                 c == WT_TEXT_ENCODER ? "model.safetensors"
                                      : "diffusion_pytorch_model.safetensors");
}

/* Rewrites every picked tensor of the checkpoint at `path` (format fmt, config cfg) in place;
 * counts[c] (may be NULL) gets the number rewritten per component. Returns 0 or 1 (failed,
 * with a message on stderr). */
static inline int sd_test_patch(const wt_sd_config *cfg,
                                wt_format fmt,
                                const char *path,
                                sd_test_pick_fn pick,
                                sd_test_value_fn value,
                                void *user,
                                int64_t counts[WT_COMPONENT_COUNT]) {
    eng_err err = {0};
    wt_plan *plan = NULL;
    float *buf = NULL;
    int rc = 1;
    if (counts != NULL) memset(counts, 0, WT_COMPONENT_COUNT * sizeof *counts);
    CHECK_OK(wt_plan_create(&plan, cfg, fmt, &err), &err);
    for (int comp = 0; comp < WT_COMPONENT_COUNT; comp++) {
        eng_safetensors *st = NULL;
        char file[1200];
        sd_test_component_file(file, sizeof file, path, fmt, (wt_component)comp);
        if (eng_safetensors_open(&st, file, &err) != ENG_OK) {
            fprintf(stderr, "%s\n", err.msg);
            goto done;
        }
        FILE *f = fopen(file, "r+b");
        int bad = f == NULL;
        for (int64_t i = 0; i < wt_plan_count(plan) && !bad; i++) {
            const wt_plan_entry *e = wt_plan_at(plan, i);
            if (e->name == NULL || (int)e->component != comp) continue;
            const char *name = e->name + strlen(wt_component_name(e->component)) + 1;
            if (!pick(e, name, user)) continue;
            const eng_safetensors_info *t = eng_safetensors_find(st, e->file_name);
            int64_t n = 1;
            for (int d = 0; d < e->ndim; d++)
                n *= e->shape[d];
            bad = t == NULL || t->dtype != ENG_SAFETENSORS_F32 ||
                  (e->slice_rows > 0 ? (e->slice_index + 1) * n > t->numel : n != t->numel);
            if (bad) {
                fprintf(stderr, "%s: no f32 tensor %s of %lld values for %s\n", file, e->file_name,
                        (long long)n, e->name);
                break;
            }
            float *nb = (float *)realloc(buf, (size_t)n * sizeof *buf);
            if (nb == NULL) {
                bad = 1;
                break;
            }
            buf = nb;
            const long off = (long)(t->file_offset + 4u * (uint64_t)(e->slice_index * n));
            bad = fseek(f, off, SEEK_SET) != 0 || fread(buf, 4, (size_t)n, f) != (size_t)n;
            for (int64_t k = 0; k < n && !bad; k++)
                buf[k] = value(name, k, buf[k], user);
            bad = bad || fseek(f, off, SEEK_SET) != 0 || fwrite(buf, 4, (size_t)n, f) != (size_t)n;
            if (bad) fprintf(stderr, "cannot patch %s in %s\n", e->name, file);
            if (counts != NULL) counts[comp]++;
        }
        if (f != NULL && fclose(f) != 0) bad = 1;
        eng_safetensors_close(st);
        if (bad) goto done;
    }
    rc = 0;
done:
    free(buf);
    wt_plan_destroy(plan);
    return rc;
}

/* Reads a golden text file of the form "# comments", "<scalar_key> <float>", then
 * "<block_key> a b c d" followed by a*b*c*d floats: *scalar (may be NULL), shape[4] and *vals
 * (the caller frees it). Returns 0, or 1 with a message on stderr. */
static inline int sd_test_read_golden(const char *path,
                                      const char *scalar_key,
                                      float *scalar,
                                      const char *block_key,
                                      int64_t shape[4],
                                      float **vals) {
    FILE *f = fopen(path, "r");
    char line[512];
    int64_t n = 0, got = 0;
    float *v = NULL;
    const size_t sk = strlen(scalar_key), bk = strlen(block_key);
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#') continue;
        if (strncmp(line, scalar_key, sk) == 0 && line[sk] == ' ' && scalar != NULL)
            *scalar = strtof(line + sk + 1, NULL);
        if (strncmp(line, block_key, bk) == 0 && line[bk] == ' ') {
            long long a, b, c, d;
            if (sscanf(line + bk + 1, "%lld %lld %lld %lld", &a, &b, &c, &d) != 4) break;
            shape[0] = a, shape[1] = b, shape[2] = c, shape[3] = d;
            n = a * b * c * d;
            v = (float *)malloc((size_t)n * sizeof *v);
            if (v == NULL) break;
            while (got < n && fscanf(f, "%f", &v[got]) == 1)
                got++;
            break;
        }
    }
    fclose(f);
    if (v == NULL || got != n || n == 0) {
        free(v);
        fprintf(stderr, "%s: malformed (%lld of %lld values)\n", path, (long long)got,
                (long long)n);
        return 1;
    }
    *vals = v;
    return 0;
}

#endif /* SD_TEST_PATCH_H */
