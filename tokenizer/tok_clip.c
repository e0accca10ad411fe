/* tok_clip.c: encoding with a loaded vocabulary: the pre-tokenizer (the reference's regex, run
 * as a hand-written scanner over cleaned code points), byte-level BPE by merge rank with a
 * mutex-guarded cache, the prompt form for the text encoders (start, end, truncation, padding,
 * A1111 weights), decoding, and finding the default vocabulary for the tools. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok.h"
#include "tok_impl.h"

/* ---- the BPE cache ------------------------------------------------------------------------ */

enum {
    CACHE_SLOTS = 1 << 14,               /* open addressing, a power of two */
    CACHE_MAX_ENTRIES = CACHE_SLOTS / 2, /* cleared when full (prompts repeat few words) */
    CACHE_MAX_PIECE = 64                 /* longer pieces are not cached (bytes) */
};

typedef struct cache_entry {
    uint64_t hash;
    uint32_t len;   /* bytes of the piece */
    uint32_t n_ids; /* ids follow, then the piece's bytes */
} cache_entry;

struct tok_cache {
    pthread_mutex_t mu;
    cache_entry **slots;
    size_t count;
};

static int32_t *entry_ids(cache_entry *e) {
    return (int32_t *)(void *)(e + 1);
}

static char *entry_bytes(cache_entry *e) {
    return (char *)(entry_ids(e) + e->n_ids);
}

int tok_clip_cache_create(tok_clip *t, eng_err *err) {
    tok_cache *c = calloc(1, sizeof *c);
    if (c == NULL || (c->slots = calloc(CACHE_SLOTS, sizeof *c->slots)) == NULL) {
        free(c);
        return eng_err_set(err, ENG_E_OOM, "tok_clip: out of memory for the BPE cache");
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->slots);
        free(c);
        return eng_err_set(err, ENG_E_OOM, "tok_clip: cannot create the BPE cache's mutex");
    }
    t->cache = c;
    return ENG_OK;
}

static void cache_clear(tok_cache *c) {
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(c->slots[i]);
        c->slots[i] = NULL;
    }
    c->count = 0;
}

void tok_clip_cache_free(tok_clip *t) {
    if (t->cache == NULL) return;
    cache_clear(t->cache);
    pthread_mutex_destroy(&t->cache->mu);
    free(t->cache->slots);
    free(t->cache);
    t->cache = NULL;
}

