/* test_nn_attention.c: scaled dot-product attention on the CPU (eng_op_attention and its twin
 * eng_cpu_attention) against a naive double-precision reference that forms the whole score
 * matrix: odd lengths (1, 7, 77, 129, more than one query and key tile), several head dims and
 * head counts, causal masks with Lq == Lk, Lq < Lk and Lq > Lk (rows with no visible key give 0),
 * peaky softmaxes whose maximum moves from tile to tile, strided views of fused projections,
 * thread-count independence, and malformed calls. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_compare.h"
#include "eng_test_ctx.h"

/* f32 twin vs the f64 reference (conventions 2.7, f32: 1e-5). Scores are f32 sums of d products
 * and the online softmax rescales in f32: typical errors are ~1e-7 (|o| <= max |v| = 1); the
 * peaky cases (|scores| up to ~250) reach ~4e-6, hence atol 2e-5. A wrong mask or a missed
 * rescale is >= 1e-2. */
static const double ATOL = 2e-5, RTOL = 1e-5, NMSE = 1e-9;

/* O (B, Lq, H, D) contiguous = softmax(scale Q K^T + mask) V in double, full score rows. Rows
 * with no visible key are 0 (the engine's definition). */
static void ref_attention(float *out, const eng_attention_args *a) {
    const int64_t off = a->lk - a->lq;
    double *s = malloc((size_t)a->lk * sizeof(double));
    const float *q = a->q, *k = a->k, *v = a->v;
    for (int64_t b = 0; b < a->batch; b++) {
        for (int64_t h = 0; h < a->heads; h++) {
            for (int64_t i = 0; i < a->lq; i++) {
                const float *qi = q + b * a->q_stride[0] + i * a->q_stride[1] + h * a->q_stride[2];
                float *oi = out + ((b * a->lq + i) * a->heads + h) * a->d;
                const int64_t nvis =
                    a->causal ? (i + off + 1 < a->lk ? i + off + 1 : a->lk) : a->lk;
                double mx = -INFINITY, sum = 0.0;
                for (int64_t j = 0; j < nvis; j++) {
                    const float *kj =
                        k + b * a->k_stride[0] + j * a->k_stride[1] + h * a->k_stride[2];
                    double dot = 0.0;
                    for (int64_t c = 0; c < a->d; c++)
                        dot += (double)qi[c] * kj[c];
                    s[j] = dot * a->scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (int64_t j = 0; j < nvis; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                for (int64_t c = 0; c < a->d; c++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < nvis; j++) {
                        acc += s[j] *
                               v[b * a->v_stride[0] + j * a->v_stride[1] + h * a->v_stride[2] + c];
                    }
                    oi[c] = nvis > 0 ? (float)(acc / sum) : 0.0f;
                }
            }
        }
    }
    free(s);
}

/* Gathers o (any strides) into a contiguous (B, Lq, H, D) buffer. */
static void gather(float *dst, const eng_tensor *t) {
    const float *p = t->data;
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t i = 0; i < t->shape[1]; i++)
            for (int64_t h = 0; h < t->shape[2]; h++)
                for (int64_t c = 0; c < t->shape[3]; c++)
                    *dst++ = p[b * t->stride[0] + i * t->stride[1] + h * t->stride[2] + c];
}

static void fill_tensor(eng_tensor *t, uint64_t stream, float lo, float hi) {
    eng_test_fill(t->data, eng_tensor_numel(t), stream, lo, hi);
}

static eng_attention_args args_of(eng_tensor *o,
                                  const eng_tensor *q,
                                  const eng_tensor *k,
                                  const eng_tensor *v,
                                  float scale,
                                  int causal) {
    eng_attention_args a;
    memset(&a, 0, sizeof a);
    a.dtype = ENG_DTYPE_F32;
    a.o = o->data;
    a.q = q->data;
    a.k = k->data;
    a.v = v->data;
    a.batch = q->shape[0];
    a.lq = q->shape[1];
    a.heads = q->shape[2];
    a.d = q->shape[3];
    a.lk = k->shape[1];
    for (int i = 0; i < 3; i++) {
        a.q_stride[i] = q->stride[i];
        a.k_stride[i] = k->stride[i];
        a.v_stride[i] = v->stride[i];
        a.o_stride[i] = o->stride[i];
    }
    a.scale = scale;
    a.causal = causal;
    return a;
}

