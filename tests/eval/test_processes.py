"""Real processes: kill -9 in the middle of a run, and two processes under `accelerate launch`."""

import os
import signal
import subprocess
import sys
import time

import pytest

from inversa.eval import evaluate as E

pytestmark = pytest.mark.slow

ARGS = ["--tasks", "sr4,box_inpaint,gaussian_deblur", "--solvers", "naive", "--seeds", "0,1,2", "--lpips-net", "none"]


def _reference(data_dir, out):
    E.run_eval(dict(data=str(data_dir), out=str(out), tasks=ARGS[1], solvers="naive", seeds=ARGS[5], lpips_net="none"),
               progress=False)


def test_kill_9_mid_run_then_rerun(data_dir, tmp_path, ev):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "inversa", "eval", "--data", str(data_dir), "--out", str(out), *ARGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(list((out / "rows").glob("*.json"))) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n = len(list((out / "rows").glob("*.json")))
    assert 0 < n < 27 and not (out / "summary.csv").exists(), n
    p = ev.run_cli("--data", data_dir, "--out", out, *ARGS)
    assert p.returncode == 0, p.stderr
    ref = tmp_path / "ref"
    _reference(data_dir, ref)
    assert ev.rows(out) == ev.rows(ref) and ev.table(out) == ev.table(ref)


def test_two_accelerate_processes_equal_one(data_dir, tmp_path, ev):
    out = tmp_path / "run"
    # on a machine without GPUs accelerate's multi-process launcher is --multi_gpu (torchrun); --device cpu
    # keeps the numbers comparable with the CPU reference on any machine
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
           "-m", "inversa", "eval", "--data", str(data_dir), "--out", str(out), "--device", "cpu", *ARGS]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "eval 1/2" in p.stderr and "eval 2/2" in p.stderr  # two shards, one each
    ref = tmp_path / "ref"
    _reference(data_dir, ref)
    assert ev.rows(out) == ev.rows(ref) and ev.table(out) == ev.table(ref)
