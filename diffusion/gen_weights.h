/* gen_weights.h: the `gen info` and `gen make-checkpoint` commands (gen_weights.c), called by
 * gen's main.
 *
 *   gen info MODEL                       format, family, files, per component: tensors,
 *                                        parameters, dtypes and the detected architecture
 *   gen make-checkpoint --arch sd15|sd21|tiny --format ldm|diffusers --dtype f16|f32|bf16
 *                       [--seed N] [--vocab PATH] -o PATH
 *                                        a checkpoint of the real architecture with random
 *                                        weights, in exactly the real format
 *
 * Threads: commands, run from main only. */
#ifndef GEN_WEIGHTS_H
#define GEN_WEIGHTS_H

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "info". Returns the exit status: 0, 1 (the model cannot be read; reason on stderr)
 * or 2 (bad usage). */
int gen_info_main(int argc, char **argv);
/* argv[0] is "make-checkpoint". Returns 0, 1 (writing failed) or 2 (bad usage). */
int gen_make_checkpoint_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif /* GEN_WEIGHTS_H */
