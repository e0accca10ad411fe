/* eng_hash.c: SHA-256 as FIPS 180-4 section 6.2 describes it. */
#include "eng_hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t k256[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u};

static uint32_t rotr(uint32_t x, int n) {
    return (x >> n) | (x << (32 - n));
}

static void compress(uint32_t st[8], const uint8_t b[64]) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
               (uint32_t)b[4 * i + 2] << 8 | (uint32_t)b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = st[0], bb = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6],
             h = st[7];
    for (int i = 0; i < 64; i++) {
        const uint32_t t1 =
            h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k256[i] + w[i];
        const uint32_t t2 =
            (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = bb, bb = a, a = t1 + t2;
    }
    st[0] += a, st[1] += bb, st[2] += c, st[3] += d;
    st[4] += e, st[5] += f, st[6] += g, st[7] += h;
}

void eng_sha256_init(eng_sha256 *h) {
    static const uint32_t iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(h->state, iv, sizeof iv);
    h->bytes = 0;
    h->used = 0;
}

void eng_sha256_update(eng_sha256 *h, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    h->bytes += n;
    while (n > 0) {
        if (h->used == 0 && n >= 64) { /* whole blocks straight from the input */
            compress(h->state, p);
            p += 64, n -= 64;
            continue;
        }
        const size_t take = n < 64 - h->used ? n : 64 - h->used;
        memcpy(h->block + h->used, p, take);
        h->used += take, p += take, n -= take;
        if (h->used == 64) {
            compress(h->state, h->block);
            h->used = 0;
        }
    }
}

void eng_sha256_final(eng_sha256 *h, uint8_t digest[32]) {
    const uint64_t bits = h->bytes * 8;
    uint8_t pad[72] = {0x80};
    const size_t npad = (h->used < 56 ? 56 : 120) - h->used;
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    eng_sha256_update(h, pad, npad);
    eng_sha256_update(h, len, 8);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(h->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(h->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(h->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)h->state[i];
    }
}

void eng_sha256_hex(char hex[65], const uint8_t digest[32]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

int eng_sha256_file_hex(char hex[65], const char *path, eng_err *err) {
    int rc = ENG_OK;
    enum { PIECE = 1 << 20 };
    uint8_t *buf = NULL, digest[32];
    eng_sha256 h;
    FILE *f = fopen(path, "rb");
    hex[0] = '\0';
    if (f == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "eng_sha256_file_hex: cannot open %s: %s", path,
                         strerror(errno));
        goto done;
    }
    if ((buf = (uint8_t *)malloc(PIECE)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "eng_sha256_file_hex: out of memory");
        goto done;
    }
    eng_sha256_init(&h);
    for (;;) {
        const size_t got = fread(buf, 1, PIECE, f);
        eng_sha256_update(&h, buf, got);
        if (got < PIECE) break;
    }
    if (ferror(f)) {
        rc = eng_err_set(err, ENG_E_IO, "eng_sha256_file_hex: cannot read %s", path);
        goto done;
    }
    eng_sha256_final(&h, digest);
    eng_sha256_hex(hex, digest);
done:
    free(buf);
    if (f != NULL) fclose(f);
    return rc;
}
