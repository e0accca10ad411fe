/* test_cuda_nn_attention.c: eng_cuda_attention against its CPU twin eng_cpu_attention, through
 * the public headers only (plain C): f32 (the simple kernel), f16 and bf16 (the flash kernel on
 * tensor cores, head dims 40, 64, 80, 128, 160 and small ones padded to 48), the fallbacks of
 * f16/bf16 (head dims that are not a multiple of 8 or above 160, misaligned pointers, odd row
 * strides), odd lengths, causal masks with Lq == Lk, Lq < Lk and Lq > Lk, SD's shapes (4096
 * queries x 77 text tokens, 1024 x 1024 self-attention, CLIP's causal 77 x 77), views of a fused
 * QKV projection and an output written into a slice of a wider buffer, with canary bytes around
 * and between every output, and the launcher's errors. Every case exits 77 (SKIP) without a
 * device.
 *
 * Inputs are rounded to the tested dtype first, so the twin (f32) sees exactly what the GPU
 * sees; the differences left are the GPU's: for f16/bf16, P rounded to the dtype before P V and
 * the output rounded once, each at most one half-ulp relative, so |gpu - cpu| <= 2^-11 (f16) or
 * 2^-8 (bf16) times (max |v| + |o|) with |v| <= 1: within the conventions' f16 (1e-3 + 2e-3 |o|)
 * and bf16 (1e-2 + 1.6e-2 |o|) element bounds, and NMSE 1e-5 / 1e-4. f32: both sides f32 with
 * different summation orders (~1e-7); atol 3e-5 leaves room for Lk = 4096. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_alloc.h"
#include "eng_ctx.h"
#include "eng_cuda.h"
#include "eng_dtype.h"
#include "eng_ops.h"
#include "eng_sched.h"
#include "eng_tensor.h"
#include "eng_test.h"
#include "eng_test_compare.h"

enum { GUARD_BYTES = 256 };
#define CANARY_BYTE 0xA5

/* ---- device helpers ------------------------------------------------------------------------- */

typedef struct gpu {
    eng_backend *b;
    eng_stream s;
    int have_stream;
    eng_pool *pool; /* for the CPU twin */
    eng_stream cpu;
} gpu;

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
    CHECK_OK(eng_pool_create(&g->pool, 0, &err), &err);
    g->cpu.device = ENG_DEVICE_CPU;
    g->cpu.pool = g->pool;
    fprintf(stderr, "%s\n", eng_cuda_describe(why, sizeof why));
    return 0;
}

static void gpu_close(gpu *g) {
    if (g->have_stream) g->b->stream_destroy(g->b->impl, &g->s);
    eng_cuda_backend_destroy(g->b);
    eng_pool_destroy(g->pool);
    memset(g, 0, sizeof *g);
}

static int copy(gpu *g, void *dst, const void *src, size_t bytes, eng_copy_kind kind) {
    eng_err err = {0};
    CHECK_OK(g->b->copy(g->b->impl, &g->s, dst, src, bytes, kind, &err), &err);
    return 0;
}

/* f32 -> dtype storage and back (f32: a copy). */
static void to_dtype(void *dst, const float *src, int64_t n, eng_dtype dt) {
    if (dt == ENG_DTYPE_F16) {
        eng_convert_f32_to_f16(dst, src, n);
    } else if (dt == ENG_DTYPE_BF16) {
        eng_convert_f32_to_bf16(dst, src, n);
    } else {
        memcpy(dst, src, (size_t)n * sizeof(float));
    }
}

static float elem_f32(const void *p, int64_t i, eng_dtype dt) {
    if (dt == ENG_DTYPE_F16) return eng_f16_to_f32(((const eng_f16 *)p)[i]);
    if (dt == ENG_DTYPE_BF16) return eng_bf16_to_f32(((const eng_bf16 *)p)[i]);
    return ((const float *)p)[i];
}

/* x rounded to dtype in place, so the twin sees what the GPU sees. */
static void round_to(float *x, int64_t n, eng_dtype dt) {
    if (dt == ENG_DTYPE_F32) return;
    for (int64_t i = 0; i < n; i++) {
        x[i] = dt == ENG_DTYPE_F16 ? eng_f16_to_f32(eng_f32_to_f16(x[i]))
                                   : eng_bf16_to_f32(eng_f32_to_bf16(x[i]));
    }
}

/* ---- one comparison ------------------------------------------------------------------------- */

