"""A diffusers-style entry point over `inversa.restoration.restore`:

    pipe = InversaPipeline.from_pretrained("inversa-photo-64")       # or a folder, a hub id
    out = pipe(photo, task="sr", factor=4, num_inference_steps=50, generator=0)
    out.images[0].save("restored.png")

`image`, `mask` and `kernel` take what `restore` takes (paths, PIL images, NumPy arrays, tensors);
the mask follows the diffusers inpainting convention for images and arrays (white = repaint).
Everything else — operators, padding, solvers, checks — is `restore`'s; this module only maps the
diffusers vocabulary onto it and formats the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from inversa.errors import UserError

OUTPUT_TYPES = ("pil", "np", "pt")


@dataclass
class InversaPipelineOutput:
    """`images`: the restorations as a list of PIL images, a float array (B, H, W, C) in [0, 1] or a
    tensor (B, C, H, W) in [0, 1] (`output_type`); `measurement` and `naive` (the operator's simple
    inverse) in the same form; `metrics` (PSNR/SSIM in simulate mode) and run `metadata` (NFE, ...)."""

    images: list | np.ndarray | torch.Tensor
    measurement: list | np.ndarray | torch.Tensor
    naive: list | np.ndarray | torch.Tensor
    metrics: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)


class InversaPipeline:
    """A prior plus `restore`; call it on a damaged photo (or a clean one with `simulate=True`)."""

    def __init__(self, prior):
        self.prior = prior

    @classmethod
    def from_pretrained(cls, name_or_path=None, *, scheduler=None, device: str = "auto", **prior_options) -> "InversaPipeline":
        """Load a prior: a bundled name (default the bundled photo prior), a diffusers folder, a hub id
        or a loaded diffusers pipeline. `scheduler`: a diffusers scheduler to use instead of the
        model's own (a `DDIMScheduler` makes the solvers take DDIM steps). `prior_options`:
        precision, channels_last, checkpointing, compile."""
        from inversa.device import resolve_device
        from inversa.pretrained import DiffusionPrior, load_prior

        prior = load_prior(name_or_path, device=resolve_device(device), **prior_options)
        if scheduler is not None:
            if not hasattr(scheduler, "alphas_cumprod"):
                raise UserError(f"scheduler of type {type(scheduler).__name__}: expected a diffusers DDPM/DDIM-style "
                                f"scheduler with alphas_cumprod")
            prior = DiffusionPrior(prior.model, scheduler, name=prior.name, source=prior.source)
        return cls(prior)

    @property
    def scheduler(self):
        return self.prior.scheduler

    @property
    def device(self) -> torch.device:
        return self.prior.device

    def to(self, device) -> "InversaPipeline":
        from inversa.device import resolve_device

        self.prior.to(resolve_device(device))
        return self

    def __call__(self, image, task: str | None = None, *, mask=None, kernel=None, factor: int = 4,
                 blur_std: float = 3.0, sigma: float | None = None, preset: str | None = None, simulate: bool = False,
                 solver: str | None = None, num_inference_steps: int | None = None, quality: str = "balanced",
                 num_samples: int = 1, generator=None, output_type: str = "pil", callback_on_step_end=None,
                 solver_params: dict | None = None, max_size: int = 512, progress: bool = True) -> InversaPipelineOutput:
        """Restore `image`. `task`: inpaint (give `mask`, white = missing), deblur (`kernel` or
        `blur_std`), sr (`factor`) or denoise; or `preset` with `simulate` for benchmark degradations.
        Without `solver`, the `quality` preset ("fast", "balanced", "best") picks the solver, its steps
        and warm start for the task; `num_inference_steps` and `solver_params` override the preset's.
        `num_samples` k > 1: the mean of k restorations (see `restore`).
        `generator`: an int seed or a `torch.Generator` (its initial seed is used, so a call is
        reproducible from the generator's seed alone). `callback_on_step_end(pipe, step, timestep,
        callback_kwargs)` is called after every step with {"latents": x_{t-1}, "x0_pred": x0hat} on
        the model's [-1, 1] scale; what it returns is not fed back into the loop."""
        from inversa.restoration import restore

        if output_type not in OUTPUT_TYPES:
            raise UserError(f"output_type {output_type!r} is unknown; accepted: {', '.join(OUTPUT_TYPES)}")
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise UserError(f"callback_on_step_end of type {type(callback_on_step_end).__name__}: expected a callable")
        if isinstance(mask, torch.Tensor):  # diffusers masks: 1 = repaint; restore's tensors: 1 = observed
            mask = 1 - mask.float().squeeze()
        result = restore(image, task=task, preset=preset, simulate=simulate, mask=mask, kernel=kernel,
                         blur_std=blur_std, factor=factor, sigma=sigma, solver=solver, steps=num_inference_steps,
                         quality=quality, samples=num_samples, seed=_seed(generator), prior=self.prior,
                         max_size=max_size, solver_params=solver_params,
                         callback=self._callback(callback_on_step_end), progress=progress)
        fmt = lambda x: _format(x, output_type)  # noqa: E731
        return InversaPipelineOutput(images=fmt(result.restored), measurement=fmt(result.measurement),
                                     naive=fmt(result.naive), metrics=result.metrics, metadata=result.metadata,
                                     messages=result.messages)

    def _callback(self, fn):
        if fn is None:
            return None

        def call(state, x_prev):
            x0 = state.pred.x0hat.detach() if state.pred is not None else None
            fn(self, state.index, state.t, {"latents": x_prev.detach(), "x0_pred": x0})

        return call


def _seed(generator) -> int:
    if generator is None:
        return 0
    if isinstance(generator, torch.Generator):
        return int(generator.initial_seed())
    if isinstance(generator, (list, tuple)) and len(generator) == 1:
        return _seed(generator[0])
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool) and generator >= 0:
        return int(generator)
    raise UserError(f"generator {generator!r}: expected a non-negative int seed or a torch.Generator")


def _format(x: torch.Tensor, output_type: str):
    """(B, C, H, W) in [0, 1] -> the requested output type."""
    if output_type == "pt":
        return x
    if output_type == "np":
        return x.permute(0, 2, 3, 1).float().cpu().numpy()
    from inversa.imageio import tensor_to_pil

    return [tensor_to_pil(xi) for xi in x]
