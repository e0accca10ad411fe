/* eng_safetensors.c: the safetensors reader (mmap or borrowed memory, everything validated before
 * a handle is returned) and the atomic writer. The format and the rules are in eng_safetensors.h. */
#define _POSIX_C_SOURCE 200809L

#include "eng_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* Integers in the header are JSON numbers, which cJSON holds as doubles: exact below 2^53. */
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53 */
/* Names in messages are cut to this many bytes so the rest of the message survives. */
#define ST_NAME_SHOWN 120

typedef struct st_meta {
    char *key;
    char *value;
} st_meta;

struct eng_safetensors {
    char *path;                    /* copy of the path, or "<memory>" */
    const uint8_t *bytes;          /* the whole file */
    size_t size;                   /* bytes in the file */
    void *map;                     /* the mapping (eng_safetensors_open), NULL otherwise */
    size_t map_size;               /* its length */
    uint64_t header_len;           /* N */
    const uint8_t *data;           /* the data buffer: bytes + 8 + N */
    uint64_t data_size;            /* size - 8 - N */
    eng_safetensors_info *tensors; /* n_tensors, in data order; names malloc'd */
    int64_t n_tensors;
    const eng_safetensors_info **by_name; /* n_tensors, sorted by name */
    st_meta *meta;                        /* n_meta, header order */
    int64_t n_meta;
    const st_meta **meta_by_key; /* n_meta, sorted by key */
};

/* Who is reporting about which file: every message starts with "fn: path: ". */
typedef struct st_ctx {
    const char *fn;
    const char *path;
    eng_err *err;
} st_ctx;

static const struct {
    const char *name;
    size_t size;
} st_dtypes[ENG_SAFETENSORS_DTYPE_COUNT] = {
    [ENG_SAFETENSORS_F64] = {"F64", 8},         [ENG_SAFETENSORS_F32] = {"F32", 4},
    [ENG_SAFETENSORS_F16] = {"F16", 2},         [ENG_SAFETENSORS_BF16] = {"BF16", 2},
    [ENG_SAFETENSORS_I64] = {"I64", 8},         [ENG_SAFETENSORS_I32] = {"I32", 4},
    [ENG_SAFETENSORS_I16] = {"I16", 2},         [ENG_SAFETENSORS_I8] = {"I8", 1},
    [ENG_SAFETENSORS_U8] = {"U8", 1},           [ENG_SAFETENSORS_U16] = {"U16", 2},
    [ENG_SAFETENSORS_U32] = {"U32", 4},         [ENG_SAFETENSORS_U64] = {"U64", 8},
    [ENG_SAFETENSORS_BOOL] = {"BOOL", 1},       [ENG_SAFETENSORS_F8_E4M3] = {"F8_E4M3", 1},
    [ENG_SAFETENSORS_F8_E5M2] = {"F8_E5M2", 1},
};

#define ST_KNOWN_DTYPES "F64 F32 F16 BF16 I64 I32 I16 I8 U8 U16 U32 U64 BOOL F8_E4M3 F8_E5M2"

/* ---- small helpers ------------------------------------------------------------------------- */

static int st_fail(const st_ctx *c, int code, const char *fmt, ...) ENG_PRINTF(3, 4);
static int st_fail(const st_ctx *c, int code, const char *fmt, ...) {
    char what[ENG_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return eng_err_set(c->err, code, "%s: %s: %s", c->fn, c->path, what);
}

/* The system's text for errno value e (thread-safe). */
static const char *st_errstr(int e, char *buf, size_t n) {
#if defined(_GNU_SOURCE)
    return strerror_r(e, buf, n);
#else
    if (strerror_r(e, buf, n) != 0) snprintf(buf, n, "error %d", e);
    return buf;
#endif
}

/* Length of the valid UTF-8 sequence at s (avail bytes readable), or 0 when it is invalid:
 * overlongs, UTF-16 surrogates and code points past U+10FFFF are invalid. */
static size_t st_utf8_len(const uint8_t *s, size_t avail) {
    const uint8_t c = s[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* range of the first continuation byte */
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (avail < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++) {
        if (s[k] < 0x80 || s[k] > 0xbf) return 0;
    }
    return len;
}

/* Writes s as a quoted, one-line string for a message: control characters, quotes, backslashes
 * and invalid UTF-8 become \xNN, and names longer than ST_NAME_SHOWN bytes are cut (between
 * characters) with "...". Returns buf. */
static const char *st_quote(char *buf, size_t n, const char *s) {
    const uint8_t *u = (const uint8_t *)s;
    const size_t slen = strlen(s);
    size_t o = 0, i = 0;
    ENG_ASSERT(n >= 16);
    buf[o++] = '"';
    while (i < slen) {
        const uint8_t ch = u[i];
        size_t len = st_utf8_len(u + i, slen - i);
        const int escape = len == 0 || ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\';
        if (len == 0) len = 1;
        /* room for this character, then "..." and the closing quote */
        if (i + len > ST_NAME_SHOWN || o + (escape ? 4 : len) + 5 > n) break;
        if (escape) {
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
        } else {
            memcpy(buf + o, u + i, len);
            o += len;
        }
        i += len;
    }
    if (i < slen) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* "[2, 3]" ("[]" for a scalar). Returns buf. */
static const char *st_shape_str(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t o = 0;
    o += (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && o < n; d++) {
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, d > 0 ? ", " : "", shape[d]);
    }
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

static const char *st_json_kind(const cJSON *v) {
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "an invalid value";
}

/* What a JSON value is, for "expected X, found Y": numbers by value, strings quoted. */
static const char *st_json_show(char *buf, size_t n, const cJSON *v) {
    if (cJSON_IsNumber(v)) {
        snprintf(buf, n, "%.17g", v->valuedouble);
    } else if (cJSON_IsString(v) && v->valuestring != NULL) {
        char q[160];
        snprintf(buf, n, "the string %s", st_quote(q, sizeof q, v->valuestring));
    } else {
        snprintf(buf, n, "%s", st_json_kind(v));
    }
    return buf;
}

/* A JSON number that is an integer in [0, 2^53]. */
static int st_json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    const double d = v->valuedouble;
    if (!(d >= 0.0 && d <= ST_MAX_JSON_INT) || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Index of the first byte that is not valid UTF-8, or -1. With `text`, control characters other
 * than tab, LF and CR (and DEL) are also rejected: JSON text allows none outside strings and none
 * raw inside them. */
static int64_t st_utf8_bad_at(const uint8_t *s, size_t n, int text) {
    size_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        if (text && ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)) {
            return (int64_t)i;
        }
        const size_t len = st_utf8_len(s + i, n - i);
        if (len == 0) return (int64_t)i;
        i += len;
    }
    return -1;
}

static char *st_strdup(const char *s) {
    const size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL) memcpy(p, s, n);
    return p;
}

static uint64_t st_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- dtypes -------------------------------------------------------------------------------- */

const char *eng_safetensors_dtype_name(eng_safetensors_dtype dt) {
    return (unsigned)dt < ENG_SAFETENSORS_DTYPE_COUNT ? st_dtypes[dt].name : "?";
}

size_t eng_safetensors_dtype_size(eng_safetensors_dtype dt) {
    return (unsigned)dt < ENG_SAFETENSORS_DTYPE_COUNT ? st_dtypes[dt].size : 0;
}

/* Index of `name` in st_dtypes, or -1. */
static int st_dtype_lookup(const char *name) {
    for (int i = 0; i < ENG_SAFETENSORS_DTYPE_COUNT; i++) {
        if (strcmp(name, st_dtypes[i].name) == 0) return i;
    }
    return -1;
}

int eng_safetensors_dtype_parse(eng_safetensors_dtype *out, const char *name, eng_err *err) {
    char q[160];
    ENG_ASSERT(out != NULL);
    if (name == NULL) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG,
            "eng_safetensors_dtype_parse: dtype is NULL (expected one of " ST_KNOWN_DTYPES ")");
    }
    const int i = st_dtype_lookup(name);
    if (i < 0) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG,
            "eng_safetensors_dtype_parse: unknown dtype %s (expected one of " ST_KNOWN_DTYPES ")",
            st_quote(q, sizeof q, name));
    }
    *out = (eng_safetensors_dtype)i;
    return ENG_OK;
}

