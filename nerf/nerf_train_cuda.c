/* nerf_train_cuda.c: the trainer's device path (nerf_train_cuda.h): the model's state on the
 * device, one training step, the occupancy updates and rendering as sequences of the launchers of
 * nerf_cuda.h and nerf_train_cuda.h. Without CUDA only nerf_train_cam_of_frame does anything. */
#include "nerf_train_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eng_bench.h"
#include "nerf_cuda.h"

enum { MIN_RAYS = 256, MAX_RAYS = 1 << 20 }; /* nerf_train.c's bounds on the ray count */

void nerf_train_cam_of_frame(nerf_train_cam *cam, const nerf_dataset *ds, int64_t frame) {
    ENG_ASSERT(cam != NULL && ds != NULL);
    const nerf_intrinsics in = nerf_dataset_intrinsics(ds, frame);
    nerf_dataset_c2w_model(ds, frame, cam->c2w);
    cam->fx = in.fx, cam->fy = in.fy, cam->cx = in.cx, cam->cy = in.cy;
    cam->k1 = in.k1, cam->k2 = in.k2, cam->p1 = in.p1, cam->p2 = in.p2;
}

#ifndef ENG_HAVE_CUDA

static int unsupported(const char *fn, eng_err *err) {
    return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: built without CUDA", fn);
}

int nerf_cuda_trainer_create(nerf_cuda_trainer **out,
                             eng_ctx *ctx,
                             nerf_field *field,
                             nerf_adam *adam,
                             nerf_occgrid *grid,
                             const nerf_dataset *ds,
                             const nerf_train_params *p,
                             const nerf_march_params *mp,
                             eng_err *err) {
    (void)ctx, (void)field, (void)adam, (void)grid, (void)ds, (void)p, (void)mp;
    if (out != NULL) *out = NULL;
    return unsupported(__func__, err);
}
void nerf_cuda_trainer_destroy(nerf_cuda_trainer *t) {
    (void)t;
}
int nerf_cuda_trainer_set_dataset(nerf_cuda_trainer *t, const nerf_dataset *ds, eng_err *err) {
    (void)t, (void)ds;
    return unsupported(__func__, err);
}
int nerf_cuda_trainer_step(
    nerf_cuda_trainer *t, int64_t step, int64_t *rays, nerf_step_stats *stats, eng_err *err) {
    (void)t, (void)step, (void)rays, (void)stats;
    return unsupported(__func__, err);
}
int nerf_cuda_trainer_download(
    nerf_cuda_trainer *t, nerf_field *field, nerf_adam *adam, nerf_occgrid *grid, eng_err *err) {
    (void)t, (void)field, (void)adam, (void)grid;
    return unsupported(__func__, err);
}
int nerf_cuda_trainer_upload(
    nerf_cuda_trainer *t, nerf_field *field, nerf_adam *adam, nerf_occgrid *grid, eng_err *err) {
    (void)t, (void)field, (void)adam, (void)grid;
    return unsupported(__func__, err);
}
int nerf_cuda_trainer_render(nerf_cuda_trainer *t,
                             float *rgb,
                             float *depth,
                             const float c2w[12],
                             const nerf_intrinsics *in,
                             int64_t w,
                             int64_t h,
                             const float bg[3],
                             eng_err *err) {
    (void)t, (void)rgb, (void)depth, (void)c2w, (void)in, (void)w, (void)h, (void)bg;
    return unsupported(__func__, err);
}
int nerf_cuda_trainer_render_frame(nerf_cuda_trainer *t,
                                   float *rgb,
                                   float *depth,
                                   const nerf_dataset *ds,
                                   int64_t frame,
                                   const float bg[3],
                                   eng_err *err) {
    (void)t, (void)rgb, (void)depth, (void)ds, (void)frame, (void)bg;
    return unsupported(__func__, err);
}

#else /* ENG_HAVE_CUDA */

struct nerf_cuda_trainer {
    eng_ctx *ctx;
    eng_alloc *dev;       /* the device allocator: state and the arena's chunks */
    const eng_backend *b; /* copies and stream waits */
    eng_stream s;         /* the context's CUDA stream with our arena */
    eng_arena *arena;     /* per-step and per-render buffers, reset at each */
    nerf_train_params p;
    float aabb; /* the dataset's aabb_scale (contracted models: 0 until a dataset is set) */
    nerf_cuda_field f;
    nerf_adam_params ap;
    nerf_occgrid_params gp;
    nerf_march_params mp;
    int64_t adam_steps;
    /* state (device) */
    float *params, *grads, *m, *v;
    uint32_t *at;
    float *occ_values;
    uint8_t *occ_bits;
    double *se; /* the step's sum of squared errors */
    /* the dataset (device): NULL when none */
    nerf_train_cam *cams;
    uint8_t *rgba;
    int64_t n_frames, w, h;
};

