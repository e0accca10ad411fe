/* eng.h: the engine's public header. One include for everything a pipeline or tool uses.
 *
 *   #include "eng.h"
 *   eng_ctx_params p; eng_ctx_params_init(&p);
 *   eng_ctx *ctx = NULL; eng_err err = {0};
 *   if (eng_ctx_create(&ctx, &p, &err) != ENG_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
 *   int64_t shape[2] = {4, 4};
 *   eng_tensor x;
 *   eng_tensor_alloc(&x, eng_ctx_alloc(ctx, ENG_DEVICE_CPU), ENG_LIFE_STATE, "demo",
 *                    ENG_DTYPE_F32, 2, shape, &err);
 *   eng_op_fill_normal(ctx, NULL, &x, 42, 0, &err);      // Philox normals, same on CPU and CUDA
 *   eng_tensor_free(eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &x);
 *   eng_ctx_destroy(ctx);
 *
 * The pieces, each with its manual at the top of its header:
 *   eng_err.h          error codes, eng_err, ENG_ASSERT, logging
 *   eng_dtype.h        element types, f16/bf16/fp8 conversion (bit-exact with numpy)
 *   eng_tensor.h       tensors and explicit views
 *   eng_alloc.h        the one allocator per device: weights, state, scratch arenas, budget
 *   eng_sched.h        the one scheduler: jobs, priorities, slices; the CPU thread pool
 *   eng_backend.h      streams and the device backend table (filled by cuda/)
 *   eng_ctx.h          the context tying them together
 *   eng_ops.h          ops dispatched on device, and their CPU twins
 *   eng_rng.h          Philox4x32-10 random numbers (eng_philox_math.h is the shared math)
 *   eng_safetensors.h  .safetensors reader (mmap, validated) and writer
 *   eng_image.h        PNG/JPEG reading, PNG writing with text chunks
 *   eng_progress.h     progress bars (TTY-aware)
 *   eng_cli.h          small helpers shared by the command-line tools */
#ifndef ENG_H
#define ENG_H

#include "eng_alloc.h"
#include "eng_backend.h"
#include "eng_base.h"
#include "eng_cli.h"
#include "eng_ctx.h"
#include "eng_dtype.h"
#include "eng_err.h"
#include "eng_hash.h"
#include "eng_image.h"
#include "eng_ops.h"
#include "eng_progress.h"
#include "eng_rng.h"
#include "eng_safetensors.h"
#include "eng_sched.h"
#include "eng_tensor.h"
#include "eng_version.h"

#endif /* ENG_H */
