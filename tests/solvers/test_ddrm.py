"""DDRM: the step against an independent dense re-implementation of the official algorithm,
refusal of operators without an SVD, seeds, batch invariance, SR shapes, NFE, parameters, and the
correlated-Gaussian oracle (a sanity band: DDRM is not exact on Gaussians, see the docstring)."""

import pytest
import torch

from inversa.errors import UserError
from inversa.operators import Blur, GaussianNoise, Inpainting, gaussian_kernel
from inversa.solvers import make_solver
from inversa.solvers.base import Problem, StepState
from inversa.solvers.ddrm import DDRM

from baselines_oracle import SHAPE, block_mask, blur, correlated_prior, inpainting, run_moments, ys_for
from oracle import check_seeds_and_batch_invariance, check_super_resolution, gens, half_mask


def reference_step(M, x_t, x0, y, a, ap, sy, eta, eta_b, z):
    """The official DDRM update (bahjat-kawar/ddrm functions/denoising.py), on flat vectors with a
    dense SVD and a loop over singular values."""
    U, S, Vh = torch.linalg.svd(M, full_matrices=True)
    eps = (x_t - a**0.5 * x0) / (1 - a) ** 0.5
    sig = ((1 - ap) / ap) ** 0.5
    xb, eb, uty = Vh @ x0, Vh @ eps, U.T @ y
    out = xb + sig * ((1 - eta**2) ** 0.5 * eb + eta * z)
    for i, s in enumerate(S.tolist()):
        if s * sig > sy:
            out[i] = eta_b * uty[i] / s + (1 - eta_b) * xb[i] + (sig**2 - (eta_b * sy / s) ** 2) ** 0.5 * z[i]
        elif s * sig < sy:
            out[i] = xb[i] + sig * ((1 - eta**2) ** 0.5 * (uty[i] - s * xb[i]) / sy + eta * z[i])
    return ap**0.5 * (Vh.T @ out)


@pytest.mark.parametrize("sigma", [0.0, 0.025])
@pytest.mark.parametrize("t, t_prev", [(900, 850), (300, 250), (120, 20), (10, -1)])
def test_step_matches_dense_reference(sigma, t, t_prev):
    prior = correlated_prior()
    op = blur(sigma)
    g = torch.Generator().manual_seed(3)
    x_t = torch.randn(1, *SHAPE, generator=g, dtype=torch.float64)
    y = op.A(torch.rand(1, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1)
    solver = DDRM(prior, eta=0.85, eta_b=0.7)
    pred = solver.predict(x_t, t)
    s = StepState(0, 2, t, t_prev, x_t, pred, Problem(y=y, operator=op, sigma=2 * sigma, generators=gens([5])))
    ours = solver.step(s)
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64).reshape(-1)
    ref = reference_step(op.M, x_t.reshape(-1), pred.x0hat.reshape(-1), y.reshape(-1), prior.abar(t), prior.abar(t_prev),
                         2 * sigma, 0.85, 0.7, z)
    torch.testing.assert_close(ours.reshape(-1), ref, rtol=1e-10, atol=1e-10)


def test_refuses_operators_without_svd(gauss16):
    op = Blur(gaussian_kernel(3, 1.0), "reflect", noise=GaussianNoise(0.025)).double()
    y = op.measure(torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64))
    with pytest.raises(UserError) as err:
        make_solver("ddrm", gauss16)(y, op, num_steps=5, progress=False)
    assert "\n" not in str(err.value) and "circular" in str(err.value) and "inpainting" in str(err.value)


@pytest.mark.parametrize("kind", ["inpainting", "circular_blur"])
def test_seeds_and_batch_invariance(gauss16, kind):
    op = (Inpainting(half_mask(), noise=GaussianNoise(0.025)) if kind == "inpainting"
          else Blur(gaussian_kernel(3, 1.0), "circular", noise=GaussianNoise(0.025))).double()
    check_seeds_and_batch_invariance(make_solver("ddrm", gauss16), op, ys_for(gauss16, op))