int eng_safetensors_dtype_to_eng(eng_dtype *out, eng_safetensors_dtype dt, eng_err *err) {
    ENG_ASSERT(out != NULL);
    switch (dt) {
    case ENG_SAFETENSORS_F32: *out = ENG_DTYPE_F32; return ENG_OK;
    case ENG_SAFETENSORS_F16: *out = ENG_DTYPE_F16; return ENG_OK;
    case ENG_SAFETENSORS_BF16: *out = ENG_DTYPE_BF16; return ENG_OK;
    case ENG_SAFETENSORS_I8: *out = ENG_DTYPE_I8; return ENG_OK;
    case ENG_SAFETENSORS_I32: *out = ENG_DTYPE_I32; return ENG_OK;
    case ENG_SAFETENSORS_F8_E4M3: *out = ENG_DTYPE_FP8_E4M3; return ENG_OK;
    default: break;
    }
    return eng_err_set(err, ENG_E_UNSUPPORTED,
                       "eng_safetensors_dtype_to_eng: dtype %s has no engine dtype (F32, F16, "
                       "BF16, I8, I32 and F8_E4M3 do)",
                       eng_safetensors_dtype_name(dt));
}

eng_safetensors_dtype eng_safetensors_dtype_from_eng(eng_dtype dt) {
    switch (dt) {
    case ENG_DTYPE_F32: return ENG_SAFETENSORS_F32;
    case ENG_DTYPE_F16: return ENG_SAFETENSORS_F16;
    case ENG_DTYPE_BF16: return ENG_SAFETENSORS_BF16;
    case ENG_DTYPE_I8: return ENG_SAFETENSORS_I8;
    case ENG_DTYPE_I32: return ENG_SAFETENSORS_I32;
    case ENG_DTYPE_FP8_E4M3: return ENG_SAFETENSORS_F8_E4M3;
    default: return ENG_SAFETENSORS_DTYPE_COUNT;
    }
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* Finds the field `key` of a tensor entry: exactly one must be present. */
static int st_field(
    const st_ctx *c, const cJSON *entry, const char *key, const char *qname, const cJSON **out) {
    const cJSON *found = NULL;
    for (const cJSON *v = entry->child; v != NULL; v = v->next) {
        if (v->string == NULL || strcmp(v->string, key) != 0) continue;
        if (found != NULL) {
            return st_fail(c, ENG_E_FORMAT, "tensor %s has two \"%s\" fields", qname, key);
        }
        found = v;
    }
    if (found == NULL) {
        return st_fail(c, ENG_E_FORMAT,
                       "tensor %s has no \"%s\" field (each entry needs \"dtype\", \"shape\" and "
                       "\"data_offsets\")",
                       qname, key);
    }
    *out = found;
    return ENG_OK;
}

/* Fills t (except data, file_offset and index) from one header entry and checks it on its own:
 * dtype known, shape valid, byte size = end - begin, end within the data buffer. */
static int
st_parse_tensor(const st_ctx *c, const cJSON *entry, uint64_t data_size, eng_safetensors_info *t) {
    char qname[160], shown[200], shape_s[256];
    const cJSON *jdtype = NULL, *jshape = NULL, *joffs = NULL;
    int rc = ENG_OK;
    st_quote(qname, sizeof qname, t->name);
    if (!cJSON_IsObject(entry)) {
        return st_fail(c, ENG_E_FORMAT,
                       "tensor %s is %s, expected an object with \"dtype\", \"shape\" and "
                       "\"data_offsets\"",
                       qname, st_json_show(shown, sizeof shown, entry));
    }
    if ((rc = st_field(c, entry, "dtype", qname, &jdtype)) != ENG_OK) return rc;
    if ((rc = st_field(c, entry, "shape", qname, &jshape)) != ENG_OK) return rc;
    if ((rc = st_field(c, entry, "data_offsets", qname, &joffs)) != ENG_OK) return rc;

    /* dtype */
    if (!cJSON_IsString(jdtype) || jdtype->valuestring == NULL) {
        return st_fail(c, ENG_E_FORMAT,
                       "tensor %s: \"dtype\" is %s, expected a string such as \"F16\"", qname,
                       st_json_show(shown, sizeof shown, jdtype));
    }
    const int dti = st_dtype_lookup(jdtype->valuestring);
    if (dti < 0) {
        char qd[160];
        return st_fail(c, ENG_E_FORMAT,
                       "tensor %s has unknown dtype %s (expected one of " ST_KNOWN_DTYPES ")",
                       qname, st_quote(qd, sizeof qd, jdtype->valuestring));
    }
    t->dtype = (eng_safetensors_dtype)dti;
    t->dtype_name = st_dtypes[dti].name;

    /* shape */
    if (!cJSON_IsArray(jshape)) {
        return st_fail(c, ENG_E_FORMAT,
                       "tensor %s: \"shape\" is %s, expected an array of non-negative integers",
                       qname, st_json_show(shown, sizeof shown, jshape));
    }
    int ndim = 0;
    for (const cJSON *v = jshape->child; v != NULL; v = v->next, ndim++) {
        uint64_t dim = 0;
        if (ndim >= ENG_SAFETENSORS_MAX_DIMS) {
            return st_fail(c, ENG_E_FORMAT, "tensor %s: \"shape\" has more than %d dimensions",
                           qname, ENG_SAFETENSORS_MAX_DIMS);
        }
        if (!st_json_uint(v, &dim)) {
            return st_fail(c, ENG_E_FORMAT,
                           "tensor %s: shape[%d] is %s, expected a non-negative integer below 2^53",
                           qname, ndim, st_json_show(shown, sizeof shown, v));
        }
        t->shape[ndim] = (int64_t)dim;
    }
    t->ndim = ndim;
    for (int d = ndim; d < ENG_SAFETENSORS_MAX_DIMS; d++)
        t->shape[d] = 1;
    st_shape_str(shape_s, sizeof shape_s, t->shape, t->ndim);

    /* data_offsets */
    uint64_t offs[2] = {0, 0};
    const int n_offs = cJSON_IsArray(joffs) ? cJSON_GetArraySize(joffs) : -1;
    if (n_offs != 2) {
        return st_fail(
            c, ENG_E_FORMAT, "tensor %s: \"data_offsets\" is %s%s, expected an array [begin, end]",
            qname, st_json_show(shown, sizeof shown, joffs),
            n_offs >= 0
                ? (n_offs < 2 ? " with fewer than 2 elements" : " with more than 2 elements")
                : "");
    }
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetArrayItem(joffs, k);
        if (!st_json_uint(v, &offs[k])) {
            return st_fail(c, ENG_E_FORMAT,
                           "tensor %s: data_offsets[%d] is %s, expected a non-negative integer "
                           "below 2^53",
                           qname, k, st_json_show(shown, sizeof shown, v));
        }
    }
    if (offs[0] > offs[1]) {
        return st_fail(c, ENG_E_FORMAT,
                       "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] begin after end", qname,
                       offs[0], offs[1]);
    }

    /* numel x size, overflow-checked in order (as the reference does) */
    const size_t esize = st_dtypes[dti].size;
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        const uint64_t dim = (uint64_t)t->shape[d];
        if (dim != 0 && numel > (uint64_t)INT64_MAX / dim) {
            return st_fail(c, ENG_E_FORMAT,
                           "tensor %s: shape %s has more than 2^63 elements (overflow)", qname,
                           shape_s);
        }
        numel *= dim;
    }
    if (numel > UINT64_MAX / esize) {
        return st_fail(c, ENG_E_FORMAT,
                       "tensor %s: shape %s x %zu-byte %s overflows 64 bits of bytes", qname,
                       shape_s, esize, t->dtype_name);
    }
    const uint64_t nbytes = numel * esize;
    if (offs[1] - offs[0] != nbytes) {
        return st_fail(c, ENG_E_FORMAT,
                       "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                       " bytes but shape %s of %s (%zu bytes each) needs %" PRIu64,
                       qname, offs[0], offs[1], offs[1] - offs[0], shape_s, t->dtype_name, esize,
                       nbytes);
    }
    if (offs[1] > data_size) {
        return st_fail(c, ENG_E_FORMAT,
                       "tensor %s ends at byte %" PRIu64 " but the data buffer has %" PRIu64
                       " bytes (truncated download?)",
                       qname, offs[1], data_size);
    }
    t->numel = (int64_t)numel;
    t->data_begin = offs[0];
    t->nbytes = (size_t)nbytes;
    return ENG_OK;
}

