"""Training data helpers: offline photo sources, the random-crop dataset of `inversa train`, random flips.

Sources are colour photographs that ship with Debian or with Python wheels, so a model can be
trained (and its training reproduced) with no network. Each source records its licence for the
model card. FFHQ images under ../shared are evaluation data and are never a training source.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inversa.errors import UserError

OPENCV_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
# Real colour photographs only (drawings, charts, renders, text and greyscale images left out).
# Of each stereo/viewpoint pair (aero1/3, aloeL/R, leuvenA/B, graf1/3, left/right, rubberwhale1/2)
# one view is kept, so near-duplicates never straddle the held-out split.
OPENCV_PHOTOS = (
    "aero1.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg", "building.jpg",
    "butterfly.jpg", "chicky_512.png", "ela_original.jpg", "fruits.jpg", "graf1.png",
    "home.jpg", "left.jpg", "leuvenA.jpg", "messi5.jpg", "orange.jpg", "pca_test1.jpg",
    "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "stuff.jpg",
)
# Bundled in the scikit-image wheel (no download). `astronaut` is the demo image of
# `inversa restore --demo`: it is always held out so the demo never shows a training image.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
ALWAYS_HELD_OUT = frozenset({"skimage/astronaut"})

LICENCES = {
    "opencv": "OpenCV sample data (Debian package `opencv-doc` 4.6, /usr/share/doc/opencv-doc/"
    "examples/data): Apache-2.0 AND BSD-3-Clause per debian/copyright (Files: *).",
    "skimage": "scikit-image `skimage.data`: astronaut (NASA, public domain), chelsea (CC0, "
    "Stefan van der Walt), coffee (CC0, Rachel Michetti), rocket (SpaceX, public domain).",
    "sklearn": "scikit-learn `load_sample_images`: china.jpg (CC BY 2.0, danielbuechele), "
    "flower.jpg (CC BY 2.0, vultilion), via Flickr.",
    "matplotlib": "matplotlib sample_data grace_hopper.jpg (US Navy photograph, public domain).",
    "dir": "user-supplied directory: licence of its owner.",
}
SOURCES = ("opencv", "skimage", "sklearn", "matplotlib")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Photo:
    name: str  # "<source>/<stem>", unique, stable: the held-out split hashes it
    source: str
    image: Image.Image  # RGB


def _opencv() -> list[Photo]:
    if not OPENCV_DIR.is_dir():
        raise UserError(f"source 'opencv' needs Debian's opencv-doc ({OPENCV_DIR} not found): "
                        "apt-get install opencv-doc")
    return [Photo(f"opencv/{Path(f).stem}", "opencv", Image.open(OPENCV_DIR / f).convert("RGB"))
            for f in OPENCV_PHOTOS]


def _skimage() -> list[Photo]:
    import skimage.data

    return [Photo(f"skimage/{n}", "skimage", Image.fromarray(getattr(skimage.data, n)()).convert("RGB"))
            for n in SKIMAGE_PHOTOS]


def _sklearn() -> list[Photo]:
    try:
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise UserError("source 'sklearn' needs scikit-learn: pip install scikit-learn") from exc
    b = load_sample_images()
    return [Photo(f"sklearn/{Path(f).stem}", "sklearn", Image.fromarray(a).convert("RGB"))
            for f, a in zip(b.filenames, b.images)]


def _matplotlib() -> list[Photo]:
    try:
        import matplotlib.cbook
    except ImportError as exc:
        raise UserError("source 'matplotlib' needs matplotlib: pip install matplotlib") from exc
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return [Photo("matplotlib/grace_hopper", "matplotlib", Image.open(path).convert("RGB"))]


def _directory(path: Path) -> list[Photo]:
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"--data directory {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [Photo(f"dir/{p.relative_to(path).as_posix()}", "dir", Image.open(p).convert("RGB"))
            for p in files]


def load_photos(spec: str) -> list[Photo]:
    """Photos named by a comma-separated list of sources and/or directories; 'all' = every source."""
    loaders = {"opencv": _opencv, "skimage": _skimage, "sklearn": _sklearn, "matplotlib": _matplotlib}
    photos: list[Photo] = []
    for item in (s.strip() for s in spec.split(",")):
        if item == "all":
            for name in SOURCES:
                photos += loaders[name]()
        elif item in loaders:
            photos += loaders[item]()
        elif item and Path(item).is_dir():
            photos += _directory(Path(item))
        else:
            raise UserError(f"--data {item!r}: not a directory nor a source "
                            f"(accepted: all, {', '.join(SOURCES)}, or a directory of images)")
    names = [p.name for p in photos]
    if len(set(names)) != len(names):
        raise UserError(f"--data {spec!r} names the same images twice")
    return photos


def split_photos(photos: list[Photo], held_out_fraction: float = 0.1) -> tuple[list[Photo], list[Photo]]:
    """Deterministic split by image: the photos whose name hashes lowest are held out."""
    ranked = sorted(photos, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    n_held = max(1, round(held_out_fraction * len(photos))) if len(photos) > 1 and held_out_fraction > 0 else 0
    forced = [p for p in ranked if p.name in ALWAYS_HELD_OUT]
    rest = [p for p in ranked if p.name not in ALWAYS_HELD_OUT]
    n_more = max(0, n_held - len(forced))
    held = forced + rest[:n_more]
    return rest[n_more:], held


class RandomCrops(torch.utils.data.Dataset):
    """Random `size`² crops of random scales, randomly flipped, in [-1, 1] (CHW float32).

    Item `i` is a pure function of (seed, i), so a resumed run sees exactly the batches the
    uninterrupted run would have. Scales come from a pyramid built once per photo (halving by
    √2 until the short side reaches `size`), so crops show structure from fine texture to whole
    objects and the costly resampling is not repeated per item. `zoom` > 1 adds levels above the
    photo's own scale (LANCZOS-upsampled up to `zoom` x): smooth, grain-free content at pixel level,
    as in a photo larger than its detail (a 256² face).
    """

    def __init__(self, photos: list[Photo], size: int = 64, *, seed: int = 0, length: int = 10**9,
                 max_side: int = 1024, zoom: float = 1.0):
        if not photos:
            raise UserError("no training images")
        if not 1 <= zoom <= 4:
            raise UserError(f"--zoom {zoom}: must be in [1, 4]")
        self.size, self.seed, self.length = size, seed, length
        self.levels: list[list[torch.Tensor]] = []
        for p in photos:
            img = p.image
            short = min(img.size)
            if short < size:
                raise UserError(f"image {p.name} is {img.size[0]}x{img.size[1]}, smaller than --size {size}")
            # Full-resolution JPEG noise is no part of what a prior should learn at large sizes.
            scale = min(1.0, max_side / max(img.size)) * zoom
            pyramid = []
            while short * scale >= size:
                w, h = (max(size, round(d * scale)) for d in img.size)
                im = img if (w, h) == img.size else img.resize((w, h), Image.Resampling.LANCZOS)
                arr = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)
                pyramid.append(arr)
                scale /= math.sqrt(2)
            self.levels.append(pyramid)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        pyramid = self.levels[rng.integers(len(self.levels))]
        img = pyramid[rng.integers(len(pyramid))]
        _, h, w = img.shape
        top, left = rng.integers(h - self.size + 1), rng.integers(w - self.size + 1)
        crop = img[:, top:top + self.size, left:left + self.size]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        return crop.float() / 127.5 - 1.0

    def batch(self, start: int, n: int) -> torch.Tensor:
        return torch.stack([self[start + j] for j in range(n)])


def random_flips(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flips of a batch (NCHW), drawn from `g` (garments are left-right symmetric classes)."""
    # By hand: torchvision's RandomHorizontalFlip draws from the global RNG, not from the step's generator.
    flip = torch.rand(x.shape[0], generator=g) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
