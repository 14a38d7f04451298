"""Noise models and seeding; inpainting masks, noise restriction and the fill baseline."""

import numpy as np
import pytest
import torch

from inversa.errors import UserError
from inversa.operators import (GaussianNoise, Identity, Inpainting, PoissonNoise, as_generators, box_mask,
                               extreme_mask, half_mask, load_mask, random_mask)


def _gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


# --- noise ------------------------------------------------------------------------------------
def test_gaussian_sigma_scales():
    a, b = GaussianNoise(0.025), GaussianNoise(sigma_pm1=0.05)
    assert a.sigma == b.sigma == 0.025
    assert a.metadata() == b.metadata() == {"noise": "gaussian", "sigma": 0.025, "sigma_pm1": 0.05}
    assert Identity(b).sigma == 0.025 and Identity().sigma == 0.0


@pytest.mark.parametrize("kwargs", [{}, {"sigma": 0.1, "sigma_pm1": 0.2}, {"sigma": -0.1}, {"sigma_pm1": -1},
                                    {"sigma": float("nan")}, {"sigma": float("inf")}, {"sigma": "a"}])
def test_gaussian_rejects(kwargs):
    with pytest.raises(UserError):
        GaussianNoise(**kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_noise_statistics_dtype_and_seed(dtype):
    y = torch.full((2, 3, 64, 64), 0.5, dtype=dtype)
    noise = GaussianNoise(0.1)
    n1 = noise(y, _gens(1, 2))
    assert n1.dtype == dtype and n1.device == y.device and n1.shape == y.shape
    assert (n1 - y).std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(n1, noise(y, _gens(1, 2)))
    assert torch.equal(n1[1], noise(y[1:], _gens(2))[0])  # image 1's noise ignores image 0
    assert torch.equal(GaussianNoise(0.0)(y, _gens(1, 2)), y)


def test_shared_generator_draws_sequentially():
    y = torch.zeros(3, 1, 4, 4)
    g = torch.Generator().manual_seed(5)
    expected = torch.stack([torch.randn(1, 4, 4, generator=g) for _ in range(3)]) * 0.2
    assert torch.equal(GaussianNoise(0.2)(y, as_generators(torch.Generator().manual_seed(5), 3)), expected)


def test_poisson_noise():
    y = torch.full((1, 1, 128, 128), 0.4, dtype=torch.float64)
    p = PoissonNoise(50.0)
    z = p(y, _gens(3))
    assert z.dtype == y.dtype and torch.equal(z, p(y, _gens(3)))
    assert z.mean().item() == pytest.approx(0.4, rel=0.02)
    assert z.var().item() == pytest.approx(0.4 / 50, rel=0.05)
    torch.testing.assert_close(z * 50, (z * 50).round(), rtol=0, atol=1e-9)  # counts / gain
    assert p.metadata()["gain"] == 50.0 and p.sigma == 0
    for bad in (0, -1, float("nan"), "x"):
        with pytest.raises(UserError):
            PoissonNoise(bad)


def test_as_generators():
    g = torch.Generator()
    assert as_generators(None, 3) is None
    assert as_generators(g, 2) == [g, g]
    assert as_generators([g, g], 2) == [g, g]
    for bad in ([g], [g, 1], 3, "seed"):
        with pytest.raises(UserError):
            as_generators(bad, 2)


# --- inpainting -------------------------------------------------------------------------------
def test_no_noise_where_pixels_are_missing():
    m = random_mask((16, 12), 0.6, generator=torch.Generator().manual_seed(0))
    op = Inpainting(m, GaussianNoise(0.5))
    y = op.measure(torch.rand(2, 3, 16, 12), _gens(1, 2))
    missing = (m == 0).expand_as(y)
    assert (y[missing] == 0).all() and (y[~missing] != 0).all()
    assert torch.equal(op.gram_diagonal(), m[None, None])


def test_box_mask():
    m = box_mask((32, 24), (8, 6), (3, 4))
    assert (m == 0).sum() == 48 and (m[3:11, 4:10] == 0).all()
    for seed in range(20):
        m = box_mask(32, 10, margin=5, generator=torch.Generator().manual_seed(seed))
        rows, cols = torch.nonzero(m == 0, as_tuple=True)
        assert len(rows) == 100 and rows.min() >= 5 and rows.max() <= 26 and cols.min() >= 5 and cols.max() <= 26
    a, b = (box_mask(64, 16, margin=4, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    assert torch.equal(a, box_mask(64, 16, margin=4, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(a, b)
    with pytest.raises(UserError, match="does not fit"):
        box_mask(16, 10, margin=4)
    with pytest.raises(UserError, match="does not fit"):
        box_mask(16, 8, (10, 0))


def test_random_extreme_half_masks():
    m = random_mask((20, 10), 0.7, generator=torch.Generator().manual_seed(0))
    assert int((m == 0).sum()) == 140
    e = extreme_mask((16, 8))
    assert int(e.sum()) == 32 and (e[4:12, 2:6] == 1).all()
    assert (half_mask((4, 6), "left")[:, :3] == 0).all() and (half_mask((4, 6), "left")[:, 3:] == 1).all()
    assert (half_mask((4, 6), "bottom")[2:] == 0).all() and half_mask((4, 6), "top").sum() == 12
    assert (half_mask((4, 6), "right")[:, 3:] == 0).all()
    with pytest.raises(UserError, match="accepted"):
        half_mask(8, "middle")


def test_load_mask(tmp_path):
    from PIL import Image

    img = np.zeros((8, 6), np.uint8)
    img[2:4, 1:3] = 255  # white = missing
    Image.fromarray(img).save(tmp_path / "m.png")
    Image.fromarray(np.stack([img] * 3, -1)).save(tmp_path / "rgb.png")
    np.save(tmp_path / "m.npy", img > 0)
    expected = torch.from_numpy((img == 0).astype(np.float32))
    for src in (tmp_path / "m.png", tmp_path / "rgb.png", tmp_path / "m.npy", img, img / 255.0, img > 0):
        assert torch.equal(load_mask(src), expected)
    assert load_mask(tmp_path / "m.png", (16, 12)).shape == (16, 12)
    with pytest.raises(UserError, match="does not exist"):
        load_mask(tmp_path / "nope.png")


def test_naive_inverse_fill():
    m = box_mask((16, 16), 8, (4, 4))
    op = Inpainting(m)
    const = torch.full((1, 3, 16, 16), 0.3, dtype=torch.float64)
    torch.testing.assert_close(op.naive_inverse(op.A(const)), const)  # fills a constant exactly
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    x0 = op.naive_inverse(op.A(x))
    assert torch.equal(x0 * m, x * m)  # observed pixels unchanged
    assert torch.equal(Inpainting(torch.zeros(4, 4)).naive_inverse(torch.zeros(1, 1, 4, 4)),
                       torch.full((1, 1, 4, 4), 0.5))


def test_mask_validation():
    for bad in (torch.ones(3, 4, 4), torch.ones(1, 3, 4, 4), torch.full((4, 4), 0.5)):
        with pytest.raises(UserError, match="mask"):
            Inpainting(bad)
    op = Inpainting(torch.ones(2, 1, 8, 8))
    with pytest.raises(UserError, match="8x8"):
        op.measure(torch.rand(2, 3, 8, 6))
    with pytest.raises(UserError, match="per-image masks"):
        op.A(torch.rand(3, 3, 8, 8))
