/* test_nerf_data.c: NeRF datasets (nerf/nerf_data.h) and the COLMAP import (nerf/nerf_colmap.h).
 * Real scenes from ../shared/data (lego_400 train/val, fox: SKIP without the data), with
 * expected values from the files and from Pillow (pixel sums); intrinsics precedence, the
 * undistortion against the forward OpenCV model; malformed files written to the tmpdir, each
 * checked for a clear message; and a synthetic COLMAP model with known poses. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "eng.h"
#include "eng_test.h"
#include "nerf_colmap.h"
#include "nerf_data.h"

/* ---- helpers ------------------------------------------------------------------------------- */

/* Warnings the dataset loader sends to the context's logger. */
typedef struct log_capture {
    int n_warn;
    char last[1024];
} log_capture;

static void capture_log(void *user, eng_log_level level, const char *msg) {
    log_capture *c = (log_capture *)user;
    if (level == ENG_LOG_WARN) {
        c->n_warn++;
        snprintf(c->last, sizeof c->last, "%s", msg);
    }
    fprintf(stderr, "[log %s] %s\n", eng_log_level_name(level), msg);
}

static eng_ctx *make_ctx(log_capture *cap) {
    eng_ctx_params p;
    eng_ctx *ctx = NULL;
    eng_err err = {0};
    eng_ctx_params_init(&p);
    p.threads = 2;
    p.threaded_scheduler = 0;
    if (cap != NULL) {
        p.logger.fn = capture_log;
        p.logger.user = cap;
        p.logger.min_level = ENG_LOG_INFO;
    }
    if (eng_ctx_create(&ctx, &p, &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
    return ctx;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A data scene folder, or NULL (the case SKIPs) when the shared data is not there. */
static const char *scene(const char *name) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/nerf/%s", eng_test_data_dir(), name);
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "no %s: skipping\n", path);
        return NULL;
    }
    return path;
}

/* tmpdir/name (made), returned in a static buffer per slot. */
static const char *tmp_sub(const char *name) {
    static char bufs[4][1024];
    static int slot = 0;
    char *b = bufs[slot++ % 4];
    snprintf(b, 1024, "%s/%s", eng_test_tmpdir(), name);
    mkdir(b, 0700);
    return b;
}

static int write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) return 1;
    fputs(text, f);
    return fclose(f) != 0;
}

/* A w x h RGBA PNG of one colour. */
static int
write_png(const char *dir, const char *name, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    char path[4096];
    eng_image img = {0};
    eng_err err = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (eng_image_alloc(&img, w, h, 4, &err) != ENG_OK) return 1;
    for (int64_t i = 0; i < (int64_t)w * h; i++) {
        img.data[4 * i] = r;
        img.data[4 * i + 1] = g;
        img.data[4 * i + 2] = b;
        img.data[4 * i + 3] = 255;
    }
    const int rc = eng_image_write_png(path, &img, NULL, 0, &err);
    if (rc != ENG_OK) fprintf(stderr, "%s\n", err.msg);
    eng_image_free(&img);
    return rc != ENG_OK;
}

