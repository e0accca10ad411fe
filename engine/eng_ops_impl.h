/* eng_ops_impl.h: helpers shared by the op files of engine/ (eng_ops*.c); nothing outside this
 * directory includes it. Messages follow the op files' style: the function, then the tensors. */
#ifndef ENG_OPS_IMPL_H
#define ENG_OPS_IMPL_H

#include "eng_ops.h"
#include "eng_sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The pool CPU twins split work over (NULL: the calling thread). */
static inline eng_pool *eng_ops_pool(const eng_stream *s) {
    return s != NULL ? s->pool : NULL;
}

/* The stream to use: the caller's, else the context's default for the device.
 * Errors: ENG_E_UNSUPPORTED (device not attached), ENG_E_INVALID_ARG (a stream of another
 * device). */
int eng_ops_stream(eng_ctx *ctx,
                   eng_stream *s,
                   eng_device_kind dev,
                   const char *fn,
                   eng_stream **out,
                   eng_err *err);
/* The backend's op table for the device, NULL when none is attached (or the CPU). */
const eng_op_table *eng_ops_table(const eng_ctx *ctx, eng_device_kind dev);
/* ENG_E_UNSUPPORTED naming the tensor's dtype and device. */
int eng_ops_unsupported(const char *fn, const eng_tensor *t, eng_err *err);
/* a and b with one dtype and device, else ENG_E_INVALID_ARG naming both. */
int eng_ops_check_same_kind(const char *fn,
                            const eng_tensor *a,
                            const eng_tensor *b,
                            const char *an,
                            const char *bn,
                            eng_err *err);
int eng_ops_check_contiguous(const char *fn, const eng_tensor *t, const char *name, eng_err *err);
/* Same shape, dtype and device, both contiguous. */
int eng_ops_check_like(const char *fn,
                       const eng_tensor *y,
                       const eng_tensor *x,
                       const char *yn,
                       const char *xn,
                       eng_err *err);
/* Resolves the stream (as eng_ops_stream); on the CPU checks the twins' dtype (f32) and sets
 * *ops NULL, elsewhere sets *ops to the backend's table (ENG_E_UNSUPPORTED without one). */
int eng_ops_prepare(eng_ctx *ctx,
                    eng_stream **s,
                    const eng_tensor *y,
                    const char *fn,
                    const eng_op_table **ops,
                    eng_err *err);
/* CPU twins: f32 only; counts >= 0. */
int eng_ops_twin_dtype(const char *fn, eng_dtype dt, eng_err *err);
int eng_ops_twin_count(const char *fn, const char *what, int64_t v, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* ENG_OPS_IMPL_H */
