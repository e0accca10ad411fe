/* eng_ops_conv.c: 2-D convolution. The tensor-level eng_op_conv2d (checks, then the CPU twin or
 * the backend's conv2d entry) and the CPU twin eng_cpu_conv2d.
 *
 *   x (N, H, W, C) NHWC, w (O, KH, KW, C) OHWI, bias (O) or NULL -> y (N, HO, WO, O)
 *   HO = (H + 2 pad - KH) / stride + 1, likewise WO; cross-correlation, zero padding.
 *
 * CPU: a 1x1 stride-1 unpadded convolution is one GEMM on the tensors as they are: y (N*H*W, O)
 * = x (N*H*W, C) w (O, C)^T. Every other convolution is im2col in tiles of output pixels: a pool
 * piece takes a tile of T output pixels, gathers their receptive fields into a (T, KH*KW*C) patch
 * block (NHWC makes each kernel row one memcpy of up to KW*C floats) in its own slice of a
 * workspace from the stream's arena, then one cblas_sgemm computes y[tile] = patches w^T, where
 * w (O, KH*KW*C) is the weight as stored. Memory stays bounded (a few MiB per thread, whatever
 * the image), and with tiles of hundreds of rows the rate is sgemm's. Small images with many
 * channels (8x8x1280) have fewer tiles than threads: the output channels are then split too. */
#include "eng_ops.h"

#include <stdatomic.h>
#include <string.h>

#include "eng_sched.h"

/* The patch block of one pool piece: about CONV_SLOT_BYTES, T between the two bounds (fewer only
 * when the whole output is smaller). OpenBLAS repacks the weight for every call, so T in the
 * hundreds keeps that repacking a few percent of the work. */
#define CONV_SLOT_BYTES ((int64_t)8 << 20)
enum { CONV_MIN_TILE = 64, CONV_MAX_TILE = 1024, CONV_MIN_COLS = 64 };
/* Each dimension and the element counts are capped so every product below fits int64 and every
 * BLAS argument fits its int. */
#define CONV_DIM_MAX ((int64_t)1 << 31)

/* ---- the CPU twin ----------------------------------------------------------------------------- */

static int conv_check(const char *fn, const eng_conv2d_args *a, eng_err *err) {
    if (a->dtype != ENG_DTYPE_F32) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: dtype %s (the CPU computes f32 only)", fn,
                           eng_dtype_name(a->dtype));
    }
    if (a->n < 0 || a->h < 0 || a->w_in < 0 || a->c < 0 || a->o < 0 || a->kh < 1 || a->kw < 1 ||
        a->stride < 1 || a->pad < 0 || a->n >= CONV_DIM_MAX || a->h >= CONV_DIM_MAX ||
        a->w_in >= CONV_DIM_MAX || a->c >= CONV_DIM_MAX || a->o >= CONV_DIM_MAX ||
        a->kh >= CONV_DIM_MAX || a->kw >= CONV_DIM_MAX || a->stride >= CONV_DIM_MAX ||
        a->pad >= CONV_DIM_MAX) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: n=%lld h=%lld w=%lld c=%lld o=%lld kernel %lldx%lld stride %lld "
                           "pad %lld (sizes >= 0, kernel and stride >= 1, below 2^31)",
                           fn, (long long)a->n, (long long)a->h, (long long)a->w_in,
                           (long long)a->c, (long long)a->o, (long long)a->kh, (long long)a->kw,
                           (long long)a->stride, (long long)a->pad);
    }
    const int64_t hp = a->h + 2 * a->pad, wp = a->w_in + 2 * a->pad;
    if (hp < a->kh || wp < a->kw) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: a %lldx%lld kernel does not fit the padded %lldx%lld input", fn,
                           (long long)a->kh, (long long)a->kw, (long long)hp, (long long)wp);
    }
    const int64_t ho = (hp - a->kh) / a->stride + 1, wo = (wp - a->kw) / a->stride + 1;
    if (a->ho != ho || a->wo != wo) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: output %lldx%lld, expected %lldx%lld for a %lldx%lld input, "
                           "%lldx%lld kernel, stride %lld, pad %lld",
                           fn, (long long)a->ho, (long long)a->wo, (long long)ho, (long long)wo,
                           (long long)a->h, (long long)a->w_in, (long long)a->kh, (long long)a->kw,
                           (long long)a->stride, (long long)a->pad);
    }
    /* Element counts of x, w, y and the patch width: within ENG_MAX_NUMEL (and BLAS ints). */
    const double ex = (double)a->n * (double)a->h * (double)a->w_in * (double)a->c;
    const double ey = (double)a->n * (double)ho * (double)wo * (double)a->o;
    const double ew = (double)a->o * (double)a->kh * (double)a->kw * (double)a->c;
    if (ex > (double)ENG_MAX_NUMEL || ey > (double)ENG_MAX_NUMEL || ew > (double)ENG_MAX_NUMEL ||
        (double)a->kh * (double)a->kw * (double)a->c > (double)0x7fffffff ||
        (double)a->n * (double)ho * (double)wo > (double)0x7fffffff) {
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "%s: tensors too large (x %.0f, y %.0f, w %.0f elements)", fn, ex, ey,
                           ew);
    }
    if (ey > 0 && (a->y == NULL || (ex > 0 && ew > 0 && (a->x == NULL || a->w == NULL)))) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL buffer (x %p, w %p, y %p)", fn, a->x,
                           a->w, a->y);
    }
    return ENG_OK;
}

