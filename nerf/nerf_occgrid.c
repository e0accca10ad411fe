/* nerf_occgrid.c: the occupancy grid (nerf_occgrid.h). */
#include "nerf_occgrid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eng_philox_math.h"
#include "nerf_render_math.h"

enum { BATCH = 1 << 16 }; /* density evaluations per call of the caller's function */

struct nerf_occgrid {
    nerf_occgrid_params p;
    eng_alloc *alloc;
    eng_tensor values; /* (cascades * res^3) f32 */
    eng_tensor bits;   /* (cascades * res^3) bytes as I8 */
    int64_t cells;     /* res^3 */
    float *factor;     /* contracted: (res^3) max(1, m) at the cell's centre; else NULL */
    uint8_t *coarse;   /* (cascades * (res/8)^3): 1 where any of the 8^3 cells is occupied */
    int coarse_res;    /* res / 8, or 0 (no coarse level: res not a multiple of 8, or < 16) */
    int coarse_valid;  /* 0 once the bytes were handed out for writing (nerf_occgrid_bits) */
};

void nerf_occgrid_params_init(nerf_occgrid_params *p) {
    memset(p, 0, sizeof *p);
    p->cascades = 1;
    p->res = 128;
    p->decay = 0.95f;
    p->threshold = 0.01f;
    p->dt_min = 1.7320508f / 1024.0f;
    p->warmup_steps = 256;
    p->seed = 1;
    p->contract = 0;
    p->inner_radius = 0.5f;
    p->cone_angle = 1.0f / 256.0f;
    p->dt_max = 64.0f;
    p->contract_step = 1.0f / 256.0f;
}

int nerf_occgrid_create(nerf_occgrid **out,
                        const nerf_occgrid_params *p,
                        eng_alloc *alloc,
                        eng_err *err) {
    int rc = ENG_OK;
    nerf_occgrid *g = NULL;
    ENG_ASSERT(out != NULL && p != NULL && alloc != NULL);
    *out = NULL;
    if (p->cascades < 1 || p->cascades > NERF_OCCGRID_MAX_CASCADES || p->res < 2 ||
        p->res > NERF_OCCGRID_MAX_RES || p->res % 2 != 0 || !(p->decay > 0 && p->decay <= 1) ||
        !(p->threshold > 0) || !(p->dt_min > 0) || p->warmup_steps < 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_occgrid_create: cascades %d (1..%d), res %d (even, 2..%d), "
                           "decay %g (0..1], threshold %g and dt_min %g (> 0), warmup %d",
                           p->cascades, NERF_OCCGRID_MAX_CASCADES, p->res, NERF_OCCGRID_MAX_RES,
                           (double)p->decay, (double)p->threshold, (double)p->dt_min,
                           p->warmup_steps);
    }
    if (p->contract != 0 &&
        (p->contract != 1 || p->cascades != 1 || !(p->inner_radius > 0) ||
         !isfinite(p->inner_radius) || !(p->cone_angle >= 0) || !(p->dt_max >= p->dt_min) ||
         !isfinite(p->dt_max) || !(p->contract_step > 0) || !isfinite(p->contract_step))) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_occgrid_create: contract %d needs cascades 1 (got %d), "
                           "inner_radius %g > 0, cone_angle %g >= 0, dt_max %g >= dt_min, "
                           "contract_step %g > 0",
                           p->contract, p->cascades, (double)p->inner_radius, (double)p->cone_angle,
                           (double)p->dt_max, (double)p->contract_step);
    }
    if ((g = (nerf_occgrid *)calloc(1, sizeof *g)) == NULL)
        return eng_err_set(err, ENG_E_OOM, "nerf_occgrid_create: out of memory");
    g->p = *p;
    g->alloc = alloc;
    g->cells = (int64_t)p->res * p->res * p->res;
    const int64_t n[1] = {g->cells * p->cascades};
    if ((rc = eng_tensor_alloc(&g->values, alloc, ENG_LIFE_STATE, "nerf_occgrid", ENG_DTYPE_F32, 1,
                               n, err)) != ENG_OK ||
        (rc = eng_tensor_alloc(&g->bits, alloc, ENG_LIFE_STATE, "nerf_occgrid", ENG_DTYPE_I8, 1, n,
                               err)) != ENG_OK)
        goto done;
    if (p->contract) {
        if ((g->factor = (float *)malloc((size_t)g->cells * sizeof *g->factor)) == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "nerf_occgrid_create: out of memory (%lld cells)",
                             (long long)g->cells);
            goto done;
        }
        const int64_t r = p->res;
        for (int64_t i = 0; i < g->cells; i++) {
            const float u[3] = {((float)(i % r) + 0.5f) / (float)r,
                                ((float)((i / r) % r) + 0.5f) / (float)r,
                                ((float)(i / (r * r)) + 0.5f) / (float)r};
            float q[3];
            nerf_uncontract_unit(u, p->inner_radius, q);
            const float m = nerf_contract_norm(q, p->inner_radius);
            g->factor[i] = m > 1.0f ? m : 1.0f;
        }
    }
    g->coarse_res = p->res % 8 == 0 && p->res >= 16 ? p->res / 8 : 0;
    if (g->coarse_res > 0) {
        const size_t nc = (size_t)g->coarse_res * g->coarse_res * g->coarse_res * p->cascades;
        if ((g->coarse = (uint8_t *)malloc(nc)) == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "nerf_occgrid_create: out of memory");
            goto done;
        }
        memset(g->coarse, 1, nc);
        g->coarse_valid = 1;
    }
    /* nothing is known yet: every cell occupied, values 0 */
    memset(g->values.data, 0, (size_t)n[0] * sizeof(float));
    memset(g->bits.data, 1, (size_t)n[0]);
    *out = g;
    g = NULL;
