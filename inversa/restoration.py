"""Restore one photo: the library behind `inversa restore` and the web UI.

Two modes:
- damaged (default): the file IS the measurement y — a photo with holes (give the mask, white =
  missing), a blurred photo (give the kernel or a Gaussian std), a low-resolution photo (give the
  factor) or a noisy photo;
- simulate (`simulate=True`, implied by `preset`): the file is a clean photo; it is degraded with
  the preset (or task parameters), restored, and PSNR/SSIM are reported against it.

Sizes: images whose longer side exceeds `max_size` are downscaled (a message says so); sides that
are not a multiple of what the network needs are reflect-padded and cropped back afterwards.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inversa.errors import UserError
from inversa.imageio import as_image, save_image, side_by_side

TASKS = ("inpaint", "deblur", "sr", "denoise")
MIN_SIDE = 8  # smallest restored side accepted (smaller is a size mistake, not a photo)


def progress_enabled(progress: bool = True) -> bool:
    """`progress`, unless the environment asks for silence (TQDM_DISABLE=1, as tqdm reads it)."""
    return bool(progress) and os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("1", "true", "yes")


@dataclass
class RestoreResult:
    restored: torch.Tensor  # (1, C, H, W) in [0, 1]
    measurement: torch.Tensor
    naive: torch.Tensor  # the operator's simple inverse, image-sized
    clean: torch.Tensor | None = None
    metrics: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)


def make_operator(task: str, image_size: tuple[int, int], *, mask=None, kernel=None, blur_std: float = 3.0,
                  blur_size: int = 61, factor: int = 4, sigma: float | None = None, seed: int = 0):
    """The operator for a task on a clean image of `image_size`; `mask`: a tensor with 1 = observed,
    or a path to an image whose white pixels are missing."""
    from inversa import operators as ops

    noise = ops.GaussianNoise(ops.DEFAULT_SIGMA if sigma is None else sigma)
    if task == "inpaint":
        if mask is None:
            return ops.make_preset("box_inpaint", image_size, index=0, seed=seed, sigma=noise.sigma)
        m = ops.load_mask(mask, image_size) if isinstance(mask, (str, Path)) else mask
        return ops.Inpainting(m, noise=noise)
    if task == "deblur":
        k = ops.load_kernel(kernel) if kernel is not None else ops.gaussian_kernel(blur_size, blur_std)
        return ops.Blur(k, noise=noise)
    if task == "sr":
        return ops.SuperResolution(factor, noise=noise)
    if task == "denoise":
        return ops.Identity(noise=noise)
    raise UserError(f"unknown task {task!r}; accepted: {', '.join(TASKS)}")


def _pad_to(x: torch.Tensor, multiple: int, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def restore(image, *, task: str | None = None, preset: str | None = None, simulate: bool = False, mask=None,
            kernel=None, blur_std: float = 3.0, factor: int = 4, sigma: float | None = None, solver: str | None = None,
            steps: int | None = None, seed: int = 0, model=None, prior=None, max_size: int = 512, device: str = "auto",
            solver_params: dict | None = None, quality: str = "balanced", samples: int = 1, keep_observed: bool = False,
            prior_options: dict | None = None, callback=None, progress: bool = True) -> RestoreResult:
    """Restore `image`: a file path, a PIL image, a NumPy array (H, W[, C], uint8 or float in [0, 1])
    or a tensor (1, C, H, W) in [0, 1]. `mask` (inpainting, white/1 = missing in files, 1 = observed in
    tensors) and `kernel` take paths or arrays. `device`: "auto" (CUDA when available), "cpu", "cuda:N".
    `model`: a bundled name, diffusers folder or hub id, or give a loaded `prior`. Every argument is
    checked before the model is loaded. See the module docstring for the two modes.

    Which solver: with `solver=None` the `quality` preset ("fast", "balanced", "best";
    `inversa.quality`) gives the solver, its steps and parameters for the task; `steps` and
    `solver_params` given here override the preset's. A latent model (`model`/`prior` a `LatentPrior`,
    or a folder that loads as one) takes `inversa.quality.LATENT_PRESETS` (LC-DPS) instead, and a named
    pixel-space solver is refused in one line naming the latent ones (and the other way round). A named `solver` runs with `steps` (default 50)
    and its own defaults. `samples=k` restores k samples as one batch (seeds seed .. seed+k-1; the
    first is the one-sample result) and returns their mean, an estimate of the posterior mean:
    higher PSNR, smoother than one sample. `keep_observed=True` (inpainting with sigma 0 only) puts
    the observed pixels back exactly."""
    from inversa import operators as ops
    from inversa.device import resolve_device
    from inversa.params import check_solver_params
    from inversa.pretrained import load_prior
    from inversa.solvers import make_solver

    _check_settings(task, preset, sigma, steps, factor, max_size, blur_std, seed)
    _check_output_options(samples, keep_observed, task, preset, sigma)
    dev = resolve_device(device)
    asked = (steps, dict(solver_params or {}))  # the caller's own, before a preset fills them in
    solver, steps, solver_params, chosen = _choose(quality, task or preset, solver, steps, solver_params,
                                                   kind=_kind(prior if prior is not None else model))
    solver_params = check_solver_params(solver, solver_params)  # unknown names/values before any loading
    progress = progress_enabled(progress)
    simulate = simulate or preset is not None
    x = as_image(image)
    if kernel is not None:
        kernel = ops.load_kernel(kernel)  # a missing or malformed kernel file before any loading
    if mask is not None and not isinstance(mask, torch.Tensor):  # files, PIL, arrays: white = missing
        mask = ops.load_mask(mask if isinstance(mask, (str, Path, np.ndarray)) else np.asarray(mask))
    if mask is not None and not simulate and tuple(mask.shape[-2:]) != tuple(x.shape[-2:]):  # before loading a model
        raise UserError(f"mask is {mask.shape[-1]}x{mask.shape[-2]} but the image is {x.shape[-1]}x{x.shape[-2]}; they must match")
    scale_for_size = factor if (task == "sr" and not simulate) else 1
    x, mask, messages = _fit_size(x, mask, scale_for_size, max_size)
    if solver.lower() != "naive":
        prior = prior if prior is not None else load_prior(model, device=dev, **(prior_options or {}))
        solver, steps, solver_params, chosen = _fit_to_prior(prior, (solver, steps, solver_params, chosen), asked,
                                                             quality, task or preset, messages)
    solver_obj = make_solver(solver, prior, **solver_params)
    multiple = getattr(getattr(solver_obj, "prior", None), "size_multiple", 1)
    gens = [torch.Generator().manual_seed(seed + i) for i in range(samples)]
    y, op, clean, (h, w) = _measurement(x, mask, task=task, preset=preset, simulate=simulate, multiple=multiple,
                                        factor=factor, scale_for_size=scale_for_size, kernel=kernel,
                                        blur_std=blur_std, sigma=sigma, seed=seed)
    if messages and progress:
        print("; ".join(messages), file=sys.stderr)
    with torch.no_grad():
        naive = op.naive_inverse(y).clamp(0, 1)
    out = solver_obj(y.expand(samples, *y.shape[1:]), op, generator=gens, num_steps=steps, callback=callback,
                     progress=progress)
    x_out = out.x.mean(0, keepdim=True) if samples > 1 else out.x
    if keep_observed:  # inpainting, noise-free (checked): the observed pixels are the answer there
        x_out = torch.where(op.mask.bool(), y.to(x_out.dtype), x_out)
    output = _output_note(samples, keep_observed)
    crop = lambda t: t[..., :h, :w]  # noqa: E731
    Hp, Wp = out.x.shape[-2:]  # the padded size: the measurement is cropped in proportion
    hy, wy = math.ceil(h * y.shape[-2] / Hp), math.ceil(w * y.shape[-1] / Wp)
    result = RestoreResult(restored=crop(x_out).cpu(), measurement=y[..., :hy, :wy].cpu(), naive=crop(naive).cpu(),
                           clean=crop(clean).cpu() if clean is not None else None, messages=messages)
    result.messages.append(output)
    result.metadata = {"output": output, "mode": "simulate" if simulate else "damaged", "task": task, "preset": preset, "seed": seed,
                       "operator": op.metadata(), **out.metadata, "quality": chosen, "steps": steps, "samples": samples,
                       "keep_observed": keep_observed}
    if clean is not None:
        from inversa.eval.metrics import psnr, ssim

        for key, est in (("restored", result.restored), ("naive", result.naive)):
            result.metrics[f"psnr_{key}"] = float(psnr(est, result.clean)[0])
            result.metrics[f"ssim_{key}"] = float(ssim(est, result.clean)[0])
    return result


def _fit_to_prior(prior, choice, asked, quality, task, messages):
    """The (solver, steps, params, preset) `choice` for the loaded prior: a latent model whose kind showed only
    once loaded (a folder or hub id) takes the latent preset in place of the pixel one (with the caller's own
    `asked` steps and params); a DDIMScheduler prior samples with DDIM steps unless a sampler is given."""
    from inversa.params import check_solver_params
    from inversa.solvers import SOLVERS
    from inversa.solvers.registry import solver_key

    solver, steps, params, chosen = choice
    if chosen is not None and _kind(prior) == "latent" and not getattr(SOLVERS[solver_key(solver)], "latent", False):
        solver, steps, params, chosen = _choose(quality, task, None, *asked, kind="latent")
        params = check_solver_params(solver, params)
    if "sampler" not in params and type(prior.scheduler).__name__ == "DDIMScheduler":
        params = {**params, "sampler": "ddim"}  # the scheduler's own sampler
        messages.append("the prior's scheduler is a DDIMScheduler: sampling with DDIM steps (solver_params "
                        "sampler='ddpm' for ancestral steps)")
    return solver, steps, params, chosen


def _kind(prior) -> str:
    """"latent" for a latent prior (a UNet over autoencoder latents), else "pixel" (also for names and folders,
    which say their kind only once loaded)."""
    return "latent" if getattr(prior, "kind", None) == "latent" else "pixel"


def _choose(quality, task, solver, steps, solver_params, kind: str = "pixel"):
    """(solver, steps, params, quality preset used or None): the `quality` preset's choice for the
    task and the prior's kind (`inversa.quality.LATENT_PRESETS` for latent priors) unless a solver is
    named; steps and params given by the caller win over the preset's."""
    from inversa.quality import check_quality, setting

    quality = check_quality(quality)
    params = dict(solver_params or {})
    if solver is not None:
        return str(solver), steps or 50, params, None
    s = setting(quality, task, kind)
    return s.solver, steps or s.steps, {**s.params, **params}, quality


