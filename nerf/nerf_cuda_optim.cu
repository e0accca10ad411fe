/* nerf_cuda_optim.cu: Adam (the twin is nerf_adam.c, the maths nerf_adam_math.h) and the
 * occupancy grid's update (the twin is nerf_occgrid_update in nerf_occgrid.c) on CUDA, all
 * elementwise or one thread per picked cell. This file is compiled with -fmad=false
 * (nerf/CMakeLists.txt), so the Adam update and the sample points round as the CPU does.
 *
 * Occupancy update, split at the density evaluation the caller runs in between:
 *   pick:   idx = every cell (warm-up), or a quarter of the cells at random and a quarter drawn
 *           from the occupied ones (cub's DeviceSelect keeps them in ascending order, as the
 *           twin's list); pos = a random point in each picked cell (the twin's Philox streams);
 *   update: fresh = -1; fresh[idx] = max(fresh[idx], sigma dt_min) (atomicMax on the bits of
 *           non-negative floats); values = max(values decay, fresh); the mean of cascade 0 in f64
 *           (per-block partial sums, then one block, fixed orders); bits = values >= min(threshold,
 *           mean). Contracted grids: points mapped back from the contracted cells, the mean over
 *           the inner cube, bits = values max(1, m) >= min(threshold, mean) (nerf_occgrid.c). */
#include "nerf_cuda.h"

#include <math.h>

#include <cuda_runtime.h>

#include <cub/device/device_select.cuh>

#include "eng_cuda_common.cuh"
#include "eng_philox_math.h"
#include "nerf_adam_math.h"
#include "nerf_contract_math.h"

enum {
    EW_BLOCK = 256, /* elementwise kernels */
    EW_MAX_BLOCKS = 1 << 16,
    MEAN_BLOCKS = 256, /* partial sums of the mean */
    MEAN_THREADS = 256,
};

/* ---- Adam ------------------------------------------------------------------------------------ */

/* nerf_adam.c's step_range for every parameter i: MLP weights (i < n_matrix) always, table
 * entries only where the gradient is non-zero; each with its own step count. */
static __global__ void adam_f32_kernel(const nerf_adam_hyper h,
                                       float lr,
                                       int64_t n,
                                       int64_t n_matrix,
                                       float *__restrict__ params,
                                       float *__restrict__ m,
                                       float *__restrict__ v,
                                       uint32_t *__restrict__ t,
                                       const float *__restrict__ grads) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float g = grads[i];
        const int matrix = i < n_matrix;
        if (!matrix && g == 0.0f) continue;
        const uint32_t ti = t[i] + 1u;
        t[i] = ti;
        const float corr = nerf_adam_correction(h.beta1, h.beta2, ti);
        float w = params[i], mi = m[i], vi = v[i];
        nerf_adam_update(&w, &mi, &vi, g, lr, corr, &h, matrix);
        params[i] = w;
        m[i] = mi;
        v[i] = vi;
    }
}

int nerf_cuda_adam_step(const nerf_adam_params *p,
                        eng_stream *s,
                        float *params,
                        float *m,
                        float *v,
                        uint32_t *t,
                        const float *grads,
                        float lr,
                        eng_err *err) {
    cudaStream_t st;
    int rc;
    ENG_ASSERT(p != NULL);
    if ((rc = eng_cuda_stream_get(&st, __func__, s, err)) != ENG_OK) return rc;
    if (p->n_params < 1 || p->n_params > ENG_MAX_NUMEL || p->n_matrix < 0 ||
        p->n_matrix > p->n_params) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: n_params = %lld (>= 1), n_matrix = %lld (0..n_params)", __func__,
                           (long long)p->n_params, (long long)p->n_matrix);
    }
    if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f) ||
        !(p->epsilon >= 0.0f) || !isfinite(p->epsilon) || !(p->l2_reg >= 0.0f) ||
        !isfinite(p->l2_reg)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: beta1 = %g, beta2 = %g (each in [0, 1)), epsilon = %g, l2_reg = "
                           "%g (finite, >= 0)",
                           __func__, (double)p->beta1, (double)p->beta2, (double)p->epsilon,
                           (double)p->l2_reg);
    }
    if (!(lr >= 0.0f) || !isfinite(lr)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: learning rate %g, expected a finite value >= 0", __func__,
                           (double)lr);
    }
    if ((rc = eng_cuda_check_1d(__func__, p->n_params, "params", params, "m", m, "v", v, err)) !=
            ENG_OK ||
        (rc = eng_cuda_check_1d(__func__, p->n_params, "t", t, "grads", grads, NULL, NULL, err)) !=
            ENG_OK)
        return rc;
    const nerf_adam_hyper h = {p->beta1, p->beta2, p->epsilon, p->l2_reg};
    adam_f32_kernel<<<eng_cuda_grid_1d(p->n_params, EW_BLOCK, EW_MAX_BLOCKS), EW_BLOCK, 0, st>>>(
        h, lr, p->n_params, p->n_matrix, params, m, v, t, grads);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- occupancy grid: picks ------------------------------------------------------------------- */

