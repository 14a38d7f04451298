"""Degradation operators y = A(x) + noise with exact adjoints, noise models and benchmark presets."""

from inversa.operators.base import LinearOperator, check_image, check_shape
from inversa.operators.blur import Blur, check_kernel, gaussian_kernel, load_kernel, motion_kernel
from inversa.operators.identity import Identity
from inversa.operators.inpainting import (Inpainting, as_mask_batch, box_mask, extreme_mask, fill_missing,
                                          half_mask, load_mask, random_mask)
from inversa.operators.noise import GaussianNoise, NoiseModel, PoissonNoise, as_generators
from inversa.operators.presets import DEFAULT_SIGMA, PRESETS, make_preset, preset_generator
from inversa.operators.resize import SuperResolution, resize_matrix

__all__ = [
    "LinearOperator", "check_image", "check_shape",
    "Blur", "check_kernel", "gaussian_kernel", "load_kernel", "motion_kernel",
    "Identity",
    "Inpainting", "as_mask_batch", "box_mask", "extreme_mask", "fill_missing", "half_mask", "load_mask",
    "random_mask",
    "GaussianNoise", "NoiseModel", "PoissonNoise", "as_generators",
    "DEFAULT_SIGMA", "PRESETS", "make_preset", "preset_generator",
    "SuperResolution", "resize_matrix",
]
