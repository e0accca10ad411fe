/* test_nerf_scene.c: the procedural scene of `nerf demo` (nerf/nerf_scene.h).
 *
 * determinism: the same view rendered twice, and the same dataset written twice, are identical
 * byte for byte.
 * coverage: every view of the default rig shows the objects (alpha coverage within bounds), and
 * seen from -x the centre sphere's projected disc (shrunk by a pixel) is fully opaque.
 * centre_hit: from -x and from +x at distance 1.3, the ray through the image centre meets the
 * sphere's front at t = 1.3 - 0.15 (depth within 1e-4), with normal -x / +x, a checker colour,
 * and the pixel's colour is the documented shading formula (u8 = round(255 rgb)): ambient only
 * on the unlit side, Lambert + highlight on the lit side.
 * box_faces: each box face seen head-on has its colour and normal, at the analytic distance.
 * json_roundtrip: the written JSONs parsed with cJSON: fields, paths, 4 x 4 matrices (rotation
 * orthonormal with det +1, last row 0 0 0 1) equal to nerf_scene_camera_get; the PNGs decode to
 * exactly the rendered pixels.
 * camera_rig: every rig camera sits at `radius` from the centre, its principal ray passes
 * through the centre, it is upright, the ray formula is the NeRF-synthetic one; train and test
 * positions differ and test views spread over the band; the seed turns the rig.
 * supersample_edges: without supersampling alpha is 0 or 255; with 3 x 3 the silhouette pixels
 * get fractional alpha, and the total coverage agrees within 3%.
 * pool_vs_single: 4 threads, 1 thread and no context render identical bytes.
 * occupancy: known points; along traced rays the surface is where sdf = 0 and occupancy flips;
 * everything lies within NERF_SCENE_BOUND_RADIUS of the centre.
 * errors: bad params, cameras, outputs, indices and directories give named errors.
 * write_time: writes 100 + 20 views at 64 x 64 with 2 x 2 supersampling, printing the time
 * (measured, not asserted: conventions 2.8). */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"
#include "nerf_scene.h"

#define SC NERF_SCENE_CENTER

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A camera at C + dist * dir looking at `target`, world z up, horizontal FOV `angle`. */
static int make_cam(nerf_scene_camera *cam,
                    int64_t w,
                    int64_t h,
                    double angle,
                    const double eye[3],
                    const double target[3]) {
    eng_err err = {0};
    const double up[3] = {0, 0, 1};
    memset(cam, 0, sizeof *cam);
    cam->width = w;
    cam->height = h;
    cam->fx = cam->fy = 0.5 * (double)w / tan(0.5 * angle);
    cam->cx = 0.5 * (double)w;
    cam->cy = 0.5 * (double)h;
    CHECK_OK(nerf_scene_look_at(cam->c2w, eye, target, up, &err), &err);
    return 0;
}

