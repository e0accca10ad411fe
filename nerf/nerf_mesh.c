/* nerf_mesh.c: marching cubes with a case table derived from the cube's faces, and PLY output
 * (nerf_mesh.h). */
#define _POSIX_C_SOURCE 200809L
#include "nerf_mesh.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_TRIS = 16, MAX_LOOPS = 4, BATCH = 1 << 16 };

/* ---- the case table ------------------------------------------------------------------------ */

static int8_t edge_a[12], edge_b[12];
/* Triangles as cube-edge ids; an id 12 + k stands for the centre of loop k of the case (a
 * vertex of its own, for loops no fan can cover without a diagonal lying in a cube face). */
static int8_t case_edges[256][3 * MAX_TRIS];
static int8_t case_count[256];
static int8_t loop_edges[256][MAX_LOOPS][12];
static int8_t loop_len[256][MAX_LOOPS];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void corner_pos(int c, double p[3]) {
    p[0] = c & 1, p[1] = c >> 1 & 1, p[2] = c >> 2 & 1;
}

static int edge_of(int a, int b) {
    for (int e = 0; e < 12; e++)
        if ((edge_a[e] == a && edge_b[e] == b) || (edge_a[e] == b && edge_b[e] == a)) return e;
    return -1;
}

/* 1 when cube edges e and f lie in one face of the cube (all four corners agree on an axis). */
static int same_face(int e, int f) {
    for (int bit = 1; bit <= 4; bit <<= 1) {
        const int v = edge_a[e] & bit;
        if ((edge_b[e] & bit) == v && (edge_a[f] & bit) == v && (edge_b[f] & bit) == v) return 1;
    }
    return 0;
}

