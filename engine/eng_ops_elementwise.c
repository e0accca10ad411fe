/* eng_ops_elementwise.c: the elementwise family of the neural-network ops: activations and scale
 * (unary), broadcast add/sub/mul (binary), GEGLU, strided copies (contiguous, permute, concat),
 * nearest 2x upsampling and the sinusoidal timestep embedding. Each has a tensor-level op
 * (eng_op_*: checks, then dispatch) and a CPU twin (eng_cpu_*: the spec, plain loops in f32
 * split over the stream's pool). The scalar math is in eng_act_math.h, shared with
 * cuda/elementwise.cu. Layout: NHWC; shapes are in the comments of eng_kernels.h. */
#include <string.h>

#include "eng_act_math.h"
#include "eng_ops.h"
#include "eng_ops_impl.h"
#include "eng_sched.h"

/* Elements per pool piece: large enough that scheduling costs nothing next to the work. */
enum { EW_GRAIN = 1 << 15 };

const char *eng_act_name(eng_act act) {
    static const char *const names[ENG_ACT_COUNT] = {"none", "silu", "gelu", "gelu_tanh",
                                                     "quick_gelu"};
    return (int)act >= 0 && act < ENG_ACT_COUNT ? names[act] : "?";
}

const char *eng_binop_name(eng_binop op) {
    static const char *const names[ENG_BINOP_COUNT] = {"add", "sub", "mul"};
    return (int)op >= 0 && op < ENG_BINOP_COUNT ? names[op] : "?";
}

/* ---- shared checks of the CPU twins ----------------------------------------------------------- */

/* Counts must be >= 0; with work to do, no pointer may be NULL. Names and pointers in pairs,
 * unused slots NULL names. */
static int twin_ptrs(const char *fn,
                     int64_t work,
                     const char *n0,
                     const void *p0,
                     const char *n1,
                     const void *p1,
                     const char *n2,
                     const void *p2,
                     eng_err *err) {
    const char *names[3] = {n0, n1, n2};
    const void *ptrs[3] = {p0, p1, p2};
    if (work == 0) return ENG_OK;
    for (int k = 0; k < 3; k++) {
        if (names[k] != NULL && ptrs[k] == NULL) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s is NULL with %lld elements to do",
                               fn, names[k], (long long)work);
        }
    }
    return ENG_OK;
}

/* Product of 4 sizes (each >= 0, checked before), 0 when any is 0. */
static int64_t numel4(const int64_t *shape) {
    return shape[0] * shape[1] * shape[2] * shape[3];
}

/* ---- unary: y = act(alpha x + beta) ------------------------------------------------------------ */

static void unary_range(void *user, int64_t begin, int64_t end) {
    const eng_unary_args *a = user;
    float *y = a->y;
    const float *x = a->x;
    for (int64_t i = begin; i < end; i++)
        y[i] = eng_act_apply(a->act, a->alpha * x[i] + a->beta);
}

