/* nerf_preview.h: progressive rendering of a NeRF for interactive display (the viewer's NeRF
 * modes). Prefix nerf_preview_.
 *
 *   nerf_preview *pv = NULL;
 *   nerf_preview_create(&pv, trainer, &err);
 *   every frame:
 *       nerf_preview_set_view(pv, c2w, &intr, w, h, NERF_PREVIEW_RGB, &err); // restarts if changed
 *       if (trained since the last frame) nerf_preview_refresh(pv);
 *       nerf_preview_step(pv, rays_this_frame, &done, &err);                 // a piece of work
 *       show nerf_preview_rgba(pv, &w, &h);
 *   nerf_preview_destroy(pv);
 *
 * Refinement: a view is rendered in levels of decreasing pixel size s = S, S/2, ..., 1, where the
 * coarsest S (a power of two, at most 64) is the smallest whose image of ceil(w/s) x ceil(h/s)
 * pixels has at most `coarse_pixels` (4096) pixels; each level is rendered a band of rows at a
 * time, as many rows as the ray budget of a step allows (at least one). The displayed image
 * (w x h, RGBA8) shows every rendered pixel as an s x s block, so a moving camera (a new view each
 * frame) shows the coarse level and a resting one sharpens to full resolution.
 * A new view (camera, size or display mode) restarts at the coarsest level, overwriting the
 * display as it goes. nerf_preview_refresh (the model changed: live training) also restarts at the
 * coarsest level but keeps the view's sharper rows until a level at least as fine has redrawn
 * them, so a training run's preview updates without falling back to blocks.
 * Pixels go through nerf_trainer_render (rays through pixel centres of each level; the full level
 * is exactly that function's image). Background: `bg` (white by default). Depth mode: grey =
 * 1 - depth / far (far: the largest depth of the coarsest level's bands so far, 1 if none), black where
 * nothing was hit.
 * Threads: one thread at a time per preview; rendering uses the trainer (and its pool), so it must
 * not run beside a training step of the same trainer (the scheduler's slices never overlap). */
#ifndef NERF_PREVIEW_H
#define NERF_PREVIEW_H

#include <stdint.h>

#include "eng.h"
#include "nerf_data.h"
#include "nerf_train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nerf_preview nerf_preview; /* opaque */

enum { NERF_PREVIEW_RGB = 0, NERF_PREVIEW_DEPTH = 1 };

/* A preview of trainer t (borrowed; must outlive the preview). Errors: ENG_E_OOM. */
int nerf_preview_create(nerf_preview **out, nerf_trainer *t, eng_err *err);
void nerf_preview_destroy(nerf_preview *pv); /* NULL is a no-op */

/* Background colour (3 floats in [0, 1]) and the coarsest level's pixel budget (>= 1); both
 * restart the view. */
void nerf_preview_set_background(nerf_preview *pv, const float bg[3]);
void nerf_preview_set_coarse_pixels(nerf_preview *pv, int64_t pixels);

/* The view to show: camera-to-model c2w (3x4 row-major, OpenGL axes as nerf_trainer_render), its
 * pinhole intrinsics for a w x h image (distortion ignored), mode NERF_PREVIEW_RGB or _DEPTH.
 * Restarts the refinement when anything differs from the current view (bitwise).
 * Errors: ENG_E_INVALID_ARG (size outside 1..16384, focal <= 0, unknown mode), ENG_E_OOM. */
int nerf_preview_set_view(nerf_preview *pv,
                          const float c2w[12],
                          const nerf_intrinsics *in,
                          int64_t w,
                          int64_t h,
                          int mode,
                          eng_err *err);
/* The model changed: redraw (see the top). */
void nerf_preview_refresh(nerf_preview *pv);
/* Renders the next band of about `max_rays` rays (at least one row). *done (may be NULL) = 1 when
 * the full-resolution level is complete (a step then does nothing). Errors: ENG_E_INVALID_ARG (no
 * view set), those of nerf_trainer_render. */
int nerf_preview_step(nerf_preview *pv, int64_t max_rays, int *done, eng_err *err);
/* The displayed image (h rows of w RGBA8 pixels, owned by the preview, valid until the next
 * call), NULL before the first view. */
const uint8_t *nerf_preview_rgba(const nerf_preview *pv, int64_t *w, int64_t *h);
/* The pixel size of the level being rendered (1 = full resolution), 0 before the first view. */
int nerf_preview_level(const nerf_preview *pv);

#ifdef __cplusplus
}
#endif
#endif /* NERF_PREVIEW_H */
