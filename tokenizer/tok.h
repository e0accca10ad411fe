/* tok.h: the CLIP byte-level BPE tokenizer (prefix tok_), with id parity with OpenAI's reference
 * (clip/simple_tokenizer.py, used by SD 1.x, 2.x and XL through their text encoders).
 *
 *   tok_clip *t = NULL; eng_err err = {0};
 *   if (tok_clip_load(&t, "bpe_simple_vocab_16e6.txt.gz", &err) != ENG_OK) ... err.msg ...
 *   int32_t ids[TOK_CLIP_CONTEXT]; float w[TOK_CLIP_CONTEXT];
 *   tok_clip_encode_prompt(t, ids, w, NULL, TOK_CLIP_CONTEXT, TOK_CLIP_EOS, TOK_PROMPT_WEIGHTS,
 *                          "a (red:1.3) fox", 15, &err);  // SD1: pad with <|endoftext|>
 *   tok_clip_free(t);
 *
 * Vocabulary: either layout users have. OpenAI's `bpe_simple_vocab_16e6.txt.gz` (the merges; the
 * vocabulary is built from them as the reference does: 256 byte tokens, the same with "</w>",
 * one token per merge, then <|startoftext|> and <|endoftext|>), or Hugging Face's `vocab.json` +
 * `merges.txt` (diffusers folders `tokenizer/`, `tokenizer_2/`). Files are untrusted: sizes,
 * JSON shape, ids, merge lines and duplicates are checked and an error names the file and line.
 * With the CLIP files <|startoftext|> is 49406 and <|endoftext|> is 49407.
 *
 * What encoding does, in the reference's order:
 *  1. ftfy-style fixes, as ftfy.fix_text applies them (per line, repeated until nothing changes):
 *     HTML entities ending in ';' (ftfy's rule: not in a line holding '<', nor in any line after
 *     it), C1 controls read as Windows-1252, Latin ligatures (ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ Ĳ ĳ ŉ Ǆ..ǌ Ǳ..ǳ)
 *     split, full-width and half-width forms (U+FF01..U+FFEF) to their NFKC form and U+3000 to a
 *     space, curly quotes (U+02BC, U+2018..U+201B, U+201C..U+201F) to straight ones, line
 *     breaks to '\n', ANSI terminal escapes and control characters (U+0000..U+0008, U+000B,
 *     U+000E..U+001F, U+007F, U+206A..U+206F, U+FEFF, U+FFF9..U+FFFC) removed, NFC. Not done:
 *     ftfy's mojibake repair (fix_encoding: "cafÃ©" stays as written). An input escaped more
 *     than TOK_FTFY_MAX_PASSES levels deep keeps the rest of its escapes.
 *  2. Python's html.unescape twice (the whole HTML5 entity table, numeric references with
 *     Python's rules for invalid code points), strip, runs of whitespace to one space, Python's
 *     str.lower() (full mapping: 'İ' -> "i̇", final sigma).
 *  3. The reference's pre-tokenizer regex (<|startoftext|>, <|endoftext|>, 's 't 're 've 'm 'll
 *     'd, runs of letters, single digits, runs of other non-space characters) with Unicode
 *     classes from utf8proc; each piece's UTF-8 bytes go through byte-level BPE by merge rank.
 * Invalid UTF-8 (including overlong forms, surrogates and code points above U+10FFFF) is an
 * error (ENG_E_INVALID_ARG naming the byte offset), never replaced or dropped. Texts longer than
 * TOK_MAX_TEXT_BYTES are refused. Unicode data is utf8proc's (Unicode 15.0 in Debian 12's 2.8):
 * letters and digits assigned later (which the reference's `regex` module knows) are tokenized
 * as symbols; everything assigned by Unicode 14 (Python 3.11's lower() and NFC) matches. Long
 * words take an O(n log n) BPE that gives the reference's result.
 *
 * Prompt weights (tok_prompt_parse, tok_clip_encode_prompt with TOK_PROMPT_WEIGHTS) follow
 * AUTOMATIC1111's parse_prompt_attention: "(a)" multiplies by 1.1, "[a]" divides by 1.1,
 * "(a:1.3)" multiplies by 1.3, nesting multiplies, unclosed brackets close at the end, "\(" "\)"
 * "\[" "\]" "\\" are literal (a lone '\' is dropped, as there), runs of equal weight are merged
 * and each run is tokenized on its own. Not done: "BREAK" (read as a word), chunks of 75 tokens
 * beyond the first (the prompt is truncated). A weight that Python's float() would reject (e.g.
 * "(a:1.2.3)") is read as text instead of raising.
 *
 * Ownership: arrays returned through pointer-to-pointer outputs are the caller's; free them with
 * tok_free(). Threads: a loaded tok_clip is immutable apart from its BPE cache, which a mutex
 * guards, so one tokenizer may encode from any number of threads at once. Everything else here
 * is a pure function. */
