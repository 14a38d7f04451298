"""MCG: the projection's defining property (the last step returns an x with A x = y exactly: y on the
observed pixels for inpainting, A^† y for an invertible operator), a sanity band on the correlated
Gaussian's missing pixels, seeds, batch invariance, SR, counts, and CMI on MCG."""

import torch

from inversa.solvers import make_solver

from baselines_oracle import SHAPE, block_mask, blur, correlated_prior, inpainting, problem_full, split_moments, ys_for
from oracle import check_seeds_and_batch_invariance, check_super_resolution, gens, posterior_samples


def _model_y(op, y):
    return 2 * y - op.A(torch.ones((1, *SHAPE), dtype=y.dtype))


# Correlated Gaussian (σ = 0.3, length 1.5), block inpainting, σ_y = 0.025, 100 steps, 2048 samples.
# Measured: unobserved mean error 0.146 (DPS: 0.048), variance ratio 0.43-0.48; the observed pixels
# are y itself in every sample (variance 0: the projection ignores y's noise, the method's known
# limit). Band: the observed pixels equal y to rounding; unobserved error < 0.3, ratios in [0.15, 2].
def test_inpainting_projects_onto_y_and_fills_the_hole_within_a_band():
    prior, op = correlated_prior(), inpainting()
    y, mean, cov = problem_full(prior, op)
    x, out = posterior_samples(make_solver("mcg", prior, clip_x0=False), y, op, 2048, 100)
    assert out.nfe == 100 and out.vjp == 100
    obs = block_mask().bool().reshape(-1)
    ym = _model_y(op, y).reshape(-1)
    assert torch.allclose(x.reshape(len(x), -1)[:, obs], ym[obs].expand(len(x), -1), atol=1e-12)
    err_u = (x.mean(0) - mean).abs().reshape(-1)[~obs].max().item()
    _, _, ru = split_moments(x, mean, cov, obs)
    assert err_u < 0.3 and 0.15 <= ru.min() and ru.max() <= 2


def test_an_invertible_operator_gives_its_inverse():
    """3x3 circular blur on 4x4 is invertible: the last projection returns A^{-1} y whatever came before."""
    prior, op = correlated_prior(), blur()
    y, _, _ = problem_full(prior, op)
    x, _ = posterior_samples(make_solver("mcg", prior, clip_x0=False), y, op, 8, 10)
    assert torch.allclose(x, op.A_dagger(_model_y(op, y)).expand_as(x), atol=1e-9)


def test_seeds_batch_invariance_and_super_resolution(gauss16):
    # bit-exact needs a prior without batched matmuls (the correlated one rounds differently per batch size)
    op = inpainting()
    check_seeds_and_batch_invariance(make_solver("mcg", gauss16), op, ys_for(gauss16, op))
    out = check_super_resolution(lambda p: make_solver("mcg", p))
    assert out.nfe == 6 and out.vjp == 6


def test_cmi_composes_onto_mcg():
    prior, op = correlated_prior(), inpainting()
    y, _, _ = problem_full(prior, op)
    out = make_solver("cmi-dps", prior, base="mcg")(y, op, generator=gens([0]), num_steps=4, progress=False)
    assert out.metadata["solver"] == "cmi-dps" and out.metadata["base"] == "mcg"
    assert (out.nfe, out.vjp) == (8, 12) and torch.isfinite(out.x).all()
