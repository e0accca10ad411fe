/* gen_bench.c: `gen bench --ops`: times the diffusion ops at the SD1.5 shapes of a 512x512 image
 * (latent 64x64, batch 2 for classifier-free guidance) on the CPU or a CUDA device, with the
 * timing, accounting and report of engine/eng_bench.h. Every tensor comes from the context's
 * allocator for the device (eng_tensor_alloc), inputs are Philox uniforms (eng_op_fill_uniform,
 * converted on the host for f16/bf16), workspaces come from the stream's arena inside the ops.
 * On the CPU, each GEMM-shaped row (matmul, linear, conv) is preceded by an OpenBLAS sgemm row of
 * the same M, N, K (eng_cpu_gemm_f32, same threads), and the op's rate is printed as a fraction
 * of it; a square 1024 sgemm and a threaded copy, measured first, stand for the CPU's peaks. */
#define _POSIX_C_SOURCE 200809L
#include "gen_bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng.h"
#include "eng_bench.h"
#include "eng_cuda.h"
#include "eng_version.h"

static const char usage[] =
    "usage: gen bench --ops [--device cpu|cuda] [--dtype f32|f16|bf16] [--op NAME[,NAME...]]\n"
    "                 [--repeat N] [--threads N] [--smoke]\n"
    "\n"
    "Times the diffusion ops at the SD1.5 shapes of a 512x512 image (batch 2) and prints one row\n"
    "per op and shape: median and spread (min..max) in ms, the achieved GFLOP/s or GB/s, the\n"
    "fraction of the device's peak and, on the CPU, the fraction of OpenBLAS sgemm measured in\n"
    "the same run for the same M, N, K.\n"
    "\n"
    "  --ops            benchmark the ops (without it: whole generations, gen bench --help)\n"
    "  --device D       cpu (default) or cuda (device 0; exit 2 when there is none)\n"
    "  --dtype T        f32 (default on the CPU, its only type) or f16 (default on CUDA), bf16\n"
    "  --op LIST        only these families: gemm, linear, geglu, conv, groupnorm, attention\n"
    "  --repeat N       timed calls per row after one warm-up call (default: 3 on the CPU,\n"
    "                   20 on CUDA, 1 with --smoke)\n"
    "  --threads N      CPU threads (default: ENG_THREADS, else all CPUs)\n"
    "  --smoke          tiny shapes, one timed call: checks that everything runs\n"
    "  --help           print this help\n";

/* ---- the shapes -------------------------------------------------------------------------------
 * d[] by family:  gemm: m n k | linear: b l in out | geglu: b l d (x (b, l, 2d) -> (b, l, d)) |
 * conv: n h w c o k stride pad | groupnorm: n h w c groups | attention: b lq lk heads d */
typedef enum fam {
    FAM_GEMM,
    FAM_LINEAR,
    FAM_GEGLU,
    FAM_CONV,
    FAM_GROUPNORM,
    FAM_ATTENTION,
    FAM_COUNT
} fam;
static const char *const fam_names[FAM_COUNT] = {"gemm", "linear",    "geglu",
                                                 "conv", "groupnorm", "attention"};

enum { WHERE_ANY, WHERE_CPU, WHERE_GPU };

typedef struct shape_spec {
    fam family;
    int where;
    const char *label;
    int64_t d[8];
} shape_spec;

