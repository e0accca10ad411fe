/* eng_test_compare.h: comparing op outputs (header only), per conventions 2.7:
 * |got - want| <= atol + rtol |want| element-wise (NaN and Inf must agree), or NMSE for long
 * reductions; on failure the op, the worst index with both values and the max errors are printed.
 *
 *   eng_test_fill(x, n, 7, -1.0f, 1.0f);                       // Philox, from eng_test_seed()
 *   CHECK(eng_test_allclose("groupnorm f32", got, want, n, 1e-5, 1e-5));
 *   CHECK(eng_test_nmse("conv2d f16", got, want, n, 1e-5));
 *   eng_test_canary_set(buf + n, 64);  ... CHECK(eng_test_canary_ok(buf + n, 64));
 */
#ifndef ENG_TEST_COMPARE_H
#define ENG_TEST_COMPARE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "eng_philox_math.h"
#include "eng_test.h"

/* x[i] uniform in [lo, hi) from Philox(eng_test_seed(), stream). */
static inline void eng_test_fill(float *x, int64_t n, uint64_t stream, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = lo + (hi - lo) * eng_philox_uniform_at(eng_test_seed(), stream, (uint64_t)i);
    }
}

/* 1 when every element passes |got - want| <= atol + rtol |want| (NaN/Inf must match). */
static inline int eng_test_allclose(
    const char *what, const float *got, const float *want, int64_t n, double atol, double rtol) {
    int64_t worst = -1, bad = 0;
    double worst_excess = 0.0, max_abs = 0.0, max_rel = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double g = got[i], w = want[i];
        if (isnan(w) || isinf(w) || isnan(g) || isinf(g)) {
            const int same = (isnan(w) && isnan(g)) || (isinf(w) && isinf(g) && (g > 0) == (w > 0));
            if (!same) {
                bad++;
                if (worst < 0) worst = i;
            }
            continue;
        }
        const double d = fabs(g - w);
        const double excess = d - (atol + rtol * fabs(w));
        if (d > max_abs) max_abs = d;
        if (w != 0.0 && d / fabs(w) > max_rel) max_rel = d / fabs(w);
        if (excess > 0) {
            bad++;
            if (worst < 0 || excess > worst_excess) {
                worst = i;
                worst_excess = excess;
            }
        }
    }
    if (bad == 0) return 1;
    fprintf(stderr,
            "%s: %lld of %lld elements outside atol %g + rtol %g; worst [%lld]: got %.9g want "
            "%.9g; max abs err %g, max rel err %g (seed %llu)\n",
            what, (long long)bad, (long long)n, atol, rtol, (long long)worst, (double)got[worst],
            (double)want[worst], max_abs, max_rel, (unsigned long long)eng_test_seed());
    return 0;
}

/* 1 when sum (got - want)^2 / sum want^2 <= bound. */
static inline int
eng_test_nmse(const char *what, const float *got, const float *want, int64_t n, double bound) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)got[i] - (double)want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    const double nmse = den > 0.0 ? num / den : num;
    if (nmse <= bound && !isnan(nmse)) return 1;
    fprintf(stderr, "%s: NMSE %g over %lld elements exceeds %g (seed %llu)\n", what, nmse,
            (long long)n, bound, (unsigned long long)eng_test_seed());
    return 0;
}

/* Guard bytes around outputs: written before the op, checked after. */
#define ENG_TEST_CANARY 0xA5u
static inline void eng_test_canary_set(void *p, size_t bytes) {
    memset(p, (int)ENG_TEST_CANARY, bytes);
}
static inline int eng_test_canary_ok(const void *p, size_t bytes) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < bytes; i++) {
        if (b[i] != ENG_TEST_CANARY) {
            fprintf(stderr, "canary overwritten at byte %zu of %zu\n", i, bytes);
            return 0;
        }
    }
    return 1;
}

#endif /* ENG_TEST_COMPARE_H */
