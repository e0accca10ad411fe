/* tok_clean.c: the text cleaning in front of the pre-tokenizer, as the reference does it:
 * ftfy.fix_text (the fixes listed in tok.h), html.unescape twice, strip, whitespace runs to one
 * space, str.lower(). Each step is written from the behaviour of ftfy 6.3 and CPython 3.11 and
 * checked by the goldens in tests/golden/tokenizer_ftfy.jsonl (made with the real ftfy). */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tok.h"
#include "tok_impl.h"

/* Windows-1252 for 0x80..0x9F, where its five unassigned bytes keep their own value (what
 * ftfy's "sloppy-windows-1252" and Python's html.unescape both use for C1 code points). */
static const uint16_t cp1252_c1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

/* ftfy's fix_latin_ligatures: Latin ligatures and digraphs, taken apart (ﬅ keeps its long s). */
typedef struct ligature {
    int32_t c;
    int32_t out[3];
} ligature;
static const ligature ligatures[] = {
    {0x0132, {'I', 'J', 0}},    {0x0133, {'i', 'j', 0}},    {0x0149, {0x02BC, 'n', 0}},
    {0x01C4, {'D', 0x017D, 0}}, {0x01C5, {'D', 0x017E, 0}}, {0x01C6, {'d', 0x017E, 0}},
    {0x01C7, {'L', 'J', 0}},    {0x01C8, {'L', 'j', 0}},    {0x01C9, {'l', 'j', 0}},
    {0x01CA, {'N', 'J', 0}},    {0x01CB, {'N', 'j', 0}},    {0x01CC, {'n', 'j', 0}},
    {0x01F1, {'D', 'Z', 0}},    {0x01F2, {'D', 'z', 0}},    {0x01F3, {'d', 'z', 0}},
    {0xFB00, {'f', 'f', 0}},    {0xFB01, {'f', 'i', 0}},    {0xFB02, {'f', 'l', 0}},
    {0xFB03, {'f', 'f', 'i'}},  {0xFB04, {'f', 'f', 'l'}},  {0xFB05, {0x017F, 't', 0}},
    {0xFB06, {'s', 't', 0}},
};

static int oom(eng_err *err) {
    return eng_err_set(err, ENG_E_OOM, "tok_clean_text: out of memory");
}

static int is_ascii_alnum(int32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_hex(int32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ---- Python's html.unescape --------------------------------------------------------------- */

/* What a numeric character reference becomes (Python's html._replace_charref): C1 numbers as
 * Windows-1252, 0 and out-of-range numbers as U+FFFD, CR kept, other controls and
 * noncharacters dropped. `num` saturates at 0x110000. Returns the count written (0 or 1). */
static size_t charref_value(uint32_t num, int32_t *out) {
    if (num == 0) {
        *out = 0xFFFD;
        return 1;
    }
    if (num == 0x0D) {
        *out = 0x0D;
        return 1;
    }
    if (num >= 0x80 && num <= 0x9F) {
        *out = cp1252_c1[num - 0x80];
        return 1;
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        *out = 0xFFFD;
        return 1;
    }
    if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) ||
        (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
        (num & 0xFFFE) == 0xFFFE)
        return 0;
    *out = (int32_t)num;
    return 1;
}

/* Looks cps[0..n) up in an entity table when it is all ASCII. */
static const tok_entity *
entity_lookup(const tok_entity *table, size_t count, const int32_t *cps, size_t n) {
    char name[40];
    if (n == 0 || n >= sizeof name) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (cps[i] <= 0 || cps[i] >= 0x80) return NULL;
        name[i] = (char)cps[i];
    }
    return tok_entity_find(table, count, name, n);
}

static int push_entity(tok_cps *out, const tok_entity *e) {
    for (int k = 0; k < 3 && e->cp[k] != 0; k++)
        if (tok_cps_push(out, e->cp[k]) != ENG_OK) return ENG_E_OOM;
    return ENG_OK;
}

/* Tries a character reference at v[i] == '&' (Python's _charref pattern). On a match appends
 * the replacement to out and returns the number of code points consumed; 0 if no match there. */
