/* vw_ply.h: a small PLY reader for the viewer's mesh mode. Prefix vw_ply_.
 *
 *   vw_ply m = {0}; eng_err err = {0};
 *   if (vw_ply_read(&m, "mesh.ply", &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
 *   // m.pos[3*i..], m.normals[3*i..], m.colors[3*i..], m.tris[3*t..]
 *   vw_ply_free(&m);
 *
 * Formats: "ascii 1.0" and "binary_little_endian 1.0" (big-endian is ENG_E_UNSUPPORTED).
 * Elements: `vertex` with float/double/integer properties x y z, optionally nx ny nz and red
 * green blue (uchar 0..255, or float/double 0..1); `face` with a list property vertex_indices
 * (or vertex_index), any integer count and index types; polygons are fanned into triangles,
 * faces with fewer than 3 vertices dropped. Other elements and properties are skipped. This
 * covers what nerf_mesh_write_ply writes and most exported meshes.
 * Missing normals are computed from the faces (area-weighted, normalised); missing colours are
 * grey (180). Limits: VW_PLY_MAX_VERTS vertices, VW_PLY_MAX_TRIS triangles, sizes checked
 * against the file before allocating. Every vertex index must be < the vertex count and every
 * coordinate finite.
 * Errors name the function, the file and what was found: ENG_E_IO, ENG_E_FORMAT, ENG_E_UNSUPPORTED,
 * ENG_E_OOM. Ownership: a vw_ply owns its arrays (vw_ply_free). Threads: no shared state. */
#ifndef VW_PLY_H
#define VW_PLY_H

#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VW_PLY_MAX_VERTS ((int64_t)1 << 27)
#define VW_PLY_MAX_TRIS  ((int64_t)1 << 28)

typedef struct vw_ply {
    int64_t n_verts, n_tris;
    float *pos;      /* (n_verts, 3) */
    float *normals;  /* (n_verts, 3), unit (0 where a vertex has no face) */
    uint8_t *colors; /* (n_verts, 3) RGB */
    uint32_t *tris;  /* (n_tris, 3) */
    int has_normals; /* the file had nx ny nz */
    int has_colors;  /* the file had red green blue */
    int from_nerf;   /* written by nerf_mesh_write_ply (its comment line): z is up */
} vw_ply;

/* Reads a PLY file into *out (overwritten; zeroed on error). */
int vw_ply_read(vw_ply *out, const char *path, eng_err *err);
/* The same from `size` bytes in memory (borrowed); `name` labels messages. */
int vw_ply_read_memory(vw_ply *out, const void *data, size_t size, const char *name, eng_err *err);
void vw_ply_free(vw_ply *m); /* zeroes it; NULL is a no-op */

#ifdef __cplusplus
}
#endif
#endif /* VW_PLY_H */
