/* nerf_hashgrid_math.h: the per-point maths of the multiresolution hash encoding (Müller et al.,
 * "Instant Neural Graphics Primitives", SIGGRAPH 2022), shared by the CPU twin (nerf_hashgrid.c)
 * and, later, the CUDA kernels: static inline ENG_HD, no allocation, plain integers and floats.
 *
 *   uint32_t idx[8]; float w[8], frac[3];
 *   nerf_hashgrid_corners(&g->level[l], p, idx, w, frac);   // p in [0, 1]^3
 *   for (c = 0; c < 8; c++) feature += w[c] * table[(level.offset + idx[c]) * F + f];
 *
 * Conventions (tiny-cuda-nn's GridEncoding, which instant-ngp uses):
 *  - level l has scale s_l = N_min * b^l - 1 and resolution r_l = ceil(s_l) + 1 grid vertices
 *    per axis (the "- 1" makes N_min count vertices, not cells; tiny-cuda-nn's choice);
 *  - a coordinate x in [0, 1] maps to u = s_l x + 0.5 (the half-vertex offset staggers the levels
 *    so their vertices do not line up at integer scales; paper, appendix A), cell floor(u),
 *    fraction u - floor(u); the 8 corners of that cell are interpolated trilinearly. The corner
 *    at floor(u) + 1 can reach r_l, one past the last vertex: on dense levels its index wraps
 *    (modulo the table size), as in tiny-cuda-nn;
 *  - a level whose r_l^3 vertices fit its table (r_l^3 <= size) is indexed densely,
 *    i = x + r_l (y + r_l z); otherwise by the spatial hash x ^ (y * 2654435761) ^ (z * 805459861)
 *    (uint32 arithmetic); either index is taken modulo the level's table size.
 * Coordinates are clamped to [0, 1] first (NaN counts as 0), so any float gives valid indices;
 * outside [0, 1] the encoding is constant (zero gradient with respect to the position).
 * u is computed in double: the product of two floats is exact in double and the one rounding of
 * "+ 0.5" is the same with or without FMA contraction, so the CPU and a CUDA kernel pick the same
 * cell and fraction bit for bit. The weights and sums are f32.
 * Threads: pure functions. */
#ifndef NERF_HASHGRID_MATH_H
#define NERF_HASHGRID_MATH_H

#include <math.h>
#include <stdint.h>

#include "eng_base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_HASHGRID_PRIME_Y 2654435761u
#define NERF_HASHGRID_PRIME_Z 805459861u

/* One level of the grid: plain data, filled by nerf_hashgrid_init (nerf_hashgrid.h). */
typedef struct nerf_hashgrid_level {
    float scale;         /* s_l = N_min b^l - 1 (rounded once to f32) */
    uint32_t resolution; /* r_l = ceil(s_l) + 1 vertices per axis */
    uint32_t size;       /* table entries: min(next multiple of 8 of r_l^3, T); T when hashed */
    uint32_t hashed;     /* 1: spatial hash; 0: dense (r_l^3 <= size) */
    int64_t offset;      /* first entry of this level in the whole table (entries, not floats) */
} nerf_hashgrid_level;

/* The spatial hash of a vertex (before the modulo). */
static inline ENG_HD uint32_t nerf_hashgrid_hash(uint32_t x, uint32_t y, uint32_t z) {
    return x ^ (y * NERF_HASHGRID_PRIME_Y) ^ (z * NERF_HASHGRID_PRIME_Z);
}

/* Table entry (within the level) of vertex (x, y, z): the index modulo the level's size. A hashed
 * level's size is T, a power of two (a mask); a dense index only reaches the size on the corner
 * one past the last vertex (the rare wrap). */
static inline ENG_HD uint32_t nerf_hashgrid_index(const nerf_hashgrid_level *lv,
                                                  uint32_t x,
                                                  uint32_t y,
                                                  uint32_t z) {
    if (lv->hashed) return nerf_hashgrid_hash(x, y, z) & (lv->size - 1u);
    const uint32_t r = lv->resolution;
    const uint32_t i = x + r * (y + r * z);
    return i < lv->size ? i : i % lv->size;
}

