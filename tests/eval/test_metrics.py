"""PSNR/SSIM known values, LPIPS against the authors' calibration values, FID/KID path and its failure line."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inversa.eval import metrics as M

SHARED = Path(__file__).resolve().parents[3] / "shared"
LPIPS_DIR = SHARED / "weights" / "lpips"
CALIB = SHARED / "data" / "lpips-calibration"


def test_psnr_known_values():
    ref = torch.zeros(3, 1, 8, 8)
    x = ref + torch.tensor([0.1, 0.01, 0.5]).view(3, 1, 1, 1)
    assert M.psnr(x, ref).tolist() == pytest.approx([20.0, 40.0, 10 * math.log10(4)], abs=1e-4)


def test_psnr_clamps_to_unit_range():
    ref = torch.full((1, 3, 8, 8), 1.0)
    assert math.isinf(float(M.psnr(ref + 0.5, ref)[0]))  # 1.5 clamps to 1: identical


def test_ssim_known_values_and_batch_independence():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 24, 24, generator=g)
    assert M.ssim(ref, ref).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    # constant images: SSIM reduces to the luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    a, b, c1 = 0.2, 0.6, 0.01**2
    got = M.ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b))
    assert float(got[0]) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=2e-4)  # float32 variances
    x = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    both = M.ssim(x, ref)
    assert float(both[1]) == pytest.approx(float(M.ssim(x[1:], ref[1:])[0]), abs=1e-6)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape mismatch"):
        M.psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def _load(name):
    arr = np.array(Image.open(CALIB / name).convert("RGB"))
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255


@pytest.mark.skipif(not (LPIPS_DIR.is_dir() and CALIB.is_dir()), reason="../shared (LPIPS weights and calibration patches) is absent")
@pytest.mark.parametrize("net,expected", [("alex", (0.721881, 0.137566)), ("vgg", (0.568613, 0.421664))])
def test_lpips_matches_reference_values(net, expected, monkeypatch):
    monkeypatch.setenv(M.LPIPS_ENV, str(LPIPS_DIR))  # the environment-variable route
    ref = _load("ex_ref.png")
    got = M.lpips(torch.cat([_load("ex_p0.png"), _load("ex_p1.png")]), torch.cat([ref, ref]), net=net)
    assert got.tolist() == pytest.approx(list(expected), abs=1e-4)
    assert M.load_lpips(net).source.endswith(".pt")
    assert M.load_lpips(net) is M.load_lpips(net, LPIPS_DIR / M.resolve_lpips_weights(net).name)  # cached


def test_lpips_unavailable_is_one_clear_line(tmp_path):
    with pytest.raises(M.MetricUnavailable, match=r"^LPIPS unavailable: weights path .* does not exist$"):
        M.lpips(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), weights=tmp_path / "nope")
    with pytest.raises(M.MetricUnavailable, match="^LPIPS unavailable: no vgg weights"):
        M.load_lpips("vgg", tmp_path)
    (tmp_path / "alexnet.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(M.MetricUnavailable, match="^LPIPS unavailable: cannot read"):
        M.load_lpips("alex", tmp_path)


def test_lpips_loads_a_torchvision_layout_checkpoint(tmp_path):
    import torchvision

    # random weights under torchvision's Sequential indices 0, 3, 6, 8, 10 (no lin heads)
    tv = {f"features.{k}": v for k, v in torchvision.models.alexnet().features.state_dict().items()}
    torch.save(tv, tmp_path / "alexnet-owt.pth")
    model = M.load_lpips("alex", tmp_path)
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert torch.equal(convs[2].weight, tv["features.6.weight"])
    assert torch.equal(convs[4].bias, tv["features.10.bias"])
    assert model.source == str(tmp_path / "alexnet-owt.pth")


class _TinyFeatures(torch.nn.Module):
    """A stand-in for Inception: colour statistics on a 2x2 grid (12 features)."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


def test_fid_kid_with_a_custom_feature_network():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(16, 3, 32, 32, generator=g)
    same = M.set_metrics(real, real, feature=_TinyFeatures())
    assert same["fid"] == pytest.approx(0.0, abs=1e-3) and abs(same["kid_mean"]) < 1e-3
    far = M.set_metrics([real[:8], real[8:]], real * 0.3, feature=_TinyFeatures())
    assert far["fid"] > 1.0 and far["kid_mean"] > 1e-3
    assert far["n_real"] == far["n_fake"] == 16 and far["feature"] == "custom _TinyFeatures"
    assert M.set_metrics(real, real * 0.3, feature=_TinyFeatures()) == far  # deterministic KID subsets


def test_fid_unavailable_is_reported_not_raised_elsewhere():
    with pytest.raises(M.MetricUnavailable, match="^FID unavailable: needs at least 2"):
        M.set_metrics(torch.rand(1, 3, 8, 8), torch.rand(3, 3, 8, 8), feature=_TinyFeatures())

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom\nsecond line")

    with pytest.raises(M.MetricUnavailable) as info:
        M.set_metrics(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), feature=Broken())
    assert str(info.value).startswith("FID unavailable:") and "\n" not in str(info.value)


def test_fid_default_inception_fails_gracefully_offline(monkeypatch):
    # with no network (or no torch-fidelity) the Inception path must end in one line, not a crash
    try:
        out = M.set_metrics(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    except M.MetricUnavailable as exc:
        assert str(exc).startswith("FID unavailable: ") and "\n" not in str(exc)
    else:  # a machine with torch-fidelity and cached weights
        assert out["fid"] >= 0
