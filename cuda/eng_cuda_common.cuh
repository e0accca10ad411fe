/* eng_cuda_common.cuh: what every .cu file in cuda/ shares (private to this directory): the
 * error-check macros, the stream check and the 1-D grid helper of the launchers.
 *
 *   int f(eng_err *err) {                          // nothing to clean up: TRY returns
 *       ENG_CUDA_TRY(cudaSetDevice(dev), err);
 *       ...
 *   }
 *   int g(eng_err *err) {                          // cleanups: CHECK gives the code, goto done
 *       int rc = ENG_OK;
 *       if ((rc = ENG_CUDA_CHECK(cudaMalloc(&p, bytes), err)) != ENG_OK) goto done;
 *   done: ...
 *   }
 *   kernel<<<grid, BLOCK, 0, stream>>>(...);
 *   ENG_CUDA_LAUNCH_CHECK(err);                    // cudaGetLastError (+ sync under SYNC_CHECK)
 *   ENG_CUDA_WARN(cudaFree(p));                    // destroy paths: log and continue
 *
 * A failure becomes ENG_E_DEVICE with "<statement> failed at <file>:<line>: <cudaGetErrorString>
 * (<cudaGetErrorName>)". Each check also clears the runtime's last error, so a later
 * cudaGetLastError after a launch does not report an old, unrelated failure (sticky errors,
 * which poison the context, stay).
 * Threads: pure helpers. */
#ifndef ENG_CUDA_COMMON_CUH
#define ENG_CUDA_COMMON_CUH

#include <stdint.h>
#include <string.h>

#include <cuda_runtime.h>

#include "eng_backend.h"
#include "eng_err.h"

/* "eng_cuda_backend.cu" from "/abs/path/cuda/eng_cuda_backend.cu": messages stay short. */
static inline const char *eng_cuda_file_base(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* ENG_OK for cudaSuccess; otherwise ENG_E_DEVICE with the statement, place and CUDA's reason. */
static inline int
eng_cuda_check(cudaError_t e, const char *expr, const char *file, int line, eng_err *err) {
    if (e == cudaSuccess) return ENG_OK;
    (void)cudaGetLastError(); /* clear it: the failure is reported here, once */
    return eng_err_set(err, ENG_E_DEVICE, "%s failed at %s:%d: %s (%s)", expr,
                       eng_cuda_file_base(file), line, cudaGetErrorString(e), cudaGetErrorName(e));
}

/* Evaluates to ENG_OK or ENG_E_DEVICE (message in *err), for functions with a done: label. */
#define ENG_CUDA_CHECK(expr, err) eng_cuda_check((expr), #expr, __FILE__, __LINE__, (err))

/* Returns ENG_E_DEVICE from the enclosing function when expr fails. */
#define ENG_CUDA_TRY(expr, err)                                                                    \
    do {                                                                                           \
        const int eng_cuda_try_rc_ = ENG_CUDA_CHECK(expr, err);                                    \
        if (eng_cuda_try_rc_ != ENG_OK) return eng_cuda_try_rc_;                                   \
    } while (0)

/* For destroy paths, which cannot fail: logs the failure to stderr and continues. */
#define ENG_CUDA_WARN(expr)                                                                        \
    do {                                                                                           \
        const cudaError_t eng_cuda_warn_e_ = (expr);                                               \
        if (eng_cuda_warn_e_ != cudaSuccess) {                                                     \
            (void)cudaGetLastError();                                                              \
            eng_log(NULL, ENG_LOG_WARN, "%s failed at %s:%d: %s (%s)", #expr,                      \
                    eng_cuda_file_base(__FILE__), __LINE__, cudaGetErrorString(eng_cuda_warn_e_),  \
                    cudaGetErrorName(eng_cuda_warn_e_));                                           \
        }                                                                                          \
    } while (0)

/* After a launch: a bad configuration shows in cudaGetLastError. With ENG_CUDA_SYNC_CHECK the
 * device is also synchronized, so a fault inside the kernel is blamed on this launcher (`fn`). */
static inline int eng_cuda_launch_check(const char *fn, const char *file, int line, eng_err *err) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        return eng_err_set(err, ENG_E_DEVICE, "%s: kernel launch failed at %s:%d: %s (%s)", fn,
                           eng_cuda_file_base(file), line, cudaGetErrorString(e),
                           cudaGetErrorName(e));
    }
#ifdef ENG_CUDA_SYNC_CHECK
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return eng_err_set(
            err, ENG_E_DEVICE, "%s: kernel failed at %s:%d (seen by ENG_CUDA_SYNC_CHECK): %s (%s)",
            fn, eng_cuda_file_base(file), line, cudaGetErrorString(e), cudaGetErrorName(e));
    }
#endif
    return ENG_OK;
}

/* Returns from the enclosing launcher when the launch just made failed. */
#define ENG_CUDA_LAUNCH_CHECK(err)                                                                 \
    do {                                                                                           \
        const int eng_cuda_launch_rc_ =                                                            \
            eng_cuda_launch_check(__func__, __FILE__, __LINE__, (err));                            \
        if (eng_cuda_launch_rc_ != ENG_OK) return eng_cuda_launch_rc_;                             \
    } while (0)

/* The cudaStream_t of an engine stream (NULL s or handle: the legacy default stream).
 * ENG_E_INVALID_ARG when s belongs to another device. */
static inline int
eng_cuda_stream_get(cudaStream_t *out, const char *fn, const eng_stream *s, eng_err *err) {
    *out = 0;
    if (s == NULL) return ENG_OK;
    if (s->device != ENG_DEVICE_CUDA) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: stream is a %s stream, expected cuda", fn,
                           eng_device_name(s->device));
    }
    *out = (cudaStream_t)s->handle;
    return ENG_OK;
}

/* The common argument checks of a 1-D launcher: n >= 0 and, when n > 0, no NULL buffer. The
 * buffers are given as (name, pointer) pairs; unused slots are NULL names. */
static inline int eng_cuda_check_1d(const char *fn,
                                    int64_t n,
                                    const char *name0,
                                    const void *p0,
                                    const char *name1,
                                    const void *p1,
                                    const char *name2,
                                    const void *p2,
                                    eng_err *err) {
    if (n < 0) return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n = %lld < 0", fn, (long long)n);
    if (n == 0) return ENG_OK;
    const char *names[3] = {name0, name1, name2};
    const void *ptrs[3] = {p0, p1, p2};
    for (int k = 0; k < 3; k++) {
        if (names[k] != NULL && ptrs[k] == NULL) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s is NULL with n = %lld", fn, names[k],
                               (long long)n);
        }
    }
    return ENG_OK;
}

/* Blocks for `items` work items, one per thread, capped at `max_blocks`: kernels loop with a
 * grid stride, so any n runs, and the cap keeps the grid a few waves deep. items > 0. */
static inline unsigned eng_cuda_grid_1d(int64_t items, int block, unsigned max_blocks) {
    const int64_t blocks = items / block + (items % block != 0); /* no overflow near INT64_MAX */
    return blocks < (int64_t)max_blocks ? (unsigned)blocks : max_blocks;
}

#endif /* ENG_CUDA_COMMON_CUH */
