/* test_cuda_ops.c: the CUDA backend against its CPU twins, through the public header only (plain
 * C, no CUDA headers): device discovery, allocator blocks, streams, the Philox fills and the adds,
 * bit for bit, with canary guards after every device output, and the error paths.
 * Every case returns 77 (SKIP) when there is no CUDA device. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_alloc.h"
#include "eng_ctx.h"
#include "eng_cuda.h"
#include "eng_dtype.h"
#include "eng_ops.h"
#include "eng_philox_math.h"
#include "eng_test.h"

/* Floats of canary after each device output; a kernel that writes past n changes them. */
enum { GUARD = 64 };
static const uint32_t CANARY = 0x7fc0beefu; /* a NaN pattern no kernel here produces */

/* ---- helpers -------------------------------------------------------------------------------- */

typedef struct gpu {
    eng_backend *b;
    eng_stream s;
    int have_stream;
} gpu;

/* Opens device 0 with one stream: 0, ENG_TEST_SKIP without a device, 1 on failure. */
static int gpu_open(gpu *g) {
    eng_err err = {0};
    int count = 0;
    char why[512];
    memset(g, 0, sizeof *g);
    const int rc = eng_cuda_device_count(&count, &err);
    if (rc != ENG_OK || count == 0) {
        fprintf(stderr, "SKIP: %s\n", rc != ENG_OK ? err.msg : eng_cuda_describe(why, sizeof why));
        return ENG_TEST_SKIP;
    }
    CHECK_OK(eng_cuda_backend_create(&g->b, 0, &err), &err);
    CHECK_OK(g->b->stream_create(g->b->impl, &g->s, 0, &err), &err);
    g->have_stream = 1;
    return 0;
}

static void gpu_close(gpu *g) {
    if (g->have_stream) g->b->stream_destroy(g->b->impl, &g->s);
    eng_cuda_backend_destroy(g->b);
    memset(g, 0, sizeof *g);
}

static int dev_take(gpu *g, void **p, size_t bytes) {
    eng_err err = {0};
    CHECK_OK(g->b->block_take(g->b->impl, p, bytes, &err), &err);
    CHECK(*p != NULL);
    return 0;
}

static int copy(gpu *g, void *dst, const void *src, size_t bytes, eng_copy_kind kind) {
    eng_err err = {0};
    CHECK_OK(g->b->copy(g->b->impl, &g->s, dst, src, bytes, kind, &err), &err);
    return 0;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void fill_canary(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        p[i] = bits_f32(CANARY);
}

/* The guard after an output of n elements of `elem` bytes, as raw u32 words. */
static int check_guard(const void *out, int64_t n, size_t elem, const char *what) {
    uint32_t w;
    const unsigned char *g = (const unsigned char *)out + (size_t)n * elem;
    for (int k = 0; k < GUARD; k++) {
        memcpy(&w, g + (size_t)k * 4, 4);
        if (w != CANARY) {
            fprintf(stderr, "%s n=%" PRId64 ": guard word %d after the output is 0x%08x\n", what, n,
                    k, w);
            return 1;
        }
    }
    return 0;
}

/* Bit-exact f32 comparison (NaN == NaN whatever the payload); prints the first mismatch. */
static int same_f32(const float *got, const float *want, int64_t n, const char *what) {
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        const int both_nan = got[i] != got[i] && want[i] != want[i];
        if (!both_nan && f32_bits(got[i]) != f32_bits(want[i])) {
            if (first < 0) first = i;
            bad++;
        }
    }
    if (bad != 0) {
        fprintf(stderr,
                "%s n=%" PRId64 " seed %" PRIu64 ": %" PRId64 " elements differ; first at %" PRId64
                ": cuda %.9g (0x%08x) cpu %.9g (0x%08x)\n",
                what, n, eng_test_seed(), bad, first, (double)got[first], f32_bits(got[first]),
                (double)want[first], f32_bits(want[first]));
        return 1;
    }
    return 0;
}

static int f16_is_nan(eng_f16 h) {
    return (h.bits & 0x7c00u) == 0x7c00u && (h.bits & 0x3ffu) != 0;
}

