/* nerf_mesh.h: iso-surface extraction (marching cubes) of a density field and PLY output, for
 * `nerf mesh`. Prefix nerf_mesh_.
 *
 *   nerf_mesh m = {0};
 *   nerf_mesh_extract(&m, &params, density, color, user, pool, &err);   // grid (res+1)^3
 *   nerf_mesh_write_ply("mesh.ply", &m, &err);
 *   nerf_mesh_free(&m);
 *
 * Marching cubes: the density is sampled at the (res + 1)^3 corners of a res^3 grid over the
 * box; each cube whose corners straddle `iso` gets triangles through the edge crossings
 * (linear interpolation). The case table is built at first use from the cube's faces: on each
 * face the crossings are joined inside-to-outside in order around the face, an ambiguous face
 * (corners alternating) separating its two inside corners, and the face segments are chained
 * into loops that are fanned into triangles (from a loop vertex whose diagonals all cross the
 * cube's inside, or else from an extra vertex at the loop's centre, so that no triangle edge
 * lies in a cube face except the face segments: the mesh stays manifold). Neighbouring cubes decide a shared face the same
 * way, so the surface is closed (watertight) wherever it does not leave the box; triangles face
 * outwards (from high density to low). Vertices are shared between cubes (one per grid edge).
 * Colours: the caller's function at each vertex, given the outward normal (the negated,
 * normalised density gradient from central differences of the sampled grid).
 * Threads: the density/colour functions are called from the calling thread in batches (they
 * may use the pool themselves). */
#ifndef NERF_MESH_H
#define NERF_MESH_H

#include <stdint.h>

#include "eng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_MESH_MAX_RES 1024

typedef struct nerf_mesh {
    int64_t n_verts, n_tris;
    float *verts;    /* (n_verts, 3) model space */
    float *normals;  /* (n_verts, 3) unit, outward */
    uint8_t *colors; /* (n_verts, 3) RGB */
    int32_t *tris;   /* (n_tris, 3) vertex indices, counter-clockwise seen from outside */
} nerf_mesh;

typedef struct nerf_mesh_params {
    float box_lo[3], box_hi[3]; /* the region to mesh */
    int res;                    /* cubes per side (256) */
    float iso;                  /* density threshold (instant-ngp's default 2.5) */
} nerf_mesh_params;
void nerf_mesh_params_init(nerf_mesh_params *p);

/* sigma[0..n) at positions pos[0..3n). */
typedef int (*nerf_mesh_density_fn)(
    void *user, float *sigma, const float *pos, int64_t n, eng_err *err);
/* rgb[0..3n) in [0, 1] at positions pos[0..3n) seen along -normals[0..3n) (may be NULL:
 * the vertices are grey). */
typedef int (*nerf_mesh_color_fn)(
    void *user, float *rgb, const float *pos, const float *normals, int64_t n, eng_err *err);

/* Errors: ENG_E_INVALID_ARG (res 2..NERF_MESH_MAX_RES, an empty box, iso not finite), ENG_E_OOM,
 * those of the callbacks. An empty surface is not an error (0 triangles). */
int nerf_mesh_extract(nerf_mesh *out,
                      const nerf_mesh_params *p,
                      nerf_mesh_density_fn density,
                      nerf_mesh_color_fn color,
                      void *user,
                      eng_err *err);
void nerf_mesh_free(nerf_mesh *m); /* zeroes it; NULL is a no-op */

/* Writes binary little-endian PLY (vertex x y z float, nx ny nz float, red green blue uchar;
 * face vertex_indices uchar/int) atomically (PATH.tmp.<pid> renamed over PATH).
 * Errors: ENG_E_IO naming the path. */
int nerf_mesh_write_ply(const char *path, const nerf_mesh *m, eng_err *err);

/* The case table (for tests): the triangles of cube configuration `mask` (bit i: corner i at
 * (i & 1, i >> 1 & 1, i >> 2 & 1) is inside) as edge indices, 3 per triangle (12 + k: the
 * centre vertex of the case's loop k); returns the triangle count. Edge e joins the corners
 * nerf_mesh_edge_corners(e). */
int nerf_mesh_case(int mask, const int8_t **edges);
void nerf_mesh_edge_corners(int edge, int *a, int *b);

#ifdef __cplusplus
}
#endif
#endif /* NERF_MESH_H */
