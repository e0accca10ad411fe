/* test_nerf_cuda.c: nerf.cuda.* — the NeRF CUDA kernels (nerf/nerf_cuda.h) against their CPU
 * twins on random inputs (Philox, ENG_TEST_SEED), through the public headers only (plain C):
 *
 *   layout         (cpu) nerf_cuda_field_init lays the parameters out as nerf_field_create does;
 *                  the scratch sizes; without CUDA every launcher says ENG_E_UNSUPPORTED
 *   grid_fwd       hash-grid forward, F = 1, 2, 4, 8, dense and hashed levels, clamped points,
 *                  n = 1, 333, 70001 (> 65535): |d| <= 1e-6 + 1e-5 |ref| (FMA rounding)
 *   grid_bwd       table gradient (float atomics: 99% of entries within 1e-5 scale + 1e-4 |ref|,
 *                  tiny-cuda-nn's percentile rule) and position gradient (99.9%)
 *   sh             SH degree 4 into a wider matrix
 *   mlp            fused MLP, 4 shapes (density, colour, odd 7 -> 64 x 3 -> 1, 64 -> 64), n = 1,
 *                  63, 64, 65, 70001: forward and stored activations vs the twin; backward vs an
 *                  f64 backward from the kernel's own activations (exact ReLU masks), and loosely
 *                  (NMSE, 99.9% of d_x) vs the twin, whose ReLU' may flip where a pre-activation
 *                  is within rounding of 0; inference without scratch; accumulation into d_w
 *   field          the whole field forward and backward (colour and density only)
 *   march          marching with a 2-cascade grid and without: the same samples (>= 99.9% of
 *                  rays with identical counts, their samples equal), the cap rule
 *   composite      compositing forward and backward
 *   adam           3 Adam steps: parameters, moments, step counts
 *   occgrid        three occupancy updates (two in warm-up, then random + occupied picks): the
 *                  same values and bits
 *   errors         bad arguments are named errors, not crashes
 *   train_math     (cpu) nerf_train_math.h: camera rays against nerf_dataset_ray (distortion
 *                  included), the schedule, picks, targets; without CUDA the trainer refuses
 *   train_rays     training rays with targets and backgrounds (holdout too), n = 1 and 70001
 *   cam_rays       camera rays, pinhole and distorted
 *   l2             the loss's gradient (exact) and its f64 sum
 *   trainer        the device trainer against the CPU trainer on the procedural scene at 32x32,
 *                  300 steps each (ENG_NERF_STEPS overrides; then only the render agreement is
 *                  checked): test PSNR, their agreement, download and rendering
 * Every gpu case exits 77 (SKIP) without a CUDA device. Device buffers come from the engine's
 * CUDA allocator with GUARD canary bytes after each, checked on every download. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_bench.h"
#include "eng_cuda.h"
#include "eng_test.h"
#include "eng_test_compare.h"
#include "eng_test_ctx.h"
#include "nerf_adam.h"
#include "nerf_cuda.h"
#include "nerf_data.h"
#include "nerf_field.h"
#include "nerf_hashgrid.h"
#include "nerf_metrics.h"
#include "nerf_mlp.h"
#include "nerf_occgrid.h"
#include "nerf_render.h"
#include "nerf_scene.h"
#include "nerf_sh.h"
#include "nerf_train.h"
#include "nerf_train_cuda.h"
#include "nerf_train_math.h"

enum { GUARD = 256, MAX_BUFS = 96 };

/* ---- device helpers -------------------------------------------------------------------------- */

typedef struct gpu {
    eng_ctx *ctx;
    eng_alloc *a;
    eng_stream *s;
    const eng_backend *b;
    eng_stream *cpu; /* the CPU twins' stream (the context's pool) */
    void *bufs[MAX_BUFS];
    int n_bufs;
} gpu;

/* A context with device 0 attached: 0, ENG_TEST_SKIP without a device, 1 on failure. */
static int gpu_open(gpu *g) {
    eng_err err = {0};
    int count = 0;
    char why[512];
    memset(g, 0, sizeof *g);
    const int rc = eng_cuda_device_count(&count, &err);
    if (rc != ENG_OK || count == 0) {
        fprintf(stderr, "SKIP: %s\n", rc != ENG_OK ? err.msg : eng_cuda_describe(why, sizeof why));
        return ENG_TEST_SKIP;
    }
    g->ctx = eng_test_ctx(2);
    CHECK(g->ctx != NULL);
    CHECK_OK(eng_cuda_attach(g->ctx, 0, 0, &err), &err);
    g->a = eng_ctx_alloc(g->ctx, ENG_DEVICE_CUDA);
    g->s = eng_ctx_stream(g->ctx, ENG_DEVICE_CUDA);
    g->b = eng_ctx_backend(g->ctx, ENG_DEVICE_CUDA);
    g->cpu = eng_ctx_stream(g->ctx, ENG_DEVICE_CPU);
    CHECK(g->a != NULL && g->s != NULL && g->b != NULL && g->s->arena != NULL);
    fprintf(stderr, "%s\n", eng_cuda_describe(why, sizeof why));
    return 0;
}

static void gpu_close(gpu *g) {
    for (int i = 0; i < g->n_bufs; i++)
        eng_alloc_give(g->a, g->bufs[i]);
    eng_ctx_destroy(g->ctx);
    memset(g, 0, sizeof *g);
}

/* A device buffer of `bytes` followed by GUARD canary bytes; holds `host` (NULL: canary bytes
 * everywhere, so a kernel that skips an element is seen). NULL (reason printed) on failure. */
static void *dev_new(gpu *g, const void *host, size_t bytes) {
    eng_err err = {0};
    void *d = NULL;
    unsigned char *tmp = (unsigned char *)malloc(bytes + GUARD);
    if (tmp == NULL || g->n_bufs == MAX_BUFS) {
        free(tmp);
        fprintf(stderr, "dev_new: out of host memory or buffer slots\n");
        return NULL;
    }
    eng_test_canary_set(tmp, bytes + GUARD);
    if (host != NULL) memcpy(tmp, host, bytes);
    if (eng_alloc_take(g->a, &d, bytes + GUARD, ENG_LIFE_STATE, "test", &err) != ENG_OK ||
        g->b->copy(g->b->impl, g->s, d, tmp, bytes + GUARD, ENG_COPY_H2D, &err) != ENG_OK ||
        g->b->stream_sync(g->b->impl, g->s, &err) != ENG_OK) {
        fprintf(stderr, "dev_new: %s\n", err.msg);
        free(tmp);
        return NULL;
    }
    free(tmp);
    g->bufs[g->n_bufs++] = d;
    return d;
}

/* Gives back the buffers made after dev_new's count was `mark` (g->n_bufs then). */
static void dev_release(gpu *g, int mark) {
    while (g->n_bufs > mark)
        eng_alloc_give(g->a, g->bufs[--g->n_bufs]);
}

/* A device buffer of n zero floats (accumulators). */
static float *dev_zeros(gpu *g, int64_t n) {
    float *z = (float *)calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    float *d = z != NULL ? (float *)dev_new(g, z, (size_t)n * sizeof(float)) : NULL;
    free(z);
    return d;
}

/* host = the first `bytes` of device buffer d; 1 (printed) when its guard was overwritten. */
static int dev_get(gpu *g, void *host, const void *d, size_t bytes, const char *what) {
    eng_err err = {0};
    unsigned char *tmp = (unsigned char *)malloc(bytes + GUARD);
    CHECK(tmp != NULL);
    if (g->b->copy(g->b->impl, g->s, tmp, d, bytes + GUARD, ENG_COPY_D2H, &err) != ENG_OK) {
        fprintf(stderr, "dev_get %s: %s\n", what, err.msg);
        free(tmp);
        return 1;
    }
    const int ok = eng_test_canary_ok(tmp + bytes, GUARD);
    if (!ok) fprintf(stderr, "%s: a kernel wrote past the end of the output\n", what);
    memcpy(host, tmp, bytes);
    free(tmp);
    return ok ? 0 : 1;
}

/* ---- comparisons ----------------------------------------------------------------------------- */

static double max_abs(const float *x, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > m) m = fabs((double)x[i]);
    return m;
}

/* Passes when at least `frac` of the elements satisfy |got - want| <= atol + rtol |want| (NaN
 * and Inf agreeing) and the mean error is within atol + rtol mean |want| (tiny-cuda-nn's rule
 * for results that atomics or piecewise-constant grids make jittery; frac 1: element-wise). */
static int close_pct(const char *what,
                     const float *got,
                     const float *want,
                     int64_t n,
                     double atol,
                     double rtol,
                     double frac) {
    int64_t bad = 0, worst = -1;
    double worst_excess = -1.0, sum_err = 0.0, sum_ref = 0.0, max_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double g = got[i], w = want[i];
        if (!isfinite(g) || !isfinite(w)) {
            const int same = (isnan(g) && isnan(w)) || (isinf(g) && isinf(w) && (g > 0) == (w > 0));
            if (!same) {
                bad++;
                if (worst < 0) worst = i, worst_excess = INFINITY;
            }
            continue;
        }
        const double d = fabs(g - w), excess = d - (atol + rtol * fabs(w));
        sum_err += d;
        sum_ref += fabs(w);
        if (d > max_err) max_err = d;
        if (excess > 0) {
            bad++;
            if (excess > worst_excess) worst = i, worst_excess = excess;
        }
    }
    const double mean_err = n > 0 ? sum_err / (double)n : 0.0;
    const double mean_ref = n > 0 ? sum_ref / (double)n : 0.0;
    const int ok = (double)(n - bad) >= frac * (double)n && mean_err <= atol + rtol * mean_ref;
    if (!ok || bad > 0) {
        fprintf(stderr,
                "%s: n %" PRId64 ": %" PRId64 " outside atol %g + rtol %g (allowed %.3g%%)%s"
                " max err %g, mean err %g (mean |ref| %g), seed %" PRIu64 "\n",
                what, n, bad, atol, rtol, 100.0 * (1.0 - frac), ok ? "" : " FAIL;", max_err,
                mean_err, mean_ref, eng_test_seed());
        if (worst >= 0)
            fprintf(stderr, "  worst [%" PRId64 "]: cuda %.9g cpu %.9g\n", worst,
                    (double)got[worst], (double)want[worst]);
    }
    return ok;
}

/* Unit directions from uniform triples. */
static void normalize_rows(float *d, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float *v = d + 3 * i;
        const float len = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        if (len > 0.0f) {
            v[0] /= len, v[1] /= len, v[2] /= len;
        } else {
            v[0] = 1.0f, v[1] = 0.0f, v[2] = 0.0f;
        }
    }
}

/* ---- layout (cpu) ---------------------------------------------------------------------------- */

