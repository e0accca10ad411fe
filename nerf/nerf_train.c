/* nerf_train.c: the trainer (nerf_train.h): rays -> marching -> field -> compositing -> L2 ->
 * backward -> Adam, the occupancy grid updates, rendering and snapshots. */
#include "nerf_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_bench.h"
#include "eng_philox_math.h"
#include "nerf_adam.h"
#include "nerf_train_cuda.h"
#include "nerf_train_math.h"

enum {
    FIELD_CHUNK = 1 << 16, /* points per field call when nothing is kept for a backward pass */
    RENDER_TILE = 1 << 13, /* rays per rendering tile */
    RAY_GRAIN = 256,
    MIN_RAYS = 256,
    MAX_RAYS = 1 << 20,
};
#define SNAPSHOT_FORMAT "engine-nerf-1"

struct nerf_trainer {
    eng_ctx *ctx;
    eng_alloc *alloc;
    eng_stream *s;
    const nerf_dataset *ds;
    nerf_train_params p;
    float aabb;
    nerf_field *field;
    nerf_adam *adam;
    nerf_occgrid *grid;
    nerf_march_params mp;
    int64_t step, rays;
    nerf_samples samples;
    /* per-ray and per-sample buffers, grown as needed */
    float *o, *d, *target, *bg, *color, *d_color, *opacity, *depth_buf;
    int64_t cap_rays;
    float *sigma, *rgb, *d_sigma, *d_rgb;
    int64_t cap_samples;
    float *scratch;
    int64_t cap_scratch;    /* floats */
    nerf_cuda_trainer *dev; /* training on CUDA: the state lives there (nerf_trainer_set_device) */
    int host_stale;         /* the device has stepped since the CPU model was last synced */
};

void nerf_train_params_init(nerf_train_params *p) {
    memset(p, 0, sizeof *p);
    nerf_field_params_init(&p->field);
    p->target_samples = 1 << 16;
    p->initial_rays = 4096;
    p->lr = 1e-2f;
    p->occ_every = 16;
    p->occ_res = 128;
    p->random_bg = 1;
    p->seed = 1;
    p->field.contract = NERF_CONTRACT_AUTO;
    p->field.inner_radius = 0.0f; /* auto: aabb_scale / 2 */
    p->far = 0.0f;                /* auto: 64 inner radii */
    p->holdout = 0;
    p->device = ENG_DEVICE_CPU;
}

/* ---- buffers ----------------------------------------------------------------------------------- */

static int grow_f(float **p, int64_t n) {
    float *q = (float *)realloc(*p, (size_t)(n > 0 ? n : 1) * sizeof *q);
    if (q == NULL) return -1;
    *p = q;
    return 0;
}

static int ensure_rays(nerf_trainer *t, int64_t n, eng_err *err) {
    if (n <= t->cap_rays) return ENG_OK;
    if (grow_f(&t->o, 3 * n) || grow_f(&t->d, 3 * n) || grow_f(&t->target, 3 * n) ||
        grow_f(&t->bg, 3 * n) || grow_f(&t->color, 3 * n) || grow_f(&t->d_color, 3 * n) ||
        grow_f(&t->opacity, n) || grow_f(&t->depth_buf, n))
        return eng_err_set(err, ENG_E_OOM, "nerf_trainer: out of memory for %lld rays",
                           (long long)n);
    t->cap_rays = n;
    return ENG_OK;
}

static int ensure_samples(nerf_trainer *t, int64_t n, eng_err *err) {
    if (n > t->cap_samples) {
        if (grow_f(&t->sigma, n) || grow_f(&t->rgb, 3 * n) || grow_f(&t->d_sigma, n) ||
            grow_f(&t->d_rgb, 3 * n))
            return eng_err_set(err, ENG_E_OOM, "nerf_trainer: out of memory for %lld samples",
                               (long long)n);
        t->cap_samples = n;
    }
    const int64_t need = nerf_field_scratch_floats(t->field, n);
    if (need > t->cap_scratch) {
        if (grow_f(&t->scratch, need))
            return eng_err_set(err, ENG_E_OOM,
                               "nerf_trainer: out of memory for the field's scratch (%lld MB)",
                               (long long)(need * 4 >> 20));
        t->cap_scratch = need;
    }
    return ENG_OK;
}

/* ---- creation ---------------------------------------------------------------------------------- */

