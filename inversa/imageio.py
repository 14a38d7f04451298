"""The one place for files and images: PIL/arrays/files <-> float tensors in [0, 1] (NCHW), tensors
-> 8-bit with one rounding convention, the image suffixes accepted everywhere, and atomic writes.

Every file is written to a temporary name in its folder and renamed over the target (`os.replace`
is atomic), so a process killed at any moment leaves either the old file or the new one, never a
half-written one.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from inversa.errors import UserError

Image.MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs with a clear error

# The image files read from folders (eval data, ImageFolders, operator masks): what PIL reads and writes losslessly
# enough to be used everywhere; the same list as load_image's and check_output_path's messages.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    """A visible file with one of IMAGE_SUFFIXES (hidden files, e.g. our own temporaries, are not images)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


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


def load_image_square(path, size: int | None = None) -> torch.Tensor:
    """RGB (1, 3, H, W) in [0, 1] (alpha dropped, no EXIF rotation: evaluation data as stored); with
    `size`, centre-cropped to a square and resized (bicubic) to size²."""
    with Image.open(path) as img:
        img = img.convert("RGB")
    if size is not None and img.size != (size, size):
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        img = img.resize((size, size), Image.BICUBIC)
    return pil_to_tensor(img)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] -> uint8 0..255, same shape; k/255 maps back to k exactly."""
    # Round half to even (torch.round): what the eval store, the distilled PNGs and metrics already used; ties are rare.
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """(1, C, H, W) or (C, H, W) in [0, 1] -> PIL (RGB or L)."""
    if x.ndim == 4:
        x = x[0]
    a = to_uint8(x.detach().float().cpu()).permute(1, 2, 0).numpy()
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)


def save_image(x: torch.Tensor | Image.Image, path, **options) -> Path:
    """Write atomically (temp file + rename): a failure never leaves a half-written image. `options`
    go to PIL's save (e.g. compress_level=1 for fast PNGs; lossless either way)."""
    p = Path(path)
    fmt = check_output_path(p)
    im = x if isinstance(x, Image.Image) else tensor_to_pil(x)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    atomic_write_bytes(p, buf.getvalue())
    return p


# --- atomic writes -------------------------------------------------------------------------------

def atomic_write_bytes(path, data: bytes) -> None:
    """`data` in `path`, complete or not at all (missing folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")  # unique per writer
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj, *, indent: int = 1, sort_keys: bool = True) -> None:
    """JSON (tensors, NumPy scalars, paths made plain), one trailing newline."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, torch.Tensor):
        return o.tolist() if o.numel() <= 16 else f"tensor{tuple(o.shape)}"
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, (Path, torch.device, torch.dtype)):
        return str(o)
    return repr(o)


def atomic_save_safetensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))


def read_json(path):
    """The parsed file, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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
