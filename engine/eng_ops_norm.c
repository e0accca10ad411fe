/* eng_ops_norm.c: the normalisation family: GroupNorm (+ fused SiLU), LayerNorm and softmax.
 * Tensor-level ops (eng_op_*: checks, then dispatch) and their CPU twins (eng_cpu_*: the spec).
 * The twins take the statistics in f64 with two passes (mean, then the mean squared deviation),
 * which is exact enough to judge any f32 kernel; cuda/norm.cu is tested against them.
 * Layout: NHWC, x (N, H*W, C) for GroupNorm; rows of C contiguous values for the others. */
#include <math.h>
#include <string.h>

#include "eng_act_math.h"
#include "eng_ops.h"
#include "eng_ops_impl.h"
#include "eng_sched.h"

/* Elements per pool piece (pieces are whole rows or groups). */
enum { NORM_GRAIN = 1 << 14 };

static int twin_ptrs(const char *fn, int64_t work, void *y, const void *x, eng_err *err) {
    if (work == 0 || (y != NULL && x != NULL)) return ENG_OK;
    return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s is NULL with %lld elements to do", fn,
                       y == NULL ? "y" : "x", (long long)work);
}

/* ---- GroupNorm ------------------------------------------------------------------------------- */

/* Units [begin, end) of (sample, group), unit = i * groups + g: two passes in f64 over the hw x cpg
 * values of x (n, hw, c) at channels [g cpg, (g + 1) cpg), then the normalisation. */
static void groupnorm_units(void *user, int64_t begin, int64_t end) {
    const eng_groupnorm_args *a = user;
    const float *x = a->x, *gamma = a->gamma, *beta = a->beta;
    float *y = a->y;
    const int64_t cpg = a->c / a->groups;
    const double count = (double)(a->hw * cpg);
    for (int64_t u = begin; u < end; u++) {
        const int64_t i = u / a->groups, c0 = (u % a->groups) * cpg;
        const float *xs = x + i * a->hw * a->c + c0;
        float *ys = y + i * a->hw * a->c + c0;
        double sum = 0.0, sq = 0.0;
        for (int64_t p = 0; p < a->hw; p++) {
            for (int64_t j = 0; j < cpg; j++)
                sum += xs[p * a->c + j];
        }
        const double mean = sum / count;
        for (int64_t p = 0; p < a->hw; p++) {
            for (int64_t j = 0; j < cpg; j++) {
                const double d = xs[p * a->c + j] - mean;
                sq += d * d;
            }
        }
        const double rstd = 1.0 / sqrt(sq / count + (double)a->eps);
        for (int64_t p = 0; p < a->hw; p++) {
            for (int64_t j = 0; j < cpg; j++) {
                const double g = gamma != NULL ? gamma[c0 + j] : 1.0;
                const double b = beta != NULL ? beta[c0 + j] : 0.0;
                const double v = (xs[p * a->c + j] - mean) * rstd * g + b;
                ys[p * a->c + j] = eng_act_apply(a->act, (float)v);
            }
        }
    }
}

