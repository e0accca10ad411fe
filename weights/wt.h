/* wt.h: checkpoint readers and name maps (single-file ldm .safetensors, diffusers folders),
 * dtype conversion at load, random test checkpoints (prefix wt_). Arrives with the SD pipeline
 * issue and builds on eng_safetensors.h; for now this header marks the module's place. */
#ifndef WT_H
#define WT_H

#include "eng.h"

#endif /* WT_H */
