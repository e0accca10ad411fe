/* nerf_render.c: ray marching and compositing on the CPU (nerf_render.h). */
#include "nerf_render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nerf_render_math.h"

enum { RAY_GRAIN = 64 };

void nerf_march_params_init(nerf_march_params *p, float aabb) {
    memset(p, 0, sizeof *p);
    for (int a = 0; a < 3; a++) {
        p->box_lo[a] = 0.5f - 0.5f * aabb;
        p->box_hi[a] = 0.5f + 0.5f * aabb;
    }
    p->dt_min = 1.7320508f / 1024.0f;
    p->dt_max = aabb * 1.7320508f / 128.0f;
    if (p->dt_max < p->dt_min) p->dt_max = p->dt_min;
    p->cone_angle = aabb > 1.0f ? 1.0f / 256.0f : 0.0f;
    p->max_samples = 1024;
    p->contract = 0;
    p->inner_radius = 0.5f;
    p->contract_step = 1.0f / 256.0f;
}

void nerf_march_params_init_contract(nerf_march_params *p, float inner_radius, float far) {
    nerf_march_params_init(p, 1.0f);
    for (int a = 0; a < 3; a++) {
        p->box_lo[a] = NERF_CONTRACT_CENTER - far;
        p->box_hi[a] = NERF_CONTRACT_CENTER + far;
    }
    p->dt_max = far > p->dt_min ? far : p->dt_min;
    p->cone_angle = 1.0f / 256.0f;
    p->contract = 1;
    p->inner_radius = inner_radius;
}

void nerf_samples_free(nerf_samples *s) {
    if (s == NULL) return;
    free(s->start);
    free(s->pos);
    free(s->dir);
    free(s->t);
    free(s->dt);
    memset(s, 0, sizeof *s);
}

typedef struct march_job {
    nerf_samples *s;
    const nerf_occgrid *grid;
    const nerf_march_params *p;
    const float *o, *d;
    int64_t *count; /* pass 1 output */
    int fill;       /* 0: count, 1: write */
    int coarse_res; /* p->coarse_skip and the grid's coarse level: its res; else 0 */
} march_job;

/* Writes sample `at` (model-space point q at tm, step dt) of a ray with direction d. */
static void
put_sample(nerf_samples *s, int64_t at, const float q[3], const float d[3], float tm, float dt) {
    memcpy(s->pos + 3 * at, q, 3 * sizeof *q);
    memcpy(s->dir + 3 * at, d, 3 * sizeof *d);
    s->t[at] = tm;
    s->dt[at] = dt;
}

/* Contracted marching of ray r (nerf_render.h): the far cube, nerf_step_contract's steps, one
 * grid over the contracted cube. */
static int64_t march_one_contract(const march_job *j, int64_t r) {
    const nerf_march_params *p = j->p;
    const float *o = j->o + 3 * r, *d = j->d + 3 * r;
    float t0, t1;
    if (!nerf_ray_box(o, d, p->box_lo, p->box_hi, &t0, &t1)) return 0;
    const int res = j->grid != NULL ? nerf_occgrid_get_params(j->grid)->res : 1;
    const float ri = p->inner_radius;
    int64_t n = 0, at = j->fill ? j->s->start[r] : 0;
    float t = t0 + 1e-6f;
    while (t < t1 && n < p->max_samples) {
        const float q0[3] = {o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]};
        const float dt =
            nerf_step_contract(q0, t, p->cone_angle, p->dt_min, p->dt_max, ri, p->contract_step);
        const float tm = t + 0.5f * dt;
        const float q[3] = {o[0] + tm * d[0], o[1] + tm * d[1], o[2] + tm * d[2]};
        if (j->grid != NULL && !nerf_occgrid_occupied(j->grid, 0, nerf_contract_cell(q, ri, res))) {
            const int cr = j->coarse_res;
            const float tn =
                cr > 0 && !nerf_occgrid_coarse_occupied(j->grid, 0, nerf_contract_cell(q, ri, cr))
                    ? nerf_contract_next_t(o, d, tm, ri, cr)
                    : nerf_contract_next_t(o, d, tm, ri, res);
            t = tn > t + dt ? tn : t + dt;
            continue;
        }
        if (j->fill) put_sample(j->s, at++, q, d, tm, dt);
        n++;
        t += dt;
    }
    return n;
}

