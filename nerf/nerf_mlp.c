/* nerf_mlp.c: the CPU twin of the NeRF MLPs: per chunk of NERF_MLP_CHUNK rows, every layer in
 * turn through the engine's sgemm (eng_cpu_gemm_f32 on the calling thread; the pool splits the
 * chunks), the activations in place. Backward writes each chunk's weight gradient to its own
 * slot, summed in chunk order afterwards (thread-count independent). Activations:
 * nerf_mlp_math.h. */
#include "nerf_mlp.h"

#include <math.h>
#include <string.h>

void nerf_mlp_params_init(nerf_mlp_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->n_input = 32;
    p->n_output = 16;
    p->width = 64;
    p->n_hidden_layers = 1;
    p->output_act = NERF_ACT_NONE;
}

int nerf_mlp_init(nerf_mlp *m, const nerf_mlp_params *p, eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(m != NULL && p != NULL);
    memset(m, 0, sizeof *m);
    const struct {
        const char *name;
        int64_t v;
    } dims[3] = {{"n_input", p->n_input}, {"n_output", p->n_output}, {"width", p->width}};
    for (int i = 0; i < 3; i++) {
        if (dims[i].v < 1 || dims[i].v > NERF_MLP_MAX_DIM) {
            rc = eng_err_set(err, ENG_E_INVALID_ARG, "nerf_mlp_init: %s = %lld, expected 1..%d",
                             dims[i].name, (long long)dims[i].v, NERF_MLP_MAX_DIM);
            goto done;
        }
    }
    if (p->n_hidden_layers < 1 || p->n_hidden_layers > NERF_MLP_MAX_HIDDEN) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_mlp_init: n_hidden_layers = %d, expected 1..%d", p->n_hidden_layers,
                         NERF_MLP_MAX_HIDDEN);
        goto done;
    }
    if ((unsigned)p->output_act >= NERF_ACT_COUNT) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "nerf_mlp_init: output_act = %d, expected 0..%d",
                         (int)p->output_act, NERF_ACT_COUNT - 1);
        goto done;
    }
    m->n_input = p->n_input;
    m->n_output = p->n_output;
    m->width = p->width;
    m->n_hidden_layers = p->n_hidden_layers;
    m->output_act = p->output_act;
    int64_t off = 0;
    for (int l = 0; l <= p->n_hidden_layers; l++) {
        m->layer_rows[l] = l == p->n_hidden_layers ? p->n_output : p->width;
        m->layer_cols[l] = l == 0 ? p->n_input : p->width;
        m->layer_offset[l] = off;
        off += m->layer_rows[l] * m->layer_cols[l];
    }
    m->layer_offset[p->n_hidden_layers + 1] = off;
    m->n_weights = off;
done:
    return rc;
}

int64_t nerf_mlp_scratch_floats(const nerf_mlp *m, int64_t n) {
    ENG_ASSERT(m != NULL);
    if (n <= 0) return 0;
    const int64_t per_row = m->n_hidden_layers * m->width + m->n_output + m->width;
    return n * per_row + ENG_CEIL_DIV(n, NERF_MLP_CHUNK) * m->n_weights;
}

/* Where each region of the scratch lives for a batch of n rows. */
typedef struct mlp_scratch {
    float *hidden; /* H regions of (n, width); layer l at hidden + l n width */
    float *pre;    /* (n, n_output): output pre-activations, then output deltas */
    float *tmp;    /* (n, width) */
    float *part;   /* (chunks, n_weights) */
} mlp_scratch;

static mlp_scratch scratch_layout(const nerf_mlp *m, float *scratch, int64_t n) {
    mlp_scratch sc;
    sc.hidden = scratch;
    sc.pre = sc.hidden + n * m->n_hidden_layers * m->width;
    sc.tmp = sc.pre + n * m->n_output;
    sc.part = sc.tmp + n * m->width;
    return sc;
}

/* C (rows, cols) = op(A) op(B) on this thread. Our own shapes: a failure is a bug. */
static void gemm(int trans_a,
                 int trans_b,
                 int64_t rows,
                 int64_t cols,
                 int64_t k,
                 const float *a,
                 int64_t lda,
                 const float *b,
                 int64_t ldb,
                 float *c,
                 int64_t ldc) {
    eng_err e = {0};
    const int rc = eng_cpu_gemm_f32(NULL, trans_a, trans_b, rows, cols, k, 1.0f, a, lda, b, ldb,
                                    0.0f, c, ldc, &e);
    ENG_ASSERT(rc == ENG_OK);
}

