/* nerf.h: instant-ngp style NeRF: datasets, hash grid, MLPs, occupancy grid, ray marching,
 * training, evaluation, rendering, mesh export, and the `nerf` command (prefix nerf_).
 *
 * Built in stages (see the README's roadmap): for now it holds the `nerf` front end
 * (--version, --help); the trainer arrives with the NeRF issue. */
#ifndef NERF_H
#define NERF_H

#include "eng.h"

#endif /* NERF_H */