static int read_file(char **out, size_t *n, const char *path) {
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = (char *)malloc((size_t)len + 1);
    if (*out == NULL || fread(*out, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(*out);
        *out = NULL;
        return 1;
    }
    (*out)[len] = '\0';
    *n = (size_t)len;
    fclose(f);
    return 0;
}

static int files_equal(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = 0;
    if (read_file(&x, &nx, a) == 0 && read_file(&y, &ny, b) == 0)
        same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    if (!same) fprintf(stderr, "%s and %s differ\n", a, b);
    return same;
}

static void small_params(nerf_scene_params *p) {
    nerf_scene_params_init(p);
    p->width = 20;
    p->height = 14;
    p->n_train = 7;
    p->n_test = 3;
    p->supersample = 2;
    p->seed = 5;
}

/* ---- cases ---------------------------------------------------------------------------------- */

static int test_determinism(void) {
    eng_err err = {0};
    nerf_scene_params p;
    nerf_scene_camera cam;
    char a[600], b[600];
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(ctx != NULL);
    nerf_scene_params_init(&p);
    p.width = 48;
    p.height = 40;
    CHECK_OK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_TRAIN, 17, &err), &err);
    const size_t npx = (size_t)(48 * 40);
    uint8_t *u0 = malloc(4 * npx), *u1 = malloc(4 * npx);
    float *f0 = malloc(4 * npx * sizeof(float)), *f1 = malloc(4 * npx * sizeof(float));
    float *d0 = malloc(npx * sizeof(float)), *d1 = malloc(npx * sizeof(float));
    CHECK(u0 && u1 && f0 && f1 && d0 && d1);
    CHECK_OK(nerf_scene_render(ctx, u0, f0, d0, &cam, 2, &err), &err);
    memset(u1, 7, 4 * npx);
    CHECK_OK(nerf_scene_render(ctx, u1, f1, d1, &cam, 2, &err), &err);
    CHECK(memcmp(u0, u1, 4 * npx) == 0);
    CHECK(memcmp(f0, f1, 4 * npx * sizeof(float)) == 0);
    CHECK(memcmp(d0, d1, npx * sizeof(float)) == 0);
    free(u0), free(u1), free(f0), free(f1), free(d0), free(d1);

    small_params(&p);
    snprintf(a, sizeof a, "%s/det_a", eng_test_tmpdir());
    snprintf(b, sizeof b, "%s/det_b/nested", eng_test_tmpdir());
    CHECK_OK(nerf_scene_write(a, &p, ctx, &err), &err);
    CHECK_OK(nerf_scene_write(b, &p, NULL, &err), &err);
    static const char *files[] = {"transforms_train.json", "transforms_test.json", "train/r_0.png",
                                  "train/r_6.png", "test/r_2.png"};
    for (int i = 0; i < ENG_TEST_N(files); i++) {
        char fa[700], fb[700];
        snprintf(fa, sizeof fa, "%s/%s", a, files[i]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[i]);
        CHECK(files_equal(fa, fb));
    }
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_coverage(void) {
    eng_err err = {0};
    nerf_scene_params p;
    nerf_scene_params_init(&p);
    p.width = p.height = 48;
    const int64_t npx = p.width * p.height;
    uint8_t *img = malloc((size_t)npx * 4);
    eng_ctx *ctx = eng_test_ctx(2);
    CHECK(img != NULL && ctx != NULL);
    double lo = 1.0, hi = 0.0;
    for (int s = 0; s < NERF_SCENE_SPLIT_COUNT; s++) {
        const int64_t n = s == NERF_SCENE_TRAIN ? p.n_train : p.n_test;
        for (int64_t i = 0; i < n; i++) {
            nerf_scene_camera cam;
            CHECK_OK(nerf_scene_camera_get(&cam, &p, (nerf_scene_split)s, i, &err), &err);
            CHECK_OK(nerf_scene_render(ctx, img, NULL, NULL, &cam, 1, &err), &err);
            int64_t hit = 0;
            for (int64_t k = 0; k < npx; k++)
                hit += img[4 * k + 3] != 0;
            const double frac = (double)hit / (double)npx;
            lo = frac < lo ? frac : lo;
            hi = frac > hi ? frac : hi;
            /* the centre sphere alone covers pi (0.15 / (1.3 * 0.3596))^2 / 4 = 10.5% of the
             * image (a little more in perspective); the four objects never cover half of it */
            if (frac < 0.1 || frac > 0.45) {
                fprintf(stderr, "split %d view %jd: coverage %.3f outside [0.1, 0.45]\n", s,
                        (intmax_t)i, frac);
                return 1;
            }
            /* ...and never touch the image border (everything is in view) */
            for (int64_t x = 0; x < p.width; x++) {
                CHECK(img[4 * x + 3] == 0 && img[4 * ((p.height - 1) * p.width + x) + 3] == 0);
            }
        }
    }
    printf("rig coverage %.3f .. %.3f\n", lo, hi);

    /* from -x: every pixel whose centre ray passes within r - 1.5 px of the sphere's centre
     * (in angle) is fully opaque and hits the sphere */
    nerf_scene_camera cam;
    const double eye[3] = {SC - 1.3, SC, SC}, ctr[3] = {SC, SC, SC};
    CHECK(make_cam(&cam, 48, 48, p.camera_angle_x, eye, ctr) == 0);
    CHECK_OK(nerf_scene_render(ctx, img, NULL, NULL, &cam, 2, &err), &err);
    const double ang_r = asin(0.15 / 1.3), px_ang = 1.0 / cam.fx;
    int64_t inside = 0;
    for (int64_t y = 0; y < 48; y++) {
        for (int64_t x = 0; x < 48; x++) {
            double o[3], d[3];
            nerf_scene_camera_ray(&cam, (double)x, (double)y, o, d);
            const double ang = acos(d[0]); /* the axis is +x */
            if (ang < ang_r - 1.5 * px_ang) {
                inside++;
                CHECK(img[4 * (y * 48 + x) + 3] == 255);
            }
        }
    }
    CHECK(inside > 100);
    free(img);
    eng_ctx_destroy(ctx);
    return 0;
}

/* From C - side * 1.3 x (side -1: the sphere's unlit side, +1: its lit side), the ray through
 * the image centre meets the sphere at t = 1.3 - 0.15. */