static size_t py_charref(tok_cps *out, const int32_t *v, size_t n, size_t i, int *rc) {
    size_t j = i + 1;
    *rc = ENG_OK;
    if (j < n && v[j] == '#') {
        uint32_t num = 0;
        size_t k = j + 1;
        if (k < n && v[k] >= '0' && v[k] <= '9') {
            for (; k < n && v[k] >= '0' && v[k] <= '9'; k++)
                num = num > 0x10FFFF ? 0x110000 : num * 10 + (uint32_t)(v[k] - '0');
        } else if (k + 1 < n && (v[k] == 'x' || v[k] == 'X') && is_hex(v[k + 1])) {
            for (k++; k < n && is_hex(v[k]); k++) {
                const int32_t c = v[k];
                const uint32_t d = (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
                num = num > 0x10FFFF ? 0x110000 : num * 16 + d;
            }
        } else {
            return 0; /* '&#' not followed by a number: the name branch excludes '#' */
        }
        if (num > 0x10FFFF) num = 0x110000;
        if (k < n && v[k] == ';') k++;
        int32_t c = 0;
        if (charref_value(num, &c) == 1) *rc = tok_cps_push(out, c);
        return k - i;
    }
    /* A name: 1..32 code points other than \t \n \f space < & # ;, then an optional ';'. */
    size_t k = j;
    while (k < n && k - j < 32) {
        const int32_t c = v[k];
        if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
            c == ';')
            break;
        k++;
    }
    if (k == j) return 0;
    if (k < n && v[k] == ';') k++;
    const size_t len = k - j;
    const tok_entity *e = entity_lookup(tok_html5_entities, tok_html5_entity_count, v + j, len);
    if (e != NULL) {
        *rc = push_entity(out, e);
        return k - i;
    }
    /* The longest prefix that is an entity (only the legacy names without ';' can be). */
    for (size_t x = len - 1; x >= 2; x--) {
        e = entity_lookup(tok_html5_entities, tok_html5_entity_count, v + j, x);
        if (e != NULL) {
            if ((*rc = push_entity(out, e)) == ENG_OK)
                *rc = tok_cps_append(out, v + j + x, len - x);
            return k - i;
        }
    }
    /* No entity: the text stays as it was. */
    *rc = tok_cps_append(out, v + i, k - i);
    return k - i;
}

int tok_html_unescape_py(tok_cps *text, tok_cps *scratch) {
    int any = 0;
    for (size_t i = 0; i < text->n && !any; i++)
        any = text->v[i] == '&';
    if (!any) return ENG_OK;
    scratch->n = 0;
    if (tok_cps_reserve(scratch, text->n) != ENG_OK) return ENG_E_OOM;
    for (size_t i = 0; i < text->n;) {
        if (text->v[i] == '&') {
            int rc;
            const size_t used = py_charref(scratch, text->v, text->n, i, &rc);
            if (rc != ENG_OK) return rc;
            if (used > 0) {
                i += used;
                continue;
            }
        }
        if (tok_cps_push(scratch, text->v[i]) != ENG_OK) return ENG_E_OOM;
        i++;
    }
    tok_cps_swap(text, scratch);
    return ENG_OK;
}

/* ---- ftfy's fixes --------------------------------------------------------------------------- */

/* ftfy's unescape_html: "&name;" / "&#...;" with 1..24 ASCII letters or digits; names from the
 * HTML5 table (with ';') or ftfy's all-caps additions; numbers only when Python's html.unescape
 * consumes the whole reference (and does not produce ';'). */
static int ftfy_unescape(tok_cps *text, tok_cps *scratch, tok_cps *tmp) {
    int any = 0;
    for (size_t i = 0; i < text->n && !any; i++)
        any = text->v[i] == '&';
    if (!any) return ENG_OK;
    scratch->n = 0;
    if (tok_cps_reserve(scratch, text->n) != ENG_OK) return ENG_E_OOM;
    const int32_t *v = text->v;
    const size_t n = text->n;
    for (size_t i = 0; i < n;) {
        if (v[i] == '&') {
            const size_t j = i + 1 + (i + 1 < n && v[i + 1] == '#');
            size_t k = j;
            while (k < n && is_ascii_alnum(v[k]))
                k++;
            if (k > j && k - j <= 24 && k < n && v[k] == ';') {
                const size_t end = k + 1; /* the match is v[i..end) */
                const tok_entity *e = NULL;
                if (j == i + 1) {
                    e = entity_lookup(tok_html5_entities, tok_html5_entity_count, v + j, end - j);
                    if (e == NULL)
                        e = entity_lookup(tok_ftfy_upper_entities, tok_ftfy_upper_entity_count,
                                          v + j, end - j);
                }
                if (e != NULL) {
                    if (push_entity(scratch, e) != ENG_OK) return ENG_E_OOM;
                    i = end;
                    continue;
                }
                if (j == i + 2) { /* "&#...;": keep Python's result only if it has no ';' */
                    tmp->n = 0;
                    int rc = ENG_OK;
                    const size_t used = py_charref(tmp, v, end, i, &rc);
                    if (rc != ENG_OK) return rc;
                    int semi = used == 0;
                    if (!semi && used < end - i) {
                        rc = tok_cps_append(tmp, v + i + used, end - i - used);
                        if (rc != ENG_OK) return rc;
                    }
                    for (size_t q = 0; q < tmp->n && !semi; q++)
                        semi = tmp->v[q] == ';';
                    if (!semi) {
                        if (tok_cps_append(scratch, tmp->v, tmp->n) != ENG_OK) return ENG_E_OOM;
                        i = end;
                        continue;
                    }
                }
                if (tok_cps_append(scratch, v + i, end - i) != ENG_OK) return ENG_E_OOM;
                i = end;
                continue;
            }
        }
        if (tok_cps_push(scratch, v[i]) != ENG_OK) return ENG_E_OOM;
        i++;
    }
    tok_cps_swap(text, scratch);
    return ENG_OK;
}

