/* nerf_colmap.c: COLMAP text model -> transforms.json (see nerf_colmap.h): a streaming line
 * reader over a file or memory, the cameras.txt and images.txt parsers, the pose conversion,
 * re-orientation, centring and scaling, and the atomic JSON writer. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "nerf_colmap.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eng_image.h"
#include "nerf_data.h"

/* ---- lines from a file or from memory ---------------------------------------------------- */

typedef struct line_src {
    FILE *f;         /* a file, or */
    const char *buf; /* len bytes of memory */
    size_t len, pos;
    const char *fn;   /* the public function, for messages */
    const char *name; /* the file's name, for messages */
    int64_t lineno;   /* of the line last read, from 1 */
    char *line;       /* NERF_COLMAP_MAX_LINE + 1 bytes */
} line_src;

static int src_getc(line_src *s) {
    if (s->f != NULL) return getc(s->f);
    return s->pos < s->len ? (unsigned char)s->buf[s->pos++] : EOF;
}

/* Reads the next line into s->line (keep = 1; trailing whitespace and '\r' removed) or skips it
 * (keep = 0). Returns 1 for a line, 0 at the end of the input, or an ENG_E_* code. */
static int next_line(line_src *s, int keep, eng_err *err) {
    size_t n = 0;
    int c = 0, any = 0;
    while ((c = src_getc(s)) != EOF) {
        any = 1;
        if (c == '\n') break;
        if (!keep) continue;
        if (c == '\0')
            return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%lld: contains a NUL byte (not text?)",
                               s->fn, s->name, (long long)(s->lineno + 1));
        if (n >= NERF_COLMAP_MAX_LINE)
            return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%lld: line longer than %d bytes", s->fn,
                               s->name, (long long)(s->lineno + 1), NERF_COLMAP_MAX_LINE);
        s->line[n++] = (char)c;
    }
    if (s->f != NULL && ferror(s->f))
        return eng_err_set(err, ENG_E_IO, "%s: %s: read error (%s)", s->fn, s->name,
                           strerror(errno));
    if (!any) return 0;
    s->lineno++;
    while (n > 0 && (s->line[n - 1] == ' ' || s->line[n - 1] == '\t' || s->line[n - 1] == '\r'))
        n--;
    s->line[n] = '\0';
    return 1;
}

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static int at_token_end(const char *p) {
    return *p == '\0' || *p == ' ' || *p == '\t';
}

/* Blank or a '#' comment. */
static int ignorable(const char *line) {
    const char *p = skip_ws(line);
    return *p == '\0' || *p == '#';
}

static int tok_i64(const char **p, int64_t *v) {
    const char *s = skip_ws(*p);
    char *e = NULL;
    errno = 0;
    const long long x = strtoll(s, &e, 10);
    if (e == s || errno != 0 || !at_token_end(e)) return 0;
    *v = (int64_t)x;
    *p = e;
    return 1;
}

static int tok_f64(const char **p, double *v) {
    const char *s = skip_ws(*p);
    char *e = NULL;
    const double x = strtod(s, &e);
    if (e == s || !at_token_end(e) || !isfinite(x)) return 0;
    *v = x;
    *p = e;
    return 1;
}

/* The next whitespace-separated word into out (cap bytes); 0 if none or too long. */
static int tok_word(const char **p, char *out, size_t cap) {
    const char *s = skip_ws(*p);
    size_t n = 0;
    while (!at_token_end(s + n))
        n++;
    if (n == 0 || n >= cap) return 0;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n;
    return 1;
}

/* ---- the model --------------------------------------------------------------------------- */

typedef struct camera {
    int64_t id, line;
    int64_t w, h;
    double fx, fy, cx, cy, k1, k2, p1, p2;
} camera;

typedef struct image {
    int64_t id, line, cam_id;
    double q[4]; /* w x y z, normalised */
    double t[3];
    char *name;
    const camera *cam;
} image;

typedef struct model {
    camera *cams;
    int64_t n_cams, cap_cams;
    image *imgs;
    int64_t n_imgs, cap_imgs;
} model;

static void model_free(model *m) {
    for (int64_t i = 0; i < m->n_imgs; i++)
        free(m->imgs[i].name);
    free(m->imgs);
    free(m->cams);
}

/* Camera models: name, parameter count. */
static const struct {
    const char *name;
    int n;
} cam_models[] = {
    {"SIMPLE_PINHOLE", 3}, {"PINHOLE", 4}, {"SIMPLE_RADIAL", 4}, {"RADIAL", 5}, {"OPENCV", 8}};
