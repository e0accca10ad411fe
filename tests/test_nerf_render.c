/* test_nerf_render.c: nerf.render.* and nerf.occgrid.* — ray/box intersection, marching with and
 * without an occupancy grid (samples on the ray, only in occupied cells, nothing occupied
 * skipped), compositing against a double-precision loop, its backward pass against finite
 * differences, early termination, and the occupancy grid's update from a density function
 * (a ball: the occupied fraction, decay, threshold, bad parameters). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
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

static const eng_test_case cases[] = {
    {"ray_box", test_ray_box},
    {"march_uniform", test_march_uniform},
    {"march_grid", test_march_grid},
    {"composite", test_composite},
    {"composite_backward", test_composite_backward},
    {"occgrid_update", test_occgrid_update},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