static int centre_hit_from(double side) {
    eng_err err = {0};
    nerf_scene_camera cam;
    const double dist = 1.3, eye[3] = {SC + side * dist, SC, SC}, ctr[3] = {SC, SC, SC};
    enum { W = 65, H = 51 };
    /* odd sizes: the pixel (32, 25)'s centre is the principal point */
    CHECK(make_cam(&cam, W, H, 0.69, eye, ctr) == 0);
    uint8_t *u8 = malloc(W * H * 4);
    float *f32 = malloc(W * H * 4 * sizeof(float)), *depth = malloc(W * H * sizeof(float));
    CHECK(u8 && f32 && depth);
    CHECK_OK(nerf_scene_render(NULL, u8, f32, depth, &cam, 1, &err), &err);
    const int64_t c = 25 * W + 32;
    const double want_t = dist - 0.15;
    if (fabs(depth[c] - want_t) > 1e-4) {
        fprintf(stderr, "centre depth %.7f, want %.7f\n", depth[c], want_t);
        return 1;
    }
    CHECK(fabs(depth[c] - want_t) < 1e-6); /* f32 storage */
    double o[3], d[3];
    nerf_scene_hit hit;
    nerf_scene_camera_ray(&cam, 32.0, 25.0, o, d);
    CHECK(fabs(d[0] + side) < 1e-12 && fabs(d[1]) < 1e-12 && fabs(d[2]) < 1e-12);
    CHECK(nerf_scene_trace(&hit, o, d) == 1);
    CHECK(hit.object == NERF_SCENE_OBJ_SPHERE);
    CHECK(fabs(hit.t - want_t) < 1e-12);
    CHECK(fabs(hit.n[0] - side) < 1e-12 && fabs(hit.n[1]) < 1e-12 && fabs(hit.n[2]) < 1e-12);
    CHECK(fabs(hit.p[0] - (SC + side * 0.15)) < 1e-12);
    /* one of the two checker colours */
    const int orange = fabs(hit.albedo[0] - 0.95) < 1e-12 && fabs(hit.albedo[1] - 0.55) < 1e-12 &&
                       fabs(hit.albedo[2] - 0.15) < 1e-12;
    const int cream = fabs(hit.albedo[0] - 0.95) < 1e-12 && fabs(hit.albedo[1] - 0.92) < 1e-12 &&
                      fabs(hit.albedo[2] - 0.82) < 1e-12;
    CHECK(orange || cream);
    /* the documented shading; on the lit side nothing stands between the point and the light */
    const double lr[3] = NERF_SCENE_LIGHT_DIR;
    const double ll = sqrt(lr[0] * lr[0] + lr[1] * lr[1] + lr[2] * lr[2]);
    const double l[3] = {lr[0] / ll, lr[1] / ll, lr[2] / ll};
    const double ndl = side * l[0]; /* n = side * x */
    double h[3] = {l[0] - d[0], l[1] - d[1], l[2] - d[2]};
    const double hl = sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]);
    const double ndh = side * h[0] / hl;
    CHECK(side > 0 ? ndl > 0.0 : ndl < 0.0);
    const double spec =
        ndl > 0 && ndh > 0 ? NERF_SCENE_SPECULAR * pow(ndh, NERF_SCENE_SHININESS) : 0.0;
    for (int k = 0; k < 3; k++) {
        double want =
            hit.albedo[k] * (NERF_SCENE_AMBIENT + NERF_SCENE_DIFFUSE * fmax(ndl, 0.0)) + spec;
        want = want > 1.0 ? 1.0 : want;
        CHECK(fabs(hit.rgb[k] - want) < 1e-12);
        CHECK(fabsf(f32[4 * c + k] - (float)want) <= 1e-7f);
        CHECK(u8[4 * c + k] == (uint8_t)floor(want * 255.0 + 0.5));
    }
    CHECK(f32[4 * c + 3] == 1.0f && u8[4 * c + 3] == 255);
    /* corners miss: depth +inf, alpha 0 */
    CHECK(isinf(depth[0]) && depth[0] > 0 && u8[3] == 0 && f32[3] == 0.0f);
    free(u8), free(f32), free(depth);
    return 0;
}

static int test_centre_hit(void) {
    CHECK(centre_hit_from(-1.0) == 0);
    CHECK(centre_hit_from(1.0) == 0);
    return 0;
}

static int test_box_faces(void) {
    /* the box: centre (0.72, 0.33, 0.38), half side 0.08, local axes the columns of
     * Rz(cos 0.8, sin 0.6) Rx(cos 12/13, sin 5/13) */
    const double c1 = 0.8, s1 = 0.6, c2 = 12.0 / 13.0, s2 = 5.0 / 13.0;
    const double axes[3][3] = {{c1, s1, 0.0}, {-s1 * c2, c1 * c2, s2}, {s1 * s2, -c1 * s2, c2}};
    const double centre[3] = {0.72, 0.33, 0.38};
    static const double colours[6][3] = {{0.85, 0.2, 0.2},  {0.55, 0.35, 0.85}, {0.2, 0.35, 0.9},
                                         {0.95, 0.85, 0.2}, {0.8, 0.3, 0.8},    {0.25, 0.8, 0.85}};
    int seen = 0;
    for (int f = 0; f < 6; f++) {
        const double sign = f % 2 == 0 ? 1.0 : -1.0;
        const double *ax = axes[f / 2];
        double o[3], d[3];
        for (int k = 0; k < 3; k++) {
            o[k] = centre[k] + sign * 2.0 * ax[k];
            d[k] = -sign * ax[k];
        }
        nerf_scene_hit hit;
        if (!nerf_scene_trace(&hit, o, d) || hit.object != NERF_SCENE_OBJ_BOX) continue;
        seen++;
        CHECK(fabs(hit.t - (2.0 - 0.08)) < 1e-12);
        for (int k = 0; k < 3; k++) {
            CHECK(fabs(hit.n[k] - sign * ax[k]) < 1e-12);
            CHECK(hit.albedo[k] == colours[f][k]);
        }
    }
    printf("box faces seen head-on: %d of 6\n", seen);
    CHECK(seen >= 4);
    return 0;
}

