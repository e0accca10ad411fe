/* gen_main.c: the `gen` command. For now: --version (engine, CPU threads and BLAS, the CUDA
 * device or why there is none) and --help; image generation arrives with the SD pipeline. */
#include <stdio.h>
#include <string.h>

#include "eng_cuda.h"
#include "sd.h"

static void usage(FILE *out) {
    fputs("usage: gen --version | --help\n"
          "\n"
          "Stable Diffusion image generation on the engine (CPU, or CUDA when a GPU is present).\n"
          "\n"
          "  --version   print the version and the backends found (CPU threads and BLAS, CUDA\n"
          "              device or why there is none), then exit\n"
          "  --help      print this help\n"
          "\n"
          "Not in this version yet (see the README's roadmap): generation (gen -m MODEL -p PROMPT\n"
          "...), gen info, gen make-checkpoint, gen tokenize, gen bench.\n"
          "Environment: ENG_THREADS=N, ENG_MEMORY_BUDGET=8G, ENG_GPU_MEMORY_BUDGET=6G.\n",
          out);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--version") == 0)
        return eng_cli_version(stdout, "gen", eng_cuda_attach);
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    fprintf(stderr, "gen: \"%s\" is not available in this version (try gen --help)\n", argv[1]);
    return 2;
}
