/* test_nerf_render.c: nerf.render.* and nerf.occgrid.* — ray/box intersection, marching with and
 * without an occupancy grid (samples on the ray, only in occupied cells, nothing occupied
 * skipped), compositing against a double-precision loop, its backward pass against finite
 * differences, early termination, and the occupancy grid's update from a density function
 * (a ball: the occupied fraction, decay, threshold, bad parameters). The scene contraction
 * (nerf.render.contract_math: against a double reference, identity inside, continuity, monotone
 * along rays, range, far points on the boundary, the inverse, cells, steps), contracted marching
 * (nerf.render.march_contract: reaches the far field in a bounded number of increasing samples,
 * skips empty contracted cells) and the contracted grid's update (nerf.occgrid.contract). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "nerf_contract_math.h"
#include "nerf_occgrid.h"
#include "nerf_render.h"
#include "nerf_render_math.h"

static double urand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

static void unit(float d[3]) {
    const float n = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    d[0] /= n, d[1] /= n, d[2] /= n;
}

static int test_ray_box(void) {
    const float lo[3] = {0, 0, 0}, hi[3] = {1, 1, 1};
    float t0, t1;
    const float o[3] = {-1, 0.5f, 0.5f}, d[3] = {1, 0, 0};
    CHECK(nerf_ray_box(o, d, lo, hi, &t0, &t1));
    CHECK(fabsf(t0 - 1) < 1e-6f && fabsf(t1 - 2) < 1e-6f);
    const float o2[3] = {0.5f, 0.5f, 0.5f}; /* inside: entry clamped at 0 */
    CHECK(nerf_ray_box(o2, d, lo, hi, &t0, &t1));
    CHECK(t0 == 0 && fabsf(t1 - 0.5f) < 1e-6f);
    const float o3[3] = {-1, 2, 0.5f}; /* misses */
    CHECK(!nerf_ray_box(o3, d, lo, hi, &t0, &t1));
    const float d2[3] = {-1, 0, 0}; /* box behind */
    CHECK(!nerf_ray_box(o, d2, lo, hi, &t0, &t1));
    /* cascades and cells */
    const float c[3] = {0.5f, 0.5f, 0.5f}, far[3] = {1.6f, 0.5f, 0.5f};
    CHECK_EQ_I64(nerf_cascade_of(c, 4), 0);
    CHECK_EQ_I64(nerf_cascade_of(far, 4), 2); /* |1.1| > 1 -> cascade 2 (side 4) */
    CHECK_EQ_I64(nerf_cascade_of(far, 2), 2); /* outside every cascade */
    CHECK_EQ_I64(nerf_cell_of(c, 0, 4), (2 * 4 + 2) * 4 + 2);
    return 0;
}

/* Without a grid: uniform steps of dt_min from the box entry, every sample on its ray. */
static int test_march_uniform(void) {
    eng_err err = {0};
    nerf_march_params mp;
    nerf_samples s = {0};
    nerf_march_params_init(&mp, 1.0f);
    mp.dt_min = mp.dt_max = 0.01f;
    float o[6] = {-1, 0.5f, 0.5f, 0.5f, 0.5f, 2}, d[6] = {1, 0, 0, 0, 0, -1};
    CHECK_OK(nerf_march(&s, NULL, &mp, 2, o, d, NULL, &err), &err);
    CHECK_EQ_I64(s.n_rays, 2);
    CHECK(s.start[1] >= 99 && s.start[1] <= 101); /* 1 / 0.01 steps through the unit box */
    CHECK(s.n - s.start[1] >= 99 && s.n - s.start[1] <= 101);
    for (int64_t i = 0; i < s.n; i++) {
        const int r = i >= s.start[1];
        for (int a = 0; a < 3; a++)
            CHECK(fabsf(s.pos[3 * i + a] - (o[3 * r + a] + s.t[i] * d[3 * r + a])) < 1e-5f);
        CHECK(s.dt[i] == 0.01f);
        CHECK(s.pos[3 * i] >= 0 && s.pos[3 * i] <= 1);
    }
    mp.max_samples = 10;
    CHECK_OK(nerf_march(&s, NULL, &mp, 2, o, d, NULL, &err), &err);
    CHECK_EQ_I64(s.n, 20);
    mp.dt_min = 0;
    CHECK_EQ_I64(nerf_march(&s, NULL, &mp, 2, o, d, NULL, &err), ENG_E_INVALID_ARG);
    nerf_samples_free(&s);
    return 0;
}

/* With a grid occupied only in a ball: every sample lies in an occupied cell, and each ray
 * through the ball gets about as many samples as a brute-force march keeps there. */