/* x clamped to [0, 1]; NaN gives 0. */
static inline ENG_HD float nerf_hashgrid_clamp01(float x) {
    return x >= 0.0f ? (x <= 1.0f ? x : 1.0f) : 0.0f;
}

/* Cell and fraction along one axis at scale s (see the top of the file). u >= 0.5, so the
 * conversion to an integer is floor(u) (without a libm call on baseline x86-64). */
static inline ENG_HD void nerf_hashgrid_axis(float x, float scale, uint32_t *cell, float *frac) {
    const double u = (double)scale * (double)nerf_hashgrid_clamp01(x) + 0.5;
    const uint32_t c = (uint32_t)u;
    *cell = c;
    *frac = (float)(u - (double)c);
}

/* The 8 corners of p's cell on level lv: table entries idx (within the level, add lv->offset)
 * and trilinear weights w (corner c has offset (c & 1, (c >> 1) & 1, (c >> 2) & 1)); frac gets
 * the fractions (for derivatives). The weights sum to 1 up to rounding. */
static inline ENG_HD void nerf_hashgrid_corners(
    const nerf_hashgrid_level *lv, const float p[3], uint32_t idx[8], float w[8], float frac[3]) {
    uint32_t cell[3];
    for (int d = 0; d < 3; d++)
        nerf_hashgrid_axis(p[d], lv->scale, &cell[d], &frac[d]);
    /* per-axis terms of the index, for offsets 0 and 1; the index of corner c combines one of
     * each (xor for the hash, sum for the dense layout): same values as nerf_hashgrid_index */
    uint32_t tx[2], ty[2], tz[2];
    const float wx[2] = {1.0f - frac[0], frac[0]}, wy[2] = {1.0f - frac[1], frac[1]},
                wz[2] = {1.0f - frac[2], frac[2]};
    if (lv->hashed) {
        for (uint32_t b = 0; b < 2; b++) {
            tx[b] = cell[0] + b;
            ty[b] = (cell[1] + b) * NERF_HASHGRID_PRIME_Y;
            tz[b] = (cell[2] + b) * NERF_HASHGRID_PRIME_Z;
        }
        for (int c = 0; c < 8; c++) {
            const int bx = c & 1, by = (c >> 1) & 1, bz = (c >> 2) & 1;
            idx[c] = (tx[bx] ^ ty[by] ^ tz[bz]) & (lv->size - 1u);
            w[c] = wx[bx] * wy[by] * wz[bz];
        }
    } else {
        const uint32_t r = lv->resolution;
        for (uint32_t b = 0; b < 2; b++) {
            tx[b] = cell[0] + b;
            ty[b] = r * (cell[1] + b);
            tz[b] = r * r * (cell[2] + b);
        }
        for (int c = 0; c < 8; c++) {
            const int bx = c & 1, by = (c >> 1) & 1, bz = (c >> 2) & 1;
            const uint32_t i = tx[bx] + ty[by] + tz[bz];
            idx[c] = i < lv->size ? i : i % lv->size;
            w[c] = wx[bx] * wy[by] * wz[bz];
        }
    }
}

/* d w[c] / d p[dim] for corner c, given the fractions (without the level's scale factor, which
 * the caller multiplies in; zero where p[dim] was clamped, which the caller checks). */
static inline ENG_HD float nerf_hashgrid_dweight(const float frac[3], int c, int dim) {
    float g = 1.0f;
    for (int d = 0; d < 3; d++) {
        const int b = (c >> d) & 1;
        if (d == dim) {
            g *= b ? 1.0f : -1.0f;
        } else {
            g *= b ? frac[d] : 1.0f - frac[d];
        }
    }
    return g;
}

#ifdef __cplusplus
}
#endif
#endif /* NERF_HASHGRID_MATH_H */
