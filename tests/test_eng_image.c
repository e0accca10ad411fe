/* test_eng_image.c: eng.image.* — PNG pixel and text round trips, JPEG decoding, the real data
 * set images, and every error class (missing, truncated, garbage, oversized, bad arguments). */
#define _POSIX_C_SOURCE 200809L
#include "eng_image.h"

#include <dirent.h>
#include <sys/resource.h>

#include <stb_image_write.h>
#include <zlib.h>

#include "eng_test.h"

/* splitmix64: the test's own byte source, seeded from ENG_TEST_SEED. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng_next(&s) >> 56);
}

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", eng_test_tmpdir(), name);
}

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) return -1;
    size_t w = fwrite(data, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

/* Reads a whole small file (test fixtures); returns NULL on failure. */
static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;
    if (f == NULL) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = (uint8_t *)malloc((size_t)len + 1);
        if (buf != NULL && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
        *n = (size_t)len;
    }
    fclose(f);
    return buf;
}

/* ---- a tiny PNG chunk writer, for crafted files ---------------------------------------------- */

typedef struct bytes {
    uint8_t data[1 << 17];
    size_t n;
} bytes;

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void png_sig(bytes *b) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    memcpy(b->data, sig, 8);
    b->n = 8;
}

static void png_chunk(bytes *b, const char *type, const void *data, size_t len) {
    uint8_t *p = b->data + b->n;
    put_be32(p, (uint32_t)len);
    memcpy(p + 4, type, 4);
    if (len > 0) memcpy(p + 8, data, len);
    put_be32(p + 8 + len, (uint32_t)crc32(0, p + 4, (uInt)(len + 4)));
    b->n += 12 + len;
}

static void png_ihdr(bytes *b, uint32_t w, uint32_t h, uint8_t color_type) {
    uint8_t d[13] = {0};
    put_be32(d, w);
    put_be32(d + 4, h);
    d[8] = 8; /* bit depth */
    d[9] = color_type;
    png_chunk(b, "IHDR", d, sizeof d);
}

/* ---- pixels ---------------------------------------------------------------------------------- */

static int test_png_roundtrip(void) {
    static const int64_t sizes[][2] = {{1, 1}, {7, 5}, {33, 17}, {2, 64}};
    eng_err err = {0};
    char path[600];
    uint64_t seed = eng_test_seed();
    for (int64_t c = 1; c <= 4; c++) {
        for (int s = 0; s < ENG_TEST_N(sizes); s++) {
            eng_image img = {0}, back = {0}, mem = {0};
            uint8_t *png = NULL;
            size_t png_n = 0;
            int64_t iw = 0, ih = 0, ic = 0;
            CHECK_OK(eng_image_alloc(&img, sizes[s][0], sizes[s][1], c, &err), &err);
            CHECK_EQ_I64(eng_image_bytes(&img), sizes[s][0] * sizes[s][1] * c);
            fill_random(img.data, eng_image_bytes(&img), seed + (uint64_t)(c * 100 + s));
            snprintf(path, sizeof path, "%s/rt_c%d_%dx%d.png", eng_test_tmpdir(), (int)c,
                     (int)sizes[s][0], (int)sizes[s][1]);
            CHECK_OK(eng_image_write_png(path, &img, NULL, 0, &err), &err);
            CHECK_OK(eng_image_info(&iw, &ih, &ic, path, &err), &err);
            CHECK_EQ_I64(iw, img.width);
            CHECK_EQ_I64(ih, img.height);
            CHECK_EQ_I64(ic, c);
            CHECK_OK(eng_image_read(&back, path, 0, &err), &err);
            CHECK_EQ_I64(back.width, img.width);
            CHECK_EQ_I64(back.height, img.height);
            CHECK_EQ_I64(back.channels, c);
            CHECK(memcmp(back.data, img.data, eng_image_bytes(&img)) == 0);
            /* The in-memory encoder gives the same file, and decodes the same from memory. */
            CHECK_OK(eng_image_encode_png(&png, &png_n, &img, NULL, 0, &err), &err);
            {
                size_t file_n = 0;
                uint8_t *file = slurp(path, &file_n);
                CHECK(file != NULL);
                CHECK_EQ_I64(file_n, png_n);
                CHECK(memcmp(file, png, png_n) == 0);
                free(file);
            }
            CHECK_OK(eng_image_read_memory(&mem, png, png_n, 0, &err), &err);
            CHECK(memcmp(mem.data, img.data, eng_image_bytes(&img)) == 0);
            eng_image_buf_free(png);
            eng_image_free(&mem);
            eng_image_free(&back);
            eng_image_free(&img);
            CHECK(img.data == NULL && img.width == 0);
        }
    }
    return 0;
}

/* Forced channel counts follow stb_image's conversions: RGB -> RGBA adds alpha 255, gray -> RGB
 * replicates, RGBA -> RGB drops alpha. */
