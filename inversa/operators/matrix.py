"""A linear operator given by its dense matrix: any small linear map (e.g. another operator's matrix,
from `inversa.pretrained.analytic.dense_matrix`) applied as one batched matmul. Used by the oracle
benchmarks, where thousands of small images go through A thousands of times."""

from __future__ import annotations

import torch

from inversa.operators.base import LinearOperator
from inversa.operators.noise import NoiseModel


class MatrixOperator(LinearOperator):
    """A(x) = M x on flattened images of `shape` (C, H, W); measurements of `y_shape`."""

    def __init__(self, matrix: torch.Tensor, shape, y_shape, noise: NoiseModel | None = None, name: str = "matrix"):
        super().__init__(noise)
        self.register_buffer("M", torch.as_tensor(matrix))
        self.shape, self.y_shape, self.name = tuple(shape), tuple(y_shape), name

    @classmethod
    def of(cls, op: LinearOperator, shape) -> "MatrixOperator":
        """The dense matrix of `op` on images of `shape`, with its noise and name."""
        from inversa.pretrained.analytic import dense_matrix

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