static int same_f16(const eng_f16 *got, const eng_f16 *want, int64_t n, const char *what) {
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        const int both_nan = f16_is_nan(got[i]) && f16_is_nan(want[i]);
        if (!both_nan && got[i].bits != want[i].bits) {
            if (first < 0) first = i;
            bad++;
        }
    }
    if (bad != 0) {
        fprintf(stderr,
                "%s n=%" PRId64 " seed %" PRIu64 ": %" PRId64 " elements differ; first at %" PRId64
                ": cuda 0x%04x (%.9g) cpu 0x%04x (%.9g)\n",
                what, n, eng_test_seed(), bad, first, got[first].bits,
                (double)eng_f16_to_f32(got[first]), want[first].bits,
                (double)eng_f16_to_f32(want[first]));
        return 1;
    }
    return 0;
}

/* ---- cases ---------------------------------------------------------------------------------- */

static int test_device_info(void) {
    eng_err err = {0};
    eng_device_info info;
    char desc[1024];
    int count = 0;
    const int rc = eng_cuda_device_count(&count, &err);
    eng_cuda_describe(desc, sizeof desc);
    fprintf(stderr, "%s\n", desc);
    if (rc != ENG_OK || count == 0) {
        /* The no-device path itself: not an error, and described with its reason. */
        if (rc == ENG_OK) CHECK_CONTAINS(desc, "no CUDA device (");
        fprintf(stderr, "SKIP: %s\n", rc != ENG_OK ? err.msg : desc);
        return ENG_TEST_SKIP;
    }
    CHECK(count > 0);
    CHECK_OK(eng_cuda_device_info(0, &info, &err), &err);
    CHECK(info.name[0] != '\0');
    CHECK_EQ_I64(info.index, 0);
    CHECK(info.cc_major >= 7);
    CHECK(info.cc_minor >= 0 && info.cc_minor <= 9);
    CHECK(info.sm_count > 0);
    CHECK(info.total_bytes > 0);
    CHECK(info.free_bytes > 0 && info.free_bytes <= info.total_bytes);
    CHECK(info.driver_version >= 1000 && info.runtime_version >= 1000);
    CHECK_CONTAINS(desc, "cuda:0 ");
    CHECK_CONTAINS(desc, info.name);
    CHECK_CONTAINS(desc, " SMs, ");
    CHECK_CONTAINS(desc, "driver ");
    {
        char sm[32];
        snprintf(sm, sizeof sm, "(sm_%d%d,", info.cc_major, info.cc_minor);
        CHECK_CONTAINS(desc, sm);
    }
    return 0;
}

static int test_alloc_blocks(void) {
    eng_err err = {0};
    gpu g;
    eng_alloc *a = NULL;
    eng_alloc_params p;
    eng_alloc_stats st;
    void *small = NULL, *big = NULL, *huge = NULL;
    const size_t mib = (size_t)1 << 20, big_bytes = 20 * mib;
    unsigned char *host = NULL, *back = NULL;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    eng_alloc_params_init(&p);
    p.device = ENG_DEVICE_CUDA;
    p.source.device_name = "cuda:0";
    p.source.user = g.b->impl;
    p.source.take = g.b->block_take;
    p.source.give = g.b->block_give;
    p.budget_bytes = 48 * mib;
    p.block_bytes = 16 * mib;
    CHECK_OK(eng_alloc_create(&a, &p, &err), &err);
    CHECK_OK(eng_alloc_take(a, &small, mib, ENG_LIFE_WEIGHTS, "test.small", &err), &err);
    CHECK_OK(eng_alloc_take(a, &big, big_bytes, ENG_LIFE_STATE, "test.big", &err), &err);
    CHECK(small != NULL && big != NULL && small != big);
    CHECK((uintptr_t)small % 256 == 0 && (uintptr_t)big % 256 == 0);
    eng_alloc_get_stats(a, &st);
    CHECK(st.reserved >= 21 * mib && st.reserved <= 48 * mib);
    CHECK_EQ_I64(st.live_allocations, 2);

    /* The blocks are device memory: a round trip through them keeps every byte. */
    host = malloc(big_bytes);
    back = malloc(big_bytes);
    CHECK(host != NULL && back != NULL);
    for (size_t i = 0; i < big_bytes; i++)
        host[i] = (unsigned char)(i * 2654435761u >> 13);
    memset(back, 0, big_bytes);
    if (copy(&g, big, host, big_bytes, ENG_COPY_H2D) != 0) return 1;
    if (copy(&g, small, big, mib, ENG_COPY_D2D) != 0) return 1;
    if (copy(&g, back, small, mib, ENG_COPY_D2H) != 0) return 1;
    CHECK(memcmp(back, host, mib) == 0);
    if (copy(&g, back, big, big_bytes, ENG_COPY_D2H) != 0) return 1;
    CHECK(memcmp(back, host, big_bytes) == 0);

    /* Over the budget: ENG_E_OOM, naming the device and the owner. */
    CHECK(eng_alloc_take(a, &huge, 64 * mib, ENG_LIFE_STATE, "test.huge", &err) == ENG_E_OOM);
    CHECK(huge == NULL);
    CHECK_CONTAINS(err.msg, "cuda:0");
    CHECK_CONTAINS(err.msg, "test.huge");

    eng_alloc_give(a, small);
    eng_alloc_give(a, big);
    eng_alloc_get_stats(a, &st);
    CHECK_EQ_I64(st.live_allocations, 0);
    eng_alloc_destroy(a);
    free(host);
    free(back);
    gpu_close(&g);
    return 0;
}

