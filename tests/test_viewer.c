/* test_viewer.c: the Vulkan viewer (viewer/). The PLY reader in-process (including what
 * nerf_mesh_write_ply writes); the mode hook (vw_run with a mode whose texture changes size);
 * and the `viewer` command as a subprocess, always with --validate (a validation message makes
 * it exit 3): image mode reproduces the PNG's pixels exactly, mesh mode covers the analytic
 * silhouette of two spheres seen by the documented camera (IoU) with the lit vertex colour at
 * their centres, the same two in a window under Xvfb (started here with -displayfd, so that
 * parallel tests never race for a display number; SKIP without Xvfb), and the error paths.
 * Vulkan comes from whatever driver is installed (llvmpipe in CI); no device: SKIP. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eng.h"
#include "eng_test.h"
#include "nerf.h"
#include "nerf_mesh.h"
#include "vw.h"
#include "vw_nerf.h"
#include "vw_ply.h"

#ifndef VW_TEST_NERF
#error "VW_TEST_NERF (the nerf executable) must be defined by tests/viewer.cmake"
#endif
#ifndef VW_TEST_VIEWER
#error "VW_TEST_VIEWER (the viewer executable) must be defined by tests/viewer.cmake"
#endif

#define PI_D 3.14159265358979323846

/* ---- running the viewer --------------------------------------------------------------------- */

typedef struct run_result {
    int status; /* exit status, or 128 + signal */
    char out[8192], err[16384];
} run_result;

enum { ENV_KEEP, ENV_NO_DISPLAY, ENV_NO_DRIVER, ENV_VALIDATE };

static void slurp(char *dst, size_t n, const char *path) {
    dst[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL) return;
    const size_t got = fread(dst, 1, n - 1, f);
    dst[got] = '\0';
    fclose(f);
}

/* Runs prog with args (NULL-terminated, without argv[0]); display: ":N" or NULL. */
static int
run_prog(run_result *r, const char *prog, const char *const *args, int env, const char *display) {
    char out_path[600], err_path[600];
    const char *argv[40];
    int n = 0;
    argv[n++] = prog;
    for (int i = 0; args[i] != NULL && n < 38; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", eng_test_tmpdir());
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", eng_test_tmpdir());
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        const int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        if (display != NULL) setenv("DISPLAY", display, 1);
        if (env == ENV_NO_DISPLAY) {
            unsetenv("DISPLAY");
            unsetenv("WAYLAND_DISPLAY");
        }
        if (env == ENV_VALIDATE) setenv("ENG_VK_VALIDATE", "1", 1);
        if (env == ENV_NO_DRIVER) { /* the loader finds no driver at all */
            setenv("VK_ICD_FILENAMES", "/nonexistent/no_icd.json", 1);
            setenv("VK_DRIVER_FILES", "/nonexistent/no_icd.json", 1);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    slurp(r->out, sizeof r->out, out_path);
    slurp(r->err, sizeof r->err, err_path);
    fprintf(stderr, "  viewer exit %d\n  stdout: %s\n  stderr: %s\n", r->status, r->out, r->err);
    return 0;
}

static int run_viewer(run_result *r, const char *const *args, int env, const char *display) {
    return run_prog(r, VW_TEST_VIEWER, args, env, display);
}

/* One result buffer (16 KB of output: too big for the stack of every case, and static so that a
 * failed CHECK leaks nothing). */
static run_result *result_buf(void) {
    static run_result r;
    memset(&r, 0, sizeof r);
    return &r;
}

static const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", eng_test_tmpdir(), name);
    return buf;
}

/* Exit 1 with "no Vulkan device found": nothing to test here (SKIP). */
static int no_device(const run_result *r) {
    return r->status == 1 && strstr(r->err, "no Vulkan device found") != NULL;
}

/* ---- inputs --------------------------------------------------------------------------------- */

/* A w x h RGB image of Philox-free but irregular values (every byte value appears). */
static int write_test_png(const char *path, int64_t w, int64_t h, const char *params) {
    eng_image img = {0};
    eng_err err = {0};
    CHECK_OK(eng_image_alloc(&img, w, h, 3, &err), &err);
    uint32_t s = 12345u;
    for (int64_t i = 0; i < w * h * 3; i++) {
        s = s * 1664525u + 1013904223u;
        img.data[i] = (uint8_t)(s >> 24);
    }
    eng_image_text t[1] = {{ENG_IMAGE_TEXT_PARAMETERS, params}};
    const int rc = eng_image_write_png(path, &img, t, params != NULL ? 1 : 0, &err);
    eng_image_free(&img);
    CHECK_OK(rc, &err);
    return 0;
}

/* Two UV spheres (poles on +-y, a ring on the equator, longitudes a multiple of 4, so that the
 * mesh's bounding box is the spheres' exactly), binary PLY without normals. */
typedef struct sphere {
    double c[3], r;
    uint8_t rgb[3];
} sphere;

static const sphere spheres[2] = {{{1.0, -2.0, 0.5}, 0.7, {220, 60, 40}},
                                  {{1.9, -1.6, 0.2}, 0.35, {40, 90, 220}}};

static int write_spheres_ply(const char *path) {
    enum { NLAT = 48, NLON = 96 };
    const int nv1 = (NLAT + 1) * NLON, nt1 = NLAT * NLON * 2;
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    fprintf(f,
            "ply\nformat binary_little_endian 1.0\ncomment two spheres\nelement vertex %d\n"
            "property float x\nproperty float y\nproperty float z\nproperty uchar red\n"
            "property uchar green\nproperty uchar blue\nelement face %d\n"
            "property list uchar int vertex_indices\nend_header\n",
            2 * nv1, 2 * nt1);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i <= NLAT; i++)
            for (int j = 0; j < NLON; j++) {
                const double th = PI_D * i / NLAT, ph = 2 * PI_D * j / NLON;
                const float p[3] = {(float)(spheres[s].c[0] + spheres[s].r * sin(th) * cos(ph)),
                                    (float)(spheres[s].c[1] + spheres[s].r * cos(th)),
                                    (float)(spheres[s].c[2] + spheres[s].r * sin(th) * sin(ph))};
                fwrite(p, 4, 3, f);
                fwrite(spheres[s].rgb, 1, 3, f);
            }
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < NLAT; i++)
            for (int j = 0; j < NLON; j++) {
                const int32_t a = s * nv1 + i * NLON + j, b = s * nv1 + i * NLON + (j + 1) % NLON;
                const int32_t c = a + NLON, d = b + NLON;
                const int32_t t[2][3] = {{a, c, d}, {a, d, b}};
                for (int k = 0; k < 2; k++) {
                    const uint8_t three = 3;
                    fwrite(&three, 1, 1, f);
                    fwrite(t[k], 4, 3, f);
                }
            }
    CHECK(fclose(f) == 0);
    return 0;
}