static int st_cmp_data_order(const void *pa, const void *pb) {
    const eng_safetensors_info *a = pa, *b = pb;
    if (a->data_begin != b->data_begin) return a->data_begin < b->data_begin ? -1 : 1;
    if (a->nbytes != b->nbytes) return a->nbytes < b->nbytes ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int st_cmp_info_name(const void *pa, const void *pb) {
    const eng_safetensors_info *const *a = pa, *const *b = pb;
    return strcmp((*a)->name, (*b)->name);
}

static int st_cmp_meta_key(const void *pa, const void *pb) {
    const st_meta *const *a = pa, *const *b = pb;
    return strcmp((*a)->key, (*b)->key);
}

/* Copies the "__metadata__" object into f->meta; values must be strings, keys unique. */
static int st_parse_metadata(const st_ctx *c, const cJSON *jmeta, eng_safetensors *f) {
    char shown[200], qk[160];
    int64_t n = 0;
    if (!cJSON_IsObject(jmeta)) {
        return st_fail(c, ENG_E_FORMAT,
                       "\"__metadata__\" is %s, expected an object of string values",
                       st_json_show(shown, sizeof shown, jmeta));
    }
    for (const cJSON *v = jmeta->child; v != NULL; v = v->next)
        n++;
    if (n == 0) return ENG_OK;
    f->meta = calloc((size_t)n, sizeof *f->meta);
    f->meta_by_key = calloc((size_t)n, sizeof *f->meta_by_key);
    if (f->meta == NULL || f->meta_by_key == NULL) {
        return st_fail(c, ENG_E_OOM, "no memory for %" PRId64 " metadata entries", n);
    }
    for (const cJSON *v = jmeta->child; v != NULL; v = v->next) {
        const char *key = v->string != NULL ? v->string : "";
        if (!cJSON_IsString(v) || v->valuestring == NULL) {
            return st_fail(c, ENG_E_FORMAT, "metadata %s is %s, expected a string",
                           st_quote(qk, sizeof qk, key), st_json_show(shown, sizeof shown, v));
        }
        st_meta *m = &f->meta[f->n_meta];
        m->key = st_strdup(key);
        m->value = st_strdup(v->valuestring);
        f->n_meta++; /* counted before the check so close frees both */
        if (m->key == NULL || m->value == NULL) {
            return st_fail(c, ENG_E_OOM, "no memory for metadata %s", st_quote(qk, sizeof qk, key));
        }
        f->meta_by_key[f->n_meta - 1] = m;
    }
    qsort(f->meta_by_key, (size_t)n, sizeof *f->meta_by_key, st_cmp_meta_key);
    for (int64_t i = 1; i < n; i++) {
        if (strcmp(f->meta_by_key[i - 1]->key, f->meta_by_key[i]->key) == 0) {
            return st_fail(c, ENG_E_FORMAT, "metadata key %s appears twice",
                           st_quote(qk, sizeof qk, f->meta_by_key[i]->key));
        }
    }
    return ENG_OK;
}

/* Checks that the tensors, sorted by data order, tile the data buffer exactly. */
static int st_check_coverage(const st_ctx *c, const eng_safetensors *f) {
    char qa[160], qb[160];
    uint64_t pos = 0;
    const eng_safetensors_info *prev = NULL;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const eng_safetensors_info *t = &f->tensors[i];
        const uint64_t end = t->data_begin + t->nbytes;
        if (t->data_begin < pos) {
            ENG_ASSERT(prev != NULL);
            return st_fail(c, ENG_E_FORMAT,
                           "tensors %s [%" PRIu64 ", %" PRIu64 ") and %s [%" PRIu64 ", %" PRIu64
                           ") overlap in the data buffer",
                           st_quote(qa, sizeof qa, prev->name), prev->data_begin,
                           prev->data_begin + prev->nbytes, st_quote(qb, sizeof qb, t->name),
                           t->data_begin, end);
        }
        if (t->data_begin > pos) {
            if (prev != NULL) {
                return st_fail(c, ENG_E_FORMAT,
                               "bytes [%" PRIu64 ", %" PRIu64
                               ") of the data buffer belong to no tensor (a hole between %s and "
                               "%s)",
                               pos, t->data_begin, st_quote(qa, sizeof qa, prev->name),
                               st_quote(qb, sizeof qb, t->name));
            }
            return st_fail(c, ENG_E_FORMAT,
                           "bytes [0, %" PRIu64
                           ") of the data buffer belong to no tensor (a hole before %s)",
                           t->data_begin, st_quote(qb, sizeof qb, t->name));
        }
        pos = end;
        prev = t;
    }
    if (pos != f->data_size) {
        if (prev == NULL) {
            return st_fail(c, ENG_E_FORMAT,
                           "bytes [0, %" PRIu64
                           ") of the data buffer belong to no tensor (the header lists none)",
                           f->data_size);
        }
        return st_fail(c, ENG_E_FORMAT,
                       "bytes [%" PRIu64 ", %" PRIu64
                       ") of the data buffer belong to no tensor (trailing bytes after %s)",
                       pos, f->data_size, st_quote(qa, sizeof qa, prev->name));
    }
    return ENG_OK;
}

