/* nerf_colmap.h: COLMAP text models (cameras.txt, images.txt) to transforms.json, the
 * `nerf import-colmap` step (instant-ngp's colmap2nerf.py conventions, written anew in C).
 *
 *   eng_err err = {0};
 *   if (nerf_colmap_import("scene/sparse/0", "scene/images", "scene/transforms.json", &err) !=
 *       ENG_OK)
 *       fprintf(stderr, "%s\n", err.msg);
 *   // then nerf_dataset_load(&ds, ctx, "scene", NULL, &err)  (nerf_data.h)
 *
 * A sparse model in text form comes from `colmap model_converter --input_path sparse/0
 * --output_path sparse/0 --output_type TXT` (the mapper writes binary files).
 *
 * What it does, in order:
 *  1. Cameras: SIMPLE_PINHOLE (f cx cy), PINHOLE (fx fy cx cy), SIMPLE_RADIAL (f cx cy k),
 *     RADIAL (f cx cy k1 k2) and OPENCV (fx fy cx cy k1 k2 p1 p2) map to fl_x fl_y cx cy k1 k2
 *     p1 p2 (COLMAP's pixel centres are at +0.5, like ours, so cx, cy are copied as they are).
 *     Fisheye and other models are ENG_E_UNSUPPORTED (run `colmap image_undistorter` first: it
 *     writes PINHOLE cameras). When every image uses one camera its intrinsics (and w, h and
 *     camera_angle_x/y) go at the top level, else into each frame.
 *  2. Poses: images.txt gives world-to-camera (qw qx qy qz, tx ty tz): R from the unit
 *     quaternion, camera centre C = -R^T t, camera-to-world rotation R^T with the camera's y and
 *     z axes flipped (COLMAP/OpenCV cameras look down +z with y down; ours are OpenGL's).
 *  3. Up: the mean of the cameras' up vectors is rotated onto +z (the smallest rotation; none
 *     when the mean is ~0), so that captures made upright come out z-up like NeRF-synthetic.
 *  4. Centre: the point nearest to all optical axes in the least-squares sense (the point the
 *     cameras look at; instant-ngp averages pairwise nearest points, the same idea) becomes the
 *     origin. When the axes are (nearly) parallel that point is undefined and the mean camera
 *     centre is used instead.
 *  5. Scale: uniform, so that the mean camera distance from the origin is 4 (instant-ngp's
 *     choice; with the loader's default scale 0.33 and offset 0.5 the cameras sit at ~1.3 from
 *     the model-space centre and the object the cameras look at lands in the unit cube).
 * The whole map p_out = s * U * (p_colmap - c) is written to the file as "colmap_transform"
 * (4x4 rows, p_out = M p_colmap in homogeneous coordinates) so that COLMAP's points can be
 * brought along. aabb_scale is written as NERF_COLMAP_AABB_SCALE (real captures have a
 * background beyond the unit cube; lower it for a tight object capture). Frames are sorted by
 * image name; each keeps its "colmap_image_id".
 *
 * Input rules: '#' lines are comments; in images.txt the non-comment lines alternate between an
 * image line and its 2-D points line (which may be empty and is skipped unread). NAME is the rest
 * of the image line (it may hold spaces). Each ID must be unique; each image's CAMERA_ID must be
 * in cameras.txt; numbers must be finite (and within float's range), sizes within eng_image's
 * limits, focal lengths 0.001 pixels or more, quaternions nonzero, and every image's camera must
 * have the same size (the loader's rule: frames of different sizes are an error).
 * Limits: NERF_COLMAP_MAX_LINE bytes per camera or image line (points lines are any length),
 * NERF_COLMAP_MAX_ITEMS cameras and images.
 * Errors name the function, the file and the line: "nerf_colmap_import: sparse/cameras.txt:4:
 * camera model FULL_OPENCV is not supported (...)". Codes: ENG_E_IO (a file or folder cannot be
 * read, or the output cannot be written), ENG_E_FORMAT (malformed model), ENG_E_UNSUPPORTED
 * (camera model), ENG_E_OOM.
 *
 * Ownership: strings returned are freed with nerf_colmap_free. Threads: no shared state; safe
 * from any thread. */
#ifndef NERF_COLMAP_H
#define NERF_COLMAP_H

#include <stddef.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NERF_COLMAP_AABB_SCALE 16    /* written to the file (see above) */
#define NERF_COLMAP_MAX_LINE   65536 /* bytes in one camera or image line */
#define NERF_COLMAP_MAX_ITEMS  65536 /* cameras, and images */

/* Reads sparse_dir/cameras.txt and sparse_dir/images.txt and writes out_json atomically
 * (temporary file in the same folder, then rename). Each frame's file_path is images_dir/NAME
 * written relative to out_json's folder (both folders must exist). */
int nerf_colmap_import(const char *sparse_dir,
                       const char *images_dir,
                       const char *out_json,
                       eng_err *err);

/* The same conversion from memory (the fuzzing entry point): `cameras` and `images` hold the
 * two files' text (len bytes each, no NUL needed; borrowed). file_path is image_prefix/NAME
 * (image_prefix NULL or "": NAME). On ENG_OK *out_json is the JSON text, NUL-terminated (free
 * with nerf_colmap_free). Messages name "cameras.txt" and "images.txt". */
int nerf_colmap_convert_memory(char **out_json,
                               const char *cameras,
                               size_t cameras_len,
                               const char *images,
                               size_t images_len,
                               const char *image_prefix,
                               eng_err *err);

void nerf_colmap_free(char *json); /* NULL is a no-op */

#ifdef __cplusplus
}
#endif
#endif /* NERF_COLMAP_H */
