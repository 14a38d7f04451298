"""The offline demo photo: scikit-image's `astronaut` (public domain, NASA), shipped in its wheel."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def demo_image(size: int = 256) -> torch.Tensor:
    """(1, 3, size, size) in [0, 1]."""
    from skimage import data

    a = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    return F.interpolate(a, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