static const char *const unsupported_models[] = {"OPENCV_FISHEYE",
                                                 "FULL_OPENCV",
                                                 "FOV",
                                                 "SIMPLE_RADIAL_FISHEYE",
                                                 "RADIAL_FISHEYE",
                                                 "THIN_PRISM_FISHEYE",
                                                 "RAD_TAN_THIN_PRISM_FISHEYE"};

static int parse_camera(camera *c, line_src *s, eng_err *err) {
    const char *p = s->line;
    char name[64];
    double par[8];
    int n = 0, want = -1, kind = -1;
    const long long ln = (long long)s->lineno;
    memset(c, 0, sizeof *c);
    c->line = s->lineno;
    if (!tok_i64(&p, &c->id) || c->id < 0 || c->id > UINT32_MAX)
        return eng_err_set(err, ENG_E_FORMAT,
                           "%s: %s:%lld: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...: the "
                           "camera id is not a number 0..4294967295",
                           s->fn, s->name, ln);
    if (!tok_word(&p, name, sizeof name))
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%lld: camera %lld: model name missing", s->fn,
                           s->name, ln, (long long)c->id);
    for (int k = 0; k < (int)(sizeof cam_models / sizeof cam_models[0]); k++) {
        if (strcmp(name, cam_models[k].name) == 0) {
            kind = k;
            want = cam_models[k].n;
        }
    }
    if (kind < 0) {
        for (int k = 0; k < (int)(sizeof unsupported_models / sizeof unsupported_models[0]); k++)
            if (strcmp(name, unsupported_models[k]) == 0)
                return eng_err_set(err, ENG_E_UNSUPPORTED,
                                   "%s: %s:%lld: camera model %s is not supported (SIMPLE_PINHOLE, "
                                   "PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV are; run `colmap "
                                   "image_undistorter`, which writes PINHOLE cameras)",
                                   s->fn, s->name, ln, name);
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%lld: unknown camera model \"%s\"", s->fn,
                           s->name, ln, name);
    }
    if (!tok_i64(&p, &c->w) || !tok_i64(&p, &c->h) || c->w < 1 || c->h < 1 ||
        c->w > ENG_IMAGE_MAX_DIM || c->h > ENG_IMAGE_MAX_DIM)
        return eng_err_set(err, ENG_E_FORMAT,
                           "%s: %s:%lld: camera %lld: expected WIDTH HEIGHT, whole numbers "
                           "1..%d",
                           s->fn, s->name, ln, (long long)c->id, ENG_IMAGE_MAX_DIM);
    for (;;) {
        p = skip_ws(p);
        if (*p == '\0') break;
        double v = 0.0;
        if (!tok_f64(&p, &v))
            return eng_err_set(err, ENG_E_FORMAT,
                               "%s: %s:%lld: camera %lld: parameter %d is not a finite number",
                               s->fn, s->name, ln, (long long)c->id, n + 1);
        if (n < 8) par[n] = v;
        n++;
    }
    if (n != want)
        return eng_err_set(err, ENG_E_FORMAT,
                           "%s: %s:%lld: camera %lld: model %s takes %d parameters, found %d",
                           s->fn, s->name, ln, (long long)c->id, name, want, n);
    switch (kind) {
    case 0: /* SIMPLE_PINHOLE f cx cy */
    case 2: /* SIMPLE_RADIAL f cx cy k */
    case 3: /* RADIAL f cx cy k1 k2 */
        c->fx = c->fy = par[0];
        c->cx = par[1];
        c->cy = par[2];
        if (kind >= 2) c->k1 = par[3];
        if (kind == 3) c->k2 = par[4];
        break;
    default: /* PINHOLE fx fy cx cy, OPENCV fx fy cx cy k1 k2 p1 p2 */
        c->fx = par[0];
        c->fy = par[1];
        c->cx = par[2];
        c->cy = par[3];
        if (kind == 4) {
            c->k1 = par[4];
            c->k2 = par[5];
            c->p1 = par[6];
            c->p2 = par[7];
        }
        break;
    }
    /* What transforms.json will hold must load: at least a thousandth of a pixel (so that the
     * field of view stays below pi), every number within float's range. */
    if (!(c->fx >= 1e-3 && c->fy >= 1e-3))
        return eng_err_set(err, ENG_E_FORMAT,
                           "%s: %s:%lld: camera %lld: focal length %g, %g: expected positive "
                           "(0.001 pixels or more)",
                           s->fn, s->name, ln, (long long)c->id, c->fx, c->fy);
    for (int k = 0; k < n; k++)
        if (fabs(par[k]) > (double)FLT_MAX)
            return eng_err_set(err, ENG_E_FORMAT,
                               "%s: %s:%lld: camera %lld: parameter %d (%g) is outside float's "
                               "range",
                               s->fn, s->name, ln, (long long)c->id, k + 1, par[k]);
    return ENG_OK;
}