int eng_cpu_groupnorm(eng_stream *s, const eng_groupnorm_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_groupnorm";
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = eng_ops_twin_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "n", a->n, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "hw", a->hw, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "c", a->c, err)) != ENG_OK) return rc;
    if (a->groups < 1 || a->c % a->groups != 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: %lld channels do not split into %lld groups", fn, (long long)a->c,
                           (long long)a->groups);
    }
    if (a->act != ENG_ACT_NONE && a->act != ENG_ACT_SILU) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: activation %s (none or silu)", fn,
                           eng_act_name(a->act));
    }
    if (!(a->eps >= 0.0f)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: eps = %g (needs >= 0)", fn, (double)a->eps);
    }
    const int64_t n = a->n * a->hw * a->c;
    if ((rc = twin_ptrs(fn, n, a->y, a->x, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    const int64_t per_unit = a->hw * (a->c / a->groups);
    eng_pool_parallel_for(eng_ops_pool(s), a->n * a->groups, ENG_MAX(1, NORM_GRAIN / per_unit),
                          groupnorm_units, (void *)a);
    return ENG_OK;
}

/* ---- LayerNorm ------------------------------------------------------------------------------- */

static void layernorm_rows(void *user, int64_t begin, int64_t end) {
    const eng_layernorm_args *a = user;
    const float *gamma = a->gamma, *beta = a->beta;
    for (int64_t r = begin; r < end; r++) {
        const float *x = (const float *)a->x + r * a->c;
        float *y = (float *)a->y + r * a->c;
        double sum = 0.0, sq = 0.0;
        for (int64_t j = 0; j < a->c; j++)
            sum += x[j];
        const double mean = sum / (double)a->c;
        for (int64_t j = 0; j < a->c; j++)
            sq += (x[j] - mean) * (x[j] - mean);
        const double rstd = 1.0 / sqrt(sq / (double)a->c + (double)a->eps);
        for (int64_t j = 0; j < a->c; j++) {
            const double g = gamma != NULL ? gamma[j] : 1.0;
            const double b = beta != NULL ? beta[j] : 0.0;
            y[j] = (float)((x[j] - mean) * rstd * g + b);
        }
    }
}

int eng_cpu_layernorm(eng_stream *s, const eng_layernorm_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_layernorm";
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = eng_ops_twin_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "rows", a->rows, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "c", a->c, err)) != ENG_OK) return rc;
    if (!(a->eps >= 0.0f)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: eps = %g (needs >= 0)", fn, (double)a->eps);
    }
    const int64_t n = a->rows * a->c;
    if ((rc = twin_ptrs(fn, n, a->y, a->x, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    eng_pool_parallel_for(eng_ops_pool(s), a->rows, ENG_MAX(1, NORM_GRAIN / a->c), layernorm_rows,
                          (void *)a);
    return ENG_OK;
}

/* ---- softmax ----------------------------------------------------------------------------------- */

/* Per row: m = max(scale x) (scale x rounded to f32, as a kernel sees it), then in f64
 * y = exp(scale x - m) / sum exp(scale x - m). y may be x: each element is read before it is
 * written. A row of -inf (or with a NaN) gives NaN, as torch. */
static void softmax_rows(void *user, int64_t begin, int64_t end) {
    const eng_softmax_args *a = user;
    for (int64_t r = begin; r < end; r++) {
        const float *x = (const float *)a->x + r * a->c;
        float *y = (float *)a->y + r * a->c;
        float m = -INFINITY;
        double sum = 0.0;
        for (int64_t j = 0; j < a->c; j++) {
            const float v = a->scale * x[j];
            if (v > m) m = v;
        }
        for (int64_t j = 0; j < a->c; j++)
            sum += exp((double)(a->scale * x[j]) - (double)m);
        for (int64_t j = 0; j < a->c; j++)
            y[j] = (float)(exp((double)(a->scale * x[j]) - (double)m) / sum);
    }
}

int eng_cpu_softmax(eng_stream *s, const eng_softmax_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_softmax";
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = eng_ops_twin_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "rows", a->rows, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_twin_count(fn, "c", a->c, err)) != ENG_OK) return rc;
    const int64_t n = a->rows * a->c;
    if ((rc = twin_ptrs(fn, n, a->y, a->x, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    eng_pool_parallel_for(eng_ops_pool(s), a->rows, ENG_MAX(1, NORM_GRAIN / a->c), softmax_rows,
                          (void *)a);
    return ENG_OK;
}

/* ---- tensor-level ops ------------------------------------------------------------------------ */

/* y like x (shape, dtype, device), both contiguous; x at least 1-D. */
static int check_yx(const char *fn, const eng_tensor *y, const eng_tensor *x, eng_err *err) {
    char dx[96], dy[96];
    if (!eng_tensor_same_shape(y, x) || y->dtype != x->dtype || y->device != x->device) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: y is %s but x is %s (same shape, dtype and device)", fn,
            eng_tensor_describe(y, dy, sizeof dy), eng_tensor_describe(x, dx, sizeof dx));
    }
    if (!eng_tensor_is_contiguous(x) || !eng_tensor_is_contiguous(y)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: x and y must be contiguous, got x %s, y %s (eng_op_contiguous "
                           "makes a copy)",
                           fn, eng_tensor_describe(x, dx, sizeof dx),
                           eng_tensor_describe(y, dy, sizeof dy));
    }
    if (x->ndim < 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: x is a scalar (needs (..., C))", fn);
    }
    return ENG_OK;
}

/* An affine parameter (gamma or beta): NULL, or (c) contiguous with x's dtype and device. */
static int check_param(const char *fn,
                       const eng_tensor *p,
                       const char *name,
                       const eng_tensor *x,
                       int64_t c,
                       eng_err *err) {
    char dp[96], dx[96];
    if (p == NULL) return ENG_OK;
    if (p->ndim != 1 || p->shape[0] != c || p->dtype != x->dtype || p->device != x->device ||
        !eng_tensor_is_contiguous(p)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: %s is %s but x is %s (needs (%lld), contiguous, x's dtype and "
                           "device)",
                           fn, name, eng_tensor_describe(p, dp, sizeof dp),
                           eng_tensor_describe(x, dx, sizeof dx), (long long)c);
    }
    return ENG_OK;
}

static int check_eps(const char *fn, float eps, eng_err *err) {
    if (eps >= 0.0f && isfinite(eps)) return ENG_OK;
    return eng_err_set(err, ENG_E_INVALID_ARG, "%s: eps = %g (needs a finite value >= 0)", fn,
                       (double)eps);
}

int eng_op_groupnorm(eng_ctx *ctx,
                     eng_stream *s,
                     eng_tensor *y,
                     const eng_tensor *x,
                     const eng_tensor *gamma,
                     const eng_tensor *beta,
                     int64_t groups,
                     float eps,
                     eng_act act,
                     eng_err *err) {
    static const char fn[] = "eng_op_groupnorm";
    const eng_op_table *ops;
    char dx[96];
    int rc;
    if ((rc = check_yx(fn, y, x, err)) != ENG_OK) return rc;
    if (x->ndim != 3 && x->ndim != 4) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: x is %s (needs (N, H, W, C) or (N, L, C))",
                           fn, eng_tensor_describe(x, dx, sizeof dx));
    }
    const int64_t c = x->shape[x->ndim - 1];
    const int64_t hw = x->ndim == 4 ? x->shape[1] * x->shape[2] : x->shape[1];
    if (groups < 1 || c % groups != 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: x is %s: %lld channels do not split into %lld groups", fn,
                           eng_tensor_describe(x, dx, sizeof dx), (long long)c, (long long)groups);
    }
    if (act != ENG_ACT_NONE && act != ENG_ACT_SILU) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: activation %s (none or silu fuse)", fn,
                           eng_act_name(act));
    }
    if ((rc = check_eps(fn, eps, err)) != ENG_OK) return rc;
    if ((rc = check_param(fn, gamma, "gamma", x, c, err)) != ENG_OK) return rc;
    if ((rc = check_param(fn, beta, "beta", x, c, err)) != ENG_OK) return rc;
    const eng_groupnorm_args a = {y->dtype,
                                  y->data,
                                  x->data,
                                  gamma != NULL ? gamma->data : NULL,
                                  beta != NULL ? beta->data : NULL,
                                  x->shape[0],
                                  hw,
                                  c,
                                  groups,
                                  eps,
                                  act};
    if ((rc = eng_ops_prepare(ctx, &s, y, fn, &ops, err)) != ENG_OK) return rc;
    if (ops == NULL) return eng_cpu_groupnorm(s, &a, err);
    if (ops->groupnorm == NULL) return eng_ops_unsupported(fn, y, err);
    return ops->groupnorm(s, &a, err);
}

