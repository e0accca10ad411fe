/* nerf_scene.c: the procedural scene of `nerf demo` (see nerf_scene.h): exact ray-object
 * intersections (sphere, box, capped cylinder), textures, Lambert + Blinn-Phong shading with
 * exact shadow rays, the Fibonacci camera rig, the supersampling renderer on the engine's pool,
 * and the NeRF-synthetic writer (PNGs + transforms_*.json). Everything is double precision. */
#define _POSIX_C_SOURCE 200809L

#include "nerf_scene.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eng_image.h"
#include "eng_rng.h"
#include "eng_sched.h"

#define SCENE_PI     3.14159265358979323846
#define RIG_Z_LO     (-0.3) /* the spiral's band of (z - centre) / radius */
#define RIG_Z_HI     0.95
#define SHADOW_EPS   1e-7      /* shadow rays start this far out along the normal */
#define TRACE_T_MIN  1e-9      /* hits closer than this along a ray are ignored */
#define RIG_SEED_OFS 0x5ce11eu /* the Philox stream offset of the spiral's turn */

/* ---- the scene: a constant table ----------------------------------------------------------- */

typedef enum { SHAPE_SPHERE, SHAPE_BOX, SHAPE_CYLINDER } shape_kind;

typedef struct scene_obj {
    shape_kind shape;
    double c[3];    /* centre, world */
    double r[9];    /* local-to-world rotation, row-major (columns: local x, y, z axes) */
    double size[3]; /* sphere: radius; box: half extents; cylinder: radius, half length */
    double ks;      /* specular strength */
} scene_obj;

/* Rz(c1, s1) Rx(c2, s2), both exact rationals (Pythagorean triples), so the tables stay
 * orthonormal to the last bit without calling cos/sin at run time. */
#define ROT_ZX(c1, s1, c2, s2)                                                                     \
    { (c1), -(s1) * (c2), (s1) * (s2), (s1), (c1) * (c2), -(c1) * (s2), 0.0, (s2), (c2) }

static const scene_obj scene_objs[NERF_SCENE_OBJECT_COUNT] = {
    /* NERF_SCENE_OBJ_SPHERE: its checker's pole tilted (Rx with cos 15/17) */
    {SHAPE_SPHERE,
     {0.5, 0.5, 0.5},
     ROT_ZX(1.0, 0.0, 15.0 / 17.0, 8.0 / 17.0),
     {0.15, 0.15, 0.15},
     NERF_SCENE_SPECULAR},
    /* NERF_SCENE_OBJ_BOX: 0.303 from the centre, bounding radius 0.08 sqrt(3) = 0.139 */
    {SHAPE_BOX,
     {0.72, 0.33, 0.38},
     ROT_ZX(0.8, 0.6, 12.0 / 13.0, 5.0 / 13.0),
     {0.08, 0.08, 0.08},
     0.0},
    /* NERF_SCENE_OBJ_CYLINDER: 0.303 from the centre, bounding radius sqrt(0.06^2 + 0.12^2) */
    {SHAPE_CYLINDER,
     {0.29, 0.71, 0.44},
     ROT_ZX(5.0 / 13.0, 12.0 / 13.0, 0.8, 0.6),
     {0.06, 0.12, 0.0},
     0.0},
    /* NERF_SCENE_OBJ_BALL */
    {SHAPE_SPHERE, {0.55, 0.45, 0.77}, ROT_ZX(1.0, 0.0, 1.0, 0.0), {0.07, 0.07, 0.07}, 0.0},
};

static const double sphere_checker[2][3] = {{0.95, 0.55, 0.15}, {0.95, 0.92, 0.82}};
/* box faces by local axis and sign: +x, -x, +y, -y, +z, -z */
static const double box_faces[6][3] = {{0.85, 0.2, 0.2},  {0.55, 0.35, 0.85}, {0.2, 0.35, 0.9},
                                       {0.95, 0.85, 0.2}, {0.8, 0.3, 0.8},    {0.25, 0.8, 0.85}};
static const double cyl_bands[2][3] = {{0.1, 0.55, 0.6}, {0.92, 0.92, 0.92}};
static const double cyl_cap[3] = {0.95, 0.8, 0.2};
static const double ball_rgb[3] = {0.25, 0.7, 0.3};

enum { SPHERE_CELLS_U = 12, SPHERE_CELLS_V = 6, CYL_BANDS = 6 };

/* ---- small vector helpers ------------------------------------------------------------------ */

