#!/usr/bin/env python3
"""Golden key lists for weights/ (tests/golden/weights_<arch>_<format>.txt).

Reference: the real modules. diffusers' UNet2DConditionModel and AutoencoderKL and transformers'
CLIPTextModel are built from config dicts written here (the configs of runwayml/stable-diffusion-v1-5
and stabilityai/stable-diffusion-2-1, and the engine's tiny preset) on the meta device (no weights,
no download), and every (name, shape) of their state dicts is listed: the diffusers format. The ldm
names come from an independent Python port of the rules of diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py (string replacement, as that script does),
generalised to any number of levels and layers per block, plus what real ldm files hold beyond the
diffusers modules (SD1: text position_ids; SD2: the 24th OpenCLIP resblock, text_projection,
logit_scale). Lines: "<name> <d0,d1,...>", sorted; diffusers names carry the component prefix.

    python3 tests/gen_weight_keys.py      # rewrites tests/golden/weights_*.txt
"""
import os
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

HERE = os.path.dirname(os.path.abspath(__file__))

def unet_cfg(arch):
    if arch == "tiny":
        return dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                    block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                    attention_head_dim=2, norm_num_groups=32)
    sd2 = arch == "sd21"
    return dict(sample_size=96 if sd2 else 64, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                cross_attention_dim=1024 if sd2 else 768,
                attention_head_dim=[5, 10, 20, 20] if sd2 else 8, use_linear_projection=sd2)

def vae_cfg(arch):
    bo = (32, 64) if arch == "tiny" else (128, 256, 512, 512)
    return dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=bo,
                layers_per_block=1 if arch == "tiny" else 2,
                down_block_types=("DownEncoderBlock2D",) * len(bo),
                up_block_types=("UpDecoderBlock2D",) * len(bo), norm_num_groups=32)

def text_cfg(arch):
    if arch == "tiny":
        return CLIPTextConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=77, vocab_size=49408,
                              hidden_act="quick_gelu")
    if arch == "sd21":
        return CLIPTextConfig(hidden_size=1024, num_hidden_layers=23, num_attention_heads=16,
                              intermediate_size=4096, max_position_embeddings=77, vocab_size=49408,
                              hidden_act="gelu", projection_dim=512)
    return CLIPTextConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                          intermediate_size=3072, max_position_embeddings=77, vocab_size=49408,
                          hidden_act="quick_gelu", projection_dim=768)

def diffusers_keys(arch):
    with torch.device("meta"):
        mods = {"unet": UNet2DConditionModel(**unet_cfg(arch)),
                "vae": AutoencoderKL(**vae_cfg(arch)),
                "text_encoder": CLIPTextModel(text_cfg(arch))}
    out = {}
    for comp, m in mods.items():
        for k, v in m.state_dict().items():
            # transformers >= 5 drops the text_model wrapper from CLIPTextModel's state dict and
            # maps the prefix on load; the files on the Hub (and older versions) keep it
            if comp == "text_encoder" and not k.startswith("text_model."):
                k = "text_model." + k
            out[comp + "." + k] = tuple(v.shape)
    return out