int eng_cpu_unary(eng_stream *s, const eng_unary_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_unary";
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = eng_ops_twin_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "n", a->n, err)) != ENG_OK) return rc;
    if ((int)a->act < 0 || a->act >= ENG_ACT_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: activation %d out of range", fn,
                           (int)a->act);
    }
    if ((rc = twin_ptrs(fn, a->n, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) return rc;
    eng_pool_parallel_for(eng_ops_pool(s), a->n, EW_GRAIN, unary_range, (void *)a);
    return ENG_OK;
}

/* ---- binary: y = a op b, broadcast through strides ---------------------------------------------- */

static float binop_apply(eng_binop op, float u, float v) {
    switch (op) {
    case ENG_BINOP_ADD: return u + v;
    case ENG_BINOP_SUB: return u - v;
    default: return u * v;
    }
}

/* Rows [begin, end) of y viewed as (shape0 * shape1 * shape2, shape3). */
static void binary_rows(void *user, int64_t begin, int64_t end) {
    const eng_binary_args *p = user;
    const int64_t *sh = p->shape;
    float *y = p->y;
    const float *a = p->a, *b = p->b;
    for (int64_t r = begin; r < end; r++) {
        const int64_t i2 = r % sh[2], i1 = (r / sh[2]) % sh[1], i0 = r / (sh[2] * sh[1]);
        const float *ar = a + i0 * p->a_stride[0] + i1 * p->a_stride[1] + i2 * p->a_stride[2];
        const float *br = b + i0 * p->b_stride[0] + i1 * p->b_stride[1] + i2 * p->b_stride[2];
        float *yr = y + r * sh[3];
        for (int64_t i3 = 0; i3 < sh[3]; i3++)
            yr[i3] = binop_apply(p->op, ar[i3 * p->a_stride[3]], br[i3 * p->b_stride[3]]);
    }
}

int eng_cpu_binary(eng_stream *s, const eng_binary_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_binary";
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = eng_ops_twin_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((int)a->op < 0 || a->op >= ENG_BINOP_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: operator %d out of range", fn, (int)a->op);
    }
    for (int d = 0; d < 4; d++) {
        if ((rc = eng_ops_twin_count(fn, "a shape entry", a->shape[d], err)) != ENG_OK) return rc;
    }
    const int64_t n = numel4(a->shape);
    if ((rc = twin_ptrs(fn, n, "y", a->y, "a", a->a, "b", a->b, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    const int64_t rows = a->shape[0] * a->shape[1] * a->shape[2];
    eng_pool_parallel_for(eng_ops_pool(s), rows, ENG_MAX(1, EW_GRAIN / a->shape[3]), binary_rows,
                          (void *)a);
    return ENG_OK;
}

/* ---- GEGLU: y (rows, d) = x[:, :d] * gelu(x[:, d:]) ------------------------------------------- */

static void geglu_rows(void *user, int64_t begin, int64_t end) {
    const eng_geglu_args *a = user;
    float *y = a->y;
    const float *x = a->x;
    for (int64_t r = begin; r < end; r++) {
        const float *xr = x + r * 2 * a->d;
        for (int64_t j = 0; j < a->d; j++)
            y[r * a->d + j] = xr[j] * eng_act_gelu(xr[a->d + j]);
    }
}

int eng_cpu_geglu(eng_stream *s, const eng_geglu_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_geglu";
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = eng_ops_twin_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "rows", a->rows, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "d", a->d, err)) != ENG_OK) return rc;
    const int64_t n = a->rows * a->d;
    if ((rc = twin_ptrs(fn, n, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    eng_pool_parallel_for(eng_ops_pool(s), a->rows, ENG_MAX(1, EW_GRAIN / a->d), geglu_rows,
                          (void *)a);
    return ENG_OK;
}

/* ---- strided copy: y[i] = x[i] over a 4-D shape ------------------------------------------------ */

static void copy_rows(void *user, int64_t begin, int64_t end) {
    const eng_copy_args *p = user;
    const int64_t *sh = p->shape;
    float *y = p->y;
    const float *x = p->x;
    for (int64_t r = begin; r < end; r++) {
        const int64_t i2 = r % sh[2], i1 = (r / sh[2]) % sh[1], i0 = r / (sh[2] * sh[1]);
        const float *xr = x + i0 * p->x_stride[0] + i1 * p->x_stride[1] + i2 * p->x_stride[2];
        float *yr = y + i0 * p->y_stride[0] + i1 * p->y_stride[1] + i2 * p->y_stride[2];
        for (int64_t i3 = 0; i3 < sh[3]; i3++)
            yr[i3 * p->y_stride[3]] = xr[i3 * p->x_stride[3]];
    }
}

int eng_cpu_copy(eng_stream *s, const eng_copy_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_copy";
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = eng_ops_twin_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    for (int d = 0; d < 4; d++) {
        if ((rc = eng_ops_twin_count(fn, "a shape entry", a->shape[d], err)) != ENG_OK) return rc;
    }
    const int64_t n = numel4(a->shape);
    if ((rc = twin_ptrs(fn, n, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    const int64_t rows = a->shape[0] * a->shape[1] * a->shape[2];
    eng_pool_parallel_for(eng_ops_pool(s), rows, ENG_MAX(1, EW_GRAIN / a->shape[3]), copy_rows,
                          (void *)a);
    return ENG_OK;
}

/* ---- nearest 2x upsampling, NHWC ------------------------------------------------------------------ */

/* Output pixels [begin, end) of y (n, 2h, 2w, c), each a run of c channels. */
static void upsample_pixels(void *user, int64_t begin, int64_t end) {
    const eng_upsample_args *a = user;
    float *y = a->y;
    const float *x = a->x;
    const int64_t wo = 2 * a->w, ho = 2 * a->h;
    for (int64_t p = begin; p < end; p++) {
        const int64_t ox = p % wo, oy = (p / wo) % ho, i = p / (wo * ho);
        const float *src = x + ((i * a->h + oy / 2) * a->w + ox / 2) * a->c;
        memcpy(y + p * a->c, src, (size_t)a->c * sizeof(float));
    }
}

int eng_cpu_upsample(eng_stream *s, const eng_upsample_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_upsample";
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = eng_ops_twin_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "n", a->n, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "h", a->h, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "w", a->w, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "c", a->c, err)) != ENG_OK) return rc;
    const int64_t pixels = a->n * 4 * a->h * a->w;
    if ((rc = twin_ptrs(fn, pixels * a->c, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) {
        return rc;
    }
    if (pixels * a->c == 0) return ENG_OK;
    eng_pool_parallel_for(eng_ops_pool(s), pixels, ENG_MAX(1, EW_GRAIN / a->c), upsample_pixels,
                          (void *)a);
    return ENG_OK;
}

/* ---- sinusoidal timestep embedding ------------------------------------------------------------ */

static void temb_rows(void *user, int64_t begin, int64_t end) {
    const eng_temb_args *a = user;
    float *y = a->y;
    for (int64_t i = begin; i < end; i++) {
        for (int64_t j = 0; j < a->dim; j++) {
            y[i * a->dim + j] =
                eng_temb_at(a->t[i], j, a->dim, a->flip_sin_to_cos, a->freq_shift, a->max_period);
        }
    }
}

int eng_cpu_temb(eng_stream *s, const eng_temb_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_temb";
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = eng_ops_twin_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "n", a->n, err)) != ENG_OK) return rc;
    /* half - freq_shift is a divisor; max_period's log must be finite. NaN fails both. */
    if (a->dim < 2 || !((float)(a->dim / 2) - a->freq_shift > 0.0f) || !(a->max_period > 0.0f)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: dim = %lld, freq_shift = %g, max_period = %g (needs dim >= 2, "
                           "dim / 2 > freq_shift, max_period > 0)",
                           fn, (long long)a->dim, (double)a->freq_shift, (double)a->max_period);
    }
    if ((rc = twin_ptrs(fn, a->n, "y", a->y, "t", a->t, NULL, NULL, err)) != ENG_OK) return rc;
    eng_pool_parallel_for(eng_ops_pool(s), a->n, ENG_MAX(1, EW_GRAIN / (a->dim * 32)), temb_rows,
                          (void *)a);
    return ENG_OK;
}

/* ---- tensor-level ops ------------------------------------------------------------------------ */

/* Shape and strides of t right-aligned into 4 slots (leading slots: size 1, stride 0). */
static void pad4(const eng_tensor *t, int64_t shape[4], int64_t stride[4]) {
    const int off = 4 - t->ndim;
    for (int d = 0; d < 4; d++) {
        shape[d] = d < off ? 1 : t->shape[d - off];
        stride[d] = d < off ? 0 : t->stride[d - off];
    }
}

int eng_op_unary(eng_ctx *ctx,
                 eng_stream *s,
                 eng_tensor *y,
                 const eng_tensor *x,
                 eng_act act,
                 float alpha,
                 float beta,
                 eng_err *err) {
    static const char fn[] = "eng_op_unary";
    const eng_op_table *ops;
    int rc;
    if ((rc = eng_ops_check_like(fn, y, x, "y", "x", err)) != ENG_OK) return rc;
    if ((int)act < 0 || act >= ENG_ACT_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: activation %d out of range", fn, (int)act);
    }
    const eng_unary_args a = {y->dtype, y->data, x->data, eng_tensor_numel(y), act, alpha, beta};
    if ((rc = eng_ops_prepare(ctx, &s, y, fn, &ops, err)) != ENG_OK) return rc;
    if (ops == NULL) return eng_cpu_unary(s, &a, err);
    if (ops->unary == NULL) return eng_ops_unsupported(fn, y, err);
    return ops->unary(s, &a, err);
}

int eng_op_binary(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *y,
                  const eng_tensor *a,
                  const eng_tensor *b,
                  eng_binop op,
                  eng_err *err) {
    static const char fn[] = "eng_op_binary";
    const eng_op_table *ops;
    eng_binary_args args;
    int64_t ashape[4], bshape[4], yshape[4], ystride[4];
    char da[96], db[96], dy[96];
    int rc;
    if ((rc = eng_ops_check_same_kind(fn, y, a, "y", "a", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_same_kind(fn, y, b, "y", "b", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_contiguous(fn, y, "y", err)) != ENG_OK) return rc;
    if ((int)op < 0 || op >= ENG_BINOP_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: operator %d out of range", fn, (int)op);
    }
    memset(&args, 0, sizeof args);
    pad4(a, ashape, args.a_stride);
    pad4(b, bshape, args.b_stride);
    pad4(y, yshape, ystride);
    /* numpy: right-aligned, each pair equal or one of them 1; y has the broadcast shape. */
    const int nd = ENG_MAX(a->ndim, b->ndim);
    for (int d = 0; d < 4; d++) {
        const int64_t sa = ashape[d], sb = bshape[d];
        if (sa != sb && sa != 1 && sb != 1) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: a %s and b %s do not broadcast (dimension %d from the right: "
                               "%lld vs %lld)",
                               fn, eng_tensor_describe(a, da, sizeof da),
                               eng_tensor_describe(b, db, sizeof db), 3 - d, (long long)sa,
                               (long long)sb);
        }
        const int64_t want = sa == 1 ? sb : sa;
        if (y->ndim != nd || yshape[d] != want) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: y is %s but a %s and b %s broadcast to a different shape", fn,
                               eng_tensor_describe(y, dy, sizeof dy),
                               eng_tensor_describe(a, da, sizeof da),
                               eng_tensor_describe(b, db, sizeof db));
        }
        if (sa == 1) args.a_stride[d] = 0; /* a broadcast dimension: every index reads element 0 */
        if (sb == 1) args.b_stride[d] = 0;
        args.shape[d] = want;
    }
    args.dtype = y->dtype;
    args.op = op;
    args.y = y->data;
    args.a = a->data;
    args.b = b->data;
    if ((rc = eng_ops_prepare(ctx, &s, y, fn, &ops, err)) != ENG_OK) return rc;
    if (ops == NULL) return eng_cpu_binary(s, &args, err);
    if (ops->binary == NULL) return eng_ops_unsupported(fn, y, err);
    return ops->binary(s, &args, err);
}

int eng_op_geglu(eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, eng_err *err) {
    static const char fn[] = "eng_op_geglu";
    const eng_op_table *ops;
    char dx[96], dy[96];
    int rc;
    if ((rc = eng_ops_check_same_kind(fn, y, x, "y", "x", err)) != ENG_OK) return rc;
    int ok = x->ndim >= 1 && x->ndim == y->ndim;
    for (int d = 0; ok && d < x->ndim - 1; d++)
        ok = x->shape[d] == y->shape[d];
    if (!ok || x->shape[x->ndim - 1] != 2 * y->shape[y->ndim - 1]) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: x is %s, y is %s (needs x (..., 2D) and y (..., D))", fn,
            eng_tensor_describe(x, dx, sizeof dx), eng_tensor_describe(y, dy, sizeof dy));
    }
    if ((rc = eng_ops_check_contiguous(fn, y, "y", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_contiguous(fn, x, "x", err)) != ENG_OK) return rc;
    int64_t rows = 1;
    for (int d = 0; d < y->ndim - 1; d++)
        rows *= y->shape[d];
    const eng_geglu_args a = {y->dtype, y->data, x->data, rows, y->shape[y->ndim - 1]};
    if ((rc = eng_ops_prepare(ctx, &s, y, fn, &ops, err)) != ENG_OK) return rc;
    if (ops == NULL) return eng_cpu_geglu(s, &a, err);
    if (ops->geglu == NULL) return eng_ops_unsupported(fn, y, err);
    return ops->geglu(s, &a, err);
}

/* y (any strides) = x (any strides), same shape, dtype and device: one strided copy. */
static int strided_copy(eng_ctx *ctx,
                        eng_stream *s,
                        const eng_tensor *y,
                        const eng_tensor *x,
                        const char *fn,
                        eng_err *err) {
    const eng_op_table *ops;
    eng_copy_args a;
    int64_t yshape[4];
    int rc;
    memset(&a, 0, sizeof a);
    a.dtype = y->dtype;
    a.y = y->data;
    a.x = x->data;
    pad4(y, yshape, a.y_stride);
    pad4(x, a.shape, a.x_stride);
    if ((rc = eng_ops_prepare(ctx, &s, y, fn, &ops, err)) != ENG_OK) return rc;
    if (ops == NULL) return eng_cpu_copy(s, &a, err);
    if (ops->copy == NULL) return eng_ops_unsupported(fn, y, err);
    return ops->copy(s, &a, err);
}

int eng_op_contiguous(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, eng_err *err) {
    static const char fn[] = "eng_op_contiguous";
    char dx[96], dy[96];
    int rc;
    if ((rc = eng_ops_check_same_kind(fn, y, x, "y", "x", err)) != ENG_OK) return rc;
    if (!eng_tensor_same_shape(y, x)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: y is %s but x is %s (same shape)", fn,
                           eng_tensor_describe(y, dy, sizeof dy),
                           eng_tensor_describe(x, dx, sizeof dx));
    }
    if ((rc = eng_ops_check_contiguous(fn, y, "y", err)) != ENG_OK) return rc;
    return strided_copy(ctx, s, y, x, fn, err);
}

