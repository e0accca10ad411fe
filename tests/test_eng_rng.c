/* test_eng_rng.c: Philox4x32-10 against Random123's known answers, the uniform and normal streams
 * against an independent numpy implementation (tests/golden/dtype_rng_philox.txt, written by
 * tests/gen_dtype_goldens.py), their statistics, determinism across thread counts, and the
 * accuracy of the Box-Muller log/sin in eng_philox_math.h against libm. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_ops.h"
#include "eng_philox_math.h"
#include "eng_rng.h"
#include "eng_sched.h"
#include "eng_test.h"

/* Known-answer vectors from Random123's tests/kat_vectors (the "philox4x32 10" lines):
 * counter[4], key[2] -> output[4]. */
static int test_random123_kat(void) {
    static const uint32_t kat[3][10] = {
        {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x6627e8d5,
         0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        eng_philox4x32_10(out, &kat[v][0], &kat[v][4]);
        for (int j = 0; j < 4; j++) {
            if (out[j] != kat[v][6 + j]) {
                fprintf(stderr, "KAT %d word %d: got %08" PRIx32 ", want %08" PRIx32 "\n", v, j,
                        out[j], kat[v][6 + j]);
                return 1;
            }
        }
        /* out may alias ctr */
        uint32_t io[4];
        memcpy(io, &kat[v][0], sizeof io);
        eng_philox4x32_10(io, io, &kat[v][4]);
        CHECK(memcmp(io, out, sizeof io) == 0);
    }
    /* the uniform stream's first block with seed 0, offset 0 is KAT 0's words, top 24 bits */
    float u[4];
    eng_rng_uniform_block(u, 0, 0, 0);
    for (int j = 0; j < 4; j++)
        CHECK(u[j] == (float)(kat[0][6 + j] >> 8) / 16777216.0f);
    return 0;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Distance in f32 ulps (monotone integer map of the bits). */
static int64_t ulp_dist_f32(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    const int64_t ma = ia < 0 ? (int64_t)INT32_MIN - ia : ia;
    const int64_t mb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return ma > mb ? ma - mb : mb - ma;
}

/* Every stream of the golden file: uniform bit for bit, normal within 1 f32 ulp (the reference
 * uses libm's log/sin; ours are within a few double ulps, which the f32 rounding hides almost
 * always). Streams that start at 0 go through the CPU twins, serially and on a 2-thread pool;
 * the one starting near 2^32 through eng_philox_*_at (the index's high word). */
static int test_normal_matches_reference(void) {
    /* the torch-CUDA-compatible start of the seed 0 stream */
    static const float first[4] = {-0.92466259f, -0.42534415f, -2.6438457f, 0.14518388f};
    float y[32];
    eng_err err = {0};
    CHECK_OK(eng_cpu_fill_normal_f32(NULL, y, 4, 0, 0, &err), &err);
    for (int i = 0; i < 4; i++)
        CHECK(fabsf(y[i] - first[i]) <= 1e-6f);

    char path[1024], line[256];
    snprintf(path, sizeof path, "%s/golden/dtype_rng_philox.txt", ENG_TEST_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open (run tests/gen_dtype_goldens.py)\n", path);
        return 1;
    }
    eng_pool *pool = NULL;
    int rc = 1, streams = 0, exact = 0, total = 0;
    if (eng_pool_create(&pool, 2, &err) != ENG_OK) {
        fprintf(stderr, "eng_pool_create: %s\n", err.msg);
        goto done;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char kind[16];
        uint64_t seed, offset, start;
        int count;
        if (line[0] == '#') continue;
        if (sscanf(line,
                   "stream %15s seed %" SCNu64 " offset %" SCNu64 " start %" SCNu64 " count %d",
                   kind, &seed, &offset, &start, &count) != 5 ||
            count < 1 || count > 32) {
            fprintf(stderr, "%s: bad stream line: %s", path, line);
            goto done;
        }
        const int normal = strcmp(kind, "normal") == 0;
        float serial[32], par[32];
        if (start == 0) {
            eng_stream s = {ENG_DEVICE_CPU, NULL, pool, NULL, NULL};
            if (normal) {
                CHECK_OK(eng_cpu_fill_normal_f32(NULL, serial, count, seed, offset, &err), &err);
                CHECK_OK(eng_cpu_fill_normal_f32(&s, par, count, seed, offset, &err), &err);
            } else {
                CHECK_OK(eng_cpu_fill_uniform_f32(NULL, serial, count, seed, offset, &err), &err);
                CHECK_OK(eng_cpu_fill_uniform_f32(&s, par, count, seed, offset, &err), &err);
            }
            CHECK(memcmp(serial, par, (size_t)count * sizeof(float)) == 0);
        } else {
            for (int i = 0; i < count; i++) {
                serial[i] = normal ? eng_philox_normal_at(seed, offset, start + (uint64_t)i)
                                   : eng_philox_uniform_at(seed, offset, start + (uint64_t)i);
            }
        }
        for (int i = 0; i < count; i++) {
            uint32_t bits;
            float want;
            if (fgets(line, sizeof line, f) == NULL || sscanf(line, "%" SCNx32, &bits) != 1) {
                fprintf(stderr, "%s: stream %s seed %" PRIu64 ": missing value %d\n", path, kind,
                        seed, i);
                goto done;
            }
            memcpy(&want, &bits, 4);
            const int64_t d = ulp_dist_f32(serial[i], want);
            if (d > (normal ? 1 : 0)) {
                fprintf(stderr,
                        "%s seed %" PRIu64 " offset %" PRIu64 " element %" PRIu64
                        ": got %.9g (0x%08" PRIx32 "), reference %.9g, %" PRId64 " ulp\n",
                        kind, seed, offset, start + (uint64_t)i, (double)serial[i],
                        f32_bits(serial[i]), (double)want, d);
                goto done;
            }
            exact += d == 0;
            total++;
        }
        if (fgets(line, sizeof line, f) == NULL || strncmp(line, "end", 3) != 0) {
            fprintf(stderr, "%s: stream without end line\n", path);
            goto done;
        }
        streams++;
    }
    CHECK(streams >= 10);
    printf("%d streams, %d values, %d bit-exact\n", streams, total, exact);
    rc = 0;
done:
    eng_pool_destroy(pool);
    fclose(f);
    return rc;
}

#define STATS_N 1000000

static int test_uniform_stats(void) {
    const uint64_t seed = eng_test_seed();
    float *y = malloc(STATS_N * sizeof *y), *z = malloc(STATS_N * sizeof *z);
    eng_err err = {0};
    int rc = 1;
    if (y == NULL || z == NULL) goto done;
    CHECK_OK(eng_cpu_fill_uniform_f32(NULL, y, STATS_N, seed, 0, &err), &err);
    double sum = 0, sq = 0;
    int64_t bins[64] = {0};
    for (int64_t i = 0; i < STATS_N; i++) {
        const double u = y[i];
        if (!(u >= 0.0 && u < 1.0) || u * 16777216.0 != floor(u * 16777216.0)) {
            fprintf(stderr, "element %" PRId64 " = %.9g: not a multiple of 2^-24 in [0, 1)\n", i,
                    u);
            goto done;
        }
        sum += u;
        sq += (u - 0.5) * (u - 0.5);
        bins[(int)(u * 64.0)]++;
    }
    /* 5-sigma bounds: sd(mean) = sqrt(1/12 / n), sd(var) = sqrt(1/180 / n) */
    const double mean = sum / STATS_N, var = sq / STATS_N;
    const double chi_expect = STATS_N / 64.0;
    double chi2 = 0;
    for (int b = 0; b < 64; b++)
        chi2 += (bins[b] - chi_expect) * (bins[b] - chi_expect) / chi_expect;
    printf("uniform: mean %.6f var %.6f (1/12 = %.6f) chi2(63 dof) %.1f\n", mean, var, 1.0 / 12,
           chi2);
    CHECK(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / STATS_N));
    CHECK(fabs(var - 1.0 / 12) < 5 * sqrt(1.0 / 180 / STATS_N));
    CHECK(chi2 < 63 + 5 * sqrt(2.0 * 63)); /* chi2 with 63 dof: mean 63, sd sqrt(126) */

    /* other streams are distinct and uncorrelated: another offset, another seed */
    for (int which = 0; which < 2; which++) {
        const uint64_t s2 = which == 0 ? seed : seed + 1, o2 = which == 0 ? 1 : 0;
        CHECK_OK(eng_cpu_fill_uniform_f32(NULL, z, STATS_N, s2, o2, &err), &err);
        int64_t same = 0;
        double cov = 0;
        for (int64_t i = 0; i < STATS_N; i++) {
            same += y[i] == z[i];
            cov += (y[i] - 0.5) * (z[i] - 0.5);
        }
        const double corr = cov / STATS_N * 12.0;
        printf("vs seed %" PRIu64 " offset %" PRIu64 ": %" PRId64 " equal, correlation %.5f\n", s2,
               o2, same, corr);
        CHECK(same < 10); /* expected 1e6 * 2^-24 = 0.06 */
        CHECK(fabs(corr) < 5.0 / sqrt((double)STATS_N));
    }
    rc = 0;
done:
    free(z);
    free(y);
    return rc;
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int test_normal_stats(void) {
    const uint64_t seed = eng_test_seed();
    float *y = malloc(STATS_N * sizeof *y);
    eng_err err = {0};
    int rc = 1;
    if (y == NULL) goto done;
    CHECK_OK(eng_cpu_fill_normal_f32(NULL, y, STATS_N, seed, 5, &err), &err);
    double s1 = 0, s2 = 0, s4 = 0;
    for (int64_t i = 0; i < STATS_N; i++) {
        const double z = y[i];
        /* u >= 2^-33 bounds |z| by sqrt(-2 ln 2^-33) = 6.77 */
        if (!(fabs(z) <= 6.77)) {
            fprintf(stderr, "element %" PRId64 " = %.9g: outside the Box-Muller range\n", i, z);
            goto done;
        }
        s1 += z;
        s2 += z * z;
        s4 += z * z * z * z;
    }
    const double mean = s1 / STATS_N, m2 = s2 / STATS_N, m4 = s4 / STATS_N;
    /* Kolmogorov-Smirnov against Phi: D < sqrt(-ln(alpha/2) / (2n)) with alpha = 1e-6 */
    qsort(y, STATS_N, sizeof *y, cmp_float);
    double ks = 0;
    for (int64_t i = 0; i < STATS_N; i++) {
        const double cdf = 0.5 * erfc(-(double)y[i] / sqrt(2.0));
        const double lo = fabs(cdf - (double)i / STATS_N),
                     hi = fabs(cdf - (double)(i + 1) / STATS_N);
        if (lo > ks) ks = lo;
        if (hi > ks) ks = hi;
    }
    const double ks_bound = sqrt(-log(0.5e-6) / (2.0 * STATS_N));
    printf("normal: mean %.5f E[z^2] %.5f E[z^4] %.4f KS D %.5f (bound %.5f)\n", mean, m2, m4, ks,
           ks_bound);
    /* 5-sigma: sd(mean) = 1/sqrt(n), sd(z^2) = sqrt(2), sd(z^4) = sqrt(105 - 9) */
    CHECK(fabs(mean) < 5.0 / sqrt((double)STATS_N));
    CHECK(fabs(m2 - 1.0) < 5.0 * sqrt(2.0 / STATS_N));
    CHECK(fabs(m4 - 3.0) < 5.0 * sqrt(96.0 / STATS_N));
    CHECK(ks < ks_bound);
    rc = 0;
done:
    free(y);
    return rc;
}

/* Same seed twice gives the same bits; a 2-thread pool gives the serial bits (odd n, not a
 * multiple of 4 or of the split's grain); a shorter fill is a prefix; bad arguments are named. */
static int test_determinism(void) {
    enum { N = 100003 };
    const uint64_t seed = eng_test_seed();
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    eng_pool *pool = NULL;
    eng_err err = {0};
    int rc = 1;
    if (a == NULL || b == NULL || c == NULL) goto done;
    if (eng_pool_create(&pool, 2, &err) != ENG_OK) {
        fprintf(stderr, "eng_pool_create: %s\n", err.msg);
        goto done;
    }
    CHECK_EQ_I64(eng_pool_threads(pool), 2);
    eng_stream ps = {ENG_DEVICE_CPU, NULL, pool, NULL, NULL};
    eng_stream nopool = {ENG_DEVICE_CPU, NULL, NULL, NULL, NULL};
    for (int normal = 0; normal < 2; normal++) {
        typedef int (*fill_fn)(eng_stream *, float *, int64_t, uint64_t, uint64_t, eng_err *);
        const fill_fn fill = normal ? eng_cpu_fill_normal_f32 : eng_cpu_fill_uniform_f32;
        CHECK_OK(fill(NULL, a, N, seed, 3, &err), &err);
        CHECK_OK(fill(&nopool, b, N, seed, 3, &err), &err);
        CHECK(memcmp(a, b, N * sizeof *a) == 0);
        memset(c, 0xff, N * sizeof *c);
        CHECK_OK(fill(&ps, c, N, seed, 3, &err), &err);
        for (int64_t i = 0; i < N; i++) {
            if (memcmp(&a[i], &c[i], sizeof *a) != 0) {
                fprintf(stderr, "%s: serial and 2 threads differ at %" PRId64 ": %.9g vs %.9g\n",
                        normal ? "normal" : "uniform", i, (double)a[i], (double)c[i]);
                goto done;
            }
        }
        /* a prefix, starting mid-block in the uniform stream's blocks of 4 */
        CHECK_OK(fill(&ps, b, 7, seed, 3, &err), &err);
        CHECK(memcmp(a, b, 7 * sizeof *a) == 0);
        /* element i is eng_philox_*_at(seed, offset, i) */
        for (int64_t i = 0; i < N; i += 9973) {
            const float w = normal ? eng_philox_normal_at(seed, 3, (uint64_t)i)
                                   : eng_philox_uniform_at(seed, 3, (uint64_t)i);
            CHECK(memcmp(&w, &a[i], sizeof w) == 0);
        }
        /* n = 0 writes nothing; bad arguments are errors naming the function and n */
        b[0] = 42.0f;
        CHECK_OK(fill(&ps, b, 0, seed, 0, &err), &err);
        CHECK(b[0] == 42.0f);
        const char *fn = normal ? "eng_cpu_fill_normal_f32" : "eng_cpu_fill_uniform_f32";
        CHECK_EQ_I64(fill(NULL, b, -1, seed, 0, &err), ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, fn);
        CHECK_CONTAINS(err.msg, "n = -1");
        CHECK_EQ_I64(fill(NULL, NULL, 5, seed, 0, &err), ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, fn);
        CHECK_CONTAINS(err.msg, "y NULL");
        CHECK_CONTAINS(err.msg, "n = 5");
        CHECK_EQ_I64(fill(NULL, NULL, -3, seed, 0, NULL), ENG_E_INVALID_ARG); /* err may be NULL */
        CHECK_OK(fill(NULL, NULL, 0, seed, 0, &err), &err);                   /* nothing to write */
    }
    rc = 0;
done:
    eng_pool_destroy(pool);
    free(c);
    free(b);
    free(a);
    return rc;
}

/* |a - b| in units of the last place of b (libm's value). */
static double ulp_err(double a, double b) {
    const double ulp = nextafter(fabs(b), INFINITY) - fabs(b);
    return fabs(a - b) / ulp;
}

/* eng_philox_log and eng_philox_sin against libm: on the inputs the normal stream actually uses
 * ((w + 0.5) 2^-32 for log, that times 2 pi for sin, w on a stride over all 2^32) and on random
 * doubles over wider ranges. Both promise about 1 ulp. */
#define LOG_MAX_ULP 1.0
#define SIN_MAX_ULP 2.0
static int test_philox_math_accuracy(void) {
    const double two_pow32_inv = 2.3283064365386963e-10, two_pi = 6.283185307179586;
    double worst_log = 0, worst_sin = 0, at_log = 0, at_sin = 0;
    for (uint64_t w = 0; w < (1ull << 32); w += 40503) {
        const double u = (double)w * two_pow32_inv + two_pow32_inv * 0.5;
        const double el = ulp_err(eng_philox_log(u), log(u));
        const double es = ulp_err(eng_philox_sin(u * two_pi), sin(u * two_pi));
        if (el > worst_log) worst_log = el, at_log = u;
        if (es > worst_sin) worst_sin = es, at_sin = u * two_pi;
    }
    /* wider: log over 2^-1000 .. 2^1000, sin over [0, 8) (the documented domain) */
    uint64_t st = eng_test_seed() | 1u;
    for (int i = 0; i < 200000; i++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17; /* xorshift64 */
        const double m = 1.0 + (double)(st >> 11) * 0x1p-53;
        const double x = ldexp(m, (int)(st % 2001) - 1000);
        const double s = (double)(st >> 11) * 0x1p-53 * 8.0;
        const double el = ulp_err(eng_philox_log(x), log(x));
        const double es = ulp_err(eng_philox_sin(s), sin(s));
        if (el > worst_log) worst_log = el, at_log = x;
        if (es > worst_sin) worst_sin = es, at_sin = s;
    }
    printf("eng_philox_log: max %.2f ulp at %.17g; eng_philox_sin: max %.2f ulp at %.17g\n",
           worst_log, at_log, worst_sin, at_sin);
    CHECK(worst_log <= LOG_MAX_ULP);
    CHECK(worst_sin <= SIN_MAX_ULP);
    /* the f32 normals agree with a libm Box-Muller on a run of the stream */
    int64_t differ = 0;
    for (uint64_t i = 0; i < 200000; i++) {
        const uint32_t ctr[4] = {0, 0, (uint32_t)i, 0}, key[2] = {1234, 0};
        uint32_t wd[4];
        eng_philox4x32_10(wd, ctr, key);
        const double u = (double)wd[0] * two_pow32_inv + two_pow32_inv * 0.5;
        const double v = ((double)wd[1] * two_pow32_inv + two_pow32_inv * 0.5) * two_pi;
        const float ref = (float)(sqrt(-2.0 * log(u)) * sin(v));
        const int64_t d = ulp_dist_f32(eng_philox_normal_at(1234, 0, i), ref);
        CHECK(d <= 1);
        differ += d != 0;
    }
    printf("normal stream vs libm Box-Muller: %" PRId64 " of 200000 differ by 1 f32 ulp\n", differ);
    CHECK(differ < 20);
    return 0;
}

static const eng_test_case cases[] = {
    {"random123_kat", test_random123_kat},
    {"normal_matches_reference", test_normal_matches_reference},
    {"uniform_stats", test_uniform_stats},
    {"normal_stats", test_normal_stats},
    {"determinism", test_determinism},
    {"philox_math_accuracy", test_philox_math_accuracy},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
