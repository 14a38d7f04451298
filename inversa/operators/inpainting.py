"""Inpainting: y = m ⊙ (x + n) with a fixed binary mask m (1 = observed, 0 = missing).

The mask is shared by all channels and is either one mask for every image ((H, W) or (1, 1, H, W))
or one per image ((B, 1, H, W)). A is self-adjoint and A^T A = diag(m), so `gram_diagonal()` = m.
Noise convention: missing pixels of a measurement are exactly 0, noise included (`restrict_noise`).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inversa.errors import UserError
from inversa.operators.base import LinearOperator, _positive_int, check_shape, read_array
from inversa.operators.noise import NoiseModel


class Inpainting(LinearOperator):
    """A(x) = mask * x (same shape). `mask`: tensor or array, (H, W), (1, 1, H, W) or (B, 1, H, W)."""

    name = "inpainting"

    def __init__(self, mask, noise: NoiseModel | None = None, *, channels: int | None = None):
        super().__init__(noise, channels)
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        if m.ndim == 2:
            m = m[None, None]
        if m.ndim != 4 or m.shape[1] != 1:
            raise UserError(f"mask must have shape (H, W), (1, 1, H, W) or (B, 1, H, W), got {tuple(m.shape)}")
        m = m.double() if not m.is_floating_point() else m
        if not ((m == 0) | (m == 1)).all():
            raise UserError("mask values must be 0 (missing) or 1 (observed)")
        self.register_buffer("mask", m.to(torch.get_default_dtype()))

    def _mask_for(self, x: torch.Tensor, what: str) -> torch.Tensor:
        check_shape(x, what, self.channels)
        mb, _, mh, mw = self.mask.shape
        if tuple(x.shape[-2:]) != (mh, mw):
            raise UserError(f"{what} is {x.shape[-2]}x{x.shape[-1]} but the inpainting mask is {mh}x{mw}")
        if mb != 1 and x.shape[0] != mb:
            raise UserError(f"{what} has batch {x.shape[0]} but the operator holds {mb} per-image masks")
        return self.mask.to(x.dtype)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self._mask_for(x, "x") * x

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._mask_for(y, "y") * y

    def gram_diagonal(self) -> torch.Tensor:
        return self.mask

    def restrict_noise(self, y: torch.Tensor) -> torch.Tensor:
        return self._mask_for(y, "y") * y

    def A_dagger(self, y: torch.Tensor, **_) -> torch.Tensor:
        """A = diag(m) with m in {0, 1}, so A^† = diag(m): observed pixels kept, missing ones 0."""
        return self._mask_for(y, "y") * y

    # SVD: V = I (pixels), singular values = the mask, U = I restricted to the observed pixels.
    has_svd = True

    def singulars(self, like: torch.Tensor) -> torch.Tensor:
        return self._mask_for(like, "x")

    def V_T(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, "x", self.channels)
        return x

    V = V_T

    def U_T(self, y: torch.Tensor) -> torch.Tensor:
        return self._mask_for(y, "y") * y

    U = U_T

    def naive_inverse(self, y: torch.Tensor) -> torch.Tensor:
        return fill_missing(y, self._mask_for(y, "y"))

    def metadata(self) -> dict:
        return {**super().metadata(), "mask_shape": list(self.mask.shape),
                "observed_fraction": float(self.mask.mean())}

    def extra_repr(self) -> str:
        return f"mask={tuple(self.mask.shape)}, observed={float(self.mask.mean()):.3f}"


def fill_missing(y: torch.Tensor, mask: torch.Tensor, smooth_steps: int = 8) -> torch.Tensor:
    """Fill missing pixels by normalised convolution: grow the observed region ring by ring (each
    new pixel = mean of its already-known 3x3 neighbours), then smooth the filled pixels a few
    times by 3x3 diffusion with observed pixels held fixed. Images without any observed pixel -> 0.5."""
    with torch.no_grad():
        m = mask.to(y.dtype).expand(y.shape[0], 1, *y.shape[-2:])
        box = torch.ones(1, 1, 3, 3, dtype=y.dtype, device=y.device)

        def sum3(v):  # per-channel 3x3 neighbourhood sum, zero outside the image
            return F.conv2d(v, box.expand(v.shape[1], 1, 3, 3), padding=1, groups=v.shape[1])

        known, x = m.clone(), y * m
        for _ in range(max(y.shape[-2:])):
            if bool(known.all()):
                break
            den = sum3(known)
            new = (known == 0) & (den > 0)
            x = torch.where(new, sum3(x * known) / den.clamp(min=1), x)
            known = known + new.to(y.dtype)
        x = torch.where(known > 0, x, torch.full_like(x, 0.5))
        count = sum3(torch.ones_like(m))
        for _ in range(smooth_steps):
            x = torch.where(m > 0, y, sum3(x) / count)
        return x.clamp(0, 1)


# --- mask constructors: all return (H, W) float tensors, 1 = observed ------------------------
def _size(value, what: str = "image_size") -> tuple[int, int]:
    """An int n (square) or an (h, w) pair, as two positive ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = value
    except (TypeError, ValueError):
        raise UserError(f"{what} must be an int or (height, width), got {value!r}") from None
    return _positive_int(h, f"{what} height"), _positive_int(w, f"{what} width")