typedef struct shape {
    int64_t b, h, lq, lk, d;
    int causal;
    float scale; /* 0: 1/sqrt(d) */
    float range; /* inputs uniform in [-range, range) */
} shape;

/* Runs eng_op_attention on fresh contiguous tensors and compares with the reference. Also runs
 * the twin directly on a NULL stream (serial, heap workspace) and requires the same bits. */
static int run_shape(eng_ctx *ctx, const shape *sh, uint64_t stream) {
    eng_err err = {0};
    eng_alloc *al = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    eng_tensor q, k, v, o;
    const int64_t qs[4] = {sh->b, sh->lq, sh->h, sh->d}, ks[4] = {sh->b, sh->lk, sh->h, sh->d};
    const float scale = sh->scale != 0.0f ? sh->scale : 1.0f / sqrtf((float)sh->d);
    char what[160];
    snprintf(what, sizeof what, "attention B=%lld H=%lld Lq=%lld Lk=%lld D=%lld causal=%d scale=%g",
             (long long)sh->b, (long long)sh->h, (long long)sh->lq, (long long)sh->lk,
             (long long)sh->d, sh->causal, (double)scale);
    CHECK_OK(eng_tensor_alloc(&q, al, ENG_LIFE_STATE, "t.q", ENG_DTYPE_F32, 4, qs, &err), &err);
    CHECK_OK(eng_tensor_alloc(&k, al, ENG_LIFE_STATE, "t.k", ENG_DTYPE_F32, 4, ks, &err), &err);
    CHECK_OK(eng_tensor_alloc(&v, al, ENG_LIFE_STATE, "t.v", ENG_DTYPE_F32, 4, ks, &err), &err);
    CHECK_OK(eng_tensor_alloc(&o, al, ENG_LIFE_STATE, "t.o", ENG_DTYPE_F32, 4, qs, &err), &err);
    fill_tensor(&q, stream, -sh->range, sh->range);
    fill_tensor(&k, stream + 1, -sh->range, sh->range);
    fill_tensor(&v, stream + 2, -1.0f, 1.0f);
    const int64_t n = eng_tensor_numel(&o);
    float *want = malloc((size_t)n * sizeof(float));
    float *serial = malloc((size_t)n * sizeof(float));
    CHECK(want != NULL && serial != NULL);
    CHECK_OK(eng_op_attention(ctx, NULL, &o, &q, &k, &v, scale, sh->causal, &err), &err);
    eng_attention_args a = args_of(&o, &q, &k, &v, scale, sh->causal);
    ref_attention(want, &a);
    if (!eng_test_allclose(what, o.data, want, n, ATOL, RTOL)) return 1;
    if (!eng_test_nmse(what, o.data, want, n, NMSE)) return 1;
    /* the twin on no pool (serial, heap workspace): the very same bits */
    a.o = serial;
    a.o_stride[0] = sh->lq * sh->h * sh->d;
    a.o_stride[1] = sh->h * sh->d;
    a.o_stride[2] = sh->d;
    CHECK_OK(eng_cpu_attention(NULL, &a, &err), &err);
    if (memcmp(serial, o.data, (size_t)n * sizeof(float)) != 0) {
        fprintf(stderr, "%s: the serial twin differs from the pooled one\n", what);
        return 1;
    }
    free(want);
    free(serial);
    eng_tensor_free(al, &q);
    eng_tensor_free(al, &k);
    eng_tensor_free(al, &v);
    eng_tensor_free(al, &o);
    return 0;
}

/* Non-causal shapes: lengths 1, 7, 77, 129, 300 (> one query tile of 64 and key tile of 128),
 * head dims 8, 40, 64, 80, one and three heads, Lq != Lk both ways. */
