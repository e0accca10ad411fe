/* test_eng_safetensors.c: the safetensors reader and writer. Round trips of every dtype (a scalar,
 * a zero-sized and an 8-dimensional tensor among them), metadata, lookup, eng_tensor views; then
 * a corpus of malformed files built here, one case per class of defect, each checking the error
 * code and the words of the message; then every truncation and many byte edits of a valid file. */
#define _POSIX_C_SOURCE 200809L

#include "eng_safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_test.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static void tmp_path(char *buf, size_t n, const char *name) {
    if (snprintf(buf, n, "%s/%s", eng_test_tmpdir(), name) >= (int)n) {
        fprintf(stderr, "tmp_path: %s/%s does not fit in %zu bytes\n", eng_test_tmpdir(), name, n);
    }
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (fp == NULL) return 1;
    const size_t w = n > 0 ? fwrite(p, 1, n, fp) : 0;
    return (fclose(fp) != 0 || w != n) ? 1 : 0;
}

/* Reads a whole file into malloc'd memory (caller frees); NULL on failure. */
static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    uint8_t *p = NULL;
    long len;
    if (fp == NULL) return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        p = malloc((size_t)len + 1);
        if (p != NULL && fread(p, 1, (size_t)len, fp) != (size_t)len) {
            free(p);
            p = NULL;
        }
        *n = (size_t)len;
    }
    fclose(fp);
    return p;
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* le64(strlen(header)) + header + data_len bytes of pattern; returns malloc'd bytes. */
static uint8_t *make_file(const char *header, size_t data_len, size_t *n) {
    const size_t hl = strlen(header);
    *n = 8 + hl + data_len;
    uint8_t *p = malloc(*n);
    if (p == NULL) return NULL;
    put_le64(p, hl);
    memcpy(p + 8, header, hl);
    for (size_t i = 0; i < data_len; i++)
        p[8 + hl + i] = (uint8_t)(i * 7 + 1);
    return p;
}

/* Writes `bytes` to <tmp>/<name>.safetensors, opens it from the path and from memory, and checks
 * both fail with `code` and a message naming the function, the file and containing `needle`. */
static int
expect_bad_bytes(const char *name, const uint8_t *bytes, size_t n, int code, const char *needle) {
    char path[600], file[128];
    eng_safetensors *f = (eng_safetensors *)&f; /* not NULL: open must reset it */
    eng_err err = {0};
    snprintf(file, sizeof file, "%s.safetensors", name);
    tmp_path(path, sizeof path, file);
    CHECK(write_bytes(path, bytes, n) == 0);
    const int rc = eng_safetensors_open(&f, path, &err);
    fprintf(stderr, "  %s: %s\n", name, err.msg);
    CHECK_EQ_I64(rc, code);
    CHECK_EQ_I64(err.code, code);
    CHECK(f == NULL);
    CHECK_CONTAINS(err.msg, "eng_safetensors_open: ");
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, needle);
    /* the same bytes from memory (an exact-size heap copy, so ASan sees any over-read) */
    uint8_t *copy = malloc(n > 0 ? n : 1);
    CHECK(copy != NULL);
    if (n > 0) memcpy(copy, bytes, n);
    eng_err err2 = {0};
    f = (eng_safetensors *)&f;
    const int rc2 = eng_safetensors_open_memory(&f, copy, n, &err2);
    free(copy);
    CHECK_EQ_I64(rc2, code);
    CHECK(f == NULL);
    CHECK_CONTAINS(err2.msg, "eng_safetensors_open_memory: <memory>: ");
    CHECK_CONTAINS(err2.msg, needle);
    return 0;
}

/* The same for a file made of `header` and `data_len` data bytes. */
static int
expect_bad(const char *name, const char *header, size_t data_len, int code, const char *needle) {
    size_t n = 0;
    uint8_t *bytes = make_file(header, data_len, &n);
    CHECK(bytes != NULL);
    const int r = expect_bad_bytes(name, bytes, n, code, needle);
    free(bytes);
    return r;
}

/* Opens header+data from memory and expects success (for the valid-edge cases). */
static int expect_good(const char *header, size_t data_len, int64_t count) {
    size_t n = 0;
    eng_err err = {0};
    eng_safetensors *f = NULL;
    uint8_t *bytes = make_file(header, data_len, &n);
    CHECK(bytes != NULL);
    const int rc = eng_safetensors_open_memory(&f, bytes, n, &err);
    if (rc != ENG_OK) free(bytes);
    CHECK_OK(rc, &err);
    const int64_t got = eng_safetensors_count(f);
    eng_safetensors_close(f);
    free(bytes);
    CHECK_EQ_I64(got, count);
    return 0;
}

/* ---- round trips --------------------------------------------------------------------------- */

enum { RT_N = 18 };
static uint8_t rt_data[RT_N][64];
static const int64_t rt_shapes[RT_N][8] = {
    {2, 3}, {5}, {3, 1, 2}, {7},    {2, 2}, {3}, {2}, {4},    {1, 2},
    {3},    {2}, {1},       {2, 3}, {3},    {2}, {0}, {0, 4}, {1, 1, 1, 1, 1, 1, 1, 2},
};
static const int rt_ndims[RT_N] = {2, 1, 3, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 0, 2, 8};
static const char *const rt_names[RT_N] = {
    "f32.weight", "f16", "bf16", "i8.odd", "i32",     "u8",      "f64",    "bool",  "i64",
    "u16",        "u32", "u64",  "i16",    "f8_e4m3", "f8_e5m2", "scalar", "empty", "eight_dims",
};
static const eng_safetensors_dtype rt_dtypes[RT_N] = {
    ENG_SAFETENSORS_F32,  ENG_SAFETENSORS_F16,     ENG_SAFETENSORS_BF16,    ENG_SAFETENSORS_I8,
    ENG_SAFETENSORS_I32,  ENG_SAFETENSORS_U8,      ENG_SAFETENSORS_F64,     ENG_SAFETENSORS_BOOL,
    ENG_SAFETENSORS_I64,  ENG_SAFETENSORS_U16,     ENG_SAFETENSORS_U32,     ENG_SAFETENSORS_U64,
    ENG_SAFETENSORS_I16,  ENG_SAFETENSORS_F8_E4M3, ENG_SAFETENSORS_F8_E5M2, ENG_SAFETENSORS_F32,
    ENG_SAFETENSORS_BF16, ENG_SAFETENSORS_F16,
};
/* Expected element counts and sizes, written out (not computed by the code under test). */
static const int64_t rt_numel[RT_N] = {6, 5, 6, 7, 4, 3, 2, 4, 2, 3, 2, 1, 6, 3, 2, 1, 0, 2};
static const size_t rt_esize[RT_N] = {4, 2, 2, 1, 4, 1, 8, 1, 8, 2, 4, 8, 2, 1, 1, 4, 2, 2};

