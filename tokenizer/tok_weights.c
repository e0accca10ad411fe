/* tok_weights.c: AUTOMATIC1111's prompt emphasis syntax (modules/prompt_parser.py,
 * parse_prompt_attention), rewritten from its behaviour: the same tokens in the same order of
 * preference, weights multiplied in double in the same order, runs of equal weight merged. */
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "tok_impl.h"

/* One entry of A1111's `res` list: a piece of text (in the shared buffer) and its weight. */
typedef struct piece {
    size_t off, len;
    double weight;
} piece;

typedef struct parser {
    piece *res;
    size_t n, cap;
    char *text; /* pieces' texts, in order and contiguous */
    size_t text_len;
    size_t *round, *square; /* open brackets: index into res where each starts */
    size_t n_round, n_square;
} parser;

static int add_piece(parser *p, const char *s, size_t len) {
    if (p->n == p->cap) {
        const size_t cap = p->cap != 0 ? p->cap * 2 : 16;
        piece *r = realloc(p->res, cap * sizeof *r);
        if (r == NULL) return ENG_E_OOM;
        p->res = r;
        p->cap = cap;
    }
    memcpy(p->text + p->text_len, s, len);
    p->res[p->n].off = p->text_len;
    p->res[p->n].len = len;
    p->res[p->n].weight = 1.0;
    p->text_len += len;
    p->n++;
    return ENG_OK;
}

static void multiply_range(parser *p, size_t start, double m) {
    for (size_t i = start; i < p->n; i++)
        p->res[i].weight *= m;
}

/* Python's float() of "[+-]?[.\d]+" (digits may be any Unicode Nd): sign, digits, at most one
 * '.', at least one digit. Returns 0 when float() would raise. Correctly rounded, as Python's:
 * exact with up to 15 significant digits and a power of ten up to 1e22 (one rounding); longer
 * numbers go through strtod. */
static int parse_weight(double *out, const int32_t *v, size_t n) {
    char buf[80];
    size_t k = 0, digits = 0, dots = 0, frac = 0;
    uint64_t mant = 0;
    int sig = 0, neg = 0;
    if (n > 0 && (v[0] == '+' || v[0] == '-')) {
        neg = v[0] == '-';
        buf[k++] = (char)v[0];
        v++;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '.') {
            dots++;
            if (k < sizeof buf - 1) buf[k++] = '.';
            continue;
        }
        const int d = tok_uni_decimal_value(v[i]);
        if (d < 0) return 0;
        digits++;
        if (dots > 0) frac++;
        if (k < sizeof buf - 1) buf[k++] = (char)('0' + d);
        if (mant > 0 || d > 0) sig++;
        if (sig <= 19) mant = mant * 10 + (uint64_t)d;
    }
    if (digits == 0 || dots > 1) return 0;
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (sig <= 15 && frac <= 22) {
        const double m = (double)mant / p10[frac];
        *out = neg ? -m : m;
        return 1;
    }
    if (k >= sizeof buf - 1) return 0; /* a 70-digit weight: treat it as text */
    buf[k] = '\0';
    /* strtod reads the locale's decimal point; write that one. */
    const char *dp = localeconv()->decimal_point;
    char *dot = strchr(buf, '.');
    if (dot != NULL && dp != NULL && dp[0] != '\0' && dp[1] == '\0') *dot = dp[0];
    *out = strtod(buf, NULL);
    return 1;
}

/* Matches ":\s*([+-]?[.\d]+)\s*\)" at v[i] == ':'. Returns the match length (0: none) and the
 * number's span. */
static size_t weight_at(const int32_t *v, size_t n, size_t i, size_t *num_start, size_t *num_end) {
    size_t k = i + 1;
    while (k < n && tok_uni_is_py_space(v[k]))
        k++;
    const size_t start = k;
    if (k < n && (v[k] == '+' || v[k] == '-')) k++;
    const size_t body = k;
    while (k < n && (v[k] == '.' || tok_uni_is_decimal(v[k])))
        k++;
    if (k == body) return 0;
    const size_t end = k;
    while (k < n && tok_uni_is_py_space(v[k]))
        k++;
    if (k >= n || v[k] != ')') return 0;
    *num_start = start;
    *num_end = end;
    return k + 1 - i;
}

static int is_special(int32_t c) {
    return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':';
}

/* Appends v[a..b) as UTF-8 text (one piece). */
static int add_cps(parser *p, const int32_t *v, size_t a, size_t b, char *scratch) {
    size_t len = 0;
    for (size_t i = a; i < b; i++)
        len += tok_utf8_put(scratch + len, v[i]);
    return add_piece(p, scratch, len);
}

