"""Super-resolution against MATLAB-style references; blur against the benchmark's padded conv; kernels."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inversa.errors import UserError
from inversa.operators import Blur, SuperResolution, gaussian_kernel, load_kernel, motion_kernel
from operator_cases import shared_or_skip


# --- super-resolution -----------------------------------------------------------------------
def _test_image():
    """A deterministic 2x16x12 image with high frequencies (so antialiasing matters)."""
    c, i, j = np.meshgrid(np.arange(2), np.arange(16), np.arange(12), indexing="ij")
    return ((i * 7 + j * 3 + c * 5) % 16) / 15.0 * 0.7 + 0.3 * np.sin(i / 3.0 + j / 5.0 + c) ** 2


def _cubic(t):  # Keys, a = -0.5 (MATLAB imresize's "bicubic")
    t = abs(t)
    return 1.5 * t**3 - 2.5 * t**2 + 1 if t <= 1 else (-0.5 * t**3 + 2.5 * t**2 - 4 * t + 2 if t < 2 else 0.0)


def _matlab_down_1d(v, f):
    """MATLAB imresize(v, 1/f, 'bicubic') with antialiasing, written as a plain loop: output pixel o
    sits at input coordinate (o + 0.5) f - 0.5; its weights are cubic(d / f), normalised; indices
    outside the signal mirror as [1:n, n:-1:1] (edge repeated)."""
    n, out = len(v), []
    for o in range(n // f):
        c = (o + 0.5) * f - 0.5
        acc = wsum = 0.0
        for t in range(math.floor(c - 2 * f) - 1, math.ceil(c + 2 * f) + 2):
            w = _cubic((c - t) / f)
            m = t % (2 * n)
            acc += w * v[m if m < n else 2 * n - 1 - m]
            wsum += w
        out.append(acc / wsum)
    return np.array(out)


def _matlab_down(x, f):  # x: (C, H, W); rows, then columns
    r = np.stack([np.stack([_matlab_down_1d(row, f) for row in ch]) for ch in x])
    return np.stack([np.stack([_matlab_down_1d(col, f) for col in ch.T]).T for ch in r])


# imresize(x, 1/4) of `_test_image()`, from `_matlab_down` above; the `resize-right` package
# (MATLAB-compatible; cubic, antialiasing=True, pad_mode="symmetric") gives the same values to 1e-15.
SR4_REFERENCE = np.array([
    [[0.47723472, 0.60128218, 0.50833737],
     [0.54356889, 0.41638411, 0.46811175],
     [0.43276604, 0.55956197, 0.56557405],
     [0.61251859, 0.47529694, 0.38756447]],
    [[0.60462083, 0.45830769, 0.40076208],
     [0.41189672, 0.50049300, 0.58481919],
     [0.57971251, 0.54031269, 0.41217177],
     [0.42640159, 0.41671840, 0.58654443]]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sr4_matches_matlab_reference(dtype):
    y = SuperResolution(4).A(torch.tensor(_test_image(), dtype=dtype)[None])[0]
    np.testing.assert_allclose(y.double().numpy(), SR4_REFERENCE, atol=1e-4 if dtype == torch.float32 else 1e-8)
    np.testing.assert_allclose(SR4_REFERENCE, _matlab_down(_test_image(), 4), atol=1e-8)  # the note above


@pytest.mark.parametrize("factor", [2, 3, 5])
def test_sr_matches_loop_reference(factor):
    x = np.random.default_rng(factor).random((2, 6 * factor, 4 * factor))
    y = SuperResolution(factor).A(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(y, _matlab_down(x, factor), atol=1e-12)


def test_avgpool_and_naive_inverse():
    x = torch.rand(2, 3, 12, 18, dtype=torch.float64)
    op = SuperResolution(3, "avgpool")
    torch.testing.assert_close(op.A(x), F.avg_pool2d(x, 3))
    assert op.output_shape(x.shape) == (2, 3, 4, 6) and op.input_shape((2, 3, 4, 6)) == (2, 3, 12, 18)
    up = SuperResolution(4).naive_inverse(torch.rand(1, 3, 4, 5))
    assert up.shape == (1, 3, 16, 20) and 0 <= up.min() and up.max() <= 1
    assert SuperResolution(4).A(torch.ones(1, 1, 8, 8)).allclose(torch.ones(1, 1, 2, 2))  # rows sum to 1


# --- blur -------------------------------------------------------------------------------------
def test_gaussian_kernel_matches_dps_scipy():
    """DPS builds its Gaussian kernel as scipy.ndimage.gaussian_filter of a centred impulse."""
    from scipy.ndimage import gaussian_filter

    impulse = np.zeros((61, 61))
    impulse[30, 30] = 1
    np.testing.assert_allclose(gaussian_kernel(61, 3.0).numpy(), gaussian_filter(impulse, sigma=3.0), atol=1e-15)
    k = gaussian_kernel(7, 0.0)
    assert k[3, 3] == 1 and k.sum() == 1


@pytest.mark.parametrize("padding", ["reflect", "circular", "valid"])
def test_blur_matches_padded_conv(padding):
    """reflect == the benchmark's F.pad(mode='reflect') + conv2d; circular and valid likewise."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 17, generator=g, dtype=torch.float64)
    k = torch.rand(5, 9, generator=g, dtype=torch.float64)
    k = k / k.sum()
    xp = x if padding == "valid" else F.pad(x, (4, 4, 2, 2), mode=padding)
    ref = F.conv2d(xp, k[None, None].expand(3, 1, 5, 9), groups=3)
    torch.testing.assert_close(Blur(k, padding).A(x), ref, rtol=0, atol=1e-13)


