/* eng_rng.c: the CPU twins of the Philox fills (declared in eng_ops.h), split over the stream's
 * pool. The numbers come from eng_philox_math.h, shared with the CUDA kernels. */
#include "eng_rng.h"

#include <inttypes.h>

#include "eng_ops.h"
#include "eng_philox_math.h"
#include "eng_sched.h"

/* Elements per piece of the parallel split: big enough to amortize the hand-off (a normal costs
 * ~50 ns, so a piece is ~0.2 ms), small enough to balance 1e6 elements over many threads. */
#define ENG_RNG_GRAIN 4096

void eng_rng_uniform_block(float out[4], uint64_t seed, uint64_t offset, uint64_t block) {
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)offset,
                             (uint32_t)(offset >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t w[4];
    eng_philox4x32_10(w, ctr, key);
    for (int j = 0; j < 4; j++)
        out[j] = eng_philox_u01(w[j]);
}

typedef struct rng_fill_job {
    float *y;
    uint64_t seed;
    uint64_t offset;
} rng_fill_job;

/* y[begin, end) of the uniform stream: one Philox call per block of 4, partial blocks at the
 * ends of the piece included. */
static void rng_uniform_range(void *user, int64_t begin, int64_t end) {
    const rng_fill_job *job = user;
    int64_t i = begin;
    while (i < end) {
        const uint64_t block = (uint64_t)i >> 2;
        float u[4];
        eng_rng_uniform_block(u, job->seed, job->offset, block);
        for (int j = (int)((uint64_t)i & 3u); j < 4 && i < end; j++, i++)
            job->y[i] = u[j];
    }
}

static void rng_normal_range(void *user, int64_t begin, int64_t end) {
    const rng_fill_job *job = user;
    for (int64_t i = begin; i < end; i++) {
        job->y[i] = eng_philox_normal_at(job->seed, job->offset, (uint64_t)i);
    }
}

static int rng_fill(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, int normal, eng_err *err) {
    int rc = ENG_OK;
    rng_fill_job job = {y, seed, offset};
    const char *fn = normal ? "eng_cpu_fill_normal_f32" : "eng_cpu_fill_uniform_f32";
    if (n < 0 || (y == NULL && n > 0)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: bad output: y %s, n = %" PRId64
                         " (expected n >= 0 elements and y non-NULL when n > 0)",
                         fn, y == NULL ? "NULL" : "given", n);
        goto done;
    }
    if (n == 0) goto done;
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, n, ENG_RNG_GRAIN,
                          normal ? rng_normal_range : rng_uniform_range, &job);
done:
    return rc;
}

int eng_cpu_fill_uniform_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err) {
    return rng_fill(s, y, n, seed, offset, 0, err);
}

int eng_cpu_fill_normal_f32(
    eng_stream *s, float *y, int64_t n, uint64_t seed, uint64_t offset, eng_err *err) {
    return rng_fill(s, y, n, seed, offset, 1, err);
}
