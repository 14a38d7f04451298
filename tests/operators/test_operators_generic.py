"""Properties every operator and preset must have (the factory is in conftest.py)."""

import copy
import io

import numpy as np
import pytest
import torch

from operator_cases import SPECS, TOL, Case, build, fresh


def _dot(a, b):
    return float((a.double() * b.double()).sum())


def test_adjointness(case):
    x, y = case.x(), case.y()
    ax, aty = case.op.A(x), case.op.A_adjoint(y)
    assert ax.shape == case.y_shape and aty.shape == case.x_shape
    assert ax.dtype == aty.dtype == case.dtype
    err = abs(_dot(ax, y) - _dot(x, aty)) / (float(ax.double().norm()) * float(y.double().norm()))
    assert err < TOL[case.dtype], err


def _vjp(f, x, v):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x), x, v)
    return g


def test_adjoint_is_autograd_vjp(case):
    x, y = case.x(), case.y()
    tol = TOL[case.dtype] * 10
    torch.testing.assert_close(case.op.A_adjoint(y), _vjp(case.op.A, x, y), rtol=tol, atol=tol)
    # and the adjoint of the adjoint is A again
    torch.testing.assert_close(case.op.A(x), _vjp(case.op.A_adjoint, y, x), rtol=tol, atol=tol)


def test_shapes_and_naive_inverse(case):
    assert tuple(case.op.input_shape(case.y_shape)) == case.x_shape
    y = case.op.measure(case.x(), [torch.Generator().manual_seed(i) for i in range(case.x_shape[0])])
    assert y.shape == case.y_shape and y.dtype == case.dtype
    x0 = case.op.naive_inverse(y)
    assert x0.shape == case.x_shape and x0.dtype == case.dtype
    assert torch.isfinite(x0).all() and x0.min() >= 0 and x0.max() <= 1
    g = case.op.gram_diagonal()
    if g is not None:  # A^T A is diagonal: check it is this diagonal
        x = case.x()
        torch.testing.assert_close(case.op.AtA(x), g.to(x.dtype) * x)


@pytest.mark.parametrize("c", [0.3, 1e4])
def test_gram_solve(case, c):
    """Where an operator offers a closed-form (I + c A^T A)^{-1}, it is that inverse; the operators
    the solvers rely on for speed must offer one."""
    b = case.x(seed=3) - 0.5
    w = case.op.gram_solve(b, c)
    closed = case.name.startswith(("identity", "inpaint", "sr_", "blur_circular", "preset_sr4", "preset_box", "preset_denoise",
                                   "preset_random"))
    assert (w is not None) == closed, case.name
    if w is not None:
        assert w.shape == b.shape and w.dtype == case.dtype
        gw = c * case.op.AtA(w).double()
        res = (w.double() + gw - b.double()).norm() / (b.double().norm() + gw.norm())  # backward error
        assert res < TOL[case.dtype] * 10, float(res)