static void build_table(void) {
    int n = 0;
    for (int bit = 1; bit <= 4; bit <<= 1)
        for (int a = 0; a < 8; a++)
            if (!(a & bit)) edge_a[n] = (int8_t)a, edge_b[n] = (int8_t)(a | bit), n++;
    /* the faces, corners counter-clockwise seen from outside */
    int face[6][4];
    for (int f = 0; f < 6; f++) {
        const int axis = f / 2, side = f % 2;
        int k = 0, cs[4];
        for (int c = 0; c < 8; c++)
            if ((c >> axis & 1) == side) cs[k++] = c;
        const int ua = side ? (axis + 1) % 3 : (axis + 2) % 3;
        const int va = side ? (axis + 2) % 3 : (axis + 1) % 3;
        double ang[4];
        for (int i = 0; i < 4; i++) {
            double p[3];
            corner_pos(cs[i], p);
            ang[i] = atan2(p[va] - 0.5, p[ua] - 0.5);
        }
        for (int i = 0; i < 4; i++) /* sort by angle */
            for (int j = i + 1; j < 4; j++)
                if (ang[j] < ang[i]) {
                    const double t = ang[i];
                    ang[i] = ang[j], ang[j] = t;
                    const int tc = cs[i];
                    cs[i] = cs[j], cs[j] = tc;
                }
        memcpy(face[f], cs, sizeof cs);
    }
    for (int mask = 0; mask < 256; mask++) {
        int next[12];
        for (int e = 0; e < 12; e++)
            next[e] = -1;
        for (int f = 0; f < 6; f++) {
            int kind[4]; /* per face edge k (corner k -> k+1): 1 exit, -1 entry, 0 none */
            for (int k = 0; k < 4; k++) {
                const int in0 = mask >> face[f][k] & 1, in1 = mask >> face[f][(k + 1) % 4] & 1;
                kind[k] = in0 && !in1 ? 1 : !in0 && in1 ? -1 : 0;
            }
            for (int k = 0; k < 4; k++) {
                if (kind[k] != 1) continue;
                int j = (k + 3) % 4;
                while (kind[j] != -1)
                    j = (j + 3) % 4;
                const int from = edge_of(face[f][k], face[f][(k + 1) % 4]);
                const int to = edge_of(face[f][j], face[f][(j + 1) % 4]);
                next[from] = to;
            }
        }
        int used[12] = {0}, nt = 0, nl = 0;
        for (int e0 = 0; e0 < 12; e0++) {
            if (next[e0] < 0 || used[e0]) continue;
            int loop[12], len = 0;
            for (int e = e0; !used[e] && len < 12; e = next[e]) {
                used[e] = 1;
                loop[len++] = e;
            }
            /* a fan start whose diagonals all cross the cube's inside, else the loop's centre */
            int start = -1;
            for (int st = 0; st < len && start < 0; st++) {
                int ok = 1;
                for (int i = 2; i + 1 < len && ok; i++)
                    ok = !same_face(loop[st], loop[(st + i) % len]);
                if (ok) start = st;
            }
            for (int i = 0; i < len; i++)
                loop_edges[mask][nl][i] = (int8_t)loop[i];
            loop_len[mask][nl] = (int8_t)len;
            for (int i = 0; start >= 0 && i + 2 < len && nt < MAX_TRIS; i++, nt++) {
                case_edges[mask][3 * nt] = (int8_t)loop[start];
                case_edges[mask][3 * nt + 1] = (int8_t)loop[(start + i + 1) % len];
                case_edges[mask][3 * nt + 2] = (int8_t)loop[(start + i + 2) % len];
            }
            for (int i = 0; start < 0 && i < len && nt < MAX_TRIS; i++, nt++) {
                case_edges[mask][3 * nt] = (int8_t)(12 + nl);
                case_edges[mask][3 * nt + 1] = (int8_t)loop[i];
                case_edges[mask][3 * nt + 2] = (int8_t)loop[(i + 1) % len];
            }
            nl++;
        }
        case_count[mask] = (int8_t)nt;
    }
    /* orientation: with only corner 0 inside, the triangle must face away from corner 0 */
    double p[3][3], c0[3] = {0, 0, 0};
    for (int v = 0; v < 3; v++) {
        double pa[3], pb[3];
        const int e = case_edges[1][v];
        corner_pos(edge_a[e], pa);
        corner_pos(edge_b[e], pb);
        for (int a = 0; a < 3; a++)
            p[v][a] = 0.5 * (pa[a] + pb[a]);
    }
    const double u[3] = {p[1][0] - p[0][0], p[1][1] - p[0][1], p[1][2] - p[0][2]};
    const double w[3] = {p[2][0] - p[0][0], p[2][1] - p[0][1], p[2][2] - p[0][2]};
    const double nrm[3] = {u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2],
                           u[0] * w[1] - u[1] * w[0]};
    if (nrm[0] * (p[0][0] - c0[0]) + nrm[1] * (p[0][1] - c0[1]) + nrm[2] * (p[0][2] - c0[2]) < 0)
        for (int m = 0; m < 256; m++)
            for (int t = 0; t < case_count[m]; t++) {
                const int8_t x = case_edges[m][3 * t + 1];
                case_edges[m][3 * t + 1] = case_edges[m][3 * t + 2];
                case_edges[m][3 * t + 2] = x;
            }
}

int nerf_mesh_case(int mask, const int8_t **edges) {
    pthread_once(&table_once, build_table);
    if (mask < 0 || mask > 255) return 0;
    *edges = case_edges[mask];
    return case_count[mask];
}

void nerf_mesh_edge_corners(int edge, int *a, int *b) {
    pthread_once(&table_once, build_table);
    *a = edge >= 0 && edge < 12 ? edge_a[edge] : 0;
    *b = edge >= 0 && edge < 12 ? edge_b[edge] : 0;
}

/* ---- extraction ------------------------------------------------------------------------------ */

void nerf_mesh_params_init(nerf_mesh_params *p) {
    memset(p, 0, sizeof *p);
    for (int a = 0; a < 3; a++)
        p->box_lo[a] = 0.0f, p->box_hi[a] = 1.0f;
    p->res = 256;
    p->iso = 2.5f;
}

void nerf_mesh_free(nerf_mesh *m) {
    if (m == NULL) return;
    free(m->verts);
    free(m->normals);
    free(m->colors);
    free(m->tris);
    memset(m, 0, sizeof *m);
}

typedef struct edge_map { /* open addressing: grid edge id -> vertex index */
    int64_t *keys;
    int32_t *vals;
    int64_t cap;
} edge_map;

static int64_t map_slot(const edge_map *m, int64_t key) {
    uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
    int64_t s = (int64_t)(h >> 17) & (m->cap - 1);
    while (m->keys[s] != -1 && m->keys[s] != key)
        s = (s + 1) & (m->cap - 1);
    return s;
}

