/* nerf_cuda_grid.cu: the hash encoding (forward, table gradient, position gradient) and the SH
 * direction encoding on CUDA: kernels hashgrid_{fwd,bwd}_f32_kernel (one thread per point and
 * level, the level in blockIdx.y, as tiny-cuda-nn's kernel_grid), hashgrid_bwd_pos_f32_kernel and
 * sh4_f32_kernel (one thread per point). The per-point maths is nerf_hashgrid_math.h and
 * nerf_sh_math.h, shared with the CPU twins (nerf_hashgrid.c, nerf_sh.c).
 *   pos (n, 3) in [0, 1]^3, feat / d_feat (n, L F) with column l F + f, table (entries, F). */
#include "nerf_cuda.h"

#include <cuda_runtime.h>

#include "eng_cuda_common.cuh"
#include "nerf_hashgrid_math.h"
#include "nerf_sh_math.h"

enum {
    GRID_BLOCK = 128,          /* points per block (per level) */
    GRID_MAX_BLOCKS = 1 << 16, /* grid x cap; the kernels loop with a grid stride */
    POS_BLOCK = 128,           /* position gradient, SH: points per block */
    POS_MAX_BLOCKS = 1 << 16,
};

/* The checks every launcher here shares: n >= 0, a CUDA stream, a usable grid. */
static int check_grid(const char *fn,
                      const nerf_hashgrid *g,
                      eng_stream *s,
                      int64_t n,
                      cudaStream_t *stream,
                      eng_err *err) {
    int rc;
    ENG_ASSERT(g != NULL);
    if (n < 0) return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n = %lld points", fn, (long long)n);
    if ((rc = eng_cuda_stream_get(stream, fn, s, err)) != ENG_OK) return rc;
    if (g->n_levels < 1 || g->n_levels > NERF_HASHGRID_MAX_LEVELS) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: grid has %d levels, expected 1..%d", fn,
                           g->n_levels, NERF_HASHGRID_MAX_LEVELS);
    }
    return ENG_OK;
}

/* ---- forward --------------------------------------------------------------------------------- */

/* feat[i, l F + f] = sum over the 8 corners of w_c table[level l][idx_c][f]; point i, level
 * l = blockIdx.y. Sums in corner order from 0, as the twin. */
template <int F>
static __global__ void hashgrid_fwd_f32_kernel(const nerf_hashgrid g,
                                               float *__restrict__ feat,
                                               const float *__restrict__ pos,
                                               int64_t n,
                                               const float *__restrict__ table) {
    const int l = (int)blockIdx.y;
    const nerf_hashgrid_level lv = g.level[l];
    const float *tab = table + lv.offset * F;
    const int64_t nout = g.n_outputs;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float p[3] = {pos[3 * i], pos[3 * i + 1], pos[3 * i + 2]};
        uint32_t idx[8];
        float w[8], frac[3];
        nerf_hashgrid_corners(&lv, p, idx, w, frac);
        float acc[F];
#pragma unroll
        for (int f = 0; f < F; f++)
            acc[f] = 0.0f;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            const float *e = tab + (int64_t)idx[c] * F;
#pragma unroll
            for (int f = 0; f < F; f++)
                acc[f] += w[c] * __ldg(e + f);
        }
        float *o = feat + i * nout + l * F;
#pragma unroll
        for (int f = 0; f < F; f++)
            o[f] = acc[f];
    }
}