static int test_stream_per_job(void) {
    eng_err err = {0};
    gpu g;
    eng_stream s[4];
    const int prio[4] = {0, 1, 1000, -1000}; /* out-of-range priorities are clamped, not errors */
    float *d[2] = {NULL, NULL}, *h = NULL;
    const int64_t n = 1 << 20;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    for (int k = 0; k < 4; k++) {
        CHECK_OK(g.b->stream_create(g.b->impl, &s[k], prio[k], &err), &err);
        CHECK(s[k].device == ENG_DEVICE_CUDA && s[k].handle != NULL);
        for (int j = 0; j < k; j++)
            CHECK(s[k].handle != s[j].handle);
    }
    /* One job's work on each of two streams at once, then each synchronized on its own. */
    for (int k = 0; k < 2; k++) {
        void *p = NULL;
        if (dev_take(&g, &p, (size_t)n * sizeof(float)) != 0) return 1;
        d[k] = p;
        CHECK_OK(eng_cuda_fill_uniform_f32(&s[k], d[k], n, 42, (uint64_t)k, &err), &err);
    }
    for (int k = 0; k < 2; k++)
        CHECK_OK(g.b->stream_sync(g.b->impl, &s[k], &err), &err);
    h = malloc((size_t)n * sizeof(float));
    CHECK(h != NULL);
    for (int k = 0; k < 2; k++) {
        CHECK_OK(
            g.b->copy(g.b->impl, &s[k], h, d[k], (size_t)n * sizeof(float), ENG_COPY_D2H, &err),
            &err);
        for (int64_t i = 0; i < n; i += 4099) {
            CHECK(f32_bits(h[i]) == f32_bits(eng_philox_uniform_at(42, (uint64_t)k, (uint64_t)i)));
        }
    }
    for (int k = 0; k < 4; k++) {
        g.b->stream_destroy(g.b->impl, &s[k]);
        CHECK(s[k].handle == NULL);
        g.b->stream_destroy(g.b->impl, &s[k]); /* a destroyed stream: no-op */
    }
    for (int k = 0; k < 2; k++)
        g.b->block_give(g.b->impl, d[k]);
    free(h);
    gpu_close(&g);
    return 0;
}

