"""Class-conditional priors behind the `DiffusionPrior` interface, for dataset distillation.

- `ClassConditionalPrior`: a pixel-space diffusers `UNet2DModel` with `num_class_embeds`.
- `LatentClassConditionalPrior`: a DiT-style `DiTTransformer2DModel` in the latent space of an
  `AutoencoderKL`; `decode` maps a latent x0hat to pixels, differentiably (guidance flows through it).

Both do classifier-free guidance (Ho & Salimans): eps = eps(x, null) + w (eps(x, y) - eps(x, null)),
the null class being the extra label index (DiT's convention: index = number of classes). Only the
eps channels are guided; a learned variance comes from the conditional pass (as DiTPipeline does).
Images are on the [-1, 1] scale; `predict(x_t, t, class_labels=y)` gives eps and x0hat.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from inversa.errors import UserError
from inversa.pretrained.prior import DiffusionPrior, Prediction


class ClassConditionalPrior(DiffusionPrior):
    """`model(x, t, class_labels=y)` + scheduler. `null_class`: the label meaning "no class" (None
    when the model was trained without one: then CFG is unavailable). `cfg_scale` 1 = plain conditional."""

    def __init__(self, model, scheduler, *, num_classes: int, null_class: int | None = None, cfg_scale: float = 1.0,
                 class_names=None, name: str = "custom", source: str = ""):
        super().__init__(model, scheduler, name=name, source=source)
        self.num_classes, self.null_class = int(num_classes), null_class
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.cfg_scale = 1.0
        self.set_cfg_scale(cfg_scale)

    def set_cfg_scale(self, w: float) -> None:
        if not w >= 0:
            raise UserError(f"cfg_scale must be a non-negative number, got {w}")
        if w != 1.0 and self.null_class is None:
            raise UserError(f"cfg_scale {w}: model {self.name} has no null class, so classifier-free guidance is unavailable (use 1)")
        self.cfg_scale = float(w)

    def check_labels(self, labels: torch.Tensor) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.device)
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise UserError(f"class labels must be in [0, {self.num_classes - 1}], got {labels.tolist()}")
        return labels

    def net(self, x_t: torch.Tensor, t: int, class_labels=None, **kwargs) -> torch.Tensor:
        if class_labels is None:  # unconditional use (e.g. the restoration loop): the null class
            if self.null_class is None:
                raise UserError(f"model {self.name} is class-conditional and has no null class: give class labels")
            class_labels = torch.full((x_t.shape[0],), self.null_class, dtype=torch.long, device=x_t.device)
            return super().net(x_t, t, class_labels=class_labels, **kwargs)
        class_labels = torch.as_tensor(class_labels, dtype=torch.long, device=x_t.device)
        if self.cfg_scale == 1.0:
            return super().net(x_t, t, class_labels=class_labels, **kwargs)
        null = torch.full_like(class_labels, self.null_class)
        # One batched pass for both (counted once: NFE is per batch, as everywhere in the project).
        out = super().net(torch.cat([x_t, x_t]), t, class_labels=torch.cat([class_labels, null]), **kwargs)
        cond, uncond = out.chunk(2)
        c = self.in_channels
        eps = uncond[:, :c] + self.cfg_scale * (cond[:, :c] - uncond[:, :c])
        return torch.cat([eps, cond[:, c:]], dim=1)

    def sample_shape(self, n: int, size: int | None = None) -> tuple[int, ...]:
        s = size or self.sample_size
        if s is None:
            raise UserError(f"model {self.name} has no sample_size in its config: give the image size")
        return (n, self.in_channels, int(s), int(s))

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> pixels on [-1, 1] (identity in pixel space)."""
        return x


