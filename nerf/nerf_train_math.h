/* nerf_train_math.h: the per-ray maths of a training step and of rendering, shared by the CPU
 * twins (tests/test_nerf_cuda.c, nerf_train_cuda.c) and the CUDA kernels (nerf_cuda_train.cu):
 * static inline NERF_HD functions, no allocation, plain numbers. nerf_train.c's make_rays and
 * lr_at use them too (one copy of the ray picks, targets and schedule); the camera rays restate
 * nerf_data.c's nerf_dataset_ray (the CPU keeps its dataset's own) so that a kernel can run them.
 *
 *   float u[8]; nerf_train_uniforms(u, seed, step, r);          // ray r of step `step`
 *   int64_t f, px, py; nerf_train_pick(u, n_frames, w, h, &f, &px, &py);
 *   nerf_train_cam_ray(&cams[f], (float)px + u[3] - 0.5f, (float)py + u[4] - 0.5f, o, d);
 *   nerf_train_target(rgba + 4 * ((f * h + py) * w + px), bg, target);
 *
 * Cameras: nerf_train_cam holds one frame's model-space camera-to-world (nerf_dataset_c2w_model:
 * rotation columns = camera x, y, z; last column the origin) and its pinhole + OpenCV k1 k2 p1 p2
 * intrinsics (nerf_dataset_intrinsics). Rays are those of nerf_dataset_ray: the point (px + 0.5,
 * py + 0.5) in pixels (py down), undistorted by Newton's method in f64, d = R d_cam normalised in
 * f64; the rotation here is the f32 copy of the dataset's f64 matrix, so directions agree with
 * nerf_dataset_ray to about 1e-7 (origins exactly). nerf_train_pinhole_ray is nerf_train.c's f32
 * camera ray of nerf_trainer_render (no distortion).
 * Rounding: under nvcc the f32 products of the target colour are written with __fmul_rn so that
 * they are not fused into multiply-adds: the kernel gives the same bits as the host.
 * Threads: pure functions. */
#ifndef NERF_TRAIN_MATH_H
#define NERF_TRAIN_MATH_H

#include <math.h>
#include <stdint.h>

#include "eng_philox_math.h"
#include "nerf_render_math.h" /* NERF_HD */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__CUDA_ARCH__)
#define NERF_TM_FMUL(a, b) __fmul_rn((a), (b))
#else
#define NERF_TM_FMUL(a, b) ((a) * (b))
#endif

/* One frame's camera, model space (see the top). */
typedef struct nerf_train_cam {
    float c2w[12];        /* 3x4 row-major: rotation | origin */
    float fx, fy, cx, cy; /* pixels */
    float k1, k2, p1, p2; /* OpenCV distortion; all 0: a pinhole */
} nerf_train_cam;

/* nerf_train.c's learning rate at `step`: lr, then x0.33 every 10,000 steps after 20,000. */
static inline NERF_HD float nerf_train_lr_at(float lr, int64_t step) {
    const int64_t past = step - 20000;
    return past > 0 ? lr * powf(0.33f, (float)(past / 10000)) : lr;
}

/* Frames trained on with holdout K (nerf_train.h): all but 0, K, 2K, ... (K >= 2); all for 0. */
static inline NERF_HD int64_t nerf_train_frames(int64_t holdout, int64_t n_frames) {
    return holdout >= 2 ? n_frames - (n_frames + holdout - 1) / holdout : n_frames;
}

/* The dataset frame of training frame i (0 <= i < nerf_train_frames): the K - 1 frames between
 * two held-out ones, in order. */
static inline NERF_HD int64_t nerf_train_frame(int64_t holdout, int64_t i) {
    return holdout >= 2 ? i + i / (holdout - 1) + 1 : i;
}

/* The 8 uniforms of training ray r at step `step`: frame, pixel, sub-pixel point, background. */
static inline NERF_HD void
nerf_train_uniforms(float u[8], uint64_t seed, uint64_t step, int64_t r) {
    for (int k = 0; k < 8; k++)
        u[k] = eng_philox_uniform_at(seed, step, 8 * (uint64_t)r + (uint64_t)k);
}

/* The training frame (0 .. n_frames - 1) and pixel of a training ray from its uniforms (clamped
 * into range). */
static inline NERF_HD void nerf_train_pick(const float u[8],
                                           int64_t n_frames,
                                           int64_t w,
                                           int64_t h,
                                           int64_t *f,
                                           int64_t *px,
                                           int64_t *py) {
    int64_t a = (int64_t)(u[0] * (float)n_frames), x = (int64_t)(u[1] * (float)w),
            y = (int64_t)(u[2] * (float)h);
    *f = a < n_frames ? a : n_frames - 1;
    *px = x < w ? x : w - 1;
    *py = y < h ? y : h - 1;
}

/* target (3) = the straight RGBA pixel c composited on bg (3), as make_rays does. */
static inline NERF_HD void
nerf_train_target(const uint8_t c[4], const float bg[3], float target[3]) {
    const float a = (float)c[3] / 255.0f;
    for (int k = 0; k < 3; k++)
        target[k] = NERF_TM_FMUL((float)c[k] / 255.0f, a) + NERF_TM_FMUL(bg[k], 1.0f - a);
}