/* NFKC of one code point (ftfy's fix_character_width maps U+FF01..U+FFEF to it). */
static size_t nfkc_char(int32_t c, int32_t *out, size_t cap) {
    int bound = 0;
    const utf8proc_ssize_t k = utf8proc_decompose_char(
        c, out, (utf8proc_ssize_t)cap, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, &bound);
    if (k <= 0 || (size_t)k > cap) {
        out[0] = c;
        return 1;
    }
    const utf8proc_ssize_t m = utf8proc_normalize_utf32(out, k, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    return m > 0 ? (size_t)m : (size_t)k;
}

static int32_t uncurl(int32_t c) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) return '\'';
    if (c >= 0x201C && c <= 0x201F) return '"';
    return c;
}

/* fix_c1_controls, fix_latin_ligatures, fix_character_width and uncurl_quotes, in ftfy's order.
 * They map characters one by one and none feeds an earlier one, so one pass does all four. */
static int map_chars(tok_cps *text, tok_cps *scratch) {
    int any = 0;
    for (size_t i = 0; i < text->n && !any; i++)
        any = text->v[i] >= 0x80;
    if (!any) return ENG_OK;
    scratch->n = 0;
    if (tok_cps_reserve(scratch, text->n) != ENG_OK) return ENG_E_OOM;
    for (size_t i = 0; i < text->n; i++) {
        int32_t c = text->v[i], out[18];
        size_t m = 0;
        if (c >= 0x80 && c <= 0x9F) c = cp1252_c1[c - 0x80];
        for (size_t l = 0; l < sizeof ligatures / sizeof ligatures[0] && m == 0; l++) {
            if (ligatures[l].c != c) continue;
            for (int k = 0; k < 3 && ligatures[l].out[k] != 0; k++)
                out[m++] = ligatures[l].out[k];
        }
        if (m == 0) {
            if (c == 0x3000) {
                out[m++] = ' ';
            } else if (c >= 0xFF01 && c <= 0xFFEF) {
                m = nfkc_char(c, out, 16);
            } else {
                out[m++] = c;
            }
        }
        for (size_t k = 0; k < m; k++)
            out[k] = uncurl(out[k]);
        if (tok_cps_append(scratch, out, m) != ENG_OK) return ENG_E_OOM;
    }
    tok_cps_swap(text, scratch);
    return ENG_OK;
}

