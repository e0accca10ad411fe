/* sd_block.c: ResnetBlock2D, Upsample2D and Downsample2D on the engine's ops, shared by the UNet
 * (sd_unet.c) and the VAE (sd_vae.c), and the device plumbing of the SD modules (weights into a
 * device's allocator, host <-> device transfers with dtype conversion). Reference: diffusers
 * models/resnet.py (ResnetBlock2D), upsampling.py (Upsample2D, interpolate nearest then conv),
 * downsampling.py (Downsample2D: with padding 0 it applies F.pad(x, (0, 1, 0, 1)) before the
 * stride-2 conv). */
#include "sd_block.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wt.h"

int sd_block_dest_init(sd_block_dest *d,
                       eng_ctx *ctx,
                       eng_device_kind device,
                       eng_dtype dtype,
                       const char *fn,
                       eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(d != NULL && ctx != NULL && fn != NULL);
    memset(d, 0, sizeof *d);
    eng_alloc *alloc = (unsigned)device < ENG_DEVICE_COUNT ? eng_ctx_alloc(ctx, device) : NULL;
    if (alloc == NULL) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "%s: no %s device is attached to the context (eng_cuda_attach first)", fn,
                         eng_device_name(device));
        goto done;
    }
    const int ok = device == ENG_DEVICE_CPU ? dtype == ENG_DTYPE_F32
                                            : dtype == ENG_DTYPE_F32 || dtype == ENG_DTYPE_F16 ||
                                                  dtype == ENG_DTYPE_BF16;
    if (!ok) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "%s: dtype %s on %s (the CPU runs f32 only; CUDA f32, f16 or bf16)", fn,
                         eng_dtype_name(dtype), eng_device_name(device));
        goto done;
    }
    d->ctx = ctx;
    d->alloc = alloc;
    d->device = device;
    d->dtype = dtype;
done:
    return rc;
}

int sd_block_load_tensor(eng_tensor *t,
                         const wt_model *m,
                         const sd_block_dest *d,
                         unsigned flags,
                         eng_err *err,
                         const char *fmt,
                         ...) {
    int rc = ENG_OK;
    char name[WT_MAX_NAME];
    va_list ap;
    wt_tensor_info info;
    eng_tensor host = {0}, dev = {0};
    eng_alloc *halloc = NULL;
    ENG_ASSERT(t != NULL && m != NULL && d != NULL && d->alloc != NULL && fmt != NULL);
    va_start(ap, fmt);
    const int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_block_load_tensor: name \"%s...\" is longer than %d characters", name,
                         WT_MAX_NAME - 1);
        goto done;
    }
    if (d->device == ENG_DEVICE_CPU) {
        rc = wt_model_load_tensor(m, name, d->alloc, d->dtype, flags, t, err);
        goto done;
    }
    /* A device: convert into host memory, then upload (wt_model_load_tensor writes through the
     * CPU), so the host holds one tensor at a time. */
    halloc = eng_ctx_alloc(d->ctx, ENG_DEVICE_CPU);
    if ((rc = wt_model_tensor(m, name, &info, err)) != ENG_OK) goto done;
    if ((rc = wt_model_load_tensor(m, name, halloc, d->dtype, flags, &host, err)) != ENG_OK)
        goto done;
    if ((rc = eng_tensor_alloc(&dev, d->alloc, ENG_LIFE_WEIGHTS,
                               wt_component_name(info.entry->component), d->dtype, host.ndim,
                               host.shape, err)) != ENG_OK)
        goto done;
    if ((rc = eng_op_copy(d->ctx, &dev, &host, err)) != ENG_OK) goto done;
    *t = dev;
    dev.data = NULL;
done:
    if (dev.data != NULL) eng_tensor_free(d->alloc, &dev);
    if (host.data != NULL) eng_tensor_free(halloc, &host);
    return rc;
}

void sd_block_free_tensor(eng_tensor *t, eng_alloc *alloc) {
    if (t->data != NULL) eng_tensor_free(alloc, t);
    memset(t, 0, sizeof *t);
}

