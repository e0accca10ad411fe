/* nerf_sh.h: the spherical-harmonics direction encoding of instant-ngp's colour network
 * (degree 4: 16 values per direction), over a batch on the CPU. Prefix nerf_sh_.
 *
 *   nerf_sh_encode(stream, col_in, 32, dirs, n, &err);   // the first 16 columns of each row
 *
 * The basis and its sign convention: nerf_sh_math.h (shared with the CUDA kernels). Directions
 * are not learned, so there is no backward pass.
 * Shapes: dirs (n, 3) f32 unit vectors; out (n, ld_out) f32 rows, of which the first 16 columns
 * are written (ld_out >= 16: the encoding can go straight into a wider input matrix).
 * Parallelism: rows split over s->pool (s or s->pool NULL: the calling thread).
 * Errors: ENG_E_INVALID_ARG (n < 0, ld_out < 16). Threads: safe from any thread. */
#ifndef NERF_SH_H
#define NERF_SH_H

#include <stdint.h>

#include "eng.h"
#include "nerf_sh_math.h"

#ifdef __cplusplus
extern "C" {
#endif

int nerf_sh_encode(
    eng_stream *s, float *out, int64_t ld_out, const float *dirs, int64_t n, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* NERF_SH_H */