/* ---- memory and copies ------------------------------------------------------------------------ */

static int
take_state(nerf_cuda_trainer *t, void **p, size_t bytes, const char *owner, eng_err *err) {
    return eng_alloc_take(t->dev, p, bytes > 0 ? bytes : 1, ENG_LIFE_STATE, owner, err);
}

/* A per-step buffer from the arena (0 bytes still gives a valid pointer). */
static int take(nerf_cuda_trainer *t, void **p, size_t bytes, const char *what, eng_err *err) {
    const int rc = eng_arena_take(t->arena, p, bytes > 0 ? bytes : 1, err);
    if (rc != ENG_OK) eng_err_prefix(err, "nerf_cuda_trainer: %s", what);
    return rc;
}

static int h2d(nerf_cuda_trainer *t, void *dst, const void *src, size_t bytes, eng_err *err) {
    if (bytes == 0) return ENG_OK;
    return t->b->copy(t->b->impl, &t->s, dst, src, bytes, ENG_COPY_H2D, err);
}

/* Waits for the stream (the backend's device-to-host copy does), then copies. */
static int d2h(nerf_cuda_trainer *t, void *dst, const void *src, size_t bytes, eng_err *err) {
    if (bytes == 0) return ENG_OK;
    return t->b->copy(t->b->impl, &t->s, dst, src, bytes, ENG_COPY_D2H, err);
}

static int64_t occ_total(const nerf_occgrid_params *g) {
    return (int64_t)g->res * g->res * g->res * g->cascades;
}

/* The CPU model has the shapes of the device one. */
static int check_model(const nerf_cuda_trainer *t,
                       const char *fn,
                       const nerf_field *field,
                       const nerf_adam *adam,
                       const nerf_occgrid *grid,
                       eng_err *err) {
    const nerf_field_layout l = nerf_field_get_layout(field);
    const nerf_adam_params *ap = nerf_adam_get_params(adam);
    const nerf_occgrid_params *gp = nerf_occgrid_get_params(grid);
    if (memcmp(&l, &t->f.layout, sizeof l) != 0 || ap->n_params != l.n_params ||
        ap->n_matrix != l.n_matrix || gp->res != t->gp.res || gp->cascades != t->gp.cascades)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: the CPU model (%lld parameters, %lld in matrices, Adam over %lld, "
                           "grid %d^3 x %d) differs from the device's (%lld, %lld, grid %d^3 x %d)",
                           fn, (long long)l.n_params, (long long)l.n_matrix,
                           (long long)ap->n_params, gp->res, gp->cascades,
                           (long long)t->f.layout.n_params, (long long)t->f.layout.n_matrix,
                           t->gp.res, t->gp.cascades);
    return ENG_OK;
}

/* The trainer's march parameters must contract (or not) as the field and the grid do. */
static int check_contract(const nerf_march_params *mp,
                          const nerf_field_params *fp,
                          const nerf_occgrid_params *gp,
                          eng_err *err) {
    if ((fp->contract != 0) != (gp->contract != 0) || (fp->contract != 0) != (mp->contract != 0) ||
        (fp->contract &&
         (fp->inner_radius != gp->inner_radius || fp->inner_radius != mp->inner_radius)))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_cuda_trainer_create: the field is %s (inner radius %g) but the "
                           "occupancy grid is %s (inner radius %g) and the march %s (%g)",
                           fp->contract ? "contracted" : "not contracted", (double)fp->inner_radius,
                           gp->contract ? "contracted" : "not contracted", (double)gp->inner_radius,
                           mp->contract ? "contracted" : "not", (double)mp->inner_radius);
    return ENG_OK;
}

/* ---- creation --------------------------------------------------------------------------------- */