static int parse_image(image *im, line_src *s, eng_err *err) {
    const char *p = s->line;
    const long long ln = (long long)s->lineno;
    memset(im, 0, sizeof *im);
    im->line = s->lineno;
    if (!tok_i64(&p, &im->id) || im->id < 0 || im->id > UINT32_MAX)
        return eng_err_set(
            err, ENG_E_FORMAT,
            "%s: %s:%lld: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME: the "
            "image id is not a number 0..4294967295",
            s->fn, s->name, ln);
    for (int k = 0; k < 4; k++)
        if (!tok_f64(&p, &im->q[k]))
            return eng_err_set(err, ENG_E_FORMAT,
                               "%s: %s:%lld: image %lld: expected the quaternion QW QX QY QZ as 4 "
                               "finite numbers",
                               s->fn, s->name, ln, (long long)im->id);
    for (int k = 0; k < 3; k++)
        if (!tok_f64(&p, &im->t[k]))
            return eng_err_set(err, ENG_E_FORMAT,
                               "%s: %s:%lld: image %lld: expected the translation TX TY TZ as 3 "
                               "finite numbers",
                               s->fn, s->name, ln, (long long)im->id);
    if (!tok_i64(&p, &im->cam_id))
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%lld: image %lld: CAMERA_ID is not a number",
                           s->fn, s->name, ln, (long long)im->id);
    p = skip_ws(p);
    if (*p == '\0')
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%lld: image %lld: NAME missing", s->fn,
                           s->name, ln, (long long)im->id);
    const double qn =
        sqrt(im->q[0] * im->q[0] + im->q[1] * im->q[1] + im->q[2] * im->q[2] + im->q[3] * im->q[3]);
    if (!(qn > 1e-9) || !isfinite(qn))
        return eng_err_set(err, ENG_E_FORMAT,
                           "%s: %s:%lld: image %lld: the quaternion has length %g, expected 1",
                           s->fn, s->name, ln, (long long)im->id, qn);
    for (int k = 0; k < 4; k++)
        im->q[k] /= qn;
    const size_t n = strlen(p);
    im->name = (char *)malloc(n + 1);
    if (im->name == NULL)
        return eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory", s->fn, s->name);
    memcpy(im->name, p, n + 1);
    return ENG_OK;
}

static int grow(void **arr, int64_t *cap, int64_t n, size_t elem) {
    if (n < *cap) return 1;
    const int64_t nc = *cap > 0 ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (p == NULL) return 0;
    *arr = p;
    *cap = nc;
    return 1;
}

static int read_cameras(model *m, line_src *s, eng_err *err) {
    int rc = 0;
    while ((rc = next_line(s, 1, err)) == 1) {
        if (ignorable(s->line)) continue;
        if (m->n_cams >= NERF_COLMAP_MAX_ITEMS)
            return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%lld: more than %d cameras", s->fn,
                               s->name, (long long)s->lineno, NERF_COLMAP_MAX_ITEMS);
        if (!grow((void **)&m->cams, &m->cap_cams, m->n_cams, sizeof(camera)))
            return eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory", s->fn, s->name);
        if ((rc = parse_camera(&m->cams[m->n_cams], s, err)) != ENG_OK) return rc;
        m->n_cams++;
    }
    return rc;
}

static int read_images(model *m, line_src *s, eng_err *err) {
    int rc = 0;
    while ((rc = next_line(s, 1, err)) == 1) {
        /* Blank lines are skipped only here, where an image line is due: the line after an
         * image line is its points line, empty when it has none. */
        if (ignorable(s->line)) continue;
        if (m->n_imgs >= NERF_COLMAP_MAX_ITEMS)
            return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%lld: more than %d images", s->fn,
                               s->name, (long long)s->lineno, NERF_COLMAP_MAX_ITEMS);
        if (!grow((void **)&m->imgs, &m->cap_imgs, m->n_imgs, sizeof(image)))
            return eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory", s->fn, s->name);
        if ((rc = parse_image(&m->imgs[m->n_imgs], s, err)) != ENG_OK) return rc;
        m->n_imgs++;
        if ((rc = next_line(s, 0, err)) < 0) return rc; /* POINTS2D, unread */
    }
    return rc;
}

