/* tok_text.c: code point buffers, strict UTF-8, and the Unicode properties the tokenizer needs,
 * from utf8proc. Where Python's definitions are not plain Unicode properties (str.isspace,
 * str.lower's final sigma) they are built from utf8proc's categories and case mappings. */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tok_impl.h"

void tok_cps_free(tok_cps *b) {
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

int tok_cps_reserve(tok_cps *b, size_t extra) {
    if (extra <= b->cap - b->n) return ENG_OK;
    if (extra > (SIZE_MAX / sizeof(int32_t)) / 2 - b->n) return ENG_E_OOM;
    size_t cap = b->cap != 0 ? b->cap : 64;
    while (cap - b->n < extra)
        cap *= 2;
    int32_t *v = realloc(b->v, cap * sizeof(int32_t));
    if (v == NULL) return ENG_E_OOM;
    b->v = v;
    b->cap = cap;
    return ENG_OK;
}

int tok_cps_push(tok_cps *b, int32_t c) {
    if (b->n == b->cap && tok_cps_reserve(b, 1) != ENG_OK) return ENG_E_OOM;
    b->v[b->n++] = c;
    return ENG_OK;
}

int tok_cps_append(tok_cps *b, const int32_t *c, size_t n) {
    if (n == 0) return ENG_OK;
    if (tok_cps_reserve(b, n) != ENG_OK) return ENG_E_OOM;
    memcpy(b->v + b->n, c, n * sizeof(int32_t));
    b->n += n;
    return ENG_OK;
}

void tok_cps_swap(tok_cps *a, tok_cps *b) {
    const tok_cps t = *a;
    *a = *b;
    *b = t;
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

/* Decodes one code point at s[i..len); returns its length, or 0 when the bytes are not valid
 * UTF-8 (RFC 3629: shortest form, no surrogates, at most U+10FFFF). */
static size_t utf8_next(const unsigned char *s, size_t len, size_t i, int32_t *cp) {
    const unsigned c = s[i];
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;
    int32_t v;
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = (int32_t)(c & 0x1F);
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = (int32_t)(c & 0x0F);
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = (int32_t)(c & 0x07);
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (len - i < n) return 0;
    for (size_t k = 1; k < n; k++) {
        const unsigned t = s[i + k];
        if (t < (k == 1 ? lo : 0x80) || t > (k == 1 ? hi : 0xBF)) return 0;
        v = (v << 6) | (int32_t)(t & 0x3F);
    }
    *cp = v;
    return n;
}

int tok_utf8_decode(tok_cps *out, const char *s, size_t len, const char *who, eng_err *err) {
    const unsigned char *u = (const unsigned char *)s;
    /* Every byte gives at most one code point. */
    if (tok_cps_reserve(out, len) != ENG_OK)
        return eng_err_set(err, ENG_E_OOM, "%s: out of memory for %zu code points", who, len);
    for (size_t i = 0; i < len;) {
        int32_t cp = 0;
        const size_t n = utf8_next(u, len, i, &cp);
        if (n == 0) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: invalid UTF-8 at byte %zu (0x%02X): the text must be UTF-8",
                               who, i, (unsigned)u[i]);
        }
        out->v[out->n++] = cp;
        i += n;
    }
    return ENG_OK;
}

size_t tok_utf8_next(const char *s, size_t len, size_t i, int32_t *cp) {
    return utf8_next((const unsigned char *)s, len, i, cp);
}

int tok_utf8_valid(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        const size_t n = utf8_next(u, len, i, &cp);
        if (n == 0) return 0;
        i += n;
    }
    return 1;
}

