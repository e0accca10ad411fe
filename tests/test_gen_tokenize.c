/* test_gen_tokenize.c: `gen tokenize` end to end: the ids line of golden prompts, --jsonl over
 * the whole golden file, the default vocabulary from ENGINE_DATA_DIR, a diffusers-style folder,
 * and the failures (missing vocabulary, bad flags, invalid input), each with its exit code and
 * a message naming the problem. Runs the real binary (GEN_EXE) with fork/exec. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eng_test.h"

typedef struct result {
    int status; /* exit code, or -1 when killed */
    char *out, *err;
} result;

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    if (f == NULL || s == NULL) {
        if (f != NULL) fclose(f);
        free(s);
        return strdup("");
    }
    for (size_t k; (k = fread(s + n, 1, cap - n - 1, f)) > 0;) {
        n += k;
        if (cap - n - 1 == 0) s = realloc(s, cap *= 2);
    }
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Runs gen with args (NULL-terminated); env is "NAME=VALUE" pairs to set ("NAME=" unsets),
 * NULL-terminated; stdin_path may be NULL. */
static result run_gen(const char *const *args, const char *const *env, const char *stdin_path) {
    char out_path[600], err_path[600];
    result r = {-1, NULL, NULL};
    snprintf(out_path, sizeof out_path, "%s/gen.out", eng_test_tmpdir());
    snprintf(err_path, sizeof err_path, "%s/gen.err", eng_test_tmpdir());
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
        char *argv[32];
        int n = 0;
        argv[n++] = (char *)GEN_EXE;
        for (; args[n - 1] != NULL && n < 31; n++)
            argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        for (int i = 0; env != NULL && env[i] != NULL; i++) {
            char name[128];
            const char *eq = strchr(env[i], '=');
            snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
            if (eq[1] == '\0')
                unsetenv(name);
            else
                setenv(name, eq + 1, 1);
        }
        const int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(126);
        if (stdin_path != NULL) {
            const int fi = open(stdin_path, O_RDONLY);
            if (fi < 0 || dup2(fi, 0) < 0) _exit(126);
        }
        execv(GEN_EXE, argv);
        _exit(127);
    }
    int st = 0;
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st)) r.status = WEXITSTATUS(st);
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

static void result_free(result *r) {
    free(r->out);
    free(r->err);
}

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

/* The golden file's lines as parsed JSON objects (caller deletes). */
static cJSON **goldens(int *n_out) {
    FILE *f = fopen(clip_path("tokenizer_goldens.jsonl"), "rb");
    cJSON **v = NULL;
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (f != NULL && getline(&line, &cap, f) > 0) {
        v = realloc(v, (size_t)(n + 1) * sizeof *v);
        v[n++] = cJSON_Parse(line);
    }
    free(line);
    if (f != NULL) fclose(f);
    *n_out = n;
    return v;
}

/* "49406 320 ... 49407\n" for a golden's ids. */
static void ids_line(char *out, size_t cap, const cJSON *ids) {
    size_t k = 0;
    out[0] = '\0';
    for (const cJSON *it = ids->child; it != NULL && k < cap; it = it->next)
        k += (size_t)snprintf(out + k, cap - k, "%s%d", it == ids->child ? "" : " ",
                              (int)it->valuedouble);
    if (k < cap) snprintf(out + k, cap - k, "\n");
}

static int test_ids(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    int n = 0, checked = 0;
    cJSON **g = goldens(&n);
    CHECK(n > 100);
    /* Every 7th golden (gen starts once per prompt), the text as one argument. */
    for (int i = 0; i < n; i += 7) {
        const char *text = cJSON_GetObjectItem(g[i], "text")->valuestring;
        char want[8192];
        if (text[0] == '-') continue; /* would be read as a flag: covered with "--" below */
        ids_line(want, sizeof want, cJSON_GetObjectItem(g[i], "ids"));
        const char *args[] = {"tokenize", "--vocab", clip_path("bpe_simple_vocab_16e6.txt.gz"),
                              text, NULL};
        result r = run_gen(args, NULL, NULL);
        if (r.status != 0 || strcmp(r.out, want) != 0) {
            fprintf(stderr, "text \"%s\": exit %d\n  want %s  got  %s  stderr %s\n", text, r.status,
                    want, r.out, r.err);
            result_free(&r);
            return 1;
        }
        result_free(&r);
        checked++;
    }
    printf("%d prompts checked\n", checked);
    /* Several words join with spaces; "--" ends the options. */
    const char *args[] = {"tokenize", "--vocab", clip_path("bpe_simple_vocab_16e6.txt.gz"),
                          "--",       "a",       "photo",
                          "of",       "a",       "cat",
                          NULL};
    result r = run_gen(args, NULL, NULL);
    CHECK_EQ_I64(r.status, 0);
    CHECK(strcmp(r.out, "49406 320 1125 539 320 2368 49407\n") == 0);
    result_free(&r);
    for (int i = 0; i < n; i++)
        cJSON_Delete(g[i]);
    free(g);
    return 0;
}

