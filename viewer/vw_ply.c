/* vw_ply.c: the PLY reader (vw_ply.h): header parsing, then one pass over the body that reads
 * ascii tokens or little-endian binary values through the same property loop. */
#define _POSIX_C_SOURCE 200809L
#include "vw_ply.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_NONE, T_I8, T_U8, T_I16, T_U16, T_I32, T_U32, T_F32, T_F64 };
enum { P_OTHER, P_X, P_Y, P_Z, P_NX, P_NY, P_NZ, P_R, P_G, P_B };
enum { MAX_PROPS = 32, MAX_ELEMS = 16 };

typedef struct ply_prop {
    int type;       /* scalar type, or the index type of a list */
    int count_type; /* list: the count's type; T_NONE for a scalar */
    int role;       /* P_* for vertex properties */
    int is_indices; /* face: vertex_indices */
} ply_prop;

typedef struct ply_elem {
    char name[64];
    int64_t count;
    ply_prop props[MAX_PROPS];
    int n_props;
} ply_elem;

typedef struct ply_in {
    const uint8_t *p, *end;
    int ascii;
    const char *name;
} ply_in;

static int type_from(const char *s) {
    static const struct {
        const char *name;
        int type;
    } t[] = {{"char", T_I8},   {"int8", T_I8},     {"uchar", T_U8},   {"uint8", T_U8},
             {"short", T_I16}, {"int16", T_I16},   {"ushort", T_U16}, {"uint16", T_U16},
             {"int", T_I32},   {"int32", T_I32},   {"uint", T_U32},   {"uint32", T_U32},
             {"float", T_F32}, {"float32", T_F32}, {"double", T_F64}, {"float64", T_F64}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(s, t[i].name) == 0) return t[i].type;
    return T_NONE;
}

static int type_size(int t) {
    switch (t) {
    case T_I8:
    case T_U8: return 1;
    case T_I16:
    case T_U16: return 2;
    case T_I32:
    case T_U32:
    case T_F32: return 4;
    case T_F64: return 8;
    default: return 0;
    }
}

static int role_from(const char *s) {
    static const char *const names[] = {"x", "y", "z", "nx", "ny", "nz", "red", "green", "blue"};
    for (int i = 0; i < 9; i++)
        if (strcmp(s, names[i]) == 0) return P_X + i;
    return P_OTHER;
}

