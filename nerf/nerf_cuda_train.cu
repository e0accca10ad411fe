/* nerf_cuda_train.cu: the small kernels of the device training step and renderer
 * (nerf_train_cuda.h): training rays with their targets, camera rays, the L2 loss with its
 * gradient, fills. The maths is nerf_train_math.h's, shared with the CPU twins.
 *   o, d, target, bg, color, d_color: (n_rays, 3) f32; rgba (n_frames, h, w, 4) u8. */
#include "nerf_train_cuda.h"

#include <cuda_runtime.h>

#include "eng_cuda_common.cuh"
#include "nerf_train_math.h"

enum {
    EW_BLOCK = 256, /* one thread per ray or element */
    EW_MAX_BLOCKS = 1 << 16,
    L2_THREADS = 256,
};

/* Ray r of the step: nerf_train_ray. One thread per ray. */
static __global__ void train_rays_f32_kernel(float *__restrict__ o,
                                             float *__restrict__ d,
                                             float *__restrict__ target,
                                             float *__restrict__ bg,
                                             int64_t n_rays,
                                             const nerf_train_cam *__restrict__ cams,
                                             const uint8_t *__restrict__ rgba,
                                             int64_t n_frames,
                                             int64_t w,
                                             int64_t h,
                                             uint64_t seed,
                                             uint64_t step,
                                             int random_bg,
                                             int64_t holdout) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < n_rays;
         r += (int64_t)gridDim.x * blockDim.x) {
        float ro[3], rd[3], rt[3], rb[3];
        nerf_train_ray(ro, rd, rt, rb, cams, rgba, n_frames, w, h, seed, step, random_bg, holdout,
                       r);
        for (int k = 0; k < 3; k++) {
            o[3 * r + k] = ro[k];
            d[3 * r + k] = rd[k];
            target[3 * r + k] = rt[k];
            bg[3 * r + k] = rb[k];
        }
    }
}

/* The ray of pixel first + r of the camera. One thread per ray. */
static __global__ void cam_rays_f32_kernel(float *__restrict__ o,
                                           float *__restrict__ d,
                                           int64_t n,
                                           const nerf_train_cam cam,
                                           int pinhole,
                                           int64_t w,
                                           int64_t first) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < n;
         r += (int64_t)gridDim.x * blockDim.x) {
        const int64_t pix = first + r, px = pix % w, py = pix / w;
        if (pinhole)
            nerf_train_pinhole_ray(&cam, px, py, o + 3 * r, d + 3 * r);
        else
            nerf_train_cam_ray(&cam, (float)px, (float)py, o + 3 * r, d + 3 * r);
    }
}

/* d_color[i] = scale (color[i] - target[i]); partial[block] = the block's sum of the squared
 * differences in f64 (grid-stride over a fixed grid, then a tree in shared memory). */
static __global__ void __launch_bounds__(L2_THREADS)
    l2_partial_f64_kernel(double *__restrict__ partial,
                          float *__restrict__ d_color,
                          const float *__restrict__ color,
                          const float *__restrict__ target,
                          int64_t n,
                          float scale) {
    __shared__ double sh[L2_THREADS];
    double acc = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float diff = color[i] - target[i];
        d_color[i] = scale * diff;
        acc += (double)diff * (double)diff;
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int k = L2_THREADS / 2; k > 0; k /= 2) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

/* se[0] = the sum of partial[0 .. n_partial) (one block, fixed order). */
static __global__ void __launch_bounds__(L2_THREADS)
    l2_final_f64_kernel(double *__restrict__ se,
                        const double *__restrict__ partial,
                        int n_partial) {
    __shared__ double sh[L2_THREADS];
    double acc = 0.0;
    for (int i = (int)threadIdx.x; i < n_partial; i += L2_THREADS)
        acc += partial[i];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int k = L2_THREADS / 2; k > 0; k /= 2) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) se[0] = sh[0];
}

static __global__ void fill_f32_kernel(float *__restrict__ y, int64_t n, float value) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = value;
}

static __global__ void
fill3_f32_kernel(float *__restrict__ y, int64_t n, float a, float b, float c) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        y[3 * i] = a;
        y[3 * i + 1] = b;
        y[3 * i + 2] = c;
    }
}

/* ---- launchers ------------------------------------------------------------------------------- */