static int read_png(eng_image *img, const char *path, int64_t channels) {
    eng_err err = {0};
    CHECK_OK(eng_image_read(img, path, channels, &err), &err);
    return 0;
}

/* ---- the mesh checks: the camera of vw.h's convention, computed here independently ---------- */

static int check_mesh_shot(const char *shot,
                           int64_t w,
                           int64_t h,
                           double az_deg,
                           double el_deg,
                           double dist,
                           double fovy_deg) {
    eng_image img = {0};
    if (read_png(&img, shot, 3) != 0) return 1;
    CHECK_EQ_I64(img.width, w);
    CHECK_EQ_I64(img.height, h);
    double lo[3], hi[3];
    for (int k = 0; k < 3; k++) {
        lo[k] = fmin(spheres[0].c[k] - spheres[0].r, spheres[1].c[k] - spheres[1].r);
        hi[k] = fmax(spheres[0].c[k] + spheres[0].r, spheres[1].c[k] + spheres[1].r);
    }
    const double ctr[3] = {0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]), 0.5 * (lo[2] + hi[2])};
    const double az = az_deg * PI_D / 180, el = el_deg * PI_D / 180;
    /* up y: az 0 on +z, az 90 on +x */
    const double back[3] = {cos(el) * sin(az), sin(el), cos(el) * cos(az)};
    const double right[3] = {cos(az), 0, -sin(az)};
    const double up[3] = {back[1] * right[2] - back[2] * right[1],
                          back[2] * right[0] - back[0] * right[2],
                          back[0] * right[1] - back[1] * right[0]};
    double eye[3];
    for (int k = 0; k < 3; k++)
        eye[k] = ctr[k] + dist * back[k];
    const double fy = 0.5 * (double)h / tan(0.5 * fovy_deg * PI_D / 180), fx = fy;
    const double cx = 0.5 * (double)w, cy = 0.5 * (double)h;
    int64_t inter = 0, uni = 0, covered = 0, expected = 0;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            const double dc[3] = {(x + 0.5 - cx) / fx, -(y + 0.5 - cy) / fy, -1};
            double d[3], dn = 0;
            for (int k = 0; k < 3; k++) {
                d[k] = dc[0] * right[k] + dc[1] * up[k] + dc[2] * back[k];
                dn += d[k] * d[k];
            }
            int hit = 0;
            for (int s = 0; s < 2; s++) {
                double oc[3], b = 0, c = 0;
                for (int k = 0; k < 3; k++) {
                    oc[k] = eye[k] - spheres[s].c[k];
                    b += oc[k] * d[k] / sqrt(dn);
                    c += oc[k] * oc[k];
                }
                c -= spheres[s].r * spheres[s].r;
                if (b * b - c >= 0 && -b > 0) hit = 1;
            }
            const uint8_t *px = img.data + 3 * (y * w + x);
            const int cov = !(px[0] == 24 && px[1] == 24 && px[2] == 28);
            inter += cov && hit;
            uni += cov || hit;
            covered += cov;
            expected += hit;
        }
    const double iou = uni > 0 ? (double)inter / (double)uni : 0;
    fprintf(stderr, "  mesh: %lld pixels covered, %lld expected, IoU %.4f\n", (long long)covered,
            (long long)expected, iou);
    CHECK(expected > w * h / 20); /* the spheres fill a good part of the view */
    CHECK(iou >= 0.98);
    /* The lit colour where the ray through each sphere's centre meets it: the normal faces the
     * headlight there, so the shading factor is 0.25 + 0.75 = 1: the vertex colour. */
    for (int s = 0; s < 2; s++) {
        double v[3], xc = 0, yc = 0, zc = 0;
        for (int k = 0; k < 3; k++)
            v[k] = spheres[s].c[k] - eye[k];
        for (int k = 0; k < 3; k++) {
            xc += v[k] * right[k];
            yc += v[k] * up[k];
            zc += v[k] * back[k];
        }
        const int64_t px = (int64_t)floor(cx + fx * xc / -zc);
        const int64_t py = (int64_t)floor(cy - fy * yc / -zc);
        CHECK(px >= 0 && px < w && py >= 0 && py < h);
        const uint8_t *p = img.data + 3 * (py * w + px);
        fprintf(stderr, "  sphere %d centre at (%lld, %lld): %d %d %d, vertex colour %d %d %d\n", s,
                (long long)px, (long long)py, p[0], p[1], p[2], spheres[s].rgb[0],
                spheres[s].rgb[1], spheres[s].rgb[2]);
        for (int k = 0; k < 3; k++)
            CHECK(abs((int)p[k] - (int)spheres[s].rgb[k]) <= 4);
    }
    eng_image_free(&img);
    return 0;
}

/* ---- PLY reader ----------------------------------------------------------------------------- */