int sd_block_conv_load(sd_block_conv *c,
                       const wt_model *m,
                       const sd_block_dest *d,
                       const char *prefix,
                       int64_t cout,
                       int64_t cin,
                       int64_t k,
                       eng_err *err) {
    int rc = ENG_OK;
    sd_block_conv t = {0};
    char got[96];
    ENG_ASSERT(c != NULL && prefix != NULL);
    if ((rc = sd_block_load_tensor(&t.w, m, d, WT_LOAD_OHWI, err, "%s.weight", prefix)) != 0)
        goto done;
    if ((rc = sd_block_load_tensor(&t.b, m, d, 0, err, "%s.bias", prefix)) != ENG_OK) goto done;
    if (t.w.ndim != 4 || t.w.shape[0] != cout || t.w.shape[1] != k || t.w.shape[2] != k ||
        t.w.shape[3] != cin || t.b.ndim != 1 || t.b.shape[0] != cout) {
        rc = eng_err_set(
            err, ENG_E_FORMAT,
            "sd_block_conv_load: %s.weight is %s (OHWI), expected [%lld,%lld,%lld,%lld] "
            "with a bias of %lld",
            prefix, eng_tensor_describe(&t.w, got, sizeof got), (long long)cout, (long long)k,
            (long long)k, (long long)cin, (long long)cout);
        goto done;
    }
    *c = t;
    memset(&t, 0, sizeof t);
done:
    sd_block_conv_free(&t, d->alloc);
    return rc;
}

void sd_block_conv_free(sd_block_conv *c, eng_alloc *alloc) {
    sd_block_free_tensor(&c->w, alloc);
    sd_block_free_tensor(&c->b, alloc);
}

/* Loads the 1-D tensor "<prefix>.<what>" and checks it has n elements. */
static int load_vec(eng_tensor *t,
                    const wt_model *m,
                    const sd_block_dest *d,
                    const char *prefix,
                    const char *what,
                    int64_t n,
                    eng_err *err) {
    char got[96];
    int rc = sd_block_load_tensor(t, m, d, 0, err, "%s.%s", prefix, what);
    if (rc == ENG_OK && (t->ndim != 1 || t->shape[0] != n)) {
        rc = eng_err_set(err, ENG_E_FORMAT, "sd_block_resnet_load: %s.%s is %s, expected [%lld]",
                         prefix, what, eng_tensor_describe(t, got, sizeof got), (long long)n);
    }
    return rc;
}

int sd_block_resnet_load(sd_block_resnet *r,
                         const wt_model *m,
                         const sd_block_dest *d,
                         const char *prefix,
                         int64_t cin,
                         int64_t cout,
                         int64_t temb_dim,
                         int64_t groups,
                         float eps,
                         eng_err *err) {
    int rc = ENG_OK;
    sd_block_resnet t = {0};
    char name[WT_MAX_NAME + 32], got[96];
    ENG_ASSERT(r != NULL && m != NULL && d != NULL && prefix != NULL);
    if (cin < 1 || cout < 1 || groups < 1 || temb_dim < 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_block_resnet_load: %s: cin %lld, cout %lld, groups %lld (each >= 1), "
                         "temb_dim %lld (>= 0)",
                         prefix, (long long)cin, (long long)cout, (long long)groups,
                         (long long)temb_dim);
        goto done;
    }
    t.cin = cin;
    t.cout = cout;
    t.temb_dim = temb_dim;
    t.groups = groups;
    t.eps = eps;
    if ((rc = load_vec(&t.norm1_w, m, d, prefix, "norm1.weight", cin, err)) != ENG_OK) goto done;
    if ((rc = load_vec(&t.norm1_b, m, d, prefix, "norm1.bias", cin, err)) != ENG_OK) goto done;
    snprintf(name, sizeof name, "%s.conv1", prefix);
    if ((rc = sd_block_conv_load(&t.conv1, m, d, name, cout, cin, 3, err)) != ENG_OK) goto done;
    if (temb_dim > 0) {
        rc = sd_block_load_tensor(&t.temb_w, m, d, 0, err, "%s.time_emb_proj.weight", prefix);
        if (rc != ENG_OK) goto done;
        if (t.temb_w.ndim != 2 || t.temb_w.shape[0] != cout || t.temb_w.shape[1] != temb_dim) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "sd_block_resnet_load: %s.time_emb_proj.weight is %s, expected "
                             "[%lld,%lld]",
                             prefix, eng_tensor_describe(&t.temb_w, got, sizeof got),
                             (long long)cout, (long long)temb_dim);
            goto done;
        }
        rc = load_vec(&t.temb_b, m, d, prefix, "time_emb_proj.bias", cout, err);
        if (rc != ENG_OK) goto done;
    }
    if ((rc = load_vec(&t.norm2_w, m, d, prefix, "norm2.weight", cout, err)) != ENG_OK) goto done;
    if ((rc = load_vec(&t.norm2_b, m, d, prefix, "norm2.bias", cout, err)) != ENG_OK) goto done;
    snprintf(name, sizeof name, "%s.conv2", prefix);
    if ((rc = sd_block_conv_load(&t.conv2, m, d, name, cout, cout, 3, err)) != ENG_OK) goto done;
    if (cin != cout) {
        snprintf(name, sizeof name, "%s.conv_shortcut", prefix);
        rc = sd_block_conv_load(&t.shortcut, m, d, name, cout, cin, 1, err);
        if (rc != ENG_OK) goto done;
    }
    *r = t;
    memset(&t, 0, sizeof t);
