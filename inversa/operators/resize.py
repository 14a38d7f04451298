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
from inversa.operators.base import LinearOperator, _positive_int, check_shape, default_rcond
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

    # --- pseudo-inverse and SVD: D = M_h ⊗ M_w, so both come from the two 1-D SVDs ----------------
    def _svd(self, n: int, like: torch.Tensor):
        """Full SVD of the 1-D matrix M (out x n) = U diag(S) Vt (U out x out, Vt n x n), in float64
        once per size, cached in `like`'s dtype and device."""
        key = ("svd", n, like.dtype, like.device)
        if key not in self._cache:
            u, sv, vt = torch.linalg.svd(torch.from_numpy(resize_matrix(n, self.factor, self.kind)), full_matrices=True)
            self._cache[key] = tuple(a.to(like.device, like.dtype) for a in (u, sv, vt))
        return self._cache[key]

    def _pinv(self, n: int, like: torch.Tensor, rcond: float) -> torch.Tensor:
        """M^† (n x out) from the SVD, singular values below rcond * max dropped (computed in float64)."""
        key = ("pinv", n, like.dtype, like.device, rcond)
        if key not in self._cache:
            u, sv, vt = torch.linalg.svd(torch.from_numpy(resize_matrix(n, self.factor, self.kind)), full_matrices=False)
            inv = torch.where(sv > rcond * sv.max(), 1 / sv, torch.zeros_like(sv))
            self._cache[key] = ((vt.T * inv) @ u.T).to(like.device, like.dtype)
        return self._cache[key]

    def A_dagger(self, y: torch.Tensor, *, rcond: float | None = None, **_) -> torch.Tensor:
        """D^† y = M_h^† Y (M_w^†)^T (the pseudo-inverse of a Kronecker product is the product of
        the pseudo-inverses). The 1-D matrices have full row rank; `rcond` (default
        `default_rcond`) only guards against rounding-level singular values."""
        check_shape(y, "y", self.channels)
        rcond = default_rcond(y.dtype) if rcond is None else float(rcond)
        h, w = (n * self.factor for n in y.shape[-2:])
        ph, pw = self._pinv(h, y, rcond), self._pinv(w, y, rcond)
        return torch.stack([ph @ yi @ pw.T for yi in y])

    has_svd = True

    def singulars(self, like: torch.Tensor) -> torch.Tensor:
        """(1, 1, H, W): s_h[i] s_w[j] in the top-left (H/f) x (W/f) block, 0 elsewhere."""
        h, w = like.shape[-2:]
        self._check_size(h, w)
        sh, sw = self._svd(h, like)[1], self._svd(w, like)[1]
        s = like.new_zeros(1, 1, h, w)
        s[..., :len(sh), :len(sw)] = sh[:, None] * sw[None, :]
        return s

    def V_T(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, "x", self.channels)
        self._check_size(*x.shape[-2:])
        vh, vw = self._svd(x.shape[-2], x)[2], self._svd(x.shape[-1], x)[2]
        return torch.stack([vh @ xi @ vw.T for xi in x])

    def V(self, z: torch.Tensor) -> torch.Tensor:
        check_shape(z, "z", self.channels)
        vh, vw = self._svd(z.shape[-2], z)[2], self._svd(z.shape[-1], z)[2]
        return torch.stack([vh.T @ zi @ vw for zi in z])

    def U_T(self, y: torch.Tensor) -> torch.Tensor:
        """Measurement -> image-shaped coefficients (top-left block; zeros elsewhere)."""
        check_shape(y, "y", self.channels)
        (oh, ow), (h, w) = y.shape[-2:], (n * self.factor for n in y.shape[-2:])
        uh, uw = self._svd(h, y)[0], self._svd(w, y)[0]
        z = y.new_zeros(*y.shape[:-2], h, w)
        z[..., :oh, :ow] = torch.stack([uh.T @ yi @ uw for yi in y])
        return z

    def U(self, z: torch.Tensor) -> torch.Tensor:
        check_shape(z, "z", self.channels)
        h, w = z.shape[-2:]
        uh, uw = self._svd(h, z)[0], self._svd(w, z)[0]
        oh, ow = uh.shape[0], uw.shape[0]
        return torch.stack([uh @ zi[..., :oh, :ow] @ uw.T for zi in z])

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
