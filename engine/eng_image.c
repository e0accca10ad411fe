/* eng_image.c: image decoding through stb_image, PNG encoding and text-chunk reading through
 * libpng, the atomic file write, UTF-8 <-> Latin-1 for text chunks.
 *
 * libpng reports errors by longjmp. Each libpng session runs in one small function
 * (png_*_session) that calls setjmp, owns nothing and keeps no local that is read after the
 * jump; everything it allocates hangs off a context struct that the caller (which has no setjmp)
 * frees after the session returns. So no longjmp can skip a free, and no local needs
 * `volatile`. */
#define _POSIX_C_SOURCE 200809L
#include "eng_image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
#include <stb_image.h>

#define PNG_ERRMSG_MAX  200
#define TEXT_KEY_MAX    79   /* PNG keyword length limit */
#define MAX_TEXT_CHUNKS 1000 /* libpng keeps at most ~this many ancillary chunks on read */

/* ---- small helpers --------------------------------------------------------------------------- */

static const char *errno_text(int e, char *buf, size_t n) {
    if (strerror_r(e, buf, n) != 0) snprintf(buf, n, "errno %d", e);
    return buf;
}

static int mul_size(size_t *out, size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

static char *copy_str(const char *s, size_t n) {
    char *d = (char *)malloc(n + 1);
    if (d == NULL) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Reads a whole regular file of at most ENG_IMAGE_MAX_FILE_BYTES into a malloc'd buffer. */
static int
read_file(uint8_t **out, size_t *out_size, const char *fn, const char *path, eng_err *err) {
    int rc = ENG_OK;
    FILE *f = NULL;
    uint8_t *buf = NULL;
    struct stat st;
    char eb[128];
    size_t size = 0;
    *out = NULL;
    *out_size = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot open (%s)", fn, path,
                         errno_text(errno, eb, sizeof eb));
        goto done;
    }
    if (fstat(fileno(f), &st) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot stat (%s)", fn, path,
                         errno_text(errno, eb, sizeof eb));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: not a regular file", fn, path);
        goto done;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)ENG_IMAGE_MAX_FILE_BYTES) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: file is %jd bytes, over the limit of %zu", fn,
                         path, (intmax_t)st.st_size, ENG_IMAGE_MAX_FILE_BYTES);
        goto done;
    }
    size = (size_t)st.st_size;
    buf = (uint8_t *)malloc(size > 0 ? size : 1);
    if (buf == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory reading %zu bytes", fn, path, size);
        goto done;
    }
    if (size > 0) {
        size_t got = fread(buf, 1, size, f);
        if (got != size) {
            rc = eng_err_set(err, ENG_E_IO, "%s: %s: short read (%zu of %zu bytes)", fn, path, got,
                             size);
            goto done;
        }
    }
    *out = buf;
    *out_size = size;
    buf = NULL;
done:
    free(buf);
    if (f != NULL) fclose(f);
    return rc;
}

/* ---- UTF-8 and Latin-1 ----------------------------------------------------------------------- */

/* Decodes the code point at s[*i] (strict: no overlongs, surrogates or values past U+10FFFF),
 * advances *i and returns it, or returns -1 on an invalid sequence. */
static int32_t utf8_next(const uint8_t *s, size_t n, size_t *i) {
    const uint8_t c = s[*i];
    int len;
    uint32_t cp;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else {
        return -1;
    }
    if ((size_t)len > n - *i) return -1;
    for (int k = 1; k < len; k++) {
        const uint8_t b = s[*i + (size_t)k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xC0u) != 0x80u) return -1;
        cp = (cp << 6) | (b & 0x3Fu);
    }
    *i += (size_t)len;
    return (int32_t)cp;
}

/* 1 when s[0..n) is valid UTF-8 and holds a byte >= 0x80, 0 otherwise. */
static int utf8_valid_non_ascii(const uint8_t *s, size_t n) {
    int non_ascii = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] >= 0x80) non_ascii = 1;
        if (utf8_next(s, n, &i) < 0) return 0;
    }
    return non_ascii;
}

/* Latin-1 bytes to UTF-8; dst may be NULL to count. Returns the UTF-8 length (no NUL). */
static size_t latin1_to_utf8(char *dst, const uint8_t *src, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] < 0x80) {
            if (dst != NULL) dst[o] = (char)src[i];
            o += 1;
        } else {
            if (dst != NULL) {
                dst[o] = (char)(0xC0 | (src[i] >> 6));
                dst[o + 1] = (char)(0x80 | (src[i] & 0x3F));
            }
            o += 2;
        }
    }
    return o;
}

/* UTF-8 to Latin-1 in place of a copy: dst (>= n + 1 bytes) receives the Latin-1 string.
 * Returns 1 when every character fits Latin-1, 0 when one does not, -1 on invalid UTF-8 (with
 * *bad_at the byte offset). */
