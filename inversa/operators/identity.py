"""Denoising: A = I, y = x + noise."""

from __future__ import annotations

import torch

from inversa.operators.base import LinearOperator, check_shape
from inversa.operators.noise import NoiseModel


class Identity(LinearOperator):
    """A(x) = x; self-adjoint; A^T A = I."""

    name = "identity"

    def __init__(self, noise: NoiseModel | None = None, *, channels: int | None = None):
        super().__init__(noise, channels)
        self.register_buffer("_one", torch.ones(1, 1, 1, 1), persistent=False)  # follows .to()

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, "x", self.channels)
        return x

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        check_shape(y, "y", self.channels)
        return y

    def gram_diagonal(self) -> torch.Tensor:
        return self._one

    def A_dagger(self, y: torch.Tensor, **_) -> torch.Tensor:
        check_shape(y, "y", self.channels)
        return y

    # SVD: U = V = I, every singular value 1.
    has_svd = True

    def singulars(self, like: torch.Tensor) -> torch.Tensor:
        return self._one.to(like.dtype)

    def V_T(self, x):
        return x

    V = U = U_T = V_T
