/* nerf_metrics.c: PSNR and SSIM (nerf_metrics.h). SSIM filters separably (rows, then columns)
 * in double with the normalised 11-tap Gaussian. */
#include "nerf_metrics.h"

#include <math.h>
#include <stdlib.h>

double nerf_metrics_psnr(const float *a, const float *b, int64_t n) {
    double se = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    if (n <= 0 || se == 0) return 100.0;
    return -10.0 * log10(se / (double)n);
}

/* out (ho, wo) = the valid 2-D Gaussian filtering of in (h, w), separable; tmp (h, wo). */
static void
blur(double *out, double *tmp, const double *in, int64_t w, int64_t h, const double *k) {
    const int64_t wo = w - NERF_SSIM_WINDOW + 1, ho = h - NERF_SSIM_WINDOW + 1;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < wo; x++) {
            double s = 0;
            for (int t = 0; t < NERF_SSIM_WINDOW; t++)
                s += k[t] * in[y * w + x + t];
            tmp[y * wo + x] = s;
        }
    for (int64_t y = 0; y < ho; y++)
        for (int64_t x = 0; x < wo; x++) {
            double s = 0;
            for (int t = 0; t < NERF_SSIM_WINDOW; t++)
                s += k[t] * tmp[(y + t) * wo + x];
            out[y * wo + x] = s;
        }
}

int nerf_metrics_ssim(
    double *out, const float *a, const float *b, int64_t w, int64_t h, int64_t c, eng_err *err) {
    if (w < NERF_SSIM_WINDOW || h < NERF_SSIM_WINDOW || c < 1 || w > (1 << 15) || h > (1 << 15))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_metrics_ssim: a %lldx%lld image with %lld channels (at least "
                           "%dx%d, 1 channel)",
                           (long long)w, (long long)h, (long long)c, NERF_SSIM_WINDOW,
                           NERF_SSIM_WINDOW);
    double k[NERF_SSIM_WINDOW], ks = 0;
    for (int t = 0; t < NERF_SSIM_WINDOW; t++) {
        const double x = t - (NERF_SSIM_WINDOW - 1) / 2.0;
        k[t] = exp(-0.5 * x * x / (1.5 * 1.5));
        ks += k[t];
    }
    for (int t = 0; t < NERF_SSIM_WINDOW; t++)
        k[t] /= ks;
    const int64_t wo = w - NERF_SSIM_WINDOW + 1, ho = h - NERF_SSIM_WINDOW + 1;
    const size_t npx = (size_t)(w * h), nout = (size_t)(wo * ho);
    double *buf = (double *)malloc((5 * npx + 5 * nout + (size_t)(h * wo)) * sizeof *buf);
    if (buf == NULL) return eng_err_set(err, ENG_E_OOM, "nerf_metrics_ssim: out of memory");
    double *x = buf, *y = x + npx, *xx = y + npx, *yy = xx + npx, *xy = yy + npx;
    double *mx = xy + npx, *my = mx + nout, *sxx = my + nout, *syy = sxx + nout, *sxy = syy + nout;
    double *tmp = sxy + nout;
    const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
    double total = 0;
    for (int64_t ch = 0; ch < c; ch++) {
        for (size_t i = 0; i < npx; i++) {
            x[i] = a[i * (size_t)c + (size_t)ch];
            y[i] = b[i * (size_t)c + (size_t)ch];
            xx[i] = x[i] * x[i], yy[i] = y[i] * y[i], xy[i] = x[i] * y[i];
        }
        blur(mx, tmp, x, w, h, k);
        blur(my, tmp, y, w, h, k);
        blur(sxx, tmp, xx, w, h, k);
        blur(syy, tmp, yy, w, h, k);
        blur(sxy, tmp, xy, w, h, k);
        for (size_t i = 0; i < nout; i++) {
            const double vx = fmax(0.0, sxx[i] - mx[i] * mx[i]);
            const double vy = fmax(0.0, syy[i] - my[i] * my[i]);
            double cov = sxy[i] - mx[i] * my[i];
            const double lim = sqrt(vx * vy); /* mip-NeRF clips the covariance too */
            cov = cov < -lim ? -lim : cov > lim ? lim : cov;
            total += ((2 * mx[i] * my[i] + c1) * (2 * cov + c2)) /
                     ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2));
        }
    }
    free(buf);
    *out = total / (double)(nout * (size_t)c);
    return ENG_OK;
}
