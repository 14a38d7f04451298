"""CMI-DPS — conditional mutual information guidance (Hamidi & Yang, 2025), as a plug-in term.

[inferred] (docs/methods.md, "CMI-DPS"): under Gaussian x0 | x_t with S_t = c_t J_t, c_t = (1-ab)/sqrt(ab),
J_t = d x0hat / d x_t,  I(x0; y | x_t) = 1/2 logdet(I + sy^-2 A S_t A^T). With a Rademacher probe v
in measurement space and the inverse held constant, the Hutchinson surrogate
    s(x_t) = (c_t / (2 sy²)) (A^T u)^T J_t (A^T v),   u = stopgrad((I + sy^-2 c_t A J_t A^T)^{-1} v)
has E[grad s] = grad I (inverse="cg": u by CG, each iteration one J_t product; inverse="first-order":
u = v, the gradient of the first-order term 1/2 tr(sy^-2 A S_t A^T)). The step is the base solver's
step plus eta_t grad s (ascent: keep information about y in x_t).

grad s = k H b, the Hessian of a^T x0hat (a = A^T u, b = A^T v, k = c_t / (2 sy²)) applied to b: no
symmetry of J_t is needed. Two ways (`hvp`):
- "finite-difference" (default): k (J(x_t + delta b)^T a - J(x_t)^T a) / delta, two plain VJPs and
  one more forward per probe (first-order accurate in delta; roundoff ~ float eps / delta); the
  cheaper of the two on CPU (docs/performance.md).
- "exact": double backward, d<J_t^T a, b>/dx_t on the base solver's own forward (create_graph, then a
  backward through the backward graph: slower on CPU and twice the activation memory).
J_t q products inside the CG inverse use the double-VJP trick, not torch.func.jvp: g(z) = J_t^T z
built once with create_graph (linear in z), then J_t q = d<g(z), q>/dz is one backward per product
(forward-mode CPU kernels are slower here: docs/performance.md). Fused attention kernels have no double backward, so the forward runs
with plain (math) attention whenever a double backward is taken.

Plug-in: `make_solver("cmi-dps", prior, base="ca-dps" | "dps" | ..., eta=None, probes=1,
inverse="first-order" | "cg", **base_params)` builds the base solver's class with this term on
top, so it composes with any gradient-guided solver of the project. The default base is CA-DPS, the
full-covariance posterior step (solvers/ca_dps.py): on priors with correlated pixels the term cannot
correct its base's bias, and DPS's step is biased there at every step count, so CMI on DPS (the paper's
form, `base="dps"`) stays farther from exact posteriors than the CA-DPS step does (docs/posterior.md).
Parameters ([inferred]):
- eta, eta_mode: "relative" (default) eta_t = eta ||g_base|| / ||grad s|| per image, i.e. the CMI
  step is a fixed fraction of the base guidance; "absolute": eta_t = eta T / num_steps (the same
  per-step rescaling as DPS's zeta). eta=None: the base's weight (`ETAS`: 0.01 on CA-DPS, 0.1 on the
  others), chosen on held-out training photos (docs/quality.md);
- probes: Rademacher probes averaged per step (each one Hessian-vector product: two backward
  passes, plus one forward for "finite-difference");
- hvp, fd_delta: how the Hessian-vector product is taken (above) and the finite-difference step on
  the model scale (default 1e-3: truncation and float32 roundoff both ~1e-4 relative);
- inverse, inverse_iters, inverse_tol: first-order or CG inverse (J_t assumed symmetric, as it
  is for an exact denoiser);
- sampler_eta: the DDIM eta of the shared loop (`eta` is the CMI weight here, as in the paper).
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from inversa.errors import UserError
from inversa.solvers.base import GuidanceTerm, StepState, rademacher
from inversa.solvers.cg import CGLog, bdot, cg
from inversa.solvers.lanczos import log_quadratic
from inversa.solvers.registry import register

INVERSES = ("first-order", "cg")
HVPS = ("finite-difference", "exact")
ETA_MODES = ("relative", "absolute")
SIGMA_MIN = 1e-3  # noise floor (model scale) when the base solver has none: I needs sy > 0
# The information term's weight by base when `eta` is None, chosen on held-out training photos (docs/quality.md):
# on CA-DPS a larger weight loses on photos, and on the exact posteriors the weights tried tie (docs/posterior.md).
ETAS = {"ca-dps": 0.01}
DEFAULT_ETA = 0.1


def _math_attention():
    return sdpa_kernel(SDPBackend.MATH)  # differentiable twice (fused kernels are not)


def jacobian_products(x0hat: torch.Tensor, x_t: torch.Tensor):
    """q -> J_t q, J_t = d x0hat / d x_t, by the double-VJP trick: g(z) = J_t^T z is built once
    (linear in z), then each product is one backward pass through it."""
    z = torch.zeros_like(x0hat, requires_grad=True)
    (g,) = torch.autograd.grad(x0hat, x_t, grad_outputs=z, create_graph=True)
    return lambda q: torch.autograd.grad(g, z, grad_outputs=q, retain_graph=True)[0].detach()


def _info_matvec(jvp, operator, c_over_s2):
    """w -> (I + sy^-2 c_t A J_t A^T) w in measurement space."""
    return lambda w: w + c_over_s2 * operator.A(jvp(operator.A_adjoint(w)))


def _c(prior, t):
    a = prior.abar(t)
    return (1 - a) / a**0.5


def _view(v, like):
    return v.view(-1, *([1] * (like.ndim - 1)))


def mutual_information(prior, x_t: torch.Tensor, t: int, operator, sigma: float, *, probes: int = 32,
                       lanczos_steps: int = 30, generators=None, clip: bool = False) -> torch.Tensor:
    """Estimate of I = 1/2 logdet(I + sy^-2 A S_t A^T) per image, S_t = c_t J_t (model scale, sigma = sy):
    stochastic Lanczos quadrature with Rademacher probes, J_t products by the double-VJP trick."""
    sigma = max(sigma, SIGMA_MIN)
    yshape = tuple(operator.output_shape(tuple(x_t.shape)))
    with torch.enable_grad(), _math_attention():
        x = x_t.detach().requires_grad_(True)
        M = _info_matvec(jacobian_products(prior.predict(x, t, clip=clip).x0hat, x), operator, _c(prior, t) / sigma**2)
        total = 0.0
        for _ in range(probes):
            v = rademacher(yshape, generators, device=x_t.device, dtype=x_t.dtype)
            total = total + log_quadratic(M, v, lanczos_steps)
    return 0.5 * total / probes


def _surrogate_grad(x0hat, x_t, operator, v, u, k, predict=None, delta=1e-3):
    """grad_{x_t} of s = k <A^T u, J_t A^T v> = k <J_t^T A^T u, A^T v> (a Hessian-vector product): with
    `predict` (z -> x0hat(z)) a forward difference of two VJPs, k (J(x+δb)^T a - J(x)^T a) / δ; without,
    the double backward on x0hat's own graph."""
    a, b = operator.A_adjoint(u), operator.A_adjoint(v)
    if predict is not None:
        (ja,) = torch.autograd.grad(x0hat, x_t, grad_outputs=a, retain_graph=True)  # the base still needs the graph
        x_plus = (x_t.detach() + delta * b).requires_grad_(True)
        (ja_plus,) = torch.autograd.grad(predict(x_plus), x_plus, grad_outputs=a)
        return (k / delta) * (ja_plus - ja)
    (gw,) = torch.autograd.grad(x0hat, x_t, grad_outputs=a, create_graph=True)
    if not gw.requires_grad:  # x0hat affine in x_t (a Gaussian prior): J_t is constant, grad s = 0
        return torch.zeros_like(x_t)
    return torch.autograd.grad(gw, x_t, grad_outputs=k * b, retain_graph=True)[0]


