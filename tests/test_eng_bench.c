/* test_eng_bench.c: the benchmark helpers (engine/eng_bench.h): statistics, the timing loop,
 * FLOP accounting, the GPU peak estimate and the report row. No timing thresholds. */
#include "eng_bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"

static int close_to(double a, double b) {
    return fabs(a - b) <= 1e-9 * (fabs(b) > 1.0 ? fabs(b) : 1.0);
}

static int test_stats(void) {
    double ms[5] = {5.0, 1.0, 4.0, 2.0, 3.0}; /* unsorted on purpose */
    double even[4] = {4.0, 1.0, 3.0, 2.0};
    double one[1] = {7.5};
    eng_bench_result r;
    eng_bench_stats(&r, ms, 5);
    CHECK(r.repeat == 5);
    CHECK(close_to(r.median_ms, 3.0) && close_to(r.min_ms, 1.0) && close_to(r.max_ms, 5.0));
    CHECK(close_to(r.q1_ms, 2.0) && close_to(r.q3_ms, 4.0) && close_to(r.mean_ms, 3.0));
    CHECK(ms[0] == 1.0 && ms[4] == 5.0); /* sorted in place */
    eng_bench_stats(&r, even, 4);
    CHECK(close_to(r.median_ms, 2.5) && close_to(r.q1_ms, 1.75) && close_to(r.q3_ms, 3.25));
    eng_bench_stats(&r, one, 1);
    CHECK(close_to(r.median_ms, 7.5) && close_to(r.min_ms, 7.5) && close_to(r.q3_ms, 7.5));
    return 0;
}

typedef struct counter {
    int calls, flushes, fail_at;
} counter;

static int count_call(void *user, eng_err *err) {
    counter *c = user;
    c->calls++;
    if (c->fail_at > 0 && c->calls == c->fail_at) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "count_call: failing call %d", c->calls);
    }
    return ENG_OK;
}

static int count_flush(void *user, eng_err *err) {
    (void)err;
    ((counter *)user)->flushes++;
    return ENG_OK;
}

