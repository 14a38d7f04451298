"""DiffPIR — Denoising Diffusion Models for Plug-and-Play Image Restoration (Zhu, Zhang, Liang, Cao,
Wen, Timofte & Van Gool, CVPR Workshops 2023, arXiv:2305.08995).

Half-quadratic splitting with the diffusion model as the prior's proximal operator. At each step:
1. x0 = x0hat(x_t) (the network's clean estimate);
2. data proximal step  x̂0 = argmin_x ||y - A x||² + ρ_t ||x - x0||²
   = (A^T A + ρ_t I)^{-1} (A^T y + ρ_t x0), with ρ_t = λ σ_n² / σ̄_t², σ̄_t² = (1 - ab_t) / ab_t;
3. ε̂ = (x_t - sqrt(ab_t) x̂0) / sqrt(1 - ab_t) and
   x_{t-1} = sqrt(ab_{t-1}) x̂0 + sqrt(1 - ab_{t-1}) (sqrt(1 - ζ) ε̂ + sqrt(ζ) z).
σ_n is the measurement noise std in [0, 1] units floored at 0.001, as the official code
(yuanzhi-zhu/DiffPIR main_ddpir_*.py: `sigma = max(0.001, noise_level_img)`, `rhos = lambda_ *
sigma**2 / sigma_ks**2`, σ̄_t on the model's [-1, 1] scale). The proximal step is solved in closed
form through the operator's `gram_solve` (inpainting, SR, circular blur: the official code's FFT
solution needs circular boundaries too) and by CG otherwise (e.g. reflect-padded blur). One
network call per step, no VJP.

Arguments: `lam` (λ, default 7.0) and `zeta` (ζ, default 0.3): the values the official deblurring
script runs (main_ddpir_deblur.py: `lambdas = [lambda_*i for i in range(7,8)]`,
`zeta*i for i in range(3,4)` with lambda_ = 1.0, zeta = 0.1); 100 steps (`iter_num = 100`; pass
num_steps=100); `cg_iters`/`cg_tol` for operators without a closed form; `clip_x0` (loop default). The loop's `sampler`/`eta` do not apply (own step; a "ddpm"/"ddim"
sent by a generic front end is recorded as `sampler_ignored`).

Timesteps: `schedule="quad"` (default) is the official spacing (main_ddpir_*.py `skip_type =
'quad'`): with N steps the i-th noise level is that of training step T - 1 - floor(T sqrt(i / (N-1)))
(the last one 0), large jumps at high noise and small ones near the end; "uniform" takes the shared
loop's respacing ("leading", as DDPM/DDIM). At N large enough that two levels round to one training
step (N > about T/2) the repeats are dropped. Deviations: (2) the official loop skips the data step at the
last step and returns x_t there; we apply it and return x̂0 (t = 0 in the loop's spacing, so the
difference is the last step's noise); (3) the per-task λ, ζ of the SR and inpainting scripts are
not the defaults here (pass them); (4) the official SR step for bicubic kernels iterates a
first-order solver (inIter, gamma); we solve the proximal step exactly.
"""

from __future__ import annotations

import math

import torch

from inversa.errors import UserError
from inversa.solvers.base import Solver, StepState, randn
from inversa.solvers.cg import cg
from inversa.solvers.ddrm import own_step_sampler
from inversa.solvers.registry import register

SCHEDULES = ("quad", "uniform")


@register("diffpir")
class DiffPIR(Solver):
    """Plug-and-play diffusion with an exact data proximal step. Parameters: `lam` (λ), `zeta` (ζ)."""
    paper_steps = 100  # the official scripts' iter_num = 100

    label = "DiffPIR (plug-and-play diffusion)"
    summary = "alternates a denoising step and a data step; fast, no gradient pass"
    cost = (1, 0)
    needs_grad = False

    def __init__(self, prior, *, lam: float = 7.0, zeta: float = 0.3, sigma_floor: float = 0.001, cg_iters: int = 50,
                 cg_tol: float = 1e-6, schedule: str = "quad", **kwargs):
        self.requested_sampler = own_step_sampler(kwargs.pop("sampler", None), "DiffPIR")
        if "eta" in kwargs:
            raise UserError("DiffPIR has its own step; its stochasticity is zeta (eta cannot be set)")
        super().__init__(prior, **kwargs)
        for key, val in (("lam", lam), ("sigma_floor", sigma_floor), ("cg_tol", cg_tol)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) or val <= 0:
                raise UserError(f"{key} must be a positive number, got {val!r}")
        if isinstance(zeta, bool) or not isinstance(zeta, (int, float)) or not 0 <= zeta <= 1:
            raise UserError(f"zeta must be a number in [0, 1], got {zeta!r}")
        if isinstance(cg_iters, bool) or not isinstance(cg_iters, int) or cg_iters < 1:
            raise UserError(f"cg_iters must be a positive integer, got {cg_iters!r}")
        if schedule not in SCHEDULES:
            raise UserError(f"schedule {schedule!r} is unknown; accepted: {', '.join(SCHEDULES)}")
        self.lam, self.zeta, self.sigma_floor, self.schedule = float(lam), float(zeta), float(sigma_floor), schedule
        self.cg_iters, self.cg_tol = cg_iters, float(cg_tol)

    def timesteps(self, num_steps: int) -> list[int]:
        """The official "quad" spacing (see the module docstring), or the loop's with "uniform"; `start`
        keeps the levels below start * T, as the loop does."""
        ts = super().timesteps(num_steps)  # validates num_steps; the uniform spacing
        if self.schedule == "uniform":
            return ts
        T = self.prior.num_train_timesteps
        quad = [T - 1 - int((T**2 * i / max(num_steps - 1, 1)) ** 0.5) for i in range(num_steps)]
        quad[-1] = 0
        quad = list(dict.fromkeys(quad))
        return [t for t in quad if t < self.start * T] or quad[-1:]

    def run_metadata(self, ctx):
        return {**super().run_metadata(ctx), "sampler_ignored": self.requested_sampler}

    def rho(self, t: int, sigma_model: float) -> float:
        a = self.prior.abar(t)
        sigma_n = max(self.sigma_floor, sigma_model / 2)  # [0, 1] units, as the official code
        return self.lam * sigma_n**2 / ((1 - a) / a)

    def proximal(self, x0: torch.Tensor, s: StepState) -> torch.Tensor:
        """argmin ||y - A x||² + ρ ||x - x0||² = (A^T A + ρ I)^{-1} (A^T y + ρ x0)."""
        op, p = s.problem.operator, s.problem
        rho = self.rho(s.t, p.sigma)
        rhs = op.A_adjoint(p.y) + rho * x0
        x = op.gram_solve(rhs / rho, 1 / rho)  # (I + A^T A / ρ)^{-1} rhs / ρ
        if x is None:
            x, info = cg(lambda v: op.AtA(v) + rho * v, rhs, x0=x0, tol=self.cg_tol, max_iter=self.cg_iters)
            s.ctx.cg.add(info)
        return x

    def step(self, s: StepState) -> torch.Tensor:
        x_t = s.x_t
        x0 = self.proximal(s.pred.x0hat, s)
        if s.last:
            return x0
        a, ap = self.prior.abar(s.t), self.prior.abar(s.t_prev)
        eps = (x_t - a**0.5 * x0) / (1 - a) ** 0.5
        z = randn(x_t.shape, s.problem.generators, device=x_t.device, dtype=x_t.dtype)
        return ap**0.5 * x0 + (1 - ap) ** 0.5 * ((1 - self.zeta) ** 0.5 * eps + self.zeta**0.5 * z)
