"""CA-DPS — covariance-aware diffusion posterior sampling (Hamidi & Yang, 2024).

The paper: a closed form for the covariance of the reverse process, approximated by finite differences
from a pretrained DDPM "without increasing complexity", used with the mean in a Gaussian likelihood
approximation, no hyperparameter tuning ([paper]; the step below is [inferred], docs/methods.md).

covariance="full" (default). With S = Cov[x0 | x_t] = c_t J_t (second-order Tweedie, c_t = (1-ab)/sqrt(ab),
J_t = d x0hat / d x_t) as matrix-free products (`covariance.TweedieCovariance`: one network forward each,
by a directional finite difference, or a JVP), p(x0 | x_t) ≈ N(x0hat, S) conditioned on y = A x0 + n gives
  E[x0 | x_t, y] = x0hat + S A^T u,   u = (r² I + A S A^T)^{-1} (y - A x0hat)   (k CG iterations),
  Cov[x0 | x_t, y] = S - S A^T (r² I + A S A^T)^{-1} A S.
step_variance="posterior" (default) draws x0* from that Gaussian by Matheron's rule inside the same
solve, x0* = x0hat + e + S A^T (r² I + A S A^T)^{-1} (y - A (x0hat + e) - n), e = S^{1/2} z by
`sqrt_iters` Lanczos iterations, n ~ N(0, r² I), and steps with the DDPM posterior q(x_{t-1} | x_t, x0*):
exact ancestral sampling of p(x_{t-1} | x_t, y) when p(x0 | x_t) is Gaussian, at any step count.
Cost per step: 1 + sqrt_iters + k + 2 forwards with the default mean shift (below), no VJP; "prior" keeps
the plain DDPM variance and the mean E[x0 | x_t, y] (k + 3 forwards; one less each with the Jacobian
product). The covariance is observed to be information-carrying: S A^T u is nonzero on pixels A^T does not
reach (the hidden block of an inpainting is filled from its border).
Positivity: the network's S need not be symmetric PSD; CG stops an image on non-positive curvature and
Lanczos clamps negative Ritz values to 0. `full_below` (default inf) uses the data-variance scalar
Cov = (1/data_var + ab/(1-ab))^{-1} I instead where (1-ab)/ab exceeds it.
The mean shift S A^T u, three ways. mean_shift="tilt" (default with the full covariance): by a secant along
the exponential tilt (`covariance.TweedieCovariance.tilted`): p(x0 | x_t) e^{<b, x0>} = p(x0 | x_t + c_t b), so
with b = A^T u, secant="central" (default) takes (x0hat(x_t + f c_t b) - x0hat(x_t - f c_t b)) / (2 f), f = `tilt`,
two forwards; secant="forward" (x0hat(x_t + f c_t b) - x0hat(x_t)) / f, one. Both equal the product on Gaussian
priors for every f; on a multimodal p(x0 | x_t) they move a chain toward the mode y supports, where the
Jacobian product, seeing one mode, leaves a few chains in a mode y rules out. The central form cancels the
even-order terms along b, the network's curvature, which is what cost the one-sided form on photos.
The secant's shift is scaled down, per image, where its A-image is longer than the Jacobian product's,
A S A^T u, which the CG gives without a product more (`covariance.measurement_trust`; never binds on Gaussian priors):
at the first steps the move is many noise stds, where a network is not trained and its secant can be many
times the product. mean_shift="covariance": the Jacobian product S A^T u (one forward). mean_shift="vjp":
c_t J_t^T A^T u by one VJP (equal for an exact denoiser).

covariance="diagonal" (the earlier [inferred] form): S_t = ((1-ab)/ab) diag(1 + (1-ab) h_t), h_t from
Rademacher probes of finite differences of eps (`fd_probes`, `delta`), clamped to [0, cov_max]; u in
closed form when A^T A is diagonal (push-through: A^T u = A^T r / (r² + diag(A^T A) S_t)), by CG otherwise;
the step posterior sampled by Matheron's rule. A diagonal S cannot carry information from observed to
missing pixels (S A^T u is zero wherever A^T is).

variant="reference" (the authors' released DPS fork, for reproducing published numbers):
  x_{t-1} = x'_{t-1} - zeta (1 + [eps(x_t, t) - eps(x_t, t_prev)]) ⊙ grad ||y - A x0hat||_2, the
  difference taken between neighbouring respaced timesteps as in the released code (which subtracts 0
  at the last step), DPS step sizes; 2 forwards + 1 VJP per step.

Arguments: variant ("paper" | "reference"), covariance ("full" | "diagonal"), cov_product
("finite-difference" | "jvp"), delta (finite-difference step, RMS per pixel on the model scale), cg_iters
(k; None: 4 on blur operators, 2 otherwise, `CG_ITERS`), cg_tol, sqrt_iters (Lanczos iterations of the step's
draw, 2), step_variance ("posterior" | "prior"),
mean_shift ("tilt" | "covariance" | "vjp"; None: "tilt" with the full covariance, "covariance" with the
diagonal), multiplier (scales the shift; 1 = the derivation), tilt (f of mean_shift="tilt", in (0, 1]), secant
("central" | "forward"), sigma_min (noise floor on the model scale, so noiseless problems keep a proper
likelihood), full_below, data_var, fd_probes and cov_max (diagonal form).
Measured figures: docs/posterior.md (exact posteriors), docs/quality.md (photos).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from inversa.errors import UserError, check_choice, check_positive_int
from inversa.pretrained.prior import Prediction
from inversa.solvers.base import StepState, rademacher, randn
from inversa.solvers.cg import CGLog, cg
from inversa.solvers.covariance import METHODS as PRODUCTS
from inversa.solvers.covariance import (PriorScaleCovariance, TweedieCovariance, check_tilt, conditional_shift, conditional_x0,
                                        step_coefficients)
from inversa.solvers.dps import DPS, DPSContext
from inversa.solvers.registry import register

VARIANTS = ("paper", "reference")
COVARIANCES = ("full", "diagonal")
STEP_VARIANCES = ("posterior", "prior")
MEAN_SHIFTS = ("vjp", "covariance", "tilt")
SECANTS = ("central", "forward")
# CG iterations by operator name when `cg_iters` is None, chosen on held-out training crops (docs/quality.md):
# deblurring needs 4 to fit y; on inpainting and SR more iterations follow the network's covariance error further.
CG_ITERS = {"blur": 4}
DEFAULT_CG_ITERS = 2
# Lanczos iterations of the step's draw S^{1/2} z: 2 beat 4 on every held-out preset (docs/quality.md) and equal
# it on the exact-posterior settings (docs/posterior.md).
SQRT_ITERS = 2


@dataclass
class CADPSContext(DPSContext):
    closed_form: bool = False  # diagonal covariance: A^T A diagonal, the solve in closed form
    cg_iters: int = DEFAULT_CG_ITERS  # k of this call (`cg_iters`, or the operator's when it is None)


@register("ca-dps")
class CADPS(DPS):
    """Covariance-aware DPS: the full posterior covariance, matrix-free; k + sqrt_iters + 2 forwards and no VJP per step."""
    paper_steps = None  # no published count (DPS's 1000 is not inherited)

    label = "Covariance-aware DPS"
    summary = ("uses how pixels vary together under the prior, so what is seen informs what is missing; "
               "no step size to tune; the slowest per step")
    cost = (7, 0)  # 1 + sqrt_iters + cg_iters + 2 with the defaults (k = 2; 9 with k = 4 on deblurring)
    cost_up_to = True  # CG stops early on convergence or non-positive curvature
    context = CADPSContext

    def __init__(self, prior, *, variant: str = "paper", delta: float = 1e-3, fd_probes: int = 1, cg_iters: int | None = None,
                 cg_tol: float = 1e-4, multiplier: float = 1.0, step_variance: str = "posterior", sigma_min: float = 1e-3,
                 cov_max: float = 1.0, mean_shift: str | None = None, covariance: str = "full",
                 cov_product: str = "finite-difference", sqrt_iters: int = SQRT_ITERS, full_below: float = math.inf,
                 data_var: float = 0.25, tilt: float = 0.1, secant: str = "central", **kwargs):
        super().__init__(prior, **kwargs)
        check_choice("CA-DPS variant", variant, VARIANTS)
        check_choice("covariance", covariance, COVARIANCES)
        if mean_shift is None:  # the tilt needs denoiser evaluations, which the diagonal form does not make
            mean_shift = "tilt" if covariance == "full" else "covariance"
        check_choice("mean_shift", mean_shift, MEAN_SHIFTS)
        check_choice("cov_product", cov_product, PRODUCTS)
        check_choice("step_variance", step_variance, STEP_VARIANCES)
        check_choice("secant", secant, SECANTS)
        for key, val in (("delta", delta), ("cg_tol", cg_tol), ("sigma_min", sigma_min), ("cov_max", cov_max)):
            if not val > 0:
                raise UserError(f"{key} must be positive, got {val}")
        for key, val in (("fd_probes", fd_probes), ("cg_iters", cg_iters), ("sqrt_iters", sqrt_iters)):
            if val is not None or key != "cg_iters":
                check_positive_int(key, val)
        if not multiplier >= 0:
            raise UserError(f"multiplier must be non-negative, got {multiplier}")
        self.variant, self.delta, self.fd_probes = variant, float(delta), fd_probes
        self.cg_iters, self.cg_tol, self.multiplier = cg_iters, float(cg_tol), float(multiplier)
        self.step_variance, self.sigma_min, self.cov_max = step_variance, float(sigma_min), float(cov_max)
        self.mean_shift, self.covariance, self.cov_product, self.sqrt_iters = mean_shift, covariance, cov_product, sqrt_iters
        for key, val in (("full_below", full_below), ("data_var", data_var)):
            if not val > 0:
                raise UserError(f"{key} must be positive, got {val}")
        self.full_below, self.data_var = float(full_below), float(data_var)
        check_tilt(tilt)
        if mean_shift == "tilt" and covariance != "full":
            raise UserError(f"mean_shift 'tilt' needs covariance='full' (a denoiser evaluation), got covariance {covariance!r}")
        self.tilt, self.secant = float(tilt), secant
        self.needs_grad = variant == "reference" or mean_shift == "vjp"

    def prepare(self, problem, timesteps, num_steps=None):
        ctx = super().prepare(problem, timesteps, num_steps)
        ctx.closed_form = problem.operator.gram_diagonal() is not None
        ctx.cg_iters = self.cg_iters if self.cg_iters is not None else CG_ITERS.get(problem.operator.name, DEFAULT_CG_ITERS)
        return ctx

    def run_metadata(self, ctx):
        out = {**super().run_metadata(ctx), **ctx.cg.as_dict(), "cg_iters_used": ctx.cg_iters}
        if self.variant == "reference":
            return {**out, "time_difference": "eps(x_t,t)-eps(x_t,t_prev)"}
        return {**out, "solve": "cg" if self.covariance == "full" or not ctx.closed_form else "closed-form"}

    # --- the covariance ---------------------------------------------------------------------
    def x0_covariance(self, x_t: torch.Tensor, t: int, eps: torch.Tensor, generators=None) -> torch.Tensor:
        """S_t = diag Cov[x0 | x_t] by finite differences of eps (eps = the network's at x_t)."""
        a = self.prior.abar(t)
        x_t, eps = x_t.detach(), eps.detach()
        jdiag = torch.zeros_like(x_t)
        with torch.no_grad():
            for _ in range(self.fd_probes):
                v = rademacher(x_t.shape, generators, device=x_t.device, dtype=x_t.dtype)
                jdiag += v * (self.prior.predict(x_t + self.delta * v, t, clip=False).eps - eps) / self.delta
        jdiag /= self.fd_probes  # ≈ diag d eps / d x_t
        # a variance is >= 0, and <= cov_max (1 for data in [-1, 1]): clamps the probe noise
        return (((1 - a) / a) * (1 - (1 - a) ** 0.5 * jdiag)).clamp(0, self.cov_max)

    def solve(self, operator, S: torch.Tensor, r2: float, rhs: torch.Tensor, log: CGLog, max_iter: int) -> torch.Tensor:
        """A^T (r2 I + A S A^T)^{-1} rhs: closed form when A^T A is diagonal, CG otherwise."""
        d = operator.gram_diagonal()
        if d is not None:  # push-through identity: A^T (r2 + A S A^T)^{-1} = (r2 + A^T A S)^{-1} A^T
            return operator.A_adjoint(rhs) / (r2 + d.to(S) * S)
        u, info = cg(lambda v: r2 * v + operator.A(S * operator.A_adjoint(v)), rhs, tol=self.cg_tol, max_iter=max_iter)
        log.add(info)
        return operator.A_adjoint(u)

    # --- guidance and step ------------------------------------------------------------------
    def guidance(self, s: StepState) -> torch.Tensor:
        if self.variant == "reference":
            with torch.no_grad():  # the released code's d eps / dt surrogate (eps itself at the last step)
                eps_prev = 0.0 if s.last else self.prior.predict(s.x_t.detach(), s.t_prev, clip=False).eps
                w = 1 + (s.pred.eps.detach() - eps_prev)
            return -s.ctx.zeta * w * s.vjp(self.residual_norm(s), s.x_t)
        if self.covariance == "full":
            c_x0, _ = step_coefficients(self.prior, s.t, s.t_prev, self.eta)
            return self.multiplier * c_x0 * self.posterior_shift(s)
        p, op = s.problem, s.problem.operator
        x0 = s.pred.x0hat
        S = self.x0_covariance(s.x_t, s.t, s.pred.eps, p.generators)
        r2 = max(p.sigma, self.sigma_min) ** 2
        with torch.no_grad():
            w = self.solve(op, S, r2, p.y - op.A(x0.detach()), s.ctx.cg, s.ctx.cg_iters)  # A^T Σ^{-1} (y - A x0hat)
        s.scratch["S"], s.scratch["r2"] = S, r2  # the step's Matheron draw reuses them
        a = self.prior.abar(s.t)
        c_x0, _ = step_coefficients(self.prior, s.t, s.t_prev, self.eta)
        if self.mean_shift == "covariance":  # S_t in place of c_t J_t^T: equal for an exact denoiser
            return self.multiplier * c_x0 * S * w
        return self.multiplier * c_x0 * (1 - a) / a**0.5 * s.vjp(x0 * w, s.x_t)

    def covariance_at(self, s: StepState):
        """Cov[x0 | x_t] as products: the network's (finite differences or JVP) where the noise-to-signal
        ratio (1-ab_t)/ab_t is below `full_below`, the data-variance scalar above it."""
        a = self.prior.abar(s.t)
        if (1 - a) / a > self.full_below:
            return PriorScaleCovariance(self.prior, s.t, self.data_var)
        return TweedieCovariance(self.prior, s.x_t, s.t, s.pred.eps, method=self.cov_product, delta=self.delta)

    def posterior_shift(self, s: StepState) -> torch.Tensor:
        """x0* - x0hat with the full covariance S = Cov[x0 | x_t] (matrix-free): the Gaussian conditional
        mean shift S A^T u, u = (r² I + A S A^T)^{-1} (y - A x0hat) by CG, and with step_variance="posterior"
        a draw x0* ~ N(E[x0 | x_t, y], S - S A^T (r² I + A S A^T)^{-1} A S) by Matheron's rule in the same
        solve: x0* = x0hat + e + S A^T (r² I + A S A^T)^{-1} (y - A (x0hat + e) - n), e = S^{1/2} z by
        Lanczos, n ~ N(0, r² I)."""
        p, op, gens = s.problem, s.problem.operator, s.problem.generators
        cov = self.covariance_at(s)
        x0 = s.pred.x0hat.detach()
        noise = None
        if self.step_variance == "posterior":
            noise = (randn(x0.shape, gens, device=x0.device, dtype=x0.dtype), randn(p.y.shape, gens, device=x0.device, dtype=x0.dtype))
        r2 = max(p.sigma, self.sigma_min) ** 2
        u, e, image = conditional_x0(cov, op, p.y - op.A(x0), r2, noise=noise, sqrt_iters=self.sqrt_iters,
                                     cg_iters=s.ctx.cg_iters, cg_tol=self.cg_tol, log=s.ctx.cg, with_image=True)
        if self.mean_shift == "vjp":  # the likelihood gradient's form c_t J_t^T A^T u, one VJP
            shift = cov.c * s.vjp(s.pred.x0hat * op.A_adjoint(u).detach(), s.x_t)
        else:  # the product, or the same by a secant over a fraction of the tilt
            shift = conditional_shift(cov, op, u, image, self.mean_shift, self.tilt, self.secant == "central")
        return shift if e is None else shift + e

    def step(self, s: StepState) -> torch.Tensor:
        if self.variant == "reference" or (self.step_variance == "prior" and self.covariance == "diagonal"):
            return super().step(s)
        g = self.correction(s)  # the guidance, with any composed term (CMI) on top
        with torch.no_grad():
            pred = Prediction(s.pred.eps.detach(), s.pred.x0hat.detach())
            mean, _ = self.prior.step_mean_var(s.x_t.detach(), s.t, s.t_prev, pred, eta=self.eta)
            c_x0, var = step_coefficients(self.prior, s.t, s.t_prev, self.eta)
            gens, op = s.problem.generators, s.problem.operator
            x = mean + g
            if var > 0:  # eta² beta_tilde: the x0 uncertainty is in g (full) or added below (diagonal)
                x = x + var**0.5 * randn(mean.shape, gens, device=mean.device, dtype=mean.dtype)
            if self.covariance == "full" or self.step_variance == "prior":
                return x
            # Matheron: e - S A^T Σ^{-1} (A e + n), e ~ N(0, S), n ~ N(0, r2), has covariance Cov[x0|x_t,y].
            S, r2 = s.scratch["S"], s.scratch["r2"]
            e = S.sqrt() * randn(mean.shape, gens, device=mean.device, dtype=mean.dtype)
            n = r2**0.5 * randn(s.problem.y.shape, gens, device=mean.device, dtype=mean.dtype)
            x = x + c_x0 * (e - S * self.solve(op, S, r2, op.A(e) + n, s.ctx.cg, s.ctx.cg_iters))
        return x
