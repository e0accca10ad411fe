/* test_tok_clip.c: the CLIP tokenizer. Goldens from OpenAI's reference tokenizer
 * (../shared/data/clip/tokenizer_goldens.jsonl, ftfy stubbed; tests/golden/tokenizer_ftfy.jsonl,
 * real ftfy, made by tests/gen_tokenizer_goldens.py) with both vocabulary layouts; the prompt
 * form (start, end, truncation, padding); A1111 weights; invalid UTF-8; malformed vocabularies
 * (each error names the file and line); BPE rank semantics on a tiny vocabulary built here;
 * threads sharing one tokenizer; a speed smoke run. Cases without ../shared/data SKIP. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eng_test.h"
#include "tok.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *clip_path(const char *name) {
    static char buf[4][1024];
    static int k = 0;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/clip/%s", eng_test_data_dir(), name);
    return p;
}

static int have_data(void) {
    if (access(clip_path("bpe_simple_vocab_16e6.txt.gz"), R_OK) == 0 &&
        access(clip_path("tokenizer_goldens.jsonl"), R_OK) == 0)
        return 1;
    fprintf(stderr, "SKIP: no CLIP data in %s/clip (set ENGINE_DATA_DIR)\n", eng_test_data_dir());
    return 0;
}

/* One golden line: text (with its length: texts may hold NUL), ids, cleaned text (or NULL). */
typedef struct golden {
    char *text;
    size_t text_len;
    char *clean;
    int32_t *ids;
    int64_t n_ids;
} golden;

static void goldens_free(golden *g, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        free(g[i].text);
        free(g[i].clean);
        free(g[i].ids);
    }
    free(g);
}

/* A JSON string's bytes (the goldens hold no "\u0000", so strlen is the length). */
static char *json_text(const cJSON *s, size_t *len) {
    const char *v = cJSON_GetStringValue(s);
    char *p = v != NULL ? strdup(v) : NULL;
    if (p != NULL) *len = strlen(p);
    return p;
}

static golden *load_goldens(const char *path, int64_t *n_out) {
    FILE *f = fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0;
    golden *g = NULL;
    int64_t n = 0, gcap = 0;
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    while (getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "ids");
        if (o == NULL || !cJSON_IsArray(ids) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "text"))) {
            fprintf(stderr, "%s:%lld: bad golden line\n", path, (long long)n + 1);
            exit(1);
        }
        if (n == gcap) {
            gcap = gcap ? gcap * 2 : 256;
            g = realloc(g, (size_t)gcap * sizeof *g);
        }
        golden *e = &g[n++];
        memset(e, 0, sizeof *e);
        e->text = json_text(cJSON_GetObjectItemCaseSensitive(o, "text"), &e->text_len);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "clean");
        if (cJSON_IsString(c)) e->clean = strdup(c->valuestring);
        e->n_ids = cJSON_GetArraySize(ids);
        e->ids = malloc((size_t)(e->n_ids + 1) * sizeof(int32_t));
        int64_t k = 0;
        for (const cJSON *it = ids->child; it != NULL; it = it->next)
            e->ids[k++] = (int32_t)it->valuedouble;
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    *n_out = n;
    return g;
}

static void print_ids(const char *label, const int32_t *ids, int64_t n) {
    fprintf(stderr, "  %s:", label);
    for (int64_t i = 0; i < n; i++)
        fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "\n");
}

/* Encodes g's text with start/end added; returns 1 and prints both on a mismatch. */
static int check_golden(const tok_clip *t, const golden *g) {
    eng_err err = {0};
    int32_t *ids = NULL;
    int64_t n = 0;
    if (tok_clip_encode(t, &ids, &n, g->text, g->text_len, &err) != ENG_OK) {
        fprintf(stderr, "encode failed on \"%s\": %s\n", g->text, err.msg);
        return 1;
    }
    int bad = n + 2 != g->n_ids || g->ids[0] != tok_clip_bos_id(t) ||
              g->ids[g->n_ids - 1] != tok_clip_eos_id(t);
    for (int64_t i = 0; !bad && i < n; i++)
        bad = ids[i] != g->ids[i + 1];
    if (bad) {
        fprintf(stderr, "MISMATCH on \"%s\"\n", g->text);
        print_ids("expected (without start/end)", g->ids + 1, g->n_ids - 2);
        print_ids("got", ids, n);
    }
    tok_free(ids);
    return bad;
}

static int run_goldens(const tok_clip *t, const char *path, int with_clean) {
    int64_t n = 0, bad = 0;
    golden *g = load_goldens(path, &n);
    CHECK(g != NULL && n > 0);
    for (int64_t i = 0; i < n; i++) {
        bad += check_golden(t, &g[i]);
        if (with_clean) {
            eng_err err = {0};
            char *clean = NULL;
            size_t len = 0;
            CHECK(g[i].clean != NULL);
            CHECK_OK(tok_clean_text(&clean, &len, g[i].text, g[i].text_len, &err), &err);
            if (strcmp(clean, g[i].clean) != 0) {
                fprintf(stderr, "CLEAN MISMATCH on \"%s\":\n  expected \"%s\"\n  got      \"%s\"\n",
                        g[i].text, g[i].clean, clean);
                bad++;
            }
            tok_free(clean);
        }
    }
    printf("%lld/%lld lines match (%s)\n", (long long)(n - bad), (long long)n, path);
    goldens_free(g, n);
    CHECK_EQ_I64(bad, 0);
    return 0;
}

static tok_clip *load_gz(void) {
    eng_err err = {0};
    tok_clip *t = NULL;
    if (tok_clip_load(&t, clip_path("bpe_simple_vocab_16e6.txt.gz"), &err) != ENG_OK)
        fprintf(stderr, "load failed: %s\n", err.msg);
    return t;
}

/* ---- goldens ------------------------------------------------------------------------------ */