static int test_vs_naive(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    const shape shapes[] = {
        {1, 1, 1, 1, 8, 0, 0, 1},      {1, 1, 1, 7, 40, 0, 0, 1},     {2, 3, 7, 77, 40, 0, 0, 1},
        {1, 3, 77, 7, 64, 0, 0, 1},    {1, 1, 129, 129, 80, 0, 0, 1}, {2, 1, 65, 300, 8, 0, 0, 1},
        {1, 3, 300, 129, 64, 0, 0, 1}, {1, 2, 77, 77, 1, 0, 0, 1},    {1, 1, 5, 3, 3, 0, 2.0f, 1},
    };
    CHECK(ctx != NULL);
    for (int i = 0; i < ENG_TEST_N(shapes); i++) {
        if (run_shape(ctx, &shapes[i], 10 + 3 * (uint64_t)i) != 0) return 1;
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* Causal masks: CLIP's 77x77, Lq < Lk (the mask shifted right: every query sees Lk - Lq more
 * keys), Lq > Lk (the first Lq - Lk queries see nothing: their output must be exactly 0), and
 * tiles that straddle the diagonal. */
static int test_causal(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    const shape shapes[] = {
        {1, 3, 77, 77, 64, 1, 0, 1},   {2, 1, 1, 1, 8, 1, 0, 1},     {1, 2, 7, 129, 40, 1, 0, 1},
        {1, 1, 129, 7, 80, 1, 0, 1},   {1, 3, 200, 300, 8, 1, 0, 1}, {1, 1, 300, 200, 40, 1, 0, 1},
        {2, 2, 129, 129, 64, 1, 0, 1}, {1, 1, 1, 300, 8, 1, 0, 1},
    };
    CHECK(ctx != NULL);
    for (int i = 0; i < ENG_TEST_N(shapes); i++) {
        if (run_shape(ctx, &shapes[i], 40 + 3 * (uint64_t)i) != 0) return 1;
    }
    /* Lq = 5 > Lk = 2, causal: queries 0..2 see no key (0), query 3 sees only key 0 (= v[0]),
     * query 4 sees keys 0 and 1. */
    {
        float q[5 * 2], k[2 * 2], v[2 * 2] = {1, 2, 3, 4}, o[5 * 2];
        eng_tensor tq, tk, tv, to;
        const int64_t qs[4] = {1, 5, 1, 2}, ks[4] = {1, 2, 1, 2};
        eng_test_fill(q, 10, 90, -1, 1);
        eng_test_fill(k, 4, 91, -1, 1);
        CHECK_OK(eng_tensor_init(&tq, q, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, qs, &err), &err);
        CHECK_OK(eng_tensor_init(&to, o, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, qs, &err), &err);
        CHECK_OK(eng_tensor_init(&tk, k, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ks, &err), &err);
        CHECK_OK(eng_tensor_init(&tv, v, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ks, &err), &err);
        for (int i = 0; i < 10; i++)
            o[i] = NAN;
        CHECK_OK(eng_op_attention(ctx, NULL, &to, &tq, &tk, &tv, 0.5f, 1, &err), &err);
        for (int i = 0; i < 6; i++)
            CHECK(o[i] == 0.0f);
        CHECK(o[6] == 1.0f && o[7] == 2.0f);
        CHECK(o[8] > 1.0f && o[8] < 3.0f && fabsf(o[9] - o[8] - 1.0f) < 1e-6f);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* Peaky softmaxes: large scores (scale 1, inputs up to +-4, so |s| up to 16 d) put almost all
 * weight on one key, and keys whose scores rise along j move the running maximum in every key
 * tile, so a missing rescale of O or l shows at once. */
static int test_online_rescale(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    const shape shapes[] = {
        {1, 2, 70, 333, 16, 0, 1.0f, 4},
        {1, 1, 129, 129, 40, 1, 0.5f, 4},
        {1, 1, 3, 1000, 8, 0, 1.0f, 2},
    };
    CHECK(ctx != NULL);
    for (int i = 0; i < ENG_TEST_N(shapes); i++) {
        if (run_shape(ctx, &shapes[i], 70 + 3 * (uint64_t)i) != 0) return 1;
    }
    /* k_j = j / 100 in every component, q = 1: scores rise along j, the maximum changes in every
     * tile and the last keys dominate. */
    {
        enum { LK = 700, D = 4 };
        static float q[D], k[LK * D], v[LK * D], o[D], want[D];
        eng_tensor tq, tk, tv, to;
        const int64_t qs[4] = {1, 1, 1, D}, ks[4] = {1, LK, 1, D};
        for (int c = 0; c < D; c++)
            q[c] = 1.0f;
        for (int j = 0; j < LK; j++) {
            for (int c = 0; c < D; c++) {
                k[j * D + c] = (float)j / 100.0f;
                v[j * D + c] = (float)((j * 7 + c * 3) % 11) / 11.0f;
            }
        }
        CHECK_OK(eng_tensor_init(&tq, q, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, qs, &err), &err);
        CHECK_OK(eng_tensor_init(&to, o, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, qs, &err), &err);
        CHECK_OK(eng_tensor_init(&tk, k, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ks, &err), &err);
        CHECK_OK(eng_tensor_init(&tv, v, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ks, &err), &err);
        CHECK_OK(eng_op_attention(ctx, NULL, &to, &tq, &tk, &tv, 1.0f, 0, &err), &err);
        eng_attention_args a = args_of(&to, &tq, &tk, &tv, 1.0f, 0);
        ref_attention(want, &a);
        CHECK(eng_test_allclose("rising scores", o, want, D, ATOL, RTOL));
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* Views, no copies: q, k, v as slices of one fused (B, L, 3 H D) projection reshaped to
 * (B, L, 3H, D); q also as a permuted (B, H, L, D) buffer; o written into the first H heads of
 * a wider (B, L, H + 2, D) buffer whose other heads must stay untouched. */
static int test_strided_views(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_alloc *al;
    eng_err err = {0};
    enum { B = 2, L = 77, H = 3, D = 40 };
    eng_tensor fused, fused4, q, k, v, ob, o, qbhld, qperm, oc;
    const int64_t fs[3] = {B, L, 3 * H * D}, f4[4] = {B, L, 3 * H, D};
    const int64_t obs[4] = {B, L, H + 2, D}, bhld[4] = {B, H, L, D}, cs[4] = {B, L, H, D};
    const int perm[4] = {0, 2, 1, 3};
    const int64_t n = (int64_t)B * L * H * D;
    const float scale = 1.0f / sqrtf((float)D);
    CHECK(ctx != NULL);
    al = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    CHECK_OK(eng_tensor_alloc(&fused, al, ENG_LIFE_STATE, "t.qkv", ENG_DTYPE_F32, 3, fs, &err),
             &err);
    CHECK_OK(eng_tensor_alloc(&ob, al, ENG_LIFE_STATE, "t.o", ENG_DTYPE_F32, 4, obs, &err), &err);
    CHECK_OK(eng_tensor_alloc(&qbhld, al, ENG_LIFE_STATE, "t.q", ENG_DTYPE_F32, 4, bhld, &err),
             &err);
    CHECK_OK(eng_tensor_alloc(&oc, al, ENG_LIFE_STATE, "t.oc", ENG_DTYPE_F32, 4, cs, &err), &err);
    fill_tensor(&fused, 100, -1, 1);
    fill_tensor(&qbhld, 101, -1, 1);
    CHECK_OK(eng_tensor_view_reshape(&fused4, &fused, 4, f4, &err), &err);
    CHECK_OK(eng_tensor_view_slice(&q, &fused4, 2, 0, H, &err), &err);
    CHECK_OK(eng_tensor_view_slice(&k, &fused4, 2, H, H, &err), &err);
    CHECK_OK(eng_tensor_view_slice(&v, &fused4, 2, 2 * H, H, &err), &err);
    CHECK_OK(eng_tensor_view_slice(&o, &ob, 2, 1, H, &err), &err);
    CHECK_OK(eng_tensor_view_permute(&qperm, &qbhld, perm, &err), &err);
    CHECK(!eng_tensor_is_contiguous(&q) && !eng_tensor_is_contiguous(&o));
    CHECK(!eng_tensor_is_contiguous(&qperm));
    CHECK_EQ_I64(q.stride[1], 3 * H * D);
    CHECK_EQ_I64(qperm.stride[1], D);
    float *want = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
    CHECK(want != NULL && got != NULL);
    const int64_t nob = eng_tensor_numel(&ob);
    float *obuf = ob.data;
    for (int64_t i = 0; i < nob; i++)
        obuf[i] = 12345.0f;
    for (int causal = 0; causal < 2; causal++) {
        /* fused q, k, v into a slice of ob */
        CHECK_OK(eng_op_attention(ctx, NULL, &o, &q, &k, &v, scale, causal, &err), &err);
        eng_attention_args a = args_of(&oc, &q, &k, &v, scale, causal);
        ref_attention(want, &a);
        gather(got, &o);
        CHECK(eng_test_allclose("attention fused qkv views", got, want, n, ATOL, RTOL));
        for (int64_t b = 0; b < B; b++)
            for (int64_t l = 0; l < L; l++)
                for (int64_t c = 0; c < D; c++) {
                    CHECK(obuf[((b * L + l) * (H + 2) + 0) * D + c] == 12345.0f);
                    CHECK(obuf[((b * L + l) * (H + 2) + H + 1) * D + c] == 12345.0f);
                }
        /* permuted q, fused k and v, contiguous o */
        CHECK_OK(eng_op_attention(ctx, NULL, &oc, &qperm, &k, &v, scale, causal, &err), &err);
        a = args_of(&oc, &qperm, &k, &v, scale, causal);
        ref_attention(want, &a);
        CHECK(eng_test_allclose("attention permuted q", oc.data, want, n, ATOL, RTOL));
    }
    free(want);
    free(got);
    eng_tensor_free(al, &fused);
    eng_tensor_free(al, &ob);
    eng_tensor_free(al, &qbhld);
    eng_tensor_free(al, &oc);
    eng_ctx_destroy(ctx);
    return 0;
}

/* Results do not depend on the pool: 1, 2 and 3 threads and the NULL stream give the same bits,
 * and a stream with an arena gives its workspace back. */
static int test_threads(void) {
    eng_err err = {0};
    enum { B = 1, H = 3, LQ = 150, LK = 140, D = 24 };
    const int64_t qs[4] = {B, LQ, H, D}, ks[4] = {B, LK, H, D};
    const int64_t nq = (int64_t)B * LQ * H * D, nk = (int64_t)B * LK * H * D;
    float *q = malloc((size_t)nq * 4), *k = malloc((size_t)nk * 4), *v = malloc((size_t)nk * 4);
    float *o[4];
    for (int t = 0; t < 4; t++)
        o[t] = malloc((size_t)nq * 4);
    CHECK(q != NULL && k != NULL && v != NULL && o[3] != NULL);
    eng_test_fill(q, nq, 120, -1, 1);
    eng_test_fill(k, nk, 121, -1, 1);
    eng_test_fill(v, nk, 122, -1, 1);
    for (int t = 0; t < 4; t++) {
        eng_tensor tq, tk, tv, to;
        CHECK_OK(eng_tensor_init(&tq, q, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, qs, &err), &err);
        CHECK_OK(eng_tensor_init(&tk, k, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ks, &err), &err);
        CHECK_OK(eng_tensor_init(&tv, v, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, ks, &err), &err);
        CHECK_OK(eng_tensor_init(&to, o[t], ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, qs, &err), &err);
        if (t < 3) {
            eng_ctx *ctx = eng_test_ctx(t + 1);
            CHECK(ctx != NULL);
            eng_stream *s = eng_ctx_stream(ctx, ENG_DEVICE_CPU);
            CHECK(s != NULL);
            const uint64_t used = s->arena != NULL ? eng_arena_used(s->arena) : 0;
            CHECK_OK(eng_op_attention(ctx, s, &to, &tq, &tk, &tv, 0.3f, 1, &err), &err);
            if (s->arena != NULL) CHECK_EQ_I64(eng_arena_used(s->arena), used);
            eng_ctx_destroy(ctx);
        } else {
            eng_attention_args a = args_of(&to, &tq, &tk, &tv, 0.3f, 1);
            CHECK_OK(eng_cpu_attention(NULL, &a, &err), &err);
        }
        if (t > 0) CHECK(memcmp(o[t], o[0], (size_t)nq * 4) == 0);
    }
    free(q);
    free(k);
    free(v);
    for (int t = 0; t < 4; t++)
        free(o[t]);
    return 0;
}

/* Malformed calls: each a clear error naming what is wrong, and nothing written. */
static int test_errors(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    enum { L = 5, H = 2, D = 8 };
    static float qb[2 * L * H * D], kb[2 * L * H * D], vb[2 * L * H * D], ob[2 * L * H * D];
    eng_tensor q, k, v, o, t, k3;
    const int64_t s4[4] = {1, L, H, D}, s3[3] = {1, L, H * D}, sk0[4] = {1, 0, H, D};
    const int64_t sd[4] = {1, L, H, D / 2}, sb[4] = {2, L, H, D};
    CHECK(ctx != NULL);
    CHECK_OK(eng_tensor_init(&q, qb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, s4, &err), &err);
    CHECK_OK(eng_tensor_init(&k, kb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, s4, &err), &err);
    CHECK_OK(eng_tensor_init(&v, vb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, s4, &err), &err);
    CHECK_OK(eng_tensor_init(&o, ob, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, s4, &err), &err);
    eng_test_fill(qb, 2 * L * H * D, 130, -1, 1);
    eng_test_fill(kb, 2 * L * H * D, 131, -1, 1);
    eng_test_fill(vb, 2 * L * H * D, 132, -1, 1);
    CHECK_OK(eng_op_attention(ctx, NULL, &o, &q, &k, &v, 0.3f, 0, &err), &err);
    for (int i = 0; i < 2 * L * H * D; i++)
        ob[i] = 777.0f;

    /* not 4-D */
    CHECK_OK(eng_tensor_init(&k3, kb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, s3, &err), &err);
    CHECK(eng_op_attention(ctx, NULL, &o, &q, &k3, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eng_op_attention: k is f32[1,5,16] cpu, expected 4-D (B, L, H, D)");
    /* head dims differ */
    CHECK_OK(eng_tensor_init(&t, kb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sd, &err), &err);
    CHECK(eng_op_attention(ctx, NULL, &o, &q, &t, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "k is f32[1,5,2,4] cpu");
    CHECK_CONTAINS(err.msg, "expected q (B, Lq, H, D) and k, v (B, Lk, H, D)");
    /* batches differ; o not shaped like q */
    CHECK_OK(eng_tensor_init(&t, vb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sb, &err), &err);
    CHECK(eng_op_attention(ctx, NULL, &o, &q, &k, &t, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "v is f32[2,5,2,8] cpu");
    CHECK_OK(eng_tensor_init(&t, ob, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sb, &err), &err);
    CHECK(eng_op_attention(ctx, NULL, &t, &q, &k, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "o is f32[2,5,2,8] cpu but q is f32[1,5,2,8] cpu");
    /* dtype and device mismatches */
    t = k;
    t.dtype = ENG_DTYPE_F16;
    CHECK(eng_op_attention(ctx, NULL, &o, &q, &t, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "k is f16[1,5,2,8] cpu but v is f32[1,5,2,8] cpu");
    t = q;
    t.device = ENG_DEVICE_CUDA;
    CHECK(eng_op_attention(ctx, NULL, &o, &t, &k, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "q is f32[1,5,2,8] cuda but v is f32[1,5,2,8] cpu");
    /* the head dimension not contiguous */
    {
        const int perm[4] = {0, 1, 3, 2};
        eng_tensor sq;
        const int64_t sqs[4] = {1, L, D, H};
        CHECK_OK(eng_tensor_init(&sq, qb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sqs, &err), &err);
        CHECK_OK(eng_tensor_view_permute(&t, &sq, perm, &err), &err);
        CHECK(eng_op_attention(ctx, NULL, &o, &t, &k, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "q (f32[1,5,2,8] cpu) has stride 2 along D");
    }
    /* no keys */
    CHECK_OK(eng_tensor_init(&t, kb, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, sk0, &err), &err);
    {
        eng_tensor v0 = t;
        v0.data = vb;
        CHECK(eng_op_attention(ctx, NULL, &o, &q, &t, &v0, 1, 0, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "Lq, Lk and D must be at least 1");
    }
    /* the output aliasing an input, or overlapping itself */
    CHECK(eng_op_attention(ctx, NULL, &q, &q, &k, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "o overlaps q in memory");
    t = o;
    t.stride[1] = D; /* rows of different heads share memory */
    CHECK(eng_op_attention(ctx, NULL, &t, &q, &k, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "under which elements overlap");
    t = o;
    t.stride[0] = -1;
    CHECK(eng_op_attention(ctx, NULL, &t, &q, &k, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "negative stride in dimension 0");
    /* f16 on the CPU, and CUDA tensors without a CUDA backend */
    {
        eng_tensor h[4] = {o, q, k, v};
        for (int i = 0; i < 4; i++)
            h[i].dtype = ENG_DTYPE_F16;
        CHECK(eng_op_attention(ctx, NULL, &h[0], &h[1], &h[2], &h[3], 1, 0, &err) ==
              ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "the CPU backend takes f32, o is f16[1,5,2,8] cpu");
        for (int i = 0; i < 4; i++) {
            h[i].dtype = ENG_DTYPE_F32;
            h[i].device = ENG_DEVICE_CUDA;
        }
        CHECK(eng_op_attention(ctx, NULL, &h[0], &h[1], &h[2], &h[3], 1, 0, &err) ==
              ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "no cuda device is attached to the context");
    }
    /* a stream of another device */
    {
        eng_stream cs = {ENG_DEVICE_CUDA, NULL, NULL, NULL, NULL};
        CHECK(eng_op_attention(ctx, &cs, &o, &q, &k, &v, 1, 0, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "a cuda stream for cpu tensors");
    }
    for (int i = 0; i < 2 * L * H * D; i++)
        CHECK(ob[i] == 777.0f); /* nothing was written by a refused call */

    /* the twin called directly */
    {
        eng_attention_args a = args_of(&o, &q, &k, &v, 1, 0);
        a.dtype = ENG_DTYPE_BF16;
        CHECK(eng_cpu_attention(NULL, &a, &err) == ENG_E_UNSUPPORTED);
        CHECK_CONTAINS(err.msg, "eng_cpu_attention: the CPU twin takes f32, not bf16");
        a.dtype = ENG_DTYPE_F32;
        a.v = NULL;
        CHECK(eng_cpu_attention(NULL, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "eng_cpu_attention: NULL v");
        a.v = vb;
        a.lk = 0;
        CHECK(eng_cpu_attention(NULL, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "lk = 0: 5 queries have no key");
        a.lk = L;
        a.d = 0;
        CHECK(eng_cpu_attention(NULL, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "d 0 (need d >= 1");
        a.d = D;
        a.heads = -1;
        CHECK(eng_cpu_attention(NULL, &a, &err) == ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "heads -1");
        a.heads = 0; /* nothing to do */
        CHECK_OK(eng_cpu_attention(NULL, &a, &err), &err);
    }
    for (int i = 0; i < 2 * L * H * D; i++)
        CHECK(ob[i] == 777.0f);
    eng_ctx_destroy(ctx);
    return 0;
}

static const eng_test_case cases[] = {
    {"vs_naive", test_vs_naive},
    {"causal", test_causal},
    {"online_rescale", test_online_rescale},
    {"strided_views", test_strided_views},
    {"threads", test_threads},
    {"errors", test_errors},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
