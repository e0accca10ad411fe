/* nerf_cmd.h: the `nerf` commands (nerf_cmd.c), called by nerf_main.c: train, eval, render,
 * mesh, bench, demo, import-colmap. Each takes argv from its own name on (argv[0] = "train")
 * and returns the exit status: 0, 1 (a failure, the reason on stderr), 2 (bad usage).
 * Threads: commands, run from main only. */
#ifndef NERF_CMD_H
#define NERF_CMD_H

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

#ifdef __cplusplus
}
#endif
#endif /* NERF_CMD_H */