static int is_ftfy_control(int32_t c) {
    return (c >= 0x00 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* Length of an ANSI escape at v[i] (ESC '[' (digit|';')* letter; \d is any Nd digit, as in
 * Python's re), or 0. */
static size_t ansi_escape(const int32_t *v, size_t n, size_t i) {
    if (v[i] != 0x1B || i + 1 >= n || v[i + 1] != '[') return 0;
    size_t k = i + 2;
    while (k < n && (v[k] == ';' || tok_uni_is_decimal(v[k])))
        k++;
    if (k < n && ((v[k] >= 'a' && v[k] <= 'z') || (v[k] >= 'A' && v[k] <= 'Z'))) return k + 1 - i;
    return 0;
}

/* fix_line_breaks, remove_terminal_escapes and remove_control_chars in one pass: an escape
 * holds no line break, and its ESC would otherwise go as a control character. */
static int breaks_and_controls(tok_cps *text, tok_cps *scratch) {
    scratch->n = 0;
    if (tok_cps_reserve(scratch, text->n) != ENG_OK) return ENG_E_OOM;
    const int32_t *v = text->v;
    for (size_t i = 0; i < text->n; i++) {
        const int32_t c = v[i];
        if (c == 0x1B) {
            const size_t esc = ansi_escape(v, text->n, i);
            if (esc > 0) {
                i += esc - 1;
                continue;
            }
        }
        if (c == '\r') {
            if (i + 1 < text->n && v[i + 1] == '\n') i++;
            scratch->v[scratch->n++] = '\n';
        } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
            scratch->v[scratch->n++] = '\n';
        } else if (!is_ftfy_control(c)) {
            scratch->v[scratch->n++] = c;
        }
    }
    tok_cps_swap(text, scratch);
    return ENG_OK;
}

typedef struct clean_bufs {
    tok_cps seg, orig, s1, s2;
} clean_bufs;

/* One line of ftfy.fix_text: the fixes repeated until nothing changes. */
static int ftfy_segment(tok_cps *seg, int html, clean_bufs *b, eng_err *err) {
    for (int pass = 0; pass < TOK_FTFY_MAX_PASSES; pass++) {
        b->orig.n = 0;
        if (tok_cps_append(&b->orig, seg->v, seg->n) != ENG_OK) return oom(err);
        if (html && ftfy_unescape(seg, &b->s1, &b->s2) != ENG_OK) return oom(err);
        if (map_chars(seg, &b->s1) != ENG_OK) return oom(err);
        if (breaks_and_controls(seg, &b->s1) != ENG_OK) return oom(err);
        const int rc = tok_uni_nfc(seg, &b->s1, err);
        if (rc != ENG_OK) return rc;
        if (seg->n == b->orig.n &&
            (seg->n == 0 || memcmp(seg->v, b->orig.v, seg->n * sizeof(int32_t)) == 0))
            break;
    }
    return ENG_OK;
}

/* ftfy.fix_text: the text in lines (each with its '\n'); HTML unescaping stops for good at the
 * first line that holds a '<'. */
static int ftfy_fix(tok_cps *text, clean_bufs *b, eng_err *err) {
    tok_cps out = {0};
    int rc = ENG_OK, html = 1;
    if (tok_cps_reserve(&out, text->n) != ENG_OK) return oom(err);
    for (size_t pos = 0; pos < text->n;) {
        size_t end = pos;
        while (end < text->n && text->v[end] != '\n')
            end++;
        if (end < text->n) end++;
        b->seg.n = 0;
        if (tok_cps_append(&b->seg, text->v + pos, end - pos) != ENG_OK) {
            rc = oom(err);
            goto done;
        }
        for (size_t i = 0; i < b->seg.n && html; i++)
            if (b->seg.v[i] == '<') html = 0;
        if ((rc = ftfy_segment(&b->seg, html, b, err)) != ENG_OK) goto done;
        if (tok_cps_append(&out, b->seg.v, b->seg.n) != ENG_OK) {
            rc = oom(err);
            goto done;
        }
        pos = end;
    }
    tok_cps_swap(text, &out);
done:
    tok_cps_free(&out);
    return rc;
}

/* strip(), then runs of \s to one space, then strip() again (str.strip uses str.isspace, which
 * also counts U+001C..U+001F; the regex's \s does not). */
static void whitespace_clean(tok_cps *text) {
    const int32_t *v = text->v;
    size_t lo = 0, hi = text->n, w = 0;
    while (lo < hi && tok_uni_is_py_space(v[lo]))
        lo++;
    while (hi > lo && tok_uni_is_py_space(v[hi - 1]))
        hi--;
    for (size_t i = lo; i < hi;) {
        if (tok_uni_is_re_space(v[i])) {
            while (i < hi && tok_uni_is_re_space(v[i]))
                i++;
            text->v[w++] = ' ';
        } else {
            text->v[w++] = v[i++];
        }
    }
    lo = 0;
    while (lo < w && tok_uni_is_py_space(text->v[lo]))
        lo++;
    while (w > lo && tok_uni_is_py_space(text->v[w - 1]))
        w--;
    if (lo > 0) memmove(text->v, text->v + lo, (w - lo) * sizeof(int32_t));
    text->n = w - lo;
}

int tok_clean_cps(tok_cps *text, eng_err *err) {
    clean_bufs b = {{0}, {0}, {0}, {0}};
    int rc = ftfy_fix(text, &b, err);
    if (rc != ENG_OK) goto done;
    if (tok_html_unescape_py(text, &b.s1) != ENG_OK ||
        tok_html_unescape_py(text, &b.s1) != ENG_OK) {
        rc = oom(err);
        goto done;
    }
    whitespace_clean(text);
    if (tok_uni_lower(text, &b.s1) != ENG_OK) rc = oom(err);
done:
    tok_cps_free(&b.seg);
    tok_cps_free(&b.orig);
    tok_cps_free(&b.s1);
    tok_cps_free(&b.s2);
    return rc;
}

int tok_clean_text(char **out, size_t *out_len, const char *text, size_t len, eng_err *err) {
    tok_cps cps = {0};
    int rc = ENG_OK;
    ENG_ASSERT(out != NULL && out_len != NULL && (text != NULL || len == 0));
    if (len > TOK_MAX_TEXT_BYTES) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "tok_clean_text: text of %zu bytes is over the limit of %zu", len,
                         TOK_MAX_TEXT_BYTES);
        goto done;
    }
    if ((rc = tok_utf8_decode(&cps, text, len, "tok_clean_text", err)) != ENG_OK) goto done;
    if ((rc = tok_clean_cps(&cps, err)) != ENG_OK) goto done;
    if (tok_utf8_encode(out, out_len, cps.v, cps.n) != ENG_OK) rc = oom(err);
done:
    tok_cps_free(&cps);
    return rc;
}