int eng_op_concat(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *y,
                  const eng_tensor *a,
                  const eng_tensor *b,
                  int dim,
                  eng_err *err) {
    static const char fn[] = "eng_op_concat";
    char da[96], db[96], dy[96];
    eng_tensor ya, yb;
    int rc;
    if ((rc = eng_ops_check_same_kind(fn, y, a, "y", "a", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_same_kind(fn, y, b, "y", "b", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_contiguous(fn, y, "y", err)) != ENG_OK) return rc;
    if (dim < 0 || dim >= y->ndim) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: dimension %d of a %d-D tensor y (%s)", fn,
                           dim, y->ndim, eng_tensor_describe(y, dy, sizeof dy));
    }
    int ok =
        a->ndim == y->ndim && b->ndim == y->ndim && a->shape[dim] + b->shape[dim] == y->shape[dim];
    for (int d = 0; ok && d < y->ndim; d++) {
        if (d != dim) ok = a->shape[d] == y->shape[d] && b->shape[d] == y->shape[d];
    }
    if (!ok) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: y %s is not a %s and b %s joined along dimension %d", fn,
            eng_tensor_describe(y, dy, sizeof dy), eng_tensor_describe(a, da, sizeof da),
            eng_tensor_describe(b, db, sizeof db), dim);
    }
    if ((rc = eng_tensor_view_slice(&ya, y, dim, 0, a->shape[dim], err)) != ENG_OK) return rc;
    if ((rc = eng_tensor_view_slice(&yb, y, dim, a->shape[dim], b->shape[dim], err)) != ENG_OK) {
        return rc;
    }
    if ((rc = strided_copy(ctx, s, &ya, a, fn, err)) != ENG_OK) return rc;
    return strided_copy(ctx, s, &yb, b, fn, err);
}

