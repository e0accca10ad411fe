/* eng_ops.c: op dispatch. Checks what the caller passed (dtype, shape, device, layout), then calls
 * the CPU twin or the device backend's kernel. */
#include "eng_ops.h"

#include <string.h>

#include "eng_ops_impl.h"

#include <string.h>

/* ---- helpers shared by the op files (eng_ops_impl.h) -------------------------------------- */

int eng_ops_stream(eng_ctx *ctx,
                   eng_stream *s,
                   eng_device_kind dev,
                   const char *fn,
                   eng_stream **out,
                   eng_err *err) {
    if (s == NULL) s = eng_ctx_stream(ctx, dev);
    if (s == NULL) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: no %s device is attached to the context",
                           fn, eng_device_name(dev));
    }
    if (s->device != dev) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: a %s stream for %s tensors", fn,
                           eng_device_name(s->device), eng_device_name(dev));
    }
    *out = s;
    return ENG_OK;
}

const eng_op_table *eng_ops_table(const eng_ctx *ctx, eng_device_kind dev) {
    const eng_backend *b = eng_ctx_backend(ctx, dev);
    return b != NULL ? &b->ops : NULL;
}

int eng_ops_unsupported(const char *fn, const eng_tensor *t, eng_err *err) {
    char d[96];
    return eng_err_set(err, ENG_E_UNSUPPORTED,
                       "%s: not available for %s in this build (CPU ops take f32)", fn,
                       eng_tensor_describe(t, d, sizeof d));
}

int eng_ops_check_same_kind(const char *fn,
                            const eng_tensor *a,
                            const eng_tensor *b,
                            const char *an,
                            const char *bn,
                            eng_err *err) {
    char da[96], db[96];
    if (a->dtype == b->dtype && a->device == b->device) return ENG_OK;
    return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s is %s but %s is %s (same dtype and device)",
                       fn, an, eng_tensor_describe(a, da, sizeof da), bn,
                       eng_tensor_describe(b, db, sizeof db));
}

int eng_ops_check_contiguous(const char *fn, const eng_tensor *t, const char *name, eng_err *err) {
    char d[96];
    if (eng_tensor_is_contiguous(t)) return ENG_OK;
    return eng_err_set(err, ENG_E_INVALID_ARG,
                       "%s: %s (%s) must be contiguous (eng_op_contiguous makes a copy)", fn, name,
                       eng_tensor_describe(t, d, sizeof d));
}

int eng_ops_check_like(const char *fn,
                       const eng_tensor *y,
                       const eng_tensor *x,
                       const char *yn,
                       const char *xn,
                       eng_err *err) {
    char a[96], b[96];
    int rc;
    if (!eng_tensor_same_shape(y, x)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s is %s but %s is %s (same shape)", fn, yn,
                           eng_tensor_describe(y, a, sizeof a), xn,
                           eng_tensor_describe(x, b, sizeof b));
    }
    if ((rc = eng_ops_check_same_kind(fn, y, x, yn, xn, err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_contiguous(fn, y, yn, err)) != ENG_OK) return rc;
    return eng_ops_check_contiguous(fn, x, xn, err);
}

int eng_ops_prepare(eng_ctx *ctx,
                    eng_stream **s,
                    const eng_tensor *y,
                    const char *fn,
                    const eng_op_table **ops,
                    eng_err *err) {
    int rc;
    *ops = NULL;
    if ((rc = eng_ops_stream(ctx, *s, y->device, fn, s, err)) != ENG_OK) return rc;
    if (y->device == ENG_DEVICE_CPU) {
        return y->dtype == ENG_DTYPE_F32 ? ENG_OK : eng_ops_unsupported(fn, y, err);
    }
    *ops = eng_ops_table(ctx, y->device);
    return *ops != NULL ? ENG_OK : eng_ops_unsupported(fn, y, err);
}

int eng_ops_twin_dtype(const char *fn, eng_dtype dt, eng_err *err) {
    if (dt == ENG_DTYPE_F32) return ENG_OK;
    return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: dtype %s (the CPU twins take f32 only)", fn,
                       eng_dtype_name(dt));
}

int eng_ops_twin_count(const char *fn, const char *what, int64_t v, eng_err *err) {
    if (v >= 0) return ENG_OK;
    return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s = %lld < 0", fn, what, (long long)v);
}

