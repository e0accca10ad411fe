/* nerf_field.c: the NeRF model on the CPU, fused per chunk of NERF_MLP_CHUNK points: map to the
 * grid's unit cube, hash-encode, density MLP, SH, colour MLP, all on one thread while the chunk
 * is in cache (the pool splits the chunks); backward runs the chunk's MLPs back to back, sums the
 * chunks' MLP weight gradients in order, then the table gradient level by level.
 *
 * With contraction the grid's unit positions are nerf_contract_unit's (nerf_contract_math.h).
 *
 * Scratch layout for n points (floats; C = 16 + geo_features colour inputs, G = L F):
 *   header (16 floats: magic, colour flag, n), then
 *   upos (n, 3), enc (n, G), d_enc (n, G)                    whole-batch arrays (grid bwd)
 *   chunk blocks, one per chunk, each:
 *     density MLP scratch, col_in (CH, C) = [SH(dir), geo], colour MLP scratch,
 *     d_col_in (CH, C), weight-gradient slots (density, colour)
 * where CH = min(n, NERF_MLP_CHUNK). */
#include "nerf_field.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nerf_contract_math.h"
#include "nerf_sh.h"

#define FIELD_MAGIC_FWD  0x4e464c44u /* "NFLD": a forward pass left its state here */
#define FIELD_MAGIC_USED 0x4e46555du /* consumed by a backward pass */
enum { HEADER_FLOATS = 16 };

typedef struct field_header {
    uint32_t magic;
    uint32_t color;
    int64_t n;
} field_header;

struct nerf_field {
    nerf_field_params p;
    nerf_hashgrid grid;
    nerf_mlp density, color;
    nerf_field_layout layout;
    int64_t n_color_in; /* 16 + geo_features */
    float box_lo;       /* unit = (pos - box_lo) * box_inv */
    float box_inv;
    eng_alloc *alloc;
    eng_tensor params, grads;
};

void nerf_field_params_init(nerf_field_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    nerf_hashgrid_params_init(&p->grid);
    p->width = 64;
    p->density_hidden_layers = 1;
    p->geo_features = 16;
    p->color_hidden_layers = 2;
    p->seed = 1337;
    p->contract = 0;
    p->inner_radius = 0.5f;
}

/* Floats of one chunk block for chunks of `ch` rows. */
static int64_t chunk_floats(const nerf_field *f, int64_t ch) {
    return nerf_mlp_scratch_floats(&f->density, ch) + ch * f->n_color_in +
           nerf_mlp_scratch_floats(&f->color, ch) + ch * f->n_color_in + f->density.n_weights +
           f->color.n_weights;
}

