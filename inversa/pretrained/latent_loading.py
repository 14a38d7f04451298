"""Load latent diffusion priors (`LatentPrior`) from diffusers pipeline folders and pipeline objects.

Two layouts, the ones diffusers writes with `save_pretrained` and the hub serves:

- `LDMPipeline` (Rombach et al., CVPR 2022, "High-Resolution Image Synthesis with Latent Diffusion Models";
  e.g. CompVis/ldm-celebahq-256): `vqvae/` (VQModel) + `unet/` (UNet2DModel) + `scheduler/`;
- Stable-Diffusion style (`StableDiffusionPipeline`): `vae/` (AutoencoderKL) + `unet/` (UNet2DConditionModel)
  + `text_encoder/` (CLIPTextModel) + `tokenizer/` (CLIPTokenizer) + `scheduler/`. The UNet runs with a fixed
  text conditioning: the empty prompt's embedding (the unconditional branch of classifier-free guidance), or
  the user's prompt, computed once here exactly as diffusers' `StableDiffusionPipeline.encode_prompt` does
  (padded to the tokenizer's max length, truncated, the encoder's last hidden state).

`model_index.json` says which layout a folder is. Weights are read from *.safetensors only. Latents are
scaled as the pipelines scale them (`latents / autoencoder.config.scaling_factor` before decoding).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from inversa.errors import UserError
from inversa.pretrained.latent import LatentPrior
from inversa.pretrained.safe_load import require_safetensors

AUTOENCODERS = ("AutoencoderKL", "VQModel")
LATENT_UNETS = ("UNet2DModel", "UNet2DConditionModel")
SUPPORTED = ("accepted: a UNet2DModel folder (pixel space), an LDMPipeline folder (vqvae/ + unet/ + scheduler/) or a "
             "Stable-Diffusion-layout folder (vae/ + unet/ + text_encoder/ + tokenizer/ + scheduler/)")


def read_json(path: Path) -> dict:
    """A diffusers JSON file as a dict; one UserError when it is not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{str(path)!r} is not valid JSON; expected a diffusers config file") from None
    if not isinstance(data, dict):
        raise UserError(f"{str(path)!r} is not a JSON object; expected a diffusers config file")
    return data


def components(path: Path) -> dict[str, str]:
    """{component: class name} from a pipeline folder's model_index.json ("" for a null component)."""
    index = read_json(path / "model_index.json")
    return {k: (v[1] or "") for k, v in index.items()
            if not k.startswith("_") and isinstance(v, (list, tuple)) and len(v) == 2}


def pipeline_class(path: Path) -> str:
    return str(read_json(path / "model_index.json").get("_class_name", ""))


def is_conditional_unet_config(cfg: dict) -> bool:
    """A UNet config that needs encoder_hidden_states: declared UNet2DConditionModel, or (no class name written)
    cross-attention blocks / a cross_attention_dim."""
    name = str(cfg.get("_class_name", ""))
    if name:
        return "Condition" in name
    blocks = [*cfg.get("down_block_types", ()), *cfg.get("up_block_types", ())]
    return "cross_attention_dim" in cfg or any("CrossAttn" in str(b) for b in blocks)


def latent_layout(path: Path) -> tuple[str, str, str] | None:
    """(autoencoder subfolder, its class, UNet class) when `path` is a latent pipeline folder (a unet/ beside an
    autoencoder), else None."""
    comps = components(path)
    unet = comps.get("unet", "")
    for sub in ("vqvae", "vae"):
        if comps.get(sub) in AUTOENCODERS and unet in LATENT_UNETS:
            return sub, comps[sub], unet
    return None


def check_latent_unet(unet_cfg, ae_cfg, where: str) -> None:
    """One UserError for a latent UNet this prior cannot drive with (latent, t[, text]) alone: extra conditioning
    (SDXL's `addition_embed_type`, a class/noise-level embedding as in the x4 upscaler) or input channels beyond
    the autoencoder's latents (inpainting / upscaling UNets take a mask or a low-resolution image too)."""
    def get(cfg, key, default=None):
        return cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)

    extra = [k for k in ("addition_embed_type", "class_embed_type", "num_class_embeds") if get(unet_cfg, k) is not None]
    if extra:
        raise UserError(f"{where}: its UNet needs extra conditioning ({', '.join(f'{k}={get(unet_cfg, k)!r}' for k in extra)}, "
                        "e.g. SDXL or an upscaler): not supported; " + SUPPORTED)
    c_in, c_lat = get(unet_cfg, "in_channels"), get(ae_cfg, "latent_channels")
    if c_in is not None and c_lat is not None and int(c_in) != int(c_lat):
        raise UserError(f"{where}: its UNet takes {c_in} input channels but the autoencoder's latents have {c_lat} "
                        "(an inpainting or upscaling UNet?): not supported; " + SUPPORTED)