static int cmp_cam_id(const void *a, const void *b) {
    const int64_t x = ((const camera *)a)->id, y = ((const camera *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_img_id(const void *a, const void *b) {
    const int64_t x = ((const image *)a)->id, y = ((const image *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_img_name(const void *a, const void *b) {
    const image *x = (const image *)a, *y = (const image *)b;
    const int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->id > y->id) - (x->id < y->id);
}

/* Sorts, checks ids are unique and every image's camera exists. */
static int link_model(model *m, const line_src *cs, const line_src *is, eng_err *err) {
    if (m->n_imgs == 0)
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s: no images (an empty model?)", is->fn,
                           is->name);
    if (m->n_cams > 1) /* qsort's array must not be NULL, even for 0 elements */
        qsort(m->cams, (size_t)m->n_cams, sizeof(camera), cmp_cam_id);
    for (int64_t i = 1; i < m->n_cams; i++)
        if (m->cams[i].id == m->cams[i - 1].id)
            return eng_err_set(
                err, ENG_E_FORMAT, "%s: %s:%lld: camera %lld is also on line %lld", cs->fn,
                cs->name, (long long)ENG_MAX(m->cams[i].line, m->cams[i - 1].line),
                (long long)m->cams[i].id, (long long)ENG_MIN(m->cams[i].line, m->cams[i - 1].line));
    qsort(m->imgs, (size_t)m->n_imgs, sizeof(image), cmp_img_id);
    for (int64_t i = 1; i < m->n_imgs; i++)
        if (m->imgs[i].id == m->imgs[i - 1].id)
            return eng_err_set(
                err, ENG_E_FORMAT, "%s: %s:%lld: image %lld is also on line %lld", is->fn, is->name,
                (long long)ENG_MAX(m->imgs[i].line, m->imgs[i - 1].line), (long long)m->imgs[i].id,
                (long long)ENG_MIN(m->imgs[i].line, m->imgs[i - 1].line));
    for (int64_t i = 0; i < m->n_imgs; i++) {
        image *im = &m->imgs[i];
        camera key;
        key.id = im->cam_id;
        im->cam = m->n_cams > 0 ? (const camera *)bsearch(&key, m->cams, (size_t)m->n_cams,
                                                          sizeof(camera), cmp_cam_id)
                                : NULL;
        if (im->cam == NULL)
            return eng_err_set(err, ENG_E_FORMAT,
                               "%s: %s:%lld: image %lld uses camera %lld, which %s does not have",
                               is->fn, is->name, (long long)im->line, (long long)im->id,
                               (long long)im->cam_id, cs->name);
    }
    /* The loader needs one image size (transforms.json would load only to fail there). */
    for (int64_t i = 1; i < m->n_imgs; i++) {
        const camera *a = m->imgs[0].cam, *b = m->imgs[i].cam;
        if (a->w != b->w || a->h != b->h)
            return eng_err_set(err, ENG_E_FORMAT,
                               "%s: %s: images of different sizes: image %lld uses camera %lld "
                               "(%lldx%lld) but image %lld camera %lld (%lldx%lld); all frames "
                               "must share one size",
                               cs->fn, cs->name, (long long)m->imgs[i].id, (long long)b->id,
                               (long long)b->w, (long long)b->h, (long long)m->imgs[0].id,
                               (long long)a->id, (long long)a->w, (long long)a->h);
    }
    qsort(m->imgs, (size_t)m->n_imgs, sizeof(image), cmp_img_name);
    return ENG_OK;
}

/* ---- geometry ---------------------------------------------------------------------------- */

/* World-to-camera rotation of a unit quaternion (w, x, y, z), rows. */
static void quat_to_rot(double r[9], const double q[4]) {
    const double w = q[0], x = q[1], y = q[2], z = q[3];
    r[0] = 1 - 2 * (y * y + z * z);
    r[1] = 2 * (x * y - w * z);
    r[2] = 2 * (x * z + w * y);
    r[3] = 2 * (x * y + w * z);
    r[4] = 1 - 2 * (x * x + z * z);
    r[5] = 2 * (y * z - w * x);
    r[6] = 2 * (x * z - w * y);
    r[7] = 2 * (y * z + w * x);
    r[8] = 1 - 2 * (x * x + y * y);
}

/* The smallest rotation taking unit vector a onto +z, rows. */
static void rot_to_z(double u[9], const double a[3]) {
    const double c = a[2];                  /* a . z */
    const double v[3] = {a[1], -a[0], 0.0}; /* a x z */
    if (c < -1.0 + 1e-12) {                 /* opposite: half a turn about x */
        const double flip[9] = {1, 0, 0, 0, -1, 0, 0, 0, -1};
        memcpy(u, flip, sizeof flip);
        return;
    }
    /* Rodrigues: I + [v]x + [v]x^2 / (1 + c). */
    const double k = 1.0 / (1.0 + c);
    const double vx[9] = {0, -v[2], v[1], v[2], 0, -v[0], -v[1], v[0], 0};
    for (int r = 0; r < 3; r++) {
        for (int col = 0; col < 3; col++) {
            double vx2 = 0.0;
            for (int j = 0; j < 3; j++)
                vx2 += vx[3 * r + j] * vx[3 * j + col];
            u[3 * r + col] = (r == col ? 1.0 : 0.0) + vx[3 * r + col] + vx2 * k;
        }
    }
}

static double det3(const double a[9]) {
    return a[0] * (a[4] * a[8] - a[5] * a[7]) - a[1] * (a[3] * a[8] - a[5] * a[6]) +
           a[2] * (a[3] * a[7] - a[4] * a[6]);
}

typedef struct pose {
    double rot[9]; /* camera-to-world rotation, OpenGL camera axes */
    double c[3];   /* camera centre */
} pose;

/* Computes every image's pose in the output frame and the map M (3x4 rows, p_out = M p). */
static void transform_poses(pose *out, double m34[12], const model *m) {
    const int64_t n = m->n_imgs;
    double up[3] = {0, 0, 0}, a_sum[9] = {0}, b_sum[3] = {0}, mean_c[3] = {0};
    for (int64_t i = 0; i < n; i++) {
        const image *im = &m->imgs[i];
        double r[9];
        quat_to_rot(r, im->q);
        pose *p = &out[i];
        for (int row = 0; row < 3; row++) {
            /* C = -R^T t */
            p->c[row] = -(r[row] * im->t[0] + r[3 + row] * im->t[1] + r[6 + row] * im->t[2]);
            /* c2w = R^T diag(1, -1, -1): column j is row j of R, signed. */
            p->rot[3 * row + 0] = r[row];
            p->rot[3 * row + 1] = -r[3 + row];
            p->rot[3 * row + 2] = -r[6 + row];
        }
        const double *axis = &r[6]; /* COLMAP's viewing direction in the world: row 2 of R */
        for (int k = 0; k < 3; k++) {
            up[k] += p->rot[3 * k + 1];
            mean_c[k] += p->c[k] / (double)n;
        }
        /* Least squares for the point nearest every axis: sum (I - a a^T) (x - C) = 0. */
        double proj[9];
        for (int r0 = 0; r0 < 3; r0++)
            for (int c0 = 0; c0 < 3; c0++)
                proj[3 * r0 + c0] = (r0 == c0 ? 1.0 : 0.0) - axis[r0] * axis[c0];
        for (int k = 0; k < 9; k++)
            a_sum[k] += proj[k];
        for (int r0 = 0; r0 < 3; r0++)
            b_sum[r0] +=
                proj[3 * r0] * p->c[0] + proj[3 * r0 + 1] * p->c[1] + proj[3 * r0 + 2] * p->c[2];
    }
    /* The centre: solve when the axes are far from parallel (the matrix is 2n I - ... with
     * eigenvalues up to 2n; a smallest one near 0 means (nearly) parallel axes). */
    double centre[3];
    const double det = det3(a_sum), ref = (2.0 * (double)n / 3.0);
    if (det > 1e-6 * ref * ref * ref) {
        double tmp[9];
        for (int k = 0; k < 3; k++) {
            memcpy(tmp, a_sum, sizeof tmp);
            for (int r0 = 0; r0 < 3; r0++)
                tmp[3 * r0 + k] = b_sum[r0];
            centre[k] = det3(tmp) / det; /* Cramer's rule */
        }
    } else {
        memcpy(centre, mean_c, sizeof centre);
    }
    /* Up onto +z. */
    double u[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const double un = sqrt(up[0] * up[0] + up[1] * up[1] + up[2] * up[2]);
    if (un > 1e-6 * (double)n) {
        const double a[3] = {up[0] / un, up[1] / un, up[2] / un};
        rot_to_z(u, a);
    }
    /* Scale: mean distance 4. */
    double dist = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d2 = 0.0;
        for (int k = 0; k < 3; k++)
            d2 += (out[i].c[k] - centre[k]) * (out[i].c[k] - centre[k]);
        dist += sqrt(d2) / (double)n;
    }
    const double s = dist > 1e-12 ? 4.0 / dist : 1.0;
    for (int r0 = 0; r0 < 3; r0++) {
        for (int c0 = 0; c0 < 3; c0++)
            m34[4 * r0 + c0] = s * u[3 * r0 + c0];
        m34[4 * r0 + 3] =
            -s * (u[3 * r0] * centre[0] + u[3 * r0 + 1] * centre[1] + u[3 * r0 + 2] * centre[2]);
    }
    for (int64_t i = 0; i < n; i++) {
        pose *p = &out[i];
        double rot[9], c[3];
        for (int r0 = 0; r0 < 3; r0++) {
            for (int c0 = 0; c0 < 3; c0++)
                rot[3 * r0 + c0] = u[3 * r0] * p->rot[c0] + u[3 * r0 + 1] * p->rot[3 + c0] +
                                   u[3 * r0 + 2] * p->rot[6 + c0];
            c[r0] = m34[4 * r0] * p->c[0] + m34[4 * r0 + 1] * p->c[1] + m34[4 * r0 + 2] * p->c[2] +
                    m34[4 * r0 + 3];
        }
        memcpy(p->rot, rot, sizeof rot);
        memcpy(p->c, c, sizeof c);
    }
}

/* ---- JSON -------------------------------------------------------------------------------- */

typedef struct json_out {
    int ok; /* 0 once any cJSON allocation failed */
} json_out;

static void add_num(json_out *j, cJSON *obj, const char *key, double v) {
    if (cJSON_AddNumberToObject(obj, key, v) == NULL) j->ok = 0;
}

static void add_item(json_out *j, cJSON *obj, const char *key, cJSON *item) {
    if (item == NULL || !cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        j->ok = 0;
    }
}

/* A 4x4 matrix (rows) from a 3x4 one, with the bottom row 0 0 0 1. */
static cJSON *matrix4(const double m34[12]) {
    cJSON *rows = cJSON_CreateArray();
    if (rows == NULL) return NULL;
    for (int r = 0; r < 4; r++) {
        double row[4] = {0, 0, 0, 1};
        if (r < 3) memcpy(row, &m34[4 * r], sizeof row);
        cJSON *a = cJSON_CreateDoubleArray(row, 4);
        if (a == NULL || !cJSON_AddItemToArray(rows, a)) {
            cJSON_Delete(a);
            cJSON_Delete(rows);
            return NULL;
        }
    }
    return rows;
}

static void add_intrinsics(json_out *j, cJSON *obj, const camera *c) {
    add_num(j, obj, "camera_angle_x", 2.0 * atan(0.5 * (double)c->w / c->fx));
    add_num(j, obj, "camera_angle_y", 2.0 * atan(0.5 * (double)c->h / c->fy));
    add_num(j, obj, "fl_x", c->fx);
    add_num(j, obj, "fl_y", c->fy);
    add_num(j, obj, "cx", c->cx);
    add_num(j, obj, "cy", c->cy);
    add_num(j, obj, "w", (double)c->w);
    add_num(j, obj, "h", (double)c->h);
    add_num(j, obj, "k1", c->k1);
    add_num(j, obj, "k2", c->k2);
    add_num(j, obj, "p1", c->p1);
    add_num(j, obj, "p2", c->p2);
}

static int to_json(char **out, const model *m, const char *prefix, const char *fn, eng_err *err) {
    int rc = ENG_OK;
    json_out j = {1};
    pose *poses = NULL;
    cJSON *root = NULL;
    char *path = NULL;
    double m34[12];
    *out = NULL;
    poses = (pose *)calloc((size_t)m->n_imgs, sizeof(pose));
    root = cJSON_CreateObject();
    if (poses == NULL || root == NULL) goto oom;
    transform_poses(poses, m34, m);
    /* Extreme coordinates can overflow on the way (cJSON would write NaN as null). */
    int finite = 1;
    for (int k = 0; k < 12; k++)
        finite &= isfinite(m34[k]);
    for (int64_t i = 0; i < m->n_imgs; i++) {
        for (int k = 0; k < 9; k++)
            finite &= isfinite(poses[i].rot[k]);
        for (int k = 0; k < 3; k++)
            finite &= isfinite(poses[i].c[k]) && fabs(poses[i].c[k]) <= (double)FLT_MAX;
    }
    if (!finite) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "%s: the camera poses are out of range once centred and scaled "
                         "(translations too large?)",
                         fn);
        goto done;
    }
    int one_cam = 1;
    for (int64_t i = 1; i < m->n_imgs; i++)
        one_cam &= m->imgs[i].cam == m->imgs[0].cam;
    if (one_cam) add_intrinsics(&j, root, m->imgs[0].cam);
    add_num(&j, root, "aabb_scale", NERF_COLMAP_AABB_SCALE);
    add_item(&j, root, "colmap_transform", matrix4(m34));
    cJSON *frames = cJSON_CreateArray();
    add_item(&j, root, "frames", frames);
    if (!j.ok) goto oom;
    const size_t plen = prefix != NULL ? strlen(prefix) : 0;
    for (int64_t i = 0; i < m->n_imgs; i++) {
        const image *im = &m->imgs[i];
        const pose *p = &poses[i];
        cJSON *fr = cJSON_CreateObject();
        if (fr == NULL || !cJSON_AddItemToArray(frames, fr)) {
            cJSON_Delete(fr);
            goto oom;
        }
        const size_t nlen = strlen(im->name);
        if (plen + nlen + 1 > NERF_DATASET_MAX_PATH) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "%s: image %lld: its path is %zu bytes, over the %d of "
                             "transforms.json's file_path",
                             fn, (long long)im->id, plen + nlen + 1, NERF_DATASET_MAX_PATH);
            goto done;
        }
        path = (char *)malloc(plen + nlen + 2);
        if (path == NULL) goto oom;
        if (plen > 0) {
            memcpy(path, prefix, plen);
            path[plen] = '/';
            memcpy(path + plen + 1, im->name, nlen + 1);
        } else {
            memcpy(path, im->name, nlen + 1);
        }
        if (cJSON_AddStringToObject(fr, "file_path", path) == NULL) j.ok = 0;
        free(path);
        path = NULL;
        add_num(&j, fr, "colmap_image_id", (double)im->id);
        if (!one_cam) add_intrinsics(&j, fr, im->cam);
        double c2w[12];
        for (int r = 0; r < 3; r++) {
            memcpy(&c2w[4 * r], &p->rot[3 * r], 3 * sizeof(double));
            c2w[4 * r + 3] = p->c[r];
        }
        add_item(&j, fr, "transform_matrix", matrix4(c2w));
        if (!j.ok) goto oom;
    }
    *out = cJSON_Print(root);
    if (*out == NULL) goto oom;
    goto done;
oom:
    rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory writing the JSON", fn);
done:
    free(path);
    cJSON_Delete(root);
    free(poses);
    return rc;
}