static int test_philox_vs_cpu(void) {
    eng_err err = {0};
    gpu g;
    const int64_t sizes[3] = {1, 3, 1000003};
    const uint64_t seeds[2] = {0, (1ull << 40) + 5};
    const uint64_t offsets[2] = {0, 7};
    const int64_t nmax = 1000003;
    float *d = NULL, *got = NULL, *want = NULL;
    eng_stream cpu = {ENG_DEVICE_CPU, NULL, NULL, NULL, NULL};
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    void *dv = NULL;
    if (dev_take(&g, &dv, (size_t)(nmax + GUARD) * sizeof(float)) != 0) return 1;
    d = dv;
    got = malloc((size_t)(nmax + GUARD) * sizeof(float));
    want = malloc((size_t)nmax * sizeof(float));
    CHECK(got != NULL && want != NULL);
    for (int normal = 0; normal < 2; normal++) {
        const char *op = normal ? "fill_normal_f32" : "fill_uniform_f32";
        for (int si = 0; si < 2; si++) {
            for (int oi = 0; oi < 2; oi++) {
                for (int ni = 0; ni < 3; ni++) {
                    const int64_t n = sizes[ni];
                    const size_t out_bytes = (size_t)(n + GUARD) * sizeof(float);
                    fill_canary(got, n + GUARD);
                    if (copy(&g, d, got, out_bytes, ENG_COPY_H2D) != 0) return 1;
                    if (normal) {
                        CHECK_OK(eng_cuda_fill_normal_f32(&g.s, d, n, seeds[si], offsets[oi], &err),
                                 &err);
                        CHECK_OK(
                            eng_cpu_fill_normal_f32(&cpu, want, n, seeds[si], offsets[oi], &err),
                            &err);
                    } else {
                        CHECK_OK(
                            eng_cuda_fill_uniform_f32(&g.s, d, n, seeds[si], offsets[oi], &err),
                            &err);
                        CHECK_OK(
                            eng_cpu_fill_uniform_f32(&cpu, want, n, seeds[si], offsets[oi], &err),
                            &err);
                    }
                    if (copy(&g, got, d, out_bytes, ENG_COPY_D2H) != 0) return 1;
                    if (same_f32(got, want, n, op) != 0 || check_guard(got, n, 4, op) != 0) {
                        fprintf(stderr, "  (%s seed %" PRIu64 " offset %" PRIu64 ")\n", op,
                                seeds[si], offsets[oi]);
                        return 1;
                    }
                    /* Both sides could agree on garbage: spot-check the definition and the
                     * moments (n = 1000003: standard errors 0.0003 and 0.001). */
                    const float ref0 = normal ? eng_philox_normal_at(seeds[si], offsets[oi], 0)
                                              : eng_philox_uniform_at(seeds[si], offsets[oi], 0);
                    CHECK(f32_bits(got[0]) == f32_bits(ref0));
                    if (n == nmax) {
                        double sum = 0, sum2 = 0;
                        for (int64_t i = 0; i < n; i++) {
                            sum += got[i];
                            sum2 += (double)got[i] * got[i];
                            if (!normal) CHECK(got[i] >= 0.0f && got[i] < 1.0f);
                        }
                        const double mean = sum / (double)n, var = sum2 / (double)n - mean * mean;
                        if (normal) {
                            CHECK(fabs(mean) < 0.005 && fabs(var - 1.0) < 0.01);
                        } else {
                            CHECK(fabs(mean - 0.5) < 0.002 && fabs(var - 1.0 / 12.0) < 0.002);
                        }
                    }
                }
            }
        }
    }
    g.b->block_give(g.b->impl, d);
    free(got);
    free(want);
    gpu_close(&g);
    return 0;
}

/* Inputs in [-scale, scale) from the CPU Philox twin (fast, and the same on every machine). */
static int random_f32(float *x, int64_t n, uint64_t offset, float scale) {
    eng_err err = {0};
    CHECK_OK(eng_cpu_fill_uniform_f32(NULL, x, n, eng_test_seed(), offset, &err), &err);
    for (int64_t i = 0; i < n; i++)
        x[i] = (x[i] * 2.0f - 1.0f) * scale;
    return 0;
}

/* Awkward values at the front when there is room: infinities, NaN, overflow of f16 (65504 +
 * 65504), f32/f16 subnormals, signed zeros, ties at 1 + 2^-11 and 1 + 3 * 2^-11. */
