/* nerf_occgrid.h: the occupancy grid of instant-ngp: which cells of the scene hold density, so
 * ray marching skips empty space. Prefix nerf_occgrid_.
 *
 *   nerf_occgrid *g = NULL;
 *   nerf_occgrid_params gp; nerf_occgrid_params_init(&gp); gp.cascades = 1;
 *   nerf_occgrid_create(&g, &gp, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err);
 *   every 16 training steps: nerf_occgrid_update(g, step, density, model, pool, &err);
 *   nerf_occgrid_occupied_at(g, p)   // during marching
 *
 * Layout: `cascades` nested cubes, cascade k = [0.5 - 2^k / 2, 0.5 + 2^k / 2]^3 in model space,
 * each res^3 cells (x fastest). Each cell keeps a density value: the optical thickness of one
 * minimal step, sigma * dt_min, as instant-ngp stores it. An update (instant-ngp's
 * update_density_grid):
 *   - picks cells: every cell while step < warmup_steps (256), afterwards a quarter of all cells
 *     at random plus a quarter drawn from the occupied ones (Philox, seed + step);
 *   - evaluates the density at one random point inside each picked cell (the caller's function,
 *     in batches on the calling thread: the function may use the pool itself);
 *   - value = max(value * decay, new) for picked cells, value * decay for the others; cells not
 *     picked keep decaying as in instant-ngp (decay 0.95);
 *   - occupied = value >= min(threshold, mean of cascade 0's values) (threshold 0.01), so a
 *     field that is still uniform (an untrained network) leaves every cell occupied (contracted
 *     grids: below).
 * Contracted grid (contract = 1, for unbounded scenes; nerf_contract_math.h): one cascade whose
 * res^3 cells cover the contracted unit cube (the inner cube [c - r, c + r]^3 is the middle
 * (res / 2)^3 cells, the rest of space the shell around them). A cell's sample point is a
 * uniform point of its contracted cell mapped back (nerf_uncontract_unit); its value is still
 * sigma * dt_min, but a cell is occupied when value * max(1, m) reaches min(threshold, mean),
 * with m = nerf_contract_norm of the cell's centre (its distance from the centre in inner
 * radii), and the mean is that of the inner cube's cells. This is instant-ngp's rule for
 * cascades (cascade k's values are sigma * dt_min * 2^k: the steps there are about 2^k times
 * longer), made continuous: far cells, crossed in long steps, stay occupied at the low densities
 * that make those steps opaque (a sky at m = 16 with sigma >= 0.4), while fog near the cameras
 * is still culled, and a uniform field still leaves every cell occupied. (The exact step there,
 * nerf_step_contract, grows as m^2: using it culled too little near the cameras and left floaters
 * on fox.)
 * Memory: res^3 * cascades floats and bytes (128^3: 10 MiB per cascade), from the given
 * allocator (ENG_LIFE_STATE). Threads: update from one thread at a time; the queries are
 * read-only. */
#ifndef NERF_OCCGRID_H
#define NERF_OCCGRID_H

#include <stdint.h>

#include "eng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_OCCGRID_MAX_CASCADES 8
#define NERF_OCCGRID_MAX_RES      512

typedef struct nerf_occgrid nerf_occgrid; /* opaque */

typedef struct nerf_occgrid_params {
    int cascades;     /* 1 for aabb_scale 1; 1 + log2(aabb_scale) for larger scenes */
    int res;          /* cells per side: 128 */
    float decay;      /* 0.95 */
    float threshold;  /* optical thickness of one step: 0.01 */
    float dt_min;     /* the marching's smallest step: sqrt(3) / 1024 */
    int warmup_steps; /* updates of every cell until this step: 256 */
    uint64_t seed;    /* Philox seed of the cell picks and sample points */
    /* the contraction (above): */
    int contract;        /* 0: cascades of the box; 1: one grid over the contracted cube */
    float inner_radius;  /* 0.5 */
    float cone_angle;    /* 1/256, as the contracted march's (nerf_march_params) */
    float dt_max;        /* 64 (the march's: its far half side) */
    float contract_step; /* 1/256 */
} nerf_occgrid_params;
void nerf_occgrid_params_init(nerf_occgrid_params *p);

/* Densities sigma[0..n) at model-space points pos[0..3n). Returns ENG_OK or an error. */
typedef int (*nerf_density_fn)(void *user, float *sigma, const float *pos, int64_t n, eng_err *err);

/* Errors: ENG_E_INVALID_ARG (cascades 1..8, res 1..512 and even, decay in (0, 1], threshold and
 * dt_min > 0; contracted: cascades 1, inner_radius, dt_max and contract_step > 0, cone_angle >=
 * 0), ENG_E_OOM. Every cell starts occupied with value 0 (nothing is known yet). */
int nerf_occgrid_create(nerf_occgrid **out,
                        const nerf_occgrid_params *p,
                        eng_alloc *alloc,
                        eng_err *err);
void nerf_occgrid_destroy(nerf_occgrid *g); /* NULL is a no-op */

const nerf_occgrid_params *nerf_occgrid_get_params(const nerf_occgrid *g);
/* 1 when the cell holding model-space point p (in the smallest cascade containing it; contracted:
 * its contracted cell, which every point has) is occupied; 0 when empty or outside every
 * cascade. */
int nerf_occgrid_occupied_at(const nerf_occgrid *g, const float p[3]);
/* The same for cell `cell` of cascade k. */
int nerf_occgrid_occupied(const nerf_occgrid *g, int k, int64_t cell);
/* The fraction of occupied cells of cascade k, and the mean density value of cascade 0 (the
 * unit cube; contracted: of the inner cube's cells, the foreground, as the far shell is mostly
 * never seen and keeps the untrained density). */
double nerf_occgrid_occupancy(const nerf_occgrid *g, int k);
double nerf_occgrid_mean(const nerf_occgrid *g);
/* Raw values (res^3 per cascade, cascade-major) and occupancy bytes, for snapshots. */
float *nerf_occgrid_values(nerf_occgrid *g);
uint8_t *nerf_occgrid_bits(nerf_occgrid *g);
/* Recomputes the occupancy bytes from the values (after loading them). */
void nerf_occgrid_refresh(nerf_occgrid *g);
/* A coarse level for marching past large empty regions (nerf_march_params.coarse_skip): one
 * byte per block of 8^3 cells, 1 where any of them is occupied; kept by refresh and update. Once
 * nerf_occgrid_bits has handed the bytes out (a caller may write them) it is stale until
 * nerf_occgrid_rebuild_coarse. nerf_occgrid_coarse_res: res / 8, or 0 while stale or when res is
 * not a multiple of 8 of at least 16 (then nothing is skipped by it). coarse_occupied: cell of
 * the res/8 grid (as nerf_cell_of / nerf_contract_cell with that res); 1 for -1 or stale. */
void nerf_occgrid_rebuild_coarse(nerf_occgrid *g);
int nerf_occgrid_coarse_res(const nerf_occgrid *g);
int nerf_occgrid_coarse_occupied(const nerf_occgrid *g, int k, int64_t cell);

/* One update at training step `step` (see the top). Errors: those of `density`, ENG_E_OOM. */
int nerf_occgrid_update(
    nerf_occgrid *g, int64_t step, nerf_density_fn density, void *user, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* NERF_OCCGRID_H */
