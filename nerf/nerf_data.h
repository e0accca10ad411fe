/* nerf_data.h: NeRF datasets: NeRF-synthetic / instant-ngp transforms.json with its images, and
 * the rays through their pixels in model space.
 *
 *   nerf_load_params lp; nerf_load_params_init(&lp);
 *   lp.split = "train";                        // a folder's transforms_train.json
 *   eng_progress_params pp; eng_progress_params_init(&pp);
 *   lp.progress = &pp;                         // a "load" bar while the images decode
 *   nerf_dataset *ds = NULL; eng_err err = {0};
 *   if (nerf_dataset_load(&ds, ctx, "../shared/data/nerf/lego_400", &lp, &err) != ENG_OK) {
 *       fprintf(stderr, "%s\n", err.msg); return 1;
 *   }
 *   float o[3], d[3];
 *   nerf_dataset_ray(ds, 0, 200.0f, 100.0f, o, d);  // the ray through pixel (200, 100) of frame 0
 *   const uint8_t *px = nerf_dataset_rgba(ds, 0);   // (height, width, 4) RGBA bytes
 *   nerf_dataset_destroy(ds);
 *
 * The file (instant-ngp's format, which NeRF-synthetic's is a subset of). Top level:
 *   camera_angle_x, camera_angle_y   field of view in radians, (0, pi): fl = 0.5 * size / tan(a/2)
 *   fl_x, fl_y, cx, cy               focal lengths and principal point in pixels (fl_x wins over
 *                                    camera_angle_x; only one of x/y given: the other focal is the
 *                                    same; cx, cy default to w/2, h/2)
 *   w, h                             image size in pixels; optional, but must match the images
 *   k1, k2, p1, p2                   OpenCV radial-tangential distortion (default 0). k3, k4,
 *                                    "is_fisheye": true are ENG_E_UNSUPPORTED.
 *   aabb_scale                       a power of two 1..128 (default 1)
 *   scale, offset                    world -> model space (defaults 0.33 and [0.5, 0.5, 0.5])
 *   frames[]                         { file_path, transform_matrix, and any intrinsic above }
 * Each frame may override any intrinsic. The focal length is taken as a group: a frame that names
 * any of fl_x, fl_y, camera_angle_x, camera_angle_y uses only its own; cx, cy, k1, k2, p1, p2, w
 * and h override one by one. Other keys (rotation, sharpness, ...) are ignored.
 * file_path is relative to the JSON's folder (or absolute); it is tried as given, then with
 * ".png" appended (NeRF-synthetic writes "./train/r_0"). transform_matrix is 4x4 (rows), all
 * finite, camera-to-world with OpenGL camera axes (x right, y up, looking down -z); the bottom
 * row is not used. Frames whose image file does not exist are skipped with one warning (on the
 * context's logger) that lists them; it is an error if none remain.
 *
 * Conventions (see the NeRF groundwork notes): pixel (px, py) has py going down the image; the
 * ray through its centre has d_cam = ((px + 0.5 - cx) / fx, -(py + 0.5 - cy) / fy, -1), after
 * the lens distortion is undone (Newton iterations on the OpenCV model, in OpenCV's y-down
 * normalised coordinates, as instant-ngp and cv::undistortPoints do), d_world = R d_cam
 * normalised, origin = the matrix's translation. Model space: p_model = scale * p_world + offset;
 * the scene box is the cube [0.5 - aabb_scale/2, 0.5 + aabb_scale/2]^3. Directions are the same
 * in both spaces (scale is uniform). instant-ngp's axis cycling is not applied.
 *
 * Images: decoded in parallel on the context's pool as RGBA (JPEG and opaque PNG get alpha 255),
 * all frames in one contiguous block, frame after frame, each (height, width, 4) bytes, rows top
 * first. Every frame must have the same size (a clear error names both sizes and files), and
 * the file's w/h, when given, must match it.
 *
 * Limits: the JSON file at most NERF_DATASET_MAX_JSON_BYTES, at most NERF_DATASET_MAX_FRAMES
 * frames, images within eng_image's limits (ENG_IMAGE_MAX_DIM), file_path at most
 * NERF_DATASET_MAX_PATH bytes. Every number is checked (finite; focal lengths positive, sizes
 * positive integers, ...).
 *
 * Errors: ENG_E_INVALID_ARG (bad parameters), ENG_E_IO (file missing or unreadable),
 * ENG_E_FORMAT (not JSON, a field missing or malformed, sizes that disagree, an image that does
 * not decode), ENG_E_UNSUPPORTED (fisheye, k3/k4), ENG_E_OOM. Messages name the function, the
 * JSON file and the field, e.g. "nerf_dataset_load: lego/transforms_train.json:
 * frames[3].transform_matrix: row 2 has 3 numbers, expected 4".
 *
 * Ownership: the caller owns the dataset (nerf_dataset_destroy); pointers returned by the
 * accessors borrow from it. Threads: loading uses the context's pool; a loaded dataset is never
 * modified, so every query (rays included) is safe from any thread at once. */
#ifndef NERF_DATA_H
#define NERF_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "eng_ctx.h"
#include "eng_err.h"
#include "eng_progress.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_DATASET_MAX_JSON_BYTES ((size_t)64 << 20) /* transforms.json, bytes */
#define NERF_DATASET_MAX_FRAMES     65536              /* frames[] entries */
#define NERF_DATASET_MAX_PATH       4096               /* a frame's file_path, bytes */
#define NERF_DATASET_DEFAULT_SCALE  0.33f              /* instant-ngp's defaults */
#define NERF_DATASET_DEFAULT_OFFSET 0.5f

typedef struct nerf_dataset nerf_dataset; /* opaque */

