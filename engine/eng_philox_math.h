/* eng_philox_math.h: Philox4x32-10 and the number streams built on it, shared by the CPU twins
 * (eng_rng.c) and the CUDA kernels (cuda/philox.cu) so both produce the same bits.
 *
 * Philox4x32-10 is the counter-based generator of Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3" (SC'11), as in the Random123 library: 10 rounds of a multiply-hi/lo bijection on a
 * 128-bit counter under a 64-bit key (tested against Random123's known-answer vectors).
 *
 * Streams (seed = key, `offset` chooses an independent stream for the same seed):
 *  - uniform, element i: counter {i/4 lo, i/4 hi, offset lo, offset hi}, word i%4,
 *    u = (word >> 8) * 2^-24, in [0, 1).
 *  - normal, element i: counter {offset lo, offset hi, i lo, i hi}; words 0 and 1 go through
 *    Box-Muller's sine branch. This is the layout of the torch-CUDA-compatible "GPU" noise of
 *    popular SD front-ends (counter = (offset, 0, index, 0), key = seed), so seeds reproduce
 *    their initial latents up to float rounding.
 *
 * The Box-Muller log and sine are computed here in double with +, -, *, / only (no libm), and
 * the CUDA file is compiled with -fmad=false, so CPU and GPU round identically. */
#ifndef ENG_PHILOX_MATH_H
#define ENG_PHILOX_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "eng_base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ENG_PHILOX_M0 0xD2511F53u
#define ENG_PHILOX_M1 0xCD9E8D57u
#define ENG_PHILOX_W0 0x9E3779B9u /* golden ratio */
#define ENG_PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

/* out = Philox4x32-10(ctr, key). out may alias ctr. */
static inline ENG_HD void
eng_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        const uint64_t p0 = (uint64_t)ENG_PHILOX_M0 * c0;
        const uint64_t p1 = (uint64_t)ENG_PHILOX_M1 * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += ENG_PHILOX_W0;
        k1 += ENG_PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Uniform [0, 1) from the top 24 bits of a word: exactly representable in f32. */
static inline ENG_HD float eng_philox_u01(uint32_t w) {
    return (float)(w >> 8) * (1.0f / 16777216.0f);
}

/* Natural log of x > 0 (finite, normal), double, |error| <= 1 ulp: x = m * 2^e with m in
 * [sqrt(1/2), sqrt(2)), then a series for log m (below). */
static inline ENG_HD double eng_philox_log(double x) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull; /* m in [1, 2) */
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m = m * 0.5;
        e += 1;
    }
    /* log m = f - (hfsq - s (hfsq + R)), f = m - 1 (exact), s = f / (2 + f),
     * R = sum_{k>=1} 2 s^2k / (2k+1): the correction is small next to f, so |error| <= 1 ulp
     * (the arrangement of fdlibm's log). |s| <= 0.1716: the next term is below 1e-19. */
    const double f = m - 1.0;
    const double s = f / (2.0 + f);
    const double z = s * s;
    double r = 2.0 / 23.0;
    r = r * z + 2.0 / 21.0;
    r = r * z + 2.0 / 19.0;
    r = r * z + 2.0 / 17.0;
    r = r * z + 2.0 / 15.0;
    r = r * z + 2.0 / 13.0;
    r = r * z + 2.0 / 11.0;
    r = r * z + 2.0 / 9.0;
    r = r * z + 2.0 / 7.0;
    r = r * z + 2.0 / 5.0;
    r = r * z + 2.0 / 3.0;
    r = r * z;
    const double hfsq = 0.5 * f * f;
    const double ln2_hi = 6.93147180369123816490e-01; /* ln 2 split so e * ln2_hi is exact */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double de = (double)e;
    return de * ln2_hi - ((hfsq - (s * (hfsq + r) + de * ln2_lo)) - f);
}

/* sin(x) for x in [0, 8), double, |error| ~ 1 ulp: quadrant reduction by pi/2 (Cody-Waite,
 * two parts) to [-pi/4, pi/4], then Taylor series of sin or cos. */
static inline ENG_HD double eng_philox_sin(double x) {
    const double two_over_pi = 6.36619772367581382433e-01;
    const double pio2_1 = 1.57079632673412561417e+00;  /* first 33 bits of pi/2: q * it is exact */
    const double pio2_1t = 6.07710050650619224932e-11; /* pi/2 - pio2_1 */
    const int q = (int)(x * two_over_pi + 0.5);
    const double r = (x - (double)q * pio2_1) - (double)q * pio2_1t;
    const double r2 = r * r;
    double v;
    if ((q & 1) == 0) { /* sin r = r - r^3/3! + ... + r^17/17! */
        double p = -1.0 / 355687428096000.0;
        p = p * r2 + 1.0 / 1307674368000.0;
        p = p * r2 - 1.0 / 6227020800.0;
        p = p * r2 + 1.0 / 39916800.0;
        p = p * r2 - 1.0 / 362880.0;
        p = p * r2 + 1.0 / 5040.0;
        p = p * r2 - 1.0 / 120.0;
        p = p * r2 + 1.0 / 6.0;
        v = r - r * r2 * p;
    } else { /* cos r = 1 - r^2/2! + ... + r^18/18! */
        double p = 1.0 / 6402373705728000.0;
        p = 1.0 / 20922789888000.0 - r2 * p;
        p = 1.0 / 87178291200.0 - r2 * p;
        p = 1.0 / 479001600.0 - r2 * p;
        p = 1.0 / 3628800.0 - r2 * p;
        p = 1.0 / 40320.0 - r2 * p;
        p = 1.0 / 720.0 - r2 * p;
        p = 1.0 / 24.0 - r2 * p;
        p = 0.5 - r2 * p;
        v = 1.0 - r2 * p;
    }
    return (q & 2) ? -v : v;
}

/* Element i of the uniform stream (see the top of the file). */
static inline ENG_HD float eng_philox_uniform_at(uint64_t seed, uint64_t offset, uint64_t i) {
    const uint64_t block = i >> 2;
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)offset,
                             (uint32_t)(offset >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t w[4];
    eng_philox4x32_10(w, ctr, key);
    return eng_philox_u01(w[i & 3]);
}

/* Element i of the normal stream: sqrt(-2 ln u) sin(2 pi v) with u, v in (0, 1) from words 0, 1
 * (u = w0 2^-32 + 2^-33, v likewise), rounded once to f32. */
static inline ENG_HD float eng_philox_normal_at(uint64_t seed, uint64_t offset, uint64_t i) {
    const uint32_t ctr[4] = {(uint32_t)offset, (uint32_t)(offset >> 32), (uint32_t)i,
                             (uint32_t)(i >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t w[4];
    eng_philox4x32_10(w, ctr, key);
    const double two_pow32_inv = 2.3283064365386963e-10; /* 2^-32 */
    const double two_pi = 6.283185307179586;
    const double u = (double)w[0] * two_pow32_inv + two_pow32_inv * 0.5;
    const double v = ((double)w[1] * two_pow32_inv + two_pow32_inv * 0.5) * two_pi;
    double lu = eng_philox_log(u);
    double root = -2.0 * lu;
    root = sqrt(root); /* correctly rounded on both sides (IEEE-754) */
    return (float)(root * eng_philox_sin(v));
}

#ifdef __cplusplus
}
#endif
#endif /* ENG_PHILOX_MATH_H */
