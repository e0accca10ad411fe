/* gen_bench.h: the `gen bench` command (gen_bench.c), called by gen's main.
 *
 *   gen bench --ops [--device cpu|cuda] [--dtype f32|f16|bf16] [--op NAME[,NAME]]
 *                   [--repeat N] [--threads N] [--smoke]
 *
 * times the diffusion ops (GEMM, linear, GEGLU, conv, GroupNorm+SiLU, attention) at the SD1.5
 * shapes of a 512x512 image (batch 2 for classifier-free guidance) and prints one row per op and
 * shape: median and spread in ms, the achieved rate beside the device's peak, and on the CPU the
 * GEMM and conv rates as a fraction of OpenBLAS sgemm measured in the same run (docs/
 * benchmarks.md records results). Threads: a command, run from main only. */
#ifndef GEN_BENCH_H
#define GEN_BENCH_H

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "bench". Returns the exit status: 0, 1 (an op failed; the reason on stderr) or
 * 2 (bad usage, or --device cuda without a usable CUDA device). */
int gen_bench_main(int argc, char **argv);
/* `gen bench [-m MODEL] --res N --steps N ...` (gen_bench_model.c): whole generations timed;
 * gen_bench_main hands argv over when --ops is absent. Same exit statuses. */
int gen_bench_model_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif /* GEN_BENCH_H */
