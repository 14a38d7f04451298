"""The posterior covariance of a diffusion prior, matrix-free.

Second-order Tweedie: Cov[x0 | x_t] = c_t J_t, c_t = (1 - ab_t) / sqrt(ab_t), J_t = d x0hat / d x_t.
A product S v = Cov[x0 | x_t] v costs one network forward by a directional finite difference of the
denoiser, c_t (x0hat(x_t + h v) - x0hat(x_t)) / h, h = delta / rms(v) per image (no autograd), or one
forward-mode JVP (`method="jvp"`). x0hat is the unclipped Tweedie mean here: the clipped one has a zero
Jacobian on saturated pixels.

For an exact denoiser S is symmetric positive semi-definite; a network's estimate need not be.
Where it matters it is kept positive by its users: conjugate gradients on sigma² I + A S A^T stop on
non-positive curvature (`cg.cg`), and Lanczos square roots clamp negative Ritz values to 0
(`lanczos.sqrt_apply`); both only ever see the symmetric part through Rayleigh quotients.
"""

from __future__ import annotations

import torch

from inversa.errors import UserError
from inversa.pretrained.prior import Prediction
from inversa.solvers.cg import CGLog, _bview, bdot, cg
from inversa.solvers.lanczos import sqrt_apply

METHODS = ("finite-difference", "jvp")


class TweedieCovariance:
    """v -> Cov[x0 | x_t] v at one (x_t, t), given the network's eps there (one product = one forward)."""

    def __init__(self, prior, x_t: torch.Tensor, t: int, eps: torch.Tensor, *, method: str = "finite-difference",
                 delta: float = 1e-3):
        if method not in METHODS:
            raise UserError(f"covariance product {method!r} is unknown; accepted: {', '.join(METHODS)}")
        self.prior, self.t, self.method, self.delta = prior, t, method, float(delta)
        a = prior.abar(t)
        self.c = (1 - a) / a**0.5
        self.x_t = x_t.detach()
        self.x0 = ((self.x_t - (1 - a) ** 0.5 * eps.detach()) / a**0.5)  # unclipped Tweedie mean
        self.products = 0

    def _x0hat(self, z):
        return self.prior.predict(z, self.t, clip=False).x0hat

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.products += 1
        if self.method == "jvp":
            with torch.enable_grad():
                _, jv = torch.func.jvp(self._x0hat, (self.x_t,), (v.to(self.x_t),))
            return self.c * jv.detach()
        rms = (bdot(v, v) / v[0].numel()).sqrt()
        h = _bview(self.delta / torch.where(rms > 0, rms, torch.ones_like(rms)), v)
        with torch.no_grad():
            return self.c * (self._x0hat(self.x_t + h * v) - self.x0) / h

    def tilted(self, b: torch.Tensor, fraction: float, central: bool = False) -> torch.Tensor:
        """S b by a secant of the denoiser along the exponential tilt, one forward:
        (x0hat(x_t + f c_t b) - x0hat(x_t)) / f, f = `fraction`; with `central`, two forwards,
        (x0hat(x_t + f c_t b) - x0hat(x_t - f c_t b)) / (2 f): the tilts by b and by -b, whose difference
        cancels the even-order terms of x0hat along b (for a network, its curvature at the scale of the
        move) and keeps the odd ones, which move a chain between modes.

        Why: p(x0 | x_t) e^{<b, x0>} is p(x0 | x_t + c_t b) (the tilt moves x_t), so x0hat(x_t + c_t b) is
        the tilted mean, for any prior. With b = A^T u, the log-likelihood's gradient at the Gaussian
        posterior mean, f = 1 is the posterior mean under a linearised likelihood, which can move between
        the modes of a multimodal p(x0 | x_t) where the Jacobian product S b sees one mode only; f -> 0 is
        that product. Every f gives S b exactly when x0hat is affine in x_t (Gaussian priors)."""
        move = (fraction * self.c) * b
        with torch.no_grad():
            if central:
                self.products += 2
                return (self._x0hat(self.x_t + move) - self._x0hat(self.x_t - move)) / (2 * fraction)
            self.products += 1
            return (self._x0hat(self.x_t + move) - self.x0) / fraction


