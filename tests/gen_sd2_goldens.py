#!/usr/bin/env python3
"""gen_sd2_goldens.py: writes tests/golden/sd2_tiny.txt, the golden of tests/test_sd2.c.

Reference: transformers' CLIPTextModel and diffusers' UNet2DConditionModel (float32, eval, CPU),
loaded from the SD 2.x shaped tiny random checkpoint that the repository's own tool writes:
    gen make-checkpoint --arch tiny-sd2 --format diffusers --dtype f32 --seed 11 -o DIR
(UNet block_out (32, 64), attention on level 0, 1 layer per block, attention_head_dim [2, 2]
(diffusers' name for the head count), cross_attention_dim 32, use_linear_projection true;
text encoder hidden 32, 2 layers, 2 heads, MLP 64, hidden_act "gelu" (OpenCLIP's exact GELU);
scheduler prediction_type v_prediction). No checkpoint is committed: the C test writes the same
one with wt_make_checkpoint.

The random checkpoint has zero biases and unit norms, so every 1-D float32 tensor of
unet/diffusion_pytorch_model.safetensors and text_encoder/model.safetensors (biases,
GroupNorm/LayerNorm parameters) is overwritten with
    value[i] = base + (((13 i + h) mod 17) - 8) / 64,  h = (sum of the diffusers name's bytes) mod 97,
base 1 for names ending in ".weight", 0 otherwise (exact in f32; the formula of
gen_sd_unet_goldens.py / gen_sd_clip_goldens.py). The C test patches the same values into both of
its files, the ldm one through the engine's name map (the q/k/v biases are slices of OpenCLIP's
fused in_proj_bias there).

Text ids: two prompts tokenized with `gen tokenize`, padded to 77 with id 0 ("!"), as SD 2.x does:
stabilityai/stable-diffusion-2(-1)'s tokenizer has pad_token "!" (id 0), and ldm's
FrozenOpenCLIPEmbedder pads with 0 too (open_clip.tokenize fills zeros); SD 1.x pads with
<|endoftext|> (49407). The script checks that transformers' CLIPTokenizer loaded from the
checkpoint's tokenizer/ folder pads the same way. No attention mask (SD pipelines pass none).
Recorded: last_hidden_state (B, 77, 32).

UNet inputs (not stored; the C test recomputes them):
  sample (1, 4, 8, 8) NCHW, element at flat NCHW index i = float32(sin(0.37 i))
  timestep 750.0
  encoder_hidden_states (1, 77, 32), element at flat index j = float32(cos(0.11 j))
Recorded: the output (the v prediction), NHWC.

Checks of the ldm file (`--format ldm`, same seed), made here and not stored:
  - diffusers' own convert_ldm_unet_checkpoint turns the ldm file's UNet into exactly the
    diffusers folder's tensors, and so do the rules of its convert_open_clip_checkpoint (q, k, v =
    rows [0, H), [H, 2H), [2H, 3H) of in_proj; the last resblock and text_projection dropped) for
    the text encoder (re-stated here: that function needs transformers 4);
  - an independent port of ldm's FrozenOpenCLIPEmbedder(layer="penultimate") forward on the ldm
    tensors (torch.nn.MultiheadAttention on the fused in_proj, all resblocks but the last, then
    ln_final), with its 1-D tensors patched under their ldm names, gives the transformers result.

File format (text):
  # comments
  seed <S>
  text batch <B> len <L> hidden <C>
  ids <b>                  then L ids on one line
  text_out                 then B*L*C values, row-major, 8 per line
  unet timestep <t> out <N> <H> <W> <C>   (NHWC: the engine's layout)
  unet_out                 then the values, 8 per line
  end
Values have 7 significant digits (text) / 7 (unet).

Run from the repository root (needs: pip install torch diffusers transformers safetensors numpy):
    python3 tests/gen_sd2_goldens.py build-sd2/bin/gen
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

SEED = 11
TIMESTEP = 750.0
PROMPTS = ["a photo of a cat", "an astronaut riding a horse on mars"]
LEN = 77
PAD = 0  # "!"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "sd2_tiny.txt")
N_UNET_1D = 125  # tests/test_sd2.c checks the same counts
N_TEXT_1D = 2 * 10 + 2


def affine_formula(name, n):
    h = sum(name.encode()) % 97
    base = 1.0 if name.endswith(".weight") else 0.0
    return torch.tensor([base + (((13 * i + h) % 17) - 8) / 64.0 for i in range(n)],
                        dtype=torch.float32)


def patch_file(path, expect):
    import safetensors.torch
    tensors = safetensors.torch.load_file(path)
    n = 0
    for name, t in tensors.items():
        if t.dim() == 1 and t.dtype == torch.float32:
            tensors[name] = affine_formula(name, t.numel())
            n += 1
    assert n == expect, (path, n)
    safetensors.torch.save_file(tensors, path, metadata={"format": "pt"})


def tokenize(gen, text):
    out = subprocess.run([gen, "tokenize", text], check=True, capture_output=True, text=True)
    ids = [int(t) for t in out.stdout.split()]
    assert 2 <= len(ids) <= LEN, ids
    return ids + [PAD] * (LEN - len(ids))


def make(gen, fmt, path):
    subprocess.run([gen, "make-checkpoint", "--arch", "tiny-sd2", "--format", fmt, "--dtype",
                    "f32", "--seed", str(SEED), "-o", path], check=True, capture_output=True)


def check_ldm_conversion(ldm_file, ckpt):
    """diffusers' converters give exactly the diffusers folder's tensors."""
    import safetensors.torch
    from diffusers.pipelines.stable_diffusion.convert_from_ckpt import convert_ldm_unet_checkpoint
    sd = safetensors.torch.load_file(ldm_file)
    with open(os.path.join(ckpt, "unet", "config.json")) as f:
        ucfg = json.load(f)
    ucfg.update(class_embed_type=None, addition_embed_type=None)
    unet = convert_ldm_unet_checkpoint(dict(sd), ucfg)
    ref = safetensors.torch.load_file(os.path.join(ckpt, "unet",
                                                   "diffusion_pytorch_model.safetensors"))
    assert set(unet) == set(ref), sorted(set(unet) ^ set(ref))[:8]
    for k in ref:
        assert unet[k].shape == ref[k].shape and torch.equal(unet[k], ref[k]), k
    # the text encoder by the rules of diffusers' convert_open_clip_checkpoint (its SD 2 path
    # drops the last resblock and text_projection; the function itself needs transformers 4)
    P = "cond_stage_model.model."
    ref = safetensors.torch.load_file(os.path.join(ckpt, "text_encoder", "model.safetensors"))
    n_blocks = len({k.split(".")[4] for k in sd if k.startswith(P + "transformer.resblocks.")})
    text = {"text_model.embeddings.token_embedding.weight": sd[P + "token_embedding.weight"],
            "text_model.embeddings.position_embedding.weight": sd[P + "positional_embedding"],
            "text_model.final_layer_norm.weight": sd[P + "ln_final.weight"],
            "text_model.final_layer_norm.bias": sd[P + "ln_final.bias"]}
    ren = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
           "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for b in range(n_blocks - 1):
        r, d = P + "transformer.resblocks.%d." % b, "text_model.encoder.layers.%d." % b
        for o, n in ren.items():
            for w in ("weight", "bias"):
                text[d + n + "." + w] = sd[r + o + "." + w]
        for w in ("weight", "bias"):
            fused = sd[r + "attn.in_proj_" + w]
            h = fused.shape[0] // 3
            for i, qkv in enumerate("qkv"):
                text[d + "self_attn.%s_proj.%s" % (qkv, w)] = fused[i * h:(i + 1) * h]
    assert set(text) == set(ref), sorted(set(text) ^ set(ref))[:8]
    for k in ref:
        assert torch.equal(text[k], ref[k]), k
    return len(unet), len(text)


def openclip_penultimate(sd, ids, heads):
    """ldm's FrozenOpenCLIPEmbedder(layer="penultimate").encode_with_transformer on ldm tensors:
    x = token_embedding + positional_embedding; every resblock but the last (x += attn(ln_1 x)
    with the causal mask; x += c_proj(gelu(c_fc(ln_2 x)))); ln_final. Its 1-D tensors are patched
    here under their ldm names, with the affine values of the diffusers names they become."""
    P = "cond_stage_model.model."
    n_blocks = len({k.split(".")[4] for k in sd if k.startswith(P + "transformer.resblocks.")})
    hid = sd[P + "token_embedding.weight"].shape[1]
    sd = dict(sd)

    def put(ldm, dname):
        sd[P + ldm] = affine_formula(dname, sd[P + ldm].numel())

    put("ln_final.weight", "text_model.final_layer_norm.weight")
    put("ln_final.bias", "text_model.final_layer_norm.bias")
    for b in range(n_blocks - 1):
        r, d = "transformer.resblocks.%d." % b, "text_model.encoder.layers.%d." % b
        for ldm, dn in (("ln_1.weight", "layer_norm1.weight"), ("ln_1.bias", "layer_norm1.bias"),
                        ("ln_2.weight", "layer_norm2.weight"), ("ln_2.bias", "layer_norm2.bias"),
                        ("attn.out_proj.bias", "self_attn.out_proj.bias"),
                        ("mlp.c_fc.bias", "mlp.fc1.bias"), ("mlp.c_proj.bias", "mlp.fc2.bias")):
            put(r + ldm, d + dn)
        sd[P + r + "attn.in_proj_bias"] = torch.cat(
            [affine_formula(d + "self_attn.%s_proj.bias" % w, hid) for w in "qkv"])
    ids = torch.tensor(ids, dtype=torch.long)
    L = ids.shape[1]
    x = sd[P + "token_embedding.weight"][ids] + sd[P + "positional_embedding"][:L]
    mask = torch.full((L, L), float("-inf")).triu_(1)
    ln = torch.nn.functional.layer_norm
    with torch.no_grad():
        for b in range(n_blocks - 1):
            r = P + "transformer.resblocks.%d." % b
            mha = torch.nn.MultiheadAttention(hid, heads, batch_first=True)
            mha.load_state_dict({k[len(r + "attn."):]: v for k, v in sd.items()
                                 if k.startswith(r + "attn.")})
            mha.eval()
            h = ln(x, (hid,), sd[r + "ln_1.weight"], sd[r + "ln_1.bias"], 1e-5)
            x = x + mha(h, h, h, need_weights=False, attn_mask=mask)[0]
            h = ln(x, (hid,), sd[r + "ln_2.weight"], sd[r + "ln_2.bias"], 1e-5)
            h = torch.nn.functional.gelu(h @ sd[r + "mlp.c_fc.weight"].T + sd[r + "mlp.c_fc.bias"])
            x = x + h @ sd[r + "mlp.c_proj.weight"].T + sd[r + "mlp.c_proj.bias"]
        return ln(x, (hid,), sd[P + "ln_final.weight"], sd[P + "ln_final.bias"], 1e-5)


def fmt_values(vals):
    flat = np.asarray(vals, dtype=np.float64).reshape(-1)
    return [" ".join("%.7g" % v for v in flat[i:i + 8]) for i in range(0, len(flat), 8)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gen", help="path of the built gen binary")
    ap.add_argument("-o", "--out", default=OUT)
    args = ap.parse_args()
    import diffusers
    import safetensors.torch
    import transformers
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    ids = [tokenize(args.gen, p) for p in PROMPTS]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "tiny_sd2")
        ldm_file = os.path.join(tmp, "tiny_sd2.safetensors")
        make(args.gen, "diffusers", ckpt)
        make(args.gen, "ldm", ldm_file)
        with open(os.path.join(ckpt, "scheduler", "scheduler_config.json")) as f:
            assert json.load(f)["prediction_type"] == "v_prediction"
        # the tokenizer folder make-checkpoint writes pads like SD 2.x's (when it was written)
        if os.path.exists(os.path.join(ckpt, "tokenizer", "vocab.json")):
            tok = CLIPTokenizer.from_pretrained(os.path.join(ckpt, "tokenizer"))
            assert tok.pad_token_id == PAD, tok.pad_token_id
            for p, want in zip(PROMPTS, ids):
                got = tok(p, padding="max_length", max_length=LEN).input_ids
                assert got == want, (p, got, want)
        n_unet, n_text = check_ldm_conversion(ldm_file, ckpt)

        # text encoder
        patch_file(os.path.join(ckpt, "text_encoder", "model.safetensors"), N_TEXT_1D)
        te = CLIPTextModel.from_pretrained(os.path.join(ckpt, "text_encoder"),
                                           torch_dtype=torch.float32)
        te.eval()
        assert te.config.hidden_act == "gelu" and te.config.num_hidden_layers == 2
        with torch.no_grad():
            text_out = te(input_ids=torch.tensor(ids, dtype=torch.long)).last_hidden_state
        ldm_out = openclip_penultimate(safetensors.torch.load_file(ldm_file), ids,
                                       te.config.num_attention_heads)
        ldm_err = (ldm_out - text_out).abs().max().item()
        assert ldm_err < 1e-5, ldm_err

        # UNet
        patch_file(os.path.join(ckpt, "unet", "diffusion_pytorch_model.safetensors"), N_UNET_1D)
        unet = UNet2DConditionModel.from_pretrained(os.path.join(ckpt, "unet"),
                                                    torch_dtype=torch.float32)
        unet.eval()
        assert unet.config.use_linear_projection
        x = np.sin(0.37 * np.arange(256, dtype=np.float64)).astype(np.float32).reshape(1, 4, 8, 8)
        c = np.cos(0.11 * np.arange(77 * 32, dtype=np.float64)).astype(np.float32)
        c = c.reshape(1, 77, 32)
        with torch.no_grad():
            y = unet(torch.from_numpy(x), torch.tensor([TIMESTEP], dtype=torch.float32),
                     encoder_hidden_states=torch.from_numpy(c)).sample
    y = y.permute(0, 2, 3, 1).contiguous().numpy()  # NHWC
    B, L, C = text_out.shape

    lines = ["# Generated by tests/gen_sd2_goldens.py from transformers %s CLIPTextModel and "
             "diffusers %s" % (transformers.__version__, diffusers.__version__),
             "# UNet2DConditionModel, torch %s (float32, CPU, affine-patched 1-D tensors); do not "
             "edit. Checked by tests/test_sd2.c." % torch.__version__,
             "# ldm file: diffusers' conversion rules reproduce the folder (%d UNet, %d text tensors); "
             "the OpenCLIP penultimate port is within %.1e." % (n_unet, n_text, ldm_err),
             "seed %d" % SEED,
             "text batch %d len %d hidden %d" % (B, L, C)]
    for b, row in enumerate(ids):
        lines.append("ids %d" % b)
        lines.append(" ".join(str(i) for i in row))
    lines.append("text_out")
    lines.extend(fmt_values(text_out.numpy()))
    lines.append("unet timestep %.9g out %d %d %d %d" % ((TIMESTEP,) + y.shape))
    lines.append("unet_out")
    lines.extend(fmt_values(y))
    lines.append("end")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d bytes): text max |v| %.4g, unet max |v| %.4g, ldm port error %.2g"
          % (args.out, os.path.getsize(args.out), text_out.abs().max().item(),
             float(np.abs(y).max()), ldm_err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
