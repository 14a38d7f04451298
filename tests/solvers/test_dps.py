"""DPS against the exact posterior of an analytic Gaussian prior; batch invariance; seeds; shapes."""

import pytest
import torch

from inversa.operators import Blur, GaussianNoise, Inpainting, SuperResolution, gaussian_kernel
from inversa.pretrained.analytic import gaussian_prior
from oracle import problem
from inversa.solvers import DPS, make_solver


def _half_mask(h=16, w=16):
    m = torch.zeros(h, w, dtype=torch.float64)
    m.view(-1)[::2] = 1
    return m


# The reference zeta (0.5 for inpainting) is tuned for 256x256x3 images: the plain-norm residual makes
# the step act as zeta/||r|| on the squared loss, and ||r|| here (dimension 256) is ~20x smaller than
# on a photo, so the test uses a proportionally smaller zeta.
SCALE = 0.1


def _dps_error(prior, num_steps, n=256, **kw):
    op = Inpainting(_half_mask(), noise=GaussianNoise(0.025)).double()
    y, mean, _ = problem(prior, op)
    out = DPS(prior, clip_x0=False, scale=SCALE, **kw)(y.expand(n, -1, -1, -1), op, generator=torch.Generator().manual_seed(0), num_steps=num_steps, progress=False)
    obs = _half_mask().bool().unsqueeze(0)
    return ((2 * out.x - 1).mean(0) - mean)[obs].abs().max().item(), out


def test_dps_posterior_mean_on_observed_pixels(gauss256):
    err, out = _dps_error(gauss256, 100)
    assert err < 0.05, err
    assert out.nfe == 100 and out.vjp == 100


@pytest.mark.slow
def test_dps_posterior_mean_1000_steps(gauss256):
    err, _ = _dps_error(gauss256, 1000)
    assert err < 0.05, err


def test_step_size_rescaling_is_what_makes_few_steps_work(gauss256):
    """At 100 steps the rescaled step (zeta * T/N) fits y; the unscaled 1000-step zeta does not."""
    rescaled, _ = _dps_error(gauss256, 100, rescale_for_steps=True)
    unscaled, _ = _dps_error(gauss256, 100, rescale_for_steps=False)
    assert rescaled < 0.05 < unscaled, (rescaled, unscaled)


def _blur_op():
    return Blur(gaussian_kernel(3, 1.0), noise=GaussianNoise(0.025)).double()


@pytest.mark.parametrize("solver", ["dps"])
def test_batch_invariance_and_seeds(gauss16, solver, gens):
    op = _blur_op()
    ys = torch.stack([problem(gauss16, op, seed=s)[0][0] for s in range(4)])
    s = make_solver(solver, gauss16)
    batch = s(ys, op, generator=gens([10, 11, 12, 13]), num_steps=20, progress=False).x
    alone = s(ys[2:3], op, generator=gens([12]), num_steps=20, progress=False).x
    again = s(ys, op, generator=gens([10, 11, 12, 13]), num_steps=20, progress=False).x
    assert torch.equal(batch[2:3], alone)
    assert torch.equal(batch, again)
    other = s(ys, op, generator=gens([20, 21, 22, 23]), num_steps=20, progress=False).x
    assert not torch.equal(batch, other)


def test_super_resolution_shapes(gens):
    prior = gaussian_prior(torch.zeros(3, 8, 6, dtype=torch.float64), 0.3)
    op = SuperResolution(2, noise=GaussianNoise(0.025)).double()
    y = op.measure(torch.full((2, 3, 8, 6), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    assert y.shape == (2, 3, 4, 3)
    out = DPS(prior)(y, op, generator=gens([0, 1]), num_steps=10, progress=False)
    assert out.x.shape == (2, 3, 8, 6)
    assert 0 <= out.x.min() and out.x.max() <= 1
