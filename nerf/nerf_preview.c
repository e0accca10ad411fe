/* nerf_preview.c: progressive rendering in levels of decreasing pixel size (nerf_preview.h). */
#include "nerf_preview.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCALE 64

struct nerf_preview {
    nerf_trainer *t;
    float bg[3];
    int64_t coarse_pixels;
    /* the view */
    int have_view;
    float c2w[12];
    nerf_intrinsics in;
    int64_t w, h;
    int mode;
    /* refinement */
    int scale;       /* level being rendered; 0 once the full level is done */
    int coarse;      /* the view's coarsest scale */
    int64_t row;     /* next row of the level */
    int keep_sharp;  /* after a refresh: do not overwrite sharper rows with coarser ones */
    float far;       /* depth mode's normalisation */
    uint8_t *rgba;   /* (h, w, 4) */
    int *row_scale;  /* (h): pixel size of each displayed row's content; 0: nothing yet */
    float *band_rgb; /* scratch of one band */
    float *band_depth;
    int64_t band_cap;
};

int nerf_preview_create(nerf_preview **out, nerf_trainer *t, eng_err *err) {
    *out = NULL;
    nerf_preview *pv = calloc(1, sizeof *pv);
    if (!pv) return eng_err_set(err, ENG_E_OOM, "nerf_preview_create: out of memory");
    pv->t = t;
    pv->bg[0] = pv->bg[1] = pv->bg[2] = 1.0f;
    pv->coarse_pixels = 4096;
    *out = pv;
    return ENG_OK;
}

void nerf_preview_destroy(nerf_preview *pv) {
    if (!pv) return;
    free(pv->rgba);
    free(pv->row_scale);
    free(pv->band_rgb);
    free(pv->band_depth);
    free(pv);
}

static int coarsest_scale(int64_t w, int64_t h, int64_t budget) {
    int s = 1;
    while (s < MAX_SCALE && ((w + s - 1) / s) * ((h + s - 1) / s) > budget)
        s *= 2;
    return s;
}

static void restart(nerf_preview *pv, int keep_sharp) {
    if (!pv->have_view) return;
    pv->coarse = coarsest_scale(pv->w, pv->h, pv->coarse_pixels);
    pv->scale = pv->coarse;
    pv->row = 0;
    pv->keep_sharp = keep_sharp;
    if (!keep_sharp) pv->far = 0.0f;
}

void nerf_preview_set_background(nerf_preview *pv, const float bg[3]) {
    memcpy(pv->bg, bg, sizeof pv->bg);
    restart(pv, 0);
}

void nerf_preview_set_coarse_pixels(nerf_preview *pv, int64_t pixels) {
    pv->coarse_pixels = pixels < 1 ? 1 : pixels;
    restart(pv, 0);
}

int nerf_preview_set_view(nerf_preview *pv,
                          const float c2w[12],
                          const nerf_intrinsics *in,
                          int64_t w,
                          int64_t h,
                          int mode,
                          eng_err *err) {
    if (w < 1 || h < 1 || w > 16384 || h > 16384 || !(in->fx > 0) || !(in->fy > 0) ||
        (mode != NERF_PREVIEW_RGB && mode != NERF_PREVIEW_DEPTH))
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_preview_set_view: %lldx%lld pixels, focal %g %g, mode %d",
                           (long long)w, (long long)h, (double)in->fx, (double)in->fy, mode);
    if (pv->have_view && pv->w == w && pv->h == h && pv->mode == mode &&
        !memcmp(pv->c2w, c2w, sizeof pv->c2w) && !memcmp(&pv->in, in, sizeof pv->in))
        return ENG_OK;
    if (!pv->have_view || pv->w != w || pv->h != h) {
        uint8_t *rgba = calloc((size_t)(w * h), 4);
        int *rows = calloc((size_t)h, sizeof *rows);
        if (!rgba || !rows) {
            free(rgba);
            free(rows);
            return eng_err_set(err, ENG_E_OOM, "nerf_preview_set_view: out of memory for %lldx%lld",
                               (long long)w, (long long)h);
        }
        free(pv->rgba);
        free(pv->row_scale);
        pv->rgba = rgba;
        pv->row_scale = rows;
    }
    memcpy(pv->c2w, c2w, sizeof pv->c2w);
    pv->in = *in;
    pv->w = w;
    pv->h = h;
    pv->mode = mode;
    pv->have_view = 1;
    restart(pv, 0);
    return ENG_OK;
}