static int test_layout(void) {
    eng_err err = {0};
    nerf_field_params fp;
    nerf_cuda_field cf;
    nerf_field_params_init(&fp);
    /* the default model: the sizes nerf_field.h documents */
    CHECK_OK(nerf_cuda_field_init(&cf, &fp, &err), &err);
    CHECK_EQ_I64(cf.layout.color, 3072);
    CHECK_EQ_I64(cf.layout.grid, 3072 + 6336);
    CHECK_EQ_I64(cf.layout.n_params, 3072 + 6336 + 12196240);
    CHECK_EQ_I64(cf.n_color_in, 32);
    CHECK(cf.box_lo == 0.0f && cf.box_inv == 1.0f);
    /* a small grid, two scene sizes: the same layout and shapes as a CPU field */
    for (int k = 0; k < 2; k++) {
        eng_ctx *ctx = eng_test_ctx(1);
        nerf_field *f = NULL;
        CHECK(ctx != NULL);
        fp.grid.log2_table_size = 12;
        fp.grid.aabb_scale = k == 0 ? 1.0f : 4.0f;
        fp.geo_features = k == 0 ? 16 : 7;
        CHECK_OK(nerf_cuda_field_init(&cf, &fp, &err), &err);
        CHECK_OK(nerf_field_create(&f, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), NULL, &fp, &err), &err);
        const nerf_field_layout l = nerf_field_get_layout(f);
        CHECK(memcmp(&l, &cf.layout, sizeof l) == 0);
        CHECK(memcmp(nerf_field_grid(f), &cf.grid, sizeof cf.grid) == 0);
        CHECK(memcmp(nerf_field_density_mlp(f), &cf.density, sizeof cf.density) == 0);
        CHECK(memcmp(nerf_field_color_mlp(f), &cf.color, sizeof cf.color) == 0);
        CHECK(cf.box_lo == 0.5f - 0.5f * fp.grid.aabb_scale);
        const int64_t n = 1000;
        CHECK_EQ_I64(nerf_cuda_field_scratch_floats(&cf, n),
                     n * (3 + 2 * 32 + 2 * (16 + fp.geo_features)) +
                         nerf_cuda_mlp_scratch_floats(&cf.density, n) +
                         nerf_cuda_mlp_scratch_floats(&cf.color, n));
        nerf_field_destroy(f);
        eng_ctx_destroy(ctx);
    }
    /* MLP scratch: activations + one gradient slot per block, at most NERF_CUDA_MLP_PARTS */
    nerf_field_params_init(&fp);
    CHECK_OK(nerf_cuda_field_init(&cf, &fp, &err), &err);
    CHECK_EQ_I64(nerf_cuda_mlp_scratch_floats(&cf.density, 0), 0);
    CHECK_EQ_I64(nerf_cuda_mlp_scratch_floats(&cf.density, 65),
                 65 * (64 + 16) + 2 * cf.density.n_weights);
    CHECK_EQ_I64(nerf_cuda_mlp_scratch_floats(&cf.density, 1 << 20),
                 (1 << 20) * (64 + 16) + (int64_t)NERF_CUDA_MLP_PARTS * cf.density.n_weights);
    fp.geo_features = 0;
    CHECK(nerf_cuda_field_init(&cf, &fp, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "geo_features");
    /* the contraction is copied (and checked as nerf_field_create checks it) */
    nerf_field_params_init(&fp);
    CHECK_OK(nerf_cuda_field_init(&cf, &fp, &err), &err);
    CHECK(cf.contract == 0);
    fp.contract = 1;
    fp.inner_radius = 0.75f;
    CHECK_OK(nerf_cuda_field_init(&cf, &fp, &err), &err);
    CHECK(cf.contract == 1 && cf.inner_radius == 0.75f);
    fp.inner_radius = 0.0f;
    CHECK(nerf_cuda_field_init(&cf, &fp, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "inner_radius");
    fp.contract = 2;
    fp.inner_radius = 0.5f;
    CHECK(nerf_cuda_field_init(&cf, &fp, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "contract = 2");
    /* occupancy picks */
    nerf_occgrid_params op;
    nerf_occgrid_params_init(&op);
    op.res = 16;
    op.cascades = 2;
    CHECK_EQ_I64(nerf_cuda_occgrid_pick_count(&op, 0), 2 * 4096);
    CHECK_EQ_I64(nerf_cuda_occgrid_pick_count(&op, op.warmup_steps), 4096);
#ifndef ENG_HAVE_CUDA
    /* without CUDA every launcher is there and refuses */
    CHECK(nerf_cuda_hashgrid_fwd(&cf.grid, NULL, NULL, NULL, 1, NULL, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "nerf_cuda_hashgrid_fwd: built without CUDA");
    CHECK(nerf_cuda_mlp_fwd(&cf.density, NULL, NULL, 16, NULL, 32, 1, NULL, NULL, &err) ==
          ENG_E_UNSUPPORTED);
    CHECK(nerf_cuda_field_fwd(&cf, NULL, NULL, NULL, NULL, NULL, 1, NULL, NULL, &err) ==
          ENG_E_UNSUPPORTED);
    CHECK(nerf_cuda_adam_step(NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.0f, &err) ==
          ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "nerf_cuda_adam_step");
#endif
    return 0;
}

/* ---- hash grid ------------------------------------------------------------------------------- */

/* A grid of F features: small tables (some levels hashed, some dense). */
static int make_grid(nerf_hashgrid *g, int F, int levels, int log2_t) {
    eng_err err = {0};
    nerf_hashgrid_params gp;
    nerf_hashgrid_params_init(&gp);
    gp.n_features = F;
    gp.n_levels = levels;
    gp.log2_table_size = log2_t;
    CHECK_OK(nerf_hashgrid_init(g, &gp, &err), &err);
    int dense = 0, hashed = 0;
    for (int l = 0; l < g->n_levels; l++)
        g->level[l].hashed ? hashed++ : dense++;
    CHECK(levels < 8 || (dense > 0 && hashed > 0)); /* the tests' grids have both kinds */
    return 0;
}

/* Runs forward, table gradient and position gradient of grid g on n points on both sides. */
static int grid_case(gpu *g, const nerf_hashgrid *hg, int64_t n, int do_bwd) {
    eng_err err = {0};
    char what[96];
    const int64_t P = hg->n_params, G = hg->n_outputs;
    const int mark = g->n_bufs;
    float *pos = malloc((size_t)(3 * n) * sizeof *pos), *table = malloc((size_t)P * sizeof *table);
    float *feat = malloc((size_t)(n * G) * sizeof *feat), *feat_d = malloc((size_t)(n * G) * 4);
    float *dfeat = malloc((size_t)(n * G) * 4), *dtab = calloc((size_t)P, 4);
    float *dtab_d = malloc((size_t)P * 4), *dpos = malloc((size_t)(3 * n) * 4);
    float *dpos_d = malloc((size_t)(3 * n) * 4);
    CHECK(pos && table && feat && feat_d && dfeat && dtab && dtab_d && dpos && dpos_d);
    eng_test_fill(pos, 3 * n, 1, -0.05f, 1.05f); /* a few clamped coordinates */
    eng_test_fill(table, P, 2, -1.0f, 1.0f);
    eng_test_fill(dfeat, n * G, 3, -1.0f, 1.0f);
    for (int64_t i = 0; i < n; i += 7) /* rows with no gradient: the skip path */
        memset(dfeat + i * G, 0, (size_t)G * sizeof *dfeat);
    float *pos_g = dev_new(g, pos, (size_t)(3 * n) * 4), *tab_g = dev_new(g, table, (size_t)P * 4);
    float *feat_g = dev_new(g, NULL, (size_t)(n * G) * 4);
    CHECK(pos_g && tab_g && feat_g);
    CHECK_OK(nerf_hashgrid_fwd(hg, g->cpu, feat, pos, n, table, &err), &err);
    CHECK_OK(nerf_cuda_hashgrid_fwd(hg, g->s, feat_g, pos_g, n, tab_g, &err), &err);
    CHECK(dev_get(g, feat_d, feat_g, (size_t)(n * G) * 4, "grid fwd") == 0);
    snprintf(what, sizeof what, "hashgrid fwd F=%d L=%d n=%" PRId64, hg->n_features, hg->n_levels,
             n);
    CHECK(close_pct(what, feat_d, feat, n * G, 1e-6, 1e-5, 1.0));
    if (do_bwd) {
        float *dfeat_g = dev_new(g, dfeat, (size_t)(n * G) * 4), *dtab_g = dev_zeros(g, P);
        float *dpos_g = dev_new(g, NULL, (size_t)(3 * n) * 4);
        CHECK(dfeat_g && dtab_g && dpos_g);
        CHECK_OK(nerf_hashgrid_bwd(hg, g->cpu, dtab, pos, n, dfeat, &err), &err);
        CHECK_OK(nerf_cuda_hashgrid_bwd(hg, g->s, dtab_g, pos_g, n, dfeat_g, &err), &err);
        CHECK(dev_get(g, dtab_d, dtab_g, (size_t)P * 4, "grid bwd") == 0);
        snprintf(what, sizeof what, "hashgrid bwd (table) F=%d n=%" PRId64, hg->n_features, n);
        /* atomics reorder the sums: a scale-aware atol, 99% of entries (tiny-cuda-nn's rule) */
        CHECK(close_pct(what, dtab_d, dtab, P, 1e-5 * (1.0 + max_abs(dtab, P)), 1e-4, 0.99));
        CHECK_OK(nerf_hashgrid_bwd_pos(hg, g->cpu, dpos, pos, n, dfeat, table, &err), &err);
        CHECK_OK(nerf_cuda_hashgrid_bwd_pos(hg, g->s, dpos_g, pos_g, n, dfeat_g, tab_g, &err),
                 &err);
        CHECK(dev_get(g, dpos_d, dpos_g, (size_t)(3 * n) * 4, "grid bwd_pos") == 0);
        snprintf(what, sizeof what, "hashgrid bwd (pos) F=%d n=%" PRId64, hg->n_features, n);
        /* sums of L * 8 products of size scale_l: FMA rounding relative to the largest term */
        CHECK(
            close_pct(what, dpos_d, dpos, 3 * n, 1e-5 * (1.0 + max_abs(dpos, 3 * n)), 1e-4, 0.999));
    }
    free(pos), free(table), free(feat), free(feat_d), free(dfeat), free(dtab), free(dtab_d);
    free(dpos), free(dpos_d);
    dev_release(g, mark);
    return 0;
}

static int test_grid_fwd(void) {
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    static const int64_t ns[3] = {1, 333, 70001};
    static const int fs[4] = {1, 2, 4, 8};
    for (int fi = 0; fi < 4; fi++) {
        nerf_hashgrid hg;
        if ((rc = make_grid(&hg, fs[fi], 8, 14)) != 0) break;
        for (int k = 0; k < 3 && rc == 0; k++)
            rc = grid_case(&g, &hg, ns[k], 0);
        if (rc != 0) break;
    }
    if (rc == 0) { /* instant-ngp's grid, 16 levels of 2 features */
        nerf_hashgrid hg;
        if ((rc = make_grid(&hg, 2, 16, 19)) == 0) rc = grid_case(&g, &hg, 70001, 0);
    }
    gpu_close(&g);
    return rc;
}

static int test_grid_bwd(void) {
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    static const int fs[3] = {1, 2, 8};
    for (int fi = 0; fi < 3 && rc == 0; fi++) {
        nerf_hashgrid hg;
        if ((rc = make_grid(&hg, fs[fi], 8, 14)) == 0) rc = grid_case(&g, &hg, 20001, 1);
        if (rc == 0) rc = grid_case(&g, &hg, 1, 1);
    }
    if (rc == 0) {
        nerf_hashgrid hg;
        if ((rc = make_grid(&hg, 2, 16, 19)) == 0) rc = grid_case(&g, &hg, 70001, 1);
    }
    gpu_close(&g);
    return rc;
}

/* ---- SH -------------------------------------------------------------------------------------- */

static int test_sh(void) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    const int64_t n = 70001, ld = 21;
    float *dirs = malloc((size_t)(3 * n) * 4), *out = malloc((size_t)(n * ld) * 4);
    float *out_d = malloc((size_t)(n * ld) * 4);
    CHECK(dirs && out && out_d);
    eng_test_fill(dirs, 3 * n, 11, -1.0f, 1.0f);
    normalize_rows(dirs, n);
    eng_test_fill(out, n * ld, 12, 5.0f, 6.0f); /* the columns past 16 stay as they were */
    float *dirs_g = dev_new(&g, dirs, (size_t)(3 * n) * 4),
          *out_g = dev_new(&g, out, (size_t)(n * ld) * 4);
    CHECK(dirs_g && out_g);
    CHECK_OK(nerf_sh_encode(g.cpu, out, ld, dirs, n, &err), &err);
    CHECK_OK(nerf_cuda_sh_encode(g.s, out_g, ld, dirs_g, n, &err), &err);
    CHECK(dev_get(&g, out_d, out_g, (size_t)(n * ld) * 4, "sh") == 0);
    CHECK(close_pct("sh4", out_d, out, n * ld, 1e-6, 1e-5, 1.0));
    free(dirs), free(out), free(out_d);
    gpu_close(&g);
    return 0;
}

/* ---- MLP ------------------------------------------------------------------------------------- */

/* The backward pass in f64 from the kernel's own forward state: the stored hidden activations
 * (hidden: H regions of (n, 64)) give the ReLU masks and the layers' inputs, pre (n, n_output) the
 * output's. dw (n_weights) and dx (n, ld_dx) get dL/dw and dL/dx. Checking the backward kernel
 * against this isolates it from the forward's rounding: where a hidden pre-activation lies
 * within rounding of 0, the kernel and the CPU twin may disagree on ReLU' (a legitimate
 * difference, but one row's whole gradient then differs). */
static void mlp_bwd_ref(const nerf_mlp *m,
                        double *dw,
                        double *dx,
                        int64_t ld_dx,
                        const float *x,
                        int64_t ldx,
                        const float *dy,
                        int64_t ld_dy,
                        int64_t n,
                        const float *w,
                        const float *hidden,
                        const float *pre) {
    const int H = m->n_hidden_layers;
    const int64_t W = 64, O = m->n_output;
    double delta[64], below[64];
    memset(dw, 0, (size_t)m->n_weights * sizeof *dw);
    for (int64_t r = 0; r < n; r++) {
        for (int64_t o = 0; o < O; o++)
            delta[o] = nerf_act_bwd(m->output_act, pre[r * O + o], dy[r * ld_dy + o]);
        for (int l = H; l >= 0; l--) {
            const int64_t rows = m->layer_rows[l], cols = m->layer_cols[l];
            const float *wl = w + m->layer_offset[l];
            const float *in = l > 0 ? hidden + (int64_t)(l - 1) * n * W + r * W : x + r * ldx;
            double *dwl = dw + m->layer_offset[l];
            for (int64_t c = 0; c < rows; c++)
                for (int64_t k = 0; k < cols; k++)
                    dwl[c * cols + k] += delta[c] * in[k];
            for (int64_t k = 0; k < cols; k++) {
                double acc = 0.0;
                for (int64_t c = 0; c < rows; c++)
                    acc += delta[c] * wl[c * cols + k];
                below[k] = l == 0 || in[k] > 0.0f ? acc : 0.0;
            }
            if (l == 0) {
                for (int64_t k = 0; k < cols; k++)
                    dx[r * ld_dx + k] = below[k];
            }
            memcpy(delta, below, sizeof delta);
        }
    }
}

static void to_f32(float *y, const double *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = (float)x[i];
}

/* One shape on n rows: the forward pass (with and without scratch) against the CPU twin, its
 * stored activations against the twin's, the backward pass against mlp_bwd_ref (exact masks) and,
 * loosely, against the twin. */
static int mlp_case(gpu *g, const nerf_mlp_params *mp, int64_t n) {
    eng_err err = {0};
    char what[128], shape[64];
    nerf_mlp m;
    CHECK_OK(nerf_mlp_init(&m, mp, &err), &err);
    const int64_t I = m.n_input, O = m.n_output, NW = m.n_weights, H = m.n_hidden_layers;
    const int mark = g->n_bufs;
    const int64_t ldx = I + 3, ldy = O + 1, ld_dx = I + 2; /* leading dimensions past the width */
    const int64_t cs = nerf_mlp_scratch_floats(&m, n), gs = nerf_cuda_mlp_scratch_floats(&m, n);
    const int64_t act = n * (H * 64 + O); /* hidden + pre: the same layout in both scratches */
    snprintf(shape, sizeof shape, "%lld-64x%d-%lld act %d n=%" PRId64, (long long)I,
             m.n_hidden_layers, (long long)O, (int)m.output_act, n);
    float *x = malloc((size_t)(n * ldx) * 4), *w = malloc((size_t)NW * 4);
    float *y = malloc((size_t)(n * ldy) * 4), *y_d = malloc((size_t)(n * ldy) * 4);
    float *y2_d = malloc((size_t)(n * ldy) * 4), *dy = malloc((size_t)(n * ldy) * 4);
    float *dw = calloc((size_t)NW, 4), *dw_d = malloc((size_t)NW * 4),
          *ref = malloc((size_t)NW * 4);
    float *dx = malloc((size_t)(n * ld_dx) * 4), *dx_d = malloc((size_t)(n * ld_dx) * 4);
    float *dx_ref = malloc((size_t)(n * ld_dx) * 4), *scr = malloc((size_t)cs * 4);
    float *act_d = malloc((size_t)act * 4);
    double *dw64 = malloc((size_t)NW * 8), *dx64 = malloc((size_t)(n * ld_dx) * 8);
    CHECK(x && w && y && y_d && y2_d && dy && dw && dw_d && ref && dx && dx_d && dx_ref && scr);
    CHECK(act_d && dw64 && dx64);
    eng_test_fill(x, n * ldx, 21, -1.0f, 1.0f);
    eng_test_fill(dy, n * ldy, 22, -1.0f, 1.0f);
    eng_test_fill(y, n * ldy, 23, 0.0f, 1.0f); /* the padding columns must survive */
    eng_test_fill(dx, n * ld_dx, 24, 0.0f, 1.0f);
    memcpy(dx_ref, dx, (size_t)(n * ld_dx) * 4);
    CHECK_OK(nerf_mlp_init_weights(&m, g->cpu, w, 5, 0, &err), &err);
    float *x_g = dev_new(g, x, (size_t)(n * ldx) * 4), *w_g = dev_new(g, w, (size_t)NW * 4);
    float *y_g = dev_new(g, y, (size_t)(n * ldy) * 4), *y2_g = dev_new(g, y, (size_t)(n * ldy) * 4);
    float *dy_g = dev_new(g, dy, (size_t)(n * ldy) * 4), *dw_g = dev_zeros(g, NW);
    float *dx_g = dev_new(g, dx, (size_t)(n * ld_dx) * 4),
          *scr_g = dev_new(g, NULL, (size_t)gs * 4);
    CHECK(x_g && w_g && y_g && y2_g && dy_g && dw_g && dx_g && scr_g);
    /* forward */
    CHECK_OK(nerf_mlp_fwd(&m, g->cpu, y, ldy, x, ldx, n, w, scr, &err), &err);
    CHECK_OK(nerf_cuda_mlp_fwd(&m, g->s, y_g, ldy, x_g, ldx, n, w_g, scr_g, &err), &err);
    CHECK_OK(nerf_cuda_mlp_fwd(&m, g->s, y2_g, ldy, x_g, ldx, n, w_g, NULL, &err), &err);
    CHECK(dev_get(g, y_d, y_g, (size_t)(n * ldy) * 4, "mlp y") == 0);
    CHECK(dev_get(g, y2_d, y2_g, (size_t)(n * ldy) * 4, "mlp y (inference)") == 0);
    /* 64-term dot products per layer in another order, with FMA */
    snprintf(what, sizeof what, "mlp fwd y %s", shape);
    CHECK(close_pct(what, y_d, y, n * ldy, 1e-5, 1e-4, 1.0));
    CHECK(memcmp(y_d, y2_d, (size_t)(n * ldy) * 4) == 0); /* same kernel, same bits */
    float *all = malloc((size_t)gs * 4); /* the scratch is one buffer: its guard is at its end */
    CHECK(all != NULL);
    CHECK(dev_get(g, all, scr_g, (size_t)gs * 4, "mlp scratch") == 0);
    memcpy(act_d, all, (size_t)act * 4);
    free(all);
    snprintf(what, sizeof what, "mlp fwd activations %s", shape);
    CHECK(close_pct(what, act_d, scr, act, 1e-5, 1e-4, 1.0));
    /* backward */
    CHECK_OK(nerf_mlp_bwd(&m, g->cpu, dw, dx, ld_dx, x, ldx, dy, ldy, n, w, scr, &err), &err);
    CHECK_OK(
        nerf_cuda_mlp_bwd(&m, g->s, dw_g, dx_g, ld_dx, x_g, ldx, dy_g, ldy, n, w_g, scr_g, &err),
        &err);
    CHECK(dev_get(g, dw_d, dw_g, (size_t)NW * 4, "mlp d_w") == 0);
    CHECK(dev_get(g, dx_d, dx_g, (size_t)(n * ld_dx) * 4, "mlp d_x") == 0);
    mlp_bwd_ref(&m, dw64, dx64, ld_dx, x, ldx, dy, ldy, n, w, act_d, act_d + n * H * 64);
    to_f32(ref, dw64, NW);
    for (int64_t r = 0; r < n; r++)
        to_f32(dx_ref + r * ld_dx, dx64 + r * ld_dx, I);
    /* against the exact masks: f32 sums of up to n terms against f64, relative to the scale */
    snprintf(what, sizeof what, "mlp bwd d_w vs f64 %s", shape);
    CHECK(close_pct(what, dw_d, ref, NW, 1e-5 * max_abs(ref, NW), 1e-4, 1.0));
    snprintf(what, sizeof what, "mlp bwd d_x vs f64 %s", shape);
    CHECK(close_pct(what, dx_d, dx_ref, n * ld_dx, 1e-6 * max_abs(dx_ref, n * ld_dx), 1e-4, 1.0));
    /* against the twin: ReLU' may flip where a pre-activation is within rounding of 0, changing
     * that row's gradients; the whole stays close (NMSE) and most rows agree */
    snprintf(what, sizeof what, "mlp bwd d_w vs cpu %s", shape);
    CHECK(eng_test_nmse(what, dw_d, dw, NW, 1e-4));
    snprintf(what, sizeof what, "mlp bwd d_x vs cpu %s", shape);
    CHECK(close_pct(what, dx_d, dx, n * ld_dx, 1e-5 * max_abs(dx, n * ld_dx), 1e-4, 0.999));
    /* accumulation: a second backward pass (after a fresh forward) doubles d_w */
    CHECK_OK(nerf_cuda_mlp_fwd(&m, g->s, y_g, ldy, x_g, ldx, n, w_g, scr_g, &err), &err);
    CHECK_OK(nerf_cuda_mlp_bwd(&m, g->s, dw_g, NULL, 0, x_g, ldx, dy_g, ldy, n, w_g, scr_g, &err),
             &err);
    CHECK(dev_get(g, dw_d, dw_g, (size_t)NW * 4, "mlp d_w twice") == 0);
    for (int64_t i = 0; i < NW; i++)
        ref[i] = (float)(2.0 * dw64[i]);
    snprintf(what, sizeof what, "mlp bwd d_w accumulated %s", shape);
    CHECK(close_pct(what, dw_d, ref, NW, 2e-5 * max_abs(ref, NW), 1e-4, 1.0));
    free(x), free(w), free(y), free(y_d), free(y2_d), free(dy), free(dw), free(dw_d), free(ref);
    free(dx), free(dx_d), free(dx_ref), free(scr), free(act_d), free(dw64), free(dx64);
    dev_release(g, mark);
    return 0;
}

static int test_mlp(void) {
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    nerf_mlp_params shapes[3];
    nerf_mlp_params_init(&shapes[0]); /* density: 32 -> 64 -> 16, none */
    nerf_mlp_params_init(&shapes[1]); /* colour: 32 -> 64 -> 64 -> 3, sigmoid */
    shapes[1].n_output = 3;
    shapes[1].n_hidden_layers = 2;
    shapes[1].output_act = NERF_ACT_SIGMOID;
    nerf_mlp_params_init(&shapes[2]); /* odd: 7 -> 64 x 3 -> 1, trunc_exp; 64 -> ... -> 64 relu */
    shapes[2].n_input = 7;
    shapes[2].n_output = 1;
    shapes[2].n_hidden_layers = 3;
    shapes[2].output_act = NERF_ACT_TRUNC_EXP;
    static const int64_t ns[5] = {1, 63, 64, 65, 70001};
    for (int k = 0; k < 3 && rc == 0; k++)
        for (int j = 0; j < 5 && rc == 0; j++)
            rc = mlp_case(&g, &shapes[k], ns[j]);
    if (rc == 0) {
        nerf_mlp_params wide = shapes[0];
        wide.n_input = wide.n_output = 64;
        wide.output_act = NERF_ACT_RELU;
        rc = mlp_case(&g, &wide, 1000);
    }
    gpu_close(&g);
    return rc;
}

/* ---- field ----------------------------------------------------------------------------------- */

/* The field on both sides; contract: the scene contraction (inner radius 0.5, the grid over the
 * contracted cube of side 2, as nerf_train sets it up), with points out to 20 radii. */
static int field_case(int contract) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    nerf_field_params fp;
    nerf_field_params_init(&fp);
    fp.grid.aabb_scale = 2.0f;
    fp.contract = contract;
    fp.inner_radius = 0.5f;
    nerf_field *f = NULL;
    nerf_cuda_field cf;
    CHECK_OK(nerf_field_create(&f, eng_ctx_alloc(g.ctx, ENG_DEVICE_CPU), g.cpu, &fp, &err), &err);
    CHECK_OK(nerf_cuda_field_init(&cf, &fp, &err), &err);
    const int64_t P = cf.layout.n_params, n = 20001;
    float *params = (float *)nerf_field_param_tensor(f)->data;
    /* tables of a trained size, so the grid matters next to the MLPs */
    eng_test_fill(params + cf.layout.grid, P - cf.layout.grid, 31, -0.5f, 0.5f);
    float *pos = malloc((size_t)(3 * n) * 4), *dir = malloc((size_t)(3 * n) * 4);
    float *sigma = malloc((size_t)n * 4), *rgb = malloc((size_t)(3 * n) * 4);
    float *sigma_d = malloc((size_t)n * 4), *rgb_d = malloc((size_t)(3 * n) * 4);
    float *ds = malloc((size_t)n * 4), *drgb = malloc((size_t)(3 * n) * 4);
    float *grads_d = malloc((size_t)P * 4);
    float *scr = malloc((size_t)nerf_field_scratch_floats(f, n) * 4);
    CHECK(pos && dir && sigma && rgb && sigma_d && rgb_d && ds && drgb && grads_d && scr);
    eng_test_fill(pos, 3 * n, 32, -0.6f, 1.6f);    /* the box is [-0.5, 1.5]^3: some outside */
    for (int64_t r = 0; contract && r < n; r += 3) /* contracted: a third far out */
        for (int a = 0; a < 3; a++)
            pos[3 * r + a] = 0.5f + 12.0f * (pos[3 * r + a] - 0.5f);
    eng_test_fill(dir, 3 * n, 33, -1.0f, 1.0f);
    normalize_rows(dir, n);
    eng_test_fill(ds, n, 34, -1.0f, 1.0f);
    eng_test_fill(drgb, 3 * n, 35, -1.0f, 1.0f);
    float *params_g = dev_new(&g, params, (size_t)P * 4), *grads_g = dev_zeros(&g, P);
    float *pos_g = dev_new(&g, pos, (size_t)(3 * n) * 4),
          *dir_g = dev_new(&g, dir, (size_t)(3 * n) * 4);
    float *sigma_g = dev_new(&g, NULL, (size_t)n * 4),
          *rgb_g = dev_new(&g, NULL, (size_t)(3 * n) * 4);
    float *ds_g = dev_new(&g, ds, (size_t)n * 4), *drgb_g = dev_new(&g, drgb, (size_t)(3 * n) * 4);
    float *scr_g = dev_new(&g, NULL, (size_t)nerf_cuda_field_scratch_floats(&cf, n) * 4);
    CHECK(params_g && grads_g && pos_g && dir_g && sigma_g && rgb_g && ds_g && drgb_g && scr_g);
    for (int colour = 1; colour >= 0; colour--) {
        const char *mode = colour ? (contract ? "colour, contracted" : "colour")
                                  : (contract ? "density only, contracted" : "density only");
        char what[96];
        nerf_field_zero_grads(f, g.cpu);
        CHECK_OK(nerf_field_fwd(f, g.cpu, sigma, colour ? rgb : NULL, pos, colour ? dir : NULL, n,
                                scr, &err),
                 &err);
        CHECK_OK(nerf_cuda_field_fwd(&cf, g.s, sigma_g, colour ? rgb_g : NULL, pos_g,
                                     colour ? dir_g : NULL, n, params_g, scr_g, &err),
                 &err);
        CHECK(dev_get(&g, sigma_d, sigma_g, (size_t)n * 4, "field sigma") == 0);
        snprintf(what, sizeof what, "field sigma (%s)", mode);
        CHECK(close_pct(what, sigma_d, sigma, n, 1e-5, 1e-4, 1.0));
        if (colour) {
            CHECK(dev_get(&g, rgb_d, rgb_g, (size_t)(3 * n) * 4, "field rgb") == 0);
            CHECK(close_pct("field rgb", rgb_d, rgb, 3 * n, 1e-5, 1e-4, 1.0));
        }
        CHECK_OK(nerf_field_bwd(f, g.cpu, ds, colour ? drgb : NULL, n, scr, &err), &err);
        float *zeros = calloc((size_t)P, 4);
        CHECK(zeros != NULL);
        CHECK(g.b->copy(g.b->impl, g.s, grads_g, zeros, (size_t)P * 4, ENG_COPY_H2D, &err) == 0);
        CHECK(g.b->stream_sync(g.b->impl, g.s, &err) == 0);
        free(zeros);
        CHECK_OK(nerf_cuda_field_bwd(&cf, g.s, grads_g, ds_g, colour ? drgb_g : NULL, n, params_g,
                                     scr_g, &err),
                 &err);
        CHECK(dev_get(&g, grads_d, grads_g, (size_t)P * 4, "field grads") == 0);
        const float *gc = (const float *)nerf_field_grad_tensor(f)->data;
        const int64_t nm = cf.layout.n_matrix;
        /* ReLU' may flip between the two where a hidden pre-activation is within rounding of 0
         * (tests the MLP case checks exactly), and the tables sum with atomics: the MLP
         * gradients as a whole (NMSE), the tables per entry for 99% of them (tiny-cuda-nn) */
        snprintf(what, sizeof what, "field grads, MLPs (%s)", mode);
        CHECK(eng_test_nmse(what, grads_d, gc, nm, 1e-4));
        CHECK(close_pct(what, grads_d, gc, nm, 1e-4 * max_abs(gc, nm), 1e-3, 0.9));
        snprintf(what, sizeof what, "field grads, tables (%s)", mode);
        CHECK(eng_test_nmse(what, grads_d + nm, gc + nm, P - nm, 1e-4));
        CHECK(close_pct(what, grads_d + nm, gc + nm, P - nm,
                        1e-4 * (1e-6 + max_abs(gc + nm, P - nm)), 1e-3, 0.99));
    }
    free(pos), free(dir), free(sigma), free(rgb), free(sigma_d), free(rgb_d), free(ds), free(drgb);
    free(grads_d), free(scr);
    nerf_field_destroy(f);
    gpu_close(&g);
    return 0;
}

static int test_field(void) {
    return field_case(0);
}
static int test_field_contract(void) {
    return field_case(1);
}

/* ---- marching and compositing ---------------------------------------------------------------- */

/* Rays from a sphere of radius 1.5..3 around the centre, aimed near it (some miss the box). */
static void make_rays(float *o, float *d, int64_t n, uint64_t stream) {
    float *u = malloc((size_t)(6 * n) * sizeof *u);
    if (u == NULL) return;
    eng_test_fill(u, 6 * n, stream, -1.0f, 1.0f);
    for (int64_t r = 0; r < n; r++) {
        float *dir = d + 3 * r, *org = o + 3 * r;
        const float *ur = u + 6 * r;
        float v[3] = {ur[0], ur[1], ur[2] + 0.01f};
        normalize_rows(v, 1);
        const float rad = 2.25f + 0.75f * ur[3];
        for (int a = 0; a < 3; a++) {
            org[a] = 0.5f + rad * v[a];
            dir[a] = -v[a] + 0.6f * ur[4 + (a & 1)] * (a == 2 ? -1.0f : 1.0f);
        }
        normalize_rows(dir, 1);
    }
    free(u);
}

/* A CPU occupancy grid with blobs of occupied cells. */
static int make_occgrid(
    eng_ctx *ctx, nerf_occgrid **out, int cascades, int res, const nerf_march_params *contract) {
    eng_err err = {0};
    nerf_occgrid_params op;
    nerf_occgrid_params_init(&op);
    op.cascades = cascades;
    op.res = res;
    if (contract != NULL) { /* as nerf_train sets a contracted grid up */
        op.contract = 1;
        op.inner_radius = contract->inner_radius;
        op.cone_angle = contract->cone_angle;
        op.dt_max = contract->dt_max;
        op.contract_step = contract->contract_step;
        op.dt_min = contract->dt_min;
    }
    CHECK_OK(nerf_occgrid_create(out, &op, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err), &err);
    uint8_t *bits = nerf_occgrid_bits(*out);
    const int64_t cells = (int64_t)res * res * res;
    for (int k = 0; k < cascades; k++) {
        for (int64_t c = 0; c < cells; c++) {
            const int64_t x = c % res, y = (c / res) % res, z = c / (res * res);
            const int blob = ((x / 4 + y / 3 + z / 5 + k) % 3) == 0;
            const float u = eng_philox_uniform_at(eng_test_seed(), 41, (uint64_t)(k * cells + c));
            bits[k * cells + c] = blob && u < 0.8f;
        }
    }
    return 0;
}

/* Marching on both sides; contract: the contracted march (inner radius 0.5, far 32) through a
 * contracted grid. */
static int march_case(int contract) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    const int64_t R = 5003;
    const int cascades = contract ? 1 : 2, res = 32;
    nerf_march_params cmp;
    nerf_march_params_init_contract(&cmp, 0.5f, 32.0f);
    float *o = malloc((size_t)(3 * R) * 4), *d = malloc((size_t)(3 * R) * 4);
    int64_t *start_d = malloc((size_t)(R + 1) * sizeof *start_d);
    CHECK(o && d && start_d);
    make_rays(o, d, R, 42);
    nerf_occgrid *grid = NULL;
    CHECK(make_occgrid(g.ctx, &grid, cascades, res, contract ? &cmp : NULL) == 0);
    const int64_t cells = (int64_t)res * res * res * cascades;
    uint8_t *bits_g = dev_new(&g, nerf_occgrid_bits(grid), (size_t)cells);
    float *o_g = dev_new(&g, o, (size_t)(3 * R) * 4), *d_g = dev_new(&g, d, (size_t)(3 * R) * 4);
    int64_t *start_g = dev_new(&g, NULL, (size_t)(R + 1) * sizeof *start_g);
    CHECK(bits_g && o_g && d_g && start_g);
    for (int with_grid = 1; with_grid >= 0; with_grid--) {
        nerf_march_params mp;
        nerf_samples s = {0};
        nerf_march_params_init(&mp, 2.0f); /* cone stepping (aabb > 1) */
        if (contract) mp = cmp;
        if (!with_grid) mp.max_samples = 300; /* the per-ray cap binds */
        CHECK_OK(nerf_march(&s, with_grid ? grid : NULL, &mp, R, o, d, NULL, &err), &err);
        const nerf_cuda_occ occ = {with_grid ? bits_g : NULL, cascades, res};
        int64_t n = -1, kept = -1;
        CHECK_OK(nerf_cuda_march_count(&occ, &mp, g.s, start_g, R, o_g, d_g, -1, &n, &kept, &err),
                 &err);
        CHECK(dev_get(&g, start_d, start_g, (size_t)(R + 1) * sizeof *start_d, "march start") == 0);
        CHECK_EQ_I64(kept, R);
        CHECK_EQ_I64(start_d[0], 0);
        CHECK_EQ_I64(n, start_d[R]);
        int64_t diff_rays = 0, first = -1;
        for (int64_t r = 0; r < R; r++) {
            if (start_d[r + 1] - start_d[r] != s.start[r + 1] - s.start[r]) {
                if (first < 0) first = r;
                diff_rays++;
            }
        }
        fprintf(stderr,
                "march (%s%s): %" PRId64 " samples on the CPU, %" PRId64 " on CUDA, %" PRId64
                " rays of %" PRId64 " with other counts\n",
                with_grid ? "grid" : "no grid", contract ? ", contracted" : "", s.n, n, diff_rays,
                R);
        if (first >= 0)
            fprintf(stderr, "  first: ray %" PRId64 ": cpu %" PRId64 " cuda %" PRId64 "\n", first,
                    s.start[first + 1] - s.start[first], start_d[first + 1] - start_d[first]);
        CHECK(s.n > 10 * R); /* the test marches something */
        CHECK(diff_rays * 1000 <= R);
        /* the samples: fill, download, compare ray by ray where the counts agree */
        const int mark = g.n_bufs;
        float *pos_g = dev_new(&g, NULL, (size_t)(3 * n) * 4),
              *dir_g = dev_new(&g, NULL, (size_t)(3 * n) * 4);
        float *t_g = dev_new(&g, NULL, (size_t)n * 4), *dt_g = dev_new(&g, NULL, (size_t)n * 4);
        CHECK(pos_g && dir_g && t_g && dt_g);
        const nerf_cuda_samples smp = {R, n, start_g, pos_g, dir_g, t_g, dt_g};
        CHECK_OK(nerf_cuda_march_fill(&occ, &mp, g.s, &smp, o_g, d_g, &err), &err);
        float *pos = malloc((size_t)(3 * n) * 4), *dir = malloc((size_t)(3 * n) * 4);
        float *t = malloc((size_t)n * 4), *dt = malloc((size_t)n * 4);
        CHECK(pos && dir && t && dt);
        CHECK(dev_get(&g, pos, pos_g, (size_t)(3 * n) * 4, "march pos") == 0);
        CHECK(dev_get(&g, dir, dir_g, (size_t)(3 * n) * 4, "march dir") == 0);
        CHECK(dev_get(&g, t, t_g, (size_t)n * 4, "march t") == 0);
        CHECK(dev_get(&g, dt, dt_g, (size_t)n * 4, "march dt") == 0);
        int64_t bad = 0;
        for (int64_t r = 0; r < R; r++) {
            const int64_t c0 = s.start[r], g0 = start_d[r], cnt = s.start[r + 1] - c0;
            if (cnt != start_d[r + 1] - g0) continue;
            for (int64_t i = 0; i < cnt; i++) {
                int same = t[g0 + i] == s.t[c0 + i] && dt[g0 + i] == s.dt[c0 + i];
                for (int a = 0; a < 3; a++)
                    same &= pos[3 * (g0 + i) + a] == s.pos[3 * (c0 + i) + a] &&
                            dir[3 * (g0 + i) + a] == s.dir[3 * (c0 + i) + a];
                if (!same && bad++ == 0)
                    fprintf(stderr,
                            "march: ray %" PRId64 " sample %" PRId64 ": cuda t %.9g dt %.9g, "
                            "cpu t %.9g dt %.9g\n",
                            r, i, (double)t[g0 + i], (double)dt[g0 + i], (double)s.t[c0 + i],
                            (double)s.dt[c0 + i]);
            }
        }
        CHECK_EQ_I64(bad, 0); /* -fmad=false: the same arithmetic, the same bits */
        /* the cap: the rays whose samples fit in half of them (nerf_train's rule) */
        const int64_t cap = n / 2;
        int64_t want = R;
        while (want > 1 && start_d[want] > cap)
            want--;
        CHECK_OK(nerf_cuda_march_count(&occ, &mp, g.s, start_g, R, o_g, d_g, cap, &n, &kept, &err),
                 &err);
        CHECK_EQ_I64(kept, want);
        want = R;
        while (want > 1 && start_d[want] > 0)
            want--;
        CHECK_OK(nerf_cuda_march_count(&occ, &mp, g.s, start_g, R, o_g, d_g, 0, &n, &kept, &err),
                 &err);
        CHECK_EQ_I64(kept, want);
        free(pos), free(dir), free(t), free(dt);
        dev_release(&g, mark);
        nerf_samples_free(&s);
    }
    free(o), free(d), free(start_d);
    nerf_occgrid_destroy(grid);
    gpu_close(&g);
    return 0;
}