static int ends_with(const char *s, const char *suffix) {
    const size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int64_t byte_sum(const uint8_t *p, int64_t n) {
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

/* Distance from point p to the line o + t d (d unit). */
static double line_dist(const float o[3], const float d[3], const double p[3]) {
    double v[3], t = 0.0, s = 0.0;
    for (int k = 0; k < 3; k++) {
        v[k] = p[k] - o[k];
        t += v[k] * d[k];
    }
    for (int k = 0; k < 3; k++) {
        const double e = v[k] - t * d[k];
        s += e * e;
    }
    return sqrt(s);
}

static double norm3(const double v[3]) {
    return sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
}

/* Expects a load of `dir` (split NULL, no context) to fail with `code` and `needle`s. */
static int expect_load_error(const char *dir, int code, const char *n1, const char *n2) {
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    const int rc = nerf_dataset_load(&ds, NULL, dir, NULL, &err);
    fprintf(stderr, "  -> %d: %s\n", rc, err.msg);
    CHECK(ds == NULL);
    CHECK_EQ_I64(rc, code);
    CHECK_EQ_I64(err.code, code);
    CHECK_CONTAINS(err.msg, "nerf_dataset_load");
    if (n1 != NULL) CHECK_CONTAINS(err.msg, n1);
    if (n2 != NULL) CHECK_CONTAINS(err.msg, n2);
    return 0;
}

/* Writes `json` as dir/transforms.json and expects the load to fail naming the file and n1/n2. */
static int
expect_json_error(const char *name, const char *json, int code, const char *n1, const char *n2) {
    const char *dir = tmp_sub(name);
    CHECK(write_text(dir, "transforms.json", json) == 0);
    CHECK(expect_load_error(dir, code, "transforms.json", n1) == 0);
    if (n2 != NULL) CHECK(expect_load_error(dir, code, n2, NULL) == 0);
    return 0;
}

/* Expects parse_json of `json` to fail with `code` naming "bad.json" and `needle`. */
static int expect_parse_error(const char *json, int code, const char *needle) {
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    const int rc = nerf_dataset_parse_json(&ds, json, strlen(json), "bad.json", &err);
    fprintf(stderr, "  -> %d: %s\n", rc, err.msg);
    CHECK(ds == NULL);
    CHECK_EQ_I64(rc, code);
    CHECK_CONTAINS(err.msg, "bad.json");
    CHECK_CONTAINS(err.msg, needle);
    return 0;
}

#define IDENT "[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]"

/* ---- real scenes --------------------------------------------------------------------------- */

static int test_lego_train(void) {
    const char *dir = scene("lego_400");
    if (dir == NULL) return ENG_TEST_SKIP;
    log_capture cap = {0};
    eng_ctx *ctx = make_ctx(&cap);
    CHECK(ctx != NULL);
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    lp.split = "train";
    eng_progress_params pp;
    eng_progress_params_init(&pp);
    FILE *bar_out = tmpfile();
    CHECK(bar_out != NULL);
    pp.out = bar_out;
    pp.mode = ENG_PROGRESS_PLAIN;
    lp.progress = &pp;
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    const double t0 = now_s();
    CHECK_OK(nerf_dataset_load(&ds, ctx, dir, &lp, &err), &err);
    fprintf(stderr, "lego train: 100 frames decoded in %.2f s on 2 threads\n", now_s() - t0);
    char bar[4096] = "";
    rewind(bar_out);
    bar[fread(bar, 1, sizeof bar - 1, bar_out)] = '\0';
    fclose(bar_out);
    fprintf(stderr, "progress output: %s", bar);
    CHECK_CONTAINS(bar, "load: 100/100 (100%)");
    CHECK_EQ_I64(cap.n_warn, 0);

    CHECK_EQ_I64(nerf_dataset_count(ds), 100);
    CHECK_EQ_I64(nerf_dataset_skipped(ds), 0);
    CHECK_EQ_I64(nerf_dataset_width(ds), 400);
    CHECK_EQ_I64(nerf_dataset_height(ds), 400);
    CHECK(ends_with(nerf_dataset_json_path(ds), "transforms_train.json"));
    CHECK(ends_with(nerf_dataset_frame_path(ds, 0), "train/r_0.png"));
    CHECK(ends_with(nerf_dataset_frame_path(ds, 99), "train/r_99.png"));
    CHECK_EQ_I64(nerf_dataset_frame_index(ds, 99), 99);
    /* camera_angle_x 0.6911112070083618 -> fx = 0.5 * 400 / tan(0.5 * angle) ~ 555.555 */
    const double fx = 0.5 * 400.0 / tan(0.5 * 0.6911112070083618);
    for (int64_t i = 0; i < 100; i++) {
        const nerf_intrinsics in = nerf_dataset_intrinsics(ds, i);
        CHECK(fabs(in.fx - fx) < 1e-3 && fabs(in.fy - fx) < 1e-3);
        CHECK(fabs(in.fx - 555.555) < 0.01);
        CHECK(in.cx == 200.0f && in.cy == 200.0f);
        CHECK(in.k1 == 0.0f && in.k2 == 0.0f && in.p1 == 0.0f && in.p2 == 0.0f);
    }
    CHECK(nerf_dataset_aabb_scale(ds) == 1.0f);
    CHECK(nerf_dataset_scale(ds) == 0.33f);
    float off[3], lo[3], hi[3];
    nerf_dataset_offset(ds, off);
    nerf_dataset_aabb(ds, lo, hi);
    for (int k = 0; k < 3; k++)
        CHECK(off[k] == 0.5f && lo[k] == 0.0f && hi[k] == 1.0f);
    /* frames[0].transform_matrix of transforms_train.json */
    float c2w[12], c2wm[12];
    nerf_dataset_c2w(ds, 0, c2w);
    nerf_dataset_c2w_model(ds, 0, c2wm);
    CHECK(c2w[0] == (float)-0.9999021887779236 && c2w[3] == (float)-0.05379832163453102);
    CHECK(c2w[7] == (float)3.845470428466797 && c2w[9] == (float)0.9540371894836426);
    CHECK(c2wm[0] == c2w[0] && c2wm[9] == c2w[9]);
    CHECK(fabs(c2wm[7] - (0.33 * 3.845470428466797 + 0.5)) < 1e-6);

    /* Pixels, against Pillow: byte sums of frames 0 and 99 and one pixel. */
    const uint8_t *px0 = nerf_dataset_rgba(ds, 0);
    CHECK(px0 == nerf_dataset_pixels(ds));
    CHECK_EQ_I64(byte_sum(px0, 400 * 400 * 4), 18917353);
    CHECK_EQ_I64(byte_sum(nerf_dataset_rgba(ds, 99), 400 * 400 * 4), 39012787);
    const uint8_t *c = px0 + (200 * 400 + 200) * 4;
    CHECK(c[0] == 137 && c[1] == 99 && c[2] == 21 && c[3] == 255);
    int64_t clear = 0;
    for (int64_t i = 0; i < 400 * 400; i++)
        clear += px0[4 * i + 3] == 0;
    CHECK_EQ_I64(clear, 121701);

    /* Rays: the cameras look at the world origin, model (0.5, 0.5, 0.5), from 4.03 away. */
    const double centre[3] = {0.5, 0.5, 0.5};
    double worst = 0.0;
    for (int64_t i = 0; i < 100; i++) {
        float o[3], d[3];
        nerf_dataset_ray(ds, i, 199.5f, 199.5f, o, d); /* the principal point */
        const double dist = line_dist(o, d, centre);
        worst = fmax(worst, dist);
        const double oc[3] = {o[0] - 0.5, o[1] - 0.5, o[2] - 0.5};
        CHECK(fabs(norm3(oc) - 0.33 * 4.0311288) < 1e-4);
        double dn = sqrt((double)d[0] * d[0] + (double)d[1] * d[1] + (double)d[2] * d[2]);
        CHECK(fabs(dn - 1.0) < 1e-6);
        /* d points towards the centre, not away */
        CHECK(-(oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2]) > 1.3);
    }
    fprintf(stderr, "principal rays: max distance to the model centre %.3g\n", worst);
    CHECK(worst < 1e-4);
    float o[3], d[3];
    nerf_dataset_ray(ds, 0, 200.0f, 200.0f, o, d); /* half a pixel off: ~1.3 * 0.5 / 555 */
    CHECK(line_dist(o, d, centre) < 2e-3);
    /* The rays through the left and right image edges (u = 0 and 400) span camera_angle_x. */
    float o2[3], d2[3];
    nerf_dataset_ray(ds, 5, -0.5f, 199.5f, o, d);
    nerf_dataset_ray(ds, 5, 399.5f, 199.5f, o2, d2);
    const double dot = (double)d[0] * d2[0] + (double)d[1] * d2[1] + (double)d[2] * d2[2];
    CHECK(fabs(acos(dot) - 0.6911112070083618) < 1e-5);
    CHECK(o[0] == o2[0] && o[1] == o2[1] && o[2] == o2[2]);
    nerf_dataset_destroy(ds);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_lego_val(void) {
    const char *dir = scene("lego_400");
    if (dir == NULL) return ENG_TEST_SKIP;
    eng_ctx *ctx = make_ctx(NULL);
    CHECK(ctx != NULL);
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    lp.split = "val";
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    CHECK_OK(nerf_dataset_load(&ds, ctx, dir, &lp, &err), &err);
    CHECK_EQ_I64(nerf_dataset_count(ds), 100);
    CHECK(ends_with(nerf_dataset_json_path(ds), "transforms_val.json"));
    CHECK(ends_with(nerf_dataset_frame_path(ds, 0), "val/r_0.png"));
    float c2w[12];
    nerf_dataset_c2w(ds, 0, c2w);
    CHECK(c2w[0] == (float)-0.963964581489563 && c2w[3] == (float)0.2046843022108078);
    CHECK_EQ_I64(byte_sum(nerf_dataset_rgba(ds, 0), 400 * 400 * 4), 31141735); /* Pillow */
    const double centre[3] = {0.5, 0.5, 0.5};
    for (int64_t i = 0; i < 100; i++) {
        float o[3], d[3];
        nerf_dataset_ray(ds, i, 199.5f, 199.5f, o, d);
        CHECK(line_dist(o, d, centre) < 1e-4);
    }
    nerf_dataset_destroy(ds);
    eng_ctx_destroy(ctx);
    return 0;
}

/* A path naming the JSON file itself (the split is then ignored); no context: serial decode. */
static int test_lego_file(void) {
    const char *dir = scene("lego_400");
    if (dir == NULL) return ENG_TEST_SKIP;
    char path[1100];
    snprintf(path, sizeof path, "%s/transforms_val.json", dir);
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    lp.split = "train";
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    CHECK_OK(nerf_dataset_load(&ds, NULL, path, &lp, &err), &err);
    CHECK_EQ_I64(nerf_dataset_count(ds), 100);
    CHECK(strcmp(nerf_dataset_json_path(ds), path) == 0);
    CHECK_EQ_I64(byte_sum(nerf_dataset_rgba(ds, 0), 400 * 400 * 4), 31141735);
    nerf_dataset_destroy(ds);
    return 0;
}

static int test_fox(void) {
    const char *dir = scene("fox");
    if (dir == NULL) return ENG_TEST_SKIP;
    log_capture cap = {0};
    eng_ctx *ctx = make_ctx(&cap);
    CHECK(ctx != NULL);
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    const double t0 = now_s();
    CHECK_OK(nerf_dataset_load(&ds, ctx, dir, NULL, &err), &err);
    fprintf(stderr, "fox: 50 JPEGs of 1080x1920 decoded in %.2f s on 2 threads\n", now_s() - t0);
    /* 17 of its 67 frames lost their JPEGs upstream: one warning lists them. */
    CHECK_EQ_I64(cap.n_warn, 1);
    CHECK_CONTAINS(cap.last, "17 of 67 frames");
    CHECK_CONTAINS(cap.last, "images/0005.jpg");
    CHECK_CONTAINS(cap.last, "images/0113.jpg");
    CHECK_EQ_I64(nerf_dataset_count(ds), 50);
    CHECK_EQ_I64(nerf_dataset_skipped(ds), 17);
    CHECK_EQ_I64(nerf_dataset_width(ds), 1080);
    CHECK_EQ_I64(nerf_dataset_height(ds), 1920);
    CHECK(ends_with(nerf_dataset_frame_path(ds, 0), "images/0001.jpg"));
    CHECK(ends_with(nerf_dataset_frame_path(ds, 4), "images/0006.jpg"));
    CHECK_EQ_I64(nerf_dataset_frame_index(ds, 4), 5);
    const nerf_intrinsics in = nerf_dataset_intrinsics(ds, 7);
    CHECK(in.fx == 1375.52f && in.fy == 1374.49f && in.cx == 554.558f && in.cy == 965.268f);
    CHECK(in.k1 == 0.0578421f && in.k2 == -0.0805099f);
    CHECK(in.p1 == -0.000980296f && in.p2 == 0.00015575f);
    CHECK(nerf_dataset_aabb_scale(ds) == 4.0f);
    float lo[3], hi[3];
    nerf_dataset_aabb(ds, lo, hi);
    CHECK(lo[0] == -1.5f && hi[2] == 2.5f);
    /* JPEG: alpha 255; the mean colour of 0001.jpg within a level of Pillow's (decoders differ
     * slightly in IDCT and chroma upsampling). */
    const uint8_t *p = nerf_dataset_rgba(ds, 0);
    double sum[3] = {0, 0, 0};
    int64_t opaque = 0;
    const int64_t n = 1080 * 1920;
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++)
            sum[k] += p[4 * i + k];
        opaque += p[4 * i + 3] == 255;
    }
    CHECK_EQ_I64(opaque, n);
    fprintf(stderr, "fox 0001 mean rgb %.3f %.3f %.3f (Pillow 141.084 116.052 95.694)\n",
            sum[0] / n, sum[1] / n, sum[2] / n);
    CHECK(fabs(sum[0] / n - 141.0835) < 1.0 && fabs(sum[1] / n - 116.0521) < 1.0 &&
          fabs(sum[2] / n - 95.6935) < 1.0);
    /* The capture was centred by colmap2nerf: the optical axes pass near the origin (within
     * 0.66 world units for frame 0, 0.22 in model space). */
    const double centre[3] = {0.5, 0.5, 0.5};
    float o[3], d[3];
    nerf_dataset_ray(ds, 0, 554.058f, 964.768f, o, d);
    fprintf(stderr, "fox frame 0 axis passes %.3f from the centre\n", line_dist(o, d, centre));
    CHECK(line_dist(o, d, centre) < 0.3);
    nerf_dataset_destroy(ds);
    eng_ctx_destroy(ctx);
    return 0;
}

