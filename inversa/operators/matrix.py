"""A linear operator given by its dense matrix: any small linear map (e.g. another operator's matrix,
from `dense_matrix`) applied as one batched matmul, with its SVD and
pseudo-inverse from `torch.linalg` (computed once, on first use). Used by the oracle benchmarks, where
thousands of small images go through A thousands of times."""

from __future__ import annotations

import math

import torch

from inversa.operators.base import LinearOperator
from inversa.operators.noise import NoiseModel


def dense_matrix(fn, in_shape: tuple[int, ...], dtype=torch.float64) -> torch.Tensor:
    """The matrix of a linear map `fn` on tensors of `in_shape` (batch 1), by probing the basis."""
    n = math.prod(in_shape)
    basis = torch.eye(n, dtype=dtype).reshape(n, *in_shape)
    cols = torch.cat([fn(basis[i : i + 1]).reshape(1, -1) for i in range(n)])
    return cols.T  # (out_dim, n)


class MatrixOperator(LinearOperator):
    """A(x) = M x on flattened images of `shape` (C, H, W); measurements of `y_shape`. The SVD layout
    follows LinearOperator's: coefficient k of V^T x at flat position k of an image-shaped tensor."""

    def __init__(self, matrix: torch.Tensor, shape, y_shape, noise: NoiseModel | None = None, name: str = "matrix"):
        super().__init__(noise)
        self.register_buffer("M", torch.as_tensor(matrix))
        self.shape, self.y_shape, self.name = tuple(shape), tuple(y_shape), name
        self._svd = None

    @classmethod
    def of(cls, op: LinearOperator, shape) -> "MatrixOperator":
        """The dense matrix of `op` on images of `shape`, with its noise and name."""
        y_shape = tuple(op.output_shape((1, *shape)))[1:]
        return cls(dense_matrix(op.A, tuple(shape)), shape, y_shape, op.noise, op.name)

    def A(self, x):
        return (x.flatten(1) @ self.M.T.to(x)).reshape(x.shape[0], *self.y_shape)

    def A_adjoint(self, y):
        return (y.flatten(1) @ self.M.to(y)).reshape(y.shape[0], *self.shape)

    def output_shape(self, input_shape):
        return (*input_shape[:-3], *self.y_shape)

    def input_shape(self, output_shape):
        return (*output_shape[:-3], *self.shape)

    # --- SVD and pseudo-inverse -----------------------------------------------------------
    @property
    def has_svd(self) -> bool:
        return True

    def svd(self):
        """(U (m, m'), singular values as an image (1, C, H, W), V^T (n, n), m' = min(m, n))."""
        if self._svd is None:
            u, sv, vt = torch.linalg.svd(self.M.double(), full_matrices=True)
            s = torch.zeros(self.M.shape[1], dtype=torch.float64)
            s[: len(sv)] = sv
            self._svd = (u[:, : len(sv)], s.reshape(1, *self.shape), vt, torch.linalg.pinv(self.M.double()))
        return self._svd

    def singulars(self, like):
        return self.svd()[1].to(like)

    def V_T(self, x):
        return (x.flatten(1) @ self.svd()[2].T.to(x)).reshape(x.shape)

    def V(self, z):
        return (z.flatten(1) @ self.svd()[2].to(z)).reshape(z.shape)

    def U_T(self, y):
        u = self.svd()[0]
        z = torch.zeros(y.shape[0], self.M.shape[1], dtype=y.dtype, device=y.device)
        z[:, : u.shape[1]] = y.flatten(1) @ u.to(y)
        return z.reshape(y.shape[0], *self.shape)

    def U(self, z):
        u = self.svd()[0]
        return (z.flatten(1)[:, : u.shape[1]] @ u.T.to(z)).reshape(z.shape[0], *self.y_shape)

    def A_dagger(self, y, **_):
        return (y.flatten(1) @ self.svd()[3].T.to(y)).reshape(y.shape[0], *self.shape)