typedef struct vbuf {
    float *v, *n;
    int64_t count, cap;
    int32_t *t;
    int64_t nt, tcap;
} vbuf;

static int push_vert(vbuf *b, const float p[3], const float n[3]) {
    if (b->count == b->cap) {
        const int64_t cap = b->cap ? 2 * b->cap : 4096;
        float *v = (float *)realloc(b->v, (size_t)cap * 3 * sizeof *v);
        if (v == NULL) return -1;
        b->v = v;
        float *nn = (float *)realloc(b->n, (size_t)cap * 3 * sizeof *nn);
        if (nn == NULL) return -1;
        b->n = nn;
        b->cap = cap;
    }
    memcpy(b->v + 3 * b->count, p, 3 * sizeof *p);
    memcpy(b->n + 3 * b->count, n, 3 * sizeof *n);
    b->count++;
    return 0;
}

int nerf_mesh_extract(nerf_mesh *out,
                      const nerf_mesh_params *p,
                      nerf_mesh_density_fn density,
                      nerf_mesh_color_fn color,
                      void *user,
                      eng_err *err) {
    int rc = ENG_OK;
    float *grid = NULL, *pos = NULL, *rgb = NULL;
    edge_map map = {NULL, NULL, 0};
    vbuf vb;
    memset(&vb, 0, sizeof vb);
    memset(out, 0, sizeof *out);
    pthread_once(&table_once, build_table);
    int box_ok = 1;
    for (int a = 0; a < 3; a++)
        box_ok &= isfinite(p->box_lo[a]) && isfinite(p->box_hi[a]) && p->box_hi[a] > p->box_lo[a];
    if (p->res < 2 || p->res > NERF_MESH_MAX_RES || !box_ok || !isfinite(p->iso))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_mesh_extract: res %d (2..%d), box and iso %g must be finite and "
                           "the box not empty",
                           p->res, NERF_MESH_MAX_RES, (double)p->iso);
    const int64_t R = p->res, G = R + 1, npts = G * G * G;
    float step[3];
    for (int a = 0; a < 3; a++)
        step[a] = (p->box_hi[a] - p->box_lo[a]) / (float)R;
    grid = (float *)malloc((size_t)npts * sizeof *grid);
    pos = (float *)malloc((size_t)BATCH * 3 * sizeof *pos);
    if (grid == NULL || pos == NULL) goto oom;
    /* 1. the density at every grid point */
    for (int64_t b0 = 0; b0 < npts; b0 += BATCH) {
        const int64_t nb = npts - b0 < BATCH ? npts - b0 : BATCH;
        for (int64_t j = 0; j < nb; j++) {
            const int64_t g = b0 + j;
            const int64_t c[3] = {g % G, (g / G) % G, g / (G * G)};
            for (int a = 0; a < 3; a++)
                pos[3 * j + a] = p->box_lo[a] + (float)c[a] * step[a];
        }
        if ((rc = density(user, grid + b0, pos, nb, err)) != ENG_OK) goto done;
    }
    for (int64_t i = 0; i < npts; i++)
        if (!isfinite(grid[i])) grid[i] = 0.0f;
    /* 2. cubes: vertices on crossing edges (shared), triangles from the table */
    map.cap = 1 << 16;
    map.keys = (int64_t *)malloc((size_t)map.cap * sizeof *map.keys);
    map.vals = (int32_t *)malloc((size_t)map.cap * sizeof *map.vals);
    if (map.keys == NULL || map.vals == NULL) goto oom;
    memset(map.keys, 0xff, (size_t)map.cap * sizeof *map.keys);
    for (int64_t z = 0; z < R; z++)
        for (int64_t y = 0; y < R; y++)
            for (int64_t x = 0; x < R; x++) {
                int mask = 0;
                int64_t gi[8];
                for (int c = 0; c < 8; c++) {
                    gi[c] = ((z + (c >> 2 & 1)) * G + y + (c >> 1 & 1)) * G + x + (c & 1);
                    mask |= (grid[gi[c]] > p->iso) << c;
                }
                const int nt = case_count[mask];
                if (nt == 0) continue;
                int32_t vid[12 + MAX_LOOPS];
                for (int e = 0; e < 12 + MAX_LOOPS; e++)
                    vid[e] = -1;
                for (int k = 0; k < 3 * nt; k++) {
                    const int e = case_edges[mask][k];
                    if (vid[e] >= 0 || e >= 12) continue;
                    const int64_t ga = gi[edge_a[e]], gb = gi[edge_b[e]];
                    const int axis = (edge_b[e] ^ edge_a[e]) == 1   ? 0
                                     : (edge_b[e] ^ edge_a[e]) == 2 ? 1
                                                                    : 2;
                    const int64_t key = ga * 3 + axis;
                    if (2 * vb.count >= map.cap) { /* grow the map */
                        edge_map bigger = {NULL, NULL, map.cap * 2};
                        bigger.keys = (int64_t *)malloc((size_t)bigger.cap * sizeof *bigger.keys);
                        bigger.vals = (int32_t *)malloc((size_t)bigger.cap * sizeof *bigger.vals);
                        if (bigger.keys == NULL || bigger.vals == NULL) {
                            free(bigger.keys), free(bigger.vals);
                            goto oom;
                        }
                        memset(bigger.keys, 0xff, (size_t)bigger.cap * sizeof *bigger.keys);
                        for (int64_t s = 0; s < map.cap; s++)
                            if (map.keys[s] != -1) {
                                const int64_t t = map_slot(&bigger, map.keys[s]);
                                bigger.keys[t] = map.keys[s], bigger.vals[t] = map.vals[s];
                            }
                        free(map.keys), free(map.vals);
                        map = bigger;
                    }
                    const int64_t slot = map_slot(&map, key);
                    if (map.keys[slot] == key) {
                        vid[e] = map.vals[slot];
                        continue;
                    }
                    /* a new vertex: interpolate position and the density gradient */
                    const float va = grid[ga], vbv = grid[gb];
                    const float t = vbv != va ? (p->iso - va) / (vbv - va) : 0.5f;
                    float q[3], nrm[3] = {0, 0, 0};
                    const int64_t ends[2] = {ga, gb};
                    for (int a = 0; a < 3; a++) {
                        const int64_t ca = a == 0 ? ga % G : a == 1 ? (ga / G) % G : ga / (G * G);
                        const int64_t cb = a == 0 ? gb % G : a == 1 ? (gb / G) % G : gb / (G * G);
                        q[a] = p->box_lo[a] + ((float)ca + t * (float)(cb - ca)) * step[a];
                    }
                    for (int w = 0; w < 2; w++) {
                        const int64_t g = ends[w];
                        const int64_t c[3] = {g % G, (g / G) % G, g / (G * G)};
                        const int64_t stride[3] = {1, G, G * G};
                        for (int a = 0; a < 3; a++) {
                            const int64_t lo = c[a] > 0 ? g - stride[a] : g;
                            const int64_t hi = c[a] < R ? g + stride[a] : g;
                            const float d =
                                (grid[hi] - grid[lo]) / ((float)((hi - lo) / stride[a]) * step[a]);
                            nrm[a] += (w == 0 ? 1.0f - t : t) * -d;
                        }
                    }
                    const float len = sqrtf(nrm[0] * nrm[0] + nrm[1] * nrm[1] + nrm[2] * nrm[2]);
                    for (int a = 0; a < 3; a++)
                        nrm[a] = len > 0 ? nrm[a] / len : 0.0f;
                    if (vb.count >= INT32_MAX || push_vert(&vb, q, nrm) != 0) goto oom;
                    map.keys[slot] = key;
                    map.vals[slot] = (int32_t)(vb.count - 1);
                    vid[e] = (int32_t)(vb.count - 1);
                }
                for (int k = 0; k < 3 * nt; k++) { /* loop centres: the mean of the loop */
                    const int e = case_edges[mask][k];
                    if (e < 12 || vid[e] >= 0) continue;
                    const int l = e - 12;
                    float q[3] = {0, 0, 0}, nrm[3] = {0, 0, 0};
                    for (int i = 0; i < loop_len[mask][l]; i++) {
                        const int32_t v = vid[loop_edges[mask][l][i]];
                        for (int a = 0; a < 3; a++)
                            q[a] += vb.v[3 * v + a] / (float)loop_len[mask][l],
                                nrm[a] += vb.n[3 * v + a];
                    }
                    const float len = sqrtf(nrm[0] * nrm[0] + nrm[1] * nrm[1] + nrm[2] * nrm[2]);
                    for (int a = 0; a < 3; a++)
                        nrm[a] = len > 0 ? nrm[a] / len : 0.0f;
                    if (vb.count >= INT32_MAX || push_vert(&vb, q, nrm) != 0) goto oom;
                    vid[e] = (int32_t)(vb.count - 1);
                }
                for (int k = 0; k < nt; k++) {
                    if (vb.nt == vb.tcap) {
                        const int64_t cap = vb.tcap ? 2 * vb.tcap : 4096;
                        int32_t *tt = (int32_t *)realloc(vb.t, (size_t)cap * 3 * sizeof *tt);
                        if (tt == NULL) goto oom;
                        vb.t = tt;
                        vb.tcap = cap;
                    }
                    for (int v = 0; v < 3; v++)
                        vb.t[3 * vb.nt + v] = vid[case_edges[mask][3 * k + v]];
                    vb.nt++;
                }
            }
    /* 3. colours */
    out->colors = (uint8_t *)malloc((size_t)(vb.count > 0 ? vb.count : 1) * 3);
    rgb = (float *)malloc((size_t)BATCH * 3 * sizeof *rgb);
    if (out->colors == NULL || rgb == NULL) goto oom;
    for (int64_t b0 = 0; b0 < vb.count; b0 += BATCH) {
        const int64_t nb = vb.count - b0 < BATCH ? vb.count - b0 : BATCH;
        if (color == NULL) {
            for (int64_t j = 0; j < 3 * nb; j++)
                rgb[j] = 0.7f;
        } else if ((rc = color(user, rgb, vb.v + 3 * b0, vb.n + 3 * b0, nb, err)) != ENG_OK) {
            goto done;
        }
        for (int64_t j = 0; j < 3 * nb; j++) {
            const float c = rgb[j] < 0 ? 0 : rgb[j] > 1 ? 1 : rgb[j];
            out->colors[3 * b0 + j] = (uint8_t)lrintf(c * 255.0f);
        }
    }
    out->n_verts = vb.count;
    out->n_tris = vb.nt;
    out->verts = vb.v;
    out->normals = vb.n;
    out->tris = vb.t;
    memset(&vb, 0, sizeof vb);
    goto done;
