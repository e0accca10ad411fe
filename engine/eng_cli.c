/* eng_cli.c: the version banner and flag parsing shared by the tools. */
#include "eng_cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eng_version.h"

void eng_cli_print_version(FILE *out, const char *prog, const eng_ctx *ctx) {
    char desc[1024];
    fprintf(out, "%s %s (commit %s, %s build)\n", prog, ENG_VERSION_STRING, ENG_GIT_COMMIT,
            ENG_BUILD_TYPE);
    fputs(eng_ctx_describe(ctx, desc, sizeof desc), out);
}

int eng_cli_version(FILE *out, const char *prog, eng_cli_attach_fn attach) {
    eng_ctx_params p;
    eng_ctx *ctx = NULL;
    eng_err err = {0};
    eng_ctx_params_init(&p);
    if (eng_ctx_params_from_env(&p, &err) != ENG_OK || eng_ctx_create(&ctx, &p, &err) != ENG_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    const int cuda_rc = attach != NULL ? attach(ctx, 0, 0, &err)
                                       : eng_err_set(&err, ENG_E_UNSUPPORTED, "built without CUDA");
    eng_cli_print_version(out, prog, ctx);
    if (cuda_rc != ENG_OK) fprintf(out, "cuda: no CUDA device (%s)\n", err.msg);
    eng_ctx_destroy(ctx);
    return 0;
}

int eng_cli_common(
    int argc, char **argv, const char *prog, const char *usage, eng_cli_attach_fn attach) {
    if (argc == 2 && strcmp(argv[1], "--version") == 0)
        return eng_cli_version(stdout, prog, attach);
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    return -1;
}

int eng_cli_parse_int(
    int64_t *out, const char *flag, const char *text, int64_t lo, int64_t hi, eng_err *err) {
    char *end = NULL;
    long long v;
    errno = 0;
    v = text != NULL ? strtoll(text, &end, 10) : 0;
    if (text == NULL || end == text || *end != '\0' || errno != 0 || v < lo || v > hi) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: expected an integer from %lld to %lld, got \"%s\"", flag,
                           (long long)lo, (long long)hi, text != NULL ? text : "");
    }
    *out = (int64_t)v;
    return ENG_OK;
}

int eng_cli_parse_float(
    double *out, const char *flag, const char *text, double lo, double hi, eng_err *err) {
    char *end = NULL;
    double v;
    errno = 0;
    v = text != NULL ? strtod(text, &end) : 0.0;
    if (text == NULL || end == text || *end != '\0' || errno != 0 || !isfinite(v) || v < lo ||
        v > hi) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: expected a number from %g to %g, got \"%s\"", flag, lo, hi,
                           text != NULL ? text : "");
    }
    *out = v;
    return ENG_OK;
}

int eng_cli_parse(int argc,
                  char **argv,
                  const eng_cli_opt *opts,
                  int n_opts,
                  const char **positional,
                  int max_pos,
                  int *n_pos,
                  eng_err *err) {
    *n_pos = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (*n_pos >= max_pos)
                return eng_err_set(err, ENG_E_INVALID_ARG, "unexpected argument \"%s\"", a);
            positional[(*n_pos)++] = a;
            continue;
        }
        const eng_cli_opt *o = NULL;
        for (int k = 0; k < n_opts && o == NULL; k++)
            if (strcmp(a, opts[k].name) == 0 ||
                (opts[k].alias != NULL && strcmp(a, opts[k].alias) == 0))
                o = &opts[k];
        if (o == NULL) return eng_err_set(err, ENG_E_INVALID_ARG, "unknown option \"%s\"", a);
        if (o->kind == ENG_CLI_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        if (i + 1 >= argc) return eng_err_set(err, ENG_E_INVALID_ARG, "%s needs a value", a);
        const char *v = argv[++i];
        int rc = ENG_OK;
        switch (o->kind) {
        case ENG_CLI_STR: *(const char **)o->dst = v; break;
        case ENG_CLI_INT:
            rc = eng_cli_parse_int((int64_t *)o->dst, a, v, (int64_t)o->lo, (int64_t)o->hi, err);
            break;
        case ENG_CLI_FLOAT:
            rc = eng_cli_parse_float((double *)o->dst, a, v, o->lo, o->hi, err);
            break;
        default: ENG_ASSERT(!"eng_cli_parse: bad option kind");
        }
        if (rc != ENG_OK) return rc;
    }
    return ENG_OK;
}
