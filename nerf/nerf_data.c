/* nerf_data.c: transforms.json parsing and validation, image discovery and parallel decoding,
 * intrinsics, and model-space rays with OpenCV undistortion (see nerf_data.h). */
#define _POSIX_C_SOURCE 200809L
#include "nerf_data.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "eng_image.h"
#include "eng_sched.h"

/* The intrinsic fields of the file, top level or per frame. */
enum { F_FLX, F_FLY, F_AX, F_AY, F_CX, F_CY, F_K1, F_K2, F_P1, F_P2, F_W, F_H, F_COUNT };
static const char *const field_names[F_COUNT] = {
    "fl_x", "fl_y", "camera_angle_x", "camera_angle_y", "cx", "cy", "k1", "k2", "p1", "p2",
    "w",    "h"};
#define FOCAL_FIELDS ((1u << F_FLX) | (1u << F_FLY) | (1u << F_AX) | (1u << F_AY))

typedef struct cam_fields {
    double v[F_COUNT];
    uint32_t has; /* bit F_* set when the field is present */
} cam_fields;

typedef struct ds_frame {
    char *path;         /* the image file opened (load) or file_path as written (parse) */
    int64_t index;      /* in the file's frames[] */
    cam_fields cam;     /* the top level's fields with this frame's overrides */
    double c2w[12];     /* 3x4 rows, world space */
    nerf_intrinsics in; /* resolved once the size is known */
} ds_frame;

struct nerf_dataset {
    char *json_path;
    ds_frame *frames;
    int64_t n;
    int64_t skipped;
    int64_t width, height;
    float aabb_scale, scale, offset[3];
    uint8_t *pixels; /* (n, height, width, 4); NULL after parse_json */
};

/* Who is parsing what, for messages: "fn: name: field: ...". */
typedef struct parse_ctx {
    const char *fn;
    const char *name;
    eng_err *err;
} parse_ctx;

/* Finite and within float's range: what every stored number must be (converting a double
 * outside that range to float is undefined behaviour). */
static int fits_float(double v) {
    return isfinite(v) && fabs(v) <= (double)FLT_MAX;
}

void nerf_load_params_init(nerf_load_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
}

static char *dup_str(const char *s) {
    const size_t n = strlen(s);
    char *d = (char *)malloc(n + 1);
    if (d != NULL) memcpy(d, s, n + 1);
    return d;
}

static void dataset_free(nerf_dataset *ds) {
    if (ds == NULL) return;
    if (ds->frames != NULL) {
        for (int64_t i = 0; i < ds->n; i++)
            free(ds->frames[i].path);
    }
    free(ds->frames);
    free(ds->pixels);
    free(ds->json_path);
    free(ds);
}

void nerf_dataset_destroy(nerf_dataset *ds) {
    dataset_free(ds);
}

/* ---- JSON fields ------------------------------------------------------------------------- */

/* The JSON kind of an item, for "expected a number, found a string". */
static const char *json_kind(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "something else";
}

static const char *finite_text(double v) {
    return isfinite(v) ? "outside float's range" : "not finite";
}

/* A finite number at `key` of `obj`. Returns 0 when absent, 1 when read, or an ENG_E_* code
 * (with the message set; `where` is "" at the top level or "frames[3]."). */
static int
get_number(double *out, const cJSON *obj, const char *key, const char *where, const parse_ctx *pc) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL) return 0;
    if (!cJSON_IsNumber(v))
        return eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: %s%s: expected a number, found %s",
                           pc->fn, pc->name, where, key, json_kind(v));
    if (!fits_float(v->valuedouble))
        return eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: %s%s: %s (%g)", pc->fn, pc->name, where,
                           key, finite_text(v->valuedouble), v->valuedouble);
    *out = v->valuedouble;
    return 1;
}

/* Reads and checks the intrinsic fields of `obj` into *c (present ones only). */
static int
read_cam_fields(cam_fields *c, const cJSON *obj, const char *where, const parse_ctx *pc) {
    memset(c, 0, sizeof *c);
    for (int f = 0; f < F_COUNT; f++) {
        double v = 0.0;
        const int got = get_number(&v, obj, field_names[f], where, pc);
        if (got < 0) return got;
        if (got == 0) continue;
        const char *bad = NULL;
        switch (f) {
        case F_FLX:
        case F_FLY:
            if (!(v > 0.0) || !fits_float(v)) bad = "expected a positive focal length";
            break;
        case F_AX:
        case F_AY:
            if (!(v > 0.0 && v < 3.14159)) bad = "expected an angle in radians in (0, pi)";
            break;
        case F_W:
        case F_H:
            if (v != floor(v) || v < 1.0 || v > (double)ENG_IMAGE_MAX_DIM)
                return eng_err_set(pc->err, ENG_E_FORMAT,
                                   "%s: %s: %s%s: expected a whole number of pixels 1..%d, "
                                   "found %g",
                                   pc->fn, pc->name, where, field_names[f], ENG_IMAGE_MAX_DIM, v);
            break;
        default:
            if (!fits_float(v)) bad = "out of range";
            break;
        }
        if (bad != NULL)
            return eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: %s%s: %s, found %g", pc->fn,
                               pc->name, where, field_names[f], bad, v);
        c->v[f] = v;
        c->has |= 1u << f;
    }
    /* Models we cannot undo: refuse rather than give wrong rays. */
    static const char *const unsupported[] = {"k3", "k4"};
    for (int i = 0; i < 2; i++) {
        double v = 0.0;
        const int got = get_number(&v, obj, unsupported[i], where, pc);
        if (got < 0) return got;
        if (got == 1 && v != 0.0)
            return eng_err_set(pc->err, ENG_E_UNSUPPORTED,
                               "%s: %s: %s%s: %g: only the k1 k2 p1 p2 distortion model is "
                               "supported (undistort the images first)",
                               pc->fn, pc->name, where, unsupported[i], v);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "is_fisheye")))
        return eng_err_set(pc->err, ENG_E_UNSUPPORTED,
                           "%s: %s: %sis_fisheye: fisheye cameras are not supported", pc->fn,
                           pc->name, where);
    return ENG_OK;
}