/* y[i] = i (the warm-up picks; also the candidates of the occupied list). */
static __global__ void iota_i64_kernel(int64_t *__restrict__ y, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = i;
}

/* A cell index in [0, m) from uniforms a, b of the twin's streams: 48 random bits modulo m. */
static __device__ int64_t occ_draw(float a, float b, uint64_t m) {
    const uint64_t x = (uint64_t)(a * 16777216.0f), y = (uint64_t)(b * 16777216.0f);
    return (int64_t)(((x << 24) | y) % m);
}

/* idx[i] (i < quarter) = a uniformly drawn cell; idx[quarter + i] = a drawn occupied cell, or -1
 * when none is occupied (the twin draws nothing then). */
static __global__ void occ_pick_i64_kernel(int64_t *__restrict__ idx,
                                           int64_t quarter,
                                           int64_t total,
                                           const int64_t *__restrict__ occ,
                                           const int64_t *__restrict__ n_occ,
                                           uint64_t seed,
                                           uint64_t offset) {
    const int64_t n_o = *n_occ;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < quarter;
         i += (int64_t)gridDim.x * blockDim.x) {
        const uint64_t e = 4 * (uint64_t)i;
        idx[i] = occ_draw(eng_philox_uniform_at(seed, offset, e),
                          eng_philox_uniform_at(seed, offset, e + 1), (uint64_t)total);
        idx[quarter + i] =
            n_o > 0 ? occ[occ_draw(eng_philox_uniform_at(seed, offset, e + 2),
                                   eng_philox_uniform_at(seed, offset, e + 3), (uint64_t)n_o)]
                    : -1;
    }
}

/* pos[j] = a random point in picked cell idx[j] (nerf_occgrid.c's cell_point with the uniforms
 * of pick j); the grid's centre for idx -1. */
static __global__ void occ_points_f32_kernel(float *__restrict__ pos,
                                             const int64_t *__restrict__ idx,
                                             int64_t n_pick,
                                             int res,
                                             int contract,
                                             float inner_radius,
                                             uint64_t seed,
                                             uint64_t offset) {
    const int64_t cells = (int64_t)res * res * res;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < n_pick;
         j += (int64_t)gridDim.x * blockDim.x) {
        const int64_t id = idx[j];
        if (id < 0) {
            pos[3 * j] = pos[3 * j + 1] = pos[3 * j + 2] = 0.5f;
            continue;
        }
        const uint64_t e = 3 * (uint64_t)j, off = offset | (1ull << 40);
        const float u[3] = {eng_philox_uniform_at(seed, off, e),
                            eng_philox_uniform_at(seed, off, e + 1),
                            eng_philox_uniform_at(seed, off, e + 2)};
        const int k = (int)(id / cells);
        const int64_t cell = id % cells, r = res;
        const int64_t c[3] = {cell % r, (cell / r) % r, cell / (r * r)};
        if (contract) { /* a uniform point of the contracted cell, mapped back */
            float cu[3], q[3];
            for (int a = 0; a < 3; a++)
                cu[a] = ((float)c[a] + u[a]) / (float)r;
            nerf_uncontract_unit(cu, inner_radius, q);
            for (int a = 0; a < 3; a++)
                pos[3 * j + a] = q[a];
            continue;
        }
        const float side = (float)(1 << k), lo = 0.5f - 0.5f * side;
        for (int a = 0; a < 3; a++)
            pos[3 * j + a] = lo + ((float)c[a] + u[a]) / (float)r * side;
    }
}

