"""DDNM / DDNM+: identical to DDRM with η_b = 1 through the SVD (a known equivalence, checked to
rounding), the simplified A^† path for operators without an SVD, seeds, batch invariance, SR,
counts, parameters, and the correlated-Gaussian oracle (a sanity band)."""

import pytest
import torch

from inversa.errors import UserError
from inversa.operators import Blur, GaussianNoise, Inpainting, gaussian_kernel
from inversa.solvers import make_solver
from inversa.solvers.ddnm import DDNM
from inversa.solvers.ddrm import DDRM

from baselines_oracle import block_mask, blur, correlated_prior, inpainting, run_moments, ys_for
from oracle import check_seeds_and_batch_invariance, check_super_resolution, gens, half_mask


@pytest.mark.parametrize("sigma", [0.025, 0.1])
@pytest.mark.parametrize("kind", ["inpainting", "blur"])
def test_svd_ddnm_plus_equals_ddrm_with_eta_b_1(sigma, kind):
    """Noisy y: per spectral coordinate DDNM+'s (λ, noise) rules are DDRM's three cases with
    η_b = 1: same draws, same samples (to rounding). (Noiseless, they differ: DDNM keeps the
    η z + sqrt(1-η²) ē mix on observed coordinates and projects at the last step, DDRM puts fresh
    noise there and returns x0hat at the last step.)"""
    prior = correlated_prior()
    op = inpainting(sigma) if kind == "inpainting" else blur(sigma)
    ys = ys_for(prior, op, 3)
    for s_noise in (1.0, 0.7):  # the paper's noise, and both with the same factor on their fresh draws
        a = DDNM(prior, eta=0.85, s_noise=s_noise)(ys, op, generator=gens([0, 1, 2]), num_steps=30, progress=False)
        b = DDRM(prior, eta=0.85, eta_b=1.0, s_noise=s_noise)(ys, op, generator=gens([0, 1, 2]), num_steps=30,
                                                             progress=False)
        torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-10)
        assert a.metadata["variant"] == "svd"


class _Hidden(Inpainting):
    """Inpainting with its SVD hidden: DDNM takes the simplified A^† path."""

    has_svd = False


@pytest.mark.parametrize("sigma", [0.0])
def test_simplified_path_equals_svd_path_when_singular_values_are_one(gauss16, sigma):
    """Noiseless inpainting (singular values 1 or 0): the A^† path is the SVD path. (Noisy, the
    paper's scalar DDNM+ applies the noise rule of s = 1 to the null space too, so they differ.)"""
    full = Inpainting(half_mask(), noise=GaussianNoise(sigma)).double()
    hidden = _Hidden(half_mask(), noise=GaussianNoise(sigma)).double()
    ys = ys_for(gauss16, full, 2)
    a = DDNM(gauss16)(ys, full, generator=gens([0, 1]), num_steps=20, progress=False)
    b = DDNM(gauss16)(ys, hidden, generator=gens([0, 1]), num_steps=20, progress=False)
    assert b.metadata["variant"] == "pinv"
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-12)


def test_reflect_blur_runs_through_cg_pinv(gauss16):
    op = Blur(gaussian_kernel(3, 1.0), "reflect", noise=GaussianNoise(0.025)).double()
    out = make_solver("ddnm", gauss16)(ys_for(gauss16, op, 2), op, generator=gens([0, 1]), num_steps=10, progress=False)
    assert out.metadata["variant"] == "pinv" and torch.isfinite(out.x).all() and out.nfe == 10 and out.vjp == 0


@pytest.mark.parametrize("kind", ["inpainting", "circular_blur", "reflect_blur"])
def test_seeds_and_batch_invariance(gauss16, kind):
    op = {"inpainting": lambda: Inpainting(half_mask(), noise=GaussianNoise(0.025)),
          "circular_blur": lambda: Blur(gaussian_kernel(3, 1.0), "circular", noise=GaussianNoise(0.025)),
          "reflect_blur": lambda: Blur(gaussian_kernel(3, 1.0), "reflect", noise=GaussianNoise(0.025))}[kind]().double()
    check_seeds_and_batch_invariance(make_solver("ddnm", gauss16), op, ys_for(gauss16, op))


def test_super_resolution_and_counts():
    out = check_super_resolution(lambda prior: make_solver("ddnm", prior))
    assert out.nfe == 6 and out.vjp == 0 and out.metadata["eta"] == 0.85


def test_noiseless_inpainting_projects_onto_y(gauss16):
    """DDNM (σ_y = 0): the last step is the projection, observed pixels equal y to rounding."""
    op = Inpainting(half_mask()).double()
    y = ys_for(gauss16, op, 2)
    out = make_solver("ddnm", gauss16)(y, op, generator=gens([0, 1]), num_steps=10, progress=False)
    m = half_mask().bool().expand(2, 1, 4, 4)
    assert (out.x[m] - y[m]).abs().max() < 1e-12


def test_parameters_are_validated(gauss16):
    for bad in ({"eta": 1.5}, {"s_min": -1}, {"cg_iters": 0}, {"sampler": "euler"}, {"s_noise": -1}):
        with pytest.raises(UserError):
            DDNM(gauss16, **bad)


# Sanity band, as DDRM's (DDNM+ through the SVD is DDRM with η_b = 1). Measured, 2048 samples,
# published defaults (100 steps, η = 0.85): block inpainting mean error 0.058, variance ratio
# observed 0.62-0.77, unobserved 0.99-1.01; 3x3 blur mean error 0.057, variance ratio 0.33-0.38
# (more steps: more re-noising from x0hat, less spread). Band: mean error < 0.15, ratios in [0.2, 2].
@pytest.mark.parametrize("kind", ["inpainting", "blur"])
def test_correlated_gaussian_sanity_band(kind):
    prior = correlated_prior()
    op = inpainting() if kind == "inpainting" else blur()
    obs = block_mask().bool().reshape(-1) if kind == "inpainting" else None
    err, ro, ru, out = run_moments(DDNM(prior), prior, op, 100, observed=obs)
    assert out.nfe == 100 and out.vjp == 0
    assert err < 0.15
    assert 0.2 <= min(ro.min(), ru.min()) and max(ro.max(), ru.max()) <= 2