/* A frame's fields: the frame's focal group if it names any focal field, else the top level's;
 * every other field from the frame when present, else from the top level. */
static cam_fields merge_cam(const cam_fields *top, const cam_fields *fr) {
    cam_fields m = *top;
    if (fr->has & FOCAL_FIELDS) {
        m.has &= ~FOCAL_FIELDS;
        for (int f = F_FLX; f <= F_AY; f++)
            m.v[f] = 0.0;
    }
    for (int f = 0; f < F_COUNT; f++) {
        if (fr->has & (1u << f)) {
            m.v[f] = fr->v[f];
            m.has |= 1u << f;
        }
    }
    return m;
}

/* Resolves a frame's intrinsics for a w x h image. The fields were range-checked when read. */
static int resolve_intrinsics(nerf_intrinsics *out,
                              const cam_fields *c,
                              int64_t w,
                              int64_t h,
                              int64_t index,
                              const parse_ctx *pc) {
    double fx = 0.0, fy = 0.0;
    int hx = 1, hy = 1;
    if (c->has & (1u << F_FLX)) {
        fx = c->v[F_FLX];
    } else if (c->has & (1u << F_AX)) {
        fx = 0.5 * (double)w / tan(0.5 * c->v[F_AX]);
    } else {
        hx = 0;
    }
    if (c->has & (1u << F_FLY)) {
        fy = c->v[F_FLY];
    } else if (c->has & (1u << F_AY)) {
        fy = 0.5 * (double)h / tan(0.5 * c->v[F_AY]);
    } else {
        hy = 0;
    }
    if (!hx) fx = fy;
    if (!hy) fy = fx;
    if (!(fx > 0.0 && fy > 0.0 && fits_float(fx) && fits_float(fy)))
        return eng_err_set(pc->err, ENG_E_FORMAT,
                           "%s: %s: frames[%lld]: focal lengths %g, %g for a %lldx%lld image are "
                           "not usable",
                           pc->fn, pc->name, (long long)index, fx, fy, (long long)w, (long long)h);
    out->fx = (float)fx;
    out->fy = (float)fy;
    out->cx = (float)((c->has & (1u << F_CX)) ? c->v[F_CX] : 0.5 * (double)w);
    out->cy = (float)((c->has & (1u << F_CY)) ? c->v[F_CY] : 0.5 * (double)h);
    out->k1 = (float)c->v[F_K1];
    out->k2 = (float)c->v[F_K2];
    out->p1 = (float)c->v[F_P1];
    out->p2 = (float)c->v[F_P2];
    return ENG_OK;
}

static int read_matrix(double c2w[12], const cJSON *fr, int64_t i, const parse_ctx *pc) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(fr, "transform_matrix");
    const long long li = (long long)i;
    double full[16];
    if (m == NULL)
        return eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: frames[%lld].transform_matrix: missing",
                           pc->fn, pc->name, li);
    if (!cJSON_IsArray(m))
        return eng_err_set(pc->err, ENG_E_FORMAT,
                           "%s: %s: frames[%lld].transform_matrix: expected 4 rows of 4 numbers, "
                           "found %s",
                           pc->fn, pc->name, li, json_kind(m));
    const int rows = cJSON_GetArraySize(m);
    if (rows != 4)
        return eng_err_set(pc->err, ENG_E_FORMAT,
                           "%s: %s: frames[%lld].transform_matrix: has %d rows, expected 4", pc->fn,
                           pc->name, li, rows);
    int r = 0;
    const cJSON *row = NULL;
    cJSON_ArrayForEach(row, m) {
        if (!cJSON_IsArray(row))
            return eng_err_set(pc->err, ENG_E_FORMAT,
                               "%s: %s: frames[%lld].transform_matrix: row %d is %s, expected 4 "
                               "numbers",
                               pc->fn, pc->name, li, r, json_kind(row));
        const int cols = cJSON_GetArraySize(row);
        if (cols != 4)
            return eng_err_set(pc->err, ENG_E_FORMAT,
                               "%s: %s: frames[%lld].transform_matrix: row %d has %d numbers, "
                               "expected 4",
                               pc->fn, pc->name, li, r, cols);
        int c = 0;
        const cJSON *v = NULL;
        cJSON_ArrayForEach(v, row) {
            if (!cJSON_IsNumber(v))
                return eng_err_set(pc->err, ENG_E_FORMAT,
                                   "%s: %s: frames[%lld].transform_matrix[%d][%d]: expected a "
                                   "number, found %s",
                                   pc->fn, pc->name, li, r, c, json_kind(v));
            if (!fits_float(v->valuedouble))
                return eng_err_set(pc->err, ENG_E_FORMAT,
                                   "%s: %s: frames[%lld].transform_matrix[%d][%d]: %s (%g)", pc->fn,
                                   pc->name, li, r, c, finite_text(v->valuedouble), v->valuedouble);
            full[4 * r + c] = v->valuedouble;
            c++;
        }
        r++;
    }
    memcpy(c2w, full, 12 * sizeof(double));
    /* A singular rotation would give zero or degenerate ray directions. */
    const double *a = c2w;
    const double det = a[0] * (a[5] * a[10] - a[6] * a[9]) - a[1] * (a[4] * a[10] - a[6] * a[8]) +
                       a[2] * (a[4] * a[9] - a[5] * a[8]);
    if (!(fabs(det) > 1e-6))
        return eng_err_set(pc->err, ENG_E_FORMAT,
                           "%s: %s: frames[%lld].transform_matrix: the 3x3 rotation is singular "
                           "(determinant %g)",
                           pc->fn, pc->name, li, det);
    return ENG_OK;
}