static double dot3(const double a[3], const double b[3]) {
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static void cross3(double out[3], const double a[3], const double b[3]) {
    const double x = a[1] * b[2] - a[2] * b[1];
    const double y = a[2] * b[0] - a[0] * b[2];
    const double z = a[0] * b[1] - a[1] * b[0];
    out[0] = x;
    out[1] = y;
    out[2] = z;
}

/* Returns the length before normalising (0: left as is). */
static double normalize3(double v[3]) {
    const double len = sqrt(dot3(v, v));
    if (len > 0.0) {
        v[0] /= len;
        v[1] /= len;
        v[2] /= len;
    }
    return len;
}

/* local = R^T world (R row-major, local-to-world). */
static void to_local(double out[3], const double r[9], const double v[3]) {
    for (int i = 0; i < 3; i++)
        out[i] = r[0 + i] * v[0] + r[3 + i] * v[1] + r[6 + i] * v[2];
}

static void to_world(double out[3], const double r[9], const double v[3]) {
    for (int i = 0; i < 3; i++)
        out[i] = r[3 * i + 0] * v[0] + r[3 * i + 1] * v[1] + r[3 * i + 2] * v[2];
}

static int finite3(const double v[3]) {
    return isfinite(v[0]) && isfinite(v[1]) && isfinite(v[2]);
}

/* ---- intersections, in the object's local frame -------------------------------------------- */

/* Each returns the smallest t > t_min of the ray o + t d with the surface (or INFINITY) and the
 * local outward normal there. A ray starting inside gets its exit point. */

static double
hit_sphere(double n[3], const double o[3], const double d[3], double rad, double tmin) {
    const double b = dot3(o, d), c = dot3(o, o) - rad * rad;
    const double a = dot3(d, d);
    const double disc = b * b - a * c;
    if (disc < 0.0) return INFINITY;
    const double s = sqrt(disc);
    /* the stable pair of roots of a t^2 + 2 b t + c = 0 */
    const double q = b >= 0.0 ? -(b + s) : -(b - s);
    double t0 = q / a, t1 = q != 0.0 ? c / q : t0;
    if (t0 > t1) {
        const double tmp = t0;
        t0 = t1;
        t1 = tmp;
    }
    const double t = t0 > tmin ? t0 : (t1 > tmin ? t1 : INFINITY);
    if (t == INFINITY) return t;
    for (int i = 0; i < 3; i++)
        n[i] = (o[i] + t * d[i]) / rad;
    return t;
}

static double
hit_box(double n[3], const double o[3], const double d[3], const double h[3], double tmin) {
    double t_in = -INFINITY, t_out = INFINITY;
    int ax_in = -1, ax_out = -1;
    for (int i = 0; i < 3; i++) {
        if (d[i] == 0.0) {
            if (fabs(o[i]) > h[i]) return INFINITY; /* parallel to this slab and outside it */
            continue;
        }
        double t0 = (-h[i] - o[i]) / d[i], t1 = (h[i] - o[i]) / d[i];
        if (t0 > t1) {
            const double tmp = t0;
            t0 = t1;
            t1 = tmp;
        }
        if (t0 > t_in) {
            t_in = t0;
            ax_in = i;
        }
        if (t1 < t_out) {
            t_out = t1;
            ax_out = i;
        }
    }
    if (t_in > t_out || ax_in < 0) return INFINITY;
    n[0] = n[1] = n[2] = 0.0;
    if (t_in > tmin) {
        n[ax_in] = d[ax_in] > 0.0 ? -1.0 : 1.0; /* the face the ray enters through */
        return t_in;
    }
    if (t_out > tmin) {
        n[ax_out] = d[ax_out] > 0.0 ? 1.0 : -1.0;
        return t_out;
    }
    return INFINITY;
}

/* Capped cylinder about local z: radius size[0], z in [-size[1], size[1]]. */
static double
hit_cylinder(double n[3], const double o[3], const double d[3], const double sz[3], double tmin) {
    const double rad = sz[0], hh = sz[1];
    double best = INFINITY;
    /* the side: (ox + t dx)^2 + (oy + t dy)^2 = rad^2 */
    const double a = d[0] * d[0] + d[1] * d[1];
    if (a > 0.0) {
        const double b = o[0] * d[0] + o[1] * d[1];
        const double c = o[0] * o[0] + o[1] * o[1] - rad * rad;
        const double disc = b * b - a * c;
        if (disc >= 0.0) {
            const double s = sqrt(disc);
            const double q = b >= 0.0 ? -(b + s) : -(b - s);
            const double ts[2] = {q / a, q != 0.0 ? c / q : q / a};
            for (int k = 0; k < 2; k++) {
                const double t = ts[k];
                if (t > tmin && t < best && fabs(o[2] + t * d[2]) <= hh) {
                    best = t;
                    n[0] = (o[0] + t * d[0]) / rad;
                    n[1] = (o[1] + t * d[1]) / rad;
                    n[2] = 0.0;
                }
            }
        }
    }
    /* the caps z = +-hh */
    if (d[2] != 0.0) {
        for (int k = 0; k < 2; k++) {
            const double zc = k == 0 ? hh : -hh;
            const double t = (zc - o[2]) / d[2];
            const double x = o[0] + t * d[0], y = o[1] + t * d[1];
            if (t > tmin && t < best && x * x + y * y <= rad * rad) {
                best = t;
                n[0] = 0.0;
                n[1] = 0.0;
                n[2] = k == 0 ? 1.0 : -1.0;
            }
        }
    }
    return best;
}

/* The first object along o + t d (t > tmin), or -1; *t_out and the local normal n_local. */
static int
scene_first(double *t_out, double n_local[3], const double o[3], const double d[3], double tmin) {
    int best = -1;
    double best_t = INFINITY;
    for (int i = 0; i < NERF_SCENE_OBJECT_COUNT; i++) {
        const scene_obj *ob = &scene_objs[i];
        double rel[3] = {o[0] - ob->c[0], o[1] - ob->c[1], o[2] - ob->c[2]};
        double ol[3], dl[3], nl[3] = {0, 0, 0};
        double t = INFINITY;
        to_local(ol, ob->r, rel);
        to_local(dl, ob->r, d);
        switch (ob->shape) {
        case SHAPE_SPHERE: t = hit_sphere(nl, ol, dl, ob->size[0], tmin); break;
        case SHAPE_BOX: t = hit_box(nl, ol, dl, ob->size, tmin); break;
        case SHAPE_CYLINDER: t = hit_cylinder(nl, ol, dl, ob->size, tmin); break;
        }
        if (t < best_t) {
            best_t = t;
            best = i;
            memcpy(n_local, nl, sizeof nl);
        }
    }
    *t_out = best_t;
    return best;
}

/* The texture of object `id` at local point q (on its surface) with local normal nl. */
static void albedo_at(double out[3], int id, const double q[3], const double nl[3]) {
    const scene_obj *ob = &scene_objs[id];
    const double *c = ball_rgb;
    switch (id) {
    case NERF_SCENE_OBJ_SPHERE: {
        /* u: longitude about the local z pole, v: colatitude, both in [0, 1] */
        const double u = atan2(q[1], q[0]) / (2.0 * SCENE_PI) + 0.5;
        const double cz = fmax(-1.0, fmin(1.0, q[2] / ob->size[0]));
        const double v = acos(cz) / SCENE_PI;
        const int64_t cu = (int64_t)floor(u * SPHERE_CELLS_U),
                      cv = (int64_t)floor(v * SPHERE_CELLS_V);
        c = sphere_checker[(cu + cv) & 1];
        break;
    }
    case NERF_SCENE_OBJ_BOX: {
        int ax = 0;
        for (int i = 1; i < 3; i++)
            if (fabs(nl[i]) > fabs(nl[ax])) ax = i;
        c = box_faces[2 * ax + (nl[ax] > 0.0 ? 0 : 1)];
        break;
    }
    case NERF_SCENE_OBJ_CYLINDER: {
        if (fabs(nl[2]) > 0.5) {
            c = cyl_cap;
        } else {
            const double hh = ob->size[1];
            int64_t band = (int64_t)floor((q[2] + hh) / (2.0 * hh) * CYL_BANDS);
            band = band < 0 ? 0 : (band >= CYL_BANDS ? CYL_BANDS - 1 : band);
            c = cyl_bands[band & 1];
        }
        break;
    }
    default: break; /* the ball: plain */
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
}

int nerf_scene_trace(nerf_scene_hit *hit, const double o[3], const double d[3]) {
    static const double light_raw[3] = NERF_SCENE_LIGHT_DIR;
    double t = INFINITY, nl[3] = {0, 0, 0};
    ENG_ASSERT(o != NULL && d != NULL);
    const int id = scene_first(&t, nl, o, d, TRACE_T_MIN);
    if (id < 0) return 0;
    if (hit == NULL) return 1;
    const scene_obj *ob = &scene_objs[id];
    double l[3] = {light_raw[0], light_raw[1], light_raw[2]};
    normalize3(l);
    hit->t = t;
    hit->object = id;
    for (int i = 0; i < 3; i++)
        hit->p[i] = o[i] + t * d[i];
    to_world(hit->n, ob->r, nl);
    normalize3(hit->n);
    double rel[3] = {hit->p[0] - ob->c[0], hit->p[1] - ob->c[1], hit->p[2] - ob->c[2]}, q[3];
    to_local(q, ob->r, rel);
    albedo_at(hit->albedo, id, q, nl);

    const double ndl = dot3(hit->n, l);
    double vis = 0.0, spec = 0.0;
    if (ndl > 0.0) {
        double so[3], st = INFINITY, sn[3];
        for (int i = 0; i < 3; i++)
            so[i] = hit->p[i] + SHADOW_EPS * hit->n[i];
        vis = scene_first(&st, sn, so, l, TRACE_T_MIN) < 0 ? 1.0 : 0.0;
        if (ob->ks > 0.0 && vis > 0.0) {
            double h[3] = {l[0] - d[0], l[1] - d[1], l[2] - d[2]};
            if (normalize3(h) > 0.0) {
                const double ndh = dot3(hit->n, h);
                if (ndh > 0.0) spec = ob->ks * pow(ndh, NERF_SCENE_SHININESS);
            }
        }
    }
    const double lambert = NERF_SCENE_AMBIENT + NERF_SCENE_DIFFUSE * fmax(ndl, 0.0) * vis;
    for (int i = 0; i < 3; i++) {
        const double v = hit->albedo[i] * lambert + spec;
        hit->rgb[i] = v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
    }
    return 1;
}

/* ---- distances ----------------------------------------------------------------------------- */

static double obj_sdf(int id, const double p[3]) {
    const scene_obj *ob = &scene_objs[id];
    const double rel[3] = {p[0] - ob->c[0], p[1] - ob->c[1], p[2] - ob->c[2]};
    double q[3];
    to_local(q, ob->r, rel);
    switch (ob->shape) {
    case SHAPE_SPHERE: return sqrt(dot3(q, q)) - ob->size[0];
    case SHAPE_BOX: {
        double out2 = 0.0, in = -INFINITY;
        for (int i = 0; i < 3; i++) {
            const double e = fabs(q[i]) - ob->size[i];
            if (e > 0.0) out2 += e * e;
            in = fmax(in, e);
        }
        return sqrt(out2) + fmin(in, 0.0);
    }
    case SHAPE_CYLINDER: {
        const double er = sqrt(q[0] * q[0] + q[1] * q[1]) - ob->size[0];
        const double ez = fabs(q[2]) - ob->size[1];
        const double a = fmax(er, 0.0), b = fmax(ez, 0.0);
        return sqrt(a * a + b * b) + fmin(fmax(er, ez), 0.0);
    }
    }
    return INFINITY;
}

double nerf_scene_sdf(const double p[3]) {
    double best = INFINITY;
    ENG_ASSERT(p != NULL);
    for (int i = 0; i < NERF_SCENE_OBJECT_COUNT; i++)
        best = fmin(best, obj_sdf(i, p));
    return best;
}

int nerf_scene_occupancy(const float p[3]) {
    ENG_ASSERT(p != NULL);
    const double pd[3] = {p[0], p[1], p[2]};
    for (int i = 0; i < NERF_SCENE_OBJECT_COUNT; i++)
        if (obj_sdf(i, pd) <= 0.0) return i + 1;
    return 0;
}

/* ---- parameters and cameras ---------------------------------------------------------------- */

void nerf_scene_params_init(nerf_scene_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->width = 128;
    p->height = 128;
    p->n_train = 100;
    p->n_test = 20;
    p->supersample = 2;
    p->seed = 0;
    p->camera_angle_x = 0.6911112070083618;
    p->radius = 1.3;
    p->progress = NULL;
}

int nerf_scene_params_check(const nerf_scene_params *p, eng_err *err) {
    static const char fn[] = "nerf_scene_params_check";
    ENG_ASSERT(p != NULL);
    if (p->width < 1 || p->width > NERF_SCENE_MAX_DIM || p->height < 1 ||
        p->height > NERF_SCENE_MAX_DIM) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: width x height is %jd x %jd, expected each in 1..%d", fn,
                           (intmax_t)p->width, (intmax_t)p->height, NERF_SCENE_MAX_DIM);
    }
    if (p->n_train < 1 || p->n_train > NERF_SCENE_MAX_VIEWS) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n_train is %jd, expected 1..%d", fn,
                           (intmax_t)p->n_train, NERF_SCENE_MAX_VIEWS);
    }
    if (p->n_test < 0 || p->n_test > NERF_SCENE_MAX_VIEWS) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: n_test is %jd, expected 0..%d", fn,
                           (intmax_t)p->n_test, NERF_SCENE_MAX_VIEWS);
    }
    if (p->supersample < 1 || p->supersample > NERF_SCENE_MAX_SUPERSAMPLE) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: supersample is %jd, expected 1..%d", fn,
                           (intmax_t)p->supersample, NERF_SCENE_MAX_SUPERSAMPLE);
    }
    if (!(p->camera_angle_x > 0.0 && p->camera_angle_x < SCENE_PI)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: camera_angle_x is %g, expected radians in (0, pi)", fn,
                           p->camera_angle_x);
    }
    if (!(p->radius > NERF_SCENE_BOUND_RADIUS && p->radius < 1e6)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: radius is %g, expected more than %g (the cameras must be outside "
                           "the scene) and below 1e6",
                           fn, p->radius, NERF_SCENE_BOUND_RADIUS);
    }
    return ENG_OK;
}

