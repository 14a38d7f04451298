"""The images of an evaluation's data folder (reading, atomic writes and 8-bit rounding: `inversa.imageio`)."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from inversa.errors import UserError
from inversa.imageio import IMAGE_SUFFIXES


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