static int convert(char **out, line_src *cams, line_src *imgs, const char *prefix, eng_err *err) {
    int rc = ENG_OK;
    model m;
    memset(&m, 0, sizeof m);
    cams->line = (char *)malloc(NERF_COLMAP_MAX_LINE + 1);
    imgs->line = (char *)malloc(NERF_COLMAP_MAX_LINE + 1);
    if (cams->line == NULL || imgs->line == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", cams->fn);
        goto done;
    }
    if ((rc = read_cameras(&m, cams, err)) < 0) goto done;
    if ((rc = read_images(&m, imgs, err)) < 0) goto done;
    if ((rc = link_model(&m, cams, imgs, err)) != ENG_OK) goto done;
    rc = to_json(out, &m, prefix, cams->fn, err);
done:
    free(cams->line);
    free(imgs->line);
    cams->line = imgs->line = NULL;
    model_free(&m);
    return rc;
}

int nerf_colmap_convert_memory(char **out_json,
                               const char *cameras,
                               size_t cameras_len,
                               const char *images,
                               size_t images_len,
                               const char *image_prefix,
                               eng_err *err) {
    static const char fn[] = "nerf_colmap_convert_memory";
    ENG_ASSERT(out_json != NULL);
    ENG_ASSERT((cameras != NULL || cameras_len == 0) && (images != NULL || images_len == 0));
    line_src cs = {NULL, cameras, cameras_len, 0, fn, "cameras.txt", 0, NULL};
    line_src is = {NULL, images, images_len, 0, fn, "images.txt", 0, NULL};
    *out_json = NULL;
    return convert(out_json, &cs, &is, image_prefix, err);
}