static int create_parts(nerf_trainer *t, eng_err *err) {
    int rc;
    /* auto: off. The multi-cascade grid beat the contraction on fox's held-out views (26.0 dB
     * against 21.7 in 5 CPU minutes, docs/benchmarks.md); `on` is for captures whose background
     * matters (360-degree scenes with far walls or sky). */
    if (t->p.field.contract == NERF_CONTRACT_AUTO) t->p.field.contract = 0;
    const int contract = t->p.field.contract;
    if (!(t->p.field.inner_radius > 0)) t->p.field.inner_radius = 0.5f * t->aabb;
    if (!(t->p.far > 0)) t->p.far = 64.0f * t->p.field.inner_radius;
    if (contract && !(t->p.far > t->p.field.inner_radius))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_trainer: far %g must exceed the inner radius %g (the marched cube "
                           "holds the inner cube)",
                           (double)t->p.far, (double)t->p.field.inner_radius);
    /* the grid's resolution: desired_resolution per model unit over the scene box, or, with the
     * contraction, over the foreground (the contracted cube spans 4 r of its units) */
    t->p.field.grid.aabb_scale = contract ? 4.0f * t->p.field.inner_radius : t->aabb;
    if (contract) {
        nerf_march_params_init_contract(&t->mp, t->p.field.inner_radius, t->p.far);
    } else {
        nerf_march_params_init(&t->mp, t->aabb);
    }
    if ((rc = nerf_field_create(&t->field, t->alloc, t->s, &t->p.field, err)) != ENG_OK) return rc;
    nerf_adam_params ap;
    nerf_adam_params_init(&ap);
    ap.n_params = nerf_field_n_params(t->field);
    ap.n_matrix = nerf_field_n_matrix_params(t->field);
    if ((rc = nerf_adam_create(&t->adam, t->alloc, &ap, err)) != ENG_OK) return rc;
    nerf_occgrid_params gp;
    nerf_occgrid_params_init(&gp);
    gp.cascades = 1;
    while (!contract && (float)(1 << gp.cascades) <= t->aabb &&
           gp.cascades < NERF_OCCGRID_MAX_CASCADES)
        gp.cascades++;
    gp.res = t->p.occ_res;
    gp.seed = t->p.seed ^ 0x6f6363ull;
    gp.dt_min = t->mp.dt_min;
    if (contract) { /* the values measure the contracted march's steps */
        gp.contract = 1;
        gp.inner_radius = t->mp.inner_radius;
        gp.cone_angle = t->mp.cone_angle;
        gp.dt_max = t->mp.dt_max;
        gp.contract_step = t->mp.contract_step;
    }
    if ((rc = nerf_occgrid_create(&t->grid, &gp, t->alloc, err)) != ENG_OK) return rc;
    return ENG_OK;
}

static int check_params(const nerf_train_params *p, eng_err *err) {
    if (p->target_samples < 1024 || p->target_samples > (1 << 24) || p->initial_rays < 1 ||
        !(p->lr >= 0 && isfinite(p->lr)) || p->occ_every < 1 || p->occ_res < 8)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_trainer: target_samples %lld (1024..2^24), initial_rays %lld, "
                           "lr %g, occ_every %d, occ_res %d",
                           (long long)p->target_samples, (long long)p->initial_rays, (double)p->lr,
                           p->occ_every, p->occ_res);
    const int c = p->field.contract;
    const float ri = p->field.inner_radius, far = p->far;
    if ((c != NERF_CONTRACT_AUTO && c != 0 && c != 1) ||
        (c != 0 && (!(ri >= 0 && isfinite(ri)) || !(far >= 0 && isfinite(far)) ||
                    (far > 0 && ri > 0 && !(far > ri)))))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_trainer: contract %d (auto -1, 0 or 1), inner_radius %g (> 0, or "
                           "0: auto), far %g (> inner_radius, or 0: auto)",
                           c, (double)p->field.inner_radius, (double)p->far);
    if (p->holdout < 0 || p->holdout == 1)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_trainer: holdout %lld (0: none, or K >= 2: every K-th frame)",
                           (long long)p->holdout);
    return ENG_OK;
}

/* Frames trained on: all but 0, K, 2K, ... with holdout K (nerf_train_math.h, shared with the
 * device trainer). */
static int64_t train_frames(const nerf_train_params *p, int64_t nf) {
    return nerf_train_frames(p->holdout, nf);
}

static int
check_frames(const nerf_train_params *p, const nerf_dataset *ds, const char *fn, eng_err *err) {
    if (train_frames(p, nerf_dataset_count(ds)) >= 1) return ENG_OK;
    return eng_err_set(
        err, ENG_E_INVALID_ARG, "%s: %s has %lld frames; holdout %lld leaves none to train on", fn,
        nerf_dataset_json_path(ds), (long long)nerf_dataset_count(ds), (long long)p->holdout);
}

static int new_trainer(
    nerf_trainer **out, eng_ctx *ctx, const nerf_train_params *p, float aabb, eng_err *err) {
    nerf_trainer *t = (nerf_trainer *)calloc(1, sizeof *t);
    if (t == NULL) return eng_err_set(err, ENG_E_OOM, "nerf_trainer: out of memory");
    t->ctx = ctx;
    t->alloc = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    t->s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
    t->p = *p;
    t->aabb = aabb;
    t->rays = p->initial_rays;
    const int rc = create_parts(t, err);
    if (rc != ENG_OK) {
        nerf_trainer_destroy(t);
        return rc;
    }
    *out = t;
    return ENG_OK;
}

