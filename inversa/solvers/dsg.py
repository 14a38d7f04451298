"""DSG — Guidance with Spherical Gaussian Constraint for Conditional Diffusion (Yang, Ding, Cai, Yu,
Wang & Shi, ICML 2024, arXiv:2402.03201).

In high dimension a Gaussian step x_{t-1} ~ N(mu_t, s_t² I) lies, with overwhelming probability, on
the sphere of radius r = sqrt(n) s_t around mu_t (n the number of pixels). DSG keeps the guided step
on that sphere instead of adding a gradient of free length (DPS), so it can take large guidance
steps without leaving the region the network was trained on. Each step:
    d_sample = s_t z                         (the unconditional step's own noise, z ~ N(0, I))
    d_star   = -r g / ||g||,   g = grad_{x_t} ||y - A x0hat(x_t)||   (the steepest-descent point on the sphere)
    d        = d_sample + g_r (d_star - d_sample)
    x_{t-1}  = mu_t + r d / ||d||
with mu_t, s_t the shared loop's reverse step (ancestral DDPM by default, or DDIM with eta) and g_r
the guidance rate. Norms and the residual are per image (the official code takes one residual norm
over the batch), so image i never depends on its batch-mates. At the last step s_t = 0 and the
step is mu_t. One forward per step and one VJP per guided step (none at the last).

Symbols: `rate` is the paper's guidance rate g_r; `interval` guides every `interval`-th step (the
others are plain steps), as the official code's `interval`. Defaults: g_r = 0.2, interval 1, 100
steps: the official linear-inverse-problem script (LingxiaoYang2023/DSG2024 run_DSG.sh:
`guidance_scales=(0.2)`, `intervals=(1)`, `DDIM=100`); pass num_steps=100.

Composed terms (CMI) add to the descent direction before it is normalised: with `terms`,
d_star = r h / ||h||, h = -g + (the term's contribution), so the term changes the direction of the
step on the sphere, never its length.
"""

from __future__ import annotations

import torch

from inversa.errors import UserError
from inversa.solvers.base import Solver, StepState, randn
from inversa.solvers.cg import _bview, bdot
from inversa.solvers.registry import register

DEFAULT_RATE = 0.2
EPS = 1e-12  # guards the normalisations when a direction vanishes


def _unit(v: torch.Tensor) -> torch.Tensor:
    """v / ||v|| per image."""
    return v / _bview(bdot(v, v).sqrt().clamp(min=EPS), v)


@register("dsg")
class DSG(Solver):
    """Spherical Gaussian constraint: the guided step keeps the length of the unconditional step's noise."""
    paper_steps = 100  # run_DSG.sh DDIM=100

    label = "DSG (spherical Gaussian constraint)"
    summary = ("a guided step that stays on the sphere where the unconditional step lands: large, stable "
               "guidance at the cost of DPS")
    cost = (1, 1)
    cost_up_to = True  # the last step (s_t = 0) and, with interval > 1, unguided steps take no VJP
    needs_grad = True
    guided = True  # a gradient-guided step: composed terms (CMI) can sit on it

    def __init__(self, prior, *, rate: float = DEFAULT_RATE, interval: int = 1, **kwargs):
        super().__init__(prior, **kwargs)
        if not 0 <= rate <= 1:
            raise UserError(f"rate must be in [0, 1] (the guidance rate g_r), got {rate}")
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise UserError(f"interval must be a whole number >= 1, got {interval!r}")
        self.rate, self.interval = float(rate), interval

    def guidance(self, s: StepState) -> torch.Tensor:
        """-grad_{x_t} ||y - A x0hat||, per image: the descent direction (its length is set by the sphere)."""
        r = s.problem.y - s.problem.operator.A(s.pred.x0hat)
        return -s.vjp(r.flatten(1).norm(dim=1), s.x_t)

    def step(self, s: StepState) -> torch.Tensor:
        mean, var = self.step_moments(s)
        if s.last:
            return mean
        var = torch.as_tensor(var, dtype=mean.dtype, device=mean.device).expand_as(mean)
        d_sample = var.sqrt() * randn(mean.shape, s.problem.generators, device=mean.device, dtype=mean.dtype)
        if s.problem.y is None or s.index % self.interval:
            return (mean + d_sample).detach()
        radius = _bview(bdot(var, torch.ones_like(var)).sqrt(), mean)  # sqrt(n) s_t for a scalar s_t
        d_star = radius * _unit(self.correction(s))
        d = d_sample + self.rate * (d_star - d_sample)
        return (mean + radius * _unit(d)).detach()
