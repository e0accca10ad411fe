/* eng_hash.h: SHA-256 (FIPS 180-4), for model hashes (A1111's "Model hash" is the first 10 hex
 * digits of the checkpoint file's SHA-256) and content checks.
 *
 *   eng_sha256 h; eng_sha256_init(&h);
 *   eng_sha256_update(&h, data, n);              // any number of times
 *   uint8_t digest[32]; eng_sha256_final(&h, digest);
 *   char hex[65]; eng_sha256_file_hex(hex, "model.safetensors", &err);   // a whole file
 *
 * Threads: an eng_sha256 is the caller's; the functions keep no other state. */
#ifndef ENG_HASH_H
#define ENG_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eng_sha256 {
    uint32_t state[8];
    uint64_t bytes;    /* message length so far */
    uint8_t block[64]; /* pending input */
    size_t used;       /* bytes in block */
} eng_sha256;

void eng_sha256_init(eng_sha256 *h);
void eng_sha256_update(eng_sha256 *h, const void *data, size_t n);
/* Writes the 32-byte digest; h must be re-initialised before reuse. */
void eng_sha256_final(eng_sha256 *h, uint8_t digest[32]);
/* hex[65] = the lowercase hex of the 32-byte digest, NUL-terminated. */
void eng_sha256_hex(char hex[65], const uint8_t digest[32]);
/* hex[65] = SHA-256 of the file at `path`, read in 1 MiB pieces.
 * Errors: ENG_E_IO (cannot open or read, naming the path), ENG_E_OOM. */
int eng_sha256_file_hex(char hex[65], const char *path, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* ENG_HASH_H */
