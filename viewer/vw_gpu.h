/* vw_gpu.h: the viewer's Vulkan side (used by vw.c only): instance, validation messenger, device
 * choice, the offscreen colour + depth target, the two pipelines (textured quad, lit mesh),
 * textures, mesh buffers, the swapchain of a window, frame submission and read-back.
 *
 *   vw_gpu *g = NULL; int64_t n_validation = 0;
 *   vw_gpu_params gp = {.validate = 1, .gpu = -1, .validation_count = &n_validation};
 *   vw_gpu_create(&g, &gp, &err);                 // headless: gp.window == NULL
 *   vw_gpu_resize(g, w, h, &err);                 // offscreen target size
 *   vw_gpu_set_texture(g, VW_GPU_TEX_MAIN, rgba, tw, th, &err);
 *   vw_gpu_frame(g, &draw, &stale, &err);         // draws, copies, presents; waits for the GPU
 *   vw_gpu_destroy(g);
 *
 * Frames are synchronous: vw_gpu_frame waits for its own submission, so between calls the GPU is
 * idle and textures / buffers can be replaced without further synchronisation (simple and
 * enough for a viewer whose frames are dominated by the mode's own work).
 * Validation: messages (errors and warnings) go to stderr and increment *validation_count,
 * which must outlive the instance (messages can arrive during vkDestroyInstance).
 * Threads: one thread (the one that runs vw_run). */
#ifndef VW_GPU_H
#define VW_GPU_H

#include <stdint.h>

#include "eng_err.h"
#include "vw.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vw_gpu vw_gpu;

enum { VW_GPU_TEX_MAIN, VW_GPU_TEX_OVERLAY, VW_GPU_TEX_COUNT };

typedef struct vw_gpu_params {
    void *window;              /* GLFWwindow *, or NULL: headless (no surface, no swapchain) */
    int validate;              /* enable VK_LAYER_KHRONOS_validation + messenger */
    int gpu;                   /* physical device index or -1 (best) */
    int64_t *validation_count; /* incremented per message; required when validate */
} vw_gpu_params;

/* One frame's drawing. Rectangles are in pixels of the target, (x0, y0, x1, y1), top-left
 * origin. */
typedef struct vw_gpu_draw {
    float clear[4]; /* background, 0..1 */
    int draw_mesh;  /* the mesh set by vw_gpu_set_mesh */
    float mvp[16];  /* column-major projection * view */
    float eye[3];   /* camera position (world) */
    int depth_view; /* shade the mesh by depth */
    float near_d;   /* depth shading range (distances) */
    float far_d;
    int draw_tex[VW_GPU_TEX_COUNT]; /* draw texture i at rect[i] (main first, overlay on top) */
    float rect[VW_GPU_TEX_COUNT][4];
    uint8_t *readback; /* non-NULL: receives the target as (h, w, 4) RGBA bytes */
    int present;       /* window: show the frame */
} vw_gpu_draw;

/* Errors: ENG_E_DEVICE ("no Vulkan device found ...", or the failing call), ENG_E_UNSUPPORTED
 * (validation layers asked for but not installed; no usable swapchain), ENG_E_OOM. */
int vw_gpu_create(vw_gpu **out, const vw_gpu_params *p, eng_err *err);
void vw_gpu_destroy(vw_gpu *g); /* NULL is a no-op */
/* "llvmpipe (LLVM 15.0.6, 256 bits) (cpu)" */
const char *vw_gpu_device_name(const vw_gpu *g);

/* (Re)creates the offscreen target at w x h (1..16384). Errors: ENG_E_DEVICE, ENG_E_OOM. */
int vw_gpu_resize(vw_gpu *g, int64_t w, int64_t h, eng_err *err);
/* Uploads an RGBA8 texture (h, w, 4) into slot `slot`, recreating it when the size changes. */
int vw_gpu_set_texture(
    vw_gpu *g, int slot, const uint8_t *rgba, int64_t w, int64_t h, eng_err *err);
/* Uploads geometry (replaces the previous; n_tris 0 clears it). */
int vw_gpu_set_mesh(vw_gpu *g, const vw_mesh_data *m, eng_err *err);
/* Draws one frame into the offscreen target, copies it to draw->readback and/or presents it.
 * *stale = 1 when the swapchain was out of date (recreated: the caller should check the
 * framebuffer size and draw again). */
int vw_gpu_frame(vw_gpu *g, const vw_gpu_draw *draw, int *stale, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* VW_GPU_H */