done:
    sd_block_resnet_free(&t, d->alloc);
    return rc;
}

void sd_block_resnet_free(sd_block_resnet *r, eng_alloc *alloc) {
    sd_block_conv_free(&r->conv1, alloc);
    sd_block_conv_free(&r->conv2, alloc);
    sd_block_conv_free(&r->shortcut, alloc);
    sd_block_free_tensor(&r->norm1_w, alloc);
    sd_block_free_tensor(&r->norm1_b, alloc);
    sd_block_free_tensor(&r->norm2_w, alloc);
    sd_block_free_tensor(&r->norm2_b, alloc);
    sd_block_free_tensor(&r->temb_w, alloc);
    sd_block_free_tensor(&r->temb_b, alloc);
    memset(r, 0, sizeof *r);
}

/* ---- transfers ------------------------------------------------------------------------------ */
/* eng_op_copy runs on the device's default stream: work the caller queued on another stream
 * `s` must be done before the copy touches its tensors. */
static int sync_other_stream(eng_ctx *ctx, eng_stream *s, eng_device_kind dev, eng_err *err) {
    if (dev == ENG_DEVICE_CPU || s == NULL || s == eng_ctx_stream(ctx, dev)) return ENG_OK;
    const eng_backend *be = eng_ctx_backend(ctx, dev);
    if (be == NULL || be->stream_sync == NULL) return ENG_OK; /* eng_op_copy names the device */
    return be->stream_sync(be->impl, s, err);
}

/* The dtypes the transfers convert from and to f32. */
static int transfer_dtype_ok(const eng_tensor *t) {
    return t->dtype == ENG_DTYPE_F32 || t->dtype == ENG_DTYPE_F16 || t->dtype == ENG_DTYPE_BF16;
}

/* Moves between the host floats `host` and the tensor `dev` (any device and transfer dtype):
 * to_dev 1 uploads, 0 downloads. Host staging for f16/bf16 from the CPU default arena. */
static int transfer(eng_ctx *ctx,
                    eng_stream *s,
                    eng_tensor *dev,
                    float *host,
                    int to_dev,
                    const char *fn,
                    eng_err *err) {
    int rc = ENG_OK;
    char desc[96];
    eng_tensor h;
    eng_arena *stage = eng_alloc_scratch(eng_ctx_alloc(ctx, ENG_DEVICE_CPU));
    const eng_arena_pos pos = eng_arena_mark(stage);
    const int64_t n = eng_tensor_numel(dev);
    ENG_ASSERT(dev != NULL && host != NULL);
    if (!transfer_dtype_ok(dev) || !eng_tensor_is_contiguous(dev)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: %s (needs a contiguous f32, f16 or bf16 tensor)", fn,
                         eng_tensor_describe(dev, desc, sizeof desc));
        goto done;
    }
    if (n == 0) goto done;
    if ((rc = sync_other_stream(ctx, s, dev->device, err)) != ENG_OK) goto done;
    if (dev->dtype == ENG_DTYPE_F32) {
        /* no conversion: copy straight from or into the caller's floats */
        if ((rc = eng_tensor_init(&h, host, ENG_DTYPE_F32, ENG_DEVICE_CPU, dev->ndim, dev->shape,
                                  err)) != ENG_OK)
            goto done;
        rc = to_dev ? eng_op_copy(ctx, dev, &h, err) : eng_op_copy(ctx, &h, dev, err);
        goto done;
    }
    if ((rc = eng_tensor_scratch(&h, stage, dev->dtype, dev->ndim, dev->shape, err)) != ENG_OK)
        goto done;
    if (to_dev) {
        if (dev->dtype == ENG_DTYPE_F16)
            eng_convert_f32_to_f16((eng_f16 *)h.data, host, n);
        else
            eng_convert_f32_to_bf16((eng_bf16 *)h.data, host, n);
        rc = eng_op_copy(ctx, dev, &h, err);
    } else {
        if ((rc = eng_op_copy(ctx, &h, dev, err)) != ENG_OK) goto done;
        if (dev->dtype == ENG_DTYPE_F16)
            eng_convert_f16_to_f32(host, (const eng_f16 *)h.data, n);
        else
            eng_convert_bf16_to_f32(host, (const eng_bf16 *)h.data, n);
    }
