/* tok_vocab.c: loading the CLIP vocabulary in OpenAI's layout (bpe_simple_vocab_16e6.txt.gz)
 * and Hugging Face's (vocab.json + merges.txt), with every check an untrusted file needs: size
 * limits, gzip integrity, UTF-8, JSON shape, ids, merge lines, duplicates, and tokens that a
 * merge names but the vocabulary lacks. Each error names the file and, where there is one, the
 * line. The result is the hash tables tok_clip.c encodes with. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "tok.h"
#include "tok_impl.h"

/* ---- bytes_to_unicode -------------------------------------------------------------------- */

/* Bytes that stand for themselves: printable ASCII and Latin-1 except the soft hyphen. */
static int byte_keeps_itself(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

int32_t tok_byte_char(int b) {
    if (byte_keeps_itself(b)) return b;
    int k = 0; /* the others get 256, 257, ... in byte order */
    for (int i = 0; i < b; i++)
        k += !byte_keeps_itself(i);
    return 256 + k;
}

int tok_char_byte(int32_t c) {
    if (c >= 0 && c < 256) return byte_keeps_itself((int)c) ? (int)c : -1;
    if (c >= 256 && c < 256 + 68) {
        int k = (int)(c - 256);
        for (int b = 0; b < 256; b++)
            if (!byte_keeps_itself(b) && k-- == 0) return b;
    }
    return -1;
}

int tok_byte_order(int i) {
    for (int b = 0, k = 0; b < 256; b++) /* the 188 that keep themselves come first */
        if (byte_keeps_itself(b) && k++ == i) return b;
    for (int b = 0, k = 188; b < 256; b++)
        if (!byte_keeps_itself(b) && k++ == i) return b;
    return -1;
}

/* ---- hash tables -------------------------------------------------------------------------- */

uint64_t tok_hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static uint64_t hash_pair(uint64_t key) {
    key ^= key >> 33; /* the splitmix64 finalizer */
    key *= 0xff51afd7ed558ccdu;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53u;
    key ^= key >> 33;
    return key;
}

int32_t tok_vocab_find(const tok_clip *t, const char *text, size_t len) {
    size_t i = (size_t)tok_hash_bytes(text, len) & t->str_mask;
    for (;; i = (i + 1) & t->str_mask) {
        const int32_t id = t->str_slots[i];
        if (id < 0) return -1;
        if (t->tok_len[id] == len && memcmp(t->blob + t->tok_off[id], text, len) == 0) return id;
    }
}

const tok_merge_slot *tok_merge_find(const tok_clip *t, int32_t left, int32_t right) {
    const uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = (size_t)hash_pair(key) & t->pair_mask;
    for (;; i = (i + 1) & t->pair_mask) {
        const tok_merge_slot *s = &t->pairs[i];
        if (s->key == key) return s;
        if (s->key == TOK_SLOT_EMPTY) return NULL;
    }
}

static size_t pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n)
        p *= 2;
    return p;
}

/* A loader's state: the tokenizer being built plus the file names for messages. */
typedef struct loader {
    tok_clip *t;
    size_t blob_len, blob_cap;
    const char *who; /* the public function's name */
} loader;

static int oom(const loader *L, eng_err *err) {
    return eng_err_set(err, ENG_E_OOM, "%s: out of memory", L->who);
}