int nerf_scene_look_at(
    double c2w[12], const double eye[3], const double target[3], const double up[3], eng_err *err) {
    static const double alt_up[2][3] = {{0.0, 1.0, 0.0}, {1.0, 0.0, 0.0}};
    ENG_ASSERT(c2w != NULL && eye != NULL && target != NULL && up != NULL);
    if (!finite3(eye) || !finite3(target) || !finite3(up)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_scene_look_at: eye, target and up must be finite");
    }
    double f[3] = {target[0] - eye[0], target[1] - eye[1], target[2] - eye[2]};
    if (!(normalize3(f) > 0.0)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_scene_look_at: eye and target are the same point");
    }
    double right[3], u[3] = {up[0], up[1], up[2]};
    normalize3(u);
    cross3(right, f, u);
    for (int k = 0; k < 2 && normalize3(right) < 1e-6; k++)
        cross3(right, f, alt_up[k]); /* up (nearly) along the view: any other up will do */
    double cam_up[3];
    cross3(cam_up, right, f);
    normalize3(cam_up);
    for (int i = 0; i < 3; i++) {
        c2w[4 * i + 0] = right[i];
        c2w[4 * i + 1] = cam_up[i];
        c2w[4 * i + 2] = -f[i]; /* the camera looks down its -z */
        c2w[4 * i + 3] = eye[i];
    }
    return ENG_OK;
}

