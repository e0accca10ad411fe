/* vw_mesh.c: the mesh mode (vw_mesh.h): geometry handed over on the first frame. */
#include "vw_mesh.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vw_ply.h"

typedef struct mesh_mode {
    vw_ply ply;
    vw_mesh_data data;
} mesh_mode;

static int mesh_frame(void *user, const vw_view *view, vw_frame_out *out, eng_err *err) {
    mesh_mode *mm = user;
    (void)err;
    if (view->frame == 0) out->mesh = &mm->data;
    snprintf(out->text, sizeof out->text, "%s", view->depth ? "depth" : "");
    return ENG_OK;
}

static void mesh_destroy(void *user) {
    mesh_mode *mm = user;
    if (mm == NULL) return;
    vw_ply_free(&mm->ply);
    free(mm);
}

int vw_mesh_mode_create(vw_mode *out, const char *path, int up, eng_err *err) {
    int rc = ENG_OK;
    mesh_mode *mm = calloc(1, sizeof *mm);
    ENG_ASSERT(out != NULL && path != NULL && up >= -1 && up < VW_UP_COUNT);
    memset(out, 0, sizeof *out);
    if (mm == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "vw_mesh_mode_create: no memory");
        goto done;
    }
    if ((rc = vw_ply_read(&mm->ply, path, err)) != ENG_OK) goto done;
    const vw_ply *m = &mm->ply;
    if (m->n_tris == 0) {
        rc = eng_err_set(err, ENG_E_FORMAT, "vw_mesh_mode_create: %s: the mesh has no triangles",
                         path);
        goto done;
    }
    float lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (int64_t i = 0; i < m->n_verts; i++)
        for (int k = 0; k < 3; k++) {
            lo[k] = fminf(lo[k], m->pos[3 * i + k]);
            hi[k] = fmaxf(hi[k], m->pos[3 * i + k]);
        }
    float r2 = 0;
    for (int k = 0; k < 3; k++) {
        out->center[k] = 0.5f * (lo[k] + hi[k]);
        r2 += 0.25f * (hi[k] - lo[k]) * (hi[k] - lo[k]);
    }
    out->radius = r2 > 0 ? sqrtf(r2) : 1.0f;
    mm->data.n_verts = m->n_verts;
    mm->data.n_tris = m->n_tris;
    mm->data.pos = m->pos;
    mm->data.normals = m->normals;
    mm->data.colors = m->colors;
    mm->data.tris = m->tris;
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    snprintf(out->title, sizeof out->title, "%s (%lld vertices, %lld triangles)", base,
             (long long)m->n_verts, (long long)m->n_tris);
    out->name = "mesh";
    out->has_scene = 1;
    out->has_depth = 1;
    out->up = up >= 0 ? (vw_up)up : m->from_nerf ? VW_UP_Z : VW_UP_Y;
    out->frame = mesh_frame;
    out->destroy = mesh_destroy;
    out->user = mm;
    mm = NULL;
done:
    mesh_destroy(mm);
    return rc;
}