enum { N_SPECIALS = 12 };
static void add_specials(float *a, float *b, int64_t n) {
    const float inf = bits_f32(0x7f800000u), nan = bits_f32(0x7fc00001u);
    const float sa[N_SPECIALS] = {inf,   -inf,  nan,  1.0f, 65504.0f, 1e-40f,
                                  6e-8f, -0.0f, 0.0f, 1.0f, 1.0f,     inf};
    const float sb[N_SPECIALS] = {1.0f,     2.0f,           3.0f,           nan,
                                  65504.0f, 1e-40f,         6e-8f,          -0.0f,
                                  -0.0f,    0.00048828125f, 0.00146484375f, -inf};
    for (int i = 0; i < N_SPECIALS && i < n; i++) {
        a[i] = sa[i];
        b[i] = sb[i];
    }
}

static int test_add_vs_cpu(void) {
    eng_err err = {0};
    gpu g;
    const int64_t sizes[3] = {1, 1001, 65535LL * 256 + 77}; /* > 65535 blocks of 256 */
    const int64_t nmax = sizes[2];
    const size_t bytes = (size_t)(nmax + GUARD) * sizeof(float);
    float *a = NULL, *b = NULL, *want = NULL, *got = NULL;
    void *da = NULL, *db = NULL, *dy = NULL;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    a = malloc(bytes);
    b = malloc(bytes);
    want = malloc(bytes);
    got = malloc(bytes);
    CHECK(a != NULL && b != NULL && want != NULL && got != NULL);
    if (dev_take(&g, &da, bytes) != 0 || dev_take(&g, &db, bytes) != 0 ||
        dev_take(&g, &dy, bytes) != 0) {
        return 1;
    }
    for (int ni = 0; ni < 3; ni++) {
        const int64_t n = sizes[ni];
        /* f32 */
        if (random_f32(a, n, 1, 100.0f) != 0 || random_f32(b, n, 2, 100.0f) != 0) return 1;
        add_specials(a, b, n);
        if (copy(&g, da, a, (size_t)n * 4, ENG_COPY_H2D) != 0) return 1;
        if (copy(&g, db, b, (size_t)n * 4, ENG_COPY_H2D) != 0) return 1;
        fill_canary(got, n + GUARD);
        if (copy(&g, dy, got, (size_t)(n + GUARD) * 4, ENG_COPY_H2D) != 0) return 1;
        CHECK_OK(eng_cuda_add_f32(&g.s, dy, da, db, n, &err), &err);
        CHECK_OK(eng_cpu_add_f32(NULL, want, a, b, n, &err), &err);
        if (copy(&g, got, dy, (size_t)(n + GUARD) * 4, ENG_COPY_D2H) != 0) return 1;
        if (same_f32(got, want, n, "add_f32") != 0) return 1;
        if (check_guard(got, n, 4, "add_f32") != 0) return 1;
        /* in place: y aliases a */
        CHECK_OK(eng_cuda_add_f32(&g.s, da, da, db, n, &err), &err);
        if (copy(&g, got, da, (size_t)n * 4, ENG_COPY_D2H) != 0) return 1;
        if (same_f32(got, want, n, "add_f32 in place") != 0) return 1;

        /* f16: fresh numbers rounded to f16 by the engine's conversion; some sums overflow */
        eng_f16 *ha = (eng_f16 *)a, *hb = (eng_f16 *)b, *hw = (eng_f16 *)want, *hg = (eng_f16 *)got;
        if (random_f32(want, n, 3, 40000.0f) != 0) return 1;
        eng_convert_f32_to_f16(ha, want, n);
        if (random_f32(want, n, 4, 40000.0f) != 0) return 1;
        eng_convert_f32_to_f16(hb, want, n);
        {
            float sa[N_SPECIALS], sb[N_SPECIALS];
            add_specials(sa, sb, N_SPECIALS);
            for (int64_t i = 0; i < n && i < N_SPECIALS; i++) {
                ha[i] = eng_f32_to_f16(sa[i]);
                hb[i] = eng_f32_to_f16(sb[i]);
            }
        }
        if (copy(&g, da, ha, (size_t)n * 2, ENG_COPY_H2D) != 0) return 1;
        if (copy(&g, db, hb, (size_t)n * 2, ENG_COPY_H2D) != 0) return 1;
        {
            /* n halves of junk, then the canary words from byte 2n */
            unsigned char *gb = (unsigned char *)got;
            memset(gb, 0xff, (size_t)n * 2);
            for (int k = 0; k < GUARD; k++)
                memcpy(gb + (size_t)n * 2 + (size_t)k * 4, &CANARY, 4);
            if (copy(&g, dy, got, (size_t)n * 2 + GUARD * 4, ENG_COPY_H2D) != 0) return 1;
        }
        CHECK_OK(eng_cuda_add_f16(&g.s, (eng_f16 *)dy, (const eng_f16 *)da, (const eng_f16 *)db, n,
                                  &err),
                 &err);
        CHECK_OK(eng_cpu_add_f16(NULL, hw, ha, hb, n, &err), &err);
        memset(got, 0, (size_t)n * 2 + GUARD * 4);
        if (copy(&g, got, dy, (size_t)n * 2 + GUARD * 4, ENG_COPY_D2H) != 0) return 1;
        if (same_f16(hg, hw, n, "add_f16") != 0) return 1;
        if (check_guard(got, n, 2, "add_f16") != 0) return 1;
        if (n >= N_SPECIALS) {                /* the specials came out as IEEE says */
            CHECK_EQ_I64(hg[0].bits, 0x7c00); /* inf + 1 */
            CHECK_EQ_I64(hg[1].bits, 0xfc00); /* -inf + 2 */
            CHECK(f16_is_nan(hg[2]) && f16_is_nan(hg[3]));
            CHECK_EQ_I64(hg[4].bits, 0x7c00);  /* 65504 + 65504 overflows */
            CHECK_EQ_I64(hg[7].bits, 0x8000);  /* -0 + -0 */
            CHECK_EQ_I64(hg[8].bits, 0x0000);  /* 0 + -0 */
            CHECK_EQ_I64(hg[9].bits, 0x3c00);  /* 1 + 2^-11: tie to even, 1 */
            CHECK_EQ_I64(hg[10].bits, 0x3c02); /* 1 + 3 * 2^-11: tie to even, 1 + 2^-9 */
            CHECK(f16_is_nan(hg[11]));         /* inf - inf */
        }
        /* in place: y aliases b */
        CHECK_OK(eng_cuda_add_f16(&g.s, (eng_f16 *)db, (const eng_f16 *)da, (const eng_f16 *)db, n,
                                  &err),
                 &err);
        if (copy(&g, hg, db, (size_t)n * 2, ENG_COPY_D2H) != 0) return 1;
        if (same_f16(hg, hw, n, "add_f16 in place") != 0) return 1;
    }
    g.b->block_give(g.b->impl, da);
    g.b->block_give(g.b->impl, db);
    g.b->block_give(g.b->impl, dy);
    free(a);
    free(b);
    free(want);
    free(got);
    gpu_close(&g);
    return 0;
}

