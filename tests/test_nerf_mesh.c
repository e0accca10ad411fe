/* test_nerf_mesh.c: nerf.mesh.* — the derived marching-cubes table (each case cuts exactly its
 * crossing edges; ids 12.. are loop centres), a sphere (vertices on it, outward normals and winding, closed: every edge in
 * two triangles of opposite direction, Euler characteristic 2, the enclosed volume), a random
 * field with every ambiguous case (still closed), the PLY file, bad parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "nerf_mesh.h"

static int test_table(void) {
    for (int mask = 0; mask < 256; mask++) {
        const int8_t *e = NULL;
        const int nt = nerf_mesh_case(mask, &e);
        int used[12] = {0};
        for (int k = 0; k < 3 * nt; k++)
            if (e[k] < 12) used[e[k]] = 1; /* 12 + i: the centre of loop i */
        for (int edge = 0; edge < 12; edge++) {
            int a, b;
            nerf_mesh_edge_corners(edge, &a, &b);
            const int crossing = (mask >> a & 1) != (mask >> b & 1);
            if (used[edge] != crossing) {
                fprintf(stderr, "case %d: edge %d used %d, crossing %d\n", mask, edge, used[edge],
                        crossing);
                return 1;
            }
        }
        if ((mask == 0 || mask == 255) != (nt == 0)) return 1;
    }
    return 0;
}

typedef struct field {
    int kind; /* 0: sphere, 1: random lattice */
    float r;
    uint64_t seed;
} field;

static float lattice(uint64_t seed, int64_t i) {
    uint64_t h = (uint64_t)i * 0x9E3779B97F4A7C15ull ^ seed;
    h ^= h >> 31, h *= 0xBF58476D1CE4E5B9ull, h ^= h >> 29;
    return (float)(h >> 40) / 16777216.0f;
}

static int field_density(void *user, float *sigma, const float *pos, int64_t n, eng_err *err) {
    const field *f = (const field *)user;
    (void)err;
    for (int64_t i = 0; i < n; i++) {
        const float x = pos[3 * i] - 0.5f, y = pos[3 * i + 1] - 0.5f, z = pos[3 * i + 2] - 0.5f;
        if (f->kind == 0) {
            sigma[i] = 2.5f + 10.0f * (f->r - sqrtf(x * x + y * y + z * z));
        } else { /* values at the lattice of a res-16 grid, the border kept outside */
            const int64_t gx = lrintf(pos[3 * i] * 16), gy = lrintf(pos[3 * i + 1] * 16),
                          gz = lrintf(pos[3 * i + 2] * 16);
            const int border = gx == 0 || gy == 0 || gz == 0 || gx == 16 || gy == 16 || gz == 16;
            sigma[i] = border ? 0.0f : 5.0f * lattice(f->seed, (gz * 17 + gy) * 17 + gx);
        }
    }
    return ENG_OK;
}

static int
red(void *user, float *rgb, const float *pos, const float *nrm, int64_t n, eng_err *err) {
    (void)user, (void)pos, (void)nrm, (void)err;
    for (int64_t i = 0; i < n; i++)
        rgb[3 * i] = 1.0f, rgb[3 * i + 1] = 0.0f, rgb[3 * i + 2] = 0.25f;
    return ENG_OK;
}