int nerf_trainer_create(nerf_trainer **out,
                        eng_ctx *ctx,
                        const nerf_dataset *ds,
                        const nerf_train_params *p,
                        eng_err *err) {
    int rc;
    ENG_ASSERT(out != NULL && ctx != NULL && ds != NULL && p != NULL);
    *out = NULL;
    if ((rc = check_params(p, err)) != ENG_OK ||
        (rc = check_frames(p, ds, "nerf_trainer_create", err)) != ENG_OK)
        return rc;
    if ((rc = new_trainer(out, ctx, p, nerf_dataset_aabb_scale(ds), err)) != ENG_OK) return rc;
    (*out)->ds = ds;
    if (p->device != ENG_DEVICE_CPU &&
        (rc = nerf_trainer_set_device(*out, p->device, err)) != ENG_OK) {
        nerf_trainer_destroy(*out);
        *out = NULL;
    }
    return rc;
}

void nerf_trainer_destroy(nerf_trainer *t) {
    if (t == NULL) return;
    nerf_cuda_trainer_destroy(t->dev);
    nerf_samples_free(&t->samples);
    free(t->o), free(t->d), free(t->target), free(t->bg), free(t->color), free(t->d_color);
    free(t->opacity), free(t->depth_buf);
    free(t->sigma), free(t->rgb), free(t->d_sigma), free(t->d_rgb), free(t->scratch);
    nerf_occgrid_destroy(t->grid);
    nerf_adam_destroy(t->adam);
    nerf_field_destroy(t->field);
    free(t);
}

int nerf_trainer_set_dataset(nerf_trainer *t, const nerf_dataset *ds, eng_err *err) {
    if (ds != NULL && nerf_dataset_aabb_scale(ds) != t->aabb)
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "nerf_trainer_set_dataset: %s has aabb_scale %g, the model %g",
            nerf_dataset_json_path(ds), (double)nerf_dataset_aabb_scale(ds), (double)t->aabb);
    if (ds != NULL) {
        const int rc = check_frames(&t->p, ds, "nerf_trainer_set_dataset", err);
        if (rc != ENG_OK) return rc;
    }
    if (t->dev != NULL) {
        const int rc = nerf_cuda_trainer_set_dataset(t->dev, ds, err);
        if (rc != ENG_OK) return rc;
    }
    t->ds = ds;
    return ENG_OK;
}

int nerf_trainer_sync(nerf_trainer *t, eng_err *err) {
    if (t->dev == NULL || !t->host_stale) return ENG_OK;
    const int rc = nerf_cuda_trainer_download(t->dev, t->field, t->adam, t->grid, err);
    if (rc == ENG_OK) {
        nerf_occgrid_rebuild_coarse(t->grid); /* the bytes came from the device */
        t->host_stale = 0;
    }
    return rc;
}

int nerf_trainer_set_device(nerf_trainer *t, eng_device_kind device, eng_err *err) {
    int rc = ENG_OK;
    if (device == ENG_DEVICE_CUDA) {
        if (t->dev == NULL)
            rc = nerf_cuda_trainer_create(&t->dev, t->ctx, t->field, t->adam, t->grid, t->ds, &t->p,
                                          &t->mp, err);
    } else if (t->dev != NULL) {
        if ((rc = nerf_trainer_sync(t, err)) != ENG_OK) return rc;
        nerf_cuda_trainer_destroy(t->dev);
        t->dev = NULL;
    }
    if (rc == ENG_OK) t->p.device = device;
    return rc;
}

int64_t nerf_trainer_step_count(const nerf_trainer *t) {
    return t->step;
}
const nerf_train_params *nerf_trainer_get_params(const nerf_trainer *t) {
    return &t->p;
}
nerf_field *nerf_trainer_field(nerf_trainer *t) {
    return t->field;
}
nerf_occgrid *nerf_trainer_occgrid(nerf_trainer *t) {
    return t->grid;
}
const nerf_march_params *nerf_trainer_march_params(const nerf_trainer *t) {
    return &t->mp;
}

/* ---- the field in chunks ----------------------------------------------------------------------- */

int nerf_trainer_density(nerf_trainer *t, float *sigma, const float *pos, int64_t n, eng_err *err) {
    int rc = nerf_trainer_sync(t, err);
    if (rc == ENG_OK) rc = ensure_samples(t, n < FIELD_CHUNK ? n : FIELD_CHUNK, err);
    for (int64_t b = 0; rc == ENG_OK && b < n; b += FIELD_CHUNK) {
        const int64_t m = n - b < FIELD_CHUNK ? n - b : FIELD_CHUNK;
        rc = nerf_field_fwd(t->field, t->s, sigma + b, NULL, pos + 3 * b, NULL, m, t->scratch, err);
    }
    return rc;
}

