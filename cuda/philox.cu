/* philox.cu: Philox4x32-10 uniform and normal fills (twins: eng_cpu_fill_uniform_f32 /
 * eng_cpu_fill_normal_f32 in engine/eng_rng.c). The numbers are defined element by element in
 * engine/eng_philox_math.h; this file only decides how threads cover them. Compiled with
 * -fmad=false (cuda/CMakeLists.txt) so the double-precision Box-Muller rounds like the CPU.
 * Shapes: y is (n,) f32, contiguous, device memory. */
#include "eng_cuda.h"
#include "eng_cuda_common.cuh"
#include "eng_philox_math.h"

/* Threads per block and the grid cap (a few waves on an H100; grid-stride loops cover the rest). */
enum { PHILOX_BLOCK = 256, PHILOX_MAX_BLOCKS = 8192 };

/* y[i] = eng_philox_uniform_at(seed, offset, i). One thread per group of 4 outputs: group g is
 * counter {g lo, g hi, offset lo, offset hi}, whose 4 words are elements 4g..4g+3, so one
 * Philox call serves the 4 (the element-wise definition calls it once per element; same bits).
 * Grid-stride loop over groups; the last group is partial when n % 4 != 0. No shared memory.
 * Assumes n > 0. */
static __global__ void
fill_uniform_f32_kernel(float *__restrict__ y, int64_t n, uint64_t seed, uint64_t offset) {
    const int64_t groups = n / 4 + (n % 4 != 0);
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += stride) {
        const uint64_t gu = (uint64_t)g;
        const uint32_t ctr[4] = {(uint32_t)gu, (uint32_t)(gu >> 32), (uint32_t)offset,
                                 (uint32_t)(offset >> 32)};
        uint32_t w[4];
        eng_philox4x32_10(w, ctr, key);
        const int64_t base = 4 * g;
        const int64_t left = n - base; /* >= 1 */
        for (int k = 0; k < 4; k++) {
            if (k < left) y[base + k] = eng_philox_u01(w[k]);
        }
    }
}

/* y[i] = eng_philox_normal_at(seed, offset, i): counter {offset, i}, Box-Muller in double. One
 * thread per element (each element has its own counter), grid-stride loop, no shared memory.
 * Assumes n > 0. */
static __global__ void
fill_normal_f32_kernel(float *__restrict__ y, int64_t n, uint64_t seed, uint64_t offset) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = eng_philox_normal_at(seed, offset, (uint64_t)i);
    }
}

int eng_cuda_fill_uniform_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err) {
    cudaStream_t st = 0;
    int rc = eng_cuda_check_1d("eng_cuda_fill_uniform_f32", n, "y", y, NULL, NULL, NULL, NULL, err);
    if (rc != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, "eng_cuda_fill_uniform_f32", s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    const int64_t groups = n / 4 + (n % 4 != 0); /* no overflow near INT64_MAX */
    fill_uniform_f32_kernel<<<eng_cuda_grid_1d(groups, PHILOX_BLOCK, PHILOX_MAX_BLOCKS),
                              PHILOX_BLOCK, 0, st>>>(y, n, seed, offset);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

int eng_cuda_fill_normal_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err) {
    cudaStream_t st = 0;
    int rc = eng_cuda_check_1d("eng_cuda_fill_normal_f32", n, "y", y, NULL, NULL, NULL, NULL, err);
    if (rc != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, "eng_cuda_fill_normal_f32", s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    fill_normal_f32_kernel<<<eng_cuda_grid_1d(n, PHILOX_BLOCK, PHILOX_MAX_BLOCKS), PHILOX_BLOCK, 0,
                             st>>>(y, n, seed, offset);
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}
