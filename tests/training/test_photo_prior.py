"""`inversa train` on a handful of synthetic photos: the loss falls, the export loads, resume is exact."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from inversa.cli import main
from inversa.errors import UserError
from inversa.training.data import RandomCrops, load_photos, split_photos
from inversa.training.photo import train

TINY = dict(size=16, batch_size=8, lr=3e-3, channels=(8, 16), eval_every=10, eval_crops=16,
            sample_steps=5, num_threads=1, progress=False)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Smooth random colour fields: easy to denoise, so a few steps visibly lower the loss."""
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48] / 48
    for i in range(5):
        f = rng.uniform(0.5, 3, (3, 2))
        img = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (f[c, 0] * xx + f[c, 1] * yy)) for c in range(3)], -1)
        Image.fromarray((img * 255).astype(np.uint8)).save(d / f"p{i}.png")
    return d


def _losses(model_dir):
    rows = list(csv.DictReader(open(model_dir / "loss_log.csv")))
    return [float(r["train_loss"]) for r in rows], [float(r["held_out_loss"]) for r in rows if r["held_out_loss"]]


def test_loss_falls_and_export_loads(photo_dir, tmp_path):
    from diffusers import DDPMScheduler, UNet2DModel

    out = tmp_path / "m"
    summary = train(str(photo_dir), out, steps=40, checkpoint_every=40, **TINY)
    train_loss, held = _losses(out)
    assert np.mean(train_loss[-10:]) < 0.8 * np.mean(train_loss[:10])
    assert held[-1] < held[0] and summary["held_out_loss"] == pytest.approx(held[-1])
    unet = UNet2DModel.from_pretrained(out / "unet", torch_dtype=torch.float32)
    sched = DDPMScheduler.from_pretrained(out / "scheduler")
    assert sched.config.num_train_timesteps == 1000 and sched.config.prediction_type == "epsilon"
    # Purely convolutional: runs at a size other than the training crops.
    assert unet(torch.randn(1, 3, 40, 24), 500).sample.shape == (1, 3, 40, 24)
    for f in ("samples.png", "loss_curve.png", "train_config.json"):
        assert (out / f).exists()


def test_interrupt_then_rerun_matches_uninterrupted_run(photo_dir, tmp_path, monkeypatch):
    full, part = tmp_path / "full", tmp_path / "part"
    train(str(photo_dir), full, steps=10, checkpoint_every=5, **TINY)

    real_batch = RandomCrops.batch

    def ctrl_c_at_step_7(self, start, n):
        if start == 7 * n:
            raise KeyboardInterrupt
        return real_batch(self, start, n)

    monkeypatch.setattr(RandomCrops, "batch", ctrl_c_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train(str(photo_dir), part, steps=10, checkpoint_every=5, **TINY)
    assert (part / "checkpoints" / "step_0000007" / "step.json").exists()
    monkeypatch.setattr(RandomCrops, "batch", real_batch)
    train(str(photo_dir), part, steps=10, checkpoint_every=5, **TINY)
    (a, ha), (b, hb) = _losses(part), _losses(full)
    assert a == pytest.approx(b, rel=1e-4) and ha == pytest.approx(hb, rel=1e-4)
    assert json.loads((part / "train_config.json").read_text())["result"]["steps"] == 10


def test_resume_refuses_other_settings(photo_dir, tmp_path):
    train(str(photo_dir), tmp_path, steps=2, checkpoint_every=2, **TINY)
    with pytest.raises(UserError, match="other settings"):
        train(str(photo_dir), tmp_path, steps=2, checkpoint_every=2, **{**TINY, "lr": 1e-3})


def test_crops_deterministic_scaled_and_split(photo_dir):
    photos = load_photos(str(photo_dir))
    tr, held = split_photos(photos, 0.2)
    assert len(held) == 1 and not {p.name for p in tr} & {p.name for p in held}
    assert split_photos(photos, 0.2) == (tr, held)
    ds = RandomCrops(tr, 16, seed=3)
    assert len(ds.levels[0]) >= 3  # 48 -> 34 -> 24 -> 17 px pyramid
    x = ds.batch(0, 4)
    assert x.shape == (4, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, ds.batch(0, 4))


def test_zoom_adds_upsampled_levels(photo_dir):
    tr, _ = split_photos(load_photos(str(photo_dir)), 0.2)
    plain, zoomed = RandomCrops(tr, 16, seed=3), RandomCrops(tr, 16, seed=3, zoom=2)
    a, b = plain.levels[0], zoomed.levels[0]
    assert len(b) == len(a) + 2  # x2 and x1.41 above the photo's own scale
    assert b[0].shape[1:] == tuple(2 * d for d in a[0].shape[1:]) and b[2].shape == a[0].shape
    with pytest.raises(UserError, match="zoom"):
        RandomCrops(tr, 16, zoom=0.5)


def test_cli_errors_are_one_line(photo_dir, tmp_path, capsys):
    assert main(["train", "--data", "nosuchsource", "-o", str(tmp_path)]) == 2
    assert "nosuchsource" in capsys.readouterr().err
    assert main(["train", "--data", str(photo_dir), "--size", "18", "--channels", "8,16,32", "-o", str(tmp_path)]) == 2
    assert "multiple of 4" in capsys.readouterr().err


def test_max_minutes_with_constant_lr_equals_a_run_of_the_steps_reached(photo_dir, tmp_path):
    from safetensors.torch import load_file

    timed, fixed = tmp_path / "timed", tmp_path / "fixed"
    s = train(str(photo_dir), timed, steps=1000, checkpoint_every=1000, lr_schedule="constant",
              max_minutes=1e-9, **TINY)  # the clock runs out after the first step
    assert s["stopped_early"] and s["steps"] == 1
    train(str(photo_dir), fixed, steps=1, checkpoint_every=1000, lr_schedule="constant", **TINY)
    assert _losses(timed) == _losses(fixed)
    wa = load_file(timed / "unet" / "diffusion_pytorch_model.safetensors")
    wb = load_file(fixed / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(UserError, match="lr-schedule"):
        train(str(photo_dir), tmp_path / "x", steps=1, lr_schedule="step", **TINY)


def test_loader_workers_give_the_same_run(photo_dir, tmp_path):
    train(str(photo_dir), tmp_path / "w0", steps=4, checkpoint_every=4, **TINY)
    train(str(photo_dir), tmp_path / "w2", steps=4, checkpoint_every=4, workers=2, **TINY)
    assert _losses(tmp_path / "w0") == _losses(tmp_path / "w2")