/* Validates f->bytes / f->size and fills the rest of f. */
static int st_parse(const st_ctx *c, eng_safetensors *f) {
    int rc = ENG_OK;
    char *text = NULL;
    cJSON *root = NULL;
    char qa[160];

    /* the header length */
    if (f->size == 0) {
        rc = st_fail(c, ENG_E_FORMAT,
                     "the file is empty (0 bytes); a safetensors file starts with an 8-byte header "
                     "length");
        goto done;
    }
    if (f->size < 8) {
        rc = st_fail(c, ENG_E_FORMAT,
                     "the file has %zu bytes, fewer than the 8-byte header length (truncated?)",
                     f->size);
        goto done;
    }
    const uint64_t n = st_le64(f->bytes);
    if (n > ENG_SAFETENSORS_MAX_HEADER_BYTES) {
        rc = st_fail(c, ENG_E_FORMAT,
                     "header length is %" PRIu64 " bytes, over the cap of %u (not a safetensors "
                     "file?)",
                     n, ENG_SAFETENSORS_MAX_HEADER_BYTES);
        goto done;
    }
    if (n > f->size - 8) {
        rc = st_fail(c, ENG_E_FORMAT,
                     "header length is %" PRIu64 " bytes but only %zu bytes follow the 8-byte "
                     "length field (truncated download?)",
                     n, f->size - 8);
        goto done;
    }
    if (n < 2) {
        rc = st_fail(c, ENG_E_FORMAT,
                     "header length is %" PRIu64 " bytes, too short for a JSON object (\"{}\" "
                     "has 2)",
                     n);
        goto done;
    }
    f->header_len = n;
    f->data = f->bytes + 8 + n;
    f->data_size = (uint64_t)(f->size - 8 - (size_t)n);

    /* the header text: UTF-8, no control characters, no byte-order mark */
    const uint8_t *hdr = f->bytes + 8;
    const int64_t bad = st_utf8_bad_at(hdr, (size_t)n, 1);
    if (bad >= 0) {
        rc = st_fail(c, ENG_E_FORMAT,
                     "header byte %" PRId64 " (0x%02x) is %s; the header must be UTF-8 JSON text",
                     bad, hdr[bad], hdr[bad] < 0x80 ? "a control character" : "not valid UTF-8");
        goto done;
    }
    if (n >= 3 && hdr[0] == 0xef && hdr[1] == 0xbb && hdr[2] == 0xbf) {
        rc = st_fail(c, ENG_E_FORMAT, "header starts with a UTF-8 byte-order mark; expected '{'");
        goto done;
    }

    /* JSON (cJSON wants a NUL-terminated string; a copy also keeps it inside our buffer) */
    text = malloc((size_t)n + 1);
    if (text == NULL) {
        rc = st_fail(c, ENG_E_OOM, "no memory for the %" PRIu64 "-byte header", n);
        goto done;
    }
    memcpy(text, hdr, (size_t)n);
    text[n] = '\0';
    const char *end = NULL;
    root = cJSON_ParseWithOpts(text, &end, 0);
    if (root == NULL) {
        size_t at = end != NULL && end >= text ? (size_t)(end - text) : 0;
        if (at > (size_t)n) at = (size_t)n;
        char near[40];
        snprintf(near, sizeof near, "%.24s", text + at);
        rc = st_fail(c, ENG_E_FORMAT, "header is not valid JSON (error near header byte %zu: %s)",
                     at, st_quote(qa, sizeof qa, near));
        goto done;
    }
    for (size_t at = (size_t)(end - text); at < (size_t)n; at++) {
        const char ch = text[at];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            char near[40];
            snprintf(near, sizeof near, "%.24s", text + at);
            rc = st_fail(c, ENG_E_FORMAT,
                         "header has text after the JSON object at header byte %zu: %s", at,
                         st_quote(qa, sizeof qa, near));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = st_fail(c, ENG_E_FORMAT,
                     "header is JSON but not an object (found %s); expected {\"name\": {\"dtype\": "
                     "..., \"shape\": ..., \"data_offsets\": ...}, ...}",
                     st_json_kind(root));
        goto done;
    }

    /* entries: "__metadata__" once at most, the rest tensors */
    const cJSON *jmeta = NULL;
    int64_t n_tensors = 0;
    for (const cJSON *v = root->child; v != NULL; v = v->next) {
        if (v->string != NULL && strcmp(v->string, "__metadata__") == 0) {
            if (jmeta != NULL) {
                rc = st_fail(c, ENG_E_FORMAT, "the \"__metadata__\" key appears twice");
                goto done;
            }
            jmeta = v;
        } else {
            n_tensors++;
        }
    }
    if (jmeta != NULL && (rc = st_parse_metadata(c, jmeta, f)) != ENG_OK) goto done;
    if (n_tensors > 0) {
        f->tensors = calloc((size_t)n_tensors, sizeof *f->tensors);
        f->by_name = calloc((size_t)n_tensors, sizeof *f->by_name);
        if (f->tensors == NULL || f->by_name == NULL) {
            rc = st_fail(c, ENG_E_OOM, "no memory for %" PRId64 " tensors", n_tensors);
            goto done;
        }
    }
    for (const cJSON *v = root->child; v != NULL; v = v->next) {
        if (v == jmeta) continue;
        eng_safetensors_info *t = &f->tensors[f->n_tensors];
        t->name = st_strdup(v->string != NULL ? v->string : "");
        if (t->name == NULL) {
            rc = st_fail(c, ENG_E_OOM, "no memory for a tensor name");
            goto done;
        }
        f->n_tensors++; /* counted now so close frees the name */
        if ((rc = st_parse_tensor(c, v, f->data_size, t)) != ENG_OK) goto done;
    }

    /* unique names */
    for (int64_t i = 0; i < f->n_tensors; i++)
        f->by_name[i] = &f->tensors[i];
    if (f->n_tensors > 1) {
        qsort(f->by_name, (size_t)f->n_tensors, sizeof *f->by_name, st_cmp_info_name);
    }
    for (int64_t i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0) {
            rc = st_fail(c, ENG_E_FORMAT, "tensor name %s appears twice in the header",
                         st_quote(qa, sizeof qa, f->by_name[i]->name));
            goto done;
        }
    }

    /* data order, exact coverage; then the pointers (sorting moved the structs: redo by_name) */
    if (f->n_tensors > 1) {
        qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, st_cmp_data_order);
    }
    if ((rc = st_check_coverage(c, f)) != ENG_OK) goto done;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        eng_safetensors_info *t = &f->tensors[i];
        t->index = i;
        t->data = f->data + t->data_begin;
        t->file_offset = 8 + f->header_len + t->data_begin;
        f->by_name[i] = t;
    }
    if (f->n_tensors > 1) {
        qsort(f->by_name, (size_t)f->n_tensors, sizeof *f->by_name, st_cmp_info_name);
    }

