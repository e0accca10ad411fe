/* elementwise.cu: y = a + b in f32 and f16 (twins: eng_cpu_add_f32 / eng_cpu_add_f16 in
 * engine/eng_ops_cpu.c). Shapes: y, a, b are (n,) contiguous device buffers; y may alias a or b,
 * so no pointer here is __restrict__. */
#include <cuda_fp16.h>

#include "eng_cuda.h"
#include "eng_cuda_common.cuh"

/* Threads per block, and the grid cap: 132 SMs x 2048 threads / 256 is about 1056 resident
 * blocks on an H100, so 8192 is a few waves; larger n is covered by the grid-stride loop. */
enum { ADD_BLOCK = 256, ADD_MAX_BLOCKS = 8192 };

/* y[i] = a[i] + b[i], f32. One thread per element, grid-stride loop (int64 indices: n may exceed
 * 2^31 and the grid is capped). No shared memory. Assumes n > 0 (the launcher returns early). */
static __global__ void add_f32_kernel(float *y, const float *a, const float *b, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = a[i] + b[i];
    }
}

/* y[i] = f16(f32(a[i]) + f32(b[i])), round to nearest even once, as the twin. The f32 sum of two
 * f16 values followed by rounding to f16 equals the correctly rounded f16 sum (24 >= 2*11 + 2
 * bits, so the double rounding is innocuous), so __hadd would give the same bits; accumulating in
 * f32 is the convention. NaN payloads may differ from the CPU (which keeps them); NaN stays NaN.
 * One thread per element, grid-stride loop, no shared memory. Assumes n > 0. */
static __global__ void add_f16_kernel(__half *y, const __half *a, const __half *b, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = __float2half_rn(__half2float(a[i]) + __half2float(b[i]));
    }
}

int eng_cuda_add_f32(
    eng_stream *s, float *y, const float *a, const float *b, int64_t n, eng_err *err) {
    cudaStream_t st = 0;
    int rc = eng_cuda_check_1d("eng_cuda_add_f32", n, "y", y, "a", a, "b", b, err);
    if (rc != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, "eng_cuda_add_f32", s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    add_f32_kernel<<<eng_cuda_grid_1d(n, ADD_BLOCK, ADD_MAX_BLOCKS), ADD_BLOCK, 0, st>>>(y, a, b,
                                                                                         n);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

int eng_cuda_add_f16(
    eng_stream *s, eng_f16 *y, const eng_f16 *a, const eng_f16 *b, int64_t n, eng_err *err) {
    /* eng_f16 is {uint16_t bits}: same size and alignment as __half, the same 16 bits. */
    static_assert(sizeof(eng_f16) == sizeof(__half) && alignof(eng_f16) == alignof(uint16_t),
                  "eng_f16 must be a bare 16-bit word");
    cudaStream_t st = 0;
    int rc = eng_cuda_check_1d("eng_cuda_add_f16", n, "y", y, "a", a, "b", b, err);
    if (rc != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, "eng_cuda_add_f16", s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    add_f16_kernel<<<eng_cuda_grid_1d(n, ADD_BLOCK, ADD_MAX_BLOCKS), ADD_BLOCK, 0, st>>>(
        reinterpret_cast<__half *>(y), reinterpret_cast<const __half *>(a),
        reinterpret_cast<const __half *>(b), n);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}
