/* gen_generate.h: `gen -m MODEL -p PROMPT ...`, image generation (gen_generate.c; see its usage
 * text for the flags). Returns the exit status: 0, 1 (a failure), 2 (bad arguments). */
#ifndef GEN_GENERATE_H
#define GEN_GENERATE_H

#include <stddef.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The generation part of `gen --help`. */
#define GEN_GENERATE_USAGE                                                                         \
    "usage: gen -m MODEL -p PROMPT [options]\n"                                                    \
    "\n"                                                                                           \
    "Generates images with a Stable Diffusion 1.x / 2.x checkpoint (an ldm .safetensors file or\n" \
    "a diffusers folder; .ckpt files are refused: convert them to safetensors).\n"                 \
    "\n"                                                                                           \
    "  -m, --model PATH          checkpoint (required)\n"                                          \
    "  -p, --prompt TEXT         the prompt; A1111 emphasis: (word), [word], (word:1.3)\n"         \
    "  -n, --negative-prompt T   the negative prompt (default empty)\n"                            \
    "      --steps N             sampling steps (default 20)\n"                                    \
    "      --cfg-scale X         classifier-free guidance scale (default 7; <= 1: off)\n"          \
    "      --sampling-method S   euler, euler_a (default), heun, ddim, dpm++2m, lcm\n"             \
    "      --schedule S          normal (default) or karras\n"                                     \
    "  -s, --seed N              seed (default 42; -1: random); image i of a batch uses N + i\n"   \
    "  -W, --width N             width in pixels, a multiple of 64 (default 512; 768 for SD 2.x\n" \
    "  -H, --height N            v-prediction models; the init image's size with -i)\n"            \
    "  -b, --batch-count N       images per run (default 1), sampled together\n"                   \
    "  -o, --output PATH         output PNG (default output.png); a batch writes PATH,\n"          \
    "                            PATH_2.png, PATH_3.png, ...\n"                                    \
    "  -i, --init-img PATH       img2img: start from this PNG/JPEG (same size as -W x -H)\n"       \
    "      --strength X          img2img: how much to change it, (0, 1] (default 0.75)\n"          \
    "      --clip-skip N         1 = last text-encoder layer (default), 2 = penultimate, ...\n"    \
    "      --prediction P        eps or v (default: the checkpoint's; single files: eps)\n"        \
    "      --no-weights          take ( ) [ ] : in the prompt literally\n"                         \
    "      --init-noise FILE     initial latents from a .safetensors file holding one tensor\n"    \
    "                            (batch, 4, H/8, W/8) float32 NCHW (as diffusers' latents=)\n"     \
    "      --vocab PATH          CLIP vocabulary (default: a diffusers folder's tokenizer/,\n"     \
    "                            else $ENG_CLIP_VOCAB, else the data folder's)\n"                  \
    "      --device cpu|cuda     where to run (default cpu)\n"                                     \
    "      --dtype f16|f32|bf16  weights and activations on the device (default: f16 on cuda;\n"   \
    "                            the CPU runs f32 only)\n"                                         \
    "      --threads N           CPU threads (default: all; also $ENG_THREADS)\n"                  \
    "      --no-hash             leave the model hash out of the PNG text (skips hashing)\n"       \
    "\n"                                                                                           \
    "Example: gen -m v1-5-pruned-emaonly.safetensors -p \"a (red:1.2) fox in the snow\" \\\n"      \
    "             --steps 20 --sampling-method dpm++2m --schedule karras -s 7 -o fox.png\n"

int gen_generate_main(int argc, char **argv);

/* The CLIP vocabulary for `model`: out = "" when the model is a diffusers folder with its own
 * tokenizer/ and no --vocab was given (flag NULL); else tok_clip_find_vocab's choice (--vocab,
 * $ENG_CLIP_VOCAB, the data folder). Errors: those of tok_clip_find_vocab (ENG_E_IO naming what
 * was tried). */
int gen_find_vocab(char *out, size_t cap, const char *flag, const char *model, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* GEN_GENERATE_H */
