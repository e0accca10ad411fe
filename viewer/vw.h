/* vw.h: the Vulkan viewer's public entry point. A "mode" (a small vtable) says what to show; the
 * viewer owns the window or the headless target, the camera, the input and the overlay, and asks
 * the mode for a frame whenever it draws one.
 *
 *   vw_mode mode; eng_err err = {0};
 *   if (vw_image_mode_create(&mode, "out.png", &err) != ENG_OK) ...   // vw_image.h, vw_mesh.h
 *   vw_params p; vw_params_init(&p);
 *   p.headless = 1; p.screenshot = "shot.png"; p.validate = 1;
 *   vw_stats st; int rc = vw_run(&p, &mode, &st, &err);             // blocks until done
 *   vw_mode_destroy(&mode);
 *   if (rc != ENG_OK) fprintf(stderr, "%s\n", err.msg);
 *   if (st.validation_messages > 0) ...                                 // the CLI exits 3
 *
 * One render path: every frame is drawn into an offscreen R8G8B8A8_UNORM colour image (not
 * sRGB: a texture's bytes come out unchanged) with a depth image. A window (GLFW) blits it to
 * the swapchain; headless, nothing is created but the device (no GLFW, no surface) and a
 * screenshot copies the image to host memory. Screenshots are RGB PNGs of that image.
 *
 * Writing a mode (the NeRF modes do this): fill a vw_mode and give it a frame() callback.
 * frame() is called once per drawn frame with the current camera (vw_view) and fills
 * vw_frame_out: a new RGBA8 texture to show (any size, it may change from frame to frame, e.g.
 * low resolution while view->moving), new geometry (meshes), an overlay line, and `again` when
 * it wants another frame soon even if nothing moves (progressive refinement, training).
 * The texture is drawn fitted to the framebuffer with its aspect kept (letterboxed), sampled
 * NEAREST; a texture of the framebuffer's size is shown 1:1. The geometry is drawn under it
 * (a mode gives one or the other; both are drawn if both are given: geometry, then texture).
 *
 * Camera convention (view->c2w): camera-to-world, 3x4 row-major (out[4*r + c]), OpenGL axes as
 * in nerf/nerf_train.h: camera x right, y up, looking down -z; the columns are the camera's
 * right, up, backward axes and its position, in world (model) space. Pinhole intrinsics in
 * pixels of the framebuffer (fx = fy, principal point at the centre), so a NeRF mode passes
 * c2w and {fx, fy, cx, cy} straight to nerf_trainer_render. The orbit camera looks at `center`
 * from distance `dist` at azimuth az and elevation el (degrees) about the mode's up axis:
 *   up y: az 0 sits on +z, az 90 on +x;  up z: az 0 sits on -y, az 90 on +x;
 *   up x: az 0 sits on +y, az 90 on +z;  el 90 looks straight down the up axis.
 * Projection: Vulkan clip space (y down, depth 0 at the near plane, 1 at the far plane).
 *
 * Ownership: vw_run borrows the params and the mode; the mode is destroyed by its creator
 * (vw_mode_destroy calls its destroy callback). Pointers a mode returns in vw_frame_out are
 * borrowed until its next frame() or destroy() call (the viewer copies them before that).
 * Threads: call vw_run from the main thread (GLFW's rule); it starts no threads of its own, and
 * the mode's callbacks run on the calling thread. */
#ifndef VW_H
#define VW_H

#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VW_TEXT_MAX  128 /* bytes of an overlay line, NUL included */
#define VW_TITLE_MAX 512

typedef enum vw_up { VW_UP_X, VW_UP_Y, VW_UP_Z, VW_UP_COUNT } vw_up;

/* The camera and state for one frame. */
typedef struct vw_view {
    float c2w[12];         /* camera-to-world, 3x4 row-major, OpenGL axes (see above) */
    float fx, fy, cx, cy;  /* pinhole intrinsics, pixels of (width, height) */
    float fovy_deg;        /* vertical field of view */
    int64_t width, height; /* framebuffer size, pixels */
    float center[3];       /* the orbit's centre (world) */
    float dist;            /* camera to centre */
    float near_z, far_z;   /* clip planes used for geometry (distances along -z) */
    int moving;            /* the camera moved since the last frame or a drag is on */
    int depth;             /* Tab: the user asked for depth instead of colour */
    int paused;            /* Space: the user paused (e.g. training) */
    int64_t frame;         /* 0, 1, 2, ... */
} vw_view;

