/* nerf_sh_math.h: real spherical harmonics of degree 4 (bands l = 0..3, 16 values) of a unit
 * direction, as instant-ngp's direction encoding (tiny-cuda-nn's SphericalHarmonics with
 * degree 4), shared by the CPU twin (nerf_sh.c) and, later, the CUDA kernels.
 *
 *   float sh[16]; nerf_sh4(d, sh);   // d = (x, y, z), |d| = 1
 *
 * Basis: index l^2 + l + m for m = -l..l, value sqrt(2) K_l^|m| P_l^|m|(z) times cos(m phi)
 * (m > 0), sin(|m| phi) (m < 0) or 1 / sqrt(2) (m = 0), with K_l^m = sqrt((2l + 1) (l - m)! /
 * (4 pi (l + m)!)) and P_l^m the associated Legendre functions with the Condon-Shortley phase
 * (-1)^m (z = cos theta, x + i y = sin theta e^{i phi}). This is (-1)^m times the "real
 * spherical harmonics" table usually printed (e.g. Y_1^1 = -0.4886 x here); it is the sign
 * convention tiny-cuda-nn's generated code uses, kept so values match instant-ngp.
 * The polynomial forms below assume x^2 + y^2 + z^2 = 1 (nothing is normalised here).
 * Threads: pure functions. */
#ifndef NERF_SH_MATH_H
#define NERF_SH_MATH_H

#include "eng_base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_SH_COEFFS 16

/* The constants, each a closed form (pi = 3.14159...). */
#define NERF_SH_C0  0.28209479177387814f /* 1 / (2 sqrt(pi)) */
#define NERF_SH_C1  0.48860251190291992f /* sqrt(3) / (2 sqrt(pi)) */
#define NERF_SH_C2A 1.09254843059207907f /* sqrt(15) / (2 sqrt(pi)) */
#define NERF_SH_C2B 0.31539156525252005f /* sqrt(5) / (4 sqrt(pi)) */
#define NERF_SH_C2C 0.54627421529603959f /* sqrt(15) / (4 sqrt(pi)) */
#define NERF_SH_C3A 0.59004358992664352f /* sqrt(70) / (8 sqrt(pi)) */
#define NERF_SH_C3B 2.89061144264055406f /* sqrt(105) / (2 sqrt(pi)) */
#define NERF_SH_C3C 0.45704579946446573f /* sqrt(42) / (8 sqrt(pi)) */
#define NERF_SH_C3D 0.37317633259011540f /* sqrt(7) / (4 sqrt(pi)) */
#define NERF_SH_C3E 1.44530572132027703f /* sqrt(105) / (4 sqrt(pi)) */

/* out[16] = the basis at unit direction d. */
static inline ENG_HD void nerf_sh4(const float d[3], float out[NERF_SH_COEFFS]) {
    const float x = d[0], y = d[1], z = d[2];
    const float x2 = x * x, y2 = y * y, z2 = z * z;
    out[0] = NERF_SH_C0;
    /* l = 1 */
    out[1] = -NERF_SH_C1 * y;
    out[2] = NERF_SH_C1 * z;
    out[3] = -NERF_SH_C1 * x;
    /* l = 2 */
    out[4] = NERF_SH_C2A * x * y;
    out[5] = -NERF_SH_C2A * y * z;
    out[6] = NERF_SH_C2B * (3.0f * z2 - 1.0f);
    out[7] = -NERF_SH_C2A * x * z;
    out[8] = NERF_SH_C2C * (x2 - y2);
    /* l = 3 */
    out[9] = -NERF_SH_C3A * y * (3.0f * x2 - y2);
    out[10] = NERF_SH_C3B * x * y * z;
    out[11] = -NERF_SH_C3C * y * (5.0f * z2 - 1.0f);
    out[12] = NERF_SH_C3D * z * (5.0f * z2 - 3.0f);
    out[13] = -NERF_SH_C3C * x * (5.0f * z2 - 1.0f);
    out[14] = NERF_SH_C3E * z * (x2 - y2);
    out[15] = -NERF_SH_C3A * x * (x2 - 3.0f * y2);
}

#ifdef __cplusplus
}
#endif
#endif /* NERF_SH_MATH_H */
