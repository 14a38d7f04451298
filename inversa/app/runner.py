"""The work behind the web UI, free of layout: upload checks, the page's inputs -> `restore()`
arguments, a model cache, and a restoration run in a worker thread that streams per-step progress
and previews and stops at the next step once cancelled."""

from __future__ import annotations

import copy
import inspect
import queue
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from inversa.errors import UserError
from inversa.solvers.registry import parse_value

IMAGE_FORMATS = "PNG, JPEG, BMP, TIFF, WebP"


def check_image_file(path, *, max_pixels: int, name: str | None = None) -> tuple[int, int]:
    """(width, height) of an image file, read from its header, or one UserError line."""
    import inversa.imageio  # noqa: F401  (sets PIL's decompression-bomb limit)

    name = name or Path(path).name
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise UserError(f"{name!r} is far too large; the limit is {max_pixels / 1e6:.3g} megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UserError(f"{name!r} is not a readable image; accepted: {IMAGE_FORMATS}") from None
    if w * h > max_pixels:
        raise UserError(f"{name!r} is {w}x{h} ({w * h / 1e6:.3g} megapixels); the limit is "
                        f"{max_pixels / 1e6:.3g} megapixels: downscale it first")
    return w, h


def open_upright(path, name: str | None = None) -> Image.Image:
    """The decoded image, turned by its EXIF orientation (phone photos) as the browser shows it."""
    try:
        with Image.open(path) as im:
            return ImageOps.exif_transpose(im)  # a loaded copy
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UserError(f"{name or Path(path).name!r} is not a readable image; accepted: {IMAGE_FORMATS}") from None


class ModelCache:
    """Each prior is loaded once per process (loads are serialised by a lock)."""

    def __init__(self, device: str):
        self.device, self._models, self._lock = device, {}, threading.Lock()

    def get(self, name: str):
        from inversa.pretrained import load_prior

        with self._lock:
            if name not in self._models:
                self._models[name] = load_prior(name, device=self.device)
        # A shallow copy per run shares the weights but has its own NFE counter, so concurrent
        # runs report their own counts.
        return copy.copy(self._models[name])


def solver_params(name: str) -> dict:
    """The keyword parameters a solver accepts, with their defaults (read from its signature, so
    solvers added later show up without UI changes)."""
    from inversa.solvers import SOLVERS

    out = {}
    for cls in reversed(SOLVERS[name].__mro__):
        init = vars(cls).get("__init__")
        if init is not None and init is not object.__init__:
            out.update({p.name: p.default for p in inspect.signature(init).parameters.values()
                        if p.kind is p.KEYWORD_ONLY})
    return out


def parse_params(text: str, solver: str, *, scale=None, sampler=None) -> dict:
    """`key=value, key=value` plus the dedicated fields, checked against the solver's parameters."""
    accepted = solver_params(solver)
    out = {}
    if scale is not None and "scale" in accepted:
        out["scale"] = float(scale)
    if sampler and "sampler" in accepted:
        out["sampler"] = sampler
    for item in (text or "").replace("\n", ",").split(","):
        if not item.strip():
            continue
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key:
            raise UserError(f"method parameter {item.strip()!r} must look like key=value")
        if key not in accepted:
            raise UserError(f"solver {solver!r} has no parameter {key!r}; accepted: {', '.join(accepted) or 'none'}")
        out[key] = parse_value(value)
    return out


def brush_mask(editor, size: tuple[int, int]) -> torch.Tensor | None:
    """Observed-pixel mask (H, W), 1 = observed, from the editor's brush layers resized to `size`
    (H, W); None when nothing was painted."""
    layers = [np.asarray(layer) for layer in ((editor or {}).get("layers") or []) if layer is not None]
    painted = [a[..., 3] > 0 for a in layers if a.ndim == 3 and a.shape[-1] == 4]
    if not painted or not any(p.any() for p in painted):
        return None
    missing = torch.from_numpy(np.logical_or.reduce(painted).astype(np.float32))[None, None]
    return 1 - F.interpolate(missing, size=size, mode="nearest")[0, 0]


def make_kernel(kind: str, size: int, std: float, intensity: float, path, seed: int) -> torch.Tensor:
    from inversa import operators as ops

    if kind == "gaussian":
        return ops.gaussian_kernel(int(size), float(std))
    if kind == "motion":
        return ops.motion_kernel(int(size), float(intensity), generator=torch.Generator().manual_seed(int(seed)))
    if kind == "file":
        if not path:
            raise UserError("kernel 'file' needs a kernel file (.npy, .npz or a grey image)")
        try:
            return ops.load_kernel(path)
        except UserError:
            raise
        except (UnidentifiedImageError, OSError, ValueError):
            raise UserError(f"kernel file {Path(path).name!r} is not readable; accepted: .npy, .npz or an image") from None
    raise UserError(f"unknown kernel type {kind!r}; accepted: gaussian, motion, file")


def fit_to_factor(x: torch.Tensor, max_side: int, factor: int) -> tuple[torch.Tensor, list[str]]:
    """Downscale to `max_side` (as restore() would) and crop to a multiple of the SR factor, which
    a simulated super-resolution needs; returns the image and what was done."""
    notes, (h, w) = [], x.shape[-2:]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        h2, w2 = max(factor, round(h * s)), max(factor, round(w * s))
        notes.append(f"image {w}x{h} downscaled to {w2}x{h2} (max side {max_side})")
        x = F.interpolate(x, size=(h2, w2), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        h, w = h2, w2
    if h % factor or w % factor:
        if h < factor or w < factor:
            raise UserError(f"the image ({w}x{h}) is smaller than the x{factor} super-resolution factor")
        x = x[..., : h - h % factor, : w - w % factor]
        notes.append(f"cropped to {x.shape[-1]}x{x.shape[-2]}, a multiple of the x{factor} factor")
    return x, notes


def restore_kwargs(*, photo, mode: str, task: str, editor=None, mask_file=None, kernel_type="gaussian",
                   kernel_size=21, blur_std=3.0, motion_intensity=0.5, kernel_file=None, factor=4,
                   preset="box_inpaint", solver="dps", steps=30, seed=0, sigma=0.025, max_side=256,
                   solver_params: dict | None = None, max_pixels: int) -> tuple[dict, list[str]]:
    """`restore()` keyword arguments (without the prior) from the page's values, and notes on what
    was done to the image; UserError on bad input."""
    from inversa import operators as ops
    from inversa.imageio import load_image
    from inversa.solvers import SOLVERS

    if not photo:
        raise UserError("upload a photo first (or pick an example)")
    check_image_file(photo, max_pixels=max_pixels)
    if solver not in SOLVERS:
        raise UserError(f"unknown solver {solver!r}; accepted: {', '.join(SOLVERS)}")
    steps, seed = int(steps), int(seed)
    if steps < 1 or seed < 0:
        raise UserError(f"steps must be >= 1 and seed >= 0, got steps {steps}, seed {seed}")
    x = load_image(photo)
    kw = dict(image=x, solver=solver, steps=steps, seed=seed, sigma=float(sigma), max_size=int(max_side),
              solver_params=solver_params or {}, progress=False)
    if mode == "simulate":
        if preset not in ops.PRESETS:
            raise UserError(f"unknown preset {preset!r}; accepted: {', '.join(ops.PRESETS)}")
        sr_factor = getattr(ops.make_preset(preset, (64, 64)), "factor", 1)
        x, notes = fit_to_factor(x, int(max_side), sr_factor) if sr_factor > 1 else (x, [])
        return {**kw, "image": x, "preset": preset}, notes
    if mode != "damaged":
        raise UserError(f"unknown mode {mode!r}; accepted: damaged, simulate")
    kw["task"] = task
    if task == "inpaint":
        h, w = x.shape[-2:]
        observed = brush_mask(editor, (h, w))
        if mask_file:
            check_image_file(mask_file, max_pixels=max_pixels)
            m = ops.load_mask(mask_file)
            if tuple(m.shape[-2:]) != (h, w):
                raise UserError(f"the mask is {m.shape[-1]}x{m.shape[-2]} but the photo is {w}x{h}; they must match")
            observed = m.float() if observed is None else observed * m.float()
        if observed is None or bool(observed.all()):
            raise UserError("mark the damage: brush over the holes in the editor, or upload a mask (white = missing)")
        kw["mask"] = observed
    elif task == "deblur":
        kw["kernel"] = make_kernel(kernel_type, kernel_size, blur_std, motion_intensity, kernel_file, seed)
    elif task == "sr":
        kw["factor"] = int(factor)
    return kw, []


class Cancelled(Exception):
    """Raised inside the sampling callback to stop a run."""


def run_stream(kwargs: dict, prior, cancel: threading.Event, *, previews: int = 8):
    """Run `restore(**kwargs)` in a worker thread. Yields ("step", i, n, preview or None) after
    every step (a preview, (1, C, H, W) in [0, 1], about `previews` times per run) and finally
    ("done", RestoreResult); re-raises the run's exception. Setting `cancel` stops the run at its
    next step with `Cancelled`."""
    from inversa.restore import restore

    q: queue.SimpleQueue = queue.SimpleQueue()

    def callback(state, x_prev):
        if cancel.is_set():
            raise Cancelled()
        i, n = state.index + 1, state.num_steps
        shown = None
        if i < n and i % max(1, n // previews) == 0:
            est = state.pred.x0hat if state.pred is not None and state.pred.x0hat is not None else x_prev
            shown = ((est[:1].detach().float() + 1) / 2).clamp(0, 1).cpu()
        q.put(("step", i, n, shown))

    def work():
        try:
            q.put(("done", restore(**kwargs, prior=prior, callback=callback)))
        except BaseException as exc:  # handed to the consumer, which shows it
            q.put(("error", exc))

    threading.Thread(target=work, name="inversa-restore", daemon=True).start()
    while True:
        item = q.get()
        if item[0] == "error":
            raise item[1]
        yield item
        if item[0] == "done":
            return