/* Marches ray r; writes its samples from s->start[r] when `fill`. Returns the sample count. */
static int64_t march_one(const march_job *j, int64_t r) {
    const nerf_march_params *p = j->p;
    if (p->contract) return march_one_contract(j, r);
    const float *o = j->o + 3 * r, *d = j->d + 3 * r;
    float t0, t1;
    if (!nerf_ray_box(o, d, p->box_lo, p->box_hi, &t0, &t1)) return 0;
    const int cascades = j->grid != NULL ? nerf_occgrid_get_params(j->grid)->cascades : 1;
    const int res = j->grid != NULL ? nerf_occgrid_get_params(j->grid)->res : 1;
    int64_t n = 0, at = j->fill ? j->s->start[r] : 0;
    float t = t0 + 1e-6f;
    while (t < t1 && n < p->max_samples) {
        const float dt = nerf_step(t, p->cone_angle, p->dt_min, p->dt_max);
        const float tm = t + 0.5f * dt;
        const float q[3] = {o[0] + tm * d[0], o[1] + tm * d[1], o[2] + tm * d[2]};
        if (j->grid != NULL) {
            const int k = nerf_cascade_of(q, cascades);
            if (k >= cascades) { /* outside the grid: no density there */
                t += dt;
                continue;
            }
            if (!nerf_occgrid_occupied(j->grid, k, nerf_cell_of(q, k, res))) {
                const int cr = j->coarse_res;
                const float tn =
                    cr > 0 && !nerf_occgrid_coarse_occupied(j->grid, k, nerf_cell_of(q, k, cr))
                        ? nerf_next_cell_t(o, d, tm, k, cr)
                        : nerf_next_cell_t(o, d, tm, k, res);
                t = tn > t + dt ? tn : t + dt;
                continue;
            }
        }
        if (j->fill) put_sample(j->s, at++, q, d, tm, dt);
        n++;
        t += dt;
    }
    return n;
}

static void march_range(void *user, int64_t begin, int64_t end) {
    const march_job *j = (const march_job *)user;
    for (int64_t r = begin; r < end; r++) {
        const int64_t n = march_one(j, r);
        if (!j->fill) j->count[r] = n;
    }
}

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    void *q = realloc(*p, (size_t)need * elem);
    if (q == NULL) return -1;
    *p = q;
    *cap = need;
    return 0;
}

int nerf_march(nerf_samples *s,
               const nerf_occgrid *grid,
               const nerf_march_params *p,
               int64_t n_rays,
               const float *o,
               const float *d,
               eng_pool *pool,
               eng_err *err) {
    ENG_ASSERT(s != NULL && p != NULL && n_rays >= 0 && (n_rays == 0 || (o != NULL && d != NULL)));
    if (!(p->dt_min > 0) || !(p->dt_max >= p->dt_min) || p->max_samples < 1 ||
        !(p->cone_angle >= 0))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_march: dt_min %g, dt_max %g, cone_angle %g, max_samples %d",
                           (double)p->dt_min, (double)p->dt_max, (double)p->cone_angle,
                           p->max_samples);
    if (p->contract && (!(p->inner_radius > 0 && isfinite(p->inner_radius)) ||
                        !(p->contract_step > 0 && isfinite(p->contract_step))))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_march: contracted marching with inner_radius %g and contract_step "
                           "%g (both must be positive)",
                           (double)p->inner_radius, (double)p->contract_step);
    if (grid != NULL) {
        const nerf_occgrid_params *gp = nerf_occgrid_get_params(grid);
        if ((gp->contract != 0) != (p->contract != 0) ||
            (p->contract && gp->inner_radius != p->inner_radius))
            return eng_err_set(
                err, ENG_E_INVALID_ARG,
                "nerf_march: the occupancy grid is %s (inner radius %g) but the "
                "march is %s (inner radius %g)",
                gp->contract ? "contracted" : "not contracted", (double)gp->inner_radius,
                p->contract ? "contracted" : "not contracted", (double)p->inner_radius);
    }
    int64_t cap_rays = s->cap_rays;
    if (grow((void **)&s->start, &cap_rays, n_rays + 1, sizeof *s->start) != 0)
        return eng_err_set(err, ENG_E_OOM, "nerf_march: out of memory for %lld rays",
                           (long long)n_rays);
    s->cap_rays = cap_rays;
    march_job j = {
        s, grid,         p, o,
        d, s->start + 1, 0, p->coarse_skip && grid != NULL ? nerf_occgrid_coarse_res(grid) : 0};
    eng_pool_parallel_for(pool, n_rays, RAY_GRAIN, march_range, &j);
    s->start[0] = 0;
    for (int64_t r = 0; r < n_rays; r++)
        s->start[r + 1] += s->start[r];
    const int64_t n = s->start[n_rays];
    const int64_t need = n > 0 ? n : 1; /* never NULL arrays, even with no samples */
    int64_t c1 = s->cap, c2 = s->cap, c3 = s->cap, c4 = s->cap;
    if (grow((void **)&s->pos, &c1, 3 * need, sizeof *s->pos) != 0 ||
        grow((void **)&s->dir, &c2, 3 * need, sizeof *s->dir) != 0 ||
        grow((void **)&s->t, &c3, 3 * need, sizeof *s->t) != 0 ||
        grow((void **)&s->dt, &c4, 3 * need, sizeof *s->dt) != 0)
        return eng_err_set(err, ENG_E_OOM, "nerf_march: out of memory for %lld samples",
                           (long long)n);
    if (3 * need > s->cap) s->cap = 3 * need;
    s->n_rays = n_rays;
    s->n = n;
    j.fill = 1;
    eng_pool_parallel_for(pool, n_rays, RAY_GRAIN, march_range, &j);
    return ENG_OK;
}