static int test_force_channels(void) {
    eng_err err = {0};
    eng_image g = {0}, rgba = {0}, rgb = {0}, back = {0};
    uint8_t *png = NULL;
    size_t n = 0;
    CHECK_OK(eng_image_alloc(&g, 5, 3, 1, &err), &err);
    for (int i = 0; i < 15; i++)
        g.data[i] = (uint8_t)(i * 17);
    CHECK_OK(eng_image_encode_png(&png, &n, &g, NULL, 0, &err), &err);
    CHECK_OK(eng_image_read_memory(&rgba, png, n, 4, &err), &err);
    CHECK_EQ_I64(rgba.channels, 4);
    for (int i = 0; i < 15; i++) {
        CHECK_EQ_I64(rgba.data[i * 4 + 0], i * 17);
        CHECK_EQ_I64(rgba.data[i * 4 + 2], i * 17);
        CHECK_EQ_I64(rgba.data[i * 4 + 3], 255);
    }
    eng_image_buf_free(png);
    png = NULL;
    rgba.data[3] = 7; /* some alpha to drop */
    CHECK_OK(eng_image_encode_png(&png, &n, &rgba, NULL, 0, &err), &err);
    CHECK_OK(eng_image_read_memory(&rgb, png, n, 3, &err), &err);
    CHECK_EQ_I64(rgb.channels, 3);
    CHECK_EQ_I64(rgb.data[3], 17);
    CHECK_OK(eng_image_read_memory(&back, png, n, 0, &err), &err);
    CHECK_EQ_I64(back.channels, 4);
    CHECK_EQ_I64(back.data[3], 7);
    eng_image_buf_free(png);
    eng_image_free(&g);
    eng_image_free(&rgba);
    eng_image_free(&rgb);
    eng_image_free(&back);
    return 0;
}

/* ---- text chunks ----------------------------------------------------------------------------- */

static const char *A1111 =
    "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
    "Seed: 42, Size: 512x512, Model: v1-5";

/* Counts chunks of a type in an encoded PNG (walks the chunk list). */
static int count_chunks(const uint8_t *png, size_t n, const char *type) {
    int count = 0;
    for (size_t p = 8; p + 12 <= n;) {
        uint32_t len = ((uint32_t)png[p] << 24) | ((uint32_t)png[p + 1] << 16) |
                       ((uint32_t)png[p + 2] << 8) | png[p + 3];
        if (memcmp(png + p + 4, type, 4) == 0) count++;
        p += 12 + (size_t)len;
    }
    return count;
}

