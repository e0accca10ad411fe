/* eng_rng.h: the engine's random numbers: Philox4x32-10 streams, identical on the CPU and CUDA.
 *
 *   eng_stream s = {ENG_DEVICE_CPU, NULL, pool, NULL, NULL};                 // pool may be NULL
 *   eng_cpu_fill_normal_f32(&s, latent, 4 * 64 * 64, seed, 0, &err);   // declared in eng_ops.h
 *   // through the op layer, any device: eng_op_fill_normal(ctx, NULL, &t, seed, 0, &err);
 *
 * A stream is named by (seed, offset); element i of it is a pure function of (seed, offset, i)
 * (eng_philox_uniform_at / eng_philox_normal_at in eng_philox_math.h), so results do not depend
 * on the thread count, the split, or the device, and any slice [a, b) of a stream can be made
 * alone. Use a different `offset` (not seed + 1) for each independent draw from one seed, e.g.
 * offset = step for per-step sampler noise.
 *  - uniform, element i: counter {i/4 lo, i/4 hi, offset lo, offset hi}, key {seed lo, seed hi},
 *    output word i % 4, u = (word >> 8) * 2^-24: f32 in [0, 1), multiples of 2^-24.
 *  - normal, element i: counter {offset lo, offset hi, i lo, i hi}, same key; Box-Muller's sine
 *    branch on words 0 and 1, in double, rounded once to f32. With offset 0 this reproduces the
 *    CUDA torch.randn noise of popular SD front-ends: seed 0 starts -0.9246626, -0.42534414,
 *    -2.6438458, 0.14518388 (tests/golden/dtype_rng_philox.txt has more, from an independent numpy
 *    implementation in tests/gen_dtype_goldens.py).
 * The CPU twins eng_cpu_fill_uniform_f32 / eng_cpu_fill_normal_f32 (eng_ops.h, in eng_rng.c)
 * split n over the stream's pool (s or s->pool NULL: the calling thread) and return
 * ENG_E_INVALID_ARG for n < 0 or y NULL with n > 0.
 * Threads: pure functions of their arguments; safe from any thread. */
#ifndef ENG_RNG_H
#define ENG_RNG_H

#include <stdint.h>

#include "eng_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The 4 uniform values of block b of stream (seed, offset): elements 4b .. 4b+3, one Philox call.
 * Equal to eng_philox_uniform_at(seed, offset, 4b + j) for j = 0..3. */
void eng_rng_uniform_block(float out[4], uint64_t seed, uint64_t offset, uint64_t block);

#ifdef __cplusplus
}
#endif
#endif /* ENG_RNG_H */
