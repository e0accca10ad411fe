#!/usr/bin/env python3
"""gen_sd_sampler_goldens.py: writes tests/golden/sd_sampler_diffusers.txt, the golden of
tests/test_sd_sampler.c (diffusion/sd_sampler.h).

Reference: diffusers 0.42.1 schedulers on the CPU (torch float32), built with from_config() from
Stable Diffusion 1.5's scheduler_config.json (below: no timestep_spacing key, so each scheduler's
own default applies) plus the case's prediction_type, use_karras_sigmas and overrides:
    euler    EulerDiscreteScheduler
    euler_a  EulerAncestralDiscreteScheduler
    heun     HeunDiscreteScheduler
    ddim     DDIMScheduler                 (step with eta 0)
    dpm++2m  DPMSolverMultistepScheduler   (algorithm_type dpmsolver++, solver_order 2)
    lcm      LCMScheduler
The sampling loop is the one of diffusers' StableDiffusionPipeline (txt2img) and
StableDiffusionImg2ImgPipeline (img2img: get_timesteps, set_begin_index, add_noise), with an
analytic fake model instead of the UNet and analytic "noise" instead of torch.randn.

Inputs (not stored; the C test recomputes them with the same formulas). n = 72 floats (a
2x4x3x3 latent; every operation is elementwise, so the flat index j is all that matters). Every
formula is evaluated in float64 with the C library's sin/cos/tanh (Python's math module) and then
rounded to float32:
    noise0[j]      = 1.1 sin(0.9 j + 0.3) + 0.2 cos(2.3 j)     initial noise
    image[j]       = 0.8 cos(0.37 j + 0.5)                     img2img: the encoded image latents
    step_noise[i][j] = 1.2 sin(1.3 j + 2.1 i + 0.7)            the randn of call i (euler_a, lcm)
    model(x_in, t)[j] = 0.3 tanh(x_in[j]) + 1e-5 t cos(0.5 j)  x_in: the scaled latents, t: the
                                                               timestep of the call (float32)
txt2img starts from latents = noise0 * init_noise_sigma, img2img from
scheduler.add_noise(image, noise0, first timestep).

File format (text):
  # comments
  case <name> <sampler> <schedule> <prediction> <steps> <strength> <spacing|-> <beta_schedule>
  count <model calls>
  init_sigma <init_noise_sigma>
  timesteps <count values>
  scales <count values: 1 / the divisor of scale_model_input, 1 when it is the identity>
  x_init <n values>                         (img2img only: after add_noise)
  x <call index> <n values>                 (the latents after that call: first, last, and for
                                            heun and dpm++2m the middle one)
  end
Values are printed with 9 significant digits (float32 round-trips).

Run from the repository root (needs: pip install torch diffusers numpy):
    python3 tests/gen_sd_sampler_goldens.py
"""
import argparse
import math
import os

import numpy as np
import torch

N = 72
SHAPE = (2, 4, 3, 3)

# SD 1.5's scheduler_config.json (runwayml/stable-diffusion-v1-5), as from_config sees it.
SD15_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

