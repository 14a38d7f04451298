"""Measurement noise models, seeded per image.

Noise levels are in [0, 1] image units. The literature quotes Gaussian σ on the model's [-1, 1]
scale ("σ_y = 0.05" in DPS/DAPS), which is twice the [0, 1] value: `GaussianNoise(sigma_pm1=0.05)`
is `GaussianNoise(0.025)`. Metadata always records both scales.

Reproducibility: `generators` is None (torch's global RNG), or a list with one `torch.Generator`
per image. Image i's noise is drawn with generators[i] only, so it never depends on its batch-mates.
`as_generators` turns one shared generator into a list of that same generator repeated: the images
then draw from it one after the other (image 0 first), so image i's noise depends on its position
in the batch; pass one generator per image when that matters.
"""

from __future__ import annotations

import math

import torch

from inversa.errors import UserError


def as_generators(generator, batch: int) -> list[torch.Generator] | None:
    """None -> None; one generator -> [generator] * batch (drawn sequentially); a list -> checked."""
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        return [generator] * batch
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch:
            raise UserError(f"got {len(generator)} generators for a batch of {batch} images; "
                            "pass one torch.Generator per image, a single one, or None")
        for g in generator:
            if not isinstance(g, torch.Generator):
                raise UserError(f"generator list holds a {type(g).__name__}; expected torch.Generator")
        return list(generator)
    raise UserError(f"generator must be None, a torch.Generator or a list of them, "
                    f"got {type(generator).__name__}")


def _per_image(y: torch.Tensor, generators, draw) -> torch.Tensor:
    """Stack `draw(shape_or_tensor, generator)` image by image on each generator's own device,
    then move to y's device (so a CPU generator gives the same noise for a CUDA tensor)."""
    return torch.stack([draw(y[i], g).to(y.device) for i, g in enumerate(generators)])


class NoiseModel(torch.nn.Module):
    """`noise(y, generators=None) -> y_noisy`, same shape, dtype and device as y."""

    name = "none"
    sigma = 0.0  # Gaussian std in [0, 1] units; 0 for models without a Gaussian part

    def forward(self, y: torch.Tensor, generators=None) -> torch.Tensor:
        return y

    def metadata(self) -> dict:
        return {"noise": self.name, "sigma": float(self.sigma), "sigma_pm1": 2.0 * float(self.sigma)}


class GaussianNoise(NoiseModel):
    """y + σ n, n ~ N(0, I). Give exactly one of `sigma` ([0, 1] units) or `sigma_pm1` ([-1, 1]
    units, the literature's convention, = 2 σ). `.sigma` is always in [0, 1] units."""

    name = "gaussian"

    def __init__(self, sigma: float | None = None, *, sigma_pm1: float | None = None):
        super().__init__()
        if (sigma is None) == (sigma_pm1 is None):
            raise UserError("give exactly one of sigma ([0, 1] units) or sigma_pm1 ([-1, 1] units, = 2*sigma)")
        which, value = ("sigma", sigma) if sigma is not None else ("sigma_pm1", sigma_pm1)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{which} must be a number >= 0, got {value!r}") from None
        if not math.isfinite(value) or value < 0:
            raise UserError(f"{which} must be a finite number >= 0, got {value}")
        self.sigma = value if which == "sigma" else value / 2.0

    def forward(self, y: torch.Tensor, generators=None) -> torch.Tensor:
        if self.sigma == 0:
            return y  # no RNG draw: noiseless measurements stay deterministic
        if generators is None:
            n = torch.randn_like(y)
        else:
            n = _per_image(y, generators, lambda yi, g: torch.randn(
                yi.shape, generator=g, device=g.device, dtype=y.dtype))
        return y + self.sigma * n

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g} (sigma_pm1={2 * self.sigma:g})"


class PoissonNoise(NoiseModel):
    """Shot noise: y_noisy = Poisson(gain * y) / gain, i.e. `gain` photons for intensity 1
    (mean y, variance y / gain). Negative intensities are clipped to 0 before sampling.
    Not differentiable in y; `.sigma` is 0 (no Gaussian part)."""

    name = "poisson"

    def __init__(self, gain: float):
        super().__init__()
        try:
            gain = float(gain)
        except (TypeError, ValueError):
            raise UserError(f"Poisson gain must be a number > 0, got {gain!r}") from None
        if not math.isfinite(gain) or gain <= 0:
            raise UserError(f"Poisson gain must be a finite number > 0, got {gain}")
        self.gain = gain

    def forward(self, y: torch.Tensor, generators=None) -> torch.Tensor:
        rate = (y * self.gain).clamp(min=0)
        if generators is None:
            counts = torch.poisson(rate)
        else:
            counts = _per_image(rate, generators, lambda ri, g: torch.poisson(ri.to(g.device), generator=g))
        return counts / self.gain

    def metadata(self) -> dict:
        return {**super().metadata(), "gain": self.gain}

    def extra_repr(self) -> str:
        return f"gain={self.gain:g}"