/* Global spiral index of view `index` of `split`: among n = n_train + n_test positions, the ones
 * with floor((g + 1) nt / n) > floor(g nt / n) are the test views (spread evenly). */
static int64_t rig_global_index(const nerf_scene_params *p, nerf_scene_split split, int64_t index) {
    const int64_t nt = p->n_test, n = p->n_train + p->n_test;
    if (split == NERF_SCENE_TEST) return ((index + 1) * n + nt - 1) / nt - 1;
    /* the smallest k with k - floor(k nt / n) (training views among [0, k)) = index + 1 */
    int64_t lo = 1, hi = n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (mid - mid * nt / n >= index + 1) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo - 1;
}

int nerf_scene_camera_get(nerf_scene_camera *out,
                          const nerf_scene_params *p,
                          nerf_scene_split split,
                          int64_t index,
                          eng_err *err) {
    static const char fn[] = "nerf_scene_camera_get";
    int rc = ENG_OK;
    ENG_ASSERT(out != NULL && p != NULL);
    if ((rc = nerf_scene_params_check(p, err)) != ENG_OK) {
        eng_err_prefix(err, "%s", fn);
        goto done;
    }
    if (split != NERF_SCENE_TRAIN && split != NERF_SCENE_TEST) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: split %d is not TRAIN or TEST", fn,
                         (int)split);
        goto done;
    }
    const int64_t count = split == NERF_SCENE_TRAIN ? p->n_train : p->n_test;
    if (index < 0 || index >= count) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s view %jd does not exist (0..%jd)", fn,
                         split == NERF_SCENE_TRAIN ? "train" : "test", (intmax_t)index,
                         (intmax_t)count - 1);
        goto done;
    }
    const int64_t n = p->n_train + p->n_test;
    const int64_t g = rig_global_index(p, split, index);
    float turn[4];
    eng_rng_uniform_block(turn, p->seed, RIG_SEED_OFS, 0);
    const double golden = SCENE_PI * (3.0 - sqrt(5.0));
    const double z = RIG_Z_HI - (RIG_Z_HI - RIG_Z_LO) * ((double)g + 0.5) / (double)n;
    const double rxy = sqrt(fmax(0.0, 1.0 - z * z));
    const double phi = golden * (double)g + 2.0 * SCENE_PI * (double)turn[0];
    const double centre[3] = {NERF_SCENE_CENTER, NERF_SCENE_CENTER, NERF_SCENE_CENTER};
    const double up[3] = {0.0, 0.0, 1.0};
    const double eye[3] = {centre[0] + p->radius * rxy * cos(phi),
                           centre[1] + p->radius * rxy * sin(phi), centre[2] + p->radius * z};
    memset(out, 0, sizeof *out);
    out->width = p->width;
    out->height = p->height;
    out->fx = 0.5 * (double)p->width / tan(0.5 * p->camera_angle_x);
    out->fy = out->fx;
    out->cx = 0.5 * (double)p->width;
    out->cy = 0.5 * (double)p->height;
    rc = nerf_scene_look_at(out->c2w, eye, centre, up, err);
