/* sd.h: the Stable Diffusion 1.x / 2.x pipeline. Prefix sd_.
 *
 *   sd_pipe.h     the pipeline: prompt -> text encoder -> sampler loop with CFG -> VAE (txt2img,
 *                 img2img), A1111 prompt weights, seeds through the engine's Philox streams
 *   sd_sampler.h  Euler, Euler a, Heun, DDIM, DPM++ 2M, LCM; normal / Karras; eps / v
 *   sd_clip.h     the CLIP / OpenCLIP text encoder
 *   sd_unet.h     the UNet (one step)
 *   sd_vae.h      the VAE decoder and encoder
 *   sd_block.h    the ResNet block and resamplers the UNet and the VAE share
 * On the CPU in f32 or a CUDA device in f32/f16/bf16, each matching transformers/diffusers on
 * tiny checkpoints (CPU; the CUDA path has not run on a GPU yet). The `gen` front end
 * lives in gen_*.c. Builds on the engine (eng.h), the tokenizer (tok.h) and the checkpoint
 * readers (wt.h). */
#ifndef SD_H
#define SD_H

#include "eng.h"
#include "sd_block.h"
#include "sd_clip.h"
#include "sd_pipe.h"
#include "sd_sampler.h"
#include "sd_unet.h"
#include "sd_vae.h"

#endif /* SD_H */