static int test_goldens_openai(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    tok_clip *t = load_gz();
    CHECK(t != NULL);
    CHECK_EQ_I64(tok_clip_vocab_size(t), 49408);
    CHECK_EQ_I64(tok_clip_merge_count(t), TOK_CLIP_MERGES);
    CHECK_EQ_I64(tok_clip_bos_id(t), TOK_CLIP_BOS);
    CHECK_EQ_I64(tok_clip_eos_id(t), TOK_CLIP_EOS);
    CHECK(strcmp(tok_clip_token(t, 0), "!") == 0);
    CHECK(strcmp(tok_clip_token(t, 256), "!</w>") == 0);
    CHECK(tok_clip_token(t, 49408) == NULL && tok_clip_token(t, -1) == NULL);
    CHECK_EQ_I64(tok_clip_token_id(t, "cat</w>"), 2368);
    const int rc = run_goldens(t, clip_path("tokenizer_goldens.jsonl"), 0);
    tok_clip_free(t);
    return rc;
}

static int test_goldens_hf(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    eng_err err = {0};
    tok_clip *t = NULL, *ref = load_gz();
    CHECK(ref != NULL);
    CHECK_OK(tok_clip_load_hf(&t, clip_path("vocab.json"), clip_path("merges.txt"), &err), &err);
    /* Both layouts give the same vocabulary, id for id. */
    CHECK_EQ_I64(tok_clip_vocab_size(t), tok_clip_vocab_size(ref));
    CHECK_EQ_I64(tok_clip_merge_count(t), tok_clip_merge_count(ref));
    for (int32_t id = 0; id < tok_clip_vocab_size(t); id++)
        CHECK(strcmp(tok_clip_token(t, id), tok_clip_token(ref, id)) == 0);
    const int rc = run_goldens(t, clip_path("tokenizer_goldens.jsonl"), 0);
    tok_clip_free(t);
    tok_clip_free(ref);
    return rc;
}

/* A diffusers checkpoint folder: <model>/tokenizer/{vocab.json,merges.txt} (links to the
 * shared files, nothing copied), loaded through tok_clip_load. */
static int test_load_folder(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    char model[600], sub[700], v[800], m[800];
    eng_err err = {0};
    tok_clip *t = NULL;
    snprintf(model, sizeof model, "%s/model", eng_test_tmpdir());
    snprintf(sub, sizeof sub, "%s/tokenizer", model);
    snprintf(v, sizeof v, "%s/vocab.json", sub);
    snprintf(m, sizeof m, "%s/merges.txt", sub);
    CHECK(mkdir(model, 0700) == 0 && mkdir(sub, 0700) == 0);
    CHECK(symlink(clip_path("vocab.json"), v) == 0 && symlink(clip_path("merges.txt"), m) == 0);
    CHECK_OK(tok_clip_load(&t, model, &err), &err); /* the checkpoint folder */
    int32_t ids[TOK_CLIP_CONTEXT];
    CHECK_OK(tok_clip_encode_prompt(t, ids, NULL, NULL, TOK_CLIP_CONTEXT, TOK_CLIP_EOS, 0,
                                    "a photo of a cat", 16, &err),
             &err);
    CHECK(ids[1] == 320 && ids[2] == 1125 && ids[5] == 2368 && ids[6] == TOK_CLIP_EOS);
    tok_clip_free(t);
    CHECK_OK(tok_clip_load(&t, sub, &err), &err); /* the tokenizer folder itself */
    tok_clip_free(t);
    CHECK_OK(tok_clip_load(&t, v, &err), &err); /* vocab.json, merges.txt beside it */
    tok_clip_free(t);
    CHECK_OK(tok_clip_load(&t, m, &err), &err); /* and the other way */
    CHECK_EQ_I64(tok_clip_merge_count(t), TOK_CLIP_MERGES);
    tok_clip_free(t);
    /* A folder with neither. */
    CHECK(tok_clip_load(&t, eng_test_tmpdir(), &err) == ENG_E_IO && t == NULL);
    CHECK_CONTAINS(err.msg, eng_test_tmpdir());
    CHECK_CONTAINS(err.msg, "vocab.json");
    unlink(v);
    unlink(m);
    rmdir(sub);
    rmdir(model);
    return 0;
}

/* The real-ftfy goldens: hand-picked inputs for each fix, and random texts over characters
 * that exercise every cleaning step. Both check the cleaned text as well as the ids. */
static int test_ftfy_goldens(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    char path[2][1024];
    snprintf(path[0], sizeof path[0], "%s/golden/tokenizer_ftfy.jsonl", ENG_TEST_SOURCE_DIR);
    snprintf(path[1], sizeof path[1], "%s/golden/tokenizer_random.jsonl", ENG_TEST_SOURCE_DIR);
    /* ENG_TOK_GOLDENS points this case at another file of the same format (longer parity runs
     * with `tests/gen_tokenizer_goldens.py --random N SEED`). */
    const char *other = getenv("ENG_TOK_GOLDENS");
    tok_clip *t = load_gz();
    int rc = 0;
    CHECK(t != NULL);
    if (other != NULL && other[0] != '\0') {
        rc = run_goldens(t, other, 1);
    } else {
        for (int i = 0; i < 2 && rc == 0; i++)
            rc = run_goldens(t, path[i], 1);
    }
    tok_clip_free(t);
    return rc;
}

/* ---- the prompt form ---------------------------------------------------------------------- */

