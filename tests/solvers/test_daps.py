"""DAPS: the ODE is the probability-flow Euler (= DDIM) map, the Langevin inner loop samples its Gaussian
target (the Gaussian likelihood ||A x0 - y||² / (2 τ²)), the official EDM levels on training timesteps, the
sampler's moments equal those of its own linear-Gaussian chain on the correlated Gaussian, and where that
chain stands against the exact posterior (not exact: r_i = σ_i; see the comments); seeds, batch
invariance, SR, counts, parameters."""

import math
from itertools import pairwise

import pytest
import torch

from inversa.errors import UserError
from inversa.eval.posterior import baselines, make_setting, score
from inversa.operators import GaussianNoise, Inpainting
from inversa.pretrained.analytic import exact_x0_cov
from inversa.solvers import make_solver
from inversa.solvers.base import Problem, StepState
from inversa.solvers.daps import DAPS, edm_levels

from baselines_oracle import SHAPE, block_mask, correlated_prior, inpainting, ys_for
from oracle import check_seeds_and_batch_invariance, check_super_resolution, gens


def _denoiser(prior, sigma):
    """(K, m): the Gaussian prior's exact VE denoiser D(x) = m + K (x - m), K = Σ (Σ + σ² I)^{-1}."""
    S, m = prior.model.cov, prior.model.mean.reshape(-1)
    return S @ torch.linalg.inv(S + sigma**2 * torch.eye(len(m), dtype=S.dtype)), m


def _state(solver, x_t, t, y, op, index=0, num_steps=1):
    prob = Problem(y=y, operator=op, sigma=2 * op.sigma, generators=None)
    ctx = solver.prepare(prob, [t], num_steps)
    return StepState(index, num_steps, t, -1, x_t, solver.predict(x_t, t), prob, ctx)


def test_one_ode_step_is_euler_and_many_follow_the_flow():
    """ode_steps=1: x0hat = D(x) + (σ_0/σ_t)(x - D(x)) exactly (VE Euler from σ_t to σ_0 = 0.01). Many steps
    approach the exact flow of the Gaussian, m + (Σ + σ_0²)^{1/2} (Σ + σ_t²)^{-1/2} (x - m)."""
    prior, op = correlated_prior(), inpainting()
    t = 600
    g = torch.Generator().manual_seed(0)
    sig, sig0 = DAPS(prior).sigma(t), DAPS(prior).sigma(0)
    x_ve = prior.model.mean + sig * torch.randn(8, *SHAPE, generator=g, dtype=torch.float64)
    x_t = prior.abar(t) ** 0.5 * x_ve
    y = op.A(torch.zeros(1, *SHAPE, dtype=torch.float64)).expand(8, -1, -1, -1)
    K, m = _denoiser(prior, sig)
    d = (x_ve.flatten(1) - m) @ K.T + m
    euler = d + sig0 / sig * (x_ve.flatten(1) - d)
    one = DAPS(prior, ode_steps=1, clip_x0=False)
    nfe = prior.nfe
    assert torch.allclose(one.ode(_state(one, x_t, t, y, op)).flatten(1), euler, atol=1e-12)
    assert prior.nfe - nfe == 1  # the loop's prediction is the ODE's first call
    S = prior.model.cov
    ev, U = torch.linalg.eigh(S)
    flow = U @ torch.diag(((ev + sig0**2) / (ev + sig**2)).sqrt()) @ U.T
    exact = (x_ve.flatten(1) - m) @ flow.T + m
    many = DAPS(prior, ode_steps=100, clip_x0=False)
    got = many.ode(_state(many, x_t, t, y, op)).flatten(1)
    assert (got - exact).abs().max() < 0.02 * (exact - m).abs().max()  # Euler error, O(1/steps)
    assert (got - exact).abs().max() < 0.1 * (euler - exact).abs().max()