def ldm_keys(arch, dk):
    u, v = unet_cfg(arch), vae_cfg(arch)
    n, lpb = len(u["block_out_channels"]), u["layers_per_block"]
    attn = [t.startswith("CrossAttn") for t in u["down_block_types"]]
    # (ldm, diffusers) prefix pairs, as in the conversion script's unet_conversion_map_layer
    unet_layer = []
    for i in range(n):
        for j in range(lpb):
            unet_layer.append((f"input_blocks.{(lpb + 1) * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if attn[i]:
                unet_layer.append((f"input_blocks.{(lpb + 1) * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(lpb + 1):
            unet_layer.append((f"output_blocks.{(lpb + 1) * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if attn[n - 1 - i]:
                unet_layer.append((f"output_blocks.{(lpb + 1) * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < n - 1:
            unet_layer.append((f"input_blocks.{(lpb + 1) * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            k = (lpb + 1) * i + lpb
            unet_layer.append((f"output_blocks.{k}.{2 if attn[n - 1 - i] else 1}.", f"up_blocks.{i}.upsamplers.0."))
    unet_layer.append(("middle_block.1.", "mid_block.attentions.0."))
    for j in range(2):
        unet_layer.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    unet_whole = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
                  ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out.")]
    unet_resnet = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"),
                   ("out_layers.3", "conv2"), ("emb_layers.1", "time_emb_proj"), ("skip_connection", "conv_shortcut")]
    vn, vl = len(v["block_out_channels"]), v["layers_per_block"]
    vae_layer = []
    for i in range(vn):
        for j in range(vl):
            vae_layer.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < vn - 1:
            vae_layer.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            vae_layer.append((f"up.{vn - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        for j in range(vl + 1):
            vae_layer.append((f"decoder.up.{vn - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
    for i in range(2):
        vae_layer.append((f"mid.block_{i + 1}.", f"mid_block.resnets.{i}."))
    vae_whole = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"), ("mid.attn_1.", "mid_block.attentions.0.")]
    vae_attn = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]
    out = {}
    for name, shape in dk.items():
        comp, k = name.split(".", 1)
        if comp == "unet":
            for l, d in unet_whole:
                if k.startswith(d): k = l + k[len(d):]
            for l, d in unet_layer:
                k = k.replace(d, l)
            if "resnets" in name:
                for l, d in unet_resnet:
                    k = k.replace(d, l)
            out["model.diffusion_model." + k] = shape
        elif comp == "vae":
            for l, d in vae_whole:
                k = k.replace(d, l)
            if "attentions" in name:
                for l, d in vae_attn:
                    k = k.replace(d, l)
                if len(shape) == 2:
                    shape = shape + (1, 1)
            for l, d in vae_layer:
                k = k.replace(d, l)
            out["first_stage_model." + k] = shape
        elif arch != "sd21":
            out["cond_stage_model.transformer." + k] = shape
    if arch == "sd21":
        out.update(openclip_keys(text_cfg(arch)))
    else:
        out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = (1, 77)
    return out

def openclip_keys(t):
    h, i, P = t.hidden_size, t.intermediate_size, "cond_stage_model.model."
    out = {P + "token_embedding.weight": (t.vocab_size, h), P + "positional_embedding": (t.max_position_embeddings, h),
           P + "ln_final.weight": (h,), P + "ln_final.bias": (h,), P + "text_projection": (h, 1024), P + "logit_scale": ()}
    for l in range(t.num_hidden_layers + 1):  # the file holds 24 resblocks; diffusers uses 23
        r = f"{P}transformer.resblocks.{l}."
        out.update({r + "ln_1.weight": (h,), r + "ln_1.bias": (h,), r + "ln_2.weight": (h,), r + "ln_2.bias": (h,),
                    r + "attn.in_proj_weight": (3 * h, h), r + "attn.in_proj_bias": (3 * h,),
                    r + "attn.out_proj.weight": (h, h), r + "attn.out_proj.bias": (h,),
                    r + "mlp.c_fc.weight": (i, h), r + "mlp.c_fc.bias": (i,), r + "mlp.c_proj.weight": (h, i),
                    r + "mlp.c_proj.bias": (h,)})
    return out

def dump(path, keys):
    with open(path, "w") as f:
        for k in sorted(keys):
            f.write(f"{k} {','.join(str(d) for d in keys[k])}\n")

if __name__ == "__main__":
    for arch in ("sd15", "sd21", "tiny"):
        dk = diffusers_keys(arch)
        dump(os.path.join(HERE, "golden", f"weights_{arch}_diffusers.txt"), dk)
        dump(os.path.join(HERE, "golden", f"weights_{arch}_ldm.txt"), ldm_keys(arch, dk))