static const shape_spec full_shapes[] = {
    {FAM_GEMM, WHERE_CPU, "matmul", {1024, 1024, 1024}},
    {FAM_GEMM, WHERE_GPU, "matmul", {4096, 4096, 4096}},
    {FAM_LINEAR, WHERE_ANY, "linear", {2, 4096, 320, 1280}},
    {FAM_GEGLU, WHERE_ANY, "geglu", {2, 4096, 1280}},
    {FAM_CONV, WHERE_ANY, "conv3x3", {2, 64, 64, 320, 320, 3, 1, 1}},
    {FAM_CONV, WHERE_ANY, "conv3x3", {2, 32, 32, 640, 640, 3, 1, 1}},
    {FAM_CONV, WHERE_ANY, "conv3x3", {2, 16, 16, 1280, 1280, 3, 1, 1}},
    {FAM_CONV, WHERE_ANY, "conv3x3", {2, 8, 8, 1280, 1280, 3, 1, 1}},
    {FAM_GROUPNORM, WHERE_ANY, "groupnorm+silu", {2, 64, 64, 320, 32}},
    {FAM_GROUPNORM, WHERE_ANY, "groupnorm+silu", {2, 32, 32, 640, 32}},
    {FAM_GROUPNORM, WHERE_ANY, "groupnorm+silu", {2, 16, 16, 1280, 32}},
    {FAM_GROUPNORM, WHERE_ANY, "groupnorm+silu", {2, 8, 8, 1280, 32}},
    {FAM_ATTENTION, WHERE_ANY, "attention", {2, 4096, 4096, 8, 40}},
    {FAM_ATTENTION, WHERE_ANY, "cross-attention", {2, 4096, 77, 8, 40}},
    {FAM_ATTENTION, WHERE_ANY, "attention", {2, 4096, 4096, 8, 64}},
};

/* --smoke: tiny, odd where it costs nothing (a stride-2 conv on 9x7). */
static const shape_spec smoke_shapes[] = {
    {FAM_GEMM, WHERE_ANY, "matmul", {64, 48, 40}},
    {FAM_LINEAR, WHERE_ANY, "linear", {1, 64, 32, 48}},
    {FAM_GEGLU, WHERE_ANY, "geglu", {1, 64, 32}},
    {FAM_CONV, WHERE_ANY, "conv3x3", {1, 8, 8, 16, 16, 3, 1, 1}},
    {FAM_CONV, WHERE_ANY, "conv3x3", {1, 9, 7, 8, 12, 3, 2, 1}},
    {FAM_GROUPNORM, WHERE_ANY, "groupnorm+silu", {1, 8, 8, 64, 32}},
    {FAM_ATTENTION, WHERE_ANY, "attention", {1, 64, 64, 2, 40}},
    {FAM_ATTENTION, WHERE_ANY, "cross-attention", {1, 64, 77, 2, 40}},
    {FAM_ATTENTION, WHERE_ANY, "attention", {1, 64, 64, 2, 64}},
};

/* ---- state ------------------------------------------------------------------------------- */
typedef struct bench {
    eng_ctx *ctx;
    eng_device_kind dev;
    eng_dtype dtype;
    eng_stream *s;
    eng_alloc *alloc; /* the device's */
    eng_bench_params params;
    uint64_t next_offset; /* Philox stream of the next input */
    double peak_flops, peak_bytes;
    eng_tensor flush_buf; /* GPU: larger than L2, rewritten before each timed call */
    int have_flush;
    int failed, unsupported, rows;
} bench;

#define MAX_T 5
typedef struct bench_op {
    bench *b;
    const shape_spec *sp;
    int sgemm;           /* 1: the OpenBLAS reference eng_cpu_gemm_f32 on t[1], t[2] -> t[0] */
    int64_t m, n, k;     /* sgemm */
    eng_tensor t[MAX_T]; /* t[0] the output, then the inputs */
    int nt;
    eng_conv2d_args conv; /* for the FLOP count */
    eng_attention_args att;
} bench_op;

static int flush_l2(void *user, eng_err *err) {
    bench *b = user;
    return eng_op_fill_uniform(b->ctx, b->s, &b->flush_buf, 7, b->next_offset++, err);
}

/* Allocates t[nt] on the bench's device; fill: Philox uniforms in [0, 1) (converted on the
 * host when the dtype is not f32 or the device not the CPU). */