static int check_matrix(const cJSON *mat, const double want[12]) {
    CHECK(cJSON_IsArray(mat) && cJSON_GetArraySize(mat) == 4);
    double m[4][4];
    for (int r = 0; r < 4; r++) {
        const cJSON *row = cJSON_GetArrayItem(mat, r);
        CHECK(cJSON_IsArray(row) && cJSON_GetArraySize(row) == 4);
        for (int k = 0; k < 4; k++) {
            const cJSON *v = cJSON_GetArrayItem(row, k);
            CHECK(cJSON_IsNumber(v));
            m[r][k] = v->valuedouble;
        }
    }
    CHECK(m[3][0] == 0.0 && m[3][1] == 0.0 && m[3][2] == 0.0 && m[3][3] == 1.0);
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 4; k++)
            CHECK(m[r][k] == want[4 * r + k]); /* cJSON prints round-trip digits */
    for (int a = 0; a < 3; a++) {
        for (int b = 0; b < 3; b++) {
            double s = 0.0;
            for (int r = 0; r < 3; r++)
                s += m[r][a] * m[r][b];
            CHECK(fabs(s - (a == b ? 1.0 : 0.0)) < 1e-12);
        }
    }
    const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                       m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                       m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    CHECK(fabs(det - 1.0) < 1e-12);
    return 0;
}

static int test_json_roundtrip(void) {
    eng_err err = {0};
    nerf_scene_params p;
    char dir[600], path[800];
    small_params(&p);
    p.camera_angle_x = 0.75;
    snprintf(dir, sizeof dir, "%s/json", eng_test_tmpdir());
    CHECK_OK(nerf_scene_write(dir, &p, NULL, &err), &err);
    uint8_t *want = malloc((size_t)(p.width * p.height * 4));
    CHECK(want != NULL);
    for (int s = 0; s < NERF_SCENE_SPLIT_COUNT; s++) {
        const char *name = s == NERF_SCENE_TRAIN ? "train" : "test";
        const int64_t n = s == NERF_SCENE_TRAIN ? p.n_train : p.n_test;
        char *text = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/transforms_%s.json", dir, name);
        CHECK(read_file(&text, &len, path) == 0);
        cJSON *root = cJSON_Parse(text);
        free(text);
        CHECK(root != NULL);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "camera_angle_x");
        CHECK(cJSON_IsNumber(v) && v->valuedouble == 0.75);
        v = cJSON_GetObjectItemCaseSensitive(root, "scale");
        CHECK(cJSON_IsNumber(v) && v->valuedouble == 1.0);
        v = cJSON_GetObjectItemCaseSensitive(root, "aabb_scale");
        CHECK(cJSON_IsNumber(v) && v->valuedouble == 1.0);
        v = cJSON_GetObjectItemCaseSensitive(root, "offset");
        CHECK(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 3);
        for (int k = 0; k < 3; k++)
            CHECK(cJSON_GetArrayItem(v, k)->valuedouble == 0.0);
        const cJSON *frames = cJSON_GetObjectItemCaseSensitive(root, "frames");
        CHECK(cJSON_IsArray(frames) && cJSON_GetArraySize(frames) == (int)n);
        for (int64_t i = 0; i < n; i++) {
            const cJSON *fr = cJSON_GetArrayItem(frames, (int)i);
            char want_path[64];
            snprintf(want_path, sizeof want_path, "./%s/r_%jd", name, (intmax_t)i);
            const cJSON *fp = cJSON_GetObjectItemCaseSensitive(fr, "file_path");
            CHECK(cJSON_IsString(fp) && strcmp(fp->valuestring, want_path) == 0);
            nerf_scene_camera cam;
            CHECK_OK(nerf_scene_camera_get(&cam, &p, (nerf_scene_split)s, i, &err), &err);
            CHECK(check_matrix(cJSON_GetObjectItemCaseSensitive(fr, "transform_matrix"), cam.c2w) ==
                  0);
            /* the PNG next to it holds exactly the render */
            eng_image img = {0};
            snprintf(path, sizeof path, "%s/%s.png", dir, fp->valuestring + 2);
            CHECK_OK(eng_image_read(&img, path, 0, &err), &err);
            CHECK(img.width == p.width && img.height == p.height && img.channels == 4);
            CHECK_OK(nerf_scene_render(NULL, want, NULL, NULL, &cam, p.supersample, &err), &err);
            CHECK(memcmp(img.data, want, eng_image_bytes(&img)) == 0);
            eng_image_free(&img);
        }
        cJSON_Delete(root);
    }
    free(want);

    /* n_test = 0: no test split */
    p.n_test = 0;
    snprintf(dir, sizeof dir, "%s/json_notest", eng_test_tmpdir());
    CHECK_OK(nerf_scene_write(dir, &p, NULL, &err), &err);
    snprintf(path, sizeof path, "%s/transforms_test.json", dir);
    FILE *f = fopen(path, "rb");
    CHECK(f == NULL);
    snprintf(path, sizeof path, "%s/transforms_train.json", dir);
    f = fopen(path, "rb");
    CHECK(f != NULL);
    fclose(f);
    return 0;
}

