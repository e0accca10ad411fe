/* nerf_render_math.h: the per-ray maths of NeRF rendering, shared by the CPU code
 * (nerf_render.c, nerf_occgrid.c) and, later, the CUDA kernels: static inline, no allocation,
 * plain floats. Model space (see nerf_render.h): the scene lives in an axis-aligned box, the
 * occupancy grid's cascade k covers the cube of side 2^k centred at (0.5, 0.5, 0.5); with the
 * scene contraction (nerf_contract_math.h) one grid covers the contracted cube instead, and
 * nerf_step_contract / nerf_contract_next_t give its steps and its empty-space skips. */
#ifndef NERF_RENDER_MATH_H
#define NERF_RENDER_MATH_H

#include <math.h>
#include <stdint.h>

#include "nerf_contract_math.h"

#ifndef NERF_HD /* also defined, the same way, by nerf_contract_math.h */
#ifdef __CUDACC__
#define NERF_HD __host__ __device__
#else
#define NERF_HD
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The ray o + t d (d need not be unit) against the box [lo, hi]: the entry and exit t (entry
 * clamped at 0). Returns 0 when the ray misses it (or the box is behind). */
static inline NERF_HD int nerf_ray_box(const float o[3],
                                       const float d[3],
                                       const float lo[3],
                                       const float hi[3],
                                       float *t0,
                                       float *t1) {
    float tn = 0.0f, tf = INFINITY;
    for (int a = 0; a < 3; a++) {
        if (d[a] == 0.0f) {
            if (o[a] < lo[a] || o[a] > hi[a]) return 0;
            continue;
        }
        const float inv = 1.0f / d[a];
        float ta = (lo[a] - o[a]) * inv, tb = (hi[a] - o[a]) * inv;
        if (ta > tb) {
            const float tmp = ta;
            ta = tb;
            tb = tmp;
        }
        tn = ta > tn ? ta : tn;
        tf = tb < tf ? tb : tf;
    }
    if (!(tn < tf)) return 0;
    *t0 = tn;
    *t1 = tf;
    return 1;
}

/* The smallest cascade (0..n_cascades-1) whose cube [0.5 - 2^k / 2, 0.5 + 2^k / 2]^3 holds p,
 * or n_cascades when none does. */
static inline NERF_HD int nerf_cascade_of(const float p[3], int n_cascades) {
    float m = 0.0f;
    for (int a = 0; a < 3; a++) {
        const float v = fabsf(p[a] - 0.5f);
        m = v > m ? v : m;
    }
    int k = 0;
    while (k < n_cascades && m > 0.5f * (float)(1 << k))
        k++;
    return k;
}

/* The cell index of p in cascade k of a res^3 grid (x fastest), or -1 outside it. */
static inline NERF_HD int64_t nerf_cell_of(const float p[3], int k, int res) {
    const float side = (float)(1 << k), lo = 0.5f - 0.5f * side;
    int64_t c[3];
    for (int a = 0; a < 3; a++) {
        const float u = (p[a] - lo) / side * (float)res;
        if (!(u >= 0.0f) || u >= (float)res) return -1;
        c[a] = (int64_t)u;
    }
    return (c[2] * res + c[1]) * res + c[0];
}

/* The step from t along a ray: t * cone_angle clamped to [dt_min, dt_max] (instant-ngp's
 * exponential stepping; cone_angle 0 gives uniform steps of dt_min). */
static inline NERF_HD float nerf_step(float t, float cone_angle, float dt_min, float dt_max) {
    const float dt = t * cone_angle;
    return dt < dt_min ? dt_min : dt > dt_max ? dt_max : dt;
}

/* The t where the ray o + t d, at the point p = o + t d, leaves its cell of the uniform grid with
 * planes at lo + i * cell (on every axis), plus a small epsilon (instant-ngp's
 * advance_to_next_voxel). */
static inline NERF_HD float
nerf_next_plane_t(const float o[3], const float d[3], float t, float lo, float cell) {
    float best = INFINITY;
    for (int a = 0; a < 3; a++) {
        if (d[a] == 0.0f) continue;
        const float p = o[a] + t * d[a];
        const float u = (p - lo) / cell;
        const float edge = d[a] > 0.0f ? floorf(u) + 1.0f : ceilf(u) - 1.0f;
        const float tt = (lo + edge * cell - o[a]) / d[a];
        if (tt > t && tt < best) best = tt;
    }
    return best + 1e-5f;
}

/* The t where the ray leaves the cell of cascade k (side 2^k / res) that holds p = o + t d,
 * plus a small epsilon (instant-ngp's advance_to_next_voxel). */
static inline NERF_HD float
nerf_next_cell_t(const float o[3], const float d[3], float t, int k, int res) {
    const float cell = (float)(1 << k) / (float)res, lo = 0.5f - 0.5f * (float)(1 << k);
    return nerf_next_plane_t(o, d, t, lo, cell);
}

/* The step of a contracted march at q = o + t d: nerf_step's exponential step, but never less
 * than contract_step contracted units once q is outside the inner cube: with m =
 * nerf_contract_norm(q, r) > 1 the contraction's radial derivative is 1 / m^2, so the step is
 * at least contract_step * r * m^2 model units. Far away the steps thus grow with the square of
 * the distance, and a ray crosses the whole contracted shell (m from 1 to infinity) in at most
 * about 1 / contract_step steps when it heads outward. */
static inline NERF_HD float nerf_step_contract(const float q[3],
                                               float t,
                                               float cone_angle,
                                               float dt_min,
                                               float dt_max,
                                               float inner_radius,
                                               float contract_step) {
    float dt = nerf_step(t, cone_angle, dt_min, dt_max);
    const float m = nerf_contract_norm(q, inner_radius);
    if (m > 1.0f) {
        const float floor_dt = contract_step * inner_radius * m * m;
        dt = floor_dt > dt ? floor_dt : dt;
    }
    return dt;
}

/* Empty-space skipping in a contracted grid of res^3 cells: inside the inner cube the
 * contraction is the identity, so the cells are a uniform grid (planes at c - 2 r + i 4 r / res)
 * and this returns the t where the ray leaves the cell holding o + t d (plus an epsilon); outside
 * the inner cube it returns t itself (the caller steps on: exact exits of contracted cells are
 * not computed). */
static inline NERF_HD float
nerf_contract_next_t(const float o[3], const float d[3], float t, float inner_radius, int res) {
    const float p[3] = {o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]};
    if (!(nerf_contract_norm(p, inner_radius) <= 1.0f)) return t;
    const float cell = 4.0f * inner_radius / (float)res;
    return nerf_next_plane_t(o, d, t, NERF_CONTRACT_CENTER - 2.0f * inner_radius, cell);
}

/* alpha = 1 - exp(-sigma dt) of one sample. */
static inline NERF_HD float nerf_alpha(float sigma, float dt) {
    return 1.0f - expf(-sigma * dt);
}

#ifdef __cplusplus
}
#endif
#endif /* NERF_RENDER_MATH_H */