size_t tok_utf8_put(char *out, int32_t c) {
    const uint32_t u = (uint32_t)c;
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (char)(0xC0 | (u >> 6));
        out[1] = (char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (char)(0xE0 | (u >> 12));
        out[1] = (char)(0x80 | ((u >> 6) & 0x3F));
        out[2] = (char)(0x80 | (u & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (u >> 18));
    out[1] = (char)(0x80 | ((u >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((u >> 6) & 0x3F));
    out[3] = (char)(0x80 | (u & 0x3F));
    return 4;
}

int tok_utf8_encode(char **out, size_t *out_len, const int32_t *cps, size_t n) {
    if (n > (SIZE_MAX - 1) / 4) return ENG_E_OOM;
    char *s = malloc(4 * n + 1);
    size_t k = 0;
    if (s == NULL) return ENG_E_OOM;
    for (size_t i = 0; i < n; i++)
        k += tok_utf8_put(s + k, cps[i]);
    s[k] = '\0';
    *out = s;
    *out_len = k;
    return ENG_OK;
}

/* ---- properties --------------------------------------------------------------------------- */

static int category(int32_t c) {
    return (int)utf8proc_category(c);
}

int tok_uni_is_letter(int32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const int k = category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

int tok_uni_is_number(int32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    const int k = category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

int tok_uni_is_decimal(int32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return category(c) == UTF8PROC_CATEGORY_ND;
}

/* Unicode encodes decimal digits (Nd) in runs of ten, 0 to 9 in order, so a digit's value is its
 * distance from the start of its run (adjacent runs, as in U+1D7CE.., each start at 0). */
int tok_uni_decimal_value(int32_t c) {
    if (!tok_uni_is_decimal(c)) return -1;
    int32_t start = c;
    while (start > 0 && c - start < 100 && tok_uni_is_decimal(start - 1))
        start--;
    return (int)((c - start) % 10);
}

/* The White_Space property, which is what `regex` matches with \s: the space separators (Zs),
 * U+2028 (Zl), U+2029 (Zp), and the controls TAB..CR and NEL. */
int tok_uni_is_re_space(int32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    if (c == 0x85) return 1;
    const int k = category(c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

/* Python's str.isspace() adds the information separators U+001C..U+001F (bidi class B/S). */
int tok_uni_is_py_space(int32_t c) {
    return tok_uni_is_re_space(c) || (c >= 0x1C && c <= 0x1F);
}

/* Case_Ignorable (Unicode's derived property, used by the final-sigma rule): Mn Me Cf Lm Sk, and
 * the Word_Break MidLetter / MidNumLet / Single_Quote characters, which utf8proc does not expose,
 * so they are listed here (UAX #29; the same 17 code points in Unicode 14 and 15). */
static int is_case_ignorable(int32_t c) {
    static const int32_t mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,
                                  0x5F4,  0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                  0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    const int k = category(c);
    if (k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
        k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK)
        return 1;
    for (size_t i = 0; i < sizeof mid / sizeof mid[0]; i++)
        if (mid[i] == c) return 1;
    return 0;
}

/* Cased (Lowercase or Uppercase or Lt). utf8proc has no Other_Lowercase/Other_Uppercase; a case
 * mapping catches most of them (Ⓐ ⓐ Ⅰ ⅰ U+0345), and the rest that matter here (cased and not
 * case-ignorable: ª º and the squared/negative Latin capitals) are listed. Checked against
 * Python's own sets over every code point while writing this. */
static int is_cased(int32_t c) {
    const int k = category(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT)
        return 1;
    if (utf8proc_tolower(c) != c || utf8proc_toupper(c) != c) return 1;
    return c == 0xAA || c == 0xBA || (c >= 0x1F130 && c <= 0x1F149) ||
           (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
}

/* Python's rule for U+03A3 in str.lower(): final form when a cased character comes before it
 * (skipping case-ignorable ones) and none comes after it (likewise). */
static int final_sigma(const int32_t *v, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && is_case_ignorable(v[j - 1]))
        j--;
    if (j == 0 || !is_cased(v[j - 1])) return 0;
    j = i + 1;
    while (j < n && is_case_ignorable(v[j]))
        j++;
    return j == n || !is_cased(v[j]);
}

int tok_uni_lower(tok_cps *text, tok_cps *scratch) {
    size_t grow = 0;
    for (size_t i = 0; i < text->n; i++) {
        const int32_t c = text->v[i];
        if (c >= 0x80) {
            if (c == 0x130) grow++;
            continue;
        }
        if (c >= 'A' && c <= 'Z') text->v[i] = c + 32;
    }
    int fast = 1;
    for (size_t i = 0; i < text->n && fast; i++)
        fast = text->v[i] < 0x80;
    if (fast) return ENG_OK;
    scratch->n = 0;
    if (tok_cps_reserve(scratch, text->n + grow) != ENG_OK) return ENG_E_OOM;
    for (size_t i = 0; i < text->n; i++) {
        const int32_t c = text->v[i];
        if (c == 0x130) { /* SpecialCasing: the only unconditional multi-character lowercase */
            scratch->v[scratch->n++] = 0x69;
            scratch->v[scratch->n++] = 0x307;
        } else if (c == 0x3A3) {
            scratch->v[scratch->n++] = final_sigma(text->v, text->n, i) ? 0x3C2 : 0x3C3;
        } else {
            scratch->v[scratch->n++] = c < 0x80 ? c : utf8proc_tolower(c);
        }
    }
    tok_cps_swap(text, scratch);
    return ENG_OK;
}

static int ccc(int32_t c) {
    return (int)utf8proc_get_property(c)->combining_class;
}

int tok_uni_nfc(tok_cps *text, tok_cps *scratch, eng_err *err) {
    int any = 0;
    /* Below U+0300 there are no combining marks and nothing that decomposes canonically to
     * something else under NFC, so such text is already NFC. */
    for (size_t i = 0; i < text->n && !any; i++)
        any = text->v[i] >= 0x300;
    if (!any) return ENG_OK;
    scratch->n = 0;
    for (size_t i = 0; i < text->n; i++) {
        int32_t buf[32];
        int bound = 0;
        const utf8proc_ssize_t k =
            utf8proc_decompose_char(text->v[i], buf, 32, UTF8PROC_DECOMPOSE, &bound);
        if (k < 0 || k > 32) {
            return eng_err_set(err, ENG_E_INVALID_ARG, "tok_clean_text: cannot normalize U+%04X",
                               (unsigned)text->v[i]);
        }
        if (tok_cps_append(scratch, buf, (size_t)k) != ENG_OK)
            return eng_err_set(err, ENG_E_OOM, "tok_clean_text: out of memory");
    }
    /* Canonical ordering: marks with a non-zero combining class sorted by class (stable). */
    for (size_t i = 1; i < scratch->n; i++) {
        size_t j = i;
        while (j > 0) {
            const int a = ccc(scratch->v[j - 1]), b = ccc(scratch->v[j]);
            if (b == 0 || a <= b) break;
            const int32_t t = scratch->v[j - 1];
            scratch->v[j - 1] = scratch->v[j];
            scratch->v[j] = t;
            j--;
        }
    }
    const utf8proc_ssize_t m = utf8proc_normalize_utf32(scratch->v, (utf8proc_ssize_t)scratch->n,
                                                        UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "tok_clean_text: NFC failed: %s",
                           utf8proc_errmsg(m));
    }
    scratch->n = (size_t)m;
    tok_cps_swap(text, scratch);
    return ENG_OK;
}
