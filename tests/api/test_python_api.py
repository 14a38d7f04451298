"""The Python API: top-level exports, images in any form, one-line errors, the diffusers-style pipeline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import inversa
from inversa import InversaPipeline, UserError, restore


def test_import_inversa_loads_neither_gradio_nor_torch():
    code = ("import inversa, sys; assert 'gradio' not in sys.modules and 'torch' not in sys.modules; "
            "inversa.restore; inversa.InversaPipeline; import inversa.cli, inversa.eval; "
            "assert 'gradio' not in sys.modules and 'lpips' not in sys.modules, 'heavy import'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_every_export_resolves():
    for name in inversa.__all__:
        assert getattr(inversa, name) is not None, name
    assert inversa.SOLVERS is inversa.solvers.SOLVERS and set(inversa.PRESETS) >= {"sr4", "box_inpaint"}


@pytest.fixture()
def photo_u8():
    return (np.random.default_rng(0).random((16, 24, 3)) * 255).astype(np.uint8)


def test_restore_takes_paths_pil_numpy_and_tensors(photo_u8, tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(photo_u8).save(path)
    t = torch.from_numpy(photo_u8).permute(2, 0, 1).float() / 255
    forms = [path, str(path), Image.fromarray(photo_u8), photo_u8, photo_u8.astype(np.float32) / 255, t, t[None]]
    outs = [restore(f, preset="sr4", solver="naive").restored for f in forms]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], atol=1e-6, rtol=0)


def test_restore_with_a_prior_is_the_same_for_every_image_form(tiny_model_dir, photo_u8):
    prior = inversa.load_prior(str(tiny_model_dir))
    a = restore(photo_u8, task="sr", factor=2, steps=2, prior=prior, progress=False).restored
    b = restore(Image.fromarray(photo_u8), task="sr", factor=2, steps=2, prior=prior, progress=False).restored
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("call,fragment", [
    (lambda: restore(object(), task="sr"), "image of type object"),
    (lambda: restore(np.zeros((4, 4, 7), np.uint8), task="sr"), "(4, 4, 7)"),
    (lambda: restore(np.full((8, 8, 3), 2.0), task="sr"), "outside [0, 1]"),
    (lambda: restore(np.zeros((8, 8, 3), np.int64), task="sr"), "int64"),
    (lambda: restore(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), task="sr"), "torch.uint8"),
    (lambda: restore(torch.zeros(2, 5, 8, 8), task="sr"), "(2, 5, 8, 8)"),
    (lambda: restore(np.zeros((16, 16, 3), np.uint8), task="sr", solver_params={"foo": 1}), "'foo'"),
    (lambda: restore(np.zeros((16, 16, 3), np.uint8), task="sr", device="cuda:5"), "cuda:5"),
    (lambda: restore(np.zeros((16, 16, 3), np.uint8), task="sr", model="./no/such/folder"), "does not exist"),
    (lambda: inversa.load_prior(123), "model of type int"),
    (lambda: InversaPipeline.from_pretrained("./no/such/folder"), "does not exist"),
    (lambda: InversaPipeline.from_pretrained(scheduler=object()), "scheduler of type object"),
])
def test_api_errors_are_one_line_user_errors(call, fragment, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UserError) as info:
        call()
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg, msg


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    return InversaPipeline.from_pretrained(str(tiny_model_dir), device="cpu")


@pytest.mark.parametrize("bad,fragment", [({"output_type": "latent"}, "latent"), ({"generator": "x"}, "generator 'x'"),
                                          ({"callback_on_step_end": 3}, "callable")])
def test_pipeline_argument_errors(pipe, photo_u8, bad, fragment):
    with pytest.raises(UserError, match=None) as info:
        pipe(photo_u8, task="sr", num_inference_steps=2, **bad)
    assert fragment in str(info.value)


def test_pipeline_outputs_and_generator(pipe, photo_u8):
    kw = dict(task="sr", factor=2, solver="dps", num_inference_steps=3, progress=False)
    pt = pipe(photo_u8, generator=torch.Generator().manual_seed(7), output_type="pt", **kw)
    again = pipe(photo_u8, generator=7, output_type="pt", **kw)
    torch.testing.assert_close(pt.images, again.images)
    assert pt.images.shape == (1, 3, 32, 48) and pt.metadata["nfe"] == 3
    np_out = pipe(photo_u8, generator=7, output_type="np", **kw)
    assert np_out.images.shape == (1, 32, 48, 3) and np_out.images.dtype == np.float32
    np.testing.assert_allclose(np_out.images[0], pt.images[0].permute(1, 2, 0).numpy())
    pil = pipe(photo_u8, generator=7, **kw)
    assert isinstance(pil.images[0], Image.Image) and pil.images[0].size == (48, 32)
    # the pipeline is restore(), not a second copy
    direct = restore(photo_u8, task="sr", factor=2, solver="dps", steps=3, seed=7, prior=pipe.prior, progress=False)
    torch.testing.assert_close(pt.images, direct.restored)


def test_pipeline_callback_and_mask_convention(pipe, photo_u8):
    seen = []
    mask = np.zeros((16, 24), np.uint8)
    mask[4:10, 6:18] = 255  # white = repaint (diffusers convention)
    out = pipe(photo_u8, task="inpaint", mask=Image.fromarray(mask), solver="dps", num_inference_steps=3, output_type="pt",
               progress=False, callback_on_step_end=lambda p, i, t, kw: seen.append((p, i, t, kw["latents"].shape)))
    assert [s[1] for s in seen] == [0, 1, 2] and all(s[0] is pipe for s in seen)
    assert seen[0][3] == (1, 3, 16, 24)
    kept = torch.from_numpy(photo_u8).permute(2, 0, 1).float()[None] / 255
    observed = torch.from_numpy(mask == 0)
    y = out.measurement  # white in the mask = missing: zero in the measurement, the photo elsewhere
    assert y[..., ~observed].abs().max() == 0
    torch.testing.assert_close(y[..., observed], kept[..., observed])
    as_tensor = pipe(photo_u8, task="inpaint", mask=torch.from_numpy(mask / 255.0), solver="dps", num_inference_steps=3,
                     output_type="pt", progress=False)
    torch.testing.assert_close(out.images, as_tensor.images)


def test_ddim_scheduler_runs_ddim(tiny_model_dir, photo_u8):
    from diffusers import DDIMScheduler

    prior = inversa.load_prior(str(tiny_model_dir))
    ddim = DDIMScheduler.from_config(prior.scheduler.config)
    pipe = InversaPipeline.from_pretrained(str(tiny_model_dir), scheduler=ddim, device="cpu")
    out = pipe(photo_u8, task="sr", factor=2, solver="dps", num_inference_steps=2, output_type="pt", progress=False)
    assert out.metadata["sampler"] == "ddim" and any("DDIM" in m for m in out.messages)
    forced = pipe(photo_u8, task="sr", factor=2, solver="dps", num_inference_steps=2, output_type="pt", progress=False,
                  solver_params={"sampler": "ddpm"})
    assert forced.metadata["sampler"] == "ddpm"
    plain = InversaPipeline.from_pretrained(str(tiny_model_dir), device="cpu")
    assert plain(photo_u8, task="sr", factor=2, solver="dps", num_inference_steps=2, progress=False).metadata["sampler"] == "ddpm"


def test_load_prior_accepts_a_diffusers_pipeline(tiny_model_dir):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    pipe = DDPMPipeline(unet=UNet2DModel.from_pretrained(tiny_model_dir / "unet"),
                        scheduler=DDPMScheduler.from_pretrained(tiny_model_dir / "scheduler"))
    prior = inversa.load_prior(pipe)
    assert prior.model is pipe.unet and prior.num_train_timesteps == 1000


def test_missing_lpips_names_the_extra(monkeypatch):
    from inversa.eval import metrics

    monkeypatch.setitem(sys.modules, "lpips", None)
    metrics._lpips_model.cache_clear()
    with pytest.raises(metrics.MetricUnavailable, match=r"pip install 'inversa\[eval\]'"):
        metrics._lpips_model("alex", None, "cpu")


def test_the_restore_function_survives_importing_its_module():
    """`inversa.restore` is the function even after its module was imported (the module once shared the
    name, and importing it replaced the package's function by the module)."""
    import importlib

    import inversa

    importlib.import_module("inversa.restoration")
    assert callable(inversa.restore) and inversa.restore.__name__ == "restore"
