/* test_nn_golden.c: the CPU neural-network ops (eng_op_* on CPU tensors, hence the CPU twins)
 * against PyTorch at representative Stable Diffusion shapes.
 *
 * The goldens (tests/golden/ops_torch.txt, written by tests/gen_op_goldens.py: torch on the
 * CPU in float64) describe each case completely: the op, its parameters, each input as a Philox
 * uniform stream (seed, offset) mapped to [lo, hi) (or literal values), and the output's shape,
 * count, sum, sum of |y|, sum of squares and ~256 samples at flat indices i * stride. This test
 * regenerates the inputs with eng_op_fill_uniform, runs the op, and compares:
 *   - count exactly; sum within 1e-5 * sum |y| (a sum of signed values can cancel, so it is
 *     measured against the sum of magnitudes); sum of squares within a relative 1e-5;
 *   - each sample: |got - want| <= atol + 1e-4 |want|, atol = 1e-4 sqrt(K) for the reductions
 *     of length K (conv: kh kw c; linear: in features; attention: max(d, lk)), 1e-4 otherwise
 *     (conventions 2.7: GEMM-like errors grow with sqrt(K)).
 * One ctest per case (eng.nn.golden.<case>, labels cpu;golden); `coverage` checks that the file
 * and this list name the same cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "eng_test_ctx.h"

#define GOLDEN_FILE ENG_TEST_SOURCE_DIR "/golden/ops_torch.txt"
#define MAX_PARAMS  8
#define MAX_INPUTS  4
#define MAX_VALUES  16

/* Every case of the golden file; keep in step with tests/gen_op_goldens.py and
 * tests/nn_golden.cmake (the coverage case checks the first). */
#define GOLDEN_CASES(X)                                                                            \
    X(conv3x3_320_8x8)                                                                             \
    X(conv3x3_s2_320_16x16)                                                                        \
    X(conv1x1_640_320_8x8)                                                                         \
    X(conv_in_4_320_8x8)                                                                           \
    X(conv_out_320_4_8x8)                                                                          \
    X(groupnorm32_16x16_320)                                                                       \
    X(groupnorm32_16x16_320_silu)                                                                  \
    X(layernorm_77x768)                                                                            \
    X(layernorm_64x320)                                                                            \
    X(linear_77x768_320)                                                                           \
    X(linear_geglu_64x320_2560)                                                                    \
    X(unary_gelu_4096)                                                                             \
    X(unary_gelu_tanh_4096)                                                                        \
    X(unary_quick_gelu_4096)                                                                       \
    X(unary_silu_4096)                                                                             \
    X(softmax_64x77)                                                                               \
    X(attention_self_256_h8_d40)                                                                   \
    X(attention_cross_256x77_h8_d40)                                                               \
    X(attention_clip_causal_77_h12_d64)                                                            \
    X(timestep_embedding_320)                                                                      \
    X(upsample2x_8x8_320)                                                                          \
    X(add_broadcast_8x8_320)

typedef struct golden_input {
    char name[32];
    int ndim;
    int64_t shape[4];
    int literal; /* 1: values[]; 0: Philox uniform (seed, offset) mapped to [lo, hi) */
    uint64_t seed, offset;
    double lo, hi;
    int nvalues;
    double values[MAX_VALUES];
} golden_input;

typedef struct golden_case {
    char name[64], op[32];
    int nparams;
    char pkey[MAX_PARAMS][32], pval[MAX_PARAMS][32];
    int ninputs;
    golden_input in[MAX_INPUTS];
    int out_ndim;
    int64_t out_shape[4], count;
    double sum, sumabs, sumsq;
    int64_t nsamples, stride;
    double *samples; /* malloc'd */
} golden_case;

/* ---- parsing ------------------------------------------------------------------------------ */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f == NULL) {
        fprintf(stderr, "cannot open %s (regenerate with tests/gen_op_goldens.py)\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (buf == NULL) fprintf(stderr, "cannot read %s\n", path);
    return buf;
}

/* The next whitespace-separated token of *p into tok (n bytes); 0 at the end of the line. */
static int next_tok(const char **p, char *tok, size_t n) {
    const char *s = *p;
    size_t k = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0' || *s == '\n') {
        *p = s;
        return 0;
    }
    while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\n') {
        if (k + 1 < n) tok[k++] = *s;
        s++;
    }
    tok[k] = '\0';
    *p = s;
    return 1;
}

