/* vw_image.h: the viewer's image mode: a PNG (or JPEG) shown as a texture, 1:1 when the
 * framebuffer has the image's size (the headless default and the window's first size), fitted
 * with its aspect kept otherwise. Prefix vw_image_mode_.
 *
 *   vw_mode m; if (vw_image_mode_create(&m, "gen.png", &err) != ENG_OK) ...
 *   printf("%s\n", vw_image_mode_parameters(&m));   // the PNG's "parameters" text or NULL
 *   vw_run(&params, &m, NULL, &err); vw_mode_destroy(&m);
 *
 * The title is "FILE (WxH)" plus the first line of the PNG's `parameters` text chunk (A1111's
 * generation settings, as `gen` writes them), if any. Alpha is kept: the texture is blended over
 * the black background. Ownership: the mode owns the pixels until vw_mode_destroy.
 * Errors: those of eng_image_read (the message names the file), ENG_E_OOM. */
#ifndef VW_IMAGE_H
#define VW_IMAGE_H

#include "eng_err.h"
#include "vw.h"

#ifdef __cplusplus
extern "C" {
#endif

int vw_image_mode_create(vw_mode *out, const char *path, eng_err *err);
/* The whole `parameters` text of the image, borrowed from the mode; NULL when it has none. */
const char *vw_image_mode_parameters(const vw_mode *m);

#ifdef __cplusplus
}
#endif
#endif /* VW_IMAGE_H */