typedef struct mlp_job {
    const nerf_mlp *m;
    mlp_scratch sc;
    int64_t n;
    const float *w;
    const float *x;
    int64_t ldx;
    float *y;
    int64_t ldy;
    const float *d_y;
    int64_t ld_dy;
    float *d_x;
    int64_t ld_dx;
    float *d_w;
} mlp_job;

static void fwd_range(void *user, int64_t c0, int64_t c1) {
    const mlp_job *j = user;
    const nerf_mlp *m = j->m;
    const int64_t W = m->width, H = m->n_hidden_layers, O = m->n_output;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t r0 = c * NERF_MLP_CHUNK, rows = ENG_MIN(j->n, r0 + NERF_MLP_CHUNK) - r0;
        const float *in = j->x + r0 * j->ldx;
        int64_t ld_in = j->ldx, d_in = m->n_input;
        for (int64_t l = 0; l < H; l++) {
            float *h = j->sc.hidden + l * j->n * W + r0 * W;
            gemm(0, 1, rows, W, d_in, in, ld_in, j->w + m->layer_offset[l], d_in, h, W);
            for (int64_t i = 0; i < rows * W; i++)
                h[i] = h[i] > 0.0f ? h[i] : 0.0f;
            in = h;
            ld_in = W;
            d_in = W;
        }
        float *pre = j->sc.pre + r0 * O;
        gemm(0, 1, rows, O, W, in, W, j->w + m->layer_offset[H], W, pre, O);
        for (int64_t r = 0; r < rows; r++) {
            float *yr = j->y + (r0 + r) * j->ldy;
            for (int64_t o = 0; o < O; o++)
                yr[o] = nerf_act_fwd(m->output_act, pre[r * O + o]);
        }
    }
}

static int check_ld(const char *fn, const char *what, int64_t ld, int64_t cols, eng_err *err) {
    if (ld >= cols) return ENG_OK;
    return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s = %lld, expected >= %lld columns", fn, what,
                       (long long)ld, (long long)cols);
}

int nerf_mlp_fwd(const nerf_mlp *m,
                 eng_stream *s,
                 float *y,
                 int64_t ldy,
                 const float *x,
                 int64_t ldx,
                 int64_t n,
                 const float *w,
                 float *scratch,
                 eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(m != NULL);
    if (n < 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "nerf_mlp_fwd: n = %lld rows", (long long)n);
        goto done;
    }
    if ((rc = check_ld("nerf_mlp_fwd", "ldx", ldx, m->n_input, err)) != ENG_OK) goto done;
    if ((rc = check_ld("nerf_mlp_fwd", "ldy", ldy, m->n_output, err)) != ENG_OK) goto done;
    if (n == 0) goto done;
    ENG_ASSERT(y != NULL && x != NULL && w != NULL && scratch != NULL);
    mlp_job j;
    memset(&j, 0, sizeof j);
    j.m = m;
    j.sc = scratch_layout(m, scratch, n);
    j.n = n;
    j.w = w;
    j.x = x;
    j.ldx = ldx;
    j.y = y;
    j.ldy = ldy;
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, ENG_CEIL_DIV(n, NERF_MLP_CHUNK), 1, fwd_range,
                          &j);
done:
    return rc;
}

/* One chunk: deltas layer by layer (in place over the activations), the chunk's weight
 * gradient into its slot, d_x last. */
static void bwd_range(void *user, int64_t c0, int64_t c1) {
    const mlp_job *j = user;
    const nerf_mlp *m = j->m;
    const int64_t W = m->width, H = m->n_hidden_layers, O = m->n_output;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t r0 = c * NERF_MLP_CHUNK, rows = ENG_MIN(j->n, r0 + NERF_MLP_CHUNK) - r0;
        float *part = j->sc.part + c * m->n_weights;
        float *tmp = j->sc.tmp + r0 * W;
        /* output delta, in place over the pre-activations */
        float *delta = j->sc.pre + r0 * O;
        for (int64_t r = 0; r < rows; r++) {
            const float *dyr = j->d_y + (r0 + r) * j->ld_dy;
            for (int64_t o = 0; o < O; o++)
                delta[r * O + o] = nerf_act_bwd(m->output_act, delta[r * O + o], dyr[o]);
        }
        int64_t d_dim = O;
        for (int64_t l = H; l >= 0; l--) {
            /* layer l's input: h_{l-1}, or x for l = 0 */
            const float *in =
                l > 0 ? j->sc.hidden + (l - 1) * j->n * W + r0 * W : j->x + r0 * j->ldx;
            const int64_t ld_in = l > 0 ? W : j->ldx, d_in = m->layer_cols[l];
            /* dW_l (d_dim, d_in) = delta^T in */
            gemm(1, 0, d_dim, d_in, rows, delta, d_dim, in, ld_in, part + m->layer_offset[l], d_in);
            if (l == 0) break;
            /* delta_{l-1} = (delta W_l) * relu'(h_{l-1}), over h_{l-1} (no longer needed) */
            gemm(0, 0, rows, W, d_dim, delta, d_dim, j->w + m->layer_offset[l], W, tmp, W);
            float *h = j->sc.hidden + (l - 1) * j->n * W + r0 * W;
            for (int64_t i = 0; i < rows * W; i++)
                h[i] = h[i] > 0.0f ? tmp[i] : 0.0f;
            delta = h;
            d_dim = W;
        }
        if (j->d_x != NULL) {
            gemm(0, 0, rows, m->n_input, W, delta, W, j->w, m->n_input, j->d_x + r0 * j->ld_dx,
                 j->ld_dx);
        }
    }
}