static int tok_i64(const char **p, int64_t *out) {
    char t[64], *end;
    if (!next_tok(p, t, sizeof t)) return 0;
    *out = (int64_t)strtoll(t, &end, 10);
    return *end == '\0';
}

static int tok_f64(const char **p, double *out) {
    char t[64], *end;
    if (!next_tok(p, t, sizeof t)) return 0;
    *out = strtod(t, &end);
    return *end == '\0';
}

static int tok_is(const char **p, const char *want) {
    char t[64];
    return next_tok(p, t, sizeof t) && strcmp(t, want) == 0;
}

static const char *next_line(const char *s) {
    const char *e = strchr(s, '\n');
    return e != NULL ? e + 1 : s + strlen(s);
}

static int parse_dims(const char **p, int *ndim, int64_t shape[4]) {
    int64_t nd;
    if (!tok_i64(p, &nd) || nd < 1 || nd > 4) return 0;
    *ndim = (int)nd;
    for (int d = 0; d < 4; d++)
        shape[d] = 1;
    for (int d = 0; d < *ndim; d++) {
        if (!tok_i64(p, &shape[d]) || shape[d] < 1) return 0;
    }
    return 1;
}

#define PARSE(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: case %s: cannot parse line: %.80s\n", GOLDEN_FILE, c->name,       \
                    line);                                                                         \
            return 0;                                                                              \
        }                                                                                          \
    } while (0)

/* Parses the case that starts at `line` ("case NAME op OP") up to its "end". */
static int parse_case(const char *line, golden_case *c) {
    const char *p = line;
    char tok[64];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "?");
    PARSE(tok_is(&p, "case") && next_tok(&p, c->name, sizeof c->name));
    PARSE(tok_is(&p, "op") && next_tok(&p, c->op, sizeof c->op));
    for (line = next_line(line); *line != '\0'; line = next_line(line)) {
        p = line;
        if (!next_tok(&p, tok, sizeof tok)) continue;
        if (strcmp(tok, "param") == 0) {
            PARSE(c->nparams < MAX_PARAMS);
            PARSE(next_tok(&p, c->pkey[c->nparams], sizeof c->pkey[0]) &&
                  next_tok(&p, c->pval[c->nparams], sizeof c->pval[0]));
            c->nparams++;
        } else if (strcmp(tok, "input") == 0) {
            PARSE(c->ninputs < MAX_INPUTS);
            golden_input *in = &c->in[c->ninputs++];
            PARSE(next_tok(&p, in->name, sizeof in->name) && parse_dims(&p, &in->ndim, in->shape));
            PARSE(next_tok(&p, tok, sizeof tok));
            if (strcmp(tok, "uniform") == 0) {
                int64_t seed, offset;
                PARSE(tok_i64(&p, &seed) && tok_i64(&p, &offset) && seed >= 0 && offset >= 0);
                PARSE(tok_f64(&p, &in->lo) && tok_f64(&p, &in->hi));
                in->seed = (uint64_t)seed;
                in->offset = (uint64_t)offset;
            } else {
                PARSE(strcmp(tok, "values") == 0);
                in->literal = 1;
                while (in->nvalues < MAX_VALUES && tok_f64(&p, &in->values[in->nvalues]))
                    in->nvalues++;
                PARSE(in->ndim == 1 && in->nvalues == in->shape[0]);
            }
        } else if (strcmp(tok, "output") == 0) {
            PARSE(parse_dims(&p, &c->out_ndim, c->out_shape));
            PARSE(tok_is(&p, "count") && tok_i64(&p, &c->count));
            PARSE(tok_is(&p, "sum") && tok_f64(&p, &c->sum));
            PARSE(tok_is(&p, "sumabs") && tok_f64(&p, &c->sumabs));
            PARSE(tok_is(&p, "sumsq") && tok_f64(&p, &c->sumsq));
        } else if (strcmp(tok, "samples") == 0) {
            PARSE(tok_i64(&p, &c->nsamples) && tok_is(&p, "stride") && tok_i64(&p, &c->stride));
            PARSE(c->nsamples > 0 && c->nsamples <= 4096 && c->stride > 0);
            c->samples = malloc((size_t)c->nsamples * sizeof(double));
            PARSE(c->samples != NULL);
            int64_t got = 0;
            while (got < c->nsamples) {
                line = next_line(line);
                PARSE(*line != '\0');
                p = line;
                while (got < c->nsamples && tok_f64(&p, &c->samples[got]))
                    got++;
            }
        } else if (strcmp(tok, "end") == 0) {
            PARSE(c->samples != NULL && c->count > 0);
            PARSE((c->nsamples - 1) * c->stride < c->count);
            return 1;
        } else {
            PARSE(0);
        }
    }
    fprintf(stderr, "%s: case %s has no end\n", GOLDEN_FILE, c->name);
    return 0;
}

