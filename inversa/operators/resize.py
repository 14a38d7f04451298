"""Super-resolution: y = D x with D separable, D x = M_h x M_w^T, so D^T y = M_h^T y M_w exactly.

`bicubic` reproduces MATLAB's `imresize(x, 1/f)` (the DPS/DDRM "Resizer"): Keys cubic with
a = -0.5, widened by the factor f for antialiasing (h(t) = cubic(t / f) / f, support 4 f), weights
normalised per output pixel, half-sample symmetric ("mirror") boundary. Output size is H/f x W/f;
H and W must be multiples of f so that the image shape is recoverable from y (`input_shape`).
`avgpool` averages f x f blocks.
Images are multiplied one at a time: a batched matmul can take another code path and round
differently, and image i's result must not depend on its batch-mates (bit for bit).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from inversa.errors import UserError
from inversa.operators.base import LinearOperator, _positive_int, check_shape
from inversa.operators.noise import NoiseModel


def cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.5 as in MATLAB), support [-2, 2]."""
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


@functools.lru_cache(maxsize=64)
def resize_matrix(in_len: int, factor: int, kind: str = "bicubic") -> np.ndarray:
    """The (ceil(in_len / factor), in_len) float64 matrix of a 1-D downscale by an integer factor.
    bicubic: MATLAB imresize contributions (antialiased), mirror boundary; avgpool: block means."""
    out_len = math.ceil(in_len / factor)
    if kind == "avgpool":
        m = np.zeros((out_len, in_len))
        for i in range(out_len):
            block = slice(i * factor, min((i + 1) * factor, in_len))
            m[i, block] = 1.0 / (block.stop - block.start)
        return m
    width = 4.0 * factor  # cubic support 4, stretched by the factor (antialiasing)
    u = np.arange(1, out_len + 1) * factor + 0.5 * (1 - factor)  # 1-based centre in input coords
    left = np.floor(u - width / 2)
    taps = left[:, None] + np.arange(int(math.ceil(width)) + 2)[None, :]  # 1-based input indices
    w = cubic((u[:, None] - taps) / factor) / factor
    w /= w.sum(axis=1, keepdims=True)
    j = np.mod(taps - 1, 2 * in_len).astype(np.int64)  # MATLAB: aux = [1:n, n:-1:1]
    j = np.where(j < in_len, j, 2 * in_len - 1 - j)
    m = np.zeros((out_len, in_len))
    np.add.at(m, (np.repeat(np.arange(out_len), taps.shape[1]), j.ravel()), w.ravel())
    return m


class SuperResolution(LinearOperator):
    """Downscale by an integer `factor`: kind "bicubic" (MATLAB-style, antialiased) or "avgpool"."""

    name = "super_resolution"
    KINDS = ("bicubic", "avgpool")

    def __init__(self, factor: int = 4, kind: str = "bicubic", noise: NoiseModel | None = None,
                 *, channels: int | None = None):
        super().__init__(noise, channels)
        self.factor = _positive_int(factor, "super-resolution factor")
        if kind not in self.KINDS:
            raise UserError(f"super-resolution kind {kind!r} is unknown; accepted: {', '.join(self.KINDS)}")
        self.kind = kind
        self._cache: dict = {}  # (length, dtype, device) -> matrix; derived data, not state

    def _matrix(self, n: int, like: torch.Tensor) -> torch.Tensor:
        key = (n, like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = torch.from_numpy(resize_matrix(n, self.factor, self.kind)).to(like.device, like.dtype)
        return self._cache[key]

    def _check_size(self, h: int, w: int) -> None:
        if h % self.factor or w % self.factor:
            raise UserError(f"image size {h}x{w} is not a multiple of the super-resolution factor "
                            f"{self.factor}; crop it to {h - h % self.factor}x{w - w % self.factor}")

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, "x", self.channels)
        self._check_size(*x.shape[-2:])
        mh, mw = self._matrix(x.shape[-2], x), self._matrix(x.shape[-1], x)
        return torch.stack([mh @ xi @ mw.T for xi in x])  # per image: batched matmuls may round differently

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        check_shape(y, "y", self.channels)
        h, w = (n * self.factor for n in y.shape[-2:])
        mh, mw = self._matrix(h, y), self._matrix(w, y)
        return torch.stack([mh.T @ yi @ mw for yi in y])

    def _eig(self, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenpairs of the 1-D gram M^T M (n x n), computed in float64 once per size."""
        key = ("eig", n, like.dtype, like.device)
        if key not in self._cache:
            m = torch.from_numpy(resize_matrix(n, self.factor, self.kind))
            lam, u = torch.linalg.eigh(m.T @ m)
            self._cache[key] = (lam.clamp(min=0).to(like.device, like.dtype), u.to(like.device, like.dtype))
        return self._cache[key]

    def gram_solve(self, rhs: torch.Tensor, c: float) -> torch.Tensor:
        """A^T A = (M_h^T M_h) ⊗ (M_w^T M_w): in the product of the two 1-D eigenbases
        (I + c A^T A)^{-1} is a division by 1 + c λ_i μ_j. Exact, no CG."""
        check_shape(rhs, "rhs", self.channels)
        (lh, uh), (lw, uw) = self._eig(rhs.shape[-2], rhs), self._eig(rhs.shape[-1], rhs)
        gain = 1 + c * lh[:, None] * lw[None, :]
        return torch.stack([uh @ ((uh.T @ r @ uw) / gain) @ uw.T for r in rhs])

    def output_shape(self, input_shape):
        *lead, h, w = input_shape
        self._check_size(h, w)
        return (*lead, h // self.factor, w // self.factor)

    def input_shape(self, output_shape):
        *lead, h, w = output_shape
        return (*lead, h * self.factor, w * self.factor)

    def naive_inverse(self, y: torch.Tensor) -> torch.Tensor:
        check_shape(y, "y", self.channels)
        return F.interpolate(y, scale_factor=self.factor, mode="bicubic", align_corners=False).clamp(0, 1)

    def metadata(self) -> dict:
        return {**super().metadata(), "factor": self.factor, "kind": self.kind}

    def extra_repr(self) -> str:
        return f"factor={self.factor}, kind={self.kind!r}"
