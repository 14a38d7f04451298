"""CMI-DPS: the mutual-information value against the exact log-determinant, its Hutchinson gradient
against finite differences (a Gaussian mixture prior, whose Cov[x0|x_t] depends on x_t), and the
plug-in on every gradient-guided base solver."""

import pytest
import torch

from inversa.errors import UserError
from inversa.operators import Blur, GaussianNoise, Inpainting, gaussian_kernel
from inversa.pretrained.analytic import dense_matrix
from inversa.solvers import CADPS, DPS, information_gradient, make_solver, mutual_information

from oracle import (MatrixOperator, check_seeds_and_batch_invariance, check_super_resolution, gens, half_mask,
                    mixture_prior, problem)

SY = 0.05  # model-scale noise std


def _ops():
    return {"inpainting": Inpainting(half_mask(), noise=GaussianNoise(0.025)).double(),
            "blur": Blur(gaussian_kernel(3, 1.0), noise=GaussianNoise(0.025)).double()}


def exact_information(prior, x, t, op):
    """1/2 logdet(I + sy^-2 c_t A J_t A^T), J_t the dense Jacobian of x0hat at x (one image)."""
    a = prior.abar(t)
    J = torch.autograd.functional.jacobian(lambda z: prior.predict(z.view(x.shape), t, clip=False).x0hat.reshape(-1), x.reshape(-1))
    A = dense_matrix(op.A, tuple(x.shape[1:]))
    return 0.5 * torch.logdet(torch.eye(A.shape[0], dtype=torch.float64) + (1 - a) / a**0.5 / SY**2 * A @ J @ A.T)


@pytest.mark.parametrize("kind", ["inpainting", "blur"])
@pytest.mark.parametrize("t", [100, 500, 900])
def test_mutual_information_matches_logdet(gauss16, kind, t):
    """Stochastic Lanczos quadrature, 16 images x 8 probes averaged: within 10 % of the exact value."""
    op = _ops()[kind]
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    est = mutual_information(gauss16, x.expand(16, -1, -1, -1), t, op, SY, probes=8, lanczos_steps=16, generators=gens(range(16)))
    exact = exact_information(gauss16, x, t, op)
    print(f"I, {kind}, t={t}: estimate {est.mean():.3f} (per image {est.min():.2f}..{est.max():.2f}), exact {exact:.3f}")
    assert abs(est.mean() / exact - 1) < 0.10


@pytest.mark.parametrize("hvp", ["exact", "finite-difference"])
@pytest.mark.parametrize("kind", ["inpainting", "blur"])
def test_information_gradient_matches_finite_differences(kind, hvp):
    """Mean of 2048 one-probe Hutchinson gradients (CG inverse) vs central differences of the exact I."""
    prior = mixture_prior()
    op = _ops()[kind] if kind == "inpainting" else MatrixOperator(_ops()["blur"], (1, 4, 4))
    t = 300
    g = torch.Generator().manual_seed(0)
    x = prior.abar(t) ** 0.5 * (0.04 + 0.6 * torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64))
    h = 1e-5
    fd = torch.stack([(exact_information(prior, x + h * e.view(x.shape), t, op) - exact_information(prior, x - h * e.view(x.shape), t, op)) / (2 * h)
                      for e in torch.eye(16, dtype=torch.float64)])
    torch.manual_seed(0)
    est = information_gradient(prior, x.expand(2048, -1, -1, -1), t, op, SY, inverse="cg", hvp=hvp).mean(0).reshape(-1)
    rel = ((est - fd).norm() / fd.norm()).item()
    print(f"grad I, {kind}, {hvp}: |fd| {fd.norm():.3f}, relative error {rel:.3f}")
    assert rel < 0.1


@pytest.mark.parametrize("float_bits", [32, 64])
def test_finite_difference_hvp_matches_the_double_backward(float_bits):
    """Same probe, same point: the forward difference of two VJPs against the exact Hessian-vector product."""
    prior, op = mixture_prior(), MatrixOperator(_ops()["blur"], (1, 4, 4))  # both compute in x's dtype
    dt = torch.float64 if float_bits == 64 else torch.float32
    x = prior.abar(300) ** 0.5 * (0.04 + 0.6 * torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=dt))
    grads = {hvp: information_gradient(prior, x, 300, op, SY, inverse="first-order", hvp=hvp, generators=gens(range(8)))
             for hvp in ("exact", "finite-difference")}
    rel = ((grads["finite-difference"] - grads["exact"]).norm() / grads["exact"].norm()).item()
    print(f"float{float_bits}: |exact| {grads['exact'].norm():.3f}, finite-difference relative error {rel:.2e}")
    assert grads["exact"].norm() > 0 and rel < (1e-2 if float_bits == 64 else 5e-2)


@pytest.mark.parametrize("base,params", [("dps", {}), ("ca-dps", {"covariance": "diagonal"}), ("ca-dps", {"variant": "reference"}),
                                         ("ca-dps", {"covariance": "diagonal", "mean_shift": "vjp"}), ("dps", {"hvp": "exact"}),
                                         ("dps", {"inverse": "cg", "probes": 2, "eta_mode": "absolute", "eta": 1e-4})])
