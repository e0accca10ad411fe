/* nerf_cmd.h: the `nerf` commands (nerf_cmd.c), called by nerf_main.c: train, eval, render,
 * mesh, bench, demo, import-colmap. Each takes argv from its own name on (argv[0] = "train")
 * and returns the exit status: 0, 1 (a failure, the reason on stderr), 2 (bad usage).
 * Threads: commands, run from main only. */
#ifndef NERF_CMD_H
#define NERF_CMD_H

#include <stdint.h>

#include "eng.h"
#include "nerf_live.h"
#include "nerf_train.h"

#ifdef __cplusplus
extern "C" {
#endif

int nerf_cmd_train(int argc, char **argv);
int nerf_cmd_eval(int argc, char **argv);
int nerf_cmd_render(int argc, char **argv);
int nerf_cmd_mesh(int argc, char **argv);
int nerf_cmd_bench(int argc, char **argv);
int nerf_cmd_demo(int argc, char **argv);
int nerf_cmd_import_colmap(int argc, char **argv);

/* `nerf train --view`: the viewer runs in the same process. nerf_lib cannot depend on the viewer
 * (the viewer depends on it), so the `nerf` executable registers the viewer's entry point here
 * when it is built with the viewer; without one, --view is refused with a message. */
typedef struct nerf_cmd_view_opts {
    const char *screenshot; /* non-NULL: save after `frames` frames and close the window */
    int64_t frames;
    int validate;          /* Vulkan validation layers (messages counted) */
    int64_t width, height; /* window size (the training images', at most 960 on a side) */
} nerf_cmd_view_opts;
/* Shows the run live until the window closes (or the screenshot is written); returns ENG_OK or
 * an error (filled in *err); *validation_messages counts Vulkan validation reports. */
typedef int (*nerf_cmd_view_fn)(nerf_trainer *t,
                                nerf_live *run,
                                const nerf_cmd_view_opts *opts,
                                int64_t *validation_messages,
                                eng_err *err);
void nerf_cmd_set_viewer(nerf_cmd_view_fn fn);

#ifdef __cplusplus
}
#endif
#endif /* NERF_CMD_H */
