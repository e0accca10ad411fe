/* nerf_hashgrid.c: the CPU twin of the hash encoding: level table set-up, parameter init,
 * forward (points split over the pool), table gradient (levels split over the pool, each level
 * summing its points in order: deterministic for any thread count) and position gradient.
 * Per-point maths: nerf_hashgrid_math.h. */
#include "nerf_hashgrid.h"

#include <math.h>
#include <string.h>

/* Points per pool piece: enough to amortise the call, small enough to balance. */
enum { GRID_CHUNK = 2048 };

void nerf_hashgrid_params_init(nerf_hashgrid_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->n_levels = 16;
    p->n_features = 2;
    p->log2_table_size = 19;
    p->base_resolution = 16;
    p->desired_resolution = 2048.0f;
    p->aabb_scale = 1.0f;
}

int nerf_hashgrid_init(nerf_hashgrid *g, const nerf_hashgrid_params *p, eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(g != NULL && p != NULL);
    memset(g, 0, sizeof *g);
    if (p->n_levels < 1 || p->n_levels > NERF_HASHGRID_MAX_LEVELS) {
        rc =
            eng_err_set(err, ENG_E_INVALID_ARG, "nerf_hashgrid_init: n_levels = %d, expected 1..%d",
                        p->n_levels, NERF_HASHGRID_MAX_LEVELS);
        goto done;
    }
    if (p->n_features != 1 && p->n_features != 2 && p->n_features != 4 && p->n_features != 8) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_hashgrid_init: n_features = %d, expected 1, 2, 4 or 8",
                         p->n_features);
        goto done;
    }
    if (p->log2_table_size < 2 || p->log2_table_size > NERF_HASHGRID_MAX_LOG2_T) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_hashgrid_init: log2_table_size = %d, expected 2..%d",
                         p->log2_table_size, NERF_HASHGRID_MAX_LOG2_T);
        goto done;
    }
    if (p->base_resolution < 2 || p->base_resolution > (1 << 16)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_hashgrid_init: base_resolution = %d, expected 2..65536",
                         p->base_resolution);
        goto done;
    }
    if (!(p->aabb_scale > 0.0f) || !isfinite(p->aabb_scale)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_hashgrid_init: aabb_scale = %g, expected a positive finite number",
                         (double)p->aabb_scale);
        goto done;
    }
    const double n_max = (double)p->desired_resolution * (double)p->aabb_scale;
    /* the finest scale must keep u = s x + 0.5 (and the corner + 1) well inside uint32 */
    if (!(n_max >= (double)p->base_resolution) || !(n_max <= (double)(1 << 20))) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_hashgrid_init: desired_resolution * aabb_scale = %g * %g = %g, "
                         "expected base_resolution (%d) .. 2^20",
                         (double)p->desired_resolution, (double)p->aabb_scale, n_max,
                         p->base_resolution);
        goto done;
    }
    const double n_min = (double)p->base_resolution;
    const double b = p->n_levels > 1 ? exp((log(n_max) - log(n_min)) / (p->n_levels - 1)) : 1.0;
    const uint64_t t = (uint64_t)1 << p->log2_table_size;
    g->n_levels = p->n_levels;
    g->n_features = p->n_features;
    g->log2_table_size = p->log2_table_size;
    g->base_resolution = p->base_resolution;
    g->max_resolution = (float)n_max;
    g->per_level_scale = (float)b;
    g->n_outputs = (int64_t)p->n_levels * p->n_features;
    int64_t offset = 0;
    for (int l = 0; l < p->n_levels; l++) {
        nerf_hashgrid_level *lv = &g->level[l];
        lv->scale = (float)(exp2((double)l * log2(b)) * n_min - 1.0);
        const uint64_t r = (uint64_t)ceil((double)lv->scale) + 1;
        const uint64_t dense = r * r * r; /* r <= 2^20 + 2: fits in 64 bits */
        const uint64_t dense8 = (dense + 7) / 8 * 8;
        lv->resolution = (uint32_t)r;
        lv->size = (uint32_t)(dense8 < t ? dense8 : t);
        lv->hashed = dense > lv->size;
        lv->offset = offset;
        offset += lv->size;
    }
    g->n_entries = offset;
    g->n_params = offset * p->n_features;