static int test_pad_truncate(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    eng_err err = {0};
    tok_clip *t = load_gz();
    int32_t ids[TOK_CLIP_CONTEXT];
    float w[TOK_CLIP_CONTEXT];
    int64_t n_prompt = -1;
    static const int32_t cat[] = {49406, 320, 1125, 539, 320, 2368, 49407};
    CHECK(t != NULL);
    /* SD1: pad with <|endoftext|>; SD2: with 0. */
    for (int pass = 0; pass < 2; pass++) {
        const int32_t pad = pass == 0 ? TOK_CLIP_EOS : TOK_CLIP_PAD_ZERO;
        CHECK_OK(tok_clip_encode_prompt(t, ids, w, &n_prompt, TOK_CLIP_CONTEXT, pad,
                                        TOK_PROMPT_PLAIN, "a photo of a cat", 16, &err),
                 &err);
        CHECK_EQ_I64(n_prompt, 5);
        for (int i = 0; i < 7; i++)
            CHECK_EQ_I64(ids[i], cat[i]);
        for (int i = 7; i < TOK_CLIP_CONTEXT; i++)
            CHECK_EQ_I64(ids[i], pad);
        for (int i = 0; i < TOK_CLIP_CONTEXT; i++)
            CHECK(w[i] == 1.0f);
    }
    /* The longest golden (172 ids): the first 75 tokens, then the end token last. */
    int64_t n = 0;
    golden *g = load_goldens(clip_path("tokenizer_goldens.jsonl"), &n);
    const golden *longest = NULL;
    for (int64_t i = 0; i < n; i++)
        if (longest == NULL || g[i].n_ids > longest->n_ids) longest = &g[i];
    CHECK(longest != NULL && longest->n_ids == 172);
    CHECK_OK(tok_clip_encode_prompt(t, ids, w, &n_prompt, TOK_CLIP_CONTEXT, 0, 0, longest->text,
                                    longest->text_len, &err),
             &err);
    CHECK_EQ_I64(n_prompt, 170);
    for (int i = 0; i < TOK_CLIP_CONTEXT - 1; i++)
        CHECK_EQ_I64(ids[i], longest->ids[i]);
    CHECK_EQ_I64(ids[TOK_CLIP_CONTEXT - 1], TOK_CLIP_EOS);
    /* Exactly 75 tokens: nothing cut, no padding; then 76. */
    char text75[2048] = "";
    for (int i = 0; i < 75; i++) {
        char word[32];
        snprintf(word, sizeof word, "%scat", i ? " " : "");
        strcat(text75, word);
    }
    CHECK_OK(tok_clip_encode_prompt(t, ids, w, &n_prompt, TOK_CLIP_CONTEXT, 0, 0, text75,
                                    strlen(text75), &err),
             &err);
    CHECK_EQ_I64(n_prompt, 75);
    CHECK_EQ_I64(ids[75], 2368);
    CHECK_EQ_I64(ids[76], TOK_CLIP_EOS);
    strcat(text75, " dog");
    CHECK_OK(tok_clip_encode_prompt(t, ids, w, &n_prompt, TOK_CLIP_CONTEXT, 0, 0, text75,
                                    strlen(text75), &err),
             &err);
    CHECK_EQ_I64(n_prompt, 76);
    CHECK_EQ_I64(ids[75], 2368);
    CHECK_EQ_I64(ids[76], TOK_CLIP_EOS);
    /* Other lengths, the empty prompt, and bad arguments. */
    CHECK_OK(tok_clip_encode_prompt(t, ids, NULL, &n_prompt, 2, 0, 0, "a cat", 5, &err), &err);
    CHECK(ids[0] == TOK_CLIP_BOS && ids[1] == TOK_CLIP_EOS && n_prompt == 2);
    CHECK_OK(tok_clip_encode_prompt(t, ids, w, &n_prompt, 4, 0, 0, "", 0, &err), &err);
    CHECK(ids[0] == TOK_CLIP_BOS && ids[1] == TOK_CLIP_EOS && ids[2] == 0 && ids[3] == 0);
    CHECK_EQ_I64(n_prompt, 0);
    CHECK(tok_clip_encode_prompt(t, ids, w, NULL, 1, 0, 0, "a", 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "max_len");
    CHECK(tok_clip_encode_prompt(t, ids, w, NULL, 77, 0, 8, "a", 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "flags");
    goldens_free(g, n);
    tok_clip_free(t);
    return 0;
}

/* ---- A1111 weights ------------------------------------------------------------------------ */

typedef struct span_case {
    const char *prompt;
    int n;
    const char *text[10];
    double weight[10];
} span_case;

static int test_weights(void) {
    /* Expected runs and weights as A1111's parse_prompt_attention gives them (double, exact;
     * the last case is the example in its docstring). */
    static const span_case cases[] = {
        {"normal text", 1, {"normal text"}, {1.0}},
        {"an (important) word", 3, {"an ", "important", " word"}, {1.0, 1.1, 1.0}},
        {"((b))", 1, {"b"}, {1.2100000000000002}},
        {"[b]", 1, {"b"}, {0.9090909090909091}},
        {"[[b]]", 1, {"b"}, {0.9090909090909091 * 0.9090909090909091}},
        {"(b:1.3)", 1, {"b"}, {1.3}},
        {"((b:1.3))", 1, {"b"}, {1.4300000000000002}},
        {"(b: 0.5 )", 1, {"b"}, {0.5}},
        {"(b:-1)", 1, {"b"}, {-1.0}},
        {"(b:.5) (c:2.)", 3, {"b", " ", "c"}, {0.5, 1.0, 2.0}},
        {"(unbalanced", 1, {"unbalanced"}, {1.1}},
        {"[unbalanced", 1, {"unbalanced"}, {0.9090909090909091}},
        {"\\(literal\\]", 1, {"(literal]"}, {1.0}},
        {"\\\\ \\[x\\)", 1, {"\\ [x)"}, {1.0}},
        {"a\\b", 1, {"ab"}, {1.0}},
        {"(unnecessary)(parens)", 1, {"unnecessaryparens"}, {1.1}},
        {"(a)\\(b)", 2, {"a", "(b)"}, {1.1, 1.0}},
        {"(a)\\", 2, {"a", ""}, {1.1, 1.0}}, /* the lone '\' leaves an empty run */
        {"a:1.2) b", 1, {"a:1.2) b"}, {1.0}},
        {"(a:1.2.3)", 1, {"a:1.2.3)"}, {1.1}},
        {"a ) b ]", 1, {"a ) b ]"}, {1.0}},
        {"[a:1.5]", 1, {"a:1.5"}, {0.9090909090909091}},
        {"(a:\xef\xbc\x91.\xd9\xa5)", 1, {"a"}, {1.5}}, /* full-width 1, Arabic-Indic 5 */
        {"", 1, {""}, {1.0}},
        {"BREAK", 1, {"BREAK"}, {1.0}},
        {"a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
         9,
         {"a ", "house", " ", "on", " a ", "hill", ", sun, ", "sky", "."},
         {1.0, 1.5730000000000004, 1.1, 1.0, 1.1, 0.55, 1.1, 1.4641000000000006, 1.1}},
    };
    eng_err err = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const span_case *k = &cases[c];
        tok_span *s = NULL;
        int64_t n = 0;
        CHECK_OK(tok_prompt_parse(&s, &n, k->prompt, strlen(k->prompt), &err), &err);
        int bad = n != k->n;
        for (int64_t i = 0; !bad && i < n; i++)
            bad = strcmp(s[i].text, k->text[i]) != 0 || s[i].len != strlen(k->text[i]) ||
                  s[i].weight != k->weight[i];
        if (bad) {
            fprintf(stderr, "prompt \"%s\": expected %d runs, got %lld:\n", k->prompt, k->n,
                    (long long)n);
            for (int64_t i = 0; i < n; i++)
                fprintf(stderr, "  [\"%s\", %.17g]\n", s[i].text, s[i].weight);
        }
        tok_free(s);
        CHECK(!bad);
    }
    /* Through the encoder: weights per token; start, end and padding 1.0. */
    if (!have_data()) return ENG_TEST_SKIP;
    tok_clip *t = load_gz();
    int32_t ids[TOK_CLIP_CONTEXT];
    float w[TOK_CLIP_CONTEXT];
    int64_t n_prompt = 0;
    CHECK(t != NULL);
    const char *p = "a (red:1.3) [fox], ((cute))";
    CHECK_OK(tok_clip_encode_prompt(t, ids, w, &n_prompt, TOK_CLIP_CONTEXT, TOK_CLIP_EOS,
                                    TOK_PROMPT_WEIGHTS, p, strlen(p), &err),
             &err);
    /* a red fox , cute */
    static const int32_t want_ids[] = {49406, 320, 736, 3240, 267, 2242, 49407, 49407};
    const float want_w[] = {1.0f, 1.0f, 1.3f, (float)(1.0 / 1.1), 1.0f, (float)(1.1 * 1.1),
                            1.0f, 1.0f};
    CHECK_EQ_I64(n_prompt, 5);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_I64(ids[i], want_ids[i]);
        CHECK(w[i] == want_w[i]);
    }
    for (int i = 8; i < TOK_CLIP_CONTEXT; i++)
        CHECK(ids[i] == TOK_CLIP_EOS && w[i] == 1.0f);
    /* Runs are tokenized on their own, and equal neighbours merge first: "(photo)(graph)" is
     * the one word "photograph", while "photo(graph)" is two. */
    int32_t one[TOK_CLIP_CONTEXT], two[TOK_CLIP_CONTEXT];
    CHECK_OK(tok_clip_encode_prompt(t, one, w, &n_prompt, TOK_CLIP_CONTEXT, 0, TOK_PROMPT_WEIGHTS,
                                    "(photo)(graph)", 14, &err),
             &err);
    CHECK(n_prompt == 1 && one[1] == 8853 && w[1] == 1.1f);
    CHECK_OK(tok_clip_encode_prompt(t, two, w, &n_prompt, TOK_CLIP_CONTEXT, 0, TOK_PROMPT_WEIGHTS,
                                    "photo(graph)", 12, &err),
             &err);
    CHECK(n_prompt == 2 && two[1] == 1125 && w[1] == 1.0f && w[2] == 1.1f);
    /* Without the flag the brackets are text. */
    CHECK_OK(tok_clip_encode_prompt(t, ids, w, &n_prompt, TOK_CLIP_CONTEXT, 0, TOK_PROMPT_PLAIN,
                                    "(red:1.3)", 9, &err),
             &err);
    CHECK(n_prompt > 1 && w[2] == 1.0f);
    tok_clip_free(t);
    return 0;
}

