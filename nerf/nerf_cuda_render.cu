/* nerf_cuda_render.cu: ray marching (two passes: count, prefix sum, fill) and compositing forward
 * and backward on CUDA, one thread per ray. The twin is nerf_render.c; the per-ray maths is
 * nerf_render_math.h, shared. This file is compiled with -fmad=false (nerf/CMakeLists.txt): the
 * marching then rounds every step as the CPU does and keeps the same samples, bit for bit.
 *   o, d (n_rays, 3) model space, d unit; start (n_rays + 1) int64; samples packed ray by ray. */
#include "nerf_cuda.h"

#include <cuda_runtime.h>

#include <cub/device/device_scan.cuh>

#include "eng_cuda_common.cuh"
#include "nerf_render_math.h"

enum { RAY_BLOCK = 128, RAY_MAX_BLOCKS = 1 << 16 };

/* The occupancy test of nerf_occgrid_occupied (grid.bits NULL: everything occupied). */
static __device__ int occ_occupied(const nerf_cuda_occ &grid, int k, int64_t cell) {
    const int64_t cells = (int64_t)grid.res * grid.res * grid.res;
    if (k < 0 || k >= grid.cascades || cell < 0 || cell >= cells) return 0;
    return grid.bits[k * cells + cell] != 0;
}

/* Writes sample `at` (position q, direction d, t and dt). */
static __device__ void put_sample(int64_t at,
                                  const float q[3],
                                  const float *d,
                                  float tm,
                                  float dt,
                                  float *__restrict__ pos,
                                  float *__restrict__ dir,
                                  float *__restrict__ ts,
                                  float *__restrict__ dts) {
    for (int a = 0; a < 3; a++) {
        pos[3 * at + a] = q[a];
        dir[3 * at + a] = d[a];
    }
    ts[at] = tm;
    dts[at] = dt;
}

/* The contracted march of ray (o, d) over [t0, t1] (nerf_render.c's march_one_contract without
 * its optional coarse skip, which training never sets): one grid over the contracted cube. */
template <bool FILL>
static __device__ int64_t march_ray_contract(const nerf_cuda_occ &grid,
                                             const nerf_march_params &p,
                                             const float *o,
                                             const float *d,
                                             float t0,
                                             float t1,
                                             int64_t at,
                                             int64_t end,
                                             float *__restrict__ pos,
                                             float *__restrict__ dir,
                                             float *__restrict__ ts,
                                             float *__restrict__ dts) {
    const int res = grid.bits != NULL ? grid.res : 1;
    const float ri = p.inner_radius;
    int64_t n = 0;
    float t = t0 + 1e-6f;
    while (t < t1 && n < p.max_samples) {
        const float q0[3] = {o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]};
        const float dt =
            nerf_step_contract(q0, t, p.cone_angle, p.dt_min, p.dt_max, ri, p.contract_step);
        const float tm = t + 0.5f * dt;
        const float q[3] = {o[0] + tm * d[0], o[1] + tm * d[1], o[2] + tm * d[2]};
        if (grid.bits != NULL && !occ_occupied(grid, 0, nerf_contract_cell(q, ri, res))) {
            const float tn = nerf_contract_next_t(o, d, tm, ri, res);
            t = tn > t + dt ? tn : t + dt;
            continue;
        }
        if (FILL) {
            if (at >= end) break; /* cannot happen when pass 1 counted the same ray */
            put_sample(at++, q, d, tm, dt, pos, dir, ts, dts);
        }
        n++;
        t += dt;
    }
    return n;
}

/* Marches ray (o, d) as nerf_render.c's march_one does; with FILL, writes its samples from `at`
 * but never at or past `end`. Returns the number of samples. */