done:
    return rc;
}

/* ---- init ------------------------------------------------------------------------------------ */

typedef struct affine_job {
    float *x;
    float scale, shift;
} affine_job;

static void affine_range(void *user, int64_t begin, int64_t end) {
    const affine_job *j = user;
    for (int64_t i = begin; i < end; i++)
        j->x[i] = j->x[i] * j->scale + j->shift;
}

int nerf_hashgrid_init_params(const nerf_hashgrid *g,
                              eng_stream *s,
                              float *table,
                              uint64_t seed,
                              uint64_t offset,
                              eng_err *err) {
    int rc;
    ENG_ASSERT(g != NULL && table != NULL);
    if ((rc = eng_cpu_fill_uniform_f32(s, table, g->n_params, seed, offset, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_hashgrid_init_params");
        goto done;
    }
    affine_job j = {table, 2e-4f, -1e-4f};
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, g->n_params, 1 << 16, affine_range, &j);
done:
    return rc;
}

/* ---- forward --------------------------------------------------------------------------------- */

typedef struct grid_job {
    const nerf_hashgrid *g;
    float *out;         /* feat (fwd) or d_pos (bwd_pos) */
    const float *pos;   /* (n, 3) */
    const float *in;    /* d_feat (bwd, bwd_pos) */
    const float *table; /* fwd, bwd_pos */
    float *d_table;     /* bwd */
    int64_t n;
} grid_job;

/* The fine levels' tables are far larger than the caches and every point lands somewhere else:
 * the F = 2 loops compute each point's corners RING points ahead and prefetch their entries, so
 * the loads of several points are in flight at once (the values are the same). */
enum { RING = 16 };

typedef struct corner_set {
    uint32_t idx[8];
    float w[8];
} corner_set;

typedef struct corner_ring {
    corner_set set[RING];
} corner_ring;

static void prefetch_corners(const corner_set *cs, const float *tab, int write) {
#if defined(__GNUC__) || defined(__clang__)
    /* corners c and c + 1 differ in x only: usually in one cache line */
    for (int c = 0; c < 8; c += 2) {
        if (write) {
            __builtin_prefetch(tab + 2 * (int64_t)cs->idx[c], 1);
        } else {
            __builtin_prefetch(tab + 2 * (int64_t)cs->idx[c], 0);
        }
    }
#else
    (void)cs, (void)tab, (void)write;
#endif
}

static void ring_fill(corner_set *cs, const nerf_hashgrid_level *lv, const float *pos, int64_t i) {
    float frac[3];
    nerf_hashgrid_corners(lv, pos + 3 * i, cs->idx, cs->w, frac);
}

/* Computes points p0 .. p0 + RING - 1 (those below p1). */
static void ring_start(corner_ring *r,
                       const nerf_hashgrid_level *lv,
                       const float *pos,
                       int64_t p0,
                       int64_t p1,
                       const float *tab,
                       int write) {
    for (int64_t i = p0; i < p1 && i < p0 + RING; i++) {
        ring_fill(&r->set[i % RING], lv, pos, i);
        prefetch_corners(&r->set[i % RING], tab, write);
    }
}

/* After point i is used: its slot takes point i + RING (if any). */
static void ring_refill(corner_ring *r,
                        const nerf_hashgrid_level *lv,
                        const float *pos,
                        int64_t i,
                        int64_t p1,
                        const float *tab,
                        int write) {
    const int64_t k = i + RING;
    if (k < p1) {
        ring_fill(&r->set[k % RING], lv, pos, k);
        prefetch_corners(&r->set[k % RING], tab, write);
    }
}

/* Points [c0 * CHUNK, ...) level by level, so a coarse level's table stays in cache. */
static void fwd_range(void *user, int64_t c0, int64_t c1) {
    const grid_job *j = user;
    const nerf_hashgrid *g = j->g;
    const int64_t F = g->n_features, nout = g->n_outputs;
    const int64_t p0 = c0 * GRID_CHUNK, p1 = ENG_MIN(j->n, c1 * GRID_CHUNK);
    for (int l = 0; l < g->n_levels; l++) {
        const nerf_hashgrid_level *lv = &g->level[l];
        const float *tab = j->table + lv->offset * F;
        if (F == 2) { /* the usual configuration: unrolled, corners computed ahead */
            corner_ring ring;
            ring_start(&ring, lv, j->pos, p0, p1, tab, 0);
            for (int64_t i = p0; i < p1; i++) {
                const corner_set *cs = &ring.set[i % RING];
                float a0 = 0.0f, a1 = 0.0f;
                for (int c = 0; c < 8; c++) {
                    const float *e = tab + 2 * (int64_t)cs->idx[c];
                    a0 += cs->w[c] * e[0];
                    a1 += cs->w[c] * e[1];
                }
                j->out[i * nout + 2 * l] = a0;
                j->out[i * nout + 2 * l + 1] = a1;
                ring_refill(&ring, lv, j->pos, i, p1, tab, 0);
            }
            continue;
        }
        for (int64_t i = p0; i < p1; i++) {
            uint32_t idx[8];
            float w[8], frac[3];
            nerf_hashgrid_corners(lv, j->pos + 3 * i, idx, w, frac);
            float acc[8] = {0};
            for (int c = 0; c < 8; c++) {
                const float *e = tab + (int64_t)idx[c] * F;
                for (int64_t f = 0; f < F; f++)
                    acc[f] += w[c] * e[f];
            }
            float *o = j->out + i * nout + l * F;
            for (int64_t f = 0; f < F; f++)
                o[f] = acc[f];
        }
    }
}

int nerf_hashgrid_fwd(const nerf_hashgrid *g,
                      eng_stream *s,
                      float *feat,
                      const float *pos,
                      int64_t n,
                      const float *table,
                      eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(g != NULL);
    if (n < 0) {
        rc =
            eng_err_set(err, ENG_E_INVALID_ARG, "nerf_hashgrid_fwd: n = %lld points", (long long)n);
        goto done;
    }
    if (n == 0) goto done;
    ENG_ASSERT(feat != NULL && pos != NULL && table != NULL);
    grid_job j = {g, feat, pos, NULL, table, NULL, n};
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, ENG_CEIL_DIV(n, GRID_CHUNK), 1, fwd_range,
                          &j);
done:
    return rc;
}