static int test_march(void) {
    return march_case(0);
}
static int test_march_contract(void) {
    return march_case(1);
}

static int test_composite(void) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    const int64_t R = 4001;
    float *o = malloc((size_t)(3 * R) * 4), *d = malloc((size_t)(3 * R) * 4);
    CHECK(o && d);
    make_rays(o, d, R, 51);
    nerf_march_params mp;
    nerf_samples s = {0};
    nerf_march_params_init(&mp, 1.0f);
    CHECK_OK(nerf_march(&s, NULL, &mp, R, o, d, NULL, &err), &err);
    const int64_t n = s.n;
    CHECK(n > R);
    float *sigma = malloc((size_t)n * 4), *rgb = malloc((size_t)(3 * n) * 4);
    float *bg = malloc((size_t)(3 * R) * 4), *color = malloc((size_t)(3 * R) * 4);
    float *opac = malloc((size_t)R * 4), *depth = malloc((size_t)R * 4);
    float *color_d = malloc((size_t)(3 * R) * 4), *opac_d = malloc((size_t)R * 4);
    float *depth_d = malloc((size_t)R * 4), *dcolor = malloc((size_t)(3 * R) * 4);
    float *dsig = malloc((size_t)n * 4), *drgb = malloc((size_t)(3 * n) * 4);
    float *dsig_d = malloc((size_t)n * 4), *drgb_d = malloc((size_t)(3 * n) * 4);
    CHECK(sigma && rgb && bg && color && opac && depth && color_d && opac_d && depth_d && dcolor);
    CHECK(dsig && drgb && dsig_d && drgb_d);
    /* densities up to 60 per unit: many rays saturate and stop early, some stay transparent */
    eng_test_fill(sigma, n, 52, 0.0f, 60.0f);
    for (int64_t i = 0; i < n; i += 3)
        sigma[i] *= 0.01f;
    eng_test_fill(rgb, 3 * n, 53, 0.0f, 1.0f);
    eng_test_fill(bg, 3 * R, 54, 0.0f, 1.0f);
    eng_test_fill(dcolor, 3 * R, 55, -1.0f, 1.0f);
    int64_t *start_g = dev_new(&g, s.start, (size_t)(R + 1) * 8);
    float *pos_g = dev_new(&g, s.pos, (size_t)(3 * n) * 4),
          *dir_g = dev_new(&g, s.dir, (size_t)(3 * n) * 4);
    float *t_g = dev_new(&g, s.t, (size_t)n * 4), *dt_g = dev_new(&g, s.dt, (size_t)n * 4);
    float *sigma_g = dev_new(&g, sigma, (size_t)n * 4),
          *rgb_g = dev_new(&g, rgb, (size_t)(3 * n) * 4);
    float *bg_g = dev_new(&g, bg, (size_t)(3 * R) * 4),
          *color_g = dev_new(&g, NULL, (size_t)(3 * R) * 4);
    float *opac_g = dev_new(&g, NULL, (size_t)R * 4), *depth_g = dev_new(&g, NULL, (size_t)R * 4);
    float *dcolor_g = dev_new(&g, dcolor, (size_t)(3 * R) * 4);
    float *dsig_g = dev_new(&g, NULL, (size_t)n * 4),
          *drgb_g = dev_new(&g, NULL, (size_t)(3 * n) * 4);
    CHECK(start_g && pos_g && dir_g && t_g && dt_g && sigma_g && rgb_g && bg_g && color_g);
    CHECK(opac_g && depth_g && dcolor_g && dsig_g && drgb_g);
    const nerf_cuda_samples smp = {R, n, start_g, pos_g, dir_g, t_g, dt_g};
    nerf_composite_forward(&s, sigma, rgb, bg, color, opac, depth, NULL);
    CHECK_OK(
        nerf_cuda_composite_fwd(&smp, g.s, sigma_g, rgb_g, bg_g, color_g, opac_g, depth_g, &err),
        &err);
    CHECK(dev_get(&g, color_d, color_g, (size_t)(3 * R) * 4, "color") == 0);
    CHECK(dev_get(&g, opac_d, opac_g, (size_t)R * 4, "opacity") == 0);
    CHECK(dev_get(&g, depth_d, depth_g, (size_t)R * 4, "depth") == 0);
    /* f64 sums of the same terms; expf differs by an ulp or two (and may move a stop) */
    CHECK(close_pct("composite color", color_d, color, 3 * R, 1e-5, 1e-5, 0.999));
    CHECK(close_pct("composite opacity", opac_d, opac, R, 1e-5, 1e-5, 0.999));
    CHECK(close_pct("composite depth", depth_d, depth, R, 1e-5, 1e-5, 0.999));
    /* backward from the CPU's color, so both sides see the same inputs */
    float *colin_g = dev_new(&g, color, (size_t)(3 * R) * 4);
    CHECK(colin_g != NULL);
    nerf_composite_backward(&s, sigma, rgb, bg, color, dcolor, dsig, drgb, NULL);
    CHECK_OK(nerf_cuda_composite_bwd(&smp, g.s, sigma_g, rgb_g, bg_g, colin_g, dcolor_g, dsig_g,
                                     drgb_g, &err),
             &err);
    CHECK(dev_get(&g, dsig_d, dsig_g, (size_t)n * 4, "d_sigma") == 0);
    CHECK(dev_get(&g, drgb_d, drgb_g, (size_t)(3 * n) * 4, "d_rgb") == 0);
    CHECK(close_pct("composite d_sigma", dsig_d, dsig, n, 1e-6 * (1.0 + max_abs(dsig, n)), 1e-4,
                    0.999));
    CHECK(close_pct("composite d_rgb", drgb_d, drgb, 3 * n, 1e-6, 1e-4, 0.999));
    free(o), free(d), free(sigma), free(rgb), free(bg), free(color), free(opac), free(depth);
    free(color_d), free(opac_d), free(depth_d), free(dcolor), free(dsig), free(drgb);
    free(dsig_d), free(drgb_d);
    nerf_samples_free(&s);
    gpu_close(&g);
    return 0;
}

