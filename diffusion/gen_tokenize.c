/* gen_tokenize.c: `gen tokenize`, the CLIP tokenizer from the command line: the ids of one text,
 * or of every line of a JSON-lines file, with the vocabulary from --vocab, ENG_CLIP_VOCAB or the
 * data folder (tok_clip_find_vocab). */
#define _POSIX_C_SOURCE 200809L
#include "gen_tokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tok.h"

#ifndef GEN_DATA_DIR
#define GEN_DATA_DIR ""
#endif

static const char usage[] =
    "usage: gen tokenize [--vocab PATH] TEXT\n"
    "       gen tokenize [--vocab PATH] --jsonl FILE\n"
    "\n"
    "Prints the CLIP token ids of TEXT on one line: <|startoftext|> (49406), the tokens, then\n"
    "<|endoftext|> (49407); no truncation or padding. Several TEXT arguments are joined with\n"
    "spaces. With --jsonl, reads JSON lines with a \"text\" field from FILE (- for standard\n"
    "input) and writes {\"text\": ..., \"ids\": [...]} for each.\n"
    "\n"
    "  --vocab PATH   OpenAI's bpe_simple_vocab_16e6.txt.gz, a folder with vocab.json and\n"
    "                 merges.txt, or a diffusers checkpoint folder (its tokenizer/). Default:\n"
    "                 $ENG_CLIP_VOCAB, else $ENGINE_DATA_DIR/clip/bpe_simple_vocab_16e6.txt.gz,\n"
    "                 else the same under the build's data folder\n"
    "  --jsonl FILE   tokenize each line of FILE\n"
    "  --help         print this help\n";

/* Writes ids as "[a, b, c]" (json) or "a b c" to out. */
static void
print_ids(FILE *out, const int32_t *ids, int64_t n, int json, int32_t bos, int32_t eos) {
    const char *sep = json ? ", " : " ";
    fputs(json ? "[" : "", out);
    fprintf(out, "%d", (int)bos);
    for (int64_t i = 0; i < n; i++)
        fprintf(out, "%s%d", sep, (int)ids[i]);
    fprintf(out, "%s%d%s\n", sep, (int)eos, json ? "]}" : "");
}

static int tokenize_text(const tok_clip *t, const char *text) {
    int32_t *ids = NULL;
    int64_t n = 0;
    eng_err err = {0};
    if (tok_clip_encode(t, &ids, &n, text, strlen(text), &err) != ENG_OK) {
        fprintf(stderr, "gen tokenize: %s\n", err.msg);
        return 1;
    }
    print_ids(stdout, ids, n, 0, tok_clip_bos_id(t), tok_clip_eos_id(t));
    tok_free(ids);
    return 0;
}

static int blank(const char *s) {
    for (; *s != '\0'; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return 0;
    return 1;
}

static int tokenize_jsonl(const tok_clip *t, const char *path) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0, line_no = 0;
    ssize_t len;
    int rc = 0;
    if (f == NULL) {
        perror("gen tokenize: --jsonl");
        fprintf(stderr, "gen tokenize: cannot read %s\n", path);
        return 1;
    }
    while ((len = getline(&line, &cap, f)) > 0) {
        line_no++;
        if (blank(line)) continue;
        cJSON *o = cJSON_ParseWithLength(line, (size_t)len);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (o == NULL || !cJSON_IsString(text)) {
            fprintf(stderr, "gen tokenize: %s:%zu: %s\n", path, line_no,
                    o == NULL
                        ? "not valid JSON"
                        : "expected an object with a \"text\" string, e.g. {\"text\": \"a cat\"}");
            cJSON_Delete(o);
            rc = 1;
            break;
        }
        int32_t *ids = NULL;
        int64_t n = 0;
        eng_err err = {0};
        if (tok_clip_encode(t, &ids, &n, text->valuestring, strlen(text->valuestring), &err) !=
            ENG_OK) {
            fprintf(stderr, "gen tokenize: %s:%zu: %s\n", path, line_no, err.msg);
            cJSON_Delete(o);
            rc = 1;
            break;
        }
        char *quoted = cJSON_PrintUnformatted(text);
        if (quoted == NULL) {
            fprintf(stderr, "gen tokenize: out of memory\n");
            tok_free(ids);
            cJSON_Delete(o);
            rc = 1;
            break;
        }
        printf("{\"text\": %s, \"ids\": ", quoted);
        print_ids(stdout, ids, n, 1, tok_clip_bos_id(t), tok_clip_eos_id(t));
        cJSON_free(quoted);
        tok_free(ids);
        cJSON_Delete(o);
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "gen tokenize: error reading %s\n", path);
        rc = 1;
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

int gen_tokenize_main(int argc, char **argv) {
    const char *vocab = NULL, *jsonl = NULL;
    char *text = NULL, path[4096];
    size_t text_len = 0;
    int n_text = 0, rc = 0, opts = 1;
    tok_clip *t = NULL;
    eng_err err = {0};
    /* The text is at most the arguments' total length. */
    for (int i = 1; i < argc; i++)
        text_len += strlen(argv[i]) + 1;
    if ((text = malloc(text_len + 1)) == NULL) {
        fprintf(stderr, "gen tokenize: out of memory\n");
        return 1;
    }
    text[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            fputs(usage, stdout);
            goto done;
        } else if (opts && (strcmp(a, "--vocab") == 0 || strcmp(a, "--jsonl") == 0)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "gen tokenize: %s needs a value (try gen tokenize --help)\n", a);
                rc = 2;
                goto done;
            }
            *(a[2] == 'v' ? &vocab : &jsonl) = argv[++i];
        } else if (opts && strcmp(a, "--") == 0) {
            opts = 0;
        } else if (opts && a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "gen tokenize: unknown option \"%s\" (try gen tokenize --help)\n", a);
            rc = 2;
            goto done;
        } else {
            if (n_text++ > 0) strcat(text, " ");
            strcat(text, a);
        }
    }
    if ((n_text > 0) == (jsonl != NULL)) {
        fprintf(stderr, "gen tokenize: %s (try gen tokenize --help)\n",
                jsonl != NULL ? "give either TEXT or --jsonl FILE, not both"
                              : "no TEXT to tokenize");
        rc = 2;
        goto done;
    }
    if (tok_clip_find_vocab(path, sizeof path, vocab, GEN_DATA_DIR, &err) != ENG_OK ||
        tok_clip_load(&t, path, &err) != ENG_OK) {
        fprintf(stderr, "gen tokenize: %s\n", err.msg);
        rc = 1;
        goto done;
    }
    rc = jsonl != NULL ? tokenize_jsonl(t, jsonl) : tokenize_text(t, text);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "gen tokenize: error writing the output\n");
        rc = 1;
    }
done:
    tok_clip_free(t);
    free(text);
    return rc;
}
