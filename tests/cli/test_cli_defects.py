"""The CLI defects of the library issue, each as a user meets it (subprocess or main())."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from inversa.cli import build_parser, main


def run(*args, env=None):
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "inversa", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=e)


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((16, 24, 3)) * 255).astype(np.uint8)).save(p)
    return p


@pytest.mark.parametrize("argv", [[], ["models"]], ids=["bare", "models"])
def test_missing_command_prints_usage_and_exits_2(argv):
    r = run(*argv)
    assert r.returncode == 2
    assert r.stderr.startswith("usage: inversa") and "required" in r.stderr and "Traceback" not in r.stderr


def test_solvers_lists_every_registered_solver_with_defaults_from_the_classes():
    from inversa.solvers.registry import SOLVERS

    r = run("solvers")
    assert r.returncode == 0, r.stderr
    for name in SOLVERS:
        assert f"\n{name}: " in "\n" + r.stdout
    dps = inspect.signature(SOLVERS["dps"].__init__).parameters
    assert f"scale={dps['scale'].default!r}" in r.stdout and "start=1.0" in r.stdout  # own + shared-loop params
    listed = json.loads(run("solvers", "--json").stdout)
    assert [s["name"] for s in listed] == list(SOLVERS)
    cdps = next(s for s in listed if s["name"] == "c-dps")
    sig = inspect.signature(SOLVERS["c-dps"].__init__).parameters
    assert {p["name"]: p["default"] for p in cdps["parameters"]}["cg_iters"] == sig["cg_iters"].default


def test_restore_json_output(photo, tmp_path):
    out = tmp_path / "r.png"
    r = run("restore", photo, "--preset", "sr4", "--solver", "naive", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["outputs"] == [str(out)] and out.exists()
    assert set(doc["metrics"]) == {"psnr_restored", "ssim_restored", "psnr_naive", "ssim_naive"}
    assert doc["nfe"] == 0 and doc["metadata"]["preset"] == "sr4"


def test_models_list_json():
    r = run("models", "list", "--json")
    assert r.returncode == 0, r.stderr
    models = json.loads(r.stdout)
    assert sum(m["default"] for m in models) == 1
    assert {"name", "kind", "source", "description"} <= set(models[0])


@pytest.mark.parametrize("how", ["flag", "env"])
def test_quiet_silences_progress_bars(tiny_model_dir, photo, tmp_path, how):
    args = ["restore", photo, "--task", "sr", "--factor", "2", "--model", tiny_model_dir, "--solver", "dps", "--steps", "3",
            "-o", tmp_path / "r.png"]
    loud = run(*args)
    assert loud.returncode == 0 and "dps" in loud.stderr  # the progress bar
    quiet = run(*args, "-q") if how == "flag" else run(*args, env={"TQDM_DISABLE": "1"})
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert "NFE 3" in quiet.stdout


def test_restore_and_eval_default_to_the_same_device(monkeypatch):
    from inversa.device import resolve_device

    p = build_parser()
    restore_default = p.parse_args(["restore", "x.png"]).device
    eval_default = p.parse_args(["eval"]).device
    assert restore_default == "auto" and eval_default is None  # eval: None = accelerate's device
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(restore_default).type == expected
    from accelerate import PartialState

    assert PartialState().device.type == expected


def test_param_errors_are_one_line_without_traceback(photo):
    for param, fragment in (("foo=1", "unknown parameter 'foo' for solver dps; accepted: scale"),
                            ("scale=abc", "parameter scale='abc' for solver dps: expected a number")):
        r = run("restore", photo, "--task", "sr", "--solver", "dps", "--param", param)
        assert r.returncode == 2 and fragment in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    preset = run("restore", photo, "--task", "sr", "--param", "foo=1")  # checked against the preset's solver
    assert preset.returncode == 2 and "unknown parameter 'foo' for solver " in preset.stderr, preset.stderr


def test_app_without_gradio_names_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    assert main(["app", "--port", "7999"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("inversa app: error: the web UI (inversa app) needs the gradio package, which is not installed: "
                   "pip install 'inversa[app]'")