def test_plugs_into_gradient_guided_solvers(gauss16, base, params):
    op = _ops()["blur"]
    y, _, _ = problem(gauss16, op)
    s = make_solver("cmi-dps", gauss16, base=base, **params)
    assert isinstance(s, {"dps": DPS, "ca-dps": CADPS}[base]) and s.name == "cmi-dps"
    out = s(y.expand(2, -1, -1, -1), op, generator=gens([0, 1]), num_steps=6, progress=False)
    m = out.metadata
    assert m["solver"] == "cmi-dps" and m["base"] == base and m["variant"] == params.get("variant", None if base == "dps" else "paper")
    assert torch.isfinite(out.x).all()
    probes = params.get("probes", 1)
    # "exact": no extra network forward (the HVPs run on the base's own); "finite-difference": one per probe
    extra = 6 * probes * (params.get("hvp", "finite-difference") == "finite-difference")
    assert out.nfe == {"dps": 6, "ca-dps": 12 if params.get("variant") != "reference" else 11}[base] + extra
    if params.get("inverse") == "cg":  # J products inside CG: one backward pass each
        assert m["inverse_solves"] == 6 * probes and out.vjp > 6 + 12 * probes
    else:  # the base's VJP (none for mean_shift="covariance") + one HVP (two backward passes) per probe
        base_vjp = base == "dps" or params.get("variant") == "reference" or params.get("mean_shift") == "vjp"
        assert out.vjp == 6 * base_vjp + 12 * probes


def test_plugs_into_full_covariance_ca_dps(gauss16):
    """Over CA-DPS's full covariance (no VJP of its own): the HVPs are the only backward passes."""
    op = _ops()["blur"]
    y, _, _ = problem(gauss16, op)
    out = make_solver("cmi-dps", gauss16, base="ca-dps")(y.expand(2, -1, -1, -1), op, generator=gens([0, 1]), num_steps=6,
                                                       progress=False)
    assert torch.isfinite(out.x).all() and out.metadata["covariance"] == "full" and out.vjp == 12
    assert out.nfe >= 6 * 3  # the step's forward, the CMI probe's, and at least one covariance product


def test_eta_zero_keeps_the_base_step(gauss16):
    """With eta = 0 the step is the base solver's (the probe draw aside)."""
    op = _ops()["inpainting"]
    y, _, _ = problem(gauss16, op)
    run = {"generator": None, "num_steps": 5, "progress": False}
    torch.manual_seed(0)
    cmi = make_solver("cmi-dps", gauss16, base="dps", eta=0.0, clip_x0=False)(y, op, **run).x
    base = DPS(gauss16, clip_x0=False)
    plain = base.guidance
    base.guidance = lambda s: (torch.randint(0, 2, (1, 1, 4, 4)), plain(s))[1]  # the probe's draw
    torch.manual_seed(0)
    assert torch.allclose(base(y, op, **run).x, cmi, atol=1e-12)


@pytest.mark.parametrize("base", ["dps", "ca-dps"])
def test_seeds_and_batch_invariance(base):
    """On the mixture prior, where grad I != 0 (J_t varies with x_t)."""
    prior, op = mixture_prior(), _ops()["blur"]
    ys = op.measure(torch.rand(4, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), generator=gens(range(4)))
    check_seeds_and_batch_invariance(make_solver("cmi-dps", prior, base=base), op, ys)


def test_super_resolution():
    check_super_resolution(lambda prior: make_solver("cmi-dps", prior, base="ca-dps"))


def test_bad_base_and_parameters(gauss16):
    for bad in ({"base": "c-dps"}, {"base": "naive"}, {"base": "nope"}, {"inverse": "x"}, {"eta_mode": "x"},
                {"probes": 0}, {"eta": -1}, {"hvp": "x"}, {"fd_delta": 0}):
        with pytest.raises(UserError):
            make_solver("cmi-dps", gauss16, **bad)


def test_default_weight_follows_the_base(gauss16):
    """eta=None: 0.01 on CA-DPS (the default base), 0.1 on the others; an explicit eta is kept."""
    assert make_solver("cmi-dps", gauss16).params()["cmi_eta"] == 0.01
    assert make_solver("cmi-dps", gauss16).params()["base"] == "ca-dps"
    assert make_solver("cmi-dps", gauss16, base="dps").params()["cmi_eta"] == 0.1
    assert make_solver("cmi-dps", gauss16, eta=0.3).params()["cmi_eta"] == 0.3


def test_default_meets_the_mixture_target():
    """Mixture with full-covariance components, blur (every pixel observed, one component left by y): CMI-DPS
    with its defaults at 100 steps is within half the sliced W2 of DPS's paper step (uncapped) at 1000 steps."""
    from inversa.eval.posterior import baselines, make_setting, run_solver

    s = make_setting("mix", "blur")
    _, ref = baselines(s, 300)
    cmi = run_solver(s, make_solver("cmi-dps", s.prior, clip_x0=False), 300, 100, ref)
    dps = run_solver(s, make_solver("dps", s.prior, clip_x0=False, step_rule="stride"), 300, 1000, ref)
    print(f"SW2: CMI-DPS @ 100 {cmi['sw2']:.3f}, DPS (uncapped) @ 1000 {dps['sw2']:.3f}")
    assert cmi["sw2"] <= 0.5 * dps["sw2"]
