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
 * Built in stages (see the README's roadmap): the trainer and the `nerf` commands come next. */
#ifndef NERF_H
#define NERF_H

#include "eng.h"
#include "nerf_colmap.h"
#include "nerf_data.h"
#include "nerf_mesh.h"
#include "nerf_metrics.h"
#include "nerf_occgrid.h"
#include "nerf_render.h"
#include "nerf_scene.h"

#endif /* NERF_H */
