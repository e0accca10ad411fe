/* eng_dtype.c: dtype sizes, names and parsing, and the f32 <-> f16/bf16 conversions (scalar and
 * array) on top of the bit-level rules in eng_half_math.h. */
#include "eng_dtype.h"

#include <string.h>

#include "eng_half_math.h"

typedef struct dtype_info {
    const char *name;
    size_t size;
} dtype_info;

/* Indexed by eng_dtype; the static assert below keeps it in step with the enum. */
static const dtype_info dtype_table[] = {
    [ENG_DTYPE_F32] = {"f32", 4},   [ENG_DTYPE_F16] = {"f16", 2},
    [ENG_DTYPE_BF16] = {"bf16", 2}, [ENG_DTYPE_I8] = {"i8", 1},
    [ENG_DTYPE_I32] = {"i32", 4},   [ENG_DTYPE_FP8_E4M3] = {"fp8_e4m3", 1},
};
_Static_assert(sizeof dtype_table / sizeof dtype_table[0] == ENG_DTYPE_COUNT,
               "dtype_table must list every eng_dtype");

/* Other spellings eng_dtype_parse accepts (numpy's and torch's names). */
static const struct {
    const char *name;
    eng_dtype dt;
} dtype_aliases[] = {
    {"float32", ENG_DTYPE_F32}, {"fp32", ENG_DTYPE_F32},  {"float16", ENG_DTYPE_F16},
    {"fp16", ENG_DTYPE_F16},    {"half", ENG_DTYPE_F16},  {"bfloat16", ENG_DTYPE_BF16},
    {"int8", ENG_DTYPE_I8},     {"int32", ENG_DTYPE_I32}, {"float8_e4m3fn", ENG_DTYPE_FP8_E4M3},
};

size_t eng_dtype_size(eng_dtype dt) {
    if ((int)dt < 0 || dt >= ENG_DTYPE_COUNT) return 0;
    return dtype_table[dt].size;
}

const char *eng_dtype_name(eng_dtype dt) {
    if ((int)dt < 0 || dt >= ENG_DTYPE_COUNT) return "?";
    return dtype_table[dt].name;
}

int eng_dtype_parse(eng_dtype *out, const char *name, eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(out != NULL);
    if (name == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "eng_dtype_parse: no dtype name given (NULL)");
        goto done;
    }
    for (int i = 0; i < ENG_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (eng_dtype)i;
            goto done;
        }
    }
    for (size_t i = 0; i < sizeof dtype_aliases / sizeof dtype_aliases[0]; i++) {
        if (strcmp(name, dtype_aliases[i].name) == 0) {
            *out = dtype_aliases[i].dt;
            goto done;
        }
    }
    /* %.64s: the text may be anything a user typed; keep the message one readable line. */
    rc = eng_err_set(err, ENG_E_INVALID_ARG,
                     "eng_dtype_parse: unknown dtype \"%.64s\"%s (expected one of f32, f16, bf16, "
                     "i8, i32, fp8_e4m3, float32, float16, bfloat16, fp16, fp32)",
                     name, strlen(name) > 64 ? "..." : "");
done:
    return rc;
}

const char *eng_device_name(eng_device_kind d) {
    switch (d) {
    case ENG_DEVICE_CPU: return "cpu";
    case ENG_DEVICE_CUDA: return "cuda";
    case ENG_DEVICE_COUNT: break;
    }
    return "?";
}

float eng_f16_to_f32(eng_f16 h) {
    return eng_half_bits_f32(eng_half_f16_to_f32(h.bits));
}

eng_f16 eng_f32_to_f16(float f) {
    eng_f16 h = {eng_half_f32_to_f16(eng_half_f32_bits(f))};
    return h;
}

float eng_bf16_to_f32(eng_bf16 h) {
    return eng_half_bits_f32(eng_half_bf16_to_f32(h.bits));
}

eng_bf16 eng_f32_to_bf16(float f) {
    eng_bf16 b = {eng_half_f32_to_bf16(eng_half_f32_bits(f))};
    return b;
}

/* The array loops read and write bits through memcpy so a NaN never passes through an FPU
 * register as a float (x87 or a careless compiler could quiet a signaling NaN on the way). */
void eng_convert_f32_to_f16(eng_f16 *ENG_RESTRICT dst, const float *ENG_RESTRICT src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        dst[i].bits = eng_half_f32_to_f16(u);
    }
}

void eng_convert_f16_to_f32(float *ENG_RESTRICT dst, const eng_f16 *ENG_RESTRICT src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = eng_half_f16_to_f32(src[i].bits);
        memcpy(&dst[i], &u, sizeof u);
    }
}

void eng_convert_f32_to_bf16(eng_bf16 *ENG_RESTRICT dst, const float *ENG_RESTRICT src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        dst[i].bits = eng_half_f32_to_bf16(u);
    }
}

void eng_convert_bf16_to_f32(float *ENG_RESTRICT dst, const eng_bf16 *ENG_RESTRICT src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = eng_half_bf16_to_f32(src[i].bits);
        memcpy(&dst[i], &u, sizeof u);
    }
}
