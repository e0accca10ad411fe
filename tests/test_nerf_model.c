/* test_nerf_model.c: the NeRF model maths on the CPU: hash encoding (nerf_hashgrid.h), spherical
 * harmonics (nerf_sh.h), MLPs (nerf_mlp.h), the bundled field (nerf_field.h) and Adam
 * (nerf_adam.h). References are written here, independently of the library, in double.
 *
 * grid_levels: the default level table (instant-ngp: 16 levels, 16..2048, T = 2^19): resolutions,
 *   dense/hashed split, sizes, offsets, totals; aabb_scale 4 raises the finest level to 8192.
 * grid_fwd: the forward pass against a naive double reference (own index and hash code), on a
 *   tiny grid with colliding tables and on the default grid, points including the cube's faces,
 *   points outside it and NaN (clamped); 1 and 2 threads; canary after the output.
 * grid_bwd_fd: table gradient against central differences of the library's own forward (exact:
 *   the encoding is linear in the table) on a tiny grid where hash collisions happen.
 * grid_bwd_pos_fd: position gradient against double central differences of the reference; the
 *   encoding is piecewise trilinear, so (as tiny-cuda-nn's tests) 99% of the entries and the mean
 *   error must be within tolerance.
 * sh_values: the 16 values against the real SH built from associated Legendre functions (with
 *   the Condon-Shortley phase) in double, for the axes and random directions.
 * mlp_fwd_bwd_fd: three networks (density: none, colour: sigmoid, trunc_exp): forward against a
 *   double reference; weight and input gradients against double central differences (every
 *   element, 9 rows, leading dimensions wider than the rows); then 2500 rows (three chunks) in one
 *   call give bit for bit what the chunks give called one by one (chunking and reduction).
 * field_fd: the whole field (tiny grid, width 16, aabb_scale 2 with points outside the box)
 *   against a double reference: sigma, rgb, and the gradient of every parameter by central
 *   differences; density-only forward and backward.
 * field_fd_contract: the same with the scene contraction (inner radius 0.4, points from the
 *   centre out to 100 inner radii), the reference contracting in double.
 * determinism: the default field, 3000 points: forward and backward bit-identical between runs
 *   and between 1, 2 and 3 threads (sigma, rgb, every gradient); so is the MLP's and the grid's.
 * adam: nerf_adam against a double reference loop (L2 on matrix weights, sparse non-matrix
 *   entries with their own step counts), 7 steps, 1 and 2 threads.
 * errors: bad configurations and arguments give ENG_E_INVALID_ARG naming the field.
 * speed: forward + backward of the default field on 2^16 points; prints points/s (no assert). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "nerf_adam.h"
#include "nerf_field.h"
#include "nerf_hashgrid.h"
#include "nerf_mlp.h"
#include "nerf_sh.h"

#define PI_D 3.14159265358979323846

/* ---- helpers --------------------------------------------------------------------------------- */

/* A malloc'd float buffer of n with a canary after it (NULL on OOM). */
static float *buf_new(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float) + ENG_TEST_GUARD_BYTES);
    if (p != NULL) {
        memset(p, 0, (size_t)(n > 0 ? n : 1) * sizeof(float));
        eng_test_canary_set(p + (n > 0 ? n : 1), ENG_TEST_GUARD_BYTES);
    }
    return p;
}

static int buf_ok(const float *p, int64_t n) {
    return eng_test_canary_ok(p + (n > 0 ? n : 1), ENG_TEST_GUARD_BYTES);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Element-wise |got - want| <= atol + rtol |want| for every element; prints the worst. */
static int close_all(
    const char *what, const float *got, const double *want, int64_t n, double atol, double rtol) {
    int64_t bad = 0, worst = -1;
    double worst_ex = 0.0, max_abs = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        const double ex = d - (atol + rtol * fabs(want[i]));
        if (d > max_abs) max_abs = d;
        if (!(ex <= 0.0)) {
            bad++;
            if (worst < 0 || ex > worst_ex) {
                worst = i;
                worst_ex = ex;
            }
        }
    }
    if (bad == 0) {
        fprintf(stderr, "%s: %lld values, max abs err %.3g\n", what, (long long)n, max_abs);
        return 1;
    }
    fprintf(stderr,
            "%s: %lld of %lld outside atol %g + rtol %g; worst [%lld] got %.9g want %.9g; max abs "
            "err %.3g (seed %llu)\n",
            what, (long long)bad, (long long)n, atol, rtol, (long long)worst, (double)got[worst],
            want[worst], max_abs, (unsigned long long)eng_test_seed());
    return 0;
}

/* Gradient check: every element within atol + rtol |fd|, atol = frac * max |fd|. Prints the
 * max relative error (relative to max |fd|). */
static int grad_close(
    const char *what, const float *got, const double *fd, int64_t n, double frac, double rtol) {
    double mx = 0.0, max_err = 0.0;
    for (int64_t i = 0; i < n; i++)
        mx = fmax(mx, fabs(fd[i]));
    for (int64_t i = 0; i < n; i++)
        max_err = fmax(max_err, fabs((double)got[i] - fd[i]));
    fprintf(stderr, "%s: %lld gradients, max |fd| %.3g, max err %.3g (%.2e of max)\n", what,
            (long long)n, mx, max_err, mx > 0 ? max_err / mx : 0.0);
    return close_all(what, got, fd, n, frac * (mx > 0 ? mx : 1.0), rtol);
}

/* Random unit direction from Philox (stream, i). */
static void rand_dir(float d[3], uint64_t stream, int64_t i) {
    for (;;) {
        double v[3], r2 = 0.0;
        for (int a = 0; a < 3; a++) {
            v[a] =
                2.0 * eng_philox_uniform_at(eng_test_seed(), stream, (uint64_t)(4 * i + a)) - 1.0;
            r2 += v[a] * v[a];
        }
        if (r2 > 1e-3 && r2 <= 1.0) {
            for (int a = 0; a < 3; a++)
                d[a] = (float)(v[a] / sqrt(r2));
            return;
        }
        stream += 1000003; /* rejected: another draw */
    }
}

/* ---- reference hash grid (double) ------------------------------------------------------------ */

/* Entry of vertex (x, y, z) on level lv, computed without the library's helpers. */
static uint64_t ref_index(const nerf_hashgrid_level *lv, uint64_t x, uint64_t y, uint64_t z) {
    const uint64_t r = lv->resolution;
    if (r * r * r <= lv->size) return (x + y * r + z * r * r) % lv->size;
    const uint32_t h =
        (uint32_t)x ^ (uint32_t)((uint32_t)y * 2654435761u) ^ (uint32_t)((uint32_t)z * 805459861u);
    return (uint64_t)h % lv->size;
}

/* Cell and fraction along one axis; clamps like the library documents. */
static void ref_axis(double x, double scale, uint64_t *cell, double *frac) {
    if (!(x >= 0.0)) x = 0.0;
    if (x > 1.0) x = 1.0;
    const double u = scale * x + 0.5;
    *cell = (uint64_t)floor(u);
    *frac = u - floor(u);
}

/* out (L F) at p (unit cube), table in floats. */
static void
ref_grid_point(const nerf_hashgrid *g, const double p[3], const float *table, double *out) {
    const int F = g->n_features;
    for (int l = 0; l < g->n_levels; l++) {
        const nerf_hashgrid_level *lv = &g->level[l];
        uint64_t cell[3];
        double fr[3];
        for (int a = 0; a < 3; a++)
            ref_axis(p[a], (double)lv->scale, &cell[a], &fr[a]);
        for (int f = 0; f < F; f++)
            out[l * F + f] = 0.0;
        for (int dz = 0; dz < 2; dz++)
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++) {
                    const double w = (dx ? fr[0] : 1 - fr[0]) * (dy ? fr[1] : 1 - fr[1]) *
                                     (dz ? fr[2] : 1 - fr[2]);
                    const uint64_t e = (uint64_t)lv->offset +
                                       ref_index(lv, cell[0] + dx, cell[1] + dy, cell[2] + dz);
                    for (int f = 0; f < F; f++)
                        out[l * F + f] += w * (double)table[e * F + f];
                }
    }
}