static int utf8_to_latin1(char *dst, const char *src, size_t n, size_t *bad_at) {
    const uint8_t *s = (const uint8_t *)src;
    size_t o = 0, i = 0;
    int fits = 1;
    while (i < n) {
        const size_t at = i;
        const int32_t cp = utf8_next(s, n, &i);
        if (cp < 0) {
            *bad_at = at;
            return -1;
        }
        if (cp > 0xFF) fits = 0;
        if (fits) dst[o++] = (char)(uint8_t)cp;
    }
    dst[fits ? o : 0] = '\0';
    return fits;
}

/* PNG keywords: 1..79 printable Latin-1 characters, no leading, trailing or double spaces. */
static int latin1_key_ok(const char *key, size_t n) {
    if (n < 1 || n > TEXT_KEY_MAX) return 0;
    if (key[0] == ' ' || key[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t c = (uint8_t)key[i];
        if (!((c >= 32 && c <= 126) || c >= 161)) return 0;
        if (c == ' ' && key[i + 1] == ' ') return 0;
    }
    return 1;
}

/* ---- image struct ---------------------------------------------------------------------------- */

static int check_dims(int64_t w,
                      int64_t h,
                      int64_t c,
                      size_t *bytes,
                      int code,
                      const char *fn,
                      const char *name,
                      eng_err *err) {
    size_t px = 0, total = 0;
    if (w < 1 || h < 1 || w > ENG_IMAGE_MAX_DIM || h > ENG_IMAGE_MAX_DIM) {
        return eng_err_set(err, code, "%s: %s: image is %jdx%jd, outside the limits 1x1..%dx%d", fn,
                           name, (intmax_t)w, (intmax_t)h, ENG_IMAGE_MAX_DIM, ENG_IMAGE_MAX_DIM);
    }
    if (c < 1 || c > 4) {
        return eng_err_set(err, code, "%s: %s: %jd channels, expected 1..4", fn, name, (intmax_t)c);
    }
    if (!mul_size(&px, (size_t)w, (size_t)h) || !mul_size(&total, px, (size_t)c)) {
        return eng_err_set(err, code, "%s: %s: %jdx%jdx%jd bytes overflow size_t", fn, name,
                           (intmax_t)w, (intmax_t)h, (intmax_t)c);
    }
    if (bytes != NULL) *bytes = total;
    return ENG_OK;
}

int eng_image_alloc(eng_image *out, int64_t width, int64_t height, int64_t channels, eng_err *err) {
    int rc = ENG_OK;
    size_t bytes = 0;
    ENG_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    rc = check_dims(width, height, channels, &bytes, ENG_E_INVALID_ARG, "eng_image_alloc",
                    "new image", err);
    if (rc != ENG_OK) goto done;
    out->data = (uint8_t *)calloc(bytes, 1);
    if (out->data == NULL) {
        rc = eng_err_set(err, ENG_E_OOM,
                         "eng_image_alloc: out of memory for %jdx%jdx%jd (%zu bytes)",
                         (intmax_t)width, (intmax_t)height, (intmax_t)channels, bytes);
        goto done;
    }
    out->width = width;
    out->height = height;
    out->channels = channels;
done:
    return rc;
}

void eng_image_free(eng_image *img) {
    if (img == NULL) return;
    /* Pixels come from calloc (eng_image_alloc) or from stb_image, whose STBI_FREE is free() in
     * Debian's libstb (built with the default allocator), so one free() fits both. */
    free(img->data);
    memset(img, 0, sizeof *img);
}

size_t eng_image_bytes(const eng_image *img) {
    ENG_ASSERT(img != NULL);
    if (img->width < 1 || img->height < 1 || img->channels < 1) return 0;
    return (size_t)img->width * (size_t)img->height * (size_t)img->channels;
}

void eng_image_buf_free(void *buf) {
    free(buf);
}

/* ---- decoding (stb_image) -------------------------------------------------------------------- */

/* PNG header: width and height from IHDR, so that an oversized PNG is reported with its size even
 * when stb_image refuses it first (its own "too large" carries no numbers). */
static int png_header_dims(const uint8_t *d, size_t n, uint32_t *w, uint32_t *h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (n < 24 || memcmp(d, sig, 8) != 0 || memcmp(d + 12, "IHDR", 4) != 0) return 0;
    *w = ((uint32_t)d[16] << 24) | ((uint32_t)d[17] << 16) | ((uint32_t)d[18] << 8) | d[19];
    *h = ((uint32_t)d[20] << 24) | ((uint32_t)d[21] << 16) | ((uint32_t)d[22] << 8) | d[23];
    return 1;
}

/* stb_image's PNG reader grows its IDAT buffer to a chunk's declared length before reading the
 * chunk, so a 70-byte file could make it allocate 2 GiB: every chunk must fit in the bytes that
 * are there. Returns 1 when they do, else 0 with the offending chunk's type, length and the bytes
 * left. A buffer that ends inside a chunk header is left to the decoder (it fails cleanly). */
static int png_chunks_fit(const uint8_t *d, size_t n, char type[5], uint32_t *len, size_t *left) {
    size_t off = 8;
    while (off + 8 <= n) {
        const uint32_t l = ((uint32_t)d[off] << 24) | ((uint32_t)d[off + 1] << 16) |
                           ((uint32_t)d[off + 2] << 8) | d[off + 3];
        const size_t rest = n - off - 8;
        if ((uint64_t)l + 4 > rest) {
            for (int i = 0; i < 4; i++) {
                const uint8_t c = d[off + 4 + i];
                type[i] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ? (char)c : '?';
            }
            type[4] = '\0';
            *len = l;
            *left = rest;
            return 0;
        }
        if (memcmp(d + off + 4, "IEND", 4) == 0) break;
        off += 12 + (size_t)l;
    }
    return 1;
}

static const char *stb_reason(void) {
    const char *r = stbi_failure_reason();
    return r != NULL ? r : "unknown error";
}

/* Only PNG and JPEG reach stb_image: its other decoders (TGA, PSD, PIC, HDR, GIF, ...) have
 * crashed on fuzzed input in the Debian build (TGA has no magic number to refuse it early), and
 * nothing the engine reads comes in those formats. */
static int sniff_png_or_jpeg(const uint8_t *p, size_t n) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    if (n >= 8 && memcmp(p, png_sig, 8) == 0) return 1;
    return n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff;
}

