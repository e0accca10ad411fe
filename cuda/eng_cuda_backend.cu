/* eng_cuda_backend.cu: device discovery and the eng_backend table of a CUDA device: cudaMalloc'd
 * blocks for the allocator, prioritized non-blocking streams, copies, and the op table pointing at
 * the launchers in the other .cu files. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_alloc.h"
#include "eng_cuda.h"
#include "eng_cuda_common.cuh"
#include "eng_cuda_impl.h"

/* What cudaGetDeviceCount says when there is simply no GPU to use: not an engine error. */
static bool no_device_error(cudaError_t e) {
    return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver;
}

/* The device count, with the reason when there is none (*why = cudaSuccess when count > 0 or
 * the runtime reported 0 devices without an error). */
static int count_devices(int *out, cudaError_t *why, eng_err *err) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    *out = 0;
    *why = e;
    if (e == cudaSuccess) {
        *out = count;
        return ENG_OK;
    }
    if (no_device_error(e)) {
        (void)cudaGetLastError();
        return ENG_OK;
    }
    const int rc = ENG_CUDA_CHECK(e, err);
    eng_err_prefix(err, "eng_cuda_device_count: cudaGetDeviceCount");
    return rc;
}

int eng_cuda_device_count(int *out, eng_err *err) {
    cudaError_t why = cudaSuccess;
    ENG_ASSERT(out != NULL);
    return count_devices(out, &why, err);
}

int eng_cuda_device_info(int index, eng_device_info *out, eng_err *err) {
    int rc = ENG_OK, count = 0, prev = -1;
    size_t free_b = 0, total_b = 0;
    cudaDeviceProp prop;
    cudaError_t why = cudaSuccess;
    ENG_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    if ((rc = count_devices(&count, &why, err)) != ENG_OK) goto done;
    if (index < 0 || index >= count) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_cuda_device_info: cuda:%d does not exist (%d CUDA device%s%s%s)",
                         index, count, count == 1 ? "" : "s", why != cudaSuccess ? ": " : "",
                         why != cudaSuccess ? cudaGetErrorString(why) : "");
        goto done;
    }
    memset(&prop, 0, sizeof prop);
    if ((rc = ENG_CUDA_CHECK(cudaGetDeviceProperties(&prop, index), err)) != ENG_OK) goto done;
    snprintf(out->name, sizeof out->name, "%.*s", (int)sizeof out->name - 1, prop.name);
    out->index = index;
    out->cc_major = prop.major;
    out->cc_minor = prop.minor;
    out->sm_count = prop.multiProcessorCount;
    out->total_bytes = (uint64_t)prop.totalGlobalMem;
    /* Free memory needs the device's context: make it current, then restore the caller's. */
    if ((rc = ENG_CUDA_CHECK(cudaGetDevice(&prev), err)) != ENG_OK) goto done;
    if ((rc = ENG_CUDA_CHECK(cudaSetDevice(index), err)) != ENG_OK) goto done;
    rc = ENG_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b), err);
    ENG_CUDA_WARN(cudaSetDevice(prev));
    if (rc != ENG_OK) goto done;
    out->free_bytes = (uint64_t)free_b;
    if ((rc = ENG_CUDA_CHECK(cudaDriverGetVersion(&out->driver_version), err)) != ENG_OK) goto done;
    if ((rc = ENG_CUDA_CHECK(cudaRuntimeGetVersion(&out->runtime_version), err)) != ENG_OK) {
        goto done;
    }
    /* Clocks and bus width for the benchmarks' peak estimates (cudaDeviceProp lost its clock
     * fields in CUDA 13; the attributes remain). */
    if ((rc = ENG_CUDA_CHECK(cudaDeviceGetAttribute(&out->clock_khz, cudaDevAttrClockRate, index),
                             err)) != ENG_OK) {
        goto done;
    }
    if ((rc = ENG_CUDA_CHECK(
             cudaDeviceGetAttribute(&out->mem_clock_khz, cudaDevAttrMemoryClockRate, index),
             err)) != ENG_OK) {
        goto done;
    }
    rc = ENG_CUDA_CHECK(
        cudaDeviceGetAttribute(&out->mem_bus_bits, cudaDevAttrGlobalMemoryBusWidth, index), err);