done:
    eng_arena_rewind(stage, pos);
    return rc;
}

int sd_block_upload(eng_ctx *ctx, eng_stream *s, eng_tensor *dst, const float *src, eng_err *err) {
    ENG_ASSERT(ctx != NULL && dst != NULL && src != NULL);
    /* transfer() only reads the host side when uploading */
    return transfer(ctx, s, dst, (float *)src, 1, "sd_block_upload", err);
}

int sd_block_download(
    eng_ctx *ctx, eng_stream *s, float *dst, const eng_tensor *src, eng_err *err) {
    ENG_ASSERT(ctx != NULL && dst != NULL && src != NULL);
    eng_tensor t = *src; /* transfer() only reads the device side when downloading */
    return transfer(ctx, s, &t, dst, 0, "sd_block_download", err);
}

int sd_block_add(eng_ctx *ctx,
                 eng_stream *s,
                 eng_tensor *y,
                 const eng_tensor *a,
                 const eng_tensor *b,
                 eng_err *err) {
    /* eng_op_add has f32 and f16 kernels; bf16 goes through the broadcasting op with equal
     * shapes, elementwise in place (cuda/elementwise.cu binary_kernel allows y == a). */
    if (y->dtype == ENG_DTYPE_BF16) return eng_op_binary(ctx, s, y, a, b, ENG_BINOP_ADD, err);
    return eng_op_add(ctx, s, y, a, b, err);
}

/* ---- forward ---------------------------------------------------------------------------------- */
/* A scratch (N, H, W, C) tensor of `dt` (on the arena's device). */
static int scratch4(eng_arena *ar,
                    eng_tensor *t,
                    eng_dtype dt,
                    int64_t n,
                    int64_t h,
                    int64_t w,
                    int64_t c,
                    eng_err *err) {
    const int64_t shape[4] = {n, h, w, c};
    return eng_tensor_scratch(t, ar, dt, 4, shape, err);
}

/* 1 when t is (n, h, w, c) (any of n, h, w, c < 0 matches anything). */
static int is4(const eng_tensor *t, int64_t n, int64_t h, int64_t w, int64_t c) {
    return t->ndim == 4 && (n < 0 || t->shape[0] == n) && (h < 0 || t->shape[1] == h) &&
           (w < 0 || t->shape[2] == w) && (c < 0 || t->shape[3] == c);
}