static int
not_png_or_jpeg(const char *fn, const char *name, const uint8_t *p, size_t n, eng_err *err) {
    return eng_err_set(err, ENG_E_FORMAT,
                       "%s: %s: not a PNG or JPEG file (starts with %02x %02x %02x %02x)", fn, name,
                       n > 0 ? p[0] : 0, n > 1 ? p[1] : 0, n > 2 ? p[2] : 0, n > 3 ? p[3] : 0);
}

/* Header checks shared by info and read: the format and PNG size sniffs, then stbi_info. */
static int probe_memory(int64_t *w,
                        int64_t *h,
                        int64_t *c,
                        const uint8_t *data,
                        size_t size,
                        const char *fn,
                        const char *name,
                        eng_err *err) {
    int iw = 0, ih = 0, ic = 0;
    uint32_t pw = 0, ph = 0;
    if (size == 0) return eng_err_set(err, ENG_E_FORMAT, "%s: %s: empty (0 bytes)", fn, name);
    if (size > ENG_IMAGE_MAX_FILE_BYTES) {
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s: %zu bytes, over the limit of %zu", fn, name,
                           size, ENG_IMAGE_MAX_FILE_BYTES);
    }
    if (!sniff_png_or_jpeg(data, size)) return not_png_or_jpeg(fn, name, data, size, err);
    {
        char type[5];
        uint32_t clen = 0;
        size_t left = 0;
        if (data[0] == 0x89 && !png_chunks_fit(data, size, type, &clen, &left)) {
            return eng_err_set(err, ENG_E_FORMAT,
                               "%s: %s: PNG chunk \"%s\" claims %" PRIu32
                               " bytes but %zu remain (truncated or corrupt file)",
                               fn, name, type, clen, left);
        }
    }
    if (png_header_dims(data, size, &pw, &ph) &&
        (pw > ENG_IMAGE_MAX_DIM || ph > ENG_IMAGE_MAX_DIM || pw == 0 || ph == 0)) {
        return eng_err_set(err, ENG_E_FORMAT,
                           "%s: %s: PNG is %" PRIu32 "x%" PRIu32 ", outside the limits 1x1..%dx%d",
                           fn, name, pw, ph, ENG_IMAGE_MAX_DIM, ENG_IMAGE_MAX_DIM);
    }
    if (!stbi_info_from_memory(data, (int)size, &iw, &ih, &ic)) {
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s: not a readable image header (stb_image: %s)",
                           fn, name, stb_reason());
    }
    *w = iw;
    *h = ih;
    *c = ic;
    return check_dims(*w, *h, *c, NULL, ENG_E_FORMAT, fn, name, err);
}

static int decode_memory(eng_image *out,
                         const uint8_t *data,
                         size_t size,
                         int64_t channels,
                         const char *fn,
                         const char *name,
                         eng_err *err) {
    int rc = ENG_OK;
    int64_t w = 0, h = 0, c = 0;
    int lw = 0, lh = 0, lc = 0;
    uint8_t *pix = NULL;
    memset(out, 0, sizeof *out);
    if (channels < 0 || channels > 4) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: %s: channels must be 0 (as stored) or 1..4, got %jd", fn, name,
                         (intmax_t)channels);
        goto done;
    }
    if ((rc = probe_memory(&w, &h, &c, data, size, fn, name, err)) != ENG_OK) goto done;
    if (channels != 0) c = channels;
    if ((rc = check_dims(w, h, c, NULL, ENG_E_FORMAT, fn, name, err)) != ENG_OK) goto done;
    /* The flip flag is process-wide unless set per thread: pin it so another user of stb_image
     * in the process cannot turn our images upside down. */
    stbi_set_flip_vertically_on_load_thread(0);
    pix = stbi_load_from_memory(data, (int)size, &lw, &lh, &lc, (int)channels);
    if (pix == NULL) {
        const char *why = stb_reason();
        rc = eng_err_set(err, strcmp(why, "outofmem") == 0 ? ENG_E_OOM : ENG_E_FORMAT,
                         "%s: %s: cannot decode %jdx%jd image (stb_image: %s)", fn, name,
                         (intmax_t)w, (intmax_t)h, why);
        goto done;
    }
    if (channels == 0) c = lc;
    if (lw != w || lh != h || c < 1 || c > 4) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "%s: %s: header says %jdx%jd, decoder produced %dx%dx%jd", fn, name,
                         (intmax_t)w, (intmax_t)h, lw, lh, (intmax_t)c);
        goto done;
    }
    out->width = w;
    out->height = h;
    out->channels = c;
    out->data = pix;
    pix = NULL;
