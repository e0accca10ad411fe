#!/usr/bin/env python3
"""gen_dtype_goldens.py: writes the goldens of tests/test_eng_dtype.c and tests/test_eng_rng.c.

References:
  - f32 <-> f16: numpy's astype (np.float16 / np.float32). numpy's conversion is its software
    one (npy_floatbits_to_halfbits / npy_halfbits_to_floatbits): NaN payloads are kept, not
    quieted, unlike F16C hardware. The script checks this and refuses to write goldens from a
    numpy build that quiets NaNs.
  - f32 <-> bf16 and f32 <-> fp8 e4m3: ml_dtypes (bfloat16, float8_e4m3fn). The saturating fp8
    conversion is ml_dtypes' conversion of np.clip(x, -448, 448).
  - Philox4x32-10 streams: an independent implementation here (Python integers, numpy/math
    float64 log, sqrt, sin), following the layout documented in engine/eng_philox_math.h.
Generated with numpy 2.4.6 and ml_dtypes 0.6.0 (the versions are also written into the files).

Run from the repository root (needs: pip install numpy ml_dtypes):
    python3 tests/gen_dtype_goldens.py            # rewrites tests/golden/dtype_*.txt
    python3 tests/gen_dtype_goldens.py --check    # exits 1 if the files would change

Files written (small text, a few KB):
  tests/golden/dtype_conversions.txt: per conversion set, the input count, an FNV-1a 64 hash of
    all outputs (little-endian bytes of each output, in input order; 2 bytes for f16/bf16, 4 for
    f32, 1 for fp8) and ~64 sampled (input, output) pairs, specials included.
  tests/golden/dtype_rng_philox.txt: 32 f32 values (bits and decimal) per (kind, seed, offset,
    start index) stream.

Inputs (the C test regenerates them identically; keep both in step):
  *_all sets: every 16-bit (or 8-bit) pattern, 0 .. 2^k - 1.
  *_sweep sets, f32 bit patterns in this order:
    1. for sign in 0, 1; for biased exponent 0..255; for each mantissa in MANTISSAS:
       MANTISSAS = 0, 1, 0x7fffff, then for d = 1..23 (number of dropped bits), h = 2^(d-1):
       for k in (h, 3h, (0x7fffff & ~(2h - 1)) | h): for delta in -1, 0, +1: (k + delta) & 0x7fffff.
       These are the exact ties, and 1 ulp either side, of rounding away d bits with an even and
       an odd kept part and with a carry into the exponent: d = 13 is f16, 16 bf16, 20 fp8, larger
       d the subnormal results; exponent 255 gives infinities and quiet and signaling NaNs with
       many payloads, exponent 0 zeros and f32 subnormals.
    2. a stride walk over all 2^32 patterns: (i * 0x9E3779B1 + 0x7F4A7C15) mod 2^32, i < 65536.
    3. EXTRAS below (overflow boundaries 65504 / 65520 / 448 / 464, smallest subnormals, ...).
"""
import argparse
import math
import os
import sys

import ml_dtypes
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_DIR = os.path.join(HERE, "golden")

EXTRAS = [
    0x477FE000, 0x477FE001, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000,  # 65504 .. 65536
    0x43E00000, 0x43E7FFFF, 0x43E80000, 0x43E80001, 0x43F00000,              # 448, 464, 480
    0x33800000, 0x33000000, 0x33000001, 0x33400000, 0x38800000, 0x387FC000,  # f16 subnormals
    0x3B000000, 0x3A800000, 0x3A800001, 0x3C800000,                          # fp8 subnormals
    0x3F800000, 0x3EAAAAAB, 0x40490FDB, 0x3DCCCCCD, 0x7F7FFFFF, 0x00000001, 0x807FFFFF,
    0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000,
]


def mantissas():
    out = [0, 1, 0x7FFFFF]
    for d in range(1, 24):
        h = 1 << (d - 1)
        for k in (h, 3 * h, (0x7FFFFF & ~(2 * h - 1)) | h):
            for delta in (-1, 0, 1):
                out.append((k + delta) & 0x7FFFFF)
    return out