int nerf_cuda_train_rays(eng_stream *s,
                         float *o,
                         float *d,
                         float *target,
                         float *bg,
                         int64_t n_rays,
                         const nerf_train_cam *cams,
                         const uint8_t *rgba,
                         int64_t n_frames,
                         int64_t w,
                         int64_t h,
                         uint64_t seed,
                         uint64_t step,
                         int random_bg,
                         int64_t holdout,
                         eng_err *err) {
    cudaStream_t st;
    int rc;
    if ((rc = eng_cuda_stream_get(&st, __func__, s, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, n_rays, "o", o, "d", d, "target", target, err)) !=
            ENG_OK ||
        (rc = eng_cuda_check_1d(__func__, n_rays, "bg", bg, "cams", cams, "rgba", rgba, err)) !=
            ENG_OK)
        return rc;
    if (n_rays == 0) return ENG_OK;
    if (n_frames < 1 || w < 1 || h < 1 || holdout < 0 || holdout == 1 ||
        nerf_train_frames(holdout, n_frames) < 1)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: %lld frames of %lldx%lld pixels, holdout %lld (none left to train "
                           "on?)",
                           __func__, (long long)n_frames, (long long)w, (long long)h,
                           (long long)holdout);
    train_rays_f32_kernel<<<eng_cuda_grid_1d(n_rays, EW_BLOCK, EW_MAX_BLOCKS), EW_BLOCK, 0, st>>>(
        o, d, target, bg, n_rays, cams, rgba, n_frames, w, h, seed, step, random_bg, holdout);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

int nerf_cuda_cam_rays(eng_stream *s,
                       float *o,
                       float *d,
                       int64_t n,
                       const nerf_train_cam *cam,
                       int pinhole,
                       int64_t w,
                       int64_t first,
                       eng_err *err) {
    cudaStream_t st;
    int rc;
    ENG_ASSERT(cam != NULL);
    if ((rc = eng_cuda_stream_get(&st, __func__, s, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, n, "o", o, "d", d, NULL, NULL, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    if (w < 1 || first < 0 || !(cam->fx > 0) || !(cam->fy > 0))
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: width %lld, first pixel %lld, focal %g %g",
                           __func__, (long long)w, (long long)first, (double)cam->fx,
                           (double)cam->fy);
    cam_rays_f32_kernel<<<eng_cuda_grid_1d(n, EW_BLOCK, EW_MAX_BLOCKS), EW_BLOCK, 0, st>>>(
        o, d, n, *cam, pinhole, w, first);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

int nerf_cuda_l2_loss(eng_stream *s,
                      float *d_color,
                      double *se,
                      const float *color,
                      const float *target,
                      int64_t n,
                      eng_err *err) {
    cudaStream_t st;
    int rc = ENG_OK, marked = 0;
    eng_arena *arena = s != NULL ? s->arena : NULL;
    eng_arena_pos mark = {0, 0, 0};
    double *partial = NULL;
    if ((rc = eng_cuda_stream_get(&st, __func__, s, err)) != ENG_OK) goto done;
    if (se == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: se is NULL", __func__);
        goto done;
    }
    if ((rc = eng_cuda_check_1d(__func__, n, "d_color", d_color, "color", color, "target", target,
                                err)) != ENG_OK)
        goto done;
    if (n == 0) {
        rc = ENG_CUDA_CHECK(cudaMemsetAsync(se, 0, sizeof *se, st), err);
        goto done;
    }
    if (arena == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: the stream has no arena (the sum needs a workspace)", __func__);
        goto done;
    }
    mark = eng_arena_mark(arena);
    marked = 1;
    if ((rc = eng_arena_take(arena, (void **)&partial, NERF_CUDA_L2_BLOCKS * sizeof *partial,
                             err)) != ENG_OK) {
        eng_err_prefix(err, "%s", __func__);
        goto done;
    }
    l2_partial_f64_kernel<<<NERF_CUDA_L2_BLOCKS, L2_THREADS, 0, st>>>(partial, d_color, color,
                                                                      target, n, 2.0f / (float)n);
    if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK) goto done;
    l2_final_f64_kernel<<<1, L2_THREADS, 0, st>>>(se, partial, NERF_CUDA_L2_BLOCKS);
    if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK) goto done;
done:
    if (marked) eng_arena_rewind(arena, mark); /* enqueued: stream order protects the reuse */
    return rc;
}

int nerf_cuda_fill_f32(eng_stream *s, float *y, int64_t n, float value, eng_err *err) {
    cudaStream_t st;
    int rc;
    if ((rc = eng_cuda_stream_get(&st, __func__, s, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, n, "y", y, NULL, NULL, NULL, NULL, err)) != ENG_OK)
        return rc;
    if (n == 0) return ENG_OK;
    fill_f32_kernel<<<eng_cuda_grid_1d(n, EW_BLOCK, EW_MAX_BLOCKS), EW_BLOCK, 0, st>>>(y, n, value);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

int nerf_cuda_fill3_f32(eng_stream *s, float *y, int64_t n, const float v[3], eng_err *err) {
    cudaStream_t st;
    int rc;
    ENG_ASSERT(v != NULL);
    if ((rc = eng_cuda_stream_get(&st, __func__, s, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, n, "y", y, NULL, NULL, NULL, NULL, err)) != ENG_OK)
        return rc;
    if (n == 0) return ENG_OK;
    fill3_f32_kernel<<<eng_cuda_grid_1d(n, EW_BLOCK, EW_MAX_BLOCKS), EW_BLOCK, 0, st>>>(y, n, v[0],
                                                                                        v[1], v[2]);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}
