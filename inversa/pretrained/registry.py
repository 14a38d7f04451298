"""Known priors: the bundled one(s) shipped in the package, diffusers hub models users can fetch, and
guided-diffusion (ADM) checkpoints that users download and convert with `inversa models convert`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BUNDLED_DIR = Path(__file__).parent / "bundled"
DEFAULT_MODEL = "inversa-photo-64"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # "bundled" | "hub" | "adm" (a checkpoint file to download and convert)
    source: str  # package path, hub id, or the ADM file name
    description: str
    licence: str = ""
    obtain: str = ""  # where to download it (ADM)
    adm_config: str = ""  # key of inversa.pretrained.adm.ADM_CONFIGS (ADM)
    sha256: str | None = None  # expected file hash; None = unknown (not verified by us)
    aliases: tuple = ()  # other file names the same checkpoint is distributed under (ADM)
    space: str = "pixel"  # "pixel" (a UNet over images) | "latent" (a UNet over an autoencoder's latents)

    @property
    def label(self) -> str:
        """The kind as `inversa models list` shows it: the source, plus "-latent" for a latent prior."""
        return self.kind if self.space == "pixel" else f"{self.kind}-{self.space}"

    def how_to_get(self) -> str:
        return (f"{self.name} is a guided-diffusion checkpoint that must be converted first: download {self.source} from "
                f"{self.obtain}, then run `inversa models convert {self.source} -o DIR --config {self.adm_config}` and pass --model DIR")


HUB_MODELS = [
    ModelEntry("google/ddpm-ema-celebahq-256", "hub", "google/ddpm-ema-celebahq-256", "DDPM faces 256² (CelebA-HQ), EMA weights", "apache-2.0"),
    ModelEntry("google/ddpm-celebahq-256", "hub", "google/ddpm-celebahq-256", "DDPM faces 256² (CelebA-HQ)", "apache-2.0"),
    ModelEntry("google/ddpm-cifar10-32", "hub", "google/ddpm-cifar10-32", "DDPM CIFAR-10 32²", "apache-2.0"),
    ModelEntry("google/ddpm-church-256", "hub", "google/ddpm-church-256", "DDPM LSUN church 256²", "apache-2.0"),
    ModelEntry("google/ddpm-bedroom-256", "hub", "google/ddpm-bedroom-256", "DDPM LSUN bedroom 256²", "apache-2.0"),
    ModelEntry("google/ddpm-cat-256", "hub", "google/ddpm-cat-256", "DDPM LSUN cat 256²", "apache-2.0"),
    # LDMPipeline: a UNet2DModel over the 64x64x3 latents of a VQModel (f = 4); Rombach et al., CVPR 2022 (LDM-4).
    ModelEntry("CompVis/ldm-celebahq-256", "hub", "CompVis/ldm-celebahq-256",
               "LDM faces 256² (CelebA-HQ): UNet over VQModel 64x64x3 latents", "apache-2.0", space="latent"),
]


# Configurations are in inversa.pretrained.adm.ADM_CONFIGS. File hashes: unknown — we could not download the
# files to hash them, and no hash is published by their authors; `inversa models convert` records the sha256 it saw.
ADM_MODELS = [
    ModelEntry("ffhq_10m", "adm", "ffhq_10m.pt",
               "ADM faces 256² (FFHQ), the DPS authors' checkpoint (DiffPIR and deepinv use it as diffusion_ffhq_10m.pt)",
               licence="not stated (DPS2022/diffusion-posterior-sampling has no licence file); trained on FFHQ (dataset licence CC BY-NC-SA 4.0): treat as non-commercial research use",
               obtain="the Google Drive folder linked from github.com/DPS2022/diffusion-posterior-sampling "
                      "(https://drive.google.com/drive/folders/1jElnRoFv7b31fG0v6pTSQkelbSX3xGZh)",
               adm_config="ffhq", aliases=("diffusion_ffhq_10m.pt",)),
    ModelEntry("256x256_diffusion_uncond", "adm", "256x256_diffusion_uncond.pt",
               "ADM ImageNet 256² unconditional (OpenAI guided-diffusion); DPS's ImageNet config is this architecture",
               licence="MIT (the openai/guided-diffusion repository; no separate weights licence); its model card: research use",
               obtain="https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt "
                      "(listed in github.com/openai/guided-diffusion README)",
               adm_config="imagenet256-uncond"),
]


def _bundled(kind: str, is_kind) -> list[ModelEntry]:
    out = []
    if BUNDLED_DIR.is_dir():
        for d in sorted(BUNDLED_DIR.iterdir()):
            if d.is_dir() and is_kind(d):
                card = d / "MODEL_CARD.md"
                desc = card.read_text().splitlines()[0].lstrip("# ").strip() if card.exists() else f"bundled {kind}"
                out.append(ModelEntry(d.name, kind, str(d), desc, "see MODEL_CARD.md"))
    return out


def bundled_models() -> list[ModelEntry]:
    """Unconditional priors (restoration)."""
    return _bundled("bundled", lambda d: (d / "unet").is_dir() and not (d / "conditioning.json").exists())


def bundled_conditional_models() -> list[ModelEntry]:
    """Class-conditional priors (`inversa distill`): a diffusers folder plus conditioning.json."""
    return _bundled("conditional", lambda d: (d / "conditioning.json").exists())


def bundled_classifiers() -> list[ModelEntry]:
    """Classifiers (`inversa distill --classifier`): config.json + model.safetensors."""
    return _bundled("classifier", lambda d: (d / "config.json").exists() and (d / "model.safetensors").exists())


def restoration_models() -> list[ModelEntry]:
    return bundled_models() + HUB_MODELS + ADM_MODELS


def all_models() -> list[ModelEntry]:
    """Everything `inversa models list` shows: restoration priors, then the distillation models."""
    return restoration_models() + bundled_conditional_models() + bundled_classifiers()


def find_classifier(name: str) -> ModelEntry | None:
    return next((m for m in bundled_classifiers() if m.name == name), None)


def find(name: str) -> ModelEntry | None:
    return next((m for m in all_models() if m.name == name), None)


def find_adm_file(filename: str) -> ModelEntry | None:
    """The ADM entry whose download is called `filename` (e.g. ffhq_10m.pt), if any."""
    return next((m for m in ADM_MODELS if filename in (m.source, *m.aliases)), None)