static int test_camera_rig(void) {
    eng_err err = {0};
    nerf_scene_params p;
    nerf_scene_params_init(&p);
    const int64_t n = p.n_train + p.n_test;
    double(*pos)[3] = malloc((size_t)n * sizeof *pos);
    int *is_test = malloc((size_t)n * sizeof *is_test);
    CHECK(pos != NULL && is_test != NULL);
    double zmin_test = 1e9, zmax_test = -1e9, zmin = 1e9, zmax = -1e9;
    int64_t k = 0;
    for (int s = 0; s < NERF_SCENE_SPLIT_COUNT; s++) {
        const int64_t cnt = s == NERF_SCENE_TRAIN ? p.n_train : p.n_test;
        for (int64_t i = 0; i < cnt; i++, k++) {
            nerf_scene_camera cam;
            CHECK_OK(nerf_scene_camera_get(&cam, &p, (nerf_scene_split)s, i, &err), &err);
            CHECK(cam.width == 128 && cam.height == 128 && cam.cx == 64.0 && cam.cy == 64.0);
            CHECK(fabs(cam.fx - 0.5 * 128 / tan(0.5 * 0.6911112070083618)) < 1e-9);
            CHECK(cam.fy == cam.fx);
            double o[3], d[3], rel[3];
            nerf_scene_camera_ray(&cam, cam.cx - 0.5, cam.cy - 0.5, o, d);
            for (int a = 0; a < 3; a++) {
                pos[k][a] = o[a];
                rel[a] = SC - o[a];
            }
            const double dist = sqrt(rel[0] * rel[0] + rel[1] * rel[1] + rel[2] * rel[2]);
            CHECK(fabs(dist - p.radius) < 1e-12);
            /* the principal ray passes through the centre: it is rel / |rel| */
            for (int a = 0; a < 3; a++)
                CHECK(fabs(d[a] - rel[a] / dist) < 1e-12);
            /* ... and it is -z of the matrix; camera y has a positive world-z part (upright) */
            for (int a = 0; a < 3; a++)
                CHECK(fabs(d[a] + cam.c2w[4 * a + 2]) < 1e-12);
            CHECK(cam.c2w[4 * 2 + 1] > 0.0);
            /* the NeRF-synthetic ray formula at the top-left pixel: ((0.5 - cx) / fx,
             * -(0.5 - cy) / fy, -1) rotated: left of and above the principal ray */
            double dtl[3];
            nerf_scene_camera_ray(&cam, 0.0, 0.0, o, dtl);
            const double dc[3] = {(0.5 - cam.cx) / cam.fx, -(0.5 - cam.cy) / cam.fy, -1.0};
            const double dl = sqrt(dc[0] * dc[0] + dc[1] * dc[1] + dc[2] * dc[2]);
            for (int a = 0; a < 3; a++) {
                const double w = (cam.c2w[4 * a] * dc[0] + cam.c2w[4 * a + 1] * dc[1] +
                                  cam.c2w[4 * a + 2] * dc[2]) /
                                 dl;
                CHECK(fabs(dtl[a] - w) < 1e-12);
            }
            CHECK(dc[0] < 0.0 && dc[1] > 0.0);
            is_test[k] = s == NERF_SCENE_TEST;
            const double z = (pos[k][2] - SC) / p.radius;
            zmin = fmin(zmin, z);
            zmax = fmax(zmax, z);
            if (s == NERF_SCENE_TEST) {
                zmin_test = fmin(zmin_test, z);
                zmax_test = fmax(zmax_test, z);
            }
        }
    }
    /* the band z in [-0.3, 0.95], tests spread over it */
    CHECK(zmin > -0.3 - 1e-9 && zmax < 0.95 + 1e-9 && zmin < -0.25 && zmax > 0.9);
    CHECK(zmin_test < 0.0 && zmax_test > 0.8);
    /* all positions distinct (closest pair > 0.05 at radius 1.3 with 120 views) */
    double closest = 1e9;
    for (int64_t a = 0; a < n; a++) {
        for (int64_t b = a + 1; b < n; b++) {
            const double dx = pos[a][0] - pos[b][0], dy = pos[a][1] - pos[b][1],
                         dz = pos[a][2] - pos[b][2];
            closest = fmin(closest, sqrt(dx * dx + dy * dy + dz * dz));
        }
    }
    printf("closest pair of cameras: %.4f\n", closest);
    CHECK(closest > 0.05);
    /* a different seed turns the rig (same heights, other azimuths) */
    nerf_scene_camera c0, c1;
    CHECK_OK(nerf_scene_camera_get(&c0, &p, NERF_SCENE_TRAIN, 3, &err), &err);
    p.seed = 99;
    CHECK_OK(nerf_scene_camera_get(&c1, &p, NERF_SCENE_TRAIN, 3, &err), &err);
    CHECK(fabs(c0.c2w[11] - c1.c2w[11]) < 1e-12);
    CHECK(fabs(c0.c2w[3] - c1.c2w[3]) > 1e-6 || fabs(c0.c2w[7] - c1.c2w[7]) > 1e-6);
    free(pos);
    free(is_test);
    return 0;
}

