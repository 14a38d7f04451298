"""C-DPS against the analytic Gaussian prior; exact step sampling (closed form = CG); one forward,
no VJP; seeds, batch invariance and SR. The method is not exact on Gaussians: the measured gaps are
recorded as strict xfails so a change in behaviour shows up."""

import pytest
import torch

from inversa.operators import Blur, GaussianNoise, Inpainting, SuperResolution, gaussian_kernel
from inversa.solvers import CDPS, make_solver

from oracle import (MatrixOperator, check_seeds_and_batch_invariance, check_super_resolution, gens, half_mask,
                    moments_error, posterior_samples, problem)


def _inpaint():
    return Inpainting(half_mask(), noise=GaussianNoise(0.025)).double()


def _blur():
    return Blur(gaussian_kernel(3, 1.0), noise=GaussianNoise(0.025)).double()


_MOMENTS = {}


def _inpainting_moments(prior, y_path, num_steps=100):
    key = (id(prior), y_path, num_steps)
    if key not in _MOMENTS:
        _MOMENTS[key] = _run_inpainting(prior, y_path, num_steps)
    return _MOMENTS[key]


def _run_inpainting(prior, y_path, num_steps):
    op = _inpaint()
    y, mean, cov = problem(prior, op)
    x, out = posterior_samples(CDPS(prior, clip_x0=False, variant="paper", y_path=y_path), y, op, 4096, num_steps)
    err, ratio = moments_error(x, mean, cov)
    obs = half_mask().bool().reshape(-1)
    print(f"C-DPS {y_path}, inpainting, {num_steps} steps: mean error {err:.4f}, variance ratio observed "
          f"[{ratio[obs].min():.3f}, {ratio[obs].max():.3f}], unobserved [{ratio[~obs].min():.3f}, {ratio[~obs].max():.3f}]")
    return err, ratio[obs], ratio[~obs], out


@pytest.mark.parametrize("y_path", ["coupled", "independent"])
def test_posterior_mean_inpainting(gauss16, y_path):
    err, _, _, out = _inpainting_moments(gauss16, y_path)
    assert err < 0.05
    assert out.nfe == 100 and out.vjp == 0 and out.metadata["solve"] == "closed-form"


@pytest.mark.xfail(strict=True, reason="measured (4096 samples, 100 steps): observed-pixel variance ratio 0.61-0.63 "
                   "(coupled) / 1.04-1.11 (independent); unobserved 0.81-0.85 (the DDPM step itself at 100 steps)")
@pytest.mark.parametrize("y_path", ["coupled", "independent"])
def test_posterior_variance_inpainting(gauss16, y_path):
    _, obs, unobs, _ = _inpainting_moments(gauss16, y_path)
    assert 0.8 <= min(obs.min(), unobs.min()) and max(obs.max(), unobs.max()) <= 1.25


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured (4096 samples, 100 steps): mean error 0.99 (coupled) / 0.20 "
                   "(independent); p(y_t|x_t) = N(A x_t, ab_t sy^2) with the predicted eps over-trusts y early "
                   "(effective Jacobian 1/sqrt(ab_t)), i.e. a naive inverse along weakly observed directions")
@pytest.mark.parametrize("y_path", ["coupled", "independent"])
def test_posterior_blur(gauss16, y_path):
    op = MatrixOperator(_blur(), (1, 4, 4))
    y, mean, cov = problem(gauss16, op)
    x, _ = posterior_samples(CDPS(gauss16, clip_x0=False, variant="paper", y_path=y_path, cg_iters=100, cg_tol=1e-8), y, op, 4096, 100)
    err, ratio = moments_error(x, mean, cov)
    print(f"C-DPS {y_path}, blur: mean error {err:.4f}, variance ratio [{ratio.min():.3f}, {ratio.max():.3f}]")
    assert err < 0.05 and 0.8 <= ratio.min() and ratio.max() <= 1.25


_CLOSED_FORMS = {
    "inpainting": _inpaint,
    "circular_blur": lambda: Blur(gaussian_kernel(3, 1.0), "circular", noise=GaussianNoise(0.025)).double(),
    "super_resolution": lambda: SuperResolution(2, noise=GaussianNoise(0.025)).double(),
}


@pytest.mark.parametrize("kind", _CLOSED_FORMS)
def test_closed_form_equals_cg(gauss16, kind):
    """The step posterior is sampled exactly either way: by the operator's closed form (diagonal
    Gram, FFT, separable eigenbases) and, as a dense matrix (no closed form), by CG: same samples."""
    a = _CLOSED_FORMS[kind]()
    b = MatrixOperator(a, (1, 4, 4))
    ys = torch.cat([problem(gauss16, a, seed=s)[0] for s in range(3)])
    closed = CDPS(gauss16, clip_x0=False, variant="paper")(ys, a, generator=gens([0, 1, 2]), num_steps=20, progress=False)
    by_cg = CDPS(gauss16, clip_x0=False, variant="paper", cg_tol=1e-12, cg_iters=100)(ys, b, generator=gens([0, 1, 2]), num_steps=20, progress=False)
    assert closed.metadata["solve"] == "closed-form" and closed.metadata["cg_solves"] == 0
    assert torch.allclose(closed.x, by_cg.x, atol=1e-8)
    assert by_cg.metadata["solve"] == "cg" and by_cg.metadata["cg_solves"] == 20 and by_cg.metadata["cg_unconverged"] == 0