static int check_occ(const char *fn, const nerf_occgrid_params *p, eng_err *err) {
    if (p->cascades < 1 || p->cascades > NERF_OCCGRID_MAX_CASCADES || p->res < 2 ||
        p->res > NERF_OCCGRID_MAX_RES || p->res % 2 != 0 || !(p->decay > 0 && p->decay <= 1) ||
        !(p->threshold > 0) || !(p->dt_min > 0) || p->warmup_steps < 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: cascades %d (1..%d), res %d (even, 2..%d), decay %g (0..1], "
                           "threshold %g and dt_min %g (> 0), warmup %d",
                           fn, p->cascades, NERF_OCCGRID_MAX_CASCADES, p->res, NERF_OCCGRID_MAX_RES,
                           (double)p->decay, (double)p->threshold, (double)p->dt_min,
                           p->warmup_steps);
    }
    if ((p->contract != 0 && p->contract != 1) ||
        (p->contract &&
         (p->cascades != 1 || !(p->inner_radius > 0) || !isfinite(p->inner_radius)))) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: contract %d needs cascades 1 (got %d) and inner_radius %g > 0", fn,
                           p->contract, p->cascades, (double)p->inner_radius);
    }
    return ENG_OK;
}

int nerf_cuda_occgrid_pick(const nerf_occgrid_params *p,
                           eng_stream *s,
                           int64_t step,
                           int64_t *idx,
                           float *pos,
                           const uint8_t *bits,
                           eng_err *err) {
    cudaStream_t st;
    int rc = ENG_OK, marked = 0;
    eng_arena *arena = s != NULL ? s->arena : NULL;
    eng_arena_pos mark = {0, 0, 0};
    int64_t *cand = NULL, *occ = NULL, *n_occ = NULL;
    void *tmp = NULL;
    size_t tmp_bytes = 0;
    ENG_ASSERT(p != NULL);
    if ((rc = eng_cuda_stream_get(&st, __func__, s, err)) != ENG_OK) goto done;
    if ((rc = check_occ(__func__, p, err)) != ENG_OK) goto done;
    {
        const int64_t total = (int64_t)p->res * p->res * p->res * p->cascades;
        const int64_t n_pick = nerf_cuda_occgrid_pick_count(p, step);
        const uint64_t seed = p->seed, offset = (uint64_t)step;
        if (idx == NULL || pos == NULL) {
            rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: idx or pos is NULL", __func__);
            goto done;
        }
        if (step < p->warmup_steps) {
            iota_i64_kernel<<<eng_cuda_grid_1d(total, EW_BLOCK, EW_MAX_BLOCKS), EW_BLOCK, 0, st>>>(
                idx, total);
            if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK)
                goto done;
        } else {
            const int64_t quarter = total / 4;
            if (bits == NULL) {
                rc =
                    eng_err_set(err, ENG_E_INVALID_ARG, "%s: bits is NULL after warm-up", __func__);
                goto done;
            }
            if (arena == NULL) {
                rc = eng_err_set(err, ENG_E_INVALID_ARG,
                                 "%s: the stream has no arena (the occupied list needs one)",
                                 __func__);
                goto done;
            }
            /* total <= 8 * 512^3 = 2^30: an int count suits every cub version */
            if ((rc = ENG_CUDA_CHECK(
                     cub::DeviceSelect::Flagged(NULL, tmp_bytes, (const int64_t *)NULL, bits,
                                                (int64_t *)NULL, (int64_t *)NULL, (int)total, st),
                     err)) != ENG_OK)
                goto done;
            mark = eng_arena_mark(arena);
            marked = 1;
            if ((rc = eng_arena_take(arena, (void **)&cand, (size_t)total * sizeof *cand, err)) !=
                    ENG_OK ||
                (rc = eng_arena_take(arena, (void **)&occ, (size_t)total * sizeof *occ, err)) !=
                    ENG_OK ||
                (rc = eng_arena_take(arena, (void **)&n_occ, sizeof *n_occ, err)) != ENG_OK ||
                (rc = eng_arena_take(arena, &tmp, tmp_bytes > 0 ? tmp_bytes : 1, err)) != ENG_OK) {
                eng_err_prefix(err, "%s", __func__);
                goto done;
            }
            iota_i64_kernel<<<eng_cuda_grid_1d(total, EW_BLOCK, EW_MAX_BLOCKS), EW_BLOCK, 0, st>>>(
                cand, total);
            if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK)
                goto done;
            if ((rc = ENG_CUDA_CHECK(cub::DeviceSelect::Flagged(tmp, tmp_bytes,
                                                                (const int64_t *)cand, bits, occ,
                                                                n_occ, (int)total, st),
                                     err)) != ENG_OK)
                goto done;
            if (quarter > 0) {
                occ_pick_i64_kernel<<<eng_cuda_grid_1d(quarter, EW_BLOCK, EW_MAX_BLOCKS), EW_BLOCK,
                                      0, st>>>(idx, quarter, total, occ, n_occ, seed, offset);
                if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK)
                    goto done;
            }
        }
        if (n_pick > 0) {
            occ_points_f32_kernel<<<eng_cuda_grid_1d(n_pick, EW_BLOCK, EW_MAX_BLOCKS), EW_BLOCK, 0,
                                    st>>>(pos, idx, n_pick, p->res, p->contract, p->inner_radius,
                                          seed, offset);
            if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK)
                goto done;
        }
    }
