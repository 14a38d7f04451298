"""CA-DPS against the analytic Gaussian prior: its covariance, its posterior (paper variant), the
reference variant's rule, costs, seeds, batch invariance and SR."""

import pytest
import torch

from inversa.operators import Blur, GaussianNoise, Inpainting, gaussian_kernel
from inversa.pretrained.analytic import exact_x0_cov_diag
from inversa.solvers import CADPS, make_solver
from inversa.solvers.base import Problem, StepState

from oracle import (MatrixOperator, check_seeds_and_batch_invariance, check_super_resolution, half_mask,
                     moments_error, posterior_samples, problem)


def _inpaint():
    return Inpainting(half_mask(), noise=GaussianNoise(0.025)).double()


def _blur():
    return Blur(gaussian_kernel(3, 1.0), noise=GaussianNoise(0.025)).double()


@pytest.mark.parametrize("t", [100, 500, 900])
def test_covariance_matches_exact_tweedie(gauss16, t):
    s = CADPS(gauss16, clip_x0=False)
    a = gauss16.abar(t)
    x_t = a**0.5 * gauss16.model.mean + (1 - a) ** 0.5 * torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    S = s.x0_covariance(x_t, t, gauss16.predict(x_t, t, clip=False).eps)
    exact = exact_x0_cov_diag(gauss16.model, a)
    assert ((S / exact - 1).abs().max()) < 0.05


@pytest.mark.parametrize("mean_shift", ["vjp", "covariance"])
@pytest.mark.parametrize("kind", ["inpainting", "blur"])
def test_paper_variant_samples_the_exact_posterior(gauss16, kind, mean_shift):
    """Mean error < 0.05 and variance ratio in [0.8, 1.25] on every coordinate (observed and not),
    4096 samples, 20 steps. Blur runs as its dense matrix (same map, one matmul per batch)."""
    op = _inpaint() if kind == "inpainting" else MatrixOperator(_blur(), (1, 4, 4))
    y, mean, cov = problem(gauss16, op)
    solver = CADPS(gauss16, clip_x0=False, covariance="diagonal", mean_shift=mean_shift, cg_tol=1e-6, cg_iters=20)
    x, out = posterior_samples(solver, y, op, 4096, 20)
    err, ratio = moments_error(x, mean, cov)
    print(f"CA-DPS paper ({mean_shift}), {kind}: mean error {err:.4f}, variance ratio [{ratio.min():.3f}, {ratio.max():.3f}]")
    assert err < 0.05
    assert 0.8 <= ratio.min() and ratio.max() <= 1.25
    assert out.nfe == 40 and out.vjp == (20 if mean_shift == "vjp" else 0)  # + 1 probe forward per step
    assert out.metadata["variant"] == "paper" and out.metadata["solve"] == ("closed-form" if kind == "inpainting" else "cg")
    if kind == "blur":
        assert out.metadata["cg_unconverged"] == 0


def test_plain_ddpm_step_variance_loses_posterior_variance(gauss16):
    """Why step_variance="posterior" exists: with the DDPM variance alone, observed pixels lose most
    of their posterior variance in 20 steps (the mean is still right)."""
    op = _inpaint()
    y, mean, cov = problem(gauss16, op)
    x, _ = posterior_samples(CADPS(gauss16, clip_x0=False, covariance="diagonal", step_variance="prior"), y, op, 1024, 20)
    err, ratio = moments_error(x, mean, cov)
    obs = half_mask().bool().reshape(-1)
    assert err < 0.05 and ratio[obs].max() < 0.5


def test_reference_variant_is_the_released_rule(gauss16):
    """x_{t-1} = x'_{t-1} - zeta (1 + eps(x_t,t) - eps(x_t,t_prev)) * grad ||y - A x0hat||; 2 forwards + 1 VJP."""
    op = _blur()
    y, _, _ = problem(gauss16, op)
    s = CADPS(gauss16, variant="reference", clip_x0=False)
    prob = Problem(y=2 * y - op.A(torch.ones_like(y)), operator=op, sigma=0.05, generators=None)
    ctx = s.prepare(prob, s.timesteps(50))
    x_t = torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    t, tp = 500, 480
    st = StepState(0, 50, t, tp, x_t, gauss16.predict(x_t, t, clip=False), prob, ctx)
    g = s.guidance(st)
    x2 = x_t.detach().requires_grad_(True)
    p2 = gauss16.predict(x2, t, clip=False)
    (grad,) = torch.autograd.grad((prob.y - op.A(p2.x0hat)).norm(), x2)
    w = 1 + (p2.eps - gauss16.predict(x2, tp, clip=False).eps).detach()
    assert torch.allclose(g, -0.3 * 20 * w * grad)  # DPS scale 0.3, rescaled by the stride 1000/50
    out = s(y, op, generator=torch.Generator().manual_seed(0), num_steps=10, progress=False)
    assert out.nfe == 19 and out.vjp == 10  # no time-difference forward at the last step
    assert out.metadata["variant"] == "reference"


@pytest.mark.parametrize("params", [{}, {"variant": "reference"}, {"covariance": "diagonal", "fd_probes": 2, "mean_shift": "vjp"},
                                    {"mean_shift": "vjp", "cov_product": "jvp"}])
def test_seeds_and_batch_invariance(gauss16, params):
    op = _blur()
    ys = torch.cat([problem(gauss16, op, seed=s)[0] for s in range(4)])
    check_seeds_and_batch_invariance(make_solver("ca-dps", gauss16, **params), op, ys)


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_super_resolution(variant):
    out = check_super_resolution(lambda prior: make_solver("ca-dps", prior, variant=variant))
    assert out.metadata["variant"] == variant


def test_parameters_are_validated(gauss16):
    from inversa.errors import UserError

    for bad in ({"variant": "x"}, {"delta": 0}, {"fd_probes": 0}, {"step_variance": "x"}, {"cg_iters": 1.5},
                {"mean_shift": "x"}, {"cov_max": 0}, {"covariance": "x"}, {"cov_product": "x"}, {"sqrt_iters": 0},
                {"full_below": 0}, {"data_var": -1}, {"tilt": 0}, {"tilt": 1.5}, {"tilt": "x"},
                {"mean_shift": "tilt", "covariance": "diagonal"}, {"secant": "x"}):
        with pytest.raises(UserError):
            CADPS(gauss16, **bad)