void nerf_colmap_free(char *json) {
    cJSON_free(json);
}

/* ---- files ------------------------------------------------------------------------------- */

static char *join(const char *dir, const char *name) {
    const size_t a = strlen(dir), b = strlen(name);
    char *s = (char *)malloc(a + b + 2);
    if (s == NULL) return NULL;
    memcpy(s, dir, a);
    s[a] = '/';
    memcpy(s + a + 1, name, b + 1);
    return s;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Path `to` relative to folder `from` (both existing folders), e.g. "../images"; "" when the
 * same. */
static int rel_path(char **out, const char *from, const char *to, const char *fn, eng_err *err) {
    int rc = ENG_OK;
    char *a = realpath(from, NULL), *b = NULL, *r = NULL;
    *out = NULL;
    if (a == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot resolve the output folder (%s)", fn, from,
                         strerror(errno));
        goto done;
    }
    b = realpath(to, NULL);
    if (b == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot resolve the images folder (%s)", fn, to,
                         strerror(errno));
        goto done;
    }
    /* The longest common prefix that ends at a component boundary. */
    size_t common = 0, k = 0;
    for (;; k++) {
        const int ea = a[k] == '\0' || a[k] == '/', eb = b[k] == '\0' || b[k] == '/';
        if (ea && eb) common = k;
        if (a[k] != b[k] || a[k] == '\0') break;
    }
    if (b[1] == '\0') common = 0; /* `to` is "/" */
    size_t ups = 0;
    if (a[1] != '\0') { /* from "/" nothing goes up */
        for (const char *p = a + common; *p != '\0'; p++)
            ups += *p == '/';
    }
    const char *rest = a[1] == '\0' ? b : b + common;
    if (*rest == '/') rest++;
    r = (char *)malloc(3 * ups + strlen(rest) + 1);
    if (r == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", fn);
        goto done;
    }
    r[0] = '\0';
    for (size_t u = 0; u < ups; u++)
        strcat(r, "../");
    strcat(r, rest);
    const size_t n = strlen(r);
    if (n > 0 && r[n - 1] == '/') r[n - 1] = '\0';
    *out = r;
    r = NULL;
