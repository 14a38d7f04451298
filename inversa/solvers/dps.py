"""DPS — diffusion posterior sampling (Chung et al., ICLR 2023, arXiv:2209.14687).

After the unconditional step, x_{t-1} = x'_{t-1} - zeta_t * grad_{x_t} f(x_t), f = ||y - A(x0hat(x_t))||_2,
with the plain (not squared) norm taken per sample, so image i never depends on its batch-mates
(the reference code takes one norm over the whole batch). One forward + one VJP per step.

Step size. `scale` is the reference zeta for 1000 steps (by task: 0.3 for SR and deblurring, 0.5 for
inpainting); with N respaced steps each step spans stride = T / N training steps, and the stride rule
takes zeta_t = scale * stride (the same total pull as the 1000-step reference, DPS guidance being a
discretised gradient flow in t). Alone, that step overshoots whenever zeta_t ||grad f||² exceeds f: at
few steps, or on small images, the chain oscillates across the measurement and ends farther from the
posterior than the prior itself. step_rule="polyak" (default) caps it by Polyak's step,
  zeta_t = min(scale * stride, (f - f*) / ||grad f||²),   f* = sigma sqrt(m)
(m the measured entries of y, sigma the noise std on the model scale): the first-order step that brings f
to its noise level and no further; free (f and grad f are already there). step_rule="stride" is the
uncapped rule. Keep the default ancestral sampler: with deterministic DDIM (eta = 0) the guided
trajectory collapses (docs/performance.md).

Arguments: scale, rescale_for_steps (False: zeta_t = scale), step_rule ("polyak" | "stride"), and the
shared loop's (sampler, eta, clip_x0, start). Measured figures: docs/posterior.md, docs/quality.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inversa.errors import UserError
from inversa.solvers.base import Context, Solver, StepState
from inversa.solvers.cg import bdot
from inversa.solvers.registry import register

# The reference step sizes (for 1000 ancestral steps on the [-1, 1] scale), by operator name.
STEP_RULES = ("polyak", "stride")
DEFAULT_SCALES = {"super_resolution": 0.3, "blur": 0.3, "inpainting": 0.5, "identity": 0.3}


@dataclass
class DPSContext(Context):
    zeta: float = 0.0  # zeta_t: the stride rule's step size for this call
    base_scale: float = 0.0  # the reference scale used (the task's when `scale` is None)
    f_star: torch.Tensor | None = None  # Polyak's target sigma sqrt(m), per image


@register("dps")
class DPS(Solver):
    """Diffusion posterior sampling: per-sample residual norm, Polyak-capped step; 1 forward + 1 VJP per step."""
    paper_steps = 1000  # the DPS paper's 1000 ancestral steps

    label = "Diffusion posterior sampling"
    summary = "the reference method: plausible, sharp detail on every task; can drift from the photo with few steps"
    cost = (1, 1)
    needs_grad = True
    guided = True  # a gradient-guided step: composed terms (CMI) can sit on it
    context = DPSContext

    def __init__(self, prior, *, scale: float | None = None, rescale_for_steps: bool = True, step_rule: str = "polyak",
                 **kwargs):
        super().__init__(prior, **kwargs)
        if scale is not None and not scale >= 0:
            raise UserError(f"scale must be a non-negative number, got {scale}")
        if step_rule not in STEP_RULES:
            raise UserError(f"step_rule {step_rule!r} is unknown; accepted: {', '.join(STEP_RULES)}")
        self.scale, self.rescale_for_steps, self.step_rule = scale, rescale_for_steps, step_rule

    def prepare(self, problem, timesteps, num_steps=None):
        ctx = super().prepare(problem, timesteps, num_steps)
        ctx.base_scale = self.scale if self.scale is not None else DEFAULT_SCALES.get(problem.operator.name, 0.3)
        ctx.zeta = ctx.base_scale * (ctx.stride if self.rescale_for_steps else 1.0)
        ctx.f_star = problem.sigma * self.measured_count(problem).sqrt()  # Polyak's target, fixed per call
        return ctx

    def run_metadata(self, ctx):
        return {**super().run_metadata(ctx), "scale": ctx.base_scale, "step_size": ctx.zeta}

    def residual_norm(self, s: StepState) -> torch.Tensor:
        """||y - A(x0hat)||_2 per sample, shape (B,)."""
        r = s.problem.y - s.problem.operator.A(s.pred.x0hat)
        return r.flatten(1).norm(dim=1)

    def guidance(self, s: StepState) -> torch.Tensor:
        f = self.residual_norm(s)
        g = s.vjp(f, s.x_t)
        zeta = s.ctx.zeta
        if self.step_rule == "stride":
            return -zeta * g
        # Polyak's step for f = ||y - A x0hat||: the first-order step that takes f to its noise level
        # f* = sigma sqrt(m); the step size is the smaller of it and zeta (no overshoot at few steps).
        polyak = (f.detach() - s.ctx.f_star).clamp(min=0) / bdot(g, g).clamp(min=1e-30)
        return -torch.minimum(polyak, torch.full_like(polyak, zeta)).view(-1, *([1] * (g.ndim - 1))) * g

    @staticmethod
    def measured_count(p) -> torch.Tensor:
        """(B,) entries of each y that carry a measurement (the observed pixels for inpainting)."""
        ones = torch.ones(p.operator.input_shape(tuple(p.y.shape)), dtype=p.y.dtype, device=p.y.device)
        return (p.operator.A(ones) != 0).flatten(1).sum(1).to(p.y.dtype)