static int test_ply_ascii(void) {
    char path[600];
    tmp_path(path, sizeof path, "quad.ply");
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    /* a unit square in z = 0 as one quad (fanned to 2 triangles), float colours, an extra
     * property and an extra element to skip, CRLF line ends */
    fputs("ply\r\nformat ascii 1.0\r\ncomment hello\r\nelement vertex 4\r\nproperty float x\r\n"
          "property float y\r\nproperty float z\r\nproperty float quality\r\n"
          "property float red\r\nproperty float green\r\nproperty float blue\r\n"
          "element face 2\r\nproperty list uchar uint vertex_indices\r\n"
          "element edge 1\r\nproperty int vertex1\r\nproperty int vertex2\r\nend_header\r\n"
          "0 0 0 7 1 0 0\r\n1 0 0 7 0 1 0\r\n1 1 0 7 0 0 1\r\n0 1 0 7 0.5 0.5 0.5\r\n"
          "4 0 1 2 3\r\n2 0 1\r\n0 1\r\n",
          f);
    CHECK(fclose(f) == 0);
    vw_ply m = {0};
    eng_err err = {0};
    CHECK_OK(vw_ply_read(&m, path, &err), &err);
    CHECK_EQ_I64(m.n_verts, 4);
    CHECK_EQ_I64(m.n_tris, 2); /* the quad; the 2-vertex face is dropped */
    CHECK(!m.has_normals && m.has_colors && !m.from_nerf);
    const uint32_t tris[6] = {0, 1, 2, 0, 2, 3};
    CHECK(memcmp(m.tris, tris, sizeof tris) == 0);
    for (int i = 0; i < 4; i++) /* computed normals: +z (counter-clockwise seen from +z) */
        CHECK(m.normals[3 * i] == 0 && m.normals[3 * i + 1] == 0 && m.normals[3 * i + 2] == 1);
    CHECK(m.colors[0] == 255 && m.colors[1] == 0 && m.colors[5] == 0 && m.colors[8] == 255);
    CHECK(m.colors[9] == 128 && m.pos[6] == 1 && m.pos[7] == 1);
    vw_ply_free(&m);
    return 0;
}

static int test_ply_nerf(void) {
    /* What `nerf mesh` writes reads back exactly (binary, normals and colours). */
    float verts[12] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1};
    float normals[12] = {-0.57735f, -0.57735f, -0.57735f, 1, 0, 0, 0, 1, 0, 0, 0, 1};
    uint8_t colors[12] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120};
    int32_t tris[12] = {0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3};
    nerf_mesh nm = {4, 4, verts, normals, colors, tris};
    char path[600];
    eng_err err = {0};
    tmp_path(path, sizeof path, "nerf.ply");
    CHECK_OK(nerf_mesh_write_ply(path, &nm, &err), &err);
    vw_ply m = {0};
    CHECK_OK(vw_ply_read(&m, path, &err), &err);
    CHECK_EQ_I64(m.n_verts, 4);
    CHECK_EQ_I64(m.n_tris, 4);
    CHECK(m.has_normals && m.has_colors && m.from_nerf);
    CHECK(memcmp(m.pos, verts, sizeof verts) == 0);
    CHECK(memcmp(m.normals, normals, sizeof normals) == 0);
    CHECK(memcmp(m.colors, colors, sizeof colors) == 0);
    for (int i = 0; i < 12; i++)
        CHECK(m.tris[i] == (uint32_t)tris[i]);
    vw_ply_free(&m);
    return 0;
}

static int expect_ply_error(const char *text, size_t len, int code, const char *needle) {
    vw_ply m = {0};
    eng_err err = {0};
    const int rc = vw_ply_read_memory(&m, text, len, "bad.ply", &err);
    fprintf(stderr, "  %s\n", err.msg);
    CHECK_EQ_I64(rc, code);
    CHECK(m.pos == NULL && m.tris == NULL && m.n_verts == 0);
    CHECK_CONTAINS(err.msg, "bad.ply");
    CHECK_CONTAINS(err.msg, needle);
    return 0;
}

/* What the PLY fuzzer found: a coordinate beyond a float's range; normals from tiny coordinates
 * (their cross products underflowed a float) and file normals that are not unit length. */
static int test_ply_fuzz_cases(void) {
    static const char huge[] = "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n"
                               "property float y\nproperty float z\nend_header\n1e300 0 0\n";
    if (expect_ply_error(huge, sizeof huge - 1, ENG_E_FORMAT, "beyond a float")) return 1;
    static const char tiny[] = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n"
                               "property float y\nproperty float z\nproperty float nx\n"
                               "property float ny\nproperty float nz\nelement face 1\n"
                               "property list uchar int vertex_indices\nend_header\n"
                               "0 0 0 0 0 2\n1e-30 0 0 3 4 0\n0 1e-30 0 0 0 0\n3 0 1 2\n";
    const char *hdr_end = strstr(tiny, "property float nx");
    vw_ply m = {0};
    eng_err err = {0};
    /* with the file's normals: (0 0 2) -> (0 0 1), (3 4 0) -> (0.6 0.8 0), zero stays zero */
    CHECK_OK(vw_ply_read_memory(&m, tiny, sizeof tiny - 1, "tiny.ply", &err), &err);
    CHECK(m.has_normals && m.normals[2] == 1.0f && fabsf(m.normals[3] - 0.6f) < 1e-6f &&
          fabsf(m.normals[4] - 0.8f) < 1e-6f && m.normals[6] == 0 && m.normals[8] == 0);
    vw_ply_free(&m);
    /* without: the face's normal (0 0 1) on every vertex, though its area is ~1e-60 */
    char nonorm[sizeof tiny];
    const size_t head = (size_t)(hdr_end - tiny);
    const char *rest = strstr(tiny, "element face");
    snprintf(nonorm, sizeof nonorm, "%.*s%s", (int)head, tiny, rest);
    char *body = strstr(nonorm, "end_header\n") + strlen("end_header\n");
    snprintf(body, 64, "0 0 0\n1e-30 0 0\n0 1e-30 0\n3 0 1 2\n");
    CHECK_OK(vw_ply_read_memory(&m, nonorm, strlen(nonorm), "tiny.ply", &err), &err);
    CHECK(!m.has_normals);
    for (int i = 0; i < 3; i++)
        CHECK(m.normals[3 * i] == 0 && m.normals[3 * i + 1] == 0 && m.normals[3 * i + 2] == 1.0f);
    vw_ply_free(&m);
    return 0;
}