/* Sizes the vocabulary for n tokens and the merge table for n_merges merges. */
static int tables_init(loader *L, int64_t n, int64_t n_merges, eng_err *err) {
    tok_clip *t = L->t;
    if (n < 1 || n > INT32_MAX / 4 || n_merges < 0 || n_merges > INT32_MAX / 4)
        return eng_err_set(err, ENG_E_FORMAT, "%s: %lld tokens is out of range", L->who,
                           (long long)n);
    const size_t slots = pow2_at_least((size_t)n * 2), pslots = pow2_at_least((size_t)n_merges * 2);
    t->n_tokens = (int32_t)n;
    t->tok_off = malloc((size_t)n * sizeof *t->tok_off);
    t->tok_len = malloc((size_t)n * sizeof *t->tok_len);
    t->str_slots = malloc(slots * sizeof *t->str_slots);
    t->pairs = malloc(pslots * sizeof *t->pairs);
    if (t->tok_off == NULL || t->tok_len == NULL || t->str_slots == NULL || t->pairs == NULL)
        return oom(L, err);
    for (int64_t i = 0; i < n; i++)
        t->tok_len[i] = UINT32_MAX; /* not set yet */
    for (size_t i = 0; i < slots; i++)
        t->str_slots[i] = -1;
    for (size_t i = 0; i < pslots; i++)
        t->pairs[i].key = TOK_SLOT_EMPTY;
    t->str_mask = slots - 1;
    t->pair_mask = pslots - 1;
    return ENG_OK;
}

/* Sets token `id` to a[alen] + b[blen]. Returns ENG_OK, ENG_E_OOM, or 1 when that text is
 * already token *other. */
static int token_set(
    loader *L, int32_t id, const char *a, size_t alen, const char *b, size_t blen, int32_t *other) {
    tok_clip *t = L->t;
    const size_t len = alen + blen;
    if (len > UINT32_MAX - 1) return ENG_E_OOM;
    if (len + 1 > L->blob_cap - L->blob_len) {
        size_t cap = L->blob_cap != 0 ? L->blob_cap : 1 << 16;
        while (len + 1 > cap - L->blob_len)
            cap *= 2;
        char *blob = realloc(t->blob, cap);
        if (blob == NULL) return ENG_E_OOM;
        t->blob = blob;
        L->blob_cap = cap;
    }
    char *dst = t->blob + L->blob_len;
    if (alen > 0) memcpy(dst, a, alen);
    if (blen > 0) memcpy(dst + alen, b, blen);
    dst[len] = '\0';
    const int32_t found = tok_vocab_find(t, dst, len);
    if (found >= 0) {
        *other = found;
        return 1;
    }
    t->tok_off[id] = L->blob_len;
    t->tok_len[id] = (uint32_t)len;
    L->blob_len += len + 1;
    size_t i = (size_t)tok_hash_bytes(dst, len) & t->str_mask;
    while (t->str_slots[i] >= 0)
        i = (i + 1) & t->str_mask;
    t->str_slots[i] = id;
    return ENG_OK;
}

/* Adds merge (left, right) -> result at `rank`; 1 if the pair is already there. */
static int merge_add(tok_clip *t, int32_t left, int32_t right, int32_t result, int32_t rank) {
    const uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = (size_t)hash_pair(key) & t->pair_mask;
    for (; t->pairs[i].key != TOK_SLOT_EMPTY; i = (i + 1) & t->pair_mask)
        if (t->pairs[i].key == key) return 1;
    t->pairs[i].key = key;
    t->pairs[i].rank = rank;
    t->pairs[i].result = result;
    t->n_merges++;
    return ENG_OK;
}

/* The byte tokens and the special tokens, which both layouts must have. */
static int resolve_fixed(loader *L, const char *file, eng_err *err) {
    tok_clip *t = L->t;
    for (int b = 0; b < 256; b++) {
        char s[8];
        const size_t n = tok_utf8_put(s, tok_byte_char(b));
        memcpy(s + n, "</w>", 4);
        t->byte_id[b] = tok_vocab_find(t, s, n);
        t->byte_end[b] = tok_vocab_find(t, s, n + 4);
        if (t->byte_id[b] < 0 || t->byte_end[b] < 0) {
            s[n + (t->byte_id[b] < 0 ? 0 : 4)] = '\0';
            return eng_err_set(err, ENG_E_FORMAT,
                               "%s: %s: the byte token \"%s\" (byte 0x%02X) is missing from the "
                               "vocabulary",
                               L->who, file, s, (unsigned)b);
        }
    }
    t->bos = tok_vocab_find(t, "<|startoftext|>", 15);
    t->eos = tok_vocab_find(t, "<|endoftext|>", 13);
    if (t->bos < 0 || t->eos < 0) {
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s: the special token %s is missing", L->who,
                           file, t->bos < 0 ? "<|startoftext|>" : "<|endoftext|>");
    }
    return ENG_OK;
}