def _check_output_options(samples, keep_observed, task, preset, sigma) -> None:
    """One UserError line for a bad `samples` or a `keep_observed` that cannot apply."""
    from inversa.operators import DEFAULT_SIGMA
    from inversa.quality import TASK_OF_PRESET

    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= 64:
        raise UserError(f"samples must be a whole number from 1 to 64, got {samples!r}")
    if keep_observed:
        if (task or TASK_OF_PRESET.get(preset)) != "inpaint":
            raise UserError(f"keep_observed applies to inpainting only, got task {task or preset!r}")
        if sigma is None or sigma != 0:
            raise UserError("keep_observed needs noise-free observed pixels: give sigma 0 (the default noise "
                            f"level is {DEFAULT_SIGMA}); got sigma {sigma!r}")


def _output_note(samples: int, keep_observed: bool) -> str:
    """What the user gets, in words (shown by the CLI and the web UI)."""
    what = (f"the mean of {samples} restorations (an estimate of the posterior mean: higher PSNR, smoother than "
            "one sample)") if samples > 1 else "one restoration (a sample from the posterior: sharp, may invent detail)"
    return f"result: {what}" + ("; observed pixels kept exactly" if keep_observed else "")


def _fit_size(x, mask, scale_for_size: int, max_size: int):
    """Downscale so the restoration's longer side is at most `max_size`; refuse tiny restorations."""
    messages = []
    if max(x.shape[-2:]) * scale_for_size > max_size:
        s = max_size / (max(x.shape[-2:]) * scale_for_size)
        new = (max(1, round(x.shape[-2] * s)), max(1, round(x.shape[-1] * s)))
        messages.append(f"image {x.shape[-1]}x{x.shape[-2]} downscaled to {new[1]}x{new[0]} (max_size {max_size})")
        x = F.interpolate(x, size=new, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        if mask is not None and isinstance(mask, torch.Tensor):
            mask = F.interpolate(mask.float().reshape(1, 1, *mask.shape[-2:]), size=new, mode="nearest")[0, 0]
    if min(x.shape[-2:]) * scale_for_size < MIN_SIDE:
        raise UserError(f"the restoration would be {x.shape[-1] * scale_for_size}x{x.shape[-2] * scale_for_size} pixels: "
                        f"too small (at least {MIN_SIDE} a side); give a larger image, or raise max_size / lower factor")
    return x, mask, messages


def _measurement(x, mask, *, task, preset, simulate, multiple, factor, scale_for_size, kernel, blur_std, sigma, seed):
    """(y, operator, clean or None, (h, w) of the restoration before padding)."""
    from inversa import operators as ops

    if simulate:
        # SR presets need sides divisible by the factor as well as by the network's stride.
        clean, (h, w) = _pad_to(x, math.lcm(multiple, factor, 4 if preset == "sr4" else 1))
        if preset is not None:
            op = ops.make_preset(preset, tuple(clean.shape[-2:]), index=0, seed=seed, sigma=sigma)
        else:
            if mask is not None:  # observed-pixel mask (1 = observed) resized to the padded image
                mask = F.interpolate(mask.float().reshape(1, 1, *mask.shape[-2:]), size=tuple(clean.shape[-2:]), mode="nearest")
            op = make_operator(task, tuple(clean.shape[-2:]), mask=mask, kernel=kernel, blur_std=blur_std, factor=factor, sigma=sigma, seed=seed)
        y = op.measure(clean, generator=torch.Generator().manual_seed(seed + 1))
    else:
        y0 = x
        if task == "inpaint":
            if mask is None:
                raise UserError("task inpaint on a damaged photo needs --mask FILE (white = missing pixels)")
            m = mask.float()
            m, _ = _pad_to(m.reshape(1, 1, *m.shape[-2:]), multiple, mode="constant")  # padding = missing
            y, (h, w) = _pad_to(y0, multiple)
            op = ops.Inpainting(m, noise=ops.GaussianNoise(ops.DEFAULT_SIGMA if sigma is None else sigma))
            y = op.A(y)
        else:
            y, (hy, wy) = _pad_to(y0, multiple)
            h, w = hy * scale_for_size, wy * scale_for_size
            op = make_operator(task, tuple(y.shape[-2:]), kernel=kernel, blur_std=blur_std, factor=factor, sigma=sigma, seed=seed)
        clean = None
    return y, op, clean, (h, w)


def _check_settings(task, preset, sigma, steps, factor, max_size, blur_std, seed) -> None:
    """One UserError for the first out-of-range setting of `restore` (before anything is loaded)."""
    from inversa import operators as ops

    if task is None and preset is None:
        raise UserError(f"give a task ({', '.join(TASKS)}) or a preset ({', '.join(ops.PRESETS)})")
    if task is not None and task not in TASKS:
        raise UserError(f"unknown task {task!r}; accepted: {', '.join(TASKS)}")
    if preset is not None and preset not in ops.PRESETS:
        raise UserError(f"unknown preset {preset!r}; accepted: {', '.join(ops.PRESETS)}")
    if sigma is not None and not (sigma >= 0 and math.isfinite(sigma)):
        raise UserError(f"sigma must be a finite number >= 0 (in [0, 1] image units), got {sigma}")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0):
        raise UserError(f"steps must be a positive integer, got {steps}")
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise UserError(f"factor must be a positive integer, got {factor}")
    if sigma is not None and sigma > 1:
        raise UserError(f"sigma {sigma} is above 1; it is in [0, 1] image units (0.025 = the literature's 0.05 on [-1, 1])")
    if not isinstance(max_size, int) or max_size < MIN_SIDE:
        raise UserError(f"max_size must be an integer >= {MIN_SIDE}, got {max_size!r}")
    if not (isinstance(blur_std, (int, float)) and math.isfinite(blur_std) and blur_std > 0):
        raise UserError(f"blur_std must be a positive number of pixels, got {blur_std!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")


def write_outputs(result: RestoreResult, out, *, measurement=None, comparison=None) -> list[Path]:
    """Write the restoration (and optionally the measurement and a side-by-side PNG), atomically."""
    written = [save_image(result.restored, out)]
    if measurement:
        written.append(save_image(result.measurement, measurement))
    if comparison:
        panels = [result.measurement, result.restored] + ([result.clean] if result.clean is not None else [])
        labels = ["measurement", "restored"] + (["clean"] if result.clean is not None else [])
        written.append(save_image(side_by_side(panels, labels, height=result.restored.shape[-2]), comparison))
    return written
