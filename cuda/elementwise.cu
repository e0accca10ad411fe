/* elementwise.cu: the elementwise kernels.
 *  - y = a + b in f32 and f16 (twins: eng_cpu_add_f32 / eng_cpu_add_f16 in engine/eng_ops_cpu.c).
 *    Shapes: y, a, b are (n,) contiguous device buffers; y may alias a or b, so no pointer of the
 *    adds is __restrict__.
 *  - The elementwise family of the neural-network ops (engine/eng_kernels.h; twins eng_cpu_unary,
 *    _binary, _geglu, _copy, _upsample, _temb in engine/eng_ops_elementwise.c): activations and
 *    scale, broadcast add/sub/mul, GEGLU, strided 4-D copies (permute, slices, concat), nearest 2x
 *    upsampling (NHWC) and the timestep embedding, in f32, f16 and bf16. Every kernel is a
 *    template on the storage type T: values are loaded to f32, computed with the ENG_HD math of
 *    engine/eng_act_math.h (shared with the twins) and rounded once to T on the store. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "eng_act_math.h"
#include "eng_cuda.h"
#include "eng_cuda_common.cuh"
#include "eng_cuda_impl.h"

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

/* ==== the neural-network elementwise family ===================================================== */

/* Threads per block and the grid cap of the family's launches (grid-stride loops cover the rest;
 * 8192 blocks of 256 are several waves on any current GPU). */
enum { EW_BLOCK = 256, EW_MAX_BLOCKS = 8192, EW_MAX_GRID_Y = 65535 };

/* ---- storage types: load to f32, store rounding once to nearest even ------------------------- */

static __device__ __forceinline__ float ew_load(const float *p) {
    return *p;
}
static __device__ __forceinline__ float ew_load(const __half *p) {
    return __half2float(*p);
}
static __device__ __forceinline__ float ew_load(const __nv_bfloat16 *p) {
    return __bfloat162float(*p);
}
static __device__ __forceinline__ float ew_f32(float v) {
    return v;
}
static __device__ __forceinline__ float ew_f32(__half v) {
    return __half2float(v);
}
static __device__ __forceinline__ float ew_f32(__nv_bfloat16 v) {
    return __bfloat162float(v);
}
template <typename T> static __device__ __forceinline__ T ew_from_f32(float v);
template <> __device__ __forceinline__ float ew_from_f32<float>(float v) {
    return v;
}
template <> __device__ __forceinline__ __half ew_from_f32<__half>(float v) {
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 ew_from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}
template <typename T> static __device__ __forceinline__ void ew_store(T *p, float v) {
    *p = ew_from_f32<T>(v);
}

/* V elements of T in one aligned access (V = 16 / sizeof(T): one 16-byte load or store). */
template <typename T, int V> struct alignas(sizeof(T) * V) ew_vec { T v[V]; };

/* The dtypes the family takes; others are ENG_E_UNSUPPORTED naming the launcher. */
static int ew_check_dtype(const char *fn, eng_dtype dt, eng_err *err) {
    if (dt == ENG_DTYPE_F32 || dt == ENG_DTYPE_F16 || dt == ENG_DTYPE_BF16) return ENG_OK;
    return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: dtype %s (f32, f16 or bf16)", fn,
                       eng_dtype_name(dt));
}

static int ew_check_count(const char *fn, const char *what, int64_t v, eng_err *err) {
    if (v >= 0) return ENG_OK;
    return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s = %lld < 0", fn, what, (long long)v);
}

static int is_aligned(const void *p, size_t bytes) {
    return ((uintptr_t)p % bytes) == 0;
}

/* ---- 2-D launches over (rows, inner) ---------------------------------------------------------- */

/* blockDim.x covers a row's inner run and blockDim.y several rows, so short rows do not leave
 * most of a block idle: up to 32 a power of two >= inner, else the run split evenly over gx
 * blocks of a multiple of 32 threads (<= EW_BLOCK; 320 channels: 2 x 160, not 2 x 256).
 * blockDim.x * blockDim.y <= EW_BLOCK. The kernels loop over both grid dimensions, so the grid
 * is capped: x by EW_MAX_BLOCKS, y by 65535 and by EW_MAX_BLOCKS / x. rows, inner > 0. */