/* ---- merge lines -------------------------------------------------------------------------- */

/* One line of text: [p, p + len). */
typedef struct line {
    const char *p;
    size_t len;
} line;

/* Splits a merge line at Python whitespace (what str.split() does) into exactly two parts. */
static int merge_split(line *a, line *b, const line *l) {
    line parts[3];
    int np = 0;
    size_t i = 0;
    while (i < l->len) {
        int32_t cp = 0;
        size_t n = tok_utf8_next(l->p, l->len, i, &cp);
        if (n == 0) return -1;
        if (tok_uni_is_py_space(cp)) {
            i += n;
            continue;
        }
        const size_t start = i;
        while (i < l->len) {
            n = tok_utf8_next(l->p, l->len, i, &cp);
            if (n == 0) return -1;
            if (tok_uni_is_py_space(cp)) break;
            i += n;
        }
        if (np == 3) return 4;
        parts[np].p = l->p + start;
        parts[np].len = i - start;
        np++;
    }
    if (np != 2) return np;
    *a = parts[0];
    *b = parts[1];
    return 2;
}

/* Splits text into lines at '\n' (as Python's split('\n')); a final empty line after the last
 * '\n' is not counted. *lines is malloc'ed. */
static int split_lines(line **lines, size_t *n_lines, const char *text, size_t len) {
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    line *v = malloc(n * sizeof *v);
    if (v == NULL) return ENG_E_OOM;
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '\n') {
            if (i == len && start == len && k > 0) break;
            v[k].p = text + start;
            v[k].len = i - start;
            k++;
            start = i + 1;
        }
    }
    *lines = v;
    *n_lines = k;
    return ENG_OK;
}

/* Line number (1-based) of byte offset `pos` in text. */
static size_t line_of(const char *text, size_t pos) {
    size_t n = 1;
    for (size_t i = 0; i < pos; i++)
        n += text[i] == '\n';
    return n;
}

static int
check_utf8(const loader *L, const char *file, const char *text, size_t len, eng_err *err) {
    for (size_t i = 0; i < len;) {
        int32_t cp;
        const size_t n = tok_utf8_next(text, len, i, &cp);
        if (n == 0) {
            return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%zu: invalid UTF-8 (byte 0x%02X)", L->who,
                               file, line_of(text, i), (unsigned)(unsigned char)text[i]);
        }
        i += n;
    }
    return ENG_OK;
}

static int
merge_line_error(const loader *L, const char *file, size_t line_no, int parts, eng_err *err) {
    if (parts < 0)
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%zu: invalid UTF-8", L->who, file, line_no);
    return eng_err_set(err, ENG_E_FORMAT,
                       "%s: %s:%zu: expected a merge \"left right\" (two tokens), found %s%d",
                       L->who, file, line_no, parts > 3 ? "more than " : "", parts > 3 ? 3 : parts);
}

/* Resolves merge `m` (rank) of line `line_no` whose parts are a and b: the parts and their
 * concatenation must be tokens; the pair must be new. */