/* ---- Adam ------------------------------------------------------------------------------------ */

static int test_adam(void) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    nerf_adam_params ap;
    nerf_adam_params_init(&ap);
    ap.n_params = 100003;
    ap.n_matrix = 3001;
    ap.l2_reg = 1e-3f; /* big enough to show in the comparison */
    const int64_t N = ap.n_params;
    nerf_adam *opt = NULL;
    CHECK_OK(nerf_adam_create(&opt, eng_ctx_alloc(g.ctx, ENG_DEVICE_CPU), &ap, &err), &err);
    float *w = malloc((size_t)N * 4), *gr = malloc((size_t)N * 4), *got = malloc((size_t)N * 4);
    uint32_t *tz = calloc((size_t)N, 4), *tgot = malloc((size_t)N * 4);
    CHECK(w && gr && got && tz && tgot);
    eng_test_fill(w, N, 61, -1.0f, 1.0f);
    float *w_g = dev_new(&g, w, (size_t)N * 4), *m_g = dev_zeros(&g, N), *v_g = dev_zeros(&g, N);
    uint32_t *t_g = dev_new(&g, tz, (size_t)N * 4);
    float *gr_g = dev_new(&g, NULL, (size_t)N * 4);
    CHECK(w_g && m_g && v_g && t_g && gr_g);
    for (int step = 0; step < 3; step++) {
        eng_test_fill(gr, N, 62 + (uint64_t)step, -1e-2f, 1e-2f);
        for (int64_t i = ap.n_matrix + step; i < N; i += 3) /* untouched table entries */
            gr[i] = 0.0f;
        CHECK(g.b->copy(g.b->impl, g.s, gr_g, gr, (size_t)N * 4, ENG_COPY_H2D, &err) == 0);
        CHECK(g.b->stream_sync(g.b->impl, g.s, &err) == 0); /* gr is rewritten next step */
        CHECK_OK(nerf_adam_step(opt, g.cpu, w, gr, 1e-2f, &err), &err);
        CHECK_OK(nerf_cuda_adam_step(&ap, g.s, w_g, m_g, v_g, t_g, gr_g, 1e-2f, &err), &err);
    }
    CHECK(dev_get(&g, got, w_g, (size_t)N * 4, "adam params") == 0);
    CHECK(close_pct("adam params", got, w, N, 1e-7, 1e-6, 1.0));
    CHECK(dev_get(&g, got, m_g, (size_t)N * 4, "adam m") == 0);
    CHECK(close_pct("adam m", got, (const float *)nerf_adam_first_moment(opt)->data, N, 1e-9, 1e-6,
                    1.0));
    CHECK(dev_get(&g, got, v_g, (size_t)N * 4, "adam v") == 0);
    CHECK(close_pct("adam v", got, (const float *)nerf_adam_second_moment(opt)->data, N, 1e-12,
                    1e-6, 1.0));
    CHECK(dev_get(&g, tgot, t_g, (size_t)N * 4, "adam t") == 0);
    CHECK(memcmp(tgot, nerf_adam_param_steps(opt)->data, (size_t)N * 4) == 0);
    free(w), free(gr), free(got), free(tz), free(tgot);
    nerf_adam_destroy(opt);
    gpu_close(&g);
    return 0;
}

