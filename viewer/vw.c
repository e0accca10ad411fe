/* vw.c: vw_run (vw.h): the window or headless loop, the orbit / fly camera, input, the overlay
 * readout and screenshots. The Vulkan work is in vw_gpu.c. */
#define _POSIX_C_SOURCE 200809L
#include "vw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <GLFW/glfw3.h>

#include "eng_image.h"
#include "vw_font.h"
#include "vw_gpu.h"

#define PI_F 3.14159265358979f

/* Background of 3-D scenes (bytes, so that screenshots can be tested against it exactly). */
static const uint8_t scene_bg[3] = {24, 24, 28};

void vw_params_init(vw_params *p) {
    memset(p, 0, sizeof *p);
    p->gpu = -1;
    p->overlay = -1;
    p->az_deg = 30.0f;
    p->el_deg = 20.0f;
    p->fovy_deg = 45.0f;
}

void vw_mode_destroy(vw_mode *mode) {
    if (mode == NULL) return;
    if (mode->destroy != NULL) mode->destroy(mode->user);
    memset(mode, 0, sizeof *mode);
}

/* (e1, e2, up): az 0 sits on e1, az 90 on e2; right-handed, e1 x e2 = up. */
static void up_basis(float e1[3], float e2[3], float u[3], vw_up up) {
    static const float basis[VW_UP_COUNT][3][3] = {
        {{0, 1, 0}, {0, 0, 1}, {1, 0, 0}},  /* x up */
        {{0, 0, 1}, {1, 0, 0}, {0, 1, 0}},  /* y up */
        {{0, -1, 0}, {1, 0, 0}, {0, 0, 1}}, /* z up */
    };
    const int i = up >= 0 && up < VW_UP_COUNT ? (int)up : (int)VW_UP_Y;
    memcpy(e1, basis[i][0], 3 * sizeof(float));
    memcpy(e2, basis[i][1], 3 * sizeof(float));
    memcpy(u, basis[i][2], 3 * sizeof(float));
}

void vw_orbit_c2w(
    float c2w[12], const float center[3], float az_deg, float el_deg, float dist, vw_up up) {
    float e1[3], e2[3], u[3];
    up_basis(e1, e2, u, up);
    const float az = az_deg * PI_F / 180.0f, el = el_deg * PI_F / 180.0f;
    float back[3], right[3], cup[3];
    for (int k = 0; k < 3; k++) {
        back[k] = cosf(el) * (cosf(az) * e1[k] + sinf(az) * e2[k]) + sinf(el) * u[k];
        right[k] = cosf(az) * e2[k] - sinf(az) * e1[k]; /* = up x (horizontal back), unit */
    }
    /* camera up = back x right */
    cup[0] = back[1] * right[2] - back[2] * right[1];
    cup[1] = back[2] * right[0] - back[0] * right[2];
    cup[2] = back[0] * right[1] - back[1] * right[0];
    for (int r = 0; r < 3; r++) {
        c2w[4 * r + 0] = right[r];
        c2w[4 * r + 1] = cup[r];
        c2w[4 * r + 2] = back[r];
        c2w[4 * r + 3] = center[r] + dist * back[r];
    }
}

/* ---- camera --------------------------------------------------------------------------------- */

typedef struct cam {
    float center[3];
    float az, el, dist; /* degrees, degrees, world units */
} cam;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float fit_distance(float radius, float fovy_deg, int64_t w, int64_t h) {
    const float ty = tanf(0.5f * fovy_deg * PI_F / 180.0f);
    const float tx = ty * (float)w / (float)h;
    const float t = tx < ty ? tx : ty;
    const float half = atanf(t);
    return 1.05f * radius / sinf(half);
}

static void cam_reset(cam *c, const vw_params *p, const vw_mode *m, int64_t w, int64_t h) {
    memcpy(c->center, m->center, sizeof c->center);
    c->az = p->az_deg;
    c->el = p->el_deg;
    const float r = m->radius > 0 ? m->radius : 1.0f;
    c->dist = p->dist > 0 ? p->dist : fit_distance(r, p->fovy_deg, w, h);
}