done:
    nerf_occgrid_destroy(g);
    return rc;
}

void nerf_occgrid_destroy(nerf_occgrid *g) {
    if (g == NULL) return;
    eng_tensor_free(g->alloc, &g->bits);
    eng_tensor_free(g->alloc, &g->values);
    free(g->factor);
    free(g->coarse);
    free(g);
}

const nerf_occgrid_params *nerf_occgrid_get_params(const nerf_occgrid *g) {
    return &g->p;
}

int nerf_occgrid_occupied(const nerf_occgrid *g, int k, int64_t cell) {
    if (k < 0 || k >= g->p.cascades || cell < 0 || cell >= g->cells) return 0;
    return ((const uint8_t *)g->bits.data)[k * g->cells + cell] != 0;
}

int nerf_occgrid_occupied_at(const nerf_occgrid *g, const float p[3]) {
    if (g->p.contract)
        return nerf_occgrid_occupied(g, 0, nerf_contract_cell(p, g->p.inner_radius, g->p.res));
    const int k = nerf_cascade_of(p, g->p.cascades);
    if (k >= g->p.cascades) return 0;
    return nerf_occgrid_occupied(g, k, nerf_cell_of(p, k, g->p.res));
}

double nerf_occgrid_occupancy(const nerf_occgrid *g, int k) {
    if (k < 0 || k >= g->p.cascades) return 0.0;
    const uint8_t *b = (const uint8_t *)g->bits.data + k * g->cells;
    int64_t n = 0;
    for (int64_t i = 0; i < g->cells; i++)
        n += b[i] != 0;
    return (double)n / (double)g->cells;
}

double nerf_occgrid_mean(const nerf_occgrid *g) {
    const float *v = (const float *)g->values.data;
    double s = 0;
    if (g->p.contract) { /* the inner cube: cells whose centre is in [1/4, 3/4]^3 */
        const int64_t r = g->p.res;
        int64_t lo = 0, hi = 0, n = 0;
        while ((2.0 * (double)lo + 1.0) / (2.0 * (double)r) < 0.25)
            lo++;
        hi = r - lo; /* symmetric */
        for (int64_t z = lo; z < hi; z++)
            for (int64_t y = lo; y < hi; y++)
                for (int64_t x = lo; x < hi; x++, n++)
                    s += v[(z * r + y) * r + x];
        return n > 0 ? s / (double)n : 0.0;
    }
    for (int64_t i = 0; i < g->cells; i++)
        s += v[i];
    return s / (double)g->cells;
}