/* sigma and rgb for n points, in chunks (no backward pass follows). */
static int field_eval(nerf_trainer *t,
                      float *sigma,
                      float *rgb,
                      const float *pos,
                      const float *dir,
                      int64_t n,
                      eng_err *err) {
    int rc = ENG_OK;
    const int64_t need = nerf_field_scratch_floats(t->field, n < FIELD_CHUNK ? n : FIELD_CHUNK);
    if (need > t->cap_scratch) {
        if (grow_f(&t->scratch, need))
            return eng_err_set(err, ENG_E_OOM, "nerf_trainer: out of memory for scratch");
        t->cap_scratch = need;
    }
    for (int64_t b = 0; rc == ENG_OK && b < n; b += FIELD_CHUNK) {
        const int64_t m = n - b < FIELD_CHUNK ? n - b : FIELD_CHUNK;
        rc = nerf_field_fwd(t->field, t->s, sigma + b, rgb + 3 * b, pos + 3 * b, dir + 3 * b, m,
                            t->scratch, err);
    }
    return rc;
}

int nerf_trainer_color(
    nerf_trainer *t, float *rgb, const float *pos, const float *dir, int64_t n, eng_err *err) {
    float *sigma = (float *)malloc((size_t)(n > 0 ? n : 1) * sizeof *sigma);
    if (sigma == NULL) return eng_err_set(err, ENG_E_OOM, "nerf_trainer_color: out of memory");
    int rc = nerf_trainer_sync(t, err);
    if (rc == ENG_OK) rc = field_eval(t, sigma, rgb, pos, dir, n, err);
    free(sigma);
    return rc;
}

static int occ_density(void *user, float *sigma, const float *pos, int64_t n, eng_err *err) {
    return nerf_trainer_density((nerf_trainer *)user, sigma, pos, n, err);
}

/* ---- a training step --------------------------------------------------------------------------- */

typedef struct ray_job {
    nerf_trainer *t;
    uint64_t offset;
} ray_job;

static void make_rays(void *user, int64_t begin, int64_t end) {
    const ray_job *j = (const ray_job *)user;
    nerf_trainer *t = j->t;
    const nerf_dataset *ds = t->ds;
    const int64_t nf = train_frames(&t->p, nerf_dataset_count(ds)), w = nerf_dataset_width(ds),
                  h = nerf_dataset_height(ds);
    const uint64_t seed = t->p.seed;
    for (int64_t r = begin; r < end; r++) { /* nerf_train_ray, on the dataset's own rays */
        float u[8];
        int64_t f, px, py;
        nerf_train_uniforms(u, seed, j->offset, r);
        nerf_train_pick(u, nf, w, h, &f, &px, &py);
        f = nerf_train_frame(t->p.holdout, f);
        nerf_dataset_ray(ds, f, (float)px + u[3] - 0.5f, (float)py + u[4] - 0.5f, t->o + 3 * r,
                         t->d + 3 * r);
        for (int k = 0; k < 3; k++)
            t->bg[3 * r + k] = t->p.random_bg ? u[5 + k] : 1.0f;
        nerf_train_target(nerf_dataset_rgba(ds, f) + (py * w + px) * 4, t->bg + 3 * r,
                          t->target + 3 * r);
    }
}

static float lr_at(const nerf_train_params *p, int64_t step) {
    return nerf_train_lr_at(p->lr, step);
}