/* Reads one value of type t; returns 0, or -1 at the end of the data / on a bad token. */
static int read_value(ply_in *in, int t, double *v) {
    if (in->ascii) {
        char tok[64];
        size_t n = 0;
        while (in->p < in->end &&
               (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
            in->p++;
        while (in->p < in->end &&
               !(*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r')) {
            if (n + 1 >= sizeof tok) return -1;
            tok[n++] = (char)*in->p++;
        }
        if (n == 0) return -1;
        tok[n] = '\0';
        char *e = NULL;
        errno = 0;
        *v = strtod(tok, &e);
        return (*e != '\0' || errno == ERANGE) ? -1 : 0;
    }
    const int sz = type_size(t);
    if (in->end - in->p < sz) return -1;
    const uint8_t *b = in->p;
    in->p += sz;
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    switch (t) {
    case T_I8: *v = (int8_t)b[0]; break;
    case T_U8: *v = b[0]; break;
    case T_I16: *v = (int16_t)(uint16_t)(b[0] | b[1] << 8); break;
    case T_U16: *v = (uint16_t)(b[0] | b[1] << 8); break;
    case T_I32:
    case T_U32:
    case T_F32:
        u32 = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        if (t == T_I32) {
            *v = (int32_t)u32;
        } else if (t == T_U32) {
            *v = u32;
        } else {
            float f;
            memcpy(&f, &u32, 4);
            *v = f;
        }
        break;
    case T_F64:
        for (int i = 7; i >= 0; i--)
            u64 = u64 << 8 | b[i];
        memcpy(v, &u64, 8);
        break;
    default: return -1;
    }
    return 0;
}

static void compute_normals(vw_ply *m) {
    memset(m->normals, 0, (size_t)m->n_verts * 3 * sizeof(float));
    /* Face normals in double, divided by the squared extent of the mesh so that sums of them
     * stay far from a float's limits whatever the coordinates (up to FLT_MAX, or tiny). */
    double ext = 0;
    for (int64_t i = 0; i < m->n_verts * 3; i++)
        ext = fmax(ext, fabs((double)m->pos[i]));
    const double inv = ext > 0 ? 1.0 / (ext * ext) : 0.0;
    for (int64_t t = 0; t < m->n_tris; t++) {
        const uint32_t *tri = m->tris + 3 * t;
        const float *a = m->pos + 3 * tri[0], *b = m->pos + 3 * tri[1], *c = m->pos + 3 * tri[2];
        const double u[3] = {(double)b[0] - a[0], (double)b[1] - a[1], (double)b[2] - a[2]};
        const double v[3] = {(double)c[0] - a[0], (double)c[1] - a[1], (double)c[2] - a[2]};
        const double n[3] = {u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2],
                             u[0] * v[1] - u[1] * v[0]}; /* |n| = 2 area: area weighting */
        for (int k = 0; k < 3; k++)
            for (int d = 0; d < 3; d++)
                m->normals[3 * tri[k] + d] += (float)(n[d] * inv);
    }
    for (int64_t i = 0; i < m->n_verts; i++) {
        float *n = m->normals + 3 * i;
        const double len = sqrt((double)n[0] * n[0] + (double)n[1] * n[1] + (double)n[2] * n[2]);
        if (len > 0 && isfinite(len))
            for (int d = 0; d < 3; d++)
                n[d] = (float)(n[d] / len);
        else
            n[0] = n[1] = n[2] = 0.0f;
    }
}

/* Parses the header; *body points past end_header. */
static int parse_header(ply_elem *elems,
                        int *n_elems,
                        int *ascii,
                        int *from_nerf,
                        const uint8_t **body,
                        const uint8_t *data,
                        size_t size,
                        const char *name,
                        eng_err *err) {
    const char *fn = "vw_ply_read";
    if (size < 4 || memcmp(data, "ply", 3) != 0 || (data[3] != '\n' && data[3] != '\r'))
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s: not a PLY file (no \"ply\" line)", fn, name);
    const uint8_t *p = data, *end = data + size;
    int have_format = 0;
    *n_elems = 0;
    for (int line_no = 1;; line_no++) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL || line_no > 10000)
            return eng_err_set(err, ENG_E_FORMAT, "%s: %s: header has no end_header line", fn,
                               name);
        char line[256];
        size_t len = (size_t)(nl - p);
        if (len > 0 && p[len - 1] == '\r') len--;
        if (len >= sizeof line)
            return eng_err_set(err, ENG_E_FORMAT, "%s: %s: header line %d is too long", fn, name,
                               line_no);
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl + 1;
        char w[5][64] = {{0}};
        const int nw = sscanf(line, "%63s %63s %63s %63s %63s", w[0], w[1], w[2], w[3], w[4]);
        if (nw <= 0 || strcmp(w[0], "ply") == 0 || strcmp(w[0], "obj_info") == 0) continue;
        if (strcmp(w[0], "comment") == 0) {
            if (strstr(line, "engine's nerf mesh") != NULL) *from_nerf = 1;
            continue;
        }
        if (strcmp(w[0], "end_header") == 0) break;
        if (strcmp(w[0], "format") == 0 && nw >= 2) {
            if (strcmp(w[1], "ascii") == 0) {
                *ascii = 1;
            } else if (strcmp(w[1], "binary_little_endian") == 0) {
                *ascii = 0;
            } else if (strcmp(w[1], "binary_big_endian") == 0) {
                return eng_err_set(err, ENG_E_UNSUPPORTED,
                                   "%s: %s: binary_big_endian PLY is not supported (convert it to "
                                   "binary_little_endian or ascii)",
                                   fn, name);
            } else {
                return eng_err_set(err, ENG_E_FORMAT, "%s: %s: unknown format \"%s\"", fn, name,
                                   w[1]);
            }
            have_format = 1;
        } else if (strcmp(w[0], "element") == 0 && nw == 3) {
            if (*n_elems >= MAX_ELEMS)
                return eng_err_set(err, ENG_E_FORMAT, "%s: %s: more than %d elements", fn, name,
                                   MAX_ELEMS);
            ply_elem *e = &elems[(*n_elems)++];
            memset(e, 0, sizeof *e);
            snprintf(e->name, sizeof e->name, "%s", w[1]);
            char *ep = NULL;
            errno = 0;
            const long long c = strtoll(w[2], &ep, 10);
            if (*ep != '\0' || errno != 0 || c < 0 || c > VW_PLY_MAX_TRIS)
                return eng_err_set(err, ENG_E_FORMAT, "%s: %s: element %s has a bad count \"%s\"",
                                   fn, name, w[1], w[2]);
            e->count = c;
        } else if (strcmp(w[0], "property") == 0 && nw >= 3) {
            if (*n_elems == 0)
                return eng_err_set(err, ENG_E_FORMAT, "%s: %s: property before any element", fn,
                                   name);
            ply_elem *e = &elems[*n_elems - 1];
            if (e->n_props >= MAX_PROPS)
                return eng_err_set(err, ENG_E_FORMAT, "%s: %s: element %s has over %d properties",
                                   fn, name, e->name, MAX_PROPS);
            ply_prop *pr = &e->props[e->n_props++];
            memset(pr, 0, sizeof *pr);
            const char *pname = w[2];
            if (strcmp(w[1], "list") == 0) {
                if (nw < 5)
                    return eng_err_set(err, ENG_E_FORMAT, "%s: %s: bad list property: %s", fn, name,
                                       line);
                pr->count_type = type_from(w[2]);
                pr->type = type_from(w[3]);
                pname = w[4];
                if (pr->count_type == T_NONE || pr->type == T_NONE || pr->count_type == T_F32 ||
                    pr->count_type == T_F64)
                    return eng_err_set(err, ENG_E_FORMAT, "%s: %s: bad list types: %s", fn, name,
                                       line);
                pr->is_indices =
                    strcmp(pname, "vertex_indices") == 0 || strcmp(pname, "vertex_index") == 0;
            } else {
                pr->type = type_from(w[1]);
                if (pr->type == T_NONE)
                    return eng_err_set(err, ENG_E_FORMAT, "%s: %s: unknown property type \"%s\"",
                                       fn, name, w[1]);
                pr->role = role_from(pname);
            }
        } else {
            return eng_err_set(err, ENG_E_FORMAT, "%s: %s: unexpected header line %d: \"%s\"", fn,
                               name, line_no, line);
        }
    }
    if (!have_format)
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s: header has no format line", fn, name);
    *body = p;
    return ENG_OK;
}