def information_gradient(prior, x_t: torch.Tensor, t: int, operator, sigma: float, *, generators=None,
                         inverse: str = "cg", inverse_iters: int = 50, inverse_tol: float = 1e-6, clip: bool = False,
                         hvp: str = "exact", fd_delta: float = 1e-3):
    """One-probe Hutchinson estimate of grad_{x_t} I per image (the term CMI-DPS adds, before eta_t)."""
    sigma = max(sigma, SIGMA_MIN)
    v = rademacher(tuple(operator.output_shape(tuple(x_t.shape))), generators, device=x_t.device, dtype=x_t.dtype)
    with torch.enable_grad(), _math_attention():
        x = x_t.detach().requires_grad_(True)
        x0hat = prior.predict(x, t, clip=clip).x0hat
        c = _c(prior, t)
        u = v if inverse == "first-order" else cg(_info_matvec(jacobian_products(x0hat, x), operator, c / sigma**2), v,
                                                   tol=inverse_tol, max_iter=inverse_iters)[0]
        predict = (lambda z: prior.predict(z, t, clip=clip).x0hat) if hvp == "finite-difference" else None
        return _surrogate_grad(x0hat, x, operator, v, u, c / (2 * sigma**2), predict, fd_delta)


@register("cmi-dps", composes="ca-dps")
class CMI(GuidanceTerm):
    """CMI guidance (the information term) on top of a gradient-guided base solver (`base`, default "ca-dps")."""

    label = "Covariance-aware DPS + information guidance (CMI)"
    summary = ("CA-DPS's posterior step plus a term that keeps what the measurement says; "
               "base=dps is the paper's lighter DPS form")
    cost = (8, 2)  # on CA-DPS (7, 0; 9 on deblurring) + the finite difference's forward; the Hessian-vector product's two VJPs
    cost_up_to = True  # CA-DPS's CG stops early on convergence
    base_renames = {"sampler_eta": "eta"}  # `eta` is the CMI weight here, as in the paper

    def __init__(self, *, eta: float | None = None, eta_mode: str = "relative", probes: int = 1, inverse: str = "first-order",
                 inverse_iters: int = 10, inverse_tol: float = 1e-3, hvp: str = "finite-difference",
                 fd_delta: float = 1e-3, sampler_eta: float = 1.0):
        if inverse not in INVERSES:
            raise UserError(f"inverse {inverse!r} is unknown; accepted: {', '.join(INVERSES)}")
        if eta_mode not in ETA_MODES:
            raise UserError(f"eta_mode {eta_mode!r} is unknown; accepted: {', '.join(ETA_MODES)}")
        if eta is not None and not eta >= 0:
            raise UserError(f"eta must be non-negative, got {eta}")
        for key, val in (("probes", probes), ("inverse_iters", inverse_iters)):
            if not (isinstance(val, int) and val >= 1):
                raise UserError(f"{key} must be a positive integer, got {val!r}")
        if hvp not in HVPS:
            raise UserError(f"hvp {hvp!r} is unknown; accepted: {', '.join(HVPS)}")
        for key, val in (("inverse_tol", inverse_tol), ("fd_delta", fd_delta)):
            if not val > 0:
                raise UserError(f"{key} must be positive, got {val}")
        self.hvp, self.fd_delta = hvp, float(fd_delta)
        self.eta = None if eta is None else float(eta)
        self.eta_mode, self.probes, self.sampler_eta = eta_mode, probes, sampler_eta
        self.inverse, self.inverse_iters, self.inverse_tol = inverse, inverse_iters, float(inverse_tol)

    def prepare(self, solver, ctx):
        return CGLog()  # the CG solves of the inverse, over the call

    def params(self, solver) -> dict:
        return {"base": type(solver).name, "cmi_eta": self.weight(solver), "eta_mode": self.eta_mode, "probes": self.probes,
                "inverse": self.inverse, "inverse_iters": self.inverse_iters, "inverse_tol": self.inverse_tol,
                "hvp": self.hvp, **({"fd_delta": self.fd_delta} if self.hvp == "finite-difference" else {}),
                "jvp": "double-vjp" if self.inverse == "cg" else None}

    def record(self, state) -> dict:
        return state.as_dict("inverse_")

    def weight(self, solver) -> float:
        """eta, or the base's weight when it is None (`ETAS`)."""
        return self.eta if self.eta is not None else ETAS.get(type(solver).name, DEFAULT_ETA)

    @staticmethod
    def sigma(solver, problem) -> float:
        """The measurement noise on the model scale, floored (I needs sy > 0): the base's sigma_min if any."""
        return max(problem.sigma, getattr(solver, "sigma_min", SIGMA_MIN))

    def predict_mode(self):
        if self.hvp == "finite-difference" and self.inverse == "first-order":
            return contextlib.nullcontext()  # no double backward: fused attention is fine
        return _math_attention()

    def estimate(self, solver, s: StepState, log: CGLog) -> torch.Tensor:
        """Hutchinson estimate of grad I (mean over `probes` probes), on the base's forward."""
        op, sigma, x0hat, x_t = s.problem.operator, self.sigma(solver, s.problem), s.pred.x0hat, s.x_t
        c = _c(solver.prior, s.t)
        if self.inverse == "cg":
            jvp = jacobian_products(x0hat, x_t)

            def counted(q):
                s.ctx.vjp += 1  # one backward pass per product
                return jvp(q)

            M = _info_matvec(counted, op, c / sigma**2)
        predict = (lambda z: solver.predict(z, s.t, s.ctx).x0hat) if self.hvp == "finite-difference" else None
        g = 0.0
        for _ in range(self.probes):
            v = rademacher(tuple(op.output_shape(tuple(x_t.shape))), s.problem.generators, device=x_t.device, dtype=x_t.dtype)
            u = v
            if self.inverse == "cg":
                u, info = cg(M, v, tol=self.inverse_tol, max_iter=self.inverse_iters)
                log.add(info)
            g = g + _surrogate_grad(x0hat, x_t, op, v, u, c / (2 * sigma**2) / self.probes, predict, self.fd_delta)
            s.ctx.vjp += 2  # a Hessian-vector product: two backward passes
        return g

    def combine(self, solver, s: StepState, log, g_base, g_info) -> torch.Tensor:
        if self.eta_mode == "relative":
            ratio = bdot(g_base, g_base).sqrt() / bdot(g_info, g_info).sqrt().clamp(min=1e-30)
            return g_base + self.weight(solver) * _view(ratio, g_info) * g_info
        return g_base + self.weight(solver) * s.ctx.stride * g_info
