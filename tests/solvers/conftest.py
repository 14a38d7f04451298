import pytest
import torch

from inversa.pretrained.analytic import gaussian_prior


@pytest.fixture(scope="module")
def gauss16():
    """A 1x4x4 Gaussian prior N(m, 0.3^2) on the model scale (dimension 16), float64."""
    g = torch.Generator().manual_seed(0)
    mean = (torch.rand(1, 4, 4, generator=g, dtype=torch.float64) - 0.5) * 0.6
    return gaussian_prior(mean, 0.3)


def gens(seeds):
    return [torch.Generator().manual_seed(int(s)) for s in seeds]
