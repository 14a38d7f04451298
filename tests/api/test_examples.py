"""The README's Python example and every script in examples/ run as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _run(args, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=ENV)


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs(tmp_path):
    (tmp_path / "example.py").write_text(readme_python_example())
    r = _run(["example.py"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "restored.png").exists()


@pytest.mark.parametrize("script,made", [("restore_photo.py", "restored.png"), ("evaluate_folder.py", "eval_run/report.html"),
                                         ("distill_set.py", "distilled/metadata.json")])
def test_example_runs(script, made, tmp_path):
    r = _run([str(ROOT / "examples" / script)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / made).exists(), r.stdout