class PriorScaleCovariance:
    """v -> s_t v, s_t = (1/data_var + ab_t/(1-ab_t))^{-1}: Cov[x0 | x_t] of a white prior with the data's
    per-pixel variance (the scalar r_t² of ΠGDM with a finite data variance). Free (no network call);
    the stand-in where the network's Jacobian cannot be trusted: at high noise c_t = (1-ab_t)/sqrt(ab_t)
    multiplies the network's error in d x0hat / d x_t by up to 10^4."""

    def __init__(self, prior, t: int, data_var: float):
        a = prior.abar(t)
        self.c = (1 - a) / a**0.5
        self.s = 1.0 / (1.0 / data_var + a / (1 - a))
        self.products = 0

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.s * v

    def tilted(self, b: torch.Tensor, fraction: float, central: bool = False) -> torch.Tensor:
        """S b (this covariance's x0hat is affine in x_t, so every secant is the product)."""
        return self.s * b


def conditional_x0(cov, op, residual: torch.Tensor, r2: float, *, noise=None, sqrt_iters: int = 4,
                   cg_iters: int = 2, cg_tol: float = 1e-4, log: CGLog | None = None, with_image: bool = False):
    """p(x0 | x_t) ≈ N(x0hat, S) (S = `cov`, matrix-free) conditioned on y = A x0 + n, n ~ N(0, r2 I), given
    `residual` = y - A x0hat: returns (u, e) with u = (r2 I + A S A^T)^{-1} (residual - A e - n) by `cg_iters`
    CG iterations (stopping on non-positive curvature). With `noise = (z, w)` (standard normal draws, image-
    and measurement-shaped) e = S^{1/2} z by `sqrt_iters` Lanczos iterations and n = sqrt(r2) w, so
    x0hat + e + S A^T u is a draw from the Gaussian posterior (Matheron's rule: mean x0hat + S A^T (r2 I +
    A S A^T)^{-1} (y - A x0hat), covariance S - S A^T (r2 I + A S A^T)^{-1} A S); without, e = 0, n = 0 and
    x0hat + S A^T u is that mean. `op` needs only `A` and `A_adjoint` (a linearised map will do). Forwards:
    `sqrt_iters` (with noise) + one per CG iteration. `with_image`: also return A S A^T u, the A-image of the
    shift S A^T u, from the CG's own residual (rhs - r2 u - (rhs - (r2 I + A S A^T) u)), no product more."""
    rhs = residual
    e = None
    if noise is not None:
        z, w = noise
        e = sqrt_apply(cov, z, sqrt_iters)
        rhs = rhs - op.A(e) - r2**0.5 * w
    u, info = cg(lambda v: r2 * v + op.A(cov(op.A_adjoint(v))), rhs, tol=cg_tol, max_iter=cg_iters)
    if log is not None:
        log.add(info)
    if with_image:
        return u, e, rhs - info.r - r2 * u
    return u, e


def measurement_trust(op, shift: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """`shift` scaled down, per image, so that ||A shift|| <= ||image||, `image` the A-image of the Jacobian
    product's shift, A S A^T u (`conditional_x0(..., with_image=True)`). On Gaussian priors the tilt secant is
    that product and the bound never binds; a secant of a network evaluated far from where it was trained (the
    first, noisiest steps) can be many times longer, which this stops."""
    a_shift = op.A(shift)
    ratio = (bdot(a_shift, a_shift) / bdot(image, image).clamp(min=1e-30)).sqrt()
    return shift / _bview(ratio.clamp(min=1.0), shift)


def check_tilt(tilt) -> None:
    """One UserError line unless `tilt` (the fraction f of the exponential tilt) is a number in (0, 1]."""
    if isinstance(tilt, bool) or not isinstance(tilt, (int, float)) or not 0 < tilt <= 1:
        raise UserError(f"tilt (the fraction of the exponential tilt) must be a number in (0, 1], got {tilt!r}")


def conditional_shift(cov, op, u: torch.Tensor, image: torch.Tensor, mean_shift: str, tilt: float, central: bool):
    """The Gaussian conditional mean shift S A^T u of `conditional_x0`: mean_shift="covariance" by the Jacobian
    product (one forward), "tilt" by the secant along the exponential tilt (`TweedieCovariance.tilted`, one or
    two forwards) bounded by `measurement_trust`."""
    b = op.A_adjoint(u)
    if mean_shift == "covariance":
        return cov(b)
    return measurement_trust(op, cov.tilted(b, tilt, central=central), image)


def step_coefficients(prior, t: int, t_prev: int, eta: float) -> tuple[float, float]:
    """(c_x0, var): the weight of x0hat in the step mean and the step's eta² beta_tilde, read off the
    prior's own step (the mean is linear in x0hat at fixed x_t)."""
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    mean, var = prior.step_mean_var(zero, t, t_prev, Prediction(zero, one), eta=eta)
    return float(mean), float(var)
