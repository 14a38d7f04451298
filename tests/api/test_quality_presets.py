"""Quality presets (`inversa.quality`), the k-sample posterior mean and keep-observed in `restore()`
and `inversa restore`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from inversa import UserError, restore
from inversa.quality import PRESETS, QUALITIES, TASK_OF_PRESET, check_quality, quality_help, setting


@pytest.fixture(scope="module")
def prior(tiny_model_dir):
    from inversa.pretrained import load_prior

    return load_prior(str(tiny_model_dir))


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)).save(p)
    return p


def test_every_preset_names_a_solver_with_valid_settings():
    from inversa.operators import PRESETS as DEGRADATIONS
    from inversa.params import check_solver_params
    from inversa.restoration import TASKS

    assert set(TASK_OF_PRESET) == set(DEGRADATIONS)
    for q in QUALITIES:
        assert set(PRESETS[q]) == set(TASKS), q
        for task, s in PRESETS[q].items():
            assert s.steps >= 1 and s.seconds > 0, (q, task)
            assert check_solver_params(s.solver, s.params) == s.params, (q, task)
    for task in TASKS:  # slower presets buy time for quality, never the other way round
        secs = [PRESETS[q][task].seconds for q in QUALITIES]
        assert secs == sorted(secs), (task, secs)
    assert "balanced" in quality_help() and all(q in quality_help() for q in QUALITIES)


def test_bad_quality_is_one_line():
    with pytest.raises(UserError, match=r"unknown quality 'great'; accepted: fast, balanced, best"):
        check_quality("great")
    with pytest.raises(UserError, match="unknown task 'paint'"):
        setting("fast", "paint")
    assert setting(" Best ", "motion_deblur") is PRESETS["best"]["deblur"]


@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize("preset", ["sr4", "box_inpaint", "motion_deblur", "denoise"])
def test_restore_runs_the_preset_for_the_task(prior, photo, quality, preset):
    want = setting(quality, preset)
    r = restore(photo, preset=preset, quality=quality, prior=prior, progress=False, steps=4)
    meta = r.metadata
    assert meta["solver"] == want.solver and meta["quality"] == quality and meta["steps"] == 4
    for key, value in want.params.items():
        assert meta[key] == value, (key, meta.get(key))


def test_given_steps_params_and_solver_win_over_the_preset(prior, photo):
    r = restore(photo, preset="sr4", quality="fast", solver_params={"start": 0.5}, steps=4, prior=prior, progress=False)
    assert r.metadata["start"] == 0.5 and r.metadata["solver"] == setting("fast", "sr4").solver
    named = restore(photo, preset="sr4", solver="dps", steps=3, prior=prior, progress=False)
    assert named.metadata["solver"] == "dps" and named.metadata["quality"] is None and named.metadata["nfe"] == 3


def test_the_mean_of_k_samples_is_the_mean_of_k_single_restorations(prior, photo):
    """k samples run as one batch with seeds seed..seed+k-1; image i never depends on its batch-mates,
    so the mean equals the mean of k separate runs (float32 batched-conv rounding aside)."""
    kw = dict(task="sr", factor=2, solver="dps", steps=3, prior=prior, progress=False)  # the photo is y: no draw
    mean = restore(photo, samples=3, seed=5, **kw)
    singles = [restore(photo, seed=5 + i, **kw) for i in range(3)]
    want = torch.stack([s.restored for s in singles]).mean(0)
    assert (mean.restored - want).abs().max() < 1e-5
    assert not torch.equal(singles[0].restored, singles[1].restored)
    assert mean.metadata["samples"] == 3 and "the mean of 3 restorations" in mean.metadata["output"]
    assert "one restoration" in singles[0].metadata["output"]


def test_keep_observed_puts_back_the_observed_pixels_exactly(prior, photo):
    r = restore(photo, preset="random_inpaint", solver="dps", steps=3, sigma=0.0, keep_observed=True, prior=prior,
                progress=False)
    observed = r.measurement != 0  # noise-free: the observed pixels of the measurement are the photo's
    assert observed.float().mean() > 0.2
    assert torch.equal(r.restored[observed], r.measurement[observed])
    assert torch.equal(r.restored[observed], r.clean[observed])
    assert "observed pixels kept exactly" in r.metadata["output"]


@pytest.mark.parametrize("kw,message", [
    (dict(samples=0), "samples must be a whole number from 1 to 64, got 0"),
    (dict(samples=2.5), "samples must be a whole number from 1 to 64, got 2.5"),
    (dict(keep_observed=True), "keep_observed needs noise-free observed pixels: give sigma 0"),
    (dict(keep_observed=True, sigma=0.0, preset="sr4"), "keep_observed applies to inpainting only, got task 'sr4'"),
    (dict(quality="great"), "unknown quality 'great'"),
])
def test_bad_output_options_are_one_line_before_any_loading(photo, kw, message):
    kw = {"preset": "box_inpaint", **kw}
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        restore(photo, model="/nonexistent/model", progress=False, **kw)


def test_cli_quality_samples_and_keep_observed(tiny_model_dir, photo, tmp_path, capsys):
    from inversa.cli import main

    out = tmp_path / "r.png"
    assert main(["restore", str(photo), "--preset", "box_inpaint", "--model", str(tiny_model_dir), "--steps", "3",
                 "--quality", "fast", "--samples", "2", "--sigma", "0", "--keep-observed", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "result: the mean of 2 restorations" in printed and "observed pixels kept exactly" in printed
    assert f"({setting('fast', 'inpaint').solver}, 3 steps" in printed and "quality fast" in printed
    for args, message in [(["--quality", "great"], "unknown quality 'great'"),
                          (["--samples", "0"], "samples must be a whole number from 1 to 64")]:
        bad = tmp_path / "bad.png"
        assert main(["restore", str(photo), "--preset", "sr4", "--model", str(tiny_model_dir), "-o", str(bad), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not bad.exists()
