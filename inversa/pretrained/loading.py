"""Load a prior by bundled name, local diffusers folder or hub id — safetensors first, no pickle."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from inversa.errors import UserError
from inversa.pretrained import registry
from inversa.pretrained.prior import DiffusionPrior

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


UNSUPPORTED_UNETS = ("UNet2DConditionModel", "UNetSpatioTemporalConditionModel", "UNet3DConditionModel")


def load_prior(name_or_path=None, *, device="cpu", dtype=torch.float32, **options) -> DiffusionPrior:
    """`None` -> the bundled default; a bundled name; a local diffusers folder (`unet/` +
    `scheduler/` subfolders, or a UNet folder with `config.json`); a hub id such as
    `google/ddpm-ema-celebahq-256` (needs a network the first time); or a loaded diffusers
    pipeline with a `UNet2DModel` `unet` and a `scheduler` (e.g. `DDPMPipeline`). `options` go to
    `DiffusionPrior.configure` (precision, channels_last, checkpointing, compile)."""
    if isinstance(name_or_path, DiffusionPrior):
        prior = name_or_path.to(device)
    elif name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        prior = _from_pipeline(name_or_path, device, dtype)
    else:
        prior = _load(name_or_path, device, dtype)
    return prior.configure(**options) if options else prior


def _from_pipeline(pipe, device, dtype) -> DiffusionPrior:
    unet, scheduler = getattr(pipe, "unet", None), getattr(pipe, "scheduler", None)
    if unet is None or scheduler is None or not hasattr(scheduler, "alphas_cumprod"):
        raise UserError(f"model of type {type(pipe).__name__}: expected a name, a folder, a hub id or a diffusers "
                        f"pipeline with .unet (UNet2DModel) and .scheduler (DDPM/DDIM-style)")
    _check_unet_class(type(unet).__name__, type(pipe).__name__)
    unet = unet.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return DiffusionPrior(unet, scheduler, name=type(pipe).__name__, source=str(getattr(unet.config, "_name_or_path", "")))


def _check_unet_class(class_name: str, where: str) -> None:
    if class_name in UNSUPPORTED_UNETS or "Condition" in class_name:
        raise UserError(f"{where} holds a {class_name}: conditional/latent models are not supported yet; "
                        f"accepted: unconditional pixel-space UNet2DModel priors")


def _looks_like_path(name: str) -> bool:
    """A name that can only be a local path (a hub id is exactly `owner/name`)."""
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def locate(name_or_path=None) -> tuple[str, str]:
    """Where a model reference points, without loading or downloading anything: ("folder", path) for a
    bundled name or an existing local folder, ("hub", repo id) for a hub id; one UserError otherwise
    (a missing folder, a raw checkpoint, a distillation model, an unknown name)."""
    name = str(name_or_path or registry.DEFAULT_MODEL)
    entry = registry.find(name)
    if entry is not None and entry.kind == "bundled":
        return "folder", entry.source
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file():  # a raw checkpoint: say how to convert it
            adm = registry.find_adm_file(path.name)
            raise UserError(adm.how_to_get() if adm else f"model {str(path)!r} is a file, not a diffusers folder; for a guided-diffusion "
                            f"(ADM) checkpoint run `inversa models convert {path} -o DIR` and pass --model DIR")
        return "folder", str(path)
    if entry is not None and entry.kind == "adm":
        raise UserError(entry.how_to_get())
    if entry is not None and entry.kind in ("conditional", "classifier"):
        what = "a class-conditional prior" if entry.kind == "conditional" else "a classifier"
        raise UserError(f"{name} is {what} for `inversa distill`, not a restoration prior")
    if _looks_like_path(name):
        raise UserError(f"model folder {name!r} does not exist; expected a diffusers folder (unet/ + scheduler/), "
                        f"a bundled name or a hub id")
    if HUB_ID.match(name):
        return "hub", name
    accepted = ", ".join(m.name for m in registry.bundled_models()) or "(none installed)"
    raise UserError(f"unknown model {name!r}: not a bundled name ({accepted}), an existing folder, or a hub id like google/ddpm-ema-celebahq-256")


def _load(name_or_path, device, dtype) -> DiffusionPrior:
    name = str(name_or_path or registry.DEFAULT_MODEL)
    kind, where = locate(name)
    shown = name if kind == "hub" or registry.find(name) else where  # names as typed, folders as paths
    return _load_folder(_download(where) if kind == "hub" else Path(where), shown, device, dtype)


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "unet/*", "scheduler/*"]))
    except Exception as exc:  # offline, unknown repo, or HTTP error: one actionable line
        raise UserError(
            f"model {repo_id!r} is not a local folder and could not be fetched from the Hugging Face hub "
            f"({type(exc).__name__}); on a machine with network run `hf download {repo_id} --local-dir DIR`, "
            f"copy DIR here and pass --model DIR"
        ) from None


def _config_class(unet_dir: Path) -> str:
    """The `_class_name` a diffusers config.json declares ("" when absent); one UserError if it is not JSON."""
    try:
        cfg = json.loads((unet_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{str(unet_dir / 'config.json')!r} is not valid JSON; expected a diffusers UNet2DModel config") from None
    return str(cfg.get("_class_name", "")) if isinstance(cfg, dict) else ""


def _load_folder(path: Path, name: str, device, dtype) -> DiffusionPrior:
    from diffusers import DDPMScheduler, UNet2DModel

    if not path.is_dir():
        raise UserError(f"model path {str(path)!r} is not a folder; expected a diffusers folder with unet/ and scheduler/")
    unet_dir = path / "unet" if (path / "unet" / "config.json").exists() else path
    if not (unet_dir / "config.json").exists():
        raise UserError(f"model folder {str(path)!r} has no unet/config.json or config.json; expected a diffusers UNet2DModel folder")
    if (path / "model_index.json").exists() and not (path / "unet" / "config.json").exists():
        raise UserError(f"model folder {str(path)!r} is a diffusers pipeline without a unet/ (a latent or transformer "
                        f"model?): conditional/latent models are not supported yet; accepted: UNet2DModel priors")
    _check_unet_class(_config_class(unet_dir), f"model folder {str(path)!r}")
    if not any(unet_dir.glob("*.safetensors")):
        pickled = any(unet_dir.glob("*.bin"))
        raise UserError(f"model folder {str(unet_dir)!r} has no weights (*.safetensors)" + (
            "; its *.bin files are pickles, which could run code and are not loaded: re-save them as safetensors "
            "(UNet2DModel.from_pretrained(DIR).save_pretrained(DIR)) where you trust the file" if pickled else ""))
    try:
        model = UNet2DModel.from_pretrained(unet_dir, torch_dtype=dtype, use_safetensors=True)
    except Exception as exc:
        raise UserError(f"could not load a UNet2DModel from {str(unet_dir)!r}: {str(exc).splitlines()[0]}") from None
    sched_dir = next((d for d in (path / "scheduler", path) if (d / "scheduler_config.json").exists()), None)
    # No scheduler config: the DDPM/ADM default (1000 steps, linear betas 1e-4..0.02).
    scheduler = DDPMScheduler.from_pretrained(sched_dir) if sched_dir else DDPMScheduler(beta_schedule="linear")
    model.eval().requires_grad_(False)
    return DiffusionPrior(model.to(device), scheduler, name=name, source=str(path))
