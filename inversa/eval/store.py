"""Files of an evaluation run: atomic writes, images in and out, the row store.

Every file is written to a temporary name in its folder and renamed over the target (`os.replace`
is atomic), so a process killed at any moment leaves either the old file or the new one, never a
half-written one. A row file exists only once its item is completely done: it is the resume marker.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inversa.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")  # unique per writer
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, torch.Tensor):
        return o.tolist() if o.numel() <= 16 else f"tensor{tuple(o.shape)}"
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, (Path, torch.device, torch.dtype)):
        return str(o)
    return repr(o)


def read_json(path: Path):
    """The parsed file, or None when it is missing or unreadable (a row to redo)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def to_pil(x: torch.Tensor) -> Image.Image:
    """(1, C, H, W) or (C, H, W) in [0, 1] -> 8-bit PIL image (rounded)."""
    x = x.detach().float().cpu().clamp(0, 1)
    x = x[0] if x.ndim == 4 else x
    arr = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def save_png(path: Path, x: torch.Tensor) -> None:
    buf = io.BytesIO()
    to_pil(x).save(buf, format="PNG", compress_level=1)  # lossless either way; level 6 is 3x slower
    atomic_write_bytes(path, buf.getvalue())


def load_png(path: Path) -> torch.Tensor:
    return pil_to_tensor(Image.open(path).convert("RGB"))


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255


def load_image(path: Path, size: int | None = None) -> torch.Tensor:
    """RGB (1, 3, H, W) in [0, 1]; with `size`, centre-cropped to a square and resized (bicubic) to size²."""
    with Image.open(path) as img:
        img = img.convert("RGB")
    if size is not None and img.size != (size, size):
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        img = img.resize((size, size), Image.BICUBIC)
    return pil_to_tensor(img)


def list_images(data: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """(image files sorted by name, names of the files skipped with why); hidden files are ignored."""
    root = Path(data).expanduser()
    if not root.exists():
        raise UserError(f"data folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise UserError(f"--data must be a folder of images, {str(root)!r} is not a folder")
    images, skipped = [], []
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(f"{p.name} (not an image file)")
            continue
        try:
            with Image.open(p) as img:
                img.verify()
        except Exception as exc:
            skipped.append(f"{p.name} (unreadable: {type(exc).__name__})")
            continue
        images.append(p)
    if not images:
        raise UserError(f"no images in {str(root)!r} (accepted: {', '.join(IMAGE_SUFFIXES)})")
    return images, skipped
