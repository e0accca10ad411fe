/* eng_act_math.h: the scalar math of the pointwise ops, shared by the CPU twins
 * (engine/eng_ops_elementwise.c, engine/eng_ops_norm.c) and the CUDA kernels (cuda/elementwise.cu,
 * cuda/norm.cu), so the twin and the kernel differ only in how they parallelise (conventions 2.6).
 *
 *   float y = eng_act_apply(ENG_ACT_GELU, x);           // 0.5 x (1 + erf(x / sqrt 2))
 *   float e = eng_temb_at(t, j, 320, 1, 1.0f, 10000.0f); // column j of SD's timestep embedding
 *
 * Definitions (f32 in, f32 out; the references are PyTorch's):
 *   silu(x)       = x * sigmoid(x), written x / (1 + exp(-x)) (one rounding fewer; no NaN for
 *                   large |x|: exp(-x) overflowing to inf gives -0, underflowing to 0 gives x)
 *   gelu(x)       = 0.5 x (1 + erf(x / sqrt 2))                       torch.nn.functional.gelu
 *   gelu_tanh(x)  = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))  gelu(approximate="tanh")
 *   quick_gelu(x) = x * sigmoid(1.702 x)                                 CLIP's QuickGELU
 * The library functions (erff, tanhf, expf) are glibc's on the CPU and CUDA's on the device; they
 * differ by a few ulp, and nvcc may contract a*b+c into an FMA, so CPU and GPU agree to ~1e-6
 * relative, not bit for bit (the tests use the tolerances of conventions 2.7).
 *
 * Timestep embedding (diffusers' get_timestep_embedding): for half = dim / 2 and k < half,
 *   exponent_k = f32(-ln(max_period)) * k / (half - freq_shift)   (each step rounded to f32, as
 *                                                                   torch computes it in f32)
 *   freq_k = exp(exponent_k),  arg = t * freq_k (an f32 product, as torch)
 *   row = [sin(arg_0..half-1), cos(arg_0..half-1)], halves swapped when flip_sin_to_cos,
 *   and a zero last column when dim is odd.
 * exp, sin and cos are evaluated in f64 and rounded once to f32: arguments reach ~1000 rad,
 * where one ulp of a library's f32 result moves sin by 6e-5, so CPU and GPU would disagree beyond
 * f32 tolerance if each used its own f32 functions; the f64 ones are nearly correctly rounded
 * on both. (torch's own f32 exp/sin may differ from this by an ulp of their result.)
 *
 * Limits: none (every f32 input is valid; NaN propagates). Threads: pure functions. */
#ifndef ENG_ACT_MATH_H
#define ENG_ACT_MATH_H

#include <math.h>
#include <stdint.h>

#include "eng_base.h"
#include "eng_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ENG_ACT_SQRT1_2      0.70710678118654752440f /* 1 / sqrt(2) */
#define ENG_ACT_SQRT_2_PI    0.79788456080286535588f /* sqrt(2 / pi) */
#define ENG_ACT_TANH_CUBIC   0.044715f
#define ENG_ACT_QUICK_GELU_K 1.702f

static inline ENG_HD float eng_act_silu(float x) {
    return x / (1.0f + expf(-x));
}

static inline ENG_HD float eng_act_gelu(float x) {
    return 0.5f * x * (1.0f + erff(x * ENG_ACT_SQRT1_2));
}

static inline ENG_HD float eng_act_gelu_tanh(float x) {
    const float inner = ENG_ACT_SQRT_2_PI * (x + ENG_ACT_TANH_CUBIC * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

static inline ENG_HD float eng_act_quick_gelu(float x) {
    return x / (1.0f + expf(-ENG_ACT_QUICK_GELU_K * x));
}

/* act(x); ENG_ACT_NONE (and any value out of range, which the ops refuse before) is the identity. */
static inline ENG_HD float eng_act_apply(eng_act act, float x) {
    switch (act) {
    case ENG_ACT_SILU: return eng_act_silu(x);
    case ENG_ACT_GELU: return eng_act_gelu(x);
    case ENG_ACT_GELU_TANH: return eng_act_gelu_tanh(x);
    case ENG_ACT_QUICK_GELU: return eng_act_quick_gelu(x);
    default: return x;
    }
}

/* Column j (0 <= j < dim) of the embedding of timestep t (see the top of the file).
 * Needs dim >= 2 and dim / 2 > freq_shift (what the ops check), else the frequencies are NaN. */
static inline ENG_HD float eng_temb_at(
    float t, int64_t j, int64_t dim, int flip_sin_to_cos, float freq_shift, float max_period) {
    const int64_t nhalf = dim / 2;
    if (j >= 2 * nhalf) return 0.0f; /* odd dim: the padding column */
    const int first = j < nhalf;
    const int64_t k = first ? j : j - nhalf;
    const int use_sin = flip_sin_to_cos ? !first : first;
    const float neg_log = (float)(-log((double)max_period));
    const float exponent = (neg_log * (float)k) / ((float)nhalf - freq_shift);
    const float freq = (float)exp((double)exponent);
    const float arg = t * freq;
    return (float)(use_sin ? sin((double)arg) : cos((double)arg));
}

#ifdef __cplusplus
}
#endif
#endif /* ENG_ACT_MATH_H */