int eng_op_layernorm(eng_ctx *ctx,
                     eng_stream *s,
                     eng_tensor *y,
                     const eng_tensor *x,
                     const eng_tensor *gamma,
                     const eng_tensor *beta,
                     float eps,
                     eng_err *err) {
    static const char fn[] = "eng_op_layernorm";
    const eng_op_table *ops;
    int rc;
    if ((rc = check_yx(fn, y, x, err)) != ENG_OK) return rc;
    const int64_t c = x->shape[x->ndim - 1];
    if ((rc = check_eps(fn, eps, err)) != ENG_OK) return rc;
    if ((rc = check_param(fn, gamma, "gamma", x, c, err)) != ENG_OK) return rc;
    if ((rc = check_param(fn, beta, "beta", x, c, err)) != ENG_OK) return rc;
    const int64_t rows = c > 0 ? eng_tensor_numel(x) / c : 0;
    const eng_layernorm_args a = {y->dtype,
                                  y->data,
                                  x->data,
                                  gamma != NULL ? gamma->data : NULL,
                                  beta != NULL ? beta->data : NULL,
                                  rows,
                                  c,
                                  eps};
    if ((rc = eng_ops_prepare(ctx, &s, y, fn, &ops, err)) != ENG_OK) return rc;
    if (ops == NULL) return eng_cpu_layernorm(s, &a, err);
    if (ops->layernorm == NULL) return eng_ops_unsupported(fn, y, err);
    return ops->layernorm(s, &a, err);
}

int eng_op_softmax(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, float scale, eng_err *err) {
    static const char fn[] = "eng_op_softmax";
    const eng_op_table *ops;
    int rc;
    if ((rc = check_yx(fn, y, x, err)) != ENG_OK) return rc;
    const int64_t c = x->shape[x->ndim - 1];
    const int64_t rows = c > 0 ? eng_tensor_numel(x) / c : 0;
    const eng_softmax_args a = {y->dtype, y->data, x->data, rows, c, scale};
    if ((rc = eng_ops_prepare(ctx, &s, y, fn, &ops, err)) != ENG_OK) return rc;
    if (ops == NULL) return eng_cpu_softmax(s, &a, err);
    if (ops->softmax == NULL) return eng_ops_unsupported(fn, y, err);
    return ops->softmax(s, &a, err);
}
