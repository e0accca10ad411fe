/* nerf_scene.h: the built-in procedural scene of `nerf demo`: a few analytic shapes, exactly
 * ray-traced into NeRF-synthetic style train and test views (transforms_*.json + RGBA PNGs).
 *
 *   nerf_scene_params p; nerf_scene_params_init(&p);
 *   p.width = p.height = 64;                                  // CI size
 *   eng_err err = {0};
 *   if (nerf_scene_write("work/demo", &p, ctx, &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
 *   // work/demo/transforms_train.json, transforms_test.json, train/r_0.png ..., test/r_0.png ...
 *   // then nerf_dataset_load() reads it like any NeRF-synthetic scene.
 *
 *   nerf_scene_camera cam;                                   // or render one view yourself
 *   nerf_scene_camera_get(&cam, &p, NERF_SCENE_TEST, 3, &err);
 *   nerf_scene_render(ctx, rgba8, NULL, depth, &cam, 2, &err); // (H, W, 4) u8, (H, W) f32
 *
 * Coordinates: world = model space (the JSON says "scale": 1.0, "offset": [0, 0, 0],
 * "aabb_scale": 1), so everything lies in the unit cube [0, 1]^3 around NERF_SCENE_CENTER
 * (0.5, 0.5, 0.5), inside a ball of radius NERF_SCENE_BOUND_RADIUS. World z is up (as in
 * Blender's NeRF-synthetic scenes). Cameras follow the NeRF-synthetic / OpenGL convention:
 * transform_matrix is camera-to-world, the camera looks down its -z axis with y up, and the ray
 * through image point (u, v) (pixel x covers u in [x, x + 1), rows go down, so pixel centres are
 * at x + 0.5) has the camera-space direction ((u - cx) / fx, -(v - cy) / fy, -1), rotated into
 * the world and normalised; its origin is the matrix's translation.
 *
 * The scene (NERF_SCENE_OBJECT_COUNT objects, disjoint, all convex, no background: rays that miss
 * everything get alpha 0):
 *   NERF_SCENE_OBJ_SPHERE    radius 0.15 at the centre, orange/cream checker (12 x 6 cells in
 *                            spherical coordinates about a tilted pole), glossy
 *   NERF_SCENE_OBJ_BOX       a rotated cube of side 0.16, each face its own colour
 *   NERF_SCENE_OBJ_CYLINDER  a tilted capped cylinder (radius 0.06, length 0.24), teal and white
 *                            bands along its axis, yellow caps
 *   NERF_SCENE_OBJ_BALL      a small green sphere (radius 0.07) above the centre sphere
 * Shading (baked, so the colours are a fixed function of the surface point, except the glossy
 * highlight): rgb = albedo (NERF_SCENE_AMBIENT + NERF_SCENE_DIFFUSE max(0, n.l) vis)
 *                   + ks max(0, n.h)^NERF_SCENE_SHININESS vis, clamped to [0, 1],
 * with l the unit light direction NERF_SCENE_LIGHT_DIR (towards the light, from above), h the
 * unit half vector of l and -ray direction, vis 0 when another object shadows the point (an
 * exact shadow ray) else 1, and ks NERF_SCENE_SPECULAR on the centre sphere, 0 elsewhere.
 *
 * Anti-aliasing: a pixel averages an N x N grid of rays at sub-pixel centres ((i + 0.5) / N).
 * alpha = the fraction of those that hit; rgb = the mean colour of the rays that hit (straight,
 * not premultiplied, as PNG stores it; 0 where alpha is 0), so compositing rgb a + bg (1 - a)
 * gives the supersampled image on any background. Depth is the distance along the unit ray
 * through the pixel centre to the first hit (+inf on a miss), not supersampled.
 *
 * The camera rig: n_train + n_test positions at distance `radius` from the centre on a Fibonacci
 * spiral (even area coverage) over the band of world z from -0.3 to 0.95 radius (the upper
 * hemisphere and some views from below), the whole spiral turned about z by an angle drawn
 * from `seed`; every camera looks at the centre, world z up in the image, with the same field of
 * view (camera_angle_x; square pixels, the principal point at the image centre). Test views
 * are spread evenly through the spiral (interleaved with the training views), so train and test
 * positions differ. nerf_scene_camera_get gives any view's camera in O(log n).
 *
 * Ownership: outputs are caller-allocated; nothing here allocates what the caller must free.
 * Threads: every function is safe from any thread (no state at all: the scene is constant);
 * render splits rows over the context's pool (results do not depend on the thread count).
 * Limits: sizes 1..NERF_SCENE_MAX_DIM, supersampling 1..NERF_SCENE_MAX_SUPERSAMPLE, views
 * 0..NERF_SCENE_MAX_VIEWS per split. */