done:
    if (rc != ENG_OK && rc != ENG_E_INVALID_ARG)
        eng_err_prefix(err, "eng_cuda_device_info: cuda:%d", index);
    return rc;
}

/* Appends printf output at buf[*used], never past n (the result stays NUL-terminated). */
static void append(char *buf, size_t n, size_t *used, const char *fmt, ...) ENG_PRINTF(4, 5);
static void append(char *buf, size_t n, size_t *used, const char *fmt, ...) {
    va_list ap;
    if (*used >= n) return;
    va_start(ap, fmt);
    const int w = vsnprintf(buf + *used, n - *used, fmt, ap);
    va_end(ap);
    if (w > 0) *used = ENG_MIN(n, *used + (size_t)w);
}

char *eng_cuda_describe(char *buf, size_t n) {
    int count = 0;
    size_t used = 0;
    cudaError_t why = cudaSuccess;
    eng_err err;
    if (buf == NULL || n == 0) return buf;
    buf[0] = '\0';
    eng_err_clear(&err);
    if (count_devices(&count, &why, &err) != ENG_OK) {
        append(buf, n, &used, "no CUDA device (%s)", err.msg);
        return buf;
    }
    if (count == 0) {
        int drv = 0, rt = 0;
        if (cudaDriverGetVersion(&drv) != cudaSuccess) (void)cudaGetLastError();
        if (cudaRuntimeGetVersion(&rt) != cudaSuccess) (void)cudaGetLastError();
        if (why == cudaErrorInsufficientDriver && drv == 0) {
            append(buf, n, &used, "no CUDA device (no NVIDIA driver found)");
        } else if (why == cudaErrorInsufficientDriver) {
            append(buf, n, &used, "no CUDA device (driver %d.%d is older than runtime %d.%d needs)",
                   drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
        } else {
            append(buf, n, &used, "no CUDA device (%s)",
                   why != cudaSuccess ? cudaGetErrorString(why) : "the runtime found none");
        }
        return buf;
    }
    for (int d = 0; d < count; d++) {
        eng_device_info info;
        if (d > 0) append(buf, n, &used, "\n");
        if (eng_cuda_device_info(d, &info, &err) != ENG_OK) {
            append(buf, n, &used, "cuda:%d unavailable (%s)", d, err.msg);
            continue;
        }
        append(buf, n, &used, "cuda:%d %s (sm_%d%d, %d SMs, %.1f GiB), driver %d.%d, runtime %d.%d",
               d, info.name, info.cc_major, info.cc_minor, info.sm_count,
               (double)info.total_bytes / (1024.0 * 1024.0 * 1024.0), info.driver_version / 1000,
               info.driver_version % 1000 / 10, info.runtime_version / 1000,
               info.runtime_version % 1000 / 10);
    }
    return buf;
}

/* ---- backend entries ------------------------------------------------------------------------ */

static int cuda_block_take(void *impl, void **out, size_t bytes, eng_err *err) {
    const eng_cuda_impl *c = (const eng_cuda_impl *)impl;
    void *p = NULL;
    ENG_ASSERT(c != NULL && out != NULL);
    *out = NULL;
    if (bytes == 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "eng_cuda block_take: %s: 0 bytes", c->name);
    }
    int rc = ENG_CUDA_CHECK(cudaSetDevice(c->device), err);
    if (rc != ENG_OK) goto done;
    {
        const cudaError_t e = cudaMalloc(&p, bytes);
        if (e == cudaErrorMemoryAllocation) {
            size_t free_b = 0, total_b = 0;
            char want[32], fr[32], tot[32];
            (void)cudaGetLastError();
            if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
            rc = eng_err_set(err, ENG_E_OOM,
                             "eng_cuda block_take: %s refused %zu bytes (%s): free %s of %s",
                             c->name, bytes, eng_bytes_format(want, sizeof want, bytes),
                             eng_bytes_format(fr, sizeof fr, free_b),
                             eng_bytes_format(tot, sizeof tot, total_b));
            goto done;
        }
        if ((rc = ENG_CUDA_CHECK(e, err)) != ENG_OK) goto done;
    }
    *out = p;
done:
    if (rc == ENG_E_DEVICE)
        eng_err_prefix(err, "eng_cuda block_take: %s: %zu bytes", c->name, bytes);
    return rc;
}

