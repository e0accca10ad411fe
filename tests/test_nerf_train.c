#define _POSIX_C_SOURCE 200809L /* truncate */
/* test_nerf_train.c: nerf.train.* — the trainer on the built-in scene at 32x32: training reaches
 * 22 dB on the test views; 200 steps, a snapshot, a fresh process-equivalent load and 200
 * more give bit-identical parameters to 400 straight; renders of a known view (depth of the
 * centre sphere); snapshot errors (not a snapshot, truncated, wrong sizes).
 * Unbounded scenes: the built-in objects inside a textured sky sphere of radius 6 (aabb_scale 4,
 * so far outside the scene box), ray-traced here into 24x24 views. contract_converges: training
 * with the scene contraction reaches a PSNR bound on the test views and beats the same run
 * with the contraction off (the sky then has to be painted on the box); contract_snapshot: the
 * flag (auto resolved to on), inner radius, far distance and holdout survive a snapshot (same
 * renders after loading), a snapshot without them (as written before they existed) loads as
 * contract 0, and the holdout skips its frames. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "nerf.h"
#include "nerf_train.h"

/* The scene at 32x32 in the tmpdir (written once per process). */
static const char *scene_dir(eng_ctx *ctx) {
    static char dir[600];
    if (dir[0] != '\0') return dir;
    eng_err err = {0};
    nerf_scene_params sp;
    nerf_scene_params_init(&sp);
    sp.width = sp.height = 32;
    snprintf(dir, sizeof dir, "%s/nerf_scene32", eng_test_tmpdir());
    if (nerf_scene_write(dir, &sp, ctx, &err) != ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        dir[0] = '\0';
        return NULL;
    }
    return dir;
}

static int load(nerf_dataset **ds, eng_ctx *ctx, const char *split) {
    eng_err err = {0};
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    lp.split = split;
    const char *dir = scene_dir(ctx);
    CHECK(dir != NULL);
    CHECK_OK(nerf_dataset_load(ds, ctx, dir, &lp, &err), &err);
    return 0;
}

static void small_params(nerf_train_params *tp) {
    nerf_train_params_init(tp);
    tp->target_samples = 1 << 13;
    tp->initial_rays = 512;
    tp->occ_res = 32;
    tp->field.grid.log2_table_size = 15; /* 2^15 entries per level: fast steps at 32x32 */
}