static int test_ply_errors(void) {
    static const char head[] = "ply\nformat binary_little_endian 1.0\nelement vertex 3\n"
                               "property float x\nproperty float y\nproperty float z\n"
                               "element face 1\nproperty list uchar int vertex_indices\n"
                               "end_header\n";
    char buf[512];
    memcpy(buf, head, sizeof head - 1);
    size_t n = sizeof head - 1;
    const float v[9] = {0, 0, 0, 1, 0, 0, 0, 1, 0};
    memcpy(buf + n, v, sizeof v);
    n += sizeof v;
    buf[n++] = 3;
    const int32_t idx[3] = {0, 1, 7}; /* 7 is out of range */
    memcpy(buf + n, idx, sizeof idx);
    n += sizeof idx;
    vw_ply m = {0};
    eng_err err = {0};
    if (expect_ply_error(buf, n, ENG_E_FORMAT, "vertex index 7") != 0) return 1;
    buf[n - 4] = 2; /* now valid */
    CHECK_OK(vw_ply_read_memory(&m, buf, n, "ok.ply", &err), &err);
    CHECK_EQ_I64(m.n_tris, 1);
    vw_ply_free(&m);
    for (size_t cut = sizeof head - 1; cut < n; cut += 5) /* truncated anywhere in the body */
        if (expect_ply_error(buf, cut, ENG_E_FORMAT, "") != 0) return 1;
    if (expect_ply_error("PNG\n", 4, ENG_E_FORMAT, "not a PLY") != 0) return 1;
    if (expect_ply_error("ply\nformat ascii 1.0\nelement vertex 1\n", 37, ENG_E_FORMAT,
                         "end_header") != 0)
        return 1;
    static const char be[] = "ply\nformat binary_big_endian 1.0\nend_header\n";
    if (expect_ply_error(be, sizeof be - 1, ENG_E_UNSUPPORTED, "big_endian") != 0) return 1;
    static const char huge[] = "ply\nformat binary_little_endian 1.0\nelement vertex 100000000\n"
                               "property float x\nproperty float y\nproperty float z\n"
                               "end_header\n";
    if (expect_ply_error(huge, sizeof huge - 1, ENG_E_FORMAT, "too short") != 0) return 1;
    static const char nan_v[] = "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n"
                                "property float y\nproperty float z\nend_header\n0 nan 0\n";
    if (expect_ply_error(nan_v, sizeof nan_v - 1, ENG_E_FORMAT, "non-finite") != 0) return 1;
    static const char noxyz[] = "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n"
                                "end_header\n0\n";
    if (expect_ply_error(noxyz, sizeof noxyz - 1, ENG_E_FORMAT, "lacks x, y or z") != 0) return 1;
    CHECK(vw_ply_read(&m, "/nonexistent/x.ply", &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "/nonexistent/x.ply");
    return 0;
}

/* ---- the mode hook, in-process -------------------------------------------------------------- */

typedef struct hook_state {
    uint8_t tex[3][64 * 48 * 4];
    int64_t tw[3], th[3];
    int calls, bad_view;
} hook_state;

static int hook_frame(void *user, const vw_view *v, vw_frame_out *out, eng_err *err) {
    hook_state *s = user;
    (void)err;
    const int i = v->frame < 3 ? (int)v->frame : 2;
    /* the view: a rotation (orthonormal columns), the intrinsics of the framebuffer */
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double d = 0;
            for (int k = 0; k < 3; k++)
                d += (double)v->c2w[4 * k + a] * v->c2w[4 * k + b];
            if (fabs(d - (a == b)) > 1e-5) s->bad_view = 1;
        }
    if (v->width != 64 || v->height != 48 || v->cx != 32 || v->cy != 24 || v->fx != v->fy ||
        fabs(v->fy - 24 / tan(22.5 * PI_D / 180)) > 1e-3)
        s->bad_view = 1;
    out->rgba = s->tex[i];
    out->width = s->tw[i];
    out->height = s->th[i];
    out->again = 1;
    snprintf(out->text, sizeof out->text, "frame %lld", (long long)v->frame);
    s->calls++;
    return ENG_OK;
}

static int test_hook_texture(void) {
    static hook_state state; /* static: a failed CHECK leaks nothing */
    hook_state *s = &state;
    memset(s, 0, sizeof *s);
    const int64_t sizes[3][2] = {{8, 6}, {32, 48}, {64, 48}};
    for (int i = 0; i < 3; i++) {
        s->tw[i] = sizes[i][0];
        s->th[i] = sizes[i][1];
        for (int64_t p = 0; p < s->tw[i] * s->th[i]; p++)
            for (int c = 0; c < 4; c++)
                s->tex[i][4 * p + c] = c == 3 ? 255 : (uint8_t)(p * (7 + 13 * i) + c * 50 + i);
    }
    vw_mode mode = {0};
    mode.user = s;
    mode.name = "test";
    snprintf(mode.title, sizeof mode.title, "hook test");
    mode.has_scene = 1; /* a camera, but no geometry: the scene background shows */
    mode.radius = 1;
    mode.up = VW_UP_Z;
    mode.frame = hook_frame;
    vw_params p;
    vw_params_init(&p);
    p.headless = 1;
    p.validate = 1;
    p.width = 64;
    p.height = 48;
    p.quiet = 1;
    char shot[600];
    p.screenshot = tmp_path(shot, sizeof shot, "hook.png");
    for (int run = 0; run < 2; run++) {
        /* run 0: 2 frames, the last texture 32x48 letterboxed in 64x48 (x 16..47);
         * run 1: 3 frames, the last 64x48 shown 1:1 */
        p.frames = run == 0 ? 2 : 3;
        vw_stats st;
        eng_err err = {0};
        s->calls = 0;
        const int rc = vw_run(&p, &mode, &st, &err);
        if (rc == ENG_E_DEVICE && strstr(err.msg, "no Vulkan device") != NULL) {
            return ENG_TEST_SKIP;
        }
        CHECK_OK(rc, &err);
        CHECK_EQ_I64(st.validation_messages, 0);
        CHECK_EQ_I64(st.frames, p.frames);
        CHECK_EQ_I64(s->calls, p.frames);
        CHECK(!s->bad_view);
        eng_image img = {0};
        if (read_png(&img, shot, 3) != 0) return 1;
        CHECK(img.width == 64 && img.height == 48);
        const int t = run == 0 ? 1 : 2;
        for (int64_t y = 0; y < 48; y++)
            for (int64_t x = 0; x < 64; x++) {
                const uint8_t *px = img.data + 3 * (y * 64 + x);
                const int64_t tx = run == 0 ? x - 16 : x;
                if (tx < 0 || tx >= s->tw[t]) { /* letterbox: the scene background */
                    CHECK(px[0] == 24 && px[1] == 24 && px[2] == 28);
                    continue;
                }
                const uint8_t *tp = s->tex[t] + 4 * (y * s->tw[t] + tx);
                if (memcmp(px, tp, 3) != 0) {
                    fprintf(stderr, "run %d pixel (%lld, %lld): %d %d %d, texel %d %d %d\n", run,
                            (long long)x, (long long)y, px[0], px[1], px[2], tp[0], tp[1], tp[2]);
                    return 1;
                }
            }
        eng_image_free(&img);
    }
    return 0;
}

