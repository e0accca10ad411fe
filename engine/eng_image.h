/* eng_image.h: 8-bit images in memory, reading PNG/JPEG (stb_image), writing PNG with text chunks
 * (libpng), reading PNG text chunks back (the A1111 "parameters" string).
 *
 *   eng_image img = {0}; eng_err err = {0};
 *   if (eng_image_read(&img, "in.jpg", 3, &err) != ENG_OK) {     // force RGB
 *       fprintf(stderr, "%s\n", err.msg); return 1;
 *   }
 *   // img.data[(y * img.width + x) * img.channels + c], rows top to bottom, no padding
 *   eng_image_text t[] = {{ENG_IMAGE_TEXT_PARAMETERS, "a cat\nSteps: 20, Seed: 42"}};
 *   int rc = eng_image_write_png("out.png", &img, t, 1, &err);  // atomic: tmp file + rename
 *   eng_image_free(&img);
 *   char *params = NULL;
 *   rc = eng_image_png_text_get(&params, "out.png", ENG_IMAGE_TEXT_PARAMETERS, &err);
 *   ... eng_image_buf_free(params);                              // NULL when the key is absent
 *
 * Pixels: width x height x channels bytes, row-major (HWC), top row first, channels 1 (gray),
 * 2 (gray + alpha), 3 (RGB) or 4 (RGBA). 16-bit PNGs are reduced to 8 bits, paletted ones
 * expanded, and alpha is never premultiplied. Reading takes PNG and JPEG only (recognised by
 * their signatures; anything else is ENG_E_FORMAT before stb_image sees it, because its other
 * decoders are not robust against hostile files); writing is PNG only.
 *
 * Limits (checked on the header, before any pixel is decoded, so that a hostile header cannot
 * make us allocate gigabytes): width and height 1..ENG_IMAGE_MAX_DIM, files and buffers up to
 * ENG_IMAGE_MAX_FILE_BYTES. Text chunks: at most ENG_IMAGE_MAX_TEXT_BYTES per chunk once
 * decompressed and ENG_IMAGE_MAX_TEXT_TOTAL for libpng's whole reading state (this bounds zTXt
 * decompression bombs).
 *
 * Text chunks: keys and values cross this API as UTF-8 C strings. On writing, a key must be
 * 1..79 characters of printable Latin-1 (no leading, trailing or double spaces), as PNG requires.
 * A value that fits Latin-1 is written as tEXt, byte for byte what A1111 (PIL) writes; a value
 * with characters beyond Latin-1 (é is Latin-1, 猫 is not) is written as an uncompressed iTXt
 * chunk holding UTF-8, which is also what PIL does and what A1111-style readers accept. On
 * reading, tEXt and zTXt (Latin-1 by the spec) are converted to UTF-8, except values that are
 * already valid UTF-8 with non-ASCII bytes: non-conforming writers put UTF-8 in tEXt, and such
 * bytes are almost never meant as Latin-1. iTXt values are returned as stored. So that what we
 * write reads back unchanged, a value whose Latin-1 bytes would themselves be valid non-ASCII
 * UTF-8 (a string like "Ã©") is written as iTXt too.
 *
 * Errors name the function, the path (or "(memory)") and the reason; decoding errors include
 * stb_image's reason (stbi_failure_reason). In Debian's libstb that reason is thread-local; in a
 * build without thread-locals it is one global, read right after the failing call, so a
 * concurrent failure on another thread could swap the reasons of two messages (and with them
 * the choice between ENG_E_OOM and ENG_E_FORMAT). Codes: ENG_E_INVALID_ARG (bad argument: channel count, key, image struct), ENG_E_IO
 * (open, read, write, rename), ENG_E_FORMAT (not an image, truncated, corrupt, over the limits),
 * ENG_E_OOM.
 *
 * Ownership: an eng_image owns its pixels (free with eng_image_free). Text arrays, encoded PNG
 * buffers and strings returned here are freed with eng_image_text_free / eng_image_buf_free,
 * never free(). Threads: every function is safe from any thread on distinct objects; nothing
 * here keeps state between calls (decoding sets stb_image's per-thread flip flag to 0 on the
 * calling thread, so that a process-wide stbi_set_flip_vertically_on_load cannot flip ours). */
#ifndef ENG_IMAGE_H
#define ENG_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ENG_IMAGE_MAX_DIM         16384              /* width and height, read or written */
#define ENG_IMAGE_MAX_FILE_BYTES  ((size_t)1 << 30)  /* encoded input, file or memory */
#define ENG_IMAGE_MAX_TEXT_BYTES  ((size_t)16 << 20) /* one text chunk, decompressed */
#define ENG_IMAGE_MAX_TEXT_TOTAL  ((size_t)64 << 20) /* libpng's memory while reading text */
#define ENG_IMAGE_TEXT_PARAMETERS "parameters"       /* A1111's key for the generation settings */

typedef struct eng_image {
    int64_t width;    /* pixels */
    int64_t height;   /* pixels */
    int64_t channels; /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    uint8_t *data;    /* (height, width, channels) bytes, row-major; owned */
} eng_image;

/* One text chunk: UTF-8 key and value. Arrays returned by the read functions own their
 * strings (all in the array's one block); arrays passed to the writers are borrowed. */