static int merge_resolve(loader *L,
                         const char *file,
                         size_t line_no,
                         const line *a,
                         const line *b,
                         int32_t rank,
                         char **buf,
                         size_t *buf_cap,
                         eng_err *err) {
    tok_clip *t = L->t;
    const int32_t ia = tok_vocab_find(t, a->p, a->len), ib = tok_vocab_find(t, b->p, b->len);
    const line *missing = ia < 0 ? a : ib < 0 ? b : NULL;
    if (missing != NULL) {
        return eng_err_set(err, ENG_E_FORMAT,
                           "%s: %s:%zu: the merge names \"%.*s\", which is not in the vocabulary",
                           L->who, file, line_no, (int)ENG_MIN(missing->len, 64), missing->p);
    }
    const size_t len = a->len + b->len;
    if (len > *buf_cap) {
        char *nb = realloc(*buf, len);
        if (nb == NULL) return oom(L, err);
        *buf = nb;
        *buf_cap = len;
    }
    memcpy(*buf, a->p, a->len);
    memcpy(*buf + a->len, b->p, b->len);
    const int32_t ir = tok_vocab_find(t, *buf, len);
    if (ir < 0) {
        return eng_err_set(err, ENG_E_FORMAT,
                           "%s: %s:%zu: the merge's result \"%.*s\" is not in the vocabulary",
                           L->who, file, line_no, (int)ENG_MIN(len, 64), *buf);
    }
    if (merge_add(t, ia, ib, ir, rank) != ENG_OK) {
        return eng_err_set(err, ENG_E_FORMAT, "%s: %s:%zu: duplicate merge \"%.*s %.*s\"", L->who,
                           file, line_no, (int)ENG_MIN(a->len, 64), a->p, (int)ENG_MIN(b->len, 64),
                           b->p);
    }
    return ENG_OK;
}

/* ---- files -------------------------------------------------------------------------------- */

static int read_file(char **out, size_t *out_len, const char *path, const char *who, eng_err *err) {
    int rc = ENG_OK;
    FILE *f = NULL;
    char *buf = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: %s", who, path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: not a regular file", who, path);
        goto done;
    }
    if ((uint64_t)st.st_size > TOK_MAX_FILE_BYTES) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: %lld bytes is over the limit of %zu", who,
                         path, (long long)st.st_size, TOK_MAX_FILE_BYTES);
        goto done;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: %s", who, path, strerror(errno));
        goto done;
    }
    const size_t size = (size_t)st.st_size;
    buf = malloc(size + 1);
    if (buf == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory for %zu bytes", who, path, size);
        goto done;
    }
    if (fread(buf, 1, size, f) != size) {
        rc = eng_err_set(err, ENG_E_IO, "%s: %s: short read", who, path);
        goto done;
    }
    buf[size] = '\0';
    *out = buf;
    *out_len = size;
    buf = NULL;
done:
    free(buf);
    if (f != NULL) fclose(f);
    return rc;
}

/* Inflates gzip data (several members allowed) up to TOK_MAX_FILE_BYTES. */
static int gunzip(char **out,
                  size_t *out_len,
                  const unsigned char *data,
                  size_t size,
                  const char *file,
                  const char *who,
                  eng_err *err) {
    int rc = ENG_OK, zrc = Z_OK, inited = 0;
    z_stream z;
    size_t cap = size * 4 + 1024, len = 0;
    char *buf = NULL;
    memset(&z, 0, sizeof z);
    if (cap > TOK_MAX_FILE_BYTES + 1) cap = TOK_MAX_FILE_BYTES + 1;
    if ((buf = malloc(cap)) == NULL || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory", who, file);
        goto done;
    }
    inited = 1;
    z.next_in = (unsigned char *)(uintptr_t)data; /* zlib's API is not const; it only reads */
    while (1) {
        /* Feed at most 1 GiB at a time (avail_in is 32-bit). */
        if (z.avail_in == 0 && size > 0) {
            const size_t chunk = ENG_MIN(size, (size_t)1 << 30);
            z.avail_in = (uInt)chunk;
            size -= chunk;
        }
        if (len == cap) {
            if (cap > TOK_MAX_FILE_BYTES) {
                rc = eng_err_set(err, ENG_E_FORMAT,
                                 "%s: %s: decompresses to more than %zu bytes (not a vocabulary)",
                                 who, file, TOK_MAX_FILE_BYTES);
                goto done;
            }
            const size_t ncap = ENG_MIN(cap * 2, TOK_MAX_FILE_BYTES + 1);
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory", who, file);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        z.next_out = (unsigned char *)buf + len;
        z.avail_out = (uInt)ENG_MIN(cap - len, (size_t)1 << 30);
        const size_t before = z.avail_out;
        zrc = inflate(&z, Z_NO_FLUSH);
        len += before - z.avail_out;
        if (zrc == Z_STREAM_END) {
            if (z.avail_in == 0 && size == 0) break;
            if (inflateReset(&z) != Z_OK) zrc = Z_DATA_ERROR; /* next gzip member */
        }
        if (zrc == Z_BUF_ERROR && before > 0 && z.avail_in == 0 && size == 0) {
            rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: truncated gzip data", who, file);
            goto done;
        }
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR) {
            rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: not valid gzip data (%s)", who, file,
                             z.msg != NULL ? z.msg : "zlib error");
            goto done;
        }
    }
    if (len == cap) { /* room for the NUL */
        char *nb = realloc(buf, cap + 1);
        if (nb == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "%s: %s: out of memory", who, file);
            goto done;
        }
        buf = nb;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