static int test_march_grid(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    nerf_occgrid *g = NULL;
    nerf_occgrid_params gp;
    nerf_march_params mp;
    nerf_samples s = {0}, b = {0};
    uint64_t rng = 7;
    CHECK(ctx != NULL);
    nerf_occgrid_params_init(&gp);
    gp.res = 32;
    CHECK_OK(nerf_occgrid_create(&g, &gp, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err), &err);
    float *v = nerf_occgrid_values(g);
    for (int64_t z = 0; z < 32; z++)
        for (int64_t y = 0; y < 32; y++)
            for (int64_t x = 0; x < 32; x++) {
                const double cx = (x + 0.5) / 32 - 0.5, cy = (y + 0.5) / 32 - 0.5,
                             cz = (z + 0.5) / 32 - 0.5;
                v[(z * 32 + y) * 32 + x] = cx * cx + cy * cy + cz * cz < 0.2 * 0.2 ? 1.0f : 0.0f;
            }
    nerf_occgrid_refresh(g);
    const double occ = nerf_occgrid_occupancy(g, 0);
    CHECK(occ > 0.02 && occ < 0.05); /* 4/3 pi 0.2^3 = 0.0335 */
    enum { R = 256 };
    float o[3 * R], d[3 * R];
    for (int r = 0; r < R; r++) {
        d[3 * r] = (float)(urand(&rng) - 0.5), d[3 * r + 1] = (float)(urand(&rng) - 0.5);
        d[3 * r + 2] = (float)(urand(&rng) - 0.5);
        unit(d + 3 * r);
        for (int a = 0; a < 3; a++) /* from 1.5 away, aimed near the centre */
            o[3 * r + a] = 0.5f - 1.5f * d[3 * r + a] + (float)(urand(&rng) - 0.5) * 0.3f;
    }
    nerf_march_params_init(&mp, 1.0f);
    CHECK_OK(nerf_march(&s, g, &mp, R, o, d, eng_ctx_pool(ctx), &err), &err);
    CHECK_OK(nerf_march(&b, NULL, &mp, R, o, d, NULL, &err), &err);
    for (int64_t i = 0; i < s.n; i++)
        CHECK(nerf_occgrid_occupied_at(g, s.pos + 3 * i));
    int64_t kept_brute = 0, worst = 0;
    for (int r = 0; r < R; r++) {
        int64_t nb = 0;
        for (int64_t i = b.start[r]; i < b.start[r + 1]; i++)
            nb += nerf_occgrid_occupied_at(g, b.pos + 3 * i);
        kept_brute += nb;
        const int64_t diff = llabs(nb - (s.start[r + 1] - s.start[r]));
        worst = diff > worst ? diff : worst;
    }
    fprintf(stderr,
            "nerf.render.march_grid: %lld samples (brute force keeps %lld of %lld), "
            "worst per-ray difference %lld\n",
            (long long)s.n, (long long)kept_brute, (long long)b.n, (long long)worst);
    CHECK(kept_brute > 0 && s.n > kept_brute * 9 / 10 && s.n < kept_brute * 11 / 10);
    CHECK(worst <= 4);
    nerf_samples_free(&s);
    nerf_samples_free(&b);
    nerf_occgrid_destroy(g);
    eng_ctx_destroy(ctx);
    return 0;
}

/* Skipping empty 8^3 blocks at once (coarse_skip, as rendering marches) keeps the samples of
 * cell-by-cell marching; the coarse level follows refresh, goes stale when the bytes are handed
 * out and comes back with nerf_occgrid_rebuild_coarse. */