/* The tiny grid of the gradient tests: 4 levels, 64-entry tables (collisions on levels 1..3). */
static int tiny_grid(nerf_hashgrid *g, int log2_t, float desired) {
    eng_err err = {0};
    nerf_hashgrid_params gp;
    nerf_hashgrid_params_init(&gp);
    gp.n_levels = 4;
    gp.log2_table_size = log2_t;
    gp.base_resolution = 4;
    gp.desired_resolution = desired;
    CHECK_OK(nerf_hashgrid_init(g, &gp, &err), &err);
    return 0;
}

/* n points in [-0.1, 1.1]^3 with some on the faces, a few outside, one NaN coordinate. */
static void fill_points(float *pos, int64_t n, uint64_t stream) {
    eng_test_fill(pos, 3 * n, stream, -0.1f, 1.1f);
    if (n > 8) {
        pos[0] = 0.0f, pos[1] = 0.0f, pos[2] = 0.0f;
        pos[3] = 1.0f, pos[4] = 1.0f, pos[5] = 1.0f;
        pos[6] = 0.5f, pos[7] = 1.0f, pos[8] = 0.0f;
        pos[9] = NAN;
        pos[13] = -3.0f;
        pos[17] = 7.0f;
    }
}

/* ---- grid tests ------------------------------------------------------------------------------ */

static int test_grid_levels(void) {
    eng_err err = {0};
    nerf_hashgrid_params gp;
    nerf_hashgrid g;
    nerf_hashgrid_params_init(&gp);
    CHECK_OK(nerf_hashgrid_init(&g, &gp, &err), &err);
    CHECK_EQ_I64(g.n_levels, 16);
    CHECK_EQ_I64(g.n_outputs, 32);
    CHECK(fabs(g.per_level_scale - exp(log(128.0) / 15.0)) < 1e-6);
    const uint32_t want_dense_res[5] = {16, 23, 31, 43, 59};
    int64_t entries = 0;
    for (int l = 0; l < 16; l++) {
        const nerf_hashgrid_level *lv = &g.level[l];
        const double scale = 16.0 * pow(128.0, l / 15.0) - 1.0;
        CHECK(fabs(lv->scale - scale) <= 1e-5 * scale);
        CHECK_EQ_I64(lv->resolution, (int64_t)ceil((double)lv->scale) + 1);
        const uint64_t r3 = (uint64_t)lv->resolution * lv->resolution * lv->resolution;
        if (l < 5) {
            CHECK_EQ_I64(lv->resolution, want_dense_res[l]);
            CHECK_EQ_I64(lv->hashed, 0);
            CHECK_EQ_I64(lv->size, (int64_t)((r3 + 7) / 8 * 8));
        } else {
            CHECK_EQ_I64(lv->hashed, 1);
            CHECK_EQ_I64(lv->size, 1 << 19);
        }
        CHECK_EQ_I64(lv->offset, entries);
        entries += lv->size;
    }
    CHECK_EQ_I64(g.level[0].scale, 15);
    CHECK_EQ_I64(g.level[15].resolution, 2048);
    CHECK_EQ_I64(g.n_entries, entries);
    CHECK_EQ_I64(g.n_params, 2 * entries);
    fprintf(stderr, "default grid: %lld entries, %lld floats\n", (long long)g.n_entries,
            (long long)g.n_params);
    CHECK_EQ_I64(g.n_params, 12196240);
    gp.aabb_scale = 4.0f;
    CHECK_OK(nerf_hashgrid_init(&g, &gp, &err), &err);
    CHECK(fabs(g.max_resolution - 8192.0f) < 1e-3f);
    CHECK_EQ_I64(g.level[15].resolution, 8192);
    return 0;
}

/* Library forward vs the reference for n points on grid g with a random table. */
static int grid_fwd_case(const char *what, const nerf_hashgrid *g, int64_t n, eng_stream *s) {
    eng_err err = {0};
    const int64_t nout = g->n_outputs;
    float *table = buf_new(g->n_params), *pos = buf_new(3 * n), *feat = buf_new(n * nout);
    double *want = malloc((size_t)(n * nout) * sizeof(double));
    CHECK(table != NULL && pos != NULL && feat != NULL && want != NULL);
    eng_test_fill(table, g->n_params, 11, -1.0f, 1.0f);
    fill_points(pos, n, 12);
    CHECK_OK(nerf_hashgrid_fwd(g, s, feat, pos, n, table, &err), &err);
    CHECK(buf_ok(feat, n * nout));
    for (int64_t i = 0; i < n; i++) {
        const double p[3] = {pos[3 * i], pos[3 * i + 1], pos[3 * i + 2]};
        ref_grid_point(g, p, table, want + i * nout);
    }
    CHECK(close_all(what, feat, want, n * nout, 1e-6, 1e-5));
    free(table);
    free(pos);
    free(feat);
    free(want);
    return 0;
}