done:
    if (inited) inflateEnd(&z);
    free(buf);
    return rc;
}

static int new_tok(tok_clip **t, const char *who, eng_err *err) {
    *t = calloc(1, sizeof **t);
    if (*t == NULL) return eng_err_set(err, ENG_E_OOM, "%s: out of memory", who);
    return ENG_OK;
}

/* ---- OpenAI's layout ---------------------------------------------------------------------- */

static int
load_openai_text(loader *L, const char *file, const char *text, size_t len, eng_err *err) {
    int rc = ENG_OK;
    line *lines = NULL, *parts = NULL;
    size_t n_lines = 0, buf_cap = 0;
    char *buf = NULL;
    if ((rc = check_utf8(L, file, text, len, err)) != ENG_OK) goto done;
    if (split_lines(&lines, &n_lines, text, len) != ENG_OK) {
        rc = oom(L, err);
        goto done;
    }
    const size_t n_merges = ENG_MIN(n_lines - 1, (size_t)TOK_CLIP_MERGES);
    if (n_merges == 0) {
        rc =
            eng_err_set(err, ENG_E_FORMAT, "%s: %s: no merges after the header line", L->who, file);
        goto done;
    }
    if ((parts = malloc(2 * n_merges * sizeof *parts)) == NULL) {
        rc = oom(L, err);
        goto done;
    }
    for (size_t m = 0; m < n_merges; m++) {
        const int np = merge_split(&parts[2 * m], &parts[2 * m + 1], &lines[m + 1]);
        if (np != 2) {
            rc = merge_line_error(L, file, m + 2, np, err);
            goto done;
        }
    }
    /* The reference's vocabulary: bytes, bytes + "</w>", one token per merge, the specials. */
    const int64_t n_tokens = 512 + (int64_t)n_merges + 2;
    if ((rc = tables_init(L, n_tokens, (int64_t)n_merges, err)) != ENG_OK) goto done;
    for (int32_t id = 0; id < (int32_t)n_tokens; id++) {
        char s[8];
        const char *a = s, *b = NULL;
        size_t alen = 0, blen = 0;
        int32_t other = -1;
        size_t line_no = 0;
        if (id < 512) {
            alen = tok_utf8_put(s, tok_byte_char(tok_byte_order(id % 256)));
            if (id >= 256) b = "</w>", blen = 4;
        } else if (id < 512 + (int32_t)n_merges) {
            const size_t m = (size_t)(id - 512);
            a = parts[2 * m].p, alen = parts[2 * m].len;
            b = parts[2 * m + 1].p, blen = parts[2 * m + 1].len;
            line_no = m + 2;
        } else {
            a = id == n_tokens - 2 ? "<|startoftext|>" : "<|endoftext|>";
            alen = strlen(a);
        }
        const int r = token_set(L, id, a, alen, b, blen, &other);
        if (r == ENG_E_OOM) {
            rc = oom(L, err);
            goto done;
        }
        if (r != ENG_OK) {
            if (line_no == 0 && other >= 512) line_no = (size_t)other - 510; /* a special */
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "%s: %s:%zu: token \"%.*s\" appears twice (ids %d and %d)", L->who,
                             file, line_no, (int)ENG_MIN(L->t->tok_len[other], 64),
                             L->t->blob + L->t->tok_off[other], (int)other, (int)id);
            goto done;
        }
    }
    for (size_t m = 0; m < n_merges; m++) {
        rc = merge_resolve(L, file, m + 2, &parts[2 * m], &parts[2 * m + 1], (int32_t)m, &buf,
                           &buf_cap, err);
        if (rc != ENG_OK) goto done;
    }
    rc = resolve_fixed(L, file, err);