int sd_block_resnet_forward(const sd_block_resnet *r,
                            eng_ctx *ctx,
                            eng_stream *s,
                            eng_arena *scratch,
                            eng_tensor *y,
                            const eng_tensor *x,
                            const eng_tensor *temb,
                            eng_err *err) {
    int rc = ENG_OK;
    char xs[96], ys[96], ts[96] = "none";
    eng_tensor t1, t2, t3, tp, tp4, sc;
    ENG_ASSERT(r != NULL && ctx != NULL && scratch != NULL && y != NULL && x != NULL);
    const eng_arena_pos pos = eng_arena_mark(scratch);
    const int64_t n = x->shape[0], h = x->shape[1], w = x->shape[2];
    if (!is4(x, -1, -1, -1, r->cin) || !is4(y, n, h, w, r->cout) ||
        (temb == NULL) != (r->temb_dim == 0) ||
        (temb != NULL &&
         (temb->ndim != 2 || temb->shape[0] != n || temb->shape[1] != r->temb_dim))) {
        if (temb != NULL) (void)eng_tensor_describe(temb, ts, sizeof ts);
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_block_resnet_forward: x is %s, y %s, temb %s; expected x (N, H, W, "
                         "%lld), y (N, H, W, %lld), temb %s (%lld wide)",
                         eng_tensor_describe(x, xs, sizeof xs),
                         eng_tensor_describe(y, ys, sizeof ys), ts, (long long)r->cin,
                         (long long)r->cout, r->temb_dim > 0 ? "(N, T)" : "NULL",
                         (long long)r->temb_dim);
        goto done;
    }
    /* t1 = SiLU(norm1(x)); t2 = conv1(t1) */
    if ((rc = scratch4(scratch, &t1, x->dtype, n, h, w, r->cin, err)) != ENG_OK) goto done;
    if ((rc = scratch4(scratch, &t2, x->dtype, n, h, w, r->cout, err)) != ENG_OK) goto done;
    rc = eng_op_groupnorm(ctx, s, &t1, x, &r->norm1_w, &r->norm1_b, r->groups, r->eps, ENG_ACT_SILU,
                          err);
    if (rc != ENG_OK) goto done;
    rc = eng_op_conv2d(ctx, s, &t2, &t1, &r->conv1.w, &r->conv1.b, 1, 1, err);
    if (rc != ENG_OK) goto done;
    /* t3 = t2 + time_emb_proj(temb) broadcast over the pixels (temb is already SiLU'd) */
    if (temb != NULL) {
        const int64_t tshape[2] = {n, r->cout}, bshape[4] = {n, 1, 1, r->cout};
        if ((rc = scratch4(scratch, &t3, x->dtype, n, h, w, r->cout, err)) != ENG_OK) goto done;
        if ((rc = eng_tensor_scratch(&tp, scratch, x->dtype, 2, tshape, err)) != ENG_OK) goto done;
        rc = eng_op_linear(ctx, s, &tp, temb, &r->temb_w, &r->temb_b, ENG_ACT_NONE, err);
        if (rc != ENG_OK) goto done;
        if ((rc = eng_tensor_view_reshape(&tp4, &tp, 4, bshape, err)) != ENG_OK) goto done;
        if ((rc = eng_op_binary(ctx, s, &t3, &t2, &tp4, ENG_BINOP_ADD, err)) != ENG_OK) goto done;
    } else {
        t3 = t2;
    }
    /* t1 = SiLU(norm2(t3)); y = conv2(t1) + shortcut(x) */
    if ((rc = scratch4(scratch, &t1, x->dtype, n, h, w, r->cout, err)) != ENG_OK) goto done;
    rc = eng_op_groupnorm(ctx, s, &t1, &t3, &r->norm2_w, &r->norm2_b, r->groups, r->eps,
                          ENG_ACT_SILU, err);
    if (rc != ENG_OK) goto done;
    if ((rc = eng_op_conv2d(ctx, s, y, &t1, &r->conv2.w, &r->conv2.b, 1, 1, err)) != ENG_OK)
        goto done;
    sc = *x;
    if (r->shortcut.w.data != NULL) {
        if ((rc = scratch4(scratch, &sc, x->dtype, n, h, w, r->cout, err)) != ENG_OK) goto done;
        rc = eng_op_conv2d(ctx, s, &sc, x, &r->shortcut.w, &r->shortcut.b, 1, 0, err);
        if (rc != ENG_OK) goto done;
    }
    rc = sd_block_add(ctx, s, y, y, &sc, err); /* output_scale_factor 1 */
done:
    eng_arena_rewind(scratch, pos);
    return rc;
}

int sd_block_upsample_forward(const sd_block_conv *c,
                              eng_ctx *ctx,
                              eng_stream *s,
                              eng_arena *scratch,
                              eng_tensor *y,
                              const eng_tensor *x,
                              eng_err *err) {
    int rc = ENG_OK;
    char xs[96], ys[96];
    eng_tensor u;
    ENG_ASSERT(c != NULL && ctx != NULL && scratch != NULL && y != NULL && x != NULL);
    const eng_arena_pos pos = eng_arena_mark(scratch);
    const int64_t cin = c->w.shape[3], cout = c->w.shape[0];
    if (!is4(x, -1, -1, -1, cin) || !is4(y, x->shape[0], 2 * x->shape[1], 2 * x->shape[2], cout)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_block_upsample_forward: x is %s, y %s; expected x (N, H, W, %lld), "
                         "y (N, 2H, 2W, %lld)",
                         eng_tensor_describe(x, xs, sizeof xs),
                         eng_tensor_describe(y, ys, sizeof ys), (long long)cin, (long long)cout);
        goto done;
    }
    if ((rc = scratch4(scratch, &u, x->dtype, x->shape[0], 2 * x->shape[1], 2 * x->shape[2], cin,
                       err)) != ENG_OK)
        goto done;
    if ((rc = eng_op_upsample_nearest2x(ctx, s, &u, x, err)) != ENG_OK) goto done;
    rc = eng_op_conv2d(ctx, s, y, &u, &c->w, &c->b, 1, 1, err);
