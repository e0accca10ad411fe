/* eng_dtype.h: element types, their sizes and names, and f32 <-> f16/bf16 conversion.
 *
 *   eng_f16 h = eng_f32_to_f16(1.5f);   float f = eng_f16_to_f32(h);
 *   eng_convert_f32_to_bf16(dst, src, n);
 *
 * Half types are structs so they never mix with integers by accident. Conversions round to
 * nearest even and are bit-exact with numpy's astype (NaN payloads included; see eng_half_math.h
 * for the rules and tests/gen_dtype_goldens.py for the check). Threads: pure functions. */
#ifndef ENG_DTYPE_H
#define ENG_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eng_dtype {
    ENG_DTYPE_F32,
    ENG_DTYPE_F16,
    ENG_DTYPE_BF16,
    ENG_DTYPE_I8,
    ENG_DTYPE_I32,
    ENG_DTYPE_FP8_E4M3, /* storage only for now; CUDA kernels use it on sm_89+ */
    ENG_DTYPE_COUNT
} eng_dtype;

/* Where a tensor's data lives. */
typedef enum eng_device_kind { ENG_DEVICE_CPU, ENG_DEVICE_CUDA, ENG_DEVICE_COUNT } eng_device_kind;

/* "cpu", "cuda"; "?" otherwise. */
const char *eng_device_name(eng_device_kind d);

typedef struct eng_f16 {
    uint16_t bits;
} eng_f16;
typedef struct eng_bf16 {
    uint16_t bits;
} eng_bf16;

/* Bytes per element; 0 for an invalid dtype. */
size_t eng_dtype_size(eng_dtype dt);
/* "f32", "f16", "bf16", "i8", "i32", "fp8_e4m3"; "?" for an invalid dtype. */
const char *eng_dtype_name(eng_dtype dt);
/* Parses a name as printed above (also "float32", "float16", "bfloat16", "fp16", "fp32").
 * Errors: ENG_E_INVALID_ARG naming the text. */
int eng_dtype_parse(eng_dtype *out, const char *name, eng_err *err);

/* Scalar conversions (round to nearest even; NaN stays NaN, numpy's payload rules). */
float eng_f16_to_f32(eng_f16 h);
eng_f16 eng_f32_to_f16(float f);
float eng_bf16_to_f32(eng_bf16 h);
eng_bf16 eng_f32_to_bf16(float f);

/* Array conversions, n elements, no aliasing. */
void eng_convert_f32_to_f16(eng_f16 *ENG_RESTRICT dst, const float *ENG_RESTRICT src, int64_t n);
void eng_convert_f16_to_f32(float *ENG_RESTRICT dst, const eng_f16 *ENG_RESTRICT src, int64_t n);
void eng_convert_f32_to_bf16(eng_bf16 *ENG_RESTRICT dst, const float *ENG_RESTRICT src, int64_t n);
void eng_convert_bf16_to_f32(float *ENG_RESTRICT dst, const eng_bf16 *ENG_RESTRICT src, int64_t n);

#ifdef __cplusplus
}
#endif
#endif /* ENG_DTYPE_H */