void nerf_preview_refresh(nerf_preview *pv) {
    restart(pv, 1);
}

static uint8_t to_u8(float v) {
    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    return (uint8_t)lrintf(v * 255.0f);
}

/* Writes band rows [r0, r1) of the level of pixel size s into the display. */
static void paint(nerf_preview *pv, int s, int64_t r0, int64_t r1, int64_t lw) {
    for (int64_t lr = r0; lr < r1; lr++) {
        for (int64_t y = lr * s; y < (lr + 1) * s && y < pv->h; y++) {
            if (pv->keep_sharp && pv->row_scale[y] && pv->row_scale[y] < s) continue;
            pv->row_scale[y] = s;
            uint8_t *dst = pv->rgba + y * pv->w * 4;
            for (int64_t x = 0; x < pv->w; x++) {
                int64_t i = (lr - r0) * lw + x / s;
                uint8_t px[4] = {0, 0, 0, 255};
                if (pv->mode == NERF_PREVIEW_DEPTH) {
                    float d = pv->band_depth[i];
                    float far = pv->far > 0.0f ? pv->far : 1.0f;
                    uint8_t g = d > 0.0f ? to_u8(1.0f - d / far) : 0;
                    px[0] = px[1] = px[2] = g;
                } else {
                    for (int c = 0; c < 3; c++)
                        px[c] = to_u8(pv->band_rgb[i * 3 + c]);
                }
                memcpy(dst + x * 4, px, 4);
            }
        }
    }
}

int nerf_preview_step(nerf_preview *pv, int64_t max_rays, int *done, eng_err *err) {
    if (done) *done = 0;
    if (!pv->have_view)
        return eng_err_set(err, ENG_E_INVALID_ARG, "nerf_preview_step: no view set");
    if (pv->scale == 0) {
        if (done) *done = 1;
        return ENG_OK;
    }
    int s = pv->scale;
    int64_t lw = (pv->w + s - 1) / s, lh = (pv->h + s - 1) / s;
    int64_t rows = max_rays / lw;
    if (rows < 1) rows = 1;
    if (rows > lh - pv->row) rows = lh - pv->row;
    int64_t n = rows * lw;
    if (n > pv->band_cap) {
        float *rgb = realloc(pv->band_rgb, (size_t)n * 3 * sizeof *rgb);
        if (rgb) pv->band_rgb = rgb;
        float *depth = rgb ? realloc(pv->band_depth, (size_t)n * sizeof *depth) : NULL;
        if (!rgb || !depth)
            return eng_err_set(err, ENG_E_OOM, "nerf_preview_step: out of memory for %lld rays",
                               (long long)n);
        pv->band_depth = depth;
        pv->band_cap = n;
    }
    /* The level's camera: pixel size s, shifted so that the band's first row is row 0. */
    nerf_intrinsics in = pv->in;
    in.fx /= (float)s;
    in.fy /= (float)s;
    in.cx /= (float)s;
    in.cy = in.cy / (float)s - (float)pv->row;
    in.k1 = in.k2 = in.p1 = in.p2 = 0.0f;
    int rc = nerf_trainer_render(pv->t, pv->band_rgb, pv->band_depth, pv->c2w, &in, lw, rows,
                                 pv->bg, err);
    if (rc) return rc;
    if (s == pv->coarse && !pv->keep_sharp) { /* the coarsest level sets the depth scale */
        for (int64_t i = 0; i < n; i++)
            pv->far = fmaxf(pv->far, pv->band_depth[i]);
    }
    paint(pv, s, pv->row, pv->row + rows, lw);
    pv->row += rows;
    if (pv->row >= lh) {
        pv->scale = s / 2;
        pv->row = 0;
        if (pv->scale == 0 && done) *done = 1;
    }
    return ENG_OK;
}

const uint8_t *nerf_preview_rgba(const nerf_preview *pv, int64_t *w, int64_t *h) {
    if (w) *w = pv->have_view ? pv->w : 0;
    if (h) *h = pv->have_view ? pv->h : 0;
    return pv->have_view ? pv->rgba : NULL;
}

int nerf_preview_level(const nerf_preview *pv) {
    return pv->have_view ? pv->scale : 0;
}