float *nerf_occgrid_values(nerf_occgrid *g) {
    return (float *)g->values.data;
}
uint8_t *nerf_occgrid_bits(nerf_occgrid *g) {
    g->coarse_valid = 0; /* the caller may write them: the coarse level is rebuilt on demand */
    return (uint8_t *)g->bits.data;
}

void nerf_occgrid_rebuild_coarse(nerf_occgrid *g) {
    const int rc = g->coarse_res, r = g->p.res;
    if (rc == 0) return;
    const uint8_t *b = (const uint8_t *)g->bits.data;
    const int64_t cc = (int64_t)rc * rc * rc;
    memset(g->coarse, 0, (size_t)(cc * g->p.cascades));
    for (int k = 0; k < g->p.cascades; k++)
        for (int64_t i = 0; i < g->cells; i++)
            if (b[k * g->cells + i]) {
                const int64_t x = i % r, y = (i / r) % r, z = i / ((int64_t)r * r);
                g->coarse[k * cc + ((z / 8) * rc + y / 8) * rc + x / 8] = 1;
            }
    g->coarse_valid = 1;
}

int nerf_occgrid_coarse_res(const nerf_occgrid *g) {
    return g->coarse_valid ? g->coarse_res : 0;
}

int nerf_occgrid_coarse_occupied(const nerf_occgrid *g, int k, int64_t cell) {
    const int64_t cc = (int64_t)g->coarse_res * g->coarse_res * g->coarse_res;
    return cell < 0 || !g->coarse_valid || g->coarse[k * cc + cell] != 0;
}

void nerf_occgrid_refresh(nerf_occgrid *g) {
    const float thr = (float)fmin((double)g->p.threshold, nerf_occgrid_mean(g));
    const float *v = (const float *)g->values.data;
    uint8_t *b = (uint8_t *)g->bits.data;
    if (g->factor != NULL) { /* contracted: the thickness of the step taken in the cell */
        for (int64_t i = 0; i < g->cells; i++)
            b[i] = v[i] * g->factor[i] >= thr; /* factor >= 1: uniform still means occupied */
        nerf_occgrid_rebuild_coarse(g);
        return;
    }
    for (int64_t i = 0; i < g->cells * g->p.cascades; i++)
        b[i] = v[i] >= thr; /* >=: a field that is still uniform leaves every cell occupied */
    nerf_occgrid_rebuild_coarse(g);
}

/* The model-space position of a random point in cell `cell` of cascade k (u: 3 uniforms). */
static void cell_point(float p[3], const nerf_occgrid *g, int k, int64_t cell, const float u[3]) {
    const int64_t r = g->p.res;
    const int64_t c[3] = {cell % r, (cell / r) % r, cell / (r * r)};
    if (g->p.contract) {
        float cu[3];
        for (int a = 0; a < 3; a++)
            cu[a] = ((float)c[a] + u[a]) / (float)r;
        nerf_uncontract_unit(cu, g->p.inner_radius, p);
        return;
    }
    const float side = (float)(1 << k), lo = 0.5f - 0.5f * side;
    for (int a = 0; a < 3; a++)
        p[a] = lo + ((float)c[a] + u[a]) / (float)r * side;
}

