"""Images at the edge (files, PIL) <-> float tensors in [0, 1], NCHW; atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from inversa.errors import UserError

Image.MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs with a clear error


def load_image(path, *, mode: str = "RGB") -> torch.Tensor:
    """A file as a (1, C, H, W) float tensor in [0, 1]; RGBA is composited on white, grey -> RGB."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"image file {str(p)!r} does not exist")
    if p.is_dir():
        raise UserError(f"{str(p)!r} is a folder, expected an image file (PNG, JPEG, ...)")
    try:
        with Image.open(p) as im:
            im.load()
            return pil_to_tensor(ImageOps.exif_transpose(im), mode=mode)  # phone photos upright
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{str(p)!r} is not a readable image ({type(exc).__name__}); accepted: PNG, JPEG, BMP, TIFF, WebP") from None


def pil_to_tensor(im: Image.Image, *, mode: str = "RGB") -> torch.Tensor:
    if mode == "RGB" and im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    im = im.convert(mode)
    a = np.asarray(im, dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = a[..., None]
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """(1, C, H, W) or (C, H, W) in [0, 1] -> PIL (RGB or L)."""
    if x.ndim == 4:
        x = x[0]
    a = (x.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)


def save_image(x: torch.Tensor | Image.Image, path) -> Path:
    """Write atomically (temp file + rename): a failure never leaves a half-written image."""
    p = Path(path)
    fmt = check_output_path(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    im = x if isinstance(x, Image.Image) else tensor_to_pil(x)
    fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=p.suffix)
    os.close(fd)
    try:
        im.save(tmp, format=fmt)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return p


def check_output_path(path) -> str:
    """The PIL format for an output path, or one clear error (checked before any work is done)."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"output {str(path)!r} has an unknown image extension; use .png, .jpg, .bmp, .tif or .webp")
    return fmt


def side_by_side(images: list[torch.Tensor], labels: list[str] | None = None, height: int | None = None) -> Image.Image:
    """Panels resized to a common height (nearest, so low-res measurements show their pixels)."""
    from PIL import ImageDraw

    pils = [tensor_to_pil(x).convert("RGB") for x in images]
    h = height or max(p.height for p in pils)
    pils = [p.resize((max(1, round(p.width * h / p.height)), h), Image.NEAREST) for p in pils]
    gap, top = 4, 14 if labels else 0
    canvas = Image.new("RGB", (sum(p.width for p in pils) + gap * (len(pils) - 1), h + top), "white")
    draw, x0 = ImageDraw.Draw(canvas), 0
    for i, p in enumerate(pils):
        canvas.paste(p, (x0, top))
        if labels:
            draw.text((x0 + 2, 1), labels[i], fill="black")
        x0 += p.width + gap
    return canvas