struct ew_rows_launch {
    dim3 grid, block;
};
static ew_rows_launch ew_rows_config(int64_t rows, int64_t inner) {
    int tx = 1;
    int64_t gx = 1;
    if (inner <= 32) {
        while (tx < inner)
            tx <<= 1;
    } else {
        gx = ENG_MIN(ENG_CEIL_DIV(inner, (int64_t)EW_BLOCK), (int64_t)EW_MAX_BLOCKS);
        tx = (int)ENG_MIN(ENG_CEIL_DIV(ENG_CEIL_DIV(inner, gx), (int64_t)32) * 32,
                          (int64_t)EW_BLOCK);
    }
    const int ty = EW_BLOCK / tx;
    int64_t gy_cap = ENG_MIN((int64_t)EW_MAX_GRID_Y, ENG_MAX((int64_t)1, EW_MAX_BLOCKS / gx));
    int64_t gy = ENG_MIN(ENG_CEIL_DIV(rows, (int64_t)ty), gy_cap);
    ew_rows_launch l;
    l.grid = dim3((unsigned)gx, (unsigned)gy, 1);
    l.block = dim3((unsigned)tx, (unsigned)ty, 1);
    return l;
}

/* Merges neighbouring dimensions that every stride array lays out as one (stride[d] ==
 * stride[d + 1] * shape[d + 1]) and drops size-1 dimensions, right-aligning the result into the 4
 * slots (leading slots size 1, stride 0): a bias add or a copy of a contiguous block becomes 1-D
 * or 2-D, so the kernels divide less. Every shape entry > 0. */
static void ew_collapse(int64_t shape[4], int64_t (*strides[])[4], int nstr) {
    int64_t ns[4], nst[3][4];
    int k = 0; /* merged dimensions so far, innermost first */
    for (int d = 3; d >= 0; d--) {
        if (shape[d] == 1) continue;
        if (k > 0) {
            int merge = 1;
            for (int s = 0; s < nstr; s++)
                merge = merge && (*strides[s])[d] == nst[s][k - 1] * ns[k - 1];
            if (merge) {
                ns[k - 1] *= shape[d];
                continue;
            }
        }
        ns[k] = shape[d];
        for (int s = 0; s < nstr; s++)
            nst[s][k] = (*strides[s])[d];
        k++;
    }
    for (int d = 0; d < 4; d++) {
        const int j = 3 - d;
        shape[d] = j < k ? ns[j] : 1;
        for (int s = 0; s < nstr; s++)
            (*strides[s])[d] = j < k ? nst[s][j] : 0;
    }
}

/* ---- unary: y = act(alpha x + beta) ---------------------------------------------------------- */

/* y[i] = act(alpha x[i] + beta), i < n; ACT is an eng_act fixed at compile time. One thread per V
 * elements (a 16-byte access when V > 1: the launcher checks that x and y are 16-byte aligned),
 * grid-stride loop; the last n % V elements one per thread. y may equal x (each element is read
 * and written by the same thread). No shared memory. n > 0. */
template <typename T, int ACT, int V>
static __global__ void unary_kernel(T *y, const T *x, int64_t n, float alpha, float beta) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t nv = n / V;
    for (int64_t i = tid; i < nv; i += stride) {
        ew_vec<T, V> v = reinterpret_cast<const ew_vec<T, V> *>(x)[i];
#pragma unroll
        for (int k = 0; k < V; k++)
            v.v[k] = ew_from_f32<T>(eng_act_apply((eng_act)ACT, alpha * ew_f32(v.v[k]) + beta));
        reinterpret_cast<ew_vec<T, V> *>(y)[i] = v;
    }
    for (int64_t i = nv * V + tid; i < n; i += stride)
        ew_store(y + i, eng_act_apply((eng_act)ACT, alpha * ew_load(x + i) + beta));
}