int nerf_trainer_step(nerf_trainer *t, nerf_step_stats *st, eng_err *err) {
    int rc = ENG_OK;
    const double t0 = eng_bench_now_s();
    eng_pool *pool = eng_ctx_pool(t->ctx);
    if (t->ds == NULL)
        return eng_err_set(err, ENG_E_INVALID_ARG, "nerf_trainer_step: no dataset attached");
    if (t->dev != NULL) { /* the same step on the device */
        if ((rc = nerf_cuda_trainer_step(t->dev, t->step, &t->rays, st, err)) != ENG_OK) return rc;
        t->step++;
        t->host_stale = 1;
        return ENG_OK;
    }
    if (t->step % t->p.occ_every == 0 &&
        (rc = nerf_occgrid_update(t->grid, t->step, occ_density, t, err)) != ENG_OK)
        return rc;
    int64_t R = t->rays;
    if ((rc = ensure_rays(t, R, err)) != ENG_OK) return rc;
    ray_job rj = {t, (uint64_t)t->step};
    eng_pool_parallel_for(pool, R, RAY_GRAIN, make_rays, &rj);
    nerf_samples *s = &t->samples;
    if ((rc = nerf_march(s, t->grid, &t->mp, R, t->o, t->d, pool, err)) != ENG_OK) return rc;
    /* a step never takes more than twice the sample budget: drop the last rays */
    const int64_t cap = 2 * t->p.target_samples, marched = s->n;
    if (s->n > cap) {
        int64_t keep = R;
        while (keep > 1 && s->start[keep] > cap)
            keep--;
        s->n_rays = keep;
        s->n = s->start[keep];
        R = keep;
    }
    const int64_t n = s->n;
    if ((rc = ensure_samples(t, n, err)) != ENG_OK) return rc;
    if ((rc = nerf_field_fwd(t->field, t->s, t->sigma, t->rgb, s->pos, s->dir, n, t->scratch,
                             err)) != ENG_OK)
        return rc;
    nerf_composite_forward(s, t->sigma, t->rgb, t->bg, t->color, NULL, NULL, pool);
    double se = 0;
    const float scale = 2.0f / (float)(3 * R);
    for (int64_t k = 0; k < 3 * R; k++) {
        const float diff = t->color[k] - t->target[k];
        se += (double)diff * diff;
        t->d_color[k] = scale * diff;
    }
    nerf_composite_backward(s, t->sigma, t->rgb, t->bg, t->color, t->d_color, t->d_sigma, t->d_rgb,
                            pool);
    nerf_field_zero_grads(t->field, t->s);
    if ((rc = nerf_field_bwd(t->field, t->s, t->d_sigma, t->d_rgb, n, t->scratch, err)) != ENG_OK)
        return rc;
    if ((rc = nerf_adam_step(t->adam, t->s, (float *)nerf_field_param_tensor(t->field)->data,
                             (const float *)nerf_field_grad_tensor(t->field)->data,
                             lr_at(&t->p, t->step), err)) != ENG_OK)
        return rc;
    /* the next step's rays: about target_samples samples (from the rays marched, before any cut) */
    const double per_ray = (double)(marched > 0 ? marched : 1) / (double)t->rays;
    int64_t next = (int64_t)((double)t->p.target_samples / per_ray);
    next = next < MIN_RAYS ? MIN_RAYS : next > MAX_RAYS ? MAX_RAYS : next;
    t->rays = next;
    t->step++;
    if (st != NULL) {
        st->step = t->step;
        st->loss = se / (double)(3 * R);
        st->psnr = st->loss > 0 ? -10.0 * log10(st->loss) : 100.0;
        st->rays = R;
        st->samples = n;
        st->seconds = eng_bench_now_s() - t0;
    }
    return ENG_OK;
}

/* ---- rendering --------------------------------------------------------------------------------- */

typedef struct cam_job {
    float *o, *d;
    const float *c2w;
    const nerf_intrinsics *in;
    const nerf_dataset *ds;
    int64_t frame, w, first;
} cam_job;

static void cam_rays(void *user, int64_t begin, int64_t end) {
    const cam_job *j = (const cam_job *)user;
    for (int64_t r = begin; r < end; r++) {
        const int64_t pix = j->first + r, px = pix % j->w, py = pix / j->w;
        float *o = j->o + 3 * r, *d = j->d + 3 * r;
        if (j->ds != NULL) {
            nerf_dataset_ray(j->ds, j->frame, (float)px, (float)py, o, d);
            continue;
        }
        const float dc[3] = {((float)px + 0.5f - j->in->cx) / j->in->fx,
                             -((float)py + 0.5f - j->in->cy) / j->in->fy, -1.0f};
        float n = 0;
        for (int a = 0; a < 3; a++) {
            d[a] = j->c2w[4 * a] * dc[0] + j->c2w[4 * a + 1] * dc[1] + j->c2w[4 * a + 2] * dc[2];
            n += d[a] * d[a];
            o[a] = j->c2w[4 * a + 3];
        }
        n = sqrtf(n);
        for (int a = 0; a < 3; a++)
            d[a] /= n;
    }
}

static int render_rays(nerf_trainer *t,
                       float *rgb,
                       float *depth,
                       cam_job *cj,
                       int64_t n_pix,
                       const float bg[3],
                       eng_err *err) {
    int rc = ENG_OK;
    eng_pool *pool = eng_ctx_pool(t->ctx);
    if ((rc = ensure_rays(t, RENDER_TILE, err)) != ENG_OK) return rc;
    nerf_march_params mp = t->mp; /* rendering skips empty 8^3 blocks at once */
    mp.coarse_skip = 1;
    for (int64_t k = 0; k < RENDER_TILE; k++)
        for (int a = 0; a < 3; a++)
            t->bg[3 * k + a] = bg[a];
    for (int64_t first = 0; first < n_pix; first += RENDER_TILE) {
        const int64_t R = n_pix - first < RENDER_TILE ? n_pix - first : RENDER_TILE;
        cj->o = t->o, cj->d = t->d, cj->first = first;
        eng_pool_parallel_for(pool, R, RAY_GRAIN, cam_rays, cj);
        nerf_samples *s = &t->samples;
        if ((rc = nerf_march(s, t->grid, &mp, R, t->o, t->d, pool, err)) != ENG_OK) return rc;
        if (s->n > t->cap_samples) {
            if (grow_f(&t->sigma, s->n) || grow_f(&t->rgb, 3 * s->n) || grow_f(&t->d_sigma, s->n) ||
                grow_f(&t->d_rgb, 3 * s->n))
                return eng_err_set(err, ENG_E_OOM, "nerf_trainer_render: out of memory");
            t->cap_samples = s->n;
        }
        if ((rc = field_eval(t, t->sigma, t->rgb, s->pos, s->dir, s->n, err)) != ENG_OK) return rc;
        nerf_composite_forward(s, t->sigma, t->rgb, t->bg, rgb + 3 * first, t->opacity,
                               depth != NULL ? depth + first : t->depth_buf, pool);
    }
    return ENG_OK;
}

