"""Bad input everywhere: a table of wrong commands over every subcommand, each run as a user would.

Every row must exit with code 2, print exactly one line on stderr that names the bad value (the
row's expected fragment), show no traceback and write nothing (the folder is compared before and
after; a checkpoint that carries pickled code would create PWNED if it were executed). The rows
fail before any heavy work: no sampling, training or downloading.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


class Evil:
    """Unpickling this runs a shell command: a checkpoint "carrying code"."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder of good and bad inputs shared by every row (rows never write into it)."""
    d = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 28, 3)) * 255).astype(np.uint8)).save(d / "photo.png")
    Image.fromarray((rng.random((4, 4, 3)) * 255).astype(np.uint8)).save(d / "tiny.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(d / "mask5.png")
    (d / "text.png").write_text("hello, not an image")
    (d / "truncated.png").write_bytes((d / "photo.png").read_bytes()[:60])
    (d / "empty.png").write_bytes(b"")
    (d / "folder.png").mkdir()
    np.save(d / "even_kernel.npy", np.ones((4, 4)))
    (d / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    (d / "bad.json").write_text('{"tasks": "sr4",')
    (d / "bad.toml").write_text("tasks = [sr4\n")
    (d / "list.json").write_text("[1, 2, 3]")
    (d / "unknown_key.json").write_text(json.dumps({"data": str(d), "tasks": "sr4", "solvers": "naive", "colour": 1}))
    with open(d / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    cond = d / "sd_unet" / "unet"
    cond.mkdir(parents=True)
    (cond / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel", "sample_size": 64}))
    (d / "badjson_model").mkdir()
    (d / "badjson_model" / "config.json").write_text("{not json")
    evil_unet = d / "evil_unet"
    evil_unet.mkdir()
    (evil_unet / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 16}))
    with open(evil_unet / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump({"w": Evil()}, f)
    (d / "real").mkdir()  # an empty folder: no images
    return d


R, E, DI, MO, T, DS, ED, AP = "restore", "eval", "distill", "models", "train", "distill", "eval-distill", "app"
P = "{d}/photo.png"

# (id, argv with {d} = the inputs folder, a fragment the one error line must contain)
ROWS = [
    # restore: files
    ("restore-missing-image", [R, "{d}/nope.png", "--task", "sr"], "does not exist"),
    ("restore-text-as-png", [R, "{d}/text.png", "--task", "sr"], "not a readable image"),
    ("restore-truncated-png", [R, "{d}/truncated.png", "--task", "sr"], "not a readable image"),
    ("restore-empty-file", [R, "{d}/empty.png", "--task", "sr"], "not a readable image"),
    ("restore-folder-as-image", [R, "{d}/folder.png", "--task", "sr"], "is a folder"),
    ("restore-no-image", [R, "--task", "sr"], "give an IMAGE"),
    ("restore-missing-mask", [R, P, "--task", "inpaint", "--mask", "{d}/nomask.png"], "does not exist"),
    ("restore-mask-size", [R, P, "--task", "inpaint", "--mask", "{d}/mask5.png"], "must match"),
    ("restore-inpaint-no-mask", [R, P, "--task", "inpaint", "--solver", "naive", "-o", "{d}/out/x.png"], "needs --mask"),
    ("restore-missing-kernel", [R, P, "--task", "deblur", "--kernel", "{d}/nokernel.npy"], "does not exist"),
    ("restore-garbage-kernel", [R, P, "--task", "deblur", "--kernel", "{d}/garbage.npy"], "garbage.npy"),
    ("restore-even-kernel", [R, P, "--task", "deblur", "--kernel", "{d}/even_kernel.npy"], "odd"),
    # restore: names and values
    ("restore-unknown-task", [R, P, "--task", "colorize"], "colorize"),
    ("restore-unknown-preset", [R, P, "--preset", "sr3"], "sr3"),
    ("restore-unknown-solver", [R, P, "--task", "sr", "--solver", "magic"], "magic"),
    ("restore-unknown-param", [R, P, "--task", "sr", "--param", "foo=1"], "'foo'"),
    ("restore-bad-param-value", [R, P, "--task", "sr", "--param", "scale=abc"], "scale='abc'"),
    ("restore-bad-param-syntax", [R, P, "--task", "sr", "--param", "scale"], "KEY=VALUE"),
    ("restore-naive-param", [R, P, "--task", "sr", "--solver", "naive", "--param", "scale=1"], "takes no parameters"),
    ("restore-bad-param-choice", [R, P, "--task", "sr", "--param", "sampler=euler", "--steps", "1"], "euler"),
    ("restore-negative-sigma", [R, P, "--task", "sr", "--sigma", "-0.1"], "sigma"),
    ("restore-sigma-above-1", [R, P, "--task", "sr", "--sigma", "5"], "sigma 5.0"),
    ("restore-zero-steps", [R, P, "--task", "sr", "--steps", "0"], "steps"),
    ("restore-too-many-steps", [R, P, "--task", "sr", "--steps", "5000"], "5000"),
    ("restore-zero-factor", [R, P, "--task", "sr", "--factor", "0"], "factor"),
    ("restore-tiny-max-size", [R, P, "--task", "sr", "--max-size", "2"], "max_size"),
    ("restore-tiny-image", [R, "{d}/tiny.png", "--task", "denoise"], "4x4"),
    ("restore-negative-blur", [R, P, "--task", "deblur", "--blur-std", "-1"], "blur_std"),
    ("restore-negative-seed", [R, P, "--task", "sr", "--seed", "-1"], "seed"),
    ("restore-not-int-steps", [R, P, "--task", "sr", "--steps", "ten"], "ten"),
    ("restore-bad-precision", [R, P, "--task", "sr", "--precision", "fp8"], "fp8"),
    # restore: devices and outputs (checked before any work)
    ("restore-absent-gpu", [R, P, "--task", "sr", "--device", "cuda:3"], "cuda:3"),
    ("restore-unknown-device", [R, P, "--task", "sr", "--device", "tpu"], "tpu"),
    ("restore-out-under-file", [R, P, "--task", "sr", "-o", "{d}/photo.png/x.png"], "cannot be written"),
    ("restore-out-is-folder", [R, P, "--task", "sr", "-o", "{d}/folder.png"], "is a folder"),
    ("restore-out-extension", [R, P, "--task", "sr", "-o", "{d}/out.xyz"], "out.xyz"),
    ("restore-comparison-unwritable", [R, P, "--task", "sr", "--save-comparison", "{d}/photo.png/c.png"], "cannot be written"),
    # restore: models
    ("restore-missing-model-folder", [R, P, "--task", "sr", "--model", "{d}/no_model"], "does not exist"),
    ("restore-unknown-model", [R, P, "--task", "sr", "--model", "no-such-model"], "no-such-model"),
    ("restore-offline-hub-model", [R, P, "--task", "sr", "--model", "google/ddpm-ema-celebahq-256"], "hf download"),
    ("restore-conditional-unet", [R, P, "--task", "sr", "--model", "{d}/sd_unet"], "without its autoencoder"),
    ("restore-model-bad-config", [R, P, "--task", "sr", "--model", "{d}/badjson_model"], "not valid JSON"),
    ("restore-model-pickled-code", [R, P, "--task", "sr", "--model", "{d}/evil_unet"], "evil_unet"),
    ("restore-adm-unconverted", [R, P, "--task", "sr", "--model", "ffhq_10m"], "converted first"),
    ("restore-distill-model", [R, P, "--task", "sr", "--model", "inversa-fashion-32"], "not a restoration prior"),
    # eval
    ("eval-bad-json-config", [E, "--config", "{d}/bad.json"], "bad.json"),
    ("eval-bad-toml-config", [E, "--config", "{d}/bad.toml"], "bad.toml"),
    ("eval-config-not-table", [E, "--config", "{d}/list.json"], "table"),
    ("eval-config-unknown-key", [E, "--config", "{d}/unknown_key.json", "--out", "{d}/run"], "colour"),
    ("eval-missing-config", [E, "--config", "{d}/nope.toml"], "nope.toml"),
    ("eval-missing-data", [E, "--data", "{d}/nodata", "--tasks", "sr4", "--solvers", "naive", "--out", "{d}/run"], "nodata"),
    ("eval-unknown-task", [E, "--data", "{d}", "--tasks", "sr5", "--solvers", "naive", "--out", "{d}/run"], "sr5"),
    ("eval-unknown-solver", [E, "--data", "{d}", "--tasks", "sr4", "--solvers", "magic", "--out", "{d}/run"], "magic"),
    ("eval-absent-gpu", [E, "--data", "{d}", "--tasks", "sr4", "--solvers", "naive", "--out", "{d}/run", "--device", "cuda"], "cuda"),
    ("eval-out-under-file", [E, "--data", "{d}", "--tasks", "sr4", "--solvers", "naive", "--out", "{d}/photo.png/run"], "photo.png"),
    ("eval-bad-limit", [E, "--data", "{d}", "--tasks", "sr4", "--solvers", "naive", "--out", "{d}/run", "--limit", "-3"], "-3"),
    ("eval-bad-lpips-net", [E, "--data", "{d}", "--tasks", "sr4", "--solvers", "naive", "--out", "{d}/run", "--lpips-net", "resnet"], "resnet"),
    ("eval-merge-not-a-run", [E, "--merge", "--out", "{d}/real"], "real"),
    # models
    ("models-info-missing-folder", [MO, "info", "{d}/no_model"], "does not exist"),
    ("models-convert-missing", [MO, "convert", "{d}/nope.pt", "-o", "{d}/conv"], "nope.pt"),
    ("models-convert-pickled-code", [MO, "convert", "{d}/evil.pt", "-o", "{d}/conv"], "evil.pt"),
    ("models-convert-out-under-file", [MO, "convert", "{d}/evil.pt", "-o", "{d}/photo.png/conv"], "photo.png"),
    ("models-convert-bad-config", [MO, "convert", "{d}/evil.pt", "-o", "{d}/conv", "--config", "sd15"], "sd15"),
    ("models-verify-missing", [MO, "verify", "{d}/no_model"], "no_model"),
    ("models-unknown-action", [MO, "delete"], "delete"),
    # train
    ("train-missing-data-folder", [T, "--data", "{d}/nodata", "-o", "{d}/m"], "nodata"),
    ("train-unknown-source", [T, "--data", "flickr", "-o", "{d}/m"], "flickr"),
    ("train-zero-size", [T, "--data", "skimage", "-o", "{d}/m", "--size", "0"], "--size"),
    ("train-bad-channels", [T, "--data", "skimage", "-o", "{d}/m", "--channels", "a,b"], "--channels"),
    ("train-out-is-file", [T, "--data", "skimage", "-o", "{d}/photo.png"], "photo.png"),
    ("train-bad-schedule", [T, "--data", "skimage", "-o", "{d}/m", "--lr-schedule", "step"], "step"),
    ("train-zero-steps", [T, "--data", "skimage", "-o", "{d}/m", "--steps", "0"], "--steps"),
    ("train-missing-resume", [T, "--data", "skimage", "-o", "{d}/m", "--resume", "{d}/nockpt"], "nockpt"),
    ("train-unknown-kind", [T, "--kind", "gan", "-o", "{d}/m"], "gan"),
    ("train-classifier-steps", [T, "--kind", "classifier", "-o", "{d}/m", "--steps", "3"], "--steps"),
    ("train-conditional-photos", [T, "--kind", "conditional", "--data", "skimage", "-o", "{d}/m"], "skimage"),
    # distill / eval-distill
    ("distill-unknown-model", [DS, "--model", "nope", "--ipc", "1", "--method", "unguided", "-o", "{d}/set"], "nope"),
    ("distill-zero-ipc", [DS, "--model", "inversa-fashion-32", "--ipc", "0", "--method", "unguided", "-o", "{d}/set"], "--ipc"),
    ("distill-unknown-method", [DS, "--model", "inversa-fashion-32", "--ipc", "1", "--method", "magic", "-o", "{d}/set"], "magic"),
    ("distill-out-under-file", [DS, "--model", "inversa-fashion-32", "--ipc", "1", "--method", "unguided", "-o", "{d}/photo.png/set"], "photo.png"),
    ("distill-absent-gpu", [DS, "--model", "inversa-fashion-32", "--ipc", "1", "--method", "unguided", "-o", "{d}/set", "--device", "cuda"], "cuda"),
    ("distill-igds-no-classifier", [DS, "--model", "inversa-fashion-32", "--ipc", "1", "-o", "{d}/set"], "--classifier"),
    ("eval-distill-missing-dir", [ED, "{d}/noset", "--ipc", "1"], "noset"),
    ("eval-distill-zero-iterations", [ED, "{d}/real", "--iterations", "0"], "--iterations"),
    ("eval-distill-results-under-file", [ED, "{d}/real", "--ipc", "1", "--results", "{d}/photo.png/r.jsonl"], "photo.png"),
    # app (nothing starts)
    ("app-bad-port", [AP, "--port", "70000"], "70000"),
    ("app-missing-model-folder", [AP, "--model", "{d}/no_model"], "does not exist"),
    # top level
    ("unknown-command", ["colorize"], "colorize"),
]


def _snapshot(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def test_the_sweep_is_wide():
    assert len(ROWS) >= 40
    assert {argv[0] for _, argv, _ in ROWS} >= {R, E, DI, MO, T, ED, AP}
    assert len({row[0] for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("argv,fragment", [(argv, frag) for _, argv, frag in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(files, argv, fragment, tmp_path):
    before = _snapshot(files)
    args = [a.format(d=files) for a in argv]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "inversa", *args], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env=env)
    err = r.stderr.strip()
    assert r.returncode == 2, f"exit {r.returncode}\n{err}"
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert "error" in err and fragment.format(d=files) in err, err
    assert r.stdout == "", r.stdout
    assert _snapshot(files) == before and not any(tmp_path.iterdir()), "a file was written"
