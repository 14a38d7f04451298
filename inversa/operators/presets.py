"""Named benchmark settings (DPS/DAPS, FFHQ 256²), reproducible image by image.

Noise defaults to the literature's σ_y = 0.05 on [-1, 1], i.e. σ = 0.025 in our [0, 1] units
(`sigma` is given in [0, 1] units). The mask or kernel of image k is drawn from a generator seeded
with `seed * 1_000_003 + k`, so it does not depend on which other images are processed: `index=k`
builds the operator of image k, `index=[k0, k1, ...]` one operator holding per-image masks/kernels
for a batch of those images. Sizes are the benchmark's at 256² and scale with the image for the
inpainting boxes; blur kernels keep their 61x61 size on any image (reflect padding extends by
repeated reflection when the kernel is larger than the image, the adjoint stays exact).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from inversa.errors import UserError
from inversa.operators.base import LinearOperator, _positive_int
from inversa.operators.blur import Blur, gaussian_kernel, motion_kernel
from inversa.operators.identity import Identity
from inversa.operators.inpainting import Inpainting, _size, box_mask, random_mask
from inversa.operators.noise import GaussianNoise
from inversa.operators.resize import SuperResolution

DEFAULT_SIGMA = 0.025  # [0, 1] units; = 0.05 on [-1, 1]

PRESETS = {
    "sr4": "x4 super-resolution, MATLAB-style antialiased bicubic",
    "box_inpaint": "box inpainting: a hole of half the side (128x128 at 256²) at a random position, "
                   "margin 1/16 of the side (16 px at 256²)",
    "random_inpaint": "random inpainting: 70% of the pixels dropped, same on all channels",
    "gaussian_deblur": "Gaussian blur 61x61, std 3.0, reflect padding",
    "motion_deblur": "motion blur 61x61, intensity 0.5, one random kernel per image, reflect padding",
    "denoise": "denoising (identity operator)",
}


def preset_generator(seed: int, index: int) -> torch.Generator:
    """The generator that draws the mask/kernel of image `index` under `seed`."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def make_preset(name: str, image_size=(256, 256), *, index: int | Sequence[int] = 0, seed: int = 0,
                sigma: float | None = None, device=None, dtype=None,
                channels: int | None = None) -> LinearOperator:
    """The operator of preset `name` for images of `image_size` (int or (H, W))."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; accepted: {', '.join(PRESETS)}")
    h, w = _size(image_size)
    seed = _positive_int(seed, "seed", minimum=0)
    indices = [index] if not isinstance(index, Sequence) else list(index)
    if not indices:
        raise UserError("index must be an image index or a non-empty list of them")
    indices = [_positive_int(i, "image index", minimum=0) for i in indices]
    noise = GaussianNoise(DEFAULT_SIGMA if sigma is None else sigma)

    def per_image(draw):  # one (H, W) mask or kernel per index -> (B, 1, ., .)
        return torch.stack([draw(preset_generator(seed, i)) for i in indices])[:, None]

    if name == "sr4":
        op = SuperResolution(4, "bicubic", noise, channels=channels)
    elif name == "box_inpaint":
        op = Inpainting(per_image(lambda g: box_mask((h, w), (max(1, h // 2), max(1, w // 2)),
                                                     margin=min(h, w) // 16, generator=g)),
                        noise, channels=channels)
    elif name == "random_inpaint":
        op = Inpainting(per_image(lambda g: random_mask((h, w), 0.7, generator=g)), noise, channels=channels)
    elif name == "gaussian_deblur":
        op = Blur(gaussian_kernel(61, 3.0), "reflect", noise, channels=channels)
    elif name == "motion_deblur":
        op = Blur(per_image(lambda g: motion_kernel(61, 0.5, generator=g)), "reflect", noise, channels=channels)
    else:
        op = Identity(noise, channels=channels)
    op.preset = {"preset": name, "seed": seed, "index": indices if isinstance(index, Sequence) else indices[0],
                 "image_size": [h, w]}
    return op.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else op