/* ---- from memory --------------------------------------------------------------------------- */

static int test_parse_intrinsics(void) {
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    /* Top level camera_angle_x; frame 1 brings its own focal (the group) and principal cy. */
    const char *a = "{\"camera_angle_x\": 0.5, \"w\": 64, \"h\": 48, \"scale\": 0.5,"
                    " \"offset\": [1, 2, 3], \"aabb_scale\": 8, \"rotation\": 0.1, \"frames\": ["
                    "{\"file_path\": \"a\", \"transform_matrix\": [[1,0,0,4],[0,1,0,5],[0,0,1,6],"
                    "[0,0,0,1]]},"
                    "{\"file_path\": \"b.png\", \"fl_x\": 100, \"cy\": 20, \"k1\": 0.125,"
                    " \"transform_matrix\": " IDENT "}]}";
    CHECK_OK(nerf_dataset_parse_json(&ds, a, strlen(a), NULL, &err), &err);
    CHECK_EQ_I64(nerf_dataset_count(ds), 2);
    CHECK_EQ_I64(nerf_dataset_width(ds), 64);
    CHECK_EQ_I64(nerf_dataset_height(ds), 48);
    CHECK(strcmp(nerf_dataset_json_path(ds), "(memory)") == 0);
    CHECK(strcmp(nerf_dataset_frame_path(ds, 1), "b.png") == 0);
    CHECK(nerf_dataset_rgba(ds, 0) == NULL && nerf_dataset_pixels(ds) == NULL);
    nerf_intrinsics in = nerf_dataset_intrinsics(ds, 0);
    const float f0 = (float)(32.0 / tan(0.25));
    CHECK(in.fx == f0 && in.fy == f0 && in.cx == 32.0f && in.cy == 24.0f && in.k1 == 0.0f);
    in = nerf_dataset_intrinsics(ds, 1);
    CHECK(in.fx == 100.0f && in.fy == 100.0f && in.cx == 32.0f && in.cy == 20.0f);
    CHECK(in.k1 == 0.125f);
    CHECK(nerf_dataset_scale(ds) == 0.5f && nerf_dataset_aabb_scale(ds) == 8.0f);
    float lo[3], hi[3], m[12], off[3];
    nerf_dataset_aabb(ds, lo, hi);
    CHECK(lo[1] == -3.5f && hi[1] == 4.5f);
    nerf_dataset_offset(ds, off);
    CHECK(off[0] == 1.0f && off[1] == 2.0f && off[2] == 3.0f);
    nerf_dataset_c2w_model(ds, 0, m);
    CHECK(m[3] == 3.0f && m[7] == 4.5f && m[11] == 6.0f && m[0] == 1.0f);
    float o[3], d[3];
    nerf_dataset_ray(ds, 0, 31.5f, 23.5f, o, d); /* principal point: straight down -z */
    CHECK(o[0] == 3.0f && o[1] == 4.5f && o[2] == 6.0f);
    CHECK(d[0] == 0.0f && d[1] == 0.0f && d[2] == -1.0f);
    nerf_dataset_ray(ds, 0, 63.5f, -0.5f, o, d); /* top-right corner: +x, +y (y up) */
    CHECK(d[0] > 0.0f && d[1] > 0.0f && d[2] < 0.0f);
    CHECK(fabs(d[0] / -d[2] - 32.0 / f0) < 1e-6 && fabs(d[1] / -d[2] - 24.0 / f0) < 1e-6);
    nerf_dataset_destroy(ds);

    /* No size: intrinsics unresolved (0), width 0. fl_x with camera_angle_y (w, h per frame
     * would be needed for the angle). */
    const char *b =
        "{\"fl_x\": 50, \"frames\": [{\"file_path\": \"x\", \"transform_matrix\": " IDENT "}]}";
    CHECK_OK(nerf_dataset_parse_json(&ds, b, strlen(b), "b.json", &err), &err);
    CHECK_EQ_I64(nerf_dataset_width(ds), 0);
    CHECK(nerf_dataset_intrinsics(ds, 0).fx == 0.0f);
    CHECK(strcmp(nerf_dataset_json_path(ds), "b.json") == 0);
    nerf_dataset_destroy(ds);
    const char *c = "{\"fl_x\": 50, \"camera_angle_y\": 1.0, \"frames\": [{\"file_path\": \"x\","
                    " \"w\": 20, \"h\": 10, \"transform_matrix\": " IDENT "}]}";
    CHECK_OK(nerf_dataset_parse_json(&ds, c, strlen(c), "c.json", &err), &err);
    in = nerf_dataset_intrinsics(ds, 0);
    CHECK(in.fx == 50.0f && in.fy == (float)(5.0 / tan(0.5)));
    CHECK(in.cx == 10.0f && in.cy == 5.0f);
    nerf_dataset_destroy(ds);
    /* Frames disagreeing on w/h cannot load: parse says so. */
    const char *e = "{\"fl_x\": 50, \"frames\": [{\"file_path\": \"x\", \"w\": 20, \"h\": 10,"
                    " \"transform_matrix\": " IDENT "}, {\"file_path\": \"y\", \"w\": 10, \"h\":"
                    " 20, \"transform_matrix\": " IDENT "}]}";
    CHECK(expect_parse_error(e, ENG_E_FORMAT, "frames[1] is 10x20 but frames[0] is 20x10") == 0);
    return 0;
}

/* OpenCV's forward model (the test's own copy). */
static void distort_ref(double *xd, double *yd, double x, double y, const double k[4]) {
    const double r2 = x * x + y * y;
    const double rad = 1.0 + k[0] * r2 + k[1] * r2 * r2;
    *xd = x * rad + 2.0 * k[2] * x * y + k[3] * (r2 + 2.0 * x * x);
    *yd = y * rad + k[2] * (r2 + 2.0 * y * y) + 2.0 * k[3] * x * y;
}

static int test_undistort(void) {
    /* fox's coefficients, then a strong barrel lens. */
    const double ks[2][4] = {{0.0578421, -0.0805099, -0.000980296, 0.00015575},
                             {-0.3, 0.1, 0.01, -0.01}};
    double worst = 0.0;
    for (int c = 0; c < 2; c++) {
        nerf_intrinsics in = {
            1, 1, 0, 0, (float)ks[c][0], (float)ks[c][1], (float)ks[c][2], (float)ks[c][3]};
        const double k[4] = {in.k1, in.k2, in.p1, in.p2}; /* as the float struct holds them */
        for (int i = -6; i <= 6; i++) {
            for (int j = -6; j <= 6; j++) {
                const double x = 0.1 * i, y = 0.09 * j;
                double xd = 0, yd = 0, ux = 0, uy = 0;
                distort_ref(&xd, &yd, x, y, k);
                nerf_undistort(&ux, &uy, xd, yd, &in);
                worst = fmax(worst, fmax(fabs(ux - x), fabs(uy - y)));
            }
        }
    }
    fprintf(stderr, "undistort: worst error %.3g\n", worst);
    CHECK(worst < 1e-9);
    /* No coefficients: unchanged. */
    const nerf_intrinsics pin = {1, 1, 0, 0, 0, 0, 0, 0};
    double ux = 0, uy = 0;
    nerf_undistort(&ux, &uy, 0.3, -0.2, &pin);
    CHECK(ux == 0.3 && uy == -0.2);
    return 0;
}