#ifndef TOK_H
#define TOK_H

#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    TOK_CLIP_CONTEXT = 77,   /* the text encoders' context: start + 75 tokens + end */
    TOK_CLIP_BOS = 49406,    /* <|startoftext|> in the CLIP vocabulary */
    TOK_CLIP_EOS = 49407,    /* <|endoftext|>: also SD1's pad token */
    TOK_CLIP_PAD_ZERO = 0,   /* SD2 / OpenCLIP / SDXL tokenizer_2 pad with id 0 ("!") */
    TOK_FTFY_MAX_PASSES = 64 /* ftfy repeats its fixes until nothing changes; we stop here */
};

/* Longest text accepted by the encoders and tok_clean_text (bytes of UTF-8). */
#define TOK_MAX_TEXT_BYTES ((size_t)1 << 20)
/* Largest vocabulary file accepted (bytes; for the .gz, once decompressed). */
#define TOK_MAX_FILE_BYTES ((size_t)64 << 20)
/* The OpenAI file holds more lines than CLIP uses; like the reference we read this many merges
 * (49152 - 256 - 2), and Hugging Face's CLIPTokenizer reads at most as many from merges.txt. */
#define TOK_CLIP_MERGES 48894

typedef struct tok_clip tok_clip; /* opaque; immutable after loading (cache aside) */

/* ---- loading ------------------------------------------------------------------------------ */

/* Loads a vocabulary from `path`: a file (OpenAI's .txt.gz, or its decompressed text), a
 * vocab.json (any *.json) or merges.txt with the other file beside it, a folder holding
 * vocab.json + merges.txt, or a diffusers checkpoint folder with tokenizer/ inside.
 * On ENG_OK the caller owns *out (tok_clip_free). Errors: ENG_E_IO (missing or unreadable, the
 * path named), ENG_E_FORMAT (file and line named), ENG_E_OOM. */
int tok_clip_load(tok_clip **out, const char *path, eng_err *err);
/* OpenAI's layout: `path` is bpe_simple_vocab_16e6.txt.gz (gzip) or the same text uncompressed.
 * The first line is a header; the next TOK_CLIP_MERGES lines (or all, if fewer) are merges. */
int tok_clip_load_openai(tok_clip **out, const char *path, eng_err *err);
/* Hugging Face's layout: vocab.json ({"token": id, ...}, ids 0..n-1 each once) and merges.txt
 * ("#version" header line, then "a b" per line). Every merge's parts and result must be tokens
 * of the vocabulary, as must the 512 byte tokens and both special tokens. */
int tok_clip_load_hf(tok_clip **out,
                     const char *vocab_json_path,
                     const char *merges_path,
                     eng_err *err);
/* The same from memory (the fuzz entry points). `name` labels error messages (may be NULL). The
 * OpenAI data may be gzip or plain text. The buffers are only read during the call. */
int tok_clip_load_openai_memory(
    tok_clip **out, const void *data, size_t size, const char *name, eng_err *err);
int tok_clip_load_hf_memory(tok_clip **out,
                            const char *vocab_json,
                            size_t vocab_len,
                            const char *merges,
                            size_t merges_len,
                            const char *name,
                            eng_err *err);
void tok_clip_free(tok_clip *t); /* NULL is a no-op */

/* Where the default vocabulary is, for tools: `flag_path` (e.g. --vocab) when not NULL/empty,
 * else $ENG_CLIP_VOCAB when set and not empty (both must exist: no fallback past a path the
 * user gave), else $ENGINE_DATA_DIR/clip/bpe_simple_vocab_16e6.txt.gz, else the same under
 * `builtin_data_dir` (the build's ENG_DATA_DIR; may be NULL). Writes the path to out[cap].
 * Errors: ENG_E_IO naming what was tried and how to pass --vocab; ENG_E_INVALID_ARG when the
 * path does not fit in cap. */