static int test_errors(void) {
    eng_err err = {0};
    gpu g;
    eng_backend *other = NULL;
    eng_device_info info;
    eng_stream cpu = {ENG_DEVICE_CPU, NULL, NULL, NULL, NULL};
    void *d = NULL, *huge = NULL;
    float h[4] = {0};
    int count = 0;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    if (dev_take(&g, &d, 4096) != 0) return 1;

    /* launchers: NULL buffers, negative n, a stream of another device */
    CHECK(eng_cuda_add_f32(&g.s, NULL, d, d, 5, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eng_cuda_add_f32: y is NULL with n = 5");
    CHECK(eng_cuda_add_f16(&g.s, d, d, NULL, 5, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eng_cuda_add_f16: b is NULL");
    CHECK(eng_cuda_fill_normal_f32(&g.s, d, -1, 0, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eng_cuda_fill_normal_f32: n = -1");
    CHECK(eng_cuda_fill_uniform_f32(&g.s, NULL, 3, 0, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "y is NULL");
    CHECK(eng_cuda_add_f32(&cpu, d, d, d, 4, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "cpu stream");
    /* n == 0 is nothing to do, whatever the pointers */
    CHECK_OK(eng_cuda_fill_uniform_f32(&g.s, NULL, 0, 0, 0, &err), &err);
    CHECK_OK(eng_cuda_add_f32(&g.s, NULL, NULL, NULL, 0, &err), &err);

    /* the device refuses a block larger than its memory: ENG_E_OOM naming it */
    CHECK(g.b->block_take(g.b->impl, &huge, (size_t)1 << 50, &err) == ENG_E_OOM);
    CHECK(huge == NULL);
    CHECK_CONTAINS(err.msg, "cuda:0 refused 1125899906842624 bytes");
    CHECK_CONTAINS(err.msg, "free ");

    /* copies */
    CHECK(g.b->copy(g.b->impl, &g.s, NULL, h, 16, ENG_COPY_H2D, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "dst NULL");
    CHECK(g.b->copy(g.b->impl, &g.s, h, d, 16, ENG_COPY_COUNT, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "copy kind");

    /* devices that do not exist */
    CHECK_OK(eng_cuda_device_count(&count, &err), &err);
    CHECK(eng_cuda_device_info(count, &info, &err) == ENG_E_INVALID_ARG);
    {
        char want[32];
        snprintf(want, sizeof want, "cuda:%d does not exist", count);
        CHECK_CONTAINS(err.msg, want);
    }
    CHECK(eng_cuda_device_info(-1, &info, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "cuda:-1 does not exist");
    CHECK(eng_cuda_backend_create(&other, 999, &err) == ENG_E_INVALID_ARG);
    CHECK(other == NULL);
    CHECK_CONTAINS(err.msg, "cuda:999");

    /* none of that hurt the device: a launch and a copy still work */
    CHECK_OK(eng_cuda_fill_uniform_f32(&g.s, d, 4, 9, 0, &err), &err);
    if (copy(&g, h, d, sizeof h, ENG_COPY_D2H) != 0) return 1;
    for (int i = 0; i < 4; i++)
        CHECK(f32_bits(h[i]) == f32_bits(eng_philox_uniform_at(9, 0, (uint64_t)i)));
    g.b->block_give(g.b->impl, d);
    gpu_close(&g);
    return 0;
}

static int test_ctx_attach(void) {
    eng_err err = {0};
    eng_ctx_params p;
    eng_ctx *ctx = NULL;
    eng_alloc *a = NULL;
    void *x = NULL;
    int count = 0;
    if (eng_cuda_device_count(&count, &err) != ENG_OK || count == 0) {
        fprintf(stderr, "SKIP: no CUDA device\n");
        return ENG_TEST_SKIP;
    }
    eng_ctx_params_init(&p);
    p.threads = 2;
    CHECK_OK(eng_ctx_create(&ctx, &p, &err), &err);
    CHECK(eng_cuda_attach(ctx, 999, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "cuda:999");
    CHECK_OK(eng_cuda_attach(ctx, 0, (uint64_t)512 << 20, &err), &err);
    const eng_backend *b = eng_ctx_backend(ctx, ENG_DEVICE_CUDA);
    CHECK(b != NULL && b->device == ENG_DEVICE_CUDA && b->info.index == 0);
    CHECK(b->ops.add_f32 == eng_cuda_add_f32 && b->ops.fill_normal_f32 == eng_cuda_fill_normal_f32);
    eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CUDA);
    CHECK(s != NULL && s->device == ENG_DEVICE_CUDA && s->handle != NULL);
    a = eng_ctx_alloc(ctx, ENG_DEVICE_CUDA);
    CHECK(a != NULL);
    CHECK_OK(eng_alloc_take(a, &x, (size_t)1 << 20, ENG_LIFE_STATE, "test.x", &err), &err);
    CHECK_OK(eng_cuda_fill_normal_f32(s, x, 1 << 18, 1, 2, &err), &err);
    CHECK_OK(b->stream_sync(b->impl, s, &err), &err);
    eng_alloc_give(a, x);
    /* a second CUDA backend is refused (and the context frees it) */
    CHECK(eng_cuda_attach(ctx, 0, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "attached already");
    eng_ctx_destroy(ctx);
    return 0;
}

static const eng_test_case cases[] = {
    {"device.info", test_device_info},       {"alloc.blocks", test_alloc_blocks},
    {"stream.per_job", test_stream_per_job}, {"philox.vs_cpu", test_philox_vs_cpu},
    {"add.vs_cpu", test_add_vs_cpu},         {"errors", test_errors},
    {"ctx.attach", test_ctx_attach},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