done:
    free(buf);
    free(parts);
    free(lines);
    return rc;
}

static int load_openai_buffer(tok_clip **out,
                              const void *data,
                              size_t size,
                              const char *file,
                              const char *who,
                              eng_err *err) {
    int rc = ENG_OK;
    char *text = NULL;
    size_t len = 0;
    loader L = {NULL, 0, 0, who};
    const unsigned char *u = data;
    if ((rc = new_tok(&L.t, who, err)) != ENG_OK) goto done;
    if (size >= 2 && u[0] == 0x1F && u[1] == 0x8B) {
        if ((rc = gunzip(&text, &len, u, size, file, who, err)) != ENG_OK) goto done;
        rc = load_openai_text(&L, file, text, len, err);
    } else {
        if (size > TOK_MAX_FILE_BYTES) {
            rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: %zu bytes is over the limit of %zu", who,
                             file, size, TOK_MAX_FILE_BYTES);
            goto done;
        }
        rc = load_openai_text(&L, file, data, size, err);
    }
    if (rc != ENG_OK) goto done;
    if ((rc = tok_clip_cache_create(L.t, err)) != ENG_OK) goto done;
    *out = L.t;
    L.t = NULL;
done:
    tok_clip_free(L.t);
    free(text);
    return rc;
}

int tok_clip_load_openai_memory(
    tok_clip **out, const void *data, size_t size, const char *name, eng_err *err) {
    ENG_ASSERT(out != NULL && (data != NULL || size == 0));
    *out = NULL;
    return load_openai_buffer(out, data, size, name != NULL ? name : "(memory)",
                              "tok_clip_load_openai", err);
}

int tok_clip_load_openai(tok_clip **out, const char *path, eng_err *err) {
    char *data = NULL;
    size_t size = 0;
    ENG_ASSERT(out != NULL && path != NULL);
    *out = NULL;
    int rc = read_file(&data, &size, path, "tok_clip_load_openai", err);
    if (rc == ENG_OK) rc = load_openai_buffer(out, data, size, path, "tok_clip_load_openai", err);
    free(data);
    return rc;
}

/* ---- Hugging Face's layout ---------------------------------------------------------------- */

static int load_vocab_json(
    loader *L, const char *file, const char *json, size_t len, int64_t n_merges_max, eng_err *err) {
    int rc = ENG_OK;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (root == NULL) {
        const size_t pos =
            end != NULL && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s:%zu: not valid JSON", L->who, file,
                         line_of(json, pos));
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: expected a JSON object {\"token\": id, ...}",
                         L->who, file);
        goto done;
    }
    const int64_t n = cJSON_GetArraySize(root);
    if (n < 1) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: the vocabulary is empty", L->who, file);
        goto done;
    }
    if ((rc = tables_init(L, n, n_merges_max, err)) != ENG_OK) goto done;
    for (const cJSON *it = root->child; it != NULL; it = it->next) {
        const char *key = it->string != NULL ? it->string : "";
        const size_t klen = strlen(key);
        const double v = cJSON_IsNumber(it) ? it->valuedouble : -1.0;
        if (!cJSON_IsNumber(it) || !(v >= 0.0 && v < (double)n) || v != (double)(int64_t)v) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "%s: %s: token \"%.64s\": the id must be an integer from 0 to %lld",
                             L->who, file, key, (long long)n - 1);
            goto done;
        }
        const int32_t id = (int32_t)v;
        if (klen == 0 || !tok_utf8_valid(key, klen)) {
            rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: id %d: the token is %s", L->who, file,
                             (int)id, klen == 0 ? "empty" : "not valid UTF-8");
            goto done;
        }
        if (L->t->tok_len[id] != UINT32_MAX) {
            rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: id %d is given to two tokens (\"%.64s\")",
                             L->who, file, (int)id, key);
            goto done;
        }
        int32_t other = -1;
        const int r = token_set(L, id, key, klen, NULL, 0, &other);
        if (r == ENG_E_OOM) {
            rc = oom(L, err);
            goto done;
        }
        if (r != ENG_OK) {
            rc = eng_err_set(err, ENG_E_FORMAT,
                             "%s: %s: token \"%.64s\" appears twice (ids %d and %d)", L->who, file,
                             key, (int)other, (int)id);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return rc;
}

