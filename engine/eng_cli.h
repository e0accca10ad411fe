/* eng_cli.h: small helpers shared by the command-line tools (gen, nerf, viewer): the version
 * banner and flag-value parsing that names the flag in its error.
 *
 *   int steps; if (eng_cli_parse_int(&steps, "--steps", argv[i], 1, 10000, &err) != ENG_OK) ...
 *
 * Threads: pure functions, except that the banner writes to `out`. */
#ifndef ENG_CLI_H
#define ENG_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "eng_ctx.h"
#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Prints "<prog> <version> (commit <hash>, <build type> build)" and the context's devices. */
void eng_cli_print_version(FILE *out, const char *prog, const eng_ctx *ctx);

/* The `--version` command of every tool: makes a context from the environment, tries to attach
 * CUDA device 0 with `attach` (eng_cuda_attach, or its stub in a build without CUDA), prints the
 * banner and either the device or "cuda: no CUDA device (<why>)". Returns the exit status. */
typedef int (*eng_cli_attach_fn)(eng_ctx *ctx, int device, uint64_t budget_bytes, eng_err *err);
int eng_cli_version(FILE *out, const char *prog, eng_cli_attach_fn attach);

/* What every tool's main does first: `--version` (eng_cli_version), `--help`/`-h` (usage to
 * stdout, exit 0), no arguments (usage to stderr, exit 2). Returns that exit status, or -1 when
 * argv names something else for the tool to handle. */
int eng_cli_common(
    int argc, char **argv, const char *prog, const char *usage, eng_cli_attach_fn attach);

/* Parses a whole decimal integer in [lo, hi]. Errors: ENG_E_INVALID_ARG naming the flag. */
int eng_cli_parse_int(
    int64_t *out, const char *flag, const char *text, int64_t lo, int64_t hi, eng_err *err);
/* Parses a finite float in [lo, hi]. Errors: ENG_E_INVALID_ARG naming the flag. */
int eng_cli_parse_float(
    double *out, const char *flag, const char *text, double lo, double hi, eng_err *err);

/* Table-driven option parsing for the tools' commands:
 *   int64_t steps = 20; const char *out = "x"; int resume = 0; const char *pos[1]; int npos = 0;
 *   const eng_cli_opt opts[] = {{"--steps", NULL, ENG_CLI_INT, &steps, 1, 1e6},
 *                               {"-o", "--out", ENG_CLI_STR, &out, 0, 0},
 *                               {"--resume", NULL, ENG_CLI_FLAG, &resume, 0, 0}};
 *   rc = eng_cli_parse(argc, argv, opts, 3, pos, 1, &npos, &err);
 * argv[0] is the command's name and is skipped; "--help" / "-h" anywhere returns 1 (print the
 * usage); a word not starting with '-' (or "-" itself) is a positional argument. */
typedef enum eng_cli_kind {
    ENG_CLI_FLAG,  /* int *: set to 1 */
    ENG_CLI_STR,   /* const char **: the next word */
    ENG_CLI_INT,   /* int64_t *: a whole number in [lo, hi] */
    ENG_CLI_FLOAT, /* double *: a finite number in [lo, hi] */
    ENG_CLI_KIND_COUNT
} eng_cli_kind;

typedef struct eng_cli_opt {
    const char *name;  /* "--steps" */
    const char *alias; /* another spelling ("-s") or NULL */
    eng_cli_kind kind;
    void *dst;
    double lo, hi;
} eng_cli_opt;

/* Returns ENG_OK, 1 for --help, or ENG_E_INVALID_ARG (an unknown option, a missing or bad
 * value, more than max_pos positional words: the message names the word). */
int eng_cli_parse(int argc,
                  char **argv,
                  const eng_cli_opt *opts,
                  int n_opts,
                  const char **positional,
                  int max_pos,
                  int *n_pos,
                  eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* ENG_CLI_H */