static int test_supersample_edges(void) {
    eng_err err = {0};
    nerf_scene_params p;
    nerf_scene_camera cam;
    nerf_scene_params_init(&p);
    p.width = p.height = 64;
    CHECK_OK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_TEST, 4, &err), &err);
    const int64_t npx = 64 * 64;
    uint8_t *a1 = malloc((size_t)npx * 4), *a3 = malloc((size_t)npx * 4);
    float *f3 = malloc((size_t)npx * 4 * sizeof(float));
    CHECK(a1 && a3 && f3);
    CHECK_OK(nerf_scene_render(NULL, a1, NULL, NULL, &cam, 1, &err), &err);
    CHECK_OK(nerf_scene_render(NULL, a3, f3, NULL, &cam, 3, &err), &err);
    double sum1 = 0, sum3 = 0;
    int64_t frac = 0, edge1 = 0;
    for (int64_t i = 0; i < npx; i++) {
        CHECK(a1[4 * i + 3] == 0 || a1[4 * i + 3] == 255);
        sum1 += a1[4 * i + 3] / 255.0;
        sum3 += f3[4 * i + 3];
        /* alpha is a multiple of 1/9 */
        const float k = f3[4 * i + 3] * 9.0f;
        CHECK(fabsf(k - roundf(k)) < 1e-5f);
        if (a3[4 * i + 3] != 0 && a3[4 * i + 3] != 255) frac++;
        /* silhouette crossings along rows at ss = 1 (each has fractional pixels near it) */
        if (i % 64 > 0 && a1[4 * i + 3] != a1[4 * (i - 1) + 3]) edge1++;
        /* where alpha is 0 the colour is 0 (straight alpha, nothing to show) */
        if (a3[4 * i + 3] == 0) CHECK(a3[4 * i] == 0 && a3[4 * i + 1] == 0 && a3[4 * i + 2] == 0);
    }
    printf("fractional-alpha pixels %jd (horizontal ss=1 alpha edges %jd); coverage %.1f vs %.1f\n",
           (intmax_t)frac, (intmax_t)edge1, sum1, sum3);
    CHECK(frac >= edge1 / 2 && frac > 20);
    CHECK(fabs(sum1 - sum3) < 0.03 * sum3);
    free(a1), free(a3), free(f3);
    return 0;
}

static int test_pool_vs_single(void) {
    eng_err err = {0};
    nerf_scene_params p;
    nerf_scene_camera cam;
    nerf_scene_params_init(&p);
    p.width = 97;
    p.height = 61;
    CHECK_OK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_TRAIN, 42, &err), &err);
    const size_t npx = 97 * 61;
    eng_ctx *c4 = eng_test_ctx(4), *c1 = eng_test_ctx(1);
    CHECK(c4 != NULL && c1 != NULL);
    uint8_t *u[3];
    float *f[3], *d[3];
    eng_ctx *ctxs[3] = {c4, c1, NULL};
    for (int i = 0; i < 3; i++) {
        u[i] = malloc(npx * 4);
        f[i] = malloc(npx * 4 * sizeof(float));
        d[i] = malloc(npx * sizeof(float));
        CHECK(u[i] && f[i] && d[i]);
        CHECK_OK(nerf_scene_render(ctxs[i], u[i], f[i], d[i], &cam, 2, &err), &err);
    }
    for (int i = 1; i < 3; i++) {
        CHECK(memcmp(u[0], u[i], npx * 4) == 0);
        CHECK(memcmp(f[0], f[i], npx * 4 * sizeof(float)) == 0);
        CHECK(memcmp(d[0], d[i], npx * sizeof(float)) == 0);
    }
    /* depth alone, and rgba8 alone, are the same as from the full render */
    float *donly = malloc(npx * sizeof(float));
    uint8_t *uonly = malloc(npx * 4);
    CHECK(donly && uonly);
    CHECK_OK(nerf_scene_render(c4, NULL, NULL, donly, &cam, 2, &err), &err);
    CHECK_OK(nerf_scene_render(c4, uonly, NULL, NULL, &cam, 2, &err), &err);
    CHECK(memcmp(donly, d[0], npx * sizeof(float)) == 0);
    CHECK(memcmp(uonly, u[0], npx * 4) == 0);
    free(donly), free(uonly);
    for (int i = 0; i < 3; i++)
        free(u[i]), free(f[i]), free(d[i]);
    eng_ctx_destroy(c4);
    eng_ctx_destroy(c1);
    return 0;
}

