/* nerf_cuda_field.cu: instant-ngp's NeRF model on CUDA, composed from the hash-grid, SH and fused
 * MLP launchers plus three small kernels for the glue. The twin is nerf_field.c: the same stages
 * on the whole batch at once instead of per chunk.
 *
 * Forward: upos = unit(pos) (field_unit_f32_kernel); enc = hashgrid(upos); geo = density MLP(enc),
 * written into the last columns of col_in; sigma = trunc_exp(geo[:, 0]) and SH(dir) into col_in's
 * first 16 columns (field_head_f32_kernel); rgb = colour MLP(col_in).
 * Backward: colour MLP backward gives d_col_in; d_geo[:, 0] += trunc_exp'(geo0) d_sigma
 * (field_tail_f32_kernel); density MLP backward gives d_enc; the grid's table gradient.
 * Scratch (floats, n points, G = L F, C = 16 + geo_features):
 *   upos (n, 3) | enc (n, G) | d_enc (n, G) | col_in (n, C) | d_col_in (n, C)
 *   | density MLP scratch | colour MLP scratch   (nerf_cuda_field_scratch_floats) */
#include "nerf_cuda.h"

#include <cuda_runtime.h>

#include "eng_cuda_common.cuh"
#include "nerf_contract_math.h"
#include "nerf_mlp_math.h"
#include "nerf_sh_math.h"

enum { FIELD_BLOCK = 256, FIELD_MAX_BLOCKS = 1 << 16 };

typedef struct field_scratch {
    float *upos, *enc, *d_enc, *col_in, *d_col_in, *dens, *col;
} field_scratch;

static field_scratch scratch_layout(const nerf_cuda_field *f, float *scratch, int64_t n) {
    field_scratch sc;
    const int64_t G = f->grid.n_outputs, C = f->n_color_in;
    sc.upos = scratch;
    sc.enc = sc.upos + n * 3;
    sc.d_enc = sc.enc + n * G;
    sc.col_in = sc.d_enc + n * G;
    sc.d_col_in = sc.col_in + n * C;
    sc.dens = sc.d_col_in + n * C;
    sc.col = sc.dens + nerf_cuda_mlp_scratch_floats(&f->density, n);
    return sc;
}

/* upos[i] = (pos[i] - lo) * inv over the n * 3 coordinates (the twin's expression). */
static __global__ void field_unit_f32_kernel(
    float *__restrict__ upos, const float *__restrict__ pos, int64_t n3, float lo, float inv) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n3;
         i += (int64_t)gridDim.x * blockDim.x)
        upos[i] = (pos[i] - lo) * inv;
}

/* upos[r] = nerf_contract_unit(pos[r], inner_radius) (the twin's contracted field), one thread
 * per point. */
static __global__ void field_unit_contract_f32_kernel(float *__restrict__ upos,
                                                      const float *__restrict__ pos,
                                                      int64_t n,
                                                      float inner_radius) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < n;
         r += (int64_t)gridDim.x * blockDim.x) {
        const float p[3] = {pos[3 * r], pos[3 * r + 1], pos[3 * r + 2]};
        float u[3];
        nerf_contract_unit(p, inner_radius, u);
        for (int a = 0; a < 3; a++)
            upos[3 * r + a] = u[a];
    }
}

/* sigma[r] = trunc_exp(col_in[r, 16]); with dir, col_in[r, 0..15] = SH(dir[r]). One thread per
 * point. */
static __global__ void field_head_f32_kernel(float *__restrict__ sigma,
                                             float *__restrict__ col_in,
                                             int64_t C,
                                             const float *__restrict__ dir,
                                             int64_t n) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < n;
         r += (int64_t)gridDim.x * blockDim.x) {
        float *row = col_in + r * C;
        sigma[r] = nerf_act_fwd(NERF_ACT_TRUNC_EXP, row[NERF_SH_COEFFS]);
        if (dir == NULL) continue;
        const float d[3] = {dir[3 * r], dir[3 * r + 1], dir[3 * r + 2]};
        float sh[NERF_SH_COEFFS];
        nerf_sh4(d, sh);
#pragma unroll
        for (int k = 0; k < NERF_SH_COEFFS; k++)
            row[k] = sh[k];
    }
}

/* d_geo = d_col_in[:, 16..C): zeroed first when the colour network had no gradient (zero_geo);
 * then d_geo[r, 0] += trunc_exp'(geo[r, 0]) d_sigma[r] (d_sigma may be NULL). */
static __global__ void field_tail_f32_kernel(float *__restrict__ d_col_in,
                                             const float *__restrict__ col_in,
                                             int64_t C,
                                             const float *__restrict__ d_sigma,
                                             int zero_geo,
                                             int64_t n) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < n;
         r += (int64_t)gridDim.x * blockDim.x) {
        float *d_geo = d_col_in + r * C + NERF_SH_COEFFS;
        if (zero_geo) {
            for (int64_t k = 0; k < C - NERF_SH_COEFFS; k++)
                d_geo[k] = 0.0f;
        }
        if (d_sigma != NULL)
            d_geo[0] +=
                nerf_act_bwd(NERF_ACT_TRUNC_EXP, col_in[r * C + NERF_SH_COEFFS], d_sigma[r]);
    }
}

