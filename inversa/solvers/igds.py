"""IGDS — information-guided diffusion sampling for dataset distillation (Ye, Hamidi, Li et al., 2025).

A distilled set should keep the prototype information I(X;Y) and the contextual information
H(X|Y) of the data, the latter weighted more as the images per class (IPC) grow. With a classifier
q(y|x) and class centroids Q_y = E[q(.|x) | Y=y] over real images, the variational bounds give the
per-image objective ([inferred], docs/methods.md "IGDS")

    L(x) = log q(y|x) + beta(IPC) * KL(q(.|x) || Q_y)

where the first term pulls x towards what the classifier finds typical of y and the second pushes
its predicted distribution away from the class average (diversity). Guidance is classifier-guidance
style, through the Tweedie mean like DPS: x_{t-1} = x'_{t-1} + scale * beta_t * grad_{x_t} L(D(x0hat(x_t))),
with D the VAE decoder for latent priors (identity in pixel space) and beta_t = 1 - abar_t/abar_{t_prev}
the variance of the (respaced) step — the Dhariwal & Nichol step Sigma * s * grad, which keeps the
total pull roughly independent of the number of steps. It is applied only inside a window of
noise levels. All terms are per image, so image i never depends on its batch-mates.

Defaults (ours; the paper gives no code): scale 5, window t/T in [0.2, 0.8] (above 0.8 x0hat is a
blurred class mean the classifier cannot read; below 0.2 the gradient only adds adversarial detail),
beta(IPC) = 0.1 * ln(IPC) ("log": 0 at IPC 1, where one prototype per class is all there is, then
growing with IPC as the paper prescribes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from inversa.errors import UserError
from inversa.operators.noise import as_generators
from inversa.solvers.base import Context, Problem, Solver, SolverOutput, StepState

BETA_SCHEDULES = ("log", "sqrt", "constant")
DEFAULT_SCALE = 5.0
DEFAULT_BETA0 = 0.1
DEFAULT_WINDOW = (0.2, 0.8)


def beta_for_ipc(ipc: int, beta0: float = DEFAULT_BETA0, schedule: str = "log") -> float:
    """beta(IPC): "log" = beta0 ln(IPC), "sqrt" = beta0 (sqrt(IPC) - 1), "constant" = beta0."""
    if not isinstance(ipc, int) or ipc < 1:
        raise UserError(f"ipc must be a positive integer, got {ipc!r}")
    if schedule == "log":
        return beta0 * math.log(ipc)
    if schedule == "sqrt":
        return beta0 * (math.sqrt(ipc) - 1)
    if schedule == "constant":
        return beta0
    raise UserError(f"beta_schedule {schedule!r} is not known; accepted: {', '.join(BETA_SCHEDULES)}")


@dataclass
class ConditionalContext(Context):
    labels: torch.Tensor | None = None  # the class of each image being generated


class ConditionalSampler(Solver):
    """Plain class-conditional sampling (the "unguided" baseline) on a `ClassConditionalPrior`.

    `generate(labels, generator=[one per image], num_steps=50)` -> SolverOutput with images in [0, 1]
    (decoded to pixels for latent priors)."""

    name = "unguided"
    context = ConditionalContext

    def __init__(self, prior, **kwargs):
        super().__init__(prior, **kwargs)
        if not hasattr(prior, "check_labels"):
            raise UserError(f"model {prior.name} is not a class-conditional prior")

    def predict(self, x_t: torch.Tensor, t: int, ctx=None):
        return self.prior.predict(x_t, t, clip=self.clip_x0, class_labels=ctx.labels)

    def to_image(self, x: torch.Tensor, ctx=None) -> torch.Tensor:
        with torch.no_grad():
            return ((self.prior.decode(x) + 1) / 2).clamp(0, 1)

    def params(self) -> dict:
        return {**super().params(), "cfg_scale": self.prior.cfg_scale}

    def generate(self, labels, *, generator=None, num_steps: int = 50, size: int | None = None, callback=None,
                 progress: bool = True) -> SolverOutput:
        labels = self.prior.check_labels(labels)
        shape = self.prior.sample_shape(len(labels), size)
        gens = as_generators(generator, shape[0])
        problem = Problem(y=None, operator=None, sigma=0.0, generators=gens)
        out = self.run(shape, problem, num_steps=num_steps, callback=callback, progress=progress,
                       ctx_fields={"labels": labels})
        out.metadata["class_labels"] = labels.tolist()
        return out


class IGDS(ConditionalSampler):
    """Information-guided sampling. `classifier`: an `inversa.distill.classifier.Classifier` (images
    in [0, 1]); `centroids`: (C, C) tensor of Q_y rows; `ipc`: images per class of the set being made.
    Named parameters: `scale` (guidance strength), `beta` (fixed contextual weight; default
    beta(IPC) from `beta0` and `beta_schedule`), `window` (t/T range where guidance acts)."""

    name = "igds"
    needs_grad = True

    def __init__(self, prior, classifier, centroids, *, ipc: int, scale: float = DEFAULT_SCALE, beta: float | None = None,
                 beta0: float = DEFAULT_BETA0, beta_schedule: str = "log", window=DEFAULT_WINDOW, **kwargs):
        super().__init__(prior, **kwargs)
        if not scale >= 0:
            raise UserError(f"scale must be a non-negative number, got {scale}")
        if beta is not None and not beta >= 0:
            raise UserError(f"beta must be a non-negative number, got {beta}")
        if isinstance(window, str):  # "0.2,0.8" from a command line
            window = window.split(",")
        try:
            window = tuple(float(w) for w in window)
        except (TypeError, ValueError):
            raise UserError(f"window must be two fractions like 0.2,0.8 (t/T), got {window!r}") from None
        if len(window) != 2 or not 0 <= window[0] <= window[1] <= 1:
            raise UserError(f"window must be two fractions 0 <= start <= end <= 1 of t/T, got {window}")
        centroids = torch.as_tensor(centroids, dtype=torch.float32)
        n = prior.num_classes
        if centroids.shape != (n, n) and centroids.shape[0] < n:
            raise UserError(f"centroids have shape {tuple(centroids.shape)}; the model has {n} classes")
        self.classifier = classifier
        self.centroids = centroids.to(prior.device)
        self.ipc, self.scale, self.window = ipc, float(scale), window
        self.beta0, self.beta_schedule = float(beta0), beta_schedule
        self.beta = float(beta) if beta is not None else beta_for_ipc(ipc, beta0, beta_schedule)

    def params(self) -> dict:
        return {**super().params(), "ipc": self.ipc, "beta": self.beta, "window": list(self.window)}

    def in_window(self, t: int) -> bool:
        T = self.prior.num_train_timesteps
        return self.window[0] * T <= t <= self.window[1] * T

    def objective(self, x0hat: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L, log q(y|x), KL(q(.|x) || Q_y)) per image, for x0hat in model space."""
        x = (self.prior.decode(x0hat) + 1) / 2
        logp = self.classifier(x).float().log_softmax(-1)
        log_qy = logp.gather(1, labels[:, None]).squeeze(1)
        log_Q = self.centroids[labels].clamp_min(1e-6).log()  # bounded: rare classes of Q_y must not blow up KL
        kl = (logp.exp() * (logp - log_Q)).sum(1)
        return log_qy + self.beta * kl, log_qy, kl

    def guidance(self, s: StepState) -> torch.Tensor | float:
        if self.scale == 0 or not self.in_window(s.t):
            return 0.0
        L, _, _ = self.objective(s.pred.x0hat, s.ctx.labels)
        g = s.vjp(L, s.x_t)
        step_var = 1 - self.prior.abar(s.t) / self.prior.abar(s.t_prev)
        return self.scale * step_var * g.to(s.x_t.dtype)