/* Fills rt_data from the seed and writes the round-trip file; half the entries by dtype name. */
static int rt_write(const char *path, const eng_safetensors_kv *meta, int64_t n_meta) {
    eng_safetensors_entry e[RT_N];
    eng_err err = {0};
    uint64_t s = eng_test_seed();
    for (int i = 0; i < RT_N; i++) {
        for (int k = 0; k < 64; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            rt_data[i][k] = (uint8_t)(s >> 56);
        }
        e[i].name = rt_names[i];
        e[i].dtype = rt_dtypes[i];
        e[i].dtype_name = (i % 2 == 0) ? eng_safetensors_dtype_name(rt_dtypes[i]) : NULL;
        e[i].ndim = rt_ndims[i];
        e[i].shape = rt_ndims[i] > 0 ? rt_shapes[i] : NULL;
        e[i].data = rt_numel[i] > 0 ? rt_data[i] : NULL;
    }
    CHECK_OK(eng_safetensors_write(path, e, RT_N, meta, n_meta, &err), &err);
    return 0;
}

/* Checks an open round-trip file against rt_*; `base` is the first byte of the file. */
static int rt_check(const eng_safetensors *f, const uint8_t *base) {
    CHECK_EQ_I64(eng_safetensors_count(f), RT_N);
    uint64_t pos = 0;
    uint64_t data_start = 0;
    for (int i = 0; i < RT_N; i++) {
        /* the writer lays tensors out in the order given, and index order is data order */
        const eng_safetensors_info *t = eng_safetensors_info_at(f, i);
        CHECK(t != NULL);
        CHECK(strcmp(t->name, rt_names[i]) == 0);
        CHECK(eng_safetensors_find(f, rt_names[i]) == t);
        CHECK_EQ_I64(t->index, i);
        CHECK_EQ_I64(t->dtype, rt_dtypes[i]);
        CHECK(strcmp(t->dtype_name, eng_safetensors_dtype_name(rt_dtypes[i])) == 0);
        CHECK_EQ_I64(t->ndim, rt_ndims[i]);
        for (int d = 0; d < 8; d++) {
            CHECK_EQ_I64(t->shape[d], d < rt_ndims[i] ? rt_shapes[i][d] : 1);
        }
        CHECK_EQ_I64(t->numel, rt_numel[i]);
        CHECK_EQ_I64(t->nbytes, (uint64_t)rt_numel[i] * rt_esize[i]);
        CHECK_EQ_I64(t->data_begin, pos);
        if (i == 0) data_start = t->file_offset;
        CHECK_EQ_I64(t->file_offset, data_start + pos);
        CHECK((const uint8_t *)t->data == base + t->file_offset);
        CHECK(t->nbytes == 0 || memcmp(t->data, rt_data[i], t->nbytes) == 0);
        pos += t->nbytes;
    }
    CHECK_EQ_I64(data_start % 8, 0); /* header padded to a multiple of 8 */
    return 0;
}

static int test_roundtrip_dtypes(void) {
    char path[600];
    eng_err err = {0};
    eng_safetensors *f = NULL;
    tmp_path(path, sizeof path, "roundtrip.safetensors");
    if (rt_write(path, NULL, 0) != 0) return 1;
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err);
    CHECK(strcmp(eng_safetensors_path(f), path) == 0);
    CHECK_EQ_I64(eng_safetensors_metadata_count(f), 0);
    CHECK(eng_safetensors_metadata_get(f, "format") == NULL);
    /* the file's first byte: the data pointer of tensor 0 minus its file offset */
    const eng_safetensors_info *t0 = eng_safetensors_info_at(f, 0);
    const uint8_t *base = (const uint8_t *)t0->data - t0->file_offset;
    const int r = rt_check(f, base);
    /* the dtype table against the format's sizes */
    CHECK_EQ_I64(eng_safetensors_dtype_size(ENG_SAFETENSORS_F64), 8);
    CHECK_EQ_I64(eng_safetensors_dtype_size(ENG_SAFETENSORS_BOOL), 1);
    CHECK_EQ_I64(eng_safetensors_dtype_size(ENG_SAFETENSORS_DTYPE_COUNT), 0);
    CHECK(strcmp(eng_safetensors_dtype_name(ENG_SAFETENSORS_F8_E5M2), "F8_E5M2") == 0);
    eng_safetensors_close(f);
    eng_safetensors_close(NULL); /* a no-op */
    return r;
}

static int test_roundtrip_memory(void) {
    char path[600];
    size_t n = 0;
    eng_err err = {0};
    eng_safetensors *f = NULL;
    tmp_path(path, sizeof path, "roundtrip_mem.safetensors");
    if (rt_write(path, NULL, 0) != 0) return 1;
    uint8_t *bytes = read_bytes(path, &n);
    CHECK(bytes != NULL);
    const int rc = eng_safetensors_open_memory(&f, bytes, n, &err);
    int r = rc == ENG_OK ? rt_check(f, bytes) : 1;
    if (rc == ENG_OK) {
        if (strcmp(eng_safetensors_path(f), "<memory>") != 0) r = 1;
    } else {
        fprintf(stderr, "open_memory: %s\n", err.msg);
    }
    eng_safetensors_close(f);
    free(bytes);
    return r;
}

static int test_metadata_roundtrip(void) {
    char path[600];
    eng_err err = {0};
    eng_safetensors *f = NULL;
    const float x[2] = {1.0f, -2.5f};
    const int64_t shape[1] = {2};
    const eng_safetensors_entry e[1] = {{"x", NULL, ENG_SAFETENSORS_F32, 1, shape, x}};
    const eng_safetensors_kv meta[4] = {
        {"format", "pt"},
        {"quote\"and\\backslash", "line1\nline2\ttab"},
        {"unicode \xc3\xa9\xe2\x82\xac", "\xf0\x9f\x98\x80 smile"},
        {"empty", ""},
    };
    tmp_path(path, sizeof path, "metadata.safetensors");
    CHECK_OK(eng_safetensors_write(path, e, 1, meta, 4, &err), &err);
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err);
    CHECK_EQ_I64(eng_safetensors_metadata_count(f), 4);
    for (int i = 0; i < 4; i++) { /* header order */
        const char *k = NULL, *v = NULL;
        eng_safetensors_metadata_at(f, i, &k, &v);
        CHECK(strcmp(k, meta[i].key) == 0);
        CHECK(strcmp(v, meta[i].value) == 0);
        CHECK(strcmp(eng_safetensors_metadata_get(f, meta[i].key), meta[i].value) == 0);
    }
    CHECK(eng_safetensors_metadata_get(f, "absent") == NULL);
    CHECK(eng_safetensors_metadata_get(f, "forma") == NULL);
    CHECK_EQ_I64(eng_safetensors_count(f), 1); /* metadata is not a tensor */
    CHECK(eng_safetensors_find(f, "__metadata__") == NULL);
    const eng_safetensors_info *t = eng_safetensors_find(f, "x");
    CHECK(t != NULL && memcmp(t->data, x, sizeof x) == 0);
    eng_safetensors_close(f);
    return 0;
}

