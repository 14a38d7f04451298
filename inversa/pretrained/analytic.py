"""An analytic Gaussian prior: exact eps-network and exact posteriors, no weights.

For x0 ~ N(m, diag(s^2)) and x_t = sqrt(a) x0 + sqrt(1-a) eps, the score is Gaussian and
eps(x_t, t) = sqrt(1-a) (x_t - sqrt(a) m) / (a s^2 + 1 - a). With a linear operator and Gaussian
noise the posterior p(x0 | y) is Gaussian too, which makes it the oracle for every solver test.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from inversa.pretrained.prior import DiffusionPrior


class GaussianEpsModel(torch.nn.Module):
    """Closed-form eps-network of N(mean, diag(std^2)) (tensors of shape (C, H, W) or scalars)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor | float, alphas_cumprod: torch.Tensor):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float64)
        self.register_buffer("mean", mean)
        self.register_buffer("var", torch.as_tensor(std, dtype=torch.float64).expand_as(mean) ** 2)
        self.register_buffer("abar", torch.as_tensor(alphas_cumprod, dtype=torch.float64))
        self.config = SimpleNamespace(in_channels=mean.shape[0], out_channels=mean.shape[0], sample_size=tuple(mean.shape[1:]))
        self._dtype_anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64), requires_grad=False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor):
        a = self.abar[t].to(x_t.dtype).view(-1, 1, 1, 1)
        m, v = self.mean.to(x_t.dtype), self.var.to(x_t.dtype)
        eps = (1 - a).sqrt() * (x_t - a.sqrt() * m) / (a * v + 1 - a)
        return SimpleNamespace(sample=eps)


def gaussian_prior(mean, std, *, num_train_timesteps: int = 1000, dtype=torch.float64) -> DiffusionPrior:
    """A `DiffusionPrior` with the DPS schedule (linear betas 1e-4..0.02) and an exact eps-network."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    model = GaussianEpsModel(mean, std, sched.alphas_cumprod).to(dtype)
    return DiffusionPrior(model, sched, name="gaussian")


def dense_matrix(fn, in_shape: tuple[int, ...], dtype=torch.float64) -> torch.Tensor:
    """The matrix of a linear map `fn` on tensors of `in_shape` (batch 1), by probing the basis."""
    n = int(torch.tensor(in_shape).prod())
    basis = torch.eye(n, dtype=dtype).reshape(n, *in_shape)
    cols = torch.cat([fn(basis[i : i + 1]).reshape(1, -1) for i in range(n)])
    return cols.T  # (out_dim, n)


def exact_posterior(prior_model: GaussianEpsModel, operator, y_model: torch.Tensor, sigma_model: float):
    """Mean (C,H,W) and covariance (n, n) of p(x0 | y) on the model's [-1, 1] scale.

    y_model = A x0 + n, n ~ N(0, sigma_model^2 I), x0 ~ N(mean, diag(var)); batch of one.
    """
    shape = tuple(prior_model.mean.shape)
    A = dense_matrix(operator.A, shape)
    m, v = prior_model.mean.reshape(-1), prior_model.var.reshape(-1)
    prec = torch.diag(1 / v) + A.T @ A / sigma_model**2
    cov = torch.linalg.inv(prec)
    mean = cov @ (m / v + A.T @ y_model.reshape(-1).to(torch.float64) / sigma_model**2)
    return mean.reshape(shape), cov


def exact_x0_cov_diag(prior_model: GaussianEpsModel, abar: float) -> torch.Tensor:
    """diag Cov[x0 | x_t] at noise level abar: 1 / (1/s^2 + a/(1-a)) per coordinate."""
    return 1 / (1 / prior_model.var + abar / (1 - abar))
