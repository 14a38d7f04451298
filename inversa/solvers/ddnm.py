"""DDNM / DDNM+ — Zero-Shot Image Restoration Using Denoising Diffusion Null-Space Model (Wang, Yu &
Zhang, ICLR 2023, arXiv:2212.00490).

Range-null space decomposition: keep the network's null-space content and replace the range-space
content by the measurement's, x̂0 = x0hat - Σ_t A^†(A x0hat - y) (paper eq. 13 with Σ_t = I,
DDNM+ eq. 17), then a DDIM-type step with η:
x_{t-1} = sqrt(ab_{t-1}) x̂0 + noise, noise of total std σ_t = sqrt(1 - ab_{t-1}).
In the spectral space of A = U Σ V^T (operator SVD, singular value s_i), with a = sqrt(ab_{t-1}) and
the measurement noise σ_y (model scale), per coordinate (as the official SVD code,
wyhuai/DDNM functions/svd_operators.py `Lambda`, `Lambda_noise`):
- σ_y = 0 (DDNM): λ_i = 1; noise σ_t (η z + sqrt(1-η²) ē) (ē = V^T eps, the step's eps);
- s_i = 0: no correction; noise σ_t (η z + sqrt(1-η²) ē);
- σ_t < a σ_y / s_i (y too noisy for this level): λ_i = s_i σ_t sqrt(1-η²) / (a σ_y), noise σ_t η z
  (the correction itself brings y's noise, of std a λ_i σ_y / s_i = σ_t sqrt(1-η²));
- σ_t > a σ_y / s_i: λ_i = 1, noise sqrt(σ_t² - a² σ_y² / s_i²) z.
One network call per step, no VJP. At the last step (a = 1, σ_t = 0) a noisy y gives no correction
(λ = 0) and DDNM+ returns x0hat; a noiseless y gives the projection x0hat - A^†(A x0hat - y).

For noisy y this SVD form is DDRM's update with η_b = 1, coordinate by coordinate (the three cases
coincide; tests/solvers/test_ddnm.py checks it to rounding); noiseless, they differ (DDNM keeps the
η z + sqrt(1-η²) ē mix on observed coordinates and projects at the last step).

Operators without a closed-form SVD (e.g. reflect-padded blur) run the paper's "simplified" DDNM
with the operator's `A_dagger` (CG on the normal equations there) and scalar λ_t, noise as above
with every s_i taken as 1 (the paper's scalar DDNM+ form, eq. 19; for noisy y its noise rule then
also applies to the null space); `variant` records which ran.

Arguments: `eta` (default 0.85: the official main.py `--eta` default), 100 steps (the official
configs' time_travel.T_sampling; pass num_steps=100), `s_min` (singular values below it count as
0, default 1e-3 as the official general-H class), `clip_x0` (default False: the official code does
not clip x0hat), `s_noise` (default 1.0: a factor on each step's fresh noise, EDM's S_noise, as in
DDRM). The loop's `sampler` does not apply (recorded as `sampler_ignored` if passed).

Deviations: (1) the time-travel trick (travel_length / travel_repeat, off in the official default
configs: 1 / 1) is not implemented; (2) timesteps come from the shared loop ("leading" spacing);
(3) eps is recomputed from x0hat (identical without clipping).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inversa.errors import UserError
from inversa.solvers.base import Solver, StepState, randn
from inversa.solvers.ddrm import SpectralContext, check_fraction, check_nonneg, own_step_sampler, spectral_data
from inversa.solvers.registry import register


@dataclass
class DDNMContext(SpectralContext):
    variant: str = "svd"  # "svd": the operator's closed-form SVD; "pinv": A^† by the operator (all s_i = 1)


@register("ddnm")
class DDNM(Solver):
    """Null-space diffusion (DDNM, and DDNM+ for noisy y). Parameters: `eta`, `s_min`, `s_noise`."""
    paper_steps = 100  # the official configs' T_sampling = 100

    label = "DDNM (null-space diffusion)"
    summary = "keeps what the photo shows and lets the prior fill the rest; fast, no gradient pass"
    cost = (1, 0)
    needs_grad = False
    context = DDNMContext

    def __init__(self, prior, *, eta: float = 0.85, s_min: float = 1e-3, clip_x0: bool = False, cg_iters: int = 50,
                 s_noise: float = 1.0, **kwargs):
        self.requested_sampler = own_step_sampler(kwargs.pop("sampler", None), "DDNM")
        eta = check_fraction(eta, "eta")
        super().__init__(prior, sampler="ddim", eta=eta, clip_x0=clip_x0, **kwargs)
        self.s_min = check_nonneg(s_min, "s_min")
        self.s_noise = check_fraction(s_noise, "s_noise (1: the paper's noise)", upper=2.0)
        if isinstance(cg_iters, bool) or not isinstance(cg_iters, int) or cg_iters < 1:
            raise UserError(f"cg_iters must be a positive integer, got {cg_iters!r}")
        self.cg_iters = cg_iters

    def prepare(self, problem, timesteps, num_steps=None):
        ctx = super().prepare(problem, timesteps, num_steps)
        ctx.variant = "svd" if problem.operator is None or problem.operator.has_svd else "pinv"
        return ctx

    def run_metadata(self, ctx):
        return {**super().run_metadata(ctx), "variant": ctx.variant, "sampler_ignored": self.requested_sampler}

    def _coefficients(self, sv, safe, a, st, sy):
        """λ, d1 (fresh noise), d2 (the step's eps) per spectral coordinate."""
        eta, c = self.eta, (1 - self.eta**2) ** 0.5
        one = torch.ones_like(sv)
        lam, d1, d2 = one, st * eta * one, st * c * one
        if sy > 0:
            obs = sv > 0
            noisy = obs & (st < a * sy / safe)
            clean = obs & (st > a * sy / safe)
            lam = torch.where(noisy, sv * st * c / (a * sy), one)
            d1 = torch.where(noisy, st * eta * one, d1)
            d1 = torch.where(clean, (st**2 - (a * sy / safe) ** 2).clamp(min=0).sqrt(), d1)
            d2 = torch.where(noisy | clean, torch.zeros_like(sv), d2)
        return lam, d1, d2

    def step(self, s: StepState) -> torch.Tensor:
        op, p = s.problem.operator, s.problem
        x_t, x0 = s.x_t, s.pred.x0hat
        a_t, ap = self.prior.abar(s.t), self.prior.abar(s.t_prev)
        eps = (x_t - a_t**0.5 * x0) / (1 - a_t) ** 0.5
        a, st, sy = ap**0.5, (1 - ap) ** 0.5, p.sigma
        z = self.s_noise * randn(x0.shape, p.generators, device=x0.device, dtype=x0.dtype)
        if s.ctx.variant == "svd":
            sv, safe, uy = spectral_data(s, self.s_min, x0)
            xb, eb = op.V_T(x0), op.V_T(eps)
            corr = torch.where(sv > 0, (sv * xb - uy) / safe, torch.zeros_like(xb))  # V^T A^†(A x0 - y)
            lam, d1, d2 = self._coefficients(sv, safe, a, st, sy)
            return op.V(a * (xb - lam * corr) + d2 * eb + d1 * z)  # z white in any orthonormal basis
        # simplified: every singular value taken as 1, A^† from the operator
        one = torch.ones((), dtype=x0.dtype, device=x0.device)
        lam, d1, d2 = self._coefficients(one, one, a, st, sy)
        corr = op.A_dagger(op.A(x0) - p.y, max_iter=self.cg_iters)
        return a * (x0 - lam * corr) + d1 * z + d2 * eps