template <bool FILL>
static __device__ int64_t march_ray(const nerf_cuda_occ &grid,
                                    const nerf_march_params &p,
                                    const float *o,
                                    const float *d,
                                    int64_t at,
                                    int64_t end,
                                    float *__restrict__ pos,
                                    float *__restrict__ dir,
                                    float *__restrict__ ts,
                                    float *__restrict__ dts) {
    float t0, t1;
    if (!nerf_ray_box(o, d, p.box_lo, p.box_hi, &t0, &t1)) return 0;
    if (p.contract)
        return march_ray_contract<FILL>(grid, p, o, d, t0, t1, at, end, pos, dir, ts, dts);
    const int cascades = grid.bits != NULL ? grid.cascades : 1;
    const int res = grid.bits != NULL ? grid.res : 1;
    int64_t n = 0;
    float t = t0 + 1e-6f;
    while (t < t1 && n < p.max_samples) {
        const float dt = nerf_step(t, p.cone_angle, p.dt_min, p.dt_max);
        const float tm = t + 0.5f * dt;
        const float q[3] = {o[0] + tm * d[0], o[1] + tm * d[1], o[2] + tm * d[2]};
        if (grid.bits != NULL) {
            const int k = nerf_cascade_of(q, cascades);
            if (k >= cascades) { /* outside the grid: no density there */
                t += dt;
                continue;
            }
            if (!occ_occupied(grid, k, nerf_cell_of(q, k, res))) {
                const float tn = nerf_next_cell_t(o, d, tm, k, res);
                t = tn > t + dt ? tn : t + dt;
                continue;
            }
        }
        if (FILL) {
            if (at >= end) break; /* cannot happen when pass 1 counted the same ray */
            for (int a = 0; a < 3; a++) {
                pos[3 * at + a] = q[a];
                dir[3 * at + a] = d[a];
            }
            ts[at] = tm;
            dts[at] = dt;
            at++;
        }
        n++;
        t += dt;
    }
    return n;
}

/* counts[r] = the samples of ray r. */
static __global__ void march_count_f32_kernel(const nerf_cuda_occ grid,
                                              const nerf_march_params p,
                                              int64_t *__restrict__ counts,
                                              int64_t n_rays,
                                              const float *__restrict__ o,
                                              const float *__restrict__ d) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < n_rays;
         r += (int64_t)gridDim.x * blockDim.x) {
        const float orr[3] = {o[3 * r], o[3 * r + 1], o[3 * r + 2]};
        const float drr[3] = {d[3 * r], d[3 * r + 1], d[3 * r + 2]};
        counts[r] = march_ray<false>(grid, p, orr, drr, 0, 0, NULL, NULL, NULL, NULL);
    }
}

/* res[0] = start[n_rays]; res[1] = the rays kept under cap (see nerf_cuda_march_count). Exactly
 * one thread writes each: start is non-decreasing. */
static __global__ void march_keep_i64_kernel(int64_t *__restrict__ res,
                                             const int64_t *__restrict__ start,
                                             int64_t n_rays,
                                             int64_t cap) {
    for (int64_t k = 1 + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k <= n_rays;
         k += (int64_t)gridDim.x * blockDim.x) {
        if (k == n_rays) res[0] = start[n_rays];
        if (start[k] <= cap && (k == n_rays || start[k + 1] > cap)) res[1] = k;
        if (k == 1 && start[1] > cap) res[1] = 1;
    }
}

static __global__ void march_fill_f32_kernel(const nerf_cuda_occ grid,
                                             const nerf_march_params p,
                                             const nerf_cuda_samples smp,
                                             const float *__restrict__ o,
                                             const float *__restrict__ d) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < smp.n_rays;
         r += (int64_t)gridDim.x * blockDim.x) {
        const float orr[3] = {o[3 * r], o[3 * r + 1], o[3 * r + 2]};
        const float drr[3] = {d[3 * r], d[3 * r + 1], d[3 * r + 2]};
        march_ray<true>(grid, p, orr, drr, smp.start[r], smp.start[r + 1], smp.pos, smp.dir, smp.t,
                        smp.dt);
    }
}