/* ---- the command, headless ------------------------------------------------------------------ */

static const char params_text[] = "a red fox, oil painting\nSteps: 20, Sampler: Euler a, Seed: 42";

static int image_exact(const char *display) {
    char png[600], shot[600];
    tmp_path(png, sizeof png, "in.png");
    tmp_path(shot, sizeof shot, "image_shot.png");
    if (write_test_png(png, 53, 31, params_text) != 0) return 1;
    run_result *r = result_buf();
    const char *hl[] = {"--headless", "--validate", "--screenshot", shot, png, NULL};
    const char *wn[] = {"--validate",   "--no-overlay", "--frames", "3",
                        "--screenshot", shot,           png,        NULL};
    CHECK(run_viewer(r, display != NULL ? wn : hl, ENV_KEEP, display) == 0);
    if (no_device(r)) {
        return ENG_TEST_SKIP;
    }
    CHECK_EQ_I64(r->status, 0);
    CHECK(strstr(r->err, "validation") == NULL);
    if (display == NULL) { /* headless prints the parameters */
        CHECK_CONTAINS(r->out, "parameters: a red fox, oil painting\nSteps: 20, Sampler: Euler a");
    }
    CHECK_CONTAINS(r->out, "in.png (53x31): a red fox, oil painting");
    eng_image a = {0}, b = {0};
    if (read_png(&a, png, 3) != 0 || read_png(&b, shot, 3) != 0) return 1;
    CHECK(a.width == b.width && a.height == b.height);
    int64_t diff = 0;
    for (size_t i = 0; i < eng_image_bytes(&a); i++)
        diff += a.data[i] != b.data[i];
    fprintf(stderr, "  %lld of %zu bytes differ\n", (long long)diff, eng_image_bytes(&a));
    CHECK_EQ_I64(diff, 0);
    eng_image_free(&a);
    eng_image_free(&b);
    return 0;
}

static int mesh_silhouette(const char *display, int depth) {
    char ply[600], shot[600];
    tmp_path(ply, sizeof ply, "spheres.ply");
    tmp_path(shot, sizeof shot, "mesh_shot.png");
    if (write_spheres_ply(ply) != 0) return 1;
    run_result *r = result_buf();
    const char *hl[] = {"--headless",
                        "--validate",
                        "-W",
                        "160",
                        "-H",
                        "120",
                        "--orbit-deg",
                        "30,20",
                        "--dist",
                        "4",
                        "--screenshot",
                        shot,
                        depth ? "--depth" : ply,
                        ply,
                        NULL};
    const char *wn[] = {"--validate",   "--no-overlay", "--frames",    "3",     "-W",     "160",
                        "-H",           "120",          "--orbit-deg", "30,20", "--dist", "4",
                        "--screenshot", shot,           ply,           NULL};
    if (!depth) hl[13] = NULL; /* no --depth: the PLY once */
    CHECK(run_viewer(r, display != NULL ? wn : hl, ENV_KEEP, display) == 0);
    if (no_device(r)) {
        return ENG_TEST_SKIP;
    }
    CHECK_EQ_I64(r->status, 0);
    CHECK(strstr(r->err, "validation") == NULL);
    CHECK_CONTAINS(r->out, "spheres.ply (9408 vertices, 18432 triangles)");
    if (!depth) return check_mesh_shot(shot, 160, 120, 30, 20, 4, 45);
    /* depth view: grey, nearer brighter; the background untouched */
    eng_image img = {0};
    if (read_png(&img, shot, 3) != 0) return 1;
    int64_t grey = 0, bg = 0;
    for (int64_t i = 0; i < img.width * img.height; i++) {
        const uint8_t *p = img.data + 3 * i;
        if (p[0] == 24 && p[1] == 24 && p[2] == 28) {
            bg++;
        } else {
            CHECK(p[0] == p[1] && p[1] == p[2]);
            grey++;
        }
    }
    CHECK(grey > 1000 && bg > 1000);
    eng_image_free(&img);
    return 0;
}

static int test_headless_image(void) {
    return image_exact(NULL);
}
static int test_headless_mesh(void) {
    return mesh_silhouette(NULL, 0);
}
static int test_headless_depth(void) {
    return mesh_silhouette(NULL, 1);
}

static int test_headless_overlay(void) {
    /* --overlay draws the readout in the top-left corner; the rest stays exact */
    char png[600], shot[600];
    tmp_path(png, sizeof png, "ov.png");
    tmp_path(shot, sizeof shot, "ov_shot.png");
    if (write_test_png(png, 200, 100, NULL) != 0) return 1;
    run_result *r = result_buf();
    const char *args[] = {"--headless", "--validate", "--overlay", "--screenshot", shot, png, NULL};
    CHECK(run_viewer(r, args, ENV_KEEP, NULL) == 0);
    if (no_device(r)) {
        return ENG_TEST_SKIP;
    }
    CHECK_EQ_I64(r->status, 0);
    eng_image a = {0}, b = {0};
    if (read_png(&a, png, 3) != 0 || read_png(&b, shot, 3) != 0) return 1;
    int64_t inside_diff = 0, outside_diff = 0, white = 0;
    for (int64_t y = 0; y < 100; y++)
        for (int64_t x = 0; x < 200; x++) {
            const uint8_t *pa = a.data + 3 * (y * 200 + x), *pb = b.data + 3 * (y * 200 + x);
            const int in_box = x < 120 && y < 40; /* "-- fps\n200x100" at scale 1, 8 px margin */
            const int d = memcmp(pa, pb, 3) != 0;
            if (in_box)
                inside_diff += d;
            else
                outside_diff += d;
            white += pb[0] == 255 && pb[1] == 255 && pb[2] == 255;
        }
    fprintf(stderr, "  overlay: %lld pixels changed in the box, %lld outside, %lld white\n",
            (long long)inside_diff, (long long)outside_diff, (long long)white);
    CHECK(inside_diff > 500 && outside_diff == 0 && white > 50);
    eng_image_free(&a);
    eng_image_free(&b);
    return 0;
}

/* ---- the command in a window under Xvfb ----------------------------------------------------- */