typedef struct att_shape {
    int64_t b, h, lq, lk, d;
    int causal;
} att_shape;

/* How the device tensors are laid out:
 *   CONTIG      q, k, v, o each contiguous (B, L, H, D)
 *   FUSED       q, k, v heads [0, H), [H, 2H), [2H, 3H) of one (B, L, 3H, D) buffer (Lq == Lk);
 *               o heads [1, H + 1) of a (B, Lq, H + 1, D) buffer (head 0 must stay untouched)
 *   MISALIGNED  each tensor one element past a 256-byte boundary (not 16-byte aligned)
 *   ODD_STRIDE  rows of H D + 1 elements (the l stride is odd) */
typedef enum layout { CONTIG, FUSED, MISALIGNED, ODD_STRIDE } layout;
static const char *const layout_names[] = {"contiguous", "fused qkv", "misaligned", "odd stride"};

typedef struct dev_tensor {
    int64_t off;       /* element offset of (0, 0, 0, 0) in its buffer */
    int64_t stride[3]; /* b, l, h */
    int64_t elems;     /* buffer size in elements */
} dev_tensor;

static dev_tensor tensor_layout(layout lay, const att_shape *sh, int64_t len, int which) {
    dev_tensor t;
    const int64_t h = sh->h, d = sh->d;
    int64_t row = h * d;
    t.off = 0;
    if (lay == FUSED) {
        row = which == 3 ? (h + 1) * d : 3 * h * d; /* which: 0 q, 1 k, 2 v, 3 o */
        t.off = which == 3 ? d : which * h * d;
    } else if (lay == ODD_STRIDE) {
        row = h * d + 1;
    } else if (lay == MISALIGNED) {
        t.off = 1;
    }
    t.stride[0] = len * row;
    t.stride[1] = row;
    t.stride[2] = d;
    t.elems = t.off + sh->b * len * row;
    return t;
}

static int64_t pos_of(const dev_tensor *t, int64_t b, int64_t l, int64_t h, int64_t c) {
    return t->off + b * t->stride[0] + l * t->stride[1] + h * t->stride[2] + c;
}