static int test_march_coarse(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    nerf_occgrid *g = NULL;
    nerf_occgrid_params gp;
    nerf_march_params mp;
    nerf_samples a = {0}, b = {0};
    uint64_t rng = 11;
    CHECK(ctx != NULL);
    nerf_occgrid_params_init(&gp);
    gp.res = 64;
    CHECK_OK(nerf_occgrid_create(&g, &gp, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err), &err);
    CHECK_EQ_I64(nerf_occgrid_coarse_res(g), 8);
    float *v = nerf_occgrid_values(g);
    for (int64_t i = 0; i < 64 * 64 * 64; i++) { /* a sphere and a few scattered cells */
        const int64_t x = i % 64, y = (i / 64) % 64, z = i / 4096;
        const double cx = (x + 0.5) / 64 - 0.5, cy = (y + 0.5) / 64 - 0.5,
                     cz = (z + 0.5) / 64 - 0.5;
        v[i] = cx * cx + cy * cy + cz * cz < 0.15 * 0.15 || urand(&rng) < 0.002 ? 1.0f : 0.0f;
    }
    nerf_occgrid_refresh(g);
    enum { R = 512 };
    float o[3 * R], d[3 * R];
    for (int r = 0; r < R; r++) {
        for (int k = 0; k < 3; k++)
            d[3 * r + k] = (float)(urand(&rng) - 0.5);
        unit(d + 3 * r);
        for (int k = 0; k < 3; k++)
            o[3 * r + k] = 0.5f - 1.5f * d[3 * r + k] + (float)(urand(&rng) - 0.5) * 0.6f;
    }
    nerf_march_params_init(&mp, 1.0f);
    CHECK_OK(nerf_march(&a, g, &mp, R, o, d, eng_ctx_pool(ctx), &err), &err);
    mp.coarse_skip = 1;
    CHECK_OK(nerf_march(&b, g, &mp, R, o, d, eng_ctx_pool(ctx), &err), &err);
    int64_t worst = 0, same = 0;
    double dt_worst = 0;
    for (int r = 0; r < R; r++) {
        const int64_t na = a.start[r + 1] - a.start[r], nb = b.start[r + 1] - b.start[r];
        worst = llabs(na - nb) > worst ? llabs(na - nb) : worst;
        if (na != nb) continue;
        same++;
        for (int64_t i = 0; i < na; i++)
            dt_worst = fmax(dt_worst, fabs((double)a.t[a.start[r] + i] - b.t[b.start[r] + i]));
    }
    fprintf(stderr,
            "nerf.render.march_coarse: %lld vs %lld samples; %lld of %d rays alike (t within "
            "%.2g), worst count difference %lld\n",
            (long long)a.n, (long long)b.n, (long long)same, R, dt_worst, (long long)worst);
    CHECK(a.n > 1000 && llabs(a.n - b.n) <= a.n / 100);
    CHECK(same >= R * 95 / 100 && dt_worst < 1e-3 && worst <= 2);
    for (int64_t i = 0; i < b.n; i++)
        CHECK(nerf_occgrid_occupied_at(g, b.pos + 3 * i));
    /* bytes written by hand: stale until rebuilt, and never skipping what they mark */
    uint8_t *bits = nerf_occgrid_bits(g);
    CHECK_EQ_I64(nerf_occgrid_coarse_res(g), 0);
    memset(bits, 0, 64 * 64 * 64);
    bits[(40 * 64 + 40) * 64 + 40] = 1; /* one cell in an otherwise empty block */
    nerf_occgrid_rebuild_coarse(g);
    CHECK_EQ_I64(nerf_occgrid_coarse_res(g), 8);
    const float oc[3] = {0.5f, 0.5f, 0.5f};
    float dc[3] = {1, 1, 1};
    unit(dc); /* through the cell's centre ((40.5 / 64) on each axis) from the middle */
    CHECK_OK(nerf_march(&b, g, &mp, 1, oc, dc, NULL, &err), &err);
    CHECK(b.n > 0);
    nerf_samples_free(&a);
    nerf_samples_free(&b);
    nerf_occgrid_destroy(g);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- the contraction ------------------------------------------------------------------------- */

/* unit = (contract((p - c) / r) + 2) / 4 in double, with the L-infinity norm (the spec). */
static void ref_contract_unit(const double p[3], double r, double u[3]) {
    double x[3], m = 0;
    for (int a = 0; a < 3; a++) {
        x[a] = (p[a] - 0.5) / r;
        m = fmax(m, fabs(x[a]));
    }
    const double s = m <= 1 ? 1.0 : (2.0 - 1.0 / m) / m;
    for (int a = 0; a < 3; a++)
        u[a] = (x[a] * s + 2.0) / 4.0;
}

static double linf_from_unit(const float u[3]) { /* ||contract(x)||_inf from unit */
    double m = 0;
    for (int a = 0; a < 3; a++)
        m = fmax(m, fabs(4.0 * u[a] - 2.0));
    return m;
}

static int test_contract_math(void) {
    uint64_t rng = 31;
    const float radii[2] = {0.5f, 0.3f};
    double worst_ref = 0, worst_inv = 0;
    for (int ri = 0; ri < 2; ri++) {
        const float r = radii[ri];
        /* against the double reference at distances from 1e-3 to 1e6 inner radii, and the
         * range: always in [0, 1]^3; in [1/4, 3/4]^3 exactly for the inner cube */
        for (int i = 0; i < 20000; i++) {
            float d[3] = {(float)(urand(&rng) - 0.5), (float)(urand(&rng) - 0.5),
                          (float)(urand(&rng) - 0.5)};
            unit(d);
            const double dist = r * pow(10.0, -3.0 + 9.0 * urand(&rng));
            float p[3], u[3];
            double pd[3], ud[3];
            for (int a = 0; a < 3; a++) {
                p[a] = (float)(0.5 + dist * d[a]);
                pd[a] = p[a];
            }
            nerf_contract_unit(p, r, u);
            ref_contract_unit(pd, r, ud);
            for (int a = 0; a < 3; a++) {
                worst_ref = fmax(worst_ref, fabs(u[a] - ud[a]));
                CHECK(u[a] >= 0.0f && u[a] <= 1.0f);
            }
            const int inside = nerf_contract_norm(p, r) <= 1.0f;
            CHECK(inside == (linf_from_unit(u) <= 1.0 + 1e-6));
            /* the inverse */
            float back[3], u2[3];
            nerf_uncontract_unit(u, r, back);
            nerf_contract_unit(back, r, u2);
            if (linf_from_unit(u) < NERF_CONTRACT_MAX_NORM) { /* beyond it: pulled in */
                for (int a = 0; a < 3; a++)
                    worst_inv = fmax(worst_inv, fabs(u2[a] - u[a]));
            }
            if (dist < 100 * r) { /* back to the same point (relative to its distance) */
                for (int a = 0; a < 3; a++)
                    CHECK(fabs(back[a] - p[a]) <= 1e-4 * fmax(dist, r));
            }
            /* the cell is floor(res u) */
            const int64_t cell = nerf_contract_cell(p, r, 16);
            CHECK(cell >= 0 && cell < 16 * 16 * 16);
            const int64_t cx = (int64_t)fmin(15, floor(u[0] * 16.0)),
                          cy = (int64_t)fmin(15, floor(u[1] * 16.0)),
                          cz = (int64_t)fmin(15, floor(u[2] * 16.0));
            CHECK_EQ_I64(cell, (cz * 16 + cy) * 16 + cx);
        }
        /* identity inside: contract(x) == x bit for bit */
        for (int i = 0; i < 1000; i++) {
            float x[3], y[3];
            for (int a = 0; a < 3; a++)
                x[a] = (float)(2.0 * urand(&rng) - 1.0);
            nerf_contract(x, y);
            CHECK(x[0] == y[0] && x[1] == y[1] && x[2] == y[2]);
        }
        /* continuous at the boundary m = 1: a step of eps across moves the result by ~eps */
        for (int i = 0; i < 1000; i++) {
            float x[3], xo[3], y[3], yo[3];
            for (int a = 0; a < 3; a++)
                x[a] = (float)(2.0 * urand(&rng) - 1.0);
            const int ax = (int)(urand(&rng) * 3) % 3;
            x[ax] = x[ax] < 0 ? -1.0f : 1.0f;
            for (int a = 0; a < 3; a++)
                xo[a] = x[a] * (1.0f + 1e-4f);
            nerf_contract(x, y);
            nerf_contract(xo, yo);
            for (int a = 0; a < 3; a++)
                CHECK(fabsf(yo[a] - y[a]) <= 2e-4f * fabsf(x[a]) + 1e-7f);
        }
        /* along any ray the contracted norm falls, then rises (m(t) is convex; 2 - 1/m grows),
         * and radially it only rises, the point keeping its direction */
        for (int i = 0; i < 300; i++) {
            float o[3], d[3] = {(float)(urand(&rng) - 0.5), (float)(urand(&rng) - 0.5),
                                (float)(urand(&rng) - 0.5)};
            unit(d);
            const int radial = i % 3 == 0;
            for (int a = 0; a < 3; a++)
                o[a] = radial ? 0.5f : (float)(0.5 + 3.0 * (urand(&rng) - 0.5));
            double prev = -1;
            int rising = 0;
            for (double t = 1e-3; t < 1e5; t *= 1.01) {
                const float q[3] = {o[0] + (float)t * d[0], o[1] + (float)t * d[1],
                                    o[2] + (float)t * d[2]};
                float u[3];
                nerf_contract_unit(q, r, u);
                const double m = linf_from_unit(u);
                if (prev >= 0 && m > prev + 1e-6) rising = 1;
                if (rising || radial) CHECK(m >= prev - 1e-6);
                if (radial) { /* same direction as d */
                    const double y[3] = {4.0 * u[0] - 2.0, 4.0 * u[1] - 2.0, 4.0 * u[2] - 2.0};
                    const double ny = sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]);
                    for (int a = 0; a < 3; a++)
                        CHECK(fabs(y[a] / ny - d[a]) < 1e-3);
                }
                prev = m;
            }
            /* far away: on the boundary of the unit cube */
            CHECK(prev > 2.0 - 1e-4);
        }
        /* infinitely far points and huge ones land on the boundary */
        const float huge[3] = {1e30f, -3e29f, 0.5f}, inf[3] = {INFINITY, 0.5f, -INFINITY};
        float u[3];
        nerf_contract_unit(huge, r, u);
        CHECK(fabsf(u[0] - 1.0f) < 1e-6f && u[1] >= 0 && u[1] <= 1 && fabsf(u[2] - 0.5f) < 1e-6f);
        nerf_contract_unit(inf, r, u);
        CHECK(u[0] == 1.0f && u[1] == 0.5f && u[2] == 0.0f);
        /* the corners of the unit cube map back to finite points */
        const float corner[3] = {0, 1, 0};
        float back[3];
        nerf_uncontract_unit(corner, r, back);
        CHECK(isfinite(back[0]) && isfinite(back[1]) && isfinite(back[2]) && back[0] < -1000);
        /* steps: nerf_step inside, at least contract_step r m^2 outside */
        const float in[3] = {0.5f, 0.5f + 0.9f * r, 0.5f}, out[3] = {0.5f + 10 * r, 0.5f, 0.5f};
        CHECK(nerf_step_contract(in, 1.0f, 1.0f / 256, 1e-3f, 1.0f, r, 1.0f / 256) ==
              nerf_step(1.0f, 1.0f / 256, 1e-3f, 1.0f));
        CHECK(fabsf(nerf_step_contract(out, 1.0f, 1.0f / 256, 1e-3f, 1.0f, r, 1.0f / 256) -
                    r * 100.0f / 256.0f) < 1e-5f);
    }
    fprintf(stderr,
            "nerf.render.contract_math: worst |unit - double reference| %.3g, |contract(uncontract"
            "(u)) - u| %.3g\n",
            worst_ref, worst_inv);
    CHECK(worst_ref < 1e-6);
    CHECK(worst_inv < 1e-5);
    return 0;
}

