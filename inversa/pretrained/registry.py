"""Known priors: the bundled one(s) shipped in the package and diffusers hub models users can fetch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BUNDLED_DIR = Path(__file__).parent / "bundled"
DEFAULT_MODEL = "inversa-photo-64"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # "bundled" | "hub"
    source: str  # package path or hub id
    description: str
    licence: str = ""


HUB_MODELS = [
    ModelEntry("google/ddpm-ema-celebahq-256", "hub", "google/ddpm-ema-celebahq-256", "DDPM faces 256² (CelebA-HQ), EMA weights", "apache-2.0"),
    ModelEntry("google/ddpm-celebahq-256", "hub", "google/ddpm-celebahq-256", "DDPM faces 256² (CelebA-HQ)", "apache-2.0"),
    ModelEntry("google/ddpm-cifar10-32", "hub", "google/ddpm-cifar10-32", "DDPM CIFAR-10 32²", "apache-2.0"),
    ModelEntry("google/ddpm-church-256", "hub", "google/ddpm-church-256", "DDPM LSUN church 256²", "apache-2.0"),
    ModelEntry("google/ddpm-bedroom-256", "hub", "google/ddpm-bedroom-256", "DDPM LSUN bedroom 256²", "apache-2.0"),
    ModelEntry("google/ddpm-cat-256", "hub", "google/ddpm-cat-256", "DDPM LSUN cat 256²", "apache-2.0"),
]


def bundled_models() -> list[ModelEntry]:
    out = []
    if BUNDLED_DIR.is_dir():
        for d in sorted(BUNDLED_DIR.iterdir()):
            if (d / "unet").is_dir():
                card = d / "MODEL_CARD.md"
                desc = card.read_text().splitlines()[0].lstrip("# ").strip() if card.exists() else "bundled prior"
                out.append(ModelEntry(d.name, "bundled", str(d), desc, "see MODEL_CARD.md"))
    return out


def all_models() -> list[ModelEntry]:
    return bundled_models() + HUB_MODELS


def find(name: str) -> ModelEntry | None:
    return next((m for m in all_models() if m.name == name), None)
