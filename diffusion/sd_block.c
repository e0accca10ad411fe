/* sd_block.c: ResnetBlock2D, Upsample2D and Downsample2D on the engine's ops, shared by the UNet
 * (sd_unet.c) and the VAE (sd_vae.c). Reference: diffusers models/resnet.py (ResnetBlock2D),
 * upsampling.py (Upsample2D, interpolate nearest then conv), downsampling.py (Downsample2D: with
 * padding 0 it applies F.pad(x, (0, 1, 0, 1)) before the stride-2 conv). */
#include "sd_block.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wt.h"

int sd_block_load_tensor(eng_tensor *t,
                         const wt_model *m,
                         eng_alloc *alloc,
                         unsigned flags,
                         eng_err *err,
                         const char *fmt,
                         ...) {
    char name[WT_MAX_NAME];
    va_list ap;
    ENG_ASSERT(t != NULL && m != NULL && alloc != NULL && fmt != NULL);
    va_start(ap, fmt);
    const int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_block_load_tensor: name \"%s...\" is longer "
                           "than %d characters",
                           name, WT_MAX_NAME - 1);
    }
    return wt_model_load_tensor(m, name, alloc, ENG_DTYPE_F32, flags, t, err);
}

void sd_block_free_tensor(eng_tensor *t, eng_alloc *alloc) {
    if (t->data != NULL) eng_tensor_free(alloc, t);
    memset(t, 0, sizeof *t);
}

int sd_block_conv_load(sd_block_conv *c,
                       const wt_model *m,
                       eng_alloc *alloc,
                       const char *prefix,
                       int64_t cout,
                       int64_t cin,
                       int64_t k,
                       eng_err *err) {
    int rc = ENG_OK;
    sd_block_conv t = {0};
    char got[96];
    ENG_ASSERT(c != NULL && prefix != NULL);
    if ((rc = sd_block_load_tensor(&t.w, m, alloc, WT_LOAD_OHWI, err, "%s.weight", prefix)) != 0)
        goto done;
    if ((rc = sd_block_load_tensor(&t.b, m, alloc, 0, err, "%s.bias", prefix)) != ENG_OK) goto done;
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
    sd_block_conv_free(&t, alloc);
    return rc;
}

void sd_block_conv_free(sd_block_conv *c, eng_alloc *alloc) {
    sd_block_free_tensor(&c->w, alloc);
    sd_block_free_tensor(&c->b, alloc);
}

/* Loads the 1-D tensor "<prefix>.<what>" and checks it has n elements. */
static int load_vec(eng_tensor *t,
                    const wt_model *m,
                    eng_alloc *alloc,
                    const char *prefix,
                    const char *what,
                    int64_t n,
                    eng_err *err) {
    char got[96];
    int rc = sd_block_load_tensor(t, m, alloc, 0, err, "%s.%s", prefix, what);
    if (rc == ENG_OK && (t->ndim != 1 || t->shape[0] != n)) {
        rc = eng_err_set(err, ENG_E_FORMAT, "sd_block_resnet_load: %s.%s is %s, expected [%lld]",
                         prefix, what, eng_tensor_describe(t, got, sizeof got), (long long)n);
    }
    return rc;
}

int sd_block_resnet_load(sd_block_resnet *r,
                         const wt_model *m,
                         eng_alloc *alloc,
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
    ENG_ASSERT(r != NULL && m != NULL && alloc != NULL && prefix != NULL);
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
    if ((rc = load_vec(&t.norm1_w, m, alloc, prefix, "norm1.weight", cin, err)) != ENG_OK)
        goto done;
    if ((rc = load_vec(&t.norm1_b, m, alloc, prefix, "norm1.bias", cin, err)) != ENG_OK) goto done;
    snprintf(name, sizeof name, "%s.conv1", prefix);
    if ((rc = sd_block_conv_load(&t.conv1, m, alloc, name, cout, cin, 3, err)) != ENG_OK) goto done;
    if (temb_dim > 0) {
        rc = sd_block_load_tensor(&t.temb_w, m, alloc, 0, err, "%s.time_emb_proj.weight", prefix);
        if (rc != ENG_OK) goto done;
        if (t.temb_w.ndim != 2 || t.temb_w.shape[0] != cout || t.temb_w.shape[1] != temb_dim) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "sd_block_resnet_load: %s.time_emb_proj.weight is %s, expected "
                             "[%lld,%lld]",
                             prefix, eng_tensor_describe(&t.temb_w, got, sizeof got),
                             (long long)cout, (long long)temb_dim);
            goto done;
        }
        rc = load_vec(&t.temb_b, m, alloc, prefix, "time_emb_proj.bias", cout, err);
        if (rc != ENG_OK) goto done;
    }
    if ((rc = load_vec(&t.norm2_w, m, alloc, prefix, "norm2.weight", cout, err)) != ENG_OK)
        goto done;
    if ((rc = load_vec(&t.norm2_b, m, alloc, prefix, "norm2.bias", cout, err)) != ENG_OK) goto done;
    snprintf(name, sizeof name, "%s.conv2", prefix);
    if ((rc = sd_block_conv_load(&t.conv2, m, alloc, name, cout, cout, 3, err)) != ENG_OK)
        goto done;
    if (cin != cout) {
        snprintf(name, sizeof name, "%s.conv_shortcut", prefix);
        rc = sd_block_conv_load(&t.shortcut, m, alloc, name, cout, cin, 1, err);
        if (rc != ENG_OK) goto done;
    }
    *r = t;
    memset(&t, 0, sizeof t);
done:
    sd_block_resnet_free(&t, alloc);
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

