/* eng_test_ctx.h: a context for op tests (header only): `threads` pool threads, the scheduler
 * pumped by the caller (no dispatcher thread). NULL (with the reason on stderr) on failure. */
#ifndef ENG_TEST_CTX_H
#define ENG_TEST_CTX_H

#include <stdio.h>

#include "eng.h"

static inline eng_ctx *eng_test_ctx(int threads) {
    eng_ctx_params p;
    eng_ctx *ctx = NULL;
    eng_err err = {0};
    eng_ctx_params_init(&p);
    p.threads = threads;
    p.threaded_scheduler = 0;
    if (eng_ctx_create(&ctx, &p, &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
    return ctx;
}

#endif /* ENG_TEST_CTX_H */