static int
add_tensor(bench_op *op, eng_dtype dt, int ndim, const int64_t *shape, int fill, eng_err *err) {
    bench *b = op->b;
    eng_alloc *host = eng_ctx_alloc(b->ctx, ENG_DEVICE_CPU);
    eng_tensor hf, hc;
    int rc, have_hf = 0, have_hc = 0;
    eng_tensor *t = &op->t[op->nt];
    ENG_ASSERT(op->nt < MAX_T);
    if ((rc = eng_tensor_alloc(t, b->alloc, ENG_LIFE_STATE, "bench", dt, ndim, shape, err)) !=
        ENG_OK) {
        return rc;
    }
    op->nt++;
    if (!fill) return ENG_OK;
    const uint64_t offset = b->next_offset++;
    if (b->dev == ENG_DEVICE_CPU && dt == ENG_DTYPE_F32) {
        return eng_op_fill_uniform(b->ctx, NULL, t, 42, offset, err);
    }
    if ((rc = eng_tensor_alloc(&hf, host, ENG_LIFE_STATE, "bench", ENG_DTYPE_F32, ndim, shape,
                               err)) != ENG_OK) {
        goto done;
    }
    have_hf = 1;
    if ((rc = eng_op_fill_uniform(b->ctx, NULL, &hf, 42, offset, err)) != ENG_OK) goto done;
    const eng_tensor *src = &hf;
    if (dt != ENG_DTYPE_F32) {
        if ((rc = eng_tensor_alloc(&hc, host, ENG_LIFE_STATE, "bench", dt, ndim, shape, err)) !=
            ENG_OK) {
            goto done;
        }
        have_hc = 1;
        if ((rc = eng_op_convert(b->ctx, NULL, &hc, &hf, err)) != ENG_OK) goto done;
        src = &hc;
    }
    rc = eng_op_copy(b->ctx, t, src, err);
done:
    if (have_hc) eng_tensor_free(host, &hc);
    if (have_hf) eng_tensor_free(host, &hf);
    return rc;
}

static void free_op(bench_op *op) {
    while (op->nt > 0) {
        op->nt--;
        eng_tensor_free(op->b->alloc, &op->t[op->nt]);
    }
}

static int run_op(void *user, eng_err *err) {
    bench_op *op = user;
    bench *b = op->b;
    eng_tensor *t = op->t;
    if (op->sgemm) {
        return eng_cpu_gemm_f32(b->s, 0, 1, op->m, op->n, op->k, 1.0f, t[1].data, op->k, t[2].data,
                                op->k, 0.0f, t[0].data, op->n, err);
    }
    switch (op->sp->family) {
    case FAM_GEMM: return eng_op_matmul(b->ctx, b->s, &t[0], &t[1], &t[2], 0, 0, 1.0f, 0.0f, err);
    case FAM_LINEAR:
        return eng_op_linear(b->ctx, b->s, &t[0], &t[1], &t[2], &t[3], ENG_ACT_NONE, err);
    case FAM_GEGLU: return eng_op_geglu(b->ctx, b->s, &t[0], &t[1], err);
    case FAM_CONV:
        return eng_op_conv2d(b->ctx, b->s, &t[0], &t[1], &t[2], &t[3], op->conv.stride,
                             op->conv.pad, err);
    case FAM_GROUPNORM:
        return eng_op_groupnorm(b->ctx, b->s, &t[0], &t[1], &t[2], &t[3], op->sp->d[4], 1e-5f,
                                ENG_ACT_SILU, err);
    case FAM_ATTENTION:
        return eng_op_attention(b->ctx, b->s, &t[0], &t[1], &t[2], &t[3], op->att.scale, 0, err);
    case FAM_COUNT: break;
    }
    ENG_ASSERT(0);
    return ENG_E_INVALID_ARG;
}