int nerf_trainer_render(nerf_trainer *t,
                        float *rgb,
                        float *depth,
                        const float c2w[12],
                        const nerf_intrinsics *in,
                        int64_t w,
                        int64_t h,
                        const float bg[3],
                        eng_err *err) {
    if (w < 1 || h < 1 || w > 16384 || h > 16384 || !(in->fx > 0) || !(in->fy > 0))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_trainer_render: %lldx%lld pixels, focal %g %g", (long long)w,
                           (long long)h, (double)in->fx, (double)in->fy);
    if (t->dev != NULL) return nerf_cuda_trainer_render(t->dev, rgb, depth, c2w, in, w, h, bg, err);
    cam_job cj = {NULL, NULL, c2w, in, NULL, 0, w, 0};
    return render_rays(t, rgb, depth, &cj, w * h, bg, err);
}

int nerf_trainer_render_frame(nerf_trainer *t,
                              float *rgb,
                              float *depth,
                              const nerf_dataset *ds,
                              int64_t frame,
                              const float bg[3],
                              eng_err *err) {
    if (frame < 0 || frame >= nerf_dataset_count(ds))
        return eng_err_set(err, ENG_E_INVALID_ARG, "nerf_trainer_render_frame: frame %lld of %lld",
                           (long long)frame, (long long)nerf_dataset_count(ds));
    if (t->dev != NULL)
        return nerf_cuda_trainer_render_frame(t->dev, rgb, depth, ds, frame, bg, err);
    cam_job cj = {NULL, NULL, NULL, NULL, ds, frame, nerf_dataset_width(ds), 0};
    return render_rays(t, rgb, depth, &cj, nerf_dataset_width(ds) * nerf_dataset_height(ds), bg,
                       err);
}

/* ---- snapshots --------------------------------------------------------------------------------- */

typedef struct meta_item {
    const char *key;
    char value[64];
} meta_item;