def test_one_forward_no_vjp_and_metadata(gauss16):
    op = _blur()
    y, _, _ = problem(gauss16, op)
    out = make_solver("c-dps", gauss16, variant="paper")(y, op, generator=gens([0]), num_steps=10, progress=False)
    assert out.nfe == 10 and out.vjp == 0
    m = out.metadata
    assert m["variant"] == "paper" and m["y_path"] == "coupled" and m["var_floor"] == pytest.approx(1e-4, rel=1e-3)
    assert m["cg_unconverged"] == 0 and m["cg_max_residual"] <= m["cg_tol"]


@pytest.mark.parametrize("params", [{"variant": "paper", "y_path": "coupled"}, {"variant": "paper", "y_path": "independent"},
                                    {"variant": "corrected", "covariance": "scalar"}, {"variant": "corrected", "covariance": "full"},
                                    {"variant": "joint", "covariance": "full"}, {"variant": "joint", "covariance": "scalar"}])
def test_seeds_and_batch_invariance(gauss16, params):
    op = _blur()
    ys = torch.cat([problem(gauss16, op, seed=s)[0] for s in range(4)])
    check_seeds_and_batch_invariance(make_solver("c-dps", gauss16, **params), op, ys)


@pytest.mark.parametrize("params", [{"variant": "paper"}, {"variant": "corrected"}, {"variant": "joint", "covariance": "scalar"}, {}])
def test_super_resolution(params):
    """SR: the scalar forms solve in the operator's closed form; the default (joint, full covariance) by k CG
    iterations in measurement space."""
    out = check_super_resolution(lambda prior: make_solver("c-dps", prior, **params))
    assert out.vjp == 0 and out.metadata["solve"] == ("cg" if not params else "closed-form")
    if not params:
        assert out.metadata["variant"] == "joint" and out.metadata["covariance"] == "full" and out.metadata["cg_iters_used"] == 2


def test_corrected_scalar_costs_two_forwards_and_solves_in_closed_form(gauss16):
    """The corrected step with the scalar Tweedie variance: one probe forward beside the step's own, no VJP,
    closed forms per image (inpainting, SR, circular blur) equal to CG on the dense matrix."""
    a = _CLOSED_FORMS["circular_blur"]()
    b = MatrixOperator(a, (1, 4, 4))
    ys = torch.cat([problem(gauss16, a, seed=s)[0] for s in range(3)])
    kw = dict(clip_x0=False, variant="corrected", covariance="scalar")
    closed = CDPS(gauss16, **kw)(ys, a, generator=gens([0, 1, 2]), num_steps=10, progress=False)
    by_cg = CDPS(gauss16, cg_tol=1e-12, cg_iters=100, **kw)(ys, b, generator=gens([0, 1, 2]), num_steps=10, progress=False)
    assert closed.nfe == 20 and closed.vjp == 0 and closed.metadata["cg_solves"] == 0
    assert torch.allclose(closed.x, by_cg.x, atol=1e-7)


def test_parameters_are_validated(gauss16):
    from inversa.errors import UserError

    for bad in ({"y_path": "x"}, {"var_floor": 0}, {"cg_iters": 0}, {"sigma_min": -1}, {"variant": "x"},
                {"covariance": "x"}, {"sqrt_iters": 0}, {"cov_product": "x"}, {"delta": 0},
                {"variant": "joint", "y_path": "independent"}, {"mean_shift": "vjp"}, {"secant": "x"}, {"tilt": 0}):
        with pytest.raises(UserError):
            CDPS(gauss16, **bad)


def test_joint_step_is_the_ca_dps_posterior_draw(gauss16):
    """Conditioning x_{t-1} on the coupled y_{t-1} with the joint covariance is conditioning on y itself (given x_t,
    y_{t-1} is an invertible affine map of y): the joint step is CA-DPS's posterior draw, draw for draw, with the
    same mean shift (the tilt secant by default, the Jacobian product with mean_shift="covariance") and the same
    k by default (the operator's: 4 on blur). On a Gaussian prior the secant is the product, at one more forward."""
    op = _blur()

    def run(solver):
        return solver(ys, op, generator=gens([0, 1, 2]), num_steps=10, progress=False)

    ys = torch.cat([problem(gauss16, op, seed=s)[0] for s in range(3)])
    kw = dict(clip_x0=False, sqrt_iters=4)
    for shift in ("covariance", "tilt"):
        joint = run(CDPS(gauss16, variant="joint", covariance="full", mean_shift=shift, **kw))
        ca = run(make_solver("ca-dps", gauss16, mean_shift=shift, **kw))
        assert torch.allclose(joint.x, ca.x, atol=1e-10) and joint.nfe == ca.nfe and joint.vjp == ca.vjp == 0
        assert joint.metadata["cg_iters_used"] == ca.metadata["cg_iters_used"] == 4
        if shift == "covariance":
            product = joint
    assert torch.allclose(joint.x, product.x, atol=1e-8) and joint.nfe == product.nfe + 10
