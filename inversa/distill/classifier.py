"""A classifier q(y|x) for guidance: any torch module giving logits, plus the input it expects.

`Classifier(x)` takes images in [0, 1] (NCHW, any size and 1 or 3 channels) and adapts them to the
wrapped network: channel count, bilinear resize to `input_size`, value range, per-channel
normalisation. Everything is differentiable, so guidance gradients flow back to the image.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from inversa.errors import UserError


class Classifier(torch.nn.Module):
    def __init__(self, net: torch.nn.Module, *, input_size: int | None = None, input_range=(0.0, 1.0), mean=None,
                 std=None, in_channels: int | None = None, class_names=None, name: str = "custom", source: str = ""):
        super().__init__()
        self.net = net
        self.input_size, self.input_range = input_size, tuple(float(v) for v in input_range)
        self.in_channels = in_channels if in_channels is not None else (len(mean) if mean is not None else None)
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.0]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std if std is not None else [1.0]).view(1, -1, 1, 1), persistent=False)
        self.class_names = list(class_names) if class_names is not None else None
        self.name, self.source = name, source

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.class_names else None

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> the network's input."""
        c = self.in_channels
        if c is not None and x.shape[1] != c:
            if c == 1:  # luminance (ITU-R 601) when a colour image meets a grey-level classifier
                x = (x * torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True) \
                    if x.shape[1] == 3 else x.mean(1, keepdim=True)
            elif x.shape[1] == 1:
                x = x.expand(-1, c, -1, -1)
            else:
                raise UserError(f"the classifier expects {c} channels, the images have {x.shape[1]}")
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=False)
        lo, hi = self.input_range
        x = x * (hi - lo) + lo
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for images in [0, 1]."""
        return self.net(self.prepare(x))


def load_classifier(name_or_path: str, *, device="cpu") -> Classifier:
    """A bundled classifier name (e.g. inversa-fashion-classifier) or a folder with `config.json`
    (arch, arch_kwargs, input_size, input_range, mean, std, class_names) + `model.safetensors`."""
    from safetensors.torch import load_file

    from inversa.distill.nets import make_net
    from inversa.pretrained import registry

    entry = registry.find_classifier(name_or_path)
    path = Path(entry.source) if entry is not None else Path(name_or_path).expanduser()
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        known = ", ".join(c.name for c in registry.bundled_classifiers()) or "(none installed)"
        raise UserError(f"unknown classifier {name_or_path!r}: not a bundled name ({known}) or a folder with "
                        "config.json and model.safetensors")
    cfg = json.loads((path / "config.json").read_text())
    net = make_net(cfg["arch"], in_channels=cfg["in_channels"], num_classes=cfg["num_classes"], size=cfg["input_size"],
                   **cfg.get("arch_kwargs", {}))
    net.load_state_dict(load_file(path / "model.safetensors"))
    net.eval().requires_grad_(False)
    clf = Classifier(net, input_size=cfg["input_size"], input_range=cfg["input_range"], mean=cfg["mean"], std=cfg["std"],
                     in_channels=cfg["in_channels"], class_names=cfg["class_names"],
                     name=entry.name if entry is not None else str(path), source=str(path))
    return clf.to(device)


# --- class centroids Q_y = E[softmax q(.|x) | Y = y] over real images (IGDS's contextual term) ---

def cache_dir() -> Path:
    import os

    return Path(os.environ.get("INVERSA_CACHE", Path.home() / ".cache" / "inversa")) / "centroids"


def centroid_key(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 of the classifier's weights and input adaptation, and of the data (images, labels)."""
    from inversa.pretrained.safe_load import state_dict_sha256

    h = state_dict_sha256(classifier.state_dict())
    h.update(json.dumps([classifier.input_size, classifier.input_range, classifier.in_channels]).encode())
    h.update(images.detach().cpu().float().contiguous().numpy().tobytes())
    h.update(labels.detach().cpu().long().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


@torch.no_grad()
def class_centroids(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                    batch_size: int = 500) -> torch.Tensor:
    """(num_classes, num_classes): row y is the mean softmax of the real images of class y."""
    dev = next(classifier.parameters()).device
    sums = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    counts = torch.bincount(labels.long(), minlength=num_classes).double()
    if (counts == 0).any():
        raise UserError(f"no real images of class(es) {torch.nonzero(counts == 0).flatten().tolist()}: centroids need every class")
    for i in range(0, len(images), batch_size):
        p = classifier(images[i:i + batch_size].to(dev)).softmax(-1).double().cpu()
        sums.index_add_(0, labels[i:i + batch_size].long(), p)
    return (sums / counts[:, None]).float()


def cached_centroids(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     *, directory: str | Path | None = None) -> tuple[torch.Tensor, Path]:
    """`class_centroids`, computed once per (classifier weights, data) and cached as safetensors."""
    from safetensors.torch import load_file

    from inversa.imageio import atomic_save_safetensors

    path = Path(directory or cache_dir()) / f"{centroid_key(classifier, images, labels)}.safetensors"
    if path.exists():
        return load_file(path)["centroids"], path
    q = class_centroids(classifier, images, labels, num_classes)
    # atomic: a concurrent or interrupted run never sees half a file
    atomic_save_safetensors(path, {"centroids": q}, metadata={"classifier": classifier.name, "images": str(len(images))})
    return q, path