static int test_lookup_by_name(void) {
    enum { N = 40 };
    char path[600], names[N][48];
    eng_safetensors_entry e[N];
    int32_t vals[N];
    const int64_t shape[1] = {1};
    eng_err err = {0};
    eng_safetensors *f = NULL;
    for (int i = 0; i < N; i++) {
        /* names out of sorted order, with dots, quotes, backslashes and non-ASCII */
        snprintf(names[i], sizeof names[i], "%s.block.%d.w\"\\\xc3\xa9", i % 2 ? "z" : "a",
                 (N - i) * 37 % 101);
        vals[i] = 1000 + i;
        e[i] = (eng_safetensors_entry){names[i], "I32", ENG_SAFETENSORS_F32, 1, shape, &vals[i]};
    }
    tmp_path(path, sizeof path, "lookup.safetensors");
    CHECK_OK(eng_safetensors_write(path, e, N, NULL, 0, &err), &err);
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err);
    CHECK_EQ_I64(eng_safetensors_count(f), N);
    for (int i = 0; i < N; i++) {
        const eng_safetensors_info *t = eng_safetensors_find(f, names[i]);
        CHECK(t != NULL);
        CHECK(strcmp(t->name, names[i]) == 0);
        int32_t v = 0;
        memcpy(&v, t->data, sizeof v);
        CHECK_EQ_I64(v, 1000 + i);
        CHECK(eng_safetensors_info_at(f, t->index) == t);
    }
    CHECK(eng_safetensors_find(f, "") == NULL);
    CHECK(eng_safetensors_find(f, "a.block") == NULL);
    CHECK(eng_safetensors_find(f, "zzz") == NULL);
    eng_safetensors_close(f);
    return 0;
}

static int test_tensor_view(void) {
    char path[600];
    eng_err err = {0};
    eng_safetensors *f = NULL;
    eng_tensor t;
    const float w[6] = {1, 2, 3, 4, 5, 6};
    const uint16_t h[4] = {0x3c00, 0xc000, 0x0000, 0x7bff};
    const int8_t q[3] = {-128, 0, 127};
    const int32_t ids[2] = {49406, 49407};
    const uint8_t f8[5] = {0x00, 0x38, 0x7e, 0xb8, 0x01};
    const float s = 0.125f;
    const int64_t s23[2] = {2, 3}, s22[2] = {2, 2}, s3[1] = {3}, s2[1] = {2}, s5[4] = {1, 1, 5, 1},
                  s04[2] = {0, 4};
    const eng_safetensors_entry e[] = {
        /* laid out so every element is aligned: offsets 0, 24, 32, 40, 48, 51, 56, 60 */
        {"w", NULL, ENG_SAFETENSORS_F32, 2, s23, w},
        {"ids", NULL, ENG_SAFETENSORS_I32, 1, s2, ids},
        {"h", "F16", ENG_SAFETENSORS_F32, 2, s22, h},
        {"b", NULL, ENG_SAFETENSORS_BF16, 2, s22, h},
        {"q", NULL, ENG_SAFETENSORS_I8, 1, s3, q},
        {"f8", NULL, ENG_SAFETENSORS_F8_E4M3, 4, s5, f8},
        {"s", NULL, ENG_SAFETENSORS_F32, 0, NULL, &s},
        {"empty", NULL, ENG_SAFETENSORS_F32, 2, s04, NULL},
    };
    tmp_path(path, sizeof path, "view.safetensors");
    CHECK_OK(eng_safetensors_write(path, e, ENG_TEST_N(e), NULL, 0, &err), &err);
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err);

    CHECK_OK(eng_safetensors_view(&t, f, "w", &err), &err);
    CHECK_EQ_I64(t.dtype, ENG_DTYPE_F32);
    CHECK_EQ_I64(t.device, ENG_DEVICE_CPU);
    CHECK_EQ_I64(t.ndim, 2);
    CHECK_EQ_I64(t.shape[0], 2);
    CHECK_EQ_I64(t.shape[1], 3);
    CHECK_EQ_I64(t.stride[0], 3);
    CHECK_EQ_I64(t.stride[1], 1);
    CHECK(t.data == eng_safetensors_find(f, "w")->data);
    CHECK(((const float *)t.data)[4] == 5.0f);

    CHECK_OK(eng_safetensors_view(&t, f, "h", &err), &err);
    CHECK_EQ_I64(t.dtype, ENG_DTYPE_F16);
    CHECK(((const uint16_t *)t.data)[3] == 0x7bff);
    CHECK_OK(eng_safetensors_view(&t, f, "b", &err), &err);
    CHECK_EQ_I64(t.dtype, ENG_DTYPE_BF16);
    CHECK_OK(eng_safetensors_view(&t, f, "q", &err), &err);
    CHECK_EQ_I64(t.dtype, ENG_DTYPE_I8);
    CHECK(((const int8_t *)t.data)[0] == -128);
    CHECK_OK(eng_safetensors_view(&t, f, "ids", &err), &err);
    CHECK_EQ_I64(t.dtype, ENG_DTYPE_I32);
    CHECK(((const int32_t *)t.data)[1] == 49407);
    CHECK_OK(eng_safetensors_view(&t, f, "f8", &err), &err);
    CHECK_EQ_I64(t.dtype, ENG_DTYPE_FP8_E4M3);
    CHECK_EQ_I64(t.ndim, 4);
    CHECK_EQ_I64(t.shape[2], 5);
    CHECK(((const uint8_t *)t.data)[2] == 0x7e);
    CHECK_OK(eng_safetensors_view(&t, f, "s", &err), &err);
    CHECK_EQ_I64(t.ndim, 0);
    CHECK(*(const float *)t.data == 0.125f);
    CHECK_OK(eng_safetensors_view(&t, f, "empty", &err), &err);
    CHECK_EQ_I64(t.ndim, 2);
    CHECK_EQ_I64(t.shape[0], 0);
    CHECK(t.data == NULL);

    /* a name that is not there */
    CHECK_EQ_I64(eng_safetensors_view(&t, f, "missing.weight", &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "eng_safetensors_view: ");
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "no tensor named \"missing.weight\"");
    eng_safetensors_close(f);

    /* the dtype mapping on its own */
    eng_dtype edt = ENG_DTYPE_COUNT;
    CHECK_OK(eng_safetensors_dtype_to_eng(&edt, ENG_SAFETENSORS_BF16, &err), &err);
    CHECK_EQ_I64(edt, ENG_DTYPE_BF16);
    CHECK_EQ_I64(eng_safetensors_dtype_to_eng(&edt, ENG_SAFETENSORS_U16, &err), ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "U16");
    for (int d = 0; d < ENG_DTYPE_COUNT; d++) {
        CHECK_OK(
            eng_safetensors_dtype_to_eng(&edt, eng_safetensors_dtype_from_eng((eng_dtype)d), &err),
            &err);
        CHECK_EQ_I64(edt, d);
    }
    CHECK_EQ_I64(eng_safetensors_dtype_from_eng(ENG_DTYPE_COUNT), ENG_SAFETENSORS_DTYPE_COUNT);
    eng_safetensors_dtype sdt = ENG_SAFETENSORS_DTYPE_COUNT;
    CHECK_OK(eng_safetensors_dtype_parse(&sdt, "F8_E4M3", &err), &err);
    CHECK_EQ_I64(sdt, ENG_SAFETENSORS_F8_E4M3);
    CHECK_EQ_I64(eng_safetensors_dtype_parse(&sdt, "f16", &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "unknown dtype \"f16\"");
    return 0;
}