done:
    return rc;
}

void nerf_scene_camera_ray(
    const nerf_scene_camera *cam, double px, double py, double o[3], double d[3]) {
    ENG_ASSERT(cam != NULL && o != NULL && d != NULL);
    const double dc[3] = {(px + 0.5 - cam->cx) / cam->fx, -(py + 0.5 - cam->cy) / cam->fy, -1.0};
    for (int i = 0; i < 3; i++) {
        const double *row = &cam->c2w[4 * i];
        d[i] = row[0] * dc[0] + row[1] * dc[1] + row[2] * dc[2];
        o[i] = row[3];
    }
    normalize3(d);
}

/* ---- rendering ----------------------------------------------------------------------------- */

typedef struct render_job {
    const nerf_scene_camera *cam;
    int64_t ss;
    uint8_t *rgba8;
    float *rgba32;
    float *depth;
} render_job;

static uint8_t to_u8(double v) {
    v = v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
    return (uint8_t)floor(v * 255.0 + 0.5);
}

/* Rows [y0, y1): each pixel from its own rays only, so any split gives the same bytes. */
static void render_rows(void *user, int64_t y0, int64_t y1) {
    const render_job *j = (const render_job *)user;
    const nerf_scene_camera *cam = j->cam;
    const int64_t w = cam->width, ss = j->ss;
    const double inv_ss = 1.0 / (double)ss;
    nerf_scene_hit hit;
    double o[3], d[3];
    for (int64_t y = y0; y < y1; y++) {
        for (int64_t x = 0; x < w; x++) {
            const int64_t px = y * w + x;
            if (j->rgba8 != NULL || j->rgba32 != NULL) {
                double acc[3] = {0, 0, 0};
                int64_t hits = 0;
                for (int64_t sy = 0; sy < ss; sy++) {
                    for (int64_t sx = 0; sx < ss; sx++) {
                        /* sub-pixel centres ((s + 0.5) / N), as offsets from the pixel centre */
                        nerf_scene_camera_ray(cam, (double)x + ((double)sx + 0.5) * inv_ss - 0.5,
                                              (double)y + ((double)sy + 0.5) * inv_ss - 0.5, o, d);
                        if (!nerf_scene_trace(&hit, o, d)) continue;
                        hits++;
                        acc[0] += hit.rgb[0];
                        acc[1] += hit.rgb[1];
                        acc[2] += hit.rgb[2];
                    }
                }
                double rgba[4] = {0, 0, 0, (double)hits / (double)(ss * ss)};
                for (int c = 0; c < 3 && hits > 0; c++)
                    rgba[c] = acc[c] / (double)hits;
                for (int c = 0; c < 4; c++) {
                    if (j->rgba32 != NULL) j->rgba32[4 * px + c] = (float)rgba[c];
                    if (j->rgba8 != NULL) j->rgba8[4 * px + c] = to_u8(rgba[c]);
                }
            }
            if (j->depth != NULL) {
                double t = INFINITY, nl[3];
                nerf_scene_camera_ray(cam, (double)x, (double)y, o, d);
                (void)scene_first(&t, nl, o, d, TRACE_T_MIN);
                j->depth[px] = (float)t;
            }
        }
    }
}