int tok_clip_find_vocab(
    char *out, size_t cap, const char *flag_path, const char *builtin_data_dir, eng_err *err);

/* ---- queries ------------------------------------------------------------------------------ */

int32_t tok_clip_vocab_size(const tok_clip *t);
int32_t tok_clip_bos_id(const tok_clip *t); /* <|startoftext|>: 49406 with CLIP's files */
int32_t tok_clip_eos_id(const tok_clip *t); /* <|endoftext|>: 49407 */
int64_t tok_clip_merge_count(const tok_clip *t);
/* The token's text as stored (byte-level form, "</w>" on word ends); NULL if id is out of range.
 * Borrowed from t. */
const char *tok_clip_token(const tok_clip *t, int32_t id);
/* The id of a token's text (byte-level form), or -1. */
int32_t tok_clip_token_id(const tok_clip *t, const char *token);

/* ---- encoding ----------------------------------------------------------------------------- */

/* Encodes text[len] (UTF-8) without start/end tokens and without truncation. On ENG_OK *ids is
 * a new array of *n_ids ids (NULL when there are none; free with tok_free). Errors:
 * ENG_E_INVALID_ARG (invalid UTF-8 with its byte offset, text over TOK_MAX_TEXT_BYTES), ENG_E_OOM. */
int tok_clip_encode(
    const tok_clip *t, int32_t **ids, int64_t *n_ids, const char *text, size_t len, eng_err *err);

enum {
    TOK_PROMPT_PLAIN = 0,  /* the text as it is, every weight 1.0 */
    TOK_PROMPT_WEIGHTS = 1 /* parse A1111 emphasis: (a) [a] (a:1.3) \( */
};

/* Encodes a prompt for the text encoder: ids[max_len] = start, the prompt's tokens (the first
 * max_len - 2 of them), end, then pad_id up to max_len (the reference's truncation keeps the end
 * token last). weights[max_len] (may be NULL) gets each token's weight, 1.0 for start, end and
 * padding. *n_prompt (may be NULL) gets the prompt's token count before truncation, so a caller
 * can warn that n_prompt > max_len - 2 tokens were cut. max_len >= 2.
 * Errors: as tok_clip_encode; ENG_E_INVALID_ARG for max_len < 2 or unknown flags. */
int tok_clip_encode_prompt(const tok_clip *t,
                           int32_t *ids,
                           float *weights,
                           int64_t *n_prompt,
                           int max_len,
                           int32_t pad_id,
                           unsigned flags,
                           const char *text,
                           size_t len,
                           eng_err *err);

/* The reference's decode: token texts joined, mapped back to bytes, "</w>" to a space. On ENG_OK
 * *text is a new NUL-terminated string of *len bytes (free with tok_free); each byte that is not
 * part of valid UTF-8 becomes U+FFFD. Errors: ENG_E_INVALID_ARG (an id out of range). */
int tok_clip_decode(
    const tok_clip *t, char **text, size_t *len, const int32_t *ids, int64_t n_ids, eng_err *err);

/* ---- the pieces, for tests and tools ------------------------------------------------------ */

/* The cleaning of step 1-2 above (what the pre-tokenizer sees). On ENG_OK *out is a new
 * NUL-terminated UTF-8 string of *out_len bytes (free with tok_free). Errors: as tok_clip_encode. */
int tok_clean_text(char **out, size_t *out_len, const char *text, size_t len, eng_err *err);

/* One run of an A1111 prompt: its text (escapes resolved, NUL-terminated) and weight. */
typedef struct tok_span {
    const char *text; /* points into the same allocation as the array */
    size_t len;
    double weight; /* as A1111 computes it, in double: ((a)) is 1.1 * 1.1 */
} tok_span;

/* Splits a prompt into runs of equal weight (A1111's parse_prompt_attention). On ENG_OK *spans is
 * one allocation holding *n_spans spans and their texts (free with tok_free); an empty prompt
 * gives one empty span of weight 1.0. Errors: ENG_E_INVALID_ARG (invalid UTF-8, too long). */
int tok_prompt_parse(
    tok_span **spans, int64_t *n_spans, const char *text, size_t len, eng_err *err);

/* Frees what the functions above return. NULL is a no-op. */
void tok_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* TOK_H */