/* Sets up op's tensors for spec sp; fills shape (the row's text), *flops or *bytes. */
static int
setup_op(bench_op *op, char *shape, size_t shape_n, double *flops, double *bytes, eng_err *err) {
    const int64_t *d = op->sp->d;
    const eng_dtype dt = op->b->dtype;
    const double es = (double)eng_dtype_size(dt);
    int rc = ENG_OK;
    *flops = 0.0;
    *bytes = 0.0;
    switch (op->sp->family) {
    case FAM_GEMM: {
        const int64_t c[2] = {d[0], d[1]}, a[2] = {d[0], d[2]}, bm[2] = {d[2], d[1]};
        if ((rc = add_tensor(op, dt, 2, c, 0, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 2, a, 1, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 2, bm, 1, err)) != ENG_OK) return rc;
        snprintf(shape, shape_n, "%lldx%lldx%lld (MxNxK)", (long long)d[0], (long long)d[1],
                 (long long)d[2]);
        *flops = eng_bench_gemm_flops(d[0], d[1], d[2], 1);
        break;
    }
    case FAM_LINEAR: {
        const int64_t y[3] = {d[0], d[1], d[3]}, x[3] = {d[0], d[1], d[2]};
        const int64_t w[2] = {d[3], d[2]}, bias[1] = {d[3]};
        if ((rc = add_tensor(op, dt, 3, y, 0, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 3, x, 1, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 2, w, 1, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 1, bias, 1, err)) != ENG_OK) return rc;
        snprintf(shape, shape_n, "%lldx%lldx%lld -> %lld", (long long)d[0], (long long)d[1],
                 (long long)d[2], (long long)d[3]);
        *flops = eng_bench_gemm_flops(d[0] * d[1], d[3], d[2], 1);
        break;
    }
    case FAM_GEGLU: {
        const int64_t y[3] = {d[0], d[1], d[2]}, x[3] = {d[0], d[1], 2 * d[2]};
        if ((rc = add_tensor(op, dt, 3, y, 0, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 3, x, 1, err)) != ENG_OK) return rc;
        snprintf(shape, shape_n, "%lldx%lldx%lld -> %lld", (long long)d[0], (long long)d[1],
                 (long long)(2 * d[2]), (long long)d[2]);
        *bytes = es * (double)(d[0] * d[1]) * (double)(3 * d[2]); /* read 2d, write d */
        break;
    }
    case FAM_CONV: {
        eng_conv2d_args *c = &op->conv;
        memset(c, 0, sizeof *c);
        c->n = d[0], c->h = d[1], c->w_in = d[2], c->c = d[3], c->o = d[4];
        c->kh = c->kw = d[5], c->stride = d[6], c->pad = d[7];
        c->ho = (c->h + 2 * c->pad - c->kh) / c->stride + 1;
        c->wo = (c->w_in + 2 * c->pad - c->kw) / c->stride + 1;
        const int64_t y[4] = {c->n, c->ho, c->wo, c->o}, x[4] = {c->n, c->h, c->w_in, c->c};
        const int64_t w[4] = {c->o, c->kh, c->kw, c->c}, bias[1] = {c->o};
        if ((rc = add_tensor(op, dt, 4, y, 0, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 4, x, 1, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 4, w, 1, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 1, bias, 1, err)) != ENG_OK) return rc;
        snprintf(shape, shape_n, "%lldx%lldx%lldx%lld -> %lld, %lldx%lld s%lld", (long long)c->n,
                 (long long)c->h, (long long)c->w_in, (long long)c->c, (long long)c->o,
                 (long long)c->kh, (long long)c->kw, (long long)c->stride);
        *flops = eng_bench_conv2d_flops(c);
        break;
    }
    case FAM_GROUPNORM: {
        const int64_t x[4] = {d[0], d[1], d[2], d[3]}, g[1] = {d[3]};
        if ((rc = add_tensor(op, dt, 4, x, 0, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 4, x, 1, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 1, g, 1, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 1, g, 1, err)) != ENG_OK) return rc;
        snprintf(shape, shape_n, "%lldx%lldx%lldx%lld, %lld groups", (long long)d[0],
                 (long long)d[1], (long long)d[2], (long long)d[3], (long long)d[4]);
        /* the least traffic: read x once, write y once (a two-pass kernel reads x twice) */
        *bytes = 2.0 * es * (double)(d[0] * d[1] * d[2] * d[3]);
        break;
    }
    case FAM_ATTENTION: {
        eng_attention_args *a = &op->att;
        memset(a, 0, sizeof *a);
        a->batch = d[0], a->lq = d[1], a->lk = d[2], a->heads = d[3], a->d = d[4];
        a->scale = (float)(1.0 / sqrt((double)a->d));
        const int64_t q[4] = {a->batch, a->lq, a->heads, a->d};
        const int64_t kv[4] = {a->batch, a->lk, a->heads, a->d};
        if ((rc = add_tensor(op, dt, 4, q, 0, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 4, q, 1, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 4, kv, 1, err)) != ENG_OK) return rc;
        if ((rc = add_tensor(op, dt, 4, kv, 1, err)) != ENG_OK) return rc;
        snprintf(shape, shape_n, "b%lld h%lld %lldx%lld d%lld", (long long)a->batch,
                 (long long)a->heads, (long long)a->lq, (long long)a->lk, (long long)a->d);
        *flops = eng_bench_attention_flops(a);
        break;
    }
    case FAM_COUNT: ENG_ASSERT(0);
    }
    return rc;
}