typedef struct conv_job {
    const eng_conv2d_args *a;
    float *ws;         /* nslots patch blocks of tile x kdim floats */
    int64_t kdim;      /* kh * kw * c */
    int64_t pixels;    /* n * ho * wo */
    int64_t tile;      /* output pixels per tile */
    int64_t osplit;    /* output-channel blocks per tile */
    int64_t ocols;     /* channels per block (the last may be fewer) */
    int64_t items;     /* tiles * osplit */
    atomic_llong next; /* the next item to take */
} conv_job;

/* patch[r, (ky*kw + kx)*c + ci] = x[img, oy*stride - pad + ky, ox*stride - pad + kx, ci] (0 in
 * the padding) for the output pixels p0 .. p0 + rows - 1. */
static void
im2col_tile(const eng_conv2d_args *a, float *patch, int64_t kdim, int64_t p0, int64_t rows) {
    const float *x = a->x;
    const int64_t c = a->c, kw = a->kw, hw_out = a->ho * a->wo;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t p = p0 + r, img = p / hw_out, oy = (p % hw_out) / a->wo, ox = p % a->wo;
        const int64_t iy0 = oy * a->stride - a->pad, ix0 = ox * a->stride - a->pad;
        /* The kernel columns kx in [kx0, kx1) land inside the image. */
        const int64_t kx0 = ix0 < 0 ? -ix0 : 0;
        const int64_t kx1 = ENG_MIN(kw, a->w_in - ix0);
        float *dst = patch + r * kdim;
        for (int64_t ky = 0; ky < a->kh; ky++) {
            float *d = dst + ky * kw * c;
            const int64_t iy = iy0 + ky;
            if (iy < 0 || iy >= a->h || kx1 <= kx0) {
                memset(d, 0, sizeof(float) * (size_t)(kw * c));
                continue;
            }
            if (kx0 > 0) memset(d, 0, sizeof(float) * (size_t)(kx0 * c));
            memcpy(d + kx0 * c, x + ((img * a->h + iy) * a->w_in + ix0 + kx0) * c,
                   sizeof(float) * (size_t)((kx1 - kx0) * c));
            if (kx1 < kw) memset(d + kx1 * c, 0, sizeof(float) * (size_t)((kw - kx1) * c));
        }
    }
}

/* y[p0:p0+rows, o0:o1] = patch w[o0:o1]^T + bias[o0:o1]: one serial eng_cpu_gemm (already inside
 * a pool piece), which writes the bias first and lets BLAS add onto it. */
static void conv_gemm(const eng_conv2d_args *a,
                      const float *patch,
                      int64_t kdim,
                      int64_t p0,
                      int64_t rows,
                      int64_t o0,
                      int64_t o1) {
    eng_gemm_args g;
    eng_err err = {0};
    memset(&g, 0, sizeof g);
    g.dtype = ENG_DTYPE_F32;
    g.trans_b = 1;
    g.m = rows;
    g.n = o1 - o0;
    g.k = kdim;
    g.batch = 1;
    g.alpha = 1.0f;
    g.a = patch;
    g.lda = kdim;
    g.b = (const float *)a->w + o0 * kdim;
    g.ldb = kdim;
    g.c = (float *)a->y + p0 * a->o + o0;
    g.ldc = a->o;
    g.bias = a->bias != NULL ? (const float *)a->bias + o0 : NULL;
    g.act = ENG_ACT_NONE;
    /* Arguments conv_check has validated: a failure here is a bug in this file. */
    const int rc = eng_cpu_gemm(NULL, &g, &err);
    if (rc != ENG_OK) eng_log(NULL, ENG_LOG_ERROR, "eng_cpu_conv2d: %s", err.msg);
    ENG_ASSERT(rc == ENG_OK);
}

/* One pool piece per workspace slot; each slot takes items (tile, channel block) in order until
 * none is left, rebuilding its patch block only when the tile changes. */
