/* eng_bench.c: benchmark timing, statistics, work accounting, peak estimates and the report
 * rows (eng_bench.h). */
#define _POSIX_C_SOURCE 200809L
#include "eng_bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng_alloc.h"
#include "eng_sched.h"

void eng_bench_params_init(eng_bench_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->warmup = 1;
    p->repeat = 10;
}

double eng_bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int eng_bench_sync(eng_ctx *ctx, eng_stream *s, eng_err *err) {
    const eng_backend *b;
    if (s == NULL || s->device == ENG_DEVICE_CPU) return ENG_OK;
    b = eng_ctx_backend(ctx, s->device);
    if (b == NULL || b->stream_sync == NULL) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "eng_bench_sync: no %s backend to wait for",
                           eng_device_name(s->device));
    }
    return b->stream_sync(b->impl, s, err);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted v (n >= 1), linear interpolation between neighbours. */
static double quantile(const double *v, int n, double q) {
    const double pos = q * (double)(n - 1);
    const int i = (int)pos;
    if (i + 1 >= n) return v[n - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

void eng_bench_stats(eng_bench_result *out, double *ms, int n) {
    double sum = 0.0;
    ENG_ASSERT(out != NULL && ms != NULL && n >= 1);
    memset(out, 0, sizeof *out);
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    for (int i = 0; i < n; i++)
        sum += ms[i];
    out->repeat = n;
    out->min_ms = ms[0];
    out->max_ms = ms[n - 1];
    out->median_ms = quantile(ms, n, 0.5);
    out->q1_ms = quantile(ms, n, 0.25);
    out->q3_ms = quantile(ms, n, 0.75);
    out->mean_ms = sum / n;
}

int eng_bench_run(eng_ctx *ctx,
                  eng_stream *s,
                  eng_bench_fn fn,
                  void *user,
                  const eng_bench_params *p,
                  eng_bench_result *out,
                  eng_err *err) {
    double *ms = NULL, spent = 0.0;
    int rc = ENG_OK, done_n = 0;
    ENG_ASSERT(ctx != NULL && fn != NULL && p != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    if (p->warmup < 0 || p->repeat < 1 || p->repeat > ENG_BENCH_MAX_REPEAT) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_bench_run: warmup %d and repeat %d (need warmup >= 0 and repeat "
                           "in [1, %d])",
                           p->warmup, p->repeat, ENG_BENCH_MAX_REPEAT);
    }
    ms = malloc((size_t)p->repeat * sizeof *ms);
    if (ms == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "eng_bench_run: %d timings", p->repeat);
        goto done;
    }
    for (int i = 0; i < p->warmup; i++) {
        if ((rc = fn(user, err)) != ENG_OK) goto done;
        if ((rc = eng_bench_sync(ctx, s, err)) != ENG_OK) goto done;
    }
    while (done_n < p->repeat) {
        if (p->flush != NULL) {
            if ((rc = p->flush(p->flush_user, err)) != ENG_OK) goto done;
            if ((rc = eng_bench_sync(ctx, s, err)) != ENG_OK) goto done;
        }
        const double t0 = eng_bench_now_s();
        if ((rc = fn(user, err)) != ENG_OK) goto done;
        if ((rc = eng_bench_sync(ctx, s, err)) != ENG_OK) goto done;
        const double t1 = eng_bench_now_s();
        ms[done_n++] = (t1 - t0) * 1e3;
        spent += t1 - t0;
        if (p->max_seconds > 0.0 && spent >= p->max_seconds) break;
    }
    eng_bench_stats(out, ms, done_n);
done:
    free(ms);
    return rc;
}

/* ---- work accounting ----------------------------------------------------------------------- */
double eng_bench_gemm_flops(int64_t m, int64_t n, int64_t k, int64_t batch) {
    return 2.0 * (double)m * (double)n * (double)k * (double)batch;
}

double eng_bench_conv2d_flops(const eng_conv2d_args *a) {
    ENG_ASSERT(a != NULL);
    return 2.0 * (double)a->n * (double)a->ho * (double)a->wo * (double)a->o * (double)a->kh *
           (double)a->kw * (double)a->c;
}

double eng_bench_attention_flops(const eng_attention_args *a) {
    double pairs = 0.0;
    ENG_ASSERT(a != NULL);
    if (!a->causal) {
        pairs = (double)a->lq * (double)a->lk;
    } else {
        /* query i sees keys j <= i + (lk - lq) */
        for (int64_t i = 0; i < a->lq; i++) {
            const int64_t seen = ENG_MIN(a->lk, ENG_MAX((int64_t)0, i + a->lk - a->lq + 1));
            pairs += (double)seen;
        }
    }
    return 4.0 * (double)a->d * pairs * (double)a->batch * (double)a->heads;
}

/* ---- peaks --------------------------------------------------------------------------------- */
int eng_bench_gpu_peak(const eng_device_info *info, eng_bench_peak *out) {
    /* Per SM and clock, dense: f32 FMA lanes x 2, and f16 tensor-core FLOP (f32 accumulate
     * runs at the same rate except on GeForce sm_86/89 boards, which halve it). From NVIDIA's
     * architecture white papers (A100, GA102, AD102, H100). */
    static const struct {
        int major, minor;
        double f32, f16_tc;
        const char *arch;
    } table[] = {
        {8, 0, 128.0, 2048.0, "sm_80"},
        {8, 6, 256.0, 1024.0, "sm_86"},
        {8, 9, 256.0, 1024.0, "sm_89"},
        {9, 0, 256.0, 4096.0, "sm_90"},
    };
    int known = 0;
    size_t used = 0;
    ENG_ASSERT(info != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    const double clock_hz = (double)info->clock_khz * 1e3;
    for (int i = 0; i < (int)(sizeof table / sizeof table[0]); i++) {
        if (table[i].major != info->cc_major || table[i].minor != info->cc_minor) continue;
        if (clock_hz <= 0.0 || info->sm_count <= 0) break;
        out->f32_flops = (double)info->sm_count * clock_hz * table[i].f32;
        out->f16_tc_flops = (double)info->sm_count * clock_hz * table[i].f16_tc;
        const int w =
            snprintf(out->how, sizeof out->how,
                     "estimate: %d SMs x %.0f MHz x (%.0f f32, %.0f f16 tensor-core) "
                     "FLOP/clk/SM (%s table)",
                     info->sm_count, clock_hz / 1e6, table[i].f32, table[i].f16_tc, table[i].arch);
        used = w > 0 ? ENG_MIN((size_t)w, sizeof out->how - 1) : 0;
        known = 1;
        break;
    }
    if (!known) {
        const int w = snprintf(out->how, sizeof out->how,
                               "no FLOP/s estimate for sm_%d%d (the table has sm_80/86/89/90)",
                               info->cc_major, info->cc_minor);
        used = w > 0 ? ENG_MIN((size_t)w, sizeof out->how - 1) : 0;
    }
    if (info->mem_clock_khz > 0 && info->mem_bus_bits > 0) {
        out->bytes_per_s =
            2.0 * (double)info->mem_clock_khz * 1e3 * (double)info->mem_bus_bits / 8.0;
        snprintf(out->how + used, sizeof out->how - used, "; bandwidth 2 x %.0f MHz x %d bits / 8",
                 (double)info->mem_clock_khz / 1e3, info->mem_bus_bits);
        known = 1;
    }
    return known;
}

typedef struct copy_job {
    unsigned char *dst;
    const unsigned char *src;
    size_t bytes;
} copy_job;

enum { COPY_PIECE = 1 << 20 };

static void copy_range(void *user, int64_t begin, int64_t end) {
    const copy_job *j = user;
    const size_t lo = (size_t)begin * COPY_PIECE;
    const size_t hi = ENG_MIN((size_t)end * COPY_PIECE, j->bytes);
    memcpy(j->dst + lo, j->src + lo, hi - lo);
}

int eng_bench_cpu_copy_bandwidth(
    eng_ctx *ctx, size_t bytes, int repeat, double *bytes_per_s, eng_err *err) {
    eng_alloc *a;
    void *src = NULL, *dst = NULL;
    double best = 0.0;
    int rc = ENG_OK;
    ENG_ASSERT(ctx != NULL && bytes_per_s != NULL);
    *bytes_per_s = 0.0;
    if (bytes < 4096 || repeat < 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_bench_cpu_copy_bandwidth: %zu bytes, %d repeats (need >= 4096 "
                           "and >= 1)",
                           bytes, repeat);
    }
    a = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    if ((rc = eng_alloc_take(a, &src, bytes, ENG_LIFE_STATE, "bench", err)) != ENG_OK) goto done;
    if ((rc = eng_alloc_take(a, &dst, bytes, ENG_LIFE_STATE, "bench", err)) != ENG_OK) goto done;
    memset(src, 1, bytes); /* touch every page of both before timing */
    memset(dst, 0, bytes);
    copy_job job = {dst, src, bytes};
    const int64_t pieces = (int64_t)ENG_CEIL_DIV(bytes, (size_t)COPY_PIECE);
    for (int r = 0; r < repeat; r++) {
        const double t0 = eng_bench_now_s();
        eng_pool_parallel_for(eng_ctx_pool(ctx), pieces, 1, copy_range, &job);
        const double dt = eng_bench_now_s() - t0;
        if (dt > 0.0 && 2.0 * (double)bytes / dt > best) best = 2.0 * (double)bytes / dt;
    }
    *bytes_per_s = best;
done:
    eng_alloc_give(a, dst);
    eng_alloc_give(a, src);
    return rc;
}

/* ---- report -------------------------------------------------------------------------------- */
char *eng_bench_format_rate(char *buf, size_t n, double per_s, int is_flops) {
    ENG_ASSERT(buf != NULL && n > 0);
    if (is_flops) {
        if (per_s >= 1e12) {
            snprintf(buf, n, "%.1f TFLOP/s", per_s / 1e12);
        } else {
            snprintf(buf, n, "%.1f GFLOP/s", per_s / 1e9);
        }
    } else {
        snprintf(buf, n, "%.1f GB/s", per_s / 1e9);
    }
    return buf;
}

void eng_bench_print_header(FILE *out) {
    fprintf(out, "%-16s %-34s %-5s %10s %21s %15s %8s %8s\n", "op", "shape", "dtype", "median ms",
            "spread (min..max) ms", "rate", "of peak", "of ref");
    fprintf(out, "%.*s\n", 124,
            "-------------------------------------------------------------------------------"
            "----------------------------------------------------------------------------");
}

void eng_bench_print_row(FILE *out, const eng_bench_row *row) {
    char rate[32], spread[48], of_peak[16], of_ref[16];
    const int is_flops = row->flops > 0.0;
    const double work = is_flops ? row->flops : row->bytes;
    const double per_s = row->r.median_ms > 0.0 ? work / (row->r.median_ms * 1e-3) : 0.0;
    ENG_ASSERT(out != NULL && row != NULL);
    eng_bench_format_rate(rate, sizeof rate, per_s, is_flops);
    snprintf(spread, sizeof spread, "%.3f..%.3f", row->r.min_ms, row->r.max_ms);
    if (row->peak > 0.0) {
        snprintf(of_peak, sizeof of_peak, "%.1f%%", 100.0 * per_s / row->peak);
    } else {
        snprintf(of_peak, sizeof of_peak, "-");
    }
    if (row->ref_rate > 0.0) {
        snprintf(of_ref, sizeof of_ref, "%.1f%%", 100.0 * per_s / row->ref_rate);
    } else {
        snprintf(of_ref, sizeof of_ref, "-");
    }
    fprintf(out, "%-16s %-34s %-5s %10.3f %21s %15s %8s %8s\n", row->op, row->shape, row->dtype,
            row->r.median_ms, spread, rate, of_peak, of_ref);
    fflush(out);
}