typedef struct eng_image_text {
    const char *key;
    const char *value;
} eng_image_text;

/* ---- lifecycle ------------------------------------------------------------------------------- */

/* Allocates zeroed pixels for a width x height x channels image into *out (which is
 * overwritten, not freed). Errors: ENG_E_INVALID_ARG (a size outside the limits), ENG_E_OOM. */
int eng_image_alloc(eng_image *out, int64_t width, int64_t height, int64_t channels, eng_err *err);
/* Frees the pixels and zeroes the struct; NULL and a zeroed struct are no-ops. */
void eng_image_free(eng_image *img);
/* width * height * channels: the size of img->data in bytes. */
size_t eng_image_bytes(const eng_image *img);

/* ---- reading pixels -------------------------------------------------------------------------- */

/* Reads the width, height and channel count stored in an image file's header without decoding
 * it (any of the pointers may be NULL). Errors: ENG_E_IO, ENG_E_FORMAT (including sizes over
 * the limits, with the size in the message). */
int eng_image_info(
    int64_t *width, int64_t *height, int64_t *channels, const char *path, eng_err *err);
/* Same, from `size` bytes of an encoded image in memory (borrowed for the call). */
int eng_image_info_memory(int64_t *width,
                          int64_t *height,
                          int64_t *channels,
                          const void *data,
                          size_t size,
                          eng_err *err);
/* Decodes an image file into *out (overwritten; on error it is zeroed). `channels` 0 keeps the
 * file's channel count, 1..4 converts (3: RGB without alpha, 4: RGBA with alpha 255 where the
 * file has none, 1: luma). Errors: ENG_E_INVALID_ARG (channels not 0..4), ENG_E_IO (the file
 * cannot be opened or read), ENG_E_FORMAT (not a decodable image, truncated, over the limits),
 * ENG_E_OOM. */
int eng_image_read(eng_image *out, const char *path, int64_t channels, eng_err *err);
/* Same, from `size` bytes of an encoded image in memory (borrowed for the call). */
int eng_image_read_memory(
    eng_image *out, const void *data, size_t size, int64_t channels, eng_err *err);

/* ---- writing PNG ----------------------------------------------------------------------------- */

/* Writes `img` as an 8-bit PNG (colour type from the channel count, not interlaced, zlib level
 * 6) with `n_texts` (0..1000) text chunks before the pixel data (texts may be NULL when n_texts
 * is 0). The file appears atomically: the bytes go to "PATH.tmp.<pid>.<n>" in the same
 * directory, are flushed to disk, then renamed over PATH; on error no file is left behind.
 * Errors: ENG_E_INVALID_ARG (image struct, key or value not acceptable, naming it), ENG_E_IO
 * (directory missing, not writable, disk full: names the path), ENG_E_OOM. */
int eng_image_write_png(const char *path,
                        const eng_image *img,
                        const eng_image_text *texts,
                        int64_t n_texts,
                        eng_err *err);
/* Same encoding into memory: *out (free with eng_image_buf_free) holds *out_size bytes. */
int eng_image_encode_png(uint8_t **out,
                         size_t *out_size,
                         const eng_image *img,
                         const eng_image_text *texts,
                         int64_t n_texts,
                         eng_err *err);

/* ---- reading PNG text chunks ----------------------------------------------------------------- */

/* Reads every tEXt, zTXt and iTXt chunk of a PNG, before and after the pixel data, in file
 * order, duplicates included. The pixel data is inflated and discarded (libpng must consume it
 * to reach later chunks): it costs the time of a decode, not the memory. On ENG_OK *out holds
 * *n_out entries (free with eng_image_text_free; NULL when there are none). Text chunks with a
 * bad CRC, or inflating past ENG_IMAGE_MAX_TEXT_BYTES or the ENG_IMAGE_MAX_TEXT_TOTAL budget,
 * are dropped (libpng's benign errors); so are chunks past about 1000 ancillary ones.
 * Errors: ENG_E_IO, ENG_E_FORMAT (not a PNG, truncated anywhere, a critical chunk corrupt),
 * ENG_E_OOM. */
int eng_image_png_text_read(eng_image_text **out, int64_t *n_out, const char *path, eng_err *err);
/* Same, from `size` bytes of a PNG in memory (borrowed for the call). */
int eng_image_png_text_read_memory(
    eng_image_text **out, int64_t *n_out, const void *data, size_t size, eng_err *err);
/* Convenience: the value of the first chunk named `key` (e.g. ENG_IMAGE_TEXT_PARAMETERS) as a
 * new string in *out (free with eng_image_buf_free), or *out = NULL with ENG_OK when the PNG has
 * no such chunk. Errors: as eng_image_png_text_read. */
int eng_image_png_text_get(char **out, const char *path, const char *key, eng_err *err);
/* The value of the first entry named `key`, borrowed from `texts`, or NULL. */
const char *eng_image_text_find(const eng_image_text *texts, int64_t n, const char *key);
void eng_image_text_free(eng_image_text *texts); /* NULL is a no-op */
void eng_image_buf_free(void *buf);              /* encoded PNGs, strings; NULL is a no-op */

#ifdef __cplusplus
}
#endif
#endif /* ENG_IMAGE_H */