static void conv_slots(void *user, int64_t begin, int64_t end) {
    conv_job *j = user;
    for (int64_t slot = begin; slot < end; slot++) {
        float *patch = j->ws + slot * j->tile * j->kdim;
        int64_t built = -1;
        for (;;) {
            const int64_t item = (int64_t)atomic_fetch_add(&j->next, 1);
            if (item >= j->items) break;
            const int64_t t = item / j->osplit, ob = item % j->osplit;
            const int64_t p0 = t * j->tile, rows = ENG_MIN(j->tile, j->pixels - p0);
            const int64_t o0 = ob * j->ocols, o1 = ENG_MIN(j->a->o, o0 + j->ocols);
            if (built != t) {
                im2col_tile(j->a, patch, j->kdim, p0, rows);
                built = t;
            }
            if (o1 > o0) conv_gemm(j->a, patch, j->kdim, p0, rows, o0, o1);
        }
    }
}

int eng_cpu_conv2d(eng_stream *s, const eng_conv2d_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_conv2d";
    eng_pool *pool = s != NULL ? s->pool : NULL;
    eng_arena *arena = s != NULL ? s->arena : NULL;
    eng_arena_pos mark;
    conv_job job;
    void *ws = NULL;
    int rc;
    ENG_ASSERT(a != NULL);
    if ((rc = conv_check(fn, a, err)) != ENG_OK) return rc;
    const int64_t pixels = a->n * a->ho * a->wo, kdim = a->kh * a->kw * a->c;
    if (pixels == 0 || a->o == 0) return ENG_OK;
    if (a->kh == 1 && a->kw == 1 && a->stride == 1 && a->pad == 0) {
        /* The pixels of NHWC x are the rows of a (pixels, c) matrix: no copy at all. */
        eng_gemm_args g;
        memset(&g, 0, sizeof g);
        g.dtype = ENG_DTYPE_F32;
        g.trans_b = 1;
        g.m = pixels;
        g.n = a->o;
        g.k = a->c;
        g.batch = 1;
        g.alpha = 1.0f;
        g.a = a->x;
        g.lda = ENG_MAX(a->c, 1);
        g.b = a->w;
        g.ldb = ENG_MAX(a->c, 1);
        g.c = a->y;
        g.ldc = a->o;
        g.bias = a->bias;
        g.act = ENG_ACT_NONE;
        if ((rc = eng_cpu_gemm(s, &g, err)) != ENG_OK) eng_err_prefix(err, "%s", fn);
        return rc;
    }
    if (kdim == 0) { /* no input channels: y is the bias */
        float *y = a->y;
        for (int64_t p = 0; p < pixels; p++) {
            for (int64_t j = 0; j < a->o; j++)
                y[p * a->o + j] = a->bias != NULL ? ((const float *)a->bias)[j] : 0.0f;
        }
        return ENG_OK;
    }
    memset(&job, 0, sizeof job);
    job.a = a;
    job.kdim = kdim;
    job.pixels = pixels;
    job.tile = ENG_MIN(ENG_MAX(CONV_SLOT_BYTES / (kdim * (int64_t)sizeof(float)), CONV_MIN_TILE),
                       CONV_MAX_TILE);
    job.tile = ENG_MIN(job.tile, pixels);
    const int64_t tiles = ENG_CEIL_DIV(pixels, job.tile);
    const int64_t threads = eng_pool_threads(pool);
    /* Fewer tiles than two per thread: split the output channels as well (each block of a tile
     * rebuilds the patches, a small cost next to its GEMM). */
    job.osplit = 1;
    if (tiles < 2 * threads) {
        job.osplit = ENG_MIN(ENG_CEIL_DIV(2 * threads, tiles), ENG_MAX(a->o / CONV_MIN_COLS, 1));
    }
    job.ocols = ENG_CEIL_DIV(a->o, job.osplit);
    job.osplit = ENG_CEIL_DIV(a->o, job.ocols);
    job.items = tiles * job.osplit;
    const int64_t slots = ENG_MIN(threads, job.items);
    const size_t bytes = (size_t)slots * (size_t)job.tile * (size_t)kdim * sizeof(float);
    if (arena == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: a %lldx%lld stride-%lld convolution needs a %zu-byte im2col "
                           "workspace but the stream has no scratch arena (s->arena is NULL)",
                           fn, (long long)a->kh, (long long)a->kw, (long long)a->stride, bytes);
    }
    mark = eng_arena_mark(arena);
    if ((rc = eng_arena_take(arena, &ws, bytes, err)) != ENG_OK) {
        eng_err_prefix(err, "%s: im2col workspace", fn);
        goto done;
    }
    job.ws = ws;
    atomic_init(&job.next, 0);
    eng_pool_parallel_for(pool, slots, 1, conv_slots, &job);
done:
    eng_arena_rewind(arena, mark);
    return rc;
}

/* ---- tensor-level op -------------------------------------------------------------------------- */

