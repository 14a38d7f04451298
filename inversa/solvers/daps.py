"""DAPS — Improving Diffusion Inverse Problem Solving with Decoupled Noise Annealing (Zhang, Chu, Berner,
Meng, Anandkumar & Song, CVPR 2025, arXiv:2407.01521; official code zhangbingliang2019/DAPS).

Consecutive steps are decoupled: each annealing level draws a clean image x0 given the current noisy
state and y, and re-noises it from scratch to the next, lower level. In the VE (EDM) view,
x = x0 + σ ε, for annealing levels σ_0 > σ_1 > ... > σ_{N-1} and σ_N = 0:
1. x0hat = the probability-flow ODE from (x_i, σ_i) down to σ = 0.01, `ode_steps` Euler steps on the
   EDM ρ-schedule between them, dx/dσ = (x - D(x, σ)) / σ (D the denoiser): `ode_steps` network calls;
2. Langevin dynamics on x0 targeting p(x0 | x_i, y) ∝ N(x0; x0hat, r_i² I) N(y; A x0, τ² I), r_i = σ_i:
       x0 <- x0 + η_i [(x0hat - x0) / r_i² - A^T (A x0 - y) / τ²] + sqrt(2 η_i) z,
   `langevin_steps` steps from x0 = x0hat, no network call, the step size annealed linearly over the
   levels, η_i = lr (1 + i / (N + 1) (lr_min_ratio - 1));
3. x_{i+1} = x0 + σ_{i+1} ε, ε ~ N(0, I) drawn per image (the last level returns x0).
The annealing levels are the EDM schedule σ(r) = (σ_max^{1/ρ} + r (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ at
r = i / N, i = 0..N-1 (N + 1 points, the last, σ_min itself, replaced by 0), as the official `edm`
scheduler builds them; the ODE of level i runs over the same schedule from σ_i to 0.01 with
`ode_steps` + 1 points and returns the state at 0.01.

On this project's VP priors (x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) ε): σ_t = sqrt((1 - ab_t) / ab_t) and
x^VE = x_t / sqrt(ab_t). The loop's state is the VP x_t; an Euler step of the ODE from σ_t to σ_s is the
deterministic DDIM step x_s = sqrt(ab_s) x0hat_t + sqrt(1 - ab_s) eps_t; step 3 is
x_{t'} = sqrt(ab_{t'}) x0 + sqrt(1 - ab_{t'}) ε. r_i, τ and the Langevin step live on the model's [-1, 1]
scale, as in the official code.

Defaults (the official code, main branch, and its README): DAPS-1K is 200 annealing levels × 5 ODE steps
= 1000 network calls (README; commands/pixel_ffhq.sh: `annealing_scheduler_config.num_steps=200`,
`diffusion_scheduler_config.num_steps=5`; pass num_steps=200); σ_max = 100, σ_min = 0.1, ρ = 7, ODE
down to 0.01 (configs/sampler/edm_daps.yaml: `sigma_max: 100`, `sigma_min: 0.1`, `timestep: 'poly-7'`,
diffusion `sigma_min: 0.01`); 100 Langevin steps, τ = 0.01, lr_min_ratio = 0.01 and the step size lr by
task (configs/task/*.yaml, `pixel.mcmc_sampler_config`): 1e-4 for SR ×4, Gaussian blur and random
inpainting, 5e-5 for box inpainting and motion blur; with `lr=None` it is read from the operator's name
(super_resolution, blur 1e-4; inpainting 5e-5, the box task's; others 1e-4) and recorded as `lr_used`;
r_i = σ_i (cores/mcmc.py, prior_solver 'gaussian': the prior term (x0hat - x0) / σ²). τ = 0.01 is not
the benchmark's measurement noise (0.05 on this scale): the official code weights y 25 times more than
its noise would.

Arguments: `ode_steps`, `langevin_steps`, `lr` (None: the task's), `lr_min_ratio`, `tau` (τ, model
scale; None: the measurement's own noise std, the exact likelihood), `anneal_sigma_max` and
`anneal_sigma_min` (σ_max, σ_min), `rho` (ρ), `x0_step` ("langevin" | "gaussian"), `cg_iters`, `sqrt_iters` (the gaussian step); the loop's `clip_x0` (default False: the official
denoiser is not clipped) and `start`. The loop's `sampler`/`eta` do not apply (own step; a
"ddpm"/"ddim" sent by a generic front end is recorded as `sampler_ignored`). Cost: `ode_steps` network
calls per level, no VJP (the likelihood gradient A^T (A x0 - y) uses the operator's exact adjoint).
The Langevin step diverges on the observed pixels when lr / τ² >= 2 (operators of norm <= 1): refused
in one line.

Deviations: (1) the levels are mapped to the model's training timesteps: each σ (annealing level, ODE
point) is replaced by the nearest σ_t (in log σ) and the network is called at that integer t (the
official code feeds the DDPM network continuous timesteps); levels that round to the same timestep are
kept once, so N above about 450 gives fewer levels (the metadata's `num_steps`), and an ODE point
colliding with another is dropped (fewer calls; never with the defaults). The ODE ends at the timestep
nearest σ = 0.01: t = 0 for the DDPM schedule (σ_0 = 0.01). (2) The likelihood is
N(y; A x0, τ² I), i.e. ||A x0 - y||² / (2 τ²), as in the official legacy branch (the code before the
March 2025 restructuring, sampler.py LangevinDynamics); the main branch differentiates
||A x0 - y||² / τ² (cores/mcmc.py with Operator.loss), the same as τ / sqrt(2) here. (3) The loop
starts from x_T ~ N(0, I), the VP form of the official N(0, σ_max² I) up to sqrt(1 - ab_T) ≈ 1 - 5e-5.
(4) Only the Langevin sampler ('langevin'); the official HMC and Metropolis-Hastings options and the
latent-diffusion variant are not included.

p(x0 | x_i) ≈ N(x0hat, σ_i² I) is the method's approximation, not an identity: on correlated Gaussian
priors DAPS is not an exact posterior sampler even with converged Langevin steps and τ = σ_y;
tests/solvers/test_daps.py and docs/posterior.md measure by how much and say why.

x0_step="gaussian" ([inferred], not the paper's): steps 1-2 replaced by an exact draw from
N(x0; x0hat, S) N(y; A x0, τ² I) with the Tweedie mean x0hat and covariance S = Cov[x0 | x_t] of the level
(matrix-free, `covariance.conditional_x0`: `sqrt_iters` Lanczos and up to `cg_iters` CG products, one forward
each, besides the level's own). With τ = the measurement's noise (tau=None) each level then draws from
p(x0 | x_i, y) exactly on Gaussian priors, so the annealing is exact there (what the paper's step misses is
its isotropic σ_i² I); the ODE and Langevin arguments do not apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import torch

from inversa.errors import UserError, check_choice, check_positive_int
from inversa.solvers.base import Context, Solver, StepState, randn
from inversa.solvers.covariance import TweedieCovariance, conditional_x0
from inversa.solvers.ddrm import own_step_sampler
from inversa.solvers.registry import register

# The official per-task Langevin step sizes (configs/task/*.yaml, pixel group), by operator name.
DEFAULT_LRS = {"super_resolution": 1e-4, "blur": 1e-4, "inpainting": 5e-5, "identity": 1e-4}
DEFAULT_LR = 1e-4
ODE_SIGMA_MIN = 0.01  # configs/sampler/edm_daps.yaml diffusion_scheduler_config.sigma_min
X0_STEPS = ("langevin", "gaussian")


def edm_levels(sigma_max: float, sigma_min: float, rho: float, count: int) -> list[float]:
    """The EDM ρ-schedule from sigma_max to sigma_min inclusive at `count` evenly spaced r in [0, 1]."""
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(a + (j / max(count - 1, 1)) * (b - a)) ** rho for j in range(count)]


@dataclass
class DAPSContext(Context):
    lr: float = 0.0  # the Langevin step size used (the task's when `lr` is None)
    tau: float = 0.0  # τ used (the measurement's noise when `tau` is None)


@register("daps")
class DAPS(Solver):
    """Decoupled annealing: per level an ODE estimate of x0, Langevin on x0 given y, re-noise to the next level."""
    paper_steps = 200  # DAPS-1K: 200 annealing levels x 5 ODE steps

    label = "DAPS (decoupled annealing posterior sampling)"
    summary = ("re-draws the whole image at each noise level from the photo and the model, so early mistakes "
               "can be undone; 5 network calls per step")
    cost = (5, 0)  # ode_steps with the default
    needs_grad = False
    context = DAPSContext

    def __init__(self, prior, *, ode_steps: int = 5, langevin_steps: int = 100, lr: float | None = None,
                 lr_min_ratio: float = 0.01, tau: float | None = 0.01, anneal_sigma_max: float = 100.0,
                 anneal_sigma_min: float = 0.1, rho: float = 7.0, x0_step: str = "langevin", cg_iters: int = 30,
                 sqrt_iters: int = 4, clip_x0: bool = False, **kwargs):
        self.requested_sampler = own_step_sampler(kwargs.pop("sampler", None), "DAPS")
        if "eta" in kwargs:
            raise UserError("DAPS has its own step; eta cannot be set")
        super().__init__(prior, clip_x0=clip_x0, **kwargs)
        for key, val in (("ode_steps", ode_steps), ("langevin_steps", langevin_steps)):
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= 10_000:
                raise UserError(f"{key} must be an integer in [1, 10000], got {val!r}")
        for key, val in (("lr", lr), ("tau", tau)):
            if val is not None and not _positive(val):
                raise UserError(f"{key} must be a positive number (or none: {_NONE[key]}), got {val!r}")
        if isinstance(lr_min_ratio, bool) or not isinstance(lr_min_ratio, (int, float)) or not 0 < lr_min_ratio <= 1:
            raise UserError(f"lr_min_ratio must be a number in (0, 1], got {lr_min_ratio!r}")
        for key, val in (("anneal_sigma_max", anneal_sigma_max), ("anneal_sigma_min", anneal_sigma_min)):
            if not _positive(val):
                raise UserError(f"{key} must be a positive number, got {val!r}")
        if not anneal_sigma_min < anneal_sigma_max:
            raise UserError(f"anneal_sigma_min must be below anneal_sigma_max ({anneal_sigma_max}), "
                            f"got {anneal_sigma_min}")
        if not _positive(rho):
            raise UserError(f"rho must be a positive number (the EDM schedule's exponent, 7), got {rho!r}")
        check_choice("x0_step", x0_step, X0_STEPS)
        check_positive_int("cg_iters", cg_iters)
        check_positive_int("sqrt_iters", sqrt_iters)
        self.x0_step, self.cg_iters, self.sqrt_iters = x0_step, cg_iters, sqrt_iters
        self.ode_steps, self.langevin_steps = ode_steps, langevin_steps
        self.lr, self.lr_min_ratio = lr, float(lr_min_ratio)
        self.tau = None if tau is None else float(tau)
        self.anneal_sigma_max, self.anneal_sigma_min = float(anneal_sigma_max), float(anneal_sigma_min)
        self.rho = float(rho)

    # --- noise levels ------------------------------------------------------------------------
    def sigma(self, t: int) -> float:
        """VE noise level of training timestep t: sqrt((1 - ab_t) / ab_t)."""
        a = self.prior.abar(t)
        return ((1 - a) / a) ** 0.5

    def nearest_timestep(self, sigma: float) -> int:
        """The training timestep whose σ_t is nearest `sigma` in log σ."""
        ab = self.prior.alphas_cumprod
        log_sig = 0.5 * (torch.log1p(-ab) - torch.log(ab))
        return int((log_sig - math.log(sigma)).abs().argmin())

    def timesteps(self, num_steps: int) -> list[int]:
        """The N annealing levels (EDM schedule, σ_min excluded as officially), each at its nearest
        training timestep, repeats dropped; with start < 1 those below start * T."""
        super().timesteps(num_steps)  # validates num_steps
        levels = edm_levels(self.anneal_sigma_max, self.anneal_sigma_min, self.rho, num_steps + 1)[:-1]
        ts = list(dict.fromkeys(self.nearest_timestep(s) for s in levels))
        T = self.prior.num_train_timesteps
        return [t for t in ts if t < self.start * T] or ts[-1:]

    def ode_timesteps(self, t: int) -> list[int]:
        """The ODE's points from level t down to σ = 0.01: `ode_steps` + 1 on the EDM schedule, each at its
        nearest training timestep, strictly decreasing (a point that collides with the previous one is dropped)."""
        pts = edm_levels(self.sigma(t), ODE_SIGMA_MIN, self.rho, self.ode_steps + 1)
        out = [t]
        for s in (self.nearest_timestep(p) for p in pts[1:]):
            if s < out[-1]:
                out.append(s)
        return out

    # --- per call ----------------------------------------------------------------------------
    def prepare(self, problem, timesteps, num_steps=None):
        ctx = super().prepare(problem, timesteps, num_steps)
        ctx.lr = self.lr if self.lr is not None else DEFAULT_LRS.get(problem.operator.name, DEFAULT_LR)
        if self.tau is None:
            if not problem.sigma > 0:
                raise UserError("tau=none takes the measurement's noise std, which is 0 here; pass tau (e.g. 0.01)")
            ctx.tau = float(problem.sigma)
        else:
            ctx.tau = self.tau
        if self.x0_step == "langevin" and ctx.lr / ctx.tau**2 >= 2:
            raise UserError(f"lr={ctx.lr:g} with tau={ctx.tau:g}: lr / tau² = {ctx.lr / ctx.tau**2:.3g} must be "
                            "below 2 (the Langevin step diverges on the observed pixels); lower lr or raise tau")
        return ctx

    def run_metadata(self, ctx):
        out = {**super().run_metadata(ctx), "lr_used": ctx.lr, "tau_used": ctx.tau, "sampler_ignored": self.requested_sampler}
        return {**out, **ctx.cg.as_dict()} if self.x0_step == "gaussian" else out

    # --- the step ----------------------------------------------------------------------------
    def ode(self, s: StepState) -> torch.Tensor:
        """x0hat: the probability-flow ODE from (x_t, t) to the lowest ODE point by Euler (= DDIM) steps,
        returned on the VE scale (x / sqrt(ab)). The first call is the loop's prediction at (x_t, t)."""
        pts = self.ode_timesteps(s.t)
        x, pred = s.x_t, s.pred
        for t, t_next in pairwise(pts):
            if pred is None:
                pred = self.predict(x, t, s.ctx)
            a, an = self.prior.abar(t), self.prior.abar(t_next)
            eps = (x - a**0.5 * pred.x0hat) / (1 - a) ** 0.5  # recomputed: consistent with a clipped x0hat
            x = an**0.5 * pred.x0hat + (1 - an) ** 0.5 * eps
            pred = None
        return x / self.prior.abar(pts[-1]) ** 0.5

    def langevin(self, x0hat: torch.Tensor, s: StepState) -> torch.Tensor:
        """`langevin_steps` unadjusted Langevin steps on N(x0; x0hat, σ_t² I) N(y; A x0, τ² I) from x0hat."""
        p, op, ctx = s.problem, s.problem.operator, s.ctx
        ratio = s.index / (s.num_steps + 1)  # as the official code: step / (num_steps + 1)
        lr = ctx.lr * (1 + ratio * (self.lr_min_ratio - 1))
        inv_r2, inv_tau2 = 1 / self.sigma(s.t) ** 2, 1 / ctx.tau**2
        x = x0hat
        for _ in range(self.langevin_steps):
            grad = (x0hat - x) * inv_r2 - op.A_adjoint(op.A(x) - p.y) * inv_tau2
            z = randn(x.shape, p.generators, device=x.device, dtype=x.dtype)
            x = x + lr * grad + (2 * lr) ** 0.5 * z
        return x

    def gaussian_x0(self, s: StepState) -> torch.Tensor:
        """x0 ~ N(x0hat, S) N(y; A x0, τ² I) normalised: the Tweedie mean and covariance at (x_t, t) (S matrix-free,
        one forward per product) and a Matheron draw (`covariance.conditional_x0`): `sqrt_iters` Lanczos and up to
        `cg_iters` CG products."""
        p, x0 = s.problem, s.pred.x0hat.detach()
        cov = TweedieCovariance(self.prior, s.x_t, s.t, s.pred.eps)
        noise = (randn(x0.shape, p.generators, device=x0.device, dtype=x0.dtype),
                 randn(p.y.shape, p.generators, device=x0.device, dtype=x0.dtype))
        u, e = conditional_x0(cov, p.operator, p.y - p.operator.A(x0), s.ctx.tau**2, noise=noise, sqrt_iters=self.sqrt_iters,
                              cg_iters=self.cg_iters, log=s.ctx.cg)
        return x0 + e + cov(p.operator.A_adjoint(u))

    def step(self, s: StepState) -> torch.Tensor:
        x0 = self.gaussian_x0(s) if self.x0_step == "gaussian" else self.langevin(self.ode(s), s)
        if s.last:
            return x0
        a = self.prior.abar(s.t_prev)
        z = randn(x0.shape, s.problem.generators, device=x0.device, dtype=x0.dtype)
        return a**0.5 * x0 + (1 - a) ** 0.5 * z


_NONE = {"lr": "the task's", "tau": "the measurement's noise"}


def _positive(val) -> bool:
    return not isinstance(val, bool) and isinstance(val, (int, float)) and math.isfinite(val) and val > 0
