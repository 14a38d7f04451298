"""The correlated-prior oracles and the full-covariance machinery: exact eps-networks and posteriors of a
full-covariance Gaussian and of a mixture with full-covariance components; matrix-free Cov[x0 | x_t]
products against the closed form; Lanczos square roots; CG on non-positive curvature; CA-DPS with the full
covariance against the exact posterior, split into observed and unobserved coordinates (x0 clipping off);
DPS's Polyak step at few steps; the benchmark's reduced run."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from oracle import posterior_samples

from inversa.eval.posterior import baselines, correlated_gaussian, correlated_mixture, make_setting, run_solver, score
from inversa.pretrained.analytic import exact_x0_cov, prior_mixture
from inversa.solvers import make_solver
from inversa.solvers.ca_dps import CG_ITERS, DEFAULT_CG_ITERS
from inversa.solvers.base import rademacher
from inversa.solvers.cg import cg
from inversa.solvers.covariance import TweedieCovariance, conditional_x0
from inversa.solvers.lanczos import sqrt_apply

ROOT = Path(__file__).resolve().parents[2]


def _log_pt(pm, x, a):
    n = x.shape[1]
    comps = [torch.distributions.MultivariateNormal(a**0.5 * m, a * S + (1 - a) * torch.eye(n, dtype=torch.float64))
             for m, S in zip(pm.means, pm.covs)]
    return torch.logsumexp(torch.stack([w.log() + c.log_prob(x) for w, c in zip(pm.weights, comps)], 1), 1)


def _assert_exact_band(r):
    """Posterior mean error < 0.05 and variance ratio in [0.8, 1.25] on observed and unobserved coordinates."""
    for part in ("obs", "unobs"):
        if f"mean_err_{part}" in r:
            assert r[f"mean_err_{part}"] < 0.05
            lo, hi = r[f"var_ratio_{part}"]
            assert 0.8 <= lo and hi <= 1.25


@pytest.mark.parametrize("make", [correlated_gaussian, correlated_mixture])
@pytest.mark.parametrize("t", [50, 500, 950])
def test_eps_network_is_the_exact_score(make, t):
    """eps(x_t, t) = -sqrt(1-a) grad log p_t(x_t), p_t the prior pushed through the forward process."""
    prior = make()
    pm, a = prior_mixture(prior.model), prior.abar(t)
    x = torch.randn(4, *prior.model.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    xf = x.flatten(1).requires_grad_(True)
    (grad,) = torch.autograd.grad(_log_pt(pm, xf, a).sum(), xf)
    eps = prior.predict(x, t, clip=False).eps.flatten(1)
    assert torch.allclose(eps, -((1 - a) ** 0.5) * grad, atol=1e-10)


def test_exact_posterior_of_the_full_gaussian_is_the_precision_form():
    s = make_setting("gauss", "blur")
    m, S = s.prior.model.mean.reshape(-1), s.prior.model.cov
    A = s.operator.M
    y_m = (2 * s.y - s.operator.A(torch.ones(1, *s.prior.model.shape, dtype=torch.float64))).reshape(-1)
    prec = torch.linalg.inv(S) + A.T @ A / 0.05**2
    cov = torch.linalg.inv(prec)
    mean = cov @ (torch.linalg.solve(S, m) + A.T @ y_m / 0.05**2)
    assert torch.allclose(s.posterior.means[0], mean, atol=1e-8) and torch.allclose(s.posterior.covs[0], cov, atol=1e-8)


def test_mixture_posterior_reweights_components_by_their_evidence():
    s = make_setting("mix", "inpaint")
    assert s.posterior.weights.shape == (3,) and abs(float(s.posterior.weights.sum()) - 1) < 1e-12
    assert float(s.posterior.weights.max()) > float(prior_mixture(s.prior.model).weights.max())  # y picks a mode


@pytest.mark.parametrize("method", ["finite-difference", "jvp"])
@pytest.mark.parametrize("t", [100, 500, 900])
def test_tweedie_covariance_products_match_the_closed_form(method, t):
    prior = correlated_gaussian()
    a = prior.abar(t)
    g = torch.Generator().manual_seed(t)
    x_t = a**0.5 * prior.model.mean + (1 - a) ** 0.5 * torch.randn(3, *prior.model.shape, generator=g, dtype=torch.float64)
    cov = TweedieCovariance(prior, x_t, t, prior.predict(x_t, t, clip=False).eps, method=method)
    v = torch.randn(x_t.shape, generator=g, dtype=torch.float64)
    exact = (v.flatten(1) @ exact_x0_cov(prior.model, a)).reshape(v.shape)
    assert torch.allclose(cov(v), exact, rtol=1e-4, atol=1e-6 * float(exact.abs().max()))


def _tilted_mixture_mean(prior, x_t, a, b):
    """Mean of p(x0 | x_t) e^{<b, x0>} for the analytic mixture, in closed form: each component's posterior
    N(mu_k, S_k) given x_t moves to mu_k + S_k b, its weight is multiplied by exp(<b, mu_k> + b^T S_k b / 2)."""
    pm, n = prior_mixture(prior.model), b.shape[1]
    eye = torch.eye(n, dtype=torch.float64)
    logw, means = [], []
    for w, m, C in zip(pm.weights, pm.means, pm.covs):
        S = torch.linalg.inv(torch.linalg.inv(C + 1e-12 * eye) + a / (1 - a) * eye)
        mu = (torch.linalg.solve(C + 1e-12 * eye, m) + a**0.5 / (1 - a) * x_t) @ S  # (B, n), S symmetric
        evidence = torch.distributions.MultivariateNormal(a**0.5 * m, a * C + (1 - a) * eye).log_prob(x_t)
        logw.append(w.log() + evidence + (b * mu).sum(1) + 0.5 * ((b @ S) * b).sum(1))
        means.append(mu + b @ S)
    r = torch.softmax(torch.stack(logw, 1), 1)
    return (r.unsqueeze(-1) * torch.stack(means, 1)).sum(1)


@pytest.mark.parametrize("t", [200, 500, 800])
def test_tilted_secant_is_the_product_on_gaussians_and_the_tilted_mean_on_mixtures(t):
    """`TweedieCovariance.tilted`: on a Gaussian prior every fraction of the tilt gives S b exactly (x0hat is
    affine); on the mixture, fraction 1 is the mean of p(x0 | x_t) tilted by e^{<b, x0>} (closed form),
    which the Jacobian product S b is not."""
    g = torch.Generator().manual_seed(t)
    gauss = correlated_gaussian()
    a = gauss.abar(t)
    x_t = a**0.5 * gauss.model.mean + (1 - a) ** 0.5 * torch.randn(3, *gauss.model.shape, generator=g, dtype=torch.float64)
    cov = TweedieCovariance(gauss, x_t, t, gauss.predict(x_t, t, clip=False).eps)
    b = torch.randn(x_t.shape, generator=g, dtype=torch.float64)
    exact = (b.flatten(1) @ exact_x0_cov(gauss.model, a)).reshape(b.shape)
    for fraction in (0.1, 1.0):
        for central in (False, True):
            assert torch.allclose(cov.tilted(b, fraction, central), exact, atol=1e-9 * float(exact.abs().max()))
    mix = correlated_mixture()
    x_t = torch.randn(3, *mix.model.shape, generator=g, dtype=torch.float64)
    cov = TweedieCovariance(mix, x_t, t, mix.predict(x_t, t, clip=False).eps)
    b = 3 * torch.randn(x_t.shape, generator=g, dtype=torch.float64)
    tilted_mean = _tilted_mixture_mean(mix, x_t.flatten(1), a, b.flatten(1)).reshape(b.shape)
    assert torch.allclose(cov.x0 + cov.tilted(b, 1.0), tilted_mean, atol=1e-8)
    assert not torch.allclose(cov.x0 + cov(b), tilted_mean, atol=1e-3)
    # the central secant: half the difference of the means tilted by b and by -b, at two forwards
    opposite = _tilted_mixture_mean(mix, x_t.flatten(1), a, -b.flatten(1)).reshape(b.shape)
    before = cov.products
    assert torch.allclose(cov.tilted(b, 1.0, central=True), (tilted_mean - opposite) / 2, atol=1e-8)
    assert cov.products == before + 2


def test_measurement_trust_bounds_by_the_products_image():
    """`covariance.measurement_trust` with the A-image `conditional_x0` returns (A S A^T u, from the CG's residual):
    the Jacobian product's shift is left as it is; a shift whose A-image is longer is scaled, per image, to its
    length. Gaussian prior, exact S, blur, truncated CG (2 iterations)."""
    from inversa.solvers.covariance import measurement_trust

    s = make_setting("gauss", "blur")
    g = torch.Generator().manual_seed(5)
    A, S = s.operator.M, exact_x0_cov(s.prior.model, s.prior.abar(300))

    class Dense:
        def A(self, x):
            return x @ A.T

        def A_adjoint(self, y):
            return y @ A

    rhs = torch.randn(3, A.shape[0], generator=g, dtype=torch.float64)
    u, _, image = conditional_x0(lambda v: v @ S, Dense(), rhs, 0.05**2, cg_iters=2, with_image=True)
    shift = u @ A @ S  # S A^T u (S symmetric), rows are images
    assert torch.allclose(image, shift @ A.T, atol=1e-10)
    assert torch.allclose(measurement_trust(Dense(), shift, image), shift, rtol=1e-12, atol=0)  # up to rounding of the ratio
    long = torch.cat([50 * shift[:1], shift[1:]])
    out = measurement_trust(Dense(), long, image)
    assert torch.allclose((out[0] @ A.T).norm(), image[0].norm()) and torch.allclose(out[1:], shift[1:], rtol=1e-12, atol=0)


def test_lanczos_square_root_and_positivity():
    g = torch.Generator().manual_seed(0)
    B = torch.randn(6, 6, generator=g, dtype=torch.float64)
    M = B @ B.T + 0.1 * torch.eye(6, dtype=torch.float64)
    ev, U = torch.linalg.eigh(M)
    root = U @ torch.diag(ev.sqrt()) @ U.T
    z = torch.randn(2, 6, generator=g, dtype=torch.float64)
    assert torch.allclose(sqrt_apply(lambda v: v @ M, z, 6), z @ root, atol=1e-8)  # Krylov space complete: exact
    negative = sqrt_apply(lambda v: -(v @ M), z, 6)  # a negative "covariance": Ritz values clamped to 0
    assert torch.equal(negative, torch.zeros_like(negative))


def test_cg_stops_on_non_positive_curvature():
    indefinite = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64))
    b = torch.ones(2, 3, dtype=torch.float64)
    x, info = cg(lambda v: v @ indefinite, b, tol=1e-10, max_iter=10)
    assert torch.isfinite(x).all() and not bool(info.converged.any())


def test_shared_generator_probes_are_one_draw():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    shared = rademacher((5, 1, 4, 4), [g1] * 5, device="cpu", dtype=torch.float64)
    one = torch.randint(0, 2, (5, 1, 4, 4), generator=g2).double() * 2 - 1
    assert torch.equal(shared, one)


@pytest.mark.parametrize("op_name", ["inpaint", "blur"])
def test_ca_dps_full_covariance_samples_the_correlated_posterior(op_name):
    """The full-covariance issue's band: posterior mean error < 0.05 and variance ratio in [0.8, 1.25] on the
    observed and on the unobserved coordinates (blur: coordinates whose variance y halves count as observed),
    CA-DPS defaults, 100 steps, 1000 samples; at most k + sqrt_iters + 3 forwards per step (the central tilt
    secant's two included) and no VJP."""
    s = make_setting("gauss", op_name)
    _, ref = baselines(s, 1000)
    solver = make_solver("ca-dps", s.prior, clip_x0=False)
    r = run_solver(s, solver, 1000, 100, ref)
    print(op_name, r)
    _assert_exact_band(r)
    p = solver.params()
    k = CG_ITERS.get(s.operator.name, DEFAULT_CG_ITERS)  # cg_iters=None: the operator's
    assert p["cg_iters"] is None and r["nfe_per_step"] <= k + p["sqrt_iters"] + 3 and r["vjp_per_step"] == 0
    if op_name == "inpaint":  # what a diagonal covariance cannot do: the hidden block is informed by its border
        assert r["sw2_unobs"] < 0.1


def test_tilt_keeps_chains_out_of_the_modes_y_rules_out():
    """Mixture with blur, 100 steps: y leaves one component (weight 1 - 1e-12); with the Jacobian product a few
    chains stay in another component (the far outliers that dominate SW2), with the tilt secant (the default,
    central, and the one-sided one) none do."""
    s = make_setting("mix", "blur")
    _, ref = baselines(s, 300)
    post = s.posterior
    comps = [torch.distributions.MultivariateNormal(m, C) for m, C in zip(post.means, post.covs)]
    results = {}
    forms = {"covariance": {"mean_shift": "covariance"}, "central": {}, "forward": {"secant": "forward", "tilt": 0.05}}
    for form, params in forms.items():
        x, _ = posterior_samples(make_solver("ca-dps", s.prior, clip_x0=False, **params), s.y, s.operator, 300, 100)
        x = x.flatten(1)
        k = torch.stack([c.log_prob(x) for c in comps], 1).argmax(1)
        results[form] = (int((k != post.weights.argmax()).sum()), score(x, s, ref)["sw2"])
    print(results)
    assert float(post.weights.max()) > 1 - 1e-9
    assert results["covariance"][0] >= 2
    for form in ("central", "forward"):
        assert results[form][0] == 0 and results[form][1] < 0.5 * results["covariance"][1]


def test_ca_dps_mean_form_costs_k_plus_two_forwards():
    """The mean form (step_variance="prior") with k CG iterations: k + 2 forwards with the Jacobian product
    (x0hat, k products, the shift's), one more with the default central tilt secant (two for the shift); no VJP."""
    s = make_setting("gauss", "inpaint")
    _, ref = baselines(s, 200)
    for shift, extra in (("covariance", 2), (None, 3)):
        r = run_solver(s, make_solver("ca-dps", s.prior, clip_x0=False, cg_iters=3, step_variance="prior", cg_tol=1e-12,
                                      mean_shift=shift), 200, 10, ref)
        assert r["nfe_per_step"] == 3 + extra and r["vjp_per_step"] == 0


def test_dps_polyak_step_holds_at_few_steps():
    """The T/N-rescaled step overshoots at 25 steps (farther from the posterior than the prior alone); the
    Polyak cap (the step that takes ||y - A x0hat|| to its noise level) does not."""
    s = make_setting("mix", "inpaint")
    base, ref = baselines(s, 500)
    stride = run_solver(s, make_solver("dps", s.prior, clip_x0=False, step_rule="stride"), 500, 25, ref)
    polyak = run_solver(s, make_solver("dps", s.prior, clip_x0=False), 500, 25, ref)
    assert stride["sw2"] > base["prior"]["sw2"] and polyak["sw2"] < 0.2 * base["prior"]["sw2"]


def test_full_covariance_beats_the_prior_on_the_mixture():
    """Mixture with full-covariance components, block inpainting: CA-DPS at 25 steps is close to the exact
    posterior and no farther than the prior alone on the unobserved coordinates."""
    s = make_setting("mix", "inpaint")
    base, ref = baselines(s, 500)
    r = run_solver(s, make_solver("ca-dps", s.prior, clip_x0=False), 500, 25, ref)
    assert r["sw2"] < 0.1 * base["prior"]["sw2"] and r["sw2_unobs"] <= base["prior"]["sw2_unobs"]


def test_benchmark_reduced_run():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "posterior.py"), "--samples", "64", "--steps", "3",
                          "--settings", "gauss-inpaint,mix-sr2", "--solvers", "dps,ca-dps,c-dps"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    for line in ("gauss-inpaint:", "mix-sr2:", "exact (floor)", "prior alone", "ca-dps @ 3", "c-dps @ 3"):
        assert line in out.stdout


_NOT_EXACT = pytest.mark.xfail(strict=True, reason="measured (500 samples, 25 steps; corrected: inpainting mean error 0.10, "
                               "observed variance ratio 1.6-2.9, blur mean error 0.07): these forms condition the DDPM prior "
                               "step N(mu_t, beta_tilde I) on y_{t-1} without its cross-covariance with x_{t-1}, so they are "
                               "not exact on Gaussians; docs/posterior.md has the figures")


@pytest.mark.parametrize(("params", "steps"), [pytest.param({"variant": "corrected"}, 25, marks=_NOT_EXACT),
                                               pytest.param({"variant": "paper"}, 25, marks=_NOT_EXACT),
                                               ({}, 100), ({"cg_iters": 30}, 25)])
@pytest.mark.parametrize("op_name", ["inpaint", "blur"])
def test_c_dps_on_the_correlated_gaussian(op_name, params, steps):
    """The band of the CA-DPS test above: met by the default, the joint step (x_{t-1} and y_{t-1} jointly Gaussian
    given x_t, full covariance), at 100 steps as CA-DPS (its draw), and at 25 steps with the CG taken to
    tolerance; missed by the forms that drop the cross-covariance (at 25 steps, where they were measured)."""
    s = make_setting("gauss", op_name)
    _, ref = baselines(s, 500)
    r = run_solver(s, make_solver("c-dps", s.prior, clip_x0=False, **params), 500, steps, ref)
    print(op_name, params, r)
    _assert_exact_band(r)