static int test_view_unsupported(void) {
    char path[600];
    eng_err err = {0};
    eng_safetensors *f = NULL;
    eng_tensor t;
    const double d[2] = {1.0, 2.0};
    const uint8_t b[32] = {0};
    const int64_t s2[1] = {2}, s5[5] = {1, 2, 1, 2, 1}, s4[1] = {4};
    const eng_safetensors_entry e[] = {
        {"double.weight", NULL, ENG_SAFETENSORS_F64, 1, s2, d},
        {"five.dims", NULL, ENG_SAFETENSORS_F32, 5, s5, b},
        {"flags", NULL, ENG_SAFETENSORS_BOOL, 1, s4, b},
    };
    tmp_path(path, sizeof path, "unsupported.safetensors");
    CHECK_OK(eng_safetensors_write(path, e, ENG_TEST_N(e), NULL, 0, &err), &err);
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err);
    CHECK_EQ_I64(eng_safetensors_view(&t, f, "double.weight", &err), ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "eng_safetensors_view: ");
    CHECK_CONTAINS(err.msg, "tensor \"double.weight\" has dtype F64");
    CHECK_EQ_I64(eng_safetensors_view(&t, f, "five.dims", &err), ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "tensor \"five.dims\" has 5 dimensions [1, 2, 1, 2, 1]");
    CHECK_EQ_I64(eng_safetensors_view(&t, f, "flags", &err), ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "dtype BOOL");
    eng_safetensors_close(f);
    return 0;
}

/* A file whose F32 tensor starts at an odd byte (as another writer may produce): the reader
 * accepts it, the info gives the bytes, the eng_tensor view refuses it. */
static int test_view_misaligned(void) {
    const char *hdr = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
    size_t n = 0;
    eng_err err = {0};
    eng_safetensors *f = NULL;
    eng_tensor t;
    uint8_t *bytes = make_file(hdr, 9, &n);
    uint8_t *aligned = malloc(n + 16); /* place the file so the data buffer is 8-aligned */
    CHECK(bytes != NULL && aligned != NULL);
    const size_t hl = strlen(hdr);
    const size_t shift = (8 - (((uintptr_t)aligned + 8 + hl) % 8)) % 8;
    memcpy(aligned + shift, bytes, n);
    free(bytes);
    const int rc = eng_safetensors_open_memory(&f, aligned + shift, n, &err);
    if (rc != ENG_OK) free(aligned);
    CHECK_OK(rc, &err);
    const eng_safetensors_info *b = eng_safetensors_find(f, "b");
    const int rc_view = eng_safetensors_view(&t, f, "b", &err);
    const int ok = b != NULL && b->file_offset == 8 + hl + 1 && b->nbytes == 8;
    const int rc_a = eng_safetensors_view(&t, f, "a", NULL); /* U8 has no engine dtype */
    eng_safetensors_close(f);
    free(aligned);
    CHECK(ok);
    CHECK_EQ_I64(rc_view, ENG_E_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "tensor \"b\": data at file byte");
    CHECK_CONTAINS(err.msg, "not aligned to its 4-byte F32 elements");
    CHECK_EQ_I64(rc_a, ENG_E_UNSUPPORTED);
    return 0;
}

/* The writer's bytes: length, '{' first, spaces to a multiple of 8, the data after. */
static int test_header_layout(void) {
    char path[600];
    size_t n = 0;
    eng_err err = {0};
    const uint8_t d[3] = {0xaa, 0xbb, 0xcc};
    const int64_t s3[1] = {3};
    const eng_safetensors_entry e[1] = {{"t", "U8", ENG_SAFETENSORS_U8, 1, s3, d}};
    tmp_path(path, sizeof path, "layout.safetensors");
    CHECK_OK(eng_safetensors_write(path, e, 1, NULL, 0, &err), &err);
    uint8_t *bytes = read_bytes(path, &n);
    CHECK(bytes != NULL);
    const char *json = "{\"t\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}";
    const size_t jl = strlen(json); /* 52: padded to 56 */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | bytes[i];
    int ok = hl == 56 && n == 8 + 56 + 3 && memcmp(bytes + 8, json, jl) == 0 &&
             memcmp(bytes + 8 + 56, d, 3) == 0;
    for (size_t i = 8 + jl; i < 8 + 56; i++)
        ok = ok && bytes[i] == ' ';
    free(bytes);
    CHECK(ok);
    return 0;
}