/* Contracted marching without a grid: from cameras 1.3 away, the samples of each ray lie on it
 * in increasing t, their steps follow nerf_step_contract, they reach the far field, and their
 * number stays bounded; with a grid (a ball in the foreground and a far shell), every sample is
 * in an occupied cell and about as many are kept as a brute-force march keeps there. */
static int test_march_contract(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(2);
    nerf_march_params mp;
    nerf_samples s = {0}, b = {0};
    uint64_t rng = 17;
    CHECK(ctx != NULL);
    enum { R = 256 };
    float o[3 * R], d[3 * R];
    for (int r = 0; r < R; r++) {
        float e[3] = {(float)(urand(&rng) - 0.5), (float)(urand(&rng) - 0.5),
                      (float)(urand(&rng) - 0.5)};
        unit(e);
        for (int a = 0; a < 3; a++) {
            o[3 * r + a] = 0.5f + 1.3f * e[a];
            d[3 * r + a] = (float)(urand(&rng) - 0.5) - (r % 2 ? 0.8f * e[a] : 0.0f);
        }
        unit(d + 3 * r); /* odd rays look roughly at the centre, even ones anywhere */
    }
    const float ri = 0.5f, far = 32.0f;
    nerf_march_params_init_contract(&mp, ri, far);
    CHECK(mp.contract == 1 && mp.box_hi[0] == 0.5f + far && mp.cone_angle == 1.0f / 256);
    CHECK_OK(nerf_march(&s, NULL, &mp, R, o, d, eng_ctx_pool(ctx), &err), &err);
    int64_t most = 0, most_shell = 0, through = 0;
    for (int r = 0; r < R; r++) {
        const int64_t n = s.start[r + 1] - s.start[r];
        int64_t shell = 0;
        double reach = 0;
        most = n > most ? n : most;
        CHECK(n > 0);
        for (int64_t i = s.start[r]; i < s.start[r + 1]; i++) {
            const float *q = s.pos + 3 * i;
            for (int a = 0; a < 3; a++)
                CHECK(fabsf(q[a] - (o[3 * r + a] + s.t[i] * d[3 * r + a])) <=
                      1e-5f * fmaxf(1.0f, s.t[i]));
            if (i > s.start[r]) CHECK(s.t[i] > s.t[i - 1]);
            const float t0 = s.t[i] - 0.5f * s.dt[i];
            const float q0[3] = {o[3 * r] + t0 * d[3 * r], o[3 * r + 1] + t0 * d[3 * r + 1],
                                 o[3 * r + 2] + t0 * d[3 * r + 2]};
            const float want = nerf_step_contract(q0, t0, mp.cone_angle, mp.dt_min, mp.dt_max, ri,
                                                  mp.contract_step);
            CHECK(fabsf(s.dt[i] - want) <= 1e-3f * want);
            CHECK(s.dt[i] >= mp.dt_min);
            const float m = nerf_contract_norm(q, ri);
            shell += m > 1.0f;
            reach = fmax(reach, m);
        }
        through += shell < n;
        most_shell = shell > most_shell ? shell : most_shell;
        /* the last sample is near the far cube (its last step is long) */
        CHECK(reach > 0.5 * far / ri);
    }
    fprintf(stderr,
            "nerf.render.march_contract: %lld samples for %d rays (%lld cross the inner cube), "
            "at most %lld per ray, %lld of them outside the inner cube\n",
            (long long)s.n, R, (long long)through, (long long)most, (long long)most_shell);
    CHECK(through > R / 4);
    CHECK(most < mp.max_samples); /* bounded by the steps, not cut by the cap */
    /* a ray through the shell on its way in and out: ~ (0.6 + 1) / contract_step contracted steps
     * when radial, sqrt(3) times more when diagonal */
    CHECK(most_shell <= (int64_t)(3.0f / mp.contract_step));

    /* a contracted grid: a ball of radius 0.2 at the centre and the shell beyond 8 radii */
    nerf_occgrid *g = NULL;
    nerf_occgrid_params gp;
    nerf_occgrid_params_init(&gp);
    gp.res = 32;
    gp.contract = 1;
    gp.inner_radius = ri;
    CHECK_OK(nerf_occgrid_create(&g, &gp, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err), &err);
    float *v = nerf_occgrid_values(g);
    for (int64_t z = 0; z < 32; z++)
        for (int64_t y = 0; y < 32; y++)
            for (int64_t x = 0; x < 32; x++) {
                const float u[3] = {(x + 0.5f) / 32, (y + 0.5f) / 32, (z + 0.5f) / 32};
                float p[3];
                nerf_uncontract_unit(u, ri, p);
                const float m = nerf_contract_norm(p, ri);
                const float dc =
                    sqrtf((p[0] - 0.5f) * (p[0] - 0.5f) + (p[1] - 0.5f) * (p[1] - 0.5f) +
                          (p[2] - 0.5f) * (p[2] - 0.5f));
                v[(z * 32 + y) * 32 + x] = dc < 0.2f || m > 8.0f ? 1.0f : 0.0f;
            }
    nerf_occgrid_refresh(g);
    CHECK_OK(nerf_march(&s, g, &mp, R, o, d, eng_ctx_pool(ctx), &err), &err);
    CHECK_OK(nerf_march(&b, NULL, &mp, R, o, d, NULL, &err), &err);
    int64_t far_kept = 0, kept_brute = 0;
    for (int64_t i = 0; i < s.n; i++) {
        CHECK(nerf_occgrid_occupied_at(g, s.pos + 3 * i));
        far_kept += nerf_contract_norm(s.pos + 3 * i, ri) > 8.0f;
    }
    for (int64_t i = 0; i < b.n; i++)
        kept_brute += nerf_occgrid_occupied_at(g, b.pos + 3 * i);
    fprintf(stderr,
            "nerf.render.march_contract: with a grid %lld samples (%lld in the far shell); "
            "brute force keeps %lld of %lld\n",
            (long long)s.n, (long long)far_kept, (long long)kept_brute, (long long)b.n);
    CHECK(far_kept > R); /* every ray reaches the shell */
    /* skipping changes the step pattern after an empty stretch: a few samples either way */
    CHECK(s.n > kept_brute * 8 / 10 && s.n < kept_brute * 12 / 10);
    /* a grid that does not match the march is refused */
    nerf_occgrid *flat = NULL;
    nerf_occgrid_params fp;
    nerf_occgrid_params_init(&fp);
    fp.res = 8;
    CHECK_OK(nerf_occgrid_create(&flat, &fp, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err), &err);
    CHECK_EQ_I64(nerf_march(&s, flat, &mp, R, o, d, NULL, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "contracted");
    mp.contract_step = 0;
    CHECK_EQ_I64(nerf_march(&s, NULL, &mp, R, o, d, NULL, &err), ENG_E_INVALID_ARG);
    nerf_occgrid_destroy(flat);
    nerf_occgrid_destroy(g);
    nerf_samples_free(&s);
    nerf_samples_free(&b);
    eng_ctx_destroy(ctx);
    return 0;
}

/* Random rays of 0..40 samples. */
static void random_samples(nerf_samples *s, float **sigma, float **rgb, float **bg, uint64_t *rng) {
    enum { R = 40 };
    memset(s, 0, sizeof *s);
    s->n_rays = R;
    s->start = (int64_t *)malloc((R + 1) * sizeof *s->start);
    s->start[0] = 0;
    for (int r = 0; r < R; r++)
        s->start[r + 1] = s->start[r] + (int64_t)(urand(rng) * 41);
    s->n = s->start[R];
    s->pos = (float *)calloc((size_t)(3 * s->n + 3), sizeof(float));
    s->dir = (float *)calloc((size_t)(3 * s->n + 3), sizeof(float));
    s->t = (float *)malloc((size_t)(s->n + 1) * sizeof(float));
    s->dt = (float *)malloc((size_t)(s->n + 1) * sizeof(float));
    *sigma = (float *)malloc((size_t)(s->n + 1) * sizeof(float));
    *rgb = (float *)malloc((size_t)(3 * s->n + 3) * sizeof(float));
    *bg = (float *)malloc(3 * R * sizeof(float));
    for (int64_t i = 0; i < s->n; i++) {
        s->dt[i] = (float)(0.005 + 0.03 * urand(rng));
        s->t[i] = (float)i * 0.02f;
        (*sigma)[i] = (float)(urand(rng) * 20);
        for (int c = 0; c < 3; c++)
            (*rgb)[3 * i + c] = (float)urand(rng);
    }
    for (int k = 0; k < 3 * R; k++)
        (*bg)[k] = (float)urand(rng);
}

static void free_samples(nerf_samples *s, float *sigma, float *rgb, float *bg) {
    nerf_samples_free(s);
    free(sigma);
    free(rgb);
    free(bg);
}

/* The composite of ray r in double (no early stop: T_STOP is far below these rays' T). */
static void ref_color(const nerf_samples *s,
                      const double *sigma,
                      const double *rgb,
                      const float *bg,
                      int64_t r,
                      double out[3]) {
    double T = 1;
    out[0] = out[1] = out[2] = 0;
    for (int64_t i = s->start[r]; i < s->start[r + 1]; i++) {
        const double a = 1 - exp(-sigma[i] * s->dt[i]);
        for (int c = 0; c < 3; c++)
            out[c] += T * a * rgb[3 * i + c];
        T *= 1 - a;
        if (T < NERF_T_STOP) break;
    }
    for (int c = 0; c < 3; c++)
        out[c] += T * bg[3 * r + c];
}

static int test_composite(void) {
    nerf_samples s;
    float *sigma, *rgb, *bg;
    uint64_t rng = 11;
    random_samples(&s, &sigma, &rgb, &bg, &rng);
    const int64_t n = s.n, R = s.n_rays;
    float *color = (float *)malloc((size_t)R * 3 * sizeof(float)), *op = malloc((size_t)R * 4),
          *dep = malloc((size_t)R * 4);
    double *sd = (double *)malloc((size_t)(n + 1) * sizeof(double)),
           *cd = (double *)malloc((size_t)(3 * n + 3) * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        sd[i] = sigma[i];
        for (int c = 0; c < 3; c++)
            cd[3 * i + c] = rgb[3 * i + c];
    }
    nerf_composite_forward(&s, sigma, rgb, bg, color, op, dep, NULL);
    double worst = 0;
    for (int64_t r = 0; r < R; r++) {
        double want[3];
        ref_color(&s, sd, cd, bg, r, want);
        for (int c = 0; c < 3; c++)
            worst = fmax(worst, fabs(want[c] - color[3 * r + c]));
        CHECK(op[r] >= 0 && op[r] <= 1);
        if (s.start[r] == s.start[r + 1]) CHECK(op[r] == 0 && dep[r] == 0);
    }
    fprintf(stderr, "nerf.render.composite: max abs error %.3g\n", worst);
    CHECK(worst < 1e-6);
    free(color), free(op), free(dep), free(sd), free(cd);
    free_samples(&s, sigma, rgb, bg);
    return 0;
}

/* d(sum_r w_r . color_r) by the backward pass vs central differences in double. */
static int test_composite_backward(void) {
    nerf_samples s;
    float *sigma, *rgb, *bg;
    uint64_t rng = 5;
    random_samples(&s, &sigma, &rgb, &bg, &rng);
    for (int64_t i = 0; i < s.n; i++)
        sigma[i] *= 0.2f; /* keep T above the stop so the sum is smooth */
    const int64_t n = s.n, R = s.n_rays;
    float *color = (float *)malloc((size_t)R * 3 * sizeof(float)),
          *w = (float *)malloc((size_t)R * 3 * sizeof(float)),
          *ds = (float *)malloc((size_t)(n + 1) * sizeof(float)),
          *dr = (float *)malloc((size_t)(3 * n + 3) * sizeof(float));
    double *sd = (double *)malloc((size_t)(n + 1) * sizeof(double)),
           *cd = (double *)malloc((size_t)(3 * n + 3) * sizeof(double));
    for (int64_t k = 0; k < 3 * R; k++)
        w[k] = (float)(urand(&rng) * 2 - 1);
    nerf_composite_forward(&s, sigma, rgb, bg, color, NULL, NULL, NULL);
    nerf_composite_backward(&s, sigma, rgb, bg, color, w, ds, dr, NULL);
    for (int64_t i = 0; i < n; i++) {
        sd[i] = sigma[i];
        for (int c = 0; c < 3; c++)
            cd[3 * i + c] = rgb[3 * i + c];
    }
    double worst = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t i = s.start[r]; i < s.start[r + 1]; i++)
            for (int which = 0; which < 4; which++) {
                double *x = which == 0 ? &sd[i] : &cd[3 * i + which - 1];
                const double h = 1e-5, keep = *x;
                double lp = 0, lm = 0, c[3];
                *x = keep + h;
                ref_color(&s, sd, cd, bg, r, c);
                for (int k = 0; k < 3; k++)
                    lp += w[3 * r + k] * c[k];
                *x = keep - h;
                ref_color(&s, sd, cd, bg, r, c);
                for (int k = 0; k < 3; k++)
                    lm += w[3 * r + k] * c[k];
                *x = keep;
                const double fd = (lp - lm) / (2 * h);
                const double got = which == 0 ? ds[i] : dr[3 * i + which - 1];
                worst = fmax(worst, fabs(fd - got) / fmax(1e-3, fabs(fd)));
            }
    fprintf(stderr, "nerf.render.composite_backward: max relative error vs FD %.3g\n", worst);
    CHECK(worst < 1e-3);
    /* early stop: an opaque first sample takes everything, the rest get no gradient */
    sigma[s.start[0]] = 1e6f;
    if (s.start[1] - s.start[0] >= 2) {
        nerf_composite_forward(&s, sigma, rgb, bg, color, NULL, NULL, NULL);
        nerf_composite_backward(&s, sigma, rgb, bg, color, w, ds, dr, NULL);
        for (int c = 0; c < 3; c++)
            CHECK(fabsf(color[c] - rgb[3 * s.start[0] + c]) < 1e-5f);
        for (int64_t i = s.start[0] + 1; i < s.start[1]; i++)
            CHECK(ds[i] == 0 && dr[3 * i] == 0);
    }
    free(color), free(w), free(ds), free(dr), free(sd), free(cd);
    free_samples(&s, sigma, rgb, bg);
    return 0;
}

