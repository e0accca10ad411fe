/* fuzz_safetensors.c: libFuzzer harness for the safetensors reader (eng_safetensors_open_memory).
 * Every query and view of an accepted file is exercised and every data byte read, so ASan sees
 * any pointer outside the input. Returning an error is correct behaviour; a crash, leak or UB
 * report is the bug. Build with -DENG_FUZZ=ON (clang); see tests/safetensors.cmake. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    eng_safetensors *f = NULL;
    eng_err err = {0};
    /* An exact-size copy: libFuzzer's buffer is already exact, but this keeps the harness honest
     * if it is ever driven from a larger buffer. */
    uint8_t *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL) return 0;
    if (size > 0) memcpy(copy, data, size);
    if (eng_safetensors_open_memory(&f, copy, size, &err) == ENG_OK) {
        volatile uint8_t sink = 0;
        for (int64_t i = 0; i < eng_safetensors_count(f); i++) {
            const eng_safetensors_info *t = eng_safetensors_info_at(f, i);
            const uint8_t *p = t->data;
            if (t->nbytes > 0) sink ^= p[0] ^ p[t->nbytes - 1];
            if (eng_safetensors_find(f, t->name) != t) abort(); /* lookup must find it */
            eng_tensor view;
            (void)eng_safetensors_view(&view, f, t->name, &err);
        }
        for (int64_t i = 0; i < eng_safetensors_metadata_count(f); i++) {
            const char *k = NULL, *v = NULL;
            eng_safetensors_metadata_at(f, i, &k, &v);
            if (eng_safetensors_metadata_get(f, k) != v) abort();
        }
        (void)sink;
        eng_safetensors_close(f);
    } else if (err.code == ENG_OK || err.msg[0] == '\0') {
        abort(); /* every failure must say why */
    }
    free(copy);
    return 0;
}