def test_langevin_samples_its_gaussian_target():
    """From x0hat, unadjusted Langevin on N(x0; x0hat, r² I) N(y; A x0, τ² I) (inpainting: per pixel precision
    P = 1/r² + m/τ², m the mask) converges to mean (x0hat/r² + m y/τ²)/P and, with step h, variance
    1/(P (1 - h P / 2)) (the unadjusted chain's). A likelihood of ||A x0 - y||²/τ² (the official main
    branch's) would give observed variances half as large and means closer to y."""
    prior = correlated_prior()
    op = Inpainting(block_mask(), noise=GaussianNoise(0.025)).double()
    t, n = 90, 4000  # r = σ_90 ≈ 0.3: 1000 steps of 1e-3 relax the hidden pixels (precision 1/r²) 11 times over
    solver = DAPS(prior, tau=0.05, lr=1e-3, langevin_steps=1000)
    r2 = solver.sigma(t) ** 2
    g = torch.Generator().manual_seed(1)
    x0hat = (0.3 * torch.randn(1, *SHAPE, generator=g, dtype=torch.float64)).expand(n, -1, -1, -1)
    y = op.A(0.3 * torch.randn(1, *SHAPE, generator=g, dtype=torch.float64)).expand(n, -1, -1, -1)
    s = _state(solver, x0hat, t, y, op)
    torch.manual_seed(2)
    x = solver.langevin(x0hat, s)
    mask, h = block_mask().reshape(1, *SHAPE), s.ctx.lr
    P = 1 / r2 + mask / 0.05**2
    mean = (x0hat[0] / r2 + op.A_adjoint(y[:1])[0] / 0.05**2) / P
    var = 1 / (P * (1 - h * P / 2))
    assert (x.mean(0) - mean).abs().max() < 4 * (var / n).sqrt().max()
    ratio = x.var(0) / var
    assert 0.9 < ratio.min() and ratio.max() < 1.1, ratio


def test_levels_are_the_official_edm_schedule_on_training_timesteps():
    solver = DAPS(correlated_prior())
    lv = edm_levels(100, 0.1, 7, 201)
    assert lv[0] == pytest.approx(100) and lv[-1] == pytest.approx(0.1)
    ts = solver.timesteps(200)
    assert len(ts) == 200 and ts == sorted(ts, reverse=True)  # 200 distinct levels (DAPS-1K)
    for t, target in zip(ts, lv[:-1]):  # each the nearest training level in log σ
        gap = abs(math.log(solver.sigma(t) / target))
        assert gap <= min(abs(math.log(solver.sigma(u) / target)) for u in (t - 1, t + 1))
    assert solver.sigma(ts[-1]) > 0.1  # σ_min itself is not a level (the official N + 1 points, last one 0)
    for t in ts:  # 6 ODE points each: 5 network calls per level, down to t = 0 (σ = 0.01)
        pts = solver.ode_timesteps(t)
        assert len(pts) == 6 and pts[0] == t and pts[-1] == 0 and pts == sorted(set(pts), reverse=True)
    assert solver.sigma(0) == pytest.approx(0.01, rel=1e-3)
    assert len(solver.timesteps(1000)) < 1000  # levels that round to the same timestep are kept once


def test_seeds_batch_invariance_super_resolution_and_counts(gauss16):
    op = inpainting()
    solver = make_solver("daps", gauss16, langevin_steps=10)
    check_seeds_and_batch_invariance(solver, op, ys_for(gauss16, op))
    out = check_super_resolution(lambda p: make_solver("daps", p, langevin_steps=10))
    assert (out.nfe, out.vjp) == (5 * 6, 0)
    meta = out.metadata
    assert meta["lr_used"] == 1e-4 and meta["tau_used"] == 0.01 and meta["lr"] is None and meta["num_steps"] == 6
    out = make_solver("daps", gauss16, ode_steps=2, langevin_steps=3, sampler="ddpm")(
        ys_for(gauss16, op, 1), op, generator=gens([0]), num_steps=4, progress=False)
    assert (out.nfe, out.vjp) == (8, 0) and out.metadata["lr_used"] == 5e-5  # box inpainting's
    assert out.metadata["sampler_ignored"] == "ddpm"
    check_seeds_and_batch_invariance(make_solver("daps", gauss16, x0_step="gaussian", tau=None), op, ys_for(gauss16, op))