done:
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* ---- open / close -------------------------------------------------------------------------- */

void eng_safetensors_close(eng_safetensors *f) {
    if (f == NULL) return;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        free((void *)(uintptr_t)f->tensors[i].name); /* ours: st_strdup'd in st_parse */
    }
    for (int64_t i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->tensors);
    free(f->by_name);
    free(f->meta);
    free(f->meta_by_key);
    if (f->map != NULL) munmap(f->map, f->map_size);
    free(f->path);
    free(f);
}

int eng_safetensors_open(eng_safetensors **out, const char *path, eng_err *err) {
    int rc = ENG_OK, fd = -1;
    eng_safetensors *f = NULL;
    char es[128];
    const st_ctx c = {"eng_safetensors_open", path, err};
    ENG_ASSERT(out != NULL && path != NULL);
    *out = NULL;
    f = calloc(1, sizeof *f);
    if (f == NULL || (f->path = st_strdup(path)) == NULL) {
        rc = st_fail(&c, ENG_E_OOM, "no memory for the file handle");
        goto done;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = st_fail(&c, ENG_E_IO, "cannot open: %s", st_errstr(errno, es, sizeof es));
        goto done;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = st_fail(&c, ENG_E_IO, "cannot stat: %s", st_errstr(errno, es, sizeof es));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = st_fail(&c, ENG_E_IO, "not a regular file (%s)",
                     S_ISDIR(st.st_mode) ? "a directory" : "a device, pipe or socket");
        goto done;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        rc = st_fail(&c, ENG_E_IO, "file size %jd does not fit in memory", (intmax_t)st.st_size);
        goto done;
    }
    if (st.st_size > 0) {
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            rc = st_fail(&c, ENG_E_IO, "cannot map %jd bytes: %s", (intmax_t)st.st_size,
                         st_errstr(errno, es, sizeof es));
            goto done;
        }
        f->map = map;
        f->map_size = (size_t)st.st_size;
        f->bytes = map;
        f->size = (size_t)st.st_size;
    }
    close(fd); /* the mapping keeps the file */
    fd = -1;
    if ((rc = st_parse(&c, f)) != ENG_OK) goto done;
    *out = f;
    f = NULL;
