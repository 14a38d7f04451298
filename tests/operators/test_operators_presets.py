"""Benchmark presets: settings, per-image reproducibility from (seed, index)."""

import pytest
import torch
import torch.nn.functional as F

from inversa.errors import UserError
from inversa.operators import PRESETS, Blur, Identity, Inpainting, SuperResolution, make_preset


def _param(op):
    return op.mask if isinstance(op, Inpainting) else op.kernel


def test_all_presets_build_and_measure():
    kinds = {"sr4": SuperResolution, "box_inpaint": Inpainting, "random_inpaint": Inpainting,
             "gaussian_deblur": Blur, "motion_deblur": Blur, "denoise": Identity}
    assert set(PRESETS) == set(kinds)
    x = torch.rand(1, 3, 64, 64)
    for name in PRESETS:
        op = make_preset(name, 64)
        assert isinstance(op, kinds[name])
        meta = op.metadata()
        assert meta["preset"] == name and meta["sigma"] == 0.025 and meta["sigma_pm1"] == 0.05
        y = op.measure(x, torch.Generator().manual_seed(0))
        assert y.shape == op.output_shape(x.shape)


def test_unknown_preset_lists_names():
    with pytest.raises(UserError, match="sr4, box_inpaint, random_inpaint, gaussian_deblur, motion_deblur, denoise"):
        make_preset("sr8")


def test_benchmark_settings():
    box = make_preset("box_inpaint", 256, index=3).mask[0, 0]
    rows, cols = torch.nonzero(box == 0, as_tuple=True)
    assert len(rows) == 128 * 128 and rows.min() >= 16 and rows.max() <= 255 - 16 and cols.min() >= 16
    rnd = make_preset("random_inpaint", 64).mask
    assert int((rnd == 0).sum()) == round(0.7 * 64 * 64)
    assert make_preset("sr4").factor == 4 and make_preset("sr4").kind == "bicubic"
    g = make_preset("gaussian_deblur", 64)
    assert g.kernel.shape[-2:] == (61, 61) and g.padding == "reflect"
    m = make_preset("motion_deblur", 64, index=5)
    assert m.kernel.shape == (1, 1, 61, 61) and m.padding == "reflect"
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)  # the benchmark's forward model, on 64x64
    ref = F.conv2d(F.pad(x, (30,) * 4, mode="reflect"), m.kernel.expand(3, 1, 61, 61), groups=3)
    torch.testing.assert_close(m.A(x), ref)


@pytest.mark.parametrize("name", ["box_inpaint", "random_inpaint", "motion_deblur"])
def test_reproducible_per_image(name):
    def param(**kw):
        return _param(make_preset(name, (24, 20), **kw))

    batch = param(index=[0, 1, 2], seed=4)
    assert batch.shape[0] == 3
    for i in range(3):  # image i's mask/kernel does not depend on its batch-mates
        assert torch.equal(param(index=i, seed=4)[0], batch[i])
    assert not torch.equal(batch[0], batch[1])
    assert len({param(index=0, seed=s).numpy().tobytes() for s in range(4, 8)}) > 1  # the seed matters


def test_sigma_device_dtype():
    op = make_preset("random_inpaint", 16, sigma=0.1, dtype=torch.float64, device="cpu")
    assert op.sigma == 0.1 and op.mask.dtype == torch.float64
    assert make_preset("denoise", sigma=0).sigma == 0
    for kwargs in ({"seed": -1}, {"index": -2}, {"index": []}, {"sigma": -0.1}, {"image_size": (0, 4)},
                   {"image_size": "big"}):
        with pytest.raises(UserError):
            make_preset("random_inpaint", **kwargs)