/* Parses a whole transforms.json into a new dataset (frame paths as written, no size yet). */
static int parse_json(nerf_dataset **out, const char *json, size_t len, const parse_ctx *pc) {
    int rc = ENG_OK;
    cJSON *root = NULL;
    nerf_dataset *ds = NULL;
    cam_fields top;
    char where[64];
    *out = NULL;
    if (len > NERF_DATASET_MAX_JSON_BYTES) {
        rc = eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: %zu bytes, over the limit of %zu", pc->fn,
                         pc->name, len, NERF_DATASET_MAX_JSON_BYTES);
        goto done;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (root == NULL) {
        /* cJSON points `end` at the failure (its global error pointer is not thread-safe). */
        size_t at = (end != NULL && end >= json && end <= json + len) ? (size_t)(end - json) : 0;
        long long line = 1;
        for (size_t k = 0; k < at; k++)
            line += json[k] == '\n';
        rc = eng_err_set(pc->err, ENG_E_FORMAT,
                         "%s: %s: not valid JSON (parse error at byte %zu, line %lld)", pc->fn,
                         pc->name, at, line);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        rc = eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: expected a JSON object, found %s", pc->fn,
                         pc->name, json_kind(root));
        goto done;
    }
    ds = (nerf_dataset *)calloc(1, sizeof *ds);
    if (ds == NULL) goto oom;
    ds->json_path = dup_str(pc->name);
    if (ds->json_path == NULL) goto oom;
    if ((rc = read_cam_fields(&top, root, "", pc)) != ENG_OK) goto done;

    double v = 0.0;
    int got = 0;
    ds->aabb_scale = 1.0f;
    if ((got = get_number(&v, root, "aabb_scale", "", pc)) < 0) {
        rc = got;
        goto done;
    }
    if (got) {
        const double l2 = log2(v);
        if (!(v >= 1.0 && v <= 128.0) || l2 != floor(l2)) {
            rc = eng_err_set(pc->err, ENG_E_FORMAT,
                             "%s: %s: aabb_scale: expected a power of two from 1 to 128, found %g",
                             pc->fn, pc->name, v);
            goto done;
        }
        ds->aabb_scale = (float)v;
    }
    ds->scale = NERF_DATASET_DEFAULT_SCALE;
    if ((got = get_number(&v, root, "scale", "", pc)) < 0) {
        rc = got;
        goto done;
    }
    if (got) {
        if (!(v > 0.0) || !fits_float(v)) {
            rc = eng_err_set(pc->err, ENG_E_FORMAT,
                             "%s: %s: scale: expected a positive number, found %g", pc->fn,
                             pc->name, v);
            goto done;
        }
        ds->scale = (float)v;
    }
    for (int k = 0; k < 3; k++)
        ds->offset[k] = NERF_DATASET_DEFAULT_OFFSET;
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(root, "offset");
    if (off != NULL) {
        if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 3) {
            char found[48];
            if (cJSON_IsArray(off))
                snprintf(found, sizeof found, "%d", cJSON_GetArraySize(off));
            else
                snprintf(found, sizeof found, "%s", json_kind(off));
            rc = eng_err_set(pc->err, ENG_E_FORMAT,
                             "%s: %s: offset: expected an array of 3 numbers, found %s", pc->fn,
                             pc->name, found);
            goto done;
        }
        for (int k = 0; k < 3; k++) {
            const cJSON *o = cJSON_GetArrayItem(off, k);
            if (!cJSON_IsNumber(o)) {
                rc = eng_err_set(pc->err, ENG_E_FORMAT,
                                 "%s: %s: offset[%d]: expected a number, found %s", pc->fn,
                                 pc->name, k, json_kind(o));
                goto done;
            }
            if (!fits_float(o->valuedouble)) {
                rc = eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: offset[%d]: %s (%g)", pc->fn,
                                 pc->name, k, finite_text(o->valuedouble), o->valuedouble);
                goto done;
            }
            ds->offset[k] = (float)o->valuedouble;
        }
    }

    const cJSON *frames = cJSON_GetObjectItemCaseSensitive(root, "frames");
    if (frames == NULL) {
        rc = eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: frames: missing (no frames)", pc->fn,
                         pc->name);
        goto done;
    }
    if (!cJSON_IsArray(frames)) {
        rc = eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: frames: expected an array, found %s",
                         pc->fn, pc->name, json_kind(frames));
        goto done;
    }
    const int64_t n = cJSON_GetArraySize(frames);
    if (n == 0) {
        rc = eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: frames: empty (no frames)", pc->fn,
                         pc->name);
        goto done;
    }
    if (n > NERF_DATASET_MAX_FRAMES) {
        rc = eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: frames: %lld frames, over the limit of %d",
                         pc->fn, pc->name, (long long)n, NERF_DATASET_MAX_FRAMES);
        goto done;
    }
    ds->frames = (ds_frame *)calloc((size_t)n, sizeof(ds_frame));
    if (ds->frames == NULL) goto oom;
    ds->n = n;
    int64_t i = 0;
    const cJSON *fr = NULL;
    cJSON_ArrayForEach(fr, frames) {
        ds_frame *f = &ds->frames[i];
        f->index = i;
        if (!cJSON_IsObject(fr)) {
            rc = eng_err_set(pc->err, ENG_E_FORMAT,
                             "%s: %s: frames[%lld]: expected an object, "
                             "found %s",
                             pc->fn, pc->name, (long long)i, json_kind(fr));
            goto done;
        }
        const cJSON *fp = cJSON_GetObjectItemCaseSensitive(fr, "file_path");
        if (!cJSON_IsString(fp)) {
            rc = eng_err_set(pc->err, ENG_E_FORMAT, "%s: %s: frames[%lld].file_path: %s%s", pc->fn,
                             pc->name, (long long)i,
                             fp == NULL ? "missing" : "expected a string, found ",
                             fp == NULL ? "" : json_kind(fp));
            goto done;
        }
        const size_t plen = strlen(fp->valuestring);
        if (plen == 0 || plen > NERF_DATASET_MAX_PATH) {
            rc = eng_err_set(pc->err, ENG_E_FORMAT,
                             "%s: %s: frames[%lld].file_path: %zu bytes, expected 1..%d", pc->fn,
                             pc->name, (long long)i, plen, NERF_DATASET_MAX_PATH);
            goto done;
        }
        f->path = dup_str(fp->valuestring);
        if (f->path == NULL) goto oom;
        if ((rc = read_matrix(f->c2w, fr, i, pc)) != ENG_OK) goto done;
        cam_fields own;
        snprintf(where, sizeof where, "frames[%lld].", (long long)i);
        if ((rc = read_cam_fields(&own, fr, where, pc)) != ENG_OK) goto done;
        f->cam = merge_cam(&top, &own);
        if (!(f->cam.has & FOCAL_FIELDS)) {
            rc = eng_err_set(pc->err, ENG_E_FORMAT,
                             "%s: %s: frames[%lld]: no focal length: expected fl_x, fl_y, "
                             "camera_angle_x or camera_angle_y (at the top level or in the frame)",
                             pc->fn, pc->name, (long long)i);
            goto done;
        }
        i++;
    }
    *out = ds;
    ds = NULL;
    goto done;