/* Valid edge cases the reader must accept. */
static int test_valid_edges(void) {
    if (expect_good("{}", 0, 0) != 0) return 1;
    if (expect_good("  {}  \n", 0, 0) != 0) return 1;
    if (expect_good("{\"__metadata__\":{}}", 0, 0) != 0) return 1;
    /* zero-sized tensors at the start, middle and end; unknown fields ignored */
    if (expect_good("{\"z0\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[0,0]},"
                    "\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4],\"x\":1},"
                    "\"z1\":{\"dtype\":\"I8\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
                    "\"b\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[4,5]},"
                    "\"z2\":{\"dtype\":\"F64\",\"shape\":[0,7],\"data_offsets\":[5,5]}}",
                    5, 5) != 0) {
        return 1;
    }
    /* tensors listed out of data order come back in data order */
    size_t n = 0;
    eng_err err = {0};
    eng_safetensors *f = NULL;
    uint8_t *bytes =
        make_file("{\"second\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]},"
                  "\"first\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                  3, &n);
    CHECK(bytes != NULL);
    const int rc = eng_safetensors_open_memory(&f, bytes, n, &err);
    const int ok = rc == ENG_OK && strcmp(eng_safetensors_info_at(f, 0)->name, "first") == 0 &&
                   strcmp(eng_safetensors_info_at(f, 1)->name, "second") == 0 &&
                   eng_safetensors_info_at(f, 1)->data_begin == 1;
    eng_safetensors_close(f);
    free(bytes);
    CHECK_OK(rc, &err);
    CHECK(ok);
    return 0;
}

/* ---- writer errors ------------------------------------------------------------------------- */

static int expect_write_error(const char *path,
                              const eng_safetensors_entry *e,
                              int64_t n,
                              const eng_safetensors_kv *m,
                              int64_t nm,
                              int code,
                              const char *needle) {
    eng_err err = {0};
    const int rc = eng_safetensors_write(path, e, n, m, nm, &err);
    fprintf(stderr, "  %s\n", err.msg);
    CHECK_EQ_I64(rc, code);
    CHECK_CONTAINS(err.msg, "eng_safetensors_write: ");
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, needle);
    FILE *fp = fopen(path, "rb"); /* nothing was written */
    if (fp != NULL) fclose(fp);
    CHECK(fp == NULL);
    return 0;
}

static int test_write_errors(void) {
    char path[600];
    const float x[4] = {0};
    const int64_t s2[1] = {2}, sneg[2] = {2, -3}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1},
                  sbig[3] = {(int64_t)1 << 40, (int64_t)1 << 40, (int64_t)1 << 40};
    const eng_safetensors_kv kv_dup[2] = {{"k", "1"}, {"k", "2"}};
    const eng_safetensors_kv kv_null[1] = {{"k", NULL}};
    tmp_path(path, sizeof path, "write_err.safetensors");
    remove(path);
    const eng_safetensors_entry dup[3] = {{"a", NULL, ENG_SAFETENSORS_F32, 1, s2, x},
                                          {"b.weight", NULL, ENG_SAFETENSORS_F32, 1, s2, x},
                                          {"b.weight", NULL, ENG_SAFETENSORS_F32, 1, s2, x}};
    if (expect_write_error(path, dup, 3, NULL, 0, ENG_E_INVALID_ARG,
                           "tensor name \"b.weight\" appears twice") != 0) {
        return 1;
    }
    const eng_safetensors_entry bad_dtype[1] = {{"a", "FP32", ENG_SAFETENSORS_F32, 1, s2, x}};
    if (expect_write_error(path, bad_dtype, 1, NULL, 0, ENG_E_INVALID_ARG,
                           "tensor \"a\": unknown dtype \"FP32\"") != 0) {
        return 1;
    }
    const eng_safetensors_entry bad_enum[1] = {{"a", NULL, (eng_safetensors_dtype)99, 1, s2, x}};
    if (expect_write_error(path, bad_enum, 1, NULL, 0, ENG_E_INVALID_ARG, "dtype enum value 99") !=
        0) {
        return 1;
    }
    const eng_safetensors_entry neg[1] = {{"neg", NULL, ENG_SAFETENSORS_F32, 2, sneg, x}};
    if (expect_write_error(path, neg, 1, NULL, 0, ENG_E_INVALID_ARG, "shape[1] is -3") != 0) {
        return 1;
    }
    const eng_safetensors_entry nine[1] = {{"nine", NULL, ENG_SAFETENSORS_F32, 9, s9, x}};
    if (expect_write_error(path, nine, 1, NULL, 0, ENG_E_INVALID_ARG, "ndim is 9") != 0) {
        return 1;
    }
    const eng_safetensors_entry big[1] = {{"big", NULL, ENG_SAFETENSORS_F32, 3, sbig, x}};
    if (expect_write_error(path, big, 1, NULL, 0, ENG_E_INVALID_ARG, "tensor \"big\"") != 0) {
        return 1;
    }
    const eng_safetensors_entry nodata[1] = {{"nodata", NULL, ENG_SAFETENSORS_F32, 1, s2, NULL}};
    if (expect_write_error(path, nodata, 1, NULL, 0, ENG_E_INVALID_ARG,
                           "tensor \"nodata\": data is NULL but the tensor has 8 bytes") != 0) {
        return 1;
    }
    const eng_safetensors_entry reserved[1] = {
        {"__metadata__", NULL, ENG_SAFETENSORS_F32, 1, s2, x}};
    if (expect_write_error(path, reserved, 1, NULL, 0, ENG_E_INVALID_ARG,
                           "\"__metadata__\" is reserved") != 0) {
        return 1;
    }
    const eng_safetensors_entry badutf8[1] = {{"caf\xc3", NULL, ENG_SAFETENSORS_F32, 1, s2, x}};
    if (expect_write_error(path, badutf8, 1, NULL, 0, ENG_E_INVALID_ARG, "not valid UTF-8") != 0) {
        return 1;
    }
    const eng_safetensors_entry noname[1] = {{NULL, NULL, ENG_SAFETENSORS_F32, 1, s2, x}};
    if (expect_write_error(path, noname, 1, NULL, 0, ENG_E_INVALID_ARG, "entry 0 has no name") !=
        0) {
        return 1;
    }
    if (expect_write_error(path, dup, 1, kv_dup, 2, ENG_E_INVALID_ARG,
                           "metadata key \"k\" appears twice") != 0) {
        return 1;
    }
    if (expect_write_error(path, dup, 1, kv_null, 1, ENG_E_INVALID_ARG, "NULL value") != 0) {
        return 1;
    }
    return 0;
}

static int test_write_io_error(void) {
    char path[600];
    const uint8_t d[1] = {7};
    const int64_t s1[1] = {1};
    const eng_safetensors_entry e[1] = {{"t", "U8", ENG_SAFETENSORS_U8, 1, s1, d}};
    tmp_path(path, sizeof path, "no_such_dir/sub/out.safetensors");
    if (expect_write_error(path, e, 1, NULL, 0, ENG_E_IO,
                           "cannot create: No such file or directory") != 0) {
        return 1;
    }
    /* renaming over a directory fails after the temporary file was written: it is removed */
    char dir[600], tmp[700];
    tmp_path(dir, sizeof dir, "a_directory.safetensors");
    CHECK(mkdir(dir, 0700) == 0 || access(dir, F_OK) == 0);
    eng_err err = {0};
    CHECK_EQ_I64(eng_safetensors_write(dir, e, 1, NULL, 0, &err), ENG_E_IO);
    fprintf(stderr, "  %s\n", err.msg);
    CHECK_CONTAINS(err.msg, "eng_safetensors_write: ");
    CHECK_CONTAINS(err.msg, dir);
    CHECK_CONTAINS(err.msg, "cannot rename");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    return 0;
}

