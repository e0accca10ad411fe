/* vw_mesh.h: the viewer's mesh mode: a PLY (vw_ply.h) drawn lit with its vertex colours, the
 * orbit camera framed on its bounding box. Prefix vw_mesh_mode_.
 *
 *   vw_mode m; if (vw_mesh_mode_create(&m, "mesh.ply", -1, &err) != ENG_OK) ...
 *   vw_run(&params, &m, NULL, &err); vw_mode_destroy(&m);
 *
 * Framing: centre = the bounding box's centre, radius = half its diagonal (the camera of
 * vw_params at distance dist, or fitted so that the sphere of that radius fills the view).
 * Up axis: `up` (VW_UP_X/Y/Z), or -1: z for meshes written by `nerf mesh` (NeRF scenes are
 * z-up), y otherwise. Tab shows depth. Ownership: the mode owns the mesh until vw_mode_destroy.
 * Errors: those of vw_ply_read (naming the file), ENG_E_FORMAT for a mesh with no triangles. */
#ifndef VW_MESH_H
#define VW_MESH_H

#include "eng_err.h"
#include "vw.h"

#ifdef __cplusplus
extern "C" {
#endif

int vw_mesh_mode_create(vw_mode *out, const char *path, int up, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* VW_MESH_H */
