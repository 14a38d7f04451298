"""`inversa restore` end to end on a tiny random UNet, and its error paths (one line, exit 2, no file)."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from inversa.cli import main


@pytest.fixture()
def photo(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "photo.png"
    Image.fromarray((rng.random((20, 28, 3)) * 255).astype(np.uint8)).save(p)
    return p


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "inversa", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_restore_simulate_preset_end_to_end(tiny_model_dir, photo, tmp_path):
    out, cmp_, meas = tmp_path / "r.png", tmp_path / "c.png", tmp_path / "m.png"
    r = run_cli("restore", photo, "--preset", "sr4", "--model", tiny_model_dir, "--steps", "3", "-o", out,
                "--save-comparison", cmp_, "--save-measurement", meas)
    assert r.returncode == 0, r.stderr
    assert "PSNR" in r.stdout and "SSIM" in r.stdout
    assert Image.open(out).size == (28, 20)  # padded to the UNet's multiple, cropped back
    assert Image.open(meas).size == (7, 5)
    assert cmp_.exists()


@pytest.mark.parametrize("task,extra", [("sr", ["--factor", "2"]), ("deblur", ["--blur-std", "1.0"]), ("denoise", ["--sigma", "0.05"])])
def test_restore_damaged_modes(tiny_model_dir, photo, tmp_path, task, extra, capsys):
    out = tmp_path / "r.png"
    assert main(["restore", str(photo), "--task", task, "--model", str(tiny_model_dir), "--steps", "2", "-o", str(out), *extra]) == 0
    w, h = Image.open(out).size
    assert (w, h) == ((56, 40) if task == "sr" else (28, 20))


def test_restore_inpaint_with_mask_file(tiny_model_dir, photo, tmp_path):
    mask = np.zeros((20, 28), np.uint8)
    mask[5:12, 8:20] = 255  # white = missing
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "r.png"
    assert main(["restore", str(photo), "--task", "inpaint", "--mask", str(tmp_path / "mask.png"), "--model", str(tiny_model_dir), "--steps", "2", "-o", str(out)]) == 0
    assert Image.open(out).size == (28, 20)


def test_restore_with_network_options(tiny_model_dir, photo, tmp_path):
    """Layout and checkpointing change only rounding: the restoration equals the default one."""
    outs = []
    for k, extra in enumerate(([], ["--channels-last", "--checkpointing"], ["--no-channels-last"])):
        out = tmp_path / f"r{k}.png"
        assert main(["restore", str(photo), "--task", "sr", "--model", str(tiny_model_dir), "--steps", "3", "-o", str(out), *extra]) == 0
        outs.append(np.asarray(Image.open(out), np.int16))
    assert np.abs(outs[0] - outs[1]).max() <= 1 and np.abs(outs[0] - outs[2]).max() <= 1


def test_restore_errors_subprocess(tmp_path):
    out = tmp_path / "o.png"
    r = run_cli("restore", tmp_path / "missing.png", "--task", "sr", "-o", out)
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("case", ["non_image", "corrupt_png", "bad_task", "bad_solver", "mask_size", "neg_sigma", "zero_steps", "offline_model", "unknown_model", "bad_ext", "bad_precision"])
def test_restore_errors_one_line(case, tiny_model_dir, photo, tmp_path, capsys):
    out = tmp_path / "o.png"
    args = ["restore", str(photo), "--task", "sr", "--model", str(tiny_model_dir), "--steps", "2", "-o", str(out)]
    if case == "non_image":
        (tmp_path / "a.png").write_text("hello")
        args[1] = str(tmp_path / "a.png")
    elif case == "corrupt_png":
        (tmp_path / "c.png").write_bytes(photo.read_bytes()[:60])
        args[1] = str(tmp_path / "c.png")
    elif case == "bad_task":
        args[3] = "colorize"
    elif case == "bad_solver":
        args += ["--solver", "magic"]
    elif case == "mask_size":
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "m.png")
        args[3] = "inpaint"
        args += ["--mask", str(tmp_path / "m.png")]
    elif case == "neg_sigma":
        args += ["--sigma", "-0.1"]
    elif case == "zero_steps":
        args[7] = "0"
    elif case == "offline_model":
        args[5] = "google/ddpm-ema-celebahq-256"
    elif case == "unknown_model":
        args[5] = "no-such-model"
    elif case == "bad_ext":
        args[9] = str(tmp_path / "o.xyz")
    elif case == "bad_precision":
        args += ["--precision", "fp8"]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "error" in err, err
    assert not out.exists() and not (tmp_path / "o.xyz").exists()


def test_demo_runs_offline_with_the_bundled_prior(tmp_path):
    out = tmp_path / "demo_restored.png"
    from inversa.quality import setting

    r = run_cli("restore", "--demo", "--steps", "2", "-o", out)
    assert r.returncode == 0, r.stderr
    s = setting("balanced", "sr")  # the demo is the balanced preset's super-resolution
    assert f"({s.solver}, 2 steps" in r.stdout and "quality balanced" in r.stdout, r.stdout
    assert "degraded (naive inverse)" in r.stdout and "restored: PSNR" in r.stdout
    assert Image.open(out).size == (256, 256)
    assert (tmp_path / "demo_comparison.png").exists()