/* A ray through a distorted pixel is the pinhole ray of the undistorted point. */
static int test_distorted_ray(void) {
    const char *json = "{\"fl_x\": 500, \"fl_y\": 400, \"cx\": 320.5, \"cy\": 240.25, \"w\": 640,"
                       " \"h\": 480, \"k1\": -0.2, \"k2\": 0.05, \"p1\": 0.001, \"p2\": -0.002,"
                       " \"frames\": [{\"file_path\": \"a\", \"transform_matrix\":"
                       " [[1,0,0,1],[0,1,0,2],[0,0,1,3],[0,0,0,1]]},"
                       " {\"file_path\": \"b\", \"transform_matrix\":"
                       " [[0,-1,0,0],[1,0,0,0],[0,0,1,0],[0,0,0,1]]}]}";
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    CHECK_OK(nerf_dataset_parse_json(&ds, json, strlen(json), NULL, &err), &err);
    const nerf_intrinsics in = nerf_dataset_intrinsics(ds, 0);
    const double k[4] = {in.k1, in.k2, in.p1, in.p2};
    double worst = 0.0;
    for (int i = -3; i <= 3; i++) {
        for (int j = -3; j <= 3; j++) {
            const double x = 0.18 * i, y = 0.15 * j; /* undistorted, y down */
            double xd = 0, yd = 0;
            distort_ref(&xd, &yd, x, y, k);
            const float px = (float)(500.0 * xd + 320.5 - 0.5);
            const float py = (float)(400.0 * yd + 240.25 - 0.5);
            const double n = sqrt(x * x + y * y + 1.0);
            const double want[2][3] = {{x / n, -y / n, -1.0 / n}, /* identity rotation */
                                       {y / n, x / n, -1.0 / n}}; /* 90 degrees about z */
            for (int f = 0; f < 2; f++) {
                float o[3], d[3];
                nerf_dataset_ray(ds, f, px, py, o, d);
                for (int c = 0; c < 3; c++)
                    worst = fmax(worst, fabs(d[c] - want[f][c]));
                if (f == 0)
                    CHECK(fabs(o[0] - 0.83) < 1e-6 && fabs(o[1] - 1.16) < 1e-6 &&
                          fabs(o[2] - 1.49) < 1e-6);
            }
        }
    }
    fprintf(stderr, "distorted rays: worst direction error %.3g\n", worst);
    /* px, py pass through float: 1e-5 pixels ~ 2e-8 here; the rest is float rounding. */
    CHECK(worst < 2e-6);
    nerf_dataset_destroy(ds);
    return 0;
}

/* ---- malformed input ----------------------------------------------------------------------- */

static int test_missing_file(void) {
    char path[1100];
    snprintf(path, sizeof path, "%s/nope.json", eng_test_tmpdir());
    CHECK(expect_load_error(path, ENG_E_IO, "nope.json", "no such file") == 0);
    const char *empty = tmp_sub("empty_folder");
    CHECK(expect_load_error(empty, ENG_E_IO, "transforms.json",
                            "the folder has no transforms*.json") == 0);
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    CHECK_EQ_I64(nerf_dataset_load(&ds, NULL, "", NULL, &err), ENG_E_INVALID_ARG);
    return 0;
}

static int test_not_json(void) {
    CHECK(expect_json_error("not_json", "{\"frames\": [1, 2", ENG_E_FORMAT, "not valid JSON",
                            NULL) == 0);
    CHECK(expect_json_error("not_json2", "\n\nframes", ENG_E_FORMAT, "line 3", NULL) == 0);
    CHECK(expect_json_error("json_array", "[1, 2]", ENG_E_FORMAT, "expected a JSON object",
                            "found an array") == 0);
    CHECK(expect_json_error("empty_json", "", ENG_E_FORMAT, "not valid JSON", NULL) == 0);
    return 0;
}

static int test_no_frames(void) {
    CHECK(expect_json_error("no_frames", "{\"camera_angle_x\": 0.5}", ENG_E_FORMAT,
                            "frames: missing", NULL) == 0);
    CHECK(expect_json_error("empty_frames", "{\"camera_angle_x\": 0.5, \"frames\": []}",
                            ENG_E_FORMAT, "frames: empty", NULL) == 0);
    CHECK(expect_json_error("frames_obj", "{\"camera_angle_x\": 0.5, \"frames\": {}}", ENG_E_FORMAT,
                            "frames: expected an array, found an object", NULL) == 0);
    CHECK(expect_json_error("frame_num", "{\"camera_angle_x\": 0.5, \"frames\": [3]}", ENG_E_FORMAT,
                            "frames[0]: expected an object", NULL) == 0);
    return 0;
}

static int test_matrix_3x4(void) {
    return expect_json_error("m3x4",
                             "{\"camera_angle_x\": 0.5, \"frames\": [{\"file_path\": \"a\", "
                             "\"transform_matrix\": [[1,0,0,0],[0,1,0,0],[0,0,1,0]]}]}",
                             ENG_E_FORMAT, "frames[0].transform_matrix: has 3 rows, expected 4",
                             NULL);
}

static int test_row_3(void) {
    CHECK(expect_json_error("row3",
                            "{\"camera_angle_x\": 0.5, \"frames\": [{\"file_path\": \"a\", "
                            "\"transform_matrix\": " IDENT "}, {\"file_path\": \"b\", "
                            "\"transform_matrix\": [[1,0,0,0],[0,1,0,0],[0,0,1],[0,0,0,1]]}]}",
                            ENG_E_FORMAT,
                            "frames[1].transform_matrix: row 2 has 3 numbers, "
                            "expected 4",
                            NULL) == 0);
    CHECK(expect_json_error("no_matrix",
                            "{\"camera_angle_x\": 0.5, \"frames\": [{\"file_path\": \"a\"}]}",
                            ENG_E_FORMAT, "frames[0].transform_matrix: missing", NULL) == 0);
    CHECK(expect_json_error("row_str",
                            "{\"camera_angle_x\": 0.5, \"frames\": [{\"file_path\": \"a\", "
                            "\"transform_matrix\": [[1,0,0,0],\"x\",[0,0,1,0],[0,0,0,1]]}]}",
                            ENG_E_FORMAT, "frames[0].transform_matrix: row 1 is a string",
                            NULL) == 0);
    return 0;
}

static int test_non_finite(void) {
    /* cJSON reads 1e999 as infinity (JSON has no NaN or Infinity literals). */
    CHECK(expect_json_error("inf_matrix",
                            "{\"camera_angle_x\": 0.5, \"frames\": [{\"file_path\": \"a\", "
                            "\"transform_matrix\": [[1,0,0,0],[0,1,0,1e999],[0,0,1,0],"
                            "[0,0,0,1]]}]}",
                            ENG_E_FORMAT, "frames[0].transform_matrix[1][3]: not finite",
                            NULL) == 0);
    CHECK(expect_json_error("inf_angle",
                            "{\"camera_angle_x\": -1e999, \"frames\": [{\"file_path\": \"a\", "
                            "\"transform_matrix\": " IDENT "}]}",
                            ENG_E_FORMAT, "camera_angle_x: not finite", NULL) == 0);
    /* Finite in double, not in float. */
    CHECK(expect_json_error("big_matrix",
                            "{\"camera_angle_x\": 0.5, \"frames\": [{\"file_path\": \"a\", "
                            "\"transform_matrix\": [[1,0,0,1e300],[0,1,0,0],[0,0,1,0],"
                            "[0,0,0,1]]}]}",
                            ENG_E_FORMAT,
                            "frames[0].transform_matrix[0][3]: outside float's "
                            "range",
                            NULL) == 0);
    CHECK(expect_json_error("str_matrix",
                            "{\"camera_angle_x\": 0.5, \"frames\": [{\"file_path\": \"a\", "
                            "\"transform_matrix\": [[1,0,0,0],[0,1,0,0],[0,0,\"1\",0],"
                            "[0,0,0,1]]}]}",
                            ENG_E_FORMAT,
                            "transform_matrix[2][2]: expected a number, found a "
                            "string",
                            NULL) == 0);
    CHECK(expect_json_error("singular",
                            "{\"camera_angle_x\": 0.5, \"frames\": [{\"file_path\": \"a\", "
                            "\"transform_matrix\": [[0,0,0,1],[0,0,0,0],[0,0,0,0],[0,0,0,1]]}]}",
                            ENG_E_FORMAT,
                            "frames[0].transform_matrix: the 3x3 rotation is "
                            "singular",
                            NULL) == 0);
    return 0;
}