#ifndef NERF_SCENE_H
#define NERF_SCENE_H

#include <stdint.h>

#include "eng_ctx.h"
#include "eng_err.h"
#include "eng_progress.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_SCENE_CENTER          0.5    /* each coordinate of the scene centre */
#define NERF_SCENE_BOUND_RADIUS    0.45   /* every object lies within this of the centre */
#define NERF_SCENE_MAX_DIM         8192   /* width and height */
#define NERF_SCENE_MAX_SUPERSAMPLE 16     /* N of the N x N rays per pixel */
#define NERF_SCENE_MAX_VIEWS       100000 /* per split */
#define NERF_SCENE_LIGHT_DIR                                                                       \
    { 0.35, -0.45, 0.82 } /* towards the light; normalised in use */
#define NERF_SCENE_AMBIENT   0.3
#define NERF_SCENE_DIFFUSE   0.7
#define NERF_SCENE_SPECULAR  0.25 /* ks of the glossy centre sphere */
#define NERF_SCENE_SHININESS 40.0

/* Objects, as nerf_scene_hit.object and nerf_scene_occupancy report them. */
typedef enum nerf_scene_object {
    NERF_SCENE_OBJ_SPHERE,   /* checkered, at the centre */
    NERF_SCENE_OBJ_BOX,      /* coloured faces */
    NERF_SCENE_OBJ_CYLINDER, /* striped, capped */
    NERF_SCENE_OBJ_BALL,     /* small, plain green */
    NERF_SCENE_OBJECT_COUNT
} nerf_scene_object;

typedef enum nerf_scene_split {
    NERF_SCENE_TRAIN, /* transforms_train.json, train/r_<i>.png */
    NERF_SCENE_TEST,  /* transforms_test.json, test/r_<i>.png */
    NERF_SCENE_SPLIT_COUNT
} nerf_scene_split;

/* What nerf_scene_write makes. */
typedef struct nerf_scene_params {
    int64_t width, height;  /* pixels; default 128 x 128 */
    int64_t n_train;        /* training views, >= 1; default 100 */
    int64_t n_test;         /* test views, >= 0 (0: no test split is written); default 20 */
    int64_t supersample;    /* N: N x N rays per pixel; default 2 */
    uint64_t seed;          /* turns the camera spiral about z; default 0 */
    double camera_angle_x;  /* horizontal field of view, radians, in (0, pi); default
                                0.6911112070083618 (lego's) */
    double radius;          /* camera distance from the centre, > NERF_SCENE_BOUND_RADIUS;
                                default 1.3 (lego's 4 * 0.33 in model space) */
    eng_progress *progress; /* optional: advanced by 1 per view written; borrowed */
} nerf_scene_params;

/* A pinhole camera (no distortion). */
typedef struct nerf_scene_camera {
    int64_t width, height; /* pixels */
    double fx, fy;         /* focal lengths, pixels */
    double cx, cy;         /* principal point, pixels from the top-left corner */
    double c2w[12];        /* camera-to-world 3 x 4, row-major: the first 3 rows of
                              transform_matrix (rotation columns: camera x, y, z; then origin) */
} nerf_scene_camera;

/* The first surface a ray meets. */
typedef struct nerf_scene_hit {
    double t;         /* distance along the (unit) ray */
    double p[3];      /* the point o + t d */
    double n[3];      /* unit outward normal there */
    double albedo[3]; /* the texture's colour there, in [0, 1] */
    double rgb[3];    /* the shaded colour seen along this ray, in [0, 1] */
    int object;       /* a nerf_scene_object */
} nerf_scene_hit;

/* ---- parameters and cameras ---------------------------------------------------------------- */