int nerf_occgrid_update(
    nerf_occgrid *g, int64_t step, nerf_density_fn density, void *user, eng_err *err) {
    int rc = ENG_OK;
    const int64_t total = g->cells * g->p.cascades;
    const uint64_t seed = g->p.seed, offset = (uint64_t)step;
    float *v = (float *)g->values.data;
    const uint8_t *bits = (const uint8_t *)g->bits.data;
    float *pos = NULL, *sigma = NULL, *fresh = NULL;
    int64_t *picked = NULL, *occ = NULL;
    int64_t n_pick = 0, n_occ = 0;
    /* the cells to look at */
    const int all = step < g->p.warmup_steps;
    const int64_t cap = all ? total : total / 2 + 2;
    picked = (int64_t *)malloc((size_t)cap * sizeof *picked);
    fresh = (float *)malloc((size_t)total * sizeof *fresh);
    pos = (float *)malloc((size_t)BATCH * 3 * sizeof *pos);
    sigma = (float *)malloc((size_t)BATCH * sizeof *sigma);
    if (picked == NULL || fresh == NULL || pos == NULL || sigma == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "nerf_occgrid_update: out of memory (%lld cells)",
                         (long long)total);
        goto done;
    }
    if (all) {
        for (int64_t i = 0; i < total; i++)
            picked[n_pick++] = i;
    } else {
        const int64_t quarter = total / 4;
        for (int64_t i = 0; i < quarter; i++) {
            const uint64_t x =
                (uint64_t)(eng_philox_uniform_at(seed, offset, 4 * (uint64_t)i) * 16777216.0f);
            const uint64_t y =
                (uint64_t)(eng_philox_uniform_at(seed, offset, 4 * (uint64_t)i + 1) * 16777216.0f);
            picked[n_pick++] = (int64_t)(((x << 24) | y) % (uint64_t)total);
        }
        if ((occ = (int64_t *)malloc((size_t)total * sizeof *occ)) == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "nerf_occgrid_update: out of memory");
            goto done;
        }
        for (int64_t i = 0; i < total; i++)
            if (bits[i]) occ[n_occ++] = i;
        for (int64_t i = 0; n_occ > 0 && i < quarter; i++) {
            const uint64_t x =
                (uint64_t)(eng_philox_uniform_at(seed, offset, 4 * (uint64_t)i + 2) * 16777216.0f);
            const uint64_t y =
                (uint64_t)(eng_philox_uniform_at(seed, offset, 4 * (uint64_t)i + 3) * 16777216.0f);
            picked[n_pick++] = occ[((x << 24) | y) % (uint64_t)n_occ];
        }
    }
    /* new values: the densities at a random point of each picked cell (max when picked twice) */
    for (int64_t i = 0; i < total; i++)
        fresh[i] = -1.0f;
    for (int64_t b0 = 0; b0 < n_pick; b0 += BATCH) {
        const int64_t nb = n_pick - b0 < BATCH ? n_pick - b0 : BATCH;
        for (int64_t j = 0; j < nb; j++) {
            const int64_t idx = picked[b0 + j];
            const uint64_t e = 3 * (uint64_t)(b0 + j);
            const float u[3] = {eng_philox_uniform_at(seed, offset | (1ull << 40), e),
                                eng_philox_uniform_at(seed, offset | (1ull << 40), e + 1),
                                eng_philox_uniform_at(seed, offset | (1ull << 40), e + 2)};
            cell_point(pos + 3 * j, g, (int)(idx / g->cells), idx % g->cells, u);
        }
        if ((rc = density(user, sigma, pos, nb, err)) != ENG_OK) goto done;
        for (int64_t j = 0; j < nb; j++) {
            const int64_t idx = picked[b0 + j];
            const float d = isfinite(sigma[j]) ? sigma[j] * g->p.dt_min : 0.0f;
            if (d > fresh[idx]) fresh[idx] = d;
        }
    }
    for (int64_t i = 0; i < total; i++) {
        const float decayed = v[i] * g->p.decay;
        v[i] = fresh[i] > decayed ? fresh[i] : decayed;
    }
    nerf_occgrid_refresh(g);
done:
    free(occ);
    free(picked);
    free(fresh);
    free(pos);
    free(sigma);
    return rc;
}