static int check_march(const char *fn,
                       const nerf_cuda_occ *grid,
                       const nerf_march_params *p,
                       eng_stream *s,
                       int64_t n_rays,
                       const float *o,
                       const float *d,
                       cudaStream_t *st,
                       eng_err *err) {
    int rc;
    ENG_ASSERT(grid != NULL && p != NULL);
    if ((rc = eng_cuda_stream_get(st, fn, s, err)) != ENG_OK) return rc;
    if (!(p->dt_min > 0) || !(p->dt_max >= p->dt_min) || p->max_samples < 1 ||
        !(p->cone_angle >= 0)) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: dt_min %g, dt_max %g, cone_angle %g, max_samples %d", fn,
            (double)p->dt_min, (double)p->dt_max, (double)p->cone_angle, p->max_samples);
    }
    if (p->contract && (!(p->inner_radius > 0 && isfinite(p->inner_radius)) ||
                        !(p->contract_step > 0 && isfinite(p->contract_step)))) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: contracted marching with inner_radius %g and contract_step %g "
                           "(both must be positive)",
                           fn, (double)p->inner_radius, (double)p->contract_step);
    }
    if (p->contract && grid->bits != NULL && grid->cascades != 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: contracted marching needs a grid of 1 cascade, got %d", fn,
                           grid->cascades);
    }
    if (grid->bits != NULL && (grid->cascades < 1 || grid->cascades > NERF_OCCGRID_MAX_CASCADES ||
                               grid->res < 1 || grid->res > NERF_OCCGRID_MAX_RES)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: grid of %d cascades of %d^3, expected 1..%d "
                           "of 1..%d^3",
                           fn, grid->cascades, grid->res, NERF_OCCGRID_MAX_CASCADES,
                           NERF_OCCGRID_MAX_RES);
    }
    return eng_cuda_check_1d(fn, n_rays, "o", o, "d", d, NULL, NULL, err);
}

int nerf_cuda_march_count(const nerf_cuda_occ *grid,
                          const nerf_march_params *p,
                          eng_stream *s,
                          int64_t *start,
                          int64_t n_rays,
                          const float *o,
                          const float *d,
                          int64_t cap_samples,
                          int64_t *n_samples,
                          int64_t *n_rays_kept,
                          eng_err *err) {
    cudaStream_t st;
    int rc = ENG_OK, marked = 0;
    eng_arena *arena = s != NULL ? s->arena : NULL;
    eng_arena_pos mark = {0, 0, 0};
    int64_t *counts = NULL, *res = NULL, host[2] = {0, 0};
    void *tmp = NULL;
    size_t tmp_bytes = 0;
    ENG_ASSERT(n_samples != NULL && n_rays_kept != NULL);
    *n_samples = 0;
    *n_rays_kept = 0;
    if ((rc = check_march(__func__, grid, p, s, n_rays, o, d, &st, err)) != ENG_OK) goto done;
    if (start == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: start is NULL", __func__);
        goto done;
    }
    if (n_rays == 0) { /* start[0] = 0 still */
        rc = ENG_CUDA_CHECK(cudaMemsetAsync(start, 0, sizeof *start, st), err);
        goto done;
    }
    if (arena == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: the stream has no arena (the scan needs a workspace)", __func__);
        goto done;
    }
    if ((rc = ENG_CUDA_CHECK(cub::DeviceScan::InclusiveSum(NULL, tmp_bytes, (const int64_t *)NULL,
                                                           (int64_t *)NULL, n_rays, st),
                             err)) != ENG_OK)
        goto done;
    mark = eng_arena_mark(arena);
    marked = 1;
    if ((rc = eng_arena_take(arena, (void **)&counts, (size_t)n_rays * sizeof *counts, err)) !=
            ENG_OK ||
        (rc = eng_arena_take(arena, (void **)&res, 2 * sizeof *res, err)) != ENG_OK ||
        (rc = eng_arena_take(arena, &tmp, tmp_bytes > 0 ? tmp_bytes : 1, err)) != ENG_OK) {
        eng_err_prefix(err, "%s", __func__);
        goto done;
    }
    march_count_f32_kernel<<<eng_cuda_grid_1d(n_rays, RAY_BLOCK, RAY_MAX_BLOCKS), RAY_BLOCK, 0,
                             st>>>(*grid, *p, counts, n_rays, o, d);
    if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK) goto done;
    if ((rc = ENG_CUDA_CHECK(cudaMemsetAsync(start, 0, sizeof *start, st), err)) != ENG_OK ||
        (rc = ENG_CUDA_CHECK(cub::DeviceScan::InclusiveSum(tmp, tmp_bytes, (const int64_t *)counts,
                                                           start + 1, n_rays, st),
                             err)) != ENG_OK)
        goto done;
    march_keep_i64_kernel<<<eng_cuda_grid_1d(n_rays, RAY_BLOCK, RAY_MAX_BLOCKS), RAY_BLOCK, 0,
                            st>>>(res, start, n_rays, cap_samples < 0 ? INT64_MAX : cap_samples);
    if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK) goto done;
    if ((rc = ENG_CUDA_CHECK(cudaMemcpyAsync(host, res, sizeof host, cudaMemcpyDeviceToHost, st),
                             err)) != ENG_OK ||
        (rc = ENG_CUDA_CHECK(cudaStreamSynchronize(st), err)) != ENG_OK)
        goto done;
    *n_samples = host[0];
    *n_rays_kept = cap_samples < 0 ? n_rays : host[1];
