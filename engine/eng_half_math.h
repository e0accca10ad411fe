/* eng_half_math.h: scalar conversions between f32 and the 16- and 8-bit float formats, on raw
 * bits, shared by the CPU code (eng_dtype.c) and the CUDA kernels so both round identically.
 *
 *   uint16_t h = eng_half_f32_to_f16(eng_half_f32_bits(1.5f));         // 0x3e00
 *   float f = eng_half_bits_f32(eng_half_f16_to_f32(h));              // 1.5f
 *
 * Every function is a pure function of its argument's bits (no floating-point arithmetic, so no
 * dependence on the FPU's rounding mode, flush-to-zero or fused multiply-add). The rules, all
 * round-to-nearest-even and checked bit for bit against the references named below (over all
 * 16-bit inputs and a sweep of f32 inputs; tests/gen_dtype_goldens.py writes the goldens):
 *
 *  f32 -> f16 (numpy's astype(np.float16), its software path npy_floatbits_to_halfbits):
 *    overflow (|x| >= 65520 after rounding) gives +-inf, f16 subnormals are produced, not flushed.
 *    NaN keeps its sign and the top 10 payload bits (sign | 0x7c00 | mant >> 13) without being
 *    quieted; if those bits are all zero the result is sign | 0x7c01, so it stays a NaN.
 *  f16 -> f32 (numpy's astype(np.float32)): exact; NaN becomes sign | 0x7f800000 | mant << 13,
 *    again not quieted. (Hardware F16C/CUDA intrinsics quiet NaNs; these do not.)
 *  f32 -> bf16 (ml_dtypes.bfloat16, i.e. Eigen's RNE conversion): overflow to inf, subnormals kept;
 *    any NaN becomes the quiet NaN sign | 0x7fc0.
 *  bf16 -> f32: the 16 bits become the top half (exact, NaN payload kept).
 *  f32 -> fp8 e4m3 (ml_dtypes.float8_e4m3fn: bias 7, no infinities, S.1111.111 is NaN, max 448):
 *    eng_half_f32_to_e4m3 is ml_dtypes' conversion: a value that rounds beyond 448 (|x| > 464),
 *    +-inf and NaN all give sign | 0x7f (NaN). eng_half_f32_to_e4m3_sat saturates instead: finite
 *    overflow and +-inf give +-448 (sign | 0x7e), NaN stays sign | 0x7f; it equals ml_dtypes'
 *    conversion of clip(x, -448, 448), what quantizers want (CUDA's __NV_SATFINITE).
 *  fp8 e4m3 -> f32: exact; NaN gives sign | 0x7fc00000.
 *
 * Limits: none; every input bit pattern is valid. Threads: pure functions. */
#ifndef ENG_HALF_MATH_H
#define ENG_HALF_MATH_H

#include <stdint.h>
#include <string.h>

#include "eng_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The bits of an f32 and back (memcpy: no aliasing questions; compilers emit a move). */
static inline ENG_HD uint32_t eng_half_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline ENG_HD float eng_half_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Shifts `sig` right by `shift` (1..31) and rounds to nearest, ties to even. */
static inline ENG_HD uint32_t eng_half_shift_rne(uint32_t sig, uint32_t shift) {
    const uint32_t kept = sig >> shift;
    const uint32_t rem = sig & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    return kept + ((rem > half || (rem == half && (kept & 1u))) ? 1u : 0u);
}