static int test_converges(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    nerf_dataset *train = NULL, *test = NULL;
    nerf_trainer *t = NULL;
    nerf_train_params tp;
    CHECK(ctx != NULL);
    if (load(&train, ctx, "train") || load(&test, ctx, "test")) return 1;
    small_params(&tp);
    CHECK_OK(nerf_trainer_create(&t, ctx, train, &tp, &err), &err);
    nerf_step_stats s = {0};
    for (int i = 0; i < 300; i++)
        CHECK_OK(nerf_trainer_step(t, &s, &err), &err);
    const int64_t w = 32, h = 32;
    float rgb[32 * 32 * 3], gt[32 * 32 * 3];
    const float white[3] = {1, 1, 1};
    double sum = 0;
    for (int64_t f = 0; f < nerf_dataset_count(test); f++) {
        CHECK_OK(nerf_trainer_render_frame(t, rgb, NULL, test, f, white, &err), &err);
        const uint8_t *px = nerf_dataset_rgba(test, f);
        for (int64_t i = 0; i < w * h; i++) {
            const float a = px[4 * i + 3] / 255.0f;
            for (int c = 0; c < 3; c++)
                gt[3 * i + c] = px[4 * i + c] / 255.0f * a + (1 - a);
        }
        sum += nerf_metrics_psnr(rgb, gt, w * h * 3);
    }
    const double psnr = sum / (double)nerf_dataset_count(test);
    fprintf(stderr,
            "nerf.train.converges: 300 steps (last: %lld rays, %lld samples, train PSNR %.2f), "
            "test PSNR %.2f dB (bound 22)\n",
            (long long)s.rays, (long long)s.samples, s.psnr, psnr);
    CHECK(psnr >= 22.0);
    nerf_trainer_destroy(t);
    nerf_dataset_destroy(train);
    nerf_dataset_destroy(test);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_resume(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    nerf_dataset *train = NULL;
    nerf_trainer *a = NULL, *b = NULL;
    nerf_train_params tp;
    char path[600];
    CHECK(ctx != NULL);
    if (load(&train, ctx, "train")) return 1;
    small_params(&tp);
    tp.target_samples = 1 << 11;
    tp.initial_rays = 128;
    snprintf(path, sizeof path, "%s/resume.nerf", eng_test_tmpdir());
    /* 200 steps, snapshot, "killed" */
    CHECK_OK(nerf_trainer_create(&a, ctx, train, &tp, &err), &err);
    for (int i = 0; i < 200; i++)
        CHECK_OK(nerf_trainer_step(a, NULL, &err), &err);
    CHECK_OK(nerf_trainer_save(a, path, &err), &err);
    nerf_trainer_destroy(a);
    a = NULL;
    /* resumed to 400 */
    CHECK_OK(nerf_trainer_load(&b, ctx, path, &err), &err);
    CHECK_EQ_I64(nerf_trainer_step_count(b), 200);
    CHECK_EQ_I64(nerf_trainer_step(b, NULL, &err), ENG_E_INVALID_ARG); /* no data yet */
    CHECK_OK(nerf_trainer_set_dataset(b, train, &err), &err);
    while (nerf_trainer_step_count(b) < 400)
        CHECK_OK(nerf_trainer_step(b, NULL, &err), &err);
    /* 400 straight */
    CHECK_OK(nerf_trainer_create(&a, ctx, train, &tp, &err), &err);
    for (int i = 0; i < 400; i++)
        CHECK_OK(nerf_trainer_step(a, NULL, &err), &err);
    const eng_tensor *pa = nerf_field_param_tensor(nerf_trainer_field(a));
    const eng_tensor *pb = nerf_field_param_tensor(nerf_trainer_field(b));
    const int64_t n = eng_tensor_numel(pa);
    int64_t differ = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const float x = ((const float *)pa->data)[i], y = ((const float *)pb->data)[i];
        differ += x != y;
        worst = fmax(worst, fabs((double)x - (double)y));
    }
    fprintf(stderr, "nerf.train.resume: %lld of %lld parameters differ (max %.3g)\n",
            (long long)differ, (long long)n, worst);
    CHECK(differ == 0);
    nerf_trainer_destroy(a);
    nerf_trainer_destroy(b);
    nerf_dataset_destroy(train);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- an unbounded scene: the built-in objects under a sky ------------------------------------ */

enum { SKY_RES = 24, SKY_TRAIN = 60, SKY_TEST = 8, SKY_SS = 2 };
#define SKY_RADIUS 6.0 /* model units from the centre: m = 12 inner radii */

/* The sky's colour in direction u (unit, from the centre): smooth bands of colour, brighter up. */
static void sky_color(const double u[3], double rgb[3]) {
    const double az = atan2(u[1], u[0]), el = asin(u[2] < -1 ? -1 : u[2] > 1 ? 1 : u[2]);
    rgb[0] = 0.45 + 0.35 * sin(3.0 * az) * cos(el);
    rgb[1] = 0.5 + 0.3 * sin(2.0 * el + az);
    rgb[2] = 0.55 + 0.35 * cos(4.0 * el) * (0.5 + 0.5 * u[2]);
}

/* The colour along a ray: the objects, else the sky sphere it leaves through. */
static void sky_scene_trace(const double o[3], const double d[3], double rgb[3]) {
    nerf_scene_hit hit;
    if (nerf_scene_trace(&hit, o, d)) {
        for (int c = 0; c < 3; c++)
            rgb[c] = hit.rgb[c];
        return;
    }
    /* |o + t d - c| = R, o inside: the positive root */
    double oc[3], b = 0, cc = 0;
    for (int a = 0; a < 3; a++) {
        oc[a] = o[a] - 0.5;
        b += oc[a] * d[a];
        cc += oc[a] * oc[a];
    }
    const double t = -b + sqrt(b * b - (cc - SKY_RADIUS * SKY_RADIUS));
    double u[3];
    for (int a = 0; a < 3; a++)
        u[a] = (oc[a] + t * d[a]) / SKY_RADIUS;
    sky_color(u, rgb);
}

/* Writes the scene (train/test PNGs, transforms_train.json, transforms_test.json with
 * aabb_scale 4) into the tmpdir once per process; returns its folder. */
static const char *sky_dir(void) {
    static char dir[600];
    if (dir[0] != '\0') return dir;
    eng_err err = {0};
    char path[700];
    snprintf(dir, sizeof dir, "%s/nerf_sky", eng_test_tmpdir());
    nerf_scene_params sp;
    nerf_scene_params_init(&sp);
    sp.width = sp.height = SKY_RES;
    sp.n_train = SKY_TRAIN;
    sp.n_test = SKY_TEST;
    eng_image im = {0};
    if (eng_image_alloc(&im, SKY_RES, SKY_RES, 3, &err) != ENG_OK) goto fail;
    for (int split = 0; split < 2; split++) {
        const char *name = split == 0 ? "train" : "test";
        const int64_t count = split == 0 ? SKY_TRAIN : SKY_TEST;
        snprintf(path, sizeof path, "mkdir -p '%s/%s'", dir, name);
        if (system(path) != 0) goto fail;
        snprintf(path, sizeof path, "%s/transforms_%s.json", dir, name);
        FILE *js = fopen(path, "w");
        if (js == NULL) goto fail;
        fprintf(js,
                "{\"camera_angle_x\": %.17g, \"scale\": 1.0, \"offset\": [0, 0, 0], "
                "\"aabb_scale\": 4, \"frames\": [\n",
                sp.camera_angle_x);
        for (int64_t v = 0; v < count; v++) {
            nerf_scene_camera cam;
            if (nerf_scene_camera_get(&cam, &sp, split == 0 ? NERF_SCENE_TRAIN : NERF_SCENE_TEST, v,
                                      &err) != ENG_OK) {
                fclose(js);
                goto fail;
            }
            for (int64_t py = 0; py < SKY_RES; py++)
                for (int64_t px = 0; px < SKY_RES; px++) {
                    double acc[3] = {0, 0, 0};
                    for (int sy = 0; sy < SKY_SS; sy++)
                        for (int sx = 0; sx < SKY_SS; sx++) {
                            double o[3], d[3], rgb[3];
                            nerf_scene_camera_ray(&cam, (double)px - 0.5 + (sx + 0.5) / SKY_SS,
                                                  (double)py - 0.5 + (sy + 0.5) / SKY_SS, o, d);
                            sky_scene_trace(o, d, rgb);
                            for (int c = 0; c < 3; c++)
                                acc[c] += rgb[c] / (SKY_SS * SKY_SS);
                        }
                    for (int c = 0; c < 3; c++) {
                        const double x = acc[c] < 0 ? 0 : acc[c] > 1 ? 1 : acc[c];
                        im.data[(py * SKY_RES + px) * 3 + c] = (uint8_t)lrint(255.0 * x);
                    }
                }
            snprintf(path, sizeof path, "%s/%s/r_%lld.png", dir, name, (long long)v);
            if (eng_image_write_png(path, &im, NULL, 0, &err) != ENG_OK) {
                fclose(js);
                goto fail;
            }
            fprintf(js, "  {\"file_path\": \"./%s/r_%lld\", \"transform_matrix\": [", name,
                    (long long)v);
            for (int r = 0; r < 3; r++)
                fprintf(js, "[%.17g, %.17g, %.17g, %.17g], ", cam.c2w[4 * r], cam.c2w[4 * r + 1],
                        cam.c2w[4 * r + 2], cam.c2w[4 * r + 3]);
            fprintf(js, "[0, 0, 0, 1]]}%s\n", v + 1 < count ? "," : "");
        }
        fprintf(js, "]}\n");
        if (fclose(js) != 0) goto fail;
    }
    eng_image_free(&im);
    return dir;
fail:
    fprintf(stderr, "sky scene: %s\n", err.msg);
    eng_image_free(&im);
    dir[0] = '\0';
    return NULL;
}

static int load_sky(nerf_dataset **ds, eng_ctx *ctx, const char *split) {
    eng_err err = {0};
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    lp.split = split;
    const char *dir = sky_dir();
    CHECK(dir != NULL);
    CHECK_OK(nerf_dataset_load(ds, ctx, dir, &lp, &err), &err);
    return 0;
}

/* Mean PSNR of t over the views of ds (opaque images: the background does not matter). */
static double mean_psnr(nerf_trainer *t, const nerf_dataset *ds) {
    eng_err err = {0};
    const int64_t w = nerf_dataset_width(ds), h = nerf_dataset_height(ds);
    float *rgb = (float *)malloc((size_t)(w * h * 3) * sizeof *rgb),
          *gt = (float *)malloc((size_t)(w * h * 3) * sizeof *gt);
    const float white[3] = {1, 1, 1};
    double sum = 0;
    for (int64_t f = 0; rgb != NULL && gt != NULL && f < nerf_dataset_count(ds); f++) {
        if (nerf_trainer_render_frame(t, rgb, NULL, ds, f, white, &err) != ENG_OK) {
            fprintf(stderr, "%s\n", err.msg);
            sum = -1e9;
            break;
        }
        const uint8_t *px = nerf_dataset_rgba(ds, f);
        for (int64_t i = 0; i < w * h; i++)
            for (int c = 0; c < 3; c++)
                gt[3 * i + c] = px[4 * i + c] / 255.0f;
        sum += nerf_metrics_psnr(rgb, gt, w * h * 3);
    }
    free(rgb);
    free(gt);
    return sum / (double)nerf_dataset_count(ds);
}

static void sky_params(nerf_train_params *tp) {
    small_params(tp);
    tp->target_samples = 1 << 13;
    tp->initial_rays = 256;
}

static int test_contract_converges(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    nerf_dataset *train = NULL, *test = NULL;
    nerf_train_params tp;
    double psnr[2] = {0, 0};
    int64_t samples[2] = {0, 0};
    enum { STEPS = 300 };
    CHECK(ctx != NULL);
    if (load_sky(&train, ctx, "train") || load_sky(&test, ctx, "test")) return 1;
    CHECK(nerf_dataset_aabb_scale(train) == 4.0f);
    for (int contract = 1; contract >= 0; contract--) {
        nerf_trainer *t = NULL;
        sky_params(&tp);
        tp.field.contract = contract;
        CHECK_OK(nerf_trainer_create(&t, ctx, train, &tp, &err), &err);
        nerf_step_stats s = {0};
        for (int i = 0; i < STEPS; i++) {
            CHECK_OK(nerf_trainer_step(t, &s, &err), &err);
            samples[contract] += s.samples;
        }
        psnr[contract] = mean_psnr(t, test);
        fprintf(stderr,
                "nerf.train.contract_converges: contraction %s: %d steps (%lld samples, last "
                "train PSNR %.2f), test PSNR %.2f dB\n",
                contract ? "on " : "off", STEPS, (long long)samples[contract], s.psnr,
                psnr[contract]);
        nerf_trainer_destroy(t);
    }
    /* measured: 22.8 dB on, 18.5 dB off */
    CHECK(psnr[1] >= 22.0);
    CHECK(psnr[1] >= psnr[0] + 2.0);
    nerf_dataset_destroy(train);
    nerf_dataset_destroy(test);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_contract_snapshot(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    nerf_dataset *train = NULL;
    nerf_trainer *a = NULL, *b = NULL;
    eng_safetensors *f = NULL;
    nerf_train_params tp;
    char path[600], old[600];
    CHECK(ctx != NULL);
    if (load_sky(&train, ctx, "train")) return 1;
    sky_params(&tp);
    tp.field.grid.log2_table_size = 12;
    tp.field.inner_radius = 0.45f;
    tp.far = 20.0f;
    tp.holdout = 5;
    CHECK(tp.field.contract == NERF_CONTRACT_AUTO);
    CHECK_OK(nerf_trainer_create(&a, ctx, train, &tp, &err), &err);
    CHECK_EQ_I64(nerf_trainer_get_params(a)->field.contract, 0); /* auto: off, even at 4 */
    nerf_trainer_destroy(a);
    a = NULL;
    tp.field.contract = 1;
    CHECK_OK(nerf_trainer_create(&a, ctx, train, &tp, &err), &err);
    for (int i = 0; i < 20; i++)
        CHECK_OK(nerf_trainer_step(a, NULL, &err), &err);
    snprintf(path, sizeof path, "%s/sky.nerf", eng_test_tmpdir());
    CHECK_OK(nerf_trainer_save(a, path, &err), &err);
    CHECK_OK(nerf_trainer_load(&b, ctx, path, &err), &err);
    const nerf_train_params *pb = nerf_trainer_get_params(b);
    CHECK_EQ_I64(pb->field.contract, 1);
    CHECK(pb->field.inner_radius == 0.45f && pb->far == 20.0f);
    CHECK_EQ_I64(pb->holdout, 5);
    CHECK(nerf_occgrid_get_params(nerf_trainer_occgrid(b))->contract == 1);
    CHECK(nerf_trainer_march_params(b)->contract == 1 &&
          nerf_trainer_march_params(b)->box_hi[0] == 0.5f + 20.0f);
    /* the same renders (both march the same contracted grid through the same field) */
    float ra[16 * 16 * 3], rb[16 * 16 * 3], da[16 * 16], db[16 * 16];
    const float c2w[12] = {1, 0, 0, 0.5f, 0, 0, -1, -0.8f, 0, 1, 0, 0.5f}; /* looks along +y */
    nerf_intrinsics in = {0};
    in.fx = in.fy = 16, in.cx = in.cy = 8;
    const float white[3] = {1, 1, 1};
    CHECK_OK(nerf_trainer_render(a, ra, da, c2w, &in, 16, 16, white, &err), &err);
    CHECK_OK(nerf_trainer_render(b, rb, db, c2w, &in, 16, 16, white, &err), &err);
    CHECK(memcmp(ra, rb, sizeof ra) == 0 && memcmp(da, db, sizeof da) == 0);
    nerf_trainer_destroy(b);
    b = NULL;
    /* a snapshot as written before the contraction: drop the new metadata */
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err);
    eng_safetensors_entry e[8];
    eng_safetensors_kv kv[64];
    const int64_t ne = eng_safetensors_count(f);
    int64_t nkv = 0;
    CHECK(ne <= 8 && eng_safetensors_metadata_count(f) <= 64);
    for (int64_t i = 0; i < ne; i++) {
        const eng_safetensors_info *t = eng_safetensors_info_at(f, i);
        e[i].name = t->name, e[i].dtype_name = NULL, e[i].dtype = t->dtype;
        e[i].ndim = t->ndim, e[i].shape = t->shape, e[i].data = t->data;
    }
    for (int64_t i = 0; i < eng_safetensors_metadata_count(f); i++) {
        const char *k, *v;
        eng_safetensors_metadata_at(f, i, &k, &v);
        if (strcmp(k, "contract") == 0 || strcmp(k, "inner_radius") == 0 || strcmp(k, "far") == 0 ||
            strcmp(k, "holdout") == 0)
            continue;
        kv[nkv].key = k, kv[nkv].value = v, nkv++;
    }
    /* the grid then has the box's cascades: aabb_scale 4 gives 3, so the contracted grid's
     * single cascade no longer fits, and the load says so */
    snprintf(old, sizeof old, "%s/sky_old.nerf", eng_test_tmpdir());
    CHECK_OK(eng_safetensors_write(old, e, ne, kv, nkv, &err), &err);
    CHECK_EQ_I64(nerf_trainer_load(&b, ctx, old, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "occgrid");
    eng_safetensors_close(f);
    f = NULL;
    nerf_trainer_destroy(a);
    a = NULL;
    /* an old-style snapshot of an uncontracted model loads as contract 0 */
    tp.field.contract = 0;
    CHECK_OK(nerf_trainer_create(&a, ctx, train, &tp, &err), &err);
    CHECK_OK(nerf_trainer_save(a, path, &err), &err);
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err);
    nkv = 0;
    for (int64_t i = 0; i < ne; i++) {
        const eng_safetensors_info *t = eng_safetensors_info_at(f, i);
        e[i].name = t->name, e[i].dtype_name = NULL, e[i].dtype = t->dtype;
        e[i].ndim = t->ndim, e[i].shape = t->shape, e[i].data = t->data;
    }
    for (int64_t i = 0; i < eng_safetensors_metadata_count(f); i++) {
        const char *k, *v;
        eng_safetensors_metadata_at(f, i, &k, &v);
        if (strcmp(k, "contract") == 0 || strcmp(k, "inner_radius") == 0 || strcmp(k, "far") == 0 ||
            strcmp(k, "holdout") == 0)
            continue;
        kv[nkv].key = k, kv[nkv].value = v, nkv++;
    }
    CHECK_OK(eng_safetensors_write(old, e, ne, kv, nkv, &err), &err);
    eng_safetensors_close(f);
    f = NULL;
    CHECK_OK(nerf_trainer_load(&b, ctx, old, &err), &err);
    CHECK_EQ_I64(nerf_trainer_get_params(b)->field.contract, 0);
    CHECK_EQ_I64(nerf_trainer_get_params(b)->holdout, 0);
    CHECK_EQ_I64(nerf_occgrid_get_params(nerf_trainer_occgrid(b))->cascades, 3);
    nerf_trainer_destroy(b);
    nerf_trainer_destroy(a);
    /* bad values */
    sky_params(&tp);
    tp.holdout = 1;
    CHECK_EQ_I64(nerf_trainer_create(&a, ctx, train, &tp, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "holdout 1");
    tp.holdout = 0;
    tp.field.contract = 1;
    tp.far = 0.1f;
    CHECK_EQ_I64(nerf_trainer_create(&a, ctx, train, &tp, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "far");
    nerf_dataset_destroy(train);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_snapshot_errors(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(1);
    nerf_trainer *t = NULL;
    char path[600];
    CHECK(ctx != NULL);
    snprintf(path, sizeof path, "%s/missing.nerf", eng_test_tmpdir());
    CHECK_EQ_I64(nerf_trainer_load(&t, ctx, path, &err), ENG_E_IO);
    CHECK_CONTAINS(err.msg, "missing.nerf");
    /* a safetensors file that is not a snapshot */
    snprintf(path, sizeof path, "%s/other.safetensors", eng_test_tmpdir());
    const float one = 1;
    const int64_t shape[1] = {1};
    const eng_safetensors_entry e = {"x", NULL, ENG_SAFETENSORS_F32, 1, shape, &one};
    CHECK_OK(eng_safetensors_write(path, &e, 1, NULL, 0, &err), &err);
    CHECK_EQ_I64(nerf_trainer_load(&t, ctx, path, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "not a NeRF snapshot");
    CHECK(t == NULL);
    /* a real snapshot cut short */
    nerf_dataset *train = NULL;
    nerf_train_params tp;
    if (load(&train, ctx, "train")) return 1;
    small_params(&tp);
    tp.field.grid.log2_table_size = 12;
    CHECK_OK(nerf_trainer_create(&t, ctx, train, &tp, &err), &err);
    snprintf(path, sizeof path, "%s/cut.nerf", eng_test_tmpdir());
    CHECK_OK(nerf_trainer_save(t, path, &err), &err);
    nerf_trainer_destroy(t);
    t = NULL;
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fclose(f);
    CHECK(truncate(path, size / 2) == 0);
    CHECK(nerf_trainer_load(&t, ctx, path, &err) == ENG_E_FORMAT);
    CHECK(t == NULL);
    nerf_dataset_destroy(train);
    eng_ctx_destroy(ctx);
    return 0;
}

static const eng_test_case cases[] = {
    {"converges", test_converges},
    {"resume", test_resume},
    {"snapshot_errors", test_snapshot_errors},
    {"contract_converges", test_contract_converges},
    {"contract_snapshot", test_contract_snapshot},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