static int in_path(const char *prog) {
    const char *path = getenv("PATH");
    char buf[1024];
    if (path == NULL) return 0;
    while (*path) {
        const size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0) return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* Starts Xvfb on a display number it picks itself (-displayfd): no race between tests. */
static pid_t xvfb_start(char *display, size_t n) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fds[0]);
        const int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0) {
            dup2(nul, 1);
            dup2(nul, 2);
        }
        char fd[16];
        snprintf(fd, sizeof fd, "%d", fds[1]);
        execlp("Xvfb", "Xvfb", "-displayfd", fd, "-screen", "0", "640x480x24", "-nolisten", "tcp",
               (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[32] = "";
    size_t got = 0;
    struct pollfd pfd = {fds[0], POLLIN, 0};
    while (got < sizeof buf - 1 && strchr(buf, '\n') == NULL && poll(&pfd, 1, 20000) > 0) {
        const ssize_t k = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
        buf[got] = '\0';
    }
    close(fds[0]);
    if (strchr(buf, '\n') == NULL) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return -1;
    }
    snprintf(display, n, ":%d", atoi(buf));
    return pid;
}

static void xvfb_stop(pid_t pid) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static int in_window(int (*fn)(const char *display)) {
    if (!in_path("Xvfb")) {
        fprintf(stderr, "Xvfb not found (Debian: xvfb): skipped\n");
        return ENG_TEST_SKIP;
    }
    char display[32];
    const pid_t pid = xvfb_start(display, sizeof display);
    if (pid < 0) {
        fprintf(stderr, "Xvfb did not start\n");
        return 1;
    }
    fprintf(stderr, "  Xvfb on %s\n", display);
    const int rc = fn(display);
    xvfb_stop(pid);
    return rc;
}

static int window_mesh(const char *display) {
    return mesh_silhouette(display, 0);
}
static int test_window_image(void) {
    return in_window(image_exact);
}
static int test_window_mesh(void) {
    return in_window(window_mesh);
}

/* ---- NeRF snapshots ------------------------------------------------------------------------- */

/* A small trained snapshot (the built-in scene at 16x16, 40 steps), written once per process. */
static const char *nerf_snapshot(void) {
    static char path[600];
    if (path[0] != '\0') return path;
    eng_err err = {0};
    eng_ctx *ctx = NULL;
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.threads = 2;
    cp.threaded_scheduler = 0;
    nerf_dataset *ds = NULL;
    nerf_trainer *t = NULL;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/vw_nerf_scene", eng_test_tmpdir());
    snprintf(path, sizeof path, "%s/vw.nerf", eng_test_tmpdir());
    nerf_scene_params sp;
    nerf_scene_params_init(&sp);
    sp.width = sp.height = 16;
    sp.n_train = 16;
    sp.n_test = 0;
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    lp.split = "train";
    nerf_train_params tp;
    nerf_train_params_init(&tp);
    tp.target_samples = 1 << 12;
    tp.initial_rays = 256;
    tp.occ_res = 32;
    tp.field.grid.log2_table_size = 14;
    int rc = eng_ctx_create(&ctx, &cp, &err);
    if (rc == ENG_OK) rc = nerf_scene_write(dir, &sp, ctx, &err);
    if (rc == ENG_OK) rc = nerf_dataset_load(&ds, ctx, dir, &lp, &err);
    if (rc == ENG_OK) rc = nerf_trainer_create(&t, ctx, ds, &tp, &err);
    for (int i = 0; rc == ENG_OK && i < 40; i++) {
        nerf_step_stats st;
        rc = nerf_trainer_step(t, &st, &err);
    }
    if (rc == ENG_OK) rc = nerf_trainer_save(t, path, &err);
    nerf_trainer_destroy(t);
    nerf_dataset_destroy(ds);
    eng_ctx_destroy(ctx);
    if (rc != ENG_OK) {
        fprintf(stderr, "nerf snapshot: %s\n", err.msg);
        path[0] = '\0';
        return NULL;
    }
    return path;
}

/* The image nerf_trainer_render makes (nerf render's renderer) of the viewer's orbit camera, as
 * RGB bytes: w x h, vertical field of view 45 degrees, centre (0.5, 0.5, 0.5), up z. */
static int nerf_expected(
    uint8_t *rgb8, const char *snap, int64_t w, int64_t h, float az, float el, float dist) {
    eng_err err = {0};
    eng_ctx *ctx = NULL;
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.threads = 2;
    cp.threaded_scheduler = 0;
    CHECK_OK(eng_ctx_create(&ctx, &cp, &err), &err);
    nerf_trainer *t = NULL;
    CHECK_OK(nerf_trainer_load(&t, ctx, snap, &err), &err);
    float c2w[12];
    const float center[3] = {0.5f, 0.5f, 0.5f};
    vw_orbit_c2w(c2w, center, az, el, dist, VW_UP_Z);
    nerf_intrinsics in = {0};
    in.fy = (float)(h / 2.0 / tan(22.5 * PI_D / 180));
    in.fx = in.fy;
    in.cx = (float)w / 2;
    in.cy = (float)h / 2;
    float *rgb = malloc((size_t)(w * h * 3) * sizeof *rgb);
    CHECK(rgb != NULL);
    const float white[3] = {1, 1, 1};
    CHECK_OK(nerf_trainer_render(t, rgb, NULL, c2w, &in, w, h, white, &err), &err);
    for (int64_t i = 0; i < w * h * 3; i++) {
        const float v = rgb[i] < 0 ? 0 : rgb[i] > 1 ? 1 : rgb[i];
        rgb8[i] = (uint8_t)lrintf(v * 255.0f);
    }
    free(rgb);
    nerf_trainer_destroy(t);
    eng_ctx_destroy(ctx);
    return 0;
}

static double psnr_u8(const uint8_t *a, const uint8_t *b, int64_t n) {
    double se = 0;
    for (int64_t i = 0; i < n; i++)
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se == 0 ? 99.0 : 10 * log10(255.0 * 255.0 * (double)n / se);
}