/* Writing over an existing file replaces it and leaves no temporary file behind. */
static int test_write_replace(void) {
    char path[600], tmp[700];
    eng_err err = {0};
    eng_safetensors *f = NULL;
    const uint8_t d1[2] = {1, 2}, d2[3] = {3, 4, 5};
    const int64_t s2[1] = {2}, s3[1] = {3};
    const eng_safetensors_entry e1[1] = {{"old", "U8", ENG_SAFETENSORS_U8, 1, s2, d1}};
    const eng_safetensors_entry e2[1] = {{"new", "U8", ENG_SAFETENSORS_U8, 1, s3, d2}};
    tmp_path(path, sizeof path, "replace.safetensors");
    CHECK_OK(eng_safetensors_write(path, e1, 1, NULL, 0, &err), &err);
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err); /* keep the old mapping open */
    CHECK_OK(eng_safetensors_write(path, e2, 1, NULL, 0, &err), &err);
    /* the open handle still sees the old file (rename replaced the directory entry) */
    const eng_safetensors_info *old = eng_safetensors_find(f, "old");
    const int old_ok = old != NULL && memcmp(old->data, d1, 2) == 0;
    eng_safetensors_close(f);
    CHECK(old_ok);
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err);
    const int new_ok = eng_safetensors_count(f) == 1 && eng_safetensors_find(f, "new") != NULL &&
                       memcmp(eng_safetensors_find(f, "new")->data, d2, 3) == 0;
    eng_safetensors_close(f);
    CHECK(new_ok);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    /* an empty file: no tensors, no metadata */
    CHECK_OK(eng_safetensors_write(path, NULL, 0, NULL, 0, &err), &err);
    CHECK_OK(eng_safetensors_open(&f, path, &err), &err);
    const int64_t cnt = eng_safetensors_count(f);
    eng_safetensors_close(f);
    CHECK_EQ_I64(cnt, 0);
    return 0;
}

/* ---- the malformed corpus: one case per class ---------------------------------------------- */

static int test_empty_file(void) {
    return expect_bad_bytes("empty", (const uint8_t *)"", 0, ENG_E_FORMAT,
                            "the file is empty (0 bytes)");
}

static int test_short_file(void) {
    const uint8_t b[5] = {2, 0, 0, 0, 0};
    return expect_bad_bytes("short", b, 5, ENG_E_FORMAT,
                            "the file has 5 bytes, fewer than the 8-byte header length");
}

static int test_header_len_past_eof(void) {
    uint8_t b[8 + 20];
    put_le64(b, 1000);
    memset(b + 8, ' ', 20);
    b[8] = '{';
    b[9] = '}';
    return expect_bad_bytes("len_past_eof", b, sizeof b, ENG_E_FORMAT,
                            "header length is 1000 bytes but only 20 bytes follow");
}

static int test_header_len_over_cap(void) {
    uint8_t b[8 + 2];
    put_le64(b, 200000000);
    b[8] = '{';
    b[9] = '}';
    if (expect_bad_bytes("len_over_cap", b, sizeof b, ENG_E_FORMAT,
                         "header length is 200000000 bytes, over the cap of 100000000") != 0) {
        return 1;
    }
    put_le64(b, UINT64_MAX); /* must not wrap around in any size arithmetic */
    if (expect_bad_bytes("len_max", b, sizeof b, ENG_E_FORMAT,
                         "header length is 18446744073709551615 bytes, over the cap") != 0) {
        return 1;
    }
    put_le64(b, 1);
    return expect_bad_bytes("len_one", b, sizeof b, ENG_E_FORMAT,
                            "header length is 1 bytes, too short for a JSON object");
}

static int test_header_not_json(void) {
    if (expect_bad("not_json", "{\"a\": {\"dtype\": \"F32\",, }", 0, ENG_E_FORMAT,
                   "header is not valid JSON (error near header byte") != 0) {
        return 1;
    }
    if (expect_bad("not_json_trailing", "{} {}", 0, ENG_E_FORMAT,
                   "header has text after the JSON object at header byte 3") != 0) {
        return 1;
    }
    uint8_t b[8 + 4] = {4, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' '}; /* a NUL in the padding */
    if (expect_bad_bytes("nul_in_header", b, sizeof b, ENG_E_FORMAT,
                         "header byte 2 (0x00) is a control character") != 0) {
        return 1;
    }
    return expect_bad("bom", "\xef\xbb\xbf{}", 0, ENG_E_FORMAT, "byte-order mark");
}

static int test_header_bad_utf8(void) {
    if (expect_bad("bad_utf8", "{\"caf\xe9\": 1}", 0, ENG_E_FORMAT,
                   "header byte 5 (0xe9) is not valid UTF-8") != 0) {
        return 1;
    }
    /* an overlong encoding of '/' and a UTF-16 surrogate are invalid too */
    if (expect_bad("overlong", "{\"\xc0\xaf\": 1}", 0, ENG_E_FORMAT, "(0xc0) is not valid UTF-8") !=
        0) {
        return 1;
    }
    return expect_bad("surrogate", "{\"\xed\xa0\x80\": 1}", 0, ENG_E_FORMAT,
                      "(0xed) is not valid UTF-8");
}

static int test_header_not_object(void) {
    if (expect_bad("array", "[1, 2]", 0, ENG_E_FORMAT,
                   "header is JSON but not an object (found an array)") != 0) {
        return 1;
    }
    return expect_bad("string", "\"hello\"", 0, ENG_E_FORMAT,
                      "header is JSON but not an object (found a string)");
}

static int test_entry_not_object(void) {
    return expect_bad("entry_not_object", "{\"a.weight\": [0, 4]}", 0, ENG_E_FORMAT,
                      "tensor \"a.weight\" is an array, expected an object with \"dtype\"");
}

static int test_unknown_dtype(void) {
    if (expect_bad(
            "unknown_dtype", "{\"w\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
            ENG_E_FORMAT, "tensor \"w\" has unknown dtype \"F17\" (expected one of F64") != 0) {
        return 1;
    }
    if (expect_bad("dtype_lowercase",
                   "{\"w\":{\"dtype\":\"f16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
                   ENG_E_FORMAT, "unknown dtype \"f16\"") != 0) {
        return 1;
    }
    /* names in messages are one line: a JSON-escaped newline and quote are shown as \xNN */
    if (expect_bad("dtype_name_escaped",
                   "{\"a\\nb\\\"c\":{\"dtype\":\"X\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                   ENG_E_FORMAT, "tensor \"a\\x0ab\\x22c\" has unknown dtype \"X\"") != 0) {
        return 1;
    }
    return expect_bad("dtype_number", "{\"w\":{\"dtype\":16,\"shape\":[1],\"data_offsets\":[0,2]}}",
                      2, ENG_E_FORMAT, "tensor \"w\": \"dtype\" is 16, expected a string");
}