/* The sgemm M, N, K of a GEMM-shaped spec (0: not GEMM-shaped). */
static int gemm_shape(const shape_spec *sp, int64_t *m, int64_t *n, int64_t *k) {
    const int64_t *d = sp->d;
    switch (sp->family) {
    case FAM_GEMM: *m = d[0], *n = d[1], *k = d[2]; return 1;
    case FAM_LINEAR: *m = d[0] * d[1], *n = d[3], *k = d[2]; return 1;
    case FAM_CONV: {
        const int64_t ho = (d[1] + 2 * d[7] - d[5]) / d[6] + 1;
        const int64_t wo = (d[2] + 2 * d[7] - d[5]) / d[6] + 1;
        *m = d[0] * ho * wo, *n = d[4], *k = d[5] * d[5] * d[3];
        return 1;
    }
    default: return 0;
    }
}

/* Times the OpenBLAS reference sgemm C (m, n) = A (m, k) B^T, B (n, k) (the layout of
 * nn.Linear and of OHWI conv weights); *rate in FLOP/s. Prints its row when `print`. */
static int time_sgemm(bench *b, int64_t m, int64_t n, int64_t k, int print, double *rate) {
    bench_op op;
    eng_err err = {0};
    eng_bench_result r;
    const shape_spec dummy = {FAM_GEMM, WHERE_CPU, "sgemm (ref)", {m, n, k}};
    int rc;
    ENG_ASSERT(b->dev == ENG_DEVICE_CPU && b->dtype == ENG_DTYPE_F32);
    *rate = 0.0;
    memset(&op, 0, sizeof op);
    op.b = b;
    op.sp = &dummy;
    op.sgemm = 1;
    op.m = m, op.n = n, op.k = k;
    const int64_t c[2] = {m, n}, a[2] = {m, k}, bt[2] = {n, k};
    if ((rc = add_tensor(&op, ENG_DTYPE_F32, 2, c, 0, &err)) == ENG_OK &&
        (rc = add_tensor(&op, ENG_DTYPE_F32, 2, a, 1, &err)) == ENG_OK &&
        (rc = add_tensor(&op, ENG_DTYPE_F32, 2, bt, 1, &err)) == ENG_OK) {
        eng_bench_params p = b->params;
        p.flush = NULL;
        rc = eng_bench_run(b->ctx, b->s, run_op, &op, &p, &r, &err);
    }
    free_op(&op);
    if (rc != ENG_OK) {
        fprintf(stderr, "gen bench: sgemm %lldx%lldx%lld: %s\n", (long long)m, (long long)n,
                (long long)k, err.msg);
        return rc;
    }
    const double flops = eng_bench_gemm_flops(m, n, k, 1);
    *rate = flops / (r.median_ms * 1e-3);
    if (print) {
        char shape[64];
        snprintf(shape, sizeof shape, "%lldx%lldx%lld (MxNxK)", (long long)m, (long long)n,
                 (long long)k);
        const eng_bench_row row = {"sgemm (ref)", shape, "f32", r, flops, 0.0, b->peak_flops, 0.0};
        eng_bench_print_row(stdout, &row);
    }
    return ENG_OK;
}

static void bench_spec(bench *b, const shape_spec *sp) {
    bench_op op;
    eng_err err = {0};
    eng_bench_result r;
    char shape[64];
    double flops = 0.0, bytes = 0.0, ref = 0.0;
    int64_t m, n, k;
    int rc;
    memset(&op, 0, sizeof op);
    op.b = b;
    op.sp = sp;
    b->rows++;
    if (b->dev == ENG_DEVICE_CPU && gemm_shape(sp, &m, &n, &k)) {
        if (time_sgemm(b, m, n, k, 1, &ref) != ENG_OK) b->failed++;
    }
    rc = setup_op(&op, shape, sizeof shape, &flops, &bytes, &err);
    if (rc == ENG_OK) rc = eng_bench_run(b->ctx, b->s, run_op, &op, &b->params, &r, &err);
    free_op(&op);
    if (rc == ENG_E_UNSUPPORTED && b->dev != ENG_DEVICE_CPU) {
        printf("%-16s %-34s %-5s unsupported: %s\n", sp->label, shape, eng_dtype_name(b->dtype),
               err.msg);
        b->unsupported++;
        return;
    }
    if (rc != ENG_OK) {
        printf("%-16s %-34s %-5s FAILED (see stderr)\n", sp->label, shape,
               eng_dtype_name(b->dtype));
        fflush(stdout);
        fprintf(stderr, "gen bench: %s %s: %s\n", sp->label, shape, err.msg);
        b->failed++;
        return;
    }
    const eng_bench_row row = {sp->label,
                               shape,
                               eng_dtype_name(b->dtype),
                               r,
                               flops,
                               bytes,
                               flops > 0.0 ? b->peak_flops : b->peak_bytes,
                               ref};
    eng_bench_print_row(stdout, &row);
}

