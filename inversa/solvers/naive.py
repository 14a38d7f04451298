"""The operator's simple inverse: the baseline every solver must beat."""

from __future__ import annotations

import torch

from inversa.solvers.base import SolverOutput
from inversa.solvers.registry import register


@register("naive")
class Naive:
    """The operator's simple inverse (bicubic upsampling, the blurred image, an interpolated fill):
    the baseline every solver must beat. Needs no prior."""

    label = "Simple inverse (no prior)"
    summary = ("bicubic upscaling, the blurred photo as is, or a smooth fill: instant, the baseline every method "
               "must beat")
    cost = (0, 0)
    cost_up_to = False
    needs_prior = False

    def __init__(self, prior=None):
        self.prior = prior

    def params(self) -> dict:
        return {}

    def __call__(self, y, operator, *, generator=None, num_steps=0, callback=None, progress=False, **_):
        with torch.no_grad():
            x = operator.naive_inverse(y).clamp(0, 1)
        return SolverOutput(x=x, nfe=0, vjp=0, metadata={"solver": "naive", "nfe": 0, "vjp": 0})
