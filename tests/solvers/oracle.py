"""Shared pieces of the solver oracle tests: exact posteriors, a dense-matrix operator, a Gaussian
mixture prior with an exact (nonlinear) eps-network, and the invariance checks every solver passes."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from inversa.operators import GaussianNoise, SuperResolution
from inversa.operators.matrix import MatrixOperator as DenseOperator
from inversa.pretrained.analytic import dense_matrix, exact_posterior, gaussian_prior
from inversa.pretrained.prior import DiffusionPrior


def gens(seeds):
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def half_mask():
    m = torch.zeros(4, 4, dtype=torch.float64)
    m.view(-1)[::2] = 1
    return m


class MatrixOperator(DenseOperator):
    """A given operator's dense matrix (the library's `MatrixOperator`): the same linear map, applied as
    one batched matmul (the statistical tests push 4096 images through it thousands of times)."""

    def __init__(self, op, shape, noise=None):
        y_shape = tuple(op.output_shape((1, *shape)))[1:]
        super().__init__(dense_matrix(op.A, tuple(shape)), shape, y_shape, noise if noise is not None else op.noise, op.name)


def problem(prior, op, seed=1):
    """A draw x0 from the prior, its measurement y in [0, 1] units and the exact posterior (model scale)."""
    g = torch.Generator().manual_seed(seed)
    x_m = prior.model.mean + prior.model.var.sqrt() * torch.randn(prior.model.mean.shape, generator=g, dtype=torch.float64)
    y = op.measure(((x_m + 1) / 2).unsqueeze(0), generator=g)
    y_m = 2 * y - op.A(torch.ones_like(x_m).unsqueeze(0))
    mean, cov = exact_posterior(prior.model, op, y_m, 2 * op.sigma)
    return y, mean, cov


def posterior_samples(solver, y, op, n, num_steps, seed=0):
    """n samples on the model scale, before the loop's clamp to [0, 1] (which would cut the tails).
    The global generator (one batched draw per step) keeps 4096-image runs fast."""
    torch.manual_seed(seed)
    last = {}
    out = solver(y.expand(n, -1, -1, -1), op, num_steps=num_steps, progress=False, callback=lambda s, x: last.update(x=x))
    return last["x"], out


def moments_error(x, mean, cov):
    """(max |mean error|, per-coordinate variance ratios)."""
    n = x.shape[0]
    return (x.mean(0) - mean).abs().max().item(), x.reshape(n, -1).var(0) / cov.diagonal()


class MixtureEps(torch.nn.Module):
    """Exact eps-network of sum_k N(m_k, s^2 I) / K: nonlinear, so Cov[x0|x_t] depends on x_t."""

    def __init__(self, means, std, abar):
        super().__init__()
        self.register_buffer("means", means.double())
        self.register_buffer("abar", torch.as_tensor(abar, dtype=torch.float64))
        self.std = std
        self.config = SimpleNamespace(in_channels=means.shape[1], out_channels=means.shape[1], sample_size=tuple(means.shape[2:]))
        self._dtype_anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64), requires_grad=False)

    def forward(self, x, t):
        a = self.abar[t].to(x).view(-1, 1, 1, 1, 1)
        var = a * self.std**2 + 1 - a
        d = x.unsqueeze(1) - a.sqrt() * self.means.to(x).unsqueeze(0)  # (B, K, C, H, W)
        w = torch.softmax(-(d**2).flatten(2).sum(-1) / (2 * var.flatten(1)), 1)
        score = -(w.view(*w.shape, 1, 1, 1) * d).sum(1) / var[:, 0]
        return SimpleNamespace(sample=-(1 - a[:, 0]).sqrt() * score)


def mixture_prior():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    means = torch.stack([torch.full((1, 4, 4), 0.4), torch.full((1, 4, 4), -0.4)]).double()
    means[1, 0, ::2] = 0.1
    return DiffusionPrior(MixtureEps(means, 0.2, sched.alphas_cumprod), sched, name="mixture")


def check_seeds_and_batch_invariance(solver, op, ys, num_steps=8):
    """Same generators -> bit-identical; image 2 alone == image 2 in a batch of 4; other seeds differ."""
    batch = solver(ys, op, generator=gens([10, 11, 12, 13]), num_steps=num_steps, progress=False).x
    alone = solver(ys[2:3], op, generator=gens([12]), num_steps=num_steps, progress=False).x
    again = solver(ys, op, generator=gens([10, 11, 12, 13]), num_steps=num_steps, progress=False).x
    other = solver(ys, op, generator=gens([20, 21, 22, 23]), num_steps=num_steps, progress=False).x
    assert torch.equal(batch[2:3], alone)
    assert torch.equal(batch, again)
    assert not torch.equal(batch, other)


def check_super_resolution(make):
    """A size-changing operator: the solver starts from the image shape and returns it."""
    prior = gaussian_prior(torch.zeros(3, 8, 6, dtype=torch.float64), 0.3)
    op = SuperResolution(2, noise=GaussianNoise(0.025)).double()
    y = op.measure(torch.full((2, 3, 8, 6), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    out = make(prior)(y, op, generator=gens([0, 1]), num_steps=6, progress=False)
    assert y.shape == (2, 3, 4, 3) and out.x.shape == (2, 3, 8, 6)
    assert torch.isfinite(out.x).all() and 0 <= out.x.min() and out.x.max() <= 1
    return out