static int
load_merges_txt(loader *L, const char *file, const char *text, size_t len, eng_err *err) {
    int rc = ENG_OK;
    line *lines = NULL;
    size_t n_lines = 0, first = 0, buf_cap = 0;
    char *buf = NULL;
    if ((rc = check_utf8(L, file, text, len, err)) != ENG_OK) goto done;
    if (split_lines(&lines, &n_lines, text, len) != ENG_OK) {
        rc = oom(L, err);
        goto done;
    }
    if (n_lines > 0 && lines[0].len >= 8 && memcmp(lines[0].p, "#version", 8) == 0) first = 1;
    /* Trailing blank lines are not merges (Hugging Face strips the file first). */
    while (n_lines > first && merge_split(&(line){0}, &(line){0}, &lines[n_lines - 1]) == 0)
        n_lines--;
    const size_t n_merges = ENG_MIN(n_lines - first, (size_t)TOK_CLIP_MERGES);
    for (size_t m = 0; m < n_merges; m++) {
        line a, b;
        const size_t li = first + m;
        const int np = merge_split(&a, &b, &lines[li]);
        if (np != 2) {
            rc = merge_line_error(L, file, li + 1, np, err);
            goto done;
        }
        rc = merge_resolve(L, file, li + 1, &a, &b, (int32_t)m, &buf, &buf_cap, err);
        if (rc != ENG_OK) goto done;
    }
done:
    free(buf);
    free(lines);
    return rc;
}

static int load_hf_buffers(tok_clip **out,
                           const char *vocab,
                           size_t vocab_len,
                           const char *vfile,
                           const char *merges,
                           size_t merges_len,
                           const char *mfile,
                           eng_err *err) {
    int rc = ENG_OK;
    loader L = {NULL, 0, 0, "tok_clip_load_hf"};
    if (vocab_len > TOK_MAX_FILE_BYTES || merges_len > TOK_MAX_FILE_BYTES) {
        rc = eng_err_set(err, ENG_E_FORMAT, "%s: %s: over the limit of %zu bytes", L.who,
                         vocab_len > TOK_MAX_FILE_BYTES ? vfile : mfile, TOK_MAX_FILE_BYTES);
        goto done;
    }
    if ((rc = new_tok(&L.t, L.who, err)) != ENG_OK) goto done;
    /* The merge table is sized for as many merges as merges.txt can hold. */
    size_t n_nl = 0;
    for (size_t i = 0; i < merges_len; i++)
        n_nl += merges[i] == '\n';
    const int64_t max_merges = (int64_t)ENG_MIN(n_nl + 1, (size_t)TOK_CLIP_MERGES);
    if ((rc = load_vocab_json(&L, vfile, vocab, vocab_len, max_merges, err)) != ENG_OK) goto done;
    if ((rc = load_merges_txt(&L, mfile, merges, merges_len, err)) != ENG_OK) goto done;
    if ((rc = resolve_fixed(&L, vfile, err)) != ENG_OK) goto done;
    if ((rc = tok_clip_cache_create(L.t, err)) != ENG_OK) goto done;
    *out = L.t;
    L.t = NULL;
done:
    tok_clip_free(L.t);
    return rc;
}