int nerf_scene_render(eng_ctx *ctx,
                      uint8_t *rgba8,
                      float *rgba32,
                      float *depth,
                      const nerf_scene_camera *cam,
                      int64_t supersample,
                      eng_err *err) {
    static const char fn[] = "nerf_scene_render";
    ENG_ASSERT(cam != NULL);
    if (rgba8 == NULL && rgba32 == NULL && depth == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: no output (rgba8, rgba32 and depth NULL)",
                           fn);
    }
    if (cam->width < 1 || cam->width > NERF_SCENE_MAX_DIM || cam->height < 1 ||
        cam->height > NERF_SCENE_MAX_DIM) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: camera size %jd x %jd, expected each in 1..%d", fn,
                           (intmax_t)cam->width, (intmax_t)cam->height, NERF_SCENE_MAX_DIM);
    }
    if (!(isfinite(cam->fx) && isfinite(cam->fy) && cam->fx > 0.0 && cam->fy > 0.0)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: focal lengths fx %g, fy %g, expected finite and > 0", fn, cam->fx,
                           cam->fy);
    }
    if (!(isfinite(cam->cx) && isfinite(cam->cy))) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: principal point (%g, %g) is not finite", fn,
                           cam->cx, cam->cy);
    }
    for (int i = 0; i < 12; i++) {
        if (!isfinite(cam->c2w[i])) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: c2w[%d][%d] is %g, expected finite", fn,
                               i / 4, i % 4, cam->c2w[i]);
        }
    }
    if (supersample < 1 || supersample > NERF_SCENE_MAX_SUPERSAMPLE) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: supersample is %jd, expected 1..%d", fn,
                           (intmax_t)supersample, NERF_SCENE_MAX_SUPERSAMPLE);
    }
    render_job job = {cam, supersample, rgba8, rgba32, depth};
    eng_pool_parallel_for(ctx != NULL ? eng_ctx_pool(ctx) : NULL, cam->height, 1, render_rows,
                          &job);
    return ENG_OK;
}

