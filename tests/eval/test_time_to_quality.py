"""bench/time_to_quality.py's reduced mode (2 photos, 3 points per solver, every deepinv default), so the
benchmark cannot rot: it runs, reports every deepinv point with its match or "none", and resumes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepinv")
ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT.parent / "shared" / "data" / "ffhq256-sample"


@pytest.mark.slow
@pytest.mark.skipif(not PHOTOS.is_dir(), reason="../shared/data/ffhq256-sample (evaluation photos) is absent")
def test_reduced_run_reports_every_deepinv_point_and_resumes(tmp_path):
    out = tmp_path / "ttq.jsonl"
    cmd = [sys.executable, str(ROOT / "bench" / "time_to_quality.py"), "--reduced", "--out", str(out),
           "--plot", str(tmp_path / "front.png")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = out.read_text().splitlines()
    assert len(lines) == 3 * (5 + 3 * 11)  # tasks x (deepinv configs + 3 points x solvers)
    for task in ("sr4", "circ_deblur", "random_inpaint"):
        assert f"## {task}" in first.stdout
    matches = re.findall(r"^  deepinv ([\w-]+)[ :].*\[goal ([\d.]+)x: (met|MISSED)\]$", first.stdout, re.M)
    assert len(matches) == 15 and {m[0] for m in matches} == {"dps-f64", "dps-f32", "diffpir", "ddrm", "ddrm-20"}
    assert all(goal == ("0.01" if name == "dps-f64" else "0.5") for name, goal, _ in matches)
    assert re.search(r"must-hold: \d+/15 deepinv points", first.stdout)
    assert (tmp_path / "front.png").stat().st_size > 10_000
    again = subprocess.run(cmd + ["--confirm-reps", "0"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert again.returncode == 0 and out.read_text().splitlines() == lines  # nothing rerun
    assert "s/photo" not in again.stderr  # no point was measured again


def test_solver_specs_carry_checked_parameters(monkeypatch):
    """`--solvers ddrm:s_noise=0.9` is DDRM with that parameter, named so in the results; a parameter the
    solver does not take is refused in one line before anything runs."""
    from inversa.errors import UserError

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import time_to_quality as ttq

    assert ttq.solver_spec("ddrm:s_noise=0.9:eta=0.5") == ("ddrm", {"s_noise": 0.9, "eta": 0.5})
    assert ttq.solver_spec("dps") == ("dps", {})
    assert ttq.spec_label("ddrm", {"s_noise": 0.9}) == "ddrm s_noise=0.9"
    with pytest.raises(UserError, match="unknown parameter 'zeta' for solver ddrm"):
        ttq.solver_spec("ddrm:zeta=0.3")