/* Runs one shape, dtype and layout on both sides and compares. seed_stream: Philox stream. */
static int run_one(gpu *g, const att_shape *sh, eng_dtype dt, layout lay, uint64_t seed_stream) {
    eng_err err = {0};
    const size_t es = eng_dtype_size(dt);
    const int64_t nq = sh->b * sh->lq * sh->h * sh->d, nk = sh->b * sh->lk * sh->h * sh->d;
    const float scale = 1.0f / sqrtf((float)sh->d);
    dev_tensor lt[4];
    unsigned char *hbuf[4] = {NULL, NULL, NULL, NULL};
    void *dbuf[4] = {NULL, NULL, NULL, NULL};
    float *x[3], *want = NULL, *got = NULL;
    char what[200];
    int nbuf = lay == FUSED ? 2 : 4, fails = 0;
    snprintf(what, sizeof what,
             "attention %s %s B=%" PRId64 " H=%" PRId64 " Lq=%" PRId64 " Lk=%" PRId64 " D=%" PRId64
             " causal=%d",
             eng_dtype_name(dt), layout_names[lay], sh->b, sh->h, sh->lq, sh->lk, sh->d,
             sh->causal);
    if (lay == FUSED) CHECK(sh->lq == sh->lk);

    /* the logical inputs, rounded to dt, and the twin's output */
    for (int i = 0; i < 3; i++) {
        const int64_t n = i == 0 ? nq : nk;
        x[i] = malloc((size_t)n * sizeof(float));
        CHECK(x[i] != NULL);
        eng_test_fill(x[i], n, seed_stream + (uint64_t)i, -1.0f, 1.0f);
        round_to(x[i], n, dt);
    }
    want = malloc((size_t)nq * sizeof(float));
    got = malloc((size_t)nq * sizeof(float));
    CHECK(want != NULL && got != NULL);
    {
        eng_attention_args a;
        memset(&a, 0, sizeof a);
        a.dtype = ENG_DTYPE_F32;
        a.o = want;
        a.q = x[0];
        a.k = x[1];
        a.v = x[2];
        a.batch = sh->b;
        a.heads = sh->h;
        a.lq = sh->lq;
        a.lk = sh->lk;
        a.d = sh->d;
        a.q_stride[0] = a.o_stride[0] = sh->lq * sh->h * sh->d;
        a.k_stride[0] = a.v_stride[0] = sh->lk * sh->h * sh->d;
        a.q_stride[1] = a.k_stride[1] = a.v_stride[1] = a.o_stride[1] = sh->h * sh->d;
        a.q_stride[2] = a.k_stride[2] = a.v_stride[2] = a.o_stride[2] = sh->d;
        a.scale = scale;
        a.causal = sh->causal;
        CHECK_OK(eng_cpu_attention(&g->cpu, &a, &err), &err);
    }

    /* device buffers: 0 q (FUSED: q, k, v), 1 k, 2 v, 3 o (FUSED: buffer 1 is o) */
    for (int w = 0; w < 4; w++)
        lt[w] = tensor_layout(lay, sh, w == 0 || w == 3 ? sh->lq : sh->lk, w);
    for (int i = 0; i < nbuf; i++) {
        const int w = lay == FUSED ? (i == 0 ? 0 : 3) : i;
        const size_t bytes = (size_t)lt[w].elems * es + GUARD_BYTES;
        hbuf[i] = malloc(bytes);
        CHECK(hbuf[i] != NULL);
        memset(hbuf[i], CANARY_BYTE, bytes);
        CHECK_OK(g->b->block_take(g->b->impl, &dbuf[i], bytes, &err), &err);
    }
    /* scatter q, k, v into their buffers in dt */
    for (int w = 0; w < 3; w++) {
        unsigned char *buf = hbuf[lay == FUSED ? 0 : w];
        const int64_t len = w == 0 ? sh->lq : sh->lk;
        for (int64_t b = 0; b < sh->b; b++)
            for (int64_t l = 0; l < len; l++)
                for (int64_t h = 0; h < sh->h; h++) {
                    const float *src = x[w] + ((b * len + l) * sh->h + h) * sh->d;
                    to_dtype(buf + (size_t)pos_of(&lt[w], b, l, h, 0) * es, src, sh->d, dt);
                }
    }
    for (int i = 0; i < nbuf; i++) {
        const int w = lay == FUSED ? (i == 0 ? 0 : 3) : i;
        if (copy(g, dbuf[i], hbuf[i], (size_t)lt[w].elems * es + GUARD_BYTES, ENG_COPY_H2D))
            return 1;
    }
    {
        eng_attention_args a;
        unsigned char *dq = dbuf[0], *dk = lay == FUSED ? dbuf[0] : dbuf[1];
        unsigned char *dv = lay == FUSED ? dbuf[0] : dbuf[2], *dout = dbuf[lay == FUSED ? 1 : 3];
        memset(&a, 0, sizeof a);
        a.dtype = dt;
        a.q = dq + (size_t)lt[0].off * es;
        a.k = dk + (size_t)lt[1].off * es;
        a.v = dv + (size_t)lt[2].off * es;
        a.o = dout + (size_t)lt[3].off * es;
        a.batch = sh->b;
        a.heads = sh->h;
        a.lq = sh->lq;
        a.lk = sh->lk;
        a.d = sh->d;
        for (int i = 0; i < 3; i++) {
            a.q_stride[i] = lt[0].stride[i];
            a.k_stride[i] = lt[1].stride[i];
            a.v_stride[i] = lt[2].stride[i];
            a.o_stride[i] = lt[3].stride[i];
        }
        a.scale = scale;
        a.causal = sh->causal;
        CHECK_OK(eng_cuda_attention(&g->s, &a, &err), &err);
    }
    /* back: the output buffer with its guard; every byte outside o's elements is canary */
    {
        const int oi = lay == FUSED ? 1 : 3;
        const size_t obytes = (size_t)lt[3].elems * es + GUARD_BYTES;
        unsigned char *ob = hbuf[oi];
        unsigned char *is_o = calloc((size_t)lt[3].elems, 1);
        CHECK(is_o != NULL);
        memset(ob, 0, obytes);
        if (copy(g, ob, dbuf[oi], obytes, ENG_COPY_D2H) != 0) return 1;
        for (int64_t b = 0; b < sh->b; b++)
            for (int64_t l = 0; l < sh->lq; l++)
                for (int64_t h = 0; h < sh->h; h++)
                    for (int64_t c = 0; c < sh->d; c++) {
                        const int64_t p = pos_of(&lt[3], b, l, h, c);
                        is_o[p] = 1;
                        got[((b * sh->lq + l) * sh->h + h) * sh->d + c] = elem_f32(ob, p, dt);
                    }
        for (size_t i = 0; i < obytes; i++) {
            const int64_t e = (int64_t)(i / es);
            if (e < lt[3].elems && is_o[e]) continue;
            if (ob[i] != CANARY_BYTE) {
                fprintf(stderr,
                        "%s: byte %zu of the output buffer (element %" PRId64
                        ", not part of o) was overwritten\n",
                        what, i, e);
                fails++;
                break;
            }
        }
        free(is_o);
    }
    {
        const double atol = dt == ENG_DTYPE_F16 ? 1e-3 : dt == ENG_DTYPE_BF16 ? 1e-2 : 3e-5;
        const double rtol = dt == ENG_DTYPE_F16 ? 2e-3 : dt == ENG_DTYPE_BF16 ? 1.6e-2 : 1e-4;
        const double nmse = dt == ENG_DTYPE_F16 ? 1e-5 : dt == ENG_DTYPE_BF16 ? 1e-4 : 1e-7;
        if (!eng_test_allclose(what, got, want, nq, atol, rtol)) fails++;
        if (!eng_test_nmse(what, got, want, nq, nmse)) fails++;
    }
    for (int i = 0; i < nbuf; i++) {
        g->b->block_give(g->b->impl, dbuf[i]);
        free(hbuf[i]);
    }
    for (int i = 0; i < 3; i++)
        free(x[i]);
    free(want);
    free(got);
    return fails != 0;
}

