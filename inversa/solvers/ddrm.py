"""DDRM — Denoising Diffusion Restoration Models (Kawar, Elad, Ermon & Song, NeurIPS 2022,
arXiv:2201.11793).

In the spectral space of A = U Σ V^T (the operator's closed-form SVD, `operator.V_T` etc.) every
coordinate i of x̄ = V^T x is updated on its own. With the VE noise level of the next step
σ = sqrt((1 - ab_{t-1}) / ab_{t-1}) (0 at the last step), the measurement's noise σ_y (model
scale), s_i the singular value, ȳ_i = (U^T y)_i / s_i, x̄0 = V^T x0hat and ē = V^T eps:
- s_i = 0 (not observed):    x̄_i = x̄0_i + σ (sqrt(1-η²) ē_i + η z_i)
- s_i σ < σ_y (y noisier):   x̄_i = x̄0_i + σ (sqrt(1-η²) s_i (ȳ_i - x̄0_i) / σ_y + η z_i)
- s_i σ > σ_y (y cleaner):   x̄_i = η_b ȳ_i + (1-η_b) x̄0_i + sqrt(σ² - η_b² σ_y² / s_i²) z_i
and x_{t-1} = sqrt(ab_{t-1}) V x̄ (paper eqs. 7-8; the cases as in the official code,
bahjat-kawar/ddrm functions/denoising.py, which reads the "s_i σ = σ_y" boundary and the last
noiseless step as the first case: the last step returns x0hat). One network call per step, no VJP.

Arguments: `eta` (η, default 0.85) and `eta_b` (η_b, default 1.0): the paper's published setting
("η = 0.85, η_b = 1", sec. 5, and the official runner's defaults), with 20 steps (the paper's
"DDRM (20 NFEs)"; pass num_steps=20). `s_min`: singular values below it count as 0 (the official
code's general-H class zeroes those below 1e-3; default 1e-3): without it a noiseless blur would
divide by rounding-level singular values. `clip_x0` defaults to False: the official code does not
clip x0hat. `s_noise` (default 1.0, the paper) multiplies every step's fresh Gaussian draw z, as the
"S_noise" of Karras et al. (NeurIPS 2022, Algorithm 2): below 1 the chain ends nearer the posterior
mean, i.e. smoother restorations, higher PSNR and higher LPIPS (deepinv 0.5.0's DDRM draws its noise
at 1/sqrt(2) of DDRM's). The loop's `sampler` does not apply (own step): a "ddpm"/"ddim" passed by a
generic front end is recorded as `sampler_ignored` in the metadata.

Operators: those with a closed-form SVD (inpainting, identity, super-resolution, circular blur);
others are refused in one line.

Deviations: (1) timesteps come from the shared loop ("leading" spacing of the diffusers scheduler)
rather than the official `range(0, T, T // steps)`; both are uniform strides, they differ in the
offset. (2) eps of the first case is recomputed from x0hat (identical without clipping).
(3) One Gaussian draw per step serves all three cases (the official code draws per case; same
distribution). (4) The DDRM paper's Theorem (an optimal DDPM denoiser is optimal for the DDRM
objective at η_b = 2σ²/(σ² + σ_y²/s²), η = 1) concerns the training objective; DDRM is not an
exact posterior sampler on Gaussian priors, and tests/solvers/test_ddrm.py measures by how much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from inversa.errors import UserError
from inversa.solvers.base import Context, Solver, StepState, randn
from inversa.solvers.registry import register


def check_fraction(value, what: str, upper: float = 1.0) -> float:
    """`value` as a float when it is a number in [0, upper]; else one UserError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= upper:
        raise UserError(f"{what} must be a number in [0, {upper:g}], got {value!r}")
    return float(value)


