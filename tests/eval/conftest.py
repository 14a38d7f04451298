import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inversa.pretrained
from inversa.solvers import SOLVERS, SolverOutput

VOLATILE = ("wall_s", "item_s")


@pytest.fixture
def data_dir(tmp_path):
    """Three 32x32 smooth colour images and one stray text file."""
    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for i in range(3):
        a = np.stack([np.sin(xx / (3 + i)), np.cos(yy / (4 + i)), np.sin((xx + yy) / 5)], -1) * 0.4 + 0.5
        a = a + rng.normal(0, 0.03, a.shape)
        Image.fromarray((a.clip(0, 1) * 255).astype(np.uint8)).save(d / f"img{i}.png")
    (d / "notes.txt").write_text("not an image")
    return d


class FakeSolver:
    """Naive inverse plus seeded noise that shrinks with the steps: exercises generators and NFE."""

    def __init__(self, prior, **params):
        self.params = params

    def __call__(self, y, operator, *, generator=None, num_steps=10, callback=None, progress=False):
        x = operator.naive_inverse(y)
        noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in generator]).to(x)
        x = (x + noise * self.params.get("amp", 0.5) / num_steps).clamp(0, 1)
        return SolverOutput(x=x, nfe=num_steps, vjp=2 * num_steps, metadata={"solver": "fake", "seconds": 0.1, **self.params})


class TinyPrior:
    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Conv2d(3, 3, 1)
        self.name, self.source, self.sample_size = "tiny", "tests", None


@pytest.fixture
def fake_solver(monkeypatch):
    monkeypatch.setitem(SOLVERS, "fake", FakeSolver)
    monkeypatch.setattr(inversa.pretrained, "load_prior", lambda name=None, device="cpu", **_: TinyPrior())


class TinyFeatures(torch.nn.Module):
    """A stand-in for Inception: colour means on a 2x2 grid (12 features)."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


def rows(out: Path) -> dict:
    """Rows by key, without the timing fields."""
    got = {}
    for p in sorted((out / "rows").glob("*.json")):
        r = json.loads(p.read_text())
        for k in VOLATILE:
            r.pop(k)
        r["solver_metadata"].pop("seconds", None)
        got[r["key"]] = r
    return got


def table(out: Path) -> list[list[str]]:
    """summary.csv without the wall-time column."""
    lines = [line.split(",") for line in (out / "summary.csv").read_text().splitlines()]
    i = lines[0].index("wall_s")
    return [line[:i] + line[i + 1:] for line in lines]


def run_cli(*args, cwd=None, timeout=300, env=None):
    import subprocess

    return subprocess.run([sys.executable, "-m", "inversa", "eval", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})


@pytest.fixture
def ev():
    """Helpers for the tests (conftest modules cannot be imported by name reliably)."""
    from types import SimpleNamespace

    return SimpleNamespace(rows=rows, table=table, run_cli=run_cli, TinyFeatures=TinyFeatures, TinyPrior=TinyPrior)