oom:
    rc = eng_err_set(pc->err, ENG_E_OOM, "%s: %s: out of memory", pc->fn, pc->name);
done:
    dataset_free(ds);
    cJSON_Delete(root);
    return rc;
}

/* The size the file gives frame f (0 when it gives none). */
static void json_size(int64_t *w, int64_t *h, const ds_frame *f) {
    *w = (f->cam.has & (1u << F_W)) ? (int64_t)f->cam.v[F_W] : 0;
    *h = (f->cam.has & (1u << F_H)) ? (int64_t)f->cam.v[F_H] : 0;
}

int nerf_dataset_parse_json(
    nerf_dataset **out, const char *json, size_t len, const char *name, eng_err *err) {
    int rc = ENG_OK;
    nerf_dataset *ds = NULL;
    const parse_ctx pc = {"nerf_dataset_parse_json", name != NULL ? name : "(memory)", err};
    ENG_ASSERT(out != NULL && (json != NULL || len == 0));
    *out = NULL;
    if ((rc = parse_json(&ds, json != NULL ? json : "", len, &pc)) != ENG_OK) goto done;
    /* The size, when every frame's w/h agree; else unknown (0). */
    int64_t w = 0, h = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        int64_t fw = 0, fh = 0;
        json_size(&fw, &fh, &ds->frames[i]);
        if (fw == 0 || fh == 0) {
            w = h = 0;
            break;
        }
        if (i > 0 && (fw != w || fh != h)) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "%s: %s: frames[%lld] is %lldx%lld but frames[0] is %lldx%lld (w, h); "
                             "all frames must share one size",
                             pc.fn, pc.name, (long long)i, (long long)fw, (long long)fh,
                             (long long)w, (long long)h);
            goto done;
        }
        w = fw;
        h = fh;
    }
    if (w > 0) {
        for (int64_t i = 0; i < ds->n; i++)
            if ((rc = resolve_intrinsics(&ds->frames[i].in, &ds->frames[i].cam, w, h, i, &pc)) !=
                ENG_OK)
                goto done;
    }
    ds->width = w;
    ds->height = h;
    *out = ds;
    ds = NULL;
