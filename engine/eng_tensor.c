/* eng_tensor.c: tensor descriptors, allocation through the allocator, and views. */
#include "eng_tensor.h"

#include <stdio.h>
#include <string.h>

/* Fills shape and contiguous strides; checks ndim, dimensions and the element count. */
static int
tensor_set_shape(eng_tensor *t, int ndim, const int64_t *shape, const char *fn, eng_err *err) {
    int64_t numel = 1, stride = 1;
    if (ndim < 0 || ndim > ENG_MAX_DIMS) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %d dimensions (at most %d)", fn, ndim,
                           ENG_MAX_DIMS);
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: dimension %d is %lld (negative)", fn, i,
                               (long long)shape[i]);
        }
        if (shape[i] > 0 && numel > ENG_MAX_NUMEL / shape[i]) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: shape has more than 2^48 elements", fn);
        }
        numel *= shape[i];
    }
    t->ndim = ndim;
    for (int i = ENG_MAX_DIMS - 1; i >= 0; i--) {
        if (i < ndim) {
            t->shape[i] = shape[i];
            t->stride[i] = stride;
            stride *= shape[i] > 0 ? shape[i] : 1;
        } else {
            t->shape[i] = 1;
            t->stride[i] = 0;
        }
    }
    return ENG_OK;
}

int eng_tensor_init(eng_tensor *t,
                    void *data,
                    eng_dtype dtype,
                    eng_device_kind device,
                    int ndim,
                    const int64_t *shape,
                    eng_err *err) {
    eng_tensor tmp;
    int rc;
    ENG_ASSERT(t != NULL && (ndim == 0 || shape != NULL));
    memset(&tmp, 0, sizeof tmp);
    if (eng_dtype_size(dtype) == 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "eng_tensor_init: invalid dtype %d", (int)dtype);
    }
    if ((rc = tensor_set_shape(&tmp, ndim, shape, "eng_tensor_init", err)) != ENG_OK) return rc;
    tmp.data = data;
    tmp.dtype = dtype;
    tmp.device = device;
    *t = tmp;
    return ENG_OK;
}

int eng_tensor_alloc(eng_tensor *t,
                     eng_alloc *a,
                     eng_lifetime life,
                     const char *owner,
                     eng_dtype dtype,
                     int ndim,
                     const int64_t *shape,
                     eng_err *err) {
    void *data = NULL;
    int rc;
    ENG_ASSERT(a != NULL);
    rc = eng_tensor_init(t, NULL, dtype, eng_alloc_device(a), ndim, shape, err);
    if (rc != ENG_OK) return rc;
    const size_t bytes = eng_tensor_nbytes(t);
    if (bytes == 0) return ENG_OK; /* an empty tensor owns nothing */
    if ((rc = eng_alloc_take(a, &data, bytes, life, owner, err)) != ENG_OK) return rc;
    t->data = data;
    return ENG_OK;
}

int eng_tensor_scratch(
    eng_tensor *t, eng_arena *ar, eng_dtype dtype, int ndim, const int64_t *shape, eng_err *err) {
    void *data = NULL;
    int rc;
    ENG_ASSERT(ar != NULL);
    rc = eng_tensor_init(t, NULL, dtype, eng_alloc_device(eng_arena_alloc(ar)), ndim, shape, err);
    if (rc != ENG_OK) return rc;
    const size_t bytes = eng_tensor_nbytes(t);
    if (bytes == 0) return ENG_OK;
    if ((rc = eng_arena_take(ar, &data, bytes, err)) != ENG_OK) return rc;
    t->data = data;
    return ENG_OK;
}

void eng_tensor_free(eng_alloc *a, eng_tensor *t) {
    if (t == NULL) return;
    if (a != NULL) eng_alloc_give(a, t->data);
    memset(t, 0, sizeof *t);
}