/* OpenCV's k1 k2 p1 p2 model at normalised (x, y) (y down) and its Jacobian, f64. */
static inline NERF_HD void nerf_train_distort(
    double *xd, double *yd, double j[4], double x, double y, const nerf_train_cam *c) {
    const double k1 = c->k1, k2 = c->k2, p1 = c->p1, p2 = c->p2;
    const double r2 = x * x + y * y, rad = 1.0 + k1 * r2 + k2 * r2 * r2, drad = k1 + 2.0 * k2 * r2;
    *xd = x * rad + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x);
    *yd = y * rad + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y;
    j[0] = rad + 2.0 * x * x * drad + 2.0 * p1 * y + 6.0 * p2 * x;
    j[1] = 2.0 * x * y * drad + 2.0 * p1 * x + 2.0 * p2 * y;
    j[2] = j[1];
    j[3] = rad + 2.0 * y * y * drad + 6.0 * p1 * y + 2.0 * p2 * x;
}

/* The undistorted normalised point of (xd, yd): nerf_undistort's Newton iterations (at most 20,
 * stopping below 1e-12; a diverging or singular solve keeps what it has, as the twin does). */
static inline NERF_HD void
nerf_train_undistort(double *x, double *y, double xd, double yd, const nerf_train_cam *c) {
    *x = xd;
    *y = yd;
    if (c->k1 == 0.0f && c->k2 == 0.0f && c->p1 == 0.0f && c->p2 == 0.0f) return;
    double u = xd, v = yd;
    for (int it = 0; it < 20; it++) {
        double fx = 0.0, fy = 0.0, j[4];
        nerf_train_distort(&fx, &fy, j, u, v, c);
        fx -= xd;
        fy -= yd;
        const double det = j[0] * j[3] - j[1] * j[2];
        if (!(fabs(det) > 1e-12)) break;
        const double du = (fx * j[3] - fy * j[1]) / det, dv = (fy * j[0] - fx * j[2]) / det;
        u -= du;
        v -= dv;
        if (!isfinite(u) || !isfinite(v)) return; /* diverged: keep the distorted point */
        if (fabs(du) + fabs(dv) < 1e-12) break;
    }
    *x = u;
    *y = v;
}

/* The model-space ray through image point (px + 0.5, py + 0.5) (nerf_dataset_ray's). */
static inline NERF_HD void
nerf_train_cam_ray(const nerf_train_cam *c, float px, float py, float o[3], float d[3]) {
    double x = 0.0, y = 0.0;
    nerf_train_undistort(&x, &y, ((double)px + 0.5 - c->cx) / c->fx,
                         ((double)py + 0.5 - c->cy) / c->fy, c);
    const double dc[3] = {x, -y, -1.0}; /* OpenGL camera: y up, looking down -z */
    double dw[3], norm = 0.0;
    for (int r = 0; r < 3; r++) {
        dw[r] = (double)c->c2w[4 * r] * dc[0] + (double)c->c2w[4 * r + 1] * dc[1] +
                (double)c->c2w[4 * r + 2] * dc[2];
        norm += dw[r] * dw[r];
    }
    norm = sqrt(norm);
    for (int r = 0; r < 3; r++) {
        d[r] = (float)(dw[r] / norm);
        o[r] = c->c2w[4 * r + 3];
    }
}

/* nerf_trainer_render's f32 ray through the centre of pixel (px, py) (pinhole; k1.. ignored). */
static inline NERF_HD void
nerf_train_pinhole_ray(const nerf_train_cam *c, int64_t px, int64_t py, float o[3], float d[3]) {
    const float dc[3] = {((float)px + 0.5f - c->cx) / c->fx, -((float)py + 0.5f - c->cy) / c->fy,
                         -1.0f};
    float n = 0;
    for (int a = 0; a < 3; a++) {
        d[a] = c->c2w[4 * a] * dc[0] + c->c2w[4 * a + 1] * dc[1] + c->c2w[4 * a + 2] * dc[2];
        n += d[a] * d[a];
        o[a] = c->c2w[4 * a + 3];
    }
    n = sqrtf(n);
    for (int a = 0; a < 3; a++)
        d[a] /= n;
}

/* The whole training ray r of step `step` (make_rays): o, d (3), the background (3; white
 * without random_bg) and the target colour (3) from the frames' RGBA pixels (n_frames, h, w, 4)
 * and cameras (n_frames), every holdout-th frame left out (0: none). */
static inline NERF_HD void nerf_train_ray(float o[3],
                                          float d[3],
                                          float target[3],
                                          float bg[3],
                                          const nerf_train_cam *cams,
                                          const uint8_t *rgba,
                                          int64_t n_frames,
                                          int64_t w,
                                          int64_t h,
                                          uint64_t seed,
                                          uint64_t step,
                                          int random_bg,
                                          int64_t holdout,
                                          int64_t r) {
    float u[8];
    int64_t f, px, py;
    nerf_train_uniforms(u, seed, step, r);
    nerf_train_pick(u, nerf_train_frames(holdout, n_frames), w, h, &f, &px, &py);
    f = nerf_train_frame(holdout, f);
    nerf_train_cam_ray(&cams[f], (float)px + u[3] - 0.5f, (float)py + u[4] - 0.5f, o, d);
    for (int k = 0; k < 3; k++)
        bg[k] = random_bg ? u[5 + k] : 1.0f;
    nerf_train_target(rgba + ((f * h + py) * w + px) * 4, bg, target);
}

#ifdef __cplusplus
}
#endif
#endif /* NERF_TRAIN_MATH_H */
