"""LC-DPS — the latent variant of C-DPS (Hamidi, Yang & Liang, 2025): a Gaussian step posterior in the latent
space of a latent diffusion model, with the decoder linearised at the current estimate. The C-DPS paper
names a latent variant; its form is not known to us, so the step below is [inferred] (docs/methods.md,
"LC-DPS").

Linearisation. With z0hat the latent Tweedie mean at z_t and D the decoder,
    D(z) ≈ D(z0hat) + J_D (z - z0hat),     J_D = dD/dz at z0hat,
so y = A D(z0) + n is, to first order, a linear-Gaussian observation of the latent z0:
    y - A D(z0hat) ≈ H (z0 - z0hat) + n,   H = A J_D,   n ~ N(0, r² I).
Step. p(z0 | z_t) ≈ N(z0hat, S), S = Cov[z0 | z_t] = c_t dz0hat/dz_t (second-order Tweedie, matrix-free:
`covariance.TweedieCovariance`, one network forward per product), is conditioned on y:
    E[z0 | z_t, y] = z0hat + S H^T u,   u = (r² I + H S H^T)^{-1} (y - A D(z0hat))   (CG in measurement space)
and, with step_variance="posterior" (default), z0* is drawn from N(E[z0 | z_t, y], S - S H^T (r² + H S H^T)^{-1} H S)
by Matheron's rule inside the same solve: z0* = z0hat + e + S H^T (r² I + H S H^T)^{-1} (y - A D(z0hat) - H e - n'),
e = S^{1/2} xi by `sqrt_iters` Lanczos iterations, n' ~ N(0, r² I). Then z_{t-1} ~ q(z_{t-1} | z_t, z0*), the
DDPM posterior (the prior's own step with z0* in place of z0hat). Since p(z_{t-1} | z_t, y) =
integral q(z_{t-1} | z_t, z0) p(z0 | z_t, y) dz0 exactly, the step is exact at any step count when the decoder
is linear (J_D = W) and the latent prior Gaussian (S exact): the linear-autoencoder oracle
(`inversa.pretrained.analytic.linear_latent_prior`, tests/solvers/test_latent_oracle.py).
step_variance="prior" steps from the conditional mean E[z0 | z_t, y] with the plain DDPM variance
(no Lanczos draw; exact only as the steps grow).

What is C-DPS here and what is not. From C-DPS: a closed-form Gaussian step posterior instead of a
likelihood gradient (no VJP through the network, no step size), sampled by Matheron's rule with CG in
measurement space, the measurement covariance corrected by A S A^T (the "corrected" variant). Not from
C-DPS: the measurement path y_{t-1}; the step conditions on y itself through z0. [inferred] reason: the
y_{t-1} form is measured not exact on Gaussian priors even in pixel space (tests/solvers/test_c_dps.py,
docs/posterior.md), and the linearised decoder adds no reason to prefer it.

Products. J_D v and J_D^T w are matrix-free, by the double-VJP trick on one decoder forward per step
(g(w) = J_D^T w built once with its graph; J_D v = d<g(w), v>/dw), attention in its twice-differentiable
(math) kernel. One CG iteration costs one network forward (S), one decoder JVP and one decoder VJP.

Cost per step (defaults): 1 forward (the prediction) + sqrt_iters (Lanczos) + cg_iters (CG) + 1 (the shift
S H^T u) network forwards, no network VJP; decoder: 1 forward, cg_iters + 1 VJPs, cg_iters + 1 JVPs (counted
as decoder_forward / decoder_vjp / decoder_jvp in the metadata). CG stops early on convergence.
Arguments: cg_iters, cg_tol, sqrt_iters, step_variance ("posterior" | "prior"), cov_product
("finite-difference" | "jvp"), delta (finite-difference step), sigma_min (noise floor on the model
scale, so noiseless problems keep a proper likelihood); the latent loop's sampler, eta, clip_x0, start.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from inversa.errors import UserError, check_choice, check_positive_int
from inversa.pretrained.prior import Prediction
from inversa.solvers.base import StepState, randn
from inversa.solvers.covariance import METHODS as PRODUCTS
from inversa.solvers.covariance import TweedieCovariance, conditional_x0
from inversa.solvers.latent import LatentContext, LatentSolver
from inversa.solvers.registry import register

STEP_VARIANCES = ("posterior", "prior")


class LinearisedDecoder:
    """D around z0: `x0` = D(z0) and the matrix-free products `jvp(v)` = J_D v, `vjp(w)` = J_D^T w, all from
    one decoder forward (the double-VJP trick); each product is counted in `ctx`."""

    def __init__(self, solver: LatentSolver, z0: torch.Tensor, ctx: LatentContext):
        self.ctx = ctx
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):  # fused attention kernels are not twice differentiable
            self.z = z0.detach().requires_grad_(True)
            self.out = solver.decode(self.z, ctx)
            self.w = torch.zeros_like(self.out, requires_grad=True)
            (self.g,) = torch.autograd.grad(self.out, self.z, grad_outputs=self.w, create_graph=True)  # J^T w, linear in w
        self.x0 = self.out.detach()

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        self.ctx.decoder_jvp += 1
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
            return torch.autograd.grad(self.g, self.w, grad_outputs=v, retain_graph=True)[0].detach()

    def vjp(self, w: torch.Tensor) -> torch.Tensor:
        self.ctx.decoder_vjp += 1
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
            return torch.autograd.grad(self.out, self.z, grad_outputs=w, retain_graph=True)[0].detach()


@register("lc-dps")
class LCDPS(LatentSolver):
    """Latent C-DPS: the Gaussian step posterior with the decoder linearised at z0hat; no VJP through the network."""

    label = "Latent coupled diffusion (LC-DPS)"
    summary = ("for latent models: a closed-form step through the linearised decoder, nothing to tune, no "
               "gradient pass through the network; the slowest per step")
    cost = (14, 0)  # 1 + sqrt_iters + cg_iters + 1 with the defaults
    cost_up_to = True  # CG stops early on convergence or non-positive curvature
    paper_steps = None

    def __init__(self, prior, *, cg_iters: int = 8, cg_tol: float = 1e-4, sqrt_iters: int = 4,
                 step_variance: str = "posterior", cov_product: str = "finite-difference", delta: float = 1e-3,
                 sigma_min: float = 1e-3, **kwargs):
        super().__init__(prior, **kwargs)
        check_choice("step_variance", step_variance, STEP_VARIANCES)
        check_choice("cov_product", cov_product, PRODUCTS)
        check_positive_int("cg_iters", cg_iters)
        check_positive_int("sqrt_iters", sqrt_iters)
        for key, val in (("cg_tol", cg_tol), ("delta", delta), ("sigma_min", sigma_min)):
            if not (isinstance(val, (int, float)) and val > 0):
                raise UserError(f"{key} must be a positive number, got {val!r}")
        self.cg_iters, self.cg_tol, self.sqrt_iters = cg_iters, float(cg_tol), sqrt_iters
        self.step_variance, self.cov_product = step_variance, cov_product
        self.delta, self.sigma_min = float(delta), float(sigma_min)

    def run_metadata(self, ctx):
        return {**super().run_metadata(ctx), **ctx.cg.as_dict()}

    def posterior_x0(self, s: StepState) -> torch.Tensor:
        """z0*: a draw from (or, step_variance="prior", the mean of) p(z0 | z_t, y) under the linearised decoder."""
        p, op, gens = s.problem, s.problem.operator, s.problem.generators
        z0 = s.pred.x0hat.detach()
        dev, dt = z0.device, z0.dtype
        cov = TweedieCovariance(self.prior, s.x_t, s.t, s.pred.eps, method=self.cov_product, delta=self.delta)
        dec = LinearisedDecoder(self, z0, s.ctx)
        r2 = max(p.sigma, self.sigma_min) ** 2
        noise = None
        if self.step_variance == "posterior":
            noise = (randn(z0.shape, gens, device=dev, dtype=dt), randn(p.y.shape, gens, device=dev, dtype=dt))
        H = SimpleNamespace(A=lambda v: op.A(dec.jvp(v)), A_adjoint=lambda w: dec.vjp(op.A_adjoint(w)))  # H = A J_D
        u, e = conditional_x0(cov, H, p.y - op.A(dec.x0), r2, noise=noise, sqrt_iters=self.sqrt_iters,
                              cg_iters=self.cg_iters, cg_tol=self.cg_tol, log=s.ctx.cg)
        shift = cov(H.A_adjoint(u))
        return z0 + shift if e is None else z0 + e + shift

    def step(self, s: StepState) -> torch.Tensor:
        z0 = self.posterior_x0(s)
        var = None if s.pred.var_values is None else s.pred.var_values.detach()  # a learned-range variance, if any
        with torch.no_grad():
            mean, var = self.prior.step_mean_var(s.x_t.detach(), s.t, s.t_prev, Prediction(s.pred.eps.detach(), z0, var),
                                                 eta=self.eta)
            if s.last:
                return mean
            noise = randn(mean.shape, s.problem.generators, device=mean.device, dtype=mean.dtype)
            return mean + torch.as_tensor(var, dtype=mean.dtype, device=mean.device) ** 0.5 * noise
