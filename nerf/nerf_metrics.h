/* nerf_metrics.h: image quality metrics of NeRF evaluation: PSNR and SSIM, as the NeRF papers
 * report them (mip-NeRF's compute_ssim: an 11x11 Gaussian window of sigma 1.5, K1 = 0.01,
 * K2 = 0.03, data range 1, "valid" filtering (no padding), per channel, averaged over the
 * channels and pixels). Prefix nerf_metrics_.
 *
 *   double psnr = nerf_metrics_psnr(a, b, w * h * 3);
 *   double ssim; nerf_metrics_ssim(&ssim, a, b, w, h, 3, &err);
 *
 * Images are float (h, w, c) row-major with values in [0, 1]. Threads: pure functions. */
#ifndef NERF_METRICS_H
#define NERF_METRICS_H

#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_SSIM_WINDOW 11

/* -10 log10(mean squared error) over n values; 100 when the images are equal. */
double nerf_metrics_psnr(const float *a, const float *b, int64_t n);
/* *out = SSIM(a, b). Errors: ENG_E_INVALID_ARG (w or h under the 11-pixel window, c < 1),
 * ENG_E_OOM. */
int nerf_metrics_ssim(
    double *out, const float *a, const float *b, int64_t w, int64_t h, int64_t c, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* NERF_METRICS_H */