done:
    if (pix != NULL) stbi_image_free(pix);
    return rc;
}

int eng_image_read_memory(
    eng_image *out, const void *data, size_t size, int64_t channels, eng_err *err) {
    ENG_ASSERT(out != NULL && (data != NULL || size == 0));
    return decode_memory(out, (const uint8_t *)data, size, channels, "eng_image_read_memory",
                         "(memory)", err);
}

int eng_image_read(eng_image *out, const char *path, int64_t channels, eng_err *err) {
    int rc = ENG_OK;
    uint8_t *buf = NULL;
    size_t size = 0;
    ENG_ASSERT(out != NULL && path != NULL);
    memset(out, 0, sizeof *out);
    if (channels < 0 || channels > 4) { /* before touching the file: an argument error wins */
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_image_read: %s: channels must be 0 (as stored) or 1..4, got %jd",
                         path, (intmax_t)channels);
        goto done;
    }
    if ((rc = read_file(&buf, &size, "eng_image_read", path, err)) != ENG_OK) goto done;
    rc = decode_memory(out, buf, size, channels, "eng_image_read", path, err);
done:
    free(buf);
    return rc;
}

int eng_image_info_memory(int64_t *width,
                          int64_t *height,
                          int64_t *channels,
                          const void *data,
                          size_t size,
                          eng_err *err) {
    int64_t w = 0, h = 0, c = 0;
    int rc;
    ENG_ASSERT(data != NULL || size == 0);
    rc = probe_memory(&w, &h, &c, (const uint8_t *)data, size, "eng_image_info_memory", "(memory)",
                      err);
    if (rc != ENG_OK) return rc;
    if (width != NULL) *width = w;
    if (height != NULL) *height = h;
    if (channels != NULL) *channels = c;
    return ENG_OK;
}

int eng_image_info(
    int64_t *width, int64_t *height, int64_t *channels, const char *path, eng_err *err) {
    int rc = ENG_OK;
    FILE *f = NULL;
    uint8_t head[24];
    size_t got = 0;
    uint32_t pw = 0, ph = 0;
    int iw = 0, ih = 0, ic = 0;
    char eb[128];
    ENG_ASSERT(path != NULL);
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "eng_image_info: %s: cannot open (%s)", path,
                         errno_text(errno, eb, sizeof eb));
        goto done;
    }
    got = fread(head, 1, sizeof head, f);
    if (got == 0) {
        rc = eng_err_set(err, ferror(f) ? ENG_E_IO : ENG_E_FORMAT,
                         "eng_image_info: %s: cannot read (empty file or a directory?)", path);
        goto done;
    }
    if (!sniff_png_or_jpeg(head, got)) {
        rc = not_png_or_jpeg("eng_image_info", path, head, got, err);
        goto done;
    }
    if (png_header_dims(head, got, &pw, &ph) &&
        (pw > ENG_IMAGE_MAX_DIM || ph > ENG_IMAGE_MAX_DIM || pw == 0 || ph == 0)) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "eng_image_info: %s: PNG is %" PRIu32 "x%" PRIu32
                         ", outside the limits 1x1..%dx%d",
                         path, pw, ph, ENG_IMAGE_MAX_DIM, ENG_IMAGE_MAX_DIM);
        goto done;
    }
    if (fseek(f, 0, SEEK_SET) != 0 || !stbi_info_from_file(f, &iw, &ih, &ic)) {
        rc = eng_err_set(err, ENG_E_FORMAT,
                         "eng_image_info: %s: not a readable image header (stb_image: %s)", path,
                         stb_reason());
        goto done;
    }
    rc = check_dims(iw, ih, ic, NULL, ENG_E_FORMAT, "eng_image_info", path, err);
    if (rc != ENG_OK) goto done;
    if (width != NULL) *width = iw;
    if (height != NULL) *height = ih;
    if (channels != NULL) *channels = ic;
done:
    if (f != NULL) fclose(f);
    return rc;
}

/* ---- libpng error plumbing ------------------------------------------------------------------- */