def check_nonneg(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UserError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def own_step_sampler(sampler, method: str):
    """Methods with their own step ignore the loop's sampler; a generic front end (the web UI sends
    its sampler field to every solver that lists one) may still pass "ddpm"/"ddim", which is
    recorded in the metadata as ignored. Anything else is an error."""
    from inversa.solvers.base import SAMPLERS

    if sampler is not None and sampler not in SAMPLERS:
        raise UserError(f"sampler {sampler!r} is not supported; accepted: {', '.join(SAMPLERS)} "
                        f"(ignored by {method}, which has its own step)")
    return sampler


@dataclass
class SpectralContext(Context):
    """Per call: the singular values and U^T y, which do not change from step to step."""

    spectral: tuple | None = None  # (s, safe divisor, U^T y), made at the first step


def spectral_data(s: StepState, s_min: float, x0: torch.Tensor):
    """(s, safe, U^T y) of the call: the singular values in the image-shaped layout (below s_min set to 0)
    expanded to x0's shape, a safe divisor (1 where s = 0) and U^T y; computed at the call's first step
    only (a step alone, without a context, computes them)."""
    cached = getattr(s.ctx, "spectral", None)
    if cached is None:
        op = s.problem.operator
        sv = op.singulars(x0).to(x0.dtype)
        sv = (torch.where(sv >= s_min, sv, torch.zeros_like(sv)) if s_min > 0 else sv).expand_as(x0)
        cached = (sv, torch.where(sv > 0, sv, torch.ones_like(sv)), op.U_T(s.problem.y))
        if s.ctx is not None:
            s.ctx.spectral = cached
    return cached


@register("ddrm")
class DDRM(Solver):
    """Denoising Diffusion Restoration Models. Parameters: `eta` (η), `eta_b` (η_b), `s_min`, `s_noise`."""
    paper_steps = 20  # the paper's DDRM (20 NFEs)

    label = "DDRM (denoising diffusion restoration)"
    summary = "fast and steady on super-resolution, inpainting and circular blur (needs an operator's SVD)"
    cost = (1, 0)
    needs_svd = True
    needs_grad = False
    context = SpectralContext

    def __init__(self, prior, *, eta: float = 0.85, eta_b: float = 1.0, s_min: float = 1e-3, clip_x0: bool = False,
                 s_noise: float = 1.0, **kwargs):
        self.requested_sampler = own_step_sampler(kwargs.pop("sampler", None), "DDRM")
        eta = check_fraction(eta, "eta")
        super().__init__(prior, sampler="ddim", eta=eta, clip_x0=clip_x0, **kwargs)
        self.eta_b = check_fraction(eta_b, "eta_b")
        self.s_min = check_nonneg(s_min, "s_min")
        self.s_noise = check_fraction(s_noise, "s_noise (1: the paper's noise)", upper=2.0)

    def run_metadata(self, ctx):
        return {**super().run_metadata(ctx), "sampler_ignored": self.requested_sampler}

    def step(self, s: StepState) -> torch.Tensor:
        op, p = s.problem.operator, s.problem
        x_t, x0 = s.x_t, s.pred.x0hat
        a, ap = self.prior.abar(s.t), self.prior.abar(s.t_prev)
        eps = (x_t - a**0.5 * x0) / (1 - a) ** 0.5
        sig = ((1 - ap) / ap) ** 0.5
        sy, eta, eta_b = p.sigma, self.eta, self.eta_b
        sv, safe, uy = spectral_data(s, self.s_min, x0)
        xb, eb = op.V_T(x0), op.V_T(eps)
        z = self.s_noise * randn(x0.shape, p.generators, device=x0.device, dtype=x0.dtype)
        c = (1 - eta**2) ** 0.5
        missing = xb + sig * (c * eb + eta * z)
        out = missing
        if sy > 0:
            after = xb + sig * (c * (uy - sv * xb) / sy + eta * z)
            out = torch.where((sv > 0) & (sv * sig < sy), after, out)
        ybar = uy / safe
        before = eta_b * ybar + (1 - eta_b) * xb + (sig**2 - (eta_b * sy / safe) ** 2).clamp(min=0).sqrt() * z
        out = torch.where((sv > 0) & (sv * sig > sy), before, out)
        return ap**0.5 * op.V(out)