/* Copies the cached ids of piece[len] to ids[CACHE_MAX_PIECE]; returns their count or -1. */
static int cache_get(tok_cache *c, uint64_t h, const char *piece, size_t len, int32_t *ids) {
    int n = -1;
    pthread_mutex_lock(&c->mu);
    for (size_t i = (size_t)h & (CACHE_SLOTS - 1); c->slots[i] != NULL;
         i = (i + 1) & (CACHE_SLOTS - 1)) {
        cache_entry *e = c->slots[i];
        if (e->hash == h && e->len == len && memcmp(entry_bytes(e), piece, len) == 0) {
            memcpy(ids, entry_ids(e), e->n_ids * sizeof(int32_t));
            n = (int)e->n_ids;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Best effort: out of memory just means the piece is not cached. */
static void cache_put(
    tok_cache *c, uint64_t h, const char *piece, size_t len, const int32_t *ids, size_t n_ids) {
    cache_entry *e = malloc(sizeof *e + n_ids * sizeof(int32_t) + len);
    if (e == NULL) return;
    e->hash = h;
    e->len = (uint32_t)len;
    e->n_ids = (uint32_t)n_ids;
    memcpy(entry_ids(e), ids, n_ids * sizeof(int32_t));
    memcpy(entry_bytes(e), piece, len);
    pthread_mutex_lock(&c->mu);
    if (c->count >= CACHE_MAX_ENTRIES) cache_clear(c);
    size_t i = (size_t)h & (CACHE_SLOTS - 1);
    for (; c->slots[i] != NULL; i = (i + 1) & (CACHE_SLOTS - 1)) {
        const cache_entry *o = c->slots[i];
        if (o->hash == h && o->len == len && memcmp(entry_bytes(c->slots[i]), piece, len) == 0)
            break; /* another thread got here first */
    }
    if (c->slots[i] == NULL) {
        c->slots[i] = e;
        c->count++;
        e = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(e);
}

/* ---- BPE ---------------------------------------------------------------------------------- */

static int32_t pair_rank(const tok_clip *t, int32_t a, int32_t b, int32_t *result) {
    const tok_merge_slot *s = tok_merge_find(t, a, b);
    if (s == NULL) return INT32_MAX;
    *result = s->result;
    return s->rank;
}

/* ---- BPE for long words: the same result in O(n log n) ---------------------------------- */

/* Words longer than this use bpe_long (the simple loop is quadratic: a 1 MiB word would take
 * minutes). A build may lower it to check both give the same ids. */
#ifndef TOK_BPE_LONG_FROM
#define TOK_BPE_LONG_FROM (CACHE_MAX_PIECE + 1)
#endif

/* A pair waiting in the heap: the symbols at pos and its right neighbour, when they were a
 * and b. Stale entries are recognized by the symbols having changed (a position's symbol only
 * ever grows, so an equal id means the same text). */
typedef struct heap_item {
    int32_t rank, pos, a, b;
} heap_item;

static int item_less(const heap_item *x, const heap_item *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(heap_item *h, size_t *n, heap_item it) {
    size_t i = (*n)++;
    while (i > 0 && item_less(&it, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = it;
}

static heap_item heap_pop(heap_item *h, size_t *n) {
    const heap_item top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && item_less(&h[c + 1], &h[c])) c++;
        if (!item_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

typedef struct long_word {
    int32_t *sym, *next, *prev; /* a linked list over the byte positions; sym -1: merged away */
    heap_item *heap, *batch;
    size_t n_heap;
} long_word;

static int item_valid(const long_word *w, const heap_item *it) {
    const int32_t q = w->next[it->pos];
    return w->sym[it->pos] == it->a && q >= 0 && w->sym[q] == it->b;
}

static void push_pair(const tok_clip *t, long_word *w, int32_t pos) {
    if (pos < 0) return; /* the word's first symbol has no left neighbour */
    const int32_t q = w->next[pos];
    int32_t result = 0;
    if (q < 0) return;
    const int32_t r = pair_rank(t, w->sym[pos], w->sym[q], &result);
    if (r != INT32_MAX) heap_push(w->heap, &w->n_heap, (heap_item){r, pos, w->sym[pos], w->sym[q]});
}

/* The reference's rounds, with a heap: a round takes every pair of the lowest rank present (in
 * position order, which is the word's order) and merges them left to right, skipping those an
 * earlier merge of the round took apart; only then are the new neighbours' pairs added. */
static int bpe_long(const tok_clip *t, tok_cps *out, const char *piece, size_t len) {
    long_word w = {0};
    int rc = ENG_OK;
    if (len > INT32_MAX / 4) return ENG_E_OOM;
    w.sym = malloc(len * sizeof *w.sym);
    w.next = malloc(len * sizeof *w.next);
    w.prev = malloc(len * sizeof *w.prev);
    w.heap = malloc(3 * len * sizeof *w.heap); /* n - 1 pairs, then at most 2 per merge */
    w.batch = malloc(len * sizeof *w.batch);
    if (w.sym == NULL || w.next == NULL || w.prev == NULL || w.heap == NULL || w.batch == NULL) {
        rc = ENG_E_OOM;
        goto done;
    }
    for (size_t i = 0; i < len; i++) {
        const unsigned char b = (unsigned char)piece[i];
        w.sym[i] = i + 1 < len ? t->byte_id[b] : t->byte_end[b];
        w.next[i] = i + 1 < len ? (int32_t)i + 1 : -1;
        w.prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < len; i++)
        push_pair(t, &w, (int32_t)i);
    while (w.n_heap > 0) {
        heap_item first = heap_pop(w.heap, &w.n_heap);
        if (!item_valid(&w, &first)) continue;
        size_t n_batch = 0;
        w.batch[n_batch++] = first;
        while (w.n_heap > 0 && w.heap[0].rank == first.rank) {
            const heap_item it = heap_pop(w.heap, &w.n_heap);
            if (item_valid(&w, &it)) w.batch[n_batch++] = it;
        }
        int32_t result = 0;
        (void)pair_rank(t, first.a, first.b, &result);
        size_t merged = 0;
        for (size_t k = 0; k < n_batch; k++) {
            const heap_item *it = &w.batch[k];
            if (!item_valid(&w, it)) continue; /* "a a a": the second pair lost its left 'a' */
            const int32_t p = it->pos, q = w.next[p];
            w.sym[p] = result;
            w.sym[q] = -1;
            w.next[p] = w.next[q];
            if (w.next[q] >= 0) w.prev[w.next[q]] = p;
            w.batch[merged++] = *it;
        }
        for (size_t k = 0; k < merged; k++) {
            push_pair(t, &w, w.prev[w.batch[k].pos]);
            push_pair(t, &w, w.batch[k].pos);
        }
    }
    for (int32_t i = 0; i >= 0; i = w.next[i])
        if ((rc = tok_cps_push(out, w.sym[i])) != ENG_OK) goto done;
done:
    free(w.sym);
    free(w.next);
    free(w.prev);
    free(w.heap);
    free(w.batch);
    return rc;
}

/* The reference's bpe(): the word's bytes as tokens ("</w>" on the last), then, while some
 * adjacent pair is a merge, every occurrence of the lowest-ranked pair merged, left to right. */
static int bpe(const tok_clip *t, tok_cps *out, const char *piece, size_t len) {
    int32_t sym_local[CACHE_MAX_PIECE], rank_local[CACHE_MAX_PIECE], res_local[CACHE_MAX_PIECE];
    int32_t *sym = sym_local, *rank = rank_local, *res = res_local;
    int rc = ENG_OK;
    if (len >= TOK_BPE_LONG_FROM) return bpe_long(t, out, piece, len);
    const uint64_t h = tok_hash_bytes(piece, len);
    if (len <= CACHE_MAX_PIECE) {
        const int n = cache_get(t->cache, h, piece, len, sym_local);
        if (n >= 0) return tok_cps_append(out, sym_local, (size_t)n);
    } else { /* only when TOK_BPE_LONG_FROM is raised */
        sym = malloc(len * sizeof *sym);
        rank = malloc(len * sizeof *rank);
        res = malloc(len * sizeof *res);
        if (sym == NULL || rank == NULL || res == NULL) {
            rc = ENG_E_OOM;
            goto done;
        }
    }
    size_t m = len;
    for (size_t i = 0; i < len; i++) {
        const unsigned char b = (unsigned char)piece[i];
        sym[i] = i + 1 < len ? t->byte_id[b] : t->byte_end[b];
    }
    for (size_t i = 0; i + 1 < m; i++)
        rank[i] = pair_rank(t, sym[i], sym[i + 1], &res[i]);
    while (m > 1) {
        size_t best = SIZE_MAX;
        int32_t best_rank = INT32_MAX;
        for (size_t i = 0; i + 1 < m; i++) {
            if (rank[i] < best_rank) {
                best_rank = rank[i];
                best = i;
            }
        }
        if (best == SIZE_MAX) break;
        const int32_t a = sym[best], b = sym[best + 1], merged = res[best];
        size_t w = best;
        for (size_t i = best; i < m;) {
            if (i + 1 < m && sym[i] == a && sym[i + 1] == b) {
                sym[w++] = merged;
                i += 2;
            } else {
                sym[w++] = sym[i++];
            }
        }
        m = w;
        /* Pairs left of best - 1 are unchanged; recompute the rest. */
        for (size_t i = best > 0 ? best - 1 : 0; i + 1 < m; i++)
            rank[i] = pair_rank(t, sym[i], sym[i + 1], &res[i]);
    }
    if ((rc = tok_cps_append(out, sym, m)) != ENG_OK) goto done;
    if (len <= CACHE_MAX_PIECE) cache_put(t->cache, h, piece, len, sym, m);
done:
    if (sym != sym_local) free(sym);
    if (rank != rank_local) free(rank);
    if (res != res_local) free(res);
    return rc;
}

/* ---- the pre-tokenizer -------------------------------------------------------------------- */

/* Matches a special token at v[i] as the IGNORECASE regex does on lower-case text ('ſ' matches
 * 's'). Returns its length (0: none); *exact is 1 when it is spelled exactly. */
static size_t special_at(const int32_t *v, size_t n, size_t i, int *exact) {
    static const char *const names[] = {"<|startoftext|>", "<|endoftext|>"};
    for (int k = 0; k < 2; k++) {
        const char *s = names[k];
        const size_t len = strlen(s);
        size_t j = 0;
        int same = 1;
        if (n - i < len) continue;
        for (; j < len; j++) {
            const int32_t c = v[i + j];
            if (c == (unsigned char)s[j]) continue;
            if (s[j] == 's' && c == 0x17F) {
                same = 0;
                continue;
            }
            break;
        }
        if (j == len) {
            *exact = same;
            return len;
        }
    }
    return 0;
}

static size_t contraction_at(const int32_t *v, size_t n, size_t i) {
    if (v[i] != '\'' || i + 1 >= n) return 0;
    const int32_t d = v[i + 1];
    if (d == 's' || d == 0x17F || d == 't' || d == 'm' || d == 'd') return 2;
    if (i + 2 < n && ((d == 'r' && v[i + 2] == 'e') || (d == 'v' && v[i + 2] == 'e') ||
                      (d == 'l' && v[i + 2] == 'l')))
        return 3;
    return 0;
}

/* [^\s\p{L}\p{N}] under IGNORECASE: U+0345 (a mark whose case variants are letters) matches
 * neither this class nor \p{L}, so the reference's findall skips it. */
static int is_other(int32_t c) {
    return !tok_uni_is_re_space(c) && !tok_uni_is_letter(c) && !tok_uni_is_number(c) && c != 0x345;
}

/* Encodes the cleaned code points v[n], appending ids to out. */
static int encode_cps(
    const tok_clip *t, tok_cps *out, const int32_t *v, size_t n, char **buf, size_t *buf_cap) {
    for (size_t i = 0; i < n;) {
        const int32_t c = v[i];
        int exact = 0;
        size_t end = 0;
        if (c == '<') {
            const size_t k = special_at(v, n, i, &exact);
            if (k > 0) end = i + k;
            if (k > 0 && exact) {
                if (tok_cps_push(out, k == 15 ? t->bos : t->eos) != ENG_OK) return ENG_E_OOM;
                i = end;
                continue;
            }
        }
        if (end == 0 && c == '\'') {
            const size_t k = contraction_at(v, n, i);
            if (k > 0) end = i + k;
        }
        if (end == 0) {
            if (tok_uni_is_letter(c)) {
                for (end = i + 1; end < n && tok_uni_is_letter(v[end]); end++) {
                }
            } else if (tok_uni_is_number(c)) {
                end = i + 1;
            } else if (is_other(c)) {
                for (end = i + 1; end < n && is_other(v[end]); end++) {
                }
            } else {
                i++; /* whitespace, or U+0345 */
                continue;
            }
        }
        const size_t need = 4 * (end - i);
        if (need > *buf_cap) {
            char *nb = realloc(*buf, need);
            if (nb == NULL) return ENG_E_OOM;
            *buf = nb;
            *buf_cap = need;
        }
        size_t len = 0;
        for (size_t k = i; k < end; k++)
            len += tok_utf8_put(*buf + len, v[k]);
        const int rc = bpe(t, out, *buf, len);
        if (rc != ENG_OK) return rc;
        i = end;
    }
    return ENG_OK;
}

/* Decodes, cleans and encodes text[len], appending ids to out. */
static int encode_text(
    const tok_clip *t, tok_cps *out, const char *text, size_t len, const char *who, eng_err *err) {
    tok_cps cps = {0};
    char *buf = NULL;
    size_t buf_cap = 0;
    int rc = ENG_OK;
    if (len > TOK_MAX_TEXT_BYTES) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: text of %zu bytes is over the limit of %zu",
                         who, len, TOK_MAX_TEXT_BYTES);
        goto done;
    }
    if ((rc = tok_utf8_decode(&cps, text, len, who, err)) != ENG_OK) goto done;
    if ((rc = tok_clean_cps(&cps, err)) != ENG_OK) {
        eng_err_prefix(err, "%s", who);
        goto done;
    }
    if (encode_cps(t, out, cps.v, cps.n, &buf, &buf_cap) != ENG_OK)
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", who);
done:
    free(buf);
    tok_cps_free(&cps);
    return rc;
}

int tok_clip_encode(
    const tok_clip *t, int32_t **ids, int64_t *n_ids, const char *text, size_t len, eng_err *err) {
    tok_cps out = {0};
    ENG_ASSERT(t != NULL && ids != NULL && n_ids != NULL && (text != NULL || len == 0));
    *ids = NULL;
    *n_ids = 0;
    const int rc = encode_text(t, &out, text, len, "tok_clip_encode", err);
    if (rc != ENG_OK || out.n == 0) {
        tok_cps_free(&out);
        return rc;
    }
    *ids = out.v;
    *n_ids = (int64_t)out.n;
    return ENG_OK;
}

int tok_clip_encode_prompt(const tok_clip *t,
                           int32_t *ids,
                           float *weights,
                           int64_t *n_prompt,
                           int max_len,
                           int32_t pad_id,
                           unsigned flags,
                           const char *text,
                           size_t len,
                           eng_err *err) {
    static const char who[] = "tok_clip_encode_prompt";
    tok_cps toks = {0};
    float *w = NULL;
    size_t w_cap = 0;
    tok_span *spans = NULL;
    int64_t n_spans = 0;
    int rc = ENG_OK;
    ENG_ASSERT(t != NULL && ids != NULL && (text != NULL || len == 0));
    if (max_len < 2) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: max_len %d is under 2 (start + end)", who,
                         max_len);
        goto done;
    }
    if ((flags & ~(unsigned)TOK_PROMPT_WEIGHTS) != 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: unknown flags 0x%x", who, flags);
        goto done;
    }
    if (flags & TOK_PROMPT_WEIGHTS) {
        if ((rc = tok_prompt_parse(&spans, &n_spans, text, len, err)) != ENG_OK) goto done;
    }
    for (int64_t s = 0; s < (flags & TOK_PROMPT_WEIGHTS ? n_spans : 1); s++) {
        const size_t before = toks.n;
        if (flags & TOK_PROMPT_WEIGHTS)
            rc = encode_text(t, &toks, spans[s].text, spans[s].len, who, err);
        else
            rc = encode_text(t, &toks, text, len, who, err);
        if (rc != ENG_OK) goto done;
        if (toks.n > w_cap) {
            const size_t cap = ENG_MAX(toks.cap, (size_t)16);
            float *nw = realloc(w, cap * sizeof *nw);
            if (nw == NULL) {
                rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", who);
                goto done;
            }
            w = nw;
            w_cap = cap;
        }
        const float weight = flags & TOK_PROMPT_WEIGHTS ? (float)spans[s].weight : 1.0f;
        for (size_t k = before; k < toks.n; k++)
            w[k] = weight;
    }
    const size_t keep = ENG_MIN(toks.n, (size_t)max_len - 2);
    ids[0] = t->bos;
    if (weights != NULL) weights[0] = 1.0f;
    for (size_t k = 0; k < keep; k++) {
        ids[k + 1] = toks.v[k];
        if (weights != NULL) weights[k + 1] = w[k];
    }
    ids[keep + 1] = t->eos;
    if (weights != NULL) weights[keep + 1] = 1.0f;
    for (size_t k = keep + 2; k < (size_t)max_len; k++) {
        ids[k] = pad_id;
        if (weights != NULL) weights[k] = 1.0f;
    }
    if (n_prompt != NULL) *n_prompt = (int64_t)toks.n;
done:
    tok_free(spans);
    free(w);
    tok_cps_free(&toks);
    return rc;
}

/* ---- decoding ----------------------------------------------------------------------------- */

int tok_clip_decode(
    const tok_clip *t, char **text, size_t *len, const int32_t *ids, int64_t n_ids, eng_err *err) {
    char *raw = NULL, *outs = NULL;
    size_t n = 0, cap = 0, k = 0;
    int rc = ENG_OK;
    ENG_ASSERT(t != NULL && text != NULL && len != NULL && (ids != NULL || n_ids == 0));
    for (int64_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_tokens) {
            rc = eng_err_set(err, ENG_E_INVALID_ARG,
                             "tok_clip_decode: id %d at position %lld is not in 0..%d", (int)ids[i],
                             (long long)i, (int)t->n_tokens - 1);
            goto done;
        }
        cap += t->tok_len[ids[i]];
    }
    if ((raw = malloc(cap + 1)) == NULL || (outs = malloc(3 * cap + 1)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "tok_clip_decode: out of memory");
        goto done;
    }
    /* Token texts -> bytes: each character stands for one byte (others are kept as UTF-8). */
    for (int64_t i = 0; i < n_ids; i++) {
        const char *s = t->blob + t->tok_off[ids[i]];
        const size_t sl = t->tok_len[ids[i]];
        for (size_t j = 0; j < sl;) {
            int32_t cp = 0;
            size_t m = tok_utf8_next(s, sl, j, &cp);
            const int b = m > 0 ? tok_char_byte(cp) : -1;
            if (m == 0) m = 1;
            if (b >= 0) {
                raw[n++] = (char)b;
            } else {
                memcpy(raw + n, s + j, m);
                n += m;
            }
            j += m;
        }
    }
    /* "</w>" -> ' ', and bytes that are not valid UTF-8 -> U+FFFD (one per byte). */
    for (size_t i = 0; i < n;) {
        int32_t cp = 0;
        if (n - i >= 4 && memcmp(raw + i, "</w>", 4) == 0) {
            outs[k++] = ' ';
            i += 4;
            continue;
        }
        const size_t m = tok_utf8_next(raw, n, i, &cp);
        if (m == 0) {
            k += tok_utf8_put(outs + k, 0xFFFD);
            i++;
        } else {
            memcpy(outs + k, raw + i, m);
            k += m;
            i += m;
        }
    }
    outs[k] = '\0';
    *text = outs;
    *len = k;
    outs = NULL;
done:
    free(raw);
    free(outs);
    return rc;
}

/* ---- queries and lifetime ----------------------------------------------------------------- */

int32_t tok_clip_vocab_size(const tok_clip *t) {
    return t->n_tokens;
}
int32_t tok_clip_bos_id(const tok_clip *t) {
    return t->bos;
}
int32_t tok_clip_eos_id(const tok_clip *t) {
    return t->eos;
}
int64_t tok_clip_merge_count(const tok_clip *t) {
    return t->n_merges;
}

const char *tok_clip_token(const tok_clip *t, int32_t id) {
    if (id < 0 || id >= t->n_tokens) return NULL;
    return t->blob + t->tok_off[id];
}

int32_t tok_clip_token_id(const tok_clip *t, const char *token) {
    return token != NULL ? tok_vocab_find(t, token, strlen(token)) : -1;
}

void tok_clip_free(tok_clip *t) {
    if (t == NULL) return;
    tok_clip_cache_free(t);
    free(t->blob);
    free(t->tok_off);
    free(t->tok_len);
    free(t->str_slots);
    free(t->pairs);
    free(t);
}

void tok_free(void *p) {
    free(p);
}

/* ---- the default vocabulary --------------------------------------------------------------- */

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int copy_path(char *out, size_t cap, const char *p, eng_err *err) {
    const size_t n = strlen(p);
    if (n + 1 > cap)
        return eng_err_set(err, ENG_E_INVALID_ARG, "tok_clip_find_vocab: path too long: %.200s", p);
    memcpy(out, p, n + 1);
    return ENG_OK;
}

int tok_clip_find_vocab(
    char *out, size_t cap, const char *flag_path, const char *builtin_data_dir, eng_err *err) {
    static const char rel[] = "/clip/bpe_simple_vocab_16e6.txt.gz";
    char cand[2][4096];
    const char *env = getenv("ENG_CLIP_VOCAB"), *data = getenv("ENGINE_DATA_DIR");
    ENG_ASSERT(out != NULL && cap > 0);
    out[0] = '\0';
    if (flag_path != NULL && flag_path[0] != '\0') {
        if (!path_exists(flag_path))
            return eng_err_set(err, ENG_E_IO, "vocabulary %s: %s", flag_path, strerror(errno));
        return copy_path(out, cap, flag_path, err);
    }
    if (env != NULL && env[0] != '\0') {
        if (!path_exists(env))
            return eng_err_set(err, ENG_E_IO, "ENG_CLIP_VOCAB=%s: %s", env, strerror(errno));
        return copy_path(out, cap, env, err);
    }
    const char *dirs[2] = {data != NULL && data[0] != '\0' ? data : NULL, builtin_data_dir};
    for (int i = 0; i < 2; i++) {
        cand[i][0] = '\0';
        if (dirs[i] == NULL || dirs[i][0] == '\0') continue;
        const int n = snprintf(cand[i], sizeof cand[i], "%s%s", dirs[i], rel);
        if (n < 0 || (size_t)n >= sizeof cand[i]) {
            cand[i][0] = '\0';
            continue;
        }
        if (path_exists(cand[i])) return copy_path(out, cap, cand[i], err);
    }
    return eng_err_set(err, ENG_E_IO,
                       "no CLIP vocabulary found (tried %s%s%s); pass --vocab PATH (OpenAI's "
                       "bpe_simple_vocab_16e6.txt.gz, or a folder with vocab.json and merges.txt) "
                       "or set ENG_CLIP_VOCAB",
                       cand[0][0] != '\0' ? cand[0] : "no $ENGINE_DATA_DIR",
                       cand[1][0] != '\0' ? ", " : "", cand[1]);
}