static int test_negative_focal(void) {
    CHECK(expect_json_error("neg_focal",
                            "{\"fl_x\": -500, \"frames\": [{\"file_path\": \"a\", "
                            "\"transform_matrix\": " IDENT "}]}",
                            ENG_E_FORMAT, "fl_x: expected a positive focal length, found -500",
                            NULL) == 0);
    CHECK(expect_json_error("zero_focal_frame",
                            "{\"fl_x\": 500, \"frames\": [{\"file_path\": \"a\", \"fl_y\": 0, "
                            "\"transform_matrix\": " IDENT "}]}",
                            ENG_E_FORMAT, "frames[0].fl_y: expected a positive focal length",
                            NULL) == 0);
    return 0;
}

/* Each field's check, through the from-memory parser. */
static int test_bad_fields(void) {
#define FR "\"frames\": [{\"file_path\": \"a\", \"transform_matrix\": " IDENT "}]"
    CHECK(expect_parse_error("{\"fl_x\": 9, \"aabb_scale\": 3, " FR "}", ENG_E_FORMAT,
                             "aabb_scale: expected a power of two from 1 to 128, found 3") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"aabb_scale\": 256, " FR "}", ENG_E_FORMAT,
                             "aabb_scale") == 0);
    CHECK(expect_parse_error("{\"camera_angle_x\": 4, " FR "}", ENG_E_FORMAT,
                             "camera_angle_x: expected an angle in radians in (0, pi)") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"w\": 10.5, " FR "}", ENG_E_FORMAT,
                             "w: expected a whole number of pixels") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"h\": 100000, " FR "}", ENG_E_FORMAT, "h:") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"cx\": \"12\", " FR "}", ENG_E_FORMAT,
                             "cx: expected a number, found a string") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"scale\": 0, " FR "}", ENG_E_FORMAT,
                             "scale: expected a positive number") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"offset\": [1, 2], " FR "}", ENG_E_FORMAT,
                             "offset: expected an array of 3 numbers, found 2") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"offset\": [1, 2, null], " FR "}", ENG_E_FORMAT,
                             "offset[2]: expected a number, found null") == 0);
    CHECK(expect_parse_error("{\"w\": 9, " FR "}", ENG_E_FORMAT, "frames[0]: no focal length") ==
          0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"k3\": 0.1, " FR "}", ENG_E_UNSUPPORTED, "k3") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"is_fisheye\": true, " FR "}", ENG_E_UNSUPPORTED,
                             "fisheye") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"frames\": [{\"transform_matrix\": " IDENT "}]}",
                             ENG_E_FORMAT, "frames[0].file_path: missing") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"frames\": [{\"file_path\": 7, "
                             "\"transform_matrix\": " IDENT "}]}",
                             ENG_E_FORMAT,
                             "frames[0].file_path: expected a string, found a "
                             "number") == 0);
    CHECK(expect_parse_error("{\"fl_x\": 9, \"frames\": [{\"file_path\": \"\", "
                             "\"transform_matrix\": " IDENT "}]}",
                             ENG_E_FORMAT, "frames[0].file_path: 0 bytes") == 0);
#undef FR
    /* k3 = 0 and is_fisheye false are fine. */
    const char *ok = "{\"fl_x\": 9, \"k3\": 0, \"is_fisheye\": false, \"frames\": [{\"file_path\":"
                     " \"a\", \"transform_matrix\": " IDENT "}]}";
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    CHECK_OK(nerf_dataset_parse_json(&ds, ok, strlen(ok), NULL, &err), &err);
    nerf_dataset_destroy(ds);
    return 0;
}

#define CAM "\"camera_angle_x\": 0.8"
#define M_  "\"transform_matrix\": " IDENT