def test_parameters_are_checked_in_one_line(gauss16):
    for bad, text in (({"ode_steps": 0}, "ode_steps must be an integer in [1, 10000], got 0"),
                      ({"langevin_steps": 2.5}, "langevin_steps must be an integer in [1, 10000], got 2.5"),
                      ({"lr": -1e-4}, "lr must be a positive number (or none: the task's), got -0.0001"),
                      ({"tau": 0}, "tau must be a positive number (or none: the measurement's noise), got 0"),
                      ({"lr_min_ratio": 0}, "lr_min_ratio must be a number in (0, 1], got 0"),
                      ({"anneal_sigma_min": 200}, "anneal_sigma_min must be below anneal_sigma_max (100.0), got 200"),
                      ({"rho": 0}, "rho must be a positive number"),
                      ({"eta": 0.5}, "DAPS has its own step; eta cannot be set"),
                      ({"sampler": "euler"}, "sampler 'euler' is not supported")):
        with pytest.raises(UserError) as err:
            make_solver("daps", gauss16, **bad)
        assert text in str(err.value) and "\n" not in str(err.value)
    op = inpainting()
    y = ys_for(gauss16, op, 1)
    with pytest.raises(UserError, match=r"lr=0.001 with tau=0.01: lr / tau² = 10 must be below 2"):
        make_solver("daps", gauss16, lr=1e-3)(y, op, num_steps=2, progress=False)
    noiseless = Inpainting(block_mask()).double()
    with pytest.raises(UserError, match="tau=none takes the measurement's noise std, which is 0 here"):
        make_solver("daps", gauss16, tau=None)(noiseless.A(torch.rand(1, *SHAPE, dtype=torch.float64)), noiseless,
                                               num_steps=2, progress=False)