/* ---- forward ---------------------------------------------------------------------------------- */
/* A scratch (N, H, W, C) f32 tensor. */
static int
scratch4(eng_arena *ar, eng_tensor *t, int64_t n, int64_t h, int64_t w, int64_t c, eng_err *err) {
    const int64_t shape[4] = {n, h, w, c};
    return eng_tensor_scratch(t, ar, ENG_DTYPE_F32, 4, shape, err);
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
    if ((rc = scratch4(scratch, &t1, n, h, w, r->cin, err)) != ENG_OK) goto done;
    if ((rc = scratch4(scratch, &t2, n, h, w, r->cout, err)) != ENG_OK) goto done;
    rc = eng_op_groupnorm(ctx, s, &t1, x, &r->norm1_w, &r->norm1_b, r->groups, r->eps, ENG_ACT_SILU,
                          err);
    if (rc != ENG_OK) goto done;
    rc = eng_op_conv2d(ctx, s, &t2, &t1, &r->conv1.w, &r->conv1.b, 1, 1, err);
    if (rc != ENG_OK) goto done;
    /* t3 = t2 + time_emb_proj(temb) broadcast over the pixels (temb is already SiLU'd) */
    if (temb != NULL) {
        const int64_t tshape[2] = {n, r->cout}, bshape[4] = {n, 1, 1, r->cout};
        if ((rc = scratch4(scratch, &t3, n, h, w, r->cout, err)) != ENG_OK) goto done;
        if ((rc = eng_tensor_scratch(&tp, scratch, ENG_DTYPE_F32, 2, tshape, err)) != ENG_OK)
            goto done;
        rc = eng_op_linear(ctx, s, &tp, temb, &r->temb_w, &r->temb_b, ENG_ACT_NONE, err);
        if (rc != ENG_OK) goto done;
        if ((rc = eng_tensor_view_reshape(&tp4, &tp, 4, bshape, err)) != ENG_OK) goto done;
        if ((rc = eng_op_binary(ctx, s, &t3, &t2, &tp4, ENG_BINOP_ADD, err)) != ENG_OK) goto done;
    } else {
        t3 = t2;
    }
    /* t1 = SiLU(norm2(t3)); y = conv2(t1) + shortcut(x) */
    if ((rc = scratch4(scratch, &t1, n, h, w, r->cout, err)) != ENG_OK) goto done;
    rc = eng_op_groupnorm(ctx, s, &t1, &t3, &r->norm2_w, &r->norm2_b, r->groups, r->eps,
                          ENG_ACT_SILU, err);
    if (rc != ENG_OK) goto done;
    if ((rc = eng_op_conv2d(ctx, s, y, &t1, &r->conv2.w, &r->conv2.b, 1, 1, err)) != ENG_OK)
        goto done;
    sc = *x;
    if (r->shortcut.w.data != NULL) {
        if ((rc = scratch4(scratch, &sc, n, h, w, r->cout, err)) != ENG_OK) goto done;
        rc = eng_op_conv2d(ctx, s, &sc, x, &r->shortcut.w, &r->shortcut.b, 1, 0, err);
        if (rc != ENG_OK) goto done;
    }
    rc = eng_op_add(ctx, s, y, y, &sc, err); /* output_scale_factor 1 */
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
    if ((rc = scratch4(scratch, &u, x->shape[0], 2 * x->shape[1], 2 * x->shape[2], cin, err)) != 0)
        goto done;
    if ((rc = eng_op_upsample_nearest2x(ctx, s, &u, x, err)) != ENG_OK) goto done;
    rc = eng_op_conv2d(ctx, s, y, &u, &c->w, &c->b, 1, 1, err);
done:
    eng_arena_rewind(scratch, pos);
    return rc;
}

/* p (N, H+1, W+1, C) = x (N, H, W, C) with a zero row below and a zero column to the right
 * (F.pad(x, (0, 1, 0, 1))): two concatenations with zeros. The zeros are a memset, so this runs
 * on the CPU only (a device version needs a fill op). */
static int pad_bottom_right(eng_ctx *ctx,
                            eng_stream *s,
                            eng_arena *scratch,
                            eng_tensor *p,
                            const eng_tensor *x,
                            eng_err *err) {
    int rc = ENG_OK;
    const int64_t n = x->shape[0], h = x->shape[1], w = x->shape[2], c = x->shape[3];
    const int64_t zn = n * (h > w + 1 ? h : w + 1) * c;
    const int64_t col[4] = {n, h, 1, c}, row[4] = {n, 1, w + 1, c}, flat[1] = {zn};
    eng_tensor z, zc, zr, t;
    if ((rc = eng_tensor_scratch(&z, scratch, ENG_DTYPE_F32, 1, flat, err)) != ENG_OK) goto done;
    memset(z.data, 0, (size_t)zn * sizeof(float));
    if ((rc = eng_tensor_init(&zc, z.data, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, col, err)) != 0)
        goto done;
    if ((rc = eng_tensor_init(&zr, z.data, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, row, err)) != 0)
        goto done;
    if ((rc = scratch4(scratch, &t, n, h, w + 1, c, err)) != ENG_OK) goto done;
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
    if (x->device != ENG_DEVICE_CPU) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "sd_block_downsample_forward: padding 0 on %s (CPU tensors only)",
                         eng_tensor_describe(x, xs, sizeof xs));
        goto done;
    }
    if ((rc = scratch4(scratch, &p, x->shape[0], h + 1, w + 1, cin, err)) != ENG_OK) goto done;
    if ((rc = pad_bottom_right(ctx, s, scratch, &p, x, err)) != ENG_OK) goto done;
    rc = eng_op_conv2d(ctx, s, y, &p, &c->w, &c->b, 2, 0, err);
done:
    eng_arena_rewind(scratch, pos);
    return rc;
}
