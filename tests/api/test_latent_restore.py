"""Latent models where a user meets them, on an in-memory LatentPrior of tiny random diffusers models (a VQModel,
as the LDMPipeline layout holds, with block_out_channels (8, 16), and a UNet2DModel over its 3-channel latents):
`restore()` takes the latent preset (LC-DPS) when no solver is named and refuses pixel solvers in one line;
seeds reproduce; `inversa eval` runs latent solvers and refuses pixel ones before any work; the web UI's method
list offers the solvers that fit the model's kind, and its live preview decodes latent estimates."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

import inversa.pretrained
from inversa.errors import UserError
from inversa.pretrained.latent import LatentPrior
from inversa.quality import LATENT_PRESETS, QUALITIES
from inversa.restoration import restore


def tiny_vq_prior() -> LatentPrior:
    from diffusers import DDPMScheduler, UNet2DModel, VQModel

    torch.manual_seed(0)
    ae = VQModel(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, latent_channels=3,
                 num_vq_embeddings=16, down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)
    return LatentPrior(unet.eval().requires_grad_(False), DDPMScheduler(beta_schedule="linear"),
                       ae.eval().requires_grad_(False), name="tiny-ldm")


@pytest.fixture(scope="module")
def prior():
    return tiny_vq_prior()


@pytest.fixture(scope="module")
def photo():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 16, 16, generator=g)


def test_latent_presets_are_latent_solvers():
    from inversa.solvers import SOLVERS

    assert set(LATENT_PRESETS) == set(QUALITIES)
    assert all(SOLVERS[s.solver].latent for s in LATENT_PRESETS.values())


@pytest.mark.parametrize("how", ["prior", "model"])
def test_restore_picks_the_latent_preset(prior, photo, how):
    """No solver named: LC-DPS (the latent preset), the steps the caller gives, on `prior=` or `model=` (a loaded
    prior object is accepted as a model)."""
    kw = {how: prior}
    r = restore(photo, preset="sr4", steps=3, quality="fast", progress=False, seed=2, **kw)
    meta = r.metadata
    assert meta["solver"] == "lc-dps" and meta["quality"] == "fast" and meta["num_steps"] == 3
    assert meta["latent_shape"] == [1, 3, 8, 8] and meta["decoder_forward"] == 4
    assert r.restored.shape == (1, 3, 16, 16) and torch.isfinite(r.restored).all()
    again = restore(photo, preset="sr4", steps=3, quality="fast", progress=False, seed=2, **kw)
    assert torch.equal(r.restored, again.restored)  # seeds reproduce
    assert "psnr_restored" in r.metrics


def test_restore_takes_the_latent_preset_when_the_kind_shows_only_after_loading(prior, photo, monkeypatch):
    """A folder or hub id says it is latent only once loaded: the pixel preset's choice is replaced then."""
    monkeypatch.setattr(inversa.pretrained, "load_prior", lambda name=None, device="cpu", **_: prior)
    r = restore(photo, task="inpaint", simulate=True, steps=2, progress=False, model="some/latent-folder")
    assert r.metadata["solver"] == "lc-dps" and r.metadata["quality"] == "balanced"
    assert r.metadata["steps"] == 2


def test_named_latent_solvers_run_and_samples_average(prior, photo):
    r = restore(photo, preset="box_inpaint", solver="psld", steps=2, samples=2, progress=False, prior=prior)
    assert r.metadata["solver"] == "psld" and r.metadata["samples"] == 2 and r.metadata["encoder_forward"] == 2
    r = restore(photo, preset="gaussian_deblur", solver="latent-dps", steps=2, progress=False, prior=prior,
                solver_params={"start": 0.5})
    assert r.metadata["solver"] == "latent-dps" and r.metadata["num_steps"] == 1


def test_pixel_solver_on_a_latent_model_is_one_line(prior, photo):
    with pytest.raises(UserError) as exc:
        restore(photo, preset="sr4", solver="dps", steps=2, progress=False, prior=prior)
    msg = str(exc.value)
    assert "\n" not in msg and "latent" in msg and "lc-dps" in msg and "tiny-ldm" in msg