template <typename T, int V> static void unary_launch(cudaStream_t st, const eng_unary_args *a) {
    const unsigned grid = eng_cuda_grid_1d(ENG_MAX(a->n / V, (int64_t)1), EW_BLOCK, EW_MAX_BLOCKS);
    T *y = (T *)a->y;
    const T *x = (const T *)a->x;
    switch (a->act) {
    case ENG_ACT_SILU:
        unary_kernel<T, ENG_ACT_SILU, V><<<grid, EW_BLOCK, 0, st>>>(y, x, a->n, a->alpha, a->beta);
        break;
    case ENG_ACT_GELU:
        unary_kernel<T, ENG_ACT_GELU, V><<<grid, EW_BLOCK, 0, st>>>(y, x, a->n, a->alpha, a->beta);
        break;
    case ENG_ACT_GELU_TANH:
        unary_kernel<T, ENG_ACT_GELU_TANH, V>
            <<<grid, EW_BLOCK, 0, st>>>(y, x, a->n, a->alpha, a->beta);
        break;
    case ENG_ACT_QUICK_GELU:
        unary_kernel<T, ENG_ACT_QUICK_GELU, V>
            <<<grid, EW_BLOCK, 0, st>>>(y, x, a->n, a->alpha, a->beta);
        break;
    default:
        unary_kernel<T, ENG_ACT_NONE, V><<<grid, EW_BLOCK, 0, st>>>(y, x, a->n, a->alpha, a->beta);
        break;
    }
}

template <typename T> static void unary_launch_t(cudaStream_t st, const eng_unary_args *a) {
    if (is_aligned(a->y, 16) && is_aligned(a->x, 16)) {
        unary_launch<T, (int)(16 / sizeof(T))>(st, a);
    } else {
        unary_launch<T, 1>(st, a);
    }
}

