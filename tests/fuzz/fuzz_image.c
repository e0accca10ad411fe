/* fuzz_image.c: libFuzzer harness over eng_image_info_memory and eng_image_read_memory (every
 * format stb_image decodes). The first byte picks the forced channel count (0..4); the rest is
 * the encoded image. A decoded image is checked (size, every byte read) and, when small,
 * re-encoded as PNG and decoded again, which must give the same pixels.
 *   ./build-img-fuzz/tests/fuzz_image -max_total_time=60 -max_len=65536 CORPUS_DIR */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decoding a header that claims 16384x16384 is legal (1 GiB) but makes the fuzzer crawl: only
 * inputs whose header is at most this many pixels are decoded. */
#define FUZZ_MAX_PIXELS ((int64_t)1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    eng_image img = {0}, back = {0};
    uint8_t *png = NULL;
    size_t png_n = 0;
    int64_t w = 0, h = 0, c = 0, channels;
    eng_err err;
    if (size < 1) return 0;
    channels = data[0] % 5;
    data++;
    size--;
    if (eng_image_info_memory(&w, &h, &c, data, size, &err) != ENG_OK) return 0;
    if (w < 1 || h < 1 || c < 1 || c > 4 || w > ENG_IMAGE_MAX_DIM || h > ENG_IMAGE_MAX_DIM) {
        __builtin_trap(); /* info returned OK with values outside its promise */
    }
    if (w * h > FUZZ_MAX_PIXELS) return 0;
    if (eng_image_read_memory(&img, data, size, channels, &err) == ENG_OK) {
        uint32_t sum = 0;
        const size_t n = eng_image_bytes(&img);
        if (img.data == NULL || img.width != w || img.height != h ||
            (channels != 0 && img.channels != channels)) {
            __builtin_trap();
        }
        for (size_t i = 0; i < n; i++)
            sum += img.data[i]; /* ASan: every byte is ours */
        if (w * h <= 4096 && eng_image_encode_png(&png, &png_n, &img, NULL, 0, &err) == ENG_OK) {
            if (eng_image_read_memory(&back, png, png_n, 0, &err) != ENG_OK ||
                back.channels != img.channels || memcmp(back.data, img.data, n) != 0) {
                __builtin_trap(); /* our own PNG must round-trip exactly */
            }
        }
        (void)sum;
    }
    eng_image_buf_free(png);
    eng_image_free(&back);
    eng_image_free(&img);
    return 0; /* an error is a correct answer; a crash, leak or UB report is the bug */
}
