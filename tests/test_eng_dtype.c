/* test_eng_dtype.c: dtype sizes, names and parsing, and the f32 <-> f16 / bf16 / fp8 e4m3
 * conversions, bit for bit against numpy / ml_dtypes goldens (tests/golden/dtype_conversions.txt,
 * written by tests/gen_dtype_goldens.py) and against a slow independent reference written here
 * in double arithmetic (frexp/ldexp/nearbyint), which also localizes any difference. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_dtype.h"
#include "eng_half_math.h"
#include "eng_test.h"

/* ---- the golden file ------------------------------------------------------------------------ */
#define MAX_SAMPLES 256

typedef struct golden_set {
    int64_t count;
    uint64_t hash;
    int nsamples;
    uint32_t in[MAX_SAMPLES];
    uint32_t out[MAX_SAMPLES];
} golden_set;

/* Reads set `name` from dtype_conversions.txt. Returns 0 or prints why not and returns 1. */
static int golden_load(golden_set *g, const char *name) {
    char path[1024], line[256], want[128];
    int rc = 1, in_set = 0;
    snprintf(path, sizeof path, "%s/golden/dtype_conversions.txt", ENG_TEST_SOURCE_DIR);
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open (run tests/gen_dtype_goldens.py)\n", path);
        return 1;
    }
    snprintf(want, sizeof want, "set %s ", name);
    while (fgets(line, sizeof line, f) != NULL) {
        if (!in_set) {
            if (strncmp(line, want, strlen(want)) != 0) continue;
            if (sscanf(line + strlen(want), "count %" SCNd64 " fnv1a64 %" SCNx64, &g->count,
                       &g->hash) != 2) {
                fprintf(stderr, "%s: bad header line for %s: %s", path, name, line);
                goto done;
            }
            in_set = 1;
            continue;
        }
        if (strncmp(line, "end", 3) == 0) {
            rc = 0;
            goto done;
        }
        unsigned a = 0, b = 0;
        if (sscanf(line, "%x %x", &a, &b) != 2 || g->nsamples >= MAX_SAMPLES) {
            fprintf(stderr, "%s: set %s: bad sample line: %s", path, name, line);
            goto done;
        }
        g->in[g->nsamples] = a;
        g->out[g->nsamples] = b;
        g->nsamples++;
    }
    fprintf(stderr, "%s: set %s %s\n", path, name, in_set ? "has no end line" : "not found");
done:
    fclose(f);
    return rc;
}