/* ---- writing the dataset ------------------------------------------------------------------- */

/* mkdir -p: each missing component of `path` is created (0755). */
static int make_dirs(const char *path, eng_err *err) {
    static const char fn[] = "nerf_scene_write";
    int rc = ENG_OK;
    const size_t len = strlen(path);
    char *buf = (char *)malloc(len + 1);
    struct stat st;
    if (buf == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory (%zu bytes for a path)", fn, len + 1);
        goto done;
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        const char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            rc = eng_err_set(err, ENG_E_IO, "%s: cannot create directory %s (%s)", fn, buf,
                             strerror(errno));
            goto done;
        }
        buf[i] = saved;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s is not a directory", fn, path);
        goto done;
    }
done:
    free(buf);
    return rc;
}

/* Writes `text` to `path` through PATH.tmp.<pid>, synced, then renamed over it. */
static int write_text_atomic(const char *path, const char *text, eng_err *err) {
    static const char fn[] = "nerf_scene_write";
    int rc = ENG_OK, made_tmp = 0;
    const size_t cap = strlen(path) + 32, n = strlen(text);
    char *tmp = (char *)malloc(cap);
    FILE *f = NULL;
    if (tmp == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory (%zu bytes for a path)", fn, cap);
        goto done;
    }
    snprintf(tmp, cap, "%s.tmp.%jd", path, (intmax_t)getpid());
    if ((f = fopen(tmp, "wb")) == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "%s: cannot create %s (%s)", fn, tmp, strerror(errno));
        goto done;
    }
    made_tmp = 1;
    if (fwrite(text, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: cannot write %zu bytes to %s (%s)", fn, n, tmp,
                         strerror(errno));
        goto done;
    }
    const int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: cannot close %s (%s)", fn, tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: cannot rename %s to %s (%s)", fn, tmp, path,
                         strerror(errno));
        goto done;
    }
    made_tmp = 0;
done:
    if (f != NULL) fclose(f);
    if (made_tmp) remove(tmp);
    free(tmp);
    return rc;
}

static const char *split_name(nerf_scene_split s) {
    return s == NERF_SCENE_TRAIN ? "train" : "test";
}

/* A JSON number that reads back as exactly `v` (finite): the shortest of %.15g, %.16g and
 * %.17g that strtod returns unchanged. cJSON's own printing stops at 15 digits when those are
 * within an epsilon, which can lose the last bit; the renders use the exact doubles. */
static cJSON *json_number(double v) {
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}

