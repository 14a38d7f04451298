"""The operator contract: y = A(x) + noise, with an exact adjoint.

Every degradation is a `LinearOperator` (a `torch.nn.Module`, so parameters move with `.to()` and
round-trip through `state_dict`). Parameters (mask, kernel) are buffers fixed at construction.
Images are float tensors in [0, 1], NCHW, any batch size.
"""

from __future__ import annotations

import torch

from inversa.errors import UserError
from inversa.operators.noise import GaussianNoise, NoiseModel, as_generators


class LinearOperator(torch.nn.Module):
    """A linear forward model `A` with its exact adjoint and an attached noise model."""

    name: str = "linear"

    def __init__(self, noise: NoiseModel | None = None):
        super().__init__()
        self.noise = noise if noise is not None else GaussianNoise(0.0)

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
        check_image(x, "x")
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
        return {"operator": self.name, **self.noise.metadata()}


def check_image(x, what: str = "image", channels: int | None = None) -> None:
    """One-line errors for tensors that are not NCHW float images in (about) [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise UserError(f"{what} must be NCHW (4 dimensions), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UserError(f"{what} must be a floating-point tensor in [0, 1], got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise UserError(f"{what} has {x.shape[1]} channels, expected {channels}")
    if not torch.isfinite(x).all():
        raise UserError(f"{what} contains NaN or inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -0.5 or hi > 1.5:
        raise UserError(f"{what} values span [{lo:.3g}, {hi:.3g}]; images must be in [0, 1]")
