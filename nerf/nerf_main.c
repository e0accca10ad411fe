/* nerf_main.c: the `nerf` command. For now: --version (engine, CPU threads and BLAS, the CUDA
 * device or why there is none) and --help; training and rendering arrive with the NeRF issue. */
#include <stdio.h>

#include "eng_cuda.h"
#include "nerf.h"

static const char usage[] =
    "usage: nerf --version | --help\n"
    "\n"
    "instant-ngp style NeRF training and rendering on the engine (CPU, or CUDA).\n"
    "\n"
    "  --version   print the version and the backends found (CPU threads and BLAS, CUDA\n"
    "              device or why there is none), then exit\n"
    "  --help      print this help\n"
    "\n"
    "Not in this version yet (see the README's roadmap): nerf train, eval, render, mesh,\n"
    "import-colmap, demo, bench.\n"
    "Environment: ENG_THREADS=N, ENG_MEMORY_BUDGET=8G, ENG_GPU_MEMORY_BUDGET=6G.\n";

int main(int argc, char **argv) {
    const int rc = eng_cli_common(argc, argv, "nerf", usage, eng_cuda_attach);
    if (rc >= 0) return rc;
    fprintf(stderr, "nerf: \"%s\" is not available in this version (try nerf --help)\n", argv[1]);
    return 2;
}
