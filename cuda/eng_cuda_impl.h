/* eng_cuda_impl.h: what the .cu files of the CUDA backend share and nothing outside cuda/ sees:
 * the backend state behind eng_backend.impl (and eng_stream.impl on its streams), and the hooks
 * by which each op family fills the op table and frees its per-device state.
 *
 * Kernels reach the state through the stream: (eng_cuda_impl *)s->impl. Library handles (cuBLASLt,
 * cuDNN) and algorithm caches are created on first use by their family and freed by
 * cuda_destroy through the *_state_free hooks. Threads: a backend's kernels are called by one
 * thread at a time (the scheduler runs one slice at a time), so the lazily made state needs no
 * lock; a second thread using the same device concurrently would need one. */
#ifndef ENG_CUDA_IMPL_H
#define ENG_CUDA_IMPL_H

#include "eng_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eng_cuda_impl {
    int device;
    char name[16];     /* "cuda:0", for messages */
    int prio_least;    /* cudaDeviceGetStreamPriorityRange: the default, numerically largest */
    int prio_greatest; /* the most urgent, numerically smallest (e.g. -5) */
    void *gemm;        /* gemm.cu: cuBLASLt handle and its caches; NULL until first used */
    void *conv;        /* conv.cu: cuDNN handle and the per-shape algorithm cache; likewise */
} eng_cuda_impl;

/* Each op family's file sets its entries of the op table (cuda/<family>.cu). */
void eng_cuda_register_elementwise(
    eng_op_table *ops);                         /* unary, binary, geglu, copy, upsample, temb */
void eng_cuda_register_norm(eng_op_table *ops); /* groupnorm, layernorm, softmax */
void eng_cuda_register_gemm(eng_op_table *ops); /* gemm */
void eng_cuda_register_conv(eng_op_table *ops); /* conv2d */
void eng_cuda_register_attention(eng_op_table *ops); /* attention */

/* Free a family's per-device state (NULL is a no-op); the device is current. */
void eng_cuda_gemm_state_free(void *state);
void eng_cuda_conv_state_free(void *state);

#ifdef __cplusplus
}
#endif
#endif /* ENG_CUDA_IMPL_H */