static int test_missing_image(void) {
    const char *dir = tmp_sub("missing_image");
    CHECK(write_png(dir, "a.png", 8, 6, 255, 0, 0) == 0);
    CHECK(write_png(dir, "c.png", 8, 6, 0, 0, 255) == 0);
    CHECK(write_text(dir, "transforms.json",
                     "{" CAM ", \"frames\": [{\"file_path\": \"a\", " M_ "},"
                     " {\"file_path\": \"./b\", " M_ "}, {\"file_path\": \"./c.png\", " M_
                     "}]}") == 0);
    log_capture cap = {0};
    eng_ctx *ctx = make_ctx(&cap);
    CHECK(ctx != NULL);
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    CHECK_OK(nerf_dataset_load(&ds, ctx, dir, NULL, &err), &err);
    CHECK_EQ_I64(cap.n_warn, 1);
    CHECK_CONTAINS(cap.last, "1 of 3 frames have no image file and are skipped: ./b");
    CHECK_CONTAINS(cap.last, "transforms.json");
    CHECK_EQ_I64(nerf_dataset_count(ds), 2);
    CHECK_EQ_I64(nerf_dataset_skipped(ds), 1);
    CHECK(ends_with(nerf_dataset_frame_path(ds, 0), "/a.png"));
    CHECK(ends_with(nerf_dataset_frame_path(ds, 1), "/c.png"));
    CHECK_EQ_I64(nerf_dataset_frame_index(ds, 1), 2);
    const uint8_t *p0 = nerf_dataset_rgba(ds, 0), *p1 = nerf_dataset_rgba(ds, 1);
    CHECK(p0[0] == 255 && p0[2] == 0 && p0[3] == 255);
    CHECK(p1[0] == 0 && p1[2] == 255 && p1 == p0 + 8 * 6 * 4);
    CHECK(nerf_dataset_intrinsics(ds, 1).cx == 4.0f);
    nerf_dataset_destroy(ds);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_all_missing(void) {
    const char *dir = tmp_sub("all_missing");
    CHECK(write_text(dir, "transforms.json",
                     "{" CAM ", \"frames\": [{\"file_path\": \"x\", " M_ "},"
                     " {\"file_path\": \"y.jpg\", " M_ "}]}") == 0);
    return expect_load_error(dir, ENG_E_IO, "none of the 2 frames' images exist", "x y.jpg");
}

static int test_mixed_sizes(void) {
    const char *dir = tmp_sub("mixed_sizes");
    CHECK(write_png(dir, "a.png", 8, 6, 1, 2, 3) == 0);
    CHECK(write_png(dir, "b.png", 6, 8, 1, 2, 3) == 0);
    CHECK(write_text(dir, "transforms.json",
                     "{" CAM ", \"frames\": [{\"file_path\": \"a.png\", " M_ "},"
                     " {\"file_path\": \"b.png\", " M_ "}]}") == 0);
    CHECK(expect_load_error(dir, ENG_E_FORMAT, "frames of different sizes: frames[1]", "6x8") == 0);
    CHECK(expect_load_error(dir, ENG_E_FORMAT, "b.png) is 6x8 but frames[0] (", "a.png) is 8x6") ==
          0);
    return 0;
}

static int test_size_mismatch(void) {
    const char *dir = tmp_sub("size_mismatch");
    CHECK(write_png(dir, "a.png", 8, 6, 1, 2, 3) == 0);
    CHECK(write_text(dir, "transforms.json",
                     "{" CAM ", \"w\": 16, \"h\": 12, \"frames\": [{\"file_path\": \"a.png\", " M_
                     "}]}") == 0);
    return expect_load_error(dir, ENG_E_FORMAT, "frames[0]: the file says w 16, h 12",
                             "a.png is 8x6");
}

static int test_bad_image(void) {
    /* Not an image at all: the header check fails. */
    const char *dir = tmp_sub("bad_image");
    CHECK(write_png(dir, "a.png", 8, 6, 1, 2, 3) == 0);
    CHECK(write_text(dir, "b.png", "this is not a PNG") == 0);
    CHECK(write_text(dir, "transforms.json",
                     "{" CAM ", \"frames\": [{\"file_path\": \"a.png\", " M_ "},"
                     " {\"file_path\": \"b.png\", " M_ "}]}") == 0);
    CHECK(expect_load_error(dir, ENG_E_FORMAT, "frames[1].file_path", "b.png") == 0);
    /* A PNG cut short: the header reads, the decode fails (on the pool). */
    const char *dir2 = tmp_sub("truncated_image");
    char src[1200], dst[1200];
    CHECK(write_png(dir2, "a.png", 64, 48, 1, 2, 3) == 0);
    snprintf(src, sizeof src, "%s/a.png", dir2);
    snprintf(dst, sizeof dst, "%s/b.png", dir2);
    FILE *f = fopen(src, "rb");
    CHECK(f != NULL);
    char buf[4096];
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(n > 60);
    f = fopen(dst, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(buf, 1, 50, f) == 50);
    fclose(f);
    CHECK(write_text(dir2, "transforms.json",
                     "{" CAM ", \"frames\": [{\"file_path\": \"a.png\", " M_ "},"
                     " {\"file_path\": \"b.png\", " M_ "}]}") == 0);
    log_capture cap = {0};
    eng_ctx *ctx = make_ctx(&cap);
    CHECK(ctx != NULL);
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    const int rc = nerf_dataset_load(&ds, ctx, dir2, NULL, &err);
    fprintf(stderr, "  -> %d: %s\n", rc, err.msg);
    CHECK(rc == ENG_E_FORMAT && ds == NULL);
    CHECK_CONTAINS(err.msg, "nerf_dataset_load");
    CHECK_CONTAINS(err.msg, "frames[1].file_path");
    CHECK_CONTAINS(err.msg, "b.png");
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_split_folder(void) {
    const char *dir = tmp_sub("split");
    CHECK(write_png(dir, "a.png", 4, 4, 1, 2, 3) == 0);
    CHECK(write_text(dir, "transforms_train.json",
                     "{" CAM ", \"frames\": [{\"file_path\": \"a\", " M_ "}]}") == 0);
    CHECK(expect_load_error(dir, ENG_E_IO, "transforms.json: no such file",
                            "the folder has transforms_train.json") == 0);
    nerf_load_params lp;
    nerf_load_params_init(&lp);
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    lp.split = "train";
    CHECK_OK(nerf_dataset_load(&ds, NULL, dir, &lp, &err), &err);
    CHECK(ends_with(nerf_dataset_json_path(ds), "transforms_train.json"));
    nerf_dataset_destroy(ds);
    lp.split = "val";
    CHECK(nerf_dataset_load(&ds, NULL, dir, &lp, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "transforms_val.json: no such file");
    lp.split = "../x";
    CHECK(nerf_dataset_load(&ds, NULL, dir, &lp, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "split");
    /* "train" falls back to transforms.json (instant-ngp captures have only that). */
    const char *dir2 = tmp_sub("split_fallback");
    CHECK(write_png(dir2, "a.png", 4, 4, 1, 2, 3) == 0);
    CHECK(write_text(dir2, "transforms.json",
                     "{" CAM ", \"frames\": [{\"file_path\": \"a\", " M_ "}]}") == 0);
    lp.split = "train";
    CHECK_OK(nerf_dataset_load(&ds, NULL, dir2, &lp, &err), &err);
    CHECK(ends_with(nerf_dataset_json_path(ds), "/transforms.json"));
    CHECK_EQ_I64(nerf_dataset_count(ds), 1);
    nerf_dataset_destroy(ds);
    return 0;
}

/* ---- COLMAP -------------------------------------------------------------------------------- */

/* Unit quaternion (w, x, y, z) of a rotation matrix (rows). */
static void rot_to_quat(double q[4], const double r[9]) {
    const double tr = r[0] + r[4] + r[8];
    if (tr > 0) {
        const double s = 2.0 * sqrt(tr + 1.0);
        q[0] = 0.25 * s;
        q[1] = (r[7] - r[5]) / s;
        q[2] = (r[2] - r[6]) / s;
        q[3] = (r[3] - r[1]) / s;
    } else if (r[0] > r[4] && r[0] > r[8]) {
        const double s = 2.0 * sqrt(1.0 + r[0] - r[4] - r[8]);
        q[0] = (r[7] - r[5]) / s;
        q[1] = 0.25 * s;
        q[2] = (r[1] + r[3]) / s;
        q[3] = (r[2] + r[6]) / s;
    } else if (r[4] > r[8]) {
        const double s = 2.0 * sqrt(1.0 + r[4] - r[0] - r[8]);
        q[0] = (r[2] - r[6]) / s;
        q[1] = (r[1] + r[3]) / s;
        q[2] = 0.25 * s;
        q[3] = (r[5] + r[7]) / s;
    } else {
        const double s = 2.0 * sqrt(1.0 + r[8] - r[0] - r[4]);
        q[0] = (r[3] - r[1]) / s;
        q[1] = (r[2] + r[6]) / s;
        q[2] = (r[5] + r[7]) / s;
        q[3] = 0.25 * s;
    }
}

static void cross(double out[3], const double a[3], const double b[3]) {
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

static void normalize(double v[3]) {
    const double n = norm3(v);
    for (int k = 0; k < 3; k++)
        v[k] /= n;
}

/* A synthetic capture in COLMAP's world: cameras around look-at point L, in the plane through L
 * perpendicular to the world's up U, each upright (its image y points along -U). */
typedef struct synth_cam {
    double c[3];   /* centre */
    double fwd[3]; /* viewing direction (COLMAP +z) */
    double q[4];   /* world-to-camera */
    double t[3];
} synth_cam;

static const double synth_L[3] = {1.0, -2.0, 0.5};

static void synth_make(synth_cam *cams, int n, const double *radii) {
    double up[3] = {0.2, -0.9, 0.3}, e1[3], e2[3];
    normalize(up);
    const double any[3] = {1, 0, 0};
    cross(e1, up, any);
    normalize(e1);
    cross(e2, up, e1);
    for (int i = 0; i < n; i++) {
        synth_cam *s = &cams[i];
        const double th = 0.4 + 2.1 * i;
        double r[9], y[3], x[3];
        for (int k = 0; k < 3; k++) {
            s->c[k] = synth_L[k] + radii[i] * (cos(th) * e1[k] + sin(th) * e2[k]);
            s->fwd[k] = synth_L[k] - s->c[k];
            y[k] = -up[k];
        }
        normalize(s->fwd);
        cross(x, y, s->fwd); /* x = y cross z: right-handed rows x, y, z */
        for (int k = 0; k < 3; k++) {
            r[k] = x[k];
            r[3 + k] = y[k];
            r[6 + k] = s->fwd[k];
        }
        rot_to_quat(s->q, r);
        for (int k = 0; k < 3; k++) /* t = -R C */
            s->t[k] = -(r[3 * k] * s->c[0] + r[3 * k + 1] * s->c[1] + r[3 * k + 2] * s->c[2]);
    }
}

static int read_json_file(cJSON **out, const char *path) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    static char buf[1 << 16];
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    *out = cJSON_Parse(buf);
    CHECK(*out != NULL);
    return 0;
}

/* No "*.tmp.*" left in dir. */
static int no_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.") != NULL) found = 1;
    closedir(d);
    CHECK(!found);
    return 0;
}

static int test_import(void) {
    const char *root = tmp_sub("colmap");
    char sparse[1200], images[1200], sub[1300], scene_dir[1200], out[1300], text[4096];
    snprintf(sparse, sizeof sparse, "%s/sparse", root);
    mkdir(sparse, 0700);
    snprintf(sparse, sizeof sparse, "%s/sparse/0", root);
    mkdir(sparse, 0700);
    snprintf(images, sizeof images, "%s/images", root);
    mkdir(images, 0700);
    snprintf(sub, sizeof sub, "%s/sub", images);
    mkdir(sub, 0700);
    snprintf(scene_dir, sizeof scene_dir, "%s/scene", root);
    mkdir(scene_dir, 0700);
    snprintf(out, sizeof out, "%s/transforms.json", scene_dir);
    CHECK(write_png(images, "a.png", 32, 24, 200, 0, 0) == 0);
    CHECK(write_png(images, "b b.png", 32, 24, 0, 200, 0) == 0);
    CHECK(write_png(sub, "c.png", 32, 24, 0, 0, 200) == 0);

    const double radii[3] = {2.0, 3.0, 4.0}; /* mean 3: scaled by 4/3 */
    synth_cam sc[3];
    synth_make(sc, 3, radii);
    CHECK(write_text(sparse, "cameras.txt",
                     "# Camera list with one line of data per camera:\n"
                     "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
                     "# Number of cameras: 3\n"
                     "1 PINHOLE 32 24 30 28 16 12\n"
                     "\n"
                     "2 SIMPLE_RADIAL 32 24 29 16 12 0.01\r\n"
                     "3 OPENCV 32 24 30 31 15.5 12.5 0.01 -0.002 0.0005 -0.0003\n") == 0);
    /* File order 3, 1, 2 (frames come out sorted by name); the first has 2-D points, the
     * second an empty points line, the last no points line at all (the file ends). */
    const char *names[3] = {"a.png", "b b.png", "sub/c.png"};
    const int order[3] = {2, 0, 1};
    size_t used = (size_t)snprintf(text, sizeof text,
                                   "# Image list with two lines of data per image:\n"
                                   "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                                   "#   POINTS2D[] as (X, Y, POINT3D_ID)\n");
    for (int j = 0; j < 3; j++) {
        const int i = order[j];
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 "%d %.17g %.17g %.17g %.17g %.17g %.17g %.17g %d %s\n%s", i + 1,
                                 sc[i].q[0], sc[i].q[1], sc[i].q[2], sc[i].q[3], sc[i].t[0],
                                 sc[i].t[1], sc[i].t[2], i + 1, names[i],
                                 j == 0   ? "1.5 2.5 -1 3.5 4.5 7\n"
                                 : j == 1 ? "\n"
                                          : "");
    }
    CHECK(write_text(sparse, "images.txt", text) == 0);
    eng_err err = {0};
    CHECK_OK(nerf_colmap_import(sparse, images, out, &err), &err);
    CHECK(no_tmp_files(scene_dir) == 0);

    /* The file: frames by name, paths relative to the JSON's folder, the transform. */
    cJSON *j = NULL;
    CHECK(read_json_file(&j, out) == 0);
    const cJSON *frames = cJSON_GetObjectItem(j, "frames");
    CHECK(cJSON_GetArraySize(frames) == 3);
    CHECK(cJSON_GetObjectItem(j, "fl_x") == NULL); /* three cameras: per frame */
    CHECK(cJSON_GetObjectItem(j, "aabb_scale")->valuedouble == NERF_COLMAP_AABB_SCALE);
    const char *want_paths[3] = {"../images/a.png", "../images/b b.png", "../images/sub/c.png"};
    for (int i = 0; i < 3; i++) {
        const cJSON *fr = cJSON_GetArrayItem(frames, i);
        CHECK(strcmp(cJSON_GetObjectItem(fr, "file_path")->valuestring, want_paths[i]) == 0);
        CHECK(cJSON_GetObjectItem(fr, "colmap_image_id")->valuedouble == i + 1);
    }
    double m[12];
    const cJSON *mt = cJSON_GetObjectItem(j, "colmap_transform");
    CHECK(cJSON_GetArraySize(mt) == 4);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            m[4 * r + c] = cJSON_GetArrayItem(cJSON_GetArrayItem(mt, r), c)->valuedouble;
    cJSON_Delete(j);

    nerf_dataset *ds = NULL;
    CHECK_OK(nerf_dataset_load(&ds, NULL, scene_dir, NULL, &err), &err);
    CHECK_EQ_I64(nerf_dataset_count(ds), 3);
    CHECK(ends_with(nerf_dataset_frame_path(ds, 1), "images/b b.png"));
    CHECK(nerf_dataset_rgba(ds, 2)[2] == 200);
    const nerf_intrinsics want_in[3] = {{30, 28, 16, 12, 0, 0, 0, 0},
                                        {29, 29, 16, 12, 0.01f, 0, 0, 0},
                                        {30, 31, 15.5f, 12.5f, 0.01f, -0.002f, 0.0005f, -0.0003f}};
    const double centre[3] = {0.5, 0.5, 0.5};
    for (int i = 0; i < 3; i++) {
        const nerf_intrinsics in = nerf_dataset_intrinsics(ds, i);
        CHECK(memcmp(&in, &want_in[i], sizeof in) == 0);
        float o[3], d[3], c2w[12];
        nerf_dataset_ray(ds, i, in.cx - 0.5f, in.cy - 0.5f, o, d); /* the principal point */
        /* Through the known camera centre, mapped by colmap_transform into model space. */
        double want_o[3], want_d[3];
        for (int r = 0; r < 3; r++) {
            want_o[r] = 0.33 * (m[4 * r] * sc[i].c[0] + m[4 * r + 1] * sc[i].c[1] +
                                m[4 * r + 2] * sc[i].c[2] + m[4 * r + 3]) +
                        0.5;
            want_d[r] =
                m[4 * r] * sc[i].fwd[0] + m[4 * r + 1] * sc[i].fwd[1] + m[4 * r + 2] * sc[i].fwd[2];
        }
        normalize(want_d);
        for (int r = 0; r < 3; r++) {
            CHECK(fabs(o[r] - want_o[r]) < 1e-5);
            CHECK(fabs(d[r] - want_d[r]) < 1e-5);
        }
        /* Independently of the transform: the look-at point is the origin, model centre; the
         * mean distance is 4 (model 1.32); the world's up is +z, so the cameras are upright and
         * look horizontally. */
        CHECK(line_dist(o, d, centre) < 1e-5);
        const double oc[3] = {o[0] - 0.5, o[1] - 0.5, o[2] - 0.5};
        CHECK(fabs(norm3(oc) - 0.33 * 4.0 / 3.0 * radii[i]) < 1e-5);
        CHECK(fabs(d[2]) < 1e-6);
        nerf_dataset_c2w(ds, i, c2w);
        CHECK(fabs(c2w[1]) < 1e-6 && fabs(c2w[5]) < 1e-6 && fabs(c2w[9] - 1.0) < 1e-6);
    }
    nerf_dataset_destroy(ds);

    /* Missing model files: the path; a binary model: the hint. */
    CHECK(nerf_colmap_import(images, images, out, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "cameras.txt: no such file");
    CHECK(write_text(images, "cameras.bin", "x") == 0);
    CHECK(nerf_colmap_import(images, images, out, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "model_converter");
    /* An output folder that does not exist. */
    char bad_out[1400];
    snprintf(bad_out, sizeof bad_out, "%s/no/such/dir/transforms.json", root);
    CHECK(nerf_colmap_import(sparse, images, bad_out, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "no/such/dir");
    return 0;
}

static int test_import_one_camera(void) {
    const char *root = tmp_sub("colmap1");
    char out[1200], text[2048];
    CHECK(write_png(root, "p.png", 20, 10, 9, 9, 9) == 0);
    CHECK(write_png(root, "q.png", 20, 10, 9, 9, 9) == 0);
    const double radii[2] = {1.0, 1.0};
    synth_cam sc[2];
    synth_make(sc, 2, radii);
    CHECK(write_text(root, "cameras.txt", "7 SIMPLE_PINHOLE 20 10 15 10 5\n") == 0);
    snprintf(text, sizeof text,
             "4 %.17g %.17g %.17g %.17g %.17g %.17g %.17g 7 q.png\n\n"
             "3 %.17g %.17g %.17g %.17g %.17g %.17g %.17g 7 p.png\n\n\n",
             sc[1].q[0], sc[1].q[1], sc[1].q[2], sc[1].q[3], sc[1].t[0], sc[1].t[1], sc[1].t[2],
             sc[0].q[0], sc[0].q[1], sc[0].q[2], sc[0].q[3], sc[0].t[0], sc[0].t[1], sc[0].t[2]);
    CHECK(write_text(root, "images.txt", text) == 0);
    snprintf(out, sizeof out, "%s/transforms.json", root);
    eng_err err = {0};
    CHECK_OK(nerf_colmap_import(root, root, out, &err), &err);
    cJSON *j = NULL;
    CHECK(read_json_file(&j, out) == 0);
    CHECK(cJSON_GetObjectItem(j, "fl_x")->valuedouble == 15.0);
    CHECK(cJSON_GetObjectItem(j, "w")->valuedouble == 20.0);
    CHECK(fabs(cJSON_GetObjectItem(j, "camera_angle_x")->valuedouble - 2.0 * atan(10.0 / 15.0)) <
          1e-12);
    const cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "frames"), 0);
    CHECK(strcmp(cJSON_GetObjectItem(f0, "file_path")->valuestring, "p.png") == 0);
    CHECK(cJSON_GetObjectItem(f0, "fl_x") == NULL);
    cJSON_Delete(j);
    nerf_dataset *ds = NULL;
    CHECK_OK(nerf_dataset_load(&ds, NULL, out, NULL, &err), &err);
    CHECK_EQ_I64(nerf_dataset_count(ds), 2);
    for (int i = 0; i < 2; i++) {
        const nerf_intrinsics in = nerf_dataset_intrinsics(ds, i);
        CHECK(in.fx == 15.0f && in.fy == 15.0f && in.cx == 10.0f && in.cy == 5.0f);
        /* Two cameras facing each other across L (angles 0.4 and 2.5 rad apart, radius 1):
         * both axes still pass through it. */
        float o[3], d[3];
        const double centre[3] = {0.5, 0.5, 0.5};
        nerf_dataset_ray(ds, i, 9.5f, 4.5f, o, d);
        CHECK(line_dist(o, d, centre) < 1e-5);
    }
    nerf_dataset_destroy(ds);
    return 0;
}

/* Expects the memory conversion to fail with code and both needles in the message. */
static int
expect_colmap_error(const char *cams, const char *imgs, int code, const char *n1, const char *n2) {
    char *json = NULL;
    eng_err err = {0};
    const int rc =
        nerf_colmap_convert_memory(&json, cams, strlen(cams), imgs, strlen(imgs), "img", &err);
    fprintf(stderr, "  -> %d: %s\n", rc, err.msg);
    CHECK(json == NULL);
    CHECK_EQ_I64(rc, code);
    CHECK_CONTAINS(err.msg, "nerf_colmap_convert_memory");
    CHECK_CONTAINS(err.msg, n1);
    if (n2 != NULL) CHECK_CONTAINS(err.msg, n2);
    return 0;
}

static int test_bad_models(void) {
    const char *cam = "1 PINHOLE 32 24 30 28 16 12\n";
    const char *img = "1 1 0 0 0 0 0 0 1 a.png\n\n";
    CHECK(expect_colmap_error("# c\n2 FOO 3 3 1 1 1\n", img, ENG_E_FORMAT,
                              "cameras.txt:2:", "unknown camera model \"FOO\"") == 0);
    CHECK(expect_colmap_error("1 FULL_OPENCV 3 3 1 1 1 1 0 0 0 0 0 0 0 0\n", img, ENG_E_UNSUPPORTED,
                              "cameras.txt:1: camera model FULL_OPENCV", "image_undistorter") == 0);
    CHECK(expect_colmap_error("1 PINHOLE 32 24 30 28 16\n", img, ENG_E_FORMAT,
                              "cameras.txt:1:", "takes 4 parameters, found 3") == 0);
    CHECK(expect_colmap_error("1 PINHOLE 32 24 30 -28 16 12\n", img, ENG_E_FORMAT,
                              "camera 1: focal length", NULL) == 0);
    CHECK(expect_colmap_error("1 PINHOLE 32 0 30 28 16 12\n", img, ENG_E_FORMAT, "WIDTH HEIGHT",
                              NULL) == 0);
    CHECK(expect_colmap_error("1 PINHOLE 32 24 30 nan 16 12\n", img, ENG_E_FORMAT,
                              "parameter 2 is not a finite number", NULL) == 0);
    CHECK(expect_colmap_error("x PINHOLE 32 24 30 28 16 12\n", img, ENG_E_FORMAT, "cameras.txt:1",
                              "CAMERA_ID") == 0);
    CHECK(expect_colmap_error("1 PINHOLE 32 24 30 28 16 12\n1 PINHOLE 3 3 1 1 1 1\n", img,
                              ENG_E_FORMAT, "cameras.txt:2: camera 1 is also on line 1",
                              NULL) == 0);
    CHECK(expect_colmap_error(cam, "1 1 0 0 0 0 0 0 9 a.png\n\n", ENG_E_FORMAT,
                              "images.txt:1: image 1 uses camera 9", "cameras.txt") == 0);
    CHECK(expect_colmap_error(cam, "# x\n1 0 0 0 0 0 0 0 1 a.png\n\n", ENG_E_FORMAT,
                              "images.txt:2: image 1: the quaternion has length 0", NULL) == 0);
    CHECK(expect_colmap_error(cam, "1 1 0 0 0 0 inf 0 1 a.png\n\n", ENG_E_FORMAT,
                              "images.txt:1: image 1: expected the translation", NULL) == 0);
    CHECK(expect_colmap_error(cam, "1 1 0 0 0 0 0 0 1\n\n", ENG_E_FORMAT, "NAME missing", NULL) ==
          0);
    CHECK(expect_colmap_error(cam, "1 1 0 0 0 0 0 0 1 a\n\n1 1 0 0 0 0 0 0 1 b\n", ENG_E_FORMAT,
                              "images.txt:3: image 1 is also on line 1", NULL) == 0);
    CHECK(expect_colmap_error(cam, "# only comments\n", ENG_E_FORMAT, "images.txt: no images",
                              NULL) == 0);
    CHECK(expect_colmap_error("1 PINHOLE 32 24 30 28 16 12\n2 PINHOLE 32 23 30 28 16 12\n",
                              "1 1 0 0 0 0 0 0 1 a\n\n2 1 0 0 0 0 0 1 2 b\n", ENG_E_FORMAT,
                              "images of different sizes: image 2 uses camera 2 (32x23)",
                              NULL) == 0);
    CHECK(expect_colmap_error("1 PINHOLE 32 24 0.0001 28 16 12\n", img, ENG_E_FORMAT,
                              "0.001 pixels or more", NULL) == 0);
    char nul[] = "1 1 0 0 0 0 0 0 1 a\0b\n\n";
    char *json = NULL;
    eng_err err = {0};
    CHECK(nerf_colmap_convert_memory(&json, cam, strlen(cam), nul, sizeof nul - 1, NULL, &err) ==
          ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "images.txt:1: contains a NUL byte");
    /* A valid model from memory: the prefix joins with '/'. */
    CHECK_OK(nerf_colmap_convert_memory(&json, cam, strlen(cam), img, strlen(img), "img", &err),
             &err);
    CHECK_CONTAINS(json, "\"img/a.png\"");
    nerf_colmap_free(json);
    CHECK_OK(nerf_colmap_convert_memory(&json, cam, strlen(cam), img, strlen(img), NULL, &err),
             &err);
    CHECK_CONTAINS(json, "\"a.png\"");
    /* One camera: it sits at the origin, unscaled (nothing to centre on). */
    nerf_dataset *ds = NULL;
    CHECK_OK(nerf_dataset_parse_json(&ds, json, strlen(json), NULL, &err), &err);
    float c2w[12];
    nerf_dataset_c2w(ds, 0, c2w);
    CHECK(c2w[3] == 0.0f && c2w[7] == 0.0f && c2w[11] == 0.0f);
    nerf_dataset_destroy(ds);
    nerf_colmap_free(json);
    return 0;
}

static const eng_test_case cases[] = {
    {"lego_train", test_lego_train},
    {"lego_val", test_lego_val},
    {"lego_file", test_lego_file},
    {"fox", test_fox},
    {"parse_intrinsics", test_parse_intrinsics},
    {"undistort", test_undistort},
    {"distorted_ray", test_distorted_ray},
    {"missing_file", test_missing_file},
    {"not_json", test_not_json},
    {"no_frames", test_no_frames},
    {"matrix_3x4", test_matrix_3x4},
    {"row_3", test_row_3},
    {"non_finite", test_non_finite},
    {"negative_focal", test_negative_focal},
    {"bad_fields", test_bad_fields},
    {"missing_image", test_missing_image},
    {"all_missing", test_all_missing},
    {"mixed_sizes", test_mixed_sizes},
    {"size_mismatch", test_size_mismatch},
    {"bad_image", test_bad_image},
    {"split_folder", test_split_folder},
    {"import", test_import},
    {"import_one_camera", test_import_one_camera},
    {"bad_models", test_bad_models},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