def _from_pretrained(cls, d: Path, dtype, what: str):
    if not (d / "config.json").exists():
        raise UserError(f"model folder {str(d.parent)!r} has no {d.name}/config.json; expected the {what} of a diffusers pipeline")
    require_safetensors(d)
    try:
        return cls.from_pretrained(d, torch_dtype=dtype, use_safetensors=True)
    except Exception as exc:  # a diffusers/transformers message, cut to one line
        raise UserError(f"could not load a {cls.__name__} from {str(d)!r}: {str(exc).splitlines()[0]}") from None


def load_scheduler(path: Path):
    """The folder's own diffusers scheduler (any class exposing `alphas_cumprod`: DDIM, PNDM, Euler, ...),
    else a DDPMScheduler with the same betas and prediction type. The prior only reads `alphas_cumprod`,
    `num_train_timesteps` and `prediction_type` from it."""
    import diffusers

    sched_dir = next((d for d in (path / "scheduler", path) if (d / "scheduler_config.json").exists()), None)
    if sched_dir is None:
        raise UserError(f"model folder {str(path)!r} has no scheduler/scheduler_config.json; a latent pipeline folder needs its scheduler")
    cfg = read_json(sched_dir / "scheduler_config.json")
    cls = getattr(diffusers, str(cfg.get("_class_name", "")), None)
    try:
        if isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin):
            scheduler = cls.from_pretrained(sched_dir)
            if hasattr(scheduler, "alphas_cumprod"):
                return scheduler
        return diffusers.DDPMScheduler.from_config(cfg)
    except Exception as exc:
        raise UserError(f"could not read the scheduler in {str(sched_dir)!r}: {str(exc).splitlines()[0]}") from None


def prompt_embedding(tokenizer, text_encoder, prompt: str = "") -> torch.Tensor:
    """(1, L, D) text conditioning of a Stable-Diffusion-style UNet, as `StableDiffusionPipeline.encode_prompt`
    computes it (diffusers, no clip_skip): the prompt padded to `tokenizer.model_max_length` and truncated, the
    attention mask passed only when the encoder's config asks for it, the last hidden state. "" gives the
    empty-prompt (unconditional) embedding."""
    if not isinstance(prompt, str):
        raise UserError(f"prompt must be text, got {type(prompt).__name__}")
    n = int(tokenizer.model_max_length)
    ids = tokenizer(prompt, padding="max_length", max_length=n, truncation=True, return_tensors="pt")
    full = tokenizer(prompt, padding="longest", return_tensors="pt").input_ids
    if full.shape[-1] > n:
        warnings.warn(f"the prompt is longer than the text encoder's {n} tokens and was truncated (as diffusers does)", stacklevel=2)
    device = next(text_encoder.parameters()).device
    mask = ids.attention_mask.to(device) if getattr(text_encoder.config, "use_attention_mask", False) else None
    with torch.no_grad():
        return text_encoder(ids.input_ids.to(device), attention_mask=mask)[0]


def _transformers_classes():
    try:
        from transformers import AutoTokenizer, CLIPTextModel
    except ImportError:
        raise UserError("this Stable-Diffusion-layout model needs the `transformers` package for its text encoder "
                        "(CLIPTextModel, CLIPTokenizer): pip install transformers") from None
    return AutoTokenizer, CLIPTextModel