done:
    if (marked) eng_arena_rewind(arena, mark); /* enqueued: stream order protects the reuse */
    return rc;
}

/* ---- occupancy grid: update ------------------------------------------------------------------ */

static __global__ void fill_f32_kernel(float *__restrict__ y, int64_t n, float value) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = value;
}

/* fresh[idx[j]] = max(fresh[idx[j]], sigma[j] dt_min), non-finite and negative densities as 0.
 * Every value compared is a non-negative float or the initial -1, so the int order of the bits is
 * the float order (atomicMax on int). */
static __global__ void occ_scatter_max_f32_kernel(float *__restrict__ fresh,
                                                  const int64_t *__restrict__ idx,
                                                  const float *__restrict__ sigma,
                                                  int64_t n_pick,
                                                  float dt_min) {
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < n_pick;
         j += (int64_t)gridDim.x * blockDim.x) {
        const int64_t id = idx[j];
        if (id < 0) continue;
        const float sg = sigma[j];
        float d = isfinite(sg) ? sg * dt_min : 0.0f;
        if (!(d > 0.0f)) d = 0.0f; /* also turns -0 into +0 */
        atomicMax((int *)(fresh + id), __float_as_int(d));
    }
}

/* values = max(values decay, fresh) (the twin's expression). */
static __global__ void occ_decay_f32_kernel(float *__restrict__ values,
                                            const float *__restrict__ fresh,
                                            int64_t n,
                                            float decay) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float decayed = values[i] * decay;
        values[i] = fresh[i] > decayed ? fresh[i] : decayed;
    }
}

/* Sums the MEAN_THREADS doubles of `sh` into sh[0] (a fixed tree: deterministic). */
static __device__ void block_sum(double *sh) {
    for (int half = MEAN_THREADS / 2; half > 0; half /= 2) {
        __syncthreads();
        if ((int)threadIdx.x < half) sh[threadIdx.x] += sh[threadIdx.x + half];
    }
    __syncthreads();
}

/* partial[b] = the sum of the values of cells [b chunk .. (b + 1) chunk) of the sub-cube
 * [lo, lo + side)^3 of cascade 0 (x fastest; lo 0, side res: the whole cascade), f64. */