/* The defaults above. */
void nerf_scene_params_init(nerf_scene_params *p);
/* Checks every field against its range. Errors: ENG_E_INVALID_ARG naming the field, the value
 * and the range. */
int nerf_scene_params_check(const nerf_scene_params *p, eng_err *err);

/* Camera-to-world (3 x 4 row-major) of a camera at `eye` looking at `target`, its y axis
 * towards `up` (projected); when `up` is (nearly) parallel to the view direction, world y (or
 * x) is used instead. Errors: ENG_E_INVALID_ARG when a value is not finite or eye == target. */
int nerf_scene_look_at(
    double c2w[12], const double eye[3], const double target[3], const double up[3], eng_err *err);

/* The camera of view `index` of `split` as nerf_scene_write renders it and writes it to the
 * JSON. Errors: ENG_E_INVALID_ARG (bad params, named; index outside 0..count-1). */
int nerf_scene_camera_get(nerf_scene_camera *out,
                          const nerf_scene_params *p,
                          nerf_scene_split split,
                          int64_t index,
                          eng_err *err);

/* The world-space ray through pixel (px, py): origin o, unit direction d (see the top
 * comment). As nerf_dataset_ray counts them: integer px, py are pixel centres (image point
 * px + 0.5, py + 0.5), fractions points within a pixel. The camera must be valid (as
 * camera_get makes it). */
void nerf_scene_camera_ray(
    const nerf_scene_camera *cam, double px, double py, double o[3], double d[3]);

/* ---- the scene ------------------------------------------------------------------------------ */

/* Traces the ray o + t d (d of unit length), t > 0: returns 1 and fills *hit (may be NULL) with
 * the first surface met, shaded for this ray's direction, or returns 0 on a miss. */
int nerf_scene_trace(nerf_scene_hit *hit, const double o[3], const double d[3]);

/* 1 + the nerf_scene_object whose inside (surface included) holds the model-space point p, or 0
 * when p lies in empty space. */
int nerf_scene_occupancy(const float p[3]);

/* The exact signed distance from p to the scene's surfaces: negative inside an object, positive
 * outside (the union of the objects' exact distances; exact because they are disjoint). */
double nerf_scene_sdf(const double p[3]);

/* ---- rendering and writing ----------------------------------------------------------------- */

/* Renders one view with supersample x supersample rays per pixel into whichever outputs are
 * non-NULL: rgba8 (height, width, 4) u8, rgba32 (height, width, 4) f32 (both straight alpha,
 * from the same double-precision values: u8 = round(255 v), f32 = v), depth (height, width) f32
 * (+inf on a miss). Rows are split over eng_ctx_pool(ctx) (ctx NULL: the calling thread); the result is
 * identical for any thread count. Errors: ENG_E_INVALID_ARG (no output; size, focal length,
 * principal point or matrix not finite or out of range; supersample outside
 * 1..NERF_SCENE_MAX_SUPERSAMPLE), each named. */
int nerf_scene_render(eng_ctx *ctx,
                      uint8_t *rgba8,
                      float *rgba32,
                      float *depth,
                      const nerf_scene_camera *cam,
                      int64_t supersample,
                      eng_err *err);

/* Writes the scene as a NeRF-synthetic dataset into `dir` (created, with its parents, when
 * missing; files already there are replaced): train/r_<i>.png and test/r_<i>.png (RGBA),
 * then transforms_train.json and transforms_test.json (the latter only when n_test > 0) with
 * camera_angle_x, "scale": 1.0, "offset": [0, 0, 0], "aabb_scale": 1 and frames[] of
 * {"file_path": "./train/r_<i>", "transform_matrix": 4 x 4 rows, last 0 0 0 1}. Each file
 * appears atomically (temporary file + rename); the JSONs come last, so a dataset with JSONs is
 * complete. Rendering uses ctx's pool (ctx may be NULL). Errors: ENG_E_INVALID_ARG (params,
 * named), ENG_E_IO (a directory or file cannot be made: the path and the reason), ENG_E_OOM. */
int nerf_scene_write(const char *dir, const nerf_scene_params *p, eng_ctx *ctx, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* NERF_SCENE_H */
