/* test_nerf_preview.c: nerf.preview.* — progressive rendering for the viewer: the refined image
 * is nerf_trainer_render's image of the same view; the coarse level shows blocks of its pixel
 * size; a refresh keeps the sharp rows until a level as fine redraws them; depth mode; errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "nerf.h"
#include "nerf_preview.h"

#define W 40
#define H 30

typedef struct fixture {
    eng_ctx *ctx;
    nerf_dataset *ds;
    nerf_trainer *t;
    float c2w[12];
    nerf_intrinsics in;
} fixture;

/* A trainer on the built-in scene at 24x24, 20 steps in (not uniform any more), and the camera
 * of test view 0 scaled to W x H. */
static int setup(fixture *f) {
    eng_err err = {0};
    memset(f, 0, sizeof *f);
    f->ctx = eng_test_ctx(2);
    CHECK(f->ctx != NULL);
    nerf_scene_params sp;
    nerf_scene_params_init(&sp);
    sp.width = sp.height = 24;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/nerf_preview_scene", eng_test_tmpdir());
    CHECK_OK(nerf_scene_write(dir, &sp, f->ctx, &err), &err);
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    lp.split = "train";
    CHECK_OK(nerf_dataset_load(&f->ds, f->ctx, dir, &lp, &err), &err);
    nerf_train_params tp;
    nerf_train_params_init(&tp);
    tp.target_samples = 1 << 12;
    tp.initial_rays = 256;
    tp.occ_res = 32;
    tp.field.grid.log2_table_size = 14;
    CHECK_OK(nerf_trainer_create(&f->t, f->ctx, f->ds, &tp, &err), &err);
    nerf_step_stats st;
    for (int i = 0; i < 20; i++)
        CHECK_OK(nerf_trainer_step(f->t, &st, &err), &err);
    nerf_scene_camera cam;
    CHECK_OK(nerf_scene_camera_get(&cam, &sp, NERF_SCENE_TEST, 0, &err), &err);
    for (int i = 0; i < 12; i++)
        f->c2w[i] = (float)cam.c2w[i];
    f->in.fx = (float)(cam.fx * W / 24.0);
    f->in.fy = f->in.fx;
    f->in.cx = W / 2.0f;
    f->in.cy = H / 2.0f;
    return 0;
}

static void teardown(fixture *f) {
    nerf_trainer_destroy(f->t);
    nerf_dataset_destroy(f->ds);
    eng_ctx_destroy(f->ctx);
}

static uint8_t u8(float v) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (uint8_t)lrintf(v * 255.0f);
}

static int test_refines_to_render(void) {
    eng_err err = {0};
    fixture f;
    if (setup(&f)) return 1;
    nerf_preview *pv = NULL;
    CHECK_OK(nerf_preview_create(&pv, f.t, &err), &err);
    nerf_preview_set_coarse_pixels(pv, 100); /* 40x30: pixel size 4 (10x8 = 80 pixels) */
    CHECK_OK(nerf_preview_set_view(pv, f.c2w, &f.in, W, H, NERF_PREVIEW_RGB, &err), &err);
    CHECK(nerf_preview_level(pv) == 4);
    int done = 0, steps = 0;
    while (!done && steps < 1000) {
        CHECK_OK(nerf_preview_step(pv, 50, &done, &err), &err);
        steps++;
    }
    CHECK(done);
    /* levels 4, 2, 1 of 10x8, 20x15, 40x30 pixels in bands of 5, 2, 1 rows: 2 + 8 + 30 steps */
    CHECK_EQ_I64(steps, 2 + 8 + 30);
    int64_t w = 0, h = 0;
    const uint8_t *img = nerf_preview_rgba(pv, &w, &h);
    CHECK(img != NULL && w == W && h == H);
    static float rgb[W * H * 3];
    const float white[3] = {1, 1, 1};
    CHECK_OK(nerf_trainer_render(f.t, rgb, NULL, f.c2w, &f.in, W, H, white, &err), &err);
    int worst = 0;
    for (int64_t i = 0; i < W * H; i++) {
        for (int c = 0; c < 3; c++) {
            int d = abs((int)img[4 * i + c] - (int)u8(rgb[3 * i + c]));
            worst = d > worst ? d : worst;
        }
        CHECK_EQ_I64(img[4 * i + 3], 255);
    }
    printf("largest difference from nerf_trainer_render: %d/255\n", worst);
    CHECK(worst <= 1); /* bands of rows go through the same rays; batching may round apart */
    /* a finished view does nothing more */
    CHECK_OK(nerf_preview_step(pv, 50, &done, &err), &err);
    CHECK(done && nerf_preview_level(pv) == 0);
    nerf_preview_destroy(pv);
    teardown(&f);
    return 0;
}

