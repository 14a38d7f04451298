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


def as_image(image, *, name: str = "image") -> torch.Tensor:
    """Any image a user hands the API as a (1, C, H, W) float tensor in [0, 1]: a file path, a PIL
    image, a NumPy array (H, W), (H, W, C) uint8 in [0, 255] or float in [0, 1], or a tensor
    (C, H, W) / (1, C, H, W) in [0, 1]. Anything else is one UserError."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return pil_to_tensor(image)
    if isinstance(image, np.ndarray):
        return _array_to_tensor(image, name)
    if isinstance(image, torch.Tensor):
        x = image.detach()
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
            raise UserError(f"{name} tensor of shape {tuple(image.shape)} and dtype {image.dtype}: expected a float "
                            f"tensor (1, C, H, W) or (C, H, W) with C = 1 or 3, values in [0, 1]")
        return x.float().clamp(0, 1) if x.shape[1] == 3 else x.float().clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
    raise UserError(f"{name} of type {type(image).__name__}: expected a file path, a PIL image, a NumPy array "
                    f"(H, W[, C]) or a torch tensor (1, C, H, W) in [0, 1]")


def _array_to_tensor(a: np.ndarray, name: str) -> torch.Tensor:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise UserError(f"{name} array of shape {a.shape}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float32)
        if not np.isfinite(f).all() or f.min() < 0 or f.max() > 1:
            raise UserError(f"{name} float array has values outside [0, 1] (min {np.nanmin(f):.3g}, max "
                            f"{np.nanmax(f):.3g}); expected floats in [0, 1] or uint8 in [0, 255]")
    else:
        raise UserError(f"{name} array of dtype {a.dtype}: expected uint8 in [0, 255] or float in [0, 1]")
    if f.shape[2] == 4:  # composite on white, like RGBA files
        f = f[..., :3] * f[..., 3:] + (1 - f[..., 3:])
    x = torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1).unsqueeze(0)
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


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
    """The PIL format for an output path, or one clear error (checked before any work is done):
    a known image extension, not a folder, and a place where a file can be created."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"output {str(path)!r} has an unknown image extension; use .png, .jpg, .bmp, .tif or .webp")
    check_writable(path, "output")
    return fmt


def check_writable(path, what: str = "output") -> None:
    """One UserError unless a file can be written at `path`: not an existing folder, and its nearest
    existing parent is a writable folder (missing folders are created on write)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"{what} {str(path)!r} is a folder; expected a file path")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{what} {str(path)!r} cannot be written: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UserError(f"{what} {str(path)!r} cannot be written: no write permission in {str(parent)!r}")


def check_writable_folder(path, what: str = "output folder") -> None:
    """One UserError unless `path` is, or can be created as, a writable folder."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} {str(path)!r} exists and is a file; expected a folder")
    parent = p
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{what} {str(path)!r} cannot be created: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} {str(path)!r} cannot be written: no write permission in {str(parent)!r}")


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
