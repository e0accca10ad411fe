#!/usr/bin/env python3
"""gen_sd_pipe_goldens.py: writes tests/golden/sd_pipe_tiny.txt, the golden of tests/test_sd_pipe.c.

Reference: diffusers' StableDiffusionPipeline / StableDiffusionImg2ImgPipeline (float32, CPU)
with each scheduler built from the checkpoint's scheduler_config.json, on the tiny random
checkpoints the repository's own tool writes (and tiny-sd2 for the cases named sd2_*):
    gen make-checkpoint --arch tiny --format diffusers --dtype f32 --seed 5 --vocab DATA/clip -o DIR
then patched so that the UNet's prediction matters (the C test patches its copy the same way):
every 1-D float32 tensor of unet/diffusion_pytorch_model.safetensors and of
text_encoder/model.safetensors is overwritten with affine_formula (nonzero biases and norm
affines), unet conv_out.weight is multiplied by
CONV_OUT_GAIN and every attn2.to_out.0.weight (cross-attention output) by ATTN2_GAIN.

Conditioning: the prompt and negative prompt are tokenized as A1111 does (runs of equal emphasis
tokenized separately by transformers' CLIPTokenizer, start + tokens + end, padded with
<|endoftext|> to 77), encoded by transformers' CLIPTextModel (last_hidden_state), then weighted
the A1111 way (z *= weight per token; z *= mean(z before) / mean(z after)); the pipeline gets
them as prompt_embeds / negative_prompt_embeds. The "cond" section records the prompt's.

Noise: the engine's Philox normal stream (tests/gen_dtype_goldens.py's independent Python
Philox), NCHW order: initial latents (seed, offset 0); the sampler's noise at model call i
(seed, offset 1 + i) (Euler a, LCM); img2img's VAE sample (seed, offset 2^32). diffusers'
randn_tensor is replaced by these draws.

Each case: sampler, schedule, prediction, steps, cfg, (img2img: strength), and the image as
8-bit RGB hex (round(x * 255), x = diffusers' float output in [0, 1]); the C test compares its
float image to it by PSNR (>= 45 dB; 8-bit rounding alone costs ~59 dB).

Run from the repository root (pip install torch diffusers transformers safetensors numpy):
    python3 tests/gen_sd_pipe_goldens.py build/bin/gen
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_dtype_goldens import normal_at  # noqa: E402

SEED_CKPT = 5
SEED = 1234
H = W = 32  # image; latents 16 x 16 (the tiny VAE upsamples by 2)
CONV_OUT_GAIN = 25.0
ATTN2_GAIN = 20.0  # cross-attention output projections: make the prompt (and CFG) matter
COND_ROWS = 10  # the conditioning rows recorded (the weighting scales all 77; 10 show it)
PROMPT = [("a photo of a ", 1.0), ("red", 1.3), (" fox in the snow", 1.0)]
PROMPT_TEXT = "a photo of a (red:1.3) fox in the snow"
NEGATIVE = [("blurry", 1.0)]
NEGATIVE_TEXT = "blurry"

# (name, sampler, schedule, prediction, steps, cfg, strength or None)
CASES = [
    ("euler", "euler", "normal", "epsilon", 8, 7.5, None),
    ("euler_karras", "euler", "karras", "epsilon", 8, 7.5, None),
    ("euler_a", "euler_a", "normal", "epsilon", 8, 7.5, None),
    ("heun", "heun", "normal", "epsilon", 6, 7.5, None),
    ("ddim", "ddim", "normal", "epsilon", 8, 7.5, None),
    ("dpmpp_2m", "dpm++2m", "normal", "epsilon", 8, 7.5, None),
    ("dpmpp_2m_karras", "dpm++2m", "karras", "epsilon", 8, 7.5, None),
    ("lcm", "lcm", "normal", "epsilon", 4, 1.0, None),
    ("euler_v", "euler", "normal", "v_prediction", 8, 7.5, None),
    ("dpmpp_2m_karras_v", "dpm++2m", "karras", "v_prediction", 8, 7.5, None),
    ("ddim_v", "ddim", "normal", "v_prediction", 8, 7.5, None),
    ("nocfg_euler", "euler", "normal", "epsilon", 8, 1.0, None),
    ("img2img_euler", "euler", "normal", "epsilon", 10, 7.5, 0.6),
    ("img2img_ddim", "ddim", "normal", "epsilon", 10, 7.5, 0.6),
    ("img2img_dpmpp_2m", "dpm++2m", "normal", "epsilon", 10, 7.5, 0.6),
    # SD 2.x shaped (tiny-sd2: OpenCLIP text encoder padding with "!", linear projections,
    # v-prediction from its scheduler config)
    ("sd2_ddim_v", "ddim", "normal", "v_prediction", 8, 7.5, None),
    ("sd2_euler_a_v", "euler_a", "normal", "v_prediction", 8, 7.5, None),
    ("sd2_dpmpp_2m_karras_v", "dpm++2m", "karras", "v_prediction", 8, 7.5, None),
]


def affine_formula(name, n):
    h = sum(name.encode()) % 97
    base = 1.0 if name.endswith(".weight") else 0.0
    return torch.tensor([base + (((13 * i + h) % 17) - 8) / 64.0 for i in range(n)],
                        dtype=torch.float32)


def philox_nchw(seed, offset, shape):
    n = int(np.prod(shape))
    return torch.tensor(np.array([normal_at(seed, offset, i) for i in range(n)],
                                 dtype=np.float32).reshape(shape))


def init_image():
    """(H, W, 3) in [0, 1]: pixel (y, x, c) = 0.5 + 0.4 sin(0.3 x + 0.2 y + 2.1 c)."""
    y, x, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    return (0.5 + 0.4 * np.sin(0.3 * x + 0.2 * y + 2.1 * c)).astype(np.float32)


def scheduler_for(sampler, schedule, prediction, cfg):
    import diffusers
    kw = dict(prediction_type=prediction)
    if schedule == "karras":
        kw["use_karras_sigmas"] = True
    if sampler == "euler":
        return diffusers.EulerDiscreteScheduler.from_config(cfg, **kw)
    if sampler == "euler_a":
        return diffusers.EulerAncestralDiscreteScheduler.from_config(cfg, **kw)
    if sampler == "heun":
        return diffusers.HeunDiscreteScheduler.from_config(cfg, **kw)
    if sampler == "ddim":
        return diffusers.DDIMScheduler.from_config(cfg, **kw)
    if sampler == "dpm++2m":
        return diffusers.DPMSolverMultistepScheduler.from_config(
            cfg, algorithm_type="dpmsolver++", solver_order=2, **kw)
    if sampler == "lcm":
        return diffusers.LCMScheduler.from_config(cfg, **kw)
    raise ValueError(sampler)


def encode(tok, te, runs):
    ids, w = [tok.bos_token_id], [1.0]
    for text, weight in runs:
        t = tok(text, add_special_tokens=False).input_ids
        ids += t
        w += [weight] * len(t)
    ids = ids[:76] + [tok.eos_token_id]
    w = w[:76] + [1.0]
    ids += [tok.pad_token_id] * (77 - len(ids))  # SD 1.x: <|endoftext|>; SD 2.x: "!" (0)
    w += [1.0] * (77 - len(w))
    with torch.no_grad():
        z = te(torch.tensor([ids])).last_hidden_state
    wt = torch.tensor(w, dtype=torch.float32).reshape(1, 77, 1)
    if any(v != 1.0 for v in w):
        before = z.double().mean()
        z = z * wt
        after = z.double().mean()
        z = (z * (before / after).float())
    return z


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gen", help="path of the built gen binary")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                   "shared", "data"))
    ap.add_argument("-o", "--out", default=os.path.join(os.path.dirname(__file__), "golden",
                                                        "sd_pipe_tiny.txt"))
    args = ap.parse_args()
    import diffusers
    import safetensors.torch
    import transformers
    from diffusers import (AutoencoderKL, StableDiffusionImg2ImgPipeline,
                           StableDiffusionPipeline, UNet2DConditionModel)

    lines = ["# Generated by tests/gen_sd_pipe_goldens.py (diffusers %s, transformers %s, "
             "torch %s)" % (diffusers.__version__, transformers.__version__, torch.__version__),
             "# the tiny checkpoint (seed %d), UNet and text encoder 1-D tensors affine-patched, conv_out.weight x %g,"
             " attn2.to_out.0.weight x %g" % (SEED_CKPT, CONV_OUT_GAIN, ATTN2_GAIN),
             "seed %d" % SEED, "size %d %d" % (W, H), "prompt %s" % PROMPT_TEXT,
             "negative %s" % NEGATIVE_TEXT]
    with tempfile.TemporaryDirectory() as tmp:
        def build(arch):
            ckpt = os.path.join(tmp, arch)
            subprocess.run([args.gen, "make-checkpoint", "--arch", arch, "--format", "diffusers",
                            "--dtype", "f32", "--seed", str(SEED_CKPT), "--vocab",
                            os.path.join(args.data, "clip"), "-o", ckpt], check=True,
                           capture_output=True)
            f = os.path.join(ckpt, "unet", "diffusion_pytorch_model.safetensors")
            tensors = safetensors.torch.load_file(f)
            for name, t in tensors.items():
                if t.dim() == 1 and t.dtype == torch.float32:
                    tensors[name] = affine_formula(name, t.numel())
            tensors["conv_out.weight"] = tensors["conv_out.weight"] * CONV_OUT_GAIN
            n_attn2 = 0
            for name in tensors:
                if name.endswith("attn2.to_out.0.weight"):
                    tensors[name] = tensors[name] * ATTN2_GAIN
                    n_attn2 += 1
            assert n_attn2 == 4, n_attn2  # tests/test_sd_pipe.c checks the same count
            safetensors.torch.save_file(tensors, f)
            # the text encoder's too: with unit / zero LayerNorms every row of its output has
            # mean ~0, and A1111's mean-restoring ratio would divide rounding noise by rounding
            # noise
            f = os.path.join(ckpt, "text_encoder", "model.safetensors")
            tensors = safetensors.torch.load_file(f)
            n_text = 0
            for name, t in tensors.items():
                if t.dim() == 1 and t.dtype == torch.float32:
                    tensors[name] = affine_formula(name, t.numel())
                    n_text += 1
            assert n_text == 22, n_text  # tests/test_sd_pipe.c checks the same count
            safetensors.torch.save_file(tensors, f)
            m = dict(unet=UNet2DConditionModel.from_pretrained(os.path.join(ckpt, "unet")).eval(),
                     vae=AutoencoderKL.from_pretrained(os.path.join(ckpt, "vae")).eval(),
                     te=transformers.CLIPTextModel.from_pretrained(
                         os.path.join(ckpt, "text_encoder")).eval(),
                     tok=transformers.CLIPTokenizer.from_pretrained(os.path.join(ckpt, "tokenizer")),
                     sched=diffusers.DDIMScheduler.load_config(os.path.join(ckpt, "scheduler")))
            m["cond"] = encode(m["tok"], m["te"], PROMPT)
            m["uncond"] = encode(m["tok"], m["te"], NEGATIVE)
            return m

        models = {"tiny": build("tiny"), "tiny-sd2": build("tiny-sd2")}
        assert models["tiny-sd2"]["tok"].pad_token_id == 0
        cond = models["tiny"]["cond"]
        lines.append("cond %d %d" % (COND_ROWS, cond.shape[-1]))
        vals = cond[0, :COND_ROWS].reshape(-1).tolist()
        for i in range(0, len(vals), 8):
            lines.append(" ".join("%.7g" % v for v in vals[i:i + 8]))
        lines.append("end")

        lat_shape = (1, 4, H // 2, W // 2)
        draws = {"k": 0}

        def step_noise(shape, generator=None, device=None, dtype=None, layout=None):
            k = draws["k"]
            draws["k"] += 1
            return philox_nchw(SEED, 1 + k, tuple(shape)).to(dtype or torch.float32)

        def enc_noise(shape, generator=None, device=None, dtype=None, layout=None):
            return philox_nchw(SEED, 1 << 32, tuple(shape)).to(dtype or torch.float32)

        def init_noise(shape, generator=None, device=None, dtype=None, layout=None):
            return philox_nchw(SEED, 0, tuple(shape)).to(dtype or torch.float32)

        import diffusers.schedulers.scheduling_euler_ancestral_discrete as m_ea
        import diffusers.schedulers.scheduling_lcm as m_lcm
        import diffusers.models.autoencoders.vae as m_vae
        import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as m_i2i
        m_ea.randn_tensor = step_noise
        m_lcm.randn_tensor = step_noise
        m_vae.randn_tensor = enc_noise
        m_i2i.randn_tensor = init_noise

        for name, sampler, schedule, pred, steps, cfg, strength in CASES:
            m = models["tiny-sd2" if name.startswith("sd2_") else "tiny"]
            cond, uncond = m["cond"], m["uncond"]
            sch = scheduler_for(sampler, schedule, pred, m["sched"])
            draws["k"] = 0
            common = dict(vae=m["vae"], text_encoder=m["te"], tokenizer=m["tok"], unet=m["unet"],
                          scheduler=sch,
                          safety_checker=None, feature_extractor=None,
                          requires_safety_checker=False)
            with torch.no_grad():
                if strength is None:
                    pipe = StableDiffusionPipeline(**common)
                    out = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond,
                               num_inference_steps=steps, guidance_scale=cfg, height=H, width=W,
                               latents=philox_nchw(SEED, 0, lat_shape), output_type="np")
                else:
                    pipe = StableDiffusionImg2ImgPipeline(**common)
                    out = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond,
                               image=init_image()[None], strength=strength,
                               num_inference_steps=steps, guidance_scale=cfg, output_type="np")
            img = out.images[0]
            assert img.shape == (H, W, 3), img.shape
            q = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8).reshape(-1)
            lines.append("case %s %s %s %s %d %g %g" % (name, sampler, schedule, pred, steps, cfg,
                                                        strength if strength else 0))
            hexs = q.tobytes().hex()
            for i in range(0, len(hexs), 96):
                lines.append(hexs[i:i + 96])
            lines.append("end")
            print("%-18s mean %.4f std %.4f" % (name, img.mean(), img.std()), file=sys.stderr)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
