#!/usr/bin/env python3
"""gen_op_goldens.py: writes tests/golden/ops_torch.txt, the goldens of tests/test_nn_golden.c.

Reference: PyTorch on the CPU, every op computed in float64 (torch.float64 tensors made from the
float32 inputs), so the golden is the exact answer for the f32 inputs up to float64 rounding;
the engine's f32 CPU twins are compared with it (tolerances in tests/test_nn_golden.c). Ops use
torch.nn.functional: conv2d, group_norm, layer_norm, linear, gelu (approximate 'none' and
'tanh'), silu, softmax, scaled_dot_product_attention, interpolate (nearest); GEGLU is diffusers'
(hidden, gate = proj(x).chunk(2, -1); hidden * gelu(gate)), quick_gelu is CLIP's
x * sigmoid(1.702 x), and the timestep embedding is diffusers' get_timestep_embedding written
out here (float64).

Inputs are not stored. Each input tensor is named in the golden by (seed, offset, lo, hi): its
element i is lo + (hi - lo) * u_i, u_i = element i of the engine's Philox4x32-10 uniform stream
(engine/eng_philox_math.h eng_philox_uniform_at), which this script reproduces in numpy (checked
against Random123's known-answer vectors and the independent scalar model of
tests/gen_dtype_goldens.py, re-implemented below). Every (lo, hi) is chosen so that the f32
value lo + (hi - lo) * u is exact (the script asserts it), so the C test's float arithmetic
gives the same bits. The timestep values are written literally.

Layouts are the engine's (engine/eng_kernels.h): activations NHWC / (N, L, C), convolution
weights OHWI (generated in that order, permuted to OIHW for torch), attention tensors
(B, L, H, D) (transposed to (B, H, L, D) for torch).

File format (text), per case:
  case <name> op <op>
  param <key> <value>                      (numbers, or act names)
  input <name> <ndim> <dims...> uniform <seed> <offset> <lo> <hi>
  input <name> <ndim> <dims...> values <v0> <v1> ...
  output <ndim> <dims...> count <n> sum <s> sumabs <a> sumsq <q>
  samples <m> stride <st>                  (outputs at flat indices i * st, i < m; st coprime
  <up to 8 values per line>                 with the count, so every dimension is visited)
  end

Run from the repository root (needs: pip install torch numpy):
    python3 tests/gen_op_goldens.py            # rewrites tests/golden/ops_torch.txt
    python3 tests/gen_op_goldens.py --check    # exits 1 if the file would change
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "ops_torch.txt")
SEED = 20240611  # one key for every input; inputs differ by Philox offset
N_SAMPLES = 256

# ---- Philox4x32-10, numpy-vectorised (layout of engine/eng_philox_math.h) -------------------
M32 = np.uint64(0xFFFFFFFF)


def philox_blocks(seed, offset, nblocks):
    """The 4 output words of Philox4x32-10 for counters {b lo, b hi, offset lo, offset hi},
    b < nblocks, key {seed lo, seed hi}: a (nblocks, 4) uint64 array of 32-bit words."""
    b = np.arange(nblocks, dtype=np.uint64)
    c0, c1 = b & M32, b >> np.uint64(32)
    c2 = np.full_like(b, offset & 0xFFFFFFFF)
    c3 = np.full_like(b, (offset >> 32) & 0xFFFFFFFF)
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0  # < 2^64: no wrap-around
        p1 = np.uint64(0xCD9E8D57) * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)
        c1, c3 = p1 & M32, p0 & M32
        c0, c2 = n0, n2
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=1)


def uniform(seed, offset, n):
    """Elements 0..n-1 of the uniform stream (seed, offset): f32 in [0, 1)."""
    w = philox_blocks(seed, offset, (n + 3) // 4).reshape(-1)[:n]
    return ((w >> np.uint64(8)).astype(np.float64) * 2.0 ** -24).astype(np.float32)


def philox_scalar(ctr, key):
    """Plain-integer Philox4x32-10 (the model of tests/gen_dtype_goldens.py)."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & 0xFFFFFFFF, (p0 >> 32) ^ c3 ^ k1,
                          p0 & 0xFFFFFFFF)
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return [c0, c1, c2, c3]