static int test_missing_dtype(void) {
    return expect_bad("missing_dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      ENG_E_FORMAT, "tensor \"w\" has no \"dtype\" field");
}

static int test_missing_shape(void) {
    if (expect_bad("missing_shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
                   ENG_E_FORMAT, "tensor \"w\" has no \"shape\" field") != 0) {
        return 1;
    }
    return expect_bad(
        "two_shapes",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        ENG_E_FORMAT, "tensor \"w\" has two \"shape\" fields");
}

static int test_missing_offsets(void) {
    return expect_bad("missing_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
                      ENG_E_FORMAT, "tensor \"w\" has no \"data_offsets\" field");
}

static int test_shape_negative(void) {
    return expect_bad(
        "shape_negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8,
        ENG_E_FORMAT, "tensor \"w\": shape[1] is -1, expected a non-negative integer");
}

static int test_shape_not_integer(void) {
    if (expect_bad("shape_fraction",
                   "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                   ENG_E_FORMAT, "tensor \"w\": shape[0] is 1.5, expected a non-negative") != 0) {
        return 1;
    }
    if (expect_bad("shape_string",
                   "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                   ENG_E_FORMAT, "shape[0] is the string \"2\"") != 0) {
        return 1;
    }
    if (expect_bad("shape_huge",
                   "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8,
                   ENG_E_FORMAT, "shape[0] is 1.0000000000000001e+300") != 0) {
        return 1;
    }
    if (expect_bad("shape_not_array",
                   "{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16,
                   ENG_E_FORMAT, "tensor \"w\": \"shape\" is 4, expected an array") != 0) {
        return 1;
    }
    return expect_bad(
        "shape_nine_dims",
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
        ENG_E_FORMAT, "tensor \"w\": \"shape\" has more than 8 dimensions");
}

static int test_shape_overflow(void) {
    /* 2^52 * 2^52 elements: the element count overflows */
    if (expect_bad("shape_overflow",
                   "{\"w\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,4503599627370496],"
                   "\"data_offsets\":[0,4]}}",
                   4, ENG_E_FORMAT,
                   "tensor \"w\": shape [4503599627370496, 4503599627370496] has more than 2^63 "
                   "elements") != 0) {
        return 1;
    }
    /* 2^62 elements fit, x 8 bytes does not */
    return expect_bad("bytes_overflow",
                      "{\"w\":{\"dtype\":\"F64\",\"shape\":[2147483648,2147483648],"
                      "\"data_offsets\":[0,8]}}",
                      8, ENG_E_FORMAT,
                      "shape [2147483648, 2147483648] x 8-byte F64 overflows 64 bits");
}

static int test_size_mismatch(void) {
    return expect_bad("size_mismatch",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
                      ENG_E_FORMAT,
                      "tensor \"w\": data_offsets [0, 20] span 20 bytes but shape [2, 3] of F32 "
                      "(4 bytes each) needs 24");
}

static int test_offsets_past_end(void) {
    return expect_bad("truncated",
                      "{\"a.weight\":{\"dtype\":\"F16\",\"shape\":[4,4],\"data_offsets\":[0,32]},"
                      "\"b.weight\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[32,48]}}",
                      40, ENG_E_FORMAT,
                      "tensor \"b.weight\" ends at byte 48 but the data buffer has 40 bytes "
                      "(truncated download?)");
}

static int test_offsets_reversed(void) {
    return expect_bad("reversed", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}",
                      8, ENG_E_FORMAT, "tensor \"w\": data_offsets [8, 4] begin after end");
}

static int test_offsets_malformed(void) {
    if (expect_bad("offsets_three",
                   "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]}}", 4,
                   ENG_E_FORMAT, "\"data_offsets\" is an array with more than 2 elements") != 0) {
        return 1;
    }
    if (expect_bad("offsets_one", "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4]}}",
                   4, ENG_E_FORMAT, "\"data_offsets\" is an array with fewer than 2") != 0) {
        return 1;
    }
    if (expect_bad(
            "offsets_negative", "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}",
            4, ENG_E_FORMAT, "tensor \"w\": data_offsets[0] is -4, expected a non-negative") != 0) {
        return 1;
    }
    return expect_bad(
        "offsets_object", "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":{\"a\":0}}}", 4,
        ENG_E_FORMAT, "\"data_offsets\" is an object, expected an array [begin, end]");
}

static int test_overlap(void) {
    return expect_bad("overlap",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                      24, ENG_E_FORMAT,
                      "tensors \"a\" [0, 16) and \"b\" [8, 24) overlap in the data buffer");
}

static int test_hole(void) {
    if (expect_bad("hole",
                   "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                   20, ENG_E_FORMAT,
                   "bytes [8, 12) of the data buffer belong to no tensor (a hole between \"a\" "
                   "and \"b\")") != 0) {
        return 1;
    }
    if (expect_bad("hole_start", "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}",
                   5, ENG_E_FORMAT,
                   "bytes [0, 3) of the data buffer belong to no tensor (a hole "
                   "before \"b\")") != 0) {
        return 1;
    }
    if (expect_bad("trailing", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 7,
                   ENG_E_FORMAT,
                   "bytes [2, 7) of the data buffer belong to no tensor "
                   "(trailing bytes after \"a\")") != 0) {
        return 1;
    }
    return expect_bad("no_tensors_but_data", "{}", 3, ENG_E_FORMAT,
                      "bytes [0, 3) of the data buffer belong to no tensor (the header lists "
                      "none)");
}

static int test_duplicate_names(void) {
    if (expect_bad("duplicate",
                   "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                   "\"v\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]},"
                   "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[3,4]}}",
                   4, ENG_E_FORMAT, "tensor name \"w\" appears twice in the header") != 0) {
        return 1;
    }
    /* a long name is cut in the message (between characters), the rest of the message kept */
    char hdr[1200], needle[300], name[301];
    memset(name, 'n', 300);
    memcpy(name + 118, "\xc3\xa9", 2); /* a two-byte character across the 120-byte cut */
    name[300] = '\0';
    snprintf(hdr, sizeof hdr,
             "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
             "\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
             name, name);
    snprintf(needle, sizeof needle, "tensor name \"%.118s\xc3\xa9...\" appears twice", name);
    if (expect_bad("duplicate_long", hdr, 2, ENG_E_FORMAT, needle) != 0) return 1;
    if (expect_bad("duplicate_metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0,
                   ENG_E_FORMAT, "the \"__metadata__\" key appears twice") != 0) {
        return 1;
    }
    return expect_bad("duplicate_metadata_key",
                      "{\"__metadata__\":{\"format\":\"pt\",\"x\":\"1\",\"format\":\"np\"}}", 0,
                      ENG_E_FORMAT, "metadata key \"format\" appears twice");
}

static int test_metadata_not_string(void) {
    if (expect_bad("metadata_number", "{\"__metadata__\":{\"format\":\"pt\",\"epoch\":3}}", 0,
                   ENG_E_FORMAT, "metadata \"epoch\" is 3, expected a string") != 0) {
        return 1;
    }
    if (expect_bad("metadata_nested", "{\"__metadata__\":{\"cfg\":{\"a\":\"b\"}}}", 0, ENG_E_FORMAT,
                   "metadata \"cfg\" is an object, expected a string") != 0) {
        return 1;
    }
    return expect_bad("metadata_not_object", "{\"__metadata__\":[\"a\"]}", 0, ENG_E_FORMAT,
                      "\"__metadata__\" is an array, expected an object of string values");
}

static int test_missing_file(void) {
    char path[600];
    eng_err err = {0};
    eng_safetensors *f = NULL;
    tmp_path(path, sizeof path, "does_not_exist.safetensors");
    CHECK_EQ_I64(eng_safetensors_open(&f, path, &err), ENG_E_IO);
    fprintf(stderr, "  %s\n", err.msg);
    CHECK(f == NULL);
    CHECK_CONTAINS(err.msg, "eng_safetensors_open: ");
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "cannot open: No such file or directory");
    CHECK_EQ_I64(eng_safetensors_open(&f, eng_test_tmpdir(), &err), ENG_E_IO);
    fprintf(stderr, "  %s\n", err.msg);
    CHECK_CONTAINS(err.msg, eng_test_tmpdir());
    CHECK_CONTAINS(err.msg, "not a regular file (a directory)");
    return 0;
}