int64_t eng_tensor_numel(const eng_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t eng_tensor_nbytes(const eng_tensor *t) {
    return (size_t)eng_tensor_numel(t) * eng_dtype_size(t->dtype);
}

int eng_tensor_is_contiguous(const eng_tensor *t) {
    int64_t expect = 1;
    if (eng_tensor_numel(t) == 0) return 1; /* no element to lay out */
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) return 0;
        expect *= t->shape[i];
    }
    return 1;
}

int eng_tensor_same_shape(const eng_tensor *a, const eng_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] != b->shape[i]) return 0;
    }
    return 1;
}

char *eng_tensor_describe(const eng_tensor *t, char *buf, size_t n) {
    size_t used = 0;
    int w = snprintf(buf, n, "%s[", eng_dtype_name(t->dtype));
    for (int i = 0; i < t->ndim && w >= 0 && (size_t)w < n - used; i++) {
        used += (size_t)w;
        w = snprintf(buf + used, n - used, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    }
    if (w >= 0 && (size_t)w < n - used) {
        used += (size_t)w;
        snprintf(buf + used, n - used, "] %s", eng_device_name(t->device));
    }
    return buf;
}

int eng_tensor_view_rows(
    eng_tensor *out, const eng_tensor *base, int64_t row0, int64_t nrows, eng_err *err) {
    if (base->ndim < 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "eng_tensor_view_rows: a scalar has no rows");
    }
    return eng_tensor_view_slice(out, base, 0, row0, nrows, err);
}

int eng_tensor_view_slice(
    eng_tensor *out, const eng_tensor *base, int dim, int64_t start, int64_t len, eng_err *err) {
    eng_tensor v;
    if (dim < 0 || dim >= base->ndim) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_tensor_view_slice: dimension %d of a %d-D tensor", dim, base->ndim);
    }
    if (start < 0 || len < 0 || start > base->shape[dim] || len > base->shape[dim] - start) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_tensor_view_slice: [%lld, %lld) is outside dimension %d of size "
                           "%lld",
                           (long long)start, (long long)(start + len), dim,
                           (long long)base->shape[dim]);
    }
    v = *base;
    if (v.data != NULL) {
        v.data = (char *)v.data + start * v.stride[dim] * (int64_t)eng_dtype_size(v.dtype);
    }
    v.shape[dim] = len;
    *out = v;
    return ENG_OK;
}

int eng_tensor_view_reshape(
    eng_tensor *out, const eng_tensor *base, int ndim, const int64_t *shape, eng_err *err) {
    eng_tensor v;
    char a[96], b[96];
    int rc;
    if (!eng_tensor_is_contiguous(base)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_tensor_view_reshape: %s is not contiguous (copy it first)",
                           eng_tensor_describe(base, a, sizeof a));
    }
    memset(&v, 0, sizeof v);
    if ((rc = tensor_set_shape(&v, ndim, shape, "eng_tensor_view_reshape", err)) != ENG_OK) {
        return rc;
    }
    v.data = base->data;
    v.dtype = base->dtype;
    v.device = base->device;
    if (eng_tensor_numel(&v) != eng_tensor_numel(base)) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "eng_tensor_view_reshape: %s has %lld elements, %s has %lld",
            eng_tensor_describe(base, a, sizeof a), (long long)eng_tensor_numel(base),
            eng_tensor_describe(&v, b, sizeof b), (long long)eng_tensor_numel(&v));
    }
    *out = v;
    return ENG_OK;
}

int eng_tensor_view_permute(eng_tensor *out,
                            const eng_tensor *base,
                            const int *perm,
                            eng_err *err) {
    eng_tensor v = *base;
    int seen[ENG_MAX_DIMS] = {0};
    for (int i = 0; i < base->ndim; i++) {
        const int p = perm[i];
        if (p < 0 || p >= base->ndim || seen[p]) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "eng_tensor_view_permute: entry %d (%d) of the permutation is out "
                               "of range or repeated",
                               i, p);
        }
        seen[p] = 1;
        v.shape[i] = base->shape[p];
        v.stride[i] = base->stride[p];
    }
    *out = v;
    return ENG_OK;
}