/* Geometry for the mesh pipeline (all borrowed, see above). */
typedef struct vw_mesh_data {
    int64_t n_verts, n_tris;
    const float *pos;      /* (n_verts, 3) world space */
    const float *normals;  /* (n_verts, 3) unit */
    const uint8_t *colors; /* (n_verts, 3) RGB */
    const uint32_t *tris;  /* (n_tris, 3) vertex indices < n_verts */
} vw_mesh_data;

/* What frame() hands back; zeroed by the viewer before each call. */
typedef struct vw_frame_out {
    const uint8_t *rgba;      /* non-NULL: new texture, (height, width, 4) bytes, top row first */
    int64_t width, height;    /* its size (1..16384 each) */
    const vw_mesh_data *mesh; /* non-NULL: new geometry (replaces the previous) */
    char text[VW_TEXT_MAX];   /* overlay / title line, e.g. "step 1200  PSNR 27.3 dB" */
    int again;                /* 1: draw another frame soon even if nothing changes */
} vw_frame_out;

typedef struct vw_mode {
    void *user;               /* passed to the callbacks */
    const char *name;         /* "image", "mesh", ... */
    char title[VW_TITLE_MAX]; /* window title (the overlay line is appended); printed headless */
    int64_t width, height;    /* preferred framebuffer size; 0: 800 x 600 */
    int has_scene;            /* 1: a 3-D scene: the camera fields below are used */
    float center[3], radius;  /* scene bounds for auto-framing (bounding sphere) */
    vw_up up;                 /* the scene's up axis */
    int has_depth;            /* Tab toggles view->depth */
    /* Draws one frame: fills *out. Errors end vw_run with that error. */
    int (*frame)(void *user, const vw_view *view, vw_frame_out *out, eng_err *err);
    /* A printable key the viewer does not use, as its upper-case ASCII code; may be NULL. */
    void (*key)(void *user, int key);
    void (*destroy)(void *user); /* may be NULL */
} vw_mode;

typedef struct vw_params {
    int headless;           /* 1: no window, no surface, no GLFW */
    int64_t width, height;  /* framebuffer (window start) size; 0: the mode's preference */
    int64_t frames;         /* frames before the screenshot; 0: 1 (headless) */
    const char *screenshot; /* PNG path: save after `frames` frames and return; headless
                               without one renders `frames` frames and returns */
    int validate;           /* VK_LAYER_KHRONOS_validation + debug messenger (counted) */
    int gpu;                /* physical device index; -1: best (discrete > integrated > ...) */
    int overlay;            /* -1: default (window on, headless off), 0 off, 1 on */
    int orbit_set;          /* 1: use az_deg / el_deg */
    float az_deg, el_deg;   /* initial orbit (defaults 30, 20) */
    float dist;             /* initial distance; 0: fit the scene */
    float fovy_deg;         /* vertical field of view (45) */
    int quiet;              /* 1: no informational lines on stdout */
    int depth;              /* 1: start in the depth view (Tab), for modes that have one */
} vw_params;

typedef struct vw_stats {
    int64_t frames;              /* frames drawn */
    int64_t validation_messages; /* validation errors + warnings reported (also on stderr) */
    char device[320];            /* the Vulkan device used */
} vw_stats;

void vw_params_init(vw_params *p);

/* Opens the device (and window), runs until the window closes / Esc, or the screenshot is
 * written (or, headless without a screenshot, `frames` frames are drawn). stats may be NULL.
 * Errors: ENG_E_DEVICE ("no Vulkan device found ..." or a failing Vulkan call, naming it),
 * ENG_E_UNSUPPORTED (no display for a window: the message suggests --headless), ENG_E_IO
 * (the screenshot), ENG_E_INVALID_ARG (params, a bad frame_out), ENG_E_OOM, the mode's own. */
int vw_run(const vw_params *p, vw_mode *mode, vw_stats *stats, eng_err *err);

/* Calls mode->destroy(mode->user) if set and zeroes the mode; NULL is a no-op. */
void vw_mode_destroy(vw_mode *mode);

/* The orbit camera of the convention above: c2w (3x4 row-major) of the camera at azimuth/
 * elevation (degrees) and distance from center about `up`. */
void vw_orbit_c2w(
    float c2w[12], const float center[3], float az_deg, float el_deg, float dist, vw_up up);

#ifdef __cplusplus
}
#endif
#endif /* VW_H */