done:
    if (marked) eng_arena_rewind(arena, mark); /* enqueued (and finished): safe to reuse */
    return rc;
}

int nerf_cuda_march_fill(const nerf_cuda_occ *grid,
                         const nerf_march_params *p,
                         eng_stream *s,
                         const nerf_cuda_samples *out,
                         const float *o,
                         const float *d,
                         eng_err *err) {
    cudaStream_t st;
    int rc;
    ENG_ASSERT(out != NULL);
    if ((rc = check_march(__func__, grid, p, s, out->n_rays, o, d, &st, err)) != ENG_OK) return rc;
    if (out->n_rays == 0) return ENG_OK;
    if (out->start == NULL || (out->n > 0 && (out->pos == NULL || out->dir == NULL ||
                                              out->t == NULL || out->dt == NULL))) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL sample arrays for %lld samples",
                           __func__, (long long)out->n);
    }
    march_fill_f32_kernel<<<eng_cuda_grid_1d(out->n_rays, RAY_BLOCK, RAY_MAX_BLOCKS), RAY_BLOCK, 0,
                            st>>>(*grid, *p, *out, o, d);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- compositing ----------------------------------------------------------------------------- */

/* nerf_render.c's forward_range for ray r (f64 sums, stop once T < NERF_T_STOP). */
static __global__ void composite_fwd_f32_kernel(const nerf_cuda_samples smp,
                                                const float *__restrict__ sigma,
                                                const float *__restrict__ rgb,
                                                const float *__restrict__ bg,
                                                float *__restrict__ color,
                                                float *__restrict__ opacity,
                                                float *__restrict__ depth) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < smp.n_rays;
         r += (int64_t)gridDim.x * blockDim.x) {
        double c[3] = {0, 0, 0}, dep = 0, T = 1;
        const int64_t end = smp.start[r + 1];
        for (int64_t i = smp.start[r]; i < end; i++) {
            const double a = nerf_alpha(sigma[i], smp.dt[i]), w = T * a;
            for (int ch = 0; ch < 3; ch++)
                c[ch] += w * rgb[3 * i + ch];
            dep += w * smp.t[i];
            T *= 1.0 - a;
            if (T < NERF_T_STOP) break;
        }
        for (int ch = 0; ch < 3; ch++)
            color[3 * r + ch] = (float)(c[ch] + T * (bg != NULL ? bg[3 * r + ch] : 0));
        if (opacity != NULL) opacity[r] = (float)(1.0 - T);
        if (depth != NULL) depth[r] = (float)dep;
    }
}

