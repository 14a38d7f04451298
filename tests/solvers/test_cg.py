"""Batched conjugate gradients: exact solves, per-image stopping, batch invariance, and convergence
on the systems CA-DPS and C-DPS build from every operator."""

import pytest
import torch

from inversa.operators import Blur, GaussianNoise, Identity, SuperResolution, gaussian_kernel, make_preset
from inversa.solvers.cg import bdot, cg


def _spd(n, cond, g):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.logspace(0, cond, n, dtype=torch.float64)) @ q.T


def test_cg_solves_each_image_to_its_tolerance():
    g = torch.Generator().manual_seed(0)
    mats = torch.stack([_spd(12, c, g) for c in (0.5, 1.5, 2.5)])
    b = torch.randn(3, 1, 3, 4, generator=g, dtype=torch.float64)
    matvec = lambda v: (mats @ v.reshape(3, 12, 1)).reshape(v.shape)  # noqa: E731
    x, info = cg(matvec, b, tol=1e-10, max_iter=100)
    ref = torch.linalg.solve(mats, b.reshape(3, 12)).reshape(b.shape)
    assert torch.allclose(x, ref, atol=1e-8)
    assert info.converged.all() and (info.residual <= 1e-10).all()
    assert len(set(info.iterations.tolist())) > 1  # each image stopped on its own
    true_res = bdot(b - matvec(x), b - matvec(x)).sqrt() / bdot(b, b).sqrt()
    assert (true_res < 1e-8).all()


def test_cg_cap_zero_rhs_and_warm_start():
    g = torch.Generator().manual_seed(1)
    mat = _spd(16, 4, g)
    b = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    b[1] = 0
    matvec = lambda v: (v.reshape(2, 16) @ mat).reshape(v.shape)  # noqa: E731
    x, info = cg(matvec, b, tol=1e-12, max_iter=3)
    assert info.iterations.tolist() == [3, 0] and info.converged.tolist() == [False, True]
    assert info.residual[0] > 1e-12 and torch.equal(x[1], torch.zeros_like(x[1]))
    x2, info2 = cg(matvec, b, x0=x, tol=1e-12, max_iter=100)  # resumes from x
    assert info2.converged.all()
    assert "converged" in info.summary()


def test_cg_image_alone_equals_image_in_batch():
    """Per-image kernels too: image 2's iterates never see its batch-mates."""
    op = make_preset("motion_deblur", 16, index=[0, 1, 2, 3], dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    b = torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64)
    x, info = cg(lambda v: v + 50 * op.AtA(v), b, tol=1e-8, max_iter=200)
    one = make_preset("motion_deblur", 16, index=[2], dtype=torch.float64)
    x2, info2 = cg(lambda v: v + 50 * one.AtA(v), b[2:3], tol=1e-8, max_iter=200)
    assert torch.equal(x[2:3], x2) and info.iterations[2] == info2.iterations[0]


def _operators():
    ops = {name: make_preset(name, 32, index=[0, 1], dtype=torch.float64) for name in
           ("sr4", "box_inpaint", "random_inpaint", "gaussian_deblur", "motion_deblur", "denoise")}
    ops["blur_circular"] = Blur(gaussian_kernel(9, 2.0), "circular", GaussianNoise(0.025)).double()
    ops["sr2_avgpool"] = SuperResolution(2, "avgpool", GaussianNoise(0.025)).double()
    ops["identity_noiseless"] = Identity().double()
    return ops


@pytest.mark.parametrize("name", list(_operators()))
def test_cg_converges_on_every_operator(name):
    """The two systems the solvers solve: CA-DPS's r² I + A S A^T (measurement space) and C-DPS's
    I + (s²/r²) A^T A (image space), at a mid-trajectory noise level."""
    op = _operators()[name]
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    y = op.A(x)
    S = 0.05 + 0.5 * torch.rand(x.shape, generator=g, dtype=torch.float64)
    r2 = 0.05**2
    _, info_ca = cg(lambda v: r2 * v + op.A(S * op.A_adjoint(v)), y, tol=1e-6, max_iter=300)
    _, info_c = cg(lambda v: v + 100.0 * op.AtA(v), x, tol=1e-6, max_iter=300)
    print(f"{name}: CA-DPS system {info_ca.summary()}; C-DPS system {info_c.summary()}")
    assert info_ca.converged.all() and info_c.converged.all()