static int test_text_roundtrip(void) {
    eng_err err = {0};
    eng_image img = {0};
    char path[600];
    const char *utf8 = "un chat \xC3\xA9l\xC3\xA9gant, \xE7\x8C\xAB"; /* "un chat élégant, 猫" */
    const char *latin = "caf\xC3\xA9 cr\xC3\xA8me";                   /* "café crème" */
    eng_image_text in[] = {{ENG_IMAGE_TEXT_PARAMETERS, A1111},
                           {"prompt", utf8},
                           {"Comment", latin},
                           {"Empty", ""},
                           {"Comment", "second"},
                           {"mojibake", "\xC3\x83\xC2\xA9"}}; /* "Ã©": Latin-1 C3 A9 reads as é */
    eng_image_text *out = NULL;
    int64_t n = 0;
    uint8_t *png = NULL;
    size_t png_n = 0;
    char *params = NULL, *missing = (char *)"sentinel";
    CHECK_OK(eng_image_alloc(&img, 9, 4, 3, &err), &err);
    fill_random(img.data, eng_image_bytes(&img), eng_test_seed());
    tmp_path(path, sizeof path, "text.png");
    CHECK_OK(eng_image_write_png(path, &img, in, ENG_TEST_N(in), &err), &err);

    CHECK_OK(eng_image_png_text_read(&out, &n, path, &err), &err);
    CHECK_EQ_I64(n, ENG_TEST_N(in));
    for (int i = 0; i < ENG_TEST_N(in); i++) { /* file order, duplicates kept */
        if (strcmp(out[i].key, in[i].key) != 0 || strcmp(out[i].value, in[i].value) != 0) {
            fprintf(stderr, "text %d: got \"%s\"=\"%s\", wrote \"%s\"=\"%s\"\n", i, out[i].key,
                    out[i].value, in[i].key, in[i].value);
            return 1;
        }
    }
    CHECK(strcmp(eng_image_text_find(out, n, "Comment"), latin) == 0); /* the first one */
    CHECK(eng_image_text_find(out, n, "nope") == NULL);
    eng_image_text_free(out);

    /* Latin-1 values are tEXt (what A1111/PIL write), the 猫 one iTXt; é is stored as 0xE9.
     * "Ã©" fits Latin-1 but its bytes would read back as "é": iTXt as well. */
    CHECK_OK(eng_image_encode_png(&png, &png_n, &img, in, ENG_TEST_N(in), &err), &err);
    CHECK_EQ_I64(count_chunks(png, png_n, "tEXt"), 4);
    CHECK_EQ_I64(count_chunks(png, png_n, "iTXt"), 2);
    {
        const uint8_t needle[] = {'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 'c', 'a', 'f', 0xE9};
        int found = 0;
        for (size_t i = 0; i + sizeof needle <= png_n && !found; i++) {
            found = memcmp(png + i, needle, sizeof needle) == 0;
        }
        CHECK(found);
    }
    CHECK_OK(eng_image_png_text_read_memory(&out, &n, png, png_n, &err), &err);
    CHECK_EQ_I64(n, ENG_TEST_N(in));
    CHECK(strcmp(eng_image_text_find(out, n, "prompt"), utf8) == 0);
    eng_image_text_free(out);
    eng_image_buf_free(png);

    CHECK_OK(eng_image_png_text_get(&params, path, ENG_IMAGE_TEXT_PARAMETERS, &err), &err);
    CHECK(params != NULL && strcmp(params, A1111) == 0);
    eng_image_buf_free(params);
    CHECK_OK(eng_image_png_text_get(&missing, path, "Software", &err), &err);
    CHECK(missing == NULL);

    /* A PNG without text gives no entries. */
    tmp_path(path, sizeof path, "notext.png");
    CHECK_OK(eng_image_write_png(path, &img, NULL, 0, &err), &err);
    out = in; /* must be reset */
    CHECK_OK(eng_image_png_text_read(&out, &n, path, &err), &err);
    CHECK(out == NULL && n == 0);
    eng_image_free(&img);
    return 0;
}

/* A crafted PNG: tEXt with a raw Latin-1 byte, zTXt, and iTXt placed after the pixel data, in
 * several IDAT chunks; plus a tEXt with a bad CRC, which is dropped. */
static int test_text_chunk_kinds(void) {
    static bytes b;
    eng_err err = {0};
    eng_image_text *out = NULL;
    int64_t n = 0;
    uint8_t raw[4 * (1 + 6)], z[256], chunk[300];
    uLongf zn = sizeof z;
    eng_image img = {0};
    png_sig(&b);
    png_ihdr(&b, 6, 4, 0); /* 6x4 gray */
    png_chunk(&b, "tEXt", "Title\0caf\xE9", 10);
    for (int y = 0; y < 4; y++) {
        raw[y * 7] = 0; /* filter none */
        for (int x = 0; x < 6; x++)
            raw[y * 7 + 1 + x] = (uint8_t)(y * 6 + x);
    }
    CHECK(compress(z, &zn, raw, sizeof raw) == Z_OK);
    png_chunk(&b, "IDAT", z, 5);
    png_chunk(&b, "IDAT", z + 5, zn - 5);
    {
        const char *txt = "zipped words, zipped words, zipped words";
        uLongf cn = sizeof chunk - 6;
        memcpy(chunk, "Zkey\0\0", 6); /* key, NUL, method 0 */
        CHECK(compress(chunk + 6, &cn, (const Bytef *)txt, strlen(txt)) == Z_OK);
        png_chunk(&b, "zTXt", chunk, 6 + cn);
    }
    /* iTXt: key NUL flag(0) method(0) lang NUL translated-key NUL text */
    png_chunk(&b, "iTXt", "Ikey\0\0\0en\0\0\xE7\x8C\xAB", 14);
    png_chunk(&b, "tEXt", "Bad\0crc", 7);
    b.data[b.n - 1] ^= 0xFF;
    png_chunk(&b, "IEND", NULL, 0);

    CHECK_OK(eng_image_read_memory(&img, b.data, b.n, 0, &err), &err);
    CHECK_EQ_I64(img.channels, 1);
    CHECK_EQ_I64(img.data[23], 23);
    eng_image_free(&img);

    CHECK_OK(eng_image_png_text_read_memory(&out, &n, b.data, b.n, &err), &err);
    CHECK_EQ_I64(n, 3);
    CHECK(strcmp(out[0].key, "Title") == 0 && strcmp(out[0].value, "caf\xC3\xA9") == 0);
    CHECK(strcmp(out[1].key, "Zkey") == 0);
    CHECK(strcmp(out[1].value, "zipped words, zipped words, zipped words") == 0);
    CHECK(strcmp(out[2].key, "Ikey") == 0 && strcmp(out[2].value, "\xE7\x8C\xAB") == 0);
    eng_image_text_free(out);
    return 0;
}

/* A zTXt chunk that inflates past the per-chunk limit is not materialised: the read either drops
 * it (libpng treats it as a benign error) or fails with FORMAT, and memory stays bounded. */
static int test_text_bomb(void) {
    static bytes b;
    eng_err err = {0};
    eng_image_text *out = NULL;
    int64_t n = 0;
    const size_t big = ENG_IMAGE_MAX_TEXT_BYTES + 4096;
    uint8_t *zeros = (uint8_t *)calloc(big, 1);
    uint8_t *chunk = (uint8_t *)malloc(60000);
    uLongf cn = 60000 - 6;
    uint8_t raw[2] = {0, 0};
    uint8_t z[64];
    uLongf zn = sizeof z;
    int rc;
    CHECK(zeros != NULL && chunk != NULL);
    memset(zeros, 'a', big);
    memcpy(chunk, "Bomb\0\0", 6);
    CHECK(compress2(chunk + 6, &cn, zeros, big, 9) == Z_OK);
    CHECK(cn < 60000 - 6 && 6 + cn + 200 < sizeof b.data);
    png_sig(&b);
    png_ihdr(&b, 1, 1, 0);
    png_chunk(&b, "tEXt", "Small\0ok", 8);
    png_chunk(&b, "zTXt", chunk, 6 + cn);
    CHECK(compress(z, &zn, raw, sizeof raw) == Z_OK);
    png_chunk(&b, "IDAT", z, zn);
    png_chunk(&b, "IEND", NULL, 0);
    rc = eng_image_png_text_read_memory(&out, &n, b.data, b.n, &err);
    fprintf(stderr, "zTXt of %zu bytes: rc %d, %jd texts %s\n", big, rc, (intmax_t)n, err.msg);
    if (rc == ENG_OK) {
        CHECK_EQ_I64(n, 1);
        CHECK(strcmp(out[0].key, "Small") == 0);
    } else {
        CHECK_EQ_I64(rc, ENG_E_FORMAT);
        CHECK_CONTAINS(err.msg, "(memory)");
    }
    eng_image_text_free(out);
    out = NULL;
    n = 0;

    /* Chunks each under the per-chunk limit, together over libpng's memory budget: the reader
     * stops at ENG_IMAGE_MAX_TEXT_TOTAL (dropping chunks or failing), never grows past it. */
    cn = 60000 - 6;
    memcpy(chunk, "Many\0\0", 6);
    CHECK(compress2(chunk + 6, &cn, zeros, ENG_IMAGE_MAX_TEXT_BYTES - 4096, 9) == Z_OK);
    png_sig(&b);
    png_ihdr(&b, 1, 1, 0);
    for (int i = 0; i < 6; i++)
        png_chunk(&b, "zTXt", chunk, 6 + cn);
    png_chunk(&b, "IDAT", z, zn);
    png_chunk(&b, "IEND", NULL, 0);
    rc = eng_image_png_text_read_memory(&out, &n, b.data, b.n, &err);
    fprintf(stderr, "6 zTXt of %zu bytes: rc %d, %jd texts %s\n",
            (size_t)ENG_IMAGE_MAX_TEXT_BYTES - 4096, rc, (intmax_t)n, err.msg);
    if (rc == ENG_OK) {
        CHECK(n < 6 && (size_t)n * ENG_IMAGE_MAX_TEXT_BYTES <= ENG_IMAGE_MAX_TEXT_TOTAL);
    } else {
        CHECK_EQ_I64(rc, ENG_E_FORMAT);
        CHECK_CONTAINS(err.msg, "67108864");
    }
    eng_image_text_free(out);
    free(zeros);
    free(chunk);
    return 0;
}

/* ---- JPEG ------------------------------------------------------------------------------------ */

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void mem_write(void *ctx, void *data, int size) {
    membuf *m = (membuf *)ctx;
    if (m->n + (size_t)size > m->cap) {
        m->cap = (m->n + (size_t)size) * 2;
        m->p = (uint8_t *)realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, data, (size_t)size);
    m->n += (size_t)size;
}

static int test_jpeg_read(void) {
    enum { W = 64, H = 48 };
    static uint8_t rgb[W * H * 3];
    membuf m = {0};
    eng_err err = {0};
    eng_image img = {0}, gray = {0}, rgba = {0};
    char path[600];
    double mae = 0;
    for (int y = 0; y < H; y++) { /* smooth gradients: JPEG keeps them closely */
        for (int x = 0; x < W; x++) {
            rgb[(y * W + x) * 3 + 0] = (uint8_t)(x * 4);
            rgb[(y * W + x) * 3 + 1] = (uint8_t)(y * 5);
            rgb[(y * W + x) * 3 + 2] = (uint8_t)(128 + (x - y));
        }
    }
    CHECK(stbi_write_jpg_to_func(mem_write, &m, W, H, 3, rgb, 95) != 0);
    CHECK(m.p != NULL && m.n > 100);
    tmp_path(path, sizeof path, "grad.jpg");
    CHECK(write_bytes(path, m.p, m.n) == 0);
    CHECK_OK(eng_image_read(&img, path, 0, &err), &err);
    CHECK_EQ_I64(img.width, W);
    CHECK_EQ_I64(img.height, H);
    CHECK_EQ_I64(img.channels, 3);
    for (int i = 0; i < W * H * 3; i++)
        mae += fabs((double)img.data[i] - (double)rgb[i]);
    mae /= W * H * 3;
    fprintf(stderr, "jpeg q95 mean abs error %.3f\n", mae);
    CHECK(mae < 2.0);
    CHECK_OK(eng_image_read_memory(&rgba, m.p, m.n, 4, &err), &err);
    CHECK_EQ_I64(rgba.channels, 4);
    CHECK_EQ_I64(rgba.data[4 * 100 + 3], 255);
    CHECK_EQ_I64(rgba.data[4 * 100 + 0], img.data[3 * 100 + 0]);
    CHECK_OK(eng_image_read(&gray, path, 1, &err), &err);
    CHECK_EQ_I64(gray.channels, 1);
    eng_image_free(&img);
    eng_image_free(&gray);
    eng_image_free(&rgba);
    free(m.p);
    return 0;
}

/* ---- the data set's real files --------------------------------------------------------------- */

static int test_real_png(void) {
    char path[1024];
    eng_err err = {0};
    eng_image img = {0};
    int64_t zero = 0, opaque = 0;
    snprintf(path, sizeof path, "%s/nerf/lego_400/train/r_0.png", eng_test_data_dir());
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "no %s\n", path);
        return ENG_TEST_SKIP;
    }
    CHECK_OK(eng_image_read(&img, path, 0, &err), &err);
    CHECK_EQ_I64(img.width, 400);
    CHECK_EQ_I64(img.height, 400);
    CHECK_EQ_I64(img.channels, 4);
    for (int64_t i = 0; i < 400 * 400; i++) {
        zero += img.data[i * 4 + 3] == 0;
        opaque += img.data[i * 4 + 3] == 255;
    }
    fprintf(stderr, "r_0.png: %jd transparent, %jd opaque pixels\n", (intmax_t)zero,
            (intmax_t)opaque);
    CHECK(zero > 1000 && opaque > 1000);
    eng_image_free(&img);
    return 0;
}