# --- the correlated Gaussian (inversa.eval.posterior "gauss-inpaint": 1x8x8, block inpainting) ----------
def chain_moments(solver, s, num_steps, *, langevin="discrete", exact_prior=False):
    """Mean and covariance of the DAPS output on a Gaussian prior, propagated exactly (every map is linear-
    Gaussian): the Euler ODE with the exact denoiser, then the Langevin target N(x0hat, σ_i² I) N(y; A x0, τ²)
    either by the solver's own unadjusted steps ("discrete") or sampled exactly ("exact", the limit of enough
    Langevin steps); `exact_prior` replaces (ODE x0hat, σ_i² I) by the exact (E[x0 | x_i], Cov[x0 | x_i])."""
    n = s.prior.model.mean.numel()
    eye, m = torch.eye(n, dtype=torch.float64), s.prior.model.mean.reshape(-1)
    A = s.operator.M
    y = (2 * s.y - s.operator.A(torch.ones(1, *s.prior.model.shape, dtype=torch.float64))).reshape(-1)
    ts = solver.timesteps(num_steps)
    ctx = solver.prepare(Problem(y=y, operator=s.operator, sigma=2 * s.operator.sigma, generators=None), ts)
    mu, cov = torch.zeros(n, dtype=torch.float64), (1 / s.prior.abar(ts[0])) * eye  # x_T ~ N(0, I) on the VE scale
    for i, t in enumerate(ts):
        sig = solver.sigma(t)
        if exact_prior:
            M, R = _denoiser(s.prior, sig)[0], exact_x0_cov(s.prior.model, s.prior.abar(t))
        else:
            M, R = eye, sig**2 * eye
            pts = solver.ode_timesteps(t)
            for a, b in pairwise(pts):
                K = _denoiser(s.prior, solver.sigma(a))[0]
                M = (K + solver.sigma(b) / solver.sigma(a) * (eye - K)) @ M
        mu, cov = M @ (mu - m) + m, M @ cov @ M.T  # x0hat
        Rinv = torch.linalg.inv(R)
        prec, b_y = Rinv + A.T @ A / ctx.tau**2, A.T @ y / ctx.tau**2
        if langevin == "exact":
            P = torch.linalg.inv(prec)
            G, c, Q = P @ Rinv, P @ b_y, P
        else:
            h = ctx.lr * (1 + i / (len(ts) + 1) * (solver.lr_min_ratio - 1))
            B = eye - h * prec
            G, c, Q = eye, torch.zeros(n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
            for _ in range(solver.langevin_steps):
                G, c, Q = B @ G + h * Rinv, B @ c + h * b_y, B @ Q @ B.T + 2 * h * eye
        mu, cov = G @ mu + c, G @ cov @ G.T + Q
        if i + 1 < len(ts):
            cov = cov + solver.sigma(ts[i + 1]) ** 2 * eye
    return mu, cov


def _split(mu, cov, s):
    """{obs, unobs}: (max |mean error|, (min, max) variance ratio) against the exact posterior."""
    err = (mu - s.posterior.mean).abs()
    ratio = cov.diagonal() / s.posterior.cov.diagonal()
    return {k: (float(err[i].max()), float(ratio[i].min()), float(ratio[i].max()))
            for k, i in (("obs", s.observed), ("unobs", ~s.observed)) if bool(i.any())}


# "Enough Langevin steps": τ = the measurement's noise (the exact likelihood), a constant step 2e-4 and 200
# steps per level, so the chain has relaxed at the last levels (relaxation time r² = σ_i² <= 0.025 there,
# 0.04 of Langevin time per level); 25 levels, 500 samples (~6 s).
CONVERGED = {"tau": None, "lr": 2e-4, "lr_min_ratio": 1.0, "langevin_steps": 200}
LEVELS, SAMPLES = 25, 500


@pytest.fixture(scope="module")
def converged_run():
    s = make_setting("gauss", "inpaint")
    _, ref = baselines(s, SAMPLES)
    solver = make_solver("daps", s.prior, clip_x0=False, **CONVERGED)
    torch.manual_seed(0)
    last = {}
    out = solver(s.y.expand(SAMPLES, -1, -1, -1), s.operator, num_steps=LEVELS, progress=False,
                 callback=lambda st, x: last.update(x=x))
    assert (out.nfe, out.vjp) == (5 * LEVELS, 0)
    return s, solver, last["x"].flatten(1), ref


def test_samples_have_the_moments_of_their_own_chain(converged_run):
    """The sampler against the exact mean and covariance of the same chain (ODE, 200 unadjusted Langevin
    steps, re-noising), computed by matrices: within Monte Carlo error (500 samples: variance ratios ±25%)."""
    s, solver, x, _ = converged_run
    mu, cov = chain_moments(solver, s, LEVELS)
    se = (cov.diagonal() / SAMPLES).sqrt()
    assert ((x.mean(0) - mu).abs() / se).max() < 4.5
    ratio = x.var(0) / cov.diagonal()
    assert 0.75 < ratio.min() and ratio.max() < 1.3, ratio


# Measured (this chain, exact moments; 500-sample runs agree within Monte Carlo error):
#   25 levels, the run above:       observed  mean error 0.048, variance ratio 1.16-1.31
#                                   hidden    mean error 0.264, variance ratio 3.8-6.0
#   the converged-Langevin limit:   25 levels hidden 0.264 / 6.3-8.0; 200 levels 0.120 / 3.0-3.7;
#                                   1000 levels 0.089 / 2.7-3.4; observed 0.04-0.05 / 1.08-1.26
#   the same annealing with the exact (E[x0 | x_i], Cov[x0 | x_i]) in place of (x0hat, σ_i² I): exact.
# Why: with r_i² I isotropic the Langevin target factorises over pixels that A^T A does not couple, so the
# hidden block is drawn from N(x0hat, σ_i²) whatever y says (y reaches it only through the next level's
# denoiser), and σ_i² I is Cov[x0 | x_i] only where σ_i is well below every prior std (here down to 0.067
# against σ_min = 0.1); x0hat, the ODE's end point, is spread like a prior sample, not E[x0 | x_i].
# Band (a sanity band, both sides): observed mean error < 0.1, ratios in [0.8, 1.6]; hidden mean error in
# [0.1, 0.4], ratios in [2, 10] (the overdispersion is the method's, at this noise floor).
def test_converged_langevin_on_the_correlated_gaussian_within_a_band(converged_run):
    s, _, x, ref = converged_run
    r = score(x, s, ref)
    print(r)
    assert r["mean_err_obs"] < 0.1 and 0.8 <= r["var_ratio_obs"][0] and r["var_ratio_obs"][1] <= 1.6
    assert 0.1 <= r["mean_err_unobs"] <= 0.4 and 2 <= r["var_ratio_unobs"][0] and r["var_ratio_unobs"][1] <= 10


def test_the_limit_is_not_exact_and_the_gaussian_step_is_why():
    """Exact moments, no sampling: with converged Langevin (any number of levels) the hidden block stays
    over-dispersed; replacing DAPS's N(x0hat, σ_i² I) by the exact p(x0 | x_i) makes the same annealing exact."""
    s = make_setting("gauss", "inpaint")
    solver = make_solver("daps", s.prior, clip_x0=False, tau=None)
    for levels in (25, 200):
        obs, unobs = (_split(*chain_moments(solver, s, levels, langevin="exact"), s)[k] for k in ("obs", "unobs"))
        assert obs[0] < 0.06 and 1.0 < obs[1] and obs[2] < 1.3
        assert unobs[0] > 0.1 and unobs[1] > 2.5
    exact = _split(*chain_moments(solver, s, 25, langevin="exact", exact_prior=True), s)
    for err, lo, hi in exact.values():
        assert err < 1e-3 and 0.99 < lo and hi < 1.01


@pytest.mark.xfail(strict=True, reason="measured (chain moments above): DAPS's p(x0 | x_i) ≈ N(x0hat, σ_i² I) "
                   "cannot carry y into the hidden block within a level and over-disperses it (variance ratio 2.7-8, "
                   "mean error 0.09-0.26 from 1000 to 25 levels) even with converged Langevin and the exact "
                   "likelihood; see docs/posterior.md")
def test_exact_band_with_enough_langevin_steps(converged_run):
    """The issue's band: mean error < 0.05 and variance ratio in [0.8, 1.25], observed and hidden coordinates."""
    s, _, x, ref = converged_run
    r = score(x, s, ref)
    for part in ("obs", "unobs"):
        assert r[f"mean_err_{part}"] < 0.05
        assert 0.8 <= r[f"var_ratio_{part}"][0] and r[f"var_ratio_{part}"][1] <= 1.25


@pytest.mark.parametrize("op_name", ["inpaint", "blur"])
def test_the_gaussian_x0_step_makes_the_annealing_exact(op_name):
    """x0_step="gaussian": each level draws x0 from N(x0hat, Cov[x0 | x_i]) N(y; A x0, σ_y²) (Tweedie mean and
    matrix-free covariance, Matheron's rule), the step the chain moments above show is missing. The issue's
    band (mean error < 0.05, variance ratio in [0.8, 1.25], observed and hidden) at 25 levels, 500 samples."""
    s = make_setting("gauss", op_name)
    _, ref = baselines(s, SAMPLES)
    solver = make_solver("daps", s.prior, clip_x0=False, tau=None, x0_step="gaussian")
    torch.manual_seed(0)
    last = {}
    out = solver(s.y.expand(SAMPLES, -1, -1, -1), s.operator, num_steps=LEVELS, progress=False,
                 callback=lambda st, x: last.update(x=x))
    assert out.vjp == 0 and out.metadata["cg_solves"] == LEVELS
    r = score(last["x"].flatten(1), s, ref)  # the model-scale samples, unclamped
    print(op_name, r)
    for part in ("obs", "unobs"):
        if f"mean_err_{part}" in r:
            assert r[f"mean_err_{part}"] < 0.05
            assert 0.8 <= r[f"var_ratio_{part}"][0] and r[f"var_ratio_{part}"][1] <= 1.25


def test_x0_step_parameters_are_checked(gauss16):
    for bad, text in (({"x0_step": "exact"}, "x0_step"), ({"cg_iters": 0}, "cg_iters"), ({"sqrt_iters": 0}, "sqrt_iters")):
        with pytest.raises(UserError, match=text) as err:
            make_solver("daps", gauss16, **bad)
        assert "\n" not in str(err.value)