/* ---- occupancy grid -------------------------------------------------------------------------- */

/* A ball of density 200 at (0.55, 0.5, 0.45), radius 0.3, with a soft edge. */
static float ball_density(const float p[3]) {
    const float dx = p[0] - 0.55f, dy = p[1] - 0.5f, dz = p[2] - 0.45f;
    const float r = sqrtf(dx * dx + dy * dy + dz * dz);
    return r < 0.3f ? 200.0f : 200.0f * expf(-40.0f * (r - 0.3f));
}

static int ball_fn(void *user, float *sigma, const float *pos, int64_t n, eng_err *err) {
    (void)user, (void)err;
    for (int64_t i = 0; i < n; i++)
        sigma[i] = ball_density(pos + 3 * i);
    return ENG_OK;
}

/* The occupancy update on both sides; contract: one grid over the contracted cube (inner radius
 * 0.5: cell points mapped back, the max(1, m) factor, the inner cube's mean). */
static int occgrid_case(int contract) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    nerf_occgrid_params op;
    nerf_occgrid_params_init(&op);
    op.cascades = contract ? 1 : 2;
    op.contract = contract;
    op.res = 24;
    op.warmup_steps = 2;
    op.seed = 77;
    nerf_occgrid *grid = NULL;
    CHECK_OK(nerf_occgrid_create(&grid, &op, eng_ctx_alloc(g.ctx, ENG_DEVICE_CPU), &err), &err);
    const int64_t total = (int64_t)op.res * op.res * op.res * op.cascades;
    const int64_t max_pick = nerf_cuda_occgrid_pick_count(&op, 0);
    float *vals0 = calloc((size_t)total, 4), *vals = malloc((size_t)total * 4);
    uint8_t *bits0 = malloc((size_t)total), *bits = malloc((size_t)total);
    int64_t *idx = malloc((size_t)max_pick * 8);
    float *pos = malloc((size_t)(3 * max_pick) * 4), *sigma = malloc((size_t)max_pick * 4);
    CHECK(vals0 && vals && bits0 && bits && idx && pos && sigma);
    memset(bits0, 1, (size_t)total);
    float *vals_g = dev_new(&g, vals0, (size_t)total * 4),
          *fresh_g = dev_new(&g, NULL, (size_t)total * 4);
    uint8_t *bits_g = dev_new(&g, bits0, (size_t)total);
    CHECK(vals_g && fresh_g && bits_g);
    static const int64_t steps[3] = {0, 1, 5}; /* warm-up twice, then random + occupied */
    for (int k = 0; k < 3; k++) {
        const int64_t step = steps[k], np = nerf_cuda_occgrid_pick_count(&op, step);
        /* outputs of exactly np picks, so the guards sit right after them */
        const int mark = g.n_bufs;
        int64_t *idx_g = dev_new(&g, NULL, (size_t)np * 8);
        float *pos_g = dev_new(&g, NULL, (size_t)(3 * np) * 4);
        float *sigma_g = dev_new(&g, NULL, (size_t)np * 4);
        CHECK(idx_g && pos_g && sigma_g);
        CHECK_OK(nerf_occgrid_update(grid, step, ball_fn, NULL, &err), &err);
        CHECK_OK(nerf_cuda_occgrid_pick(&op, g.s, step, idx_g, pos_g, bits_g, &err), &err);
        CHECK(dev_get(&g, idx, idx_g, (size_t)np * 8, "occ idx") == 0);
        CHECK(dev_get(&g, pos, pos_g, (size_t)(3 * np) * 4, "occ pos") == 0);
        for (int64_t j = 0; j < np; j++) {
            CHECK(idx[j] >= -1 && idx[j] < total);
            sigma[j] = ball_density(pos + 3 * j);
        }
        CHECK(g.b->copy(g.b->impl, g.s, sigma_g, sigma, (size_t)np * 4, ENG_COPY_H2D, &err) == 0);
        CHECK(g.b->stream_sync(g.b->impl, g.s, &err) == 0);
        CHECK_OK(
            nerf_cuda_occgrid_update(&op, g.s, vals_g, bits_g, fresh_g, idx_g, sigma_g, np, &err),
            &err);
        CHECK(dev_get(&g, vals, vals_g, (size_t)total * 4, "occ values") == 0);
        CHECK(dev_get(&g, bits, bits_g, (size_t)total, "occ bits") == 0);
        const float *want = nerf_occgrid_values(grid);
        const uint8_t *want_bits = nerf_occgrid_bits(grid);
        int64_t bad_v = 0, bad_b = 0, occupied = 0;
        for (int64_t i = 0; i < total; i++) {
            bad_v += vals[i] != want[i];
            bad_b += bits[i] != want_bits[i];
            occupied += want_bits[i] != 0;
        }
        fprintf(stderr,
                "occgrid%s step %" PRId64 ": %" PRId64 " picks, %" PRId64 " of %" PRId64
                " cells occupied; %" PRId64 " values and %" PRId64 " bits differ\n",
                contract ? " (contracted)" : "", step, np, occupied, total, bad_v, bad_b);
        CHECK(occupied > 0 && occupied < total); /* the ball shows */
        /* the same picks, points and arithmetic (-fmad=false): the same values */
        CHECK_EQ_I64(bad_v, 0);
        CHECK_EQ_I64(bad_b, 0);
        dev_release(&g, mark);
    }
    free(vals0), free(vals), free(bits0), free(bits), free(idx), free(pos), free(sigma);
    nerf_occgrid_destroy(grid);
    gpu_close(&g);
    return 0;
}