/* Finds and parses case `name`: 1 found, 0 absent or malformed (message printed). */
static int load_case(const char *text, const char *name, golden_case *c) {
    memset(c, 0, sizeof *c);
    for (const char *line = text; *line != '\0'; line = next_line(line)) {
        const char *p = line;
        char tok[64];
        if (!tok_is(&p, "case") || !next_tok(&p, tok, sizeof tok) || strcmp(tok, name) != 0) {
            continue;
        }
        return parse_case(line, c);
    }
    fprintf(stderr, "%s has no case %s (regenerate with tests/gen_op_goldens.py)\n", GOLDEN_FILE,
            name);
    return 0;
}

static const char *param(const golden_case *c, const char *key) {
    for (int i = 0; i < c->nparams; i++) {
        if (strcmp(c->pkey[i], key) == 0) return c->pval[i];
    }
    return NULL;
}

static double param_f64(const golden_case *c, const char *key, double dflt) {
    const char *v = param(c, key);
    return v != NULL ? strtod(v, NULL) : dflt;
}

static int parse_act(const char *name, eng_act *out) {
    static const char *const names[] = {"none", "silu", "gelu", "gelu_tanh", "quick_gelu"};
    static const eng_act acts[] = {ENG_ACT_NONE, ENG_ACT_SILU, ENG_ACT_GELU, ENG_ACT_GELU_TANH,
                                   ENG_ACT_QUICK_GELU};
    for (int i = 0; i < ENG_TEST_N(names); i++) {
        if (name != NULL && strcmp(name, names[i]) == 0) {
            *out = acts[i];
            return 1;
        }
    }
    fprintf(stderr, "unknown act %s\n", name != NULL ? name : "(missing)");
    return 0;
}

/* ---- running a case ----------------------------------------------------------------------- */
/* Makes input i: the engine's Philox uniform stream, mapped to [lo, hi) in f32 (the script
 * checks that this mapping is exact, so both sides hold the same bits). */
static int
make_input(eng_ctx *ctx, eng_alloc *al, const golden_input *in, eng_tensor *t, eng_err *err) {
    int rc =
        eng_tensor_alloc(t, al, ENG_LIFE_STATE, "golden", ENG_DTYPE_F32, in->ndim, in->shape, err);
    if (rc != ENG_OK) return rc;
    float *x = t->data;
    const int64_t n = eng_tensor_numel(t);
    if (in->literal) {
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)in->values[i];
        return ENG_OK;
    }
    if ((rc = eng_op_fill_uniform(ctx, NULL, t, in->seed, in->offset, err)) != ENG_OK) return rc;
    const float lo = (float)in->lo, span = (float)(in->hi - in->lo);
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + span * x[i];
    return ENG_OK;
}

static const eng_tensor *input(const golden_case *c, const eng_tensor *t, const char *name) {
    for (int i = 0; i < c->ninputs; i++) {
        if (strcmp(c->in[i].name, name) == 0) return &t[i];
    }
    return NULL;
}

