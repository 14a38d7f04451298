"""deepinv interop: deepinv's own adjointness test on every wrapped preset, deepinv physics driving our
solvers (a wrapped BlurFFT restores exactly as our circular Blur), and the prior as a deepinv denoiser."""

from __future__ import annotations

import pytest
import torch

dinv = pytest.importorskip("deepinv")

import inversa  # noqa: E402
from inversa.interop.deepinv import DeepinvOperator, PriorDenoiser, from_deepinv, to_deepinv  # noqa: E402
from inversa.operators import PRESETS, Blur, gaussian_kernel, make_preset  # noqa: E402


@pytest.mark.parametrize("name", list(PRESETS))
def test_deepinv_adjointness_test_on_every_wrapped_preset(name):
    op = make_preset(name, (32, 40), index=0, seed=3).to(dtype=torch.float64)
    physics = to_deepinv(op)
    assert isinstance(physics, dinv.physics.LinearPhysics)
    u = torch.rand(1, 3, 32, 40, dtype=torch.float64)
    err = float(physics.adjointness_test(u, num_samples=4))
    assert abs(err) < 1e-10, err
    torch.testing.assert_close(physics.A(u), op.A(u))
    if op.sigma > 0:  # deepinv's physics(x) is the noisy measurement, with our sigma
        r = (physics(u) - op.A(u)).std()
        assert 0.5 * op.sigma < r < 2 * op.sigma


@pytest.mark.parametrize("make", [
    lambda: dinv.physics.BlurFFT((3, 32, 32), filter=dinv.physics.functional.blur.gaussian_blur(sigma=(2.0, 2.0))),
    lambda: dinv.physics.Inpainting((3, 32, 32), mask=0.6, rng=torch.Generator().manual_seed(0)),
    lambda: dinv.physics.Downsampling((3, 32, 32), filter="bicubic", factor=2),
], ids=["BlurFFT", "Inpainting", "Downsampling"])
def test_wrapped_deepinv_physics_is_an_inversa_operator(make):
    op = from_deepinv(make(), sigma=0.01)
    x = torch.rand(2, 3, 32, 32)
    y = op.measure(x, generator=torch.Generator().manual_seed(0))
    assert op.input_shape(tuple(y.shape)) == tuple(x.shape) and op.output_shape(tuple(x.shape)) == tuple(y.shape)
    v = torch.randn_like(y)
    lhs, rhs = (op.A(x) * v).sum(), (x * op.A_adjoint(v)).sum()
    assert abs(float(lhs - rhs)) < 1e-4 * float(lhs.abs())
    assert op.metadata()["operator"].startswith("deepinv.")


def test_restore_through_wrapped_blurfft_equals_our_circular_blur():
    k = gaussian_kernel(9, 1.5)
    ours = Blur(k, "circular", inversa.GaussianNoise(0.02))
    theirs = from_deepinv(dinv.physics.BlurFFT((3, 32, 32), filter=k[None, None].float().clone()), sigma=0.02)
    x = inversa.demo_image(32)
    torch.testing.assert_close(theirs.A(x), ours.A(x), atol=1e-6, rtol=0)
    y = ours.measure(x, generator=torch.Generator().manual_seed(1))
    prior = inversa.load_prior()
    solver = inversa.make_solver("dps", prior)
    run = lambda op: solver(y, op, num_steps=4, generator=torch.Generator().manual_seed(0), progress=False).x  # noqa: E731
    a, b = run(ours), run(theirs)
    assert (a - b).abs().max() <= 1e-5


def test_blurfft_is_our_circular_blur_with_the_kernel_flipped():
    """An asymmetric kernel: the two libraries orient kernels oppositely (documented); float64 moves
    keep deepinv's complex spectrum intact."""
    k = inversa.motion_kernel(9, 0.5, generator=torch.Generator().manual_seed(0)).float()
    theirs = from_deepinv(dinv.physics.BlurFFT((3, 32, 32), filter=k[None, None].clone()))
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    theirs = theirs.to(device="cpu", dtype=torch.float64)
    ours = Blur(k.flip(-2, -1), "circular").to(dtype=torch.float64)
    torch.testing.assert_close(theirs.A(x), ours.A(x), atol=1e-6, rtol=0)


def test_prior_as_deepinv_denoiser():
    den = PriorDenoiser(inversa.load_prior())
    assert isinstance(den, torch.nn.Module)
    x = inversa.demo_image(32)
    with torch.no_grad():
        near = den(x, 1e-3)  # almost no noise: almost the input back
        noisy = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        out = den(noisy, 0.2)
    assert (near - x).abs().mean() < 0.01
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert (out - x).pow(2).mean() < (noisy - x).pow(2).mean()  # it denoises


def test_wrong_types_are_one_line_errors():
    with pytest.raises(inversa.UserError, match="expected a deepinv LinearPhysics"):
        DeepinvOperator(object())
    with pytest.raises(inversa.UserError, match="expected an inversa LinearOperator"):
        to_deepinv(object())


