/* gen_tokenize.h: the `gen tokenize` command (gen_tokenize.c), called by gen's main.
 *
 *   gen tokenize [--vocab PATH] TEXT           ids of TEXT on one line (start and end included)
 *   gen tokenize [--vocab PATH] --jsonl FILE   {"text": ..., "ids": [...]} per input line
 *
 * Threads: a command, run from main only. */
#ifndef GEN_TOKENIZE_H
#define GEN_TOKENIZE_H

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "tokenize". Returns the exit status: 0, 1 (a vocabulary or input error, reason on
 * stderr) or 2 (bad usage). */
int gen_tokenize_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif /* GEN_TOKENIZE_H */
