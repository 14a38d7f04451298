"""Analytic priors with exact eps-networks and exact posteriors: the oracles of the solver tests
and of `bench/posterior.py`. No weights.

Forward process x_t = sqrt(a) x0 + sqrt(1-a) eps (a = alphas_cumprod[t]), so eps = -sqrt(1-a) score.

- Gaussian x0 ~ N(m, Σ) (Σ diagonal or full): x_t ~ N(sqrt(a) m, a Σ + (1-a) I) and
  eps(x_t, t) = sqrt(1-a) (a Σ + (1-a) I)^{-1} (x_t - sqrt(a) m), applied through the eigenbasis
  Σ = U diag(λ) U^T. Cov[x0 | x_t] = (Σ^{-1} + a/(1-a) I)^{-1}.
- Gaussian mixture sum_k π_k N(m_k, Σ_k) with full covariances: x_t is the mixture of
  N(sqrt(a) m_k, a Σ_k + (1-a) I); its score is the responsibility-weighted sum of the components'
  scores, which gives the exact (nonlinear) eps-network.
- With y = A x0 + n, n ~ N(0, s² I), each Gaussian component has the Gaussian posterior
  mean m + Σ A^T (A Σ A^T + s² I)^{-1} (y - A m), covariance Σ - Σ A^T (A Σ A^T + s² I)^{-1} A Σ,
  and the mixture's posterior is the mixture of these, reweighted by each component's evidence
  N(y; A m_k, A Σ_k A^T + s² I).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from inversa.operators.matrix import dense_matrix  # re-exported: the oracles' tests read it here
from inversa.pretrained.prior import DiffusionPrior


def _schedule(num_train_timesteps: int = 1000):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)


class _AnalyticModel(torch.nn.Module):
    """Shared plumbing: a diffusers-like `model(x_t, t).sample` with a float64 schedule."""

    def __init__(self, shape, alphas_cumprod):
        super().__init__()
        self.register_buffer("abar", torch.as_tensor(alphas_cumprod, dtype=torch.float64))
        self.config = SimpleNamespace(in_channels=shape[0], out_channels=shape[0], sample_size=tuple(shape[1:]))
        self._dtype_anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64), requires_grad=False)
        self.shape = tuple(shape)

    def _a(self, t, x):
        return self.abar[t].to(x.dtype).view(-1, 1)  # (B, 1)


class GaussianEpsModel(_AnalyticModel):
    """Closed-form eps-network of N(mean, Σ): `std` (scalar or (C,H,W)) for a diagonal Σ, or `cov`
    (n x n, n = C*H*W) for a full one."""

    def __init__(self, mean: torch.Tensor, std=None, alphas_cumprod=None, *, cov: torch.Tensor | None = None):
        mean = torch.as_tensor(mean, dtype=torch.float64)
        super().__init__(mean.shape, alphas_cumprod)
        self.register_buffer("mean", mean)
        n = mean.numel()
        if cov is None:
            var = torch.as_tensor(std, dtype=torch.float64).expand_as(mean) ** 2
            cov = torch.diag(var.reshape(-1))
        cov = torch.as_tensor(cov, dtype=torch.float64)
        if cov.shape != (n, n):
            raise ValueError(f"cov must be {n} x {n}, got {tuple(cov.shape)}")
        cov = (cov + cov.T) / 2
        evals, evecs = torch.linalg.eigh(cov)
        self.register_buffer("cov", cov)
        self.register_buffer("var", cov.diagonal().reshape(mean.shape).clone())
        self.register_buffer("evals", evals.clamp(min=0))
        self.register_buffer("evecs", evecs)
        self.full = not torch.equal(cov, torch.diag(cov.diagonal()))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor):
        a = self._a(t, x_t)
        d = x_t.flatten(1) - a.sqrt() * self.mean.to(x_t).reshape(1, -1)
        U, lam = self.evecs.to(x_t), self.evals.to(x_t)
        eps = (1 - a).sqrt() * (((d @ U) / (a * lam + 1 - a)) @ U.T)
        return SimpleNamespace(sample=eps.reshape(x_t.shape))


class GaussianMixtureEpsModel(_AnalyticModel):
    """Exact eps-network of sum_k weights_k N(means_k, covs_k): means (K, C, H, W), covs (K, n, n)."""

    def __init__(self, weights, means, covs, alphas_cumprod):
        means = torch.as_tensor(means, dtype=torch.float64)
        super().__init__(means.shape[1:], alphas_cumprod)
        w = torch.as_tensor(weights, dtype=torch.float64)
        covs = torch.as_tensor(covs, dtype=torch.float64)
        covs = (covs + covs.transpose(1, 2)) / 2
        evals, evecs = torch.linalg.eigh(covs)
        self.register_buffer("weights", w / w.sum())
        self.register_buffer("means", means)
        self.register_buffer("covs", covs)
        self.register_buffer("evals", evals.clamp(min=0))  # (K, n)
        self.register_buffer("evecs", evecs)  # (K, n, n)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor):
        a = self._a(t, x_t)  # (B, 1)
        x = x_t.flatten(1)
        logps, scores = [], []
        for w, m, lam0, U in zip(self.weights.to(x), self.means.to(x).flatten(1), self.evals.to(x), self.evecs.to(x)):
            lam = a * lam0 + 1 - a  # (B, n): the eigenvalues of a Σ_k + (1-a) I
            proj = (x - a.sqrt() * m) @ U  # coordinates in the component's eigenbasis
            logps.append(w.log() - 0.5 * ((proj**2 / lam).sum(1) + lam.log().sum(1)))
            scores.append(-(proj / lam) @ U.T)
        r = torch.softmax(torch.stack(logps, 1), dim=1)  # (B, K) responsibilities
        score = (r.unsqueeze(-1) * torch.stack(scores, 1)).sum(1)
        return SimpleNamespace(sample=(-(1 - a).sqrt() * score).reshape(x_t.shape))


def gaussian_prior(mean, std=None, *, cov=None, num_train_timesteps: int = 1000, dtype=torch.float64) -> DiffusionPrior:
    """A `DiffusionPrior` with the DPS schedule (linear betas 1e-4..0.02) and the exact eps-network of
    N(mean, diag(std²)) or, with `cov`, of N(mean, cov)."""
    sched = _schedule(num_train_timesteps)
    model = GaussianEpsModel(mean, std, sched.alphas_cumprod, cov=cov).to(dtype)
    return DiffusionPrior(model, sched, name="gaussian")


def gaussian_mixture_prior(weights, means, covs, *, num_train_timesteps: int = 1000, dtype=torch.float64) -> DiffusionPrior:
    """A `DiffusionPrior` with the exact eps-network of a Gaussian mixture with full covariances."""
    sched = _schedule(num_train_timesteps)
    model = GaussianMixtureEpsModel(weights, means, covs, sched.alphas_cumprod).to(dtype)
    return DiffusionPrior(model, sched, name="gaussian-mixture")


def smooth_covariance(shape, std: float, length: float, *, channel_corr: float = 0.8, nugget: float = 0.05) -> torch.Tensor:
    """A photo-like full covariance on (C, H, W): std² [(1-nugget) C_ch ⊗ exp(-d²/(2 length²)) + nugget I],
    C_ch with 1 on the diagonal and `channel_corr` elsewhere (neighbouring pixels strongly correlated)."""
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    p = torch.stack([yy.reshape(-1), xx.reshape(-1)], 1)
    spatial = torch.exp(-torch.cdist(p, p) ** 2 / (2 * length**2))
    ch = torch.full((c, c), channel_corr, dtype=torch.float64).fill_diagonal_(1.0)
    n = c * h * w
    return std**2 * ((1 - nugget) * torch.kron(ch, spatial) + nugget * torch.eye(n, dtype=torch.float64))


def low_rank_covariance(n: int, rank: int, std: float, *, nugget: float = 0.1, generator=None) -> torch.Tensor:
    """std² [(1-nugget) L L^T / rank + nugget I] with a random Gaussian factor L (n x rank): every
    pixel correlated with every other, average variance std²."""
    L = torch.randn(n, rank, generator=generator, dtype=torch.float64)
    return std**2 * ((1 - nugget) * L @ L.T / rank + nugget * torch.eye(n, dtype=torch.float64))


def _gaussian_conditional(m, S, A, y, sigma):
    """Posterior mean, covariance and log evidence of x ~ N(m, S) given y = A x + N(0, sigma² I)."""
    G = A @ S @ A.T + sigma**2 * torch.eye(A.shape[0], dtype=S.dtype)
    L = torch.linalg.cholesky(G)
    K = torch.cholesky_solve(A @ S, L).T  # S A^T G^{-1}
    r = y - A @ m
    mean = m + K @ r
    cov = S - K @ A @ S
    z = torch.linalg.solve_triangular(L, r.unsqueeze(1), upper=False).squeeze(1)
    log_ev = -0.5 * (z @ z) - torch.log(L.diagonal()).sum() - 0.5 * A.shape[0] * math.log(2 * math.pi)
    return mean, (cov + cov.T) / 2, float(log_ev)


@dataclass
class GaussianMixture:
    """sum_k weights_k N(means_k, covs_k) on flattened images (means (K, n), covs (K, n, n))."""

    weights: torch.Tensor
    means: torch.Tensor
    covs: torch.Tensor

    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """num samples, shape (num, n)."""
        k = torch.multinomial(self.weights, num, replacement=True, generator=generator)
        L = torch.linalg.cholesky(self.covs + 1e-12 * torch.eye(self.covs.shape[-1], dtype=self.covs.dtype))
        z = torch.randn(num, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        return self.means[k] + torch.einsum("bij,bj->bi", L[k], z)

    @property
    def mean(self) -> torch.Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    @property
    def cov(self) -> torch.Tensor:
        d = self.means - self.mean
        return (self.weights[:, None, None] * (self.covs + d[:, :, None] * d[:, None, :])).sum(0)


def prior_mixture(model) -> GaussianMixture:
    """The prior of an analytic eps-model as a mixture (one component for a Gaussian)."""
    if isinstance(model, GaussianEpsModel):
        return GaussianMixture(torch.ones(1, dtype=torch.float64), model.mean.reshape(1, -1), model.cov.unsqueeze(0))
    return GaussianMixture(model.weights, model.means.flatten(1), model.covs)


def posterior_mixture(model, operator, y_model: torch.Tensor, sigma_model: float) -> GaussianMixture:
    """The exact posterior p(x0 | y) of an analytic prior (Gaussian or mixture) on the model scale,
    y_model = A x0 + n, n ~ N(0, sigma_model² I), batch of one."""
    prior = prior_mixture(model)
    A = dense_matrix(operator.A, model.shape)
    y = y_model.reshape(-1).to(torch.float64)
    parts = [_gaussian_conditional(m, S, A, y, sigma_model) for m, S in zip(prior.means, prior.covs)]
    logw = prior.weights.log() + torch.tensor([p[2] for p in parts], dtype=torch.float64)
    return GaussianMixture(torch.softmax(logw, 0), torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts]))


def exact_posterior(prior_model: GaussianEpsModel, operator, y_model: torch.Tensor, sigma_model: float):
    """Mean (C,H,W) and covariance (n, n) of p(x0 | y) on the model's [-1, 1] scale for a Gaussian
    prior (diagonal or full Σ); y_model = A x0 + n, n ~ N(0, sigma_model² I), batch of one."""
    post = posterior_mixture(prior_model, operator, y_model, sigma_model)
    return post.means[0].reshape(prior_model.shape), post.covs[0]


def exact_x0_cov(prior_model: GaussianEpsModel, abar: float) -> torch.Tensor:
    """Cov[x0 | x_t] = (Σ^{-1} + a/(1-a) I)^{-1} at noise level abar (n x n)."""
    U, lam = prior_model.evecs, prior_model.evals
    return (U * (lam / (1 + lam * abar / (1 - abar)))) @ U.T


def exact_x0_cov_diag(prior_model: GaussianEpsModel, abar: float) -> torch.Tensor:
    """diag Cov[x0 | x_t] at noise level abar, shaped like the image."""
    return exact_x0_cov(prior_model, abar).diagonal().reshape(prior_model.shape)


# --- the linear-autoencoder oracle (latent priors) ------------------------------------------------------
class LinearAutoencoder(torch.nn.Module):
    """A fixed linear autoencoder: decode(z) = W z + b (latents (k, h, w) -> pixels (C, H, W), flattened in
    between), encode(x) = W^+ (x - b), W^+ the pseudo-inverse (so encode(decode(z)) = z when W has full
    column rank). Plain tensors in and out, the calls `LatentPrior` makes of an autoencoder."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor | None, latent_shape, image_shape):
        super().__init__()
        W = torch.as_tensor(W, dtype=torch.float64)
        n, k = math.prod(image_shape), math.prod(latent_shape)
        if W.shape != (n, k):
            raise ValueError(f"W must be {n} x {k} (pixels x latents), got {tuple(W.shape)}")
        self.register_buffer("W", W)
        self.register_buffer("W_pinv", torch.linalg.pinv(W))
        self.register_buffer("b", torch.zeros(n, dtype=torch.float64) if b is None else torch.as_tensor(b, dtype=torch.float64).reshape(n))
        self.latent_shape, self.image_shape = tuple(latent_shape), tuple(image_shape)
        self.config = SimpleNamespace(in_channels=image_shape[0], latent_channels=latent_shape[0], scaling_factor=1.0)
        self._dtype_anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64), requires_grad=False)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = z.flatten(1) @ self.W.to(z).T + self.b.to(z)
        return x.reshape(z.shape[0], *self.image_shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) - self.b.to(x)) @ self.W_pinv.to(x).T
        return z.reshape(x.shape[0], *self.latent_shape)


