"""Load a prior by bundled name, local diffusers folder or hub id — safetensors first, no pickle."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from inversa.errors import UserError
from inversa.pretrained import registry
from inversa.pretrained.prior import DiffusionPrior

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_prior(name_or_path: str | None = None, *, device="cpu", dtype=torch.float32, **options) -> DiffusionPrior:
    """`None` -> the bundled default; a bundled name; a local diffusers folder (`unet/` +
    `scheduler/` subfolders, or a UNet folder with `config.json`); or a hub id such as
    `google/ddpm-ema-celebahq-256` (needs a network the first time). `options` go to
    `DiffusionPrior.configure` (precision, channels_last, checkpointing, compile)."""
    prior = _load(name_or_path, device, dtype)
    return prior.configure(**options) if options else prior


def _load(name_or_path, device, dtype) -> DiffusionPrior:
    name = name_or_path or registry.DEFAULT_MODEL
    entry = registry.find(name)
    if entry is not None and entry.kind == "bundled":
        return _load_folder(Path(entry.source), name, device, dtype)
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file():  # a raw checkpoint: say how to convert it
            adm = registry.find_adm_file(path.name)
            raise UserError(adm.how_to_get() if adm else f"model {str(path)!r} is a file, not a diffusers folder; for a guided-diffusion "
                            f"(ADM) checkpoint run `inversa models convert {path} -o DIR` and pass --model DIR")
        return _load_folder(path, str(path), device, dtype)
    if entry is not None and entry.kind == "adm":
        raise UserError(entry.how_to_get())
    if entry is not None and entry.kind in ("conditional", "classifier"):
        what = "a class-conditional prior" if entry.kind == "conditional" else "a classifier"
        raise UserError(f"{name} is {what} for `inversa distill`, not a restoration prior")
    if HUB_ID.match(name):
        return _load_folder(_download(name), name, device, dtype)
    accepted = ", ".join(m.name for m in registry.bundled_models()) or "(none installed)"
    raise UserError(f"unknown model {name!r}: not a bundled name ({accepted}), an existing folder, or a hub id like google/ddpm-ema-celebahq-256")


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "unet/*", "scheduler/*"]))
    except Exception as exc:  # offline, unknown repo, or HTTP error: one actionable line
        raise UserError(
            f"model {repo_id!r} could not be fetched from the Hugging Face hub ({type(exc).__name__}); on a machine "
            f"with network run `huggingface-cli download {repo_id} --local-dir DIR`, copy DIR here and pass --model DIR"
        ) from None


def _load_folder(path: Path, name: str, device, dtype) -> DiffusionPrior:
    from diffusers import DDPMScheduler, UNet2DModel

    if not path.is_dir():
        raise UserError(f"model path {str(path)!r} is not a folder; expected a diffusers folder with unet/ and scheduler/")
    unet_dir = path / "unet" if (path / "unet" / "config.json").exists() else path
    if not (unet_dir / "config.json").exists():
        raise UserError(f"model folder {str(path)!r} has no unet/config.json or config.json; expected a diffusers UNet2DModel folder")
    if not any(unet_dir.glob("*.safetensors")) and not any(unet_dir.glob("*.bin")):
        raise UserError(f"model folder {str(unet_dir)!r} has no weights (*.safetensors)")
    try:
        model = UNet2DModel.from_pretrained(unet_dir, torch_dtype=dtype)
    except Exception as exc:
        raise UserError(f"could not load a UNet2DModel from {str(unet_dir)!r}: {str(exc).splitlines()[0]}") from None
    sched_dir = next((d for d in (path / "scheduler", path) if (d / "scheduler_config.json").exists()), None)
    # No scheduler config: the DDPM/ADM default (1000 steps, linear betas 1e-4..0.02).
    scheduler = DDPMScheduler.from_pretrained(sched_dir) if sched_dir else DDPMScheduler(beta_schedule="linear")
    model.eval().requires_grad_(False)
    return DiffusionPrior(model.to(device), scheduler, name=name, source=str(path))