/* FNV-1a 64 over `nbytes`-byte little-endian values, continuing from h. */
static uint64_t fnv1a64_value(uint64_t h, uint32_t v, int nbytes) {
    for (int i = 0; i < nbytes; i++) {
        h ^= (v >> (8 * i)) & 0xffu;
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_OFFSET 0xcbf29ce484222325ull

/* ---- inputs (identical to tests/gen_dtype_goldens.py; read its docstring) -------------------- */
static const uint32_t extras[] = {
    0x477FE000, 0x477FE001, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000, 0x43E00000,
    0x43E7FFFF, 0x43E80000, 0x43E80001, 0x43F00000, 0x33800000, 0x33000000, 0x33000001,
    0x33400000, 0x38800000, 0x387FC000, 0x3B000000, 0x3A800000, 0x3A800001, 0x3C800000,
    0x3F800000, 0x3EAAAAAB, 0x40490FDB, 0x3DCCCCCD, 0x7F7FFFFF, 0x00000001, 0x807FFFFF,
    0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000,
};

/* The f32 sweep; *n gets its length. Caller frees. */
static uint32_t *f32_sweep(int64_t *n) {
    uint32_t mant[3 + 23 * 9];
    int nm = 0;
    mant[nm++] = 0;
    mant[nm++] = 1;
    mant[nm++] = 0x7fffff;
    for (int d = 1; d <= 23; d++) {
        const uint32_t h = 1u << (d - 1);
        const uint32_t ks[3] = {h, 3 * h, (0x7fffffu & ~(2 * h - 1)) | h};
        for (int k = 0; k < 3; k++) {
            for (int delta = -1; delta <= 1; delta++)
                mant[nm++] = (ks[k] + (uint32_t)delta) & 0x7fffffu;
        }
    }
    const int64_t next = (int64_t)(sizeof extras / sizeof extras[0]);
    const int64_t total = 2 * 256 * (int64_t)nm + 65536 + next;
    uint32_t *v = malloc((size_t)total * sizeof *v);
    if (v == NULL) return NULL;
    int64_t j = 0;
    for (uint32_t sign = 0; sign < 2; sign++) {
        for (uint32_t exp = 0; exp < 256; exp++) {
            for (int m = 0; m < nm; m++)
                v[j++] = (sign << 31) | (exp << 23) | mant[m];
        }
    }
    for (uint32_t i = 0; i < 65536; i++)
        v[j++] = i * 0x9E3779B1u + 0x7F4A7C15u; /* mod 2^32 */
    for (int64_t i = 0; i < next; i++)
        v[j++] = extras[i];
    *n = j;
    return v;
}

static uint32_t *all_patterns(int bits, int64_t *n) {
    *n = (int64_t)1 << bits;
    uint32_t *v = malloc((size_t)*n * sizeof *v);
    if (v == NULL) return NULL;
    for (int64_t i = 0; i < *n; i++)
        v[i] = (uint32_t)i;
    return v;
}

/* ---- conversions under test (the public API where there is one) ---------------------------- */
typedef uint32_t (*conv_fn)(uint32_t in);

static uint32_t conv_f16_to_f32(uint32_t in) {
    const eng_f16 h = {(uint16_t)in};
    const float f = eng_f16_to_f32(h);
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static uint32_t conv_f32_to_f16(uint32_t in) {
    float f;
    memcpy(&f, &in, sizeof f);
    return eng_f32_to_f16(f).bits;
}
static uint32_t conv_bf16_to_f32(uint32_t in) {
    const eng_bf16 h = {(uint16_t)in};
    const float f = eng_bf16_to_f32(h);
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static uint32_t conv_f32_to_bf16(uint32_t in) {
    float f;
    memcpy(&f, &in, sizeof f);
    return eng_f32_to_bf16(f).bits;
}
static uint32_t conv_e4m3_to_f32(uint32_t in) {
    return eng_half_e4m3_to_f32((uint8_t)in);
}
static uint32_t conv_f32_to_e4m3(uint32_t in) {
    return eng_half_f32_to_e4m3(in);
}
static uint32_t conv_f32_to_e4m3_sat(uint32_t in) {
    return eng_half_f32_to_e4m3_sat(in);
}

/* ---- the independent reference --------------------------------------------------------------- */
/* A small float format: `p` significand bits (implicit one included), smallest normal 2^emin,
 * `emax` the largest exponent, `nan_top`: the all-ones exponent holds inf/NaN (IEEE) or only the
 * all-ones pattern is NaN (e4m3fn). */
typedef struct ref_format {
    const char *name;
    int p, emin, ebits, bias;
    int ieee_specials; /* 1: exponent all ones is inf/NaN; 0: only S.1111.111 is NaN (e4m3fn) */
} ref_format;

static const ref_format fmt_f16 = {"f16", 11, -14, 5, 15, 1};
static const ref_format fmt_bf16 = {"bf16", 8, -126, 8, 127, 1};
static const ref_format fmt_e4m3 = {"e4m3", 4, -6, 4, 7, 0};

static int fmt_total_bits(const ref_format *fm) {
    return 1 + fm->ebits + (fm->p - 1);
}

/* The value of bits in format fm, as a double (NaN for NaNs). */
static double ref_decode(const ref_format *fm, uint32_t bits) {
    const int mbits = fm->p - 1;
    const uint32_t emask = (1u << fm->ebits) - 1u, mmask = (1u << mbits) - 1u;
    const int neg = (bits >> (fm->ebits + mbits)) & 1u;
    const uint32_t e = (bits >> mbits) & emask, m = bits & mmask;
    double v;
    if (fm->ieee_specials && e == emask) {
        v = m == 0 ? INFINITY : NAN;
    } else if (!fm->ieee_specials && e == emask && m == mmask) {
        v = NAN;
    } else if (e == 0) {
        v = ldexp((double)m, fm->emin - mbits);
    } else {
        v = ldexp((double)(m | (1u << mbits)), (int)e - fm->bias - mbits);
    }
    return neg ? -v : v;
}

/* |x| rounded to fm's precision and exponent range, ties to even, unbounded above (the caller
 * applies the overflow rule). x finite. */
static double ref_round(const ref_format *fm, double x) {
    int e2 = 0;
    const double ax = fabs(x);
    if (ax == 0.0) return 0.0;
    frexp(ax, &e2);                 /* ax = fr * 2^e2, fr in [0.5, 1): ax in [2^(e2-1), 2^e2) */
    int e = e2 - 1;                 /* ax = 1.xxx * 2^e */
    if (e < fm->emin) e = fm->emin; /* subnormal: fixed spacing */
    const double quantum = ldexp(1.0, e - (fm->p - 1));
    return nearbyint(ax / quantum) * quantum; /* exact scaling; nearbyint rounds ties to even */
}

/* Checks one f32 -> fm conversion result against the reference; 0 if right, else prints. */
static int ref_check_narrow(const ref_format *fm, int saturate, uint32_t in, uint32_t out) {
    float xf;
    memcpy(&xf, &in, sizeof xf);
    const double x = xf;
    const int nbits = fmt_total_bits(fm), mbits = fm->p - 1;
    const uint32_t sign_out = (in >> 31) << (nbits - 1);
    const uint32_t exp_ones = ((1u << fm->ebits) - 1u) << mbits;
    uint32_t want_bits = 0;
    int by_bits = 0; /* 1: the expected result is a bit pattern (NaN, inf) */
    double want = 0.0;
    if (isnan(x)) {
        by_bits = 1;
        if (fm == &fmt_f16) { /* numpy: top payload bits kept, forced non-zero */
            const uint32_t payload = (in & 0x7fffffu) >> 13;
            want_bits = sign_out | exp_ones | (payload != 0 ? payload : 1u);
        } else if (fm == &fmt_bf16) { /* ml_dtypes: quiet NaN, sign kept */
            want_bits = sign_out | 0x7fc0u;
        } else {
            want_bits = sign_out | 0x7fu;
        }
    } else {
        /* the largest finite value of the format */
        const uint32_t max_bits =
            fm->ieee_specials ? exp_ones - 1u : exp_ones | ((1u << mbits) - 2u);
        const double maxfin = ref_decode(fm, max_bits);
        want = isinf(x) ? INFINITY : ref_round(fm, x);
        if (want > maxfin) {
            by_bits = 1;
            if (fm->ieee_specials)
                want_bits = sign_out | exp_ones; /* inf */
            else if (saturate)
                want_bits = sign_out | max_bits; /* +-448 */
            else
                want_bits = sign_out | exp_ones | ((1u << mbits) - 1u); /* NaN */
        }
    }
    if (by_bits) {
        if (out == want_bits) return 0;
        fprintf(stderr,
                "reference: f32 0x%08" PRIx32 " (%.9g) -> %s: got 0x%0*" PRIx32
                ", expected 0x%0*" PRIx32 "\n",
                in, x, fm->name, nbits / 4, out, nbits / 4, want_bits);
        return 1;
    }
    const double got = ref_decode(fm, out);
    const double want_signed = (in >> 31) ? -want : want;
    if (got == want_signed && signbit(got) == signbit(want_signed)) return 0;
    fprintf(stderr,
            "reference: f32 0x%08" PRIx32 " (%.9g) -> %s: got 0x%0*" PRIx32
            " (%.9g), expected the value %.9g\n",
            in, x, fm->name, nbits / 4, out, got, want_signed);
    return 1;
}

/* Checks one fm -> f32 result: the exact value, NaN by the payload rules. */
static int ref_check_widen(const ref_format *fm, uint32_t in, uint32_t out) {
    const double v = ref_decode(fm, in);
    const int nbits = fmt_total_bits(fm), mbits = fm->p - 1;
    uint32_t want;
    if (isnan(v)) {
        const uint32_t sign = ((in >> (nbits - 1)) & 1u) << 31;
        const uint32_t m = in & ((1u << mbits) - 1u);
        if (fm == &fmt_e4m3)
            want = sign | 0x7fc00000u; /* ml_dtypes: quiet NaN */
        else
            want = sign | 0x7f800000u | (m << (23 - mbits)); /* payload kept, not quieted */
    } else {
        const float f = (float)v; /* exact: every value of these formats is an f32 */
        memcpy(&want, &f, sizeof want);
    }
    if (out == want) return 0;
    fprintf(stderr,
            "reference: %s 0x%0*" PRIx32 " -> f32: got 0x%08" PRIx32 ", expected 0x%08" PRIx32 "\n",
            fm->name, nbits / 4, in, out, want);
    return 1;
}

/* ---- one golden set ------------------------------------------------------------------------- */
typedef struct conv_case {
    const char *set; /* name in the golden file */
    conv_fn conv;
    int out_bytes;         /* bytes hashed per output */
    const ref_format *fmt; /* the narrow format */
    int widen;             /* 1: fmt -> f32, 0: f32 -> fmt */
    int saturate;
} conv_case;

static int check_conversion(const conv_case *c, const uint32_t *inputs, int64_t n) {
    golden_set g;
    int failed = 0;
    if (golden_load(&g, c->set) != 0) return 1;
    if (g.count != n) {
        fprintf(stderr,
                "%s: golden has %" PRId64 " inputs, the test made %" PRId64
                " (sweep out of step with tests/gen_dtype_goldens.py?)\n",
                c->set, g.count, n);
        return 1;
    }
    CHECK(g.nsamples >= 32);
    /* 1. the sampled pairs: these name a failing input directly */
    for (int i = 0; i < g.nsamples; i++) {
        const uint32_t got = c->conv(g.in[i]);
        if (got != g.out[i]) {
            fprintf(stderr,
                    "%s: sample input 0x%08" PRIx32 ": engine 0x%08" PRIx32 ", golden 0x%08" PRIx32
                    "\n",
                    c->set, g.in[i], got, g.out[i]);
            failed = 1;
            break;
        }
    }
    /* 2. the hash of every output, and 3. the independent reference for every input */
    uint64_t h = FNV_OFFSET;
    int64_t first_bad = -1; /* the reference prints only the first differing input */
    for (int64_t i = 0; i < n; i++) {
        const uint32_t out = c->conv(inputs[i]);
        h = fnv1a64_value(h, out, c->out_bytes);
        if (first_bad < 0 && (c->widen ? ref_check_widen(c->fmt, inputs[i], out)
                                       : ref_check_narrow(c->fmt, c->saturate, inputs[i], out))) {
            first_bad = i;
        }
    }
    if (h != g.hash) {
        fprintf(stderr,
                "%s: hash of %" PRId64 " outputs: engine %016" PRIx64 ", golden %016" PRIx64 "%s\n",
                c->set, n, h, g.hash,
                first_bad >= 0
                    ? ""
                    : " (the reference agrees with the engine on every input: stale golden?)");
        failed = 1;
    }
    if (first_bad >= 0) {
        fprintf(stderr,
                "%s: first input differing from the double-arithmetic reference: index %" PRId64
                " (printed above)\n",
                c->set, first_bad);
        failed = 1;
    }
    if (!failed) {
        printf("%s: %" PRId64 " values, hash %016" PRIx64 ", %d samples: match\n", c->set, n, h,
               g.nsamples);
    }
    return failed;
}

static int run_all(const conv_case *c, int bits) {
    int64_t n = 0;
    uint32_t *in = all_patterns(bits, &n);
    CHECK(in != NULL);
    const int rc = check_conversion(c, in, n);
    free(in);
    return rc;
}

static int run_sweep(const conv_case *c) {
    int64_t n = 0;
    uint32_t *in = f32_sweep(&n);
    CHECK(in != NULL);
    const int rc = check_conversion(c, in, n);
    free(in);
    return rc;
}

/* ---- cases ----------------------------------------------------------------------------------- */
static int test_f16_to_f32_all(void) {
    const conv_case c = {"f16_to_f32_all", conv_f16_to_f32, 4, &fmt_f16, 1, 0};
    /* spot values that must hold whatever the golden says */
    CHECK(eng_f16_to_f32((eng_f16){0x3c00}) == 1.0f);
    CHECK(eng_f16_to_f32((eng_f16){0x7bff}) == 65504.0f);
    CHECK(eng_f16_to_f32((eng_f16){0x0001}) == ldexpf(1.0f, -24));
    CHECK(conv_f16_to_f32(0x7c01) == 0x7f802000u); /* signaling NaN stays signaling */
    return run_all(&c, 16);
}

static int test_f32_to_f16_sweep(void) {
    const conv_case c = {"f32_to_f16_sweep", conv_f32_to_f16, 2, &fmt_f16, 0, 0};
    CHECK_EQ_I64(eng_f32_to_f16(65504.0f).bits, 0x7bff);
    CHECK_EQ_I64(eng_f32_to_f16(65519.996f).bits, 0x7bff);        /* below the overflow tie */
    CHECK_EQ_I64(eng_f32_to_f16(65520.0f).bits, 0x7c00);          /* the tie rounds to even: inf */
    CHECK_EQ_I64(eng_f32_to_f16(ldexpf(1.0f, -25)).bits, 0x0000); /* tie to even: 0 */
    CHECK_EQ_I64(eng_f32_to_f16(ldexpf(3.0f, -26)).bits, 0x0001); /* above the tie */
    CHECK_EQ_I64(eng_f32_to_f16(1.0f + ldexpf(1.0f, -11)).bits, 0x3c00); /* tie, even kept */
    CHECK_EQ_I64(eng_f32_to_f16(1.0f + ldexpf(3.0f, -11)).bits, 0x3c02); /* tie, odd: up */
    CHECK_EQ_I64(conv_f32_to_f16(0x7f800001u), 0x7c01); /* payload lost: forced non-zero */
    return run_sweep(&c);
}

static int test_bf16_to_f32_all(void) {
    const conv_case c = {"bf16_to_f32_all", conv_bf16_to_f32, 4, &fmt_bf16, 1, 0};
    CHECK(eng_bf16_to_f32((eng_bf16){0x3f80}) == 1.0f);
    CHECK(conv_bf16_to_f32(0x7f81) == 0x7f810000u);
    return run_all(&c, 16);
}

static int test_f32_to_bf16_sweep(void) {
    const conv_case c = {"f32_to_bf16_sweep", conv_f32_to_bf16, 2, &fmt_bf16, 0, 0};
    CHECK_EQ_I64(eng_f32_to_bf16(1.0f).bits, 0x3f80);
    CHECK_EQ_I64(conv_f32_to_bf16(0x3f808000u), 0x3f80); /* tie, even kept */
    CHECK_EQ_I64(conv_f32_to_bf16(0x3f818000u), 0x3f82); /* tie, odd: up */
    CHECK_EQ_I64(conv_f32_to_bf16(0x7f7fffffu), 0x7f80); /* max f32 overflows to inf */
    CHECK_EQ_I64(conv_f32_to_bf16(0xff800001u), 0xffc0); /* NaN: quiet, sign kept */
    return run_sweep(&c);
}

/* f16 -> f32 -> f16 is the identity on all 65536 patterns: finite and inf exactly, and NaNs too,
 * since both directions keep the 10 payload bits. bf16 the same except that NaNs come back as the
 * quiet NaN (ml_dtypes); they must stay NaN with their sign. */
static int test_f16_roundtrip_all(void) {
    int64_t nan_count = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        const eng_f16 h = {(uint16_t)b};
        const eng_f16 back = eng_f32_to_f16(eng_f16_to_f32(h));
        if (back.bits != h.bits) {
            fprintf(stderr, "f16 0x%04x -> f32 %.9g -> f16 0x%04x\n", (unsigned)b,
                    (double)eng_f16_to_f32(h), (unsigned)back.bits);
            return 1;
        }
        if ((b & 0x7c00u) == 0x7c00u && (b & 0x3ffu) != 0) {
            CHECK(isnan(eng_f16_to_f32(h)));
            nan_count++;
        }
        const eng_bf16 bb = {(uint16_t)b};
        const eng_bf16 bback = eng_f32_to_bf16(eng_bf16_to_f32(bb));
        const int is_nan = (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0;
        if (is_nan) {
            CHECK_EQ_I64(bback.bits, (b & 0x8000u) | 0x7fc0u);
        } else if (bback.bits != bb.bits) {
            fprintf(stderr, "bf16 0x%04x -> f32 -> bf16 0x%04x\n", (unsigned)b,
                    (unsigned)bback.bits);
            return 1;
        }
    }
    CHECK_EQ_I64(nan_count, 2 * 1023);
    return 0;
}

static int test_fp8_e4m3(void) {
    const conv_case widen = {"e4m3_to_f32_all", conv_e4m3_to_f32, 4, &fmt_e4m3, 1, 0};
    const conv_case narrow = {"f32_to_e4m3_sweep", conv_f32_to_e4m3, 1, &fmt_e4m3, 0, 0};
    const conv_case sat = {"f32_to_e4m3_sat_sweep", conv_f32_to_e4m3_sat, 1, &fmt_e4m3, 0, 1};
    CHECK_EQ_I64(eng_half_e4m3_to_f32(0x7e), 0x43e00000);      /* 448 */
    CHECK_EQ_I64(eng_half_f32_to_e4m3(0x43e80000u), 0x7e);     /* 464: tie to even 448 */
    CHECK_EQ_I64(eng_half_f32_to_e4m3(0x43e80001u), 0x7f);     /* above: NaN */
    CHECK_EQ_I64(eng_half_f32_to_e4m3_sat(0x43e80001u), 0x7e); /* saturates */
    CHECK_EQ_I64(eng_half_f32_to_e4m3_sat(0xff800000u), 0xfe); /* -inf: -448 */
    CHECK_EQ_I64(eng_half_f32_to_e4m3_sat(0x7fc00000u), 0x7f); /* NaN stays NaN */
    /* all 256 round-trip through f32 (NaNs to the same NaN pattern) */
    for (uint32_t b = 0; b < 256; b++) {
        const uint32_t f = eng_half_e4m3_to_f32((uint8_t)b);
        CHECK_EQ_I64(eng_half_f32_to_e4m3(f), b);
        CHECK_EQ_I64(eng_half_f32_to_e4m3_sat(f), b);
    }
    if (run_all(&widen, 8) != 0) return 1;
    if (run_sweep(&narrow) != 0) return 1;
    return run_sweep(&sat);
}

/* The array functions equal the scalar ones bit for bit, touch exactly n elements (canaries
 * after the end), and do nothing for n = 0. */
static int test_array_conversions(void) {
    int64_t n = 0;
    int rc = 1;
    uint32_t *bits = f32_sweep(&n);
    float *f = malloc((size_t)(n + 4) * sizeof *f);
    float *f2 = malloc((size_t)(n + 4) * sizeof *f2);
    eng_f16 *h = malloc((size_t)(n + 4) * sizeof *h);
    eng_bf16 *b = malloc((size_t)(n + 4) * sizeof *b);
    if (bits == NULL || f == NULL || f2 == NULL || h == NULL || b == NULL) goto done;
    memcpy(f, bits, (size_t)n * sizeof *f);
    const int64_t m = n - 1; /* odd length; canaries in [m, m + 4] */
    for (int64_t k = m; k < m + 5; k++) {
        h[k].bits = 0xdead;
        b[k].bits = 0xbeef;
    }
    eng_convert_f32_to_f16(h, f, m);
    eng_convert_f32_to_bf16(b, f, m);
    for (int64_t i = 0; i < m; i++) {
        if (h[i].bits != eng_f32_to_f16(f[i]).bits || b[i].bits != eng_f32_to_bf16(f[i]).bits) {
            fprintf(stderr, "array vs scalar: input 0x%08" PRIx32 " index %" PRId64 "\n", bits[i],
                    i);
            goto done;
        }
    }
    for (int64_t k = m; k < m + 5; k++) {
        if (h[k].bits != 0xdead || b[k].bits != 0xbeef) {
            fprintf(stderr, "array conversion wrote past n = %" PRId64 " (index %" PRId64 ")\n", m,
                    k);
            goto done;
        }
    }
    /* widening over all 16-bit patterns */
    for (int64_t i = 0; i < 65536; i++)
        h[i].bits = b[i].bits = (uint16_t)i;
    eng_convert_f16_to_f32(f2, h, 65536);
    for (int64_t i = 0; i < 65536; i++) {
        uint32_t a, s;
        const float sf = eng_f16_to_f32(h[i]);
        memcpy(&a, &f2[i], 4);
        memcpy(&s, &sf, 4);
        if (a != s) {
            fprintf(stderr, "f16 array vs scalar at 0x%04x\n", (unsigned)i);
            goto done;
        }
    }
    eng_convert_bf16_to_f32(f2, b, 65536);
    for (int64_t i = 0; i < 65536; i++) {
        uint32_t a, s;
        const float sf = eng_bf16_to_f32(b[i]);
        memcpy(&a, &f2[i], 4);
        memcpy(&s, &sf, 4);
        if (a != s) {
            fprintf(stderr, "bf16 array vs scalar at 0x%04x\n", (unsigned)i);
            goto done;
        }
    }
    /* n = 0: nothing written */
    h[0].bits = 0x1234;
    eng_convert_f32_to_f16(h, f, 0);
    if (h[0].bits != 0x1234) goto done;
    rc = 0;
done:
    free(b);
    free(h);
    free(f2);
    free(f);
    free(bits);
    return rc;
}

static int test_dtype_sizes_names_parse(void) {
    static const struct {
        eng_dtype dt;
        size_t size;
        const char *name;
    } want[] = {
        {ENG_DTYPE_F32, 4, "f32"}, {ENG_DTYPE_F16, 2, "f16"}, {ENG_DTYPE_BF16, 2, "bf16"},
        {ENG_DTYPE_I8, 1, "i8"},   {ENG_DTYPE_I32, 4, "i32"}, {ENG_DTYPE_FP8_E4M3, 1, "fp8_e4m3"},
    };
    CHECK_EQ_I64(ENG_TEST_N(want), ENG_DTYPE_COUNT);
    for (int i = 0; i < ENG_TEST_N(want); i++) {
        eng_dtype dt = ENG_DTYPE_COUNT;
        eng_err err = {0};
        CHECK_EQ_I64(eng_dtype_size(want[i].dt), want[i].size);
        CHECK(strcmp(eng_dtype_name(want[i].dt), want[i].name) == 0);
        CHECK_OK(eng_dtype_parse(&dt, want[i].name, &err), &err);
        CHECK_EQ_I64(dt, want[i].dt);
    }
    CHECK_EQ_I64(eng_dtype_size(ENG_DTYPE_COUNT), 0);
    CHECK_EQ_I64(eng_dtype_size((eng_dtype)-1), 0);
    CHECK(strcmp(eng_dtype_name(ENG_DTYPE_COUNT), "?") == 0);
    CHECK(strcmp(eng_dtype_name((eng_dtype)1000), "?") == 0);

    static const struct {
        const char *text;
        eng_dtype dt;
    } aliases[] = {{"float32", ENG_DTYPE_F32},   {"fp32", ENG_DTYPE_F32},
                   {"float16", ENG_DTYPE_F16},   {"fp16", ENG_DTYPE_F16},
                   {"bfloat16", ENG_DTYPE_BF16}, {"float8_e4m3fn", ENG_DTYPE_FP8_E4M3}};
    for (int i = 0; i < ENG_TEST_N(aliases); i++) {
        eng_dtype dt = ENG_DTYPE_COUNT;
        eng_err err = {0};
        CHECK_OK(eng_dtype_parse(&dt, aliases[i].text, &err), &err);
        CHECK_EQ_I64(dt, aliases[i].dt);
    }

    /* errors name the text; *out untouched */
    eng_dtype dt = ENG_DTYPE_I8;
    eng_err err = {0};
    CHECK_EQ_I64(eng_dtype_parse(&dt, "float64", &err), ENG_E_INVALID_ARG);
    CHECK_EQ_I64(err.code, ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "eng_dtype_parse");
    CHECK_CONTAINS(err.msg, "\"float64\"");
    CHECK_CONTAINS(err.msg, "bf16");
    CHECK_EQ_I64(dt, ENG_DTYPE_I8);
    CHECK_EQ_I64(eng_dtype_parse(&dt, "F32", &err), ENG_E_INVALID_ARG); /* case matters */
    CHECK_CONTAINS(err.msg, "\"F32\"");
    CHECK_EQ_I64(eng_dtype_parse(&dt, "", &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "\"\"");
    CHECK_EQ_I64(eng_dtype_parse(&dt, NULL, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "NULL");
    CHECK_EQ_I64(eng_dtype_parse(&dt, "nope", NULL), ENG_E_INVALID_ARG); /* err may be NULL */
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_EQ_I64(eng_dtype_parse(&dt, longname, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "\"xxxxxxxx");
    CHECK_CONTAINS(err.msg, "...");
    CHECK(strlen(err.msg) < ENG_ERR_MSG_MAX);

    CHECK(strcmp(eng_device_name(ENG_DEVICE_CPU), "cpu") == 0);
    CHECK(strcmp(eng_device_name(ENG_DEVICE_CUDA), "cuda") == 0);
    CHECK(strcmp(eng_device_name(ENG_DEVICE_COUNT), "?") == 0);
    CHECK(strcmp(eng_device_name((eng_device_kind)77), "?") == 0);
    return 0;
}

static const eng_test_case cases[] = {
    {"f16_to_f32_all", test_f16_to_f32_all},
    {"f32_to_f16_sweep", test_f32_to_f16_sweep},
    {"bf16_to_f32_all", test_bf16_to_f32_all},
    {"f32_to_bf16_sweep", test_f32_to_bf16_sweep},
    {"f16_roundtrip_all", test_f16_roundtrip_all},
    {"fp8_e4m3", test_fp8_e4m3},
    {"array_conversions", test_array_conversions},
    {"dtype_sizes_names_parse", test_dtype_sizes_names_parse},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
