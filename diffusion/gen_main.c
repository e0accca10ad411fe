/* gen_main.c: the `gen` command: image generation (`gen -m MODEL -p PROMPT ...`,
 * gen_generate.c), --version (engine, CPU threads and BLAS, the CUDA device or why there is
 * none), --help, `gen tokenize`, `gen info`, `gen make-checkpoint` and `gen bench`. */
#include <stdio.h>
#include <string.h>

#include "eng_cuda.h"
#include "gen_bench.h"
#include "gen_generate.h"
#include "gen_tokenize.h"
#include "gen_weights.h"
#include "sd.h"

static const char usage[] = GEN_GENERATE_USAGE
    "\n"
    "Other commands:\n"
    "       gen --version | --help\n"
    "       gen tokenize [--vocab PATH] TEXT | --jsonl FILE\n"
    "       gen info MODEL\n"
    "       gen make-checkpoint --arch sd15|sd21|tiny --format ldm|diffusers [--dtype f16|f32]\n"
    "                           [--seed N] -o PATH\n"
    "       gen bench --ops [--device cpu|cuda] [--dtype T] [--op LIST] [--repeat N] [--smoke]\n"
    "\n"

    "  --version   print the version and the backends found (CPU threads and BLAS, CUDA\n"
    "              device or why there is none), then exit\n"
    "  --help      print this help\n"
    "  tokenize    print the CLIP token ids of a text, or of each line of a JSON-lines file\n"
    "              (gen tokenize --help)\n"
    "  info        the detected architecture, dtypes and parameter counts of a checkpoint\n"
    "  make-checkpoint  write a checkpoint of a real architecture with random weights\n"
    "  bench       time the diffusion ops at the SD1.5 shapes (gen bench --help)\n"
    "\n"
    "Environment: ENG_THREADS=N, ENG_MEMORY_BUDGET=8G, ENG_GPU_MEMORY_BUDGET=6G,\n"
    "ENG_CLIP_VOCAB=PATH (the vocabulary for tokenize), ENGINE_DATA_DIR=DIR.\n";

int main(int argc, char **argv) {
    const int rc = eng_cli_common(argc, argv, "gen", usage, eng_cuda_attach);
    if (rc >= 0) return rc;
    if (argv[1][0] == '-') return gen_generate_main(argc, argv);
    if (strcmp(argv[1], "tokenize") == 0) return gen_tokenize_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "info") == 0) return gen_info_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "make-checkpoint") == 0)
        return gen_make_checkpoint_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0) return gen_bench_main(argc - 1, argv + 1);
    fprintf(stderr, "gen: \"%s\" is not available in this version (try gen --help)\n", argv[1]);
    return 2;
}