def test_differentiable(case):
    x = case.x().requires_grad_(True)
    (case.op.A(x) ** 2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    x.grad = None
    case.op.measure(x, torch.Generator().manual_seed(0)).sum().backward()
    assert torch.isfinite(x.grad).all()


def _gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_measure_seeded(case):
    x, seeds = case.x(), [11, 12, 13][:case.x_shape[0]]
    y1 = case.op.measure(x, _gens(seeds))
    assert torch.equal(y1, case.op.measure(x, _gens(seeds)))
    assert not torch.equal(y1, case.op.measure(x, _gens([s + 100 for s in seeds])))
    assert not torch.equal(y1, case.op.A(x))  # noise was added


def test_measure_batch_invariant(batched_case):
    """Image i measured alone (its own mask/kernel, its own generator) == row i of the batch, bit
    for bit (solvers promise batch invariance and rely on it)."""
    case = batched_case
    b = case.x_shape[0]
    x, seeds = case.x(), [21, 22, 23]
    y = case.op.measure(x, _gens(seeds))
    for i in range(b):
        op_i = copy.deepcopy(case.op)
        for name, buf in case.op.named_buffers():
            if buf.ndim == 4 and buf.shape[0] == b > 1:  # per-image parameter: keep image i's
                setattr(op_i, name, buf[i:i + 1].clone())
        assert torch.equal(op_i.measure(x[i:i + 1], _gens([seeds[i]])), y[i:i + 1])
        v = case.y()
        assert torch.equal(op_i.A_adjoint(v[i:i + 1]), case.op.A_adjoint(v)[i:i + 1])


@pytest.mark.parametrize("name", list(SPECS))
def test_state_dict_round_trip(name):
    case = Case(name, SPECS[name][1][-1], 3, torch.float64)
    buf = io.BytesIO()
    torch.save(case.op.state_dict(), buf)
    buf.seek(0)
    other = fresh(case.name, case.x_shape[1:], case.x_shape[0], case.dtype)
    with torch.no_grad():  # scramble, then restore from the saved state
        for b in other.buffers():
            b.mul_(0.5)
    other.load_state_dict(torch.load(buf))
    x = case.x()
    assert torch.equal(other.A(x), case.op.A(x))


def _power_norm(op, shape, dtype, iters=150):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    for _ in range(iters):
        x = op.AtA(x)
        x = x / x.norm()
    return float(_dot(x, op.AtA(x))) ** 0.5


# Known operator norms (single channel; "dense" = largest singular value of the assembled matrix).
KNOWN_NORM = {"identity": 1.0, "inpaint_box": 1.0, "inpaint_random": 1.0, "inpaint_extreme": 1.0,
              "inpaint_half": 1.0, "inpaint_freeform": 1.0, "inpaint_per_image": 1.0,
              "blur_circular": 1.0, "blur_symmetric": 1.0,  # symmetric kernel + half-sample boundary
              "preset_box_inpaint": 1.0, "preset_random_inpaint": 1.0, "preset_denoise": 1.0,
              "sr_avgpool_x2": 1 / 2, "sr_avgpool_x3": 1 / 3,
              # bicubic rows sum to 1 and the cubic's response peaks at DC: ||A|| = 1 / factor
              "sr_bicubic_x2": 1 / 2, "sr_bicubic_x3": 1 / 3, "preset_sr4": 1 / 4}


@pytest.mark.parametrize("name", list(SPECS))
def test_operator_norm(name):
    """Power iteration on A^T A agrees with the dense matrix's spectral norm and the known values."""
    size = SPECS[name][1][0]
    shape = (1, 1, *size[1:])
    op = build(name, size, 1, torch.float64)
    n = int(np.prod(shape))
    dense = op.A(torch.eye(n, dtype=torch.float64).view(n, *shape[1:])).reshape(n, -1).T
    exact = float(torch.linalg.matrix_norm(dense, 2))
    est = _power_norm(op, shape, torch.float64)
    assert est <= exact * (1 + 1e-9) and est == pytest.approx(exact, rel=5e-3)  # clustered spectra converge slowly
    if name in KNOWN_NORM:
        assert exact == pytest.approx(KNOWN_NORM[name], abs=1e-12)
    elif "reflect" in name or name in ("preset_gaussian_deblur", "preset_motion_deblur", "blur_rect_kernel",
                                       "blur_per_image", "blur_kernel_larger_than_image"):
        # torch/DPS "reflect" counts border pixels twice: ||A|| >= 1 (constant images pass unchanged), a little above
        assert 1 - 1e-12 <= exact < 1.2
    elif name == "blur_valid":
        assert exact <= 1 + 1e-12


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    """Same results on the GPU, with CPU generators (noise is drawn on the generator's device)."""
    for name, (_, sizes) in SPECS.items():
        cpu = fresh(name, sizes[0], 3, torch.float64)
        gpu = fresh(name, sizes[0], 3, torch.float64).to("cuda")
        x = torch.rand(3, *sizes[0], dtype=torch.float64)
        y_cpu = cpu.measure(x, _gens([1, 2, 3]))
        y_gpu = gpu.measure(x.cuda(), _gens([1, 2, 3]))
        assert y_gpu.device.type == "cuda", name
        torch.testing.assert_close(y_gpu.cpu(), y_cpu)
        torch.testing.assert_close(gpu.A_adjoint(y_gpu).cpu(), cpu.A_adjoint(y_cpu))
        assert gpu.naive_inverse(y_gpu).device.type == "cuda", name
