/* eng_safetensors.h: read and write .safetensors files (the Hugging Face tensor container).
 *
 *   eng_safetensors *f = NULL; eng_err err = {0};
 *   if (eng_safetensors_open(&f, "model.safetensors", &err) != ENG_OK) {
 *       fprintf(stderr, "%s\n", err.msg); return 1;
 *   }
 *   for (int64_t i = 0; i < eng_safetensors_count(f); i++) {
 *       const eng_safetensors_info *t = eng_safetensors_info_at(f, i);
 *       printf("%s %s %zu bytes\n", t->name, t->dtype_name, t->nbytes);   // t->data: the bytes
 *   }
 *   eng_tensor w;                                   // a read-only CPU view into the mapping
 *   if (eng_safetensors_view(&w, f, "model.diffusion_model.out.2.weight", &err) != ENG_OK) ...
 *   const char *fmt = eng_safetensors_metadata_get(f, "format");       // NULL when absent
 *   eng_safetensors_close(f);                       // every pointer from f is now invalid
 *
 * The format: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON, an object
 *   {"name": {"dtype": "F16", "shape": [320, 4, 3, 3], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value", ...}}         (the metadata entry is optional)
 * then the data buffer, to the end of the file. Offsets count bytes from the start of the data
 * buffer (file byte 8 + N); tensors are row-major, little-endian, packed.
 *
 * Reading validates everything before returning ENG_OK, so callers can trust what they get:
 *   - N is at least 2, at most ENG_SAFETENSORS_MAX_HEADER_BYTES and at most what the file holds;
 *   - the header is UTF-8 JSON text (no control characters), one object, nothing after it but
 *     whitespace;
 *   - each entry is an object with a known "dtype" string, a "shape" of at most
 *     ENG_SAFETENSORS_MAX_DIMS non-negative integers (below 2^53; [] is a scalar, one element)
 *     and "data_offsets" [begin, end] with begin <= end; other fields are ignored;
 *   - numel x dtype size does not overflow 64 bits and equals end - begin;
 *   - every tensor lies inside the data buffer, and the tensors cover the buffer exactly: no
 *     overlaps, no holes, no trailing bytes (the reference implementation's rule);
 *   - names are unique (the JSON parser keeps duplicate keys; we reject them), "__metadata__"
 *     appears at most once and maps strings to strings, with unique keys.
 * Each failure is ENG_E_FORMAT with a message naming the function, the file (its path, or
 * "<memory>"), the tensor and the field, what was expected and what was found, e.g.
 *   eng_safetensors_open: model.safetensors: tensor "a.weight" ends at byte 3441372160 but the
 *   data buffer has 2132995584 bytes (truncated download?)
 *
 * Tensor order: eng_safetensors_info_at(f, i) goes through the tensors in the order of their data
 * in the file (data_offsets ascending; zero-sized tensors at the same offset by name), which is
 * the order to read them in. Lookup by name is a binary search.
 *
 * Writing: eng_safetensors_write() lays the tensors out in the order given, pads the header with
 * spaces so the data buffer starts at a multiple of 8 bytes, and replaces the destination
 * atomically (it writes PATH.tmp.<pid>, syncs it, then renames it over PATH).
 *
 * Ownership: an open file owns its copy of the header's strings and, for eng_safetensors_open,
 * the read-only mapping of the file; every pointer it hands out (names, data, metadata, views)
 * stays valid until eng_safetensors_close. eng_safetensors_open_memory borrows the caller's
 * buffer, which must outlive the handle. Data pointers are read-only: the mapping is PROT_READ,
 * so writing through a view faults. If another process truncates a mapped file, reading the
 * lost pages raises SIGBUS (as with any mmap); replace files by rename, as the writer does.
 * Threads: a handle may be queried from any number of threads at once; open, close and write
 * touch only their own objects. (cJSON records its last parse error in a global; it is not read.)
 * Limits: header up to ENG_SAFETENSORS_MAX_HEADER_BYTES; up to ENG_SAFETENSORS_MAX_DIMS
 * dimensions in the file; eng_tensor views need a dtype the engine has, at most ENG_MAX_DIMS
 * dimensions, and data aligned to the element size. */