static int test_real_jpeg(void) {
    char path[1024];
    eng_err err = {0};
    eng_image img = {0};
    int64_t w = 0, h = 0, c = 0;
    double mean = 0;
    snprintf(path, sizeof path, "%s/nerf/fox/images/0001.jpg", eng_test_data_dir());
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "no %s\n", path);
        return ENG_TEST_SKIP;
    }
    CHECK_OK(eng_image_info(&w, &h, &c, path, &err), &err);
    CHECK_EQ_I64(w, 1080);
    CHECK_EQ_I64(h, 1920);
    CHECK_EQ_I64(c, 3);
    CHECK_OK(eng_image_read(&img, path, 0, &err), &err);
    CHECK_EQ_I64(img.width, 1080);
    CHECK_EQ_I64(img.height, 1920);
    CHECK_EQ_I64(img.channels, 3);
    for (size_t i = 0; i < eng_image_bytes(&img); i++)
        mean += img.data[i];
    mean /= (double)eng_image_bytes(&img);
    fprintf(stderr, "0001.jpg mean %.2f\n", mean);
    CHECK(mean > 10 && mean < 245); /* a photo, not a blank frame */
    eng_image_free(&img);
    return 0;
}

/* ---- errors ---------------------------------------------------------------------------------- */

static int test_missing_file(void) {
    eng_err err = {0};
    eng_image img = {0};
    eng_image_text *t = NULL;
    int64_t n = 0;
    char path[600];
    tmp_path(path, sizeof path, "does_not_exist.png");
    CHECK_EQ_I64(eng_image_read(&img, path, 0, &err), ENG_E_IO);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "No such file");
    CHECK(img.data == NULL);
    CHECK_EQ_I64(eng_image_info(NULL, NULL, NULL, path, &err), ENG_E_IO);
    CHECK_CONTAINS(err.msg, path);
    CHECK_EQ_I64(eng_image_png_text_read(&t, &n, path, &err), ENG_E_IO);
    CHECK_CONTAINS(err.msg, path);
    /* A directory is not an image either. */
    CHECK_EQ_I64(eng_image_read(&img, eng_test_tmpdir(), 0, &err), ENG_E_IO);
    CHECK_CONTAINS(err.msg, "not a regular file");
    return 0;
}

