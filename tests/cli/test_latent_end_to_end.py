"""Latent models end to end, as a user holds them: tiny random pipeline folders of the real layouts
(`LDMPipeline`: VQModel + UNet2DModel; Stable-Diffusion: AutoencoderKL + UNet2DConditionModel + CLIP text
encoder), saved with `save_pretrained`. `inversa restore --model DIR` runs the latent default (LC-DPS) and the
named latent solvers and reproduces with a seed; `inversa eval --model DIR` runs and scores; a pixel solver
is refused in one line; image i does not depend on its batch-mates through a folder-loaded prior."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pretrained.tiny_pipelines import save_ldm, save_stable_diffusion

from inversa.cli import main

pytest.importorskip("transformers", reason="the Stable-Diffusion layout's text encoder needs transformers (the latent extra)")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster
    d = tmp_path_factory.mktemp("latent_e2e")
    yield {"ldm": save_ldm(d / "ldm"), "sd": save_stable_diffusion(d / "sd")}
    torch.set_num_threads(threads)


def _photo(path, size=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((size // 4, size // 4, 3))
    arr = np.kron(base, np.ones((4, 4, 1)))  # a blocky image, so the restorations have something to keep
    Image.fromarray((arr * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("kind", ["ldm", "sd"])
@pytest.mark.parametrize("solver", [None, "latent-dps", "psld", "lc-dps"])
def test_restore_from_a_pipeline_folder_reproduces(folders, tmp_path, capsys, kind, solver):
    img = _photo(tmp_path / "photo.png")
    args = ["restore", str(img), "--task", "deblur", "--blur-std", "1", "--model", str(folders[kind]),
            "--steps", "4", "--seed", "3", "--quiet", "--json"]
    if solver:
        args += ["--solver", solver]
    outs = []
    for k in range(2):
        out = tmp_path / f"restored{k}.png"
        assert main([*args, "-o", str(out)]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["metadata"]["solver"] == (solver or "lc-dps")
        outs.append(np.asarray(Image.open(out)))
    assert outs[0].shape == (16, 16, 3) and np.array_equal(outs[0], outs[1])


def test_a_pixel_solver_on_a_latent_folder_is_one_line(folders, tmp_path, capsys):
    img = _photo(tmp_path / "photo.png")
    code = main(["restore", str(img), "--task", "deblur", "--model", str(folders["ldm"]), "--solver", "dps",
                 "--steps", "2", "--quiet", "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "latent" in err and "lc-dps" in err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("kind", ["ldm", "sd"])
def test_eval_runs_latent_solvers_from_a_folder(folders, tmp_path, kind):
    data = tmp_path / "photos"
    data.mkdir()
    for k in range(2):
        _photo(data / f"p{k}.png", seed=k)
    out = tmp_path / "run"
    assert main(["eval", "--data", str(data), "--tasks", "sr4,gaussian_deblur", "--solvers", "naive,lc-dps,latent-dps",
                 "--model", str(folders[kind]), "--steps", "3", "--seeds", "0", "--lpips-net", "none", "--no-fid",
                 "--batch-size", "2", "--out", str(out), "--quiet"]) == 0
    summary = (out / "summary.md").read_text()
    for solver in ("lc-dps", "latent-dps"):
        assert f"| sr4 | {solver} | 3 |" in summary and f"| gaussian_deblur | {solver} | 3 |" in summary


def test_eval_refuses_a_pixel_solver_up_front(folders, tmp_path, capsys):
    data = tmp_path / "photos"
    data.mkdir()
    _photo(data / "p0.png")
    out = tmp_path / "run"
    code = main(["eval", "--data", str(data), "--tasks", "sr4", "--solvers", "dps", "--model", str(folders["ldm"]),
                 "--steps", "2", "--lpips-net", "none", "--no-fid", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "dps" in err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["ldm", "sd"])
def test_batch_mates_do_not_matter_through_a_loaded_folder(folders, kind):
    from inversa import load_prior, make_solver
    from inversa.operators import Blur, GaussianNoise, gaussian_kernel

    prior = load_prior(str(folders[kind]), dtype=torch.float64)
    op = Blur(gaussian_kernel(3, 1.0), noise=GaussianNoise(0.05)).double()
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = op.measure(x, generator=torch.Generator().manual_seed(1))
    solver = make_solver("lc-dps", prior, cg_iters=2, sqrt_iters=2)

    def run(idx, seeds):
        return solver(y[idx], op, generator=[torch.Generator().manual_seed(s) for s in seeds], num_steps=3, progress=False).x

    batch = run(slice(0, 3), [5, 6, 7])
    assert torch.allclose(batch[1:2], run(slice(1, 2), [6]), atol=1e-9)
    assert torch.equal(batch, run(slice(0, 3), [5, 6, 7]))