def self_check_philox():
    kats = [  # Random123 kat_vectors, philox4x32 10
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ]
    for ctr, key, want in kats:
        assert philox_scalar(ctr, key) == want, "scalar Philox fails a Random123 KAT"
    # the vectorised stream against the scalar model, offsets with both halves set
    for seed, offset in ((0, 0), (SEED, 5), (0xFEDCBA9876543210, 0x123456789)):
        u = uniform(seed, offset, 64)
        for i in range(64):
            blk = i // 4
            w = philox_scalar([blk & 0xFFFFFFFF, blk >> 32, offset & 0xFFFFFFFF, offset >> 32],
                              [seed & 0xFFFFFFFF, seed >> 32])
            assert u[i] == np.float32((w[i % 4] >> 8) / 16777216.0), "vectorised Philox differs"
    # and against the first committed uniform values of tests/golden/dtype_rng_philox.txt
    assert uniform(0, 0, 2).tolist() == [np.float32(0.399046421), np.float32(0.880520165)]


# ---- cases ------------------------------------------------------------------------------------
class Case:
    def __init__(self, name, op):
        self.name, self.op = name, op
        self.params = []  # (key, text)
        self.inputs = []  # (name, shape, line tail)
        self.arrays = {}  # name -> float64 torch tensor (engine layout)

    def param(self, key, value):
        self.params.append((key, value if isinstance(value, str) else repr(value)))

    def uniform(self, name, shape, lo, hi, offset):
        n = int(np.prod(shape))
        u = uniform(SEED, offset, n)
        x = np.float32(lo) + np.float32(hi - lo) * u
        exact = lo + (hi - lo) * u.astype(np.float64)
        assert np.array_equal(x.astype(np.float64), exact), "%s.%s: lo + (hi-lo) u not exact" % (
            self.name, name)
        self.inputs.append((name, shape, "uniform %d %d %r %r" % (SEED, offset, lo, hi)))
        t = torch.from_numpy(x.astype(np.float64).reshape(shape))
        self.arrays[name] = t
        return t

    def values(self, name, vals):
        x = np.array(vals, dtype=np.float32)
        assert np.array_equal(x.astype(np.float64), np.array(vals, dtype=np.float64))
        self.inputs.append((name, [len(vals)], "values " + " ".join(repr(float(v)) for v in vals)))
        t = torch.from_numpy(x.astype(np.float64))
        self.arrays[name] = t
        return t


def nhwc_to_nchw(t):
    return t.permute(0, 3, 1, 2)