def test_blur_per_image_kernels():
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    ks = torch.stack([motion_kernel(9, 0.5, torch.Generator().manual_seed(s)) for s in (1, 2)])[:, None]
    y = Blur(ks).A(x)
    for i in range(2):
        torch.testing.assert_close(y[i:i + 1], Blur(ks[i, 0]).A(x[i:i + 1]))


def test_blur_keeps_constants_and_naive_inverse():
    op = Blur(gaussian_kernel(61, 3.0))
    assert torch.allclose(op.A(torch.full((1, 3, 8, 12), 0.3, dtype=torch.float64)), torch.tensor(0.3, dtype=torch.float64))
    y = torch.rand(1, 3, 8, 12)
    assert torch.equal(op.naive_inverse(y), y)
    valid = Blur(gaussian_kernel(5, 1.0), "valid")
    assert valid.naive_inverse(torch.rand(1, 3, 4, 8)).shape == (1, 3, 8, 12)


# --- motion kernels -------------------------------------------------------------------------
@pytest.mark.parametrize("size,intensity", [(61, 0.5), (15, 0.0), (15, 1.0), (1, 0.5)])
def test_motion_kernel_properties(size, intensity):
    def draw(seed):
        return motion_kernel(size, intensity, torch.Generator().manual_seed(seed))

    k = draw(0)
    assert k.shape == (size, size) and k.dtype == torch.float64
    assert (k >= 0).all() and k.sum().item() == pytest.approx(1, abs=1e-12)
    assert torch.equal(k, draw(0))
    if size > 1:
        assert not torch.equal(k, draw(1))


def test_motion_kernel_is_a_trajectory():
    """Benchmark kernels are thin curves: spread out (not a dot), yet covering a small area."""
    for seed in range(5):
        k = motion_kernel(61, 0.5, torch.Generator().manual_seed(seed))
        support = int((k > 0.01 * k.max()).sum())
        assert 20 < support < 61 * 61 / 4


# --- loading kernels ------------------------------------------------------------------------
def test_load_kernel_formats(tmp_path):
    from PIL import Image

    k = np.zeros((5, 7))
    k[2, 1:6] = 1
    np.save(tmp_path / "k.npy", k)
    np.savez(tmp_path / "k.npz", first=k, other=np.ones((3, 3)))
    Image.fromarray((k * 255).astype(np.uint8)).save(tmp_path / "k.png")
    expected = torch.from_numpy(k / k.sum())
    for source in (k, torch.from_numpy(k), tmp_path / "k.npy", str(tmp_path / "k.npz"), tmp_path / "k.png"):
        torch.testing.assert_close(load_kernel(source), expected)
    torch.testing.assert_close(load_kernel(tmp_path / "k.npz", key="other"), torch.full((3, 3), 1 / 9, dtype=torch.float64))
    for bad, match in ((np.ones((4, 5)), "odd"), (-np.eye(3), "negative"), (np.zeros((3, 3)), "sums to 0"),
                       (tmp_path / "missing.npy", "does not exist"), (np.ones((2, 3, 3)), "2-D")):
        with pytest.raises(UserError, match=match):
            load_kernel(bad)
    with pytest.raises(UserError, match="no array"):
        load_kernel(tmp_path / "k.npz", key="nope")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "k.txt").write_text("1")
    with pytest.raises(UserError, match="not readable"):
        load_kernel(tmp_path / "broken.png")
    with pytest.raises(UserError, match="accepted formats"):
        load_kernel(tmp_path / "k.txt")


@pytest.mark.parametrize("archive", ["Levin09.npz", "kernels_12.npz"])
def test_load_shared_kernels(archive):
    path = shared_or_skip("data", "blur-kernels", archive)
    with np.load(path) as z:
        keys = z.files
    for key in keys:
        k = load_kernel(path, key=key)
        assert k.shape[0] % 2 == 1 and (k >= 0).all() and k.sum().item() == pytest.approx(1)
        x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
        y = torch.randn(1, 3, 32, 32, dtype=torch.float64)
        op = Blur(k)
        err = abs((op.A(x) * y).sum() - (x * op.A_adjoint(y)).sum()) / (op.A(x).norm() * y.norm())
        assert err < 1e-12