int nerf_cuda_hashgrid_fwd(const nerf_hashgrid *g,
                           eng_stream *s,
                           float *feat,
                           const float *pos,
                           int64_t n,
                           const float *table,
                           eng_err *err) {
    cudaStream_t st;
    int rc;
    if ((rc = check_grid(__func__, g, s, n, &st, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, n, "feat", feat, "pos", pos, "table", table, err)) !=
        ENG_OK)
        return rc;
    if (n == 0) return ENG_OK;
    const dim3 grid(eng_cuda_grid_1d(n, GRID_BLOCK, GRID_MAX_BLOCKS), (unsigned)g->n_levels);
    switch (g->n_features) {
    case 1: hashgrid_fwd_f32_kernel<1><<<grid, GRID_BLOCK, 0, st>>>(*g, feat, pos, n, table); break;
    case 2: hashgrid_fwd_f32_kernel<2><<<grid, GRID_BLOCK, 0, st>>>(*g, feat, pos, n, table); break;
    case 4: hashgrid_fwd_f32_kernel<4><<<grid, GRID_BLOCK, 0, st>>>(*g, feat, pos, n, table); break;
    case 8: hashgrid_fwd_f32_kernel<8><<<grid, GRID_BLOCK, 0, st>>>(*g, feat, pos, n, table); break;
    default:
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n_features = %d, expected 1, 2, 4 or 8",
                           __func__, g->n_features);
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- table gradient -------------------------------------------------------------------------- */

/* d_table[level l][idx_c][f] += w_c d_feat[i, l F + f] with float atomicAdd (order-dependent);
 * point i, level l = blockIdx.y. A point whose d_feat on the level is all zero skips it. */
template <int F>
static __global__ void hashgrid_bwd_f32_kernel(const nerf_hashgrid g,
                                               float *__restrict__ d_table,
                                               const float *__restrict__ pos,
                                               int64_t n,
                                               const float *__restrict__ d_feat) {
    const int l = (int)blockIdx.y;
    const nerf_hashgrid_level lv = g.level[l];
    float *dtab = d_table + lv.offset * F;
    const int64_t nout = g.n_outputs;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float d[F];
        int any = 0;
#pragma unroll
        for (int f = 0; f < F; f++) {
            d[f] = d_feat[i * nout + l * F + f];
            any |= d[f] != 0.0f;
        }
        if (!any) continue; /* rays that hit nothing: skip the lookups, as the twin */
        const float p[3] = {pos[3 * i], pos[3 * i + 1], pos[3 * i + 2]};
        uint32_t idx[8];
        float w[8], frac[3];
        nerf_hashgrid_corners(&lv, p, idx, w, frac);
#pragma unroll
        for (int c = 0; c < 8; c++) {
            float *e = dtab + (int64_t)idx[c] * F;
#pragma unroll
            for (int f = 0; f < F; f++)
                atomicAdd(e + f, w[c] * d[f]);
        }
    }
}

int nerf_cuda_hashgrid_bwd(const nerf_hashgrid *g,
                           eng_stream *s,
                           float *d_table,
                           const float *pos,
                           int64_t n,
                           const float *d_feat,
                           eng_err *err) {
    cudaStream_t st;
    int rc;
    if ((rc = check_grid(__func__, g, s, n, &st, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, n, "d_table", d_table, "pos", pos, "d_feat", d_feat,
                                err)) != ENG_OK)
        return rc;
    if (n == 0) return ENG_OK;
    const dim3 grid(eng_cuda_grid_1d(n, GRID_BLOCK, GRID_MAX_BLOCKS), (unsigned)g->n_levels);
    switch (g->n_features) {
    case 1:
        hashgrid_bwd_f32_kernel<1><<<grid, GRID_BLOCK, 0, st>>>(*g, d_table, pos, n, d_feat);
        break;
    case 2:
        hashgrid_bwd_f32_kernel<2><<<grid, GRID_BLOCK, 0, st>>>(*g, d_table, pos, n, d_feat);
        break;
    case 4:
        hashgrid_bwd_f32_kernel<4><<<grid, GRID_BLOCK, 0, st>>>(*g, d_table, pos, n, d_feat);
        break;
    case 8:
        hashgrid_bwd_f32_kernel<8><<<grid, GRID_BLOCK, 0, st>>>(*g, d_table, pos, n, d_feat);
        break;
    default:
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n_features = %d, expected 1, 2, 4 or 8",
                           __func__, g->n_features);
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- position gradient ----------------------------------------------------------------------- */

/* d_pos[i] = sum over levels and corners of scale_l dw_c/dp (d_feat . entry_c); 0 on clamped
 * axes. One thread per point, levels in order (the twin's loop, line for line). */
static __global__ void hashgrid_bwd_pos_f32_kernel(const nerf_hashgrid g,
                                                   float *__restrict__ d_pos,
                                                   const float *__restrict__ pos,
                                                   int64_t n,
                                                   const float *__restrict__ d_feat,
                                                   const float *__restrict__ table) {
    const int64_t F = g.n_features, nout = g.n_outputs;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float p[3] = {pos[3 * i], pos[3 * i + 1], pos[3 * i + 2]};
        float dp[3] = {0.0f, 0.0f, 0.0f};
        for (int l = 0; l < g.n_levels; l++) {
            const nerf_hashgrid_level *lv = &g.level[l];
            const float *tab = table + lv->offset * F;
            const float *d = d_feat + i * nout + l * F;
            uint32_t idx[8];
            float w[8], frac[3];
            nerf_hashgrid_corners(lv, p, idx, w, frac);
            for (int c = 0; c < 8; c++) {
                const float *e = tab + (int64_t)idx[c] * F;
                float dot = 0.0f;
                for (int64_t f = 0; f < F; f++)
                    dot += d[f] * __ldg(e + f);
                for (int a = 0; a < 3; a++)
                    dp[a] += lv->scale * nerf_hashgrid_dweight(frac, c, a) * dot;
            }
        }
        for (int a = 0; a < 3; a++) {
            const int inside = p[a] >= 0.0f && p[a] <= 1.0f;
            d_pos[3 * i + a] = inside ? dp[a] : 0.0f;
        }
    }
}