/* nerf_render.c's backward_range for ray r: exact gradients of the sum, zero after the stop. */
static __global__ void composite_bwd_f32_kernel(const nerf_cuda_samples smp,
                                                const float *__restrict__ sigma,
                                                const float *__restrict__ rgb,
                                                const float *__restrict__ color,
                                                const float *__restrict__ d_color,
                                                float *__restrict__ d_sigma,
                                                float *__restrict__ d_rgb) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < smp.n_rays;
         r += (int64_t)gridDim.x * blockDim.x) {
        const float *dc = d_color + 3 * r, *col = color + 3 * r;
        double acc[3] = {0, 0, 0}, T = 1;
        const int64_t end = smp.start[r + 1];
        int64_t i = smp.start[r];
        for (; i < end; i++) {
            const float *c = rgb + 3 * i;
            const double a = nerf_alpha(sigma[i], smp.dt[i]), w = T * a, Tn = T * (1.0 - a);
            double g = 0;
            for (int ch = 0; ch < 3; ch++) {
                acc[ch] += w * c[ch];
                d_rgb[3 * i + ch] = (float)(w * dc[ch]);
                g += dc[ch] * (Tn * c[ch] - ((double)col[ch] - acc[ch]));
            }
            d_sigma[i] = (float)(smp.dt[i] * g);
            T = Tn;
            if (T < NERF_T_STOP) {
                i++;
                break;
            }
        }
        for (; i < end; i++) { /* after the stop: no influence */
            d_sigma[i] = 0.0f;
            d_rgb[3 * i] = d_rgb[3 * i + 1] = d_rgb[3 * i + 2] = 0.0f;
        }
    }
}

static int check_composite(const char *fn,
                           const nerf_cuda_samples *smp,
                           eng_stream *s,
                           const float *sigma,
                           const float *rgb,
                           cudaStream_t *st,
                           eng_err *err) {
    int rc;
    ENG_ASSERT(smp != NULL);
    if ((rc = eng_cuda_stream_get(st, fn, s, err)) != ENG_OK) return rc;
    if (smp->n_rays < 0 || smp->n < 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %lld rays, %lld samples", fn,
                           (long long)smp->n_rays, (long long)smp->n);
    }
    if (smp->n_rays > 0 && smp->start == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: start is NULL with %lld rays", fn,
                           (long long)smp->n_rays);
    }
    if (smp->n > 0 && (smp->t == NULL || smp->dt == NULL)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: t or dt is NULL with %lld samples", fn,
                           (long long)smp->n);
    }
    return eng_cuda_check_1d(fn, smp->n, "sigma", sigma, "rgb", rgb, NULL, NULL, err);
}

int nerf_cuda_composite_fwd(const nerf_cuda_samples *smp,
                            eng_stream *s,
                            const float *sigma,
                            const float *rgb,
                            const float *bg,
                            float *color,
                            float *opacity,
                            float *depth,
                            eng_err *err) {
    cudaStream_t st;
    int rc;
    if ((rc = check_composite(__func__, smp, s, sigma, rgb, &st, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, smp->n_rays, "color", color, NULL, NULL, NULL, NULL,
                                err)) != ENG_OK)
        return rc;
    if (smp->n_rays == 0) return ENG_OK;
    composite_fwd_f32_kernel<<<eng_cuda_grid_1d(smp->n_rays, RAY_BLOCK, RAY_MAX_BLOCKS), RAY_BLOCK,
                               0, st>>>(*smp, sigma, rgb, bg, color, opacity, depth);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

int nerf_cuda_composite_bwd(const nerf_cuda_samples *smp,
                            eng_stream *s,
                            const float *sigma,
                            const float *rgb,
                            const float *bg,
                            const float *color,
                            const float *d_color,
                            float *d_sigma,
                            float *d_rgb,
                            eng_err *err) {
    cudaStream_t st;
    int rc;
    (void)bg; /* the forward's color already holds the background's share */
    if ((rc = check_composite(__func__, smp, s, sigma, rgb, &st, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, smp->n_rays, "color", color, "d_color", d_color, NULL,
                                NULL, err)) != ENG_OK ||
        (rc = eng_cuda_check_1d(__func__, smp->n, "d_sigma", d_sigma, "d_rgb", d_rgb, NULL, NULL,
                                err)) != ENG_OK)
        return rc;
    if (smp->n_rays == 0) return ENG_OK;
    composite_bwd_f32_kernel<<<eng_cuda_grid_1d(smp->n_rays, RAY_BLOCK, RAY_MAX_BLOCKS), RAY_BLOCK,
                               0, st>>>(*smp, sigma, rgb, color, d_color, d_sigma, d_rgb);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}