int nerf_cuda_trainer_upload(
    nerf_cuda_trainer *t, nerf_field *field, nerf_adam *adam, nerf_occgrid *grid, eng_err *err) {
    int rc;
    ENG_ASSERT(t != NULL && field != NULL && adam != NULL && grid != NULL);
    if ((rc = check_model(t, __func__, field, adam, grid, err)) != ENG_OK) return rc;
    const size_t np = (size_t)t->f.layout.n_params, cells = (size_t)occ_total(&t->gp);
    if ((rc = h2d(t, t->params, nerf_field_param_tensor(field)->data, np * 4, err)) != ENG_OK ||
        (rc = h2d(t, t->m, nerf_adam_first_moment(adam)->data, np * 4, err)) != ENG_OK ||
        (rc = h2d(t, t->v, nerf_adam_second_moment(adam)->data, np * 4, err)) != ENG_OK ||
        (rc = h2d(t, t->at, nerf_adam_param_steps(adam)->data, np * 4, err)) != ENG_OK ||
        (rc = h2d(t, t->occ_values, nerf_occgrid_values(grid), cells * 4, err)) != ENG_OK ||
        (rc = h2d(t, t->occ_bits, nerf_occgrid_bits(grid), cells, err)) != ENG_OK ||
        (rc = t->b->stream_sync(t->b->impl, &t->s, err)) != ENG_OK) /* sources are pageable */
        return rc;
    t->adam_steps = nerf_adam_step_count(adam);
    return ENG_OK;
}

int nerf_cuda_trainer_download(
    nerf_cuda_trainer *t, nerf_field *field, nerf_adam *adam, nerf_occgrid *grid, eng_err *err) {
    int rc;
    ENG_ASSERT(t != NULL && field != NULL && adam != NULL && grid != NULL);
    if ((rc = check_model(t, __func__, field, adam, grid, err)) != ENG_OK) return rc;
    const size_t np = (size_t)t->f.layout.n_params, cells = (size_t)occ_total(&t->gp);
    if ((rc = d2h(t, nerf_field_param_tensor(field)->data, t->params, np * 4, err)) != ENG_OK ||
        (rc = d2h(t, nerf_adam_first_moment(adam)->data, t->m, np * 4, err)) != ENG_OK ||
        (rc = d2h(t, nerf_adam_second_moment(adam)->data, t->v, np * 4, err)) != ENG_OK ||
        (rc = d2h(t, nerf_adam_param_steps(adam)->data, t->at, np * 4, err)) != ENG_OK ||
        (rc = d2h(t, nerf_occgrid_values(grid), t->occ_values, cells * 4, err)) != ENG_OK ||
        (rc = d2h(t, nerf_occgrid_bits(grid), t->occ_bits, cells, err)) != ENG_OK)
        return rc;
    nerf_adam_set_step_count(adam, t->adam_steps);
    return ENG_OK;
}

static void drop_dataset(nerf_cuda_trainer *t) {
    eng_alloc_give(t->dev, t->cams);
    eng_alloc_give(t->dev, t->rgba);
    t->cams = NULL;
    t->rgba = NULL;
    t->n_frames = t->w = t->h = 0;
}

int nerf_cuda_trainer_set_dataset(nerf_cuda_trainer *t, const nerf_dataset *ds, eng_err *err) {
    int rc = ENG_OK;
    nerf_train_cam *cams = NULL;
    ENG_ASSERT(t != NULL);
    drop_dataset(t);
    if (ds == NULL) return ENG_OK;
    const int64_t n = nerf_dataset_count(ds), w = nerf_dataset_width(ds),
                  h = nerf_dataset_height(ds);
    const uint8_t *px = nerf_dataset_pixels(ds);
    if (!(t->aabb > 0)) t->aabb = nerf_dataset_aabb_scale(ds); /* contracted, the first */
    const float aabb = t->aabb;
    if (n < 1 || w < 1 || h < 1 || px == NULL || nerf_train_frames(t->p.holdout, n) < 1)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_cuda_trainer_set_dataset: %s: %lld frames of %lldx%lld pixels%s, "
                           "holdout %lld",
                           nerf_dataset_json_path(ds), (long long)n, (long long)w, (long long)h,
                           px == NULL ? " (no images loaded)" : "", (long long)t->p.holdout);
    if (nerf_dataset_aabb_scale(ds) != aabb)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_cuda_trainer_set_dataset: %s has aabb_scale %g, the model %g",
                           nerf_dataset_json_path(ds), (double)nerf_dataset_aabb_scale(ds),
                           (double)aabb);
    if ((cams = (nerf_train_cam *)malloc((size_t)n * sizeof *cams)) == NULL)
        return eng_err_set(err, ENG_E_OOM, "nerf_cuda_trainer_set_dataset: out of memory");
    for (int64_t f = 0; f < n; f++)
        nerf_train_cam_of_frame(&cams[f], ds, f);
    const size_t pix_bytes = (size_t)n * (size_t)h * (size_t)w * 4;
    if ((rc = take_state(t, (void **)&t->cams, (size_t)n * sizeof *cams, "nerf.cuda.cams", err)) !=
            ENG_OK ||
        (rc = take_state(t, (void **)&t->rgba, pix_bytes, "nerf.cuda.pixels", err)) != ENG_OK ||
        (rc = h2d(t, t->cams, cams, (size_t)n * sizeof *cams, err)) != ENG_OK ||
        (rc = h2d(t, t->rgba, px, pix_bytes, err)) != ENG_OK ||
        (rc = t->b->stream_sync(t->b->impl, &t->s, err)) != ENG_OK)
        goto done;
    t->n_frames = n, t->w = w, t->h = h;