done:
    if (fd >= 0) close(fd);
    eng_safetensors_close(f);
    return rc;
}

int eng_safetensors_open_memory(eng_safetensors **out,
                                const void *data,
                                size_t size,
                                eng_err *err) {
    int rc = ENG_OK;
    eng_safetensors *f = NULL;
    const st_ctx c = {"eng_safetensors_open_memory", "<memory>", err};
    ENG_ASSERT(out != NULL && (data != NULL || size == 0));
    *out = NULL;
    f = calloc(1, sizeof *f);
    if (f == NULL || (f->path = st_strdup("<memory>")) == NULL) {
        rc = st_fail(&c, ENG_E_OOM, "no memory for the file handle");
        goto done;
    }
    f->bytes = data;
    f->size = size;
    if ((rc = st_parse(&c, f)) != ENG_OK) goto done;
    *out = f;
    f = NULL;
done:
    eng_safetensors_close(f);
    return rc;
}

/* ---- queries ------------------------------------------------------------------------------- */

const char *eng_safetensors_path(const eng_safetensors *f) {
    ENG_ASSERT(f != NULL);
    return f->path;
}

int64_t eng_safetensors_count(const eng_safetensors *f) {
    ENG_ASSERT(f != NULL);
    return f->n_tensors;
}

const eng_safetensors_info *eng_safetensors_info_at(const eng_safetensors *f, int64_t i) {
    ENG_ASSERT(f != NULL && i >= 0 && i < f->n_tensors);
    return &f->tensors[i];
}