done:
    free(a);
    free(b);
    free(r);
    return rc;
}

/* Writes all of buf to fd, retrying short writes and EINTR. Returns 0 or an errno value. */
static int write_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        const ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        buf += (size_t)w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes text + "\n" to path through a temporary file in the same folder, then renames it. */
static int write_atomic(const char *path, const char *text, const char *fn, eng_err *err) {
    int rc = ENG_OK, fd = -1, made = 0;
    const size_t cap = strlen(path) + 64;
    char *tmp = (char *)malloc(cap);
    if (tmp == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", fn);
        goto done;
    }
    for (int i = 0; i < 100; i++) {
        snprintf(tmp, cap, "%s.tmp.%lld.%d", path, (long long)getpid(), i);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) break;
    }
    if (fd < 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot create a temporary file %s (%s)", fn, path,
                         tmp, strerror(errno));
        goto done;
    }
    made = 1;
    int e = write_all(fd, text, strlen(text));
    if (e == 0) e = write_all(fd, "\n", 1);
    if (e != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot write %s (%s)", fn, path, tmp, strerror(e));
        goto done;
    }
    if (fsync(fd) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot flush %s (%s)", fn, path, tmp,
                         strerror(errno));
        goto done;
    }
    e = close(fd);
    fd = -1;
    if (e != 0 || rename(tmp, path) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot put %s in its place (%s)", fn, path, tmp,
                         strerror(errno));
        goto done;
    }
    made = 0;
