/* nerf_contract_math.h: the Mip-NeRF 360 style scene contraction for unbounded scenes (Barron et
 * al., "Mip-NeRF 360", CVPR 2022, eq. 10), shared by the CPU code (nerf_field.c, nerf_occgrid.c,
 * nerf_render.c) and the CUDA kernels: static inline NERF_HD, no allocation, plain floats.
 *
 *   float u[3];
 *   nerf_contract_unit(p, 0.5f, u);        // model-space p -> the grids' unit cube [0, 1]^3
 *   int64_t cell = nerf_contract_cell(p, 0.5f, 128);   // its occupancy cell (x fastest)
 *   nerf_uncontract_unit(u, 0.5f, p);      // back (for sampling cells)
 *
 * The map, around the scene centre c = (0.5, 0.5, 0.5) with the inner radius r (half the side of
 * the foreground cube, 0.5 by default, so the unit cube [0, 1]^3 is the foreground):
 *   x = (p - c) / r;  m = ||x||_inf;
 *   contract(x) = x                      if m <= 1
 *               = (2 - 1 / m) x / m      otherwise      (||contract(x)||_inf < 2)
 *   unit = (contract(x) + 2) / 4         in [0, 1]^3: the inner cube maps onto [1/4, 3/4]^3.
 * The norm is L-infinity (nerfstudio's choice) rather than Mip-NeRF 360's L2 because
 *  - the whole inner cube stays uncontracted: instant-ngp scenes put the object anywhere in the
 *    unit cube, corners included, and an L2 ball of radius 1 would squeeze those corners;
 *  - the contracted domain is then the cube [-2, 2]^3 itself, which the hash grid and the
 *    occupancy grid cover exactly; the L2 ball of radius 2 would leave the grids' corners (48 %
 *    of the cells) unused.
 * The map is continuous (the two branches agree on m = 1), radial (a point stays on its ray from
 * c), and moves points outward monotonically (the contracted norm 2 - 1 / m grows with m); the
 * far field (m -> infinity) lands on the boundary of the unit cube. It is Lipschitz but not
 * differentiable on the planes where two coordinates tie for the maximum (only the field's
 * positions would see that, and they get no gradient).
 * Non-finite inputs: an infinite coordinate maps to the boundary; NaN is passed through to the
 * caller (the hash grid clamps NaN to 0; nerf_contract_cell returns a valid cell).
 * Threads: pure functions. */
#ifndef NERF_CONTRACT_MATH_H
#define NERF_CONTRACT_MATH_H

#include <math.h>
#include <stdint.h>

#ifndef NERF_HD
#ifdef __CUDACC__
#define NERF_HD __host__ __device__
#else
#define NERF_HD
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_CONTRACT_CENTER 0.5f /* each coordinate of the contraction's centre c */
/* The largest contracted norm nerf_uncontract_unit maps back (2 would be infinitely far): a
 * point at 2^14 inner radii. */
#define NERF_CONTRACT_MAX_NORM (2.0f - 1.0f / 16384.0f)

/* ||(p - c) / r||_inf: the distance of model-space p from the centre in inner radii (<= 1:
 * inside the inner cube). */
static inline NERF_HD float nerf_contract_norm(const float p[3], float inner_radius) {
    float m = 0.0f;
    for (int a = 0; a < 3; a++) {
        const float v = fabsf(p[a] - NERF_CONTRACT_CENTER);
        m = v > m ? v : m;
    }
    return m / inner_radius;
}

/* y = contract(x) for x already centred and scaled (x = (p - c) / r); see the top. */
static inline NERF_HD void nerf_contract(const float x[3], float y[3]) {
    float m = 0.0f;
    for (int a = 0; a < 3; a++) {
        const float v = fabsf(x[a]);
        m = v > m ? v : m;
    }
    if (!(m > 1.0f)) { /* inside (or NaN): the identity */
        for (int a = 0; a < 3; a++)
            y[a] = x[a];
        return;
    }
    if (isinf(m)) { /* infinitely far: the infinite coordinates go to +-2, the others to 0 */
        for (int a = 0; a < 3; a++)
            y[a] = isinf(x[a]) ? (x[a] > 0.0f ? 2.0f : -2.0f) : 0.0f;
        return;
    }
    const float s = (2.0f - 1.0f / m) / m;
    for (int a = 0; a < 3; a++)
        y[a] = x[a] * s;
}

/* Model-space p -> unit (the grids' [0, 1]^3 coordinates) with inner radius r (> 0). */
static inline NERF_HD void nerf_contract_unit(const float p[3], float inner_radius, float u[3]) {
    float x[3], y[3];
    for (int a = 0; a < 3; a++)
        x[a] = (p[a] - NERF_CONTRACT_CENTER) / inner_radius;
    nerf_contract(x, y);
    for (int a = 0; a < 3; a++)
        u[a] = (y[a] + 2.0f) * 0.25f;
}

/* The inverse: unit u in [0, 1]^3 -> model space p (contracted norms above
 * NERF_CONTRACT_MAX_NORM are first pulled in to it, so p is always finite). */
static inline NERF_HD void nerf_uncontract_unit(const float u[3], float inner_radius, float p[3]) {
    float y[3], m = 0.0f;
    for (int a = 0; a < 3; a++) {
        y[a] = 4.0f * u[a] - 2.0f;
        const float v = fabsf(y[a]);
        m = v > m ? v : m;
    }
    float s = 1.0f; /* x = y * s */
    if (m > 1.0f) {
        const float mc = m < NERF_CONTRACT_MAX_NORM ? m : NERF_CONTRACT_MAX_NORM;
        /* ||x|| = 1 / (2 - mc) along the direction y / m */
        s = 1.0f / ((2.0f - mc) * m);
    }
    for (int a = 0; a < 3; a++)
        p[a] = NERF_CONTRACT_CENTER + inner_radius * y[a] * s;
}

/* The cell of model-space p in a res^3 grid over the contracted unit cube (x fastest); every
 * point has one (coordinates clamped to the grid, NaN to cell 0). */
static inline NERF_HD int64_t nerf_contract_cell(const float p[3], float inner_radius, int res) {
    float u[3];
    int64_t c[3];
    nerf_contract_unit(p, inner_radius, u);
    for (int a = 0; a < 3; a++) {
        const float v = u[a] * (float)res;
        c[a] = v >= 0.0f ? (v < (float)res ? (int64_t)v : (int64_t)res - 1) : 0;
    }
    return (c[2] * res + c[1]) * res + c[0];
}

#ifdef __cplusplus
}
#endif
#endif /* NERF_CONTRACT_MATH_H */