/* Every libpng session passes a struct that starts with this as the error pointer. */
typedef struct png_errbuf {
    char msg[PNG_ERRMSG_MAX];
} png_errbuf;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_errbuf *e = (png_errbuf *)png_get_error_ptr(png);
    if (e != NULL) snprintf(e->msg, sizeof e->msg, "%s", msg != NULL ? msg : "error");
    png_longjmp(png, 1); /* returning would make libpng print to stderr, then jump */
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png; /* warnings (benign errors included) are not failures: stay quiet */
    (void)msg;
}

/* ---- PNG encoding ---------------------------------------------------------------------------- */

typedef struct png_write_ctx {
    png_errbuf e; /* first: the error pointer */
    png_structp png;
    png_infop info;
    uint8_t *data; /* the encoded bytes so far */
    size_t size, cap;
    int oom;
} png_write_ctx;

static void png_mem_write(png_structp png, png_bytep src, size_t n) {
    png_write_ctx *c = (png_write_ctx *)png_get_io_ptr(png);
    if (n > c->cap - c->size) {
        size_t cap = c->cap > 0 ? c->cap : (size_t)64 << 10;
        uint8_t *p;
        while (cap - c->size < n) {
            if (cap > SIZE_MAX / 2) {
                c->oom = 1;
                png_error(png, "output size overflows size_t");
            }
            cap *= 2;
        }
        p = (uint8_t *)realloc(c->data, cap);
        if (p == NULL) {
            c->oom = 1;
            png_error(png, "out of memory growing the output buffer");
        }
        c->data = p;
        c->cap = cap;
    }
    memcpy(c->data + c->size, src, n);
    c->size += n;
}

static void png_mem_flush(png_structp png) {
    (void)png;
}

/* The libpng part of encoding; returns 0, or -1 after a libpng error (message in c->e). */
static int png_encode_session(png_write_ctx *c, const eng_image *img, png_textp texts, int n) {
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                       PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    const size_t row = (size_t)img->width * (size_t)img->channels;
    if (setjmp(png_jmpbuf(c->png))) return -1;
    png_set_write_fn(c->png, c, png_mem_write, png_mem_flush);
    png_set_IHDR(c->png, c->info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 color_types[img->channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(c->png, 6);
    if (n > 0) png_set_text(c->png, c->info, texts, n);
    png_write_info(c->png, c->info);
    for (int64_t y = 0; y < img->height; y++)
        png_write_row(c->png, img->data + (size_t)y * row);
    png_write_end(c->png, NULL);
    return 0;
}

/* Text chunks converted for libpng: Latin-1 keys, Latin-1 (tEXt) or UTF-8 (iTXt) values. */
typedef struct text_prep {
    char key[TEXT_KEY_MAX + 1];
    char *value; /* owned */
} text_prep;

static int prepare_texts(text_prep *prep,
                         png_textp pt,
                         const eng_image_text *texts,
                         int64_t n,
                         const char *fn,
                         const char *name,
                         eng_err *err) {
    for (int64_t i = 0; i < n; i++) {
        const char *key = texts[i].key, *val = texts[i].value;
        char k1[2 * TEXT_KEY_MAX + 1];
        size_t klen, vlen, bad = 0;
        int fits;
        if (key == NULL || val == NULL) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s: text %jd has a NULL %s", fn, name,
                               (intmax_t)i, key == NULL ? "key" : "value");
        }
        klen = strlen(key);
        vlen = strlen(val);
        /* A Latin-1 character takes at most 2 UTF-8 bytes: longer keys cannot fit 79. */
        if (klen > 2 * TEXT_KEY_MAX || utf8_to_latin1(k1, key, klen, &bad) != 1 ||
            !latin1_key_ok(k1, strlen(k1))) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: %s: text key \"%.100s\" is not a PNG keyword (1..79 printable "
                               "Latin-1 characters, no leading, trailing or double spaces)",
                               fn, name, key);
        }
        if (vlen > ENG_IMAGE_MAX_TEXT_BYTES) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: %s: text \"%s\" is %zu bytes, over the limit of %zu", fn, name,
                               k1, vlen, ENG_IMAGE_MAX_TEXT_BYTES);
        }
        memcpy(prep[i].key, k1, strlen(k1) + 1);
        prep[i].value = (char *)malloc(vlen + 1);
        if (prep[i].value == NULL) {
            return eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory for text \"%s\"", fn, name,
                               prep[i].key);
        }
        fits = utf8_to_latin1(prep[i].value, val, vlen, &bad);
        if (fits < 0) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: %s: text \"%s\" is not valid UTF-8 (at byte %zu)", fn, name,
                               prep[i].key, bad);
        }
        /* Latin-1 bytes that would read back as UTF-8 (see collect_texts) go to iTXt. */
        if (fits == 1 &&
            utf8_valid_non_ascii((const uint8_t *)prep[i].value, strlen(prep[i].value))) {
            fits = 0;
        }
        memset(&pt[i], 0, sizeof pt[i]);
        pt[i].key = prep[i].key;
        pt[i].text = prep[i].value;
        if (fits) {
            pt[i].compression = PNG_TEXT_COMPRESSION_NONE; /* tEXt, Latin-1 */
            pt[i].text_length = strlen(prep[i].value);
        } else {
            memcpy(prep[i].value, val, vlen + 1); /* iTXt keeps the UTF-8 */
            pt[i].compression = PNG_ITXT_COMPRESSION_NONE;
            pt[i].itxt_length = vlen;
            pt[i].lang = NULL;
            pt[i].lang_key = NULL;
        }
    }
    return ENG_OK;
}