done:
    if (fd >= 0) close(fd);
    if (made) unlink(tmp);
    free(tmp);
    return rc;
}

int nerf_colmap_import(const char *sparse_dir,
                       const char *images_dir,
                       const char *out_json,
                       eng_err *err) {
    static const char fn[] = "nerf_colmap_import";
    int rc = ENG_OK;
    char *cam_path = NULL, *img_path = NULL, *out_dir = NULL, *prefix = NULL, *json = NULL;
    FILE *cf = NULL, *imf = NULL;
    if (sparse_dir == NULL || images_dir == NULL || out_json == NULL || out_json[0] == '\0') {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: expected the sparse folder, the images folder and the output file",
                         fn);
        goto done;
    }
    cam_path = join(sparse_dir, "cameras.txt");
    img_path = join(sparse_dir, "images.txt");
    const char *slash = strrchr(out_json, '/');
    out_dir = slash == NULL ? join(".", "") : (char *)malloc((size_t)(slash - out_json) + 2);
    if (cam_path == NULL || img_path == NULL || out_dir == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", fn);
        goto done;
    }
    if (slash != NULL) {
        const size_t n = slash == out_json ? 1 : (size_t)(slash - out_json);
        memcpy(out_dir, out_json, n);
        out_dir[n] = '\0';
    }
    for (int k = 0; k < 2; k++) {
        const char *p = k == 0 ? cam_path : img_path;
        if (!file_exists(p)) {
            char *bin = join(sparse_dir, k == 0 ? "cameras.bin" : "images.bin");
            const int has_bin = bin != NULL && file_exists(bin);
            free(bin);
            rc = eng_err_set(err, ENG_E_IO, "%s: %s: no such file%s", fn, p,
                             has_bin ? " (the model is binary: convert it with `colmap "
                                       "model_converter --input_path DIR --output_path DIR "
                                       "--output_type TXT`)"
                                     : "");
            goto done;
        }
    }
    if ((rc = rel_path(&prefix, out_dir, images_dir, fn, err)) != ENG_OK) goto done;
    cf = fopen(cam_path, "rb");
    imf = fopen(img_path, "rb");
    if (cf == NULL || imf == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot open (%s)", fn,
                         cf == NULL ? cam_path : img_path, strerror(errno));
        goto done;
    }
    line_src cs = {cf, NULL, 0, 0, fn, cam_path, 0, NULL};
    line_src is = {imf, NULL, 0, 0, fn, img_path, 0, NULL};
    if ((rc = convert(&json, &cs, &is, prefix, err)) != ENG_OK) goto done;
    rc = write_atomic(out_json, json, fn, err);
done:
    if (cf != NULL) fclose(cf);
    if (imf != NULL) fclose(imf);
    nerf_colmap_free(json);
    free(prefix);
    free(out_dir);
    free(img_path);
    free(cam_path);
    return rc;
}