def f32_sweep():
    m = np.array(mantissas(), dtype=np.uint64)
    parts = []
    for sign in (0, 1):
        for exp in range(256):
            parts.append((sign << 31) | (exp << 23) | m)
    i = np.arange(65536, dtype=np.uint64)
    parts.append((i * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF)
    parts.append(np.array(EXTRAS, dtype=np.uint64))
    return np.concatenate(parts).astype(np.uint32)


def fnv1a64(arr):
    """FNV-1a 64 over the little-endian bytes of arr, in order."""
    data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    h = 0xCBF29CE484222325
    prime = 0x100000001B3
    for b in data:
        h ^= b
        h = (h * prime) & 0xFFFFFFFFFFFFFFFF
    return h


def sample_indices(inputs, n_even, specials):
    """Indices of the special inputs (first occurrence) plus n_even evenly spaced ones."""
    idx = []
    pos = {}
    for j, v in enumerate(inputs.tolist()):
        pos.setdefault(v, j)
    for s in specials:
        if s in pos and pos[s] not in idx:
            idx.append(pos[s])
    step = max(1, len(inputs) // n_even)
    for j in range(0, len(inputs), step):
        if j not in idx:
            idx.append(j)
    return idx[: n_even + len(specials)]


def f32_view(bits):
    return bits.astype(np.uint32).view(np.float32)


def conversion_sets():
    sweep = f32_sweep()
    h16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    b8 = np.arange(256, dtype=np.uint32).astype(np.uint8)
    with np.errstate(all="ignore"):
        sets = [
            ("f16_to_f32_all", 16, 32, h16, h16.view(np.float16).astype(np.float32).view(np.uint32)),
            ("bf16_to_f32_all", 16, 32, h16,
             h16.view(ml_dtypes.bfloat16).astype(np.float32).view(np.uint32)),
            ("e4m3_to_f32_all", 8, 32, b8,
             b8.view(ml_dtypes.float8_e4m3fn).astype(np.float32).view(np.uint32)),
            ("f32_to_f16_sweep", 32, 16, sweep, f32_view(sweep).astype(np.float16).view(np.uint16)),
            ("f32_to_bf16_sweep", 32, 16, sweep,
             f32_view(sweep).astype(ml_dtypes.bfloat16).view(np.uint16)),
            ("f32_to_e4m3_sweep", 32, 8, sweep,
             f32_view(sweep).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)),
            ("f32_to_e4m3_sat_sweep", 32, 8, sweep,
             np.clip(f32_view(sweep), np.float32(-448), np.float32(448))
             .astype(ml_dtypes.float8_e4m3fn).view(np.uint8)),
        ]
    return sets


def check_numpy_keeps_nan_payloads():
    with np.errstate(all="ignore"):
        a = np.array([0x7F800001], dtype=np.uint32).view(np.float32).astype(np.float16)
        b = np.array([0x7C01], dtype=np.uint16).view(np.float16).astype(np.float32)
    if int(a.view(np.uint16)[0]) != 0x7C01 or int(b.view(np.uint32)[0]) != 0x7F802000:
        sys.exit("this numpy quiets NaNs in f16 conversions (hardware path?); the goldens and "
                 "engine/eng_half_math.h follow the software path. Use another numpy build.")


def conversions_text():
    check_numpy_keeps_nan_payloads()
    specials16 = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0xFBFF, 0x7C00,
                  0xFC00, 0x7C01, 0x7D00, 0x7E00, 0x7FFF, 0xFC01, 0xFE01, 0xFFFF, 0x7F80, 0xFF80,
                  0x7F81, 0x7FC0, 0x7FC1, 0xFFC1, 0x0080, 0x007F, 0x3F80]
    specials8 = [0x00, 0x80, 0x01, 0x07, 0x08, 0x7E, 0x7F, 0xFE, 0xFF, 0x38]
    lines = ["# Generated by tests/gen_dtype_goldens.py (read it for the inputs and the hash);",
             "# do not edit. numpy %s, ml_dtypes %s." % (np.__version__, ml_dtypes.__version__),
             "# set <name> count <n> fnv1a64 <hash of all outputs>, then <input> <output> pairs (hex),"
             " then end."]
    for name, in_bits, out_bits, inputs, outputs in conversion_sets():
        assert len(inputs) == len(outputs)
        specials = EXTRAS if in_bits == 32 else (specials16 if in_bits == 16 else specials8)
        idx = sample_indices(inputs, 40 if in_bits == 32 else 48, specials)
        lines.append("set %s count %d fnv1a64 %016x" % (name, len(inputs), fnv1a64(outputs)))
        for j in idx:
            lines.append("0x%0*x 0x%0*x" % (in_bits // 4, int(inputs[j]), out_bits // 4,
                                            int(outputs[j])))
        lines.append("end")
    return "\n".join(lines) + "\n"


