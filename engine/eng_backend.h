/* eng_backend.h: streams, and the table through which the engine reaches a device backend.
 *
 * The engine knows no CUDA: the cuda/ library fills an eng_backend (device properties, block
 * source for the allocator, streams, copies, kernels) and the context adopts it
 * (eng_ctx_attach_backend). Ops dispatch on a tensor's device: CPU tensors go to the CPU twins
 * (eng_ops_cpu.c), CUDA tensors through backend->ops. Every op entry has the same signature as its
 * CPU twin, so a test can call either.
 *
 * An eng_stream is plain data: on CUDA `handle` is the cudaStream_t; on the CPU `pool` is the
 * thread pool that CPU ops split their work over (NULL: run on the calling thread).
 * Threads: a stream is used by one job at a time; the backend table is read-only once made. */
#ifndef ENG_BACKEND_H
#define ENG_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "eng_dtype.h"
#include "eng_err.h"
#include "eng_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eng_pool eng_pool;
typedef struct eng_arena eng_arena;

typedef struct eng_stream {
    eng_device_kind device;
    void *handle;     /* cudaStream_t on CUDA (NULL: the legacy default stream); unused on CPU */
    eng_pool *pool;   /* CPU ops: the pool to split work over; NULL: the calling thread */
    void *impl;       /* the backend's state (handles, caches) for its kernels; NULL on the CPU */
    eng_arena *arena; /* op workspaces (im2col, cuDNN): taken and rewound within the op; a job's
                       * stream uses the job's arena, a context's default stream the device
                       * allocator's default arena; NULL: ops that need a workspace refuse */
} eng_stream;

typedef struct eng_device_info {
    char name[128];         /* "NVIDIA H100 80GB HBM3" */
    int index;              /* device ordinal */
    int cc_major, cc_minor; /* compute capability */
    int sm_count;           /* multiprocessors */
    uint64_t total_bytes;   /* device memory */
    uint64_t free_bytes;    /* free when the backend opened */
    int driver_version;     /* e.g. 13000 */
    int runtime_version;
    int clock_khz;     /* peak SM clock (benchmarks estimate peak FLOP/s from it); 0 unknown */
    int mem_clock_khz; /* peak memory clock; bandwidth = 2 x clock x bus bits / 8; 0 unknown */
    int mem_bus_bits;  /* global memory bus width; 0 unknown */
} eng_device_info;

typedef enum eng_copy_kind {
    ENG_COPY_H2D,
    ENG_COPY_D2H,
    ENG_COPY_D2D,
    ENG_COPY_COUNT
} eng_copy_kind;

/* Kernels a backend provides; a NULL entry means "not on this backend" (the op returns
 * ENG_E_UNSUPPORTED). Signatures equal the CPU twins in eng_ops.h. */
typedef struct eng_op_table {
    int (*add_f32)(
        eng_stream *s, float *y, const float *a, const float *b, int64_t n, eng_err *err);
    int (*add_f16)(
        eng_stream *s, eng_f16 *y, const eng_f16 *a, const eng_f16 *b, int64_t n, eng_err *err);
    int (*fill_uniform_f32)(
        eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err);
    int (*fill_normal_f32)(
        eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err);
    /* Neural-network ops (eng_kernels.h): one entry per family; the args name the dtype. */
    int (*unary)(eng_stream *s, const eng_unary_args *a, eng_err *err);
    int (*binary)(eng_stream *s, const eng_binary_args *a, eng_err *err);
    int (*geglu)(eng_stream *s, const eng_geglu_args *a, eng_err *err);
    int (*copy)(eng_stream *s, const eng_copy_args *a, eng_err *err);
    int (*upsample)(eng_stream *s, const eng_upsample_args *a, eng_err *err);
    int (*temb)(eng_stream *s, const eng_temb_args *a, eng_err *err);
    int (*groupnorm)(eng_stream *s, const eng_groupnorm_args *a, eng_err *err);
    int (*layernorm)(eng_stream *s, const eng_layernorm_args *a, eng_err *err);
    int (*softmax)(eng_stream *s, const eng_softmax_args *a, eng_err *err);
    int (*gemm)(eng_stream *s, const eng_gemm_args *a, eng_err *err);
    int (*conv2d)(eng_stream *s, const eng_conv2d_args *a, eng_err *err);
    int (*attention)(eng_stream *s, const eng_attention_args *a, eng_err *err);
} eng_op_table;

typedef struct eng_backend {
    eng_device_kind device;
    eng_device_info info;
    void *impl; /* the backend's own state, passed to every entry */
    /* Memory: one big block at a time, for the allocator (never managed memory). */
    int (*block_take)(void *impl, void **out, size_t bytes, eng_err *err);
    void (*block_give)(void *impl, void *block);
    /* Streams. priority: higher runs first where the device supports it. */
    int (*stream_create)(void *impl, eng_stream *out, int priority, eng_err *err);
    void (*stream_destroy)(void *impl, eng_stream *s);
    int (*stream_sync)(void *impl, eng_stream *s, eng_err *err);
    /* Copies between host and device on a stream (asynchronous for device memory). */
    int (*copy)(void *impl,
                eng_stream *s,
                void *dst,
                const void *src,
                size_t bytes,
                eng_copy_kind kind,
                eng_err *err);
    eng_op_table ops;
    void (*destroy)(void *impl); /* frees impl; called by the context at the end */
} eng_backend;

#ifdef __cplusplus
}
#endif
#endif /* ENG_BACKEND_H */