static void cuda_block_give(void *impl, void *block) {
    const eng_cuda_impl *c = (const eng_cuda_impl *)impl;
    if (block == NULL) return;
    ENG_CUDA_WARN(cudaSetDevice(c->device));
    ENG_CUDA_WARN(cudaFree(block));
}

/* Engine priority (higher = more urgent; 0 = normal) -> CUDA's (lower = more urgent): 0 and
 * below get the device default (least), each step above is one CUDA level more urgent, up to the
 * device's greatest. So the order of priorities 0..(least - greatest) is kept. */
static int cuda_priority(const eng_cuda_impl *c, int priority) {
    const int levels = c->prio_least - c->prio_greatest; /* >= 0 */
    if (priority <= 0) return c->prio_least;
    if (priority >= levels) return c->prio_greatest;
    return c->prio_least - priority;
}

static int cuda_stream_create(void *impl, eng_stream *out, int priority, eng_err *err) {
    const eng_cuda_impl *c = (const eng_cuda_impl *)impl;
    cudaStream_t st = NULL;
    ENG_ASSERT(c != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    int rc = ENG_CUDA_CHECK(cudaSetDevice(c->device), err);
    if (rc != ENG_OK) goto done;
    rc = ENG_CUDA_CHECK(
        cudaStreamCreateWithPriority(&st, cudaStreamNonBlocking, cuda_priority(c, priority)), err);
    if (rc != ENG_OK) goto done;
    out->device = ENG_DEVICE_CUDA;
    out->handle = (void *)st;
    out->pool = NULL;
    out->impl = impl;
done:
    if (rc != ENG_OK) eng_err_prefix(err, "eng_cuda stream_create: %s", c->name);
    return rc;
}

static void cuda_stream_destroy(void *impl, eng_stream *s) {
    const eng_cuda_impl *c = (const eng_cuda_impl *)impl;
    if (s == NULL || s->handle == NULL) return;
    ENG_CUDA_WARN(cudaSetDevice(c->device));
    ENG_CUDA_WARN(cudaStreamDestroy((cudaStream_t)s->handle));
    s->handle = NULL;
}

static int cuda_stream_sync(void *impl, eng_stream *s, eng_err *err) {
    const eng_cuda_impl *c = (const eng_cuda_impl *)impl;
    cudaStream_t st = 0;
    int rc = eng_cuda_stream_get(&st, "eng_cuda stream_sync", s, err);
    if (rc != ENG_OK) return rc;
    if ((rc = ENG_CUDA_CHECK(cudaStreamSynchronize(st), err)) != ENG_OK) {
        eng_err_prefix(err, "eng_cuda stream_sync: %s", c->name);
    }
    return rc;
}

static int cuda_copy(void *impl,
                     eng_stream *s,
                     void *dst,
                     const void *src,
                     size_t bytes,
                     eng_copy_kind kind,
                     eng_err *err) {
    static const cudaMemcpyKind kinds[ENG_COPY_COUNT] = {
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice};
    static const char *const names[ENG_COPY_COUNT] = {"H2D", "D2H", "D2D"};
    const eng_cuda_impl *c = (const eng_cuda_impl *)impl;
    cudaStream_t st = 0;
    int rc = ENG_OK;
    if ((unsigned)kind >= ENG_COPY_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "eng_cuda copy: %s: copy kind %d", c->name,
                           (int)kind);
    }
    if (bytes == 0) return ENG_OK;
    if (dst == NULL || src == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_cuda copy: %s: %s of %zu bytes with %s NULL", c->name, names[kind],
                           bytes, dst == NULL ? "dst" : "src");
    }
    if ((rc = eng_cuda_stream_get(&st, "eng_cuda copy", s, err)) != ENG_OK) return rc;
    if ((rc = ENG_CUDA_CHECK(cudaSetDevice(c->device), err)) != ENG_OK) goto done;
    rc = ENG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kinds[kind], st), err);
    if (rc != ENG_OK) goto done;
    /* The host reads the result right after a D2H copy returns. */
    if (kind == ENG_COPY_D2H) rc = ENG_CUDA_CHECK(cudaStreamSynchronize(st), err);
