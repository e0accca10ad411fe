#!/usr/bin/env python3
"""gen_sd_vae_goldens.py: writes the goldens of tests/test_sd_vae.c:
tests/golden/sd_vae_tiny.txt (decoder) and tests/golden/sd_vae_tiny_affine.txt (decoder and
encoder, with nonzero biases).

Reference: diffusers AutoencoderKL (float32, eval, CPU) loaded from the tiny random checkpoint
that the repository's own tool writes:
    gen make-checkpoint --arch tiny --format diffusers --dtype f32 --seed 1 -o DIR
(VAE block_out_channels (32, 64), 1 layer per block, 4 latent channels, GroupNorm 32 groups).

sd_vae_tiny.txt, the checkpoint as written (zero biases, unit norms):
  Input (not stored; the C test recomputes it): a latent z of shape (1, 4, 8, 8) NCHW whose
  element at flat NCHW index i is float32(sin(0.37 * i)) (sin in float64, then rounded). The
  decoder runs on z / scaling_factor with scaling_factor = 0.18215 (SD's VAE scale), i.e.
      image = vae.decode(z / 0.18215).sample          # (1, 3, 16, 16), not clamped
  The division is done in float32 in both places (torch: z / 0.18215 on a float32 tensor; C:
  z[i] / 0.18215f).

  File format (text):
    # comments
    seed <checkpoint seed>
    scale <scaling factor the latents are divided by>
    latent 1 4 8 8 sin0.37
    image 1 16 16 3                 (NHWC: the engine's layout)
    <values, 8 per line, NHWC order, 9 significant digits>
    end

sd_vae_tiny_affine.txt: every 1-D float32 tensor of vae/diffusion_pytorch_model.safetensors
(biases, GroupNorm parameters) is first overwritten with affine_formula(name, n) (name without
the "vae." prefix; tests/test_sd_vae.c patches its files the same way, in both formats), so the
biases take part. Then:
  decode: the latent above, image = vae.decode(z / 0.18215).sample
  encode: image x (1, 3, 16, 24) NCHW, x[i] = float32(sin(0.21 i)) (a non-square image, values
          in [-1, 1]); noise e (1, 4, 8, 12) NCHW, e[i] = float32(1.5 cos(0.29 i));
          dist = vae.encode(x).latent_dist
          mean   = dist.mean                           (the mode, scale 1)
          sample = (dist.mean + dist.std * e) * 0.18215 (dist.sample with e as the normals, then
                                                          the img2img pipeline's scaling)
  File format (text; each block: a header line, values 8 per line in NHWC order, 9 significant
  digits):
    # comments
    seed 1
    affine <number of patched tensors>
    scale 0.18215
    decode_latent 1 4 8 8 sin0.37
    encode_image 1 3 16 24 sin0.21          (NCHW shape and formula)
    encode_noise 1 4 8 12 1.5cos0.29        (NCHW shape and formula)
    decode 1 16 16 3
    mean 1 8 12 4
    sample 1 8 12 4
    end

Run from the repository root (needs: pip install torch diffusers safetensors numpy):
    python3 tests/gen_sd_vae_goldens.py build/bin/gen
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

SEED = 1
SCALE = 0.18215
N_AFFINE = 86  # 1-D tensors of the tiny VAE (tests/test_sd_vae.c checks the same count)
ENC_IMAGE = (1, 3, 16, 24)
ENC_LATENT = (1, 4, 8, 12)


def affine_formula(name, n):
    """Element i of the patched 1-D tensor `name` (as tests/gen_sd_unet_goldens.py)."""
    h = sum(name.encode()) % 97
    base = 1.0 if name.endswith(".weight") else 0.0
    return torch.tensor([base + (((13 * i + h) % 17) - 8) / 64.0 for i in range(n)],
                        dtype=torch.float32)


def write_block(f, tag, t):
    """t (N, C, H, W) -> a block of NHWC values."""
    a = t.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float64)
    f.write("%s %d %d %d %d\n" % ((tag,) + a.shape))
    vals = a.reshape(-1)
    for i in range(0, len(vals), 8):
        f.write(" ".join("%.9g" % v for v in vals[i:i + 8]) + "\n")
    return vals


def write_affine(gen, out):
    import diffusers
    import safetensors.torch
    from diffusers import AutoencoderKL

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "tiny")
        subprocess.run([gen, "make-checkpoint", "--arch", "tiny", "--format", "diffusers",
                        "--dtype", "f32", "--seed", str(SEED), "-o", ckpt], check=True,
                       capture_output=True)
        fn = os.path.join(ckpt, "vae", "diffusion_pytorch_model.safetensors")
        tensors = safetensors.torch.load_file(fn)
        n_patched = 0
        for name, t in tensors.items():
            if t.dim() == 1 and t.dtype == torch.float32:
                tensors[name] = affine_formula(name, t.numel())
                n_patched += 1
        assert n_patched == N_AFFINE, n_patched
        safetensors.torch.save_file(tensors, fn)
        vae = AutoencoderKL.from_pretrained(os.path.join(ckpt, "vae"), torch_dtype=torch.float32)
        vae.eval()
        z = np.sin(0.37 * np.arange(256, dtype=np.float64)).astype(np.float32).reshape(1, 4, 8, 8)
        x = np.sin(0.21 * np.arange(np.prod(ENC_IMAGE), dtype=np.float64)).astype(np.float32)
        e = (1.5 * np.cos(0.29 * np.arange(np.prod(ENC_LATENT), dtype=np.float64)))
        e = e.astype(np.float32).reshape(ENC_LATENT)
        with torch.no_grad():
            img = vae.decode(torch.from_numpy(z) / SCALE).sample
            dist = vae.encode(torch.from_numpy(x.reshape(ENC_IMAGE))).latent_dist
            mean = dist.mean
            sample = (dist.mean + dist.std * torch.from_numpy(e)) * SCALE
    logvar = dist.logvar
    with open(out, "w") as f:
        f.write("# Generated by tests/gen_sd_vae_goldens.py from diffusers %s AutoencoderKL, "
                "torch %s\n" % (diffusers.__version__, torch.__version__))
        f.write("# (float32, CPU, affine-patched 1-D tensors); do not edit. Checked by "
                "tests/test_sd_vae.c (sd.vae.affine_*, sd.vae.encode_*).\n")
        f.write("seed %d\n" % SEED)
        f.write("affine %d\n" % n_patched)
        f.write("scale %.9g\n" % SCALE)
        f.write("decode_latent 1 4 8 8 sin0.37\n")
        f.write("encode_image %d %d %d %d sin0.21\n" % ENC_IMAGE)
        f.write("encode_noise %d %d %d %d 1.5cos0.29\n" % ENC_LATENT)
        v = write_block(f, "decode", img)
        m = write_block(f, "mean", mean)
        s = write_block(f, "sample", sample)
        f.write("end\n")
    print("wrote %s: decode max |v| %.6g, mean max |v| %.6g, sample max |v| %.6g, logvar in "
          "[%.4g, %.4g]" % (out, np.abs(v).max(), np.abs(m).max(), np.abs(s).max(),
                            float(logvar.min()), float(logvar.max())))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gen", help="path of the built gen binary")
    ap.add_argument("-o", "--out", default=os.path.join(os.path.dirname(__file__), "golden",
                                                        "sd_vae_tiny.txt"))
    ap.add_argument("--out-affine", default=os.path.join(os.path.dirname(__file__), "golden",
                                                         "sd_vae_tiny_affine.txt"))
    args = ap.parse_args()
    import diffusers
    from diffusers import AutoencoderKL

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "tiny")
        subprocess.run([args.gen, "make-checkpoint", "--arch", "tiny", "--format", "diffusers",
                        "--dtype", "f32", "--seed", str(SEED), "-o", ckpt], check=True)
        vae = AutoencoderKL.from_pretrained(os.path.join(ckpt, "vae"), torch_dtype=torch.float32)
        vae.eval()
        n = 1 * 4 * 8 * 8
        z = np.sin(0.37 * np.arange(n, dtype=np.float64)).astype(np.float32).reshape(1, 4, 8, 8)
        with torch.no_grad():
            zt = torch.from_numpy(z) / SCALE
            img = vae.decode(zt).sample
    img = img.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float64)  # NHWC
    vals = img.reshape(-1)
    with open(args.out, "w") as f:
        f.write("# Generated by tests/gen_sd_vae_goldens.py from diffusers %s AutoencoderKL, torch %s\n"
                % (diffusers.__version__, torch.__version__))
        f.write("# (float32, CPU); do not edit. Checked by tests/test_sd_vae.c (sd.vae.tiny_parity).\n")
        f.write("seed %d\n" % SEED)
        f.write("scale %.9g\n" % SCALE)
        f.write("latent 1 4 8 8 sin0.37\n")
        f.write("image %d %d %d %d\n" % img.shape)
        for i in range(0, len(vals), 8):
            f.write(" ".join("%.9g" % v for v in vals[i:i + 8]) + "\n")
        f.write("end\n")
    print("wrote %s: %d values, max |v| %.6g" % (args.out, len(vals), np.abs(vals).max()))
    write_affine(args.gen, args.out_affine)


if __name__ == "__main__":
    sys.exit(main())