done:
    dataset_free(ds);
    return rc;
}

/* ---- loading ----------------------------------------------------------------------------- */

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* "dir/name" in a new string. */
static char *join(const char *dir, const char *name, const char *suffix) {
    const size_t a = strlen(dir), b = strlen(name), c = strlen(suffix);
    char *s = (char *)malloc(a + b + c + 2);
    if (s == NULL) return NULL;
    memcpy(s, dir, a);
    s[a] = '/';
    memcpy(s + a + 1, name, b);
    memcpy(s + a + 1 + b, suffix, c + 1);
    return s;
}

/* Reads a whole file of at most `cap` bytes into a new NUL-terminated buffer. */
static int
read_file(char **out, size_t *len, const char *path, size_t cap, const char *fn, eng_err *err) {
    int rc = ENG_OK;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (f == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot open (%s)", fn, path, strerror(errno));
        goto done;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot read (%s)", fn, path, strerror(errno));
        goto done;
    }
    const long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot read (%s)", fn, path, strerror(errno));
        goto done;
    }
    if ((unsigned long)size > cap) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: %ld bytes, over the limit of %zu", fn, path,
                         size, cap);
        goto done;
    }
    buf = (char *)malloc((size_t)size + 1);
    if (buf == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory for %ld bytes", fn, path, size);
        goto done;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: short read", fn, path);
        goto done;
    }
    buf[size] = '\0';
    *len = (size_t)size;
    *out = buf;
    buf = NULL;
done:
    free(buf);
    if (f != NULL) fclose(f);
    return rc;
}

/* The JSON file that `path` (a file or a folder) and the split name. */
static int find_json(char **out, const char *path, const char *split, eng_err *err) {
    static const char fn[] = "nerf_dataset_load";
    int rc = ENG_OK;
    char *p = NULL, *alt = NULL;
    *out = NULL;
    if (!is_dir(path)) {
        if (!is_file(path)) {
            rc = eng_err_set(err, ENG_E_IO, "%s: %s: no such file or folder", fn, path);
            goto done;
        }
        p = dup_str(path);
    } else if (split == NULL || split[0] == '\0') {
        p = join(path, "transforms.json", "");
    } else {
        char name[256];
        if (strlen(split) > 64 || strchr(split, '/') != NULL) {
            rc = eng_err_set(err, ENG_E_INVALID_ARG,
                             "%s: split \"%.64s\": expected a short name "
                             "such as train, val or test",
                             fn, split);
            goto done;
        }
        snprintf(name, sizeof name, "transforms_%s.json", split);
        p = join(path, name, "");
        if (p != NULL && strcmp(split, "train") == 0 && !is_file(p)) {
            alt = join(path, "transforms.json", "");
            if (alt != NULL && is_file(alt)) {
                free(p);
                p = alt;
                alt = NULL;
            }
        }
    }
    if (p == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", fn);
        goto done;
    }
    if (!is_file(p)) {
        /* Say which transforms files the folder does have. */
        static const char *const names[] = {"transforms.json", "transforms_train.json",
                                            "transforms_val.json", "transforms_test.json"};
        char have[160] = "";
        for (int k = 0; k < 4; k++) {
            char *q = join(path, names[k], "");
            if (q != NULL && is_file(q)) {
                strncat(have, have[0] ? ", " : "", sizeof have - strlen(have) - 1);
                strncat(have, names[k], sizeof have - strlen(have) - 1);
            }
            free(q);
        }
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: no such file (%s%s)", fn, p,
                         have[0] ? "the folder has " : "the folder has no transforms*.json",
                         have[0] ? have : "");
        goto done;
    }
    *out = p;
    p = NULL;
done:
    free(p);
    free(alt);
    return rc;
}

/* The folder part of a path ("." when there is none), as a new string. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) return dup_str(".");
    if (slash == path) return dup_str("/");
    const size_t n = (size_t)(slash - path);
    char *d = (char *)malloc(n + 1);
    if (d == NULL) return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

typedef struct decode_job {
    nerf_dataset *ds;
    eng_err *errs; /* one per frame */
    int *rcs;      /* one per frame */
    atomic_int failed;
    eng_progress *bar;
} decode_job;