/* ---- header ------------------------------------------------------------------------------ */
static void cpu_model(char *buf, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    snprintf(buf, n, "unknown CPU model");
    if (f == NULL) return;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (v == NULL) continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(buf, n, "%.*s", (int)strcspn(v, "\n"), v);
        break;
    }
    fclose(f);
}

/* The 1-minute load average: other work on the machine skews the timings (0: unknown). */
static double load_average(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    double l = 0.0;
    if (f == NULL) return 0.0;
    if (fscanf(f, "%lf", &l) != 1) l = 0.0;
    fclose(f);
    return l;
}

static void print_header(const bench *b, int smoke) {
    char when[64], model[128];
    const time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    printf("gen bench --ops: gen %s (commit %s, %s build)%s\n", ENG_VERSION_STRING, ENG_GIT_COMMIT,
           ENG_BUILD_TYPE, smoke ? ", --smoke: tiny shapes" : "");
    printf("date: %s\n", when);
    cpu_model(model, sizeof model);
    printf("host: %s, %d threads, %s; load average %.2f at the start\n", model,
           eng_ctx_threads(b->ctx), eng_cpu_blas_describe(), load_average());
    if (b->dev != ENG_DEVICE_CPU) {
        const eng_device_info *i = &eng_ctx_backend(b->ctx, b->dev)->info;
        printf("device: cuda:%d %s (sm_%d%d, %d SMs, %.0f MHz; memory %.0f MHz x %d bits), "
               "driver %d.%d, runtime %d.%d\n",
               i->index, i->name, i->cc_major, i->cc_minor, i->sm_count, i->clock_khz / 1e3,
               i->mem_clock_khz / 1e3, i->mem_bus_bits, i->driver_version / 1000,
               i->driver_version % 1000 / 10, i->runtime_version / 1000,
               i->runtime_version % 1000 / 10);
    } else {
        printf("device: cpu\n");
    }
}

static int parse_family_list(const char *list, int want[FAM_COUNT]) {
    const char *p = list;
    for (int f = 0; f < FAM_COUNT; f++)
        want[f] = 0;
    while (*p != '\0') {
        const size_t len = strcspn(p, ",");
        int found = 0;
        for (int f = 0; f < FAM_COUNT; f++) {
            if (strlen(fam_names[f]) == len && strncmp(p, fam_names[f], len) == 0) {
                want[f] = 1;
                found = 1;
            }
        }
        if (!found) {
            fprintf(stderr,
                    "gen bench: --op: unknown op \"%.*s\" (have gemm, linear, geglu, conv, "
                    "groupnorm, attention)\n",
                    (int)len, p);
            return 0;
        }
        p += len;
        if (*p == ',') p++;
    }
    return 1;
}

