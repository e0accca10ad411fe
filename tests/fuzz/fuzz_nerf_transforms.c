/* fuzz_nerf_transforms.c: libFuzzer harness for the NeRF dataset parsers. The first byte picks
 * what the rest is: even, a transforms.json (nerf_dataset_parse_json; every query and a few rays
 * of each frame are exercised); odd, a COLMAP text model, cameras.txt and images.txt split at
 * the first NUL byte (nerf_colmap_convert_memory), whose output must then parse as a
 * transforms.json. Returning an error is correct behaviour; a crash, leak, UB report, an error
 * without a message, or converter output that the loader rejects is the bug. Build with
 * -DENG_FUZZ=ON (clang); see tests/nerf_data.cmake. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nerf_colmap.h"
#include "nerf_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int rc, const eng_err *err) {
    if (rc != ENG_OK && (err->code != rc || err->msg[0] == '\0')) abort();
}

static void exercise(const nerf_dataset *ds) {
    volatile float sink = 0.0f;
    const int64_t n = nerf_dataset_count(ds);
    const int64_t w = nerf_dataset_width(ds), h = nerf_dataset_height(ds);
    float lo[3], hi[3], off[3];
    if (n < 1 || nerf_dataset_rgba(ds, 0) != NULL || nerf_dataset_pixels(ds) != NULL) abort();
    nerf_dataset_aabb(ds, lo, hi);
    nerf_dataset_offset(ds, off);
    sink += lo[0] + hi[0] + off[0] + nerf_dataset_scale(ds) + nerf_dataset_aabb_scale(ds);
    sink += (float)strlen(nerf_dataset_json_path(ds));
    for (int64_t i = 0; i < n; i++) {
        float m[12], o[3], d[3];
        const nerf_intrinsics in = nerf_dataset_intrinsics(ds, i);
        nerf_dataset_c2w(ds, i, m);
        nerf_dataset_c2w_model(ds, i, m);
        sink += in.fx + in.k1 + m[3] + (float)strlen(nerf_dataset_frame_path(ds, i));
        if (nerf_dataset_frame_index(ds, i) != i) abort(); /* nothing is skipped by a parse */
        if (w > 0 && h > 0) {
            if (!(in.fx > 0.0f && in.fy > 0.0f)) abort();
            const float pts[3][2] = {{0.0f, 0.0f}, {(float)w - 1, (float)h - 1}, {in.cx, in.cy}};
            for (int k = 0; k < 3; k++) {
                nerf_dataset_ray(ds, i, pts[k][0], pts[k][1], o, d);
                sink += o[0] + d[2];
            }
        }
    }
    (void)sink;
}

static void fuzz_json(const char *text, size_t len) {
    nerf_dataset *ds = NULL;
    eng_err err = {0};
    const int rc = nerf_dataset_parse_json(&ds, text, len, "fuzz.json", &err);
    check_err(rc, &err);
    if (rc == ENG_OK) {
        exercise(ds);
        nerf_dataset_destroy(ds);
    }
}

static void fuzz_colmap(const char *text, size_t len) {
    const char *nul = memchr(text, '\0', len);
    const size_t nc = nul != NULL ? (size_t)(nul - text) : len;
    const char *images = nul != NULL ? nul + 1 : text + len;
    const size_t ni = nul != NULL ? len - nc - 1 : 0;
    char *json = NULL;
    eng_err err = {0};
    const int rc = nerf_colmap_convert_memory(&json, text, nc, images, ni, "images", &err);
    check_err(rc, &err);
    if (rc != ENG_OK) return;
    nerf_dataset *ds = NULL;
    const int rc2 = nerf_dataset_parse_json(&ds, json, strlen(json), "converted.json", &err);
    if (rc2 != ENG_OK) {
        fprintf(stderr, "converter output does not parse: %s\n%s\n", err.msg, json);
        abort();
    }
    exercise(ds);
    nerf_dataset_destroy(ds);
    nerf_colmap_free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    /* An exact-size copy of the rest, so ASan sees any read past it. */
    char *copy = malloc(size);
    if (copy == NULL) return 0;
    memcpy(copy, data + 1, size - 1);
    if (data[0] % 2 == 0) {
        fuzz_json(copy, size - 1);
    } else {
        fuzz_colmap(copy, size - 1);
    }
    free(copy);
    return 0;
}