static int test_occupancy(void) {
    eng_err err = {0};
    /* known points */
    const float centre[3] = {0.5f, 0.5f, 0.5f};
    CHECK(nerf_scene_occupancy(centre) == 1 + NERF_SCENE_OBJ_SPHERE);
    const float box[3] = {0.72f, 0.33f, 0.38f}, cyl[3] = {0.29f, 0.71f, 0.44f},
                ball[3] = {0.55f, 0.45f, 0.77f};
    CHECK(nerf_scene_occupancy(box) == 1 + NERF_SCENE_OBJ_BOX);
    CHECK(nerf_scene_occupancy(cyl) == 1 + NERF_SCENE_OBJ_CYLINDER);
    CHECK(nerf_scene_occupancy(ball) == 1 + NERF_SCENE_OBJ_BALL);
    const float in_s[3] = {0.5f, 0.5f, 0.649f}, out_s[3] = {0.5f, 0.5f, 0.652f};
    CHECK(nerf_scene_occupancy(in_s) == 1 && nerf_scene_occupancy(out_s) == 0);
    for (int c = 0; c < 8; c++) {
        const float corner[3] = {(float)(c & 1), (float)((c >> 1) & 1), (float)((c >> 2) & 1)};
        CHECK(nerf_scene_occupancy(corner) == 0);
    }
    const double pc[3] = {0.5, 0.5, 0.5};
    CHECK(fabs(nerf_scene_sdf(pc) + 0.15) < 1e-12);
    const double far[3] = {0.5, 0.5 - 0.15 - 0.05, 0.5}; /* 0.05 in front of the sphere */
    CHECK(fabs(nerf_scene_sdf(far) - 0.05) < 1e-12);

    /* along traced rays: the hit point is on the surface, just before it is empty space, just
     * after it is inside the object hit */
    nerf_scene_params p;
    nerf_scene_params_init(&p);
    p.width = p.height = 40;
    int64_t checked = 0;
    for (int64_t v = 0; v < 6; v++) {
        nerf_scene_camera cam;
        CHECK_OK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_TRAIN, v * 13, &err), &err);
        for (int64_t y = 0; y < 40; y += 3) {
            for (int64_t x = 0; x < 40; x += 3) {
                double o[3], d[3];
                nerf_scene_hit hit;
                nerf_scene_camera_ray(&cam, (double)x, (double)y, o, d);
                if (!nerf_scene_trace(&hit, o, d)) {
                    /* a miss: nothing along the ray is occupied */
                    for (int s = 0; s <= 64; s++) {
                        const double t = 0.4 + 1.8 * s / 64.0;
                        const double q[3] = {o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]};
                        CHECK(nerf_scene_sdf(q) > 0.0);
                    }
                    continue;
                }
                checked++;
                CHECK(fabs(nerf_scene_sdf(hit.p)) < 1e-9);
                const float before[3] = {(float)(hit.p[0] - 1e-4 * d[0]),
                                         (float)(hit.p[1] - 1e-4 * d[1]),
                                         (float)(hit.p[2] - 1e-4 * d[2])};
                const float after[3] = {(float)(hit.p[0] + 1e-4 * d[0]),
                                        (float)(hit.p[1] + 1e-4 * d[1]),
                                        (float)(hit.p[2] + 1e-4 * d[2])};
                /* grazing rays can leave the object within 1e-4: only check head-on hits */
                const double cosang = -(hit.n[0] * d[0] + hit.n[1] * d[1] + hit.n[2] * d[2]);
                CHECK(cosang > 0.0);
                if (cosang > 0.05) {
                    CHECK(nerf_scene_occupancy(before) == 0);
                    CHECK(nerf_scene_occupancy(after) == 1 + hit.object);
                }
                /* nothing in front of the hit */
                for (int s = 1; s < 32; s++) {
                    const double t = hit.t * s / 32.0;
                    const double q[3] = {o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]};
                    CHECK(nerf_scene_sdf(q) > 0.0);
                }
            }
        }
    }
    CHECK(checked > 100);

    /* everything lies within NERF_SCENE_BOUND_RADIUS: the sphere of that radius is empty */
    const double golden = 3.14159265358979323846 * (3.0 - sqrt(5.0));
    for (int i = 0; i < 4000; i++) {
        const double z = 1.0 - 2.0 * (i + 0.5) / 4000.0, rxy = sqrt(1.0 - z * z);
        const double q[3] = {SC + NERF_SCENE_BOUND_RADIUS * rxy * cos(golden * i),
                             SC + NERF_SCENE_BOUND_RADIUS * rxy * sin(golden * i),
                             SC + NERF_SCENE_BOUND_RADIUS * z};
        CHECK(nerf_scene_sdf(q) > 0.0);
    }
    return 0;
}

