#!/usr/bin/env python3
"""gen_nerf_metrics_goldens.py: the reference values in tests/test_nerf_metrics.c.

SSIM as the NeRF papers compute it (mip-NeRF's compute_ssim, written here in numpy: 11x11
Gaussian of sigma 1.5, K1 0.01, K2 0.03, max value 1, "valid" separable filtering, variances
clipped at 0 and the covariance at sqrt(var0 var1), mean over pixels and channels) and PSNR, for
images made from formulas the C test recomputes:
  a[y, x, c] = 0.5 + 0.4 sin(0.21 x + 0.37 y + 1.3 c)                  (h 24, w 31, 3 channels)
  b = clip(a + 0.05 cos(0.9 x - 0.5 y + c), 0, 1)
  d = clip(0.6 a + 0.2, 0, 1)
Prints the values to paste into the test.  Run: python3 tests/gen_nerf_metrics_goldens.py
"""
import numpy as np


def ssim(a, b, size=11, sigma=1.5, k1=0.01, k2=0.03):
    hw = size // 2
    f = np.exp(-0.5 * ((np.arange(size) - hw) / sigma) ** 2)
    f /= f.sum()

    def filt(z):
        # valid convolution along x then y, per channel
        zx = np.stack([np.convolve(row, f[::-1], mode="valid") for row in z.reshape(-1, z.shape[1])])
        zx = zx.reshape(z.shape[0], -1)
        return np.stack([np.convolve(col, f[::-1], mode="valid") for col in zx.T]).T

    out = []
    for c in range(a.shape[2]):
        x, y = a[:, :, c], b[:, :, c]
        mx, my = filt(x), filt(y)
        sxx = np.maximum(0, filt(x * x) - mx * mx)
        syy = np.maximum(0, filt(y * y) - my * my)
        sxy = filt(x * y) - mx * my
        sxy = np.sign(sxy) * np.minimum(np.sqrt(sxx * syy), np.abs(sxy))
        m = ((2 * mx * my + k1 ** 2) * (2 * sxy + k2 ** 2)) / (
            (mx * mx + my * my + k1 ** 2) * (sxx + syy + k2 ** 2))
        out.append(m)
    return float(np.mean(out))


def main():
    h, w = 24, 31
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    a = (0.5 + 0.4 * np.sin(0.21 * x + 0.37 * y + 1.3 * c)).astype(np.float32).astype(np.float64)
    b = np.clip(a + 0.05 * np.cos(0.9 * x - 0.5 * y + c), 0, 1).astype(np.float32).astype(np.float64)
    d = np.clip(0.6 * a + 0.2, 0, 1).astype(np.float32).astype(np.float64)
    for name, o in (("b", b), ("d", d)):
        mse = np.mean((a - o) ** 2)
        print("%s: ssim %.12f psnr %.12f" % (name, ssim(a, o), -10 * np.log10(mse)))


if __name__ == "__main__":
    main()