/* ---- table gradient -------------------------------------------------------------------------- */

/* Whole levels [l0, l1): every point in order, so the sums do not depend on the split. */
static void bwd_range(void *user, int64_t l0, int64_t l1) {
    const grid_job *j = user;
    const nerf_hashgrid *g = j->g;
    const int64_t F = g->n_features, nout = g->n_outputs;
    for (int64_t l = l0; l < l1; l++) {
        const nerf_hashgrid_level *lv = &g->level[l];
        float *dtab = j->d_table + lv->offset * F;
        if (F == 2) { /* the usual configuration: unrolled, corners computed ahead */
            corner_ring ring;
            ring_start(&ring, lv, j->pos, 0, j->n, dtab, 1);
            for (int64_t i = 0; i < j->n; i++) {
                const corner_set *cs = &ring.set[i % RING];
                const float d0 = j->in[i * nout + 2 * l], d1 = j->in[i * nout + 2 * l + 1];
                if (d0 != 0.0f || d1 != 0.0f) {
                    for (int c = 0; c < 8; c++) {
                        float *e = dtab + 2 * (int64_t)cs->idx[c];
                        e[0] += cs->w[c] * d0;
                        e[1] += cs->w[c] * d1;
                    }
                }
                ring_refill(&ring, lv, j->pos, i, j->n, dtab, 1);
            }
            continue;
        }
        for (int64_t i = 0; i < j->n; i++) {
            const float *d = j->in + i * nout + l * F;
            int any = 0;
            for (int64_t f = 0; f < F; f++)
                any |= d[f] != 0.0f;
            if (!any) continue; /* rays that hit nothing: skip the lookups */
            uint32_t idx[8];
            float w[8], frac[3];
            nerf_hashgrid_corners(lv, j->pos + 3 * i, idx, w, frac);
            for (int c = 0; c < 8; c++) {
                float *e = dtab + (int64_t)idx[c] * F;
                for (int64_t f = 0; f < F; f++)
                    e[f] += w[c] * d[f];
            }
        }
    }
}