int eng_op_add(eng_ctx *ctx,
               eng_stream *s,
               eng_tensor *y,
               const eng_tensor *a,
               const eng_tensor *b,
               eng_err *err) {
    static const char fn[] = "eng_op_add";
    const eng_op_table *ops;
    int rc;
    const int64_t n = eng_tensor_numel(y);
    if ((rc = eng_ops_check_like(fn, y, a, "y", "a", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_check_like(fn, y, b, "y", "b", err)) != ENG_OK) return rc;
    if ((rc = eng_ops_stream(ctx, s, y->device, fn, &s, err)) != ENG_OK) return rc;
    if (y->device == ENG_DEVICE_CPU) {
        if (y->dtype == ENG_DTYPE_F32) return eng_cpu_add_f32(s, y->data, a->data, b->data, n, err);
        if (y->dtype == ENG_DTYPE_F16) return eng_cpu_add_f16(s, y->data, a->data, b->data, n, err);
        return eng_ops_unsupported(fn, y, err);
    }
    ops = eng_ops_table(ctx, y->device);
    if (y->dtype == ENG_DTYPE_F32 && ops != NULL && ops->add_f32 != NULL) {
        return ops->add_f32(s, y->data, a->data, b->data, n, err);
    }
    if (y->dtype == ENG_DTYPE_F16 && ops != NULL && ops->add_f16 != NULL) {
        return ops->add_f16(s, y->data, a->data, b->data, n, err);
    }
    return eng_ops_unsupported(fn, y, err);
}

static int fill(eng_ctx *ctx,
                eng_stream *s,
                eng_tensor *y,
                uint64_t seed,
                uint64_t offset,
                int normal,
                eng_err *err) {
    const char *fn = normal ? "eng_op_fill_normal" : "eng_op_fill_uniform";
    const eng_op_table *ops;
    char d[96];
    int rc;
    const int64_t n = eng_tensor_numel(y);
    if (y->dtype != ENG_DTYPE_F32 || !eng_tensor_is_contiguous(y)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: y is %s (needs contiguous f32)", fn,
                           eng_tensor_describe(y, d, sizeof d));
    }
    if ((rc = eng_ops_stream(ctx, s, y->device, fn, &s, err)) != ENG_OK) return rc;
    if (y->device == ENG_DEVICE_CPU) {
        return normal ? eng_cpu_fill_normal_f32(s, y->data, n, seed, offset, err)
                      : eng_cpu_fill_uniform_f32(s, y->data, n, seed, offset, err);
    }
    ops = eng_ops_table(ctx, y->device);
    if (ops != NULL && normal && ops->fill_normal_f32 != NULL) {
        return ops->fill_normal_f32(s, y->data, n, seed, offset, err);
    }
    if (ops != NULL && !normal && ops->fill_uniform_f32 != NULL) {
        return ops->fill_uniform_f32(s, y->data, n, seed, offset, err);
    }
    return eng_ops_unsupported(fn, y, err);
}

int eng_op_fill_uniform(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, uint64_t seed, uint64_t offset, eng_err *err) {
    return fill(ctx, s, y, seed, offset, 0, err);
}

int eng_op_fill_normal(
    eng_ctx *ctx, eng_stream *s, eng_tensor *y, uint64_t seed, uint64_t offset, eng_err *err) {
    return fill(ctx, s, y, seed, offset, 1, err);
}

int eng_op_gemm(eng_ctx *ctx,
                eng_stream *s,
                eng_tensor *c,
                const eng_tensor *a,
                const eng_tensor *b,
                int trans_a,
                int trans_b,
                float alpha,
                float beta,
                eng_err *err) {
    static const char fn[] = "eng_op_gemm";
    char da[96], db[96], dc[96];
    int rc;
    if (a->ndim != 2 || b->ndim != 2 || c->ndim != 2 || a->dtype != ENG_DTYPE_F32 ||
        b->dtype != ENG_DTYPE_F32 || c->dtype != ENG_DTYPE_F32 || a->device != c->device ||
        b->device != c->device) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: needs 2-D f32 tensors on one device, got A %s, B %s, C %s",
            fn, eng_tensor_describe(a, da, sizeof da), eng_tensor_describe(b, db, sizeof db),
            eng_tensor_describe(c, dc, sizeof dc));
    }
    const int64_t m = trans_a ? a->shape[1] : a->shape[0];
    const int64_t k = trans_a ? a->shape[0] : a->shape[1];
    const int64_t kb = trans_b ? b->shape[1] : b->shape[0];
    const int64_t n = trans_b ? b->shape[0] : b->shape[1];
    if (k != kb || c->shape[0] != m || c->shape[1] != n) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: shapes do not chain: op(A) is %lldx%lld, op(B) is %lldx%lld, C is "
                           "%lldx%lld",
                           fn, (long long)m, (long long)k, (long long)kb, (long long)n,
                           (long long)c->shape[0], (long long)c->shape[1]);
    }
    /* Rows may be padded (row stride >= width) but elements within a row must be adjacent. */
    if (a->stride[1] != 1 || b->stride[1] != 1 || c->stride[1] != 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: rows of A, B and C must be contiguous", fn);
    }
    if ((rc = eng_ops_stream(ctx, s, c->device, fn, &s, err)) != ENG_OK) return rc;
    if (c->device != ENG_DEVICE_CPU) return eng_ops_unsupported(fn, c, err);
    return eng_cpu_gemm_f32(s, trans_a, trans_b, m, n, k, alpha, a->data,
                            a->stride[0] > 0 ? a->stride[0] : a->shape[1], b->data,
                            b->stride[0] > 0 ? b->stride[0] : b->shape[1], beta, c->data,
                            c->stride[0] > 0 ? c->stride[0] : c->shape[1], err);
}