#ifndef ENG_SAFETENSORS_H
#define ENG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "eng_dtype.h"
#include "eng_err.h"
#include "eng_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The reference implementation's cap on the header (100 MB); real checkpoints use < 2 MB. */
#define ENG_SAFETENSORS_MAX_HEADER_BYTES 100000000u
/* Dimensions a tensor in a file may have (views into eng_tensor take at most ENG_MAX_DIMS). */
#define ENG_SAFETENSORS_MAX_DIMS 8

/* The element types of the file format. New values go at the end. */
typedef enum eng_safetensors_dtype {
    ENG_SAFETENSORS_F64,
    ENG_SAFETENSORS_F32,
    ENG_SAFETENSORS_F16,
    ENG_SAFETENSORS_BF16,
    ENG_SAFETENSORS_I64,
    ENG_SAFETENSORS_I32,
    ENG_SAFETENSORS_I16,
    ENG_SAFETENSORS_I8,
    ENG_SAFETENSORS_U8,
    ENG_SAFETENSORS_U16,
    ENG_SAFETENSORS_U32,
    ENG_SAFETENSORS_U64,
    ENG_SAFETENSORS_BOOL,
    ENG_SAFETENSORS_F8_E4M3,
    ENG_SAFETENSORS_F8_E5M2,
    ENG_SAFETENSORS_DTYPE_COUNT
} eng_safetensors_dtype;

typedef struct eng_safetensors eng_safetensors; /* opaque: an open, validated file */

/* One tensor of an open file. Plain data; the pointers belong to the file (valid until close). */
typedef struct eng_safetensors_info {
    const char *name;                        /* as in the header, NUL-terminated */
    const char *dtype_name;                  /* "F16", "BF16", ... (a static string) */
    eng_safetensors_dtype dtype;             /* the same, as an enum */
    int ndim;                                /* 0..ENG_SAFETENSORS_MAX_DIMS; 0 is a scalar */
    int64_t shape[ENG_SAFETENSORS_MAX_DIMS]; /* unused dimensions are 1 */
    int64_t numel;                           /* product of the shape (1 for a scalar) */
    uint64_t data_begin;                     /* data_offsets[0]: from the data buffer's start */
    uint64_t file_offset;                    /* the same, from the file's start (8 + N + begin) */
    size_t nbytes;                           /* end - begin = numel * dtype size */
    const void *data;                        /* the bytes, read-only, row-major little-endian */
    int64_t index;                           /* position in eng_safetensors_info_at order */
} eng_safetensors_info;

/* A tensor to write. `dtype_name` wins when non-NULL ("F16"); otherwise `dtype` is used. */
typedef struct eng_safetensors_entry {
    const char *name;            /* UTF-8, unique, not "__metadata__" */
    const char *dtype_name;      /* NULL: use dtype */
    eng_safetensors_dtype dtype; /* used when dtype_name is NULL */
    int ndim;                    /* 0..ENG_SAFETENSORS_MAX_DIMS; 0 is a scalar */
    const int64_t *shape;        /* ndim non-negative sizes; may be NULL when ndim == 0 */
    const void *data;            /* numel * dtype size bytes; may be NULL when that is 0 */
} eng_safetensors_entry;

/* A metadata pair (both UTF-8 strings; keys unique). */
typedef struct eng_safetensors_kv {
    const char *key;
    const char *value;
} eng_safetensors_kv;

/* ---- dtypes -------------------------------------------------------------------------------- */
/* "F64", "F32", ...; "?" for a value out of range. */
const char *eng_safetensors_dtype_name(eng_safetensors_dtype dt);
/* Bytes per element (BOOL and the F8 types are 1); 0 for a value out of range. */
size_t eng_safetensors_dtype_size(eng_safetensors_dtype dt);
/* Parses a file dtype string, exactly as written in files ("BF16", case-sensitive).
 * Errors: ENG_E_INVALID_ARG naming the text and listing the known names. */
int eng_safetensors_dtype_parse(eng_safetensors_dtype *out, const char *name, eng_err *err);
/* The engine dtype for a file dtype: F32, F16, BF16, I8, I32 and F8_E4M3 have one.
 * Errors: ENG_E_UNSUPPORTED naming the file dtype. */
