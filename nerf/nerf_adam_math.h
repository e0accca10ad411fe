/* nerf_adam_math.h: one Adam update of one parameter, as tiny-cuda-nn's Adam optimizer does it
 * for instant-ngp, shared by the CPU twin (nerf_adam.c) and, later, the CUDA kernel.
 *
 *   if (matrix || g[i] != 0) { t[i]++; nerf_adam_update(&w[i], &m[i], &v[i], g[i], lr,
 *                                                      c(t[i]), &hyper, matrix); }
 *
 * For a "matrix" parameter (MLP weight) with gradient g:
 *   g += l2_reg w                                  (L2 regularisation, MLP weights only)
 *   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2,  t = t + 1
 *   w -= lr c(t) m / (sqrt(v) + eps),   c(t) = sqrt(1 - beta2^t) / (1 - beta1^t)
 * A non-matrix parameter (hash-table entry) is updated the same way without L2, and skipped
 * altogether (moments, step count and value untouched) when its gradient is exactly 0: entries
 * no sample touched in this batch keep their state. Each parameter counts its own steps t, so its
 * bias correction follows its own updates (tiny-cuda-nn's per-parameter step counters).
 * c(t) is computed in double and rounded once (nerf_adam_correction): the CPU keeps a table of
 * it; a kernel may compute it directly (double precision makes a different float very unlikely).
 * Threads: pure functions. */
#ifndef NERF_ADAM_MATH_H
#define NERF_ADAM_MATH_H

#include <math.h>
#include <stdint.h>

#include "eng_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nerf_adam_hyper {
    float beta1, beta2, epsilon, l2_reg;
} nerf_adam_hyper;

/* c(t) = sqrt(1 - beta2^t) / (1 - beta1^t) for t >= 1, in double, rounded to f32. */
static inline ENG_HD float nerf_adam_correction(float beta1, float beta2, uint32_t t) {
    const double b1t = pow((double)beta1, (double)t), b2t = pow((double)beta2, (double)t);
    return (float)(sqrt(1.0 - b2t) / (1.0 - b1t));
}

/* The update above for one parameter whose step count is now t (already incremented), with
 * corr = c(t). `matrix`: an MLP weight (L2). The caller skips non-matrix parameters whose
 * gradient is 0. */
static inline ENG_HD void nerf_adam_update(float *w,
                                           float *m,
                                           float *v,
                                           float g,
                                           float lr,
                                           float corr,
                                           const nerf_adam_hyper *h,
                                           int matrix) {
    if (matrix) {
        g += h->l2_reg * *w;
    }
    const float m1 = h->beta1 * *m + (1.0f - h->beta1) * g;
    const float v1 = h->beta2 * *v + (1.0f - h->beta2) * g * g;
    *m = m1;
    *v = v1;
    *w -= (lr * corr) / (sqrtf(v1) + h->epsilon) * m1;
}

#ifdef __cplusplus
}
#endif
#endif /* NERF_ADAM_MATH_H */
