"""Blur: y = k ⋆ pad(x), a padded convolution with a fixed, normalised kernel, and its exact adjoint.

As in the DPS benchmark code (ReflectionPad2d then nn.Conv2d), A is what `torch.conv2d` computes
(here by FFT), i.e. a cross-correlation with the kernel (a true convolution with the flipped kernel; identical for
symmetric kernels). Padding modes:
- "reflect": whole-sample reflection (torch's "reflect", edge not repeated), as the benchmark.
  Pixels next to the border are counted twice, so ||A|| is slightly above 1, not 1 (measured at
  256²: 1.004 for the 61x61 std-3 Gaussian, about 1.05 for 61x61 motion kernels; up to 1.08 on
  tiny images);
- "circular": periodic (||A|| = 1 for any normalised non-negative kernel);
- "symmetric": half-sample reflection (edge repeated, MATLAB/scipy "symmetric"; ||A|| = 1 for
  symmetric kernels);
- "valid": no padding, the output is smaller by (k - 1) in each direction.
Padding is written as an index map, pad(x) = x[idx], so its adjoint sums every padded copy back
onto its pixel: A^T = unpad ∘ (transposed correlation), exact (the reference code's identity "transpose" is not).
The index map reflects repeatedly, so kernels larger than the image are allowed.
"""

from __future__ import annotations

import functools
import math
import numbers
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inversa.errors import UserError
from inversa.operators.base import LinearOperator, _positive_int, check_shape, default_rcond, read_array
from inversa.operators.noise import NoiseModel
from inversa.operators.resize import resize_matrix


def pad_index(n: int, before: int, after: int, mode: str, device=None) -> torch.Tensor:
    """Indices into a length-n axis that realise `before`/`after` samples of padding."""
    i = torch.arange(-before, n + after, device=device)
    if mode == "circular":
        return i % n
    if mode == "symmetric":  # ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
        i = i % (2 * n)
        return torch.where(i < n, i, 2 * n - 1 - i)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)  # reflect: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
    i = i % period
    return torch.where(i < n, i, period - i)


def fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (FFT sizes with small prime factors are fastest)."""
    best, p2 = 2 * n, 1
    while p2 < 2 * n:
        p3 = p2
        while p3 < 2 * n:
            p5 = p3
            while p5 < n:
                p5 *= 5
            best = min(best, p5)
            p3 *= 3
        p2 *= 2
    return best


@functools.lru_cache(maxsize=128)
def _fold_table(n: int, before: int, after: int, mode: str) -> torch.Tensor:
    """(n, m): for each pixel, the padded positions that copy it, filled up with the position
    just past the end (a zero slot). Lets the adjoint of padding gather instead of scatter."""
    copies = [[] for _ in range(n)]
    for p, j in enumerate(pad_index(n, before, after, mode).tolist()):
        copies[j].append(p)
    m, end = max(map(len, copies)), n + before + after
    return torch.tensor([c + [end] * (m - len(c)) for c in copies])


def unpad(z: torch.Tensor, dim: int, n: int, before: int, after: int, mode: str) -> torch.Tensor:
    """Adjoint of padding axis `dim` (-1 or -2) by `pad_index`: sum every copy back onto its pixel.
    A gather and a fixed-order sum (no scatter-add atomics): deterministic on every device."""
    table = _fold_table(n, before, after, mode).to(z.device)
    zero = z.new_zeros(*z.shape[:dim], 1, *z.shape[dim:][1:])
    g = torch.cat([z, zero], dim).index_select(dim, table.flatten())
    return g.unflatten(dim, table.shape).sum(dim)  # (..., n, m[, W]): the copies axis is `dim`


class Blur(LinearOperator):
    """Blur with `kernel`: (kh, kw), (1, 1, kh, kw), or (B, 1, kh, kw) for one kernel per image.
    Kernels must be non-negative with odd sizes; they are normalised to sum 1. The same kernel
    blurs every channel."""

    name = "blur"
    PADDINGS = ("reflect", "circular", "symmetric", "valid")

    def __init__(self, kernel, padding: str = "reflect", noise: NoiseModel | None = None,
                 *, channels: int | None = None):
        super().__init__(noise, channels)
        if padding not in self.PADDINGS:
            raise UserError(f"blur padding {padding!r} is unknown; accepted: {', '.join(self.PADDINGS)}")
        self.padding = padding
        k = check_kernel(kernel)
        self.register_buffer("kernel", k if k.ndim == 4 else k[None, None])

    # --- helpers --------------------------------------------------------------------------
    def _check(self, x: torch.Tensor, what: str) -> None:
        check_shape(x, what, self.channels)
        kb = self.kernel.shape[0]
        if kb != 1 and x.shape[0] != kb:
            raise UserError(f"{what} has batch {x.shape[0]} but the operator holds {kb} per-image kernels")

    def _taps(self) -> list:
        """Per kernel: (kernel cropped to its non-zero rows/columns (1, kh', kw'), (before, after)
        padding rows, (before, after) padding columns, its spectra cache). Zero taps change nothing,
        but a 61x61 Gaussian of std 3 has 25x25 non-zero taps: cropping halves the FFT grid. Each
        kernel is cropped on its own (image i must not depend on its batch-mates' kernels); the
        centre stays inside the crop, so padding is >= 0. 'valid' keeps the full kernel (its output
        size depends on it). Cached per kernel version."""
        k = self.kernel
        key = (k.data_ptr(), k._version, self.padding)
        if self.__dict__.get("_taps_key") != key:
            kh, kw = k.shape[-2:]
            taps = []
            for ki in k:
                r0, r1, c0, c1 = 0, kh - 1, 0, kw - 1
                if self.padding != "valid":
                    rows, cols = (ki[0] != 0).any(1).nonzero(), (ki[0] != 0).any(0).nonzero()
                    r0, r1 = min(int(rows.min()), kh // 2), max(int(rows.max()), kh // 2)
                    c0, c1 = min(int(cols.min()), kw // 2), max(int(cols.max()), kw // 2)
                taps.append((ki[:, r0:r1 + 1, c0:c1 + 1], (kh // 2 - r0, r1 - kh // 2), (kw // 2 - c0, c1 - kw // 2), {}))
            self.__dict__["_taps_val"], self.__dict__["_taps_key"] = taps, key
        return self.__dict__["_taps_val"]

    # --- the linear map -------------------------------------------------------------------
    # Both directions are computed with FFTs on the padded grid (Hp, Wp): the valid correlation
    # y[i] = sum_a k[a] xp[i + a], i < Hp - kh + 1, never wraps around, so it equals the circular one
    # (X conj(K)); its adjoint scatters y back with the circular convolution (Y K), also without
    # wrapping. Exact up to rounding, and much faster than direct conv for the 61x61 kernels.
    # Image by image: each has its own kernel crop, and batching the FFTs is not faster here.
    @staticmethod
    def _spectrum(tap, s: tuple[int, int], dtype, device) -> torch.Tensor:
        """rfft2 of a cropped kernel on an s grid, cached: every solver step filters with the same
        kernel, and the kernel's FFT was a quarter of the operator's cost."""
        k, _, _, cache = tap
        if (s, dtype, device) not in cache:
            cache[(s, dtype, device)] = torch.fft.rfft2(k.to(device, dtype), s=s)
        return cache[(s, dtype, device)]

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, "x")
        taps, (h, w) = self._taps(), x.shape[-2:]
        kh, kw = self.kernel.shape[-2:]
        if self.padding == "valid" and (h < kh or w < kw):
            raise UserError(f"x is {h}x{w}, smaller than the {kh}x{kw} kernel: 'valid' blur "
                            "needs the image at least as large as the kernel; use padding='reflect'")
        out = []
        for i, xi in enumerate(x):
            tap = taps[i if len(taps) > 1 else 0]
            k, (bh, ah), (bw, aw), _ = tap
            if self.padding != "valid":
                xi = xi.index_select(-2, pad_index(h, bh, ah, self.padding, x.device))
                xi = xi.index_select(-1, pad_index(w, bw, aw, self.padding, x.device))
            hp, wp = xi.shape[-2:]
            s = (fast_len(hp), fast_len(wp))  # any grid >= (hp, wp) avoids wrap-around; pick a fast one
            yi = torch.fft.irfft2(torch.fft.rfft2(xi, s=s) * self._spectrum(tap, s, x.dtype, x.device).conj(), s=s)
            out.append(yi[..., :hp - k.shape[-2] + 1, :wp - k.shape[-1] + 1])
        return torch.stack(out)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, "y")
        taps, (h, w) = self._taps(), y.shape[-2:]
        out = []
        for i, yi in enumerate(y):
            tap = taps[i if len(taps) > 1 else 0]
            k, (bh, ah), (bw, aw), _ = tap
            hp, wp = h + k.shape[-2] - 1, w + k.shape[-1] - 1  # padded size
            s = (fast_len(hp), fast_len(wp))
            z = torch.fft.irfft2(torch.fft.rfft2(yi, s=s) * self._spectrum(tap, s, y.dtype, y.device), s=s)[..., :hp, :wp]
            if self.padding != "valid":
                z = unpad(z, -2, h, bh, ah, self.padding)  # fold the padded rows back
                z = unpad(z, -1, w, bw, aw, self.padding)
            out.append(z)
        return torch.stack(out)

    def gram_solve(self, rhs: torch.Tensor, c: float) -> torch.Tensor | None:
        """Circular padding: A^T A is the circulant with eigenvalues |K|² (K the kernel's DFT on
        the image grid), so (I + c A^T A)^{-1} is one FFT division. Other paddings: None (CG)."""
        if self.padding != "circular":
            return None
        self._check(rhs, "rhs")
        k = self.kernel.to(rhs.dtype)
        (kh, kw), (h, w) = k.shape[-2:], rhs.shape[-2:]
        def fold(n, m):  # (n, m) 0/1 matrix: tap a lands on pixel (a - m // 2) mod n (wrapping taps add up)
            return (torch.arange(n)[:, None] == (torch.arange(m)[None, :] - m // 2) % n).to(rhs.device, rhs.dtype)

        onto = fold(h, kh) @ k @ fold(w, kw).T  # the kernel's centre at pixel (0, 0), on the h x w torus
        gain = 1 + c * torch.fft.rfft2(onto).abs() ** 2
        return torch.stack([torch.fft.irfft2(torch.fft.rfft2(rhs[i]) / gain[i if len(k) > 1 else 0], s=(h, w))
                            for i in range(len(rhs))])

    # --- circular padding: A is a circulant, diagonal in the Fourier basis ---------------------
    # On the h x w torus, A x = ifft2(T fft2(x)) with T = conj(fft2(k0)), k0 the kernel with its
    # centre at pixel (0, 0) (A is a correlation). Its real SVD: A = Q P with Q = ifft2(T/|T|) fft2
    # (orthogonal) and P = ifft2(|T|) fft2 (symmetric), and since |T| is even in the frequency,
    # P is diagonalised by the real, orthonormal, self-inverse 2-D Hartley transform
    # Hx = Re(F x) - Im(F x) (F the unitary DFT). So V = V^T = H, Σ = |T|, U = Q H.
    def _transfer(self, like: torch.Tensor) -> torch.Tensor:
        """T (Bk, 1, h, w) complex, Bk = 1 or the number of per-image kernels; cached per kernel
        version, size, dtype and device."""
        k = self.kernel
        key = ("transfer", k.data_ptr(), k._version, tuple(like.shape[-2:]), like.dtype, like.device)
        cache = self.__dict__.setdefault("_circ_cache", {})
        if key not in cache:
            cache.clear()
            kd = k.to(like.device, like.dtype)
            (kh, kw), (h, w) = kd.shape[-2:], like.shape[-2:]

            def fold(n, m):  # (n, m) 0/1: tap a lands on pixel (a - m // 2) mod n (wrapping taps add up)
                return (torch.arange(n)[:, None] == (torch.arange(m)[None, :] - m // 2) % n).to(like.device, like.dtype)

            cache[key] = torch.fft.fft2(fold(h, kh) @ kd @ fold(w, kw).T).conj()
        return cache[key]

    def _circular_only(self, what: str) -> None:
        if self.padding != "circular":
            raise UserError(f"{what} of a blur is in closed form for padding='circular' only, this one pads "
                            f"{self.padding!r}; operators with a closed-form SVD: {self.SVD_OPERATORS}")

    def _filter(self, x: torch.Tensor, spectra: torch.Tensor) -> torch.Tensor:
        """ifft2(spectrum_i * fft2(x_i)), real part, image by image (per-image kernels; batch invariance)."""
        return torch.stack([torch.fft.ifft2(spectra[i if len(spectra) > 1 else 0] * torch.fft.fft2(x[i])).real
                            for i in range(len(x))])

    @staticmethod
    def _hartley(x: torch.Tensor) -> torch.Tensor:
        """Orthonormal 2-D discrete Hartley transform (its own inverse), image by image."""
        out = []
        for xi in x:
            f = torch.fft.fft2(xi, norm="ortho")
            out.append(f.real - f.imag)
        return torch.stack(out)

    @property
    def has_svd(self) -> bool:
        return self.padding == "circular"

    def describe(self) -> str:
        return f"blur with padding={self.padding!r}"

    def A_dagger(self, y: torch.Tensor, *, rcond: float | None = None, **kwargs) -> torch.Tensor:
        """Circular padding: A^† y = ifft2(conj(T) / |T|² fft2(y)) on the frequencies with
        |T| > rcond * max|T| and 0 on the others (a truncated pseudo-inverse: a blur's spectrum falls
        to rounding level at high frequencies, where the exact division would only amplify rounding;
        default rcond = `default_rcond`, 1.2e-4 in float32, 2.2e-13 in float64; pass a larger one
        for noisy y). Other paddings: the generic CG on the normal equations (`tol`, `max_iter`)."""
        if self.padding != "circular":
            return super().A_dagger(y, **kwargs)
        self._check(y, "y")
        rcond = default_rcond(y.dtype) if rcond is None else float(rcond)
        T = self._transfer(y)
        mag = T.abs()
        keep = mag > rcond * mag.flatten(1).amax(1).view(-1, 1, 1, 1)
        inv = torch.where(keep, T.conj() / torch.where(keep, mag, torch.ones_like(mag)) ** 2, torch.zeros_like(T))
        return self._filter(y, inv)

    def singulars(self, like: torch.Tensor) -> torch.Tensor:
        """|T| (Bk, 1, h, w): in the Hartley coefficients' layout (frequency (u, v) at pixel (u, v))."""
        self._circular_only("the SVD")
        return self._transfer(like).abs()

    def V_T(self, x: torch.Tensor) -> torch.Tensor:
        self._circular_only("the SVD")
        self._check(x, "x")
        return self._hartley(x)

    V = V_T  # the Hartley transform is symmetric and orthogonal

    def _phase(self, like: torch.Tensor) -> torch.Tensor:
        T = self._transfer(like)
        mag = T.abs()
        return torch.where(mag > 0, T / torch.where(mag > 0, mag, torch.ones_like(mag)), torch.ones_like(T))

    def U(self, z: torch.Tensor) -> torch.Tensor:
        """U = Q H: Hartley synthesis, then the phase filter Q."""
        self._circular_only("the SVD")
        self._check(z, "z")
        return self._filter(self._hartley(z), self._phase(z))

    def U_T(self, y: torch.Tensor) -> torch.Tensor:
        """U^T = H Q^T, Q^T the conjugate phase filter."""
        self._circular_only("the SVD")
        self._check(y, "y")
        return self._hartley(self._filter(y, self._phase(y).conj()))

    def output_shape(self, input_shape):
        if self.padding != "valid":
            return tuple(input_shape)
        *lead, h, w = input_shape
        kh, kw = self.kernel.shape[-2:]
        return (*lead, h - kh + 1, w - kw + 1)

    def input_shape(self, output_shape):
        if self.padding != "valid":
            return tuple(output_shape)
        *lead, h, w = output_shape
        kh, kw = self.kernel.shape[-2:]
        return (*lead, h + kh - 1, w + kw - 1)

    def naive_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """The blurred image itself (edge-extended back to the image size for 'valid')."""
        check_shape(y, "y", self.channels)
        if self.padding == "valid":
            kh, kw = self.kernel.shape[-2:]
            y = F.pad(y, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
        return y.clamp(0, 1)

    def metadata(self) -> dict:
        return {**super().metadata(), "kernel_shape": list(self.kernel.shape), "padding": self.padding}

    def extra_repr(self) -> str:
        return f"kernel={tuple(self.kernel.shape)}, padding={self.padding!r}"


# --- kernels: (kh, kw) float64 tensors, non-negative, summing to 1 ----------------------------
def check_kernel(kernel, what: str = "kernel") -> torch.Tensor:
    """Validate and normalise a kernel (2-D) or a stack (B, 1, kh, kw); returns float64."""
    try:
        k = (kernel.detach() if isinstance(kernel, torch.Tensor) else torch.as_tensor(np.asarray(kernel, np.float64)))
        k = k.to(torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise UserError(f"{what} must be an array of real numbers, got {type(kernel).__name__}") from None
    if k.ndim not in (2, 4) or (k.ndim == 4 and k.shape[1] != 1):
        raise UserError(f"{what} must have shape (kh, kw), (1, 1, kh, kw) or (B, 1, kh, kw), got {tuple(k.shape)}")
    kh, kw = k.shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise UserError(f"{what} size must be odd (centred), got {kh}x{kw}")
    if not torch.isfinite(k).all():
        raise UserError(f"{what} contains NaN or inf values")
    if (k < 0).any():
        raise UserError(f"{what} has negative values (min {float(k.min()):.3g}); kernels must be non-negative")
    sums = k.sum(dim=(-2, -1), keepdim=True)
    if (sums <= 0).any():
        raise UserError(f"{what} sums to 0; a blur kernel needs positive total weight")
    return k / sums


def _odd_size(size, what: str = "kernel size") -> int:
    size = _positive_int(size, what)
    if size % 2 == 0:
        raise UserError(f"{what} must be odd (centred kernel), got {size}")
    return size


def _nonneg(value, what: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise UserError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def gaussian_kernel(size: int = 61, std: float = 3.0, truncate: float = 4.0) -> torch.Tensor:
    """Isotropic Gaussian, sampled and normalised, zero beyond `truncate` std (or the kernel edge).
    With truncate=4 this equals DPS's `scipy.ndimage.gaussian_filter(centred impulse, std)`."""
    size, std = _odd_size(size), _nonneg(std, "Gaussian std")
    radius = min(int(truncate * std + 0.5), size // 2)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / std) ** 2) if std > 0 else (t == 0).double()
    g = g / g.sum()
    k = torch.zeros(size, size, dtype=torch.float64)
    c = size // 2
    k[c - radius:c + radius + 1, c - radius:c + radius + 1] = torch.outer(g, g)
    return k


def motion_kernel(size: int = 61, intensity: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random camera-shake kernel, after the generator of LeviBorodenko/motionblur used by DPS.

    On a canvas twice the kernel size: a path of random steps (lengths Beta(1, 30)-distributed,
    larger when `intensity` is low; total length up to 0.75 diagonal x (U + U(0, intensity^2))),
    step directions within ±max_angle ~ U(0, intensity·π) that keep their sign except for a
    Beta(2, 20)-probable flip; centred on its centroid, randomly rotated. It is drawn as an
    anti-aliased line of ink (≈ diagonal / 150 px wide, overlaps saturate), softened by a Gaussian
    of std diagonal / 100, reduced ×2 with antialiasing, and normalised. `intensity` in [0, 1].
    All randomness comes from `generator` (this is our own code, not bit-identical to the package)."""
    size = _odd_size(size)
    intensity = _nonneg(intensity, "motion intensity")
    if intensity > 1:
        raise UserError(f"motion intensity must be in [0, 1], got {intensity}")
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    canvas, eps = 2 * size, 0.1
    diag = math.sqrt(2) * canvas

    # The trajectory: step lengths, then directions.
    path_len = max(0.75 * diag * (rng.uniform() + rng.uniform(0, intensity**2)), 1.0)
    steps = []
    while sum(steps) < path_len:
        step = rng.beta(1, 30) * (1 - intensity + eps) * diag
        if step < path_len:
            steps.append(step)
    max_angle = rng.uniform(0, intensity * math.pi)
    flip = rng.beta(2, 20)
    angles = [rng.uniform(-max_angle, max_angle)]
    for _ in range(len(steps) - 1):
        sign = 1.0 if angles[-1] >= 0 else -1.0
        angle = rng.triangular(0, intensity * max_angle, max_angle + eps)
        angles.append(angle * (-sign if rng.uniform() < flip else sign))
    z = np.concatenate([[0], np.cumsum(np.asarray(steps) * np.exp(1j * np.asarray(angles)))])
    z = (z - z.mean()) * np.exp(1j * rng.uniform(0, math.pi)) + (canvas + 1j * canvas) / 2

    # Anti-aliased ink: dense samples along each segment (0.1 px apart), bilinearly splatted with
    # weight = the length they stand for, saturating at 1 where the path crosses itself.
    seg = np.diff(z)
    n = np.maximum((np.abs(seg) / 0.1).astype(int), 1)
    which = np.repeat(np.arange(len(seg)), n)
    frac = (np.arange(len(which)) - np.repeat(np.cumsum(n) - n, n) + 0.5) / n[which]
    p = z[which] + seg[which] * frac
    length = np.abs(seg[which]) / n[which]
    xs, ys = p.real - 0.5, p.imag - 0.5  # pixel centres at integer + 0.5
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    ink = np.zeros(canvas * canvas)
    for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        r, c = y0 + dy, x0 + dx
        ok = (r >= 0) & (r < canvas) & (c >= 0) & (c < canvas)
        ink += np.bincount(r[ok] * canvas + c[ok], (wgt * length)[ok], minlength=canvas * canvas)
    ink = ink.reshape(canvas, canvas)
    width = max(diag / 150, 1.0)
    ink = np.minimum(ink / width, 1.0)

    # Soften with a Gaussian of std diag / 100 (zero outside the canvas), then reduce x2 with
    # antialiasing: both are matrices, k = R G ink G^T R^T.
    std = diag / 100
    d = np.arange(canvas)[None, :] - np.arange(canvas)[:, None]
    gauss = np.where(np.abs(d) <= 4 * std, np.exp(-0.5 * (d / std) ** 2), 0.0)
    gauss /= gauss[canvas // 2].sum()  # the interior row sum: mass leaving the canvas is lost
    reduce = resize_matrix(canvas, 2, "bicubic") @ gauss
    k = np.clip(reduce @ ink @ reduce.T, 0, None)
    if k.sum() <= 0:  # degenerate path off the canvas: no blur
        k = np.zeros((size, size))
        k[size // 2, size // 2] = 1.0
    return torch.from_numpy(k / k.sum())


def load_kernel(source, *, key: str | None = None) -> torch.Tensor:
    """A kernel from an array/tensor, a .npy file, a .npz file (array `key`, default the first) or
    an image file (grey levels). Validated (non-negative, odd size) and normalised to sum 1."""
    name = "kernel"
    if isinstance(source, (str, Path)):
        name = f"kernel {Path(source).name!r}"
        source = read_array(source, "kernel", key)
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    try:
        k = np.squeeze(np.asarray(source, np.float64))  # (1, 1, k, k) or (k, k, 1) -> (k, k)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be an array of real numbers, got {type(source).__name__}") from None
    if k.ndim != 2:
        raise UserError(f"{name} must be 2-D, got shape {k.shape}")
    return check_kernel(k, name)