static int encode_png(uint8_t **out,
                      size_t *out_size,
                      const eng_image *img,
                      const eng_image_text *texts,
                      int64_t n_texts,
                      const char *fn,
                      const char *name,
                      eng_err *err) {
    int rc = ENG_OK;
    png_write_ctx c;
    text_prep *prep = NULL;
    png_textp pt = NULL;
    ENG_ASSERT(out != NULL && out_size != NULL);
    memset(&c, 0, sizeof c);
    *out = NULL;
    *out_size = 0;
    if (img == NULL || img->data == NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s: no image (NULL image or pixels)", fn,
                         name);
        goto done;
    }
    rc = check_dims(img->width, img->height, img->channels, NULL, ENG_E_INVALID_ARG, fn, name, err);
    if (rc != ENG_OK) goto done;
    if (n_texts < 0 || n_texts > MAX_TEXT_CHUNKS || (n_texts > 0 && texts == NULL)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: %s: %jd text chunks (texts %s), expected 0..%d", fn, name,
                         (intmax_t)n_texts, texts == NULL ? "NULL" : "given", MAX_TEXT_CHUNKS);
        goto done;
    }
    if (n_texts > 0) {
        prep = (text_prep *)calloc((size_t)n_texts, sizeof *prep);
        pt = (png_textp)calloc((size_t)n_texts, sizeof *pt);
        if (prep == NULL || pt == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory", fn, name);
            goto done;
        }
        if ((rc = prepare_texts(prep, pt, texts, n_texts, fn, name, err)) != ENG_OK) goto done;
    }
    c.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c.e, png_on_error, png_on_warning);
    if (c.png != NULL) c.info = png_create_info_struct(c.png);
    if (c.png == NULL || c.info == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory creating the PNG writer", fn, name);
        goto done;
    }
    if (png_encode_session(&c, img, pt, (int)n_texts) != 0) {
        rc = eng_err_set(err, c.oom ? ENG_E_OOM : ENG_E_INVALID_ARG, "%s: %s: libpng: %s", fn, name,
                         c.e.msg);
        goto done;
    }
    *out = c.data;
    *out_size = c.size;
    c.data = NULL;
done:
    if (c.png != NULL) png_destroy_write_struct(&c.png, &c.info);
    free(c.data);
    if (prep != NULL) {
        for (int64_t i = 0; i < n_texts; i++)
            free(prep[i].value);
    }
    free(prep);
    free(pt);
    return rc;
}

int eng_image_encode_png(uint8_t **out,
                         size_t *out_size,
                         const eng_image *img,
                         const eng_image_text *texts,
                         int64_t n_texts,
                         eng_err *err) {
    return encode_png(out, out_size, img, texts, n_texts, "eng_image_encode_png", "(memory)", err);
}

/* Writes all of buf to fd, retrying short writes and EINTR. Returns 0 or an errno value. */
static int write_all(int fd, const uint8_t *buf, size_t n) {
    while (n > 0) {
        const ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        buf += (size_t)w;
        n -= (size_t)w;
    }
    return 0;
}

int eng_image_write_png(const char *path,
                        const eng_image *img,
                        const eng_image_text *texts,
                        int64_t n_texts,
                        eng_err *err) {
    static const char fn[] = "eng_image_write_png";
    int rc = ENG_OK, fd = -1, made_tmp = 0, e = 0;
    uint8_t *png = NULL;
    size_t png_size = 0, tmp_cap = 0;
    char *tmp = NULL;
    char eb[128];
    ENG_ASSERT(path != NULL);
    if ((rc = encode_png(&png, &png_size, img, texts, n_texts, fn, path, err)) != ENG_OK) goto done;
    tmp_cap = strlen(path) + 64;
    tmp = (char *)malloc(tmp_cap);
    if (tmp == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory", fn, path);
        goto done;
    }
    /* O_EXCL with a counter: two threads of one process writing the same path get distinct
     * temporary files, and mode 0666 lets the umask decide the final permissions. */
    for (int i = 0; i < 100; i++) {
        snprintf(tmp, tmp_cap, "%s.tmp.%jd.%d", path, (intmax_t)getpid(), i);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) break;
    }
    if (fd < 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot create temporary file %s (%s)", fn, path,
                         tmp, errno_text(errno, eb, sizeof eb));
        goto done;
    }
    made_tmp = 1;
    if ((e = write_all(fd, png, png_size)) != 0 || (fsync(fd) != 0 && (e = errno) != 0)) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot write %zu bytes to %s (%s)", fn, path,
                         png_size, tmp, errno_text(e, eb, sizeof eb));
        goto done;
    }
    e = close(fd);
    fd = -1;
    if (e != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot close %s (%s)", fn, path, tmp,
                         errno_text(errno, eb, sizeof eb));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: cannot rename %s over it (%s)", fn, path, tmp,
                         errno_text(errno, eb, sizeof eb));
        goto done;
    }
    made_tmp = 0;