/* The viewer's NeRF screenshot (headless or in a window) against nerf_trainer_render. */
static int nerf_matches_render(const char *display) {
    const char *snap = nerf_snapshot();
    CHECK(snap != NULL);
    char shot[600];
    tmp_path(shot, sizeof shot, display ? "nerf_window.png" : "nerf_shot.png");
    run_result *r = result_buf();
    const char *hl[] = {"--headless",   "--validate",  "-W",    "96",     "-H",
                        "72",           "--orbit-deg", "30,20", "--dist", "1.6",
                        "--screenshot", shot,          snap,    NULL};
    const char *wn[] = {"--validate",   "--no-overlay", "--frames",    "3",     "-W",     "96",
                        "-H",           "72",           "--orbit-deg", "30,20", "--dist", "1.6",
                        "--screenshot", shot,           snap,          NULL};
    CHECK(run_viewer(r, display != NULL ? wn : hl, ENV_KEEP, display) == 0);
    if (no_device(r)) {
        return ENG_TEST_SKIP;
    }
    CHECK_EQ_I64(r->status, 0);
    CHECK(strstr(r->err, "validation") == NULL);
    CHECK_CONTAINS(r->out, "NeRF snapshot");
    eng_image img = {0};
    if (read_png(&img, shot, 3) != 0) return 1;
    CHECK(img.width == 96 && img.height == 72);
    static uint8_t want[96 * 72 * 3];
    if (nerf_expected(want, snap, 96, 72, 30, 20, 1.6f) != 0) return 1;
    const double psnr = psnr_u8(img.data, want, 96 * 72 * 3);
    int64_t fg = 0; /* pixels that are not the white background: the scene is in view */
    for (int64_t i = 0; i < 96 * 72; i++)
        fg += want[3 * i] < 200 || want[3 * i + 1] < 200 || want[3 * i + 2] < 200;
    fprintf(stderr, "  viewer vs nerf_trainer_render: PSNR %.1f dB; %lld scene pixels\n", psnr,
            (long long)fg);
    CHECK(fg > 200);
    CHECK(psnr >= 45.0);
    eng_image_free(&img);
    return 0;
}

static int test_headless_nerf(void) {
    return nerf_matches_render(NULL);
}
static int test_window_nerf(void) {
    return in_window(nerf_matches_render);
}

/* Progressive refinement in-process: the first frame of a resting camera shows the coarse level
 * (8x8 blocks at 480x360: 60x45 pixels <= 4096) and what 40 ms refine after it (blocks of 8 or
 * 4: never the full 172,800 rays); more frames refine it to the full render. */
static int test_nerf_progressive(void) {
    const char *snap = nerf_snapshot();
    CHECK(snap != NULL);
    eng_err err = {0};
    eng_ctx *ctx = NULL;
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.threads = 2;
    CHECK_OK(eng_ctx_create(&ctx, &cp, &err), &err);
    vw_params p;
    vw_params_init(&p);
    p.headless = 1;
    p.validate = 1;
    p.width = 480;
    p.height = 360;
    p.quiet = 1;
    p.orbit_set = 1;
    p.az_deg = 30;
    p.el_deg = 20;
    p.dist = 1.6f;
    char shot[600];
    p.screenshot = tmp_path(shot, sizeof shot, "nerf_prog.png");
    static uint8_t want[480 * 360 * 3];
    if (nerf_expected(want, snap, 480, 360, 30, 20, 1.6f) != 0) return 1;
    for (int run = 0; run < 2; run++) {
        vw_mode mode;
        CHECK_OK(vw_nerf_snapshot_mode_create(&mode, ctx, snap, ENG_DEVICE_CPU, 1, &err), &err);
        p.frames = run == 0 ? 1 : 400;
        vw_stats st;
        const int rc = vw_run(&p, &mode, &st, &err);
        vw_mode_destroy(&mode);
        if (rc == ENG_E_DEVICE && strstr(err.msg, "no Vulkan device") != NULL) {
            eng_ctx_destroy(ctx);
            return ENG_TEST_SKIP;
        }
        CHECK_OK(rc, &err);
        CHECK_EQ_I64(st.validation_messages, 0);
        eng_image img = {0};
        if (read_png(&img, shot, 3) != 0) return 1;
        int blocks = 1;
        for (int64_t y = 0; y < 360; y++)
            for (int64_t x = 0; x < 480; x++)
                blocks &= !memcmp(img.data + 3 * (y * 480 + x),
                                  img.data + 3 * ((y & ~1) * 480 + (x & ~1)), 3);
        const double psnr = psnr_u8(img.data, want, 480 * 360 * 3);
        fprintf(stderr, "  %lld frames: %s, PSNR %.1f dB vs the full render\n", (long long)p.frames,
                blocks ? "2x2 blocks" : "full resolution", psnr);
        if (run == 0)
            CHECK(blocks && psnr < 45.0);
        else
            CHECK(!blocks && psnr >= 45.0);
        eng_image_free(&img);
    }
    eng_ctx_destroy(ctx);
    return 0;
}

/* `nerf train --view` under Xvfb: the live mode shows the run (a window of the training images'
 * size), the screenshot closes it, training stops at the next slice and writes its snapshot. */