int nerf_hashgrid_bwd(const nerf_hashgrid *g,
                      eng_stream *s,
                      float *d_table,
                      const float *pos,
                      int64_t n,
                      const float *d_feat,
                      eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(g != NULL);
    if (n < 0) {
        rc =
            eng_err_set(err, ENG_E_INVALID_ARG, "nerf_hashgrid_bwd: n = %lld points", (long long)n);
        goto done;
    }
    if (n == 0) goto done;
    ENG_ASSERT(d_table != NULL && pos != NULL && d_feat != NULL);
    grid_job j = {g, NULL, pos, d_feat, NULL, d_table, n};
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, g->n_levels, 1, bwd_range, &j);
done:
    return rc;
}

/* ---- position gradient ----------------------------------------------------------------------- */

static void bwd_pos_range(void *user, int64_t c0, int64_t c1) {
    const grid_job *j = user;
    const nerf_hashgrid *g = j->g;
    const int64_t F = g->n_features, nout = g->n_outputs;
    const int64_t p0 = c0 * GRID_CHUNK, p1 = ENG_MIN(j->n, c1 * GRID_CHUNK);
    for (int64_t i = p0; i < p1; i++) {
        const float *p = j->pos + 3 * i;
        float dp[3] = {0.0f, 0.0f, 0.0f};
        for (int l = 0; l < g->n_levels; l++) {
            const nerf_hashgrid_level *lv = &g->level[l];
            const float *tab = j->table + lv->offset * F;
            const float *d = j->in + i * nout + l * F;
            uint32_t idx[8];
            float w[8], frac[3];
            nerf_hashgrid_corners(lv, p, idx, w, frac);
            for (int c = 0; c < 8; c++) {
                const float *e = tab + (int64_t)idx[c] * F;
                float dot = 0.0f; /* d_feat . entry */
                for (int64_t f = 0; f < F; f++)
                    dot += d[f] * e[f];
                for (int a = 0; a < 3; a++)
                    dp[a] += lv->scale * nerf_hashgrid_dweight(frac, c, a) * dot;
            }
        }
        for (int a = 0; a < 3; a++) {
            const int inside = p[a] >= 0.0f && p[a] <= 1.0f;
            j->out[3 * i + a] = inside ? dp[a] : 0.0f;
        }
    }
}

int nerf_hashgrid_bwd_pos(const nerf_hashgrid *g,
                          eng_stream *s,
                          float *d_pos,
                          const float *pos,
                          int64_t n,
                          const float *d_feat,
                          const float *table,
                          eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(g != NULL);
    if (n < 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "nerf_hashgrid_bwd_pos: n = %lld points",
                         (long long)n);
        goto done;
    }
    if (n == 0) goto done;
    ENG_ASSERT(d_pos != NULL && pos != NULL && d_feat != NULL && table != NULL);
    grid_job j = {g, d_pos, pos, d_feat, table, NULL, n};
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, ENG_CEIL_DIV(n, GRID_CHUNK), 1, bwd_pos_range,
                          &j);
done:
    return rc;
}