static void decode_range(void *user, int64_t begin, int64_t end) {
    decode_job *job = (decode_job *)user;
    nerf_dataset *ds = job->ds;
    const size_t frame_bytes = (size_t)ds->width * (size_t)ds->height * 4;
    for (int64_t i = begin; i < end; i++) {
        if (atomic_load(&job->failed)) return;
        eng_image img = {0};
        int rc = eng_image_read(&img, ds->frames[i].path, 4, &job->errs[i]);
        if (rc == ENG_OK && (img.width != ds->width || img.height != ds->height)) {
            /* The file changed since its header was read. */
            rc = eng_err_set(&job->errs[i], ENG_E_FORMAT,
                             "%s: is %lldx%lld now, its header said %lldx%lld", ds->frames[i].path,
                             (long long)img.width, (long long)img.height, (long long)ds->width,
                             (long long)ds->height);
        }
        if (rc == ENG_OK) memcpy(ds->pixels + (size_t)i * frame_bytes, img.data, frame_bytes);
        eng_image_free(&img);
        job->rcs[i] = rc;
        if (rc != ENG_OK) {
            atomic_store(&job->failed, 1);
            return;
        }
        if (job->bar != NULL) eng_progress_add(job->bar, 1, NULL);
    }
}

/* Keeps the frames whose image exists (paths resolved against `dir`), warning once about the
 * rest. Fails when none remain. */
static int find_images(
    nerf_dataset *ds, const char *dir, const eng_logger *log, const char *fn, eng_err *err) {
    int rc = ENG_OK;
    char list[800] = "";
    size_t used = 0;
    int64_t kept = 0, listed = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        ds_frame *f = &ds->frames[i];
        const char *base = f->path[0] == '/' ? "" : dir;
        char *a = f->path[0] == '/' ? dup_str(f->path) : join(base, f->path, "");
        char *b = f->path[0] == '/' ? join("", f->path + 1, ".png") : join(base, f->path, ".png");
        if (a == NULL || b == NULL) {
            free(a);
            free(b);
            rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory", fn, ds->json_path);
            goto done;
        }
        char *found = is_file(a) ? a : is_file(b) ? b : NULL;
        if (found != a) free(a);
        if (found != b) free(b);
        if (found == NULL) {
            const size_t need = strlen(f->path) + 2;
            if (used + need + 32 < sizeof list) {
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", listed ? " " : "",
                                         f->path);
                listed++;
            }
        }
        free(f->path);
        f->path = NULL;
        if (found == NULL) continue;
        ds_frame moved = *f;
        moved.path = found;
        ds->frames[kept++] = moved; /* frames[i].path stays NULL when it moved down */
    }
    const int64_t missing = ds->n - kept;
    ds->skipped = missing;
    const int64_t n_all = ds->n;
    ds->n = kept;
    if (kept == 0) {
        rc = eng_err_set(err, ENG_E_IO,
                         "%s: %s: none of the %lld frames' images exist (file_path is relative "
                         "to %s, tried as given and with .png): %s%s",
                         fn, ds->json_path, (long long)n_all, dir, list,
                         listed < missing ? " ..." : "");
        goto done;
    }
    if (missing > 0) {
        char more[64] = "";
        if (listed < missing)
            snprintf(more, sizeof more, " (and %lld more)", (long long)(missing - listed));
        eng_log(log, ENG_LOG_WARN,
                "%s: %s: %lld of %lld frames have no image file and are skipped: %s%s", fn,
                ds->json_path, (long long)missing, (long long)n_all, list, more);
    }
done:
    return rc;
}

/* Reads every image header: one size for all (and the one the file gives, if any). */
static int check_sizes(nerf_dataset *ds, const char *fn, eng_err *err) {
    int rc = ENG_OK;
    for (int64_t i = 0; i < ds->n; i++) {
        const ds_frame *f = &ds->frames[i];
        int64_t w = 0, h = 0, jw = 0, jh = 0;
        if ((rc = eng_image_info(&w, &h, NULL, f->path, err)) != ENG_OK) {
            eng_err_prefix(err, "%s: %s: frames[%lld].file_path", fn, ds->json_path,
                           (long long)f->index);
            goto done;
        }
        if (i == 0) {
            ds->width = w;
            ds->height = h;
        } else if (w != ds->width || h != ds->height) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "%s: %s: frames of different sizes: frames[%lld] (%s) is %lldx%lld "
                             "but frames[%lld] (%s) is %lldx%lld; all frames must share one size",
                             fn, ds->json_path, (long long)f->index, f->path, (long long)w,
                             (long long)h, (long long)ds->frames[0].index, ds->frames[0].path,
                             (long long)ds->width, (long long)ds->height);
            goto done;
        }
        json_size(&jw, &jh, f);
        if ((jw != 0 && jw != w) || (jh != 0 && jh != h)) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "%s: %s: frames[%lld]: the file says w %lld, h %lld but the image %s "
                             "is %lldx%lld",
                             fn, ds->json_path, (long long)f->index, (long long)jw, (long long)jh,
                             f->path, (long long)w, (long long)h);
            goto done;
        }
    }
done:
    return rc;
}