/* f32 bits -> f16 bits (numpy's rules, see the top of the file). */
static inline ENG_HD uint16_t eng_half_f32_to_f16(uint32_t f) {
    const uint32_t sign = (f >> 16) & 0x8000u;
    const uint32_t exp = (f >> 23) & 0xffu;
    const uint32_t mant = f & 0x7fffffu;
    if (exp == 0xffu) {
        if (mant == 0) return (uint16_t)(sign | 0x7c00u); /* +-inf */
        const uint32_t payload = mant >> 13;
        return (uint16_t)(sign | 0x7c00u | (payload != 0 ? payload : 1u));
    }
    if (exp >= 143u) return (uint16_t)(sign | 0x7c00u); /* |x| >= 2^16: inf */
    if (exp >= 113u) {
        /* f16 normal range: biased exponent exp - 112. Rounding up may carry into the exponent,
         * and from 0x7bff (65504) into 0x7c00 (inf), which is exactly what IEEE wants. */
        const uint32_t h = ((exp - 112u) << 10) | (mant >> 13);
        const uint32_t rem = mant & 0x1fffu;
        return (uint16_t)(sign | (h + ((rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ? 1u : 0u)));
    }
    /* Below 2^-25 (f32 subnormals included) everything rounds to zero: 2^-25 itself is a tie
     * between 0 and the smallest subnormal 2^-24 and goes to the even 0. */
    if (exp < 102u) return (uint16_t)sign;
    /* f16 subnormal, in units of 2^-24: (0x800000 | mant) * 2^(exp - 150) / 2^-24. Rounding the
     * largest ones up carries into the smallest normal 0x0400, also correct. */
    return (uint16_t)(sign | eng_half_shift_rne(0x800000u | mant, 126u - exp));
}

/* f16 bits -> f32 bits, exact. */
static inline ENG_HD uint32_t eng_half_f16_to_f32(uint16_t h) {
    const uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    const uint32_t exp = ((uint32_t)h >> 10) & 0x1fu;
    uint32_t mant = (uint32_t)h & 0x3ffu;
    if (exp == 0x1fu) return sign | 0x7f800000u | (mant << 13); /* inf, NaN keeps its payload */
    if (exp != 0) return sign | ((exp + 112u) << 23) | (mant << 13);
    if (mant == 0) return sign; /* +-0 */
    /* Subnormal m * 2^-24: normalize so the leading 1 lands on bit 10. */
    uint32_t e = 113u;
    while ((mant & 0x400u) == 0) {
        mant <<= 1;
        e--;
    }
    return sign | (e << 23) | ((mant & 0x3ffu) << 13);
}

/* f32 bits -> bf16 bits (ml_dtypes' rules). */
static inline ENG_HD uint16_t eng_half_f32_to_bf16(uint32_t f) {
    if ((f & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(((f >> 16) & 0x8000u) | 0x7fc0u);
    /* Adding 0x7fff plus the lowest kept bit rounds to nearest even; the carry ripples into the
     * exponent and from the largest finite into inf by itself. No overflow of 32 bits: the
     * largest non-NaN magnitude is 0x7f800000. */
    return (uint16_t)((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

/* bf16 bits -> f32 bits, exact. */
static inline ENG_HD uint32_t eng_half_bf16_to_f32(uint16_t b) {
    return (uint32_t)b << 16;
}

/* Shared by the two f32 -> e4m3 conversions: the rounded magnitude, which may be 0x7f or 0x80
 * (beyond 448) for finite input; the callers decide what overflow means. `f` is not NaN/inf. */
static inline ENG_HD uint32_t eng_half_e4m3_magnitude(uint32_t f) {
    const uint32_t exp = (f >> 23) & 0xffu;
    const uint32_t mant = f & 0x7fffffu;
    if (exp > 135u) return 0x80u; /* |x| >= 2^9: certainly beyond 448 */
    if (exp >= 121u) {
        /* e4m3 normal: biased exponent exp - 120, 3 mantissa bits, 20 bits dropped. */
        const uint32_t m = ((exp - 120u) << 3) | (mant >> 20);
        const uint32_t rem = mant & 0xfffffu;
        return m + ((rem > 0x80000u || (rem == 0x80000u && (m & 1u))) ? 1u : 0u);
    }
    if (exp < 117u) return 0; /* below 2^-10 (half the smallest subnormal 2^-9): zero */
    /* e4m3 subnormal in units of 2^-9: (0x800000 | mant) * 2^(exp - 150) / 2^-9. */
    return eng_half_shift_rne(0x800000u | mant, 141u - exp);
}

/* f32 bits -> fp8 e4m3fn bits as ml_dtypes.float8_e4m3fn: overflow, inf and NaN give NaN. */
static inline ENG_HD uint8_t eng_half_f32_to_e4m3(uint32_t f) {
    const uint32_t sign = (f >> 24) & 0x80u;
    if ((f & 0x7f800000u) == 0x7f800000u) return (uint8_t)(sign | 0x7fu); /* inf, NaN */
    const uint32_t m = eng_half_e4m3_magnitude(f);
    return (uint8_t)(sign | (m > 0x7eu ? 0x7fu : m));
}

/* f32 bits -> fp8 e4m3fn bits, saturating: overflow and inf give +-448, NaN stays NaN. */
static inline ENG_HD uint8_t eng_half_f32_to_e4m3_sat(uint32_t f) {
    const uint32_t sign = (f >> 24) & 0x80u;
    if ((f & 0x7fffffffu) > 0x7f800000u) return (uint8_t)(sign | 0x7fu);  /* NaN */
    if ((f & 0x7fffffffu) == 0x7f800000u) return (uint8_t)(sign | 0x7eu); /* +-inf */
    const uint32_t m = eng_half_e4m3_magnitude(f);
    return (uint8_t)(sign | (m > 0x7eu ? 0x7eu : m));
}

/* fp8 e4m3fn bits -> f32 bits, exact; NaN gives sign | 0x7fc00000. */
static inline ENG_HD uint32_t eng_half_e4m3_to_f32(uint8_t b) {
    const uint32_t sign = ((uint32_t)b & 0x80u) << 24;
    const uint32_t exp = ((uint32_t)b >> 3) & 0xfu;
    uint32_t mant = (uint32_t)b & 0x7u;
    if (exp == 0xfu && mant == 0x7u) return sign | 0x7fc00000u;
    if (exp != 0) return sign | ((exp + 120u) << 23) | (mant << 20);
    if (mant == 0) return sign;
    /* Subnormal m * 2^-9: normalize so the leading 1 lands on bit 3. */
    uint32_t e = 121u;
    while ((mant & 0x8u) == 0) {
        mant <<= 1;
        e--;
    }
    return sign | (e << 23) | ((mant & 0x7u) << 20);
}

#ifdef __cplusplus
}
#endif
#endif /* ENG_HALF_MATH_H */