done:
    eng_arena_rewind(scratch, pos);
    return rc;
}

/* p (N, H+1, W+1, C) = x (N, H, W, C) with a zero row below and a zero column to the right
 * (F.pad(x, (0, 1, 0, 1))): two concatenations with zeros. The engine has no op that fills a
 * constant, so one zero element is uploaded from the host and the concatenations read it
 * through stride-0 views (numpy's broadcast_to), on any device. */
static int pad_bottom_right(eng_ctx *ctx,
                            eng_stream *s,
                            eng_arena *scratch,
                            eng_tensor *p,
                            const eng_tensor *x,
                            eng_err *err) {
    int rc = ENG_OK;
    static const float zero = 0.0f;
    const int64_t n = x->shape[0], h = x->shape[1], w = x->shape[2], c = x->shape[3];
    const int64_t one[1] = {1};
    eng_tensor z, zc, zr, t;
    if ((rc = eng_tensor_scratch(&z, scratch, x->dtype, 1, one, err)) != ENG_OK) goto done;
    if ((rc = sd_block_upload(ctx, s, &z, &zero, err)) != ENG_OK) goto done;
    /* zc (N, H, 1, C) and zr (N, 1, W+1, C): every element is z's one zero */
    zc = z;
    zc.ndim = 4;
    zc.shape[0] = n, zc.shape[1] = h, zc.shape[2] = 1, zc.shape[3] = c;
    zc.stride[0] = zc.stride[1] = zc.stride[2] = zc.stride[3] = 0;
    zr = zc;
    zr.shape[1] = 1, zr.shape[2] = w + 1;
    if ((rc = scratch4(scratch, &t, x->dtype, n, h, w + 1, c, err)) != ENG_OK) goto done;
    if ((rc = eng_op_concat(ctx, s, &t, x, &zc, 2, err)) != ENG_OK) goto done; /* (N, H, W+1, C) */
    rc = eng_op_concat(ctx, s, p, &t, &zr, 1, err); /* (N, H+1, W+1, C) */
done:
    return rc;
}

int sd_block_downsample_forward(const sd_block_conv *c,
                                int pad,
                                eng_ctx *ctx,
                                eng_stream *s,
                                eng_arena *scratch,
                                eng_tensor *y,
                                const eng_tensor *x,
                                eng_err *err) {
    int rc = ENG_OK;
    char xs[96], ys[96];
    eng_tensor p;
    ENG_ASSERT(c != NULL && ctx != NULL && scratch != NULL && y != NULL && x != NULL);
    const eng_arena_pos pos = eng_arena_mark(scratch);
    const int64_t cin = c->w.shape[3], cout = c->w.shape[0];
    const int64_t h = x->shape[1], w = x->shape[2];
    /* pad 1: (H + 2 - 3) / 2 + 1 = ceil(H / 2); pad 0: (H + 1 - 3) / 2 + 1 = floor(H / 2) */
    const int64_t ho = pad == 1 ? (h + 1) / 2 : h / 2, wo = pad == 1 ? (w + 1) / 2 : w / 2;
    if (pad != 0 && pad != 1) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_block_downsample_forward: padding %d (diffusers Downsample2D: 0 or 1)",
                         pad);
        goto done;
    }
    if (!is4(x, -1, -1, -1, cin) || h < 2 - pad || w < 2 - pad ||
        !is4(y, x->shape[0], ho, wo, cout)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_block_downsample_forward: x is %s, y %s; expected x (N, H, W, %lld) "
                         "with H, W >= %d and y (N, %s(H/2), %s(W/2), %lld)",
                         eng_tensor_describe(x, xs, sizeof xs),
                         eng_tensor_describe(y, ys, sizeof ys), (long long)cin, 2 - pad,
                         pad ? "ceil" : "floor", pad ? "ceil" : "floor", (long long)cout);
        goto done;
    }
    if (pad == 1) {
        rc = eng_op_conv2d(ctx, s, y, x, &c->w, &c->b, 2, 1, err);
        goto done;
    }
    if ((rc = scratch4(scratch, &p, x->dtype, x->shape[0], h + 1, w + 1, cin, err)) != ENG_OK)
        goto done;
    if ((rc = pad_bottom_right(ctx, s, scratch, &p, x, err)) != ENG_OK) goto done;
    rc = eng_op_conv2d(ctx, s, y, &p, &c->w, &c->b, 2, 0, err);
done:
    eng_arena_rewind(scratch, pos);
    return rc;
}