done:
    if (rc != ENG_OK) drop_dataset(t);
    free(cams);
    return rc;
}

int nerf_cuda_trainer_create(nerf_cuda_trainer **out,
                             eng_ctx *ctx,
                             nerf_field *field,
                             nerf_adam *adam,
                             nerf_occgrid *grid,
                             const nerf_dataset *ds,
                             const nerf_train_params *p,
                             const nerf_march_params *mp,
                             eng_err *err) {
    int rc = ENG_OK;
    nerf_cuda_trainer *t = NULL;
    ENG_ASSERT(out != NULL && ctx != NULL && field != NULL && adam != NULL && grid != NULL &&
               p != NULL && mp != NULL);
    *out = NULL;
    eng_stream *cs = eng_ctx_stream(ctx, ENG_DEVICE_CUDA);
    if (eng_ctx_alloc(ctx, ENG_DEVICE_CUDA) == NULL || cs == NULL ||
        eng_ctx_backend(ctx, ENG_DEVICE_CUDA) == NULL)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_cuda_trainer_create: the context has no CUDA device attached "
                           "(eng_cuda_attach)");
    if (p->target_samples < 1024 || p->occ_every < 1 || !(p->lr >= 0 && isfinite(p->lr)) ||
        p->holdout < 0 || p->holdout == 1)
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_cuda_trainer_create: target_samples %lld (>= 1024), occ_every "
                           "%d (>= 1), lr %g, holdout %lld (0 or >= 2)",
                           (long long)p->target_samples, p->occ_every, (double)p->lr,
                           (long long)p->holdout);
    if ((t = (nerf_cuda_trainer *)calloc(1, sizeof *t)) == NULL)
        return eng_err_set(err, ENG_E_OOM, "nerf_cuda_trainer_create: out of memory");
    t->ctx = ctx;
    t->dev = eng_ctx_alloc(ctx, ENG_DEVICE_CUDA);
    t->b = eng_ctx_backend(ctx, ENG_DEVICE_CUDA);
    t->p = *p;
    const nerf_field_params *fp = nerf_field_get_params(field);
    if ((rc = nerf_cuda_field_init(&t->f, fp, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_cuda_trainer_create");
        goto done;
    }
    t->ap = *nerf_adam_get_params(adam);
    t->gp = *nerf_occgrid_get_params(grid);
    /* contracted, the grid's aabb_scale is 4 r, not the dataset's: take the dataset's */
    t->aabb = !fp->contract ? fp->grid.aabb_scale : ds != NULL ? nerf_dataset_aabb_scale(ds) : 0;
    if ((rc = check_contract(mp, fp, &t->gp, err)) != ENG_OK) goto done;
    t->mp = *mp;
    if ((rc = eng_arena_create(&t->arena, t->dev, "nerf.cuda.step", err)) != ENG_OK) goto done;
    t->s = *cs;
    t->s.arena = t->arena;
    const size_t np = (size_t)t->f.layout.n_params, cells = (size_t)occ_total(&t->gp);
    if ((rc = take_state(t, (void **)&t->params, np * 4, "nerf.cuda.params", err)) != ENG_OK ||
        (rc = take_state(t, (void **)&t->grads, np * 4, "nerf.cuda.grads", err)) != ENG_OK ||
        (rc = take_state(t, (void **)&t->m, np * 4, "nerf.cuda.adam", err)) != ENG_OK ||
        (rc = take_state(t, (void **)&t->v, np * 4, "nerf.cuda.adam", err)) != ENG_OK ||
        (rc = take_state(t, (void **)&t->at, np * 4, "nerf.cuda.adam", err)) != ENG_OK ||
        (rc = take_state(t, (void **)&t->occ_values, cells * 4, "nerf.cuda.occgrid", err)) !=
            ENG_OK ||
        (rc = take_state(t, (void **)&t->occ_bits, cells, "nerf.cuda.occgrid", err)) != ENG_OK ||
        (rc = take_state(t, (void **)&t->se, sizeof(double), "nerf.cuda.loss", err)) != ENG_OK)
        goto done;
    if ((rc = nerf_cuda_trainer_upload(t, field, adam, grid, err)) != ENG_OK ||
        (rc = nerf_cuda_trainer_set_dataset(t, ds, err)) != ENG_OK)
        goto done;
    *out = t;
    t = NULL;
done:
    nerf_cuda_trainer_destroy(t);
    return rc;
}

void nerf_cuda_trainer_destroy(nerf_cuda_trainer *t) {
    if (t == NULL) return;
    if (t->b != NULL) {
        eng_err err = {0};
        if (t->b->stream_sync(t->b->impl, &t->s, &err) != ENG_OK) /* nothing may still run */
            eng_log(NULL, ENG_LOG_WARN, "nerf_cuda_trainer_destroy: %s", err.msg);
    }
    drop_dataset(t);
    void *state[] = {t->params, t->grads, t->m, t->v, t->at, t->occ_values, t->occ_bits, t->se};
    for (size_t i = 0; i < sizeof state / sizeof state[0]; i++)
        eng_alloc_give(t->dev, state[i]);
    eng_arena_destroy(t->arena);
    free(t);
}

/* ---- training ----------------------------------------------------------------------------------- */

static nerf_cuda_occ occ_of(const nerf_cuda_trainer *t) {
    const nerf_cuda_occ o = {t->occ_bits, t->gp.cascades, t->gp.res};
    return o;
}

/* nerf_occgrid_update at `step` on the device: picks, densities in chunks, the update. */
static int occ_update(nerf_cuda_trainer *t, int64_t step, eng_err *err) {
    int rc = ENG_OK;
    const eng_arena_pos mark = eng_arena_mark(t->arena);
    const int64_t n_pick = nerf_cuda_occgrid_pick_count(&t->gp, step), total = occ_total(&t->gp);
    const int64_t chunk = n_pick < NERF_CUDA_DENSITY_CHUNK ? n_pick : NERF_CUDA_DENSITY_CHUNK;
    int64_t *idx = NULL;
    float *pos = NULL, *sigma = NULL, *fresh = NULL, *scratch = NULL;
    if ((rc = take(t, (void **)&idx, (size_t)n_pick * sizeof *idx, "occupancy picks", err)) !=
            ENG_OK ||
        (rc = take(t, (void **)&pos, (size_t)n_pick * 3 * sizeof *pos, "occupancy picks", err)) !=
            ENG_OK ||
        (rc = take(t, (void **)&sigma, (size_t)n_pick * sizeof *sigma, "occupancy picks", err)) !=
            ENG_OK ||
        (rc = take(t, (void **)&fresh, (size_t)total * sizeof *fresh, "occupancy update", err)) !=
            ENG_OK ||
        (rc = take(t, (void **)&scratch,
                   (size_t)nerf_cuda_field_scratch_floats(&t->f, chunk) * sizeof *scratch,
                   "density scratch", err)) != ENG_OK)
        goto done;
    if ((rc = nerf_cuda_occgrid_pick(&t->gp, &t->s, step, idx, pos, t->occ_bits, err)) != ENG_OK)
        goto done;
    for (int64_t b = 0; b < n_pick; b += chunk) {
        const int64_t m = n_pick - b < chunk ? n_pick - b : chunk;
        if ((rc = nerf_cuda_field_fwd(&t->f, &t->s, sigma + b, NULL, pos + 3 * b, NULL, m,
                                      t->params, scratch, err)) != ENG_OK)
            goto done;
    }
    rc = nerf_cuda_occgrid_update(&t->gp, &t->s, t->occ_values, t->occ_bits, fresh, idx, sigma,
                                  n_pick, err);
done:
    eng_arena_rewind(t->arena, mark); /* queued work keeps stream order with later reuse */
    return rc;
}

/* The samples of rays [0, R) marched into the arena: start (R + 1) given, the kept rays and
 * samples (nerf_cuda_march_count's cap rule), their arrays filled. *marched = all rays' samples. */
static int march(nerf_cuda_trainer *t,
                 nerf_cuda_samples *smp,
                 int64_t *marched,
                 int64_t *start,
                 int64_t R,
                 const float *o,
                 const float *d,
                 int64_t cap,
                 eng_err *err) {
    int rc;
    const nerf_cuda_occ occ = occ_of(t);
    int64_t kept = 0, n = 0;
    memset(smp, 0, sizeof *smp);
    if ((rc = nerf_cuda_march_count(&occ, &t->mp, &t->s, start, R, o, d, cap, marched, &kept,
                                    err)) != ENG_OK)
        return rc;
    n = *marched;
    if (kept < R && (rc = d2h(t, &n, start + kept, sizeof n, err)) != ENG_OK) return rc;
    smp->n_rays = kept;
    smp->n = n;
    smp->start = start;
    if ((rc = take(t, (void **)&smp->pos, (size_t)n * 3 * sizeof(float), "samples", err)) !=
            ENG_OK ||
        (rc = take(t, (void **)&smp->dir, (size_t)n * 3 * sizeof(float), "samples", err)) !=
            ENG_OK ||
        (rc = take(t, (void **)&smp->t, (size_t)n * sizeof(float), "samples", err)) != ENG_OK ||
        (rc = take(t, (void **)&smp->dt, (size_t)n * sizeof(float), "samples", err)) != ENG_OK)
        return rc;
    return nerf_cuda_march_fill(&occ, &t->mp, &t->s, smp, o, d, err);
}

int nerf_cuda_trainer_step(
    nerf_cuda_trainer *t, int64_t step, int64_t *rays, nerf_step_stats *stats, eng_err *err) {
    int rc = ENG_OK;
    const double t0 = eng_bench_now_s();
    ENG_ASSERT(t != NULL && rays != NULL);
    if (t->rgba == NULL)
        return eng_err_set(err, ENG_E_INVALID_ARG, "nerf_cuda_trainer_step: no dataset attached");
    if (*rays < 1 || step < 0)
        return eng_err_set(err, ENG_E_INVALID_ARG, "nerf_cuda_trainer_step: step %lld, %lld rays",
                           (long long)step, (long long)*rays);
    const int64_t R0 = *rays;
    int64_t marched = 0;
    double se = 0.0;
    float *o = NULL, *d = NULL, *target = NULL, *bg = NULL, *color = NULL, *d_color = NULL;
    float *sigma = NULL, *rgb = NULL, *d_sigma = NULL, *d_rgb = NULL, *scratch = NULL;
    int64_t *start = NULL;
    nerf_cuda_samples smp;
    eng_arena_reset(t->arena); /* the device is idle: the last step ended waiting for its loss */
    if (step % t->p.occ_every == 0 && (rc = occ_update(t, step, err)) != ENG_OK) goto done;
    const size_t ray3 = (size_t)R0 * 3 * sizeof(float);
    if ((rc = take(t, (void **)&o, ray3, "rays", err)) != ENG_OK ||
        (rc = take(t, (void **)&d, ray3, "rays", err)) != ENG_OK ||
        (rc = take(t, (void **)&target, ray3, "rays", err)) != ENG_OK ||
        (rc = take(t, (void **)&bg, ray3, "rays", err)) != ENG_OK ||
        (rc = take(t, (void **)&color, ray3, "rays", err)) != ENG_OK ||
        (rc = take(t, (void **)&d_color, ray3, "rays", err)) != ENG_OK ||
        (rc = take(t, (void **)&start, (size_t)(R0 + 1) * sizeof *start, "rays", err)) != ENG_OK)
        goto done;
    if ((rc = nerf_cuda_train_rays(&t->s, o, d, target, bg, R0, t->cams, t->rgba, t->n_frames, t->w,
                                   t->h, t->p.seed, (uint64_t)step, t->p.random_bg, t->p.holdout,
                                   err)) != ENG_OK)
        goto done;
    /* a step never takes more than twice the sample budget: the last rays are dropped */
    if ((rc = march(t, &smp, &marched, start, R0, o, d, 2 * t->p.target_samples, err)) != ENG_OK)
        goto done;
    const int64_t R = smp.n_rays, n = smp.n;
    if ((rc = take(t, (void **)&sigma, (size_t)n * sizeof *sigma, "samples", err)) != ENG_OK ||
        (rc = take(t, (void **)&rgb, (size_t)n * 3 * sizeof *rgb, "samples", err)) != ENG_OK ||
        (rc = take(t, (void **)&d_sigma, (size_t)n * sizeof *d_sigma, "samples", err)) != ENG_OK ||
        (rc = take(t, (void **)&d_rgb, (size_t)n * 3 * sizeof *d_rgb, "samples", err)) != ENG_OK ||
        (rc = take(t, (void **)&scratch,
                   (size_t)nerf_cuda_field_scratch_floats(&t->f, n) * sizeof *scratch,
                   "field scratch", err)) != ENG_OK)
        goto done;
    if ((rc = nerf_cuda_field_fwd(&t->f, &t->s, sigma, rgb, smp.pos, smp.dir, n, t->params, scratch,
                                  err)) != ENG_OK ||
        (rc = nerf_cuda_composite_fwd(&smp, &t->s, sigma, rgb, bg, color, NULL, NULL, err)) !=
            ENG_OK ||
        (rc = nerf_cuda_l2_loss(&t->s, d_color, t->se, color, target, 3 * R, err)) != ENG_OK ||
        (rc = nerf_cuda_composite_bwd(&smp, &t->s, sigma, rgb, bg, color, d_color, d_sigma, d_rgb,
                                      err)) != ENG_OK ||
        (rc = nerf_cuda_fill_f32(&t->s, t->grads, t->f.layout.n_params, 0.0f, err)) != ENG_OK ||
        (rc = nerf_cuda_field_bwd(&t->f, &t->s, t->grads, d_sigma, d_rgb, n, t->params, scratch,
                                  err)) != ENG_OK ||
        (rc = nerf_cuda_adam_step(&t->ap, &t->s, t->params, t->m, t->v, t->at, t->grads,
                                  nerf_train_lr_at(t->p.lr, step), err)) != ENG_OK)
        goto done;
    t->adam_steps++;
    /* the next step's rays: about target_samples samples (from the rays marched, before any cut) */
    const double per_ray = (double)(marched > 0 ? marched : 1) / (double)R0;
    int64_t next = (int64_t)((double)t->p.target_samples / per_ray);
    next = next < MIN_RAYS ? MIN_RAYS : next > MAX_RAYS ? MAX_RAYS : next;
    *rays = next;
    if ((rc = d2h(t, &se, t->se, sizeof se, err)) != ENG_OK) goto done; /* waits for the step */
    if (stats != NULL) {
        stats->step = step + 1;
        stats->loss = se / (double)(3 * R);
        stats->psnr = stats->loss > 0 ? -10.0 * log10(stats->loss) : 100.0;
        stats->rays = R;
        stats->samples = n;
        stats->seconds = eng_bench_now_s() - t0;
    }
done:
    if (rc != ENG_OK) {
        /* nothing queued may outlive the arena's next reset */
        eng_err e2 = {0};
        (void)t->b->stream_sync(t->b->impl, &t->s, &e2);
    }
    return rc;
}

/* ---- rendering -------------------------------------------------------------------------------- */

static int render_cam(nerf_cuda_trainer *t,
                      float *rgb,
                      float *depth,
                      const nerf_train_cam *cam,
                      int pinhole,
                      int64_t w,
                      int64_t h,
                      const float bg[3],
                      eng_err *err) {
    int rc = ENG_OK;
    const int64_t npix = w * h, T = npix < NERF_CUDA_RENDER_TILE ? npix : NERF_CUDA_RENDER_TILE;
    float *img = NULL, *dimg = NULL, *o = NULL, *d = NULL, *bgt = NULL;
    float *sigma = NULL, *col = NULL, *scratch = NULL;
    int64_t *start = NULL;
    eng_arena_reset(t->arena); /* the device is idle between calls */
    if ((rc = take(t, (void **)&img, (size_t)npix * 3 * sizeof *img, "image", err)) != ENG_OK ||
        (depth != NULL &&
         (rc = take(t, (void **)&dimg, (size_t)npix * sizeof *dimg, "image", err)) != ENG_OK) ||
        (rc = take(t, (void **)&o, (size_t)T * 3 * sizeof *o, "rays", err)) != ENG_OK ||
        (rc = take(t, (void **)&d, (size_t)T * 3 * sizeof *d, "rays", err)) != ENG_OK ||
        (rc = take(t, (void **)&bgt, (size_t)T * 3 * sizeof *bgt, "rays", err)) != ENG_OK ||
        (rc = take(t, (void **)&start, (size_t)(T + 1) * sizeof *start, "rays", err)) != ENG_OK)
        goto done;
    if ((rc = nerf_cuda_fill3_f32(&t->s, bgt, T, bg, err)) != ENG_OK) goto done;
    const eng_arena_pos mark = eng_arena_mark(t->arena);
    for (int64_t first = 0; first < npix;) {
        const int64_t R = npix - first < T ? npix - first : T;
        int64_t marched = 0;
        nerf_cuda_samples smp;
        /* the last tile's work is done: march_count waited for the stream */
        eng_arena_rewind(t->arena, mark);
        if ((rc = nerf_cuda_cam_rays(&t->s, o, d, R, cam, pinhole, w, first, err)) != ENG_OK ||
            (rc = march(t, &smp, &marched, start, R, o, d, NERF_CUDA_RENDER_SAMPLES, err)) !=
                ENG_OK)
            goto done;
        const int64_t n = smp.n;
        if ((rc = take(t, (void **)&sigma, (size_t)n * sizeof *sigma, "samples", err)) != ENG_OK ||
            (rc = take(t, (void **)&col, (size_t)n * 3 * sizeof *col, "samples", err)) != ENG_OK ||
            (rc = take(t, (void **)&scratch,
                       (size_t)nerf_cuda_field_scratch_floats(&t->f, n) * sizeof *scratch,
                       "field scratch", err)) != ENG_OK)
            goto done;
        if ((rc = nerf_cuda_field_fwd(&t->f, &t->s, sigma, col, smp.pos, smp.dir, n, t->params,
                                      scratch, err)) != ENG_OK ||
            (rc = nerf_cuda_composite_fwd(&smp, &t->s, sigma, col, bgt, img + 3 * first, NULL,
                                          dimg != NULL ? dimg + first : NULL, err)) != ENG_OK)
            goto done;
        first += smp.n_rays; /* >= 1: the cap keeps at least one ray */
    }
    if ((rc = d2h(t, rgb, img, (size_t)npix * 3 * sizeof *rgb, err)) != ENG_OK ||
        (depth != NULL && (rc = d2h(t, depth, dimg, (size_t)npix * sizeof *depth, err)) != ENG_OK))
        goto done;
done:
    if (rc != ENG_OK) {
        eng_err e2 = {0};
        (void)t->b->stream_sync(t->b->impl, &t->s, &e2);
    }
    return rc;
}

int nerf_cuda_trainer_render(nerf_cuda_trainer *t,
                             float *rgb,
                             float *depth,
                             const float c2w[12],
                             const nerf_intrinsics *in,
                             int64_t w,
                             int64_t h,
                             const float bg[3],
                             eng_err *err) {
    ENG_ASSERT(t != NULL && rgb != NULL && c2w != NULL && in != NULL && bg != NULL);
    if (w < 1 || h < 1 || w > 16384 || h > 16384 || !(in->fx > 0) || !(in->fy > 0))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_cuda_trainer_render: %lldx%lld pixels, focal %g %g", (long long)w,
                           (long long)h, (double)in->fx, (double)in->fy);
    nerf_train_cam cam;
    memset(&cam, 0, sizeof cam);
    memcpy(cam.c2w, c2w, sizeof cam.c2w);
    cam.fx = in->fx, cam.fy = in->fy, cam.cx = in->cx, cam.cy = in->cy;
    return render_cam(t, rgb, depth, &cam, 1, w, h, bg, err);
}

int nerf_cuda_trainer_render_frame(nerf_cuda_trainer *t,
                                   float *rgb,
                                   float *depth,
                                   const nerf_dataset *ds,
                                   int64_t frame,
                                   const float bg[3],
                                   eng_err *err) {
    ENG_ASSERT(t != NULL && rgb != NULL && ds != NULL && bg != NULL);
    if (frame < 0 || frame >= nerf_dataset_count(ds))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_cuda_trainer_render_frame: frame %lld of %lld", (long long)frame,
                           (long long)nerf_dataset_count(ds));
    nerf_train_cam cam;
    nerf_train_cam_of_frame(&cam, ds, frame);
    return render_cam(t, rgb, depth, &cam, 0, nerf_dataset_width(ds), nerf_dataset_height(ds), bg,
                      err);
}

#endif /* ENG_HAVE_CUDA */