int eng_op_upsample_nearest2x(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, eng_err *err) {
    static const char fn[] = "eng_op_upsample_nearest2x";
    const eng_op_table *ops;
    char dx[96], dy[96];
    int rc;
    if ((rc = eng_ops_check_same_kind(fn, y, x, "y", "x", err)) != ENG_OK) return rc;
    if (x->ndim != 4 || y->ndim != 4 || y->shape[0] != x->shape[0] ||
        y->shape[1] != 2 * x->shape[1] || y->shape[2] != 2 * x->shape[2] ||
        y->shape[3] != x->shape[3]) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: x is %s, y is %s (needs x (N, H, W, C), y (N, 2H, 2W, C))",
            fn, eng_tensor_describe(x, dx, sizeof dx), eng_tensor_describe(y, dy, sizeof dy));
    }
    if ((rc = eng_ops_check_contiguous(fn, y, "y", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_contiguous(fn, x, "x", err)) != ENG_OK) return rc;
    const eng_upsample_args a = {y->dtype,    y->data,     x->data,    x->shape[0],
                                 x->shape[1], x->shape[2], x->shape[3]};
    if ((rc = eng_ops_prepare(ctx, &s, y, fn, &ops, err)) != ENG_OK) return rc;
    if (ops == NULL) return eng_cpu_upsample(s, &a, err);
    if (ops->upsample == NULL) return eng_ops_unsupported(fn, y, err);
    return ops->upsample(s, &a, err);
}