/* ---- the occupancy grid ---------------------------------------------------------------------- */

typedef struct ball {
    float radius, sigma;
    int64_t calls;
} ball;

static int ball_density(void *user, float *sigma, const float *pos, int64_t n, eng_err *err) {
    ball *b = (ball *)user;
    (void)err;
    b->calls += n;
    for (int64_t i = 0; i < n; i++) {
        const float x = pos[3 * i] - 0.5f, y = pos[3 * i + 1] - 0.5f, z = pos[3 * i + 2] - 0.5f;
        sigma[i] = x * x + y * y + z * z < b->radius * b->radius ? b->sigma : 0.0f;
    }
    return ENG_OK;
}

static int test_occgrid_update(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(1);
    nerf_occgrid *g = NULL;
    nerf_occgrid_params gp;
    ball b = {0.3f, 100.0f, 0};
    CHECK(ctx != NULL);
    nerf_occgrid_params_init(&gp);
    gp.res = 32;
    gp.cascades = 2;
    CHECK_OK(nerf_occgrid_create(&g, &gp, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err), &err);
    CHECK(nerf_occgrid_occupancy(g, 0) == 1.0); /* unknown: occupied */
    CHECK_OK(nerf_occgrid_update(g, 0, ball_density, &b, &err), &err);
    CHECK_EQ_I64(b.calls, 2 * 32 * 32 * 32); /* warm-up: every cell of both cascades */
    const double occ0 = nerf_occgrid_occupancy(g, 0), occ1 = nerf_occgrid_occupancy(g, 1);
    fprintf(stderr, "nerf.occgrid.update: occupied %.4f (cascade 0), %.4f (cascade 1)\n", occ0,
            occ1);
    /* the ball is 4/3 pi 0.3^3 = 0.113 of cascade 0 (cells cut by the surface count when their
     * random point falls inside) and 1/8 of that of cascade 1 */
    CHECK(occ0 > 0.08 && occ0 < 0.16);
    CHECK(occ1 > 0.01 && occ1 < 0.03);
    const float in[3] = {0.5f, 0.5f, 0.5f}, out[3] = {0.05f, 0.05f, 0.05f};
    CHECK(nerf_occgrid_occupied_at(g, in));
    CHECK(!nerf_occgrid_occupied_at(g, out));
    /* after warm-up half the cells are visited per update; an emptied scene decays away */
    b.sigma = 0;
    b.calls = 0;
    for (int64_t step = 300; step < 400; step++)
        CHECK_OK(nerf_occgrid_update(g, step, ball_density, &b, &err), &err);
    CHECK(b.calls <= 100 * 2 * 32 * 32 * 32 / 2 + 100);
    CHECK(nerf_occgrid_mean(g) < 1e-3 * 100.0f * gp.dt_min);
    gp.res = 3;
    nerf_occgrid *bad = NULL;
    CHECK_EQ_I64(nerf_occgrid_create(&bad, &gp, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err),
                 ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "res 3");
    nerf_occgrid_destroy(g);
    eng_ctx_destroy(ctx);
    return 0;
}