def test_latent_solver_on_a_pixel_model_is_one_line(photo, tiny_model_dir):
    with pytest.raises(UserError) as exc:
        restore(photo, preset="sr4", solver="lc-dps", steps=2, progress=False, model=str(tiny_model_dir))
    assert "\n" not in str(exc.value) and "pixel-space prior" in str(exc.value)


# --- inversa eval ---------------------------------------------------------------------------------------------
@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(d / f"img{i}.png")
    return d


def _cfg(data_dir, out, solvers):
    return {"data": str(data_dir), "out": str(out), "tasks": ["sr4"], "solvers": solvers, "seeds": [0],
            "steps": [2], "lpips_net": "none", "fid": False, "device": "cpu", "model": "tiny-ldm-folder"}


def test_eval_runs_latent_solvers(prior, data_dir, tmp_path, monkeypatch):
    from inversa.eval.evaluate import run_eval

    monkeypatch.setattr(inversa.pretrained, "load_prior", lambda name=None, device="cpu", **_: prior)
    res = run_eval(_cfg(data_dir, tmp_path / "run", ["naive", "latent-dps", "lc-dps"]), progress=False)
    assert res["pending"] == 0 and res["merged"]
    rows = list((tmp_path / "run" / "rows").glob("*.json"))
    assert len(rows) == 2 * 3
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "lc-dps" in md and "latent-dps" in md


def test_eval_refuses_pixel_solvers_on_a_latent_model_up_front(prior, data_dir, tmp_path, monkeypatch):
    from inversa.eval.evaluate import run_eval

    monkeypatch.setattr(inversa.pretrained, "load_prior", lambda name=None, device="cpu", **_: prior)
    with pytest.raises(UserError) as exc:
        run_eval(_cfg(data_dir, tmp_path / "run", ["lc-dps", "dps", "c-dps"]), progress=False)
    msg = str(exc.value)
    assert "\n" not in msg and "dps, c-dps do not run on it" in msg and "accepted: latent-dps, psld, lc-dps, naive" in msg
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


# --- the web UI's pieces ----------------------------------------------------------------------------------------
def test_method_lists_fit_the_model_kind(tmp_path):
    from inversa.app.runner import model_kind, solvers_for
    from inversa.solvers import SOLVERS

    assert solvers_for("latent") == ["naive", "latent-dps", "psld", "lc-dps"]
    pixel = solvers_for("pixel")
    assert "dps" in pixel and "naive" in pixel and not {"latent-dps", "psld", "lc-dps"} & set(pixel)
    assert solvers_for(None) == list(SOLVERS)
    folder = tmp_path / "ldm"
    (folder / "vqvae").mkdir(parents=True)
    (folder / "vqvae" / "config.json").write_text("{}")
    assert model_kind(str(folder)) == "latent" and model_kind(str(tmp_path)) == "pixel"
    assert model_kind(None) == "pixel" and model_kind("someone/some-model") is None


def test_method_dropdown_follows_the_model():
    from inversa.app.runner import AUTO
    from inversa.app.ui import method_dropdown

    d = method_dropdown("latent", "dps")
    values = [c[1] for c in d.choices]
    assert values[0] == AUTO and values[1] == "latent-dps" and values[-1] == "naive" and d.value == AUTO
    assert method_dropdown("latent", "psld").value == "psld"
    assert "dps" in [c[1] for c in method_dropdown("pixel", "dps").choices]


def test_auto_resolves_to_the_latent_preset():
    from inversa.app.runner import AUTO, resolve_solver

    assert resolve_solver(AUTO, "balanced", "damaged", "inpaint", "box_inpaint", "latent") == "lc-dps"
    assert resolve_solver(AUTO, "balanced", "damaged", "inpaint", "box_inpaint", None) == "dps"


def test_live_preview_decodes_latent_estimates(prior, photo):
    from inversa.app.runner import run_stream

    kw = dict(image=photo, preset="sr4", steps=4, progress=False, seed=0)
    previews = [item[3] for item in run_stream(kw, prior, threading.Event(), previews=4)
                if item[0] == "step" and item[3] is not None]
    assert previews and all(p.shape == (1, 3, 16, 16) for p in previews)