def nchw_to_nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def timestep_embedding(t, dim, flip_sin_to_cos, shift, max_period):
    """diffusers get_timestep_embedding, in float64."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float64) / (half - shift)
    emb = t[:, None] * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


def build_cases():
    cases = []
    offset = [0]

    def off():
        offset[0] += 1
        return offset[0] - 1

    def add(c, out):
        c.out = out.detach().contiguous()
        cases.append(c)

    # -- conv2d: x NHWC, w OHWI (generated so), torch wants NCHW / OIHW -------------------------
    def conv(name, n, h, w, c, o, k, stride, pad, wscale):
        cs = Case(name, "conv2d")
        cs.param("stride", stride)
        cs.param("pad", pad)
        x = cs.uniform("x", [n, h, w, c], -1.0, 1.0, off())
        wt = cs.uniform("w", [o, k, k, c], -wscale, wscale, off())
        b = cs.uniform("bias", [o], -0.5, 0.5, off())
        y = F.conv2d(nhwc_to_nchw(x), wt.permute(0, 3, 1, 2), b, stride=stride, padding=pad)
        add(cs, nchw_to_nhwc(y))

    # scales: powers of two near 1/sqrt(fan_in), so outputs are O(1)
    conv("conv3x3_320_8x8", 1, 8, 8, 320, 320, 3, 1, 1, 1.0 / 32)
    conv("conv3x3_s2_320_16x16", 1, 16, 16, 320, 320, 3, 2, 1, 1.0 / 32)
    conv("conv1x1_640_320_8x8", 1, 8, 8, 640, 320, 1, 1, 0, 1.0 / 16)
    conv("conv_in_4_320_8x8", 1, 8, 8, 4, 320, 3, 1, 1, 0.25)
    conv("conv_out_320_4_8x8", 1, 8, 8, 320, 4, 3, 1, 1, 1.0 / 32)

    # -- GroupNorm (+ SiLU), NHWC: torch's group_norm works on NCHW -----------------------------
    for act in ("none", "silu"):
        cs = Case("groupnorm32_16x16_320" + ("_silu" if act == "silu" else ""), "groupnorm")
        cs.param("groups", 32)
        cs.param("eps", 1e-5)
        cs.param("act", act)
        x = cs.uniform("x", [1, 16, 16, 320], -2.0, 2.0, off())
        g = cs.uniform("gamma", [320], 0.0, 2.0, off())
        b = cs.uniform("beta", [320], -0.5, 0.5, off())
        y = F.group_norm(nhwc_to_nchw(x), 32, g, b, eps=1e-5)
        if act == "silu":
            y = F.silu(y)
        add(cs, nchw_to_nhwc(y))

    # -- LayerNorm over the last dimension ------------------------------------------------------
    for rows, c in ((77, 768), (64, 320)):
        cs = Case("layernorm_%dx%d" % (rows, c), "layernorm")
        cs.param("eps", 1e-5)
        x = cs.uniform("x", [1, rows, c], -2.0, 2.0, off())
        g = cs.uniform("gamma", [c], 0.0, 2.0, off())
        b = cs.uniform("beta", [c], -0.5, 0.5, off())
        add(cs, F.layer_norm(x, (c,), g, b, eps=1e-5))

    # -- Linear, and Linear + GEGLU (diffusers' feed-forward input) -----------------------------
    cs = Case("linear_77x768_320", "linear")
    x = cs.uniform("x", [1, 77, 768], -1.0, 1.0, off())
    w = cs.uniform("w", [320, 768], -1.0 / 32, 1.0 / 32, off())
    b = cs.uniform("bias", [320], -0.5, 0.5, off())
    add(cs, F.linear(x, w, b))

    cs = Case("linear_geglu_64x320_2560", "linear_geglu")
    x = cs.uniform("x", [1, 64, 320], -1.0, 1.0, off())
    w = cs.uniform("w", [2560, 320], -1.0 / 16, 1.0 / 16, off())
    b = cs.uniform("bias", [2560], -0.5, 0.5, off())
    hidden, gate = F.linear(x, w, b).chunk(2, dim=-1)
    add(cs, hidden * F.gelu(gate))

    # -- pointwise activations on 4096 values ---------------------------------------------------
    acts = (("gelu", lambda t: F.gelu(t)), ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh")),
            ("quick_gelu", quick_gelu), ("silu", F.silu))
    for act, fn in acts:
        cs = Case("unary_%s_4096" % act, "unary")
        cs.param("act", act)
        cs.param("alpha", 1.0)
        cs.param("beta", 0.0)
        x = cs.uniform("x", [4096], -8.0, 8.0, off())
        add(cs, fn(x))

    # -- softmax(scale * x) over 77 columns -----------------------------------------------------
    cs = Case("softmax_64x77", "softmax")
    cs.param("scale", 0.125)
    x = cs.uniform("x", [64, 77], -16.0, 16.0, off())
    add(cs, torch.softmax(0.125 * x, dim=-1))

    # -- attention, tensors (B, L, H, D) --------------------------------------------------------
    def attention(name, b, lq, lk, h, d, causal):
        cs = Case(name, "attention")
        scale = 1.0 / math.sqrt(d)
        cs.param("scale", float(np.float32(scale)))
        cs.param("causal", 1 if causal else 0)
        q = cs.uniform("q", [b, lq, h, d], -1.0, 1.0, off())
        k = cs.uniform("k", [b, lk, h, d], -1.0, 1.0, off())
        v = cs.uniform("v", [b, lk, h, d], -1.0, 1.0, off())
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=causal, scale=float(np.float32(scale)))
        add(cs, o.transpose(1, 2))

    attention("attention_self_256_h8_d40", 1, 256, 256, 8, 40, False)
    attention("attention_cross_256x77_h8_d40", 1, 256, 77, 8, 40, False)
    attention("attention_clip_causal_77_h12_d64", 1, 77, 77, 12, 64, True)

    # -- timestep embedding (SD 1.x UNet: dim 320, flip, shift 0) --------------------------------
    cs = Case("timestep_embedding_320", "temb")
    cs.param("dim", 320)
    cs.param("flip", 1)
    cs.param("shift", 0.0)
    cs.param("max_period", 10000.0)
    t = cs.values("t", [999.0, 500.0, 1.0, 0.0])
    add(cs, timestep_embedding(t, 320, True, 0.0, 10000.0))

    # -- nearest 2x upsample, broadcast add -----------------------------------------------------
    cs = Case("upsample2x_8x8_320", "upsample2x")
    x = cs.uniform("x", [1, 8, 8, 320], -1.0, 1.0, off())
    add(cs, nchw_to_nhwc(F.interpolate(nhwc_to_nchw(x), scale_factor=2, mode="nearest")))

    cs = Case("add_broadcast_8x8_320", "add")
    a = cs.uniform("a", [1, 8, 8, 320], -1.0, 1.0, off())
    b = cs.uniform("b", [320], -1.0, 1.0, off())
    add(cs, a + b)
    return cases


def fmt(v):
    return "%.8g" % v


def sample_stride(n):
    """The smallest stride >= n / N_SAMPLES that is coprime with n, so the sampled flat indices
    i * stride walk through every dimension (a stride of 80 over (8, 8, 320) would only ever
    visit channels 0, 80, 160 and 240)."""
    s = max(1, n // N_SAMPLES)
    while n > 1 and math.gcd(s, n) != 1:
        s += 1
    return s


def golden_text(cases):
    lines = ["# Generated by tests/gen_op_goldens.py from torch %s (float64 on the CPU), numpy %s;"
             % (torch.__version__, np.__version__),
             "# do not edit. Inputs: Philox uniform streams named per input (see the script).",
             "# Checked by tests/test_nn_golden.c (one ctest per case: eng.nn.golden.<case>)."]
    for c in cases:
        lines.append("case %s op %s" % (c.name, c.op))
        for k, v in c.params:
            lines.append("param %s %s" % (k, v))
        for name, shape, tail in c.inputs:
            lines.append("input %s %d %s %s" % (name, len(shape), " ".join(map(str, shape)), tail))
        y = c.out.reshape(-1).to(torch.float64).numpy()
        shape = list(c.out.shape)
        lines.append("output %d %s count %d sum %.17g sumabs %.17g sumsq %.17g" % (
            len(shape), " ".join(map(str, shape)), y.size, float(np.sum(y)),
            float(np.sum(np.abs(y))), float(np.sum(y * y))))
        stride = sample_stride(y.size)
        m = min(N_SAMPLES, (y.size + stride - 1) // stride)
        lines.append("samples %d stride %d" % (m, stride))
        vals = [fmt(y[i * stride]) for i in range(m)]
        for i in range(0, m, 8):
            lines.append(" ".join(vals[i:i + 8]))
        lines.append("end")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    torch.set_num_threads(1)  # float64 results independent of the thread count
    self_check_philox()
    text = golden_text(build_cases())
    old = open(GOLDEN).read() if os.path.exists(GOLDEN) else None
    if args.check:
        if old != text:
            print("%s would change" % GOLDEN)
            return 1
        return 0
    if old != text:
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w") as f:
            f.write(text)
        print("wrote %s (%d bytes)" % (GOLDEN, len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