int64_t nerf_field_scratch_floats(const nerf_field *f, int64_t n) {
    ENG_ASSERT(f != NULL);
    if (n <= 0) return 0;
    const int64_t ch = ENG_MIN(n, NERF_MLP_CHUNK);
    return HEADER_FLOATS + n * (3 + 2 * f->grid.n_outputs) +
           ENG_CEIL_DIV(n, NERF_MLP_CHUNK) * chunk_floats(f, ch);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int nerf_field_create(
    nerf_field **out, eng_alloc *alloc, eng_stream *s, const nerf_field_params *p, eng_err *err) {
    int rc = ENG_OK;
    nerf_field *f = NULL;
    ENG_ASSERT(out != NULL && alloc != NULL && p != NULL);
    *out = NULL;
    if (eng_alloc_device(alloc) != ENG_DEVICE_CPU) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "nerf_field_create: the allocator is on %s; this field runs on the CPU",
                         eng_alloc_device_name(alloc));
        goto done;
    }
    if (p->geo_features < 1 || p->geo_features > NERF_MLP_MAX_DIM) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_field_create: geo_features = %lld, expected 1..%d",
                         (long long)p->geo_features, NERF_MLP_MAX_DIM);
        goto done;
    }
    if ((p->contract != 0 && p->contract != 1) ||
        (p->contract && !(p->inner_radius > 0 && isfinite(p->inner_radius)))) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_field_create: contract = %d (expected 0 or 1), inner_radius = %g "
                         "(expected > 0)",
                         p->contract, (double)p->inner_radius);
        goto done;
    }
    f = calloc(1, sizeof *f);
    if (f == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "nerf_field_create: out of memory");
        goto done;
    }
    f->p = *p;
    f->alloc = alloc;
    if ((rc = nerf_hashgrid_init(&f->grid, &p->grid, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_field_create: grid");
        goto done;
    }
    nerf_mlp_params mp;
    nerf_mlp_params_init(&mp);
    mp.n_input = f->grid.n_outputs;
    mp.n_output = p->geo_features;
    mp.width = p->width;
    mp.n_hidden_layers = p->density_hidden_layers;
    mp.output_act = NERF_ACT_NONE;
    if ((rc = nerf_mlp_init(&f->density, &mp, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_field_create: density network");
        goto done;
    }
    f->n_color_in = NERF_SH_COEFFS + p->geo_features;
    mp.n_input = f->n_color_in;
    mp.n_output = 3;
    mp.n_hidden_layers = p->color_hidden_layers;
    mp.output_act = NERF_ACT_SIGMOID;
    if ((rc = nerf_mlp_init(&f->color, &mp, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_field_create: colour network");
        goto done;
    }
    const float a = p->grid.aabb_scale;
    f->box_lo = 0.5f - 0.5f * a;
    f->box_inv = 1.0f / a;
    f->layout.density = 0;
    f->layout.color = f->density.n_weights;
    f->layout.grid = f->layout.color + f->color.n_weights;
    f->layout.n_matrix = f->layout.grid;
    f->layout.n_params = f->layout.grid + f->grid.n_params;
    const int64_t shape[1] = {f->layout.n_params};
    if ((rc = eng_tensor_alloc(&f->params, alloc, ENG_LIFE_STATE, "nerf.params", ENG_DTYPE_F32, 1,
                               shape, err)) != ENG_OK ||
        (rc = eng_tensor_alloc(&f->grads, alloc, ENG_LIFE_STATE, "nerf.grads", ENG_DTYPE_F32, 1,
                               shape, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_field_create");
        goto done;
    }
    float *w = f->params.data;
    if ((rc = nerf_mlp_init_weights(&f->density, s, w + f->layout.density, p->seed, 0, err)) !=
            ENG_OK ||
        (rc = nerf_mlp_init_weights(&f->color, s, w + f->layout.color, p->seed, 1, err)) !=
            ENG_OK ||
        (rc = nerf_hashgrid_init_params(&f->grid, s, w + f->layout.grid, p->seed, 2, err)) !=
            ENG_OK) {
        eng_err_prefix(err, "nerf_field_create");
        goto done;
    }
    nerf_field_zero_grads(f, s);
    *out = f;
    f = NULL;
done:
    nerf_field_destroy(f);
    return rc;
}

void nerf_field_destroy(nerf_field *f) {
    if (f == NULL) return;
    if (f->params.data != NULL) eng_tensor_free(f->alloc, &f->params);
    if (f->grads.data != NULL) eng_tensor_free(f->alloc, &f->grads);
    free(f);
}

/* ---- queries --------------------------------------------------------------------------------- */

const nerf_field_params *nerf_field_get_params(const nerf_field *f) {
    ENG_ASSERT(f != NULL);
    return &f->p;
}

const nerf_hashgrid *nerf_field_grid(const nerf_field *f) {
    ENG_ASSERT(f != NULL);
    return &f->grid;
}

const nerf_mlp *nerf_field_density_mlp(const nerf_field *f) {
    ENG_ASSERT(f != NULL);
    return &f->density;
}

const nerf_mlp *nerf_field_color_mlp(const nerf_field *f) {
    ENG_ASSERT(f != NULL);
    return &f->color;
}

nerf_field_layout nerf_field_get_layout(const nerf_field *f) {
    ENG_ASSERT(f != NULL);
    return f->layout;
}

int64_t nerf_field_n_params(const nerf_field *f) {
    ENG_ASSERT(f != NULL);
    return f->layout.n_params;
}

int64_t nerf_field_n_matrix_params(const nerf_field *f) {
    ENG_ASSERT(f != NULL);
    return f->layout.n_matrix;
}

eng_tensor *nerf_field_param_tensor(nerf_field *f) {
    ENG_ASSERT(f != NULL);
    return &f->params;
}

eng_tensor *nerf_field_grad_tensor(nerf_field *f) {
    ENG_ASSERT(f != NULL);
    return &f->grads;
}

static void zero_range(void *user, int64_t begin, int64_t end) {
    float *g = user;
    memset(g + begin, 0, (size_t)(end - begin) * sizeof(float));
}

void nerf_field_zero_grads(nerf_field *f, eng_stream *s) {
    ENG_ASSERT(f != NULL);
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, f->layout.n_params, 1 << 16, zero_range,
                          f->grads.data);
}

/* ---- forward and backward -------------------------------------------------------------------- */

/* The regions of the scratch for a batch of n (see the top of the file). */
typedef struct field_scratch {
    float *upos, *enc, *d_enc;
    float *chunks;
    int64_t chunk_floats;
} field_scratch;

typedef struct chunk_view {
    float *dens_scr, *col_in, *col_scr, *d_col_in, *dens_part, *col_part;
} chunk_view;

static field_scratch scratch_layout(const nerf_field *f, float *scratch, int64_t n) {
    field_scratch sc;
    const int64_t G = f->grid.n_outputs;
    sc.upos = scratch + HEADER_FLOATS;
    sc.enc = sc.upos + n * 3;
    sc.d_enc = sc.enc + n * G;
    sc.chunks = sc.d_enc + n * G;
    sc.chunk_floats = chunk_floats(f, ENG_MIN(n, NERF_MLP_CHUNK));
    return sc;
}

static chunk_view chunk_at(const nerf_field *f, const field_scratch *sc, int64_t c, int64_t n) {
    const int64_t ch = ENG_MIN(n, NERF_MLP_CHUNK), C = f->n_color_in;
    chunk_view v;
    v.dens_scr = sc->chunks + c * sc->chunk_floats;
    v.col_in = v.dens_scr + nerf_mlp_scratch_floats(&f->density, ch);
    v.col_scr = v.col_in + ch * C;
    v.d_col_in = v.col_scr + nerf_mlp_scratch_floats(&f->color, ch);
    v.dens_part = v.d_col_in + ch * C;
    v.col_part = v.dens_part + f->density.n_weights;
    return v;
}

typedef struct field_job {
    const nerf_field *f;
    field_scratch sc;
    int64_t n;
    const float *w;
    float *sigma, *rgb;
    const float *pos, *dir;
    const float *d_sigma, *d_rgb;
} field_job;

/* Our own shapes and pointers: a failure in a stage is a bug. */
#define STAGE(expr)                                                                                \
    do {                                                                                           \
        const int stage_rc_ = (expr);                                                              \
        ENG_ASSERT(stage_rc_ == ENG_OK);                                                           \
    } while (0)

static void fwd_range(void *user, int64_t c0, int64_t c1) {
    const field_job *j = user;
    const nerf_field *f = j->f;
    const int64_t G = f->grid.n_outputs, C = f->n_color_in;
    const float *w = j->w;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t r0 = c * NERF_MLP_CHUNK, rows = ENG_MIN(j->n, r0 + NERF_MLP_CHUNK) - r0;
        const chunk_view v = chunk_at(f, &j->sc, c, j->n);
        float *upos = j->sc.upos + r0 * 3, *enc = j->sc.enc + r0 * G;
        const float *pos = j->pos + r0 * 3;
        if (f->p.contract) {
            for (int64_t i = 0; i < rows; i++)
                nerf_contract_unit(pos + 3 * i, f->p.inner_radius, upos + 3 * i);
        } else {
            for (int64_t i = 0; i < rows * 3; i++)
                upos[i] = (pos[i] - f->box_lo) * f->box_inv;
        }
        STAGE(nerf_hashgrid_fwd(&f->grid, NULL, enc, upos, rows, w + f->layout.grid, NULL));
        /* geo goes straight into the colour input's last columns */
        float *geo = v.col_in + NERF_SH_COEFFS;
        STAGE(nerf_mlp_fwd(&f->density, NULL, geo, C, enc, G, rows, w + f->layout.density,
                           v.dens_scr, NULL));
        for (int64_t r = 0; r < rows; r++)
            j->sigma[r0 + r] = nerf_act_fwd(NERF_ACT_TRUNC_EXP, geo[r * C]);
        if (j->rgb == NULL) continue;
        STAGE(nerf_sh_encode(NULL, v.col_in, C, j->dir + r0 * 3, rows, NULL));
        STAGE(nerf_mlp_fwd(&f->color, NULL, j->rgb + r0 * 3, 3, v.col_in, C, rows,
                           w + f->layout.color, v.col_scr, NULL));
    }
}

int nerf_field_fwd(nerf_field *f,
                   eng_stream *s,
                   float *sigma,
                   float *rgb,
                   const float *pos,
                   const float *dir,
                   int64_t n,
                   float *scratch,
                   eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(f != NULL);
    if (n < 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "nerf_field_fwd: n = %lld points", (long long)n);
        goto done;
    }
    if ((rgb == NULL) != (dir == NULL)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_field_fwd: rgb %s but dir %s (colour needs both; density only "
                         "neither)",
                         rgb == NULL ? "NULL" : "given", dir == NULL ? "NULL" : "given");
        goto done;
    }
    if (n == 0) goto done;
    ENG_ASSERT(sigma != NULL && pos != NULL && scratch != NULL);
    field_job j;
    memset(&j, 0, sizeof j);
    j.f = f;
    j.sc = scratch_layout(f, scratch, n);
    j.n = n;
    j.w = f->params.data;
    j.sigma = sigma;
    j.rgb = rgb;
    j.pos = pos;
    j.dir = dir;
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, ENG_CEIL_DIV(n, NERF_MLP_CHUNK), 1, fwd_range,
                          &j);
    const field_header h = {FIELD_MAGIC_FWD, rgb != NULL, n};
    memcpy(scratch, &h, sizeof h);
done:
    return rc;
}

static void bwd_range(void *user, int64_t c0, int64_t c1) {
    const field_job *j = user;
    const nerf_field *f = j->f;
    const int64_t G = f->grid.n_outputs, C = f->n_color_in;
    const float *w = j->w;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t r0 = c * NERF_MLP_CHUNK, rows = ENG_MIN(j->n, r0 + NERF_MLP_CHUNK) - r0;
        const chunk_view v = chunk_at(f, &j->sc, c, j->n);
        memset(v.dens_part, 0, (size_t)(f->density.n_weights + f->color.n_weights) * sizeof(float));
        if (j->d_rgb != NULL) {
            STAGE(nerf_mlp_bwd(&f->color, NULL, v.col_part, v.d_col_in, C, v.col_in, C,
                               j->d_rgb + r0 * 3, 3, rows, w + f->layout.color, v.col_scr, NULL));
        } else {
            for (int64_t r = 0; r < rows; r++)
                memset(v.d_col_in + r * C + NERF_SH_COEFFS, 0,
                       (size_t)(C - NERF_SH_COEFFS) * sizeof(float));
        }
        /* d geo = the colour network's input gradient, plus the density's on column 0 */
        float *d_geo = v.d_col_in + NERF_SH_COEFFS;
        const float *geo = v.col_in + NERF_SH_COEFFS;
        if (j->d_sigma != NULL) {
            for (int64_t r = 0; r < rows; r++)
                d_geo[r * C] += nerf_act_bwd(NERF_ACT_TRUNC_EXP, geo[r * C], j->d_sigma[r0 + r]);
        }
        STAGE(nerf_mlp_bwd(&f->density, NULL, v.dens_part, j->sc.d_enc + r0 * G, G,
                           j->sc.enc + r0 * G, G, d_geo, C, rows, w + f->layout.density, v.dens_scr,
                           NULL));
    }
}

typedef struct reduce_job {
    const float *parts; /* chunk c's [density | colour] slots at parts + c * stride */
    int64_t stride, chunks;
    float *grads;
} reduce_job;

/* MLP weight gradients: index i over [density | colour], chunks summed in order. */
static void reduce_range(void *user, int64_t begin, int64_t end) {
    const reduce_job *j = user;
    for (int64_t i = begin; i < end; i++) {
        float acc = 0.0f;
        for (int64_t c = 0; c < j->chunks; c++)
            acc += j->parts[c * j->stride + i];
        j->grads[i] += acc;
    }
}

int nerf_field_bwd(nerf_field *f,
                   eng_stream *s,
                   const float *d_sigma,
                   const float *d_rgb,
                   int64_t n,
                   float *scratch,
                   eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(f != NULL);
    if (n < 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "nerf_field_bwd: n = %lld points", (long long)n);
        goto done;
    }
    if (n == 0) goto done;
    ENG_ASSERT(scratch != NULL);
    field_header h;
    memcpy(&h, scratch, sizeof h);
    if (h.magic != FIELD_MAGIC_FWD || h.n != n || (d_rgb != NULL && !h.color)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_field_bwd: the scratch holds %s (n = %lld%s); expected a forward "
                         "pass of n = %lld%s",
                         h.magic == FIELD_MAGIC_USED  ? "a consumed forward pass"
                         : h.magic == FIELD_MAGIC_FWD ? "a forward pass"
                                                      : "no forward pass",
                         (long long)h.n, h.color ? " with colour" : ", density only", (long long)n,
                         d_rgb != NULL ? " with colour" : "");
        goto done;
    }
    eng_pool *pool = s != NULL ? s->pool : NULL;
    field_job j;
    memset(&j, 0, sizeof j);
    j.f = f;
    j.sc = scratch_layout(f, scratch, n);
    j.n = n;
    j.w = f->params.data;
    j.d_sigma = d_sigma;
    j.d_rgb = d_rgb;
    const int64_t chunks = ENG_CEIL_DIV(n, NERF_MLP_CHUNK);
    eng_pool_parallel_for(pool, chunks, 1, bwd_range, &j);
    float *grads = f->grads.data;
    /* the two slots are adjacent in each block, in the order of the gradient tensor */
    reduce_job rj = {chunk_at(f, &j.sc, 0, n).dens_part, j.sc.chunk_floats, chunks, grads};
    eng_pool_parallel_for(pool, f->layout.n_matrix, 512, reduce_range, &rj);
    STAGE(nerf_hashgrid_bwd(&f->grid, s, grads + f->layout.grid, j.sc.upos, n, j.sc.d_enc, NULL));
    h.magic = FIELD_MAGIC_USED;
    memcpy(scratch, &h, sizeof h);
done:
    return rc;
}