def _text_condition(path: Path, comps: dict, prompt, dtype) -> tuple[torch.Tensor, str]:
    missing = [c for c in ("text_encoder", "tokenizer") if not comps.get(c) or not (path / c).is_dir()]
    if missing:
        raise UserError(f"model folder {str(path)!r} holds a UNet2DConditionModel but no {' or '.join(f'{m}/' for m in missing)}: "
                        "a text-conditioned latent model needs its text encoder and tokenizer to compute the prompt "
                        "embedding; " + SUPPORTED)
    AutoTokenizer, CLIPTextModel = _transformers_classes()
    if comps["text_encoder"] != "CLIPTextModel":
        raise UserError(f"model folder {str(path)!r}: text encoder {comps['text_encoder']} is not supported; accepted: CLIPTextModel "
                        "(Stable Diffusion 1.x/2.x layout)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
    except Exception as exc:
        raise UserError(f"could not load the tokenizer in {str(path / 'tokenizer')!r}: {str(exc).splitlines()[0]}") from None
    encoder = _from_pretrained(CLIPTextModel, path / "text_encoder", torch.float32, "text encoder").eval()
    text = "" if prompt is None else prompt
    return prompt_embedding(tokenizer, encoder, text).to(dtype), text


def load_latent_folder(path: Path, name: str, device, dtype, *, prompt: str | None = None) -> LatentPrior:
    """A `LatentPrior` from an LDMPipeline or Stable-Diffusion-layout folder (see the module docstring).
    `prompt`: the text conditioning of a UNet2DConditionModel (default: the empty prompt); refused for an
    unconditional UNet."""
    import diffusers

    layout = latent_layout(path)
    if layout is None:
        raise UserError(f"model folder {str(path)!r} ({pipeline_class(path) or 'no _class_name'}) is not a latent pipeline; " + SUPPORTED)
    ae_dir, ae_class, unet_class = layout
    comps = components(path)
    unet_cfg = read_json(path / "unet" / "config.json") if (path / "unet" / "config.json").exists() else {}
    conditional = unet_class == "UNet2DConditionModel" or is_conditional_unet_config(unet_cfg)
    if prompt is not None and not conditional:
        raise UserError(f"prompt given, but model {name} has an unconditional {unet_class}: a prompt applies only to "
                        "text-conditioned (UNet2DConditionModel) models")
    ae_cfg = read_json(path / ae_dir / "config.json") if (path / ae_dir / "config.json").exists() else {}
    check_latent_unet(unet_cfg, ae_cfg, f"model folder {str(path)!r}")
    scheduler = load_scheduler(path)
    text = None
    hidden = None
    if conditional:
        hidden, text = _text_condition(path, comps, prompt, dtype)
    unet = _from_pretrained(getattr(diffusers, "UNet2DConditionModel" if conditional else "UNet2DModel"), path / "unet", dtype, "UNet")
    autoencoder = _from_pretrained(getattr(diffusers, ae_class), path / ae_dir, dtype, "autoencoder")
    return _make_prior(unet, scheduler, autoencoder, hidden, text, name=name, source=str(path), device=device)


def _make_prior(unet, scheduler, autoencoder, hidden, prompt, *, name, source, device) -> LatentPrior:
    for m in (unet, autoencoder):
        m.eval().requires_grad_(False)
    prior = LatentPrior(unet, scheduler, autoencoder, encoder_hidden_states=hidden, name=name, source=source)
    prior.prompt = prompt
    return prior.to(device)


def _to(module, device, dtype):
    """Move, and cast only when the dtype differs (diffusers warns on every cast of a loaded model)."""
    current = next(module.parameters(), torch.empty(0)).dtype
    return module.to(device=device) if current == dtype else module.to(device=device, dtype=dtype)


def latent_from_pipeline(pipe, device, dtype, *, prompt: str | None = None) -> LatentPrior:
    """A `LatentPrior` from a loaded diffusers pipeline: `.unet` + `.vqvae` (LDMPipeline) or `.vae` (+ `.text_encoder`
    and `.tokenizer` for a UNet2DConditionModel). The pipeline's modules are used as they are (moved to
    `device`/`dtype` and frozen), not copied."""
    unet = getattr(pipe, "unet", None)
    autoencoder = getattr(pipe, "vqvae", None) or getattr(pipe, "vae", None)
    what = type(pipe).__name__
    if unet is None or autoencoder is None or type(autoencoder).__name__ not in AUTOENCODERS \
            or not hasattr(getattr(pipe, "scheduler", None), "alphas_cumprod"):
        raise UserError(f"pipeline {what} is not a latent pipeline with .unet, .vae/.vqvae (AutoencoderKL/VQModel) and a "
                        "DDPM/DDIM-style .scheduler; " + SUPPORTED)
    check_latent_unet(unet.config, autoencoder.config, f"pipeline {what}")
    conditional = "Condition" in type(unet).__name__
    if prompt is not None and not conditional:
        raise UserError(f"prompt given, but pipeline {what} has an unconditional {type(unet).__name__}: a prompt applies only "
                        "to text-conditioned (UNet2DConditionModel) models")
    hidden = text = None
    if conditional:
        tokenizer, encoder = getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None)
        if tokenizer is None or encoder is None:
            raise UserError(f"pipeline {what} holds a UNet2DConditionModel but no text_encoder/tokenizer: they are needed to "
                            "compute the prompt embedding; " + SUPPORTED)
        text = "" if prompt is None else prompt
        hidden = prompt_embedding(tokenizer, encoder, text).to(device=device, dtype=dtype)
    unet, autoencoder = (_to(m, device, dtype) for m in (unet, autoencoder))
    source = str(getattr(unet.config, "_name_or_path", ""))
    return _make_prior(unet, pipe.scheduler, autoencoder, hidden, text, name=what, source=source, device=device)