int eng_op_convert(eng_ctx *ctx, eng_stream *s, eng_tensor *y, const eng_tensor *x, eng_err *err) {
    static const char fn[] = "eng_op_convert";
    char a[96], b[96];
    int rc;
    const int64_t n = eng_tensor_numel(x);
    if (!eng_tensor_same_shape(y, x) || y->device != x->device || !eng_tensor_is_contiguous(y) ||
        !eng_tensor_is_contiguous(x)) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: y is %s, x is %s (same shape and device, contiguous)", fn,
            eng_tensor_describe(y, a, sizeof a), eng_tensor_describe(x, b, sizeof b));
    }
    if ((rc = eng_ops_stream(ctx, s, y->device, fn, &s, err)) != ENG_OK) return rc;
    if (y->device != ENG_DEVICE_CPU) return eng_ops_unsupported(fn, y, err);
    if (y->dtype == x->dtype) {
        memmove(y->data, x->data, eng_tensor_nbytes(x));
    } else if (x->dtype == ENG_DTYPE_F32 && y->dtype == ENG_DTYPE_F16) {
        eng_convert_f32_to_f16(y->data, x->data, n);
    } else if (x->dtype == ENG_DTYPE_F16 && y->dtype == ENG_DTYPE_F32) {
        eng_convert_f16_to_f32(y->data, x->data, n);
    } else if (x->dtype == ENG_DTYPE_F32 && y->dtype == ENG_DTYPE_BF16) {
        eng_convert_f32_to_bf16(y->data, x->data, n);
    } else if (x->dtype == ENG_DTYPE_BF16 && y->dtype == ENG_DTYPE_F32) {
        eng_convert_bf16_to_f32(y->data, x->data, n);
    } else {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: %s to %s", fn, eng_dtype_name(x->dtype),
                           eng_dtype_name(y->dtype));
    }
    return ENG_OK;
}

int eng_op_copy(eng_ctx *ctx, eng_tensor *dst, const eng_tensor *src, eng_err *err) {
    static const char fn[] = "eng_op_copy";
    char a[96], b[96];
    const eng_backend *be;
    eng_stream *s = NULL;
    eng_copy_kind kind;
    int rc;
    if (!eng_tensor_same_shape(dst, src) || dst->dtype != src->dtype ||
        !eng_tensor_is_contiguous(dst) || !eng_tensor_is_contiguous(src)) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: dst is %s, src is %s (same shape and dtype, contiguous)",
            fn, eng_tensor_describe(dst, a, sizeof a), eng_tensor_describe(src, b, sizeof b));
    }
    const size_t bytes = eng_tensor_nbytes(src);
    if (bytes == 0) return ENG_OK;
    if (dst->device == ENG_DEVICE_CPU && src->device == ENG_DEVICE_CPU) {
        memmove(dst->data, src->data, bytes);
        return ENG_OK;
    }
    const eng_device_kind dev = dst->device != ENG_DEVICE_CPU ? dst->device : src->device;
    be = eng_ctx_backend(ctx, dev);
    if (be == NULL || be->copy == NULL) return eng_ops_unsupported(fn, dst, err);
    if ((rc = eng_ops_stream(ctx, NULL, dev, fn, &s, err)) != ENG_OK) return rc;
    kind = src->device == ENG_DEVICE_CPU   ? ENG_COPY_H2D
           : dst->device == ENG_DEVICE_CPU ? ENG_COPY_D2H
                                           : ENG_COPY_D2D;
    if ((rc = be->copy(be->impl, s, dst->data, src->data, bytes, kind, err)) != ENG_OK) return rc;
    return be->stream_sync(be->impl, s, err);
}