/* view: c2w, intrinsics, clip planes; mvp column-major for the shader. */
static void make_view(vw_view *v,
                      float mvp[16],
                      const cam *c,
                      const vw_mode *m,
                      float fovy_deg,
                      int64_t w,
                      int64_t h) {
    vw_orbit_c2w(v->c2w, c->center, c->az, c->el, c->dist, m->up);
    v->fovy_deg = fovy_deg;
    v->width = w;
    v->height = h;
    const float f = 1.0f / tanf(0.5f * fovy_deg * PI_F / 180.0f);
    v->fy = 0.5f * (float)h * f;
    v->fx = v->fy;
    v->cx = 0.5f * (float)w;
    v->cy = 0.5f * (float)h;
    memcpy(v->center, c->center, sizeof v->center);
    v->dist = c->dist;
    /* Clip planes around the scene's bounding sphere, wherever the camera has flown. */
    const float eye[3] = {v->c2w[3], v->c2w[7], v->c2w[11]};
    float ds = 0;
    for (int k = 0; k < 3; k++)
        ds += (eye[k] - m->center[k]) * (eye[k] - m->center[k]);
    ds = sqrtf(ds);
    const float r = m->radius > 0 ? m->radius : 1.0f;
    v->far_z = ds + 1.01f * r;
    v->near_z = ds - 1.01f * r;
    if (v->near_z < 1e-3f * v->far_z) v->near_z = 1e-3f * v->far_z;
    /* view = [R^T | -R^T eye] with R's columns the camera axes (rows of c2w's 3x3). */
    float view[4][4] = {{0}};
    for (int i = 0; i < 3; i++) {
        float t = 0;
        for (int k = 0; k < 3; k++) {
            view[i][k] = v->c2w[4 * k + i];
            t += v->c2w[4 * k + i] * eye[k];
        }
        view[i][3] = -t;
    }
    view[3][3] = 1;
    /* Vulkan clip space: x_c = f/a x, y_c = -f y (y down), z_c in [0, w_c], w_c = -z. */
    const float a = (float)w / (float)h, n = v->near_z, fa = v->far_z;
    float proj[4][4] = {{0}};
    proj[0][0] = f / a;
    proj[1][1] = -f;
    proj[2][2] = fa / (n - fa);
    proj[2][3] = n * fa / (n - fa);
    proj[3][2] = -1;
    for (int row = 0; row < 4; row++)
        for (int col = 0; col < 4; col++) {
            float s = 0;
            for (int k = 0; k < 4; k++)
                s += proj[row][k] * view[k][col];
            mvp[4 * col + row] = s; /* column-major */
        }
}

/* ---- input (window) ------------------------------------------------------------------------- */

typedef struct input {
    vw_mode *mode;
    double scroll;
    int quit, shot, depth, paused, reset, changed;
} input;

static void on_key(GLFWwindow *win, int key, int scancode, int action, int mods) {
    (void)scancode;
    input *in = glfwGetWindowUserPointer(win);
    if (action != GLFW_PRESS) return;
    if (key == GLFW_KEY_ESCAPE || (key == GLFW_KEY_Q && (mods & GLFW_MOD_CONTROL))) {
        in->quit = 1;
    } else if (key == GLFW_KEY_F12 || key == GLFW_KEY_P) {
        in->shot = 1;
    } else if (key == GLFW_KEY_TAB) {
        if (in->mode->has_depth) in->depth = !in->depth;
        in->changed = 1;
    } else if (key == GLFW_KEY_SPACE) {
        in->paused = !in->paused;
        in->changed = 1;
    } else if (key == GLFW_KEY_R) {
        in->reset = 1;
    } else if (key == GLFW_KEY_W || key == GLFW_KEY_A || key == GLFW_KEY_S || key == GLFW_KEY_D ||
               key == GLFW_KEY_Q || key == GLFW_KEY_E) {
        /* fly keys: polled while held */
    } else if (key >= 33 && key <= 126 && in->mode->key != NULL) {
        in->mode->key(in->mode->user, key);
        in->changed = 1;
    }
}

