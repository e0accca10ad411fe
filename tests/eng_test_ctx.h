/* eng_test_ctx.h: what op tests set up (header only): a context, and CPU tensors on malloc'd
 * memory with a canary after them. */
#ifndef ENG_TEST_CTX_H
#define ENG_TEST_CTX_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test_compare.h"

/* `threads` pool threads, the scheduler pumped by the caller (no dispatcher thread). NULL (with
 * the reason on stderr) on failure. */
static inline eng_ctx *eng_test_ctx(int threads) {
    eng_ctx_params p;
    eng_ctx *ctx = NULL;
    eng_err err = {0};
    eng_ctx_params_init(&p);
    p.threads = threads;
    p.threaded_scheduler = 0;
    if (eng_ctx_create(&ctx, &p, &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
    return ctx;
}

enum { ENG_TEST_GUARD_BYTES = 64 };

/* A contiguous f32 CPU tensor on malloc'd memory (free() it) followed by ENG_TEST_GUARD_BYTES of
 * canary, filled with Philox uniforms in [lo, hi) from `stream` (lo == hi: zeros). NULL when out
 * of memory. */
static inline float *eng_test_tensor_f32(
    eng_tensor *t, int ndim, const int64_t *shape, uint64_t stream, float lo, float hi) {
    eng_err err = {0};
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    float *p = (float *)malloc((size_t)n * sizeof(float) + ENG_TEST_GUARD_BYTES);
    if (p == NULL) return NULL;
    if (lo == hi) {
        memset(p, 0, (size_t)n * sizeof(float));
    } else {
        eng_test_fill(p, n, stream, lo, hi);
    }
    eng_test_canary_set(p + n, ENG_TEST_GUARD_BYTES);
    if (eng_tensor_init(t, p, ENG_DTYPE_F32, ENG_DEVICE_CPU, ndim, shape, &err) != ENG_OK) {
        fprintf(stderr, "%s\n", err.msg);
        free(p);
        return NULL;
    }
    return p;
}

/* The canary after a tensor from eng_test_tensor_f32 is intact. */
static inline int eng_test_guard_ok(const eng_tensor *t) {
    return eng_test_canary_ok((const float *)t->data + eng_tensor_numel(t), ENG_TEST_GUARD_BYTES);
}

#endif /* ENG_TEST_CTX_H */
