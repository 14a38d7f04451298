"""The exact-posterior benchmark: solvers' samples against the exact posterior of correlated priors.

A setting is an analytic prior (`inversa.pretrained.analytic`: a Gaussian with a photo-like full
covariance, or a Gaussian mixture whose components have full low-rank-plus-diagonal covariances),
an operator (block inpainting, blur, SR x2, as dense matrices), one measurement y of a draw from the
prior, and the exact posterior p(x0 | y) (a reweighted mixture of Gaussian posteriors). A solver runs
N chains on y with x0 clipping off and its samples are scored on the model scale before the loop's
final clamp:

- sliced Wasserstein-2 to N exact posterior samples, beside the floor (two exact sets) and the prior
  alone (prior samples against the posterior: what ignoring y scores);
- the same on the observed and unobserved coordinates (inpainting: the mask; other operators:
  coordinates whose exact posterior variance is below half their prior variance count as observed);
- the worst posterior-mean error and the range of variance ratios (sample / exact) on each split.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from inversa.operators import Blur, GaussianNoise, Inpainting, SuperResolution, gaussian_kernel
from inversa.operators.matrix import MatrixOperator
from inversa.pretrained.analytic import (GaussianMixture, gaussian_mixture_prior, gaussian_prior, low_rank_covariance,
                                         posterior_mixture, prior_mixture, smooth_covariance)

SIGMA = 0.025  # measurement noise std in [0, 1] units (0.05 on the model scale, the literature's)


@dataclass
class Setting:
    name: str
    prior: object  # DiffusionPrior with an exact eps-network
    operator: object
    y: torch.Tensor  # (1, ...) measurement in [0, 1] units
    posterior: GaussianMixture  # exact, model scale, flattened
    prior_dist: GaussianMixture
    observed: torch.Tensor  # (n,) bool


def _block_mask(h, w, block):
    m = torch.ones(h, w, dtype=torch.float64)
    top, left = (h - block) // 2, (w - block) // 2
    m[top : top + block, left : left + block] = 0
    return m


def correlated_gaussian(shape=(1, 8, 8)):
    """N(m, Σ), Σ photo-like (std 0.3, correlation length 2 px, channels correlated 0.8)."""
    g = torch.Generator().manual_seed(7)
    mean = 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
    return gaussian_prior(mean, cov=smooth_covariance(shape, 0.3, 2.0))


def correlated_mixture(shape=(3, 4, 4), components=3):
    """A mixture of `components` Gaussians with distinct means (±0.4) and full rank-4-plus-diagonal covariances."""
    g = torch.Generator().manual_seed(11)
    n = math.prod(shape)
    means = 0.4 * torch.sign(torch.randn(components, *shape, generator=g, dtype=torch.float64))
    covs = torch.stack([low_rank_covariance(n, 4, 0.2, generator=g) for _ in range(components)])
    return gaussian_mixture_prior(torch.ones(components), means, covs)


def operators_for(shape):
    """Dense forms of block inpainting (the central half-size block hidden), a 3x3 Gaussian blur and SR x2."""
    c, h, w = shape
    noise = GaussianNoise(SIGMA)
    ops = {"inpaint": Inpainting(_block_mask(h, w, h // 2), noise=noise),
           "blur": Blur(gaussian_kernel(3, 1.0), noise=noise),
           "sr2": SuperResolution(2, noise=noise)}
    return {k: MatrixOperator.of(op.double(), shape) for k, op in ops.items()}


PRIORS = {"gauss": lambda: correlated_gaussian((1, 8, 8)), "mix": lambda: correlated_mixture((3, 4, 4))}


def make_setting(prior_name: str, op_name: str, seed: int = 0) -> Setting:
    prior = PRIORS[prior_name]()
    shape = prior.model.shape
    op = operators_for(shape)[op_name]
    g = torch.Generator().manual_seed(1000 + seed)
    pdist = prior_mixture(prior.model)
    x_m = pdist.sample(1, g).reshape(1, *shape)
    y = op.measure((x_m + 1) / 2, generator=g)
    y_m = 2 * y - op.A(torch.ones_like(x_m))
    post = posterior_mixture(prior.model, op, y_m, 2 * SIGMA)
    if op_name == "inpaint":
        d = op.M.T @ op.M
        observed = d.diagonal() > 0.5
    else:
        observed = post.cov.diagonal() < 0.5 * pdist.cov.diagonal()
    return Setting(f"{prior_name}-{op_name}", prior, op, y, post, pdist, observed)


def sliced_w2(a: torch.Tensor, b: torch.Tensor, num_projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 between two equal-size sample sets (N, d): random unit directions,
    1-D W2 by sorting, root mean square over directions."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(a.shape[1], num_projections, generator=g, dtype=torch.float64)
    d /= d.norm(dim=0, keepdim=True)
    pa, pb = (a.double() @ d).sort(0).values, (b.double() @ d).sort(0).values
    return float(((pa - pb) ** 2).mean().sqrt())


def score(samples: torch.Tensor, s: Setting, reference: torch.Tensor) -> dict:
    """Distances and split moments of model-scale samples (N, n) against the exact posterior."""
    out = {"sw2": sliced_w2(samples, reference)}
    mean, var = s.posterior.mean, s.posterior.cov.diagonal()
    for part, idx in (("obs", s.observed), ("unobs", ~s.observed)):
        if not bool(idx.any()):
            continue
        out[f"sw2_{part}"] = sliced_w2(samples[:, idx], reference[:, idx])
        out[f"mean_err_{part}"] = float((samples[:, idx].mean(0) - mean[idx]).abs().max())
        ratio = samples[:, idx].var(0) / var[idx]
        out[f"var_ratio_{part}"] = (float(ratio.min()), float(ratio.max()))
    return out


def baselines(s: Setting, num: int, seed: int = 0) -> dict:
    """The floor (a second exact set) and the prior alone, scored like a solver."""
    g = torch.Generator().manual_seed(seed)
    ref = s.posterior.sample(num, g)
    return {"exact": score(s.posterior.sample(num, g), s, ref), "prior": score(s.prior_dist.sample(num, g), s, ref)}, ref


def run_solver(s: Setting, solver, num: int, num_steps: int, reference: torch.Tensor, seed: int = 0) -> dict:
    """`num` chains of `solver` (a Solver instance, clip_x0=False) on the setting's y, scored."""
    torch.manual_seed(seed)
    last = {}
    t0 = time.perf_counter()
    out = solver(s.y.expand(num, *s.y.shape[1:]), s.operator, num_steps=num_steps, progress=False,
                 callback=lambda st, x: last.update(x=x))
    seconds = time.perf_counter() - t0
    x = last["x"].flatten(1)
    ok = torch.isfinite(x).all(1)
    res = score(x, s, reference) if bool(ok.all()) else {"sw2": float("nan")}
    res.update(nfe_per_step=out.nfe / max(out.metadata.get("num_steps", num_steps), 1),
               vjp_per_step=out.vjp / max(out.metadata.get("num_steps", num_steps), 1), seconds=seconds,
               nonfinite=int((~ok).sum()))
    return res
