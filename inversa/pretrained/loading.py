"""Load a prior by bundled name, local diffusers folder or hub id — safetensors first, no pickle."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from inversa.errors import UserError
from inversa.pretrained import registry
from inversa.pretrained.prior import DiffusionPrior
from inversa.pretrained.safe_load import require_safetensors

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


UNSUPPORTED_UNETS = ("UNetSpatioTemporalConditionModel", "UNet3DConditionModel", "UNetMotionModel")


def load_prior(name_or_path=None, *, device="cpu", dtype=torch.float32, prompt: str | None = None, **options) -> DiffusionPrior:
    """`None` -> the bundled default; a bundled name; a local diffusers folder (`unet/` +
    `scheduler/` subfolders, or a UNet folder with `config.json`); a latent pipeline folder (`LDMPipeline`:
    `vqvae/` + `unet/`; Stable-Diffusion layout: `vae/` + `unet/` + `text_encoder/` + `tokenizer/`; see
    `inversa.pretrained.latent_loading`), which gives a `LatentPrior`; a hub id such as
    `google/ddpm-ema-celebahq-256` or `CompVis/ldm-celebahq-256` (needs a network the first time); or a loaded
    diffusers pipeline (`DDPMPipeline`, `LDMPipeline`, `StableDiffusionPipeline`). `prompt`: the text conditioning
    of a Stable-Diffusion-style UNet (default: the empty prompt, computed once at load), recorded as
    `prior.prompt`. `options` go to `DiffusionPrior.configure` (precision, channels_last, checkpointing, compile)."""
    if prompt is not None and not isinstance(prompt, str):
        raise UserError(f"prompt must be text, got {type(prompt).__name__}")
    if isinstance(name_or_path, DiffusionPrior):
        if prompt is not None:
            raise UserError("prompt given with an already built prior: the prompt is applied when a model is loaded")
        prior = name_or_path.to(device)
    elif name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        prior = _from_pipeline(name_or_path, device, dtype, prompt)
    else:
        prior = _load(name_or_path, device, dtype, prompt)
    return prior.configure(**options) if options else prior


def _from_pipeline(pipe, device, dtype, prompt=None) -> DiffusionPrior:
    from inversa.pretrained.latent_loading import latent_from_pipeline

    what = type(pipe).__name__
    if getattr(pipe, "transformer", None) is not None and getattr(pipe, "unet", None) is None:
        raise UserError(_transformer_refusal(what, type(pipe.transformer).__name__, f"pipeline {what}"))
    if getattr(pipe, "vqvae", None) is not None or getattr(pipe, "vae", None) is not None:
        return latent_from_pipeline(pipe, device, dtype, prompt=prompt)
    unet, scheduler = getattr(pipe, "unet", None), getattr(pipe, "scheduler", None)
    if unet is None or scheduler is None or not hasattr(scheduler, "alphas_cumprod"):
        raise UserError(f"model of type {what}: expected a name, a folder, a hub id or a diffusers "
                        f"pipeline with .unet (UNet2DModel, or a latent UNet with .vae/.vqvae) and .scheduler (DDPM/DDIM-style)")
    _check_unet_class(type(unet).__name__, what)
    _check_prompt(prompt, what)
    unet = unet.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return DiffusionPrior(unet, scheduler, name=what, source=str(getattr(unet.config, "_name_or_path", "")))


def _check_prompt(prompt, what: str) -> None:
    if prompt is not None:
        raise UserError(f"prompt given, but {what} is an unconditional pixel-space model: a prompt applies only to "
                        "text-conditioned latent (Stable-Diffusion-layout) models")


def _check_unet_class(class_name: str, where: str) -> None:
    from inversa.pretrained.latent_loading import SUPPORTED

    if class_name in UNSUPPORTED_UNETS:
        raise UserError(f"{where} holds a {class_name} (video/3-D): not supported; " + SUPPORTED)
    if "Condition" in class_name:
        raise UserError(f"{where} holds a {class_name} without its autoencoder: a latent model loads from its whole pipeline "
                        "folder (vae/ + unet/ + text_encoder/ + tokenizer/ + scheduler/, as StableDiffusionPipeline.save_pretrained "
                        "writes it, or a hub id); " + SUPPORTED)


def _transformer_refusal(what: str, model_class: str, where: str) -> str:
    from inversa.pretrained.latent_loading import SUPPORTED

    if what == "DiTPipeline" or model_class == "DiTTransformer2DModel":
        return (f"{where} is a DiTPipeline (a class-conditional DiT): it is a prior for `inversa distill --model`, "
                "not a restoration prior; " + SUPPORTED)
    return f"{where} is a {what or 'pipeline'} with a {model_class or 'transformer'}: not supported for restoration; " + SUPPORTED


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


def _load(name_or_path, device, dtype, prompt=None) -> DiffusionPrior:
    name = str(name_or_path or registry.DEFAULT_MODEL)
    kind, where = locate(name)
    shown = name if kind == "hub" or registry.find(name) else where  # names as typed, folders as paths
    return _load_folder(_download(where) if kind == "hub" else Path(where), shown, device, dtype, prompt=prompt)


# What a hub download fetches: configs, the tokenizer's files and safetensors weights of the components a prior
# uses (a UNet at the root or in unet/, vae/ or vqvae/, a text_encoder/), never pickles, fp16 duplicates, a
# non-EMA copy, a safety checker or single-file checkpoints at the root.
HUB_FILES = ["*.json", "diffusion_pytorch_model*.safetensors", "unet/diffusion_pytorch_model*.safetensors",
             "vae/diffusion_pytorch_model*.safetensors", "vqvae/diffusion_pytorch_model*.safetensors",
             "text_encoder/model*.safetensors", "tokenizer/*"]
HUB_SKIPPED = ["*.fp16.*", "*.non_ema.*", "*.bin", "*.ckpt", "*.pt", "*.pth", "*.msgpack", "*.onnx", "*.pb", "*.h5"]


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, ignore_patterns=HUB_SKIPPED))
    except Exception as exc:  # offline, unknown repo, or HTTP error: one actionable line
        raise UserError(
            f"model {repo_id!r} is not a local folder and could not be fetched from the Hugging Face hub "
            f"({type(exc).__name__}); on a machine with network run `hf download {repo_id} --local-dir DIR`, "
            f"copy DIR here and pass --model DIR"
        ) from None


def _load_folder(path: Path, name: str, device, dtype, *, prompt: str | None = None) -> DiffusionPrior:
    from diffusers import DDPMScheduler, UNet2DModel

    from inversa.pretrained import latent_loading as latent

    if not path.is_dir():
        raise UserError(f"model path {str(path)!r} is not a folder; expected a diffusers folder with unet/ and scheduler/")
    if (path / "model_index.json").exists():
        comps = latent.components(path)
        if latent.latent_layout(path) is not None:
            return latent.load_latent_folder(path, name, device, dtype, prompt=prompt)
        if "transformer" in comps and "unet" not in comps:
            raise UserError(_transformer_refusal(latent.pipeline_class(path), comps["transformer"], f"model folder {str(path)!r}"))
        if not (path / "unet" / "config.json").exists():
            raise UserError(f"model folder {str(path)!r} is a {latent.pipeline_class(path) or 'diffusers pipeline'} without a "
                            "unet/: not supported; " + latent.SUPPORTED)
    unet_dir = path / "unet" if (path / "unet" / "config.json").exists() else path
    if not (unet_dir / "config.json").exists():
        raise UserError(f"model folder {str(path)!r} has no unet/config.json or config.json; expected a diffusers UNet2DModel folder")
    cfg = latent.read_json(unet_dir / "config.json")
    class_name = str(cfg.get("_class_name", ""))
    if class_name in ("DiTTransformer2DModel",) or "Transformer" in class_name:
        raise UserError(_transformer_refusal("", class_name, f"model folder {str(path)!r}"))
    if latent.is_conditional_unet_config(cfg):  # also catches a config without _class_name (diffusers would fail inside)
        class_name = class_name or "UNet2DConditionModel"
    _check_unet_class(class_name, f"model folder {str(path)!r}")
    if class_name not in ("", "UNet2DModel"):
        raise UserError(f"model folder {str(path)!r} holds a {class_name}: not supported; " + latent.SUPPORTED)
    _check_prompt(prompt, f"model {name}")
    require_safetensors(unet_dir)
    try:
        model = UNet2DModel.from_pretrained(unet_dir, torch_dtype=dtype, use_safetensors=True)
    except Exception as exc:
        raise UserError(f"could not load a UNet2DModel from {str(unet_dir)!r}: {str(exc).splitlines()[0]}") from None
    sched_dir = next((d for d in (path / "scheduler", path) if (d / "scheduler_config.json").exists()), None)
    # No scheduler config: the DDPM/ADM default (1000 steps, linear betas 1e-4..0.02).
    scheduler = DDPMScheduler.from_pretrained(sched_dir) if sched_dir else DDPMScheduler(beta_schedule="linear")
    model.eval().requires_grad_(False)
    return DiffusionPrior(model.to(device), scheduler, name=name, source=str(path))