static void on_scroll(GLFWwindow *win, double dx, double dy) {
    (void)dx;
    input *in = glfwGetWindowUserPointer(win);
    in->scroll += dy;
}

/* Applies mouse and keys to the camera; returns 1 when it moved. */
static int cam_input(cam *c,
                     GLFWwindow *win,
                     input *in,
                     const vw_mode *m,
                     float fovy_deg,
                     int64_t h,
                     double dt,
                     double *last_x,
                     double *last_y) {
    double x = 0, y = 0;
    glfwGetCursorPos(win, &x, &y);
    const double dx = x - *last_x, dy = y - *last_y;
    *last_x = x;
    *last_y = y;
    if (!m->has_scene) {
        in->scroll = 0;
        return 0;
    }
    int moved = 0;
    float e1[3], e2[3], u[3], c2w[12];
    up_basis(e1, e2, u, m->up);
    vw_orbit_c2w(c2w, c->center, c->az, c->el, c->dist, m->up);
    const float right[3] = {c2w[0], c2w[4], c2w[8]}, cup[3] = {c2w[1], c2w[5], c2w[9]};
    const float fwd[3] = {-c2w[2], -c2w[6], -c2w[10]};
    const int left = glfwGetMouseButton(win, GLFW_MOUSE_BUTTON_LEFT) == GLFW_PRESS;
    const int pan = glfwGetMouseButton(win, GLFW_MOUSE_BUTTON_RIGHT) == GLFW_PRESS ||
                    glfwGetMouseButton(win, GLFW_MOUSE_BUTTON_MIDDLE) == GLFW_PRESS;
    if (left && (dx != 0 || dy != 0)) {
        c->az -= (float)dx * 0.3f;
        c->el += (float)dy * 0.3f;
        c->el = c->el > 89.0f ? 89.0f : c->el < -89.0f ? -89.0f : c->el;
        moved = 1;
    } else if (pan && (dx != 0 || dy != 0)) {
        /* one pixel moves the centre by one pixel's width at the centre's distance */
        const float k = 2.0f * c->dist * tanf(0.5f * fovy_deg * PI_F / 180.0f) / (float)h;
        for (int i = 0; i < 3; i++)
            c->center[i] += k * (-(float)dx * right[i] + (float)dy * cup[i]);
        moved = 1;
    }
    if (in->scroll != 0) {
        c->dist *= powf(0.9f, (float)in->scroll);
        const float lo = 1e-3f * (m->radius > 0 ? m->radius : 1.0f);
        if (c->dist < lo) c->dist = lo;
        in->scroll = 0;
        moved = 1;
    }
    const float speed = (float)dt * 0.8f * (c->dist > m->radius ? c->dist : m->radius);
    const struct {
        int key;
        const float *dir;
        float sign;
    } fly[] = {{GLFW_KEY_W, fwd, 1},    {GLFW_KEY_S, fwd, -1}, {GLFW_KEY_D, right, 1},
               {GLFW_KEY_A, right, -1}, {GLFW_KEY_E, u, 1},    {GLFW_KEY_Q, u, -1}};
    for (size_t i = 0; i < sizeof fly / sizeof fly[0]; i++)
        if (glfwGetKey(win, fly[i].key) == GLFW_PRESS &&
            glfwGetKey(win, GLFW_KEY_LEFT_CONTROL) != GLFW_PRESS) {
            for (int k = 0; k < 3; k++)
                c->center[k] += fly[i].sign * speed * fly[i].dir[k];
            moved = 1;
        }
    return moved || left || pan;
}

/* ---- overlay, screenshots ------------------------------------------------------------------- */

/* The readout as an RGBA image: white text on a translucent black box. */
static int overlay_image(eng_image *img, const char *text, int scale, eng_err *err) {
    int64_t tw = 0, th = 0;
    vw_font_text_size(&tw, &th, text, scale);
    const int64_t pad = 3 * scale;
    int rc = eng_image_alloc(img, tw + 2 * pad, th + 2 * pad - 2 * scale, 4, err);
    if (rc != ENG_OK) return rc;
    for (int64_t i = 0; i < img->width * img->height; i++)
        img->data[4 * i + 3] = 150;
    const uint8_t white[4] = {255, 255, 255, 255};
    vw_font_draw(img->data, img->width, img->height, pad, pad, scale, text, white);
    return ENG_OK;
}

