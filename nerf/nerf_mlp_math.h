/* nerf_mlp_math.h: the activations of the NeRF MLPs and their derivatives, shared by the CPU twin
 * (nerf_mlp.c, nerf_field.c) and, later, the CUDA kernels.
 *
 *   float y = nerf_act_fwd(NERF_ACT_SIGMOID, x);
 *   float dx = nerf_act_bwd(NERF_ACT_SIGMOID, x, dy);   // dy * sigmoid'(x), from x itself
 *
 * Definitions (f32):
 *   relu(x)      = max(x, 0); derivative 1 for x > 0, else 0
 *   trunc_exp(x) = exp(x); its "derivative" is exp(clamp(x, -15, 15)): instant-ngp's density
 *                  activation (and torch-ngp's trunc_exp), which keeps one huge or tiny logit from
 *                  blowing up or stalling the gradient. Not the true derivative outside [-15, 15].
 *   sigmoid(x)   = 1 / (1 + exp(-x)); derivative sigmoid(x) (1 - sigmoid(x))
 * Threads: pure functions. */
#ifndef NERF_MLP_MATH_H
#define NERF_MLP_MATH_H

#include <math.h>

#include "eng_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nerf_act {
    NERF_ACT_NONE,
    NERF_ACT_RELU,
    NERF_ACT_TRUNC_EXP,
    NERF_ACT_SIGMOID,
    NERF_ACT_COUNT
} nerf_act;

#define NERF_TRUNC_EXP_CLAMP 15.0f

static inline ENG_HD float nerf_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}

/* act(x); NONE and values out of range are the identity. */
static inline ENG_HD float nerf_act_fwd(nerf_act act, float x) {
    switch (act) {
    case NERF_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case NERF_ACT_TRUNC_EXP: return expf(x);
    case NERF_ACT_SIGMOID: return nerf_sigmoid(x);
    default: return x;
    }
}

/* dy * act'(x), x the pre-activation (see the top of the file for trunc_exp). */
static inline ENG_HD float nerf_act_bwd(nerf_act act, float x, float dy) {
    switch (act) {
    case NERF_ACT_RELU: return x > 0.0f ? dy : 0.0f;
    case NERF_ACT_TRUNC_EXP: {
        const float c = x < -NERF_TRUNC_EXP_CLAMP  ? -NERF_TRUNC_EXP_CLAMP
                        : x > NERF_TRUNC_EXP_CLAMP ? NERF_TRUNC_EXP_CLAMP
                                                   : x;
        return dy * expf(c);
    }
    case NERF_ACT_SIGMOID: {
        const float sg = nerf_sigmoid(x);
        return dy * sg * (1.0f - sg);
    }
    default: return dy;
    }
}

#ifdef __cplusplus
}
#endif
#endif /* NERF_MLP_MATH_H */