static int nerf_live_window(const char *display) {
    eng_err err = {0};
    eng_ctx *ctx = NULL;
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.threads = 2;
    CHECK_OK(eng_ctx_create(&ctx, &cp, &err), &err);
    char dir[600], snap[600], shot[600];
    tmp_path(dir, sizeof dir, "vw_live_scene");
    tmp_path(snap, sizeof snap, "vw_live.nerf");
    tmp_path(shot, sizeof shot, "vw_live.png");
    remove(snap);
    remove(shot);
    nerf_scene_params sp;
    nerf_scene_params_init(&sp);
    sp.width = 24;
    sp.height = 16;
    sp.n_train = 12;
    sp.n_test = 0;
    CHECK_OK(nerf_scene_write(dir, &sp, ctx, &err), &err);
    run_result *r = result_buf();
    const char *args[] = {
        "train",         dir,          "--steps", "1000000",           "--samples",
        "4096",          "--snapshot", snap,      "--view-screenshot", shot,
        "--view-frames", "4",          NULL};
    CHECK(run_prog(r, VW_TEST_NERF, args, ENV_VALIDATE, display) == 0);
    if (no_device(r) || strstr(r->err, "no Vulkan device found") != NULL) {
        eng_ctx_destroy(ctx);
        return ENG_TEST_SKIP;
    }
    CHECK_EQ_I64(r->status, 0);
    CHECK(strstr(r->err, "validation") == NULL);
    CHECK_CONTAINS(r->err, "viewer closed");
    eng_image img = {0};
    if (read_png(&img, shot, 3) != 0) return 1;
    CHECK(img.width == 24 && img.height == 16);
    eng_image_free(&img);
    nerf_trainer *t = NULL;
    CHECK_OK(nerf_trainer_load(&t, ctx, snap, &err), &err);
    const int64_t steps = nerf_trainer_step_count(t);
    fprintf(stderr, "  stopped at step %lld\n", (long long)steps);
    CHECK(steps >= 1 && steps < 1000000);
    nerf_trainer_destroy(t);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_window_nerf_live(void) {
    return in_window(nerf_live_window);
}

/* ---- errors --------------------------------------------------------------------------------- */

static int
expect_fail(const char *const *args, int env, int status, const char *n1, const char *n2) {
    run_result *r = result_buf();
    CHECK(run_viewer(r, args, env, NULL) == 0);
    if (env != ENV_NO_DRIVER && no_device(r)) {
        return ENG_TEST_SKIP;
    }
    CHECK_EQ_I64(r->status, status);
    CHECK_CONTAINS(r->err, n1);
    if (n2 != NULL) CHECK_CONTAINS(r->err, n2);
    return 0;
}

static int test_err_missing(void) {
    const char *args[] = {"--headless", "--validate", "/nonexistent/pic.png", NULL};
    return expect_fail(args, ENV_KEEP, 1, "/nonexistent/pic.png", "No such file");
}

static int test_err_corrupt(void) {
    char png[600], bad[600], ply[600], other[600];
    tmp_path(png, sizeof png, "good.png");
    tmp_path(bad, sizeof bad, "corrupt.png");
    tmp_path(ply, sizeof ply, "corrupt.ply");
    tmp_path(other, sizeof other, "notes.txt");
    if (write_test_png(png, 16, 16, NULL) != 0) return 1;
    /* a PNG cut in half */
    FILE *f = fopen(png, "rb");
    CHECK(f != NULL);
    uint8_t buf[4096];
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(bad, "wb");
    CHECK(f != NULL && fwrite(buf, 1, n / 2, f) == n / 2 && fclose(f) == 0);
    f = fopen(ply, "wb");
    CHECK(f != NULL);
    fputs("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
          "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
          "end_header\n0 0 0\n1 0 0\n",
          f);
    CHECK(fclose(f) == 0);
    f = fopen(other, "wb");
    CHECK(f != NULL && fputs("hello\n", f) >= 0 && fclose(f) == 0);
    const char *a1[] = {"--headless", "--validate", bad, NULL};
    const char *a2[] = {"--headless", "--validate", ply, NULL};
    const char *a3[] = {"--headless", "--validate", other, NULL};
    int rc = expect_fail(a1, ENV_KEEP, 1, "corrupt.png", NULL);
    if (rc == 0) rc = expect_fail(a2, ENV_KEEP, 1, "corrupt.ply", "truncated");
    if (rc == 0) rc = expect_fail(a3, ENV_KEEP, 1, "notes.txt", "not a PNG, JPEG, PLY");
    return rc;
}

static int test_err_nerf(void) {
    /* a file that says it is a NeRF snapshot but holds none of its tensors or metadata */
    char path[600];
    tmp_path(path, sizeof path, "scene.nerf");
    const float x[2] = {1, 2};
    const int64_t shape[1] = {2};
    eng_safetensors_entry e = {0};
    e.name = "x";
    e.dtype_name = "F32";
    e.ndim = 1;
    e.shape = shape;
    e.data = x;
    const eng_safetensors_kv md = {"format", "engine-nerf-1"};
    eng_err err = {0};
    CHECK_OK(eng_safetensors_write(path, &e, 1, &md, 1, &err), &err);
    const char *args[] = {"--headless", "--validate", path, NULL};
    return expect_fail(args, ENV_KEEP, 1, "scene.nerf", "metadata");
}

static int test_err_flags(void) {
    const char *a1[] = {"--headless", "--bogus", "x.png", NULL};
    const char *a2[] = {"--frames", "zero", "x.png", NULL};
    const char *a3[] = {"--orbit-deg", "30", "x.png", NULL};
    const char *a4[] = {"--up", "w", "x.png", NULL};
    int rc = expect_fail(a1, ENV_KEEP, 2, "--bogus", NULL);
    if (rc == 0) rc = expect_fail(a2, ENV_KEEP, 2, "--frames", NULL);
    if (rc == 0) rc = expect_fail(a3, ENV_KEEP, 2, "--orbit-deg", NULL);
    if (rc == 0) rc = expect_fail(a4, ENV_KEEP, 2, "--up", NULL);
    return rc;
}

static int test_err_no_display(void) {
    char png[600];
    tmp_path(png, sizeof png, "nd.png");
    if (write_test_png(png, 8, 8, NULL) != 0) return 1;
    const char *args[] = {"--validate", png, NULL};
    return expect_fail(args, ENV_NO_DISPLAY, 1, "--headless", "display");
}

static int test_err_no_device(void) {
    char png[600];
    tmp_path(png, sizeof png, "nv.png");
    if (write_test_png(png, 8, 8, NULL) != 0) return 1;
    const char *args[] = {"--headless", "--screenshot", "/dev/null", png, NULL};
    return expect_fail(args, ENV_NO_DRIVER, 1, "no Vulkan device found", "mesa-vulkan-drivers");
}

static const eng_test_case cases[] = {
    {"ply_ascii", test_ply_ascii},
    {"ply_nerf", test_ply_nerf},
    {"ply_errors", test_ply_errors},
    {"ply_fuzz_cases", test_ply_fuzz_cases},
    {"hook_texture", test_hook_texture},
    {"headless_image", test_headless_image},
    {"headless_mesh", test_headless_mesh},
    {"headless_depth", test_headless_depth},
    {"headless_overlay", test_headless_overlay},
    {"window_image", test_window_image},
    {"window_mesh", test_window_mesh},
    {"headless_nerf", test_headless_nerf},
    {"window_nerf", test_window_nerf},
    {"nerf_progressive", test_nerf_progressive},
    {"window_nerf_live", test_window_nerf_live},
    {"err_missing", test_err_missing},
    {"err_corrupt", test_err_corrupt},
    {"err_nerf", test_err_nerf},
    {"err_flags", test_err_flags},
    {"err_no_display", test_err_no_display},
    {"err_no_device", test_err_no_device},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
