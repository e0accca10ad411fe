/* eng_ctx.h: the context every pipeline runs in: the allocators (one per device), the one
 * scheduler with its thread pool, the device backends, the log sink and progress settings.
 *
 *   eng_ctx_params p; eng_ctx_params_init(&p);
 *   eng_ctx_params_from_env(&p, &err);               // ENG_THREADS, ENG_MEMORY_BUDGET, ...
 *   eng_ctx *ctx = NULL; eng_err err;
 *   if (eng_ctx_create(&ctx, &p, &err) != ENG_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
 *   eng_cuda_attach(ctx, 0, 0, &err);                // cuda/eng_cuda.h (a stub without CUDA)
 *   ... eng_ctx_destroy(ctx);
 *
 * Nothing is process-wide: two contexts are independent. Ownership: the context owns what it
 * creates and the backends attached to it. Threads: the accessors are safe from any thread;
 * create, attach and destroy belong to one thread. */
#ifndef ENG_CTX_H
#define ENG_CTX_H

#include <stddef.h>
#include <stdint.h>

#include "eng_alloc.h"
#include "eng_backend.h"
#include "eng_err.h"
#include "eng_sched.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eng_ctx eng_ctx; /* opaque */

typedef struct eng_ctx_params {
    int threads;               /* CPU pool size, caller included; 0 = online CPUs */
    uint64_t cpu_budget_bytes; /* host allocator budget; 0 = none */
    uint64_t gpu_budget_bytes; /* device allocator budget for backends attached later; 0 = none */
    int threaded_scheduler;    /* 1 (default): slices run on a dispatcher thread */
    eng_logger logger;         /* zeroed: stderr, info and above */
} eng_ctx_params;

/* Defaults: all CPUs, no budgets, threaded scheduler, log to stderr. */
void eng_ctx_params_init(eng_ctx_params *p);
/* Applies the environment: ENG_THREADS=N, ENG_MEMORY_BUDGET=8G (host), ENG_GPU_MEMORY_BUDGET=6G.
 * Errors: ENG_E_INVALID_ARG naming the variable and its value. */
int eng_ctx_params_from_env(eng_ctx_params *p, eng_err *err);
/* Errors: ENG_E_INVALID_ARG (bad environment value, named), ENG_E_OOM, ENG_E_UNSUPPORTED. */
int eng_ctx_create(eng_ctx **out, const eng_ctx_params *params, eng_err *err);
void eng_ctx_destroy(eng_ctx *ctx); /* NULL is a no-op */

/* Adopts a device backend (the context destroys it, also on failure), creating that device's
 * allocator over the backend's blocks with `budget_bytes` (0 = params.gpu_budget_bytes), a
 * default stream, and giving the scheduler the device.
 * Errors: ENG_E_INVALID_ARG (a backend for that device is attached already), ENG_E_OOM. */
int eng_ctx_attach_backend(eng_ctx *ctx, eng_backend *backend, uint64_t budget_bytes, eng_err *err);

eng_pool *eng_ctx_pool(eng_ctx *ctx);
eng_sched *eng_ctx_sched(eng_ctx *ctx);
/* The device's allocator, or NULL when that device is not attached. */
eng_alloc *eng_ctx_alloc(eng_ctx *ctx, eng_device_kind device);
/* The backend of a device, or NULL (the CPU has none: its ops are the twins). */
const eng_backend *eng_ctx_backend(const eng_ctx *ctx, eng_device_kind device);
/* The default stream of a device (CPU: the context's pool), or NULL when not attached. */
eng_stream *eng_ctx_stream(eng_ctx *ctx, eng_device_kind device);
const eng_logger *eng_ctx_logger(const eng_ctx *ctx);
int eng_ctx_threads(const eng_ctx *ctx);

/* Several lines for `--version`: CPU threads and BLAS, each device (or "no CUDA device"). */
char *eng_ctx_describe(const eng_ctx *ctx, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* ENG_CTX_H */