/* A contracted scene: a dense ball at the centre and a thin "sky" (sigma 2) beyond 4 model
 * units (L-infinity: 8 inner radii, the outermost cells of a 32^3 contracted grid), empty
 * between. */
typedef struct sky {
    int64_t calls;
    double farthest;
} sky;

static int sky_density(void *user, float *sigma, const float *pos, int64_t n, eng_err *err) {
    sky *k = (sky *)user;
    (void)err;
    k->calls += n;
    for (int64_t i = 0; i < n; i++) {
        const double x = pos[3 * i] - 0.5, y = pos[3 * i + 1] - 0.5, z = pos[3 * i + 2] - 0.5;
        const double r = sqrt(x * x + y * y + z * z);
        if (!isfinite(r))
            return eng_err_set(err, ENG_E_INVALID_ARG, "sample %lld not finite", (long long)i);
        k->farthest = fmax(k->farthest, r);
        sigma[i] = r < 0.2 ? 100.0f : nerf_contract_norm(pos + 3 * i, 0.5f) > 8.0f ? 2.0f : 0.0f;
    }
    return ENG_OK;
}

static int test_occgrid_contract(void) {
    eng_err err = {0};
    eng_ctx *ctx = eng_test_ctx(1);
    nerf_occgrid *g = NULL;
    nerf_occgrid_params gp;
    sky k = {0, 0};
    CHECK(ctx != NULL);
    nerf_occgrid_params_init(&gp);
    gp.res = 32;
    gp.contract = 1;
    gp.cascades = 2;
    CHECK_EQ_I64(nerf_occgrid_create(&g, &gp, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err),
                 ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "cascades 1");
    gp.cascades = 1;
    CHECK_OK(nerf_occgrid_create(&g, &gp, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &err), &err);
    CHECK_OK(nerf_occgrid_update(g, 0, sky_density, &k, &err), &err);
    CHECK_EQ_I64(k.calls, 32 * 32 * 32);
    const double occ = nerf_occgrid_occupancy(g, 0);
    fprintf(stderr,
            "nerf.occgrid.contract: occupied %.4f of the contracted grid; farthest sample %.3g "
            "model units\n",
            occ, k.farthest);
    CHECK(k.farthest > 1000); /* the outer cells reach far out */
    const float centre[3] = {0.5f, 0.5f, 0.5f}, between[3] = {1.5f, 0.5f, 0.5f},
                near_sky[3] = {0.5f, 0.5f, 6.5f}, far_sky[3] = {-900.0f, 400.0f, 0.5f};
    CHECK(nerf_occgrid_occupied_at(g, centre));
    CHECK(!nerf_occgrid_occupied_at(g, between));
    /* the sky's sigma 2 is 2 dt_min = 3.4e-3 per smallest step (under the threshold 0.01),
     * but the contracted march crosses it in long steps (m >= 8: the value counts 8 times):
     * occupied */
    CHECK(2.0f * gp.dt_min < gp.threshold);
    CHECK(nerf_occgrid_occupied_at(g, near_sky));
    CHECK(nerf_occgrid_occupied_at(g, far_sky));
    /* the sky shell (m > 8 inner radii) is the outer 1 / 32 of the grid on each side: 17.6 % */
    CHECK(occ > 0.08 && occ < 0.25);
    nerf_occgrid_destroy(g);
    eng_ctx_destroy(ctx);
    return 0;
}

static const eng_test_case cases[] = {
    {"ray_box", test_ray_box},
    {"march_uniform", test_march_uniform},
    {"march_grid", test_march_grid},
    {"march_coarse", test_march_coarse},
    {"composite", test_composite},
    {"composite_backward", test_composite_backward},
    {"occgrid_update", test_occgrid_update},
    {"contract_math", test_contract_math},
    {"march_contract", test_march_contract},
    {"occgrid_contract", test_occgrid_contract},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