const eng_safetensors_info *eng_safetensors_find(const eng_safetensors *f, const char *name) {
    ENG_ASSERT(f != NULL && name != NULL);
    int64_t lo = 0, hi = f->n_tensors; /* binary search in [lo, hi) */
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        const int cmp = strcmp(name, f->by_name[mid]->name);
        if (cmp == 0) return f->by_name[mid];
        if (cmp < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

int eng_safetensors_view(eng_tensor *out,
                         const eng_safetensors *f,
                         const char *name,
                         eng_err *err) {
    char qname[160], shape_s[256];
    eng_dtype edt = ENG_DTYPE_F32;
    const st_ctx c = {"eng_safetensors_view", f != NULL ? f->path : "?", err};
    ENG_ASSERT(out != NULL && f != NULL && name != NULL);
    st_quote(qname, sizeof qname, name);
    const eng_safetensors_info *t = eng_safetensors_find(f, name);
    if (t == NULL) {
        return st_fail(&c, ENG_E_FORMAT, "no tensor named %s (the file has %" PRId64 " tensors)",
                       qname, f->n_tensors);
    }
    if (eng_safetensors_dtype_to_eng(&edt, t->dtype, NULL) != ENG_OK) {
        return st_fail(&c, ENG_E_UNSUPPORTED,
                       "tensor %s has dtype %s, which has no engine dtype (F32, F16, BF16, I8, "
                       "I32 and F8_E4M3 do)",
                       qname, t->dtype_name);
    }
    if (t->ndim > ENG_MAX_DIMS) {
        return st_fail(
            &c, ENG_E_UNSUPPORTED, "tensor %s has %d dimensions %s; an eng_tensor holds at most %d",
            qname, t->ndim, st_shape_str(shape_s, sizeof shape_s, t->shape, t->ndim), ENG_MAX_DIMS);
    }
    const size_t esize = st_dtypes[t->dtype].size;
    if (t->numel > 0 && (uintptr_t)t->data % esize != 0) {
        return st_fail(&c, ENG_E_UNSUPPORTED,
                       "tensor %s: data at file byte %" PRIu64
                       " is not aligned to its %zu-byte %s elements (copy it out of "
                       "eng_safetensors_info.data instead)",
                       qname, t->file_offset, esize, t->dtype_name);
    }
    /* The view is read-only by contract; eng_tensor has no const data pointer. */
    void *data = t->numel > 0 ? (void *)(uintptr_t)t->data : NULL;
    const int rc = eng_tensor_init(out, data, edt, ENG_DEVICE_CPU, t->ndim, t->shape, err);
    if (rc != ENG_OK) eng_err_prefix(err, "eng_safetensors_view: %s: tensor %s", f->path, qname);
    return rc;
}

int64_t eng_safetensors_metadata_count(const eng_safetensors *f) {
    ENG_ASSERT(f != NULL);
    return f->n_meta;
}

void eng_safetensors_metadata_at(const eng_safetensors *f,
                                 int64_t i,
                                 const char **key,
                                 const char **value) {
    ENG_ASSERT(f != NULL && i >= 0 && i < f->n_meta);
    if (key != NULL) *key = f->meta[i].key;
    if (value != NULL) *value = f->meta[i].value;
}

const char *eng_safetensors_metadata_get(const eng_safetensors *f, const char *key) {
    ENG_ASSERT(f != NULL && key != NULL);
    int64_t lo = 0, hi = f->n_meta;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        const int cmp = strcmp(key, f->meta_by_key[mid]->key);
        if (cmp == 0) return f->meta_by_key[mid]->value;
        if (cmp < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/* ---- writing ------------------------------------------------------------------------------- */

/* A growing byte buffer for the header; `oom` sticks once an allocation fails. */
typedef struct st_buf {
    char *p;
    size_t len, cap;
    int oom;
} st_buf;

static void st_buf_put(st_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void st_buf_str(st_buf *b, const char *s) {
    st_buf_put(b, s, strlen(s));
}

/* s as a JSON string literal: quotes, backslashes and control characters escaped. */
static void st_buf_json_string(st_buf *b, const char *s) {
    st_buf_put(b, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        const unsigned char ch = (unsigned char)*p;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            st_buf_put(b, esc, 2);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            st_buf_put(b, esc, 6);
        } else {
            st_buf_put(b, p, 1);
        }
    }
    st_buf_put(b, "\"", 1);
}

static int st_cmp_cstr(const void *pa, const void *pb) {
    const char *const *a = pa, *const *b = pb;
    return strcmp(*a, *b);
}

/* Writes all n bytes to fd, retrying short writes and EINTR. Returns 0 or an errno value. */
static int st_write_all(int fd, const void *p, size_t n) {
    const uint8_t *s = p;
    while (n > 0) {
        const size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        const ssize_t w = write(fd, s, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Checks every entry and metadata pair; fills ends[i] (the data offset where entry i ends). */
static int st_write_check(const st_ctx *c,
                          const eng_safetensors_entry *entries,
                          int64_t n,
                          const eng_safetensors_kv *meta,
                          int64_t n_meta,
                          uint64_t *ends) {
    char q[160], qd[160];
    uint64_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        const eng_safetensors_entry *e = &entries[i];
        eng_safetensors_dtype dt = e->dtype;
        if (e->name == NULL) {
            return st_fail(c, ENG_E_INVALID_ARG, "entry %" PRId64 " has no name (NULL)", i);
        }
        st_quote(q, sizeof q, e->name);
        if (st_utf8_bad_at((const uint8_t *)e->name, strlen(e->name), 0) >= 0) {
            return st_fail(c, ENG_E_INVALID_ARG, "entry %" PRId64 ": name %s is not valid UTF-8", i,
                           q);
        }
        if (strcmp(e->name, "__metadata__") == 0) {
            return st_fail(c, ENG_E_INVALID_ARG,
                           "entry %" PRId64 ": the name \"__metadata__\" is reserved for metadata",
                           i);
        }
        if (e->dtype_name != NULL) {
            const int k = st_dtype_lookup(e->dtype_name);
            if (k < 0) {
                return st_fail(c, ENG_E_INVALID_ARG,
                               "tensor %s: unknown dtype %s (expected one of " ST_KNOWN_DTYPES ")",
                               q, st_quote(qd, sizeof qd, e->dtype_name));
            }
            dt = (eng_safetensors_dtype)k;
        } else if ((unsigned)dt >= ENG_SAFETENSORS_DTYPE_COUNT) {
            return st_fail(c, ENG_E_INVALID_ARG, "tensor %s: dtype enum value %d is out of range",
                           q, (int)dt);
        }
        if (e->ndim < 0 || e->ndim > ENG_SAFETENSORS_MAX_DIMS) {
            return st_fail(c, ENG_E_INVALID_ARG, "tensor %s: ndim is %d, expected 0..%d", q,
                           e->ndim, ENG_SAFETENSORS_MAX_DIMS);
        }
        if (e->ndim > 0 && e->shape == NULL) {
            return st_fail(c, ENG_E_INVALID_ARG, "tensor %s: shape is NULL but ndim is %d", q,
                           e->ndim);
        }
        uint64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0) {
                return st_fail(c, ENG_E_INVALID_ARG,
                               "tensor %s: shape[%d] is %" PRId64 ", expected a non-negative size",
                               q, d, e->shape[d]);
            }
            const uint64_t dim = (uint64_t)e->shape[d];
            if (dim > (uint64_t)ST_MAX_JSON_INT ||
                (dim != 0 && numel > (uint64_t)INT64_MAX / dim)) {
                return st_fail(c, ENG_E_INVALID_ARG,
                               "tensor %s: the shape's element count overflows", q);
            }
            numel *= dim;
        }
        const size_t esize = st_dtypes[dt].size;
        if (numel > (uint64_t)SIZE_MAX / esize || numel * esize > UINT64_MAX - pos ||
            pos + numel * esize > (uint64_t)ST_MAX_JSON_INT) {
            return st_fail(c, ENG_E_INVALID_ARG, "tensor %s: byte size overflows", q);
        }
        const uint64_t nbytes = numel * esize;
        if (nbytes > 0 && e->data == NULL) {
            return st_fail(c, ENG_E_INVALID_ARG,
                           "tensor %s: data is NULL but the tensor has %" PRIu64 " bytes", q,
                           nbytes);
        }
        pos += nbytes;
        ends[i] = pos;
    }
    for (int64_t i = 0; i < n_meta; i++) {
        if (meta[i].key == NULL || meta[i].value == NULL) {
            return st_fail(c, ENG_E_INVALID_ARG, "metadata pair %" PRId64 " has a NULL %s", i,
                           meta[i].key == NULL ? "key" : "value");
        }
        if (st_utf8_bad_at((const uint8_t *)meta[i].key, strlen(meta[i].key), 0) >= 0 ||
            st_utf8_bad_at((const uint8_t *)meta[i].value, strlen(meta[i].value), 0) >= 0) {
            return st_fail(c, ENG_E_INVALID_ARG, "metadata %s: key or value is not valid UTF-8",
                           st_quote(q, sizeof q, meta[i].key));
        }
    }
    return ENG_OK;
}

/* Sorts the n string pointers and sets *dup to a string that appears twice, or NULL. */
static void st_find_duplicate(const char **names, int64_t n, const char **dup) {
    *dup = NULL;
    if (n < 2) return;
    qsort(names, (size_t)n, sizeof *names, st_cmp_cstr);
    for (int64_t i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            *dup = names[i];
            return;
        }
    }
}

int eng_safetensors_write(const char *path,
                          const eng_safetensors_entry *entries,
                          int64_t n_entries,
                          const eng_safetensors_kv *metadata,
                          int64_t n_metadata,
                          eng_err *err) {
    int rc = ENG_OK, fd = -1, e = 0;
    uint64_t *ends = NULL;
    const char **names = NULL;
    char *tmp = NULL;
    st_buf hb = {0};
    char q[160], es[128], num[64];
    const st_ctx c = {"eng_safetensors_write", path != NULL ? path : "(null)", err};
    if (path == NULL || path[0] == '\0') {
        rc = st_fail(&c, ENG_E_INVALID_ARG, "no path given");
        goto done;
    }
    if (n_entries < 0 || n_metadata < 0 || (n_entries > 0 && entries == NULL) ||
        (n_metadata > 0 && metadata == NULL)) {
        rc = st_fail(&c, ENG_E_INVALID_ARG,
                     "bad arguments: %" PRId64 " entries at %p, %" PRId64 " metadata pairs at %p",
                     n_entries, (const void *)entries, n_metadata, (const void *)metadata);
        goto done;
    }
    const size_t n_names = (size_t)(n_entries > n_metadata ? n_entries : n_metadata);
    ends = calloc((size_t)n_entries + 1, sizeof *ends);
    names = calloc(n_names + 1, sizeof *names);
    if (ends == NULL || names == NULL) {
        rc = st_fail(&c, ENG_E_OOM, "no memory to check %" PRId64 " entries", n_entries);
        goto done;
    }
    if ((rc = st_write_check(&c, entries, n_entries, metadata, n_metadata, ends)) != ENG_OK) {
        goto done;
    }
    const char *dup = NULL;
    for (int64_t i = 0; i < n_entries; i++)
        names[i] = entries[i].name;
    st_find_duplicate(names, n_entries, &dup);
    if (dup != NULL) {
        rc = st_fail(&c, ENG_E_INVALID_ARG, "tensor name %s appears twice",
                     st_quote(q, sizeof q, dup));
        goto done;
    }
    for (int64_t i = 0; i < n_metadata; i++)
        names[i] = metadata[i].key;
    st_find_duplicate(names, n_metadata, &dup);
    if (dup != NULL) {
        rc = st_fail(&c, ENG_E_INVALID_ARG, "metadata key %s appears twice",
                     st_quote(q, sizeof q, dup));
        goto done;
    }

    /* the header: 8 bytes of length, then JSON padded with spaces to a multiple of 8 */
    st_buf_put(&hb, "\0\0\0\0\0\0\0\0", 8);
    st_buf_str(&hb, "{");
    if (n_metadata > 0) {
        st_buf_str(&hb, "\"__metadata__\":{");
        for (int64_t i = 0; i < n_metadata; i++) {
            if (i > 0) st_buf_str(&hb, ",");
            st_buf_json_string(&hb, metadata[i].key);
            st_buf_str(&hb, ":");
            st_buf_json_string(&hb, metadata[i].value);
        }
        st_buf_str(&hb, "}");
    }
    for (int64_t i = 0; i < n_entries; i++) {
        const eng_safetensors_entry *en = &entries[i];
        const int dt = en->dtype_name != NULL ? st_dtype_lookup(en->dtype_name) : (int)en->dtype;
        if (i > 0 || n_metadata > 0) st_buf_str(&hb, ",");
        st_buf_json_string(&hb, en->name);
        st_buf_str(&hb, ":{\"dtype\":\"");
        st_buf_str(&hb, st_dtypes[dt].name);
        st_buf_str(&hb, "\",\"shape\":[");
        for (int d = 0; d < en->ndim; d++) {
            snprintf(num, sizeof num, "%s%" PRId64, d > 0 ? "," : "", en->shape[d]);
            st_buf_str(&hb, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
                 i > 0 ? ends[i - 1] : 0, ends[i]);
        st_buf_str(&hb, num);
    }
    st_buf_str(&hb, "}");
    while (!hb.oom && hb.len % 8 != 0)
        st_buf_str(&hb, " ");
    if (hb.oom) {
        rc = st_fail(&c, ENG_E_OOM, "no memory for the header of %" PRId64 " tensors", n_entries);
        goto done;
    }
    const uint64_t hlen = (uint64_t)(hb.len - 8);
    if (hlen > ENG_SAFETENSORS_MAX_HEADER_BYTES) {
        rc = st_fail(&c, ENG_E_INVALID_ARG,
                     "the header would have %" PRIu64 " bytes, over the cap of %u (names or "
                     "metadata too long)",
                     hlen, ENG_SAFETENSORS_MAX_HEADER_BYTES);
        goto done;
    }
    for (int i = 0; i < 8; i++)
        hb.p[i] = (char)(uint8_t)(hlen >> (8 * i));

    /* PATH.tmp.<pid>, written, synced, renamed */
    const size_t tmp_cap = strlen(path) + 32;
    tmp = malloc(tmp_cap);
    if (tmp == NULL) {
        rc = st_fail(&c, ENG_E_OOM, "no memory for the temporary path");
        goto done;
    }
    snprintf(tmp, tmp_cap, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot create: %s", c.fn, tmp,
                         st_errstr(errno, es, sizeof es));
        free(tmp); /* nothing to remove */
        tmp = NULL;
        goto done;
    }
    e = st_write_all(fd, hb.p, hb.len);
    for (int64_t i = 0; e == 0 && i < n_entries; i++) {
        const uint64_t begin = i > 0 ? ends[i - 1] : 0;
        if (ends[i] > begin) e = st_write_all(fd, entries[i].data, (size_t)(ends[i] - begin));
    }
    if (e != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: write failed: %s", c.fn, tmp,
                         st_errstr(e, es, sizeof es));
        goto done;
    }
    if (fsync(fd) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: fsync failed: %s", c.fn, tmp,
                         st_errstr(errno, es, sizeof es));
        goto done;
    }
    e = close(fd) != 0 ? errno : 0;
    fd = -1;
    if (e != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: close failed: %s", c.fn, tmp,
                         st_errstr(e, es, sizeof es));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot rename %s over it: %s", c.fn, path, tmp,
                         st_errstr(errno, es, sizeof es));
        goto done;
    }
    free(tmp); /* renamed: nothing to remove */
    tmp = NULL;
done:
    if (fd >= 0) close(fd);
    if (tmp != NULL) unlink(tmp);
    free(tmp);
    free(hb.p);
    free(names);
    free(ends);
    return rc;
}