static int cmp_edge(const void *a, const void *b) {
    const int64_t *x = (const int64_t *)a, *y = (const int64_t *)b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Every undirected edge is in exactly two triangles, once in each direction. Returns the
 * number of undirected edges, or -1. */
static int64_t closed_edges(const nerf_mesh *m) {
    int64_t *e = (int64_t *)malloc((size_t)m->n_tris * 3 * 2 * sizeof *e), n = 0, bad = 0;
    if (e == NULL) return -1;
    for (int64_t t = 0; t < m->n_tris; t++)
        for (int k = 0; k < 3; k++) {
            e[2 * n] = m->tris[3 * t + k];
            e[2 * n + 1] = m->tris[3 * t + (k + 1) % 3];
            n++;
        }
    qsort(e, (size_t)n, 2 * sizeof *e, cmp_edge);
    for (int64_t i = 0; i < n; i++) { /* the reverse of each directed edge exists, once */
        const int64_t key[2] = {e[2 * i + 1], e[2 * i]};
        const int64_t *hit = (const int64_t *)bsearch(key, e, (size_t)n, 2 * sizeof *e, cmp_edge);
        if (hit == NULL) bad++;
        if (i > 0 && e[2 * i] == e[2 * i - 2] && e[2 * i + 1] == e[2 * i - 1]) bad++;
    }
    free(e);
    if (bad) fprintf(stderr, "%lld edge defects\n", (long long)bad);
    return bad ? -1 : n / 2;
}

static int test_sphere(void) {
    eng_err err = {0};
    nerf_mesh m;
    nerf_mesh_params p;
    field f = {0, 0.3f, 0};
    nerf_mesh_params_init(&p);
    p.res = 40;
    CHECK_OK(nerf_mesh_extract(&m, &p, field_density, red, &f, &err), &err);
    CHECK(m.n_tris > 1000);
    double worst_r = 0, vol = 0, worst_n = 1;
    for (int64_t i = 0; i < m.n_verts; i++) {
        const float *v = m.verts + 3 * i, *n = m.normals + 3 * i;
        const double d[3] = {v[0] - 0.5, v[1] - 0.5, v[2] - 0.5};
        const double r = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        worst_r = fmax(worst_r, fabs(r - 0.3));
        worst_n = fmin(worst_n, (d[0] * n[0] + d[1] * n[1] + d[2] * n[2]) / r);
        CHECK(m.colors[3 * i] == 255 && m.colors[3 * i + 1] == 0 && m.colors[3 * i + 2] == 64);
    }
    int64_t inward = 0;
    for (int64_t t = 0; t < m.n_tris; t++) {
        const float *a = m.verts + 3 * m.tris[3 * t], *b = m.verts + 3 * m.tris[3 * t + 1],
                    *c = m.verts + 3 * m.tris[3 * t + 2];
        const double u[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]},
                     w[3] = {c[0] - a[0], c[1] - a[1], c[2] - a[2]};
        const double n[3] = {u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2],
                             u[0] * w[1] - u[1] * w[0]};
        const double ctr[3] = {(a[0] + b[0] + c[0]) / 3 - 0.5, (a[1] + b[1] + c[1]) / 3 - 0.5,
                               (a[2] + b[2] + c[2]) / 3 - 0.5};
        inward += n[0] * ctr[0] + n[1] * ctr[1] + n[2] * ctr[2] < 0;
        /* divergence theorem: V = sum over triangles of (a . (b x c)) / 6 */
        vol += ((a[0] - 0.5) * ((b[1] - 0.5) * (c[2] - 0.5) - (b[2] - 0.5) * (c[1] - 0.5)) -
                (a[1] - 0.5) * ((b[0] - 0.5) * (c[2] - 0.5) - (b[2] - 0.5) * (c[0] - 0.5)) +
                (a[2] - 0.5) * ((b[0] - 0.5) * (c[1] - 0.5) - (b[1] - 0.5) * (c[0] - 0.5))) /
               6.0;
    }
    const int64_t edges = closed_edges(&m);
    const double want = 4.0 / 3.0 * 3.14159265358979323846 * 0.027;
    fprintf(stderr,
            "nerf.mesh.sphere: %lld vertices, %lld triangles, radius error %.2g, worst normal "
            "cosine %.3f, volume %.5f (sphere %.5f), %lld inward triangles, Euler %lld\n",
            (long long)m.n_verts, (long long)m.n_tris, worst_r, worst_n, vol, want,
            (long long)inward, (long long)(m.n_verts - edges + m.n_tris));
    CHECK(worst_r < 2e-3 && worst_n > 0.95 && inward == 0);
    CHECK(edges > 0 && m.n_verts - edges + m.n_tris == 2);
    CHECK(fabs(vol - want) / want < 0.02);
    char path[600];
    snprintf(path, sizeof path, "%s/sphere.ply", eng_test_tmpdir());
    CHECK_OK(nerf_mesh_write_ply(path, &m, &err), &err);
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL);
    char head[64] = {0};
    CHECK(fread(head, 1, 10, fp) == 10);
    fseek(fp, 0, SEEK_END);
    const long size = ftell(fp);
    fclose(fp);
    CHECK(strncmp(head, "ply\nformat", 10) == 0);
    CHECK(size > (long)(m.n_verts * 27 + m.n_tris * 13));
    CHECK_EQ_I64(nerf_mesh_write_ply("/nonexistent-dir/x.ply", &m, &err), ENG_E_IO);
    nerf_mesh_free(&m);
    return 0;
}

/* Random corner values on the grid itself (every case, ambiguous faces included): closed. */
static int test_random_closed(void) {
    eng_err err = {0};
    nerf_mesh_params p;
    nerf_mesh_params_init(&p);
    p.res = 16;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        nerf_mesh m;
        field f = {1, 0, seed};
        CHECK_OK(nerf_mesh_extract(&m, &p, field_density, NULL, &f, &err), &err);
        const int64_t edges = closed_edges(&m);
        fprintf(stderr, "seed %llu: %lld triangles, %lld edges\n", (unsigned long long)seed,
                (long long)m.n_tris, (long long)edges);
        CHECK(m.n_tris > 100 && edges > 0);
        nerf_mesh_free(&m);
    }
    p.res = 1;
    nerf_mesh m;
    field f = {0, 0.3f, 0};
    CHECK_EQ_I64(nerf_mesh_extract(&m, &p, field_density, NULL, &f, &err), ENG_E_INVALID_ARG);
    p.res = 8;
    p.iso = 1000; /* nothing above: an empty mesh */
    CHECK_OK(nerf_mesh_extract(&m, &p, field_density, NULL, &f, &err), &err);
    CHECK(m.n_tris == 0 && m.n_verts == 0);
    nerf_mesh_free(&m);
    return 0;
}

static const eng_test_case cases[] = {
    {"table", test_table},
    {"sphere", test_sphere},
    {"random_closed", test_random_closed},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
