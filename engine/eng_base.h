/* eng_base.h: the few macros every engine header uses. Compiles as C11 and as CUDA C++. */
#ifndef ENG_BASE_H
#define ENG_BASE_H

/* `__host__ __device__` under nvcc, nothing in C: math shared by the CPU twins and the kernels. */
#if defined(__CUDACC__)
#define ENG_HD __host__ __device__
#else
#define ENG_HD
#endif

#define ENG_CEIL_DIV(a, b) (((a) + (b)-1) / (b))
#define ENG_MIN(a, b)      ((a) < (b) ? (a) : (b))
#define ENG_MAX(a, b)      ((a) > (b) ? (a) : (b))

#if defined(__GNUC__) || defined(__clang__)
#define ENG_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define ENG_PRINTF(fmt_idx, arg_idx)
#endif

/* `restrict` is C only; nvcc and C++ spell it __restrict__. */
#if defined(__cplusplus)
#define ENG_RESTRICT __restrict__
#else
#define ENG_RESTRICT restrict
#endif

#endif /* ENG_BASE_H */
