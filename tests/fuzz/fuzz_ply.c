/* fuzz_ply.c: libFuzzer harness for the viewer's PLY reader (vw_ply_read_memory). Returning an
 * error is correct behaviour; a crash, leak, UB report, an error without a message, or a mesh
 * that breaks the reader's promises (an index >= the vertex count, a non-finite coordinate, a
 * normal that is neither unit nor zero) is the bug. Build with -DENG_FUZZ=ON (clang); see
 * tests/viewer.cmake. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vw_ply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vw_ply m = {0};
    eng_err err = {0};
    const int rc = vw_ply_read_memory(&m, data, size, "fuzz.ply", &err);
    if (rc != ENG_OK) {
        if (err.code != rc || err.msg[0] == '\0' || m.pos != NULL || m.tris != NULL) abort();
        return 0;
    }
    if (m.n_verts < 0 || m.n_tris < 0) abort();
    for (int64_t i = 0; i < m.n_tris * 3; i++)
        if ((int64_t)m.tris[i] >= m.n_verts) abort();
    for (int64_t i = 0; i < m.n_verts; i++) {
        double nn = 0;
        for (int c = 0; c < 3; c++) {
            if (!isfinite(m.pos[3 * i + c]) || !isfinite(m.normals[3 * i + c])) abort();
            nn += (double)m.normals[3 * i + c] * m.normals[3 * i + c];
        }
        if (nn != 0 && fabs(nn - 1) > 1e-3) abort();
        volatile uint8_t sink = m.colors[3 * i];
        (void)sink;
    }
    vw_ply_free(&m);
    return 0;
}
