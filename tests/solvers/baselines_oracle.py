"""Shared pieces of the baseline solvers' tests (DDRM, DDNM, ΠGDM, DiffPIR): a correlated Gaussian
prior, its exact posterior, and a dense-matrix operator carrying its SVD (so 2048-sample runs are
single batched matmuls instead of per-image transforms)."""

from __future__ import annotations

import torch

from inversa.operators import Blur, GaussianNoise, Inpainting, gaussian_kernel
from inversa.pretrained.analytic import exact_posterior, gaussian_prior, smooth_covariance
from oracle import MatrixOperator

SHAPE = (1, 4, 4)


def block_mask():
    """A 2x2 block missing in the middle-right of a 4x4 image (1 = observed)."""
    m = torch.ones(4, 4, dtype=torch.float64)
    m[1:3, 2:4] = 0
    return m


def correlated_prior(seed=0):
    g = torch.Generator().manual_seed(seed)
    mean = (torch.rand(SHAPE, generator=g, dtype=torch.float64) - 0.5) * 0.6
    return gaussian_prior(mean, cov=smooth_covariance(SHAPE, 0.3, 1.5))


def unit_prior(seed=0):
    """N(m, I): Cov[x0 | x_t] = (1 - ab_t) I exactly, the case ΠGDM's r_t² is built for."""
    g = torch.Generator().manual_seed(seed)
    mean = (torch.rand(SHAPE, generator=g, dtype=torch.float64) - 0.5) * 0.6
    return gaussian_prior(mean, 1.0)


class SVDMatrixOperator(MatrixOperator):
    """A dense operator whose (I + c A^T A)^{-1} is also taken through its SVD."""

    def gram_solve(self, rhs, c):
        """(I + c A^T A)^{-1} rhs = V diag(1 / (1 + c s²)) V^T rhs."""
        return self.V(self.V_T(rhs) / (1 + c * self.singulars(rhs) ** 2))


def inpainting(sigma=0.025):
    return Inpainting(block_mask(), noise=GaussianNoise(sigma)).double()


def blur(sigma=0.025):
    return SVDMatrixOperator(Blur(gaussian_kernel(3, 0.7), "circular", noise=GaussianNoise(sigma)).double(), SHAPE)


def problem_full(prior, op, seed=1):
    """x0 drawn from the full-covariance prior, y in [0, 1] units, and the exact posterior (model scale)."""
    g = torch.Generator().manual_seed(seed)
    L = torch.linalg.cholesky(prior.model.cov)
    x_m = prior.model.mean + (L @ torch.randn(L.shape[0], generator=g, dtype=torch.float64)).reshape(SHAPE)
    y = op.measure(((x_m + 1) / 2).unsqueeze(0), generator=g)
    y_m = 2 * y - op.A(torch.ones_like(x_m).unsqueeze(0))
    mean, cov = exact_posterior(prior.model, op, y_m, 2 * op.sigma)
    return y, mean, cov


def split_moments(x, mean, cov, observed):
    """(max |mean error|, variance ratios on observed, on unobserved coordinates); `observed` a bool
    mask over the flattened image (all True for operators that see every pixel)."""
    n = x.shape[0]
    err = (x.mean(0) - mean).abs().reshape(-1)
    ratio = x.reshape(n, -1).var(0) / cov.diagonal()
    return err.max().item(), ratio[observed], ratio[~observed] if (~observed).any() else ratio[observed]


def run_moments(solver, prior, op, num_steps, n=2048, *, observed=None, seed=1):
    """Posterior samples of `solver` on the problem drawn with `seed`; returns
    (mean error, variance ratios observed, unobserved, output)."""
    from oracle import posterior_samples

    y, mean, cov = problem_full(prior, op, seed) if prior.model.full else _problem_diag(prior, op, seed)
    obs = observed if observed is not None else torch.ones(mean.numel(), dtype=torch.bool)
    x, out = posterior_samples(solver, y, op, n, num_steps)
    err, ro, ru = split_moments(x, mean, cov, obs)
    print(f"{solver.name} {solver.params()} {op.name} {num_steps} steps: mean error {err:.4f}, variance ratio "
          f"observed [{ro.min():.3f}, {ro.max():.3f}], unobserved [{ru.min():.3f}, {ru.max():.3f}]")
    return err, ro, ru, out


def _problem_diag(prior, op, seed):
    from oracle import problem

    return problem(prior, op, seed)


def ys_for(prior, op, count=4):
    """`count` measurements in [0, 1] units of draws from a diagonal prior (seeds 0..count-1), stacked."""
    out = []
    for seed in range(count):
        g = torch.Generator().manual_seed(seed)
        x_m = prior.model.mean + prior.model.var.sqrt() * torch.randn(prior.model.mean.shape, generator=g, dtype=torch.float64)
        out.append(op.measure(((x_m + 1) / 2).clamp(0, 1).unsqueeze(0), generator=g))
    return torch.cat(out)