int tok_prompt_parse(
    tok_span **spans, int64_t *n_spans, const char *text, size_t len, eng_err *err) {
    static const char who[] = "tok_prompt_parse";
    parser p = {0};
    tok_cps cps = {0};
    char *scratch = NULL, *blk = NULL;
    int rc = ENG_OK;
    ENG_ASSERT(spans != NULL && n_spans != NULL && (text != NULL || len == 0));
    *spans = NULL;
    *n_spans = 0;
    if (len > TOK_MAX_TEXT_BYTES) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: text of %zu bytes is over the limit of %zu",
                         who, len, TOK_MAX_TEXT_BYTES);
        goto done;
    }
    if ((rc = tok_utf8_decode(&cps, text, len, who, err)) != ENG_OK) goto done;
    const int32_t *v = cps.v;
    const size_t n = cps.n;
    /* Every piece is a part of the text, so the texts fit in len bytes; each bracket opens once. */
    p.text = malloc(len + 1);
    scratch = malloc(len + 1);
    p.round = malloc((n + 1) * sizeof *p.round);
    p.square = malloc((n + 1) * sizeof *p.square);
    if (p.text == NULL || scratch == NULL || p.round == NULL || p.square == NULL) goto oom;
    for (size_t i = 0; i < n;) {
        const int32_t c = v[i];
        size_t a = 0, b = 0, w;
        if (c == '\\') {
            /* "\(" "\)" "\[" "\]" "\\" are the character; a lone '\' is dropped (A1111 appends
             * text[1:] of the one-character match, an empty piece). */
            const int esc = i + 1 < n && (v[i + 1] == '(' || v[i + 1] == ')' || v[i + 1] == '[' ||
                                          v[i + 1] == ']' || v[i + 1] == '\\');
            if (add_cps(&p, v, i + 1, i + 1 + (size_t)esc, scratch) != ENG_OK) goto oom;
            i += 1 + (size_t)esc;
        } else if (c == '(') {
            p.round[p.n_round++] = p.n;
            i++;
        } else if (c == '[') {
            p.square[p.n_square++] = p.n;
            i++;
        } else if (c == ':' && (w = weight_at(v, n, i, &a, &b)) > 0) {
            double m = 0.0;
            if (p.n_round > 0 && parse_weight(&m, v + a, b - a)) {
                multiply_range(&p, p.round[--p.n_round], m);
            } else if (add_cps(&p, v, i, i + w, scratch) != ENG_OK) {
                goto oom; /* no open '(' (or a number float() rejects): the text stays */
            }
            i += w;
        } else if (c == ')' && p.n_round > 0) {
            multiply_range(&p, p.round[--p.n_round], 1.1);
            i++;
        } else if (c == ']' && p.n_square > 0) {
            multiply_range(&p, p.square[--p.n_square], 1.0 / 1.1);
            i++;
        } else if (c == ')' || c == ']' || c == ':') {
            if (add_cps(&p, v, i, i + 1, scratch) != ENG_OK) goto oom;
            i++;
        } else {
            size_t e = i + 1;
            while (e < n && !is_special(v[e]))
                e++;
            if (add_cps(&p, v, i, e, scratch) != ENG_OK) goto oom;
            i = e;
        }
    }
    for (size_t k = 0; k < p.n_round; k++)
        multiply_range(&p, p.round[k], 1.1);
    for (size_t k = 0; k < p.n_square; k++)
        multiply_range(&p, p.square[k], 1.0 / 1.1);
    if (p.n == 0 && add_piece(&p, "", 0) != ENG_OK) goto oom;
    /* Merge neighbours of equal weight (their texts are adjacent in p.text). */
    size_t m = 0;
    for (size_t i = 1; i < p.n; i++) {
        if (p.res[i].weight == p.res[m].weight) {
            p.res[m].len += p.res[i].len;
        } else {
            p.res[++m] = p.res[i];
        }
    }
    const size_t count = m + 1;
    /* One block: the spans, then their NUL-terminated texts. */
    if ((blk = malloc(count * sizeof(tok_span) + p.text_len + count)) == NULL) goto oom;
    tok_span *out = (tok_span *)(void *)blk;
    char *dst = blk + count * sizeof(tok_span);
    for (size_t i = 0; i < count; i++) {
        memcpy(dst, p.text + p.res[i].off, p.res[i].len);
        dst[p.res[i].len] = '\0';
        out[i].text = dst;
        out[i].len = p.res[i].len;
        out[i].weight = p.res[i].weight;
        dst += p.res[i].len + 1;
    }
    *spans = out;
    *n_spans = (int64_t)count;
    blk = NULL;
    goto done;
oom:
    rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", who);
done:
    free(blk);
    free(p.res);
    free(p.text);
    free(p.round);
    free(p.square);
    free(scratch);
    tok_cps_free(&cps);
    return rc;
}
