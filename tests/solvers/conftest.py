import pytest
import torch

from inversa.pretrained.analytic import gaussian_prior


def _prior(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    mean = (torch.rand(1, h, w, generator=g, dtype=torch.float64) - 0.5) * 0.6
    return gaussian_prior(mean, 0.3)


@pytest.fixture(scope="module")
def gauss16():
    """A 1x4x4 Gaussian prior N(m, 0.3^2) on the model scale (dimension 16), float64."""
    return _prior(4, 4)


@pytest.fixture(scope="module")
def gauss256():
    """A 1x16x16 Gaussian prior (dimension 256): residual norms of a realistic order for DPS."""
    return _prior(16, 16)