static int test_grid_fwd(void) {
    nerf_hashgrid g;
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    eng_stream *s2 = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    CHECK(tiny_grid(&g, 6, 64.0f) == 0);
    CHECK(g.level[0].hashed == 0 && g.level[1].hashed && g.level[3].hashed);
    CHECK(grid_fwd_case("grid fwd tiny, 1 thread", &g, 257, NULL) == 0);
    CHECK(grid_fwd_case("grid fwd tiny, 2 threads", &g, 5000, s2) == 0);
    eng_err err = {0};
    nerf_hashgrid_params gp;
    nerf_hashgrid_params_init(&gp);
    CHECK_OK(nerf_hashgrid_init(&g, &gp, &err), &err);
    CHECK(grid_fwd_case("grid fwd default, 2 threads", &g, 3001, s2) == 0);
    gp.n_features = 4;
    gp.n_levels = 3;
    gp.aabb_scale = 0.25f;
    gp.desired_resolution = 256.0f;
    CHECK_OK(nerf_hashgrid_init(&g, &gp, &err), &err);
    CHECK(grid_fwd_case("grid fwd F=4", &g, 100, s2) == 0);
    gp.n_levels = 1;
    gp.n_features = 1;
    CHECK_OK(nerf_hashgrid_init(&g, &gp, &err), &err);
    CHECK(grid_fwd_case("grid fwd L=1 F=1", &g, 10, s2) == 0);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_grid_bwd_fd(void) {
    eng_err err = {0};
    nerf_hashgrid g;
    CHECK(tiny_grid(&g, 6, 64.0f) == 0);
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    const int64_t n = 50, nout = g.n_outputs, np = g.n_params;
    float *table = buf_new(np), *pos = buf_new(3 * n), *feat = buf_new(n * nout);
    float *dfeat = buf_new(n * nout), *dtab = buf_new(np);
    double *fd = malloc((size_t)np * sizeof(double));
    CHECK(table && pos && feat && dfeat && dtab && fd);
    eng_test_fill(table, np, 21, -1.0f, 1.0f);
    fill_points(pos, n, 22);
    eng_test_fill(dfeat, n * nout, 23, -1.0f, 1.0f);
    for (int64_t k = 0; k < np; k++)
        dtab[k] = 0.5f; /* accumulates: the result is 0.5 + gradient */
    CHECK_OK(nerf_hashgrid_bwd(&g, s, dtab, pos, n, dfeat, &err), &err);
    CHECK(buf_ok(dtab, np));
    int64_t touched = 0;
    for (int64_t k = 0; k < np; k++) {
        const float saved = table[k], h = 0.25f;
        double lp = 0.0, lm = 0.0;
        table[k] = saved + h;
        CHECK_OK(nerf_hashgrid_fwd(&g, NULL, feat, pos, n, table, &err), &err);
        for (int64_t i = 0; i < n * nout; i++)
            lp += (double)dfeat[i] * feat[i];
        table[k] = saved - h;
        CHECK_OK(nerf_hashgrid_fwd(&g, NULL, feat, pos, n, table, &err), &err);
        for (int64_t i = 0; i < n * nout; i++)
            lm += (double)dfeat[i] * feat[i];
        table[k] = saved;
        fd[k] = (lp - lm) / (2.0 * h) + 0.5;
        touched += fd[k] != 0.5;
        CHECK(buf_ok(feat, n * nout));
    }
    fprintf(stderr, "grid bwd: %lld of %lld table floats touched by %lld points\n",
            (long long)touched, (long long)np, (long long)n);
    CHECK(touched > 100);
    CHECK(grad_close("grid d_table vs FD", dtab, fd, np, 1e-5, 1e-5));
    free(table);
    free(pos);
    free(feat);
    free(dfeat);
    free(dtab);
    free(fd);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_grid_bwd_pos_fd(void) {
    eng_err err = {0};
    nerf_hashgrid g;
    CHECK(tiny_grid(&g, 6, 64.0f) == 0);
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    const int64_t n = 400, nout = g.n_outputs, np = g.n_params;
    float *table = buf_new(np), *pos = buf_new(3 * n), *dfeat = buf_new(n * nout);
    float *dpos = buf_new(3 * n);
    double *fd = malloc((size_t)(3 * n) * sizeof(double)),
           *o = malloc((size_t)nout * sizeof(double));
    CHECK(table && pos && dfeat && dpos && fd && o);
    eng_test_fill(table, np, 31, -1.0f, 1.0f);
    fill_points(pos, n, 32);
    eng_test_fill(dfeat, n * nout, 33, -1.0f, 1.0f);
    CHECK_OK(nerf_hashgrid_bwd_pos(&g, s, dpos, pos, n, dfeat, table, &err), &err);
    CHECK(buf_ok(dpos, 3 * n));
    const double h = 1e-7;
    for (int64_t i = 0; i < n; i++) {
        for (int a = 0; a < 3; a++) {
            double p[3] = {pos[3 * i], pos[3 * i + 1], pos[3 * i + 2]}, l[2];
            const double x = p[a];
            /* inside: central; on the faces the library gives the one-sided derivative from
             * inside the cube; outside (and NaN) 0, the clamp's */
            const double lo = x == 1.0 ? x - h : x, hi = x == 0.0 ? x + h : x;
            const double xm = x > 0.0 && x < 1.0 ? x - h : lo, xp = x > 0.0 && x < 1.0 ? x + h : hi;
            for (int sgn = 0; sgn < 2; sgn++) {
                p[a] = sgn ? xm : xp;
                ref_grid_point(&g, p, table, o);
                l[sgn] = 0.0;
                for (int64_t j = 0; j < nout; j++)
                    l[sgn] += (double)dfeat[i * nout + j] * o[j];
            }
            const int in_cube = x >= 0.0 && x <= 1.0;
            fd[3 * i + a] = in_cube ? (l[0] - l[1]) / (xp - xm) : 0.0;
        }
    }
    /* percentile match: the FD straddles a cell face for a few entries */
    double mx = 0.0, sum_err = 0.0;
    int64_t good = 0;
    for (int64_t k = 0; k < 3 * n; k++)
        mx = fmax(mx, fabs(fd[k]));
    for (int64_t k = 0; k < 3 * n; k++) {
        const double e = fabs((double)dpos[k] - fd[k]);
        sum_err += e / mx;
        good += e <= 1e-5 * mx + 1e-4 * fabs(fd[k]);
    }
    const double frac = (double)good / (double)(3 * n), mean = sum_err / (double)(3 * n);
    fprintf(stderr,
            "grid d_pos vs FD: %lld of %lld within tolerance (%.2f%%), mean err %.2e of max |fd| "
            "%.3g\n",
            (long long)good, (long long)(3 * n), 100.0 * frac, mean, mx);
    CHECK(frac >= 0.99);
    CHECK(mean <= 1e-3);
    free(table);
    free(pos);
    free(dfeat);
    free(dpos);
    free(fd);
    free(o);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- spherical harmonics --------------------------------------------------------------------- */

/* Associated Legendre P_l^m(x), m >= 0, with the Condon-Shortley phase. */
static double legendre(int l, int m, double x) {
    double pmm = 1.0;
    const double sx = sqrt(fmax(0.0, 1.0 - x * x));
    for (int i = 1; i <= m; i++)
        pmm *= -(2.0 * i - 1.0) * sx;
    if (l == m) return pmm;
    double pmm1 = x * (2.0 * m + 1.0) * pmm;
    if (l == m + 1) return pmm1;
    double pll = 0.0;
    for (int ll = m + 2; ll <= l; ll++) {
        pll = ((2.0 * ll - 1.0) * x * pmm1 - (ll + m - 1.0) * pmm) / (ll - m);
        pmm = pmm1;
        pmm1 = pll;
    }
    return pll;
}

static double factorial(int k) {
    double f = 1.0;
    for (int i = 2; i <= k; i++)
        f *= i;
    return f;
}

static double ref_sh(int l, int m, const double d[3]) {
    const double theta = acos(fmax(-1.0, fmin(1.0, d[2]))), phi = atan2(d[1], d[0]);
    const int am = abs(m);
    const double k = sqrt((2.0 * l + 1.0) / (4.0 * PI_D) * factorial(l - am) / factorial(l + am));
    const double p = legendre(l, am, cos(theta));
    if (m == 0) return k * p;
    return sqrt(2.0) * k * p * (m > 0 ? cos(m * phi) : sin(am * phi));
}

static int test_sh_values(void) {
    eng_err err = {0};
    enum { N = 70 };
    float dirs[3 * N], out[N * 20 + 16];
    double want[N * 20];
    const float axes[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
    for (int i = 0; i < N; i++) {
        if (i < 6) {
            memcpy(dirs + 3 * i, axes[i], sizeof axes[i]);
        } else {
            rand_dir(dirs + 3 * i, 41, i);
        }
    }
    /* ld 20: the encoding fills the first 16 columns of each row and leaves the rest */
    for (int i = 0; i < N * 20 + 16; i++)
        out[i] = 777.0f;
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    CHECK_OK(nerf_sh_encode(eng_ctx_stream(ctx, ENG_DEVICE_CPU), out, 20, dirs, N, &err), &err);
    for (int i = 0; i < N; i++) {
        const double d[3] = {dirs[3 * i], dirs[3 * i + 1], dirs[3 * i + 2]};
        for (int l = 0; l < 4; l++)
            for (int m = -l; m <= l; m++)
                want[i * 20 + l * l + l + m] = ref_sh(l, m, d);
        for (int c = 16; c < 20; c++) {
            want[i * 20 + c] = 777.0;
        }
    }
    for (int i = N * 20; i < N * 20 + 16; i++)
        CHECK(out[i] == 777.0f);
    CHECK(close_all("sh vs Legendre", out, want, N * 20, 2e-6, 1e-6));
    /* a value by hand: Y_1^1 at +x is -sqrt(3 / (4 pi)) (the Condon-Shortley sign) */
    CHECK(fabs(out[3] + sqrt(3.0 / (4.0 * PI_D))) < 1e-7);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- MLP reference (double) ------------------------------------------------------------------ */

static double ref_act(nerf_act a, double x) {
    switch (a) {
    case NERF_ACT_RELU: return x > 0 ? x : 0;
    case NERF_ACT_TRUNC_EXP: return exp(x);
    case NERF_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    default: return x;
    }
}

/* y (n, n_output) from x (n, ldx) with double weights. min_pre (may be NULL) is lowered to the
 * smallest |hidden pre-activation| seen: a ReLU input that close to 0 makes finite differences
 * straddle the kink (and f32 may even disagree with double on its sign). */
static void ref_mlp(const nerf_mlp *m,
                    const double *w,
                    const double *x,
                    int64_t ldx,
                    int64_t n,
                    double *y,
                    double *min_pre) {
    double h0[NERF_MLP_MAX_DIM], h1[NERF_MLP_MAX_DIM];
    for (int64_t r = 0; r < n; r++) {
        const double *in = x + r * ldx;
        for (int l = 0; l <= m->n_hidden_layers; l++) {
            const double *wl = w + m->layer_offset[l];
            double *o = (l & 1) ? h1 : h0;
            for (int64_t i = 0; i < m->layer_rows[l]; i++) {
                double acc = 0.0;
                for (int64_t k = 0; k < m->layer_cols[l]; k++)
                    acc += wl[i * m->layer_cols[l] + k] * in[k];
                o[i] = l < m->n_hidden_layers ? (acc > 0 ? acc : 0) : ref_act(m->output_act, acc);
                if (min_pre != NULL && l < m->n_hidden_layers) *min_pre = fmin(*min_pre, fabs(acc));
            }
            in = o;
        }
        for (int64_t o = 0; o < m->n_output; o++)
            y[r * m->n_output + o] = in[o];
    }
}

static double ref_mlp_loss(const nerf_mlp *m,
                           const double *w,
                           const double *x,
                           int64_t ldx,
                           int64_t n,
                           const float *dy,
                           double *y) {
    ref_mlp(m, w, x, ldx, n, y, NULL);
    double l = 0.0;
    for (int64_t i = 0; i < n * m->n_output; i++)
        l += (double)dy[i] * y[i];
    return l;
}

static int mlp_case(const char *what,
                    int64_t nin,
                    int64_t nout,
                    int hidden,
                    nerf_act act,
                    float wscale,
                    eng_stream *s) {
    eng_err err = {0};
    nerf_mlp_params mp;
    nerf_mlp m;
    char name[128];
    nerf_mlp_params_init(&mp);
    mp.n_input = nin;
    mp.n_output = nout;
    mp.n_hidden_layers = hidden;
    mp.output_act = act;
    mp.width = 64;
    CHECK_OK(nerf_mlp_init(&m, &mp, &err), &err);
    const int64_t nw = m.n_weights;
    /* small case: every gradient by FD; rows padded (leading dimensions wider than the rows) */
    {
        const int64_t n = 9, ldx = nin + 2, ldy = nout + 1, ldd = nin + 3;
        float *w = buf_new(nw), *x = buf_new(n * ldx), *y = buf_new(n * ldy);
        float *dy = buf_new(n * ldy), *dyc = buf_new(n * nout), *dw = buf_new(nw);
        float *dx = buf_new(n * ldd), *yc = buf_new(n * nout), *dxc = buf_new(n * nin);
        float *scr = buf_new(nerf_mlp_scratch_floats(&m, n));
        double *wd = malloc((size_t)nw * sizeof(double)),
               *xd = malloc((size_t)(n * ldx) * sizeof(double));
        double *yd = malloc((size_t)(n * nout) * sizeof(double));
        double *fdw = malloc((size_t)nw * sizeof(double)),
               *fdx = malloc((size_t)(n * nin) * sizeof(double));
        CHECK(w && x && y && dy && dyc && dw && dx && yc && dxc && scr && wd && xd && yd && fdw &&
              fdx);
        CHECK_OK(nerf_mlp_init_weights(&m, s, w, 5, 0, &err), &err);
        for (int64_t i = 0; i < nw; i++)
            w[i] *= wscale;
        eng_test_fill(dy, n * ldy, 52, -1.0f, 1.0f);
        for (int64_t i = 0; i < nw; i++)
            wd[i] = w[i];
        /* inputs whose ReLUs all stay 1e-5 away from their kinks (see ref_mlp): 100 times what the
         * FD steps move them */
        double min_pre = 0.0;
        for (uint64_t k = 0; k < 50 && min_pre < 1e-5; k++) {
            eng_test_fill(x, n * ldx, 51 + 1000 * k, -1.0f, 1.0f);
            for (int64_t i = 0; i < n * ldx; i++)
                xd[i] = x[i];
            min_pre = INFINITY;
            ref_mlp(&m, wd, xd, ldx, n, yd, &min_pre);
        }
        CHECK(min_pre >= 1e-5);
        for (int64_t i = 0; i < n * ldd; i++)
            dx[i] = 555.0f;
        CHECK_OK(nerf_mlp_fwd(&m, s, y, ldy, x, ldx, n, w, scr, &err), &err);
        for (int64_t r = 0; r < n; r++)
            for (int64_t o = 0; o < nout; o++) {
                yc[r * nout + o] = y[r * ldy + o];
                dyc[r * nout + o] = dy[r * ldy + o];
            }
        ref_mlp(&m, wd, xd, ldx, n, yd, NULL);
        snprintf(name, sizeof name, "%s fwd", what);
        CHECK(close_all(name, yc, yd, n * nout, 1e-6, 1e-5));
        CHECK_OK(nerf_mlp_bwd(&m, s, dw, dx, ldd, x, ldx, dy, ldy, n, w, scr, &err), &err);
        CHECK(buf_ok(y, n * ldy) && buf_ok(dw, nw) && buf_ok(dx, n * ldd) &&
              buf_ok(scr, nerf_mlp_scratch_floats(&m, n)));
        for (int64_t r = 0; r < n; r++) {
            for (int64_t k = 0; k < nin; k++)
                dxc[r * nin + k] = dx[r * ldd + k];
            for (int64_t k = nin; k < ldd; k++)
                CHECK(dx[r * ldd + k] == 555.0f);
        }
        const double h = 1e-6;
        for (int64_t i = 0; i < nw; i++) {
            const double saved = wd[i];
            wd[i] = saved + h;
            const double lp = ref_mlp_loss(&m, wd, xd, ldx, n, dyc, yd);
            wd[i] = saved - h;
            const double lm = ref_mlp_loss(&m, wd, xd, ldx, n, dyc, yd);
            wd[i] = saved;
            fdw[i] = (lp - lm) / (2 * h);
        }
        for (int64_t r = 0; r < n; r++) {
            for (int64_t k = 0; k < nin; k++) {
                double *xi = &xd[r * ldx + k];
                const double saved = *xi;
                *xi = saved + h;
                const double lp = ref_mlp_loss(&m, wd, xd, ldx, n, dyc, yd);
                *xi = saved - h;
                const double lm = ref_mlp_loss(&m, wd, xd, ldx, n, dyc, yd);
                *xi = saved;
                fdx[r * nin + k] = (lp - lm) / (2 * h);
            }
        }
        snprintf(name, sizeof name, "%s d_w vs FD", what);
        CHECK(grad_close(name, dw, fdw, nw, 1e-5, 1e-4));
        snprintf(name, sizeof name, "%s d_x vs FD", what);
        CHECK(grad_close(name, dxc, fdx, n * nin, 1e-5, 1e-4));
        free(w), free(x), free(y), free(dy), free(dyc), free(dw), free(dx), free(yc), free(dxc);
        free(scr), free(wd), free(xd), free(yd), free(fdw), free(fdx);
    }
    /* three chunks, padded rows: the batch in one call equals its chunks called one by one (bit
     * for bit: each chunk's gradient is summed in order either way), so the chunking and the
     * reduction are checked; the maths is the FD case above */
    {
        const int64_t n = 2500, ldx = nin + 3, ldy = nout + 2, ldd = nin + 1;
        const int64_t chunks = ENG_CEIL_DIV(n, NERF_MLP_CHUNK);
        CHECK_EQ_I64(chunks, 3);
        float *w = buf_new(nw), *x = buf_new(n * ldx), *y = buf_new(n * ldy),
              *y1 = buf_new(n * ldy);
        float *dy = buf_new(n * ldy), *dw = buf_new(nw), *dw1 = buf_new(nw);
        float *dx = buf_new(n * ldd), *dx1 = buf_new(n * ldd);
        float *scr = buf_new(nerf_mlp_scratch_floats(&m, n));
        float *scr1 = buf_new(nerf_mlp_scratch_floats(&m, NERF_MLP_CHUNK));
        CHECK(w && x && y && y1 && dy && dw && dw1 && dx && dx1 && scr && scr1);
        CHECK_OK(nerf_mlp_init_weights(&m, s, w, 6, 0, &err), &err);
        for (int64_t i = 0; i < nw; i++)
            w[i] *= wscale;
        eng_test_fill(x, n * ldx, 61, -1.0f, 1.0f);
        eng_test_fill(dy, n * ldy, 62, -1.0f, 1.0f);
        for (int64_t i = 0; i < n * ldd; i++)
            dx[i] = dx1[i] = 555.0f; /* the padding columns must survive */
        CHECK_OK(nerf_mlp_fwd(&m, s, y, ldy, x, ldx, n, w, scr, &err), &err);
        CHECK_OK(nerf_mlp_bwd(&m, s, dw, dx, ldd, x, ldx, dy, ldy, n, w, scr, &err), &err);
        for (int64_t c = 0; c < chunks; c++) {
            const int64_t r0 = c * NERF_MLP_CHUNK, rows = ENG_MIN(n, r0 + NERF_MLP_CHUNK) - r0;
            CHECK_OK(
                nerf_mlp_fwd(&m, NULL, y1 + r0 * ldy, ldy, x + r0 * ldx, ldx, rows, w, scr1, &err),
                &err);
            CHECK_OK(nerf_mlp_bwd(&m, NULL, dw1, dx1 + r0 * ldd, ldd, x + r0 * ldx, ldx,
                                  dy + r0 * ldy, ldy, rows, w, scr1, &err),
                     &err);
        }
        int same = 1;
        for (int64_t r = 0; r < n; r++) {
            same &= memcmp(y + r * ldy, y1 + r * ldy, (size_t)nout * sizeof(float)) == 0;
            same &= memcmp(dx + r * ldd, dx1 + r * ldd, (size_t)ldd * sizeof(float)) == 0;
            same &= dx[r * ldd + nin] == 555.0f;
        }
        same &= memcmp(dw, dw1, (size_t)nw * sizeof(float)) == 0;
        fprintf(stderr, "%s, %lld rows in %lld chunks: %s the chunk-by-chunk results\n", what,
                (long long)n, (long long)chunks, same ? "bit-identical to" : "DIFFERENT from");
        CHECK(same);
        CHECK(buf_ok(dx, n * ldd) && buf_ok(dw, nw) && buf_ok(y, n * ldy) &&
              buf_ok(scr, nerf_mlp_scratch_floats(&m, n)));
        free(w), free(x), free(y), free(y1), free(dy), free(dw), free(dw1), free(dx), free(dx1);
        free(scr), free(scr1);
    }
    return 0;
}

static int test_mlp_fwd_bwd_fd(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    CHECK(mlp_case("density mlp 32-64-16", 32, 16, 1, NERF_ACT_NONE, 1.0f, s) == 0);
    CHECK(mlp_case("colour mlp 32-64-64-3 sigmoid", 32, 3, 2, NERF_ACT_SIGMOID, 1.0f, s) == 0);
    CHECK(mlp_case("mlp 5-64-64-64-2 trunc_exp", 5, 2, 3, NERF_ACT_TRUNC_EXP, 0.5f, NULL) == 0);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- field reference (double) ---------------------------------------------------------------- */

typedef struct ref_field {
    const nerf_field *f;
    nerf_field_layout lay;
    const nerf_hashgrid *g;
    const nerf_mlp *dm, *cm;
} ref_field;

/* sigma (n), rgb (n, 3) (NULL with dir NULL: density only) with every parameter in double;
 * min_pre as ref_mlp's (may be NULL). */
static void ref_field_fwd(const ref_field *rf,
                          const double *w,
                          const float *pos,
                          const float *dir,
                          int64_t n,
                          double *sigma,
                          double *rgb,
                          double *min_pre) {
    const nerf_hashgrid *g = rf->g;
    const int64_t G = g->n_outputs, geo_n = rf->dm->n_output, C = 16 + geo_n;
    const nerf_field_params *fp = nerf_field_get_params(rf->f);
    const float a = fp->grid.aabb_scale;
    double enc[256], geo[NERF_MLP_MAX_DIM], cin[NERF_MLP_MAX_DIM];
    /* the grid is interpolated here, from the double table (ref_grid_point reads floats) */
    for (int64_t i = 0; i < n; i++) {
        double p[3];
        if (fp->contract) { /* (contract((p - c) / r) + 2) / 4, L-infinity norm */
            double x[3], m = 0;
            for (int c = 0; c < 3; c++) {
                x[c] = ((double)pos[3 * i + c] - 0.5) / fp->inner_radius;
                m = fmax(m, fabs(x[c]));
            }
            const double sc = m <= 1 ? 1.0 : (2.0 - 1.0 / m) / m;
            for (int c = 0; c < 3; c++)
                p[c] = (x[c] * sc + 2.0) / 4.0;
        } else {
            for (int c = 0; c < 3; c++)
                p[c] = ((double)pos[3 * i + c] - (0.5 - 0.5 * a)) / a;
        }
        for (int l = 0; l < g->n_levels; l++) {
            const nerf_hashgrid_level *lv = &g->level[l];
            uint64_t cell[3];
            double fr[3];
            for (int c = 0; c < 3; c++)
                ref_axis(p[c], (double)lv->scale, &cell[c], &fr[c]);
            for (int f = 0; f < g->n_features; f++)
                enc[l * g->n_features + f] = 0.0;
            for (int cz = 0; cz < 8; cz++) {
                const int dx = cz & 1, dy = (cz >> 1) & 1, dz = (cz >> 2) & 1;
                const double wt =
                    (dx ? fr[0] : 1 - fr[0]) * (dy ? fr[1] : 1 - fr[1]) * (dz ? fr[2] : 1 - fr[2]);
                const uint64_t e =
                    (uint64_t)lv->offset + ref_index(lv, cell[0] + dx, cell[1] + dy, cell[2] + dz);
                for (int f = 0; f < g->n_features; f++)
                    enc[l * g->n_features + f] +=
                        wt * w[rf->lay.grid + (int64_t)e * g->n_features + f];
            }
        }
        ref_mlp(rf->dm, w + rf->lay.density, enc, G, 1, geo, min_pre);
        sigma[i] = exp(geo[0]);
        if (rgb == NULL) continue;
        const double d[3] = {dir[3 * i], dir[3 * i + 1], dir[3 * i + 2]};
        for (int l = 0; l < 4; l++)
            for (int m = -l; m <= l; m++)
                cin[l * l + l + m] = ref_sh(l, m, d);
        for (int64_t k = 0; k < geo_n; k++)
            cin[16 + k] = geo[k];
        ref_mlp(rf->cm, w + rf->lay.color, cin, C, 1, rgb + 3 * i, min_pre);
    }
}

static double ref_field_loss(const ref_field *rf,
                             const double *w,
                             const float *pos,
                             const float *dir,
                             int64_t n,
                             const float *ds,
                             const float *drgb,
                             double *sigma,
                             double *rgb) {
    ref_field_fwd(rf, w, pos, drgb != NULL ? dir : NULL, n, sigma, drgb != NULL ? rgb : NULL, NULL);
    double l = 0.0;
    for (int64_t i = 0; i < n; i++) {
        l += (double)ds[i] * sigma[i];
        if (drgb != NULL) {
            for (int c = 0; c < 3; c++)
                l += (double)drgb[3 * i + c] * rgb[3 * i + c];
        }
    }
    return l;
}

static int make_tiny_field(nerf_field **f, eng_ctx *ctx, float aabb_scale, int contract) {
    eng_err err = {0};
    nerf_field_params fp;
    nerf_field_params_init(&fp);
    fp.contract = contract;
    fp.inner_radius = 0.4f;
    fp.grid.n_levels = 4;
    fp.grid.log2_table_size = 8;
    fp.grid.base_resolution = 4;
    fp.grid.desired_resolution = 16.0f;
    fp.grid.aabb_scale = aabb_scale;
    fp.width = 16;
    fp.seed = 99;
    CHECK_OK(nerf_field_create(f, eng_ctx_alloc(ctx, ENG_DEVICE_CPU),
                               eng_ctx_stream(ctx, ENG_DEVICE_CPU), &fp, &err),
             &err);
    return 0;
}

static int field_fd_case(int contract) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    nerf_field *f = NULL;
    CHECK(make_tiny_field(&f, ctx, 2.0f, contract) == 0);
    const nerf_field_layout lay = nerf_field_get_layout(f);
    CHECK_EQ_I64(lay.density, 0);
    CHECK_EQ_I64(lay.color, nerf_field_density_mlp(f)->n_weights);
    CHECK_EQ_I64(lay.n_matrix, lay.grid);
    CHECK_EQ_I64(lay.n_params, lay.grid + nerf_field_grid(f)->n_params);
    const int64_t n = 23, np = lay.n_params;
    float *params = nerf_field_param_tensor(f)->data, *grads = nerf_field_grad_tensor(f)->data;
    /* the init: tables in [-1e-4, 1e-4), MLP weights within Xavier bounds; make the tables larger
     * so the grid matters in the gradients */
    for (int64_t k = lay.grid; k < np; k++) {
        CHECK(params[k] >= -1e-4f && params[k] < 1e-4f);
        params[k] *= 5000.0f;
    }
    for (int64_t k = 0; k < lay.grid; k++)
        CHECK(fabsf(params[k]) <= sqrtf(6.0f / (3 + 16)) + 1e-6f);
    float *pos = buf_new(3 * n), *dir = buf_new(3 * n), *sigma = buf_new(n), *rgb = buf_new(3 * n);
    float *ds = buf_new(n), *drgb = buf_new(3 * n);
    const int64_t nscr = nerf_field_scratch_floats(f, n);
    float *scr = buf_new(nscr);
    double *w = malloc((size_t)np * sizeof(double)), *fd = malloc((size_t)np * sizeof(double));
    double sig_d[64], rgb_d[192];
    CHECK(pos && dir && sigma && rgb && ds && drgb && scr && w && fd);
    eng_test_fill(ds, n, 73, -1.0f, 1.0f);
    eng_test_fill(drgb, 3 * n, 74, -1.0f, 1.0f);
    for (int64_t k = 0; k < np; k++)
        w[k] = params[k];
    ref_field rf = {f, lay, nerf_field_grid(f), nerf_field_density_mlp(f), nerf_field_color_mlp(f)};
    /* points (box [-0.5, 1.5]: a few outside) whose ReLUs stay 1e-5 away from their kinks */
    double min_pre = 0.0;
    for (uint64_t k = 0; k < 50 && min_pre < 1e-5; k++) {
        eng_test_fill(pos, 3 * n, 71 + 1000 * k, -0.7f, 1.7f);
        for (int64_t i = 0; contract && i < n; i++) { /* contracted: out to 100 inner radii */
            const float spread = i % 3 == 0 ? 1.0f : i % 3 == 1 ? 5.0f : 40.0f;
            for (int c = 0; c < 3; c++)
                pos[3 * i + c] = 0.5f + (pos[3 * i + c] - 0.5f) * spread;
        }
        for (int64_t i = 0; i < n; i++)
            rand_dir(dir + 3 * i, 72 + 1000 * k, i);
        min_pre = INFINITY;
        ref_field_fwd(&rf, w, pos, dir, n, sig_d, rgb_d, &min_pre);
    }
    CHECK(min_pre >= 1e-5);

    for (int pass = 0; pass < 2; pass++) { /* 0: colour and density, 1: density only */
        const int color = pass == 0;
        CHECK_OK(
            nerf_field_fwd(f, s, sigma, color ? rgb : NULL, pos, color ? dir : NULL, n, scr, &err),
            &err);
        ref_field_fwd(&rf, w, pos, color ? dir : NULL, n, sig_d, color ? rgb_d : NULL, NULL);
        CHECK(close_all("field sigma", sigma, sig_d, n, 1e-6, 1e-5));
        if (color) CHECK(close_all("field rgb", rgb, rgb_d, 3 * n, 1e-6, 1e-5));
        nerf_field_zero_grads(f, s);
        CHECK_OK(nerf_field_bwd(f, s, ds, color ? drgb : NULL, n, scr, &err), &err);
        CHECK(buf_ok(scr, nscr) && buf_ok(sigma, n) && buf_ok(rgb, 3 * n));
        const double h = 1e-6;
        for (int64_t k = 0; k < np; k++) {
            const double saved = w[k];
            w[k] = saved + h;
            const double lp =
                ref_field_loss(&rf, w, pos, dir, n, ds, color ? drgb : NULL, sig_d, rgb_d);
            w[k] = saved - h;
            const double lm =
                ref_field_loss(&rf, w, pos, dir, n, ds, color ? drgb : NULL, sig_d, rgb_d);
            w[k] = saved;
            fd[k] = (lp - lm) / (2 * h);
        }
        CHECK(grad_close(color ? "field MLP grads vs FD" : "field MLP grads vs FD (density only)",
                         grads, fd, lay.n_matrix, 1e-5, 1e-4));
        CHECK(
            grad_close(color ? "field table grads vs FD" : "field table grads vs FD (density only)",
                       grads + lay.grid, fd + lay.grid, np - lay.grid, 1e-5, 1e-4));
        if (!color) { /* no colour: the colour network gets nothing */
            for (int64_t k = lay.color; k < lay.grid; k++)
                CHECK(grads[k] == 0.0f);
        }
        /* the scratch is consumed: a second backward is refused */
        CHECK(nerf_field_bwd(f, s, ds, NULL, n, scr, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "consumed");
    }
    free(pos), free(dir), free(sigma), free(rgb), free(ds), free(drgb), free(scr), free(w),
        free(fd);
    nerf_field_destroy(f);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_field_fd(void) {
    return field_fd_case(0);
}

static int test_field_fd_contract(void) {
    return field_fd_case(1);
}

/* ---- determinism ----------------------------------------------------------------------------- */

typedef struct field_run {
    float *sigma, *rgb, *grads;
} field_run;

static int run_field(nerf_field *f,
                     eng_stream *s,
                     const float *pos,
                     const float *dir,
                     const float *ds,
                     const float *drgb,
                     int64_t n,
                     float *scr,
                     field_run *out) {
    eng_err err = {0};
    const int64_t np = nerf_field_n_params(f);
    out->sigma = buf_new(n);
    out->rgb = buf_new(3 * n);
    out->grads = buf_new(np);
    CHECK(out->sigma && out->rgb && out->grads);
    CHECK_OK(nerf_field_fwd(f, s, out->sigma, out->rgb, pos, dir, n, scr, &err), &err);
    nerf_field_zero_grads(f, s);
    CHECK_OK(nerf_field_bwd(f, s, ds, drgb, n, scr, &err), &err);
    memcpy(out->grads, nerf_field_grad_tensor(f)->data, (size_t)np * sizeof(float));
    return 0;
}

static int
same_run(const char *what, const field_run *a, const field_run *b, int64_t n, int64_t np) {
    const int ok = memcmp(a->sigma, b->sigma, (size_t)n * sizeof(float)) == 0 &&
                   memcmp(a->rgb, b->rgb, (size_t)(3 * n) * sizeof(float)) == 0 &&
                   memcmp(a->grads, b->grads, (size_t)np * sizeof(float)) == 0;
    if (!ok) fprintf(stderr, "%s: results differ\n", what);
    return ok;
}

static void free_run(field_run *r) {
    free(r->sigma);
    free(r->rgb);
    free(r->grads);
}

static int test_determinism(void) {
    eng_err err = {0};
    eng_ctx *c1 = eng_test_ctx(1), *c2 = eng_test_ctx(2), *c3 = eng_test_ctx(3);
    CHECK(c1 && c2 && c3);
    nerf_field_params fp;
    nerf_field_params_init(&fp);
    nerf_field *f = NULL;
    CHECK_OK(nerf_field_create(&f, eng_ctx_alloc(c2, ENG_DEVICE_CPU),
                               eng_ctx_stream(c2, ENG_DEVICE_CPU), &fp, &err),
             &err);
    /* make the field non-trivial: larger tables */
    const nerf_field_layout lay = nerf_field_get_layout(f);
    float *params = nerf_field_param_tensor(f)->data;
    for (int64_t k = lay.grid; k < lay.n_params; k++)
        params[k] *= 1000.0f;
    const int64_t n = 3000, np = lay.n_params;
    float *pos = buf_new(3 * n), *dir = buf_new(3 * n), *ds = buf_new(n), *drgb = buf_new(3 * n);
    float *scr = buf_new(nerf_field_scratch_floats(f, n));
    CHECK(pos && dir && ds && drgb && scr);
    eng_test_fill(pos, 3 * n, 81, 0.0f, 1.0f);
    for (int64_t i = 0; i < n; i++)
        rand_dir(dir + 3 * i, 82, i);
    eng_test_fill(ds, n, 83, -1.0f, 1.0f);
    eng_test_fill(drgb, 3 * n, 84, -1.0f, 1.0f);
    field_run r2a, r2b, r1, r3;
    CHECK(run_field(f, eng_ctx_stream(c2, ENG_DEVICE_CPU), pos, dir, ds, drgb, n, scr, &r2a) == 0);
    CHECK(run_field(f, eng_ctx_stream(c2, ENG_DEVICE_CPU), pos, dir, ds, drgb, n, scr, &r2b) == 0);
    CHECK(run_field(f, eng_ctx_stream(c1, ENG_DEVICE_CPU), pos, dir, ds, drgb, n, scr, &r1) == 0);
    CHECK(run_field(f, eng_ctx_stream(c3, ENG_DEVICE_CPU), pos, dir, ds, drgb, n, scr, &r3) == 0);
    CHECK(same_run("field, 2 threads twice", &r2a, &r2b, n, np));
    CHECK(same_run("field, 1 vs 2 threads", &r1, &r2a, n, np));
    CHECK(same_run("field, 3 vs 2 threads", &r3, &r2a, n, np));
    int64_t nonzero = 0;
    for (int64_t k = 0; k < np; k++)
        nonzero += r2a.grads[k] != 0.0f;
    fprintf(stderr,
            "determinism: %lld of %lld gradients non-zero, bit-identical for 1, 2, 3 threads\n",
            (long long)nonzero, (long long)np);
    CHECK(nonzero > 10000);
    /* the parts on their own: the MLP's d_w and d_x, the grid's d_table, 1 vs 3 threads */
    {
        const nerf_mlp *cm = nerf_field_color_mlp(f);
        const nerf_hashgrid *g = nerf_field_grid(f);
        const int64_t nw = cm->n_weights, nin = cm->n_input, ns = nerf_mlp_scratch_floats(cm, n);
        float *x = buf_new(n * nin), *y = buf_new(3 * n), *scr2 = buf_new(ns);
        float *dw[2] = {buf_new(nw), buf_new(nw)}, *dx[2] = {buf_new(n * nin), buf_new(n * nin)};
        float *dt[2] = {buf_new(g->n_params), buf_new(g->n_params)}, *df = buf_new(n * 32);
        CHECK(x && y && scr2 && dw[0] && dw[1] && dx[0] && dx[1] && dt[0] && dt[1] && df);
        eng_test_fill(x, n * nin, 85, -1.0f, 1.0f);
        eng_test_fill(df, n * 32, 86, -1.0f, 1.0f);
        for (int k = 0; k < 2; k++) {
            eng_stream *sk = eng_ctx_stream(k == 0 ? c1 : c3, ENG_DEVICE_CPU);
            CHECK_OK(nerf_mlp_fwd(cm, sk, y, 3, x, nin, n, params + lay.color, scr2, &err), &err);
            CHECK_OK(nerf_mlp_bwd(cm, sk, dw[k], dx[k], nin, x, nin, drgb, 3, n, params + lay.color,
                                  scr2, &err),
                     &err);
            CHECK_OK(nerf_hashgrid_bwd(g, sk, dt[k], pos, n, df, &err), &err);
        }
        CHECK(memcmp(dw[0], dw[1], (size_t)nw * sizeof(float)) == 0);
        CHECK(memcmp(dx[0], dx[1], (size_t)(n * nin) * sizeof(float)) == 0);
        CHECK(memcmp(dt[0], dt[1], (size_t)g->n_params * sizeof(float)) == 0);
        free(x), free(y), free(scr2), free(dw[0]), free(dw[1]), free(dx[0]), free(dx[1]);
        free(dt[0]), free(dt[1]), free(df);
    }
    free_run(&r2a), free_run(&r2b), free_run(&r1), free_run(&r3);
    free(pos), free(dir), free(ds), free(drgb), free(scr);
    nerf_field_destroy(f);
    eng_ctx_destroy(c1);
    eng_ctx_destroy(c2);
    eng_ctx_destroy(c3);
    return 0;
}

/* ---- Adam ------------------------------------------------------------------------------------ */

static int test_adam(void) {
    eng_err err = {0};
    enum { NP = 10, NM = 4, STEPS = 7 };
    for (int threads = 1; threads <= 2; threads++) {
        eng_ctx *ctx = eng_test_ctx(threads);
        CHECK(ctx != NULL);
        eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
        nerf_adam_params ap;
        nerf_adam_params_init(&ap);
        CHECK(ap.beta1 == 0.9f && ap.beta2 == 0.99f && ap.epsilon == 1e-15f && ap.l2_reg == 1e-6f);
        ap.n_params = NP;
        ap.n_matrix = NM;
        ap.l2_reg = 1e-2f; /* large enough to see */
        nerf_adam *opt = NULL;
        CHECK_OK(nerf_adam_create(&opt, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &ap, &err), &err);
        float w[NP], g[NP];
        double rw[NP], rm[NP] = {0}, rv[NP] = {0};
        int rt[NP] = {0};
        eng_test_fill(w, NP, 91, -1.0f, 1.0f);
        for (int i = 0; i < NP; i++)
            rw[i] = w[i];
        for (int step = 0; step < STEPS; step++) {
            eng_test_fill(g, NP, 92 + (uint64_t)step, -1.0f, 1.0f);
            /* sparse entries with no gradient on some steps (entry 9 never) */
            for (int i = NM; i < NP; i++)
                if ((i + step) % 3 == 0 || i == 9) g[i] = 0.0f;
            g[1] = 0.0f; /* a matrix weight with zero gradient still moves (L2, momentum) */
            const float lr = 1e-2f * (1.0f + 0.1f * (float)step);
            CHECK_OK(nerf_adam_step(opt, s, w, g, lr, &err), &err);
            for (int i = 0; i < NP; i++) {
                const int matrix = i < NM;
                double gi = g[i];
                if (!matrix && gi == 0.0) continue;
                if (matrix) gi += (double)ap.l2_reg * rw[i];
                rt[i]++;
                rm[i] = 0.9 * rm[i] + 0.1 * gi;
                rv[i] = 0.99 * rv[i] + 0.01 * gi * gi;
                const double corr = sqrt(1.0 - pow(0.99, rt[i])) / (1.0 - pow(0.9, rt[i]));
                rw[i] -= (double)lr * corr * rm[i] / (sqrt(rv[i]) + 1e-15);
            }
        }
        double rwant[NP];
        for (int i = 0; i < NP; i++)
            rwant[i] = rw[i];
        CHECK(close_all("adam vs reference", w, rwant, NP, 1e-6, 1e-5));
        const uint32_t *t = nerf_adam_param_steps(opt)->data;
        for (int i = 0; i < NP; i++)
            CHECK_EQ_I64(t[i], rt[i]);
        CHECK_EQ_I64(t[9], 0);
        CHECK_EQ_I64(t[0], STEPS);
        CHECK_EQ_I64(nerf_adam_step_count(opt), STEPS);
        CHECK(((const float *)nerf_adam_first_moment(opt)->data)[9] == 0.0f);
        CHECK(fabs(((const float *)nerf_adam_second_moment(opt)->data)[0] - rv[0]) < 1e-6);
        /* the state tensors come from the allocator, as state */
        eng_alloc_stats st;
        eng_alloc_get_stats(eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &st);
        CHECK(st.in_use[ENG_LIFE_STATE] >= 3 * NP * sizeof(float));
        nerf_adam_reset(opt, s);
        CHECK_EQ_I64(nerf_adam_step_count(opt), 0);
        CHECK_EQ_I64(t[0], 0);
        CHECK(nerf_adam_step(opt, s, w, g, -1.0f, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "learning rate");
        CHECK(nerf_adam_step(opt, s, w, g, NAN, &err) == ENG_E_INVALID_ARG);
        nerf_adam_destroy(opt);
        eng_ctx_destroy(ctx);
    }
    /* the bias correction saturates to 1 and the table agrees with the formula */
    CHECK(fabsf(nerf_adam_correction(0.9f, 0.99f, 1) - 1.0f) < 1e-6f);
    CHECK(nerf_adam_correction(0.9f, 0.99f, 100000) == 1.0f);
    return 0;
}

/* ---- errors ---------------------------------------------------------------------------------- */

static int test_errors(void) {
    eng_err err = {0};
    nerf_hashgrid_params gp;
    nerf_hashgrid g;
    struct {
        const char *field;
        int which;
    } grid_bad[] = {{"n_levels", 0},        {"n_features", 1}, {"log2_table_size", 2},
                    {"base_resolution", 3}, {"aabb_scale", 4}, {"desired_resolution", 5}};
    for (int k = 0; k < ENG_TEST_N(grid_bad); k++) {
        nerf_hashgrid_params_init(&gp);
        switch (grid_bad[k].which) {
        case 0: gp.n_levels = 0; break;
        case 1: gp.n_features = 3; break;
        case 2: gp.log2_table_size = 25; break;
        case 3: gp.base_resolution = 1; break;
        case 4: gp.aabb_scale = -1.0f; break;
        default: gp.desired_resolution = 4.0f; break;
        }
        CHECK(nerf_hashgrid_init(&g, &gp, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "nerf_hashgrid_init");
        CHECK_CONTAINS(err.msg, grid_bad[k].field);
    }
    nerf_hashgrid_params_init(&gp);
    CHECK_OK(nerf_hashgrid_init(&g, &gp, &err), &err);
    float dummy[64] = {0};
    CHECK(nerf_hashgrid_fwd(&g, NULL, dummy, dummy, -1, dummy, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "n = -1");
    CHECK_OK(nerf_hashgrid_fwd(&g, NULL, NULL, NULL, 0, NULL, &err), &err);
    CHECK(nerf_hashgrid_bwd(&g, NULL, dummy, dummy, -2, dummy, &err) == ENG_E_INVALID_ARG);
    CHECK(nerf_sh_encode(NULL, dummy, 15, dummy, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "ld_out");

    nerf_mlp_params mp;
    nerf_mlp m;
    nerf_mlp_params_init(&mp);
    mp.n_hidden_layers = 0;
    CHECK(nerf_mlp_init(&m, &mp, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "n_hidden_layers");
    nerf_mlp_params_init(&mp);
    mp.width = 0;
    CHECK(nerf_mlp_init(&m, &mp, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "width");
    nerf_mlp_params_init(&mp);
    mp.output_act = NERF_ACT_COUNT;
    CHECK(nerf_mlp_init(&m, &mp, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "output_act");
    nerf_mlp_params_init(&mp);
    CHECK_OK(nerf_mlp_init(&m, &mp, &err), &err);
    CHECK_EQ_I64(m.n_weights, 32 * 64 + 64 * 16);
    CHECK(nerf_mlp_fwd(&m, NULL, dummy, 16, dummy, 31, 1, dummy, dummy, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "ldx");
    CHECK(nerf_mlp_fwd(&m, NULL, dummy, 15, dummy, 32, 1, dummy, dummy, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "ldy");
    CHECK(nerf_mlp_bwd(&m, NULL, dummy, dummy, 8, dummy, 32, dummy, 16, 1, dummy, dummy, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "ld_dx");
    CHECK(nerf_mlp_fwd(&m, NULL, dummy, 16, dummy, 32, -5, dummy, dummy, &err) ==
          ENG_E_INVALID_ARG);

    eng_ctx *ctx = eng_test_ctx(1);
    CHECK(ctx != NULL);
    nerf_field_params fp;
    nerf_field *f = NULL;
    nerf_field_params_init(&fp);
    fp.grid.n_features = 5;
    CHECK(nerf_field_create(&f, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), NULL, &fp, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "n_features");
    CHECK(f == NULL);
    nerf_field_params_init(&fp);
    fp.color_hidden_layers = 99;
    CHECK(nerf_field_create(&f, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), NULL, &fp, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "colour network");
    nerf_field_params_init(&fp);
    fp.contract = 2;
    CHECK(nerf_field_create(&f, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), NULL, &fp, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "contract = 2");
    fp.contract = 1;
    fp.inner_radius = 0;
    CHECK(nerf_field_create(&f, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), NULL, &fp, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "inner_radius");
    CHECK(make_tiny_field(&f, ctx, 1.0f, 0) == 0);
    float *scr = buf_new(nerf_field_scratch_floats(f, 4));
    CHECK(scr != NULL);
    CHECK(nerf_field_fwd(f, NULL, dummy, dummy, dummy, NULL, 4, scr, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "dir");
    CHECK(nerf_field_bwd(f, NULL, dummy, NULL, 4, scr, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "no forward pass");
    CHECK_OK(nerf_field_fwd(f, NULL, dummy, NULL, dummy, NULL, 4, scr, &err), &err);
    CHECK(nerf_field_bwd(f, NULL, dummy, dummy, 4, scr, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "density only");
    CHECK(nerf_field_bwd(f, NULL, dummy, NULL, 3, scr, &err) == ENG_E_INVALID_ARG);
    CHECK(nerf_field_fwd(f, NULL, dummy, NULL, dummy, NULL, -1, scr, &err) == ENG_E_INVALID_ARG);
    free(scr);
    nerf_field_destroy(f);

    nerf_adam_params ap;
    nerf_adam *opt = NULL;
    nerf_adam_params_init(&ap);
    CHECK(nerf_adam_create(&opt, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &ap, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "n_params");
    ap.n_params = 10;
    ap.n_matrix = 11;
    CHECK(nerf_adam_create(&opt, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &ap, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "n_matrix");
    ap.n_matrix = 0;
    ap.beta2 = 1.0f;
    CHECK(nerf_adam_create(&opt, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &ap, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "beta2");
    CHECK(opt == NULL);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- speed smoke ----------------------------------------------------------------------------- */

static int test_speed(void) {
    eng_err err = {0};
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.threads = 2;
    cp.threaded_scheduler = 0;
    CHECK_OK(eng_ctx_params_from_env(&cp, &err), &err); /* ENG_THREADS overrides */
    eng_ctx *ctx = NULL;
    CHECK_OK(eng_ctx_create(&ctx, &cp, &err), &err);
    eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    nerf_field_params fp;
    nerf_field_params_init(&fp);
    nerf_field *f = NULL;
    CHECK_OK(nerf_field_create(&f, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), s, &fp, &err), &err);
    const int64_t n = 1 << 16;
    float *pos = buf_new(3 * n), *dir = buf_new(3 * n), *sigma = buf_new(n), *rgb = buf_new(3 * n);
    float *ds = buf_new(n), *drgb = buf_new(3 * n);
    const int64_t nscr = nerf_field_scratch_floats(f, n);
    float *scr = buf_new(nscr);
    CHECK(pos && dir && sigma && rgb && ds && drgb && scr);
    eng_test_fill(pos, 3 * n, 101, 0.0f, 1.0f);
    for (int64_t i = 0; i < n; i++)
        rand_dir(dir + 3 * i, 102, i);
    eng_test_fill(ds, n, 103, -1.0f, 1.0f);
    eng_test_fill(drgb, 3 * n, 104, -1.0f, 1.0f);
    double t_fwd = 1e30, t_bwd = 1e30;
    for (int rep = 0; rep < 3; rep++) { /* best of 3 (the first warms the pages up) */
        const double t0 = now_s();
        CHECK_OK(nerf_field_fwd(f, s, sigma, rgb, pos, dir, n, scr, &err), &err);
        const double t1 = now_s();
        CHECK_OK(nerf_field_bwd(f, s, ds, drgb, n, scr, &err), &err);
        const double t2 = now_s();
        t_fwd = fmin(t_fwd, t1 - t0);
        t_bwd = fmin(t_bwd, t2 - t1);
    }
    printf("nerf field, %d threads, %lld points (%lld params, scratch %.1f MB): forward %.1f ms "
           "(%.2f M points/s), backward %.1f ms, forward + backward %.2f M points/s\n",
           eng_ctx_threads(ctx), (long long)n, (long long)nerf_field_n_params(f),
           (double)nscr * 4.0 / 1e6, 1e3 * t_fwd, (double)n / t_fwd / 1e6, 1e3 * t_bwd,
           (double)n / (t_fwd + t_bwd) / 1e6);
    free(pos), free(dir), free(sigma), free(rgb), free(ds), free(drgb), free(scr);
    nerf_field_destroy(f);
    eng_ctx_destroy(ctx);
    return 0;
}

static const eng_test_case cases[] = {
    {"grid_levels", test_grid_levels}, {"grid_fwd", test_grid_fwd},
    {"grid_bwd_fd", test_grid_bwd_fd}, {"grid_bwd_pos_fd", test_grid_bwd_pos_fd},
    {"sh_values", test_sh_values},     {"mlp_fwd_bwd_fd", test_mlp_fwd_bwd_fd},
    {"field_fd", test_field_fd},       {"field_fd_contract", test_field_fd_contract},
    {"determinism", test_determinism}, {"adam", test_adam},
    {"errors", test_errors},           {"speed", test_speed},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