static int test_errors(void) {
    eng_err err = {0};
    nerf_scene_params p;
    nerf_scene_camera cam;
    uint8_t px[4 * 16];
    char path[700];

    nerf_scene_params_init(&p);
    CHECK_OK(nerf_scene_params_check(&p, &err), &err);
    p.width = 0;
    CHECK(nerf_scene_params_check(&p, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "width x height is 0 x 128");
    nerf_scene_params_init(&p);
    p.height = NERF_SCENE_MAX_DIM + 1;
    CHECK(nerf_scene_params_check(&p, &err) == ENG_E_INVALID_ARG);
    nerf_scene_params_init(&p);
    p.n_train = 0;
    CHECK(nerf_scene_params_check(&p, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "n_train is 0");
    nerf_scene_params_init(&p);
    p.n_test = -1;
    CHECK(nerf_scene_params_check(&p, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "n_test is -1");
    nerf_scene_params_init(&p);
    p.supersample = NERF_SCENE_MAX_SUPERSAMPLE + 1;
    CHECK(nerf_scene_params_check(&p, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "supersample is 17");
    nerf_scene_params_init(&p);
    p.camera_angle_x = NAN;
    CHECK(nerf_scene_params_check(&p, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "camera_angle_x");
    nerf_scene_params_init(&p);
    p.radius = 0.3;
    CHECK(nerf_scene_params_check(&p, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "radius is 0.3");

    /* camera_get: bad params, indices, splits */
    nerf_scene_params_init(&p);
    p.supersample = 0;
    CHECK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_TRAIN, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "nerf_scene_camera_get");
    CHECK_CONTAINS(err.msg, "supersample is 0");
    nerf_scene_params_init(&p);
    CHECK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_TEST, 20, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "test view 20 does not exist (0..19)");
    CHECK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_TRAIN, -1, &err) == ENG_E_INVALID_ARG);
    p.n_test = 0;
    CHECK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_TEST, 0, &err) == ENG_E_INVALID_ARG);
    CHECK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_SPLIT_COUNT, 0, &err) == ENG_E_INVALID_ARG);

    /* look_at */
    const double e[3] = {1, 2, 3}, up[3] = {0, 0, 1}, bad[3] = {0, INFINITY, 0};
    CHECK(nerf_scene_look_at(cam.c2w, e, e, up, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "same point");
    CHECK(nerf_scene_look_at(cam.c2w, bad, e, up, &err) == ENG_E_INVALID_ARG);
    /* looking straight down the up vector still gives an orthonormal frame */
    const double above[3] = {1, 2, 5};
    CHECK_OK(nerf_scene_look_at(cam.c2w, above, e, up, &err), &err);
    CHECK(fabs(cam.c2w[2] - 0.0) < 1e-12 && fabs(cam.c2w[10] - 1.0) < 1e-12);

    /* render: no output, bad camera, bad supersampling */
    nerf_scene_params_init(&p);
    p.width = p.height = 4;
    CHECK_OK(nerf_scene_camera_get(&cam, &p, NERF_SCENE_TRAIN, 0, &err), &err);
    CHECK(nerf_scene_render(NULL, NULL, NULL, NULL, &cam, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "no output");
    CHECK(nerf_scene_render(NULL, px, NULL, NULL, &cam, 0, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "supersample is 0");
    nerf_scene_camera bad_cam = cam;
    bad_cam.c2w[6] = NAN;
    CHECK(nerf_scene_render(NULL, px, NULL, NULL, &bad_cam, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "c2w[1][2]");
    bad_cam = cam;
    bad_cam.fx = 0.0;
    CHECK(nerf_scene_render(NULL, px, NULL, NULL, &bad_cam, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "focal");
    bad_cam = cam;
    bad_cam.width = 0;
    CHECK(nerf_scene_render(NULL, px, NULL, NULL, &bad_cam, 1, &err) == ENG_E_INVALID_ARG);
    bad_cam = cam;
    bad_cam.cy = INFINITY;
    CHECK(nerf_scene_render(NULL, px, NULL, NULL, &bad_cam, 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "principal point");

    /* write: bad params, a directory that cannot exist (under a regular file) */
    p.n_train = 0;
    snprintf(path, sizeof path, "%s/never", eng_test_tmpdir());
    CHECK(nerf_scene_write(path, &p, NULL, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "nerf_scene_write");
    CHECK_CONTAINS(err.msg, "n_train is 0");
    nerf_scene_params_init(&p);
    p.width = p.height = 4;
    p.n_train = 2;
    p.n_test = 1;
    snprintf(path, sizeof path, "%s/plainfile", eng_test_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    fclose(f);
    snprintf(path, sizeof path, "%s/plainfile/scene", eng_test_tmpdir());
    CHECK(nerf_scene_write(path, &p, NULL, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "nerf_scene_write: cannot create directory");
    CHECK_CONTAINS(err.msg, "plainfile");
    return 0;
}

static int test_write_time(void) {
    eng_err err = {0};
    nerf_scene_params p;
    char dir[600], path[700];
    eng_ctx *ctx = eng_test_ctx(0);
    CHECK(ctx != NULL);
    nerf_scene_params_init(&p);
    p.width = p.height = 64;
    snprintf(dir, sizeof dir, "%s/time64", eng_test_tmpdir());
    const double t0 = now_s();
    CHECK_OK(nerf_scene_write(dir, &p, ctx, &err), &err);
    const double t1 = now_s();
    printf("nerf_scene_write: 100 + 20 views, 64 x 64, 2 x 2 supersampling, %d threads: %.3f s\n",
           eng_ctx_threads(ctx), t1 - t0);
    snprintf(path, sizeof path, "%s/test/r_19.png", dir);
    eng_image img = {0};
    CHECK_OK(eng_image_read(&img, path, 0, &err), &err);
    CHECK(img.width == 64 && img.height == 64 && img.channels == 4);
    eng_image_free(&img);
    eng_ctx_destroy(ctx);
    return 0;
}

static const eng_test_case cases[] = {
    {"determinism", test_determinism},
    {"coverage", test_coverage},
    {"centre_hit", test_centre_hit},
    {"box_faces", test_box_faces},
    {"json_roundtrip", test_json_roundtrip},
    {"camera_rig", test_camera_rig},
    {"supersample_edges", test_supersample_edges},
    {"pool_vs_single", test_pool_vs_single},
    {"occupancy", test_occupancy},
    {"errors", test_errors},
    {"write_time", test_write_time},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
