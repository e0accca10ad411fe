/* nerf.h: instant-ngp style NeRF: datasets, hash grid, MLPs, occupancy grid, ray marching,
 * training, evaluation, rendering, mesh export, and the `nerf` command (prefix nerf_).
 *
 *   nerf_data.h      transforms.json datasets (NeRF-synthetic / instant-ngp), rays
 *   nerf_colmap.h    COLMAP text models -> transforms.json
 *   nerf_scene.h     the built-in procedural scene (nerf demo)
 *   nerf_occgrid.h   the occupancy grid
 *   nerf_render.h    ray marching and compositing, forward and backward
 *   nerf_metrics.h   PSNR and SSIM
 *   nerf_mesh.h      marching cubes and PLY
 *   nerf_hashgrid.h, nerf_sh.h, nerf_mlp.h, nerf_field.h, nerf_adam.h   the model (CPU twins)
 *   nerf_train.h     training, rendering, snapshots
 *   nerf_cuda.h      the CUDA kernels' launchers (not yet used by the trainer)
 *   nerf_cmd.h       the `nerf` commands */
#ifndef NERF_H
#define NERF_H

#include "eng.h"
#include "nerf_adam.h"
#include "nerf_colmap.h"
#include "nerf_data.h"
#include "nerf_field.h"
#include "nerf_mesh.h"
#include "nerf_metrics.h"
#include "nerf_occgrid.h"
#include "nerf_render.h"
#include "nerf_scene.h"
#include "nerf_train.h"

#endif /* NERF_H */