SVD_CASES = {
    "sr4": lambda: make_preset("sr4", (32, 40), index=0),
    "random_inpaint": lambda: make_preset("random_inpaint", (32, 40), index=[0, 1]),  # per-image masks
    "circular_blur": lambda: Blur(inversa.motion_kernel(9, 0.5, generator=torch.Generator().manual_seed(0)),
                                  "circular", inversa.GaussianNoise(0.02)),
}


@pytest.mark.parametrize("name", list(SVD_CASES))
def test_operator_with_an_svd_is_a_deepinv_decomposable_physics(name):
    """With the image shape, to_deepinv hands deepinv our SVD: its A, A^T, A^dagger and closed-form
    prox_l2 are ours (the prox checked against its normal equations), its own adjointness test passes."""
    op = SVD_CASES[name]()
    shape = (2, 3, 32, 40)
    physics = to_deepinv(op, shape)
    assert isinstance(physics, dinv.physics.DecomposablePhysics)
    x = torch.rand(shape)
    y = op.measure(x, generator=torch.Generator().manual_seed(0))
    assert abs(float(physics.adjointness_test(x))) < 1e-5
    torch.testing.assert_close(physics.A(x), op.A(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(physics.A_adjoint(y), op.A_adjoint(y), atol=1e-5, rtol=0)
    torch.testing.assert_close(physics.A_dagger(y), op.A_dagger(y), atol=1e-4, rtol=0)
    z, gamma = torch.rand(shape), 0.7
    p = physics.prox_l2(z, y, gamma)  # argmin gamma/2 |Ap - y|^2 + 1/2 |p - z|^2
    torch.testing.assert_close(op.A_adjoint(op.A(p)) + p / gamma, op.A_adjoint(y) + z / gamma, atol=1e-4, rtol=0)
    assert physics.noise_model.sigma == op.sigma


def test_deepinv_ddrm_runs_on_our_operator():
    """deepinv's DDRM needs a DecomposablePhysics with one mask per batch: a shared operator (SR) works
    on a batch, and its output fits y to the noise level."""
    op = make_preset("sr4", 32, index=0).to(dtype=torch.float32)
    x = inversa.demo_image(32).expand(2, -1, -1, -1)
    y = op.measure(x, generator=torch.Generator().manual_seed(0))
    den = PriorDenoiser(inversa.load_prior())
    with torch.no_grad():
        out = dinv.sampling.DDRM(den, sigmas=torch.linspace(1, 0, 20).numpy())(y, to_deepinv(op, tuple(x.shape)), seed=1)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert (op.A(out) - y).pow(2).mean().sqrt() < 2 * op.sigma


def test_operator_without_an_svd_stays_a_linear_physics():
    op = make_preset("gaussian_deblur", 32)  # reflect padding: no SVD
    physics = to_deepinv(op, (3, 32, 32))
    assert not isinstance(physics, dinv.physics.DecomposablePhysics)
    assert isinstance(physics, dinv.physics.LinearPhysics)


@pytest.mark.parametrize("kind", ["circular_blur", "inpainting"])
def test_our_diffpir_is_deepinvs_draw_for_draw(kind):
    """Same prior, operator, y and seed: our DiffPIR and deepinv's (whose data step is the proximal
    operator of ½||Ax - y||² with γ = 1/(2ρ), i.e. the paper's ρ doubled: its λ = ours / 2) draw x_T and
    one normal per step in the same order, so they agree up to the two documented differences (deepinv
    starts from q(x_T | A^T y), signal sqrt(ab_T) ≈ 0.006 of A^T y; it returns the last sample step's
    x, ours the last data step's x̂0)."""
    from inversa.operators import Inpainting

    size = 32
    op = (Blur(gaussian_kernel(9, 1.5), "circular", inversa.GaussianNoise(0.02)) if kind == "circular_blur" else
          Inpainting((torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(2)) > 0.5).float(),
                     noise=inversa.GaussianNoise(0.02)))
    x = inversa.demo_image(size)
    y = op.measure(x, generator=torch.Generator().manual_seed(1))
    prior = inversa.load_prior()
    ours = inversa.make_solver("diffpir", prior, zeta=0.3, lam=7.0)(y, op, num_steps=12, progress=False,
                                                                  generator=torch.Generator().manual_seed(5)).x
    model = dinv.sampling.DiffPIR(PriorDenoiser(prior), dinv.optim.data_fidelity.L2(), sigma=0.02, max_iter=12,
                                  zeta=0.3, lambda_=3.5)
    with torch.no_grad():
        theirs = model(y, to_deepinv(op, tuple(x.shape)), seed=5).clamp(0, 1)
    assert (ours - theirs).abs().mean() < 0.01 and (ours - theirs).abs().max() < 0.1
    other = inversa.make_solver("diffpir", prior, zeta=0.3, lam=7.0)(y, op, num_steps=12, progress=False,
                                                                   generator=torch.Generator().manual_seed(6)).x
    assert (ours - other).abs().mean() > 5 * (ours - theirs).abs().mean()  # a different seed is far apart
