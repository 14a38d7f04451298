"""The datasets of distillation: Fashion-MNIST from Debian's `dataset-fashion-mnist` (idx files read with
numpy, no extra dependency), and ImageFolders (<class_name>/<image>: distilled sets, real data).

Fashion-MNIST comes back as float32 tensors in [0, 1], shape (N, 1, 32, 32): the 28×28 digits are padded
with 2 black pixels per side so the UNet's size multiple (2^(blocks-1)) divides the side.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inversa.errors import UserError
from inversa.imageio import IMAGE_SUFFIXES, is_image_file, pil_to_tensor

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
SIZE = 32
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def data_root() -> Path:
    return Path(os.environ.get("INVERSA_FASHION_MNIST", DEFAULT_ROOT))


def read_idx(path: Path) -> np.ndarray:
    """An idx file (magic: 2 zero bytes, dtype code 0x08 = uint8, number of dims; then big-endian sizes)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte idx file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@lru_cache(maxsize=2)
def _load(split: str, root: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = (Path(root) / f for f in _FILES[split])
    for p in (images, labels):
        if not p.exists():
            raise UserError(f"Fashion-MNIST file {str(p)!r} is missing: install the Debian package "
                            "dataset-fashion-mnist or set INVERSA_FASHION_MNIST to a folder with the idx .gz files")
    x = torch.from_numpy(read_idx(images).copy()).float().div_(255).unsqueeze(1)
    pad = (SIZE - x.shape[-1]) // 2
    x = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    return x, torch.from_numpy(read_idx(labels).astype(np.int64))


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [0, 1] of shape (N, 1, 32, 32), labels (N,) int64); split is 'train' (60k) or 'test' (10k)."""
    if split not in _FILES:
        raise UserError(f"split {split!r} is not known; accepted: {', '.join(_FILES)}")
    return _load(split, str(data_root()))


def held_out_split(n: int, fraction: float = 1 / 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held-out) of the training split; the held-out part (5000 of 60k) scores training."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = int(round(n * fraction))
    return perm[k:].sort().values, perm[:k].sort().values


# --- ImageFolder: <class_name>/<image> --------------------------------------------------------------

def _class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if is_image_file(f))


def load_image_folder(path: str | Path, class_names: list[str] | None = None, ipc: int | None = None,
                      channels: int | None = None, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """An ImageFolder (<class_name>/<image>) -> (images in [0, 1] NCHW, labels, class names).

    Labels follow `class_names` when given (every folder must be one of them), else sorted folder
    names. `ipc` keeps the first IPC files (sorted) per class. Images are converted to `channels`
    (1 or 3; default: the first image's) and resized to `size` (default: the first image's)."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{str(root)!r} is not a folder; expected an ImageFolder (one sub-folder per class)")
    dirs = _class_dirs(root)
    if not dirs:
        raise UserError(f"{str(root)!r} has no class sub-folders")
    names = list(class_names) if class_names is not None else [d.name for d in dirs]
    unknown = [d.name for d in dirs if d.name not in names]
    if unknown:
        raise UserError(f"{str(root)!r}: folder(s) {', '.join(unknown)} are not classes; accepted: {', '.join(names)}")
    xs, ys = [], []
    for d in dirs:
        files = _image_files(d)
        if ipc is not None:
            if len(files) < ipc:
                raise UserError(f"{str(d)!r} has {len(files)} images, fewer than the IPC {ipc} asked for")
            files = files[:ipc]
        for f in files:
            img = Image.open(f)
            if channels is None:
                channels = 1 if img.mode in ("L", "I", "I;16", "1") else 3
            mode = "L" if channels == 1 else "RGB"
            img = img.convert(mode)
            if size is None:
                size = img.size[0]
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BICUBIC)
            xs.append(pil_to_tensor(img, mode=mode)[0])
            ys.append(names.index(d.name))
    if not xs:
        raise UserError(f"{str(root)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return torch.stack(xs), torch.tensor(ys), names


def infer_ipc(folder: str | Path) -> int:
    """The smallest number of images in a class folder of an ImageFolder."""
    counts = [len(_image_files(d)) for d in _class_dirs(Path(folder))]
    if not counts or min(counts) == 0:
        raise UserError(f"{str(folder)!r} is not a non-empty ImageFolder")
    return min(counts)