done:
    if (rc != ENG_OK)
        eng_err_prefix(err, "eng_cuda copy: %s: %s of %zu bytes", c->name, names[kind], bytes);
    return rc;
}

static void cuda_destroy(void *impl) {
    eng_cuda_impl *c = (eng_cuda_impl *)impl;
    if (c == NULL) return;
    ENG_CUDA_WARN(cudaSetDevice(c->device));
    eng_cuda_gemm_state_free(c->gemm);
    eng_cuda_conv_state_free(c->conv);
    free(c);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int eng_cuda_backend_create(eng_backend **out, int device_index, eng_err *err) {
    int rc = ENG_OK;
    eng_backend *b = NULL;
    eng_cuda_impl *c = NULL;
    ENG_ASSERT(out != NULL);
    *out = NULL;
    b = (eng_backend *)calloc(1, sizeof *b);
    c = (eng_cuda_impl *)calloc(1, sizeof *c);
    if (b == NULL || c == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "eng_cuda_backend_create: cuda:%d: out of host memory",
                         device_index);
        goto done;
    }
    /* Validates the index (ENG_E_INVALID_ARG names it) and fills name, memory and versions. */
    if ((rc = eng_cuda_device_info(device_index, &b->info, err)) != ENG_OK) goto done;
    c->device = device_index;
    snprintf(c->name, sizeof c->name, "cuda:%d", device_index);
    if ((rc = ENG_CUDA_CHECK(cudaSetDevice(device_index), err)) != ENG_OK) goto done;
    rc = ENG_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&c->prio_least, &c->prio_greatest), err);
    if (rc != ENG_OK) goto done;
    b->device = ENG_DEVICE_CUDA;
    b->impl = c;
    b->block_take = cuda_block_take;
    b->block_give = cuda_block_give;
    b->stream_create = cuda_stream_create;
    b->stream_destroy = cuda_stream_destroy;
    b->stream_sync = cuda_stream_sync;
    b->copy = cuda_copy;
    b->ops.add_f32 = eng_cuda_add_f32;
    b->ops.add_f16 = eng_cuda_add_f16;
    b->ops.fill_uniform_f32 = eng_cuda_fill_uniform_f32;
    b->ops.fill_normal_f32 = eng_cuda_fill_normal_f32;
    eng_cuda_register_elementwise(&b->ops);
    eng_cuda_register_norm(&b->ops);
    eng_cuda_register_gemm(&b->ops);
    eng_cuda_register_conv(&b->ops);
    eng_cuda_register_attention(&b->ops);
    b->destroy = cuda_destroy;
    *out = b;
    b = NULL;
    c = NULL;
done:
    if (rc == ENG_E_DEVICE) eng_err_prefix(err, "eng_cuda_backend_create: cuda:%d", device_index);
    free(c);
    free(b);
    return rc;
}

void eng_cuda_backend_destroy(eng_backend *b) {
    if (b == NULL) return;
    if (b->destroy != NULL) b->destroy(b->impl);
    free(b);
}

int eng_cuda_attach(eng_ctx *ctx, int device_index, uint64_t budget_bytes, eng_err *err) {
    eng_backend *b = NULL;
    ENG_ASSERT(ctx != NULL);
    int rc = eng_cuda_backend_create(&b, device_index, err);
    if (rc != ENG_OK) return rc;
    /* The context adopts b, on failure too (it destroys it then). */
    return eng_ctx_attach_backend(ctx, b, budget_bytes, err);
}
