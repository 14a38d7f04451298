"""C-DPS — coupled data/measurement diffusion (Hamidi, Yang & Liang, 2025); the step is [inferred]
(docs/methods.md).

A measurement path runs beside x_t: y_t = A x_t + sqrt(ab_t) n, so p(y_t | x_t) = N(A x_t, ab_t sy² I)
exactly, and y_{t-1} = sqrt(ab_{t-1}) y + sqrt(1-ab_{t-1}) A eps_hat ("coupled", reusing the step's eps) or
with fresh noise in place of eps_hat ("independent"). The step posterior combines the prior's reverse step
p(x_{t-1} | x_t) = N(mu_t, s_t² I) with y_{t-1} as a linear-Gaussian observation of x_{t-1}; no VJP, no step
size. Forwards per step: 1 for the paper form, 2 for the corrected one, 1 + sqrt_iters + k + 2 for the joint
step (the default: 7, 9 on deblurring).

variant="paper": y_{t-1} = A x_{t-1} + N(0, r²), r² = ab_{t-1} sy²; precision s_t^-2 I + A^T A / r², sampled
  exactly by perturb-then-solve: with D = s_t, x_{t-1} = D w, (I + D A^T A D / r²) w = mu_t / D + z1 +
  D A^T (y_{t-1} + r z2) / r² (closed form through `operator.gram_solve` for inpainting, SR and circular blur;
  CG otherwise). Limit: the coupled y_{t-1} carries the error sqrt(ab_{t-1}) A (x0 - x0hat), which this form
  ignores, so early steps trust y too much (tests/solvers/test_c_dps.py records the gaps as strict xfails).
variant="corrected": that error in the measurement covariance, R = ab_{t-1} (sy² I + A S A^T),
  S = Cov[x0 | x_t]; sampled by Matheron's rule, x = mu_t + D z, x_{t-1} = x + D² A^T (A D² A^T + R)^{-1}
  (y_{t-1} - A x - e), e ~ N(0, R). covariance="scalar" (default): S ≈ s I, s = <v, S v>/<v, v> from one
  Rademacher probe (one more forward), and the system (D² + ab_{t-1} s) A A^T + ab_{t-1} sy² is the
  operator's closed form (push-through identity); "full": the matrix-free S (CG in measurement space, one
  forward per product; e's A S^{1/2} part by Lanczos).
variant="joint" (default; covariance="full" by default with it): x_{t-1} and the coupled y_{t-1} are jointly
  Gaussian given x_t (both carry x0 - x0hat ~ N(0, S)), and x_{t-1} is drawn from that joint's conditional. Given x_t, the coupled y_{t-1} is an invertible
  affine map of y, so the step is p(x_{t-1} | x_t, y) under p(x0 | x_t) ≈ N(x0hat, S): exact ancestral
  sampling on Gaussian priors with covariance="full" (it is, draw for draw, CA-DPS's posterior step, its mean
  shift S A^T u included: the tilt secant with the trust bound by default, `mean_shift="covariance"` for the
  Jacobian product; the forms above drop the cross-covariance Cov(x_{t-1}, y_{t-1}) = c sqrt(ab_{t-1}) S A^T and
  are not exact).

The default is the joint step because it is the form that is right on the exact-posterior oracles (a correlated
Gaussian and a full-covariance mixture); on the FFHQ sample it stays within the full-covariance issue's bound of
the paper form and ties or beats the corrected one (docs/posterior.md, docs/quality.md).

Arguments: variant ("joint" | "corrected" | "paper"), covariance ("full" | "scalar"; None: "full" for the joint
step, "scalar" otherwise), y_path ("coupled" | "independent"), var_floor
(s_t² >= var_floor, binding at the last steps; default beta_1), cg_iters (None: CA-DPS's k for the joint step
with the full covariance, 4 on blur and 2 otherwise; 30, to `cg_tol`, for the other solves), cg_tol, sqrt_iters (2),
cov_product, delta, mean_shift ("tilt" | "covariance"), tilt, secant (as in CA-DPS; the joint step with the full
covariance), sigma_min (noise floor on the model scale). Measured figures: docs/posterior.md, docs/quality.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inversa.errors import UserError, check_choice, check_positive_int
from inversa.solvers.base import Context, Solver, StepState, rademacher, randn
from inversa.solvers.cg import _bview, bdot, cg
from inversa.solvers.covariance import METHODS as PRODUCTS
from inversa.solvers.ca_dps import CG_ITERS, DEFAULT_CG_ITERS, MEAN_SHIFTS, SECANTS, SQRT_ITERS
from inversa.solvers.covariance import TweedieCovariance, check_tilt, conditional_shift, conditional_x0, step_coefficients
from inversa.solvers.lanczos import sqrt_apply
from inversa.solvers.registry import register

Y_PATHS = ("coupled", "independent")
VARIANTS = ("joint", "corrected", "paper")
COVARIANCES = ("full", "scalar")
SOLVE_ITERS = 30  # CG iterations of the solves taken to tolerance (paper and corrected variants)


@dataclass
class CDPSContext(Context):
    floor: float = 0.0  # s_t² >= floor: var_floor, or beta_1 of the prior
    cg_iters: int = SOLVE_ITERS  # CG iterations of this call (`cg_iters`, or the variant's and operator's)


@register("c-dps")
class CDPS(Solver):
    """Coupled data/measurement diffusion: a Gaussian step posterior; no VJP per step."""

    label = "Coupled diffusion (C-DPS)"
    summary = ("no gradient pass, nothing to tune; exact step posterior on Gaussian priors (the joint step); "
               "variant='corrected' is the cheap form (2 network evaluations per step)")
    cost = (7, 0)  # the joint step: 1 + sqrt_iters + k + 2 (9 with k = 4 on deblurring); 2 for "corrected", 1 for "paper"
    cost_up_to = True  # CG stops early on convergence or non-positive curvature
    needs_grad = False
    context = CDPSContext

    def __init__(self, prior, *, variant: str = "joint", covariance: str | None = None, y_path: str = "coupled",
                 var_floor: float | None = None, cg_iters: int | None = None, cg_tol: float = 1e-4, sigma_min: float = 1e-3,
                 sqrt_iters: int = SQRT_ITERS, cov_product: str = "finite-difference", delta: float = 1e-3,
                 mean_shift: str = "tilt", tilt: float = 0.1, secant: str = "central", **kwargs):
        super().__init__(prior, **kwargs)
        check_choice("C-DPS variant", variant, VARIANTS)
        if covariance is None:  # the joint step is exact with the full covariance; the others were measured with the scalar
            covariance = "full" if variant == "joint" else "scalar"
        check_choice("covariance", covariance, COVARIANCES)
        check_choice("cov_product", cov_product, PRODUCTS)
        check_positive_int("sqrt_iters", sqrt_iters)
        check_choice("mean_shift", mean_shift, MEAN_SHIFTS[1:])  # no VJP here
        check_choice("secant", secant, SECANTS)
        check_tilt(tilt)
        self.mean_shift, self.tilt, self.secant = mean_shift, float(tilt), secant
        if not delta > 0:
            raise UserError(f"delta must be positive, got {delta}")
        self.covariance, self.sqrt_iters, self.cov_product, self.delta = covariance, sqrt_iters, cov_product, float(delta)
        if y_path not in Y_PATHS:
            raise UserError(f"y_path {y_path!r} is unknown; accepted: {', '.join(Y_PATHS)}")
        if var_floor is not None and not var_floor > 0:
            raise UserError(f"var_floor must be positive, got {var_floor}")
        if cg_iters is not None and not (isinstance(cg_iters, int) and cg_iters >= 1):
            raise UserError(f"cg_iters must be a positive integer, got {cg_iters!r}")
        for key, val in (("cg_tol", cg_tol), ("sigma_min", sigma_min)):
            if not val > 0:
                raise UserError(f"{key} must be positive, got {val}")
        self.y_path, self.var_floor, self.cg_iters, self.cg_tol, self.sigma_min = y_path, var_floor, cg_iters, float(cg_tol), float(sigma_min)
        if variant == "joint" and y_path != "coupled":
            raise UserError(f"C-DPS variant 'joint' conditions on the coupled measurement path; y_path {y_path!r} is not "
                            f"accepted with it (accepted: coupled)")
        self.variant = variant

    def prepare(self, problem, timesteps, num_steps=None):
        ctx = super().prepare(problem, timesteps, num_steps)
        ctx.floor = float(1 - self.prior.alphas_cumprod[0]) if self.var_floor is None else float(self.var_floor)
        truncated = self.variant == "joint" and self.covariance == "full"  # CA-DPS's k, chosen on held-out crops
        ctx.cg_iters = self.cg_iters or (CG_ITERS.get(problem.operator.name, DEFAULT_CG_ITERS) if truncated else SOLVE_ITERS)
        return ctx

    def run_metadata(self, ctx):
        return {**super().run_metadata(ctx), "var_floor": ctx.floor, "solve": "cg" if ctx.cg.solves else "closed-form",
                **ctx.cg.as_dict(), "cg_iters_used": ctx.cg_iters}

    def step(self, s: StepState) -> torch.Tensor:
        if self.variant == "joint":
            return self.joint_step(s)
        p, op, x_t = s.problem, s.problem.operator, s.x_t
        dev, dt, gens = x_t.device, x_t.dtype, p.generators
        mu, var = self.prior.step_mean_var(x_t, s.t, s.t_prev, s.pred, eta=self.eta)
        D = torch.as_tensor(var, dtype=dt, device=dev).clamp(min=s.ctx.floor).sqrt()
        ap = self.prior.abar(s.t_prev)
        if self.y_path == "coupled":  # the eps of the step (consistent with a clipped x0hat)
            noise = (x_t - self.prior.abar(s.t) ** 0.5 * s.pred.x0hat) / (1 - self.prior.abar(s.t)) ** 0.5
        else:
            noise = randn(x_t.shape, gens, device=dev, dtype=dt)
        y_prev = ap**0.5 * p.y + (1 - ap) ** 0.5 * op.A(noise)
        if self.variant == "corrected":
            return self.corrected_step(s, mu, D, ap, y_prev)
        r2 = ap * max(p.sigma, self.sigma_min) ** 2
        z1 = randn(x_t.shape, gens, device=dev, dtype=dt)
        z2 = randn(p.y.shape, gens, device=dev, dtype=dt)
        rhs = mu / D + z1 + D * op.A_adjoint(y_prev + r2**0.5 * z2) / r2  # perturbed prior mean and data
        w = op.gram_solve(rhs, float(D) ** 2 / r2) if D.numel() == 1 else None  # closed forms (SR, circular blur)
        d = op.gram_diagonal()
        if w is None and d is not None:  # per-pixel D (learned variance), diagonal A^T A
            w = rhs / (1 + D**2 * d.to(rhs) / r2)
        if w is None:
            w, info = cg(lambda v: v + D * op.A_adjoint(op.A(D * v)) / r2, rhs, tol=self.cg_tol, max_iter=s.ctx.cg_iters)
            s.ctx.cg.add(info)
        return D * w

    def corrected_step(self, s: StepState, mu: torch.Tensor, D: torch.Tensor, ap: float, y_prev: torch.Tensor) -> torch.Tensor:
        """x_{t-1} ~ N(mu, D²) conditioned on y_{t-1} = A x_{t-1} + e, e ~ N(0, R), R = ab_{t-1} (r² I + A S A^T),
        S = Cov[x0 | x_t]: the coupled y_{t-1} carries the error sqrt(ab_{t-1}) (A (x0 - x0hat) + n). Sampled
        by Matheron's rule, x = mu + D z; x_{t-1} = x + D² A^T (A D² A^T + R)^{-1} (y_{t-1} - A x - e'), e' ~ N(0, R)
        (its A S^{1/2} part by Lanczos). covariance="full": CG in measurement space, one forward per product;
        "scalar": S ≈ s I, s = <v, S v> / <v, v> from one Rademacher probe, then the system is
        (D² + ab_{t-1} s) A A^T + ab_{t-1} r² I, solved in closed form by the operator (push-through identity)."""
        p, op, x_t = s.problem, s.problem.operator, s.x_t
        dev, dt, gens = x_t.device, x_t.dtype, p.generators
        cov = TweedieCovariance(self.prior, x_t, s.t, s.pred.eps, method=self.cov_product, delta=self.delta)
        r2 = max(p.sigma, self.sigma_min) ** 2
        x = mu + D * randn(x_t.shape, gens, device=dev, dtype=dt)
        z = randn(x_t.shape, gens, device=dev, dtype=dt)
        n = randn(p.y.shape, gens, device=dev, dtype=dt)
        if self.covariance == "scalar":
            v = rademacher(x_t.shape, gens, device=dev, dtype=dt)
            sbar = _bview((bdot(v, cov(v)) / bdot(v, v)).clamp(min=0), x_t)
            e = ap**0.5 * (r2**0.5 * n + op.A(sbar.sqrt() * z))
        else:
            e = ap**0.5 * (r2**0.5 * n + op.A(sqrt_apply(cov, z, self.sqrt_iters)))
        rhs = y_prev - op.A(x) - e
        D2 = D**2
        if self.covariance == "scalar" and D.numel() == 1:
            c1, c2 = D2 + ap * sbar, ap * r2  # A^T (c1 A A^T + c2)^{-1} b = (c1 A^T A + c2)^{-1} A^T b, per image
            return x + D2 * self._scalar_solve(op, op.A_adjoint(rhs), c1, c2, s.ctx)
        matvec = (lambda u: op.A(D2 * op.A_adjoint(u)) + ap * (r2 * u + op.A(cov(op.A_adjoint(u))))) \
            if self.covariance == "full" else (lambda u: op.A(D2 * op.A_adjoint(u)) + ap * (r2 * u + sbar * op.A(op.A_adjoint(u))))
        u, info = cg(matvec, rhs, tol=self.cg_tol, max_iter=s.ctx.cg_iters)
        s.ctx.cg.add(info)
        return x + D2 * op.A_adjoint(u)

    def joint_step(self, s: StepState) -> torch.Tensor:
        """x_{t-1} ~ p(x_{t-1} | x_t, y_{t-1}) with x_{t-1} and the coupled y_{t-1} jointly Gaussian given x_t:
        x_{t-1} = mu_t + c (x0 - x0hat) + s_t z and y_{t-1} = sqrt(ab_{t-1}) (A x0 + n) + sqrt(1-ab_{t-1}) A eps_hat,
        x0 - x0hat ~ N(0, S), so Cov(x_{t-1}, y_{t-1}) = c sqrt(ab_{t-1}) S A^T and Var y_{t-1} = ab_{t-1} (A S A^T + r² I)
        (c: the weight of x0hat in the step mean). Given x_t, y_{t-1} is an invertible affine map of y, so
        this is p(x_{t-1} | x_t, y) under p(x0 | x_t) ≈ N(x0hat, S): x_{t-1} = mu_t + c (e + S A^T u) + s_t z,
        (u, e) the Matheron draw of `covariance.conditional_x0`; exact when p(x0 | x_t) is Gaussian (the same
        step as CA-DPS's posterior draw). covariance="full": S matrix-free (Lanczos + CG, one forward per
        product); "scalar": S ≈ s I from one Rademacher probe, then closed forms."""
        p, op, x_t = s.problem, s.problem.operator, s.x_t
        dev, dt, gens = x_t.device, x_t.dtype, p.generators
        x0 = s.pred.x0hat
        mu, var = self.prior.step_mean_var(x_t, s.t, s.t_prev, s.pred, eta=self.eta)
        c = step_coefficients(self.prior, s.t, s.t_prev, self.eta)[0]
        cov = TweedieCovariance(self.prior, x_t, s.t, s.pred.eps, method=self.cov_product, delta=self.delta)
        r2 = max(p.sigma, self.sigma_min) ** 2
        z, w = randn(x_t.shape, gens, device=dev, dtype=dt), randn(p.y.shape, gens, device=dev, dtype=dt)
        if self.covariance == "full":
            u, e, image = conditional_x0(cov, op, p.y - op.A(x0), r2, noise=(z, w), sqrt_iters=self.sqrt_iters,
                                         cg_iters=s.ctx.cg_iters, cg_tol=self.cg_tol, log=s.ctx.cg, with_image=True)
            shift = e + conditional_shift(cov, op, u, image, self.mean_shift, self.tilt, self.secant == "central")
        else:
            v = rademacher(x_t.shape, gens, device=dev, dtype=dt)
            sbar = _bview((bdot(v, cov(v)) / bdot(v, v)).clamp(min=0), x_t)
            e = sbar.sqrt() * z  # S A^T (r² + s A A^T)^{-1} b = s (s A^T A + r²)^{-1} A^T b (push-through)
            shift = e + sbar * self._scalar_solve(op, op.A_adjoint(p.y - op.A(x0 + e) - r2**0.5 * w), sbar.flatten(), r2, s.ctx)
        x = mu + c * shift
        if not s.last:
            x = x + torch.as_tensor(var, dtype=dt, device=dev) ** 0.5 * randn(x_t.shape, gens, device=dev, dtype=dt)
        return x

    def _scalar_solve(self, op, b: torch.Tensor, c1: torch.Tensor, c2: float, ctx: CDPSContext) -> torch.Tensor:
        """(c1 A^T A + c2 I)^{-1} b with c1 per image: the operator's closed form image by image, else CG."""
        cv = _bview(c1.flatten(), b)
        d = op.gram_diagonal()
        if d is not None:
            return b / (cv * d.to(b) + c2)
        ratio = (c1.flatten() / c2).tolist()
        first = op.gram_solve(b[:1], ratio[0])
        if first is not None:  # the operator's closed form, image by image (c differs per image)
            return torch.cat([first] + [op.gram_solve(b[i : i + 1], r) for i, r in enumerate(ratio[1:], 1)]) / c2
        w, info = cg(lambda v: c2 * v + cv * op.A_adjoint(op.A(v)), b, tol=self.cg_tol, max_iter=ctx.cg_iters)
        ctx.cg.add(info)
        return w