static int test_occgrid(void) {
    return occgrid_case(0);
}
static int test_occgrid_contract(void) {
    return occgrid_case(1);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static int test_errors(void) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    nerf_hashgrid hg;
    CHECK(make_grid(&hg, 2, 4, 10) == 0);
    float *buf = dev_zeros(&g, 4096);
    CHECK(buf != NULL);
    /* n < 0, NULL buffers, a CPU stream */
    CHECK(nerf_cuda_hashgrid_fwd(&hg, g.s, buf, buf, -1, buf, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "nerf_cuda_hashgrid_fwd");
    CHECK(nerf_cuda_hashgrid_bwd(&hg, g.s, NULL, buf, 5, buf, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "d_table is NULL");
    CHECK(nerf_cuda_hashgrid_fwd(&hg, g.cpu, buf, buf, 5, buf, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "expected cuda");
    CHECK_OK(nerf_cuda_hashgrid_fwd(&hg, g.s, NULL, NULL, 0, NULL, &err), &err); /* n = 0 */
    CHECK(nerf_cuda_sh_encode(g.s, buf, 15, buf, 3, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "ld_out");
    /* MLP shapes the fused kernel does not cover */
    nerf_mlp_params mp;
    nerf_mlp m;
    nerf_mlp_params_init(&mp);
    mp.width = 128;
    CHECK_OK(nerf_mlp_init(&m, &mp, &err), &err);
    CHECK(nerf_cuda_mlp_fwd(&m, g.s, buf, 16, buf, 32, 4, buf, NULL, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "width 64");
    mp.width = 64;
    mp.n_input = 65;
    CHECK_OK(nerf_mlp_init(&m, &mp, &err), &err);
    CHECK(nerf_cuda_mlp_fwd(&m, g.s, buf, 16, buf, 65, 4, buf, NULL, &err) == ENG_E_UNSUPPORTED);
    mp.n_input = 32;
    CHECK_OK(nerf_mlp_init(&m, &mp, &err), &err);
    CHECK(nerf_cuda_mlp_fwd(&m, g.s, buf, 15, buf, 32, 4, buf, NULL, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "ldy");
    CHECK(nerf_cuda_mlp_bwd(&m, g.s, buf, NULL, 0, buf, 32, buf, 16, 4, buf, NULL, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "scratch is NULL");
    /* the field: colour needs both rgb and dir */
    nerf_field_params fp;
    nerf_cuda_field cf;
    nerf_field_params_init(&fp);
    fp.grid.log2_table_size = 10;
    CHECK_OK(nerf_cuda_field_init(&cf, &fp, &err), &err);
    CHECK(nerf_cuda_field_fwd(&cf, g.s, buf, buf, buf, NULL, 4, buf, buf, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "dir NULL");
    /* marching: bad params, no arena */
    nerf_march_params mpar;
    nerf_march_params_init(&mpar, 1.0f);
    const nerf_cuda_occ occ = {NULL, 1, 16};
    int64_t n = 0, kept = 0;
    mpar.dt_min = 0.0f;
    CHECK(nerf_cuda_march_count(&occ, &mpar, g.s, (int64_t *)buf, 2, buf, buf, -1, &n, &kept,
                                &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "dt_min");
    nerf_march_params_init(&mpar, 1.0f);
    eng_stream bare = *g.s;
    bare.arena = NULL;
    CHECK(nerf_cuda_march_count(&occ, &mpar, &bare, (int64_t *)buf, 2, buf, buf, -1, &n, &kept,
                                &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "arena");
    /* Adam: a bad learning rate */
    nerf_adam_params ap;
    nerf_adam_params_init(&ap);
    ap.n_params = 16;
    CHECK(nerf_cuda_adam_step(&ap, g.s, buf, buf, buf, (uint32_t *)buf, buf, NAN, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "learning rate");
    /* the occupancy grid: odd resolution */
    nerf_occgrid_params op;
    nerf_occgrid_params_init(&op);
    op.res = 15;
    CHECK(nerf_cuda_occgrid_pick(&op, g.s, 0, (int64_t *)buf, buf, NULL, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "res 15");
    /* nothing above launched anything that failed: the stream is healthy */
    CHECK_OK(g.b->stream_sync(g.b->impl, g.s, &err), &err);
    gpu_close(&g);
    return 0;
}

/* ---- the training step's kernels and the device trainer (nerf_train_cuda.h) ------------------ */

/* A 2-frame transforms.json with lens distortion (parsed only: cameras, no pixels). */
static const char DISTORTED_JSON[] =
    "{\"fl_x\": 30.5, \"fl_y\": 29.0, \"cx\": 17.2, \"cy\": 14.9, \"w\": 37, \"h\": 29,"
    " \"k1\": -0.12, \"k2\": 0.03, \"p1\": 0.002, \"p2\": -0.001, \"scale\": 0.4,"
    " \"offset\": [0.5, 0.45, 0.55], \"frames\": ["
    "{\"file_path\": \"a\", \"transform_matrix\": [[0.8, -0.36, 0.48, 1.1], [0.6, 0.48, -0.64, "
    "-0.9], [0.0, 0.8, 0.6, 1.7], [0, 0, 0, 1]]},"
    "{\"file_path\": \"b\", \"k1\": 0, \"k2\": 0, \"p1\": 0, \"p2\": 0, \"transform_matrix\": "
    "[[1, 0, 0, 0.2], [0, 0, -1, -2.0], [0, 1, 0, 0.4], [0, 0, 0, 1]]}]}";

/* The shared maths (cpu): the cameras' rays are nerf_dataset_ray's (distortion included), the
 * learning-rate schedule, the pixel picks stay in range; without CUDA the device trainer refuses. */
static int test_train_math(void) {
    eng_err err = {0};
    nerf_dataset *ds = NULL;
    CHECK_OK(
        nerf_dataset_parse_json(&ds, DISTORTED_JSON, sizeof DISTORTED_JSON - 1, "distorted", &err),
        &err);
    double worst = 0.0;
    for (int64_t f = 0; f < 2; f++) {
        nerf_train_cam cam;
        nerf_train_cam_of_frame(&cam, ds, f);
        for (int64_t i = 0; i < 37 * 29; i++) {
            const float px = (float)(i % 37) + 0.37f * (float)(i % 3) - 0.5f;
            const float py = (float)(i / 37) - 0.21f * (float)(i % 5);
            float o[3], d[3], o2[3], d2[3];
            nerf_dataset_ray(ds, f, px, py, o, d);
            nerf_train_cam_ray(&cam, px, py, o2, d2);
            for (int a = 0; a < 3; a++) {
                CHECK(o[a] == o2[a]);
                const double e = fabs((double)d[a] - (double)d2[a]);
                worst = e > worst ? e : worst;
            }
        }
    }
    fprintf(stderr, "train_math: camera rays vs nerf_dataset_ray: max |d error| %.3g\n", worst);
    CHECK(worst <= 1e-6); /* f32 vs f64 rotation */
    /* the pinhole ray of nerf_trainer_render: unit length, through the principal point */
    nerf_train_cam pc;
    memset(&pc, 0, sizeof pc);
    nerf_dataset_c2w_model(ds, 1, pc.c2w);
    pc.fx = pc.fy = 20.0f, pc.cx = 8.5f, pc.cy = 4.5f;
    float o[3], d[3];
    nerf_train_pinhole_ray(&pc, 8, 4, o, d);
    CHECK(fabs(d[0] - 0.0) < 1e-7 && fabs(d[1] - 1.0) < 1e-7 && fabs(d[2]) < 1e-7);
    /* nerf_train.c's schedule */
    CHECK(nerf_train_lr_at(0.01f, 0) == 0.01f && nerf_train_lr_at(0.01f, 29999) == 0.01f);
    CHECK(nerf_train_lr_at(0.01f, 30001) == 0.01f * powf(0.33f, 1.0f));
    /* picks: u close to 1 stays in range */
    const float u[8] = {0.99999994f, 0.99999994f, 0.99999994f, 0, 0, 0, 0, 0};
    int64_t f = -1, x = -1, y = -1;
    nerf_train_pick(u, 3, 7, 5, &f, &x, &y);
    CHECK(f == 2 && x == 6 && y == 4);
    /* the target: straight colour over the background */
    const uint8_t c[4] = {255, 0, 51, 102};
    const float bgc[3] = {0.0f, 1.0f, 0.5f};
    float tg[3];
    nerf_train_target(c, bgc, tg);
    CHECK(fabs(tg[0] - 0.4) < 1e-6 && fabs(tg[1] - 0.6) < 1e-6 &&
          fabs(tg[2] - (0.2 * 0.4 + 0.3)) < 1e-6);
#ifndef ENG_HAVE_CUDA
    nerf_cuda_trainer *t = (nerf_cuda_trainer *)&err;
    CHECK(nerf_cuda_trainer_create(&t, NULL, NULL, NULL, NULL, NULL, NULL, NULL, &err) ==
          ENG_E_UNSUPPORTED);
    CHECK(t == NULL);
    CHECK_CONTAINS(err.msg, "built without CUDA");
    CHECK(nerf_cuda_l2_loss(NULL, NULL, NULL, NULL, NULL, 3, &err) == ENG_E_UNSUPPORTED);
    nerf_cuda_trainer_destroy(NULL);
#endif
    nerf_dataset_destroy(ds);
    return 0;
}

/* The procedural scene at size x size in the tmpdir, loaded (split "train" or "test"). */
static int scene_load(nerf_dataset **ds, eng_ctx *ctx, int64_t size, const char *split) {
    eng_err err = {0};
    char dir[700];
    snprintf(dir, sizeof dir, "%s/nerf_cuda_scene%lld", eng_test_tmpdir(), (long long)size);
    char probe[800];
    snprintf(probe, sizeof probe, "%s/transforms_test.json", dir);
    FILE *fp = fopen(probe, "rb");
    if (fp != NULL) {
        fclose(fp);
    } else {
        nerf_scene_params sp;
        nerf_scene_params_init(&sp);
        sp.width = sp.height = size;
        CHECK_OK(nerf_scene_write(dir, &sp, ctx, &err), &err);
    }
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    lp.split = split;
    CHECK_OK(nerf_dataset_load(ds, ctx, dir, &lp, &err), &err);
    return 0;
}

/* Training rays (gpu): the kernel against the twin loop, n = 1 and 70001 (> 65535), with and
 * without random backgrounds. Origins, targets and backgrounds exact; directions to 1e-6. */
static int test_train_rays(void) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    nerf_dataset *ds = NULL;
    CHECK(scene_load(&ds, g.ctx, 16, "train") == 0);
    const int64_t nf = nerf_dataset_count(ds), w = nerf_dataset_width(ds),
                  h = nerf_dataset_height(ds);
    nerf_train_cam *cams = malloc((size_t)nf * sizeof *cams);
    CHECK(cams != NULL);
    for (int64_t f = 0; f < nf; f++)
        nerf_train_cam_of_frame(&cams[f], ds, f);
    const size_t pix = (size_t)(nf * h * w * 4);
    nerf_train_cam *cams_g = dev_new(&g, cams, (size_t)nf * sizeof *cams);
    uint8_t *rgba_g = dev_new(&g, nerf_dataset_pixels(ds), pix);
    CHECK(cams_g != NULL && rgba_g != NULL);
    const int64_t sizes[2] = {1, 70001};
    for (int k = 0; k < 4; k++) {
        const int64_t n = sizes[k / 2];
        const int random_bg = k % 2;
        const int64_t holdout = k == 3 ? 3 : 0;
        const uint64_t step = 17 + (uint64_t)k;
        const int mark = g.n_bufs;
        float *host[4], *dev[4], *got = malloc((size_t)(3 * n) * sizeof *got);
        CHECK(got != NULL);
        for (int b = 0; b < 4; b++) {
            host[b] = malloc((size_t)(3 * n) * sizeof(float));
            dev[b] = dev_new(&g, NULL, (size_t)(3 * n) * sizeof(float));
            CHECK(host[b] != NULL && dev[b] != NULL);
        }
        for (int64_t r = 0; r < n; r++)
            nerf_train_ray(host[0] + 3 * r, host[1] + 3 * r, host[2] + 3 * r, host[3] + 3 * r, cams,
                           nerf_dataset_pixels(ds), nf, w, h, 1, step, random_bg, holdout, r);
        CHECK_OK(nerf_cuda_train_rays(g.s, dev[0], dev[1], dev[2], dev[3], n, cams_g, rgba_g, nf, w,
                                      h, 1, step, random_bg, holdout, &err),
                 &err);
        static const char *const names[4] = {"train rays o", "train rays d", "train rays target",
                                             "train rays bg"};
        for (int b = 0; b < 4; b++) {
            CHECK(dev_get(&g, got, dev[b], (size_t)(3 * n) * sizeof(float), names[b]) == 0);
            CHECK(close_pct(names[b], got, host[b], 3 * n, b == 1 ? 1e-6 : 0.0, 0.0, 1.0));
            free(host[b]);
        }
        free(got);
        dev_release(&g, mark);
    }
    free(cams);
    nerf_dataset_destroy(ds);
    gpu_close(&g);
    return 0;
}

/* Camera rays (gpu): pinhole (f32) and a distorted frame's camera (f64 Newton), a tile that
 * starts inside the image. */
static int test_cam_rays(void) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    nerf_dataset *ds = NULL;
    CHECK_OK(
        nerf_dataset_parse_json(&ds, DISTORTED_JSON, sizeof DISTORTED_JSON - 1, "distorted", &err),
        &err);
    const int64_t w = 37, h = 29, first = 5, n = w * h - first;
    float *o = malloc((size_t)(3 * n) * 4), *d = malloc((size_t)(3 * n) * 4);
    float *got = malloc((size_t)(3 * n) * 4);
    float *o_g = dev_new(&g, NULL, (size_t)(3 * n) * 4),
          *d_g = dev_new(&g, NULL, (size_t)(3 * n) * 4);
    CHECK(o && d && got && o_g && d_g);
    for (int pinhole = 0; pinhole < 2; pinhole++) {
        nerf_train_cam cam;
        nerf_train_cam_of_frame(&cam, ds, 0);
        for (int64_t r = 0; r < n; r++) {
            const int64_t pixel = first + r;
            if (pinhole)
                nerf_train_pinhole_ray(&cam, pixel % w, pixel / w, o + 3 * r, d + 3 * r);
            else
                nerf_train_cam_ray(&cam, (float)(pixel % w), (float)(pixel / w), o + 3 * r,
                                   d + 3 * r);
        }
        CHECK_OK(nerf_cuda_cam_rays(g.s, o_g, d_g, n, &cam, pinhole, w, first, &err), &err);
        CHECK(dev_get(&g, got, o_g, (size_t)(3 * n) * 4, "cam rays o") == 0);
        CHECK(close_pct("cam rays o", got, o, 3 * n, 0.0, 0.0, 1.0));
        CHECK(dev_get(&g, got, d_g, (size_t)(3 * n) * 4, "cam rays d") == 0);
        CHECK(close_pct(pinhole ? "cam rays d (pinhole)" : "cam rays d (distorted)", got, d, 3 * n,
                        1e-6, 0.0, 1.0));
    }
    /* bad arguments are named */
    nerf_train_cam bad;
    memset(&bad, 0, sizeof bad);
    CHECK(nerf_cuda_cam_rays(g.s, o_g, d_g, 4, &bad, 1, w, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "nerf_cuda_cam_rays");
    free(o), free(d), free(got);
    nerf_dataset_destroy(ds);
    gpu_close(&g);
    return 0;
}

/* L2 loss (gpu): d_color exactly the twin's, the f64 sum to 1e-12 (another order). */
static int test_l2(void) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    const int64_t sizes[3] = {3, 3 * 333, 3 * 70001};
    for (int k = 0; k < 3; k++) {
        const int64_t n = sizes[k];
        const int mark = g.n_bufs;
        float *c = malloc((size_t)n * 4), *tg = malloc((size_t)n * 4), *dc = malloc((size_t)n * 4);
        float *got = malloc((size_t)n * 4);
        CHECK(c && tg && dc && got);
        eng_test_fill(c, n, 41, 0.0f, 1.0f);
        eng_test_fill(tg, n, 42, 0.0f, 1.0f);
        double se = 0.0, se_g = -1.0;
        const float scale = 2.0f / (float)n;
        for (int64_t i = 0; i < n; i++) {
            const float diff = c[i] - tg[i];
            se += (double)diff * diff;
            dc[i] = scale * diff;
        }
        float *c_g = dev_new(&g, c, (size_t)n * 4), *t_g = dev_new(&g, tg, (size_t)n * 4);
        float *dc_g = dev_new(&g, NULL, (size_t)n * 4);
        double *se_d = dev_new(&g, NULL, sizeof(double));
        CHECK(c_g && t_g && dc_g && se_d);
        CHECK_OK(nerf_cuda_l2_loss(g.s, dc_g, se_d, c_g, t_g, n, &err), &err);
        CHECK(dev_get(&g, got, dc_g, (size_t)n * 4, "l2 d_color") == 0);
        CHECK(close_pct("l2 d_color", got, dc, n, 0.0, 0.0, 1.0));
        CHECK(dev_get(&g, &se_g, se_d, sizeof se_g, "l2 sum") == 0);
        fprintf(stderr, "l2 n %lld: sum %.17g, cuda %.17g\n", (long long)n, se, se_g);
        CHECK(fabs(se_g - se) <= 1e-12 * se);
        free(c), free(tg), free(dc), free(got);
        dev_release(&g, mark);
    }
    float *buf = dev_zeros(&g, 16);
    CHECK(buf != NULL);
    CHECK(nerf_cuda_l2_loss(g.s, buf, NULL, buf, buf, 3, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "se is NULL");
    eng_stream bare = *g.s;
    bare.arena = NULL;
    CHECK(nerf_cuda_l2_loss(&bare, buf, (double *)buf, buf, buf, 3, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "arena");
    gpu_close(&g);
    return 0;
}

/* Mean PSNR over the test views of renders (w, h) against the ground truth on white. */
typedef int (*render_fn)(
    void *user, float *rgb, const nerf_dataset *ds, int64_t frame, eng_err *err);

static int render_cpu(void *user, float *rgb, const nerf_dataset *ds, int64_t frame, eng_err *err) {
    const float white[3] = {1, 1, 1};
    return nerf_trainer_render_frame((nerf_trainer *)user, rgb, NULL, ds, frame, white, err);
}

static int render_dev(void *user, float *rgb, const nerf_dataset *ds, int64_t frame, eng_err *err) {
    const float white[3] = {1, 1, 1};
    return nerf_cuda_trainer_render_frame((nerf_cuda_trainer *)user, rgb, NULL, ds, frame, white,
                                          err);
}

static int test_psnr(double *out, render_fn fn, void *user, const nerf_dataset *test, float *keep) {
    eng_err err = {0};
    const int64_t w = nerf_dataset_width(test), h = nerf_dataset_height(test);
    float *rgb = malloc((size_t)(w * h * 3) * 4), *gt = malloc((size_t)(w * h * 3) * 4);
    CHECK(rgb != NULL && gt != NULL);
    double sum = 0.0;
    for (int64_t f = 0; f < nerf_dataset_count(test); f++) {
        CHECK_OK(fn(user, rgb, test, f, &err), &err);
        const uint8_t *px = nerf_dataset_rgba(test, f);
        for (int64_t i = 0; i < w * h; i++) {
            const float a = px[4 * i + 3] / 255.0f;
            for (int c = 0; c < 3; c++)
                gt[3 * i + c] = px[4 * i + c] / 255.0f * a + (1 - a);
        }
        sum += nerf_metrics_psnr(rgb, gt, w * h * 3);
        if (f == 0 && keep != NULL) memcpy(keep, rgb, (size_t)(w * h * 3) * 4);
    }
    *out = sum / (double)nerf_dataset_count(test);
    free(rgb), free(gt);
    return 0;
}

/* The device trainer (gpu) against the CPU trainer on the procedural scene at 32x32, the
 * parameters of nerf.train.converges (2^13 samples per step, 300 steps): both reach 22 dB on the
 * test views and within 1.5 dB of each other; their renders of test view 0 agree to 20 dB (two
 * trainings whose sums round differently); the device model downloaded into a CPU trainer renders
 * the same images as the device (40 dB: only the renderers' rounding differs). ENG_NERF_STEPS
 * overrides the step count (the emulator runs fewer). contract: the same with the scene
 * contraction (the contracted field, march and grid); there only the agreement between the two
 * trainers and between the device and its model on the CPU is checked, not the 22 / 20 dB. */
static int trainer_case(int contract) {
    eng_err err = {0};
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    nerf_dataset *train = NULL, *test = NULL;
    CHECK(scene_load(&train, g.ctx, 32, "train") == 0 && scene_load(&test, g.ctx, 32, "test") == 0);
    nerf_train_params tp;
    nerf_train_params_init(&tp);
    tp.target_samples = 1 << 13;
    tp.initial_rays = 512;
    tp.occ_res = 32;
    tp.field.grid.log2_table_size = 15;
    tp.field.contract = contract;
    const char *env = getenv("ENG_NERF_STEPS");
    const int steps = env != NULL ? atoi(env) : 300;
    /* CPU */
    nerf_trainer *cpu = NULL, *mirror = NULL;
    nerf_step_stats st = {0};
    CHECK_OK(nerf_trainer_create(&cpu, g.ctx, train, &tp, &err), &err);
    double t0 = eng_bench_now_s();
    for (int i = 0; i < steps; i++)
        CHECK_OK(nerf_trainer_step(cpu, &st, &err), &err);
    const double cpu_s = eng_bench_now_s() - t0;
    fprintf(stderr, "cpu%s: %d steps in %.1f s, last %lld rays %lld samples, train PSNR %.2f\n",
            contract ? " (contracted)" : "", steps, cpu_s, (long long)st.rays,
            (long long)st.samples, st.psnr);
    /* device: the CPU model of a second trainer (same initial parameters) and its own Adam */
    CHECK_OK(nerf_trainer_create(&mirror, g.ctx, train, &tp, &err), &err);
    nerf_field *mf = nerf_trainer_field(mirror);
    nerf_adam *adam = NULL;
    nerf_adam_params ap;
    nerf_adam_params_init(&ap);
    ap.n_params = nerf_field_n_params(mf);
    ap.n_matrix = nerf_field_n_matrix_params(mf);
    CHECK_OK(nerf_adam_create(&adam, eng_ctx_alloc(g.ctx, ENG_DEVICE_CPU), &ap, &err), &err);
    nerf_cuda_trainer *dev = NULL;
    CHECK_OK(nerf_cuda_trainer_create(&dev, g.ctx, mf, adam, nerf_trainer_occgrid(mirror), train,
                                      &tp, nerf_trainer_march_params(mirror), &err),
             &err);
    int64_t rays = tp.initial_rays;
    nerf_step_stats sd = {0};
    t0 = eng_bench_now_s();
    for (int i = 0; i < steps; i++) {
        CHECK_OK(nerf_cuda_trainer_step(dev, i, &rays, &sd, &err), &err);
        CHECK(sd.step == i + 1 && isfinite(sd.loss));
        if (i % 50 == 0 || i == steps - 1)
            fprintf(stderr, "cuda step %d: %lld rays %lld samples, loss %.5f (%.2f dB)\n", i,
                    (long long)sd.rays, (long long)sd.samples, sd.loss, sd.psnr);
    }
    const double dev_s = eng_bench_now_s() - t0;
    fprintf(stderr, "cuda: %d steps in %.1f s, next %lld rays\n", steps, dev_s, (long long)rays);
    const int64_t px3 = nerf_dataset_width(test) * nerf_dataset_height(test) * 3;
    float *img_cpu = malloc((size_t)px3 * 4), *img_dev = malloc((size_t)px3 * 4);
    float *img_dl = malloc((size_t)px3 * 4);
    CHECK(img_cpu && img_dev && img_dl);
    double p_cpu = 0, p_dev = 0, p_dl = 0;
    CHECK(test_psnr(&p_cpu, render_cpu, cpu, test, img_cpu) == 0);
    CHECK(test_psnr(&p_dev, render_dev, dev, test, img_dev) == 0);
    /* the device model in the CPU trainer */
    CHECK_OK(nerf_cuda_trainer_download(dev, mf, adam, nerf_trainer_occgrid(mirror), &err), &err);
    CHECK_EQ_I64(nerf_adam_step_count(adam), steps);
    CHECK(test_psnr(&p_dl, render_cpu, mirror, test, img_dl) == 0);
    const double cross = nerf_metrics_psnr(img_dev, img_cpu, px3);
    const double same = nerf_metrics_psnr(img_dev, img_dl, px3);
    fprintf(stderr,
            "test PSNR: cpu %.2f dB, cuda %.2f dB, cuda model on the cpu %.2f dB; view 0: cuda vs "
            "cpu training %.2f dB, cuda vs its model on the cpu %.2f dB\n",
            p_cpu, p_dev, p_dl, cross, same);
    if (env == NULL) {
        /* the absolute levels are the uncontracted model's (the contracted one was only checked
         * against its twin: the two trainers must agree) */
        CHECK(contract || (p_cpu >= 22.0 && p_dev >= 22.0 && cross >= 20.0));
        CHECK(fabs(p_cpu - p_dev) <= 1.5);
    }
    CHECK(same >= 40.0);
    CHECK(fabs(p_dl - p_dev) <= 0.05);
    /* a pinhole render of the same camera agrees with the CPU's too */
    nerf_train_cam cam;
    nerf_train_cam_of_frame(&cam, test, 0);
    const nerf_intrinsics in = nerf_dataset_intrinsics(test, 0);
    const float white[3] = {1, 1, 1};
    const int64_t w = nerf_dataset_width(test), h = nerf_dataset_height(test);
    float *dep_dev = malloc((size_t)(w * h) * 4), *dep_cpu = malloc((size_t)(w * h) * 4);
    CHECK(dep_dev && dep_cpu);
    CHECK_OK(nerf_cuda_trainer_render(dev, img_dev, dep_dev, cam.c2w, &in, w, h, white, &err),
             &err);
    CHECK_OK(nerf_trainer_render(mirror, img_dl, dep_cpu, cam.c2w, &in, w, h, white, &err), &err);
    const double same_pin = nerf_metrics_psnr(img_dev, img_dl, px3);
    double dep_err = 0.0;
    for (int64_t i = 0; i < w * h; i++)
        dep_err += fabs((double)dep_dev[i] - dep_cpu[i]) / (double)(w * h);
    fprintf(stderr, "pinhole render: cuda vs cpu %.2f dB, mean |depth error| %.3g\n", same_pin,
            dep_err);
    CHECK(same_pin >= 40.0 && dep_err <= 1e-3);
    /* a dataset is required to train; shapes are checked */
    CHECK_OK(nerf_cuda_trainer_set_dataset(dev, NULL, &err), &err);
    CHECK(nerf_cuda_trainer_step(dev, steps, &rays, NULL, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "no dataset");
    free(img_cpu), free(img_dev), free(img_dl), free(dep_dev), free(dep_cpu);
    nerf_cuda_trainer_destroy(dev);
    nerf_adam_destroy(adam);
    nerf_trainer_destroy(mirror);
    nerf_trainer_destroy(cpu);
    nerf_dataset_destroy(train);
    nerf_dataset_destroy(test);
    gpu_close(&g);
    return 0;
}

static int test_trainer(void) {
    return trainer_case(0);
}
static int test_trainer_contract(void) {
    return trainer_case(1);
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"layout", test_layout},
        {"grid_fwd", test_grid_fwd},
        {"grid_bwd", test_grid_bwd},
        {"sh", test_sh},
        {"mlp", test_mlp},
        {"field", test_field},
        {"field_contract", test_field_contract},
        {"march", test_march},
        {"march_contract", test_march_contract},
        {"composite", test_composite},
        {"adam", test_adam},
        {"occgrid", test_occgrid},
        {"occgrid_contract", test_occgrid_contract},
        {"errors", test_errors},
        {"train_math", test_train_math},
        {"train_rays", test_train_rays},
        {"cam_rays", test_cam_rays},
        {"l2", test_l2},
        {"trainer", test_trainer},
        {"trainer_contract", test_trainer_contract},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