/* Runs c's op into y; *k_out = the reduction length that scales atol. */
static int run_op(eng_ctx *ctx,
                  eng_alloc *al,
                  const golden_case *c,
                  const eng_tensor *in,
                  eng_tensor *y,
                  int64_t *k_out,
                  eng_err *err) {
    const eng_tensor *x = input(c, in, "x");
    const char *op = c->op;
    eng_act act = ENG_ACT_NONE;
    int rc = ENG_OK;
    *k_out = 1;
    if (strcmp(op, "conv2d") == 0) {
        const eng_tensor *w = input(c, in, "w");
        *k_out = w->shape[1] * w->shape[2] * w->shape[3];
        return eng_op_conv2d(ctx, NULL, y, x, w, input(c, in, "bias"),
                             (int64_t)param_f64(c, "stride", 1), (int64_t)param_f64(c, "pad", 0),
                             err);
    }
    if (strcmp(op, "groupnorm") == 0) {
        if (!parse_act(param(c, "act"), &act)) return ENG_E_FORMAT;
        return eng_op_groupnorm(ctx, NULL, y, x, input(c, in, "gamma"), input(c, in, "beta"),
                                (int64_t)param_f64(c, "groups", 32),
                                (float)param_f64(c, "eps", 1e-5), act, err);
    }
    if (strcmp(op, "layernorm") == 0) {
        return eng_op_layernorm(ctx, NULL, y, x, input(c, in, "gamma"), input(c, in, "beta"),
                                (float)param_f64(c, "eps", 1e-5), err);
    }
    if (strcmp(op, "linear") == 0) {
        *k_out = x->shape[x->ndim - 1];
        return eng_op_linear(ctx, NULL, y, x, input(c, in, "w"), input(c, in, "bias"), ENG_ACT_NONE,
                             err);
    }
    if (strcmp(op, "linear_geglu") == 0) {
        /* h (..., 2D) = x w^T + b, then y = geglu(h) */
        const eng_tensor *w = input(c, in, "w");
        eng_tensor h;
        int64_t hs[4];
        memcpy(hs, x->shape, sizeof hs);
        hs[x->ndim - 1] = w->shape[0];
        *k_out = x->shape[x->ndim - 1];
        if ((rc = eng_tensor_alloc(&h, al, ENG_LIFE_STATE, "golden", ENG_DTYPE_F32, x->ndim, hs,
                                   err)) != ENG_OK) {
            return rc;
        }
        rc = eng_op_linear(ctx, NULL, &h, x, w, input(c, in, "bias"), ENG_ACT_NONE, err);
        if (rc == ENG_OK) rc = eng_op_geglu(ctx, NULL, y, &h, err);
        eng_tensor_free(al, &h);
        return rc;
    }
    if (strcmp(op, "unary") == 0) {
        if (!parse_act(param(c, "act"), &act)) return ENG_E_FORMAT;
        return eng_op_unary(ctx, NULL, y, x, act, (float)param_f64(c, "alpha", 1.0),
                            (float)param_f64(c, "beta", 0.0), err);
    }
    if (strcmp(op, "softmax") == 0) {
        return eng_op_softmax(ctx, NULL, y, x, (float)param_f64(c, "scale", 1.0), err);
    }
    if (strcmp(op, "attention") == 0) {
        const eng_tensor *q = input(c, in, "q"), *k = input(c, in, "k");
        *k_out = q->shape[3] > k->shape[1] ? q->shape[3] : k->shape[1];
        return eng_op_attention(ctx, NULL, y, q, k, input(c, in, "v"),
                                (float)param_f64(c, "scale", 1.0), (int)param_f64(c, "causal", 0),
                                err);
    }
    if (strcmp(op, "temb") == 0) {
        return eng_op_timestep_embedding(
            ctx, NULL, y, input(c, in, "t"), (int)param_f64(c, "flip", 1),
            (float)param_f64(c, "shift", 0.0), (float)param_f64(c, "max_period", 10000.0), err);
    }
    if (strcmp(op, "upsample2x") == 0) return eng_op_upsample_nearest2x(ctx, NULL, y, x, err);
    if (strcmp(op, "add") == 0) {
        return eng_op_binary(ctx, NULL, y, input(c, in, "a"), input(c, in, "b"), ENG_BINOP_ADD,
                             err);
    }
    return eng_err_set(err, ENG_E_FORMAT, "test_nn_golden: case %s: unknown op %s", c->name, op);
}

/* Compares y with the golden: count, sums, samples. 1 = pass. */
static int compare(const golden_case *c, const float *y, int64_t n, int64_t k) {
    double sum = 0.0, sumsq = 0.0, worst_ratio = 0.0;
    int64_t bad = 0, worst = 0;
    const double atol = 1e-4 * sqrt((double)k), rtol = 1e-4;
    int ok = 1;
    if (n != c->count) {
        fprintf(stderr, "%s: %lld outputs, the golden has %lld\n", c->name, (long long)n,
                (long long)c->count);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        sum += y[i];
        sumsq += (double)y[i] * y[i];
    }
    if (!(fabs(sum - c->sum) <= 1e-5 * c->sumabs)) {
        fprintf(stderr, "%s: sum %.10g, golden %.10g (sum |y| %.6g, tolerance 1e-5 of it)\n",
                c->name, sum, c->sum, c->sumabs);
        ok = 0;
    }
    if (!(fabs(sumsq - c->sumsq) <= 1e-5 * c->sumsq)) {
        fprintf(stderr, "%s: sum of squares %.10g, golden %.10g (relative error %.3g > 1e-5)\n",
                c->name, sumsq, c->sumsq, fabs(sumsq - c->sumsq) / c->sumsq);
        ok = 0;
    }
    for (int64_t s = 0; s < c->nsamples; s++) {
        const int64_t i = s * c->stride;
        const double want = c->samples[s], got = y[i];
        const double ratio = fabs(got - want) / (atol + rtol * fabs(want));
        if (!(ratio <= 1.0)) bad++;
        if (!(ratio <= worst_ratio)) {
            worst_ratio = ratio;
            worst = i;
        }
    }
    printf("%s: %lld outputs, sum %.9g (golden %.9g), %lld samples, worst error %.3g of the "
           "tolerance (atol %.3g, rtol %.0e) at [%lld]\n",
           c->name, (long long)n, sum, c->sum, (long long)c->nsamples, worst_ratio, atol, rtol,
           (long long)worst);
    if (bad > 0) {
        fprintf(stderr,
                "%s: %lld of %lld samples outside atol %.3g + rtol %.0e; worst [%lld]: "
                "got %.9g want %.9g\n",
                c->name, (long long)bad, (long long)c->nsamples, atol, rtol, (long long)worst,
                (double)y[worst], c->samples[worst / c->stride]);
        ok = 0;
    }
    return ok;
}

