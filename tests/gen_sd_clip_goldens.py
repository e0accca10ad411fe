#!/usr/bin/env python3
"""gen_sd_clip_goldens.py: writes tests/golden/sd_clip_tiny.txt, the goldens of tests/test_sd_clip.c.

Reference: transformers' CLIPTextModel (torch float32 on the CPU, eval mode) loaded with
from_pretrained from the text_encoder/ folder of the tiny random checkpoint that the repository's
own `gen make-checkpoint --arch tiny --format diffusers --dtype f32 --seed 7` writes (the C test
writes the same checkpoint with wt_make_checkpoint, so no checkpoint is committed).

Two prompts are tokenized with `gen tokenize` (the repository's CLIP tokenizer, ids identical to
OpenAI's), padded to 77 with <|endoftext|> (49407) as the SD pipelines do, and run as one batch
without an attention mask (SD 1.x pipelines pass none). Recorded:
  clip_skip 1: last_hidden_state (final_layer_norm of the last layer's output);
  clip_skip 2: final_layer_norm(hidden_states[-2]), what diffusers' encode_prompt computes for
               its clip_skip=1 (one layer skipped).

The random checkpoint has zero biases and unit LayerNorm scales, which would hide a bias or
LayerNorm-affine bug, so a third set ("affine") overwrites every 1-D f32 tensor of
text_encoder/model.safetensors (biases, LayerNorm weights and biases) with
  value[i] = base + (((13 i + h) mod 17) - 8) / 64,  h = (sum of the name's bytes) mod 97,
base 1 for names ending in ".weight" (LayerNorm scales), 0 otherwise: exact in f32, so the C test
patches the same values into the file it writes (affine_formula in tests/test_sd_clip.c).
A fourth set ("affine_gelu") is the affine model with hidden_act "gelu" (OpenCLIP's exact GELU,
SD 2.x); the C test writes that checkpoint with wt_text_config.quick_gelu = 0.

File format (text):
  seed <S> batch <B> len <L> hidden <C>
  ids <b>                                          then L ids on one line
  weights <plain|affine|affine_gelu> clip_skip <k> count <B*L*C>   then the values row-major, 8 per line,
                                                       7 significant digits
  end

Run from the repository root (needs transformers and torch):
    python3 tests/gen_sd_clip_goldens.py build-clip/bin/gen           # rewrites the golden
    python3 tests/gen_sd_clip_goldens.py build-clip/bin/gen --check   # exits 1 if it would change
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import safetensors.torch
import torch
from transformers import CLIPTextModel

SEED = 7
PROMPTS = ["a photo of a cat", "an astronaut riding a horse on mars"]
LEN = 77
EOS = 49407
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "sd_clip_tiny.txt")


def tokenize(gen, text):
    out = subprocess.run([gen, "tokenize", text], check=True, capture_output=True, text=True)
    ids = [int(t) for t in out.stdout.split()]
    assert 2 <= len(ids) <= LEN, ids
    return ids + [EOS] * (LEN - len(ids))


def affine_formula(name, n):
    h = sum(name.encode()) % 97
    base = 1.0 if name.endswith(".weight") else 0.0
    return torch.tensor([base + (((13 * i + h) % 17) - 8) / 64.0 for i in range(n)],
                        dtype=torch.float32)


def run(model, ids):
    """(last_hidden_state, final_layer_norm(hidden_states[-2]))"""
    with torch.no_grad():
        r = model(input_ids=torch.tensor(ids, dtype=torch.long), output_hidden_states=True)
        skip1 = r.last_hidden_state
        ln = model.final_layer_norm if hasattr(model, "final_layer_norm") else \
            model.text_model.final_layer_norm  # transformers 5 / 4
        n_layers = model.config.num_hidden_layers
        # hidden_states: the embeddings, then each layer's output (before the final norm)
        assert len(r.hidden_states) == n_layers + 1, len(r.hidden_states)
        assert torch.allclose(ln(r.hidden_states[-1]), skip1, atol=1e-6)
        return skip1, ln(r.hidden_states[-2])


def fmt_values(t):
    flat = t.reshape(-1).tolist()
    lines = []
    for i in range(0, len(flat), 8):
        lines.append(" ".join("%.7g" % v for v in flat[i : i + 8]))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gen", help="path to the built gen binary")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    ids = [tokenize(args.gen, p) for p in PROMPTS]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "tiny")
        subprocess.run([args.gen, "make-checkpoint", "--arch", "tiny", "--format", "diffusers",
                        "--dtype", "f32", "--seed", str(SEED), "-o", ckpt], check=True,
                       capture_output=True)
        model = CLIPTextModel.from_pretrained(os.path.join(ckpt, "text_encoder"),
                                              torch_dtype=torch.float32)
        model.eval()
        skip1, skip2 = run(model, ids)
        # patch the file itself, so the names hashed are the file's (what the C test sees)
        te = os.path.join(ckpt, "text_encoder", "model.safetensors")
        tensors = safetensors.torch.load_file(te)
        n_patched = 0
        for name, t in tensors.items():
            if t.dim() == 1 and t.dtype == torch.float32:
                tensors[name] = affine_formula(name, t.numel())
                n_patched += 1
        assert n_patched == 2 * 10 + 2, n_patched  # 10 per layer + final_layer_norm
        safetensors.torch.save_file(tensors, te)
        model = CLIPTextModel.from_pretrained(os.path.join(ckpt, "text_encoder"),
                                              torch_dtype=torch.float32)
        model.eval()
        affine1, _ = run(model, ids)
        # OpenCLIP's activation (SD 2.x): the affine weights with hidden_act "gelu" (exact erf)
        cfg_path = os.path.join(ckpt, "text_encoder", "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        assert cfg["hidden_act"] == "quick_gelu", cfg["hidden_act"]
        cfg["hidden_act"] = "gelu"
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        model = CLIPTextModel.from_pretrained(os.path.join(ckpt, "text_encoder"),
                                              torch_dtype=torch.float32)
        model.eval()
        gelu1, _ = run(model, ids)
    hidden = skip1.shape[-1]

    lines = ["seed %d batch %d len %d hidden %d" % (SEED, len(ids), LEN, hidden)]
    for b, row in enumerate(ids):
        lines.append("ids %d" % b)
        lines.append(" ".join(str(i) for i in row))
    for w, k, t in (("plain", 1, skip1), ("plain", 2, skip2), ("affine", 1, affine1),
                    ("affine_gelu", 1, gelu1)):
        lines.append("weights %s clip_skip %d count %d" % (w, k, t.numel()))
        lines.extend(fmt_values(t))
    lines.append("end")
    text = "\n".join(lines) + "\n"

    if args.check:
        with open(OUT) as f:
            same = f.read() == text
        print("unchanged" if same else "would change")
        return 0 if same else 1
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote %s" % OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