static int test_jsonl(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    int n = 0;
    cJSON **g = goldens(&n);
    const char *args[] = {"tokenize",
                          "--vocab",
                          clip_path("bpe_simple_vocab_16e6.txt.gz"),
                          "--jsonl",
                          clip_path("tokenizer_goldens.jsonl"),
                          NULL};
    result r = run_gen(args, NULL, NULL);
    CHECK_EQ_I64(r.status, 0);
    /* One output line per golden line, with the same text and ids. */
    int k = 0;
    for (char *line = strtok(r.out, "\n"); line != NULL; line = strtok(NULL, "\n"), k++) {
        cJSON *o = cJSON_Parse(line);
        CHECK(o != NULL && k < n);
        CHECK(strncmp(line, "{\"text\": ", 9) == 0);
        const char *want_text = cJSON_GetObjectItem(g[k], "text")->valuestring;
        CHECK(strcmp(cJSON_GetObjectItem(o, "text")->valuestring, want_text) == 0);
        const cJSON *a = cJSON_GetObjectItem(o, "ids"), *b = cJSON_GetObjectItem(g[k], "ids");
        CHECK(cJSON_GetArraySize(a) == cJSON_GetArraySize(b));
        for (const cJSON *x = a->child, *y = b->child; x != NULL; x = x->next, y = y->next)
            CHECK(x->valuedouble == y->valuedouble);
        cJSON_Delete(o);
    }
    CHECK_EQ_I64(k, n);
    result_free(&r);
    /* From standard input, with blank lines skipped. */
    char path[700];
    snprintf(path, sizeof path, "%s/in.jsonl", eng_test_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    fputs("{\"text\": \"a photo of a cat\", \"other\": 1}\n\n{\"text\": \"\"}\n", f);
    fclose(f);
    const char *args2[] = {"tokenize", "--vocab", clip_path("bpe_simple_vocab_16e6.txt.gz"),
                           "--jsonl",  "-",       NULL};
    r = run_gen(args2, NULL, path);
    CHECK_EQ_I64(r.status, 0);
    CHECK(strcmp(r.out, "{\"text\": \"a photo of a cat\", \"ids\": [49406, 320, 1125, 539, 320, "
                        "2368, 49407]}\n{\"text\": \"\", \"ids\": [49406, 49407]}\n") == 0);
    result_free(&r);
    unlink(path);
    for (int i = 0; i < n; i++)
        cJSON_Delete(g[i]);
    free(g);
    return 0;
}

static int test_default_vocab(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    const char *args[] = {"tokenize", "a photo of a cat", NULL};
    char data[1100];
    snprintf(data, sizeof data, "ENGINE_DATA_DIR=%s", eng_test_data_dir());
    const char *env[] = {data, "ENG_CLIP_VOCAB=", NULL};
    result r = run_gen(args, env, NULL);
    CHECK_EQ_I64(r.status, 0);
    CHECK(strcmp(r.out, "49406 320 1125 539 320 2368 49407\n") == 0);
    result_free(&r);
    /* ENG_CLIP_VOCAB names the Hugging Face files' folder... a file works too. */
    char vocab[1100];
    snprintf(vocab, sizeof vocab, "ENG_CLIP_VOCAB=%s", clip_path("bpe_simple_vocab_16e6.txt.gz"));
    const char *env2[] = {"ENGINE_DATA_DIR=/nonexistent", vocab, NULL};
    r = run_gen(args, env2, NULL);
    CHECK_EQ_I64(r.status, 0);
    CHECK(strcmp(r.out, "49406 320 1125 539 320 2368 49407\n") == 0);
    result_free(&r);
    return 0;
}

static int test_hf_folder(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    char dir[600], v[700], m[700];
    snprintf(dir, sizeof dir, "%s/tok", eng_test_tmpdir());
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    CHECK(mkdir(dir, 0700) == 0);
    CHECK(symlink(clip_path("vocab.json"), v) == 0 && symlink(clip_path("merges.txt"), m) == 0);
    const char *args[] = {"tokenize", "--vocab", dir, "İstanbul and ırmak", NULL};
    result r = run_gen(args, NULL, NULL);
    CHECK_EQ_I64(r.status, 0);
    /* The golden line for this text. */
    int n = 0;
    cJSON **g = goldens(&n);
    char want[4096] = "";
    for (int i = 0; i < n; i++)
        if (strcmp(cJSON_GetObjectItem(g[i], "text")->valuestring, "İstanbul and ırmak") == 0)
            ids_line(want, sizeof want, cJSON_GetObjectItem(g[i], "ids"));
    CHECK(want[0] != '\0');
    CHECK(strcmp(r.out, want) == 0);
    result_free(&r);
    for (int i = 0; i < n; i++)
        cJSON_Delete(g[i]);
    free(g);
    unlink(v);
    unlink(m);
    rmdir(dir);
    return 0;
}

static int test_missing_vocab(void) {
    const char *args[] = {"tokenize", "--vocab", "/nonexistent/bpe.txt.gz", "a cat", NULL};
    result r = run_gen(args, NULL, NULL);
    CHECK_EQ_I64(r.status, 1);
    CHECK_CONTAINS(r.err, "gen tokenize:");
    CHECK_CONTAINS(r.err, "/nonexistent/bpe.txt.gz");
    result_free(&r);
    const char *args2[] = {"tokenize", "a cat", NULL};
    const char *env[] = {"ENG_CLIP_VOCAB=/nonexistent/env.gz", NULL};
    r = run_gen(args2, env, NULL);
    CHECK_EQ_I64(r.status, 1);
    CHECK_CONTAINS(r.err, "ENG_CLIP_VOCAB=/nonexistent/env.gz");
    result_free(&r);
    /* A vocabulary that is not one. */
    const char *args3[] = {"tokenize", "--vocab", "/etc/hostname", "a cat", NULL};
    r = run_gen(args3, NULL, NULL);
    CHECK_EQ_I64(r.status, 1);
    CHECK_CONTAINS(r.err, "/etc/hostname");
    result_free(&r);
    return 0;
}

static int test_bad_flag(void) {
    const char *a1[] = {"tokenize", "--bogus", "a cat", NULL};
    result r = run_gen(a1, NULL, NULL);
    CHECK_EQ_I64(r.status, 2);
    CHECK_CONTAINS(r.err, "--bogus");
    result_free(&r);
    const char *a2[] = {"tokenize", "--vocab", NULL};
    r = run_gen(a2, NULL, NULL);
    CHECK_EQ_I64(r.status, 2);
    CHECK_CONTAINS(r.err, "--vocab needs a value");
    result_free(&r);
    const char *a3[] = {"tokenize", NULL};
    r = run_gen(a3, NULL, NULL);
    CHECK_EQ_I64(r.status, 2);
    CHECK_CONTAINS(r.err, "no TEXT");
    result_free(&r);
    const char *a4[] = {"tokenize", "--jsonl", "x.jsonl", "a cat", NULL};
    r = run_gen(a4, NULL, NULL);
    CHECK_EQ_I64(r.status, 2);
    CHECK_CONTAINS(r.err, "not both");
    result_free(&r);
    const char *a5[] = {"tokenize", "--help", NULL};
    r = run_gen(a5, NULL, NULL);
    CHECK_EQ_I64(r.status, 0);
    CHECK_CONTAINS(r.out, "usage: gen tokenize");
    result_free(&r);
    const char *a6[] = {"--help", NULL};
    r = run_gen(a6, NULL, NULL);
    CHECK_EQ_I64(r.status, 0);
    CHECK_CONTAINS(r.out, "gen tokenize");
    result_free(&r);
    return 0;
}

static int test_invalid_input(void) {
    if (!have_data()) return ENG_TEST_SKIP;
    const char *vocab = clip_path("bpe_simple_vocab_16e6.txt.gz");
    const char *a1[] = {"tokenize", "--vocab", vocab, "caf\xc3", NULL};
    result r = run_gen(a1, NULL, NULL);
    CHECK_EQ_I64(r.status, 1);
    CHECK_CONTAINS(r.err, "invalid UTF-8 at byte 3");
    result_free(&r);
    /* JSON lines: the failing line is named. */
    char path[700];
    snprintf(path, sizeof path, "%s/bad.jsonl", eng_test_tmpdir());
    static const char *const bodies[] = {
        "{\"text\": \"ok\"}\n{\"text\": \n",
        "{\"text\": \"ok\"}\n[1, 2]\n",
        "{\"text\": \"ok\"}\n{\"txt\": \"a\"}\n",
        "{\"text\": \"ok\"}\n{\"text\": \"caf\xc3\"}\n",
    };
    static const char *const needles[] = {":2: not valid JSON", ":2: expected an object",
                                          ":2: expected an object", ":2: tok_clip_encode"};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        fputs(bodies[i], f);
        fclose(f);
        const char *a2[] = {"tokenize", "--vocab", vocab, "--jsonl", path, NULL};
        r = run_gen(a2, NULL, NULL);
        CHECK_EQ_I64(r.status, 1);
        CHECK_CONTAINS(r.err, path);
        CHECK_CONTAINS(r.err, needles[i]);
        CHECK(strncmp(r.out, "{\"text\": \"ok\", \"ids\": [49406, 2481, 49407]}\n", 44) == 0);
        result_free(&r);
    }
    unlink(path);
    const char *a3[] = {"tokenize", "--vocab", vocab, "--jsonl", "/nonexistent.jsonl", NULL};
    r = run_gen(a3, NULL, NULL);
    CHECK_EQ_I64(r.status, 1);
    CHECK_CONTAINS(r.err, "/nonexistent.jsonl");
    result_free(&r);
    return 0;
}

static const eng_test_case cases[] = {
    {"ids", test_ids},
    {"jsonl", test_jsonl},
    {"default_vocab", test_default_vocab},
    {"hf_folder", test_hf_folder},
    {"missing_vocab", test_missing_vocab},
    {"bad_flag", test_bad_flag},
    {"invalid_input", test_invalid_input},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
