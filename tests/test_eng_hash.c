/* test_eng_hash.c: eng.hash.* — SHA-256 against the FIPS 180-4 / NIST example digests, split
 * updates of every size, and a file (the same digest as in memory; a missing file's error). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_hash.h"
#include "eng_test.h"

static void digest_hex(char hex[65], const void *data, size_t n) {
    eng_sha256 h;
    uint8_t d[32];
    eng_sha256_init(&h);
    eng_sha256_update(&h, data, n);
    eng_sha256_final(&h, d);
    eng_sha256_hex(hex, d);
}

static int test_vectors(void) {
    char hex[65];
    digest_hex(hex, "", 0);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    digest_hex(hex, "abc", 3);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    digest_hex(hex, two, strlen(two));
    CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    /* one million 'a', fed in uneven pieces */
    enum { N = 1000000 };
    char *a = (char *)malloc(N);
    CHECK(a != NULL);
    memset(a, 'a', N);
    eng_sha256 h;
    uint8_t d[32];
    eng_sha256_init(&h);
    for (size_t off = 0, piece = 1; off < N; off += piece, piece = piece % 131 + 7)
        eng_sha256_update(&h, a + off, off + piece > N ? N - off : piece);
    eng_sha256_final(&h, d);
    eng_sha256_hex(hex, d);
    free(a);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
    return 0;
}

/* Every split point of a 200-byte message gives the one-shot digest (block edges, padding at
 * 55/56/64 bytes). */
static int test_splits(void) {
    uint8_t msg[200];
    char want[65], got[65];
    for (int i = 0; i < 200; i++)
        msg[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= 200; len += 1) {
        digest_hex(want, msg, len);
        for (size_t cut = 0; cut <= len; cut += 13) {
            eng_sha256 h;
            uint8_t d[32];
            eng_sha256_init(&h);
            eng_sha256_update(&h, msg, cut);
            eng_sha256_update(&h, msg + cut, len - cut);
            eng_sha256_final(&h, d);
            eng_sha256_hex(got, d);
            CHECK(strcmp(got, want) == 0);
        }
    }
    return 0;
}

static int test_file(void) {
    char path[600], hex[65];
    eng_err err = {0};
    snprintf(path, sizeof path, "%s/eng_hash_abc.txt", eng_test_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite("abc", 1, 3, f) == 3);
    CHECK(fclose(f) == 0);
    CHECK_OK(eng_sha256_file_hex(hex, path, &err), &err);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    snprintf(path, sizeof path, "%s/eng_hash_missing.txt", eng_test_tmpdir());
    remove(path);
    CHECK_EQ_I64(eng_sha256_file_hex(hex, path, &err), ENG_E_IO);
    CHECK_CONTAINS(err.msg, "eng_hash_missing.txt");
    return 0;
}

static const eng_test_case cases[] = {
    {"vectors", test_vectors},
    {"splits", test_splits},
    {"file", test_file},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