/* ---- compositing ----------------------------------------------------------------------------- */

typedef struct comp_job {
    const nerf_samples *s;
    const float *sigma, *rgb, *bg, *color, *d_color;
    float *out_color, *opacity, *depth, *d_sigma, *d_rgb;
} comp_job;

static void forward_range(void *user, int64_t begin, int64_t end) {
    const comp_job *j = (const comp_job *)user;
    const nerf_samples *s = j->s;
    for (int64_t r = begin; r < end; r++) {
        double c[3] = {0, 0, 0}, dep = 0, T = 1;
        for (int64_t i = s->start[r]; i < s->start[r + 1]; i++) {
            const double a = nerf_alpha(j->sigma[i], s->dt[i]), w = T * a;
            for (int ch = 0; ch < 3; ch++)
                c[ch] += w * j->rgb[3 * i + ch];
            dep += w * s->t[i];
            T *= 1.0 - a;
            if (T < NERF_T_STOP) break;
        }
        for (int ch = 0; ch < 3; ch++)
            j->out_color[3 * r + ch] = (float)(c[ch] + T * (j->bg != NULL ? j->bg[3 * r + ch] : 0));
        if (j->opacity != NULL) j->opacity[r] = (float)(1.0 - T);
        if (j->depth != NULL) j->depth[r] = (float)dep;
    }
}

void nerf_composite_forward(const nerf_samples *s,
                            const float *sigma,
                            const float *rgb,
                            const float *bg,
                            float *color,
                            float *opacity,
                            float *depth,
                            eng_pool *pool) {
    comp_job j = {s, sigma, rgb, bg, NULL, NULL, color, opacity, depth, NULL, NULL};
    eng_pool_parallel_for(pool, s->n_rays, RAY_GRAIN, forward_range, &j);
}

static void backward_range(void *user, int64_t begin, int64_t end) {
    const comp_job *j = (const comp_job *)user;
    const nerf_samples *s = j->s;
    for (int64_t r = begin; r < end; r++) {
        const float *dc = j->d_color + 3 * r, *col = j->color + 3 * r;
        double acc[3] = {0, 0, 0}, T = 1;
        int64_t i = s->start[r];
        for (; i < s->start[r + 1]; i++) {
            const float *c = j->rgb + 3 * i;
            const double a = nerf_alpha(j->sigma[i], s->dt[i]), w = T * a, Tn = T * (1.0 - a);
            double g = 0;
            for (int ch = 0; ch < 3; ch++) {
                acc[ch] += w * c[ch];
                j->d_rgb[3 * i + ch] = (float)(w * dc[ch]);
                g += dc[ch] * (Tn * c[ch] - ((double)col[ch] - acc[ch]));
            }
            j->d_sigma[i] = (float)(s->dt[i] * g);
            T = Tn;
            if (T < NERF_T_STOP) {
                i++;
                break;
            }
        }
        for (; i < s->start[r + 1]; i++) { /* after the stop: no influence */
            j->d_sigma[i] = 0.0f;
            j->d_rgb[3 * i] = j->d_rgb[3 * i + 1] = j->d_rgb[3 * i + 2] = 0.0f;
        }
    }
}

void nerf_composite_backward(const nerf_samples *s,
                             const float *sigma,
                             const float *rgb,
                             const float *bg,
                             const float *color,
                             const float *d_color,
                             float *d_sigma,
                             float *d_rgb,
                             eng_pool *pool) {
    comp_job j = {s, sigma, rgb, bg, color, d_color, NULL, NULL, NULL, d_sigma, d_rgb};
    eng_pool_parallel_for(pool, s->n_rays, RAY_GRAIN, backward_range, &j);
}
