/* sd.h: the Stable Diffusion pipeline (text encoders, UNet, VAE, samplers, txt2img/img2img) and
 * the `gen` command. Prefix sd_.
 *
 * Built in stages (see the README's roadmap). So far: the CLIP text encoder (sd_clip.h), the UNet
 * forward pass (sd_unet.h) and the VAE decoder (sd_vae.h), CPU f32, each matching
 * transformers/diffusers on tiny checkpoints; the samplers and the txt2img/img2img pipeline come
 * next. The `gen` front end lives in
 * gen_*.c. Builds on the engine (eng.h), the tokenizer (tok.h) and the checkpoint readers
 * (wt.h). */
#ifndef SD_H
#define SD_H

#include "eng.h"
#include "sd_clip.h"
#include "sd_unet.h"
#include "sd_vae.h"

#endif /* SD_H */