static int run_case(const char *name) {
    golden_case c;
    eng_tensor in[MAX_INPUTS], y;
    eng_err err = {0};
    eng_ctx *ctx = NULL;
    eng_alloc *al;
    char *text = read_file(GOLDEN_FILE);
    int64_t k = 1;
    int rc, pass = 0, made = 0, have_y = 0;
    memset(in, 0, sizeof in);
    memset(&c, 0, sizeof c);
    if (text == NULL || !load_case(text, name, &c)) goto done;
    if ((ctx = eng_test_ctx(2)) == NULL) goto done;
    al = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    for (; made < c.ninputs; made++) {
        if ((rc = make_input(ctx, al, &c.in[made], &in[made], &err)) != ENG_OK) {
            fprintf(stderr, "%s: input %s: %s\n", name, c.in[made].name, err.msg);
            goto done;
        }
    }
    if ((rc = eng_tensor_alloc(&y, al, ENG_LIFE_STATE, "golden", ENG_DTYPE_F32, c.out_ndim,
                               c.out_shape, &err)) != ENG_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        goto done;
    }
    have_y = 1;
    if ((rc = run_op(ctx, al, &c, in, &y, &k, &err)) != ENG_OK) {
        fprintf(stderr, "%s: op %s returned %d: %s\n", name, c.op, rc, err.msg);
        goto done;
    }
    pass = compare(&c, y.data, eng_tensor_numel(&y), k);
done:
    if (have_y) eng_tensor_free(eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &y);
    while (made > 0) {
        made--;
        eng_tensor_free(eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &in[made]);
    }
    eng_ctx_destroy(ctx);
    free(c.samples);
    free(text);
    return pass ? 0 : 1;
}

#define GOLDEN_FN(name)                                                                            \
    static int test_##name(void) {                                                                 \
        return run_case(#name);                                                                    \
    }
GOLDEN_CASES(GOLDEN_FN)

#define GOLDEN_NAME(name) #name,
static const char *const golden_names[] = {GOLDEN_CASES(GOLDEN_NAME)};

/* The file and this test name the same cases, and every case parses. */
static int test_coverage(void) {
    char *text = read_file(GOLDEN_FILE);
    int ok = text != NULL, in_file = 0;
    for (const char *line = text; ok && *line != '\0'; line = next_line(line)) {
        const char *p = line;
        char tok[64];
        if (!tok_is(&p, "case") || !next_tok(&p, tok, sizeof tok)) continue;
        in_file++;
        int known = 0;
        for (int i = 0; i < ENG_TEST_N(golden_names); i++)
            known |= strcmp(golden_names[i], tok) == 0;
        if (!known) {
            fprintf(stderr, "golden case %s is not in test_nn_golden.c's GOLDEN_CASES\n", tok);
            ok = 0;
        }
    }
    for (int i = 0; ok && i < ENG_TEST_N(golden_names); i++) {
        golden_case c;
        ok = load_case(text, golden_names[i], &c);
        free(c.samples);
    }
    if (ok && in_file != ENG_TEST_N(golden_names)) {
        fprintf(stderr, "the golden file has %d cases, the test %d\n", in_file,
                ENG_TEST_N(golden_names));
        ok = 0;
    }
    free(text);
    return ok ? 0 : 1;
}

#define GOLDEN_ENTRY(name) {#name, test_##name},
static const eng_test_case cases[] = {GOLDEN_CASES(GOLDEN_ENTRY){"coverage", test_coverage}};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
