/* nerf_main.c: the `nerf` command: training, evaluation, rendering, meshes, the built-in demo,
 * benchmarks and COLMAP import (nerf_cmd.c), plus --version and --help. */
#include <stdio.h>
#include <string.h>

#include "eng_cuda.h"
#include "nerf.h"
#include "nerf_cmd.h"
#ifdef ENG_HAVE_VIEWER
#include "vw_nerf.h"
#endif

static const char usage[] =
    "usage: nerf COMMAND [options]   (nerf COMMAND --help for its options)\n"
    "\n"
    "instant-ngp style NeRF training and rendering on the engine.\n"
    "\n"
    "  demo            ray-trace the built-in scene, train on it, evaluate, write renders, a\n"
    "                  turntable and a mesh (a few minutes on 2 CPU cores)\n"
    "  train SCENE     train on a transforms.json scene [--steps N | --time S] [--snapshot P]\n"
    "                  [--resume] [--view: watch it live in the viewer]\n"
    "                  [--contract auto|on|off] [--holdout K]\n"
    "  eval SNAPSHOT --transforms FILE [--out DIR] [--holdout K]\n"
    "                  per-view and mean PSNR and SSIM on white, renders and metrics.json\n"
    "  render SNAPSHOT (--transforms FILE | --orbit N) [-W W -H H] -o DIR|video.mp4\n"
    "  mesh SNAPSHOT -o mesh.ply [--res 256]\n"
    "                  marching cubes with vertex colours\n"
    "  bench [--scene DIR]\n"
    "                  training rays/s and samples/s, ms per 1920x1080 render\n"
    "  import-colmap SPARSE_DIR IMAGES_DIR OUT_JSON\n"
    "                  a COLMAP text model to transforms.json\n"
    "  --version       the version and the backends found\n"
    "  --help          this help\n"
    "\n"
    "Environment: ENG_THREADS=N, ENG_MEMORY_BUDGET=8G, ENG_GPU_MEMORY_BUDGET=6G.\n";

int main(int argc, char **argv) {
    const int rc = eng_cli_common(argc, argv, "nerf", usage, eng_cuda_attach);
    if (rc >= 0) return rc;
#ifdef ENG_HAVE_VIEWER
    nerf_cmd_set_viewer(vw_nerf_train_view);
#endif
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"train", nerf_cmd_train},
                {"eval", nerf_cmd_eval},
                {"render", nerf_cmd_render},
                {"mesh", nerf_cmd_mesh},
                {"bench", nerf_cmd_bench},
                {"demo", nerf_cmd_demo},
                {"import-colmap", nerf_cmd_import_colmap}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "nerf: \"%s\" is not a command (try nerf --help)\n", argv[1]);
    return 2;
}