done:
    if (fd >= 0) close(fd);
    if (made_tmp) unlink(tmp);
    free(tmp);
    eng_image_buf_free(png);
    return rc;
}

/* ---- PNG text chunks ------------------------------------------------------------------------- */

/* libpng's memory while reading text is counted, so that zTXt bombs and chunk floods stop at
 * ENG_IMAGE_MAX_TEXT_TOTAL instead of exhausting the machine. Each block carries its size in a
 * header as wide as max_align_t, which keeps the payload aligned as malloc's. */
#define COUNTED_HDR sizeof(max_align_t)

typedef struct png_read_ctx {
    png_errbuf e; /* first: the error pointer */
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t size, pos;
    size_t mem_used;
    int mem_over, oom;
} png_read_ctx;

static png_voidp png_counted_malloc(png_structp png, png_alloc_size_t n) {
    png_read_ctx *c = (png_read_ctx *)png_get_mem_ptr(png);
    uint8_t *b;
    if (n > ENG_IMAGE_MAX_TEXT_TOTAL || n > ENG_IMAGE_MAX_TEXT_TOTAL - c->mem_used) {
        c->mem_over = 1;
        return NULL;
    }
    b = (uint8_t *)malloc(COUNTED_HDR + n);
    if (b == NULL) {
        c->oom = 1;
        return NULL;
    }
    memcpy(b, &n, sizeof n);
    c->mem_used += n;
    return b + COUNTED_HDR;
}

static void png_counted_free(png_structp png, png_voidp p) {
    png_read_ctx *c = (png_read_ctx *)png_get_mem_ptr(png);
    uint8_t *b;
    png_alloc_size_t n;
    if (p == NULL) return;
    b = (uint8_t *)p - COUNTED_HDR;
    memcpy(&n, b, sizeof n);
    c->mem_used -= n;
    free(b);
}

static void png_mem_read(png_structp png, png_bytep dst, size_t n) {
    png_read_ctx *c = (png_read_ctx *)png_get_io_ptr(png);
    if (n > c->size - c->pos) png_error(png, "unexpected end of data (truncated?)");
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
}

/* The libpng part of reading text; returns 0, or -1 after a libpng error (message in c->e).
 * The pixel data is inflated and discarded: png_read_end needs the IDAT stream consumed, and
 * libpng 1.6 cannot skip IDAT chunks unread (a critical chunk must be handled). */
static int png_text_session(png_read_ctx *c) {
    if (setjmp(png_jmpbuf(c->png))) return -1;
    png_set_read_fn(c->png, c, png_mem_read);
    png_set_benign_errors(c->png, 1); /* e.g. trailing image data: a warning, not a failure */
    png_set_chunk_malloc_max(c->png, ENG_IMAGE_MAX_TEXT_BYTES);
    png_read_info(c->png, c->info);
    png_start_read_image(c->png);
    png_read_end(c->png, c->info); /* same info: texts stay in file order */
    return 0;
}

/* Copies libpng's texts into one block: the array, then the UTF-8 strings. */
static int collect_texts(eng_image_text **out,
                         int64_t *n_out,
                         png_const_textp t,
                         int n,
                         const char *fn,
                         const char *name,
                         eng_err *err) {
    size_t bytes = (size_t)n * sizeof(eng_image_text);
    uint8_t *block = NULL;
    char *s;
    eng_image_text *arr;
    if (n <= 0) return ENG_OK;
    /* Pass 1: sizes. Latin-1 doubles at most; everything is bounded by the libpng budget. */
    for (int i = 0; i < n; i++) {
        const uint8_t *k = (const uint8_t *)t[i].key, *v = (const uint8_t *)t[i].text;
        const size_t vl = v != NULL ? strlen((const char *)v) : 0;
        const int itxt = t[i].compression == PNG_ITXT_COMPRESSION_NONE ||
                         t[i].compression == PNG_ITXT_COMPRESSION_zTXt;
        bytes += latin1_to_utf8(NULL, k, strlen((const char *)k)) + 1;
        bytes += (itxt || utf8_valid_non_ascii(v, vl)) ? vl + 1 : latin1_to_utf8(NULL, v, vl) + 1;
    }
    block = (uint8_t *)malloc(bytes);
    if (block == NULL) {
        return eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory for %d text chunks (%zu bytes)",
                           fn, name, n, bytes);
    }
    arr = (eng_image_text *)(void *)block;
    s = (char *)(block + (size_t)n * sizeof(eng_image_text));
    for (int i = 0; i < n; i++) {
        const uint8_t *k = (const uint8_t *)t[i].key, *v = (const uint8_t *)t[i].text;
        const size_t kl = strlen((const char *)k), vl = v != NULL ? strlen((const char *)v) : 0;
        const int itxt = t[i].compression == PNG_ITXT_COMPRESSION_NONE ||
                         t[i].compression == PNG_ITXT_COMPRESSION_zTXt;
        size_t o;
        arr[i].key = s;
        o = latin1_to_utf8(s, k, kl);
        s[o] = '\0';
        s += o + 1;
        arr[i].value = s;
        if (itxt || utf8_valid_non_ascii(v, vl)) {
            if (vl > 0) memcpy(s, v, vl);
            o = vl;
        } else {
            o = latin1_to_utf8(s, v, vl);
        }
        s[o] = '\0';
        s += o + 1;
    }
    *out = arr;
    *n_out = n;
    return ENG_OK;
}