# (name, sampler, schedule, prediction, steps, strength, spacing override or None, beta schedule)
CASES = [
    ("euler_eps", "euler", "normal", "epsilon", 10, 1.0, None, "scaled_linear"),
    ("euler_v", "euler", "normal", "v_prediction", 10, 1.0, None, "scaled_linear"),
    ("euler_karras_eps", "euler", "karras", "epsilon", 10, 1.0, None, "scaled_linear"),
    ("euler_karras_v", "euler", "karras", "v_prediction", 10, 1.0, None, "scaled_linear"),
    ("euler_eps_7", "euler", "normal", "epsilon", 7, 1.0, None, "scaled_linear"),
    ("euler_leading", "euler", "normal", "epsilon", 10, 1.0, "leading", "scaled_linear"),
    ("euler_linear_beta", "euler", "normal", "epsilon", 10, 1.0, None, "linear"),
    ("euler_a_eps", "euler_a", "normal", "epsilon", 10, 1.0, None, "scaled_linear"),
    ("euler_a_v", "euler_a", "normal", "v_prediction", 10, 1.0, None, "scaled_linear"),
    ("euler_a_trailing", "euler_a", "normal", "epsilon", 7, 1.0, "trailing", "scaled_linear"),
    ("heun_eps", "heun", "normal", "epsilon", 10, 1.0, None, "scaled_linear"),
    ("heun_v", "heun", "normal", "v_prediction", 10, 1.0, None, "scaled_linear"),
    ("heun_karras_eps", "heun", "karras", "epsilon", 10, 1.0, None, "scaled_linear"),
    ("heun_karras_v", "heun", "karras", "v_prediction", 10, 1.0, None, "scaled_linear"),
    ("ddim_eps", "ddim", "normal", "epsilon", 10, 1.0, None, "scaled_linear"),
    ("ddim_v", "ddim", "normal", "v_prediction", 10, 1.0, None, "scaled_linear"),
    ("ddim_eps_7", "ddim", "normal", "epsilon", 7, 1.0, None, "scaled_linear"),
    ("ddim_trailing", "ddim", "normal", "epsilon", 7, 1.0, "trailing", "scaled_linear"),
    ("ddim_linear_beta", "ddim", "normal", "epsilon", 10, 1.0, None, "linear"),
    ("dpm_eps", "dpm++2m", "normal", "epsilon", 10, 1.0, None, "scaled_linear"),
    ("dpm_v", "dpm++2m", "normal", "v_prediction", 10, 1.0, None, "scaled_linear"),
    ("dpm_karras_eps", "dpm++2m", "karras", "epsilon", 10, 1.0, None, "scaled_linear"),
    ("dpm_karras_v", "dpm++2m", "karras", "v_prediction", 10, 1.0, None, "scaled_linear"),
    ("dpm_karras_eps_20", "dpm++2m", "karras", "epsilon", 20, 1.0, None, "scaled_linear"),
    ("dpm_trailing", "dpm++2m", "normal", "epsilon", 7, 1.0, "trailing", "scaled_linear"),
    ("lcm_eps", "lcm", "normal", "epsilon", 4, 1.0, None, "scaled_linear"),
    ("lcm_v", "lcm", "normal", "v_prediction", 4, 1.0, None, "scaled_linear"),
    ("lcm_eps_6", "lcm", "normal", "epsilon", 6, 1.0, None, "scaled_linear"),
    ("img2img_euler", "euler", "normal", "epsilon", 10, 0.6, None, "scaled_linear"),
    ("img2img_euler_a", "euler_a", "normal", "epsilon", 10, 0.6, None, "scaled_linear"),
    ("img2img_heun_karras", "heun", "karras", "epsilon", 10, 0.6, None, "scaled_linear"),
    ("img2img_ddim", "ddim", "normal", "epsilon", 10, 0.6, None, "scaled_linear"),
    ("img2img_dpm", "dpm++2m", "normal", "epsilon", 10, 0.6, None, "scaled_linear"),
    ("img2img_dpm_karras_v", "dpm++2m", "karras", "v_prediction", 10, 0.6, None,
     "scaled_linear"),
    ("img2img_lcm", "lcm", "normal", "epsilon", 4, 0.6, None, "scaled_linear"),
]

CALL = [0]  # the index of the call in progress, read by the patched randn_tensor


def f32(v):
    return float(np.float32(v))


def noise0():
    return [f32(1.1 * math.sin(0.9 * j + 0.3) + 0.2 * math.cos(2.3 * j)) for j in range(N)]


def image():
    return [f32(0.8 * math.cos(0.37 * j + 0.5)) for j in range(N)]


def step_noise(i):
    return [f32(1.2 * math.sin(1.3 * j + 2.1 * i + 0.7)) for j in range(N)]


def model(x_in, t):
    xs = x_in.reshape(-1).tolist()
    out = [f32(0.3 * math.tanh(xs[j]) + 1e-5 * t * math.cos(0.5 * j)) for j in range(N)]
    return torch.tensor(out, dtype=torch.float32).reshape(SHAPE)


def tensor(v):
    return torch.tensor(v, dtype=torch.float32).reshape(SHAPE)


def fake_randn(shape, generator=None, device=None, dtype=None, layout=None, **kw):
    assert tuple(shape) == SHAPE
    return tensor(step_noise(CALL[0])).to(dtype or torch.float32)


