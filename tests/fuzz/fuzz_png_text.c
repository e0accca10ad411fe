/* fuzz_png_text.c: libFuzzer harness over eng_image_png_text_read_memory (libpng's tEXt, zTXt
 * and iTXt parsing with our limits and Latin-1/UTF-8 conversion). Whatever is read and accepted
 * by the writer must read back identically: encode a 1x1 PNG with the same texts, read again,
 * compare. The input's chunk CRCs are recomputed first (in a copy): libpng drops or rejects
 * chunks with a bad CRC, so mutated inputs would otherwise never reach the text parsing; the CRC
 * paths themselves are covered by test_eng_image.
 *   ./build-img-fuzz/tests/fuzz_png_text -max_total_time=60 CORPUS_DIR */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "eng_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Walks the chunks after the 8-byte signature and rewrites each CRC. */
static void fix_crcs(uint8_t *d, size_t n) {
    size_t p = 8;
    while (p + 12 <= n) {
        const uint32_t len = be32(d + p);
        uint32_t crc;
        if (len > n - p - 12) break;
        crc = (uint32_t)crc32(0, d + p + 4, (uInt)len + 4);
        d[p + 8 + len] = (uint8_t)(crc >> 24);
        d[p + 9 + len] = (uint8_t)(crc >> 16);
        d[p + 10 + len] = (uint8_t)(crc >> 8);
        d[p + 11 + len] = (uint8_t)crc;
        p += 12 + (size_t)len;
    }
}

static int check_one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = (uint8_t *)malloc(size > 0 ? size : 1);
    if (copy == NULL) return 0;
    if (size > 0) memcpy(copy, data, size);
    fix_crcs(copy, size);
    check_one(copy, size);
    free(copy);
    return 0;
}

static int check_one(const uint8_t *data, size_t size) {
    eng_image_text *t = NULL, *t2 = NULL;
    int64_t n = 0, n2 = 0;
    uint8_t pixel[4] = {1, 2, 3, 4}, *png = NULL;
    size_t png_n = 0;
    eng_image img = {1, 1, 4, pixel};
    eng_err err;
    if (eng_image_png_text_read_memory(&t, &n, data, size, &err) != ENG_OK) return 0;
    if ((n == 0) != (t == NULL)) __builtin_trap();
    for (int64_t i = 0; i < n; i++) { /* ASan: every string is NUL-terminated and ours */
        if (strlen(t[i].key) + strlen(t[i].value) > 2 * ENG_IMAGE_MAX_TEXT_BYTES + 200) {
            __builtin_trap();
        }
    }
    if (eng_image_encode_png(&png, &png_n, &img, t, n, &err) == ENG_OK) {
        if (eng_image_png_text_read_memory(&t2, &n2, png, png_n, &err) != ENG_OK || n2 != n) {
            __builtin_trap();
        }
        for (int64_t i = 0; i < n; i++) {
            if (strcmp(t[i].key, t2[i].key) != 0 || strcmp(t[i].value, t2[i].value) != 0) {
                __builtin_trap();
            }
        }
    }
    eng_image_text_free(t2);
    eng_image_buf_free(png);
    eng_image_text_free(t);
    return 0; /* an error is a correct answer; a crash, leak or UB report is the bug */
}