oom:
    rc = eng_err_set(err, ENG_E_OOM, "nerf_mesh_extract: out of memory (res %d, %lld vertices)",
                     p->res, (long long)vb.count);
done:
    if (rc != ENG_OK) nerf_mesh_free(out);
    free(vb.v), free(vb.n), free(vb.t);
    free(map.keys), free(map.vals);
    free(grid), free(pos), free(rgb);
    return rc;
}

/* ---- PLY ------------------------------------------------------------------------------------- */

int nerf_mesh_write_ply(const char *path, const nerf_mesh *m, eng_err *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (f == NULL)
        return eng_err_set(err, ENG_E_IO, "nerf_mesh_write_ply: cannot create %s: %s", tmp,
                           strerror(errno));
    int ok = fprintf(f,
                     "ply\nformat binary_little_endian 1.0\ncomment made by the engine's nerf "
                     "mesh\nelement vertex %lld\nproperty float x\nproperty float y\nproperty "
                     "float z\nproperty float nx\nproperty float ny\nproperty float nz\nproperty "
                     "uchar red\nproperty uchar green\nproperty uchar blue\nelement face "
                     "%lld\nproperty list uchar int vertex_indices\nend_header\n",
                     (long long)m->n_verts, (long long)m->n_tris) > 0;
    for (int64_t i = 0; ok && i < m->n_verts; i++) { /* little-endian hosts */
        ok = fwrite(m->verts + 3 * i, 4, 3, f) == 3 && fwrite(m->normals + 3 * i, 4, 3, f) == 3 &&
             fwrite(m->colors + 3 * i, 1, 3, f) == 3;
    }
    for (int64_t i = 0; ok && i < m->n_tris; i++) {
        const uint8_t three = 3;
        ok = fwrite(&three, 1, 1, f) == 1 && fwrite(m->tris + 3 * i, 4, 3, f) == 3;
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        const int e = errno;
        remove(tmp);
        return eng_err_set(err, ENG_E_IO, "nerf_mesh_write_ply: cannot write %s: %s", path,
                           strerror(e));
    }
    return ENG_OK;
}
