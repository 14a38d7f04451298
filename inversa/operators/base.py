"""The operator contract: y = A(x) + noise, with an exact adjoint.

Every degradation is a `LinearOperator` (a `torch.nn.Module`, so parameters move with `.to()` and
round-trip through `state_dict`). Parameters (mask, kernel) are buffers fixed at construction.
Images are float tensors in [0, 1], NCHW, any batch size.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np
import torch

from inversa.errors import UserError
from inversa.operators.noise import GaussianNoise, NoiseModel, as_generators


class LinearOperator(torch.nn.Module):
    """A linear forward model `A` with its exact adjoint and an attached noise model."""

    name: str = "linear"

    def __init__(self, noise: NoiseModel | None = None, channels: int | None = None):
        super().__init__()
        if noise is not None and not isinstance(noise, NoiseModel):
            raise UserError(f"noise must be a NoiseModel (e.g. GaussianNoise(0.025)) or None, "
                            f"got {type(noise).__name__}")
        self.noise = noise if noise is not None else GaussianNoise(0.0)
        # Optional channel count that A/measure insist on (None: any number of channels).
        self.channels = None if channels is None else _positive_int(channels, "channels")

    # --- the linear map -------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def AtA(self, x: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint(self.A(x))

    def gram_diagonal(self) -> torch.Tensor | None:
        """diag(A^T A) broadcastable to the image when A^T A is diagonal (inpainting), else None."""
        return None

    def gram_solve(self, rhs: torch.Tensor, c: float) -> torch.Tensor | None:
        """Exact w = (I + c A^T A)^{-1} rhs (scalar c >= 0) when the operator knows a closed form
        (diagonal A^T A here; eigenbases in SR and circular blur), else None: callers then use CG."""
        d = self.gram_diagonal()
        return None if d is None else rhs / (1 + c * d.to(rhs))

    # --- pseudo-inverse and SVD ----------------------------------------------------------
    def A_dagger(self, y: torch.Tensor, *, rcond: float | None = None, tol: float | None = None,
                 max_iter: int = 200) -> torch.Tensor:
        """The pseudo-inverse A^† y: the minimum-norm least-squares solution of A x = y.

        Operators with a closed form override this (inpainting, identity, super-resolution,
        circular blur); here, the generic fallback: CG on the normal equations A^T A x = A^T y from
        x = 0. Its iterates stay in the range of A^T (the Krylov space of A^T y), so the limit is
        the minimum-norm solution, i.e. A^† y. `tol` (relative residual of the normal equations,
        default 1e-6 in float32, 1e-12 in float64) and `max_iter` bound the work; `rcond` is for
        the closed forms (singular values below rcond * max are dropped) and ignored here."""
        check_shape(y, "y", self.channels)
        if tol is None:
            tol = 1e-12 if y.dtype == torch.float64 else 1e-6
        x, _ = _cg(self.AtA, self.A_adjoint(y), tol=tol, max_iter=max_iter)
        return x

    SVD_OPERATORS = "identity, inpainting, super-resolution (bicubic, avgpool) and blur with padding='circular'"

    @property
    def has_svd(self) -> bool:
        """Whether `singulars`, `V_T`, `V`, `U_T`, `U` (A = U Σ V^T, closed form) are available."""
        return False

    def check_svd(self, method: str = "this solver") -> None:
        """One-line UserError when the operator has no closed-form SVD."""
        if not self.has_svd:
            raise UserError(f"{method} needs an operator with a closed-form SVD; {self.describe()} has none. "
                            f"Operators that work: {self.SVD_OPERATORS}")

    def describe(self) -> str:
        return f"the {self.name} operator"

    # The SVD A = U Σ V^T in an image-shaped layout: spectral coefficients of an image x are
    # V_T(x), a tensor of x's shape; `singulars()` is broadcastable to it (0 where A sees nothing);
    # U_T(y) maps a measurement into the same layout (0 where the singular value is 0) and U(z)
    # maps back. Then A x = U(s * V_T(x)), A^T y = V(s * U_T(y)), V orthogonal, and U orthogonal on
    # the coefficients with s > 0.
    def singulars(self, like: torch.Tensor) -> torch.Tensor:
        """Singular values, broadcastable to `V_T(x)` for x shaped like `like` (an image)."""
        self.check_svd()
        raise NotImplementedError

    def V_T(self, x: torch.Tensor) -> torch.Tensor:
        self.check_svd()
        raise NotImplementedError

    def V(self, z: torch.Tensor) -> torch.Tensor:
        self.check_svd()
        raise NotImplementedError

    def U_T(self, y: torch.Tensor) -> torch.Tensor:
        self.check_svd()
        raise NotImplementedError

    def U(self, z: torch.Tensor) -> torch.Tensor:
        self.check_svd()
        raise NotImplementedError

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def input_shape(self, output_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The image shape that produces a measurement of `output_shape`."""
        return tuple(output_shape)

    # --- measurement ----------------------------------------------------------------------
    @property
    def sigma(self) -> float:
        """Gaussian noise std in [0, 1] image units (0 for noiseless or non-Gaussian noise)."""
        return float(getattr(self.noise, "sigma", 0.0))

    def measure(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """`A(x) + n`. `generator`: None, one `torch.Generator`, or a list with one per image."""
        check_image(x, "x", self.channels)
        y = self.A(x)
        gens = as_generators(generator, x.shape[0])
        return self.restrict_noise(self.noise(y, gens))

    def restrict_noise(self, y: torch.Tensor) -> torch.Tensor:
        """Hook: operators that discard pixels (inpainting) zero the noise there."""
        return y

    def naive_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """A simple image-shaped estimate from `y` (a baseline, not a solver)."""
        return self.A_adjoint(y).clamp(0, 1)

    def metadata(self) -> dict:
        """JSON-serialisable description: name, parameters, noise on both scales."""
        meta = {"operator": self.name, **self.noise.metadata()}
        if self.channels is not None:
            meta["channels"] = self.channels
        meta.update(getattr(self, "preset", None) or {})  # set by make_preset: name, seed, index
        return meta


def default_rcond(dtype: torch.dtype) -> float:
    """Relative cut-off of the closed-form pseudo-inverses: singular values below rcond * max are
    treated as 0 (1000 machine epsilons: 1.2e-4 in float32, 2.2e-13 in float64)."""
    return 1000 * torch.finfo(dtype).eps


def _bdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image inner products, each image reduced alone (bit-identical at any batch size). The
    rows are copied to fresh (aligned) memory first: a vectorised dot rounds differently at
    another alignment, and image i's offset in the batch depends on the batch."""
    return torch.stack([torch.dot(a[i].flatten().clone(), b[i].flatten().clone()) for i in range(a.shape[0])])


def _cg(matvec, b: torch.Tensor, *, tol: float, max_iter: int):
    """Batched CG for A^T A x = b, each image its own system and stopping rule.
    Local copy, not inversa.solvers.cg: importing solvers from operators would be an import cycle."""
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), _bdot(r, r)
    thresh = tol * rr.sqrt()
    view = (-1, *[1] * (b.ndim - 1))
    for _ in range(max_iter):
        active = rr.sqrt() > thresh
        if not bool(active.any()):
            break
        Mp = matvec(p)
        pMp = _bdot(p, Mp)
        alpha = torch.where(active & (pMp > 0), rr / torch.where(pMp > 0, pMp, torch.ones_like(pMp)), torch.zeros_like(rr))
        x = x + alpha.view(view) * p
        r = r - alpha.view(view) * Mp
        rr_new = _bdot(r, r)
        beta = torch.where(active, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = torch.where(active.view(view), r + beta.view(view) * p, p)
        rr = rr_new
    return x, rr.sqrt() / torch.where(thresh > 0, thresh / tol, torch.ones_like(thresh))


def check_shape(x, what: str = "image", channels: int | None = None) -> None:
    """The cheap part of `check_image` (type, NCHW, float, channels): what `A` checks on each call."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise UserError(f"{what} must be NCHW (4 dimensions), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UserError(f"{what} must be a floating-point tensor in [0, 1], got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise UserError(f"{what} has {x.shape[1]} channels, expected {channels}")


def check_image(x, what: str = "image", channels: int | None = None) -> None:
    """One-line errors for tensors that are not NCHW float images in (about) [0, 1]."""
    check_shape(x, what, channels)
    x = x.detach()
    if not torch.isfinite(x).all():
        raise UserError(f"{what} contains NaN or inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -0.5 or hi > 1.5:
        raise UserError(f"{what} values span [{lo:.3g}, {hi:.3g}]; images must be in [0, 1]")


def _positive_int(value, what: str, minimum: int = 1) -> int:
    """`value` as an int >= minimum (numpy ints and integral floats accepted), else a UserError."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
          and value == int(value) and value >= minimum)
    if not ok:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise UserError(f"{what} must be {kind}, got {value!r}")
    return int(value)


def read_array(path, what: str, key: str | None = None) -> np.ndarray:
    """A 2-D+ array from .npy, .npz (array `key`, default the first) or an image file (grey levels
    0-255); unreadable or missing files raise a UserError naming the file."""
    from inversa.imageio import IMAGE_SUFFIXES

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", *IMAGE_SUFFIXES):
        raise UserError(f"{what} file {path.name!r}: accepted formats are .npy, .npz and {', '.join(IMAGE_SUFFIXES)}")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise UserError(f"{path.name} holds no arrays")
                if key is not None and key not in z.files:
                    raise UserError(f"{path.name} has no array {key!r}; it holds {', '.join(z.files)}")
                return z[key if key is not None else z.files[0]]
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.float64)
    except UserError:
        raise
    except Exception as exc:  # corrupt file, wrong format behind the suffix, pickled object...
        raise UserError(f"{what} file {path.name!r} is not readable ({type(exc).__name__}); "
                        f"accepted: .npy, .npz or an image") from None