static __global__ void __launch_bounds__(MEAN_THREADS)
    occ_partial_f64_kernel(double *__restrict__ partial,
                           const float *__restrict__ values,
                           int64_t res,
                           int64_t lo,
                           int64_t side,
                           int64_t chunk) {
    __shared__ double sh[MEAN_THREADS];
    const int64_t cells = side * side * side;
    const int64_t b0 = (int64_t)blockIdx.x * chunk;
    const int64_t b1 = b0 + chunk < cells ? b0 + chunk : cells;
    double acc = 0.0;
    for (int64_t i = b0 + threadIdx.x; i < b1; i += MEAN_THREADS) {
        const int64_t x = lo + i % side, y = lo + (i / side) % side, z = lo + i / (side * side);
        acc += values[(z * res + y) * res + x];
    }
    sh[threadIdx.x] = acc;
    block_sum(sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

/* bits = values >= min(threshold, mean), the mean from the partials (one block sums them, then
 * every block has the same number); contracted (ri > 0), values * max(1, m) >= it with m =
 * nerf_contract_norm of the cell's centre, as nerf_occgrid_refresh's factor. */
static __global__ void __launch_bounds__(MEAN_THREADS)
    occ_bits_u8_kernel(uint8_t *__restrict__ bits,
                       const float *__restrict__ values,
                       int64_t n,
                       const double *__restrict__ partial,
                       int n_partial,
                       int64_t cells,
                       float threshold,
                       int res,
                       float ri) {
    __shared__ double sh[MEAN_THREADS];
    double acc = 0.0;
    for (int b = (int)threadIdx.x; b < n_partial; b += MEAN_THREADS)
        acc += partial[b];
    sh[threadIdx.x] = acc;
    block_sum(sh);
    const double mean = sh[0] / (double)cells;
    const float thr = (float)fmin((double)threshold, mean);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (ri > 0.0f) {
            const int64_t r = res;
            const float u[3] = {((float)(i % r) + 0.5f) / (float)r,
                                ((float)((i / r) % r) + 0.5f) / (float)r,
                                ((float)(i / (r * r)) + 0.5f) / (float)r};
            float q[3];
            nerf_uncontract_unit(u, ri, q);
            const float m = nerf_contract_norm(q, ri);
            bits[i] = values[i] * (m > 1.0f ? m : 1.0f) >= thr;
        } else {
            bits[i] = values[i] >= thr;
        }
    }
}

int nerf_cuda_occgrid_update(const nerf_occgrid_params *p,
                             eng_stream *s,
                             float *values,
                             uint8_t *bits,
                             float *fresh,
                             const int64_t *idx,
                             const float *sigma,
                             int64_t n_pick,
                             eng_err *err) {
    cudaStream_t st;
    int rc = ENG_OK, marked = 0;
    eng_arena *arena = s != NULL ? s->arena : NULL;
    eng_arena_pos mark = {0, 0, 0};
    double *partial = NULL;
    ENG_ASSERT(p != NULL);
    if ((rc = eng_cuda_stream_get(&st, __func__, s, err)) != ENG_OK) goto done;
    if ((rc = check_occ(__func__, p, err)) != ENG_OK) goto done;
    if ((rc = eng_cuda_check_1d(__func__, n_pick, "idx", idx, "sigma", sigma, NULL, NULL, err)) !=
        ENG_OK)
        goto done;
    if (values == NULL || bits == NULL || fresh == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: values, bits or fresh is NULL", __func__);
        goto done;
    }
    if (arena == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: the stream has no arena (the mean needs a workspace)", __func__);
        goto done;
    }
    mark = eng_arena_mark(arena);
    marked = 1;
    if ((rc = eng_arena_take(arena, (void **)&partial, MEAN_BLOCKS * sizeof *partial, err)) !=
        ENG_OK) {
        eng_err_prefix(err, "%s", __func__);
        goto done;
    }
    {
        const int64_t cells = (int64_t)p->res * p->res * p->res, total = cells * p->cascades;
        const unsigned blocks = eng_cuda_grid_1d(total, EW_BLOCK, EW_MAX_BLOCKS);
        /* the mean's cells: all of cascade 0, or contracted the inner cube's (the cells whose
         * centre is in [1/4, 3/4]^3, as nerf_occgrid_mean counts them) */
        int64_t lo = 0;
        if (p->contract)
            while ((2.0 * (double)lo + 1.0) / (2.0 * (double)p->res) < 0.25)
                lo++;
        const int64_t side = p->res - 2 * lo, mean_cells = side * side * side;
        const int64_t chunk = ENG_CEIL_DIV(mean_cells, (int64_t)MEAN_BLOCKS);
        fill_f32_kernel<<<blocks, EW_BLOCK, 0, st>>>(fresh, total, -1.0f);
        if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK) goto done;
        if (n_pick > 0) {
            occ_scatter_max_f32_kernel<<<eng_cuda_grid_1d(n_pick, EW_BLOCK, EW_MAX_BLOCKS),
                                         EW_BLOCK, 0, st>>>(fresh, idx, sigma, n_pick, p->dt_min);
            if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK)
                goto done;
        }
        occ_decay_f32_kernel<<<blocks, EW_BLOCK, 0, st>>>(values, fresh, total, p->decay);
        if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK) goto done;
        occ_partial_f64_kernel<<<MEAN_BLOCKS, MEAN_THREADS, 0, st>>>(partial, values, p->res, lo,
                                                                     side, chunk);
        if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK) goto done;
        occ_bits_u8_kernel<<<eng_cuda_grid_1d(total, MEAN_THREADS, 4096), MEAN_THREADS, 0, st>>>(
            bits, values, total, partial, MEAN_BLOCKS, mean_cells, p->threshold, p->res,
            p->contract ? p->inner_radius : 0.0f);
        if ((rc = eng_cuda_launch_check(__func__, __FILE__, __LINE__, err)) != ENG_OK) goto done;
    }
done:
    if (marked) eng_arena_rewind(arena, mark); /* enqueued: stream order protects the reuse */
    return rc;
}
