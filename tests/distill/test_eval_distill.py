"""`inversa eval-distill`: students trained only on a set, scored on the real test split."""

import json

import pytest
import torch

from inversa.cli import main
from inversa.errors import UserError
from inversa.distill import students as ed
from inversa.distill.data import load_image_folder
from inversa.distill.nets import make_net

from distill_folders import write_image_folder


def test_student_nets_shapes_and_instance_norm():
    for arch in ("convnet", "resnet_ap10"):
        net = make_net(arch, in_channels=1, num_classes=10, size=32)
        assert net(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    conv = make_net("convnet", size=32)
    assert conv.features[0].out_channels == 128 and isinstance(conv.features[1], torch.nn.GroupNorm)
    assert conv.features[1].num_groups == 128 and isinstance(conv.features[3], torch.nn.AvgPool2d)
    with pytest.raises(UserError, match="architecture 'vgg' is not known; accepted: convnet, resnet_ap10"):
        make_net("vgg")


def test_image_folder_and_random_real_subset(real_dir):
    x, y, names = load_image_folder(real_dir / "train", ipc=5)
    assert names == ["ant", "bee", "cat"] and x.shape == (15, 1, 16, 16) and y.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    xs, ys = ed.random_real_subset(x, y, 2, seed=0)
    assert torch.bincount(ys).tolist() == [2, 2, 2]
    xs1, _ = ed.random_real_subset(x, y, 2, seed=1)
    assert not torch.equal(xs, xs1) and torch.equal(xs, ed.random_real_subset(x, y, 2, seed=0)[0])
    with pytest.raises(UserError, match="fewer than the IPC 9"):
        load_image_folder(real_dir / "train", ipc=9)
    with pytest.raises(UserError, match="are not classes; accepted: x, y"):
        load_image_folder(real_dir / "train", ["x", "y"])


def test_student_learns_the_tiny_task(real_dir):
    real = ed.real_data(str(real_dir))
    r = ed.score_set(*real["train"], real, arch="convnet", seed=0, iterations=30, batch_size=24, lr=0.01)
    assert r["accuracy"] >= 0.75  # chance is 1/3


def test_eval_distill_cli_table_and_resume(real_dir, tmp_path, capsys):
    d = write_image_folder(tmp_path / "set", 2, seed=3)
    results = tmp_path / "rows.jsonl"
    argv = ["eval-distill", str(d), "--real", str(real_dir), "--seeds", "0,1", "--iterations", "3",
            "--batch-size", "4", "--results", str(results)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| convnet | random-real | " in out and f"| convnet | {d} | " in out and "(n=2)" in out
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 4 and {r["ipc"] for r in rows} == {2} and all(0 <= r["accuracy"] <= 1 for r in rows)
    assert main(argv) == 0  # rerun: rows reused, none appended
    assert len(results.read_text().splitlines()) == 4


@pytest.mark.parametrize("extra, message", [
    (["--archs", "vgg"], "--archs: 'vgg' is not known"),
    (["--seeds", "a"], "--seeds 'a': expected integers"),
    (["--iterations", "0"], "--iterations 0: must be a positive integer"),
])
def test_eval_distill_errors(real_dir, tmp_path, capsys, extra, message):
    d = write_image_folder(tmp_path / "set", 1)
    assert main(["eval-distill", str(d), "--real", str(real_dir), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_summary_mean_std():
    rows = [dict(set="s", ipc=1, arch="convnet", accuracy=a) for a in (0.5, 0.7)]
    (s,) = ed.summarize(rows)
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1414, abs=1e-3) and s["n"] == 2
    assert "60.0 ± 14.1 (n=2)" in ed.format_table([s])


def test_unguided_baseline_matches_the_distilled_settings(cond_model_dir, tmp_path):
    from inversa.distill.generate import distill

    distill(str(cond_model_dir), tmp_path / "set", ipc=2, method="unguided", seed=3, steps=2, classes="ant,cat",
            progress=False)
    u = ed.unguided_baseline(tmp_path / "set", progress=False)
    assert u == tmp_path / "set-unguided"
    same = lambda p: sorted((f.relative_to(p).as_posix(), f.read_bytes()) for f in p.rglob("*.png"))  # noqa: E731
    assert same(u) == same(tmp_path / "set") and len(same(u)) == 4
    with pytest.raises(UserError, match="has no metadata.json"):
        ed.unguided_baseline(tmp_path / "nothing")