static int check_field(const char *fn,
                       const nerf_cuda_field *f,
                       eng_stream *s,
                       int64_t n,
                       cudaStream_t *st,
                       eng_err *err) {
    int rc;
    ENG_ASSERT(f != NULL);
    if ((rc = eng_cuda_stream_get(st, fn, s, err)) != ENG_OK) return rc;
    if (n < 0) return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n = %lld points", fn, (long long)n);
    if (f->n_color_in != NERF_SH_COEFFS + f->density.n_output ||
        f->density.n_input != f->grid.n_outputs || f->color.n_input != f->n_color_in) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: inconsistent field (grid outputs %lld, density %lld -> %lld, "
                           "colour input %lld): make it with nerf_cuda_field_init",
                           fn, (long long)f->grid.n_outputs, (long long)f->density.n_input,
                           (long long)f->density.n_output, (long long)f->color.n_input);
    }
    return ENG_OK;
}

int nerf_cuda_field_fwd(const nerf_cuda_field *f,
                        eng_stream *s,
                        float *sigma,
                        float *rgb,
                        const float *pos,
                        const float *dir,
                        int64_t n,
                        const float *params,
                        float *scratch,
                        eng_err *err) {
    cudaStream_t st;
    int rc;
    if ((rc = check_field(__func__, f, s, n, &st, err)) != ENG_OK) return rc;
    if ((rgb == NULL) != (dir == NULL)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: rgb %s but dir %s (colour needs both; density only neither)",
                           __func__, rgb == NULL ? "NULL" : "given",
                           dir == NULL ? "NULL" : "given");
    }
    if ((rc = eng_cuda_check_1d(__func__, n, "sigma", sigma, "pos", pos, "params", params, err)) !=
            ENG_OK ||
        (rc = eng_cuda_check_1d(__func__, n, "scratch", scratch, NULL, NULL, NULL, NULL, err)) !=
            ENG_OK)
        return rc;
    if (n == 0) return ENG_OK;
    const field_scratch sc = scratch_layout(f, scratch, n);
    const int64_t G = f->grid.n_outputs, C = f->n_color_in;
    const unsigned blocks3 = eng_cuda_grid_1d(3 * n, FIELD_BLOCK, FIELD_MAX_BLOCKS);
    const unsigned blocks = eng_cuda_grid_1d(n, FIELD_BLOCK, FIELD_MAX_BLOCKS);
    if (f->contract) {
        field_unit_contract_f32_kernel<<<blocks, FIELD_BLOCK, 0, st>>>(sc.upos, pos, n,
                                                                       f->inner_radius);
    } else {
        field_unit_f32_kernel<<<blocks3, FIELD_BLOCK, 0, st>>>(sc.upos, pos, 3 * n, f->box_lo,
                                                               f->box_inv);
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    if ((rc = nerf_cuda_hashgrid_fwd(&f->grid, s, sc.enc, sc.upos, n, params + f->layout.grid,
                                     err)) != ENG_OK ||
        (rc = nerf_cuda_mlp_fwd(&f->density, s, sc.col_in + NERF_SH_COEFFS, C, sc.enc, G, n,
                                params + f->layout.density, sc.dens, err)) != ENG_OK) {
        eng_err_prefix(err, "%s", __func__);
        return rc;
    }
    field_head_f32_kernel<<<blocks, FIELD_BLOCK, 0, st>>>(sigma, sc.col_in, C, dir, n);
    ENG_CUDA_LAUNCH_CHECK(err);
    if (rgb == NULL) return ENG_OK;
    if ((rc = nerf_cuda_mlp_fwd(&f->color, s, rgb, 3, sc.col_in, C, n, params + f->layout.color,
                                sc.col, err)) != ENG_OK) {
        eng_err_prefix(err, "%s", __func__);
        return rc;
    }
    return ENG_OK;
}

int nerf_cuda_field_bwd(const nerf_cuda_field *f,
                        eng_stream *s,
                        float *grads,
                        const float *d_sigma,
                        const float *d_rgb,
                        int64_t n,
                        const float *params,
                        float *scratch,
                        eng_err *err) {
    cudaStream_t st;
    int rc;
    if ((rc = check_field(__func__, f, s, n, &st, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_check_1d(__func__, n, "grads", grads, "params", params, "scratch", scratch,
                                err)) != ENG_OK)
        return rc;
    if (n == 0) return ENG_OK;
    const field_scratch sc = scratch_layout(f, scratch, n);
    const int64_t G = f->grid.n_outputs, C = f->n_color_in;
    if (d_rgb != NULL &&
        (rc = nerf_cuda_mlp_bwd(&f->color, s, grads + f->layout.color, sc.d_col_in, C, sc.col_in, C,
                                d_rgb, 3, n, params + f->layout.color, sc.col, err)) != ENG_OK) {
        eng_err_prefix(err, "%s", __func__);
        return rc;
    }
    field_tail_f32_kernel<<<eng_cuda_grid_1d(n, FIELD_BLOCK, FIELD_MAX_BLOCKS), FIELD_BLOCK, 0,
                            st>>>(sc.d_col_in, sc.col_in, C, d_sigma, d_rgb == NULL, n);
    ENG_CUDA_LAUNCH_CHECK(err);
    if ((rc = nerf_cuda_mlp_bwd(&f->density, s, grads + f->layout.density, sc.d_enc, G, sc.enc, G,
                                sc.d_col_in + NERF_SH_COEFFS, C, n, params + f->layout.density,
                                sc.dens, err)) != ENG_OK ||
        (rc = nerf_cuda_hashgrid_bwd(&f->grid, s, grads + f->layout.grid, sc.upos, n, sc.d_enc,
                                     err)) != ENG_OK) {
        eng_err_prefix(err, "%s", __func__);
        return rc;
    }
    return ENG_OK;
}
