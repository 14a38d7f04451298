"""One factory for every operator and preset (the generic tests are parametrised over all of them,
float32/float64, odd and even image sizes where the operator allows them, batch 1 and 3), and
helpers shared by the operator tests. A uniquely named module, so test folders never clash."""

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from inversa.operators import (PRESETS, Blur, GaussianNoise, Identity, Inpainting, SuperResolution, as_mask_batch,
                               box_mask, extreme_mask, gaussian_kernel, half_mask, load_mask, make_preset,
                               motion_kernel, random_mask)

EVEN, ODD = (3, 16, 8), (3, 17, 13)
NOISE = 0.05  # [0, 1] units, so measurements visibly differ from A(x)


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _disk(h, w):  # a free-form mask as an image array: white (1.0) = missing
    i, j = np.mgrid[:h, :w]
    return ((i - h / 3) ** 2 + (j - w / 2) ** 2 < (min(h, w) / 3) ** 2).astype(np.float64)


# name -> (builder(h, w, batch) -> operator, image sizes (C, H, W) it is tested on)
SPECS = {
    "identity": (lambda h, w, b: Identity(GaussianNoise(NOISE)), (EVEN, ODD)),
    "inpaint_box": (lambda h, w, b: Inpainting(box_mask((h, w), (h // 2, w // 2), margin=1, generator=_g(1)),
                                               GaussianNoise(NOISE)), (EVEN, ODD)),
    "inpaint_random": (lambda h, w, b: Inpainting(random_mask((h, w), 0.5, generator=_g(2)), GaussianNoise(NOISE)),
                       (EVEN, ODD)),
    "inpaint_extreme": (lambda h, w, b: Inpainting(extreme_mask((h, w)), GaussianNoise(NOISE)), (EVEN, ODD)),
    "inpaint_half": (lambda h, w, b: Inpainting(half_mask((h, w), "left"), GaussianNoise(NOISE)), (EVEN, ODD)),
    "inpaint_freeform": (lambda h, w, b: Inpainting(load_mask(_disk(h, w)), GaussianNoise(NOISE)), (EVEN, ODD)),
    "inpaint_per_image": (lambda h, w, b: Inpainting(as_mask_batch([random_mask((h, w), 0.3, generator=_g(10 + i))
                                                                    for i in range(b)]), GaussianNoise(NOISE)),
                          (EVEN, ODD)),
    "blur_gauss_reflect": (lambda h, w, b: Blur(gaussian_kernel(5, 1.0), "reflect", GaussianNoise(NOISE)), (EVEN, ODD)),
    "blur_motion_reflect": (lambda h, w, b: Blur(motion_kernel(7, 0.5, _g(3)), "reflect", GaussianNoise(NOISE)),
                            (EVEN, ODD)),
    "blur_kernel_larger_than_image": (lambda h, w, b: Blur(gaussian_kernel(21, 3.0), "reflect", GaussianNoise(NOISE)),
                                      (EVEN, ODD)),
    "blur_circular": (lambda h, w, b: Blur(motion_kernel(5, 0.5, _g(4)), "circular", GaussianNoise(NOISE)),
                      (EVEN, ODD)),
    "blur_symmetric": (lambda h, w, b: Blur(gaussian_kernel(5, 1.5), "symmetric", GaussianNoise(NOISE)), (EVEN, ODD)),
    "blur_valid": (lambda h, w, b: Blur(motion_kernel(5, 0.5, _g(5)), "valid", GaussianNoise(NOISE)), (EVEN, ODD)),
    "blur_rect_kernel": (lambda h, w, b: Blur(torch.rand(3, 5, generator=_g(6)), "reflect", GaussianNoise(NOISE)),
                         (EVEN, ODD)),
    "blur_per_image": (lambda h, w, b: Blur(torch.stack([motion_kernel(5, 0.5, _g(20 + i)) for i in range(b)])[:, None],
                                            "reflect", GaussianNoise(NOISE)), (EVEN, ODD)),
    "sr_bicubic_x2": (lambda h, w, b: SuperResolution(2, "bicubic", GaussianNoise(NOISE)), (EVEN, (3, 12, 20))),
    "sr_bicubic_x3": (lambda h, w, b: SuperResolution(3, "bicubic", GaussianNoise(NOISE)), ((3, 15, 9),)),
    "sr_avgpool_x2": (lambda h, w, b: SuperResolution(2, "avgpool", GaussianNoise(NOISE)), (EVEN,)),
    "sr_avgpool_x3": (lambda h, w, b: SuperResolution(3, "avgpool", GaussianNoise(NOISE)), ((3, 15, 9),)),
    **{f"preset_{name}": (functools.partial(lambda name, h, w, b: make_preset(name, (h, w), index=list(range(b)),
                                                                             seed=7), name),
                          (EVEN, (3, 12, 20)) if name == "sr4" else (EVEN, ODD))
       for name in PRESETS},
}

DTYPES = {"f32": torch.float32, "f64": torch.float64}
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
CASES = [(name, size, batch, dt) for name, (_, sizes) in SPECS.items() for size in sizes
         for batch in (1, 3) for dt in DTYPES]


@functools.lru_cache(maxsize=None)
def build(name, size, batch, dtype):
    """Operator `name` for images (batch, *size) in `dtype`, built once and shared: tests must not
    modify it (use `fresh` for one they can change)."""
    return fresh(name, size, batch, dtype)


def fresh(name, size, batch, dtype):
    """A newly built operator `name` for images (batch, *size) in `dtype`."""
    return SPECS[name][0](size[1], size[2], batch).to(dtype)


class Case:
    def __init__(self, name, size, batch, dtype):
        self.name, self.dtype = name, dtype
        self.op = build(name, size, batch, dtype)
        self.x_shape = (batch, *size)
        self.y_shape = self.op.output_shape(self.x_shape)

    def x(self, seed=0):  # a random image in [0, 1]
        return torch.rand(self.x_shape, generator=_g(seed), dtype=self.dtype)

    def y(self, seed=1):  # a random measurement-shaped tensor
        return torch.randn(self.y_shape, generator=_g(seed), dtype=self.dtype)



SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def shared_or_skip(*parts) -> Path:
    """A path under ../shared, or skip the test with the reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent (../shared holds evaluation data; not available on this machine)")
    return p
