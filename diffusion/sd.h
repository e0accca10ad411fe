/* sd.h: the Stable Diffusion pipeline (text encoders, UNet, VAE, samplers, txt2img/img2img) and
 * the `gen` command. Prefix sd_.
 *
 * This module is being built in stages (see the README's roadmap): for now it holds the `gen`
 * front end (gen/main.c: --version, --help); the pipeline arrives with the SD issue and builds
 * on the engine (eng.h), the tokenizer (tok.h) and the checkpoint readers (wt.h). */
#ifndef SD_H
#define SD_H

#include "eng.h"

#endif /* SD_H */