int nerf_dataset_load(
    nerf_dataset **out, eng_ctx *ctx, const char *path, const nerf_load_params *p, eng_err *err) {
    static const char fn[] = "nerf_dataset_load";
    int rc = ENG_OK;
    nerf_load_params defaults;
    char *json_path = NULL, *text = NULL, *dir = NULL;
    size_t len = 0;
    nerf_dataset *ds = NULL;
    decode_job job;
    eng_progress *bar = NULL;
    memset(&job, 0, sizeof job);
    ENG_ASSERT(out != NULL);
    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: no path given", fn);
        goto done;
    }
    if (p == NULL) {
        nerf_load_params_init(&defaults);
        p = &defaults;
    }
    if ((rc = find_json(&json_path, path, p->split, err)) != ENG_OK) goto done;
    if ((rc = read_file(&text, &len, json_path, NERF_DATASET_MAX_JSON_BYTES, fn, err)) != ENG_OK)
        goto done;
    const parse_ctx pc = {fn, json_path, err};
    if ((rc = parse_json(&ds, text, len, &pc)) != ENG_OK) goto done;
    free(text);
    text = NULL;
    dir = dir_of(json_path);
    if (dir == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", fn);
        goto done;
    }
    const eng_logger *log = ctx != NULL ? eng_ctx_logger(ctx) : NULL;
    if ((rc = find_images(ds, dir, log, fn, err)) != ENG_OK) goto done;
    if ((rc = check_sizes(ds, fn, err)) != ENG_OK) goto done;
    for (int64_t i = 0; i < ds->n; i++) {
        ds_frame *f = &ds->frames[i];
        if ((rc = resolve_intrinsics(&f->in, &f->cam, ds->width, ds->height, f->index, &pc)) !=
            ENG_OK)
            goto done;
    }

    /* Sizes are within eng_image's limits (16384^2 * 4 bytes a frame) and frames within
     * NERF_DATASET_MAX_FRAMES, so the product fits in 64 bits; it may not fit in memory. */
    const uint64_t frame_bytes = (uint64_t)ds->width * (uint64_t)ds->height * 4u;
    const uint64_t total = frame_bytes * (uint64_t)ds->n;
    if (total > (uint64_t)SIZE_MAX || (ds->pixels = (uint8_t *)malloc((size_t)total)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM,
                         "%s: %s: out of memory for the images: %lld frames of %lldx%lld RGBA "
                         "need %.1f GiB",
                         fn, json_path, (long long)ds->n, (long long)ds->width,
                         (long long)ds->height, (double)total / (1024.0 * 1024.0 * 1024.0));
        goto done;
    }
    job.ds = ds;
    job.errs = (eng_err *)calloc((size_t)ds->n, sizeof(eng_err));
    job.rcs = (int *)calloc((size_t)ds->n, sizeof(int));
    if (job.errs == NULL || job.rcs == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", fn);
        goto done;
    }
    atomic_init(&job.failed, 0);
    if (p->progress != NULL) {
        eng_progress_params pp = *p->progress;
        if (pp.label == NULL) pp.label = "load";
        pp.total = ds->n;
        if (pp.unit == NULL) pp.unit = "img";
        if ((rc = eng_progress_create(&bar, &pp, err)) != ENG_OK) goto done;
        job.bar = bar;
    }
    eng_pool_parallel_for(ctx != NULL ? eng_ctx_pool(ctx) : NULL, ds->n, 1, decode_range, &job);
    for (int64_t i = 0; i < ds->n; i++) {
        if (job.rcs[i] != ENG_OK) {
            rc = eng_err_set(err, job.rcs[i], "%s", job.errs[i].msg);
            eng_err_prefix(err, "%s: %s: frames[%lld].file_path", fn, json_path,
                           (long long)ds->frames[i].index);
            goto done;
        }
    }
    if (bar != NULL) eng_progress_finish(bar, NULL);
    free(ds->json_path);
    ds->json_path = json_path;
    json_path = NULL;
    *out = ds;
    ds = NULL;
done:
    eng_progress_destroy(bar);
    free(job.errs);
    free(job.rcs);
    dataset_free(ds);
    free(dir);
    free(text);
    free(json_path);
    return rc;
}

/* ---- queries ----------------------------------------------------------------------------- */

static const ds_frame *get_frame(const nerf_dataset *ds, int64_t i) {
    ENG_ASSERT(ds != NULL && i >= 0 && i < ds->n);
    return &ds->frames[i];
}

int64_t nerf_dataset_count(const nerf_dataset *ds) {
    return ds->n;
}
int64_t nerf_dataset_width(const nerf_dataset *ds) {
    return ds->width;
}
int64_t nerf_dataset_height(const nerf_dataset *ds) {
    return ds->height;
}
int64_t nerf_dataset_skipped(const nerf_dataset *ds) {
    return ds->skipped;
}
const char *nerf_dataset_json_path(const nerf_dataset *ds) {
    return ds->json_path;
}
float nerf_dataset_aabb_scale(const nerf_dataset *ds) {
    return ds->aabb_scale;
}
float nerf_dataset_scale(const nerf_dataset *ds) {
    return ds->scale;
}
const uint8_t *nerf_dataset_pixels(const nerf_dataset *ds) {
    return ds->pixels;
}

const char *nerf_dataset_frame_path(const nerf_dataset *ds, int64_t frame) {
    return get_frame(ds, frame)->path;
}

