"""`inversa train --kind conditional|classifier` on a tiny synthetic Fashion-MNIST: exports load, resume is exact."""

import csv
import gzip
import json

import numpy as np
import pytest
import torch

from inversa.cli import main
from inversa.training.conditional import train_conditional

TINY = dict(batch_size=4, channels=(8, 16), eval_every=2, eval_images=8, sample_steps=2, num_threads=1,
            progress=False)


def _write_idx(path, a):
    header = bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + a.astype(np.uint8).tobytes())


@pytest.fixture(autouse=True)
def fashion(tmp_path_factory, monkeypatch):
    """120 training and 40 test 'garments' (a bright block whose position is the class)."""
    d = tmp_path_factory.getbasetemp() / "fashion"
    if not d.exists():
        d.mkdir()
        rng = np.random.default_rng(0)
        for split, n, prefix in (("train", 120, "train"), ("test", 40, "t10k")):
            y = np.arange(n) % 10
            x = rng.integers(0, 40, (n, 28, 28))
            for i, c in enumerate(y):
                x[i, 2 * c:2 * c + 8, 4:24] = 220
            _write_idx(d / f"{prefix}-images-idx3-ubyte.gz", x)
            _write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", y)
    monkeypatch.setenv("INVERSA_FASHION_MNIST", str(d))
    monkeypatch.setenv("INVERSA_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    return d


def test_conditional_prior_through_the_cli(tmp_path):
    from diffusers import UNet2DModel

    out = tmp_path / "m"
    assert main(["train", "--kind", "conditional", "-o", str(out), "--steps", "4", "--batch-size", "4",
                 "--channels", "8,16", "--eval-every", "2", "--checkpoint-every", "2", "--threads", "1", "-q"]) == 0
    unet = UNet2DModel.from_pretrained(out / "unet", torch_dtype=torch.float32)
    assert unet.config.num_class_embeds == 11 and unet.config.in_channels == 1
    assert unet(torch.randn(2, 1, 32, 32), 10, class_labels=torch.tensor([3, 10])).sample.shape == (2, 1, 32, 32)
    config = json.loads((out / "train_config.json").read_text())
    assert config["null_class"] == 10 and config["result"]["steps"] == 4 and config["result"]["held_out_images"] == 10
    rows = list(csv.DictReader(open(out / "loss_log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and rows[1]["held_out_loss"] and not rows[0]["held_out_loss"]
    for f in ("samples.png", "loss_curve.png", "scheduler/scheduler_config.json"):
        assert (out / f).exists()


def test_conditional_resume_equals_one_run(tmp_path):
    from safetensors.torch import load_file

    kw = dict(TINY, lr_schedule="constant", warmup_steps=1, fp16=False, checkpoint_every=2)
    train_conditional(tmp_path / "full", steps=4, **kw)
    train_conditional(tmp_path / "part", steps=2, **kw)
    s = train_conditional(tmp_path / "part", steps=4, **kw)  # resumes from the step-2 checkpoint
    assert s["steps"] == 4
    f = "unet/diffusion_pytorch_model.safetensors"
    wa, wb = load_file(tmp_path / "full" / f), load_file(tmp_path / "part" / f)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_classifier_through_the_cli(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "clf"
    assert main(["train", "--kind", "classifier", "-o", str(out), "--epochs", "1", "--batch-size", "32",
                 "--width", "8", "--threads", "1", "-q"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["steps"] == 3 and config["num_classes"] == 10 and config["arch_kwargs"]["width"] == 8
    assert all(torch.isfinite(v).all() for v in load_file(out / "model.safetensors").values())


@pytest.mark.parametrize("argv, fragment", [
    (["--kind", "gan"], "gan"),
    (["--kind", "classifier", "--steps", "3"], "--steps"),
    (["--kind", "conditional", "--epochs", "3"], "--epochs"),
    (["--kind", "conditional", "--data", "skimage"], "skimage"),
    (["--kind", "conditional", "--size", "16"], "--size"),
    ([], "--data"),
])
def test_kind_errors_are_one_line(argv, fragment, tmp_path, capsys):
    assert main(["train", "-o", str(tmp_path / "m"), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
