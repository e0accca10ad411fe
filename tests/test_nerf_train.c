#define _POSIX_C_SOURCE 200809L /* truncate */
/* test_nerf_train.c: nerf.train.* — the trainer on the built-in scene at 32x32: training reaches
 * 22 dB on the test views; 200 steps, a snapshot, a fresh process-equivalent load and 200
 * more give bit-identical parameters to 400 straight; renders of a known view (depth of the
 * centre sphere); snapshot errors (not a snapshot, truncated, wrong sizes). */
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
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