int vw_ply_read_memory(vw_ply *out, const void *data, size_t size, const char *name, eng_err *err) {
    const char *fn = "vw_ply_read";
    ply_elem elems[MAX_ELEMS];
    int n_elems = 0, ascii = 0, rc = ENG_OK;
    vw_ply m = {0};
    ply_in in = {0};
    int64_t cap_tris = 0;
    ENG_ASSERT(out != NULL && (data != NULL || size == 0));
    if (name == NULL) name = "(memory)";
    memset(out, 0, sizeof *out);
    rc = parse_header(elems, &n_elems, &ascii, &m.from_nerf, &in.p, data, size, name, err);
    if (rc != ENG_OK) goto done;
    in.end = (const uint8_t *)data + size;
    in.ascii = ascii;
    in.name = name;

    /* Find the vertex element and check the roles it needs. */
    const ply_elem *ve = NULL;
    for (int i = 0; i < n_elems; i++)
        if (strcmp(elems[i].name, "vertex") == 0) ve = &elems[i];
    if (ve == NULL) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: no vertex element", fn, name);
        goto done;
    }
    int have[P_B + 1] = {0};
    for (int k = 0; k < ve->n_props; k++) {
        if (ve->props[k].count_type == T_NONE) have[ve->props[k].role] = 1;
    }
    if (!have[P_X] || !have[P_Y] || !have[P_Z]) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: vertex element lacks x, y or z", fn, name);
        goto done;
    }
    if (ve->count > VW_PLY_MAX_VERTS) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: %lld vertices (limit %lld)", fn, name,
                         (long long)ve->count, (long long)VW_PLY_MAX_VERTS);
        goto done;
    }
    /* Every vertex takes at least 2 bytes in ascii ("0 ") and 3 values in binary: a count the
     * file cannot hold is refused before allocating. */
    int64_t min_bytes = 0;
    for (int k = 0; k < ve->n_props; k++)
        min_bytes += ascii ? 2
                           : type_size(ve->props[k].count_type != T_NONE ? ve->props[k].count_type
                                                                         : ve->props[k].type);
    if (ve->count > 0 && ve->count > (int64_t)(in.end - in.p) / (min_bytes > 0 ? min_bytes : 1)) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "%s: %s: header says %lld vertices but the file is too short for them "
                         "(truncated?)",
                         fn, name, (long long)ve->count);
        goto done;
    }
    m.has_normals = have[P_NX] && have[P_NY] && have[P_NZ];
    m.has_colors = have[P_R] && have[P_G] && have[P_B];
    m.n_verts = ve->count;
    const size_t nv = (size_t)(m.n_verts > 0 ? m.n_verts : 1);
    m.pos = malloc(nv * 3 * sizeof(float));
    m.normals = malloc(nv * 3 * sizeof(float));
    m.colors = malloc(nv * 3);
    if (m.pos == NULL || m.normals == NULL || m.colors == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: %s: no memory for %lld vertices", fn, name,
                         (long long)m.n_verts);
        goto done;
    }
    memset(m.normals, 0, nv * 3 * sizeof(float));
    memset(m.colors, 180, nv * 3);

    for (int ei = 0; ei < n_elems; ei++) {
        const ply_elem *e = &elems[ei];
        const int is_vertex = e == ve, is_face = strcmp(e->name, "face") == 0;
        for (int64_t i = 0; i < e->count; i++) {
            for (int k = 0; k < e->n_props; k++) {
                const ply_prop *pr = &e->props[k];
                double v = 0;
                if (read_value(&in, pr->count_type != T_NONE ? pr->count_type : pr->type, &v) !=
                    0) {
                    rc = eng_err_set(err, ENG_E_FORMAT,
                                     "%s: %s: element %s %lld: truncated or bad value", fn, name,
                                     e->name, (long long)i);
                    goto done;
                }
                if (pr->count_type == T_NONE) {
                    if (!is_vertex || pr->role == P_OTHER) continue;
                    if (pr->role <= P_NZ) {
                        if (!(fabs(v) <= FLT_MAX)) { /* NaN, inf, or beyond a float */
                            rc = eng_err_set(err, ENG_E_FORMAT,
                                             "%s: %s: vertex %lld has a non-finite coordinate "
                                             "(or one beyond a float's range)",
                                             fn, name, (long long)i);
                            goto done;
                        }
                        float *dst = pr->role <= P_Z ? m.pos + 3 * i + (pr->role - P_X)
                                                     : m.normals + 3 * i + (pr->role - P_NX);
                        *dst = (float)v;
                    } else {
                        if (pr->type == T_F32 || pr->type == T_F64) v *= 255.0;
                        v = v < 0 ? 0 : v > 255 ? 255 : v;
                        m.colors[3 * i + (pr->role - P_R)] = (uint8_t)lrint(v);
                    }
                    continue;
                }
                /* A list: the count, then the items. */
                if (v < 0 || v > 1000000 || v != floor(v)) {
                    rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: element %s %lld: bad list count",
                                     fn, name, e->name, (long long)i);
                    goto done;
                }
                const int64_t n = (int64_t)v;
                uint32_t first = 0, prev = 0;
                for (int64_t j = 0; j < n; j++) {
                    double iv = 0;
                    if (read_value(&in, pr->type, &iv) != 0) {
                        rc = eng_err_set(err, ENG_E_FORMAT,
                                         "%s: %s: element %s %lld: truncated list", fn, name,
                                         e->name, (long long)i);
                        goto done;
                    }
                    if (!is_face || !pr->is_indices) continue;
                    if (!(iv >= 0 && iv < (double)m.n_verts) || iv != floor(iv)) {
                        rc =
                            eng_err_set(err, ENG_E_FORMAT,
                                        "%s: %s: face %lld has vertex index %.0f, expected 0..%lld",
                                        fn, name, (long long)i, iv, (long long)m.n_verts - 1);
                        goto done;
                    }
                    const uint32_t idx = (uint32_t)iv;
                    if (j == 0) first = idx;
                    if (j >= 2) { /* fan: (first, prev, idx) */
                        if (m.n_tris >= VW_PLY_MAX_TRIS) {
                            rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: over %lld triangles", fn,
                                             name, (long long)VW_PLY_MAX_TRIS);
                            goto done;
                        }
                        if (m.n_tris == cap_tris) {
                            const int64_t nc = cap_tris ? 2 * cap_tris : 1024;
                            uint32_t *t = realloc(m.tris, (size_t)nc * 3 * sizeof(uint32_t));
                            if (t == NULL) {
                                rc = eng_err_set(err, ENG_E_OOM,
                                                 "%s: %s: no memory for %lld triangles", fn, name,
                                                 (long long)nc);
                                goto done;
                            }
                            m.tris = t;
                            cap_tris = nc;
                        }
                        uint32_t *t = m.tris + 3 * m.n_tris++;
                        t[0] = first;
                        t[1] = prev;
                        t[2] = idx;
                    }
                    prev = idx;
                }
            }
        }
    }
    if (!m.has_normals) {
        compute_normals(&m);
    } else { /* the file's normals, made unit where they are not (lighting assumes it); zero or
              * non-finite ones become zero */
        for (int64_t i = 0; i < m.n_verts; i++) {
            float *n = m.normals + 3 * i;
            const double len =
                sqrt((double)n[0] * n[0] + (double)n[1] * n[1] + (double)n[2] * n[2]);
            if (len > 0 && isfinite(len) && fabs(len - 1) > 1e-4)
                for (int d = 0; d < 3; d++)
                    n[d] = (float)(n[d] / len);
            else if (!(len > 0 && isfinite(len)))
                n[0] = n[1] = n[2] = 0.0f;
        }
    }
    *out = m;
    memset(&m, 0, sizeof m);
