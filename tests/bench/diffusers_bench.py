#!/usr/bin/env python3
"""diffusers_bench.py: the reference side of `gen bench`: diffusers' UNet2DConditionModel (one
classifier-free-guidance step = a batch of 2) and the whole StableDiffusionPipeline, timed on
the very same weights (a diffusers folder written by `gen make-checkpoint --format diffusers`,
or a real one), on the CPU or a CUDA GPU, f32 or f16, torch SDPA attention.

Prints, like `gen bench`: UNet it/s per run and min/median, seconds per image end to end, and
peak GPU memory (CUDA). Run it right after `gen bench` on the same machine, with the same
--res / --steps / --threads, and divide.

    python3 tests/bench/diffusers_bench.py --model DIR --res 512 --steps 20 [--device cuda]
        [--dtype f16] [--runs 3] [--threads 2] [--unet-only]

Needs torch, diffusers, transformers (pip). No network: everything is read from --model.
"""
import argparse
import statistics
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="diffusers folder")
    ap.add_argument("--res", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--unet-steps", type=int, default=5, help="timed UNet calls per run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--unet-only", action="store_true")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import diffusers
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    dev = torch.device(args.device)
    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(args.model, torch_dtype=dtype,
                                                   safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe = pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    print("diffusers %s, torch %s, %s %s, %d threads, load %.1f s" % (
        diffusers.__version__, torch.__version__, args.device, args.dtype,
        torch.get_num_threads(), time.perf_counter() - t0))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    h = args.res // 8
    unet = pipe.unet
    x = torch.randn(2 * args.batch, 4, h, h, device=dev, dtype=dtype)
    ctx = torch.randn(2 * args.batch, 77, unet.config.cross_attention_dim, device=dev,
                      dtype=dtype)
    t = torch.tensor([500.0] * (2 * args.batch), device=dev)
    rates = []
    with torch.no_grad():
        unet(x, t, encoder_hidden_states=ctx)  # warm-up
        for r in range(args.runs):
            sync()
            a = time.perf_counter()
            for _ in range(args.unet_steps):
                unet(x, t, encoder_hidden_states=ctx)
            sync()
            rates.append(args.unet_steps / (time.perf_counter() - a))
            print("unet run %d: %.3f it/s (%.3f s/it)" % (r + 1, rates[-1], 1 / rates[-1]))
            sys.stdout.flush()
    print("unet: it/s best %.3f median %.3f (CFG batch %d, %dx%d)" % (
        max(rates), statistics.median(rates), 2 * args.batch, args.res, args.res))
    if args.unet_only:
        return
    secs = []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for r in range(args.runs):
        g = torch.Generator(device="cpu").manual_seed(42 + r)
        sync()
        a = time.perf_counter()
        pipe("a photograph of an astronaut riding a horse", num_inference_steps=args.steps,
             guidance_scale=7.0, height=args.res, width=args.res,
             num_images_per_prompt=args.batch, generator=g, output_type="np")
        sync()
        secs.append((time.perf_counter() - a) / args.batch)
        print("pipeline run %d: %.2f s/image" % (r + 1, secs[-1]))
        sys.stdout.flush()
    print("pipeline: s/image min %.2f median %.2f (%d steps)" % (
        min(secs), statistics.median(secs), args.steps))
    if dev.type == "cuda":
        print("peak GPU memory %.2f GiB" % (torch.cuda.max_memory_allocated() / 2 ** 30))


if __name__ == "__main__":
    main()