int eng_cuda_unary(eng_stream *s, const eng_unary_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_unary";
    cudaStream_t st = 0;
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = ew_check_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((int)a->act < 0 || a->act >= ENG_ACT_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: activation %d out of range", fn,
                           (int)a->act);
    }
    if ((rc = eng_cuda_check_1d(fn, a->n, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) {
        return rc;
    }
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (a->n == 0) return ENG_OK;
    switch (a->dtype) {
    case ENG_DTYPE_F16: unary_launch_t<__half>(st, a); break;
    case ENG_DTYPE_BF16: unary_launch_t<__nv_bfloat16>(st, a); break;
    default: unary_launch_t<float>(st, a); break;
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- binary: y = a op b with broadcasting strides --------------------------------------------- */

/* The geometry after ew_collapse: y (shape) contiguous; a and b read through their strides (0
 * along broadcast dimensions). */
struct ew_binary_geom {
    int64_t shape[4];
    int64_t as[4], bs[4];
};

template <int OP> static __device__ __forceinline__ float ew_binop(float u, float v) {
    return OP == ENG_BINOP_ADD ? u + v : OP == ENG_BINOP_SUB ? u - v : u * v;
}

/* y[i0, i1, i2, i3] = a[...] OP b[...]. Rows r = (i0, i1, i2) over blockIdx.y / threadIdx.y (the
 * row's divisions once per row), i3 over blockIdx.x / threadIdx.x; both loop with grid strides.
 * y must not overlap a or b unless it is the same contiguous buffer (then each element is read and
 * written by one thread). No shared memory. rows, shape[3] > 0. */
template <typename T, int OP>
static __global__ void binary_kernel(T *y, const T *a, const T *b, ew_binary_geom g, int64_t rows) {
    const int64_t inner = g.shape[3];
    for (int64_t r = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; r < rows;
         r += (int64_t)gridDim.y * blockDim.y) {
        const int64_t i2 = r % g.shape[2], q = r / g.shape[2];
        const int64_t i1 = q % g.shape[1], i0 = q / g.shape[1];
        const T *ar = a + i0 * g.as[0] + i1 * g.as[1] + i2 * g.as[2];
        const T *br = b + i0 * g.bs[0] + i1 * g.bs[1] + i2 * g.bs[2];
        T *yr = y + r * inner;
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < inner;
             j += (int64_t)gridDim.x * blockDim.x) {
            ew_store(yr + j, ew_binop<OP>(ew_load(ar + j * g.as[3]), ew_load(br + j * g.bs[3])));
        }
    }
}

template <typename T>
static void binary_launch(cudaStream_t st, const eng_binary_args *a, const ew_binary_geom &g) {
    const int64_t rows = g.shape[0] * g.shape[1] * g.shape[2];
    const ew_rows_launch l = ew_rows_config(rows, g.shape[3]);
    T *y = (T *)a->y;
    const T *pa = (const T *)a->a, *pb = (const T *)a->b;
    switch (a->op) {
    case ENG_BINOP_ADD:
        binary_kernel<T, ENG_BINOP_ADD><<<l.grid, l.block, 0, st>>>(y, pa, pb, g, rows);
        break;
    case ENG_BINOP_SUB:
        binary_kernel<T, ENG_BINOP_SUB><<<l.grid, l.block, 0, st>>>(y, pa, pb, g, rows);
        break;
    default: binary_kernel<T, ENG_BINOP_MUL><<<l.grid, l.block, 0, st>>>(y, pa, pb, g, rows); break;
    }
}

int eng_cuda_binary(eng_stream *s, const eng_binary_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_binary";
    cudaStream_t st = 0;
    ew_binary_geom g;
    int64_t ys[4];
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = ew_check_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((int)a->op < 0 || a->op >= ENG_BINOP_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: operator %d out of range", fn, (int)a->op);
    }
    for (int d = 0; d < 4; d++) {
        if ((rc = ew_check_count(fn, "a shape entry", a->shape[d], err)) != ENG_OK) return rc;
    }
    const int64_t n = a->shape[0] * a->shape[1] * a->shape[2] * a->shape[3];
    if ((rc = eng_cuda_check_1d(fn, n, "y", a->y, "a", a->a, "b", a->b, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    memcpy(g.shape, a->shape, sizeof g.shape);
    memcpy(g.as, a->a_stride, sizeof g.as);
    memcpy(g.bs, a->b_stride, sizeof g.bs);
    ys[3] = 1;
    for (int d = 2; d >= 0; d--)
        ys[d] = ys[d + 1] * g.shape[d + 1];
    int64_t(*strides[3])[4] = {&ys, &g.as, &g.bs};
    ew_collapse(g.shape, strides, 3);
    switch (a->dtype) {
    case ENG_DTYPE_F16: binary_launch<__half>(st, a, g); break;
    case ENG_DTYPE_BF16: binary_launch<__nv_bfloat16>(st, a, g); break;
    default: binary_launch<float>(st, a, g); break;
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- GEGLU: y (rows, d) = x[:, :d] * gelu(x[:, d:]) ------------------------------------------- */

/* Rows over blockIdx.y / threadIdx.y, the d outputs of a row over blockIdx.x / threadIdx.x (reads
 * of both halves and the write are coalesced), grid-stride loops. No shared memory. rows, d > 0. */
template <typename T>
static __global__ void
geglu_kernel(T *__restrict__ y, const T *__restrict__ x, int64_t rows, int64_t d) {
    for (int64_t r = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; r < rows;
         r += (int64_t)gridDim.y * blockDim.y) {
        const T *xr = x + r * 2 * d;
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < d;
             j += (int64_t)gridDim.x * blockDim.x) {
            ew_store(y + r * d + j, ew_load(xr + j) * eng_act_gelu(ew_load(xr + d + j)));
        }
    }
}

int eng_cuda_geglu(eng_stream *s, const eng_geglu_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_geglu";
    cudaStream_t st = 0;
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = ew_check_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = ew_check_count(fn, "rows", a->rows, err)) != ENG_OK) return rc;
    if ((rc = ew_check_count(fn, "d", a->d, err)) != ENG_OK) return rc;
    const int64_t n = a->rows * a->d;
    if ((rc = eng_cuda_check_1d(fn, n, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    const ew_rows_launch l = ew_rows_config(a->rows, a->d);
    switch (a->dtype) {
    case ENG_DTYPE_F16:
        geglu_kernel<__half>
            <<<l.grid, l.block, 0, st>>>((__half *)a->y, (const __half *)a->x, a->rows, a->d);
        break;
    case ENG_DTYPE_BF16:
        geglu_kernel<__nv_bfloat16><<<l.grid, l.block, 0, st>>>(
            (__nv_bfloat16 *)a->y, (const __nv_bfloat16 *)a->x, a->rows, a->d);
        break;
    default:
        geglu_kernel<float>
            <<<l.grid, l.block, 0, st>>>((float *)a->y, (const float *)a->x, a->rows, a->d);
        break;
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- strided 4-D copy ------------------------------------------------------------------------- */

struct ew_copy_geom {
    int64_t shape[4];
    int64_t ys[4], xs[4];
};

/* y[i0..i3] = x[i0..i3] through both sides' strides, bits copied unchanged (no conversion). Rows
 * (i0, i1, i2) over blockIdx.y / threadIdx.y, i3 over blockIdx.x / threadIdx.x, grid-stride loops.
 * Writes are coalesced when y's innermost stride is 1 (a contiguous y, or a concat slice); reads
 * of a transposed x are strided (no shared-memory tiling yet). y and x must not overlap. No shared
 * memory. rows, shape[3] > 0. */
template <typename T>
static __global__ void
copy_kernel(T *__restrict__ y, const T *__restrict__ x, ew_copy_geom g, int64_t rows) {
    const int64_t inner = g.shape[3];
    for (int64_t r = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; r < rows;
         r += (int64_t)gridDim.y * blockDim.y) {
        const int64_t i2 = r % g.shape[2], q = r / g.shape[2];
        const int64_t i1 = q % g.shape[1], i0 = q / g.shape[1];
        const T *xr = x + i0 * g.xs[0] + i1 * g.xs[1] + i2 * g.xs[2];
        T *yr = y + i0 * g.ys[0] + i1 * g.ys[1] + i2 * g.ys[2];
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < inner;
             j += (int64_t)gridDim.x * blockDim.x) {
            yr[j * g.ys[3]] = xr[j * g.xs[3]];
        }
    }
}

template <typename T>
static void copy_launch(cudaStream_t st, const eng_copy_args *a, const ew_copy_geom &g) {
    const int64_t rows = g.shape[0] * g.shape[1] * g.shape[2];
    const ew_rows_launch l = ew_rows_config(rows, g.shape[3]);
    copy_kernel<T><<<l.grid, l.block, 0, st>>>((T *)a->y, (const T *)a->x, g, rows);
}

int eng_cuda_copy(eng_stream *s, const eng_copy_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_copy";
    cudaStream_t st = 0;
    ew_copy_geom g;
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = ew_check_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    for (int d = 0; d < 4; d++) {
        if ((rc = ew_check_count(fn, "a shape entry", a->shape[d], err)) != ENG_OK) return rc;
    }
    const int64_t n = a->shape[0] * a->shape[1] * a->shape[2] * a->shape[3];
    if ((rc = eng_cuda_check_1d(fn, n, "y", a->y, "x", a->x, NULL, NULL, err)) != ENG_OK) return rc;
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (n == 0) return ENG_OK;
    memcpy(g.shape, a->shape, sizeof g.shape);
    memcpy(g.ys, a->y_stride, sizeof g.ys);
    memcpy(g.xs, a->x_stride, sizeof g.xs);
    int64_t(*strides[2])[4] = {&g.ys, &g.xs};
    ew_collapse(g.shape, strides, 2);
    /* 16-bit types move as 16-bit words: the copy is bit-exact whatever the dtype */
    switch (a->dtype) {
    case ENG_DTYPE_F16:
    case ENG_DTYPE_BF16: copy_launch<uint16_t>(st, a, g); break;
    default: copy_launch<float>(st, a, g); break;
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- nearest 2x upsampling, NHWC --------------------------------------------------------------- */

/* y (n, 2h, 2w, c)[i, oy, ox, :] = x[i, oy / 2, ox / 2, :]. Output pixels (rows of c) over
 * blockIdx.y / threadIdx.y, channels over blockIdx.x / threadIdx.x (coalesced on both sides),
 * grid-stride loops; bits copied. No shared memory. n h w c > 0. */
template <typename T>
static __global__ void upsample2x_kernel(
    T *__restrict__ y, const T *__restrict__ x, int64_t n, int64_t h, int64_t w, int64_t c) {
    const int64_t wo = 2 * w, ho = 2 * h, rows = n * ho * wo;
    for (int64_t r = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; r < rows;
         r += (int64_t)gridDim.y * blockDim.y) {
        const int64_t ox = r % wo, q = r / wo, oy = q % ho, i = q / ho;
        const T *xr = x + ((i * h + oy / 2) * w + ox / 2) * c;
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < c;
             j += (int64_t)gridDim.x * blockDim.x) {
            y[r * c + j] = xr[j];
        }
    }
}

int eng_cuda_upsample(eng_stream *s, const eng_upsample_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_upsample";
    cudaStream_t st = 0;
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = ew_check_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = ew_check_count(fn, "n", a->n, err)) != ENG_OK) return rc;
    if ((rc = ew_check_count(fn, "h", a->h, err)) != ENG_OK) return rc;
    if ((rc = ew_check_count(fn, "w", a->w, err)) != ENG_OK) return rc;
    if ((rc = ew_check_count(fn, "c", a->c, err)) != ENG_OK) return rc;
    const int64_t rows = a->n * 4 * a->h * a->w;
    if ((rc = eng_cuda_check_1d(fn, rows * a->c, "y", a->y, "x", a->x, NULL, NULL, err)) !=
        ENG_OK) {
        return rc;
    }
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (rows * a->c == 0) return ENG_OK;
    const ew_rows_launch l = ew_rows_config(rows, a->c);
    if (a->dtype == ENG_DTYPE_F32) {
        upsample2x_kernel<float><<<l.grid, l.block, 0, st>>>((float *)a->y, (const float *)a->x,
                                                             a->n, a->h, a->w, a->c);
    } else {
        upsample2x_kernel<uint16_t><<<l.grid, l.block, 0, st>>>(
            (uint16_t *)a->y, (const uint16_t *)a->x, a->n, a->h, a->w, a->c);
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

/* ---- sinusoidal timestep embedding ------------------------------------------------------------ */

/* y (n, dim)[i, j] = eng_temb_at(t[i], j, ...) (f64 exp/sin/cos inside, as the twin; the op is a
 * few thousand values per step). Rows over blockIdx.y / threadIdx.y, columns over blockIdx.x /
 * threadIdx.x, grid-stride loops. No shared memory. n, dim > 0. */
template <typename T>
static __global__ void temb_kernel(T *__restrict__ y,
                                   const float *__restrict__ t,
                                   int64_t n,
                                   int64_t dim,
                                   int flip,
                                   float shift,
                                   float max_period) {
    for (int64_t i = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; i < n;
         i += (int64_t)gridDim.y * blockDim.y) {
        const float ti = t[i];
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < dim;
             j += (int64_t)gridDim.x * blockDim.x) {
            ew_store(y + i * dim + j, eng_temb_at(ti, j, dim, flip, shift, max_period));
        }
    }
}

int eng_cuda_temb(eng_stream *s, const eng_temb_args *a, eng_err *err) {
    static const char fn[] = "eng_cuda_temb";
    cudaStream_t st = 0;
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = ew_check_dtype(fn, a->dtype, err)) != ENG_OK) return rc;
    if ((rc = ew_check_count(fn, "n", a->n, err)) != ENG_OK) return rc;
    if (a->dim < 2 || !((float)(a->dim / 2) - a->freq_shift > 0.0f) || !(a->max_period > 0.0f)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: dim = %lld, freq_shift = %g, max_period = %g (needs dim >= 2, "
                           "dim / 2 > freq_shift, max_period > 0)",
                           fn, (long long)a->dim, (double)a->freq_shift, (double)a->max_period);
    }
    if ((rc = eng_cuda_check_1d(fn, a->n, "y", a->y, "t", a->t, NULL, NULL, err)) != ENG_OK) {
        return rc;
    }
    if ((rc = eng_cuda_stream_get(&st, fn, s, err)) != ENG_OK) return rc;
    if (a->n == 0) return ENG_OK;
    const ew_rows_launch l = ew_rows_config(a->n, a->dim);
    switch (a->dtype) {
    case ENG_DTYPE_F16:
        temb_kernel<__half><<<l.grid, l.block, 0, st>>>(
            (__half *)a->y, a->t, a->n, a->dim, a->flip_sin_to_cos, a->freq_shift, a->max_period);
        break;
    case ENG_DTYPE_BF16:
        temb_kernel<__nv_bfloat16><<<l.grid, l.block, 0, st>>>((__nv_bfloat16 *)a->y, a->t, a->n,
                                                               a->dim, a->flip_sin_to_cos,
                                                               a->freq_shift, a->max_period);
        break;
    default:
        temb_kernel<float><<<l.grid, l.block, 0, st>>>(
            (float *)a->y, a->t, a->n, a->dim, a->flip_sin_to_cos, a->freq_shift, a->max_period);
        break;
    }
    ENG_CUDA_LAUNCH_CHECK(err);
    return ENG_OK;
}

void eng_cuda_register_elementwise(eng_op_table *ops) {
    ops->unary = eng_cuda_unary;
    ops->binary = eng_cuda_binary;
    ops->geglu = eng_cuda_geglu;
    ops->copy = eng_cuda_copy;
    ops->upsample = eng_cuda_upsample;
    ops->temb = eng_cuda_temb;
}