/* ---- invalid input ------------------------------------------------------------------------ */

static int test_invalid_utf8(void) {
    static const struct {
        const char *s;
        size_t len;
        size_t at;
    } bad[] = {
        {"\xff", 1, 0},
        {"abc\xc3", 4, 3}, /* truncated */
        {"a \xc0\xaf", 4, 2},
        {"\xe0\x80\xaf", 3, 0},  /* overlong */
        {"x\xed\xa0\x80", 4, 1}, /* surrogate */
        {"\xf4\x90\x80\x80", 4, 0},
        {"\xf8\x88\x80\x80\x80", 5, 0}, /* > U+10FFFF */
        {"ok \x80 cont", 8, 3},
        {"\xe2\x82 x", 4, 0},
    };
    eng_err err = {0};
    tok_clip *t = have_data() ? load_gz() : NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64], *clean = NULL;
        size_t clean_len = 0;
        tok_span *spans = NULL;
        int64_t n = 0;
        snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", bad[i].at);
        CHECK(tok_clean_text(&clean, &clean_len, bad[i].s, bad[i].len, &err) == ENG_E_INVALID_ARG);
        CHECK(clean == NULL);
        CHECK_CONTAINS(err.msg, want);
        CHECK(tok_prompt_parse(&spans, &n, bad[i].s, bad[i].len, &err) == ENG_E_INVALID_ARG);
        CHECK(spans == NULL && n == 0);
        CHECK_CONTAINS(err.msg, want);
        if (t != NULL) {
            int32_t *ids = NULL, p[TOK_CLIP_CONTEXT];
            CHECK(tok_clip_encode(t, &ids, &n, bad[i].s, bad[i].len, &err) == ENG_E_INVALID_ARG);
            CHECK(ids == NULL && n == 0);
            CHECK_CONTAINS(err.msg, want);
            CHECK_CONTAINS(err.msg, "tok_clip_encode");
            CHECK(tok_clip_encode_prompt(t, p, NULL, NULL, TOK_CLIP_CONTEXT, 0, TOK_PROMPT_WEIGHTS,
                                         bad[i].s, bad[i].len, &err) == ENG_E_INVALID_ARG);
            CHECK_CONTAINS(err.msg, want);
        }
    }
    /* Valid edge cases: a NUL inside the text is a control character ftfy removes; the largest
     * code point; a text of only removed characters. */
    char *clean = NULL;
    size_t len = 0;
    CHECK_OK(tok_clean_text(&clean, &len, "A\0B", 3, &err), &err);
    CHECK(len == 2 && strcmp(clean, "ab") == 0);
    tok_free(clean);
    CHECK_OK(tok_clean_text(&clean, &len, "\xf4\x8f\xbf\xbf", 4, &err), &err);
    CHECK(len == 4);
    tok_free(clean);
    CHECK_OK(tok_clean_text(&clean, &len, "\x01\x02\xef\xbb\xbf", 5, &err), &err);
    CHECK(len == 0 && clean[0] == '\0');
    tok_free(clean);
    /* Too long. */
    char *big = malloc(TOK_MAX_TEXT_BYTES + 1);
    CHECK(big != NULL);
    memset(big, 'a', TOK_MAX_TEXT_BYTES + 1);
    CHECK(tok_clean_text(&clean, &len, big, TOK_MAX_TEXT_BYTES + 1, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "over the limit");
    free(big);
    if (t == NULL) return ENG_TEST_SKIP;
    /* The empty text and whitespace give no tokens. */
    int32_t *ids = NULL;
    int64_t n = -1;
    CHECK_OK(tok_clip_encode(t, &ids, &n, " \t\n", 3, &err), &err);
    CHECK(ids == NULL && n == 0);
    tok_clip_free(t);
    return 0;
}

