/* test_nerf_metrics.c: nerf.metrics.* — PSNR and SSIM against the numpy reference of
 * tests/gen_nerf_metrics_goldens.py (mip-NeRF's SSIM), identity, and bad sizes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "eng_test.h"
#include "nerf_metrics.h"

enum { H = 24, W = 31 };

/* a, b, d of the golden script (float32 values). */
static void images(float *a, float *b, float *d) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                const int i = (y * W + x) * 3 + c;
                a[i] = (float)(0.5 + 0.4 * sin(0.21 * x + 0.37 * y + 1.3 * c));
                const double vb = a[i] + 0.05 * cos(0.9 * x - 0.5 * y + c);
                b[i] = (float)(vb < 0 ? 0 : vb > 1 ? 1 : vb);
                const double vd = 0.6 * a[i] + 0.2;
                d[i] = (float)(vd < 0 ? 0 : vd > 1 ? 1 : vd);
            }
}

static int test_reference(void) {
    static float a[H * W * 3], b[H * W * 3], d[H * W * 3];
    eng_err err = {0};
    double s;
    images(a, b, d);
    CHECK_OK(nerf_metrics_ssim(&s, a, b, W, H, 3, &err), &err);
    fprintf(stderr, "nerf.metrics: ssim(a, b) %.9f (want 0.972736172), psnr %.6f\n", s,
            nerf_metrics_psnr(a, b, H * W * 3));
    CHECK(fabs(s - 0.972736172048) < 1e-6);
    CHECK(fabs(nerf_metrics_psnr(a, b, H * W * 3) - 29.030937448700) < 1e-5);
    CHECK_OK(nerf_metrics_ssim(&s, a, d, W, H, 3, &err), &err);
    CHECK(fabs(s - 0.858688389013) < 1e-6);
    CHECK(fabs(nerf_metrics_psnr(a, d, H * W * 3) - 18.927619334512) < 1e-5);
    CHECK_OK(nerf_metrics_ssim(&s, a, a, W, H, 3, &err), &err);
    CHECK(fabs(s - 1.0) < 1e-12);
    CHECK(nerf_metrics_psnr(a, a, H * W * 3) == 100.0);
    CHECK_EQ_I64(nerf_metrics_ssim(&s, a, b, 10, H, 3, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "10x24");
    return 0;
}

static const eng_test_case cases[] = {{"reference", test_reference}};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