int gen_bench_main(int argc, char **argv) {
    bench b;
    eng_ctx_params cp;
    eng_err err = {0};
    int want[FAM_COUNT], ops = 0, smoke = 0, status = 0;
    int64_t repeat = 0, threads = 0;
    const char *device = "cpu", *dtype = NULL;
    memset(&b, 0, sizeof b);
    for (int i = 1; i < argc && !ops; i++)
        ops = strcmp(argv[i], "--ops") == 0;
    if (!ops) return gen_bench_model_main(argc, argv); /* whole generations */
    for (int f = 0; f < FAM_COUNT; f++)
        want[f] = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has_value = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--ops") == 0) {
            ops = 1;
        } else if (strcmp(a, "--smoke") == 0) {
            smoke = 1;
        } else if (strcmp(a, "--device") == 0 && has_value) {
            device = argv[++i];
        } else if (strcmp(a, "--dtype") == 0 && has_value) {
            dtype = argv[++i];
        } else if (strcmp(a, "--op") == 0 && has_value) {
            if (!parse_family_list(argv[++i], want)) return 2;
        } else if (strcmp(a, "--repeat") == 0 && has_value) {
            if (eng_cli_parse_int(&repeat, "--repeat", argv[++i], 1, 10000, &err) != ENG_OK) {
                fprintf(stderr, "gen bench: %s\n", err.msg);
                return 2;
            }
        } else if (strcmp(a, "--threads") == 0 && has_value) {
            if (eng_cli_parse_int(&threads, "--threads", argv[++i], 1, 1024, &err) != ENG_OK) {
                fprintf(stderr, "gen bench: %s\n", err.msg);
                return 2;
            }
        } else {
            fprintf(stderr, "gen bench: unknown argument \"%s\" (or a flag without its value)\n%s",
                    a, usage);
            return 2;
        }
    }
    if (strcmp(device, "cpu") == 0) {
        b.dev = ENG_DEVICE_CPU;
    } else if (strcmp(device, "cuda") == 0) {
        b.dev = ENG_DEVICE_CUDA;
    } else {
        fprintf(stderr, "gen bench: --device: \"%s\" is not cpu or cuda\n", device);
        return 2;
    }
    if (dtype == NULL) dtype = b.dev == ENG_DEVICE_CPU ? "f32" : "f16";
    if (strcmp(dtype, "f32") == 0) {
        b.dtype = ENG_DTYPE_F32;
    } else if (strcmp(dtype, "f16") == 0) {
        b.dtype = ENG_DTYPE_F16;
    } else if (strcmp(dtype, "bf16") == 0) {
        b.dtype = ENG_DTYPE_BF16;
    } else {
        fprintf(stderr, "gen bench: --dtype: \"%s\" is not f32, f16 or bf16\n", dtype);
        return 2;
    }
    if (b.dev == ENG_DEVICE_CPU && b.dtype != ENG_DTYPE_F32) {
        fprintf(stderr, "gen bench: --dtype %s: the CPU ops are f32 only\n", dtype);
        return 2;
    }

    eng_ctx_params_init(&cp);
    if (eng_ctx_params_from_env(&cp, &err) != ENG_OK) {
        fprintf(stderr, "gen bench: %s\n", err.msg);
        return 2;
    }
    if (threads > 0) cp.threads = (int)threads;
    cp.threaded_scheduler = 0; /* ops run on this thread; no jobs */
    if (eng_ctx_create(&b.ctx, &cp, &err) != ENG_OK) {
        fprintf(stderr, "gen bench: %s\n", err.msg);
        return 1;
    }
    if (b.dev == ENG_DEVICE_CUDA) {
        int count = 0;
        char why[256];
        if (eng_cuda_device_count(&count, &err) != ENG_OK || count == 0) {
            fprintf(stderr, "gen bench: --device cuda: %s\n",
                    count == 0 && err.code == ENG_OK ? eng_cuda_describe(why, sizeof why)
                                                     : err.msg);
            status = 2;
            goto done;
        }
        if (eng_cuda_attach(b.ctx, 0, 0, &err) != ENG_OK) {
            fprintf(stderr, "gen bench: --device cuda: %s\n", err.msg);
            status = 2;
            goto done;
        }
    }
    b.alloc = eng_ctx_alloc(b.ctx, b.dev);
    b.s = eng_ctx_stream(b.ctx, b.dev);
    eng_bench_params_init(&b.params);
    b.params.warmup = 1;
    b.params.repeat = repeat > 0 ? (int)repeat : smoke ? 1 : b.dev == ENG_DEVICE_CPU ? 3 : 20;

    print_header(&b, smoke);
    if (b.dev == ENG_DEVICE_CPU) {
        /* the CPU's "peaks": square sgemm and a threaded copy, measured now */
        const int64_t sq = smoke ? 128 : 1024;
        const size_t copy_bytes = smoke ? (size_t)8 << 20 : (size_t)256 << 20;
        double gemm_rate = 0.0, copy_rate = 0.0;
        char r1[32], r2[32];
        if (time_sgemm(&b, sq, sq, sq, 0, &gemm_rate) != ENG_OK) {
            status = 1;
            goto done;
        }
        if (eng_bench_cpu_copy_bandwidth(b.ctx, copy_bytes, 5, &copy_rate, &err) != ENG_OK) {
            fprintf(stderr, "gen bench: %s\n", err.msg);
            status = 1;
            goto done;
        }
        b.peak_flops = gemm_rate;
        b.peak_bytes = copy_rate;
        printf("reference: OpenBLAS sgemm %lldx%lldx%lld (eng_cpu_gemm_f32, %d threads): %s "
               "(median of %d); threaded copy %zu MiB: %s (best of 5, read + write)\n",
               (long long)sq, (long long)sq, (long long)sq, eng_ctx_threads(b.ctx),
               eng_bench_format_rate(r1, sizeof r1, gemm_rate, 1), b.params.repeat,
               copy_bytes >> 20, eng_bench_format_rate(r2, sizeof r2, copy_rate, 0));
        printf("of peak: FLOP/s over that sgemm, GB/s over that copy; of ref: over the sgemm "
               "(ref) row just above (same M, N, K: the GEMM an im2col conv or a linear runs)\n");
    } else {
        const eng_device_info *info = &eng_ctx_backend(b.ctx, b.dev)->info;
        eng_bench_peak pk;
        char r1[32], r2[32], r3[32];
        eng_bench_gpu_peak(info, &pk);
        b.peak_flops = b.dtype == ENG_DTYPE_F32 ? pk.f32_flops : pk.f16_tc_flops;
        b.peak_bytes = pk.bytes_per_s;
        printf("peak (%s): f16/bf16 tensor cores %s dense, f32 %s, memory %s\n", pk.how,
               eng_bench_format_rate(r1, sizeof r1, pk.f16_tc_flops, 1),
               eng_bench_format_rate(r2, sizeof r2, pk.f32_flops, 1),
               eng_bench_format_rate(r3, sizeof r3, pk.bytes_per_s, 0));
        printf("of peak: FLOP/s over the %s peak, GB/s over the memory bandwidth; of ref: not "
               "measured on the GPU yet (cuBLASLt/cuDNN alone)\n",
               b.dtype == ENG_DTYPE_F32 ? "f32 (no tensor core)" : "f16 tensor-core");
        /* 256 MiB rewritten before each timed call: more than any current GPU's L2 */
        const int64_t fl[1] = {(int64_t)64 << 20};
        if (eng_tensor_alloc(&b.flush_buf, b.alloc, ENG_LIFE_STATE, "bench", ENG_DTYPE_F32, 1, fl,
                             &err) == ENG_OK) {
            b.have_flush = 1;
            b.params.flush = flush_l2;
            b.params.flush_user = &b;
        } else {
            printf("note: no L2 flush between calls (%s)\n", err.msg);
        }
    }
    printf("timing: host clock around each call and a stream sync (launch overhead included), "
           "%d warm-up call, median of %d; spread: min..max\n\n",
           b.params.warmup, b.params.repeat);
    eng_bench_print_header(stdout);

    const shape_spec *list = smoke ? smoke_shapes : full_shapes;
    const int nlist = smoke ? (int)(sizeof smoke_shapes / sizeof smoke_shapes[0])
                            : (int)(sizeof full_shapes / sizeof full_shapes[0]);
    const double t0 = eng_bench_now_s();
    for (int i = 0; i < nlist; i++) {
        const shape_spec *sp = &list[i];
        if (!want[sp->family]) continue;
        if (sp->where == WHERE_CPU && b.dev != ENG_DEVICE_CPU) continue;
        if (sp->where == WHERE_GPU && b.dev == ENG_DEVICE_CPU) continue;
        bench_spec(&b, sp);
    }
    printf("\n%d rows, %d unsupported, %d failed, %.1f s\n", b.rows, b.unsupported, b.failed,
           eng_bench_now_s() - t0);
    if (b.failed > 0) status = 1;
done:
    if (b.have_flush) eng_tensor_free(b.alloc, &b.flush_buf);
    eng_ctx_destroy(b.ctx);
    return status;
}