/* ---- a tiny vocabulary built here --------------------------------------------------------- */

/* The reference's byte -> character map (bytes_to_unicode). */
static int32_t byte_char(int b) {
    const int keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    if (keep) return b;
    int k = 0;
    for (int i = 0; i < b; i++)
        k += !((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE));
    return 256 + k;
}

static void put_utf8(char *s, int32_t c) {
    if (c < 0x80) {
        s[0] = (char)c, s[1] = 0;
    } else {
        s[0] = (char)(0xC0 | (c >> 6)), s[1] = (char)(0x80 | (c & 0x3F)), s[2] = 0;
    }
}

/* vocab.json text: the 512 byte tokens, `extra` tokens, then the specials. Tokens named in
 * `drop` are left out; `dup` (if not NULL) is added again with the next id. */
static char *tiny_vocab(const char *const *extra, int n_extra, const char *drop, const char *dup) {
    cJSON *o = cJSON_CreateObject();
    int id = 0;
    for (int half = 0; half < 2; half++) {
        for (int b = 0; b < 256; b++) {
            char s[16];
            put_utf8(s, byte_char(b));
            if (half) strcat(s, "</w>");
            if (drop != NULL && strcmp(s, drop) == 0) continue;
            cJSON_AddNumberToObject(o, s, id++);
        }
    }
    for (int i = 0; i < n_extra; i++)
        cJSON_AddNumberToObject(o, extra[i], id++);
    if (drop == NULL || strcmp(drop, "<|startoftext|>") != 0)
        cJSON_AddNumberToObject(o, "<|startoftext|>", id++);
    cJSON_AddNumberToObject(o, "<|endoftext|>", id++);
    if (dup != NULL) cJSON_AddNumberToObject(o, dup, id++);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int test_bpe_ranks(void) {
    static const char *const extra[] = {"aa", "aa</w>", "bc</w>", "abc</w>", "ab"};
    static const char merges[] = "#version: 0.2\n"
                                 "a a\n"      /* rank 0 */
                                 "a a</w>\n"  /* rank 1 */
                                 "b c</w>\n"  /* rank 2 */
                                 "a bc</w>\n" /* rank 3 */
                                 "a b\n"      /* rank 4 */
                                 "\n\n";
    eng_err err = {0};
    tok_clip *t = NULL;
    char *v = tiny_vocab(extra, 5, NULL, NULL);
    CHECK_OK(tok_clip_load_hf_memory(&t, v, strlen(v), merges, strlen(merges), "tiny", &err), &err);
    CHECK_EQ_I64(tok_clip_vocab_size(t), 512 + 5 + 2);
    CHECK_EQ_I64(tok_clip_merge_count(t), 5);
    int32_t *ids = NULL;
    int64_t n = 0;
    /* "aaa": the lowest-ranked pair (a a) merges left to right: [aa, a</w>], not [a, aa</w>]. */
    CHECK_OK(tok_clip_encode(t, &ids, &n, "aaa", 3, &err), &err);
    CHECK(n == 2 && ids[0] == tok_clip_token_id(t, "aa") &&
          ids[1] == tok_clip_token_id(t, "a</w>"));
    tok_free(ids);
    /* "aaaa": [aa, aa</w>]? No: (a a) merges both non-overlapping pairs first: [aa, aa]... the
     * last symbol is "a</w>", so the word is a a a a</w> -> aa a a</w> -> (a a</w>) -> aa aa</w>. */
    CHECK_OK(tok_clip_encode(t, &ids, &n, "aaaa", 4, &err), &err);
    CHECK(n == 2 && ids[0] == tok_clip_token_id(t, "aa") &&
          ids[1] == tok_clip_token_id(t, "aa</w>"));
    tok_free(ids);
    /* "abc": (b c</w>) has a lower rank than (a b): a bc</w> -> abc</w>. */
    CHECK_OK(tok_clip_encode(t, &ids, &n, "abc", 3, &err), &err);
    CHECK(n == 1 && ids[0] == tok_clip_token_id(t, "abc</w>"));
    tok_free(ids);
    /* "abd": only (a b) applies. */
    CHECK_OK(tok_clip_encode(t, &ids, &n, "ABD", 3, &err), &err);
    CHECK(n == 2 && ids[0] == tok_clip_token_id(t, "ab") &&
          ids[1] == tok_clip_token_id(t, "d</w>"));
    tok_free(ids);
    /* Words over 64 bytes take the heap-based path; same rounds: 100 a's -> 49 x aa, then
     * (a a</w>) -> aa</w>; 101 a's -> 50 x aa, a</w>. */
    char many[128];
    for (int len = 100; len <= 101; len++) {
        memset(many, 'a', (size_t)len);
        CHECK_OK(tok_clip_encode(t, &ids, &n, many, (size_t)len, &err), &err);
        CHECK_EQ_I64(n, 50 + (len & 1));
        for (int64_t i = 0; i < 49; i++)
            CHECK_EQ_I64(ids[i], tok_clip_token_id(t, "aa"));
        CHECK_EQ_I64(ids[49], tok_clip_token_id(t, len == 100 ? "aa</w>" : "aa"));
        if (len == 101) CHECK_EQ_I64(ids[50], tok_clip_token_id(t, "a</w>"));
        tok_free(ids);
    }
    /* Decoding is the reference's: "</w>" becomes a space. */
    int32_t seq[3] = {tok_clip_token_id(t, "ab"), tok_clip_token_id(t, "d</w>"),
                      tok_clip_token_id(t, "aa</w>")};
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(tok_clip_decode(t, &text, &len, seq, 3, &err), &err);
    CHECK(strcmp(text, "abd aa ") == 0 && len == 7);
    tok_free(text);
    seq[1] = 9999;
    CHECK(tok_clip_decode(t, &text, &len, seq, 3, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "9999");
    tok_clip_free(t);
    free(v);
    return 0;
}

/* ---- malformed vocabularies --------------------------------------------------------------- */

static int expect_hf_error(
    const char *vocab, const char *merges, int code, const char *needle1, const char *needle2) {
    eng_err err = {0};
    tok_clip *t = NULL;
    const int rc =
        tok_clip_load_hf_memory(&t, vocab, strlen(vocab), merges, strlen(merges), "m", &err);
    if (rc != code || t != NULL) {
        fprintf(stderr, "expected code %d, got %d (%s)\n", code, rc, err.msg);
        tok_clip_free(t);
        return 1;
    }
    CHECK_CONTAINS(err.msg, needle1);
    if (needle2 != NULL) CHECK_CONTAINS(err.msg, needle2);
    return 0;
}

static int expect_openai_error(
    const char *text, size_t len, int code, const char *needle1, const char *needle2) {
    eng_err err = {0};
    tok_clip *t = NULL;
    const int rc = tok_clip_load_openai_memory(&t, text, len, "bpe.txt", &err);
    if (rc != code || t != NULL) {
        fprintf(stderr, "expected code %d, got %d (%s)\n", code, rc, err.msg);
        tok_clip_free(t);
        return 1;
    }
    CHECK_CONTAINS(err.msg, needle1);
    if (needle2 != NULL) CHECK_CONTAINS(err.msg, needle2);
    return 0;
}

static int test_bad_vocab(void) {
    static const char *const extra[] = {"aa"};
    eng_err err = {0};
    tok_clip *t = NULL;
    char *ok = tiny_vocab(extra, 1, NULL, NULL);
    const char *mok = "#version: 0.2\na a\n";
    CHECK_OK(tok_clip_load_hf_memory(&t, ok, strlen(ok), mok, strlen(mok), NULL, &err), &err);
    tok_clip_free(t);
    t = NULL;
    /* vocab.json */
    CHECK(expect_hf_error("{\"a\": 0,\n\"b\": }", mok, ENG_E_FORMAT,
                          "m/vocab.json:2:", "not valid JSON") == 0);
    CHECK(expect_hf_error("[1, 2]", mok, ENG_E_FORMAT, "m/vocab.json", "JSON object") == 0);
    CHECK(expect_hf_error("{}", mok, ENG_E_FORMAT, "m/vocab.json", "empty") == 0);
    CHECK(expect_hf_error("{\"a\": 0, \"b\": 2}", mok, ENG_E_FORMAT, "\"b\"", "from 0 to 1") == 0);
    CHECK(expect_hf_error("{\"a\": 0, \"b\": 0.5}", mok, ENG_E_FORMAT, "\"b\"", "integer") == 0);
    CHECK(expect_hf_error("{\"a\": 0, \"b\": \"1\"}", mok, ENG_E_FORMAT, "\"b\"", "integer") == 0);
    CHECK(expect_hf_error("{\"a\": 0, \"b\": -1}", mok, ENG_E_FORMAT, "\"b\"", "integer") == 0);
    CHECK(expect_hf_error("{\"a\": 0, \"b\": 0}", mok, ENG_E_FORMAT, "id 0", "two tokens") == 0);
    CHECK(expect_hf_error("{\"a\": 0, \"a\": 1}", mok, ENG_E_FORMAT, "\"a\"", "twice") == 0);
    CHECK(expect_hf_error("{\"\": 0}", mok, ENG_E_FORMAT, "m/vocab.json", "empty") == 0);
    CHECK(expect_hf_error("{\"a\xff\": 0}", mok, ENG_E_FORMAT, "m/vocab.json", "UTF-8") == 0);
    char *v = tiny_vocab(extra, 1, "Q</w>", NULL);
    CHECK(expect_hf_error(v, mok, ENG_E_FORMAT, "byte token \"Q</w>\"", "m/vocab.json") == 0);
    free(v);
    v = tiny_vocab(extra, 1, "<|startoftext|>", NULL);
    CHECK(expect_hf_error(v, mok, ENG_E_FORMAT, "<|startoftext|>", "missing") == 0);
    free(v);
    v = tiny_vocab(extra, 1, NULL, "aa");
    CHECK(expect_hf_error(v, mok, ENG_E_FORMAT, "\"aa\" appears twice", NULL) == 0);
    free(v);
    /* merges.txt */
    CHECK(expect_hf_error(ok, "#version: 0.2\na a\na b c\n", ENG_E_FORMAT,
                          "m/merges.txt:3:", "found 3") == 0);
    CHECK(expect_hf_error(ok, "#version: 0.2\n\na a\n", ENG_E_FORMAT,
                          "m/merges.txt:2:", "found 0") == 0);
    CHECK(expect_hf_error(ok, "#version: 0.2\na\n", ENG_E_FORMAT, "m/merges.txt:2:", "found 1") ==
          0);
    CHECK(expect_hf_error(ok, "#version: 0.2\na zz\n", ENG_E_FORMAT,
                          "m/merges.txt:2:", "\"zz\", which is not in the vocabulary") == 0);
    CHECK(expect_hf_error(ok, "#version: 0.2\na b\n", ENG_E_FORMAT,
                          "m/merges.txt:2:", "result \"ab\" is not in the vocabulary") == 0);
    CHECK(expect_hf_error(ok, "#version: 0.2\na a\na a\n", ENG_E_FORMAT,
                          "m/merges.txt:3:", "duplicate merge") == 0);
    CHECK(expect_hf_error(ok, "#version: 0.2\na a\xc3\n", ENG_E_FORMAT,
                          "m/merges.txt:2:", "UTF-8") == 0);
    free(ok);
    /* OpenAI's layout (plain text from memory; the vocabulary comes from the merges). */
    static const char good[] = "header\nh i\nt h\n";
    CHECK_OK(tok_clip_load_openai_memory(&t, good, strlen(good), NULL, &err), &err);
    CHECK_EQ_I64(tok_clip_vocab_size(t), 512 + 2 + 2);
    CHECK_EQ_I64(tok_clip_bos_id(t), 514);
    CHECK_EQ_I64(tok_clip_token_id(t, "th"), 513);
    tok_clip_free(t);
    t = NULL;
    CHECK(expect_openai_error("header\nh i\nx y z\n", 17, ENG_E_FORMAT, "bpe.txt:3:", "found 3") ==
          0);
    CHECK(expect_openai_error("header\nhi j\n", 12, ENG_E_FORMAT,
                              "bpe.txt:2:", "\"hi\", which is not in the vocabulary") == 0);
    CHECK(expect_openai_error("header\nh i\nh i\n", 15, ENG_E_FORMAT,
                              "bpe.txt:3:", "\"hi\" appears twice") == 0);
    CHECK(expect_openai_error("header\nh \xff\n", 10, ENG_E_FORMAT, "bpe.txt:2:", "UTF-8") == 0);
    CHECK(expect_openai_error("header only", 11, ENG_E_FORMAT, "bpe.txt", "no merges") == 0);
    CHECK(expect_openai_error("", 0, ENG_E_FORMAT, "bpe.txt", "no merges") == 0);
    /* A merge whose result is a special token's text. */
    CHECK(expect_openai_error("header\n<|startoftext| >\n", 23, ENG_E_FORMAT,
                              "bpe.txt:2:", "\"<|startoftext|>\" appears twice") == 0);
    /* Missing files name the path. */
    CHECK(tok_clip_load(&t, "/nonexistent/bpe_simple_vocab_16e6.txt.gz", &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "/nonexistent/bpe_simple_vocab_16e6.txt.gz");
    CHECK(tok_clip_load_hf(&t, "/nonexistent/vocab.json", "/x/merges.txt", &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "/nonexistent/vocab.json");
    if (!have_data()) return ENG_TEST_SKIP;
    CHECK(tok_clip_load_hf(&t, clip_path("vocab.json"), "/nonexistent/merges.txt", &err) ==
          ENG_E_IO);
    CHECK_CONTAINS(err.msg, "/nonexistent/merges.txt");
    /* A damaged .gz: truncated, and with its deflate data overwritten. */
    FILE *f = fopen(clip_path("bpe_simple_vocab_16e6.txt.gz"), "rb");
    CHECK(f != NULL);
    unsigned char *gz = malloc(2000000);
    const size_t gz_len = fread(gz, 1, 2000000, f);
    fclose(f);
    CHECK(gz_len > 100000);
    CHECK(tok_clip_load_openai_memory(&t, gz, gz_len / 2, "cut.gz", &err) == ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "cut.gz");
    CHECK_CONTAINS(err.msg, "truncated gzip");
    memset(gz + 40, 0xFF, 64);
    CHECK(tok_clip_load_openai_memory(&t, gz, gz_len, "bad.gz", &err) == ENG_E_FORMAT);
    CHECK_CONTAINS(err.msg, "bad.gz");
    CHECK_CONTAINS(err.msg, "gzip");
    /* The same damage through a file names the file's path. */
    char path[700];
    snprintf(path, sizeof path, "%s/bad_vocab.txt.gz", eng_test_tmpdir());
    f = fopen(path, "wb");
    CHECK(f != NULL && fwrite(gz, 1, gz_len / 3, f) == gz_len / 3);
    fclose(f);
    CHECK(tok_clip_load(&t, path, &err) == ENG_E_FORMAT && t == NULL);
    CHECK_CONTAINS(err.msg, path);
    unlink(path);
    free(gz);
    return 0;
}

/* ---- where the tools find the vocabulary -------------------------------------------------- */

static int test_find_vocab(void) {
    char out[1024], want[1100], data[1024];
    eng_err err = {0};
    const int have = have_data();
    snprintf(data, sizeof data, "%s", eng_test_data_dir());
    unsetenv("ENG_CLIP_VOCAB");
    setenv("ENGINE_DATA_DIR", "/nonexistent-data", 1);
    CHECK(tok_clip_find_vocab(out, sizeof out, NULL, NULL, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "/nonexistent-data/clip/bpe_simple_vocab_16e6.txt.gz");
    CHECK_CONTAINS(err.msg, "--vocab");
    CHECK(tok_clip_find_vocab(out, sizeof out, "/nonexistent/v.gz", data, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "/nonexistent/v.gz");
    setenv("ENG_CLIP_VOCAB", "/nonexistent/env.gz", 1);
    CHECK(tok_clip_find_vocab(out, sizeof out, NULL, data, &err) == ENG_E_IO);
    CHECK_CONTAINS(err.msg, "ENG_CLIP_VOCAB=/nonexistent/env.gz");
    setenv("ENG_CLIP_VOCAB", "", 1); /* empty: not set */
    CHECK(tok_clip_find_vocab(out, 4, "/tmp", NULL, &err) == ENG_E_INVALID_ARG);
    CHECK_OK(tok_clip_find_vocab(out, sizeof out, "/tmp", NULL, &err), &err);
    CHECK(strcmp(out, "/tmp") == 0);
    if (!have) return ENG_TEST_SKIP;
    /* Not in $ENGINE_DATA_DIR: the build's data folder. */
    snprintf(want, sizeof want, "%s/clip/bpe_simple_vocab_16e6.txt.gz", data);
    CHECK_OK(tok_clip_find_vocab(out, sizeof out, NULL, data, &err), &err);
    CHECK(strcmp(out, want) == 0);
    setenv("ENGINE_DATA_DIR", data, 1);
    CHECK_OK(tok_clip_find_vocab(out, sizeof out, NULL, NULL, &err), &err);
    CHECK(strcmp(out, want) == 0);
    setenv("ENG_CLIP_VOCAB", clip_path("vocab.json"), 1);
    CHECK_OK(tok_clip_find_vocab(out, sizeof out, NULL, NULL, &err), &err);
    CHECK(strcmp(out, clip_path("vocab.json")) == 0);
    unsetenv("ENG_CLIP_VOCAB");
    return 0;
}

/* ---- threads and speed -------------------------------------------------------------------- */

typedef struct thread_arg {
    const tok_clip *t;
    const golden *g;
    int64_t n;
    int bad;
} thread_arg;

static void *thread_main(void *p) {
    thread_arg *a = p;
    for (int rep = 0; rep < 20; rep++)
        for (int64_t i = 0; i < a->n; i++)
            a->bad += check_golden(a->t, &a->g[(i * 7 + rep) % a->n]);
    return NULL;
}

static int test_threads(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    int64_t n = 0;
    golden *g = load_goldens(clip_path("tokenizer_goldens.jsonl"), &n);
    tok_clip *t = load_gz();
    pthread_t th[4];
    thread_arg args[4];
    CHECK(g != NULL && t != NULL);
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){t, g, n, 0};
        CHECK(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0);
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += args[i].bad;
    }
    CHECK_EQ_I64(bad, 0);
    goldens_free(g, n);
    tok_clip_free(t);
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 10,000 prompts made of the goldens' words (a fixed LCG picks 8..40 of them), encoded once
 * each, with the prompt form as the pipeline uses it. Prints the time; asserts nothing about it
 * (speed is measured by commands, not tests). */
static int test_speed_smoke(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    int64_t n = 0;
    golden *g = load_goldens(clip_path("tokenizer_goldens.jsonl"), &n);
    tok_clip *t = load_gz();
    CHECK(g != NULL && t != NULL);
    /* The word pool: the goldens' texts split at spaces. */
    const char *words[4096];
    size_t n_words = 0;
    char *pool = NULL;
    size_t pool_len = 0;
    for (int64_t i = 0; i < n; i++)
        pool_len += g[i].text_len + 1;
    pool = malloc(pool_len + 1);
    char *w = pool;
    for (int64_t i = 0; i < n; i++) {
        memcpy(w, g[i].text, g[i].text_len + 1);
        for (char *tokp = strtok(w, " "); tokp != NULL && n_words < 4096; tokp = strtok(NULL, " "))
            words[n_words++] = tokp;
        w += g[i].text_len + 1;
    }
    enum { N_PROMPTS = 10000 };
    char **prompts = malloc(N_PROMPTS * sizeof *prompts);
    uint64_t s = eng_test_seed();
    size_t bytes = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        char buf[4096] = "";
        s = s * 6364136223846793005u + 1442695040888963407u;
        const int k = 8 + (int)((s >> 33) % 33);
        for (int j = 0; j < k; j++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            const char *word = words[(s >> 33) % n_words];
            if (strlen(buf) + strlen(word) + 2 >= sizeof buf) break;
            if (j) strcat(buf, j % 5 == 0 ? ", " : " ");
            strcat(buf, word);
        }
        prompts[i] = strdup(buf);
        bytes += strlen(buf);
    }
    eng_err err = {0};
    int32_t ids[TOK_CLIP_CONTEXT];
    float wt[TOK_CLIP_CONTEXT];
    int64_t tokens = 0, n_prompt = 0;
    const double t0 = now_s();
    for (int i = 0; i < N_PROMPTS; i++) {
        CHECK_OK(tok_clip_encode_prompt(t, ids, wt, &n_prompt, TOK_CLIP_CONTEXT, TOK_CLIP_EOS,
                                        TOK_PROMPT_WEIGHTS, prompts[i], strlen(prompts[i]), &err),
                 &err);
        tokens += n_prompt;
    }
    const double dt = now_s() - t0;
    printf("speed: %d prompts (%zu bytes, %lld tokens) in %.3f s on one thread: %.0f prompts/s\n",
           N_PROMPTS, bytes, (long long)tokens, dt, N_PROMPTS / dt);
    for (int i = 0; i < N_PROMPTS; i++)
        free(prompts[i]);
    free(prompts);
    free(pool);
    goldens_free(g, n);
    tok_clip_free(t);
    return 0;
}

static const eng_test_case cases[] = {
    {"goldens_openai", test_goldens_openai},
    {"goldens_hf", test_goldens_hf},
    {"load_folder", test_load_folder},
    {"ftfy_goldens", test_ftfy_goldens},
    {"pad_truncate", test_pad_truncate},
    {"weights", test_weights},
    {"invalid_utf8", test_invalid_utf8},
    {"bpe_ranks", test_bpe_ranks},
    {"bad_vocab", test_bad_vocab},
    {"find_vocab", test_find_vocab},
    {"threads", test_threads},
    {"speed_smoke", test_speed_smoke},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
