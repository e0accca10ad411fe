/* fuzz_tokenizer.c: libFuzzer harness for the tokenizer's untrusted inputs. The first byte
 * picks what the rest is: a prompt (cleaned, encoded, encoded for the text encoder with A1111
 * weights, parsed into runs, decoded back), OpenAI's vocabulary text (or gzip), or Hugging Face's
 * vocab.json and merges.txt (split at the first NUL byte). Prompts use the real vocabulary when
 * the data folder has it (ENGINE_DATA_DIR or the build's), else a small one built here.
 * Returning an error is correct behaviour; a crash, leak, UB report or an error without a
 * message is the bug. Build with -DENG_FUZZ=ON (clang); see tests/tokenizer.cmake. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loaded once and kept for the process (a fuzz harness may; library code may not). */
static tok_clip *shared_tok(void) {
    static tok_clip *t = NULL;
    static int tried = 0;
    if (!tried) {
        char path[1024];
        eng_err err = {0};
        const char *dir = getenv("ENGINE_DATA_DIR");
#ifdef ENG_TEST_DATA_DIR
        if (dir == NULL || dir[0] == '\0') dir = ENG_TEST_DATA_DIR;
#endif
        tried = 1;
        snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt.gz",
                 dir != NULL ? dir : "../shared/data");
        if (tok_clip_load(&t, path, &err) != ENG_OK) {
            static const char small[] =
                "#version: 0.2\nt h\nth e</w>\na n\nan d</w>\nc a\nca t</w>\n"
                "( (\n) )\n";
            if (tok_clip_load_openai_memory(&t, small, sizeof small - 1, "small", &err) != ENG_OK)
                abort();
        }
    }
    return t;
}

static void check_err(int rc, const eng_err *err) {
    if (rc != ENG_OK && (err->code != rc || err->msg[0] == '\0')) abort();
}

static void fuzz_prompt(const char *text, size_t len) {
    const tok_clip *t = shared_tok();
    const int32_t n_vocab = tok_clip_vocab_size(t);
    eng_err err = {0};
    int32_t *ids = NULL, p[TOK_CLIP_CONTEXT];
    float w[TOK_CLIP_CONTEXT];
    int64_t n = 0, n_prompt = 0;
    int rc = tok_clip_encode(t, &ids, &n, text, len, &err);
    check_err(rc, &err);
    if (rc == ENG_OK) {
        for (int64_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= n_vocab) abort();
        char *back = NULL;
        size_t back_len = 0;
        rc = tok_clip_decode(t, &back, &back_len, ids, n, &err);
        if (rc != ENG_OK || strlen(back) != back_len) abort();
        tok_free(back);
    }
    tok_free(ids);
    rc = tok_clip_encode_prompt(t, p, w, &n_prompt, TOK_CLIP_CONTEXT, 0, TOK_PROMPT_WEIGHTS, text,
                                len, &err);
    check_err(rc, &err);
    if (rc == ENG_OK) {
        if (p[0] != tok_clip_bos_id(t) || n_prompt < 0) abort();
        for (int i = 0; i < TOK_CLIP_CONTEXT; i++)
            if (p[i] < 0 || p[i] >= n_vocab || w[i] != w[i]) abort();
    }
    char *clean = NULL;
    size_t clean_len = 0;
    rc = tok_clean_text(&clean, &clean_len, text, len, &err);
    check_err(rc, &err);
    if (rc == ENG_OK && strlen(clean) != clean_len) abort(); /* ftfy removes U+0000 */
    tok_free(clean);
    tok_span *spans = NULL;
    rc = tok_prompt_parse(&spans, &n, text, len, &err);
    check_err(rc, &err);
    if (rc == ENG_OK) {
        if (n < 1) abort();
        for (int64_t i = 0; i < n; i++) /* a run may hold the prompt's NUL bytes */
            if (spans[i].text[spans[i].len] != '\0') abort();
    }
    tok_free(spans);
}

/* A vocabulary that loaded must encode. */
static void use_vocab(tok_clip *t) {
    static const char text[] = "a cat, (the:1.2) fox &amp; \xc3\xa9t\xc3\xa9 <|endoftext|> 123";
    int32_t *ids = NULL;
    int64_t n = 0;
    eng_err err = {0};
    if (tok_clip_encode(t, &ids, &n, text, sizeof text - 1, &err) != ENG_OK) abort();
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok_clip_vocab_size(t)) abort();
    tok_free(ids);
    tok_clip_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const int mode = data[0] % 4;
    /* An exact-size copy, so ASan sees any read past the end. */
    char *rest = malloc(size);
    if (rest == NULL) return 0;
    memcpy(rest, data + 1, size - 1);
    const size_t n = size - 1;
    eng_err err = {0};
    tok_clip *t = NULL;
    if (mode <= 1) {
        fuzz_prompt(rest, n);
    } else if (mode == 2) {
        const int rc = tok_clip_load_openai_memory(&t, rest, n, "fuzz", &err);
        check_err(rc, &err);
        if (rc == ENG_OK) use_vocab(t);
    } else {
        const char *nul = memchr(rest, '\0', n);
        const size_t vlen = nul != NULL ? (size_t)(nul - rest) : n;
        const char *merges = nul != NULL ? nul + 1 : rest + n;
        const int rc =
            tok_clip_load_hf_memory(&t, rest, vlen, merges, n - vlen - (nul != NULL), "fuzz", &err);
        check_err(rc, &err);
        if (rc == ENG_OK) use_vocab(t);
    }
    free(rest);
    return 0;
}
