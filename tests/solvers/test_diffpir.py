"""DiffPIR: the proximal step is the exact minimiser (closed form = CG), seeds, batch invariance,
SR, counts, parameters, and a sanity band on the correlated Gaussian (DiffPIR is a plug-and-play
MAP-type iteration, not a posterior sampler)."""

import pytest
import torch

from inversa.errors import UserError
from inversa.operators import Blur, GaussianNoise, Inpainting, gaussian_kernel
from inversa.solvers import make_solver
from inversa.solvers.base import Problem, StepState
from inversa.solvers.diffpir import DiffPIR

from baselines_oracle import SHAPE, block_mask, blur, correlated_prior, inpainting, run_moments, ys_for
from oracle import MatrixOperator, check_seeds_and_batch_invariance, check_super_resolution, half_mask


@pytest.mark.parametrize("t", [900, 300, 20])
def test_proximal_step_is_the_minimiser(gauss16, t):
    """x̂0 = argmin ||y - A x||² + ρ_t ||x - x0||²: its gradient vanishes, by closed form and by CG."""
    closed = Blur(gaussian_kernel(3, 1.0), "circular", noise=GaussianNoise(0.025)).double()
    for op in (closed, MatrixOperator(closed, SHAPE)):
        g = torch.Generator().manual_seed(0)
        x0 = torch.randn(2, *SHAPE, generator=g, dtype=torch.float64)
        y = op.A(torch.randn(2, *SHAPE, generator=g, dtype=torch.float64))
        solver = DiffPIR(gauss16, cg_tol=1e-12, cg_iters=200)
        prob = Problem(y=y, operator=op, sigma=0.05, generators=None)
        s = StepState(0, 2, t, t - 10, x0, None, prob, solver.prepare(prob, [t]))
        x = solver.proximal(x0, s)
        rho = solver.rho(t, 0.05)
        grad = op.A_adjoint(op.A(x) - y) + rho * (x - x0)
        assert float(grad.norm()) < 1e-9 * float(op.A_adjoint(y).norm() + rho * x0.norm())
    assert rho == pytest.approx(7.0 * 0.025**2 * gauss16.abar(t) / (1 - gauss16.abar(t)))


@pytest.mark.parametrize("kind", ["inpainting", "reflect_blur"])
def test_seeds_and_batch_invariance(gauss16, kind):
    op = (Inpainting(half_mask(), noise=GaussianNoise(0.025)) if kind == "inpainting"
          else Blur(gaussian_kernel(3, 1.0), "reflect", noise=GaussianNoise(0.025))).double()
    check_seeds_and_batch_invariance(make_solver("diffpir", gauss16), op, ys_for(gauss16, op))


def test_super_resolution_and_counts():
    out = check_super_resolution(lambda prior: make_solver("diffpir", prior))
    assert out.nfe == 6 and out.vjp == 0 and out.metadata["lam"] == 7.0 and out.metadata["zeta"] == 0.3


def test_generic_front_end_sampler_is_recorded_as_ignored(gauss16):
    """The web UI sends its sampler field ("ddpm") to every solver whose signature lists one."""
    op = Inpainting(half_mask(), noise=GaussianNoise(0.025)).double()
    for name in ("diffpir", "ddrm", "ddnm"):
        out = make_solver(name, gauss16, sampler="ddpm")(ys_for(gauss16, op, 1), op, num_steps=3, progress=False)
        assert out.metadata["sampler_ignored"] == "ddpm"


def test_parameters_are_validated(gauss16):
    for bad in ({"lam": 0}, {"zeta": 1.5}, {"sigma_floor": -1}, {"cg_iters": 0}, {"sampler": "euler"}, {"eta": 0.5}):
        with pytest.raises(UserError):
            DiffPIR(gauss16, **bad)


# Sanity band: DiffPIR replaces the posterior step by a proximal (MAP-type) step with the heuristic
# ρ_t = λ σ_n² / σ̄_t² and re-noises with ζ; it is not a posterior sampler. Measured (2048 samples,
# defaults λ = 7, ζ = 0.3, 100 steps): block inpainting mean error 0.083, variance ratio observed
# 0.73-0.97, unobserved 1.50-1.63; 3x3 blur mean error 0.048, ratio 0.72-0.99.
# Band: mean error < 0.15, ratios in [0.4, 2.5].
@pytest.mark.parametrize("kind", ["inpainting", "blur"])
def test_correlated_gaussian_sanity_band(kind):
    prior = correlated_prior()
    op = inpainting() if kind == "inpainting" else blur()
    obs = block_mask().bool().reshape(-1) if kind == "inpainting" else None
    err, ro, ru, out = run_moments(DiffPIR(prior, clip_x0=False), prior, op, 100, observed=obs)
    assert out.nfe == 100 and out.vjp == 0
    assert err < 0.15
    assert 0.4 <= min(ro.min(), ru.min()) and max(ro.max(), ru.max()) <= 2.5


def test_quad_schedule_is_the_official_one(gauss16):
    """main_ddpir_*.py with skip_type='quad', iter_num=10: seq = int(sqrt(linspace(0, T², 10))), last
    one minus 1, noise level of training step T - 1 - seq[i]."""
    import numpy as np

    from inversa.solvers import Solver

    T = gauss16.num_train_timesteps
    seq = [int(v) for v in np.sqrt(np.linspace(0, T**2, 10))]
    seq[-1] -= 1
    assert make_solver("diffpir", gauss16).timesteps(10) == [T - 1 - v for v in seq]
    assert make_solver("diffpir", gauss16, schedule="uniform").timesteps(10) == Solver(gauss16).timesteps(10)
    assert make_solver("diffpir", gauss16, start=0.3).timesteps(10) == [t for t in [T - 1 - v for v in seq] if t < 0.3 * T]
    ts = make_solver("diffpir", gauss16).timesteps(1000)  # repeats dropped, still strictly decreasing to 0
    assert ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:]))
    with pytest.raises(UserError, match="schedule 'cosine' is unknown; accepted: quad, uniform"):
        make_solver("diffpir", gauss16, schedule="cosine")