/* Every truncation of a valid file fails with ENG_E_FORMAT; byte edits at every position either
 * fail with ENG_E_FORMAT or give a file whose tensors all lie inside it. Under ASan this is a
 * small deterministic fuzz run that needs no clang. */
static int test_mutations(void) {
    char path[600];
    size_t n = 0;
    eng_err err = {0};
    const uint16_t h[6] = {1, 2, 3, 4, 5, 6};
    const int32_t i32[3] = {7, 8, 9};
    const int64_t s23[2] = {2, 3}, s3[1] = {3};
    const eng_safetensors_entry e[3] = {{"h", NULL, ENG_SAFETENSORS_F16, 2, s23, h},
                                        {"i", NULL, ENG_SAFETENSORS_I32, 1, s3, i32},
                                        {"s", NULL, ENG_SAFETENSORS_F32, 0, NULL, i32}};
    const eng_safetensors_kv m[1] = {{"format", "pt"}};
    tmp_path(path, sizeof path, "mutations.safetensors");
    CHECK_OK(eng_safetensors_write(path, e, 3, m, 1, &err), &err);
    uint8_t *bytes = read_bytes(path, &n);
    CHECK(bytes != NULL);
    int bad = 0, accepted = 0;
    for (size_t len = 0; len < n && !bad; len++) {
        uint8_t *cut = malloc(len > 0 ? len : 1);
        eng_safetensors *f = NULL;
        if (cut == NULL) break;
        memcpy(cut, bytes, len);
        const int rc = eng_safetensors_open_memory(&f, cut, len, &err);
        if (rc != ENG_E_FORMAT || f != NULL) {
            fprintf(stderr, "truncation to %zu bytes gave %d\n", len, rc);
            bad = 1;
        }
        eng_safetensors_close(f);
        free(cut);
    }
    static const uint8_t subst[] = {0x00, 0xff, '"', '{', '}', '[', ',', '0', '9', '-', ' ', 'e'};
    uint8_t *mut = malloc(n);
    for (size_t pos = 0; mut != NULL && pos < n && !bad; pos++) {
        for (size_t k = 0; k < sizeof subst && !bad; k++) {
            eng_safetensors *f = NULL;
            memcpy(mut, bytes, n);
            mut[pos] = subst[k];
            const int rc = eng_safetensors_open_memory(&f, mut, n, &err);
            if (rc == ENG_OK) {
                accepted++;
                for (int64_t i = 0; i < eng_safetensors_count(f); i++) {
                    const eng_safetensors_info *t = eng_safetensors_info_at(f, i);
                    const uint8_t *p = t->data;
                    if (p < mut || p + t->nbytes > mut + n) bad = 1;
                }
            } else if (rc != ENG_E_FORMAT || f != NULL || strstr(err.msg, "<memory>") == NULL) {
                fprintf(stderr, "edit at %zu to 0x%02x gave %d: %s\n", pos, subst[k], rc, err.msg);
                bad = 1;
            }
            eng_safetensors_close(f);
        }
    }
    fprintf(stderr, "  %zu bytes; %d edits accepted (e.g. inside strings or data)\n", n, accepted);
    free(mut);
    free(bytes);
    CHECK(!bad);
    CHECK(accepted > 0); /* edits of data bytes keep the file valid */
    return 0;
}

static const eng_test_case cases[] = {
    {"roundtrip_dtypes", test_roundtrip_dtypes},
    {"roundtrip_memory", test_roundtrip_memory},
    {"metadata_roundtrip", test_metadata_roundtrip},
    {"lookup_by_name", test_lookup_by_name},
    {"tensor_view", test_tensor_view},
    {"view_unsupported", test_view_unsupported},
    {"view_misaligned", test_view_misaligned},
    {"header_layout", test_header_layout},
    {"valid_edges", test_valid_edges},
    {"write_errors", test_write_errors},
    {"write_io_error", test_write_io_error},
    {"write_replace", test_write_replace},
    {"empty_file", test_empty_file},
    {"short_file", test_short_file},
    {"header_len_past_eof", test_header_len_past_eof},
    {"header_len_over_cap", test_header_len_over_cap},
    {"header_not_json", test_header_not_json},
    {"header_bad_utf8", test_header_bad_utf8},
    {"header_not_object", test_header_not_object},
    {"entry_not_object", test_entry_not_object},
    {"unknown_dtype", test_unknown_dtype},
    {"missing_dtype", test_missing_dtype},
    {"missing_shape", test_missing_shape},
    {"missing_offsets", test_missing_offsets},
    {"shape_negative", test_shape_negative},
    {"shape_not_integer", test_shape_not_integer},
    {"shape_overflow", test_shape_overflow},
    {"size_mismatch", test_size_mismatch},
    {"offsets_past_end", test_offsets_past_end},
    {"offsets_reversed", test_offsets_reversed},
    {"offsets_malformed", test_offsets_malformed},
    {"overlap", test_overlap},
    {"hole", test_hole},
    {"duplicate_names", test_duplicate_names},
    {"metadata_not_string", test_metadata_not_string},
    {"missing_file", test_missing_file},
    {"mutations", test_mutations},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