/* Shapes every dtype runs: the five SD/SDXL head dims, small ones, odd lengths (1, 7, 77, 129,
 * 200: not multiples of the 64/128-query or 64-key tiles), several heads and batches, causal
 * with Lq == Lk, Lq < Lk and Lq > Lk (queries with no visible key must give exactly 0). */
static const att_shape common_shapes[] = {
    {1, 1, 1, 1, 64, 0},     {2, 3, 7, 77, 40, 0},   {1, 2, 77, 77, 64, 1},
    {1, 1, 129, 129, 80, 0}, {1, 2, 129, 7, 80, 1},  {1, 1, 200, 129, 128, 1},
    {2, 1, 65, 200, 160, 0}, {1, 1, 7, 200, 160, 1}, {1, 3, 130, 1, 8, 0},
    {1, 1, 200, 200, 40, 1}, {1, 2, 33, 65, 16, 1},  {1, 1, 300, 77, 64, 0},
};

static int run_shapes(eng_dtype dt) {
    gpu g;
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    for (int i = 0; i < ENG_TEST_N(common_shapes); i++) {
        if (run_one(&g, &common_shapes[i], dt, CONTIG, 10 + 4 * (uint64_t)i) != 0) return 1;
    }
    gpu_close(&g);
    return 0;
}

static int test_f32(void) {
    return run_shapes(ENG_DTYPE_F32);
}
static int test_f16(void) {
    return run_shapes(ENG_DTYPE_F16);
}
static int test_bf16(void) {
    return run_shapes(ENG_DTYPE_BF16);
}

/* f16/bf16 where the flash kernel's assumptions fail: the simple kernel, same answers. */
static int test_fallback(void) {
    gpu g;
    const att_shape odd_d[] = {{1, 2, 77, 33, 20, 0}, {1, 1, 70, 70, 200, 1}, {1, 1, 5, 9, 3, 1}};
    const att_shape flash_d[] = {{1, 2, 77, 77, 64, 1}, {1, 3, 40, 100, 40, 0}};
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    for (int t = 0; t < 2; t++) {
        const eng_dtype dt = t == 0 ? ENG_DTYPE_F16 : ENG_DTYPE_BF16;
        for (int i = 0; i < ENG_TEST_N(odd_d); i++) {
            if (run_one(&g, &odd_d[i], dt, CONTIG, 100 + 4 * (uint64_t)i) != 0) return 1;
        }
        for (int i = 0; i < ENG_TEST_N(flash_d); i++) {
            if (run_one(&g, &flash_d[i], dt, MISALIGNED, 120 + 4 * (uint64_t)i) != 0) return 1;
            if (run_one(&g, &flash_d[i], dt, ODD_STRIDE, 130 + 4 * (uint64_t)i) != 0) return 1;
        }
    }
    gpu_close(&g);
    return 0;
}