typedef struct nerf_load_params {
    /* Which file a folder `path` means: NULL or "" -> transforms.json; "train", "val", "test"
     * (any name) -> transforms_<split>.json, except that "train" falls back to transforms.json
     * when the folder has no transforms_train.json (instant-ngp captures have one file). Ignored
     * when `path` is a file. Borrowed for the call. */
    const char *split;
    /* NULL: no progress bar. Else the settings of a bar counting decoded frames (copied; the
     * label defaults to "load", total is set to the frame count). Borrowed for the call. */
    const eng_progress_params *progress;
} nerf_load_params;

/* One frame's camera: pixels, OpenCV's k1 k2 p1 p2 model (0 when undistorted). */
typedef struct nerf_intrinsics {
    float fx, fy; /* focal lengths, pixels */
    float cx, cy; /* principal point, pixels from the image's top-left corner */
    float k1, k2; /* radial distortion */
    float p1, p2; /* tangential distortion */
} nerf_intrinsics;

/* split NULL, progress NULL. */
void nerf_load_params_init(nerf_load_params *p);

/* Loads a dataset: `path` is a transforms*.json file or a folder holding one (see split).
 * ctx may be NULL (decode on the calling thread only, warnings to stderr); else its pool decodes
 * and its logger gets the warning about missing images. p may be NULL (defaults).
 * On ENG_OK the caller owns *out. Errors: as above; *out is NULL on error. */
int nerf_dataset_load(
    nerf_dataset **out, eng_ctx *ctx, const char *path, const nerf_load_params *p, eng_err *err);

/* Parses and validates `len` bytes of transforms.json from memory, stopping before any file is
 * touched (the fuzzing entry point; nerf_dataset_load runs the same parser). `name` (NULL:
 * "(memory)") is used in messages. The result has every frame of the file (no image is looked
 * for), no pixels (nerf_dataset_rgba returns NULL), and width/height from the file's w/h (top
 * level or per frame; frames that disagree are ENG_E_FORMAT, as they could never load). When
 * some frame has no w/h, width and height are 0, the intrinsics all 0, and nerf_dataset_ray must
 * not be called. Errors: ENG_E_FORMAT, ENG_E_UNSUPPORTED, ENG_E_OOM. */
int nerf_dataset_parse_json(
    nerf_dataset **out, const char *json, size_t len, const char *name, eng_err *err);

void nerf_dataset_destroy(nerf_dataset *ds); /* NULL is a no-op */

/* ---- queries (frame: 0 <= frame < count; an index outside is a programmer error) ---------- */

int64_t nerf_dataset_count(const nerf_dataset *ds);  /* frames kept */
int64_t nerf_dataset_width(const nerf_dataset *ds);  /* pixels; every frame has it */
int64_t nerf_dataset_height(const nerf_dataset *ds); /* pixels */
/* Frames skipped because their image file does not exist. */
int64_t nerf_dataset_skipped(const nerf_dataset *ds);
/* The JSON file read, as given or found in the folder ("(memory)" or the parse name). */
const char *nerf_dataset_json_path(const nerf_dataset *ds);
/* The frame's image file as opened (after load), or its file_path as written (after parse). */
const char *nerf_dataset_frame_path(const nerf_dataset *ds, int64_t frame);
/* The frame's index in the file's frames[] (differs from `frame` once frames were skipped). */
int64_t nerf_dataset_frame_index(const nerf_dataset *ds, int64_t frame);
nerf_intrinsics nerf_dataset_intrinsics(const nerf_dataset *ds, int64_t frame);
/* Camera-to-world, rows of the 3x4 top of transform_matrix (row-major, out[4*r + c]), as in the
 * file (world space). */
void nerf_dataset_c2w(const nerf_dataset *ds, int64_t frame, float out[12]);
/* The same in model space: the rotation as is, the translation scale * t + offset. */
void nerf_dataset_c2w_model(const nerf_dataset *ds, int64_t frame, float out[12]);
/* The frame's pixels, (height, width, 4) RGBA bytes; NULL for a dataset from parse_json. */
const uint8_t *nerf_dataset_rgba(const nerf_dataset *ds, int64_t frame);
/* All frames' pixels, (count, height, width, 4) bytes in one block; NULL after parse_json. */
const uint8_t *nerf_dataset_pixels(const nerf_dataset *ds);
float nerf_dataset_aabb_scale(const nerf_dataset *ds);
float nerf_dataset_scale(const nerf_dataset *ds);
void nerf_dataset_offset(const nerf_dataset *ds, float out[3]);
/* The model-space scene box: lo = 0.5 - aabb_scale/2, hi = 0.5 + aabb_scale/2 on each axis. */
void nerf_dataset_aabb(const nerf_dataset *ds, float lo[3], float hi[3]);

/* The model-space ray through image point (px + 0.5, py + 0.5) of `frame`: integer px, py give
 * pixel centres, fractions points within a pixel (px, py in pixels, py down the image). o is the
 * camera centre, d a unit direction. Lens distortion is undone when any coefficient is nonzero.
 * Needs a known image size (always true after nerf_dataset_load). */
void nerf_dataset_ray(
    const nerf_dataset *ds, int64_t frame, float px, float py, float o[3], float d[3]);

/* The undistortion on its own: the undistorted normalised coordinates (x, y) whose OpenCV
 * k1 k2 p1 p2 distortion is (xd, yd) (y down, as in OpenCV), by Newton's method on the 2x2
 * Jacobian (at most 20 steps, stopping below 1e-12). Returns (xd, yd) unchanged when every
 * coefficient is 0. */
void nerf_undistort(double *x, double *y, double xd, double yd, const nerf_intrinsics *in);

#ifdef __cplusplus
}
#endif
#endif /* NERF_DATA_H */