static int
write_screenshot(const char *path, const uint8_t *rgba, int64_t w, int64_t h, eng_err *err) {
    eng_image img = {0};
    int rc = eng_image_alloc(&img, w, h, 3, err);
    if (rc != ENG_OK) return rc;
    for (int64_t i = 0; i < w * h; i++)
        memcpy(img.data + 3 * i, rgba + 4 * i, 3);
    rc = eng_image_write_png(path, &img, NULL, 0, err);
    eng_image_free(&img);
    return rc;
}

static void next_shot_name(char *out, size_t n) {
    for (int i = 0; i < 10000; i++) {
        snprintf(out, n, "viewer-%04d.png", i);
        if (access(out, F_OK) != 0) return;
    }
}

/* ---- the loop ------------------------------------------------------------------------------- */

static int open_window(GLFWwindow **win, int64_t w, int64_t h, const char *title, eng_err *err) {
    if (!glfwInit()) {
        const char *why = NULL;
        glfwGetError(&why);
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "cannot open a window (%s): no display? Use --headless to render "
                           "offscreen (with --screenshot FILE)",
                           why != NULL ? why : "glfwInit failed");
    }
    if (!glfwVulkanSupported()) {
        glfwTerminate();
        return eng_err_set(err, ENG_E_DEVICE,
                           "no Vulkan device found (GLFW found no Vulkan loader; install "
                           "mesa-vulkan-drivers for a software device)");
    }
    glfwWindowHint(GLFW_CLIENT_API, GLFW_NO_API);
    *win = glfwCreateWindow((int)w, (int)h, title, NULL, NULL);
    if (*win == NULL) {
        const char *why = NULL;
        glfwGetError(&why);
        glfwTerminate();
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "cannot create a window (%s); use --headless to render offscreen",
                           why != NULL ? why : "unknown reason");
    }
    return ENG_OK;
}