/* A JSON array of n exact numbers. */
static cJSON *json_numbers(const double *v, int n) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr != NULL && i < n; i++) {
        cJSON *num = json_number(v[i]);
        if (num == NULL || !cJSON_AddItemToArray(arr, num)) {
            cJSON_Delete(num);
            cJSON_Delete(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* The transforms_<split>.json text of a split into *out (free with cJSON_free). */
static int
split_json(char **out, const nerf_scene_params *p, nerf_scene_split split, eng_err *err) {
    int rc = ENG_OK;
    char *text = NULL, name[64];
    const int64_t count = split == NERF_SCENE_TRAIN ? p->n_train : p->n_test;
    cJSON *root = cJSON_CreateObject(), *frames = NULL;
    int ok = root != NULL;
    cJSON *angle = ok ? json_number(p->camera_angle_x) : NULL;
    ok = ok && angle != NULL && cJSON_AddItemToObject(root, "camera_angle_x", angle);
    if (!ok) cJSON_Delete(angle);
    ok = ok && cJSON_AddNumberToObject(root, "scale", 1.0) != NULL;
    const double zeros[3] = {0.0, 0.0, 0.0};
    cJSON *offset = ok ? json_numbers(zeros, 3) : NULL;
    ok = ok && offset != NULL && cJSON_AddItemToObject(root, "offset", offset);
    if (!ok) cJSON_Delete(offset);
    ok = ok && cJSON_AddNumberToObject(root, "aabb_scale", 1) != NULL;
    ok = ok && (frames = cJSON_AddArrayToObject(root, "frames")) != NULL;
    for (int64_t i = 0; ok && i < count; i++) {
        nerf_scene_camera cam;
        if ((rc = nerf_scene_camera_get(&cam, p, split, i, err)) != ENG_OK) goto done;
        cJSON *frame = cJSON_CreateObject(), *mat = cJSON_CreateArray();
        ok = frame != NULL && mat != NULL && cJSON_AddItemToArray(frames, frame);
        if (!ok) {
            cJSON_Delete(frame);
            cJSON_Delete(mat);
            break;
        }
        snprintf(name, sizeof name, "./%s/r_%jd", split_name(split), (intmax_t)i);
        ok = cJSON_AddStringToObject(frame, "file_path", name) != NULL;
        ok = ok && cJSON_AddItemToObject(frame, "transform_matrix", mat);
        if (!ok) cJSON_Delete(mat);
        for (int r = 0; ok && r < 4; r++) {
            const double last[4] = {0.0, 0.0, 0.0, 1.0};
            cJSON *row = json_numbers(r < 3 ? &cam.c2w[4 * r] : last, 4);
            ok = row != NULL && cJSON_AddItemToArray(mat, row);
            if (!ok) cJSON_Delete(row);
        }
    }
    if (ok) text = cJSON_Print(root);
    if (text == NULL) {
        rc = eng_err_set(err, ENG_E_OOM,
                         "nerf_scene_write: out of memory building transforms_%s.json",
                         split_name(split));
    }
    *out = text;
done:
    cJSON_Delete(root);
    return rc;
}

int nerf_scene_write(const char *dir, const nerf_scene_params *p, eng_ctx *ctx, eng_err *err) {
    static const char fn[] = "nerf_scene_write";
    int rc = ENG_OK;
    eng_image img = {0};
    char *path = NULL, *json = NULL;
    ENG_ASSERT(dir != NULL && p != NULL);
    if ((rc = nerf_scene_params_check(p, err)) != ENG_OK) {
        eng_err_prefix(err, "%s: %s", fn, dir);
        goto done;
    }
    const size_t cap = strlen(dir) + 64;
    if ((path = (char *)malloc(cap)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory (%zu bytes for a path)", fn, cap);
        goto done;
    }
    if ((rc = eng_image_alloc(&img, p->width, p->height, 4, err)) != ENG_OK) goto done;
    for (int s = 0; s < NERF_SCENE_SPLIT_COUNT; s++) {
        const nerf_scene_split split = (nerf_scene_split)s;
        const int64_t count = split == NERF_SCENE_TRAIN ? p->n_train : p->n_test;
        if (count == 0) continue;
        snprintf(path, cap, "%s/%s", dir, split_name(split));
        if ((rc = make_dirs(path, err)) != ENG_OK) goto done;
        for (int64_t i = 0; i < count; i++) {
            nerf_scene_camera cam;
            if ((rc = nerf_scene_camera_get(&cam, p, split, i, err)) != ENG_OK) goto done;
            rc = nerf_scene_render(ctx, img.data, NULL, NULL, &cam, p->supersample, err);
            if (rc != ENG_OK) goto done;
            snprintf(path, cap, "%s/%s/r_%jd.png", dir, split_name(split), (intmax_t)i);
            if ((rc = eng_image_write_png(path, &img, NULL, 0, err)) != ENG_OK) goto done;
            if (p->progress != NULL) eng_progress_add(p->progress, 1, NULL);
        }
    }
    for (int s = 0; s < NERF_SCENE_SPLIT_COUNT; s++) {
        const nerf_scene_split split = (nerf_scene_split)s;
        if ((split == NERF_SCENE_TRAIN ? p->n_train : p->n_test) == 0) continue;
        if ((rc = split_json(&json, p, split, err)) != ENG_OK) goto done;
        snprintf(path, cap, "%s/transforms_%s.json", dir, split_name(split));
        if ((rc = write_text_atomic(path, json, err)) != ENG_OK) goto done;
        cJSON_free(json);
        json = NULL;
    }
done:
    cJSON_free(json);
    eng_image_free(&img);
    free(path);
    return rc;
}