int eng_op_conv2d(eng_ctx *ctx,
                  eng_stream *s,
                  eng_tensor *y,
                  const eng_tensor *x,
                  const eng_tensor *w,
                  const eng_tensor *bias,
                  int64_t stride,
                  int64_t pad,
                  eng_err *err) {
    static const char fn[] = "eng_op_conv2d";
    char dx[96], dw[96], dy[96];
    eng_conv2d_args a;
    ENG_ASSERT(y != NULL && x != NULL && w != NULL);
    const eng_tensor *named[3] = {x, w, bias};
    const char *names[3] = {"x", "w", "bias"};
    for (int i = 0; i < 3; i++) {
        const eng_tensor *t = named[i];
        if (t == NULL) continue;
        if (t->dtype != y->dtype || t->device != y->device) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: y is %s but %s is %s (same dtype and device)", fn,
                               eng_tensor_describe(y, dy, sizeof dy), names[i],
                               eng_tensor_describe(t, dx, sizeof dx));
        }
        if (!eng_tensor_is_contiguous(t)) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s (%s) must be contiguous", fn,
                               names[i], eng_tensor_describe(t, dx, sizeof dx));
        }
    }
    if (!eng_tensor_is_contiguous(y)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: y (%s) must be contiguous", fn,
                           eng_tensor_describe(y, dy, sizeof dy));
    }
    if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4 || w->shape[3] != x->shape[3]) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: x is %s, w is %s, y is %s (needs x (N, H, W, C), w (O, KH, KW, C), "
                           "y (N, HO, WO, O))",
                           fn, eng_tensor_describe(x, dx, sizeof dx),
                           eng_tensor_describe(w, dw, sizeof dw),
                           eng_tensor_describe(y, dy, sizeof dy));
    }
    if (bias != NULL && (bias->ndim != 1 || bias->shape[0] != w->shape[0])) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: bias is %s, expected (%lld)", fn,
                           eng_tensor_describe(bias, dx, sizeof dx), (long long)w->shape[0]);
    }
    if (stride < 1 || pad < 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: stride %lld, pad %lld (stride >= 1, pad >= 0)", fn,
                           (long long)stride, (long long)pad);
    }
    const int64_t hp = x->shape[1] + 2 * pad, wp = x->shape[2] + 2 * pad;
    const int64_t kh = w->shape[1], kw = w->shape[2];
    if (hp < kh || wp < kw || kh < 1 || kw < 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: the %lldx%lld kernel of w %s does not fit x %s padded by %lld", fn,
                           (long long)kh, (long long)kw, eng_tensor_describe(w, dw, sizeof dw),
                           eng_tensor_describe(x, dx, sizeof dx), (long long)pad);
    }
    const int64_t ho = (hp - kh) / stride + 1, wo = (wp - kw) / stride + 1;
    if (y->shape[0] != x->shape[0] || y->shape[1] != ho || y->shape[2] != wo ||
        y->shape[3] != w->shape[0]) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG,
            "%s: y is %s, expected [%lld,%lld,%lld,%lld] for x %s, w %s, stride "
            "%lld, pad %lld",
            fn, eng_tensor_describe(y, dy, sizeof dy), (long long)x->shape[0], (long long)ho,
            (long long)wo, (long long)w->shape[0], eng_tensor_describe(x, dx, sizeof dx),
            eng_tensor_describe(w, dw, sizeof dw), (long long)stride, (long long)pad);
    }
    memset(&a, 0, sizeof a);
    a.dtype = y->dtype;
    a.y = y->data;
    a.x = x->data;
    a.w = w->data;
    a.bias = bias != NULL ? bias->data : NULL;
    a.n = x->shape[0];
    a.h = x->shape[1];
    a.w_in = x->shape[2];
    a.c = x->shape[3];
    a.o = w->shape[0];
    a.kh = kh;
    a.kw = kw;
    a.stride = stride;
    a.pad = pad;
    a.ho = ho;
    a.wo = wo;
    if (s == NULL) s = eng_ctx_stream(ctx, y->device);
    if (s == NULL) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: no %s device is attached to the context",
                           fn, eng_device_name(y->device));
    }
    if (s->device != y->device) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: a %s stream for %s tensors", fn,
                           eng_device_name(s->device), eng_device_name(y->device));
    }
    if (y->device == ENG_DEVICE_CPU) {
        if (y->dtype != ENG_DTYPE_F32) {
            return eng_err_set(err, ENG_E_UNSUPPORTED,
                               "%s: %s: the CPU computes f32 only (convert the tensors first)", fn,
                               eng_tensor_describe(y, dy, sizeof dy));
        }
        return eng_cpu_conv2d(s, &a, err);
    }
    const eng_backend *be = eng_ctx_backend(ctx, y->device);
    if (be == NULL || be->ops.conv2d == NULL) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: not available for %s in this build", fn,
                           eng_tensor_describe(y, dy, sizeof dy));
    }
    return be->ops.conv2d(s, &a, err);
}
