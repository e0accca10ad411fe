/* nerf_adam.h: the Adam optimizer of instant-ngp (tiny-cuda-nn's Adam) over one flat parameter
 * buffer on the CPU. Prefix nerf_adam_.
 *
 *   nerf_adam_params ap; nerf_adam_params_init(&ap);       // beta 0.9 / 0.99, eps 1e-15, L2 1e-6
 *   ap.n_params = nerf_field_n_params(f); ap.n_matrix = nerf_field_n_matrix_params(f);
 *   nerf_adam *opt = NULL;
 *   if (nerf_adam_create(&opt, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &ap, &err) != ENG_OK) ...
 *   each step: nerf_adam_step(opt, stream, params, grads, 1e-2f, &err);   // lr from a schedule
 *   nerf_adam_destroy(opt);
 *
 * Parameters [0, n_matrix) are MLP weights: L2-regularised, updated every step. The rest (hash
 * tables) are updated only where the gradient is non-zero, each with its own step count (the
 * exact rule: nerf_adam_math.h). The learning rate is an argument of every step, so the caller
 * owns the schedule (instant-ngp: 1e-2, decayed later).
 * State: first and second moments (f32) and per-parameter step counts (uint32 held in an I32
 * tensor), each an ENG_LIFE_STATE tensor of n_params elements from the given allocator (owners
 * "nerf.adam.m", "nerf.adam.v", "nerf.adam.t"), zeroed at creation; the accessors expose them
 * for snapshots (write them back, with nerf_adam_set_step_count, to resume).
 * Memory: 12 bytes per parameter (146 MB for instant-ngp's 12.2 M).
 * Parallelism: elementwise over s->pool (s or s->pool NULL: the calling thread); the result does
 * not depend on the thread count.
 * Errors: ENG_E_INVALID_ARG (bad hyperparameters or sizes, a negative or non-finite learning
 * rate: named), ENG_E_UNSUPPORTED (a device allocator: this is the CPU twin), ENG_E_OOM.
 * Threads: one step at a time per optimizer. */
#ifndef NERF_ADAM_H
#define NERF_ADAM_H

#include <stdint.h>

#include "eng.h"
#include "nerf_adam_math.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nerf_adam nerf_adam; /* opaque */

typedef struct nerf_adam_params {
    int64_t n_params; /* parameters in the buffer (>= 1) */
    int64_t n_matrix; /* the first n_matrix are MLP weights (0..n_params) */
    float beta1;      /* 0.9 */
    float beta2;      /* 0.99 */
    float epsilon;    /* 1e-15 */
    float l2_reg;     /* 1e-6, applied to MLP weights only */
} nerf_adam_params;

/* instant-ngp's hyperparameters; n_params and n_matrix 0 (the caller sets them). */
void nerf_adam_params_init(nerf_adam_params *p);
/* Creates the optimizer and its zeroed state. Errors: ENG_E_INVALID_ARG (n_params < 1, n_matrix
 * outside [0, n_params], a beta outside [0, 1), a negative or non-finite epsilon or l2_reg),
 * ENG_E_UNSUPPORTED (alloc is not a CPU allocator), ENG_E_OOM. */
int nerf_adam_create(nerf_adam **out, eng_alloc *alloc, const nerf_adam_params *p, eng_err *err);
void nerf_adam_destroy(nerf_adam *a); /* NULL is a no-op */

/* One update of params (n_params) from grads (n_params) with learning rate lr (>= 0, finite).
 * grads is read only (zero it yourself before the next backward pass). */
int nerf_adam_step(
    nerf_adam *a, eng_stream *s, float *params, const float *grads, float lr, eng_err *err);
/* Zeroes the moments and step counts. */
void nerf_adam_reset(nerf_adam *a, eng_stream *s);

const nerf_adam_params *nerf_adam_get_params(const nerf_adam *a);
/* Steps taken (nerf_adam_step calls since creation or reset); settable for resuming. */
int64_t nerf_adam_step_count(const nerf_adam *a);
void nerf_adam_set_step_count(nerf_adam *a, int64_t steps);
/* The state tensors (n_params elements each), for snapshots. */
eng_tensor *nerf_adam_first_moment(nerf_adam *a);
eng_tensor *nerf_adam_second_moment(nerf_adam *a);
eng_tensor *nerf_adam_param_steps(nerf_adam *a); /* I32 storage of uint32 counts */

#ifdef __cplusplus
}
#endif
#endif /* NERF_ADAM_H */