def box_mask(image_size, box_size, position=None, *, margin: int = 0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """A missing box of `box_size` (int or (h, w)) at `position` = (top, left), or, when position
    is None, at a uniformly random position at least `margin` px from every border (seeded)."""
    h, w = _size(image_size)
    bh, bw = _size(box_size, "box size")
    margin = _positive_int(margin, "margin", minimum=0)
    if position is None:
        if bh + 2 * margin > h or bw + 2 * margin > w:
            raise UserError(f"a {bh}x{bw} box with a {margin} px margin does not fit a {h}x{w} image")
        top = margin + int(torch.randint(h - bh - 2 * margin + 1, (1,), generator=generator))
        left = margin + int(torch.randint(w - bw - 2 * margin + 1, (1,), generator=generator))
    else:
        try:
            top, left = (_positive_int(p, "box position", minimum=0) for p in position)
        except (TypeError, ValueError):
            raise UserError(f"box position must be (top, left), got {position!r}") from None
        if top + bh > h or left + bw > w:
            raise UserError(f"a {bh}x{bw} box at (top={top}, left={left}) does not fit a {h}x{w} image")
    m = torch.ones(h, w)
    m[top:top + bh, left:left + bw] = 0
    return m


def random_mask(image_size, fraction_dropped: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop exactly round(fraction * H * W) pixels chosen uniformly at random (seeded)."""
    h, w = _size(image_size)
    if not isinstance(fraction_dropped, numbers.Real) or not 0 <= fraction_dropped <= 1:
        raise UserError(f"fraction_dropped must be a number in [0, 1], got {fraction_dropped!r}")
    m = torch.ones(h * w)
    m[torch.randperm(h * w, generator=generator)[:round(fraction_dropped * h * w)]] = 0
    return m.view(h, w)


def extreme_mask(image_size, box_size=None) -> torch.Tensor:
    """"Extreme" inpainting: only a central box is observed (default half the side)."""
    h, w = _size(image_size)
    bh, bw = _size(box_size, "box size") if box_size is not None else (max(1, h // 2), max(1, w // 2))
    if bh > h or bw > w:
        raise UserError(f"box {bh}x{bw} does not fit a {h}x{w} image")
    return 1 - box_mask((h, w), (bh, bw), ((h - bh) // 2, (w - bw) // 2))


def half_mask(image_size, missing: str = "right") -> torch.Tensor:
    """The `missing` half ("left", "right", "top" or "bottom") is removed."""
    h, w = _size(image_size)
    halves = {"left": (slice(None), slice(0, w // 2)), "right": (slice(None), slice(w // 2, None)),
              "top": (slice(0, h // 2), slice(None)), "bottom": (slice(h // 2, None), slice(None))}
    if missing not in halves:
        raise UserError(f"half mask side {missing!r} is unknown; accepted: {', '.join(halves)}")
    m = torch.ones(h, w)
    m[halves[missing]] = 0
    return m


def load_mask(source, image_size=None, *, key: str | None = None) -> torch.Tensor:
    """A free-form mask from an image file, .npy/.npz file, array or tensor: white (>= half of the
    value range) = missing. Colour image files are read as grey, colour arrays (H, W, 3|4) averaged
    over channels. With `image_size` the mask is resized to it (nearest neighbour)."""
    if isinstance(source, (str, Path)):
        arr = read_array(source, "mask", key)
    else:
        arr = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else np.asarray(source)
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # HWC colour image
        arr = arr[..., :3].mean(-1)
    if arr.ndim != 2:
        raise UserError(f"a mask must be a 2-D (grey or colour) image, got shape {arr.shape}")
    if arr.dtype == bool:
        missing = arr
    else:
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise UserError("mask contains NaN or inf values")
        top = 255.0 if arr.max() > 1 else 1.0  # 8-bit or [0, 1] values
        missing = arr >= top / 2
    m = torch.from_numpy((~missing).astype(np.float32))
    if image_size is not None and tuple(m.shape) != _size(image_size):
        m = F.interpolate(m[None, None], size=_size(image_size), mode="nearest")[0, 0]
    return m


def as_mask_batch(masks) -> torch.Tensor:
    """Stack (H, W) masks into the (B, 1, H, W) per-image layout."""
    return torch.stack([torch.as_tensor(m) for m in masks])[:, None]