int nerf_cuda_hashgrid_bwd_pos(const nerf_hashgrid *g,
                               eng_stream *s,
                               float *d_pos,
                               const float *pos,
                               int64_t n,
                               const float *d_feat,
                               const float *table,
                               eng_err *err) {
    cudaStream_t st;
    int rc;
    if ((rc = check_grid(__func__, g, s, n, &st, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, n, "d_pos", d_pos, "pos", pos, "d_feat", d_feat, err)) !=
        ENG_OK)
        return rc;
    if (n > 0 && table == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: table is NULL with n = %lld", __func__,
                           (long long)n);
    }
    if (n == 0) return ENG_OK;
    hashgrid_bwd_pos_f32_kernel<<<eng_cuda_grid_1d(n, POS_BLOCK, POS_MAX_BLOCKS), POS_BLOCK, 0,
                                  st>>>(*g, d_pos, pos, n, d_feat, table);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- spherical harmonics --------------------------------------------------------------------- */

/* out[i, 0..15] = nerf_sh4(dirs[i]); one thread per direction. */
static __global__ void
sh4_f32_kernel(float *__restrict__ out, int64_t ld_out, const float *__restrict__ dirs, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float d[3] = {dirs[3 * i], dirs[3 * i + 1], dirs[3 * i + 2]};
        float sh[NERF_SH_COEFFS];
        nerf_sh4(d, sh);
        float *o = out + i * ld_out;
#pragma unroll
        for (int k = 0; k < NERF_SH_COEFFS; k++)
            o[k] = sh[k];
    }
}

int nerf_cuda_sh_encode(
    eng_stream *s, float *out, int64_t ld_out, const float *dirs, int64_t n, eng_err *err) {
    cudaStream_t st;
    int rc;
    if ((rc = eng_cuda_stream_get(&st, __func__, s, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, n, "out", out, "dirs", dirs, NULL, NULL, err)) != ENG_OK)
        return rc;
    if (ld_out < NERF_SH_COEFFS) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: ld_out = %lld, expected >= %d", __func__,
                           (long long)ld_out, NERF_SH_COEFFS);
    }
    if (n == 0) return ENG_OK;
    sh4_f32_kernel<<<eng_cuda_grid_1d(n, POS_BLOCK, POS_MAX_BLOCKS), POS_BLOCK, 0, st>>>(
        out, ld_out, dirs, n);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}
