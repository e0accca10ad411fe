/* eng_bench.h: timing and reporting for the benchmark commands (`gen bench --ops`, later
 * `nerf bench`): warm-up, timed repeats, median and spread, FLOP and byte accounting, the
 * device's peak figures, and one table row per op and shape.
 *
 *   eng_bench_params p; eng_bench_params_init(&p); p.repeat = 10;
 *   eng_bench_result r;
 *   if (eng_bench_run(ctx, stream, run_my_op, &my_op, &p, &r, &err) != ENG_OK) ...
 *   eng_bench_row row = {"conv3x3", "2x64x64x320 -> 320", "f16", r,
 *                        eng_bench_conv2d_flops(&args), bytes, peak.f16_tc_flops, 0};
 *   eng_bench_print_header(stdout); eng_bench_print_row(stdout, &row);
 *
 * Timing: the host's monotonic clock around each call plus a wait for the stream (the backend's
 * stream_sync; CPU ops return when done). On a GPU this includes the launch and the sync's
 * wake-up (some microseconds), which matters only for kernels shorter than ~100 us; CUDA events
 * (conventions 2.8) would need cuda/ and are a later refinement. A `flush` callback runs, untimed,
 * before each timed call (the GPU bench overwrites a buffer larger than L2 there).
 * Spread: min and max of the timed calls (and the quartiles, in the result).
 * Peaks: GPU figures are estimates from the SM count, the clocks and a per-SM throughput table
 * by compute capability (eng_bench_gpu_peak); the CPU has no table: the CPU bench measures
 * OpenBLAS sgemm and a threaded copy on the same machine and uses those as its references.
 * Threads: eng_bench_run uses the stream like any op (one thread at a time); the rest are pure
 * functions or write only to `out`. */
#ifndef ENG_BENCH_H
#define ENG_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eng_backend.h"
#include "eng_ctx.h"
#include "eng_err.h"
#include "eng_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ENG_BENCH_MAX_REPEAT 100000

/* One call of the thing being timed (queues work on the stream the bench waits for). */
typedef int (*eng_bench_fn)(void *user, eng_err *err);

typedef struct eng_bench_params {
    int warmup;         /* untimed calls first (caches, page faults, algorithm choice); 1 */
    int repeat;         /* timed calls; 10 */
    eng_bench_fn flush; /* called before each timed call, untimed; NULL: none */
    void *flush_user;   /* passed to flush */
    double max_seconds; /* stop repeating once the timed calls took this long (at least one
                             * call is timed); 0 = no limit */
} eng_bench_params;

typedef struct eng_bench_result {
    int repeat;                       /* timed calls made */
    double median_ms, min_ms, max_ms; /* per call */
    double q1_ms, q3_ms;              /* quartiles (linear interpolation) */
    double mean_ms;
} eng_bench_result;

/* Defaults: warmup 1, repeat 10, no flush, no time limit. */
void eng_bench_params_init(eng_bench_params *p);

/* Seconds on a monotonic clock (an arbitrary origin). */
double eng_bench_now_s(void);

/* Waits until the work queued on s is done: the backend's stream_sync for a device stream,
 * nothing for a CPU stream (CPU ops return when done). s NULL: the CPU.
 * Errors: ENG_E_UNSUPPORTED (no backend for the stream's device), the backend's errors. */
int eng_bench_sync(eng_ctx *ctx, eng_stream *s, eng_err *err);

/* Times fn: p->warmup untimed calls, then up to p->repeat timed ones, each followed by
 * eng_bench_sync(ctx, s) inside the timed interval. The first failing call's error is returned.
 * Errors: ENG_E_INVALID_ARG (warmup < 0, repeat < 1 or > ENG_BENCH_MAX_REPEAT), ENG_E_OOM, and
 * whatever fn, flush or the sync return. */
int eng_bench_run(eng_ctx *ctx,
                  eng_stream *s,
                  eng_bench_fn fn,
                  void *user,
                  const eng_bench_params *p,
                  eng_bench_result *out,
                  eng_err *err);

/* Median, quartiles, min, max and mean of n >= 1 durations in ms; sorts ms in place. */
void eng_bench_stats(eng_bench_result *out, double *ms, int n);

/* ---- work accounting (FLOPs count a multiply-add as 2) ------------------------------------- */
double eng_bench_gemm_flops(int64_t m, int64_t n, int64_t k, int64_t batch); /* 2 m n k batch */
double eng_bench_conv2d_flops(const eng_conv2d_args *a); /* 2 n ho wo o kh kw c */
/* QK^T and PV over the unmasked (query, key) pairs: 4 d x pairs per batch and head. */
double eng_bench_attention_flops(const eng_attention_args *a);

/* ---- peaks --------------------------------------------------------------------------------- */
typedef struct eng_bench_peak {
    double f32_flops;    /* FLOP/s of the f32 FMA units (no tensor cores); 0 = unknown */
    double f16_tc_flops; /* dense f16/bf16 tensor-core FLOP/s; 0 = unknown */
    double bytes_per_s;  /* memory bandwidth; 0 = unknown */
    char how[256];       /* how the figures were obtained, for the report */
} eng_bench_peak;

/* Estimates a GPU's peaks: SMs x SM clock x per-SM FLOP per clock from a table for sm_80, 86,
 * 89 and 90 (f32: 128 or 256; f16 tensor cores, dense: 2048 on sm_80, 1024 on sm_86/89 (with
 * f16 accumulation; GeForce boards halve it with f32 accumulation), 4096 on sm_90), and
 * bandwidth = 2 x memory clock x bus width / 8. Fields it cannot estimate stay 0 (other
 * architectures, or a device info without clocks). Returns 1 when any figure is known. */
int eng_bench_gpu_peak(const eng_device_info *info, eng_bench_peak *out);

/* Measures the CPU's copy bandwidth: `bytes` copied between two buffers from the context's CPU
 * allocator, split over the context's pool, best of `repeat`; *bytes_per_s counts the bytes
 * read plus the bytes written. Errors: ENG_E_INVALID_ARG (bytes < 4096, repeat < 1), ENG_E_OOM. */
int eng_bench_cpu_copy_bandwidth(
    eng_ctx *ctx, size_t bytes, int repeat, double *bytes_per_s, eng_err *err);

/* ---- report -------------------------------------------------------------------------------- */
typedef struct eng_bench_row {
    const char *op;    /* "conv3x3" */
    const char *shape; /* "2x64x64x320 -> 320" */
    const char *dtype; /* "f32" */
    eng_bench_result r;
    double flops;    /* work per call; > 0: the rate is FLOP/s */
    double bytes;    /* minimum memory traffic per call; used when flops == 0: B/s */
    double peak;     /* the device's peak for that rate (FLOP/s or B/s); 0 = unknown */
    double ref_rate; /* a reference rate for the same work (e.g. sgemm of the same M, N, K,
                         * in FLOP/s); 0 = none */
} eng_bench_row;

/* The column names and a rule; then one line per row: op, shape, dtype, median ms,
 * min..max ms, the rate (GFLOP/s or TFLOP/s, GB/s), the fraction of the peak and of the
 * reference ("-" when unknown). */
void eng_bench_print_header(FILE *out);
void eng_bench_print_row(FILE *out, const eng_bench_row *row);
/* "93.4 GFLOP/s", "512.0 TFLOP/s", "12.3 GB/s" into buf (n bytes); returns buf. */
char *eng_bench_format_rate(char *buf, size_t n, double per_s, int is_flops);

#ifdef __cplusplus
}
#endif
#endif /* ENG_BENCH_H */