/* Stable Diffusion 1.5 at 512^2 and CLIP: cross-attention 4096 latents x 77 tokens (8 heads of
 * 40), self-attention 1024 x 1024 (the 32^2 level, 2 heads of 64 here to keep the twin quick),
 * the text encoder's causal 77 x 77 (12 heads of 64). */
static int test_sd_shapes(void) {
    gpu g;
    const att_shape shapes[] = {
        {1, 8, 4096, 77, 40, 0},   {1, 2, 1024, 1024, 64, 0}, {2, 12, 77, 77, 64, 1},
        {1, 2, 1024, 1024, 64, 1}, {1, 8, 4096, 77, 160, 0},
    };
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    for (int i = 0; i < ENG_TEST_N(shapes); i++) {
        if (run_one(&g, &shapes[i], ENG_DTYPE_F16, CONTIG, 200 + 4 * (uint64_t)i) != 0) return 1;
        if (run_one(&g, &shapes[i], ENG_DTYPE_BF16, CONTIG, 220 + 4 * (uint64_t)i) != 0) return 1;
    }
    if (run_one(&g, &shapes[0], ENG_DTYPE_F32, CONTIG, 240) != 0) return 1;
    gpu_close(&g);
    return 0;
}

/* Views: q, k, v inside one fused projection (row stride 3 H D) and o in a slice of a wider
 * buffer (row stride (H + 1) D, head 0 untouched), on the flash path (f16, bf16) and the simple
 * one (f32). */
static int test_views(void) {
    gpu g;
    const att_shape shapes[] = {{2, 3, 77, 77, 40, 0},
                                {1, 2, 129, 129, 64, 1},
                                {1, 1, 65, 65, 160, 1},
                                {1, 2, 70, 70, 80, 0}};
    const eng_dtype dts[3] = {ENG_DTYPE_F16, ENG_DTYPE_BF16, ENG_DTYPE_F32};
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < ENG_TEST_N(shapes); i++) {
            if (run_one(&g, &shapes[i], dts[t], FUSED, 300 + 4 * (uint64_t)i) != 0) return 1;
        }
    }
    gpu_close(&g);
    return 0;
}