int vw_run(const vw_params *p, vw_mode *mode, vw_stats *stats, eng_err *err) {
    int rc = ENG_OK;
    GLFWwindow *win = NULL;
    vw_gpu *gpu = NULL;
    uint8_t *shot_px = NULL;
    eng_image ov = {0};
    int64_t n_validation = 0, frame = 0;
    vw_stats st_local;
    vw_stats *st = stats != NULL ? stats : &st_local;
    input in = {0};
    char title[VW_TITLE_MAX + VW_TEXT_MAX + 64] = "", last_title[sizeof title] = "";
    char ov_text[VW_TEXT_MAX + 64] = "", last_ov[sizeof ov_text] = "";
    ENG_ASSERT(p != NULL && mode != NULL && mode->frame != NULL);
    memset(st, 0, sizeof *st);
    in.mode = mode;
    in.depth = p->depth && mode->has_depth;

    int64_t w = p->width > 0 ? p->width : mode->width > 0 ? mode->width : 800;
    int64_t h = p->height > 0 ? p->height : mode->height > 0 ? mode->height : 600;
    if (w > 16384 || h > 16384 || !(p->fovy_deg > 0 && p->fovy_deg < 180)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "vw_run: size %lldx%lld or field of view %g",
                         (long long)w, (long long)h, (double)p->fovy_deg);
        goto done;
    }
    const int64_t frames = p->frames > 0 ? p->frames : 1;
    const int overlay = p->overlay >= 0 ? p->overlay : !p->headless;

    if (!p->headless) {
        if ((rc = open_window(&win, w, h, mode->title, err)) != ENG_OK) goto done;
        glfwSetWindowUserPointer(win, &in);
        glfwSetKeyCallback(win, on_key);
        glfwSetScrollCallback(win, on_scroll);
    }
    vw_gpu_params gp = {
        .window = win, .validate = p->validate, .gpu = p->gpu, .validation_count = &n_validation};
    if ((rc = vw_gpu_create(&gpu, &gp, err)) != ENG_OK) goto done;
    snprintf(st->device, sizeof st->device, "%s", vw_gpu_device_name(gpu));
    if (!p->quiet) printf("viewer: %s, %s\n", mode->title, st->device);
    if (win != NULL) {
        int fw = 0, fh = 0;
        glfwGetFramebufferSize(win, &fw, &fh);
        if (fw > 0 && fh > 0) {
            w = fw;
            h = fh;
        }
    }
    if ((rc = vw_gpu_resize(gpu, w, h, err)) != ENG_OK) goto done;

    cam c;
    cam_reset(&c, p, mode, w, h);
    double last_x = 0, last_y = 0, t_prev = now_s(), t_fps = t_prev, fps = 0;
    int64_t fps_frames = 0;
    int again = 1, tex_w = 0, tex_h = 0, moved_prev = 0;
    if (win != NULL) glfwGetCursorPos(win, &last_x, &last_y);
    char frame_text[VW_TEXT_MAX] = "";
    for (;;) {
        int moving = 0;
        const double t = now_s();
        const double dt = t - t_prev;
        t_prev = t;
        if (win != NULL) {
            if (again || moved_prev || p->screenshot != NULL)
                glfwPollEvents();
            else
                glfwWaitEventsTimeout(0.5);
            if (glfwWindowShouldClose(win) || in.quit) break;
            if (in.reset) {
                cam_reset(&c, p, mode, w, h);
                in.reset = 0;
                moving = 1;
            }
            moving |= cam_input(&c, win, &in, mode, p->fovy_deg, h, dt, &last_x, &last_y);
            int fw = 0, fh = 0;
            glfwGetFramebufferSize(win, &fw, &fh);
            if (fw <= 0 || fh <= 0) { /* minimised */
                glfwWaitEvents();
                continue;
            }
            if (fw != w || fh != h) {
                w = fw;
                h = fh;
                if ((rc = vw_gpu_resize(gpu, w, h, err)) != ENG_OK) goto done;
                moving = 1;
            }
        }
        moved_prev = moving;

        vw_view view;
        vw_frame_out out;
        vw_gpu_draw d;
        memset(&view, 0, sizeof view);
        memset(&out, 0, sizeof out);
        memset(&d, 0, sizeof d);
        make_view(&view, d.mvp, &c, mode, p->fovy_deg, w, h);
        view.moving = moving;
        view.depth = in.depth;
        view.paused = in.paused;
        view.frame = frame;
        if ((rc = mode->frame(mode->user, &view, &out, err)) != ENG_OK) goto done;
        again = out.again;
        if (out.rgba != NULL) {
            if ((rc = vw_gpu_set_texture(gpu, VW_GPU_TEX_MAIN, out.rgba, out.width, out.height,
                                         err)) != ENG_OK)
                goto done;
            tex_w = (int)out.width;
            tex_h = (int)out.height;
        }
        if (out.mesh != NULL && (rc = vw_gpu_set_mesh(gpu, out.mesh, err)) != ENG_OK) goto done;
        out.text[VW_TEXT_MAX - 1] = '\0';
        snprintf(frame_text, sizeof frame_text, "%s", out.text);

        /* fps over half-second windows */
        fps_frames++;
        if (t - t_fps >= 0.5) {
            fps = (double)fps_frames / (t - t_fps);
            fps_frames = 0;
            t_fps = t;
        }
        char fps_text[32] = "-- fps"; /* until the first half second is measured */
        if (fps > 0) snprintf(fps_text, sizeof fps_text, "%.1f fps", fps);
        snprintf(ov_text, sizeof ov_text, "%s%s%s%s", fps_text, frame_text[0] ? "\n" : "",
                 frame_text, in.paused ? "\npaused" : "");
        if (overlay && strcmp(ov_text, last_ov) != 0) {
            eng_image_free(&ov);
            if ((rc = overlay_image(&ov, ov_text, h >= 480 ? 2 : 1, err)) != ENG_OK) goto done;
            if ((rc = vw_gpu_set_texture(gpu, VW_GPU_TEX_OVERLAY, ov.data, ov.width, ov.height,
                                         err)) != ENG_OK)
                goto done;
            snprintf(last_ov, sizeof last_ov, "%s", ov_text);
        }
        if (win != NULL) {
            snprintf(title, sizeof title, "%s%s%s  (%.0f fps)", mode->title,
                     frame_text[0] ? "  |  " : "", frame_text, fps);
            if (strcmp(title, last_title) != 0) {
                glfwSetWindowTitle(win, title);
                snprintf(last_title, sizeof last_title, "%s", title);
            }
        }

        /* draw */
        const uint8_t *bg = mode->has_scene ? scene_bg : (const uint8_t[3]){0, 0, 0};
        for (int k = 0; k < 3; k++)
            d.clear[k] = (float)bg[k] / 255.0f;
        d.clear[3] = 1.0f;
        d.draw_mesh = mode->has_scene;
        memcpy(d.eye, (float[3]){view.c2w[3], view.c2w[7], view.c2w[11]}, sizeof d.eye);
        d.depth_view = in.depth;
        d.near_d = view.near_z;
        d.far_d = view.far_z;
        if (tex_w > 0) { /* fit, aspect kept, whole pixels, centred */
            const double s = fmin((double)w / tex_w, (double)h / tex_h);
            const double dw = floor(tex_w * s + 0.5), dh = floor(tex_h * s + 0.5);
            const double x0 = floor(((double)w - dw) / 2), y0 = floor(((double)h - dh) / 2);
            d.draw_tex[VW_GPU_TEX_MAIN] = 1;
            d.rect[VW_GPU_TEX_MAIN][0] = (float)x0;
            d.rect[VW_GPU_TEX_MAIN][1] = (float)y0;
            d.rect[VW_GPU_TEX_MAIN][2] = (float)(x0 + dw);
            d.rect[VW_GPU_TEX_MAIN][3] = (float)(y0 + dh);
        }
        if (overlay && ov.data != NULL) {
            const float m = 8;
            d.draw_tex[VW_GPU_TEX_OVERLAY] = 1;
            d.rect[VW_GPU_TEX_OVERLAY][0] = m;
            d.rect[VW_GPU_TEX_OVERLAY][1] = m;
            d.rect[VW_GPU_TEX_OVERLAY][2] = m + (float)ov.width;
            d.rect[VW_GPU_TEX_OVERLAY][3] = m + (float)ov.height;
        }
        const int last = p->screenshot != NULL || p->headless ? frame + 1 >= frames : 0;
        const int want_shot = (last && p->screenshot != NULL) || in.shot;
        if (want_shot) {
            free(shot_px);
            shot_px = malloc((size_t)(w * h * 4));
            if (shot_px == NULL) {
                rc = eng_err_set(err, ENG_E_OOM, "vw_run: no memory for a %lldx%lld screenshot",
                                 (long long)w, (long long)h);
                goto done;
            }
        }
        d.readback = want_shot ? shot_px : NULL;
        d.present = win != NULL;
        int stale = 0;
        if ((rc = vw_gpu_frame(gpu, &d, &stale, err)) != ENG_OK) goto done;
        if (stale) continue; /* the swapchain was rebuilt: draw again at the new size */
        frame++;
        st->frames = frame;
        if (want_shot) {
            char name[64];
            const char *path = p->screenshot;
            if (in.shot && !(last && p->screenshot != NULL)) {
                next_shot_name(name, sizeof name);
                path = name;
            }
            in.shot = 0;
            if ((rc = write_screenshot(path, shot_px, w, h, err)) != ENG_OK) goto done;
            if (!p->quiet)
                printf("viewer: wrote %s (%lldx%lld)\n", path, (long long)w, (long long)h);
            fflush(stdout);
        }
        if (last) break;
    }
done:
    eng_image_free(&ov);
    free(shot_px);
    vw_gpu_destroy(gpu);
    if (win != NULL) {
        glfwDestroyWindow(win);
        glfwTerminate();
    }
    st->validation_messages = n_validation;
    return rc;
}