# ---- Philox4x32-10, written from the paper's description (not from engine/) -----------------
MASK32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
        k0 = (k0 + 0x9E3779B9) & MASK32
        k1 = (k1 + 0xBB67AE85) & MASK32
    return [c0, c1, c2, c3]


def split64(x):
    return x & MASK32, (x >> 32) & MASK32


def uniform_at(seed, offset, i):
    w = philox4x32_10([*split64(i >> 2), *split64(offset)], list(split64(seed)))
    return np.float32((w[i & 3] >> 8) / 16777216.0)


def normal_at(seed, offset, i):
    w = philox4x32_10([*split64(offset), *split64(i)], list(split64(seed)))
    u = w[0] * 2.0 ** -32 + 2.0 ** -33
    v = (w[1] * 2.0 ** -32 + 2.0 ** -33) * (2.0 * math.pi)
    return np.float32(math.sqrt(-2.0 * math.log(u)) * math.sin(v))


KATS = [  # Random123 tests/kat_vectors, philox4x32 10 lines: ctr[4] key[2] -> out[4]
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([MASK32] * 4, [MASK32] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


def rng_text():
    for ctr, key, want in KATS:
        assert philox4x32_10(ctr, key) == want, "the Python Philox fails a Random123 KAT"
    lines = ["# Generated by tests/gen_dtype_goldens.py (independent Python Philox4x32-10, float64",
             "# math.log/sqrt/sin); do not edit. numpy %s." % np.__version__,
             "# stream <uniform|normal> seed <u64> offset <u64> start <u64> count <n>, then n lines",
             "# <f32 bits hex> <value>, then end."]
    streams = []
    for kind in ("uniform", "normal"):
        for seed in (0, 12345):
            for offset in (0, 1):
                streams.append((kind, seed, offset, 0))
        streams.append((kind, 0xFEDCBA9876543210, 0x123456789, 0))
        streams.append((kind, 7, 3, 0xFFFFFFF0))  # element index crosses 2^32
    for kind, seed, offset, start in streams:
        fn = uniform_at if kind == "uniform" else normal_at
        lines.append("stream %s seed %d offset %d start %d count 32" % (kind, seed, offset, start))
        for i in range(start, start + 32):
            v = fn(seed, offset, i)
            lines.append("0x%08x %.9g" % (int(np.array([v]).view(np.uint32)[0]), float(v)))
        lines.append("end")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    outputs = {"dtype_conversions.txt": conversions_text(), "dtype_rng_philox.txt": rng_text()}
    changed = False
    for name, text in outputs.items():
        path = os.path.join(GOLDEN_DIR, name)
        old = open(path).read() if os.path.exists(path) else None
        if args.check:
            if old != text:
                print("%s would change" % path)
                changed = True
        elif old != text:
            os.makedirs(GOLDEN_DIR, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            print("wrote %s (%d bytes)" % (path, len(text)))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
