"""The work behind the web UI, free of layout: upload checks, the sizes a photo is restored at, the
page's inputs -> `restore()` arguments (typed method parameters, the noise level), a model cache,
the method guide, and a restoration run in a worker thread that streams per-step progress and
previews and stops at the next step once cancelled."""

from __future__ import annotations

import copy
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from inversa.errors import UserError
from inversa.params import Param, solver_params, summary_line
from inversa.solvers.registry import parse_value

IMAGE_FORMATS = "PNG, JPEG, BMP, TIFF, WebP"
MAX_SIDE_LABEL = "Max photo side (px)"  # the one control that sets the size limit; the notes name it
NOISE_LABEL = "Noise in my photo"  # restore mode's noise field; the notes name it


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


def has_transparency(im: Image.Image) -> bool:
    """Whether any pixel is (partly) transparent: such pixels are restored as if on white."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        return im.convert("RGBA").getchannel("A").getextrema()[0] < 255
    return False


TRANSPARENT_NOTE = "the photo's transparent parts were filled with white (the solver sees no transparency)"


def photo_facts(path, name: str | None = None) -> tuple[tuple[int, int], bool]:
    """((w, h) as shown upright, whether any pixel is transparent), decoding pixels only for images
    with an alpha channel (a 12-megapixel JPEG is not decoded to be measured)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientations that swap the sides
                w, h = h, w
            return (w, h), has_transparency(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UserError(f"{name or Path(path).name!r} is not a readable image; accepted: {IMAGE_FORMATS}") from None


# --- sizes -----------------------------------------------------------------------------------------
def working_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    """(w, h) of the photo as the solver gets it: the longer side at most `max_side`."""
    if max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


@dataclass(frozen=True)
class SizePlan:
    """What happens to a photo's size: `photo` as uploaded (upright), `work` the image given to
    restore() (the measurement in restore mode, the clean photo in simulate mode), `measurement`
    what the solver inverts, `result` the restored image."""

    photo: tuple[int, int]
    work: tuple[int, int]
    measurement: tuple[int, int]
    result: tuple[int, int]
    factor: int  # the super-resolution factor, 1 for other tasks
    mode: str
    max_side: int

    def note(self) -> str:
        """The page's size note: what is done and which control changes it."""
        (w, h), (ww, wh), (rw, rh) = self.photo, self.work, self.result
        fmt = lambda s: f"{s[0]}x{s[1]}"  # noqa: E731
        out = f"{w}x{h} px."
        if (ww, wh) != (w, h):
            what = "downscaled to" if max(w, h) > self.max_side else "cropped to"
            out += f" The solver gets it {what} **{ww}x{wh}**"
            if max(w, h) > self.max_side:
                out += f" (longer side at most {self.max_side} px: **{MAX_SIDE_LABEL}**, right column, changes this)"
            if self.factor > 1 and self.mode == "simulate":
                out += f", a multiple of the x{self.factor} factor"
            out += "."
        if self.factor > 1 and self.mode == "damaged":
            out += (f" x{self.factor} super-resolution returns **{fmt(self.result)}** (the solver works at that size: "
                    f"{self.factor ** 2}x the time of the photo's own size).")
        elif self.factor > 1:
            out += (f" Simulated x{self.factor} super-resolution: reduced to {fmt(self.measurement)}, "
                    f"restored to **{rw}x{rh}**.")
        elif (ww, wh) != (w, h):
            out += f" The result is {rw}x{rh}."
        return out


def sr_factor(mode: str, task: str, factor, preset: str) -> int:
    """The super-resolution factor of a page's choice (1: not super-resolution)."""
    if mode == "simulate":
        from inversa import operators as ops

        if preset not in ops.PRESETS:
            raise UserError(f"unknown preset {preset!r}; accepted: {', '.join(ops.PRESETS)}")
        return int(getattr(ops.make_preset(preset, (64, 64)), "factor", 1))
    return int(factor) if task == "sr" else 1


def plan_sizes(photo_size: tuple[int, int], *, mode: str, task: str, factor=4, preset="box_inpaint",
               max_side: int) -> SizePlan:
    """The size limit applies to the photo the user gives, before anything else: restore mode
    inverts the photo at `work` (and super-resolution returns factor x that); simulate mode degrades
    the photo at `work` (cropped to a multiple of the SR factor) and restores that size."""
    max_side = int(max_side)
    if max_side < 1:
        raise UserError(f"the max photo side must be >= 1 px, got {max_side}")
    f = sr_factor(mode, task, factor, preset)
    ww, wh = working_size(*photo_size, max_side)
    if mode == "simulate":
        if f > 1:
            if ww < f or wh < f:
                raise UserError(f"the photo ({ww}x{wh} px as restored) is smaller than the x{f} super-resolution factor")
            ww, wh = ww - ww % f, wh - wh % f
        return SizePlan(tuple(photo_size), (ww, wh), (ww // f, wh // f), (ww, wh), f, mode, max_side)
    return SizePlan(tuple(photo_size), (ww, wh), (ww, wh), (ww * f, wh * f), f, mode, max_side)


def load_working_image(path, plan: SizePlan) -> torch.Tensor:
    """The photo upright, transparency flattened to white, resized (PIL bicubic, antialiased) to fit
    `plan.work` and cropped to it: (1, 3, H, W) in [0, 1]."""
    from inversa.imageio import pil_to_tensor

    im = open_upright(path)
    if im.mode in ("RGBA", "LA", "P", "PA"):
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
    im = im.convert("RGB")
    fit = working_size(*im.size, plan.max_side)
    if fit != im.size:
        im = im.resize(fit, Image.BICUBIC, reducing_gap=3.0)
    return pil_to_tensor(im)[..., : plan.work[1], : plan.work[0]].contiguous()


# --- models ----------------------------------------------------------------------------------------
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

    def kind(self, name: str) -> str | None:
        """The kind of a model ("latent" or "pixel") if it is loaded or a local folder says it; None when only
        loading would tell (a hub id not loaded yet)."""
        loaded = self._models.get(name)
        if loaded is not None:
            return getattr(loaded, "kind", "pixel")
        return model_kind(name)


# A latent pipeline folder (LDMPipeline, StableDiffusionPipeline layouts) holds its autoencoder in one of these.
AUTOENCODER_FOLDERS = ("vqvae", "vae")


def model_kind(name) -> str | None:
    """"latent" for a local folder holding an autoencoder subfolder (`vqvae/` or `vae/` with a config.json),
    "pixel" for another existing folder or a bundled name, None for what only loading can tell (hub ids),
    without loading anything."""
    from inversa.pretrained import registry

    text = str(name or registry.DEFAULT_MODEL)
    entry = registry.find(text)
    if entry is not None and entry.kind in ("bundled", "adm"):
        return "pixel"
    path = Path(text).expanduser()
    if not path.is_dir():
        return None
    return "latent" if any((path / sub / "config.json").is_file() for sub in AUTOENCODER_FOLDERS) else "pixel"


def solvers_for(kind: str | None) -> list[str]:
    """The registered solvers that run on a prior of `kind` (all of them when the kind is not known yet): latent
    solvers for "latent", the others for "pixel"; the naive inverse (no prior) fits both."""
    from inversa.solvers import SOLVERS
    from inversa.solvers.registry import solver_names

    return list(SOLVERS) if kind is None else solver_names(kind)


# --- method parameters -----------------------------------------------------------------------------
def solver_signature(name: str) -> dict[str, Param]:
    """The parameters a solver accepts, by name (from the registry: `inversa.params.solver_params`,
    so solvers added later show up without UI changes). A composition (CMI-DPS) also accepts its
    default base's parameters."""
    return {p.name: p for p in solver_params(name)}


# How a parameter's accepted values read in an error message (checked by the solver itself).
PARAM_RANGES = {"start": "in (0, 1]", "scale": ">= 0", "multiplier": ">= 0", "eta": ">= 0", "sampler_eta": "in [0, 1]",
                "delta": "> 0", "cg_tol": "> 0", "sigma_min": "> 0", "cov_max": "> 0", "inverse_tol": "> 0",
                "fd_delta": "> 0", "var_floor": "> 0", "fd_probes": ">= 1", "cg_iters": ">= 1", "probes": ">= 1",
                "inverse_iters": ">= 1"}


def _kind(p: Param) -> str:
    """'bool', 'int', 'int?' (a whole number or none), 'float', 'float?' (a number or none), 'str' or 'any', from
    the declared kinds."""
    kinds = set(p.kinds)
    if kinds == {"int", "None"}:
        return "int?"
    if kinds in ({"float", "None"}, {"float", "int", "None"}):
        return "float?"
    if len(kinds) == 1:
        return next(iter(kinds))
    return "any"


def check_param(solver: str, key: str, raw, p: Param):
    """The value of `key=raw` for the solver, or one UserError line naming it and what is accepted."""
    value = parse_value(raw) if isinstance(raw, str) else raw
    kind, rng = _kind(p), PARAM_RANGES.get(key)
    shown = raw if isinstance(raw, str) else str(raw)
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        raise UserError(f"{key}: expected true or false, got {shown!r}")
    if kind in ("int", "int?"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "int?" and value is None:
            return None
        none = " (or none for the method's default)" if kind == "int?" else ""
        raise UserError(f"{key}: expected a whole number{' ' + rng if rng else ''}{none}, got {shown!r}")
    if kind in ("float", "float?"):
        if number(value) and np.isfinite(value):
            return float(value)
        if kind == "float?" and value is None:
            return None
        none = " (or none for the method's default)" if kind == "float?" else ""
        raise UserError(f"{key}: expected a number{' ' + rng if rng else ''}{none}, got {shown!r}")
    if kind == "str":
        return raw.strip() if isinstance(raw, str) else str(value)
    return value


def parse_params(text: str, solver: str, *, scale=None, sampler=None, start=None) -> dict:
    """The method parameters to send: `key=value, key=value` plus the Advanced fields (`scale`,
    `start`: text or numbers, `sampler`), each only when given — an empty field is the method's
    default — typed and checked against the solver's parameters (one UserError line if not)."""
    from inversa.solvers import SOLVERS

    if solver not in SOLVERS:
        raise UserError(f"unknown solver {solver!r}; accepted: {', '.join(SOLVERS)}")
    accepted = solver_signature(solver)
    out, where = {}, {}
    for key, raw, field in (("scale", scale, "Guidance scale"), ("start", start, "Warm start"),
                            ("sampler", sampler, "Sampler")):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        if key not in accepted:
            raise UserError(f"{field}: method {solver!r} has no such setting; clear the field")
        out[key], where[key] = check_param(solver, key, raw.strip() if isinstance(raw, str) else raw, accepted[key]), field
    for item in (text or "").replace("\n", ",").split(","):
        if not item.strip():
            continue
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key:
            raise UserError(f"method parameter {item.strip()!r} must look like key=value")
        if key not in accepted:
            raise UserError(f"solver {solver!r} has no parameter {key!r}; accepted: {', '.join(accepted) or 'none'}")
        if key in out:
            raise UserError(f"{key} is set twice: in the {where[key]!r} field and in 'Other parameters'")
        out[key], where[key] = check_param(solver, key, value, accepted[key]), "Other parameters"
    _check_constructs(solver, out)
    return out


def _check_constructs(solver: str, params: dict) -> None:
    """Let the solver's own checks (ranges, choices) speak before any model is loaded: its
    constructor runs without a prior. Only its UserError matters here; anything else (a method that
    needs its prior to construct) is left to the real run."""
    from inversa.solvers import SOLVERS

    if not getattr(SOLVERS[solver], "needs_prior", True) or not params:
        return
    try:
        SOLVERS[solver](None, **params)
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - not a parameter problem; the run reports it if it is real
        pass


def parse_sigma(text, field: str = NOISE_LABEL) -> float | None:
    """A noise level typed in a field: None when empty, else a number in [0, 1]."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise UserError(f"{field}: expected a number in [0, 1] (image units, e.g. 0.03), or empty to estimate it, "
                        f"got {str(text).strip()!r}") from None
    if not (0 <= v <= 1):
        raise UserError(f"{field}: expected a number in [0, 1] (image units, e.g. 0.03), got {v:g}")
    return v


# --- the method guide ------------------------------------------------------------------------------
# What each method is for, in plain words, and its cost per step (network evaluations, gradient
# passes): declared on the solver classes (`label`, `summary`, `cost`, `cost_up_to`: an upper bound,
# inner solvers may stop early); tests/solvers/test_contract.py checks the costs against real runs.
# A solver that declares none still gets a line: its docstring's first sentence.


def method_label(name: str) -> str:
    from inversa.solvers import SOLVERS

    return getattr(SOLVERS[name], "label", None) or summary_line(SOLVERS[name])


def method_cost(name: str) -> str:
    """'1 network evaluation + 1 gradient pass per step', from the solver's declared `cost`."""
    from inversa.solvers import SOLVERS

    cls = SOLVERS[name]
    if getattr(cls, "cost", None) is None:
        return "cost per step not listed"
    nfe, vjp = cls.cost
    if nfe == 0 and vjp == 0:
        return "no network: instant"
    up_to = "up to " if getattr(cls, "cost_up_to", False) else ""
    parts = [f"{up_to}{nfe} network evaluation{'s' * (nfe != 1)}"] + ([f"{vjp} gradient pass{'es' * (vjp != 1)}"] if vjp else [])
    return " + ".join(parts) + " per step"


AUTO = "auto"  # the method dropdown's "recommended for the quality preset" entry


def resolve_solver(solver: str, quality: str, mode: str, task: str, preset: str, kind: str | None = "pixel") -> str:
    """The solver a run uses: the named one, or for AUTO the quality preset's for the task and the model's
    kind (`inversa.quality.LATENT_PRESETS` for latent models)."""
    from inversa.quality import setting

    if solver != AUTO:
        return solver
    return setting(quality, preset if mode == "simulate" else task, kind or "pixel").solver


def quality_guide() -> str:
    """What each quality preset runs per task and its measured time (Markdown, from inversa.quality)."""
    from inversa.quality import PRESETS, QUALITIES, seconds_range

    lines = [f"- **{q}** (about {seconds_range(q)} per 256² photo on 2 CPU cores): "
             + "; ".join(f"{t}: {method_label(s.solver)}, {s.steps} steps"
                         + ("".join(f", {k} {v}" for k, v in s.params.items())) for t, s in PRESETS[q].items())
             for q in QUALITIES]
    return "With **Recommended** as the method, the quality preset picks it:\n" + "\n".join(lines)


def method_guide() -> list[tuple[str, str]]:
    """(name, one line) for every registered solver, in registry order."""
    from inversa.solvers import SOLVERS

    rows = []
    for name, cls in SOLVERS.items():
        good = getattr(cls, "summary", None) or summary_line(cls)
        rows.append((name, f"**{method_label(name)}** (`{name}`): {good}. Cost: {method_cost(name)}."))
    return rows


# Plain words for the method parameters shown under Advanced (unknown ones show their name and default).
PARAM_HELP = {
    "start": "warm start: 1 = from pure noise; 0.3 = start from the simple inverse, 30% noised, and run the last "
             "30% of the steps (faster, stays closer to the photo)",
    "scale": "how hard each step pulls toward the photo (DPS step size)",
    "sampler": "'ddpm' adds fresh noise each step (recommended); 'ddim' is deterministic",
    "eta": "how much fresh noise each step adds (1 = all)",
    "clip_x0": "keep the network's estimate inside the valid pixel range",
    "rescale_for_steps": "scale the pull by the number of steps, so few steps pull as hard as many",
    "variant": "which published form of the method",
    "delta": "step of the finite differences that measure the prior's certainty",
    "fd_probes": "random probes that measure the prior's certainty per pixel (more: slower, less noisy)",
    "cg_iters": "iterations of the inner linear solver",
    "cg_tol": "accuracy of the inner linear solver",
    "multiplier": "multiplies the derived pull toward the photo (1 = as derived)",
    "step_variance": "'posterior' keeps the step's full randomness; 'prior' the plain one",
    "sigma_min": "smallest noise level assumed for the photo (keeps noiseless photos well-posed)",
    "cov_max": "largest per-pixel uncertainty allowed",
    "mean_shift": "how the correction is computed: 'tilt' (the prior asked a little along the measurement's pull; "
                  "keeps samples out of what the photo rules out), 'covariance' (one forward less), or 'vjp'",
    "base": "the method the information term is added to",
    "eta_mode": "'relative': the information term is a fraction of the base method's pull",
    "probes": "random probes per step for the information term",
    "inverse": "how the information term's linear system is solved",
    "inverse_iters": "iterations for that system",
    "inverse_tol": "accuracy for that system",
    "hvp": "how second derivatives are taken",
    "fd_delta": "finite-difference step for those",
    "sampler_eta": "how much fresh noise each step adds (1 = all)",
    "y_path": "how the measurement is noised along the way",
    "var_floor": "smallest step variance (so the last steps still see the photo)",
    "covariance": "'full': how pixels vary together under the prior (slower, carries what is seen into what is "
                  "missing); 'diagonal' / 'scalar': cheaper approximations",
    "cov_product": "how the prior's uncertainty is measured: finite differences or exact forward-mode derivatives",
    "sqrt_iters": "iterations used to draw the step's randomness with the right spread",
    "full_below": "use the full uncertainty only below this noise level (inf: always)",
    "data_var": "pixel variance assumed where the simple uncertainty model is used",
    "tilt": "with mean_shift 'tilt': how far along the measurement's pull the prior is asked (0-1)",
    "secant": "with mean_shift 'tilt': 'central' asks the prior on both sides (one forward more, steadier)",
    "step_rule": "'polyak': never pull past the noise level of the photo (recommended); 'stride': the plain rule",
}


def params_help(name: str) -> str:
    """The method's parameters in plain words, with defaults (Markdown)."""
    sig = solver_signature(name)
    if not sig:
        return "This method has no parameters."
    if name == "cmi-dps" and "eta" in sig:
        help_ = {**PARAM_HELP, "eta": "weight of the information term"}
    else:
        help_ = PARAM_HELP
    lines = []
    for key, p in sig.items():
        default = "method default" if p.default is None else repr(p.default)
        lines.append(f"- `{key}` ({default}): {help_.get(key, 'see the method documentation')}")
    return "Parameters (type `key=value` under Other parameters; empty = default):\n" + "\n".join(lines)


# --- masks, kernels --------------------------------------------------------------------------------
def brush_mask(editor, size: tuple[int, int]) -> torch.Tensor | None:
    """Observed-pixel mask (H, W), 1 = observed, from the editor's brush layers resized to `size`
    (H, W); None when nothing was painted."""
    layers = [np.asarray(layer) for layer in ((editor or {}).get("layers") or []) if layer is not None]
    painted = [a[..., 3] > 0 for a in layers if a.ndim == 3 and a.shape[-1] == 4]
    if not painted or not any(p.any() for p in painted):
        return None
    missing = torch.from_numpy(np.logical_or.reduce(painted).astype(np.float32))[None, None]
    return 1 - F.interpolate(missing, size=size, mode="nearest")[0, 0]


ALL_MISSING = ("the mask marks the whole photo as missing (white = missing, black = kept): nothing is left to "
               "restore from; paint only the damaged parts")


def load_mask_for(mask_path, photo_size: tuple[int, int], *, max_pixels: int, name: str | None = None) -> torch.Tensor:
    """An uploaded mask (white = missing) checked against the photo's (w, h): the observed-pixel
    mask (H, W), 1 = observed, or one UserError line (wrong size, nothing observed)."""
    from inversa import operators as ops

    name = name or Path(mask_path).name
    mw, mh = check_image_file(mask_path, max_pixels=max_pixels, name=name)
    w, h = photo_size
    if (mw, mh) != (w, h):
        raise UserError(f"the mask {name!r} is {mw}x{mh} but the photo is {w}x{h}; they must match")
    m = ops.load_mask(mask_path).float()
    if not bool(m.any()):
        raise UserError(ALL_MISSING)
    return m


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


# --- the page's values -> restore() ----------------------------------------------------------------
def restore_kwargs(*, photo, mode: str, task: str, editor=None, mask_file=None, kernel_type="gaussian",
                   kernel_size=21, blur_std=3.0, motion_intensity=0.5, kernel_file=None, factor=4,
                   preset="box_inpaint", solver="dps", steps=30, seed=0, noise_in_photo=None, noise_to_add=0.025,
                   max_side=256, solver_params: dict | None = None, quality="balanced", samples=1,
                   keep_observed=False, max_pixels: int) -> tuple[dict, list[str]]:
    """`restore()` keyword arguments (without the prior) from the page's values, and notes on what
    was done to the image; UserError on bad input. Sizes follow `plan_sizes` (restore() gets the
    image already at its working size, so it resizes nothing). In restore mode an empty
    `noise_in_photo` is estimated from the photo as the solver gets it. `solver` AUTO (or None) and
    `steps` 0 (or None) leave the choice to the `quality` preset."""
    from inversa.noise_level import estimate_sigma
    from inversa.solvers import SOLVERS

    if not photo:
        raise UserError("upload a photo first (or pick an example)")
    if mode not in ("damaged", "simulate"):
        raise UserError(f"unknown mode {mode!r}; accepted: damaged, simulate")
    w0, h0 = check_image_file(photo, max_pixels=max_pixels)
    solver = None if solver in (None, AUTO) else solver
    if solver is not None and solver not in SOLVERS:
        raise UserError(f"unknown solver {solver!r}; accepted: {AUTO}, {', '.join(SOLVERS)}")
    steps, seed, samples = int(steps or 0) or None, int(seed), int(samples or 1)
    if (steps is not None and steps < 1) or seed < 0:
        raise UserError(f"steps must be >= 1 (or 0 for the quality preset's) and seed >= 0, got steps {steps}, seed {seed}")
    im = open_upright(photo)
    plan = plan_sizes(im.size, mode=mode, task=task, factor=factor, preset=preset, max_side=max_side)
    notes = [TRANSPARENT_NOTE] if has_transparency(im) else []
    x = load_working_image(photo, plan)
    if plan.work != plan.photo:
        notes.append(plan.note().replace("**", ""))
    kw = dict(image=x, solver=solver, steps=steps, seed=seed, max_size=max(plan.result),
              solver_params=solver_params or {}, quality=quality, samples=samples,
              keep_observed=bool(keep_observed), progress=False)
    if mode == "simulate":
        sigma = float(noise_to_add)
        if not (0 <= sigma <= 1):
            raise UserError(f"noise to add: expected a number in [0, 1], got {sigma:g}")
        return {**kw, "preset": preset, "sigma": sigma}, notes
    kw["task"] = task
    if task == "inpaint":
        h, w = x.shape[-2:]
        observed = brush_mask(editor, (h, w))
        if mask_file:
            m = load_mask_for(mask_file, im.size, max_pixels=max_pixels)
            m = F.interpolate(m[None, None], size=(h, w), mode="nearest")[0, 0] if (w, h) != im.size else m
            observed = m if observed is None else observed * m
        if observed is None or bool(observed.all()):
            raise UserError("mark the damage: brush over the holes in the editor, or upload a mask (white = missing)")
        if not bool(observed.any()):
            raise UserError(ALL_MISSING)
        kw["mask"] = observed
    elif task == "deblur":
        kw["kernel"] = make_kernel(kernel_type, kernel_size, blur_std, motion_intensity, kernel_file, seed)
    elif task == "sr":
        kw["factor"] = int(factor)
    sigma = parse_sigma(noise_in_photo)
    if sigma is None:
        sigma = round(estimate_sigma(x), 4)
        notes.append(f"noise in the photo estimated at σ = {sigma:.4f} (type a value in '{NOISE_LABEL}' to override)")
    kw["sigma"] = sigma
    return kw, notes


def estimate_photo_noise(photo, *, max_side: int, max_pixels: int) -> float:
    """The noise level of a photo as the solver gets it (at the working size), in [0, 1] units."""
    from inversa.noise_level import estimate_sigma

    check_image_file(photo, max_pixels=max_pixels)
    im = open_upright(photo)
    w, h = working_size(*im.size, int(max_side))
    plan = SizePlan(im.size, (w, h), (w, h), (w, h), 1, "damaged", int(max_side))
    return round(estimate_sigma(load_working_image(photo, plan)), 4)


# --- a run -----------------------------------------------------------------------------------------
class Cancelled(Exception):
    """Raised inside the sampling callback to stop a run."""


def run_stream(kwargs: dict, prior, cancel: threading.Event, *, previews: int = 8):
    """Run `restore(**kwargs)` in a worker thread. Yields ("step", i, n, preview or None) after
    every step (a preview, (1, C, H, W) in [0, 1], about `previews` times per run) and finally
    ("done", RestoreResult); re-raises the run's exception. Setting `cancel` stops the run at its
    next step with `Cancelled`."""
    from inversa.restoration import restore

    q: queue.SimpleQueue = queue.SimpleQueue()

    def callback(state, x_prev):
        if cancel.is_set():
            raise Cancelled()
        i, n = state.index + 1, state.num_steps
        shown = None
        if i < n and i % max(1, n // previews) == 0:
            est = state.pred.x0hat if state.pred is not None and state.pred.x0hat is not None else x_prev
            est = est[:1].detach()
            if getattr(prior, "kind", None) == "latent":  # a latent estimate: shown decoded
                with torch.no_grad():
                    est = prior.decode(est)
            shown = ((est.float() + 1) / 2).clamp(0, 1).cpu()
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


def worse_than_naive(metrics: dict, margin_db: float = 1.0) -> bool:
    """Simulate mode: is the restoration clearly worse than the simple inverse (PSNR lower by more
    than `margin_db`)?"""
    return bool(metrics) and metrics["psnr_restored"] < metrics["psnr_naive"] - margin_db
