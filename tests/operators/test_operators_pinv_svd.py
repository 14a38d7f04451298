"""Pseudo-inverse `A_dagger` on every operator (closed forms and the generic CG fallback) and the
closed-form SVD A = U Σ V^T (inpainting, identity, super-resolution, circular blur) that DDRM and
DDNM use; operators without one refuse in one line naming those that work."""

import copy

import pytest
import torch

from inversa.errors import UserError
from inversa.operators import Blur, Identity, Inpainting, SuperResolution, gaussian_kernel, motion_kernel, random_mask


# Operators whose SVD is in closed form (the others refuse).
SVD_NAMES = ("identity", "inpaint", "sr_", "blur_circular", "preset_sr4", "preset_box", "preset_random", "preset_denoise")
# Closed-form pseudo-inverses are exact to rounding; CG on the normal equations converges to the
# minimum-norm solution, less tightly where A^T A is ill-conditioned (large kernels on tiny images).
PINV_TOL = {torch.float64: 1e-8, torch.float32: 2e-3}
PINV_TOL_CG = {torch.float64: 5e-3, torch.float32: 2e-2}  # 200 CG iterations (the default); measured worst 1.5e-3 / 6e-3


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30))


def _tol(case):
    return (PINV_TOL if case.op.has_svd else PINV_TOL_CG)[case.dtype]


def test_pinv_inverts_on_the_range_of_A_adjoint(case):
    """r in range(A^T): A^† A r = r (A^† A is the projection onto range(A^T))."""
    r = case.op.A_adjoint(case.y(seed=5))
    back = case.op.A_dagger(case.op.A(r))
    assert back.shape == case.x_shape and back.dtype == case.dtype
    assert _rel(back, r) < _tol(case), _rel(back, r)


def test_A_pinv_A_is_A(case):
    x = case.x(seed=6) - 0.5
    ax = case.op.A(x)
    assert _rel(case.op.A(case.op.A_dagger(ax)), ax) < _tol(case)


def test_pinv_is_minimum_norm(case):
    """A^† y has no component in the null space of A: it lies in range(A^T) (A^† A A^† y = A^† y).
    Closed forms only: CG iterates lie in the Krylov space of A^T y, so in range(A^T) by construction,
    but for an arbitrary y on an ill-conditioned blur A^† y is dominated by 1/s amplification that
    200 CG iterations do not resolve."""
    if not case.op.has_svd:
        pytest.skip("CG fallback: in range(A^T) by construction")
    p = case.op.A_dagger(case.y(seed=7))
    assert _rel(case.op.A_dagger(case.op.A(p)), p) < _tol(case)


def test_pinv_batch_invariant(batched_case):
    case = batched_case
    y = case.y(seed=8)
    full = case.op.A_dagger(y)
    op_1 = copy.deepcopy(case.op)
    for name, buf in case.op.named_buffers():
        if buf.ndim == 4 and buf.shape[0] == case.x_shape[0] > 1:  # per-image mask/kernel: keep image 1's
            setattr(op_1, name, buf[1:2].clone())
    assert torch.equal(op_1.A_dagger(y[1:2]), full[1:2])


def test_svd_reproduces_A(case):
    op = case.op
    assert op.has_svd == case.name.startswith(SVD_NAMES), case.name
    if not op.has_svd:
        with pytest.raises(UserError) as err:
            op.check_svd("DDRM")
        msg = str(err.value)
        assert "\n" not in msg and "inpainting" in msg and "circular" in msg
        with pytest.raises(UserError):
            op.singulars(case.x())
        return
    tol = 1e-12 if case.dtype == torch.float64 else 2e-5
    x = case.x(seed=9) - 0.5
    s = op.singulars(x)
    z = op.V_T(x)
    assert z.shape == x.shape and (s >= 0).all()
    assert _rel(op.U(s * z), op.A(x)) < tol  # A = U Σ V^T
    y = case.y(seed=10)
    assert _rel(op.V(s * op.U_T(y)), op.A_adjoint(y)) < tol  # A^T = V Σ U^T
    # V orthogonal: V V^T = V^T V = I, norms kept
    assert _rel(op.V(z), x) < tol and _rel(op.V_T(op.V(x)), x) < tol
    assert abs(float(z.double().norm() / x.double().norm()) - 1) < tol
    # U orthogonal on the coefficients it carries (s > 0): U^T U z = z, and U U^T = I on range(A)
    zs = torch.where(s > 0, z, torch.zeros_like(z))
    assert _rel(op.U_T(op.U(zs)), zs) < tol
    ay = op.A(x)
    assert _rel(op.U(op.U_T(ay)), ay) < tol
    assert abs(float(op.U(zs).double().norm() / zs.double().norm()) - 1) < tol
    # U_T puts nothing where s = 0
    assert (op.U_T(y)[(s == 0).expand_as(z)] == 0).all()


@pytest.mark.parametrize("size", [(1, 8, 8), (3, 16, 8), (1, 9, 7)])
def test_svd_dense_check(size):
    """Against torch.linalg.svd of the assembled matrices: same singular values (as a multiset)."""
    c, h, w = size
    ops = [Inpainting(random_mask((h, w), 0.4, generator=torch.Generator().manual_seed(0))),
           Blur(motion_kernel(5, 0.5, torch.Generator().manual_seed(3)), "circular"), Identity()]
    if h % 2 == 0 and w % 2 == 0:
        ops.append(SuperResolution(2))
    for op in ops:
        op = op.double()
        n = c * h * w
        eye = torch.eye(n, dtype=torch.float64).view(n, c, h, w)
        dense = op.A(eye).reshape(n, -1).T
        ref = torch.linalg.svdvals(dense)
        ours = op.singulars(eye[:1]).expand(1, c, h, w).flatten().sort(descending=True).values[:len(ref)]
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
        pinv = torch.linalg.pinv(dense)
        yb = torch.eye(dense.shape[0], dtype=torch.float64).view(-1, *op.output_shape((1, c, h, w))[1:])
        torch.testing.assert_close(op.A_dagger(yb).reshape(yb.shape[0], -1).T, pinv, rtol=0, atol=1e-10)


def test_circular_blur_pinv_drops_near_zero_frequencies():
    """A 2x2-box-like kernel has an exact spectral zero at the Nyquist frequency: the truncated
    pseudo-inverse returns 0 there (no division by ~0), and a large rcond drops more."""
    k = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])
    op = Blur(k, "circular").double()
    y = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = op.A_dagger(y)
    assert torch.isfinite(x).all() and float(x.norm()) < 10 * float(y.norm())
    assert float(op.A_dagger(y, rcond=0.9).norm()) < float(x.norm())


def test_generic_fallback_used_for_reflect_blur():
    op = Blur(gaussian_kernel(3, 1.0), "reflect").double()
    x = torch.rand(2, 1, 6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    n = 30
    dense = op.A(torch.eye(n, dtype=torch.float64).view(n, 1, 6, 5)).reshape(n, -1).T
    ref = (torch.linalg.pinv(dense) @ op.A(x).reshape(2, -1).T).T.reshape(x.shape)
    torch.testing.assert_close(op.A_dagger(op.A(x)), ref, rtol=0, atol=1e-8)
