/* eng_tensor.h: a tensor is a typed, shaped, strided window onto memory the allocator owns.
 *
 *   int64_t shape[2] = {77, 768};
 *   eng_tensor x;
 *   eng_tensor_alloc(&x, alloc, ENG_LIFE_STATE, "clip", ENG_DTYPE_F32, 2, shape, &err);
 *   eng_tensor row;  eng_tensor_view_rows(&row, &x, 3, 1);     // borrows x's memory
 *   eng_tensor_free(alloc, &x);
 *
 * eng_tensor is plain data: copying the struct copies the view, not the memory. Shapes have at
 * most 4 dimensions; strides are in elements (not bytes) and may be anything a view produces.
 * Views are explicit (eng_tensor_view_*): nothing reshapes or transposes behind your back.
 * A scratch tensor (eng_tensor_scratch) is invalid after its arena is reset.
 * Threads: the functions here only touch the structs they are given. */
#ifndef ENG_TENSOR_H
#define ENG_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "eng_alloc.h"
#include "eng_dtype.h"
#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ENG_MAX_DIMS 4
/* A hard cap on the elements of one tensor (2^48): sizes from files are checked against it. */
#define ENG_MAX_NUMEL ((int64_t)1 << 48)

typedef struct eng_tensor {
    void *data; /* the first element; NULL for an empty tensor */
    eng_dtype dtype;
    eng_device_kind device;
    int ndim;                     /* 0..ENG_MAX_DIMS; 0 is a scalar (one element) */
    int64_t shape[ENG_MAX_DIMS];  /* unused dimensions are 1 */
    int64_t stride[ENG_MAX_DIMS]; /* in elements; unused dimensions are 0 */
} eng_tensor;

/* Describes contiguous (row-major) memory at `data` as a tensor: borrows `data`.
 * Errors: ENG_E_INVALID_ARG for ndim out of range, a negative dimension, or too many elements. */
int eng_tensor_init(eng_tensor *t,
                    void *data,
                    eng_dtype dtype,
                    eng_device_kind device,
                    int ndim,
                    const int64_t *shape,
                    eng_err *err);
/* Takes memory for a contiguous tensor from `a` (the device is the allocator's).
 * Errors: as eng_tensor_init, plus ENG_E_OOM from the allocator. */
int eng_tensor_alloc(eng_tensor *t,
                     eng_alloc *a,
                     eng_lifetime life,
                     const char *owner,
                     eng_dtype dtype,
                     int ndim,
                     const int64_t *shape,
                     eng_err *err);
/* Same, from a scratch arena: valid until the arena is reset. */
int eng_tensor_scratch(
    eng_tensor *t, eng_arena *ar, eng_dtype dtype, int ndim, const int64_t *shape, eng_err *err);
/* Gives a tensor's memory from eng_tensor_alloc back and zeroes the struct. Not for views. */
void eng_tensor_free(eng_alloc *a, eng_tensor *t);

/* ---- queries ------------------------------------------------------------------------------ */
int64_t eng_tensor_numel(const eng_tensor *t);
size_t eng_tensor_nbytes(const eng_tensor *t); /* numel * element size (contiguous extent) */
int eng_tensor_is_contiguous(const eng_tensor *t);
int eng_tensor_same_shape(const eng_tensor *a, const eng_tensor *b);
/* "f16[2,4,64,64] cuda" into buf; returns buf. */
char *eng_tensor_describe(const eng_tensor *t, char *buf, size_t n);

/* ---- views (borrow the base's memory) ------------------------------------------------------- */
/* Rows [row0, row0 + nrows) of dimension 0. Errors: ENG_E_INVALID_ARG when out of range. */
int eng_tensor_view_rows(
    eng_tensor *out, const eng_tensor *base, int64_t row0, int64_t nrows, eng_err *err);
/* [start, start + len) along `dim`. Errors: ENG_E_INVALID_ARG when out of range. */
int eng_tensor_view_slice(
    eng_tensor *out, const eng_tensor *base, int dim, int64_t start, int64_t len, eng_err *err);
/* Same elements, new shape; the base must be contiguous and the counts equal.
 * Errors: ENG_E_INVALID_ARG naming both shapes. */
int eng_tensor_view_reshape(
    eng_tensor *out, const eng_tensor *base, int ndim, const int64_t *shape, eng_err *err);
/* Dimensions reordered: out.shape[i] = base.shape[perm[i]]. perm must be a permutation of
 * 0..ndim-1. Errors: ENG_E_INVALID_ARG. */
int eng_tensor_view_permute(eng_tensor *out, const eng_tensor *base, const int *perm, eng_err *err);

/* Byte offset of element (i0, i1, i2, i3) (unused indices 0). */
static inline int64_t
eng_tensor_offset(const eng_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return (i0 * t->stride[0] + i1 * t->stride[1] + i2 * t->stride[2] + i3 * t->stride[3]) *
           (int64_t)eng_dtype_size(t->dtype);
}

#ifdef __cplusplus
}
#endif
#endif /* ENG_TENSOR_H */
