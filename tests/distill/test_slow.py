"""Long checks (-m slow): a real SIGKILL in the middle of `inversa distill`, and IGDS on the bundled prior."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

pytestmark = pytest.mark.slow


def _pngs(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_sigkill_then_rerun_gives_the_uninterrupted_files(cond_model_dir, tmp_path):
    def cmd(out):
        return [sys.executable, "-m", "inversa", "distill", "--model", str(cond_model_dir), "--method", "unguided",
                "--ipc", "40", "--steps", "50", "--batch-size", "2", "--threads", "1", "-o", str(out)]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(cmd(full), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(killed.rglob("*.png"))) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n = len(_pngs(killed))
    assert 5 <= n < 120, "the run was not interrupted in the middle"
    subprocess.run(cmd(killed), check=True, env=env, capture_output=True)
    assert _pngs(killed) == _pngs(full) and len(_pngs(full)) == 120


def test_igds_on_the_bundled_prior_is_read_as_its_class_more_often(tmp_path):
    from inversa.distill.generate import distill
    from inversa.distill.data import load_image_folder
    from inversa.distill.classifier import load_classifier
    from inversa.distill.data import CLASSES

    torch.set_num_threads(1)
    clf = load_classifier("inversa-fashion-classifier")
    acc = {}
    for method in ("unguided", "igds"):
        distill("inversa-fashion-32", tmp_path / method, ipc=3, method=method, steps=30,
                classifier="inversa-fashion-classifier" if method == "igds" else None, progress=False)
        x, y, _ = load_image_folder(tmp_path / method, list(CLASSES))
        with torch.no_grad():
            acc[method] = (clf(x).argmax(1) == y).float().mean().item()
    assert acc["igds"] >= acc["unguided"] and acc["igds"] >= 0.8, acc