int64_t nerf_dataset_frame_index(const nerf_dataset *ds, int64_t frame) {
    return get_frame(ds, frame)->index;
}

nerf_intrinsics nerf_dataset_intrinsics(const nerf_dataset *ds, int64_t frame) {
    return get_frame(ds, frame)->in;
}

void nerf_dataset_c2w(const nerf_dataset *ds, int64_t frame, float out[12]) {
    const struct ds_frame *f = get_frame(ds, frame);
    for (int k = 0; k < 12; k++)
        out[k] = (float)f->c2w[k];
}

void nerf_dataset_c2w_model(const nerf_dataset *ds, int64_t frame, float out[12]) {
    const struct ds_frame *f = get_frame(ds, frame);
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++)
            out[4 * r + c] = (float)f->c2w[4 * r + c];
        out[4 * r + 3] = (float)((double)ds->scale * f->c2w[4 * r + 3] + (double)ds->offset[r]);
    }
}

const uint8_t *nerf_dataset_rgba(const nerf_dataset *ds, int64_t frame) {
    (void)get_frame(ds, frame);
    if (ds->pixels == NULL) return NULL;
    return ds->pixels + (size_t)frame * (size_t)ds->width * (size_t)ds->height * 4;
}

void nerf_dataset_offset(const nerf_dataset *ds, float out[3]) {
    for (int k = 0; k < 3; k++)
        out[k] = ds->offset[k];
}

void nerf_dataset_aabb(const nerf_dataset *ds, float lo[3], float hi[3]) {
    for (int k = 0; k < 3; k++) {
        lo[k] = 0.5f - 0.5f * ds->aabb_scale;
        hi[k] = 0.5f + 0.5f * ds->aabb_scale;
    }
}

/* ---- rays -------------------------------------------------------------------------------- */

/* OpenCV's model, for Newton: (xd, yd) = distort(x, y) and its Jacobian. */
static void
distort(double *xd, double *yd, double j[4], double x, double y, const nerf_intrinsics *in) {
    const double k1 = in->k1, k2 = in->k2, p1 = in->p1, p2 = in->p2;
    const double r2 = x * x + y * y;
    const double rad = 1.0 + k1 * r2 + k2 * r2 * r2;
    const double drad = k1 + 2.0 * k2 * r2; /* d rad / d r2 */
    *xd = x * rad + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x);
    *yd = y * rad + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y;
    j[0] = rad + 2.0 * x * x * drad + 2.0 * p1 * y + 6.0 * p2 * x; /* d xd / dx */
    j[1] = 2.0 * x * y * drad + 2.0 * p1 * x + 2.0 * p2 * y;       /* d xd / dy */
    j[2] = 2.0 * x * y * drad + 2.0 * p1 * x + 2.0 * p2 * y;       /* d yd / dx */
    j[3] = rad + 2.0 * y * y * drad + 6.0 * p1 * y + 2.0 * p2 * x; /* d yd / dy */
}

void nerf_undistort(double *x, double *y, double xd, double yd, const nerf_intrinsics *in) {
    ENG_ASSERT(x != NULL && y != NULL && in != NULL);
    *x = xd;
    *y = yd;
    if (in->k1 == 0.0f && in->k2 == 0.0f && in->p1 == 0.0f && in->p2 == 0.0f) return;
    double u = xd, v = yd;
    for (int it = 0; it < 20; it++) {
        double fx = 0.0, fy = 0.0, j[4];
        distort(&fx, &fy, j, u, v, in);
        fx -= xd;
        fy -= yd;
        const double det = j[0] * j[3] - j[1] * j[2];
        if (!(fabs(det) > 1e-12)) break;
        const double du = (fx * j[3] - fy * j[1]) / det;
        const double dv = (fy * j[0] - fx * j[2]) / det;
        u -= du;
        v -= dv;
        if (!isfinite(u) || !isfinite(v)) return; /* diverged: keep the distorted point */
        if (fabs(du) + fabs(dv) < 1e-12) break;
    }
    *x = u;
    *y = v;
}

void nerf_dataset_ray(
    const nerf_dataset *ds, int64_t frame, float px, float py, float o[3], float d[3]) {
    const struct ds_frame *f = get_frame(ds, frame);
    ENG_ASSERT(ds->width > 0 && o != NULL && d != NULL);
    const nerf_intrinsics *in = &f->in;
    double x = 0.0, y = 0.0;
    nerf_undistort(&x, &y, ((double)px + 0.5 - in->cx) / in->fx,
                   ((double)py + 0.5 - in->cy) / in->fy, in);
    const double dc[3] = {x, -y, -1.0}; /* OpenGL camera: y up, looking down -z */
    double dw[3], norm = 0.0;
    for (int r = 0; r < 3; r++) {
        dw[r] = f->c2w[4 * r] * dc[0] + f->c2w[4 * r + 1] * dc[1] + f->c2w[4 * r + 2] * dc[2];
        norm += dw[r] * dw[r];
    }
    norm = sqrt(norm);
    for (int r = 0; r < 3; r++) {
        d[r] = (float)(dw[r] / norm);
        o[r] = (float)((double)ds->scale * f->c2w[4 * r + 3] + (double)ds->offset[r]);
    }
}