/* The launcher refuses what it cannot run, with a reason, and launches nothing. */
static int test_errors(void) {
    eng_err err = {0};
    gpu g;
    void *d = NULL;
    eng_attention_args a;
    eng_stream cpu = {ENG_DEVICE_CPU, NULL, NULL, NULL, NULL};
    int rc = gpu_open(&g);
    if (rc != 0) return rc;
    CHECK_OK(g.b->block_take(g.b->impl, &d, 1 << 16, &err), &err);
    memset(&a, 0, sizeof a);
    a.dtype = ENG_DTYPE_F16;
    a.q = a.k = a.v = d;
    a.o = (char *)d + 8192;
    a.batch = 1;
    a.heads = 1;
    a.lq = 4;
    a.lk = 4;
    a.d = 64;
    a.q_stride[0] = a.k_stride[0] = a.v_stride[0] = a.o_stride[0] = 256;
    a.q_stride[1] = a.k_stride[1] = a.v_stride[1] = a.o_stride[1] = 64;
    a.q_stride[2] = a.k_stride[2] = a.v_stride[2] = a.o_stride[2] = 64;
    a.scale = 0.125f;
    CHECK_OK(eng_cuda_attention(&g.s, &a, &err), &err);

    a.dtype = ENG_DTYPE_I8;
    CHECK(eng_cuda_attention(&g.s, &a, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "eng_cuda_attention: dtype i8 (f32, f16 or bf16)");
    a.dtype = ENG_DTYPE_F16;
    a.k = NULL;
    CHECK(eng_cuda_attention(&g.s, &a, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eng_cuda_attention: NULL k");
    a.k = d;
    a.lk = 0;
    CHECK(eng_cuda_attention(&g.s, &a, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "lk = 0: 4 queries have no key");
    a.lk = 4;
    a.d = 0;
    CHECK(eng_cuda_attention(&g.s, &a, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "d 0 (need d >= 1");
    a.d = 2000; /* past both kernels */
    CHECK(eng_cuda_attention(&g.s, &a, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "head dim 2000");
    a.d = 64;
    a.lq = (int64_t)1 << 31;
    CHECK(eng_cuda_attention(&g.s, &a, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "exceed the kernels' limits");
    a.lq = 4;
    a.batch = -1;
    CHECK(eng_cuda_attention(&g.s, &a, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "batch -1");
    a.batch = 1;
    CHECK(eng_cuda_attention(&cpu, &a, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "cpu stream");
    /* nothing to do: no launch, whatever the pointers */
    a.heads = 0;
    a.q = a.k = a.v = a.o = NULL;
    CHECK_OK(eng_cuda_attention(&g.s, &a, &err), &err);
    CHECK_OK(g.b->stream_sync(g.b->impl, &g.s, &err), &err);
    g.b->block_give(g.b->impl, d);
    gpu_close(&g);
    return 0;
}

/* eng_op_attention on CUDA tensors of a context goes through the backend's table. */
static int test_op_dispatch(void) {
    eng_err err = {0};
    eng_ctx_params p;
    eng_ctx *ctx = NULL;
    eng_tensor q, k, v, o, qh, kh, vh, oh, oc;
    const int64_t qs[4] = {1, 33, 2, 64}, ks[4] = {1, 50, 2, 64};
    int count = 0;
    if (eng_cuda_device_count(&count, &err) != ENG_OK || count == 0) {
        fprintf(stderr, "SKIP: no CUDA device\n");
        return ENG_TEST_SKIP;
    }
    eng_ctx_params_init(&p);
    p.threads = 2;
    p.threaded_scheduler = 0;
    CHECK_OK(eng_ctx_create(&ctx, &p, &err), &err);
    CHECK_OK(eng_cuda_attach(ctx, 0, (uint64_t)256 << 20, &err), &err);
    CHECK(eng_ctx_backend(ctx, ENG_DEVICE_CUDA)->ops.attention == eng_cuda_attention);
    eng_alloc *ca = eng_ctx_alloc(ctx, ENG_DEVICE_CPU), *ga = eng_ctx_alloc(ctx, ENG_DEVICE_CUDA);
    CHECK_OK(eng_tensor_alloc(&qh, ca, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 4, qs, &err), &err);
    CHECK_OK(eng_tensor_alloc(&kh, ca, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 4, ks, &err), &err);
    CHECK_OK(eng_tensor_alloc(&vh, ca, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 4, ks, &err), &err);
    CHECK_OK(eng_tensor_alloc(&oh, ca, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 4, qs, &err), &err);
    CHECK_OK(eng_tensor_alloc(&oc, ca, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 4, qs, &err), &err);
    CHECK_OK(eng_tensor_alloc(&q, ga, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 4, qs, &err), &err);
    CHECK_OK(eng_tensor_alloc(&k, ga, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 4, ks, &err), &err);
    CHECK_OK(eng_tensor_alloc(&v, ga, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 4, ks, &err), &err);
    CHECK_OK(eng_tensor_alloc(&o, ga, ENG_LIFE_STATE, "t", ENG_DTYPE_F32, 4, qs, &err), &err);
    eng_test_fill(qh.data, eng_tensor_numel(&qh), 400, -1, 1);
    eng_test_fill(kh.data, eng_tensor_numel(&kh), 401, -1, 1);
    eng_test_fill(vh.data, eng_tensor_numel(&vh), 402, -1, 1);
    CHECK_OK(eng_op_copy(ctx, &q, &qh, &err), &err);
    CHECK_OK(eng_op_copy(ctx, &k, &kh, &err), &err);
    CHECK_OK(eng_op_copy(ctx, &v, &vh, &err), &err);
    CHECK_OK(eng_op_attention(ctx, NULL, &o, &q, &k, &v, 0.125f, 1, &err), &err);
    CHECK_OK(eng_op_copy(ctx, &oc, &o, &err), &err);
    CHECK_OK(eng_op_attention(ctx, NULL, &oh, &qh, &kh, &vh, 0.125f, 1, &err), &err);
    CHECK(eng_test_allclose("eng_op_attention cuda f32", oc.data, oh.data, eng_tensor_numel(&oh),
                            3e-5, 1e-4));
    /* mixed devices are refused before any launch */
    CHECK(eng_op_attention(ctx, NULL, &o, &q, &kh, &v, 0.125f, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "k is f32[1,50,2,64] cpu but v is f32[1,50,2,64] cuda");
    eng_ctx_destroy(ctx);
    return 0;
}

static const eng_test_case cases[] = {
    {"f32", test_f32},
    {"f16", test_f16},
    {"bf16", test_bf16},
    {"fallback", test_fallback},
    {"sd_shapes", test_sd_shapes},
    {"views", test_views},
    {"errors", test_errors},
    {"op_dispatch", test_op_dispatch},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