static int test_run(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_bench_params p;
    eng_bench_result r;
    eng_err err = {0};
    counter c = {0, 0, 0};
    CHECK(ctx != NULL);
    eng_bench_params_init(&p);
    CHECK(p.warmup == 1 && p.repeat == 10 && p.flush == NULL);
    p.warmup = 2;
    p.repeat = 5;
    p.flush = count_flush;
    p.flush_user = &c;
    CHECK_OK(eng_bench_run(ctx, NULL, count_call, &c, &p, &r, &err), &err);
    CHECK(c.calls == 7 && c.flushes == 5 && r.repeat == 5);
    CHECK(r.min_ms >= 0.0 && r.min_ms <= r.q1_ms && r.q1_ms <= r.median_ms);
    CHECK(r.median_ms <= r.q3_ms && r.q3_ms <= r.max_ms);
    /* a failing call stops the run with its error */
    c = (counter){0, 0, 4};
    CHECK(eng_bench_run(ctx, NULL, count_call, &c, &p, &r, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "failing call 4");
    /* bad parameters are refused */
    p.repeat = 0;
    CHECK(eng_bench_run(ctx, NULL, count_call, &c, &p, &r, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "repeat 0");
    p.repeat = 3;
    p.warmup = -1;
    CHECK(eng_bench_run(ctx, NULL, count_call, &c, &p, &r, &err) == ENG_E_INVALID_ARG);
    /* a time limit keeps at least one timed call */
    c = (counter){0, 0, 0};
    p.warmup = 0;
    p.repeat = 1000;
    p.flush = NULL;
    p.max_seconds = 1e-12;
    CHECK_OK(eng_bench_run(ctx, NULL, count_call, &c, &p, &r, &err), &err);
    CHECK(r.repeat >= 1 && r.repeat < 1000 && c.calls == r.repeat);
    /* a stream of a device without a backend cannot be waited for */
    eng_stream gpu = {ENG_DEVICE_CUDA, NULL, NULL, NULL, NULL};
    CHECK(eng_bench_sync(ctx, &gpu, &err) == ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "no cuda backend");
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_flops(void) {
    eng_conv2d_args c;
    eng_attention_args a;
    CHECK(close_to(eng_bench_gemm_flops(2, 3, 4, 5), 240.0));
    memset(&c, 0, sizeof c);
    c.n = 2, c.h = 64, c.w_in = 64, c.c = 320, c.o = 320, c.kh = c.kw = 3, c.stride = 1;
    c.pad = 1, c.ho = 64, c.wo = 64;
    CHECK(close_to(eng_bench_conv2d_flops(&c), 2.0 * 2 * 64 * 64 * 320 * 9 * 320));
    memset(&a, 0, sizeof a);
    a.batch = 2, a.heads = 8, a.lq = 4096, a.lk = 77, a.d = 40;
    CHECK(close_to(eng_bench_attention_flops(&a), 4.0 * 40 * 4096 * 77 * 2 * 8));
    /* causal, lq == lk == 4: 1 + 2 + 3 + 4 = 10 pairs */
    a.batch = 1, a.heads = 1, a.lq = 4, a.lk = 4, a.d = 2, a.causal = 1;
    CHECK(close_to(eng_bench_attention_flops(&a), 4.0 * 2 * 10));
    /* causal, lq 2 < lk 5: query i sees keys j <= i + 3: 4 + 5 pairs */
    a.lq = 2, a.lk = 5;
    CHECK(close_to(eng_bench_attention_flops(&a), 4.0 * 2 * 9));
    return 0;
}

static int test_gpu_peak(void) {
    eng_device_info info;
    eng_bench_peak pk;
    memset(&info, 0, sizeof info);
    /* an H100 SXM as cudaDeviceGetAttribute reports it */
    info.cc_major = 9, info.cc_minor = 0, info.sm_count = 132, info.clock_khz = 1980000;
    info.mem_clock_khz = 2619000, info.mem_bus_bits = 5120;
    CHECK(eng_bench_gpu_peak(&info, &pk) == 1);
    CHECK(close_to(pk.f16_tc_flops, 132.0 * 1.98e9 * 4096.0));
    CHECK(close_to(pk.f32_flops, 132.0 * 1.98e9 * 256.0));
    CHECK(close_to(pk.bytes_per_s, 2.0 * 2.619e9 * 5120.0 / 8.0));
    CHECK_CONTAINS(pk.how, "estimate");
    CHECK_CONTAINS(pk.how, "sm_90");
    /* an A100: 108 SMs at 1410 MHz give its 312 TFLOP/s f16 and 19.5 f32 */
    info.cc_major = 8, info.cc_minor = 0, info.sm_count = 108, info.clock_khz = 1410000;
    CHECK(eng_bench_gpu_peak(&info, &pk) == 1);
    CHECK(fabs(pk.f16_tc_flops / 1e12 - 312.0) < 1.0 && fabs(pk.f32_flops / 1e12 - 19.5) < 0.1);
    /* unknown architecture: no FLOP figures, bandwidth still known */
    info.cc_major = 7, info.cc_minor = 5;
    CHECK(eng_bench_gpu_peak(&info, &pk) == 1);
    CHECK(pk.f16_tc_flops == 0.0 && pk.f32_flops == 0.0 && pk.bytes_per_s > 0.0);
    CHECK_CONTAINS(pk.how, "sm_75");
    /* nothing known */
    info.mem_clock_khz = 0;
    CHECK(eng_bench_gpu_peak(&info, &pk) == 0);
    return 0;
}

static int test_copy_bandwidth(void) {
    eng_ctx *ctx = eng_test_ctx(2);
    eng_err err = {0};
    double bw = -1.0;
    CHECK(ctx != NULL);
    CHECK_OK(eng_bench_cpu_copy_bandwidth(ctx, (size_t)3 << 20, 2, &bw, &err), &err);
    CHECK(bw > 0.0 && isfinite(bw));
    CHECK(eng_bench_cpu_copy_bandwidth(ctx, 100, 1, &bw, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "100 bytes");
    /* everything taken was given back */
    eng_alloc_stats st;
    eng_alloc_get_stats(eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &st);
    CHECK(st.live_allocations == 0);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_row(void) {
    char buf[4096];
    FILE *f = tmpfile();
    eng_bench_row row;
    CHECK(f != NULL);
    memset(&row, 0, sizeof row);
    row.op = "conv3x3";
    row.shape = "2x64x64x320 -> 320";
    row.dtype = "f32";
    row.r.median_ms = 2.0, row.r.min_ms = 1.5, row.r.max_ms = 3.0;
    row.flops = 4e9;     /* 2 TFLOP/s */
    row.peak = 8e12;     /* 25% */
    row.ref_rate = 1e12; /* 200% */
    eng_bench_print_header(f);
    eng_bench_print_row(f, &row);
    row.flops = 0.0, row.bytes = 2e9, row.peak = 0.0, row.ref_rate = 0.0; /* 1000 GB/s */
    eng_bench_print_row(f, &row);
    rewind(f);
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fputs(buf, stdout);
    CHECK_CONTAINS(buf, "median ms");
    CHECK_CONTAINS(buf, "1.500..3.000");
    CHECK_CONTAINS(buf, "2.0 TFLOP/s");
    CHECK_CONTAINS(buf, "25.0%");
    CHECK_CONTAINS(buf, "200.0%");
    CHECK_CONTAINS(buf, "1000.0 GB/s");
    char r[32];
    CHECK(strcmp(eng_bench_format_rate(r, sizeof r, 93.4e9, 1), "93.4 GFLOP/s") == 0);
    CHECK(strcmp(eng_bench_format_rate(r, sizeof r, 12.3e9, 0), "12.3 GB/s") == 0);
    return 0;
}

static const eng_test_case cases[] = {
    {"stats", test_stats},
    {"run", test_run},
    {"flops", test_flops},
    {"gpu_peak", test_gpu_peak},
    {"copy_bandwidth", test_copy_bandwidth},
    {"row", test_row},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
