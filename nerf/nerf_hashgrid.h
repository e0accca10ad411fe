/* nerf_hashgrid.h: the multiresolution hash encoding of instant-ngp on the CPU: 3-D points in
 * [0, 1]^3 -> L levels x F features, trilinearly interpolated from per-level tables of
 * learned vectors (dense on coarse levels, spatially hashed on fine ones). Prefix nerf_hashgrid_.
 *
 *   nerf_hashgrid_params gp; nerf_hashgrid_params_init(&gp);   // L 16, F 2, T 2^19, 16..2048
 *   gp.aabb_scale = ds_aabb_scale;                              // finest level 2048 * aabb_scale
 *   nerf_hashgrid g; if (nerf_hashgrid_init(&g, &gp, &err) != ENG_OK) ...
 *   float *table = ... g.n_params floats (an ENG_LIFE_STATE tensor: nerf_field does that) ...
 *   nerf_hashgrid_init_params(&g, stream, table, seed, 0, &err);   // U[-1e-4, 1e-4)
 *   nerf_hashgrid_fwd(&g, stream, feat, pos, n, table, &err);      // feat (n, L F)
 *   nerf_hashgrid_bwd(&g, stream, d_table, pos, n, d_feat, &err);  // d_table += ...
 *
 * A nerf_hashgrid is plain data (the level table), made by nerf_hashgrid_init: it owns no
 * memory, so it can be copied to a device kernel's arguments. The parameters (the tables) are the
 * caller's: entry e of level l, feature f is table[(level[l].offset + e) * F + f]; g.n_params
 * floats in all. The maths of one point is nerf_hashgrid_math.h, shared with the CUDA kernels;
 * the conventions (tiny-cuda-nn's: N_min counts vertices, the half-vertex offset, when a level is
 * dense) are explained there.
 *
 * Levels: b = exp((ln N_max - ln N_min) / (L - 1)) with N_max = desired_resolution * aabb_scale
 * (instant-ngp: 2048 per unit of the scene box), s_l = N_min b^l - 1, r_l = ceil(s_l) + 1, and
 * level l holds min(next multiple of 8 of r_l^3, T) entries. The default configuration has 5
 * dense levels (r = 16, 23, 31, 43, 59) and 11 hashed ones: 6,098,120 entries, 12,196,240 floats.
 *
 * Shapes (row-major f32, host memory): pos (n, 3), feat / d_feat (n, L F) with feature
 * l F + f, d_pos (n, 3). Positions are clamped to [0, 1]^3 (see the math header).
 *
 * Parallelism and determinism (stream s: s->pool splits the work; s NULL or s->pool NULL runs on
 * the calling thread): the forward pass and d_pos split the points; the table gradient splits
 * the levels, each level summing its points in order, so d_table is bit-identical for any thread
 * count (no atomics; the CUDA kernel will use atomics and match to a tolerance).
 * Errors: ENG_E_INVALID_ARG (a bad configuration, named; n < 0). NULL pointers where data is
 * needed are bugs (asserted). Threads: a grid is read-only after init; calls may run concurrently
 * on different outputs. Limits: L <= NERF_HASHGRID_MAX_LEVELS, T <= 2^24, F in {1, 2, 4, 8}. */
#ifndef NERF_HASHGRID_H
#define NERF_HASHGRID_H

#include <stdint.h>

#include "eng.h"
#include "nerf_hashgrid_math.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_HASHGRID_MAX_LEVELS 32
#define NERF_HASHGRID_MAX_LOG2_T 24

typedef struct nerf_hashgrid_params {
    int n_levels;             /* L: 16 */
    int n_features;           /* F per level: 2 (1, 2, 4 or 8) */
    int log2_table_size;      /* log2 T, the most entries of one level: 19 (2..24) */
    int base_resolution;      /* N_min, vertices per axis of level 0: 16 (>= 2) */
    float desired_resolution; /* finest resolution per unit of the scene box: 2048 */
    float aabb_scale;         /* scene box side (transforms.json's aabb_scale): 1 */
} nerf_hashgrid_params;

typedef struct nerf_hashgrid {
    int n_levels, n_features, log2_table_size, base_resolution;
    float max_resolution;  /* N_max = desired_resolution * aabb_scale */
    float per_level_scale; /* b */
    int64_t n_outputs;     /* L F: columns of feat */
    int64_t n_entries;     /* table entries, all levels */
    int64_t n_params;      /* n_entries * F floats */
    nerf_hashgrid_level level[NERF_HASHGRID_MAX_LEVELS];
} nerf_hashgrid;

/* instant-ngp's NeRF defaults (above). */
void nerf_hashgrid_params_init(nerf_hashgrid_params *p);
/* Validates p and fills the level table.
 * Errors: ENG_E_INVALID_ARG naming the field, its value and the accepted range. */
int nerf_hashgrid_init(nerf_hashgrid *g, const nerf_hashgrid_params *p, eng_err *err);

/* table (g->n_params floats) = uniform [-1e-4, 1e-4) from Philox stream (seed, offset) (same
 * numbers for any thread count). */
int nerf_hashgrid_init_params(const nerf_hashgrid *g,
                              eng_stream *s,
                              float *table,
                              uint64_t seed,
                              uint64_t offset,
                              eng_err *err);

/* feat (n, L F) = the encoding of pos (n, 3). Errors: ENG_E_INVALID_ARG (n < 0). */
int nerf_hashgrid_fwd(const nerf_hashgrid *g,
                      eng_stream *s,
                      float *feat,
                      const float *pos,
                      int64_t n,
                      const float *table,
                      eng_err *err);

/* d_table (g->n_params) += d feat / d table applied to d_feat (n, L F) (accumulates: zero it
 * first for a fresh gradient). The encoding is linear in the table, so the table itself is not
 * needed. Errors: ENG_E_INVALID_ARG (n < 0). */
int nerf_hashgrid_bwd(const nerf_hashgrid *g,
                      eng_stream *s,
                      float *d_table,
                      const float *pos,
                      int64_t n,
                      const float *d_feat,
                      eng_err *err);

/* d_pos (n, 3) = (d feat / d pos)^T d_feat (overwritten, not accumulated). The encoding is
 * piecewise trilinear, so this is the derivative inside each cell (one-sided on cell faces) and
 * 0 along axes where pos was clamped. Errors: ENG_E_INVALID_ARG (n < 0). */
int nerf_hashgrid_bwd_pos(const nerf_hashgrid *g,
                          eng_stream *s,
                          float *d_pos,
                          const float *pos,
                          int64_t n,
                          const float *d_feat,
                          const float *table,
                          eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* NERF_HASHGRID_H */