static int test_truncated_png(void) {
    eng_err err = {0};
    eng_image img = {0};
    eng_image_text *t = NULL;
    int64_t n = 0;
    uint8_t *png = NULL;
    size_t png_n = 0;
    char path[600];
    eng_image_text txt[] = {{"k", "v"}};
    CHECK_OK(eng_image_alloc(&img, 33, 17, 3, &err), &err);
    fill_random(img.data, eng_image_bytes(&img), eng_test_seed());
    CHECK_OK(eng_image_encode_png(&png, &png_n, &img, txt, 1, &err), &err);
    eng_image_free(&img);
    tmp_path(path, sizeof path, "truncated.png");
    CHECK(write_bytes(path, png, png_n / 2) == 0);
    CHECK_EQ_I64(eng_image_read(&img, path, 0, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "truncated or corrupt file");
    CHECK(img.data == NULL);
    CHECK_EQ_I64(eng_image_png_text_read(&t, &n, path, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, path);
    CHECK(t == NULL && n == 0);
    /* Cut inside the header: the text reader must not read past the end either. */
    for (size_t cut = 0; cut < 60; cut += 7) {
        CHECK_EQ_I64(eng_image_read_memory(&img, png, cut, 0, &err), ENG_E_FORMAT);
        CHECK_CONTAINS(err.msg, "(memory)");
        CHECK_EQ_I64(eng_image_png_text_read_memory(&t, &n, png, cut, &err), ENG_E_FORMAT);
        CHECK_CONTAINS(err.msg, "(memory)");
    }
    eng_image_buf_free(png);
    return 0;
}

/* Formats other than PNG and JPEG are refused before stb_image sees them. The first input
 * crashed Debian's stb_image (libstb.so.0) in the CI fuzz run; the second is a valid 1x1 BMP. */
static int test_other_formats(void) {
    static const uint8_t crash[] = {0xe0, 'P',  '6', '4', '\n', '\n', '6', '6', '4',
                                    '\n', '\n', '6', '4', '4',  'P',  'P', '6', '4',
                                    '4',  '4',  'P', 'P', '6',  '4',  '4'};
    static const uint8_t bmp[58] = {'B', 'M', 58, 0, 0, 0, 0, 0, 0, 0, 54,  0, 0, 0,
                                    40,  0,   0,  0, 1, 0, 0, 0, 1, 0, 0,   0, 1, 0,
                                    24,  0,   0,  0, 0, 0, 4, 0, 0, 0, 0,   0, 0, 0,
                                    0,   0,   0,  0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0};
    eng_err err = {0};
    eng_image img = {0};
    CHECK_EQ_I64(eng_image_read_memory(&img, crash, sizeof crash, 0, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "not a PNG or JPEG file (starts with e0 50 36 34)");
    CHECK_EQ_I64(eng_image_read_memory(&img, bmp, sizeof bmp, 0, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "not a PNG or JPEG file (starts with 42 4d 3a 00)");
    CHECK(img.data == NULL);
    return 0;
}

/* A PNG whose chunk claims more bytes than the file has is refused before stb_image sees it:
 * this input (found by the CI fuzz run) made stb_image ask for 2 GiB. */
static int test_chunk_past_end(void) {
    static const uint8_t png[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3a,
        0x7e, 0x9b, 0x55, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x08, 0x99, 0x63, 0xf0,
        0x07, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01, 0x00, 0x6f, 0x75, 0x74, 0x73, 0x0a, 0x49,
        0x44, 0x41, 0x54, 0x08, 0x99, 0x63, 0xf0, 0x07, 0x00, 0x00, 0x41, 0x54};
    eng_err err = {0};
    eng_image img = {0};
    CHECK_EQ_I64(eng_image_read_memory(&img, png, sizeof png, 0, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "bytes but");
    CHECK_CONTAINS(err.msg, "remain (truncated or corrupt file)");
    CHECK(img.data == NULL);
    return 0;
}

static int test_garbage(void) {
    eng_err err = {0};
    eng_image img = {0};
    eng_image_text *t = NULL;
    int64_t n = 0;
    uint8_t junk[4096];
    char path[600];
    fill_random(junk, sizeof junk, eng_test_seed());
    junk[0] = 'x'; /* no accidental magic number (TGA has none: make its header invalid) */
    junk[1] = 0xFF;
    junk[2] = 0xFF;
    tmp_path(path, sizeof path, "garbage.png");
    CHECK(write_bytes(path, junk, sizeof junk) == 0);
    CHECK_EQ_I64(eng_image_read(&img, path, 0, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "not a PNG or JPEG file (starts with 78 ff ff");
    CHECK_EQ_I64(eng_image_read_memory(&img, junk, sizeof junk, 3, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "(memory)");
    CHECK_EQ_I64(eng_image_png_text_read(&t, &n, path, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "not a PNG");
    CHECK_EQ_I64(eng_image_read_memory(&img, junk, 0, 0, &err), ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "empty");
    /* A valid signature, then a corrupt critical chunk (IHDR with a bad CRC). */
    {
        static bytes b;
        png_sig(&b);
        png_ihdr(&b, 4, 4, 2);
        b.data[b.n - 2] ^= 0x55;
        png_chunk(&b, "IEND", NULL, 0);
        CHECK_EQ_I64(eng_image_png_text_read_memory(&t, &n, b.data, b.n, &err), ENG_E_FORMAT);
        CHECK_CONTAINS(err.msg, "libpng");
        CHECK_EQ_I64(eng_image_read_memory(&img, b.data, b.n, 0, &err), ENG_E_FORMAT);
    }
    return 0;
}

static int64_t max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)ru.ru_maxrss;
}

/* Hostile headers are refused before decoding: the message gives the size, and memory does not
 * grow (decoding 100000x100000 RGBA would need 40 GB). */
static int test_too_large(void) {
    static const uint32_t dims[][3] = {
        {100000, 100000, 6}, {20000, 20000, 0}, {16385, 1, 2}, {1, 0x7FFFFFFF, 0}};
    eng_err err = {0};
    eng_image img = {0};
    char path[600], want[64];
    const int64_t rss0 = max_rss_kb();
    for (int i = 0; i < ENG_TEST_N(dims); i++) {
        static bytes b;
        uint8_t z[64], raw[16] = {0};
        uLongf zn = sizeof z;
        png_sig(&b);
        png_ihdr(&b, dims[i][0], dims[i][1], (uint8_t)dims[i][2]);
        CHECK(compress(z, &zn, raw, sizeof raw) == Z_OK);
        png_chunk(&b, "IDAT", z, zn);
        png_chunk(&b, "IEND", NULL, 0);
        snprintf(want, sizeof want, "%ux%u", dims[i][0], dims[i][1]);
        CHECK_EQ_I64(eng_image_read_memory(&img, b.data, b.n, 0, &err), ENG_E_FORMAT);
        CHECK_CONTAINS(err.msg, want);
        CHECK_CONTAINS(err.msg, "16384");
        CHECK(img.data == NULL);
        tmp_path(path, sizeof path, "huge.png");
        CHECK(write_bytes(path, b.data, b.n) == 0);
        CHECK_EQ_I64(eng_image_read(&img, path, 4, &err), ENG_E_FORMAT);
        CHECK_CONTAINS(err.msg, path);
        CHECK_CONTAINS(err.msg, want);
        CHECK_EQ_I64(eng_image_info(NULL, NULL, NULL, path, &err), ENG_E_FORMAT);
        CHECK_CONTAINS(err.msg, want);
    }
    fprintf(stderr, "max RSS grew by %jd KiB\n", (intmax_t)(max_rss_kb() - rss0));
    CHECK(max_rss_kb() - rss0 < 64 * 1024);
    /* Allocation and writing have the same limits. */
    CHECK_EQ_I64(eng_image_alloc(&img, 16385, 2, 3, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "16385x2");
    CHECK_EQ_I64(eng_image_alloc(&img, 4, 4, 0, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "0 channels");
    return 0;
}

static int test_bad_channels(void) {
    eng_err err = {0};
    eng_image img = {0}, src = {0};
    uint8_t *png = NULL;
    size_t n = 0;
    char path[600];
    CHECK_OK(eng_image_alloc(&src, 2, 2, 3, &err), &err);
    CHECK_OK(eng_image_encode_png(&png, &n, &src, NULL, 0, &err), &err);
    CHECK_EQ_I64(eng_image_read_memory(&img, png, n, 5, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "channels");
    CHECK_CONTAINS(err.msg, "got 5");
    CHECK_EQ_I64(eng_image_read_memory(&img, png, n, -1, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "got -1");
    tmp_path(path, sizeof path, "whatever.png");
    CHECK_EQ_I64(eng_image_read(&img, path, 7, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "got 7");
    CHECK(img.data == NULL);
    eng_image_buf_free(png);
    eng_image_free(&src);
    return 0;
}

/* Counts entries of `dir` whose name contains `part`. */
static int count_named(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (d == NULL) return -1;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static int test_write_errors(void) {
    eng_err err = {0};
    eng_image img = {0};
    char path[600], key80[81], bad_path[700];
    CHECK_OK(eng_image_alloc(&img, 3, 2, 4, &err), &err);
    /* A directory that does not exist: IO, naming the path, nothing left behind. */
    snprintf(bad_path, sizeof bad_path, "%s/no_such_dir/out.png", eng_test_tmpdir());
    CHECK_EQ_I64(eng_image_write_png(bad_path, &img, NULL, 0, &err), ENG_E_IO);
    CHECK_CONTAINS(err.msg, bad_path);
    CHECK_CONTAINS(err.msg, "No such file or directory");
    /* Keys PNG cannot hold, values that are not UTF-8: INVALID_ARG naming the key. */
    memset(key80, 'k', 80);
    key80[80] = '\0';
    {
        const struct {
            eng_image_text t;
            const char *needle;
        } bad[] = {{{"", "v"}, "key \"\""},
                   {{key80, "v"}, "kkkkkkkk"},
                   {{" lead", "v"}, "key \" lead\""},
                   {{"two  spaces", "v"}, "two  spaces"},
                   {{"tab\there", "v"}, "tab"},
                   {{"\xE7\x8C\xAB", "v"}, "\xE7\x8C\xAB"}, /* not Latin-1 */
                   {{"bad_utf8", "ok \xC3\x28"}, "\"bad_utf8\" is not valid UTF-8 (at byte 3)"},
                   {{"overlong", "\xC0\xAF"}, "overlong"},
                   {{"surrogate", "\xED\xA0\x80"}, "surrogate"}};
        for (int i = 0; i < ENG_TEST_N(bad); i++) {
            tmp_path(path, sizeof path, "badtext.png");
            CHECK_EQ_I64(eng_image_write_png(path, &img, &bad[i].t, 1, &err), ENG_E_INVALID_ARG);
            CHECK_CONTAINS(err.msg, bad[i].needle);
            CHECK(access(path, F_OK) != 0);
        }
    }
    /* A value over the per-chunk limit could not be read back: refused, naming the key. */
    {
        char *huge = (char *)malloc(ENG_IMAGE_MAX_TEXT_BYTES + 2);
        eng_image_text t = {"workflow", huge};
        CHECK(huge != NULL);
        memset(huge, 'x', ENG_IMAGE_MAX_TEXT_BYTES + 1);
        huge[ENG_IMAGE_MAX_TEXT_BYTES + 1] = '\0';
        CHECK_EQ_I64(eng_image_write_png(path, &img, &t, 1, &err), ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "\"workflow\" is 16777217 bytes, over the limit of 16777216");
        free(huge);
    }
    /* Key of exactly 79 Latin-1 characters is fine; é in a key is Latin-1. */
    key80[79] = '\0';
    {
        eng_image_text ok[] = {{key80, "v"}, {"caf\xC3\xA9", "w"}};
        eng_image_text *out = NULL;
        int64_t n = 0;
        tmp_path(path, sizeof path, "longkey.png");
        CHECK_OK(eng_image_write_png(path, &img, ok, 2, &err), &err);
        CHECK_OK(eng_image_png_text_read(&out, &n, path, &err), &err);
        CHECK_EQ_I64(n, 2);
        CHECK(strcmp(out[0].key, key80) == 0);
        CHECK(strcmp(out[1].key, "caf\xC3\xA9") == 0);
        eng_image_text_free(out);
    }
    /* Bad image structs. */
    {
        eng_image bad = img;
        bad.channels = 5;
        CHECK_EQ_I64(eng_image_write_png(path, &bad, NULL, 0, &err), ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "5 channels");
        bad = img;
        bad.data = NULL;
        CHECK_EQ_I64(eng_image_write_png(path, &bad, NULL, 0, &err), ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, path);
        CHECK_EQ_I64(eng_image_write_png(path, &img, NULL, 2, &err), ENG_E_INVALID_ARG);
        CHECK_CONTAINS(err.msg, "2 text chunks");
    }
    /* Overwriting is atomic and leaves no temporary files. */
    tmp_path(path, sizeof path, "over.png");
    CHECK_OK(eng_image_write_png(path, &img, NULL, 0, &err), &err);
    img.data[0] = 99;
    CHECK_OK(eng_image_write_png(path, &img, NULL, 0, &err), &err);
    {
        eng_image back = {0};
        CHECK_OK(eng_image_read(&back, path, 0, &err), &err);
        CHECK_EQ_I64(back.data[0], 99);
        eng_image_free(&back);
    }
    CHECK_EQ_I64(count_named(eng_test_tmpdir(), ".tmp."), 0);
    eng_image_free(&img);
    return 0;
}

static const eng_test_case cases[] = {
    {"png_roundtrip", test_png_roundtrip},
    {"force_channels", test_force_channels},
    {"text_roundtrip", test_text_roundtrip},
    {"text_chunk_kinds", test_text_chunk_kinds},
    {"text_bomb", test_text_bomb},
    {"jpeg_read", test_jpeg_read},
    {"real_png", test_real_png},
    {"real_jpeg", test_real_jpeg},
    {"missing_file", test_missing_file},
    {"truncated_png", test_truncated_png},
    {"garbage", test_garbage},
    {"other_formats", test_other_formats},
    {"chunk_past_end", test_chunk_past_end},
    {"too_large", test_too_large},
    {"bad_channels", test_bad_channels},
    {"write_errors", test_write_errors},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
