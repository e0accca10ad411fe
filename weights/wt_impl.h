/* wt_impl.h: helpers shared inside weights/ (no other directory includes this). */
#ifndef WT_IMPL_H
#define WT_IMPL_H

#include "wt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "[320, 4, 3, 3]" into buf; returns buf. */
char *wt_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);
/* The text-encoder heads rule when nothing says otherwise (hidden / 64, at least 1). */
int wt_text_heads_rule(int hidden);
/* The UNet heads rule for a family: SD1 8 per level, SD2 width / 64. */
void wt_unet_heads_rule(wt_unet_config *u, wt_family family);

#ifdef __cplusplus
}
#endif
#endif /* WT_IMPL_H */