def linear_latent_prior(mean, cov, W, b=None, *, image_shape, downscale: int, num_train_timesteps: int = 1000,
                        dtype=torch.float64):
    """A `LatentPrior` whose latent prior is N(mean, cov) with its exact eps-network (`GaussianEpsModel`) and
    whose autoencoder is `LinearAutoencoder(W, b)`: x = W z + b is then Gaussian, and so is its posterior
    given y = A x + n (`linear_latent_posterior`). `downscale`: image side / latent side."""
    from inversa.pretrained.latent import LatentPrior

    mean = torch.as_tensor(mean, dtype=torch.float64)
    sched = _schedule(num_train_timesteps)
    model = GaussianEpsModel(mean, None, sched.alphas_cumprod, cov=cov).to(dtype)
    ae = LinearAutoencoder(W, b, mean.shape, image_shape).to(dtype)
    return LatentPrior(model, sched, ae, downscale=downscale, name="linear-latent-gaussian")


@dataclass
class LatentPosterior:
    """The exact posterior of the linear-autoencoder oracle: latent z | y ~ N(z_mean, z_cov) and pixel
    x = W z + b | y ~ N(x_mean, x_cov) (flattened, model scale; x_cov has rank <= the latent dimension)."""

    z_mean: torch.Tensor
    z_cov: torch.Tensor
    x_mean: torch.Tensor
    x_cov: torch.Tensor


def linear_latent_posterior(prior, operator, y_model: torch.Tensor, sigma_model: float) -> LatentPosterior:
    """p(z | y) and p(x | y) for `linear_latent_prior` given y_model = A x + n, n ~ N(0, sigma_model² I)
    (batch of one), derived in latent space: y_model - A b = (A W) z + n, a linear-Gaussian observation of
    z ~ N(m, Σ); then x = W z + b."""
    ae, model = prior.autoencoder, prior.model
    A = dense_matrix(operator.A, ae.image_shape)
    W, b = ae.W.double(), ae.b.double()
    y = y_model.reshape(-1).to(torch.float64) - A @ b
    z_mean, z_cov, _ = _gaussian_conditional(model.mean.reshape(-1).double(), model.cov.double(), A @ W, y, sigma_model)
    x_cov = W @ z_cov @ W.T
    return LatentPosterior(z_mean, z_cov, W @ z_mean + b, (x_cov + x_cov.T) / 2)