int eng_op_timestep_embedding(eng_ctx *ctx,
                              eng_stream *s,
                              eng_tensor *y,
                              const eng_tensor *t,
                              int flip_sin_to_cos,
                              float freq_shift,
                              float max_period,
                              eng_err *err) {
    static const char fn[] = "eng_op_timestep_embedding";
    const eng_op_table *ops;
    char dt[96], dy[96];
    int rc;
    if (t->dtype != ENG_DTYPE_F32 || t->ndim != 1 || y->ndim != 2 || y->shape[0] != t->shape[0] ||
        t->device != y->device) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: t is %s, y is %s (needs t (N) f32 and y (N, dim) on one device)",
                           fn, eng_tensor_describe(t, dt, sizeof dt),
                           eng_tensor_describe(y, dy, sizeof dy));
    }
    if ((rc = eng_ops_check_contiguous(fn, y, "y", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_contiguous(fn, t, "t", err)) != ENG_OK) return rc;
    const eng_temb_args a = {y->dtype,    y->data,         t->data,    y->shape[0],
                             y->shape[1], flip_sin_to_cos, freq_shift, max_period};
    if ((rc = eng_ops_prepare(ctx, &s, y, fn, &ops, err)) != ENG_OK) return rc;
    if (ops == NULL) return eng_cpu_temb(s, &a, err);
    if (ops->temb == NULL) return eng_ops_unsupported(fn, y, err);
    return ops->temb(s, &a, err);
}