static int test_coarse_blocks_and_refresh(void) {
    eng_err err = {0};
    fixture f;
    if (setup(&f)) return 1;
    nerf_preview *pv = NULL;
    CHECK_OK(nerf_preview_create(&pv, f.t, &err), &err);
    nerf_preview_set_coarse_pixels(pv, 100);
    CHECK_OK(nerf_preview_set_view(pv, f.c2w, &f.in, W, H, NERF_PREVIEW_RGB, &err), &err);
    int done = 0;
    CHECK_OK(nerf_preview_step(pv, 1 << 20, &done, &err), &err); /* the whole 4x level */
    CHECK(!done && nerf_preview_level(pv) == 2);
    const uint8_t *img = nerf_preview_rgba(pv, NULL, NULL);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            CHECK(!memcmp(img + 4 * (y * W + x), img + 4 * ((y / 4 * 4) * W + x / 4 * 4), 4));
    /* the same view again does not restart */
    CHECK_OK(nerf_preview_set_view(pv, f.c2w, &f.in, W, H, NERF_PREVIEW_RGB, &err), &err);
    CHECK(nerf_preview_level(pv) == 2);
    while (!done)
        CHECK_OK(nerf_preview_step(pv, 1 << 20, &done, &err), &err);
    static uint8_t sharp[W * H * 4];
    memcpy(sharp, nerf_preview_rgba(pv, NULL, NULL), sizeof sharp);
    /* train on; a refresh redraws from the coarse level without replacing sharp rows by blocks */
    nerf_step_stats st;
    for (int i = 0; i < 10; i++)
        CHECK_OK(nerf_trainer_step(f.t, &st, &err), &err);
    nerf_preview_refresh(pv);
    CHECK(nerf_preview_level(pv) == 4);
    CHECK_OK(nerf_preview_step(pv, 1 << 20, &done, &err), &err);
    CHECK_OK(nerf_preview_step(pv, 1 << 20, &done, &err), &err);
    CHECK(nerf_preview_level(pv) == 1);
    CHECK(!memcmp(sharp, nerf_preview_rgba(pv, NULL, NULL), sizeof sharp));
    CHECK_OK(nerf_preview_step(pv, 1 << 20, &done, &err), &err);
    CHECK(done);
    CHECK(memcmp(sharp, nerf_preview_rgba(pv, NULL, NULL), sizeof sharp) != 0); /* retrained */
    /* a moved camera restarts and overwrites */
    float moved[12];
    memcpy(moved, f.c2w, sizeof moved);
    moved[3] += 0.05f;
    CHECK_OK(nerf_preview_set_view(pv, moved, &f.in, W, H, NERF_PREVIEW_RGB, &err), &err);
    CHECK(nerf_preview_level(pv) == 4);
    CHECK_OK(nerf_preview_step(pv, 1 << 20, &done, &err), &err);
    img = nerf_preview_rgba(pv, NULL, NULL);
    CHECK(!memcmp(img + 4 * (W + 1), img, 4)); /* (1, 1) is in the block of (0, 0) again */
    nerf_preview_destroy(pv);
    teardown(&f);
    return 0;
}

static int test_depth(void) {
    eng_err err = {0};
    fixture f;
    if (setup(&f)) return 1;
    nerf_preview *pv = NULL;
    CHECK_OK(nerf_preview_create(&pv, f.t, &err), &err);
    CHECK_OK(nerf_preview_set_view(pv, f.c2w, &f.in, W, H, NERF_PREVIEW_DEPTH, &err), &err);
    int done = 0;
    while (!done)
        CHECK_OK(nerf_preview_step(pv, 1 << 20, &done, &err), &err);
    static float rgb[W * H * 3], depth[W * H];
    const float white[3] = {1, 1, 1};
    CHECK_OK(nerf_trainer_render(f.t, rgb, depth, f.c2w, &f.in, W, H, white, &err), &err);
    const uint8_t *img = nerf_preview_rgba(pv, NULL, NULL);
    int grey = 1, near_brighter = 1;
    int64_t lo = 0, hi = 0; /* the nearest and farthest hit pixels */
    for (int64_t i = 0; i < W * H; i++) {
        grey &= img[4 * i] == img[4 * i + 1] && img[4 * i] == img[4 * i + 2];
        if (depth[i] > 0 && (depth[lo] <= 0 || depth[i] < depth[lo])) lo = i;
        if (depth[i] > depth[hi]) hi = i;
        if (depth[i] <= 0) CHECK_EQ_I64(img[4 * i], 0);
    }
    CHECK(grey);
    CHECK(depth[hi] > 0);
    if (depth[lo] < depth[hi]) near_brighter = img[4 * lo] > img[4 * hi];
    CHECK(near_brighter);
    nerf_preview_destroy(pv);
    teardown(&f);
    return 0;
}

static int test_errors(void) {
    eng_err err = {0};
    fixture f;
    if (setup(&f)) return 1;
    nerf_preview *pv = NULL;
    CHECK_OK(nerf_preview_create(&pv, f.t, &err), &err);
    CHECK(nerf_preview_rgba(pv, NULL, NULL) == NULL);
    CHECK(nerf_preview_step(pv, 100, NULL, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "no view");
    CHECK(nerf_preview_set_view(pv, f.c2w, &f.in, 0, H, NERF_PREVIEW_RGB, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "0x30");
    CHECK(nerf_preview_set_view(pv, f.c2w, &f.in, W, H, 7, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "mode 7");
    nerf_intrinsics bad = f.in;
    bad.fx = 0;
    CHECK(nerf_preview_set_view(pv, f.c2w, &bad, W, H, NERF_PREVIEW_RGB, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "focal 0");
    nerf_preview_destroy(pv);
    teardown(&f);
    return 0;
}

static const eng_test_case cases[] = {
    {"refines_to_render", test_refines_to_render},
    {"coarse_blocks_and_refresh", test_coarse_blocks_and_refresh},
    {"depth", test_depth},
    {"errors", test_errors},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