def test_super_resolution_and_counts():
    out = check_super_resolution(lambda prior: make_solver("ddrm", prior))
    assert out.nfe == 6 and out.vjp == 0
    assert out.metadata["eta"] == 0.85 and out.metadata["eta_b"] == 1.0 and out.metadata["solver"] == "ddrm"


def test_noiseless_inpainting_keeps_observed_pixels(gauss16):
    """σ_y = 0: observed coordinates are set to y at every step but the last (which returns x0hat, as
    the official code); with 20 steps they end within rounding of y's neighbourhood."""
    op = Inpainting(half_mask()).double()
    y = ys_for(gauss16, op, 2)
    out = make_solver("ddrm", gauss16)(y, op, generator=gens([0, 1]), num_steps=20, progress=False)
    m = half_mask().bool().expand(2, 1, 4, 4)
    assert (out.x[m] - y[m]).abs().max() < 0.02


def test_parameters_are_validated(gauss16):
    for bad in ({"eta": 1.5}, {"eta": -0.1}, {"eta_b": 2}, {"s_min": -1}, {"eta": "x"}, {"sampler": "euler"},
                {"s_noise": -0.1}, {"s_noise": 3}, {"s_noise": "x"}, {"s_noise": True}):
        with pytest.raises(UserError) as err:
            DDRM(gauss16, **bad)
        assert "\n" not in str(err.value)
    assert "s_noise" in str(pytest.raises(UserError, DDRM, gauss16, s_noise=3).value)


@pytest.mark.parametrize("s_noise", [0.0, 0.5])
def test_s_noise_scales_every_fresh_draw(s_noise):
    """s_noise multiplies the step's fresh draw z in all three cases, and nothing else: the step equals
    the dense reference of the official update with z scaled by s_noise."""
    prior = correlated_prior()
    op = blur(0.025)
    g = torch.Generator().manual_seed(4)
    x_t = torch.randn(1, *SHAPE, generator=g, dtype=torch.float64)
    y = op.A(torch.rand(1, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1)
    solver = DDRM(prior, s_noise=s_noise)
    pred = solver.predict(x_t, 300)
    s = StepState(0, 2, 300, 250, x_t, pred, Problem(y=y, operator=op, sigma=0.05, generators=gens([5])))
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64).reshape(-1)
    ref = reference_step(op.M, x_t.reshape(-1), pred.x0hat.reshape(-1), y.reshape(-1), prior.abar(300),
                         prior.abar(250), 0.05, 0.85, 1.0, s_noise * z)
    torch.testing.assert_close(solver.step(s).reshape(-1), ref, rtol=1e-10, atol=1e-10)
    assert solver.params()["s_noise"] == s_noise


# Sanity band (DDRM is not an exact posterior sampler: observed coordinates are replaced by y plus
# noise while σ > σ_y/s and never see the prior's correlations there, and η = 0.85 re-noises from
# x0hat at every step). Measured, 2048 samples, published defaults (20 steps, η = 0.85, η_b = 1):
# block inpainting: mean error 0.114, variance ratio observed 2.7-4.2, unobserved 0.95-1.10;
# 3x3 blur: mean error 0.062, variance ratio 0.60-0.74. The band catches breakage, not bias:
# mean error < 0.2, variance ratios in [0.3, 6].
@pytest.mark.parametrize("kind", ["inpainting", "blur"])
def test_correlated_gaussian_sanity_band(kind):
    prior = correlated_prior()
    op = inpainting() if kind == "inpainting" else blur()
    obs = block_mask().bool().reshape(-1) if kind == "inpainting" else None
    err, ro, ru, out = run_moments(DDRM(prior), prior, op, 20, observed=obs)
    assert out.nfe == 20 and out.vjp == 0
    assert err < 0.2
    assert 0.3 <= min(ro.min(), ru.min()) and max(ro.max(), ru.max()) <= 6