class LatentClassConditionalPrior(ClassConditionalPrior):
    """DiT in a VAE latent. The latent x0hat is not clipped (latents are not bounded); `decode` is
    `vae.decode(z / scaling_factor)`, kept in the autograd graph."""

    def __init__(self, model, scheduler, vae, *, num_classes: int, null_class: int | None = None, cfg_scale: float = 1.0,
                 class_names=None, name: str = "custom", source: str = ""):
        if getattr(model.config, "out_channels", None) is None:  # DiT's default: out = in (no learned variance)
            model.register_to_config(out_channels=model.config.in_channels)
        super().__init__(model, scheduler, num_classes=num_classes, null_class=null_class, cfg_scale=cfg_scale,
                         class_names=class_names, name=name, source=source)
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self.size_multiple = int(model.config.patch_size)

    def predict(self, x_t: torch.Tensor, t: int, *, clip: bool = True, **kwargs) -> Prediction:
        return super().predict(x_t, t, clip=False, **kwargs)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode((z / self.scaling_factor).to(self.vae.dtype)).sample.to(z.dtype)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels on [-1, 1] -> latent (posterior mean, scaled)."""
        return self.vae.encode(x.to(self.vae.dtype)).latent_dist.mean.to(x.dtype) * self.scaling_factor


def class_names_from_id2label(id2label: dict, num_classes: int) -> list[str]:
    """Folder-safe class names from a DiTPipeline `id2label` ({"0": "tench, Tinca tinca", ...}, the ImageNet
    synonym lists of facebook/DiT-XL-2-256): the first synonym of each class; a name shared by several classes
    (ImageNet has two "crane"s) gets its index appended ("crane_134", "crane_517"); a missing id keeps its index.
    Slashes become "-" (the names are folder names in `inversa distill`)."""
    first = {}
    for key, value in id2label.items():
        try:
            i = int(key)
        except (TypeError, ValueError):
            raise UserError(f"id2label key {key!r} is not a class index; expected {{\"0\": \"name, synonym\", ...}}") from None
        first[i] = str(value).split(",")[0].strip().replace("/", "-").replace("\\", "-") or str(i)
    names = [first.get(i, str(i)) for i in range(num_classes)]
    return [f"{n}_{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def load_conditional_prior(name_or_path: str, *, cfg_scale: float = 1.0, device="cpu", dtype=torch.float32) -> ClassConditionalPrior:
    """A bundled name (e.g. inversa-fashion-32) or a folder: `unet/` (+ `scheduler/`) for pixel space,
    or `transformer/` + `vae/` + `scheduler/` (the DiTPipeline layout, e.g. a `DiTPipeline.save_pretrained`
    folder or facebook/DiT-XL-2-256) for the latent path. Weights are read from *.safetensors only.
    Class names and counts, first found wins: an optional `conditioning.json` (num_classes, null_class,
    class_names); the `id2label` of `model_index.json` (the hub's DiT folders carry it there and
    `DiTPipeline.from_pretrained` reads it; `DiTPipeline.save_pretrained` does NOT write it back — diffusers
    0.42 registers only the modules in model_index.json — so a re-saved folder needs conditioning.json for
    names); else indices. A UNet's classes are its `num_class_embeds` (no null class), a DiT's
    `num_embeds_ada_norm` with null = that index."""
    from diffusers import DDPMScheduler

    from inversa.pretrained import registry

    entry = registry.find(name_or_path)
    path = Path(entry.source) if entry is not None and entry.kind == "conditional" else Path(name_or_path).expanduser()
    if not path.is_dir():
        known = ", ".join(m.name for m in registry.bundled_conditional_models()) or "(none installed)"
        raise UserError(f"unknown class-conditional model {name_or_path!r}: not a bundled name ({known}) or a folder "
                        "with unet/ or transformer/ + vae/")
    cond = json.loads((path / "conditioning.json").read_text()) if (path / "conditioning.json").exists() else {}
    index = json.loads((path / "model_index.json").read_text()) if (path / "model_index.json").exists() else {}
    id2label = index.get("id2label") if isinstance(index, dict) else None
    sched_dir = path / "scheduler"
    scheduler = DDPMScheduler.from_pretrained(sched_dir) if (sched_dir / "scheduler_config.json").exists() \
        else DDPMScheduler(beta_schedule="linear")
    name = entry.name if entry is not None else str(path)
    try:
        if (path / "transformer" / "config.json").exists():
            from diffusers import AutoencoderKL, DiTTransformer2DModel

            _require_safetensors(path / "transformer", path / "vae")
            model = DiTTransformer2DModel.from_pretrained(path / "transformer", torch_dtype=dtype, use_safetensors=True)
            vae = AutoencoderKL.from_pretrained(path / "vae", torch_dtype=dtype, use_safetensors=True)
            n = cond.get("num_classes", model.config.num_embeds_ada_norm)
            names = cond.get("class_names") or (class_names_from_id2label(id2label, n) if isinstance(id2label, dict) else None)
            prior = LatentClassConditionalPrior(model.eval().requires_grad_(False), scheduler, vae.eval().requires_grad_(False),
                                                num_classes=n, null_class=cond.get("null_class", n),
                                                class_names=names, name=name, source=str(path))
        else:
            from diffusers import UNet2DModel

            unet_dir = path / "unet" if (path / "unet" / "config.json").exists() else path
            _require_safetensors(unet_dir)
            model = UNet2DModel.from_pretrained(unet_dir, torch_dtype=dtype, use_safetensors=True)
            if not model.config.num_class_embeds:
                raise UserError(f"model {name!r} is not class-conditional (its UNet has no num_class_embeds)")
            prior = ClassConditionalPrior(model.eval().requires_grad_(False), scheduler,
                                          num_classes=cond.get("num_classes", model.config.num_class_embeds),
                                          null_class=cond.get("null_class"), class_names=cond.get("class_names"),
                                          name=name, source=str(path))
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"could not load a class-conditional model from {str(path)!r}: {str(exc).splitlines()[0]}") from None
    prior.set_cfg_scale(cfg_scale)
    return prior.to(device)


def _require_safetensors(*folders: Path) -> None:
    for d in folders:
        if not any(d.glob("*.safetensors")):
            raise UserError(f"model folder {str(d)!r} has no weights (*.safetensors); pickled weights (*.bin) are not loaded")