int eng_safetensors_dtype_to_eng(eng_dtype *out, eng_safetensors_dtype dt, eng_err *err);
/* The file dtype for an engine dtype (every engine dtype has one); ENG_SAFETENSORS_DTYPE_COUNT
 * for a value out of range. */
eng_safetensors_dtype eng_safetensors_dtype_from_eng(eng_dtype dt);

/* ---- reading ------------------------------------------------------------------------------- */
/* Maps the file at `path` read-only and validates it (see the top of this file). On ENG_OK the
 * caller owns *out (close with eng_safetensors_close); on error *out is NULL.
 * Errors: ENG_E_IO (the file cannot be opened, is not a regular file, or cannot be mapped:
 * the message names the path and the system's reason); ENG_E_FORMAT (malformed content);
 * ENG_E_OOM (no memory for the parsed header). */
int eng_safetensors_open(eng_safetensors **out, const char *path, eng_err *err);
/* The same over `size` bytes at `data`, which are borrowed: they must stay unchanged and alive
 * until the handle is closed. Messages name the file "<memory>". For tests and the fuzzer.
 * Errors: ENG_E_FORMAT, ENG_E_OOM. */
int eng_safetensors_open_memory(eng_safetensors **out, const void *data, size_t size, eng_err *err);
/* Unmaps the file and frees the handle; NULL is a no-op. */
void eng_safetensors_close(eng_safetensors *f);

/* The path given to open, or "<memory>". Owned by f. */
const char *eng_safetensors_path(const eng_safetensors *f);
/* Number of tensors (metadata not counted). */
int64_t eng_safetensors_count(const eng_safetensors *f);
/* Tensor i, 0 <= i < count (asserted: loop over eng_safetensors_count), in data order. */
const eng_safetensors_info *eng_safetensors_info_at(const eng_safetensors *f, int64_t i);
/* The tensor named `name`, or NULL when the file has none. */
const eng_safetensors_info *eng_safetensors_find(const eng_safetensors *f, const char *name);
/* A contiguous, read-only CPU eng_tensor view of the tensor `name` (borrows the file's memory;
 * do not write through it). A scalar gives ndim 0; a zero-sized tensor gives data NULL.
 * Errors: ENG_E_FORMAT when the file has no such tensor; ENG_E_UNSUPPORTED when its dtype has no
 * engine dtype, it has more than ENG_MAX_DIMS dimensions, or its data is not aligned to the
 * element size (copy it out through eng_safetensors_info.data instead); each names the tensor. */
int eng_safetensors_view(eng_tensor *out, const eng_safetensors *f, const char *name, eng_err *err);

/* Number of "__metadata__" pairs (0 when the file has none). */
int64_t eng_safetensors_metadata_count(const eng_safetensors *f);
/* Pair i, 0 <= i < metadata_count (asserted), in header order; the strings are owned by f. */
void eng_safetensors_metadata_at(const eng_safetensors *f,
                                 int64_t i,
                                 const char **key,
                                 const char **value);
/* The value for `key`, or NULL when absent. Owned by f. */
const char *eng_safetensors_metadata_get(const eng_safetensors *f, const char *key);

/* ---- writing ------------------------------------------------------------------------------- */
/* Writes `n_entries` tensors (laid out in that order) and `n_metadata` metadata pairs (metadata
 * may be NULL when n_metadata is 0; no "__metadata__" entry is written then) to `path`,
 * atomically: PATH.tmp.<pid> is written, synced and renamed over PATH; on failure it is removed
 * and PATH is untouched. The header is padded with spaces to a multiple of 8 bytes.
 * Errors: ENG_E_INVALID_ARG (a duplicate or reserved name, a bad dtype, a bad shape, NULL data
 * for a non-empty tensor, names or metadata that are not UTF-8, a header over the cap; the
 * message names the entry); ENG_E_IO (create, write, sync or rename failed; the message names the
 * path and the system's reason); ENG_E_OOM. */
int eng_safetensors_write(const char *path,
                          const eng_safetensors_entry *entries,
                          int64_t n_entries,
                          const eng_safetensors_kv *metadata,
                          int64_t n_metadata,
                          eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* ENG_SAFETENSORS_H */