static int text_read_memory(eng_image_text **out,
                            int64_t *n_out,
                            const uint8_t *data,
                            size_t size,
                            const char *fn,
                            const char *name,
                            eng_err *err) {
    int rc = ENG_OK;
    png_read_ctx c;
    png_textp t = NULL;
    int n = 0;
    ENG_ASSERT(out != NULL && n_out != NULL);
    memset(&c, 0, sizeof c);
    *out = NULL;
    *n_out = 0;
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: not a PNG (%zu bytes, no PNG signature)", fn,
                         name, size);
        goto done;
    }
    if (size > ENG_IMAGE_MAX_FILE_BYTES) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: %zu bytes, over the limit of %zu", fn, name,
                         size, ENG_IMAGE_MAX_FILE_BYTES);
        goto done;
    }
    c.data = data;
    c.size = size;
    c.png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &c.e, png_on_error, png_on_warning, &c,
                                     png_counted_malloc, png_counted_free);
    if (c.png != NULL) c.info = png_create_info_struct(c.png);
    if (c.png == NULL || c.info == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory creating the PNG reader", fn, name);
        goto done;
    }
    if (png_text_session(&c) != 0) {
        if (c.mem_over) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "%s: %s: text chunks need more than %zu bytes to read (%s)", fn, name,
                             ENG_IMAGE_MAX_TEXT_TOTAL, c.e.msg);
        } else {
            rc = eng_err_set(err, c.oom ? ENG_E_OOM : ENG_E_FORMAT, "%s: %s: libpng: %s", fn, name,
                             c.e.msg);
        }
        goto done;
    }
    if (png_get_text(c.png, c.info, &t, &n) > 0 && t != NULL) {
        rc = collect_texts(out, n_out, t, n, fn, name, err);
    }
done:
    if (c.png != NULL) png_destroy_read_struct(&c.png, &c.info, NULL);
    return rc;
}

int eng_image_png_text_read_memory(
    eng_image_text **out, int64_t *n_out, const void *data, size_t size, eng_err *err) {
    ENG_ASSERT(data != NULL || size == 0);
    return text_read_memory(out, n_out, (const uint8_t *)data, size,
                            "eng_image_png_text_read_memory", "(memory)", err);
}

int eng_image_png_text_read(eng_image_text **out, int64_t *n_out, const char *path, eng_err *err) {
    static const char fn[] = "eng_image_png_text_read";
    int rc = ENG_OK;
    uint8_t *buf = NULL;
    size_t size = 0;
    ENG_ASSERT(out != NULL && n_out != NULL && path != NULL);
    *out = NULL;
    *n_out = 0;
    if ((rc = read_file(&buf, &size, fn, path, err)) != ENG_OK) goto done;
    rc = text_read_memory(out, n_out, buf, size, fn, path, err);
done:
    free(buf);
    return rc;
}

const char *eng_image_text_find(const eng_image_text *texts, int64_t n, const char *key) {
    ENG_ASSERT(key != NULL && (texts != NULL || n == 0));
    for (int64_t i = 0; i < n; i++) {
        if (strcmp(texts[i].key, key) == 0) return texts[i].value;
    }
    return NULL;
}

int eng_image_png_text_get(char **out, const char *path, const char *key, eng_err *err) {
    int rc = ENG_OK;
    eng_image_text *t = NULL;
    int64_t n = 0;
    const char *v;
    ENG_ASSERT(out != NULL && path != NULL && key != NULL);
    *out = NULL;
    if ((rc = eng_image_png_text_read(&t, &n, path, err)) != ENG_OK) goto done;
    v = eng_image_text_find(t, n, key);
    if (v != NULL) {
        *out = copy_str(v, strlen(v));
        if (*out == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "eng_image_png_text_get: %s: out of memory for \"%s\"",
                             path, key);
            goto done;
        }
    }
done:
    eng_image_text_free(t);
    return rc;
}

void eng_image_text_free(eng_image_text *texts) {
    free(texts); /* one block: the array and its strings */
}
