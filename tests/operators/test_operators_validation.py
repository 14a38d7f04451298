"""Every bad input raises a one-line UserError naming what was wrong."""

import math

import pytest
import torch

from inversa.errors import UserError
from inversa.operators import (Blur, GaussianNoise, Identity, Inpainting, SuperResolution, box_mask, gaussian_kernel,
                               motion_kernel, random_mask)

OPS = {
    "identity": lambda: Identity(GaussianNoise(0.01), channels=3),
    "inpainting": lambda: Inpainting(torch.ones(8, 8), channels=3),
    "blur": lambda: Blur(gaussian_kernel(3, 1.0), channels=3),
    "sr": lambda: SuperResolution(2, channels=3),
}
BAD_INPUTS = {
    "not a tensor": [[0.5]],
    "3-D": torch.rand(3, 8, 8),
    "wrong channels": torch.rand(1, 1, 8, 8),
    "integer": torch.ones(1, 3, 8, 8, dtype=torch.int64),
    "nan": torch.full((1, 3, 8, 8), math.nan),
    "inf": torch.full((1, 3, 8, 8), math.inf),
    "far outside [0, 1]": torch.full((1, 3, 8, 8), 3.0),
}


@pytest.mark.parametrize("op_name", OPS)
@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_measure_rejects_bad_images(op_name, bad):
    with pytest.raises(UserError) as err:
        OPS[op_name]().measure(BAD_INPUTS[bad])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("op_name", OPS)
def test_A_rejects_bad_shapes(op_name):
    for bad in ("3-D", "wrong channels", "integer"):
        with pytest.raises(UserError):
            OPS[op_name]().A(BAD_INPUTS[bad])


@pytest.mark.parametrize("make", [
    lambda: gaussian_kernel(4, 1.0),              # even kernel size
    lambda: gaussian_kernel(-3, 1.0),             # negative size
    lambda: gaussian_kernel(5, -1.0),             # negative std
    lambda: motion_kernel(60),                    # even
    lambda: motion_kernel(61, 1.5),               # intensity outside [0, 1]
    lambda: Blur(torch.ones(4, 4)),               # even kernel
    lambda: Blur(torch.ones(3, 3), "zeros"),      # unknown padding
    lambda: Blur(-torch.ones(3, 3)),              # negative kernel
    lambda: Blur(torch.full((3, 3), math.nan)),   # NaN kernel
    lambda: Blur(torch.ones(3, 3, 3)),            # wrong kernel shape
    lambda: Blur(torch.ones(3, 3), noise=0.1),    # a number is not a noise model
    lambda: SuperResolution(0),
    lambda: SuperResolution(2.5),
    lambda: SuperResolution(2, "nearest"),
    lambda: box_mask(16, -4),                     # negative size
    lambda: box_mask(16, 4, margin=-1),
    lambda: random_mask(16, 1.5),
    lambda: Identity(channels=0),
], ids=["even-gauss", "neg-size", "neg-std", "even-motion", "intensity", "even-kernel", "padding", "neg-kernel",
        "nan-kernel", "kernel-shape", "noise-number", "sr-0", "sr-float", "sr-kind", "neg-box", "neg-margin",
        "fraction", "channels"])
def test_constructors_reject(make):
    with pytest.raises(UserError):
        make()


def test_operator_specific_shape_errors():
    with pytest.raises(UserError, match="multiple of the super-resolution factor 4"):
        SuperResolution(4).A(torch.rand(1, 3, 17, 16))
    with pytest.raises(UserError, match="per-image kernels"):
        Blur(torch.ones(2, 1, 3, 3)).A(torch.rand(3, 3, 8, 8))
    with pytest.raises(UserError, match="smaller than"):
        Blur(gaussian_kernel(9, 2.0), "valid").A(torch.rand(1, 3, 8, 8))
    with pytest.raises(UserError, match="generators"):
        Identity(GaussianNoise(0.1)).measure(torch.rand(2, 3, 4, 4), [torch.Generator()])