def make_scheduler(sampler, schedule, prediction, spacing, beta):
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler,
                           EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                           HeunDiscreteScheduler, LCMScheduler)
    import diffusers.schedulers.scheduling_euler_ancestral_discrete as m_ea
    import diffusers.schedulers.scheduling_lcm as m_lcm
    m_ea.randn_tensor = fake_randn
    m_lcm.randn_tensor = fake_randn
    cls = {"euler": EulerDiscreteScheduler, "euler_a": EulerAncestralDiscreteScheduler,
           "heun": HeunDiscreteScheduler, "ddim": DDIMScheduler,
           "dpm++2m": DPMSolverMultistepScheduler, "lcm": LCMScheduler}[sampler]
    cfg = dict(SD15_CONFIG)
    cfg["prediction_type"] = prediction
    cfg["beta_schedule"] = beta
    if beta == "linear":
        cfg["beta_start"], cfg["beta_end"] = 0.0001, 0.02
    if spacing is not None:
        cfg["timestep_spacing"] = spacing
    kw = {}
    if schedule == "karras":
        kw["use_karras_sigmas"] = True
    if sampler == "dpm++2m":
        kw["algorithm_type"] = "dpmsolver++"
        kw["solver_order"] = 2
    return cls.from_config(cfg, **kw)


def input_scale(s, sampler):
    """1 / the divisor scale_model_input applies at the scheduler's current step index."""
    if sampler in ("euler", "euler_a", "heun"):
        sigma = s.sigmas[s.step_index]
        return 1.0 / float((sigma**2 + 1) ** 0.5)
    return 1.0


def fmt(vals):
    return " ".join("%.9g" % float(v) for v in vals)


def run_case(out, case):
    name, sampler, schedule, prediction, steps, strength, spacing, beta = case
    s = make_scheduler(sampler, schedule, prediction, spacing, beta)
    s.set_timesteps(steps)
    timesteps = s.timesteps
    init_sigma = float(s.init_noise_sigma)
    x_init = None
    if strength < 1.0:
        # StableDiffusionImg2ImgPipeline.get_timesteps + prepare_latents
        init_timestep = min(int(steps * strength), steps)
        t_start = max(steps - init_timestep, 0)
        timesteps = s.timesteps[t_start * s.order:]
        if hasattr(s, "set_begin_index"):
            s.set_begin_index(t_start * s.order)
        latents = s.add_noise(tensor(image()), tensor(noise0()), timesteps[:1].repeat(1))
        x_init = latents.reshape(-1).tolist()
    else:
        latents = tensor(noise0()) * s.init_noise_sigma
    count = len(timesteps)
    # 0 and last; the middle too for the multistep samplers (state carried between calls)
    record = sorted({0, count - 1} | ({count // 2} if sampler in ("heun", "dpm++2m") else set()))
    ts, scales, xs = [], [], {}
    for i, t in enumerate(timesteps):
        CALL[0] = i
        x_in = s.scale_model_input(latents, t)
        scales.append(input_scale(s, sampler))
        ts.append(float(t))
        noise_pred = model(x_in, float(t))
        kwargs = {"eta": 0.0} if sampler == "ddim" else {}
        latents = s.step(noise_pred, t, latents, **kwargs, return_dict=False)[0]
        assert latents.dtype == torch.float32
        if i in record:
            xs[i] = latents.reshape(-1).tolist()
    pred = "v" if prediction == "v_prediction" else "epsilon"
    out.write("case %s %s %s %s %d %.9g %s %s\n" % (name, sampler, schedule, pred, steps,
                                                   strength, spacing or "-", beta))
    out.write("count %d\n" % count)
    out.write("init_sigma %.9g\n" % init_sigma)
    out.write("timesteps %s\n" % fmt(ts))
    out.write("scales %s\n" % fmt(scales))
    if x_init is not None:
        out.write("x_init %s\n" % fmt(x_init))
    for i in record:
        out.write("x %d %s\n" % (i, fmt(xs[i])))
    out.write("end\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", default=os.path.join(os.path.dirname(__file__), "golden",
                                                        "sd_sampler_diffusers.txt"))
    args = ap.parse_args()
    import diffusers
    torch.set_num_threads(1)
    with open(args.out, "w") as out:
        out.write("# sd_sampler golden: diffusers %s, torch %s (tests/gen_sd_sampler_goldens.py)\n"
                  % (diffusers.__version__, torch.__version__))
        out.write("# n %d\n" % N)
        for case in CASES:
            run_case(out, case)
    print("wrote", args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    main()