int nerf_trainer_save(nerf_trainer *t, const char *path, eng_err *err) {
    const int sync_rc = nerf_trainer_sync(t, err);
    if (sync_rc != ENG_OK) return sync_rc;
    const nerf_train_params *p = &t->p;
    const nerf_hashgrid_params *g = &p->field.grid;
    const nerf_occgrid_params *gp = nerf_occgrid_get_params(t->grid);
    meta_item m[] = {{"format", ""},
                     {"step", ""},
                     {"rays", ""},
                     {"aabb_scale", ""},
                     {"grid.levels", ""},
                     {"grid.features", ""},
                     {"grid.log2_table", ""},
                     {"grid.base_res", ""},
                     {"grid.desired_res", ""},
                     {"mlp.width", ""},
                     {"mlp.density", ""},
                     {"mlp.geo", ""},
                     {"mlp.color", ""},
                     {"field.seed", ""},
                     {"seed", ""},
                     {"target_samples", ""},
                     {"occ_every", ""},
                     {"occ_res", ""},
                     {"occ_cascades", ""},
                     {"lr", ""},
                     {"random_bg", ""},
                     {"contract", ""},
                     {"inner_radius", ""},
                     {"far", ""},
                     {"holdout", ""}};
    snprintf(m[0].value, 64, "%s", SNAPSHOT_FORMAT);
    snprintf(m[1].value, 64, "%lld", (long long)t->step);
    snprintf(m[2].value, 64, "%lld", (long long)t->rays);
    snprintf(m[3].value, 64, "%.9g", (double)t->aabb);
    snprintf(m[4].value, 64, "%d", g->n_levels);
    snprintf(m[5].value, 64, "%d", g->n_features);
    snprintf(m[6].value, 64, "%d", g->log2_table_size);
    snprintf(m[7].value, 64, "%d", g->base_resolution);
    snprintf(m[8].value, 64, "%.9g", (double)g->desired_resolution);
    snprintf(m[9].value, 64, "%lld", (long long)p->field.width);
    snprintf(m[10].value, 64, "%d", p->field.density_hidden_layers);
    snprintf(m[11].value, 64, "%lld", (long long)p->field.geo_features);
    snprintf(m[12].value, 64, "%d", p->field.color_hidden_layers);
    snprintf(m[13].value, 64, "%llu", (unsigned long long)p->field.seed);
    snprintf(m[14].value, 64, "%llu", (unsigned long long)p->seed);
    snprintf(m[15].value, 64, "%lld", (long long)p->target_samples);
    snprintf(m[16].value, 64, "%d", p->occ_every);
    snprintf(m[17].value, 64, "%d", gp->res);
    snprintf(m[18].value, 64, "%d", gp->cascades);
    snprintf(m[19].value, 64, "%.9g", (double)p->lr);
    snprintf(m[20].value, 64, "%d", p->random_bg);
    snprintf(m[21].value, 64, "%d", p->field.contract);
    snprintf(m[22].value, 64, "%.9g", (double)p->field.inner_radius);
    snprintf(m[23].value, 64, "%.9g", (double)p->far);
    snprintf(m[24].value, 64, "%lld", (long long)p->holdout);
    enum { NM = sizeof m / sizeof m[0] };
    eng_safetensors_kv kv[NM];
    for (int i = 0; i < NM; i++)
        kv[i].key = m[i].key, kv[i].value = m[i].value;
    const int64_t np = nerf_field_n_params(t->field);
    const int64_t cells = (int64_t)gp->res * gp->res * gp->res * gp->cascades;
    const eng_safetensors_entry e[5] = {
        {"params", NULL, ENG_SAFETENSORS_F32, 1, &np, nerf_field_param_tensor(t->field)->data},
        {"adam.m", NULL, ENG_SAFETENSORS_F32, 1, &np, nerf_adam_first_moment(t->adam)->data},
        {"adam.v", NULL, ENG_SAFETENSORS_F32, 1, &np, nerf_adam_second_moment(t->adam)->data},
        {"adam.t", NULL, ENG_SAFETENSORS_I32, 1, &np, nerf_adam_param_steps(t->adam)->data},
        {"occgrid", NULL, ENG_SAFETENSORS_F32, 1, &cells, nerf_occgrid_values(t->grid)},
    };
    return eng_safetensors_write(path, e, 5, kv, NM, err);
}

static int
meta_i64(int64_t *out, const eng_safetensors *f, const char *key, const char *path, eng_err *err) {
    const char *v = eng_safetensors_metadata_get(f, key);
    char *end = NULL;
    const long long x = v != NULL ? strtoll(v, &end, 10) : 0;
    if (v == NULL || end == v || *end != '\0')
        return eng_err_set(err, ENG_E_FORMAT, "nerf_trainer_load: %s: metadata \"%s\" %s", path,
                           key, v == NULL ? "is missing" : "is not an integer");
    *out = x;
    return ENG_OK;
}

static int
meta_f(float *out, const eng_safetensors *f, const char *key, const char *path, eng_err *err) {
    const char *v = eng_safetensors_metadata_get(f, key);
    char *end = NULL;
    const double x = v != NULL ? strtod(v, &end) : 0;
    if (v == NULL || end == v || *end != '\0' || !isfinite(x))
        return eng_err_set(err, ENG_E_FORMAT, "nerf_trainer_load: %s: metadata \"%s\" %s", path,
                           key, v == NULL ? "is missing" : "is not a number");
    *out = (float)x;
    return ENG_OK;
}

static int copy_tensor(void *dst,
                       const eng_safetensors *f,
                       const char *name,
                       eng_safetensors_dtype dt,
                       int64_t numel,
                       const char *path,
                       eng_err *err) {
    const eng_safetensors_info *i = eng_safetensors_find(f, name);
    if (i == NULL || i->dtype != dt || i->numel != numel)
        return eng_err_set(
            err, ENG_E_FORMAT, "nerf_trainer_load: %s: tensor \"%s\" %s (expected %lld values)",
            path, name, i == NULL ? "is missing" : "has the wrong type or size", (long long)numel);
    memcpy(dst, i->data, i->nbytes);
    return ENG_OK;
}