int tok_clip_load_hf_memory(tok_clip **out,
                            const char *vocab_json,
                            size_t vocab_len,
                            const char *merges,
                            size_t merges_len,
                            const char *name,
                            eng_err *err) {
    char vname[256], mname[256];
    ENG_ASSERT(out != NULL && (vocab_json != NULL || vocab_len == 0) &&
               (merges != NULL || merges_len == 0));
    *out = NULL;
    snprintf(vname, sizeof vname, "%s%svocab.json", name != NULL ? name : "",
             name != NULL ? "/" : "");
    snprintf(mname, sizeof mname, "%s%smerges.txt", name != NULL ? name : "",
             name != NULL ? "/" : "");
    return load_hf_buffers(out, vocab_json, vocab_len, vname, merges, merges_len, mname, err);
}

int tok_clip_load_hf(tok_clip **out,
                     const char *vocab_json_path,
                     const char *merges_path,
                     eng_err *err) {
    char *v = NULL, *m = NULL;
    size_t vlen = 0, mlen = 0;
    int rc;
    ENG_ASSERT(out != NULL && vocab_json_path != NULL && merges_path != NULL);
    *out = NULL;
    if ((rc = read_file(&v, &vlen, vocab_json_path, "tok_clip_load_hf", err)) != ENG_OK) goto done;
    if ((rc = read_file(&m, &mlen, merges_path, "tok_clip_load_hf", err)) != ENG_OK) goto done;
    rc = load_hf_buffers(out, v, vlen, vocab_json_path, m, mlen, merges_path, err);
done:
    free(v);
    free(m);
    return rc;
}

/* ---- either ------------------------------------------------------------------------------- */

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tok_clip_load(tok_clip **out, const char *path, eng_err *err) {
    struct stat st;
    char v[4096], m[4096];
    ENG_ASSERT(out != NULL && path != NULL);
    *out = NULL;
    if (stat(path, &st) != 0)
        return eng_err_set(err, ENG_E_IO, "tok_clip_load: %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        /* vocab.json or merges.txt named alone: the other file sits beside it. */
        const size_t n = strlen(path);
        const int json = n >= 5 && strcmp(path + n - 5, ".json") == 0;
        const int txt = n >= 10 && strcmp(path + n - 10, "merges.txt") == 0;
        if (!json && !txt) return tok_clip_load_openai(out, path, err);
        const char *slash = strrchr(path, '/');
        const int dir_len = slash != NULL ? (int)(slash - path + 1) : 0;
        const int nw = snprintf(json ? m : v, sizeof v, "%.*s%s", dir_len, path,
                                json ? "merges.txt" : "vocab.json");
        if (nw < 0 || (size_t)nw >= sizeof v)
            return eng_err_set(err, ENG_E_INVALID_ARG, "tok_clip_load: %s: path too long", path);
        return json ? tok_clip_load_hf(out, path, m, err) : tok_clip_load_hf(out, v, path, err);
    }
    static const char *const sub[] = {"", "/tokenizer"};
    for (int i = 0; i < 2; i++) {
        const int nv = snprintf(v, sizeof v, "%s%s/vocab.json", path, sub[i]);
        const int nm = snprintf(m, sizeof m, "%s%s/merges.txt", path, sub[i]);
        if (nv < 0 || nm < 0 || (size_t)nv >= sizeof v || (size_t)nm >= sizeof m)
            return eng_err_set(err, ENG_E_INVALID_ARG, "tok_clip_load: %s: path too long", path);
        if (is_file(v) && is_file(m)) return tok_clip_load_hf(out, v, m, err);
    }
    return eng_err_set(err, ENG_E_IO,
                       "tok_clip_load: %s: a folder without vocab.json + merges.txt (or "
                       "tokenizer/vocab.json + tokenizer/merges.txt); pass the .txt.gz or the "
                       "tokenizer folder",
                       path);
}
