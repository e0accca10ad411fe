/* eng_ops_cpu.c: the CPU twins of the elementwise ops (the GEMM is in eng_ops_gemm.c). Plain
 * loops, split over the stream's pool; these are the specification the CUDA kernels are tested
 * against. */
#include "eng_ops.h"

#include <stdio.h>

#include "eng_sched.h"

/* Items per pool piece for cheap elementwise work: big enough that scheduling is noise. */
enum { ELEMENTWISE_GRAIN = 1 << 15 };

static eng_pool *stream_pool(const eng_stream *s) {
    return s != NULL ? s->pool : NULL;
}

typedef struct add_args {
    void *y;
    const void *a, *b;
} add_args;

static void add_f32_range(void *user, int64_t begin, int64_t end) {
    const add_args *p = user;
    float *y = p->y;
    const float *a = p->a, *b = p->b;
    for (int64_t i = begin; i < end; i++)
        y[i] = a[i] + b[i];
}

static void add_f16_range(void *user, int64_t begin, int64_t end) {
    const add_args *p = user;
    eng_f16 *y = p->y;
    const eng_f16 *a = p->a, *b = p->b;
    for (int64_t i = begin; i < end; i++) {
        y[i] = eng_f32_to_f16(eng_f16_to_f32(a[i]) + eng_f16_to_f32(b[i])); /* one rounding */
    }
}

static int
check_ptrs(const char *fn, const void *y, const void *a, const void *b, int64_t n, eng_err *err) {
    if (n < 0) return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n = %lld", fn, (long long)n);
    if (n > 0 && (y == NULL || a == NULL || b == NULL)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL buffer with n = %lld", fn,
                           (long long)n);
    }
    return ENG_OK;
}

int eng_cpu_add_f32(
    eng_stream *s, float *y, const float *a, const float *b, int64_t n, eng_err *err) {
    add_args args = {y, a, b};
    int rc = check_ptrs("eng_cpu_add_f32", y, a, b, n, err);
    if (rc != ENG_OK || n == 0) return rc;
    eng_pool_parallel_for(stream_pool(s), n, ELEMENTWISE_GRAIN, add_f32_range, &args);
    return ENG_OK;
}

int eng_cpu_add_f16(
    eng_stream *s, eng_f16 *y, const eng_f16 *a, const eng_f16 *b, int64_t n, eng_err *err) {
    add_args args = {y, a, b};
    int rc = check_ptrs("eng_cpu_add_f16", y, a, b, n, err);
    if (rc != ENG_OK || n == 0) return rc;
    eng_pool_parallel_for(stream_pool(s), n, ELEMENTWISE_GRAIN, add_f16_range, &args);
    return ENG_OK;
}