int nerf_trainer_load(nerf_trainer **out, eng_ctx *ctx, const char *path, eng_err *err) {
    int rc = ENG_OK;
    eng_safetensors *f = NULL;
    nerf_trainer *t = NULL;
    nerf_train_params p;
    int64_t v[16];
    float aabb = 1;
    ENG_ASSERT(out != NULL && ctx != NULL && path != NULL);
    *out = NULL;
    if ((rc = eng_safetensors_open(&f, path, err)) != ENG_OK) return rc;
    const char *fmt = eng_safetensors_metadata_get(f, "format");
    if (fmt == NULL || strcmp(fmt, SNAPSHOT_FORMAT) != 0) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "nerf_trainer_load: %s is not a NeRF snapshot (format \"%s\", expected "
                         "\"%s\")",
                         path, fmt != NULL ? fmt : "(none)", SNAPSHOT_FORMAT);
        goto done;
    }
    nerf_train_params_init(&p);
    static const char *const ikeys[] = {
        "step",          "rays",      "grid.levels",    "grid.features", "grid.log2_table",
        "grid.base_res", "mlp.width", "mlp.density",    "mlp.geo",       "mlp.color",
        "field.seed",    "seed",      "target_samples", "occ_every",     "occ_res",
        "random_bg"};
    for (int i = 0; i < 16; i++)
        if ((rc = meta_i64(&v[i], f, ikeys[i], path, err)) != ENG_OK) goto done;
    /* the contraction and the holdout came later: absent means off */
    int64_t contract = 0, holdout = 0;
    if ((eng_safetensors_metadata_get(f, "contract") != NULL &&
         (rc = meta_i64(&contract, f, "contract", path, err)) != ENG_OK) ||
        (eng_safetensors_metadata_get(f, "inner_radius") != NULL &&
         (rc = meta_f(&p.field.inner_radius, f, "inner_radius", path, err)) != ENG_OK) ||
        (eng_safetensors_metadata_get(f, "far") != NULL &&
         (rc = meta_f(&p.far, f, "far", path, err)) != ENG_OK) ||
        (eng_safetensors_metadata_get(f, "holdout") != NULL &&
         (rc = meta_i64(&holdout, f, "holdout", path, err)) != ENG_OK))
        goto done;
    if (contract != 0 && contract != 1) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "nerf_trainer_load: %s: metadata \"contract\" is %lld, expected 0 or 1",
                         path, (long long)contract);
        goto done;
    }
    p.field.contract = (int)contract;
    p.holdout = holdout;
    if ((rc = meta_f(&aabb, f, "aabb_scale", path, err)) != ENG_OK ||
        (rc = meta_f(&p.field.grid.desired_resolution, f, "grid.desired_res", path, err)) !=
            ENG_OK ||
        (rc = meta_f(&p.lr, f, "lr", path, err)) != ENG_OK)
        goto done;
    p.field.grid.n_levels = (int)v[2];
    p.field.grid.n_features = (int)v[3];
    p.field.grid.log2_table_size = (int)v[4];
    p.field.grid.base_resolution = (int)v[5];
    p.field.width = v[6];
    p.field.density_hidden_layers = (int)v[7];
    p.field.geo_features = v[8];
    p.field.color_hidden_layers = (int)v[9];
    p.field.seed = (uint64_t)v[10];
    p.seed = (uint64_t)v[11];
    p.target_samples = v[12];
    p.occ_every = (int)v[13];
    p.occ_res = (int)v[14];
    p.random_bg = (int)v[15];
    p.initial_rays = v[1] > 0 ? v[1] : p.initial_rays;
    if (!(aabb >= 1 && aabb <= 128) || v[0] < 0 || v[1] < 1 || v[14] < 8 || v[14] > 512 ||
        v[12] < 1024) {
        rc = eng_err_set(err, ENG_E_FORMAT, "nerf_trainer_load: %s: metadata out of range", path);
        goto done;
    }
    if ((rc = check_params(&p, err)) != ENG_OK) goto done;
    if ((rc = new_trainer(&t, ctx, &p, aabb, err)) != ENG_OK) goto done;
    const int64_t np = nerf_field_n_params(t->field);
    const nerf_occgrid_params *gp = nerf_occgrid_get_params(t->grid);
    const int64_t cells = (int64_t)gp->res * gp->res * gp->res * gp->cascades;
    if ((rc = copy_tensor(nerf_field_param_tensor(t->field)->data, f, "params", ENG_SAFETENSORS_F32,
                          np, path, err)) != ENG_OK ||
        (rc = copy_tensor(nerf_adam_first_moment(t->adam)->data, f, "adam.m", ENG_SAFETENSORS_F32,
                          np, path, err)) != ENG_OK ||
        (rc = copy_tensor(nerf_adam_second_moment(t->adam)->data, f, "adam.v", ENG_SAFETENSORS_F32,
                          np, path, err)) != ENG_OK ||
        (rc = copy_tensor(nerf_adam_param_steps(t->adam)->data, f, "adam.t", ENG_SAFETENSORS_I32,
                          np, path, err)) != ENG_OK ||
        (rc = copy_tensor(nerf_occgrid_values(t->grid), f, "occgrid", ENG_SAFETENSORS_F32, cells,
                          path, err)) != ENG_OK)
        goto done;
    nerf_occgrid_refresh(t->grid);
    nerf_adam_set_step_count(t->adam, v[0]);
    t->step = v[0];
    t->rays = v[1];
    *out = t;
    t = NULL;
done:
    nerf_trainer_destroy(t);
    eng_safetensors_close(f);
    return rc;
}