done:
    vw_ply_free(&m);
    return rc;
}

int vw_ply_read(vw_ply *out, const char *path, eng_err *err) {
    int rc = ENG_OK;
    uint8_t *buf = NULL;
    FILE *f = NULL;
    ENG_ASSERT(out != NULL && path != NULL);
    memset(out, 0, sizeof *out);
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "vw_ply_read: cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "vw_ply_read: cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    const long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "vw_ply_read: cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    if ((uint64_t)size > ((uint64_t)1 << 34)) {
        rc = eng_err_set(err, ENG_E_FORMAT, "vw_ply_read: %s: %ld bytes is over the 16 GiB limit",
                         path, size);
        goto done;
    }
    buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "vw_ply_read: %s: no memory for %ld bytes", path, size);
        goto done;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        rc = eng_err_set(err, ENG_E_IO, "vw_ply_read: cannot read %s", path);
        goto done;
    }
    rc = vw_ply_read_memory(out, buf, (size_t)size, path, err);
done:
    free(buf);
    if (f != NULL) fclose(f);
    return rc;
}

void vw_ply_free(vw_ply *m) {
    if (m == NULL) return;
    free(m->pos);
    free(m->normals);
    free(m->colors);
    free(m->tris);
    memset(m, 0, sizeof *m);
}