typedef struct reduce_job {
    float *d_w;
    const float *part;
    int64_t chunks, n_weights;
} reduce_job;

/* d_w[i] += sum over chunks in order. */
static void reduce_range(void *user, int64_t begin, int64_t end) {
    const reduce_job *j = user;
    for (int64_t i = begin; i < end; i++) {
        float acc = 0.0f;
        for (int64_t c = 0; c < j->chunks; c++)
            acc += j->part[c * j->n_weights + i];
        j->d_w[i] += acc;
    }
}

int nerf_mlp_bwd(const nerf_mlp *m,
                 eng_stream *s,
                 float *d_w,
                 float *d_x,
                 int64_t ld_dx,
                 const float *x,
                 int64_t ldx,
                 const float *d_y,
                 int64_t ld_dy,
                 int64_t n,
                 const float *w,
                 float *scratch,
                 eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(m != NULL);
    if (n < 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "nerf_mlp_bwd: n = %lld rows", (long long)n);
        goto done;
    }
    if ((rc = check_ld("nerf_mlp_bwd", "ldx", ldx, m->n_input, err)) != ENG_OK) goto done;
    if ((rc = check_ld("nerf_mlp_bwd", "ld_dy", ld_dy, m->n_output, err)) != ENG_OK) goto done;
    if (d_x != NULL && (rc = check_ld("nerf_mlp_bwd", "ld_dx", ld_dx, m->n_input, err)) != ENG_OK)
        goto done;
    if (n == 0) goto done;
    ENG_ASSERT(d_w != NULL && x != NULL && d_y != NULL && w != NULL && scratch != NULL);
    eng_pool *pool = s != NULL ? s->pool : NULL;
    mlp_job j;
    memset(&j, 0, sizeof j);
    j.m = m;
    j.sc = scratch_layout(m, scratch, n);
    j.n = n;
    j.w = w;
    j.x = x;
    j.ldx = ldx;
    j.d_y = d_y;
    j.ld_dy = ld_dy;
    j.d_x = d_x;
    j.ld_dx = ld_dx;
    j.d_w = d_w;
    const int64_t chunks = ENG_CEIL_DIV(n, NERF_MLP_CHUNK);
    eng_pool_parallel_for(pool, chunks, 1, bwd_range, &j);
    reduce_job rj = {d_w, j.sc.part, chunks, m->n_weights};
    eng_pool_parallel_for(pool, m->n_weights, 1024, reduce_range, &rj);
done:
    return rc;
}

/* ---- init ------------------------------------------------------------------------------------ */

typedef struct xavier_job {
    const nerf_mlp *m;
    float *w;
} xavier_job;

static void xavier_range(void *user, int64_t begin, int64_t end) {
    const xavier_job *j = user;
    const nerf_mlp *m = j->m;
    int l = 0;
    for (int64_t i = begin; i < end; i++) {
        while (i >= m->layer_offset[l + 1])
            l++;
        const float a = (float)sqrt(6.0 / (double)(m->layer_rows[l] + m->layer_cols[l]));
        j->w[i] = (2.0f * j->w[i] - 1.0f) * a;
    }
}

int nerf_mlp_init_weights(
    const nerf_mlp *m, eng_stream *s, float *w, uint64_t seed, uint64_t offset, eng_err *err) {
    int rc;
    ENG_ASSERT(m != NULL && w != NULL);
    if ((rc = eng_cpu_fill_uniform_f32(s, w, m->n_weights, seed, offset, err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_mlp_init_weights");
        goto done;
    }
    xavier_job j = {m, w};
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, m->n_weights, 4096, xavier_range, &j);
done:
    return rc;
}
