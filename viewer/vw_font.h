/* vw_font.h: the viewer's built-in 5x7 bitmap font (printable ASCII), drawn into RGBA8 images
 * on the host for the on-screen readout. Prefix vw_font_.
 *
 *   int64_t w, h; vw_font_text_size(&w, &h, "fps 60", 2);
 *   vw_font_draw(rgba, img_w, img_h, x, y, 2, "fps 60", white);
 *
 * Each glyph is 5x7 pixels in a 6x9 cell (a column and two rows of spacing, which the tails of
 * g p q y use), times `scale`.
 * Characters outside 32..126 draw as '?'; '\n' starts a new line. Pixels outside the image are
 * clipped. Threads: pure functions on the caller's buffers. */
#ifndef VW_FONT_H
#define VW_FONT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VW_FONT_CELL_W 6
#define VW_FONT_CELL_H 9

/* The glyph of character c: 7 rows of 5 characters, '#' set and '.' clear. */
const char (*vw_font_glyph(int c))[6];
/* Size in pixels of `text` drawn at `scale` (>= 1): the widest line, and the lines. */
void vw_font_text_size(int64_t *w, int64_t *h, const char *text, int scale);
/* Draws `text` with its top-left corner at (x, y), setting covered pixels to rgba[0..3]. */
void vw_font_draw(uint8_t *img,
                  int64_t img_w,
                  int64_t img_h,
                  int64_t x,
                  int64_t y,
                  int scale,
                  const char *text,
                  const uint8_t rgba[4]);

#ifdef __cplusplus
}
#endif
#endif /* VW_FONT_H */
